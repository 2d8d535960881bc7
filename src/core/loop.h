/* One thread, one event loop: epoll for descriptors, a sorted timer list read
 * against the injectable clock, signalfd for signals (design.md §1). */
#ifndef ESPATD_CORE_LOOP_H
#define ESPATD_CORE_LOOP_H

#include <stdbool.h>
#include <stdint.h>

struct loop;

enum { LOOP_READ = 1u, LOOP_WRITE = 2u, LOOP_ERR = 4u };

typedef void (*loop_io_fn)(void *arg, unsigned events);
typedef void (*loop_timer_fn)(void *arg);

/* Caller-owned registration of one descriptor; keep it alive while added. */
struct loop_io {
	int fd;
	unsigned want;
	loop_io_fn fn;
	void *arg;
	bool added;
};

/* Caller-owned one-shot timer. */
struct loop_timer {
	uint64_t due;  /* clock_now_ms() value at which it fires */
	loop_timer_fn fn;
	void *arg;
	struct loop_timer *next;
	uint64_t gen; /* loop round in which it was armed */
	bool armed;
};

int loop_new(struct loop **out);
void loop_free(struct loop *l);

/* Register fd; `want` is a LOOP_READ|LOOP_WRITE mask (may be 0). */
int loop_io_add(struct loop *l, struct loop_io *io, int fd, unsigned want,
		loop_io_fn fn, void *arg);
int loop_io_want(struct loop *l, struct loop_io *io, unsigned want);
/* Safe to call from any callback, also for an io whose event is pending. */
void loop_io_del(struct loop *l, struct loop_io *io);

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg);
/* (Re)arm to fire `delay_ms` from now; 0 = on the next loop turn. */
void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms);
void loop_timer_stop(struct loop *l, struct loop_timer *t);

/* Caller-owned piece of work run once at the end of the current loop turn,
 * after the I/O events and timers (redis ae's "beforesleep"). The serial
 * side uses it to write everything one turn produced in one write(): the
 * data, the OK and the next notice of AT+CIPRECVDATA, "Recv N bytes" with
 * "SEND OK" (docs/performance.md, F7). Queued outside a turn, it runs at the
 * end of the next one, which then does not sleep. */
struct loop_defer {
	loop_timer_fn fn;
	void *arg;
	struct loop_defer *next;
	bool queued;
	bool last; /* runs after every other piece of deferred work */
};

void loop_defer_init(struct loop_defer *d, loop_timer_fn fn, void *arg);
/* The serial side's write comes after the work that produces output (a
 * send's result: "SEND OK" joins the "Recv N bytes" before it). */
void loop_defer_init_last(struct loop_defer *d, loop_timer_fn fn, void *arg);
/* Queue `d` (no-op if already queued); a callback may queue more work,
 * which runs in the same pass. */
void loop_defer(struct loop *l, struct loop_defer *d);
void loop_defer_cancel(struct loop *l, struct loop_defer *d);

/* Route a signal to fn through a signalfd (blocks it for normal delivery). */
int loop_signal(struct loop *l, int signo, loop_timer_fn fn, void *arg);

/* Run one turn: wait for events or the next timer (at most max_wait_ms,
 * -1 = unbounded) and dispatch them. Returns 0 or -errno. */
int loop_turn(struct loop *l, int max_wait_ms);
/* Turn until loop_stop(); returns the code given to loop_stop(). */
int loop_run(struct loop *l);
void loop_stop(struct loop *l, int code);
bool loop_stopping(const struct loop *l);

#endif
