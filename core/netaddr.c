/*
 * core/netaddr.c — address classes and the webhook allow list.
 *
 * Both families are handled as a family plus 16 bytes (IPv4 in the first 4), so one prefix
 * comparison serves the class tables and the allow list. The class tables are text, parsed with
 * inet_pton when used: a connect is rare next to what it costs, and a reader can check a row
 * against the IANA registry at a glance. An allow list is parsed once, at config load, by hand
 * for the host names, prefix lengths and ports (no library checks those) and by inet_pton for the
 * addresses; it has a fuzz target.
 */
#include "core/netaddr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Longest host name (RFC 1035), without a trailing dot, and longest label. */
#define NAME_MAX_LEN 253
#define LABEL_MAX_LEN 63

struct ip {
    int family;        /* AF_INET or AF_INET6 */
    uint8_t bytes[16]; /* network order; IPv4 uses the first 4 */
};

/*
 * A row of a class table: addresses in prefix/bits are of class cls, or, when embed >= 0, carry an
 * IPv4 address at byte offset embed that decides the class. The first matching row wins, so the
 * narrow rows come before the ranges that contain them.
 */
struct class_row {
    const char *prefix;
    unsigned bits;
    enum netaddr_class cls;
    int embed;
};

static const struct class_row v4_rows[] = {
    {"169.254.169.254", 32, NETADDR_METADATA, -1}, /* AWS, GCP, Azure IMDS */
    {"169.254.170.2", 32, NETADDR_METADATA, -1},   /* AWS ECS task metadata */
    {"168.63.129.16", 32, NETADDR_METADATA, -1},   /* Azure WireServer, a public address */
    {"100.100.100.200", 32, NETADDR_METADATA, -1}, /* Alibaba Cloud */
    {"192.0.0.192", 32, NETADDR_METADATA, -1},     /* Oracle Cloud */
    {"255.255.255.255", 32, NETADDR_BROADCAST, -1},
    {"0.0.0.0", 8, NETADDR_UNSPECIFIED, -1},
    {"10.0.0.0", 8, NETADDR_PRIVATE, -1},
    {"100.64.0.0", 10, NETADDR_CGNAT, -1},
    {"127.0.0.0", 8, NETADDR_LOOPBACK, -1},
    {"169.254.0.0", 16, NETADDR_LINK_LOCAL, -1},
    {"172.16.0.0", 12, NETADDR_PRIVATE, -1},
    {"192.0.0.0", 24, NETADDR_RESERVED, -1},   /* IETF protocol assignments */
    {"192.0.2.0", 24, NETADDR_RESERVED, -1},   /* TEST-NET-1 */
    {"192.88.99.0", 24, NETADDR_RESERVED, -1}, /* former 6to4 relay anycast */
    {"192.168.0.0", 16, NETADDR_PRIVATE, -1},
    {"198.18.0.0", 15, NETADDR_RESERVED, -1},   /* benchmarking */
    {"198.51.100.0", 24, NETADDR_RESERVED, -1}, /* TEST-NET-2 */
    {"203.0.113.0", 24, NETADDR_RESERVED, -1},  /* TEST-NET-3 */
    {"224.0.0.0", 4, NETADDR_MULTICAST, -1},
    {"240.0.0.0", 4, NETADDR_RESERVED, -1},
};

static const struct class_row v6_rows[] = {
    {"::", 128, NETADDR_UNSPECIFIED, -1},
    {"::1", 128, NETADDR_LOOPBACK, -1},
    {"::ffff:0:0", 96, NETADDR_PUBLIC, 12}, /* IPv4-mapped */
    {"64:ff9b::", 96, NETADDR_PUBLIC, 12},  /* NAT64 well-known prefix */
    {"64:ff9b:1::", 48, NETADDR_PRIVATE, -1},
    {"2002::", 16, NETADDR_PUBLIC, 2}, /* 6to4 */
    {"fd00:ec2::254", 128, NETADDR_METADATA, -1},
    {"fc00::", 7, NETADDR_PRIVATE, -1},
    {"fe80::", 10, NETADDR_LINK_LOCAL, -1},
    {"fec0::", 10, NETADDR_PRIVATE, -1},
    {"ff00::", 8, NETADDR_MULTICAST, -1},
    {"100::", 64, NETADDR_RESERVED, -1},      /* discard-only */
    {"2001::", 23, NETADDR_RESERVED, -1},     /* IETF protocol assignments, Teredo */
    {"2001:db8::", 32, NETADDR_RESERVED, -1}, /* documentation */
    {"3fff::", 20, NETADDR_RESERVED, -1},     /* documentation */
    {"5f00::", 16, NETADDR_RESERVED, -1},     /* SRv6 SIDs */
};

