/*
 * tests/lua/test_lua_submit.c — SUBMIT (core/lua/submit.lua) against a real redis-server: a task
 * written whole and queued, the wake message only for an empty list, a batched call equal to the
 * same calls one by one, idempotent replays and conflicts, a batch line submitted twice, and the
 * tenant quotas (queued tasks, stored bytes, artifact bytes).
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

/* SUBMIT of the one task t, its answer parsed into out (borrowing the reply: caller frees). */
static redisReply *submit(struct fx *f, const struct txn_submit *t, struct txn_submitted *out)
{
    redisReply *r = fx_submit(f, t, 1);

    memset(out, 0, sizeof(*out));
    CHECK(txn_submit_parse(r, 1, out) == 0);
    return r;
}

static void test_single(struct fx *f)
{
    const char *input = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
    struct txn_submit t = fx_task("task_a");
    char sb[32], reply_to[FX_KEY_MAX], wake[FX_KEY_MAX];
    redisContext *sub;

    keyspace_key(&f->keys, reply_to, sizeof(reply_to), KS_CHANNEL_API, "n1");
    keyspace_key(&f->keys, wake, sizeof(wake), KS_CHANNEL_WAKE, NULL);
    t.tenant = "acme";
    t.model = "gpt";
    t.prio = TASK_PRIO_NORMAL;
    t.input = input;
    t.metadata = "{\"k\":\"v\"}";
    t.reply_to = reply_to;
    t.deadline_ms = 1700000100000LL;
    t.est_tokens = 42;
    t.max_attempts = 5;
    fx_flush(f);
    sub = fx_subscribe(f, wake);
    CHECK(sub != NULL);
    CHECK(fx_submit1(f, &t) == 0);
    snprintf(sb, sizeof(sb), "%zu", strlen(input));
    CHECK_FIELD(f, "task_a", "status", "queued");
    CHECK_FIELD(f, "task_a", "tenant", "acme");
    CHECK_FIELD(f, "task_a", "kind", "chat");
    CHECK_FIELD(f, "task_a", "model", "gpt");
    CHECK_FIELD(f, "task_a", "priority", "1");
    CHECK_FIELD(f, "task_a", "created", "1700000000000");
    CHECK_FIELD(f, "task_a", "attempts", "0");
    CHECK_FIELD(f, "task_a", "max_attempts", "5");
    CHECK_FIELD(f, "task_a", "fence", "0");
    CHECK_FIELD(f, "task_a", "input", input);
    CHECK_FIELD(f, "task_a", "est", "42");
    CHECK_FIELD(f, "task_a", "inq", "1");
    CHECK_FIELD(f, "task_a", "sb", sb);
    CHECK_FIELD(f, "task_a", "metadata", "{\"k\":\"v\"}");
    CHECK_FIELD(f, "task_a", "reply_to", reply_to);
    CHECK_FIELD(f, "task_a", "deadline", "1700000100000");
    CHECK_FIELD(f, "task_a", "stream", NULL);
    CHECK_FIELD(f, "task_a", "batch", NULL);
    CHECK_OWNED(fx_str(f, "LINDEX %s -1", fx_key(f, KS_QUEUE, "1:acme|gpt")), "task_a");
    CHECK_OWNED(fx_str(f, "LINDEX %s 0", fx_key(f, KS_RING, "1")), "acme|gpt");
    CHECK(fx_int(f, "SISMEMBER %s acme|gpt", fx_key(f, KS_RINGSET, "1")) == 1);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_a", fx_key(f, KS_TENANT, "acme")), "1700000000000");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_a", fx_key(f, KS_DEADLINES, NULL)), "1700000100000");
    CHECK(fx_stat(f, "status|queued") == 1);
    CHECK(fx_stat(f, "tq|acme") == 1);
    CHECK(fx_stat(f, "accepted") == 1);
    CHECK(fx_stat(f, "sb|acme") == (long long)strlen(input));
    CHECK(fx_stat(f, "depth|gpt|1") == 1);
    CHECK(fx_stat(f, "depthp|1") == 1);
    /* the list was empty: the workers are woken; a second task joins a list that is not */
    CHECK(fx_messages(f, sub, wake, NULL, 0) == 1);
    t.id = "task_b";
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_messages(f, sub, wake, NULL, 0) == 0);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_QUEUE, "1:acme|gpt")) == 2);
    CHECK_OWNED(fx_str(f, "LINDEX %s -1", fx_key(f, KS_QUEUE, "1:acme|gpt")), "task_a");
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_RING, "1")) == 1);
    redisFree(sub);
}

