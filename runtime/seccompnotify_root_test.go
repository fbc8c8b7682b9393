package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// seccompNotif and seccompNotifResp are struct seccomp_notif and
// struct seccomp_notif_resp (linux/seccomp.h).
type seccompNotif struct {
	ID    uint64
	Pid   uint32
	Flags uint32
	Nr    int32
	Arch  uint32
	IP    uint64
	Args  [6]uint64
}

type seccompNotifResp struct {
	ID    uint64
	Val   int64
	Error int32
	Flags uint32
}

// testAgent is a seccomp agent: it receives listeners on a unix socket and
// answers every mkdir/mkdirat with success without making the directory,
// and lets anything else continue.
type testAgent struct {
	path   string
	states chan specs.ContainerProcessState
	faked  chan int32 // syscall numbers answered
	done   chan struct{}
}

func startAgent(t *testing.T) *testAgent {
	t.Helper()
	a := &testAgent{
		path:   filepath.Join(t.TempDir(), "agent.sock"),
		states: make(chan specs.ContainerProcessState, 4),
		faked:  make(chan int32, 64),
		done:   make(chan struct{}),
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: a.path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { close(a.done); l.Close() })
	go func() {
		for {
			c, err := l.AcceptUnix()
			if err != nil {
				return
			}
			a.receive(t, c)
		}
	}()
	return a
}

// receive reads the one message of a connection: the state and the
// listener.
func (a *testAgent) receive(t *testing.T, c *net.UnixConn) {
	defer c.Close()
	buf := make([]byte, 64<<10)
	oob := make([]byte, unix.CmsgSpace(4*4))
	n, oobn, _, _, err := c.ReadMsgUnix(buf, oob)
	if err != nil {
		t.Errorf("agent: read: %v", err)
		return
	}
	files, err := receivedFiles(oob[:oobn])
	if err != nil || len(files) != 1 {
		t.Errorf("agent: %d descriptors (%v), want 1", len(files), err)
		closeAll(files)
		return
	}
	var st specs.ContainerProcessState
	if err := json.Unmarshal(buf[:n], &st); err != nil {
		t.Errorf("agent: decode %q: %v", buf[:n], err)
	}
	// The connection carries exactly one state: the runtime closes it.
	if n, err := c.Read(make([]byte, 1)); n != 0 || err == nil {
		t.Errorf("agent: more than one message on a connection (%d, %v)", n, err)
	}
	a.states <- st
	go a.serve(t, files[0])
}

// serve answers the notifications of listener until its processes are gone
// or the test ends.
func (a *testAgent) serve(t *testing.T, listener *os.File) {
	defer listener.Close()
	fd := int(listener.Fd())
	for {
		select {
		case <-a.done:
			return
		default:
		}
		pfd := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		if n, err := unix.Poll(pfd, 100); err != nil || n == 0 {
			continue
		}
		if pfd[0].Revents&unix.POLLIN == 0 {
			return // POLLHUP: no process uses the filter any more
		}
		var req seccompNotif
		if err := ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_RECV, unsafe.Pointer(&req)); err != nil {
			continue // ENOENT: the process went away
		}
		resp := seccompNotifResp{ID: req.ID}
		if req.Nr == unix.SYS_MKDIR || req.Nr == unix.SYS_MKDIRAT {
			a.faked <- req.Nr // success, and nothing made
		} else {
			resp.Flags = unix.SECCOMP_USER_NOTIF_FLAG_CONTINUE
		}
		_ = ioctlPtr(fd, unix.SECCOMP_IOCTL_NOTIF_SEND, unsafe.Pointer(&resp))
	}
}

func ioctlPtr(fd int, req uint, arg unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(req), uintptr(arg))
	if errno != 0 {
		return errno
	}
	return nil
}

// notifyMkdir is a profile that allows everything and sends mkdir and
// mkdirat to the agent at path.
func notifyMkdir(path string) *specs.LinuxSeccomp {
	return &specs.LinuxSeccomp{
		DefaultAction:    specs.ActAllow,
		Architectures:    []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		ListenerPath:     path,
		ListenerMetadata: "box-test-metadata",
		Syscalls:         []specs.LinuxSyscall{{Names: []string{"mkdir", "mkdirat"}, Action: specs.ActNotify}},
	}
}

// mkdirScript says whether mkdir succeeded and whether the directory is
// there ("made absent" is only possible when the agent answered), then
// whether the process holds a seccomp listener (it must not: it could
// answer its own notifications). ls's complaints about the pipe's fds that
// the shell closes meanwhile are dropped.
const mkdirScript = "mkdir /tmp/d 2>/dev/null && echo made || echo failed; test -d /tmp/d && echo exists || echo absent; " +
	"ls -l /proc/$$/fd 2>/dev/null | grep -q 'seccomp notify' && echo leaked || echo clean"

