package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/bench/internal/floor"
	"github.com/boxrt/containerd-shim-box-v1/bench/internal/procconn"
	"github.com/boxrt/containerd-shim-box-v1/bench/internal/rig"
	"github.com/boxrt/containerd-shim-box-v1/bench/internal/stat"
	taskv3 "github.com/containerd/containerd/api/runtime/task/v3"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs/pkg/errgrpc"
)

var sleepArgs = []string{"sleep", "100000"}

func (b *bench) add(m *Metric) { b.res.Metrics = append(b.res.Metrics, m) }

// fullLifecycle is NewContainer → task lifecycle → container delete.
func (b *bench) fullLifecycle(ctx context.Context, rt rig.Runtime, prefix string) (steps, error) {
	c, err := b.newContainer(ctx, rt, b.newID(prefix, rt), []string{"true"})
	if err != nil {
		return steps{}, fmt.Errorf("new container: %w", err)
	}
	s, err := lifecycle(ctx, c)
	if derr := deleteContainer(ctx, c); err == nil && derr != nil {
		err = fmt.Errorf("delete container: %w", derr)
	}
	return s, err
}

func (b *bench) warmup(ctx context.Context) error {
	for i := 0; i < b.sz.Warm; i++ {
		for _, rt := range b.rts {
			if _, err := b.fullLifecycle(ctx, rt, "warm"); err != nil {
				return fmt.Errorf("%s: %w", rt.Name, err)
			}
			if i < 2 {
				if _, err := b.ctrRun(ctx, rt); err != nil {
					return fmt.Errorf("%s ctr run: %w", rt.Name, err)
				}
			}
		}
	}
	return nil
}

// ctrRun is `ctr run --rm --net-host --cgroup … <image> <id> true`, timed from exec of ctr to
// its exit.
func (b *bench) ctrRun(ctx context.Context, rt rig.Runtime) (time.Duration, error) {
	id := b.newID("l1", rt)
	args := []string{"-a", b.rig.Address, "-n", rig.Namespace, "run", "--rm", "--fifo-dir", b.rig.FIFODir,
		"--net-host", "--seccomp", "--cgroup", b.rig.CgroupPath(id)}
	args = append(args, rt.CtrArgs...)
	args = append(args, b.rig.Image.Name(), id, "true")
	ctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, b.rig.Ctr, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return 0, fmt.Errorf("ctr run: %v: %s", err, stderr.String())
	}
	return d, nil
}

// interleave calls fn(rt) n times per runtime, box, runc, box, runc, … and collects
// milliseconds. A runtime whose first call fails with "not implemented" is skipped after.
func (b *bench) interleave(ctx context.Context, n int, fn func(rt rig.Runtime, i int) (float64, error)) (map[string][]float64, map[string]error) {
	ms := map[string][]float64{}
	errs := map[string]error{}
	for i := 0; i < n; i++ {
		for _, rt := range b.rts {
			if ctx.Err() != nil {
				errs[rt.Name] = ctx.Err()
				return ms, errs
			}
			if notImplemented(errs[rt.Name]) {
				continue
			}
			v, err := fn(rt, i)
			if err != nil {
				if errs[rt.Name] == nil {
					errs[rt.Name] = err
					logf("   %s: %v", rt.Name, err)
				}
				continue
			}
			ms[rt.Name] = append(ms[rt.Name], v)
		}
	}
	return ms, errs
}

func (b *bench) l1(ctx context.Context) error {
	ms, errs := b.interleave(ctx, b.sz.L1, func(rt rig.Runtime, _ int) (float64, error) {
		d, err := b.ctrRun(ctx, rt)
		return stat.Ms(d), err
	})
	b.add(b.latencyMetric("L1", "`ctr run --rm` true", ms, errs))
	return nil
}

