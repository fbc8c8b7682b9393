// Namespace joins that must happen before the Go runtime starts (see
// nsenter.go for why they must be C). Two modes, chosen by environment:
//
// Join a running container's namespaces (the exec stage):
//   argv[1] is "exec", and
//   _BOX_NSENTER="<syncfd>,<pidfd>,<flags>[,keep-dumpable]"
//     syncfd  the stage's end of the SOCK_SEQPACKET sync socket
//     pidfd   a pidfd of the container's init process
//     flags   CLONE_NEW* bits (hex) of the init's namespaces that differ
//             from ours; 0 joins nothing. The pid namespace is never among
//             them: the daemon forked us into it already.
//     keep-dumpable  test hook: skip PR_SET_DUMPABLE (negative control)
//
// User namespace helper of an idmapped mount: argv[1] is "init", and
//   _BOX_USERNS_HOLD="<fd>": wait for EOF on fd, then exit 0.
//
// Holder: the init stage of a container that joins a user, mount or time
// namespace by path first runs as a holder that builds the namespaces
// and forks the init stage into them (runtime/namespaces.go drives it).
//   argv[1] is "init", and
//   _BOX_NSHOLD="<syncfd>,<unshare flags>[,<fd>:<flag>]..."
//     syncfd  the holder's own sync socket (the init stage's is fd 3)
//     each <fd>:<flag> is an open namespace file and its CLONE_NEW* type
//     (hex); unshare flags (hex) are the namespaces to create afterwards.
//   Exchange on syncfd (one datagram each; the daemon's are JSON that the
//   holder does not parse):
//     daemon -> holder  go on (the holder is in the container's cgroup)
//     holder            joins: every namespace but user (EPERM deferred),
//                       then user, becoming its root, then the deferred
//     holder -> daemon  {"type":"userns"} if it unshared a user namespace
//     daemon -> holder  go on (the id maps are written)
//     holder            becomes root of it, unshares the other namespaces
//                       (pid and time apply to its children)
//     holder -> daemon  {"type":"ready"}
//     daemon -> holder  go on (the time offsets are written)
//     holder            forks: the child, pid 1 of a new pid namespace,
//                       closes syncfd, becomes a session leader and goes on
//                       to the Go init stage with every other descriptor
//     holder -> daemon  {"type":"ready","pid":<child's pid>}
//     daemon            takes a pidfd of the child, closes syncfd
//     holder            sees EOF and exits 0; the child is reparented to
//                       the daemon (a child subreaper)
//
// Join the container's cgroup (on cgroup v1: the init stage started directly,
// and the exec stage, which does it before joining any namespace):
//   argv[1] is "init" or "exec", and
//   _BOX_CGROUP_TASKS="<fd>[,<fd>]..."
//     each fd an open "tasks" file of the container's cgroup, one per
//     hierarchy. The process is still single-threaded here, so writing "0"
//     to each moves all of it, without the global lock that moving another
//     process takes (runtime/cgroup.SelfJoiner). The fds are closed after.
//     Nothing else happens before: the Go runtime and everything the stage
//     does are accounted to the container.
//
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
#define HOLD_ENV "_BOX_NSHOLD"
#define USERNS_HOLD_ENV "_BOX_USERNS_HOLD"
#define CGROUP_TASKS_ENV "_BOX_CGROUP_TASKS"
#define STAGE_SYNC_FD 3
#define EXIT_NSENTER 120
#define MAX_JOINS 8

// Read by nsenter.go: 1 once the namespaces were joined.
int box_nsenter_ran;

// errno_kind is the errdefs class (runtime/sync.go kinds) of a failure.
static const char *errno_kind(int err) {
	switch (err) {
	case ESRCH:
		return "failed-precondition";
	case EINVAL:
		return "invalid-argument";
	case EPERM:
	case EACCES:
		return "permission-denied";
	}
	return "";
}

// fail reports what went wrong over the sync socket and exits. The message
// is built from fixed strings and strerror, so it needs no JSON escaping
// beyond what strerror texts never contain.
static void fail(int syncfd, const char *what, int err) {
	char buf[512];
	int n = snprintf(buf, sizeof buf,
		"{\"type\":\"error\",\"error\":\"nsenter: %s: %s\",\"kind\":\"%s\"}",
		what, err ? strerror(err) : "invalid", errno_kind(err));
	if (syncfd < 0 || n <= 0 || n >= (int)sizeof buf || send(syncfd, buf, (size_t)n, MSG_NOSIGNAL) < 0)
		fprintf(stderr, "containerd-shim-box-v1: nsenter: %s: %s\n", what, strerror(err));
	_exit(EXIT_NSENTER);
}

