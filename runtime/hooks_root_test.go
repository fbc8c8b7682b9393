package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// recordScript is a hook (run as `busybox sh -c recordScript sh KIND DIR`)
// that records, under DIR, the state it got on stdin and where it ran:
// mount and pid namespace, uid, cwd, environment and its descriptors.
// `ls` opens its directory as the lowest free descriptor, so "0 1 2 3"
// means nothing beyond stdio was inherited.
const recordScript = `k=$1; d=$2
cat > "$d/$k.state"
readlink /proc/self/ns/mnt > "$d/$k.mnt"
readlink /proc/self/ns/pid > "$d/$k.pidns"
id -u > "$d/$k.uid"
pwd > "$d/$k.cwd"
echo "$BOX_HOOK_ENV/$CTR_ENV" > "$d/$k.env"
echo $(ls /proc/self/fd) > "$d/$k.fds"
echo $k >> "$d/order"
`

// recordHook is a hook running recordScript with path; kind names its
// files under dir.
func recordHook(path, kind, dir string) specs.Hook {
	return specs.Hook{Path: path, Args: []string{"sh", "-c", recordScript, "sh", kind, dir}}
}

// shHook is a hook running script with busybox sh.
func shHook(path, script string, timeout int) specs.Hook {
	h := specs.Hook{Path: path, Args: []string{"sh", "-c", script}}
	if timeout > 0 {
		h.Timeout = &timeout
	}
	return h
}

// hookRecord is what recordScript wrote for one hook.
type hookRecord struct {
	state                     specs.State
	mnt, pidns, uid, cwd, env string
	fds                       string
}

func readRecord(t *testing.T, dir, kind string) hookRecord {
	t.Helper()
	read := func(ext string) string {
		b, err := os.ReadFile(filepath.Join(dir, kind+"."+ext))
		if err != nil {
			t.Fatalf("%s hook did not record: %v", kind, err)
		}
		return strings.TrimSpace(string(b))
	}
	var r hookRecord
	if err := json.Unmarshal([]byte(read("state")), &r.state); err != nil {
		t.Fatalf("%s hook got bad state: %v", kind, err)
	}
	r.mnt, r.pidns, r.uid, r.cwd, r.env, r.fds = read("mnt"), read("pidns"), read("uid"), read("cwd"), read("env"), read("fds")
	return r
}

// hookDir makes a directory every hook (also a non-root one in the
// container) can write to, bind-mounted into the container at /hookout.
func hookDir(t *testing.T, spec *specs.Spec) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	spec.Mounts = append(spec.Mounts, specs.Mount{Destination: "/hookout", Type: "bind", Source: dir, Options: []string{"rbind", "rw"}})
	return dir
}

// hostOnlyBusybox is a path to busybox that exists on the host only, so a
// hook using it proves its path was resolved in the runtime's filesystem.
func hostOnlyBusybox(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "host-only-busybox")
	if err := os.Symlink("/bin/busybox", p); err != nil {
		t.Fatal(err)
	}
	return p
}

// containerOnlyBusybox links busybox into the rootfs under a name the host
// lacks, so a hook using it proves its path was resolved in the container.
func containerOnlyBusybox(t *testing.T, bundle string) string {
	t.Helper()
	const p = "/bin/container-only-busybox"
	if _, err := os.Stat(p); err == nil {
		t.Fatalf("%s exists on the host", p)
	}
	if err := os.Link(filepath.Join(bundle, "rootfs/bin/busybox"), filepath.Join(bundle, "rootfs", p)); err != nil {
		t.Fatal(err)
	}
	return p
}

