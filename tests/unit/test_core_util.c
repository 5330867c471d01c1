/*
 * Unit tests of core/util, core/err, core/task rendering and core/blobs' path layout.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters/responses.h"
#include "core/blobs.h"
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
    char *s = task_render_hash("task_x", r);

    CHECK(s != NULL);
    if (s == NULL) {
        free_fake(r);
        return;
    }
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
    free_fake(r);
}

/*
 * The task object as clients saw it before there was one renderer: a cJSON tree built field by
 * field from the hash (the stored JSON texts as raw items), printed. The renderer must write
 * exactly this, byte for byte.
 */
static char *reference_render(const char *id, const redisReply *hash)
{
    static const char *const times[][2] = {{"created_at", "created"},
                                           {"started_at", "started"},
                                           {"completed_at", "completed"},
                                           {"expires_at", "expires"}};
    static const char *const raw_head[] = {"provider", "result", "error"};
    static const char *const raw_opt[] = {"last_error", "attempt_log"};
    static const char *const raw_tail[] = {"usage", "cost"};
    cJSON *o = cJSON_CreateObject(), *list;
    const char *prio = task_hash_get(hash, "priority"), *v;
    char *text;

    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "task");
    cJSON_AddStringToObject(o, "kind", task_hash_get(hash, "kind") ?: "");
    cJSON_AddStringToObject(o, "model", task_hash_get(hash, "model") ?: "");
    cJSON_AddStringToObject(o, "status", task_hash_get(hash, "status") ?: "");
    cJSON_AddStringToObject(o, "priority", task_priority_name(prio ? atoi(prio) : 1));
    for (size_t i = 0; i < 4; i++) {
        v = task_hash_get(hash, times[i][1]);
        if (v && v[0]) {
            cJSON_AddNumberToObject(o, times[i][0], (double)(strtoll(v, NULL, 10) / 1000));
        } else {
            cJSON_AddNullToObject(o, times[i][0]);
        }
    }
    if ((v = task_hash_get(hash, "progress"))) {
        cJSON_AddNumberToObject(o, "progress", (double)strtoll(v, NULL, 10));
    }
    if ((v = task_hash_get(hash, "queue_position"))) {
        cJSON_AddNumberToObject(o, "queue_position", (double)strtoll(v, NULL, 10));
    }
    v = task_hash_get(hash, "attempts");
    cJSON_AddNumberToObject(o, "attempts", v ? (double)strtoll(v, NULL, 10) : 0);
    v = task_hash_get(hash, "max_attempts");
    cJSON_AddNumberToObject(o, "max_attempts", v ? (double)strtoll(v, NULL, 10) : 0);
#define REF_RAW(name)                                                                              \
    do {                                                                                           \
        const char *r_ = task_hash_get(hash, (name));                                              \
        if (r_ && r_[0]) {                                                                         \
            cJSON_AddRawToObject(o, (name), r_);                                                   \
        } else {                                                                                   \
            cJSON_AddNullToObject(o, (name));                                                      \
        }                                                                                          \
    } while (0)
    for (size_t i = 0; i < 3; i++) {
        REF_RAW(raw_head[i]);
    }
    for (size_t i = 0; i < 2; i++) {
        if (task_hash_get(hash, raw_opt[i])) {
            REF_RAW(raw_opt[i]);
        }
    }
    if (task_hash_get(hash, "webhook")) {
        REF_RAW("webhook");
        cJSON_AddRawToObject(o, "webhook_attempts", task_hash_get(hash, "webhook_log") ?: "[]");
    }
    if ((v = task_hash_get(hash, "batch"))) {
        cJSON_AddStringToObject(o, "batch_id", v);
        cJSON_AddStringToObject(o, "custom_id", task_hash_get(hash, "custom_id") ?: "");
    }
    for (size_t i = 0; i < 2; i++) {
        REF_RAW(raw_tail[i]);
    }
#undef REF_RAW
    v = task_hash_get(hash, "artifacts");
    list = v ? cJSON_Parse(v) : NULL;
    if (cJSON_IsArray(list)) {
        cJSON *a;
        cJSON_ArrayForEach(a, list)
        {
            const cJSON *index = cJSON_GetObjectItemCaseSensitive(a, "index");
            char url[128];
            snprintf(url, sizeof(url), "/v1/tasks/%s/content?index=%d", id,
                     cJSON_IsNumber(index) ? (int)index->valuedouble : 0);
            cJSON_AddStringToObject(a, "url", url);
        }
        cJSON_AddItemToObject(o, "artifacts", list);
    } else {
        cJSON_Delete(list);
    }
    if ((v = task_hash_get(hash, "metadata"))) {
        cJSON_AddRawToObject(o, "metadata", v);
    } else {
        cJSON_AddObjectToObject(o, "metadata");
    }
    text = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return text;
}

