package shim

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/signal"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	eventstypes "github.com/containerd/containerd/api/events"
	taskAPI "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/core/events"
	cruntime "github.com/containerd/containerd/v2/core/runtime"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	coci "github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
	// The exec stage's namespace join runs in this constructor.
	_ "github.com/boxrt/containerd-shim-box-v1/runtime/nsenter"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
	deletedrecord "github.com/boxrt/containerd-shim-box-v1/shim/launch/deleted"
)

// FuzzTaskSequence drives the task API of a real service (real runtime,
// real containers, the daemon's reaper and OOM watcher, events recorded in
// order) with a sequence of up to maxTaskOps calls picked by the input:
// Create, Start, Exec of two ids, Kill (several signals, All, execs),
// Pause, Resume, Delete, State, Wait, Pids, CloseIO, in any order. A
// cleanup (kill all, wait, delete) follows. It checks that nothing panics,
// no call hangs (opTimeout), the container is always deletable at the end,
// and the events keep containerd's order:
//
//   - TaskCreate first, TaskStart at most once, TaskDelete last;
//   - an exec's TaskExecAdded, TaskExecStarted and TaskExit in that order;
//   - every started exec's TaskExit before the init's TaskExit, and no exec
//     started after it.
//
// Root only: every input runs containers (about ten inputs a second).
func FuzzTaskSequence(f *testing.F) {
	for _, seed := range [][]byte{
		// sleep: Wait times out, Delete of a running task is refused.
		{opCreate, opStart, opWait, opDelete},
		// true: exits at once.
		{opByte(opCreate, 1), opStart, opWait, opDelete},
		// Two execs, then the init is killed.
		{opCreate, opStart, opExec, opStartExec, opByte(opExec, 1), opByte(opStartExec, 1), opKill, opWait, opDelete},
		// An exec added before Start, killed, deleted.
		{opCreate, opExec, opStart, opStartExec, opKillExec, opDeleteExec, opDelete},
		// Paused, an exec refused or started, killed while paused.
		{opCreate, opStart, opPause, opExec, opStartExec, opKill, opResume, opState, opDelete},
		// Delete before start, create again, invalid signal, kill all.
		{opCreate, opDelete, opStart, opCreate, opStart, opByte(opKill, 2), opByte(opKill, 3), opKillAll, opPids, opCloseIO},
		// Nothing created.
		{opStart, opKill, opDelete, opState, opExec},
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, ops []byte) {
		testutil.RequiresRoot(t)
		if len(ops) > maxTaskOps {
			ops = ops[:maxTaskOps]
		}
		h := newTaskHarness(t)
		for _, op := range ops {
			h.do(t, op)
		}
		h.cleanup(t)
		checkTaskEvents(t, h.rec.list(), ops)
	})
}

// The operations; an input byte b is operation b%numOps on exec
// "e<(b/numOps)%2>"; Kill's signal is picked by (b/numOps)%4 too.
const (
	opCreate = iota
	opStart
	opExec
	opStartExec
	opKill
	opKillExec
	opKillAll
	opDeleteExec
	opDelete
	opState
	opWait
	opPids
	opCloseIO
	opPause
	opResume
	numOps

	maxTaskOps = 16
	opTimeout  = 20 * time.Second
	fuzzTaskID = "c"
)

var fuzzSignals = []uint32{uint32(unix.SIGKILL), uint32(unix.SIGTERM), 0, 200}

// sliceRecorder is a Publisher that keeps every event, in order.
type sliceRecorder struct {
	mu  sync.Mutex
	evs []published // guarded by mu
}

func (r *sliceRecorder) Publish(ctx context.Context, topic string, e events.Event) error {
	ns, _ := namespaces.Namespace(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.evs = append(r.evs, published{ns: ns, topic: topic, e: e})
	return nil
}

func (r *sliceRecorder) list() []published {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]published(nil), r.evs...)
}

// taskHarness is one service with its reaper loop, a bundle and the
// recorder of its events.
type taskHarness struct {
	s      *service
	q      *eventQueue
	rec    *sliceRecorder
	ctx    context.Context
	bundle string
	spec   *specs.Spec
	// stopReap ends the reaper loop.
	stopReap func()
}

