package cgroup

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// OOM kills are counted by the kernel in each memory cgroup, and that counter is the source of
// truth here; notifications only say when to look at it again.
//
//   - v1: "oom_kill N" in memory.oom_control (kernel >= 4.13) counts the processes of this
//     cgroup (not of cgroups below it) that the OOM killer killed. An eventfd registered through
//     cgroup.event_control on memory.oom_control is signalled when the cgroup, or an ancestor,
//     runs out of memory, and when the cgroup is removed. It is signalled before the OOM killer
//     picks its victim, so the counter can still be unchanged when the notification is read:
//     callers re-read it a little later (see OOMEvents.Wait).
//   - v2: "oom_kill N" in memory.events counts the kills in the cgroup and below it (group
//     kills, memory.oom.group, add one per process as well as to oom_group_kill). The file is
//     modified, which inotify reports, after the counter has changed (rate-limited by the kernel
//     to one notification every 10 ms).
//
// In both versions the kernel raises the counter before it sends the victim SIGKILL, so once
// the victim's exit has been collected, the counter already includes its kill.

// OOMKills returns the number of processes the kernel's OOM killer has killed in cg. A
// deleted cgroup fails with errdefs.ErrNotFound; a host without a memory controller, or a
// kernel without the counter, with errdefs.ErrNotImplemented.
func OOMKills(cg Cgroup) (uint64, error) {
	file, err := oomCounterFile(cg)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(file)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return 0, fmt.Errorf("OOM kills of cgroup %s: %w: %w", cg.Path(), errdefs.ErrNotFound, err)
		}
		return 0, fmt.Errorf("OOM kills of cgroup %s: %w", cg.Path(), err)
	}
	n, ok := parseOOMKill(b)
	if !ok {
		return 0, fmt.Errorf("OOM kills of cgroup %s: no oom_kill counter in %s: %w", cg.Path(), file, errdefs.ErrNotImplemented)
	}
	return n, nil
}

// parseOOMKill finds the "oom_kill N" line of a flat keyed file (memory.oom_control on v1,
// memory.events on v2).
func parseOOMKill(b []byte) (uint64, bool) {
	s := bufio.NewScanner(bytes.NewReader(b))
	for s.Scan() {
		k, v, ok := bytes.Cut(s.Bytes(), []byte(" "))
		if !ok || string(k) != "oom_kill" {
			continue
		}
		n, err := strconv.ParseUint(string(bytes.TrimSpace(v)), 10, 64)
		return n, err == nil
	}
	return 0, false
}

// oomCounterFile is the file holding cg's oom_kill counter.
func oomCounterFile(cg Cgroup) (string, error) {
	switch c := unwrapSystemd(cg).(type) {
	case *v1Cgroup:
		dir, err := c.memoryDir()
		if err != nil {
			return "", err
		}
		return filepath.Join(dir, "memory.oom_control"), nil
	case *v2Cgroup:
		return filepath.Join(c.dir, "memory.events"), nil
	}
	return "", fmt.Errorf("OOM kills of %T: %w", cg, errdefs.ErrNotImplemented)
}

// memoryDir is the cgroup's directory in the v1 memory hierarchy.
func (c *v1Cgroup) memoryDir() (string, error) {
	p, err := resolve(c.path)
	if err != nil {
		return "", err
	}
	for _, s := range c.cg.Subsystems() {
		if s.Name() == cgroup1.Memory {
			if pa, ok := s.(pather); ok {
				return pa.Path(p), nil
			}
		}
	}
	return "", fmt.Errorf("cgroup %s: memory controller is not mounted: %w", c.path, errdefs.ErrNotImplemented)
}

// ErrOOMEventsClosed is returned by OOMEvents.Wait after Close.
var ErrOOMEventsClosed = errors.New("OOM events closed")

// OOMEvents tells which of a set of cgroups may have had an OOM kill since it last said so. It
// holds one epoll instance over an eventfd per v1 cgroup and a single inotify instance for all
// v2 cgroups, so one goroutine calling Wait serves any number of cgroups. Callers compare
// OOMKills with the value they saw before; a notification is a hint, never a count.
//
// Add, Remove and Close are safe for concurrent use with each other and with Wait; Wait is
// called by one goroutine at a time.
type OOMEvents struct {
	epfd int // epoll over wake, the inotify fd and every eventfd
	wake int // eventfd written by Close
	// poll is epfd registered with Go's netpoller (an epoll fd is readable while it has
	// events), so a Wait parks its goroutine instead of blocking an OS thread in epoll_wait.
	poll syscall.RawConn
	file *os.File // owns epfd

	mu sync.Mutex
	// inotify is the inotify fd, or -1 until a v2 cgroup is added.
	inotify int // guarded by mu
	// regs are the cgroups watched, by registration serial (the epoll data of an eventfd).
	regs map[uint64]*oomReg // guarded by mu
	// byKey finds the registration of a caller's key.
	byKey map[uint64]uint64 // guarded by mu
	// byWatch finds the registrations of an inotify watch descriptor (v2). Two cgroups
	// with the same directory share one descriptor.
	byWatch map[int32][]uint64 // guarded by mu
	next    uint64             // guarded by mu; serials start above the reserved ones
	closed  bool               // guarded by mu
	waiting bool               // guarded by mu; a Wait is in epoll_wait
	idle    *sync.Cond         // on mu; signalled when waiting becomes false
}

