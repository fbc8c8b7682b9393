package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1/stats"
	eventsapi "github.com/containerd/containerd/api/events"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// firstPid is above the kernel's largest pid_max (2^22): a null task's pid is never a real
// process's.
const firstPid = 1 << 22

// proc is one process of a null task: its init or an exec.
type proc struct {
	pid      uint32
	exits    bool // exits with 0 as soon as it is started
	status   tasktypes.Status
	code     uint32
	exitedAt time.Time
	done     chan struct{}
	stdio    []*os.File
	io       [3]string
}

type task struct {
	id, bundle string
	init       *proc
	execs      map[string]*proc
}

type service struct {
	pub *publisher

	mu      sync.Mutex
	tasks   map[string]*task
	nextPid uint32
}

func newService(pub *publisher) *service {
	return &service{pub: pub, tasks: map[string]*task{}, nextPid: firstPid}
}

var _ taskv3.TTRPCTaskService = (*service)(nil)

func grpcErr(err error) error { return errgrpc.ToGRPC(err) }

// exitsAtOnce says whether args are the "true" the benchmark runs.
func exitsAtOnce(args []string) bool {
	return slices.Equal(args, []string{"true"}) || slices.Equal(args, []string{"/bin/true"})
}

// openStdio opens the fifos containerd made for a process, as a shim must, read-write so that
// no open blocks; closing them at exit gives the reader its EOF.
func openStdio(paths ...string) ([]*os.File, error) {
	var fs []*os.File
	for _, p := range paths {
		if p == "" {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			for _, f := range fs {
				f.Close()
			}
			return nil, err
		}
		fs = append(fs, f)
	}
	return fs, nil
}

func (s *service) newProc(args []string, stdin, stdout, stderr string) (*proc, error) {
	fs, err := openStdio(stdin, stdout, stderr)
	if err != nil {
		return nil, fmt.Errorf("open stdio: %w", err)
	}
	p := &proc{pid: s.nextPid, exits: exitsAtOnce(args), status: tasktypes.Status_CREATED,
		done: make(chan struct{}), stdio: fs, io: [3]string{stdin, stdout, stderr}}
	s.nextPid++
	return p, nil
}

// get returns task id and its process execID ("" for init). Callers hold s.mu.
func (s *service) get(id, execID string) (*task, *proc, error) {
	t, ok := s.tasks[id]
	if !ok {
		return nil, nil, fmt.Errorf("task %s: %w", id, errdefs.ErrNotFound)
	}
	if execID == "" {
		return t, t.init, nil
	}
	p, ok := t.execs[execID]
	if !ok {
		return nil, nil, fmt.Errorf("exec %s of task %s: %w", execID, id, errdefs.ErrNotFound)
	}
	return t, p, nil
}

// exit ends p with code and publishes the exit. Callers hold s.mu.
func (s *service) exit(ctx context.Context, t *task, execID string, p *proc, code uint32) {
	p.status = tasktypes.Status_STOPPED
	p.code = code
	p.exitedAt = time.Now()
	for _, f := range p.stdio {
		f.Close()
	}
	p.stdio = nil
	close(p.done)
	id := t.id
	if execID != "" {
		id = execID
	}
	s.pub.publish(ctx, "/tasks/exit", &eventsapi.TaskExit{ContainerID: t.id, ID: id, Pid: p.pid,
		ExitStatus: code, ExitedAt: timestamppb.New(p.exitedAt)})
	if execID == "" {
		// The init's pid namespace ends with it: so do the execs.
		for eid, e := range t.execs {
			if e.status == tasktypes.Status_RUNNING {
				s.exit(ctx, t, eid, e, 128+9)
			}
		}
	}
}

