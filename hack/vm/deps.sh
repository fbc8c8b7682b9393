#!/usr/bin/env bash
# hack/vm/deps.sh: what the cgroup v2 VM harness needs, idempotently.
#   * Debian packages, only those missing: qemu-system-x86 (TCG), busybox-static (the VM's
#     userland and the containers' rootfs), gcc + libc6-dev (static cgo test binaries).
#   * Debian's cloud kernel, NOT installed: the package linux-image-cloud-amd64 depends on is
#     fetched with `apt-get download` and unpacked with `dpkg-deb -x` into $VM_OUT/kernel
#     (vmlinuz, config, lib/modules). The host's /boot, bootloader and modules are untouched.
#     Re-extracted only when the archive's kernel package changes.
# Env: VM_OUT (default _output/vm), VM_KERNEL_PKG (default: what linux-image-cloud-amd64
# depends on, e.g. linux-image-6.1.0-56-cloud-amd64).
set -euo pipefail
cd "$(dirname "$0")/../.."

VM_OUT=${VM_OUT:-_output/vm}
KDIR=$VM_OUT/kernel

PKGS=(qemu-system-x86 busybox-static gcc libc6-dev)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { echo "vm-deps: missing ${missing[*]}; run as root" >&2; exit 1; }
	echo "vm-deps: installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The versioned kernel package behind the metapackage.
pkg=${VM_KERNEL_PKG:-}
if [ -z "$pkg" ]; then
	pkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64(-unsigned)?$/ {print $2; exit}')
fi
if [ -z "$pkg" ]; then
	# a stale package list; refresh once
	apt-get update -qq
	pkg=$(apt-cache depends linux-image-cloud-amd64 |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9].*-cloud-amd64(-unsigned)?$/ {print $2; exit}')
fi
[ -n "$pkg" ] || { echo "vm-deps: cannot resolve linux-image-cloud-amd64 to a kernel package" >&2; exit 1; }
ver=$(apt-cache policy "$pkg" | awk '$1 == "Candidate:" {print $2}')
stamp="$pkg $ver"
if [ -f "$KDIR/vmlinuz" ] && [ "$(cat "$KDIR/package" 2>/dev/null)" = "$stamp" ]; then
	echo "vm-deps: kernel $stamp (cached in $KDIR)"
	exit 0
fi

echo "vm-deps: fetching $stamp (apt-get download, not installed)"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# _apt cannot write into a root-owned mktemp dir; download as the invoking user instead
(cd "$tmp" && apt-get download -q -o APT::Sandbox::User="$(id -un)" "$pkg=$ver" >/dev/null)
deb=$(ls "$tmp"/*.deb)
dpkg-deb -x "$deb" "$tmp/x"
kver=$(basename "$(ls -d "$tmp"/x/lib/modules/*/)")
rm -rf "$KDIR"
mkdir -p "$KDIR"
cp "$tmp/x/boot/vmlinuz-$kver" "$KDIR/vmlinuz"
cp "$tmp/x/boot/config-$kver" "$KDIR/config"
mv "$tmp/x/lib/modules" "$KDIR/modules"
echo "$kver" >"$KDIR/release"
echo "$stamp" >"$KDIR/package"
echo "vm-deps: kernel $kver ($stamp) in $KDIR"
