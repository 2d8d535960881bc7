/* Byte-fed AT receive state machine (protocol.md §1.2, §1.5, §1.6, §1.9).
 * Knows nothing of descriptors: it is fed chunks (one transport read each)
 * and reports echo bytes, complete lines, busy chunks and data-phase bytes. */
#ifndef ESPATD_AT_PARSER_H
#define ESPATD_AT_PARSER_H

#include <stddef.h>
#include <stdint.h>

/* More than 255 bytes without a terminator are discarded (protocol.md §1.5). */
#define AT_LINE_KEEP_MAX 255

struct at_parser_ops {
	/* Command-mode bytes to echo, exactly as they arrived, up to and
	 * including the terminator (§1.6); the engine decides if echo is on. */
	void (*echo)(void *arg, const uint8_t *p, size_t n);
	/* A complete line, without its CR LF (may be empty or hold NULs). */
	void (*line)(void *arg, const char *line, size_t n);
	/* Input that arrived while busy: once per chunk, or for the rest of a
	 * chunk after a line or after a complete data phase (§1.9). */
	void (*busy)(void *arg, const uint8_t *p, size_t n);
	/* Data-phase bytes (after a '>' prompt). `done` on the last one. */
	void (*data)(void *arg, const uint8_t *p, size_t n, int done);
	/* A read of exactly "+++" during a data phase, or a guarded "+++" in
	 * passthrough (protocol.md §2.7). */
	void (*cancel)(void *arg);
};

/* Silence needed before and after "+++", and the most time between its
 * first and last '+' (§2.7: 20 ms). */
#define AT_PLUS_GUARD_MS 20

enum at_pmode {
	AT_PM_CMD,      /* assembling command lines */
	AT_PM_BUSY,     /* a command is running: every chunk is busy */
	AT_PM_DATA,     /* counting `data_left` raw bytes */
	AT_PM_DISCARD,  /* dropping input silently (restart, before SEND OK) */
	AT_PM_PASSTHROUGH, /* everything is data until a guarded "+++" (§2.7, §4) */
};

struct at_parser {
	const struct at_parser_ops *ops;
	void *arg;
	enum at_pmode mode;
	size_t data_left;
	int ex;         /* AT+CIPSENDEX: "\\0" ends the data, "\\x" is x (§2.12) */
	int ex_escape;  /* the previous data byte was a backslash */
	/* passthrough */
	uint64_t last_rx;    /* arrival time of the latest chunk */
	uint64_t plus_first; /* arrival of the first held '+' */
	int plus;            /* '+' held back as a possible exit (0..3) */
	size_t len;
	char line[AT_LINE_KEEP_MAX + 2];
};

void at_parser_init(struct at_parser *p, const struct at_parser_ops *ops, void *arg);
void at_parser_feed(struct at_parser *p, const uint8_t *buf, size_t n);
/* Same, with the arrival time (the passthrough "+++" guard needs it). */
void at_parser_feed_at(struct at_parser *p, const uint8_t *buf, size_t n, uint64_t now);
/* Enter passthrough at time now (the prompt went out then). */
void at_parser_passthrough(struct at_parser *p, uint64_t now);
/* When at_parser_tick() must run next (0: nothing pending). */
uint64_t at_parser_deadline(const struct at_parser *p);
/* Time passed: a held "+++" followed by silence exits (cancel op); held
 * '+' that did not become "+++" in time are handed on as data. */
void at_parser_tick(struct at_parser *p, uint64_t now);
/* Set the mode; entering AT_PM_CMD starts a fresh line. */
void at_parser_set_mode(struct at_parser *p, enum at_pmode m);
/* Enter AT_PM_DATA for exactly n (> 0) bytes. */
void at_parser_expect_data(struct at_parser *p, size_t n);
/* AT+CIPSENDEX: at most n bytes, ended early by backslash-zero; backslash
 * escapes are removed from the data handed on (§2.12). */
void at_parser_expect_data_ex(struct at_parser *p, size_t n);

#endif
