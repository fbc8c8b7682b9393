package runtime

import (
	"bufio"
	"bytes"
	"fmt"
	"os"

	"github.com/containerd/errdefs"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/process"
)

// checkHost refuses, before anything is created, a plan that needs what
// this host lacks or box does not implement. Every error is
// errdefs.ErrFailedPrecondition and names the spec field:
//
//   - process.apparmorProfile / selinuxLabel without that LSM enabled
//     (process.CheckHost);
//   - linux.intelRdt: without a mounted resctrl filesystem runc refuses it
//     too ("Intel RDT is not enabled"); with one, box does not create
//     resctrl groups yet;
//   - linux.mountLabel on an SELinux host: box does not label mounts yet.
//     Without SELinux it is ignored, as runc ignores it (its mount-label
//     formatting is a no-op when SELinux is disabled).
func checkHost(p *oci.Plan) error {
	if err := process.CheckHost(p.Process); err != nil {
		return err
	}
	if p.IntelRdt != nil {
		if !hostHasResctrl() {
			return fmt.Errorf("linux.intelRdt: Intel RDT needs the resctrl filesystem, which is not mounted on this host: %w", errdefs.ErrFailedPrecondition)
		}
		return fmt.Errorf("linux.intelRdt: resctrl groups are not supported by box yet: %w", errdefs.ErrFailedPrecondition)
	}
	if p.MountLabel != "" && hostHasSELinux() {
		return fmt.Errorf("linux.mountLabel: SELinux mount labels are not supported by box yet: %w", errdefs.ErrFailedPrecondition)
	}
	return nil
}

// Host probes; tests replace them.
var (
	hostHasResctrl = resctrlMounted
	hostHasSELinux = process.SELinuxEnabled
)

// resctrlMounted reports whether a resctrl filesystem is mounted anywhere
// in the daemon's mount namespace (runc looks for it the same way).
func resctrlMounted() bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// "... - resctrl resctrl rw"
		if _, after, ok := bytes.Cut(s.Bytes(), []byte(" - ")); ok && bytes.HasPrefix(after, []byte("resctrl ")) {
			return true
		}
	}
	return false
}
