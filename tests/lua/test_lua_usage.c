/*
 * tests/lua/test_lua_usage.c — usage analytics in the scripts against a real redis-server: every
 * task that ends is counted once by finalize (core/lua/prelude.lua usage_count) in its tenant's
 * hour hash — its outcome and latency bucket packed into one counter, its tokens, cost and cache
 * hit in their own — through FINISH (completed with chat or responses usage, provider, key and
 * cost; failed; a cache hit), CANCEL (a queued task), TICK (a deadline's expiry, a lost last
 * attempt), with the hash's expiry (usage.retention_days from KS_USAGE_CFG, 90 days without it)
 * and the hour's tenant set; USAGE (core/lua/usage.lua) reads one tenant or all of them over a
 * range of hours, bounded.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"
#include "core/txn_usage.h"

/* FX_NOW's hour (s) and the hash of tenant t1 in it */
#define HOUR_S 1699999200LL
#define RET_S                                                                                      \
    (3650LL * 86400) /* the retention the tests set: the hashes outlive the test's clock */

static const char *hash_of(struct fx *f, const char *tenant, long long hour)
{
    char id[96];

    snprintf(id, sizeof(id), "%s:%lld", tenant, hour);
    return fx_key(f, KS_USAGE, id);
}

/* Counter field of t1's FX_NOW hour (0 when absent). */
static long long counter(struct fx *f, const char *field)
{
    char *v = fx_str(f, "HGET %s %s", hash_of(f, "t1", HOUR_S), field);
    long long n = v ? atoll(v) : 0;

    free(v);
    return n;
}

static void setup(struct fx *f)
{
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    freeReplyObject(fx_cmd(f, "SET %s %lld", fx_key(f, KS_USAGE_CFG, NULL), RET_S));
}

static void submit_claim(struct fx *f, const char *const *ids, int n, const char *key_id)
{
    for (int i = 0; i < n; i++) {
        struct txn_submit t = fx_task(ids[i]);
        t.key_id = key_id;
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, n));
}

static void test_finish(struct fx *f)
{
    static const char *const ids[] = {"task_c", "task_r", "task_f", "task_h"};
    struct txn_outcome o[4];
    redisReply *r;

    setup(f);
    submit_claim(f, ids, 4, "key_a");
    o[0] = fx_outcome("task_c", TXN_OUTCOME_COMPLETED);
    o[0].result = "{\"ok\":1}";
    o[0].usage = "{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15}";
    o[0].provider = "{\"name\":\"openai\",\"model\":\"gpt\",\"upstream_id\":null}";
    o[0].cost = "{\"amount\":0.0012,\"currency\":\"USD\"}";
    /* a responses task's names */
    o[1] = fx_outcome("task_r", TXN_OUTCOME_COMPLETED);
    o[1].result = "{\"ok\":2}";
    o[1].usage = "{\"input_tokens\":7,\"output_tokens\":3}";
    o[1].provider = "{\"name\":\"openai\",\"model\":\"gpt\",\"upstream_id\":null}";
    o[1].cost = "{\"amount\":0.000004,\"currency\":\"USD\"}";
    o[2] = fx_outcome("task_f", TXN_OUTCOME_FAILED);
    o[2].error = "{\"message\":\"bad\",\"code\":\"x\"}";
    o[2].provider = "{\"name\":\"\",\"model\":\"\",\"upstream_id\":null}";
    o[3] = fx_outcome("task_h", TXN_OUTCOME_COMPLETED);
    o[3].result = "{\"ok\":3}";
    o[3].provider = "{\"name\":\"openai\",\"model\":\"gpt\",\"upstream_id\":null}";
    freeReplyObject(fx_cmd(f, "HSET %s cached 1", fx_key(f, KS_TASK, "task_h")));
    /* 120 ms after created: the histogram's bucket 3 (100, 250] */
    r = fx_finish(f, FX_NOW + 120, 10, o, 4);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 4);
    freeReplyObject(r);
    /* three completed ("c") in latency bucket 3 */
    CHECK(counter(f, "m|openai|key_a|c3") == 3);
    CHECK(counter(f, "m|openai|key_a|f3") == 0);
    CHECK(counter(f, "m|openai|key_a|in") == 17);
    CHECK(counter(f, "m|openai|key_a|out") == 8);
    CHECK(counter(f, "m|openai|key_a|cost") == 1204000);
    CHECK(counter(f, "m|openai|key_a|hit") == 1);
    /* no provider name: "-"; a failure ("f") */
    CHECK(counter(f, "m|-|key_a|f3") == 1);
    CHECK(counter(f, "m|-|key_a|c3") == 0);
    /* only the fields that moved are written: 5 + 1 */
    CHECK(fx_int(f, "HLEN %s", hash_of(f, "t1", HOUR_S)) == 6);
    /* kept usage.retention_days + a day after the hour's end; the tenant in the hour's set */
    CHECK(fx_int(f, "EXPIRETIME %s", hash_of(f, "t1", HOUR_S)) == HOUR_S + 3600 + RET_S + 86400);
    CHECK(fx_int(f, "SISMEMBER %s t1", fx_key(f, KS_USAGE_TENANTS, "1699999200")) == 1);
    CHECK(fx_int(f, "EXPIRETIME %s", fx_key(f, KS_USAGE_TENANTS, "1699999200")) ==
          HOUR_S + 3600 + RET_S + 86400);
    /* a retry is no end: nothing counted */
    {
        static const char *const more[] = {"task_x"};
        struct txn_outcome retry = fx_outcome("task_x", TXN_OUTCOME_RETRY);
        long long before = fx_int(f, "HLEN %s", hash_of(f, "t1", HOUR_S));
        submit_claim(f, more, 1, NULL);
        retry.retry_at_ms = FX_NOW + 5000;
        freeReplyObject(fx_finish(f, FX_NOW + 200, 10, &retry, 1));
        CHECK_FIELD(f, "task_x", "status", "queued");
        CHECK(fx_int(f, "HLEN %s", hash_of(f, "t1", HOUR_S)) == before);
    }
}

