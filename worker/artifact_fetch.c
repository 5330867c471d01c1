/*
 * worker/artifact_fetch.c — vetting a provider's artifact URL (see artifact_fetch.h).
 *
 * curl_url parses both URLs, as curl itself will: no hand-written URL parsing, and the URL handed
 * back is curl's own rendering of what was checked, so "the origin we compared" and "the origin
 * curl connects to" cannot disagree over an odd spelling (a backslash, a numeric IPv4 host, a
 * percent-encoded host).
 */
#include "worker/artifact_fetch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

/* The parts that make an origin; ports compare with the scheme's default filled in. */
static const CURLUPart origin_parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};

/* Parts a fetched URL must not have: each would make curl send credentials. */
static const struct {
    CURLUPart part;
    CURLUcode absent;
    const char *name;
} credential_parts[] = {
    {CURLUPART_USER, CURLUE_NO_USER, "a user name"},
    {CURLUPART_PASSWORD, CURLUE_NO_PASSWORD, "a password"},
    {CURLUPART_OPTIONS, CURLUE_NO_OPTIONS, "login options"},
};

/* url parsed strictly (an explicit http or https scheme and a host), or NULL. */
static CURLU *parse_http(const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL;
    char *host = NULL;
    bool ok;

    if (u == NULL) {
        return NULL;
    }
    ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
         curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
         (strcasecmp(scheme, "http") == 0 || strcasecmp(scheme, "https") == 0) &&
         curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host[0] != '\0';
    curl_free(scheme);
    curl_free(host);
    if (!ok) {
        curl_url_cleanup(u);
        return NULL;
    }
    return u;
}

/* True when a and b have one scheme, host and port. */
static bool same_origin(CURLU *a, CURLU *b)
{
    bool same = a != NULL && b != NULL;

    for (size_t i = 0; same && i < sizeof(origin_parts) / sizeof(origin_parts[0]); i++) {
        char *x = NULL;
        char *y = NULL;

        same = curl_url_get(a, origin_parts[i], &x, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               curl_url_get(b, origin_parts[i], &y, CURLU_DEFAULT_PORT) == CURLUE_OK &&
               strcasecmp(x, y) == 0;
        curl_free(x);
        curl_free(y);
    }
    return same;
}

int artifact_fetch_vet(const char *url, const char *base_url, struct artifact_fetch_plan *plan,
                       char *why, size_t why_size)
{
    CURLU *u = NULL;
    CURLU *base = NULL;
    char *text = NULL;
    int rc = -1;

    plan->url = NULL;
    plan->send_headers = false;
    if (why_size > 0) {
        why[0] = '\0';
    }
    if (url == NULL || strlen(url) > ARTIFACT_FETCH_MAX_URL) {
        snprintf(why, why_size, "the artifact URL is missing or longer than %d bytes",
                 ARTIFACT_FETCH_MAX_URL);
        goto out;
    }
    if ((u = parse_http(url)) == NULL) {
        snprintf(why, why_size, "the artifact URL is not an absolute http or https URL");
        goto out;
    }
    for (size_t i = 0; i < sizeof(credential_parts) / sizeof(credential_parts[0]); i++) {
        char *part = NULL;
        CURLUcode got = curl_url_get(u, credential_parts[i].part, &part, 0);

        curl_free(part);
        if (got != credential_parts[i].absent) {
            snprintf(why, why_size, "the artifact URL carries %s; credentials in URLs are refused",
                     credential_parts[i].name);
            goto out;
        }
    }
    if (curl_url_get(u, CURLUPART_URL, &text, 0) != CURLUE_OK ||
        (plan->url = strdup(text)) == NULL) {
        rc = -2;
        goto out;
    }
    base = base_url != NULL ? parse_http(base_url) : NULL;
    plan->send_headers = same_origin(u, base);
    rc = 0;
out:
    curl_free(text);
    curl_url_cleanup(u);
    curl_url_cleanup(base);
    return rc;
}
