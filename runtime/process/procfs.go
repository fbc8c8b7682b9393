package process

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// The runtime writes procfs files of the container (sysctls, oom_score_adj,
// LSM attributes) as root, after the container's rootfs is in place. Two
// classes of bug let a hostile image or volume redirect such a write:
//
//   - CVE-2019-16884: something that is not a procfs is mounted on /proc
//     (a volume), so the "procfs" file is the attacker's file and the write
//     (an AppArmor label, say) silently goes nowhere;
//   - CVE-2025-52881: a real procfs, but a bind mount or symlink over one of
//     its files (/proc/sys/kernel/core_pattern over /proc/sys/x/y,
//     /proc/self/attr/exec over something else) sends the write to another
//     procfs file.
//
// OpenProcfs (lsm.go) and WriteProcfs close both: /proc is opened without following
// a symlink and must be a procfs (fstatfs), and every file below it is
// opened with openat2(RESOLVE_NO_XDEV|RESOLVE_NO_SYMLINKS|
// RESOLVE_NO_MAGICLINKS), so no mount and no link is crossed on the way.

// openProcfs opens the current root's /proc, verified to be a procfs
// (OpenProcfs); a variable so that tests can show what the verification
// prevents.
var openProcfs = func() (int, error) { return OpenProcfs("/proc") }

// WriteProcfs writes value to the file rel (relative, e.g. "sys/net/ipv4/
// ip_forward" or "<pid>/oom_score_adj") below proc, a handle from
// OpenProcfs, truncating it. The file must be reachable without crossing a
// mount or following a symlink and must itself be on procfs; otherwise the
// error is errdefs.ErrInvalidArgument. A missing file is
// errdefs.ErrNotFound.
func WriteProcfs(proc int, rel, value string) error { return writeProcfs(proc, rel, value) }

// writeProcfs is WriteProcfs; a variable so that tests can show what the
// resolution flags prevent.
var writeProcfs = writeProcfsNoXdev

func writeProcfsNoXdev(proc int, rel, value string) error {
	fd, err := unix.Openat2(proc, rel, &unix.OpenHow{
		Flags:   unix.O_WRONLY | unix.O_CLOEXEC | unix.O_TRUNC | unix.O_NOCTTY,
		Resolve: unix.RESOLVE_NO_XDEV | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("/proc/%s: %w: %w", rel, errdefs.ErrNotFound, err)
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.ELOOP):
		return fmt.Errorf("/proc/%s is redirected (a mount or symlink on the way): %w: %w", rel, errdefs.ErrInvalidArgument, err)
	case err != nil:
		return fmt.Errorf("open /proc/%s: %w", rel, err)
	}
	defer unix.Close(fd)
	if err := checkProcfs(fd, "/proc/"+rel); err != nil {
		return err
	}
	if _, err := unix.Write(fd, []byte(value)); err != nil {
		return fmt.Errorf("write %q to /proc/%s: %w", value, rel, err)
	}
	return nil
}

// checkProcfs fails with errdefs.ErrInvalidArgument unless fd is on a
// procfs.
func checkProcfs(fd int, name string) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(fd, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", name, err)
	}
	if st.Type != unix.PROC_SUPER_MAGIC {
		return fmt.Errorf("%s is not on a procfs (filesystem magic %#x): %w", name, st.Type, errdefs.ErrInvalidArgument)
	}
	return nil
}

// setOOMScoreAdj writes adj, when set, to the calling process's
// oom_score_adj through a verified procfs handle (never the path
// /proc/self/oom_score_adj, which the container's /proc could redirect).
// The pid is the one the current /proc shows: the process is in the pid
// namespace its /proc was mounted for.
func setOOMScoreAdj(adj *int) error {
	if adj == nil {
		return nil
	}
	proc, err := openProcfs()
	if err != nil {
		return fmt.Errorf("set oom_score_adj: %w", err)
	}
	defer unix.Close(proc)
	rel := strconv.Itoa(unix.Getpid()) + "/oom_score_adj"
	if err := writeProcfs(proc, rel, strconv.Itoa(*adj)); err != nil {
		return fmt.Errorf("set oom_score_adj: %w", err)
	}
	return nil
}
