package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// nlConn is a NETLINK_ROUTE socket. A netlink socket belongs to the
// network namespace of the thread that created it, for its whole life.
//
// Not safe for concurrent use.
type nlConn struct {
	fd  int
	seq uint32
}

func openNetlink() (*nlConn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind netlink socket: %w", err)
	}
	// The kernel answers at once; a missing answer must not hang Create.
	tv := unix.Timeval{Sec: 10}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink socket timeout: %w", err)
	}
	return &nlConn{fd: fd}, nil
}

func (c *nlConn) Close() { unix.Close(c.fd) }

// nlAttr appends a netlink attribute (header, data, padding) to b.
func nlAttr(b []byte, typ uint16, data []byte) []byte {
	l := unix.SizeofRtAttr + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%unix.NLMSG_ALIGNTO != 0 {
		b = append(b, 0)
	}
	return b
}

func nlString(s string) []byte { return append([]byte(s), 0) }

func nlUint32(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }

// ifinfomsg encodes struct ifinfomsg.
func ifinfomsg(index int32, flags, change uint32) []byte {
	b := make([]byte, unix.SizeofIfInfomsg)
	b[0] = unix.AF_UNSPEC
	binary.NativeEndian.PutUint32(b[4:], uint32(index))
	binary.NativeEndian.PutUint32(b[8:], flags)
	binary.NativeEndian.PutUint32(b[12:], change)
	return b
}

// do sends one request and returns the payloads of its answers: for a
// dump (NLM_F_DUMP) every message up to NLMSG_DONE, else nothing, once the
// kernel acknowledged the request (NLM_F_ACK).
func (c *nlConn) do(typ, flags uint16, payload []byte) ([][]byte, error) {
	c.seq++
	seq := c.seq
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(payload))
	msg = append(msg, payload...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST|unix.NLM_F_ACK)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	if err := unix.Sendto(c.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	var out [][]byte
	buf := make([]byte, os.Getpagesize()*8)
	for {
		n, _, err := unix.Recvfrom(c.fd, buf, 0)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("netlink parse: %w", err)
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) < 4 {
					return nil, errors.New("netlink: short error message")
				}
				if errno := int32(binary.NativeEndian.Uint32(m.Data)); errno != 0 {
					return nil, unix.Errno(-errno)
				}
				// NLM_F_DUMP is two bits, one of them NLM_F_EXCL's.
				if flags&unix.NLM_F_DUMP != unix.NLM_F_DUMP {
					return out, nil
				}
			default:
				out = append(out, append([]byte(nil), m.Data...))
			}
		}
	}
}

// linkIndex returns the index of the network device called name.
func (c *nlConn) linkIndex(name string) (int32, error) {
	req := nlAttr(ifinfomsg(0, 0, 0), unix.IFLA_IFNAME, nlString(name))
	msgs, err := c.do(unix.RTM_GETLINK, 0, req)
	if err != nil {
		return 0, err
	}
	if len(msgs) != 1 || len(msgs[0]) < unix.SizeofIfInfomsg {
		return 0, fmt.Errorf("netlink: unexpected answer to RTM_GETLINK %s", name)
	}
	return int32(binary.NativeEndian.Uint32(msgs[0][4:])), nil
}

// setLinkUp sets or clears IFF_UP on the device.
func (c *nlConn) setLinkUp(index int32, up bool) error {
	var flags uint32
	if up {
		flags = unix.IFF_UP
	}
	_, err := c.do(unix.RTM_NEWLINK, 0, ifinfomsg(index, flags, unix.IFF_UP))
	return err
}

// moveLink moves the device into the network namespace nsFD, renaming it
// to name in the same request, so it never exists there under a name that
// could clash.
func (c *nlConn) moveLink(index int32, name string, nsFD int) error {
	req := nlAttr(ifinfomsg(index, 0, 0), unix.IFLA_IFNAME, nlString(name))
	req = nlAttr(req, unix.IFLA_NET_NS_FD, nlUint32(uint32(nsFD)))
	_, err := c.do(unix.RTM_NEWLINK, 0, req)
	return err
}

// ifAddr is one address of a device: struct ifaddrmsg's family and prefix
// length, and IFA_LOCAL (or IFA_ADDRESS when there is no IFA_LOCAL).
type ifAddr struct {
	family, prefixLen uint8
	local             []byte
}

// permanentGlobalAddrs returns the device's permanent addresses of global
// scope: the ones runc carries into the container's namespace (the kernel
// drops every address of a device that changes namespace). Addresses from
// autoconfiguration or DHCP, and link or host scoped ones, belong to the
// old namespace's context.
func (c *nlConn) permanentGlobalAddrs(index int32) ([]ifAddr, error) {
	msgs, err := c.do(unix.RTM_GETADDR, unix.NLM_F_DUMP, make([]byte, unix.SizeofIfAddrmsg))
	if err != nil {
		return nil, err
	}
	var out []ifAddr
	for _, m := range msgs {
		if len(m) < unix.SizeofIfAddrmsg {
			continue
		}
		family, prefix, flags, scope := m[0], m[1], uint32(m[2]), m[3]
		if int32(binary.NativeEndian.Uint32(m[4:])) != index || scope != unix.RT_SCOPE_UNIVERSE {
			continue
		}
		var local, address []byte
		for a := m[unix.SizeofIfAddrmsg:]; len(a) >= unix.SizeofRtAttr; {
			l := int(binary.NativeEndian.Uint16(a))
			if l < unix.SizeofRtAttr || l > len(a) {
				break
			}
			data := a[unix.SizeofRtAttr:l]
			switch binary.NativeEndian.Uint16(a[2:]) {
			case unix.IFA_LOCAL:
				local = data
			case unix.IFA_ADDRESS:
				address = data
			case unix.IFA_FLAGS:
				if len(data) == 4 {
					flags = binary.NativeEndian.Uint32(data)
				}
			}
			a = a[min(len(a), (l+unix.NLMSG_ALIGNTO-1)&^(unix.NLMSG_ALIGNTO-1)):]
		}
		if flags&unix.IFA_F_PERMANENT == 0 {
			continue
		}
		if local == nil {
			local = address
		}
		if local != nil {
			out = append(out, ifAddr{family: family, prefixLen: prefix, local: append([]byte(nil), local...)})
		}
	}
	return out, nil
}

// addAddr adds a permanent address of global scope to the device.
func (c *nlConn) addAddr(index int32, a ifAddr) error {
	msg := make([]byte, unix.SizeofIfAddrmsg)
	msg[0], msg[1], msg[3] = a.family, a.prefixLen, unix.RT_SCOPE_UNIVERSE
	binary.NativeEndian.PutUint32(msg[4:], uint32(index))
	msg = nlAttr(msg, unix.IFA_LOCAL, a.local)
	msg = nlAttr(msg, unix.IFA_ADDRESS, a.local)
	_, err := c.do(unix.RTM_NEWADDR, unix.NLM_F_CREATE|unix.NLM_F_EXCL, msg)
	return err
}
