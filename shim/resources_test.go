package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/errdefs"
	"github.com/containerd/errdefs/pkg/errgrpc"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// TestPauseResumeStates checks which statuses Pause and Resume accept, what they do to the
// cgroup, the status they leave and the event they publish.
func TestPauseResumeStates(t *testing.T) {
	for _, tc := range []struct {
		name      string
		from      Status
		op        string
		wantErr   error
		wantCalls []string
		wantState Status
		wantTopic string
	}{
		{"pause running", Running, "pause", nil, []string{"freeze"}, Paused, cruntime.TaskPausedEventTopic},
		{"pause created", Created, "pause", errdefs.ErrFailedPrecondition, nil, Created, ""},
		{"pause paused", Paused, "pause", errdefs.ErrFailedPrecondition, nil, Paused, ""},
		{"pause stopped", Stopped, "pause", errdefs.ErrFailedPrecondition, nil, Stopped, ""},
		{"resume paused", Paused, "resume", nil, []string{"thaw"}, Running, cruntime.TaskResumedEventTopic},
		{"resume running", Running, "resume", errdefs.ErrFailedPrecondition, nil, Running, ""},
		{"resume created", Created, "resume", errdefs.ErrFailedPrecondition, nil, Created, ""},
		{"resume stopped", Stopped, "resume", errdefs.ErrFailedPrecondition, nil, Stopped, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := &fakeCg{}
			c := newResContainer("c1", tc.from, cg)
			s, rec := newResService(t, c)
			var err error
			if tc.op == "pause" {
				_, err = s.Pause(context.Background(), &taskAPI.PauseRequest{ID: "c1"})
			} else {
				_, err = s.Resume(context.Background(), &taskAPI.ResumeRequest{ID: "c1"})
			}
			requireClass(t, err, tc.wantErr)
			if got := cg.Calls(); !slices.Equal(got, tc.wantCalls) {
				t.Errorf("cgroup calls %v, want %v", got, tc.wantCalls)
			}
			if c.status != tc.wantState {
				t.Errorf("status %s, want %s", c.status, tc.wantState)
			}
			var want []string
			if tc.wantTopic != "" {
				want = []string{tc.wantTopic}
			}
			if got := rec.drain(t, s.events); !slices.Equal(got, want) {
				t.Errorf("events %v, want %v", got, want)
			}
		})
	}
}

// TestPauseFreezeFailure checks that a failed freeze leaves the task running and publishes
// nothing.
func TestPauseFreezeFailure(t *testing.T) {
	cg := &fakeCg{freezeErr: errors.New("freezer broken")}
	c := newResContainer("c1", Running, cg)
	s, rec := newResService(t, c)
	if _, err := s.Pause(context.Background(), &taskAPI.PauseRequest{ID: "c1"}); err == nil {
		t.Fatal("Pause succeeded with a failing freezer")
	}
	if c.status != Running {
		t.Errorf("status %s, want running", c.status)
	}
	if got := rec.drain(t, s.events); len(got) != 0 {
		t.Errorf("events %v, want none", got)
	}
}

// TestPauseUnknownTask checks that Pause, Resume, Update and Stats of an unknown id are
// NotFound.
func TestPauseUnknownTask(t *testing.T) {
	s, _ := newResService(t)
	ctx := context.Background()
	_, err := s.Pause(ctx, &taskAPI.PauseRequest{ID: "nope"})
	requireClass(t, err, errdefs.ErrNotFound)
	_, err = s.Resume(ctx, &taskAPI.ResumeRequest{ID: "nope"})
	requireClass(t, err, errdefs.ErrNotFound)
	_, err = s.Update(ctx, &taskAPI.UpdateTaskRequest{ID: "nope", Resources: resourcesAny(t, &specs.LinuxResources{})})
	requireClass(t, err, errdefs.ErrNotFound)
	_, err = s.Stats(ctx, &taskAPI.StatsRequest{ID: "nope"})
	requireClass(t, err, errdefs.ErrNotFound)
}

