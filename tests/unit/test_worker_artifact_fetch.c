/*
 * tests/unit/test_worker_artifact_fetch.c — artifact_fetch_vet: which provider-named URLs the
 * worker fetches, which it refuses, and when the provider's headers may go along.
 *
 * Cases as data: the URL a provider named, the provider's base_url, and what must come out —
 * refused (with a phrase the reason must hold), or fetched as a given URL with or without the
 * provider's headers.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "tests/unit/check.h"
#include "worker/artifact_fetch.h"

#define BASE "https://api.openai.com/v1"

static const struct vet_case {
    const char *url;
    const char *base;
    int rc;           /* 0 fetched, -1 refused */
    const char *want; /* fetched: the URL fetched; refused: a phrase of the reason */
    bool headers;     /* fetched: the provider's headers go along */
} cases[] = {
    /* the provider's own origin: headers go (OpenAI's video content) */
    {BASE "/videos/v_1/content", BASE, 0, BASE "/videos/v_1/content", true},
    {"https://API.OpenAI.com:443/v1/videos/v_1/content", BASE, 0,
     "https://API.OpenAI.com:443/v1/videos/v_1/content", true},
    {"http://127.0.0.1:8080/v1/videos/x/content", "http://127.0.0.1:8080/v1", 0,
     "http://127.0.0.1:8080/v1/videos/x/content", true},
    {"http://127.0.0.1:8080/_mock/blob/a.png", "http://127.0.0.1:8080/replicate/v1", 0,
     "http://127.0.0.1:8080/_mock/blob/a.png", true},
    /* another origin: fetched without them (scheme, host or port differ) */
    {"https://cdn.example.com/img.png?sig=abc", BASE, 0, "https://cdn.example.com/img.png?sig=abc",
     false},
    {"http://api.openai.com/v1/videos/v_1/content", BASE, 0,
     "http://api.openai.com/v1/videos/v_1/content", false},
    {"https://api.openai.com:8443/v1/x", BASE, 0, "https://api.openai.com:8443/v1/x", false},
    {"https://api.openai.com.evil.example/v1/x", BASE, 0,
     "https://api.openai.com.evil.example/v1/x", false},
    {"http://localhost:8080/v1/x", "http://127.0.0.1:8080/v1", 0, "http://localhost:8080/v1/x",
     false},
    {"https://cdn.example.com/a.png", NULL, 0, "https://cdn.example.com/a.png", false},
    {"https://cdn.example.com/a.png", "not a url", 0, "https://cdn.example.com/a.png", false},
    /* addresses are the guard's business, not this check's: fetched as curl spells them */
    {"http://2130706433:8080/x", BASE, 0, "http://127.0.0.1:8080/x", false},
    {"http://[::ffff:127.0.0.1]:8080/x", BASE, 0, "http://[::ffff:127.0.0.1]:8080/x", false},
    {"http://169.254.169.254/latest/meta-data/", BASE, 0,
     "http://169.254.169.254/latest/meta-data/", false},
    /* credentials in the URL */
    {"http://user:pw@127.0.0.1:8080/x", BASE, -1, "a user name", false},
    {"https://user@cdn.example.com/x", BASE, -1, "a user name", false},
    {"https://:pw@cdn.example.com/x", BASE, -1, "a user name", false},
    {"https://@cdn.example.com/x", BASE, -1, "a user name", false},
    {"https://sk-key@api.openai.com/v1/x", BASE, -1, "credentials in URLs are refused", false},
    /* not http or https, not absolute, not a URL */
    {"file:///etc/passwd", BASE, -1, "not an absolute http or https URL", false},
    {"ftp://cdn.example.com/a.png", BASE, -1, "not an absolute http or https URL", false},
    {"gopher://127.0.0.1:6379/_INFO", BASE, -1, "not an absolute http or https URL", false},
    {"//cdn.example.com/a.png", BASE, -1, "not an absolute http or https URL", false},
    {"/v1/videos/x/content", BASE, -1, "not an absolute http or https URL", false},
    {"cdn.example.com/a.png", BASE, -1, "not an absolute http or https URL", false},
    {"http://", BASE, -1, "not an absolute http or https URL", false},
    {"http://[::1", BASE, -1, "not an absolute http or https URL", false},
    {"", BASE, -1, "not an absolute http or https URL", false},
    {NULL, BASE, -1, "missing", false},
};

static void test_cases(void)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct vet_case *c = &cases[i];
        struct artifact_fetch_plan plan;
        char why[256];
        int rc = artifact_fetch_vet(c->url, c->base, &plan, why, sizeof(why));

        CHECK_MSG(rc == c->rc, "case %zu: %s: rc %d (%s)", i, c->url ? c->url : "(null)", rc, why);
        if (c->rc == 0 && rc == 0) {
            CHECK_STR(plan.url, c->want);
            CHECK_MSG(plan.send_headers == c->headers, "case %zu: %s: send_headers %d", i, c->url,
                      plan.send_headers);
        } else if (rc == -1) {
            CHECK(plan.url == NULL);
            CHECK_MSG(strstr(why, c->want) != NULL, "case %zu: reason \"%s\", want \"%s\"", i, why,
                      c->want);
        }
        free(plan.url);
    }
}

/* A URL over the length limit is refused without being parsed; a short why buffer is cut. */
static void test_limits(void)
{
    size_t n = ARTIFACT_FETCH_MAX_URL + 1;
    char *url = malloc(n + 1);
    struct artifact_fetch_plan plan;
    char why[8];

    memcpy(url, "https://cdn.example.com/", 24);
    memset(url + 24, 'a', n - 24);
    url[n] = '\0';
    CHECK(artifact_fetch_vet(url, BASE, &plan, why, sizeof(why)) == -1);
    CHECK(plan.url == NULL);
    CHECK(strlen(why) == sizeof(why) - 1);
    url[n - 1] = '\0'; /* exactly the limit: fetched */
    CHECK(artifact_fetch_vet(url, BASE, &plan, why, sizeof(why)) == 0);
    free(plan.url);
    free(url);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    test_cases();
    test_limits();
    curl_global_cleanup();
    return check_done();
}
