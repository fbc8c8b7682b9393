package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// The id range of the user namespaces these tests make: root inside is
// this host uid.
const testHostID = 100000

// becomeSubreaper makes the test process a child subreaper, as the daemon
// is: the init stage of a held container is reparented to it.
func becomeSubreaper(t *testing.T) {
	t.Helper()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
}

// startPause starts a process in new namespaces (flags), like a pod's
// pause container, with uid/gid 0..65535 mapped to testHostID.. when flags
// include a user namespace. It is killed when the test ends.
func startPause(t *testing.T, flags uintptr) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: flags}
	if flags&unix.CLONE_NEWUSER != 0 {
		cmd.SysProcAttr.UidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: testHostID, Size: 65536}}
		cmd.SysProcAttr.GidMappings = []syscall.SysProcIDMap{{ContainerID: 0, HostID: testHostID, Size: 65536}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd.Process.Pid
}

// ownRootfsBy makes the bundle reachable by, and its rootfs owned by, host
// uid/gid id, as containerd does for a user-namespaced container without
// idmapped mounts.
func ownRootfsBy(t *testing.T, bundle string, id int) {
	t.Helper()
	for d := bundle; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	err := filepath.Walk(filepath.Join(bundle, "rootfs"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, id, id)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// setNamespace replaces (or adds) the spec's namespace of type typ.
func setNamespace(spec *specs.Spec, typ specs.LinuxNamespaceType, path string) {
	spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == typ })
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: typ, Path: path})
}

// nsID is the identity of a namespace file, as readlink shows it:
// "net:[4026531840]".
func nsID(t *testing.T, path string) string {
	t.Helper()
	s, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// ownerOf is the user namespace that owns the namespace at path.
func ownerOf(t *testing.T, path string) uint64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.IoctlRetInt(int(f.Fd()), unix.NS_GET_USERNS)
	if err != nil {
		t.Fatalf("NS_GET_USERNS %s: %v", path, err)
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// outputLines parses "key=value" lines.
func outputLines(out string) map[string]string {
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			lines[k] = v
		}
	}
	return lines
}

const nsScript = `echo pid=$$; echo uid=$(id -u); for n in user net mnt pid ipc uts; do echo $n=$(readlink /proc/self/ns/$n); done`

// TestJoinUserAndNetNamespace runs pod containers: they join namespaces of
// a pause process by path (user+net; user+net+ipc+uts as a Kubernetes pod
// with hostUsers: false) and create their own mount and pid namespaces (and
// ipc, uts when not joined), which must be owned by the joined user
// namespace (created after the join), with the container's root being the
// pause's root (host uid 100000) and the init pid 1. An exec joins the same
// namespaces.
func TestJoinUserAndNetNamespace(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	for _, tc := range []struct {
		name   string
		pause  uintptr
		joined []specs.LinuxNamespaceType
	}{
		{"user+net", unix.CLONE_NEWUSER | unix.CLONE_NEWNET, []specs.LinuxNamespaceType{specs.UserNamespace, specs.NetworkNamespace}},
		{"pod", unix.CLONE_NEWUSER | unix.CLONE_NEWNET | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
			[]specs.LinuxNamespaceType{specs.UserNamespace, specs.NetworkNamespace, specs.IPCNamespace, specs.UTSNamespace}},
	} {
		t.Run(tc.name, func(t *testing.T) { testJoinPod(t, tc.pause, tc.joined) })
	}
}

// procNames are the /proc/<pid>/ns names of namespace types.
var procNames = map[specs.LinuxNamespaceType]string{
	specs.UserNamespace: "user", specs.NetworkNamespace: "net", specs.IPCNamespace: "ipc",
	specs.UTSNamespace: "uts", specs.MountNamespace: "mnt", specs.PIDNamespace: "pid",
}