/* task_render_hash against the reference, for the hash kv. */
static void check_renders_like_reference(const char **kv, size_t n)
{
    redisReply *r = fake_hash(kv, n);
    char *want = reference_render("task_aaaaaaaaaaaaaaaaaaaaaaaaa7", r);
    char *got = task_render_hash("task_aaaaaaaaaaaaaaaaaaaaaaaaa7", r);

    CHECK_STR(got, want);
    cJSON_free(want);
    free(got);
    free_fake(r);
}

/* Every field a hash may hold, each way it may be: shown, absent, empty, odd. */
static void test_task_render_fields(void)
{
    const char *full[] = {
        "tenant",
        "acme",
        "kind",
        "image",
        "model",
        "m \"1\"",
        "status",
        "completed",
        "priority",
        "2",
        "created",
        "1700000000123",
        "started",
        "1700000001999",
        "completed",
        "1700000002000",
        "expires",
        "1700086402000",
        "progress",
        "100",
        "queue_position",
        "0",
        "attempts",
        "2",
        "max_attempts",
        "3",
        "fence",
        "7",
        "input",
        "{\"prompt\":\"x\"}",
        "provider",
        "{\"deployment\":\"a\"}",
        "result",
        "{\"sluice_response_format\":\"url\",\"data\":[{\"artifact\":0}]}",
        "error",
        "",
        "last_error",
        "{\"code\":\"rate_limited\"}",
        "attempt_log",
        "[{\"n\":1}]",
        "webhook",
        "{\"url\":\"https://h/x\"}",
        "webhook_log",
        "[{\"status\":200}]",
        "batch",
        "batch_b",
        "custom_id",
        "line-\x01\"7\"\\",
        "usage",
        "{ \"images\" : 1.50 }",
        "cost",
        "{\"usd\":1e-3}",
        "artifacts",
        "[{\"index\":0,\"content_type\":\"image/png\",\"bytes\":3},"
        "{\"index\":1.0,\"bytes\":12345678901234567890}]",
        "metadata",
        "{\"k\": \"v\"}",
    };
    const char *fresh[] = {"tenant",   "t",      "kind",         "chat",    "model",
                           "m",        "status", "queued",       "created", "1795400305123",
                           "attempts", "0",      "max_attempts", "3"};
    const char *odd[] = {"kind",  "chat",     "created",   "",        "priority",
                         "9",     "attempts", "x",         "webhook", "",
                         "batch", "",         "artifacts", "{}",      "last_error",
                         "",      "metadata", "",          "result",  "not json at all"};
    const char *webhook_empty_log[] = {"kind",        "chat", "webhook",   "{\"url\":\"u\"}",
                                       "webhook_log", "",     "artifacts", "not json"};
    static const char *const numbers[] = {"0",
                                          "-1",
                                          "2147483647",
                                          "2147483648",
                                          "-2147483648",
                                          "-2147483649",
                                          "999999999999999",
                                          "1000000000000000",
                                          "1234567890123456",
                                          "12345678901234567",
                                          "9007199254740993",
                                          "9223372036854775807",
                                          "-9223372036854775808",
                                          "99999999999999999999",
                                          "abc",
                                          "12abc",
                                          " 42"};
    redisReply *empty = fake_hash(NULL, 0);

    check_renders_like_reference(full, sizeof(full) / sizeof(full[0]));
    check_renders_like_reference(fresh, sizeof(fresh) / sizeof(fresh[0]));
    check_renders_like_reference(odd, sizeof(odd) / sizeof(odd[0]));
    check_renders_like_reference(webhook_empty_log,
                                 sizeof(webhook_empty_log) / sizeof(webhook_empty_log[0]));
    for (size_t i = 0; i < sizeof(numbers) / sizeof(numbers[0]); i++) {
        const char *kv[] = {"kind",     "chat",     "progress",       numbers[i],
                            "attempts", numbers[i], "queue_position", numbers[i],
                            "created",  numbers[i], "max_attempts",   numbers[i]};
        check_renders_like_reference(kv, sizeof(kv) / sizeof(kv[0]));
    }
    /* no such task */
    CHECK(task_render_hash("task_x", empty) == NULL);
    CHECK(task_render_hash("task_x", NULL) == NULL);
    free_fake(empty);
}

