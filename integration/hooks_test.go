package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// hookLogScript is a hook (`busybox sh -c hookLogScript sh KIND FILE`) that
// appends "KIND MNT-NS STATE-JSON" to FILE.
const hookLogScript = `echo "$1 $(readlink /proc/self/ns/mnt) $(cat)" >> "$2"`

func logHook(kind, file string) specs.Hook {
	return specs.Hook{Path: "/bin/busybox", Args: []string{"sh", "-c", hookLogScript, "sh", kind, file}}
}

// withHooks sets the spec's hooks (as a client would with its own SpecOpts).
func withHooks(h *specs.Hooks) oci.SpecOpts {
	return func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
		s.Hooks = h
		return nil
	}
}

// hookLine is one line of a hook log.
type hookLine struct {
	kind, mnt string
	state     specs.State
}

func readHookLog(t *testing.T, file string) []hookLine {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("no hook ran: %v", err)
	}
	var out []hookLine
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(l, " ", 3)
		if len(f) != 3 {
			t.Fatalf("bad hook log line %q", l)
		}
		h := hookLine{kind: f[0], mnt: f[1]}
		if err := json.Unmarshal([]byte(f[2]), &h.state); err != nil {
			t.Fatalf("hook %s got bad state %q: %v", f[0], f[2], err)
		}
		out = append(out, h)
	}
	return out
}

// TestHooksThroughContainerd runs a container with all six OCI hooks
// through containerd's client and checks that they ran in the lifecycle's
// order, each with the state it must see (status, pid, id, bundle,
// annotations) and in the right mount namespace: the runtime's for
// prestart/createRuntime/poststart/poststop, the container's for
// createContainer/startContainer.
func TestHooksThroughContainerd(t *testing.T) {
	c := startBox(t)
	ctx := c.Context(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(dir, "log")
	id := harness.RandID(t, "hooks")
	ctr := newContainer(t, c, id, []string{"sh", "-c", "echo ran >> /hookout/process"},
		oci.WithMounts([]specs.Mount{{Destination: "/hookout", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}}}),
		oci.WithAnnotations(map[string]string{"box.test/hooks": id}),
		withHooks(&specs.Hooks{
			Prestart:        []specs.Hook{logHook("prestart", log)}, //nolint:staticcheck // deprecated, still run
			CreateRuntime:   []specs.Hook{logHook("createRuntime", log)},
			CreateContainer: []specs.Hook{logHook("createContainer", log)},
			StartContainer:  []specs.Hook{logHook("startContainer", "/hookout/log")},
			Poststart:       []specs.Hook{logHook("poststart", log)},
			Poststop:        []specs.Hook{logHook("poststop", log)},
		}),
	)
	task, _, err := newTask(t, c, ctr)
	if err != nil {
		t.Fatalf("NewTask: %v", err)
	}
	pid := int(task.Pid())
	ctrMnt, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		t.Fatal(err)
	}
	hostMnt, _ := os.Readlink("/proc/self/ns/mnt")
	wait, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := task.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if code := waitCode(t, wait); code != 0 {
		t.Fatalf("exit code %d", code)
	}
	if _, err := task.Delete(ctx); err != nil {
		t.Fatalf("Delete: %v", err)
	}

	want := []struct {
		kind, status, mnt string
		pid               int
	}{
		{"prestart", "creating", hostMnt, pid},
		{"createRuntime", "creating", hostMnt, pid},
		{"createContainer", "creating", ctrMnt, pid},
		{"startContainer", "created", ctrMnt, pid},
		{"poststart", "running", hostMnt, pid},
		{"poststop", "stopped", hostMnt, 0},
	}
	got := readHookLog(t, log)
	if len(got) != len(want) {
		t.Fatalf("%d hooks ran, want %d: %+v", len(got), len(want), got)
	}
	for i, w := range want {
		g := got[i]
		s := g.state
		if g.kind != w.kind || string(s.Status) != w.status || s.Pid != w.pid || g.mnt != w.mnt {
			t.Errorf("hook %d: %s status %q pid %d mnt %s; want %s %q %d %s", i, g.kind, s.Status, s.Pid, g.mnt, w.kind, w.status, w.pid, w.mnt)
		}
		if s.ID != id || s.Version != specs.Version || !filepath.IsAbs(s.Bundle) || !strings.Contains(s.Bundle, id) || s.Annotations["box.test/hooks"] != id {
			t.Errorf("%s: state %+v lacks id, version, bundle or annotations", g.kind, s)
		}
	}
	if hostMnt == ctrMnt {
		t.Fatal("negative control: the container's mount namespace is the host's")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "process")); string(b) != "ran\n" {
		t.Errorf("container process output %q", b)
	}
}

// TestHookFailureThroughContainerd checks that a failing createRuntime hook
// fails NewTask with the hook's output and leaves nothing behind, and that
// the poststop hooks still ran.
func TestHookFailureThroughContainerd(t *testing.T) {
	c := startBox(t)
	dir := t.TempDir()
	log := filepath.Join(dir, "log")
	id := harness.RandID(t, "hookfail")
	ctr := newContainer(t, c, id, []string{"true"}, withHooks(&specs.Hooks{
		CreateRuntime: []specs.Hook{{Path: "/bin/busybox", Args: []string{"sh", "-c", "echo hook-said-no >&2; exit 9"}}},
		Poststop:      []specs.Hook{logHook("poststop", log)},
	}))
	_, _, err := newTask(t, c, ctr)
	requireCreateFailed(t, c, id, err, "createRuntime hook #0")
	for _, w := range []string{"exited with status 9", "hook-said-no"} {
		if err != nil && !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if got := readHookLog(t, log); len(got) != 1 || got[0].kind != "poststop" || got[0].state.Status != specs.StateStopped {
		t.Errorf("poststop hooks after the failed create: %+v", got)
	}
}
