#!/usr/bin/env bash
# Removes what an aborted integration run or demo left behind: for each /run/box-test-* or
# /run/box-demo-* dir whose containerd is no longer running, it kills the shims and container
# processes that mention the dir, unmounts everything below it, rmdirs the matching cgroups in
# every hierarchy and removes the dir. A dir whose containerd still runs (a test in progress)
# is left alone.
set -euo pipefail
cd "$(dirname "$0")/.."
. hack/lib.sh

for dir in /run/box-test-* /run/box-demo-*; do
	[ -d "$dir" ] || continue
	if pgrep -f -- "--config $dir/config.toml" >/dev/null; then
		echo "cleanup: $dir is in use, skipped"
		continue
	fi
	echo "cleanup: $dir"
	pids=$(pids_mentioning "$dir")
	# shellcheck disable=SC2086
	[ -z "$pids" ] || kill_pids KILL $pids
	name=$(basename "$dir")
	# container processes of that run sit in its cgroup parent
	kill_cgroup "$name"
	unmount_under "$dir"
	rmdir_cgroup "$name"
	rm -rf "$dir"
done
[ -d _output/demo ] && unmount_under "$PWD/_output/demo"
exit 0
