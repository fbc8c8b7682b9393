// Package rig starts one private containerd with both runtimes the benchmark compares:
// io.containerd.box.v1 (the shim under test) and io.containerd.runc.v2 (the peer:
// containerd-shim-runc-v2 + runc built at pinned versions by hack/tools.sh).
//
// It is the benchmark's own starter rather than integration/harness (which is built around
// testing.TB and owns /box-test-* names). Everything it makes lives under /run/box-bench-<rand>
// (sockets, root, state, fifos, the peer's runc root) and the cgroup parent /box-bench-<rand>;
// Close removes all of it, including shims and container processes left by an aborted run.
package rig

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"golang.org/x/sys/unix"
)

// Namespace is the containerd namespace of every benchmark container.
const Namespace = "box-bench"

// Runtime is one side of the comparison.
type Runtime struct {
	Name    string // "box" or "runc"
	Type    string // containerd runtime type
	Options any    // runtime options passed with every container (nil for box)
	// CtrArgs are the ctr run flags selecting this runtime with the same options.
	CtrArgs []string
}

// Config says where the binaries are.
type Config struct {
	Shim  string // containerd-shim-box-v1
	Tools string // dir with containerd + ctr (v2.4.2)
	Peer  string // dir with containerd-shim-runc-v2 + runc
}

// Rig is a running private containerd.
type Rig struct {
	Dir          string // /run/box-bench-<rand>
	Address      string
	CgroupParent string // /box-bench-<rand>
	FIFODir      string
	RuncRoot     string
	Ctr          string
	Client       *client.Client
	Box, Runc    Runtime
	Image        client.Image

	cfg    Config
	cmd    *exec.Cmd
	exited chan struct{}
	logf   string
}

// Start launches containerd and imports the busybox image (built locally, never pulled).
func Start(ctx context.Context, cfg Config) (r *Rig, err error) {
	for _, p := range []string{cfg.Shim, filepath.Join(cfg.Tools, "containerd"), filepath.Join(cfg.Tools, "ctr"),
		filepath.Join(cfg.Peer, "containerd-shim-runc-v2"), filepath.Join(cfg.Peer, "runc")} {
		if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
			return nil, fmt.Errorf("%s missing or not executable (make build tools): %v", p, err)
		}
	}
	b := make([]byte, 4)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	suffix := hex.EncodeToString(b)
	dir := "/run/box-bench-" + suffix
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	r = &Rig{
		Dir:          dir,
		Address:      filepath.Join(dir, "c.sock"),
		CgroupParent: "/box-bench-" + suffix,
		FIFODir:      filepath.Join(dir, "fifo"),
		RuncRoot:     filepath.Join(dir, "runc"),
		Ctr:          filepath.Join(cfg.Tools, "ctr"),
		cfg:          cfg,
		exited:       make(chan struct{}),
		logf:         filepath.Join(dir, "containerd.log"),
	}
	defer func() {
		if err != nil {
			r.Close()
		}
	}()
	runc := filepath.Join(cfg.Peer, "runc")
	r.Box = Runtime{Name: "box", Type: harness.RuntimeBox, CtrArgs: []string{"--runtime", harness.RuntimeBox}}
	// The runc root must be passed with every container: without CRI, containerd 2.4 has no
	// config section that gives io.containerd.runc.v2 default options, and the shim's default
	// is /run/containerd/runc. The client passes options.Options; ctr has --runc-root.
	r.Runc = Runtime{Name: "runc", Type: harness.RuntimeRunc,
		Options: &options.Options{BinaryName: runc, Root: r.RuncRoot},
		CtrArgs: []string{"--runtime", harness.RuntimeRunc, "--runc-binary", runc, "--runc-root", r.RuncRoot}}

	bindir := filepath.Join(dir, "bin")
	if err := os.Mkdir(bindir, 0o755); err != nil {
		return r, err
	}
	if err := os.Symlink(cfg.Shim, filepath.Join(bindir, harness.ShimBinary)); err != nil {
		return r, err
	}
	path := strings.Join([]string{bindir, cfg.Peer, "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":")
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(r.config()), 0o600); err != nil {
		return r, err
	}
	if err := r.launch(filepath.Join(cfg.Tools, "containerd"), path); err != nil {
		return r, err
	}
	if err := r.waitServing(ctx, 30*time.Second); err != nil {
		return r, fmt.Errorf("containerd did not come up: %w\n%s", err, r.Log())
	}
	if err := r.importImage(ctx); err != nil {
		return r, err
	}
	return r, nil
}

