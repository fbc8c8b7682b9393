#!/usr/bin/env bash
# Builds the pinned test tools from the Go module proxy:
#   $TOOLS/bin               containerd + ctr  (CONTAINERD_VERSION, the version box targets)
#   $TOOLS/containerd-2.0/bin containerd + ctr (CONTAINERD20_VERSION, the oldest supported 2.x)
#   $PEER                     containerd-shim-runc-v2 (CONTAINERD_VERSION) + runc (RUNC_VERSION),
#                             the peer used for comparisons; never on box's PATH.
# A binary is rebuilt only when missing or built from another module version.
set -euo pipefail

TOOLS=${TOOLS:-_output/tools}
PEER=${PEER:-_output/peer/bin}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CONTAINERD20_VERSION=${CONTAINERD20_VERSION:-v2.0.14}
RUNC_VERSION=${RUNC_VERSION:-v1.3.7}

abs() { mkdir -p "$1" && cd "$1" && pwd; }
TOOLS=$(abs "$TOOLS")
PEER=$(abs "$PEER")

# built_at BIN MODULE VERSION: true if BIN exists and was built from MODULE@VERSION (its stamp
# file says so, or for `go install` builds, its embedded build info does).
built_at() {
	[ -x "$1" ] || return 1
	[ "$(cat "$1.version" 2>/dev/null)" = "$2@$3" ] && return 0
	go version -m "$1" 2>/dev/null | awk -v m="$2" -v v="$3" '$1=="mod" && $2==m && $3==v {f=1} END {exit !f}'
}

# install DIR MODULE VERSION PKG [go build flags...]: builds PKG of MODULE@VERSION into DIR
# unless cached. It builds inside the module's own source (downloaded through the module proxy)
# as the main module, so that its go.mod replace/exclude directives apply (containerd v2.0.x has
# excludes, which `go install pkg@version` refuses).
install() {
	local dir=$1 mod=$2 ver=$3 pkg=$4
	shift 4
	local bin="$dir/${pkg##*/}"
	if built_at "$bin" "$mod" "$ver"; then
		echo "tools: $bin is $mod@$ver (cached)"
		return
	fi
	echo "tools: building $pkg@$ver -> $dir"
	local start=$SECONDS src
	src=$(cd / && GOFLAGS=-mod=mod go mod download -json "$mod@$ver" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	[ -n "$src" ] || { echo "tools: cannot download $mod@$ver" >&2; exit 1; }
	mkdir -p "$dir"
	rm -f "$bin.version"
	GOFLAGS="-buildvcs=false -mod=mod" GOWORK=off go build -C "$src" -o "$bin" "$@" "./${pkg#"$mod"}"
	echo "$mod@$ver" >"$bin.version"
	echo "tools: built ${pkg##*/} $ver in $((SECONDS - start))s"
}

CD=github.com/containerd/containerd/v2
install "$TOOLS/bin" "$CD" "$CONTAINERD_VERSION" "$CD/cmd/containerd" -tags no_btrfs
install "$TOOLS/bin" "$CD" "$CONTAINERD_VERSION" "$CD/cmd/ctr" -tags no_btrfs
install "$TOOLS/containerd-2.0/bin" "$CD" "$CONTAINERD20_VERSION" "$CD/cmd/containerd" -tags no_btrfs
install "$TOOLS/containerd-2.0/bin" "$CD" "$CONTAINERD20_VERSION" "$CD/cmd/ctr" -tags no_btrfs
install "$PEER" "$CD" "$CONTAINERD_VERSION" "$CD/cmd/containerd-shim-runc-v2" -tags no_btrfs
# runc with seccomp (as distributions ship it) needs libseccomp-dev and pkg-config (make deps).
CGO_ENABLED=1 install "$PEER" github.com/opencontainers/runc "$RUNC_VERSION" github.com/opencontainers/runc -tags seccomp \
	-ldflags "-X main.version=${RUNC_VERSION#v}"
