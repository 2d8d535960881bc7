/* libFuzzer harness: the PEM checks every certificate and key meets when it
 * is provisioned (AT+SYSMFG writes, files under <state-dir>/mfg at boot).
 * Whatever the bytes, the checks answer yes or no with a reason, without
 * crashing, leaking or asking for a passphrase (encrypted PEM). The data is
 * handed on as the C string cmd_ssl.c hands on: cut at the first NUL. */
#include "tls/tls.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *pem = malloc(size + 1);
	if (!pem)
		return 0;
	memcpy(pem, data, size);
	pem[size] = '\0';
	char why[256];
	why[0] = '\0';
	if (tls_check_cert_pem(pem, why, sizeof(why)) < 0 && !why[0])
		abort(); /* a refusal always says why */
	why[0] = '\0';
	if (tls_check_key_pem(pem, why, sizeof(why)) < 0 && !why[0])
		abort();
	free(pem);
	return 0;
}