func createPlan(t *testing.T, bundle string, spec *specs.Spec) *oci.Plan {
	t.Helper()
	plan, err := oci.NewPlan(spec, bundle)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

func nsOf(t *testing.T, pid int, ns string) string {
	t.Helper()
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestHooksAllSix runs a container with every kind of hook and checks the
// order they ran in, the state each got on stdin (status, pid, id, bundle,
// annotations, ociVersion), the namespaces, user, cwd and environment each
// ran with, where each path was resolved, and that each got only stdio.
func TestHooksAllSix(t *testing.T) {
	testutil.RequiresRoot(t)
	t.Setenv("BOX_HOOK_ENV", "runtime")
	bundle, spec, cg := testBundle(t, "sh", "-c", "echo $(id -u) > /hookout/process.uid")
	dir := hookDir(t, spec)
	spec.Process.User = specs.User{UID: 1000, GID: 1000}
	spec.Process.Env = append(spec.Process.Env, "CTR_ENV=process")
	spec.Annotations = map[string]string{"box.test/hooks": "yes"}
	host := hostOnlyBusybox(t)
	// Appended to by every hook, also the container's non-root one.
	if err := os.WriteFile(filepath.Join(dir, "order"), nil, 0o666); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "order"), 0o666); err != nil {
		t.Fatal(err)
	}
	inCtr := containerOnlyBusybox(t, bundle)
	spec.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{recordHook("/bin/busybox", "prestart", dir)}, //nolint:staticcheck // deprecated, still run
		CreateRuntime:   []specs.Hook{recordHook("/bin/busybox", "createRuntime", dir)},
		CreateContainer: []specs.Hook{recordHook(host, "createContainer", dir)},
		StartContainer:  []specs.Hook{recordHook(inCtr, "startContainer", "/hookout")},
		Poststart:       []specs.Hook{recordHook("/bin/busybox", "poststart", dir)},
		Poststop:        []specs.Hook{recordHook("/bin/busybox", "poststop", dir)},
	}
	ctx := context.Background()
	c, err := Create(ctx, CreateConfig{ID: "hooks6", Bundle: bundle, Plan: createPlan(t, bundle, spec), Monitor: &testMonitor{}})
	if err != nil {
		t.Fatal(err)
	}
	ctrMnt, ctrPid := nsOf(t, c.Pid, "mnt"), nsOf(t, c.Pid, "pid")
	hostMnt, hostPid := nsOf(t, os.Getpid(), "mnt"), nsOf(t, os.Getpid(), "pid")
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if e := <-c.Exited(); e.Status != 0 {
		t.Fatalf("container exit %d", e.Status)
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if err := c.Poststop(ctx); err != nil {
		t.Fatal(err)
	}
	// Neither a second call nor the delete action's cleanup after the
	// daemon runs them again.
	if err := c.Poststop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := PoststopAfterCrash(ctx, c.ID, bundle, spec); err != nil {
		t.Fatal(err)
	}

	order, _ := os.ReadFile(filepath.Join(dir, "order"))
	if got, want := strings.Fields(string(order)), "prestart createRuntime createContainer startContainer poststart poststop"; strings.Join(got, " ") != want {
		t.Errorf("hooks ran in order %q, want %q (poststop once)", got, want)
	}
	rootfs := filepath.Join(bundle, "rootfs")
	for _, tc := range []struct {
		kind, status       string
		pid                int
		mnt, pidns         string
		uid, cwd, env      string
		outsideContainerNS bool
	}{
		{"prestart", "creating", c.Pid, hostMnt, hostPid, "0", bundle, "runtime/", true},
		{"createRuntime", "creating", c.Pid, hostMnt, hostPid, "0", bundle, "runtime/", true},
		{"createContainer", "creating", c.Pid, ctrMnt, ctrPid, "0", rootfs, "runtime/", false},
		{"startContainer", "created", c.Pid, ctrMnt, ctrPid, "1000", "/", "/process", false},
		{"poststart", "running", c.Pid, hostMnt, hostPid, "0", bundle, "runtime/", true},
		{"poststop", "stopped", 0, hostMnt, hostPid, "0", bundle, "runtime/", true},
	} {
		r := readRecord(t, dir, tc.kind) // startContainer's /hookout is dir
		s := r.state
		if s.Version != specs.Version || s.ID != "hooks6" || s.Bundle != bundle || s.Annotations["box.test/hooks"] != "yes" {
			t.Errorf("%s: state %+v lacks version, id, bundle or annotations", tc.kind, s)
		}
		if string(s.Status) != tc.status || s.Pid != tc.pid {
			t.Errorf("%s: status %q pid %d, want %q %d", tc.kind, s.Status, s.Pid, tc.status, tc.pid)
		}
		if r.mnt != tc.mnt || r.pidns != tc.pidns {
			t.Errorf("%s: ran in mnt %s pid %s, want %s %s", tc.kind, r.mnt, r.pidns, tc.mnt, tc.pidns)
		}
		if (r.mnt == ctrMnt) == tc.outsideContainerNS {
			t.Errorf("%s: container namespace check inverted (hook mnt %s, container %s)", tc.kind, r.mnt, ctrMnt)
		}
		if r.uid != tc.uid || r.cwd != tc.cwd || r.env != tc.env {
			t.Errorf("%s: uid %s cwd %s env %q, want %s %s %q", tc.kind, r.uid, r.cwd, r.env, tc.uid, tc.cwd, tc.env)
		}
		if r.fds != "0 1 2 3" {
			t.Errorf("%s: hook's descriptors %q, want only stdio (and ls's own 3)", tc.kind, r.fds)
		}
	}
	if uid, _ := os.ReadFile(filepath.Join(dir, "process.uid")); strings.TrimSpace(string(uid)) != "1000" {
		t.Errorf("container process ran as %q after its startContainer hook, want 1000", uid)
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left: %v", matches)
	}
}

