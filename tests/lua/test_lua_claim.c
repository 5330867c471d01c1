/*
 * tests/lua/test_lua_claim.c — CLAIM (core/lua/claim.lua) against a real redis-server: the
 * claim's writes and its reply, priorities, tenants taking turns within a priority, admission by
 * request bucket, calls in flight, breaker and pause (with the wait it reports), strategies and
 * `avoid`, a missing routing, an unmeetable max_cost, and due polls of parked tasks.
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

#define ROUTING(strategy, deps)                                                                    \
    "{\"strategy\":\"" strategy "\",\"breaker\":{\"min\":10,\"pct\":50,\"window\":30000,"          \
    "\"open\":15000},\"deps\":[" deps "]}"
#define DEP(rpm, maxc, pin)                                                                        \
    "{\"rpm\":" #rpm ",\"tpm\":0,\"maxc\":" #maxc ",\"weight\":1,\"pin\":" #pin ",\"pout\":" #pin  \
    ",\"pimg\":0,\"psec\":0}"

/* The ids a CLAIM reply leased, comma-separated, "?" for a unit the parser refused (static
 * buffer). */
static const char *ids(const redisReply *r)
{
    static char buf[1024];
    struct txn_claim_reply c;
    struct txn_claimed u;
    size_t n = 0;

    buf[0] = '\0';
    if (txn_claim_parse(r, &c) != 0) {
        return "(no reply)";
    }
    for (size_t i = 0; i < c.n_units; i++) {
        int ok = txn_claim_unit(&c, i, &u) == 0;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", ok ? u.id : "?");
    }
    return buf;
}

/* The wait a CLAIM reply reports (ms until a deployment's budget returns; -1 none; -999 no
 * reply). */
static long long wait_of(const redisReply *r)
{
    struct txn_claim_reply c;

    return txn_claim_parse(r, &c) == 0 ? c.wait_ms : -999;
}

static void submit(struct fx *f, const char *id, const char *tenant, const char *model,
                   enum task_priority prio)
{
    struct txn_submit t = fx_task(id);

    t.tenant = tenant;
    t.model = model;
    t.prio = prio;
    CHECK(fx_submit1(f, &t) == 0);
}

