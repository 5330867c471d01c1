/*
 * tests/lua/test_lua_nudge.c — NUDGE (core/lua/nudge.lua) against a real redis-server: a parked
 * task of the calling provider's deployment becomes due now and idle workers are woken; one due
 * earlier keeps its time; a cancelling parked task moves too; a task of another provider's
 * deployment, one being polled (not parked), a finished one and an unknown id are answered as
 * such and nothing in Redis changes. Also NUDGE's builder and parser at their edges.
 */
#include <stdlib.h>
#include <string.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"
#include "core/txn_callback.h"

#define POLL_AT (FX_NOW + 60000) /* the parked tasks' next poll, a provider's interval away */

/* NUDGE of id at now with the deployments deps; the result (-1: refused or unparsable). */
static int nudge(struct fx *f, const char *id, long long now, const struct txn_nudge_dep *deps,
                 size_t n_deps)
{
    struct txn_nudge p = {.id = id, .now_ms = now, .deps = deps, .n_deps = n_deps};
    enum txn_nudge_result r;
    redisReply *reply;
    int out = -1;

    if (!CHECK(txn_nudge_build(&f->args, &f->keys, &p) == 0)) {
        return -1;
    }
    reply = fx_run(f, SCRIPT_NUDGE, &f->args);
    if (CHECK(txn_nudge_parse(reply, &r) == 0)) {
        out = (int)r;
    }
    freeReplyObject(reply);
    return out;
}

static void test_nudge(struct fx *f)
{
    static const char *const ids[] = {"task_p", "task_e", "task_c", "task_run", "task_d"};
    static const struct txn_nudge_dep mine[] = {{"other", 0}, {"m", 0}};
    static const struct txn_nudge_dep foreign[] = {{"other", 0}, {"m", 1}};
    struct txn_outcome park[3] = {fx_outcome("task_p", TXN_OUTCOME_PARK),
                                  fx_outcome("task_e", TXN_OUTCOME_PARK),
                                  fx_outcome("task_c", TXN_OUTCOME_PARK)};
    struct txn_outcome done = fx_outcome("task_d", TXN_OUTCOME_COMPLETED);
    const char *wake = fx_key(f, KS_CHANNEL_WAKE, NULL);
    char wake_channel[FX_KEY_MAX];
    redisContext *sub;
    char *before, *after;

    snprintf(wake_channel, sizeof(wake_channel), "%s", wake);
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 5; i++) {
        struct txn_submit t = fx_task(ids[i]);
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, 5));
    for (int i = 0; i < 3; i++) {
        park[i].up_id = "u";
        park[i].poll_at_ms = POLL_AT;
        park[i].took_slot = true;
        park[i].class = TXN_CLASS_OK;
    }
    park[1].poll_at_ms = FX_NOW + 50; /* due before the callback comes */
    done.result = "{}";
    done.took_slot = true;
    done.class = TXN_CLASS_OK;
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, park, 3));
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &done, 1));
    freeReplyObject(fx_cancel(f, "task_c", "t1", FX_NOW + 20)); /* due at once: FX_NOW + 20 */
    CHECK_FIELD(f, "task_p", "dep", "0");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_p", fx_key(f, KS_POLLS, NULL)), "1700000060000");

    /* refused: nothing changes, nobody is woken */
    sub = fx_subscribe(f, wake_channel);
    CHECK(sub != NULL);
    before = fx_dump(f);
    CHECK(nudge(f, "task_p", FX_NOW + 100, foreign, 2) == TXN_NUDGE_FOREIGN);
    CHECK(nudge(f, "task_run", FX_NOW + 100, mine, 2) == TXN_NUDGE_NOTPARKED);
    CHECK(nudge(f, "task_d", FX_NOW + 100, mine, 2) == TXN_NUDGE_FINISHED);
    CHECK(nudge(f, "task_none", FX_NOW + 100, mine, 2) == TXN_NUDGE_NOTFOUND);
    after = fx_dump(f);
    CHECK(before != NULL && after != NULL && strcmp(before, after) == 0);
    free(before);
    free(after);
    if (sub != NULL) {
        CHECK(fx_messages(f, sub, wake_channel, NULL, 0) == 0);
    }

    /* the provider's parked task: due now, and the workers are woken */
    CHECK(nudge(f, "task_p", FX_NOW + 100, mine, 2) == TXN_NUDGE_NUDGED);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_p", fx_key(f, KS_POLLS, NULL)), "1700000000100");
    CHECK_FIELD(f, "task_p", "status", "in_progress");
    if (sub != NULL) {
        char first[16] = "";
        CHECK(fx_messages(f, sub, wake_channel, first, sizeof(first)) == 1);
        CHECK_STR(first, "1");
    }
    /* a second callback: still due at the first one's time */
    CHECK(nudge(f, "task_p", FX_NOW + 200, mine, 2) == TXN_NUDGE_NUDGED);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_p", fx_key(f, KS_POLLS, NULL)), "1700000000100");
    /* due earlier than the callback: keeps its time */
    CHECK(nudge(f, "task_e", FX_NOW + 100, mine, 2) == TXN_NUDGE_NUDGED);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_e", fx_key(f, KS_POLLS, NULL)), "1700000000050");
    /* cancelling and parked: moves too (it is due already: keeps its time) */
    CHECK(nudge(f, "task_c", FX_NOW + 100, mine, 2) == TXN_NUDGE_NUDGED);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_c", fx_key(f, KS_POLLS, NULL)), "1700000000020");
    CHECK_FIELD(f, "task_c", "status", "cancelling");
    /* the task being polled was never added to the poll set */
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_run", fx_key(f, KS_POLLS, NULL)), NULL);
    /* the nudged task is claimed as a poll at once */
    {
        redisReply *r = fx_claim(f, FX_NOW + 300, 1);
        CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 + 16);
        if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 + 16) {
            const char *id = fx_elem(r, 2);
            CHECK(id != NULL && (strcmp(id, "task_p") == 0 || strcmp(id, "task_e") == 0 ||
                                 strcmp(id, "task_c") == 0));
            CHECK_STR(fx_elem(r, 2 + 8), "poll");
        }
        freeReplyObject(r);
    }
    if (sub != NULL) {
        redisFree(sub);
    }
}

