package integration

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// exitTimeout bounds every wait for a container or shim to exit.
const exitTimeout = 30 * time.Second

// startBox is harness.Start after the root check: every integration test needs both.
func startBox(t *testing.T, opts ...harness.Option) *harness.Containerd {
	t.Helper()
	testutil.RequiresRoot(t)
	return harness.Start(t, opts...)
}

// syncBuffer is a bytes.Buffer safe for the copy goroutines of cio.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer // guarded by mu
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newContainer creates a box container from the busybox image running args, with its cgroup
// below the harness's parent. It is deleted (task killed first) at test end.
func newContainer(t *testing.T, c *harness.Containerd, id string, args []string, opts ...oci.SpecOpts) client.Container {
	t.Helper()
	ctx := c.Context(t)
	img, err := c.Client.GetImage(ctx, c.Busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	specOpts := append([]oci.SpecOpts{oci.WithImageConfig(img), oci.WithProcessArgs(args...), c.WithCgroup(id)}, opts...)
	ctr, err := c.Client.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithNewSnapshot(id+"-snap", img),
		client.WithRuntime(harness.RuntimeBox, nil),
		client.WithNewSpec(specOpts...),
	)
	if err != nil {
		t.Fatalf("NewContainer %s: %v", id, err)
	}
	t.Cleanup(func() { deleteContainer(t, ctx, ctr) })
	return ctr
}

// deleteContainer kills and deletes the task if there is one, then deletes the container and
// its snapshot. NotFound is fine: the test may have done it already.
func deleteContainer(t *testing.T, ctx context.Context, ctr client.Container) {
	t.Helper()
	if task, err := ctr.Task(ctx, nil); err == nil {
		_ = task.Kill(ctx, syscall.SIGKILL)
		if _, err := task.Delete(ctx, client.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			t.Errorf("cleanup: delete task %s: %v", ctr.ID(), err)
		}
	}
	if err := ctr.Delete(ctx, client.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		t.Errorf("cleanup: delete container %s: %v", ctr.ID(), err)
	}
}

// stdio is a task's captured output.
type stdio struct{ out, err syncBuffer }

// newTask creates (but does not start) the container's task with captured stdout/stderr.
func newTask(t *testing.T, c *harness.Containerd, ctr client.Container) (client.Task, *stdio, error) {
	t.Helper()
	io := &stdio{}
	task, err := ctr.NewTask(c.Context(t), cio.NewCreator(cio.WithStreams(nil, &io.out, &io.err), cio.WithFIFODir(c.FIFODir)))
	return task, io, err
}

// result is what a finished task reported.
type result struct {
	stdout, stderr string
	code           uint32
}

// runToExit creates, starts and waits for the task, deletes it and returns its output and
// exit code. It fails the test on any API error.
func runToExit(t *testing.T, c *harness.Containerd, ctr client.Container) result {
	t.Helper()
	ctx := c.Context(t)
	task, io, err := newTask(t, c, ctr)
	if err != nil {
		t.Fatalf("NewTask %s: %v", ctr.ID(), err)
	}
	wait, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start %s: %v", ctr.ID(), err)
	}
	code := waitCode(t, wait)
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("Delete task %s: %v", ctr.ID(), err)
	}
	return result{stdout: io.out.String(), stderr: io.err.String(), code: code}
}

// waitCode returns the exit code from a Wait channel, failing after exitTimeout.
func waitCode(t *testing.T, wait <-chan client.ExitStatus) uint32 {
	t.Helper()
	select {
	case st := <-wait:
		code, _, err := st.Result()
		if err != nil {
			t.Fatalf("wait: %v", err)
		}
		return code
	case <-time.After(exitTimeout):
		t.Fatalf("task did not exit within %v", exitTimeout)
		return 0
	}
}

// startTask creates and starts a long-running task and returns it with its Wait channel.
func startTask(t *testing.T, c *harness.Containerd, ctr client.Container) (client.Task, <-chan client.ExitStatus) {
	t.Helper()
	ctx := c.Context(t)
	task, _, err := newTask(t, c, ctr)
	if err != nil {
		t.Fatalf("NewTask %s: %v", ctr.ID(), err)
	}
	wait, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start %s: %v", ctr.ID(), err)
	}
	return task, wait
}

// sections splits output printed as "==NAME==" header lines followed by content.
func sections(out string) map[string]string {
	m := map[string]string{}
	var name string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "==") && strings.HasSuffix(line, "==") && len(line) > 4 {
			name = strings.Trim(line, "=")
			m[name] = ""
			continue
		}
		if name != "" {
			m[name] += line + "\n"
		}
	}
	return m
}

// readCgroupFile reads a v1 controller file of cgroup path from the host side.
func readCgroupFile(t *testing.T, controller, path, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("/sys/fs/cgroup", controller, path, file))
	if err != nil {
		t.Fatalf("read %s cgroup file: %v", controller, err)
	}
	return strings.TrimSpace(string(b))
}

// fdCount counts the open file descriptors of pid.
func fdCount(t *testing.T, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join("/proc", strconv.Itoa(pid), "fd"))
	if err != nil {
		t.Fatalf("fds of %d: %v", pid, err)
	}
	return len(ents)
}

// oneShim returns the single shim process serving id.
func oneShim(t *testing.T, c *harness.Containerd, id string) int {
	t.Helper()
	pids := c.ShimPids(id)
	if len(pids) != 1 {
		t.Fatalf("want one shim process for %s, found %v", id, pids)
	}
	return pids[0]
}

// requireCreateFailed checks that NewTask failed with an error mentioning one of want, and
// that nothing of the container is left behind.
func requireCreateFailed(t *testing.T, c *harness.Containerd, id string, err error, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("NewTask %s succeeded, want an error mentioning one of %q", id, want)
	}
	t.Logf("NewTask %s failed as expected: %v", id, err)
	msg := strings.ToLower(err.Error())
	found := false
	for _, w := range want {
		found = found || strings.Contains(msg, strings.ToLower(w))
	}
	if !found {
		t.Errorf("NewTask %s error %q does not mention any of %q", id, err, want)
	}
	if errors.Is(err, errdefs.ErrNotImplemented) {
		t.Errorf("NewTask %s returned NotImplemented, which makes containerd downgrade the task API", id)
	}
	c.RequireNoLeftovers(t, id, 10*time.Second)
}

// requireVisibleWhileRunning is the negative control for RequireNoLeftovers: while container id
// runs, the probes must see its mount, cgroup, process and shim, or "nothing left" proves nothing.
func requireVisibleWhileRunning(t *testing.T, c *harness.Containerd, id string) {
	t.Helper()
	left := strings.Join(c.Leftovers(id), "\n")
	for _, kind := range []string{"mount:", "cgroup:", "process:", "shim:"} {
		if !strings.Contains(left, kind) {
			t.Errorf("negative control: no %s probe hit for running container %s; probes saw:\n%s", kind, id, left)
		}
	}
}
