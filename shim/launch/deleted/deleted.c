//go:build linux && cgo

// The delete constructor: when the daemon recorded that it deleted this
// task itself (marker.go), "containerd-shim-box-v1 delete" prints the
// recorded DeleteResponse and exits here, before the Go runtime starts.
// Anything unexpected (no record, another id, a short write) falls through
// to the Go delete action, which cleans up in full and answers the same.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "box_flags.h"
#include "box_io.h"

#define MAGIC "box-deleted-v1"
#define RECORD "box-deleted"

// box_deleted_response checks record[0:len] for task id and returns where
// its response starts, or NULL.
const char *box_deleted_response(const char *record, size_t len, const char *id, size_t *rlen)
{
	size_t mlen = strlen(MAGIC), ilen = strlen(id);

	if (ilen == 0 || len < mlen + ilen + 2 || memcmp(record, MAGIC, mlen) != 0 || record[mlen] != ' ' ||
	    memcmp(record + mlen + 1, id, ilen) != 0 || record[mlen + 1 + ilen] != '\n')
		return NULL;
	*rlen = len - (mlen + ilen + 2);
	return record + mlen + ilen + 2;
}

// remove_stale_socket does what the Go action does with the daemon's
// socket: it removes the socket file named by the bundle's "address" when
// nothing listens on it any more (a daemon that exited without removing
// it). A daemon still serving (a group's) keeps it.
static void remove_stale_socket(int dir)
{
	char addr[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	const char *path;
	ssize_t n;
	int fd, s;

	fd = openat(dir, "address", O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, addr, sizeof(addr) - 1);
	close(fd);
	if (n <= 0)
		return;
	addr[n] = '\0';
	if (strncmp(addr, "unix:///", 8) != 0)
		return;
	path = addr + 7;
	if (strlen(path) >= sizeof(sa.sun_path))
		return;
	strcpy(sa.sun_path, path);
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	if (connect(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno == ECONNREFUSED)
		unlink(path);
	close(s);
}

// answer prints the response recorded in dir for task id and exits, or
// returns when there is none.
static void answer(int dir, const char *id)
{
	// The magic, a 1024-byte id, a newline and a response of at most 64.
	char buf[sizeof(MAGIC) + 1024 + 1 + 64 + 1];
	const char *resp;
	size_t got = 0, rlen = 0;
	ssize_t n;
	int fd;

	fd = openat(dir, RECORD, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	got = box_read_full(fd, buf, sizeof(buf));
	close(fd);
	if (got == sizeof(buf)) // longer than any record
		return;
	resp = box_deleted_response(buf, got, id, &rlen);
	if (resp == NULL || rlen > 64)
		return;
	remove_stale_socket(dir);
	while (rlen > 0) {
		n = write(1, resp, rlen);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			_exit(1); // part of the answer may be out: do not print it twice
		resp += n;
		rlen -= (size_t)n;
	}
	_exit(0);
}

__attribute__((constructor)) static void box_deleted(int argc, char **argv)
{
	const char *id, *bundle;
	int dir = AT_FDCWD;

	if (argc < 2 || strcmp(argv[argc - 1], "delete") != 0)
		return;
	id = box_flag_value(argc, argv, "id");
	bundle = box_flag_value(argc, argv, "bundle");
	if (id == NULL)
		return;
	if (bundle != NULL && bundle[0] != '\0') {
		dir = open(bundle, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dir < 0)
			return;
	}
	answer(dir, id);
	if (dir != AT_FDCWD)
		close(dir);
}
