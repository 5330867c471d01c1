/*
 * Fuzz target: the webhook allow-list parser and the address checks. Each input line is one
 * allow-list entry; the first line is also the host name, and the input's first bytes the
 * address (IPv4 from 4 bytes, IPv6 from 16) that netaddr_allowed and netaddr_classify judge.
 * Aborts if a public address is ever refused or an entry that parsed does not count.
 */
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/netaddr.h"

#define MAX_LINE (NETADDR_ENTRY_MAX + 8)

/* The first min(size, n) input bytes into dst (memcpy may not be given NULL, even for 0). */
static void take(void *dst, const uint8_t *data, size_t size, size_t n)
{
    if (size > 0) {
        memcpy(dst, data, size < n ? size : n);
    }
}

static void judge(const struct netaddr_allow *allow, const char *host, const struct sockaddr *sa)
{
    char text[NETADDR_TEXT_SIZE];
    enum netaddr_class cls = netaddr_classify(sa);
    bool ok = netaddr_allowed(allow, host, sa);

    if (cls == NETADDR_PUBLIC && !ok) {
        abort();
    }
    netaddr_format(sa, text, sizeof(text));
    (void)netaddr_class_name(cls);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct netaddr_allow *allow = netaddr_allow_new();
    char line[MAX_LINE + 1], host[MAX_LINE + 1] = "";
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
    size_t pos = 0, added = 0;
    bool first = true;

    if (allow == NULL) {
        return 0;
    }
    while (pos < size) {
        const uint8_t *nl = memchr(data + pos, '\n', size - pos);
        size_t len = nl ? (size_t)(nl - (data + pos)) : size - pos;
        size_t keep = len > MAX_LINE ? MAX_LINE : len;

        memcpy(line, data + pos, keep);
        line[keep] = '\0';
        if (first) {
            memcpy(host, line, keep + 1);
            first = false;
        }
        if (netaddr_allow_add(allow, line) == NETADDR_OK) {
            added++;
        }
        (void)netaddr_strerror(-(int)(added % 8));
        pos += len + 1;
    }
    if (netaddr_allow_count(allow) != added) {
        abort();
    }
    memset(&in, 0, sizeof(in));
    in.sin_family = AF_INET;
    take(&in.sin_addr, data, size, 4);
    judge(allow, host, (const struct sockaddr *)&in);
    memset(&in6, 0, sizeof(in6));
    in6.sin6_family = AF_INET6;
    take(&in6.sin6_addr, data, size, 16);
    judge(allow, host, (const struct sockaddr *)&in6);
    /* the same bytes behind the IPv4-mapped and NAT64 prefixes */
    memset(&in6.sin6_addr, 0, 16);
    in6.sin6_addr.s6_addr[10] = 0xff;
    in6.sin6_addr.s6_addr[11] = 0xff;
    take(&in6.sin6_addr.s6_addr[12], data, size, 4);
    judge(allow, host, (const struct sockaddr *)&in6);
    in6.sin6_addr.s6_addr[1] = 0x64;
    in6.sin6_addr.s6_addr[2] = 0xff;
    in6.sin6_addr.s6_addr[3] = 0x9b;
    in6.sin6_addr.s6_addr[10] = 0;
    in6.sin6_addr.s6_addr[11] = 0;
    judge(allow, host, (const struct sockaddr *)&in6);
    netaddr_allow_free(allow);
    return 0;
}
