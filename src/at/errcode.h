/* ESP-AT error codes printed as "ERR CODE:0x%08x" with AT+SYSLOG=1
 * (protocol.md §1.8, esp_at_core.h esp_at_errno_t). */
#ifndef ESPATD_AT_ERRCODE_H
#define ESPATD_AT_ERRCODE_H

#include <stdint.h>

#define AT_ERR(sub, ext) ((uint32_t)0x01000000u | ((uint32_t)(sub) << 16) | ((uint32_t)(ext) & 0xffffu))

enum at_err_sub {
	AT_SUB_OK = 0x00,
	AT_SUB_COMMON = 0x01,
	AT_SUB_NO_TERMINATOR = 0x02,
	AT_SUB_NO_AT = 0x03,
	AT_SUB_PARA_LENGTH = 0x04,
	AT_SUB_PARA_TYPE = 0x05,
	AT_SUB_PARA_NUM = 0x06,
	AT_SUB_PARA_INVALID = 0x07,
	AT_SUB_PARA_PARSE = 0x08,
	AT_SUB_UNSUPPORTED = 0x09,
	AT_SUB_EXEC_FAIL = 0x0a,
	AT_SUB_PROCESSING = 0x0b,
	AT_SUB_OP_ERROR = 0x0c,
};

#define AT_ERR_NO_AT AT_ERR(AT_SUB_NO_AT, 0)
#define AT_ERR_UNSUPPORTED AT_ERR(AT_SUB_UNSUPPORTED, 0)
#define AT_ERR_PROCESSING AT_ERR(AT_SUB_PROCESSING, 0)
#define AT_ERR_EXEC_FAIL AT_ERR(AT_SUB_EXEC_FAIL, 0)
#define AT_ERR_PARA_LENGTH(i) AT_ERR(AT_SUB_PARA_LENGTH, (i))
#define AT_ERR_PARA_INVALID(i) AT_ERR(AT_SUB_PARA_INVALID, (i))
#define AT_ERR_PARA_PARSE(i) AT_ERR(AT_SUB_PARA_PARSE, (i))
#define AT_ERR_PARA_NUM(need, given) AT_ERR(AT_SUB_PARA_NUM, ((need) << 8) | ((given) & 0xff))

#endif
