/*
 * tests/unit/test_adapter_golden.c — the adapter golden cases, run as data.
 *
 * Walks $SLUICE_TEST_DATA/<dialect>/<case>/ for every dialect directory, finds the adapter of that
 * name, and runs each case. tests/data/README.md is the full description of the files; in short:
 *   input.json     the client's OpenAI request body ("stream": true makes a chat call stream)
 *   target.json    {"provider","base_url","api_key","model"}, optionally "kind" (chat, embedding,
 *                  image, video; default chat), "default_max_tokens" and "callback_url"
 *                  (call->callback_url: the provider callback a long-running submit asks for)
 *   request.json   the exact upstream request {"method","url","headers","body"} with the api key
 *                  written as ***, or {"error":{...}} when build_request must refuse the input
 *   reply.json     {"status","headers","body","transport","transport_msg","now_ms"}; a string body
 *                  is sent as raw bytes, any other JSON value as its text; a reply.body file, when
 *                  present, is the body's raw bytes instead
 *   reply.sse      streaming chat: the raw event stream; reply.json then only holds status/headers
 *   expected.json  {"result","usage","upstream_id","artifacts"}, {"pending":{...}} for a
 *                  long-running job, or {"error":{...}} (error fields left out are not checked)
 *   expected_chunks.json   streaming: the chunks stream_event must produce
 *   expected_events.json   streaming response (kind "response"): the typed Responses events the
 *                  responses_stream_* functions must produce, from response.created on (and, when
 *                  the stream fails, the response.failed of responses_stream_fail last)
 *   pollN_request.json, pollN_reply.json, pollN_expected.json (N = 1..9), cancel_request.json
 *                  long-running jobs: the polls after a PENDING expected.json, and the cancel
 * Kind "response" (target.json "kind": "response", "responses_native": true for an OpenAI
 * deployment with POST /responses) runs the case through adapters/responses.h instead of the
 * dialect's hooks: responses_build_request, responses_parse_response (response id
 * GOLDEN_RESPONSE_ID, created GOLDEN_CREATED_S) and, with "stream": true in input.json and a
 * reply.sse, the responses_stream_* functions; expected.json's result is the response object and
 * its usage the chat-named usage the rest of sluice reads.
 * JSON is compared as JSON, not as text; an expected string "*" matches any value. Prints
 * `ok <dialect>/<case>` or `FAIL <dialect>/<case>: <why>` per case and `N passed, N failed` last.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "adapters/adapter.h"
#include "adapters/responses.h"
#include "core/sse.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_DATA_FILE (1024u * 1024u)
#define DEFAULT_NOW_MS 1700000000000LL
#define WHY_LEN 2048
#define MAX_POLL_STEPS 9
#define PATH_LEN 8448 /* a case directory (8192) and a file name */
/* The response id and creation time every response case runs with. */
#define GOLDEN_RESPONSE_ID "resp_abcdefghijklmnopqrstuvwxyz"
#define GOLDEN_CREATED_S 1700000000LL

static const struct {
    const char *name;
    int code;
} code_names[] = {
    {"CORE_OK", CORE_OK},
    {"CORE_EINVAL", CORE_EINVAL},
    {"CORE_EAUTH", CORE_EAUTH},
    {"CORE_EPERM", CORE_EPERM},
    {"CORE_ENOTFOUND", CORE_ENOTFOUND},
    {"CORE_ECONFLICT", CORE_ECONFLICT},
    {"CORE_ETOOLARGE", CORE_ETOOLARGE},
    {"CORE_EUNPROCESSABLE", CORE_EUNPROCESSABLE},
    {"CORE_EQUOTA", CORE_EQUOTA},
    {"CORE_EUNAVAILABLE", CORE_EUNAVAILABLE},
    {"CORE_ETIMEOUT", CORE_ETIMEOUT},
    {"CORE_EUPSTREAM", CORE_EUPSTREAM},
    {"CORE_ENOMEM", CORE_ENOMEM},
    {"CORE_EINTERNAL", CORE_EINTERNAL},
};

static const struct {
    const char *name;
    enum adapter_transport transport;
} transport_names[] = {
    {"ok", ADAPTER_TRANSPORT_OK},
    {"connect", ADAPTER_TRANSPORT_CONNECT},
    {"timeout", ADAPTER_TRANSPORT_TIMEOUT},
    {"reset", ADAPTER_TRANSPORT_RESET},
    {"too_large", ADAPTER_TRANSPORT_TOO_LARGE},
    {"other", ADAPTER_TRANSPORT_OTHER},
};

/*
 * How a streaming case's bytes are cut before they reach the SSE parser. Every plan must give the
 * same chunks: the whole stream at once, byte by byte, and odd sizes that split lines, "data:"
 * prefixes and multi-byte characters at shifting places.
 */
static const struct {
    const char *name;
    size_t sizes[6]; /* cycled; 0 ends the cycle early */
} split_plans[] = {
    {"whole", {MAX_DATA_FILE + 1}},
    {"bytes", {1}},
    {"odd", {7, 3, 13, 2, 31, 5}},
};

/* The numeric fields of {"pending":{...}}, checked when present. */
static const struct {
    const char *key;
    size_t offset;
    size_t size;
} pending_numbers[] = {
    {"progress", offsetof(struct adapter_result, progress), sizeof(int)},
    {"queue_position", offsetof(struct adapter_result, queue_position), sizeof(int)},
    {"poll_after_ms", offsetof(struct adapter_result, poll_after_ms), sizeof(int64_t)},
};

/* One case's files and what running it allocated; case_cleanup() frees it all. */
struct golden_case {
    const char *dir;
    const struct adapter *a;
    cJSON *input;
    cJSON *target_json;
    cJSON *request;
    cJSON *expected;
    struct adapter_target target;
    struct adapter_call call;
    struct adapter_request req;
    struct adapter_result res; /* parse_response's; its PENDING state starts polls and cancel */
    char why[WHY_LEN];
};

/* A reply file pair (<prefix>.json, <prefix>.body) turned into what the worker hands over. */
struct golden_reply {
    cJSON *json;
    struct adapter_header *headers;
    char *body;
    struct adapter_response resp;
};

/* The state each poll continues from: the last PENDING result's upstream_id and job. Owned. */
struct poll_state {
    char *upstream_id;
    cJSON *job;
};

/*
 * One pass of a streaming case through the SSE parser and the dialect's stream_event (or, for a
 * response case, responses_stream_event: then response is set and chunks holds the events).
 */
