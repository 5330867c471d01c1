/*
 * tests/lua/test_lua_webhooks.c — webhook deliveries against a real redis-server: the events the
 * transitions queue (task.started from CLAIM, task.progress at most once a second, the terminal
 * event from finalize), WH_CLAIM (core/lua/wh_claim.lua: each tenant its share of the slots, the
 * deliveries in flight counted, the ones held back moved behind when the scan is full, vanished
 * deliveries dropped) and WH_DONE (core/lua/wh_done.lua: the attempt logged on the delivery and
 * its task, retry, delivered, the first body kept, a vanished delivery).
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

#define HOOK                                                                                       \
    "{\"url\":\"https://hooks.example/x\",\"events\":[\"task.started\",\"task.progress\","         \
    "\"task.completed\"]}"

static void test_events(struct fx *f)
{
    struct txn_submit t = fx_task("task_wh1");
    struct txn_outcome park = fx_outcome("task_wh1", TXN_OUTCOME_PARK);
    struct txn_outcome done = fx_outcome("task_wh1", TXN_OUTCOME_COMPLETED);

    t.tenant = "acme";
    t.webhook = HOOK;
    park.up_id = "u";
    park.progress = 10;
    park.poll_at_ms = 1700000000100LL;
    park.took_slot = true;
    park.class = TXN_CLASS_OK;
    done.fence = 3;
    done.result = "{}";
    done.class = TXN_CLASS_NONE;
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    CHECK_OWNED(fx_str(f, "HGET %s event", fx_key(f, KS_DELIVERY, "msg_wh1_1")), "task.started");
    CHECK_OWNED(fx_str(f, "HGET %s task", fx_key(f, KS_DELIVERY, "msg_wh1_1")), "task_wh1");
    CHECK_OWNED(fx_str(f, "HGET %s tenant", fx_key(f, KS_DELIVERY, "msg_wh1_1")), "acme");
    CHECK_OWNED(fx_str(f, "HGET %s url", fx_key(f, KS_DELIVERY, "msg_wh1_1")),
                "https://hooks.example/x");
    CHECK_OWNED(fx_str(f, "HGET %s attempts", fx_key(f, KS_DELIVERY, "msg_wh1_1")), "0");
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_DELIVERY, "msg_wh1_1")) > 0);
    CHECK_OWNED(fx_str(f, "ZSCORE %s msg_wh1_1", fx_key(f, KS_WEBHOOK_QUEUE, NULL)),
                "1700000000000");
    /* progress, then progress again within the second: one event */
    freeReplyObject(fx_finish(f, FX_NOW + 50, 10, &park, 1));
    CHECK_OWNED(fx_str(f, "HGET %s event", fx_key(f, KS_DELIVERY, "msg_wh1_2")), "task.progress");
    freeReplyObject(fx_claim(f, FX_NOW + 100, 1));
    park.fence = 2;
    park.progress = 20;
    park.poll_at_ms = 1700000000200LL;
    park.took_slot = false;
    freeReplyObject(fx_finish(f, FX_NOW + 150, 10, &park, 1));
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == 2);
    freeReplyObject(fx_claim(f, FX_NOW + 200, 1));
    freeReplyObject(fx_finish(f, FX_NOW + 300, 10, &done, 1));
    CHECK_OWNED(fx_str(f, "HGET %s event", fx_key(f, KS_DELIVERY, "msg_wh1_3")), "task.completed");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == 3);
}

