//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/containerd/errdefs"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// bindFlags are the flags a first bind mount ignores; they take a second,
// MS_REMOUNT|MS_BIND call.
const bindFlags = unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC |
	unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME | unix.MS_STRICTATIME | unix.MS_NOSYMFOLLOW

// mkMountpoint resolves dest inside root, creating what is missing (a
// directory when dir, else an empty file, and their parents), and returns an
// O_PATH handle to it. It is a variable so that tests can swap in a naive
// implementation and show what the secure one prevents.
var mkMountpoint = mkMountpointInRoot

// checkProcDest is checkNoSymlinks for procfs and sysfs destinations; a
// variable so that tests can show what the check prevents.
var checkProcDest = checkNoSymlinks

// fdPath is the path through which mount(2) reaches the file f refers to.
func fdPath(f *os.File) string {
	return "/proc/thread-self/fd/" + strconv.Itoa(int(f.Fd()))
}

// mountAll mounts ms inside root, in order.
func mountAll(root *os.File, ms []oci.Mount) error {
	for _, m := range ms {
		if err := mountOne(root, m); err != nil {
			return err
		}
	}
	return nil
}

// mountOne makes one mount inside root: the mount itself, the remount that
// applies the flags a bind ignores, then the propagation changes.
func mountOne(root *os.File, m oci.Mount) error {
	switch m.Type {
	case "proc", "sysfs":
		// A procfs or sysfs mounted where a symlink points could be used to
		// fool the runtime's later writes to /proc (CVE-2019-19921).
		if err := checkProcDest(root, m.Destination); err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Type, m.Destination, err)
		}
	case "cgroup":
		return mountCgroup(root, m)
	}
	dir := true
	if m.IsBind() {
		fi, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
		}
		dir = fi.IsDir()
	}
	target, err := mkMountpoint(root, m.Destination, dir)
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
	}
	if m.Detached != nil {
		err = moveDetached(m.Detached, target)
	} else {
		err = unix.Mount(m.Source, fdPath(target), m.Type, m.Flags, m.Data)
	}
	target.Close()
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", m.Source, m.Destination, err)
	}
	if (!m.IsBind() || m.Flags&bindFlags == 0) && len(m.PropagationFlags) == 0 && m.RecAttrSet|m.RecAttrClr == 0 {
		return nil
	}
	// The handle refers to the directory under the new mount; reopen to
	// reach the mount itself.
	top, err := pathrs.OpenatInRoot(root, m.Destination)
	if err != nil {
		return fmt.Errorf("reopen %s: %w", m.Destination, err)
	}
	defer top.Close()
	if m.IsBind() && m.Flags&bindFlags != 0 {
		if err := remountBind(top, m.Flags&bindFlags); err != nil {
			return fmt.Errorf("remount %s: %w", m.Destination, err)
		}
	}
	if m.RecAttrSet|m.RecAttrClr != 0 {
		attr := &unix.MountAttr{Attr_set: m.RecAttrSet, Attr_clr: m.RecAttrClr}
		if err := unix.MountSetattr(int(top.Fd()), "", unix.AT_EMPTY_PATH|unix.AT_RECURSIVE, attr); err != nil {
			return fmt.Errorf("set recursive attributes on %s: %w", m.Destination, err)
		}
	}
	for _, pf := range m.PropagationFlags {
		if err := unix.Mount("", fdPath(top), "", pf, ""); err != nil {
			return fmt.Errorf("set propagation %#x on %s: %w", pf, m.Destination, err)
		}
	}
	return nil
}

// remountBind applies flags to the bind mount f is the root of, keeping the
// nosuid, nodev, noexec and atime flags it already has: in a user namespace
// the kernel refuses to clear them (they are locked), and elsewhere a bind
// keeps what its source had.
func remountBind(f *os.File, flags uintptr) error {
	var st unix.Statfs_t
	if err := unix.Fstatfs(int(f.Fd()), &st); err != nil {
		return err
	}
	return unix.Mount("", fdPath(f), "", unix.MS_REMOUNT|unix.MS_BIND|keepFlags(st.Flags, flags), "")
}

