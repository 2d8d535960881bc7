/* The stdio transport: AT bytes on stdin/stdout, for a person at a terminal
 * or a pipeline (`printf 'AT\r\n' | espatd --stdio`). Logs go to stderr. */
#include "core/log.h"
#include "core/loop.h"
#include "transport/fdutil.h"
#include "transport/stdio_crlf.h"
#include "transport/transport.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct stdio_tr {
	struct transport t;
	struct loop_io in_io, out_io;
	struct loop_timer in_poll; /* stdin that epoll refuses: regular file, /dev/null */
	struct loop_timer notify;  /* writable for a stdout epoll refuses, or a dead one */
	int in_flags, out_flags;   /* restored on destroy: the fds are shared with
				    * our parent (the shell) */
	bool in_saved, out_saved;
	bool tty, prev_cr;
	bool rd_on, wr_on, started, in_done, in_polled, out_polled, out_dead;
	uint8_t buf[FDU_READ_BUF];
	uint8_t xbuf[2 * FDU_READ_BUF];
};

size_t stdio_lf_to_crlf(const uint8_t *in, size_t n, uint8_t *out, bool *prev_cr)
{
	size_t o = 0;
	bool cr = *prev_cr;
	for (size_t i = 0; i < n; i++) {
		if (in[i] == '\n' && !cr)
			out[o++] = '\r';
		out[o++] = in[i];
		cr = in[i] == '\r';
	}
	*prev_cr = cr;
	return o;
}

/* ---- reading ------------------------------------------------------------ */

/* A person at a terminal in its normal (canonical) mode presses Enter and the
 * line discipline delivers "AT\n" (ICRNL turns the CR into LF). ESP-AT ends a
 * command only at CR LF, so the line would never run; restore the CR. From a
 * pipe or file the bytes are the MCU's own and pass unchanged. */
static void stdio_sink(void *arg, const uint8_t *b, size_t n)
{
	struct stdio_tr *s = arg;
	if (!s->tty) {
		tr_emit_input(&s->t, b, n);
		return;
	}
	size_t m = stdio_lf_to_crlf(b, n, s->xbuf, &s->prev_cr);
	tr_emit_input(&s->t, s->xbuf, m);
}

static void stdio_input_done(struct stdio_tr *s, int err)
{
	if (err)
		log_warn("stdio: reading stdin failed: %s; no more input", strerror(err));
	else
		log_info("stdio: end of input on stdin");
	s->in_done = true;
	loop_io_del(s->t.loop, &s->in_io);
	loop_timer_stop(s->t.loop, &s->in_poll);
	tr_emit_eof(&s->t);
}

static void stdio_read(struct stdio_tr *s)
{
	int err = 0;
	enum fdu_rd r = fdu_read_burst(0, s->buf, sizeof(s->buf), stdio_sink, s, &s->rd_on, 0, &err);
	if (s->in_done)
		return;
	if (r == FDU_RD_EOF)
		stdio_input_done(s, 0);
	else if (r == FDU_RD_ERROR)
		stdio_input_done(s, err);
	else if (r == FDU_RD_BUDGET && s->in_polled)
		loop_timer_start(s->t.loop, &s->in_poll, 0); /* files never say EAGAIN */
}

static void stdio_on_in(void *arg, unsigned events)
{
	stdio_read(arg);
}

static void stdio_on_in_poll(void *arg)
{
	struct stdio_tr *s = arg;
	if (s->rd_on && !s->in_done)
		stdio_read(s);
}

/* Watch stdin; epoll refuses regular files and /dev/null (EPERM), which are
 * always readable, so those are read from a timer instead. */
static int stdio_watch_in(struct stdio_tr *s)
{
	if (s->in_polled) {
		loop_timer_start(s->t.loop, &s->in_poll, 0);
		return 0;
	}
	int rc = loop_io_add(s->t.loop, &s->in_io, 0, LOOP_READ, stdio_on_in, s);
	if (rc == -EPERM) {
		s->in_polled = true;
		loop_timer_start(s->t.loop, &s->in_poll, 0);
		return 0;
	}
	return rc;
}

/* ---- writing ------------------------------------------------------------ */

static void stdio_on_notify(void *arg)
{
	struct stdio_tr *s = arg;
	if (s->wr_on)
		tr_emit_writable(&s->t);
}

static void stdio_on_out(void *arg, unsigned events)
{
	struct stdio_tr *s = arg;
	/* EPOLLERR alone means the reader went away; the next write learns
	 * EPIPE and drops, so let the writer try. */
	if (events & (LOOP_WRITE | LOOP_ERR))
		tr_emit_writable(&s->t);
}

static ssize_t stdio_write(struct transport *t, const void *b, size_t n)
{
	struct stdio_tr *s = (struct stdio_tr *)t;
	if (!s->started || s->out_dead)
		return (ssize_t)n;
	ssize_t w = fdu_write(1, b, n);
	if (w == -EPIPE || w == -EBADF || w == -EIO) {
		log_warn("stdio: stdout is gone (%s); dropping output from now on",
			 strerror((int)-w));
		s->out_dead = true;
		if (s->out_io.added)
			loop_io_del(t->loop, &s->out_io);
		return (ssize_t)n;
	}
	return w;
}

