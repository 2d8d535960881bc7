/* Loads libcurl on first use: see curl_api.h. */
#define ESPATD_CURL_API_IMPL 1
#include "net/curl_api.h"

#include "core/log.h"

#include <dlfcn.h>
#include <stdbool.h>
#include <stddef.h>

/* The soname of Debian's libcurl4 (the OpenSSL flavour the build uses). */
#define CURL_SONAME "libcurl.so.4"

const struct curl_api *curl_loaded;

static struct curl_api api;

struct sym {
	const char *name;
	size_t offset;
};

#define SYM(field, name) { name, offsetof(struct curl_api, field) }
static const struct sym syms[] = {
	SYM(global_init, "curl_global_init"),
	SYM(easy_init, "curl_easy_init"),
	SYM(easy_setopt, "curl_easy_setopt"),
	SYM(easy_getinfo, "curl_easy_getinfo"),
	SYM(easy_cleanup, "curl_easy_cleanup"),
	SYM(easy_strerror, "curl_easy_strerror"),
	SYM(multi_init, "curl_multi_init"),
	SYM(multi_setopt, "curl_multi_setopt"),
	SYM(multi_add_handle, "curl_multi_add_handle"),
	SYM(multi_remove_handle, "curl_multi_remove_handle"),
	SYM(multi_assign, "curl_multi_assign"),
	SYM(multi_socket_action, "curl_multi_socket_action"),
	SYM(multi_info_read, "curl_multi_info_read"),
	SYM(multi_cleanup, "curl_multi_cleanup"),
	SYM(slist_append, "curl_slist_append"),
	SYM(slist_free_all, "curl_slist_free_all"),
};

const struct curl_api *curl_api(void)
{
	static bool tried;
	if (curl_loaded || tried)
		return curl_loaded;
	tried = true;
	/* Never unloaded: libcurl keeps global state until the process ends. */
	void *lib = dlopen(CURL_SONAME, RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		log_error("OTA needs libcurl and it cannot be loaded: %s (install the Debian "
			  "package libcurl4)", dlerror());
		return NULL;
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		void *fn = dlsym(lib, syms[i].name);
		if (!fn) {
			log_error("OTA: %s has no %s; libcurl 7.x or later is needed", CURL_SONAME,
				  syms[i].name);
			return NULL;
		}
		/* POSIX: a function address fits a void pointer (dlsym's contract). */
		*(void **)((char *)&api + syms[i].offset) = fn;
	}
	if (api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("OTA: curl_global_init failed");
		return NULL;
	}
	curl_loaded = &api;
	return curl_loaded;
}