// TestHookOwnEnv checks that a hook's env replaces the default environment
// of every kind, including startContainer's.
func TestHookOwnEnv(t *testing.T) {
	testutil.RequiresRoot(t)
	t.Setenv("BOX_HOOK_ENV", "runtime")
	bundle, spec, _ := testBundle(t, "true")
	dir := hookDir(t, spec)
	spec.Process.Env = append(spec.Process.Env, "CTR_ENV=process")
	env := []string{"PATH=/bin", "BOX_HOOK_ENV=own", "CTR_ENV=own"}
	cc, sc := recordHook("/bin/busybox", "createContainer", dir), recordHook("/bin/busybox", "startContainer", "/hookout")
	cr := recordHook("/bin/busybox", "createRuntime", dir)
	cc.Env, sc.Env, cr.Env = env, env, env
	spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{cr}, CreateContainer: []specs.Hook{cc}, StartContainer: []specs.Hook{sc}}
	if _, e := runContainer(t, bundle, spec, nil); e.Status != 0 {
		t.Fatalf("exit %d", e.Status)
	}
	for _, k := range []string{"createRuntime", "createContainer", "startContainer"} {
		if r := readRecord(t, dir, k); r.env != "own/own" {
			t.Errorf("%s hook env %q, want own/own", k, r.env)
		}
	}
}

// TestCreateContainerHookNoRoundTrip checks that createContainer and
// startContainer hooks alone need no "hooks" exchange with the daemon (the
// daemon would refuse an unexpected message), and still run in order.
func TestCreateContainerHookNoRoundTrip(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "true")
	dir := hookDir(t, spec)
	spec.Hooks = &specs.Hooks{
		CreateContainer: []specs.Hook{recordHook("/bin/busybox", "createContainer", dir)},
		StartContainer:  []specs.Hook{recordHook("/bin/busybox", "startContainer", "/hookout")},
	}
	if plan := createPlan(t, bundle, spec); plan.Hooks.BeforePivot() {
		t.Fatal("BeforePivot with no prestart/createRuntime hooks")
	}
	if _, e := runContainer(t, bundle, spec, nil); e.Status != 0 {
		t.Fatalf("exit %d", e.Status)
	}
	order, _ := os.ReadFile(filepath.Join(dir, "order"))
	if got := strings.Join(strings.Fields(string(order)), " "); got != "createContainer startContainer" {
		t.Errorf("order %q", got)
	}
}