struct stream_run {
    struct golden_case *c;
    void *state;
    struct responses_stream *response;
    cJSON *chunks;
    bool done;
    int rc;
    struct core_err err;
};

static bool fail(struct golden_case *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static bool fail(struct golden_case *c, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(c->why, sizeof(c->why), fmt, ap);
    va_end(ap);
    return false;
}

static const char *code_name(int code)
{
    for (size_t i = 0; i < ARRAY_LEN(code_names); i++) {
        if (code_names[i].code == code) {
            return code_names[i].name;
        }
    }
    return "?";
}

/* A whole file, NUL-terminated, refused past MAX_DATA_FILE. NULL when missing. Caller frees. */
static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL) {
        return NULL;
    }
    buf = malloc(MAX_DATA_FILE + 1);
    if (buf != NULL) {
        n = fread(buf, 1, MAX_DATA_FILE + 1, f);
        if (n > MAX_DATA_FILE || ferror(f)) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
        }
    }
    fclose(f);
    if (len != NULL) {
        *len = n;
    }
    return buf;
}

static bool case_has(const struct golden_case *c, const char *name)
{
    char path[PATH_LEN];

    snprintf(path, sizeof(path), "%s/%s", c->dir, name);
    return access(path, F_OK) == 0;
}

/* dir/name's raw bytes (NUL after them); NULL when missing. Caller frees. */
static char *case_slurp(const struct golden_case *c, const char *name, size_t *len)
{
    char path[PATH_LEN];

    snprintf(path, sizeof(path), "%s/%s", c->dir, name);
    return slurp(path, len);
}

/* dir/name parsed as JSON; NULL when the file is missing (*missing set) or not JSON. */
static cJSON *load_json(const char *dir, const char *name, bool *missing)
{
    char path[PATH_LEN];
    char *text;
    cJSON *j;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    text = slurp(path, NULL);
    *missing = (text == NULL);
    if (text == NULL) {
        return NULL;
    }
    j = cJSON_Parse(text);
    free(text);
    return j;
}

static bool load_required(struct golden_case *c, const char *name, cJSON **out)
{
    bool missing;

    *out = load_json(c->dir, name, &missing);
    if (*out == NULL) {
        return fail(c, "%s %s", name, missing ? "is missing" : "is not valid JSON");
    }
    return true;
}

static const char *json_str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, key));
}

static bool is_wildcard(const cJSON *j)
{
    return cJSON_IsString(j) && strcmp(j->valuestring, "*") == 0;
}

/* s with every occurrence of key replaced by "***", so golden files never hold a key. */
static char *mask_key(const char *s, const char *key)
{
    size_t klen = (key != NULL) ? strlen(key) : 0;
    size_t cap = strlen(s) * 3 + 4;
    char *out = malloc(cap + 1);
    char *w = out;

    if (out == NULL) {
        return NULL;
    }
    while (*s != '\0') {
        if (klen > 0 && strncmp(s, key, klen) == 0) {
            memcpy(w, "***", 3);
            w += 3;
            s += klen;
        } else {
            *w++ = *s++;
        }
    }
    *w = '\0';
    return out;
}

static char *print_json(const cJSON *j)
{
    char *s = j ? cJSON_PrintUnformatted(j) : NULL;
    return s ? s : strdup("(none)");
}

/*
 * got matches want: equal as JSON (object keys in any order), except that a want string "*"
 * matches any value that is present. On a mismatch, path (cap bytes) names the first place that
 * differs, as ".choices[0].delta.content"; *got_at and *want_at are the values there.
 */
static bool json_match_at(const cJSON *got, const cJSON *want, char *path, size_t cap,
                          const cJSON **got_at, const cJSON **want_at)
{
    size_t used = strlen(path);
    const cJSON *w;
    const cJSON *g;
    int i = 0;

    *got_at = got;
    *want_at = want;
    if (got == NULL || want == NULL) {
        return false;
    }
    if (is_wildcard(want)) {
        return true;
    }
    if (cJSON_IsObject(want)) {
        if (!cJSON_IsObject(got)) {
            return false;
        }
        cJSON_ArrayForEach(w, want)
        {
            snprintf(path + used, cap - used, ".%s", w->string);
            if (!json_match_at(cJSON_GetObjectItemCaseSensitive(got, w->string), w, path, cap,
                               got_at, want_at)) {
                return false;
            }
        }
        cJSON_ArrayForEach(g, got)
        {
            if (cJSON_GetObjectItemCaseSensitive(want, g->string) == NULL) {
                snprintf(path + used, cap - used, ".%s", g->string);
                *got_at = g;
                *want_at = NULL;
                return false;
            }
        }
        path[used] = '\0';
        return true;
    }
    if (cJSON_IsArray(want)) {
        if (!cJSON_IsArray(got)) {
            return false;
        }
        for (w = want->child, g = got->child; w != NULL || g != NULL; i++) {
            snprintf(path + used, cap - used, "[%d]", i);
            if (!json_match_at(g, w, path, cap, got_at, want_at)) {
                return false;
            }
            w = w->next;
            g = g->next;
        }
        path[used] = '\0';
        return true;
    }
    return cJSON_Compare(got, want, true);
}

static bool json_equal(struct golden_case *c, const char *what, const cJSON *got, const cJSON *want)
{
    char path[512] = "";
    const cJSON *g_at;
    const cJSON *w_at;
    char *g;
    char *w;

    if (json_match_at(got, want, path, sizeof(path), &g_at, &w_at)) {
        return true;
    }
    g = print_json(g_at);
    w = print_json(w_at);
    fail(c, "%s differs at %s: got %.800s, want %.800s", what, path[0] ? path : "top", g ? g : "?",
         w ? w : "?");
    free(g);
    free(w);
    return false;
}

