package runtime

// The sync protocol between the daemon and a container-side stage.
//
// The daemon creates a SOCK_SEQPACKET socketpair (both ends close-on-exec) and
// hands one end to the stage as fd 3. Every message is one JSON datagram.
//
//	daemon                                      box init (in the new namespaces)
//	  |  clone(CLONE_NEW*, pidfd) ------------------>|  Go runtime starts, locks its thread,
//	  |  [cgroup v1: write pid to cgroup.procs]      |  becomes non-dumpable, reads fd 3
//	  |--- config {spec, bundle} ------------------->|
//	  |                                              |  rootfs, pivot_root, hostname,
//	  |                                              |  masked/readonly paths, rlimits,
//	  |                                              |  user, capabilities, cwd
//	  |<-- ready  |  error {message, kind} ----------|
//	  |  (Create returns the pid)                    |  blocks reading fd 3
//	  |--- start ----------------------------------->|
//	  |                                              |  marks every fd >= 3 CLOEXEC, execve
//	  |<-- EOF (execve closed fd 3)  |  error -------|
//
// The daemon never sends config before the child is in its cgroup, so every
// process the container creates is accounted. EOF before "ready" means the
// stage died; the daemon reports that as an error and reaps it. Because fd 3
// is close-on-exec, EOF after "start" proves execve happened.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// syncFD is the stage's end of the socketpair.
const syncFD = 3

// maxMsg bounds one datagram (a config.json can be large, but not this large).
const maxMsg = 4 << 20

type msgType string

const (
	msgConfig msgType = "config"
	msgReady  msgType = "ready"
	msgStart  msgType = "start"
	msgError  msgType = "error"
)

// message is the one datagram type exchanged on the sync socket.
type message struct {
	Type msgType `json:"type"`
	// Config is set on msgConfig.
	Config *stageConfig `json:"config,omitempty"`
	// Error and Kind are set on msgError. Kind is the errdefs class name so
	// the daemon can classify the failure for containerd.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
}

// stageConfig is what the init stage needs to build the container.
type stageConfig struct {
	Bundle string      `json:"bundle"`
	Spec   *specs.Spec `json:"spec"`
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
	return &syncConn{f: os.NewFile(uintptr(fds[0]), "sync")}, os.NewFile(uintptr(fds[1]), "sync-child"), nil
}

func (c *syncConn) send(m message) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if len(b) > maxMsg {
		return fmt.Errorf("sync message of %d bytes exceeds %d: %w", len(b), maxMsg, errdefs.ErrInvalidArgument)
	}
	_, err = c.f.Write(b)
	return err
}

// errEOF reports that the other end closed without a message.
var errEOF = errors.New("sync socket closed")

func (c *syncConn) recv() (message, error) {
	buf := make([]byte, maxMsg)
	n, err := c.f.Read(buf)
	if n == 0 && (err == nil || errors.Is(err, io.EOF)) {
		return message{}, errEOF
	}
	if err != nil {
		return message{}, err
	}
	var m message
	if err := json.Unmarshal(buf[:n], &m); err != nil {
		return message{}, fmt.Errorf("decode sync message: %w", err)
	}
	return m, nil
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
