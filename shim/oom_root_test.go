package shim

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// requireCgroupV1 skips unless the test runs as root on a cgroup v1 (or hybrid) host.
func requireCgroupV1(t *testing.T) {
	t.Helper()
	testutil.RequiresRoot(t)
	if cgroup.Mode() != cgroup.ModeV1 {
		t.Skipf("cgroup mode %q; this test needs v1", cgroup.Mode())
	}
}

// memCgroup creates a cgroup with a memory (and memory+swap) limit below a fresh
// /box-test-<rand> parent. At test end it kills what is left in it and removes the cgroup and
// the parent, and nothing else.
func memCgroup(t *testing.T, limit int64) cgroup.Cgroup {
	t.Helper()
	parent := fmt.Sprintf("/box-test-%d", rand.Uint32())
	mem := &specs.LinuxMemory{Limit: &limit}
	if _, err := os.Stat("/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"); err == nil {
		mem.Swap = &limit // no swapping out of the OOM
	}
	cg, err := cgroup.New(parent+"/c", &specs.LinuxResources{Memory: mem})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for i := 0; i < 100; i++ {
			pids, err := cg.Pids()
			if err != nil || len(pids) == 0 {
				break
			}
			_ = cg.Kill(syscall.SIGKILL)
			time.Sleep(10 * time.Millisecond)
		}
		if err := cg.Delete(); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		hierarchies, _ := os.ReadDir("/sys/fs/cgroup")
		for _, h := range hierarchies {
			if err := syscall.Rmdir(filepath.Join("/sys/fs/cgroup", h.Name(), parent)); err != nil && err != syscall.ENOENT {
				t.Errorf("cleanup: rmdir %s in %s: %v", parent, h.Name(), err)
			}
		}
	})
	return cg
}

// startInCgroup starts sh -c script, adds it to cg, and only then lets it go on (the script
// must begin with `read x`), so everything it allocates is charged to cg.
func startInCgroup(t *testing.T, cg cgroup.Cgroup, script string) (cmd *exec.Cmd, stdin io.WriteCloser) {
	t.Helper()
	cmd = exec.Command("sh", "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(stdin, "go\n"); err != nil {
		t.Fatal(err)
	}
	return cmd, stdin
}

// allocForever doubles a string until the OOM killer ends the shell.
const allocForever = `read x; x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done`

// requireOOMKilled waits for cmd and checks that SIGKILL ended it.
func requireOOMKilled(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	err := cmd.Wait()
	st, ok := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if !ok || !st.Signaled() || st.Signal() != syscall.SIGKILL {
		t.Fatalf("allocating shell ended with %v, want SIGKILL from the OOM killer", err)
	}
}

