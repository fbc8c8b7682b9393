//go:build linux

package rootfs

import (
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// TestKeepFlags checks which flags a remount keeps from statfs and which the caller's win.
func TestKeepFlags(t *testing.T) {
	for _, tc := range []struct {
		statfs int64
		want   uintptr
		out    uintptr
	}{
		{0, unix.MS_RDONLY, unix.MS_RDONLY | unix.MS_STRICTATIME},
		{unix.ST_RELATIME, unix.MS_RDONLY, unix.MS_RDONLY | unix.MS_RELATIME},
		{unix.ST_NOATIME | unix.ST_NODIRATIME, unix.MS_RDONLY, unix.MS_RDONLY | unix.MS_NOATIME},
		{unix.ST_RELATIME | unix.ST_NODIRATIME, 0, unix.MS_RELATIME | unix.MS_NODIRATIME},
		{
			unix.ST_NOSUID | unix.ST_NODEV | unix.ST_NOEXEC | unix.ST_RELATIME | unix.ST_RDONLY,
			unix.MS_RDONLY,
			unix.MS_RDONLY | unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_RELATIME,
		},
		// A requested atime mode replaces the mount's.
		{unix.ST_RELATIME, unix.MS_NOATIME, unix.MS_NOATIME},
		{unix.ST_NOATIME, unix.MS_STRICTATIME, unix.MS_STRICTATIME},
		// statfs's rdonly is not kept: "rw" on a bind can clear it.
		{unix.ST_RDONLY | unix.ST_RELATIME, unix.MS_NOSUID, unix.MS_NOSUID | unix.MS_RELATIME},
	} {
		if got := keepFlags(tc.statfs, tc.want); got != tc.out {
			t.Errorf("keepFlags(%#x, %#x) = %#x, want %#x", tc.statfs, tc.want, got, tc.out)
		}
	}
}

// TestParseMountinfo checks field extraction and octal unescaping.
func TestParseMountinfo(t *testing.T) {
	ms, err := parseMountinfo(`22 1 0:21 / /proc rw,nosuid shared:12 - proc proc rw
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime shared:9 master:3 - cgroup cgroup rw,cpu,cpuacct
50 22 8:1 /a\040b /mnt/with\040space\134x rw - ext4 /dev/sda1 rw`)
	if err != nil {
		t.Fatal(err)
	}
	want := []mountinfo{
		{root: "/", mountpoint: "/proc", fstype: "proc", superOptions: []string{"rw"}},
		{root: "/", mountpoint: "/sys/fs/cgroup/cpu,cpuacct", fstype: "cgroup", superOptions: []string{"rw", "cpu", "cpuacct"}},
		{root: "/a b", mountpoint: `/mnt/with space\x`, fstype: "ext4", superOptions: []string{"rw"}},
	}
	if len(ms) != len(want) {
		t.Fatalf("got %d mounts", len(ms))
	}
	for i := range want {
		if ms[i].root != want[i].root || ms[i].mountpoint != want[i].mountpoint ||
			ms[i].fstype != want[i].fstype || !slices.Equal(ms[i].superOptions, want[i].superOptions) {
			t.Errorf("line %d: got %+v, want %+v", i, ms[i], want[i])
		}
	}
	if _, err := parseMountinfo("garbage"); err == nil {
		t.Error("garbage parsed")
	}
}

// TestPlanCgroupV1 checks how /proc/self/cgroup lines map to host directories and view names.
func TestPlanCgroupV1(t *testing.T) {
	mounts, err := parseMountinfo(`32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
36 31 0:33 /nsroot /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw`)
	if err != nil {
		t.Fatal(err)
	}
	got := planCgroupV1(`12:name=systemd:/box/c1
11:pids:/elsewhere
10:memory:/box/c1
9:cpu,cpuacct:/box/c1
8:blkio:/box/c1
0::/box/c1`, mounts)
	want := []cgroupBind{
		{source: "/sys/fs/cgroup/systemd/box/c1", name: "systemd"},
		{source: "/sys/fs/cgroup/memory/box/c1", name: "memory"},
		{source: "/sys/fs/cgroup/cpu,cpuacct/box/c1", name: "cpu,cpuacct"},
		{source: "/sys/fs/cgroup/unified/box/c1", name: "unified"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %+v\nwant %+v", got, want)
	}
}

// TestIsUnder checks the path prefix test used for mounts and cgroup roots.
func TestIsUnder(t *testing.T) {
	for _, tc := range []struct {
		path, dir string
		want      bool
	}{
		{"/a/b", "/", true},
		{"/a/b", "/a", true},
		{"/a", "/a", true},
		{"/ab", "/a", false},
		{"/", "/a", false},
	} {
		if got := isUnder(tc.path, tc.dir); got != tc.want {
			t.Errorf("isUnder(%q, %q) = %v", tc.path, tc.dir, got)
		}
	}
}
