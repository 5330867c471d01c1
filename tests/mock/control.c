/*
 * tests/mock/control.c — the control side: /healthz, /_mock/stats, /_mock/config, /_mock/reset,
 * /_mock/blob, the switches' table and the ring of recorded requests.
 *
 * Control endpoints are never delayed, faulted, authenticated or counted.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/keyvalq_struct.h>

#include "tests/mock/mock.h"

enum key_type { KEY_INT, KEY_DOUBLE, KEY_BOOL, KEY_STRING };

struct config_key {
    const char *name; /* key in /_mock/config */
    const char *flag; /* command-line flag; NULL: /_mock/config only */
    enum key_type type;
    size_t offset;
    double min, max;  /* numbers only */
    bool flag_clears; /* a boolean flag that sets false (--no-faults-on-polls) */
};

#define CFG(field) offsetof(struct mock_config, field)
static const struct config_key config_keys[] = {
    {"latency_ms", "latency-ms", KEY_INT, CFG(latency_ms), 0, MOCK_HANG_MS, false},
    {"error_rate", "error-rate", KEY_DOUBLE, CFG(error_rate), 0, 1, false},
    {"error_status", "error-status", KEY_INT, CFG(error_status), 400, 599, false},
    {"fail_first", "fail-first", KEY_INT, CFG(fail_first), 0, 1e15, false},
    {"rate_limit_rps", "rate-limit", KEY_DOUBLE, CFG(rate_limit_rps), 0, 1e9, false},
    {"retry_after_s", "retry-after", KEY_INT, CFG(retry_after_s), 0, 86400, false},
    {"hang", "hang", KEY_BOOL, CFG(hang), 0, 0, false},
    {"malformed", "malformed", KEY_BOOL, CFG(malformed), 0, 0, false},
    {"error_message", "error-message", KEY_STRING, CFG(error_message), 0, 0, false},
    {"reset", "reset", KEY_BOOL, CFG(reset), 0, 0, false},
    {"huge_body_bytes", "huge-body-bytes", KEY_INT, CFG(huge_body_bytes), 0, MOCK_HUGE_MAX, false},
    {"faults_on_polls", "no-faults-on-polls", KEY_BOOL, CFG(faults_on_polls), 0, 0, true},
    {"job_ms", "job-ms", KEY_INT, CFG(job_ms), 0, MOCK_JOB_MS_MAX, false},
    {"stream_chunk_ms", "stream-chunk-ms", KEY_INT, CFG(stream_chunk_ms), 0, 60000, false},
    /* run-time only (no flag): where a provider's reply points its artifacts */
    {"artifact_url", NULL, KEY_STRING, CFG(artifact_url), 0, 0, false},
    {"content_redirect", NULL, KEY_STRING, CFG(content_redirect), 0, 0, false},
};
#define N_CONFIG_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

static const struct {
    enum evhttp_cmd_type method;
    const char *name;
} method_names[] = {
    {EVHTTP_REQ_GET, "GET"},     {EVHTTP_REQ_POST, "POST"},       {EVHTTP_REQ_HEAD, "HEAD"},
    {EVHTTP_REQ_PUT, "PUT"},     {EVHTTP_REQ_DELETE, "DELETE"},   {EVHTTP_REQ_OPTIONS, "OPTIONS"},
    {EVHTTP_REQ_TRACE, "TRACE"}, {EVHTTP_REQ_CONNECT, "CONNECT"}, {EVHTTP_REQ_PATCH, "PATCH"},
};

static const char *method_name(enum evhttp_cmd_type method)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (method_names[i].method == method) {
            return method_names[i].name;
        }
    }
    return "OTHER";
}

/* ---- request recording ---- */

void control_ring_clear(struct ring *r)
{
    for (size_t i = 0; r->slots != NULL && i < r->cap; i++) {
        free(r->slots[i].blob);
        r->slots[i].blob = NULL;
    }
    r->next = 0;
    r->count = 0;
}

