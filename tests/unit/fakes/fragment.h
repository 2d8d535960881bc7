/* A fragmenting feeder (design.md §5, Zephyr's mock pipe with a limit): the
 * same bytes reach the engine one byte per read, N bytes per read, or in
 * random cuts, so every test exercises fragmentation. */
#ifndef ESPATD_TEST_FRAGMENT_H
#define ESPATD_TEST_FRAGMENT_H

#include <stddef.h>
#include <stdint.h>

enum frag_mode { FRAG_WHOLE, FRAG_ONE, FRAG_N, FRAG_RANDOM };

typedef void (*frag_sink)(void *arg, const uint8_t *p, size_t n);

/* Feed p[0..n) to sink in chunks according to mode (n_size for FRAG_N,
 * seed for FRAG_RANDOM). */
void frag_feed(frag_sink sink, void *arg, const void *p, size_t n, enum frag_mode mode,
	       size_t n_size, unsigned *seed);

#endif
