package shim

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"

	cshim "github.com/containerd/containerd/v2/pkg/shim"
	"github.com/containerd/log"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
)

// Environment passed from start to the daemon, and the knob for tests.
const (
	// orphanGraceEnv overrides defaultOrphanGrace (a Go duration).
	orphanGraceEnv = "BOX_ORPHAN_GRACE"
)

// defaultOrphanGrace is how long containerd may be away (a restart, an
// upgrade) before the daemon considers it gone for good.
const defaultOrphanGrace = 10 * time.Minute

// watchContainerd returns a channel closed once containerd has been gone
// for the grace period: it exited, and its ttrpc socket did not answer
// again in that time. Nothing polls while containerd runs: the daemon waits
// on a pidfd of containerd in the netpoller. A containerd that comes back
// is trusted again and no longer watched (its new pid is not ours to know).
// Without a usable identity nothing is watched and the channel never closes.
func watchContainerd(ctx context.Context, ident, ttrpcAddress string) <-chan struct{} {
	gone := make(chan struct{})
	pid, start, ok := parseIdentity(ident)
	if !ok {
		return gone
	}
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return gone
	}
	if st, err := launch.ProcStartTime(pid); err != nil || st != start {
		unix.Close(fd) // already gone and its pid reused: not our containerd
		return gone
	}
	grace := defaultOrphanGrace
	if d, err := time.ParseDuration(os.Getenv(orphanGraceEnv)); err == nil && d > 0 {
		grace = d
	}
	pf := os.NewFile(uintptr(fd), "containerd-pidfd")
	go func() {
		defer pf.Close()
		if err := waitPidfd(pf); err != nil {
			return
		}
		log.G(ctx).WithField("grace", grace).Warn("containerd exited; waiting for it to come back")
		timer := time.NewTimer(grace)
		defer timer.Stop()
		select {
		case <-timer.C:
		case <-ctx.Done():
			return
		}
		if cshim.CanConnect(unixAddress(ttrpcAddress)) {
			log.G(ctx).Info("containerd is back")
			return
		}
		close(gone)
	}()
	return gone
}

func parseIdentity(s string) (pid int, start uint64, ok bool) {
	p, st, found := strings.Cut(s, ":")
	if !found {
		return 0, 0, false
	}
	pid, err1 := strconv.Atoi(p)
	start, err2 := strconv.ParseUint(st, 10, 64)
	return pid, start, err1 == nil && err2 == nil && pid > 0
}

func unixAddress(a string) string {
	if strings.Contains(a, "://") {
		return a
	}
	return "unix://" + a
}

// orphaned is called once containerd is gone for good. The daemon keeps
// serving running containers (it is their reaper, and killing a workload
// because its manager died would be worse), but as soon as none runs it
// releases what every container holds and exits: nobody would ever delete
// them otherwise.
func (s *service) orphaned() {
	s.mu.Lock()
	s.orphan = true
	s.mu.Unlock()
	s.exitIfOrphanedAndIdle()
}

// exitIfOrphanedAndIdle cleans up and stops the daemon when containerd is
// gone for good and no container runs.
func (s *service) exitIfOrphanedAndIdle() {
	s.mu.Lock()
	if !s.orphan {
		s.mu.Unlock()
		return
	}
	var cs []*container
	for _, c := range s.containers {
		if c == nil {
			s.mu.Unlock()
			return // being created
		}
		if _, exited := c.exitInfo(); !exited {
			s.mu.Unlock()
			return
		}
		cs = append(cs, c)
	}
	s.mu.Unlock()
	for _, c := range cs {
		if _, err := s.delete(context.Background(), c); err != nil {
			log.L.WithError(err).WithField("id", c.id).Warn("clean up after containerd is gone")
		}
	}
	log.L.Warn("containerd is gone and no container runs: exiting")
	s.shutdown()
}
