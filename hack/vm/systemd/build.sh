#!/usr/bin/env bash
# hack/vm/systemd/build.sh: the initramfs of the systemd test VM (run hack/vm/deps.sh for the
# kernel and qemu, and hack/vm/systemd/rootfs.sh for the Debian rootfs, first):
#   $VM_SD_OUT/rootfs.cpio      the debootstrap'd rootfs as an uncompressed cpio (newc),
#                               rebuilt when the rootfs changes. Uncompressed: under TCG the
#                               kernel unpacks 100 MB of cpio in about a second, while inflating
#                               it would take many.
#   $VM_SD_OUT/overlay.cpio     /init (hack/vm/systemd/init), box-vm.target, box-vm-test.service,
#                               /tests/run-tests, the static test binaries and /tests/list
#   $VM_SD_OUT/initramfs.cpio   both concatenated (the kernel unpacks them in order, the overlay
#                               last, so its files win)
#
# VM_SD_TESTS: space-separated "<package>[:<-test.run regexp>]" (default: the systemd driver's
# tests of runtime/cgroup and runtime, and "containerd": box containers with SystemdCgroup
# through containerd + ctr, hack/vm/systemd/containerd-test.sh). VM_TEST_TIMEOUT: -test.timeout
# per test (default 3m). CONTAINERD_VERSION: for the containerd entry (default v2.4.2).
set -euo pipefail
cd "$(dirname "$0")/../../.."
. hack/vm/lib.sh

VM_SD_OUT=${VM_SD_OUT:-_output/vm-systemd}
VM_OUT=${VM_OUT:-_output/vm}
VM_SD_TESTS=${VM_SD_TESTS:-runtime/cgroup:Systemd runtime:Systemd containerd}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CD=github.com/containerd/containerd/v2
VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-3m}
root=$VM_SD_OUT/rootfs
stage=$VM_SD_OUT/overlay
[ -x "$root/lib/systemd/systemd" ] || { echo "vm-systemd: no rootfs in $root: run hack/vm/systemd/rootfs.sh" >&2; exit 1; }
start=$SECONDS

# the rootfs cpio, cached by the rootfs stamp
if [ ! -f "$VM_SD_OUT/rootfs.cpio" ] || [ "$(cat "$VM_SD_OUT/rootfs.cpio.stamp" 2>/dev/null)" != "$(cat "$VM_SD_OUT/rootfs.stamp")" ]; then
	echo "vm-systemd: packing $root"
	(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$VM_SD_OUT/rootfs.cpio.tmp"
	mv "$VM_SD_OUT/rootfs.cpio.tmp" "$VM_SD_OUT/rootfs.cpio"
	cp "$VM_SD_OUT/rootfs.stamp" "$VM_SD_OUT/rootfs.cpio.stamp"
fi

# containerd entry: containerd + ctr at CONTAINERD_VERSION (static; the cgroup v2 VM's cached
# build in $VM_OUT/containerd/bin when it is that version, else built here), the box shim and
# daemon (static), the busybox image, the overlay module for the snapshotter, and
# hack/vm/systemd/containerd-test.sh as containerd.test.
build_containerd() {
	local dir=$VM_SD_OUT/containerd stamp="$CD@$CONTAINERD_VERSION"
	mkdir -p "$dir/bin" "$stage/tests/containerd/bin" "$stage/tests/modules"
	if [ "$(cat "$VM_OUT/containerd/bin/version" 2>/dev/null)" = "$stamp" ] &&
		[ -x "$VM_OUT/containerd/bin/containerd" ] && [ -x "$VM_OUT/containerd/bin/ctr" ]; then
		cp "$VM_OUT"/containerd/bin/{containerd,ctr,version} "$dir/bin/"
	fi
	vm_build_containerd "$dir" "$stamp" vm-systemd
	vm_build_box "$dir" vm-systemd
	cp "$dir"/bin/{containerd,ctr,containerd-shim-box-v1,containerd-shim-box-v1-daemon} "$stage/tests/containerd/bin/"
	cp "$dir/busybox.tar" "$stage/tests/containerd/"
	cp hack/vm/ctdtest.sh "$stage/tests/containerd/"
	local release ko
	release=$(cat "$VM_OUT/kernel/release")
	ko=$(ls "$VM_OUT/kernel/modules/$release/kernel/fs/overlayfs/overlay".ko* | head -1)
	case $ko in
	*.ko) cp "$ko" "$stage/tests/modules/overlay.ko" ;;
	*.ko.xz) xz -dc "$ko" >"$stage/tests/modules/overlay.ko" ;;
	*.ko.zst) zstd -qdc "$ko" >"$stage/tests/modules/overlay.ko" ;;
	esac
	install -m 0755 hack/vm/systemd/containerd-test.sh "$stage/tests/bin/containerd.test"
}

rm -rf "$stage"
mkdir -p "$stage/tests/bin" "$stage/etc/systemd/system"
: >"$stage/tests/list"
for entry in $VM_SD_TESTS; do
	pkg=${entry%%:*} run=""
	[[ "$entry" == *:* ]] && run=${entry#*:}
	if [ "$pkg" = containerd ]; then
		build_containerd
		echo "containerd $VM_TEST_TIMEOUT $run" >>"$stage/tests/list"
		continue
	fi
	name=${pkg//\//-}
	cgo=$(go list -deps -test -f '{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}' "./$pkg" | sort -u | paste -sd' ')
	if [ -n "$cgo" ]; then
		echo "vm-systemd: $pkg (cgo, static: $cgo)"
		CGO_ENABLED=1 go test -c -o "$stage/tests/bin/$name.test" -tags osusergo,netgo \
			-ldflags "-s -w -linkmode external -extldflags -static" "./$pkg"
	else
		echo "vm-systemd: $pkg (CGO_ENABLED=0)"
		CGO_ENABLED=0 go test -c -o "$stage/tests/bin/$name.test" -ldflags "-s -w" "./$pkg"
	fi
	[ -f "$stage/tests/bin/$name.test" ] || { echo "vm-systemd: $pkg has no test files" >&2; exit 1; }
	echo "$name $VM_TEST_TIMEOUT $run" >>"$stage/tests/list"
done
cp "$stage/tests/list" "$VM_SD_OUT/tests.list"
install -m 0755 hack/vm/systemd/init "$stage/init"
install -m 0755 hack/vm/systemd/run-tests "$stage/tests/run-tests"
install -m 0644 hack/vm/systemd/box-vm.target hack/vm/systemd/box-vm-test.service "$stage/etc/systemd/system/"
echo boxvm >"$stage/etc/hostname"
# the runtime package's tests make container rootfses from /bin/busybox (busybox-static, which
# hack/vm/deps.sh installs on the host); /bin is a symlink to usr/bin in the rootfs
mkdir -p "$stage/usr/bin"
cp /bin/busybox "$stage/usr/bin/busybox"
(cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null) >"$VM_SD_OUT/overlay.cpio"
cat "$VM_SD_OUT/rootfs.cpio" "$VM_SD_OUT/overlay.cpio" >"$VM_SD_OUT/initramfs.cpio.tmp"
mv "$VM_SD_OUT/initramfs.cpio.tmp" "$VM_SD_OUT/initramfs.cpio"
echo "vm-systemd: $VM_SD_OUT/initramfs.cpio ($(du -h "$VM_SD_OUT/initramfs.cpio" | cut -f1)), tests: $(cut -d' ' -f1 "$VM_SD_OUT/tests.list" | paste -sd' ') ($((SECONDS - start))s)"
