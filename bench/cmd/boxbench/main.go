// Command boxbench compares containerd-shim-box-v1 with containerd-shim-runc-v2 + runc on one
// private containerd (`make bench`). Both runtimes get the same image, the same OCI spec
// options and, where a metric is a latency distribution, are measured interleaved (box, runc,
// box, runc, …) after a warm-up. It prints a table (p50/p90/p99 per runtime, box/runc ratios)
// and writes results.json and PNG plots to -out.
//
// Both sides run with containerd's default seccomp profile.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/bench/internal/rig"
)

// sizes are the sample sizes of a run.
type sizes struct {
	Warm       int `json:"warm"`
	L1         int `json:"l1"`
	L2         int `json:"l2"`
	L6         int `json:"l6"`
	S1         int `json:"s1"`
	T1         int `json:"t1"`
	Burst      int `json:"burst"`
	BurstConc  int `json:"burst_concurrency"`
	T3         int `json:"t3"`
	M1         int `json:"m1"`
	M3         int `json:"m3"`
	S4         int `json:"s4"`
	Floor      int `json:"floor"`
	FloorWarm  int `json:"floor_warm"`
	Concurrent int `json:"t1_concurrency"`
}

func fullSizes() sizes {
	return sizes{Warm: 5, L1: 60, L2: 100, L6: 50, S1: 100, T1: 60, Burst: 200, BurstConc: 50,
		T3: 200, M1: 100, M3: 20, S4: 10, Floor: 200, FloorWarm: 10, Concurrent: runtime.NumCPU()}
}

func quickSizes() sizes {
	return sizes{Warm: 2, L1: 10, L2: 15, L6: 10, S1: 20, T1: 12, Burst: 30, BurstConc: 10,
		T3: 30, M1: 20, M3: 5, S4: 3, Floor: 30, FloorWarm: 3, Concurrent: runtime.NumCPU()}
}

// Results is results.json.
type Results struct {
	Date        string               `json:"date"`
	Command     string               `json:"command"`
	Quick       bool                 `json:"quick"`
	Sizes       sizes                `json:"sizes"`
	Environment map[string]string    `json:"environment"`
	Spec        map[string]any       `json:"spec"`
	Metrics     []*Metric            `json:"metrics"`
	T3Series    map[string][]float64 `json:"t3_start_ms_by_index"`
	Floor       *Side                `json:"floor_ms,omitempty"`
	Notes       []string             `json:"notes"`
	Seconds     float64              `json:"seconds"`
}

type bench struct {
	rig *rig.Rig
	sz  sizes
	res *Results
	// rts are the runtimes measured interleaved: box, runc and, when the null shim runs,
	// null (containerd's own part). pair is box and runc only, for the metrics that compare
	// what only a real runtime has (memory, start under load, the spec).
	rts   []rig.Runtime
	pair  []rig.Runtime
	floor string // floorinit binary
}

