/*
 * tests/lua/test_lua_dash.c — DASH (core/lua/dash.lua) and the failure record finalize writes
 * (dash_failed in core/lua/prelude.lua) against a real redis-server: a failed task is recorded
 * and counted, grouped by code and deployment, and seen by its tenant only; the state shows a
 * queued task's queue with its oldest entry, scoped by tenant; a sample is refused closer than
 * the gap and kept in the capped list, read back by history from a time on; tasks merges the
 * tenants' lists newest first for the admin, one list for a tenant, with status and alias
 * filters.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"
#include "core/txn_dash.h"

#define ID1 "task_aaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID2 "task_bbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID3 "task_cccccccccccccccccccccccccc"

/* One DASH call at now, parsed; the reply: caller frees. */
static redisReply *dash_call(struct fx *f, struct txn_dash *d, struct txn_dash_reply *out)
{
    redisReply *r;

    CHECK(txn_dash_build(&f->args, &f->keys, d) == 0);
    r = fx_run(f, SCRIPT_DASH, &f->args);
    CHECK(r != NULL);
    CHECK(txn_dash_parse(d->op, r, out) == 0);
    return r;
}

/* The state as tenant (NULL: admin) sees it, parsed. Caller frees. */
static cJSON *state(struct fx *f, const char *tenant, long long now)
{
    const struct txn_dash_alias aliases[] = {{"m", 1}};
    struct txn_dash d = {
        .op = TXN_DASH_STATE, .now_ms = now, .tenant = tenant, .aliases = aliases, .n_aliases = 1};
    struct txn_dash_reply out;
    redisReply *r = dash_call(f, &d, &out);
    cJSON *j = cJSON_ParseWithLength(out.json, out.json_len);

    CHECK(j != NULL);
    freeReplyObject(r);
    return j;
}

static int array_size(const cJSON *o, const char *name)
{
    const cJSON *a = cJSON_GetObjectItem(o, name);
    return cJSON_IsArray(a) || cJSON_IsObject(a) ? cJSON_GetArraySize(a) : -1;
}

static void submit(struct fx *f, const char *id, const char *tenant, long long at)
{
    struct txn_submit t = fx_task(id);

    t.tenant = tenant;
    t.now_ms = at;
    CHECK(fx_submit1(f, &t) == 0);
}

static void test_failure_recorded(struct fx *f)
{
    struct txn_outcome o = fx_outcome(ID1, TXN_OUTCOME_FAILED);
    const cJSON *g;
    cJSON *s;
    char *st;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    submit(f, ID1, "t1", FX_NOW);
    freeReplyObject(fx_claim(f, FX_NOW + 10, 1));
    o.error =
        "{\"message\":\"upstream broke\",\"type\":\"server_error\",\"code\":\"server_error\"}";
    o.provider = "{\"name\":\"openai\"}";
    freeReplyObject(fx_finish(f, FX_NOW + 20, 10, &o, 1));
    st = fx_field(f, ID1, "status");
    CHECK(st != NULL && strcmp(st, "failed") == 0);
    free(st);
    CHECK(fx_stat(f, "done|failed") == 1);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_DASH_FAIL, NULL)) == 1);

    s = state(f, NULL, FX_NOW + 30);
    CHECK(array_size(s, "failures") == 1);
    g = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "failures"), 0);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(g, "code")), "server_error") == 0);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(g, "model")), "m") == 0);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(g, "provider")), "openai") == 0);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(g, "last_task")), ID1) == 0);
    CHECK(cJSON_GetObjectItem(g, "count")->valuedouble == 1);
    CHECK(strcmp(cJSON_GetStringValue(
                     cJSON_GetObjectItem(cJSON_GetObjectItem(s, "stats"), "done|failed")),
                 "1") == 0);
    cJSON_Delete(s);

    /* another tenant sees none of it, nor the admin's counters */
    s = state(f, "t2", FX_NOW + 30);
    CHECK(array_size(s, "failures") == 0);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "stats"), "done|failed") == NULL);
    cJSON_Delete(s);
    /* an hour later it is no longer recent */
    s = state(f, NULL, FX_NOW + 3600000 + 31);
    CHECK(array_size(s, "failures") == 0);
    cJSON_Delete(s);
}

