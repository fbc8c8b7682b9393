package seccomp

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"

	cseccomp "github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The root tests re-exec the test binary. The child (see child) loads the
// profile from $childProfileEnv on its locked thread and execs its argv.
const (
	childModeEnv    = "BOX_SECCOMP_TEST_CHILD" // "load", or "skip" for a negative control
	childProfileEnv = "BOX_SECCOMP_TEST_PROFILE"
	busybox         = "/usr/bin/busybox"
	childExecFailed = 126
)

func TestMain(m *testing.M) {
	if mode := os.Getenv(childModeEnv); mode != "" {
		os.Exit(child(mode, os.Args[1:]))
	}
	os.Exit(m.Run())
}

// child compiles the profile, sets no_new_privs, loads the filter (unless
// mode is "skip") and execs argv. It reports the listener fd, if any, as
// "listener: <target of /proc/self/fd/N>" on stderr.
func child(mode string, argv []string) int {
	goruntime.LockOSThread()
	var s specs.LinuxSeccomp
	if err := json.Unmarshal([]byte(os.Getenv(childProfileEnv)), &s); err != nil {
		fmt.Fprintln(os.Stderr, "child: profile:", err)
		return childExecFailed
	}
	p, err := Compile(&s)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: compile:", err)
		return childExecFailed
	}
	env := os.Environ()
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		fmt.Fprintln(os.Stderr, "child: no_new_privs:", err)
		return childExecFailed
	}
	if mode == "load" {
		fd, err := Load(p)
		if err != nil {
			fmt.Fprintln(os.Stderr, "child: load:", err)
			return childExecFailed
		}
		if p.NeedsListener {
			target, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
			fmt.Fprintf(os.Stderr, "listener: %s %v\n", target, err)
		}
	}
	err = syscall.Exec(argv[0], argv, env)
	fmt.Fprintln(os.Stderr, "child: exec:", err)
	return childExecFailed
}

// runChild runs argv under s in a re-exec'd child and returns its combined
// output and exit error.
func runChild(t *testing.T, s *specs.LinuxSeccomp, load bool, argv ...string) (string, error) {
	t.Helper()
	js, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	mode := "load"
	if !load {
		mode = "skip"
	}
	cmd := exec.Command(os.Args[0], argv...)
	cmd.Env = append(os.Environ(), childModeEnv+"="+mode, childProfileEnv+"="+string(js))
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func requireBusybox(t *testing.T) {
	t.Helper()
	testutil.RequiresRoot(t)
	if _, err := os.Stat(busybox); err != nil {
		t.Skipf("needs a static busybox (apt-get install busybox-static): %v", err)
	}
}

func exitSignal(err error) syscall.Signal {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return ws.Signal()
		}
	}
	return 0
}

// A rule with errnoRet EACCES makes mkdir fail with "Permission denied"; without Load it succeeds.
func TestRootErrnoRet(t *testing.T) {
	requireBusybox(t)
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		withErrno(sys(specs.ActErrno, "mkdir", "mkdirat"), uint(unix.EACCES))}}
	dir := filepath.Join(t.TempDir(), "d")

	out, err := runChild(t, s, true, busybox, "mkdir", dir)
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Errorf("with filter: err %v, output %q; want Permission denied", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("with filter: %s exists (%v)", dir, err)
	}

	out, err = runChild(t, s, false, busybox, "mkdir", dir) // negative control
	if err != nil {
		t.Fatalf("without filter: %v: %s", err, out)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("without filter: %v", err)
	}
}

// goRuntimeSyscalls are what the Go runtime may call on the child's thread between Load and execve.
var goRuntimeSyscalls = []string{"futex", "rt_sigreturn", "rt_sigprocmask", "rt_sigaction", "sigaltstack",
	"sched_yield", "nanosleep", "mmap", "munmap", "madvise", "getpid", "gettid", "tgkill", "exit", "exit_group"}