// TestUpdateAppliesDecodedResources checks that Update decodes the Any containerd sends,
// applies it once, and appends the default device rules when the update carries device rules.
func TestUpdateAppliesDecodedResources(t *testing.T) {
	limit := int64(64 << 20)
	for _, st := range []Status{Created, Running, Paused} {
		cg := &fakeCg{}
		c := newResContainer("c1", st, cg)
		s, _ := newResService(t, c)
		res := &specs.LinuxResources{
			Memory:  &specs.LinuxMemory{Limit: &limit},
			Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
		}
		_, err := s.Update(context.Background(), &taskAPI.UpdateTaskRequest{
			ID: "c1", Resources: resourcesAny(t, res), Annotations: map[string]string{"a": "b"},
		})
		if err != nil {
			t.Fatalf("update %s task: %v", st, err)
		}
		if len(cg.updates) != 1 {
			t.Fatalf("update %s task: %d cgroup updates, want 1", st, len(cg.updates))
		}
		got := cg.updates[0]
		if got.Memory == nil || got.Memory.Limit == nil || *got.Memory.Limit != limit {
			t.Errorf("update %s task: memory %+v, want limit %d", st, got.Memory, limit)
		}
		if want := 1 + len(oci.DefaultDeviceRules); len(got.Devices) != want || got.Devices[0].Allow {
			t.Errorf("update %s task: %d device rules starting %+v, want deny-all then the %d defaults", st, len(got.Devices), got.Devices[0], len(oci.DefaultDeviceRules))
		}
	}
}

// TestUpdateRefusesBadRequests checks that invalid requests fail with InvalidArgument naming
// the field, and a stopped task with FailedPrecondition, without touching the cgroup.
func TestUpdateRefusesBadRequests(t *testing.T) {
	i64 := func(v int64) *int64 { return &v }
	u64 := func(v uint64) *uint64 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	valid := resourcesAny(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(1 << 20)}})
	for _, tc := range []struct {
		name    string
		status  Status
		res     *anypb.Any
		wantErr error
		field   string
	}{
		{"no resources", Running, nil, errdefs.ErrInvalidArgument, "resources"},
		{"wrong type", Running, &anypb.Any{TypeUrl: "types.containerd.io/foo", Value: []byte("{}")}, errdefs.ErrInvalidArgument, "LinuxResources"},
		{"bad json", Running, &anypb.Any{TypeUrl: valid.TypeUrl, Value: []byte("{")}, errdefs.ErrInvalidArgument, "linux.resources"},
		{"negative limit", Running, resourcesAny(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(-5)}}), errdefs.ErrInvalidArgument, "memory.limit"},
		{"swap below limit", Running, resourcesAny(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64(2 << 20), Swap: i64(1 << 20)}}), errdefs.ErrInvalidArgument, "memory.swap"},
		{"swappiness", Running, resourcesAny(t, &specs.LinuxResources{Memory: &specs.LinuxMemory{Swappiness: u64(101)}}), errdefs.ErrInvalidArgument, "memory.swappiness"},
		{"period", Running, resourcesAny(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Period: u64(10)}}), errdefs.ErrInvalidArgument, "cpu.period"},
		{"quota", Running, resourcesAny(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64(5)}}), errdefs.ErrInvalidArgument, "cpu.quota"},
		{"cpus", Running, resourcesAny(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Cpus: "0-x"}}), errdefs.ErrInvalidArgument, "cpu.cpus"},
		{"mems", Running, resourcesAny(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Mems: "3-1"}}), errdefs.ErrInvalidArgument, "cpu.mems"},
		{"blkio weight", Running, resourcesAny(t, &specs.LinuxResources{BlockIO: &specs.LinuxBlockIO{Weight: u16(5)}}), errdefs.ErrInvalidArgument, "blockIO.weight"},
		{"shares", Running, resourcesAny(t, &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64(1 << 20)}}), errdefs.ErrInvalidArgument, "cpu.shares"},
		{"pids", Running, resourcesAny(t, &specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64(-2)}}), errdefs.ErrInvalidArgument, "pids.limit"},
		{"unified key", Running, resourcesAny(t, &specs.LinuxResources{Unified: map[string]string{"../cgroup.procs": "1"}}), errdefs.ErrInvalidArgument, "unified"},
		{"device type", Running, resourcesAny(t, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "x", Access: "r"}}}), errdefs.ErrInvalidArgument, "devices[0].type"},
		{"device access", Running, resourcesAny(t, &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rwz"}}}), errdefs.ErrInvalidArgument, "devices[0].access"},
		{"stopped", Stopped, valid, errdefs.ErrFailedPrecondition, "stopped"},
		{"deleted", Deleted, valid, errdefs.ErrFailedPrecondition, "deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cg := &fakeCg{}
			s, _ := newResService(t, newResContainer("c1", tc.status, cg))
			_, err := s.Update(context.Background(), &taskAPI.UpdateTaskRequest{ID: "c1", Resources: tc.res})
			requireClass(t, err, tc.wantErr)
			if !strings.Contains(err.Error(), tc.field) {
				t.Errorf("error %q does not name %q", err, tc.field)
			}
			if calls := cg.Calls(); len(calls) != 0 {
				t.Errorf("cgroup calls %v, want none", calls)
			}
		})
	}
}

