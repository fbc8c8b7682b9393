package shim

import (
	"bufio"
	"os"
	goruntime "runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime"
)

// forkSh forks `sh -c script` through r, with stdout on w when it is not nil.
func forkSh(t *testing.T, r *reaper, script string, w *os.File) (int, <-chan runtime.Exit) {
	t.Helper()
	out := uintptr(2)
	if w != nil {
		out = w.Fd()
	}
	pid, exited, err := r.Fork(func() (int, error) {
		return syscall.ForkExec("/bin/sh", []string{"sh", "-c", script},
			&syscall.ProcAttr{Env: []string{"PATH=/usr/bin:/bin"}, Files: []uintptr{0, out, 2}})
	})
	if err != nil {
		t.Fatal(err)
	}
	return pid, exited
}

func waitExit(t *testing.T, exited <-chan runtime.Exit) runtime.Exit {
	t.Helper()
	select {
	case e := <-exited:
		return e
	case <-time.After(10 * time.Second):
		t.Fatal("no exit collected within 10s")
		return runtime.Exit{}
	}
}

// TestReaperCollectsExitsWithoutSIGCHLD checks that the exits of forked
// children arrive, with their status, through their pidfds alone: nothing in
// the reaper listens for SIGCHLD unless orphans are expected.
func TestReaperCollectsExitsWithoutSIGCHLD(t *testing.T) {
	r := newReaper()
	for _, tc := range []struct {
		script string
		want   int
	}{
		{"exit 0", 0},
		{"exit 3", 3},
		{"sleep 0.2; exit 7", 7},
		{"kill -9 $$", 128 + 9},
	} {
		_, exited := forkSh(t, r, tc.script, nil)
		if e := waitExit(t, exited); e.Status != tc.want {
			t.Errorf("%q: status %d, want %d", tc.script, e.Status, tc.want)
		}
	}
	if r.listening.Load() {
		t.Error("the reaper listened for SIGCHLD without orphans to expect")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.waiting) != 0 {
		t.Errorf("still registered after their exits: %v", r.waiting)
	}
}

// TestReaperGrandchildReparented checks the namespace holder's race: the
// registered process is a grandchild that exits while its parent still
// runs, so its pidfd is readable before it is the daemon's child to collect;
// the reaper keeps collecting until the parent has exited and the kernel
// handed the zombie to the daemon, its subreaper.
func TestReaperGrandchildReparented(t *testing.T) {
	// The subreaper attribute is per process; a test binary's other
	// children are not affected (their parent is this process already).
	goruntime.LockOSThread()
	defer goruntime.UnlockOSThread()
	if err := unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	defer unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0) //nolint:errcheck // best effort

	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r := newReaper()
	var parent int
	// sh forks the grandchild (a subshell that exits 5 after 0.5 s: still
	// running when sh execs, so sh cannot have reaped it), reports its pid
	// and execs sleep, which never waits for it: it is the zombie child of
	// sleep for 0.5 s, then is reparented to this process.
	pid, exited, err := r.Fork(func() (int, error) {
		p, err := syscall.ForkExec("/bin/sh", []string{"sh", "-c", "(sleep 0.5; exit 5) & echo $!; exec sleep 1"},
			&syscall.ProcAttr{Env: []string{"PATH=/usr/bin:/bin"}, Files: []uintptr{0, pw.Fd(), 2}})
		pw.Close()
		if err != nil {
			return 0, err
		}
		parent = p
		line, err := bufio.NewReader(pr).ReadString('\n')
		if err != nil {
			return 0, err
		}
		return strconv.Atoi(strings.TrimSpace(line))
	})
	if err != nil {
		t.Fatal(err)
	}
	if pid == parent {
		t.Fatal("the grandchild's pid is its parent's")
	}
	if e := waitExit(t, exited); e.Status != 5 {
		t.Errorf("grandchild status %d, want 5", e.Status)
	}
	var ws unix.WaitStatus
	if _, err := unix.Wait4(parent, &ws, 0, nil); err != nil && err != unix.ECHILD {
		t.Errorf("wait for the grandchild's parent %d: %v", parent, err)
	}
}

// TestInDaemonPidNS checks which containers can leave orphans to the
// daemon: those in its own pid namespace.
func TestInDaemonPidNS(t *testing.T) {
	if inDaemonPidNS(&oci.Plan{CloneFlags: unix.CLONE_NEWPID | unix.CLONE_NEWNS}) {
		t.Error("a new pid namespace counted as the daemon's")
	}
	if !inDaemonPidNS(&oci.Plan{CloneFlags: unix.CLONE_NEWNS}) {
		t.Error("no pid namespace in the spec: not counted as the daemon's")
	}
	self := oci.NamespaceJoin{Type: "pid", Path: "/proc/self/ns/pid", Flag: unix.CLONE_NEWPID}
	if !inDaemonPidNS(&oci.Plan{Join: []oci.NamespaceJoin{self}}) {
		t.Error("joining the daemon's own pid namespace by path: not counted as the daemon's")
	}
	missing := oci.NamespaceJoin{Type: "pid", Path: "/nonexistent/ns/pid", Flag: unix.CLONE_NEWPID}
	if !inDaemonPidNS(&oci.Plan{Join: []oci.NamespaceJoin{missing}}) {
		t.Error("an unreadable pid namespace path must count as the daemon's (reap to be safe)")
	}
}

// TestInDaemonPidNSJoinOther joins a pid namespace that is not the daemon's:
// that of a sleep started in a new one.
func TestInDaemonPidNSJoinOther(t *testing.T) {
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
	other := oci.NamespaceJoin{Type: "pid", Path: "/proc/" + strconv.Itoa(pid) + "/ns/pid", Flag: unix.CLONE_NEWPID}
	if inDaemonPidNS(&oci.Plan{Join: []oci.NamespaceJoin{other}}) {
		t.Error("another pid namespace counted as the daemon's")
	}
}
