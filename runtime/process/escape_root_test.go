package process

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// Child switches of the escape tests (read by escapeChildSetup, in the
// child, after childSetup's own).
const (
	// envProcfs changes the child's /proc before Prepare:
	//   "fake:<dir>"       <dir> bind-mounted on /proc, after a fake
	//                      <pid>/oom_score_adj ("FAKE") is made in it;
	//   "redirect:<file>"  <file> bind-mounted on /proc/<pid>/oom_score_adj;
	//   "sysctl-redirect"  /proc/sys/kernel/hostname bind-mounted on
	//                      /proc/sys/kernel/domainname.
	envProcfs = "BOX_PROCESS_TEST_PROCFS"
	// envSysctl "<key>=<value>" makes the child write the sysctl through
	// OpenProcfs and WriteProcfs, as the init stage does, and print
	// "sysctl: ok" or "sysctl: <error>".
	envSysctl = "BOX_PROCESS_TEST_SYSCTL"
	// envLabel makes the child write this SELinux exec label as Prepare
	// does (setExecLabels) and print "label: ok" or "label: <error>".
	envLabel = "BOX_PROCESS_TEST_LABEL"
	// envPathProcfs "1": negative control; procfs writes go by path, as
	// os.WriteFile("/proc/self/oom_score_adj") did.
	envPathProcfs = "BOX_PROCESS_TEST_PATHPROC"
	// envLeakDir opens this host directory at descriptor 77 without
	// O_CLOEXEC, before envChroot takes effect.
	envLeakDir = "BOX_PROCESS_TEST_LEAKDIR"
	// envChroot chroots the child into this directory (with the host's
	// /proc bound at its proc/), standing in for the container's root.
	envChroot = "BOX_PROCESS_TEST_CHROOT"
	// envNoEscapeChecks "1": negative control; no cwd check and no
	// magic-link refusal for the program path.
	envNoEscapeChecks = "BOX_PROCESS_TEST_NOESCAPECHK"
)

// leakedFD is where envLeakDir puts the host directory.
const leakedFD = 77

func escapeChildSetup() error {
	if os.Getenv(envPathProcfs) == "1" {
		openProcfs = func() (int, error) { return unix.Open("/proc", unix.O_PATH|unix.O_CLOEXEC, 0) }
		writeProcfs = func(_ int, rel, value string) error { return os.WriteFile("/proc/"+rel, []byte(value), 0) }
	}
	if os.Getenv(envNoEscapeChecks) == "1" {
		checkCwd = func(string) error { return nil }
		execResolve = 0
	}
	if dir := os.Getenv(envLeakDir); dir != "" {
		fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		if err := unix.Dup3(fd, leakedFD, 0); err != nil {
			return err
		}
		unix.Close(fd)
	}
	if dir := os.Getenv(envChroot); dir != "" {
		if err := unix.Mount("/proc", filepath.Join(dir, "proc"), "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("bind /proc: %w", err)
		}
		if err := unix.Chroot(dir); err != nil {
			return err
		}
		if err := unix.Chdir("/"); err != nil {
			return err
		}
	}
	pid := strconv.Itoa(os.Getpid())
	if v := os.Getenv(envProcfs); v != "" {
		kind, arg, _ := strings.Cut(v, ":")
		var err error
		switch kind {
		case "fake":
			attr := filepath.Join(arg, pid, "task", strconv.Itoa(unix.Gettid()), "attr")
			if err = os.MkdirAll(attr, 0o755); err == nil {
				err = os.WriteFile(filepath.Join(arg, pid, "oom_score_adj"), []byte("FAKE"), 0o644)
			}
			if err == nil {
				err = os.WriteFile(filepath.Join(attr, "exec"), []byte("FAKE"), 0o644)
			}
			if err == nil {
				err = unix.Mount(arg, "/proc", "", unix.MS_BIND, "")
			}
		case "redirect":
			err = unix.Mount(arg, "/proc/"+pid+"/oom_score_adj", "", unix.MS_BIND, "")
		case "sysctl-redirect":
			err = unix.Mount("/proc/sys/kernel/hostname", "/proc/sys/kernel/domainname", "", unix.MS_BIND, "")
		default:
			err = fmt.Errorf("unknown %s %q", envProcfs, v)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", v, err)
		}
	}
	if label := os.Getenv(envLabel); label != "" {
		if err := setExecLabels(&oci.ProcessPlan{SelinuxLabel: label}); err != nil {
			fmt.Printf("label: %v\n", err)
		} else {
			fmt.Println("label: ok")
		}
	}
	if kv := os.Getenv(envSysctl); kv != "" {
		k, v, _ := strings.Cut(kv, "=")
		err := writeSysctlLikeInit(k, v)
		if err != nil {
			fmt.Printf("sysctl: %v\n", err)
		} else {
			fmt.Println("sysctl: ok")
		}
	}
	return nil
}

