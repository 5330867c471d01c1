/*
 * Unit tests of core/netaddr: every address class with its edges, allow-list parsing (names,
 * addresses, CIDR ranges, ports and the errors), and netaddr_allowed, with and without ports.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/un.h>

#include "core/netaddr.h"
#include "check.h"

/* A socket address for a literal; the test aborts on a typo in the table. */
static struct sockaddr_storage sa(const char *text)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') == NULL) {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;

        in->sin_family = AF_INET;
        in->sin_port = htons(443);
        if (inet_pton(AF_INET, text, &in->sin_addr) != 1) {
            fprintf(stderr, "bad test address %s\n", text);
            abort();
        }
    } else {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(443);
        if (inet_pton(AF_INET6, text, &in6->sin6_addr) != 1) {
            fprintf(stderr, "bad test address %s\n", text);
            abort();
        }
    }
    return ss;
}

static enum netaddr_class cls_of(const char *text)
{
    struct sockaddr_storage ss = sa(text);

    return netaddr_classify((const struct sockaddr *)&ss);
}

static bool allowed(const struct netaddr_allow *allow, const char *host, const char *text)
{
    struct sockaddr_storage ss = sa(text);

    return netaddr_allowed(allow, host, (const struct sockaddr *)&ss);
}

/* allowed(), for a connection to port (0: a caller that has none). */
static bool allowed_at(const struct netaddr_allow *allow, const char *host, const char *text,
                       unsigned port)
{
    struct sockaddr_storage ss = sa(text);

    if (ss.ss_family == AF_INET) {
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    } else {
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    }
    return netaddr_allowed(allow, host, (const struct sockaddr *)&ss);
}

