package integration

import (
	"context"
	"errors"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// requireStatus checks the task's status as containerd reports it.
func requireStatus(t *testing.T, c *harness.Containerd, task client.Task, want client.ProcessStatus) {
	t.Helper()
	st, err := task.Status(c.Context(t))
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if st.Status != want {
		t.Fatalf("status %q, want %q", st.Status, want)
	}
}

// TestPauseResume verifies that Pause freezes the container's cgroup and reports paused,
// that Resume thaws it and reports running, with TaskPaused and TaskResumed published, and
// that pausing a paused task is refused.
func TestPauseResume(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "pause")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	evs, errs := c.Client.Subscribe(ctx, `topic~="^/tasks/(paused|resumed)$"`)
	task, _ := startTask(t, c, ctr)
	cg := c.CgroupPath(id)

	if err := task.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	requireStatus(t, c, task, client.Paused)
	if st := readCgroupFile(t, "freezer", cg, "freezer.state"); st != "FROZEN" {
		t.Errorf("freezer.state %q after Pause, want FROZEN", st)
	}
	if err := task.Pause(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("second Pause: %v, want FailedPrecondition", err)
	}
	if err := task.Resume(ctx); err != nil {
		t.Fatalf("Resume: %v", err)
	}
	requireStatus(t, c, task, client.Running)
	if st := readCgroupFile(t, "freezer", cg, "freezer.state"); st != "THAWED" {
		t.Errorf("freezer.state %q after Resume, want THAWED", st)
	}
	if err := task.Resume(ctx); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Resume of a running task: %v, want FailedPrecondition", err)
	}
	for _, want := range []string{"/tasks/paused", "/tasks/resumed"} {
		if got := nextTaskEvent(t, evs, errs, id); got != want {
			t.Fatalf("event %s, want %s", got, want)
		}
	}
}

// TestKillPausedTask verifies that SIGKILL to the init of a paused container ends it: a
// process in a frozen v1 cgroup acts on SIGKILL only once thawed.
func TestKillPausedTask(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "killpaused")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	task, wait := startTask(t, c, ctr)
	if err := task.Pause(ctx); err != nil {
		t.Fatalf("Pause: %v", err)
	}
	if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if code := waitCode(t, wait); code != 137 {
		t.Fatalf("exit code %d, want 137", code)
	}
	requireStatus(t, c, task, client.Stopped)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	c.RequireNoLeftovers(t, id, 10*time.Second)
}

// TestUpdateMemoryLimit verifies that Update writes a new memory limit to the host cgroup, and
// that an invalid update fails with InvalidArgument and leaves the limit alone.
func TestUpdateMemoryLimit(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "update")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"}, oci.WithMemoryLimit(64<<20))
	task, _ := startTask(t, c, ctr)
	cg := c.CgroupPath(id)
	if got := readCgroupFile(t, "memory", cg, "memory.limit_in_bytes"); got != strconv.Itoa(64<<20) {
		t.Fatalf("initial limit %s, want %d", got, 64<<20)
	}

	limit := int64(32 << 20)
	if err := task.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &limit}})); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if got := readCgroupFile(t, "memory", cg, "memory.limit_in_bytes"); got != strconv.FormatInt(limit, 10) {
		t.Fatalf("limit %s after Update, want %d", got, limit)
	}

	bad := int64(-7)
	err := task.Update(ctx, client.WithResources(&specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: &bad}}))
	if !errdefs.IsInvalidArgument(err) {
		t.Fatalf("Update with limit -7: %v, want InvalidArgument", err)
	}
	if got := readCgroupFile(t, "memory", cg, "memory.limit_in_bytes"); got != strconv.FormatInt(limit, 10) {
		t.Fatalf("limit %s after a refused Update, want %d", got, limit)
	}
}

// TestMetricsV1 verifies that task.Metrics returns io.containerd.cgroups.v1.Metrics (what CRI
// decodes on this host) with the container's memory usage and its process.
func TestMetricsV1(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "metrics")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	task, _ := startTask(t, c, ctr)
	m, err := task.Metrics(ctx)
	if err != nil {
		t.Fatalf("Metrics: %v", err)
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		t.Fatalf("decode metrics: %v", err)
	}
	mv1, ok := v.(*v1stats.Metrics)
	if !ok {
		t.Fatalf("metrics are %T (%s), want *v1.Metrics", v, m.Data.GetTypeUrl())
	}
	if mv1.Memory.GetUsage().GetUsage() == 0 {
		t.Errorf("memory usage 0, want > 0")
	}
	if mv1.Pids.GetCurrent() == 0 {
		t.Errorf("pids.current 0, want the container's process")
	}
}

// TestOOMBeforeExit runs, 50 times, a container with a 16 MiB memory limit whose init
// allocates from its first instruction until the OOM killer ends it, and verifies each time
// that /tasks/oom arrives, once, before /tasks/exit, and that the exit is a SIGKILL (137).
func TestOOMBeforeExit(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	for i := range 50 {
		id := harness.RandID(t, "oom")
		ctr := newContainer(t, c, id, []string{"sh", "-c", "x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done"},
			oci.WithMemoryLimit(16<<20))
		subCtx, cancel := context.WithCancel(ctx)
		evs, errs := c.Client.Subscribe(subCtx, `topic~="^/tasks/(oom|exit|delete)$"`)
		r := runToExit(t, c, ctr)
		if r.code != 137 {
			t.Fatalf("run %d: exit code %d, want 137 (OOM-killed)", i, r.code)
		}
		var got []string
		for len(got) == 0 || got[len(got)-1] != "/tasks/delete" {
			got = append(got, nextTaskEvent(t, evs, errs, id))
		}
		cancel()
		if want := []string{"/tasks/oom", "/tasks/exit", "/tasks/delete"}; !slices.Equal(got, want) {
			t.Fatalf("run %d: events %v, want %v", i, got, want)
		}
		deleteContainer(t, ctx, ctr)
	}
}

// nextTaskEvent returns the topic of the next event of container id among the task events
// that carry a container id.
func nextTaskEvent(t *testing.T, evs <-chan *events.Envelope, errs <-chan error, id string) string {
	t.Helper()
	timeout := time.After(exitTimeout)
	for {
		select {
		case env := <-evs:
			if env == nil {
				continue
			}
			ev, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				t.Fatalf("decode %s: %v", env.Topic, err)
			}
			if containerOf(ev) == id {
				return env.Topic
			}
		case err := <-errs:
			if err != nil && !errdefs.IsCanceled(err) && !errors.Is(err, context.Canceled) {
				t.Fatalf("event subscription: %v", err)
			}
		case <-timeout:
			t.Fatalf("no event for %s within %v", id, exitTimeout)
		}
	}
}

func containerOf(ev any) string {
	switch e := ev.(type) {
	case *eventtypes.TaskOOM:
		return e.ContainerID
	case *eventtypes.TaskExit:
		return e.ContainerID
	case *eventtypes.TaskDelete:
		return e.ContainerID
	case *eventtypes.TaskPaused:
		return e.ContainerID
	case *eventtypes.TaskResumed:
		return e.ContainerID
	}
	return ""
}