static void test_claim_one(struct fx *f)
{
    redisReply *r;
    struct txn_claim_reply c;
    struct txn_claimed u;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    submit(f, "task_a", "t1", "m", TASK_PRIO_NORMAL);
    r = fx_claim(f, FX_NOW, 10);
    /* the reply as the script writes it: the wait, the aliases without routing, then 16 fields a
       unit (id, fence, attempts, max_attempts, tenant, model, kind, input, mode, status, up_id,
       job, dep, stream, reply_to, created) */
    CHECK(r != NULL && r->elements == 2 + 16);
    CHECK(fx_elem_int(r, 0) == -1);
    CHECK_STR(fx_elem(r, 1), "");
    CHECK_STR(fx_elem(r, 2), "task_a");
    CHECK_STR(fx_elem(r, 3), "1");
    CHECK_STR(fx_elem(r, 4), "1");
    CHECK_STR(fx_elem(r, 5), "3");
    CHECK_STR(fx_elem(r, 6), "t1");
    CHECK_STR(fx_elem(r, 7), "m");
    CHECK_STR(fx_elem(r, 8), "chat");
    CHECK(fx_elem(r, 9) != NULL && strstr(fx_elem(r, 9), "messages") != NULL);
    CHECK_STR(fx_elem(r, 10), "call");
    CHECK_STR(fx_elem(r, 11), "in_progress");
    CHECK_STR(fx_elem(r, 12), "");
    CHECK_STR(fx_elem(r, 13), "");
    CHECK_STR(fx_elem(r, 14), "0");
    CHECK_STR(fx_elem(r, 15), "");
    CHECK_STR(fx_elem(r, 16), "");
    CHECK(fx_elem(r, 17) != NULL && strtoll(fx_elem(r, 17), NULL, 10) == FX_NOW);
    /* and as a worker reads it */
    CHECK(txn_claim_parse(r, &c) == 0);
    CHECK(c.wait_ms == -1);
    CHECK_STR(c.missing_routing, "");
    CHECK(c.n_units == 1);
    CHECK(txn_claim_unit(&c, 0, &u) == 0);
    CHECK_STR(u.id, "task_a");
    CHECK(u.fence == 1);
    CHECK(u.attempts == 1);
    CHECK(u.max_attempts == 3);
    CHECK_STR(u.tenant, "t1");
    CHECK_STR(u.model, "m");
    CHECK(u.kind == TASK_KIND_CHAT);
    CHECK(strstr(u.input, "messages") != NULL);
    CHECK(u.mode == TXN_MODE_CALL);
    CHECK(!u.cancelling);
    CHECK_STR(u.up_id, "");
    CHECK_STR(u.job, "");
    CHECK(u.dep == 0);
    CHECK(!u.stream);
    CHECK_STR(u.reply_to, "");
    CHECK(u.created_ms == FX_NOW);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_a", "status", "in_progress");
    CHECK_FIELD(f, "task_a", "attempts", "1");
    CHECK_FIELD(f, "task_a", "fence", "1");
    CHECK_FIELD(f, "task_a", "dep", "0");
    CHECK_FIELD(f, "task_a", "inq", "0");
    CHECK_FIELD(f, "task_a", "started", "1700000000000");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_a", fx_key(f, KS_LEASES, NULL)), "1700000060000");
    CHECK_OWNED(fx_str(f, "HGET %s inf", fx_key(f, KS_DEP, "m:0")), "1");
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_QUEUE, "1:t1|m")) == 0);
    CHECK(fx_stat(f, "status|queued") == 0);
    CHECK(fx_stat(f, "status|in_progress") == 1);
    CHECK(fx_stat(f, "tq|t1") == 0);
    CHECK(fx_stat(f, "depth|m|1") == 0);
    CHECK(fx_stat(f, "depthp|1") == 0);
    /* nothing left: an empty claim, and the empty list leaves the ring */
    r = fx_claim(f, FX_NOW, 10);
    CHECK(r != NULL && r->elements == 2);
    CHECK(txn_claim_parse(r, &c) == 0 && c.n_units == 0);
    freeReplyObject(r);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_RING, "1")) == 0);
    CHECK(fx_int(f, "SCARD %s", fx_key(f, KS_RINGSET, "1")) == 0);
}

static void test_fairness_and_priority(struct fx *f)
{
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    submit(f, "task_x1", "x", "m", TASK_PRIO_NORMAL);
    submit(f, "task_x2", "x", "m", TASK_PRIO_NORMAL);
    submit(f, "task_x3", "x", "m", TASK_PRIO_NORMAL);
    submit(f, "task_x4", "x", "m", TASK_PRIO_NORMAL);
    submit(f, "task_y1", "y", "m", TASK_PRIO_NORMAL);
    submit(f, "task_b1", "z", "m", TASK_PRIO_BATCH);
    submit(f, "task_i1", "z", "m", TASK_PRIO_INTERACTIVE);
    /* interactive first, then the tenants of normal take turns, batch last */
    r = fx_claim(f, FX_NOW, 3);
    CHECK_STR(ids(r), "task_i1,task_x1,task_y1");
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW, 10);
    CHECK_STR(ids(r), "task_x2,task_x3,task_x4,task_b1");
    freeReplyObject(r);
}

static void test_request_bucket(struct fx *f)
{
    redisReply *r;

    fx_flush(f);
    /* 60 rpm with a 1 s burst: one request now, the next a second later */
    fx_routing(f, "m", ROUTING("cost", DEP(60, 0, 0.1)));
    submit(f, "task_1", "t1", "m", TASK_PRIO_NORMAL);
    submit(f, "task_2", "t1", "m", TASK_PRIO_NORMAL);
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "task_1");
    CHECK(wait_of(r) == 1000);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "HGET %s rt", fx_key(f, KS_DEP, "m:0")), "0");
    CHECK_OWNED(fx_str(f, "HGET %s ts", fx_key(f, KS_DEP, "m:0")), "1700000000000");
    CHECK_FIELD(f, "task_2", "status", "queued");
    r = fx_claim(f, FX_NOW + 500, 5);
    CHECK_STR(ids(r), "");
    CHECK(wait_of(r) == 500);
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 1000, 5);
    CHECK_STR(ids(r), "task_2");
    freeReplyObject(r);
}

