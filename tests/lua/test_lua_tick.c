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

/* A leader's TICK reply with these counts (promoted, recovered, swept, expired). */
static void check_counts(const redisReply *r, long long promoted, long long recovered,
                         long long swept, long long expired)
{
    struct txn_ticked t;

    CHECK(txn_tick_parse(r, &t) == 0);
    CHECK(t.leader);
    CHECK(t.promoted == promoted);
    CHECK(t.recovered == recovered);
    CHECK(t.swept == swept);
    CHECK(t.expired == expired);
}

static void setup(struct fx *f, const char *const *ids, int n, int max_attempts)
{
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < n; i++) {
        struct txn_submit t = fx_task(ids[i]);
        t.max_attempts = max_attempts;
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, n));
}

static void test_leader(struct fx *f)
{
    struct txn_ticked t;
    redisReply *r;
    char *before;

    fx_flush(f);
    freeReplyObject(fx_cmd(f, "SET %s other PX 10000", fx_key(f, KS_LEADER, NULL)));
    before = fx_dump(f);
    r = fx_tick(f, FX_NOW, "me");
    CHECK(r != NULL && r->elements == 1);
    CHECK(txn_tick_parse(r, &t) == 0 && !t.leader);
    CHECK(t.promoted == 0 && t.recovered == 0 && t.swept == 0 && t.expired == 0);
    freeReplyObject(r);
    CHECK_OWNED(fx_dump(f), before);
    free(before);
    freeReplyObject(fx_cmd(f, "DEL %s", fx_key(f, KS_LEADER, NULL)));
    r = fx_tick(f, FX_NOW, "me");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_LEADER, NULL)), "me");
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_LEADER, NULL)) > 0);
}

static void test_promote(struct fx *f)
{
    static const char *const ids[] = {"task_r", "task_q"};
    struct txn_outcome retry = fx_outcome("task_r", TXN_OUTCOME_RETRY);
    struct txn_submit t = fx_task("task_q");
    char wake[FX_KEY_MAX];
    redisReply *r;
    redisContext *sub;

    retry.error = "{}";
    retry.retry_at_ms = 1700000005000LL;
    retry.took_slot = true;
    retry.class = TXN_CLASS_FAIL;
    keyspace_key(&f->keys, wake, sizeof(wake), KS_CHANNEL_WAKE, NULL);
    setup(f, ids, 1, 3);
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, &retry, 1));
    sub = fx_subscribe(f, wake);
    r = fx_tick(f, FX_NOW + 4999, "n");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    CHECK(fx_messages(f, sub, wake, NULL, 0) == 0);
    /* a task submitted meanwhile is behind it: the retry goes to the head */
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_messages(f, sub, wake, NULL, 0) == 1);
    r = fx_tick(f, FX_NOW + 5000, "n");
    check_counts(r, 1, 0, 0, 0);
    freeReplyObject(r);
    CHECK(fx_messages(f, sub, wake, NULL, 0) == 1);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_DELAYED, NULL)) == 0);
    CHECK_OWNED(fx_str(f, "LINDEX %s -1", fx_key(f, KS_QUEUE, "1:t1|m")), "task_r");
    CHECK_FIELD(f, "task_r", "inq", "1");
    CHECK(fx_stat(f, "tq|t1") == 2);
    CHECK(fx_stat(f, "depth|m|1") == 2);
    redisFree(sub);
}

static void test_recover(struct fx *f)
{
    static const char *const ids[] = {"task_a", "task_k", "task_p"};
    struct txn_outcome park = fx_outcome("task_p", TXN_OUTCOME_PARK);
    redisReply *r;

    park.up_id = "up_p";
    park.poll_at_ms = 1700000001000LL;
    park.took_slot = true;
    park.class = TXN_CLASS_OK;
    setup(f, ids, 3, 3);
    freeReplyObject(fx_cancel(f, "task_k", "t1", FX_NOW + 10));
    /* task_p is parked, then claimed for its poll (lease from FX_NOW + 1000) */
    freeReplyObject(fx_finish(f, FX_NOW + 20, 10, &park, 1));
    freeReplyObject(fx_claim(f, FX_NOW + 1000, 5));
    CHECK_OWNED(fx_str(f, "HGET %s inf", fx_key(f, KS_DEP, "m:0")), "2");
    r = fx_tick(f, FX_NOW + FX_LEASE - 1, "n");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    r = fx_tick(f, FX_NOW + FX_LEASE + 1000, "n");
    check_counts(r, 0, 3, 0, 0);
    freeReplyObject(r);
    /* in progress: back to the head of its queue, its call slot returned */
    CHECK_FIELD(f, "task_a", "status", "queued");
    CHECK_FIELD(f, "task_a", "attempts", "1");
    CHECK_OWNED(fx_str(f, "LINDEX %s -1", fx_key(f, KS_QUEUE, "1:t1|m")), "task_a");
    /* cancelling: cancelled */
    CHECK_FIELD(f, "task_k", "status", "cancelled");
    /* an upstream job still runs: due for a poll now */
    CHECK_FIELD(f, "task_p", "status", "in_progress");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_p", fx_key(f, KS_POLLS, NULL)), "1700000061000");
    CHECK_OWNED(fx_str(f, "HGET %s inf", fx_key(f, KS_DEP, "m:0")), "0");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_LEASES, NULL)) == 0);
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
    struct txn_submit queued = fx_task("task_wait");
    redisReply *r;

    queued.deadline_ms = 1700000001000LL;
    setup(f, ids, 1, 3);
    freeReplyObject(fx_cmd(f, "ZADD %s 1700000002000 task_run", fx_key(f, KS_DEADLINES, NULL)));
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
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_DEADLINES, NULL)) == 0);
}

static void test_sweep(struct fx *f)
{
    static const char *const ids[] = {"task_s", "task_img"};
    struct txn_outcome done[2];
    struct txn_ticked t;
    redisReply *r;

    done[0] = fx_outcome("task_s", TXN_OUTCOME_COMPLETED);
    done[0].result = "0123456789";
    done[1] = fx_outcome("task_img", TXN_OUTCOME_COMPLETED);
    done[1].result = "{}";
    done[1].artifacts = "[{\"bytes\":300}]";
    for (int i = 0; i < 2; i++) {
        done[i].took_slot = true;
        done[i].class = TXN_CLASS_OK;
    }
    setup(f, ids, 2, 3);
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, done, 2));
    CHECK(fx_stat(f, "sb|t1") == 45 + 10 + 45 + 2);
    CHECK(fx_stat(f, "ab|t1") == 300);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_TENANT, "t1")) == 2);
    r = fx_tick(f, FX_NOW + 100 + FX_RET - 1, "n");
    check_counts(r, 0, 0, 0, 0);
    freeReplyObject(r);
    r = fx_tick(f, FX_NOW + 100 + FX_RET, "n");
    check_counts(r, 0, 0, 2, 0);
    /* the swept tasks that kept artifacts, for their blob folders */
    CHECK(r != NULL && r->elements == 6 && r->element[5]->elements == 1);
    CHECK(txn_tick_parse(r, &t) == 0 && t.n_gone == 1);
    CHECK_STR(txn_ticked_gone(&t, 0), "task_img");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_TENANT, "t1")) == 0);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_EXPIRY, NULL)) == 0);
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
