/*
 * tests/unit/test_adapter_util.c — the helpers every dialect shares (adapters/adapter.c), through
 * adapter.h. Checks with tests/unit/check.h: `ok <test>` or `FAIL <test>` per test, then
 * `N passed, N failed` over the assertions.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/dialect.h"
#include "tests/unit/check.h"

#define NOW_MS 1700000000000LL /* Tue, 14 Nov 2023 22:13:20 GMT */

/* A reply carrying only the given headers (name, value pairs). */
static struct adapter_response reply_with(const struct adapter_header *h, size_t n)
{
    struct adapter_response r;

    memset(&r, 0, sizeof(r));
    r.status = 429;
    r.headers = h;
    r.n_headers = n;
    r.now_ms = NOW_MS;
    return r;
}

/* adapter_retry_after_ms for one header. */
static int64_t wait_for(const char *name, const char *value)
{
    struct adapter_header h[] = {{name, value}};
    struct adapter_response r = reply_with(h, 1);
    return adapter_retry_after_ms(&r);
}

static void test_find_and_kinds(void)
{
    CHECK(adapter_find("openai") == &adapter_openai);
    CHECK(adapter_find("OpenAI") == NULL);
    CHECK(adapter_find("nope") == NULL);
    CHECK(adapter_find("") == NULL);
    CHECK(adapter_find(NULL) == NULL);
    CHECK_I64(adapter_op_from_kind("chat"), ADAPTER_OP_CHAT);
    CHECK_I64(adapter_op_from_kind("embedding"), ADAPTER_OP_EMBEDDING);
    CHECK_I64(adapter_op_from_kind("image"), ADAPTER_OP_IMAGE);
    CHECK_I64(adapter_op_from_kind("video"), ADAPTER_OP_VIDEO);
    CHECK_I64(adapter_op_from_kind("embeddings"), -1);
    CHECK_I64(adapter_op_from_kind("Chat"), -1);
    CHECK_I64(adapter_op_from_kind(""), -1);
    CHECK_I64(adapter_op_from_kind(NULL), -1);
    CHECK_STR(adapter_op_name(ADAPTER_OP_EMBEDDING), "embedding");
    CHECK_STR(adapter_op_name((enum adapter_op)42), "unknown");
}

static void test_url_join(void)
{
    static const struct {
        const char *base;
        const char *path;
        const char *want;
    } rows[] = {
        {"https://api.openai.com/v1", "chat/completions",
         "https://api.openai.com/v1/chat/completions"},
        {"https://api.openai.com/v1/", "chat/completions",
         "https://api.openai.com/v1/chat/completions"},
        {"https://api.openai.com/v1", "/chat/completions",
         "https://api.openai.com/v1/chat/completions"},
        {"https://api.openai.com/v1//", "//chat/completions",
         "https://api.openai.com/v1/chat/completions"},
        {"http://127.0.0.1:8081", "v1/models", "http://127.0.0.1:8081/v1/models"},
        {"https://x.test/v1", "", "https://x.test/v1/"},
    };

    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        char *url = adapter_url_join(rows[i].base, rows[i].path);
        CHECK_STR(url, rows[i].want);
        free(url);
    }
    CHECK(adapter_url_join(NULL, "x") == NULL);
    CHECK(adapter_url_join("https://x.test", NULL) == NULL);
}

static void test_header_get(void)
{
    static const struct adapter_header h[] = {
        {"Retry-After", "7"},
        {"X-RateLimit-Reset-Requests", "1s"},
        {"content-type", "application/json"},
    };
    struct adapter_response r = reply_with(h, ARRAY_LEN(h));
    struct adapter_response none = reply_with(NULL, 0);

    CHECK_STR(adapter_header_get(&r, "retry-after"), "7");
    CHECK_STR(adapter_header_get(&r, "RETRY-AFTER"), "7");
    CHECK_STR(adapter_header_get(&r, "x-ratelimit-reset-requests"), "1s");
    CHECK_STR(adapter_header_get(&r, "Content-Type"), "application/json");
    CHECK_STR(adapter_header_get(&r, "retry-after-ms"), NULL);
    CHECK_STR(adapter_header_get(&r, "retry"), NULL);
    CHECK_STR(adapter_header_get(&none, "retry-after"), NULL);
    CHECK_STR(adapter_header_get(NULL, "retry-after"), NULL);
}

