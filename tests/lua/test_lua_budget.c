/*
 * tests/lua/test_lua_budget.c — budgets in the scripts that move tasks (core/lua/prelude.lua,
 * claim.lua, finish.lua, tick.lua, submit.lua) and BUDGET (core/lua/budget.lua) against a real
 * redis-server: CLAIM reserves each admitted task's estimate in every window of its tenant's and
 * its key's budget and holds the rest back (pace) with the wait until the window ends; FINISH
 * replaces a reservation with the real cost (completed) or gives it back (retry, release); a
 * parked job keeps it until its final poll; TICK gives back a lost attempt's; a window that ends
 * admits again; SUBMIT refuses a tenant whose "reject" budget is used up, with the wait; BUDGET
 * get shows each limit's window (the calendar month included).
 * The fixture's deployment charges 0.15 and 0.6 USD per million tokens and a task estimates 100
 * tokens: its reservation is (0.15 + 0.6) * 100 = 75 micro-USD, counted in nano-USD: 75,000.
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"
#include "core/txn_budget.h"

#define HOUR 3600000LL
#define EST 75000 /* nano-USD a fixture task reserves */
/* FX_NOW's hour window */
#define H0 (FX_NOW - FX_NOW % HOUR)

static void put_budget(struct fx *f, const char *subject, const char *cfg)
{
    struct txn_budget b = {.op = TXN_BUDGET_PUT, .subject = subject, .now_ms = FX_NOW, .cfg = cfg};
    struct txn_budget_reply out;
    redisReply *r;

    CHECK(txn_budget_build(&f->args, &f->keys, &b) == 0);
    r = fx_run(f, SCRIPT_BUDGET, &f->args);
    CHECK(txn_budget_parse(TXN_BUDGET_PUT, r, &out) == 0);
    freeReplyObject(r);
}

/* The hour counter of subject at window start (0 when absent). */
static long long used(struct fx *f, const char *subject, long long start)
{
    char name[128];

    snprintf(name, sizeof(name), "%s:hour:%lld", subject, start);
    char *v = fx_str(f, "GET %s", fx_key(f, KS_BUDGET_USED, name));
    long long n = v ? atoll(v) : 0;
    free(v);
    return n;
}

/* CLAIM at now for up to n: how many units it leased; *wait the reply's wait ms. */
static int claim_n(struct fx *f, long long now, int n, long long *wait)
{
    redisReply *r = fx_claim(f, now, n);
    int got = r && r->type == REDIS_REPLY_ARRAY ? (int)(r->elements - 2) / 16 : -1;

    if (wait) {
        *wait = fx_elem_int(r, 0);
    }
    freeReplyObject(r);
    return got;
}

static void submit_tasks(struct fx *f, const char *const *ids, int n)
{
    for (int i = 0; i < n; i++) {
        struct txn_submit t = fx_task(ids[i]);
        CHECK(fx_submit1(f, &t) == 0);
    }
}

