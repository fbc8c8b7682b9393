package shim

import (
	"errors"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime"
)

// reaper collects the exit status of every child of the daemon. The daemon
// is a child subreaper, so orphaned descendants of containers can land here
// too; their exits are collected and dropped.
//
// It implements runtime.Monitor: Fork holds mu across fork and registration,
// and reap takes mu before looking a pid up, so an exit is never collected
// for a pid that is not registered yet.
//
// It waits without SIGCHLD: each registered process's pidfd is pollable, and
// a goroutine waits for it in Go's netpoller, so no thread is spent on
// waiting. (signal.Notify costs the daemon three threads for its life: the
// receiver, a locked thread that keeps signal masks, and the runtime's
// template thread that a locked thread brings.) Only when unregistered
// children can appear, orphans of a container in the daemon's own pid
// namespace, does it also listen for SIGCHLD (watchOrphans).
type reaper struct {
	mu sync.Mutex
	// waiting maps a registered child's pid to where its exit goes.
	waiting map[int]chan runtime.Exit // guarded by mu

	orphans   sync.Once   // starts the SIGCHLD listener
	listening atomic.Bool // the SIGCHLD listener runs
}

func newReaper() *reaper {
	return &reaper{waiting: make(map[int]chan runtime.Exit)}
}

// Fork implements runtime.Monitor.
func (r *reaper) Fork(fork func() (int, error)) (int, <-chan runtime.Exit, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	pid, err := fork()
	if err != nil {
		return 0, nil, err
	}
	ch := make(chan runtime.Exit, 1)
	r.waiting[pid] = ch
	r.watch(pid)
	return pid, ch, nil
}

// watch reaps once pid has exited.
//
// Preconditions: r.mu is held and pid is registered, so the exit of pid
// cannot have been handed over yet.
func (r *reaper) watch(pid int) {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if errors.Is(err, unix.ESRCH) {
		// It has exited and was collected already, by a reap that now
		// waits for mu to hand the exit over.
		return
	}
	if err != nil {
		// No pidfd (fd limit): SIGCHLD is the way left to learn of the exit.
		r.watchOrphans()
		return
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	go func() {
		defer f.Close()
		if err := waitPidfd(f); err != nil {
			r.watchOrphans()
		}
		// A process that exits as a grandchild (the init stage while its
		// namespace holder still runs) becomes the daemon's child only
		// when its parent exits: reap until its exit was collected.
		for delay := time.Millisecond; ; delay = min(2*delay, time.Second) {
			r.reap()
			if !r.registered(pid) {
				return
			}
			time.Sleep(delay)
		}
	}()
}

// waitPidfd returns once the process of pidfd f has exited (a pidfd becomes
// readable then), waiting in Go's netpoller.
func waitPidfd(f *os.File) error {
	raw, err := f.SyscallConn()
	if err != nil {
		return err
	}
	fds := []unix.PollFd{{Events: unix.POLLIN}}
	return raw.Read(func(fd uintptr) bool {
		fds[0].Fd = int32(fd)
		n, err := unix.Poll(fds, 0)
		return err != unix.EINTR && (err != nil || n > 0)
	})
}

func (r *reaper) registered(pid int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	_, ok := r.waiting[pid]
	return ok
}

// watchOrphans reaps on every SIGCHLD from now on (and once at once): a container whose
// processes share the daemon's pid namespace can leave orphans that the
// kernel reparents to the daemon (its subreaper), and nothing else would
// collect them.
func (r *reaper) watchOrphans() {
	r.orphans.Do(func() {
		sigs := make(chan os.Signal, 32)
		signal.Notify(sigs, unix.SIGCHLD)
		r.listening.Store(true)
		go func() {
			// Children that exited before Notify sent no signal that
			// arrives. (Not reaped here: Fork calls this holding mu.)
			r.reap()
			for range sigs {
				r.reap()
			}
		}()
	})
}

// reap collects every child that has exited.
func (r *reaper) reap() {
	for {
		var ws unix.WaitStatus
		pid, err := unix.Wait4(-1, &ws, unix.WNOHANG, nil)
		if err == unix.EINTR {
			continue
		}
		if pid <= 0 || err != nil {
			return
		}
		if !ws.Exited() && !ws.Signaled() {
			continue
		}
		e := runtime.Exit{Status: exitStatus(ws), At: time.Now()}
		r.mu.Lock()
		ch, ok := r.waiting[pid]
		delete(r.waiting, pid)
		r.mu.Unlock()
		if ok {
			ch <- e
		}
	}
}

func exitStatus(ws unix.WaitStatus) int {
	if ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return ws.ExitStatus()
}

// inDaemonPidNS reports whether the container's processes share the
// daemon's pid namespace: the plan neither creates one nor joins another by
// path. Their orphans are reparented to the daemon.
func inDaemonPidNS(p *oci.Plan) bool {
	if p.CloneFlags&unix.CLONE_NEWPID != 0 {
		return false
	}
	for _, j := range p.Join {
		if j.Flag != unix.CLONE_NEWPID {
			continue
		}
		var theirs, ours unix.Stat_t
		if unix.Stat(j.Path, &theirs) != nil || unix.Stat("/proc/self/ns/pid", &ours) != nil {
			return true // cannot tell: reap orphans, to be safe
		}
		return theirs.Dev == ours.Dev && theirs.Ino == ours.Ino
	}
	return true
}
