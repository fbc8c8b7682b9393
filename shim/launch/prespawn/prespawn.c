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
#define _GNU_SOURCE
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

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

__attribute__((constructor)) static void box_prespawn(int argc, char **argv, char **envp)
{
	char path[PATH_MAX];
	int sv[2];
	ssize_t n;
	char *slash;
	pid_t pid;

	if (argc < 2 || strcmp(argv[argc - 1], "start") != 0)
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