// writeSysctlLikeInit writes one sysctl the way the init stage's
// writeSysctls does.
func writeSysctlLikeInit(key, value string) error {
	proc, err := openProcfs()
	if err != nil {
		return err
	}
	defer unix.Close(proc)
	return writeProcfs(proc, "sys/"+strings.ReplaceAll(key, ".", "/"), value)
}

// runChildFlags is runChild with the child in new namespaces of flags (on
// top of the mount namespace), e.g. CLONE_NEWUTS so a sysctl write stays in
// the test.
func runChildFlags(t *testing.T, flags uintptr, p specs.Process, env ...string) (string, int) {
	t.Helper()
	spec, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), envChild+"="+string(spec))
	cmd.Env = append(cmd.Env, env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS | flags}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatal(err)
	}
	return out.String(), cmd.ProcessState.ExitCode()
}

func readString(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestOOMScoreAdjFakeProcfs is the CVE-2019-16884 check for oom_score_adj:
// with a volume (a plain directory with a fake <pid>/oom_score_adj) mounted
// on /proc, setting process.oomScoreAdj is refused (the handle is not a
// procfs) and the fake file is not written. Negative control: the
// path-based write box used before (os.WriteFile) writes the fake file and
// reports success.
func TestOOMScoreAdjFakeProcfs(t *testing.T) {
	testutil.RequiresRoot(t)
	adj := 500
	p := specs.Process{Args: []string{"/bin/true"}, Cwd: "/", OOMScoreAdj: &adj}
	for _, control := range []bool{false, true} {
		t.Run(map[bool]string{false: "verified", true: "path-control"}[control], func(t *testing.T) {
			fake := t.TempDir()
			// The child makes <pid>/oom_score_adj ("FAKE") in it.
			env := []string{envProcfs + "=fake:" + fake}
			if control {
				env = append(env, envPathProcfs+"=1")
			}
			out, status := runChild(t, p, env...)
			written := fakeOOMFiles(t, fake)
			if !control {
				if status != childPrepareFailed || !strings.Contains(out, "/proc is not on a procfs") {
					t.Errorf("not refused: status %d, output %q", status, out)
				}
				if written != "" {
					t.Errorf("the fake oom_score_adj was written: %q", written)
				}
				return
			}
			if status != 0 || written != "500" {
				t.Errorf("path-based write did not hit the fake file (test proves nothing): status %d, fake file %q, output %q", status, written, out)
			}
		})
	}
}

// fakeOOMFiles returns the content of the one <pid>/oom_score_adj in dir
// that is not "FAKE", or "".
func fakeOOMFiles(t *testing.T, dir string) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "*", "oom_score_adj"))
	if len(matches) == 0 {
		t.Fatalf("the child made no fake oom_score_adj in %s", dir)
	}
	for _, m := range matches {
		if s := readString(t, m); s != "FAKE" {
			return s
		}
	}
	return ""
}

// TestOOMScoreAdjRedirected is the CVE-2025-52881 check for oom_score_adj:
// with a file bind-mounted over the real /proc/<pid>/oom_score_adj, the
// write is refused (RESOLVE_NO_XDEV) and the file is untouched. Negative
// control: the path-based write lands in the file.
func TestOOMScoreAdjRedirected(t *testing.T) {
	testutil.RequiresRoot(t)
	adj := 500
	p := specs.Process{Args: []string{"/bin/true"}, Cwd: "/", OOMScoreAdj: &adj}
	for _, control := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-xdev", true: "path-control"}[control], func(t *testing.T) {
			target := filepath.Join(t.TempDir(), "elsewhere")
			if err := os.WriteFile(target, []byte("UNTOUCHED"), 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{envProcfs + "=redirect:" + target}
			if control {
				env = append(env, envPathProcfs+"=1")
			}
			out, status := runChild(t, p, env...)
			got := readString(t, target)
			if !control {
				if status != childPrepareFailed || !strings.Contains(out, "is redirected") || !strings.Contains(out, "invalid=true") {
					t.Errorf("not refused: status %d, output %q", status, out)
				}
				if got != "UNTOUCHED" {
					t.Errorf("the redirect target was written: %q", got)
				}
				return
			}
			if status != 0 || got != "500" {
				t.Errorf("path-based write was not redirected (test proves nothing): status %d, target %q, output %q", status, got, out)
			}
		})
	}
}

