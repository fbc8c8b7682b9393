package runtime

// SCMP_ACT_NOTIFY: forwarding a process's seccomp listener to the seccomp
// agent at linux.seccomp.listenerPath (runtime-spec config-linux.md
// "seccomp", runtime.md's container process state).
//
// The stage loads the filter before it reports ready and at once writes the
// listener's fd number on its sync socket (process.PrepareNotify). The
// daemon copies the fd out of the stage with pidfd_getfd, as runc does
// (so only write(2) must not be notified, which the compiler refuses, and
// the stage never waits for the daemon), connects to listenerPath (a unix
// stream socket), sends one datagram: the JSON specs.ContainerProcessState
// with the fd as SCM_RIGHTS, closes the connection and its copy, and then
// waits for the stage's "ready". A failure fails Create (or Exec) naming
// linux.seccomp.listenerPath; the rollback kills the stage.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime/seccomp"
)

// agentTimeout bounds connecting and writing to the seccomp agent, so an
// agent that accepts nothing cannot hold Create forever.
const agentTimeout = 10 * time.Second

// notifyTarget is where a container's seccomp listeners go: set only when
// its filter has NOTIFY rules.
type notifyTarget struct {
	path     string // linux.seccomp.listenerPath, absolute (checked by process.CompileSeccomp)
	metadata string // linux.seccomp.listenerMetadata
}

// notifyTargetOf returns the target of s when filter needs a listener, else
// nil.
func notifyTargetOf(s *specs.LinuxSeccomp, filter *seccomp.Program) *notifyTarget {
	if s == nil || filter == nil || !filter.NeedsListener {
		return nil
	}
	return &notifyTarget{path: s.ListenerPath, metadata: s.ListenerMetadata}
}

// Stage side.

// listenerSender returns what process.PrepareNotify calls with the listener:
// it writes the fd's number to the daemon. The fd stays open in the stage
// (close-on-exec, gone at execve) so that the daemon can copy it.
func listenerSender(conn *syncConn) func(fd int) error {
	return func(fd int) error {
		return conn.send(message{Type: msgSeccompListener, ListenerFD: fd})
	}
}

// Daemon side.

// awaitListener receives the stage's seccomp listener and hands it to the
// agent, when c's filter has NOTIFY rules (else it does nothing). pidfd and
// pid are the stage's; status is the container's status for the state.
//
// Preconditions: the stage's config was sent, and before this point the
// stage sends nothing but what the caller has already read.
func (c *Container) awaitListener(ctx context.Context, conn *syncConn, pidfd, pid int, status specs.ContainerState) error {
	if c.notify == nil {
		return nil
	}
	m, err := conn.recv()
	switch {
	case errors.Is(err, errEOF):
		// Create and Exec report the stage's exit.
		return fmt.Errorf("pid %d: stage exited during setup: %w", pid, err)
	case err != nil:
		return fmt.Errorf("read the seccomp listener from pid %d: %w", pid, err)
	case m.Type == msgError:
		return remoteError(m)
	case m.Type != msgSeccompListener:
		return fmt.Errorf("unexpected %q from pid %d, want %q", m.Type, pid, msgSeccompListener)
	}
	listener, err := takeListener(pidfd, m.ListenerFD)
	if err != nil {
		return err
	}
	defer listener.Close()
	state := &specs.ContainerProcessState{
		Version:  specs.Version,
		Fds:      []string{specs.SeccompFdName},
		Pid:      pid,
		Metadata: c.notify.metadata,
		State:    *c.hookState(status, c.Pid),
	}
	return sendToAgent(ctx, c.notify.path, state, listener)
}

// takeListener copies fd out of the process of pidfd and checks that it is
// a seccomp listener: nothing else of the stage may reach the agent.
func takeListener(pidfd, fd int) (*os.File, error) {
	if fd < 3 {
		return nil, fmt.Errorf("seccomp listener: bad descriptor number %d from the stage", fd)
	}
	own, err := unix.PidfdGetfd(pidfd, fd, 0) // close-on-exec
	if err != nil {
		return nil, fmt.Errorf("seccomp listener: pidfd_getfd %d: %w", fd, err)
	}
	f := os.NewFile(uintptr(own), "seccomp-listener")
	if what, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(own)); err != nil || what != "anon_inode:seccomp notify" {
		f.Close()
		return nil, fmt.Errorf("seccomp listener: descriptor %d of the stage is %q, not a seccomp listener (%v)", fd, what, err)
	}
	return f, nil
}

// sendToAgent connects to path, sends state with listener as SCM_RIGHTS in
// one message, and closes the connection, as the runtime-spec asks ("exactly
// one container process state per connection"). Errors name
// linux.seccomp.listenerPath; an agent that is not there is
// errdefs.ErrFailedPrecondition.
func sendToAgent(ctx context.Context, path string, state *specs.ContainerProcessState, listener *os.File) error {
	b, err := json.Marshal(state)
	if err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath: encode the container process state: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, agentTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %q: connect to the seccomp agent: %w: %w", path, err, errdefs.ErrFailedPrecondition)
	}
	defer nc.Close()
	conn := nc.(*net.UnixConn)
	deadline, _ := ctx.Deadline()
	if err := conn.SetWriteDeadline(deadline); err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %q: %w", path, err)
	}
	n, _, err := conn.WriteMsgUnix(b, unix.UnixRights(int(listener.Fd())), nil)
	if err == nil && n != len(b) {
		err = fmt.Errorf("short write: %d of %d bytes", n, len(b))
	}
	if err != nil {
		return fmt.Errorf("linux.seccomp.listenerPath %q: send the listener to the seccomp agent: %w: %w", path, err, errdefs.ErrFailedPrecondition)
	}
	return nil
}
