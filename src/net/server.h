/* A listening TCP socket on the event loop (AT+CIPSERVER). It hands each
 * accepted connection to its owner, who decides whether it becomes a link. */
#ifndef ESPATD_NET_SERVER_H
#define ESPATD_NET_SERVER_H

#include "core/loop.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

struct server {
	int fd;
	uint16_t port;
	bool v6;
	struct loop *loop;
	struct loop_io io;
	void (*accepted)(void *arg, int fd);
	void *arg;
};

void server_init(struct server *s, struct loop *l, void (*accepted)(void *arg, int fd), void *arg);
/* Listen on all addresses (v6: IPv6 and IPv4) or on `bind_addr` if given. */
int server_listen(struct server *s, bool v6, const struct sockaddr_storage *bind_addr,
		  uint16_t port);
bool server_running(const struct server *s);
void server_close(struct server *s);

#endif
