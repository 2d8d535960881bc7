/* libcurl multi glue: see http.h. */
#include "net/http.h"

#include "core/log.h"
#include "core/loop.h"
#include "net/curl_api.h"
#include "net/policy.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

struct http {
	struct loop *loop;
	CURLM *multi;
	struct loop_timer timer;
	struct http_req *reqs;
};

struct http_req {
	struct http *h;
	struct http_req *next;
	CURL *easy;
	struct curl_slist *hdrs;
	struct http_get g;
	bool resolved, connected;
	char err[CURL_ERROR_SIZE];
};

struct http_sock {
	struct http *h;
	struct loop_io io;
};

static void check_done(struct http *h);

static void sock_ready(void *arg, unsigned events)
{
	struct http_sock *s = arg;
	struct http *h = s->h;
	int mask = 0, running = 0;
	if (events & LOOP_READ)
		mask |= CURL_CSELECT_IN;
	if (events & LOOP_WRITE)
		mask |= CURL_CSELECT_OUT;
	if (events & LOOP_ERR)
		mask |= CURL_CSELECT_ERR;
	curl_multi_socket_action(h->multi, s->io.fd, mask, &running);
	check_done(h);
}

static int sock_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct http *h = userp;
	struct http_sock *s = socketp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			loop_io_del(h->loop, &s->io);
			curl_multi_assign(h->multi, fd, NULL);
			free(s);
		}
		return 0;
	}
	unsigned want = 0;
	if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
		want |= LOOP_READ;
	if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
		want |= LOOP_WRITE;
	if (!s) {
		s = calloc(1, sizeof(*s));
		if (!s)
			return -1;
		s->h = h;
		if (loop_io_add(h->loop, &s->io, fd, want, sock_ready, s) < 0) {
			free(s);
			return -1;
		}
		curl_multi_assign(h->multi, fd, s);
	} else {
		loop_io_want(h->loop, &s->io, want);
	}
	return 0;
}

static void timer_fired(void *arg)
{
	struct http *h = arg;
	int running = 0;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	struct http *h = userp;
	if (timeout_ms < 0)
		loop_timer_stop(h->loop, &h->timer);
	else
		loop_timer_start(h->loop, &h->timer, (uint64_t)timeout_ms);
	return 0;
}

int http_new(struct http **out, struct loop *l)
{
	if (!curl_api())
		return -ENOSYS; /* logged */
	struct http *h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->loop = l;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return -ENOMEM;
	}
	loop_timer_init(&h->timer, timer_fired, h);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	*out = h;
	return 0;
}

static void req_free(struct http_req *r)
{
	struct http *h = r->h;
	for (struct http_req **pp = &h->reqs; *pp; pp = &(*pp)->next) {
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	}
	curl_multi_remove_handle(h->multi, r->easy);
	curl_easy_cleanup(r->easy);
	curl_slist_free_all(r->hdrs);
	free(r);
}

void http_cancel(struct http_req *r)
{
	if (r)
		req_free(r);
}

void http_free(struct http *h)
{
	if (!h)
		return;
	while (h->reqs)
		req_free(h->reqs);
	loop_timer_stop(h->loop, &h->timer);
	curl_multi_cleanup(h->multi);
	free(h);
}

static void check_done(struct http *h)
{
	CURLMsg *m;
	int left;
	while ((m = curl_multi_info_read(h->multi, &left))) {
		if (m->msg != CURLMSG_DONE)
			continue;
		struct http_req *r = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
		struct http_req *it = h->reqs;
		while (it && it != r)
			it = it->next;
		if (!r || !it)
			continue; /* not ours (any more) */
		long code = 0;
		curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
		CURLcode rc = m->data.result;
		int status = 0;
		const char *why = "";
		if (rc != CURLE_OK) {
			status = -EIO;
			why = r->err[0] ? r->err : curl_easy_strerror(rc);
		} else if (code < 200 || code > 299) {
			status = -EPROTO;
			why = "HTTP status";
		}
		char whybuf[CURL_ERROR_SIZE + 32];
		snprintf(whybuf, sizeof(whybuf), "%s", why);
		struct http_get g = r->g;
		req_free(r);
		g.done(g.arg, status, code, whybuf);
	}
}

static size_t write_cb(char *p, size_t size, size_t n, void *arg)
{
	struct http_req *r = arg;
	return r->g.data(r->g.arg, p, size * n) < 0 ? 0 : size * n;
}

static curl_socket_t open_cb(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
	struct http_req *r = arg;
	if (r->g.policy && a->addrlen <= sizeof(struct sockaddr_storage)) {
		struct sockaddr_storage ss;
		memset(&ss, 0, sizeof(ss));
		memcpy(&ss, &a->addr, a->addrlen);
		if (!policy_allows(r->g.policy, &ss)) {
			log_warn("OTA: %s refused by the --allow policy", r->g.url);
			return CURL_SOCKET_BAD;
		}
	}
	if (!r->resolved) {
		r->resolved = true;
		if (r->g.event)
			r->g.event(r->g.arg, HTTP_EV_RESOLVED);
	}
	return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int prereq_cb(void *arg, char *pip, char *lip, int pport, int lport)
{
	struct http_req *r = arg;
	if (!r->connected) {
		r->connected = true;
		if (r->g.event)
			r->g.event(r->g.arg, HTTP_EV_CONNECTED);
	}
	return CURL_PREREQFUNC_OK;
}

struct http_req *http_start(struct http *h, const struct http_get *g)
{
	bool https = strncmp(g->url, "https://", 8) == 0;
	if (!https && strncmp(g->url, "http://", 7) != 0)
		return NULL;
	if (https && (!g->ca_file || !g->ca_file[0]))
		return NULL; /* never without verification */
	struct http_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->h = h;
	r->g = *g;
	r->easy = curl_easy_init();
	if (!r->easy) {
		free(r);
		return NULL;
	}
	if (g->token) {
		char hdr[512];
		snprintf(hdr, sizeof(hdr), "Authorization: token %s", g->token);
		r->hdrs = curl_slist_append(r->hdrs, hdr);
	}
	r->hdrs = curl_slist_append(r->hdrs, "Cache-Control: no-cache");
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, g->url);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
	curl_easy_setopt(e, CURLOPT_PROXY, "");
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	/* one connection per request, as the module does (and its events) */
	curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
	curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
	curl_easy_setopt(e, CURLOPT_FAILONERROR, 1L);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->hdrs);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->err);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_cb);
	curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
	curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, prereq_cb);
	curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
	if (g->timeout_ms > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, g->timeout_ms);
	if (https) {
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
		curl_easy_setopt(e, CURLOPT_CAINFO, g->ca_file);
		curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
	}
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_slist_free_all(r->hdrs);
		curl_easy_cleanup(e);
		free(r);
		return NULL;
	}
	r->next = h->reqs;
	h->reqs = r;
	return r;
}
