#include "core/trace.h"

#include "core/log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static FILE *trace_file;

int trace_open(const char *path)
{
	FILE *f = fopen(path, "ae");
	if (!f)
		return -errno;
	trace_file = f;
	setvbuf(f, NULL, _IOLBF, 0);
	return 0;
}

void trace_close(void)
{
	if (trace_file)
		fclose(trace_file);
	trace_file = NULL;
}

static void stamp(char *out, size_t n)
{
	struct timespec ts;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &ts);
	localtime_r(&ts.tv_sec, &tm);
	snprintf(out, n, "%02d:%02d:%02d.%06ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
		 ts.tv_nsec / 1000);
}

/* One record per chunk: time, direction, byte count, then the bytes as a C
 * string literal, wrapped after each LF so lines of the protocol stay lines. */
void trace_bytes(enum trace_dir dir, const void *p, size_t n)
{
	if (!trace_file || n == 0)
		return;
	char ts[32];
	stamp(ts, sizeof(ts));
	const unsigned char *b = p;
	fprintf(trace_file, "%s %s %5zu \"", ts, dir == TRACE_IN ? "mcu>" : "<esp", n);
	size_t col = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = b[i];
		switch (c) {
		case '\r': col += (size_t)fputs("\\r", trace_file); break;
		case '\n': col += (size_t)fputs("\\n", trace_file); break;
		case '\t': col += (size_t)fputs("\\t", trace_file); break;
		case '\\': col += (size_t)fputs("\\\\", trace_file); break;
		case '"': col += (size_t)fputs("\\\"", trace_file); break;
		default:
			if (c >= 0x20 && c < 0x7f) {
				fputc(c, trace_file);
				col++;
			} else {
				col += (size_t)fprintf(trace_file, "\\x%02x", c);
			}
		}
		if (i + 1 < n && (c == '\n' || col >= 100)) {
			fputs("\"\n                             \"", trace_file);
			col = 0;
		}
	}
	fputs("\"\n", trace_file);
}

void trace_note(const char *fmt, ...)
{
	if (!trace_file)
		return;
	char ts[32];
	stamp(ts, sizeof(ts));
	fprintf(trace_file, "%s ---- ", ts);
	va_list ap;
	va_start(ap, fmt);
	vfprintf(trace_file, fmt, ap);
	va_end(ap);
	fputc('\n', trace_file);
}
