/*
 * Unit tests of core/util, core/err and core/task rendering.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/err.h"
#include "core/task.h"
#include "core/util.h"
#include "check.h"

static void test_ids(void)
{
    char a[64], b[64];

    CHECK(util_random_id("task_", a, sizeof(a)) == 0);
    CHECK(util_random_id("task_", b, sizeof(b)) == 0);
    CHECK(strlen(a) == 31);
    CHECK(strcmp(a, b) != 0);
    CHECK(util_id_valid("task_", a));
    CHECK(!util_id_valid("task_", "task_short"));
    CHECK(!util_id_valid("task_", "task_AAAAAAAAAAAAAAAAAAAAAAAAAA"));
    CHECK(!util_id_valid("task_", "file_aaaaaaaaaaaaaaaaaaaaaaaaaa"));
    CHECK(util_id_valid("task_", "task_aaaaaaaaaaaaaaaaaaaaaaaaa7"));
    CHECK(util_random_id("task_", a, 10) < 0);
    /* ids drawn from the pooled CSPRNG page stay distinct past a refill of the page */
    for (int i = 0; i < 1000; i++) {
        CHECK(util_random_id("task_", b, sizeof(b)) == 0);
        CHECK(util_id_valid("task_", b));
        CHECK(strcmp(a, b) != 0);
        memcpy(a, b, sizeof(a));
    }
}

/* A batch line's task id: valid, the same for the same seed, different for another line. */
static void test_derived_ids(void)
{
    char a[64], b[64], c[64];

    CHECK(util_derived_id("task_", "batch_x:1", a, sizeof(a)) == 0);
    CHECK(util_derived_id("task_", "batch_x:1", b, sizeof(b)) == 0);
    CHECK(util_derived_id("task_", "batch_x:2", c, sizeof(c)) == 0);
    CHECK(util_id_valid("task_", a));
    CHECK(strcmp(a, b) == 0);
    CHECK(strcmp(a, c) != 0);
    CHECK(util_derived_id("task_", "batch_x:1", a, 10) < 0);
}

static void test_json_depth(void)
{
    char deep[2001];

    CHECK(util_json_depth("{}", 2, 64) == 1);
    CHECK(util_json_depth("{\"a\":[1,{\"b\":2}]}", 17, 64) == 3);
    CHECK(util_json_depth("\"[[[[\"", 6, 64) == 0);     /* brackets in strings don't count */
    CHECK(util_json_depth("[\"\\\"[[\"]", 8, 64) == 1); /* nor after an escaped quote */
    memset(deep, '[', 1000);
    memset(deep + 1000, ']', 1000);
    CHECK(util_json_depth(deep, 2000, 64) == 65); /* stops early, past the limit */
}