static void test_classes(void)
{
    static const struct {
        const char *addr;
        enum netaddr_class cls;
    } cases[] = {
        /* IPv4, with the addresses just outside each range */
        {"8.8.8.8", NETADDR_PUBLIC},
        {"1.1.1.1", NETADDR_PUBLIC},
        {"0.0.0.0", NETADDR_UNSPECIFIED},
        {"0.255.255.255", NETADDR_UNSPECIFIED},
        {"1.0.0.0", NETADDR_PUBLIC},
        {"127.0.0.1", NETADDR_LOOPBACK},
        {"127.255.255.254", NETADDR_LOOPBACK},
        {"126.255.255.255", NETADDR_PUBLIC},
        {"128.0.0.0", NETADDR_PUBLIC},
        {"10.0.0.5", NETADDR_PRIVATE},
        {"10.255.255.255", NETADDR_PRIVATE},
        {"9.255.255.255", NETADDR_PUBLIC},
        {"11.0.0.0", NETADDR_PUBLIC},
        {"172.16.0.0", NETADDR_PRIVATE},
        {"172.31.255.255", NETADDR_PRIVATE},
        {"172.15.255.255", NETADDR_PUBLIC},
        {"172.32.0.0", NETADDR_PUBLIC},
        {"192.168.0.1", NETADDR_PRIVATE},
        {"192.167.255.255", NETADDR_PUBLIC},
        {"192.169.0.0", NETADDR_PUBLIC},
        {"169.254.0.1", NETADDR_LINK_LOCAL},
        {"169.254.255.255", NETADDR_LINK_LOCAL},
        {"169.255.0.0", NETADDR_PUBLIC},
        {"169.254.169.254", NETADDR_METADATA},
        {"169.254.169.253", NETADDR_LINK_LOCAL},
        {"169.254.170.2", NETADDR_METADATA},
        {"168.63.129.16", NETADDR_METADATA},
        {"168.63.129.17", NETADDR_PUBLIC},
        {"100.100.100.200", NETADDR_METADATA},
        {"192.0.0.192", NETADDR_METADATA},
        {"100.64.0.0", NETADDR_CGNAT},
        {"100.127.255.255", NETADDR_CGNAT},
        {"100.63.255.255", NETADDR_PUBLIC},
        {"100.128.0.0", NETADDR_PUBLIC},
        {"224.0.0.1", NETADDR_MULTICAST},
        {"239.255.255.255", NETADDR_MULTICAST},
        {"223.255.255.255", NETADDR_PUBLIC},
        {"255.255.255.255", NETADDR_BROADCAST},
        {"255.255.255.254", NETADDR_RESERVED},
        {"240.0.0.1", NETADDR_RESERVED},
        {"192.0.0.8", NETADDR_RESERVED},
        {"192.0.2.1", NETADDR_RESERVED},
        {"192.0.3.1", NETADDR_PUBLIC},
        {"192.88.99.1", NETADDR_RESERVED},
        {"198.18.0.1", NETADDR_RESERVED},
        {"198.19.255.255", NETADDR_RESERVED},
        {"198.17.255.255", NETADDR_PUBLIC},
        {"198.20.0.0", NETADDR_PUBLIC},
        {"198.51.100.1", NETADDR_RESERVED},
        {"203.0.113.9", NETADDR_RESERVED},
        /* IPv6 */
        {"::", NETADDR_UNSPECIFIED},
        {"::1", NETADDR_LOOPBACK},
        {"::2", NETADDR_RESERVED},
        {"2606:4700:4700::1111", NETADDR_PUBLIC},
        {"2001:4860:4860::8888", NETADDR_PUBLIC},
        {"2a00:1450:4001::1", NETADDR_PUBLIC},
        {"3ffe:ffff::1", NETADDR_PUBLIC},
        {"fc00::1", NETADDR_PRIVATE},
        {"fdff:ffff::1", NETADDR_PRIVATE},
        {"fbff::1", NETADDR_RESERVED},
        {"fd00:ec2::254", NETADDR_METADATA},
        {"fd00:ec2::253", NETADDR_PRIVATE},
        {"fe80::1", NETADDR_LINK_LOCAL},
        {"febf:ffff::1", NETADDR_LINK_LOCAL},
        {"fec0::1", NETADDR_PRIVATE},
        {"ff02::1", NETADDR_MULTICAST},
        {"ff0e::1", NETADDR_MULTICAST},
        {"100::1", NETADDR_RESERVED},
        {"100:0:0:1::1", NETADDR_RESERVED},
        {"2001::1", NETADDR_RESERVED},
        {"2001:1ff::1", NETADDR_RESERVED},
        {"2001:200::1", NETADDR_PUBLIC},
        {"2001:db8::1", NETADDR_RESERVED},
        {"3fff::1", NETADDR_RESERVED},
        {"5f00::1", NETADDR_RESERVED},
        {"4000::1", NETADDR_RESERVED},
        {"1fff::1", NETADDR_RESERVED},
        /* IPv4 inside IPv6: the IPv4 address decides */
        {"::ffff:127.0.0.1", NETADDR_LOOPBACK},
        {"::ffff:10.0.0.5", NETADDR_PRIVATE},
        {"::ffff:169.254.169.254", NETADDR_METADATA},
        {"::ffff:0.0.0.0", NETADDR_UNSPECIFIED},
        {"::ffff:8.8.8.8", NETADDR_PUBLIC},
        {"64:ff9b::10.0.0.5", NETADDR_PRIVATE},
        {"64:ff9b::127.0.0.1", NETADDR_LOOPBACK},
        {"64:ff9b::169.254.169.254", NETADDR_METADATA},
        {"64:ff9b::8.8.8.8", NETADDR_PUBLIC},
        {"64:ff9b:1::8.8.8.8", NETADDR_PRIVATE},
        {"2002:0a00:0001::1", NETADDR_PRIVATE},
        {"2002:7f00:0001::1", NETADDR_LOOPBACK},
        {"2002:0808:0808::1", NETADDR_PUBLIC},
        /* deprecated IPv4-compatible and SIIT forms are not followed: reserved */
        {"::127.0.0.1", NETADDR_RESERVED},
        {"::8.8.8.8", NETADDR_RESERVED},
        {"::ffff:0:8.8.8.8", NETADDR_RESERVED},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum netaddr_class got = cls_of(cases[i].addr);

        CHECK(got == cases[i].cls);
        if (got != cases[i].cls) {
            fprintf(stderr, "  %s is %s, want %s\n", cases[i].addr, netaddr_class_name(got),
                    netaddr_class_name(cases[i].cls));
        }
    }
}

