package runtime

// The sync protocol between the daemon and a container-side stage.
//
// The daemon creates a SOCK_SEQPACKET socketpair (both ends close-on-exec) and
// hands one end to the stage as fd 3. Every message is one JSON datagram; a
// "ready" that carries a console also carries the pty master as SCM_RIGHTS.
//
// Init ("containerd-shim-box-v1 init"):
//
//	daemon                                      box init (in the new namespaces)
//	  |  clone(CLONE_NEW*, pidfd) ------------------>|  [cgroup v1: C constructor writes "0"
//	  |                                              |   to each tasks file; see below]
//	  |  [cgroup v1, a new user namespace or a       |  Go runtime starts, locks its thread,
//	  |   holder: write pid to cgroup.procs]         |  becomes non-dumpable, reads fd 3
//	  |--- config {spec, bundle, terminal, pid} ---->|
//	  |                                              |  root propagation, mounts, devices
//	  |  [only with prestart/createRuntime hooks:]   |
//	  |<-- hooks ------------------------------------|
//	  |  prestart, createRuntime hooks (host ns)     |
//	  |--- hooks-done  (a failed hook: no reply, ----|
//	  |                 Create kills the stage)      |
//	  |                                              |  [createContainer hooks, here]
//	  |                                              |  pivot_root, [pty from the
//	  |                                              |  container's /dev/ptmx], hostname,
//	  |                                              |  masked/readonly paths, rlimits,
//	  |                                              |  user, capabilities, cwd
//	  |                                              |  [NOTIFY rules: seccomp filter]
//	  |<-- seccomp-listener {listenerFd} ------------|  [only with NOTIFY rules]
//	  |  pidfd_getfd; to linux.seccomp.listenerPath: |
//	  |  ContainerProcessState + SCM_RIGHTS          |
//	  |<-- ready [+ pty master]  |  error {message, kind}
//	  |  (Create returns the pid)                    |  blocks reading fd 3
//	  |--- start ----------------------------------->|
//	  |                                              |  [startContainer hooks, here]
//	  |                                              |  marks every fd >= 3 CLOEXEC, execve
//	  |<-- EOF (execve closed fd 3)  |  error -------|
//	  |  [poststart hooks (host ns); Start returns]  |
//
// Exec ("containerd-shim-box-v1 exec"):
//
//	daemon (locked thread, setns pid)           box exec
//	  |  clone(CLONE_INTO_CGROUP, pidfd) ----------->|  C constructor: [cgroup v1: "0" to
//	  |  [cgroup v1 with execCPUAffinity: write pid  |  each tasks file], non-dumpable,
//	  |   to cgroup.procs]                           |  setns(init pidfd, user|mnt|net|...)
//	  |                                              |  [error datagram + exit 120]
//	  |--- exec-config {process} ------------------->|  Go runtime starts
//	  |                                              |  [pty], rlimits, user, caps, cwd
//	  |<-- seccomp-listener {listenerFd} ------------|  [only with NOTIFY rules]
//	  |  (forwarded to the agent as for init)        |
//	  |<-- ready [+ pty master]  |  error -----------|
//	  |--- start ----------------------------------->|  execve
//	  |<-- EOF  |  error ----------------------------|
//
// A filter with SCMP_ACT_NOTIFY rules is loaded before "ready" (without
// no_new_privs where it always is; with it as the last step of the setup,
// as runc does) and the stage at once writes the listener's fd number; the
// daemon copies the fd out of the stage with pidfd_getfd, as runc does, so
// the stage makes only a write(2) after the load before the agent can
// answer (NOTIFY on write is refused at compile time) and need not wait.
// The stage's copy is close-on-exec (seccompnotify.go).
//
// Every stage is in its cgroup before it does anything for the container, so
// every process the container creates is accounted: born in it (v2), joined
// by its C constructor while it is still one thread (v1), or placed by the
// daemon before config is sent (v1 with a new user namespace, whose
// constructor runs inside it; a holder; an exec with execCPUAffinity).
// Joining from inside is the fast way on v1: moving the calling thread
// skips the global lock that moving another process takes, whose write side
// waits for an RCU grace period (runtime/cgroup.SelfJoiner). EOF before "ready" means the
// stage died; the daemon reports that as an error and reaps it. Because fd 3
// is close-on-exec, EOF after "start" proves execve happened.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime/seccomp"
)

// syncFD is the stage's end of the socketpair.
const syncFD = 3

// maxMsg bounds one datagram (a config.json can be large, but not this large).
const maxMsg = 4 << 20

type msgType string

