package harness

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	goruntime "runtime"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// InNetns runs f on an OS thread that has joined the network namespace of pid, and returns
// f's error. Sockets f creates belong to that namespace and keep working after InNetns
// returns. f must not hand socket creation to other goroutines (they run on other threads).
// The thread rejoins its own namespace afterwards; if that fails it stays locked, so the Go
// runtime ends it with the goroutine instead of reusing it.
func InNetns(pid int, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		goruntime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			goruntime.UnlockOSThread()
			errc <- err
			return
		}
		defer self.Close()
		target, err := os.Open(fmt.Sprintf("/proc/%d/ns/net", pid))
		if err != nil {
			goruntime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			goruntime.UnlockOSThread()
			errc <- fmt.Errorf("setns into the network namespace of %d: %w", pid, err)
			return
		}
		ferr := f()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return // the thread stays locked and dies with this goroutine
		}
		goruntime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// HTTPProbe measures the latency of a small HTTP service listening on Addr inside the network
// namespace of Pid (a container's init), from the host: one HTTP/1.0 GET of Path per
// connection, connect to last byte.
//
// The requests are blocking system calls on one locked OS thread: no Go netpoller, whose
// wakeups another thread would have to run, is between the client and the kernel.
type HTTPProbe struct {
	Pid     int
	Addr    string        // "127.0.0.1:8080"
	Path    string        // "/index.html"
	Body    string        // the expected body
	Timeout time.Duration // per request
}

// dialTCP4 connects a blocking TCP socket to addr with timeout on connect,
// send and receive; the caller is in the service's network namespace.
func dialTCP4(addr string, timeout time.Duration) (int, error) {
	ta, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return -1, err
	}
	sa := &unix.SockaddrInet4{Port: ta.Port}
	copy(sa.Addr[:], ta.IP.To4())
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	tv := unix.NsecToTimeval(timeout.Nanoseconds())
	for _, opt := range []int{unix.SO_RCVTIMEO, unix.SO_SNDTIMEO} {
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
			unix.Close(fd)
			return -1, fmt.Errorf("setsockopt: %w", err)
		}
	}
	if err := connect(fd, sa, timeout); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("connect %s: %w", addr, err)
	}
	return fd, nil
}

// get does one request; the caller is in the service's network namespace.
func (p HTTPProbe) get() (time.Duration, error) {
	start := time.Now()
	fd, err := dialTCP4(p.Addr, p.Timeout)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	req := []byte("GET " + p.Path + " HTTP/1.0\r\n\r\n")
	for len(req) > 0 {
		n, err := unix.Write(fd, req)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("write request: %w", err)
		}
		req = req[n:]
	}
	var resp []byte
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read response after %d bytes: %w", len(resp), err)
		}
		if n == 0 {
			break
		}
		resp = append(resp, buf[:n]...)
		if time.Since(start) > p.Timeout {
			return 0, fmt.Errorf("response not complete after %v", p.Timeout)
		}
	}
	elapsed := time.Since(start)
	head, body, _ := bytes.Cut(resp, []byte("\r\n\r\n"))
	if !bytes.HasPrefix(head, []byte("HTTP/1.")) || !bytes.Contains(head, []byte(" 200 ")) ||
		string(body) != p.Body {
		return 0, fmt.Errorf("unexpected response %q", resp)
	}
	return elapsed, nil
}

// connect is a blocking connect(2) that, when a signal interrupts it (the Go runtime's
// preemption signal), waits for the connection attempt it started to complete.
func connect(fd int, sa unix.Sockaddr, timeout time.Duration) error {
	err := unix.Connect(fd, sa)
	if err != unix.EINTR {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms <= 0 {
			return unix.ETIMEDOUT
		}
		n, err := unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}, ms)
		if err == unix.EINTR || (err == nil && n == 0) {
			continue
		}
		if err != nil {
			return err
		}
		soerr, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return err
		}
		if soerr != 0 {
			return unix.Errno(soerr)
		}
		return nil
	}
}

