/*
 * core/netaddr.h — is this address one a webhook may be sent to?
 *
 * Webhook URLs come from tenants, so a delivery must not reach the machine's own services, the
 * private network or a cloud metadata endpoint (SSRF). netaddr_classify sorts an IPv4 or IPv6
 * socket address into public or one of the non-public classes below, after the IANA
 * special-purpose address registries; netaddr_allowed adds the operator's exceptions, an allow
 * list read from `webhooks.allow_hosts` (host names, single addresses, CIDR ranges, each with an
 * optional port).
 *
 * Nothing here resolves names: the caller checks the address it is about to connect to (see
 * http_client_send_guarded), which is what defeats DNS rebinding.
 */
#ifndef SLUICE_CORE_NETADDR_H
#define SLUICE_CORE_NETADDR_H

#include <stdbool.h>
#include <stddef.h>

#include <sys/socket.h>

/* Longest allow-list entry, in characters (a host name is at most 253, plus a trailing dot). */
#define NETADDR_ENTRY_MAX 255
/* Most entries one allow list takes. */
#define NETADDR_ALLOW_MAX 256
/* Room netaddr_format needs: an IPv6 address in text ("[...]" is not added) plus NUL. */
#define NETADDR_TEXT_SIZE 46

/*
 * Classes, in the order the checks apply. Addresses that embed an IPv4 address (IPv4-mapped
 * ::ffff:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16) take the class of the IPv4 address.
 *   PUBLIC       globally reachable unicast: IPv4 outside the ranges below, IPv6 in 2000::/3
 *                outside the ranges below
 *   LOOPBACK     127.0.0.0/8, ::1
 *   PRIVATE      10/8, 172.16/12, 192.168/16, fc00::/7, fec0::/10 (old site-local),
 *                64:ff9b:1::/48 (local-use NAT64)
 *   LINK_LOCAL   169.254/16, fe80::/10
 *   METADATA     cloud instance metadata: 169.254.169.254, 169.254.170.2, 168.63.129.16 (Azure),
 *                100.100.100.200 (Alibaba), 192.0.0.192 (Oracle), fd00:ec2::254 (AWS)
 *   UNSPECIFIED  0.0.0.0/8 ("this network": Linux connects 0.0.0.0 to the local host), ::
 *   CGNAT        100.64/10 (shared address space)
 *   MULTICAST    224/4, ff00::/8
 *   BROADCAST    255.255.255.255
 *   RESERVED     documentation, benchmarking and IETF blocks: 192.0.0/24, 192.0.2/24,
 *                192.88.99/24, 198.18/15, 198.51.100/24, 203.0.113/24, 240/4; IPv6 outside
 *                2000::/3, 100::/64, 2001::/23, 2001:db8::/32, 3fff::/20, 5f00::/16
 *   INVALID      not AF_INET or AF_INET6
 */
enum netaddr_class {
    NETADDR_PUBLIC = 0,
    NETADDR_LOOPBACK,
    NETADDR_PRIVATE,
    NETADDR_LINK_LOCAL,
    NETADDR_METADATA,
    NETADDR_UNSPECIFIED,
    NETADDR_CGNAT,
    NETADDR_MULTICAST,
    NETADDR_BROADCAST,
    NETADDR_RESERVED,
    NETADDR_INVALID,
};

/* Errors of netaddr_allow_add. */
enum netaddr_code {
    NETADDR_OK = 0,
    NETADDR_EINVAL = -1,    /* neither a host name, an address nor a CIDR range */
    NETADDR_EPREFIX = -2,   /* the prefix length after '/' is not a number in range */
    NETADDR_EHOSTBITS = -3, /* a range whose address has bits set past the prefix length */
    NETADDR_ETOOLONG = -4,  /* longer than NETADDR_ENTRY_MAX */
    NETADDR_ETOOMANY = -5,  /* the list already holds NETADDR_ALLOW_MAX entries */
    NETADDR_ENOMEM = -6,
    NETADDR_EPORT = -7, /* the port after ':' is not a number from 1 to 65535 */
};

struct netaddr_allow;

/*
 * The class of addr, which must point to a whole struct sockaddr_in (AF_INET) or sockaddr_in6
 * (AF_INET6); other families are INVALID. NULL is INVALID.
 */
enum netaddr_class netaddr_classify(const struct sockaddr *addr);

/* A short lower-case name for a class ("private", "loopback", "cloud metadata", ...). */
const char *netaddr_class_name(enum netaddr_class cls);

/* A message for an enum netaddr_code. */
const char *netaddr_strerror(int code);

/*
 * The address of addr (port left out) as text into out (NETADDR_TEXT_SIZE is enough). Returns 0,
 * or -1 for another family or too small a buffer (out then holds "?" when it has room).
 */
int netaddr_format(const struct sockaddr *addr, char *out, size_t out_size);

/* An empty allow list. NULL on out of memory. */
struct netaddr_allow *netaddr_allow_new(void);

/* Frees the list. NULL is a no-op. */
void netaddr_allow_free(struct netaddr_allow *allow);

/*
 * Adds one entry (borrowed; copied): one of
 *   a host name       "hooks.internal", "localhost" — letters, digits, '-' and '_' in dot-separated
 *                     labels of 1..63, at most 253 characters, one trailing dot allowed, last label
 *                     not all digits (so "10.0.0.256" is an error, not a name); matched exactly,
 *                     ignoring case and a trailing dot; no wildcards
 *   an address        "10.0.0.5", "::1" or "[::1]"
 *   a CIDR range      "10.0.0.0/8", "fd00::/8", "0.0.0.0/0"; the prefix length is decimal without
 *                     leading zeros, at most 32 (IPv4) or 128 (IPv6), and the address must have
 *                     no bits set past it ("10.0.0.1/8" is an error: write "10.0.0.0/8")
 * each optionally followed by ":port" (decimal 1..65535, no leading zeros): "localhost:8080",
 * "10.0.0.5:8443", "10.0.0.0/8:443", "[::1]:8080". An IPv6 address takes a port only in brackets:
 * "::1:8080" is the address ::1:8080. An entry with a port covers connections to that port only,
 * one without covers every port. At most NETADDR_ENTRY_MAX characters in all, port included.
 * No whitespace anywhere. Returns 0 or a negative enum netaddr_code; the list is unchanged on
 * error.
 */
int netaddr_allow_add(struct netaddr_allow *allow, const char *entry);

/* Entries in the list. */
size_t netaddr_allow_count(const struct netaddr_allow *allow);

/*
 * True when a connection to addr, reached through the URL host name host, may go ahead:
 *   - addr is PUBLIC; or
 *   - an address or range entry of allow covers addr (IPv4-mapped IPv6 addresses and entries,
 *     ::ffff:a.b.c.d and ::ffff:a.b.c.d/96..128, count as the IPv4 ones); or
 *   - host (may be NULL) equals a host-name entry, and addr is not METADATA nor INVALID;
 * where an entry with a port counts only when addr's port (sin_port, sin6_port: the one a
 * connection is about to be opened to, as curl hands it to an open-socket callback) is that port.
 * A caller with no port leaves it 0, which no entry names: only entries without a port apply.
 * A name entry trusts whatever the name resolves to, except the metadata endpoints: those need an
 * address or range entry that covers them, so a name whose DNS is changed cannot reach them.
 * allow may be NULL (no exceptions); all arguments are borrowed.
 */
bool netaddr_allowed(const struct netaddr_allow *allow, const char *host,
                     const struct sockaddr *addr);

#endif