static void test_pace(struct fx *f)
{
    static const char *const ids[] = {"task_b1", "task_b2", "task_b3", "task_b4"};
    char counter[128];
    long long wait = 0;
    struct txn_outcome o;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    put_budget(
        f, "t:t1",
        "{\"policy\":\"pace\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":200000}]}");
    submit_tasks(f, ids, 4);
    /* two fit (150,000 of 200,000), the third would pass the cap: it waits for the window's end */
    CHECK(claim_n(f, FX_NOW, 4, &wait) == 2);
    CHECK(wait == H0 + HOUR - FX_NOW);
    CHECK(used(f, "t:t1", H0) == 2 * EST);
    CHECK_FIELD(f, "task_b1", "bres", "75000");
    snprintf(counter, sizeof(counter), "%s", fx_key(f, KS_BUDGET_USED, NULL));
    {
        char *w = fx_field(f, "task_b1", "bwin");
        char want[160];
        snprintf(want, sizeof(want), "%st:t1:hour:%lld", counter, H0);
        CHECK(w != NULL && strcmp(w, want) == 0);
        free(w);
    }
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_BUDGET_USED, "t:t1:hour:1699999200000")) > 0);
    CHECK_FIELD(f, "task_b3", "status", "queued");

    /* b1 completes at a real cost of 50,000: the counter holds 125,000, and b3 fits (200,000) */
    o = fx_outcome("task_b1", TXN_OUTCOME_COMPLETED);
    o.result = "{}";
    o.cost = "{\"amount\":0.00005,\"currency\":\"USD\"}";
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &o, 1));
    CHECK(used(f, "t:t1", H0) == 2 * EST - EST + 50000);
    CHECK_FIELD(f, "task_b1", "bres", NULL);
    CHECK(claim_n(f, FX_NOW + 20, 4, NULL) == 1);
    CHECK(used(f, "t:t1", H0) == 200000);
    /* b2 is retried: its reservation goes back (the next claim reserves again) */
    o = fx_outcome("task_b2", TXN_OUTCOME_RETRY);
    o.retry_at_ms = FX_NOW + 30;
    o.error = "{\"message\":\"x\"}";
    freeReplyObject(fx_finish(f, FX_NOW + 25, 10, &o, 1));
    CHECK(used(f, "t:t1", H0) == 200000 - EST);
    CHECK_FIELD(f, "task_b2", "bres", NULL);
    /* b3 parks (an upstream job): it keeps its reservation until its final poll */
    o = fx_outcome("task_b3", TXN_OUTCOME_PARK);
    o.up_id = "job1";
    o.poll_at_ms = FX_NOW + 40;
    freeReplyObject(fx_finish(f, FX_NOW + 26, 10, &o, 1));
    CHECK_FIELD(f, "task_b3", "bres", "75000");
    CHECK(used(f, "t:t1", H0) == 200000 - EST);
    /* a window that ends admits again, into the next window's counter */
    CHECK(claim_n(f, H0 + HOUR, 4, NULL) >= 1);
    CHECK(used(f, "t:t1", H0 + HOUR) >= EST);
    CHECK(used(f, "t:t1", H0) == 200000 - EST);
}

static void test_poll_and_tick(struct fx *f)
{
    static const char *const ids[] = {"task_p1", "task_p2"};
    struct txn_outcome o;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    put_budget(f, "t:t1",
               "{\"policy\":\"pace\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":"
               "100000000}]}");
    submit_tasks(f, ids, 2);
    CHECK(claim_n(f, FX_NOW, 2, NULL) == 2);
    CHECK(used(f, "t:t1", H0) == 2 * EST);
    /* p1 parks, then its poll completes at a real cost of 300,000 */
    o = fx_outcome("task_p1", TXN_OUTCOME_PARK);
    o.up_id = "job";
    o.poll_at_ms = FX_NOW + 5;
    freeReplyObject(fx_finish(f, FX_NOW + 1, 10, &o, 1));
    CHECK(claim_n(f, FX_NOW + 5, 1, NULL) == 1); /* the poll: fence 2, no new reservation */
    CHECK(used(f, "t:t1", H0) == 2 * EST);
    o = fx_outcome("task_p1", TXN_OUTCOME_COMPLETED);
    o.fence = 2;
    o.result = "{}";
    o.cost = "{\"amount\":0.0003,\"currency\":\"USD\"}";
    freeReplyObject(fx_finish(f, FX_NOW + 6, 10, &o, 1));
    CHECK(used(f, "t:t1", H0) == EST + 300000);
    /* p2's worker is lost: TICK requeues it and gives its reservation back */
    freeReplyObject(fx_tick(f, FX_NOW + FX_LEASE + 1, "n1"));
    CHECK_FIELD(f, "task_p2", "status", "queued");
    CHECK_FIELD(f, "task_p2", "bres", NULL);
    CHECK(used(f, "t:t1", H0) == 300000);
    /* a queued task cancelled held nothing: nothing moves */
    freeReplyObject(fx_cancel(f, "task_p2", "t1", FX_NOW + FX_LEASE + 2));
    CHECK(used(f, "t:t1", H0) == 300000);
}