func testJoinPod(t *testing.T, pauseFlags uintptr, joined []specs.LinuxNamespaceType) {
	pause := startPause(t, pauseFlags)
	bundle, spec, _ := testBundle(t, "sleep", "100")
	ownRootfsBy(t, bundle, testHostID)
	for _, typ := range joined {
		setNamespace(spec, typ, fmt.Sprintf("/proc/%d/ns/%s", pause, procNames[typ]))
		if typ == specs.UTSNamespace {
			spec.Hostname = "" // only a new uts namespace may be named
		}
	}
	// No cgroup namespace: the cgroup view is the subject of its own test.
	spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "cgroup" })

	c, mon := createStarted(t, bundle, spec)
	out, e, err := execInto(t, c, mon, execSpec(spec, "sh", "-c", nsScript))
	if err != nil || e.Status != 0 {
		t.Fatalf("exec: %v, exit %d:\n%s", err, e.Status, out)
	}
	got := outputLines(out)
	pauseUser := ownerOf(t, fmt.Sprintf("/proc/%d/ns/net", pause))
	for _, typ := range []specs.LinuxNamespaceType{specs.UserNamespace, specs.NetworkNamespace, specs.IPCNamespace,
		specs.UTSNamespace, specs.MountNamespace, specs.PIDNamespace} {
		n := procNames[typ]
		pauseNS := nsID(t, fmt.Sprintf("/proc/%d/ns/%s", pause, n))
		initNS := fmt.Sprintf("/proc/%d/ns/%s", c.Pid, n)
		if slices.Contains(joined, typ) {
			if got[n] != pauseNS {
				t.Errorf("%s namespace %q, the pause's is %q", n, got[n], pauseNS)
			}
			continue
		}
		if got[n] != nsID(t, initNS) || got[n] == nsID(t, "/proc/self/ns/"+n) || got[n] == pauseNS {
			t.Errorf("%s namespace %q: want the init's own new one", n, got[n])
		}
		if owner := ownerOf(t, initNS); owner != pauseUser {
			t.Errorf("new %s namespace is owned by user namespace %d, want the joined one %d", n, owner, pauseUser)
		}
	}
	if got["uid"] != "0" {
		t.Errorf("uid inside %q, want 0", got["uid"])
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), fmt.Sprintf("\nUid:\t%d\t", testHostID)) {
		t.Errorf("init does not run as host uid %d:\n%s", testHostID, b)
	}
	// The init is pid 1 of its new pid namespace.
	if !strings.Contains(string(b), fmt.Sprintf("\nNSpid:\t%d\t1\n", c.Pid)) {
		t.Errorf("init is not pid 1 of a pid namespace of its own:\n%s", b)
	}
}

// TestJoinMountNamespace joins a mount namespace kept by a bind mount of
// its file: the container sees a tmpfs mounted only in that namespace.
func TestJoinMountNamespace(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	dir := t.TempDir()
	hidden := filepath.Join(dir, "hidden")
	nsFile := filepath.Join(dir, "mntns")
	if err := os.Mkdir(hidden, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(nsFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bundle, spec, _ := testBundle(t, "cat", "/hidden/marker")
	// A shell in a new mount namespace mounts the tmpfs (privately, so it
	// stays there) and waits; its namespace is kept by a bind mount of its
	// file, as "ip netns" or "unshare --mount=FILE" keep one.
	cmd := exec.Command("/bin/sh", "-c", "mount --make-rprivate / && mount -t tmpfs tmpfs "+hidden+
		" && echo secret > "+hidden+"/marker && echo ready && read x")
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	ready := make([]byte, 6)
	if _, err := io.ReadFull(stdout, ready); err != nil || string(ready) != "ready\n" {
		t.Fatalf("mount namespace holder: %q, %v", ready, err)
	}
	if err := unix.Mount(fmt.Sprintf("/proc/%d/ns/mnt", cmd.Process.Pid), nsFile, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(nsFile, unix.MNT_DETACH) })
	if _, err := os.Stat(filepath.Join(hidden, "marker")); err == nil {
		t.Fatal("the marker is visible outside the mount namespace: the test proves nothing")
	}
	setNamespace(spec, specs.MountNamespace, nsFile)
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/hidden", Type: "bind", Source: hidden, Options: []string{"rbind"}})
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 || out != "secret\n" {
		t.Fatalf("exit %d, output %q; want the joined namespace's marker", e.Status, out)
	}
}

// TestTimeOffsets checks linux.timeOffsets: a container with boottime
// +86400 s sees an uptime a day longer than the host's, and its init's
// timens_offsets hold monotonic +3600 s; without a user namespace, in a joined
// one and in a new one (the time namespace owned by it). Execs see the
// same clocks.
func TestTimeOffsets(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	for _, userns := range []string{"none", "joined", "new"} {
		t.Run("userns="+userns, func(t *testing.T) {
			bundle, spec, _ := testBundle(t, "sleep", "100")
			setNamespace(spec, specs.TimeNamespace, "")
			spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{
				"boottime":  {Secs: 86400},
				"monotonic": {Secs: 3600, Nanosecs: 5},
			}
			switch userns {
			case "joined":
				pause := startPause(t, unix.CLONE_NEWUSER)
				setNamespace(spec, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", pause))
			case "new":
				// The holder unshares the user namespace and the daemon
				// writes its maps before the rest is created in it.
				setNamespace(spec, specs.UserNamespace, "")
				spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 65536}}
				spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 65536}}
			}
			if userns != "none" {
				ownRootfsBy(t, bundle, testHostID)
				spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "cgroup" || m.Type == "sysfs" })
			}
			c, mon := createStarted(t, bundle, spec)
			out, e, err := execInto(t, c, mon, execSpec(spec, "sh", "-c", "cat /proc/uptime; cat /proc/1/timens_offsets"))
			if err != nil || e.Status != 0 {
				t.Fatalf("exec: %v, exit %d:\n%s", err, e.Status, out)
			}
			host, err := os.ReadFile("/proc/uptime")
			if err != nil {
				t.Fatal(err)
			}
			inside, hostUp := uptime(t, out), uptime(t, string(host))
			if d := inside - hostUp; d < 86400-60 || d > 86400+60 {
				t.Errorf("uptime inside %.0f s, host %.0f s: differ by %.0f s, want 86400", inside, hostUp, d)
			}
			if !strings.Contains(out, "monotonic") || !strings.Contains(out, "3600") {
				t.Errorf("init's timens_offsets lack monotonic 3600:\n%s", out)
			}
			// The time namespace belongs to the container's user namespace.
			var user unix.Stat_t
			if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/user", c.Pid), &user); err != nil {
				t.Fatal(err)
			}
			if owner := ownerOf(t, fmt.Sprintf("/proc/%d/ns/time", c.Pid)); owner != user.Ino {
				t.Errorf("time namespace owned by user namespace %d, the init's is %d", owner, user.Ino)
			}
		})
	}
}

