#include "transport/serial.h"

#include "core/log.h"
#include "core/trace.h"

#include <errno.h>
#include <string.h>

static void flush(struct serial *s);

static void apply_line(struct serial *s)
{
	s->line_pending = false;
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
	while (buf_used(&s->out)) {
		ssize_t n = s->t->ops->write(s->t, buf_head(&s->out), buf_used(&s->out));
		if (n == -EAGAIN || n == 0)
			break;
		if (n < 0) {
			/* Nobody can receive it: drop it, as a wire would. */
			log_debug("serial write failed: %s; dropping %zu bytes", strerror((int)-n),
				  buf_used(&s->out));
			buf_reset(&s->out);
			break;
		}
		buf_consume(&s->out, (size_t)n);
	}
	set_want_write(s, buf_used(&s->out) > 0);
	if (!buf_used(&s->out) && s->line_pending)
		apply_line(s);
	if (s->congested && buf_used(&s->out) < SERIAL_LOW_MARK) {
		s->congested = false;
		if (s->ev->drained)
			s->ev->drained(s->ev_arg);
	}
}

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
	transport_bind(t, &tr_events, s);
	return t->ops->start(t);
}

void serial_free(struct serial *s)
{
	if (s->t) {
		flush(s);
		loop_timer_stop(s->t->loop, &s->pump);
		s->t->ops->destroy(s->t);
		s->t = NULL;
	}
	buf_free(&s->out);
	buf_free(&s->in);
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
	if (!s->want_write)
		flush(s);
	if (buf_used(&s->out) >= SERIAL_HIGH_MARK)
		s->congested = true;
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
	s->t->ops->want_read(s->t, !paused);
}

bool serial_has_line(const struct serial *s)
{
	return s->t->ops->set_line != NULL && strcmp(s->t->ops->kind, "uart") == 0;
}

int serial_set_line(struct serial *s, const struct line_cfg *cfg)
{
	if (!serial_has_line(s))
		return -ENOTSUP;
	s->line = *cfg;
	s->line_pending = true;
	if (!buf_used(&s->out))
		apply_line(s);
	return 0;
}

void serial_pace_lines(struct serial *s, bool (*ready)(void *arg))
{
	s->ready = ready;
}

size_t serial_pending_input(const struct serial *s)
{
	return buf_used(&s->in);
}