func (b *bench) l2(ctx context.Context) error {
	type acc struct{ create, start, exit, del, total, kill []float64 }
	all := map[string]*acc{}
	for _, rt := range b.rts {
		all[rt.Name] = &acc{}
	}
	errs := map[string]error{}
	for i := 0; i < b.sz.L2; i++ {
		for _, rt := range b.rts {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a := all[rt.Name]
			s, err := b.fullLifecycle(ctx, rt, "l2")
			if err == nil {
				a.create = append(a.create, stat.Ms(s.Create))
				a.start = append(a.start, stat.Ms(s.Start))
				a.exit = append(a.exit, stat.Ms(s.Exit))
				a.del = append(a.del, stat.Ms(s.Delete))
				a.total = append(a.total, stat.Ms(s.Total))
			} else if errs[rt.Name] == nil {
				errs[rt.Name] = err
				logf("   %s lifecycle: %v", rt.Name, err)
			}
			// kill-to-delete of a running container
			c, err := b.newContainer(ctx, rt, b.newID("l2k", rt), sleepArgs)
			if err != nil {
				errs[rt.Name] = err
				continue
			}
			r, err := startRunning(ctx, c)
			if err == nil {
				var d time.Duration
				if d, err = r.killDelete(ctx); err == nil {
					a.kill = append(a.kill, stat.Ms(d))
				}
			}
			if err != nil && errs[rt.Name] == nil {
				errs[rt.Name] = err
				logf("   %s kill-delete: %v", rt.Name, err)
			}
			deleteContainer(ctx, c)
		}
	}
	mk := func(id, name string, get func(*acc) []float64) {
		ms := map[string][]float64{}
		for k, a := range all {
			ms[k] = get(a)
		}
		b.add(b.latencyMetric(id, name, ms, errs))
	}
	mk("L2", "lifecycle NewTask→Start→exit→Delete", func(a *acc) []float64 { return a.total })
	mk("L2c", "create (NewTask)", func(a *acc) []float64 { return a.create })
	mk("L2s", "start (Start)", func(a *acc) []float64 { return a.start })
	mk("L2e", "Start return → exit event (true)", func(a *acc) []float64 { return a.exit })
	mk("L2d", "delete after exit (Delete)", func(a *acc) []float64 { return a.del })
	mk("L2k", "kill-to-delete (Kill 9→exit→Delete)", func(a *acc) []float64 { return a.kill })
	return nil
}

// latencyMetric is a latency metric with one side per measured runtime.
func (b *bench) latencyMetric(id, name string, ms map[string][]float64, errs map[string]error) *Metric {
	m := &Metric{ID: id, Name: name, Unit: "ms", Better: "lower"}
	for _, rt := range b.rts {
		m.set(rt.Name, latencySide(ms[rt.Name], errs[rt.Name]))
	}
	return m
}

// withRunning starts one long-running container per runtime, calls fn and tears them down.
func (b *bench) withRunning(ctx context.Context, prefix string, fn func(map[string]*running)) error {
	return b.withRunningOpts(ctx, prefix, nil, func(rs map[string]*running) error { fn(rs); return nil })
}

// withRunningOpts is withRunning with spec options per runtime (opts may be nil), and fn's
// error returned.
func (b *bench) withRunningOpts(ctx context.Context, prefix string, opts func(rig.Runtime) []oci.SpecOpts, fn func(map[string]*running) error) error {
	rs := map[string]*running{}
	defer func() {
		for _, r := range rs {
			r.teardown(ctx)
		}
	}()
	for _, rt := range b.rts {
		var extra []oci.SpecOpts
		if opts != nil {
			extra = opts(rt)
		}
		c, err := b.newContainer(ctx, rt, b.newID(prefix, rt), sleepArgs, extra...)
		if err != nil {
			return err
		}
		r, err := startRunning(ctx, c)
		if err != nil {
			deleteContainer(ctx, c)
			return fmt.Errorf("%s: %w", rt.Name, err)
		}
		rs[rt.Name] = r
	}
	return fn(rs)
}

func (b *bench) l6(ctx context.Context) error {
	return b.withRunning(ctx, "l6", func(rs map[string]*running) {
		// warm-up exec, then samples
		ms, errs := b.interleave(ctx, b.sz.L6+1, func(rt rig.Runtime, i int) (float64, error) {
			d, err := rs[rt.Name].execTrue(ctx, fmt.Sprintf("exec-%d", i))
			return stat.Ms(d), err
		})
		for k, v := range ms {
			if len(v) > 0 {
				ms[k] = v[1:]
			}
		}
		b.add(b.latencyMetric("L6", "exec /bin/true (Exec+Start+Wait+Delete)", ms, errs))
	})
}

