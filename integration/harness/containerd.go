package harness

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness/core"
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

	ctrPath string
	d       *core.Daemon // the process, its config and its teardown

	imageOnce sync.Once
	imageRef  string
	imageErr  error
}

type options struct {
	version string
	peer    bool
	env     []string
}

// Option configures Start.
type Option func(*options)

// WithVersion selects the containerd build: "2.4" (default, v2.4.2) or "2.0" (latest v2.0.x).
func WithVersion(v string) Option { return func(o *options) { o.version = v } }

// WithRuncPeer also makes io.containerd.runc.v2 usable (containerd-shim-runc-v2 and runc from
// BOX_PEER on this containerd's PATH). Only comparisons use it: with it, runc is on PATH.
func WithRuncPeer() Option { return func(o *options) { o.peer = true } }

// WithShimEnv adds KEY=VALUE pairs to containerd's environment, which the
// shims it starts inherit.
func WithShimEnv(kv ...string) Option { return func(o *options) { o.env = append(o.env, kv...) } }

// StopContainerd stops this containerd (SIGTERM, then SIGKILL) and leaves its
// shims and containers running, as a crash or an upgrade would. Cleanup still
// removes everything at the end of the test.
func (c *Containerd) StopContainerd(t testing.TB) {
	t.Helper()
	if c.Client != nil {
		c.Client.Close()
		c.Client, c.d.Client = nil, nil
	}
	if err := c.d.Stop(); err != nil {
		t.Fatalf("stop containerd: %v", err)
	}
}

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
	d := core.New(dir)
	d.Version = o.version
	d.LogLevel = "debug"
	d.Namespace = Namespace
	d.Env = o.env
	c := &Containerd{
		Address:      d.Address,
		TTRPCAddress: d.TTRPCAddress,
		Root:         d.Root,
		State:        d.State,
		Dir:          dir,
		Version:      o.version,
		CgroupParent: "/box-test-" + suffix,
		FIFODir:      filepath.Join(dir, "fifo"),
		ctrPath:      filepath.Join(tools, "ctr"),
		d:            d,
	}
	t.Cleanup(func() { c.cleanup(t) })

	path := c.shimPath(t, shim, o.peer)
	if err := d.Start(context.Background(), bin, path, 30*time.Second); err != nil {
		t.Fatalf("containerd %s: %v", o.version, err)
	}
	c.Client = d.Client
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

// Log returns containerd's log so far.
func (c *Containerd) Log() string { return c.d.Log() }

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