/* A delivery due at `due` for tenant's task. */
static void delivery(struct fx *f, const char *id, const char *tenant, long long due)
{
    freeReplyObject(fx_cmd(f,
                           "HSET %s task task_%s tenant %s event task.completed url https://h/%s "
                           "attempts 0 body {}",
                           fx_key(f, KS_DELIVERY, id), id, tenant, id));
    freeReplyObject(fx_cmd(f, "ZADD %s %lld %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL), due, id));
}

/* WH_CLAIM at FX_NOW of up to n deliveries (lease 15 s, slots, 48 a tenant at most, scan), the
 * worker holding `held` of held_tenant's (NULL: none). Caller frees the reply. */
static redisReply *wh_claim(struct fx *f, int n, int slots, int scan, const char *held_tenant,
                            int held)
{
    struct txn_wh_held h = {.tenant = held_tenant, .count = held};
    struct txn_wh_claim p = {.now_ms = FX_NOW,
                             .n = n,
                             .lease_ms = 15000,
                             .slots = slots,
                             .most = 48,
                             .scan = scan,
                             .held = &h,
                             .n_held = held_tenant ? 1 : 0};

    CHECK(txn_wh_claim_build(&f->args, &f->keys, &p) == 0);
    return fx_run(f, SCRIPT_WH_CLAIM, &f->args);
}

/* The msg ids of a WH_CLAIM reply, comma-separated (static buffer). */
static const char *claimed(const redisReply *r)
{
    static char buf[512];
    struct txn_wh_claimed c;
    struct txn_wh_delivery d;
    size_t n = 0;

    buf[0] = '\0';
    if (txn_wh_claim_parse(r, &c) != 0) {
        return "(no reply)";
    }
    for (size_t i = 0; i < c.n; i++) {
        int ok = txn_wh_claimed_get(&c, i, &d) == 0;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", ok ? d.id : "?");
    }
    return buf;
}

static void setup_deliveries(struct fx *f)
{
    fx_flush(f);
    delivery(f, "a1", "A", FX_NOW - 10);
    delivery(f, "a2", "A", FX_NOW - 9);
    delivery(f, "a3", "A", FX_NOW - 8);
    delivery(f, "a4", "A", FX_NOW - 7);
    delivery(f, "a5", "A", FX_NOW - 6);
    delivery(f, "b1", "B", FX_NOW - 1);
    delivery(f, "later", "B", FX_NOW + 1000);
}

static void test_claim(struct fx *f)
{
    struct txn_wh_claimed c;
    struct txn_wh_delivery d;
    redisReply *r;

    /* 4 slots, two tenants due: 2 each at most */
    setup_deliveries(f);
    r = wh_claim(f, 10, 4, 100, NULL, 0);
    CHECK_STR(claimed(r), "a1,a2,b1");
    CHECK(txn_wh_claim_parse(r, &c) == 0 && txn_wh_claimed_get(&c, 0, &d) == 0);
    CHECK_STR(d.id, "a1");
    CHECK_STR(d.task, "task_a1");
    CHECK_STR(d.tenant, "A");
    CHECK_STR(d.event, "task.completed");
    CHECK_STR(d.url, "https://h/a1");
    CHECK(d.attempt == 1);
    CHECK(d.body != NULL && d.body_len == 2 && memcmp(d.body, "{}", 2) == 0);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "ZSCORE %s a1", fx_key(f, KS_WEBHOOK_QUEUE, NULL)), "1700000015000");
    CHECK_OWNED(fx_str(f, "ZSCORE %s a3", fx_key(f, KS_WEBHOOK_QUEUE, NULL)), "1699999999992");
    CHECK_OWNED(fx_str(f, "HGET %s attempts", fx_key(f, KS_DELIVERY, "a1")), "1");

    /* the worker already delivers 2 for A: A waits, B goes */
    setup_deliveries(f);
    r = wh_claim(f, 10, 4, 100, "A", 2);
    CHECK_STR(claimed(r), "b1");
    freeReplyObject(r);

    /* a full scan: the held-back deliveries move just behind those due now, in order */
    setup_deliveries(f);
    r = wh_claim(f, 10, 4, 6, NULL, 0);
    CHECK_STR(claimed(r), "a1,a2,b1");
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "ZSCORE %s a3", fx_key(f, KS_WEBHOOK_QUEUE, NULL)), "1700000000001");
    CHECK_OWNED(fx_str(f, "ZSCORE %s a5", fx_key(f, KS_WEBHOOK_QUEUE, NULL)), "1700000000003");

    /* n bounds the claim; a delivery whose hash is gone leaves the queue */
    setup_deliveries(f);
    freeReplyObject(fx_cmd(f, "DEL %s", fx_key(f, KS_DELIVERY, "a1")));
    r = wh_claim(f, 1, 4, 100, NULL, 0);
    CHECK_STR(claimed(r), "a2");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZSCORE %s a1", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == -999);
}

