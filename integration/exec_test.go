package integration

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	eventtypes "github.com/containerd/containerd/api/events"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
	"github.com/containerd/typeurl/v2"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// execProcess starts args as exec id in task and returns the process, its
// captured output and its Wait channel.
func execProcess(t *testing.T, c *harness.Containerd, task client.Task, id string, spec *specs.Process, terminal bool) (client.Process, *stdio, <-chan client.ExitStatus, error) {
	t.Helper()
	ctx := c.Context(t)
	io := &stdio{}
	opts := []cio.Opt{cio.WithStreams(nil, &io.out, &io.err), cio.WithFIFODir(c.FIFODir)}
	if terminal {
		opts = append(opts, cio.WithTerminal)
	}
	p, err := task.Exec(ctx, id, spec, cio.NewCreator(opts...))
	if err != nil {
		return nil, nil, nil, err
	}
	wait, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		p.Delete(ctx)
		return nil, nil, nil, err
	}
	return p, io, wait, nil
}

// processSpec is the container's process spec with args replaced.
func processSpec(t *testing.T, ctx context.Context, ctr client.Container, args ...string) *specs.Process {
	t.Helper()
	s, err := ctr.Spec(ctx)
	if err != nil {
		t.Fatal(err)
	}
	p := *s.Process
	p.Args = args
	p.Terminal = false
	return &p
}

// TestExec runs a process in a running container: it shares the init's
// namespaces and cgroup, its output and exit code reach the client, and Pids
// names it by exec id.
func TestExec(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "exec")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	task, _ := startTask(t, c, ctr)

	spec := processSpec(t, ctx, ctr, "sh", "-c", "echo pid=$$; for n in pid mnt net uts ipc; do readlink /proc/self/ns/$n; done; sleep 0.5; exit 7")
	p, io, wait, err := execProcess(t, c, task, "e1", spec, false)
	if err != nil {
		t.Fatalf("exec: %v", err)
	}
	pids, err := task.Pids(ctx)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, pi := range pids {
		if pi.Pid != p.Pid() || pi.Info == nil {
			continue
		}
		v, err := typeurl.UnmarshalAny(pi.Info)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := v.(*options.ProcessDetails); ok && d.ExecID == "e1" {
			found = true
		}
	}
	if !found {
		t.Errorf("Pids %v does not name pid %d as exec e1", pids, p.Pid())
	}
	if code := waitCode(t, wait); code != 7 {
		t.Errorf("exec exit code %d, want 7; output %q", code, io.out.String())
	}
	out := io.out.String()
	if strings.Contains(out, "pid=1\n") || !strings.Contains(out, "pid=") {
		t.Errorf("exec pid line wrong (must not be 1 inside the container): %q", out)
	}
	for _, ns := range []string{"pid", "mnt", "net", "uts", "ipc"} {
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", task.Pid(), ns))
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out, link+"\n") {
			t.Errorf("exec is not in the init's %s namespace %s:\n%s", ns, link, out)
		}
	}
	if _, err := p.Delete(ctx); err != nil {
		t.Errorf("delete exec: %v", err)
	}
}

// TestExecExitsBeforeInitExit races 200 concurrent execs against the init's
// exit: every started exec's TaskExit is published, and all of them before
// the init's TaskExit.
func TestExecExitsBeforeInitExit(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "execrace")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	events, errs := c.Client.Subscribe(ctx, `topic=="/tasks/exit"`)
	task, wait := startTask(t, c, ctr)
	spec := processSpec(t, ctx, ctr, "sleep", "1000")

	const total, killAfter, parallel = 200, 100, 16
	var (
		mu      sync.Mutex
		started = map[string]bool{}
		wg      sync.WaitGroup
		sem     = make(chan struct{}, parallel)
		once    sync.Once
	)
	for i := 0; i < total; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			eid := "x" + strconv.Itoa(i)
			p, err := task.Exec(ctx, eid, spec, cio.NullIO)
			if err != nil {
				return // the init may be gone already
			}
			if err := p.Start(ctx); err != nil {
				return
			}
			mu.Lock()
			started[eid] = true
			n := len(started)
			mu.Unlock()
			if n == killAfter {
				once.Do(func() {
					if err := task.Kill(ctx, syscall.SIGKILL); err != nil {
						t.Errorf("kill init: %v", err)
					}
				})
			}
		}(i)
	}
	wg.Wait()
	once.Do(func() { t.Errorf("only %d execs started", len(started)) })
	waitCode(t, wait)

	seen := map[string]bool{}
	timeout := time.After(exitTimeout)
	for {
		select {
		case env := <-events:
			v, err := typeurl.UnmarshalAny(env.Event)
			if err != nil {
				t.Fatal(err)
			}
			e, ok := v.(*eventtypes.TaskExit)
			if !ok || e.ContainerID != id {
				continue
			}
			if e.ID != id {
				seen[e.ID] = true
				continue
			}
			mu.Lock()
			defer mu.Unlock()
			for eid := range started {
				if !seen[eid] {
					t.Errorf("exec %s: no TaskExit before the init's", eid)
				}
			}
			t.Logf("%d execs started, %d exec exits seen before the init's exit", len(started), len(seen))
			return
		case err := <-errs:
			t.Fatal(err)
		case <-timeout:
			t.Fatalf("no init TaskExit within %v", exitTimeout)
		}
	}
}

