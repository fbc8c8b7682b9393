package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/client"
)

// Containerd is a private containerd daemon started by Start. Its sockets, root and state live
// under Dir; it is stopped and everything it left is removed by t.Cleanup.
type Containerd struct {
	Address string // gRPC socket
	Root    string
	State   string
	Dir     string // /run/box-test-<rand>
	Version string // "2.4" or "2.0"
	Client  *client.Client

	TTRPCAddress string
	// CgroupParent is the cgroup (in every v1 hierarchy) this harness owns: "/box-test-<rand>".
	// Tests put containers below it (CgroupPath) so that cleanup can remove it.
	CgroupParent string
	// FIFODir replaces /run/containerd/fifo for the client's and ctr's stdio fifos.
	FIFODir string

	logPath string
	ctrPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed when the daemon has been reaped

	imageOnce sync.Once
	imageRef  string
	imageErr  error
}

type options struct {
	version string
	peer    bool
}

// Option configures Start.
type Option func(*options)

// WithVersion selects the containerd build: "2.4" (default, v2.4.2) or "2.0" (latest v2.0.x).
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithRuncPeer also makes io.containerd.runc.v2 usable (containerd-shim-runc-v2 and runc from
// BOX_PEER on this containerd's PATH). Only comparisons use it: with it, runc is on PATH.
func WithRuncPeer() Option { return func(o *options) { o.peer = true } }

// Start launches a private containerd with the box shim registered and returns it once it serves.
func Start(t testing.TB, opts ...Option) *Containerd {
	t.Helper()
	o := options{version: "2.4"}
	for _, opt := range opts {
		opt(&o)
	}
	shim := ShimPath(t)
	tools := toolsDir(t, o.version)
	bin := filepath.Join(tools, "containerd")
	mustExecutable(t, bin)
	mustExecutable(t, filepath.Join(tools, "ctr"))

	suffix := randHex(t, 4)
	dir := "/run/box-test-" + suffix
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatalf("create harness dir: %v", err)
	}
	c := &Containerd{
		Address:      filepath.Join(dir, "c.sock"),
		TTRPCAddress: filepath.Join(dir, "c.sock.ttrpc"),
		Root:         filepath.Join(dir, "root"),
		State:        filepath.Join(dir, "state"),
		Dir:          dir,
		Version:      o.version,
		CgroupParent: "/box-test-" + suffix,
		FIFODir:      filepath.Join(dir, "fifo"),
		logPath:      filepath.Join(dir, "containerd.log"),
		ctrPath:      filepath.Join(tools, "ctr"),
		exited:       make(chan struct{}),
	}
	t.Cleanup(func() { c.cleanup(t) })

	path := c.shimPath(t, shim, o.peer)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(c.config()), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.launch(bin, path); err != nil {
		t.Fatal(err)
	}
	if err := c.waitServing(30 * time.Second); err != nil {
		t.Fatalf("containerd %s did not come up: %v", o.version, err)
	}
	return c
}

