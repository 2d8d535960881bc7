#include "at/parser.h"

#include <string.h>

void at_parser_init(struct at_parser *p, const struct at_parser_ops *ops, void *arg)
{
	memset(p, 0, sizeof(*p));
	p->ops = ops;
	p->arg = arg;
	p->mode = AT_PM_CMD;
}

void at_parser_set_mode(struct at_parser *p, enum at_pmode m)
{
	if (m == AT_PM_CMD && p->mode != AT_PM_CMD)
		p->len = 0;
	p->mode = m;
}

void at_parser_expect_data(struct at_parser *p, size_t n)
{
	p->mode = AT_PM_DATA;
	p->data_left = n;
	p->ex = 0;
	p->ex_escape = 0;
}

void at_parser_expect_data_ex(struct at_parser *p, size_t n)
{
	at_parser_expect_data(p, n);
	p->ex = 1;
}

/* CIPSENDEX data: unescape in place into out; returns bytes consumed from
 * buf, sets *done when "\0" ended the data or the count ran out. */
static size_t feed_ex(struct at_parser *p, const uint8_t *buf, size_t n, uint8_t *out,
		      size_t *outn, int *done)
{
	size_t i = 0, o = 0;
	*done = 0;
	while (i < n && p->data_left) {
		uint8_t c = buf[i++];
		p->data_left--;
		if (p->ex_escape) {
			p->ex_escape = 0;
			if (c == '0') {
				*done = 1;
				break;
			}
			out[o++] = c;
		} else if (c == '\\') {
			p->ex_escape = 1;
		} else {
			out[o++] = c;
		}
	}
	if (!p->data_left)
		*done = 1;
	*outn = o;
	return i;
}

/* Append one command-mode byte; returns 1 when a CR LF completed a line. */
static int take_byte(struct at_parser *p, uint8_t c)
{
	p->line[p->len++] = (char)c;
	if (p->len >= 2 && p->line[p->len - 2] == '\r' && c == '\n')
		return 1;
	if (p->len > AT_LINE_KEEP_MAX) {
		/* §1.5: silently drop an unterminated overlong line, but a
		 * final CR may still begin the terminator of the next one. */
		p->len = 0;
		if (c == '\r')
			p->line[p->len++] = '\r';
	}
	return 0;
}

static size_t feed_cmd(struct at_parser *p, const uint8_t *buf, size_t n, int *got_line)
{
	size_t i = 0;
	*got_line = 0;
	while (i < n) {
		if (take_byte(p, buf[i++])) {
			*got_line = 1;
			break;
		}
	}
	if (i)
		p->ops->echo(p->arg, buf, i);
	if (*got_line) {
		size_t len = p->len - 2;
		p->len = 0;
		p->ops->line(p->arg, p->line, len);
	}
	return i;
}

void at_parser_passthrough(struct at_parser *p, uint64_t now)
{
	p->mode = AT_PM_PASSTHROUGH;
	p->plus = 0;
	p->last_rx = now;
}

static void release_plus(struct at_parser *p)
{
	static const uint8_t plus3[3] = { '+', '+', '+' };
	int k = p->plus;
	p->plus = 0;
	if (k)
		p->ops->data(p->arg, plus3, (size_t)k, 0);
}

/* §2.7: "+++" leaves passthrough only with >= 20 ms of silence before the
 * first '+', all three within 20 ms, and >= 20 ms of silence after; any
 * other '+' is data. The '+' that may start an exit are held back until
 * that is decided (at_parser_tick). */
static void feed_passthrough(struct at_parser *p, const uint8_t *buf, size_t n, uint64_t now)
{
	const uint64_t g = AT_PLUS_GUARD_MS;
	size_t i = 0, start = 0;
	if (p->plus) {
		while (i < n && buf[i] == '+' && p->plus < 3 && now - p->plus_first <= g) {
			p->plus++;
			i++;
		}
		if (i < n)
			release_plus(p); /* something followed too soon: all data */
		start = i;
	} else if (buf[0] == '+' && now - p->last_rx >= g) {
		while (i < n && i < 3 && buf[i] == '+')
			i++;
		if (i == n) {
			p->plus = (int)i;
			p->plus_first = now;
			start = n;
		}
	}
	if (start < n)
		p->ops->data(p->arg, buf + start, n - start, 0);
	p->last_rx = now;
}

uint64_t at_parser_deadline(const struct at_parser *p)
{
	if (p->mode != AT_PM_PASSTHROUGH || !p->plus)
		return 0;
	if (p->plus == 3)
		return p->last_rx + AT_PLUS_GUARD_MS;
	return p->plus_first + AT_PLUS_GUARD_MS + 1;
}

void at_parser_tick(struct at_parser *p, uint64_t now)
{
	uint64_t due = at_parser_deadline(p);
	if (!due || now < due)
		return;
	if (p->plus == 3) {
		p->plus = 0;
		p->ops->cancel(p->arg);
	} else {
		release_plus(p);
	}
}

void at_parser_feed(struct at_parser *p, const uint8_t *buf, size_t n)
{
	at_parser_feed_at(p, buf, n, 0);
}

void at_parser_feed_at(struct at_parser *p, const uint8_t *buf, size_t n, uint64_t now)
{
	if (n == 0)
		return;
	switch (p->mode) {
	case AT_PM_PASSTHROUGH:
		feed_passthrough(p, buf, n, now);
		break;
	case AT_PM_CMD: {
		int got_line;
		size_t used = feed_cmd(p, buf, n, &got_line);
		/* The rest of a chunk that carried a command arrived while that
		 * command was being processed: one busy for it (§1.9). */
		if (got_line && used < n && p->mode != AT_PM_DISCARD)
			p->ops->busy(p->arg, buf + used, n - used);
		break;
	}
	case AT_PM_BUSY:
		p->ops->busy(p->arg, buf, n);
		break;
	case AT_PM_DATA: {
		if (n == 3 && memcmp(buf, "+++", 3) == 0 && p->ops->cancel) {
			p->ops->cancel(p->arg);
			break;
		}
		if (p->ex) {
			uint8_t tmp[512];
			while (n) {
				size_t chunk = n < sizeof(tmp) ? n : sizeof(tmp), outn;
				int done;
				size_t used = feed_ex(p, buf, chunk, tmp, &outn, &done);
				buf += used;
				n -= used;
				if (done)
					p->mode = AT_PM_DISCARD;
				p->ops->data(p->arg, tmp, outn, done);
				if (done) {
					if (n)
						p->ops->busy(p->arg, buf, n);
					break;
				}
			}
			break;
		}
		size_t take = n < p->data_left ? n : p->data_left;
		p->data_left -= take;
		int done = p->data_left == 0;
		if (done)
			p->mode = AT_PM_DISCARD; /* until the engine says otherwise */
		p->ops->data(p->arg, buf, take, done);
		if (take < n)
			p->ops->busy(p->arg, buf + take, n - take);
		break;
	}
	case AT_PM_DISCARD:
		break;
	}
}