static void test_key_budget(struct fx *f)
{
    static const char *const ids[] = {"task_k1", "task_k2", "task_k3"};

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    put_budget(
        f, "k:key1",
        "{\"policy\":\"pace\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":75000}]}");
    submit_tasks(f, ids, 3);
    /* k1 and k2 were made with key1, k3 with another key: the key's cap holds k2 back only */
    freeReplyObject(fx_cmd(f, "HSET %s key key1", fx_key(f, KS_TASK, "task_k1")));
    freeReplyObject(fx_cmd(f, "HSET %s key key1", fx_key(f, KS_TASK, "task_k2")));
    freeReplyObject(fx_cmd(f, "HSET %s key key2", fx_key(f, KS_TASK, "task_k3")));
    CHECK(claim_n(f, FX_NOW, 3, NULL) == 2);
    CHECK_FIELD(f, "task_k1", "status", "in_progress");
    CHECK_FIELD(f, "task_k2", "status", "queued");
    CHECK(used(f, "k:key1", H0) == EST);
    /* k3 is behind k2 in the tenant's list, but another key's task is not held by key1's budget
     * (the claim looks a few tasks past a head its key's budget holds) */
    CHECK_FIELD(f, "task_k3", "status", "in_progress");
    CHECK(used(f, "k:key2", H0) == 0);
    /* a tenant's own budget holds all of its tasks: no lookahead past it */
    put_budget(f, "t:t1",
               "{\"policy\":\"pace\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":1}]}");
    freeReplyObject(fx_cmd(f, "SET %s 1", fx_key(f, KS_BUDGET_USED, "t:t1:hour:1699999200000")));
    {
        static const char *const more[] = {"task_k4", "task_k5"};
        submit_tasks(f, more, 2);
    }
    CHECK(claim_n(f, FX_NOW + 1, 5, NULL) == 0);
    CHECK_FIELD(f, "task_k4", "status", "queued");
}

static void test_reject_and_get(struct fx *f)
{
    static const char *const ids[] = {"task_r1"};
    struct txn_submit t = fx_task("task_r2");
    struct txn_submitted res;
    struct txn_budget b = {.op = TXN_BUDGET_GET, .subject = "t:t1", .now_ms = FX_NOW};
    struct txn_budget_reply out;
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    put_budget(
        f, "t:t1",
        "{\"policy\":\"reject\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":75000},"
        "{\"window\":\"month\",\"ms\":0,\"max\":1000000000}]}");
    submit_tasks(f, ids, 1);
    /* a "reject" budget reserves at submit (so what it accepts it can run); the claim takes that
     * reservation as its own */
    CHECK(used(f, "t:t1", H0) == EST);
    CHECK_FIELD(f, "task_r1", "bres", "75000");
    CHECK(claim_n(f, FX_NOW, 1, NULL) == 1);
    CHECK(used(f, "t:t1", H0) == EST);
    /* the hour is used up: a new task is refused, with the ms until the hour ends */
    r = fx_submit(f, &t, 1);
    CHECK(txn_submit_parse(r, 1, &res) == 0 && res.result == TXN_SUBMIT_BUDGET);
    CHECK(res.count == H0 + HOUR - FX_NOW);
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_TASK, "task_r2")) == 0);
    /* another tenant is not held */
    t = fx_task("task_r3");
    t.tenant = "t2";
    CHECK(fx_submit1(f, &t) == 0);
    /* GET: each limit's window; FX_NOW is 2023-11-14T22:13:20Z: the month is November */
    CHECK(txn_budget_build(&f->args, &f->keys, &b) == 0);
    r = fx_run(f, SCRIPT_BUDGET, &f->args);
    CHECK(txn_budget_parse(TXN_BUDGET_GET, r, &out) == 0);
    CHECK(out.cfg != NULL && out.n == 2);
    CHECK(out.windows[0].used == EST && out.windows[0].start_ms == H0 &&
          out.windows[0].end_ms == H0 + HOUR);
    CHECK(out.windows[1].used == EST);
    CHECK(out.windows[1].start_ms == 1698796800000LL); /* 2023-11-01 */
    CHECK(out.windows[1].end_ms == 1701388800000LL);   /* 2023-12-01 */
    freeReplyObject(r);
    /* no budget: an empty answer */
    b.subject = "t:nobody";
    CHECK(txn_budget_build(&f->args, &f->keys, &b) == 0);
    r = fx_run(f, SCRIPT_BUDGET, &f->args);
    CHECK(txn_budget_parse(TXN_BUDGET_GET, r, &out) == 0 && out.cfg == NULL);
    freeReplyObject(r);
}

