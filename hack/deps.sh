#!/usr/bin/env bash
# Installs the Debian packages the build and tests need, only those missing.
#   busybox-static  the only binary in the test image (integration/harness, make demo)
#   iproute2        network checks in tests
#   libseccomp-dev, pkg-config  runc (the comparison peer) is built with seccomp
#   gcc, libc6-dev  the shim is built with cgo (runtime/nsenter)
#   util-linux, lsof, procps  the client suite's namespace sandbox (hack/client-suite.sh)
set -euo pipefail

PKGS=(busybox-static iproute2 libseccomp-dev pkg-config gcc libc6-dev make git util-linux lsof procps)
missing=()
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$p")
	fi
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all present (${PKGS[*]})"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps: missing ${missing[*]}; run as root (sudo make deps)" >&2
	exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
