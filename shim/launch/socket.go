package launch

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// socketAddress is the daemon address for a group: a socket under root
// named by a hash of containerd's address, the namespace and the group, so
// two containerds never share a daemon. The runtime's name is hashed too:
// containerd's shim library hashes the same three values, and the runc
// shim honours the same group annotation, so without it a box container
// and a runc container of one group would be handed each other's daemon.
func socketAddress(root, containerdAddress, namespace, group string) string {
	d := sha256.Sum256([]byte(filepath.Join(containerdAddress, namespace, group) + "\x00" + Name))
	return fmt.Sprintf("unix://%s/%x", root, d)
}

// socketPath is the file of a unix:// address. Anything else (an abstract
// socket) is refused: box's daemons listen on paths only (CVE-2020-15257).
func socketPath(address string) (string, error) {
	p, ok := strings.CutPrefix(address, "unix://")
	if !ok || !filepath.IsAbs(p) {
		return "", fmt.Errorf("daemon address %q is not a unix:// path", address)
	}
	return p, nil
}

// newSocket listens on the address's path. The directory is 0700 and the
// socket 0600: only root reaches the daemon.
func newSocket(address string) (*net.UnixListener, error) {
	path, err := socketPath(address)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("chmod %s: %w", path, err)
	}
	return l, nil
}

// removeSocket removes the address's socket file.
func removeSocket(address string) error {
	path, err := socketPath(address)
	if err != nil {
		return err
	}
	return os.Remove(path)
}

// canConnect reports whether a daemon accepts connections on address.
func canConnect(address string) bool {
	path, err := socketPath(address)
	if err != nil {
		return false
	}
	c, err := net.DialTimeout("unix", path, 100*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

func isAddrInUse(err error) bool { return errors.Is(err, syscall.EADDRINUSE) }

// adjustOOMScore gives pid the OOM score of this process's parent
// (containerd) plus one, so the kernel picks the daemon before containerd.
func adjustOOMScore(pid int) error {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/oom_score_adj", os.Getppid()))
	if err != nil {
		return fmt.Errorf("read containerd's oom_score_adj: %w", err)
	}
	score, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("containerd's oom_score_adj %q: %w", b, err)
	}
	if score < 1000 {
		score++
	}
	err = os.WriteFile(fmt.Sprintf("/proc/%d/oom_score_adj", pid), []byte(strconv.Itoa(score)), 0)
	if os.IsPermission(err) {
		return nil // unprivileged (e.g. in a user namespace): keep the inherited score
	}
	return err
}
