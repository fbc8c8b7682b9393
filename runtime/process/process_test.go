package process

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
	"golang.org/x/sys/unix"
)

// TestLookPath checks the PATH search in the process's environment and the
// classification of what is not found or not executable.
func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b, filepath.Join(a, "prog-dir")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write("a/prog", 0o644) // not executable: skipped for b's
	bProg := write("b/prog", 0o755)
	write("a/noexec", 0o644)

	tests := []struct {
		name, argv0 string
		env         []string
		want        string
		is          func(error) bool
	}{
		{"first executable in PATH", "prog", []string{"PATH=" + a + ":" + b}, bProg, nil},
		{"first PATH wins", "prog", []string{"PATH=" + b, "PATH=" + a}, bProg, nil},
		{"slash: used as is", bProg, nil, bProg, nil},
		{"not in PATH", "nope", []string{"PATH=" + a + ":" + b}, "", errdefs.IsNotFound},
		{"missing path", filepath.Join(a, "nope"), nil, "", errdefs.IsNotFound},
		{"directory only", "prog-dir", []string{"PATH=" + a}, "", errdefs.IsPermissionDenied},
		{"not executable", "noexec", []string{"PATH=" + a}, "", errdefs.IsPermissionDenied},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := lookPath(tt.argv0, tt.env)
			if tt.is == nil {
				if err != nil || got != tt.want {
					t.Errorf("got %q, %v, want %q", got, err, tt.want)
				}
				return
			}
			if err == nil || !tt.is(err) {
				t.Errorf("got %q, %v, want a classified error", got, err)
			}
			if !strings.Contains(err.Error(), `exec: "`+tt.argv0+`"`) {
				t.Errorf("error %q does not name %q", err, tt.argv0)
			}
		})
	}
	_, err := lookPath("nope", []string{"PATH=" + a})
	if want := `exec: "nope": executable file not found in $PATH`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

// TestWithHome checks that HOME is added only when absent, without
// touching the caller's slice.
func TestWithHome(t *testing.T) {
	env := make([]string, 1, 4)
	env[0] = "A=1"
	got := withHome(env, "/home/u")
	if want := []string{"A=1", "HOME=/home/u"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	if env[:2][1] != "" {
		t.Error("withHome wrote into the caller's backing array")
	}
	env = []string{"HOME=/x", "B=2"}
	if got := withHome(env, "/home/u"); !reflect.DeepEqual(got, env) {
		t.Errorf("got %v, want %v", got, env)
	}
}

// TestOpenUserFile checks that an absent file is not an error and that a
// FIFO is refused instead of blocking.
func TestOpenUserFile(t *testing.T) {
	dir := t.TempDir()
	if f, err := openUserFile(filepath.Join(dir, "passwd")); f != nil || err != nil {
		t.Errorf("absent: got %v, %v", f, err)
	}
	fifo := filepath.Join(dir, "group")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	if f, err := openUserFile(fifo); f != nil || !errdefs.IsInvalidArgument(err) {
		t.Errorf("fifo: got %v, %v, want an invalid argument", f, err)
	}
	file := filepath.Join(dir, "passwd")
	if err := os.WriteFile(file, []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := openUserFile(file)
	if err != nil || f == nil {
		t.Fatalf("regular: got %v, %v", f, err)
	}
	f.Close()
}
