/* Command tables, one per ESP-AT chapter, and the per-chapter hooks the
 * device calls at boot (settings load) and on events. */
#ifndef ESPATD_CMD_CMD_H
#define ESPATD_CMD_CMD_H

#include "at/engine.h"

struct device;

extern const struct at_cmd_table cmd_basic_table;
extern const struct at_cmd_table cmd_wifi_table;

/* Reset the chapter's settings to factory values, then load saved ones. */
void cmd_basic_load(struct device *d);
void cmd_wifi_load(struct device *d);
/* After "ready": auto-join a saved access point (protocol.md §5.5). */
void cmd_wifi_boot(struct device *d);
/* Module reset: drop Wi-Fi state without URCs. */
void cmd_wifi_reset(struct device *d);
extern const struct wifi_events cmd_wifi_events;

/* cmd_services.c: AT+PING and SNTP (AT+CIPSNTPCFG/TIME/INTV). */
extern const struct at_cmd_table cmd_services_table;
/* Boot: factory values (SNTP off; nothing is saved). */
void cmd_services_load(struct device *d);
/* Module reset: drop a ping in flight and stop SNTP, without output. */
void cmd_services_reset(struct device *d);
void cmd_services_free(struct device *d);
/* cmd_ota.c: AT+CIUPDATE, AT+CIPFWVER (protocol.md §2.24). */
extern const struct at_cmd_table cmd_ota_table;
/* Boot: the installed OTA version (AT+GMR shows it). */
void cmd_ota_load(struct device *d);
/* Module reset: abort a download in flight, without output. */
void cmd_ota_reset(struct device *d);
void cmd_ota_free(struct device *d);
extern const struct at_cmd_table cmd_mdns_table; /* cmd_mdns.c: AT+MDNS (protocol.md §2.34) */
void cmd_mdns_stop(struct device *d); /* responder off, no goodbyes: reset, station down, free */

#endif
