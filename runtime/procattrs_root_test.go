package runtime

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
)

// createFails creates the bundle's container and returns Create's error,
// failing the test if Create succeeds.
func createFails(t *testing.T, bundle string, spec *specs.Spec) error {
	t.Helper()
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if err == nil {
		c.SignalAll(unix.SIGKILL)
		<-c.Exited()
		c.Destroy()
		t.Fatal("Create succeeded")
	}
	return err
}

// startExec execs p into c and returns the running process; it is killed
// when the test ends.
func startExec(t *testing.T, c *Container, mon Monitor, p *specs.Process) *Process {
	t.Helper()
	proc, err := c.Exec(context.Background(), ProcessConfig{ID: "e", Spec: p, Monitor: mon})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		proc.Signal(unix.SIGKILL)
		<-proc.Exited()
		proc.Close()
	})
	return proc
}

// schedOf describes pid's scheduler and I/O priority as the kernel reports
// them (sched_getattr(2), ioprio_get(2)).
func schedOf(t *testing.T, pid int) (policy uint32, nice int32, ioprio int) {
	t.Helper()
	a, err := unix.SchedGetAttr(pid, 0)
	if err != nil {
		t.Fatal(err)
	}
	io, err := process.IOPriority(pid)
	if err != nil {
		t.Fatal(err)
	}
	return a.Policy, a.Nice, io
}

// TestSchedulerIOPriority checks that the init gets process.scheduler and
// process.ioPriority, that an exec without its own inherits them (as with
// runc) and that an exec's own replace them.
func TestSchedulerIOPriority(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sleep", "1000")
	spec.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedBatch, Nice: 5}
	spec.Process.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_BE, Priority: 3}
	c, mon := createStarted(t, bundle, spec)
	if pol, nice, io := schedOf(t, c.Pid); pol != unix.SCHED_BATCH || nice != 5 || io != 2<<13|3 {
		t.Errorf("init: policy %d nice %d ioprio %#x; want %d 5 %#x", pol, nice, io, unix.SCHED_BATCH, 2<<13|3)
	}
	inherit := startExec(t, c, mon, execSpec(spec, "sleep", "1000"))
	if pol, nice, io := schedOf(t, inherit.Pid); pol != unix.SCHED_BATCH || nice != 5 || io != 2<<13|3 {
		t.Errorf("exec inheriting: policy %d nice %d ioprio %#x", pol, nice, io)
	}
	own := execSpec(spec, "sleep", "1000")
	own.Scheduler = &specs.Scheduler{Policy: specs.SchedIdle}
	own.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPRIO_CLASS_IDLE}
	p := startExec(t, c, mon, own)
	if pol, _, io := schedOf(t, p.Pid); pol != unix.SCHED_IDLE || io != 3<<13 {
		t.Errorf("exec with its own: policy %d ioprio %#x; want %d %#x", pol, io, unix.SCHED_IDLE, 3<<13)
	}
}

// TestSchedulerDeadline checks SCHED_DEADLINE (runc's integration test
// values) on the init and an inheriting exec: the Go stages survive the
// policy (a deadline task cannot fork) up to execve.
func TestSchedulerDeadline(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sleep", "1000")
	spec.Process.Scheduler = &specs.Scheduler{Policy: specs.SchedDeadline, Runtime: 42000, Deadline: 1000000, Period: 1000000}
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	mon := &testMonitor{}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: mon})
	if errdefs.IsFailedPrecondition(err) {
		t.Skipf("this host's cgroups or cpusets do not admit SCHED_DEADLINE: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.SignalAll(unix.SIGKILL)
		<-c.Exited()
		c.Destroy()
	})
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	p := startExec(t, c, mon, execSpec(spec, "sleep", "1000"))
	for what, pid := range map[string]int{"init": c.Pid, "exec": p.Pid} {
		a, err := unix.SchedGetAttr(pid, 0)
		if err != nil || a.Policy != unix.SCHED_DEADLINE || a.Runtime != 42000 || a.Deadline != 1e6 || a.Period != 1e6 {
			t.Errorf("%s: %+v, %v", what, a, err)
		}
	}
}

// TestPersonalityLinux32 checks linux.personality LINUX32: "uname -m"
// reports a 32-bit machine in the init and in an exec.
func TestPersonalityLinux32(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "/bin/busybox", "uname", "-m")
	spec.Linux.Personality = &specs.LinuxPersonality{Domain: specs.PerLinux32}
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 || strings.TrimSpace(out) != "i686" {
		t.Fatalf("init: exit %d, uname -m %q; want i686", e.Status, out)
	}
	spec.Process.Args = []string{"sleep", "1000"}
	c, mon := createStarted(t, bundle, spec)
	out, e, err := execInto(t, c, mon, execSpec(spec, "/bin/busybox", "uname", "-m"))
	if err != nil || e.Status != 0 || strings.TrimSpace(out) != "i686" {
		t.Fatalf("exec: %v, exit %d, uname -m %q; want i686", err, e.Status, out)
	}
}

