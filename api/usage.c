/*
 * api/usage.c — GET /v1/usage?from=&to=&bucket=hour|day&group_by=model,provider,key: what the
 * caller's tenant's tasks did, summed per time bucket and group.
 *
 * The counters are not computed here from tasks: finalize (core/lua/prelude.lua usage_count) adds
 * every task that ends to its tenant's hash of that hour, in the same script that ends it, so the
 * sums are exact across any number of processes and a read costs the hours it covers, never the
 * tasks. This file reads the hours (USAGE, core/txn_usage.h), folds them into the asked buckets
 * (an hour, or a UTC day) and groups, and interpolates the latency percentiles from each group's
 * histogram.
 *
 * from and to are Unix seconds (default: the last 24 hours), widened to whole hours: the answer's
 * from and to are the hours read. At most TXN_USAGE_MAX_HOURS (92 days) per request. A tenant key
 * sees its own tenant; an admin key (admin_keys) sees every tenant summed, one tenant with
 * tenant=X, or each apart with group_by=tenant. Rows only for buckets and groups that have
 * counts, in time order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/internal.h"
#include "api/usage.h"
#include "core/log.h"
#include "core/txn_usage.h"
#include "core/util.h"

#define USAGE_TENANT_MAX 128
#define USAGE_ROWS_MAX 100000         /* rows of one answer: past it, ask for a narrower one */
#define USAGE_TIME_MAX 253402300799LL /* 9999-12-31T23:59:59Z */

/* The dimensions a row may be grouped by, in the order of a counter field's name (tenant is the
 * hash's, not the field's). */
enum usage_dim { USAGE_MODEL, USAGE_PROVIDER, USAGE_KEY, USAGE_TENANT, USAGE_DIM_COUNT };
static const char *const dim_names[USAGE_DIM_COUNT] = {"model", "provider", "key", "tenant"};

/* What a row sums. The counters named by a field's suffix (core/lua/prelude.lua usage_count):
 * in, out, cost, hit; the others are sums of the packed "<outcome><latency bucket>" counters. */
enum usage_metric { M_REQ, M_OK, M_FAIL, M_IN, M_OUT, M_COST, M_HIT, M_COUNT };
static const char *const metric_names[M_COUNT] = {NULL, NULL, NULL, "in", "out", "cost", "hit"};

/* The latency histogram's upper bounds in ms (the same as the prelude's USAGE_LAT); the last
 * bucket, 11, holds the rest. */
static const int64_t lat_bounds[] = {25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000};
#define USAGE_LAT_N (sizeof(lat_bounds) / sizeof(lat_bounds[0]) + 1)

/* A part of a counter field's name or a tenant: borrowed from the reply. */
struct span {
    const char *p;
    size_t n;
};

struct usage_row {
    int64_t start;
    struct span dims[USAGE_DIM_COUNT]; /* only the grouped ones are set */
    int64_t m[M_COUNT];
    int64_t lat[USAGE_LAT_N];
};

/* One request's settings, kept across the round trip. */
struct usage_query {
    struct api_ctx *c;
    int64_t from, to; /* whole hours */
    int64_t bucket_s; /* 3600 or 86400 */
    bool group[USAGE_DIM_COUNT];
    char tenant[USAGE_TENANT_MAX + 1]; /* "": every tenant (an admin) */
};

static bool span_eq(struct span a, struct span b)
{
    return a.n == b.n && (a.n == 0 || memcmp(a.p, b.p, a.n) == 0);
}

/* Splits "<model>|<provider>|<key>|<metric>" (the key may hold '|': it is what lies between the
 * second and the last). False for a field of another shape. */
