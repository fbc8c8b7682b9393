package cgroup

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/containerd/errdefs"
)

// fsys reads and writes the control files of one cgroup.
type fsys interface {
	reader
	write(ctl, file, value string) error
}

// write writes value to an existing control file, in one write(2) as the kernel wants it.
func (d dirReader) write(ctl, file, value string) error {
	dir := d(ctl)
	if dir == "" {
		return &os.PathError{Op: "write", Path: file, Err: syscall.ENOENT}
	}
	f, err := os.OpenFile(filepath.Join(dir, file), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(value)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// apply makes the writes in order. When one fails, the files written before it get back
// the values they had (read before the first write to each), in reverse order, so a refused
// Create or Update leaves the cgroup as it was; the error names the failed setting's field.
// The device rules of v1 are restored from devices.list.
//
// On success it returns undo, which restores the same way: for a caller that has more to do
// (the v2 device filter) and must undo these writes if that fails.
func apply(fs fsys, settings []setting) (undo func() error, _ error) {
	priors := map[string]string{}
	var done []setting
	for _, s := range settings {
		id := s.ctl + "/" + s.file
		if _, ok := priors[id]; !ok {
			src := s.file
			if s.ctl == "devices" {
				src = "devices.list" // devices.allow and devices.deny are write-only
			}
			prior, err := fs.read(s.ctl, src)
			if err != nil {
				err = settingError(s, fmt.Errorf("read %s before writing it: %w", src, err))
				if rerr := restore(fs, done, priors); rerr != nil {
					err = errors.Join(err, fmt.Errorf("restore the values written before it: %w", rerr))
				}
				return nil, err
			}
			priors[id] = prior
		}
		if err := fs.write(s.ctl, s.file, s.value); err != nil {
			err = settingError(s, err)
			if rerr := restore(fs, done, priors); rerr != nil {
				err = errors.Join(err, fmt.Errorf("restore the values written before it: %w", rerr))
			}
			return nil, err
		}
		done = append(done, s)
	}
	return func() error { return restore(fs, done, priors) }, nil
}

// restore writes back, in reverse order, what the files of done held before.
func restore(fs fsys, done []setting, priors map[string]string) error {
	var errs []error
	devicesDone := false
	for i := len(done) - 1; i >= 0; i-- {
		s := done[i]
		prior := priors[s.ctl+"/"+s.file]
		if s.ctl == "devices" {
			if !devicesDone {
				errs = append(errs, restoreDevices(fs, prior))
				devicesDone = true
			}
			continue
		}
		if err := fs.write(s.ctl, s.file, restoreValue(s, prior)); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", s.file, err))
		}
	}
	return errors.Join(errs...)
}

// restoreValue is what to write to s.file to give it back its prior content.
func restoreValue(s setting, prior string) string {
	lines := strings.Split(prior, "\n")
	switch {
	case s.key != "":
		for _, l := range lines {
			if strings.HasPrefix(l, s.key+" ") {
				return l
			}
		}
		return s.unset
	case s.file == "memory.oom_control":
		for _, l := range lines {
			if v, ok := strings.CutPrefix(l, "oom_kill_disable "); ok {
				return v
			}
		}
	}
	// Files that list more than one line (io.weight: "default 100" then devices) take the
	// line the setting wrote, which is the first.
	return lines[0]
}

// restoreDevices gives a v1 cgroup back the device list it had: deny all, then allow each
// listed rule.
func restoreDevices(fs fsys, list string) error {
	if err := fs.write("devices", "devices.deny", "a"); err != nil {
		return fmt.Errorf("devices.deny: %w", err)
	}
	for _, l := range strings.Split(list, "\n") {
		if l == "" {
			continue
		}
		if err := fs.write("devices", "devices.allow", l); err != nil {
			return fmt.Errorf("devices.allow %q: %w", l, err)
		}
	}
	return nil
}

// memoryLimitFiles are the files whose EBUSY means "the usage cannot be reclaimed below the
// new limit".
var memoryLimitFiles = map[string]bool{
	"memory.limit_in_bytes": true, "memory.memsw.limit_in_bytes": true,
}

// settingError names the field of a failed write and classifies the errno:
// EINVAL, ERANGE, EOVERFLOW, ENODEV (a throttled device that does not exist) and ENOSPC (an
// empty cpuset) are ErrInvalidArgument; EBUSY is ErrFailedPrecondition (a limit below what
// the cgroup uses now, a cpuset its children use); a missing file and EOPNOTSUPP (a BFQ
// device weight for a disk BFQ does not schedule) ErrNotImplemented.
func settingError(s setting, err error) error {
	msg := fmt.Sprintf("%s: write %q to %s", s.field, s.value, s.file)
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return fmt.Errorf("%s: %w", msg, err)
	}
	switch errno {
	case syscall.EINVAL, syscall.ERANGE, syscall.EOVERFLOW, syscall.ENODEV, syscall.ENOSPC:
		hint := ""
		if s.file == "cpu.rt_runtime_us" || s.file == "cpu.rt_period_us" {
			hint = " (the parent cgroup's cpu.rt_runtime_us must leave room for it)"
		}
		return fmt.Errorf("%s%s: %w: %w", msg, hint, errdefs.ErrInvalidArgument, err)
	case syscall.EBUSY:
		if memoryLimitFiles[s.file] {
			msg += " (the cgroup uses more memory than that, and it could not be reclaimed)"
		}
		return fmt.Errorf("%s: %w: %w", msg, errdefs.ErrFailedPrecondition, err)
	case syscall.ENOENT:
		return fmt.Errorf("%s: %w: %w", msg, errdefs.ErrNotImplemented, err)
	case syscall.EOPNOTSUPP:
		return fmt.Errorf("%s (not supported for this device or by this kernel): %w: %w", msg, errdefs.ErrNotImplemented, err)
	}
	return fmt.Errorf("%s: %w", msg, err)
}
