/*
 * Unit tests of core/webhook_url: the URLs a webhook may name, the ones curl would refuse or
 * misread, credentials, other schemes, no host, the length cap, and what each message says.
 */
#include <stdlib.h>

#include <curl/curl.h>

#include "core/webhook_url.h"
#include "check.h"

/* Checks url against the rule: want_ok, or a refusal whose message contains want_msg. */
static void expect(const char *url, bool want_ok, const char *want_msg)
{
    struct core_err e;
    int rc;

    core_err_clear(&e);
    rc = webhook_url_check(url, "webhook.url", &e);
    CHECK((rc == 0) == want_ok);
    if (want_ok) {
        CHECK(e.code == 0);
        if (rc != 0) {
            fprintf(stderr, "  \"%s\" refused: %s\n", url, e.message);
        }
        return;
    }
    CHECK(rc == CORE_EINVAL && e.code == CORE_EINVAL);
    CHECK_STR(e.param, "webhook.url");
    CHECK_STR(e.type, "invalid_request_error");
    CHECK(strncmp(e.message, "'webhook.url' ", 14) == 0);
    CHECK(strstr(e.message, want_msg) != NULL);
    if (rc == 0 || strstr(e.message, want_msg) == NULL) {
        fprintf(stderr, "  \"%s\": \"%s\", want \"%s\"\n", url, e.message, want_msg);
    }
    CHECK(strstr(e.message, "pw") == NULL); /* never the URL's text */
}

static void test_accepted(void)
{
    static const char *const good[] = {
        "http://127.0.0.1/hook",
        "https://hooks.example.com",
        "https://hooks.example.com/a/b?c=d&e=%20f#frag",
        "HTTPS://Hooks.Example.COM/X",
        "http://[::1]:9/x",
        "http://[fe80::1%25eth0]/x",
        "http://hooks.example.com:65535/x",
        "http://xn--hllo-bpa.example/",
        "http://h/a%0d%0ab", /* encoded CR LF stay in the path, harmless */
        "http://h/{x}'y",
        "http://h:/x",
    };

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        expect(good[i], true, NULL);
    }
}

static void test_refused(void)
{
    static const struct {
        const char *url;
        const char *msg;
    } bad[] = {
        /* bytes curl would refuse, or put into a request line */
        {"http://h/hook\r\nX-Injected: 1", "control character (0x0d) at offset 13"},
        {"http://h/hook\nx", "control character (0x0a)"},
        {"http://h/ho ok", "space or control character (0x20) at offset 11"},
        {"http://h/hook\t", "(0x09)"},
        {" http://h/hook", "at offset 0"},
        {"http://h/\x7f", "(0x7f)"},
        {"http://h\xc3\xa9llo.example/", "must be ASCII (byte 0xc3 at offset 8)"},
        /* credentials */
        {"http://user:pw@h/hook", "credentials"},
        {"http://user@h/hook", "credentials"},
        {"http://:pw@h/hook", "credentials"},
        {"http://@h/hook", "credentials"},
        {"http://u;opt@h/hook", "credentials"},
        /* schemes */
        {"ftp://h/hook", "http or https"},
        {"file:///etc/passwd", "http or https"},
        {"javascript:alert(1)", "http or https"},
        {"mailto:a@b", "http or https"},
        {"h/hook", "http or https"},
        {"127.0.0.1/hook", "http or https"},
        {"//h/hook", "http or https"},
        /* hosts and slashes */
        {"http://", "no host"},
        {"https://", "no host"},
        {"http:///hook", "two slashes and a host"},
        {"http:/h/hook", "two slashes and a host"},
        {"http:h/hook", "two slashes and a host"},
        {"http://:80/hook", "no host"},
        /* syntax */
        {"http://h:99999/hook", "not a valid URL"},
        {"http://h:8x/hook", "not a valid URL"},
        {"http://h:0/hook", "port 0"},
        {"http://[::1/hook", "not a valid URL"},
        {"http://h<x/", "not a valid URL"},
        {"http://h%20x/", "not a valid URL"},
        {"", "must be an http(s) URL"},
    };

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect(bad[i].url, false, bad[i].msg);
    }
    expect(NULL, false, "must be an http(s) URL");
}

static void test_length(void)
{
    static const char prefix[] = "https://hooks.example.com/";
    char *url = malloc(WEBHOOK_URL_MAX + 2);

    CHECK(url != NULL);
    if (url == NULL) {
        return;
    }
    memcpy(url, prefix, sizeof(prefix) - 1);
    memset(url + sizeof(prefix) - 1, 'a', WEBHOOK_URL_MAX + 1 - (sizeof(prefix) - 1));
    url[WEBHOOK_URL_MAX] = '\0';
    expect(url, true, NULL);
    url[WEBHOOK_URL_MAX] = 'a';
    url[WEBHOOK_URL_MAX + 1] = '\0';
    expect(url, false, "longer than 2048 characters");
    free(url);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_accepted();
    test_refused();
    test_length();
    curl_global_cleanup();
    return check_done();
}
