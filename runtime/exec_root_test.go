package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	// Links the exec stage's constructor into the test binary (the runtime
	// package imports it too; this says why it must be there).
	_ "github.com/boxrt/containerd-shim-box-v1/runtime/nsenter"
)

// reportDumpable is the exec stage's test hook: it prints the stage's
// dumpable flag, as the constructor left it, to stderr when asked.
func reportDumpable() {
	if os.Getenv("BOX_TEST_REPORT_DUMPABLE") == "" {
		return
	}
	d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0)
	fmt.Fprintf(os.Stderr, "box-test-dumpable=%d err=%v\n", d, err)
}

// startContainer creates and starts a container running args and removes
// it when the test ends.
func startContainer(t testing.TB, args ...string) (*Container, *specs.Spec, Monitor) {
	t.Helper()
	bundle, spec, _ := testBundle(t, args...)
	c, mon := createStarted(t, bundle, spec)
	return c, spec, mon
}

// createStarted creates and starts the bundle's container and removes it
// when the test ends.
func createStarted(t testing.TB, bundle string, spec *specs.Spec) (*Container, Monitor) {
	t.Helper()
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	mon := &testMonitor{}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.SignalAll(unix.SIGKILL); err != nil {
			t.Logf("kill: %v", err)
		}
		<-c.Exited()
		if err := c.Destroy(); err != nil {
			t.Errorf("destroy: %v", err)
		}
	})
	return c, mon
}

// execSpec is the container's process spec running args.
func execSpec(spec *specs.Spec, args ...string) *specs.Process {
	p := *spec.Process
	p.Args = args
	return &p
}

// execInto execs p into c and returns its combined output and exit.
func execInto(t *testing.T, c *Container, mon Monitor, p *specs.Process) (string, Exit, error) {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	proc, err := c.Exec(context.Background(), ProcessConfig{ID: "e", Spec: p, Stdio: [3]*os.File{nil, w, w}, Monitor: mon})
	w.Close()
	if err != nil {
		return "", Exit{}, err
	}
	defer proc.Close()
	var out bytes.Buffer
	io.Copy(&out, r)
	return out.String(), <-proc.Exited(), nil
}

// TestExecNamespacesCgroupEnv checks an exec'd process is in every
// namespace and the cgroup of the init, with the spec's environment only;
// also for a container with its own cgroup and time namespaces.
func TestExecNamespacesCgroupEnv(t *testing.T) {
	testutil.RequiresRoot(t)
	t.Run("default", func(t *testing.T) { testExecNamespaces(t, nil) })
	t.Run("cgroup+time", func(t *testing.T) {
		testExecNamespaces(t, []specs.LinuxNamespaceType{specs.CgroupNamespace, specs.TimeNamespace})
	})
}

func testExecNamespaces(t *testing.T, extra []specs.LinuxNamespaceType) {
	bundle, spec, _ := testBundle(t, "sleep", "100")
	for _, ns := range extra {
		spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: ns})
	}
	c, mon := createStarted(t, bundle, spec)
	for _, ns := range extra {
		// So that the test shows a join, not two processes left in ours.
		name := map[specs.LinuxNamespaceType]string{specs.CgroupNamespace: "cgroup", specs.TimeNamespace: "time"}[ns]
		own, _ := os.Readlink("/proc/self/ns/" + name)
		initNS, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", c.Pid, name))
		if own == initNS {
			t.Fatalf("init shares the test's %s namespace %s", name, own)
		}
	}
	script := `echo pid=$$; for n in pid mnt net uts ipc cgroup user time; do echo $n=$(readlink /proc/self/ns/$n); done
echo self=$(cat /proc/self/cgroup | tr '\n' ' '); echo init=$(cat /proc/1/cgroup | tr '\n' ' '); env`
	ps := execSpec(spec, "sh", "-c", script)
	ps.Env = []string{"PATH=/bin", "FOO=bar"}
	out, e, err := execInto(t, c, mon, ps)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != 0 {
		t.Fatalf("exit %d:\n%s", e.Status, out)
	}
	lines := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			lines[k] = v
		}
	}
	for _, ns := range []string{"pid", "mnt", "net", "uts", "ipc", "cgroup", "user", "time"} {
		want, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", c.Pid, ns))
		if err != nil {
			t.Fatal(err)
		}
		if lines[ns] != want {
			t.Errorf("%s namespace %q, init's is %q", ns, lines[ns], want)
		}
	}
	if lines["pid"] == "" || lines["pid"] == "1" || lines["pid"] == fmt.Sprint(c.Pid) {
		t.Errorf("pid in container %q: want a small pid other than 1", lines["pid"])
	}
	if lines["self"] == "" || lines["self"] != lines["init"] {
		t.Errorf("cgroup %q, init's %q", lines["self"], lines["init"])
	}
	if got := lines["FOO"] + "|" + lines["PATH"] + "|" + lines["HOME"]; got != "bar|/bin|/root" {
		t.Errorf("env FOO|PATH|HOME = %q", got)
	}
	for _, bad := range []string{nsenterEnv, "GOMAXPROCS"} {
		if _, ok := lines[bad]; ok {
			t.Errorf("exec'd process has %s in its environment:\n%s", bad, out)
		}
	}
}

