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
    struct fx_task t = {.id = "task_wh1", .tenant = "acme", .webhook = HOOK};
    struct fx_outcome park = {.id = "task_wh1",
                              .outcome = "park",
                              .up_id = "u",
                              .progress = "10",
                              .poll_at = "1700000000100",
                              .took_slot = "1",
                              .class = "ok"};
    struct fx_outcome done = {
        .id = "task_wh1", .fence = "3", .outcome = "completed", .result = "{}", .class = "none"};

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_wh1_1 event"), "task.started");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_wh1_1 task"), "task_wh1");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_wh1_1 tenant"), "acme");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_wh1_1 url"), "https://hooks.example/x");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_wh1_1 attempts"), "0");
    CHECK(fx_int(f, "PTTL " KEY_DELIVERY "msg_wh1_1") > 0);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_WEBHOOK_QUEUE " msg_wh1_1"), "1700000000000");
    /* progress, then progress again within the second: one event */
    freeReplyObject(fx_finish(f, FX_NOW + 50, 10, &park, 1));
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_wh1_2 event"), "task.progress");
    freeReplyObject(fx_claim(f, FX_NOW + 100, 1));
    park.fence = "2";
    park.progress = "20";
    park.poll_at = "1700000000200";
    park.took_slot = "0";
    freeReplyObject(fx_finish(f, FX_NOW + 150, 10, &park, 1));
    CHECK(fx_int(f, "ZCARD " KEY_WEBHOOK_QUEUE) == 2);
    freeReplyObject(fx_claim(f, FX_NOW + 200, 1));
    freeReplyObject(fx_finish(f, FX_NOW + 300, 10, &done, 1));
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_wh1_3 event"), "task.completed");
    CHECK(fx_int(f, "ZCARD " KEY_WEBHOOK_QUEUE) == 3);
}

/* A delivery due at `due` for tenant's task. */
static void delivery(struct fx *f, const char *id, const char *tenant, long long due)
{
    freeReplyObject(fx_cmd(f,
                           "HSET " KEY_DELIVERY "%s task task_%s tenant %s event task.completed "
                           "url https://h/%s attempts 0 body {}",
                           id, id, tenant, id));
    freeReplyObject(fx_cmd(f, "ZADD " KEY_WEBHOOK_QUEUE " %lld %s", due, id));
}

static redisReply *wh_claim(struct fx *f, int n, int slots, int scan, const char *held_tenant,
                            int held)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, KEY_WEBHOOK_QUEUE);
    fx_argf(a, "%lld", FX_NOW);
    fx_argf(a, "%d", n);
    fx_arg(a, "15000");
    fx_argf(a, "%d", slots);
    fx_arg(a, "48");
    fx_argf(a, "%d", scan);
    if (held_tenant) {
        fx_arg(a, held_tenant);
        fx_argf(a, "%d", held);
    }
    r = fx_script(f, SCRIPT_WH_CLAIM, 1, a);
    fx_args_free(a);
    return r;
}

/* The msg ids of a WH_CLAIM reply, comma-separated (static buffer). */
static const char *claimed(const redisReply *r)
{
    static char buf[512];
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i < r->elements; i += 7) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", i ? "," : "", fx_elem(r, i));
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
    redisReply *r;

    /* 4 slots, two tenants due: 2 each at most */
    setup_deliveries(f);
    r = wh_claim(f, 10, 4, 100, NULL, 0);
    CHECK_STR(claimed(r), "a1,a2,b1");
    /* msg id, task id, tenant, event, url, attempt, body */
    CHECK_STR(fx_elem(r, 1), "task_a1");
    CHECK_STR(fx_elem(r, 2), "A");
    CHECK_STR(fx_elem(r, 3), "task.completed");
    CHECK_STR(fx_elem(r, 4), "https://h/a1");
    CHECK_STR(fx_elem(r, 5), "1");
    CHECK_STR(fx_elem(r, 6), "{}");
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_WEBHOOK_QUEUE " a1"), "1700000015000");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_WEBHOOK_QUEUE " a3"), "1699999999992");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "a1 attempts"), "1");

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
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_WEBHOOK_QUEUE " a3"), "1700000000001");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_WEBHOOK_QUEUE " a5"), "1700000000003");

    /* n bounds the claim; a delivery whose hash is gone leaves the queue */
    setup_deliveries(f);
    freeReplyObject(fx_cmd(f, "DEL " KEY_DELIVERY "a1"));
    r = wh_claim(f, 1, 4, 100, NULL, 0);
    CHECK_STR(claimed(r), "a2");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZSCORE " KEY_WEBHOOK_QUEUE " a1") == -999);
}

static redisReply *wh_done(struct fx *f, const char *id, const char *outcome, const char *next,
                           const char *rec, const char *body)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, KEY_WEBHOOK_QUEUE);
    fx_arg(a, id);
    fx_arg(a, outcome);
    fx_arg(a, next);
    fx_arg(a, rec);
    fx_arg(a, body);
    r = fx_script(f, SCRIPT_WH_DONE, 1, a);
    fx_args_free(a);
    return r;
}

static void test_done(struct fx *f)
{
    struct fx_task t = {.id = "task_d1"};
    redisReply *r;

    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_cmd(f, "HSET " KEY_DELIVERY "d1 task task_d1 tenant t1 event task.completed "
                              "url https://h attempts 1"));
    freeReplyObject(fx_cmd(f, "ZADD " KEY_WEBHOOK_QUEUE " %lld d1", FX_NOW));
    r = wh_done(f, "d1", "retry", "1700000005000", "{\"attempt\":1,\"status\":500}", "{\"b\":1}");
    CHECK_STR(fx_elem(r, 0), "retry");
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "d1 state"), "retry");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "d1 body"), "{\"b\":1}");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "d1 log"), "[{\"attempt\":1,\"status\":500}]");
    CHECK_FIELD(f, "task_d1", "webhook_log", "[{\"attempt\":1,\"status\":500}]");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_WEBHOOK_QUEUE " d1"), "1700000005000");
    /* the retry sends the first body, not a new one */
    r = wh_done(f, "d1", "delivered", "0", "{\"attempt\":2,\"status\":200}", "{\"b\":2}");
    CHECK_STR(fx_elem(r, 0), "delivered");
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "d1 body"), "{\"b\":1}");
    CHECK(fx_int(f, "ZCARD " KEY_WEBHOOK_QUEUE) == 0);
    CHECK(fx_stat(f, "webhooks|retry") == 1);
    CHECK(fx_stat(f, "webhooks|delivered") == 1);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "d1 log"),
                "[{\"attempt\":1,\"status\":500},{\"attempt\":2,\"status\":200}]");
    /* gone: dropped from the queue */
    freeReplyObject(fx_cmd(f, "ZADD " KEY_WEBHOOK_QUEUE " %lld ghost", FX_NOW));
    r = wh_done(f, "ghost", "delivered", "0", "{}", "");
    CHECK_STR(fx_elem(r, 0), "gone");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZCARD " KEY_WEBHOOK_QUEUE) == 0);
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
