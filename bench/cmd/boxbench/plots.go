package main

import (
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/boxrt/containerd-shim-box-v1/bench/internal/rig"
	"github.com/boxrt/containerd-shim-box-v1/integration/harness/core"
	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

var colors = map[string]color.Color{
	"box":   color.RGBA{R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"runc":  color.RGBA{R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
	"floor": color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff},
	// containerd with the null shim: containerd's own part
	nullSeries: color.RGBA{R: 0x2c, G: 0xa0, B: 0x2c, A: 0xff},
}

const nullSeries = "containerd alone (null shim)"

func metric(res *Results, id string) *Metric {
	for _, m := range res.Metrics {
		if m.ID == id {
			return m
		}
	}
	return nil
}

// makePlots writes the PNGs: latency CDFs, start latency by container count, memory.
func makePlots(out string, res *Results) error {
	var errs []string
	note := func(err error) {
		if err != nil {
			errs = append(errs, err.Error())
		}
	}
	cdfs := []struct{ id, file string }{
		{"L1", "l1-ctr-run.png"}, {"L2", "l2-lifecycle.png"}, {"L2c", "l2-create.png"},
		{"L2s", "l2-start.png"}, {"L2k", "l2-kill-delete.png"}, {"L6", "l6-exec.png"},
		{"T1bl", "t1-burst-latency.png"},
	}
	for _, c := range cdfs {
		m := metric(res, c.id)
		if m == nil {
			continue
		}
		series := map[string][]float64{"box": m.Box.Samples, "runc": m.Runc.Samples}
		if c.id == "L2" && res.Floor != nil {
			series["floor"] = res.Floor.Samples
		}
		if m.Floor != nil && len(m.Floor.Samples) > 0 {
			series[nullSeries] = m.Floor.Samples
		}
		title := fmt.Sprintf("%s %s", m.ID, m.Name)
		for _, s := range []struct {
			name string
			side Side
		}{{"box", m.Box}, {"runc", m.Runc}} {
			if len(s.side.Samples) == 0 && s.side.Status != "ok" {
				title += fmt.Sprintf(" (%s: %s)", s.name, short(s.side.Status))
			}
		}
		note(cdf(filepath.Join(out, c.file), title, "latency (ms, log scale)", series))
	}
	if len(res.T3Series) > 0 {
		note(lines(filepath.Join(out, "t3-start-by-count.png"), "T3 start latency vs containers already running",
			"containers running before this one", "NewTask+Start (ms)", res.T3Series))
	}
	note(memoryBars(filepath.Join(out, "memory.png"), res))
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func short(s string) string {
	if len(s) > 30 {
		return s[:30] + "…"
	}
	return s
}

func orderedNames(series map[string][]float64) []string {
	var names []string
	for k := range series {
		names = append(names, k)
	}
	order := map[string]int{"box": 0, "runc": 1, nullSeries: 2, "floor": 3}
	sort.Slice(names, func(i, j int) bool { return order[names[i]] < order[names[j]] })
	return names
}

func cdf(file, title, xlabel string, series map[string][]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = "fraction ≤ x"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = false
	p.Add(plotter.NewGrid())
	any := false
	for _, name := range orderedNames(series) {
		xs := append([]float64(nil), series[name]...)
		if len(xs) == 0 {
			continue
		}
		sort.Float64s(xs)
		pts := make(plotter.XYs, 0, len(xs))
		for i, x := range xs {
			if x <= 0 {
				continue
			}
			pts = append(pts, plotter.XY{X: x, Y: float64(i+1) / float64(len(xs))})
		}
		l, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		l.Color = colors[name]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (n=%d)", name, len(xs)), l)
		any = true
	}
	if !any {
		return nil
	}
	p.Y.Min, p.Y.Max = 0, 1
	return p.Save(5*vg.Inch, 3*vg.Inch, file)
}

func lines(file, title, xlabel, ylabel string, series map[string][]float64) error {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel + ", log scale"
	p.Y.Scale = plot.LogScale{}
	p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	for _, name := range orderedNames(series) {
		ys := series[name]
		pts := make(plotter.XYs, 0, len(ys))
		for i, y := range ys {
			if y > 0 {
				pts = append(pts, plotter.XY{X: float64(i), Y: y})
			}
		}
		if len(pts) == 0 {
			continue
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return err
		}
		sc.GlyphStyle.Color = colors[name]
		sc.GlyphStyle.Radius = vg.Points(1.5)
		p.Add(sc)
		p.Legend.Add(name, sc)
	}
	return p.Save(5*vg.Inch, 3*vg.Inch, file)
}

// memoryBars: per-container shim PSS and RSS at M1 idle containers, and the marginal PSS/RSS
// of an extra container in a grouped shim.
func memoryBars(file string, res *Results) error {
	ids := []string{"M1p", "M1a", "M1r", "M3", "M3a", "M3r"}
	labels := []string{"PSS", "Pss_Anon", "RSS", "grp +PSS", "grp +anon", "grp +RSS"}
	vals := map[string]plotter.Values{}
	have := false
	for _, id := range ids {
		m := metric(res, id)
		for _, name := range []string{"box", "runc"} {
			v := 0.0
			if m != nil {
				s := m.Box
				if name == "runc" {
					s = m.Runc
				}
				if s.Value != nil {
					v, have = *s.Value, true
				}
			}
			vals[name] = append(vals[name], v)
		}
	}
	if !have {
		return nil
	}
	p := plot.New()
	p.Title.Text = "shim MiB per container (smaps_rollup); grp + = marginal, grouped shim"
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.Y.Label.Text = "MiB"
	p.Add(plotter.NewGrid())
	w := vg.Points(14)
	for i, name := range []string{"box", "runc"} {
		bc, err := plotter.NewBarChart(vals[name], w)
		if err != nil {
			return err
		}
		bc.Color = colors[name]
		bc.LineStyle.Width = 0
		bc.Offset = vg.Length(i-1)*w + w/2
		p.Add(bc)
		p.Legend.Add(name, bc)
	}
	p.Legend.Top = true
	p.NominalX(labels...)
	return p.Save(5*vg.Inch, 3*vg.Inch, file)
}

// checkLeftovers reports anything of the rig still on the host after Close.
func checkLeftovers(r *rig.Rig) {
	var left []string
	if _, err := os.Stat(r.Dir); err == nil {
		left = append(left, r.Dir)
	}
	for _, root := range core.CgroupRoots() {
		if _, err := os.Stat(filepath.Join(root, r.CgroupParent)); err == nil {
			left = append(left, filepath.Join(root, r.CgroupParent))
		}
	}
	if _, err := os.Stat(filepath.Join("/run/containerd/runc", rig.Namespace)); err == nil {
		left = append(left, "/run/containerd/runc/"+rig.Namespace)
	}
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && strings.Contains(string(b), r.Dir) {
		left = append(left, "mounts under "+r.Dir)
	}
	if pids := r.ShimPids(""); len(pids) > 0 {
		left = append(left, fmt.Sprintf("shim pids %v", pids))
	}
	if len(left) > 0 {
		fmt.Fprintf(os.Stderr, "boxbench: left behind: %s\n", strings.Join(left, ", "))
	} else {
		logf("cleanup: nothing left (dir, cgroups, mounts, shims, runc root)")
	}
}
