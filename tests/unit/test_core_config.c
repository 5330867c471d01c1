/*
 * Unit tests of core/config: defaults, env secrets, and errors that name the field; access
 * settings (quotas, admin keys, metrics_listen, blobs.allow_hosts); the artifact URL settings:
 * blobs.url_key (a secret of 16-256 bytes), blobs.url_ttl_s (1 s .. 7 days, default 3600) and
 * public_base_url (an http(s) URL without query or fragment, kept without its trailing '/');
 * providers.NAME.responses (whether response tasks call POST /responses natively);
 * providers.NAME.webhook_secret (a Standard Webhooks secret, literal or "env:NAME") and
 * callback_base_url (an http(s) URL with a host, no credentials, query or fragment, kept without
 * its trailing '/').
 */
#include <stdlib.h>

#include "core/config.h"
#include "tests/unit/check.h"

static const char *base_ok =
    "{ // comments are allowed\n"
    "  \"listen\": \"127.0.0.1:9999\", \"redis\": \"redis://:pw@127.0.0.1:7000/3\",\n"
    "  \"keys\": [{\"key\": \"env:TEST_SLUICE_KEY\", \"tenant\": \"acme\"}],\n"
    "  /* block comment */\n"
    "  \"providers\": {\"p\": {\"dialect\": \"openai\", \"base_url\": \"http://x/v1\",\n"
    "                \"api_key\": \"env:TEST_PROVIDER_KEY\"}},\n"
    "  \"models\": {\"m\": {\"kind\": \"chat\", \"deployments\": [{\"provider\": \"p\",\n"
    "     \"model\": \"up\", \"rpm\": 10, \"price\": {\"input_per_mtok\": 1.5}}]}},\n"
    "  \"tasks\": {\"max_attempts\": 5}\n"
    "}";

/* Parses text and returns the error's param ("" on success). */
static const char *parse_err(const char *text, char *msg, size_t size)
{
    static char param[64];
    struct config *cfg = NULL;
    struct core_err err;

    if (config_parse(text, &cfg, &err) == 0) {
        config_free(cfg);
        snprintf(msg, size, "ok");
        return "";
    }
    snprintf(param, sizeof(param), "%s", err.param);
    snprintf(msg, size, "%s", err.message);
    return param;
}

static void test_ok(void)
{
    struct config *cfg = NULL;
    struct core_err err;

    CHECK(config_parse(base_ok, &cfg, &err) == 0);
    if (cfg == NULL) {
        fprintf(stderr, "parse failed: %s\n", err.message);
        return;
    }
    CHECK_STR(cfg->listen_host, "127.0.0.1");
    CHECK(cfg->listen_port == 9999);
    CHECK_STR(cfg->redis_host, "127.0.0.1");
    CHECK(cfg->redis_port == 7000);
    CHECK(cfg->redis_db == 3);
    CHECK_STR(cfg->redis_password, "pw");
    CHECK(cfg->tasks.max_attempts == 5);
    CHECK(cfg->tasks.lease_ms == 30000); /* default */
    CHECK(cfg->limits.max_json_depth == 64);
    CHECK_STR(cfg->providers[0].api_key, "provider-secret");
    CHECK(cfg->models[0].deployments[0].rpm == 10);
    CHECK(cfg->models[0].deployments[0].price.input_per_mtok == 1.5);
    CHECK_STR(cfg->models[0].strategy, "ordered");
    CHECK(config_model_find(cfg, "m") == &cfg->models[0]);
    CHECK(config_model_find(cfg, "nope") == NULL);
    CHECK_STR(config_tenant_for_key(cfg, "tenant-key-123"), "acme");
    CHECK(config_tenant_for_key(cfg, "tenant-key-124") == NULL);
    CHECK(config_tenant_for_key(cfg, "") == NULL);
    CHECK(cfg->providers[0].responses); /* an openai provider has POST /responses by default */
    config_free(cfg);
}

/*
 * providers.NAME.responses: true by default for dialect openai only; an OpenAI-compatible server
 * says false; another dialect may say false or nothing, never true; a non-boolean is refused.
 */
