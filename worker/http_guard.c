/*
 * worker/http_guard.c — the address guard: the check curl runs on every address a guarded call
 * is about to connect to, and the refusal it reports (see worker/http_guard.h).
 */
#include "worker/http_guard.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/netaddr.h"
#include "worker/http.h"

/* How a guarded call's refusal message starts (see http_response_refused). */
#define HTTP_REFUSED_PREFIX "address refused: "

/* One guarded call's state, allocated for it alone; see on_open_socket. */
struct http_guard {
    const struct netaddr_allow *allow;
    CURLU *url;                           /* the parsed URL curl connects to, NULL if unparsed */
    char host[NETADDR_ENTRY_MAX + 1];     /* its host, "" when unknown or too long for a name */
    char refused[NETADDR_TEXT_SIZE + 32]; /* "10.0.0.5 is private": the last address refused */
    bool passed;                          /* some address passed the check */
};

/*
 * CURLOPT_OPENSOCKETFUNCTION of a guarded call: curl is about to connect to address, one of the
 * host's addresses, after its own resolution. Refusing (CURL_SOCKET_BAD) makes curl try the next
 * address and, when none is left, fail the transfer with CURLE_COULDNT_CONNECT; http_guard_refusal
 * then reports the refusal noted here, unless some address passed and failed on its own (that
 * failure says more). An address whose length does not match its family is refused. The socket
 * is made as curl would make it, plus close-on-exec.
 */
static curl_socket_t on_open_socket(void *clientp, curlsocktype purpose,
                                    struct curl_sockaddr *address)
{
    struct http_guard *g = clientp;
    const struct sockaddr *sa = &address->addr;
    bool whole = (address->family == AF_INET && sa->sa_family == AF_INET &&
                  address->addrlen >= sizeof(struct sockaddr_in)) ||
                 (address->family == AF_INET6 && sa->sa_family == AF_INET6 &&
                  address->addrlen >= sizeof(struct sockaddr_in6));
    char text[NETADDR_TEXT_SIZE];

    if (whole && purpose == CURLSOCKTYPE_IPCXN && netaddr_allowed(g->allow, g->host, sa)) {
        g->passed = true;
        return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
    }
    if (whole) {
        netaddr_format(sa, text, sizeof(text));
        snprintf(g->refused, sizeof(g->refused), "%s is %s", text,
                 netaddr_class_name(netaddr_classify(sa)));
    } else {
        snprintf(g->refused, sizeof(g->refused), "address family %d", address->family);
    }
    return CURL_SOCKET_BAD;
}

/*
 * The URL is parsed here, into a handle curl then connects with (CURLOPT_CURLU overrides the
 * CURLOPT_URL the call was prepared with), so the host matched against the allow list's names is
 * exactly the one curl resolves. A fresh CURLU per call: setting a URL on a used one would
 * resolve a relative URL against the old one. A URL that does not parse keeps CURLOPT_URL, fails
 * in curl and reaches the call's callback as for any call, with no host for the names to match.
 * Proxies from the environment are not used, so the address checked is the target's own; a
 * pooled connection may have been opened by an unguarded call, or under another allow list, so
 * the call neither takes one nor leaves its own behind.
 */
int http_guard_attach(CURL *easy, const char *url, const struct netaddr_allow *allow,
                      struct http_guard **out)
{
    struct http_guard *g;
    char *host = NULL;
    bool ok = true;

    g = *out = calloc(1, sizeof(**out));
    if (!g) {
        return -1;
    }
    g->allow = allow;
    g->url = curl_url();
    if (!g->url) {
        return -1;
    }
    if (curl_url_set(g->url, CURLUPART_URL, url, CURLU_GUESS_SCHEME | CURLU_NON_SUPPORT_SCHEME) ==
        CURLUE_OK) {
        if (curl_url_get(g->url, CURLUPART_HOST, &host, 0) == CURLUE_OK &&
            strlen(host) < sizeof(g->host)) {
            memcpy(g->host, host, strlen(host) + 1);
        }
        curl_free(host);
        ok &= curl_easy_setopt(easy, CURLOPT_CURLU, g->url) == CURLE_OK;
    }
    ok &= curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket) == CURLE_OK;
    ok &= curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, g) == CURLE_OK;
    ok &= curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(easy, CURLOPT_FORBID_REUSE, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(easy, CURLOPT_PROXY, "") == CURLE_OK;
    return ok ? 0 : -1;
}

void http_guard_free(struct http_guard *g)
{
    if (!g) {
        return;
    }
    curl_url_cleanup(g->url);
    free(g);
}

bool http_guard_refusal(const struct http_guard *g, CURLcode code, char *buf, size_t size)
{
    if (!g || g->passed || g->refused[0] == '\0' || code != CURLE_COULDNT_CONNECT) {
        return false;
    }
    snprintf(buf, size, HTTP_REFUSED_PREFIX "%s", g->refused);
    return true;
}

/*
 * http_guard_refusal writes HTTP_REFUSED_PREFIX only for a guarded call that no address passed,
 * and no other message of the transport or of curl's starts with it.
 */
bool http_response_refused(const struct adapter_response *resp)
{
    return resp != NULL && resp->transport == ADAPTER_TRANSPORT_CONNECT &&
           resp->transport_msg != NULL &&
           strncmp(resp->transport_msg, HTTP_REFUSED_PREFIX, strlen(HTTP_REFUSED_PREFIX)) == 0;
}