static const char *const class_names[] = {
    [NETADDR_PUBLIC] = "public",
    [NETADDR_LOOPBACK] = "loopback",
    [NETADDR_PRIVATE] = "private",
    [NETADDR_LINK_LOCAL] = "link-local",
    [NETADDR_METADATA] = "cloud metadata",
    [NETADDR_UNSPECIFIED] = "unspecified",
    [NETADDR_CGNAT] = "shared (CGNAT)",
    [NETADDR_MULTICAST] = "multicast",
    [NETADDR_BROADCAST] = "broadcast",
    [NETADDR_RESERVED] = "reserved",
    [NETADDR_INVALID] = "not an IP address",
};

static const struct {
    int code;
    const char *msg;
} code_msgs[] = {
    {NETADDR_OK, "ok"},
    {NETADDR_EINVAL, "not a host name, an IP address or a CIDR range"},
    {NETADDR_EPREFIX, "the prefix length is not a number from 0 to 32 (IPv4) or 128 (IPv6)"},
    {NETADDR_EHOSTBITS, "the range has bits set past its prefix length"},
    {NETADDR_ETOOLONG, "longer than 255 characters"},
    {NETADDR_ETOOMANY, "too many entries"},
    {NETADDR_ENOMEM, "out of memory"},
    {NETADDR_EPORT, "the port is not a number from 1 to 65535"},
};

/* An allow-list entry: a host name (name != NULL) or a range (an address is a full-length one). */
struct allow_entry {
    char *name; /* lower case, no trailing dot */
    struct ip net;
    unsigned bits;
    unsigned port; /* 0: any */
};

struct netaddr_allow {
    struct allow_entry *entries;
    size_t n, cap;
};

/* Parses a literal address of either family. Returns 0 or -1. */
static int ip_parse(const char *text, struct ip *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (inet_pton(AF_INET, text, ip->bytes) == 1) {
        ip->family = AF_INET;
        return 0;
    }
    if (inet_pton(AF_INET6, text, ip->bytes) == 1) {
        ip->family = AF_INET6;
        return 0;
    }
    return -1;
}

/* The address in a socket address. Returns 0, or -1 for NULL or another family. */
static int ip_of_sockaddr(const struct sockaddr *sa, struct ip *ip)
{
    memset(ip, 0, sizeof(*ip));
    if (sa == NULL) {
        return -1;
    }
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;

        ip->family = AF_INET;
        memcpy(ip->bytes, &in->sin_addr, 4);
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;

        ip->family = AF_INET6;
        memcpy(ip->bytes, &in6->sin6_addr, 16);
        return 0;
    }
    return -1;
}

/* The port of a socket address in host order; 0 for NULL or another family. */
static unsigned port_of_sockaddr(const struct sockaddr *sa)
{
    if (sa != NULL && sa->sa_family == AF_INET) {
        return ntohs(((const struct sockaddr_in *)sa)->sin_port);
    }
    if (sa != NULL && sa->sa_family == AF_INET6) {
        return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
    }
    return 0;
}

/* True when the first bits bits of a and net agree. */
static bool prefix_match(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, net, whole) != 0) {
        return false;
    }
    if (rest == 0) {
        return true;
    }
    return ((a[whole] ^ net[whole]) & (uint8_t)(0xff << (8 - rest))) == 0;
}

/*
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d) or range of at least 96 bits becomes its IPv4
 * address and the remaining prefix bits (*bits may be NULL for an address); others stay.
 */
