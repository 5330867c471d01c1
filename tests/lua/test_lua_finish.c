/*
 * tests/lua/test_lua_finish.c — FINISH (core/lua/finish.lua) against a real redis-server: each
 * outcome (completed, failed, retry, retry with no attempts left, release, park) and what it
 * writes to the task, the deployment, the indexes and the counters; a cancelling task's outcome;
 * a stale fence and a replayed outcome refused with nothing written; a batched call equal to the
 * same outcomes one call each.
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

/* The attempt record a worker sends with a call's outcome (the builder renders it with the
 * outcome's status, latency and name and the call's time). */
static const struct txn_attempt rec = {
    .attempt = 1, .deployment = 0, .provider = "p", .model = "up-m"};

/* Tasks ids[0..n) submitted (max_attempts each, waited on by the API channel n1) and claimed at
 * FX_NOW: fence 1, deployment m:0. */
static void setup(struct fx *f, const char *const *ids, int n, int max_attempts)
{
    char reply_to[FX_KEY_MAX];
    struct txn_claim_reply c;
    redisReply *r;

    keyspace_key(&f->keys, reply_to, sizeof(reply_to), KS_CHANNEL_API, "n1");
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < n; i++) {
        struct txn_submit t = fx_task(ids[i]);
        t.max_attempts = max_attempts;
        t.reply_to = reply_to;
        CHECK(fx_submit1(f, &t) == 0);
    }
    r = fx_claim(f, FX_NOW, n);
    CHECK(txn_claim_parse(r, &c) == 0 && c.n_units == (size_t)n);
    freeReplyObject(r);
}

/* FINISH of the one outcome o at now: what it applied. */
static enum txn_applied finish1(struct fx *f, long long now, const struct txn_outcome *o)
{
    enum txn_applied applied = TXN_APPLIED_UNKNOWN;
    redisReply *r = fx_finish(f, now, 10, o, 1);

    CHECK(txn_finish_parse(r, &applied, 1) == 0);
    freeReplyObject(r);
    return applied;
}

