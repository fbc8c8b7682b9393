package shim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
)

// defaultSpareIdle is how long a spare waits for a start before it exits: a
// host that has stopped starting containers (or whose containerd is gone for
// good) keeps no idle daemon. spareIdleEnv overrides it (a Go duration).
const (
	defaultSpareIdle = 10 * time.Minute
	spareIdleEnv     = "BOX_SPARE_IDLE"
)

// serveSpare is a spare daemon (-spare path): a start left it running so
// that the next start of the same containerd and namespace finds a daemon
// past its start-up (prespawn.c connects to it). Holding path's lock file
// (path + ".lock"; another spare holding it ends this one quietly), it
// listens on the unix socket path, gets ready for a container (seals the
// stage binary, builds the codecs its first requests use), accepts one
// connection from root, stops listening and removes the socket, and from
// there is a prespawned daemon: the work comes over that connection.
// defaultSpareIdle without a start ends it quietly.
func serveSpare(ctx context.Context, path string) error {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("spare %s: %w", path, err)
	}
	// Released when the process exits, or once the work is taken.
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil // another spare waits here
		}
		return fmt.Errorf("spare %s: lock: %w", path, err)
	}
	// The lock is ours: a socket there is a dead spare's.
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("spare %s: %w", path, err)
	}
	l, err := net.ListenUnix("unixpacket", &net.UnixAddr{Name: path, Net: "unixpacket"})
	if err != nil {
		return fmt.Errorf("spare %s: %w", path, err)
	}
	defer l.Close() // removes the socket
	if err := os.Chmod(path, 0o600); err != nil {
		return fmt.Errorf("spare %s: %w", path, err)
	}
	tuneGC()
	if err := warmUp(); err != nil {
		return err
	}
	idle := defaultSpareIdle
	if d, err := time.ParseDuration(os.Getenv(spareIdleEnv)); err == nil && d > 0 {
		idle = d
	}
	if err := l.SetDeadline(time.Now().Add(idle)); err != nil {
		return err
	}
	for {
		c, err := l.AcceptUnix()
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			// No file is left behind. (Should another spare have opened
			// the lock file just now, it may lock the removed file while a
			// third makes a new one: two spares for a while, one of them
			// unreachable until its own idle time ends it.)
			_ = os.Remove(lock.Name())
			return nil
		}
		if err != nil {
			return fmt.Errorf("spare %s: accept: %w", path, err)
		}
		if !fromRoot(c) {
			c.Close()
			continue
		}
		// One start only: whoever connects after this finds no spare
		// and prespawns its daemon; the next spare may take the path.
		l.Close()
		lock.Close()
		f, err := c.File() // a blocking descriptor, as Receive wants
		c.Close()
		if err != nil {
			return err
		}
		defer f.Close()
		return servePrespawned(ctx, int(f.Fd()))
	}
}

// fromRoot reports whether the peer of c runs as root: only containerd's
// start may hand a daemon its work.
func fromRoot(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	return cred.Uid == 0
}

// warmUp does ahead of the work what a new daemon's first Create would do
// first: seal the stage binary (runtime.SealedExe), and build the JSON
// codecs of the OCI spec and the protobuf message tables of the task API
// and its events (both are built on first use, ~5 ms on the Create path of
// a daemon that starts cold).
func warmUp() error {
	stage, err := launch.StagePath()
	if err != nil {
		return err
	}
	runtime.SetStageExecutable(stage)
	if _, err := runtime.SealedExe(); err != nil {
		return err
	}
	// Encoding reaches every type of the spec, and decoding shares the
	// field tables encoding builds.
	if _, err := json.Marshal(&specs.Spec{}); err != nil {
		return err
	}
	protoregistry.GlobalTypes.RangeMessages(func(mt protoreflect.MessageType) bool {
		name := string(mt.Descriptor().FullName())
		if strings.HasPrefix(name, "containerd.task.v3.") || strings.HasPrefix(name, "containerd.events.") ||
			strings.HasPrefix(name, "containerd.services.events.ttrpc.") {
			_, _ = proto.Marshal(mt.New().Interface())
		}
		return true
	})
	return nil
}
