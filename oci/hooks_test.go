package oci

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func intp(i int) *int { return &i }

// TestPlanHooksRejects checks that each hook validation rule fires through
// NewPlan and names the hook's field.
func TestPlanHooksRejects(t *testing.T) {
	tests := []struct {
		name   string
		hooks  specs.Hooks
		field  string
		reason string
	}{
		{"relative path", specs.Hooks{CreateRuntime: []specs.Hook{{Path: "bin/hook"}}},
			"hooks.createRuntime[0].path", "not an absolute path"},
		{"missing path", specs.Hooks{Poststop: []specs.Hook{{Path: "/ok"}, {}}},
			"hooks.poststop[1].path", "missing"},
		{"zero timeout", specs.Hooks{CreateContainer: []specs.Hook{{Path: "/h", Timeout: intp(0)}}},
			"hooks.createContainer[0].timeout", "greater than zero"},
		{"negative timeout", specs.Hooks{StartContainer: []specs.Hook{{Path: "/h", Timeout: intp(-3)}}},
			"hooks.startContainer[0].timeout", "greater than zero"},
		{"prestart relative", specs.Hooks{Prestart: []specs.Hook{{Path: "./h"}}}, //nolint:staticcheck
			"hooks.prestart[0].path", "not an absolute path"},
		{"poststart env without =", specs.Hooks{Poststart: []specs.Hook{{Path: "/h", Env: []string{"A=1", "B"}}}},
			"hooks.poststart[0].env[1]", "NAME=value"},
		{"env empty name", specs.Hooks{Poststart: []specs.Hook{{Path: "/h", Env: []string{"=x"}}}},
			"hooks.poststart[0].env[0]", "NAME=value"},
		{"NUL in arg", specs.Hooks{Poststop: []specs.Hook{{Path: "/h", Args: []string{"h", "a\x00b"}}}},
			"hooks.poststop[0].args[1]", "NUL"},
		{"NUL in path", specs.Hooks{Poststop: []specs.Hook{{Path: "/h\x00"}}},
			"hooks.poststop[0].path", "NUL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validSpec()
			s.Hooks = &tt.hooks
			_, err := NewPlan(s, "/bundle")
			wantFieldError(t, err, tt.field, tt.reason)
		})
	}
}

// TestPlanHooks checks the translation of valid hooks: order kept per
// kind, default argv, timeouts in seconds, nil versus empty env.
func TestPlanHooks(t *testing.T) {
	s := validSpec()
	s.Hooks = &specs.Hooks{
		Prestart:        []specs.Hook{{Path: "/p"}}, //nolint:staticcheck
		CreateRuntime:   []specs.Hook{{Path: "/cr1", Args: []string{"x", "-y"}}, {Path: "/cr2", Timeout: intp(2)}},
		CreateContainer: []specs.Hook{{Path: "/cc", Env: []string{}}},
		StartContainer:  []specs.Hook{{Path: "/sc", Env: []string{"A=b"}}},
		Poststart:       []specs.Hook{{Path: "/ps"}},
		Poststop:        []specs.Hook{{Path: "/pst", Timeout: intp(1)}},
	}
	p, err := NewPlan(s, "/bundle")
	if err != nil {
		t.Fatal(err)
	}
	want := Hooks{
		Prestart:        []Hook{{Path: "/p", Argv: []string{"/p"}}},
		CreateRuntime:   []Hook{{Path: "/cr1", Argv: []string{"x", "-y"}}, {Path: "/cr2", Argv: []string{"/cr2"}, Timeout: 2 * time.Second}},
		CreateContainer: []Hook{{Path: "/cc", Argv: []string{"/cc"}, Env: []string{}}},
		StartContainer:  []Hook{{Path: "/sc", Argv: []string{"/sc"}, Env: []string{"A=b"}}},
		Poststart:       []Hook{{Path: "/ps", Argv: []string{"/ps"}}},
		Poststop:        []Hook{{Path: "/pst", Argv: []string{"/pst"}, Timeout: time.Second}},
	}
	if !reflect.DeepEqual(p.Hooks, want) {
		t.Errorf("hooks:\n got %+v\nwant %+v", p.Hooks, want)
	}
	if p.Hooks.CreateRuntime[0].Env != nil || p.Hooks.CreateContainer[0].Env == nil {
		t.Error("an absent env must stay nil and an empty one must not")
	}
	if !p.Hooks.BeforePivot() {
		t.Error("BeforePivot is false with prestart and createRuntime hooks")
	}
}

// TestHooksBeforePivot checks that only prestart and createRuntime hooks
// need the runtime's turn between the mounts and pivot_root, so a spec
// without them costs no extra sync round trip.
func TestHooksBeforePivot(t *testing.T) {
	h := specs.Hook{Path: "/h"}
	for _, tt := range []struct {
		hooks *specs.Hooks
		want  bool
	}{
		{nil, false},
		{&specs.Hooks{}, false},
		{&specs.Hooks{CreateContainer: []specs.Hook{h}, StartContainer: []specs.Hook{h}, Poststart: []specs.Hook{h}, Poststop: []specs.Hook{h}}, false},
		{&specs.Hooks{Prestart: []specs.Hook{h}}, true}, //nolint:staticcheck
		{&specs.Hooks{CreateRuntime: []specs.Hook{h}}, true},
	} {
		got, err := PlanHooks(tt.hooks)
		if err != nil {
			t.Fatal(err)
		}
		if got.BeforePivot() != tt.want {
			b, _ := json.Marshal(tt.hooks)
			t.Errorf("BeforePivot(%s) = %t, want %t", b, !tt.want, tt.want)
		}
	}
}