static void test_queues_scoped(struct fx *f)
{
    const cJSON *q;
    cJSON *s;

    fx_flush(f);
    submit(f, ID1, "t1", FX_NOW);
    submit(f, ID2, "t1", FX_NOW + 5);
    submit(f, ID3, "t2", FX_NOW + 9);
    s = state(f, NULL, FX_NOW + 100);
    CHECK(array_size(s, "queues") == 1);
    q = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "queues"), 0);
    CHECK(cJSON_GetObjectItem(q, "oldest")->valuedouble == (double)FX_NOW);
    CHECK(strcmp(cJSON_GetStringValue(
                     cJSON_GetObjectItem(cJSON_GetObjectItem(s, "stats"), "depth|m|1")),
                 "3") == 0);
    CHECK(array_size(s, "tenants") == 2);
    cJSON_Delete(s);

    s = state(f, "t2", FX_NOW + 100);
    q = cJSON_GetArrayItem(cJSON_GetObjectItem(s, "queues"), 0);
    CHECK(q != NULL && cJSON_GetObjectItem(q, "depth")->valuedouble == 1);
    CHECK(cJSON_GetObjectItem(q, "oldest")->valuedouble == (double)(FX_NOW + 9));
    CHECK(array_size(s, "tenants") == 1);
    CHECK(strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(
                     cJSON_GetArrayItem(cJSON_GetObjectItem(s, "tenants"), 0), "tenant")),
                 "t2") == 0);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "stats"), "depth|m|1") == NULL);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(s, "stats"), "tq|t1") == NULL);
    cJSON_Delete(s);
}

static void test_sample_history(struct fx *f)
{
    struct txn_dash d = {.op = TXN_DASH_SAMPLE, .now_ms = FX_NOW};
    struct txn_dash h = {.op = TXN_DASH_HISTORY, .now_ms = FX_NOW + 20000};
    struct txn_dash_reply out;
    redisReply *r;
    cJSON *p;
    size_t len;
    const char *text;

    fx_flush(f);
    submit(f, ID1, "t1", FX_NOW);
    freeReplyObject(dash_call(f, &d, &out));
    CHECK(out.sampled);
    d.now_ms = FX_NOW + 1000; /* too soon */
    freeReplyObject(dash_call(f, &d, &out));
    CHECK(!out.sampled);
    d.now_ms = FX_NOW + DASH_SAMPLE_MS;
    freeReplyObject(dash_call(f, &d, &out));
    CHECK(out.sampled);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_DASH_HIST, NULL)) == 2);

    h.since_ms = FX_NOW + 1;
    r = dash_call(f, &h, &out);
    CHECK(out.n == 1);
    text = txn_dash_point(&out, 0, &len);
    p = cJSON_ParseWithLength(text, len);
    CHECK(p != NULL);
    CHECK(cJSON_GetObjectItem(p, "t")->valuedouble == (double)(FX_NOW + DASH_SAMPLE_MS));
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "q"), "m|1")->valuedouble == 1);
    CHECK(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(p, "tq"), "t1"), "m|1")
              ->valuedouble == 1);
    CHECK(cJSON_GetObjectItem(p, "a")->valuedouble == 1);
    cJSON_Delete(p);
    freeReplyObject(r);
    h.since_ms = 0;
    freeReplyObject(dash_call(f, &h, &out));

    /* the list keeps DASH_HISTORY_POINTS */
    for (int i = 2; i < DASH_HISTORY_POINTS + 5; i++) {
        d.now_ms = FX_NOW + (long long)i * DASH_SAMPLE_MS;
        freeReplyObject(dash_call(f, &d, &out));
    }
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_DASH_HIST, NULL)) == DASH_HISTORY_POINTS);
}

static void test_tasks(struct fx *f)
{
    struct txn_dash d = {.op = TXN_DASH_TASKS, .now_ms = FX_NOW, .limit = 10};
    struct txn_dash_reply out;
    const char *id;
    const redisReply *hash;
    redisReply *r;

    fx_flush(f);
    submit(f, ID1, "t1", FX_NOW);
    submit(f, ID2, "t2", FX_NOW + 5);
    submit(f, ID3, "t1", FX_NOW + 9);
    r = dash_call(f, &d, &out);
    CHECK(out.n == 3);
    txn_dash_task(&out, 0, &id, &hash);
    CHECK(strcmp(id, ID3) == 0 && hash->elements > 0);
    txn_dash_task(&out, 1, &id, &hash);
    CHECK(strcmp(id, ID2) == 0);
    freeReplyObject(r);

    d.tenant = "t1";
    r = dash_call(f, &d, &out);
    CHECK(out.n == 2);
    txn_dash_task(&out, 1, &id, &hash);
    CHECK(strcmp(id, ID1) == 0);
    freeReplyObject(r);

    d.tenant = NULL;
    d.limit = 1;
    r = dash_call(f, &d, &out);
    CHECK(out.n == 1);
    freeReplyObject(r);
    d.limit = 10;
    d.status = "completed";
    r = dash_call(f, &d, &out);
    CHECK(out.n == 0);
    freeReplyObject(r);
    d.status = NULL;
    d.model = "other";
    r = dash_call(f, &d, &out);
    CHECK(out.n == 0);
    freeReplyObject(r);
    d.model = NULL;
    d.limit = DASH_TASKS_MAX + 1;
    CHECK(txn_dash_build(&f->args, &f->keys, &d) == CORE_EINVAL);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_failure_recorded(&f);
    test_queues_scoped(&f);
    test_sample_history(&f);
    test_tasks(&f);
    fx_stop(&f);
    return check_done();
}
