package shim

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
)

// stdioConfig is what openStdio needs.
type stdioConfig struct {
	// ID and Namespace are passed to a binary:// logger as CONTAINER_ID and
	// CONTAINER_NAMESPACE.
	ID, Namespace string
	// Stdin, Stdout and Stderr are as containerd passed them: "" (none), a
	// fifo path, fifo://path, file:///path, binary:///path?k=v or
	// binary-v2:///path?k=v.
	Stdin, Stdout, Stderr string
	// Terminal: the process gets a pty whose master is handed to
	// attachConsole; Stderr is then unused.
	Terminal bool
	// UID and GID own the pipes the container writes to (runc options
	// IoUid/IoGid); 0 is root.
	UID, GID int
	// Monitor starts and reaps a logger binary.
	Monitor runtime.Monitor
}

// stdio connects one process (an init or an exec) to the stdio containerd
// gave. Without a terminal the container gets the target fds themselves: no
// copy goroutine and no extra pipe sits between the container and a fifo, a
// file or a logger's pipe.
//
// For a fifo the daemon keeps a handle of the opposite direction: a reader
// on stdout/stderr so the container's writes never fail with EPIPE while a
// client detaches and reattaches, and a writer on stdin so the container
// sees EOF only when CloseIO asks for it.
//
// With a terminal the container side is a pty; attachConsole copies the
// stdin fifo into the master and the master into the stdout target.
//
// Lifecycle: openStdio → (runtime creates the process with files) →
// closeChild → [attachConsole] → … → processExited → close. Every method is
// safe for concurrent use, and none blocks except close.
type stdio struct {
	// files are the container's stdin, stdout, stderr (nil: /dev/null),
	// all nil with a terminal. stdout and stderr may be the same file.
	// They are closed by closeChild once the process has its own copies.
	files [3]*os.File
	// term is set with a terminal.
	term *terminal
	// logger is set for binary:// and binary-v2://.
	logger *logger

	mu sync.Mutex
	// stdinHold is the daemon's writer on the stdin fifo.
	stdinHold *os.File // guarded by mu
	// holds are the daemon's readers on output fifos.
	holds []*os.File // guarded by mu
	// closed is set once close has started.
	closed bool // guarded by mu
}

// streamKind is where one stream of a process goes.
type streamKind uint8

const (
	// streamNone: no stream (/dev/null for the container).
	streamNone streamKind = iota
	// streamFifo: a plain path or fifo://path. A regular file at a plain
	// path is appended to, as containerd's runc shim does.
	streamFifo
	// streamFile: file:///path, created if needed and appended to.
	streamFile
	// streamLogger: binary:// or binary-v2://; one logger gets both stdout
	// and stderr.
	streamLogger
)

// stream is the decision for one stream.
type stream struct {
	kind streamKind
	path string // fifo or file path
}

// stdioPlan is what openStdio will open, decided from the config alone.
type stdioPlan struct {
	stdin, stdout, stderr stream
	// logger is set when stdout (and with it stderr) goes to a logger.
	logger *loggerSpec
}

// planStdio decides, without touching the system, what each stream is.
//
// As in containerd's runc shim, the stdout URI decides for stderr when it
// names a logger: the logger receives both streams, whatever stderr says.
// With a terminal stderr is unused. stdin is always a fifo.
func planStdio(cfg stdioConfig) (stdioPlan, error) {
	var p stdioPlan
	var err error
	if p.stdin, _, err = parseStream("stdin", cfg.Stdin); err != nil {
		return p, err
	}
	if p.stdin.kind != streamNone && p.stdin.kind != streamFifo {
		return p, fmt.Errorf("stdin %q: only a fifo can be stdin: %w", cfg.Stdin, errdefs.ErrInvalidArgument)
	}
	if p.stdout, p.logger, err = parseStream("stdout", cfg.Stdout); err != nil {
		return p, err
	}
	if p.stdout.kind == streamLogger || cfg.Terminal {
		return p, nil
	}
	var lg *loggerSpec
	if p.stderr, lg, err = parseStream("stderr", cfg.Stderr); err != nil {
		return p, err
	}
	if lg != nil {
		return p, fmt.Errorf("stderr %q: a logger must be named by stdout, which gets both streams: %w", cfg.Stderr, errdefs.ErrInvalidArgument)
	}
	return p, nil
}

