package runtime

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/rootfs"
)

// idmapSupported reports whether dir's filesystem takes idmapped mounts,
// trying one with a throwaway mapping.
func idmapSupported(t *testing.T, dir string) error {
	t.Helper()
	m := oci.Mount{Source: dir, Destination: "/probe", Flags: unix.MS_BIND, IDMap: &oci.IDMap{
		UIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 1}},
		GIDMappings: []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 1}},
	}}
	ns, err := mappingUserNS(CreateConfig{Plan: &oci.Plan{}, Monitor: &testMonitor{}}, selfExe(t), m.IDMap)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	tree, err := rootfs.IDMappedTree(m, ns)
	if err == nil {
		tree.Close()
	}
	return err
}

func selfExe(t *testing.T) string {
	t.Helper()
	exe, err := SealedExe()
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// TestIDMappedFilesystems records which filesystems of this kernel take
// idmapped mounts: ext4 (the test's temp dir here), tmpfs (Linux >= 6.3)
// and overlayfs; box reports idmap support (features) from the kernel's
// mount_setattr, and these are what containerd hands it.
func TestIDMappedFilesystems(t *testing.T) {
	testutil.RequiresRoot(t)
	var uts unix.Utsname
	unix.Uname(&uts)
	release := unix.ByteSliceToString(uts.Release[:])
	base := t.TempDir()
	var st unix.Statfs_t
	unix.Statfs(base, &st)
	if err := idmapSupported(t, base); st.Type == unix.EXT4_SUPER_MAGIC && err != nil {
		t.Errorf("ext4 on %s: %v", release, err)
	} else {
		t.Logf("%s (fs %#x) on %s: %v", base, st.Type, release, err)
	}
	tmp := filepath.Join(base, "tmpfs")
	os.Mkdir(tmp, 0o755)
	if err := unix.Mount("tmpfs", tmp, "tmpfs", 0, ""); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(tmp, unix.MNT_DETACH)
	err := idmapSupported(t, tmp)
	t.Logf("tmpfs on %s: %v", release, err)
	if err != nil && kernelAtLeast(release, 6, 3) {
		t.Errorf("tmpfs on %s (>= 6.3) refuses idmapped mounts: %v", release, err)
	}
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		os.Mkdir(filepath.Join(tmp, d), 0o755)
	}
	if err := unix.Mount("overlay", filepath.Join(tmp, "merged"), "overlay", 0,
		fmt.Sprintf("lowerdir=%s/lower,upperdir=%s/upper,workdir=%s/work", tmp, tmp, tmp)); err != nil {
		t.Fatal(err)
	}
	defer unix.Unmount(filepath.Join(tmp, "merged"), unix.MNT_DETACH)
	t.Logf("overlayfs on %s: %v", release, idmapSupported(t, filepath.Join(tmp, "merged")))
}

func kernelAtLeast(release string, major, minor int) bool {
	var a, b int
	fmt.Sscanf(release, "%d.%d", &a, &b)
	return a > major || (a == major && b >= minor)
}