static void test_cancel_and_tick(struct fx *f)
{
    static const char *const ids[] = {"task_run"};
    struct txn_submit queued = fx_task("task_q"), late = fx_task("task_late");
    redisReply *r;

    setup(f);
    submit_claim(f, ids, 1, NULL);
    CHECK(fx_submit1(f, &queued) == 0);
    /* a queued task cancelled 30 ms after it was made: a request, neither completed nor failed */
    freeReplyObject(fx_cancel(f, "task_q", "t1", FX_NOW + 30));
    CHECK_FIELD(f, "task_q", "status", "cancelled");
    CHECK(counter(f, "m|-|-|x1") == 1);
    CHECK(fx_int(f, "HLEN %s", hash_of(f, "t1", HOUR_S)) == 1);
    /* a deadline passes while queued: expired, a failure (TICK) */
    late.deadline_ms = FX_NOW + 1000;
    CHECK(fx_submit1(f, &late) == 0);
    r = fx_tick(f, FX_NOW + 1000, "n");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_late", "status", "expired");
    CHECK(counter(f, "m|-|-|f5") == 1); /* 1000 ms: (500, 1000] */
    CHECK(fx_int(f, "HLEN %s", hash_of(f, "t1", HOUR_S)) == 2);
    /* the last attempt's lease is lost: failed by TICK's recovery, 60 s: (30000, 60000] */
    freeReplyObject(fx_cmd(f, "HSET %s max_attempts 1", fx_key(f, KS_TASK, "task_run")));
    r = fx_tick(f, FX_NOW + FX_LEASE, "n");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_run", "status", "failed");
    CHECK(counter(f, "m|-|-|f10") == 1);
    CHECK(fx_int(f, "HLEN %s", hash_of(f, "t1", HOUR_S)) == 3);
    /* past the last bound: the open bucket */
    {
        struct txn_submit slow = fx_task("task_slow");
        CHECK(fx_submit1(f, &slow) == 0);
        freeReplyObject(fx_cancel(f, "task_slow", "t1", FX_NOW + 61000));
        CHECK(counter(f, "m|-|-|x11") == 1);
    }
}

/* Without KS_USAGE_CFG the counters are kept 90 days (+ a day): a task that ends now. */
static void test_default_retention(struct fx *f)
{
    struct timeval tv;
    struct txn_submit t = fx_task("task_now");
    long long now, hour;

    fx_flush(f);
    gettimeofday(&tv, NULL);
    now = (long long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    hour = now / 3600000 * 3600;
    t.now_ms = now;
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_cancel(f, "task_now", "t1", now));
    CHECK(fx_int(f, "EXPIRETIME %s", hash_of(f, "t1", hour)) == hour + 3600 + 91 * 86400);
}

