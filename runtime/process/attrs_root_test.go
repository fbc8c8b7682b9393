package process

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// envReport makes the test binary, exec'd by a prepared child, print the
// scheduling attributes it was started with and exit.
const envReport = "BOX_PROCESS_TEST_REPORT"

func init() {
	if os.Getenv(envReport) != "" {
		fmt.Println(reportAttrs())
		os.Exit(0)
	}
}

// reportAttrs describes the calling thread's scheduler, nice, priority,
// I/O priority and personality.
func reportAttrs() string {
	a, err := unix.SchedGetAttr(0, 0)
	if err != nil {
		return "sched_getattr: " + err.Error()
	}
	io, err := IOPriority(0)
	if err != nil {
		return err.Error()
	}
	per, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, 0xffffffff, 0, 0)
	if errno != 0 {
		return "personality: " + errno.Error()
	}
	return fmt.Sprintf("policy=%d nice=%d prio=%d flags=%#x ioprio=%#x personality=%#x",
		a.Policy, a.Nice, a.Priority, a.Flags, io, per)
}

// reportProcess is a process spec that execs the test binary in report
// mode, as root with every capability the test has.
func reportProcess(t *testing.T) specs.Process {
	t.Helper()
	// Absolute: the child's cwd is "/", and the VM runs tests by a
	// relative path.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return specs.Process{
		Args: []string{self},
		Env:  []string{envReport + "=1"},
		Cwd:  "/",
		Capabilities: &specs.LinuxCapabilities{
			Bounding: []string{"CAP_SYS_NICE"}, Permitted: []string{"CAP_SYS_NICE"}, Effective: []string{"CAP_SYS_NICE"},
		},
	}
}

// TestPrepareSchedAttrs checks that the exec'd program runs with the
// planned scheduler (policy, nice, real-time priority, flags) and I/O
// priority, read back with sched_getattr(2) and ioprio_get(2) by the
// program itself.
func TestPrepareSchedAttrs(t *testing.T) {
	testutil.RequiresRoot(t)
	tests := []struct {
		name  string
		sched *specs.Scheduler
		io    *specs.LinuxIOPriority
		want  string
	}{
		{"batch nice 7, best effort 6", &specs.Scheduler{Policy: specs.SchedBatch, Nice: 7},
			&specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 6},
			fmt.Sprintf("policy=%d nice=7 prio=0 flags=0x0 ioprio=%#x", unix.SCHED_BATCH, 2<<13|6)},
		{"other nice -5 (needs CAP_SYS_NICE), idle class", &specs.Scheduler{Policy: specs.SchedOther, Nice: -5},
			&specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE, Priority: 0},
			fmt.Sprintf("policy=%d nice=-5 prio=0 flags=0x0 ioprio=%#x", unix.SCHED_NORMAL, 3<<13)},
		{"fifo 10 reset-on-fork, real-time class 0", &specs.Scheduler{Policy: specs.SchedFIFO, Priority: 10,
			Flags: []specs.LinuxSchedulerFlag{specs.SchedFlagResetOnFork}},
			&specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_RT, Priority: 0},
			fmt.Sprintf("policy=%d nice=0 prio=10 flags=0x1 ioprio=%#x", unix.SCHED_FIFO, 1<<13)},
		{"idle policy", &specs.Scheduler{Policy: specs.SchedIdle}, nil,
			fmt.Sprintf("policy=%d nice=0 prio=0 flags=0x0 ioprio=", unix.SCHED_IDLE)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := reportProcess(t)
			p.Scheduler, p.IOPriority = tt.sched, tt.io
			out, code := runChild(t, p)
			if code != 0 || !strings.Contains(out, tt.want) {
				t.Fatalf("exit %d, output %q; want it to contain %q", code, out, tt.want)
			}
		})
	}
}

// TestPrepareSchedulerRefused checks that a scheduler the kernel refuses
// fails Prepare with the field named, and the program does not run.
func TestPrepareSchedulerRefused(t *testing.T) {
	testutil.RequiresRoot(t)
	p := reportProcess(t)
	// A deadline period above kernel.sched_dl_period_max_us (4 s by
	// default) is refused with EINVAL.
	p.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 1e6, Deadline: 1e6, Period: 10e9}
	out, code := runChild(t, p)
	if code != childPrepareFailed || !strings.Contains(out, "process.scheduler: sched_setattr") ||
		!strings.Contains(out, "invalid=true") || strings.Contains(out, "policy=") {
		t.Fatalf("exit %d, output %q; want a process.scheduler error from Prepare", code, out)
	}
}
