#include "core/loop.h"

#include "core/clock.h"
#include "core/log.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <unistd.h>

#define LOOP_BATCH 64
#define LOOP_MAX_SIGNALS 8

struct loop_sig {
	int signo;
	loop_timer_fn fn;
	void *arg;
};

struct loop {
	int epfd;
	struct loop_timer *timers; /* sorted by due, then insertion order */
	struct loop_defer *defers, **defers_tail; /* FIFO */
	struct loop_defer *lasts, **lasts_tail;   /* FIFO, after the defers */
	struct epoll_event batch[LOOP_BATCH];
	int batch_n;               /* events of the batch being dispatched */
	int batch_i;
	struct loop_io sigio;
	int sigfd;
	sigset_t sigmask;
	struct loop_sig sigs[LOOP_MAX_SIGNALS];
	int nsigs;
	bool stop;
	int stop_code;
	uint64_t timer_gen;
};

int loop_new(struct loop **out)
{
	struct loop *l = calloc(1, sizeof(*l));
	if (!l)
		return -ENOMEM;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0) {
		int e = errno;
		free(l);
		return -e;
	}
	l->sigfd = -1;
	l->defers_tail = &l->defers;
	l->lasts_tail = &l->lasts;
	sigemptyset(&l->sigmask);
	*out = l;
	return 0;
}

void loop_free(struct loop *l)
{
	if (!l)
		return;
	if (l->sigfd >= 0) {
		loop_io_del(l, &l->sigio);
		close(l->sigfd);
		sigprocmask(SIG_UNBLOCK, &l->sigmask, NULL);
	}
	close(l->epfd);
	free(l);
}

static uint32_t to_epoll(unsigned want)
{
	uint32_t ev = 0;
	if (want & LOOP_READ)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (want & LOOP_WRITE)
		ev |= EPOLLOUT;
	return ev;
}

int loop_io_add(struct loop *l, struct loop_io *io, int fd, unsigned want, loop_io_fn fn,
		void *arg)
{
	io->fd = fd;
	io->want = want;
	io->fn = fn;
	io->arg = arg;
	struct epoll_event ev = { .events = to_epoll(want), .data.ptr = io };
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	io->added = true;
	return 0;
}

int loop_io_want(struct loop *l, struct loop_io *io, unsigned want)
{
	if (!io->added)
		return -EINVAL;
	if (io->want == want)
		return 0;
	io->want = want;
	struct epoll_event ev = { .events = to_epoll(want), .data.ptr = io };
	if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
		return -errno;
	return 0;
}

void loop_io_del(struct loop *l, struct loop_io *io)
{
	if (!io->added)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, io->fd, NULL);
	io->added = false;
	/* Forget events of this io still waiting in the current batch, so a
	 * callback that closes another descriptor cannot trigger a stale one. */
	for (int i = l->batch_i; i < l->batch_n; i++)
		if (l->batch[i].data.ptr == io)
			l->batch[i].data.ptr = NULL;
}

void loop_timer_init(struct loop_timer *t, loop_timer_fn fn, void *arg)
{
	memset(t, 0, sizeof(*t));
	t->fn = fn;
	t->arg = arg;
}

void loop_timer_stop(struct loop *l, struct loop_timer *t)
{
	if (!t->armed)
		return;
	for (struct loop_timer **pp = &l->timers; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			break;
		}
	}
	t->next = NULL;
	t->armed = false;
}

void loop_timer_start(struct loop *l, struct loop_timer *t, uint64_t delay_ms)
{
	loop_timer_stop(l, t);
	t->due = clock_now_ms() + delay_ms;
	t->gen = l->timer_gen;
	struct loop_timer **pp = &l->timers;
	while (*pp && (*pp)->due <= t->due)
		pp = &(*pp)->next;
	t->next = *pp;
	*pp = t;
	t->armed = true;
}