// keepFlags returns the MS_* flags of a remount that sets want on a mount
// whose statfs(2) f_flags are statfs: want, plus the mount's nosuid, nodev
// and noexec, plus its atime mode unless want sets one.
func keepFlags(statfs int64, want uintptr) uintptr {
	for st, ms := range map[int64]uintptr{
		unix.ST_NOSUID: unix.MS_NOSUID,
		unix.ST_NODEV:  unix.MS_NODEV,
		unix.ST_NOEXEC: unix.MS_NOEXEC,
	} {
		if statfs&st != 0 {
			want |= ms
		}
	}
	const atime = unix.MS_NOATIME | unix.MS_RELATIME | unix.MS_STRICTATIME
	if want&atime == 0 {
		switch {
		case statfs&unix.ST_NOATIME != 0:
			want |= unix.MS_NOATIME
		case statfs&unix.ST_RELATIME != 0:
			want |= unix.MS_RELATIME
		default:
			// Without a flag a remount means relatime; statfs shows
			// strictatime as the absence of both.
			want |= unix.MS_STRICTATIME
		}
	}
	if want&unix.MS_NOATIME == 0 && statfs&unix.ST_NODIRATIME != 0 {
		want |= unix.MS_NODIRATIME
	}
	return want
}

// mkMountpointInRoot is mkMountpoint. Every component is resolved inside
// root: a symlink, even an absolute one or one swapped in meanwhile, is
// followed as if root were "/".
func mkMountpointInRoot(root *os.File, dest string, dir bool) (*os.File, error) {
	if dir {
		return pathrs.MkdirAllHandle(root, dest, 0o755)
	}
	parent, err := pathrs.MkdirAllHandle(root, filepath.Dir(dest), 0o755)
	if err != nil {
		return nil, err
	}
	defer parent.Close()
	// mknodat(2) never follows a symlink: an existing name, whatever it is,
	// is left alone and resolved below.
	err = unix.Mknodat(int(parent.Fd()), filepath.Base(dest), unix.S_IFREG|0o644, 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return nil, fmt.Errorf("create %s: %w", dest, err)
	}
	return pathrs.OpenatInRoot(root, dest)
}

// checkNoSymlinks fails with errdefs.ErrInvalidArgument if a component of
// dest that exists inside root is a symlink. Components that don't exist
// yet are not checked; they are created as directories.
func checkNoSymlinks(root *os.File, dest string) error {
	fd, err := unix.Dup(int(root.Fd()))
	if err != nil {
		return err
	}
	walked := "/"
	for _, name := range strings.Split(strings.TrimPrefix(filepath.Clean(dest), "/"), "/") {
		if name == "" {
			break
		}
		walked = filepath.Join(walked, name)
		next, err := unix.Openat(fd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		unix.Close(fd)
		if errors.Is(err, unix.ENOENT) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("open %s: %w", walked, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(next, &st); err != nil {
			unix.Close(next)
			return err
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			unix.Close(next)
			return fmt.Errorf("%s is a symlink: %w", walked, errdefs.ErrInvalidArgument)
		}
		fd = next
	}
	unix.Close(fd)
	return nil
}

// makeParentPrivate makes the mount that holds path's parent directory
// private.
func makeParentPrivate(path string) error {
	mounts, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	parent := filepath.Dir(path)
	best := "/"
	for _, m := range mounts {
		if isUnder(parent, m.mountpoint) && len(m.mountpoint) > len(best) {
			best = m.mountpoint
		}
	}
	if err := unix.Mount("", best, "", unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make %s private: %w", best, err)
	}
	return nil
}

// isUnder reports whether path is dir or below it; both are clean and absolute.
func isUnder(path, dir string) bool {
	return dir == "/" || path == dir || strings.HasPrefix(path, dir+"/")
}

// mountinfo is the part of a /proc/self/mountinfo line the package needs.
type mountinfo struct {
	root, mountpoint, fstype string
	superOptions             []string
}

// readMountinfo parses a mountinfo file (proc(5)).
func readMountinfo(path string) ([]mountinfo, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return parseMountinfo(string(data))
}

// parseMountinfo parses the text of a mountinfo file:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(text string) ([]mountinfo, error) {
	var out []mountinfo
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		fields, tail := strings.Fields(pre), strings.Fields(post)
		if !ok || len(fields) < 5 || len(tail) < 3 {
			return nil, fmt.Errorf("mountinfo: bad line %q", line)
		}
		out = append(out, mountinfo{
			root:         unescapeOctal(fields[3]),
			mountpoint:   unescapeOctal(fields[4]),
			fstype:       tail[0],
			superOptions: strings.Split(tail[2], ","),
		})
	}
	return out, nil
}

// unescapeOctal undoes mountinfo's \NNN escapes of space, tab, newline and
// backslash.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
