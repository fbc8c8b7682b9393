// The exec stage's namespace join, run by a constructor before the Go
// runtime starts (see nsenter.go for why it must be C).
//
// Contract with the daemon (runtime/exec.go):
//   argv[1] == "exec" and _BOX_NSENTER="<syncfd>,<pidfd>,<flags>[,keep-dumpable]"
//     syncfd  the stage's end of the SOCK_SEQPACKET sync socket
//     pidfd   a pidfd of the container's init process
//     flags   CLONE_NEW* bits (hex) of the init's namespaces that differ from
//             ours; 0 joins nothing. The pid namespace is never among them:
//             the daemon forked us into it already.
//     keep-dumpable  test hook: skip PR_SET_DUMPABLE (negative control)
// On failure a JSON error datagram goes to syncfd and the process exits 120.
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define ENV_NAME "_BOX_NSENTER"
#define EXIT_NSENTER 120

// Read by nsenter.go: 1 once the namespaces were joined.
int box_nsenter_ran;

// fail reports what went wrong over the sync socket and exits. The message
// is built from fixed strings and strerror, so it needs no JSON escaping
// beyond what strerror texts never contain.
static void fail(int syncfd, const char *what, int err) {
	char buf[512];
	int n = snprintf(buf, sizeof buf,
		"{\"type\":\"error\",\"error\":\"nsenter: %s: %s\",\"kind\":\"%s\"}",
		what, err ? strerror(err) : "invalid", err == ESRCH ? "failed-precondition" : "");
	if (syncfd >= 0 && n > 0 && n < (int)sizeof buf)
		(void)send(syncfd, buf, (size_t)n, MSG_NOSIGNAL);
	else
		fprintf(stderr, "containerd-shim-box-v1 exec: nsenter: %s: %s\n", what, strerror(err));
	_exit(EXIT_NSENTER);
}

// parse_int reads a non-negative number in base from *s up to the next ','
// or the end, and advances *s past the separator. Anything else fails.
static int parse_int(const char **s, int base, long *out) {
	char *end;
	if (!(base == 16 ? isxdigit((unsigned char)**s) : isdigit((unsigned char)**s)))
		return -1;
	errno = 0;
	long v = strtol(*s, &end, base);
	if (errno || v < 0 || end == *s || (*end != ',' && *end != '\0'))
		return -1;
	*out = v;
	*s = *end ? end + 1 : end;
	return 0;
}

// The namespaces a pidfd setns(2) may join, besides CLONE_NEWPID.
#define JOINABLE (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | \
	CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWTIME)

// glibc passes argc and argv to constructors.
__attribute__((constructor)) static void box_nsenter(int argc, char **argv) {
	const char *spec = getenv(ENV_NAME);
	if (!spec || argc < 2 || strcmp(argv[1], "exec") != 0)
		return;
	long syncfd = -1, pidfd = -1, flags = -1;
	const char *s = spec;
	int bad = parse_int(&s, 10, &syncfd) || parse_int(&s, 10, &pidfd);
	if (!bad && strncmp(s, "0x", 2) == 0) {
		s += 2;
		bad = parse_int(&s, 16, &flags);
	} else {
		bad = 1;
	}
	int keep_dumpable = !bad && strcmp(s, "keep-dumpable") == 0;
	if (bad || (*s && !keep_dumpable) || syncfd < 3 || pidfd < 3 || syncfd == pidfd ||
	    (flags & ~(long)JOINABLE))
		fail(-1, "malformed " ENV_NAME, EINVAL);

	// First, before anything else: nothing in the container may ptrace us
	// or open our /proc/<pid>/{mem,fd,exe} (CVE-2016-9962). execve resets
	// it for the container's process.
	if (!keep_dumpable && prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail((int)syncfd, "prctl(PR_SET_DUMPABLE)", errno);

	// One call joins every namespace at once (kernel >= 5.8); the kernel
	// orders user before the others. We are single-threaded here, which
	// user, mnt and time namespaces require. Joining mnt sets our root and
	// cwd to the container's root.
	if (flags && setns((int)pidfd, (int)flags) < 0)
		fail((int)syncfd, "setns(init pidfd)", errno);
	// In a joined user namespace we arrive as the overflow uid; become its
	// root, which the process spec's user is applied from.
	if ((flags & CLONE_NEWUSER) && (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0))
		fail((int)syncfd, "become root in the container's user namespace", errno);
	close((int)pidfd);
	unsetenv(ENV_NAME);
	box_nsenter_ran = 1;
}
