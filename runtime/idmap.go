package runtime

// Idmapped mounts (mounts' uidMappings/gidMappings, "idmap", "ridmap").
//
// The daemon makes them, before the init stage exists: for each mapping it
// forks a helper into a new user namespace with that mapping (the same
// sealed binary; its constructor only waits, nsenter.c), takes the
// namespace's file, and lets the helper go; then it clones the source's
// mount with open_tree(OPEN_TREE_CLONE) and idmaps the clone with
// mount_setattr(MOUNT_ATTR_IDMAP) (rootfs.IDMappedTree). The detached
// clones reach the init stage as inherited descriptors, and rootfs moves
// each onto its destination with move_mount.

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"syscall"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"

	"github.com/boxrt/containerd-shim-box-v1/oci"
	"github.com/boxrt/containerd-shim-box-v1/runtime/rootfs"
)

// usernsHoldEnv makes the constructor wait for EOF on the given descriptor
// and exit (nsenter.c): the helper that holds an idmapped mount's user
// namespace while the daemon opens it.
const usernsHoldEnv = "_BOX_USERNS_HOLD"

// idmappedMounts makes a detached idmapped mount for every idmapped mount
// of cfg.Plan, keyed by mount index. The caller closes them.
func idmappedMounts(cfg CreateConfig, exe string) (_ map[int]*os.File, retErr error) {
	trees := map[int]*os.File{}
	defer func() {
		if retErr != nil {
			for _, f := range trees {
				f.Close()
			}
		}
	}()
	usernss := map[string]*os.File{} // by mapping
	defer func() {
		for _, f := range usernss {
			f.Close()
		}
	}()
	for i, m := range cfg.Plan.Mounts {
		if m.IDMap == nil {
			continue
		}
		key := fmt.Sprint(m.IDMap.ContainerUserNS, m.IDMap.UIDMappings, m.IDMap.GIDMappings)
		userns := usernss[key]
		if userns == nil {
			var err error
			if userns, err = mappingUserNS(cfg, exe, m.IDMap); err != nil {
				return nil, fmt.Errorf("mounts[%d]: %w", i, err)
			}
			usernss[key] = userns
		}
		tree, err := rootfs.IDMappedTree(m, userns)
		if err != nil {
			return nil, fmt.Errorf("mounts[%d]: %w", i, err)
		}
		trees[i] = tree
	}
	return trees, nil
}

// mappingUserNS returns the user namespace of an idmapped mount: the
// container's joined one, or a new one with the mapping's id maps.
func mappingUserNS(cfg CreateConfig, exe string, im *oci.IDMap) (*os.File, error) {
	if im.ContainerUserNS {
		for _, j := range cfg.Plan.Join {
			if j.Type == specs.UserNamespace {
				return openNamespace(j)
			}
		}
		return nil, errors.New("idmap: the container joins no user namespace")
	}
	r, w, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	defer w.Close() // lets the helper exit
	pidfd := -1
	sys := &syscall.SysProcAttr{
		Cloneflags:  unix.CLONE_NEWUSER,
		UidMappings: sysIDMap(im.UIDMappings),
		GidMappings: sysIDMap(im.GIDMappings),
		PidFD:       &pidfd,
	}
	// The helper's exit is collected (and ignored) by the Monitor.
	res := forkStage(cfg.Monitor, exe, "init", []uintptr{nullFile.Fd(), nullFile.Fd(), nullFile.Fd(), r.Fd()}, sys,
		[]string{fmt.Sprintf("%s=%d", usernsHoldEnv, syncFD)})
	if res.err != nil {
		return nil, fmt.Errorf("start the user namespace helper of an idmapped mount: %w", res.err)
	}
	defer unix.Close(pidfd)
	ns, err := os.Open(fmt.Sprintf("/proc/%d/ns/user", res.pid))
	if err != nil {
		return nil, fmt.Errorf("open the user namespace of an idmapped mount: %w", err)
	}
	// The helper waits for EOF, so the pid was its unless it died and was
	// reaped meanwhile; its pidfd tells.
	if err := unix.PidfdSendSignal(pidfd, 0, nil, 0); err != nil {
		ns.Close()
		return nil, fmt.Errorf("the user namespace helper of an idmapped mount exited: %w", err)
	}
	return ns, nil
}

func sysIDMap(maps []specs.LinuxIDMapping) []syscall.SysProcIDMap {
	out := make([]syscall.SysProcIDMap, 0, len(maps))
	for _, m := range maps {
		out = append(out, syscall.SysProcIDMap{ContainerID: int(m.ContainerID), HostID: int(m.HostID), Size: int(m.Size)})
	}
	return out
}

// stageFiles orders the detached mounts as the init stage's descriptors
// from 4 on (after the sync socket) and says which descriptor is whose.
func stageFiles(trees map[int]*os.File) ([]*os.File, map[int]int) {
	if len(trees) == 0 {
		return nil, nil
	}
	idx := slices.Sorted(maps.Keys(trees))
	files := make([]*os.File, 0, len(idx))
	fds := make(map[int]int, len(idx))
	for k, i := range idx {
		files = append(files, trees[i])
		fds[i] = syncFD + 1 + k
	}
	return files, fds
}

// attachIDMapped gives each idmapped mount of p its detached mount, fds
// as the daemon passed them (stageConfig.IDMapFDs). Run by the init stage.
func attachIDMapped(p *oci.Plan, fds map[int]int) error {
	for i, m := range p.Mounts {
		fd, ok := fds[i]
		if (m.IDMap != nil) != ok || (ok && fd <= syncFD) {
			return fmt.Errorf("mounts[%d]: idmapped mount descriptor %d missing or unexpected", i, fd)
		}
		if ok {
			p.Mounts[i].Detached = os.NewFile(uintptr(fd), "idmapped "+m.Destination)
		}
	}
	return nil
}
