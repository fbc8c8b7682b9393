package runtime

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// holder is a running namespace holder (see namespaces.go). It exits when
// it reads EOF on conn.
type holder struct {
	pid   int
	pidfd int
	conn  *syncConn
}

// close makes the holder exit and waits until it has: from then on the
// init stage it forked is the daemon's child (the daemon is a child
// subreaper). The holder's exit status means nothing; it is collected here
// or by the daemon's reaper, whichever comes first.
func (h *holder) close() {
	h.conn.close()
	fds := []unix.PollFd{{Fd: int32(h.pidfd), Events: unix.POLLIN}}
	for {
		if _, err := unix.Poll(fds, -1); err != unix.EINTR {
			break
		}
	}
	unix.Close(h.pidfd)
	var ws unix.WaitStatus
	_, _ = unix.Wait4(h.pid, &ws, unix.WNOHANG, nil)
}

// spawnHeld starts the init stage through a holder, as described at the top
// of namespaces.go. files are the init stage's descriptors; the holder
// gets them too, and passes them on.
//
// Preconditions: the calling process is a child subreaper (the init stage
// is reparented to it).
func (c *Container) spawnHeld(cfg CreateConfig, exe string, files []uintptr, cgroupFD int) error {
	joins, err := openNamespaces(cfg.Plan.Join)
	if err != nil {
		return err
	}
	defer closeNamespaces(joins)
	pidfd := -1
	// The Monitor registers the init stage's pid before the holder exits,
	// so its exit cannot be collected unregistered.
	pid, exited, err := cfg.Monitor.Fork(func() (int, error) {
		h, err := c.startHolder(cfg, exe, files, joins, cgroupFD)
		if err != nil {
			return 0, err
		}
		defer h.close()
		pid, err := h.build(cfg.Plan)
		if err != nil {
			return 0, err
		}
		// The init stage is the holder's child until the holder exits:
		// it cannot have been reaped, so the pid is still its.
		if pidfd, err = unix.PidfdOpen(pid, 0); err != nil {
			return 0, fmt.Errorf("pidfd of container init %d: %w", pid, err)
		}
		return pid, nil
	})
	if err != nil {
		return fmt.Errorf("start container init: %w", err)
	}
	c.Pid, c.exited, c.pidfd = pid, exited, pidfd
	return nil
}

// startHolder forks the holder into the container's cgroup, told to join
// joins and create the plan's new namespaces.
func (c *Container) startHolder(cfg CreateConfig, exe string, initFiles []uintptr, joins []nsFile, cgroupFD int) (*holder, error) {
	parent, child, err := newSyncPair()
	if err != nil {
		return nil, err
	}
	defer child.Close()
	files := append(slices.Clone(initFiles), child.Fd())
	env := fmt.Sprintf("%s=%d,%#x", nsHoldEnv, len(files)-1, cfg.Plan.CloneFlags)
	for _, n := range joins {
		env += fmt.Sprintf(",%d:%#x", len(files), n.Flag)
		files = append(files, n.f.Fd())
	}
	pidfd := -1
	sys := &syscall.SysProcAttr{Setsid: true, PidFD: &pidfd}
	if cgroupFD >= 0 {
		sys.UseCgroupFD, sys.CgroupFD = true, cgroupFD
	}
	pid, err := syscall.ForkExec(exe, []string{"containerd-shim-box-v1", "init"}, &syscall.ProcAttr{
		Dir:   "/",
		Env:   []string{"GOMAXPROCS=1", env},
		Files: files,
		Sys:   sys,
	})
	if err != nil {
		parent.close()
		return nil, fmt.Errorf("start namespace holder: %w", err)
	}
	h := &holder{pid: pid, pidfd: pidfd, conn: parent}
	if cgroupFD < 0 {
		// cgroup v1: a cgroup namespace it creates is rooted where it is.
		if err := c.Cgroup.Add(h.pid); err != nil {
			h.close()
			return nil, fmt.Errorf("add namespace holder %d to cgroup: %w", h.pid, err)
		}
	}
	return h, nil
}

// build lets the holder join and create the namespaces, writing the id
// maps of a user namespace it creates and the time offsets, and returns
// the pid of the init stage it forked.
func (h *holder) build(p *oci.Plan) (int, error) {
	if err := h.conn.send(message{Type: msgStart}); err != nil {
		return 0, fmt.Errorf("start namespace holder: %w", err)
	}
	m, err := h.recv()
	if err == nil && m.Type == msgUserNS {
		if err := writeIDMaps(h.pid, p.Spec.Linux); err != nil {
			return 0, err
		}
		if err := h.conn.send(message{Type: msgStart}); err != nil {
			return 0, fmt.Errorf("resume namespace holder: %w", err)
		}
		m, err = h.recv()
	}
	if err != nil {
		return 0, err
	}
	if m.Type != msgReady {
		return 0, fmt.Errorf("unexpected %q from namespace holder", m.Type)
	}
	if offsets := timensOffsets(p); offsets != "" {
		if err := writeTimensOffsets(fmt.Sprintf("/proc/%d/timens_offsets", h.pid), offsets); err != nil {
			return 0, err
		}
	}
	if err := h.conn.send(message{Type: msgStart}); err != nil {
		return 0, fmt.Errorf("resume namespace holder: %w", err)
	}
	if m, err = h.recv(); err != nil {
		return 0, err
	}
	if m.Type != msgReady || m.Pid <= 0 {
		return 0, fmt.Errorf("unexpected %q (pid %d) from namespace holder", m.Type, m.Pid)
	}
	return m.Pid, nil
}

// recv reads the holder's next message; an error datagram becomes the error.
func (h *holder) recv() (message, error) {
	m, err := h.conn.recv()
	switch {
	case errors.Is(err, errEOF):
		return m, errors.New("namespace holder exited during setup")
	case err != nil:
		return m, fmt.Errorf("read from namespace holder: %w", err)
	case m.Type == msgError:
		return m, remoteError(m)
	}
	return m, nil
}

// writeIDMaps writes l's id maps for the user namespace of pid. setgroups
// stays allowed (see setUserNamespace).
func writeIDMaps(pid int, l *specs.Linux) error {
	for _, f := range []struct {
		name string
		maps []specs.LinuxIDMapping
	}{{"uid_map", l.UIDMappings}, {"gid_map", l.GIDMappings}} {
		var b strings.Builder
		for _, m := range f.maps {
			fmt.Fprintf(&b, "%d %d %d\n", m.ContainerID, m.HostID, m.Size)
		}
		if err := os.WriteFile(fmt.Sprintf("/proc/%d/%s", pid, f.name), []byte(b.String()), 0); err != nil {
			return fmt.Errorf("write %s of the container's user namespace: %w", f.name, err)
		}
	}
	return nil
}

func closeFiles(fs ...*os.File) {
	for _, f := range fs {
		if f != nil {
			f.Close()
		}
	}
}
