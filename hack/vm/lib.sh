# Shared by hack/vm/build.sh and hack/vm/systemd/build.sh (source it from the repository root).

# vm_build_containerd DIR STAMP LABEL: static containerd + ctr of STAMP (<module>@<version>) into
# DIR/bin, built from the module proxy unless DIR/bin/version already says STAMP.
vm_build_containerd() {
	local dir=$1 stamp=$2 label=$3 src cmd
	mkdir -p "$dir/bin"
	if [ "$(cat "$dir/bin/version" 2>/dev/null)" = "$stamp" ] && [ -x "$dir/bin/containerd" ] && [ -x "$dir/bin/ctr" ]; then
		return 0
	fi
	echo "$label: containerd + ctr ${stamp#*@} (static)"
	src=$(cd / && GOFLAGS=-mod=mod go mod download -json "$stamp" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || { echo "$label: cannot download $stamp" >&2; exit 1; }
	rm -f "$dir/bin/version"
	for cmd in containerd ctr; do
		GOFLAGS="-buildvcs=false -mod=mod" GOWORK=off CGO_ENABLED=0 go build -C "$src" -tags no_btrfs \
			-ldflags "-s -w" -o "$PWD/$dir/bin/$cmd" "./cmd/$cmd"
	done
	echo "$stamp" >"$dir/bin/version"
}

# vm_build_box DIR LABEL: the two box binaries (static) into DIR/bin and the busybox test image
# as DIR/busybox.tar.
vm_build_box() {
	local dir=$1 label=$2
	echo "$label: containerd-shim-box-v1 (cgo, static) and containerd-shim-box-v1-daemon"
	CGO_ENABLED=1 go build -o "$dir/bin/containerd-shim-box-v1" -tags osusergo,netgo \
		-ldflags "-s -w -linkmode external -extldflags -static" ./cmd/containerd-shim-box-v1
	CGO_ENABLED=0 go build -o "$dir/bin/containerd-shim-box-v1-daemon" -ldflags "-s -w" ./cmd/containerd-shim-box-v1-daemon
	go run ./integration/cmd/mkimage "$dir/busybox.tar"
}
