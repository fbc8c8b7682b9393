//go:build linux

package rootfs

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	pathrs "github.com/cyphar/filepath-securejoin/pathrs-lite"
	"golang.org/x/sys/unix"
)

// Files the cgroup view is made from; variables so tests can use their own
// cgroup placement instead of touching the host's.
var (
	selfCgroupFile    = "/proc/self/cgroup"
	selfMountinfoFile = "/proc/self/mountinfo"
)

// mountCgroup mounts a view of the container's cgroups on m.Destination.
//
// On a cgroup2-only host that is a cgroup2 mount (with a cgroup namespace it
// shows the container's cgroup as the root). On a cgroup v1 or hybrid host
// it is a tmpfs holding, per hierarchy mounted on the host, a directory of
// the hierarchy's basename with the container's cgroup bind-mounted on it;
// a hierarchy of several controllers ("cpu,cpuacct") also gets a symlink per
// controller. m's ro, nosuid, nodev and noexec apply to all of it.
func mountCgroup(root *os.File, m oci.Mount) error {
	var st unix.Statfs_t
	if err := unix.Statfs("/sys/fs/cgroup", &st); err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", m.Destination, err)
	}
	target, err := mkMountpoint(root, m.Destination, true)
	if err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", m.Destination, err)
	}
	defer target.Close()
	if st.Type == unix.CGROUP2_SUPER_MAGIC {
		err := unix.Mount("cgroup2", fdPath(target), "cgroup2", m.Flags, m.Data)
		if errors.Is(err, unix.EPERM) {
			// A user namespace without a cgroup namespace of its own may
			// not mount cgroup2; as runc does, bind instead (the
			// container's own cgroup only, as the v1 view does).
			err = bindOwnCgroup2(root, m)
		}
		if err != nil {
			return fmt.Errorf("mount cgroup2 on %s: %w", m.Destination, err)
		}
		return nil
	}
	if err := mountCgroupV1(root, m, target); err != nil {
		return fmt.Errorf("mount cgroup on %s: %w", m.Destination, err)
	}
	return nil
}

// bindOwnCgroup2 bind-mounts the caller's cgroup2 directory on
// m.Destination with m's flags (read-only there when oci made it so:
// CVE-2023-25809).
func bindOwnCgroup2(root *os.File, m oci.Mount) error {
	binds, err := cgroupV1Binds()
	if err != nil {
		return err
	}
	if len(binds) != 1 {
		return fmt.Errorf("find the container's cgroup2 directory: %d candidates", len(binds))
	}
	target, err := pathrs.OpenatInRoot(root, m.Destination)
	if err != nil {
		return err
	}
	err = unix.Mount(binds[0].source, fdPath(target), "", unix.MS_BIND|unix.MS_REC, "")
	target.Close()
	if err != nil {
		return fmt.Errorf("bind %s: %w", binds[0].source, err)
	}
	flags := m.Flags & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if flags == 0 {
		return nil
	}
	top, err := pathrs.OpenatInRoot(root, m.Destination)
	if err != nil {
		return err
	}
	defer top.Close()
	return remountBind(top, flags)
}

// cgroupBind is one hierarchy of the v1 view: the host directory of the
// container's cgroup and the name it gets in the view.
type cgroupBind struct {
	source, name string
}

// mountCgroupV1 is mountCgroup on a v1 or hybrid host; target is the
// mountpoint of the view.
func mountCgroupV1(root *os.File, m oci.Mount, target *os.File) error {
	binds, err := cgroupV1Binds()
	if err != nil {
		return err
	}
	flags := m.Flags & (unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC)
	if err := unix.Mount("tmpfs", fdPath(target), "tmpfs", flags&^unix.MS_RDONLY, "mode=755"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", err)
	}
	// The tmpfs is new and only this process can see it: names inside it
	// can be used without in-root resolution.
	view, err := pathrs.OpenatInRoot(root, m.Destination)
	if err != nil {
		return err
	}
	defer view.Close()
	for _, b := range binds {
		if err := bindCgroup(view, b, flags); err != nil {
			return err
		}
	}
	if flags&unix.MS_RDONLY != 0 {
		if err := unix.Mount("", fdPath(view), "", unix.MS_REMOUNT|unix.MS_BIND|flags, ""); err != nil {
			return fmt.Errorf("remount tmpfs read-only: %w", err)
		}
	}
	return nil
}