// TestUpdateKernelRefusal checks that the cgroup's own classification reaches the client.
func TestUpdateKernelRefusal(t *testing.T) {
	for _, class := range []error{errdefs.ErrInvalidArgument, errdefs.ErrFailedPrecondition, errdefs.ErrNotImplemented} {
		cg := &fakeCg{updateErr: fmt.Errorf("linux.resources.memory.limit: %w: device or resource busy", class)}
		s, _ := newResService(t, newResContainer("c1", Running, cg))
		_, err := s.Update(context.Background(), &taskAPI.UpdateTaskRequest{ID: "c1", Resources: resourcesAny(t, &specs.LinuxResources{})})
		requireClass(t, err, class)
		if !strings.Contains(err.Error(), "memory.limit") {
			t.Errorf("error %q does not name memory.limit", err)
		}
	}
}

// TestStatsEncodesCgroupMetrics checks that Stats returns the cgroup's metrics under the type
// URLs CRI decodes: io.containerd.cgroups.v1.Metrics and io.containerd.cgroups.v2.Metrics.
func TestStatsEncodesCgroupMetrics(t *testing.T) {
	for _, tc := range []struct {
		metrics any
		url     string
	}{
		{&v1stats.Metrics{Memory: &v1stats.MemoryStat{Usage: &v1stats.MemoryEntry{Usage: 42}}}, "io.containerd.cgroups.v1.Metrics"},
		{&v2stats.Metrics{Memory: &v2stats.MemoryStat{Usage: 42}}, "io.containerd.cgroups.v2.Metrics"},
	} {
		cg := &fakeCg{stats: tc.metrics}
		s, _ := newResService(t, newResContainer("c1", Running, cg))
		resp, err := s.Stats(context.Background(), &taskAPI.StatsRequest{ID: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		if resp.Stats.GetTypeUrl() != tc.url {
			t.Errorf("type URL %q, want %q", resp.Stats.GetTypeUrl(), tc.url)
		}
		v, err := typeurl.UnmarshalAny(resp.Stats)
		if err != nil {
			t.Fatalf("decode %s: %v", tc.url, err)
		}
		switch m := v.(type) {
		case *v1stats.Metrics:
			if m.Memory.Usage.Usage != 42 {
				t.Errorf("v1 usage %d, want 42", m.Memory.Usage.Usage)
			}
		case *v2stats.Metrics:
			if m.Memory.Usage != 42 {
				t.Errorf("v2 usage %d, want 42", m.Memory.Usage)
			}
		default:
			t.Errorf("decoded %T", v)
		}
	}
}

// requireClass checks that err, as an RPC returns it, carries the errdefs class want (nil:
// no error).
func requireClass(t *testing.T, err, want error) {
	t.Helper()
	if want == nil {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatalf("no error, want %v", want)
	}
	if native := errgrpc.ToNative(err); !errors.Is(native, want) {
		t.Fatalf("error %v is not %v", err, want)
	}
}

// resourcesAny is r as containerd's client sends it.
func resourcesAny(t *testing.T, r *specs.LinuxResources) *anypb.Any {
	t.Helper()
	a, err := typeurl.MarshalAny(r)
	if err != nil {
		t.Fatal(err)
	}
	// typeurl encodes non-proto types as JSON, which is what Update decodes.
	var back specs.LinuxResources
	if err := json.Unmarshal(a.GetValue(), &back); err != nil {
		t.Fatalf("resources are not JSON: %v", err)
	}
	return typeurl.MarshalProto(a)
}
