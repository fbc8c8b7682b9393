package shim

import (
	"context"
	"fmt"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime"
)

// execProcess is an additional process of a container (an exec id). Its
// mutable fields are guarded by its container's mu.
type execProcess struct {
	id       string
	spec     *specs.Process
	stdin    string
	stdout   string
	stderr   string
	terminal bool

	status Status           // guarded by container.mu
	rt     *runtime.Process // guarded by container.mu; set once started
	io     *stdio           // guarded by container.mu; set once started
	exit   *runtime.Exit    // guarded by container.mu
	exited chan struct{}    // closed when exit is set
}

// Exec registers a process to run in the container; Start runs it.
func (s *service) Exec(ctx context.Context, r *taskAPI.ExecProcessRequest) (*ptypes.Empty, error) {
	if err := s.exec(ctx, r); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &ptypes.Empty{}, nil
}

func (s *service) exec(ctx context.Context, r *taskAPI.ExecProcessRequest) error {
	c, err := s.get(r.ID)
	if err != nil {
		return err
	}
	if r.ExecID == "" {
		return fmt.Errorf("exec in %s: exec id is required: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	if r.Spec == nil {
		return fmt.Errorf("exec %s in %s: process spec is required: %w", r.ExecID, r.ID, errdefs.ErrInvalidArgument)
	}
	v, err := typeurl.UnmarshalAny(r.Spec)
	if err != nil {
		return fmt.Errorf("exec %s in %s: decode process spec: %v: %w", r.ExecID, r.ID, err, errdefs.ErrInvalidArgument)
	}
	spec, ok := v.(*specs.Process)
	if !ok {
		return fmt.Errorf("exec %s in %s: spec is %T, not a process: %w", r.ExecID, r.ID, v, errdefs.ErrInvalidArgument)
	}
	spec.Terminal = r.Terminal
	if _, err := oci.NewProcessPlan(spec); err != nil {
		return fmt.Errorf("exec %s in %s: %w", r.ExecID, r.ID, err)
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.exit != nil || c.status == Stopped || c.status == Deleted:
		return fmt.Errorf("exec %s in %s: container is stopped: %w", r.ExecID, r.ID, errdefs.ErrFailedPrecondition)
	case c.status == Paused:
		return fmt.Errorf("exec %s in %s: container is paused: %w", r.ExecID, r.ID, errdefs.ErrFailedPrecondition)
	}
	if _, ok := c.execs[r.ExecID]; ok {
		return fmt.Errorf("exec %s in %s: %w", r.ExecID, r.ID, errdefs.ErrAlreadyExists)
	}
	c.execs[r.ExecID] = &execProcess{
		id: r.ExecID, spec: spec, terminal: r.Terminal,
		stdin: r.Stdin, stdout: r.Stdout, stderr: r.Stderr,
		status: Created, exited: make(chan struct{}),
	}
	s.events.send(c.namespace, cruntime.TaskExecAddedEventTopic, &eventstypes.TaskExecAdded{ContainerID: c.id, ExecID: r.ExecID})
	return nil
}

// getExec returns the exec id of c.
//
// Preconditions: c.mu is held.
func (c *container) getExec(id string) (*execProcess, error) {
	e, ok := c.execs[id]
	if !ok {
		return nil, fmt.Errorf("exec %q in container %q: %w", id, c.id, errdefs.ErrNotFound)
	}
	return e, nil
}

// startExec runs a registered exec. The container counts it as running
// from before it is started until its exit is published, so the init's
// TaskExit always comes after it.
func (s *service) startExec(ctx context.Context, c *container, execID string) (uint32, error) {
	c.mu.Lock()
	e, err := c.getExec(execID)
	if err == nil && e.status != Created {
		err = fmt.Errorf("start exec %s: process is %s: %w", execID, e.status, errdefs.ErrFailedPrecondition)
	}
	if err == nil && (c.exit != nil || c.status != Running) {
		err = fmt.Errorf("start exec %s: container %s is %s: %w", execID, c.id, c.status, errdefs.ErrFailedPrecondition)
	}
	if err != nil {
		c.mu.Unlock()
		return 0, err
	}
	e.status = Running // reserved: a second Start fails
	c.runningExecs++
	c.mu.Unlock()

	p, io, err := s.runExec(ctx, c, e)

	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		e.status = Created
		c.runningExecs--
		c.execsDone.Broadcast()
		return 0, fmt.Errorf("start exec %s in %s: %w", execID, c.id, err)
	}
	e.rt, e.io = p, io
	s.events.send(c.namespace, cruntime.TaskExecStartedEventTopic, &eventstypes.TaskExecStarted{ContainerID: c.id, ExecID: execID, Pid: uint32(p.Pid)})
	go s.watchExecExit(c, e)
	return uint32(p.Pid), nil
}

