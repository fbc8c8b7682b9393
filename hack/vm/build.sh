#!/usr/bin/env bash
# hack/vm/build.sh: builds what the cgroup v2 VM boots (run hack/vm/deps.sh first):
#   $VM_OUT/bin/<name>.test   static root-test binaries (`go test -c`), <name> = package path
#                             with / replaced by - (runtime/cgroup -> runtime-cgroup)
#   $VM_OUT/tests.list        "<name> <timeout> [<-test.skip regexp>]" per binary, in run order
#   $VM_OUT/initramfs.gz      cpio newc + gzip: busybox-static and its applets, /init
#                             (hack/vm/init), the test binaries and the list, /etc, and the
#                             kernel modules in VM_MODULES from $VM_OUT/kernel
#
# VM_TESTS: space-separated entries "<package>[:<-test.skip regexp>]", package relative to the
# module root (runtime, runtime/rootfs, ...). The skip regexp may not contain spaces; use it for
# tests that cannot pass in the VM, with the reason in hack/vm/README.md. The entry "containerd"
# is a box container lifecycle through containerd + ctr (CONTAINERD_VERSION, built static from
# the module proxy into $VM_OUT/containerd) and the box shim: hack/vm/containerd-test.sh. The
# entry "attacks" is the attack tests of the integration package with the same containerd and
# shim: hack/vm/attacks-test.sh.
# VM_MODULES: module paths below lib/modules/<release>/kernel, without .ko (default overlayfs).
# VM_TEST_TIMEOUT: -test.timeout of each binary inside the VM (default 4m); VM_ATTACKS_TIMEOUT
# that of the attack tests, which run as one test (default 7m).
set -euo pipefail
cd "$(dirname "$0")/../.."

VM_OUT=${VM_OUT:-_output/vm}
VM_TESTS=${VM_TESTS:-runtime runtime/cgroup runtime/rootfs runtime/process}
VM_MODULES=${VM_MODULES:-fs/overlayfs/overlay}
VM_TEST_TIMEOUT=${VM_TEST_TIMEOUT:-4m}
VM_ATTACKS_TIMEOUT=${VM_ATTACKS_TIMEOUT:-7m}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CD=github.com/containerd/containerd/v2
KDIR=$VM_OUT/kernel
STAGE=$VM_OUT/initramfs

[ -f "$KDIR/vmlinuz" ] || { echo "vm-build: no kernel in $KDIR: run hack/vm/deps.sh" >&2; exit 1; }
[ -x /bin/busybox ] || { echo "vm-build: /bin/busybox missing: apt-get install busybox-static" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "vm-build: needs root (device nodes in the initramfs)" >&2; exit 1; }
release=$(cat "$KDIR/release")
start=$SECONDS

. hack/vm/lib.sh