/* Copies method, path, query, headers (names lower-cased) and up to 1 MiB of body. */
void control_record(struct mock *m, struct exchange *x, const char *path, const char *query)
{
    struct ring *r = &m->ring;
    if (r->cap == 0) {
        return;
    }
    query = query != NULL ? query : "";
    struct evkeyvalq *headers = evhttp_request_get_input_headers(x->req);
    struct evkeyval *kv;
    size_t path_len = strlen(path), query_len = strlen(query), headers_len = 0;
    size_t body_len = x->body_len > MOCK_RECORD_BODY_MAX ? MOCK_RECORD_BODY_MAX : x->body_len;
    for (kv = headers->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        headers_len += strlen(kv->key) + strlen(kv->value) + 2;
    }
    char *blob = malloc(path_len + 1 + query_len + 1 + headers_len + body_len + 1);
    if (blob == NULL) {
        return;
    }
    memcpy(blob, path, path_len + 1);
    memcpy(blob + path_len + 1, query, query_len + 1);
    char *p = blob + path_len + 1 + query_len + 1;
    for (kv = headers->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        for (const char *k = kv->key; *k != '\0'; k++) {
            *p++ = (char)(*k >= 'A' && *k <= 'Z' ? *k - 'A' + 'a' : *k);
        }
        *p++ = '\0';
        size_t vlen = strlen(kv->value) + 1;
        memcpy(p, kv->value, vlen);
        p += vlen;
    }
    if (body_len > 0) {
        memcpy(p, x->body, body_len);
    }
    struct record *rec = &r->slots[r->next];
    struct timeval now;
    event_base_gettimeofday_cached(m->base, &now);
    free(rec->blob);
    *rec = (struct record){
        .blob = blob,
        .path_len = path_len,
        .query_len = query_len,
        .headers_len = headers_len,
        .body_len = body_len,
        .method = evhttp_request_get_command(x->req),
        .body_truncated = body_len < x->body_len,
        .at_ms = (long long)now.tv_sec * 1000 + now.tv_usec / 1000,
    };
    r->next = (r->next + 1) % r->cap;
    if (r->count < r->cap) {
        r->count++;
    }
}

static cJSON *record_json(const struct record *rec)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *headers = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", method_name(rec->method));
    cJSON_AddStringToObject(o, "path", rec->blob);
    if (rec->query_len > 0) {
        cJSON_AddStringToObject(o, "query", rec->blob + rec->path_len + 1);
    }
    const char *p = rec->blob + rec->path_len + 1 + rec->query_len + 1;
    const char *end = p + rec->headers_len;
    while (p < end) {
        const char *name = p;
        const char *value = name + strlen(name) + 1;
        p = value + strlen(value) + 1;
        cJSON *prev = cJSON_GetObjectItemCaseSensitive(headers, name);
        if (cJSON_IsString(prev)) { /* a repeated header: join as HTTP would */
            size_t len = strlen(prev->valuestring) + strlen(value) + 3;
            char *joined = malloc(len);
            if (joined != NULL) {
                snprintf(joined, len, "%s, %s", prev->valuestring, value);
                cJSON_ReplaceItemInObjectCaseSensitive(headers, name, cJSON_CreateString(joined));
                free(joined);
            }
        } else {
            cJSON_AddStringToObject(headers, name, value);
        }
    }
    cJSON_AddItemToObject(o, "headers", headers);
    cJSON *body = NULL;
    if (rec->body_len > 0) {
        body = cJSON_ParseWithLength(end, rec->body_len);
        if (body == NULL) {
            char *raw = malloc(rec->body_len + 1);
            if (raw != NULL) {
                memcpy(raw, end, rec->body_len);
                raw[rec->body_len] = '\0';
                body = cJSON_CreateString(raw);
                free(raw);
            }
        }
    }
    cJSON_AddItemToObject(o, "body", body != NULL ? body : cJSON_CreateNull());
    if (rec->body_truncated) {
        cJSON_AddTrueToObject(o, "body_truncated");
    }
    cJSON_AddNumberToObject(o, "at_ms", (double)rec->at_ms);
    return o;
}

/* ---- config ---- */

/* The string switch a key names, inside c. */
static char **config_string(struct mock_config *c, const struct config_key *k)
{
    return (char **)((char *)c + k->offset);
}

void config_cleanup(struct mock_config *c)
{
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        if (config_keys[i].type == KEY_STRING) {
            free(*config_string(c, &config_keys[i]));
            *config_string(c, &config_keys[i]) = NULL;
        }
    }
}