func (s *service) runExec(ctx context.Context, c *container, e *execProcess) (*runtime.Process, *stdio, error) {
	// Like the runc shim, a logger of an exec sees the exec id as
	// CONTAINER_ID.
	io, err := openStdio(ctx, stdioConfig{
		ID: e.id, Namespace: c.namespace,
		Stdin: e.stdin, Stdout: e.stdout, Stderr: e.stderr, Terminal: e.terminal,
		UID: c.ioUID, GID: c.ioGID, Monitor: s.reaper,
	})
	if err != nil {
		return nil, nil, err
	}
	p, err := c.rt.Exec(ctx, runtime.ProcessConfig{ID: e.id, Spec: e.spec, Stdio: io.files, Monitor: s.reaper})
	io.closeChild()
	if err != nil {
		io.close()
		return nil, nil, err
	}
	if p.Console != nil {
		if err := io.attachConsole(p.Console); err != nil {
			_ = p.Signal(9)
			<-p.Exited()
			p.Close()
			io.close()
			return nil, nil, err
		}
	}
	return p, io, nil
}

// watchExecExit publishes an exec's exit and releases the init's exit.
func (s *service) watchExecExit(c *container, e *execProcess) {
	x := <-e.rt.Exited()
	e.io.processExited()
	c.mu.Lock()
	defer c.mu.Unlock()
	e.exit = &x
	e.status = Stopped
	close(e.exited)
	s.events.send(c.namespace, cruntime.TaskExitEventTopic, &eventstypes.TaskExit{
		ContainerID: c.id, ID: e.id, Pid: uint32(e.rt.Pid),
		ExitStatus: uint32(x.Status), ExitedAt: protobuf.ToTimestamp(x.At),
	})
	c.runningExecs--
	c.execsDone.Broadcast()
}

// deleteExec forgets a stopped (or never started) exec.
func (s *service) deleteExec(c *container, execID string) (*taskAPI.DeleteResponse, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, err := c.getExec(execID)
	if err != nil {
		return nil, err
	}
	if e.status == Running {
		return nil, fmt.Errorf("delete exec %s: process is running: %w", execID, errdefs.ErrFailedPrecondition)
	}
	delete(c.execs, execID)
	resp := &taskAPI.DeleteResponse{}
	if e.rt != nil {
		resp.Pid = uint32(e.rt.Pid)
		e.rt.Close()
	}
	if e.io != nil {
		go e.io.close() // may wait for output to drain; never under c.mu
	}
	if e.exit != nil {
		resp.ExitStatus = uint32(e.exit.Status)
		resp.ExitedAt = protobuf.ToTimestamp(e.exit.At)
	}
	return resp, nil
}

// execState reports an exec's state.
//
// Preconditions: c.mu is held.
func (c *container) execState(e *execProcess) *taskAPI.StateResponse {
	resp := &taskAPI.StateResponse{
		ID: c.id, ExecID: e.id, Bundle: c.bundle, Status: e.status.proto(),
		Stdin: e.stdin, Stdout: e.stdout, Stderr: e.stderr, Terminal: e.terminal,
	}
	if e.status == Created {
		resp.Status = e.status.proto()
	}
	if e.rt != nil {
		resp.Pid = uint32(e.rt.Pid)
	}
	if e.exit != nil {
		resp.ExitStatus = uint32(e.exit.Status)
		resp.ExitedAt = protobuf.ToTimestamp(e.exit.At)
	}
	return resp
}

// ResizePty resizes the terminal of the init process or an exec.
func (s *service) ResizePty(ctx context.Context, r *taskAPI.ResizePtyRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	c.mu.Lock()
	io := c.io
	if r.ExecID != "" {
		e, err := c.getExec(r.ExecID)
		if err != nil {
			c.mu.Unlock()
			return nil, errgrpc.ToGRPC(err)
		}
		io = e.io
	}
	c.mu.Unlock()
	if io == nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("resize pty of %s/%s: process not started: %w", r.ID, r.ExecID, errdefs.ErrFailedPrecondition))
	}
	if err := io.resize(r.Width, r.Height); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &ptypes.Empty{}, nil
}
