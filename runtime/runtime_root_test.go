package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestMain turns the test binary into the init stage when the runtime
// re-executes it, as the shim binary's main does.
func TestMain(m *testing.M) {
	if len(os.Args) == 2 && os.Args[1] == "init" {
		goruntime.LockOSThread()
		InitMain()
	}
	if len(os.Args) == 2 && os.Args[1] == "exec" {
		goruntime.LockOSThread()
		reportDumpable()
		ExecMain()
	}
	// The benchmarks measure the production stage binary when given one
	// (make build's _output/bin/containerd-shim-box-v1, built from the same
	// tree); the test binary, with every test dependency to initialise,
	// starts slower.
	if exe := os.Getenv("BOX_STAGE_BINARY"); exe != "" {
		SetStageExecutable(exe)
	}
	os.Exit(m.Run())
}

// testMonitor collects exits of the test's own children.
type testMonitor struct{ mu sync.Mutex }

func (tm *testMonitor) Fork(fork func() (int, error)) (int, <-chan Exit, error) {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan Exit, 1)
	go func() {
		var ws unix.WaitStatus
		for {
			_, err := unix.Wait4(pid, &ws, 0, nil)
			if err != unix.EINTR {
				break
			}
		}
		st := ws.ExitStatus()
		if ws.Signaled() {
			st = 128 + int(ws.Signal())
		}
		ch <- Exit{Status: st, At: time.Now()}
	}()
	return pid, ch, nil
}

// testBundle makes a bundle with a busybox rootfs and containerd's default
// spec, running args.
func testBundle(t testing.TB, args ...string) (bundle string, spec *specs.Spec, cgParent string) {
	t.Helper()
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Fatalf("busybox-static is required (apt-get install busybox-static): %v", err)
	}
	bundle = t.TempDir()
	root := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "ls", "cat", "hostname", "echo", "grep", "readlink", "sleep", "true", "tty", "stty", "env", "id", "cut"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(root, "etc/passwd"), []byte("root:x:0:0:root:/root:/bin/sh\n"), 0o644)

	ctx := namespaces.WithNamespace(context.Background(), "box-test")
	id := fmt.Sprintf("rt-%d", rand.IntN(1<<30))
	cgParent = fmt.Sprintf("/box-test-%d", rand.IntN(1<<30))
	spec, err = coci.GenerateSpec(ctx, nil, &containers.Container{ID: id},
		coci.WithRootFSPath(root),
		coci.WithProcessArgs(args...),
		coci.WithHostname("boxhost"),
		coci.WithCgroup(cgParent+"/"+id),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeCgroupParent(t, cgParent) })
	return bundle, spec, cgParent
}

// cgroupGlob matches pattern (a cgroup path) in every v1 hierarchy, or in
// the unified hierarchy on a cgroup v2 host.
func cgroupGlob(pattern string) []string {
	v1, _ := filepath.Glob("/sys/fs/cgroup/*" + pattern)
	v2, _ := filepath.Glob("/sys/fs/cgroup" + pattern)
	return append(v1, v2...)
}

// removeCgroupParent removes the test's cgroup parent in every hierarchy.
func removeCgroupParent(t testing.TB, parent string) {
	dirs := cgroupGlob(parent)
	for _, d := range dirs {
		subs, _ := filepath.Glob(d + "/*/")
		for _, s := range subs {
			os.Remove(s)
		}
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove %s: %v", d, err)
		}
	}
}

// runContainer creates and starts a container and returns its output and
// exit status.
func runContainer(t *testing.T, bundle string, spec *specs.Spec, beforeStart func(*Container)) (string, Exit) {
	t.Helper()
	return runContainerWith(t, bundle, spec, CreateConfig{}, beforeStart)
}

// runContainerWith is runContainer with CreateConfig's options (ID, Bundle,
// Plan, Stdio and Monitor are filled in).
func runContainerWith(t *testing.T, bundle string, spec *specs.Spec, cfg CreateConfig, beforeStart func(*Container)) (string, Exit) {
	t.Helper()
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ID == "" {
		cfg.ID = "t"
	}
	cfg.Bundle, cfg.Plan, cfg.Stdio, cfg.Monitor = bundle, plan, [3]*os.File{nil, w, w}, &testMonitor{}
	c, err := Create(context.Background(), cfg)
	w.Close()
	if err != nil {
		r.Close()
		t.Fatal(err)
	}
	var out bytes.Buffer
	done := make(chan struct{})
	go func() { io.Copy(&out, r); close(done) }()
	if beforeStart != nil {
		beforeStart(c)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	e := <-c.Exited()
	<-done
	r.Close()
	if err := c.Destroy(); err != nil {
		t.Errorf("destroy: %v", err)
	}
	return out.String(), e
}

// TestCreateStartNamespaces runs a container from the runtime package and
// checks it has its own pid, uts and mount namespaces and its exit status.
func TestCreateStartNamespaces(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, cg := testBundle(t, "sh", "-c", "echo pid=$$; hostname; ls /; grep -c . /proc/self/mountinfo; exit 3")
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 3 {
		t.Fatalf("exit status %d, want 3; output:\n%s", e.Status, out)
	}
	for _, want := range []string{"pid=1\n", "boxhost\n", "bin\n", "proc\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left after Destroy: %v", matches)
	}
}