func (s *service) Create(ctx context.Context, r *taskv3.CreateTaskRequest) (*taskv3.CreateTaskResponse, error) {
	b, err := os.ReadFile(filepath.Join(r.Bundle, "config.json"))
	if err != nil {
		return nil, grpcErr(err)
	}
	var spec specs.Spec
	if err := json.Unmarshal(b, &spec); err != nil || spec.Process == nil {
		return nil, grpcErr(fmt.Errorf("config.json: no process (%v): %w", err, errdefs.ErrInvalidArgument))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.tasks[r.ID]; ok {
		return nil, grpcErr(fmt.Errorf("task %s: %w", r.ID, errdefs.ErrAlreadyExists))
	}
	p, err := s.newProc(spec.Process.Args, r.Stdin, r.Stdout, r.Stderr)
	if err != nil {
		return nil, grpcErr(err)
	}
	s.tasks[r.ID] = &task{id: r.ID, bundle: r.Bundle, init: p, execs: map[string]*proc{}}
	s.pub.publish(ctx, "/tasks/create", &eventsapi.TaskCreate{ContainerID: r.ID, Bundle: r.Bundle,
		Rootfs: r.Rootfs, IO: &eventsapi.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal},
		Checkpoint: r.Checkpoint, Pid: p.pid})
	return &taskv3.CreateTaskResponse{Pid: p.pid}, nil
}

func (s *service) Start(ctx context.Context, r *taskv3.StartRequest) (*taskv3.StartResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	if p.status != tasktypes.Status_CREATED {
		return nil, grpcErr(fmt.Errorf("process %s is %s: %w", r.ID+r.ExecID, p.status, errdefs.ErrFailedPrecondition))
	}
	p.status = tasktypes.Status_RUNNING
	if r.ExecID == "" {
		s.pub.publish(ctx, "/tasks/start", &eventsapi.TaskStart{ContainerID: r.ID, Pid: p.pid})
	} else {
		s.pub.publish(ctx, "/tasks/exec-started", &eventsapi.TaskExecStarted{ContainerID: r.ID, ExecID: r.ExecID, Pid: p.pid})
	}
	if p.exits {
		s.exit(ctx, t, r.ExecID, p, 0)
	}
	return &taskv3.StartResponse{Pid: p.pid}, nil
}

func (s *service) Delete(ctx context.Context, r *taskv3.DeleteRequest) (*taskv3.DeleteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	if p.status == tasktypes.Status_RUNNING {
		return nil, grpcErr(fmt.Errorf("process %s is running: %w", r.ID+r.ExecID, errdefs.ErrFailedPrecondition))
	}
	for _, f := range p.stdio {
		f.Close()
	}
	resp := &taskv3.DeleteResponse{Pid: p.pid, ExitStatus: p.code, ExitedAt: timestamppb.New(p.exitedAt)}
	if r.ExecID != "" {
		delete(t.execs, r.ExecID)
		return resp, nil
	}
	delete(s.tasks, r.ID)
	s.pub.publish(ctx, "/tasks/delete", &eventsapi.TaskDelete{ContainerID: r.ID, ID: r.ID, Pid: p.pid,
		ExitStatus: p.code, ExitedAt: resp.ExitedAt})
	return resp, nil
}

