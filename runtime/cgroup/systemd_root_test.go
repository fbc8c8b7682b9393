package cgroup

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup2"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// These tests need systemd as pid 1 on a cgroup v2 host: `make vm-systemd-test` runs them in a
// VM booted with systemd (hack/vm/systemd). Elsewhere they skip.

func requireSystemd(t *testing.T) {
	t.Helper()
	testutil.RequiresRoot(t)
	if Mode() != ModeV2 {
		t.Skipf("cgroup mode is %q; the systemd driver needs v2", Mode())
	}
	if _, err := os.Stat(systemdBooted); err != nil {
		t.Skipf("systemd is not the init system (%v); run make vm-systemd-test", err)
	}
}

// testSlice returns a fresh slice "box_test_<rand>.slice" for the test's scopes and stops it
// (and with it every unit in it) when the test ends, pass or fail.
func testSlice(t *testing.T) string {
	t.Helper()
	slice := fmt.Sprintf("box_test_%d.slice", rand.Uint32())
	t.Cleanup(func() {
		conn := sdConn(t)
		ch := make(chan string, 1)
		if _, err := conn.StopUnitContext(context.Background(), slice, "replace", ch); err != nil {
			if !isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
				t.Errorf("cleanup: stop %s: %v", slice, err)
			}
			return
		}
		select {
		case <-ch:
		case <-time.After(30 * time.Second):
			t.Errorf("cleanup: stop %s: no job result in 30s", slice)
		}
		if _, err := os.Lstat(filepath.Join(cgroupRoot, slice)); err == nil {
			t.Errorf("cleanup: %s still exists after stopping the slice", slice)
		}
	})
	return slice
}

func sdConn(t *testing.T) *sddbus.Conn {
	t.Helper()
	conn, err := systemdConnect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// scopeProp reads a property of the scope unit (interface org.freedesktop.systemd1.Scope, where
// the cgroup properties are) or, with iface "Unit", of the unit.
func scopeProp(t *testing.T, unit, iface, name string) any {
	t.Helper()
	conn := sdConn(t)
	var p *sddbus.Property
	var err error
	if iface == "Unit" {
		p, err = conn.GetUnitPropertyContext(context.Background(), unit, name)
	} else {
		p, err = conn.GetUnitTypePropertyContext(context.Background(), unit, iface, name)
	}
	if err != nil {
		t.Fatalf("property %s of %s: %v", name, unit, err)
	}
	return p.Value.Value()
}

func sdRead(t *testing.T, dir, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, file))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// scriptChild starts `sh -c script` with a pipe to its stdin and from its stdout, and kills it
// when the test ends. The script should `read x` before doing anything that matters, so that
// the test can move it into a cgroup first; say writes that line and returns the next one.
func scriptChild(t *testing.T, script string) (cmd *exec.Cmd, say func() string) {
	t.Helper()
	cmd = exec.Command("sh", "-c", script)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	r := bufio.NewReader(stdout)
	return cmd, func() string {
		t.Helper()
		if _, err := io.WriteString(stdin, "go\n"); err != nil {
			t.Fatal(err)
		}
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("child: %v", err)
		}
		return strings.TrimSpace(line)
	}
}

const sleeper = `read x; echo ready; exec sleep 100`

