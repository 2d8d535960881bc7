#include "at/engine.h"

#include "core/clock.h"

#include <ctype.h>
#include <errno.h>
#include <string.h>

#define AT_NAME_MAX 32

static void on_echo(void *arg, const uint8_t *p, size_t n)
{
	struct at_engine *e = arg;
	if (e->echo)
		at_out_raw(&e->out, p, n);
}

static void on_busy(void *arg, const uint8_t *p, size_t n)
{
	struct at_engine *e = arg;
	/* §1.9: a hung command can be forced off by typing AT+RST. */
	if (memmem(p, n, "AT+RST\r\n", 8) && e->hooks.force_restart) {
		at_out_force_restart(&e->out);
		e->hooks.force_restart(e->dev);
		return;
	}
	at_out_busy(&e->out);
}

static void on_data(void *arg, const uint8_t *p, size_t n, int done)
{
	struct at_engine *e = arg;
	if (e->hooks.data)
		e->hooks.data(e->dev, p, n, done);
}

static void on_cancel(void *arg)
{
	struct at_engine *e = arg;
	if (e->hooks.cancel)
		e->hooks.cancel(e->dev);
}

static void finish(struct at_engine *e, enum at_rc rc)
{
	/* §1.7: the state is idle again before the result bytes go out, so
	 * the host may send the next command as soon as it sees them. */
	e->busy = false;
	if (e->parser.mode != AT_PM_PASSTHROUGH) /* AT+CIPSEND entered it */
		at_parser_set_mode(&e->parser, AT_PM_CMD);
	if (rc == AT_RC_ERROR || rc == AT_RC_FAIL)
		at_out_errcode(&e->out, e->req.errcode);
	at_out_result(&e->out, rc);
	if (e->hooks.after_command)
		e->hooks.after_command(e->dev);
}

static void run(struct at_engine *e, at_handler_fn fn)
{
	e->busy = true;
	at_parser_set_mode(&e->parser, AT_PM_BUSY);
	enum at_rc rc = fn(&e->req);
	if (rc == AT_RC_PENDING)
		return;
	if (rc == AT_RC_PROMPT) {
		/* The handler armed the data phase; it ends with
		 * at_engine_complete(). */
		at_out_result(&e->out, rc);
		return;
	}
	finish(e, rc);
}

static void reject(struct at_engine *e, uint32_t code)
{
	e->req.errcode = code;
	e->busy = true;
	finish(e, AT_RC_ERROR);
}

static bool name_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("_!%-./:", c);
}

static void on_line(void *arg, const char *line, size_t n)
{
	struct at_engine *e = arg;
	memset(&e->req, 0, sizeof(e->req));
	e->req.eng = e;
	e->req.dev = e->dev;
	e->req.out = &e->out;
	/* Keep our own copy: args point into it while an async command runs. */
	memcpy(e->line, line, n);
	e->line[n] = '\0';
	line = e->line;

	/* §1.2/§1.3: empty lines and lines not starting with AT. */
	if (n < 2 || toupper((unsigned char)line[0]) != 'A' ||
	    toupper((unsigned char)line[1]) != 'T') {
		reject(e, AT_ERR_NO_AT);
		return;
	}
	char name[AT_NAME_MAX + 1];
	size_t k = 2, nl = 0;
	if (k < n && line[k] == '+')
		name[nl++] = line[k++];
	while (k < n && nl < AT_NAME_MAX) {
		char c = (char)toupper((unsigned char)line[k]);
		if (c == '\0' || !name_char(c))
			break;
		name[nl++] = c;
		k++;
	}
	name[nl] = '\0';
	if (k < n && nl == AT_NAME_MAX && name_char((char)toupper((unsigned char)line[k]))) {
		reject(e, AT_ERR_UNSUPPORTED);
		return;
	}

	enum at_type type = AT_EXEC;
	const char *params = NULL;
	size_t plen = 0;
	if (k < n && line[k] == '?') {
		if (k + 1 != n) {
			reject(e, AT_ERR_UNSUPPORTED);
			return;
		}
		type = AT_QUERY;
	} else if (k < n && line[k] == '=') {
		if (k + 1 < n && line[k + 1] == '?') {
			if (k + 2 != n) {
				reject(e, AT_ERR_UNSUPPORTED);
				return;
			}
			type = AT_TEST;
		} else {
			type = AT_SET;
			params = line + k + 1;
			plen = n - k - 1;
		}
	}
	/* Anything else after the name: execute (§1.3, binary behaviour). */

	const struct at_cmd *cmd = at_engine_lookup(e, name);
	if (!cmd) {
		reject(e, AT_ERR_UNSUPPORTED);
		return;
	}
	at_handler_fn fn = type == AT_TEST ? cmd->test
			 : type == AT_QUERY ? cmd->query
			 : type == AT_SET ? cmd->setup
					  : cmd->exec;
	if (!fn) {
		/* §1.12: a type the command does not have is a plain ERROR; the
		 * binary prints no ERR CODE line for it (§10, UNCONFIRMED). */
		reject(e, 0);
		return;
	}
	e->req.cmd = cmd;
	e->req.type = type;
	if (type == AT_SET && at_args_split(&e->req.args, params, plen) < 0) {
		reject(e, AT_ERR_PARA_NUM(AT_MAX_ARGS, AT_MAX_ARGS + 1));
		return;
	}
	run(e, fn);
}

