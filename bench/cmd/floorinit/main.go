// Command floorinit is the container side of boxbench's floor microbenchmark: a minimal Go
// init stage. The parent (bench/internal/floor) clones it into new mount, pid, ipc and uts
// namespaces, puts it into a cgroup and writes one byte to fd 3; floorinit then makes the
// mounts private, binds the rootfs onto itself, mounts /proc, pivot_roots into it and execs
// argv[2:] (a static binary). It is deliberately small so that its Go runtime start is the
// floor, not a big binary's package init.
package main

import (
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

func main() {
	runtime.LockOSThread()
	if len(os.Args) < 3 {
		fail("usage: floorinit ROOTFS PROG [ARGS...]")
	}
	rootfs := os.Args[1]
	var b [1]byte
	if n, err := unix.Read(3, b[:]); n != 1 || err != nil {
		fail(fmt.Sprintf("sync read: %d %v", n, err))
	}
	unix.Close(3)
	must("make / private", unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	must("bind rootfs", unix.Mount(rootfs, rootfs, "", unix.MS_BIND|unix.MS_REC, ""))
	must("mount proc", unix.Mount("proc", rootfs+"/proc", "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""))
	must("chdir rootfs", unix.Chdir(rootfs))
	must("pivot_root", unix.PivotRoot(".", "."))
	must("umount old root", unix.Unmount(".", unix.MNT_DETACH))
	must("chdir /", unix.Chdir("/"))
	must("exec", unix.Exec(os.Args[2], os.Args[2:], []string{"PATH=/bin"}))
}

func must(what string, err error) {
	if err != nil {
		fail(what + ": " + err.Error())
	}
}

func fail(msg string) {
	fmt.Fprintln(os.Stderr, "floorinit:", msg)
	os.Exit(1)
}
