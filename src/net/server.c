#include "net/server.h"

#include "core/log.h"

#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

void server_init(struct server *s, struct loop *l, void (*accepted)(void *arg, int fd), void *arg)
{
	memset(s, 0, sizeof(*s));
	s->fd = -1;
	s->loop = l;
	s->accepted = accepted;
	s->arg = arg;
}

bool server_running(const struct server *s)
{
	return s->fd >= 0;
}

static void on_accept(void *arg, unsigned events)
{
	struct server *s = arg;
	for (int i = 0; i < 16; i++) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
				log_warn("server on port %u: accept failed: %s", s->port, strerror(errno));
			return;
		}
		s->accepted(s->arg, fd);
		if (s->fd < 0)
			return; /* closed by the owner */
	}
}

int server_listen(struct server *s, bool v6, const struct sockaddr_storage *bind_addr,
		  uint16_t port)
{
	struct sockaddr_storage a;
	memset(&a, 0, sizeof(a));
	if (bind_addr)
		a = *bind_addr;
	else
		a.ss_family = v6 ? AF_INET6 : AF_INET;
	socklen_t len;
	if (a.ss_family == AF_INET6) {
		((struct sockaddr_in6 *)(void *)&a)->sin6_port = htons(port);
		len = sizeof(struct sockaddr_in6);
	} else {
		((struct sockaddr_in *)(void *)&a)->sin_port = htons(port);
		len = sizeof(struct sockaddr_in);
	}
	int fd = socket(a.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1, zero = 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (a.ss_family == AF_INET6) /* "TCPv6" servers take IPv4 peers too */
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
	if (bind(fd, (struct sockaddr *)&a, len) < 0 || listen(fd, 8) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	int rc = loop_io_add(s->loop, &s->io, fd, LOOP_READ, on_accept, s);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	s->fd = fd;
	s->port = port;
	s->v6 = a.ss_family == AF_INET6;
	return 0;
}

void server_close(struct server *s)
{
	if (s->fd < 0)
		return;
	loop_io_del(s->loop, &s->io);
	close(s->fd);
	s->fd = -1;
}