static void test_completed(struct fx *f)
{
    static const char *const ids[] = {"task_c"};
    const char *result = "{\"object\":\"chat.completion\"}";
    const char *record = "{\"attempt\":1,\"deployment\":0,\"provider\":\"p\",\"model\":\"up-m\","
                         "\"status\":200,\"latency_ms\":120.000,\"outcome\":\"completed\","
                         "\"error\":null,\"at\":1700000001}";
    struct txn_outcome o = fx_outcome("task_c", TXN_OUTCOME_COMPLETED);
    redisContext *sub;
    char msg[256], sb[32], member[96], log[512], channel[FX_KEY_MAX];

    o.result = result;
    o.usage = "{\"total_tokens\":30}";
    o.provider = "{\"name\":\"p\"}";
    o.cost = "{\"amount\":0.1}";
    o.took_slot = true;
    o.latency_ms = 120;
    o.class = TXN_CLASS_OK;
    o.http_status = 200;
    o.tokens_used = 30;
    o.attempt = &rec;
    keyspace_key(&f->keys, channel, sizeof(channel), KS_CHANNEL_API, "n1");
    setup(f, ids, 1, 3);
    sub = fx_subscribe(f, channel);
    CHECK(finish1(f, FX_NOW + 1000, &o) == TXN_APPLIED_COMPLETED);
    snprintf(sb, sizeof(sb), "%zu", 45 + strlen(result));
    CHECK_FIELD(f, "task_c", "status", "completed");
    CHECK_FIELD(f, "task_c", "result", result);
    CHECK_FIELD(f, "task_c", "progress", "100");
    CHECK_FIELD(f, "task_c", "usage", "{\"total_tokens\":30}");
    CHECK_FIELD(f, "task_c", "provider", "{\"name\":\"p\"}");
    CHECK_FIELD(f, "task_c", "cost", "{\"amount\":0.1}");
    CHECK_FIELD(f, "task_c", "completed", "1700000001000");
    CHECK_FIELD(f, "task_c", "expires", "1700003601000");
    CHECK_FIELD(f, "task_c", "sb", sb);
    snprintf(log, sizeof(log), "[%s]", record);
    CHECK_FIELD(f, "task_c", "attempt_log", log);
    CHECK_FIELD(f, "task_c", "alog_n", "1");
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_TASK, "task_c")) > 0);
    snprintf(member, sizeof(member), "t1|task_c|completed|%s|0", sb);
    CHECK_OWNED(fx_str(f, "ZSCORE %s %s", fx_key(f, KS_EXPIRY, NULL), member), "1700003601000");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_LEASES, NULL)) == 0);
    CHECK_OWNED(fx_str(f, "HGET %s inf", fx_key(f, KS_DEP, "m:0")), "0");
    CHECK_OWNED(fx_str(f, "HGET %s lat", fx_key(f, KS_DEP, "m:0")), "120");
    CHECK_OWNED(fx_str(f, "HGET %s tt", fx_key(f, KS_DEP, "m:0")), "170"); /* 100 taken, 30 used */
    CHECK_OWNED(fx_str(f, "HGET %s wok", fx_key(f, KS_DEP, "m:0")), "1");
    CHECK_OWNED(fx_str(f, "HGET %s br", fx_key(f, KS_DEP, "m:0")), "closed");
    CHECK(fx_stat(f, "status|completed") == 1);
    CHECK(fx_stat(f, "status|in_progress") == 0);
    CHECK(fx_stat(f, "calls|m|0|200") == 1);
    CHECK(fx_stat(f, "lat|m|0|250") == 1);
    CHECK(fx_stat(f, "latus|m|0") == 120000);
    CHECK(fx_stat(f, "sb|t1") == 45 + (long long)strlen(result));
    /* the waiting API process gets the result with the message */
    CHECK(fx_messages(f, sub, channel, msg, sizeof(msg)) == 1);
    CHECK_STR(msg, "r task_c {\"object\":\"chat.completion\"}");
    redisFree(sub);
}

static void test_failed_and_retry(struct fx *f)
{
    static const char *const ids[] = {"task_f", "task_r", "task_last"};
    struct txn_outcome failed = fx_outcome("task_f", TXN_OUTCOME_FAILED);
    struct txn_outcome retry = fx_outcome("task_r", TXN_OUTCOME_RETRY);

    failed.error = "{\"m\":\"bad\"}";
    failed.took_slot = true;
    failed.class = TXN_CLASS_CLIENT;
    failed.http_status = 400;
    retry.error = "{\"m\":\"503\"}";
    retry.retry_at_ms = 1700000005000LL;
    retry.took_slot = true;
    retry.class = TXN_CLASS_FAIL;
    retry.http_status = 503;
    setup(f, ids, 3, 2);
    CHECK(finish1(f, FX_NOW + 100, &failed) == TXN_APPLIED_FAILED);
    CHECK_FIELD(f, "task_f", "status", "failed");
    CHECK_FIELD(f, "task_f", "error", "{\"m\":\"bad\"}");
    CHECK_FIELD(f, "task_f", "result", NULL);
    CHECK(fx_stat(f, "status|failed") == 1);

    CHECK(finish1(f, FX_NOW + 100, &retry) == TXN_APPLIED_RETRY);
    CHECK_FIELD(f, "task_r", "status", "queued");
    CHECK_FIELD(f, "task_r", "last_error", "{\"m\":\"503\"}");
    CHECK_FIELD(f, "task_r", "completed", NULL);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_r", fx_key(f, KS_DELAYED, NULL)), "1700000005000");
    CHECK(fx_int(f, "ZSCORE %s task_r", fx_key(f, KS_LEASES, NULL)) == -999);
    CHECK(fx_stat(f, "status|queued") == 1);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_QUEUE, "1:t1|m")) == 0); /* TICK promotes it when due */

    /* max_attempts 2: the second claim's retry is a failure */
    freeReplyObject(fx_tick(f, FX_NOW + 5000, "n"));
    freeReplyObject(fx_claim(f, FX_NOW + 5000, 5));
    CHECK_FIELD(f, "task_r", "attempts", "2");
    retry.fence = 2;
    CHECK(finish1(f, FX_NOW + 6000, &retry) == TXN_APPLIED_FAILED);
    CHECK_FIELD(f, "task_r", "status", "failed");
    CHECK_FIELD(f, "task_r", "error", "{\"m\":\"503\"}");
    CHECK_FIELD(f, "task_r", "last_error", NULL);
    CHECK(fx_int(f, "ZSCORE %s task_r", fx_key(f, KS_DELAYED, NULL)) == -999);
}