// busyboxTrueSyscalls is what a static busybox needs to run "true" (from strace).
var busyboxTrueSyscalls = []string{"execve", "arch_prctl", "brk", "getrandom", "getuid", "mprotect", "prctl",
	"prlimit64", "readlink", "rseq", "set_robust_list", "set_tid_address", "exit_group"}

// A default-ERRNO allow-list lets busybox true run; without execve in it, exec fails with EPERM.
func TestRootMinimalAllowList(t *testing.T) {
	requireBusybox(t)
	allow := func(names []string) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Syscalls: []specs.LinuxSyscall{
			sys(specs.ActAllow, append(names, goRuntimeSyscalls...)...)}}
	}
	if out, err := runChild(t, allow(busyboxTrueSyscalls), true, busybox, "true"); err != nil {
		t.Fatalf("busybox true: %v: %s", err, out)
	}
	// The checks below add write to see the error messages.
	withWrite := append([]string{"write"}, busyboxTrueSyscalls...)
	// mkdir is not in the list.
	dir := filepath.Join(t.TempDir(), "d")
	if out, err := runChild(t, allow(withWrite), true, busybox, "mkdir", dir); err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("mkdir: err %v, output %q; want Operation not permitted", err, out)
	}
	// Negative control: the same list minus execve.
	var noExec []string
	for _, n := range withWrite {
		if n != "execve" {
			noExec = append(noExec, n)
		}
	}
	out, err := runChild(t, allow(noExec), true, busybox, "true")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != childExecFailed || !strings.Contains(out, "operation not permitted") {
		t.Errorf("without execve: err %v, output %q; want exec to fail with EPERM", err, out)
	}
}

// containerd's default profile runs a shell, but refuses unshare(CLONE_NEWNS), which succeeds without it.
func TestRootContainerdDefaultProfile(t *testing.T) {
	requireBusybox(t)
	s := cseccomp.DefaultProfile(specWithCaps(defaultCaps...))
	out, err := runChild(t, s, true, busybox, "sh", "-c", "echo ok; ls /")
	if err != nil || !strings.HasPrefix(out, "ok\n") || !strings.Contains(out, "proc") {
		t.Fatalf("sh: err %v, output %q", err, out)
	}
	out, err = runChild(t, s, true, busybox, "unshare", "-m", "true")
	if err == nil || !strings.Contains(out, "Operation not permitted") {
		t.Errorf("unshare with filter: err %v, output %q; want Operation not permitted", err, out)
	}
	if out, err := runChild(t, s, false, busybox, "unshare", "-m", "true"); err != nil { // negative control
		t.Errorf("unshare without filter: %v: %s", err, out)
	}
}

// KILL_PROCESS kills the caller with SIGSYS; without Load the call succeeds.
func TestRootKillProcess(t *testing.T) {
	requireBusybox(t)
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		sys(specs.ActKillProcess, "mkdir", "mkdirat")}}
	dir := filepath.Join(t.TempDir(), "d")
	out, err := runChild(t, s, true, busybox, "mkdir", dir)
	if sig := exitSignal(err); sig != unix.SIGSYS {
		t.Errorf("with filter: err %v (signal %v), output %q; want SIGSYS", err, sig, out)
	}
	if out, err := runChild(t, s, false, busybox, "mkdir", dir); err != nil { // negative control
		t.Errorf("without filter: %v: %s", err, out)
	}
}

// A NOTIFY rule makes Load return a seccomp listener fd.
func TestRootListener(t *testing.T) {
	requireBusybox(t)
	s := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Flags:    []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv},
		Syscalls: []specs.LinuxSyscall{sys(specs.ActNotify, "mkdir", "mkdirat")}}
	out, err := runChild(t, s, true, busybox, "true")
	if err != nil || !strings.Contains(out, "listener: anon_inode:seccomp notify <nil>") {
		t.Errorf("err %v, output %q", err, out)
	}
}

// Load refuses a filter the kernel rejects with ErrInvalidArgument; an empty program never reaches the kernel.
func TestLoadInvalid(t *testing.T) {
	if _, err := Load(&Program{}); err == nil {
		t.Error("empty program loaded")
	}
}
