// Package shim is the daemon half of box: it serves the task API over ttrpc
// (task state, stdio, events) and drives containers only through the runtime
// package. The commands containerd runs as short-lived processes (start,
// delete) are in shim/launch, a separate and much smaller binary.
package shim

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/runtime"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch"
	"github.com/boxrt/containerd-shim-box-v1/shim/launch/prespawn"
)

// Main runs the daemon binary (containerd-shim-box-v1-daemon) with the
// process's arguments and exits.
func Main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	f, err := launch.ParseFlags(args, os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	ctx := context.Background()
	switch {
	case f.Version:
		launch.PrintVersion(os.Stdout)
		return 0
	case f.Info:
		err = info(ctx, os.Stdin, os.Stdout)
	case f.Prespawned:
		err = servePrespawned(ctx)
	case f.Action == "":
		var stage string
		if stage, err = launch.StagePath(); err == nil {
			err = serveWithStage(ctx, f, stage)
		}
	default:
		err = fmt.Errorf("action %q is %s's, not the daemon's: %w", f.Action, launch.ShimBinary, errdefs.ErrInvalidArgument)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", launch.DaemonBinary, err)
		return 1
	}
	return 0
}

// servePrespawned is a daemon the start action's constructor started: it
// waits for start to send its arguments, environment and listening socket
// (shim/launch/prespawn), and exits quietly if start sends nothing.
func servePrespawned(ctx context.Context) error {
	w, lfd, err := prespawn.Receive(3)
	if errors.Is(err, prespawn.ErrNoWork) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(lfd)
	for _, kv := range w.Env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return fmt.Errorf("environment from start: %q: %w", kv, errdefs.ErrInvalidArgument)
		}
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}
	f, err := launch.ParseFlags(w.Args, os.Stderr)
	if err != nil {
		return err
	}
	if f.Action != "" || f.Prespawned || f.Socket != "" {
		return fmt.Errorf("arguments from start %q are not a daemon's: %w", w.Args, errdefs.ErrInvalidArgument)
	}
	stage, err := launch.StagePath()
	if err != nil {
		return err
	}
	// Taken: start may now report the address. The listener replaces the
	// socket to start on fd 3, where serve expects an inherited socket.
	if err := prespawn.Ack(3); err != nil {
		return fmt.Errorf("tell start the work was taken: %w", err)
	}
	if err := unix.Dup3(lfd, 3, 0); err != nil {
		return fmt.Errorf("move the listening socket to fd 3: %w", err)
	}
	return serveWithStage(ctx, f, stage)
}

// serveWithStage runs the daemon with the container-side stages taken from
// the containerd-shim-box-v1 binary beside it.
func serveWithStage(ctx context.Context, f launch.Flags, stage string) error {
	runtime.SetStageExecutable(stage)
	// Seal the stage binary while the daemon waits for containerd's first
	// request, not in the Create that needs it.
	go func() { _, _ = runtime.SealedExe() }() // Create reports any error
	return serve(ctx, f)
}
