package oci

import (
	"fmt"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// CPUAffinity is process.execCPUAffinity as masks. A nil mask is "not set".
type CPUAffinity struct {
	// Initial is the affinity the exec stage is born with, so the work of
	// joining the container runs on these CPUs.
	Initial unix.CPUSetDynamic
	// Final is the affinity set once the stage is in the container's
	// cgroup (which resets it to the cgroup's cpuset), and so the
	// affinity the exec'd process starts with.
	Final unix.CPUSetDynamic
}

// schedPolicies maps process.scheduler.policy to SCHED_* numbers. SCHED_ISO
// (4) is in the spec, but Linux never implemented it: sched_setattr(2)
// fails with EINVAL, so it is refused here with a clear message instead.
var schedPolicies = map[specs.LinuxSchedulerPolicy]uint32{
	specs.SchedOther:    unix.SCHED_NORMAL,
	specs.SchedFIFO:     unix.SCHED_FIFO,
	specs.SchedRR:       unix.SCHED_RR,
	specs.SchedBatch:    unix.SCHED_BATCH,
	specs.SchedIdle:     unix.SCHED_IDLE,
	specs.SchedDeadline: unix.SCHED_DEADLINE,
}

// schedFlags maps process.scheduler.flags to SCHED_FLAG_* bits.
var schedFlags = map[specs.LinuxSchedulerFlag]uint64{
	specs.SchedFlagResetOnFork:  unix.SCHED_FLAG_RESET_ON_FORK,
	specs.SchedFlagReclaim:      unix.SCHED_FLAG_RECLAIM,
	specs.SchedFlagDLOverrun:    unix.SCHED_FLAG_DL_OVERRUN,
	specs.SchedFlagKeepPolicy:   unix.SCHED_FLAG_KEEP_POLICY,
	specs.SchedFlagKeepParams:   unix.SCHED_FLAG_KEEP_PARAMS,
	specs.SchedFlagUtilClampMin: unix.SCHED_FLAG_UTIL_CLAMP_MIN,
	specs.SchedFlagUtilClampMax: unix.SCHED_FLAG_UTIL_CLAMP_MAX,
}

// dlMinRuntime is the smallest SCHED_DEADLINE runtime the kernel takes
// (1 << DL_SCALE ns, kernel/sched/deadline.c __checkparam_dl).
const dlMinRuntime = 1 << 10

// scheduler validates process.scheduler (the rules of runc's validator
// plus the kernel's own, so a bad value fails Create, not the stage) and
// translates it to sched_setattr(2)'s argument.
func scheduler(s *specs.Scheduler) (*unix.SchedAttr, error) {
	if s == nil {
		return nil, nil
	}
	const f = "process.scheduler"
	if s.Policy == "" {
		return nil, fieldErrorf(f+".policy", "missing")
	}
	policy, ok := schedPolicies[s.Policy]
	if !ok {
		if s.Policy == specs.SchedISO {
			return nil, fieldErrorf(f+".policy", "SCHED_ISO is not implemented by Linux")
		}
		return nil, fieldErrorf(f+".policy", "unknown policy %q", s.Policy)
	}
	attr := &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: policy, Nice: s.Nice}
	if s.Nice < -20 || s.Nice > 19 {
		return nil, fieldErrorf(f+".nice", "%d is outside -20..19", s.Nice)
	}
	rt := s.Policy == specs.SchedFIFO || s.Policy == specs.SchedRR
	switch {
	case rt && (s.Priority < 1 || s.Priority > 99):
		return nil, fieldErrorf(f+".priority", "%d is outside 1..99 (%s)", s.Priority, s.Policy)
	case !rt && s.Priority != 0:
		return nil, fieldErrorf(f+".priority", "only SCHED_FIFO and SCHED_RR take a priority")
	}
	attr.Priority = uint32(s.Priority)
	if err := deadline(s); err != nil {
		return nil, err
	}
	attr.Runtime, attr.Deadline, attr.Period = s.Runtime, s.Deadline, s.Period
	for i, name := range s.Flags {
		bit, ok := schedFlags[name]
		if !ok {
			return nil, fieldErrorf(fmt.Sprintf("%s.flags[%d]", f, i), "unknown flag %q", name)
		}
		attr.Flags |= bit
	}
	return attr, nil
}

