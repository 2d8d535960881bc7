/* The one monotonic clock every timer reads (design.md §1, "injectable clock").
 * Unit tests replace the source to drive time without sleeping. */
#ifndef ESPATD_CORE_CLOCK_H
#define ESPATD_CORE_CLOCK_H

#include <stdint.h>

uint64_t clock_now_ms(void);
/* NULL restores CLOCK_MONOTONIC. */
void clock_set_source(uint64_t (*fn)(void));

/* Device wall-clock time: host realtime plus an offset (SNTP, SYSTIMESTAMP);
 * before it is set, seconds since the last clock_device_reset() (module boot);
 * espatd never sets the system clock (design.md §4). Seconds since epoch. */
int64_t clock_device_time(void);
void clock_device_set(int64_t unix_seconds);
void clock_device_reset(void);
int clock_device_is_set(void);

#endif
