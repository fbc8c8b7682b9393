// The prespawn constructor. containerd runs "containerd-shim-box-v1 start"
// and connects to the daemon start launches only after start has exited, so
// the daemon's own start-up (the Go runtime and its packages, a few ms)
// would follow start's. This constructor begins it at once, in parallel
// with start's Go runtime: before any Go code runs, it forks and executes
// the daemon binary beside this one as
//
//   containerd-shim-box-v1-daemon -prespawned
//
// with stdio on /dev/null (containerd reads start's output until EOF), a
// process group of its own, GOMAXPROCS=1, and on fd 3 its end of a
// SOCK_SEQPACKET socket pair. start sends the daemon its arguments,
// environment and listening socket over it (prespawn.go, shim/main.go) or,
// when the container joins a running daemon, closes it: the daemon sees EOF
// and exits. Nothing happens unless the last argument is "start" and the
// daemon binary exists; any failure leaves start to run the daemon itself.
//
// A container of a group other than its own (a pod's container: CRI's
// sandbox-id annotation names the pod's sandbox; or runc's group
// annotation) nearly always joins its group's running daemon, so none is
// prespawned for it (box_joins_group): that would be a whole Go process
// started for nothing on every container of every pod. When the group has
// no daemon yet, start runs one itself.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "box_flags.h"
#include "box_io.h"

#define DAEMON "containerd-shim-box-v1-daemon"
#define MAX_ENV 4096

// Read by prespawn.go: the daemon's pid and start's end of the socket pair.
int box_prespawn_pid = 0;
int box_prespawn_fd = -1;

static void child(const char *path, int fd, char **envp)
{
	static char *env[MAX_ENV + 2];
	int null, n = 0;

	// fds 0-2 are open (the constructor made sure), so null is above them
	// and dup2 clears close-on-exec on each copy.
	null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null < 3 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0)
		_exit(127);
	if (fd == 3) {
		if (fcntl(3, F_SETFD, 0) < 0)
			_exit(127);
	} else if (dup2(fd, 3) < 0) {
		_exit(127);
	}
	if (setpgid(0, 0) < 0)
		_exit(127);
	for (; envp && *envp && n < MAX_ENV; envp++)
		if (strncmp(*envp, "GOMAXPROCS=", 11) != 0)
			env[n++] = *envp;
	// The daemon's work is small and mostly waiting: one P keeps its
	// threads and memory down (containers are unaffected).
	env[n++] = "GOMAXPROCS=1";
	env[n] = NULL;
	char *argv[] = {(char *)path, "-prespawned", NULL};
	execve(path, argv, env);
	_exit(127);
}

// annotation returns the string value of the JSON member "key" in
// config[0:len], or NULL; *vlen is its length. It does not parse JSON: it
// finds the quoted key followed by a colon and a string without escapes
// (containerd writes config.json compact; IDs have no escapes). A miss only
// means a daemon is prespawned that may go unused.
static const char *annotation(const char *config, size_t len, const char *key, size_t *vlen)
{
	char quoted[64];
	size_t klen = strlen(key);
	const char *p, *end = config + len;

	if (klen + 3 > sizeof(quoted))
		return NULL;
	quoted[0] = '"';
	memcpy(quoted + 1, key, klen);
	quoted[klen + 1] = '"';
	p = memmem(config, len, quoted, klen + 2);
	if (p == NULL)
		return NULL;
	p += klen + 2;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p >= end || *p++ != ':')
		return NULL;
	while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
		p++;
	if (p >= end || *p++ != '"')
		return NULL;
	for (const char *v = p; v < end; v++) {
		if (*v == '\\')
			return NULL;
		if (*v == '"') {
			*vlen = (size_t)(v - p);
			return p;
		}
	}
	return NULL;
}

// box_joins_group reports whether the config.json in config[0:len] puts
// container id into a group other than its own, the group the start action
// computes (launch.groupID: runc's group annotation first, then CRI's).
int box_joins_group(const char *config, size_t len, const char *id)
{
	static const char *keys[] = {"io.containerd.runc.v2.group", "io.kubernetes.cri.sandbox-id"};
	size_t vlen = 0;

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v = annotation(config, len, keys[i], &vlen);
		if (v == NULL || vlen == 0)
			continue;
		return vlen != strlen(id) || memcmp(v, id, vlen) != 0;
	}
	return 0;
}

// joins_group reads config.json in the working directory (containerd runs
// start in the bundle) and applies box_joins_group to it.
static int joins_group(int argc, char **argv)
{
	const char *id = box_flag_value(argc, argv, "id");
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd, joins = 0;

	if (id == NULL)
		return 0;
	fd = open("config.json", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	// A config.json is tens of KiB; an absurd one is not worth reading here.
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size > (16 << 20)) {
		close(fd);
		return 0;
	}
	buf = malloc((size_t)st.st_size);
	if (buf == NULL) {
		close(fd);
		return 0;
	}
	got = box_read_full(fd, buf, (size_t)st.st_size);
	close(fd);
	joins = box_joins_group(buf, got, id);
	free(buf);
	return joins;
}

__attribute__((constructor)) static void box_prespawn(int argc, char **argv, char **envp)
{
	char path[PATH_MAX];
	int sv[2];
	ssize_t n;
	char *slash;
	pid_t pid;

	if (argc < 2 || strcmp(argv[argc - 1], "start") != 0 || joins_group(argc, argv))
		return;
	// Should start run with stdio closed, keep fds 0-2 taken, so that
	// neither end of the socket pair lands there.
	for (;;) {
		int fd = open("/dev/null", O_RDWR);
		if (fd < 0)
			return;
		if (fd > 2) {
			close(fd);
			break;
		}
	}
	n = readlink("/proc/self/exe", path, sizeof(path) - sizeof(DAEMON) - 1);
	if (n <= 0 || (size_t)n >= sizeof(path) - sizeof(DAEMON) - 1)
		return;
	path[n] = '\0';
	slash = strrchr(path, '/');
	if (slash == NULL)
		return;
	strcpy(slash + 1, DAEMON);
	if (access(path, X_OK) != 0)
		return;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
		return;
	pid = fork();
	if (pid < 0) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	if (pid == 0)
		child(path, sv[1], envp);
	close(sv[1]);
	box_prespawn_pid = pid;
	box_prespawn_fd = sv[0];
}
