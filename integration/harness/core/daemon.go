// Package core is the testing.TB-free part of the integration harness, shared with the
// benchmark rig (bench/internal/rig): it starts a private containerd from a private directory,
// stops it by pid, and removes what it and its shims left on the host (shim processes,
// processes in an owned cgroup parent, mounts under the directory, the cgroup parent itself).
//
// It never uses /run/containerd, never rmdirs a cgroup whose path does not carry the caller's
// prefix, never looks into /sys/fs/cgroup/process_api, and signals only processes it can tie
// to the private directory or the owned cgroup parent, through pidfds.
package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// Daemon is a private containerd whose sockets, root, state, config and log all live under Dir.
//
// Lifecycle: New (nothing runs) -> Start (launched, serving) -> Stop or Teardown. Stop and
// Teardown are idempotent and safe on a Daemon that was never started. A Daemon is not safe
// for concurrent use except for Log and Pid.
type Daemon struct {
	Dir          string // private directory; must exist before Start
	Address      string // gRPC socket: Dir/c.sock
	TTRPCAddress string // Dir/c.sock.ttrpc
	Root         string // Dir/root
	State        string // Dir/state
	LogPath      string // Dir/containerd.log, the daemon's stdout and stderr

	// Version "2.0" selects the containerd 2.0 config (socket dir through shim env); anything
	// else means >= 2.3 (socket_dir in the shim manager's section).
	Version string
	// LogLevel is containerd's log level ("debug" when empty).
	LogLevel string
	// Namespace is the default namespace of Client.
	Namespace string
	// Env is added to the daemon's environment, which its shims inherit.
	Env []string
	// Poll is how often Start checks whether the daemon serves (50 ms when zero).
	Poll time.Duration

	// Client is connected to Address once Start returns nil; Teardown closes it.
	Client *client.Client

	cmd    *exec.Cmd
	exited chan struct{} // closed when the daemon has been reaped
}

// New returns the Daemon for dir, with every path derived from it. It starts nothing.
func New(dir string) *Daemon {
	return &Daemon{
		Dir:          dir,
		Address:      filepath.Join(dir, "c.sock"),
		TTRPCAddress: filepath.Join(dir, "c.sock.ttrpc"),
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		LogPath:      filepath.Join(dir, "containerd.log"),
		exited:       make(chan struct{}),
	}
}

// Config renders a containerd 2.x (config version 3) file: private root/state/sockets, CRI and
// plugins that reach outside Dir disabled, shim sockets in Dir/s.
func (d *Daemon) Config() string {
	level := d.LogLevel
	if level == "" {
		level = "debug"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "version = 3\nroot = %q\nstate = %q\n", d.Root, d.State)
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
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", d.Address)
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %q\n", d.TTRPCAddress)
	fmt.Fprintf(&b, "\n[debug]\n  address = %q\n  level = %q\n", filepath.Join(d.Dir, "d.sock"), level)
	// containerd >= 2.3 hands the socket dir to the shim in BootstrapParams.SocketDir. 2.0 has
	// no such setting, only extra shim env: BOX_SOCKET_DIR asks the shim for the same private
	// dir (the shim falls back to /run/containerd/s when it does not honour it).
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.shim.v1.manager\"]\n")
	if d.Version == "2.0" {
		fmt.Fprintf(&b, "  env = [%q]\n", "BOX_SOCKET_DIR="+filepath.Join(d.Dir, "s"))
	} else {
		fmt.Fprintf(&b, "  socket_dir = %q\n", filepath.Join(d.Dir, "s"))
	}
	return b.String()
}

// Start writes Dir/config.toml, launches bin with PATH set to path and waits up to timeout
// for it to serve. On error the daemon may be running: the caller still owns Teardown.
func (d *Daemon) Start(ctx context.Context, bin, path string, timeout time.Duration) error {
	if err := os.WriteFile(filepath.Join(d.Dir, "config.toml"), []byte(d.Config()), 0o600); err != nil {
		return fmt.Errorf("write containerd config: %w", err)
	}
	if err := d.launch(bin, path); err != nil {
		return err
	}
	if err := d.waitServing(ctx, timeout); err != nil {
		return fmt.Errorf("containerd did not come up: %w", err)
	}
	return nil
}

func (d *Daemon) launch(bin, path string) error {
	logf, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", filepath.Join(d.Dir, "config.toml"))
	cmd.Env = append([]string{"PATH=" + path, "TMPDIR=" + d.Dir}, d.Env...)
	cmd.Dir = d.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the caller dies (a test timeout panic), the daemon dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	d.cmd = cmd
	go func() {
		cmd.Wait()
		close(d.exited)
	}()
	return nil
}

func (d *Daemon) waitServing(ctx context.Context, timeout time.Duration) error {
	poll := d.Poll
	if poll == 0 {
		poll = 50 * time.Millisecond
	}
	deadline := time.After(timeout)
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		select {
		case <-d.exited:
			return fmt.Errorf("containerd exited: %v", d.cmd.ProcessState)
		case <-deadline:
			return errors.New("timeout")
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if _, err := os.Stat(d.Address); err != nil {
			continue
		}
		cl, err := client.New(d.Address, client.WithDefaultNamespace(d.Namespace), client.WithTimeout(2*time.Second))
		if err != nil {
			continue
		}
		c2, cancel := context.WithTimeout(ctx, 2*time.Second)
		ok, err := cl.IsServing(c2)
		cancel()
		if err == nil && ok {
			d.Client = cl
			return nil
		}
		cl.Close()
	}
}

// Pid is the daemon's pid, 0 before Start launched it.
func (d *Daemon) Pid() int {
	if d.cmd == nil || d.cmd.Process == nil {
		return 0
	}
	return d.cmd.Process.Pid
}

// Log returns the daemon's log so far.
func (d *Daemon) Log() string {
	b, _ := os.ReadFile(d.LogPath)
	return string(b)
}

// Stop sends SIGTERM to the daemon by pid and SIGKILL after 10 s; it fails if the daemon is
// still there 10 s after that. It only ever signals the process Start launched.
func (d *Daemon) Stop() error {
	if d.cmd == nil || d.cmd.Process == nil {
		return nil
	}
	select {
	case <-d.exited:
		return nil
	default:
	}
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
	}
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-d.exited:
		return nil
	case <-time.After(10 * time.Second):
		return errors.New("containerd did not die after SIGKILL")
	}
}

// Teardown stops the daemon and removes everything it and its shims left. It is idempotent
// and best effort: every step runs, failures are joined.
//
// Order: close Client; stop the daemon (Stop); kill its shims (ShimPids(Dir, shimNames...));
// kill processes left in cgroupParent; unmount everything under Dir; rmdir cgroupParent in
// every hierarchy (only if it starts with ownedPrefix, see RemoveCgroup); remove Dir.
func (d *Daemon) Teardown(cgroupParent, ownedPrefix string, shimNames ...string) error {
	if d.Client != nil {
		d.Client.Close()
	}
	var errs []error
	errs = append(errs, d.Stop())
	for _, s := range ShimPids(d.Dir, shimNames...) {
		errs = append(errs, KillWait(s.Pid))
	}
	errs = append(errs, KillCgroupProcs(cgroupParent))
	errs = append(errs, UnmountUnder(d.Dir))
	errs = append(errs, RemoveCgroup(cgroupParent, ownedPrefix))
	errs = append(errs, os.RemoveAll(d.Dir))
	return errors.Join(errs...)
}
