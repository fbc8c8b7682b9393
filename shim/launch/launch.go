// Package launch is the short-lived side of the shim: the commands
// containerd runs as processes ("start", "delete", "-v"), and what they
// share with the daemon (the runtime options, the files kept in a bundle,
// the command-line flags).
//
// Every container start runs the containerd-shim-box-v1 binary several
// times (start, the init stage, delete), so that binary links only this
// package and the runtime: no ttrpc, gRPC or task API, whose package
// initialisation alone costs milliseconds per process. The daemon is a
// second binary, containerd-shim-box-v1-daemon, beside the first (or on
// PATH); start runs it, and "-info" is passed on to it.
package launch

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/containerd/errdefs"
)

// Name is the runtime type containerd knows box by.
const Name = "io.containerd.box.v1"

// Version is set at build time.
var Version = "dev"

// Binary names. containerd derives ShimBinary from the runtime type; the
// daemon binary is installed in the same directory.
const (
	ShimBinary   = "containerd-shim-box-v1"
	DaemonBinary = "containerd-shim-box-v1-daemon"
)

// Flags are the command-line values containerd passes to every action.
type Flags struct {
	Namespace string
	ID        string
	Address   string
	Bundle    string
	// Socket is the daemon's socket path; empty means inherited fd 3.
	Socket  string
	Debug   bool
	Version bool
	Info    bool
	// Prespawned is the daemon started by start's constructor: it waits
	// for its work on fd 3 (shim/launch/prespawn).
	Prespawned bool
	// Action is the first argument: "start", "delete", or empty for the
	// daemon.
	Action string
}

// ParseFlags parses the arguments (without the program name).
func ParseFlags(args []string, stderr io.Writer) (Flags, error) {
	var f Flags
	fs := flag.NewFlagSet(ShimBinary, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.Namespace, "namespace", "", "namespace that owns the shim")
	fs.StringVar(&f.ID, "id", "", "id of the task")
	fs.StringVar(&f.Address, "address", "", "grpc address back to containerd")
	fs.StringVar(&f.Bundle, "bundle", "", "path to the bundle (delete)")
	fs.StringVar(&f.Socket, "socket", "", "socket path to serve (daemon; default: inherited fd 3)")
	fs.String("publish-binary", "", "ignored: events go to containerd over ttrpc")
	fs.String("debug-socket", "", "ignored")
	fs.BoolVar(&f.Debug, "debug", false, "enable debug output in logs")
	fs.BoolVar(&f.Version, "v", false, "show the shim version and exit")
	fs.BoolVar(&f.Version, "version", false, "show the shim version and exit")
	fs.BoolVar(&f.Info, "info", false, "print the runtime info and exit")
	fs.BoolVar(&f.Prespawned, "prespawned", false, "daemon: wait for start to send the work on fd 3")
	if err := fs.Parse(args); err != nil {
		return f, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	f.Action = fs.Arg(0)
	return f, nil
}

// PrintVersion is the output of "-v".
func PrintVersion(w io.Writer) {
	fmt.Fprintf(w, "%s:\n  Version:  %s\n  Runtime:  %s\n", ShimBinary, Version, Name)
}

// Main runs the action the arguments name and exits.
func Main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	f, err := ParseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	switch {
	case f.Version:
		PrintVersion(os.Stdout)
		return 0
	case f.Info, f.Action == "":
		// The daemon binary answers -info (it links the API types) and is
		// the daemon; run it in this process's place.
		err = execDaemon(args)
	case f.Action == "start":
		err = start(f)
	case f.Action == "delete":
		err = deleteAction(f)
	default:
		err = fmt.Errorf("unknown action %q: %w", f.Action, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", ShimBinary, err)
		return 1
	}
	return 0
}

// DaemonPath is the daemon binary beside the running executable or, when
// the shim was copied elsewhere on its own (containerd's runtime path may
// name any copy), the one on PATH.
func DaemonPath() (string, error) {
	p, err := sibling(DaemonBinary)
	if err == nil {
		return p, nil
	}
	if lp, lerr := exec.LookPath(DaemonBinary); lerr == nil {
		return lp, nil
	}
	return "", err
}

// StagePath is the containerd-shim-box-v1 binary beside the running
// executable: the daemon runs the container-side stages from it.
func StagePath() (string, error) {
	return sibling(ShimBinary)
}

func sibling(name string) (string, error) {
	self, err := os.Executable()
	if err != nil {
		return "", fmt.Errorf("find own executable: %w", err)
	}
	p := filepath.Join(filepath.Dir(self), name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s must be installed beside %s: %w", name, self, err)
	}
	return p, nil
}

func execDaemon(args []string) error {
	daemon, err := DaemonPath()
	if err != nil {
		return err
	}
	return syscall.Exec(daemon, append([]string{daemon}, args...), os.Environ())
}
