#include "transport/serial.h"

#include "core/clock.h"
#include "core/log.h"
#include "core/trace.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

static void flush(struct serial *s);

/* ---- pacing (--pace) -------------------------------------------------- */

/* One frame on the wire in half bits (1.5 stop bits are the reason): start
 * bit, data bits, parity bit, stop bits (ESP-AT encoding 1 = 1, 2 = 1.5,
 * 3 = 2). 8N1 = 20 half bits = 10 bits. */
static uint32_t frame_half_bits(const struct line_cfg *c)
{
	uint32_t data = c->databits >= 5 && c->databits <= 8 ? c->databits : 8;
	uint32_t stop = c->stopbits == 2 ? 3 : c->stopbits == 3 ? 4 : 2;
	return 2 * (1 + data + (c->parity ? 1 : 0)) + stop;
}

static void set_marks(struct serial *s)
{
	s->high = SERIAL_HIGH_MARK;
	s->low = SERIAL_LOW_MARK;
	if (!s->pace.on)
		return;
	/* About 100 ms of line time: a slow line holds only what it sends
	 * soon, and the rest waits in the sockets, where TCP flow control
	 * makes the peer feel it (design.md §1). */
	uint64_t h = (uint64_t)s->pace.baud * 2u * 100u / (1000u * s->pace.half_bits);
	if (h < SERIAL_PACED_HIGH_MIN)
		h = SERIAL_PACED_HIGH_MIN;
	if (h < s->high)
		s->high = (size_t)h;
	s->low = s->high / 4;
}

static void pace_configure(struct serial *s, const struct line_cfg *c)
{
	struct serial_pace *p = &s->pace;
	p->baud = c->baud ? c->baud : 115200;
	p->half_bits = frame_half_bits(c);
	/* The bucket holds 1 ms of line time (at least one byte): the loop's
	 * timers tick in ms, and a UART's FIFO takes a few bytes at once. */
	uint64_t per_ms_div = 1000u * (uint64_t)p->half_bits;
	p->burst = ((uint64_t)p->baud * 2u + per_ms_div - 1) / per_ms_div;
	if (!p->burst)
		p->burst = 1;
	p->t0 = clock_now_ms();
	p->sent = 0;
	p->waiting = false;
	set_marks(s);
}

static uint64_t pace_allowed(const struct serial_pace *p, uint64_t now)
{
	if (now < p->t0)
		return 0;
	return p->burst + (now - p->t0) * p->baud * 2u / (1000u * (uint64_t)p->half_bits);
}

/* Bytes the bucket lets out now. While the queue waits for tokens
 * (p->waiting) a late timer costs nothing: what accrued meanwhile goes out
 * now. Otherwise the line was idle, or the reader was not reading: the
 * bucket holds only its burst, so nothing leaves faster than the line. */
static size_t pace_room(struct serial_pace *p, uint64_t now)
{
	uint64_t allowed = pace_allowed(p, now);
	if (!p->waiting && allowed >= p->sent + p->burst) {
		p->t0 = now;
		p->sent = 0;
		allowed = p->burst;
	}
	uint64_t room = allowed - p->sent;
	return room > SIZE_MAX ? SIZE_MAX : (size_t)room;
}

/* Milliseconds until the bucket lets out one more byte (>= 1). */
static uint64_t pace_wait(const struct serial_pace *p, uint64_t now)
{
	uint64_t need = p->sent + 1 > p->burst ? p->sent + 1 - p->burst : 0;
	uint64_t rate2 = (uint64_t)p->baud * 2u;
	uint64_t due = p->t0 + (need * 1000u * p->half_bits + rate2 - 1) / rate2;
	return due > now ? due - now : 1;
}

/* ---- the output queue ------------------------------------------------- */

static void apply_line(struct serial *s)
{
	s->line_pending = false;
	if (s->pace.on) {
		pace_configure(s, &s->line);
		log_info("serial output paced at %u baud (%u.%u bits a byte)", s->pace.baud,
			 s->pace.half_bits / 2, s->pace.half_bits % 2 ? 5 : 0);
	}
	if (!serial_has_line(s))
		return;
	int rc = s->t->ops->set_line(s->t, &s->line);
	if (rc < 0)
		log_error("cannot change the serial line to %u baud: %s", s->line.baud,
			  strerror(-rc));
	else
		log_info("serial line now %u baud, %u data bits, stop %u, parity %u, flow %u",
			 s->line.baud, s->line.databits, s->line.stopbits, s->line.parity,
			 s->line.flow);
}