/* USAGE over [from, to) for tenant (NULL: all): the parsed reply into out (r kept by caller). */
static redisReply *read_usage(struct fx *f, const char *tenant, long long from, long long to,
                              struct txn_usage_reply *out)
{
    struct txn_usage u = {.tenant = tenant, .from_hour_s = from, .to_hour_s = to};
    redisReply *r;

    CHECK(txn_usage_build(&f->args, &f->keys, &u) == 0);
    r = fx_run(f, SCRIPT_USAGE, &f->args);
    CHECK(txn_usage_parse(r, out) == 0);
    return r;
}

static void test_read(struct fx *f)
{
    struct txn_submit a = fx_task("task_a"), b = fx_task("task_b"), c = fx_task("task_c");
    struct txn_usage_reply out;
    struct txn_usage_hash h;
    struct txn_usage bad = {.tenant = "t1", .from_hour_s = HOUR_S, .to_hour_s = HOUR_S};
    redisReply *r;

    setup(f);
    b.tenant = "t2";
    CHECK(fx_submit1(f, &a) == 0 && fx_submit1(f, &b) == 0 && fx_submit1(f, &c) == 0);
    freeReplyObject(fx_cancel(f, "task_a", "t1", FX_NOW));
    freeReplyObject(fx_cancel(f, "task_b", "t2", FX_NOW + 3600000)); /* the next hour */
    freeReplyObject(fx_cancel(f, "task_c", "t1", FX_NOW + 3600000));
    /* one tenant: its hours in order, each its field, value pairs */
    r = read_usage(f, "t1", HOUR_S - 3600, HOUR_S + 3 * 3600, &out);
    CHECK(out.n == 2);
    txn_usage_hash_at(&out, 0, &h);
    CHECK(strcmp(h.tenant, "t1") == 0 && h.hour_s == HOUR_S);
    CHECK(h.pairs->elements == 2); /* x0 */
    txn_usage_hash_at(&out, 1, &h);
    CHECK(h.hour_s == HOUR_S + 3600);
    freeReplyObject(r);
    /* the range's end is exclusive */
    r = read_usage(f, "t1", HOUR_S, HOUR_S + 3600, &out);
    CHECK(out.n == 1);
    freeReplyObject(r);
    /* every tenant: per hour, tenants sorted */
    r = read_usage(f, NULL, HOUR_S, HOUR_S + 2 * 3600, &out);
    CHECK(out.n == 3);
    txn_usage_hash_at(&out, 0, &h);
    CHECK(strcmp(h.tenant, "t1") == 0 && h.hour_s == HOUR_S);
    txn_usage_hash_at(&out, 1, &h);
    CHECK(strcmp(h.tenant, "t1") == 0 && h.hour_s == HOUR_S + 3600);
    txn_usage_hash_at(&out, 2, &h);
    CHECK(strcmp(h.tenant, "t2") == 0 && h.hour_s == HOUR_S + 3600);
    freeReplyObject(r);
    /* a tenant with nothing: empty */
    r = read_usage(f, "t3", HOUR_S, HOUR_S + 2 * 3600, &out);
    CHECK(out.n == 0);
    freeReplyObject(r);
    /* bounded: at most TXN_USAGE_MAX_HOURS, whole hours, from <= to */
    bad.to_hour_s = HOUR_S + (TXN_USAGE_MAX_HOURS + 1) * 3600LL;
    CHECK(txn_usage_build(&f->args, &f->keys, &bad) == CORE_EINVAL);
    bad.to_hour_s = HOUR_S + TXN_USAGE_MAX_HOURS * 3600LL;
    CHECK(txn_usage_build(&f->args, &f->keys, &bad) == 0);
    bad.from_hour_s = HOUR_S + 1;
    CHECK(txn_usage_build(&f->args, &f->keys, &bad) == CORE_EINVAL);
    bad.from_hour_s = HOUR_S + 3600;
    bad.to_hour_s = HOUR_S;
    CHECK(txn_usage_build(&f->args, &f->keys, &bad) == CORE_EINVAL);
    /* the script refuses a longer range itself */
    r = fx_cmd(f, "EVALSHA %s 1 %s t1 %lld %lld 10", scripts_sha(f->scripts, SCRIPT_USAGE),
               fx_key(f, KS_USAGE_TENANTS, "0"), HOUR_S, HOUR_S + 11 * 3600);
    CHECK(r != NULL && r->type == REDIS_REPLY_ERROR);
    freeReplyObject(r);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_finish(&f);
    test_cancel_and_tick(&f);
    test_default_retention(&f);
    test_read(&f);
    fx_stop(&f);
    return check_done();
}
