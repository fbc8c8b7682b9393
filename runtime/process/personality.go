package process

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
)

// setPersonality applies linux.personality with personality(2).
func setPersonality(p *oci.Personality) error {
	if p == nil {
		return nil
	}
	if _, _, errno := unix.RawSyscall(unix.SYS_PERSONALITY, uintptr(*p), 0, 0); errno != 0 {
		return fmt.Errorf("linux.personality: personality %#x: %w", uint(*p), errno)
	}
	return nil
}