static bool split_field(const char *f, size_t n, struct span dims[3], struct span *metric)
{
    const char *end = f + n;
    const char *a = memchr(f, '|', n);
    const char *b = a ? memchr(a + 1, '|', (size_t)(end - a - 1)) : NULL;
    const char *last = NULL;

    if (b == NULL) {
        return false;
    }
    for (const char *p = end; p > b; p--) {
        if (p[-1] == '|') {
            last = p - 1;
            break;
        }
    }
    if (last == NULL || last == b) {
        return false;
    }
    dims[USAGE_MODEL] = (struct span){f, (size_t)(a - f)};
    dims[USAGE_PROVIDER] = (struct span){a + 1, (size_t)(b - a - 1)};
    dims[USAGE_KEY] = (struct span){b + 1, (size_t)(last - b - 1)};
    *metric = (struct span){last + 1, (size_t)(end - last - 1)};
    return true;
}

/* A field's metric: a plain counter (*metric one of M_IN..M_HIT, *bucket -1), or a packed one
 * (*metric M_OK, M_FAIL or M_REQ for a cancelled task, *bucket its latency bucket). False for a
 * name of neither kind (skipped: a newer writer's). */
static bool metric_of(struct span m, int *metric, int *bucket)
{
    static const char outcomes[] = {'c', 'f', 'x'};
    static const int outcome_metric[] = {M_OK, M_FAIL, M_REQ};
    int v = 0;

    *bucket = -1;
    for (int i = M_IN; i < M_COUNT; i++) {
        if (m.n == strlen(metric_names[i]) && memcmp(m.p, metric_names[i], m.n) == 0) {
            *metric = i;
            return true;
        }
    }
    if (m.n < 2 || m.n > 3) {
        return false;
    }
    for (size_t i = 1; i < m.n; i++) {
        if (m.p[i] < '0' || m.p[i] > '9') {
            return false;
        }
        v = v * 10 + (m.p[i] - '0');
    }
    for (size_t i = 0; i < sizeof(outcomes); i++) {
        if (m.p[0] == outcomes[i] && v < (int)USAGE_LAT_N) {
            *metric = outcome_metric[i];
            *bucket = v;
            return true;
        }
    }
    return false;
}

/*
 * The rows being summed: rows [first, n) are the current bucket's (the hashes come in hour
 * order, so a bucket's rows are always the last ones). Grows by doubling up to USAGE_ROWS_MAX.
 */
struct usage_acc {
    struct usage_row *rows;
    size_t n, cap, first;
};

/* The row of (start, dims) — found among the current bucket's, or added. NULL: too many rows or
 * out of memory. */
static struct usage_row *acc_row(struct usage_acc *acc, int64_t start, const struct span *dims)
{
    struct usage_row *r;

    if (acc->n > acc->first && acc->rows[acc->first].start != start) {
        acc->first = acc->n;
    }
    for (size_t i = acc->first; i < acc->n; i++) {
        bool same = true;
        for (int d = 0; d < USAGE_DIM_COUNT && same; d++) {
            same = span_eq(acc->rows[i].dims[d], dims[d]);
        }
        if (same) {
            return &acc->rows[i];
        }
    }
    if (acc->n >= USAGE_ROWS_MAX) {
        return NULL;
    }
    if (acc->n == acc->cap) {
        size_t cap = acc->cap ? acc->cap * 2 : 64;
        struct usage_row *rows;
        rows = realloc(acc->rows, cap * sizeof(*rows));
        if (rows == NULL) {
            return NULL;
        }
        acc->rows = rows;
        acc->cap = cap;
    }
    r = &acc->rows[acc->n++];
    memset(r, 0, sizeof(*r));
    r->start = start;
    memcpy(r->dims, dims, sizeof(r->dims));
    return r;
}

