package integration

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/integration/harness"
)

// TestPodUserNamespaceJoin runs, through containerd, a container that joins
// the user and network namespaces of a pause process by path (a Kubernetes
// pod with hostUsers: false) on a snapshot remapped to the pod's ids, with a
// time offset and an idmapped bind mount of a host directory owned by uid
// 1000: inside it is root of the pod's user namespace, in the pause's
// network namespace, sees a day more of uptime, the directory as 0:0, and a
// file it makes lands as 1000:1000 on the host.
func TestPodUserNamespaceJoin(t *testing.T) {
	c := startBox(t)
	const hostID = 200000
	pause := exec.Command("/bin/sleep", "1000")
	pause.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER | unix.CLONE_NEWNET,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 65536}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: hostID, Size: 65536}},
	}
	if err := pause.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pause.Process.Kill(); pause.Wait() })
	nsPath := func(n string) string { return fmt.Sprintf("/proc/%d/ns/%s", pause.Process.Pid, n) }

	data := t.TempDir()
	for _, p := range []string{filepath.Dir(data), data} {
		os.Chmod(p, 0o755)
	}
	if err := os.Chown(data, 1000, 1000); err != nil {
		t.Fatal(err)
	}
	podMap := []specs.LinuxIDMapping{{ContainerID: 0, HostID: hostID, Size: 65536}}
	// On disk 1000 <-> the pod's root (host hostID).
	idmap := []specs.LinuxIDMapping{{ContainerID: 1000, HostID: hostID, Size: 1}}

	ctx := c.Context(t)
	img, err := c.Client.GetImage(ctx, c.Busybox(t))
	if err != nil {
		t.Fatal(err)
	}
	id := harness.RandID(t, "podns")
	script := `echo ==USER==; readlink /proc/self/ns/user; echo ==NET==; readlink /proc/self/ns/net;` +
		` echo ==UID==; id -u; echo ==UPTIME==; cut -d. -f1 /proc/uptime; echo ==DATA==; stat -c %u:%g /data;` +
		` echo x > /data/made`
	ctr, err := c.Client.NewContainer(ctx, id,
		client.WithImage(img),
		client.WithRemappedSnapshot(id+"-snap", img, hostID, hostID),
		client.WithRuntime(harness.RuntimeBox, nil),
		client.WithNewSpec(oci.WithImageConfig(img), oci.WithProcessArgs("sh", "-c", script), c.WithCgroup(id),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UserNamespace, Path: nsPath("user")}),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: nsPath("net")}),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.TimeNamespace}),
			// As CRI does: the joined namespace's maps too, from which
			// containerd gives the pod's root its bundle directory.
			oci.WithUserNamespace(podMap, podMap),
			oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.UserNamespace, Path: nsPath("user")}),
			func(_ context.Context, _ oci.Client, _ *containers.Container, s *specs.Spec) error {
				s.Linux.TimeOffsets = map[string]specs.LinuxTimeOffset{"boottime": {Secs: 86400}}
				s.Mounts = append(s.Mounts, specs.Mount{Destination: "/data", Type: "bind", Source: data,
					Options: []string{"rbind", "idmap"}, UIDMappings: idmap, GIDMappings: idmap})
				return nil
			}),
	)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteContainer(t, ctx, ctr) })
	// The pod's root (host uid 200000) walks to the bundle, as containerd's
	// /run/containerd (0711) allows; the harness's run dir is private.
	if err := os.Chmod(filepath.Dir(c.State), 0o711); err != nil {
		t.Fatal(err)
	}
	r := runToExit(t, c, ctr)
	if r.code != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	s := sections(r.stdout)
	for n, want := range map[string]string{"USER": nsLink(t, nsPath("user")), "NET": nsLink(t, nsPath("net")), "UID": "0", "DATA": "0:0"} {
		if got := strings.TrimSpace(s[n]); got != want {
			t.Errorf("%s inside = %q, want %q", n, got, want)
		}
	}
	var up int
	fmt.Sscan(strings.TrimSpace(s["UPTIME"]), &up)
	if up < 86400 {
		t.Errorf("uptime inside %d s, want at least a day (boottime offset)", up)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(data, "made"), &st); err != nil || st.Uid != 1000 || st.Gid != 1000 {
		t.Errorf("file made inside: %v, owner %d:%d; want 1000:1000", err, st.Uid, st.Gid)
	}
}

func nsLink(t *testing.T, path string) string {
	t.Helper()
	s, err := os.Readlink(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