static const struct at_parser_ops parser_ops = {
	.echo = on_echo,
	.line = on_line,
	.busy = on_busy,
	.data = on_data,
	.cancel = on_cancel,
};

void at_engine_init(struct at_engine *e, struct device *dev, const struct at_cmd_table *const *tables,
		    size_t ntables, const struct at_engine_hooks *hooks, at_sink_fn sink,
		    void *sink_arg)
{
	memset(e, 0, sizeof(*e));
	e->dev = dev;
	e->tables = tables;
	e->ntables = ntables;
	if (hooks)
		e->hooks = *hooks;
	e->echo = true; /* §1.6: echo is on after boot */
	at_out_init(&e->out, sink, sink_arg);
	at_parser_init(&e->parser, &parser_ops, e);
}

void at_engine_free(struct at_engine *e)
{
	if (e->loop)
		loop_timer_stop(e->loop, &e->guard_timer);
	at_out_free(&e->out);
}

static void arm_guard(struct at_engine *e)
{
	if (!e->loop)
		return;
	uint64_t due = at_parser_deadline(&e->parser), now = clock_now_ms();
	if (due)
		loop_timer_start(e->loop, &e->guard_timer, due > now ? due - now : 0);
	else
		loop_timer_stop(e->loop, &e->guard_timer);
}

static void guard_expired(void *arg)
{
	struct at_engine *e = arg;
	at_parser_tick(&e->parser, clock_now_ms());
	arm_guard(e);
}

void at_engine_set_loop(struct at_engine *e, struct loop *l)
{
	e->loop = l;
	loop_timer_init(&e->guard_timer, guard_expired, e);
}

void at_engine_passthrough(struct at_engine *e)
{
	at_parser_passthrough(&e->parser, clock_now_ms());
}

void at_engine_input(struct at_engine *e, const uint8_t *p, size_t n)
{
	uint64_t now = clock_now_ms();
	/* A decision that was due (a held "+++") comes before newer bytes. */
	at_parser_tick(&e->parser, now);
	at_parser_feed_at(&e->parser, p, n, now);
	arm_guard(e);
}

void at_engine_complete(struct at_engine *e, enum at_rc rc)
{
	if (!e->busy)
		return;
	if (rc == AT_RC_PROMPT) {
		/* The pending command reached its data phase (AT+CIPSEND to a
		 * UDP host name, once looked up): '>' now, its end later. */
		at_out_result(&e->out, rc);
		return;
	}
	finish(e, rc);
}

void at_engine_suspend(struct at_engine *e)
{
	e->busy = false;
	at_out_hold(&e->out, false);
	at_parser_set_mode(&e->parser, AT_PM_DISCARD);
}

void at_engine_resume(struct at_engine *e)
{
	at_parser_set_mode(&e->parser, AT_PM_CMD);
}

void at_engine_idle(struct at_engine *e)
{
	e->busy = false;
	at_out_hold(&e->out, false);
	at_parser_set_mode(&e->parser, AT_PM_CMD);
}

const struct at_cmd *at_engine_lookup(const struct at_engine *e, const char *name)
{
	for (size_t t = 0; t < e->ntables; t++)
		for (size_t i = 0; i < e->tables[t]->n; i++)
			if (strcmp(e->tables[t]->cmds[i].name, name) == 0)
				return &e->tables[t]->cmds[i];
	return NULL;
}

enum at_rc at_fail(struct at_req *r, uint32_t code)
{
	r->errcode = code;
	return AT_RC_ERROR;
}

bool at_nargs(struct at_req *r, int min, int max)
{
	if (r->args.n >= min && r->args.n <= max)
		return true;
	r->errcode = AT_ERR_PARA_NUM(r->args.n < min ? min : max, r->args.n);
	return false;
}

int at_get_int(struct at_req *r, int i, int64_t min, int64_t max, bool required, int64_t *out)
{
	int rc = at_arg_int(&r->args, i, out);
	if (rc < 0 || (rc == AT_ARG_OMITTED && required)) {
		r->errcode = AT_ERR_PARA_PARSE(i);
		return -1;
	}
	if (rc == AT_ARG_OK && (*out < min || *out > max)) {
		r->errcode = AT_ERR_PARA_INVALID(i);
		return -1;
	}
	return rc;
}

int at_get_str(struct at_req *r, int i, size_t maxlen, bool required, char *buf, size_t size)
{
	size_t len = 0;
	int rc = at_arg_str(&r->args, i, buf, size, &len);
	if (rc == -ENOSPC || (rc == AT_ARG_OK && len > maxlen)) {
		r->errcode = AT_ERR_PARA_LENGTH(i);
		return -1;
	}
	if (rc < 0 || (rc == AT_ARG_OMITTED && required)) {
		r->errcode = AT_ERR_PARA_PARSE(i);
		return -1;
	}
	if (rc == AT_ARG_OK && strlen(buf) != len) {
		/* An escaped NUL cannot be a C string parameter. */
		r->errcode = AT_ERR_PARA_INVALID(i);
		return -1;
	}
	return rc;
}