// TestMemoryPolicy checks linux.memoryPolicy on the init and an exec
// (/proc/<pid>/numa_maps shows each mapping's policy), and that nodes the
// host lacks fail Create with the field named.
func TestMemoryPolicy(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sleep", "1000")
	spec.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "0"}
	c, mon := createStarted(t, bundle, spec)
	p := startExec(t, c, mon, execSpec(spec, "sleep", "1000"))
	for what, pid := range map[string]int{"init": c.Pid, "exec": p.Pid} {
		maps, err := os.ReadFile("/proc/" + itoa(pid) + "/numa_maps")
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(maps), "\n")
		if f := strings.Fields(first); len(f) < 2 || f[1] != "bind:0" {
			t.Errorf("%s: numa_maps starts %q; want policy bind:0", what, first)
		}
	}

	bundle, spec, _ = testBundle(t, "true")
	spec.Linux.MemoryPolicy = &specs.LinuxMemoryPolicy{Mode: specs.MpolBind, Nodes: "900"}
	err := createFails(t, bundle, spec)
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "linux.memoryPolicy") {
		t.Fatalf("Create with a missing node: %v; want an invalid linux.memoryPolicy", err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// onlineCPUs lists the host's online CPUs: the affinity of a task the
// test's cgroups do not restrict. (The test process's own threads are no
// reference: a thread a test changed can be the main one, which Go keeps.)
func onlineCPUs(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		t.Fatal(err)
	}
	set, err := oci.ParseCPUList(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return oci.FormatCPUList(set)
}

// affinityOf is pid's CPU affinity as a list.
func affinityOf(t *testing.T, pid int) string {
	t.Helper()
	set := unix.NewCPUSet(oci.MaxCPU)
	if err := unix.SchedGetaffinityDynamic(pid, set); err != nil {
		t.Fatal(err)
	}
	return oci.FormatCPUList(set)
}

// TestExecCPUAffinity checks process.execCPUAffinity with runc's meaning:
// the exec'd process runs on the final list; with only an initial list it
// keeps that one; an exec inherits the container's; the init is not
// affected; a list of CPUs the host lacks fails the exec with the field
// named.
func TestExecCPUAffinity(t *testing.T) {
	testutil.RequiresRoot(t)
	all := onlineCPUs(t)
	if all == "0" {
		t.Skip("needs two CPUs")
	}
	bundle, spec, _ := testBundle(t, "sleep", "1000")
	spec.Process.ExecCPUAffinity = &specs.CPUAffinity{Initial: "0", Final: "1"}
	c, mon := createStarted(t, bundle, spec)
	if got := affinityOf(t, c.Pid); got != all {
		t.Errorf("init affinity %s; want every CPU (%s): execCPUAffinity is not for the init", got, all)
	}
	if got := affinityOf(t, startExec(t, c, mon, execSpec(spec, "sleep", "1000")).Pid); got != "1" {
		t.Errorf("exec inheriting {0 -> 1}: affinity %s; want 1", got)
	}
	own := execSpec(spec, "sleep", "1000")
	own.ExecCPUAffinity = &specs.CPUAffinity{Initial: "1"}
	// With only an initial list the stage keeps it, unless entering the
	// cgroup resets it (kernels before 6.2 do), as with runc.
	want := all
	if keepsRequestedAffinity(t, c) {
		want = "1"
	}
	if got := affinityOf(t, startExec(t, c, mon, own).Pid); got != want {
		t.Errorf("exec with initial 1 only: affinity %s; want %s", got, want)
	}
	own.ExecCPUAffinity = &specs.CPUAffinity{Final: "0"}
	if got := affinityOf(t, startExec(t, c, mon, own).Pid); got != "0" {
		t.Errorf("exec with final 0: affinity %s; want 0", got)
	}
	own.ExecCPUAffinity = &specs.CPUAffinity{Final: "4000"}
	_, err := c.Exec(context.Background(), ProcessConfig{ID: "bad", Spec: own, Monitor: mon})
	if !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "process.execCPUAffinity.final") {
		t.Fatalf("exec on CPU 4000: %v; want an invalid process.execCPUAffinity.final", err)
	}
}

// TestAffinityReset checks that the init and an exec without
// execCPUAffinity get every CPU their cgroup allows even when the daemon
// runs on fewer (containerd started with a CPU affinity), as runc resets
// them. Negative control: without the reset they inherit the daemon's.
func TestAffinityReset(t *testing.T) {
	testutil.RequiresRoot(t)
	all := onlineCPUs(t)
	if all == "0" {
		t.Skip("needs two CPUs")
	}
	bundle, spec, _ := testBundle(t, "sleep", "1000")
	probe, _ := createStarted(t, bundle, spec)
	if !keepsRequestedAffinity(t, probe) {
		t.Skip("this kernel resets a task's affinity when it enters a cgroup (before 6.2): a missing reset is not observable")
	}
	restrictProcess(t, 0)
	run := func() (initAff, execAff string) {
		bundle, spec, _ := testBundle(t, "sleep", "1000")
		c, mon := createStarted(t, bundle, spec)
		p := startExec(t, c, mon, execSpec(spec, "sleep", "1000"))
		return affinityOf(t, c.Pid), affinityOf(t, p.Pid)
	}
	if i, e := run(); i != all || e != all {
		t.Errorf("daemon on CPU 0: init on %s, exec on %s; want %s", i, e, all)
	}

	old := resetAffinity
	resetAffinity = func(int) {}
	defer func() { resetAffinity = old }()
	if i, e := run(); i != "0" || e != "0" {
		t.Errorf("negative control: init on %s, exec on %s; want the daemon's 0", i, e)
	}
}

// restrictProcess pins every thread of the test process to cpu until the
// test ends (threads made meanwhile inherit it from their creator).
func restrictProcess(t *testing.T, cpu int) {
	t.Helper()
	set := unix.NewCPUSet(cpu + 1)
	set.Set(cpu)
	for pass := 0; pass < 2; pass++ { // a thread made during the first pass
		tids, err := os.ReadDir("/proc/self/task")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range tids {
			tid, _ := strconv.Atoi(d.Name())
			if err := unix.SchedSetaffinityDynamic(tid, set); err != nil && err != unix.ESRCH {
				t.Fatal(err)
			}
		}
	}
	t.Cleanup(func() {
		tids, _ := os.ReadDir("/proc/self/task")
		for _, d := range tids {
			tid, _ := strconv.Atoi(d.Name())
			_ = unix.SchedSetaffinityDynamic(tid, allCPUs)
		}
	})
}

// keepsRequestedAffinity reports whether this kernel keeps the affinity a
// task asked for when it enters c's cgroup: it starts a process on CPU 1
// only and moves it there.
func keepsRequestedAffinity(t *testing.T, c *Container) bool {
	t.Helper()
	started := make(chan *exec.Cmd, 1)
	go func() {
		// Never unlocked: the thread's affinity is changed for good.
		lockOSThread()
		set := unix.NewCPUSet(2)
		set.Set(1)
		cmd := exec.Command("sleep", "100")
		if unix.SchedSetaffinityDynamic(0, set) != nil || cmd.Start() != nil {
			cmd = nil
		}
		started <- cmd
	}()
	cmd := <-started
	if cmd == nil {
		t.Fatal("start a process on CPU 1")
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	if err := c.Cgroup.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	return affinityOf(t, cmd.Process.Pid) == "1"
}

// TestHostLacksLSMAndRdt checks that, on a host without AppArmor, SELinux
// and resctrl (this one), a label, a profile or intelRdt fails Create with
// errdefs.ErrFailedPrecondition naming the field, before anything is made;
// and that linux.mountLabel is ignored without SELinux, as runc does.
func TestHostLacksLSMAndRdt(t *testing.T) {
	testutil.RequiresRoot(t)
	if process.AppArmorEnabled() || process.SELinuxEnabled() || resctrlMounted() {
		t.Skip("the host has AppArmor, SELinux or resctrl")
	}
	for field, edit := range map[string]func(*specs.Spec){
		"process.apparmorProfile": func(s *specs.Spec) { s.Process.ApparmorProfile = "box-test" },
		"process.selinuxLabel":    func(s *specs.Spec) { s.Process.SelinuxLabel = "system_u:system_r:container_t:s0" },
		"linux.intelRdt":          func(s *specs.Spec) { s.Linux.IntelRdt = &specs.LinuxIntelRdt{ClosID: "gold"} },
	} {
		bundle, spec, cgParent := testBundle(t, "true")
		edit(spec)
		err := createFails(t, bundle, spec)
		if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: %v; want a failed precondition naming it", field, err)
		}
		if dirs := cgroupGlob(cgParent); len(dirs) != 0 {
			t.Errorf("%s: cgroups made before the refusal: %v", field, dirs)
		}
	}
	bundle, spec, _ := testBundle(t, "true")
	spec.Linux.MountLabel = "system_u:object_r:container_file_t:s0"
	if out, e := runContainer(t, bundle, spec, nil); e.Status != 0 {
		t.Fatalf("mountLabel without SELinux: exit %d: %s", e.Status, out)
	}
}

// TestNetDevices moves a veth end, with IPv4 and IPv6 addresses, from a
// network namespace the test makes (standing in for the host's) into a
// container's new one under a new name, as linux.netDevices asks: it is
// gone from the source, present, up and addressed in the container; a
// device that does not exist fails Create with the field named.
func TestNetDevices(t *testing.T) {
	testutil.RequiresRoot(t)
	// Commands iproute2 and busybox (the cgroup v2 VM) both take.
	src := testNetNS(t)
	if out, err := inNetNS(t, src, "ip link add box0 type veth"); err != nil {
		t.Skipf("this kernel cannot make a veth pair: %v: %s", err, out)
	}
	mustInNetNS(t, src, "ip addr add 10.9.0.1/24 dev box0 && ip -6 addr add fd00:9::1/64 dev box0 && "+
		"ip addr add 169.254.9.9/16 scope link dev box0")
	old := hostNetNS
	hostNetNS = func() (int, error) { return unix.Dup(src) }
	t.Cleanup(func() { hostNetNS = old })

	// containerd's default spec has a new network namespace.
	bundle, spec, _ := testBundle(t, "sh", "-c", "ip -o addr show dev ctr0; ip -o link show dev ctr0")
	spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{"box0": {Name: "ctr0"}}
	if err := os.Symlink("busybox", bundle+"/rootfs/bin/ip"); err != nil {
		t.Fatal(err)
	}
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 {
		t.Fatalf("exit %d: %s", e.Status, out)
	}
	for _, want := range []string{"inet 10.9.0.1/24", "inet6 fd00:9::1/64", ": ctr0@", ",UP,"} {
		if !strings.Contains(out, want) {
			t.Errorf("container output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "169.254.9.9") {
		t.Errorf("a link-scoped address was carried over:\n%s", out)
	}
	const present = "ip link show %s >/dev/null 2>&1 && echo present || echo absent"
	if out := mustInNetNS(t, src, fmt.Sprintf(present, "box0")); strings.TrimSpace(out) != "absent" {
		t.Errorf("box0 still in the source namespace: %s", out)
	}

	bundle, spec, _ = testBundle(t, "true")
	spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{"nosuch0": {}}
	err := createFails(t, bundle, spec)
	if !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), `linux.netDevices["nosuch0"]`) {
		t.Fatalf("missing device: %v; want not found naming it", err)
	}

	// Joining the source namespace itself by path: moving would rename the
	// runtime's own device.
	mustInNetNS(t, src, "ip link add box2 type veth")
	bundle, spec, _ = testBundle(t, "true")
	for i, ns := range spec.Linux.Namespaces {
		if ns.Type == specs.NetworkNamespace {
			spec.Linux.Namespaces[i].Path = fmt.Sprintf("/proc/%d/fd/%d", os.Getpid(), src)
		}
	}
	spec.Linux.NetDevices = map[string]specs.LinuxNetDevice{"box2": {Name: "renamed0"}}
	err = createFails(t, bundle, spec)
	if !errdefs.IsFailedPrecondition(err) || !strings.Contains(err.Error(), "linux.netDevices") {
		t.Fatalf("netns of the runtime: %v; want a failed precondition", err)
	}
	if out := mustInNetNS(t, src, fmt.Sprintf(present, "box2")); strings.TrimSpace(out) != "present" {
		t.Errorf("box2 was moved or renamed: %s", out)
	}
}

// testNetNS makes a network namespace and returns a descriptor of it,
// closed when the test ends.
func testNetNS(t *testing.T) int {
	t.Helper()
	type result struct {
		fd  int
		err error
	}
	done := make(chan result, 1)
	go func() {
		// Never unlocked: the thread leaves the test's namespace for good.
		lockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			done <- result{-1, err}
			return
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		done <- result{fd, err}
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { unix.Close(r.fd) })
	return r.fd
}

// inNetNS runs the shell command cmd in the network namespace ns and
// returns its output.
func inNetNS(t *testing.T, ns int, cmd string) (string, error) {
	t.Helper()
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		lockOSThread() // never unlocked, as above
		if err := unix.Setns(ns, unix.CLONE_NEWNET); err != nil {
			done <- result{nil, err}
			return
		}
		// The child is forked from this thread, in its namespace.
		out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
		done <- result{out, err}
	}()
	r := <-done
	return string(r.out), r.err
}

// mustInNetNS is inNetNS; a failure fails the test.
func mustInNetNS(t *testing.T, ns int, cmd string) string {
	t.Helper()
	out, err := inNetNS(t, ns, cmd)
	if err != nil {
		t.Fatalf("%s: %v: %s", cmd, err, out)
	}
	return out
}