// TestExecUserCaps checks the exec'd process gets the spec's user and
// capabilities, not the daemon's.
func TestExecUserCaps(t *testing.T) {
	testutil.RequiresRoot(t)
	c, spec, mon := startContainer(t, "sleep", "100")
	ps := execSpec(spec, "grep", "-E", "^(Uid|Gid|CapInh|CapPrm|CapEff|CapBnd|CapAmb|NoNewPrivs):", "/proc/self/status")
	ps.User = specs.User{UID: 1000, GID: 1000}
	caps := []string{"CAP_NET_BIND_SERVICE"}
	// A non-root execve keeps only ambient capabilities.
	ps.Capabilities = &specs.LinuxCapabilities{Bounding: caps, Effective: caps, Permitted: caps, Inheritable: caps, Ambient: caps}
	ps.NoNewPrivileges = true
	out, e, err := execInto(t, c, mon, ps)
	if err != nil {
		t.Fatal(err)
	}
	if e.Status != 0 {
		t.Fatalf("exit %d:\n%s", e.Status, out)
	}
	got := strings.Join(strings.Fields(out), " ")
	want := "Uid: 1000 1000 1000 1000 Gid: 1000 1000 1000 1000 CapInh: 0000000000000400 CapPrm: 0000000000000400 " +
		"CapEff: 0000000000000400 CapBnd: 0000000000000400 CapAmb: 0000000000000400 NoNewPrivs: 1"
	if got != want {
		t.Errorf("status:\n%s\nwant:\n%s", got, want)
	}
}

// TestExecErrors checks a missing program is NotFound and a bad cwd
// InvalidArgument, and that neither harms the container.
func TestExecErrors(t *testing.T) {
	testutil.RequiresRoot(t)
	c, spec, mon := startContainer(t, "sleep", "100")
	pidsBefore, err := c.Pids()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		edit func(*specs.Process)
		want error
	}{
		{"missing binary", func(p *specs.Process) { p.Args = []string{"/no/such/binary"} }, errdefs.ErrNotFound},
		{"missing in PATH", func(p *specs.Process) { p.Args = []string{"nosuchprogram"} }, errdefs.ErrNotFound},
		{"nonexistent cwd", func(p *specs.Process) { p.Cwd = "/nonexistent" }, errdefs.ErrInvalidArgument},
		{"relative cwd", func(p *specs.Process) { p.Cwd = "../.." }, errdefs.ErrInvalidArgument},
		{"cwd is a file", func(p *specs.Process) { p.Cwd = "/etc/passwd" }, errdefs.ErrInvalidArgument},
		{"no args", func(p *specs.Process) { p.Args = nil }, errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ps := execSpec(spec, "true")
			tc.edit(ps)
			_, _, err := execInto(t, c, mon, ps)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			t.Logf("error: %v", err)
		})
	}
	if err := c.checkRunning(); err != nil {
		t.Fatalf("init after failed execs: %v", err)
	}
	pids, err := c.Pids()
	if err != nil || len(pids) != len(pidsBefore) {
		t.Errorf("pids after failed execs %v (%v), before %v", pids, err, pidsBefore)
	}
	if out, e, err := execInto(t, c, mon, execSpec(spec, "echo", "still", "here")); err != nil || e.Status != 0 || out != "still here\n" {
		t.Errorf("exec after failures: %q %v %v", out, e, err)
	}
}

