// Package rig starts one private containerd with both runtimes the benchmark compares:
// io.containerd.box.v1 (the shim under test) and io.containerd.runc.v2 (the peer:
// containerd-shim-runc-v2 + runc built at pinned versions by hack/tools.sh), and, when its
// binary is given, io.containerd.null.v1: the null shim (bench/cmd/nullshim), which does no
// work and so measures containerd's own part of every operation.
//
// It shares the daemon starter and the teardown with integration/harness through
// integration/harness/core (which needs no testing.TB) but owns its own names: everything it
// makes lives under /run/box-bench-<rand> (sockets, root, state, fifos, the peer's runc root)
// and the cgroup parent /box-bench-<rand>; Close removes all of it, including shims and
// container processes left by an aborted run.
package rig

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
	"github.com/boxrt/containerd-shim-box-v1/integration/harness/core"
	"github.com/containerd/containerd/api/types/runc/options"
	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
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
	Null  string // containerd-shim-null-v1 (bench/cmd/nullshim); "" for no floor runtime
}

// NullRuntime is the runtime type of the null shim.
const NullRuntime = "io.containerd.null.v1"

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
	// Null is the null shim's runtime; nil unless Config.Null is set.
	Null  *Runtime
	Image client.Image

	cfg  Config
	d    *core.Daemon // the process, its config and its teardown
	null *exec.Cmd    // the null shim's one daemon
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
	d := core.New(dir)
	d.LogLevel = "warn"
	d.Namespace = Namespace
	d.Poll = 20 * time.Millisecond
	r = &Rig{
		Dir:          dir,
		Address:      d.Address,
		CgroupParent: "/box-bench-" + suffix,
		FIFODir:      filepath.Join(dir, "fifo"),
		RuncRoot:     filepath.Join(dir, "runc"),
		Ctr:          filepath.Join(cfg.Tools, "ctr"),
		cfg:          cfg,
		d:            d,
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
	if cfg.Null != "" {
		if err := os.Symlink(cfg.Null, filepath.Join(bindir, nullBinary)); err != nil {
			return r, err
		}
	}
	path := strings.Join([]string{bindir, cfg.Peer, "/usr/sbin", "/usr/bin", "/sbin", "/bin"}, ":")
	if err := d.Start(ctx, filepath.Join(cfg.Tools, "containerd"), path, 30*time.Second); err != nil {
		return r, fmt.Errorf("%w\n%s", err, r.Log())
	}
	r.Client = d.Client
	if cfg.Null != "" {
		if err := r.startNull(ctx, bindir); err != nil {
			return r, fmt.Errorf("null shim: %w", err)
		}
	}
	if err := r.importImage(ctx); err != nil {
		return r, err
	}
	return r, nil
}

// Bundle is the bundle directory containerd made for task id.
func (r *Rig) Bundle(id string) string {
	return filepath.Join(r.Dir, "state", "io.containerd.runtime.v2.task", Namespace, id)
}

// Pid is containerd's pid.
func (r *Rig) Pid() int { return r.d.Pid() }

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
func (r *Rig) Log() string { return r.d.Log() }

// CgroupPath is the cgroupsPath of container id.
func (r *Rig) CgroupPath(id string) string { return r.CgroupParent + "/" + id }

// Close stops containerd and removes everything the rig made: shims it started, processes in
// its cgroup parent, mounts under Dir, the cgroup parent in every hierarchy, Dir
// (core.Daemon.Teardown). Best effort; every step runs.
func (r *Rig) Close() error {
	if r.null != nil {
		r.null.Process.Signal(os.Interrupt)
		r.null.Wait()
	}
	return r.d.Teardown(r.CgroupParent, "/box-bench-", r.shimNames()...)
}

// shimNames are the base names, besides containerd-shim-*, that a box shim's argv[0] may have.
func (r *Rig) shimNames() []string {
	return []string{harness.ShimBinary, filepath.Base(r.cfg.Shim)}
}

// ShimPids lists live shim processes of this containerd (box or runc peer): argv[0] is
// containerd-shim-* (or the box shim's own name), and the command line, environment or
// working directory mentions Dir. With kind "box" or "runc", only that shim binary.
func (r *Rig) ShimPids(kind string) []int {
	var pids []int
	for _, s := range core.ShimPids(r.Dir, r.shimNames()...) {
		base := filepath.Base(s.Argv[0])
		// box's daemon is containerd-shim-box-v1-daemon, beside the shim.
		isBox := strings.HasPrefix(base, harness.ShimBinary) || base == filepath.Base(r.cfg.Shim)
		if (kind == "box" && !isBox) || (kind == "runc" && base != "containerd-shim-runc-v2") {
			continue
		}
		pids = append(pids, s.Pid)
	}
	return pids
}

// nullBinary is the name containerd resolves NullRuntime to.
const nullBinary = "containerd-shim-null-v1"

// startNull starts the null shim's daemon, which serves every null task of this containerd
// on the socket its start action names (containerd's gRPC address + ".null"), and waits until
// it listens.
func (r *Rig) startNull(ctx context.Context, bindir string) error {
	socket := r.Address + ".null"
	cmd := exec.Command(filepath.Join(bindir, nullBinary), "serve", "-socket", socket, "-ttrpc-address", r.d.TTRPCAddress)
	f, err := os.Create(filepath.Join(r.Dir, "null-shim.log"))
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		return err
	}
	r.null = cmd
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if _, err := os.Stat(socket); err == nil {
			r.Null = &Runtime{Name: "null", Type: NullRuntime, CtrArgs: []string{"--runtime", NullRuntime}}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	b, _ := os.ReadFile(f.Name())
	return fmt.Errorf("no socket %s after 10s: %s", socket, b)
}