static void test_release_and_park(struct fx *f)
{
    static const char *const ids[] = {"task_rel", "task_park"};
    struct txn_outcome rel = fx_outcome("task_rel", TXN_OUTCOME_RELEASE);
    struct txn_outcome park = fx_outcome("task_park", TXN_OUTCOME_PARK);
    char wake[FX_KEY_MAX];
    redisContext *sub;

    rel.took_slot = true;
    rel.class = TXN_CLASS_RATE;
    rel.http_status = 429;
    rel.pause_until_ms = 1700000002000LL;
    park.up_id = "up_9";
    park.job = "{\"j\":9}";
    park.progress = 40;
    park.queue_position = 3;
    park.poll_at_ms = 1700000004000LL;
    park.took_slot = true;
    park.class = TXN_CLASS_OK;
    park.latency_ms = 20;
    park.http_status = 200;
    keyspace_key(&f->keys, wake, sizeof(wake), KS_CHANNEL_WAKE, NULL);
    setup(f, ids, 2, 3);
    sub = fx_subscribe(f, wake);
    CHECK(finish1(f, FX_NOW + 100, &rel) == TXN_APPLIED_RELEASE);
    CHECK_FIELD(f, "task_rel", "status", "queued");
    CHECK_FIELD(f, "task_rel", "attempts", "0"); /* no attempt spent */
    CHECK_FIELD(f, "task_rel", "inq", "1");
    CHECK_OWNED(fx_str(f, "LINDEX %s -1", fx_key(f, KS_QUEUE, "1:t1|m")), "task_rel");
    CHECK_OWNED(fx_str(f, "HGET %s pause", fx_key(f, KS_DEP, "m:0")), "1700000002000");
    CHECK_OWNED(fx_str(f, "HGET %s rt", fx_key(f, KS_DEP, "m:0")), "0");
    CHECK(fx_stat(f, "r429|m|0") == 1);
    CHECK(fx_messages(f, sub, wake, NULL, 0) == 1);
    redisFree(sub);

    CHECK(finish1(f, FX_NOW + 200, &park) == TXN_APPLIED_PARK);
    CHECK_FIELD(f, "task_park", "status", "in_progress");
    CHECK_FIELD(f, "task_park", "up_id", "up_9");
    CHECK_FIELD(f, "task_park", "job", "{\"j\":9}");
    CHECK_FIELD(f, "task_park", "progress", "40");
    CHECK_FIELD(f, "task_park", "queue_position", "3");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_park", fx_key(f, KS_POLLS, NULL)), "1700000004000");
    CHECK(fx_int(f, "ZSCORE %s task_park", fx_key(f, KS_LEASES, NULL)) == -999);
    CHECK(fx_stat(f, "status|in_progress") == 1);
}

