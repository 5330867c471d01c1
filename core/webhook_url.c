/*
 * core/webhook_url.c — the webhook URL rule (core/webhook_url.h).
 *
 * The bytes are checked before curl sees them: curl_url_set refuses control characters too, but
 * says only "Malformed input", and a client should learn which character and where. curl then
 * parses what is left, and what it parsed (scheme, host, port, credentials) is checked part by
 * part, as the delivery will use it.
 */
#include "core/webhook_url.h"

#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* A URL part as curl parsed it, NULL when the URL has none. Caller frees with curl_free. */
static char *url_part(CURLU *u, CURLUPart part)
{
    char *out = NULL;

    if (curl_url_get(u, part, &out, 0) != CURLUE_OK) {
        return NULL;
    }
    return out;
}

/* The message for a URL curl refused to parse. */
static int parse_error(CURLUcode rc, const char *param, struct core_err *e)
{
    switch (rc) {
    case CURLUE_UNSUPPORTED_SCHEME:
    case CURLUE_BAD_SCHEME:
        return core_err_set(e, CORE_EINVAL, param, "'%s' must be an http or https URL", param);
    case CURLUE_NO_HOST:
        return core_err_set(e, CORE_EINVAL, param, "'%s' has no host", param);
    case CURLUE_BAD_LOGIN:
    case CURLUE_BAD_USER:
    case CURLUE_BAD_PASSWORD:
        return core_err_set(e, CORE_EINVAL, param,
                            "'%s' must not carry credentials (user:password@): receivers "
                            "authenticate a webhook by its signature",
                            param);
    default:
        return core_err_set(e, CORE_EINVAL, param, "'%s' is not a valid URL: %s", param,
                            curl_url_strerror(rc));
    }
}

int webhook_url_check(const char *url, const char *param, struct core_err *e)
{
    size_t len = url ? strnlen(url, WEBHOOK_URL_MAX + 1) : 0;
    size_t after_scheme;
    CURLU *u = NULL;
    CURLUcode rc;
    char *scheme = NULL, *host = NULL, *port = NULL, *user = NULL, *password = NULL;
    int ret = 0;

    if (url == NULL || len == 0) {
        return core_err_set(e, CORE_EINVAL, param, "'%s' must be an http(s) URL", param);
    }
    if (len > WEBHOOK_URL_MAX) {
        return core_err_set(e, CORE_EINVAL, param, "'%s' is longer than %d characters", param,
                            WEBHOOK_URL_MAX);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)url[i];

        if (c <= ' ' || c == 0x7f) {
            return core_err_set(e, CORE_EINVAL, param,
                                "'%s' holds a space or control character (0x%02x) at offset %zu; "
                                "percent-encode it",
                                param, c, i);
        }
        if (c > 0x7f) {
            return core_err_set(e, CORE_EINVAL, param,
                                "'%s' must be ASCII (byte 0x%02x at offset %zu): percent-encode "
                                "the path, write an international host name in punycode",
                                param, c, i);
        }
    }
    after_scheme = strncasecmp(url, "https:", 6) == 0  ? 6
                   : strncasecmp(url, "http:", 5) == 0 ? 5
                                                       : 0;
    if (after_scheme > 0 &&
        (strncmp(url + after_scheme, "//", 2) != 0 || url[after_scheme + 2] == '/')) {
        return core_err_set(e, CORE_EINVAL, param,
                            "'%s' must be written scheme://host/path, with two slashes and a host",
                            param);
    }
    if ((u = curl_url()) == NULL) {
        return core_err_set(e, CORE_ENOMEM, NULL, "out of memory");
    }
    rc = curl_url_set(u, CURLUPART_URL, url, 0);
    if (rc != CURLUE_OK) {
        ret = parse_error(rc, param, e);
        goto out;
    }
    scheme = url_part(u, CURLUPART_SCHEME);
    host = url_part(u, CURLUPART_HOST);
    port = url_part(u, CURLUPART_PORT);
    user = url_part(u, CURLUPART_USER);
    password = url_part(u, CURLUPART_PASSWORD);
    if (scheme == NULL || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
        ret = parse_error(CURLUE_UNSUPPORTED_SCHEME, param, e);
    } else if (host == NULL || host[0] == '\0') {
        ret = parse_error(CURLUE_NO_HOST, param, e);
    } else if (user != NULL || password != NULL) {
        ret = parse_error(CURLUE_BAD_LOGIN, param, e);
    } else if (port != NULL && strcmp(port, "0") == 0) {
        ret = core_err_set(e, CORE_EINVAL, param, "'%s' names port 0", param);
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return ret;
}
