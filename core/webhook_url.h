/*
 * core/webhook_url.h — the URLs a webhook may name.
 *
 * A tenant's webhook URL is checked when its task or batch is submitted, so that a URL no
 * delivery could use is a 400 then, not a failed delivery three attempts (and hours) later. The
 * rule is what curl — which makes the deliveries — parses, narrowed to what a webhook needs.
 * Where a delivery may connect is another check, made on the address at connect time
 * (core/netaddr.h, http_client_send_guarded).
 */
#ifndef SLUICE_CORE_WEBHOOK_URL_H
#define SLUICE_CORE_WEBHOOK_URL_H

#include "core/err.h"

/* Longest webhook URL, in bytes. */
#define WEBHOOK_URL_MAX 2048

/*
 * 0 when url (borrowed) is a URL a webhook may name:
 *   - at most WEBHOOK_URL_MAX bytes of printable ASCII: no space, CR, LF, tab or other control
 *     character, nothing above 0x7e (a request line is built from it; percent-encode the rest,
 *     write an international host name in punycode);
 *   - "http://" or "https://" (any case) and then the host: exactly two slashes, since curl
 *     would read "http:///x" as the host x;
 *   - parsed by curl_url() as it stands (no scheme guessed), with a host and not port 0;
 *   - no user name, password or login options: a URL is shown on the task, its attempts and the
 *     logs, so it is no place for a secret; receivers authenticate a delivery by its signature.
 * Otherwise CORE_EINVAL with e filled: param is param (borrowed, e.g. "webhook.url"), the
 * message says what is wrong and never repeats the URL.
 */
int webhook_url_check(const char *url, const char *param, struct core_err *e);

#endif