static void ip_unmap(struct ip *ip, unsigned *bits)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (ip->family == AF_INET6 && memcmp(ip->bytes, mapped, sizeof(mapped)) == 0 &&
        (bits == NULL || *bits >= 96)) {
        ip->family = AF_INET;
        memmove(ip->bytes, ip->bytes + 12, 4);
        memset(ip->bytes + 4, 0, 12);
        if (bits != NULL) {
            *bits -= 96;
        }
    }
}

static enum netaddr_class classify_v4(const uint8_t *a)
{
    for (size_t i = 0; i < sizeof(v4_rows) / sizeof(v4_rows[0]); i++) {
        struct ip net;

        if (ip_parse(v4_rows[i].prefix, &net) == 0 && prefix_match(a, net.bytes, v4_rows[i].bits)) {
            return v4_rows[i].cls;
        }
    }
    return NETADDR_PUBLIC;
}

static enum netaddr_class classify_ip(const struct ip *ip)
{
    if (ip->family == AF_INET) {
        return classify_v4(ip->bytes);
    }
    for (size_t i = 0; i < sizeof(v6_rows) / sizeof(v6_rows[0]); i++) {
        const struct class_row *row = &v6_rows[i];
        struct ip net;

        if (ip_parse(row->prefix, &net) != 0 || !prefix_match(ip->bytes, net.bytes, row->bits)) {
            continue;
        }
        return row->embed >= 0 ? classify_v4(ip->bytes + row->embed) : row->cls;
    }
    /* Only 2000::/3 holds global unicast; IANA has assigned nothing else for it. */
    return (ip->bytes[0] & 0xe0) == 0x20 ? NETADDR_PUBLIC : NETADDR_RESERVED;
}

enum netaddr_class netaddr_classify(const struct sockaddr *addr)
{
    struct ip ip;

    if (ip_of_sockaddr(addr, &ip) != 0) {
        return NETADDR_INVALID;
    }
    return classify_ip(&ip);
}

const char *netaddr_class_name(enum netaddr_class cls)
{
    if ((unsigned)cls >= sizeof(class_names) / sizeof(class_names[0])) {
        return "unknown";
    }
    return class_names[cls];
}

const char *netaddr_strerror(int code)
{
    for (size_t i = 0; i < sizeof(code_msgs) / sizeof(code_msgs[0]); i++) {
        if (code_msgs[i].code == code) {
            return code_msgs[i].msg;
        }
    }
    return "unknown error";
}

int netaddr_format(const struct sockaddr *addr, char *out, size_t out_size)
{
    struct ip ip;

    if (out_size == 0) {
        return -1;
    }
    if (ip_of_sockaddr(addr, &ip) == 0 &&
        inet_ntop(ip.family, ip.bytes, out, (socklen_t)(out_size > 64 ? 64 : out_size)) != NULL) {
        return 0;
    }
    snprintf(out, out_size, "?");
    return -1;
}

struct netaddr_allow *netaddr_allow_new(void)
{
    return calloc(1, sizeof(struct netaddr_allow));
}

void netaddr_allow_free(struct netaddr_allow *allow)
{
    if (allow == NULL) {
        return;
    }
    for (size_t i = 0; i < allow->n; i++) {
        free(allow->entries[i].name);
    }
    free(allow->entries);
    free(allow);
}

size_t netaddr_allow_count(const struct netaddr_allow *allow)
{
    return allow ? allow->n : 0;
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/*
 * True when s[0..len) is a host name as netaddr_allow_add describes it (no trailing dot here).
 * An all-digit last label is refused because every such name is a mistyped IPv4 address.
 */
static bool name_valid(const char *s, size_t len)
{
    size_t label = 0;
    bool digits_only = true;

    if (len == 0 || len > NAME_MAX_LEN) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '.') {
            if (label == 0) {
                return false;
            }
            label = 0;
            digits_only = true;
            continue;
        }
        if (!is_name_char(s[i]) || ++label > LABEL_MAX_LEN) {
            return false;
        }
        digits_only = digits_only && s[i] >= '0' && s[i] <= '9';
    }
    return label > 0 && !digits_only;
}