/* A copy with strings of its own; on failure dst holds no string (nothing to clean up). */
int config_copy(struct mock_config *dst, const struct mock_config *src)
{
    *dst = *src;
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        if (config_keys[i].type == KEY_STRING) {
            *config_string(dst, &config_keys[i]) = NULL;
        }
    }
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        const struct config_key *k = &config_keys[i];
        const char *s =
            k->type == KEY_STRING ? *(char *const *)((const char *)src + k->offset) : NULL;

        if (s != NULL && (*config_string(dst, k) = strdup(s)) == NULL) {
            config_cleanup(dst);
            return -1;
        }
    }
    return 0;
}

static const struct config_key *config_key_find(const char *name, bool by_flag)
{
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        const char *key = by_flag ? config_keys[i].flag : config_keys[i].name;
        if (key != NULL && strcmp(key, name) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

/* Sets one switch from a number (KEY_INT, KEY_DOUBLE), checking range and integrality. */
static int config_set_number(struct mock_config *c, const struct config_key *k, double v)
{
    void *field = (char *)c + k->offset;
    if (!(v >= k->min && v <= k->max)) {
        return -1;
    }
    if (k->type == KEY_INT) {
        if (v != floor(v)) {
            return -1;
        }
        *(long *)field = (long)v;
    } else if (k->type == KEY_DOUBLE) {
        *(double *)field = v;
    } else {
        return -1;
    }
    return 0;
}

static int config_set_string(struct mock_config *c, const struct config_key *k, const char *v)
{
    char *s = NULL;
    if (v != NULL && (s = strdup(v)) == NULL) {
        return -1;
    }
    free(*config_string(c, k));
    *config_string(c, k) = s;
    return 0;
}

/* Sets one switch from a JSON value: numbers, booleans, or a string (null clears it). */
static int config_set_json(struct mock_config *c, const struct config_key *k, const cJSON *v)
{
    switch (k->type) {
    case KEY_INT:
    case KEY_DOUBLE:
        return cJSON_IsNumber(v) ? config_set_number(c, k, v->valuedouble) : -1;
    case KEY_BOOL:
        if (!cJSON_IsBool(v)) {
            return -1;
        }
        *(bool *)((char *)c + k->offset) = cJSON_IsTrue(v);
        return 0;
    case KEY_STRING:
        if (!cJSON_IsString(v) && !cJSON_IsNull(v)) {
            return -1;
        }
        return config_set_string(c, k, cJSON_IsString(v) ? v->valuestring : NULL);
    }
    return -1;
}

int config_set_flag(struct mock_config *c, const char *flag, const char *value)
{
    const struct config_key *k = config_key_find(flag, true);
    char *end;
    if (k == NULL) {
        return -1;
    }
    if (k->type == KEY_BOOL) {
        *(bool *)((char *)c + k->offset) = !k->flag_clears;
        return 0;
    }
    if (value == NULL) {
        return -1;
    }
    if (k->type == KEY_STRING) {
        return config_set_string(c, k, value);
    }
    errno = 0;
    double v = strtod(value, &end);
    if (errno != 0 || end == value || *end != '\0' || config_set_number(c, k, v) < 0) {
        fprintf(stderr, "sluice-mock: bad value '%s' for --%s (range %g..%g)\n", value, flag,
                k->min, k->max);
        return -1;
    }
    return 0;
}

static cJSON *config_json(const struct mock_config *c)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        const struct config_key *k = &config_keys[i];
        const void *field = (const char *)c + k->offset;
        switch (k->type) {
        case KEY_INT:
            cJSON_AddNumberToObject(o, k->name, (double)*(const long *)field);
            break;
        case KEY_DOUBLE:
            cJSON_AddNumberToObject(o, k->name, *(const double *)field);
            break;
        case KEY_BOOL:
            cJSON_AddBoolToObject(o, k->name, *(const bool *)field);
            break;
        case KEY_STRING: {
            const char *s = *(char *const *)field;
            cJSON_AddItemToObject(o, k->name,
                                  s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull());
            break;
        }
        }
    }
    return o;
}

/* ---- control endpoints ---- */

int control_healthz(struct exchange *x)
{
    evbuffer_add_printf(mock_out_body(x), "{\"status\":\"ok\"}");
    return 200;
}