static void test_cancelling(struct fx *f)
{
    static const char *const ids[] = {"task_k", "task_e", "task_p"};
    struct txn_outcome done = fx_outcome("task_k", TXN_OUTCOME_COMPLETED);
    struct txn_outcome park = fx_outcome("task_p", TXN_OUTCOME_PARK);

    done.result = "{}";
    done.took_slot = true;
    done.class = TXN_CLASS_OK;
    done.http_status = 200;
    park.up_id = "u";
    park.poll_at_ms = 1700000009000LL;
    park.took_slot = true;
    park.class = TXN_CLASS_OK;
    setup(f, ids, 3, 3);
    for (int i = 0; i < 3; i++) {
        freeReplyObject(fx_cancel(f, ids[i], "t1", FX_NOW + 10));
        CHECK_FIELD(f, ids[i], "status", "cancelling");
    }
    CHECK(finish1(f, FX_NOW + 100, &done) == TXN_APPLIED_CANCELLED);
    CHECK_FIELD(f, "task_k", "status", "cancelled");
    CHECK_FIELD(f, "task_k", "result", NULL);
    /* cancelled by its deadline: expired */
    freeReplyObject(fx_cmd(f, "HSET %s cancel_reason expired", fx_key(f, KS_TASK, "task_e")));
    done.id = "task_e";
    CHECK(finish1(f, FX_NOW + 100, &done) == TXN_APPLIED_EXPIRED);
    CHECK_FIELD(f, "task_e", "status", "expired");
    /* park on a cancelling task: due at once, so a worker cancels the upstream job */
    CHECK(finish1(f, FX_NOW + 100, &park) == TXN_APPLIED_PARK);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_p", fx_key(f, KS_POLLS, NULL)), "1700000000100");
    CHECK(fx_stat(f, "status|cancelled") == 1);
    CHECK(fx_stat(f, "status|expired") == 1);
    CHECK(fx_stat(f, "status|cancelling") == 1);
}

static void test_stale_and_replay(struct fx *f)
{
    static const char *const ids[] = {"task_s"};
    struct txn_outcome o = fx_outcome("task_s", TXN_OUTCOME_COMPLETED);
    char *before;

    o.fence = 2;
    o.result = "{\"late\":true}";
    o.took_slot = true;
    o.class = TXN_CLASS_OK;
    setup(f, ids, 1, 3);
    /* a fence from another attempt */
    before = fx_dump(f);
    CHECK(finish1(f, FX_NOW + 100, &o) == TXN_APPLIED_STALE);
    CHECK_OWNED(fx_dump(f), before);
    free(before);
    /* the right fence, then the same outcome again (a worker sends a report twice) */
    o.fence = 1;
    CHECK(finish1(f, FX_NOW + 100, &o) == TXN_APPLIED_COMPLETED);
    before = fx_dump(f);
    CHECK(finish1(f, FX_NOW + 200, &o) == TXN_APPLIED_STALE);
    o.outcome = TXN_OUTCOME_FAILED;
    CHECK(finish1(f, FX_NOW + 200, &o) == TXN_APPLIED_STALE);
    CHECK_OWNED(fx_dump(f), before);
    free(before);
}

#define N_MIX 8

/* Every kind of outcome on one deployment, with a stale one and a replay: what one call does
 * equals what the calls one by one do. The breaker (min 2 requests) opens within the call. */