/* Compares one "Name: value" line the adapter built with the expected lower-case headers. */
static bool check_header(struct golden_case *c, const char *stage, const char *line,
                         const cJSON *want)
{
    char name[256];
    const char *colon = strchr(line, ':');
    const char *value;
    const char *expected;
    char *masked;
    bool ok;
    size_t n;

    if (colon == NULL || (size_t)(colon - line) >= sizeof(name)) {
        return fail(c, "%s: malformed header line \"%s\"", stage, line);
    }
    n = (size_t)(colon - line);
    for (size_t i = 0; i < n; i++) {
        name[i] = (char)((line[i] >= 'A' && line[i] <= 'Z') ? line[i] - 'A' + 'a' : line[i]);
    }
    name[n] = '\0';
    value = colon + 1;
    while (*value == ' ') {
        value++;
    }
    expected = json_str(want, name);
    if (expected == NULL) {
        return fail(c, "%s: unexpected header \"%s\"", stage, name);
    }
    masked = mask_key(value, c->target.api_key);
    ok = masked != NULL && (strcmp(expected, "*") == 0 || strcmp(masked, expected) == 0);
    if (!ok) {
        fail(c, "%s: header %s is \"%s\", want \"%s\"", stage, name, masked ? masked : "?",
             expected);
    }
    free(masked);
    return ok;
}

/* req against {"method","url","headers","body"}; a missing or null body means none is sent. */
static bool check_request(struct golden_case *c, const char *stage,
                          const struct adapter_request *req, const cJSON *want)
{
    const cJSON *want_headers = cJSON_GetObjectItemCaseSensitive(want, "headers");
    const cJSON *want_body = cJSON_GetObjectItemCaseSensitive(want, "body");
    const char *want_method = json_str(want, "method");
    const char *want_url = json_str(want, "url");
    char *url = NULL;
    cJSON *body = NULL;
    bool ok = false;

    if (want_method == NULL || strcmp(req->method, want_method) != 0) {
        fail(c, "%s: method is %s, want %s", stage, req->method,
             want_method ? want_method : "(none)");
        goto out;
    }
    url = req->url ? mask_key(req->url, c->target.api_key) : NULL;
    if (url == NULL || want_url == NULL || strcmp(url, want_url) != 0) {
        fail(c, "%s: url is %s, want %s", stage, url ? url : "(none)",
             want_url ? want_url : "(none)");
        goto out;
    }
    if ((size_t)cJSON_GetArraySize(want_headers) != req->n_headers) {
        fail(c, "%s: %zu headers built, want %d", stage, req->n_headers,
             cJSON_GetArraySize(want_headers));
        goto out;
    }
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!check_header(c, stage, req->headers[i], want_headers)) {
            goto out;
        }
    }
    if (want_body == NULL || cJSON_IsNull(want_body)) {
        ok = req->body == NULL || fail(c, "%s: a body was built, want none", stage);
        goto out;
    }
    if (req->body == NULL || strlen(req->body) != req->body_len) {
        fail(c, "%s: body missing or body_len wrong", stage);
        goto out;
    }
    body = cJSON_ParseWithLength(req->body, req->body_len);
    ok = json_equal(c, "request body", body, want_body);
out:
    free(url);
    cJSON_Delete(body);
    return ok;
}

/* Checks err against {"error":{...}}; fields the golden file leaves out are not checked. */
static bool check_error(struct golden_case *c, const char *stage, int rc,
                        const struct core_err *err, const cJSON *want)
{
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(want, "error");
    const char *want_code = json_str(w, "code");
    const char *contains = json_str(w, "message_contains");
    const char *want_msg = json_str(w, "message");
    const struct {
        const char *key;
        long long got;
    } numbers[] = {
        {"http_status", err->http_status},
        {"provider_status", err->provider_status},
        {"retry_after_ms", (long long)err->retry_after_ms},
    };
    const struct {
        const char *key;
        const char *got;
    } strings[] = {
        {"type", err->type},
        {"err_code", err->err_code},
        {"param", err->param},
    };
    const cJSON *retryable = cJSON_GetObjectItemCaseSensitive(w, "retryable");

    if (rc == 0) {
        return fail(c, "%s succeeded, want %s", stage, want_code ? want_code : "an error");
    }
    if (rc != err->code) {
        return fail(c, "%s returned %d but err.code is %d", stage, rc, err->code);
    }
    if (want_code != NULL && strcmp(code_name(rc), want_code) != 0) {
        return fail(c, "%s: code %s, want %s (%s)", stage, code_name(rc), want_code, err->message);
    }
    for (size_t i = 0; i < ARRAY_LEN(numbers); i++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(w, numbers[i].key);
        if (cJSON_IsNumber(n) && (long long)n->valuedouble != numbers[i].got) {
            return fail(c, "%s: %s is %lld, want %lld", stage, numbers[i].key, numbers[i].got,
                        (long long)n->valuedouble);
        }
    }
    for (size_t i = 0; i < ARRAY_LEN(strings); i++) {
        const char *s = json_str(w, strings[i].key);
        if (s != NULL && strcmp(s, strings[i].got) != 0) {
            return fail(c, "%s: %s is \"%s\", want \"%s\"", stage, strings[i].key, strings[i].got,
                        s);
        }
    }
    if (cJSON_IsBool(retryable) && cJSON_IsTrue(retryable) != err->retryable) {
        return fail(c, "%s: retryable is %s, want %s", stage, err->retryable ? "true" : "false",
                    err->retryable ? "false" : "true");
    }
    if (contains != NULL && strstr(err->message, contains) == NULL) {
        return fail(c, "%s: message \"%s\" lacks \"%s\"", stage, err->message, contains);
    }
    if (want_msg != NULL && strcmp(err->message, want_msg) != 0) {
        return fail(c, "%s: message \"%s\", want \"%s\"", stage, err->message, want_msg);
    }
    return true;
}

