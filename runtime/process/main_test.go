package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	goruntime "runtime"
	"strconv"
	"testing"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Root tests change credentials and exec, which a test process cannot undo,
// so they re-exec the test binary as a child that does it. The child's
// behaviour is driven by these environment variables.
const (
	// envChild holds the JSON of the specs.Process the child prepares and
	// runs. Its presence makes TestMain act as the child.
	envChild = "BOX_PROCESS_TEST_CHILD"
	// envEtc names a directory whose passwd and group the child bind-mounts
	// over /etc's (the parent starts it in a private mount namespace).
	envEtc = "BOX_PROCESS_TEST_ETC"
	// envLeakFD makes the child open a directory without O_CLOEXEC at this
	// descriptor number before Run.
	envLeakFD = "BOX_PROCESS_TEST_LEAK_FD"
	// envNoCloexec makes the child bypass the close-on-exec step (the
	// negative control of the descriptor leak test).
	envNoCloexec = "BOX_PROCESS_TEST_NO_CLOEXEC"
)

// childPrepareFailed is the child's exit status when Prepare fails.
const childPrepareFailed = 3

func TestMain(m *testing.M) {
	if spec, ok := os.LookupEnv(envChild); ok {
		goruntime.LockOSThread() // never unlocked: the thread execs
		if err := child(spec); err != nil {
			fmt.Println(err)
			os.Exit(childPrepareFailed)
		}
		os.Exit(0) // not reached: Run only returns on failure
	}
	os.Exit(m.Run())
}

// child prepares and runs the process in spec. A Prepare error is reported
// as one line: "prepare: notfound=<bool> invalid=<bool>: <error>".
func child(spec string) error {
	var p specs.Process
	if err := json.Unmarshal([]byte(spec), &p); err != nil {
		return err
	}
	if err := childSetup(); err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	plan, err := oci.NewProcessPlan(&p)
	if err != nil {
		return err
	}
	e, err := Prepare(plan)
	if err != nil {
		return fmt.Errorf("prepare: notfound=%t invalid=%t: %w",
			errdefs.IsNotFound(err), errdefs.IsInvalidArgument(err), err)
	}
	return e.Run()
}

func childSetup() error {
	if dir := os.Getenv(envEtc); dir != "" {
		for _, name := range []string{"passwd", "group"} {
			if err := unix.Mount(dir+"/"+name, "/etc/"+name, "", unix.MS_BIND, ""); err != nil {
				return fmt.Errorf("bind %s: %w", name, err)
			}
		}
	}
	if v := os.Getenv(envLeakFD); v != "" {
		want, err := strconv.Atoi(v)
		if err != nil {
			return err
		}
		// A host directory, as runc leaked one in CVE-2024-21626.
		fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY, 0)
		if err != nil {
			return err
		}
		if err := unix.Dup3(fd, want, 0); err != nil {
			return err
		}
		if fd != want {
			unix.Close(fd)
		}
		if flags, err := unix.FcntlInt(uintptr(want), unix.F_GETFD, 0); err != nil || flags&unix.FD_CLOEXEC != 0 {
			return errors.Join(errors.New("leak fd is close-on-exec already"), err)
		}
	}
	if os.Getenv(envNoCloexec) != "" {
		cloexecFDs = func() error { return nil }
	}
	return escapeChildSetup()
}