// pidAlive reports whether a process with pid exists (and is not a zombie).
// sleepers lists the live processes running "sleep <secs>".
func sleepers(secs int) []int {
	want := fmt.Sprintf("sleep\x00%d\x00", secs)
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid)); err == nil && string(b) == want && pidAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func pidAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] != "Z"
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read pid: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// checkFailedCreate checks that Create failed with an error containing each
// of want, and left no cgroup, no init process, no hook process and no
// mount of the bundle; the poststop hooks ran with status "stopped".
func checkFailedCreate(t *testing.T, err error, cg, bundle, dir string, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("Create succeeded, want it to fail")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q lacks %q", err, w)
		}
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left after failed Create: %v", matches)
	}
	for _, f := range []string{"init.pid", "hook.pid"} {
		if _, serr := os.Stat(filepath.Join(dir, f)); serr == nil {
			if pid := readPid(t, filepath.Join(dir, f)); pidAlive(pid) {
				t.Errorf("%s %d still runs after failed Create", f, pid)
			}
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mi), bundle) {
		t.Errorf("mounts of the bundle remain on the host")
	}
	if r := readRecord(t, dir, "poststop"); r.state.Status != specs.StateStopped {
		t.Errorf("poststop status %q after failed Create", r.state.Status)
	}
}

// TestHookFailureFailsCreate checks each hook run during Create: a failing
// one fails Create with an error naming it, its exit status and its output,
// and leaves nothing behind; poststop hooks still run.
func TestHookFailureFailsCreate(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, kind := range []string{"prestart", "createRuntime", "createContainer"} {
		t.Run(kind, func(t *testing.T) {
			bundle, spec, cg := testBundle(t, "true")
			dir := hookDir(t, spec)
			// The init's pid comes from the state on stdin; the hook
			// leaves a child behind that holds its output open.
			// A createContainer hook runs in the container's pid
			// namespace, where $! means nothing on the host: its child
			// is found by a sleep time no other process uses.
			secs := 3600 + rand.IntN(100000)
			fail := shHook("/bin/busybox", fmt.Sprintf(`grep -o '"pid":[0-9]*' | cut -d: -f2 > %s/init.pid
sleep %d & echo $! > %s/bg.pid
echo boom >&2; exit 7`, dir, secs, dir), 0)
			h := &specs.Hooks{Poststop: []specs.Hook{recordHook("/bin/busybox", "poststop", dir)}}
			switch kind {
			case "prestart":
				h.Prestart = []specs.Hook{fail} //nolint:staticcheck
			case "createRuntime":
				h.CreateRuntime = []specs.Hook{recordHook("/bin/busybox", "ok", dir), fail}
			case "createContainer":
				h.CreateContainer = []specs.Hook{fail}
			}
			spec.Hooks = h
			start := time.Now()
			_, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: createPlan(t, bundle, spec), Monitor: &testMonitor{}})
			idx := "#0"
			if kind == "createRuntime" {
				idx = "#1"
			}
			checkFailedCreate(t, err, cg, bundle, dir, kind+" hook "+idx, "exited with status 7", "boom")
			if d := time.Since(start); d > 10*time.Second {
				t.Errorf("Create took %s: a child holding the hook's output must not stall it", d)
			}
			bg := readPid(t, filepath.Join(dir, "bg.pid"))
			switch {
			case kind == "createContainer":
				if pids := sleepers(secs); len(pids) > 0 {
					t.Errorf("the createContainer hook's child (host pids %v) outlived the failed Create", pids)
				}
			default:
				// A child of a runtime-side hook is not the container's:
				// like runc, box leaves it alone. End it here.
				unix.Kill(bg, unix.SIGKILL)
			}
		})
	}
}

