/* The serial side as the rest of espatd sees it: one transport plus an
 * output queue written with non-blocking writes. When the queue grows past
 * its high mark the serial side is "congested" and producers (links) stop
 * reading their sockets until it drains (design.md §1, back-pressure).
 *
 * Output is written at the end of the loop turn that produced it (a
 * loop_defer), so what one turn says leaves in one write(): "Recv N bytes"
 * with "SEND OK", the data, OK and next notice of AT+CIPRECVDATA; more than
 * SERIAL_COALESCE_MAX waiting is written at once. serial_flush() writes
 * what is queued now: main.c calls it before every log line, so a log line
 * about an event still follows its bytes. serial_writev() queues several
 * pieces (an +IPD header, its payload, its CR LF) at once.
 *
 * Pacing (--pace): the queue is drained no faster than a UART at the line's
 * rate would send it, baud / bits-per-frame bytes a second (baud/10 at 8N1),
 * with a token bucket refilled from the loop clock; the line comes from
 * serial_set_pace() at power-up and from serial_set_line() (AT+UART_CUR)
 * afterwards. The congestion marks then shrink to about 100 ms of line time,
 * so the links feel a slow line as they would a real module's UART. */
#ifndef ESPATD_TRANSPORT_SERIAL_H
#define ESPATD_TRANSPORT_SERIAL_H

#include "core/buf.h"
#include "core/loop.h"
#include "transport/transport.h"

#include <stdbool.h>
#include <sys/uio.h>

#define SERIAL_HIGH_MARK (64u * 1024u)
#define SERIAL_LOW_MARK (16u * 1024u)
/* Past this much unread output the serial side is not read either: a client
 * that sends commands but never reads the replies cannot make the queue
 * grow without bound; its own writes block instead (issue: hostile input). */
#define SERIAL_CHOKE_MARK (256u * 1024u)
/* Paced: the high mark is ~100 ms of line time, within these bounds; the
 * low mark a quarter of it. */
#define SERIAL_PACED_HIGH_MIN 4096u
/* Output of one turn is held for the end of the turn up to this much: past
 * it a bulk transfer gains nothing from waiting. */
#define SERIAL_COALESCE_MAX (16u * 1024u)

struct serial;

struct serial_events {
	void (*input)(void *arg, const uint8_t *p, size_t n);
	/* The output queue fell below the low mark after being congested. */
	void (*drained)(void *arg);
	void (*eof)(void *arg);
};

/* The token bucket of a paced line. Bytes allowed by time `now` (ms):
 * burst + (now - t0) * baud * 2 / (1000 * half_bits); `sent` counts the
 * bytes written since t0. When the bucket is full (the line went idle)
 * t0 restarts, so the numbers stay small. The bucket holds `burst`. */
struct serial_pace {
	bool on;
	uint32_t baud;
	uint32_t half_bits; /* one frame in half bits: 20 at 8N1 */
	uint64_t burst;     /* bytes the bucket holds: ~1 ms of line time, >= 1 */
	uint64_t t0;
	uint64_t sent;
	bool waiting; /* output queued for want of tokens only */
};

struct serial {
	struct transport *t;
	struct buf out;
	const struct serial_events *ev;
	void *ev_arg;
	bool congested;
	bool input_paused;  /* serial_pause_input(): flow control of a data path */
	bool input_choked;  /* the output queue passed SERIAL_CHOKE_MARK */
	bool want_write;
	bool eof;
	/* A line change (AT+UART_CUR) waits until the queue is empty so the
	 * OK goes out at the old rate (protocol.md §5.5). */
	bool line_pending;
	struct line_cfg line;
	size_t high, low; /* congestion marks */
	/* Paced: writes the queue again as soon as the bucket allows more. */
	struct loop_timer tx;
	/* Unpaced: the end-of-turn write of what the turn queued. */
	struct loop_defer txd;
	struct serial_pace pace;
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
/* The pieces in order, as one write when the queue is idle (no syscall per
 * piece); the same bytes and timing as serial_write() of each. */
void serial_writev(struct serial *s, const struct iovec *iov, int iovcnt);
/* Write what is queued now, as far as the descriptor (and, paced, the
 * token bucket) allows. */
void serial_flush(struct serial *s);
bool serial_congested(const struct serial *s);
size_t serial_queued(const struct serial *s);
void serial_pause_input(struct serial *s, bool paused);
/* Flow control of a data path whose queue holds `queued` bytes: pause the
 * input at `max`, resume it below max / 2, so a steady stream does not
 * toggle the descriptor's epoll mask at every read. */
void serial_input_flow(struct serial *s, size_t queued, size_t max);
/* Change the line once all queued output is written. -ENOTSUP if the
 * transport has no line settings and output is not paced; when paced, the
 * new line's rate applies to the pacing (any transport). */
int serial_set_line(struct serial *s, const struct line_cfg *cfg);
bool serial_has_line(const struct serial *s);
/* Pace output like a UART with line `cfg` (--pace); later line changes
 * come through serial_set_line(). */
void serial_set_pace(struct serial *s, const struct line_cfg *cfg);
bool serial_paced(const struct serial *s);
/* Turn on paced input; ready(arg) is the events' arg. */
void serial_pace_lines(struct serial *s, bool (*ready)(void *arg));
/* Input received but not yet handed on (paced mode). */
size_t serial_pending_input(const struct serial *s);

#endif