static void mix_init(struct txn_outcome *mix)
{
    mix[0] = fx_outcome("task_1", TXN_OUTCOME_COMPLETED);
    mix[0].result = "{\"a\":1}";
    mix[0].took_slot = true;
    mix[0].latency_ms = 100;
    mix[0].class = TXN_CLASS_OK;
    mix[0].http_status = 200;
    mix[0].tokens_used = 50;
    mix[0].attempt = &rec;
    mix[0].wake_on_slot = true;
    mix[1] = fx_outcome("task_2", TXN_OUTCOME_FAILED);
    mix[1].error = "{}";
    mix[1].took_slot = true;
    mix[1].latency_ms = 300;
    mix[1].class = TXN_CLASS_FAIL;
    mix[1].http_status = 500;
    mix[1].attempt = &rec;
    mix[2] = fx_outcome("task_3", TXN_OUTCOME_RETRY);
    mix[2].error = "{}";
    mix[2].retry_at_ms = 1700000005000LL;
    mix[2].took_slot = true;
    mix[2].class = TXN_CLASS_FAIL;
    mix[2].http_status = 503;
    mix[2].avoid = true;
    mix[3] = fx_outcome("task_4", TXN_OUTCOME_RELEASE);
    mix[3].took_slot = true;
    mix[3].class = TXN_CLASS_RATE;
    mix[3].http_status = 429;
    mix[3].pause_until_ms = 1700000002000LL;
    mix[3].remaining_requests = 0;
    mix[4] = fx_outcome("task_5", TXN_OUTCOME_PARK);
    mix[4].up_id = "u5";
    mix[4].poll_at_ms = 1700000003000LL;
    mix[4].took_slot = true;
    mix[4].latency_ms = 50;
    mix[4].class = TXN_CLASS_OK;
    mix[4].http_status = 200;
    mix[5] = fx_outcome("task_6", TXN_OUTCOME_COMPLETED);
    mix[5].fence = 9;
    mix[5].result = "{}";
    mix[5].took_slot = true;
    mix[5].class = TXN_CLASS_OK;
    mix[6] = fx_outcome("task_1", TXN_OUTCOME_FAILED);
    mix[6].error = "{}";
    mix[6].took_slot = true;
    mix[6].class = TXN_CLASS_FAIL;
    mix[7] = fx_outcome("task_7", TXN_OUTCOME_COMPLETED);
    mix[7].result = "{\"b\":2}";
    mix[7].artifacts = "[{\"bytes\":100},{\"bytes\":20}]";
    mix[7].took_slot = true;
    mix[7].class = TXN_CLASS_NONE;
    mix[7].wake_on_slot = true;
}

static void test_batched_equals_sequential(struct fx *f)
{
    static const char *const ids[] = {"task_1", "task_2", "task_3", "task_4",
                                      "task_5", "task_6", "task_7"};
    static const enum txn_applied want[N_MIX] = {
        TXN_APPLIED_COMPLETED, TXN_APPLIED_FAILED, TXN_APPLIED_RETRY, TXN_APPLIED_RELEASE,
        TXN_APPLIED_PARK,      TXN_APPLIED_STALE,  TXN_APPLIED_STALE, TXN_APPLIED_COMPLETED};
    struct txn_outcome mix[N_MIX];
    enum txn_applied applied[N_MIX], one_applied;
    redisReply *batched, *one[N_MIX];
    char *d_batched, *d_seq;

    mix_init(mix);
    setup(f, ids, 7, 3);
    batched = fx_finish(f, FX_NOW + 1000, 2, mix, N_MIX);
    d_batched = fx_dump(f);
    CHECK_OWNED(fx_str(f, "HGET %s br", fx_key(f, KS_DEP, "m:0")), "open");
    /* task_6's attempt still holds its slot */
    CHECK_OWNED(fx_str(f, "HGET %s inf", fx_key(f, KS_DEP, "m:0")), "1");
    CHECK_FIELD(f, "task_6", "status", "in_progress");
    CHECK_FIELD(f, "task_7", "ab", "120");
    CHECK(fx_stat(f, "ab|t1") == 120);
    setup(f, ids, 7, 3);
    for (int i = 0; i < N_MIX; i++) {
        one[i] = fx_finish(f, FX_NOW + 1000, 2, &mix[i], 1);
    }
    d_seq = fx_dump(f);
    CHECK_STR(d_batched, d_seq);
    CHECK(batched != NULL && batched->elements == N_MIX);
    CHECK(txn_finish_parse(batched, applied, N_MIX) == 0);
    for (int i = 0; i < N_MIX; i++) {
        CHECK(applied[i] == want[i]);
        CHECK(txn_finish_parse(one[i], &one_applied, 1) == 0 && one_applied == want[i]);
        freeReplyObject(one[i]);
    }
    free(d_batched);
    free(d_seq);
    freeReplyObject(batched);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_completed(&f);
    test_failed_and_retry(&f);
    test_release_and_park(&f);
    test_cancelling(&f);
    test_stale_and_replay(&f);
    test_batched_equals_sequential(&f);
    fx_stop(&f);
    return check_done();
}
