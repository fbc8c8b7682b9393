// Package procconn counts execve calls with the kernel's process-event connector
// (NETLINK_CONNECTOR, CN_IDX_PROC): it follows PROC_EVENT_FORK from a root process to know its
// descendants (at fork time, so re-parented shim daemons and short-lived runc processes stay
// in the tree) and counts PROC_EVENT_EXEC of those descendants. Needs CAP_NET_ADMIN.
package procconn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

const (
	cnIdxProc         = 1
	cnValProc         = 1
	procCnMcastListen = 1
	procCnMcastIgnore = 2

	eventFork = 0x00000001
	eventExec = 0x00000002
	eventExit = 0x80000000

	cnMsgLen = 20 // struct cn_msg without data
)

// Listener counts exec events of a process tree.
type Listener struct {
	fd int

	mu    sync.Mutex
	tree  map[uint32]bool // tgids
	execs int
	names map[string]int
	lost  int // ENOBUFS: events dropped by the kernel
	all   int // exec events system-wide
	done  chan struct{}
}

// Listen subscribes to process events and follows the descendants of root (a tgid).
func Listen(root int) (*Listener, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_CONNECTOR)
	if err != nil {
		return nil, fmt.Errorf("netlink connector socket: %w", err)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: cnIdxProc}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind CN_IDX_PROC: %w", err)
	}
	l := &Listener{fd: fd, tree: map[uint32]bool{uint32(root): true}, names: map[string]int{}, done: make(chan struct{})}
	if err := l.control(procCnMcastListen); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("PROC_CN_MCAST_LISTEN: %w", err)
	}
	go l.loop()
	return l, nil
}

func (l *Listener) control(op uint32) error {
	buf := make([]byte, unix.NLMSG_HDRLEN+cnMsgLen+4)
	ne := binary.NativeEndian
	ne.PutUint32(buf[0:], uint32(len(buf)))
	ne.PutUint16(buf[4:], unix.NLMSG_DONE)
	ne.PutUint32(buf[12:], uint32(os.Getpid()))
	cn := buf[unix.NLMSG_HDRLEN:]
	ne.PutUint32(cn[0:], cnIdxProc)
	ne.PutUint32(cn[4:], cnValProc)
	ne.PutUint16(cn[16:], 4)
	ne.PutUint32(cn[cnMsgLen:], op)
	return unix.Sendto(l.fd, buf, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
}

func (l *Listener) loop() {
	defer close(l.done)
	buf := make([]byte, 1<<16)
	for {
		n, _, err := unix.Recvfrom(l.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if errors.Is(err, unix.ENOBUFS) {
				l.mu.Lock()
				l.lost++
				l.mu.Unlock()
				continue
			}
			return // closed
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			continue
		}
		for _, m := range msgs {
			l.handle(m.Data)
		}
	}
}

func (l *Listener) handle(d []byte) {
	if len(d) < cnMsgLen+16 {
		return
	}
	ne := binary.NativeEndian
	if ne.Uint32(d[0:]) != cnIdxProc {
		return
	}
	ev := d[cnMsgLen:]
	what := ne.Uint32(ev[0:])
	data := ev[16:]
	switch what {
	case eventFork:
		if len(data) < 16 {
			return
		}
		ptgid, cpid, ctgid := ne.Uint32(data[4:]), ne.Uint32(data[8:]), ne.Uint32(data[12:])
		if cpid != ctgid {
			return // a thread
		}
		l.mu.Lock()
		if l.tree[ptgid] {
			l.tree[ctgid] = true
		}
		l.mu.Unlock()
	case eventExec:
		if len(data) < 8 {
			return
		}
		tgid := ne.Uint32(data[4:])
		l.mu.Lock()
		l.all++
		ours := l.tree[tgid]
		if ours {
			l.execs++
		}
		l.mu.Unlock()
		if ours {
			name := exeName(int(tgid))
			l.mu.Lock()
			l.names[name]++
			l.mu.Unlock()
		}
	case eventExit:
		if len(data) < 8 {
			return
		}
		pid, tgid := ne.Uint32(data[0:]), ne.Uint32(data[4:])
		if pid == tgid {
			l.mu.Lock()
			// keep the root: only descendants are forgotten
			if len(l.tree) > 1 {
				delete(l.tree, tgid)
			}
			l.mu.Unlock()
		}
	}
}

// exeName names what tgid just executed: argv[0] (with "init" appended for runc's
// `runc init`), or "?" when the process is already gone.
func exeName(pid int) string {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "cmdline"))
	if err != nil || len(b) == 0 {
		if exe, err := os.Readlink(filepath.Join("/proc", strconv.Itoa(pid), "exe")); err == nil {
			return filepath.Base(exe)
		}
		return "?"
	}
	argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	name := filepath.Base(argv[0])
	for _, a := range argv[1:] {
		if subcommands[a] {
			return name + " " + a
		}
	}
	return name
}

// subcommands of runc and of the shims' binary protocol, to name what an exec was for.
var subcommands = map[string]bool{"create": true, "start": true, "delete": true, "kill": true, "state": true,
	"init": true, "exec": true, "events": true, "ps": true, "update": true, "run": true, "pause": true,
	"resume": true, "features": true, "daemon": true}

// Counts is what happened between two Reset calls.
type Counts struct {
	Execs     int            // exec events in the tree
	All       int            // exec events system-wide
	Lost      int            // ENOBUFS while counting (then Execs is a lower bound)
	ByProgram map[string]int // exec'd program (argv[0] and first word argument), best effort
}

// Take returns the counts since the last Take and resets them.
func (l *Listener) Take() Counts {
	l.mu.Lock()
	defer l.mu.Unlock()
	c := Counts{Execs: l.execs, All: l.all, Lost: l.lost, ByProgram: l.names}
	l.execs, l.all, l.lost, l.names = 0, 0, 0, map[string]int{}
	return c
}

// Close unsubscribes and closes the socket.
func (l *Listener) Close() {
	_ = l.control(procCnMcastIgnore)
	unix.Shutdown(l.fd, unix.SHUT_RDWR)
	unix.Close(l.fd)
}