/* The builder refuses a call without deployments; the parser only NUDGE's answers. */
static void test_layout(struct fx *f)
{
    struct txn_nudge p = {.id = "task_p", .now_ms = FX_NOW, .deps = NULL, .n_deps = 0};
    static const struct txn_nudge_dep one[] = {{"m", 3}};
    redisReply word = {.type = REDIS_REPLY_STRING, .str = "nudged", .len = 6};
    redisReply other = {.type = REDIS_REPLY_STRING, .str = "moved", .len = 5};
    redisReply *elems[1] = {&word};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 1, .element = elems};
    enum txn_nudge_result r;

    CHECK(txn_nudge_build(&f->args, &f->keys, &p) == CORE_EINVAL);
    p.deps = one;
    p.n_deps = 1;
    CHECK(txn_nudge_build(&f->args, &f->keys, &p) == 0);
    CHECK(f->args.nkeys == 2 && f->args.n == 6);
    CHECK(f->args.n == 6 && strcmp(f->args.v[5], "m|3") == 0);
    CHECK(f->args.n == 6 && strcmp(f->args.v[2], "task_p") == 0);
    CHECK(txn_nudge_parse(&arr, &r) == 0 && r == TXN_NUDGE_NUDGED);
    elems[0] = &other;
    CHECK(txn_nudge_parse(&arr, &r) == -1);
    CHECK(txn_nudge_parse(&word, &r) == -1);
    CHECK(txn_nudge_parse(NULL, &r) == -1);
    CHECK_STR(txn_nudge_result_name(TXN_NUDGE_NOTPARKED), "notparked");
    CHECK_STR(txn_nudge_result_name(TXN_NUDGE_RESULT_COUNT), "");
}

/* The callback URL layout: base + path + provider + task id; names that cannot stand in a path
 * and ids that are not task ids are refused. */
static void test_url(void)
{
    char buf[TXN_CALLBACK_URL_SIZE];
    const char *id = "task_abcdefghijklmnopqrstuvwxyz";

    CHECK(txn_callback_url(buf, sizeof(buf), "http://127.0.0.1:9/x", "rep-1.a_b", id) == 0);
    CHECK_STR(buf, "http://127.0.0.1:9/x/v1/provider_callbacks/rep-1.a_b/"
                   "task_abcdefghijklmnopqrstuvwxyz");
    CHECK(txn_callback_url(buf, sizeof(buf), "http://h", "a/b", id) == -1 && buf[0] == '\0');
    CHECK(txn_callback_url(buf, sizeof(buf), "http://h", "..", id) == -1);
    CHECK(txn_callback_url(buf, sizeof(buf), "http://h", "", id) == -1);
    CHECK(txn_callback_url(buf, sizeof(buf), "http://h", "p", "task_short") == -1);
    CHECK(txn_callback_url(buf, 20, "http://h", "p", id) == -1 && buf[0] == '\0');
    CHECK(!txn_callback_provider_ok("p q"));
    CHECK(txn_callback_provider_ok("replicate"));
}

int main(void)
{
    struct fx f;

    test_url();
    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_nudge(&f);
    test_layout(&f);
    fx_stop(&f);
    return check_done();
}