func uptime(t *testing.T, s string) float64 {
	t.Helper()
	f := strings.Fields(s)
	if len(f) == 0 {
		t.Fatalf("no uptime in %q", s)
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestJoinNamespaceErrors checks bad namespace paths fail Create with the
// field named and the right class, leaving no cgroup behind.
func TestJoinNamespaceErrors(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	regular := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(regular, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		typ    specs.LinuxNamespaceType
		path   string
		class  func(error) bool
		reason string
	}{
		{"missing", specs.NetworkNamespace, "/run/no-such-netns", errdefs.IsNotFound, "no such file"},
		{"missing user", specs.UserNamespace, "/run/no-such-userns", errdefs.IsNotFound, "no such file"},
		{"regular file", specs.NetworkNamespace, regular, errdefs.IsInvalidArgument, "not a namespace file"},
		{"fifo", specs.MountNamespace, fifo, errdefs.IsInvalidArgument, "not a namespace file"},
		{"wrong type", specs.NetworkNamespace, "/proc/self/ns/ipc", errdefs.IsInvalidArgument, "is a ipc namespace, not network"},
		{"wrong type held", specs.UserNamespace, "/proc/self/ns/net", errdefs.IsInvalidArgument, "is a network namespace, not user"},
		{"own user namespace", specs.UserNamespace, "/proc/self/ns/user", errdefs.IsInvalidArgument, "runtime's own user namespace"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, spec, cg := testBundle(t, "true")
			setNamespace(spec, tc.typ, tc.path)
			plan, err := oci.NewPlan(spec, bundle)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
			if err == nil || !tc.class(err) || !strings.Contains(strings.ToLower(err.Error()), tc.reason) || !strings.Contains(err.Error(), "linux.namespaces[") {
				t.Fatalf("err = %v; want class %s naming the field and %q", err, tc.name, tc.reason)
			}
			if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
				t.Errorf("cgroups left after failed Create: %v", matches)
			}
		})
	}
}

// TestJoinUserNamespaceWithoutRoot checks a joined user namespace that
// maps no uid 0 fails Create with the holder's reason, not a hang.
func TestJoinUserNamespaceWithoutRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	cmd := exec.Command("/bin/sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 1000, HostID: testHostID, Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 1000, HostID: testHostID, Size: 1}},
		Credential:  &syscall.Credential{Uid: 1000, Gid: 1000},
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	bundle, spec, cg := testBundle(t, "true")
	setNamespace(spec, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", cmd.Process.Pid))
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if err == nil || !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "become root") {
		t.Fatalf("err = %v; want an invalid argument about becoming root", err)
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left after failed Create: %v", matches)
	}
}