// WaitReady polls the service until a request succeeds or timeout passes.
func (p HTTPProbe) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		nerr := InNetns(p.Pid, func() error { _, err = p.get(); return nil })
		if nerr != nil {
			return nerr
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("service at %s not ready after %v: %w", p.Addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Measure sends requests one after the other until it has at least n latencies and until is
// closed (a nil until means n requests), or maxDur has passed once it has n. The first failed
// request ends it with an error that says how many succeeded.
func (p HTTPProbe) Measure(n int, until <-chan struct{}, maxDur time.Duration) (Latencies, error) {
	var lat Latencies
	err := InNetns(p.Pid, func() error {
		start := time.Now()
		for {
			if len(lat) >= n {
				if until == nil || time.Since(start) > maxDur {
					return nil
				}
				select {
				case <-until:
					return nil
				default:
				}
			}
			d, err := p.get()
			if err != nil {
				return fmt.Errorf("request %d to %s: %w", len(lat)+1, p.Addr, err)
			}
			lat = append(lat, d)
		}
	})
	return lat, err
}

// EchoProbe measures the round trip of a line through an echo service listening on Addr inside
// the network namespace of Pid, over one TCP connection that Measure opens and keeps: a service
// such as busybox nc running cat answers every request without forking, so its latency is the
// scheduler's and the network stack's, not fork's. Like HTTPProbe it uses blocking system
// calls on one locked OS thread.
type EchoProbe struct {
	Pid     int
	Addr    string        // "127.0.0.1:8081"
	Timeout time.Duration // per request, and for the connection
}

// dial connects to the service; the caller is in the service's network
// namespace.
func (p EchoProbe) dial() (int, error) {
	fd, err := dialTCP4(p.Addr, p.Timeout)
	if err != nil {
		return -1, err
	}
	// Small writes must leave at once, not wait for the previous one's ACK (Nagle).
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("setsockopt TCP_NODELAY: %w", err)
	}
	return fd, nil
}

// roundTrip sends one numbered line on fd and reads it back.
func (p EchoProbe) roundTrip(fd, seq int) (time.Duration, error) {
	msg := fmt.Appendf(nil, "%08d\n", seq%100000000)
	start := time.Now()
	for req := msg; len(req) > 0; {
		n, err := unix.Write(fd, req)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("write: %w", err)
		}
		req = req[n:]
	}
	got := make([]byte, 0, len(msg))
	buf := make([]byte, len(msg))
	for len(got) < len(msg) {
		n, err := unix.Read(fd, buf[:len(msg)-len(got)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("read echo after %d bytes: %w", len(got), err)
		}
		if n == 0 {
			return 0, fmt.Errorf("connection closed after %d bytes of the echo", len(got))
		}
		got = append(got, buf[:n]...)
	}
	elapsed := time.Since(start)
	if !bytes.Equal(got, msg) {
		return 0, fmt.Errorf("echo %q, want %q", got, msg)
	}
	return elapsed, nil
}

// WaitReady polls the service until a round trip succeeds or timeout passes.
func (p EchoProbe) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		var err error
		nerr := InNetns(p.Pid, func() error {
			var fd int
			if fd, err = p.dial(); err == nil {
				_, err = p.roundTrip(fd, 0)
				unix.Close(fd)
			}
			return nil
		})
		if nerr != nil {
			return nerr
		}
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("echo service at %s not ready after %v: %w", p.Addr, timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Measure opens one connection and does n round trips on it, one after the other. The first
// failure ends it with an error that says how many succeeded.
func (p EchoProbe) Measure(n int) (Latencies, error) {
	var lat Latencies
	err := InNetns(p.Pid, func() error {
		fd, err := p.dial()
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for i := range n {
			d, err := p.roundTrip(fd, i+1)
			if err != nil {
				return fmt.Errorf("round trip %d to %s: %w", i+1, p.Addr, err)
			}
			lat = append(lat, d)
		}
		return nil
	})
	return lat, err
}

// Latencies are request latencies in the order measured.
type Latencies []time.Duration

// Quantile is the q-quantile (0 < q <= 1) by the nearest-rank method; 0 when empty.
func (l Latencies) Quantile(q float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	s := slices.Clone(l)
	slices.Sort(s)
	rank := int(q*float64(len(s)) + 0.999999)
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// String is "n=N p50=… p99=… max=…".
func (l Latencies) String() string {
	return fmt.Sprintf("n=%d p50=%v p99=%v max=%v", len(l), l.Quantile(0.5).Round(time.Microsecond),
		l.Quantile(0.99).Round(time.Microsecond), l.Quantile(1).Round(time.Microsecond))
}

// Ratio is a.Quantile(q) / base.Quantile(q).
func Ratio(a, base Latencies, q float64) float64 {
	b := base.Quantile(q)
	if b == 0 {
		return 0
	}
	return float64(a.Quantile(q)) / float64(b)
}

// MemoryGuard watches the host's MemAvailable while an attack runs and calls abort (once)
// when it falls below Reserve.
type MemoryGuard struct {
	Reserve int64
	Lowest  int64 // the lowest MemAvailable seen, valid after Stop
	Tripped bool  // abort was called

	stop chan struct{}
	done chan struct{}
}

// GuardMemory starts a MemoryGuard polling every interval; Stop ends it.
func GuardMemory(reserve int64, interval time.Duration, abort func(avail int64)) *MemoryGuard {
	g := &MemoryGuard{Reserve: reserve, Lowest: -1, stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(g.done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if avail, err := MemAvailable(); err == nil {
				if g.Lowest < 0 || avail < g.Lowest {
					g.Lowest = avail
				}
				if avail < reserve && !g.Tripped {
					g.Tripped = true
					abort(avail)
				}
			}
			select {
			case <-g.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return g
}

// Stop ends the watch; Lowest and Tripped are final once it returns.
func (g *MemoryGuard) Stop() {
	close(g.stop)
	<-g.done
}