// parseStream parses one of containerd's stdio strings; name is the stream,
// for errors.
func parseStream(name, s string) (stream, *loggerSpec, error) {
	if s == "" {
		return stream{}, nil, nil
	}
	if !strings.Contains(s, "://") {
		return stream{kind: streamFifo, path: s}, nil, nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return stream{}, nil, fmt.Errorf("%s %q: %w: %w", name, s, err, errdefs.ErrInvalidArgument)
	}
	switch u.Scheme {
	case "fifo":
		return stream{kind: streamFifo, path: strings.TrimPrefix(s, "fifo://")}, nil, nil
	case "file":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return stream{}, nil, fmt.Errorf("%s %q: want file:///absolute/path: %w", name, s, errdefs.ErrInvalidArgument)
		}
		return stream{kind: streamFile, path: filepath.Clean(u.Path)}, nil, nil
	case "binary", "binary-v2":
		if u.Host != "" || !filepath.IsAbs(u.Path) {
			return stream{}, nil, fmt.Errorf("%s %q: want %s:///absolute/path: %w", name, s, u.Scheme, errdefs.ErrInvalidArgument)
		}
		spec := &loggerSpec{path: u.Path, args: loggerArgs(u.Query()), strictReady: u.Scheme == "binary-v2"}
		return stream{kind: streamLogger}, spec, nil
	}
	return stream{}, nil, fmt.Errorf("%s %q: unknown scheme %q: %w", name, s, u.Scheme, errdefs.ErrInvalidArgument)
}

// loggerArgs turns a logger URI's query into arguments as containerd's
// NewBinaryCmd does: each key, then its first value, even an empty one
// ("?a=1&b" gives a 1 b ""). No dashes are added. containerd walks the map
// in Go's random order; keys are sorted here so a logger sees one order.
func loggerArgs(q url.Values) []string {
	var args []string
	for _, k := range slices.Sorted(maps.Keys(q)) {
		args = append(args, k)
		if vs := q[k]; len(vs) > 0 {
			args = append(args, vs[0])
		}
	}
	return args
}

// openStdio opens what cfg names: the container side of each stream, the
// daemon's holds on fifos and, for a binary:// URI, the running logger. On
// failure nothing stays open or running.
func openStdio(ctx context.Context, cfg stdioConfig) (_ *stdio, retErr error) {
	p, err := planStdio(cfg)
	if err != nil {
		return nil, err
	}
	s := &stdio{}
	var out *os.File // with a terminal: where the console's output goes
	defer func() {
		if retErr != nil {
			if out != nil && s.term == nil {
				out.Close()
			}
			s.closeChild()
			s.close()
		}
	}()
	if p.stdin.kind == streamFifo {
		if err := s.openStdin(p.stdin.path, cfg.Terminal); err != nil {
			return nil, err
		}
	}
	if p.logger != nil {
		lw, err := startLogger(ctx, *p.logger, cfg)
		if err != nil {
			return nil, err
		}
		s.logger = lw.logger
		if cfg.Terminal {
			// The logger's stderr stays empty under a terminal.
			lw.stderr.Close()
			out = lw.stdout
		} else {
			s.files[1], s.files[2] = lw.stdout, lw.stderr
		}
	}
	files := make(map[string]*os.File) // file:// targets by path, so stdout and stderr can share one
	for i, st := range []stream{p.stdout, p.stderr} {
		if st.kind != streamFifo && st.kind != streamFile {
			continue
		}
		f, err := s.openOutput(st, files, cfg.Terminal)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", [2]string{"stdout", "stderr"}[i], err)
		}
		if cfg.Terminal {
			out = f
		} else {
			s.files[1+i] = f
		}
	}
	if cfg.Terminal {
		s.term = newTerminal(s.files[0], out)
		s.files[0] = nil
	}
	return s, nil
}

// openStdin opens the stdin fifo: the reader for the container (or, with a
// terminal, for the daemon's copy into the pty) in files[0], and the
// daemon's writer in stdinHold. The container's reader is blocking; the
// daemon's copy reads through Go's poller so that close can interrupt it.
func (s *stdio) openStdin(path string, terminal bool) error {
	r, w, err := openFifoPair(path, unix.O_RDONLY, unix.O_WRONLY, !terminal)
	if err != nil {
		return fmt.Errorf("stdin: %w", err)
	}
	s.files[0] = r
	s.mu.Lock()
	s.stdinHold = w
	s.mu.Unlock()
	return nil
}

// openOutput opens an output target for writing. files shares file://
// targets between stdout and stderr. A fifo's writer is blocking for the
// container and pollable for a terminal's copy, and its reader is kept in
// s.holds.
func (s *stdio) openOutput(st stream, files map[string]*os.File, terminal bool) (*os.File, error) {
	if st.kind == streamFile {
		if f := files[st.path]; f != nil {
			return f, nil
		}
		f, err := openAppend(st.path, true)
		if err != nil {
			return nil, err
		}
		files[st.path] = f
		return f, nil
	}
	if fi, err := os.Stat(st.path); err == nil && fi.Mode().IsRegular() {
		// containerd's runc shim appends to a regular file given as a path.
		return openAppend(st.path, false)
	}
	w, hold, err := openFifoPair(st.path, unix.O_WRONLY, unix.O_RDONLY, !terminal)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.holds = append(s.holds, hold)
	s.mu.Unlock()
	return w, nil
}