// shimPath builds this containerd's PATH: a private bin dir holding only a link to the shim
// under test, then the system dirs (and the peer dir when asked). Without the peer, runc must
// not be found on it: box must never need a runtime binary.
func (c *Containerd) shimPath(t testing.TB, shim string, peer bool) string {
	t.Helper()
	bindir := filepath.Join(c.Dir, "bin")
	if err := os.Mkdir(bindir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(shim, filepath.Join(bindir, ShimBinary)); err != nil {
		t.Fatal(err)
	}
	dirs := []string{bindir}
	if peer {
		pd := peerDir(t)
		mustExecutable(t, filepath.Join(pd, "containerd-shim-runc-v2"))
		mustExecutable(t, filepath.Join(pd, "runc"))
		dirs = append(dirs, pd)
	}
	dirs = append(dirs, "/usr/sbin", "/usr/bin", "/sbin", "/bin")
	path := strings.Join(dirs, ":")
	runc, err := lookPathIn("runc", path)
	switch {
	case !peer && err == nil:
		t.Fatalf("runc found at %s on the shim's PATH %s: box must run without it; remove it from the host", runc, path)
	case peer && (err != nil || filepath.Dir(runc) != peerDir(t)):
		t.Fatalf("runc on the peer PATH is %q (%v), want the one in %s", runc, err, peerDir(t))
	}
	return path
}

// lookPathIn is exec.LookPath with PATH set to path.
func lookPathIn(file, path string) (string, error) {
	old := os.Getenv("PATH")
	os.Setenv("PATH", path)
	defer os.Setenv("PATH", old)
	return exec.LookPath(file)
}

// config renders a containerd 2.x (config version 3) file: private root/state/sockets, CRI and
// plugins that reach outside the harness dir disabled, shim sockets in Dir/s.
func (c *Containerd) config() string {
	var b strings.Builder
	fmt.Fprintf(&b, "version = 3\nroot = %q\nstate = %q\n", c.Root, c.State)
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
	fmt.Fprintf(&b, "\n[grpc]\n  address = %q\n", c.Address)
	fmt.Fprintf(&b, "\n[ttrpc]\n  address = %q\n", c.TTRPCAddress)
	fmt.Fprintf(&b, "\n[debug]\n  address = %q\n  level = \"debug\"\n", filepath.Join(c.Dir, "d.sock"))
	// containerd >= 2.3 hands the socket dir to the shim in BootstrapParams.SocketDir. 2.0 has
	// no such setting, only extra shim env: BOX_SOCKET_DIR asks the shim for the same private
	// dir (the shim falls back to /run/containerd/s when it does not honour it).
	fmt.Fprintf(&b, "\n[plugins.\"io.containerd.shim.v1.manager\"]\n")
	if c.Version == "2.0" {
		fmt.Fprintf(&b, "  env = [%q]\n", "BOX_SOCKET_DIR="+filepath.Join(c.Dir, "s"))
	} else {
		fmt.Fprintf(&b, "  socket_dir = %q\n", filepath.Join(c.Dir, "s"))
	}
	return b.String()
}

func (c *Containerd) launch(bin, path string) error {
	logf, err := os.OpenFile(c.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", filepath.Join(c.Dir, "config.toml"))
	cmd.Env = []string{"PATH=" + path, "TMPDIR=" + c.Dir}
	cmd.Dir = c.Dir
	cmd.Stdout, cmd.Stderr = logf, logf
	// Pdeathsig: if the test binary dies (timeout panic), the daemon dies with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	c.cmd = cmd
	go func() {
		cmd.Wait()
		close(c.exited)
	}()
	return nil
}

func (c *Containerd) waitServing(timeout time.Duration) error {
	deadline := time.After(timeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-c.exited:
			return fmt.Errorf("containerd exited: %v", c.cmd.ProcessState)
		case <-deadline:
			return errors.New("timeout")
		case <-tick.C:
		}
		if _, err := os.Stat(c.Address); err != nil {
			continue
		}
		cl, err := client.New(c.Address, client.WithDefaultNamespace(Namespace), client.WithTimeout(2*time.Second))
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		ok, err := cl.IsServing(ctx)
		cancel()
		if err == nil && ok {
			c.Client = cl
			return nil
		}
		cl.Close()
	}
}

// Log returns containerd's log so far.
func (c *Containerd) Log() string {
	b, _ := os.ReadFile(c.logPath)
	return string(b)
}

// Context returns a context in the harness namespace, cancelled when the test ends.
func (c *Containerd) Context(t testing.TB) context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return namespacesCtx(ctx)
}

// CgroupPath is the cgroupsPath tests give container id: below CgroupParent.
func (c *Containerd) CgroupPath(id string) string { return c.CgroupParent + "/" + id }

func randHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// RandID returns prefix-<8 hex chars>, a container id unique across test runs.
func RandID(t testing.TB, prefix string) string { return prefix + "-" + randHex(t, 4) }