static void test_invalid_and_names(void)
{
    struct sockaddr_un un;
    char buf[NETADDR_TEXT_SIZE];
    struct sockaddr_storage ss;
    struct netaddr_allow *all = netaddr_allow_new();

    memset(&un, 0, sizeof(un));
    un.sun_family = AF_UNIX;
    CHECK(netaddr_classify((const struct sockaddr *)&un) == NETADDR_INVALID);
    CHECK(netaddr_classify(NULL) == NETADDR_INVALID);
    CHECK(netaddr_allow_add(all, "0.0.0.0/0") == 0);
    CHECK(netaddr_allow_add(all, "::/0") == 0);
    CHECK(netaddr_allow_add(all, "localhost") == 0);
    CHECK(!netaddr_allowed(all, "localhost", (const struct sockaddr *)&un));
    CHECK(!netaddr_allowed(all, "localhost", NULL));
    netaddr_allow_free(all);

    CHECK_STR(netaddr_class_name(NETADDR_PUBLIC), "public");
    CHECK_STR(netaddr_class_name(NETADDR_PRIVATE), "private");
    CHECK_STR(netaddr_class_name(NETADDR_METADATA), "cloud metadata");
    CHECK_STR(netaddr_class_name((enum netaddr_class)99), "unknown");
    for (int c = NETADDR_PUBLIC; c <= NETADDR_INVALID; c++) {
        CHECK(strcmp(netaddr_class_name((enum netaddr_class)c), "unknown") != 0);
    }
    CHECK(strlen(netaddr_strerror(NETADDR_EHOSTBITS)) > 0);
    CHECK(strstr(netaddr_strerror(NETADDR_EPORT), "port") != NULL);
    CHECK_STR(netaddr_strerror(-99), "unknown error");

    ss = sa("10.0.0.5");
    CHECK(netaddr_format((const struct sockaddr *)&ss, buf, sizeof(buf)) == 0);
    CHECK_STR(buf, "10.0.0.5");
    ss = sa("::ffff:10.0.0.5");
    CHECK(netaddr_format((const struct sockaddr *)&ss, buf, sizeof(buf)) == 0);
    CHECK_STR(buf, "::ffff:10.0.0.5");
    ss = sa("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe");
    CHECK(netaddr_format((const struct sockaddr *)&ss, buf, sizeof(buf)) == 0);
    CHECK(netaddr_format((const struct sockaddr *)&ss, buf, 8) == -1);
    CHECK_STR(buf, "?");
    CHECK(netaddr_format((const struct sockaddr *)&un, buf, sizeof(buf)) == -1);
    CHECK(netaddr_format((const struct sockaddr *)&un, buf, 0) == -1);
}

