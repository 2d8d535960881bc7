/* libFuzzer harness for the bytes espatd parses that come from outside the
 * serial line and are its own code: the store file loader and SNTP replies
 * (DNS is c-ares', HTTP is libcurl's). The first byte picks which. */
#include "net/sntp.h"
#include "store/store.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1) {
		struct store *s;
		if (store_open(&s, NULL) < 0)
			abort();
		store_load_buffer(s, data + 1, size - 1);
		char buf[64];
		int64_t v;
		store_get_str(s, "wifi", "ssid", buf, sizeof(buf));
		store_get_int(s, "sys", "sysmsg", &v);
		store_close(s);
	} else {
		struct sntp_reply r;
		uint64_t sent = 0;
		if (size >= 9)
			memcpy(&sent, data + 1, 8);
		sntp_parse_reply(data + 1, size - 1, sent, &r);
		int minutes, shown;
		int64_t tz = 0;
		memcpy(&tz, data, size < 8 ? size : 8);
		sntp_tz_parse(tz, &minutes, &shown);
		char out[64];
		sntp_asctime(tz, out, sizeof(out));
	}
	return 0;
}