func main() {
	out := flag.String("out", "_output/bench", "directory for results.json and plots")
	shim := flag.String("shim", "_output/bin/containerd-shim-box-v1", "box shim binary")
	tools := flag.String("tools", "_output/tools/bin", "directory with containerd and ctr")
	peer := flag.String("peer", "_output/peer/bin", "directory with containerd-shim-runc-v2 and runc")
	floorInit := flag.String("floor-init", "_output/bin/floorinit", "floorinit binary (bench/cmd/floorinit)")
	nullShim := flag.String("null-shim", "_output/bin/containerd-shim-null-v1", "null shim binary (bench/cmd/nullshim); \"\" for no containerd floor")
	quick := flag.Bool("quick", os.Getenv("BENCH_QUICK") == "1", "smoke run with small samples (BENCH_QUICK=1)")
	only := flag.String("only", "", "comma-separated workloads to run (L1,L2,L6,S1,T1,T3,M3,S4,FLOOR); default all")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "boxbench: must run as root")
		os.Exit(2)
	}
	if err := run(*out, *shim, *tools, *peer, *floorInit, *nullShim, *quick, *only); err != nil {
		fmt.Fprintln(os.Stderr, "boxbench:", err)
		os.Exit(1)
	}
}

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func run(out, shim, tools, peer, floorInit, nullShim string, quick bool, only string) (err error) {
	began := time.Now()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	sz := fullSizes()
	if quick {
		sz = quickSizes()
	}
	res := &Results{
		Date:        began.UTC().Format(time.RFC3339),
		Command:     strings.Join(os.Args, " "),
		Quick:       quick,
		Sizes:       sz,
		Environment: environment(shim, tools, peer),
		T3Series:    map[string][]float64{},
	}
	if nullShim != "" {
		nullShim = abs(nullShim)
	}
	r, err := rig.Start(ctx, rig.Config{Shim: abs(shim), Tools: abs(tools), Peer: abs(peer), Null: nullShim})
	defer func() {
		if r == nil {
			return
		}
		if p := recover(); p != nil {
			r.Close()
			panic(p)
		}
		if cerr := r.Close(); cerr != nil {
			fmt.Fprintln(os.Stderr, "cleanup:", cerr)
		}
		checkLeftovers(r)
	}()
	if err != nil {
		return err
	}
	res.Environment["loadavg_start"] = loadavg()
	b := &bench{rig: r, sz: sz, res: res, pair: []rig.Runtime{r.Box, r.Runc}, floor: abs(floorInit)}
	b.rts = b.pair
	if r.Null != nil {
		b.rts = append(b.rts, *r.Null)
		res.Notes = append(res.Notes, "containerd floor: the null shim (bench/cmd/nullshim, io.containerd.null.v1) does no work; measured interleaved with box and runc, it is containerd's own part of each operation and floor/runc the best ratio any shim can reach here.")
	} else {
		res.Notes = append(res.Notes, "containerd floor not measured (no null shim binary).")
	}
	logf("containerd %s in %s, cgroup parent %s; quick=%v", res.Environment["containerd"], r.Dir, r.CgroupParent, quick)
	bctx := r.Context(ctx)
	if err := b.recordSpec(bctx); err != nil {
		return fmt.Errorf("spec: %w", err)
	}
	want := func(w string) bool {
		if only == "" {
			return true
		}
		for _, o := range strings.Split(only, ",") {
			if strings.EqualFold(strings.TrimSpace(o), w) {
				return true
			}
		}
		return false
	}
	type workload struct {
		name string
		fn   func(context.Context) error
	}
	for _, w := range []workload{
		{"WARM", b.warmup}, {"L1", b.l1}, {"L2", b.l2}, {"L6", b.l6}, {"S1", b.s1}, {"S4", b.s4},
		{"T1", b.t1}, {"T3", b.t3}, {"M3", b.m3}, {"FLOOR", b.floorBench},
	} {
		if w.name != "WARM" && !want(w.name) {
			continue
		}
		t0 := time.Now()
		logf("== %s", w.name)
		if err := w.fn(bctx); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted during %s: %w", w.name, ctx.Err())
			}
			res.Notes = append(res.Notes, fmt.Sprintf("%s failed: %v", w.name, err))
			logf("%s failed: %v", w.name, err)
		}
		logf("   %s took %.1fs", w.name, time.Since(t0).Seconds())
	}
	for _, m := range res.Metrics {
		m.finish()
	}
	res.Notes = append(res.Notes,
		"Seccomp: both runtimes get containerd's default seccomp profile (contrib/seccomp; ctr run --seccomp); box compiles it to BPF itself, runc through libseccomp.",
		"Network: both use the host network namespace (pid, mount, ipc, uts namespaces are new).",
	)
	res.Environment["loadavg_end"] = loadavg()
	res.Seconds = time.Since(began).Seconds()
	if err := writeResults(out, res); err != nil {
		return err
	}
	if err := makePlots(out, res); err != nil {
		fmt.Fprintln(os.Stderr, "plots:", err)
	}
	fmt.Println()
	fmt.Printf("boxbench %s (quick=%v), %.0fs; box/runc < 1 means box is faster or smaller\n\n", res.Date, quick, res.Seconds)
	writeTable(os.Stdout, res.Metrics)
	if res.Floor != nil && res.Floor.Summary != nil {
		fmt.Printf("\nfloor (clone 4 ns + cgroup + pivot_root + exec static true, no containerd): p50 %.2f ms, p99 %.2f ms\n",
			res.Floor.Summary.P50, res.Floor.Summary.P99)
	}
	for _, n := range res.Notes {
		fmt.Println("note:", n)
	}
	fmt.Printf("\nresults: %s\n", filepath.Join(out, "results.json"))
	return nil
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func loadavg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	return strings.TrimSpace(string(b))
}

func writeResults(out string, res *Results) error {
	b, err := json.MarshalIndent(res, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "results.json"), b, 0o644)
}

func environment(shim, tools, peer string) map[string]string {
	env := map[string]string{"cpus": fmt.Sprint(runtime.NumCPU()), "go": runtime.Version()}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		env["kernel"] = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		env["memory_kib"] = strings.TrimSpace(strings.TrimSuffix(strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1], "kB"))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				env["cpu"] = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		env["cgroup"] = "v2"
	} else if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
		env["cgroup"] = "v1 (hybrid)"
	} else {
		env["cgroup"] = "v1"
	}
	version := func(key, bin string, args ...string) {
		o, err := exec.Command(bin, args...).Output()
		if err == nil {
			env[key] = strings.Join(strings.Fields(string(o)), " ")
		}
	}
	version("containerd", filepath.Join(tools, "containerd"), "--version")
	version("runc", filepath.Join(peer, "runc"), "--version")
	version("containerd-shim-runc-v2", filepath.Join(peer, "containerd-shim-runc-v2"), "-v")
	if o, err := exec.Command("git", "describe", "--always", "--dirty").Output(); err == nil {
		env["box_commit"] = strings.TrimSpace(string(o))
	}
	return env
}

// recordSpec stores what the shared spec looks like (from one container per side) and checks
// the two sides got the same one apart from the cgroup path.
func (b *bench) recordSpec(ctx context.Context) error {
	specs := map[string]string{}
	for _, rt := range b.pair {
		id := b.newID("spec", rt)
		c, err := b.newContainer(ctx, rt, id, []string{"true"})
		if err != nil {
			return err
		}
		s, err := c.Spec(ctx)
		deleteContainer(ctx, c)
		if err != nil {
			return err
		}
		var ns []string
		for _, n := range s.Linux.Namespaces {
			ns = append(ns, string(n.Type))
		}
		s.Linux.CgroupsPath = ""
		j, _ := json.Marshal(s)
		specs[rt.Name] = string(j)
		if b.res.Spec == nil {
			b.res.Spec = map[string]any{
				"namespaces":        ns,
				"masked_paths":      len(s.Linux.MaskedPaths),
				"readonly_paths":    len(s.Linux.ReadonlyPaths),
				"capabilities":      s.Process.Capabilities.Bounding,
				"seccomp":           s.Linux.Seccomp != nil,
				"image":             b.rig.Image.Name(),
				"no_new_privileges": s.Process.NoNewPrivileges,
			}
		}
	}
	if specs["box"] != specs["runc"] {
		return errors.New("box and runc containers got different specs")
	}
	return nil
}
