#!/usr/bin/env bash
# hack/vm/systemd/run.sh LOG: `make vm-systemd-test`. The kernel and qemu (hack/vm/deps.sh, shared
# with the cgroup v2 VM), the Debian rootfs (rootfs.sh, cached), the initramfs (build.sh), then
# the integration/vm test TestRootTestsInSystemdVM through hack/gotest.sh into LOG. Holds a
# lock on $VM_SD_OUT/.lock throughout. Env: as deps.sh, rootfs.sh and build.sh; BOX_VM_TIMEOUT.
set -euo pipefail
cd "$(dirname "$0")/../../.."
log=${1:-_output/vm-systemd-test.log}
VM_SD_OUT=${VM_SD_OUT:-_output/vm-systemd}
VM_OUT=${VM_OUT:-_output/vm}
mkdir -p "$VM_SD_OUT"
exec 9>"$VM_SD_OUT/.lock"
if ! flock -n 9; then
	echo "vm-systemd-test: another run holds $VM_SD_OUT/.lock; waiting"
	flock 9
fi
VM_OUT=$VM_OUT hack/vm/deps.sh
VM_SD_OUT=$VM_SD_OUT hack/vm/systemd/rootfs.sh
VM_SD_OUT=$VM_SD_OUT hack/vm/systemd/build.sh
BOX_VM_SYSTEMD_DIR=$(realpath "$VM_SD_OUT") BOX_VM_KERNEL=$(realpath "$VM_OUT/kernel/vmlinuz") \
	hack/gotest.sh "$log" -count=1 -timeout 15m -run '^TestRootTestsInSystemdVM$' ./integration/vm -args -test.root