const (
	msgConfig     msgType = "config"
	msgExecConfig msgType = "exec-config"
	msgReady      msgType = "ready"
	msgStart      msgType = "start"
	msgError      msgType = "error"
	// msgHooks (init → daemon) asks the daemon to run the prestart and
	// createRuntime hooks; msgHooksDone is the reply. Only sent when the
	// spec has such hooks.
	msgHooks     msgType = "hooks"
	msgHooksDone msgType = "hooks-done"
	// msgSeccompListener (stage → daemon) carries the number of the seccomp
	// listener fd in the stage (ListenerFD), for linux.seccomp.listenerPath.
	msgSeccompListener msgType = "seccomp-listener"
)

// message is the one datagram type exchanged on the sync socket.
type message struct {
	Type msgType `json:"type"`
	// Config is set on msgConfig.
	Config *stageConfig `json:"config,omitempty"`
	// Process is set on msgExecConfig.
	Process *specs.Process `json:"process,omitempty"`
	// Filter is the container's compiled seccomp filter, set on
	// msgExecConfig: execs get the same filter as init.
	Filter *filterWire `json:"filter,omitempty"`
	// Personality and MemoryPolicy are the container's linux.personality
	// and linux.memoryPolicy, set on msgExecConfig: execs get them as the
	// init does.
	Personality  *specs.LinuxPersonality  `json:"personality,omitempty"`
	MemoryPolicy *specs.LinuxMemoryPolicy `json:"memoryPolicy,omitempty"`
	// Console is set on msgReady when the datagram carries the pty master.
	Console bool `json:"console,omitempty"`
	// Pid is set on the namespace holder's msgReady: the init stage it
	// forked (namespaces.go).
	Pid int `json:"pid,omitempty"`
	// ListenerFD is set on msgSeccompListener.
	ListenerFD int `json:"listenerFd,omitempty"`
	// Error and Kind are set on msgError. Kind is the errdefs class name so
	// the daemon can classify the failure for containerd.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

// stageConfig is what the init stage needs to build the container.
type stageConfig struct {
	// ID is the container's id; it names the container's session keyring.
	ID     string      `json:"id"`
	Bundle string      `json:"bundle"`
	Spec   *specs.Spec `json:"spec"`
	// Terminal asks for a pty from the container's devpts as stdio.
	Terminal bool `json:"terminal,omitempty"`
	// NoPivotRoot and NoNewKeyring are the runtime options of that name.
	NoPivotRoot  bool `json:"noPivotRoot,omitempty"`
	NoNewKeyring bool `json:"noNewKeyring,omitempty"`
	// Joined says the nsenter constructor joined the stage's namespaces
	// (namespaces.go, held); without it the stage must not go on.
	Joined bool `json:"joined,omitempty"`
	// IDMapFDs are the stage's descriptors of the detached idmapped
	// mounts (idmap.go), by mount index.
	IDMapFDs map[int]int `json:"idmapFDs,omitempty"`
	// CgroupfsWritable is a test hook (negative control of
	// CVE-2023-25809): the init stage undoes oci's read-only cgroupfs.
	CgroupfsWritable bool `json:"testCgroupfsWritable,omitempty"`
	// Pid is the stage's pid in the daemon's pid namespace, for the state
	// given to the stage's hooks.
	Pid int `json:"pid,omitempty"`
	// Filter is linux.seccomp compiled by the daemon; the spec sent to the
	// stage has no linux.seccomp.
	Filter *filterWire `json:"filter,omitempty"`
	// UnshareCgroupNS asks the stage to make its new cgroup namespace
	// before anything else: it was placed in its cgroup after the clone,
	// which therefore did not make the namespace.
	UnshareCgroupNS bool `json:"unshareCgroupNS,omitempty"`
	// HookEnv is the environment of createContainer hooks that have none
	// (the daemon's); set only when there are such hooks.
	HookEnv []string `json:"hookEnv,omitempty"`
}

// syncConn is one end of the socketpair.
type syncConn struct {
	f *os.File
}

func newSyncPair() (parent *syncConn, child *os.File, err error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	// The daemon's end is non-blocking, so waiting on it parks a goroutine
	// in the netpoller instead of an OS thread per container being set up.
	// The stage's end (a separate file description) stays blocking.
	if err := unix.SetNonblock(fds[0], true); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	return &syncConn{f: os.NewFile(uintptr(fds[0]), "sync")}, os.NewFile(uintptr(fds[1]), "sync-child"), nil
}

func (c *syncConn) send(m message) error { return c.sendFD(m, -1) }

// sendFD sends m with fd attached as SCM_RIGHTS, or without when fd < 0.
func (c *syncConn) sendFD(m message, fd int) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxMsg {
		return fmt.Errorf("sync message of %d bytes exceeds %d: %w", len(b), maxMsg, errdefs.ErrInvalidArgument)
	}
	if fd < 0 {
		_, err = c.f.Write(b)
		return err
	}
	raw, err := c.f.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := raw.Write(func(s uintptr) bool {
		serr = unix.Sendmsg(int(s), b, unix.UnixRights(fd), nil, 0)
		return serr != unix.EAGAIN
	}); err != nil {
		return err
	}
	return serr
}