static void reply_cleanup(struct golden_reply *r)
{
    cJSON_Delete(r->json);
    free(r->headers);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

/*
 * <prefix>.json (and <prefix>.body, the raw body, when present) as the worker would hand them
 * over. A missing <prefix>.json is an error when required, else a bare 200. The body is copied
 * into a buffer of exactly its length with no NUL after it, so an adapter that reads past
 * body_len trips AddressSanitizer.
 */
static bool reply_load(struct golden_case *c, const char *prefix, bool required,
                       struct golden_reply *r)
{
    char name[256];
    const cJSON *headers;
    const cJSON *body;
    const cJSON *status;
    const cJSON *now;
    const char *transport;
    const cJSON *h;
    char *text = NULL;
    size_t text_len = 0;
    size_t i = 0;
    bool missing;
    bool known;

    memset(r, 0, sizeof(*r));
    snprintf(name, sizeof(name), "%s.json", prefix);
    r->json = load_json(c->dir, name, &missing);
    if (r->json == NULL && (required || !missing)) {
        return fail(c, "%s %s", name, missing ? "is missing" : "is not valid JSON");
    }
    headers = cJSON_GetObjectItemCaseSensitive(r->json, "headers");
    body = cJSON_GetObjectItemCaseSensitive(r->json, "body");
    status = cJSON_GetObjectItemCaseSensitive(r->json, "status");
    now = cJSON_GetObjectItemCaseSensitive(r->json, "now_ms");
    transport = json_str(r->json, "transport");
    known = (transport == NULL);

    /* No status: 200, unless the reply never arrived. */
    if (cJSON_IsNumber(status)) {
        r->resp.status = status->valueint;
    } else {
        r->resp.status = (transport == NULL || strcmp(transport, "ok") == 0) ? 200 : 0;
    }
    r->resp.now_ms = cJSON_IsNumber(now) ? (int64_t)now->valuedouble : DEFAULT_NOW_MS;
    r->resp.transport_msg = json_str(r->json, "transport_msg");
    for (size_t t = 0; transport != NULL && t < ARRAY_LEN(transport_names); t++) {
        if (strcmp(transport, transport_names[t].name) == 0) {
            r->resp.transport = transport_names[t].transport;
            known = true;
        }
    }
    if (!known) {
        return fail(c, "%s: unknown transport \"%s\"", name, transport);
    }
    if (cJSON_GetArraySize(headers) > 0) {
        r->headers = calloc((size_t)cJSON_GetArraySize(headers), sizeof(*r->headers));
        if (r->headers == NULL) {
            return fail(c, "out of memory");
        }
        cJSON_ArrayForEach(h, headers)
        {
            if (!cJSON_IsString(h)) {
                return fail(c, "%s: header %s is not a string", name, h->string);
            }
            r->headers[i].name = h->string;
            r->headers[i].value = h->valuestring;
            i++;
        }
    }
    r->resp.headers = r->headers;
    r->resp.n_headers = i;

    snprintf(name, sizeof(name), "%s.body", prefix);
    text = case_slurp(c, name, &text_len);
    if (text == NULL) {
        if (cJSON_IsString(body)) {
            text = strdup(body->valuestring);
        } else if (body != NULL && !cJSON_IsNull(body)) {
            text = cJSON_PrintUnformatted(body);
        }
        text_len = text ? strlen(text) : 0;
    }
    if (text != NULL && text_len > 0) {
        r->body = malloc(text_len);
        if (r->body == NULL) {
            free(text);
            return fail(c, "out of memory");
        }
        memcpy(r->body, text, text_len);
        r->resp.body = r->body;
        r->resp.body_len = text_len;
    }
    free(text);
    return true;
}

static bool upstream_id_matches(const char *got, const cJSON *want)
{
    if (want == NULL || cJSON_IsNull(want)) {
        return got == NULL;
    }
    if (!cJSON_IsString(want) || got == NULL) {
        return false;
    }
    return strcmp(want->valuestring, "*") == 0 || strcmp(want->valuestring, got) == 0;
}

/* res->artifacts against expected "artifacts" (absent: there must be none). */
static bool check_artifacts(struct golden_case *c, const char *stage,
                            const struct adapter_result *res, const cJSON *want)
{
    size_t n = (size_t)cJSON_GetArraySize(want);
    const cJSON *w;
    size_t i = 0;

    if (want != NULL && !cJSON_IsArray(want)) {
        return fail(c, "%s: expected artifacts is not an array", stage);
    }
    if (n != res->n_artifacts) {
        return fail(c, "%s: %zu artifacts, want %zu", stage, res->n_artifacts, n);
    }
    cJSON_ArrayForEach(w, want)
    {
        const struct adapter_artifact *got = &res->artifacts[i++];
        const char *ct = json_str(w, "content_type");
        const cJSON *b64_len = cJSON_GetObjectItemCaseSensitive(w, "b64_len");
        char what[64];

        snprintf(what, sizeof(what), "%s artifact %zu", stage, i - 1);
        if (ct != NULL && strcmp(ct, got->content_type) != 0) {
            return fail(c, "%s: content_type is \"%s\", want \"%s\"", what, got->content_type, ct);
        }
        if (cJSON_IsNumber(b64_len)) {
            if (got->b64 == NULL || got->fetch.url != NULL) {
                return fail(c, "%s: want inline b64, got %s", what,
                            got->b64 ? "b64 and a fetch" : "no b64");
            }
            if ((double)strlen(got->b64) != b64_len->valuedouble) {
                return fail(c, "%s: b64 is %zu bytes long, want %.0f", what, strlen(got->b64),
                            b64_len->valuedouble);
            }
        }
        if (cJSON_GetObjectItemCaseSensitive(w, "url") != NULL) {
            if (got->fetch.url == NULL || got->b64 != NULL) {
                return fail(c, "%s: want a fetch, got %s", what,
                            got->b64 ? "inline b64" : "no fetch url");
            }
            if (!check_request(c, what, &got->fetch, w)) {
                return false;
            }
        }
    }
    return true;
}

/* A DONE result against {"result","usage","upstream_id","artifacts"}. */
static bool check_done(struct golden_case *c, const char *stage, const struct adapter_result *res,
                       const cJSON *want)
{
    const cJSON *want_usage = cJSON_GetObjectItemCaseSensitive(want, "usage");
    const cJSON *want_id = cJSON_GetObjectItemCaseSensitive(want, "upstream_id");
    char what[96];

    if (res->outcome != ADAPTER_DONE) {
        return fail(c, "%s: outcome is PENDING, want DONE", stage);
    }
    snprintf(what, sizeof(what), "%s result", stage);
    if (!json_equal(c, what, res->result, cJSON_GetObjectItemCaseSensitive(want, "result"))) {
        return false;
    }
    snprintf(what, sizeof(what), "%s usage", stage);
    if (want_usage == NULL || cJSON_IsNull(want_usage)) {
        if (res->usage != NULL) {
            return fail(c, "%s: usage given, want none", stage);
        }
    } else if (!json_equal(c, what, res->usage, want_usage)) {
        return false;
    }
    if (!upstream_id_matches(res->upstream_id, want_id)) {
        return fail(c, "%s: upstream_id is %s, want %s", stage,
                    res->upstream_id ? res->upstream_id : "(none)",
                    json_str(want, "upstream_id") ? json_str(want, "upstream_id") : "(none)");
    }
    return check_artifacts(c, stage, res, cJSON_GetObjectItemCaseSensitive(want, "artifacts"));
}

/* A PENDING result against {"pending":{"upstream_id","job","progress",...}}. */
static bool check_pending(struct golden_case *c, const char *stage,
                          const struct adapter_result *res, const cJSON *want)
{
    const cJSON *want_id = cJSON_GetObjectItemCaseSensitive(want, "upstream_id");
    const cJSON *want_job = cJSON_GetObjectItemCaseSensitive(want, "job");

    if (res->outcome != ADAPTER_PENDING) {
        return fail(c, "%s: outcome is DONE, want PENDING", stage);
    }
    if (res->result != NULL || res->n_artifacts != 0) {
        return fail(c, "%s: PENDING with a result or artifacts", stage);
    }
    if (want_id != NULL && !upstream_id_matches(res->upstream_id, want_id)) {
        return fail(c, "%s: upstream_id is %s, want %s", stage,
                    res->upstream_id ? res->upstream_id : "(none)",
                    json_str(want, "upstream_id") ? json_str(want, "upstream_id") : "(none)");
    }
    if (cJSON_IsNull(want_job) && res->job != NULL) {
        return fail(c, "%s: a job was saved, want none", stage);
    }
    if (want_job != NULL && !cJSON_IsNull(want_job) && !is_wildcard(want_job) &&
        !json_equal(c, "job", res->job, want_job)) {
        return false;
    }
    for (size_t i = 0; i < ARRAY_LEN(pending_numbers); i++) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(want, pending_numbers[i].key);
        const char *p = (const char *)res + pending_numbers[i].offset;
        long long got;

        if (!cJSON_IsNumber(n)) {
            continue;
        }
        if (pending_numbers[i].size == sizeof(int64_t)) {
            got = (long long)*(const int64_t *)(const void *)p;
        } else {
            got = (long long)*(const int *)(const void *)p;
        }
        if (got != (long long)n->valuedouble) {
            return fail(c, "%s: %s is %lld, want %lld", stage, pending_numbers[i].key, got,
                        (long long)n->valuedouble);
        }
    }
    return true;
}