/* Adds one hash's counters to acc under q's buckets and groups. -1: too many rows or OOM. */
static int acc_hash(struct usage_acc *acc, const struct usage_query *q,
                    const struct txn_usage_hash *h)
{
    int64_t start = h->hour_s - h->hour_s % q->bucket_s;

    for (size_t i = 0; i + 1 < h->pairs->elements; i += 2) {
        const redisReply *f = h->pairs->element[i];
        struct span dims[USAGE_DIM_COUNT] = {{NULL, 0}}, parts[3], metric;
        struct usage_row *r;
        int mi, bucket;

        if (!split_field(f->str, f->len, parts, &metric) || !metric_of(metric, &mi, &bucket)) {
            continue;
        }
        for (int d = 0; d < 3; d++) {
            if (q->group[d]) {
                dims[d] = parts[d];
            }
        }
        if (q->group[USAGE_TENANT]) {
            dims[USAGE_TENANT] = (struct span){h->tenant, strlen(h->tenant)};
        }
        r = acc_row(acc, start, dims);
        if (r == NULL) {
            return -1;
        }
        int64_t v = strtoll(h->pairs->element[i + 1]->str, NULL, 10);
        if (bucket < 0) {
            r->m[mi] += v;
        } else {
            /* a task: a request, maybe a completion or a failure, and its latency */
            r->m[M_REQ] += v;
            if (mi != M_REQ) {
                r->m[mi] += v;
            }
            r->lat[bucket] += v;
        }
    }
    return 0;
}

/*
 * The q-quantile (0 < q < 1) of a latency histogram in ms, interpolated linearly within the
 * bucket that holds it (the first bucket from 0, the last one, unbounded, is its lower bound);
 * -1 for an empty histogram.
 */
static int64_t lat_quantile(const int64_t *lat, double q)
{
    int64_t total = 0, below = 0;
    double target;

    for (size_t i = 0; i < USAGE_LAT_N; i++) {
        total += lat[i];
    }
    if (total <= 0) {
        return -1;
    }
    target = q * (double)total;
    for (size_t i = 0; i < USAGE_LAT_N; i++) {
        if (lat[i] > 0 && (double)(below + lat[i]) >= target) {
            double lo = i == 0 ? 0 : (double)lat_bounds[i - 1];
            if (i == USAGE_LAT_N - 1) {
                return (int64_t)lo;
            }
            double hi = (double)lat_bounds[i];
            return (int64_t)(lo + (hi - lo) * (target - (double)below) / (double)lat[i] + 0.5);
        }
        below += lat[i];
    }
    return (int64_t)lat_bounds[USAGE_LAT_N - 2];
}

static void add_span(cJSON *o, const char *name, struct span s)
{
    char *v = malloc(s.n + 1);

    if (v == NULL) {
        return;
    }
    memcpy(v, s.p, s.n);
    v[s.n] = '\0';
    cJSON_AddStringToObject(o, name, v);
    free(v);
}

static cJSON *row_json(const struct usage_query *q, const struct usage_row *r)
{
    cJSON *o = cJSON_CreateObject(), *g, *cost, *lat;
    int64_t p50 = lat_quantile(r->lat, 0.50), p95 = lat_quantile(r->lat, 0.95);

    cJSON_AddNumberToObject(o, "start", (double)r->start);
    cJSON_AddNumberToObject(o, "end", (double)(r->start + q->bucket_s));
    g = cJSON_AddObjectToObject(o, "group");
    for (int d = 0; d < USAGE_DIM_COUNT; d++) {
        if (q->group[d]) {
            add_span(g, dim_names[d], r->dims[d]);
        }
    }
    cJSON_AddNumberToObject(o, "requests", (double)r->m[M_REQ]);
    cJSON_AddNumberToObject(o, "completed", (double)r->m[M_OK]);
    cJSON_AddNumberToObject(o, "failed", (double)r->m[M_FAIL]);
    cJSON_AddNumberToObject(o, "input_tokens", (double)r->m[M_IN]);
    cJSON_AddNumberToObject(o, "output_tokens", (double)r->m[M_OUT]);
    cost = cJSON_AddObjectToObject(o, "cost");
    cJSON_AddNumberToObject(cost, "amount", (double)r->m[M_COST] / 1e9);
    cJSON_AddStringToObject(cost, "currency", "USD");
    cJSON_AddNumberToObject(o, "cache_hits", (double)r->m[M_HIT]);
    lat = cJSON_AddObjectToObject(o, "latency_ms");
    if (p50 < 0) {
        cJSON_AddNullToObject(lat, "p50");
        cJSON_AddNullToObject(lat, "p95");
    } else {
        cJSON_AddNumberToObject(lat, "p50", (double)p50);
        cJSON_AddNumberToObject(lat, "p95", (double)p95);
    }
    return o;
}

