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

#define REC "{\"attempt\":1,\"status\":200}"

/* Tasks ids[0..n) submitted (max_attempts each) and claimed at FX_NOW: fence 1, deployment m:0. */
static void setup(struct fx *f, const char *const *ids, int n, int max_attempts)
{
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < n; i++) {
        struct fx_task t = {.id = ids[i], .max_attempts = max_attempts, .reply_to = "{sl}:api:n1"};
        CHECK(fx_submit1(f, &t) == 0);
    }
    r = fx_claim(f, FX_NOW, n);
    CHECK(r != NULL && r->elements == 2 + (size_t)n * FX_CLAIM_UNIT);
    freeReplyObject(r);
}

static const char *finish1(struct fx *f, long long now, const struct fx_outcome *o)
{
    static char answer[32];
    redisReply *r = fx_finish(f, now, 10, o, 1);

    snprintf(answer, sizeof(answer), "%s", fx_elem(r, 0) ? fx_elem(r, 0) : "?");
    freeReplyObject(r);
    return answer;
}

static void test_completed(struct fx *f)
{
    static const char *const ids[] = {"task_c"};
    const char *result = "{\"object\":\"chat.completion\"}";
    struct fx_outcome o = {.id = "task_c",
                           .outcome = "completed",
                           .result = result,
                           .usage = "{\"total_tokens\":30}",
                           .provider = "{\"name\":\"p\"}",
                           .cost = "{\"amount\":0.1}",
                           .took_slot = "1",
                           .latency = "120",
                           .class = "ok",
                           .http_status = "200",
                           .tokens_used = "30",
                           .attempt = REC};
    redisContext *sub;
    char msg[256], sb[32], member[96];

    setup(f, ids, 1, 3);
    sub = fx_subscribe(f, "{sl}:api:n1");
    CHECK_STR(finish1(f, FX_NOW + 1000, &o), "completed");
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
    CHECK_FIELD(f, "task_c", "attempt_log", "[" REC "]");
    CHECK_FIELD(f, "task_c", "alog_n", "1");
    CHECK(fx_int(f, "PTTL " KEY_TASK "task_c") > 0);
    snprintf(member, sizeof(member), "t1|task_c|completed|%s|0", sb);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_EXPIRY " %s", member), "1700003601000");
    CHECK(fx_int(f, "ZCARD " KEY_LEASES) == 0);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 inf"), "0");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 lat"), "120");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 tt"), "170"); /* 100 taken, 30 used */
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 wok"), "1");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 br"), "closed");
    CHECK(fx_stat(f, "status|completed") == 1);
    CHECK(fx_stat(f, "status|in_progress") == 0);
    CHECK(fx_stat(f, "calls|m|0|200") == 1);
    CHECK(fx_stat(f, "lat|m|0|250") == 1);
    CHECK(fx_stat(f, "latus|m|0") == 120000);
    CHECK(fx_stat(f, "sb|t1") == 45 + (long long)strlen(result));
    /* the waiting API process gets the result with the message */
    CHECK(fx_messages(f, sub, "{sl}:api:n1", msg, sizeof(msg)) == 1);
    CHECK_STR(msg, "r task_c {\"object\":\"chat.completion\"}");
    redisFree(sub);
}

static void test_failed_and_retry(struct fx *f)
{
    static const char *const ids[] = {"task_f", "task_r", "task_last"};
    struct fx_outcome failed = {.id = "task_f",
                                .outcome = "failed",
                                .error = "{\"m\":\"bad\"}",
                                .took_slot = "1",
                                .class = "client",
                                .http_status = "400"};
    struct fx_outcome retry = {.id = "task_r",
                               .outcome = "retry",
                               .error = "{\"m\":\"503\"}",
                               .retry_at = "1700000005000",
                               .took_slot = "1",
                               .class = "fail",
                               .http_status = "503"};

    setup(f, ids, 3, 2);
    CHECK_STR(finish1(f, FX_NOW + 100, &failed), "failed");
    CHECK_FIELD(f, "task_f", "status", "failed");
    CHECK_FIELD(f, "task_f", "error", "{\"m\":\"bad\"}");
    CHECK_FIELD(f, "task_f", "result", NULL);
    CHECK(fx_stat(f, "status|failed") == 1);

    CHECK_STR(finish1(f, FX_NOW + 100, &retry), "retry");
    CHECK_FIELD(f, "task_r", "status", "queued");
    CHECK_FIELD(f, "task_r", "last_error", "{\"m\":\"503\"}");
    CHECK_FIELD(f, "task_r", "completed", NULL);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_DELAYED " task_r"), "1700000005000");
    CHECK(fx_int(f, "ZSCORE " KEY_LEASES " task_r") == -999);
    CHECK(fx_stat(f, "status|queued") == 1);
    CHECK(fx_int(f, "LLEN " KEY_QUEUE "1:t1|m") == 0); /* TICK promotes it when due */

    /* max_attempts 2: the second claim's retry is a failure */
    freeReplyObject(fx_tick(f, FX_NOW + 5000, "n"));
    freeReplyObject(fx_claim(f, FX_NOW + 5000, 5));
    CHECK_FIELD(f, "task_r", "attempts", "2");
    retry.fence = "2";
    CHECK_STR(finish1(f, FX_NOW + 6000, &retry), "failed");
    CHECK_FIELD(f, "task_r", "status", "failed");
    CHECK_FIELD(f, "task_r", "error", "{\"m\":\"503\"}");
    CHECK_FIELD(f, "task_r", "last_error", NULL);
    CHECK(fx_int(f, "ZSCORE " KEY_DELAYED " task_r") == -999);
}

