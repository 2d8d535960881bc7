/* The OTA server's answers as cmd_ota.c reads them (protocol.md §2.24): pure
 * functions over the NUL-terminated body (cut at its first NUL, as received),
 * separate so they can be fuzzed (tests/fuzz/fuzz_replies.c). */
#ifndef ESPATD_CMD_OTA_PARSE_H
#define ESPATD_CMD_OTA_PARSE_H

#include <stdbool.h>

#define OTA_VERSION_MAX 64

/* A version AT+GMR may show and a URL may carry: 1..64 printable ASCII
 * characters, no blank, '"' or '\'. */
bool ota_version_ok(const char *v);

/* The answer to GET /v1/device/rom/?is_format_simple=true: 0 with the
 * version of its `"rom_version": "<v>",` in out, or -1 (none, too long,
 * not followed by ',', not ota_version_ok). */
int ota_parse_rom_version(const char *answer, char out[OTA_VERSION_MAX + 1]);

/* The answer to GET /v1/device/rom/ (AT+CIPFWVER): calls each() for every
 * `"version": "<v>"` in order whose value is ota_version_ok, until the end
 * or a value too long to hold; returns how many. */
int ota_parse_versions(const char *answer, void (*each)(void *arg, const char *v), void *arg);

#endif