// parse_int reads a non-negative number in base from *s up to the next sep,
// ',' or the end, and advances *s past the separator. Anything else fails.
static int parse_int_sep(const char **s, int base, char sep, long *out) {
	char *end;
	if (!(base == 16 ? isxdigit((unsigned char)**s) : isdigit((unsigned char)**s)))
		return -1;
	errno = 0;
	long v = strtol(*s, &end, base);
	if (errno || v < 0 || end == *s || (*end != ',' && *end != sep && *end != '\0'))
		return -1;
	*out = v;
	*s = *end ? end + 1 : end;
	return 0;
}

static int parse_int(const char **s, int base, long *out) { return parse_int_sep(s, base, ',', out); }

// parse_hex reads "0x<hex>".
static int parse_hex(const char **s, char sep, long *out) {
	if (strncmp(*s, "0x", 2) != 0)
		return -1;
	*s += 2;
	return parse_int_sep(s, 16, sep, out);
}

// The namespaces a pidfd setns(2) may join, besides CLONE_NEWPID.
#define JOINABLE (CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | \
	CLONE_NEWUTS | CLONE_NEWCGROUP | CLONE_NEWTIME)
#define ALL_NS (JOINABLE | CLONE_NEWPID)

// become_root makes us uid and gid 0 of the user namespace we are in. In a
// joined or new user namespace we arrive as the overflow ids; the process
// spec's user is applied from root.
static void become_root(int syncfd) {
	if (setresgid(0, 0, 0) < 0 || setresuid(0, 0, 0) < 0)
		fail(syncfd, "become root in the container's user namespace", errno);
}

// send_msg sends one fixed datagram.
static void send_msg(int syncfd, const char *msg) {
	if (send(syncfd, msg, strlen(msg), MSG_NOSIGNAL) < 0)
		fail(syncfd, "write sync socket", errno);
}