static void test_sha(void)
{
    char hex[65];
    util_sha256_hex("abc", 3, hex);
    CHECK_STR(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_err(void)
{
    struct core_err e;
    char *env;

    core_err_clear(&e);
    CHECK(e.retry_after_ms == -1);
    CHECK(core_err_set(&e, CORE_ENOTFOUND, "model", "no model %s", "x") == CORE_ENOTFOUND);
    CHECK(e.http_status == 404);
    CHECK_STR(e.type, "invalid_request_error");
    core_err_set_code(&e, "model_not_found");
    env = core_err_envelope(&e);
    CHECK_STR(env, "{\"error\":{\"message\":\"no model x\",\"type\":\"invalid_request_error\","
                   "\"param\":\"model\",\"code\":\"model_not_found\"}}");
    free(env);
    CHECK(core_code_status(CORE_ETOOLARGE) == 413);
    CHECK(core_code_status(CORE_EQUOTA) == 429);
    CHECK(core_code_status(CORE_EUNAVAILABLE) == 503);
}

/* A fake HGETALL reply built from field/value pairs. */
static redisReply *fake_hash(const char **kv, size_t n)
{
    redisReply *r = calloc(1, sizeof(*r));
    r->type = REDIS_REPLY_ARRAY;
    r->elements = n;
    r->element = calloc(n, sizeof(*r->element));
    for (size_t i = 0; i < n; i++) {
        r->element[i] = calloc(1, sizeof(**r->element));
        r->element[i]->type = REDIS_REPLY_STRING;
        r->element[i]->str = (char *)kv[i];
        r->element[i]->len = strlen(kv[i]);
    }
    return r;
}

static void free_fake(redisReply *r)
{
    for (size_t i = 0; i < r->elements; i++) {
        free(r->element[i]);
    }
    free(r->element);
    free(r);
}

static void test_task_render(void)
{
    const char *kv[] = {"tenant",       "acme",
                        "kind",         "chat",
                        "model",        "m",
                        "status",       "completed",
                        "priority",     "0",
                        "created",      "1700000000123",
                        "started",      "1700000001999",
                        "completed",    "1700000002000",
                        "attempts",     "2",
                        "max_attempts", "3",
                        "result",       "{\"object\":\"chat.completion\"}",
                        "usage",        "{\"total_tokens\":5}"};
    redisReply *r = fake_hash(kv, sizeof(kv) / sizeof(kv[0]));
    cJSON *t = task_to_json("task_x", r);
    char *s = cJSON_PrintUnformatted(t);

    CHECK(strstr(s, "\"status\":\"completed\"") != NULL);
    CHECK(strstr(s, "\"priority\":\"interactive\"") != NULL);
    CHECK(strstr(s, "\"created_at\":1700000000,") != NULL);
    CHECK(strstr(s, "\"started_at\":1700000001,") != NULL);
    CHECK(strstr(s, "\"result\":{\"object\":\"chat.completion\"}") != NULL);
    CHECK(strstr(s, "\"error\":null") != NULL);
    CHECK(strstr(s, "\"expires_at\":null") != NULL);
    CHECK(strstr(s, "\"metadata\":{}") != NULL);
    CHECK(strstr(s, "tenant") == NULL); /* internal fields stay internal */
    CHECK(strstr(s, "fence") == NULL);
    CHECK_STR(task_hash_get(r, "tenant"), "acme");
    CHECK(task_hash_get(r, "nope") == NULL);
    CHECK(task_status_terminal("failed"));
    CHECK(!task_status_terminal("cancelling"));
    CHECK(task_priority_parse("batch") == 2);
    CHECK(task_priority_parse("urgent") == -1);
    free(s);
    cJSON_Delete(t);
    free_fake(r);
}

static void test_fmt(void)
{
    char b[24];

    CHECK(util_fmt_i64(b, sizeof(b), 0) == 0);
    CHECK_STR(b, "0");
    CHECK(util_fmt_i64(b, sizeof(b), 1795400305123LL) == 0);
    CHECK_STR(b, "1795400305123");
    CHECK(util_fmt_i64(b, sizeof(b), -42) == 0);
    CHECK_STR(b, "-42");
    CHECK(util_fmt_i64(b, sizeof(b), INT64_MIN) == 0);
    CHECK_STR(b, "-9223372036854775808");
    CHECK(util_fmt_i64(b, sizeof(b), INT64_MAX) == 0);
    CHECK_STR(b, "9223372036854775807");
    CHECK(util_fmt_i64(b, 4, 123) == 0); /* exactly fits */
    CHECK_STR(b, "123");
    CHECK(util_fmt_i64(b, 3, 123) < 0);
    CHECK_STR(b, "");
    CHECK(util_join(b, sizeof(b), "{sl}:t:", "task_x") == 0);
    CHECK_STR(b, "{sl}:t:task_x");
    CHECK(util_join(b, 6, "abc", "de") == 0);
    CHECK_STR(b, "abcde");
    CHECK(util_join(b, 5, "abc", "de") < 0);
    CHECK_STR(b, "");
}

/* The accepted task's text (the accept path's fixed serializer) is exactly cJSON's printing of
 * the same object, escapes included. */
static void test_task_new_text(void)
{
    static const char *const models[] = {"mock-chat", "quote\"back\\slash", "ctl\x01\n\t\b\f\r",
                                         "caf\xc3\xa9 \xe2\x9c\x93", ""};
    static const char *const metas[] = {NULL, "{\"a\":\"b\",\"n\":\"x\\ny\"}"};

    for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++) {
        for (size_t k = 0; k < sizeof(metas) / sizeof(metas[0]); k++) {
            for (int prio = 0; prio < 3; prio++) {
                cJSON *meta = metas[k] ? cJSON_Parse(metas[k]) : NULL;
                cJSON *o = task_new_json("task_aaaaaaaaaaaaaaaaaaaaaaaaa7", "chat", models[m], prio,
                                         1795400305123LL, 3 + prio, meta);
                char *want = cJSON_PrintUnformatted(o);
                char *meta_text = meta ? cJSON_PrintUnformatted(meta) : NULL;
                char *got = task_new_text("task_aaaaaaaaaaaaaaaaaaaaaaaaa7", "chat", models[m],
                                          prio, 1795400305123LL, 3 + prio, meta_text);
                CHECK(want != NULL && got != NULL);
                CHECK_STR(got, want);
                cJSON_free(want);
                cJSON_free(meta_text);
                free(got);
                cJSON_Delete(o);
                cJSON_Delete(meta);
            }
        }
    }
}

int main(void)
{
    test_ids();
    test_derived_ids();
    test_json_depth();
    test_sha();
    test_err();
    test_task_render();
    test_task_new_text();
    test_fmt();
    return check_done();
}