// newTaskHarness makes the service, a busybox bundle (the init runs
// "sleep 30" or "true", chosen later by Create) whose cgroup is below a
// fresh /box-test-<rand> parent, and starts reaping on SIGCHLD. Everything
// is undone when the test ends.
func newTaskHarness(t *testing.T) *taskHarness {
	t.Helper()
	bundle := t.TempDir()
	root := filepath.Join(bundle, "rootfs")
	for _, d := range []string{"bin", "proc", "sys", "dev", "etc", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is required: %v", err)
	}
	if err := os.WriteFile(filepath.Join(root, "bin/busybox"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "sleep", "true"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	ctx := namespaces.WithNamespace(context.Background(), "box-fuzz")
	sweepFuzzCgroups(t)
	parent := fmt.Sprintf("/%s%d-%d", fuzzCgroupPrefix, os.Getpid(), rand.Uint32())
	spec, err := coci.GenerateSpec(ctx, nil, &containers.Container{ID: fuzzTaskID},
		coci.WithRootFSPath(root), coci.WithProcessArgs("sleep", "30"), coci.WithCgroup(parent+"/"+fuzzTaskID))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTestCgroup(t, parent) })

	rec := &sliceRecorder{}
	q := newEventQueue(rec)
	oom, err := newOOMWatcher(q)
	if err != nil {
		t.Fatal(err)
	}
	rp := newReaper()
	sigs := make(chan os.Signal, 32)
	signal.Notify(sigs, unix.SIGCHLD)
	done := make(chan struct{})
	reaped := make(chan struct{})
	go func() {
		defer close(reaped)
		for {
			select {
			case <-sigs:
				rp.reap()
			case <-done:
				return
			}
		}
	}()
	h := &taskHarness{s: newService(rp, q, oom, func() {}), q: q, rec: rec, ctx: ctx, bundle: bundle, spec: spec}
	h.stopReap = sync.OnceFunc(func() {
		signal.Stop(sigs)
		close(done)
		<-reaped
		oom.close()
	})
	t.Cleanup(h.stopReap)
	return h
}

// fuzzCgroupPrefix names the cgroup parents of FuzzTaskSequence:
// <prefix><pid of the test process>-<random>.
const fuzzCgroupPrefix = "box-test-fuzztask-"

// sweepFuzzCgroups removes the cgroup parents that earlier inputs left when
// they never reached their cleanup (the fuzzing engine stops a worker
// mid-input when the time is up): those of this test only
// (fuzzCgroupPrefix), whose test process is gone and that hold no process.
func sweepFuzzCgroups(t *testing.T) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/" + fuzzCgroupPrefix + "*")
	v2, _ := filepath.Glob("/sys/fs/cgroup/" + fuzzCgroupPrefix + "*")
	for _, d := range append(dirs, v2...) {
		owner, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), fuzzCgroupPrefix), "-")
		pid, err := strconv.Atoi(owner)
		if err != nil || unix.Kill(pid, 0) == nil {
			continue // not ours, or its test process still runs
		}
		procs, _ := filepath.Glob(d + "/*/cgroup.procs")
		busy := false
		for _, p := range append(procs, d+"/cgroup.procs") {
			if b, err := os.ReadFile(p); err != nil || len(b) > 0 {
				busy = true
			}
		}
		if busy {
			continue
		}
		subs, _ := filepath.Glob(d + "/*/")
		for _, s := range subs {
			os.Remove(s)
		}
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			t.Logf("sweep %s: %v", d, err)
		}
	}
}

// removeTestCgroup removes parent (and the container's cgroup below it) in
// every hierarchy; it only ever touches the test's own /box-test-* parent.
func removeTestCgroup(t *testing.T, parent string) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	v2, _ := filepath.Glob("/sys/fs/cgroup" + parent)
	for _, d := range append(dirs, v2...) {
		subs, _ := filepath.Glob(d + "/*/")
		for _, s := range subs {
			os.Remove(s)
		}
		if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove cgroup %s: %v", d, err)
		}
	}
}

