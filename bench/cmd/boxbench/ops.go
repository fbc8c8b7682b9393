package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/bench/internal/rig"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/contrib/seccomp"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	"github.com/containerd/ttrpc"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// opTimeout bounds every single container operation so that a hung shim fails a sample
// instead of the run.
const opTimeout = 60 * time.Second

var idSeq atomic.Int64

func (b *bench) newID(prefix string, rt rig.Runtime) string {
	return fmt.Sprintf("%s-%s-%d", prefix, rt.Name, idSeq.Add(1))
}

// specOpts are the same on both sides: containerd's default Linux spec (pid, mount, ipc, uts
// namespaces; the network namespace is the host's; masked and read-only paths; the default
// capability set), the image config, args, a cgroup below the rig's parent, and containerd's
// default seccomp profile (what CRI gives a pod with RuntimeDefault).
func (b *bench) specOpts(id string, args []string, extra ...oci.SpecOpts) []oci.SpecOpts {
	opts := []oci.SpecOpts{
		oci.WithImageConfig(b.rig.Image),
		oci.WithProcessArgs(args...),
		oci.WithHostNamespace(specs.NetworkNamespace),
		oci.WithCgroup(b.rig.CgroupPath(id)),
		seccomp.WithDefaultProfile(),
	}
	return append(opts, extra...)
}

func (b *bench) newContainer(ctx context.Context, rt rig.Runtime, id string, args []string, extra ...oci.SpecOpts) (client.Container, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	return b.rig.Client.NewContainer(ctx, id,
		client.WithImage(b.rig.Image),
		client.WithNewSnapshot(id, b.rig.Image),
		client.WithRuntime(rt.Type, rt.Options),
		client.WithNewSpec(b.specOpts(id, args, extra...)...),
	)
}

func deleteContainer(ctx context.Context, c client.Container) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	return c.Delete(ctx, client.WithSnapshotCleanup)
}

// steps of one task lifecycle.
type steps struct {
	Create, Start, Exit, Delete, Total time.Duration
}

// lifecycle runs NewTask → Start → exit (Wait) → Delete of c, whose process exits by itself.
func lifecycle(ctx context.Context, c client.Container) (s steps, err error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	t0 := time.Now()
	task, err := c.NewTask(ctx, cio.NullIO)
	if err != nil {
		return s, fmt.Errorf("create: %w", err)
	}
	t1 := time.Now()
	exitCh, err := task.Wait(ctx)
	if err != nil {
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return s, fmt.Errorf("wait: %w", err)
	}
	t2 := time.Now()
	if err := task.Start(ctx); err != nil {
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return s, fmt.Errorf("start: %w", err)
	}
	t3 := time.Now()
	var st client.ExitStatus
	select {
	case st = <-exitCh:
	case <-ctx.Done():
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return s, fmt.Errorf("exit: %w", ctx.Err())
	}
	t4 := time.Now()
	if _, err := task.Delete(ctx); err != nil {
		return s, fmt.Errorf("delete: %w", err)
	}
	t5 := time.Now()
	if code, _, err := st.Result(); err != nil || code != 0 {
		return s, fmt.Errorf("exit status %d %v", code, err)
	}
	// Wait is registered between create and start and is not part of either step.
	return steps{Create: t1.Sub(t0), Start: t3.Sub(t2), Exit: t4.Sub(t3), Delete: t5.Sub(t4), Total: t5.Sub(t0) - t2.Sub(t1)}, nil
}

// running is a started long-lived task.
type running struct {
	c     client.Container
	task  client.Task
	exit  <-chan client.ExitStatus
	start time.Duration // NewTask + Start
}

func startRunning(ctx context.Context, c client.Container) (*running, error) {
	ctx2, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	t0 := time.Now()
	task, err := c.NewTask(ctx2, cio.NullIO)
	if err != nil {
		return nil, fmt.Errorf("create: %w", err)
	}
	t1 := time.Now()
	exitCh, err := task.Wait(ctx)
	if err != nil {
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return nil, err
	}
	t2 := time.Now()
	if err := task.Start(ctx2); err != nil {
		task.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return nil, fmt.Errorf("start: %w", err)
	}
	return &running{c: c, task: task, exit: exitCh, start: time.Since(t0) - t2.Sub(t1)}, nil
}