func (r *Rig) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 3\nroot = %q\nstate = %q\n", filepath.Join(r.Dir, "root"), filepath.Join(r.Dir, "state"))
	b.WriteString(`disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.images",
  "io.containerd.cri.v1.runtime",
  "io.containerd.podsandbox.controller.v1.podsandbox",
  "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt",
  "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.blockfile",
  "io.containerd.snapshotter.v1.erofs",
  "io.containerd.differ.v1.erofs",
  "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing",
]
`)
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", r.Address)
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %q\n", r.Address+".ttrpc")
	fmt.Fprintf(&b, "\n[debug]\n  address = %q\n  level = \"warn\"\n", filepath.Join(r.Dir, "d.sock"))
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.shim.v1.manager\"]\n  socket_dir = %q\n", filepath.Join(r.Dir, "s"))
	return b.String()
}

func (r *Rig) launch(bin, path string) error {
	logf, err := os.OpenFile(r.logf, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", filepath.Join(r.Dir, "config.toml"))
	cmd.Env = []string{"PATH=" + path, "TMPDIR=" + r.Dir}
	cmd.Dir = r.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	r.cmd = cmd
	go func() {
		cmd.Wait()
		close(r.exited)
	}()
	return nil
}

// Bundle is the bundle directory containerd made for task id.
func (r *Rig) Bundle(id string) string {
	return filepath.Join(r.Dir, "state", "io.containerd.runtime.v2.task", Namespace, id)
}

// Pid is containerd's pid.
func (r *Rig) Pid() int { return r.cmd.Process.Pid }

func (r *Rig) waitServing(ctx context.Context, timeout time.Duration) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-r.exited:
			return fmt.Errorf("containerd exited: %v", r.cmd.ProcessState)
		case <-deadline:
			return errors.New("timeout")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if _, err := os.Stat(r.Address); err != nil {
			continue
		}
		cl, err := client.New(r.Address, client.WithDefaultNamespace(Namespace), client.WithTimeout(2*time.Second))
		if err != nil {
			continue
		}
		c2, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := cl.IsServing(c2)
		cancel()
		if err == nil && ok {
			r.Client = cl
			return nil
		}
		cl.Close()
	}
}

func (r *Rig) importImage(ctx context.Context) error {
	var buf bytes.Buffer
	if err := harness.WriteBusyboxImage(&buf); err != nil {
		return err
	}
	ctx = r.Context(ctx)
	imgs, err := r.Client.Import(ctx, &buf)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	for _, img := range imgs {
		if img.Name != harness.BusyboxRef {
			continue
		}
		i := client.NewImage(r.Client, img)
		if err := i.Unpack(ctx, "overlayfs"); err != nil {
			return err
		}
		r.Image = i
		return nil
	}
	return fmt.Errorf("import produced %v", imgs)
}

// Context puts ctx in the benchmark namespace.
func (r *Rig) Context(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, Namespace)
}

// Log returns containerd's log.
func (r *Rig) Log() string {
	b, _ := os.ReadFile(r.logf)
	return string(b)
}

// CgroupPath is the cgroupsPath of container id.
func (r *Rig) CgroupPath(id string) string { return r.CgroupParent + "/" + id }

// Close stops containerd and removes everything the rig made: shims it started, processes in
// its cgroup parent, mounts under Dir, the cgroup parent in every hierarchy, Dir. Best effort;
// every step runs.
func (r *Rig) Close() error {
	if r.Client != nil {
		r.Client.Close()
	}
	var errs []error
	errs = append(errs, r.stop())
	for _, pid := range r.ShimPids("") {
		errs = append(errs, killWait(pid))
	}
	for _, pid := range ProcessesInCgroup(r.CgroupParent) {
		errs = append(errs, killWait(pid))
	}
	errs = append(errs, unmountUnder(r.Dir))
	errs = append(errs, RemoveCgroup(r.CgroupParent))
	errs = append(errs, os.RemoveAll(r.Dir))
	return errors.Join(errs...)
}

func (r *Rig) stop() error {
	if r.cmd == nil || r.cmd.Process == nil {
		return nil
	}
	select {
	case <-r.exited:
		return nil
	default:
	}
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-r.exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("containerd did not die after SIGKILL")
	}
}

