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

/* The ids a CLAIM reply leased, comma-separated (static buffer). */
static const char *ids(const redisReply *r)
{
    static char buf[1024];
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && 2 + i * FX_CLAIM_UNIT < r->elements;
         i++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "",
                              FX_CLAIM_ID(r, i) ? FX_CLAIM_ID(r, i) : "?");
    }
    return buf;
}

static void submit(struct fx *f, const char *id, const char *tenant, const char *model,
                   const char *prio)
{
    struct fx_task t = {.id = id, .tenant = tenant, .model = model, .prio = prio};
    CHECK(fx_submit1(f, &t) == 0);
}

static void test_claim_one(struct fx *f)
{
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    submit(f, "task_a", "t1", "m", "1");
    r = fx_claim(f, FX_NOW, 10);
    CHECK(r != NULL && r->elements == 2 + FX_CLAIM_UNIT);
    CHECK(fx_elem_int(r, 0) == -1);
    CHECK_STR(fx_elem(r, 1), "");
    /* id, fence, attempts, max_attempts, tenant, model, kind, input, mode, status, up_id, job,
       dep, stream, reply_to */
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
    freeReplyObject(r);
    CHECK_FIELD(f, "task_a", "status", "in_progress");
    CHECK_FIELD(f, "task_a", "attempts", "1");
    CHECK_FIELD(f, "task_a", "fence", "1");
    CHECK_FIELD(f, "task_a", "dep", "0");
    CHECK_FIELD(f, "task_a", "inq", "0");
    CHECK_FIELD(f, "task_a", "started", "1700000000000");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_LEASES " task_a"), "1700000060000");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 inf"), "1");
    CHECK(fx_int(f, "LLEN " KEY_QUEUE "1:t1|m") == 0);
    CHECK(fx_stat(f, "status|queued") == 0);
    CHECK(fx_stat(f, "status|in_progress") == 1);
    CHECK(fx_stat(f, "tq|t1") == 0);
    CHECK(fx_stat(f, "depth|m|1") == 0);
    CHECK(fx_stat(f, "depthp|1") == 0);
    /* nothing left: an empty claim, and the empty list leaves the ring */
    r = fx_claim(f, FX_NOW, 10);
    CHECK(r != NULL && r->elements == 2);
    freeReplyObject(r);
    CHECK(fx_int(f, "LLEN " KEY_RING "1") == 0);
    CHECK(fx_int(f, "SCARD " KEY_RINGSET "1") == 0);
}

static void test_fairness_and_priority(struct fx *f)
{
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    submit(f, "task_x1", "x", "m", "1");
    submit(f, "task_x2", "x", "m", "1");
    submit(f, "task_x3", "x", "m", "1");
    submit(f, "task_x4", "x", "m", "1");
    submit(f, "task_y1", "y", "m", "1");
    submit(f, "task_b1", "z", "m", "2");
    submit(f, "task_i1", "z", "m", "0");
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
    submit(f, "task_1", "t1", "m", "1");
    submit(f, "task_2", "t1", "m", "1");
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "task_1");
    CHECK(fx_elem_int(r, 0) == 1000);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 rt"), "0");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 ts"), "1700000000000");
    CHECK_FIELD(f, "task_2", "status", "queued");
    r = fx_claim(f, FX_NOW + 500, 5);
    CHECK_STR(ids(r), "");
    CHECK(fx_elem_int(r, 0) == 500);
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 1000, 5);
    CHECK_STR(ids(r), "task_2");
    freeReplyObject(r);
}