/* What a parse hook returned against an expected file: error, pending, or a DONE result. */
static bool check_outcome(struct golden_case *c, const char *stage, int rc,
                          const struct core_err *err, const struct adapter_result *res,
                          const cJSON *want)
{
    const cJSON *pending = cJSON_GetObjectItemCaseSensitive(want, "pending");

    if (cJSON_GetObjectItemCaseSensitive(want, "error") != NULL) {
        if (res->result != NULL || res->usage != NULL || res->upstream_id != NULL ||
            res->job != NULL || res->artifacts != NULL) {
            return fail(c, "%s failed but left a result behind", stage);
        }
        return check_error(c, stage, rc, err, want);
    }
    if (rc != 0) {
        return fail(c, "%s failed: %s (%s)", stage, err->message, code_name(rc));
    }
    if (pending != NULL) {
        return check_pending(c, stage, res, pending);
    }
    return check_done(c, stage, res, want);
}

/* A request hook's output against a request file (or its {"error":{...}}). */
static bool check_built(struct golden_case *c, const char *stage, int rc,
                        const struct core_err *err, const struct adapter_request *req,
                        const cJSON *want)
{
    if (cJSON_GetObjectItemCaseSensitive(want, "error") != NULL) {
        return check_error(c, stage, rc, err, want);
    }
    if (rc != 0) {
        return fail(c, "%s failed: %s (%s)", stage, err->message, code_name(rc));
    }
    return check_request(c, stage, req, want);
}

static void poll_state_cleanup(struct poll_state *s)
{
    free(s->upstream_id);
    cJSON_Delete(s->job);
    memset(s, 0, sizeof(*s));
}

/*
 * Takes a PENDING result's upstream_id and job as the state for the next call. A field the result
 * leaves NULL keeps its earlier value, as the worker keeps the task's.
 */
static bool poll_state_take(struct golden_case *c, struct poll_state *s,
                            const struct adapter_result *res)
{
    if (res->upstream_id != NULL) {
        free(s->upstream_id);
        s->upstream_id = strdup(res->upstream_id);
        if (s->upstream_id == NULL) {
            return fail(c, "out of memory");
        }
    }
    if (res->job != NULL) {
        cJSON_Delete(s->job);
        s->job = cJSON_Duplicate(res->job, true);
        if (s->job == NULL) {
            return fail(c, "out of memory");
        }
    }
    return true;
}

/* One pollN step: build_poll against pollN_request.json, parse_poll against pollN_expected.json. */
static bool run_poll_step(struct golden_case *c, int k, struct poll_state *s)
{
    const struct adapter *a = c->a;
    struct adapter_call call = c->call;
    struct adapter_request req;
    struct adapter_result res;
    struct golden_reply reply;
    struct core_err err;
    cJSON *want_req = NULL;
    cJSON *want = NULL;
    char name[64];
    char stage[64];
    bool ok = false;
    int rc;

    memset(&req, 0, sizeof(req));
    memset(&res, 0, sizeof(res));
    memset(&reply, 0, sizeof(reply));
    call.upstream_id = s->upstream_id;
    call.job = s->job;
    snprintf(name, sizeof(name), "poll%d_request.json", k);
    snprintf(stage, sizeof(stage), "poll%d build_poll", k);
    if (!load_required(c, name, &want_req)) {
        goto out;
    }
    if (a->build_poll == NULL || a->parse_poll == NULL) {
        fail(c, "dialect %s has no build_poll/parse_poll", a->name);
        goto out;
    }
    core_err_clear(&err);
    rc = a->build_poll(&call, &req, &err);
    if (!check_built(c, stage, rc, &err, &req, want_req)) {
        goto out;
    }
    snprintf(name, sizeof(name), "poll%d_reply.json", k);
    if (rc != 0 && !case_has(c, name)) {
        ok = true;
        goto out;
    }
    snprintf(name, sizeof(name), "poll%d_reply", k);
    if (!reply_load(c, name, true, &reply)) {
        goto out;
    }
    snprintf(name, sizeof(name), "poll%d_expected.json", k);
    if (!load_required(c, name, &want)) {
        goto out;
    }
    snprintf(stage, sizeof(stage), "poll%d parse_poll", k);
    core_err_clear(&err);
    rc = a->parse_poll(&call, &reply.resp, &res, &err);
    if (!check_outcome(c, stage, rc, &err, &res, want)) {
        goto out;
    }
    ok = rc != 0 || res.outcome != ADAPTER_PENDING || poll_state_take(c, s, &res);
out:
    cJSON_Delete(want_req);
    cJSON_Delete(want);
    adapter_request_cleanup(&req);
    adapter_result_cleanup(&res);
    reply_cleanup(&reply);
    return ok;
}