static void set_want_write(struct serial *s, bool on)
{
	if (s->want_write == on)
		return;
	s->want_write = on;
	s->t->ops->want_write(s->t, on);
}

static void flush(struct serial *s)
{
	loop_defer_cancel(s->t->loop, &s->txd);
	bool blocked = false;
	uint64_t now = s->pace.on ? clock_now_ms() : 0;
	while (buf_used(&s->out)) {
		size_t n = buf_used(&s->out);
		if (s->pace.on) {
			size_t room = pace_room(&s->pace, now);
			if (!room) {
				loop_timer_start(s->t->loop, &s->tx, pace_wait(&s->pace, now));
				break;
			}
			if (n > room)
				n = room;
		}
		ssize_t w = s->t->ops->write(s->t, buf_head(&s->out), n);
		if (w == -EAGAIN || w == 0) {
			blocked = true;
			break;
		}
		if (w < 0) {
			/* Nobody can receive it: drop it, as a wire would. */
			log_debug("serial write failed: %s; dropping %zu bytes", strerror((int)-w),
				  buf_used(&s->out));
			buf_reset(&s->out);
			break;
		}
		buf_consume(&s->out, (size_t)w);
		s->pace.sent += (uint64_t)w;
	}
	/* Paced and out of tokens: the timer comes back, not the descriptor. */
	s->pace.waiting = buf_used(&s->out) && !blocked;
	set_want_write(s, blocked);
	if (!buf_used(&s->out) && s->line_pending)
		apply_line(s);
	if (s->input_choked && buf_used(&s->out) < SERIAL_LOW_MARK) {
		s->input_choked = false;
		s->t->ops->want_read(s->t, !s->input_paused);
	}
	if (s->congested && buf_used(&s->out) < s->low) {
		s->congested = false;
		if (s->ev->drained)
			s->ev->drained(s->ev_arg);
	}
}

static void tx_due(void *arg)
{
	flush(arg);
}

void serial_flush(struct serial *s)
{
	if (s->t && buf_used(&s->out) && !s->want_write && !s->tx.armed)
		flush(s);
}

/* ---- input ------------------------------------------------------------ */

static void pump(void *arg)
{
	struct serial *s = arg;
	while (buf_used(&s->in)) {
		if (!s->ready(s->ev_arg)) {
			loop_timer_start(s->t->loop, &s->pump, 2);
			return;
		}
		const uint8_t *p = buf_head(&s->in);
		const uint8_t *lf = memchr(p, '\n', buf_used(&s->in));
		size_t n = lf ? (size_t)(lf - p) + 1 : buf_used(&s->in);
		s->ev->input(s->ev_arg, p, n);
		buf_consume(&s->in, n);
	}
	if (s->eof && s->ev->eof)
		s->ev->eof(s->ev_arg);
}

static void tr_input(void *arg, const uint8_t *p, size_t n)
{
	struct serial *s = arg;
	trace_bytes(TRACE_IN, p, n);
	if (s->ready) {
		buf_append(&s->in, p, n);
		if (!s->pump.armed)
			pump(s);
		return;
	}
	s->ev->input(s->ev_arg, p, n);
}

static void tr_writable(void *arg)
{
	flush(arg);
}

static void tr_peer(void *arg, bool attached)
{
	struct serial *s = arg;
	trace_note("client %s", attached ? "attached" : "detached");
	if (!attached) {
		buf_reset(&s->out);
		flush(s);
	}
}

static void tr_eof(void *arg)
{
	struct serial *s = arg;
	trace_note("input closed");
	s->eof = true;
	if (s->ready && buf_used(&s->in))
		return; /* reported once the paced lines are all handed on */
	if (s->ev->eof)
		s->ev->eof(s->ev_arg);
}

static const struct transport_events tr_events = {
	.input = tr_input,
	.writable = tr_writable,
	.peer = tr_peer,
	.eof = tr_eof,
};