// TestInitIsSealed checks CVE-2019-5736: the executable of the init stage,
// as a process in the container would reach it through /proc/<pid>/exe, is
// not the on-disk binary and cannot be written.
func TestInitIsSealed(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "true")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	runContainer(t, bundle, spec, func(c *Container) {
		if err := checkSealed(c.Pid, self); err != nil {
			t.Error(err)
		}
		// Negative control: the same check on a process running the
		// on-disk binary (this test) must fail.
		if err := checkSealed(os.Getpid(), self); err == nil {
			t.Error("checkSealed accepted the on-disk binary: the check can't fail")
		}
	})
}

func checkSealed(pid int, onDisk string) error {
	exe := fmt.Sprintf("/proc/%d/exe", pid)
	var a, b unix.Stat_t
	if err := unix.Stat(exe, &a); err != nil {
		return err
	}
	if err := unix.Stat(onDisk, &b); err != nil {
		return err
	}
	if a.Dev == b.Dev && a.Ino == b.Ino {
		return fmt.Errorf("%s is the on-disk binary %s", exe, onDisk)
	}
	f, err := os.OpenFile(exe, os.O_WRONLY, 0)
	if err == nil {
		f.Close()
		return fmt.Errorf("%s opened for writing", exe)
	}
	return nil
}

// TestNoLeakedFds checks CVE-2024-21626: the container's process starts
// with only stdio open, and with a cwd inside the container.
func TestNoLeakedFds(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sh", "-c", "ls /proc/self/fd; readlink /proc/self/cwd")
	spec.Process.Cwd = "/tmp"
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 {
		t.Fatalf("exit %d: %s", e.Status, out)
	}
	// ls opens one fd of its own (3) to read the directory.
	fields := strings.Fields(out)
	if len(fields) != 5 || strings.Join(fields[:4], " ") != "0 1 2 3" || fields[4] != "/tmp" {
		t.Fatalf("unexpected fds or cwd:\n%s", out)
	}
}

// TestCreateFailsCleanly checks that a bad spec fails Create with a clear
// error and leaves no cgroup or process.
func TestCreateFailsCleanly(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, cg := testBundle(t, "/no/such/binary")
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("err = %v, want one naming the missing binary", err)
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left after failed Create: %v", matches)
	}
	if out, _ := exec.Command("sh", "-c", "grep -l "+bundle+" /proc/*/mountinfo 2>/dev/null | head -1").Output(); len(out) != 0 {
		t.Errorf("mounts of the bundle remain")
	}
}

// denyMkdir is a profile that allows everything but mkdir/mkdirat, which
// fail with EACCES.
func denyMkdir() *specs.LinuxSeccomp {
	eacces := uint(unix.EACCES)
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{{
			Names: []string{"mkdir", "mkdirat"}, Action: specs.ActErrno, ErrnoRet: &eacces,
		}},
	}
}

// TestSeccompApplied checks that linux.seccomp reaches the container's
// process, with and without no_new_privs, and containerd's default profile
// runs a shell. Negative control: without the profile mkdir succeeds.
func TestSeccompApplied(t *testing.T) {
	testutil.RequiresRoot(t)
	const script = "mkdir /tmp/d && echo made || echo refused"
	cases := []struct {
		name string
		set  func(*specs.Spec)
		want string
	}{
		{"none", func(s *specs.Spec) {}, "made"},
		{"nnp", func(s *specs.Spec) { s.Linux.Seccomp = denyMkdir(); s.Process.NoNewPrivileges = true }, "refused"},
		{"privileged", func(s *specs.Spec) { s.Linux.Seccomp = denyMkdir(); s.Process.NoNewPrivileges = false }, "refused"},
		{"containerd default", func(s *specs.Spec) { s.Linux.Seccomp = cseccomp.DefaultProfile(s) }, "made"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			bundle, spec, _ := testBundle(t, "sh", "-c", script)
			tc.set(spec)
			out, e := runContainer(t, bundle, spec, nil)
			if e.Status != 0 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output %q, want %q", e.Status, out, tc.want)
			}
		})
	}
}

// TestSeccompBadProfile checks that a bad profile fails Create with an
// InvalidArgument error naming the field, before anything runs.
func TestSeccompBadProfile(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "true")
	spec.Linux.Seccomp = &specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_BOGUS"}
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "linux.seccomp") {
		t.Fatalf("err = %v, want InvalidArgument naming linux.seccomp", err)
	}
}