// TestExecBadInput checks clear errors for bad exec requests and that the
// container is unaffected by them.
func TestExecBadInput(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "execbad")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	task, _ := startTask(t, c, ctr)

	cases := []struct {
		name  string
		spec  func() *specs.Process
		check func(error) bool
		want  string
	}{
		{"missing binary", func() *specs.Process { return processSpec(t, ctx, ctr, "/no/such/binary") }, errdefs.IsNotFound, "/no/such/binary"},
		{"missing cwd", func() *specs.Process {
			p := processSpec(t, ctx, ctr, "true")
			p.Cwd = "/no/such/dir"
			return p
		}, errdefs.IsInvalidArgument, "cwd"},
		{"relative cwd", func() *specs.Process {
			p := processSpec(t, ctx, ctr, "true")
			p.Cwd = "tmp"
			return p
		}, errdefs.IsInvalidArgument, "cwd"},
		{"no args", func() *specs.Process { return processSpec(t, ctx, ctr) }, errdefs.IsInvalidArgument, "args"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := execProcess(t, c, task, "bad"+strconv.Itoa(i), tc.spec(), false)
			if err == nil || !tc.check(err) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a %s error mentioning %q", err, tc.name, tc.want)
			}
		})
	}
	// An unknown exec id.
	if _, err := task.LoadProcess(ctx, "nope", nil); !errdefs.IsNotFound(err) {
		t.Errorf("LoadProcess of an unknown exec: %v, want NotFound", err)
	}
	// The container still runs and still execs.
	st, err := task.Status(ctx)
	if err != nil || st.Status != client.Running {
		t.Fatalf("container status %v, %v after bad execs", st, err)
	}
	_, _, wait, err := execProcess(t, c, task, "good", processSpec(t, ctx, ctr, "true"), false)
	if err != nil {
		t.Fatalf("exec after bad ones: %v", err)
	}
	if code := waitCode(t, wait); code != 0 {
		t.Errorf("exec true exited %d", code)
	}
}

// TestExecTerminalResize runs an exec on a terminal, resizes it, and checks
// the size the process sees.
func TestExecTerminalResize(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	id := harness.RandID(t, "exectty")
	ctr := newContainer(t, c, id, []string{"sleep", "1000"})
	task, _ := startTask(t, c, ctr)

	spec := processSpec(t, ctx, ctr, "sh", "-c", "read x; tty; stty size")
	spec.Terminal = true
	io := &stdio{}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p, err := task.Exec(ctx, "tty", spec, cio.NewCreator(cio.WithStreams(r, &io.out, nil), cio.WithTerminal, cio.WithFIFODir(c.FIFODir)))
	if err != nil {
		t.Fatal(err)
	}
	wait, err := p.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(ctx); err != nil {
		t.Fatalf("start tty exec: %v", err)
	}
	if err := p.Resize(ctx, 100, 40); err != nil {
		t.Fatalf("resize: %v", err)
	}
	fmt.Fprintln(w, "go")
	w.Close()
	if code := waitCode(t, wait); code != 0 {
		t.Fatalf("tty exec exited %d: %q", code, io.out.String())
	}
	p.IO().Wait()
	out := strings.ReplaceAll(io.out.String(), "\r", "")
	if !strings.Contains(out, "/dev/pts/") || !strings.Contains(out, "40 100") {
		t.Fatalf("tty output %q, want a /dev/pts/N name and \"40 100\"", out)
	}
}
