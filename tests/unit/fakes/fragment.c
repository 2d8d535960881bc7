#include "fragment.h"

#include <stdlib.h>

void frag_feed(frag_sink sink, void *arg, const void *p, size_t n, enum frag_mode mode,
	       size_t n_size, unsigned *seed)
{
	const uint8_t *b = p;
	size_t off = 0;
	while (off < n) {
		size_t c;
		switch (mode) {
		case FRAG_ONE: c = 1; break;
		case FRAG_N: c = n_size; break;
		case FRAG_RANDOM: c = (size_t)(rand_r(seed) % 7) + 1; break;
		default: c = n; break;
		}
		if (c > n - off)
			c = n - off;
		sink(arg, b + off, c);
		off += c;
	}
}
