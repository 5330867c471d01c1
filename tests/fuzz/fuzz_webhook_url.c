/*
 * Fuzz target: the webhook URL rule. The input (up to a NUL) is the URL. Aborts if a URL is
 * accepted that holds a space, a control or non-ASCII byte, is longer than WEBHOOK_URL_MAX, is
 * not http(s)://host..., or has an '@' before its path (credentials); or if a refusal does not
 * name the parameter.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/webhook_url.h"

#define MAX_INPUT (WEBHOOK_URL_MAX + 16)

/* True when url (accepted) has an '@' in its authority, which would carry credentials. */
static bool has_userinfo(const char *url)
{
    const char *auth = strstr(url, "//") + 2;
    size_t end = strcspn(auth, "/?#");

    return memchr(auth, '@', end) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char url[MAX_INPUT + 1];
    struct core_err e;
    size_t n = size < MAX_INPUT ? size : MAX_INPUT;

    if (n > 0) {
        memcpy(url, data, n);
    }
    url[n] = '\0';
    core_err_clear(&e);
    if (webhook_url_check(url, "webhook.url", &e) != 0) {
        if (strcmp(e.param, "webhook.url") != 0 && e.code != CORE_ENOMEM) {
            abort();
        }
        return 0;
    }
    if (strlen(url) > WEBHOOK_URL_MAX) {
        abort();
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f) {
            abort();
        }
    }
    if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0) {
        abort();
    }
    if (has_userinfo(url)) {
        abort();
    }
    return 0;
}