// TestCgroupfsReadonlyInUserns checks CVE-2023-25809: a container with a
// user namespace but no cgroup namespace gets its cgroupfs read-only even
// when the spec mounts it "rw". The container's root maps to host root
// here, so only the read-only mount stops its write to cgroup.procs.
// Negative control: with the protection off (testCgroupfsWritable) the
// same write succeeds.
func TestCgroupfsReadonlyInUserns(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, unprotected := range []bool{false, true} {
		t.Run(fmt.Sprintf("unprotected=%v", unprotected), func(t *testing.T) {
			bundle, spec, _ := testBundle(t, "sh", "-c",
				`for f in /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/cgroup.procs; do if [ -e $f ]; then echo $$ > $f && echo wrote || echo refused; exit; fi; done; echo none`)
			setNamespace(spec, specs.UserNamespace, "")
			spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
			spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 65536}}
			spec.Linux.Namespaces = slices.DeleteFunc(spec.Linux.Namespaces, func(n specs.LinuxNamespace) bool { return n.Type == specs.CgroupNamespace })
			// A userns without its own network namespace cannot mount
			// sysfs; the cgroupfs goes on a tmpfs /sys instead, "rw".
			spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
			spec.Mounts = append(spec.Mounts,
				specs.Mount{Destination: "/sys", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "nodev"}},
				specs.Mount{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"rw", "nosuid", "noexec", "nodev"}})
			testCgroupfsWritable = unprotected
			defer func() { testCgroupfsWritable = false }()
			out, e := runContainer(t, bundle, spec, nil)
			want := "refused"
			if unprotected {
				want = "wrote"
			}
			if e.Status != 0 || strings.TrimSpace(lastLine(out)) != want {
				t.Fatalf("exit %d, output %q; want %s", e.Status, out, want)
			}
		})
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// TestJoinedUserNSTerminal checks a held init stage (joined user
// namespace, new pid namespace) still gets the container's pty as its
// controlling terminal: the holder's child is a session leader, as the
// daemon's direct children are.
func TestJoinedUserNSTerminal(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	pause := startPause(t, unix.CLONE_NEWUSER)
	bundle, spec, _ := testBundle(t, "sh", "-c", "tty; stty size; echo sid=$(cut -d' ' -f6 /proc/self/stat) pid=$$")
	ownRootfsBy(t, bundle, testHostID)
	setNamespace(spec, specs.UserNamespace, fmt.Sprintf("/proc/%d/ns/user", pause))
	spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
	spec.Process.Terminal = true
	spec.Process.ConsoleSize = &specs.Box{Height: 24, Width: 132}
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Terminal: true, Monitor: &testMonitor{}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Console.Close()
	out := readAll(c.Console)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	e := <-c.Exited()
	got := <-out
	if err := c.Destroy(); err != nil {
		t.Error(err)
	}
	if e.Status != 0 || !strings.Contains(got, "/dev/pts/0") || !strings.Contains(got, "24 132") || !strings.Contains(got, "sid=1 pid=1") {
		t.Fatalf("exit %d, terminal output:\n%s", e.Status, got)
	}
}