static void test_release_and_park(struct fx *f)
{
    static const char *const ids[] = {"task_rel", "task_park"};
    struct fx_outcome rel = {.id = "task_rel",
                             .outcome = "release",
                             .took_slot = "1",
                             .class = "rate",
                             .http_status = "429",
                             .pause_until = "1700000002000"};
    struct fx_outcome park = {.id = "task_park",
                              .outcome = "park",
                              .up_id = "up_9",
                              .job = "{\"j\":9}",
                              .progress = "40",
                              .queue_position = "3",
                              .poll_at = "1700000004000",
                              .took_slot = "1",
                              .class = "ok",
                              .latency = "20",
                              .http_status = "200"};
    redisContext *sub;

    setup(f, ids, 2, 3);
    sub = fx_subscribe(f, FX_WAKE);
    CHECK_STR(finish1(f, FX_NOW + 100, &rel), "release");
    CHECK_FIELD(f, "task_rel", "status", "queued");
    CHECK_FIELD(f, "task_rel", "attempts", "0"); /* no attempt spent */
    CHECK_FIELD(f, "task_rel", "inq", "1");
    CHECK_OWNED(fx_str(f, "LINDEX " KEY_QUEUE "1:t1|m -1"), "task_rel");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 pause"), "1700000002000");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 rt"), "0");
    CHECK(fx_stat(f, "r429|m|0") == 1);
    CHECK(fx_messages(f, sub, FX_WAKE, NULL, 0) == 1);
    redisFree(sub);

    CHECK_STR(finish1(f, FX_NOW + 200, &park), "park");
    CHECK_FIELD(f, "task_park", "status", "in_progress");
    CHECK_FIELD(f, "task_park", "up_id", "up_9");
    CHECK_FIELD(f, "task_park", "job", "{\"j\":9}");
    CHECK_FIELD(f, "task_park", "progress", "40");
    CHECK_FIELD(f, "task_park", "queue_position", "3");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_POLLS " task_park"), "1700000004000");
    CHECK(fx_int(f, "ZSCORE " KEY_LEASES " task_park") == -999);
    CHECK(fx_stat(f, "status|in_progress") == 1);
}

static void test_cancelling(struct fx *f)
{
    static const char *const ids[] = {"task_k", "task_e", "task_p"};
    struct fx_outcome done = {.id = "task_k",
                              .outcome = "completed",
                              .result = "{}",
                              .took_slot = "1",
                              .class = "ok",
                              .http_status = "200"};
    struct fx_outcome park = {.id = "task_p",
                              .outcome = "park",
                              .up_id = "u",
                              .poll_at = "1700000009000",
                              .took_slot = "1",
                              .class = "ok"};

    setup(f, ids, 3, 3);
    for (int i = 0; i < 3; i++) {
        freeReplyObject(fx_cancel(f, ids[i], "t1", FX_NOW + 10));
        CHECK_FIELD(f, ids[i], "status", "cancelling");
    }
    CHECK_STR(finish1(f, FX_NOW + 100, &done), "cancelled");
    CHECK_FIELD(f, "task_k", "status", "cancelled");
    CHECK_FIELD(f, "task_k", "result", NULL);
    /* cancelled by its deadline: expired */
    freeReplyObject(fx_cmd(f, "HSET " KEY_TASK "task_e cancel_reason expired"));
    done.id = "task_e";
    CHECK_STR(finish1(f, FX_NOW + 100, &done), "expired");
    CHECK_FIELD(f, "task_e", "status", "expired");
    /* park on a cancelling task: due at once, so a worker cancels the upstream job */
    CHECK_STR(finish1(f, FX_NOW + 100, &park), "park");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_POLLS " task_p"), "1700000000100");
    CHECK(fx_stat(f, "status|cancelled") == 1);
    CHECK(fx_stat(f, "status|expired") == 1);
    CHECK(fx_stat(f, "status|cancelling") == 1);
}

