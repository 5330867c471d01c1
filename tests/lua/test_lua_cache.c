/*
 * tests/lua/test_lua_cache.c — the response cache in SUBMIT (core/lua/submit.lua) and finalize
 * (core/lua/prelude.lua cache_end) against a real redis-server: a miss leads and is queued; an
 * identical task while it runs follows it (queued, in no ready list); the leader's completion
 * stores the response and completes its followers (cached, cost 0, their waiters told); a later
 * task is a hit, completed at once; no-cache computes again; a failed leader sends its followers
 * to the queue, the first leading; an entry's TTL; the tenant's byte bound evicts the least
 * recently used entry; a cached response names its own task.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

#define KEY_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define KEY_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define KEY_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define ARG_A "r " KEY_A " 60000 1000000"
#define ZERO_COST "{\"amount\":0,\"currency\":\"USD\"}"
#define RESULT "{\"object\":\"chat.completion\",\"choices\":[]}"
#define USAGE "{\"prompt_tokens\":3,\"completion_tokens\":5}"
#define ENTRY_BYTES 82 /* an entry's bytes: RESULT and USAGE */

/* SUBMIT of task id with the cache argument cache (reply_to: the channel, NULL none): its
 * answer. */
static enum txn_submit_result submit(struct fx *f, const char *id, const char *cache,
                                     const char *reply_to)
{
    struct txn_submit t = fx_task(id);
    struct txn_submitted res = {0};
    redisReply *r;

    t.cache = cache;
    t.reply_to = reply_to;
    r = fx_submit(f, &t, 1);
    CHECK(txn_submit_parse(r, 1, &res) == 0);
    if (res.result == TXN_SUBMIT_DUP) {
        CHECK_STR(res.dup_id, id); /* a hit nobody waits for: its own completed task */
    }
    freeReplyObject(r);
    return res.result;
}

/* Claims the one queued task at now (fence 1 on a first claim) and finishes it with kind. */
static void run(struct fx *f, const char *id, long long now, enum txn_outcome_kind kind,
                const char *result, const char *usage)
{
    struct txn_outcome o = fx_outcome(id, kind);
    enum txn_applied applied = TXN_APPLIED_UNKNOWN;
    struct txn_claim_reply c;
    redisReply *r = fx_claim(f, now, 1);

    CHECK(txn_claim_parse(r, &c) == 0 && c.n_units == 1);
    freeReplyObject(r);
    o.result = result;
    o.usage = usage;
    o.cost = "{\"amount\":0.5,\"currency\":\"USD\"}";
    o.error = kind == TXN_OUTCOME_FAILED ? "{\"message\":\"bad\",\"code\":\"x\"}" : NULL;
    r = fx_finish(f, now + 10, 10, &o, 1);
    CHECK(txn_finish_parse(r, &applied, 1) == 0);
    freeReplyObject(r);
}