// TestSeccompNotify runs a container whose profile notifies on mkdir, with
// and without no_new_privs (the filter is loaded at two different points),
// and in a user namespace (the daemon takes the listener across it):
// the agent gets the listener and the container process state while the
// container is created, and fakes mkdir's success, which the container
// sees. Negative control: the same profile with ERRNO instead of NOTIFY
// makes mkdir fail, and no profile makes the directory.
func TestSeccompNotify(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name        string
		nnp, userns bool
		flags       []specs.LinuxSeccompFlag
	}{
		{"nnp", true, false, nil},
		{"privileged", false, false, nil},
		{"userns", false, true, nil},
		// Linux 5.19: the listener's process waits killably.
		{"wait killable", true, false, []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv}},
	} {
		name := tc.name
		t.Run(name, func(t *testing.T) {
			a := startAgent(t)
			bundle, spec, _ := testBundle(t, "sh", "-c", mkdirScript)
			spec.Process.NoNewPrivileges = tc.nnp
			if tc.userns {
				inUserNamespace(t, bundle, spec)
			}
			spec.Linux.Seccomp = notifyMkdir(a.path)
			spec.Linux.Seccomp.Flags = tc.flags
			spec.Annotations = map[string]string{"box.test": "notify"}
			var pid int
			out, e := runContainerWith(t, bundle, spec, CreateConfig{ID: "notify-" + name}, func(c *Container) {
				pid = c.Pid
				// Sent during Create; the agent reads it on its own time.
				select {
				case st := <-a.states:
					checkProcessState(t, st, "notify-"+name, bundle, pid, pid, specs.StateCreating)
				case <-time.After(10 * time.Second):
					t.Error("the agent got no listener")
				}
			})
			if e.Status != 0 || strings.TrimSpace(out) != "made\nabsent\nclean" {
				t.Fatalf("exit %d, output %q, want the agent's fake success (made, absent)", e.Status, out)
			}
			select {
			case <-a.faked:
			default:
				t.Error("the agent answered no mkdir")
			}
		})
	}
	t.Run("control", func(t *testing.T) {
		for _, tc := range []struct {
			act  specs.LinuxSeccompAction
			want string
		}{{specs.ActErrno, "failed\nabsent\nclean"}, {"", "made\nexists\nclean"}} {
			bundle, spec, _ := testBundle(t, "sh", "-c", mkdirScript)
			spec.Linux.Seccomp = nil
			if tc.act != "" {
				spec.Linux.Seccomp = notifyMkdir("")
				spec.Linux.Seccomp.ListenerMetadata = ""
				spec.Linux.Seccomp.Syscalls[0].Action = tc.act
			}
			out, e := runContainer(t, bundle, spec, nil)
			if e.Status != 0 || strings.TrimSpace(out) != tc.want {
				t.Fatalf("%q: exit %d, output %q, want %q", tc.act, e.Status, out, tc.want)
			}
		}
	})
}

// inUserNamespace gives spec a user namespace whose root is host uid
// 100000, which owns the rootfs (as TestUserNamespace).
func inUserNamespace(t *testing.T, bundle string, spec *specs.Spec) {
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
		return os.Lchown(p, 100000, 100000)
	})
	if err != nil {
		t.Fatal(err)
	}
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.UserNamespace})
	spec.Linux.UIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Linux.GIDMappings = []specs.LinuxIDMapping{{ContainerID: 0, HostID: 100000, Size: 65536}}
	spec.Mounts = slices.DeleteFunc(spec.Mounts, func(m specs.Mount) bool { return m.Type == "sysfs" || m.Type == "cgroup" })
}

// TestSeccompNotifyExec checks that an exec gets the container's filter and
// its own listener, with the state of a running container, the exec's pid
// and the init's in the state.
func TestSeccompNotifyExec(t *testing.T) {
	testutil.RequiresRoot(t)
	a := startAgent(t)
	bundle, spec, _ := testBundle(t, "sleep", "100")
	spec.Process.NoNewPrivileges = true
	spec.Linux.Seccomp = notifyMkdir(a.path)
	c, mon := createStarted(t, bundle, spec)
	<-a.states // the init's

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	proc, err := c.Exec(context.Background(), ProcessConfig{ID: "e", Spec: execSpec(spec, "sh", "-c", mkdirScript),
		Stdio: [3]*os.File{nil, w, w}, Monitor: mon})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer proc.Close()
	select {
	case st := <-a.states:
		checkProcessState(t, st, "t", bundle, proc.Pid, c.Pid, specs.StateRunning)
	case <-time.After(10 * time.Second):
		t.Fatal("the agent got no listener for the exec")
	}
	out, _ := io.ReadAll(r)
	if e := <-proc.Exited(); e.Status != 0 || strings.TrimSpace(string(out)) != "made\nabsent\nclean" {
		t.Fatalf("exit %d, output %q, want the agent's fake success", e.Status, out)
	}
}