// TestSystemdScopeLifecycle runs a process through the whole driver: New (no scope yet), Add
// (the scope starts with the pid in it and the limits are both unit properties and written
// files), CloneFD, Pids, Update (TasksMax and pids.max), Freeze/Thaw, Stats, OOMKills, a
// refused Delete while the process lives, Kill, Delete (the unit and its cgroup are gone) and
// a second Delete.
func TestSystemdScopeLifecycle(t *testing.T) {
	requireSystemd(t)
	slice := testSlice(t)
	path := slice + ":box:life"
	dir := filepath.Join(cgroupRoot, slice, "box-life.scope")
	res := &specs.LinuxResources{
		Memory:  &specs.LinuxMemory{Limit: ptr(int64(64 << 20))},
		CPU:     &specs.LinuxCPU{Shares: ptr(uint64(512)), Quota: ptr(int64(50000)), Period: ptr(uint64(100000))},
		Unified: map[string]string{"memory.high": "50331648"},
	}
	cg, err := NewSystemd(path, res)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); err == nil {
		t.Fatalf("%s exists before any process was added", dir)
	}
	if fd, ok, err := cg.CloneFD(); ok || err != nil {
		t.Fatalf("CloneFD before Add = %d, %v, %v; want no fd", fd, ok, err)
	}
	if _, err := cg.Pids(); !errdefs.IsNotFound(err) {
		t.Errorf("Pids before Add: %v; want NotFound", err)
	}

	cmd, say := scriptChild(t, sleeper)
	pid := cmd.Process.Pid
	if err := cg.Add(pid); err != nil {
		t.Fatal(err)
	}
	if got := say(); got != "ready" {
		t.Fatalf("child said %q", got)
	}
	if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); strings.TrimSpace(string(b)) != "0::/"+slice+"/box-life.scope" {
		t.Errorf("/proc/%d/cgroup = %q; want the scope", pid, b)
	}
	weight := cgroup2.ConvertCPUSharesToCgroupV2Value(512)
	for file, want := range map[string]string{
		"memory.max": "67108864", "memory.high": "50331648", "cpu.max": "50000 100000", "cpu.weight": fmt.Sprint(weight),
	} {
		if got := sdRead(t, dir, file); got != want {
			t.Errorf("%s = %q; want %q", file, got, want)
		}
	}
	for name, want := range map[string]any{
		"MemoryMax": uint64(64 << 20), "MemoryHigh": uint64(50331648), "CPUWeight": weight,
		"CPUQuotaPerSecUSec": uint64(500000), "Delegate": true, "ControlGroup": "/" + slice + "/box-life.scope",
	} {
		if got := scopeProp(t, "box-life.scope", "Scope", name); got != want {
			t.Errorf("unit property %s = %#v; want %#v", name, got, want)
		}
	}
	if got := scopeProp(t, "box-life.scope", "Unit", "ActiveState"); got != "active" {
		t.Errorf("ActiveState = %v", got)
	}
	fd, ok, err := cg.CloneFD()
	if !ok || err != nil {
		t.Fatalf("CloneFD after Add = %d, %v, %v; want the scope's fd", fd, ok, err)
	}
	syscall.Close(fd)
	if pids, err := cg.Pids(); err != nil || !slices.Equal(pids, []int{pid}) {
		t.Errorf("Pids = %v, %v; want [%d]", pids, err, pid)
	}

	if err := cg.Update(&specs.LinuxResources{Pids: &specs.LinuxPids{Limit: ptr(int64(10))}}); err != nil {
		t.Fatal(err)
	}
	if got := sdRead(t, dir, "pids.max"); got != "10" {
		t.Errorf("pids.max after Update = %q", got)
	}
	if got := scopeProp(t, "box-life.scope", "Scope", "TasksMax"); got != uint64(10) {
		t.Errorf("TasksMax after Update = %v", got)
	}

	if err := cg.Freeze(); err != nil {
		t.Fatal(err)
	}
	if got := sdRead(t, dir, "cgroup.freeze"); got != "1" {
		t.Errorf("cgroup.freeze after Freeze = %q", got)
	}
	if err := cg.Thaw(); err != nil {
		t.Fatal(err)
	}
	st, err := cg.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := st.(*v2stats.Metrics); !ok || m.Pids == nil || m.Pids.Current != 1 || m.Memory == nil || m.Memory.Usage == 0 {
		t.Errorf("Stats = %#v; want v2 metrics with 1 pid and some memory", st)
	}
	if n, err := OOMKills(cg); err != nil || n != 0 {
		t.Errorf("OOMKills = %d, %v; want 0", n, err)
	}

	if err := cg.Delete(); !errdefs.IsFailedPrecondition(err) {
		t.Errorf("Delete with a live process: %v; want FailedPrecondition", err)
	}
	if err := cg.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(dir); err == nil {
		t.Errorf("%s still exists after Delete", dir)
	}
	if st := unitState(t, "box-life.scope"); st != "gone" && st != "inactive" {
		t.Errorf("scope is %s after Delete", st)
	}
	if err := cg.Delete(); err != nil {
		t.Errorf("second Delete: %v", err)
	}
}

// unitState is the unit's ActiveState, or "gone" when systemd has unloaded it.
func unitState(t *testing.T, unit string) string {
	t.Helper()
	p, err := sdConn(t).GetUnitPropertyContext(context.Background(), unit, "ActiveState")
	if isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") {
		return "gone"
	}
	if err != nil {
		t.Fatalf("ActiveState of %s: %v", unit, err)
	}
	return p.Value.Value().(string)
}

