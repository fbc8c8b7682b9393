package runtime

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/testutil"
	sddbus "github.com/coreos/go-systemd/v22/dbus"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
)

// These tests need systemd as pid 1 on a cgroup v2 host (make vm-systemd-test); elsewhere
// they skip.

func requireSystemdV2(t *testing.T) *sddbus.Conn {
	t.Helper()
	testutil.RequiresRoot(t)
	if cgroup.Mode() != cgroup.ModeV2 {
		t.Skipf("cgroup mode is %q; the systemd driver needs v2", cgroup.Mode())
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		t.Skipf("systemd is not the init system (%v); run make vm-systemd-test", err)
	}
	conn, err := sddbus.NewSystemdConnectionContext(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	return conn
}

// systemdTestSlice is a fresh slice for the test's containers, stopped (with everything in
// it) when the test ends.
func systemdTestSlice(t *testing.T, conn *sddbus.Conn) string {
	t.Helper()
	slice := fmt.Sprintf("box_test_%d.slice", rand.Uint32())
	t.Cleanup(func() {
		ch := make(chan string, 1)
		if _, err := conn.StopUnitContext(context.Background(), slice, "replace", ch); err == nil {
			select {
			case <-ch:
			case <-time.After(30 * time.Second):
				t.Errorf("cleanup: stopping %s took over 30s", slice)
			}
		}
	})
	return slice
}

// TestSystemdContainer runs a container whose cgroupsPath selects the systemd driver: the init
// stage is moved into the transient scope before it is told anything (it is born in the
// daemon's cgroup: a scope cannot exist empty), so the container's process, and an exec (born
// in the scope with CLONE_INTO_CGROUP), run in <slice>/box-<id>.scope under the spec's memory
// limit and pids limit (applied after the stage is ready, as on cgroupfs; both also unit
// properties); Destroy stops the unit.
func TestSystemdContainer(t *testing.T) {
	conn := requireSystemdV2(t)
	slice := systemdTestSlice(t, conn)
	bundle, spec, _ := testBundle(t, "sleep", "100")
	id := fmt.Sprintf("sd%d", rand.Uint32())
	spec.Linux.CgroupsPath = slice + ":box:" + id
	spec.Linux.Resources.Memory = &specs.LinuxMemory{Limit: ptr(int64(96 << 20))}
	spec.Linux.Resources.Pids = &specs.LinuxPids{Limit: ptr(int64(50))}
	unit := "box-" + id + ".scope"
	scope := "/" + slice + "/" + unit
	dir := filepath.Join("/sys/fs/cgroup", scope)
	// runs after createStarted's cleanup (kill, Destroy): the unit and its cgroup are gone
	t.Cleanup(func() {
		if _, err := os.Lstat(dir); err == nil {
			t.Errorf("%s exists after Destroy", dir)
		}
		p, err := conn.GetUnitPropertyContext(context.Background(), unit, "ActiveState")
		if err == nil && p.Value.Value() != "inactive" {
			t.Errorf("%s is %v after Destroy", unit, p.Value.Value())
		}
	})

	c, mon := createStarted(t, bundle, spec)
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", c.Pid))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != "0::"+scope {
		t.Errorf("init's cgroup (seen from the host) = %q; want 0::%s", got, scope)
	}
	for file, want := range map[string]string{"memory.max": "100663296", "pids.max": "50"} {
		if b, err := os.ReadFile(filepath.Join(dir, file)); err != nil || strings.TrimSpace(string(b)) != want {
			t.Errorf("%s = %q, %v; want %s", file, b, err, want)
		}
	}
	for name, want := range map[string]any{"MemoryMax": uint64(96 << 20), "TasksMax": uint64(50)} {
		p, err := conn.GetUnitTypePropertyContext(context.Background(), unit, "Scope", name)
		if err != nil || p.Value.Value() != want {
			t.Errorf("%s of the scope = %v, %v; want %v", name, p, err, want)
		}
	}
	out, e, err := execInto(t, c, mon, execSpec(spec, "cat", "/proc/self/cgroup"))
	if err != nil || e.Status != 0 {
		t.Fatalf("exec: %v, exit %d: %s", err, e.Status, out)
	}
	// "/" in a container with its own cgroup namespace (rooted at the scope), else the scope
	if got := strings.TrimSpace(out); got != "0::/" && got != "0::"+scope {
		t.Errorf("exec's /proc/self/cgroup = %q; want the init's scope", got)
	}
	t.Logf("exec's /proc/self/cgroup: %s", strings.TrimSpace(out))
}

// TestSystemdCreateFailureStopsScope checks a Create that fails after the scope started (a
// limit the kernel refuses is written once the init stage is in the scope) kills the stage and
// leaves no unit and no cgroup behind.
func TestSystemdCreateFailureStopsScope(t *testing.T) {
	conn := requireSystemdV2(t)
	slice := systemdTestSlice(t, conn)
	bundle, spec, _ := testBundle(t, "true")
	id := fmt.Sprintf("sdfail%d", rand.Uint32())
	spec.Linux.CgroupsPath = slice + ":box:" + id
	// cpuset.mems naming a node this VM does not have: the kernel refuses it
	spec.Linux.Resources.CPU = &specs.LinuxCPU{Mems: "7"}
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: plan, Monitor: &testMonitor{}})
	if err == nil {
		t.Fatal("Create with cpuset.mems 7 succeeded")
	}
	t.Logf("Create: %v", err)
	if _, err := os.Lstat(filepath.Join("/sys/fs/cgroup", slice, "box-"+id+".scope")); err == nil {
		t.Errorf("the scope's cgroup is left after a failed Create")
	}
	p, err := conn.GetUnitPropertyContext(context.Background(), "box-"+id+".scope", "ActiveState")
	if err == nil && p.Value.Value() != "inactive" {
		t.Errorf("scope is %v after a failed Create", p.Value.Value())
	}
}

func ptr[T any](v T) *T { return &v }

// TestSystemdContainerCgroupNamespace checks a container with its own cgroup namespace has it
// rooted at its scope, though the init stage is born outside the scope (in the daemon's
// cgroup) and moved in: the stage creates the namespace only after it is in the scope, so the
// container sees "0::/" and not a path up and over to its scope (which would also root a
// cgroup2 mount inside the container at the daemon's cgroup).
func TestSystemdContainerCgroupNamespace(t *testing.T) {
	conn := requireSystemdV2(t)
	slice := systemdTestSlice(t, conn)
	bundle, spec, _ := testBundle(t, "cat", "/proc/self/cgroup")
	spec.Linux.CgroupsPath = slice + fmt.Sprintf(":box:sdns%d", rand.Uint32())
	spec.Linux.Namespaces = append(spec.Linux.Namespaces, specs.LinuxNamespace{Type: specs.CgroupNamespace})
	out, e := runContainer(t, bundle, spec, nil)
	if e.Status != 0 || strings.TrimSpace(out) != "0::/" {
		t.Errorf("container's /proc/self/cgroup = %q (exit %d); want 0::/", out, e.Status)
	}
}
