//go:build linux

package rootfs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The root tests run Prepare and Finalize in a child: the test binary
// re-executed in new mount, pid, uts and ipc namespaces, so no mount ever
// reaches the host. The child reads its instructions from these variables.
const (
	envChild       = "BOX_ROOTFS_TEST_CHILD"    // path of the plan JSON
	envScript      = "BOX_ROOTFS_TEST_SCRIPT"   // sh -c script run in the new root
	envCgroup      = "BOX_ROOTFS_TEST_CGROUP"   // replaces /proc/self/cgroup
	envNaiveMkdir  = "BOX_ROOTFS_TEST_NAIVE"    // "1": mountpoints made with filepath.Join
	envNaiveNull   = "BOX_ROOTFS_TEST_NAIVENUL" // "1": /dev/null not verified
	envFakeDevNull = "BOX_ROOTFS_TEST_FAKENUL"  // "symlink" or "regular": replace /dev/null after Prepare
	envTargets     = "BOX_ROOTFS_TEST_TARGETS"  // "1": report every mount target outside the rootfs (race_test.go)
	envNoSymCheck  = "BOX_ROOTFS_TEST_NOSYMCHK" // "1": procfs/sysfs destinations not checked for symlinks
)

// Exit codes of the child.
const (
	exitPrepare  = 3
	exitFinalize = 4
	exitSetup    = 5
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) != "" {
		os.Exit(childMain())
	}
	os.Exit(m.Run())
}

// childMain is the child's whole life: Prepare, Finalize, exec the script.
// A failure prints "prepare: invalid=<bool>: <error>" (or finalize) on
// stderr and exits with exitPrepare (exitFinalize).
func childMain() int {
	goruntime.LockOSThread()
	var p oci.Plan
	data, err := os.ReadFile(os.Getenv(envChild))
	if err == nil {
		err = json.Unmarshal(data, &p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return exitSetup
	}
	if f := os.Getenv(envCgroup); f != "" {
		selfCgroupFile = f
	}
	if os.Getenv(envNaiveMkdir) == "1" {
		mkMountpoint = naiveMkMountpoint
	}
	if os.Getenv(envNaiveNull) == "1" {
		openDevNull = func(*os.File) (*os.File, error) {
			return os.OpenFile("/dev/null", unix.O_PATH|unix.O_CLOEXEC, 0)
		}
	}
	if os.Getenv(envTargets) == "1" {
		reportTargetsOutside(p.Rootfs)
	}
	if os.Getenv(envNoSymCheck) == "1" {
		checkProcDest = func(*os.File, string) error { return nil }
	}
	if err := Prepare(&p); err != nil {
		fmt.Fprintf(os.Stderr, "prepare: invalid=%v: %v\n", errdefs.IsInvalidArgument(err), err)
		return exitPrepare
	}
	if err := fakeDevNull(os.Getenv(envFakeDevNull)); err != nil {
		fmt.Fprintln(os.Stderr, "setup:", err)
		return exitSetup
	}
	if err := Finalize(&p); err != nil {
		fmt.Fprintf(os.Stderr, "finalize: invalid=%v: %v\n", errdefs.IsInvalidArgument(err), err)
		return exitFinalize
	}
	err = syscall.Exec("/bin/sh", []string{"sh", "-c", os.Getenv(envScript)}, []string{"PATH=/bin"})
	fmt.Fprintln(os.Stderr, "setup: exec:", err)
	return exitSetup
}

// fakeDevNull replaces the container's /dev/null, as a process sharing the
// container's /dev could between Prepare and Finalize.
func fakeDevNull(kind string) error {
	switch kind {
	case "":
		return nil
	case "symlink":
		if err := os.Remove("/dev/null"); err != nil {
			return err
		}
		return os.Symlink("/etc/hostile", "/dev/null")
	case "regular":
		if err := os.Remove("/dev/null"); err != nil {
			return err
		}
		return os.WriteFile("/dev/null", []byte("HOSTILE\n"), 0o644)
	}
	return fmt.Errorf("unknown fake /dev/null %q", kind)
}

// naiveMkMountpoint is what mkMountpointInRoot replaces: it joins paths
// lexically and lets the host resolve symlinks, so a symlink in the rootfs
// can point outside of it.
func naiveMkMountpoint(root *os.File, dest string, dir bool) (*os.File, error) {
	path := filepath.Join(root.Name(), dest)
	if dir {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, err
		}
	} else {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, err
		}
		f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY, 0o644)
		if err != nil {
			return nil, err
		}
		f.Close()
	}
	return os.OpenFile(path, unix.O_PATH|unix.O_CLOEXEC, 0)
}