/* WH_DONE of delivery id: outcome, due again at next (a retry), the attempt record rec and the
 * body rendered (NULL: keep the one it has); the outcome recorded (TXN_WH_GONE: no such
 * delivery, TXN_WH_OUTCOME_COUNT: no answer). */
static enum txn_wh_outcome wh_done(struct fx *f, const char *id, enum txn_wh_outcome outcome,
                                   long long next, const char *rec, const char *body)
{
    struct txn_wh_done p = {
        .msg_id = id, .outcome = outcome, .next_at_ms = next, .record = rec, .body = body};
    enum txn_wh_outcome recorded = TXN_WH_OUTCOME_COUNT;
    redisReply *r;

    CHECK(txn_wh_done_build(&f->args, &f->keys, &p) == 0);
    r = fx_run(f, SCRIPT_WH_DONE, &f->args);
    CHECK(txn_wh_done_parse(r, &recorded) == 0);
    freeReplyObject(r);
    return recorded;
}

static void test_done(struct fx *f)
{
    struct txn_submit t = fx_task("task_d1");
    struct txn_wh_done bad = {.msg_id = "d1", .outcome = TXN_WH_GONE};

    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_cmd(f,
                           "HSET %s task task_d1 tenant t1 event task.completed url https://h "
                           "attempts 1",
                           fx_key(f, KS_DELIVERY, "d1")));
    freeReplyObject(fx_cmd(f, "ZADD %s %lld d1", fx_key(f, KS_WEBHOOK_QUEUE, NULL), FX_NOW));
    CHECK(wh_done(f, "d1", TXN_WH_RETRY, 1700000005000LL, "{\"attempt\":1,\"status\":500}",
                  "{\"b\":1}") == TXN_WH_RETRY);
    CHECK_OWNED(fx_str(f, "HGET %s state", fx_key(f, KS_DELIVERY, "d1")), "retry");
    CHECK_OWNED(fx_str(f, "HGET %s body", fx_key(f, KS_DELIVERY, "d1")), "{\"b\":1}");
    CHECK_OWNED(fx_str(f, "HGET %s log", fx_key(f, KS_DELIVERY, "d1")),
                "[{\"attempt\":1,\"status\":500}]");
    CHECK_FIELD(f, "task_d1", "webhook_log", "[{\"attempt\":1,\"status\":500}]");
    CHECK_OWNED(fx_str(f, "ZSCORE %s d1", fx_key(f, KS_WEBHOOK_QUEUE, NULL)), "1700000005000");
    /* the retry sends the first body, not a new one */
    CHECK(wh_done(f, "d1", TXN_WH_DELIVERED, 0, "{\"attempt\":2,\"status\":200}", "{\"b\":2}") ==
          TXN_WH_DELIVERED);
    CHECK_OWNED(fx_str(f, "HGET %s body", fx_key(f, KS_DELIVERY, "d1")), "{\"b\":1}");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == 0);
    CHECK(fx_stat(f, "webhooks|retry") == 1);
    CHECK(fx_stat(f, "webhooks|delivered") == 1);
    CHECK_OWNED(fx_str(f, "HGET %s log", fx_key(f, KS_DELIVERY, "d1")),
                "[{\"attempt\":1,\"status\":500},{\"attempt\":2,\"status\":200}]");
    /* gone: dropped from the queue */
    freeReplyObject(fx_cmd(f, "ZADD %s %lld ghost", fx_key(f, KS_WEBHOOK_QUEUE, NULL), FX_NOW));
    CHECK(wh_done(f, "ghost", TXN_WH_DELIVERED, 0, "{}", NULL) == TXN_WH_GONE);
    /* "gone" is an answer, never an outcome a worker reports */
    CHECK(txn_wh_done_build(&f->args, &f->keys, &bad) == CORE_EINVAL);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == 0);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_events(&f);
    test_claim(&f);
    test_done(&f);
    fx_stop(&f);
    return check_done();
}
