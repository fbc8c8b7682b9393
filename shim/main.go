// Package shim is the containerd-facing half of box: the start and delete
// actions containerd runs, the long-lived daemon serving the task API over
// ttrpc, task state, stdio and events. It drives containers only through the
// runtime package.
package shim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/containerd/errdefs"
)

// Name is the runtime type containerd knows box by.
const Name = "io.containerd.box.v1"

// Version is set at build time.
var Version = "dev"

// flags are the command-line values containerd passes to every action.
type flags struct {
	namespace string
	id        string
	address   string
	bundle    string
	socket    string
	debug     bool
	version   bool
	info      bool
	action    string
}

func parseFlags(args []string, stderr io.Writer) (flags, error) {
	var f flags
	fs := flag.NewFlagSet("containerd-shim-box-v1", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.namespace, "namespace", "", "namespace that owns the shim")
	fs.StringVar(&f.id, "id", "", "id of the task")
	fs.StringVar(&f.address, "address", "", "grpc address back to containerd")
	fs.StringVar(&f.bundle, "bundle", "", "path to the bundle (delete)")
	fs.StringVar(&f.socket, "socket", "", "socket path to serve (daemon; default: inherited fd 3)")
	fs.String("publish-binary", "", "ignored: events go to containerd over ttrpc")
	fs.String("debug-socket", "", "ignored")
	fs.BoolVar(&f.debug, "debug", false, "enable debug output in logs")
	fs.BoolVar(&f.version, "v", false, "show the shim version and exit")
	fs.BoolVar(&f.version, "version", false, "show the shim version and exit")
	fs.BoolVar(&f.info, "info", false, "print the runtime info and exit")
	if err := fs.Parse(args); err != nil {
		return f, fmt.Errorf("%w: %w", err, errdefs.ErrInvalidArgument)
	}
	f.action = fs.Arg(0)
	return f, nil
}

// Main runs the shim with the process's arguments and exits.
func Main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	f, err := parseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx := context.Background()
	switch {
	case f.version:
		fmt.Printf("containerd-shim-box-v1:\n  Version:  %s\n  Runtime:  %s\n", Version, Name)
		return 0
	case f.info:
		err = info(ctx, os.Stdin, os.Stdout)
	case f.action == "start":
		err = start(ctx, f)
	case f.action == "delete":
		err = deleteAction(ctx, f)
	case f.action == "":
		err = serve(ctx, f)
	default:
		err = fmt.Errorf("unknown action %q: %w", f.action, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "containerd-shim-box-v1: %v\n", err)
		return 1
	}
	return 0
}
