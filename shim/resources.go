package shim

import (
	"context"
	"encoding/json"
	"fmt"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	ptypes "github.com/containerd/containerd/v2/pkg/protobuf/types"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// Pause freezes every process of a running container (Running -> Paused) and publishes
// TaskPaused.
func (s *service) Pause(ctx context.Context, r *taskAPI.PauseRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := s.pause(c); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &ptypes.Empty{}, nil
}

// pause holds c.mu across the freeze, as the runc shim holds its process lock across `runc
// pause`: a concurrent Resume, or the exit watcher's move to Stopped, waits until the cgroup
// and the status agree.
func (s *service) pause(c *container) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, err := c.status.to(Paused); err != nil {
		return fmt.Errorf("pause %s: %w", c.id, err)
	}
	if err := c.rt.Cgroup.Freeze(); err != nil {
		return fmt.Errorf("pause %s: %w", c.id, err)
	}
	if err := c.transition(Paused); err != nil {
		return err
	}
	s.events.send(c.namespace, cruntime.TaskPausedEventTopic, &eventstypes.TaskPaused{ContainerID: c.id})
	return nil
}

// Resume thaws a paused container (Paused -> Running) and publishes TaskResumed.
func (s *service) Resume(ctx context.Context, r *taskAPI.ResumeRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	if err := s.resume(c); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &ptypes.Empty{}, nil
}

func (s *service) resume(c *container) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.status != Paused {
		return fmt.Errorf("resume %s: task is %s, not paused: %w", c.id, c.status, errdefs.ErrFailedPrecondition)
	}
	if err := c.rt.Cgroup.Thaw(); err != nil {
		return fmt.Errorf("resume %s: %w", c.id, err)
	}
	if err := c.transition(Running); err != nil {
		return err
	}
	s.events.send(c.namespace, cruntime.TaskResumedEventTopic, &eventstypes.TaskResumed{ContainerID: c.id})
	return nil
}

// thawIfKilled lets a SIGKILL sent to the init of a paused container take effect. A process
// in a frozen cgroup v1 does not act on SIGKILL until it is thawed (cgroup.Cgroup.Kill thaws
// for the same reason); on v2 the freezer lets fatal signals through, and the cgroup stays
// frozen, as runc leaves it. The status stays Paused until the exit watcher sees init exit.
//
// Kill calls it after signalling init with sig.
func (s *service) thawIfKilled(c *container, sig unix.Signal) error {
	if sig != unix.SIGKILL || cgroup.Mode() != cgroup.ModeV1 {
		return nil
	}
	c.mu.Lock()
	paused := c.status == Paused
	c.mu.Unlock()
	if !paused {
		return nil
	}
	if err := c.rt.Cgroup.Thaw(); err != nil && !errdefs.IsNotFound(err) {
		return fmt.Errorf("thaw %s after SIGKILL: %w", c.id, err)
	}
	return nil
}

// Update applies new resource limits to the container's cgroup. Resources is an Any holding a
// JSON specs.LinuxResources (what containerd's client and CRI send); each field set replaces
// the current value, fields left unset keep theirs.
//
// Values are checked before anything is written (oci.CheckResources), and an invalid one
// fails with InvalidArgument naming the linux.resources field; so does a value the cgroup
// cannot take (cgroup.Cgroup.Update: NotImplemented for what this host lacks, InvalidArgument
// for what the kernel refuses, FailedPrecondition for a memory limit below current usage).
// A refused Update changes nothing: the files written before the refused one get their
// values back.
//
// r.Annotations are accepted and ignored: box keeps no per-task annotations, and the runc
// shim ignores them too.
//
// A created, running or paused task can be updated; a stopped or deleted one fails with
// FailedPrecondition (the runc shim answers "cannot update a stopped container").
func (s *service) Update(ctx context.Context, r *taskAPI.UpdateTaskRequest) (*ptypes.Empty, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	res, err := decodeResources(r)
	if err != nil {
		return nil, errgrpc.ToGRPC(fmt.Errorf("update %s: %w", c.id, err))
	}
	if err := s.update(c, res); err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return &ptypes.Empty{}, nil
}

func (s *service) update(c *container, res *specs.LinuxResources) error {
	if err := oci.CheckResources(res); err != nil {
		return fmt.Errorf("update %s: %w", c.id, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.status {
	case Created, Running, Paused:
	default:
		return fmt.Errorf("update %s: task is %s: %w", c.id, c.status, errdefs.ErrFailedPrecondition)
	}
	if err := c.rt.Cgroup.Update(withDefaultDevices(res)); err != nil {
		return fmt.Errorf("update %s: %w", c.id, err)
	}
	return nil
}

// decodeResources returns the specs.LinuxResources r carries. Anything else (no resources,
// another type, Windows resources, bad JSON) is an InvalidArgument.
func decodeResources(r *taskAPI.UpdateTaskRequest) (*specs.LinuxResources, error) {
	if r.Resources == nil {
		return nil, fmt.Errorf("resources are required: %w", errdefs.ErrInvalidArgument)
	}
	want, err := typeurl.TypeURL(&specs.LinuxResources{})
	if err != nil {
		return nil, err
	}
	if r.Resources.GetTypeUrl() != want {
		return nil, fmt.Errorf("resources of type %q, want %q: %w", r.Resources.GetTypeUrl(), want, errdefs.ErrInvalidArgument)
	}
	var res specs.LinuxResources
	if err := json.Unmarshal(r.Resources.GetValue(), &res); err != nil {
		return nil, fmt.Errorf("decode linux.resources: %w: %w", errdefs.ErrInvalidArgument, err)
	}
	return &res, nil
}

// withDefaultDevices appends the rules for the devices every container has when the update
// rewrites the device rules: CRI sends the spec's whole resources, whose rules do not list
// them, and Create appended them too (runtime.cgroupResources).
func withDefaultDevices(res *specs.LinuxResources) *specs.LinuxResources {
	if len(res.Devices) == 0 {
		return res
	}
	out := *res
	out.Devices = append(append([]specs.LinuxDeviceCgroup(nil), res.Devices...), oci.DefaultDeviceRules...)
	return &out
}

// Stats returns the container's cgroup statistics: an io.containerd.cgroups.v1.Metrics on
// cgroup v1 or io.containerd.cgroups.v2.Metrics on v2, the only types CRI decodes. It reads
// cgroup files only and starts no process. A deleted cgroup fails with NotFound.
func (s *service) Stats(ctx context.Context, r *taskAPI.StatsRequest) (*taskAPI.StatsResponse, error) {
	c, err := s.get(r.ID)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	st, err := stats(c)
	if err != nil {
		return nil, errgrpc.ToGRPC(err)
	}
	return st, nil
}

func stats(c *container) (*taskAPI.StatsResponse, error) {
	m, err := c.rt.Cgroup.Stats()
	if err != nil {
		return nil, fmt.Errorf("stats of %s: %w", c.id, err)
	}
	a, err := typeurl.MarshalAny(m)
	if err != nil {
		return nil, fmt.Errorf("stats of %s: encode %T: %w", c.id, m, err)
	}
	return &taskAPI.StatsResponse{Stats: typeurl.MarshalProto(a)}, nil
}
