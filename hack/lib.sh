# Shared by demo.sh and cleanup.sh: teardown of a private containerd's leftovers. Source it.

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

# rmdir_cgroup NAME: rmdirs /NAME and its children in every hierarchy (rmdir only, never writes).
rmdir_cgroup() {
	local name=$1 root
	case "$name" in box-test-* | box-demo*) ;; *) echo "refusing to remove cgroup $name" >&2; return 1 ;; esac
	for root in /sys/fs/cgroup/*/; do
		[ -d "$root$name" ] || continue
		find "$root$name" -depth -type d -exec rmdir {} \; 2>/dev/null || true
	done
}