func (s *service) Exec(ctx context.Context, r *taskv3.ExecProcessRequest) (*emptypb.Empty, error) {
	var ps specs.Process
	if r.Spec == nil || json.Unmarshal(r.Spec.GetValue(), &ps) != nil {
		return nil, grpcErr(fmt.Errorf("exec %s: spec is not a process: %w", r.ExecID, errdefs.ErrInvalidArgument))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t, _, err := s.get(r.ID, "")
	if err != nil {
		return nil, grpcErr(err)
	}
	if _, ok := t.execs[r.ExecID]; ok {
		return nil, grpcErr(fmt.Errorf("exec %s: %w", r.ExecID, errdefs.ErrAlreadyExists))
	}
	p, err := s.newProc(ps.Args, r.Stdin, r.Stdout, r.Stderr)
	if err != nil {
		return nil, grpcErr(err)
	}
	t.execs[r.ExecID] = p
	s.pub.publish(ctx, "/tasks/exec-added", &eventsapi.TaskExecAdded{ContainerID: r.ID, ExecID: r.ExecID})
	return &emptypb.Empty{}, nil
}

func (s *service) Kill(ctx context.Context, r *taskv3.KillRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	if p.status == tasktypes.Status_STOPPED {
		return nil, grpcErr(fmt.Errorf("process already finished: %w", errdefs.ErrNotFound))
	}
	s.exit(ctx, t, r.ExecID, p, 128+r.Signal)
	return &emptypb.Empty{}, nil
}

func (s *service) Wait(ctx context.Context, r *taskv3.WaitRequest) (*taskv3.WaitResponse, error) {
	s.mu.Lock()
	_, p, err := s.get(r.ID, r.ExecID)
	s.mu.Unlock()
	if err != nil {
		return nil, grpcErr(err)
	}
	select {
	case <-p.done:
	case <-ctx.Done():
		return nil, grpcErr(ctx.Err())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &taskv3.WaitResponse{ExitStatus: p.code, ExitedAt: timestamppb.New(p.exitedAt)}, nil
}

func (s *service) State(ctx context.Context, r *taskv3.StateRequest) (*taskv3.StateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, p, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, grpcErr(err)
	}
	resp := &taskv3.StateResponse{ID: r.ID, Bundle: t.bundle, Pid: p.pid, Status: p.status, ExecID: r.ExecID,
		Stdin: p.io[0], Stdout: p.io[1], Stderr: p.io[2], ExitStatus: p.code}
	if p.status == tasktypes.Status_STOPPED {
		resp.ExitedAt = timestamppb.New(p.exitedAt)
	}
	return resp, nil
}

func (s *service) Pids(ctx context.Context, r *taskv3.PidsRequest) (*taskv3.PidsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, _, err := s.get(r.ID, "")
	if err != nil {
		return nil, grpcErr(err)
	}
	return &taskv3.PidsResponse{Processes: []*tasktypes.ProcessInfo{{Pid: t.init.pid}}}, nil
}

// Stats answers with empty cgroup v1 metrics: the floor of the RPC, not of reading them.
func (s *service) Stats(ctx context.Context, r *taskv3.StatsRequest) (*taskv3.StatsResponse, error) {
	s.mu.Lock()
	_, _, err := s.get(r.ID, "")
	s.mu.Unlock()
	if err != nil {
		return nil, grpcErr(err)
	}
	a, err := typeurl.MarshalAnyToProto(&stats.Metrics{})
	if err != nil {
		return nil, grpcErr(err)
	}
	return &taskv3.StatsResponse{Stats: a}, nil
}

func (s *service) Connect(ctx context.Context, r *taskv3.ConnectRequest) (*taskv3.ConnectResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	resp := &taskv3.ConnectResponse{ShimPid: uint32(os.Getpid())}
	if t, ok := s.tasks[r.ID]; ok {
		resp.TaskPid = t.init.pid
	}
	return resp, nil
}

// Shutdown is asked for after every task's Delete; the one daemon serves all tasks and stays.
func (s *service) Shutdown(context.Context, *taskv3.ShutdownRequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func (s *service) CloseIO(context.Context, *taskv3.CloseIORequest) (*emptypb.Empty, error) {
	return &emptypb.Empty{}, nil
}

func notImplemented(what string) error {
	return grpcErr(fmt.Errorf("null shim: %s: %w", what, errdefs.ErrNotImplemented))
}

func (s *service) Pause(context.Context, *taskv3.PauseRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("pause")
}

func (s *service) Resume(context.Context, *taskv3.ResumeRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("resume")
}

func (s *service) Checkpoint(context.Context, *taskv3.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("checkpoint")
}

func (s *service) ResizePty(context.Context, *taskv3.ResizePtyRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("resize pty")
}

func (s *service) Update(context.Context, *taskv3.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, notImplemented("update")
}