// TestExecNonDumpable checks CVE-2016-9962: the exec stage is not dumpable
// from before the Go runtime starts, with a negative control that skips the
// constructor's prctl.
func TestExecNonDumpable(t *testing.T) {
	testutil.RequiresRoot(t)
	c, spec, mon := startContainer(t, "sleep", "100")
	testStageEnv = []string{"BOX_TEST_REPORT_DUMPABLE=1"}
	defer func() { testStageEnv, keepDumpable = nil, false }()
	for _, tc := range []struct {
		keep bool
		want string
	}{{false, "box-test-dumpable=0 "}, {true, "box-test-dumpable=1 "}} {
		keepDumpable = tc.keep
		out, _, err := execInto(t, c, mon, execSpec(spec, "true"))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, tc.want) {
			t.Errorf("keep-dumpable=%t: stage reported %q, want %q", tc.keep, out, tc.want)
		}
	}
}

// TestExecAfterInitExit checks an exec into a container whose init has
// exited fails with FailedPrecondition, before and after Destroy.
func TestExecAfterInitExit(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "true")
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	mon := &testMonitor{}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	<-c.Exited()
	_, _, err = execInto(t, c, mon, execSpec(spec, "true"))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exec after exit: %v, want FailedPrecondition", err)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	_, _, err = execInto(t, c, mon, execSpec(spec, "true"))
	if !errors.Is(err, errdefs.ErrFailedPrecondition) {
		t.Errorf("exec after destroy: %v, want FailedPrecondition", err)
	}
}

// TestProcessSignal checks Signal reaches an exec'd process and reports
// NotFound once it has exited.
func TestProcessSignal(t *testing.T) {
	testutil.RequiresRoot(t)
	c, spec, mon := startContainer(t, "sleep", "100")
	proc, err := c.Exec(context.Background(), ProcessConfig{ID: "e", Spec: execSpec(spec, "sleep", "100"), Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	if err := proc.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if e := <-proc.Exited(); e.Status != 128+int(syscall.SIGTERM) {
		t.Errorf("exit %d, want %d", e.Status, 128+int(syscall.SIGTERM))
	}
	if err := proc.Signal(syscall.SIGTERM); !errors.Is(err, errdefs.ErrNotFound) {
		t.Errorf("signal after exit: %v, want NotFound", err)
	}
}

// TestRestorePidNS checks what lets the exec path give its thread back to the Go runtime:
// after joining another pid namespace for its children, the thread's children start in its
// own pid namespace again, as verified by the namespace files.
func TestRestorePidNS(t *testing.T) {
	testutil.RequiresRoot(t)
	pid, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "60"},
		&syscall.ProcAttr{Sys: &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWPID}})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = unix.Kill(pid, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(pid, &ws, 0, nil)
	}()
	done := make(chan error, 1)
	go func() {
		goruntime.LockOSThread() // never unlocked: the thread dies with the goroutine
		other, err := unix.Open(fmt.Sprintf("/proc/%d/ns/pid", pid), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(other)
		if err := unix.Setns(other, unix.CLONE_NEWPID); err != nil {
			done <- fmt.Errorf("join: %w", err)
			return
		}
		var a, b unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/pid_for_children", &a); err != nil {
			done <- err
			return
		}
		if err := unix.Fstat(other, &b); err != nil || a.Ino != b.Ino {
			done <- fmt.Errorf("pid_for_children %d is not the joined namespace %d (%v)", a.Ino, b.Ino, err)
			return
		}
		if err := restorePidNS(); err != nil {
			done <- fmt.Errorf("restorePidNS: %w", err)
			return
		}
		// A child forked now is in the test's own pid namespace.
		child, err := syscall.ForkExec("/bin/sleep", []string{"sleep", "60"}, &syscall.ProcAttr{})
		if err != nil {
			done <- err
			return
		}
		var own, its unix.Stat_t
		err1 := unix.Stat("/proc/self/ns/pid", &own)
		err2 := unix.Stat(fmt.Sprintf("/proc/%d/ns/pid", child), &its)
		_ = unix.Kill(child, unix.SIGKILL)
		var ws unix.WaitStatus
		_, _ = unix.Wait4(child, &ws, 0, nil)
		if err := errors.Join(err1, err2); err != nil {
			done <- err
			return
		}
		if own.Ino != its.Ino {
			done <- fmt.Errorf("a child forked after restorePidNS is in pid namespace %d, not the test's %d", its.Ino, own.Ino)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