func (b *bench) s1(ctx context.Context) error {
	return b.withRunning(ctx, "s1", func(rs map[string]*running) {
		// S1: through containerd (client → containerd Tasks.Metrics → shim Stats).
		ms, errs := b.interleave(ctx, b.sz.S1+1, func(rt rig.Runtime, _ int) (float64, error) {
			c, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			t0 := time.Now()
			_, err := rs[rt.Name].task.Metrics(c)
			return stat.Ms(time.Since(t0)), err
		})
		// S1s: the shim's Stats RPC itself, over its ttrpc socket. containerd swallows a
		// shim's Stats error ("no metrics received"); this call shows the real answer.
		clients := map[string]taskv3.TTRPCTaskService{}
		for name, r := range rs {
			c, closeFn, err := b.shimClient(r.c.ID())
			if err != nil {
				logf("   S1 %s: dial shim: %v", name, err)
				continue
			}
			defer closeFn()
			clients[name] = c
		}
		ms2, errs2 := b.interleave(ctx, b.sz.S1+1, func(rt rig.Runtime, _ int) (float64, error) {
			c := clients[rt.Name]
			if c == nil {
				return 0, errors.New("no shim connection")
			}
			cctx, cancel := context.WithTimeout(ctx, opTimeout)
			defer cancel()
			t0 := time.Now()
			_, err := c.Stats(namespaces.WithNamespace(cctx, rig.Namespace), &taskv3.StatsRequest{ID: rs[rt.Name].c.ID()})
			return stat.Ms(time.Since(t0)), errgrpc.ToNative(err)
		})
		for _, m := range []map[string][]float64{ms, ms2} {
			for k, v := range m {
				if len(v) > 0 {
					m[k] = v[1:]
				}
			}
		}
		// containerd reports a shim's failed Stats as "no metrics received": say what the
		// shim said instead.
		if errs["box"] != nil && notImplemented(errs2["box"]) {
			errs["box"] = errs2["box"]
		}
		b.add(b.latencyMetric("S1", "Stats via containerd (task.Metrics)", ms, errs))
		b.add(b.latencyMetric("S1s", "Stats RPC at the shim (ttrpc)", ms2, errs2))
	})
}

// s4 counts execve calls of one task lifecycle (NewTask → Start → exit → Delete of /bin/true)
// with the proc connector: exec events of processes descending from containerd (followed by
// fork events), so unrelated host activity is not counted. An idle window of the same length
// after each lifecycle is the baseline. S4 is a container of its own; S4g a container that
// joins a group (io.containerd.runc.v2.group, as CRI's pods do with their sandbox id) whose
// first container keeps running, so its shim is already there.
func (b *bench) s4(ctx context.Context) error {
	l, err := procconn.Listen(b.rig.Pid())
	if err != nil {
		return err
	}
	defer l.Close()
	if err := b.countExecs(ctx, l, "S4", "execve per lifecycle (proc connector, median − idle baseline)", nil); err != nil {
		return err
	}
	groups := map[string]oci.SpecOpts{}
	return b.withRunningOpts(ctx, "s4anchor", func(rt rig.Runtime) []oci.SpecOpts {
		g := oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": b.newID("s4grp", rt)})
		groups[rt.Name] = g
		return []oci.SpecOpts{g}
	}, func(map[string]*running) error {
		return b.countExecs(ctx, l, "S4g", "execve per lifecycle, container joining a running group", groups)
	})
}