// watchedContainer returns a container over cg, added to w.
func watchedContainer(t *testing.T, w *oomWatcher, id string, cg cgroup.Cgroup) *container {
	t.Helper()
	c := newResContainer(id, Running, cg)
	if err := w.add(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestOOMRootExitOrder runs a shell that allocates beyond an 8 MiB limit until the OOM killer
// ends it, several times, and checks each time that calling beforeExit right after the exit
// was collected puts exactly one TaskOOM before the TaskExit queued next.
func TestOOMRootExitOrder(t *testing.T) {
	requireCgroupV1(t)
	rec := newEvRecorder()
	q := newEventQueue(rec)
	defer q.close()
	w, err := newOOMWatcher(q)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()
	for i := range 5 {
		cg := memCgroup(t, 8<<20)
		id := fmt.Sprintf("oom-%d", i)
		c := watchedContainer(t, w, id, cg)
		cmd, _ := startInCgroup(t, cg, allocForever)
		requireOOMKilled(t, cmd)
		w.beforeExit(c)
		q.send("test", cruntime.TaskExitEventTopic, &eventstypes.TaskExit{ContainerID: id})
		want := []string{cruntime.TaskOOMEventTopic, cruntime.TaskExitEventTopic}
		if got := rec.drain(t, q); !slices.Equal(got, want) {
			t.Fatalf("run %d: events %v, want %v", i, got, want)
		}
		w.remove(c)
	}
}

// silentSource is an oomSource that never notifies: only beforeExit can publish.
type silentSource struct{ closed chan struct{} }

func (s *silentSource) Add(cgroup.Cgroup, uint64) error { return nil }
func (s *silentSource) Remove(uint64)                   {}
func (s *silentSource) Wait() ([]uint64, error)         { <-s.closed; return nil, cgroup.ErrOOMEventsClosed }
func (s *silentSource) Close() error                    { close(s.closed); return nil }

// TestOOMRootBeforeExitReadsCounter checks that beforeExit finds an OOM kill from the
// kernel's counter alone, without any notification; the negative control shows that without
// beforeExit nothing reports the kill.
func TestOOMRootBeforeExitReadsCounter(t *testing.T) {
	requireCgroupV1(t)
	rec := newEvRecorder()
	q := newEventQueue(rec)
	defer q.close()
	w := startOOMWatcher(q, &silentSource{closed: make(chan struct{})}, cgroup.OOMKills)
	defer w.close()

	cg := memCgroup(t, 8<<20)
	c := watchedContainer(t, w, "silent", cg)
	cmd, _ := startInCgroup(t, cg, allocForever)
	requireOOMKilled(t, cmd)
	if got := rec.drain(t, q); len(got) != 0 {
		t.Fatalf("negative control: events %v without notification or beforeExit, want none", got)
	}
	if n, err := cgroup.OOMKills(cg); err != nil || n != 1 {
		t.Fatalf("oom_kill counter %d (%v), want 1", n, err)
	}
	w.beforeExit(c)
	if got := rec.drain(t, q); !slices.Equal(got, []string{cruntime.TaskOOMEventTopic}) {
		t.Fatalf("events %v after beforeExit, want one TaskOOM", got)
	}
}

// TestOOMRootNotification checks the eventfd path: a child of the container's shell is
// OOM-killed while the shell lives on, and TaskOOM is published without any exit.
func TestOOMRootNotification(t *testing.T) {
	requireCgroupV1(t)
	rec := newEvRecorder()
	q := newEventQueue(rec)
	defer q.close()
	w, err := newOOMWatcher(q)
	if err != nil {
		t.Fatal(err)
	}
	defer w.close()

	cg := memCgroup(t, 8<<20)
	watchedContainer(t, w, "notified", cg)
	// The subshell is the big process, so it is the one killed; the outer shell waits.
	cmd, stdin := startInCgroup(t, cg, `read x; (x=aaaaaaaaaaaaaaaa; while :; do x=$x$x; done); read y; exit 0`)
	p := rec.next(t)
	if oom, ok := p.e.(*eventstypes.TaskOOM); !ok || oom.ContainerID != "notified" {
		t.Fatalf("got %s %+v, want TaskOOM of notified", p.topic, p.e)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("shell: %v; the test wanted only its child killed", err)
	}
	if got := rec.drain(t, q); len(got) != 0 {
		t.Fatalf("events %v after the TaskOOM, want none", got)
	}
}

// TestStatsRootV1 checks that Stats of a real v1 cgroup with a process that allocated memory
// returns *v1stats.Metrics with non-zero memory usage and the process counted.
func TestStatsRootV1(t *testing.T) {
	requireCgroupV1(t)
	cg := memCgroup(t, 64<<20)
	cmd := exec.Command("sh", "-c", `read x; x=$(printf '%0400000d' 0); echo ready; read y`)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	io.WriteString(stdin, "go\n")
	if _, err := io.ReadFull(stdout, make([]byte, len("ready\n"))); err != nil {
		t.Fatalf("child did not allocate: %v", err)
	}

	s, _ := newResService(t, newResContainer("stats", Running, cg))
	resp, err := s.Stats(context.Background(), &taskAPI.StatsRequest{ID: "stats"})
	if err != nil {
		t.Fatal(err)
	}
	v, err := typeurl.UnmarshalAny(resp.Stats)
	if err != nil {
		t.Fatal(err)
	}
	m, ok := v.(*v1stats.Metrics)
	if !ok {
		t.Fatalf("Stats returned %T, want *v1stats.Metrics", v)
	}
	if m.Memory.GetUsage().GetUsage() == 0 || m.Pids.GetCurrent() == 0 {
		t.Fatalf("memory usage %d, pids %d; want both > 0", m.Memory.GetUsage().GetUsage(), m.Pids.GetCurrent())
	}
	t.Logf("memory usage %d bytes, %d pids", m.Memory.GetUsage().GetUsage(), m.Pids.GetCurrent())
}