static void signal_ready(void *arg, unsigned events)
{
	struct loop *l = arg;
	struct signalfd_siginfo si;
	while (read(l->sigfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		for (int i = 0; i < l->nsigs; i++)
			if ((uint32_t)l->sigs[i].signo == si.ssi_signo)
				l->sigs[i].fn(l->sigs[i].arg);
	}
}

int loop_signal(struct loop *l, int signo, loop_timer_fn fn, void *arg)
{
	if (l->nsigs == LOOP_MAX_SIGNALS)
		return -ENOSPC;
	sigaddset(&l->sigmask, signo);
	if (sigprocmask(SIG_BLOCK, &l->sigmask, NULL) < 0)
		return -errno;
	int fd = signalfd(l->sigfd, &l->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (l->sigfd < 0) {
		l->sigfd = fd;
		int rc = loop_io_add(l, &l->sigio, fd, LOOP_READ, signal_ready, l);
		if (rc < 0)
			return rc;
	}
	l->sigs[l->nsigs++] = (struct loop_sig){ signo, fn, arg };
	return 0;
}

static void run_timers(struct loop *l)
{
	uint64_t now = clock_now_ms();
	uint64_t gen = ++l->timer_gen;
	/* Fire timers due now, but not ones (re)armed by a callback of this
	 * round: a 0 ms re-arm waits for the next turn and cannot starve I/O. */
	while (l->timers && l->timers->due <= now && l->timers->gen < gen) {
		struct loop_timer *t = l->timers;
		l->timers = t->next;
		t->next = NULL;
		t->armed = false;
		t->fn(t->arg);
	}
}

void loop_defer_init(struct loop_defer *d, loop_timer_fn fn, void *arg)
{
	memset(d, 0, sizeof(*d));
	d->fn = fn;
	d->arg = arg;
}

void loop_defer_init_last(struct loop_defer *d, loop_timer_fn fn, void *arg)
{
	loop_defer_init(d, fn, arg);
	d->last = true;
}

void loop_defer(struct loop *l, struct loop_defer *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = NULL;
	struct loop_defer ***tail = d->last ? &l->lasts_tail : &l->defers_tail;
	**tail = d;
	*tail = &d->next;
}

void loop_defer_cancel(struct loop *l, struct loop_defer *d)
{
	if (!d->queued)
		return;
	struct loop_defer **head = d->last ? &l->lasts : &l->defers;
	struct loop_defer ***tail = d->last ? &l->lasts_tail : &l->defers_tail;
	for (struct loop_defer **pp = head; *pp; pp = &(*pp)->next) {
		if (*pp == d) {
			*pp = d->next;
			if (*tail == &d->next)
				*tail = pp;
			break;
		}
	}
	d->next = NULL;
	d->queued = false;
}

static struct loop_defer *defer_pop(struct loop_defer **head, struct loop_defer ***tail)
{
	struct loop_defer *d = *head;
	*head = d->next;
	if (!*head)
		*tail = head;
	d->next = NULL;
	d->queued = false;
	return d;
}

/* Work queued by the work itself runs in the same pass, up to a bound so a
 * callback that keeps re-queueing cannot keep the loop from I/O: the rest
 * runs after the next (then non-blocking) epoll_wait. The "last" queue runs
 * only when the other is empty. */
static void run_defers(struct loop *l)
{
	for (int i = 0; (l->defers || l->lasts) && i < 64; i++) {
		struct loop_defer *d = l->defers ? defer_pop(&l->defers, &l->defers_tail)
						 : defer_pop(&l->lasts, &l->lasts_tail);
		d->fn(d->arg);
	}
}

int loop_turn(struct loop *l, int max_wait_ms)
{
	int timeout = l->defers || l->lasts ? 0 : max_wait_ms;
	if (l->timers) {
		uint64_t now = clock_now_ms();
		uint64_t due = l->timers->due;
		int t = due <= now ? 0 : (due - now > INT_MAX ? INT_MAX : (int)(due - now));
		if (timeout < 0 || t < timeout)
			timeout = t;
	}
	int n = epoll_wait(l->epfd, l->batch, LOOP_BATCH, timeout);
	if (n < 0) {
		if (errno == EINTR)
			return 0;
		return -errno;
	}
	l->batch_n = n;
	for (l->batch_i = 0; l->batch_i < l->batch_n; l->batch_i++) {
		struct epoll_event *e = &l->batch[l->batch_i];
		struct loop_io *io = e->data.ptr;
		if (!io)
			continue;
		unsigned ev = 0;
		if (e->events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP))
			ev |= LOOP_READ;
		if (e->events & EPOLLOUT)
			ev |= LOOP_WRITE;
		if (e->events & (EPOLLERR | EPOLLHUP))
			ev |= LOOP_ERR;
		io->fn(io->arg, ev);
		if (l->stop)
			break;
	}
	l->batch_n = l->batch_i = 0;
	run_timers(l);
	run_defers(l);
	return 0;
}

int loop_run(struct loop *l)
{
	while (!l->stop) {
		int rc = loop_turn(l, -1);
		if (rc < 0) {
			log_error("event loop failed: %s", strerror(-rc));
			return rc;
		}
	}
	return l->stop_code;
}

void loop_stop(struct loop *l, int code)
{
	l->stop = true;
	l->stop_code = code;
}

bool loop_stopping(const struct loop *l)
{
	return l->stop;
}