static void test_leader_followers_hit(struct fx *f)
{
    char reply_to[FX_KEY_MAX], msg[256], member[96];
    redisContext *sub;

    keyspace_key(&f->keys, reply_to, sizeof(reply_to), KS_CHANNEL_API, "n1");
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    /* a miss: it leads, queued as any task, carrying what cache_end needs */
    CHECK(submit(f, "task_l", ARG_A, NULL) == TXN_SUBMIT_OK);
    CHECK_FIELD(f, "task_l", "status", "queued");
    CHECK_FIELD(f, "task_l", "inq", "1");
    CHECK_FIELD(f, "task_l", "ck", KEY_A " 60000 1000000");
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_CACHE_FLIGHT, KEY_A)), "task_l");
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_QUEUE, "1:t1|m")) == 1);
    CHECK(fx_stat(f, "cache|miss") == 1);
    /* two identical tasks while it runs: followers, queued in no ready list */
    CHECK(submit(f, "task_f1", ARG_A, reply_to) == TXN_SUBMIT_OK);
    CHECK(submit(f, "task_f2", ARG_A, NULL) == TXN_SUBMIT_OK);
    CHECK_FIELD(f, "task_f1", "status", "queued");
    CHECK_FIELD(f, "task_f1", "inq", NULL);
    CHECK_FIELD(f, "task_f1", "ck", NULL);
    CHECK_FIELD(f, "task_f1", "cfk", KEY_A " 60000 1000000");
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_QUEUE, "1:t1|m")) == 1);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_CACHE_WAIT, "task_l")) == 2);
    CHECK(fx_stat(f, "cache|join") == 2);
    CHECK(fx_stat(f, "status|queued") == 3);
    CHECK(fx_stat(f, "tq|t1") == 1);
    CHECK(fx_stat(f, "accepted") == 3);
    /* one call: the leader completes, the response is stored, the followers complete with it */
    sub = fx_subscribe(f, reply_to);
    CHECK(sub != NULL);
    run(f, "task_l", FX_NOW + 1000, TXN_OUTCOME_COMPLETED, RESULT, USAGE);
    CHECK_FIELD(f, "task_l", "status", "completed");
    CHECK_FIELD(f, "task_l", "cached", NULL);
    CHECK_OWNED(fx_str(f, "HGET %s r", fx_key(f, KS_CACHE, KEY_A)), RESULT);
    CHECK_OWNED(fx_str(f, "HGET %s u", fx_key(f, KS_CACHE, KEY_A)), USAGE);
    CHECK_OWNED(fx_str(f, "HGET %s t", fx_key(f, KS_CACHE, KEY_A)), "t1");
    for (int i = 0; i < 2; i++) {
        const char *id = i == 0 ? "task_f1" : "task_f2";
        CHECK_FIELD(f, id, "status", "completed");
        CHECK_FIELD(f, id, "result", RESULT);
        CHECK_FIELD(f, id, "usage", USAGE);
        CHECK_FIELD(f, id, "cost", ZERO_COST);
        CHECK_FIELD(f, id, "cached", "1");
        CHECK_FIELD(f, id, "cfk", NULL);
        CHECK_FIELD(f, id, "completed", "1700000001010");
    }
    /* the waiting request of a follower is told with the result */
    CHECK(fx_messages(f, sub, reply_to, msg, sizeof(msg)) == 1);
    CHECK_STR(msg, "r task_f1 " RESULT);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_CACHE_FLIGHT, KEY_A)) == 0);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_CACHE_WAIT, "task_l")) == 0);
    CHECK(fx_stat(f, "status|completed") == 3);
    CHECK(fx_stat(f, "status|queued") == 0);
    CHECK(fx_stat(f, "tq|t1") == 0);
    snprintf(member, sizeof(member), "%s:%zu", KEY_A, strlen(RESULT) + strlen(USAGE));
    CHECK_OWNED(fx_str(f, "ZSCORE %s %s", fx_key(f, KS_CACHE_LRU, "t1"), member), "1700000001010");
    CHECK(strlen(RESULT) + strlen(USAGE) == ENTRY_BYTES);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_CACHE_BYTES, "t1")), "82");
    /* a hit: completed at once, nothing queued; the request that waits is told */
    CHECK(submit(f, "task_h", ARG_A, reply_to) == TXN_SUBMIT_OK);
    CHECK_FIELD(f, "task_h", "status", "completed");
    CHECK_FIELD(f, "task_h", "result", RESULT);
    CHECK_FIELD(f, "task_h", "usage", USAGE);
    CHECK_FIELD(f, "task_h", "cost", ZERO_COST);
    CHECK_FIELD(f, "task_h", "cached", "1");
    CHECK_FIELD(f, "task_h", "inq", NULL);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_QUEUE, "1:t1|m")) == 0);
    CHECK(fx_messages(f, sub, reply_to, msg, sizeof(msg)) == 1);
    CHECK_STR(msg, "r task_h " RESULT);
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_TASK, "task_h")) > 0);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_h", fx_key(f, KS_TENANT, "t1")), "1700000000000");
    CHECK(fx_stat(f, "cache|hit") == 1);
    CHECK(fx_stat(f, "status|completed") == 4);
    CHECK(fx_stat(f, "accepted") == 4);
    /* a hit nobody waits for answers with its completed task (dup of itself) */
    CHECK(submit(f, "task_h2", ARG_A, NULL) == TXN_SUBMIT_DUP);
    CHECK_FIELD(f, "task_h2", "cached", "1");
    /* no-cache: computed again (queued), not answered from the entry */
    CHECK(submit(f, "task_n", "w " KEY_A " 60000 1000000", NULL) == TXN_SUBMIT_OK);
    CHECK_FIELD(f, "task_n", "status", "queued");
    CHECK_FIELD(f, "task_n", "inq", "1");
    CHECK_FIELD(f, "task_n", "ck", KEY_A " 60000 1000000");
    CHECK(fx_stat(f, "cache|bypass") == 1);
    /* no cache argument: an ordinary task, nothing read or written */
    CHECK(submit(f, "task_o", NULL, NULL) == TXN_SUBMIT_OK);
    CHECK_FIELD(f, "task_o", "ck", NULL);
    CHECK(fx_stat(f, "cache|hit") == 2);
    redisFree(sub);
}

