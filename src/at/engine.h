/* The AT engine: parser -> command table lookup -> handler -> result
 * (protocol.md §1.3, §1.8, §1.9). One command in flight; anything typed
 * meanwhile gets `busy p...`. Handlers never see bytes, only parsed args. */
#ifndef ESPATD_AT_ENGINE_H
#define ESPATD_AT_ENGINE_H

#include "at/args.h"
#include "at/errcode.h"
#include "at/out.h"
#include "at/parser.h"
#include "core/loop.h"

#include <stdbool.h>
#include <stdint.h>

struct at_engine;
struct device;

enum at_type { AT_TEST, AT_QUERY, AT_SET, AT_EXEC };

struct at_req {
	struct at_engine *eng;
	struct device *dev;
	struct at_out *out;
	const struct at_cmd *cmd;
	enum at_type type;
	struct at_args args;  /* set form only; points into the line buffer */
	uint32_t errcode;     /* ERR CODE printed with an ERROR result */
};

typedef enum at_rc (*at_handler_fn)(struct at_req *r);

/* ESP-AT's own four-handler shape (esp_at_cmd_struct), name with its '+'. */
struct at_cmd {
	const char *name;
	at_handler_fn test, query, setup, exec;
};

struct at_cmd_table {
	const char *chapter;
	const struct at_cmd *cmds;
	size_t n;
};
#define AT_TABLE(chapter_, arr) \
	{ .chapter = (chapter_), .cmds = (arr), .n = sizeof(arr) / sizeof((arr)[0]) }

struct at_engine_hooks {
	/* After every command's result (the store commit lives here). */
	void (*after_command)(struct device *dev);
	/* "AT+RST\r\n" typed while busy (§1.9): force a restart. */
	void (*force_restart)(struct device *dev);
	/* Data-phase bytes for the running command (CIPSEND and friends). */
	void (*data)(struct device *dev, const uint8_t *p, size_t n, int done);
	/* "+++" during a data phase (§2.7). */
	void (*cancel)(struct device *dev);
};

struct at_engine {
	struct at_parser parser;
	struct at_out out;
	struct device *dev;
	const struct at_cmd_table *const *tables;
	size_t ntables;
	struct at_engine_hooks hooks;
	struct loop *loop;    /* for the "+++" guard timer; NULL in unit tests */
	struct loop_timer guard_timer;
	bool echo;
	bool busy;            /* a command is in progress */
	struct at_req req;    /* the command in progress */
	char line[AT_LINE_KEEP_MAX + 2]; /* copy of the running command line */
};

void at_engine_init(struct at_engine *e, struct device *dev, const struct at_cmd_table *const *tables,
		    size_t ntables, const struct at_engine_hooks *hooks, at_sink_fn sink,
		    void *sink_arg);
void at_engine_free(struct at_engine *e);
void at_engine_set_loop(struct at_engine *e, struct loop *l);
/* Enter passthrough: every byte is data until a guarded "+++" (§4). */
void at_engine_passthrough(struct at_engine *e);
/* One transport read. */
void at_engine_input(struct at_engine *e, const uint8_t *p, size_t n);
/* Finish an AT_RC_PENDING command with its result; AT_RC_PROMPT instead
 * prints '>' for the data phase the handler armed, which ends with another
 * at_engine_complete(). */
void at_engine_complete(struct at_engine *e, enum at_rc rc);
/* Drop everything typed until at_engine_resume() (module rebooting). */
void at_engine_suspend(struct at_engine *e);
void at_engine_resume(struct at_engine *e);
/* Back to idle command mode (after a data phase or on reset). */
void at_engine_idle(struct at_engine *e);

/* Find a command by upper-case name ("+GMR", "E0", ""). */
const struct at_cmd *at_engine_lookup(const struct at_engine *e, const char *name);

/* Parameter getters for handlers: they record the ESP-AT error code in r on
 * failure and return -1; otherwise AT_ARG_OK or AT_ARG_OMITTED. A required
 * parameter that is omitted is a parse failure (§1.4). */
int at_get_int(struct at_req *r, int i, int64_t min, int64_t max, bool required, int64_t *out);
int at_get_str(struct at_req *r, int i, size_t maxlen, bool required, char *buf, size_t size);
/* Check the parameter count is within [min, max]; else record error. */
bool at_nargs(struct at_req *r, int min, int max);
/* Record an error code and return AT_RC_ERROR. */
enum at_rc at_fail(struct at_req *r, uint32_t code);

#endif