/* The cancel (from the first PENDING state) and the polls that follow a PENDING expected.json. */
static bool run_job(struct golden_case *c)
{
    struct poll_state s = {0};
    bool ok = false;

    if (!poll_state_take(c, &s, &c->res)) {
        goto out;
    }
    if (case_has(c, "cancel_request.json")) {
        struct adapter_call call = c->call;
        struct adapter_request req = {0};
        struct core_err err;
        cJSON *want = NULL;
        int rc;
        bool cancel_ok;

        if (c->a->build_cancel == NULL) {
            fail(c, "dialect %s has no build_cancel", c->a->name);
            goto out;
        }
        if (!load_required(c, "cancel_request.json", &want)) {
            goto out;
        }
        call.upstream_id = s.upstream_id;
        call.job = s.job;
        core_err_clear(&err);
        rc = c->a->build_cancel(&call, &req, &err);
        cancel_ok = check_built(c, "build_cancel", rc, &err, &req, want);
        adapter_request_cleanup(&req);
        cJSON_Delete(want);
        if (!cancel_ok) {
            goto out;
        }
    }
    for (int k = 1; k <= MAX_POLL_STEPS; k++) {
        char name[64];

        snprintf(name, sizeof(name), "poll%d_request.json", k);
        if (!case_has(c, name)) {
            break;
        }
        if (!run_poll_step(c, k, &s)) {
            goto out;
        }
    }
    ok = true;
out:
    poll_state_cleanup(&s);
    return ok;
}

/*
 * Hands one event to the dialect, with data copied into a buffer of exactly len bytes: the hook's
 * contract says data is not NUL-terminated, and AddressSanitizer holds it to that. Events after
 * the dialect said done are not delivered, as the worker stops reading there.
 */
static int on_event(const char *event, const char *data, size_t len, void *arg)
{
    struct stream_run *s = arg;
    char *copy;

    if (s->done) {
        return 0;
    }
    copy = malloc(len ? len : 1);
    if (copy == NULL) {
        s->rc = CORE_ENOMEM;
        return 1;
    }
    memcpy(copy, data, len);
    if (s->response != NULL) {
        s->rc = responses_stream_event(s->response, event, copy, len, s->chunks, &s->done, &s->err);
    } else {
        s->rc = s->c->a->stream_event(s->state, event, copy, len, s->chunks, &s->done, &s->err);
    }
    free(copy);
    return s->rc != 0 ? 1 : 0;
}

/* The chunks of a finished stream through adapter_accum, into res. */
static bool accumulate(struct golden_case *c, const char *stage, const cJSON *chunks,
                       struct adapter_result *res)
{
    struct adapter_accum *acc = adapter_accum_new();
    const cJSON *chunk;
    bool ok = false;

    if (acc == NULL) {
        return fail(c, "out of memory");
    }
    cJSON_ArrayForEach(chunk, chunks)
    {
        if (adapter_accum_add(acc, chunk) != 0) {
            char *text = print_json(chunk);
            fail(c, "%s: adapter_accum_add refused %s", stage, text ? text : "?");
            free(text);
            goto out;
        }
    }
    if (adapter_accum_finish(acc, res) != 0) {
        fail(c, "%s: adapter_accum_finish failed", stage);
        goto out;
    }
    ok = true;
out:
    adapter_accum_free(acc);
    return ok;
}

/* Feeds sse (sse_len bytes) through the SSE parser to s, cut by split plan p. */
static bool feed_split(struct golden_case *c, const char *stage, size_t p, const char *sse,
                       size_t sse_len, struct stream_run *s)
{
    struct sse_parser *parser = sse_parser_new(MAX_DATA_FILE);
    size_t at = 0;
    size_t step = 0;
    int frc = 0;

    if (parser == NULL) {
        return fail(c, "%s: out of memory", stage);
    }
    while (at < sse_len && frc == 0) {
        size_t n = split_plans[p].sizes[step];
        step = (step + 1 < ARRAY_LEN(split_plans[p].sizes) && split_plans[p].sizes[step + 1] != 0)
                   ? step + 1
                   : 0;
        if (n > sse_len - at) {
            n = sse_len - at;
        }
        frc = sse_parser_feed(parser, sse + at, n, on_event, s);
        at += n;
    }
    sse_parser_free(parser);
    if (frc != 0 && s->rc == 0) {
        return fail(c, "%s: the SSE parser failed (%d)", stage, frc);
    }
    return true;
}

/*
 * One pass of reply.sse, cut by split plan p, through the SSE parser and stream_event; then the
 * chunks, done, and the accumulated result (or the stream's error) against the expected files.
 */
static bool run_stream_plan(struct golden_case *c, size_t p, const char *sse, size_t sse_len,
                            const cJSON *want_chunks)
{
    struct stream_run s;
    struct adapter_result res;
    char stage[96];
    bool ok = false;

    memset(&s, 0, sizeof(s));
    memset(&res, 0, sizeof(res));
    core_err_clear(&s.err);
    s.c = c;
    s.state = c->a->stream_new(&c->call);
    s.chunks = cJSON_CreateArray();
    snprintf(stage, sizeof(stage), "stream (split %s)", split_plans[p].name);
    if (s.state == NULL || s.chunks == NULL) {
        fail(c, "%s: stream_new or setup returned NULL", stage);
        goto out;
    }
    if (!feed_split(c, stage, p, sse, sse_len, &s)) {
        goto out;
    }
    if (s.rc != 0) {
        if (cJSON_GetObjectItemCaseSensitive(c->expected, "error") == NULL) {
            fail(c, "%s: stream_event failed: %s (%s)", stage, s.err.message, code_name(s.rc));
            goto out;
        }
        snprintf(stage, sizeof(stage), "stream_event (split %s)", split_plans[p].name);
        if (!check_error(c, stage, s.rc, &s.err, c->expected)) {
            goto out;
        }
        ok = want_chunks == NULL || json_equal(c, "chunks", s.chunks, want_chunks);
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(c->expected, "error") != NULL) {
        fail(c, "%s: the stream succeeded, want an error", stage);
        goto out;
    }
    if (want_chunks == NULL) {
        fail(c, "expected_chunks.json is missing");
        goto out;
    }
    if (!json_equal(c, "chunks", s.chunks, want_chunks)) {
        goto out;
    }
    if (!s.done) {
        fail(c, "%s: the stream ended without done", stage);
        goto out;
    }
    if (!accumulate(c, stage, s.chunks, &res)) {
        goto out;
    }
    snprintf(stage, sizeof(stage), "accum (split %s)", split_plans[p].name);
    ok = json_equal(c, "accumulated result", res.result,
                    cJSON_GetObjectItemCaseSensitive(c->expected, "result"));
    if (ok) {
        const cJSON *want_usage = cJSON_GetObjectItemCaseSensitive(c->expected, "usage");
        if (want_usage == NULL || cJSON_IsNull(want_usage)) {
            ok = res.usage == NULL || fail(c, "%s: usage given, want none", stage);
        } else {
            ok = json_equal(c, "accumulated usage", res.usage, want_usage);
        }
    }
out:
    if (s.state != NULL) {
        c->a->stream_free(s.state);
    }
    cJSON_Delete(s.chunks);
    adapter_result_cleanup(&res);
    return ok;
}