// writeSpec writes the bundle's config.json with the init running args.
func (h *taskHarness) writeSpec(t *testing.T, args ...string) {
	t.Helper()
	h.spec.Process.Args = args
	b, err := json.Marshal(h.spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(h.bundle, "config.json"), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// call runs fn, failing t if it does not return within opTimeout: a hung
// task call is a deadlock.
func call(t *testing.T, what string, fn func() error) error {
	t.Helper()
	ch := make(chan error, 1)
	go func() { ch <- fn() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(opTimeout):
		t.Fatalf("%s did not return within %v (deadlock?)", what, opTimeout)
		return nil
	}
}

// do runs the operation of input byte b. Errors are expected (a Start of a
// missing task, a Delete of a running one); only a hang or a panic fails.
func (h *taskHarness) do(t *testing.T, b byte) {
	t.Helper()
	op, arg := int(b)%numOps, int(b)/numOps
	execID := fmt.Sprintf("e%d", arg%2)
	ctx := h.ctx
	var what string
	var fn func() error
	switch op {
	case opCreate:
		what = "Create"
		args := []string{"sleep", "30"}
		if arg%2 == 1 {
			args = []string{"true"}
		}
		h.writeSpec(t, args...)
		fn = func() error {
			_, err := h.s.Create(ctx, &taskAPI.CreateTaskRequest{ID: fuzzTaskID, Bundle: h.bundle})
			return err
		}
	case opStart:
		what = "Start"
		fn = func() error { _, err := h.s.Start(ctx, &taskAPI.StartRequest{ID: fuzzTaskID}); return err }
	case opExec:
		what = "Exec " + execID
		p := *h.spec.Process
		p.Args = []string{"sleep", "30"}
		if arg%2 == 1 {
			p.Args = []string{"true"}
		}
		spec, err := typeurl.MarshalAnyToProto(&p)
		if err != nil {
			t.Fatal(err)
		}
		fn = func() error {
			_, err := h.s.Exec(ctx, &taskAPI.ExecProcessRequest{ID: fuzzTaskID, ExecID: execID, Spec: spec})
			return err
		}
	case opStartExec:
		what = "Start " + execID
		fn = func() error {
			_, err := h.s.Start(ctx, &taskAPI.StartRequest{ID: fuzzTaskID, ExecID: execID})
			return err
		}
	case opKill, opKillExec:
		sig := fuzzSignals[arg%len(fuzzSignals)]
		id := ""
		if op == opKillExec {
			id = execID
		}
		what = fmt.Sprintf("Kill %q %d", id, sig)
		fn = func() error {
			_, err := h.s.Kill(ctx, &taskAPI.KillRequest{ID: fuzzTaskID, ExecID: id, Signal: sig})
			return err
		}
	case opKillAll:
		what = "Kill all"
		fn = func() error {
			_, err := h.s.Kill(ctx, &taskAPI.KillRequest{ID: fuzzTaskID, Signal: uint32(unix.SIGKILL), All: true})
			return err
		}
	case opDeleteExec:
		what = "Delete " + execID
		fn = func() error {
			_, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: fuzzTaskID, ExecID: execID})
			return err
		}
	case opDelete:
		what = "Delete"
		fn = func() error { _, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: fuzzTaskID}); return err }
	case opState:
		what = "State"
		fn = func() error {
			_, err := h.s.State(ctx, &taskAPI.StateRequest{ID: fuzzTaskID, ExecID: []string{"", "e0"}[arg%2]})
			return err
		}
	case opWait:
		what = "Wait"
		fn = func() error {
			wctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
			defer cancel()
			_, err := h.s.Wait(wctx, &taskAPI.WaitRequest{ID: fuzzTaskID, ExecID: []string{"", "e0"}[arg%2]})
			return err
		}
	case opPids:
		what = "Pids"
		fn = func() error { _, err := h.s.Pids(ctx, &taskAPI.PidsRequest{ID: fuzzTaskID}); return err }
	case opCloseIO:
		what = "CloseIO"
		fn = func() error {
			_, err := h.s.CloseIO(ctx, &taskAPI.CloseIORequest{ID: fuzzTaskID, Stdin: true})
			return err
		}
	case opPause:
		what = "Pause"
		fn = func() error { _, err := h.s.Pause(ctx, &taskAPI.PauseRequest{ID: fuzzTaskID}); return err }
	case opResume:
		what = "Resume"
		fn = func() error { _, err := h.s.Resume(ctx, &taskAPI.ResumeRequest{ID: fuzzTaskID}); return err }
	}
	err := call(t, what, fn)
	if testing.Verbose() {
		t.Logf("%s: %v", what, err)
	}
}