static void test_leader_fails(struct fx *f)
{
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(submit(f, "task_l", ARG_A, NULL) == TXN_SUBMIT_OK);
    CHECK(submit(f, "task_f1", ARG_A, NULL) == TXN_SUBMIT_OK);
    CHECK(submit(f, "task_f2", ARG_A, NULL) == TXN_SUBMIT_OK);
    run(f, "task_l", FX_NOW + 1000, TXN_OUTCOME_FAILED, NULL, NULL);
    CHECK_FIELD(f, "task_l", "status", "failed");
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_CACHE, KEY_A)) == 0);
    /* the followers are ordinary queued tasks now; the first leads the key */
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_QUEUE, "1:t1|m")) == 2);
    CHECK_FIELD(f, "task_f1", "status", "queued");
    CHECK_FIELD(f, "task_f1", "inq", "1");
    CHECK_FIELD(f, "task_f1", "ck", KEY_A " 60000 1000000");
    CHECK_FIELD(f, "task_f1", "cfk", NULL);
    CHECK_FIELD(f, "task_f2", "inq", "1");
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_CACHE_FLIGHT, KEY_A)), "task_f1");
    CHECK(fx_stat(f, "tq|t1") == 2);
    /* a task that arrives now follows the new leader */
    CHECK(submit(f, "task_f3", ARG_A, NULL) == TXN_SUBMIT_OK);
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_CACHE_WAIT, "task_f1")) == 1);
    /* a follower cancelled meanwhile is left as it is when its leader completes */
    freeReplyObject(fx_cancel(f, "task_f3", "t1", FX_NOW + 1500));
    CHECK_FIELD(f, "task_f3", "status", "cancelled");
    run(f, "task_f1", FX_NOW + 2000, TXN_OUTCOME_COMPLETED, RESULT, USAGE);
    CHECK_FIELD(f, "task_f3", "status", "cancelled");
    CHECK_FIELD(f, "task_f3", "result", NULL);
    CHECK_OWNED(fx_str(f, "HGET %s r", fx_key(f, KS_CACHE, KEY_A)), RESULT);
    /* the other one computes its own answer and stores it again (no double count) */
    run(f, "task_f2", FX_NOW + 3000, TXN_OUTCOME_COMPLETED, RESULT, USAGE);
    CHECK_FIELD(f, "task_f2", "cached", NULL);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_CACHE_BYTES, "t1")), "82");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_CACHE_LRU, "t1")) == 1);
}