// errEOF reports that the other end closed without a message.
var errEOF = errors.New("sync socket closed")

func (c *syncConn) recv() (message, error) {
	m, f, err := c.recvFD()
	if f != nil {
		f.Close()
		return message{}, fmt.Errorf("unexpected descriptor with %q", m.Type)
	}
	return m, err
}

// recvFD reads one datagram and the descriptor it carries, if any, as a
// close-on-exec *os.File the caller owns.
func (c *syncConn) recvFD() (message, *os.File, error) {
	raw, err := c.f.SyscallConn()
	if err != nil {
		return message{}, nil, err
	}
	oob := make([]byte, unix.CmsgSpace(4*4))
	var (
		buf            []byte
		n, oobn, flags int
		rerr           error
	)
	if err := raw.Read(func(s uintptr) bool {
		// Learn the datagram's size first, so a daemon serving many
		// containers allocates what each message needs, not maxMsg.
		var size int
		size, _, rerr = unix.Recvfrom(int(s), nil, unix.MSG_PEEK|unix.MSG_TRUNC)
		if rerr != nil {
			return rerr != unix.EAGAIN
		}
		buf = make([]byte, min(max(size, 1), maxMsg))
		n, oobn, flags, _, rerr = unix.Recvmsg(int(s), buf, oob, unix.MSG_CMSG_CLOEXEC)
		return rerr != unix.EAGAIN
	}); err != nil {
		return message{}, nil, err
	}
	if rerr != nil {
		return message{}, nil, rerr
	}
	files, err := receivedFiles(oob[:oobn])
	if err != nil {
		return message{}, nil, err
	}
	var f *os.File
	switch {
	case len(files) > 1 || flags&(unix.MSG_TRUNC|unix.MSG_CTRUNC) != 0:
		closeAll(files)
		return message{}, nil, errors.New("truncated or oversized sync message")
	case len(files) == 1:
		f = files[0]
	case n == 0:
		return message{}, nil, errEOF
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		closeAll(files)
		return message{}, nil, fmt.Errorf("decode sync message: %w", err)
	}
	return m, f, nil
}

// receivedFiles turns the SCM_RIGHTS descriptors of oob into files.
func receivedFiles(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	cmsgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("parse control message: %w", err)
	}
	var files []*os.File
	for _, cm := range cmsgs {
		fds, err := unix.ParseUnixRights(&cm)
		if err != nil {
			continue
		}
		for _, fd := range fds {
			files = append(files, os.NewFile(uintptr(fd), "received"))
		}
	}
	return files, nil
}

func closeAll(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

func (c *syncConn) close() error { return c.f.Close() }

// errorMessage turns err into an error datagram that keeps its errdefs class.
func errorMessage(err error) message {
	return message{Type: msgError, Error: err.Error(), Kind: errKind(err)}
}

var kinds = []struct {
	name string
	err  error
}{
	{"invalid-argument", errdefs.ErrInvalidArgument},
	{"not-found", errdefs.ErrNotFound},
	{"failed-precondition", errdefs.ErrFailedPrecondition},
	{"permission-denied", errdefs.ErrPermissionDenied},
	{"already-exists", errdefs.ErrAlreadyExists},
}

func errKind(err error) string {
	for _, k := range kinds {
		if errors.Is(err, k.err) {
			return k.name
		}
	}
	return ""
}

// remoteError rebuilds an error datagram with its class.
func remoteError(m message) error {
	for _, k := range kinds {
		if k.name == m.Kind {
			return fmt.Errorf("%s: %w", m.Error, k.err)
		}
	}
	return errors.New(m.Error)
}

// filterWire is a compiled seccomp program as the daemon sends it to a
// stage: the daemon compiles a container's profile once (it must, to refuse
// a bad one before anything runs) and the stages only load it.
type filterWire struct {
	Insns         []byte `json:"insns"` // struct sock_filter, native byte order
	Flags         uint   `json:"flags,omitempty"`
	NeedsListener bool   `json:"needsListener,omitempty"`
}

// encodeFilter returns the wire form of p; nil for nil.
func encodeFilter(p *seccomp.Program) *filterWire {
	if p == nil {
		return nil
	}
	b, _ := p.MarshalBinary()
	return &filterWire{Insns: b, Flags: p.Flags, NeedsListener: p.NeedsListener}
}

// program decodes w; nil for nil.
func (w *filterWire) program() (*seccomp.Program, error) {
	if w == nil {
		return nil, nil
	}
	p := &seccomp.Program{Flags: w.Flags, NeedsListener: w.NeedsListener}
	if err := p.UnmarshalBinary(w.Insns); err != nil {
		return nil, fmt.Errorf("seccomp filter from the daemon: %w", err)
	}
	return p, nil
}