static bool run_stream(struct golden_case *c)
{
    cJSON *want_chunks = NULL;
    char *sse = NULL;
    size_t sse_len = 0;
    bool missing = false;
    bool ok = true;

    if (c->a->stream_new == NULL || c->a->stream_event == NULL || c->a->stream_free == NULL) {
        return fail(c, "dialect %s has no streaming hooks", c->a->name);
    }
    sse = case_slurp(c, "reply.sse", &sse_len);
    if (sse == NULL) {
        return fail(c, "reply.sse cannot be read");
    }
    want_chunks = load_json(c->dir, "expected_chunks.json", &missing);
    if (want_chunks == NULL && !missing) {
        ok = fail(c, "expected_chunks.json is not valid JSON");
    }
    for (size_t p = 0; ok && p < ARRAY_LEN(split_plans); p++) {
        ok = run_stream_plan(c, p, sse, sse_len, want_chunks);
    }
    cJSON_Delete(want_chunks);
    free(sse);
    return ok;
}

/*
 * Checks that events' sequence numbers run 0, 1, 2, ... whatever expected_events.json says (a
 * "*" there would not catch a gap).
 */
static bool check_sequence(struct golden_case *c, const char *stage, const cJSON *events)
{
    const cJSON *ev;
    int want = 0;

    cJSON_ArrayForEach(ev, events)
    {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(ev, "sequence_number");
        if (!cJSON_IsNumber(n) || n->valuedouble != want) {
            return fail(c, "%s: event %d has sequence_number %g", stage, want,
                        cJSON_IsNumber(n) ? n->valuedouble : -1.0);
        }
        want++;
    }
    return true;
}

/*
 * One pass of a response case's reply.sse, cut by split plan p, through responses_stream_start /
 * _event (and _fail when the stream fails); the events against expected_events.json, then the
 * result (responses_stream_result) or the error against expected.json.
 */
static bool run_response_stream_plan(struct golden_case *c, size_t p, const char *sse,
                                     size_t sse_len, const cJSON *want_events)
{
    struct stream_run s;
    struct adapter_result res;
    char stage[96];
    bool ok = false;

    memset(&s, 0, sizeof(s));
    memset(&res, 0, sizeof(res));
    core_err_clear(&s.err);
    s.c = c;
    s.response = responses_stream_new(c->a, &c->call, GOLDEN_RESPONSE_ID, GOLDEN_CREATED_S);
    s.chunks = cJSON_CreateArray();
    snprintf(stage, sizeof(stage), "response stream (split %s)", split_plans[p].name);
    if (s.response == NULL || s.chunks == NULL) {
        fail(c, "%s: responses_stream_new or setup returned NULL", stage);
        goto out;
    }
    if (responses_stream_start(s.response, s.chunks) != 0) {
        fail(c, "%s: responses_stream_start failed", stage);
        goto out;
    }
    if (!feed_split(c, stage, p, sse, sse_len, &s)) {
        goto out;
    }
    if (s.rc != 0) {
        if (cJSON_GetObjectItemCaseSensitive(c->expected, "error") == NULL) {
            fail(c, "%s: responses_stream_event failed: %s (%s)", stage, s.err.message,
                 code_name(s.rc));
            goto out;
        }
        if (!check_error(c, stage, s.rc, &s.err, c->expected)) {
            goto out;
        }
        if (responses_stream_fail(s.response, &s.err, s.chunks) != 0) {
            fail(c, "%s: responses_stream_fail failed", stage);
            goto out;
        }
        ok = check_sequence(c, stage, s.chunks) && want_events != NULL &&
             json_equal(c, "events", s.chunks, want_events);
        if (!ok && want_events == NULL) {
            fail(c, "expected_events.json is missing");
        }
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(c->expected, "error") != NULL) {
        fail(c, "%s: the stream succeeded, want an error", stage);
        goto out;
    }
    if (want_events == NULL) {
        fail(c, "expected_events.json is missing");
        goto out;
    }
    if (!check_sequence(c, stage, s.chunks) || !json_equal(c, "events", s.chunks, want_events)) {
        goto out;
    }
    if (!s.done) {
        fail(c, "%s: the stream ended without done", stage);
        goto out;
    }
    if (responses_stream_result(s.response, &res) != 0) {
        fail(c, "%s: responses_stream_result failed", stage);
        goto out;
    }
    ok = check_done(c, stage, &res, c->expected);
out:
    responses_stream_free(s.response);
    cJSON_Delete(s.chunks);
    adapter_result_cleanup(&res);
    return ok;
}

static bool run_response_stream(struct golden_case *c)
{
    cJSON *want_events = NULL;
    char *sse = NULL;
    size_t sse_len = 0;
    bool missing = false;
    bool ok = true;

    sse = case_slurp(c, "reply.sse", &sse_len);
    if (sse == NULL) {
        return fail(c, "reply.sse cannot be read");
    }
    want_events = load_json(c->dir, "expected_events.json", &missing);
    if (want_events == NULL && !missing) {
        ok = fail(c, "expected_events.json is not valid JSON");
    }
    for (size_t p = 0; ok && p < ARRAY_LEN(split_plans); p++) {
        ok = run_response_stream_plan(c, p, sse, sse_len, want_events);
    }
    cJSON_Delete(want_events);
    free(sse);
    return ok;
}

