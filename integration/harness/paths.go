// Package harness starts private containerd daemons with the box shim registered, builds the
// busybox test image locally and offers the probes the integration tests use to prove that a
// container left nothing behind (mounts, cgroups, processes, shims).
//
// Everything a harness creates lives under /run/box-test-<rand>/ (short enough for unix socket
// paths) and under cgroup parents named /box-test-<rand> in every v1 hierarchy; t.Cleanup
// removes both. Nothing is pulled from a registry and /run/containerd is never used.
package harness

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Environment variables that tell the harness where the binaries are. `make integration` sets
// all three; the defaults are relative to the repository root.
const (
	EnvShim  = "BOX_SHIM_BIN" // the shim under test; default _output/bin/containerd-shim-box-v1
	EnvTools = "BOX_TOOLS"    // containerd + ctr builds; default _output/tools
	EnvPeer  = "BOX_PEER"     // containerd-shim-runc-v2 + runc; default _output/peer/bin
)

// Namespace is the containerd namespace every harness client and Ctr call uses.
const Namespace = "box-test"

// ShimBinary is the file name containerd derives from the runtime type io.containerd.box.v1.
const ShimBinary = "containerd-shim-box-v1"

// Runtime names.
const (
	RuntimeBox  = "io.containerd.box.v1"
	RuntimeRunc = "io.containerd.runc.v2"
)

// repoRoot walks up from the working directory (a package directory under go test) to go.mod.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// envPath returns $name made absolute, or def relative to the repository root.
func envPath(t testing.TB, name, def string) string {
	t.Helper()
	p := os.Getenv(name)
	if p == "" {
		root, err := repoRoot()
		if err != nil {
			t.Fatalf("%s unset and %v; run make integration", name, err)
		}
		p = filepath.Join(root, def)
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return abs
}

// mustExecutable fails the test when path is not an executable file.
func mustExecutable(t testing.TB, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		t.Fatalf("%s is missing or not executable (%v): run make integration", path, err)
	}
}

// ShimPath is the absolute path of the shim under test; it fails the test when it is missing.
func ShimPath(t testing.TB) string {
	t.Helper()
	p := envPath(t, EnvShim, "_output/bin/"+ShimBinary)
	mustExecutable(t, p)
	return p
}

// toolsDir returns the directory holding containerd and ctr of the given version ("2.4" or "2.0").
func toolsDir(t testing.TB, version string) string {
	t.Helper()
	tools := envPath(t, EnvTools, "_output/tools")
	switch version {
	case "2.4":
		return filepath.Join(tools, "bin")
	case "2.0":
		return filepath.Join(tools, "containerd-2.0", "bin")
	default:
		t.Fatalf("unknown containerd version %q (want 2.4 or 2.0)", version)
		return ""
	}
}

// peerDir is the directory holding containerd-shim-runc-v2 and runc.
func peerDir(t testing.TB) string {
	t.Helper()
	return envPath(t, EnvPeer, "_output/peer/bin")
}
