/*
 * tests/lua/test_lua_tick.c — TICK (core/lua/tick.lua) against a real redis-server: the leader
 * lock, due retries promoted to the head of their queue, expired leases recovered (requeued,
 * failed on the last attempt, cancelled when cancelling, back to the poll set with an upstream
 * job), deadlines (queued: expired; running: cancelling), and finished tasks swept from the
 * tenant lists with their stored and artifact bytes given back.
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

/* TICK's counts: promoted, recovered, swept, expired (after "leader"). */
static void check_counts(const redisReply *r, long long promoted, long long recovered,
                         long long swept, long long expired)
{
    CHECK_STR(fx_elem(r, 0), "leader");
    CHECK(fx_elem_int(r, 1) == promoted);
    CHECK(fx_elem_int(r, 2) == recovered);
    CHECK(fx_elem_int(r, 3) == swept);
    CHECK(fx_elem_int(r, 4) == expired);
}

static void setup(struct fx *f, const char *const *ids, int n, int max_attempts)
{
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < n; i++) {
        struct fx_task t = {.id = ids[i], .max_attempts = max_attempts};
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, n));
}

static void test_leader(struct fx *f)
{
    redisReply *r;
    char *before;

    fx_flush(f);
    freeReplyObject(fx_cmd(f, "SET " KEY_LEADER " other PX 10000"));
    before = fx_dump(f);
    r = fx_tick(f, FX_NOW, "me");
    CHECK(r != NULL && r->elements == 1);
    CHECK_STR(fx_elem(r, 0), "follower");
    freeReplyObject(r);
    CHECK_OWNED(fx_dump(f), before);
    free(before);
    freeReplyObject(fx_cmd(f, "DEL " KEY_LEADER));
    r = fx_tick(f, FX_NOW, "me");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "GET " KEY_LEADER), "me");
    CHECK(fx_int(f, "PTTL " KEY_LEADER) > 0);
}

static void test_promote(struct fx *f)
{
    static const char *const ids[] = {"task_r", "task_q"};
    struct fx_outcome retry = {.id = "task_r",
                               .outcome = "retry",
                               .error = "{}",
                               .retry_at = "1700000005000",
                               .took_slot = "1",
                               .class = "fail"};
    redisReply *r;
    redisContext *sub;

    setup(f, ids, 1, 3);
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, &retry, 1));
    sub = fx_subscribe(f, FX_WAKE);
    r = fx_tick(f, FX_NOW + 4999, "n");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    CHECK(fx_messages(f, sub, FX_WAKE, NULL, 0) == 0);
    /* a task submitted meanwhile is behind it: the retry goes to the head */
    {
        struct fx_task t = {.id = "task_q"};
        CHECK(fx_submit1(f, &t) == 0);
    }
    CHECK(fx_messages(f, sub, FX_WAKE, NULL, 0) == 1);
    r = fx_tick(f, FX_NOW + 5000, "n");
    check_counts(r, 1, 0, 0, 0);
    freeReplyObject(r);
    CHECK(fx_messages(f, sub, FX_WAKE, NULL, 0) == 1);
    CHECK(fx_int(f, "ZCARD " KEY_DELAYED) == 0);
    CHECK_OWNED(fx_str(f, "LINDEX " KEY_QUEUE "1:t1|m -1"), "task_r");
    CHECK_FIELD(f, "task_r", "inq", "1");
    CHECK(fx_stat(f, "tq|t1") == 2);
    CHECK(fx_stat(f, "depth|m|1") == 2);
    redisFree(sub);
}

