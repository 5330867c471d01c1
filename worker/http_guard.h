/*
 * worker/http_guard.h — the address guard of the upstream transport: where a guarded call
 * (http_client_send_guarded, http_client_send_guarded_stream) may connect.
 *
 * Internal to worker/http*.c; callers see the contract in worker/http.h. A guard belongs to one
 * call: it is attached to the call's easy handle before the call starts, read by curl when it
 * connects (CURLOPT_OPENSOCKETFUNCTION, after curl's own resolution, so DNS rebinding cannot get
 * past it), asked after the transfer whether it refused the connection, and freed when the call
 * is recycled. Only guarded calls carry one, so the common call does not hold a host name buffer
 * while it waits.
 */
#ifndef SLUICE_WORKER_HTTP_GUARD_H
#define SLUICE_WORKER_HTTP_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include <curl/curl.h>

struct netaddr_allow;
struct http_guard;

/*
 * Sets easy up as a guarded call to url (borrowed; the URL the call was prepared with): curl then
 * connects with the URL as parsed here, to addresses netaddr_allowed(allow, <its host>, address)
 * accepts, on a connection of its own that is never reused, and without a proxy. allow is
 * borrowed and must stay valid until the guard is freed (NULL: public addresses only).
 *
 * Returns 0 or -1 (out of memory, curl refused an option). *out is set to the guard whenever one
 * was made, on failure too: easy may point into it, so the caller frees it with http_guard_free
 * only after curl_easy_reset (or curl_easy_cleanup) of easy.
 */
int http_guard_attach(CURL *easy, const char *url, const struct netaddr_allow *allow,
                      struct http_guard **out);

/* Frees a guard (NULL is a no-op); see http_guard_attach for when. */
void http_guard_free(struct http_guard *g);

/*
 * After the guarded transfer ended with code: true when it failed because the guard refused
 * every address it was offered (no address passed, one was refused, curl could not connect),
 * with "address refused: 10.0.0.5 is private" (the last refused address) written to buf, cut to
 * size. False, and buf untouched, for any other outcome: an address that passed and then failed
 * to connect says more than the refusal of another. g NULL is false.
 */
bool http_guard_refusal(const struct http_guard *g, CURLcode code, char *buf, size_t size);

#endif