// ShimPids lists live shim processes of this containerd (box or runc peer): argv[0] is
// containerd-shim-*, and the command line, environment or working directory mentions Dir.
// With kind "box" or "runc", only that shim binary.
func (r *Rig) ShimPids(kind string) []int {
	var pids []int
	for _, pid := range allPids() {
		argv := cmdline(pid)
		if len(argv) == 0 {
			continue
		}
		base := filepath.Base(argv[0])
		isBox := base == harness.ShimBinary || base == filepath.Base(r.cfg.Shim)
		if !isBox && !strings.HasPrefix(base, "containerd-shim-") {
			continue
		}
		switch kind {
		case "box":
			if !isBox {
				continue
			}
		case "runc":
			if base != "containerd-shim-runc-v2" {
				continue
			}
		}
		cwd, _ := os.Readlink(procPath(pid, "cwd"))
		env, _ := os.ReadFile(procPath(pid, "environ"))
		if strings.Contains(strings.Join(argv, " "), r.Dir) || strings.HasPrefix(cwd, r.Dir+"/") ||
			strings.Contains(string(env), r.Dir+"/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func procPath(pid int, name string) string { return filepath.Join("/proc", strconv.Itoa(pid), name) }

func allPids() []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, n)
		}
	}
	return pids
}

func cmdline(pid int) []string {
	b, err := os.ReadFile(procPath(pid, "cmdline"))
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
}

// killWait SIGKILLs pid through a pidfd and waits up to 10 s for it to exit.
func killWait(pid int) error {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil
		}
		return err
	}
	defer unix.Close(fd)
	if err := unix.PidfdSendSignal(fd, unix.SIGKILL, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		n, err := unix.Poll(fds, 100)
		if err == nil && n > 0 {
			return nil
		}
	}
	return fmt.Errorf("pid %d survived SIGKILL", pid)
}

// ProcessesInCgroup lists pids whose cgroup, in any hierarchy, is path or below it.
func ProcessesInCgroup(path string) []int {
	var pids []int
	for _, pid := range allPids() {
		b, err := os.ReadFile(procPath(pid, "cgroup"))
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			parts := strings.SplitN(line, ":", 3)
			if len(parts) == 3 && (parts[2] == path || strings.HasPrefix(parts[2], path+"/")) {
				pids = append(pids, pid)
				break
			}
		}
	}
	return pids
}

func unmountUnder(dir string) error {
	b, _ := os.ReadFile("/proc/self/mountinfo")
	var mps []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		if mp := f[4]; mp == dir || strings.HasPrefix(mp, dir+"/") {
			mps = append(mps, mp)
		}
	}
	sort.Slice(mps, func(i, j int) bool { return len(mps[i]) > len(mps[j]) })
	var errs []error
	for _, mp := range mps {
		if err := unix.Unmount(mp, unix.MNT_DETACH); err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
			errs = append(errs, &os.PathError{Op: "umount", Path: mp, Err: err})
		}
	}
	return errors.Join(errs...)
}

// CgroupRoots are the hierarchies mounted under /sys/fs/cgroup (v1 controllers and, on a
// hybrid host, the unified one). The process_api directory is never touched.
func CgroupRoots() []string {
	ents, _ := os.ReadDir("/sys/fs/cgroup")
	var roots []string
	for _, e := range ents {
		if e.Name() == "process_api" {
			continue
		}
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			roots = append(roots, p)
		}
	}
	return roots
}

// RemoveCgroup rmdirs path (which must be a /box-bench-* cgroup) and its children in every
// hierarchy, deepest first, retrying while the kernel still counts exiting tasks.
func RemoveCgroup(path string) error {
	if !strings.HasPrefix(path, "/box-bench-") {
		return errors.New("refusing to remove cgroup " + path)
	}
	var errs []error
	for _, root := range CgroupRoots() {
		var dirs []string
		filepath.WalkDir(filepath.Join(root, path), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
		for _, d := range dirs {
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := unix.Rmdir(d)
				if err == nil || errors.Is(err, unix.ENOENT) {
					break
				}
				if !errors.Is(err, unix.EBUSY) || time.Now().After(deadline) {
					errs = append(errs, &os.PathError{Op: "rmdir", Path: d, Err: err})
					break
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
	}
	return errors.Join(errs...)
}
