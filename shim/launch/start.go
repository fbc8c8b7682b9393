package launch

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime/cgroup"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch/prespawn"
)

// defaultSocketRoot is where daemon sockets go unless containerd says
// otherwise. Addresses are hashed from containerd's own address, namespace
// and group, so two containerds never share a daemon.
const defaultSocketRoot = "/run/containerd/s"

// socketDirEnv overrides defaultSocketRoot when containerd does not pass a
// socket directory (containerd < 2.3 has no way to): set it in the runtime's
// environment, e.g. through the runtime options of containerd's config.
const socketDirEnv = "BOX_SOCKET_DIR"

// Grouping annotations: containers carrying the same value share a daemon.
const (
	groupAnnotationCRI  = "io.kubernetes.cri.sandbox-id"
	groupAnnotationRunc = "io.containerd.runc.v2.group"
)

// start is the "start" action: make sure a daemon serves this task (start
// one, or reuse the group's), and tell containerd its address.
//
// containerd runs it with the bundle as the working directory.
func start(f Flags) error {
	// A prespawned daemon that gets no work (the container joins a running
	// daemon, or start fails) sees EOF and exits.
	defer func() {
		if _, conn, ok := prespawn.Take(); ok {
			conn.Close()
		}
	}()
	stdin, err := readStdin()
	if err != nil {
		return fmt.Errorf("read start input: %w", err)
	}
	p, err := parseStart(f, stdin, os.Getenv)
	if err != nil {
		return err
	}
	opts, err := ParseOptions(p.options)
	if err != nil {
		return err
	}
	bundle, err := os.Getwd()
	if err != nil {
		return err
	}
	root := p.socketDir
	if root == "" {
		root = os.Getenv(socketDirEnv)
	}
	if root == "" {
		root = defaultSocketRoot
	}
	address := socketAddress(root, p.grpcAddress, p.namespace, groupID(bundle, p.id))
	if err := ensureDaemon(p, opts, bundle, address); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte(address), 0o600); err != nil {
		return err
	}
	out, err := startResult(p.proto, address)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(out)
	return err
}

// ensureDaemon starts a daemon listening on address unless one already
// serves it (a grouped container). A stale socket is replaced.
func ensureDaemon(p *startParams, opts Options, bundle, address string) error {
	l, err := newSocket(address)
	if err != nil {
		if !isAddrInUse(err) {
			return fmt.Errorf("create socket %s: %w", address, err)
		}
		if canConnect(address) {
			return nil
		}
		if err := removeSocket(address); err != nil {
			return fmt.Errorf("remove stale socket %s: %w", address, err)
		}
		if l, err = newSocket(address); err != nil {
			return fmt.Errorf("create socket %s: %w", address, err)
		}
	}
	lf, err := l.File()
	// The daemon serves this socket: closing our listener must not unlink it.
	l.SetUnlinkOnClose(false)
	l.Close()
	if err != nil {
		return err
	}
	defer lf.Close()

	args := []string{"-namespace", p.namespace, "-id", p.id, "-address", p.grpcAddress}
	if p.debug {
		args = append(args, "-debug")
	}
	env := []string{
		"TTRPC_ADDRESS=" + p.ttrpcAddress,
		"GRPC_ADDRESS=" + p.grpcAddress,
		"NAMESPACE=" + p.namespace,
		ContainerdEnv + "=" + containerdIdentity(),
	}
	if pid, conn, ok := prespawn.Take(); ok {
		// The daemon the constructor started is (nearly) past its
		// runtime's start-up. Place it while it waits for its work, so
		// nothing it does is charged to containerd's cgroup.
		if err := placeDaemon(pid, opts); err != nil {
			conn.Close() // it sees EOF and exits
			_ = removeSocket(address)
			return err
		}
		err := prespawn.Handoff(conn, prespawn.Work{Args: args, Env: env}, lf)
		if err == nil {
			return nil
		}
		// It did not take the work: run a daemon the plain way.
		_ = unix.Kill(pid, unix.SIGKILL)
	}
	daemon, err := DaemonPath()
	if err != nil {
		return err
	}
	cmd := exec.Command(daemon, args...)
	cmd.Dir = bundle
	// The daemon's own work is small and mostly waiting; one P keeps its
	// thread count (and memory) down. Containers are unaffected.
	cmd.Env = append(append(os.Environ(), env...), "GOMAXPROCS=1")
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = removeSocket(address)
		return fmt.Errorf("start daemon: %w", err)
	}
	if err := placeDaemon(cmd.Process.Pid, opts); err != nil {
		_ = cmd.Process.Kill()
		_ = removeSocket(address)
		return err
	}
	return cmd.Process.Release()
}

// placeDaemon moves the new daemon into the shim cgroup the options name and
// sets its OOM score one above containerd's: under memory pressure the
// kernel picks the daemon before containerd, never the other way round.
func placeDaemon(pid int, opts Options) error {
	if opts.ShimCgroup != "" {
		cg, err := cgroup.Load(opts.ShimCgroup)
		if err != nil {
			return fmt.Errorf("runtime option ShimCgroup %s: %w", opts.ShimCgroup, err)
		}
		if err := cg.Add(pid); err != nil {
			return fmt.Errorf("move daemon into ShimCgroup %s: %w", opts.ShimCgroup, err)
		}
	}
	if err := adjustOOMScore(pid); err != nil {
		return fmt.Errorf("adjust daemon oom score: %w", err)
	}
	return nil
}

// groupID is the daemon a container belongs to: its pod (sandbox) or
// explicit group when config.json names one, else the container itself.
func groupID(bundle, id string) string {
	b, err := os.ReadFile(filepath.Join(bundle, "config.json"))
	if err != nil {
		return id
	}
	var s struct {
		Annotations map[string]string `json:"annotations"`
	}
	if json.Unmarshal(b, &s) != nil {
		return id
	}
	for _, k := range []string{groupAnnotationRunc, groupAnnotationCRI} {
		if g := s.Annotations[k]; g != "" {
			return g
		}
	}
	return id
}

// ContainerdEnv is "<pid>:<start time>" of the containerd that ran start,
// passed to the daemon so it can watch containerd (ParseIdentity).
const ContainerdEnv = "BOX_CONTAINERD"

// containerdIdentity names the calling process's parent (containerd, for
// the start action) so the daemon can watch it.
func containerdIdentity() string {
	ppid := os.Getppid()
	st, err := ProcStartTime(ppid)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d", ppid, st)
}
