package integration

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/events"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

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

// rootDisk is the major:minor of the whole disk the host's / is on, for blkio throttles.
func rootDisk(t *testing.T) (int64, int64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat("/", &st); err != nil {
		t.Fatal(err)
	}
	major, minor := int64(unix.Major(st.Dev)), int64(unix.Minor(st.Dev))
	if b, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/partition", major, minor)); err == nil {
		n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		minor -= n
	}
	return major, minor
}

func i64p(v int64) *int64   { return &v }
func u64p(v uint64) *uint64 { return &v }
func u16p(v uint16) *uint16 { return &v }

// TestResourcesCreateAndUpdate verifies, through containerd on this cgroup v1 host, that a
// rich linux.resources reaches the container's cgroup files, that task.Update rewrites them,
// that an Update below the container's memory usage is refused as FailedPrecondition naming
// linux.resources.memory.limit with nothing changed, and that invalid values are refused as
// InvalidArgument naming the field, by Update and by NewTask (leaving nothing behind).
func TestResourcesCreateAndUpdate(t *testing.T) {
	c := startBox(t)
	if cgroups.Mode() == cgroups.Unified {
		t.Skip("reads cgroup v1 files; the v2 mapping is tested in the VM (runtime/cgroup)")
	}
	ctx := c.Context(t)
	major, minor := rootDisk(t)
	dev := fmt.Sprintf("%d:%d", major, minor)
	rich := func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: i64p(64 << 20), Reservation: i64p(32 << 20), Swap: i64p(96 << 20)}
		s.Linux.Resources.CPU = &specs.LinuxCPU{Shares: u64p(512), Quota: i64p(50000), Period: u64p(100000), Cpus: "0", Mems: "0"}
		s.Linux.Resources.Pids = &specs.LinuxPids{Limit: i64p(64)}
		s.Linux.Resources.BlockIO = &specs.LinuxBlockIO{
			Weight:                u16p(500),
			ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 1 << 20}},
		}
		return nil
	}
	id := harness.RandID(t, "res")
	// The child holds 8 MiB of anonymous memory, which cannot be reclaimed without swap.
	ctr := newContainer(t, c, id, []string{"sh", "-c", `v=$(head -c 8388608 /dev/zero | tr '\0' x); sleep 1000`}, rich)
	task, _ := startTask(t, c, ctr)
	cg := c.CgroupPath(id)
	check := func(when string, want [][3]string) {
		t.Helper()
		for _, w := range want {
			if got := readCgroupFile(t, w[0], cg, w[1]); got != w[2] {
				t.Errorf("%s: %s = %q, want %q", when, w[1], got, w[2])
			}
		}
	}
	check("after create", [][3]string{
		{"memory", "memory.limit_in_bytes", "67108864"},
		{"memory", "memory.soft_limit_in_bytes", "33554432"},
		{"memory", "memory.memsw.limit_in_bytes", "100663296"},
		{"cpu", "cpu.shares", "512"},
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpuset", "cpuset.cpus", "0"},
		{"pids", "pids.max", "64"},
		{"blkio", "blkio.bfq.weight", "500"},
		{"blkio", "blkio.throttle.read_bps_device", dev + " 1048576"},
	})

	update := func(r *specs.LinuxResources) error { return task.Update(ctx, client.WithResources(r)) }
	if err := update(&specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: i64p(128 << 20), Swap: i64p(256 << 20)},
		CPU:     &specs.LinuxCPU{Quota: i64p(20000), Shares: u64p(256)},
		Pids:    &specs.LinuxPids{Limit: i64p(-1)},
		BlockIO: &specs.LinuxBlockIO{ThrottleReadBpsDevice: []specs.LinuxThrottleDevice{{LinuxBlockIODevice: specs.LinuxBlockIODevice{Major: major, Minor: minor}, Rate: 2 << 20}}},
	}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	updated := [][3]string{
		{"memory", "memory.limit_in_bytes", "134217728"},
		{"memory", "memory.memsw.limit_in_bytes", "268435456"},
		{"cpu", "cpu.cfs_quota_us", "20000"},
		{"cpu", "cpu.shares", "256"},
		{"pids", "pids.max", "max"},
		{"blkio", "blkio.throttle.read_bps_device", dev + " 2097152"},
	}
	check("after Update", updated)

	// Below usage: the kernel cannot reclaim the child's memory; nothing of the Update stays.
	deadline := time.Now().Add(exitTimeout)
	for {
		usage, _ := strconv.ParseUint(readCgroupFile(t, "memory", cg, "memory.usage_in_bytes"), 10, 64)
		if usage >= 8<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the container never used 8 MiB (usage %d)", usage)
		}
		time.Sleep(20 * time.Millisecond)
	}
	err := update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: i64p(5)}, Memory: &specs.LinuxMemory{Limit: i64p(1 << 20), Swap: i64p(1 << 20)}})
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "linux.resources.memory.limit") {
		t.Errorf("Update below usage: %v, want FailedPrecondition naming linux.resources.memory.limit", err)
	}
	check("after a refused Update", updated)

	for _, bad := range []struct {
		field string
		r     *specs.LinuxResources
	}{
		{"linux.resources.cpu.shares", &specs.LinuxResources{CPU: &specs.LinuxCPU{Shares: u64p(1 << 20)}}},
		{"linux.resources.cpu.quota", &specs.LinuxResources{CPU: &specs.LinuxCPU{Quota: i64p(10)}}},
		{"linux.resources.memory.limit", &specs.LinuxResources{Memory: &specs.LinuxMemory{Limit: i64p(-7)}}},
		{"linux.resources.unified", &specs.LinuxResources{Unified: map[string]string{"memory.high": "max"}}},
		{`linux.resources.unified["../cgroup.procs"]`, &specs.LinuxResources{Unified: map[string]string{"../cgroup.procs": "1"}}},
		{"linux.resources.devices[0].type", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "q", Access: "rwm"}}}},
		{"linux.resources.devices[0].access", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{{Type: "c", Access: "rwx"}}}},
	} {
		err := update(bad.r)
		if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), bad.field) {
			t.Errorf("Update with bad %s: %v, want InvalidArgument naming it", bad.field, err)
		}
	}
	check("after refused bad input", updated)

	// Bad input at create: the error names the field and nothing is left behind.
	for _, bad := range []struct {
		name, field string
		opt         oci.SpecOpts
	}{
		{"device-type", "linux.resources.devices", func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Linux.Resources.Devices = append(s.Linux.Resources.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: "z", Access: "r"})
			return nil
		}},
		{"cgroups-path-escape", "linux.cgroupsPath", oci.WithCgroup(c.CgroupPath("x") + "/../../../escape")},
		{"pids", "linux.resources.pids.limit", oci.WithPidsLimit(-5)},
		{"unified-on-v1", "linux.resources.unified", func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			s.Linux.Resources.Unified = map[string]string{"memory.high": "max"}
			return nil
		}},
	} {
		t.Run(bad.name, func(t *testing.T) {
			id := harness.RandID(t, "badres")
			ctr := newContainer(t, c, id, []string{"true"}, bad.opt)
			_, _, err := newTask(t, c, ctr)
			requireCreateFailed(t, c, id, err, bad.field)
			if !errdefs.IsInvalidArgument(err) {
				t.Errorf("NewTask: %v, want InvalidArgument", err)
			}
		})
	}
}