mkdir -p "$VM_OUT/bin"
rm -f "$VM_OUT"/bin/*.test "$VM_OUT/tests.list"
# containerd entry: static containerd + ctr at CONTAINERD_VERSION (cached by version), the box
# shim (static, cgo), the busybox image and hack/vm/containerd-test.sh as containerd.test.
build_containerd() {
	local dir=$VM_OUT/containerd
	vm_build_containerd "$dir" "$CD@$CONTAINERD_VERSION" vm-build
	vm_build_box "$dir" vm-build
	install -m 0755 hack/vm/containerd-test.sh "$VM_OUT/bin/containerd.test"
}

# attacks entry: the integration package's test binary (static), of which
# hack/vm/attacks-test.sh (as attacks.test) runs the ^TestAttack tests with containerd + ctr and
# the shim of build_containerd, and the attacker binary the tests bind-mount into containers.
build_attacks() {
	[ -n "${containerd_built:-}" ] || build_containerd
	containerd_built=1
	echo "vm-build: integration (attack tests, CGO_ENABLED=0) and the attacker"
	mkdir -p "$VM_OUT/integration"
	CGO_ENABLED=0 go test -c -o "$VM_OUT/integration/integration.test" -ldflags "-s -w" ./integration
	go run ./integration/cmd/mkattacker "$VM_OUT/integration/attacker"
	install -m 0755 hack/vm/attacks-test.sh "$VM_OUT/bin/attacks.test"
}

for entry in $VM_TESTS; do
	pkg=${entry%%:*} skip=""
	[[ "$entry" == *:* ]] && skip=${entry#*:}
	if [ "$pkg" = containerd ]; then
		[ -n "${containerd_built:-}" ] || build_containerd
		containerd_built=1
		echo "containerd $VM_TEST_TIMEOUT $skip" >>"$VM_OUT/tests.list"
		continue
	fi
	if [ "$pkg" = attacks ]; then
		build_attacks
		echo "attacks $VM_ATTACKS_TIMEOUT $skip" >>"$VM_OUT/tests.list"
		continue
	fi
	pkg=${pkg#./}
	name=${pkg//\//-}
	# cgo only if a non-standard package in the test's deps has C (runtime/nsenter); static
	# either way, so the binary runs on busybox alone. osusergo/netgo: no glibc NSS in them.
	cgo=$(go list -deps -test -f '{{if and (not .Standard) .CgoFiles}}{{.ImportPath}}{{end}}' "./$pkg" | sort -u | paste -sd' ')
	if [ -n "$cgo" ]; then
		echo "vm-build: $pkg (cgo, static: $cgo)"
		CGO_ENABLED=1 go test -c -o "$VM_OUT/bin/$name.test" -tags osusergo,netgo \
			-ldflags "-s -w -linkmode external -extldflags -static" "./$pkg"
	else
		echo "vm-build: $pkg (CGO_ENABLED=0)"
		CGO_ENABLED=0 go test -c -o "$VM_OUT/bin/$name.test" -ldflags "-s -w" "./$pkg"
	fi
	if [ ! -f "$VM_OUT/bin/$name.test" ]; then
		echo "vm-build: $pkg has no test files" >&2
		exit 1
	fi
	if file "$VM_OUT/bin/$name.test" 2>/dev/null | grep -q 'dynamically linked'; then
		echo "vm-build: $VM_OUT/bin/$name.test is dynamically linked" >&2
		exit 1
	fi
	echo "$name $VM_TEST_TIMEOUT $skip" >>"$VM_OUT/tests.list"
done

# the initramfs tree
rm -rf "$STAGE"
mkdir -p "$STAGE"/{bin,sbin,usr/bin,usr/sbin,etc,dev,proc,sys,tmp,run,newroot,root,lib/modules,tests/bin}
cp /bin/busybox "$STAGE/bin/busybox"
for applet in $(/bin/busybox --list-full); do
	[ -e "$STAGE/$applet" ] || ln -s /bin/busybox "$STAGE/$applet"
done
mknod -m 600 "$STAGE/dev/console" c 5 1
mknod -m 666 "$STAGE/dev/null" c 1 3
install -m 0755 hack/vm/init "$STAGE/init"
cp "$VM_OUT"/bin/*.test "$STAGE/tests/bin/"
if grep -q '^attacks ' "$VM_OUT/tests.list"; then
	mkdir -p "$STAGE/tests/integration"
	cp "$VM_OUT"/integration/{integration.test,attacker} "$STAGE/tests/integration/"
fi
if grep -qE '^(containerd|attacks) ' "$VM_OUT/tests.list"; then
	mkdir -p "$STAGE/tests/containerd/bin"
	cp "$VM_OUT"/containerd/bin/{containerd,ctr,containerd-shim-box-v1,containerd-shim-box-v1-daemon} "$STAGE/tests/containerd/bin/"
	cp "$VM_OUT/containerd/busybox.tar" "$STAGE/tests/containerd/"
	cp hack/vm/ctdtest.sh "$STAGE/tests/containerd/"
fi
cp "$VM_OUT/tests.list" "$STAGE/tests/list"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$STAGE/etc/passwd"
printf 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n' >"$STAGE/etc/group"
echo boxvm >"$STAGE/etc/hostname"
echo "127.0.0.1 localhost boxvm" >"$STAGE/etc/hosts"
for m in $VM_MODULES; do
	ko=$(ls "$KDIR/modules/$release/kernel/$m".ko* 2>/dev/null | head -1)
	[ -n "$ko" ] || { echo "vm-build: module $m not in $KDIR/modules/$release" >&2; exit 1; }
	case $ko in
	*.ko) cp "$ko" "$STAGE/lib/modules/" ;;
	*.ko.xz) xz -dc "$ko" >"$STAGE/lib/modules/$(basename "$m").ko" ;;
	*.ko.zst) zstd -qdc "$ko" >"$STAGE/lib/modules/$(basename "$m").ko" ;;
	*) echo "vm-build: cannot unpack $ko" >&2; exit 1 ;;
	esac
done

(cd "$STAGE" && find . -mindepth 1 | LC_ALL=C sort | /bin/busybox cpio -o -H newc -R 0:0 2>/dev/null) |
	gzip -1 >"$VM_OUT/initramfs.gz.tmp"
mv "$VM_OUT/initramfs.gz.tmp" "$VM_OUT/initramfs.gz"
echo "vm-build: $VM_OUT/initramfs.gz ($(du -h "$VM_OUT/initramfs.gz" | cut -f1)), kernel $release, tests: $(cut -d' ' -f1 "$VM_OUT/tests.list" | paste -sd' ') ($((SECONDS - start))s)"
