#!/usr/bin/env bash
# `make demo`: starts a private containerd (root and state in _output/demo, sockets in
# /run/box-demo-<pid>), imports the locally built busybox image, runs one container with the box
# runtime through ctr, prints its output and stops everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

TOOLS=$(cd "${TOOLS:-_output/tools}" && pwd)
SHIM=$(realpath "${SHIM:-_output/bin/containerd-shim-box-v1}")
DEMO=$PWD/_output/demo
RUN=/run/box-demo-$$
CGROUP=box-demo-$$
CTR=("$TOOLS/bin/ctr" -a "$RUN/c.sock" -n demo)

for bin in "$TOOLS/bin/containerd" "$TOOLS/bin/ctr" "$SHIM"; do
	[ -x "$bin" ] || { echo "demo: $bin missing; run: sudo make demo" >&2; exit 1; }
done

hack/cleanup.sh >/dev/null
rm -rf "$DEMO"
mkdir -p "$DEMO/bin" "$RUN"
ln -s "$SHIM" "$DEMO/bin/containerd-shim-box-v1"

cat >"$RUN/config.toml" <<TOML
version = 3
root = "$DEMO/root"
state = "$DEMO/state"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.images", "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox", "io.containerd.nri.v1.nri", "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper"]
[grpc]
  address = "$RUN/c.sock"
[ttrpc]
  address = "$RUN/c.sock.ttrpc"
[debug]
  address = "$RUN/d.sock"
[plugins."io.containerd.shim.v1.manager"]
  socket_dir = "$RUN/s"
TOML

stop() {
	local rc=$?
	if [ -n "${CONTAINERD_PID:-}" ]; then
		kill -TERM "$CONTAINERD_PID" 2>/dev/null || true
		for _ in $(seq 100); do kill -0 "$CONTAINERD_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$CONTAINERD_PID" 2>/dev/null || true
		wait "$CONTAINERD_PID" 2>/dev/null || true
	fi
	# shellcheck disable=SC2046
	kill_pids KILL $(pids_mentioning "$RUN") $(pids_mentioning "$DEMO/state")
	# a container still running (the demo failed midway) mentions neither
	kill_cgroup "$CGROUP"
	unmount_under "$DEMO"
	unmount_under "$RUN"
	rmdir_cgroup "$CGROUP"
	rm -rf "$RUN"
	[ $rc -eq 0 ] || echo "demo: failed; containerd log: $DEMO/containerd.log" >&2
	exit $rc
}
trap stop EXIT

echo "demo: building the busybox image from /bin/busybox"
go build -o "$DEMO/mkimage" ./integration/cmd/mkimage
"$DEMO/mkimage" "$DEMO/busybox.tar"

echo "demo: starting containerd $("$TOOLS/bin/containerd" --version | awk '{print $3}') (log: $DEMO/containerd.log)"
PATH="$DEMO/bin:/usr/sbin:/usr/bin:/sbin:/bin" "$TOOLS/bin/containerd" --config "$RUN/config.toml" >"$DEMO/containerd.log" 2>&1 &
CONTAINERD_PID=$!
for _ in $(seq 300); do
	"${CTR[@]}" version >/dev/null 2>&1 && break
	kill -0 "$CONTAINERD_PID" 2>/dev/null || { echo "demo: containerd exited" >&2; exit 1; }
	sleep 0.1
done

"${CTR[@]}" images import "$DEMO/busybox.tar" >/dev/null
echo "demo: imported box.test/busybox:latest"
echo "+ ctr run --rm --runtime io.containerd.box.v1 box.test/busybox:latest demo sh -c 'echo hello from box; hostname'"
"${CTR[@]}" run --rm --fifo-dir "$RUN/fifo" --cgroup "/$CGROUP/demo" --runtime io.containerd.box.v1 \
	box.test/busybox:latest demo sh -c 'echo hello from box; hostname'
echo "demo: done; stopping containerd"
