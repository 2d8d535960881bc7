/* libFuzzer harness: the certificate and key checks every value meets when
 * it is provisioned (AT+SYSMFG writes, files under <state-dir>/mfg at boot,
 * OTA certificate partitions): PEM text or DER bytes. Whatever the bytes,
 * the checks answer yes or no with a reason, without crashing, leaking or
 * asking for a passphrase (encrypted PEM). */
#include "tls/tls.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size copy, so ASan sees any read past the end */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	memcpy(p, data, size);
	char why[256];
	why[0] = '\0';
	if (tls_check_cert(p, size, why, sizeof(why)) < 0 && !why[0])
		abort(); /* a refusal always says why */
	why[0] = '\0';
	if (tls_check_key(p, size, why, sizeof(why)) < 0 && !why[0])
		abort();
	free(p);
	return 0;
}
