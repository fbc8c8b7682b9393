package seccomp

import (
	"encoding/binary"
	"fmt"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// insnSize is the size of one struct sock_filter.
const insnSize = 8

// MarshalBinary encodes the instructions as struct sock_filter in native
// byte order: the daemon compiles a container's profile once and sends the
// program to the init and exec stages, which only load it.
func (p *Program) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, len(p.Filter)*insnSize)
	for _, in := range p.Filter {
		b = binary.NativeEndian.AppendUint16(b, in.Code)
		b = append(b, in.Jt, in.Jf)
		b = binary.NativeEndian.AppendUint32(b, in.K)
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary made. Flags and NeedsListener
// are not part of the encoding.
func (p *Program) UnmarshalBinary(b []byte) error {
	if len(b) == 0 || len(b)%insnSize != 0 || len(b)/insnSize > maxInsns {
		return fmt.Errorf("seccomp: program of %d bytes: %w", len(b), errdefs.ErrInvalidArgument)
	}
	p.Filter = make([]unix.SockFilter, len(b)/insnSize)
	for i := range p.Filter {
		in := b[i*insnSize:]
		p.Filter[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(in),
			Jt:   in[2],
			Jf:   in[3],
			K:    binary.NativeEndian.Uint32(in[4:]),
		}
	}
	return nil
}