#define N_MIX 7

/* A mix that touches every shared write: two tenants, two aliases, two priorities, a deadline,
 * an idempotency key used twice, a quota reached within the call. */
static void mix_init(struct txn_submit *mix)
{
    static const char *const ids[N_MIX] = {"task_1", "task_2", "task_3", "task_4",
                                           "task_5", "task_6", "task_7"};
    static const char *const tenants[N_MIX] = {"a", "b", "a", "a", "c", "c", "a"};
    static const char *const models[N_MIX] = {"m1", "m1", "m2", "m2", "m1", "m1", "m1"};
    static const enum task_priority prios[N_MIX] = {
        TASK_PRIO_NORMAL, TASK_PRIO_INTERACTIVE, TASK_PRIO_NORMAL, TASK_PRIO_NORMAL,
        TASK_PRIO_BATCH,  TASK_PRIO_BATCH,       TASK_PRIO_NORMAL};

    for (int i = 0; i < N_MIX; i++) {
        mix[i] = fx_task(ids[i]);
        mix[i].tenant = tenants[i];
        mix[i].model = models[i];
        mix[i].prio = prios[i];
    }
    mix[1].deadline_ms = 1700000009000LL;
    mix[2].idem_hash = mix[3].idem_hash = "k1";
    mix[2].body_hash = mix[3].body_hash = "aa";
    mix[4].max_queued = mix[5].max_queued = 1;
    mix[6].stream = true;
}

static void test_batched_equals_sequential(struct fx *f)
{
    struct txn_submit mix[N_MIX];
    struct txn_submitted res[N_MIX], one_res;
    redisReply *batched, *one[N_MIX];
    char *d_batched, *d_seq;

    mix_init(mix);
    fx_flush(f);
    batched = fx_submit(f, mix, N_MIX);
    CHECK(batched != NULL && batched->type == REDIS_REPLY_ARRAY && batched->elements == N_MIX);
    CHECK(txn_submit_parse(batched, N_MIX, res) == 0);
    d_batched = fx_dump(f);
    fx_flush(f);
    for (int i = 0; i < N_MIX; i++) {
        one[i] = fx_submit(f, &mix[i], 1);
    }
    d_seq = fx_dump(f);
    CHECK_STR(d_batched, d_seq);
    for (int i = 0; i < N_MIX; i++) {
        CHECK(txn_submit_parse(one[i], 1, &one_res) == 0);
        CHECK(one_res.result == res[i].result);
        CHECK(one_res.count == res[i].count);
        CHECK_STR(one_res.dup_id, res[i].dup_id);
        freeReplyObject(one[i]);
    }
    CHECK(res[0].result == TXN_SUBMIT_OK);
    CHECK(res[3].result == TXN_SUBMIT_DUP);
    CHECK_STR(res[3].dup_id, "task_3");
    CHECK(res[5].result == TXN_SUBMIT_QUOTA);
    CHECK(res[5].count == 1);
    CHECK(res[6].result == TXN_SUBMIT_OK);
    free(d_batched);
    free(d_seq);
    freeReplyObject(batched);
}