static void test_add_header(void)
{
    struct adapter_request req;

    memset(&req, 0, sizeof(req));
    CHECK_I64(adapter_request_add_header(&req, "Authorization: Bearer %s", "sk-test"), 0);
    CHECK_I64(adapter_request_add_header(&req, "Content-Type: application/json"), 0);
    CHECK_I64(adapter_request_add_header(&req, "X-Count: %d", 3), 0);
    CHECK_I64((int64_t)req.n_headers, 3);
    if (req.n_headers == 3) {
        CHECK_STR(req.headers[0], "Authorization: Bearer sk-test");
        CHECK_STR(req.headers[1], "Content-Type: application/json");
        CHECK_STR(req.headers[2], "X-Count: 3");
    }
    adapter_request_cleanup(&req);
    CHECK(req.headers == NULL && req.n_headers == 0 && req.url == NULL && req.body == NULL);
    adapter_request_cleanup(&req);
    adapter_request_cleanup(NULL);
    adapter_result_cleanup(NULL);
}

static void test_retry_after_seconds(void)
{
    CHECK_I64(wait_for("retry-after", "30"), 30000);
    CHECK_I64(wait_for("Retry-After", "0"), 0);
    CHECK_I64(wait_for("retry-after", "1.5"), 1500);
    CHECK_I64(wait_for("retry-after", " 2 "), 2000);
    CHECK_I64(wait_for("retry-after", "-5"), 0);
    CHECK_I64(wait_for("retry-after", "999999999"), ADAPTER_MAX_WAIT_MS);
    CHECK_I64(wait_for("retry-after", "1e3"), -1);
    CHECK_I64(wait_for("retry-after", "0x10"), -1);
    CHECK_I64(wait_for("retry-after", "inf"), -1);
    CHECK_I64(wait_for("retry-after", "nan"), -1);
    CHECK_I64(wait_for("retry-after", "soon"), -1);
    CHECK_I64(wait_for("retry-after", ""), -1);
    CHECK_I64(wait_for("x-other", "30"), -1);
}

static void test_retry_after_http_date(void)
{
    /* NOW_MS is 22:13:20 GMT; each date is two minutes later, in the three HTTP date forms. */
    CHECK_I64(wait_for("retry-after", "Tue, 14 Nov 2023 22:15:20 GMT"), 120000);
    CHECK_I64(wait_for("retry-after", "Tuesday, 14-Nov-23 22:15:20 GMT"), 120000);
    CHECK_I64(wait_for("retry-after", "Tue Nov 14 22:15:20 2023"), 120000);
    /* A date already past means "now", a date next year is capped at a day. */
    CHECK_I64(wait_for("retry-after", "Tue, 14 Nov 2023 22:00:00 GMT"), 0);
    CHECK_I64(wait_for("retry-after", "Thu, 14 Nov 2024 22:13:20 GMT"), ADAPTER_MAX_WAIT_MS);
    {
        /* Measured against when the reply arrived, not the clock now. */
        struct adapter_header h[] = {{"retry-after", "Tue, 14 Nov 2023 22:15:20 GMT"}};
        struct adapter_response r = reply_with(h, 1);
        r.now_ms = NOW_MS + 500;
        CHECK_I64(adapter_retry_after_ms(&r), 119500);
    }
}

static void test_retry_after_ms_precedence(void)
{
    static const struct adapter_header both[] = {{"Retry-After", "3"}, {"Retry-After-Ms", "250"}};
    static const struct adapter_header bad_ms[] = {{"retry-after-ms", "soon"},
                                                   {"retry-after", "3"}};
    static const struct adapter_header frac[] = {{"retry-after-ms", "12.2"}};
    static const struct adapter_header neg[] = {{"retry-after-ms", "-40"}};
    struct adapter_response r;

    r = reply_with(both, ARRAY_LEN(both));
    CHECK_I64(adapter_retry_after_ms(&r), 250);
    r = reply_with(bad_ms, ARRAY_LEN(bad_ms));
    CHECK_I64(adapter_retry_after_ms(&r), 3000);
    r = reply_with(frac, ARRAY_LEN(frac));
    CHECK_I64(adapter_retry_after_ms(&r), 13);
    r = reply_with(neg, ARRAY_LEN(neg));
    CHECK_I64(adapter_retry_after_ms(&r), 0);
    r = reply_with(NULL, 0);
    CHECK_I64(adapter_retry_after_ms(&r), -1);
}