// child is one run of the child process.
type child struct {
	plan   *oci.Plan
	script string
	env    []string
}

// result is what a child run produced.
type result struct {
	stdout, stderr string
	code           int
}

// run starts the child in new mount, pid, uts and ipc namespaces and waits
// for it.
func (c child) run(t *testing.T) result {
	t.Helper()
	data, err := json.Marshal(c.plan)
	if err != nil {
		t.Fatal(err)
	}
	planFile := filepath.Join(t.TempDir(), "plan.json")
	if err := os.WriteFile(planFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0])
	cmd.Env = append(os.Environ(), envChild+"="+planFile, envScript+"="+c.script)
	cmd.Env = append(cmd.Env, c.env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWUTS | unix.CLONE_NEWIPC,
		Pdeathsig:  syscall.SIGKILL,
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("run child: %v", err)
	}
	r := result{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
	if r.code == exitSetup {
		t.Fatalf("child setup failed: %s", r.stderr)
	}
	return r
}

// newRootfs makes a busybox rootfs in a temp dir, with a shell, /etc and
// the given extra files (path -> content), and checks on cleanup that no
// mount below the temp dir is left on the host.
func newRootfs(t *testing.T, files map[string]string) string {
	t.Helper()
	testutil.RequiresRoot(t)
	base := t.TempDir()
	t.Cleanup(func() { assertNoHostMounts(t, base) })
	root := filepath.Join(base, "rootfs")
	for _, d := range []string{"bin", "etc", "proc", "sys", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	copyFile(t, "/bin/busybox", filepath.Join(root, "bin/busybox"))
	for _, applet := range []string{"sh", "cat", "ls", "stat", "echo", "touch", "readlink", "wc", "test", "mkdir"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", applet)); err != nil {
			t.Fatal(err)
		}
	}
	for path, content := range files {
		writeFile(t, filepath.Join(root, path), content)
	}
	return root
}

// assertNoHostMounts fails t if the host's mount table has a mount at or
// below dir, and detaches any it finds (deepest first) so that a failing
// test still leaves the host clean.
func assertNoHostMounts(t *testing.T, dir string) {
	t.Helper()
	ms, err := readMountinfo("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for i := len(ms) - 1; i >= 0; i-- {
		if m := ms[i]; isUnder(m.mountpoint, dir) {
			t.Errorf("mount left on the host: %s (%s)", m.mountpoint, m.fstype)
			if err := unix.Unmount(m.mountpoint, unix.MNT_DETACH); err != nil {
				t.Errorf("detach %s: %v", m.mountpoint, err)
			}
		}
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// newPlan parses spec's mounts and devices as the planner does.
func newPlan(t *testing.T, rootfs string, s *specs.Spec) *oci.Plan {
	t.Helper()
	mounts, err := oci.Mounts(s)
	if err != nil {
		t.Fatal(err)
	}
	devices, err := oci.Devices(s)
	if err != nil {
		t.Fatal(err)
	}
	p := &oci.Plan{Rootfs: rootfs, Mounts: mounts, Devices: devices}
	if s.Root != nil {
		p.ReadonlyRootfs = s.Root.Readonly
	}
	if s.Linux != nil {
		p.MaskedPaths, p.ReadonlyPaths = s.Linux.MaskedPaths, s.Linux.ReadonlyPaths
	}
	return p
}

// defaultMounts are containerd's default spec mounts.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"nosuid", "noexec", "nodev", "relatime", "ro"}},
	}
}

// containerd's default masked and readonly paths.
var (
	defaultMasked = []string{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
		"/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
		"/sys/devices/virtual/powercap", "/proc/scsi"}
	defaultReadonly = []string{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}
)

// fakeCgroupFile writes a /proc/self/cgroup that places the child at the
// root of every hierarchy, so the test views cgroups without depending on
// (or touching) the cgroups the test runs in.
func fakeCgroupFile(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		lines = append(lines, parts[0]+":"+parts[1]+":/")
	}
	path := filepath.Join(t.TempDir(), "cgroup")
	writeFile(t, path, strings.Join(lines, "\n")+"\n")
	return path
}

// sections splits the output of a script that prints "== name" before each
// command into name -> output.
func sections(out string) map[string]string {
	m := map[string]string{}
	var name string
	for _, line := range strings.SplitAfter(out, "\n") {
		if n, ok := strings.CutPrefix(line, "== "); ok {
			name = strings.TrimSpace(n)
			continue
		}
		m[name] += line
	}
	return m
}
