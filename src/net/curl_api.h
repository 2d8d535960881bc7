/* libcurl, loaded when the first OTA command needs it rather than at start.
 *
 * Why: libcurl brings some twenty libraries with it (GnuTLS for RTMP,
 * Kerberos, LDAP, SSH, ...). Linked in, their pages count in espatd's
 * resident memory from the first second, about 4 MiB of a 10 MiB process,
 * for a feature most sessions never use (issue: idle RSS under 8 MiB).
 *
 * http.c is written against the ordinary curl API; after this header the
 * names it calls are the members of the loaded table. */
#ifndef ESPATD_NET_CURL_API_H
#define ESPATD_NET_CURL_API_H

/* Plain prototypes: the GCC type-checking macros of <curl/typecheck-gcc.h>
 * would wrap the names mapped below. */
#define CURL_DISABLE_TYPECHECK 1
#include <curl/curl.h>

struct curl_api {
	CURLcode (*global_init)(long flags);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *curl, CURLoption option, ...);
	CURLcode (*easy_getinfo)(CURL *curl, CURLINFO info, ...);
	void (*easy_cleanup)(CURL *curl);
	const char *(*easy_strerror)(CURLcode code);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *multi, CURLMoption option, ...);
	CURLMcode (*multi_add_handle)(CURLM *multi, CURL *easy);
	CURLMcode (*multi_remove_handle)(CURLM *multi, CURL *easy);
	CURLMcode (*multi_assign)(CURLM *multi, curl_socket_t s, void *p);
	CURLMcode (*multi_socket_action)(CURLM *multi, curl_socket_t s, int ev_bitmask,
					 int *running_handles);
	CURLMsg *(*multi_info_read)(CURLM *multi, int *msgs_in_queue);
	CURLMcode (*multi_cleanup)(CURLM *multi);
	struct curl_slist *(*slist_append)(struct curl_slist *list, const char *s);
	void (*slist_free_all)(struct curl_slist *list);
};

/* The table, loading libcurl on the first call and running
 * curl_global_init(); NULL (and a log line saying what to install) if it
 * cannot be loaded. */
const struct curl_api *curl_api(void);

#ifndef ESPATD_CURL_API_IMPL
/* Valid only after curl_api() returned non-NULL. */
extern const struct curl_api *curl_loaded;
/* curl.h defines these three as function-like macros of themselves. */
#undef curl_easy_setopt
#undef curl_easy_getinfo
#undef curl_multi_setopt
#define curl_easy_init curl_loaded->easy_init
#define curl_easy_setopt curl_loaded->easy_setopt
#define curl_easy_getinfo curl_loaded->easy_getinfo
#define curl_easy_cleanup curl_loaded->easy_cleanup
#define curl_easy_strerror curl_loaded->easy_strerror
#define curl_multi_init curl_loaded->multi_init
#define curl_multi_setopt curl_loaded->multi_setopt
#define curl_multi_add_handle curl_loaded->multi_add_handle
#define curl_multi_remove_handle curl_loaded->multi_remove_handle
#define curl_multi_assign curl_loaded->multi_assign
#define curl_multi_socket_action curl_loaded->multi_socket_action
#define curl_multi_info_read curl_loaded->multi_info_read
#define curl_multi_cleanup curl_loaded->multi_cleanup
#define curl_slist_append curl_loaded->slist_append
#define curl_slist_free_all curl_loaded->slist_free_all
#endif

#endif