int control_stats(struct exchange *x)
{
    struct mock *m = x->m;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "requests", (double)m->requests);
    cJSON_AddNumberToObject(o, "in_flight", (double)m->in_flight);
    cJSON_AddNumberToObject(o, "resets", (double)m->resets);
    cJSON_AddNumberToObject(o, "jobs", (double)m->jobs.count);
    cJSON *by_status = cJSON_AddObjectToObject(o, "by_status");
    for (int s = 0; s < MOCK_STATUS_MAX; s++) {
        if (m->by_status[s] > 0) {
            char key[8];
            snprintf(key, sizeof(key), "%d", s);
            cJSON_AddNumberToObject(by_status, key, (double)m->by_status[s]);
        }
    }
    cJSON *by_path = cJSON_AddObjectToObject(o, "by_path");
    cJSON *by_route = cJSON_AddObjectToObject(o, "by_route");
    for (size_t i = 0; i < mock_n_routes; i++) {
        if (m->by_route[i] > 0) {
            cJSON_AddNumberToObject(by_path, routes_path_key(&mock_routes[i]),
                                    (double)m->by_route[i]);
            cJSON_AddNumberToObject(by_route, mock_routes[i].name, (double)m->by_route[i]);
        }
    }
    if (m->unmatched > 0) {
        cJSON_AddNumberToObject(by_path, "(unmatched)", (double)m->unmatched);
        cJSON_AddNumberToObject(by_route, "(unmatched)", (double)m->unmatched);
    }
    cJSON_AddNumberToObject(o, "webhooks_sent", (double)m->webhooks_sent);
    cJSON *last = cJSON_AddArrayToObject(o, "last_requests");
    const struct ring *r = &m->ring;
    for (size_t i = 0; i < r->count; i++) {
        cJSON_AddItemToArray(last,
                             record_json(&r->slots[(r->next + r->cap - r->count + i) % r->cap]));
    }
    return mock_out_json(x, 200, o);
}

int control_config_get(struct exchange *x)
{
    return mock_out_json(x, 200, config_json(&x->m->config));
}

/* Applies all keys or none: the new config is built on a copy and swapped in at the end. */
int control_config_set(struct exchange *x)
{
    struct mock *m = x->m;
    char message[128];
    cJSON *root = mock_body_json(x);
    struct mock_config next;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, "mock: config must be a JSON object", NULL);
    }
    if (config_copy(&next, &m->config) < 0) {
        cJSON_Delete(root);
        return openai_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        const struct config_key *k = config_key_find(item->string, false);
        if (k == NULL || config_set_json(&next, k, item) < 0) {
            snprintf(message, sizeof(message), "mock: %s config key '%.64s'",
                     k == NULL ? "unknown" : "bad value for", item->string);
            config_cleanup(&next);
            cJSON_Delete(root);
            return openai_error(x, 400, NULL, message, NULL);
        }
    }
    config_cleanup(&m->config);
    m->config = next;
    if (cJSON_GetObjectItemCaseSensitive(root, "fail_first") != NULL) {
        m->fail_seen = 0;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "rate_limit_rps") != NULL) {
        faults_bucket_refill(m);
    }
    cJSON_Delete(root);
    return mock_out_json(x, 200, config_json(&m->config));
}

/* Counters, recordings, jobs and switches back to startup values. Held answers keep their timers.
 */
int control_reset(struct exchange *x)
{
    struct mock *m = x->m;
    struct mock_config fresh;
    if (config_copy(&fresh, &m->startup) < 0) {
        return openai_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    config_cleanup(&m->config);
    m->config = fresh;
    m->requests = m->unmatched = m->fail_seen = m->resets = 0;
    memset(m->by_status, 0, sizeof(m->by_status));
    memset(m->by_route, 0, sizeof(m->by_route));
    m->rng = m->seed;
    faults_bucket_refill(m);
    control_ring_clear(&m->ring);
    evbuffer_add_printf(mock_out_body(x), "{\"ok\":true}");
    return 200;
}

/* GET /_mock/blob/{name}: deterministic bytes, like a provider's pre-signed download URL. */
int control_blob(struct exchange *x)
{
    char name[128];
    mock_cap(x, 0, name, sizeof(name));
    const char *type = x->cap[0].n < sizeof(name) ? blob_render(mock_out_body(x), name) : NULL;
    if (type == NULL) {
        evbuffer_drain(mock_out_body(x), (size_t)-1);
        evbuffer_add_printf(mock_out_body(x), "{\"error\":\"mock: no such blob\"}");
        return 404;
    }
    mock_out_header(x, "Content-Type", type);
    mock_out_header(x, "Cache-Control", "public, max-age=3600");
    return 200;
}
