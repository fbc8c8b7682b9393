package shim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/api/types/task"
	"github.com/containerd/containerd/v2/core/mount"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/protobuf"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/log"
	"github.com/containerd/typeurl/v2"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime"
	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch/deleted"
)

// service implements containerd's task API v3 for every container of one
// daemon (one container, or one pod when grouped).
//
// Every RPC method converts its error with errgrpc.ToGRPC and nowhere else.
// Lock order: mu before container.mu.
type service struct {
	reaper   *reaper
	events   *eventQueue
	oom      *oomWatcher
	shutdown func()

	mu sync.Mutex
	// containers by id.
	containers map[string]*container // guarded by mu
	// orphan is set once containerd is gone for good (orphan.go).
	orphan bool // guarded by mu
}

func newService(r *reaper, ev *eventQueue, oom *oomWatcher, shutdown func()) *service {
	return &service{reaper: r, events: ev, oom: oom, shutdown: shutdown, containers: make(map[string]*container)}
}

var _ taskAPI.TTRPCTaskService = (*service)(nil)

// get returns the container id, or NotFound.
func (s *service) get(id string) (*container, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.containers[id]
	if c == nil {
		return nil, fmt.Errorf("container %q: %w", id, errdefs.ErrNotFound)
	}
	return c, nil
}

// Create makes the container and its init process, ready to Start.
func (s *service) Create(ctx context.Context, r *taskAPI.CreateTaskRequest) (*taskAPI.CreateTaskResponse, error) {
	c, err := s.create(ctx, r)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &taskAPI.CreateTaskResponse{Pid: c.pid()}, nil
}

func (s *service) create(ctx context.Context, r *taskAPI.CreateTaskRequest) (_ *container, retErr error) {
	if r.ID == "" || r.Bundle == "" {
		return nil, fmt.Errorf("create: id and bundle are required: %w", errdefs.ErrInvalidArgument)
	}
	if r.Checkpoint != "" || r.ParentCheckpoint != "" {
		return nil, fmt.Errorf("create %s: restoring a checkpoint is not supported yet: %w", r.ID, errdefs.ErrInvalidArgument)
	}
	ns, err := namespaces.NamespaceRequired(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	if _, ok := s.containers[r.ID]; ok {
		s.mu.Unlock()
		return nil, fmt.Errorf("container %q: %w", r.ID, errdefs.ErrAlreadyExists)
	}
	// Reserve the id while creating; nil entries are skipped by readers.
	s.containers[r.ID] = nil
	sizeMemory(len(s.containers))
	s.mu.Unlock()
	defer func() {
		if retErr != nil {
			s.mu.Lock()
			delete(s.containers, r.ID)
			sizeMemory(len(s.containers))
			s.mu.Unlock()
		}
	}()

	opts, err := launch.ParseOptions(r.Options)
	if err != nil {
		return nil, err
	}
	// A task created in this bundle again has not been deleted.
	if err := deleted.Remove(r.Bundle); err != nil {
		return nil, fmt.Errorf("create %s: %w", r.ID, err)
	}
	spec, err := oci.Load(r.Bundle)
	if err != nil {
		return nil, err
	}
	plan, err := oci.NewPlan(spec, r.Bundle)
	if err != nil {
		return nil, err
	}
	if plan.CgroupsPath == "" {
		plan.CgroupsPath = filepath.Join("/box", ns, r.ID)
		if opts.SystemdCgroup {
			plan.CgroupsPath = ":box:" + ns + "-" + r.ID // <ns>-<id>.scope in system.slice
		}
	}
	if err := cgroup.CheckDriver(plan.CgroupsPath, opts.SystemdCgroup); err != nil {
		return nil, err
	}
	if inDaemonPidNS(plan) {
		s.reaper.watchOrphans()
	}
	if err := mountRootfs(r, plan.Rootfs); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil && len(r.Rootfs) > 0 {
			if err := mount.UnmountRecursive(plan.Rootfs, 0); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("unmount rootfs: %w", err))
			}
		}
	}()
	io, err := openStdio(ctx, stdioConfig{
		ID: r.ID, Namespace: ns,
		Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal,
		UID: int(opts.IoUID), GID: int(opts.IoGID), Monitor: s.reaper,
	})
	if err != nil {
		return nil, err
	}
	defer func() {
		io.closeChild()
		if retErr != nil {
			io.close()
		}
	}()
	rt, err := runtime.Create(ctx, runtime.CreateConfig{
		ID: r.ID, Bundle: r.Bundle, Plan: plan, Stdio: io.files, Terminal: r.Terminal, Monitor: s.reaper,
		NoPivotRoot: opts.NoPivotRoot, NoNewKeyring: opts.NoNewKeyring,
	})
	if err != nil {
		return nil, fmt.Errorf("create container %s: %w", r.ID, err)
	}
	if rt.Console != nil {
		if err := io.attachConsole(rt.Console); err != nil {
			_ = rt.Signal(unix.SIGKILL)
			<-rt.Exited()
			return nil, errors.Join(fmt.Errorf("attach console of %s: %w", r.ID, err), rt.Destroy())
		}
	}
	c := &container{
		id: r.ID, namespace: ns, bundle: r.Bundle,
		stdin: r.Stdin, stdout: r.Stdout, stderr: r.Stderr,
		rt: rt, io: io, ownPidNS: plan.CloneFlags&unix.CLONE_NEWPID != 0,
		status: Created, exited: make(chan struct{}),
		execs: make(map[string]*execProcess),
		ioUID: int(opts.IoUID), ioGID: int(opts.IoGID),
	}
	c.execsDone = sync.NewCond(&c.mu)
	st := launch.BundleState{Pid: rt.Pid, CgroupsPath: plan.CgroupsPath}
	st.StartTime, _ = launch.ProcStartTime(rt.Pid)
	if err := launch.WriteBundleState(r.Bundle, st); err != nil {
		log.G(ctx).WithError(err).Warn("write bundle state")
	}

	s.mu.Lock()
	s.containers[r.ID] = c
	s.mu.Unlock()
	s.events.send(ns, cruntime.TaskCreateEventTopic, &eventstypes.TaskCreate{
		ContainerID: r.ID,
		Bundle:      r.Bundle,
		Rootfs:      r.Rootfs,
		IO:          &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Pid:         c.pid(),
	})
	if err := s.oom.add(c); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("watch for OOM kills")
	}
	// Watch for the exit only now, so TaskExit can't precede TaskCreate.
	go s.watchExit(c)
	return c, nil
}