// TestSystemdLoadAfterCrash checks what `delete` does after a shim crash: Load (the generic
// one, which picks the driver by the path's form) finds the running scope with no D-Bus state
// of its own, sees its process, kills it and removes the scope.
func TestSystemdLoadAfterCrash(t *testing.T) {
	requireSystemd(t)
	slice := testSlice(t)
	path := slice + ":box:crash"
	cg, err := NewSystemd(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	cmd, say := scriptChild(t, sleeper)
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	say()

	loaded, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if pids, err := loaded.Pids(); err != nil || !slices.Equal(pids, []int{cmd.Process.Pid}) {
		t.Errorf("Pids of the loaded scope = %v, %v", pids, err)
	}
	if err := loaded.Kill(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	if err := loaded.Delete(); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errdefs.IsNotFound(err) {
		t.Errorf("Load after Delete: %v; want NotFound", err)
	}
}

// TestSystemdScopeNameTaken checks a second container with the same cgroupsPath is refused
// with AlreadyExists while the first one's scope runs, and that the first is untouched.
func TestSystemdScopeNameTaken(t *testing.T) {
	requireSystemd(t)
	slice := testSlice(t)
	path := slice + ":box:twice"
	first, err := NewSystemd(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c1, say1 := scriptChild(t, sleeper)
	if err := first.Add(c1.Process.Pid); err != nil {
		t.Fatal(err)
	}
	say1()
	second, err := NewSystemd(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := scriptChild(t, sleeper)
	if err := second.Add(c2.Process.Pid); !errdefs.IsAlreadyExists(err) {
		t.Errorf("second scope with the same name: %v; want AlreadyExists", err)
	}
	if pids, err := first.Pids(); err != nil || !slices.Equal(pids, []int{c1.Process.Pid}) {
		t.Errorf("first scope's pids = %v, %v; want only its own", pids, err)
	}
	first.Kill(syscall.SIGKILL)
	c1.Wait()
	if err := first.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdDeviceRules checks box's own device filter governs the scope: systemd attaches
// none (no DevicePolicy or DeviceAllow is sent), and the spec's rules are enforced.
func TestSystemdDeviceRules(t *testing.T) {
	requireSystemd(t)
	slice := testSlice(t)
	cg, err := NewSystemd(slice+":box:dev", &specs.LinuxResources{Devices: []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		{Allow: true, Type: "c", Major: ptr(int64(1)), Minor: ptr(int64(3)), Access: "rwm"}, // /dev/null
	}})
	if err != nil {
		t.Fatal(err)
	}
	cmd, say := scriptChild(t, `read x
		if head -c1 /dev/zero >/dev/null 2>&1; then z=zero-ok; else z=zero-denied; fi
		if echo x >/dev/null 2>&1; then n=null-ok; else n=null-denied; fi
		echo $z $n; exec sleep 100`)
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got := say(); got != "zero-denied null-ok" {
		t.Errorf("device access in the scope: %q; want zero-denied null-ok", got)
	}
	if got := scopeProp(t, "box-dev.scope", "Scope", "DevicePolicy"); got != "auto" {
		t.Errorf("DevicePolicy = %v; want auto (box's filter, not systemd's)", got)
	}
	cg.Kill(syscall.SIGKILL)
	cmd.Wait()
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
}

// TestSystemdReappliedSettingsKeepLimits checks why limits are unit properties and not only
// written files: when systemd re-applies a unit's cgroup settings (here `systemctl
// set-property`, as a daemon-reload or an administrator does), it writes its properties into
// the cgroup. With the limits as properties, memory.max and cpu.max survive; the negative
// control sends no resource properties and shows systemd then resets both to "max".
func TestSystemdReappliedSettingsKeepLimits(t *testing.T) {
	requireSystemd(t)
	for _, control := range []bool{false, true} {
		t.Run(map[bool]string{false: "properties", true: "negative-control"}[control], func(t *testing.T) {
			if control {
				skipResourceProperties = true
				defer func() { skipResourceProperties = false }()
			}
			slice := testSlice(t)
			cg, err := NewSystemd(slice+":box:reapply", &specs.LinuxResources{
				Memory: &specs.LinuxMemory{Limit: ptr(int64(64 << 20))},
				CPU:    &specs.LinuxCPU{Quota: ptr(int64(50000)), Period: ptr(uint64(100000))},
			})
			if err != nil {
				t.Fatal(err)
			}
			cmd, say := scriptChild(t, sleeper)
			if err := cg.Add(cmd.Process.Pid); err != nil {
				t.Fatal(err)
			}
			say()
			dir := filepath.Join(cgroupRoot, slice, "box-reapply.scope")
			if got := sdRead(t, dir, "memory.max"); got != "67108864" {
				t.Fatalf("memory.max = %q before systemd re-applies", got)
			}
			out, err := exec.Command("systemctl", "set-property", "--runtime", "box-reapply.scope",
				"MemoryAccounting=yes", "CPUAccounting=yes").CombinedOutput()
			if err != nil {
				t.Fatalf("systemctl set-property: %v: %s", err, out)
			}
			mem, cpu := sdRead(t, dir, "memory.max"), sdRead(t, dir, "cpu.max")
			if control {
				if mem != "max" || !strings.HasPrefix(cpu, "max ") {
					t.Errorf("negative control: memory.max = %q, cpu.max = %q after systemd re-applied a unit without resource properties; want both reset to max", mem, cpu)
				}
			} else if mem != "67108864" || cpu != "50000 100000" {
				t.Errorf("memory.max = %q, cpu.max = %q after systemd re-applied the unit; want 67108864 and 50000 100000", mem, cpu)
			}
			cg.Kill(syscall.SIGKILL)
			cmd.Wait()
			if err := cg.Delete(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestSystemdNestedSliceAndDefaultSlice checks a dashed slice is nested as systemd nests it
// and that an empty slice part means system.slice.
func TestSystemdNestedSliceAndDefaultSlice(t *testing.T) {
	requireSystemd(t)
	slice := testSlice(t)
	nested := strings.TrimSuffix(slice, ".slice") + "-pod1.slice"
	for _, tc := range []struct{ path, cgroup string }{
		{nested + ":box:nested", "/" + slice + "/" + nested + "/box-nested.scope"},
		{fmt.Sprintf(":box-test:default%d", rand.Uint32()), ""},
	} {
		cg, err := NewSystemd(tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		cmd, say := scriptChild(t, sleeper)
		if err := cg.Add(cmd.Process.Pid); err != nil {
			t.Fatal(err)
		}
		say()
		want := tc.cgroup
		if want == "" {
			want = "/system.slice/box-test-" + strings.Split(tc.path, ":")[2] + ".scope"
		}
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", cmd.Process.Pid)); strings.TrimSpace(string(b)) != "0::"+want {
			t.Errorf("%s: /proc/pid/cgroup = %q; want 0::%s", tc.path, b, want)
		}
		cg.Kill(syscall.SIGKILL)
		cmd.Wait()
		if err := cg.Delete(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSystemdOOMKillCounted checks an OOM kill in a scope reaches box's OOM watcher (OOMEvents
// on memory.events: the kernel raises oom_kill, and inotify fires, before it kills). It also
// records the limit of the systemd driver here: systemd stops a scope and removes its cgroup as
// soon as its last process exits, so a read of the counter after that (the watcher's read, when
// it loses the race, or the re-read before TaskExit) finds no cgroup. Under TCG the read loses
// every time; the test logs what it found.
func TestSystemdOOMKillCounted(t *testing.T) {
	requireSystemd(t)
	slice := testSlice(t)
	cg, err := NewSystemd(slice+":box:oom", &specs.LinuxResources{
		Memory: &specs.LinuxMemory{Limit: ptr(int64(16 << 20)), Swap: ptr(int64(16 << 20))},
	})
	if err != nil {
		t.Fatal(err)
	}
	// the shell holds a 64 MiB command substitution in its own memory
	cmd, say := scriptChild(t, `read x; echo go; v=$(head -c 67108864 /dev/zero | tr '\0' x); echo survived`)
	if err := cg.Add(cmd.Process.Pid); err != nil {
		t.Fatal(err)
	}
	ev, err := NewOOMEvents()
	if err != nil {
		t.Fatal(err)
	}
	defer ev.Close()
	if err := ev.Add(cg, 1); err != nil {
		t.Fatal(err)
	}
	type seen struct {
		keys []uint64
		n    uint64
		err  error
	}
	got := make(chan seen, 1)
	go func() {
		// what the shim's watcher does: wait, then read the counter
		keys, _ := ev.Wait()
		n, err := OOMKills(cg)
		got <- seen{keys, n, err}
	}()
	say()
	cmd.Wait()
	select {
	case s := <-got:
		if len(s.keys) != 1 || s.keys[0] != 1 {
			t.Errorf("OOM event keys %v; want [1]", s.keys)
		}
		if s.err != nil && !errdefs.IsNotFound(s.err) {
			t.Errorf("OOMKills after the event: %v; want a count or NotFound (cgroup removed by systemd)", s.err)
		}
		t.Logf("OOMKills right after the event: %d, %v", s.n, s.err)
	case <-time.After(20 * time.Second):
		t.Fatal("no OOM event within 20s of the kill")
	}
	n, err := OOMKills(cg)
	t.Logf("OOMKills after the shell was reaped: %d, %v (systemd may have removed the cgroup by now)", n, err)
	// the pipeline's other processes may still run: end them before Delete
	if err := cg.Kill(syscall.SIGKILL); err != nil && !errdefs.IsNotFound(err) {
		t.Fatal(err)
	}
	for i := 0; i < 100; i++ {
		if pids, err := cg.Pids(); err != nil || len(pids) == 0 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := cg.Delete(); err != nil {
		t.Fatal(err)
	}
}