// countExecs measures b.sz.S4 lifecycles per runtime (interleaved) for metric id; a
// runtime's container gets opts[runtime name] when opts has it.
func (b *bench) countExecs(ctx context.Context, l *procconn.Listener, id, name string, opts map[string]oci.SpecOpts) error {
	type acc struct {
		execs, base []float64
		progs       map[string]int
		lost        int
	}
	all := map[string]*acc{}
	for _, rt := range b.rts {
		all[rt.Name] = &acc{progs: map[string]int{}}
	}
	errs := map[string]error{}
	settle := 300 * time.Millisecond
	for i := 0; i < b.sz.S4; i++ {
		for _, rt := range b.rts {
			a := all[rt.Name]
			var extra []oci.SpecOpts
			if o, ok := opts[rt.Name]; ok {
				extra = append(extra, o)
			}
			c, err := b.newContainer(ctx, rt, b.newID("s4", rt), []string{"true"}, extra...)
			if err != nil {
				return err
			}
			time.Sleep(settle)
			l.Take()
			t0 := time.Now()
			_, lerr := lifecycle(ctx, c)
			time.Sleep(settle) // late exec events (shim exit) land in the window
			got := l.Take()
			window := time.Since(t0)
			deleteContainer(ctx, c)
			time.Sleep(settle)
			l.Take()
			time.Sleep(window)
			base := l.Take()
			if lerr != nil {
				errs[rt.Name] = lerr
				continue
			}
			a.execs = append(a.execs, float64(got.Execs))
			a.base = append(a.base, float64(base.Execs))
			a.lost += got.Lost + base.Lost
			for k, v := range got.ByProgram {
				a.progs[k] += v
			}
		}
	}
	side := func(name string) Side {
		a := all[name]
		if len(a.execs) == 0 {
			return errSide(errs[name])
		}
		ex, base := stat.Summarize(a.execs), stat.Summarize(a.base)
		per := map[string]float64{}
		for k, v := range a.progs {
			per[k] = float64(v) / float64(len(a.execs))
		}
		s := valueSide(ex.P50-base.P50, map[string]any{"per_lifecycle": a.execs, "baseline_idle_window": a.base,
			"by_program_per_lifecycle": per, "events_lost": a.lost})
		return s
	}
	m := &Metric{ID: id, Name: name, Unit: "execs", Better: "lower"}
	for _, rt := range b.rts {
		m.set(rt.Name, side(rt.Name))
	}
	b.add(m)
	for _, rt := range b.rts {
		name := rt.Name
		var ks []string
		for k := range all[name].progs {
			ks = append(ks, k)
		}
		sort.Strings(ks)
		for _, k := range ks {
			logf("   %s %s: %-40s %.1f per lifecycle", id, name, k, float64(all[name].progs[k])/float64(max(1, len(all[name].execs))))
		}
	}
	return nil
}

// pool runs n full lifecycles of rt with conc workers; it returns wall time, per-container
// latencies and failures.
func (b *bench) pool(ctx context.Context, rt rig.Runtime, n, conc int, prefix string) (time.Duration, []float64, []error) {
	var mu sync.Mutex
	var lat []float64
	var errs []error
	jobs := make(chan struct{})
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				s := time.Now()
				_, err := b.fullLifecycle(ctx, rt, prefix)
				d := time.Since(s)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					lat = append(lat, stat.Ms(d))
				}
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	return time.Since(t0), lat, errs
}

func (b *bench) t1(ctx context.Context) error {
	conc := b.sz.Concurrent
	// throughput: two rounds per runtime, interleaved
	wall := map[string]time.Duration{}
	done := map[string]int{}
	fails := map[string][]error{}
	for round := 0; round < 2; round++ {
		for _, rt := range b.rts {
			w, lat, errs := b.pool(ctx, rt, b.sz.T1/2, conc, "t1")
			wall[rt.Name] += w
			done[rt.Name] += len(lat)
			fails[rt.Name] = append(fails[rt.Name], errs...)
		}
	}
	tp := func(name string) Side {
		if done[name] == 0 {
			return errSide(errors.Join(fails[name]...))
		}
		return valueSide(float64(done[name])/wall[name].Seconds(), map[string]any{
			"containers": done[name], "wall_s": wall[name].Seconds(), "failures": len(fails[name]), "concurrency": conc})
	}
	m := &Metric{ID: "T1", Name: fmt.Sprintf("containers/s, full lifecycle, concurrency %d", conc), Unit: "1/s", Better: "higher"}
	for _, rt := range b.rts {
		m.set(rt.Name, tp(rt.Name))
	}
	b.add(m)
	// burst
	bw := &Metric{ID: "T1b", Name: fmt.Sprintf("burst of %d at concurrency %d: wall time", b.sz.Burst, b.sz.BurstConc), Unit: "s", Better: "lower"}
	bl := &Metric{ID: "T1bl", Name: "burst: per-container lifecycle latency", Unit: "ms", Better: "lower"}
	bf := &Metric{ID: "T1bf", Name: "burst: failures", Unit: "count", Better: "lower"}
	for _, rt := range b.rts {
		w, lat, errs := b.pool(ctx, rt, b.sz.Burst, b.sz.BurstConc, "burst")
		var first string
		if len(errs) > 0 {
			first = errs[0].Error()
			logf("   burst %s: %d failures, first: %s", rt.Name, len(errs), first)
		}
		bw.set(rt.Name, valueSide(w.Seconds(), map[string]any{"ok": len(lat), "failures": len(errs), "first_error": first}))
		bl.set(rt.Name, latencySide(lat, nil))
		bf.set(rt.Name, valueSide(float64(len(errs)), first))
	}
	b.add(bw)
	b.add(bl)
	b.add(bf)
	return nil
}

