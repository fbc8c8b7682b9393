// Package floor is the physical floor of a container start on this machine, measured the way a
// runtime written in Go does it at minimum: clone a small Go init stage (floorinit) with new
// mount, pid, ipc and uts namespaces, move it into a cgroup (cgroup.procs in every hierarchy,
// as on this cgroup v1 host), let it pivot_root into a busybox rootfs and exec the static
// /bin/true, and reap it. No containerd, no shim, no snapshot, no OCI spec.
package floor

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness/core"
	"golang.org/x/sys/unix"
)

// Run measures n runs (after warm warm-up runs) and returns the latencies. dir is scratch
// space (removed by the caller), cgroup a cgroup path the caller owns and removes.
func Run(ctx context.Context, initBin, dir, cgroup string, warm, n int) ([]time.Duration, error) {
	rootfs := filepath.Join(dir, "floor-rootfs")
	for _, d := range []string{"bin", "proc", "dev", "tmp"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return nil, err
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return nil, fmt.Errorf("static busybox (make deps): %w", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), bb, 0o755); err != nil {
		return nil, err
	}
	if err := os.Symlink("busybox", filepath.Join(rootfs, "bin/true")); err != nil {
		return nil, err
	}
	var procs []string
	for _, root := range core.CgroupRoots() {
		p := filepath.Join(root, cgroup)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return nil, err
		}
		if filepath.Base(root) == "cpuset" {
			if err := initCpuset(root, cgroup); err != nil {
				return nil, err
			}
		}
		procs = append(procs, filepath.Join(p, "cgroup.procs"))
	}
	var out []time.Duration
	for i := 0; i < warm+n; i++ {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		d, err := once(initBin, rootfs, procs)
		if err != nil {
			return out, err
		}
		if i >= warm {
			out = append(out, d)
		}
	}
	return out, nil
}

// initCpuset copies cpuset.cpus and cpuset.mems down to every level of cgroup that has none
// (a new v1 cpuset cgroup is empty and refuses tasks).
func initCpuset(root, cgroup string) error {
	dir := root
	for _, part := range strings.Split(strings.Trim(cgroup, "/"), "/") {
		parent := dir
		dir = filepath.Join(dir, part)
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			cur, _ := os.ReadFile(filepath.Join(dir, f))
			if strings.TrimSpace(string(cur)) != "" {
				continue
			}
			v, err := os.ReadFile(filepath.Join(parent, f))
			if err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(dir, f), v, 0); err != nil {
				return fmt.Errorf("%s: %w", filepath.Join(dir, f), err)
			}
		}
	}
	return nil
}

func once(initBin, rootfs string, procs []string) (time.Duration, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return 0, err
	}
	defer r.Close()
	defer w.Close()
	start := time.Now()
	cmd := exec.Command(initBin, rootfs, "/bin/true")
	cmd.ExtraFiles = []*os.File{r}
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: unix.CLONE_NEWNS | unix.CLONE_NEWPID | unix.CLONE_NEWIPC | unix.CLONE_NEWUTS,
		Pdeathsig:  syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	r.Close()
	pid := []byte(strconv.Itoa(cmd.Process.Pid))
	for _, p := range procs {
		if err := os.WriteFile(p, pid, 0); err != nil {
			cmd.Process.Kill()
			cmd.Wait()
			return 0, fmt.Errorf("join %s: %w", p, err)
		}
	}
	if _, err := io.WriteString(w, "g"); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return 0, err
	}
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("floorinit: %w", err)
	}
	return time.Since(start), nil
}