static void test_duration(void)
{
    static const struct {
        const char *in;
        int64_t want;
    } good[] = {
        {"1s", 1000},
        {"6m0s", 360000},
        {"12ms", 12},
        {"1h2m3.5s", 3723500},
        {"0s", 0},
        {"0", 0},
        {"1.1s", 1100},
        {"0.5ms", 1},
        {"500us", 1},
        {"500\xc2\xb5s", 1},
        {"1500000ns", 2},
        {"20.001s", 20001},
        {"2m30s", 150000},
        {"48h", ADAPTER_MAX_WAIT_MS},
        {"99999999999999999999999h", ADAPTER_MAX_WAIT_MS},
    };
    static const char *const bad[] = {"", "5", "1x", "s", "-1s", "1s ", " 1s", "1.s5", "1ss", "m1"};

    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        int64_t ms = -7;
        int rc = adapter_parse_duration_ms(good[i].in, &ms);
        CHECK_MSG(rc == 0, "duration \"%s\": rc %d", good[i].in, rc);
        CHECK_MSG(ms == good[i].want, "duration \"%s\" is %" PRId64 ", want %" PRId64, good[i].in,
                  ms, good[i].want);
    }
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        int64_t ms = -7;
        CHECK_MSG(adapter_parse_duration_ms(bad[i], &ms) == -1 && ms == -7,
                  "duration \"%s\" is refused", bad[i]);
    }
    CHECK_I64(adapter_parse_duration_ms(NULL, NULL), -1);
}

static void test_status_retryable(void)
{
    static const struct {
        int status;
        bool retryable;
    } rows[] = {
        {408, true},  {429, true},  {500, true},  {502, true},  {503, true},
        {504, true},  {529, true},  {501, true},  {599, true},  {200, false},
        {301, false}, {400, false}, {401, false}, {403, false}, {404, false},
        {409, false}, {413, false}, {422, false}, {0, false},   {600, false},
    };

    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        CHECK_MSG(adapter_status_retryable(rows[i].status) == rows[i].retryable,
                  "status %d retryable=%d", rows[i].status, rows[i].retryable);
    }
}

static void test_classify_transport(void)
{
    static const struct {
        enum adapter_transport transport;
        int code;
        bool retryable;
    } rows[] = {
        {ADAPTER_TRANSPORT_CONNECT, CORE_EUPSTREAM, true},
        {ADAPTER_TRANSPORT_TIMEOUT, CORE_ETIMEOUT, true},
        {ADAPTER_TRANSPORT_RESET, CORE_EUPSTREAM, true},
        {ADAPTER_TRANSPORT_TOO_LARGE, CORE_EUPSTREAM, false},
        {ADAPTER_TRANSPORT_OTHER, CORE_EUPSTREAM, true},
        {ADAPTER_TRANSPORT_OK, CORE_EINTERNAL, false},
    };

    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct adapter_response r = reply_with(NULL, 0);
        struct core_err err;

        core_err_clear(&err);
        r.status = 0;
        r.transport = rows[i].transport;
        r.transport_msg = "Could not resolve host: api.example.test";
        CHECK_I64(adapter_classify_transport(&r, &err), rows[i].code);
        CHECK_I64(err.code, rows[i].code);
        CHECK(err.retryable == rows[i].retryable);
        CHECK_I64(err.provider_status, 0);
        CHECK_I64(err.retry_after_ms, -1);
        CHECK(err.message[0] != '\0');
        if (rows[i].transport != ADAPTER_TRANSPORT_OK) {
            CHECK(strstr(err.message, "api.example.test") != NULL);
            CHECK(err.err_code[0] != '\0');
        }
    }
}

static void test_json_parse_bounds(void)
{
    static const char exact[] = {'{', '"', 'a', '"', ':', '1', '}'}; /* no NUL after it */
    char deep[2 * (ADAPTER_MAX_JSON_DEPTH + 1)];
    char ok_deep[2 * ADAPTER_MAX_JSON_DEPTH];
    char in_string[ADAPTER_MAX_JSON_DEPTH * 2 + 16];
    size_t n = 0;
    cJSON *j;

    j = adapter_json_parse(exact, sizeof(exact));
    CHECK(cJSON_IsObject(j));
    cJSON_Delete(j);
    CHECK(adapter_json_parse("", 0) == NULL);
    CHECK(adapter_json_parse(NULL, 5) == NULL);
    CHECK(adapter_json_parse("<html>", 6) == NULL);
    CHECK(adapter_json_parse("{\"a\":", 5) == NULL);
    CHECK(adapter_json_parse("{}", (size_t)ADAPTER_MAX_REPLY_BYTES + 1) == NULL);

    memset(deep, '[', sizeof(deep) / 2);
    memset(deep + sizeof(deep) / 2, ']', sizeof(deep) / 2);
    CHECK(adapter_json_parse(deep, sizeof(deep)) == NULL);
    memset(ok_deep, '[', sizeof(ok_deep) / 2);
    memset(ok_deep + sizeof(ok_deep) / 2, ']', sizeof(ok_deep) / 2);
    j = adapter_json_parse(ok_deep, sizeof(ok_deep));
    CHECK(cJSON_IsArray(j));
    cJSON_Delete(j);
    /* Brackets inside strings (and escaped quotes) do not count as depth. */
    n += (size_t)snprintf(in_string, sizeof(in_string), "{\"s\":\"\\\"");
    memset(in_string + n, '[', ADAPTER_MAX_JSON_DEPTH * 2);
    n += ADAPTER_MAX_JSON_DEPTH * 2;
    memcpy(in_string + n, "\"}", 2);
    n += 2;
    j = adapter_json_parse(in_string, n);
    CHECK(cJSON_IsObject(j));
    cJSON_Delete(j);
}