// t3 starts T3 long-running containers one after another per runtime (box first, then runc,
// each torn down before the other starts) and records each start latency (NewTask + Start).
// With M1 containers running it measures the shims' memory (M1) and threads (M4).
func (b *bench) t3(ctx context.Context) error {
	first := &Metric{ID: "T3a", Name: "start (NewTask+Start), 1st container", Unit: "ms", Better: "lower"}
	last := &Metric{ID: "T3b", Name: fmt.Sprintf("start, %dth container (%d running)", b.sz.T3, b.sz.T3-1), Unit: "ms", Better: "lower"}
	lastTen := &Metric{ID: "T3c", Name: fmt.Sprintf("start, containers %d–%d", b.sz.T3-9, b.sz.T3), Unit: "ms", Better: "lower"}
	pss := &Metric{ID: "M1p", Name: fmt.Sprintf("shim PSS per container, %d idle", b.sz.M1), Unit: "MiB", Better: "lower"}
	rss := &Metric{ID: "M1r", Name: fmt.Sprintf("shim RSS per container, %d idle", b.sz.M1), Unit: "MiB", Better: "lower"}
	anon := &Metric{ID: "M1a", Name: fmt.Sprintf("shim Pss_Anon per container, %d idle", b.sz.M1), Unit: "MiB", Better: "lower"}
	thr := &Metric{ID: "M4", Name: fmt.Sprintf("threads per shim, %d idle", b.sz.M1), Unit: "threads", Better: "lower"}
	for _, rt := range b.pair {
		set := func(m *Metric, s Side) { m.set(rt.Name, s) }
		var rs []*running
		var lat []float64
		var err error
		for i := 0; i < b.sz.T3 && ctx.Err() == nil; i++ {
			var c interface{ ID() string }
			cc, e := b.newContainer(ctx, rt, b.newID("t3", rt), sleepArgs)
			if e != nil {
				err = e
				break
			}
			c = cc
			_ = c
			r, e := startRunning(ctx, cc)
			if e != nil {
				deleteContainer(ctx, cc)
				err = e
				break
			}
			rs = append(rs, r)
			lat = append(lat, stat.Ms(r.start))
			if len(rs) == b.sz.M1 {
				time.Sleep(2 * time.Second) // let the last shims settle
				m := b.shimMemory(rt.Name)
				n := float64(len(rs))
				set(pss, valueSide(m.PssKiB/1024/n, m))
				set(rss, valueSide(m.RssKiB/1024/n, m))
				set(anon, valueSide(m.AnonKiB/1024/n, m))
				set(thr, valueSide(float64(m.Threads)/float64(max(1, m.Shims)), m))
				logf("   %s with %d containers: %d shims, PSS %.1f MiB, RSS %.1f MiB, %d threads",
					rt.Name, len(rs), m.Shims, m.PssKiB/1024, m.RssKiB/1024, m.Threads)
			}
		}
		b.res.T3Series[rt.Name] = round(lat)
		if err != nil {
			logf("   T3 %s: %v after %d containers", rt.Name, err, len(rs))
		}
		if len(lat) == b.sz.T3 {
			set(first, valueSide(lat[0], nil))
			set(last, valueSide(lat[len(lat)-1], nil))
			set(lastTen, latencySide(lat[len(lat)-10:], nil))
		} else {
			e := err
			if e == nil {
				e = ctx.Err()
			}
			set(first, errSide(e))
			set(last, errSide(e))
			set(lastTen, errSide(e))
		}
		// teardown with a few workers
		var wg sync.WaitGroup
		ch := make(chan *running)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range ch {
					r.teardown(ctx)
				}
			}()
		}
		for _, r := range rs {
			ch <- r
		}
		close(ch)
		wg.Wait()
	}
	for _, m := range []*Metric{first, last, lastTen, pss, rss, anon, thr} {
		b.add(m)
	}
	return nil
}

