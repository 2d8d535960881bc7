/* Helpers shared by the transports: non-blocking descriptors, the bounded
 * read burst, and NULL-safe delivery of transport events.
 *
 * Re-entrancy rule kept by every transport: events are delivered from loop
 * callbacks (io or timer), never from inside ops->write(), so the owner of the
 * output queue is never called back while it is in the middle of writing.
 * Do not destroy a transport from inside one of its own event callbacks. */
#ifndef ESPATD_TRANSPORT_FDUTIL_H
#define ESPATD_TRANSPORT_FDUTIL_H

#include "transport/transport.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Read buffer of every transport (the brief allows 4096..65536). */
#define FDU_READ_BUF 16384
/* Reads per wakeup: with level-triggered epoll the rest is picked up on the
 * next turn, so one chatty descriptor cannot starve the others. */
#define FDU_READ_BUDGET 16

/* Set or clear O_NONBLOCK; *old_flags (if not NULL) gets the previous flags
 * so a descriptor shared with a parent (stdin) can be restored. */
int fdu_set_nonblock(int fd, bool on, int *old_flags);

/* write() that retries EINTR and returns bytes taken, -EAGAIN or -errno. */
ssize_t fdu_write(int fd, const void *p, size_t n);

enum fdu_rd {
	FDU_RD_DRAINED, /* EAGAIN: nothing more for now */
	FDU_RD_BUDGET,  /* FDU_READ_BUDGET reads done; more may be waiting */
	FDU_RD_PAUSED,  /* *reading became false inside a callback */
	FDU_RD_EOF,     /* read() returned 0 */
	FDU_RD_ERROR,   /* read() failed; *err = errno */
};

typedef void (*fdu_sink)(void *arg, const uint8_t *p, size_t n);

/* Read up to FDU_READ_BUDGET times, handing each read to `sink` as one chunk.
 * `reading` is re-checked after every chunk so want_read(false) issued from
 * the input callback takes effect at once. A read shorter than `full` bytes
 * took what there was: it ends the burst as FDU_RD_DRAINED, and
 * level-triggered epoll reports the rest, which saves the read() that would
 * only say EAGAIN (docs/performance.md, F2). `full` is the most one read
 * can return: the buffer for a socket, FDU_TTY_READ_MAX for a tty; 0 reads
 * until EAGAIN (stdin on a regular file, which epoll cannot watch). */
enum fdu_rd fdu_read_burst(int fd, uint8_t *buf, size_t cap, fdu_sink sink, void *arg,
			   const bool *reading, size_t full, int *err);

/* A tty in raw mode hands over at most its line discipline's buffer (4 KiB
 * less one byte) per read(), whatever the size asked for. */
#define FDU_TTY_READ_MAX 4095u

/* Event delivery that tolerates an unbound transport and optional callbacks. */
void tr_emit_input(struct transport *t, const uint8_t *p, size_t n);
void tr_emit_writable(struct transport *t);
void tr_emit_peer(struct transport *t, bool attached);
void tr_emit_eof(struct transport *t);

/* Human hint appended to "cannot open X: strerror" lines; "" if none. */
const char *fdu_open_hint(int err);

#endif
