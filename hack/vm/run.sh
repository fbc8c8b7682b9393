#!/usr/bin/env bash
# hack/vm/run.sh LOG: `make vm-test`. deps.sh, build.sh, then the integration/vm test (which
# boots the VM) through hack/gotest.sh, writing its output to LOG. Holds a lock on
# $VM_OUT/.lock throughout, so that two runs on one checkout (two `make check`s) take turns
# instead of overwriting each other's initramfs. Env: as deps.sh and build.sh, BOX_VM_TIMEOUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
log=${1:-_output/vm-test.log}
VM_OUT=${VM_OUT:-_output/vm}
mkdir -p "$VM_OUT"
exec 9>"$VM_OUT/.lock"
if ! flock -n 9; then
	echo "vm-test: another run holds $VM_OUT/.lock; waiting"
	flock 9
fi
hack/vm/deps.sh
hack/vm/build.sh
BOX_VM_DIR=$(realpath "$VM_OUT") hack/gotest.sh "$log" -count=1 -timeout 15m ./integration/vm -args -test.root