// wait_msg blocks for one datagram from the daemon; EOF means it gave up
// on us, and we leave quietly.
static void wait_msg(int syncfd) {
	char buf[256];
	ssize_t n;
	do
		n = recv(syncfd, buf, sizeof buf, MSG_TRUNC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		fail(syncfd, "read sync socket", errno);
	if (n == 0)
		_exit(0);
}

// join_mode is the exec stage's join of a container's namespaces.
static void join_mode(const char *spec) {
	long syncfd = -1, pidfd = -1, flags = -1;
	const char *s = spec;
	int bad = parse_int(&s, 10, &syncfd) || parse_int(&s, 10, &pidfd) || parse_hex(&s, ',', &flags);
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
	if (flags & CLONE_NEWUSER)
		become_root((int)syncfd);
	close((int)pidfd);
	unsetenv(ENV_NAME);
	box_nsenter_ran = 1;
}

struct join {
	long fd, flag;
};

// join_all joins js in runc's order: every namespace but user first, so
// those owned by an ancestor of the user namespace are still permitted;
// then user; then, with the user namespace's capabilities, those that were
// refused before it.
static void join_all(int syncfd, struct join *js, int n) {
	int deferred[MAX_JOINS], nd = 0;
	for (int i = 0; i < n; i++) {
		if (js[i].flag == CLONE_NEWUSER)
			continue;
		if (setns((int)js[i].fd, (int)js[i].flag) < 0) {
			if (errno != EPERM)
				fail(syncfd, "setns(namespace by path)", errno);
			deferred[nd++] = i;
		}
	}
	for (int i = 0; i < n; i++) {
		if (js[i].flag != CLONE_NEWUSER)
			continue;
		if (setns((int)js[i].fd, CLONE_NEWUSER) < 0)
			fail(syncfd, "setns(user namespace by path)", errno);
		become_root(syncfd);
	}
	for (int i = 0; i < nd; i++)
		if (setns((int)js[deferred[i]].fd, (int)js[deferred[i]].flag) < 0)
			fail(syncfd, "setns(namespace by path)", errno);
	for (int i = 0; i < n; i++)
		close((int)js[i].fd);
}

// hold_mode builds the namespaces and forks the init stage into them. It
// returns only in the child.
static void hold_mode(const char *spec) {
	long syncfd = -1, unshare_flags = -1;
	struct join js[MAX_JOINS];
	int n = 0;
	const char *s = spec;
	size_t len = strlen(spec);
	int bad = (len && spec[len - 1] == ',') || parse_int(&s, 10, &syncfd) || syncfd < 3 ||
		parse_hex(&s, ',', &unshare_flags) || (unshare_flags & ~(long)ALL_NS);
	while (!bad && *s) {
		if (n == MAX_JOINS) {
			bad = 1;
			break;
		}
		bad = parse_int_sep(&s, 10, ':', &js[n].fd) || js[n].fd < 3 || js[n].fd == syncfd ||
			parse_hex(&s, ',', &js[n].flag) || __builtin_popcountl(js[n].flag) != 1 ||
			(js[n].flag & ~(long)ALL_NS) || (js[n].flag & unshare_flags);
		n++;
	}
	if (bad)
		fail(-1, "malformed " HOLD_ENV, EINVAL);
	int sfd = (int)syncfd;
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail(sfd, "prctl(PR_SET_DUMPABLE)", errno);
	// Drop the daemon's supplementary groups while that is still allowed:
	// a joined user namespace may deny setgroups(2), and the container
	// must not keep host groups it could not shed (setgroups(2)).
	if (setgroups(0, NULL) < 0)
		fail(sfd, "setgroups", errno);

	wait_msg(sfd);
	join_all(sfd, js, n);
	if (unshare_flags & CLONE_NEWUSER) {
		if (unshare(CLONE_NEWUSER) < 0)
			fail(sfd, "unshare(user namespace)", errno);
		send_msg(sfd, "{\"type\":\"userns\"}");
		wait_msg(sfd);
		become_root(sfd);
	}
	if ((unshare_flags & ~CLONE_NEWUSER) && unshare((int)(unshare_flags & ~CLONE_NEWUSER)) < 0)
		fail(sfd, "unshare(new namespaces)", errno);
	send_msg(sfd, "{\"type\":\"ready\"}");
	wait_msg(sfd);

	pid_t pid = fork();
	if (pid < 0)
		fail(sfd, "fork the init stage", errno);
	if (pid == 0) {
		close(sfd);
		// As the daemon's direct children are: the init stage takes a
		// terminal as its controlling one.
		if (setsid() < 0)
			_exit(EXIT_NSENTER);
		unsetenv(HOLD_ENV);
		box_nsenter_ran = 1;
		return;
	}
	char buf[64];
	snprintf(buf, sizeof buf, "{\"type\":\"ready\",\"pid\":%d}", (int)pid);
	send_msg(sfd, buf);
	for (;;)
		wait_msg(sfd);
}

// userns_hold_mode keeps a user namespace made for an idmapped mount
// (runtime/idmap.go) until the daemon has opened it: it waits for EOF on
// the given descriptor and exits.
static void userns_hold_mode(const char *spec) {
	long fd = -1;
	const char *s = spec;
	if (strchr(spec, ',') || parse_int(&s, 10, &fd) || fd < 3 || *s)
		fail(-1, "malformed " USERNS_HOLD_ENV, EINVAL);
	(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	char c;
	for (;;) {
		ssize_t n = read((int)fd, &c, 1);
		if (n == 0 || (n < 0 && errno != EINTR))
			_exit(0);
	}
}

// glibc passes argc and argv to constructors.
// join_cgroup writes "0" to each tasks file listed in list (CGROUP_TASKS_ENV),
// all of which are parsed first: a malformed list joins nothing.
static void join_cgroup(const char *list) {
	int fds[64];
	size_t n = 0, len = strlen(list);
	const char *s = list;
	if (len == 0 || list[len - 1] == ',')
		fail(STAGE_SYNC_FD, "malformed " CGROUP_TASKS_ENV, 0);
	while (*s) {
		long fd;
		// 0-2 are stdio and 3 the sync socket.
		if (n == sizeof(fds) / sizeof(fds[0]) || parse_int(&s, 10, &fd) < 0 || fd <= STAGE_SYNC_FD || fd > 65535)
			fail(STAGE_SYNC_FD, "malformed " CGROUP_TASKS_ENV, 0);
		fds[n++] = (int)fd;
	}
	for (size_t i = 0; i < n; i++) {
		if (write(fds[i], "0", 1) != 1)
			fail(STAGE_SYNC_FD, "join the container's cgroup", errno);
		close(fds[i]);
	}
}

__attribute__((constructor)) static void box_nsenter(int argc, char **argv) {
	if (argc < 2)
		return;
	int exec = strcmp(argv[1], "exec") == 0, init = strcmp(argv[1], "init") == 0;
	if (!exec && !init)
		return;
	const char *userns_hold = getenv(USERNS_HOLD_ENV);
	if (init && userns_hold)
		userns_hold_mode(userns_hold);
	const char *hold = getenv(HOLD_ENV);
	if (init && hold) {
		hold_mode(hold);
		return;
	}
	const char *tasks = getenv(CGROUP_TASKS_ENV);
	if (tasks)
		join_cgroup(tasks);
	const char *spec = getenv(ENV_NAME);
	if (exec && spec)
		join_mode(spec);
}
