/*
 * Unit tests of core/artifact_url: the signature against a vector computed independently (Python's
 * hmac and base64.urlsafe_b64encode), the URL's shape, what a check refuses (tampering, expiry,
 * malformed values), Host header validation and the base URL's fallbacks.
 */
#include <stdlib.h>

#include "core/artifact_url.h"
#include "check.h"

#define KEY "0123456789abcdef0123456789abcdef"
#define ID "task_abcdefghijklmnopqrstuvwxyz"
#define EXP 1700003600
/* base64url(HMAC-SHA256(KEY, "task_abcdefghijklmnopqrstuvwxyz/2/1700003600")), unpadded */
#define SIG2 "hb3Eu-viUMmn9Njvj8q2kliHOkR_U184jbpTn_sqb8Y"
#define SIG0 "wjWga6EV0iQ3tsAtsJkLwOdMw4OGzNz1zg3w4KnCtyY"

static const unsigned char *key = (const unsigned char *)KEY;
static const size_t key_len = sizeof(KEY) - 1;

static void test_sign(void)
{
    char sig[ARTIFACT_URL_SIG_LEN + 1];

    CHECK(artifact_url_sign(key, key_len, ID, 2, EXP, sig) == 0);
    CHECK_STR(sig, SIG2);
    CHECK(artifact_url_sign(key, key_len, ID, 0, EXP, sig) == 0);
    CHECK_STR(sig, SIG0);
    /* another key, another signature */
    CHECK(artifact_url_sign((const unsigned char *)"another key, 16+", 16, ID, 2, EXP, sig) == 0);
    CHECK(strcmp(sig, SIG2) != 0);
    CHECK(artifact_url_sign(key, 0, ID, 2, EXP, sig) == -1);
    CHECK_STR(sig, "");
    CHECK(artifact_url_sign(NULL, key_len, ID, 2, EXP, sig) == -1);
    CHECK(artifact_url_sign(key, key_len, ID, -1, EXP, sig) == -1);
}

static void test_format(void)
{
    char url[ARTIFACT_URL_MAX];

    CHECK(artifact_url_format("http://127.0.0.1:8080", key, key_len, ID, 2, EXP, url,
                              sizeof(url)) == 0);
    CHECK_STR(url, "http://127.0.0.1:8080/v1/artifacts/" ID "/2?expires=1700003600&sig=" SIG2);
    CHECK(artifact_url_format("https://sluice.example.com/api", key, key_len, ID, 0, EXP, url,
                              sizeof(url)) == 0);
    CHECK_STR(url,
              "https://sluice.example.com/api/v1/artifacts/" ID "/0?expires=1700003600&sig=" SIG0);
    /* too small: nothing half-written */
    CHECK(artifact_url_format("http://h", key, key_len, ID, 2, EXP, url, 40) == -1);
    CHECK_STR(url, "");
}

static void test_check(void)
{
    struct core_err e;

    core_err_clear(&e);
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600", SIG2, EXP - 10, &e) == 0);
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600", SIG2, EXP, &e) == 0);
    /* one second late */
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600", SIG2, EXP + 1, &e) == CORE_EPERM);
    CHECK_STR(e.err_code, "url_expired");
    CHECK(e.http_status == 403);
    /* the signature of another index, another expiry, another task, another key */
    core_err_clear(&e);
    CHECK(artifact_url_check(key, key_len, ID, 0, "1700003600", SIG2, EXP, &e) == CORE_EPERM);
    CHECK_STR(e.err_code, "invalid_signature");
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003601", SIG2, EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, "task_abcdefghijklmnopqrstuvwxyy", 2, "1700003600", SIG2,
                             EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check((const unsigned char *)"0123456789abcdef0123456789abcdeF", key_len, ID,
                             2, "1700003600", SIG2, EXP, &e) == CORE_EPERM);
    /* an extended expiry is a different message: refused even when far in the future */
    CHECK(artifact_url_check(key, key_len, ID, 2, "9700003600", SIG2, EXP, &e) == CORE_EPERM);
    CHECK_STR(e.err_code, "invalid_signature");
    /* one character changed, cut, padded, missing */
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600",
                             "hb3Eu-viUMmn9Njvj8q2kliHOkR_U184jbpTn_sqb8Z", EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600",
                             "hb3Eu-viUMmn9Njvj8q2kliHOkR_U184jbpTn_sqb8", EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600", SIG2 "=", EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600", NULL, EXP, &e) == CORE_EPERM);
    /* malformed expiries */
    CHECK(artifact_url_check(key, key_len, ID, 2, NULL, SIG2, EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, ID, 2, "", SIG2, EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, ID, 2, "+1700003600", SIG2, EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, ID, 2, "1700003600 ", SIG2, EXP, &e) == CORE_EPERM);
    CHECK(artifact_url_check(key, key_len, ID, 2, "0001700003600", SIG2, EXP, &e) == CORE_EPERM);
}

static void test_host(void)
{
    static const char *const good[] = {
        "127.0.0.1:8080", "localhost", "sluice.example.com", "sluice-1.internal:443",
        "[::1]:8080",     "[::1]",     "[fe80::1:2]",        "a:65535",
    };
    static const char *const bad[] = {
        "",     ":80", "a:",     "a:65536", "a:123456", "a:8o",    "evil.com/x", "a b",    "a@b",
        "[::1", "[]",  "[::1]x", ".a",      "-a",       "a:80:90", "a\r\nX: y",  "[::1]:", "a?b",
    };
    char long_host[300];

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        CHECK(artifact_url_host_ok(good[i]));
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (artifact_url_host_ok(bad[i])) {
            fprintf(stderr, "accepted bad host \"%s\"\n", bad[i]);
        }
        CHECK(!artifact_url_host_ok(bad[i]));
    }
    CHECK(!artifact_url_host_ok(NULL));
    memset(long_host, 'a', sizeof(long_host) - 1);
    long_host[sizeof(long_host) - 1] = '\0';
    CHECK(!artifact_url_host_ok(long_host));
}

static void test_base(void)
{
    char out[ARTIFACT_URL_BASE_MAX];

    CHECK(artifact_url_base("https://img.example.com", "127.0.0.1:9", "0.0.0.0", 8080, out,
                            sizeof(out)) == 0);
    CHECK_STR(out, "https://img.example.com");
    CHECK(artifact_url_base(NULL, "127.0.0.1:9", "0.0.0.0", 8080, out, sizeof(out)) == 0);
    CHECK_STR(out, "http://127.0.0.1:9");
    CHECK(artifact_url_base("", "sluice:80", "0.0.0.0", 8080, out, sizeof(out)) == 0);
    CHECK_STR(out, "http://sluice:80");
    /* a Host header that is not host[:port] falls back to the listen address */
    CHECK(artifact_url_base(NULL, "evil.com/steal?", "127.0.0.1", 8080, out, sizeof(out)) == 0);
    CHECK_STR(out, "http://127.0.0.1:8080");
    CHECK(artifact_url_base(NULL, NULL, "::1", 8080, out, sizeof(out)) == 0);
    CHECK_STR(out, "http://[::1]:8080");
    CHECK(artifact_url_base(NULL, "host", "::1", 8080, out, 8) == -1);
    CHECK_STR(out, "");
}

int main(void)
{
    test_sign();
    test_format();
    test_check();
    test_host();
    test_base();
    return check_done();
}
