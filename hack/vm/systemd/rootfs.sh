#!/usr/bin/env bash
# hack/vm/systemd/rootfs.sh: the Debian root filesystem of the systemd test VM, made once with
# debootstrap (minbase + systemd as init) into $VM_SD_OUT/rootfs and reused while this script
# and the suite are unchanged. Only Debian's archive is used (the mirror apt is set up with);
# nothing is installed on the host but debootstrap itself.
# Env: VM_SD_OUT (default _output/vm-systemd), VM_SD_SUITE (default: the host's codename),
# VM_SD_MIRROR (default: the Debian archive URI in the host's apt sources).
set -euo pipefail
cd "$(dirname "$0")/../../.."

VM_SD_OUT=${VM_SD_OUT:-_output/vm-systemd}
. /etc/os-release
SUITE=${VM_SD_SUITE:-${VERSION_CODENAME:-bookworm}}
MIRROR=${VM_SD_MIRROR:-}
if [ -z "$MIRROR" ]; then
	# the Debian archive apt uses: a URI ending in /debian (not -security, not a third party's)
	MIRROR=$(grep -rhs '^URIs:' /etc/apt/sources.list.d/ | awk '{print $2}' | grep -E '/debian/?$' | head -1)
	[ -n "$MIRROR" ] || MIRROR=$(awk '$1 == "deb" && $3 ~ /^[a-z]+$/ && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
	[ -n "$MIRROR" ] || MIRROR=http://deb.debian.org/debian
fi
PKGS=systemd,systemd-sysv
stamp="$SUITE $MIRROR $PKGS $(sha256sum "$0" | cut -c1-16)"
root=$VM_SD_OUT/rootfs
if [ -x "$root/lib/systemd/systemd" ] && [ "$(cat "$VM_SD_OUT/rootfs.stamp" 2>/dev/null)" = "$stamp" ]; then
	echo "vm-systemd: rootfs $SUITE (cached in $root)"
	exit 0
fi
[ "$(id -u)" -eq 0 ] || { echo "vm-systemd: debootstrap needs root" >&2; exit 1; }
if ! command -v debootstrap >/dev/null; then
	echo "vm-systemd: installing debootstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap
fi
echo "vm-systemd: debootstrap $SUITE from $MIRROR (minbase + $PKGS)"
start=$SECONDS
rm -rf "$root" "$VM_SD_OUT/rootfs.stamp"
mkdir -p "$VM_SD_OUT"
debootstrap --variant=minbase --include="$PKGS" "$SUITE" "$root" "$MIRROR" >"$VM_SD_OUT/debootstrap.log" 2>&1 ||
	{ tail -20 "$VM_SD_OUT/debootstrap.log" >&2; echo "vm-systemd: debootstrap failed (log: $VM_SD_OUT/debootstrap.log)" >&2; exit 1; }
# What a test VM does not need: documentation, locales, apt's caches; and systemd's generators
# (fstab, getty, sysv, cryptsetup, gpt-auto ...: the VM boots box-vm.target alone, and running
# a dozen generators costs seconds under TCG).
rm -rf "$root"/usr/share/{doc,man,info,locale,lintian} "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/* \
	"$root"/usr/lib/x86_64-linux-gnu/gconv "$root"/usr/lib/systemd/system-generators/*
echo "$stamp" >"$VM_SD_OUT/rootfs.stamp"
echo "vm-systemd: rootfs $SUITE in $root ($(du -sh "$root" | cut -f1), $((SECONDS - start))s)"