static void test_provider_responses(void)
{
    static const struct {
        const char *provider; /* the provider object's members */
        int want;             /* responses as parsed; -1: refused, naming the field */
    } cases[] = {
        {"\"dialect\": \"openai\"", 1},
        {"\"dialect\": \"openai\", \"responses\": true", 1},
        {"\"dialect\": \"openai\", \"responses\": false", 0},
        {"\"dialect\": \"anthropic\"", 0},
        {"\"dialect\": \"gemini\", \"responses\": false", 0},
        {"\"dialect\": \"anthropic\", \"responses\": true", -1},
        {"\"dialect\": \"openai\", \"responses\": 1", -1},
        {"\"dialect\": \"openai\", \"responses\": \"false\"", -1},
    };
    char text[1024], msg[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct config *cfg = NULL;
        struct core_err err;
        snprintf(text, sizeof(text),
                 "{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": "
                 "{\"p\": {%s, \"base_url\": \"http://x/v1\"}}, \"models\": {\"m\": "
                 "{\"kind\": \"chat\", \"deployments\": [{\"provider\": \"p\", \"model\": "
                 "\"x\"}]}}}",
                 cases[i].provider);
        if (cases[i].want < 0) {
            CHECK_STR(parse_err(text, msg, sizeof(msg)), "providers.p.responses");
            CHECK(strstr(msg, "providers.p.responses") != NULL);
            continue;
        }
        CHECK(config_parse(text, &cfg, &err) == 0);
        if (cfg == NULL) {
            fprintf(stderr, "case %zu: %s\n", i, err.message);
            continue;
        }
        CHECK(cfg->providers[0].responses == (cases[i].want == 1));
        config_free(cfg);
    }
}

