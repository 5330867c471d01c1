/*
 * tests/lua/test_lua_read.c — the read scripts against a real redis-server: LIST
 * (core/lua/list.lua: newest first, pages and cursors, a status filter, the scan cap, a bad
 * cursor), GET (core/lua/get.lua: a queued task's place in line and eta, none for others) and
 * METRICS (core/lua/metrics.lua: counters, deployments, set sizes).
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

/* A page of t1's tasks: after the cursor (NULL: the first page), status NULL for any. */
static redisReply *list(struct fx *f, const char *after, int limit, const char *status, int cap)
{
    struct txn_list p = {.tenant = "t1", .after = after, .limit = limit, .scan_cap = cap};

    if (status != NULL) {
        int st = task_status_parse(status);
        CHECK(st >= 0);
        p.by_status = true;
        p.status = (enum task_status)st;
    }
    CHECK(txn_list_build(&f->args, &f->keys, &p) == 0);
    return fx_run(f, SCRIPT_LIST, &f->args);
}

/* "has_more cursor: id id ..." of a LIST reply, or "badcursor" (static buffer). */
static const char *page(const redisReply *r)
{
    static char buf[512];
    struct txn_listed l;
    size_t n;

    if (txn_list_parse(r, &l) != 0) {
        return "?";
    }
    if (l.bad_cursor) {
        return "badcursor";
    }
    n = (size_t)snprintf(buf, sizeof(buf), "%d %s:", l.has_more ? 1 : 0, l.cursor);
    for (size_t i = 0; i < l.n; i++) {
        const char *id;
        const redisReply *hash;
        txn_listed_task(&l, i, &id, &hash);
        /* each id comes with its task */
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %s%s", id,
                              hash->elements > 0 && task_hash_get(hash, "status") ? "" : "(none)");
    }
    return buf;
}

static void test_list(struct fx *f)
{
    static const char *const ids[] = {"task_1", "task_2", "task_3", "task_4", "task_5"};
    struct txn_outcome done = fx_outcome("task_2", TXN_OUTCOME_COMPLETED);
    redisReply *r;

    done.result = "{}";
    done.took_slot = true;
    done.class = TXN_CLASS_OK;
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 5; i++) {
        struct txn_submit t = fx_task(ids[i]);
        t.now_ms = FX_NOW + i;
        CHECK(fx_submit1(f, &t) == 0);
    }
    r = list(f, NULL, 2, NULL, 1000);
    CHECK_STR(page(r), "1 task_4: task_5 task_4");
    freeReplyObject(r);
    r = list(f, "task_4", 2, NULL, 1000);
    CHECK_STR(page(r), "1 task_2: task_3 task_2");
    freeReplyObject(r);
    r = list(f, "task_2", 2, NULL, 1000);
    CHECK_STR(page(r), "0 task_1: task_1");
    freeReplyObject(r);
    /* a filter */
    freeReplyObject(fx_claim(f, FX_NOW, 1)); /* task_1, the oldest */
    done.id = "task_1";
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &done, 1));
    r = list(f, NULL, 10, "completed", 1000);
    CHECK_STR(page(r), "0 task_1: task_1");
    freeReplyObject(r);
    /* the scan cap: nothing found in 2 entries, but the cursor moves on */
    r = list(f, NULL, 10, "completed", 2);
    CHECK_STR(page(r), "1 task_4:");
    freeReplyObject(r);
    r = list(f, "task_none", 10, NULL, 1000);
    CHECK_STR(page(r), "badcursor");
    freeReplyObject(r);
}

/* GET of id, parsed into out (borrowing the reply: caller frees). */
static redisReply *get(struct fx *f, const char *id, struct txn_got *out)
{
    redisReply *r;

    CHECK(txn_get_build(&f->args, &f->keys, id) == 0);
    r = fx_run(f, SCRIPT_GET, &f->args);
    CHECK(txn_get_parse(r, out) == 0);
    return r;
}