// m3 measures the marginal shim memory of an extra container in a grouped shim: one
// container, then M3 more with the same io.containerd.runc.v2.group annotation.
func (b *bench) m3(ctx context.Context) error {
	mp := &Metric{ID: "M3", Name: "grouped shim: marginal PSS per extra container", Unit: "MiB", Better: "lower"}
	ma := &Metric{ID: "M3a", Name: "grouped shim: marginal Pss_Anon per extra container", Unit: "MiB", Better: "lower"}
	mr := &Metric{ID: "M3r", Name: "grouped shim: marginal RSS per extra container", Unit: "MiB", Better: "lower"}
	mt := &Metric{ID: "M4g", Name: fmt.Sprintf("grouped shim: threads with %d containers", b.sz.M3+1), Unit: "threads", Better: "lower"}
	for _, rt := range b.pair {
		set := func(m *Metric, s Side) { m.set(rt.Name, s) }
		group := b.newID("grp", rt)
		anno := oci.WithAnnotations(map[string]string{"io.containerd.runc.v2.group": group})
		var rs []*running
		var one memInfo
		var err error
		for i := 0; i <= b.sz.M3; i++ {
			c, e := b.newContainer(ctx, rt, b.newID("m3", rt), sleepArgs, anno)
			if e != nil {
				err = e
				break
			}
			r, e := startRunning(ctx, c)
			if e != nil {
				deleteContainer(ctx, c)
				err = e
				break
			}
			rs = append(rs, r)
			if i == 0 {
				time.Sleep(2 * time.Second)
				one = b.shimMemory(rt.Name)
			}
		}
		if err == nil {
			time.Sleep(2 * time.Second)
			all := b.shimMemory(rt.Name)
			n := float64(b.sz.M3)
			d := map[string]any{"one": one, "all": all, "extra_containers": b.sz.M3}
			set(mp, valueSide((all.PssKiB-one.PssKiB)/1024/n, d))
			set(mr, valueSide((all.RssKiB-one.RssKiB)/1024/n, d))
			set(ma, valueSide((all.AnonKiB-one.AnonKiB)/1024/n, d))
			set(mt, valueSide(float64(all.Threads), d))
			logf("   %s group: 1 → %d containers: shims %d → %d, PSS %.1f → %.1f MiB, threads %d → %d",
				rt.Name, len(rs), one.Shims, all.Shims, one.PssKiB/1024, all.PssKiB/1024, one.Threads, all.Threads)
		} else {
			logf("   M3 %s: %v", rt.Name, err)
			set(mp, errSide(err))
			set(mr, errSide(err))
			set(ma, errSide(err))
			set(mt, errSide(err))
		}
		for _, r := range rs {
			r.teardown(ctx)
		}
	}
	b.add(mp)
	b.add(ma)
	b.add(mr)
	b.add(mt)
	return nil
}

func (b *bench) floorBench(ctx context.Context) error {
	if _, err := os.Stat(b.floor); err != nil {
		return fmt.Errorf("floorinit: %w (go build -o %s ./bench/cmd/floorinit)", err, b.floor)
	}
	dir := filepath.Join(b.rig.Dir, "floor")
	ds, err := floor.Run(ctx, b.floor, dir, b.rig.CgroupParent+"/floor", b.sz.FloorWarm, b.sz.Floor)
	var ms []float64
	for _, d := range ds {
		ms = append(ms, stat.Ms(d))
	}
	s := latencySide(ms, err)
	b.res.Floor = &s
	if s.Summary != nil {
		logf("   floor: p50 %.2f ms p99 %.2f ms", s.Summary.P50, s.Summary.P99)
	}
	return err
}
