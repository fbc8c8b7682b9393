# Shared by demo.sh, cleanup.sh and fuzz.sh: teardown of a private containerd's leftovers. Source it.

# pids_mentioning DIR: live processes whose command line, environment or cwd mentions DIR.
pids_mentioning() {
	local dir=$1 p pid
	for p in /proc/[0-9]*; do
		pid=${p#/proc/}
		[ "$pid" = "$$" ] && continue
		if tr '\0' ' ' 2>/dev/null <"$p/cmdline" | grep -qF -- "$dir" ||
			tr '\0' '\n' 2>/dev/null <"$p/environ" | grep -qF -- "$dir/" ||
			[[ "$(readlink "$p/cwd" 2>/dev/null)" == "$dir"/* ]]; then
			echo "$pid"
		fi
	done
}

# kill_pids SIG PID...: signals each pid (by pid only).
kill_pids() {
	local sig=$1
	shift
	local pid
	for pid in "$@"; do kill "-$sig" "$pid" 2>/dev/null || true; done
}

# unmount_under DIR: lazily unmounts every mount point at or below DIR, deepest first.
unmount_under() {
	local dir=$1
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 {print length($5), $5}' /proc/self/mountinfo |
		sort -rn | cut -d' ' -f2- | while read -r mp; do umount -l "$mp" 2>/dev/null || true; done
}

# owned_cgroup NAME: whether NAME is a cgroup this project's runs create (box-test-*, box-demo*).
owned_cgroup() {
	case "$1" in box-test-* | box-demo*) return 0 ;; *) echo "refusing to touch cgroup $1" >&2; return 1 ;; esac
}

# kill_cgroup NAME: SIGKILLs every process in /NAME and below, in every hierarchy (by pid).
kill_cgroup() {
	local name=$1 procs
	owned_cgroup "$name" || return 1
	while read -r procs; do
		# shellcheck disable=SC2046
		kill_pids KILL $(cat "$procs" 2>/dev/null)
	done < <(find /sys/fs/cgroup/*/"$name" -name cgroup.procs 2>/dev/null)
}

# rmdir_cgroup NAME: rmdirs /NAME and its children in every hierarchy (rmdir only, never writes),
# retrying for up to 5 s while killed processes are still leaving.
rmdir_cgroup() {
	local name=$1 root i left
	owned_cgroup "$name" || return 1
	for i in $(seq 50); do
		left=0
		for root in /sys/fs/cgroup/*/; do
			[ -d "$root$name" ] || continue
			find "$root$name" -depth -type d -exec rmdir {} \; 2>/dev/null || true
			[ -d "$root$name" ] && left=1
		done
		[ $left -eq 0 ] && return 0
		sleep 0.1
	done
	echo "cgroup $name still in use" >&2
}