static void test_get(struct fx *f)
{
    static const char *const ids[] = {"task_a", "task_b", "task_c", "task_d", "task_i", "task_j"};
    static const char *const tenants[] = {"t1", "t1", "t1", "t2", "t3", "t3"};
    struct txn_submit tasks[6];
    struct txn_got g;
    redisReply *r;

    for (int i = 0; i < 6; i++) {
        tasks[i] = fx_task(ids[i]);
        tasks[i].tenant = tenants[i];
    }
    tasks[4].prio = tasks[5].prio = TASK_PRIO_INTERACTIVE;
    fx_flush(f);
    /* 60 rpm: one a second */
    fx_routing(f, "m",
               "{\"strategy\":\"cost\",\"breaker\":{\"open\":15000},\"deps\":[{\"rpm\":60,"
               "\"tpm\":0,\"maxc\":0,\"weight\":1,\"pin\":0,\"pout\":0}]}");
    freeReplyObject(fx_submit(f, tasks, 6));
    /* two ahead in its list, two tenants taking turns, two interactive tasks first */
    r = get(f, "task_c", &g);
    CHECK(r != NULL && r->elements == 3 && r->element[0]->elements > 0);
    CHECK(g.hash != NULL && g.hash->elements > 0);
    CHECK_STR(g.hash ? task_hash_get(g.hash, "status") : NULL, "queued");
    CHECK(g.queue_position == 6);
    CHECK(g.eta_s == 6);
    freeReplyObject(r);
    r = get(f, "task_a", &g);
    CHECK(g.queue_position == 2);
    freeReplyObject(r);
    /* not queued, or no such task */
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    r = get(f, "task_i", &g);
    CHECK(g.queue_position == -1 && g.eta_s == -1);
    CHECK_STR(g.hash ? task_hash_get(g.hash, "status") : NULL, "in_progress");
    freeReplyObject(r);
    r = get(f, "task_none", &g);
    CHECK(r != NULL && r->elements == 3 && r->element[0]->elements == 0);
    CHECK(g.hash != NULL && g.hash->elements == 0);
    CHECK(g.queue_position == -1);
    freeReplyObject(r);
}

/* The value of counter name in m, or NULL. */
static const char *stat_of(const struct txn_metrics *m, const char *name)
{
    for (size_t i = 0; i < m->n_stats; i++) {
        const char *k, *v;
        txn_metrics_stat(m, i, &k, &v);
        if (strcmp(k, name) == 0) {
            return v;
        }
    }
    return NULL;
}

static void test_metrics(struct fx *f)
{
    struct txn_submit t = fx_task("task_m");
    struct txn_metrics m;
    struct txn_dep_state d;
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    freeReplyObject(fx_cmd(f, "ZADD %s 1 x 2 y", fx_key(f, KS_DELAYED, NULL)));
    txn_metrics_begin(&f->args);
    txn_metrics_add(&f->args, "m", 2);
    r = fx_run(f, SCRIPT_METRICS, &f->args);
    CHECK(r != NULL && r->elements == 6);
    if (!CHECK(txn_metrics_parse(r, &m) == 0)) {
        freeReplyObject(r);
        return;
    }
    CHECK(m.n_stats > 0);
    CHECK_STR(stat_of(&m, "accepted"), "1");
    CHECK_STR(stat_of(&m, "status|in_progress"), "1");
    CHECK(m.n_deps == 2);
    /* alias, index, rt, tt, inf, br, pause, lat */
    txn_metrics_dep(&m, 0, &d);
    CHECK_STR(d.alias, "m");
    CHECK(d.index == 0);
    CHECK(d.in_flight == 1);
    CHECK(d.breaker == TXN_BREAKER_CLOSED);
    txn_metrics_dep(&m, 1, &d);
    CHECK(d.index == 1);
    CHECK_STR(d.requests, "");
    CHECK(d.in_flight == 0);
    CHECK(!d.has_latency);
    CHECK(m.delayed == 2);
    CHECK(m.leased == 1);
    CHECK(m.parked == 0);
    CHECK(m.n_budgets == 0);
    freeReplyObject(r);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_list(&f);
    test_get(&f);
    test_metrics(&f);
    fx_stop(&f);
    return check_done();
}
