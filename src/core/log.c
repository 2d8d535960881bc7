#include "core/log.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static enum log_level current = LOGL_INFO;
static const char *const names[] = { "error", "warn", "info", "debug" };

static void (*before_line)(void *arg);
static void *before_arg;

void log_set_before_line(void (*fn)(void *arg), void *arg)
{
	before_line = fn;
	before_arg = arg;
}

void log_set_level(enum log_level lv)
{
	current = lv;
}

enum log_level log_get_level(void)
{
	return current;
}

int log_parse_level(const char *s, enum log_level *out)
{
	for (unsigned i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (strcasecmp(s, names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = LOGL_WARN;
		return 0;
	}
	return -1;
}

void log_msg(enum log_level lv, const char *fmt, ...)
{
	if (lv > current)
		return;
	static bool in_hook; /* the hook may log (a failed write) */
	if (before_line && !in_hook) {
		in_hook = true;
		before_line(before_arg);
		in_hook = false;
	}
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	char line[1024];
	int n = snprintf(line, sizeof(line), "%02d:%02d:%02d.%03ld espatd %s: ", tm.tm_hour,
			 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, names[lv]);
	va_list ap;
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof(line))
		vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line so concurrent writers never interleave mid-line. */
	fprintf(stderr, "%s\n", line);
	fflush(stderr);
}