static void test_concurrency_breaker_pause(struct fx *f)
{
    redisReply *r;
    struct fx_outcome done = {.id = "task_1",
                              .outcome = "completed",
                              .result = "{}",
                              .took_slot = "1",
                              .class = "ok",
                              .latency = "10",
                              .http_status = "200"};

    fx_flush(f);
    fx_routing(f, "m", ROUTING("cost", DEP(0, 1, 0.1)));
    submit(f, "task_1", "t1", "m", "1");
    submit(f, "task_2", "t1", "m", "1");
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "task_1");
    CHECK(fx_elem_int(r, 0) == 1000);
    freeReplyObject(r);
    /* the slot comes back with FINISH */
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &done, 1));
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 inf"), "0");
    r = fx_claim(f, FX_NOW + 20, 5);
    CHECK_STR(ids(r), "task_2");
    freeReplyObject(r);

    /* an open breaker: the wait is until it half-opens; then one probe, then a second's wait */
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    freeReplyObject(fx_cmd(f, "HSET " KEY_DEP "m:0 br open bro %lld", FX_NOW));
    submit(f, "task_1", "t1", "m", "1");
    submit(f, "task_2", "t1", "m", "1");
    r = fx_claim(f, FX_NOW + 5000, 5);
    CHECK_STR(ids(r), "");
    CHECK(fx_elem_int(r, 0) == 10000);
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 15000, 5);
    CHECK_STR(ids(r), "task_1");
    CHECK(fx_elem_int(r, 0) == 1000);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 br"), "half");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 probe"), "1700000015000");

    /* a provider's pause */
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    freeReplyObject(fx_cmd(f, "HSET " KEY_DEP "m:0 pause %lld", FX_NOW + 3000));
    submit(f, "task_1", "t1", "m", "1");
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "");
    CHECK(fx_elem_int(r, 0) == 3000);
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 3000, 5);
    CHECK_STR(ids(r), "task_1");
    freeReplyObject(r);
}

static void test_strategies_and_avoid(struct fx *f)
{
    redisReply *r;
    struct fx_outcome retry = {.id = "task_1",
                               .outcome = "retry",
                               .error = "{}",
                               .retry_at = "1700000000500",
                               .took_slot = "1",
                               .class = "fail",
                               .avoid = "1"};

    fx_flush(f);
    fx_routing(f, "m", ROUTING("cost", DEP(0, 0, 1.0) "," DEP(0, 0, 0.1)));
    fx_routing(f, "o", ROUTING("ordered", DEP(0, 0, 1.0) "," DEP(0, 0, 0.1)));
    submit(f, "task_1", "t1", "m", "1");
    submit(f, "task_2", "t1", "o", "1");
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "task_1,task_2");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_1", "dep", "1"); /* the cheaper */
    CHECK_FIELD(f, "task_2", "dep", "0"); /* the first */
    /* a retry that avoids its deployment goes to the other one next time */
    r = fx_finish(f, FX_NOW + 100, 10, &retry, 1);
    CHECK_STR(fx_elem(r, 0), "retry");
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
    struct fx_task t = {.id = "task_cheap", .model = "m", .routing = "{\"max_cost\":0}"};

    fx_flush(f);
    submit(f, "task_g", "t1", "ghost", "1");
    r = fx_claim(f, FX_NOW, 5);
    CHECK_STR(ids(r), "");
    CHECK_STR(fx_elem(r, 1), "ghost");
    CHECK(fx_elem_int(r, 0) == -1);
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
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_EXPIRY " t1|task_cheap|failed|45|0"), "1700003600000");
    CHECK(fx_stat(f, "status|failed") == 1);
    CHECK(fx_stat(f, "status|queued") == 0);
    CHECK(fx_stat(f, "tq|t1") == 0);
    CHECK(fx_stat(f, "depth|m|1") == 0);
}

static void test_due_poll(struct fx *f)
{
    redisReply *r;
    struct fx_outcome park = {.id = "task_v",
                              .outcome = "park",
                              .up_id = "up_1",
                              .job = "{\"j\":1}",
                              .poll_at = "1700000002000",
                              .took_slot = "1",
                              .class = "ok",
                              .latency = "5"};

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    submit(f, "task_v", "t1", "m", "1");
    freeReplyObject(fx_claim(f, FX_NOW, 5));
    r = fx_finish(f, FX_NOW + 100, 10, &park, 1);
    CHECK_STR(fx_elem(r, 0), "park");
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 1000, 5);
    CHECK_STR(ids(r), "");
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW + 2000, 5);
    CHECK_STR(ids(r), "task_v");
    CHECK_STR(fx_elem(r, 3), "2");     /* a new fence */
    CHECK_STR(fx_elem(r, 4), "1");     /* no attempt spent */
    CHECK_STR(fx_elem(r, 10), "poll"); /* mode */
    CHECK_STR(fx_elem(r, 12), "up_1");
    CHECK_STR(fx_elem(r, 13), "{\"j\":1}");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZCARD " KEY_POLLS) == 0);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_LEASES " task_v"), "1700000062000");
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