/* METRICS shows every budget's current windows (read at Redis's clock: nothing used in them
 * here); a deleted budget is gone from it. */
static void test_metrics(struct fx *f)
{
    struct txn_metrics m;
    struct txn_budget_state b;
    struct txn_budget del = {.op = TXN_BUDGET_DELETE, .subject = "t:t1", .now_ms = FX_NOW};
    redisReply *r;

    fx_flush(f);
    put_budget(
        f, "t:t1",
        "{\"policy\":\"pace\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":75000},"
        "{\"window\":\"month\",\"ms\":0,\"max\":900000}]}");
    txn_metrics_begin(&f->args);
    r = fx_run(f, SCRIPT_METRICS, &f->args);
    CHECK(txn_metrics_parse(r, &m) == 0);
    CHECK(m.n_budgets == 2);
    if (m.n_budgets == 2) {
        txn_metrics_budget(&m, 0, &b);
        CHECK_STR(b.subject, "t:t1");
        CHECK_STR(b.window, "hour");
        CHECK(b.max_nano == 75000 && b.used_nano == 0);
        txn_metrics_budget(&m, 1, &b);
        CHECK_STR(b.window, "month");
        CHECK(b.max_nano == 900000);
    }
    freeReplyObject(r);
    CHECK(txn_budget_build(&f->args, &f->keys, &del) == 0);
    freeReplyObject(fx_run(f, SCRIPT_BUDGET, &f->args));
    txn_metrics_begin(&f->args);
    r = fx_run(f, SCRIPT_METRICS, &f->args);
    CHECK(txn_metrics_parse(r, &m) == 0 && m.n_budgets == 0);
    freeReplyObject(r);
}

/* GET of a task a "pace" budget holds back: its place among its tenant's tasks and the wait until
 * the budget's windows let it through (GET reads Redis's clock: the windows are the real ones). */
static void test_get_paced(struct fx *f)
{
    static const char *const ids[] = {"task_g1", "task_g2", "task_g3", "task_g4", "task_g5"};
    struct txn_got g1, g3, g5;
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    /* two tasks' estimates an hour: g1 and g2 fit this hour, g3 and g4 the next, g5 the one after
     */
    put_budget(
        f, "t:t1",
        "{\"policy\":\"pace\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":150000}]}");
    submit_tasks(f, ids, 5);
    CHECK(txn_get_build(&f->args, &f->keys, "task_g1") == 0);
    r = fx_run(f, SCRIPT_GET, &f->args);
    CHECK(txn_get_parse(r, &g1) == 0);
    /* not held by the budget: the queue's own place, no pace configured so no eta */
    CHECK(g1.queue_position == 0);
    CHECK(g1.eta_s == -1);
    freeReplyObject(r);
    CHECK(txn_get_build(&f->args, &f->keys, "task_g3") == 0);
    r = fx_run(f, SCRIPT_GET, &f->args);
    CHECK(txn_get_parse(r, &g3) == 0);
    CHECK(g3.queue_position == 2);
    CHECK(g3.eta_s >= 1 && g3.eta_s <= 3600);
    freeReplyObject(r);
    CHECK(txn_get_build(&f->args, &f->keys, "task_g5") == 0);
    r = fx_run(f, SCRIPT_GET, &f->args);
    CHECK(txn_get_parse(r, &g5) == 0);
    CHECK(g5.queue_position == 4);
    CHECK(g5.eta_s - g3.eta_s >= 3599 && g5.eta_s - g3.eta_s <= 3601);
    freeReplyObject(r);

    /* a "reject" budget holds nothing back (it refused at submit): the queue's answer again */
    put_budget(
        f, "t:t1",
        "{\"policy\":\"reject\",\"limits\":[{\"window\":\"hour\",\"ms\":3600000,\"max\":150000}]}");
    CHECK(txn_get_build(&f->args, &f->keys, "task_g5") == 0);
    r = fx_run(f, SCRIPT_GET, &f->args);
    CHECK(txn_get_parse(r, &g5) == 0);
    CHECK(g5.eta_s == -1);
    freeReplyObject(r);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_pace(&f);
    test_poll_and_tick(&f);
    test_key_budget(&f);
    test_reject_and_get(&f);
    test_metrics(&f);
    test_get_paced(&f);
    fx_stop(&f);
    return check_done();
}
