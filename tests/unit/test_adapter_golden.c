/*
 * tests/unit/test_adapter_golden.c — the adapter golden cases, run as data.
 *
 * Walks $SLUICE_TEST_DATA/<dialect>/<case>/ for every dialect directory, finds the adapter of that
 * name, and per case:
 *   input.json     the client's OpenAI request body
 *   target.json    {"provider","base_url","api_key","model"} and optionally "kind" (default chat)
 *   request.json   the exact upstream request {"method","url","headers","body"} with the api key
 *                  written as ***, or {"error":{...}} when build_request must refuse the input
 *   reply.json     {"status","headers","body","transport","transport_msg","now_ms"}; a string body
 *                  is sent as raw bytes, any other JSON value as its text
 *   expected.json  {"result","usage","upstream_id"} or {"error":{"code","http_status",
 *                  "provider_status","retryable","retry_after_ms","type","err_code","param",
 *                  "message","message_contains"}} (fields left out are not checked)
 * reply.json and expected.json may be left out of a case whose request.json is an error.
 * Bodies and results are compared as JSON, not as text. Prints `ok <dialect>/<case>` or
 * `FAIL <dialect>/<case>: <why>` per case and `N passed, N failed` last.
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "adapters/adapter.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define MAX_DATA_FILE (1024u * 1024u)
#define DEFAULT_NOW_MS 1700000000000LL
#define WHY_LEN 2048

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

/* One case's files and what running it allocated; case_cleanup() frees it all. */
struct golden_case {
    const char *dir;
    cJSON *input;
    cJSON *target_json;
    cJSON *request;
    cJSON *reply;
    cJSON *expected;
    struct adapter_target target;
    struct adapter_call call;
    struct adapter_request req;
    struct adapter_result res;
    struct adapter_header *headers;
    char *body;
    char why[WHY_LEN];
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

/* dir/name parsed as JSON; NULL when the file is missing (*missing set) or not JSON. */
static cJSON *load_json(const char *dir, const char *name, bool *missing)
{
    char path[4096];
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

static bool json_equal(struct golden_case *c, const char *what, const cJSON *got, const cJSON *want)
{
    char *g;
    char *w;

    if (got != NULL && want != NULL && cJSON_Compare(got, want, true)) {
        return true;
    }
    g = print_json(got);
    w = print_json(want);
    fail(c, "%s differs: got %s, want %s", what, g ? g : "?", w ? w : "?");
    free(g);
    free(w);
    return false;
}

/* Compares one "Name: value" line the adapter built with the expected lower-case headers. */
static bool check_header(struct golden_case *c, const char *line, const cJSON *want)
{
    char name[256];
    const char *colon = strchr(line, ':');
    const char *value;
    const char *expected;
    char *masked;
    bool ok;
    size_t n;

    if (colon == NULL || (size_t)(colon - line) >= sizeof(name)) {
        return fail(c, "malformed header line \"%s\"", line);
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
        return fail(c, "unexpected header \"%s\"", name);
    }
    masked = mask_key(value, c->target.api_key);
    ok = masked != NULL && strcmp(masked, expected) == 0;
    if (!ok) {
        fail(c, "header %s is \"%s\", want \"%s\"", name, masked ? masked : "?", expected);
    }
    free(masked);
    return ok;
}

static bool check_request(struct golden_case *c)
{
    const cJSON *want_headers = cJSON_GetObjectItemCaseSensitive(c->request, "headers");
    const cJSON *want_body = cJSON_GetObjectItemCaseSensitive(c->request, "body");
    const char *want_method = json_str(c->request, "method");
    const char *want_url = json_str(c->request, "url");
    char *url = NULL;
    cJSON *body = NULL;
    bool ok = false;

    if (want_method == NULL || strcmp(c->req.method, want_method) != 0) {
        fail(c, "method is %s, want %s", c->req.method, want_method ? want_method : "(none)");
        goto out;
    }
    url = c->req.url ? mask_key(c->req.url, c->target.api_key) : NULL;
    if (url == NULL || want_url == NULL || strcmp(url, want_url) != 0) {
        fail(c, "url is %s, want %s", url ? url : "(none)", want_url ? want_url : "(none)");
        goto out;
    }
    if ((size_t)cJSON_GetArraySize(want_headers) != c->req.n_headers) {
        fail(c, "%zu headers built, want %d", c->req.n_headers, cJSON_GetArraySize(want_headers));
        goto out;
    }
    for (size_t i = 0; i < c->req.n_headers; i++) {
        if (!check_header(c, c->req.headers[i], want_headers)) {
            goto out;
        }
    }
    if (want_body == NULL || cJSON_IsNull(want_body)) {
        ok = c->req.body == NULL || fail(c, "a body was built, want none");
        goto out;
    }
    if (c->req.body == NULL || strlen(c->req.body) != c->req.body_len) {
        fail(c, "body missing or body_len wrong");
        goto out;
    }
    body = cJSON_ParseWithLength(c->req.body, c->req.body_len);
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

/*
 * reply.json as the worker would hand it over. The body is copied into a buffer of exactly its
 * length with no NUL after it, so an adapter that reads past body_len trips AddressSanitizer.
 */
static bool build_response(struct golden_case *c, struct adapter_response *resp)
{
    const cJSON *headers = cJSON_GetObjectItemCaseSensitive(c->reply, "headers");
    const cJSON *body = cJSON_GetObjectItemCaseSensitive(c->reply, "body");
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(c->reply, "status");
    const cJSON *now = cJSON_GetObjectItemCaseSensitive(c->reply, "now_ms");
    const char *transport = json_str(c->reply, "transport");
    const cJSON *h;
    char *text = NULL;
    size_t i = 0;
    bool known = (transport == NULL);

    memset(resp, 0, sizeof(*resp));
    resp->status = cJSON_IsNumber(status) ? status->valueint : 0;
    resp->now_ms = cJSON_IsNumber(now) ? (int64_t)now->valuedouble : DEFAULT_NOW_MS;
    resp->transport_msg = json_str(c->reply, "transport_msg");
    for (size_t t = 0; transport != NULL && t < ARRAY_LEN(transport_names); t++) {
        if (strcmp(transport, transport_names[t].name) == 0) {
            resp->transport = transport_names[t].transport;
            known = true;
        }
    }
    if (!known) {
        return fail(c, "reply.json: unknown transport \"%s\"", transport);
    }
    if (cJSON_GetArraySize(headers) > 0) {
        c->headers = calloc((size_t)cJSON_GetArraySize(headers), sizeof(*c->headers));
        if (c->headers == NULL) {
            return fail(c, "out of memory");
        }
        cJSON_ArrayForEach(h, headers)
        {
            if (!cJSON_IsString(h)) {
                return fail(c, "reply.json: header %s is not a string", h->string);
            }
            c->headers[i].name = h->string;
            c->headers[i].value = h->valuestring;
            i++;
        }
    }
    resp->headers = c->headers;
    resp->n_headers = i;
    if (cJSON_IsString(body)) {
        text = strdup(body->valuestring);
    } else if (body != NULL && !cJSON_IsNull(body)) {
        text = cJSON_PrintUnformatted(body);
    }
    if (text != NULL && text[0] != '\0') {
        resp->body_len = strlen(text);
        c->body = malloc(resp->body_len);
        if (c->body == NULL) {
            free(text);
            return fail(c, "out of memory");
        }
        memcpy(c->body, text, resp->body_len);
        resp->body = c->body;
    }
    free(text);
    return true;
}

static bool check_result(struct golden_case *c)
{
    const cJSON *want_usage = cJSON_GetObjectItemCaseSensitive(c->expected, "usage");
    const char *want_id = json_str(c->expected, "upstream_id");

    if (!json_equal(c, "result", c->res.result,
                    cJSON_GetObjectItemCaseSensitive(c->expected, "result"))) {
        return false;
    }
    if (want_usage == NULL || cJSON_IsNull(want_usage)) {
        if (c->res.usage != NULL) {
            return fail(c, "usage given, want none");
        }
    } else if (!json_equal(c, "usage", c->res.usage, want_usage)) {
        return false;
    }
    if ((want_id == NULL) != (c->res.upstream_id == NULL) ||
        (want_id != NULL && strcmp(want_id, c->res.upstream_id) != 0)) {
        return fail(c, "upstream_id is %s, want %s",
                    c->res.upstream_id ? c->res.upstream_id : "(none)",
                    want_id ? want_id : "(none)");
    }
    return true;
}

static bool run_case(const struct adapter *a, struct golden_case *c)
{
    struct adapter_response resp;
    struct core_err err;
    const char *kind;
    int op;
    int rc;
    bool missing;

    if (!load_required(c, "input.json", &c->input) ||
        !load_required(c, "target.json", &c->target_json) ||
        !load_required(c, "request.json", &c->request)) {
        return false;
    }
    c->target.provider = json_str(c->target_json, "provider");
    c->target.base_url = json_str(c->target_json, "base_url");
    c->target.api_key = json_str(c->target_json, "api_key");
    c->target.model = json_str(c->target_json, "model");
    kind = json_str(c->target_json, "kind");
    op = adapter_op_from_kind(kind ? kind : "chat");
    if (op < 0) {
        return fail(c, "target.json: unknown kind \"%s\"", kind);
    }

    c->call.op = (enum adapter_op)op;
    c->call.input = c->input;
    c->call.target = &c->target;
    if (a->build_request == NULL) {
        return fail(c, "dialect %s has no build_request", a->name);
    }
    core_err_clear(&err);
    rc = a->build_request(&c->call, &c->req, &err);
    if (cJSON_GetObjectItemCaseSensitive(c->request, "error") != NULL) {
        if (!check_error(c, "build_request", rc, &err, c->request)) {
            return false;
        }
        c->reply = load_json(c->dir, "reply.json", &missing);
        if (missing) {
            return true;
        }
    } else if (rc != 0) {
        return fail(c, "build_request failed: %s (%s)", err.message, code_name(rc));
    } else if (!check_request(c)) {
        return false;
    }

    if (c->reply == NULL && !load_required(c, "reply.json", &c->reply)) {
        return false;
    }
    if (!load_required(c, "expected.json", &c->expected) || !build_response(c, &resp)) {
        return false;
    }
    core_err_clear(&err);
    rc = a->parse_response(&c->call, &resp, &c->res, &err);
    if (cJSON_GetObjectItemCaseSensitive(c->expected, "error") != NULL) {
        if (c->res.result != NULL || c->res.usage != NULL || c->res.upstream_id != NULL) {
            return fail(c, "parse_response failed but left a result behind");
        }
        return check_error(c, "parse_response", rc, &err, c->expected);
    }
    if (rc != 0) {
        return fail(c, "parse_response failed: %s (%s)", err.message, code_name(rc));
    }
    return check_result(c);
}

static void case_cleanup(struct golden_case *c)
{
    cJSON_Delete(c->input);
    cJSON_Delete(c->target_json);
    cJSON_Delete(c->request);
    cJSON_Delete(c->reply);
    cJSON_Delete(c->expected);
    adapter_request_cleanup(&c->req);
    adapter_result_cleanup(&c->res);
    free(c->headers);
    free(c->body);
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
            if (run_case(a, &c)) {
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