static void test_ttl_and_lru(struct fx *f)
{
    /* entries of 82 bytes under a bound of 200: two fit, a third evicts the least recently used
     */
    const char *bound = " 60000 200";
    char arg[160], member[96];
    const char *keys[] = {KEY_A, KEY_B, KEY_C};
    const char *ids[] = {"task_a", "task_b", "task_c"};

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 2; i++) {
        snprintf(arg, sizeof(arg), "r %s%s", keys[i], bound);
        CHECK(submit(f, ids[i], arg, NULL) == TXN_SUBMIT_OK);
        run(f, ids[i], FX_NOW + 1000 * (i + 1), TXN_OUTCOME_COMPLETED, RESULT, USAGE);
    }
    /* the TTL is the argument's */
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_CACHE, KEY_A)) > 0);
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_CACHE, KEY_A)) <= 60000);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_CACHE_BYTES, "t1")), "164");
    /* A is used again (a hit): B is now the least recently used */
    snprintf(arg, sizeof(arg), "r %s%s", KEY_A, bound);
    {
        struct txn_submit t = fx_task("task_a2");
        redisReply *r;
        t.cache = arg;
        t.now_ms = FX_NOW + 5000;
        r = fx_submit(f, &t, 1);
        freeReplyObject(r);
    }
    CHECK_FIELD(f, "task_a2", "cached", "1");
    snprintf(arg, sizeof(arg), "r %s%s", KEY_C, bound);
    CHECK(submit(f, ids[2], arg, NULL) == TXN_SUBMIT_OK);
    run(f, ids[2], FX_NOW + 6000, TXN_OUTCOME_COMPLETED, RESULT, USAGE);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_CACHE, KEY_B)) == 0);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_CACHE, KEY_A)) == 1);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_CACHE, KEY_C)) == 1);
    CHECK_OWNED(fx_str(f, "GET %s", fx_key(f, KS_CACHE_BYTES, "t1")), "164");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_CACHE_LRU, "t1")) == 2);
    snprintf(member, sizeof(member), "%s:82", KEY_A);
    CHECK_OWNED(fx_str(f, "ZSCORE %s %s", fx_key(f, KS_CACHE_LRU, "t1"), member), "1700000005000");
    /* an entry larger than the whole bound is not kept */
    snprintf(arg, sizeof(arg), "r %s 60000 50", KEY_B);
    CHECK(submit(f, "task_big", arg, NULL) == TXN_SUBMIT_OK);
    run(f, "task_big", FX_NOW + 7000, TXN_OUTCOME_COMPLETED, RESULT, USAGE);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_CACHE, KEY_B)) == 0);
    /* an expired entry is a miss */
    freeReplyObject(fx_cmd(f, "DEL %s", fx_key(f, KS_CACHE, KEY_A)));
    snprintf(arg, sizeof(arg), "r %s%s", KEY_A, bound);
    CHECK(submit(f, "task_a3", arg, NULL) == TXN_SUBMIT_OK);
    CHECK_FIELD(f, "task_a3", "status", "queued");
    CHECK_FIELD(f, "task_a3", "cached", NULL);
}

/* A cached response (Responses API) names its own task: the id the computing task wrote in it is
 * replaced, for a follower and for a hit. */
static void test_response_ids(struct fx *f)
{
    const char *input = "{\"model\":\"m\",\"input\":\"hi\"}";
    const char *ids[] = {"task_rl", "task_rf", "task_rh"};

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 2; i++) {
        struct txn_submit t = fx_task(ids[i]);
        t.kind = TASK_KIND_RESPONSE;
        t.input = input;
        t.cache = ARG_A;
        CHECK(fx_submit1(f, &t) == 0);
    }
    run(f, "task_rl", FX_NOW + 1000, TXN_OUTCOME_COMPLETED,
        "{\"id\":\"task_rl\",\"object\":\"response\",\"output\":[{\"id\":\"msg_1\"}]}", USAGE);
    CHECK_OWNED(fx_str(f, "HGET %s s", fx_key(f, KS_CACHE, KEY_A)), "task_rl");
    CHECK_FIELD(f, "task_rf", "result",
                "{\"id\":\"task_rf\",\"object\":\"response\",\"output\":[{\"id\":\"msg_1\"}]}");
    {
        struct txn_submit t = fx_task(ids[2]);
        t.kind = TASK_KIND_RESPONSE;
        t.input = input;
        t.cache = ARG_A;
        CHECK(fx_submit1(f, &t) == -1); /* a hit nobody waits for: DUP of itself */
    }
    CHECK_FIELD(f, "task_rh", "result",
                "{\"id\":\"task_rh\",\"object\":\"response\",\"output\":[{\"id\":\"msg_1\"}]}");
    CHECK_FIELD(f, "task_rh", "cached", "1");
}