static void test_errors(void)
{
    /* Each bad config and the field its error must name. */
    static const struct {
        const char *text;
        const char *param;
    } cases[] = {
        {"[1]", ""},
        {"{\"keys\": 1}", "keys"},
        {"{\"keys\": [{\"key\": \"env:TEST_SLUICE_UNSET\", \"tenant\": \"a\"}]}", "keys[0].key"},
        {"{\"keys\": [{\"key\": \"short\", \"tenant\": \"a\"}]}", "keys[0].key"},
        {"{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a:b\"}]}", "keys[0].tenant"},
        {"{\"listen\": \"nohost\", \"keys\": []}", "listen"},
        {"{\"redis\": \"http://x\"}", "redis"},
        {"{\"tasks\": {\"max_attempts\": 0}}", "tasks.max_attempts"},
        {"{\"tasks\": {\"lease_ms\": \"1\"}}", "tasks.lease_ms"},
        {"{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": {\"p\": "
         "{\"dialect\": \"openai\", \"base_url\": \"ftp://x\"}}}",
         "providers.p.base_url"},
        {"{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": {\"p\": "
         "{\"dialect\": \"openai\", \"base_url\": \"http://x\"}}, \"models\": {\"m\": {\"kind\": "
         "\"chat\", \"deployments\": [{\"provider\": \"q\", \"model\": \"x\"}]}}}",
         "models.m.deployments[0].provider"},
        {"{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": {\"p\": "
         "{\"dialect\": \"openai\", \"base_url\": \"http://x\"}}, \"models\": {\"m\": {\"kind\": "
         "\"telepathy\", \"deployments\": []}}}",
         "models.m.kind"},
        {"{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": {\"p\": "
         "{\"dialect\": \"openai\", \"base_url\": \"http://x\"}}, \"models\": {\"m\": {\"kind\": "
         "\"chat\", \"deployments\": [{\"provider\": \"p\", \"model\": \"x\", \"price\": "
         "{\"per_image\": -1}}]}}}",
         "models.m.deployments[0].price"},
    };
    char msg[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *param = parse_err(cases[i].text, msg, sizeof(msg));
        CHECK_STR(param, cases[i].param);
        /* The message names the field too, so an operator reading a log line can find it. */
        CHECK(cases[i].param[0] == '\0' || strstr(msg, cases[i].param) != NULL);
    }
}

/* base_ok with more top-level members (text inserted before its closing brace). */
static struct config *parse_with(const char *extra)
{
    static char text[4096];
    struct config *cfg = NULL;
    struct core_err err;
    size_t n = strlen(base_ok) - 1; /* without the final '}' */

    snprintf(text, sizeof(text), "%.*s, %s}", (int)n, base_ok, extra);
    if (config_parse(text, &cfg, &err) != 0) {
        fprintf(stderr, "parse failed: %s\n", err.message);
        return NULL;
    }
    return cfg;
}

/* Quotas per tenant (a number is max_queued, an object any limit), admin keys, metrics_listen,
 * blobs.allow_hosts, and the derived connection cap. */
static void test_access(void)
{
    struct config *cfg = parse_with(
        "\"quotas\": {\"default_max_files\": 7, \"tenants\": {\"a\": 5, \"b\": {\"max_files\": 2,"
        " \"max_stored_bytes\": 4096}}},"
        " \"admin_keys\": [\"env:TEST_ADMIN_KEY\"], \"metrics_listen\": \"127.0.0.1:9464\","
        " \"blobs\": {\"allow_hosts\": [\"127.0.0.1\"]}");
    const struct config_quota *q;

    CHECK(cfg != NULL);
    if (cfg == NULL) {
        return;
    }
    CHECK(config_max_queued(cfg, "a") == 5);
    CHECK(config_quota_for(cfg, "a")->max_files == 7); /* the default */
    q = config_quota_for(cfg, "b");
    CHECK(q->max_files == 2 && q->max_stored_bytes == 4096 && q->max_queued == 100000);
    q = config_quota_for(cfg, "zzz");
    CHECK(q->max_files == 7 && q->max_artifact_bytes == 20L << 30);
    CHECK(config_is_admin_key(cfg, "admin-key-0123456789"));
    CHECK(!config_is_admin_key(cfg, "admin-key-012345678"));
    CHECK(!config_is_admin_key(cfg, "tenant-key-123"));
    CHECK_STR(cfg->metrics_host, "127.0.0.1");
    CHECK(cfg->metrics_port == 9464);
    CHECK(cfg->blobs.allow != NULL);
    CHECK(cfg->limits.max_connections >= 32);
    CHECK(cfg->limits.header_timeout_s == 10);
    config_free(cfg);

    cfg = parse_with("\"limits\": {\"max_connections\": 100}");
    CHECK(cfg != NULL && cfg->limits.max_connections == 100 && cfg->n_admin_keys == 0);
    config_free(cfg);
}

static void test_access_errors(void)
{
    static const struct {
        const char *extra;
        const char *param;
    } cases[] = {
        {"\"admin_keys\": \"x\"", "admin_keys"},
        {"\"admin_keys\": [\"short-key\"]", "admin_keys[0]"},
        {"\"admin_keys\": [\"env:TEST_SLUICE_UNSET\"]", "admin_keys[0]"},
        {"\"metrics_listen\": 9464", "metrics_listen"},
        {"\"metrics_listen\": \"nohost\"", "metrics_listen"},
        {"\"blobs\": {\"allow_hosts\": [\"a b\"]}", "blobs.allow_hosts"},
        {"\"quotas\": {\"tenants\": {\"a\": {\"max_files\": 0}}}", "quotas.tenants"},
        {"\"quotas\": {\"tenants\": {\"a\": \"many\"}}", "quotas.tenants"},
    };
    char text[4096], msg[512];
    size_t n = strlen(base_ok) - 1;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text), "%.*s, %s}", (int)n, base_ok, cases[i].extra);
        CHECK_STR(parse_err(text, msg, sizeof(msg)), cases[i].param);
    }
}

/* The commented example in deploy/ must stay loadable (tests run from the source root). */
static void test_example_file(void)
{
    struct config *cfg = NULL;
    struct core_err err;

    setenv("SLUICE_API_KEY", "example-key-123", 1);
    setenv("OPENAI_API_KEY", "example-openai", 1);
    setenv("SLUICE_WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    setenv("SLUICE_ADMIN_KEY", "example-admin-key-456", 1);
    CHECK(config_load("deploy/sluice.example.json", &cfg, &err) == 0);
    if (cfg == NULL) {
        fprintf(stderr, "example: %s\n", err.message);
        return;
    }
    CHECK(config_model_find(cfg, "gpt-4o-mini") != NULL);
    CHECK(cfg->providers[0].responses);
    CHECK(cfg->worker.concurrency == 256);
    CHECK(cfg->batches.lease_ms == 60000 && cfg->batches.window_s == 86400);
    CHECK(cfg->files.max_lines == 50000);
    config_free(cfg);
}

/*
 * fields (members, no braces) added to a config with only what every config needs. NULL on
 * error, with err filled.
 */
static struct config *parse_minimal(const char *fields, struct core_err *err)
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

/* The artifact URL settings left out: no key, an hour, no public base URL. */
static void test_blobs_defaults(void)
{
    struct core_err err;
    struct config *cfg = parse_minimal("", &err);

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

/* Each setting given: the key from the environment, the base URL without trailing slashes. */
static void test_blobs_set(void)
{
    struct core_err err;
    struct config *cfg =
        parse_minimal("\"public_base_url\": \"https://img.example.com/sluice//\","
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

    cfg = parse_minimal(
        "\"public_base_url\": \"http://127.0.0.1:8080\", \"blobs\": {\"url_key\": null}", &err);
    CHECK(cfg != NULL && strcmp(cfg->public_base_url, "http://127.0.0.1:8080") == 0);
    CHECK(cfg != NULL && cfg->blobs.url_key == NULL);
    config_free(cfg);
}

/* Bad artifact URL settings: each error names its field. */
static void test_blobs_errors(void)
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
        struct config *cfg = parse_minimal(cases[i].text, &err);
        CHECK(cfg == NULL);
        config_free(cfg);
        CHECK_STR(err.param, cases[i].param);
        CHECK(strstr(err.message, cases[i].param) != NULL);
    }
}

#define TEST_WHSEC "whsec_a2tra2tra2tra2tra2tra2tra2tra2tra2tra2tra2s=" /* 32 bytes of 'k' */

/* A provider's webhook secret (literal or from the environment) and callback_base_url. */
static void test_provider_webhooks(void)
{
    static const struct {
        const char *secret; /* the webhook_secret member, "" for none */
        const char *base;   /* the callback_base_url member, "" for none */
        const char *want;   /* callback_base_url as kept; NULL: none */
    } ok[] = {
        {"", "", NULL},
        {"\"webhook_secret\": \"" TEST_WHSEC "\"", "", NULL},
        {"\"webhook_secret\": \"env:TEST_PROVIDER_WHSEC\"",
         "\"callback_base_url\": \"http://127.0.0.1:8080\"", "http://127.0.0.1:8080"},
        {"\"webhook_secret\": null", "\"callback_base_url\": \"https://hooks.example.com/sl//\"",
         "https://hooks.example.com/sl"},
    };
    char text[1024];

    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        struct config *cfg = NULL;
        struct core_err err;
        snprintf(text, sizeof(text),
                 "{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": "
                 "{\"p\": {\"dialect\": \"replicate\", \"base_url\": \"http://x/v1\"%s%s}}, "
                 "\"models\": {\"m\": {\"kind\": \"image\", \"deployments\": [{\"provider\": "
                 "\"p\", \"model\": \"x\"}]}}%s%s}",
                 ok[i].secret[0] ? ", " : "", ok[i].secret, ok[i].base[0] ? ", " : "", ok[i].base);
        CHECK(config_parse(text, &cfg, &err) == 0);
        if (cfg == NULL) {
            fprintf(stderr, "case %zu: %s\n", i, err.message);
            continue;
        }
        if (strstr(ok[i].secret, "whsec") != NULL || strstr(ok[i].secret, "env:") != NULL) {
            CHECK(cfg->providers[0].has_webhook_key);
            CHECK(cfg->providers[0].webhook_key.len == 32);
            CHECK(cfg->providers[0].webhook_key.bytes[0] == 'k' &&
                  cfg->providers[0].webhook_key.bytes[31] == 'k');
        } else {
            CHECK(!cfg->providers[0].has_webhook_key);
        }
        if (ok[i].want == NULL) {
            CHECK(cfg->callback_base_url == NULL);
        } else {
            CHECK(cfg->callback_base_url != NULL &&
                  strcmp(cfg->callback_base_url, ok[i].want) == 0);
        }
        config_free(cfg);
    }
}

/* Bad webhook_secret and callback_base_url values: each error names its field. */
static void test_provider_webhooks_errors(void)
{
    static const struct {
        const char *secret; /* the webhook_secret member, "" for none */
        const char *base;   /* the callback_base_url member, "" for none */
        const char *param;
    } cases[] = {
        {"\"webhook_secret\": \"not-a-secret\"", "", "providers.p.webhook_secret"},
        {"\"webhook_secret\": \"whsec_a2tra2tra2s=\"", "", "providers.p.webhook_secret"},
        {"\"webhook_secret\": \"whsec_!!!\"", "", "providers.p.webhook_secret"},
        {"\"webhook_secret\": \"env:TEST_PROVIDER_WHSEC_UNSET\"", "", "providers.p.webhook_secret"},
        {"\"webhook_secret\": 7", "", "providers.p.webhook_secret"},
        {"", "\"callback_base_url\": \"ftp://x\"", "callback_base_url"},
        {"", "\"callback_base_url\": \"127.0.0.1:8080\"", "callback_base_url"},
        {"", "\"callback_base_url\": \"https://x/?a=1\"", "callback_base_url"},
        {"", "\"callback_base_url\": \"https://x/#f\"", "callback_base_url"},
        {"", "\"callback_base_url\": \"https://u:p@x\"", "callback_base_url"},
        {"", "\"callback_base_url\": \"https://\"", "callback_base_url"},
        {"", "\"callback_base_url\": true", "callback_base_url"},
    };
    char text[1024], msg[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(text, sizeof(text),
                 "{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": "
                 "{\"p\": {\"dialect\": \"replicate\", \"base_url\": \"http://x/v1\"%s%s}}, "
                 "\"models\": {\"m\": {\"kind\": \"image\", \"deployments\": [{\"provider\": "
                 "\"p\", \"model\": \"x\"}]}}%s%s}",
                 cases[i].secret[0] ? ", " : "", cases[i].secret, cases[i].base[0] ? ", " : "",
                 cases[i].base);
        CHECK_STR(parse_err(text, msg, sizeof(msg)), cases[i].param);
        CHECK(strstr(msg, cases[i].param) != NULL);
        CHECK(strstr(msg, "a2tra2tr") == NULL); /* the secret is never echoed */
    }
}

/* RFC 8032 test 1's public key as a JWKS `x` (base64url) and as standard base64. */
#define TEST_FAL_X "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define TEST_FAL_X_STD "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

/* A config of one provider p of dialect with the extra members, and a model on it, into text. */
static void provider_text(char *text, size_t size, const char *dialect, const char *members)
{
    snprintf(text, size,
             "{\"keys\": [{\"key\": \"longenoughkey\", \"tenant\": \"a\"}], \"providers\": "
             "{\"p\": {\"dialect\": \"%s\", \"base_url\": \"http://x/v1\"%s%s}}, "
             "\"models\": {\"m\": {\"kind\": \"image\", \"deployments\": [{\"provider\": "
             "\"p\", \"model\": \"x\"}]}}, \"callback_base_url\": \"http://127.0.0.1:8080\"}",
             dialect, members[0] ? ", " : "", members);
}

/* fal's webhook_public_keys: kept decoded; a fal provider without them asks for no callback. */
static void test_provider_fal_keys(void)
{
    char text[1024];
    struct config *cfg = NULL;
    struct core_err err;

    provider_text(text, sizeof(text), "fal",
                  "\"webhook_public_keys\": [\"" TEST_FAL_X "\", \"" TEST_FAL_X_STD "\"]");
    CHECK(config_parse(text, &cfg, &err) == 0);
    if (cfg != NULL) {
        CHECK(cfg->providers[0].has_webhook_key);
        CHECK(cfg->providers[0].n_fal_keys == 2);
        CHECK(cfg->providers[0].fal_keys[0].bytes[0] == 0xd7 &&
              cfg->providers[0].fal_keys[0].bytes[31] == 0x1a);
        CHECK(memcmp(cfg->providers[0].fal_keys[0].bytes, cfg->providers[0].fal_keys[1].bytes,
                     FAL_SIGN_KEY_LEN) == 0);
        CHECK(cfg->providers[0].webhook_key.len == 0);
    } else {
        fprintf(stderr, "fal keys: %s\n", err.message);
    }
    config_free(cfg);
    cfg = NULL;
    provider_text(text, sizeof(text), "fal", "\"webhook_public_keys\": null");
    CHECK(config_parse(text, &cfg, &err) == 0);
    CHECK(cfg != NULL && !cfg->providers[0].has_webhook_key && cfg->providers[0].n_fal_keys == 0);
    config_free(cfg);
}

/* Refused: a webhook_secret on fal (the message says what to use), public keys on another dialect,
 * keys that are not 32 bytes of base64(url), an empty or too long list. */
static void test_provider_fal_keys_errors(void)
{
    static const struct {
        const char *dialect;
        const char *members;
        const char *says; /* a phrase the message must hold */
    } cases[] = {
        {"fal", "\"webhook_secret\": \"" TEST_WHSEC "\"", "webhook_public_keys"},
        {"fal", "\"webhook_secret\": \"env:TEST_PROVIDER_WHSEC\"", "shared secret"},
        {"replicate", "\"webhook_public_keys\": [\"" TEST_FAL_X "\"]", "only a fal provider"},
        {"fal", "\"webhook_public_keys\": []", "1 to 8"},
        {"fal", "\"webhook_public_keys\": \"" TEST_FAL_X "\"", "1 to 8"},
        {"fal", "\"webhook_public_keys\": [\"abc\"]", "32 bytes"},
        {"fal", "\"webhook_public_keys\": [\"" TEST_FAL_X "\", 7]", "[1]"},
        {"fal", "\"webhook_public_keys\": [\"" TEST_WHSEC "\"]", "32 bytes"},
        {"fal",
         "\"webhook_public_keys\": [\"" TEST_FAL_X "\", \"" TEST_FAL_X "\", \"" TEST_FAL_X
         "\", \"" TEST_FAL_X "\", \"" TEST_FAL_X "\", \"" TEST_FAL_X "\", \"" TEST_FAL_X
         "\", \"" TEST_FAL_X "\", \"" TEST_FAL_X "\"]",
         "1 to 8"},
    };
    char text[1536], msg[512];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *param = strstr(cases[i].members, "webhook_secret") != NULL
                                ? "providers.p.webhook_secret"
                                : "providers.p.webhook_public_keys";
        provider_text(text, sizeof(text), cases[i].dialect, cases[i].members);
        CHECK_STR(parse_err(text, msg, sizeof(msg)), param);
        CHECK_MSG(strstr(msg, cases[i].says) != NULL, "case %zu: %s", i, msg);
        CHECK(strstr(msg, "a2tra2tr") == NULL); /* a secret is never echoed */
    }
}

int main(void)
{
    setenv("TEST_SLUICE_KEY", "tenant-key-123", 1);
    setenv("TEST_PROVIDER_KEY", "provider-secret", 1);
    unsetenv("TEST_SLUICE_UNSET");
    test_ok();
    test_errors();
    test_provider_responses();
    test_example_file();
    setenv("TEST_ADMIN_KEY", "admin-key-0123456789", 1);
    test_access();
    test_access_errors();
    setenv("TEST_URL_KEY", "0123456789abcdef-url-key", 1);
    setenv("TEST_URL_KEY_SHORT", "too-short", 1);
    unsetenv("TEST_URL_KEY_UNSET");
    test_blobs_defaults();
    test_blobs_set();
    test_blobs_errors();
    setenv("TEST_PROVIDER_WHSEC", TEST_WHSEC, 1);
    unsetenv("TEST_PROVIDER_WHSEC_UNSET");
    test_provider_webhooks();
    test_provider_webhooks_errors();
    test_provider_fal_keys();
    test_provider_fal_keys_errors();
    return check_done();
}