// bindCgroup bind-mounts b.source on view/b.name with flags.
func bindCgroup(view *os.File, b cgroupBind, flags uintptr) error {
	vfd := int(view.Fd())
	if err := unix.Mkdirat(vfd, b.name, 0o755); err != nil {
		return fmt.Errorf("mkdir %s: %w", b.name, err)
	}
	dir, err := openNoFollow(vfd, b.name)
	if err != nil {
		return err
	}
	err = unix.Mount(b.source, fdPath(dir), "", unix.MS_BIND|unix.MS_REC, "")
	dir.Close()
	if err != nil {
		return fmt.Errorf("mount %s on %s: %w", b.source, b.name, err)
	}
	if flags != 0 {
		top, err := openNoFollow(vfd, b.name)
		if err != nil {
			return err
		}
		err = remountBind(top, flags)
		top.Close()
		if err != nil {
			return fmt.Errorf("remount %s: %w", b.name, err)
		}
	}
	if strings.Contains(b.name, ",") {
		for _, c := range strings.Split(b.name, ",") {
			if err := unix.Symlinkat(b.name, vfd, c); err != nil && !errors.Is(err, unix.EEXIST) {
				return fmt.Errorf("symlink %s: %w", c, err)
			}
		}
	}
	return nil
}

// openNoFollow opens name in the directory dirfd as an O_PATH handle
// without following a symlink.
func openNoFollow(dirfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// cgroupV1Binds reads where the calling process's cgroups are and where
// their hierarchies are mounted.
func cgroupV1Binds() ([]cgroupBind, error) {
	self, err := os.ReadFile(selfCgroupFile)
	if err != nil {
		return nil, err
	}
	mounts, err := readMountinfo(selfMountinfoFile)
	if err != nil {
		return nil, err
	}
	return planCgroupV1(string(self), mounts), nil
}

// planCgroupV1 matches each line of /proc/self/cgroup ("4:cpu,cpuacct:/a/b",
// "0::/a/b") with the host mount of its hierarchy and returns the binds of
// the view, one per hierarchy, in /proc/self/cgroup order. A cgroup outside
// the mount's root (another cgroup namespace) or without a mount is left
// out.
func planCgroupV1(self string, mounts []mountinfo) []cgroupBind {
	var out []cgroupBind
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(self), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		m, ok := hierarchyMount(parts[1], mounts)
		if !ok || !isUnder(parts[2], m.root) {
			continue
		}
		name := filepath.Base(m.mountpoint)
		if seen[name] {
			continue
		}
		seen[name] = true
		rel := strings.TrimPrefix(parts[2], m.root)
		out = append(out, cgroupBind{source: filepath.Join(m.mountpoint, rel), name: name})
	}
	return out
}

// hierarchyMount finds the mount of the hierarchy whose controllers (the
// middle field of /proc/self/cgroup) are controllers; "" is cgroup2.
func hierarchyMount(controllers string, mounts []mountinfo) (mountinfo, bool) {
	for _, m := range mounts {
		if controllers == "" {
			if m.fstype == "cgroup2" {
				return m, true
			}
			continue
		}
		if m.fstype != "cgroup" {
			continue
		}
		all := true
		for _, c := range strings.Split(controllers, ",") {
			if !contains(m.superOptions, c) {
				all = false
				break
			}
		}
		if all {
			return m, true
		}
	}
	return mountinfo{}, false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