// killDelete is SIGKILL → exit → Delete of a running task; it returns how long that took.
func (r *running) killDelete(ctx context.Context) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), opTimeout)
	defer cancel()
	t0 := time.Now()
	if err := r.task.Kill(ctx, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill: %w", err)
	}
	select {
	case <-r.exit:
	case <-ctx.Done():
		return 0, fmt.Errorf("exit after kill: %w", ctx.Err())
	}
	if _, err := r.task.Delete(ctx); err != nil {
		return 0, fmt.Errorf("delete: %w", err)
	}
	return time.Since(t0), nil
}

// teardown kills and deletes the task and the container, ignoring errors.
func (r *running) teardown(ctx context.Context) {
	r.killDelete(ctx)
	deleteContainer(ctx, r.c)
}

// execTrue runs /bin/true in the running task: Exec + Wait + Start + exit + Delete.
func (r *running) execTrue(ctx context.Context, id string) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	spec, err := r.c.Spec(ctx)
	if err != nil {
		return 0, err
	}
	ps := *spec.Process
	ps.Args = []string{"/bin/true"}
	ps.Terminal = false
	t0 := time.Now()
	p, err := r.task.Exec(ctx, id, &ps, cio.NullIO)
	if err != nil {
		return 0, err
	}
	ch, err := p.Wait(ctx)
	if err != nil {
		p.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return 0, err
	}
	if err := p.Start(ctx); err != nil {
		p.Delete(context.WithoutCancel(ctx), client.WithProcessKill)
		return 0, err
	}
	st := <-ch
	if _, err := p.Delete(ctx); err != nil {
		return 0, err
	}
	d := time.Since(t0)
	if code, _, err := st.Result(); err != nil || code != 0 {
		return 0, fmt.Errorf("exec exit %d %v", code, err)
	}
	return d, nil
}

func notImplemented(err error) bool {
	return err != nil && (errdefs.IsNotImplemented(err) || strings.Contains(err.Error(), "not implemented"))
}

// memInfo is the memory of a set of shim processes.
type memInfo struct {
	Shims   int     `json:"shims"`
	RssKiB  float64 `json:"rss_kib"`
	PssKiB  float64 `json:"pss_kib"`
	AnonKiB float64 `json:"pss_anon_kib"`
	Threads int     `json:"threads"`
}

// shimMemory sums smaps_rollup (Rss, Pss, Pss_Anon) and Threads over the rig's shims of kind.
func (b *bench) shimMemory(kind string) memInfo {
	var m memInfo
	for _, pid := range b.rig.ShimPids(kind) {
		roll, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "smaps_rollup"))
		if err != nil {
			continue
		}
		status, _ := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "status"))
		m.Shims++
		m.RssKiB += field(roll, "Rss:")
		m.PssKiB += field(roll, "Pss:")
		m.AnonKiB += field(roll, "Pss_Anon:")
		m.Threads += int(field(status, "Threads:"))
	}
	return m
}

func field(b []byte, key string) float64 {
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, key) {
			f := strings.Fields(line[len(key):])
			if len(f) > 0 {
				v, _ := strconv.ParseFloat(f[0], 64)
				return v
			}
		}
	}
	return 0
}

// shimClient dials the task API of the shim serving task id, from the address containerd
// stored in the bundle (bootstrap.json, or the older plain "address" file).
func (b *bench) shimClient(id string) (taskv3.TTRPCTaskService, func(), error) {
	raw, err := os.ReadFile(filepath.Join(b.rig.Bundle(id), "bootstrap.json"))
	if err != nil {
		raw, err = os.ReadFile(filepath.Join(b.rig.Bundle(id), "address"))
	}
	if err != nil {
		return nil, nil, err
	}
	addr := strings.TrimSpace(string(raw))
	if strings.HasPrefix(addr, "{") {
		var br struct {
			Address string `json:"address"`
		}
		if err := json.Unmarshal(raw, &br); err != nil {
			return nil, nil, err
		}
		addr = br.Address
	}
	addr = strings.TrimPrefix(addr, "unix://")
	conn, err := net.Dial("unix", addr)
	if err != nil {
		return nil, nil, err
	}
	c := ttrpc.NewClient(conn)
	return taskv3.NewTTRPCTaskClient(c), func() { c.Close() }, nil
}
