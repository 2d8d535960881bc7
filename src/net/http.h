/* HTTP(S) GET through libcurl's multi interface, driven by the event loop
 * (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION on loop_io/loop_timer). No AT text
 * here: callers (cmd_ota.c) turn the events into progress lines. Every
 * connection is checked against the --allow egress policy before connect();
 * HTTPS always verifies the peer and host name against ca_file. */
#ifndef ESPATD_NET_HTTP_H
#define ESPATD_NET_HTTP_H

#include <stddef.h>

struct loop;
struct policy;
struct http;
struct http_req;

enum http_event { HTTP_EV_RESOLVED, HTTP_EV_CONNECTED };

struct http_get {
	const char *url;
	const char *token;          /* "Authorization: token <token>"; NULL: none */
	const char *ca_file;        /* https: the only trusted CA (required) */
	long timeout_ms;            /* whole transfer; 0 = none */
	const struct policy *policy;
	/* Address known / connection up (each at most once per request). */
	void (*event)(void *arg, enum http_event ev);
	/* Body bytes of a 2xx answer; return <0 to abort the transfer. */
	int (*data)(void *arg, const void *p, size_t n);
	/* The end: status 0 = complete (2xx, full length), else <0. The request
	 * is gone after this returns. */
	void (*done)(void *arg, int status, long code, const char *why);
	void *arg;
};

int http_new(struct http **out, struct loop *l);
void http_free(struct http *h);
/* Start a GET; NULL on failure (bad arguments, out of memory). */
struct http_req *http_start(struct http *h, const struct http_get *g);
/* Abort without calling done. */
void http_cancel(struct http_req *r);

#endif