static void test_concurrency_breaker_pause(struct fx *f)
{
    redisReply *r;
    struct txn_outcome done = fx_outcome("task_1", TXN_OUTCOME_COMPLETED);

    done.result = "{}";
    done.took_slot = true;
    done.class = TXN_CLASS_OK;
    done.latency_ms = 10;
    done.http_status = 200;
    fx_flush(f);
    fx_routing(f, "m", ROUTING("cost", DEP(0, 1, 0.1)));
    submit(f, "task_1", "t1", "m", TASK_PRIO_NORMAL);
    submit(f, "task_2", "t1", "m", TASK_PRIO_NORMAL);
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "task_1");
    CHECK(wait_of(r) == 1000);
    freeReplyObject(r);
    /* the slot comes back with FINISH */
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &done, 1));
    CHECK_OWNED(fx_str(f, "HGET %s inf", fx_key(f, KS_DEP, "m:0")), "0");
    r = fx_claim(f, FX_NOW + 20, 5);
    CHECK_STR(ids(r), "task_2");
    freeReplyObject(r);

    /* an open breaker: the wait is until it half-opens; then one probe, then a second's wait */
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    freeReplyObject(fx_cmd(f, "HSET %s br open bro %lld", fx_key(f, KS_DEP, "m:0"), FX_NOW));
    submit(f, "task_1", "t1", "m", TASK_PRIO_NORMAL);
    submit(f, "task_2", "t1", "m", TASK_PRIO_NORMAL);
    r = fx_claim(f, FX_NOW + 5000, 5);
    CHECK_STR(ids(r), "");
    CHECK(wait_of(r) == 10000);
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 15000, 5);
    CHECK_STR(ids(r), "task_1");
    CHECK(wait_of(r) == 1000);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "HGET %s br", fx_key(f, KS_DEP, "m:0")), "half");
    CHECK_OWNED(fx_str(f, "HGET %s probe", fx_key(f, KS_DEP, "m:0")), "1700000015000");

    /* a provider's pause */
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    freeReplyObject(fx_cmd(f, "HSET %s pause %lld", fx_key(f, KS_DEP, "m:0"), FX_NOW + 3000));
    submit(f, "task_1", "t1", "m", TASK_PRIO_NORMAL);
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "");
    CHECK(wait_of(r) == 3000);
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 3000, 5);
    CHECK_STR(ids(r), "task_1");
    freeReplyObject(r);
}

static void test_strategies_and_avoid(struct fx *f)
{
    redisReply *r;
    struct txn_outcome retry = fx_outcome("task_1", TXN_OUTCOME_RETRY);
    enum txn_applied applied;

    retry.error = "{}";
    retry.retry_at_ms = 1700000000500LL;
    retry.took_slot = true;
    retry.class = TXN_CLASS_FAIL;
    retry.avoid = true;
    fx_flush(f);
    fx_routing(f, "m", ROUTING("cost", DEP(0, 0, 1.0) "," DEP(0, 0, 0.1)));
    fx_routing(f, "o", ROUTING("ordered", DEP(0, 0, 1.0) "," DEP(0, 0, 0.1)));
    submit(f, "task_1", "t1", "m", TASK_PRIO_NORMAL);
    submit(f, "task_2", "t1", "o", TASK_PRIO_NORMAL);
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "task_1,task_2");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_1", "dep", "1"); /* the cheaper */
    CHECK_FIELD(f, "task_2", "dep", "0"); /* the first */
    /* a retry that avoids its deployment goes to the other one next time */
    r = fx_finish(f, FX_NOW + 100, 10, &retry, 1);
    CHECK(txn_finish_parse(r, &applied, 1) == 0 && applied == TXN_APPLIED_RETRY);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_1", "avoid", "1");
    freeReplyObject(fx_tick(f, FX_NOW + 500, "node-1"));
    r = fx_claim(f, FX_NOW + 600, 5);
    CHECK_STR(ids(r), "task_1");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_1", "dep", "0");
    CHECK_FIELD(f, "task_1", "attempts", "2");
    CHECK_FIELD(f, "task_1", "fence", "2");
}