/* stdout is only watched while someone waits for room: a pipe whose reader
 * left reports EPOLLERR continuously, which would wake an idle loop. */
static void stdio_want_write(struct transport *t, bool on)
{
	struct stdio_tr *s = (struct stdio_tr *)t;
	s->wr_on = on;
	if (!s->started)
		return; /* start() acts on it */
	if (!on) {
		loop_io_del(t->loop, &s->out_io);
		loop_timer_stop(t->loop, &s->notify);
		return;
	}
	if (!s->out_polled && !s->out_dead && !s->out_io.added) {
		int rc = loop_io_add(t->loop, &s->out_io, 1, LOOP_WRITE, stdio_on_out, s);
		if (rc == 0)
			return;
		/* EPERM: a regular file, writes never block. */
		s->out_polled = true;
	}
	if (!s->out_io.added)
		loop_timer_start(t->loop, &s->notify, 0);
}

/* Pausing removes stdin from epoll rather than clearing its mask: a pipe
 * whose writer closed reports EPOLLHUP even with an empty mask. */
static void stdio_want_read(struct transport *t, bool on)
{
	struct stdio_tr *s = (struct stdio_tr *)t;
	if (s->rd_on == on)
		return;
	s->rd_on = on;
	if (!s->started || s->in_done)
		return;
	if (!on) {
		loop_io_del(t->loop, &s->in_io);
		loop_timer_stop(t->loop, &s->in_poll);
	} else if (stdio_watch_in(s) < 0) {
		log_error("stdio: cannot watch stdin again");
	}
}

/* ---- ops ---------------------------------------------------------------- */

/* write() to a pipe whose reader left raises SIGPIPE, whose default action
 * kills the daemon. Sockets avoid it with MSG_NOSIGNAL; stdout cannot, so
 * ignore it unless someone already chose a disposition. */
static void stdio_ignore_sigpipe(void)
{
	struct sigaction old;
	if (sigaction(SIGPIPE, NULL, &old) == 0 && old.sa_handler == SIG_DFL) {
		struct sigaction ign = { .sa_handler = SIG_IGN };
		sigemptyset(&ign.sa_mask);
		sigaction(SIGPIPE, &ign, NULL);
	}
}

static int stdio_start(struct transport *t)
{
	struct stdio_tr *s = (struct stdio_tr *)t;
	if (s->started)
		return -EALREADY;
	int rc = fdu_set_nonblock(0, true, &s->in_flags);
	if (rc < 0) {
		log_error("stdio: stdin is not usable: %s (was it closed?)", strerror(-rc));
		return rc;
	}
	s->in_saved = true;
	rc = fdu_set_nonblock(1, true, &s->out_flags);
	if (rc < 0) {
		log_error("stdio: stdout is not usable: %s (was it closed?)", strerror(-rc));
		return rc;
	}
	s->out_saved = true;
	s->tty = isatty(0);
	stdio_ignore_sigpipe();
	s->started = true;
	if (s->rd_on && (rc = stdio_watch_in(s)) < 0) {
		log_error("stdio: cannot watch stdin: %s", strerror(-rc));
		return rc;
	}
	if (s->wr_on)
		stdio_want_write(t, true);
	if (s->tty)
		log_info("stdio: stdin is a terminal; Enter sends CR LF");
	return 0;
}

static int stdio_set_line(struct transport *t, const struct line_cfg *cfg)
{
	return -ENOTSUP;
}

static void stdio_destroy(struct transport *t)
{
	struct stdio_tr *s = (struct stdio_tr *)t;
	if (!s)
		return;
	loop_timer_stop(t->loop, &s->in_poll);
	loop_timer_stop(t->loop, &s->notify);
	loop_io_del(t->loop, &s->in_io);
	loop_io_del(t->loop, &s->out_io);
	/* stdout first: on a terminal both fds share one file description,
	 * and stdin's saved flags are the original ones. */
	if (s->out_saved)
		fcntl(1, F_SETFL, s->out_flags);
	if (s->in_saved)
		fcntl(0, F_SETFL, s->in_flags);
	free(s);
}

static const struct transport_ops stdio_ops = {
	.kind = "stdio",
	.start = stdio_start,
	.write = stdio_write,
	.want_write = stdio_want_write,
	.want_read = stdio_want_read,
	.set_line = stdio_set_line,
	.destroy = stdio_destroy,
};

int transport_stdio_new(struct transport **out, struct loop *l)
{
	struct stdio_tr *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->t.ops = &stdio_ops;
	s->t.loop = l;
	s->rd_on = true;
	loop_timer_init(&s->in_poll, stdio_on_in_poll, s);
	loop_timer_init(&s->notify, stdio_on_notify, s);
	snprintf(s->t.desc, sizeof(s->t.desc), "stdio");
	*out = &s->t;
	return 0;
}