// hostOwnedDir makes a directory owned by uid/gid 1000 holding a file of
// the same owner, reachable by everyone.
func hostOwnedDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, filepath.Join(dir, "f")} {
		if err := os.Chown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func ownerOnHost(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

// TestIDMappedBindMount bind-mounts a host directory owned by uid 1000
// into containers with an idmapped mount that shows it as the container's
// root: stat inside says 0:0, and a file the container's root creates
// lands as 1000:1000 on the host. With and without a user namespace of
// the container; the "plain" case is the control: the same bind without
// the mapping shows another owner.
func TestIDMappedBindMount(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	if err := idmapSupported(t, t.TempDir()); err != nil {
		t.Skipf("the temp dir's filesystem takes no idmapped mounts here: %v", err)
	}
	// On disk 1000 <-> the container's root, in host terms.
	to := func(hostRoot uint32) []specs.LinuxIDMapping {
		return []specs.LinuxIDMapping{{ContainerID: 1000, HostID: hostRoot, Size: 1}}
	}
	for _, tc := range []struct {
		name   string
		userns bool
		mount  func(src string) specs.Mount
		inside string
	}{
		{"no userns", false, func(src string) specs.Mount {
			return specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind", "idmap"}, UIDMappings: to(0), GIDMappings: to(0)}
		}, "0:0"},
		{"userns", true, func(src string) specs.Mount {
			return specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind"}, UIDMappings: to(testHostID), GIDMappings: to(testHostID)}
		}, "0:0"},
		{"userns ridmap", true, func(src string) specs.Mount {
			return specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind", "ridmap"}, UIDMappings: to(testHostID), GIDMappings: to(testHostID)}
		}, "0:0"},
		{"plain (control)", true, func(src string) specs.Mount {
			return specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind"}}
		}, "65534:65534"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := hostOwnedDir(t)
			bundle, spec, _ := testBundle(t, "sh", "-c", "stat -c %u:%g /data /data/f; echo new > /data/new")
			if tc.userns {
				ownRootfsBy(t, bundle, testHostID)
				setNamespace(spec, specs.UserNamespace, "")
				spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 65536}}
				spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 65536}}
				spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
			}
			spec.Mounts = append(spec.Mounts, tc.mount(src))
			out, e := runContainer(t, bundle, spec, nil)
			if tc.inside == "65534:65534" {
				// The control: the container's root may not write there.
				if e.Status == 0 || !strings.HasPrefix(out, "65534:65534\n65534:65534\n") {
					t.Fatalf("exit %d:\n%s", e.Status, out)
				}
				return
			}
			if e.Status != 0 || out != tc.inside+"\n"+tc.inside+"\n" {
				t.Fatalf("exit %d, inside %q; want %s twice", e.Status, out, tc.inside)
			}
			if got := ownerOnHost(t, filepath.Join(src, "new")); got != "1000:1000" {
				t.Errorf("file made inside is %s on the host, want 1000:1000", got)
			}
		})
	}
}

// TestIDMappedJoinedUserNS checks a bare "idmap" in a container that joins
// a user namespace uses that namespace: a host directory owned by root
// shows as the container's root, and a new file is root's on the host.
func TestIDMappedJoinedUserNS(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	src := t.TempDir()
	if err := idmapSupported(t, src); err != nil {
		t.Skipf("the temp dir's filesystem takes no idmapped mounts here: %v", err)
	}
	os.Chmod(src, 0o755)
	pause := startPause(t, unix.CLONE_NEWUSER)
	bundle, spec, _ := testBundle(t, "sh", "-c", "stat -c %u:%g /data; echo new > /data/new")
	ownRootfsBy(t, bundle, testHostID)
	setNamespace(spec, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", pause))
	spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: src, Options: []string{"rbind", "idmap"}})
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 || out != "0:0\n" {
		t.Fatalf("exit %d, inside %q; want 0:0", e.Status, out)
	}
	if got := ownerOnHost(t, filepath.Join(src, "new")); got != "0:0" {
		t.Errorf("file made inside is %s on the host, want 0:0", got)
	}
}

// TestIDMappedMountErrors checks bad idmapped mounts fail Create cleanly.
func TestIDMappedMountErrors(t *testing.T) {
	testutil.RequiresRoot(t)
	one := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: 0, Size: 1}}
	bundle, spec, cg := testBundle(t, "true")
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: "/no/such/dir", Options: []string{"rbind"}, UIDMappings: one, GIDMappings: one})
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(t.Context(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "/no/such/dir") {
		t.Errorf("missing source: %v", err)
	}
	// proc does not take idmapped mounts.
	spec.Mounts[len(spec.Mounts)-1].Source = "/proc"
	spec.Mounts[len(spec.Mounts)-1].Options = []string{"bind"}
	if plan, err = oci.NewPlan(spec, bundle); err != nil {
		t.Fatal(err)
	}
	_, err = Create(t.Context(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "mounts[") {
		t.Errorf("procfs: %v", err)
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left after failed Create: %v", matches)
	}
	// No helper is left behind.
	out, _ := exec.Command("sh", "-c", "grep -l _BOX_USERNS_HOLD /proc/[0-9]*/environ 2>/dev/null || true").Output()
	if len(strings.TrimSpace(string(out))) != 0 {
		t.Errorf("user namespace helpers left: %s", out)
	}
}