/* A task just accepted renders the same from its values as from the hash SUBMIT writes for it. */
static void test_task_new_matches_hash(void)
{
    static const char *const models[] = {"mock-chat", "q\"b\\s", "ctl\x01\x1f\n", "caf\xc3\xa9"};
    static const char *const metas[] = {NULL, "{\"a\":\"b\"}"};
    char created[24], max[24];

    for (size_t m = 0; m < sizeof(models) / sizeof(models[0]); m++) {
        for (size_t k = 0; k < sizeof(metas) / sizeof(metas[0]); k++) {
            for (int prio = 0; prio < 3; prio++) {
                const char *prio_s[] = {"0", "1", "2"};
                util_fmt_i64(created, sizeof(created), 1795400305123LL + prio);
                util_fmt_i64(max, sizeof(max), 3 + prio);
                const char *kv[] = {
                    "tenant",  "acme",   "kind",     "embedding", "model",
                    models[m], "status", "queued",   "priority",  prio_s[prio],
                    "created", created,  "attempts", "0",         "max_attempts",
                    max,       "fence",  "0",        "metadata",  metas[k] ? metas[k] : "{}"};
                redisReply *r = fake_hash(kv, sizeof(kv) / sizeof(kv[0]));
                char *from_hash = task_render_hash("task_aaaaaaaaaaaaaaaaaaaaaaaaa7", r);
                char *fresh =
                    task_new_text("task_aaaaaaaaaaaaaaaaaaaaaaaaa7", "embedding", models[m], prio,
                                  1795400305123LL + prio, 3 + prio, metas[k]);
                CHECK_STR(fresh, from_hash);
                free(from_hash);
                free(fresh);
                free_fake(r);
            }
        }
    }
}

/*
 * Strings are escaped exactly as cJSON prints them: every control character, quotes,
 * backslashes; DEL and UTF-8 (valid or not) pass as they are. The text parses back to the same
 * strings.
 */
static void test_task_render_escaping(void)
{
    char all[256];
    size_t n = 0;

    for (int c = 1; c < 256; c++) {
        all[n++] = (char)c;
    }
    all[n] = '\0';
    const char *strings[] = {all,
                             "",
                             "\"",
                             "\\",
                             "\\\"",
                             "a\"b\\c/d",
                             "\x7f",
                             "\xe2\x9c\x93 \xf0\x9f\x98\x80",
                             "\xc3",
                             "\xff\xfe",
                             "\n\r\t\b\f\x0b\x1b"};
    for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++) {
        const char *kv[] = {"kind",     strings[i], "model",    strings[i],  "status",
                            strings[i], "batch",    strings[i], "custom_id", strings[i]};
        redisReply *r = fake_hash(kv, sizeof(kv) / sizeof(kv[0]));
        char *text = task_render_hash(strings[i], r);
        cJSON *back = text ? cJSON_Parse(text) : NULL;

        check_renders_like_reference(kv, sizeof(kv) / sizeof(kv[0]));
        CHECK(back != NULL);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(back, "id")), strings[i]);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(back, "model")),
                  strings[i]);
        CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(back, "custom_id")),
                  strings[i]);
        cJSON_Delete(back);
        free(text);
        free_fake(r);
    }
    {
        struct task_view v;
        char *text;
        task_view_new(&v, "i", "k\"", "m\\", 1, 0, 1, NULL);
        text = task_view_render(&v);
        CHECK_STR(text, "{\"id\":\"i\",\"object\":\"task\",\"kind\":\"k\\\"\",\"model\":\"m\\\\\","
                        "\"status\":\"queued\",\"priority\":\"normal\",\"created_at\":0,"
                        "\"started_at\":null,\"completed_at\":null,\"expires_at\":null,"
                        "\"attempts\":0,\"max_attempts\":1,\"provider\":null,\"result\":null,"
                        "\"error\":null,\"usage\":null,\"cost\":null,\"metadata\":{}}");
        free(text);
    }
}

/* What GET /v1/tasks/{id} adds: the live queue position and the ETA after metadata, in place of
 * the stored position (as the handler's tree edit did). */