// cleanup ends whatever the sequence left: kill everything, wait for the
// init, delete the execs and the container. The container must be gone
// afterwards (Delete may only fail with NotFound). Then the event queue is
// flushed and the reaper stopped.
func (h *taskHarness) cleanup(t *testing.T) {
	t.Helper()
	ctx := h.ctx
	if c, err := h.s.get(fuzzTaskID); err == nil && c != nil {
		_ = call(t, "cleanup Resume", func() error {
			_, err := h.s.Resume(ctx, &taskAPI.ResumeRequest{ID: fuzzTaskID})
			return err
		})
		_ = call(t, "cleanup Kill all", func() error {
			_, err := h.s.Kill(ctx, &taskAPI.KillRequest{ID: fuzzTaskID, Signal: uint32(unix.SIGKILL), All: true})
			return err
		})
		_ = call(t, "cleanup Wait", func() error {
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := h.s.Wait(wctx, &taskAPI.WaitRequest{ID: fuzzTaskID})
			return err
		})
		for _, id := range []string{"e0", "e1"} {
			_ = call(t, "cleanup Delete "+id, func() error {
				_, err := h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: fuzzTaskID, ExecID: id})
				return err
			})
		}
		var resp *taskAPI.DeleteResponse
		err := call(t, "cleanup Delete", func() error {
			var err error
			resp, err = h.s.Delete(ctx, &taskAPI.DeleteRequest{ID: fuzzTaskID})
			return err
		})
		if err != nil {
			t.Errorf("container not deletable after kill and wait: %v", err)
		} else if resp != nil {
			// The delete action containerd runs next answers the same.
			want := launch.EncodeDeleteResponse(resp.Pid, resp.ExitStatus, resp.ExitedAt.AsTime())
			if got, ok := deletedrecord.Read(h.bundle, fuzzTaskID); !ok || !bytes.Equal(got, want) {
				t.Errorf("delete record %x (%v), want %x", got, ok, want)
			}
		}
	}
	if _, err := h.s.get(fuzzTaskID); err == nil {
		t.Errorf("container still served after cleanup")
	}
	h.q.close()
	h.stopReap()
}

// checkTaskEvents checks the order of the events of one sequence (see
// FuzzTaskSequence).
func checkTaskEvents(t *testing.T, evs []published, ops []byte) {
	t.Helper()
	fail := func(i int, format string, args ...any) {
		t.Helper()
		var topics []string
		for _, e := range evs {
			topics = append(topics, eventLabel(e))
		}
		t.Fatalf("ops %v: event %d: %s; events %q", ops, i, fmt.Sprintf(format, args...), topics)
	}
	const (
		none = iota
		added
		started
		exited
	)
	execs := map[string]int{}
	created, startedInit, initExited, deleted := false, false, false, false
	for i, e := range evs {
		if deleted && e.topic != cruntime.TaskCreateEventTopic {
			fail(i, "event after TaskDelete")
		}
		if !created && e.topic != cruntime.TaskCreateEventTopic {
			fail(i, "event before TaskCreate")
		}
		switch ev := e.e.(type) {
		case *eventstypes.TaskCreate:
			if created && !deleted {
				fail(i, "second TaskCreate without a TaskDelete")
			}
			// A new container of the same id: start over.
			execs = map[string]int{}
			created, startedInit, initExited, deleted = true, false, false, false
		case *eventstypes.TaskStart:
			if startedInit {
				fail(i, "second TaskStart")
			}
			startedInit = true
		case *eventstypes.TaskExecAdded:
			if execs[ev.ExecID] == started {
				fail(i, "TaskExecAdded of running exec %s", ev.ExecID)
			}
			execs[ev.ExecID] = added
		case *eventstypes.TaskExecStarted:
			if execs[ev.ExecID] != added {
				fail(i, "TaskExecStarted of %s that is not just added", ev.ExecID)
			}
			if initExited {
				fail(i, "TaskExecStarted of %s after the init's TaskExit", ev.ExecID)
			}
			execs[ev.ExecID] = started
		case *eventstypes.TaskExit:
			if ev.ID == ev.ContainerID {
				if initExited {
					fail(i, "second TaskExit of the init")
				}
				for id, st := range execs {
					if st == started {
						fail(i, "init's TaskExit before the TaskExit of exec %s", id)
					}
				}
				initExited = true
				continue
			}
			if execs[ev.ID] != started {
				fail(i, "TaskExit of exec %s that is not running", ev.ID)
			}
			execs[ev.ID] = exited
		case *eventstypes.TaskDelete:
			deleted = true
		case *eventstypes.TaskPaused, *eventstypes.TaskResumed, *eventstypes.TaskOOM:
		default:
			fail(i, "unexpected event %T", e.e)
		}
	}
	if created && !deleted {
		t.Fatalf("ops %v: created but no TaskDelete after cleanup", ops)
	}
}

func eventLabel(p published) string {
	switch e := p.e.(type) {
	case *eventstypes.TaskExit:
		return "exit:" + e.ID
	case *eventstypes.TaskExecAdded:
		return "exec-added:" + e.ExecID
	case *eventstypes.TaskExecStarted:
		return "exec-started:" + e.ExecID
	}
	return p.topic
}

// runStage makes the test binary the container-side init or exec stage when
// the runtime executes it (TestMain calls it), as the shim binary's main
// does.
func runStage(stage string) {
	goruntime.LockOSThread()
	if stage == "init" {
		runtime.InitMain()
	}
	runtime.ExecMain()
}

// opByte is the input byte for op on exec "e<arg%2>" (Kill: signal arg%4).
func opByte(op, arg int) byte { return byte(op + arg*numOps) }
