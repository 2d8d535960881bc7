#include "core/clock.h"

#include <time.h>

static uint64_t (*clock_source)(void);
static int64_t device_offset;  /* device time minus host realtime, seconds */
static int device_set;
static uint64_t boot_ms;    /* clock_now_ms() at the last module boot */

static uint64_t monotonic_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t clock_now_ms(void)
{
	return clock_source ? clock_source() : monotonic_ms();
}

void clock_set_source(uint64_t (*fn)(void))
{
	clock_source = fn;
}

int64_t clock_device_time(void)
{
	if (!device_set) /* unsynced: the module counts from 1970 at boot */
		return (int64_t)((clock_now_ms() - boot_ms) / 1000u);
	return (int64_t)time(NULL) + device_offset;
}

void clock_device_set(int64_t unix_seconds)
{
	device_offset = unix_seconds - (int64_t)time(NULL);
	device_set = 1;
}

void clock_device_reset(void)
{
	boot_ms = clock_now_ms();
	device_offset = 0;
	device_set = 0;
}

int clock_device_is_set(void)
{
	return device_set;
}
