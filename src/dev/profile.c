#include "dev/profile.h"

#include <string.h>

/* AT+GMR: the version numbers are those drivers check (lwesp wants >= 3.2.0
 * on ESP32 and >= 2.2.1 on ESP8266, protocol.md §5.1); the commit fields say
 * espatd so nobody mistakes this for an Espressif build. Fixed strings keep
 * the output identical across builds. */
static const struct profile profiles[] = {
	{
		.name = "esp32",
		.chip = "ESP32",
		.gmr = {
			"AT version:3.4.0.0(espatd - ESP32 - Jun  7 2024 03:48:17)",
			"SDK version:v5.0.6-espatd",
			"compile time(espatd):Jun  7 2024 04:46:00",
			"Bin version:v3.4.0.0(WROOM-32)",
		},
		.send_max = 8192,
		.pt_packet = 2920,
		.ssl_links = 5,
		.ssl_server = true,
		.rf_min = 40, .rf_max = 84, .rf_default = 78,
		.rf_ble = true,
		.hostname = "espressif",
		.cwmode_default = 1,
	},
	{
		.name = "esp8266",
		.chip = "ESP8266",
		.gmr = {
			"AT version:2.2.1.0(espatd - ESP8266 - Aug  6 2021 06:50:15)",
			"SDK version:v3.4-22-g967752e2",
			"compile time(espatd):Aug  6 2021 07:02:22",
			"Bin version:2.2.1(WROOM-02)",
		},
		.send_max = 2048,
		.pt_packet = 1460,
		.ssl_links = 1,
		.ssl_server = false,
		.rf_min = 40, .rf_max = 82, .rf_default = 78,
		.rf_ble = false,
		.hostname = "LWIP",
		.cwmode_default = 1,
		.gslp_zero_sleeps = true, /* wakes by GPIO16 on RST, or not (Basic AT+GSLP) */
	},
};

const struct profile *profile_find(const char *name)
{
	for (size_t i = 0; i < sizeof(profiles) / sizeof(profiles[0]); i++)
		if (strcmp(profiles[i].name, name) == 0)
			return &profiles[i];
	return NULL;
}

/* The radio rounds the requested power down to the steps it supports; the
 * query shows the effective value (ESP-AT Basic AT+RFPOWER tables). */
int profile_rf_effective(const struct profile *p, int set)
{
	static const int esp32[][2] = { { 78, 78 }, { 72, 72 }, { 66, 66 }, { 60, 60 },
					{ 56, 56 }, { 52, 52 }, { 44, 44 }, { 0, 34 } };
	static const int esp8266[][2] = { { 82, 82 }, { 78, 78 }, { 74, 74 }, { 68, 68 },
					  { 64, 64 }, { 56, 56 }, { 49, 49 }, { 0, 33 } };
	const int(*t)[2] = p->rf_ble ? esp32 : esp8266;
	for (int i = 0;; i++)
		if (set >= t[i][0])
			return t[i][1];
}