int serial_init(struct serial *s, struct transport *t, const struct serial_events *ev, void *arg)
{
	memset(s, 0, sizeof(*s));
	s->t = t;
	s->ev = ev;
	s->ev_arg = arg;
	buf_init(&s->out);
	buf_init(&s->in);
	loop_timer_init(&s->pump, pump, s);
	loop_timer_init(&s->tx, tx_due, s);
	loop_defer_init_last(&s->txd, tx_due, s);
	set_marks(s);
	transport_bind(t, &tr_events, s);
	return t->ops->start(t);
}

void serial_free(struct serial *s)
{
	if (s->t) {
		flush(s);
		loop_timer_stop(s->t->loop, &s->pump);
		loop_timer_stop(s->t->loop, &s->tx);
		loop_defer_cancel(s->t->loop, &s->txd);
		s->t->ops->destroy(s->t);
		s->t = NULL;
	}
	buf_free(&s->out);
	buf_free(&s->in);
}

/* Bytes leave at the end of the turn, or at once past SERIAL_COALESCE_MAX,
 * unless the queue waits for the descriptor or, paced, for tokens: then
 * they join it and leave with it. */
static void queued(struct serial *s)
{
	if (!s->want_write && !s->tx.armed) {
		if (buf_used(&s->out) >= SERIAL_COALESCE_MAX)
			flush(s);
		else
			loop_defer(s->t->loop, &s->txd);
	}
	if (buf_used(&s->out) >= s->high)
		s->congested = true;
	if (!s->input_choked && buf_used(&s->out) >= SERIAL_CHOKE_MARK) {
		s->input_choked = true;
		s->t->ops->want_read(s->t, false);
		log_warn("the serial client is not reading its replies (%zu bytes waiting); "
			 "not reading its input until it does", buf_used(&s->out));
	}
}

void serial_write(struct serial *s, const void *p, size_t n)
{
	if (!n)
		return;
	trace_bytes(TRACE_OUT, p, n);
	if (buf_append(&s->out, p, n) < 0) {
		log_error("out of memory queueing %zu bytes for the serial side", n);
		return;
	}
	queued(s);
}

void serial_writev(struct serial *s, const struct iovec *iov, int iovcnt)
{
	size_t total = 0;
	for (int i = 0; i < iovcnt; i++) {
		if (!iov[i].iov_len)
			continue;
		trace_bytes(TRACE_OUT, iov[i].iov_base, iov[i].iov_len);
		if (buf_append(&s->out, iov[i].iov_base, iov[i].iov_len) < 0) {
			log_error("out of memory queueing %zu bytes for the serial side",
				  iov[i].iov_len);
			break;
		}
		total += iov[i].iov_len;
	}
	if (total)
		queued(s);
}

bool serial_congested(const struct serial *s)
{
	return s->congested;
}

size_t serial_queued(const struct serial *s)
{
	return buf_used(&s->out);
}

void serial_pause_input(struct serial *s, bool paused)
{
	s->input_paused = paused;
	s->t->ops->want_read(s->t, !paused && !s->input_choked);
}

void serial_input_flow(struct serial *s, size_t queued, size_t max)
{
	if (queued >= max && !s->input_paused)
		serial_pause_input(s, true);
	else if (queued < max / 2 && s->input_paused)
		serial_pause_input(s, false);
}

bool serial_has_line(const struct serial *s)
{
	return s->t->ops->set_line != NULL && strcmp(s->t->ops->kind, "uart") == 0;
}

int serial_set_line(struct serial *s, const struct line_cfg *cfg)
{
	if (!serial_has_line(s) && !s->pace.on)
		return -ENOTSUP;
	s->line = *cfg;
	s->line_pending = true;
	if (!buf_used(&s->out))
		apply_line(s);
	return 0;
}

void serial_set_pace(struct serial *s, const struct line_cfg *cfg)
{
	s->pace.on = true;
	s->line = *cfg;
	pace_configure(s, cfg);
	log_info("serial output paced at %u baud (%u.%u bits a byte)", s->pace.baud,
		 s->pace.half_bits / 2, s->pace.half_bits % 2 ? 5 : 0);
}

bool serial_paced(const struct serial *s)
{
	return s->pace.on;
}

void serial_pace_lines(struct serial *s, bool (*ready)(void *arg))
{
	s->ready = ready;
}

size_t serial_pending_input(const struct serial *s)
{
	return buf_used(&s->in);
}
