//go:build linux && cgo

package deleted

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var response = []byte{0x08, 0x2a, 0x10, 0x89, 0x01, 0x1a, 0x06, 0x08, 0x80, 0xa3, 0xc3, 0xd5, 0x06}

// TestRecordRoundTrip checks that Read and the constructor both answer a
// record for its id only, and Remove takes it away.
func TestRecordRoundTrip(t *testing.T) {
	bundle := t.TempDir()
	if _, ok := Read(bundle, "c1"); ok {
		t.Fatal("Read found a record in an empty bundle")
	}
	if err := Write(bundle, "c1", response); err != nil {
		t.Fatal(err)
	}
	if got, ok := Read(bundle, "c1"); !ok || !bytes.Equal(got, response) {
		t.Errorf("Read = %x, %v; want %x", got, ok, response)
	}
	for _, id := range []string{"c", "c12", "C1", ""} {
		if _, ok := Read(bundle, id); ok {
			t.Errorf("Read answered for id %q a record of c1", id)
		}
	}
	if err := Remove(bundle); err != nil {
		t.Fatal(err)
	}
	if _, ok := Read(bundle, "c1"); ok {
		t.Error("Read found the record after Remove")
	}
	if err := Remove(bundle); err != nil {
		t.Errorf("Remove without a record: %v", err)
	}
}

// TestWriteBounds checks that Write refuses records the constructor would
// not read.
func TestWriteBounds(t *testing.T) {
	bundle := t.TempDir()
	for _, tc := range []struct {
		id   string
		resp []byte
	}{{"", response}, {strings.Repeat("x", 1025), response}, {"c1", make([]byte, maxResponse+1)}} {
		if err := Write(bundle, tc.id, tc.resp); err == nil {
			t.Errorf("Write(id of %d bytes, response of %d) succeeded", len(tc.id), len(tc.resp))
		}
	}
}

// TestConstructorAgreesWithRead checks the C reading of records against
// Read's.
func TestConstructorAgreesWithRead(t *testing.T) {
	good := append([]byte(Magic+" c1\n"), response...)
	for _, tc := range []struct {
		name   string
		record []byte
		id     string
	}{
		{"good", good, "c1"},
		{"empty response", []byte(Magic + " c1\n"), "c1"},
		{"other id", good, "c2"},
		{"id prefix", good, "c"},
		{"longer id", good, "c12"},
		{"no newline", []byte(Magic + " c1"), "c1"},
		{"bad magic", append([]byte("box-deleted-v2 c1\n"), response...), "c1"},
		{"empty", nil, "c1"},
		{"empty id", []byte(Magic + " \n"), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bundle := t.TempDir()
			if err := os.WriteFile(filepath.Join(bundle, File), tc.record, 0o600); err != nil {
				t.Fatal(err)
			}
			want, wantOK := Read(bundle, tc.id)
			got, ok := constructorResponse(tc.record, tc.id)
			if ok != wantOK || !bytes.Equal(got, want) {
				t.Errorf("constructor %x, %v; Read %x, %v", got, ok, want, wantOK)
			}
		})
	}
}

// TestConstructorAnswers runs the constructor for real: this test binary
// links it, so run as "<it> -id c1 -bundle <dir> delete" it prints the
// record's response and exits 0 before the Go runtime starts; without a
// record for c1 it returns and the test binary's own flag parsing refuses
// the arguments.
func TestConstructorAnswers(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	run := func(args ...string) ([]byte, error) {
		cmd := exec.Command(exe, args...)
		cmd.Dir = t.TempDir() // not the bundle: -bundle must be used
		return cmd.Output()
	}
	if _, err := run("-id", "c1", "-bundle", bundle, "delete"); err == nil {
		t.Fatal("without a record the constructor answered")
	}
	if err := Write(bundle, "c1", response); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"-id", "c1", "-bundle", bundle, "delete"},
		{"--id=c1", "--bundle=" + bundle, "-namespace", "ns", "delete"},
	} {
		out, err := run(args...)
		if err != nil || !bytes.Equal(out, response) {
			t.Errorf("%q: output %x, %v; want %x", args, out, err, response)
		}
	}
	// From the working directory when -bundle is not given (containerd
	// passes both).
	cmd := exec.Command(exe, "-id", "c1", "delete")
	cmd.Dir = bundle
	if out, err := cmd.Output(); err != nil || !bytes.Equal(out, response) {
		t.Errorf("in the bundle: output %x, %v; want %x", out, err, response)
	}
	var ee *exec.ExitError
	if _, err := run("-id", "c2", "-bundle", bundle, "delete"); !errors.As(err, &ee) {
		t.Errorf("another id: %v, want the test binary's flag error", err)
	}
}

// TestConstructorRemovesStaleSocket checks that the shortcut removes the
// daemon's socket when nothing listens on it, and keeps a live one.
func TestConstructorRemovesStaleSocket(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bundle := t.TempDir()
	if err := Write(bundle, "c1", response); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(filepath.Join(bundle, "address"), []byte("unix://"+sock), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := listenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(exe, "-id", "c1", "-bundle", bundle, "delete").Output(); err != nil || !bytes.Equal(out, response) {
		t.Fatalf("output %x, %v", out, err)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Errorf("a live socket was removed: %v", err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	if out, err := exec.Command(exe, "-id", "c1", "-bundle", bundle, "delete").Output(); err != nil || !bytes.Equal(out, response) {
		t.Fatalf("output %x, %v", out, err)
	}
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stale socket is still there: %v", err)
	}
}

func listenUnix(path string) (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}