static void test_norouting_and_impossible(struct fx *f)
{
    redisReply *r;
    struct txn_submit t = fx_task("task_cheap");
    struct txn_claim_reply c;

    t.routing = "{\"max_cost\":0}";
    fx_flush(f);
    submit(f, "task_g", "t1", "ghost", TASK_PRIO_NORMAL);
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "");
    CHECK(txn_claim_parse(r, &c) == 0);
    CHECK_STR(c.missing_routing, "ghost");
    CHECK(c.wait_ms == -1);
    freeReplyObject(r);
    CHECK(fx_stat(f, "norouting|ghost") == 1);
    CHECK_FIELD(f, "task_g", "status", "queued");
    fx_routing(f, "ghost", FX_ROUTING_OPEN);
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "task_g");
    freeReplyObject(r);

    /* no deployment meets the task's max_cost: it fails at once with the caller's error */
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &t) == 0);
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_cheap", "status", "failed");
    CHECK_FIELD(f, "task_cheap", "error", FX_NOROUTE_ERROR);
    CHECK_FIELD(f, "task_cheap", "completed", "1700000000000");
    CHECK_OWNED(fx_str(f, "ZSCORE %s t1|task_cheap|failed|45|0", fx_key(f, KS_EXPIRY, NULL)),
                "1700003600000");
    CHECK(fx_stat(f, "status|failed") == 1);
    CHECK(fx_stat(f, "status|queued") == 0);
    CHECK(fx_stat(f, "tq|t1") == 0);
    CHECK(fx_stat(f, "depth|m|1") == 0);
}

static void test_due_poll(struct fx *f)
{
    redisReply *r;
    struct txn_outcome park = fx_outcome("task_v", TXN_OUTCOME_PARK);
    enum txn_applied applied;
    struct txn_claim_reply c;
    struct txn_claimed u;

    park.up_id = "up_1";
    park.job = "{\"j\":1}";
    park.poll_at_ms = 1700000002000LL;
    park.took_slot = true;
    park.class = TXN_CLASS_OK;
    park.latency_ms = 5;
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    submit(f, "task_v", "t1", "m", TASK_PRIO_NORMAL);
    freeReplyObject(fx_claim(f, FX_NOW, 5));
    r = fx_finish(f, FX_NOW + 100, 10, &park, 1);
    CHECK(txn_finish_parse(r, &applied, 1) == 0 && applied == TXN_APPLIED_PARK);
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 1000, 5);
    CHECK_STR(ids(r), "");
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 2000, 5);
    CHECK_STR(ids(r), "task_v");
    CHECK(txn_claim_parse(r, &c) == 0 && txn_claim_unit(&c, 0, &u) == 0);
    CHECK(u.fence == 2);    /* a new fence */
    CHECK(u.attempts == 1); /* no attempt spent */
    CHECK(u.mode == TXN_MODE_POLL);
    CHECK(!u.cancelling);
    CHECK_STR(u.up_id, "up_1");
    CHECK_STR(u.job, "{\"j\":1}");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_POLLS, NULL)) == 0);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_v", fx_key(f, KS_LEASES, NULL)), "1700000062000");
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_claim_one(&f);
    test_fairness_and_priority(&f);
    test_request_bucket(&f);
    test_concurrency_breaker_pause(&f);
    test_strategies_and_avoid(&f);
    test_norouting_and_impossible(&f);
    test_due_poll(&f);
    fx_stop(&f);
    return check_done();
}