// oomReg is one watched cgroup: an eventfd (v1) or an inotify watch (v2).
type oomReg struct {
	key     uint64
	eventfd int   // v1, else -1
	watch   int32 // v2, else -1
}

// Reserved epoll data values.
const (
	oomWakeSerial    = 1
	oomInotifySerial = 2
	oomFirstSerial   = 3
)

// NewOOMEvents returns an empty OOMEvents. Close releases it.
func NewOOMEvents() (_ *OOMEvents, retErr error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(epfd)
		}
	}()
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	if err := epollAdd(epfd, wake, oomWakeSerial); err != nil {
		unix.Close(wake)
		return nil, err
	}
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(wake)
		return nil, fmt.Errorf("epoll fd non-blocking: %w", err)
	}
	file := os.NewFile(uintptr(epfd), "oom-epoll")
	poll, err := file.SyscallConn()
	if err != nil {
		unix.Close(wake)
		file.Close()
		epfd = -1 // closed with file
		return nil, err
	}
	e := &OOMEvents{
		epfd: epfd, wake: wake, inotify: -1, poll: poll, file: file,
		regs: make(map[uint64]*oomReg), byKey: make(map[uint64]uint64), byWatch: make(map[int32][]uint64),
		next: oomFirstSerial,
	}
	e.idle = sync.NewCond(&e.mu)
	return e, nil
}

func epollAdd(epfd, fd int, serial uint64) error {
	ev := unix.EpollEvent{Events: unix.EPOLLIN}
	ev.Fd, ev.Pad = int32(uint32(serial)), int32(uint32(serial>>32))
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		return fmt.Errorf("epoll_ctl add %d: %w", fd, err)
	}
	return nil
}

func epollSerial(ev unix.EpollEvent) uint64 {
	return uint64(uint32(ev.Fd)) | uint64(uint32(ev.Pad))<<32
}

// Add starts watching cg under key, which Wait reports. A key already added is replaced. A
// cgroup without a memory controller fails with errdefs.ErrNotImplemented.
func (e *OOMEvents) Add(cg Cgroup, key uint64) error {
	switch c := unwrapSystemd(cg).(type) {
	case *v1Cgroup:
		dir, err := c.memoryDir()
		if err != nil {
			return err
		}
		return e.addEventfd(dir, key)
	case *v2Cgroup:
		return e.addInotify(filepath.Join(c.dir, "memory.events"), key)
	}
	return fmt.Errorf("watch OOM kills of %T: %w", cg, errdefs.ErrNotImplemented)
}

// addEventfd registers an eventfd for OOM notifications of the v1 memory cgroup dir.
func (e *OOMEvents) addEventfd(dir string, key uint64) (retErr error) {
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		return fmt.Errorf("eventfd: %w", err)
	}
	defer func() {
		if retErr != nil {
			unix.Close(efd)
		}
	}()
	ctl, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err != nil {
		return fmt.Errorf("watch OOM kills: %w", err)
	}
	// The kernel holds the cgroup, not the control file, once registered.
	defer ctl.Close()
	reg := fmt.Sprintf("%d %d", efd, ctl.Fd())
	if err := os.WriteFile(filepath.Join(dir, "cgroup.event_control"), []byte(reg), 0); err != nil {
		return fmt.Errorf("watch OOM kills: %w", err)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrOOMEventsClosed
	}
	serial := e.next
	if err := epollAdd(e.epfd, efd, serial); err != nil {
		return err
	}
	e.next++
	e.removeLocked(key)
	e.regs[serial] = &oomReg{key: key, eventfd: efd, watch: -1}
	e.byKey[key] = serial
	return nil
}

// addInotify watches the v2 memory.events file for modifications.
func (e *OOMEvents) addInotify(file string, key uint64) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return ErrOOMEventsClosed
	}
	if e.inotify < 0 {
		fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
		if err != nil {
			return fmt.Errorf("inotify_init1: %w", err)
		}
		if err := epollAdd(e.epfd, fd, oomInotifySerial); err != nil {
			unix.Close(fd)
			return err
		}
		e.inotify = fd
	}
	wd, err := unix.InotifyAddWatch(e.inotify, file, unix.IN_MODIFY)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("watch OOM kills: %s: %w: %w", file, errdefs.ErrNotFound, err)
		}
		return fmt.Errorf("watch OOM kills: inotify_add_watch %s: %w", file, err)
	}
	e.removeLocked(key)
	serial := e.next
	e.next++
	e.regs[serial] = &oomReg{key: key, eventfd: -1, watch: int32(wd)}
	e.byKey[key] = serial
	e.byWatch[int32(wd)] = append(e.byWatch[int32(wd)], serial)
	return nil
}

