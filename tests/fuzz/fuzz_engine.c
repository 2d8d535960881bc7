/* libFuzzer harness: the whole AT engine with the real command tables and a
 * RAM-only device, behind a transport that swallows output. Chunk sizes come
 * from the first byte so fragmentation is explored; the loop turns between
 * chunks so asynchronous commands (join, scan, restart) complete. */
#include "core/loop.h"
#include "dev/device.h"
#include "net/policy.h"
#include "transport/serial.h"
#include "transport/transport.h"

#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

static int t_start(struct transport *t) { return 0; }
static ssize_t t_write(struct transport *t, const void *p, size_t n) { return (ssize_t)n; }
static void t_want(struct transport *t, bool on) {}
static void t_destroy(struct transport *t) {}

static const struct transport_ops ops = {
	.kind = "fuzz",
	.start = t_start,
	.write = t_write,
	.want_write = t_want,
	.want_read = t_want,
	.destroy = t_destroy,
};

static struct loop *loop;
static struct transport tr = { .ops = &ops };
static struct serial ser;
static struct device dev;
static struct policy loopback_only;

static void in(void *arg, const uint8_t *p, size_t n)
{
	device_input(arg, p, n);
}
static const struct serial_events sev = { .input = in };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!loop) {
		/* Inputs open links, look names up and ping: none of it may
		 * leave the machine. As root the fuzzer gets a network
		 * namespace of its own (nothing is reachable there); in any
		 * case links and pings may go to loopback only. */
		if (unshare(CLONE_NEWNET) < 0) {
			/* not root, or namespaces not allowed here: the
			 * loopback-only policy below still holds */
		}
		if (policy_add(&loopback_only, "127.0.0.0/8") < 0 ||
		    policy_add(&loopback_only, "::1") < 0)
			abort();
		if (loop_new(&loop) < 0)
			abort();
		tr.loop = loop;
		serial_init(&ser, &tr, &sev, &dev);
	}
	if (size < 1)
		return 0;
	struct device_opts o = {
		.profile = profile_find(data[0] & 0x80 ? "esp8266" : "esp32"),
		.state_dir = NULL,
		.boot_ms = 0,
		.uart = { 115200, 8, 1, 0, 0 },
		.policy = &loopback_only,
	};
	if (device_init(&dev, loop, &ser, &o) < 0)
		abort();
	dev.wifi.join_ms = 0;
	device_boot(&dev, 0);
	unsigned chunk = (data[0] & 0x7f) % 23 + 1;
	for (size_t off = 1; off < size;) {
		size_t n = size - off < chunk ? size - off : chunk;
		device_input(&dev, data + off, n);
		loop_turn(loop, 0);
		off += n;
	}
	for (int i = 0; i < 4; i++)
		loop_turn(loop, 0);
	device_free(&dev);
	return 0;
}