/* An image's answer refers to its task's kept files: a cached one names that task (in the result
 * after the marker, on each artifact), followers and hits show the same files, the entry lives no
 * longer than the task, and a hit keeps the task's files on for its own retention. */
static void test_image(struct fx *f)
{
#define ARG_IMG "r " KEY_C " 99999999 1000000"
#define IMG_RESULT "{\"sluice_response_format\":\"url\",\"created\":1,\"data\":[{\"artifact\":0}]}"
#define IMG_OWNED                                                                                  \
    "{\"sluice_response_format\":\"url\",\"sluice_artifact_task\":\"task_i1\",\"created\":1,"      \
    "\"data\":[{\"artifact\":0}]}"
    struct txn_outcome o = fx_outcome("task_i1", TXN_OUTCOME_COMPLETED);
    enum txn_applied applied = TXN_APPLIED_UNKNOWN;
    struct txn_claim_reply c;
    char member[128], *sb, *art;
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(submit(f, "task_i1", ARG_IMG, NULL) == TXN_SUBMIT_OK);
    CHECK(submit(f, "task_i2", ARG_IMG, NULL) == TXN_SUBMIT_OK); /* a follower */
    r = fx_claim(f, FX_NOW + 1000, 1);
    CHECK(txn_claim_parse(r, &c) == 0 && c.n_units == 1);
    freeReplyObject(r);
    o.result = IMG_RESULT;
    o.artifacts = "[{\"index\":0,\"content_type\":\"image/png\",\"bytes\":10}]";
    o.cost = "{\"amount\":0.04,\"currency\":\"USD\"}";
    r = fx_finish(f, FX_NOW + 1010, 10, &o, 1);
    CHECK(txn_finish_parse(r, &applied, 1) == 0);
    freeReplyObject(r);
    /* the maker keeps its own result; the entry and the follower name the maker's files */
    CHECK_FIELD(f, "task_i1", "result", IMG_RESULT);
    CHECK_OWNED(fx_str(f, "HGET %s r", fx_key(f, KS_CACHE, KEY_C)), IMG_OWNED);
    art = fx_str(f, "HGET %s a", fx_key(f, KS_CACHE, KEY_C));
    CHECK(art != NULL && strstr(art, "\"blob_task\":\"task_i1\"") != NULL);
    /* the entry's life is capped by the maker's retention, not the asked 99,999,999 ms */
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_CACHE, KEY_C)) <= FX_RET);
    CHECK_FIELD(f, "task_i2", "status", "completed");
    CHECK_FIELD(f, "task_i2", "result", IMG_OWNED);
    CHECK_FIELD(f, "task_i2", "artifacts", art);
    CHECK_FIELD(f, "task_i2", "cached", "1");
    /* a later identical task is a hit: the same files, and the maker's sweep moves to the hit's end
     */
    CHECK(submit(f, "task_i3", ARG_IMG, NULL) == TXN_SUBMIT_DUP);
    CHECK_FIELD(f, "task_i3", "result", IMG_OWNED);
    CHECK_FIELD(f, "task_i3", "artifacts", art);
    sb = fx_field(f, "task_i1", "sb");
    snprintf(member, sizeof(member), "t1|task_i1|completed|%s|10", sb ? sb : "0");
    free(sb);
    {
        char *score = fx_str(f, "ZSCORE %s %s", fx_key(f, KS_EXPIRY, NULL), member);
        CHECK(score != NULL && atoll(score) == FX_NOW + 86400000);
        free(score);
    }
    free(art);
#undef ARG_IMG
#undef IMG_RESULT
#undef IMG_OWNED
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_leader_followers_hit(&f);
    test_leader_fails(&f);
    test_ttl_and_lru(&f);
    test_response_ids(&f);
    test_image(&f);
    fx_stop(&f);
    return check_done();
}
