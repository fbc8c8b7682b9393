package oci

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Hook is one validated OCI hook (config.md, "POSIX-platform Hooks").
type Hook struct {
	// Path is the absolute path of the program. Where it resolves depends
	// on the hook's kind: see Hooks.
	Path string
	// Argv is the hook's argv: the spec's args, or [Path] when it gives
	// none (as runc does).
	Argv []string
	// Env is the hook's environment. Nil means the spec gave none; the
	// runtime then uses its own environment (the container process's for
	// startContainer hooks, as runc does).
	Env []string
	// Timeout is how long the hook may run before it is killed and its
	// step fails; zero means no limit.
	Timeout time.Duration
}

// Hooks are the spec's hooks by kind, each list in the order it runs.
//
// Where each kind runs (runtime-spec config.md and runtime.md, and runc):
//
//   - Prestart (deprecated) and CreateRuntime: in the runtime namespaces,
//     during Create, after the container's mounts and before pivot_root;
//     status "creating".
//   - CreateContainer: in the container's namespaces at the same point, the
//     path resolved in the runtime's filesystem ("MUST resolve in the
//     runtime namespace"); status "creating".
//   - StartContainer: in the container, after Start and before the
//     container's process is executed, the path resolved in the container;
//     status "created".
//   - Poststart: in the runtime namespaces after the container's process
//     was executed; status "running".
//   - Poststop: in the runtime namespaces after the container was
//     destroyed; status "stopped".
type Hooks struct {
	Prestart, CreateRuntime, CreateContainer, StartContainer, Poststart, Poststop []Hook
}

// BeforePivot reports whether the runtime must run hooks of its own while
// the init stage waits between the mounts and pivot_root.
func (h Hooks) BeforePivot() bool {
	return len(h.Prestart) > 0 || len(h.CreateRuntime) > 0
}

// PlanHooks validates the spec's hooks. A nil spec section gives no hooks.
//
// The spec: "path (string, REQUIRED) ... This specification extends the
// IEEE standard in that path MUST be absolute", and "timeout (int,
// OPTIONAL) ... If set, timeout MUST be greater than zero."
func PlanHooks(h *specs.Hooks) (Hooks, error) {
	var out Hooks
	if h == nil {
		return out, nil
	}
	lists := []struct {
		field string
		in    []specs.Hook
		out   *[]Hook
	}{
		{"hooks.prestart", h.Prestart, &out.Prestart}, //nolint:staticcheck // deprecated, still run (runc does)
		{"hooks.createRuntime", h.CreateRuntime, &out.CreateRuntime},
		{"hooks.createContainer", h.CreateContainer, &out.CreateContainer},
		{"hooks.startContainer", h.StartContainer, &out.StartContainer},
		{"hooks.poststart", h.Poststart, &out.Poststart},
		{"hooks.poststop", h.Poststop, &out.Poststop},
	}
	for _, l := range lists {
		for i, sh := range l.in {
			hk, err := planHook(fmt.Sprintf("%s[%d]", l.field, i), sh)
			if err != nil {
				return Hooks{}, err
			}
			*l.out = append(*l.out, hk)
		}
	}
	return out, nil
}

func planHook(field string, h specs.Hook) (Hook, error) {
	switch {
	case h.Path == "":
		return Hook{}, fieldErrorf(field+".path", "missing")
	case !path.IsAbs(h.Path):
		return Hook{}, fieldErrorf(field+".path", "%q is not an absolute path", h.Path)
	case h.Timeout != nil && *h.Timeout <= 0:
		return Hook{}, fieldErrorf(field+".timeout", "%d: must be greater than zero", *h.Timeout)
	}
	if strings.IndexByte(h.Path, 0) >= 0 {
		return Hook{}, fieldErrorf(field+".path", "contains a NUL byte")
	}
	for i, a := range h.Args {
		if strings.IndexByte(a, 0) >= 0 {
			return Hook{}, fieldErrorf(fmt.Sprintf("%s.args[%d]", field, i), "contains a NUL byte")
		}
	}
	for i, e := range h.Env {
		f := fmt.Sprintf("%s.env[%d]", field, i)
		if strings.IndexByte(e, '=') <= 0 {
			return Hook{}, fieldErrorf(f, "%q is not of the form NAME=value", e)
		}
		if strings.IndexByte(e, 0) >= 0 {
			return Hook{}, fieldErrorf(f, "contains a NUL byte")
		}
	}
	hk := Hook{Path: h.Path, Argv: slices.Clone(h.Args), Env: slices.Clone(h.Env)}
	if len(hk.Argv) == 0 {
		hk.Argv = []string{h.Path}
	}
	if h.Env != nil && hk.Env == nil {
		// An explicitly empty env is an empty environment, not "unset".
		hk.Env = []string{}
	}
	if h.Timeout != nil {
		hk.Timeout = time.Duration(*h.Timeout) * time.Second
	}
	return hk, nil
}
