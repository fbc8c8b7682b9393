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
	// A prespawned or spare daemon that gets no work (the container joins
	// a running daemon, or start fails) sees EOF and exits.
	defer func() {
		if d, ok := prespawn.Take(); ok {
			d.Conn.Close()
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
	started, err := ensureDaemon(p, opts, bundle, address)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte(address), 0o600); err != nil {
		return err
	}
	out, err := startResult(p.proto, address)
	if err != nil {
		return err
	}
	if started {
		// The next container of this containerd and namespace finds a
		// daemon ready (prespawn.c).
		startSpare(prespawn.SparePath(), daemonEnv(p))
	}
	_, err = os.Stdout.Write(out)
	return err
}

// ensureDaemon starts a daemon listening on address unless one already
// serves it (a grouped container). A stale socket is replaced. started
// reports whether this start set a daemon to work.
func ensureDaemon(p *startParams, opts Options, bundle, address string) (started bool, _ error) {
	l, err := newSocket(address)
	if err != nil {
		if !isAddrInUse(err) {
			return false, fmt.Errorf("create socket %s: %w", address, err)
		}
		if canConnect(address) {
			return false, nil
		}
		if err := removeSocket(address); err != nil {
			return false, fmt.Errorf("remove stale socket %s: %w", address, err)
		}
		if l, err = newSocket(address); err != nil {
			return false, fmt.Errorf("create socket %s: %w", address, err)
		}
	}
	lf, err := l.File()
	// The daemon serves this socket: closing our listener must not unlink it.
	l.SetUnlinkOnClose(false)
	l.Close()
	if err != nil {
		return false, err
	}
	defer lf.Close()

	args := []string{"-namespace", p.namespace, "-id", p.id, "-address", p.grpcAddress}
	if p.debug {
		args = append(args, "-debug")
	}
	env := daemonEnv(p)
	if d, ok := prespawn.Take(); ok {
		if err := handOver(d, opts, prespawn.Work{Args: args, Env: env, Dir: bundle}, lf); err == nil {
			return true, nil
		}
		// It did not take the work: run a daemon the plain way.
	}
	daemon, err := DaemonPath()
	if err != nil {
		return false, err
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
		return false, fmt.Errorf("start daemon: %w", err)
	}
	if err := placeDaemon(cmd.Process.Pid, opts); err != nil {
		_ = cmd.Process.Kill()
		_ = removeSocket(address)
		return false, err
	}
	return true, cmd.Process.Release()
}

// handOver gives the work and the listening socket to d, a daemon the
// constructor prespawned or a spare, and places it. A prespawned daemon is
// placed while it waits, so nothing it does is charged to containerd's
// cgroup; a spare only once it took the work: until then it may be another
// start's. An error means d did not take the work; a prespawned one is
// killed, a spare left alone (it is another start's, or gone).
func handOver(d prespawn.Daemon, opts Options, w prespawn.Work, lf *os.File) error {
	if !d.Spare {
		if err := placeDaemon(d.Pid, opts); err != nil {
			d.Conn.Close() // it sees EOF and exits
			return err
		}
	}
	err := prespawn.Handoff(d.Conn, w, lf)
	if err != nil {
		if !d.Spare {
			_ = unix.Kill(d.Pid, unix.SIGKILL)
		}
		return err
	}
	if d.Spare {
		if err := placeDaemon(d.Pid, opts); err != nil {
			// It serves the socket already; a daemon that cannot be placed
			// must not serve the container.
			_ = unix.Kill(d.Pid, unix.SIGKILL)
			return err
		}
	}
	return nil
}

// daemonEnv is what a daemon serving p gets besides start's environment.
func daemonEnv(p *startParams) []string {
	return []string{
		"TTRPC_ADDRESS=" + p.ttrpcAddress,
		"GRPC_ADDRESS=" + p.grpcAddress,
		"NAMESPACE=" + p.namespace,
		ContainerdEnv + "=" + containerdIdentity(),
	}
}

// startSpare starts a daemon that waits on the socket path, as the spare,
// for the next start of this containerd and namespace (the daemon's -spare
// mode). It runs detached from start, in "/", with stdio on /dev/null;
// should a spare already wait there, the new one exits at once. Best effort:
// without a spare the next start prespawns its daemon.
func startSpare(path string, env []string) {
	if path == "" {
		return
	}
	daemon, err := DaemonPath()
	if err != nil {
		return
	}
	cmd := exec.Command(daemon, "-spare", path)
	cmd.Dir = "/"
	cmd.Env = append(append(os.Environ(), env...), "GOMAXPROCS=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if cmd.Start() == nil {
		_ = cmd.Process.Release()
	}
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
