/* Log lines for a person: to stderr with a timestamp and level. */
#ifndef ESPATD_CORE_LOG_H
#define ESPATD_CORE_LOG_H

enum log_level { LOGL_ERROR, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

void log_set_level(enum log_level lv);
enum log_level log_get_level(void);
int log_parse_level(const char *s, enum log_level *out);
/* Called before a line is written: main.c lets the serial side write what it
 * has queued, so a log line about an event still follows the event's bytes
 * although the serial side writes at the end of a loop turn (F7). */
void log_set_before_line(void (*fn)(void *arg), void *arg);
void log_msg(enum log_level lv, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOGL_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOGL_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOGL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOGL_DEBUG, __VA_ARGS__)

#endif
