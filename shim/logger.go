package shim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"
)

// A logger is a binary:// or binary-v2:// logging binary, started as
// containerd's runc shim starts it (cmd/containerd-shim-runc-v2/process):
//
//	argv  path, then each query key and its first value
//	env   CONTAINER_ID=<id> CONTAINER_NAMESPACE=<ns>, nothing else
//	fd 0-2 /dev/null
//	fd 3  read end of the stdout pipe
//	fd 4  read end of the stderr pipe
//	fd 5  write end of the ready pipe
//
// The daemon then reads the ready pipe: binary-v2 needs one byte; binary
// also takes EOF (the logger closed fd 5 or exited) as ready. Unlike the
// runc shim, the wait is bounded by loggerReadyTimeout and the context.
//
// The container writes into the pipes directly. At close, the logger gets
// SIGTERM and, loggerStopTimeout later, SIGKILL.
var (
	loggerReadyTimeout = 30 * time.Second
	loggerStopTimeout  = 12 * time.Second // as the runc shim
	// loggerKillTimeout bounds the wait for a SIGKILLed logger to be reaped.
	loggerKillTimeout = 5 * time.Second
)

// loggerSpec is a logger binary and its arguments, from a binary:// URI.
type loggerSpec struct {
	path string
	args []string
	// strictReady is set for binary-v2: one byte on fd 5 is required.
	strictReady bool
}

// logger is a running logging binary. Safe for concurrent use.
type logger struct {
	path string
	pid  int
	// pidfd signals the logger without a pid reuse race; -1 if the kernel
	// gave none.
	pidfd int // guarded by mu
	// done is closed once the monitor has reaped the logger.
	done chan struct{}

	mu sync.Mutex
	// stopped is set once stop has run.
	stopped bool // guarded by mu
}

// loggerPipes is a started logger and the write ends of its pipes, which
// the caller owns.
type loggerPipes struct {
	logger         *logger
	stdout, stderr *os.File
}

// startLogger starts the logger spec names through cfg.Monitor and waits
// until it is ready. The write ends are blocking and owned by cfg.UID and
// cfg.GID for a container, or the stdout one is non-blocking for the
// daemon's console copy when cfg.Terminal is set. On failure nothing stays
// open or running.
func startLogger(ctx context.Context, spec loggerSpec, cfg stdioConfig) (loggerPipes, error) {
	if cfg.Monitor == nil {
		return loggerPipes{}, fmt.Errorf("start logger %s: no monitor: %w", spec.path, errdefs.ErrFailedPrecondition)
	}
	var files []*os.File // closed on return but for what is handed out
	defer func() { closeFiles(files...) }()
	var p [3][2]*os.File // stdout, stderr, ready: read and write ends
	for i, nonblock := range [3][2]bool{
		// With a terminal the daemon's console copy writes stdout;
		// otherwise the container does, and needs blocking fds.
		{false, cfg.Terminal},
		{false, false},
		// waitReady reads with a deadline.
		{true, false},
	} {
		r, w, err := newPipe(nonblock[0], nonblock[1])
		if err != nil {
			return loggerPipes{}, fmt.Errorf("start logger %s: %w", spec.path, err)
		}
		p[i] = [2]*os.File{r, w}
		files = append(files, r, w)
	}
	outR, outW, errR, errW, readyR, readyW := p[0][0], p[0][1], p[1][0], p[1][1], p[2][0], p[2][1]
	if !cfg.Terminal {
		// runc's IoUid/IoGid: a process that reopens /proc/self/fd/1
		// needs to own the pipe.
		for _, w := range []*os.File{outW, errW} {
			if err := unix.Fchown(int(w.Fd()), cfg.UID, cfg.GID); err != nil {
				return loggerPipes{}, fmt.Errorf("start logger %s: chown pipe to %d:%d: %w", spec.path, cfg.UID, cfg.GID, classifyErrno(err))
			}
		}
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		return loggerPipes{}, fmt.Errorf("start logger %s: %w", spec.path, err)
	}
	files = append(files, null)

	l, err := forkLogger(spec, cfg, []*os.File{null, null, null, outR, errR, readyW})
	if err != nil {
		return loggerPipes{}, err
	}
	// Only the logger holds the read ends and the ready writer now.
	closeFiles(outR, errR, readyW)
	if err := waitReady(ctx, spec, readyR); err != nil {
		if kerr := l.kill(); kerr != nil {
			err = errors.Join(err, kerr)
		}
		l.closePidfd()
		return loggerPipes{}, err
	}
	files = []*os.File{readyR, null}
	return loggerPipes{logger: l, stdout: outW, stderr: errW}, nil
}

// newPipe returns a close-on-exec pipe. An end made non-blocking is served
// by Go's poller, so that deadlines and Close work on it.
func newPipe(nonblockR, nonblockW bool) (r, w *os.File, err error) {
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		return nil, nil, fmt.Errorf("pipe: %w", err)
	}
	for i, nb := range []bool{nonblockR, nonblockW} {
		if nb {
			if err := unix.SetNonblock(p[i], true); err != nil {
				unix.Close(p[0])
				unix.Close(p[1])
				return nil, nil, fmt.Errorf("pipe: %w", err)
			}
		}
	}
	return os.NewFile(uintptr(p[0]), "|0"), os.NewFile(uintptr(p[1]), "|1"), nil
}