// TestHookTimeout checks that a hook running past its timeout is killed and
// fails Create with an error saying so, for a hook run by the daemon and
// one run in the container.
func TestHookTimeout(t *testing.T) {
	testutil.RequiresRoot(t)
	for _, kind := range []string{"createRuntime", "createContainer"} {
		t.Run(kind, func(t *testing.T) {
			bundle, spec, cg := testBundle(t, "true")
			dir := hookDir(t, spec)
			slow := shHook("/bin/busybox", fmt.Sprintf(`read -r p _ < /proc/self/stat; echo $p > %s/hook.pid; exec sleep 60`, dir), 1)
			h := &specs.Hooks{Poststop: []specs.Hook{recordHook("/bin/busybox", "poststop", dir)}}
			if kind == "createRuntime" {
				h.CreateRuntime = []specs.Hook{slow}
			} else {
				h.CreateContainer = []specs.Hook{slow}
			}
			spec.Hooks = h
			start := time.Now()
			_, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: createPlan(t, bundle, spec), Monitor: &testMonitor{}})
			d := time.Since(start)
			checkFailedCreate(t, err, cg, bundle, dir, kind+" hook #0", "ran past its timeout of 1s and was killed")
			if d < time.Second || d > 10*time.Second {
				t.Errorf("Create failed after %s, want about the 1s timeout", d)
			}
		})
	}
}

// TestHookContextCancel checks that a hook without a timeout is killed when
// Create's context ends.
func TestHookContextCancel(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, cg := testBundle(t, "true")
	dir := hookDir(t, spec)
	spec.Hooks = &specs.Hooks{
		CreateRuntime: []specs.Hook{shHook("/bin/busybox", fmt.Sprintf(`read -r p _ < /proc/self/stat; echo $p > %s/hook.pid; exec sleep 60`, dir), 0)},
		Poststop:      []specs.Hook{recordHook("/bin/busybox", "poststop", dir)},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	_, err := Create(ctx, CreateConfig{ID: "t", Bundle: bundle, Plan: createPlan(t, bundle, spec), Monitor: &testMonitor{}})
	checkFailedCreate(t, err, cg, bundle, dir, "createRuntime hook #0", "killed", "deadline exceeded")
}

// TestStartContainerHookFailure checks that a failing startContainer hook
// fails Start with its error, and the container's process never runs.
func TestStartContainerHookFailure(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, cg := testBundle(t, "sh", "-c", "touch /hookout/process-ran")
	dir := hookDir(t, spec)
	spec.Hooks = &specs.Hooks{StartContainer: []specs.Hook{shHook("/bin/busybox", "echo nope; exit 3", 0)}}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: createPlan(t, bundle, spec), Monitor: &testMonitor{}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start()
	if err == nil || !strings.Contains(err.Error(), "startContainer hook #0") || !strings.Contains(err.Error(), "exited with status 3") || !strings.Contains(err.Error(), "nope") {
		t.Errorf("Start error %v, want the startContainer hook's failure", err)
	}
	if e := <-c.Exited(); e.Status == 0 {
		t.Errorf("init exited 0 after a failed startContainer hook")
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "process-ran")); err == nil {
		t.Error("the container's process ran after its startContainer hook failed")
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left: %v", matches)
	}
}

// TestPoststartHookFailure checks runc's and runtime-spec 1.3.0's rule: a
// failing poststart hook fails Start and the container is killed.
func TestPoststartHookFailure(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sleep", "100")
	spec.Hooks = &specs.Hooks{Poststart: []specs.Hook{shHook("/bin/busybox", "exit 4", 0)}}
	c, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: createPlan(t, bundle, spec), Monitor: &testMonitor{}})
	if err != nil {
		t.Fatal(err)
	}
	err = c.Start()
	if err == nil || !strings.Contains(err.Error(), "poststart hook #0") || !strings.Contains(err.Error(), "exited with status 4") {
		t.Errorf("Start error %v, want the poststart hook's failure", err)
	}
	select {
	case e := <-c.Exited():
		if e.Status != 128+int(unix.SIGKILL) {
			t.Errorf("container exit %d, want killed", e.Status)
		}
	case <-time.After(10 * time.Second):
		c.SignalAll(unix.SIGKILL)
		<-c.Exited()
		t.Error("container still runs after its poststart hook failed")
	}
	if err := c.Destroy(); err != nil {
		t.Fatal(err)
	}
}