static void test_idempotency(struct fx *f)
{
    struct txn_submit t = fx_task("task_x");
    struct txn_submitted res;
    redisReply *r;

    t.idem_hash = "key-1";
    t.body_hash = "beef";
    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_IDEM, "t1:key-1")), "beef task_x");
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_IDEM, "t1:key-1")) > 0);
    /* the same key and body again (a client's retry with a new id): the first task, nothing new */
    t.id = "task_y";
    r = submit(f, &t, &res);
    CHECK(res.result == TXN_SUBMIT_DUP);
    CHECK_STR(res.dup_id, "task_x");
    CHECK(res.dup_hash != NULL && res.dup_hash->elements > 0);
    CHECK_STR(res.dup_hash ? task_hash_get(res.dup_hash, "status") : NULL, "queued");
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_TASK, "task_y")) == 0);
    CHECK(fx_stat(f, "accepted") == 1);
    CHECK(fx_stat(f, "tq|t1") == 1);
    /* the same key, another body: a conflict, nothing written */
    t.body_hash = "cafe";
    r = submit(f, &t, &res);
    CHECK(res.result == TXN_SUBMIT_CONFLICT);
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_TASK, "task_y")) == 0);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_IDEM, "t1:key-1")), "beef task_x");
    /* a key whose task is gone (swept) creates the task again */
    freeReplyObject(fx_cmd(f, "DEL %s", fx_key(f, KS_TASK, "task_x")));
    t.body_hash = "beef";
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_IDEM, "t1:key-1")), "beef task_y");
}

static void test_batch_line_twice(struct fx *f)
{
    struct txn_submit t = fx_task("task_bl1");
    struct txn_submitted res;
    char *before;
    redisReply *r;

    t.batch_id = "batch_1";
    t.custom_id = "line-1";
    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_FIELD(f, "task_bl1", "batch", "batch_1");
    CHECK_FIELD(f, "task_bl1", "custom_id", "line-1");
    before = fx_dump(f);
    r = submit(f, &t, &res);
    CHECK(res.result == TXN_SUBMIT_DUP);
    CHECK_STR(res.dup_id, "task_bl1");
    freeReplyObject(r);
    CHECK_OWNED(fx_dump(f), before);
    free(before);
    /* without a batch the custom_id is not kept */
    t.id = "task_nb";
    t.batch_id = NULL;
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_FIELD(f, "task_nb", "custom_id", NULL);
}

static void test_quotas(struct fx *f)
{
    struct txn_submit t = fx_task("task_q1");
    struct txn_submitted res;
    redisReply *r;

    t.tenant = "q";
    t.max_queued = 2;
    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_q2";
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_q3";
    r = submit(f, &t, &res);
    CHECK(res.result == TXN_SUBMIT_QUOTA);
    CHECK(res.count == 2);
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_TASK, "task_q3")) == 0);

    /* stored bytes: the input must fit in what is left */
    fx_flush(f);
    t = fx_task("task_s1");
    t.tenant = "s";
    t.input = "0123456789";
    t.max_stored_bytes = 15;
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_stat(f, "sb|s") == 10);
    t.id = "task_s2";
    r = submit(f, &t, &res);
    CHECK(res.result == TXN_SUBMIT_STORAGE);
    CHECK(res.count == 10);
    freeReplyObject(r);
    t.input = "01234";
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_stat(f, "sb|s") == 15);

    /* artifact bytes: image and video tasks refused once the tenant's kept artifacts reach it */
    fx_flush(f);
    freeReplyObject(fx_cmd(f, "HSET %s ab|art 500", fx_key(f, KS_STATS, NULL)));
    t = fx_task("task_i1");
    t.tenant = "art";
    t.kind = TASK_KIND_IMAGE;
    t.max_artifact_bytes = 500;
    r = submit(f, &t, &res);
    CHECK(res.result == TXN_SUBMIT_ARTIFACTS);
    CHECK(res.count == 500);
    freeReplyObject(r);
    t.kind = TASK_KIND_CHAT;
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_i2";
    t.kind = TASK_KIND_IMAGE;
    t.max_artifact_bytes = 501;
    CHECK(fx_submit1(f, &t) == 0);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_single(&f);
    test_batched_equals_sequential(&f);
    test_idempotency(&f);
    test_batch_line_twice(&f);
    test_quotas(&f);
    fx_stop(&f);
    return check_done();
}
