/* Private to uart.c, exposed for unit tests: ESP-AT line settings as a
 * kernel termios2. Uses <asm/termbits.h>, so never include this together
 * with glibc's <termios.h>. */
#ifndef ESPATD_TRANSPORT_UART_TERMIOS_H
#define ESPATD_TRANSPORT_UART_TERMIOS_H

#include "transport/transport.h"

#include <asm/termbits.h>

/* Edit *tio in place: raw mode, BOTHER speed, size, parity, stop bits and
 * flow from *c (which must be valid). Other flags are kept. */
void uart_build_termios(struct termios2 *tio, const struct line_cfg *c);

#endif