static void test_stale_and_replay(struct fx *f)
{
    static const char *const ids[] = {"task_s"};
    struct fx_outcome o = {.id = "task_s",
                           .fence = "2",
                           .outcome = "completed",
                           .result = "{\"late\":true}",
                           .took_slot = "1",
                           .class = "ok"};
    char *before;

    setup(f, ids, 1, 3);
    /* a fence from another attempt */
    before = fx_dump(f);
    CHECK_STR(finish1(f, FX_NOW + 100, &o), "stale");
    CHECK_OWNED(fx_dump(f), before);
    free(before);
    /* the right fence, then the same outcome again (a worker sends a report twice) */
    o.fence = "1";
    CHECK_STR(finish1(f, FX_NOW + 100, &o), "completed");
    before = fx_dump(f);
    CHECK_STR(finish1(f, FX_NOW + 200, &o), "stale");
    o.outcome = "failed";
    CHECK_STR(finish1(f, FX_NOW + 200, &o), "stale");
    CHECK_OWNED(fx_dump(f), before);
    free(before);
}

/* Every kind of outcome on one deployment, with a stale one and a replay: what one call does
 * equals what the calls one by one do. The breaker (min 2 requests) opens within the call. */
static const struct fx_outcome mix[] = {
    {.id = "task_1",
     .outcome = "completed",
     .result = "{\"a\":1}",
     .took_slot = "1",
     .latency = "100",
     .class = "ok",
     .http_status = "200",
     .tokens_used = "50",
     .attempt = REC,
     .wake = "1"},
    {.id = "task_2",
     .outcome = "failed",
     .error = "{}",
     .took_slot = "1",
     .latency = "300",
     .class = "fail",
     .http_status = "500",
     .attempt = REC},
    {.id = "task_3",
     .outcome = "retry",
     .error = "{}",
     .retry_at = "1700000005000",
     .took_slot = "1",
     .class = "fail",
     .http_status = "503",
     .avoid = "1"},
    {.id = "task_4",
     .outcome = "release",
     .took_slot = "1",
     .class = "rate",
     .http_status = "429",
     .pause_until = "1700000002000",
     .remaining_requests = "0"},
    {.id = "task_5",
     .outcome = "park",
     .up_id = "u5",
     .poll_at = "1700000003000",
     .took_slot = "1",
     .latency = "50",
     .class = "ok",
     .http_status = "200"},
    {.id = "task_6",
     .fence = "9",
     .outcome = "completed",
     .result = "{}",
     .took_slot = "1",
     .class = "ok"},
    {.id = "task_1", .outcome = "failed", .error = "{}", .took_slot = "1", .class = "fail"},
    {.id = "task_7",
     .outcome = "completed",
     .result = "{\"b\":2}",
     .artifacts = "[{\"bytes\":100},{\"bytes\":20}]",
     .took_slot = "1",
     .class = "none",
     .wake = "1"},
};
#define N_MIX (int)(sizeof(mix) / sizeof(mix[0]))

static void test_batched_equals_sequential(struct fx *f)
{
    static const char *const ids[] = {"task_1", "task_2", "task_3", "task_4",
                                      "task_5", "task_6", "task_7"};
    static const char *const want[N_MIX] = {"completed", "failed", "retry", "release",
                                            "park",      "stale",  "stale", "completed"};
    redisReply *batched, *one[N_MIX];
    char *d_batched, *d_seq;

    setup(f, ids, 7, 3);
    batched = fx_finish(f, FX_NOW + 1000, 2, mix, N_MIX);
    d_batched = fx_dump(f);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 br"), "open");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DEP "m:0 inf"), "1"); /* task_6's attempt still holds it */
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
    for (int i = 0; i < N_MIX; i++) {
        CHECK_STR(fx_elem(batched, (size_t)i), want[i]);
        CHECK_STR(fx_elem(one[i], 0), want[i]);
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
