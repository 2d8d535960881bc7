/* The serial side as the rest of espatd sees it: one transport plus an
 * output queue written with non-blocking writes. When the queue grows past
 * its high mark the serial side is "congested" and producers (links) stop
 * reading their sockets until it drains (design.md §1, back-pressure). */
#ifndef ESPATD_TRANSPORT_SERIAL_H
#define ESPATD_TRANSPORT_SERIAL_H

#include "core/buf.h"
#include "core/loop.h"
#include "transport/transport.h"

#include <stdbool.h>

#define SERIAL_HIGH_MARK (64u * 1024u)
#define SERIAL_LOW_MARK (16u * 1024u)

struct serial;

struct serial_events {
	void (*input)(void *arg, const uint8_t *p, size_t n);
	/* The output queue fell below the low mark after being congested. */
	void (*drained)(void *arg);
	void (*eof)(void *arg);
};

struct serial {
	struct transport *t;
	struct buf out;
	const struct serial_events *ev;
	void *ev_arg;
	bool congested;
	bool want_write;
	bool eof;
	/* A line change (AT+UART_CUR) waits until the queue is empty so the
	 * OK goes out at the old rate (protocol.md §5.5). */
	bool line_pending;
	struct line_cfg line;
	/* Paced input (scripts on --stdio): lines are handed on one at a time,
	 * each when `ready` says the module takes input again, as a driver that
	 * waits for every result would send them. */
	bool (*ready)(void *arg);
	struct buf in;
	struct loop_timer pump;
};

int serial_init(struct serial *s, struct transport *t, const struct serial_events *ev, void *arg);
void serial_free(struct serial *s);
void serial_write(struct serial *s, const void *p, size_t n);
bool serial_congested(const struct serial *s);
size_t serial_queued(const struct serial *s);
void serial_pause_input(struct serial *s, bool paused);
/* Change the line once all queued output is written. -ENOTSUP if the
 * transport has no line settings. */
int serial_set_line(struct serial *s, const struct line_cfg *cfg);
bool serial_has_line(const struct serial *s);
/* Turn on paced input; ready(arg) is the events' arg. */
void serial_pace_lines(struct serial *s, bool (*ready)(void *arg));
/* Input received but not yet handed on (paced mode). */
size_t serial_pending_input(const struct serial *s);

#endif