// forkLogger starts the logger with files as its fds 0..5.
func forkLogger(spec loggerSpec, cfg stdioConfig, files []*os.File) (*logger, error) {
	argv := append([]string{spec.path}, spec.args...)
	fds := make([]uintptr, len(files))
	for i, f := range files {
		fds[i] = f.Fd()
	}
	pidfd := -1
	attr := &syscall.ProcAttr{
		Env:   []string{"CONTAINER_ID=" + cfg.ID, "CONTAINER_NAMESPACE=" + cfg.Namespace},
		Files: fds,
		Sys:   &syscall.SysProcAttr{PidFD: &pidfd},
	}
	pid, exited, err := cfg.Monitor.Fork(func() (int, error) {
		return syscall.ForkExec(spec.path, argv, attr)
	})
	if err != nil {
		return nil, fmt.Errorf("start logger %s: %w", spec.path, classifyErrno(err))
	}
	l := &logger{path: spec.path, pid: pid, pidfd: pidfd, done: make(chan struct{})}
	go func() {
		<-exited
		close(l.done)
	}()
	return l, nil
}

// waitReady reads the logger's ready pipe until it is ready, it fails,
// loggerReadyTimeout passes or ctx ends.
func waitReady(ctx context.Context, spec loggerSpec, r *os.File) error {
	wait := loggerReadyTimeout
	if d, ok := ctx.Deadline(); ok && time.Until(d) < wait {
		wait = time.Until(d)
	}
	deadline := time.Now().Add(wait)
	if err := r.SetReadDeadline(deadline); err != nil {
		return fmt.Errorf("logger %s: ready pipe: %w", spec.path, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = r.SetReadDeadline(time.Now()) })
	defer stop()

	n, err := r.Read(make([]byte, 1))
	switch {
	case n == 1:
		return nil
	case errors.Is(err, io.EOF) && !spec.strictReady:
		return nil
	case errors.Is(err, io.EOF):
		return fmt.Errorf("logger %s exited or closed fd 5 without signalling ready (binary-v2 needs one byte): %w", spec.path, errdefs.ErrUnavailable)
	case errors.Is(err, os.ErrDeadlineExceeded):
		if ctx.Err() != nil {
			return fmt.Errorf("logger %s: waiting for ready: %w", spec.path, ctx.Err())
		}
		return fmt.Errorf("logger %s did not signal ready within %s: %w", spec.path, wait.Round(time.Millisecond), context.DeadlineExceeded)
	}
	return fmt.Errorf("logger %s: read ready pipe: %w", spec.path, err)
}

// stop ends the logger: SIGTERM, then SIGKILL after loggerStopTimeout. It
// returns once the logger has been reaped. Idempotent.
func (l *logger) stop() error {
	l.mu.Lock()
	if l.stopped {
		l.mu.Unlock()
		return nil
	}
	l.stopped = true
	l.mu.Unlock()
	defer l.closePidfd()

	if l.waitExit(0) {
		return nil
	}
	if err := l.signal(unix.SIGTERM); err != nil {
		log.L.WithError(err).WithField("logger", l.path).Warn("SIGTERM logger")
	}
	if l.waitExit(loggerStopTimeout) {
		return nil
	}
	log.L.WithField("logger", l.path).Warnf("logger did not exit %s after SIGTERM; killing it", loggerStopTimeout)
	return l.kill()
}

// kill SIGKILLs the logger and waits for it to be reaped.
func (l *logger) kill() error {
	if err := l.signal(unix.SIGKILL); err != nil {
		return fmt.Errorf("kill logger %s (pid %d): %w", l.path, l.pid, err)
	}
	if !l.waitExit(loggerKillTimeout) {
		return fmt.Errorf("logger %s (pid %d) not reaped %s after SIGKILL: %w", l.path, l.pid, loggerKillTimeout, errdefs.ErrUnavailable)
	}
	return nil
}

// signal sends sig to the logger unless it has exited.
func (l *logger) signal(sig unix.Signal) error {
	if l.waitExit(0) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var err error
	if l.pidfd >= 0 {
		err = unix.PidfdSendSignal(l.pidfd, sig, nil, 0)
	} else {
		// The pid cannot be reused before the monitor reaps it, and then
		// waitExit above would have seen the exit, but for a short race.
		err = unix.Kill(l.pid, sig)
	}
	if errors.Is(err, unix.ESRCH) {
		return nil
	}
	return err
}

// waitExit waits at most d for the logger's exit and tells whether it has
// exited.
func (l *logger) waitExit(d time.Duration) bool {
	if d <= 0 {
		select {
		case <-l.done:
			return true
		default:
			return false
		}
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-l.done:
		return true
	case <-t.C:
		return false
	}
}

func (l *logger) closePidfd() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.pidfd >= 0 {
		unix.Close(l.pidfd)
		l.pidfd = -1
	}
}

// closeFiles closes fs, skipping nils.
func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}