// Remove stops watching key and releases what it held. Removing a key that is not watched does
// nothing.
func (e *OOMEvents) Remove(key uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.removeLocked(key)
}

// Preconditions: e.mu is held.
func (e *OOMEvents) removeLocked(key uint64) {
	serial, ok := e.byKey[key]
	if !ok {
		return
	}
	r := e.regs[serial]
	delete(e.byKey, key)
	delete(e.regs, serial)
	if r.eventfd >= 0 {
		// Closing the last reference also takes it out of the epoll set; the explicit
		// delete keeps a Wait in progress from seeing it again.
		_ = unix.EpollCtl(e.epfd, unix.EPOLL_CTL_DEL, r.eventfd, nil)
		unix.Close(r.eventfd)
	}
	if r.watch >= 0 {
		rest := removeSerial(e.byWatch[r.watch], serial)
		if len(rest) > 0 {
			e.byWatch[r.watch] = rest
			return
		}
		delete(e.byWatch, r.watch)
		// EINVAL when the kernel dropped the watch already (cgroup removed).
		_, _ = unix.InotifyRmWatch(e.inotify, uint32(r.watch))
	}
}

func removeSerial(list []uint64, s uint64) []uint64 {
	var out []uint64
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// Wait blocks until at least one watched cgroup may have had an OOM kill, and returns their
// keys (each at most once). After Close it returns ErrOOMEventsClosed. Keys of cgroups removed
// in the meantime are not returned.
func (e *OOMEvents) Wait() ([]uint64, error) {
	var evs [64]unix.EpollEvent
	for {
		e.mu.Lock()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrOOMEventsClosed
		}
		e.waiting = true
		e.mu.Unlock()

		var n int
		var err error
		if perr := e.poll.Read(func(fd uintptr) bool {
			n, err = unix.EpollWait(int(fd), evs[:], 0)
			return err != nil || n > 0 // else park until epfd is readable
		}); perr != nil {
			err = perr
		}

		e.mu.Lock()
		e.waiting = false
		e.idle.Broadcast()
		if e.closed {
			e.mu.Unlock()
			return nil, ErrOOMEventsClosed
		}
		if err != nil {
			e.mu.Unlock()
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("epoll_wait: %w", err)
		}
		keys := e.collectLocked(evs[:n])
		e.mu.Unlock()
		if len(keys) > 0 {
			return keys, nil
		}
	}
}

// collectLocked drains the ready fds and maps them to keys.
//
// Preconditions: e.mu is held.
func (e *OOMEvents) collectLocked(evs []unix.EpollEvent) []uint64 {
	seen := map[uint64]bool{}
	var keys []uint64
	add := func(serial uint64) {
		if r, ok := e.regs[serial]; ok && !seen[r.key] {
			seen[r.key] = true
			keys = append(keys, r.key)
		}
	}
	for _, ev := range evs {
		switch s := epollSerial(ev); s {
		case oomWakeSerial:
		case oomInotifySerial:
			for _, wd := range e.readInotifyLocked() {
				for _, serial := range e.byWatch[wd] {
					add(serial)
				}
			}
		default:
			r, ok := e.regs[s]
			if !ok {
				continue // removed after epoll_wait returned
			}
			var buf [8]byte
			_, _ = unix.Read(r.eventfd, buf[:])
			add(s)
		}
	}
	return keys
}

// readInotifyLocked reads every pending inotify event and returns their watch descriptors.
// A watch the kernel dropped (IN_IGNORED: the cgroup was removed) is reported too; its
// descriptor stays mapped until Remove, and the kernel does not hand it out again meanwhile
// (descriptors are allocated cyclically).
//
// Preconditions: e.mu is held.
func (e *OOMEvents) readInotifyLocked() []int32 {
	var wds []int32
	var buf [4096]byte
	for {
		n, err := unix.Read(e.inotify, buf[:])
		if err != nil || n <= 0 {
			return wds
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[off]))
			wds = append(wds, ev.Wd)
			off += unix.SizeofInotifyEvent + int(ev.Len)
		}
	}
}

// Close stops any Wait and releases every fd. It is idempotent.
func (e *OOMEvents) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	_, _ = unix.Write(e.wake, one[:])
	for e.waiting {
		e.idle.Wait()
	}
	for key := range e.byKey {
		e.removeLocked(key)
	}
	if e.inotify >= 0 {
		unix.Close(e.inotify)
		e.inotify = -1
	}
	unix.Close(e.wake)
	return e.file.Close()
}