static void test_task_view_live_fields(void)
{
    const char *kv[] = {"kind", "chat", "status", "queued", "queue_position", "4"};
    redisReply *r = fake_hash(kv, sizeof(kv) / sizeof(kv[0]));
    char *ref = reference_render("task_x", r);
    cJSON *t = ref ? cJSON_Parse(ref) : NULL;
    struct task_view v;
    char *want, *got;

    cJSON_DeleteItemFromObject(t, "queue_position");
    cJSON_AddNumberToObject(t, "queue_position", 2);
    cJSON_AddNumberToObject(t, "eta_seconds", 30);
    want = cJSON_PrintUnformatted(t);
    CHECK(task_view_from_hash(&v, "task_x", r) == 0);
    v.queue_position = TASK_VIEW_NONE;
    v.queue_position_now = 2;
    v.eta_seconds = 30;
    got = task_view_render(&v);
    CHECK_STR(got, want);
    free(got);
    cJSON_free(want);
    cJSON_free(ref);
    cJSON_Delete(t);
    free_fake(r);
}

/* Every optional part at its largest at once: the fixed room holds it (ASan would tell). */
static void test_task_view_all_fields(void)
{
    struct task_view v = {
        .id = "i",
        .kind = "",
        .model = "",
        .status = "",
        .priority = "",
        .created_at = INT64_MIN + 1,
        .started_at = INT64_MIN + 1,
        .completed_at = INT64_MIN + 1,
        .expires_at = INT64_MIN + 1,
        .progress = INT64_MIN + 1,
        .queue_position = INT64_MIN + 1,
        .attempts = INT64_MIN + 1,
        .max_attempts = INT64_MIN + 1,
        .provider = "",
        .result = "",
        .error = "",
        .usage = "",
        .cost = "",
        .last_error = "",
        .attempt_log = "",
        .webhook = "",
        .webhook_attempts = "",
        .batch_id = "",
        .custom_id = NULL,
        .artifacts = "[]",
        .metadata = NULL,
        .queue_position_now = INT64_MIN + 1,
        .eta_seconds = INT64_MIN + 1,
    };
    char *text = task_view_render(&v);

    CHECK(text != NULL && strstr(text, "\"eta_seconds\":-9.2233720368547758e+18}") != NULL);
    CHECK(text != NULL && strstr(text, "\"custom_id\":\"\",") != NULL);
    CHECK(text != NULL && strstr(text, "\"artifacts\":[],") != NULL);
    free(text);
}

/* Every path under blobs.dir, and what does not fit. */
static void test_blob_paths(void)
{
    char p[64];

    CHECK(blobs_artifact_dir("b", "task_x", p, sizeof(p)) == 0);
    CHECK_STR(p, "b/task_x");
    CHECK(artifact_blob_path("b", "task_x", 12, p, sizeof(p)) == 0);
    CHECK_STR(p, "b/task_x/12");
    CHECK(blobs_files_dir("b", p, sizeof(p)) == 0);
    CHECK_STR(p, "b/files");
    CHECK(blobs_file_path("b", "file_y", p, sizeof(p)) == 0);
    CHECK_STR(p, "b/files/file_y");
    CHECK(blobs_file_tmp_path("b", "tmp_z", p, sizeof(p)) == 0);
    CHECK_STR(p, "b/files/tmp_z.part");
    CHECK(blobs_file_path("b", "file_y", p, 14) == -1);
    CHECK_STR(p, "");
    CHECK(blobs_file_path("b", "file_y", p, 15) == 0);
    CHECK(artifact_blob_remove("b", "../etc") == -1); /* not a task id: names no path */
    CHECK(artifact_blob_remove("/nonexistent", "task_aaaaaaaaaaaaaaaaaaaaaaaaa7") == 0);
}

