package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/containerd/errdefs"
)

// TestLoad checks decoding and the classification of missing and malformed
// files.
func TestLoad(t *testing.T) {
	dir := t.TempDir()
	if _, err := Load(dir); !errdefs.IsNotFound(err) || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("missing: got %v, want not found naming config.json", err)
	}

	path := filepath.Join(dir, "config.json")
	if err := os.WriteFile(path, []byte(`{"ociVersion": "1.2.0", "process": {"args": [`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), path) {
		t.Errorf("malformed: got %v, want invalid argument naming %s", err, path)
	}

	if err := os.WriteFile(path, []byte(`{"ociVersion": "1.2.0", "process": {"args": 7}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(dir); !errdefs.IsInvalidArgument(err) || !strings.Contains(err.Error(), "args") {
		t.Errorf("wrong type: got %v, want invalid argument naming args", err)
	}

	data, err := os.ReadFile("testdata/config/valid-default.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if s.Version != "1.2.0" || s.Process.Args[0] != "/bin/sh" || len(s.Linux.Namespaces) != 6 {
		t.Errorf("decoded: got %+v", s)
	}
	if _, err := NewPlan(s, dir); err != nil {
		t.Errorf("plan of the default spec: %v", err)
	}
}

// TestFieldError checks the message and the classification.
func TestFieldError(t *testing.T) {
	err := fieldErrorf("linux.namespaces[2].type", "unknown namespace type %q", "foo")
	if got, want := err.Error(), `linux.namespaces[2].type: unknown namespace type "foo"`; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if !errdefs.IsInvalidArgument(err) {
		t.Error("not an invalid argument")
	}
}
