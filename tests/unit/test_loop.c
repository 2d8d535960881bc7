/* The loop's end-of-turn work (loop_defer) and what the serial side builds
 * on it: everything one turn writes leaves in one write(). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "core/clock.h"
#include "core/loop.h"
#include "transport/serial.h"
#include "transport/transport.h"

#include <errno.h>
#include <string.h>
#include <time.h>

/* ---- loop_defer ------------------------------------------------------------ */

static char order[32];
static size_t norder;

struct step {
	char name;
	struct loop *l;
	struct loop_defer *then; /* queued by this step when it runs */
	struct loop_defer d;
};

static void step_run(void *arg)
{
	struct step *s = arg;
	if (norder < sizeof(order) - 1)
		order[norder++] = s->name;
	if (s->then)
		loop_defer(s->l, s->then);
}

static void step_init(struct step *s, struct loop *l, char name, bool last)
{
	memset(s, 0, sizeof(*s));
	s->name = name;
	s->l = l;
	if (last)
		loop_defer_init_last(&s->d, step_run, s);
	else
		loop_defer_init(&s->d, step_run, s);
}

static void reset_order(void)
{
	memset(order, 0, sizeof(order));
	norder = 0;
}

static void test_defer_order(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct step a, b, c, z;
	step_init(&a, l, 'a', false);
	step_init(&b, l, 'b', false);
	step_init(&c, l, 'c', false);
	step_init(&z, l, 'z', true);
	reset_order();
	/* the "last" one queued first still runs after the others; a second
	 * loop_defer of a queued one changes nothing; work queued by work
	 * runs in the same pass, before the last queue */
	a.then = &c.d;
	loop_defer(l, &z.d);
	loop_defer(l, &a.d);
	loop_defer(l, &b.d);
	loop_defer(l, &a.d);
	/* queued outside a turn: the turn does not sleep (10 s would fail
	 * the test's timeout) */
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(loop_turn(l, 10000), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	assert_true(t1.tv_sec - t0.tv_sec < 2);
	assert_string_equal(order, "abcz");
	/* nothing queued any more: a turn runs nothing */
	reset_order();
	assert_int_equal(loop_turn(l, 0), 0);
	assert_string_equal(order, "");
	loop_free(l);
}

static void test_defer_cancel(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct step a, b, c, z;
	step_init(&a, l, 'a', false);
	step_init(&b, l, 'b', false);
	step_init(&c, l, 'c', false);
	step_init(&z, l, 'z', true);
	reset_order();
	loop_defer(l, &a.d);
	loop_defer(l, &b.d);
	loop_defer(l, &c.d);
	loop_defer(l, &z.d);
	loop_defer_cancel(l, &c.d); /* the tail: the queue must stay appendable */
	loop_defer_cancel(l, &z.d);
	loop_defer_cancel(l, &z.d); /* twice: harmless */
	loop_defer(l, &z.d);
	loop_defer(l, &c.d);
	loop_defer_cancel(l, &a.d); /* the head */
	assert_int_equal(loop_turn(l, 0), 0);
	assert_string_equal(order, "bcz");
	loop_free(l);
}

/* A step that queues itself again every time cannot hold the loop: the pass
 * is bounded, the rest waits for the next turn. */
static void test_defer_requeue_bounded(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct step a;
	step_init(&a, l, 'a', false);
	a.then = &a.d;
	reset_order();
	loop_defer(l, &a.d);
	assert_int_equal(loop_turn(l, 0), 0);
	assert_true(norder > 1);
	loop_defer_cancel(l, &a.d);
	loop_free(l);
}

/* ---- the serial side writes once per turn ---------------------------------- */

static int writes;
static char wrote[4096];
static size_t nwrote;
static ssize_t fake_room = -1; /* bytes the fake takes per write; -1 all */

static int f_start(struct transport *t)
{
	(void)t;
	return 0;
}

static ssize_t f_write(struct transport *t, const void *p, size_t n)
{
	(void)t;
	writes++;
	if (fake_room >= 0 && n > (size_t)fake_room)
		n = (size_t)fake_room;
	if (n == 0)
		return -EAGAIN;
	if (nwrote + n <= sizeof(wrote)) {
		memcpy(wrote + nwrote, p, n);
		nwrote += n;
	}
	return (ssize_t)n;
}

static void f_want(struct transport *t, bool on)
{
	(void)t;
	(void)on;
}

static void f_destroy(struct transport *t)
{
	(void)t;
}

static const struct transport_ops fake_ops = {
	.kind = "fake",
	.start = f_start,
	.write = f_write,
	.want_write = f_want,
	.want_read = f_want,
	.destroy = f_destroy,
};

static const struct serial_events no_events;

static void test_serial_coalesces_a_turn(void **state)
{
	(void)state;
	struct loop *l;
	assert_int_equal(loop_new(&l), 0);
	struct transport t = { .ops = &fake_ops, .loop = l };
	struct serial s;
	assert_int_equal(serial_init(&s, &t, &no_events, NULL), 0);
	writes = 0;
	nwrote = 0;
	serial_write(&s, "\r\nRecv 5 bytes\r\n", 16);
	serial_write(&s, "\r\nSEND OK\r\n", 11);
	assert_int_equal(writes, 0); /* nothing before the end of the turn */
	assert_int_equal(loop_turn(l, 0), 0);
	assert_int_equal(writes, 1);
	assert_memory_equal(wrote, "\r\nRecv 5 bytes\r\n\r\nSEND OK\r\n", 27);
	/* serial_flush() (before a log line) writes at once */
	serial_write(&s, "\r\nOK\r\n", 6);
	serial_flush(&s);
	assert_int_equal(writes, 2);
	assert_int_equal(loop_turn(l, 0), 0);
	assert_int_equal(writes, 2); /* the end of the turn has nothing left */
	/* past SERIAL_COALESCE_MAX the queue is written at once */
	static char big[SERIAL_COALESCE_MAX];
	memset(big, 'x', sizeof(big));
	nwrote = sizeof(wrote); /* do not record */
	serial_write(&s, big, sizeof(big));
	assert_int_equal(writes, 3);
	assert_int_equal(serial_queued(&s), 0);
	serial_free(&s);
	loop_free(l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defer_order),
		cmocka_unit_test(test_defer_cancel),
		cmocka_unit_test(test_defer_requeue_bounded),
		cmocka_unit_test(test_serial_coalesces_a_turn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