static void test_error_fields(void)
{
    static const char *const bodies[] = {
        "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"param\":null,"
        "\"code\":\"rate_limit_exceeded\"}}",
        "{\"error\":{\"code\":429,\"message\":\"Resource exhausted\",\"status\":"
        "\"RESOURCE_EXHAUSTED\"}}",
        "{\"error\":\"upstream exploded\"}",
        "{\"detail\":\"nope\"}",
        "[1,2]",
    };
    struct adapter_error_fields f;
    cJSON *j;

    j = cJSON_Parse(bodies[0]);
    CHECK(adapter_error_fields_read(j, &f));
    CHECK_STR(f.message, "Rate limit reached");
    CHECK_STR(f.type, "requests");
    CHECK_STR(f.param, NULL);
    CHECK_STR(f.code, "rate_limit_exceeded");
    cJSON_Delete(j);

    j = cJSON_Parse(bodies[1]);
    CHECK(adapter_error_fields_read(j, &f));
    CHECK_STR(f.message, "Resource exhausted");
    CHECK_STR(f.type, NULL);
    CHECK_STR(f.code, "429");
    cJSON_Delete(j);

    j = cJSON_Parse(bodies[2]);
    CHECK(adapter_error_fields_read(j, &f));
    CHECK_STR(f.message, "upstream exploded");
    CHECK_STR(f.code, "");
    cJSON_Delete(j);

    for (size_t i = 3; i < ARRAY_LEN(bodies); i++) {
        j = cJSON_Parse(bodies[i]);
        CHECK(!adapter_error_fields_read(j, &f));
        cJSON_Delete(j);
    }
    CHECK(!adapter_error_fields_read(NULL, &f));
}

static void test_http_error(void)
{
    static const struct {
        int provider;
        int http;
        bool retryable;
        const char *type;
    } rows[] = {
        {400, 400, false, "invalid_request_error"}, {401, 401, false, "authentication_error"},
        {403, 403, false, "permission_error"},      {404, 404, false, "not_found_error"},
        {408, 504, true, "timeout_error"},          {409, 502, false, "upstream_error"},
        {413, 413, false, "request_too_large"},     {422, 422, false, "unprocessable_entity_error"},
        {429, 429, true, "rate_limit_error"},       {500, 502, true, "upstream_error"},
        {503, 502, true, "upstream_error"},         {529, 502, true, "upstream_error"},
    };
    static const struct adapter_header h[] = {{"retry-after", "4"}};
    struct adapter_error_fields f;
    struct core_err err;
    char long_msg[700];

    for (size_t i = 0; i < ARRAY_LEN(rows); i++) {
        struct adapter_response r = reply_with(h, 1);
        r.status = rows[i].provider;
        core_err_clear(&err);
        CHECK_I64(adapter_http_error(&r, NULL, &err), CORE_EUPSTREAM);
        CHECK_I64(err.code, CORE_EUPSTREAM);
        CHECK_I64(err.http_status, rows[i].http);
        CHECK_I64(err.provider_status, rows[i].provider);
        CHECK(err.retryable == rows[i].retryable);
        CHECK_STR(err.type, rows[i].type);
        CHECK_I64(err.retry_after_ms, 4000);
        CHECK(strstr(err.message, "provider returned HTTP") != NULL);
    }

    /* The provider's words are kept; a long message is cut on a UTF-8 boundary. */
    memset(&f, 0, sizeof(f));
    memset(long_msg, 'a', sizeof(long_msg));
    for (size_t i = 500; i + 2 < sizeof(long_msg); i += 2) {
        long_msg[i] = '\xc3';
        long_msg[i + 1] = '\xa9';
    }
    long_msg[sizeof(long_msg) - 1] = '\0';
    f.message = long_msg;
    f.type = "invalid_request_error";
    f.param = "messages";
    snprintf(f.code, sizeof(f.code), "%s", "context_length_exceeded");
    {
        struct adapter_response r = reply_with(NULL, 0);
        size_t n;
        r.status = 400;
        core_err_clear(&err);
        adapter_http_error(&r, &f, &err);
        n = strlen(err.message);
        CHECK(n > 500 && n < sizeof(err.message));
        CHECK(((unsigned char)err.message[n - 1] & 0xC0) != 0xC0);
        CHECK(strncmp(err.message, long_msg, n) == 0);
        CHECK_STR(err.param, "messages");
        CHECK_STR(err.err_code, "context_length_exceeded");
        CHECK_STR(err.type, "invalid_request_error");
        CHECK_I64(err.retry_after_ms, -1);
    }
}