static void test_parse(void)
{
    static const struct {
        const char *entry;
        int want;
    } cases[] = {
        {"localhost", NETADDR_OK},
        {"LocalHost.", NETADDR_OK},
        {"hooks.internal", NETADDR_OK},
        {"my_service", NETADDR_OK},
        {"a-b.c-d.example", NETADDR_OK},
        {"1.2.3.example", NETADDR_OK},
        {"10.0.0.5", NETADDR_OK},
        {"::1", NETADDR_OK},
        {"[::1]", NETADDR_OK},
        {"::ffff:10.0.0.5", NETADDR_OK},
        {"10.0.0.0/8", NETADDR_OK},
        {"0.0.0.0/0", NETADDR_OK},
        {"::/0", NETADDR_OK},
        {"fd00::/8", NETADDR_OK},
        {"192.168.1.7/32", NETADDR_OK},
        {"::1/128", NETADDR_OK},
        {"10.128.0.0/9", NETADDR_OK},
        {"2001:db8::/32", NETADDR_OK},
        /* masks */
        {"10.0.0.0/33", NETADDR_EPREFIX},
        {"::/129", NETADDR_EPREFIX},
        {"10.0.0.0/", NETADDR_EPREFIX},
        {"10.0.0.0/-1", NETADDR_EPREFIX},
        {"10.0.0.0/+8", NETADDR_EPREFIX},
        {"10.0.0.0/08", NETADDR_EPREFIX},
        {"10.0.0.0/8/8", NETADDR_EPREFIX},
        {"10.0.0.0/8x", NETADDR_EPREFIX},
        {"10.0.0.0/1000", NETADDR_EPREFIX},
        {"10.0.0.0/4294967304", NETADDR_EPREFIX},
        {"10.0.0.0/255.0.0.0", NETADDR_EPREFIX},
        {"10.0.0.1/8", NETADDR_EHOSTBITS},
        {"10.0.0.1/31", NETADDR_EHOSTBITS},
        {"10.192.0.0/9", NETADDR_EHOSTBITS},
        {"fd00::1/8", NETADDR_EHOSTBITS},
        {"fd00::1/127", NETADDR_EHOSTBITS},
        {"1.2.3.4/0", NETADDR_EHOSTBITS},
        {"/8", NETADDR_EINVAL},
        {"[::1]/128", NETADDR_EINVAL},
        {"example.com/8", NETADDR_EINVAL},
        {"http://example.com", NETADDR_EINVAL},
        /* neither address nor name */
        {"", NETADDR_EINVAL},
        {"1.2.3", NETADDR_EINVAL},
        {"10.0.0.256", NETADDR_EINVAL},
        {"010.0.0.1", NETADDR_EINVAL},
        {"0x7f.0.0.1", NETADDR_EINVAL}, /* numeric last label: an address form, not a name */
        {"2130706433", NETADDR_EINVAL},
        {"[10.0.0.1]", NETADDR_EINVAL},
        {"[::1", NETADDR_EINVAL},
        {"fe80::1%eth0", NETADDR_EINVAL},
        {"host name", NETADDR_EINVAL},
        {" localhost", NETADDR_EINVAL},
        {"localhost\n", NETADDR_EINVAL},
        {"a..b", NETADDR_EINVAL},
        {".a", NETADDR_EINVAL},
        {".", NETADDR_EINVAL},
        {"a.b..", NETADDR_EINVAL},
        {"*.example.com", NETADDR_EINVAL},
        {"h\xc3\xa9llo", NETADDR_EINVAL},
        {"user@host", NETADDR_EINVAL},
        /* ports */
        {"host:8080", NETADDR_OK},
        {"hooks.internal.:443", NETADDR_OK},
        {"127.0.0.1:1", NETADDR_OK},
        {"127.0.0.1:65535", NETADDR_OK},
        {"[::1]:8080", NETADDR_OK},
        {"[::ffff:10.0.0.5]:80", NETADDR_OK},
        {"10.0.0.0/8:443", NETADDR_OK},
        {"fd00::/8:443", NETADDR_OK},
        {"::1:8080", NETADDR_OK}, /* the address ::1:8080, no port */
        {"127.0.0.1:0", NETADDR_EPORT},
        {"127.0.0.1:65536", NETADDR_EPORT},
        {"127.0.0.1:99999", NETADDR_EPORT},
        {"127.0.0.1:123456", NETADDR_EPORT},
        {"127.0.0.1:080", NETADDR_EPORT},
        {"127.0.0.1:+80", NETADDR_EPORT},
        {"127.0.0.1:-1", NETADDR_EPORT},
        {"127.0.0.1:", NETADDR_EPORT},
        {"127.0.0.1:http", NETADDR_EPORT},
        {"127.0.0.1:80:80", NETADDR_EINVAL},
        {"host:80 ", NETADDR_EPORT},
        {"[::1]:", NETADDR_EPORT},
        {"[::1]:8x", NETADDR_EPORT},
        {"[::1]8080", NETADDR_EINVAL},
        {"[127.0.0.1]:80", NETADDR_EINVAL},
        {"[::1]/128:80", NETADDR_EINVAL},
        {"10.0.0.0/8:", NETADDR_EPORT},
        {"10.0.0.0/33:80", NETADDR_EPREFIX},
        {"10.0.0.1/8:80", NETADDR_EHOSTBITS},
        {":8080", NETADDR_EINVAL},
        {"host name:80", NETADDR_EINVAL},
        {"user@host:80", NETADDR_EINVAL},
    };
    struct netaddr_allow *allow = netaddr_allow_new();
    char long_label[80], name[300];
    size_t count = 0;

    CHECK(allow != NULL);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int rc = netaddr_allow_add(allow, cases[i].entry);

        CHECK(rc == cases[i].want);
        if (rc != cases[i].want) {
            fprintf(stderr, "  entry \"%s\": %d, want %d\n", cases[i].entry, rc, cases[i].want);
        }
        count += rc == NETADDR_OK;
        CHECK(netaddr_allow_count(allow) == count); /* an error leaves the list as it was */
    }
    CHECK(netaddr_allow_add(NULL, "localhost") == NETADDR_EINVAL);
    CHECK(netaddr_allow_add(allow, NULL) == NETADDR_EINVAL);

    /* labels up to 63, names up to 253 (+ a trailing dot), entries up to 255 */
    memset(long_label, 'a', 63);
    strcpy(long_label + 63, ".example");
    CHECK(netaddr_allow_add(allow, long_label) == NETADDR_OK);
    memset(long_label, 'a', 64);
    strcpy(long_label + 64, ".example");
    CHECK(netaddr_allow_add(allow, long_label) == NETADDR_EINVAL);
    for (int i = 0; i < 63 * 4; i += 2) {
        name[i] = 'a';
        name[i + 1] = '.';
    }
    name[251] = 'b';
    name[252] = 'c';
    name[253] = '\0';
    CHECK(strlen(name) == 253);
    CHECK(netaddr_allow_add(allow, name) == NETADDR_OK);
    strcpy(name + 253, ".");
    CHECK(netaddr_allow_add(allow, name) == NETADDR_OK);
    strcpy(name + 253, "d");
    CHECK(netaddr_allow_add(allow, name) == NETADDR_EINVAL);
    memset(name, 'a', 256);
    name[256] = '\0';
    CHECK(netaddr_allow_add(allow, name) == NETADDR_ETOOLONG);
    name[255] = '\0';
    CHECK(netaddr_allow_add(allow, name) == NETADDR_EINVAL);
    netaddr_allow_free(allow);
    netaddr_allow_free(NULL);

    allow = netaddr_allow_new();
    for (int i = 0; i < NETADDR_ALLOW_MAX; i++) {
        snprintf(name, sizeof(name), "host%d.internal", i);
        CHECK(netaddr_allow_add(allow, name) == NETADDR_OK);
    }
    CHECK(netaddr_allow_add(allow, "one-more.internal") == NETADDR_ETOOMANY);
    CHECK(netaddr_allow_count(allow) == NETADDR_ALLOW_MAX);
    CHECK(allowed(allow, "HOST255.internal", "10.1.1.1"));
    CHECK(!allowed(allow, "host256.internal", "10.1.1.1"));
    netaddr_allow_free(allow);
}