// mountRootfs mounts the rootfs containerd passed at the spec's root.
func mountRootfs(r *taskAPI.CreateTaskRequest, root string) error {
	if len(r.Rootfs) == 0 {
		if _, err := os.Stat(root); err != nil {
			return fmt.Errorf("root.path %s: %w", root, classifyErrno(errors.Unwrap(err)))
		}
		return nil
	}
	if err := os.MkdirAll(root, 0o711); err != nil {
		return err
	}
	if err := mount.All(mount.FromProto(r.Rootfs), root); err != nil {
		return fmt.Errorf("mount rootfs on %s: %w", root, err)
	}
	return nil
}

// watchExit records init's exit and publishes it, after TaskStart when a
// Start is racing it.
func (s *service) watchExit(c *container) {
	e := <-c.rt.Exited()
	if !c.ownPidNS {
		// Nothing else ends the other processes of a container that shares
		// a pid namespace.
		_ = c.rt.SignalAll(unix.SIGKILL)
	}
	if err := launch.WriteExit(c.bundle, launch.ExitState{Pid: c.rt.Pid, Status: e.Status, ExitedAt: e.At}); err != nil {
		log.L.WithError(err).WithField("id", c.id).Warn("write exit state")
	}
	// An OOM kill of init must be published before its exit.
	s.oom.beforeExit(c)
	c.io.processExited()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.exit = &e
	_ = c.transition(Stopped)
	// Every exec's exit is published before the init's. With its own pid
	// namespace the kernel has killed them; otherwise SignalAll above did.
	for c.runningExecs > 0 {
		c.execsDone.Wait()
	}
	if !c.starting {
		s.publishExit(c)
	}
	// Only now: Wait and Delete go on once exited is closed, and the
	// TaskExit queued above must precede their effects (TaskDelete). A
	// Start in progress publishes the exit itself; Delete refuses to run
	// until it has. (FuzzTaskSequence found TaskDelete before TaskExit
	// when an exec's exit was still outstanding.)
	close(c.exited)
	go s.exitIfOrphanedAndIdle()
}

// publishExit queues TaskExit once.
//
// Preconditions: c.mu is held and c.exit is set.
func (s *service) publishExit(c *container) {
	if c.exitPublished {
		return
	}
	c.exitPublished = true
	s.events.send(c.namespace, cruntime.TaskExitEventTopic, &eventstypes.TaskExit{
		ContainerID: c.id,
		ID:          c.id,
		Pid:         c.pid(),
		ExitStatus:  uint32(c.exit.Status),
		ExitedAt:    protobuf.ToTimestamp(c.exit.At),
	})
}

// Start lets the created init process run the container's process.
func (s *service) Start(ctx context.Context, r *taskAPI.StartRequest) (*taskAPI.StartResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if r.ExecID != "" {
		pid, err := s.startExec(ctx, c, r.ExecID)
		if err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		return &taskAPI.StartResponse{Pid: pid}, nil
	}
	if err := s.start(c); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &taskAPI.StartResponse{Pid: c.pid()}, nil
}