// TestSessionKeyring checks that the container gets a session keyring of
// its own, and keeps the daemon's with NoNewKeyring (the negative control).
func TestSessionKeyring(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, keep := range []bool{false, true} {
		id := fmt.Sprintf("keys-%d", rand.IntN(1<<30))
		bundle, spec, _ := testBundle(t, "grep", "-c", "_ses."+id, "/proc/keys")
		// containerd's default spec masks /proc/keys.
		spec.Linux.MaskedPaths = slices.DeleteFunc(spec.Linux.MaskedPaths, func(p string) bool { return p == "/proc/keys" })
		out, _ := runContainerWith(t, bundle, spec, CreateConfig{ID: id, NoNewKeyring: keep}, nil)
		got := strings.TrimSpace(out)
		if want := map[bool]string{false: "1", true: "0"}[keep]; got != want {
			t.Errorf("NoNewKeyring=%v: %q keyrings named _ses.%s, want %s", keep, got, id, want)
		}
	}
}

// TestNoPivotRoot checks the runtime option NoPivotRoot: the container runs
// in a moved, chrooted root with its mounts in place.
func TestNoPivotRoot(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sh", "-c", "ls /; echo pid=$$")
	out, e := runContainerWith(t, bundle, spec, CreateConfig{NoPivotRoot: true}, nil)
	if e.Status != 0 || !strings.Contains(out, "pid=1") || !strings.Contains(out, "bin\n") || !strings.Contains(out, "proc\n") {
		t.Fatalf("exit %d, output %q", e.Status, out)
	}
}

// TestUserNamespace runs a container whose root is an unprivileged host
// uid: uid 0 inside, mapped to 100000 outside, with full capabilities only
// inside its own user namespace.
func TestUserNamespace(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sh", "-c", "id -u; cat /proc/self/uid_map; grep CapEff /proc/self/status")
	// The mapped root is host uid 100000: it must be able to reach the
	// rootfs (t.TempDir makes 0700 directories).
	for d := bundle; d != "/tmp" && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// As containerd does for a user-namespaced container without idmapped
	// mounts, the rootfs belongs to the mapped root.
	err := filepath.Walk(filepath.Join(bundle, "rootfs"), func(p string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(p, 100000, 100000)
	})
	if err != nil {
		t.Fatal(err)
	}
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	// Without its own network namespace a userns container cannot mount
	// sysfs; keep this test about user namespaces.
	spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
	var hostUID string
	out, e := runContainer(t, bundle, spec, func(c *Container) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", c.Pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "Uid:") {
				hostUID = strings.Fields(l)[1]
			}
		}
	})
	if e.Status != 0 {
		t.Fatalf("exit %d: %s", e.Status, out)
	}
	f := strings.Fields(out)
	if len(f) < 4 || f[0] != "0" || f[1] != "0" || f[2] != "100000" || f[3] != "65536" {
		t.Fatalf("inside: %q, want uid 0 mapped to 100000", out)
	}
	if hostUID != "100000" {
		t.Fatalf("init runs as host uid %s, want 100000", hostUID)
	}
}

// TestRecursiveReadonlyMount checks "rro": a bind mount and the mounts
// below it are read-only. Negative control: plain "ro" leaves the submount
// writable, which is why "rro" exists.
func TestRecursiveReadonlyMount(t *testing.T) {
	testutil.RequiresRoot(t)
	src := t.TempDir()
	sub := filepath.Join(src, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", sub, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(sub, unix.MNT_DETACH) })
	for opt, want := range map[string]string{"rro": "refused", "ro": "written"} {
		bundle, spec, _ := testBundle(t, "sh", "-c", "touch /vol/sub/f 2>/dev/null && echo written || echo refused")
		spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/vol", Type: "bind", Source: src, Options: []string{"rbind", opt}})
		out, e := runContainer(t, bundle, spec, nil)
		if e.Status != 0 || strings.TrimSpace(out) != want {
			t.Errorf("%s: exit %d, %q, want %q", opt, e.Status, out, want)
		}
	}
}

// TestNoInheritableCaps is the CVE-2022-29162 check: with containerd's
// default spec the container's process has no inheritable and no ambient
// capabilities, so a file-capability binary it execs gains nothing.
// Negative control: asking for inheritable and ambient caps shows them.
func TestNoInheritableCaps(t *testing.T) {
	testutil.RequiresRoot(t)
	read := func(set func(*specs.Spec)) (inh, amb string) {
		bundle, spec, _ := testBundle(t, "grep", "-E", "^Cap(Inh|Amb)", "/proc/self/status")
		set(spec)
		out, e := runContainer(t, bundle, spec, nil)
		if e.Status != 0 {
			t.Fatalf("exit %d: %s", e.Status, out)
		}
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Fields(l); len(f) == 2 {
				switch f[0] {
				case "CapInh:":
					inh = f[1]
				case "CapAmb:":
					amb = f[1]
				}
			}
		}
		return inh, amb
	}
	if inh, amb := read(func(*specs.Spec) {}); inh != "0000000000000000" || amb != "0000000000000000" {
		t.Errorf("default spec: CapInh %s CapAmb %s, want none", inh, amb)
	}
	inh, amb := read(func(s *specs.Spec) {
		s.Process.Capabilities.Inheritable = []string{"CAP_CHOWN"}
		s.Process.Capabilities.Ambient = []string{"CAP_CHOWN"}
	})
	if inh == "0000000000000000" || amb == "0000000000000000" {
		t.Errorf("negative control: CapInh %s CapAmb %s, want CAP_CHOWN in both", inh, amb)
	}
}