static struct netaddr_allow *allow_of(const char *const *entries, size_t n)
{
    struct netaddr_allow *allow = netaddr_allow_new();

    for (size_t i = 0; i < n; i++) {
        if (netaddr_allow_add(allow, entries[i]) != 0) {
            fprintf(stderr, "bad test entry %s\n", entries[i]);
            abort();
        }
    }
    return allow;
}

#define ALLOW(...)                                                                                 \
    allow_of((const char *const[]){__VA_ARGS__},                                                   \
             sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void test_allowed(void)
{
    struct netaddr_allow *a;

    /* no list: public only */
    CHECK(allowed(NULL, "example.com", "93.184.216.34"));
    CHECK(allowed(NULL, NULL, "2606:4700:4700::1111"));
    CHECK(!allowed(NULL, "localhost", "127.0.0.1"));
    CHECK(!allowed(NULL, NULL, "10.0.0.5"));
    a = netaddr_allow_new();
    CHECK(allowed(a, NULL, "8.8.8.8"));
    CHECK(!allowed(a, "localhost", "::1"));
    netaddr_allow_free(a);

    /* a single address: itself, also as IPv4-mapped, nothing next to it */
    a = ALLOW("127.0.0.1");
    CHECK(allowed(a, NULL, "127.0.0.1"));
    CHECK(allowed(a, "whatever", "::ffff:127.0.0.1"));
    CHECK(!allowed(a, NULL, "127.0.0.2"));
    CHECK(!allowed(a, NULL, "::1"));
    CHECK(!allowed(a, NULL, "0.0.0.0"));
    netaddr_allow_free(a);

    /* ranges and their edges */
    a = ALLOW("127.0.0.0/8", "10.128.0.0/9", "10.0.0.4/31", "192.168.7.7/32", "fd00::/127",
              "fd00:1::5/128");
    CHECK(allowed(a, NULL, "127.1.2.3"));
    CHECK(allowed(a, NULL, "127.255.255.255"));
    CHECK(allowed(a, NULL, "10.128.0.0"));
    CHECK(allowed(a, NULL, "10.255.255.255"));
    CHECK(!allowed(a, NULL, "10.127.255.255"));
    CHECK(allowed(a, NULL, "10.0.0.4"));
    CHECK(allowed(a, NULL, "10.0.0.5"));
    CHECK(!allowed(a, NULL, "10.0.0.6"));
    CHECK(!allowed(a, NULL, "10.0.0.3"));
    CHECK(allowed(a, NULL, "192.168.7.7"));
    CHECK(!allowed(a, NULL, "192.168.7.6"));
    CHECK(allowed(a, NULL, "fd00::1"));
    CHECK(!allowed(a, NULL, "fd00::2"));
    CHECK(allowed(a, NULL, "fd00:1::5"));
    CHECK(!allowed(a, NULL, "fd00:1::4"));
    CHECK(!allowed(a, NULL, "169.254.169.254"));
    netaddr_allow_free(a);

    /* /0 of one family lets everything of that family, nothing of the other */
    a = ALLOW("0.0.0.0/0");
    CHECK(allowed(a, NULL, "0.0.0.0"));
    CHECK(allowed(a, NULL, "169.254.169.254"));
    CHECK(allowed(a, NULL, "255.255.255.255"));
    CHECK(allowed(a, NULL, "::ffff:10.0.0.1"));
    CHECK(!allowed(a, NULL, "::1"));
    CHECK(!allowed(a, NULL, "fd00::1"));
    netaddr_allow_free(a);
    a = ALLOW("::/0");
    CHECK(allowed(a, NULL, "::1"));
    CHECK(allowed(a, NULL, "fe80::1"));
    CHECK(allowed(a, NULL, "::ffff:10.0.0.1"));
    CHECK(!allowed(a, NULL, "10.0.0.1"));
    netaddr_allow_free(a);
    /* IPv4-mapped entries cover the IPv4 address in either spelling */
    a = ALLOW("::ffff:10.0.0.0/104", "::ffff:127.0.0.1");
    CHECK(allowed(a, NULL, "::ffff:10.1.2.3"));
    CHECK(allowed(a, NULL, "10.1.2.3"));
    CHECK(!allowed(a, NULL, "192.168.1.1"));
    CHECK(allowed(a, NULL, "127.0.0.1"));
    CHECK(!allowed(a, NULL, "127.0.0.2"));
    CHECK(!allowed(a, NULL, "::1"));
    netaddr_allow_free(a);
    a = ALLOW("::ffff:0:0/96");
    CHECK(allowed(a, NULL, "192.168.1.1"));
    CHECK(allowed(a, NULL, "::ffff:169.254.169.254"));
    CHECK(!allowed(a, NULL, "::1"));
    CHECK(!allowed(a, NULL, "64:ff9b::10.0.0.1"));
    netaddr_allow_free(a);

    /* names: exact, any case, one trailing dot either side; never the metadata endpoints */
    a = ALLOW("localhost", "Hooks.Internal.");
    CHECK(allowed(a, "localhost", "127.0.0.1"));
    CHECK(allowed(a, "localhost", "::1"));
    CHECK(allowed(a, "LOCALHOST.", "127.0.0.1"));
    CHECK(allowed(a, "hooks.internal", "10.0.0.7"));
    CHECK(allowed(a, "HOOKS.INTERNAL", "fd00::7"));
    CHECK(allowed(a, "localhost", "0.0.0.0"));
    CHECK(!allowed(a, "localhost..", "127.0.0.1"));
    CHECK(!allowed(a, "localhost.evil.example", "127.0.0.1"));
    CHECK(!allowed(a, "evil-localhost", "127.0.0.1"));
    CHECK(!allowed(a, "internal", "10.0.0.7"));
    CHECK(!allowed(a, "", "127.0.0.1"));
    CHECK(!allowed(a, NULL, "127.0.0.1"));
    CHECK(!allowed(a, "localhost", "169.254.169.254"));
    CHECK(!allowed(a, "localhost", "::ffff:169.254.169.254"));
    CHECK(!allowed(a, "hooks.internal", "fd00:ec2::254"));
    netaddr_allow_free(a);

    /* the metadata endpoints need an address or range that covers them */
    a = ALLOW("169.254.169.254", "fd00:ec2::/32");
    CHECK(allowed(a, NULL, "169.254.169.254"));
    CHECK(allowed(a, NULL, "fd00:ec2::254"));
    CHECK(!allowed(a, NULL, "169.254.169.253"));
    netaddr_allow_free(a);
    a = ALLOW("169.254.0.0/16");
    CHECK(allowed(a, NULL, "169.254.169.254"));
    CHECK(allowed(a, NULL, "169.254.1.1"));
    netaddr_allow_free(a);
    a = ALLOW("[::1]");
    CHECK(allowed(a, "[::1]", "::1"));
    CHECK(!allowed(a, "[::1]", "127.0.0.1"));
    netaddr_allow_free(a);
}

/* An entry with a port covers connections to that port only; one without, every port. */
static void test_ports(void)
{
    struct netaddr_allow *a;

    a = ALLOW("127.0.0.1:8080", "[::1]:9000", "10.0.0.0/8:443", "fd00::/8:8443",
              "hooks.internal:81", "192.168.1.1");
    CHECK(allowed_at(a, NULL, "127.0.0.1", 8080));
    CHECK(allowed_at(a, "whatever", "::ffff:127.0.0.1", 8080));
    CHECK(!allowed_at(a, NULL, "127.0.0.1", 8081));
    CHECK(!allowed_at(a, NULL, "127.0.0.1", 80));
    CHECK(!allowed_at(a, NULL, "127.0.0.1", 0));
    CHECK(!allowed_at(a, NULL, "127.0.0.2", 8080));
    CHECK(allowed_at(a, NULL, "::1", 9000));
    CHECK(!allowed_at(a, NULL, "::1", 8080));
    CHECK(!allowed_at(a, NULL, "127.0.0.1", 9000));
    CHECK(allowed_at(a, NULL, "10.1.2.3", 443));
    CHECK(!allowed_at(a, NULL, "10.1.2.3", 444));
    CHECK(allowed_at(a, NULL, "fd12::1", 8443));
    CHECK(!allowed_at(a, NULL, "fd12::1", 443));
    CHECK(allowed_at(a, "hooks.internal", "10.9.9.9", 81));
    CHECK(allowed_at(a, "HOOKS.internal.", "fd00::9", 81));
    CHECK(!allowed_at(a, "hooks.internal", "172.16.0.1", 80));
    CHECK(!allowed_at(a, "hooks.internal", "169.254.169.254", 81)); /* never metadata by name */
    /* no port on the entry: every port, and callers that have none */
    CHECK(allowed_at(a, NULL, "192.168.1.1", 1));
    CHECK(allowed_at(a, NULL, "192.168.1.1", 65535));
    CHECK(allowed_at(a, NULL, "192.168.1.1", 0));
    /* public addresses need no entry, whatever the port */
    CHECK(allowed_at(a, NULL, "8.8.8.8", 25));
    netaddr_allow_free(a);

    /* the same address with and without a port: the portless one wins on any port */
    a = ALLOW("127.0.0.1:8080", "127.0.0.1");
    CHECK(allowed_at(a, NULL, "127.0.0.1", 1234));
    netaddr_allow_free(a);
    /* one address on two ports */
    a = ALLOW("127.0.0.1:8080", "127.0.0.1:8443", "localhost:3000");
    CHECK(allowed_at(a, NULL, "127.0.0.1", 8443));
    CHECK(allowed_at(a, NULL, "127.0.0.1", 8080));
    CHECK(!allowed_at(a, NULL, "127.0.0.1", 3000));
    CHECK(allowed_at(a, "localhost", "127.0.0.1", 3000));
    CHECK(!allowed_at(a, "localhost", "::1", 8081));
    CHECK(!allowed_at(a, NULL, "::1", 8080));
    netaddr_allow_free(a);
}

int main(void)
{
    test_classes();
    test_invalid_and_names();
    test_parse();
    test_allowed();
    test_ports();
    return check_done();
}