/*
 * Feeds chunks (a JSON array text) to a fresh accumulator and returns the finished result as
 * compact JSON text with usage text in *usage (both caller frees; NULL when absent). *add_rc gets
 * the first non-zero adapter_accum_add return, or 0.
 */
static char *accum_run(const char *chunks_text, char **usage, int *add_rc)
{
    cJSON *chunks = cJSON_Parse(chunks_text);
    struct adapter_accum *a = adapter_accum_new();
    struct adapter_result res;
    const cJSON *chunk;
    char *text = NULL;

    *usage = NULL;
    *add_rc = 0;
    memset(&res, 0, sizeof(res));
    if (chunks == NULL || a == NULL) {
        goto out;
    }
    cJSON_ArrayForEach(chunk, chunks)
    {
        int rc = adapter_accum_add(a, chunk);
        if (rc != 0 && *add_rc == 0) {
            *add_rc = rc;
        }
    }
    if (adapter_accum_finish(a, &res) == 0) {
        text = cJSON_PrintUnformatted(res.result);
        *usage = res.usage ? cJSON_PrintUnformatted(res.usage) : NULL;
    }
out:
    adapter_result_cleanup(&res);
    adapter_accum_free(a);
    cJSON_Delete(chunks);
    return text;
}

/* got (JSON text) equals want (JSON text) as JSON. */
static bool same_json(const char *got, const char *want)
{
    cJSON *g = got ? cJSON_Parse(got) : NULL;
    cJSON *w = want ? cJSON_Parse(want) : NULL;
    bool same = (g == NULL && w == NULL) || (g && w && cJSON_Compare(g, w, true));

    cJSON_Delete(g);
    cJSON_Delete(w);
    return same;
}

#define CHECK_ACCUM(chunks, want_result, want_usage)                                               \
    do {                                                                                           \
        char *usage_;                                                                              \
        int rc_;                                                                                   \
        char *got_ = accum_run((chunks), &usage_, &rc_);                                           \
        CHECK_I64(rc_, 0);                                                                         \
        CHECK_MSG(same_json(got_, (want_result)), "accumulated result is %s, want %s",             \
                  got_ ? got_ : "(null)", (want_result));                                          \
        CHECK(same_json(usage_, (want_usage)));                                                    \
        free(got_);                                                                                \
        free(usage_);                                                                              \
    } while (0)

/* Text deltas joined; id/created/model from the first chunk with them; usage from its chunk. */
static void test_accum_text(void)
{
    CHECK_ACCUM(
        "[{\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"role\":"
        "\"assistant\",\"content\":\"\"},\"finish_reason\":null}],\"usage\":null},"
        "{\"id\":\"c1\",\"created\":7,\"model\":\"m-1\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"Hel\"},\"finish_reason\":null}]},"
        "{\"id\":\"c2\",\"created\":8,\"model\":\"m-2\",\"choices\":[{\"index\":0,\"delta\":"
        "{\"content\":\"lo \\u00e9\"},\"finish_reason\":\"length\"}]},"
        "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]},"
        "{\"id\":\"c1\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":null}]},"
        "{\"id\":\"c1\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":2,"
        "\"total_tokens\":5}}]",
        "{\"id\":\"c1\",\"object\":\"chat.completion\",\"created\":7,\"model\":\"m-1\","
        "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello "
        "\\u00e9\"},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":3,"
        "\"completion_tokens\":2,\"total_tokens\":5}}",
        "{\"prompt_tokens\":3,\"completion_tokens\":2,\"total_tokens\":5}");
}

/* Tool calls merged by index, in any arrival order; type defaults to function. */
static void test_accum_tool_calls(void)
{
    CHECK_ACCUM(
        "[{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
        "null,\"tool_calls\":[{\"index\":1,\"id\":\"call_b\",\"type\":\"function\",\"function\":"
        "{\"name\":\"b\",\"arguments\":\"{\\\"x\\\"\"}}]}}]},"
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":"
        "\"call_a\",\"function\":{\"name\":\"a\"}}]}}]},"
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":1,"
        "\"id\":\"ignored\",\"function\":{\"name\":\"ignored\",\"arguments\":\":1}\"}},"
        "{\"index\":0,\"function\":{\"arguments\":\"{}\"}}]}}]},"
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}]",
        "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
        "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":["
        "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"a\",\"arguments\":"
        "\"{}\"}},{\"id\":\"call_b\",\"type\":\"function\",\"function\":{\"name\":\"b\","
        "\"arguments\":\"{\\\"x\\\":1}\"}}]},\"finish_reason\":\"tool_calls\"}]}",
        NULL);
}