/*
 * The prefix length in text (decimal, no sign, no leading zero, at most max). Returns it, or -1.
 */
static int prefix_parse(const char *text, unsigned max)
{
    unsigned v = 0;
    size_t n = strlen(text);

    if (n == 0 || n > 3 || (n > 1 && text[0] == '0')) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
        v = v * 10 + (unsigned)(text[i] - '0');
    }
    return v <= max ? (int)v : -1;
}

/* A port in text[0..len): decimal, no sign, no leading zero, 1..65535. Returns it, or -1. */
static long port_parse(const char *text, size_t len)
{
    long v = 0;

    if (len == 0 || len > 5 || text[0] == '0') {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
        v = v * 10 + (text[i] - '0');
    }
    return v <= 65535 ? v : -1;
}

/*
 * Where an entry's optional ":port" starts in text[0..len): after "[v6]", after a range's
 * "/bits", or at the only colon of a name or an IPv4 address. A bare IPv6 address has at least
 * two colons and so never a port. Returns the offset of that colon, or len when there is none.
 */
static size_t port_colon(const char *text, size_t len)
{
    const char *slash = memchr(text, '/', len);
    const char *colon = NULL;
    size_t colons = 0;

    if (text[0] == '[') {
        const char *close = memchr(text, ']', len);
        return close != NULL && close + 1 < text + len && close[1] == ':'
                   ? (size_t)(close + 1 - text)
                   : len;
    }
    if (slash != NULL) {
        colon = memchr(slash, ':', len - (size_t)(slash - text));
        return colon != NULL ? (size_t)(colon - text) : len;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ':') {
            colon = colon ? colon : text + i;
            colons++;
        }
    }
    return colons == 1 ? (size_t)(colon - text) : len;
}

/*
 * Parses "address/bits" into e. text is at most NETADDR_ENTRY_MAX characters and slash points at
 * its '/'. Returns 0 or a negative enum netaddr_code.
 */
static int range_parse(const char *text, const char *slash, struct allow_entry *e)
{
    char addr[NETADDR_TEXT_SIZE];
    size_t alen = (size_t)(slash - text);
    int bits;
    struct ip masked;

    if (alen == 0 || alen >= sizeof(addr)) {
        return NETADDR_EINVAL;
    }
    memcpy(addr, text, alen);
    addr[alen] = '\0';
    if (ip_parse(addr, &e->net) != 0) {
        return NETADDR_EINVAL;
    }
    bits = prefix_parse(slash + 1, e->net.family == AF_INET ? 32 : 128);
    if (bits < 0) {
        return NETADDR_EPREFIX;
    }
    e->bits = (unsigned)bits;
    memset(&masked, 0, sizeof(masked));
    for (unsigned i = 0; i < e->bits; i++) {
        masked.bytes[i / 8] |= (uint8_t)(e->net.bytes[i / 8] & (0x80 >> (i % 8)));
    }
    return memcmp(masked.bytes, e->net.bytes, 16) == 0 ? NETADDR_OK : NETADDR_EHOSTBITS;
}

/*
 * Parses one entry into e (name allocated). Address forms are tried before names so that a
 * literal never lands in the name list. Returns 0 or a negative enum netaddr_code.
 */
static int entry_parse(const char *text, size_t len, struct allow_entry *e)
{
    const char *slash = memchr(text, '/', len);
    char inner[NETADDR_TEXT_SIZE];

    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)text[i] <= ' ' || (unsigned char)text[i] >= 0x7f) {
            return NETADDR_EINVAL;
        }
    }
    if (slash != NULL) {
        return range_parse(text, slash, e);
    }
    if (len >= 2 && text[0] == '[' && text[len - 1] == ']' && len - 2 < sizeof(inner)) {
        memcpy(inner, text + 1, len - 2);
        inner[len - 2] = '\0';
        if (ip_parse(inner, &e->net) != 0 || e->net.family != AF_INET6) {
            return NETADDR_EINVAL;
        }
        e->bits = 128;
        return NETADDR_OK;
    }
    if (ip_parse(text, &e->net) == 0) {
        e->bits = e->net.family == AF_INET ? 32 : 128;
        return NETADDR_OK;
    }
    if (len > 1 && text[len - 1] == '.') {
        len--;
    }
    if (!name_valid(text, len)) {
        return NETADDR_EINVAL;
    }
    e->name = malloc(len + 1);
    if (e->name == NULL) {
        return NETADDR_ENOMEM;
    }
    for (size_t i = 0; i < len; i++) {
        char c = text[i];

        e->name[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
    }
    e->name[len] = '\0';
    return NETADDR_OK;
}

