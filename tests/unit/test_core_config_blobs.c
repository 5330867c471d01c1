/*
 * Unit tests of core/config's artifact URL settings: blobs.url_key (a secret of 16-256 bytes),
 * blobs.url_ttl_s (1 s .. 7 days, default 3600) and public_base_url (an http(s) URL without query
 * or fragment, kept without its trailing '/'), and errors that name the field.
 */
#include <stdlib.h>

#include "core/config.h"
#include "check.h"

/* fields (members, no braces) added to a config with what every config needs. NULL on error. */
static struct config *parse(const char *fields, struct core_err *err)
{
    struct config *cfg = NULL;
    char text[1024];

    snprintf(text, sizeof(text),
             "{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": "
             "{\"p\": {\"dialect\": \"openai\", \"base_url\": \"http://x/v1\"}}, \"models\": "
             "{\"m\": {\"kind\": \"image\", \"deployments\": [{\"provider\": \"p\", "
             "\"model\": \"x\"}]}}%s%s}",
             fields[0] ? ", " : "", fields);
    core_err_clear(err);
    return config_parse(text, &cfg, err) == 0 ? cfg : NULL;
}

static void test_defaults(void)
{
    struct core_err err;
    struct config *cfg = parse("", &err);

    CHECK(cfg != NULL);
    if (cfg == NULL) {
        return;
    }
    CHECK(cfg->blobs.url_key == NULL);
    CHECK(cfg->blobs.url_ttl_s == 3600);
    CHECK(cfg->public_base_url == NULL);
    CHECK_STR(cfg->blobs.dir, "sluice-blobs");
    config_free(cfg);
}

static void test_set(void)
{
    struct core_err err;
    struct config *cfg = parse("\"public_base_url\": \"https://img.example.com/sluice//\","
                               " \"blobs\": {\"dir\": \"b\", \"url_key\": \"env:TEST_URL_KEY\","
                               " \"url_ttl_s\": 60}",
                               &err);

    CHECK(cfg != NULL);
    if (cfg == NULL) {
        fprintf(stderr, "parse failed: %s\n", err.message);
        return;
    }
    CHECK_STR(cfg->blobs.url_key, "0123456789abcdef-url-key");
    CHECK(cfg->blobs.url_ttl_s == 60);
    CHECK_STR(cfg->public_base_url, "https://img.example.com/sluice");
    CHECK_STR(cfg->blobs.dir, "b");
    config_free(cfg);

    cfg = parse("\"public_base_url\": \"http://127.0.0.1:8080\", \"blobs\": {\"url_key\": null}",
                &err);
    CHECK(cfg != NULL && strcmp(cfg->public_base_url, "http://127.0.0.1:8080") == 0);
    CHECK(cfg != NULL && cfg->blobs.url_key == NULL);
    config_free(cfg);
}

static void test_errors(void)
{
    static const struct {
        const char *text;
        const char *param;
    } cases[] = {
        {"\"blobs\": {\"url_key\": \"env:TEST_URL_KEY_UNSET\"}", "blobs.url_key"},
        {"\"blobs\": {\"url_key\": \"env:TEST_URL_KEY_SHORT\"}", "blobs.url_key"},
        {"\"blobs\": {\"url_key\": 42}", "blobs.url_key"},
        {"\"blobs\": {\"url_ttl_s\": 0}", "blobs.url_ttl_s"},
        {"\"blobs\": {\"url_ttl_s\": 604801}", "blobs.url_ttl_s"},
        {"\"public_base_url\": \"ftp://x\"", "public_base_url"},
        {"\"public_base_url\": \"example.com\"", "public_base_url"},
        {"\"public_base_url\": \"https://x/?a=1\"", "public_base_url"},
        {"\"public_base_url\": \"https://x/#f\"", "public_base_url"},
        {"\"public_base_url\": \"https://\"", "public_base_url"},
        {"\"public_base_url\": \"https://a b\"", "public_base_url"},
        {"\"public_base_url\": 1", "public_base_url"},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct core_err err;
        struct config *cfg = parse(cases[i].text, &err);
        CHECK(cfg == NULL);
        config_free(cfg);
        CHECK_STR(err.param, cases[i].param);
        CHECK(strstr(err.message, cases[i].param) != NULL);
    }
}

int main(void)
{
    setenv("TEST_URL_KEY", "0123456789abcdef-url-key", 1);
    setenv("TEST_URL_KEY_SHORT", "too-short", 1);
    unsetenv("TEST_URL_KEY_UNSET");
    test_defaults();
    test_set();
    test_errors();
    return check_done();
}