func (s *service) start(c *container) error {
	c.mu.Lock()
	if c.status != Created || c.starting {
		defer c.mu.Unlock()
		return fmt.Errorf("start %s: task is %s: %w", c.id, c.status, errdefs.ErrFailedPrecondition)
	}
	c.starting = true
	c.mu.Unlock()

	err := c.rt.Start()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.starting = false
	if err != nil {
		if c.exit != nil {
			s.publishExit(c)
		}
		return fmt.Errorf("start %s: %w", c.id, err)
	}
	if c.exit == nil {
		if err := c.transition(Running); err != nil {
			return err
		}
	}
	s.events.send(c.namespace, cruntime.TaskStartEventTopic, &eventstypes.TaskStart{ContainerID: c.id, Pid: c.pid()})
	if c.exit != nil {
		s.publishExit(c)
	}
	return nil
}

// Delete removes a stopped (or never started) container and everything it
// held: remaining processes, cgroup, stdio handles and rootfs mounts.
func (s *service) Delete(ctx context.Context, r *taskAPI.DeleteRequest) (*taskAPI.DeleteResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if r.ExecID != "" {
		resp, err := s.deleteExec(c, r.ExecID)
		if err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		return resp, nil
	}
	e, err := s.delete(ctx, c)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &taskAPI.DeleteResponse{Pid: c.pid(), ExitStatus: uint32(e.Status), ExitedAt: protobuf.ToTimestamp(e.At)}, nil
}

func (s *service) delete(ctx context.Context, c *container) (runtime.Exit, error) {
	c.mu.Lock()
	status, starting := c.status, c.starting
	c.mu.Unlock()
	switch {
	case starting:
		return runtime.Exit{}, fmt.Errorf("delete %s: task is starting: %w", c.id, errdefs.ErrFailedPrecondition)
	case status == Created:
		// A created task that is deleted never runs: end its init.
		if err := c.rt.Signal(unix.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
			return runtime.Exit{}, err
		}
	case status == Running || status == Paused:
		return runtime.Exit{}, fmt.Errorf("delete %s: task is %s: %w", c.id, status, errdefs.ErrFailedPrecondition)
	case status == Deleted:
		return runtime.Exit{}, fmt.Errorf("container %q: %w", c.id, errdefs.ErrNotFound)
	}
	e, err := c.waitExit(ctx.Done())
	if err != nil {
		return runtime.Exit{}, err
	}

	s.oom.remove(c)
	var execIOs []*stdio
	c.mu.Lock()
	for id, e := range c.execs {
		if e.io != nil {
			execIOs = append(execIOs, e.io)
		}
		if e.rt != nil {
			e.rt.Close()
		}
		delete(c.execs, id)
	}
	c.mu.Unlock()
	// close may wait for output to drain: never under c.mu.
	for _, io := range execIOs {
		io.close()
	}
	var errs []error
	if err := c.rt.Destroy(); err != nil {
		errs = append(errs, err)
	} else {
		// The OCI poststop hooks, once; a failure is a warning, not a
		// failed Delete.
		if err := c.rt.Poststop(ctx); err != nil {
			log.G(ctx).WithError(err).WithField("id", c.id).Warn("poststop hooks failed")
		}
	}
	c.io.close()
	root := c.rt.Plan.Rootfs
	if err := unmountRootfs(root); err != nil {
		errs = append(errs, fmt.Errorf("unmount rootfs %s: %w", root, err))
	}
	if err := errors.Join(errs...); err != nil {
		// Keep the container so a retried Delete can finish the job.
		return runtime.Exit{}, fmt.Errorf("delete %s: %w", c.id, err)
	}
	c.mu.Lock()
	_ = c.transition(Deleted)
	c.mu.Unlock()
	// Everything is released: the delete action containerd runs next only
	// has to answer (shim/launch/deleted).
	resp := launch.EncodeDeleteResponse(uint32(c.pid()), uint32(e.Status), e.At)
	if err := deleted.Write(c.bundle, c.id, resp); err != nil {
		log.G(ctx).WithError(err).WithField("id", c.id).Warn("record the delete in the bundle (the delete action will clean up again)")
	}
	s.mu.Lock()
	delete(s.containers, c.id)
	sizeMemory(len(s.containers))
	s.mu.Unlock()
	s.events.send(c.namespace, cruntime.TaskDeleteEventTopic, &eventstypes.TaskDelete{
		ContainerID: c.id, ID: c.id, Pid: c.pid(),
		ExitStatus: uint32(e.Status), ExitedAt: protobuf.ToTimestamp(e.At),
	})
	return e, nil
}