// deadline checks runtime, deadline and period: only SCHED_DEADLINE takes
// them, and there runtime <= deadline <= period (period 0 means equal to
// the deadline), as sched_setattr(2) requires.
func deadline(s *specs.Scheduler) error {
	const f = "process.scheduler"
	if s.Policy != specs.SchedDeadline {
		if s.Runtime != 0 || s.Deadline != 0 || s.Period != 0 {
			return fieldErrorf(f, "runtime, deadline and period are for SCHED_DEADLINE only")
		}
		return nil
	}
	const maxNS = 1 << 63 // the kernel refuses the top bit in both
	switch {
	case s.Runtime < dlMinRuntime:
		return fieldErrorf(f+".runtime", "%d ns is below the minimum of %d ns", s.Runtime, dlMinRuntime)
	case s.Deadline >= maxNS || s.Period >= maxNS:
		return fieldErrorf(f, "deadline and period must be below 2^63 ns")
	case s.Deadline < s.Runtime:
		return fieldErrorf(f+".deadline", "%d ns is below the runtime (%d ns)", s.Deadline, s.Runtime)
	case s.Period != 0 && s.Period < s.Deadline:
		return fieldErrorf(f+".period", "%d ns is below the deadline (%d ns)", s.Period, s.Deadline)
	}
	return nil
}

// ioprio_set(2) values (include/uapi/linux/ioprio.h).
const (
	ioprioClassShift = 13
	ioprioClassRT    = 1
	ioprioClassBE    = 2
	ioprioClassIdle  = 3
)

var ioprioClasses = map[specs.IOPriorityClass]int{
	specs.IOPRIO_CLASS_RT:   ioprioClassRT,
	specs.IOPRIO_CLASS_BE:   ioprioClassBE,
	specs.IOPRIO_CLASS_IDLE: ioprioClassIdle,
}

// ioPriority validates process.ioPriority and returns the ioprio_set(2)
// value: class << 13 | level.
func ioPriority(p *specs.LinuxIOPriority) (*int, error) {
	if p == nil {
		return nil, nil
	}
	class, ok := ioprioClasses[p.Class]
	if !ok {
		return nil, fieldErrorf("process.ioPriority.class", "unknown class %q", p.Class)
	}
	if p.Priority < 0 || p.Priority > 7 {
		return nil, fieldErrorf("process.ioPriority.priority", "%d is outside 0..7", p.Priority)
	}
	v := class<<ioprioClassShift | p.Priority
	return &v, nil
}

// execCPUAffinity parses process.execCPUAffinity. Both lists empty is the
// same as no affinity (nil).
func execCPUAffinity(a *specs.CPUAffinity) (*CPUAffinity, error) {
	if a == nil {
		return nil, nil
	}
	initial, err := ParseCPUList(a.Initial)
	if err != nil {
		return nil, fieldErrorf("process.execCPUAffinity.initial", "%v", err)
	}
	final, err := ParseCPUList(a.Final)
	if err != nil {
		return nil, fieldErrorf("process.execCPUAffinity.final", "%v", err)
	}
	if initial == nil && final == nil {
		return nil, nil
	}
	return &CPUAffinity{Initial: initial, Final: final}, nil
}

// checkLabel refuses what cannot be written to a /proc/<tid>/attr file
// as one label: control characters (a newline would end the label, NUL
// the string) and surrounding spaces.
func checkLabel(field, label string) error {
	if label == "" {
		return nil
	}
	if strings.TrimSpace(label) != label {
		return fieldErrorf(field, "%q has leading or trailing spaces", label)
	}
	for _, r := range label {
		if r < 0x20 || r == 0x7f {
			return fieldErrorf(field, "%q contains a control character", label)
		}
	}
	return nil
}

// processAttrs validates the scheduling, I/O priority, affinity and label
// fields of p into out.
func processAttrs(p *specs.Process, out *ProcessPlan) error {
	var err error
	if out.Scheduler, err = scheduler(p.Scheduler); err != nil {
		return err
	}
	if out.IOPriority, err = ioPriority(p.IOPriority); err != nil {
		return err
	}
	if out.ExecCPUAffinity, err = execCPUAffinity(p.ExecCPUAffinity); err != nil {
		return err
	}
	if err := checkLabel("process.apparmorProfile", p.ApparmorProfile); err != nil {
		return err
	}
	return checkLabel("process.selinuxLabel", p.SelinuxLabel)
}

// ExecProcess returns the process spec an exec'd process runs with: exec,
// with the fields it leaves unset taken from the container's own process,
// as runc does for "runc exec": apparmorProfile, selinuxLabel, scheduler,
// ioPriority and execCPUAffinity. exec is not modified.
func ExecProcess(exec, container *specs.Process) *specs.Process {
	if exec == nil || container == nil {
		return exec
	}
	p := *exec
	if p.ApparmorProfile == "" {
		p.ApparmorProfile = container.ApparmorProfile
	}
	if p.SelinuxLabel == "" {
		p.SelinuxLabel = container.SelinuxLabel
	}
	if p.Scheduler == nil {
		p.Scheduler = container.Scheduler
	}
	if p.IOPriority == nil {
		p.IOPriority = container.IOPriority
	}
	if p.ExecCPUAffinity == nil {
		p.ExecCPUAffinity = container.ExecCPUAffinity
	}
	return &p
}

// CapabilityNames lists every capability name box accepts, sorted.
func CapabilityNames() []string { return sortedKeys(capabilityBits) }