// TestPoststopFailureNotFatal checks that a failing poststop hook is
// reported but the hooks after it still run.
func TestPoststopFailureNotFatal(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "true")
	dir := hookDir(t, spec)
	spec.Hooks = &specs.Hooks{Poststop: []specs.Hook{
		shHook("/bin/busybox", "exit 5", 0),
		recordHook("/bin/busybox", "poststop", dir),
		shHook("/bin/busybox", "exit 6", 0),
	}}
	if _, e := runContainer(t, bundle, spec, nil); e.Status != 0 {
		t.Fatalf("exit %d", e.Status)
	}
	// runContainer destroyed the container; its poststop hooks are ours.
	c := &Container{ID: "t", Plan: createPlan(t, bundle, spec), bundle: bundle, monitor: &testMonitor{}}
	err := c.Poststop(context.Background())
	for _, want := range []string{"poststop hook #0 (/bin/busybox) of t: exited with status 5", "poststop hook #2 (/bin/busybox) of t: exited with status 6"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Poststop error %v, want %q", err, want)
		}
	}
	if r := readRecord(t, dir, "poststop"); r.state.Status != specs.StateStopped {
		t.Errorf("second poststop hook: status %q", r.state.Status)
	}
}

// TestHookMissingPath checks that a hook whose program does not exist fails
// Create with a not-found error naming it.
func TestHookMissingPath(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, cg := testBundle(t, "true")
	spec.Hooks = &specs.Hooks{CreateContainer: []specs.Hook{{Path: "/no/such/hook"}}}
	_, err := Create(context.Background(), CreateConfig{ID: "t", Bundle: bundle, Plan: createPlan(t, bundle, spec), Monitor: &testMonitor{}})
	if err == nil || !strings.Contains(err.Error(), "createContainer hook #0 (/no/such/hook)") || !strings.Contains(err.Error(), "no such file") {
		t.Fatalf("err %v, want the missing hook named", err)
	}
	if matches := cgroupGlob(cg + "/*/"); len(matches) != 0 {
		t.Errorf("cgroups left: %v", matches)
	}
}

// TestHookNoLeakedFds checks the CVE-2024-21626 class for hooks: a
// descriptor the runtime holds without close-on-exec does not reach a hook.
// Negative control: with hookCloexec switched off the same hook sees it.
func TestHookNoLeakedFds(t *testing.T) {
	testutil.RequiresRoot(t)
	leak, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0) // no O_CLOEXEC
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(leak)
	run := func() string {
		bundle, spec, _ := testBundle(t, "true")
		dir := hookDir(t, spec)
		spec.Hooks = &specs.Hooks{CreateRuntime: []specs.Hook{recordHook("/bin/busybox", "createRuntime", dir)}}
		if _, e := runContainer(t, bundle, spec, nil); e.Status != 0 {
			t.Fatalf("exit %d", e.Status)
		}
		return readRecord(t, dir, "createRuntime").fds
	}
	// With the protection the leak's close-on-exec flag is set for good,
	// so the control runs first, on a fresh unprotected descriptor.
	saved := hookCloexec
	hookCloexec = func() error { return nil }
	control := run()
	hookCloexec = saved
	if !strings.Contains(" "+control+" ", fmt.Sprintf(" %d ", leak)) {
		t.Fatalf("negative control: without hookCloexec the hook saw %q, want fd %d among them", control, leak)
	}
	if got := run(); got != "0 1 2 3" {
		t.Errorf("hook's descriptors %q, want only stdio (and ls's own 3)", got)
	}
}
