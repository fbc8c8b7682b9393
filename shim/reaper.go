package shim

import (
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
)

// reaper collects the exit status of every child of the daemon. The daemon
// is a child subreaper, so orphaned descendants of containers land here too;
// their exits are collected and dropped.
//
// It implements runtime.Monitor: Fork holds mu across fork and registration,
// and reap takes mu before looking a pid up, so an exit is never collected
// for a pid that is not registered yet.
type reaper struct {
	mu sync.Mutex
	// waiting maps a registered child's pid to where its exit goes.
	waiting map[int]chan runtime.Exit // guarded by mu
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
	return pid, ch, nil
}

// reap collects every child that has exited. It is called on SIGCHLD.
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