// State reports the task's status.
func (s *service) State(ctx context.Context, r *taskAPI.StateRequest) (*taskAPI.StateResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r.ExecID != "" {
		e, err := c.getExec(r.ExecID)
		if err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		return c.execState(e), nil
	}
	resp := &taskAPI.StateResponse{
		ID: c.id, Bundle: c.bundle, Pid: c.pid(), Status: c.status.proto(),
		Stdin: c.stdin, Stdout: c.stdout, Stderr: c.stderr,
	}
	if c.exit != nil {
		resp.ExitStatus = uint32(c.exit.Status)
		resp.ExitedAt = protobuf.ToTimestamp(c.exit.At)
	}
	return resp, nil
}

// Wait blocks until the task exits and returns its status. It keeps
// answering after the exit until the task is deleted.
func (s *service) Wait(ctx context.Context, r *taskAPI.WaitRequest) (*taskAPI.WaitResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if r.ExecID != "" {
		c.mu.Lock()
		e, err := c.getExec(r.ExecID)
		c.mu.Unlock()
		if err != nil {
			return nil, errgrpc.ToGRPC(err)
		}
		select {
		case <-e.exited:
		case <-ctx.Done():
			return nil, errgrpc.ToGRPC(ctx.Err())
		}
		c.mu.Lock()
		x := *e.exit
		c.mu.Unlock()
		return &taskAPI.WaitResponse{ExitStatus: uint32(x.Status), ExitedAt: protobuf.ToTimestamp(x.At)}, nil
	}
	e, err := c.waitExit(ctx.Done())
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &taskAPI.WaitResponse{ExitStatus: uint32(e.Status), ExitedAt: protobuf.ToTimestamp(e.At)}, nil
}

// Kill signals the init process, or with All every process of the container.
func (s *service) Kill(ctx context.Context, r *taskAPI.KillRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	sig := unix.Signal(r.Signal)
	if r.Signal == 0 || r.Signal > 64 {
		return nil, errgrpc.ToGRPC(fmt.Errorf("kill %s: invalid signal %d: %w", c.id, r.Signal, errdefs.ErrInvalidArgument))
	}
	if r.ExecID != "" {
		err = c.signalExec(r.ExecID, sig)
	} else if r.All {
		err = c.rt.SignalAll(sig)
	} else if _, exited := c.exitInfo(); exited {
		err = fmt.Errorf("process already finished: %w", errdefs.ErrNotFound)
	} else if err = c.rt.Signal(sig); err == nil {
		err = s.thawIfKilled(c, sig)
	}
	if err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("kill %s: %w", c.id, err))
	}
	return &ptypes.Empty{}, nil
}

// Pids lists every process of the container.
func (s *service) Pids(ctx context.Context, r *taskAPI.PidsRequest) (*taskAPI.PidsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	pids, err := c.rt.Pids()
	if err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("pids of %s: %w", c.id, err))
	}
	execs := c.execIDs()
	resp := &taskAPI.PidsResponse{}
	for _, p := range pids {
		pi := &task.ProcessInfo{Pid: uint32(p)}
		if id, ok := execs[p]; ok {
			a, err := typeurl.MarshalAnyToProto(&options.ProcessDetails{ExecID: id})
			if err != nil {
				return nil, errgrpc.ToGRPC(fmt.Errorf("marshal details of pid %d: %w", p, err))
			}
			pi.Info = a
		}
		resp.Processes = append(resp.Processes, pi)
	}
	return resp, nil
}

// CloseIO closes the daemon's writer on the task's stdin, so the process
// reads EOF once the client's writer is closed too.
func (s *service) CloseIO(ctx context.Context, r *taskAPI.CloseIORequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if r.Stdin {
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
		if io != nil {
			io.closeStdin()
		}
		c.mu.Unlock()
	}
	return &ptypes.Empty{}, nil
}

// Connect tells containerd the daemon's and the task's pids.
func (s *service) Connect(ctx context.Context, r *taskAPI.ConnectRequest) (*taskAPI.ConnectResponse, error) {
	resp := &taskAPI.ConnectResponse{ShimPid: uint32(os.Getpid()), Version: launch.Version}
	if c, err := s.get(r.ID); err == nil && c != nil {
		resp.TaskPid = c.pid()
	}
	return resp, nil
}

// Shutdown stops the daemon once it serves no container.
func (s *service) Shutdown(ctx context.Context, r *taskAPI.ShutdownRequest) (*ptypes.Empty, error) {
	s.mu.Lock()
	n := len(s.containers)
	s.mu.Unlock()
	if n == 0 {
		s.shutdown()
	}
	return &ptypes.Empty{}, nil
}

func notYet(what string) error {
	return errgrpc.ToGRPC(fmt.Errorf("%s: not implemented yet by box: %w", what, errdefs.ErrNotImplemented))
}

// Checkpoint is not served yet.
func (s *service) Checkpoint(ctx context.Context, r *taskAPI.CheckpointTaskRequest) (*ptypes.Empty, error) {
	return nil, notYet("checkpoint")
}
