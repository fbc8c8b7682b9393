package oci

import (
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// TestProcessAttrsRejects checks each rule for process.scheduler,
// ioPriority, execCPUAffinity and the LSM labels: a FieldError naming the
// field.
func TestProcessAttrsRejects(t *testing.T) {
	sched := func(s specs.Scheduler) func(p *specs.Process) {
		return func(p *specs.Process) { p.Scheduler = &s }
	}
	tests := []struct {
		name   string
		edit   func(p *specs.Process)
		field  string
		reason string
	}{
		{"no policy", sched(specs.Scheduler{}), "process.scheduler.policy", "missing"},
		{"unknown policy", sched(specs.Scheduler{Policy: "SCHED_FAST"}), "process.scheduler.policy", "unknown"},
		{"SCHED_ISO", sched(specs.Scheduler{Policy: specs.SchedISO}), "process.scheduler.policy", "not implemented"},
		{"nice too low", sched(specs.Scheduler{Policy: specs.SchedOther, Nice: -21}), "process.scheduler.nice", "-20..19"},
		{"nice too high", sched(specs.Scheduler{Policy: specs.SchedBatch, Nice: 20}), "process.scheduler.nice", "-20..19"},
		{"priority for OTHER", sched(specs.Scheduler{Policy: specs.SchedOther, Priority: 5}), "process.scheduler.priority", "only SCHED_FIFO"},
		{"FIFO priority 0", sched(specs.Scheduler{Policy: specs.SchedFIFO}), "process.scheduler.priority", "1..99"},
		{"RR priority 100", sched(specs.Scheduler{Policy: specs.SchedRR, Priority: 100}), "process.scheduler.priority", "1..99"},
		{"FIFO negative priority", sched(specs.Scheduler{Policy: specs.SchedFIFO, Priority: -1}), "process.scheduler.priority", "1..99"},
		{"runtime for OTHER", sched(specs.Scheduler{Policy: specs.SchedOther, Runtime: 1e6}), "process.scheduler", "SCHED_DEADLINE only"},
		{"deadline runtime too small", sched(specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 10, Deadline: 1e6}), "process.scheduler.runtime", "minimum"},
		{"deadline below runtime", sched(specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 2e6, Deadline: 1e6}), "process.scheduler.deadline", "below the runtime"},
		{"period below deadline", sched(specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 1e6, Deadline: 2e6, Period: 15e5}), "process.scheduler.period", "below the deadline"},
		{"deadline absurd", sched(specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 1e6, Deadline: 1 << 63}), "process.scheduler", "2^63"},
		{"unknown flag", sched(specs.Scheduler{Policy: specs.SchedOther, Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork, "SCHED_FLAG_X"}}), "process.scheduler.flags[1]", "unknown flag"},
		{"ioprio unknown class", func(p *specs.Process) {
			p.IOPriority = &specs.LinuxIOPriority{Class: "IOPRIO_CLASS_NONE"}
		}, "process.ioPriority.class", "unknown class"},
		{"ioprio negative", func(p *specs.Process) {
			p.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: -1}
		}, "process.ioPriority.priority", "0..7"},
		{"ioprio too high", func(p *specs.Process) {
			p.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_RT, Priority: 8}
		}, "process.ioPriority.priority", "0..7"},
		{"bad initial cpus", func(p *specs.Process) {
			p.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0-x"}
		}, "process.execCPUAffinity.initial", "not a number"},
		{"bad final cpus", func(p *specs.Process) {
			p.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0", Final: "5-1"}
		}, "process.execCPUAffinity.final", "above its end"},
		{"final cpus absurd", func(p *specs.Process) {
			p.ExecCPUAffinity = &specs.CPUAffinity{Final: "1000000"}
		}, "process.execCPUAffinity.final", "limit"},
		{"apparmor newline", func(p *specs.Process) { p.ApparmorProfile = "a\nchangeprofile b" }, "process.apparmorProfile", "control character"},
		{"apparmor spaces", func(p *specs.Process) { p.ApparmorProfile = " unconfined" }, "process.apparmorProfile", "spaces"},
		{"selinux NUL", func(p *specs.Process) { p.SelinuxLabel = "system_u:system_r:container_t:s0\x00" }, "process.selinuxLabel", "control character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := validProcess()
			tt.edit(p)
			_, err := NewProcessPlan(p)
			wantFieldError(t, err, tt.field, tt.reason)
		})
	}
}