static void query_free(struct usage_query *q)
{
    if (q != NULL) {
        api_ctx_free(q->c);
        free(q);
    }
}

static void on_usage(const struct txn_usage_reply *reply, const struct core_err *err, void *arg)
{
    struct usage_query *q = arg;
    struct api *a = q->c->api;
    struct usage_acc acc = {0};
    cJSON *o, *data;

    if (err != NULL) {
        log_warn("usage read failed", "error=\"%s\"", err->message);
        api_reply_store_down(a, q->c->req);
        goto out;
    }
    for (size_t i = 0; i < reply->n; i++) {
        struct txn_usage_hash h;
        txn_usage_hash_at(reply, i, &h);
        if (acc_hash(&acc, q, &h) < 0) {
            api_reply_error(a, q->c->req, CORE_EINVAL, "group_by", "usage_too_large",
                            "More than %d rows: ask for a shorter range, day buckets or fewer "
                            "groups",
                            USAGE_ROWS_MAX);
            goto out;
        }
    }
    o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "object", "list");
    cJSON_AddStringToObject(o, "bucket", q->bucket_s == 3600 ? "hour" : "day");
    cJSON_AddNumberToObject(o, "from", (double)q->from);
    cJSON_AddNumberToObject(o, "to", (double)q->to);
    data = cJSON_AddArrayToObject(o, "data");
    for (size_t i = 0; i < acc.n; i++) {
        cJSON_AddItemToArray(data, row_json(q, &acc.rows[i]));
    }
    api_reply_json(a, q->c->req, 200, o);
out:
    free(acc.rows);
    query_free(q);
}

/* A Unix time in s from a query value: false when it is not one. */
static bool parse_time(const char *v, int64_t *out)
{
    char *end;
    long long t;

    if (v == NULL || v[0] < '0' || v[0] > '9') {
        return false;
    }
    t = strtoll(v, &end, 10);
    if (*end != '\0' || t < 0 || t > USAGE_TIME_MAX) {
        return false;
    }
    *out = t;
    return true;
}

static bool tenant_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > USAGE_TENANT_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '_' || ch == '-' || ch == '.')) {
            return false;
        }
    }
    return true;
}