static void test_recover(struct fx *f)
{
    static const char *const ids[] = {"task_a", "task_k", "task_p"};
    struct fx_outcome park = {.id = "task_p",
                              .outcome = "park",
                              .up_id = "up_p",
                              .poll_at = "1700000001000",
                              .took_slot = "1",
                              .class = "ok"};
    redisReply *r;

    setup(f, ids, 3, 3);
    freeReplyObject(fx_cancel(f, "task_k", "t1", FX_NOW + 10));
    /* task_p is parked, then claimed for its poll (lease from FX_NOW + 1000) */
    freeReplyObject(fx_finish(f, FX_NOW + 20, 10, &park, 1));
    freeReplyObject(fx_claim(f, FX_NOW + 1000, 5));
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 inf"), "2");
    r = fx_tick(f, FX_NOW + FX_LEASE - 1, "n");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    r = fx_tick(f, FX_NOW + FX_LEASE + 1000, "n");
    check_counts(r, 0, 3, 0, 0);
    freeReplyObject(r);
    /* in progress: back to the head of its queue, its call slot returned */
    CHECK_FIELD(f, "task_a", "status", "queued");
    CHECK_FIELD(f, "task_a", "attempts", "1");
    CHECK_OWNED(fx_str(f, "LINDEX " KEY_QUEUE "1:t1|m -1"), "task_a");
    /* cancelling: cancelled */
    CHECK_FIELD(f, "task_k", "status", "cancelled");
    /* an upstream job still runs: due for a poll now */
    CHECK_FIELD(f, "task_p", "status", "in_progress");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_POLLS " task_p"), "1700000061000");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 inf"), "0");
    CHECK(fx_int(f, "ZCARD " KEY_LEASES) == 0);
    CHECK(fx_stat(f, "status|queued") == 1);
    CHECK(fx_stat(f, "status|in_progress") == 1);
    CHECK(fx_stat(f, "status|cancelled") == 1);

    /* the last attempt's lease expired: failed with the caller's error */
    setup(f, ids, 1, 1);
    r = fx_tick(f, FX_NOW + FX_LEASE, "n");
    check_counts(r, 0, 1, 0, 0);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_a", "status", "failed");
    CHECK_FIELD(f, "task_a", "error", FX_LOST_ERROR);
    CHECK(fx_stat(f, "status|failed") == 1);
    CHECK(fx_stat(f, "status|in_progress") == 0);
}

static void test_deadlines(struct fx *f)
{
    static const char *const ids[] = {"task_run"};
    struct fx_task queued = {.id = "task_wait", .deadline = "1700000001000"};
    redisReply *r;

    setup(f, ids, 1, 3);
    freeReplyObject(fx_cmd(f, "ZADD " KEY_DEADLINES " 1700000002000 task_run"));
    CHECK(fx_submit1(f, &queued) == 0);
    r = fx_tick(f, FX_NOW + 1000, "n");
    check_counts(r, 0, 0, 0, 1);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_wait", "status", "expired");
    CHECK_FIELD(f, "task_wait", "inq", NULL);
    CHECK(fx_stat(f, "tq|t1") == 0);
    CHECK(fx_stat(f, "depth|m|1") == 0);
    CHECK(fx_stat(f, "status|expired") == 1);
    r = fx_tick(f, FX_NOW + 2000, "n");
    check_counts(r, 0, 0, 0, 1);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_run", "status", "cancelling");
    CHECK_FIELD(f, "task_run", "cancel_reason", "expired");
    CHECK(fx_int(f, "ZCARD " KEY_DEADLINES) == 0);
}

static void test_sweep(struct fx *f)
{
    static const char *const ids[] = {"task_s", "task_img"};
    struct fx_outcome done[] = {
        {.id = "task_s",
         .outcome = "completed",
         .result = "0123456789",
         .took_slot = "1",
         .class = "ok"},
        {.id = "task_img",
         .outcome = "completed",
         .result = "{}",
         .artifacts = "[{\"bytes\":300}]",
         .took_slot = "1",
         .class = "ok"},
    };
    redisReply *r;

    setup(f, ids, 2, 3);
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, done, 2));
    CHECK(fx_stat(f, "sb|t1") == 45 + 10 + 45 + 2);
    CHECK(fx_stat(f, "ab|t1") == 300);
    CHECK(fx_int(f, "ZCARD " KEY_TENANT "t1") == 2);
    r = fx_tick(f, FX_NOW + 100 + FX_RET - 1, "n");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    r = fx_tick(f, FX_NOW + 100 + FX_RET, "n");
    check_counts(r, 0, 0, 2, 0);
    /* the swept tasks that kept artifacts, for their blob folders */
    CHECK(r != NULL && r->elements == 6 && r->element[5]->elements == 1);
    CHECK_STR(fx_elem(r->element[5], 0), "task_img");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZCARD " KEY_TENANT "t1") == 0);
    CHECK(fx_int(f, "ZCARD " KEY_EXPIRY) == 0);
    CHECK(fx_stat(f, "status|completed") == 0);
    CHECK(fx_stat(f, "sb|t1") == 0);
    CHECK(fx_stat(f, "ab|t1") == 0);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_leader(&f);
    test_promote(&f);
    test_recover(&f);
    test_deadlines(&f);
    test_sweep(&f);
    fx_stop(&f);
    return check_done();
}
