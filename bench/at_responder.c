/* The latency baseline of `make bench`: the least a program can do to answer
 * "AT\r\n" with "\r\nOK\r\n" on a pty. It creates a pty the way espatd does
 * (master here, the slave offered through a symlink, one slave fd kept open
 * so the master never sees "other side closed"), then blocks in read() and
 * answers every CR LF terminated line with OK. No event loop, no parser, no
 * queue: whatever espatd spends beyond this is its own overhead.
 *
 * Usage: at_responder PATH     (SIGTERM ends it; PATH is removed) */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

static const char *link_path;

static void on_term(int sig)
{
	(void)sig;
	unlink(link_path);
	_exit(0);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: at_responder PATH\n");
		return 2;
	}
	link_path = argv[1];
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	char slave[64];
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, slave, sizeof(slave))) {
		perror("at_responder: pty");
		return 1;
	}
	int s = open(slave, O_RDWR | O_NOCTTY | O_CLOEXEC);
	struct termios tio;
	if (s < 0 || tcgetattr(s, &tio) < 0) {
		perror("at_responder: slave");
		return 1;
	}
	cfmakeraw(&tio);
	tcsetattr(s, TCSANOW, &tio);
	char tmp[4096];
	snprintf(tmp, sizeof(tmp), "%s.%d.tmp", link_path, (int)getpid());
	unlink(tmp);
	if (symlink(slave, tmp) < 0 || rename(tmp, link_path) < 0) {
		perror("at_responder: symlink");
		return 1;
	}
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	static const char ok[] = "\r\nOK\r\n";
	char buf[4096];
	char prev = 0;
	for (;;) {
		ssize_t n = read(m, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			usleep(1000); /* cannot happen while we hold the slave */
			continue;
		}
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] == '\n' && prev == '\r' && write(m, ok, sizeof(ok) - 1) < 0)
				perror("at_responder: write");
			prev = buf[i];
		}
	}
}