/* group_by's comma-separated names into q->group. 0, or -1 with e filled. */
static int parse_group_by(const char *v, bool admin, struct usage_query *q, struct core_err *e)
{
    const char *p = v;

    while (p != NULL && *p != '\0') {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        int d = -1;

        for (int i = 0; i < USAGE_DIM_COUNT; i++) {
            if (n == strlen(dim_names[i]) && strncmp(p, dim_names[i], n) == 0) {
                d = i;
            }
        }
        if (d < 0) {
            return core_err_set(e, CORE_EINVAL, "group_by",
                                "Unknown group_by '%.*s': use model, provider, key (and tenant "
                                "with an admin key), comma-separated",
                                (int)(n > 64 ? 64 : n), p);
        }
        if (d == USAGE_TENANT && !admin) {
            return core_err_set(e, CORE_EPERM, "group_by",
                                "group_by=tenant needs an admin key (admin_keys in the config)");
        }
        q->group[d] = true;
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/*
 * Reads the query into q: the hours to read, the bucket, the groups and the tenant(s). 0, or -1
 * with e filled (400; 403 for what only an admin may ask).
 */
static int parse_query(struct evkeyvalq *params, const char *tenant, struct usage_query *q,
                       struct core_err *e)
{
    const char *from = evhttp_find_header(params, "from");
    const char *to = evhttp_find_header(params, "to");
    const char *bucket = evhttp_find_header(params, "bucket");
    const char *group_by = evhttp_find_header(params, "group_by");
    const char *who = evhttp_find_header(params, "tenant");
    int64_t t0, t1 = util_now_ms() / 1000;

    if (to != NULL && !parse_time(to, &t1)) {
        return core_err_set(e, CORE_EINVAL, "to", "'to' must be a Unix time in seconds");
    }
    t0 = t1 - 86400;
    if (from != NULL && !parse_time(from, &t0)) {
        return core_err_set(e, CORE_EINVAL, "from", "'from' must be a Unix time in seconds");
    }
    if (t0 < 0) {
        t0 = 0;
    }
    if (t0 >= t1) {
        return core_err_set(e, CORE_EINVAL, "from", "'from' must be before 'to'");
    }
    q->from = t0 - t0 % 3600;
    q->to = t1 % 3600 == 0 ? t1 : t1 - t1 % 3600 + 3600;
    if ((q->to - q->from) / 3600 > TXN_USAGE_MAX_HOURS) {
        return core_err_set(e, CORE_EINVAL, "from",
                            "The range covers %lld hours; at most %d (92 days) per request",
                            (long long)((q->to - q->from) / 3600), TXN_USAGE_MAX_HOURS);
    }
    if (bucket == NULL || strcmp(bucket, "day") == 0) {
        q->bucket_s = 86400;
    } else if (strcmp(bucket, "hour") == 0) {
        q->bucket_s = 3600;
    } else {
        return core_err_set(e, CORE_EINVAL, "bucket", "'bucket' must be \"hour\" or \"day\"");
    }
    if (group_by != NULL && parse_group_by(group_by, tenant == NULL, q, e) < 0) {
        return -1;
    }
    if (who != NULL) {
        if (!tenant_name_ok(who)) {
            return core_err_set(e, CORE_EINVAL, "tenant",
                                "'tenant' must be a tenant's name (at most %d letters, digits, "
                                "'_', '-' or '.')",
                                USAGE_TENANT_MAX);
        }
        if (tenant != NULL && strcmp(who, tenant) != 0) {
            return core_err_set(e, CORE_EPERM, "tenant",
                                "Another tenant's usage needs an admin key (admin_keys in the "
                                "config)");
        }
        snprintf(q->tenant, sizeof(q->tenant), "%s", who);
    } else if (tenant != NULL) {
        if (strlen(tenant) > USAGE_TENANT_MAX) {
            return core_err_set(e, CORE_EINVAL, NULL, "The key's tenant name is too long");
        }
        snprintf(q->tenant, sizeof(q->tenant), "%s", tenant);
    }
    return 0;
}

void api_usage_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
    struct evkeyvalq params;
    struct usage_query *q = calloc(1, sizeof(*q));
    struct txn_usage u;
    struct core_err e;

    (void)arg;
    TAILQ_INIT(&params);
    core_err_clear(&e);
    if (q == NULL || (q->c = api_ctx_new(a, req, tenant)) == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto fail;
    }
    if (query != NULL && evhttp_parse_query_str(query, &params) < 0) {
        api_reply_error(a, req, CORE_EINVAL, NULL, NULL, "Malformed query string");
        goto fail;
    }
    if (parse_query(&params, tenant, q, &e) < 0) {
        api_reply_err(a, req, &e);
        goto fail;
    }
    u = (struct txn_usage){.tenant = q->tenant, .from_hour_s = q->from, .to_hour_s = q->to};
    if (txn_usage(a->store, &a->txn, &u, on_usage, q) < 0) {
        api_reply_store_down(a, req);
        goto fail;
    }
    evhttp_clear_headers(&params);
    return;
fail:
    evhttp_clear_headers(&params);
    query_free(q);
}

/* On every connect: the retention the config asks for, where finalize reads it. */
static void on_store_state(bool connected, void *arg)
{
    struct api *a = arg;
    char key[64], secs[24];
    const char *argv[] = {"SET", key, secs};

    if (!connected ||
        keyspace_key(store_keys(a->store), key, sizeof(key), KS_USAGE_CFG, NULL) < 0) {
        return;
    }
    snprintf(secs, sizeof(secs), "%ld", a->cfg->usage.retention_days * 86400L);
    store_command(a->store, NULL, NULL, 3, argv, NULL);
}

void api_usage_init(struct api *a)
{
    store_on_state(a->store, on_store_state, a);
    if (store_ready(a->store)) {
        on_store_state(true, a);
    }
}