/* Servers that leave tool-call indexes out: a new id starts the next call. */
static void test_accum_tool_calls_no_index(void)
{
    CHECK_ACCUM("[{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"t1\",\"function\":{\"name\":"
                "\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]},"
                "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"function\":{\"arguments\":\":1}\"}}"
                "]}}]},"
                "{\"choices\":[{\"delta\":{\"tool_calls\":[{\"id\":\"t2\",\"function\":{\"name\":"
                "\"g\",\"arguments\":\"{}\"}}]}}]}]",
                "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                "\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":\"t1\",\"type\":"
                "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}},"
                "{\"id\":\"t2\",\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":"
                "\"{}\"}}]},\"finish_reason\":null}]}",
                NULL);
}

/* Several choices, sorted by index; a refusal kept apart from content. */
static void test_accum_choices_and_refusal(void)
{
    CHECK_ACCUM(
        "[{\"choices\":[{\"index\":1,\"delta\":{\"role\":\"assistant\",\"content\":\"B\"}},"
        "{\"index\":0,\"delta\":{\"role\":\"assistant\",\"refusal\":\"I can\"}}]},"
        "{\"choices\":[{\"index\":0,\"delta\":{\"refusal\":\"not.\"},\"finish_reason\":"
        "\"stop\"},{\"index\":1,\"delta\":{\"content\":\"b\"},\"finish_reason\":\"stop\"}]}]",
        "{\"object\":\"chat.completion\",\"choices\":["
        "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":null,\"refusal\":"
        "\"I cannot.\"},\"finish_reason\":\"stop\"},"
        "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"Bb\"},"
        "\"finish_reason\":\"stop\"}]}",
        NULL);
}

/* No chunks at all: an empty completion, no usage. */
static void test_accum_empty(void)
{
    CHECK_ACCUM("[]", "{\"object\":\"chat.completion\",\"choices\":[]}", NULL);
}

/* What the accumulator refuses: non-objects, bad indexes, too many choices. */
static void test_accum_refuses(void)
{
    const char *bad[] = {
        "[1]",
        "[{\"choices\":[{\"index\":-1,\"delta\":{}}]}]",
        "[{\"choices\":[{\"index\":1.5,\"delta\":{}}]}]",
        "[{\"choices\":[{\"index\":1e300,\"delta\":{}}]}]",
        "[{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":100000}]}}]}]",
        "[{\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[7]}}]}]",
        "[{\"choices\":[3]}]",
    };
    struct adapter_accum *a = adapter_accum_new();
    cJSON *chunk = cJSON_Parse("{\"choices\":[{\"index\":0,\"delta\":{}}]}");
    cJSON *index =
        cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(chunk, "choices"), 0), "index");
    int rc = 0;

    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char *usage;
        int add_rc;
        char *got = accum_run(bad[i], &usage, &add_rc);
        CHECK(add_rc < 0);
        free(got);
        free(usage);
    }
    CHECK(adapter_accum_add(NULL, chunk) == CORE_EINVAL);
    CHECK(adapter_accum_add(a, NULL) == CORE_EINVAL);
    /* Choices past the cap are refused, the ones before it kept. */
    for (int i = 0; i < 1000 && rc == 0; i++) {
        cJSON_SetNumberValue(index, i);
        rc = adapter_accum_add(a, chunk);
    }
    CHECK(rc == CORE_ETOOLARGE);
    adapter_accum_free(a);
    adapter_accum_free(NULL);
    cJSON_Delete(chunk);
}

/* logprobs.content entries of every chunk are joined per choice; without any, none. */
static void test_accum_logprobs(void)
{
    CHECK_ACCUM("[{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"},"
                "\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":-1}]}}]},"
                "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"b\"},"
                "\"logprobs\":null}]},"
                "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"c\"},"
                "\"logprobs\":{\"content\":[{\"token\":\"c\",\"logprob\":-2}]},"
                "\"finish_reason\":\"stop\"}]}]",
                "{\"id\":\"c\",\"object\":\"chat.completion\",\"choices\":[{\"index\":0,"
                "\"message\":{\"role\":\"assistant\",\"content\":\"abc\"},\"finish_reason\":"
                "\"stop\",\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":-1},"
                "{\"token\":\"c\",\"logprob\":-2}],\"refusal\":null}}]}",
                NULL);
}

