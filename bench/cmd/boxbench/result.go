package main

import (
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/boxrt/containerd-shim-box-v1/bench/internal/stat"
)

// Side is one runtime's outcome for a metric.
type Side struct {
	Status  string        `json:"status"` // "ok", "not implemented", "error: …"
	Summary *stat.Summary `json:"summary,omitempty"`
	Value   *float64      `json:"value,omitempty"`
	Samples []float64     `json:"samples,omitempty"`
	Detail  any           `json:"detail,omitempty"`
}

// Metric is one line of the table.
type Metric struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Unit   string `json:"unit"`
	Better string `json:"better"` // "lower" or "higher"
	Box    Side   `json:"box"`
	Runc   Side   `json:"runc"`
	// Floor is the null shim's outcome (containerd's own part; docs/benchmarks.md), where
	// the metric measures it.
	Floor *Side `json:"containerd_floor,omitempty"`
	// box/runc of p50 and p99 (latencies) or of the value.
	RatioP50 *float64 `json:"ratio_p50,omitempty"`
	RatioP99 *float64 `json:"ratio_p99,omitempty"`
	Ratio    *float64 `json:"ratio,omitempty"`
	// floor/runc: the best box/runc ratio any shim can reach through this containerd.
	FloorRatioP50 *float64 `json:"floor_ratio_p50,omitempty"`
	FloorRatio    *float64 `json:"floor_ratio,omitempty"`
}

// set stores s as the outcome of the runtime called name ("box", "runc" or "null").
func (m *Metric) set(name string, s Side) {
	switch name {
	case "box":
		m.Box = s
	case "runc":
		m.Runc = s
	case "null":
		m.Floor = &s
	default:
		panic("boxbench: unknown runtime " + name)
	}
}

func ptr(f float64) *float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return nil
	}
	return &f
}

func latencySide(ms []float64, err error) Side {
	if err != nil && len(ms) == 0 {
		if notImplemented(err) {
			return Side{Status: "not implemented"}
		}
		return Side{Status: "error: " + err.Error()}
	}
	s := stat.Summarize(ms)
	side := Side{Status: "ok", Summary: &s, Samples: round(ms)}
	if err != nil {
		side.Status = "partial: " + err.Error()
	}
	return side
}

func valueSide(v float64, detail any) Side {
	return Side{Status: "ok", Value: ptr(v), Detail: detail}
}

func errSide(err error) Side {
	if notImplemented(err) {
		return Side{Status: "not implemented"}
	}
	return Side{Status: "error: " + err.Error()}
}

func round(xs []float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = math.Round(x*1000) / 1000
	}
	return out
}

func (m *Metric) finish() {
	if m.Box.Summary != nil && m.Runc.Summary != nil {
		m.RatioP50 = ptr(m.Box.Summary.P50 / m.Runc.Summary.P50)
		m.RatioP99 = ptr(m.Box.Summary.P99 / m.Runc.Summary.P99)
	}
	if m.Box.Value != nil && m.Runc.Value != nil {
		m.Ratio = ptr(*m.Box.Value / *m.Runc.Value)
	}
	if f := m.Floor; f != nil && f.Summary != nil && m.Runc.Summary != nil {
		m.FloorRatioP50 = ptr(f.Summary.P50 / m.Runc.Summary.P50)
	}
	if f := m.Floor; f != nil && f.Value != nil && m.Runc.Value != nil {
		m.FloorRatio = ptr(*f.Value / *m.Runc.Value)
	}
}

func fmtNum(f float64) string {
	switch a := math.Abs(f); {
	case a >= 100:
		return fmt.Sprintf("%.0f", f)
	case a >= 10:
		return fmt.Sprintf("%.1f", f)
	default:
		return fmt.Sprintf("%.2f", f)
	}
}

func (s Side) cells() (string, string, string) {
	switch {
	case s.Summary != nil:
		return fmtNum(s.Summary.P50), fmtNum(s.Summary.P90), fmtNum(s.Summary.P99)
	case s.Value != nil:
		return fmtNum(*s.Value), "", ""
	case s.Status == "":
		return "—", "", ""
	default:
		st := s.Status
		if len(st) > 40 {
			st = st[:40] + "…"
		}
		return st, "", ""
	}
}

func ratioCell(r *float64) string {
	if r == nil {
		return "—"
	}
	return fmt.Sprintf("%.2f", *r)
}

// speedup says how many times better box is (lower-is-better: runc/box).
func (m *Metric) speedup() string {
	var r *float64
	switch {
	case m.RatioP50 != nil:
		r = m.RatioP50
	case m.Ratio != nil:
		r = m.Ratio
	}
	if r == nil || *r == 0 {
		return "—"
	}
	if m.Better == "higher" {
		return fmt.Sprintf("%.1f×", *r)
	}
	return fmt.Sprintf("%.1f×", 1 / *r)
}

// writeTable prints a Markdown table of all metrics. The last two columns are the null
// shim's (containerd alone) p50 or value and its ratio to runc: no shim can do better
// through this containerd.
func writeTable(w io.Writer, ms []*Metric) {
	fmt.Fprintln(w, "| metric | unit | box p50 | box p90 | box p99 | runc p50 | runc p90 | runc p99 | box/runc p50 | box/runc p99 | box better by | containerd floor | floor/runc |")
	fmt.Fprintln(w, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, m := range ms {
		b50, b90, b99 := m.Box.cells()
		r50, r90, r99 := m.Runc.cells()
		rp50, rp99 := ratioCell(m.RatioP50), ratioCell(m.RatioP99)
		if m.Ratio != nil {
			rp50, rp99 = ratioCell(m.Ratio), ""
		}
		f50, fr := "", ""
		if m.Floor != nil {
			f50, _, _ = m.Floor.cells()
			fr = ratioCell(m.FloorRatioP50)
			if m.FloorRatio != nil {
				fr = ratioCell(m.FloorRatio)
			}
		}
		fmt.Fprintf(w, "| %s %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			m.ID, m.Name, m.Unit, b50, b90, b99, r50, r90, r99, rp50, rp99, m.speedup(), f50, fr)
	}
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }
