/* The module being imitated (--profile): its AT+GMR text and the limits
 * firmware meets on real hardware (design.md §4 "Profiles"). */
#ifndef ESPATD_DEV_PROFILE_H
#define ESPATD_DEV_PROFILE_H

#include <stdbool.h>

struct profile {
	const char *name;       /* "esp32" */
	const char *chip;       /* "ESP32", as in "- ESP32 -" of AT+GMR */
	const char *gmr[4];     /* AT+GMR lines without CR LF */
	unsigned send_max;      /* AT+CIPSEND / CIPSENDEX length limit */
	unsigned pt_packet;     /* passthrough packet size */
	unsigned ssl_links;     /* SSL links at once */
	bool ssl_server;        /* AT+CIPSERVER "SSL" available */
	int rf_min, rf_max, rf_default;
	bool rf_ble;            /* RFPOWER has the three BLE fields */
	const char *hostname;   /* default AT+CWHOSTNAME */
	int cwmode_default;
	bool gslp_zero_sleeps;  /* AT+GSLP=0 sleeps until reset (ESP8266), not a restart */
};

const struct profile *profile_find(const char *name);
/* Effective Wi-Fi TX power the module reports for a set value. */
int profile_rf_effective(const struct profile *p, int set);

#endif