/* cJSON printed unformatted, for comparing whole objects. Caller frees. */
static char *json_text(const cJSON *j)
{
    return cJSON_PrintUnformatted(j);
}

#define CHECK_NORMALIZED(fn, in, fallback, want)                                                   \
    do {                                                                                           \
        cJSON *j_ = cJSON_Parse(in);                                                               \
        char *t_;                                                                                  \
        CHECK(j_ != NULL);                                                                         \
        CHECK(fn(j_, fallback) == 0);                                                              \
        t_ = json_text(j_);                                                                        \
        CHECK_STR(t_, want);                                                                       \
        cJSON_free(t_);                                                                            \
        CHECK(fn(j_, fallback) == 0); /* idempotent */                                             \
        t_ = json_text(j_);                                                                        \
        CHECK_STR(t_, want);                                                                       \
        cJSON_free(t_);                                                                            \
        cJSON_Delete(j_);                                                                          \
    } while (0)

/* Every dialect's completion in OpenAI's shape: chatcmpl- ids, refusal and logprobs null. */
static void test_chat_normalize(void)
{
    CHECK_NORMALIZED(adapter_chat_normalize,
                     "{\"id\":\"msg_01\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                     "\"assistant\",\"content\":\"hi\"},\"finish_reason\":\"stop\"}]}",
                     "task_x",
                     "{\"id\":\"chatcmpl-msg_01\",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                     "\"assistant\",\"content\":\"hi\",\"refusal\":null},\"finish_reason\":"
                     "\"stop\",\"logprobs\":null}]}");
    /* what is set stays; an id with the prefix stays */
    CHECK_NORMALIZED(adapter_chat_normalize,
                     "{\"id\":\"chatcmpl-abc\",\"choices\":[{\"message\":{\"refusal\":\"no\"},"
                     "\"logprobs\":{\"content\":[]}}]}",
                     "task_x",
                     "{\"id\":\"chatcmpl-abc\",\"choices\":[{\"message\":{\"refusal\":\"no\"},"
                     "\"logprobs\":{\"content\":[]}}]}");
    /* no id: the fallback, prefixed; an empty id likewise */
    CHECK_NORMALIZED(adapter_chat_normalize, "{\"choices\":[]}", "task_x",
                     "{\"choices\":[],\"id\":\"chatcmpl-task_x\"}");
    CHECK_NORMALIZED(adapter_chat_normalize, "{\"id\":\"\",\"choices\":[]}", "task_x",
                     "{\"id\":\"chatcmpl-task_x\",\"choices\":[]}");
    CHECK_NORMALIZED(adapter_chat_normalize, "{\"choices\":[]}", NULL, "{\"choices\":[]}");
}

/* Chunks: usage null unless carried, logprobs null per choice, ids as for completions. */
static void test_chunk_normalize(void)
{
    CHECK_NORMALIZED(adapter_chunk_normalize,
                     "{\"id\":\"r1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"a\"}}]}",
                     "task_x",
                     "{\"id\":\"chatcmpl-r1\",\"choices\":[{\"index\":0,\"delta\":{\"content\":"
                     "\"a\"},\"logprobs\":null}],\"usage\":null}");
    CHECK_NORMALIZED(adapter_chunk_normalize,
                     "{\"id\":\"chatcmpl-r1\",\"choices\":[],\"usage\":{\"total_tokens\":3}}",
                     "task_x",
                     "{\"id\":\"chatcmpl-r1\",\"choices\":[],\"usage\":{\"total_tokens\":3}}");
}

static void test_chunk_usage(void)
{
    cJSON *usage = cJSON_Parse("{\"choices\":[],\"usage\":{\"total_tokens\":3}}");
    cJSON *text = cJSON_Parse("{\"choices\":[{\"delta\":{}}],\"usage\":null}");
    cJSON *both = cJSON_Parse("{\"choices\":[{\"delta\":{}}],\"usage\":{\"total_tokens\":3}}");
    cJSON *asked = cJSON_Parse("{\"stream_options\":{\"include_usage\":true}}");
    cJSON *not_asked = cJSON_Parse("{\"stream_options\":{\"include_usage\":false}}");
    cJSON *none = cJSON_Parse("{\"stream\":true}");

    CHECK(adapter_chunk_is_usage(usage));
    CHECK(!adapter_chunk_is_usage(text));
    CHECK(!adapter_chunk_is_usage(both));
    CHECK(adapter_stream_wants_usage(asked));
    CHECK(!adapter_stream_wants_usage(not_asked));
    CHECK(!adapter_stream_wants_usage(none));
    cJSON_Delete(usage);
    cJSON_Delete(text);
    cJSON_Delete(both);
    cJSON_Delete(asked);
    cJSON_Delete(not_asked);
    cJSON_Delete(none);
}

