package runtime

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/containerd/v2/pkg/testutil"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// censusLeakFD is where leakHostDir puts a host directory.
const censusLeakFD = 77

// leakHostDir opens a host directory (with a marker file and a busybox
// named "echo") at descriptor censusLeakFD of the test process without
// O_CLOEXEC, so every stage the runtime forks inherits it, as runc's init
// inherited a host cgroup directory in CVE-2024-21626. It is closed when
// the test ends.
func leakHostDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "marker"), []byte("HOST MARKER\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "echo"), bb, 0o755); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Dup3(fd, censusLeakFD, 0); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	t.Cleanup(func() { unix.Close(censusLeakFD) })
	return dir
}

// fdCensus lists the descriptors of pid that give a way out of a
// container, as "fd -> target": every directory and regular file, except
// close-on-exec ones on procfs or cgroupfs. Those two are the Go runtime's
// read-only cgroup CPU-limit files and pathrs-lite's private procfs handle
// (an O_PATH of a detached procfs of the container's pid namespace, which
// mountpoint resolution uses); close-on-exec takes them away at execve,
// and until then a "/proc/self/fd/N" cwd or args[0] is refused by
// process.Prepare. Everything else the stage holds is stdio, its sync
// socket, pipes, the pty, anon inodes or /dev/null.
func fdCensus(pid int) ([]string, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var bad []string
	for _, e := range ents {
		p := filepath.Join(dir, e.Name())
		target, _ := os.Readlink(p)
		var st unix.Stat_t
		var fs unix.Statfs_t
		if unix.Stat(p, &st) != nil || unix.Statfs(p, &fs) != nil {
			continue // closed meanwhile
		}
		if t := st.Mode & unix.S_IFMT; t != unix.S_IFDIR && t != unix.S_IFREG {
			continue
		}
		info, err := os.ReadFile(fmt.Sprintf("/proc/%d/fdinfo/%s", pid, e.Name()))
		if err != nil {
			continue
		}
		var flags uint64
		for _, line := range strings.Split(string(info), "\n") {
			if v, ok := strings.CutPrefix(line, "flags:\t"); ok {
				flags, _ = strconv.ParseUint(v, 8, 64)
			}
		}
		known := fs.Type == unix.PROC_SUPER_MAGIC || fs.Type == unix.CGROUP_SUPER_MAGIC || fs.Type == unix.CGROUP2_SUPER_MAGIC
		if known && flags&unix.O_CLOEXEC != 0 {
			continue
		}
		bad = append(bad, e.Name()+" -> "+target)
	}
	return bad, nil
}

// TestCreatedStateFDCensus is the CVE-2024-21626 census at the created
// state: between Create and Start the init stage (which becomes the
// container's process with execve) holds no directory and no regular file,
// so there is no descriptor a process.cwd or args[0] of "/proc/self/fd/N"
// could reach the host through; and the process it execs holds only stdio.
// Negative control: with a host directory leaked into the runtime, the
// census finds it.
func TestCreatedStateFDCensus(t *testing.T) {
	testutil.RequiresRoot(t)
	census := func(t *testing.T) []string {
		bundle, spec, _ := testBundle(t, "ls", "/proc/self/fd")
		var bad []string
		out, e := runContainer(t, bundle, spec, func(c *Container) {
			var err error
			if bad, err = fdCensus(c.Pid); err != nil {
				t.Fatal(err)
			}
		})
		// At execve: 0, 1, 2 and the directory ls reads.
		if e.Status != 0 || strings.Join(strings.Fields(out), " ") != "0 1 2 3" {
			t.Errorf("container process: exit %d, descriptors %q, want 0 1 2 3", e.Status, out)
		}
		return bad
	}
	t.Run("clean", func(t *testing.T) {
		if bad := census(t); len(bad) != 0 {
			t.Errorf("init stage holds at the created state: %q", bad)
		}
	})
	t.Run("leak-control", func(t *testing.T) {
		host := leakHostDir(t)
		bad := census(t)
		want := strconv.Itoa(censusLeakFD) + " -> " + host
		if len(bad) != 1 || bad[0] != want {
			t.Errorf("census with a leaked host directory = %q, want [%q] (test proves nothing)", bad, want)
		}
	})
}

// TestExecLeakedFDPaths is the CVE-2024-21626 check of the exec path, with
// a host directory leaked into the runtime (the stages inherit it): exec's
// process.cwd "/proc/self/fd/N", a cwd that is the image's symlink to it,
// and args[0] "/proc/self/fd/N/echo" are refused with errdefs.ErrInvalidArgument, and a plain exec holds only stdio
// at execve. The negative controls (the same paths escape when the checks
// are off) are runtime/process's TestLeakedFDEscapes and
// TestRunClosesLeakedFDs; here the container's own mount namespace and
// exec stage are used.
func TestExecLeakedFDPaths(t *testing.T) {
	testutil.RequiresRoot(t)
	bundle, spec, _ := testBundle(t, "sleep", "100")
	if err := os.Symlink("/proc/self/fd/"+strconv.Itoa(censusLeakFD), filepath.Join(bundle, "rootfs/leak")); err != nil {
		t.Fatal(err)
	}
	c, mon := createStarted(t, bundle, spec)
	leakHostDir(t)
	fd := "/proc/self/fd/" + strconv.Itoa(censusLeakFD)

	out, e, err := execInto(t, c, mon, execSpec(spec, "ls", "/proc/self/fd"))
	if err != nil || e.Status != 0 || strings.Join(strings.Fields(out), " ") != "0 1 2 3" {
		t.Errorf("exec'd process: err %v, exit %d, descriptors %q, want 0 1 2 3", err, e.Status, out)
	}

	cwd := execSpec(spec, "cat", "marker")
	cwd.Cwd = fd
	if out, _, err := execInto(t, c, mon, cwd); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "is not inside the container's root") {
		t.Errorf("cwd %s: err %v (output %q), want InvalidArgument: not inside the root", fd, err, out)
	}

	// The image's symlink to the leaked descriptor, as exec's cwd.
	viaLink := execSpec(spec, "cat", "marker")
	viaLink.Cwd = "/leak"
	if out, _, err := execInto(t, c, mon, viaLink); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "is not inside the container's root") {
		t.Errorf("cwd /leak -> %s: err %v (output %q), want InvalidArgument: not inside the root", fd, err, out)
	}

	args0 := execSpec(spec, fd+"/echo", "ESCAPED")
	if out, _, err := execInto(t, c, mon, args0); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "magic link") {
		t.Errorf("args[0] %s/echo: err %v (output %q), want InvalidArgument (magic link)", fd, err, out)
	}
}