static bool run_case(struct golden_case *c)
{
    const struct adapter *a = c->a;
    struct golden_reply reply;
    struct core_err err;
    const cJSON *max_tokens;
    const char *kind;
    bool has_sse = case_has(c, "reply.sse");
    bool ok = false;
    int op;
    int rc;

    memset(&reply, 0, sizeof(reply));
    if (!load_required(c, "input.json", &c->input) ||
        !load_required(c, "target.json", &c->target_json) ||
        !load_required(c, "request.json", &c->request)) {
        return false;
    }
    c->target.provider = json_str(c->target_json, "provider");
    c->target.base_url = json_str(c->target_json, "base_url");
    c->target.api_key = json_str(c->target_json, "api_key");
    c->target.model = json_str(c->target_json, "model");
    max_tokens = cJSON_GetObjectItemCaseSensitive(c->target_json, "default_max_tokens");
    c->target.default_max_tokens = cJSON_IsNumber(max_tokens) ? (long)max_tokens->valuedouble : 0;
    c->target.responses_native =
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->target_json, "responses_native"));
    kind = json_str(c->target_json, "kind");
    op = adapter_op_from_kind(kind ? kind : "chat");
    if (op < 0) {
        return fail(c, "target.json: unknown kind \"%s\"", kind);
    }

    c->call.op = (enum adapter_op)op;
    c->call.input = c->input;
    c->call.target = &c->target;
    c->call.callback_url = json_str(c->target_json, "callback_url");
    c->call.stream = (op == ADAPTER_OP_CHAT || op == ADAPTER_OP_RESPONSE) &&
                     cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(c->input, "stream"));
    if (has_sse && !c->call.stream) {
        return fail(c, "reply.sse given but the call does not stream");
    }
    if (a->build_request == NULL || a->parse_response == NULL) {
        return fail(c, "dialect %s has no build_request/parse_response", a->name);
    }
    core_err_clear(&err);
    if (op == ADAPTER_OP_RESPONSE) {
        rc = responses_build_request(a, &c->call, &c->req, &err);
    } else {
        rc = a->build_request(&c->call, &c->req, &err);
    }
    if (!check_built(c, "build_request", rc, &err, &c->req, c->request)) {
        return false;
    }
    if (rc != 0 && !case_has(c, "reply.json") && !has_sse) {
        return true;
    }

    if (!reply_load(c, "reply", !has_sse, &reply) ||
        !load_required(c, "expected.json", &c->expected)) {
        goto out;
    }
    if (has_sse && reply.resp.transport == ADAPTER_TRANSPORT_OK && reply.resp.status >= 200 &&
        reply.resp.status <= 299) {
        ok = op == ADAPTER_OP_RESPONSE ? run_response_stream(c) : run_stream(c);
        goto out;
    }
    core_err_clear(&err);
    if (op == ADAPTER_OP_RESPONSE) {
        rc = responses_parse_response(a, &c->call, GOLDEN_RESPONSE_ID, GOLDEN_CREATED_S,
                                      &reply.resp, &c->res, &err);
    } else {
        rc = a->parse_response(&c->call, &reply.resp, &c->res, &err);
    }
    if (!check_outcome(c, "parse_response", rc, &err, &c->res, c->expected)) {
        goto out;
    }
    if (rc == 0 && c->res.outcome == ADAPTER_PENDING) {
        ok = run_job(c);
    } else if (case_has(c, "poll1_request.json") || case_has(c, "cancel_request.json")) {
        fail(c, "poll or cancel files need a PENDING expected.json");
    } else {
        ok = true;
    }
out:
    reply_cleanup(&reply);
    return ok;
}

static void case_cleanup(struct golden_case *c)
{
    cJSON_Delete(c->input);
    cJSON_Delete(c->target_json);
    cJSON_Delete(c->request);
    cJSON_Delete(c->expected);
    adapter_request_cleanup(&c->req);
    adapter_result_cleanup(&c->res);
}

static int only_dirs(const struct dirent *d)
{
    return d->d_name[0] != '.';
}

/*
 * The subdirectories of path in name order, skipping hidden ones. Returns how many, -1 when path
 * cannot be read. Caller frees each entry and *list (which may be NULL when there are none).
 */
static int list_dirs(const char *path, struct dirent ***list)
{
    int n = scandir(path, list, only_dirs, alphasort);
    int k = 0;

    for (int i = 0; i < n; i++) {
        char full[4096];
        struct stat st;
        snprintf(full, sizeof(full), "%s/%s", path, (*list)[i]->d_name);
        if (stat(full, &st) == 0 && S_ISDIR(st.st_mode)) {
            (*list)[k++] = (*list)[i];
        } else {
            free((*list)[i]);
        }
    }
    return n < 0 ? -1 : k;
}

int main(void)
{
    const char *root = getenv("SLUICE_TEST_DATA");
    struct dirent **dialects = NULL;
    int n_dialects;
    int passed = 0;
    int failed = 0;

    if (root == NULL || root[0] == '\0') {
        root = "tests/data";
    }
    n_dialects = list_dirs(root, &dialects);
    if (n_dialects < 0) {
        fprintf(stderr, "cannot read %s: %s\n", root, strerror(errno));
    }
    for (int d = 0; d < n_dialects; d++) {
        const char *dialect = dialects[d]->d_name;
        const struct adapter *a = adapter_find(dialect);
        char dpath[4096];
        struct dirent **cases = NULL;
        int n_cases;

        snprintf(dpath, sizeof(dpath), "%s/%s", root, dialect);
        n_cases = list_dirs(dpath, &cases);
        if (a == NULL || n_cases < 0) {
            printf("FAIL %s/*: %s\n", dialect, a ? "cannot list cases" : "no adapter of that name");
            failed++;
        }
        for (int i = 0; i < n_cases; i++) {
            char cpath[8192];
            struct golden_case c;

            if (a == NULL) {
                free(cases[i]);
                continue;
            }
            memset(&c, 0, sizeof(c));
            snprintf(cpath, sizeof(cpath), "%s/%s", dpath, cases[i]->d_name);
            c.dir = cpath;
            c.a = a;
            if (run_case(&c)) {
                printf("ok %s/%s\n", dialect, cases[i]->d_name);
                passed++;
            } else {
                printf("FAIL %s/%s: %s\n", dialect, cases[i]->d_name, c.why);
                failed++;
            }
            case_cleanup(&c);
            free(cases[i]);
        }
        free(cases);
        free(dialects[d]);
    }
    free(dialects);
    printf("%d passed, %d failed\n", passed, failed);
    return (failed == 0 && passed > 0) ? 0 : 1;
}
