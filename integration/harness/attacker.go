package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// EnvAttacker names a prebuilt attacker binary (the cgroup v2 VM has no compiler:
// hack/vm/build.sh builds it); without it, Attacker compiles AttackerSource with gcc.
const EnvAttacker = "BOX_ATTACKER"

// AttackerSource is the attack tests' abuser, static C so that it runs in the busybox image and
// attacks at full speed also in the TCG VM (a shell loop forks per mkdir, and busybox ash
// rebuilds $PWD from ".." entries once the path passes PATH_MAX, which makes a shell dentry bomb
// quadratic). argv[1] selects the attack:
//
//	fork       the classic for (;;) fork(): every process, parent and children alike, forks
//	           forever and survives a failed fork (a shell fork bomb exits on its first EAGAIN
//	           and burns out, so it would not keep pressing on pids.max). The first failure of
//	           each process is reported on stderr with its errno string.
//	dentry     for (;;) { mkdir("x"); chdir("x"); }: every directory of the chain stays pinned
//	           (a child holds its parent, the cwd holds the deepest), so the kernel cannot
//	           reclaim the dentries and inodes. When mkdir or chdir fails it prints
//	           "bomb-stopped: <errno string>" and waits to be killed.
//	negdentry  stat()s "/<200 digits>" for ever larger numbers: names that do not exist, each
//	           leaving negative dentries with externally allocated names.
//
// "started" on stdout says the attack began.
const AttackerSource = `#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void say(int fd, const char *a, const char *b)
{
	write(fd, a, strlen(a));
	if (b)
		write(fd, b, strlen(b));
	write(fd, "\n", 1);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	if (strcmp(mode, "fork") == 0) {
		int told = 0;
		say(1, "started", NULL);
		for (;;) {
			if (fork() < 0 && !told) {
				say(2, "fork: ", strerror(errno));
				told = 1;
			}
		}
	}
	if (strcmp(mode, "dentry") == 0) {
		say(1, "started", NULL);
		for (;;) {
			if (mkdir("x", 0700) < 0 || chdir("x") < 0) {
				say(1, "bomb-stopped: ", strerror(errno));
				for (;;)
					pause();
			}
		}
	}
	if (strcmp(mode, "negdentry") == 0) {
		char name[256];
		struct stat st;
		say(1, "started", NULL);
		for (unsigned long i = 0;; i++) {
			snprintf(name, sizeof name, "/%0200lu", i);
			stat(name, &st);
		}
	}
	say(2, "usage: attacker fork|dentry|negdentry", NULL);
	return 2;
}
`

// Attacker returns the path of the static attacker binary (AttackerSource), from
// $BOX_ATTACKER or compiled into a temporary directory of the test.
func Attacker(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvAttacker); p != "" {
		mustExecutable(t, p)
		return p
	}
	bin := filepath.Join(t.TempDir(), "attacker")
	if err := BuildAttacker(bin); err != nil {
		t.Fatalf("build the attacker (gcc and static glibc: make deps): %v", err)
	}
	return bin
}

// BuildAttacker compiles AttackerSource with gcc into the static binary bin
// (integration/cmd/mkattacker runs it for hack/vm/build.sh).
func BuildAttacker(bin string) error {
	dir, err := os.MkdirTemp("", "attacker")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, "attacker.c")
	if err := os.WriteFile(src, []byte(AttackerSource), 0o644); err != nil {
		return err
	}
	if out, err := exec.Command("gcc", "-static", "-O2", "-o", bin, src).CombinedOutput(); err != nil {
		return fmt.Errorf("gcc: %v\n%s", err, out)
	}
	return nil
}