// openAppend opens a log file for appending; with create, its parent
// directories (0755) and the file (0640) are created as needed.
func openAppend(path string, create bool) (*os.File, error) {
	flags := unix.O_WRONLY | unix.O_APPEND | unix.O_CLOEXEC
	if create {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return nil, fmt.Errorf("create directory of %s: %w", path, classifyErrno(errors.Unwrap(err)))
		}
		flags |= unix.O_CREAT
	}
	fd, err := unix.Open(path, flags, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", path, classifyErrno(err))
	}
	return os.NewFile(uintptr(fd), path), nil
}

// openFifoPair opens path in direction child, after opening the daemon's
// handle in direction hold so that neither open blocks. The child's handle
// is made blocking when blocking is set (a container's stdio); otherwise it
// stays non-blocking, so Go's poller serves it and Close interrupts a
// pending read or write. The hold is never read or written.
func openFifoPair(path string, child, hold int, blocking bool) (c, h *os.File, err error) {
	first, second := hold, child
	if child == unix.O_RDONLY {
		// A writer can only be opened without blocking once a reader exists.
		first, second = child, hold
	}
	fd1, err := unix.Open(path, first|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("open stdio fifo %s: %w", path, classifyErrno(err))
	}
	fd2, err := unix.Open(path, second|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		unix.Close(fd1)
		return nil, nil, fmt.Errorf("open stdio fifo %s: %w", path, classifyErrno(err))
	}
	cfd, hfd := fd2, fd1
	if first == child {
		cfd, hfd = fd1, fd2
	}
	if blocking {
		if err := unix.SetNonblock(cfd, false); err != nil {
			unix.Close(cfd)
			unix.Close(hfd)
			return nil, nil, fmt.Errorf("open stdio fifo %s: %w", path, err)
		}
	}
	return os.NewFile(uintptr(cfd), path), os.NewFile(uintptr(hfd), path), nil
}

func classifyErrno(err error) error {
	switch {
	case errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %w", err, errdefs.ErrNotFound)
	case errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM):
		return fmt.Errorf("%w: %w", err, errdefs.ErrPermissionDenied)
	case errors.Is(err, unix.ENXIO), errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.EISDIR):
		return fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	return err
}

// closeChild closes the daemon's copies of the container's stdio. Call it
// once the process has been created with s.files (or failed to be).
func (s *stdio) closeChild() {
	for i, f := range s.files {
		if f != nil {
			f.Close() // stdout and stderr may share f: a second Close is a no-op
			s.files[i] = nil
		}
	}
}

// closeStdin lets the process read EOF on stdin once the client's writer is
// gone too (CloseIO). With a terminal, that EOF hangs up the console, as
// containerd's runc shim does.
func (s *stdio) closeStdin() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stdinHold != nil {
		s.stdinHold.Close()
		s.stdinHold = nil
	}
}

// attachConsole starts copying between the pty master of the process and
// its stdio. It takes ownership of master, even when it fails: close closes
// it.
func (s *stdio) attachConsole(master *os.File) error {
	if s.term == nil {
		master.Close()
		return fmt.Errorf("attach console: process has no terminal: %w", errdefs.ErrFailedPrecondition)
	}
	return s.term.attach(master)
}

// resize sets the size of the process's terminal.
func (s *stdio) resize(width, height uint32) error {
	if s.term == nil {
		return fmt.Errorf("resize: process has no terminal: %w", errdefs.ErrNotFound)
	}
	return s.term.resize(width, height)
}

// processExited tells stdio the process is gone. With a terminal, the copy
// from the pty drains what is buffered and ends, although the master keeps
// returning EIO or EAGAIN.
func (s *stdio) processExited() {
	if s.term != nil {
		s.term.shutdown()
	}
}

// close releases everything: it waits (at most consoleDrainTimeout) for a
// terminal's output to drain, closes every handle and stops a logger
// (SIGTERM, then SIGKILL after loggerStopTimeout). It returns once nothing
// it started runs any more. Idempotent; concurrent calls after the first
// return at once.
func (s *stdio) close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	holds := s.holds
	s.holds = nil
	s.mu.Unlock()

	if s.term != nil {
		s.term.close()
	}
	s.closeStdin()
	for _, f := range holds {
		f.Close()
	}
	if s.logger != nil {
		if err := s.logger.stop(); err != nil {
			log.L.WithError(err).Warn("stop logger")
		}
	}
}