/* A task id is "task_" or "resp_" (a response task) + 26 base32 characters; nothing else. */
static void test_task_ids(void)
{
    char a[64];

    CHECK_STR(TASK_RESPONSE_ID_PREFIX, RESPONSES_ID_PREFIX);
    CHECK(util_random_id(TASK_ID_PREFIX, a, sizeof(a)) == 0);
    CHECK(strlen(a) == TASK_ID_LEN);
    CHECK(task_id_valid(a));
    CHECK(util_random_id(TASK_RESPONSE_ID_PREFIX, a, sizeof(a)) == 0);
    CHECK(strlen(a) == TASK_ID_LEN);
    CHECK(task_id_valid(a));
    CHECK(task_id_valid("resp_aaaaaaaaaaaaaaaaaaaaaaaaa7"));
    CHECK(!task_id_valid("resp_aaaaaaaaaaaaaaaaaaaaaaaaa"));   /* 25 characters */
    CHECK(!task_id_valid("resp_aaaaaaaaaaaaaaaaaaaaaaaaa7a")); /* 27 */
    CHECK(!task_id_valid("resp_AAAAAAAAAAAAAAAAAAAAAAAAA7"));
    CHECK(!task_id_valid("file_aaaaaaaaaaaaaaaaaaaaaaaaa7"));
    CHECK(!task_id_valid("batch_aaaaaaaaaaaaaaaaaaaaaaaaa7"));
    CHECK(!task_id_valid("resp_/../aaaaaaaaaaaaaaaaaaaaaa"));
    CHECK(!task_id_valid(""));
    CHECK(!task_id_valid(NULL));
}

/* A response task's blob folder is removed like any task's; a name that is no task id is not. */
static void test_blob_remove_ids(void)
{
    char root[] = "/tmp/sluice-util-XXXXXX", dir[128], file[160];
    const char *ids[] = {"resp_aaaaaaaaaaaaaaaaaaaaaaaaa7", "task_aaaaaaaaaaaaaaaaaaaaaaaaa7"};
    struct stat st;

    CHECK(mkdtemp(root) != NULL);
    for (size_t i = 0; i < 2; i++) {
        FILE *fp;
        CHECK(blobs_artifact_dir(root, ids[i], dir, sizeof(dir)) == 0);
        CHECK(mkdir(dir, 0750) == 0);
        CHECK(artifact_blob_path(root, ids[i], 0, file, sizeof(file)) == 0);
        CHECK((fp = fopen(file, "w")) != NULL);
        if (fp) {
            fclose(fp);
        }
        CHECK(artifact_blob_remove(root, ids[i]) == 0);
        CHECK(stat(dir, &st) != 0);
    }
    snprintf(dir, sizeof(dir), "%s/resp_x", root);
    CHECK(mkdir(dir, 0750) == 0);
    CHECK(artifact_blob_remove(root, "resp_x") == -1);
    CHECK(stat(dir, &st) == 0);
    rmdir(dir);
    CHECK(rmdir(root) == 0);
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

/* A just-accepted task as clients saw it before there was one renderer: a cJSON tree built field
 * by field, printed. task_new_text must write exactly this. */
static cJSON *reference_new(const char *id, const char *kind, const char *model, int prio,
                            int64_t created_ms, long max_attempts, const cJSON *metadata)
{
    static const char *const nulls[] = {"started_at", "completed_at", "expires_at"};
    static const char *const empty[] = {"provider", "result", "error", "usage", "cost"};
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", id);
    cJSON_AddStringToObject(o, "object", "task");
    cJSON_AddStringToObject(o, "kind", kind);
    cJSON_AddStringToObject(o, "model", model);
    cJSON_AddStringToObject(o, "status", "queued");
    cJSON_AddStringToObject(o, "priority", task_priority_name(prio));
    cJSON_AddNumberToObject(o, "created_at", (double)(created_ms / 1000));
    for (size_t i = 0; i < sizeof(nulls) / sizeof(nulls[0]); i++) {
        cJSON_AddNullToObject(o, nulls[i]);
    }
    cJSON_AddNumberToObject(o, "attempts", 0);
    cJSON_AddNumberToObject(o, "max_attempts", (double)max_attempts);
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        cJSON_AddNullToObject(o, empty[i]);
    }
    if (metadata) {
        cJSON_AddItemToObject(o, "metadata", cJSON_Duplicate(metadata, true));
    } else {
        cJSON_AddObjectToObject(o, "metadata");
    }
    return o;
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
                cJSON *o = reference_new("task_aaaaaaaaaaaaaaaaaaaaaaaaa7", "chat", models[m], prio,
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
    test_task_render_fields();
    test_task_new_matches_hash();
    test_task_render_escaping();
    test_task_view_live_fields();
    test_task_view_all_fields();
    test_task_new_text();
    test_fmt();
    test_blob_paths();
    test_task_ids();
    test_blob_remove_ids();
    return check_done();
}