/* The field policy: listed fields pass, inert values of limited ones pass, the rest is a 400. */
static void test_fields_check(void)
{
    static const struct adapter_field table[] = {
        {"model", ADAPTER_FIELD_HANDLED},
        {"messages", ADAPTER_FIELD_HANDLED},
        {"logprobs", ADAPTER_FIELD_IF_FALSE},
        {"n", ADAPTER_FIELD_IF_ONE},
        {"presence_penalty", ADAPTER_FIELD_IF_ZERO},
        {"parallel_tool_calls", ADAPTER_FIELD_IF_TRUE},
    };
    static const struct {
        const char *input;
        const char *refused; /* NULL: accepted */
    } cases[] = {
        {"{\"model\":\"m\",\"messages\":[]}", NULL},
        {"{\"model\":\"m\",\"logprobs\":false,\"n\":1,\"presence_penalty\":0,"
         "\"parallel_tool_calls\":true}",
         NULL},
        {"{\"model\":\"m\",\"seed\":null,\"logprobs\":null}", NULL}, /* null is absent */
        {"{\"model\":\"m\",\"logprobs\":true}", "logprobs"},
        {"{\"model\":\"m\",\"n\":2}", "n"},
        {"{\"model\":\"m\",\"n\":\"1\"}", "n"},
        {"{\"model\":\"m\",\"presence_penalty\":0.5}", "presence_penalty"},
        {"{\"model\":\"m\",\"parallel_tool_calls\":false}", "parallel_tool_calls"},
        {"{\"model\":\"m\",\"seed\":7,\"logprobs\":true}", "seed"}, /* the first one is named */
    };

    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        cJSON *in = cJSON_Parse(cases[i].input);
        struct core_err e;
        int rc;

        core_err_clear(&e);
        rc = adapter_fields_check(in, "testdialect", table, ARRAY_LEN(table), &e);
        if (cases[i].refused == NULL) {
            CHECK_I64(rc, 0);
        } else {
            CHECK_I64(rc, CORE_EINVAL);
            CHECK_I64(e.http_status, 400);
            CHECK_STR(e.param, cases[i].refused);
            CHECK_STR(e.type, "invalid_request_error");
            CHECK_STR(e.err_code, "unsupported_parameter");
            CHECK(strstr(e.message, cases[i].refused) != NULL);
            CHECK(strstr(e.message, "testdialect") != NULL);
        }
        cJSON_Delete(in);
    }
}

/* Random ids: the prefix, n characters of [A-Za-z0-9], and no two alike. */
static void test_random_id(void)
{
    char a[64], b[64], small[8];

    CHECK_I64(adapter_random_id("call_", 24, a, sizeof(a)), 0);
    CHECK_I64(adapter_random_id("call_", 24, b, sizeof(b)), 0);
    CHECK_I64((int64_t)strlen(a), 29);
    CHECK(strncmp(a, "call_", 5) == 0);
    CHECK(strspn(a + 5, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") == 24);
    CHECK(strcmp(a, b) != 0);
    CHECK_I64(adapter_random_id("call_", 24, small, sizeof(small)), -1);
}

static const struct {
    const char *name;
    void (*fn)(void);
} tests[] = {
    {"find_and_kinds", test_find_and_kinds},
    {"url_join", test_url_join},
    {"header_get", test_header_get},
    {"add_header", test_add_header},
    {"retry_after_seconds", test_retry_after_seconds},
    {"retry_after_http_date", test_retry_after_http_date},
    {"retry_after_ms_precedence", test_retry_after_ms_precedence},
    {"duration", test_duration},
    {"status_retryable", test_status_retryable},
    {"classify_transport", test_classify_transport},
    {"json_parse_bounds", test_json_parse_bounds},
    {"error_fields", test_error_fields},
    {"http_error", test_http_error},
    {"accum_text", test_accum_text},
    {"accum_tool_calls", test_accum_tool_calls},
    {"accum_tool_calls_no_index", test_accum_tool_calls_no_index},
    {"accum_choices_and_refusal", test_accum_choices_and_refusal},
    {"accum_empty", test_accum_empty},
    {"accum_refuses", test_accum_refuses},
    {"accum_logprobs", test_accum_logprobs},
    {"chat_normalize", test_chat_normalize},
    {"chunk_normalize", test_chunk_normalize},
    {"chunk_usage", test_chunk_usage},
    {"fields_check", test_fields_check},
    {"random_id", test_random_id},
};

int main(void)
{
    for (size_t i = 0; i < ARRAY_LEN(tests); i++) {
        check_test_begin(tests[i].name);
        tests[i].fn();
        check_test_end();
    }
    return check_done();
}