func checkProcessState(t *testing.T, st specs.ContainerProcessState, id, bundle string, pid, initPid int, status specs.ContainerState) {
	t.Helper()
	if st.Version != specs.Version || len(st.Fds) != 1 || st.Fds[0] != specs.SeccompFdName || st.Pid != pid ||
		st.Metadata != "box-test-metadata" {
		t.Errorf("process state %+v, want version %s, fds [%s], pid %d, the metadata", st, specs.Version, specs.SeccompFdName, pid)
	}
	s := st.State
	if s.Version != specs.Version || s.ID != id || s.Status != status || s.Pid != initPid || s.Bundle != bundle {
		t.Errorf("state %+v, want id %s, status %s, pid %d, bundle %s", s, id, status, initPid, bundle)
	}
}

// TestSeccompNotifyBadInput checks the refusals: NOTIFY without a usable
// listenerPath, metadata without a path, NOTIFY as the default or on
// write (runc's rules), all InvalidArgument naming the field before
// anything runs; and an agent that is not there fails Create with an error
// naming listenerPath, leaving no process or cgroup.
func TestSeccompNotifyBadInput(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, tc := range []struct {
		name  string
		set   func(*specs.LinuxSeccomp)
		field string
	}{
		{"no listenerPath", func(s *specs.LinuxSeccomp) { s.ListenerPath, s.ListenerMetadata = "", "" }, "linux.seccomp.listenerPath"},
		{"relative listenerPath", func(s *specs.LinuxSeccomp) { s.ListenerPath = "agent.sock" }, "linux.seccomp.listenerPath"},
		{"metadata without path", func(s *specs.LinuxSeccomp) {
			s.ListenerPath = ""
			s.Syscalls[0].Action = specs.ActAllow
		}, "linux.seccomp.listenerMetadata"},
		{"default NOTIFY", func(s *specs.LinuxSeccomp) { s.DefaultAction = specs.ActNotify }, "linux.seccomp.defaultAction"},
		{"NOTIFY on write", func(s *specs.LinuxSeccomp) { s.Syscalls[0].Names = []string{"write"} }, "linux.seccomp.syscalls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle, spec, cg := testBundle(t, "true")
			spec.Linux.Seccomp = notifyMkdir("/run/box-test-agent.sock")
			tc.set(spec.Linux.Seccomp)
			err := createOnly(t, bundle, spec)
			if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("err = %v, want InvalidArgument naming %s", err, tc.field)
			}
			checkNothingLeft(t, cg)
		})
	}
	for _, nnp := range []bool{true, false} {
		t.Run("agent missing nnp="+strconv.FormatBool(nnp), func(t *testing.T) {
			bundle, spec, cg := testBundle(t, "true")
			spec.Process.NoNewPrivileges = nnp
			missing := filepath.Join(t.TempDir(), "no-agent.sock")
			spec.Linux.Seccomp = notifyMkdir(missing)
			before := children(t)
			err := createOnly(t, bundle, spec)
			if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "linux.seccomp.listenerPath") ||
				!strings.Contains(err.Error(), missing) {
				t.Fatalf("err = %v, want FailedPrecondition naming linux.seccomp.listenerPath and %s", err, missing)
			}
			checkNothingLeft(t, cg)
			if after := children(t); after > before {
				t.Errorf("%d children after the failed Create, %d before", after, before)
			}
		})
	}
}

// createOnly creates the bundle's container and destroys it if that
// succeeded; it returns Create's error.
func createOnly(t *testing.T, bundle string, spec *specs.Spec) error {
	t.Helper()
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		return err
	}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if err == nil {
		c.Signal(unix.SIGKILL)
		<-c.Exited()
		c.Destroy()
		return errors.New("Create succeeded")
	}
	return err
}

func checkNothingLeft(t *testing.T, cg string) {
	t.Helper()
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left after failed Create: %v", matches)
	}
}

// children counts the test process's children.
func children(t *testing.T) int {
	t.Helper()
	tasks, _ := filepath.Glob("/proc/self/task/*/children")
	n := 0
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		n += len(strings.Fields(string(b)))
	}
	return n
}