// TestSysctlWriteRedirected is the CVE-2025-52881 check for linux.sysctl:
// with /proc/sys/kernel/hostname bind-mounted over
// /proc/sys/kernel/domainname, writing the domainname sysctl is refused and
// the hostname is unchanged. Negative control: the path-based write sets
// the hostname. The child has its own UTS namespace.
func TestSysctlWriteRedirected(t *testing.T) {
	testutil.RequiresRoot(t)
	p := specs.Process{Args: []string{"/bin/hostname"}, Cwd: "/"}
	for _, control := range []bool{false, true} {
		t.Run(map[bool]string{false: "no-xdev", true: "path-control"}[control], func(t *testing.T) {
			env := []string{envProcfs + "=sysctl-redirect", envSysctl + "=kernel.domainname=box-redirected"}
			if control {
				env = append(env, envPathProcfs+"=1")
			}
			out, status := runChildFlags(t, syscall.CLONE_NEWUTS, p, env...)
			if status != 0 {
				t.Fatalf("child exited %d: %s", status, out)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if !control {
				if !strings.HasPrefix(lines[0], "sysctl: ") || !strings.Contains(lines[0], "is redirected") || strings.Contains(out, "box-redirected") {
					t.Errorf("redirected sysctl write not refused: %q", out)
				}
				return
			}
			if lines[0] != "sysctl: ok" || lines[len(lines)-1] != "box-redirected" {
				t.Errorf("path-based write did not reach the hostname (test proves nothing): %q", out)
			}
		})
	}
}

// TestSysctlFakeProcfs is the CVE-2019-16884 check for linux.sysctl: with a
// plain directory mounted on /proc, the write is refused before any file is
// opened; negative control: the path-based write fills the fake file.
func TestSysctlFakeProcfs(t *testing.T) {
	testutil.RequiresRoot(t)
	p := specs.Process{Args: []string{"/bin/true"}, Cwd: "/"}
	for _, control := range []bool{false, true} {
		t.Run(map[bool]string{false: "verified", true: "path-control"}[control], func(t *testing.T) {
			fake := t.TempDir()
			file := filepath.Join(fake, "sys/kernel/domainname")
			if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(file, []byte("FAKE"), 0o644); err != nil {
				t.Fatal(err)
			}
			env := []string{envProcfs + "=fake:" + fake, envSysctl + "=kernel.domainname=box"}
			if control {
				env = append(env, envPathProcfs+"=1")
			}
			out, status := runChildFlags(t, syscall.CLONE_NEWUTS, p, env...)
			got := readString(t, file)
			if !control {
				if status != 0 || !strings.Contains(out, "sysctl: ") || !strings.Contains(out, "is not on a procfs") || got != "FAKE" {
					t.Errorf("fake procfs not refused: status %d, output %q, fake file %q", status, out, got)
				}
				return
			}
			if !strings.Contains(out, "sysctl: ok") || got != "box" {
				t.Errorf("path-based write did not hit the fake file (test proves nothing): output %q, fake file %q", out, got)
			}
		})
	}
}

// escapeFixture makes a "container root" for envChroot (busybox as sh and
// echo, an empty proc/, and link -> /proc/self/fd/77) and a host directory
// for envLeakDir holding a marker file and a busybox named echo.
func escapeFixture(t *testing.T) (root, host string) {
	t.Helper()
	root, host = t.TempDir(), t.TempDir()
	for _, d := range []string{"bin", "proc", "etc"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is required: %v", err)
	}
	for _, f := range []string{filepath.Join(root, "bin/busybox"), filepath.Join(host, "echo")} {
		if err := os.WriteFile(f, bb, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, l := range []string{"sh", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(root, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("/proc/self/fd/"+strconv.Itoa(leakedFD), filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(host, "marker"), []byte("HOST MARKER\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return root, host
}

// TestLeakedFDEscapes is the CVE-2024-21626 check for what a descriptor of
// a host directory, leaked into the stage that becomes the container's
// process, would give the spec's author: process.cwd "/proc/self/fd/N", a
// cwd that is a symlink to it (exec's cwd via a symlink in the image), and
// args[0] "/proc/self/fd/N/<program>" (execve resolves it before
// close-on-exec applies). Each is refused with errdefs.ErrInvalidArgument.
// Negative control: without the cwd check and the magic-link refusal, each
// reaches the host directory.
func TestLeakedFDEscapes(t *testing.T) {
	testutil.RequiresRoot(t)
	fd := "/proc/self/fd/" + strconv.Itoa(leakedFD)
	cases := []struct {
		name       string
		p          specs.Process
		refused    string // in the output of the protected run
		controlOut string // the output of the control
	}{
		{"cwd", specs.Process{Args: []string{"/bin/cat", "marker"}, Cwd: fd},
			"process.cwd: \"" + fd + "\" is not inside the container's root", "HOST MARKER\n"},
		{"cwd-via-symlink", specs.Process{Args: []string{"/bin/cat", "marker"}, Cwd: "/link"},
			"process.cwd: \"/link\" is not inside the container's root", "HOST MARKER\n"},
		{"args0", specs.Process{Args: []string{fd + "/echo", "ESCAPED"}, Cwd: "/"},
			"resolves through a /proc magic link", "ESCAPED\n"},
		{"args0-via-symlink", specs.Process{Args: []string{"/link/echo", "ESCAPED"}, Cwd: "/"},
			"resolves through a /proc magic link", "ESCAPED\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			root, host := escapeFixture(t)
			env := []string{envLeakDir + "=" + host, envChroot + "=" + root}
			out, status := runChild(t, tc.p, env...)
			if status != childPrepareFailed || !strings.Contains(out, "invalid=true") || !strings.Contains(out, tc.refused) {
				t.Errorf("not refused: status %d, output %q, want %q", status, out, tc.refused)
			}
			out, status = runChild(t, tc.p, append(env, envNoEscapeChecks+"=1")...)
			if status != 0 || out != tc.controlOut {
				t.Errorf("control did not escape (test proves nothing): status %d, output %q, want %q", status, out, tc.controlOut)
			}
		})
	}
}

// TestExecLabelFakeProcfs is the CVE-2019-16884 check for LSM labels (runc
// wrote the AppArmor label into a volume mounted on /proc, so the process
// ran unconfined): with a plain directory holding a fake
// <pid>/task/<tid>/attr/exec mounted on /proc, writing the exec label is
// refused and the fake file is untouched. Negative control: the path-based
// write fills the fake file and reports success.
func TestExecLabelFakeProcfs(t *testing.T) {
	testutil.RequiresRoot(t)
	const label = "system_u:system_r:spc_t:s0"
	p := specs.Process{Args: []string{"/bin/true"}, Cwd: "/"}
	for _, control := range []bool{false, true} {
		t.Run(map[bool]string{false: "verified", true: "path-control"}[control], func(t *testing.T) {
			fake := t.TempDir()
			env := []string{envProcfs + "=fake:" + fake, envLabel + "=" + label}
			if control {
				env = append(env, envPathProcfs+"=1")
			}
			out, status := runChild(t, p, env...)
			matches, _ := filepath.Glob(filepath.Join(fake, "*/task/*/attr/exec"))
			if status != 0 || len(matches) != 1 {
				t.Fatalf("child: status %d, output %q, fake attr files %q", status, out, matches)
			}
			got := readString(t, matches[0])
			if !control {
				if !strings.Contains(out, "label: ") || !strings.Contains(out, "is not on a procfs") || got != "FAKE" {
					t.Errorf("label written through a fake procfs: output %q, fake attr/exec %q", out, got)
				}
				return
			}
			if !strings.Contains(out, "label: ok") || got != label {
				t.Errorf("path-based write did not hit the fake file (test proves nothing): output %q, fake attr/exec %q", out, got)
			}
		})
	}
}