int netaddr_allow_add(struct netaddr_allow *allow, const char *entry)
{
    struct allow_entry e;
    char text[NETADDR_ENTRY_MAX + 1];
    size_t len, at;
    long port = 0;
    int rc;

    if (allow == NULL || entry == NULL) {
        return NETADDR_EINVAL;
    }
    len = strnlen(entry, NETADDR_ENTRY_MAX + 1);
    if (len > NETADDR_ENTRY_MAX) {
        return NETADDR_ETOOLONG;
    }
    if (len == 0) {
        return NETADDR_EINVAL;
    }
    if (allow->n == NETADDR_ALLOW_MAX) {
        return NETADDR_ETOOMANY;
    }
    /* the entry without its port, NUL-terminated for the parsers below */
    at = port_colon(entry, len);
    if (at < len && (port = port_parse(entry + at + 1, len - at - 1)) < 0) {
        return NETADDR_EPORT;
    }
    if (at == 0) {
        return NETADDR_EINVAL;
    }
    memcpy(text, entry, at);
    text[at] = '\0';
    if (allow->n == allow->cap) {
        size_t cap = allow->cap ? allow->cap * 2 : 8;
        struct allow_entry *p;

        if (cap > NETADDR_ALLOW_MAX) {
            cap = NETADDR_ALLOW_MAX;
        }
        p = realloc(allow->entries, cap * sizeof(*p));
        if (p == NULL) {
            return NETADDR_ENOMEM;
        }
        allow->entries = p;
        allow->cap = cap;
    }
    rc = entry_parse(text, at, &e);
    if (rc != NETADDR_OK) {
        free(e.name);
        return rc;
    }
    e.port = (unsigned)port;
    if (e.name == NULL) {
        ip_unmap(&e.net, &e.bits); /* so one entry covers both spellings of an IPv4 address */
    }
    allow->entries[allow->n++] = e;
    return NETADDR_OK;
}

/* True when host (not NULL) names entry name, ignoring case and one trailing dot. */
static bool name_match(const char *name, const char *host)
{
    size_t n = strlen(name);
    size_t h = strnlen(host, NAME_MAX_LEN + 2);

    if (h > 1 && host[h - 1] == '.') {
        h--;
    }
    return h == n && strncasecmp(name, host, n) == 0;
}

static bool entry_covers(const struct allow_entry *e, const struct ip *ip)
{
    return e->net.family == ip->family && prefix_match(ip->bytes, e->net.bytes, e->bits);
}

bool netaddr_allowed(const struct netaddr_allow *allow, const char *host,
                     const struct sockaddr *addr)
{
    struct ip ip, v4;
    enum netaddr_class cls;
    unsigned port;

    if (ip_of_sockaddr(addr, &ip) != 0) {
        return false;
    }
    cls = classify_ip(&ip);
    if (cls == NETADDR_PUBLIC) {
        return true;
    }
    if (allow == NULL) {
        return false;
    }
    v4 = ip;
    ip_unmap(&v4, NULL);
    port = port_of_sockaddr(addr);
    for (size_t i = 0; i < allow->n; i++) {
        const struct allow_entry *e = &allow->entries[i];

        if (e->port != 0 && e->port != port) {
            continue;
        }
        if (e->name != NULL) {
            if (host != NULL && cls != NETADDR_METADATA && name_match(e->name, host)) {
                return true;
            }
        } else if (entry_covers(e, &ip) || entry_covers(e, &v4)) {
            return true;
        }
    }
    return false;
}