// TestUserNamespaceSetgroups checks setgroups handling in user namespaces:
// with maps the runtime writes (new user namespace, or a pod's made by a
// privileged runtime) setgroups stays allowed and the process gets its
// additionalGids; in a joined namespace whose creator denied setgroups the
// process keeps no group of the daemon's, and additionalGids fail Create
// as an invalid argument instead of being silently dropped. (Checked by
// hand: without the holder's setgroups(0, NULL) the "denied" case shows the
// daemon's groups 4242 4243 as 65534 65534 and fails.)
func TestUserNamespaceSetgroups(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	const script = "cat /proc/self/setgroups; grep Groups: /proc/self/status"
	run := func(t *testing.T, joinPath string, gids []uint32) (string, error) {
		bundle, spec, _ := testBundle(t, "sh", "-c", script)
		ownRootfsBy(t, bundle, testHostID)
		setNamespace(spec, specs.UserNamespace, joinPath)
		if joinPath == "" {
			spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 65536}}
			spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: testHostID, Size: 65536}}
		}
		spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
		spec.Process.User.AdditionalGids = gids
		if len(gids) > 0 && gids[0] != 0 && strings.Contains(t.Name(), "denied") {
			// Create must fail; nothing to run.
			plan, err := oci.NewPlan(spec, bundle)
			if err != nil {
				t.Fatal(err)
			}
			c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
			if err == nil {
				c.Signal(unix.SIGKILL)
				<-c.Exited()
				c.Destroy()
			}
			return "", err
		}
		out, e := runContainer(t, bundle, spec, nil)
		if e.Status != 0 {
			t.Fatalf("exit %d: %s", e.Status, out)
		}
		return out, nil
	}
	t.Run("new userns", func(t *testing.T) {
		out, err := run(t, "", []uint32{5, 6})
		if err != nil || !strings.HasPrefix(out, "allow") || !strings.Contains(out, "Groups:\t5 6") {
			t.Fatalf("err %v, output %q; want allow and groups 5 6", err, out)
		}
	})
	t.Run("joined, setgroups allowed", func(t *testing.T) {
		pause := startPauseSetgroups(t, true)
		out, err := run(t, fmt.Sprintf("/proc/%d/ns/user", pause), []uint32{5})
		if err != nil || !strings.HasPrefix(out, "allow") || !strings.Contains(out, "Groups:\t5") {
			t.Fatalf("err %v, output %q; want allow and group 5", err, out)
		}
	})
	t.Run("joined, setgroups denied", func(t *testing.T) {
		// Give the daemon (this test) supplementary groups the container
		// must not inherit (setgroups(2) is process-wide in Go).
		old, err := syscall.Getgroups()
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Setgroups([]int{4242, 4243}); err != nil {
			t.Fatal(err)
		}
		defer syscall.Setgroups(old)
		pause := startPauseSetgroups(t, false)
		out, err := run(t, fmt.Sprintf("/proc/%d/ns/user", pause), nil)
		if err != nil || !strings.HasPrefix(out, "deny") || strings.TrimSpace(strings.TrimPrefix(lastLine(out), "Groups:")) != "" {
			t.Fatalf("err %v, output %q; want deny and no groups", err, out)
		}
		_, err = run(t, fmt.Sprintf("/proc/%d/ns/user", pause), []uint32{5})
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "additionalGids") {
			t.Fatalf("err %v; want an invalid argument naming additionalGids", err)
		}
		// containerd lists the process's own gid among additionalGids:
		// that one it has without setgroups.
		if out, err := run(t, fmt.Sprintf("/proc/%d/ns/user", pause), []uint32{0}); err != nil || !strings.HasPrefix(out, "deny") {
			t.Fatalf("own gid as additional gid: err %v, output %q", err, out)
		}
	})
}

// startPauseSetgroups is startPause with a user namespace whose setgroups
// is allowed or denied.
func startPauseSetgroups(t *testing.T, allow bool) int {
	t.Helper()
	cmd := exec.Command("/bin/sleep", "1000")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:                 unix.CLONE_NEWUSER,
		UidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: testHostID, Size: 65536}},
		GidMappings:                []syscall.SysProcIDMap{{ContainerID: 0, HostID: testHostID, Size: 65536}},
		GidMappingsEnableSetgroups: allow,
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd.Process.Pid
}

// TestJoinTimeNamespace joins, by path, the time namespace of a container
// made with a boottime offset of a day: the joining container (held: time
// can only be joined single-threaded) sees the same clock.
func TestJoinTimeNamespace(t *testing.T) {
	testutil.RequiresRoot(t)
	becomeSubreaper(t)
	bundle, spec, _ := testBundle(t, "sleep", "100")
	setNamespace(spec, specs.TimeNamespace, "")
	spec.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 86400}}
	first, _ := createStarted(t, bundle, spec)

	bundle, spec, _ = testBundle(t, "cat", "/proc/uptime")
	setNamespace(spec, specs.TimeNamespace, fmt.Sprintf("/proc/%d/ns/time", first.Pid))
	out, e := runContainer(t, bundle, spec, nil)
	host, err := os.ReadFile("/proc/uptime")
	if err != nil {
		t.Fatal(err)
	}
	if d := uptime(t, out) - uptime(t, string(host)); e.Status != 0 || d < 86400-60 || d > 86400+60 {
		t.Fatalf("exit %d, uptime inside %q, host %q: want a day more", e.Status, out, host)
	}
}