// TestProcessAttrs checks the translation of valid scheduler, ioPriority,
// execCPUAffinity and labels.
func TestProcessAttrs(t *testing.T) {
	p := validProcess()
	p.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: -5,
		Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork, specs.SchedFlagKeepParams}}
	p.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 7}
	p.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0-1", Final: "1"}
	p.ApparmorProfile = "box-default"
	p.SelinuxLabel = "system_u:system_r:container_t:s0:c1,c2"
	pp, err := NewProcessPlan(p)
	if err != nil {
		t.Fatal(err)
	}
	want := unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_BATCH, Nice: -5,
		Flags: unix.SCHED_FLAG_RESET_ON_FORK | unix.SCHED_FLAG_KEEP_PARAMS}
	if pp.Scheduler == nil || *pp.Scheduler != want {
		t.Errorf("Scheduler = %+v, want %+v", pp.Scheduler, want)
	}
	if pp.IOPriority == nil || *pp.IOPriority != 3<<13|7 {
		t.Errorf("IOPriority = %v, want %#x", pp.IOPriority, 3<<13|7)
	}
	a := pp.ExecCPUAffinity
	if a == nil || FormatCPUList(a.Initial) != "0-1" || FormatCPUList(a.Final) != "1" {
		t.Errorf("ExecCPUAffinity = %+v", a)
	}
	if pp.ApparmorProfile != p.ApparmorProfile || pp.SelinuxLabel != p.SelinuxLabel {
		t.Errorf("labels = %q %q", pp.ApparmorProfile, pp.SelinuxLabel)
	}

	p = validProcess()
	p.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 1e6, Deadline: 2e6, Period: 3e6}
	p.ExecCPUAffinity = &specs.CPUAffinity{}
	if pp, err = NewProcessPlan(p); err != nil {
		t.Fatal(err)
	}
	if s := pp.Scheduler; s.Policy != unix.SCHED_DEADLINE || s.Runtime != 1e6 || s.Deadline != 2e6 || s.Period != 3e6 {
		t.Errorf("deadline Scheduler = %+v", s)
	}
	if pp.ExecCPUAffinity != nil {
		t.Errorf("empty execCPUAffinity = %+v, want nil", pp.ExecCPUAffinity)
	}

	p = validProcess()
	p.Scheduler = &specs.Scheduler{Policy: specs.SchedFIFO, Priority: 99}
	if pp, err = NewProcessPlan(p); err != nil {
		t.Fatal(err)
	}
	if s := pp.Scheduler; s.Policy != unix.SCHED_FIFO || s.Priority != 99 {
		t.Errorf("FIFO Scheduler = %+v", s)
	}
}

// TestExecProcess checks that an exec inherits the container's labels,
// scheduler, I/O priority and affinity where it sets none, and keeps its
// own where it does.
func TestExecProcess(t *testing.T) {
	ctr := validProcess()
	ctr.ApparmorProfile, ctr.SelinuxLabel = "ctr-profile", "ctr-label"
	ctr.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch}
	ctr.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 1}
	ctr.ExecCPUAffinity = &specs.CPUAffinity{Final: "0"}

	got := ExecProcess(validProcess(), ctr)
	if got.ApparmorProfile != "ctr-profile" || got.SelinuxLabel != "ctr-label" || got.Scheduler != ctr.Scheduler ||
		got.IOPriority != ctr.IOPriority || got.ExecCPUAffinity != ctr.ExecCPUAffinity {
		t.Errorf("inherited = %+v", got)
	}
	own := validProcess()
	own.ApparmorProfile, own.SelinuxLabel = "own-profile", "own-label"
	own.Scheduler = &specs.Scheduler{Policy: specs.SchedIdle}
	own.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE}
	own.ExecCPUAffinity = &specs.CPUAffinity{Initial: "1"}
	got = ExecProcess(own, ctr)
	if got.ApparmorProfile != "own-profile" || got.SelinuxLabel != "own-label" || got.Scheduler != own.Scheduler ||
		got.IOPriority != own.IOPriority || got.ExecCPUAffinity != own.ExecCPUAffinity {
		t.Errorf("own = %+v", got)
	}
	if own.ApparmorProfile != "own-profile" || validProcess().ApparmorProfile != "" {
		t.Error("ExecProcess modified its input")
	}
}
