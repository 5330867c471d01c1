/*
 * tests/lua/test_lua_delete.c — DELETE (core/lua/delete.lua) against a real redis-server: a task
 * in each state (queued, running and cancelling refused; completed, failed, cancelled and expired
 * deleted), another tenant's and an unknown task not found, a finished task its batch still holds
 * refused; a deleted task's hash, events list and place in the tenant's list gone at once, its
 * expiry member made due, and what the next TICK gives back (status gauge, stored and artifact
 * bytes, the id whose blob folder goes) exactly what the sweep at the end of its retention gives.
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

/* DELETE of id by tenant, parsed into *out. The reply: caller frees. */
static redisReply *delete_call(struct fx *f, const char *id, const char *tenant,
                               struct txn_deleted *out)
{
    struct txn_delete p = {.id = id, .tenant = tenant};
    redisReply *r;

    CHECK(txn_delete_build(&f->args, &f->keys, &p) == 0);
    r = fx_run(f, SCRIPT_DELETE, &f->args);
    memset(out, 0, sizeof(*out));
    out->result = TXN_DELETE_NOTFOUND;
    CHECK(txn_delete_parse(r, out) == 0);
    return r;
}

/* DELETE of id by tenant answers want (CONFLICT: with the task's status want_status). */
#define CHECK_DELETE(f, id, tenant, want, want_status)                                             \
    do {                                                                                           \
        struct txn_deleted d_;                                                                     \
        freeReplyObject(delete_call((f), (id), (tenant), &d_));                                    \
        CHECK(d_.result == (want));                                                                \
        CHECK((want) != TXN_DELETE_CONFLICT || d_.status == (want_status));                        \
    } while (0)

/* DELETE of id by tenant is refused (want) and changes nothing at all. */
static void check_refused(struct fx *f, const char *id, const char *tenant,
                          enum txn_delete_result want, enum task_status want_status)
{
    char *before = fx_dump(f), *after;

    CHECK_DELETE(f, id, tenant, want, want_status);
    after = fx_dump(f);
    CHECK_STR(after, before);
    free(before);
    free(after);
}

/*
 * Tasks in every state, all of tenant t1 on alias m, claimed at FX_NOW: task_q queued; task_run
 * running; task_cing cancelling; task_done completed with a 10-byte result and an events list;
 * task_img completed with 300 bytes of artifacts; task_fail failed; task_canc cancelled while
 * queued; task_exp expired at its deadline (TICK at FX_NOW + 50). Finished at FX_NOW + 100.
 */
static void setup(struct fx *f)
{
    static const char *const run[] = {"task_run", "task_cing", "task_done", "task_img",
                                      "task_fail"};
    struct txn_outcome o[3];
    struct txn_submit t;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 5; i++) {
        t = fx_task(run[i]);
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, 5));
    t = fx_task("task_q");
    CHECK(fx_submit1(f, &t) == 0);
    t = fx_task("task_canc");
    CHECK(fx_submit1(f, &t) == 0);
    t = fx_task("task_exp");
    t.deadline_ms = FX_NOW + 50;
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_tick(f, FX_NOW + 50, "n"));
    freeReplyObject(fx_cancel(f, "task_canc", "t1", FX_NOW + 100));
    freeReplyObject(fx_cancel(f, "task_cing", "t1", FX_NOW + 100));
    o[0] = fx_outcome("task_done", TXN_OUTCOME_COMPLETED);
    o[0].result = "0123456789";
    o[1] = fx_outcome("task_img", TXN_OUTCOME_COMPLETED);
    o[1].result = "{}";
    o[1].artifacts = "[{\"index\":0,\"bytes\":300}]";
    o[2] = fx_outcome("task_fail", TXN_OUTCOME_FAILED);
    o[2].error = "{\"message\":\"no\"}";
    for (int i = 0; i < 3; i++) {
        o[i].took_slot = true;
        o[i].class = TXN_CLASS_OK;
    }
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, o, 3));
    freeReplyObject(
        fx_cmd(f, "RPUSH %s {\"type\":\"response.created\"}", fx_key(f, KS_EVENTS, "task_done")));
    CHECK_FIELD(f, "task_q", "status", "queued");
    CHECK_FIELD(f, "task_run", "status", "in_progress");
    CHECK_FIELD(f, "task_cing", "status", "cancelling");
    CHECK_FIELD(f, "task_done", "status", "completed");
    CHECK_FIELD(f, "task_img", "status", "completed");
    CHECK_FIELD(f, "task_fail", "status", "failed");
    CHECK_FIELD(f, "task_canc", "status", "cancelled");
    CHECK_FIELD(f, "task_exp", "status", "expired");
}

/* Not terminal: refused, nothing changes; not this tenant's, or no such task: not found. */
static void test_refused(struct fx *f)
{
    setup(f);
    check_refused(f, "task_q", "t1", TXN_DELETE_CONFLICT, TASK_QUEUED);
    check_refused(f, "task_run", "t1", TXN_DELETE_CONFLICT, TASK_IN_PROGRESS);
    check_refused(f, "task_cing", "t1", TXN_DELETE_CONFLICT, TASK_CANCELLING);
    check_refused(f, "task_done", "t2", TXN_DELETE_NOTFOUND, TASK_QUEUED);
    check_refused(f, "task_none", "t1", TXN_DELETE_NOTFOUND, TASK_QUEUED);
}

/* The stats hash as sorted text. Caller frees. */
static char *stats_text(struct fx *f)
{
    redisReply *r = fx_cmd(f, "HGETALL %s", fx_key(f, KS_STATS, NULL));
    char *lines[256], *text;
    size_t n = 0, len = 1;

    for (size_t i = 0; r != NULL && i + 1 < r->elements && n < 256; i += 2) {
        size_t l = strlen(r->element[i]->str) + strlen(r->element[i + 1]->str) + 3;
        lines[n] = malloc(l);
        snprintf(lines[n], l, "%s=%s\n", r->element[i]->str, r->element[i + 1]->str);
        len += l;
        n++;
    }
    for (size_t i = 1; i < n; i++) {
        for (size_t k = i; k > 0 && strcmp(lines[k - 1], lines[k]) > 0; k--) {
            char *x = lines[k];
            lines[k] = lines[k - 1];
            lines[k - 1] = x;
        }
    }
    text = calloc(1, len);
    for (size_t i = 0; i < n; i++) {
        strcat(text, lines[i]);
        free(lines[i]);
    }
    freeReplyObject(r);
    return text;
}

/*
 * Each finished state deleted: gone at once from the task, its events and the tenant's list, the
 * member due now; the next TICK gives back the gauge and the bytes and names the folder to remove,
 * and the counters end as the retention's own sweep leaves them.
 */
static void test_deleted(struct fx *f)
{
    static const char *const done[] = {"task_done", "task_img", "task_fail", "task_canc",
                                       "task_exp"};
    struct txn_ticked t;
    char *swept_stats, *deleted_stats;
    redisReply *r;

    /* what the sweep at the end of the retention leaves, without any DELETE */
    setup(f);
    r = fx_tick(f, FX_NOW + 100 + FX_RET, "n");
    CHECK(txn_tick_parse(r, &t) == 0 && t.leader && t.swept == 5 && t.n_gone == 1);
    CHECK(t.recovered == 2); /* task_run and task_cing's leases ran out too */
    freeReplyObject(r);
    swept_stats = stats_text(f);

    setup(f);
    CHECK(fx_stat(f, "sb|t1") == 8 * 45 + 10 + 2); /* every input, two results */
    CHECK(fx_stat(f, "ab|t1") == 300);
    CHECK_OWNED(fx_str(f, "ZSCORE %s t1|task_done|completed|55|0", fx_key(f, KS_EXPIRY, NULL)),
                "1700003600100");
    for (int i = 0; i < 5; i++) {
        CHECK_DELETE(f, done[i], "t1", TXN_DELETE_DELETED, TASK_QUEUED);
        CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_TASK, done[i])) == 0);
        CHECK(fx_int(f, "ZSCORE %s %s", fx_key(f, KS_TENANT, "t1"), done[i]) == -999);
        /* gone: a second delete finds nothing */
        CHECK_DELETE(f, done[i], "t1", TXN_DELETE_NOTFOUND, TASK_QUEUED);
    }
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_EVENTS, "task_done")) == 0);
    /* the members are due now; the counters wait for the sweep */
    CHECK_OWNED(fx_str(f, "ZSCORE %s t1|task_done|completed|55|0", fx_key(f, KS_EXPIRY, NULL)),
                "0");
    CHECK_OWNED(fx_str(f, "ZSCORE %s t1|task_img|completed|47|300", fx_key(f, KS_EXPIRY, NULL)),
                "0");
    CHECK(fx_int(f, "ZCOUNT %s 0 0", fx_key(f, KS_EXPIRY, NULL)) == 5);
    CHECK(fx_stat(f, "ab|t1") == 300);
    CHECK(fx_stat(f, "status|completed") == 2);
    /* the tasks still running or queued are untouched */
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_TENANT, "t1")) == 3);
    CHECK_FIELD(f, "task_run", "status", "in_progress");

    r = fx_tick(f, FX_NOW + 200, "n");
    CHECK(txn_tick_parse(r, &t) == 0 && t.leader && t.swept == 5);
    CHECK(t.n_gone == 1);
    CHECK_STR(t.n_gone == 1 ? txn_ticked_gone(&t, 0) : "", "task_img");
    freeReplyObject(r);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_EXPIRY, NULL)) == 0);
    CHECK(fx_stat(f, "sb|t1") == 3 * 45); /* the three tasks left */
    CHECK(fx_stat(f, "ab|t1") == 0);
    CHECK(fx_stat(f, "status|completed") == 0);
    CHECK(fx_stat(f, "status|failed") == 0);
    CHECK(fx_stat(f, "status|cancelled") == 0);
    CHECK(fx_stat(f, "status|expired") == 0);
    /* the sweep at the end of the retention finds nothing of them (nothing is given back twice)
     * and recovers the leases as it did above: the counters end where they ended there */
    r = fx_tick(f, FX_NOW + 100 + FX_RET, "n");
    CHECK(txn_tick_parse(r, &t) == 0 && t.swept == 0 && t.recovered == 2);
    freeReplyObject(r);
    CHECK(fx_stat(f, "sb|t1") == 3 * 45);
    deleted_stats = stats_text(f);
    CHECK_STR(deleted_stats, swept_stats);
    free(swept_stats);
    free(deleted_stats);
}

/* A task the sweep already took (its hash not yet expired): deleted, its member not added back. */
static void test_after_sweep(struct fx *f)
{
    setup(f);
    freeReplyObject(fx_tick(f, FX_NOW + 100 + FX_RET, "n"));
    /* (the lease recovery cancelled task_cing: its member is the only one) */
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_EXPIRY, NULL)) == 1);
    CHECK(fx_stat(f, "sb|t1") == 3 * 45);
    CHECK_DELETE(f, "task_done", "t1", TXN_DELETE_DELETED, TASK_QUEUED);
    CHECK_OWNED(fx_str(f, "ZSCORE %s t1|task_done|completed|55|0", fx_key(f, KS_EXPIRY, NULL)),
                NULL);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_EXPIRY, NULL)) == 1);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_TASK, "task_done")) == 0);
    CHECK(fx_stat(f, "sb|t1") == 3 * 45);
}

/* A finished task its batch still holds (no retention yet): refused until BATCH release. */
static void test_batch_held(struct fx *f)
{
    struct txn_submit t = fx_task("task_b");
    struct txn_outcome o = fx_outcome("task_b", TXN_OUTCOME_COMPLETED);

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    freeReplyObject(fx_cmd(f, "HSET %s status in_progress tenant t1 expanded 1 expanded_all 0",
                           fx_key(f, KS_BATCH, "batch_x")));
    t.batch_id = "batch_x";
    t.custom_id = "line-1";
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    o.result = "{}";
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, &o, 1));
    CHECK_FIELD(f, "task_b", "status", "completed");
    CHECK_FIELD(f, "task_b", "expires", NULL);
    check_refused(f, "task_b", "t1", TXN_DELETE_CONFLICT, TASK_COMPLETED);
}

/* The reply's layout, and the parser's refusals. */
static void test_parse(void)
{
    redisReply word = {.type = REDIS_REPLY_STRING, .str = "conflict", .len = 8};
    redisReply status = {.type = REDIS_REPLY_STRING, .str = "nonsense", .len = 8};
    redisReply *elems[] = {&word, &status};
    redisReply r = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = elems};
    struct txn_deleted d;

    CHECK(txn_delete_parse(&r, &d) == -1); /* no such status */
    status.str = "in_progress";
    CHECK(txn_delete_parse(&r, &d) == 0 && d.result == TXN_DELETE_CONFLICT &&
          d.status == TASK_IN_PROGRESS);
    r.elements = 1;
    CHECK(txn_delete_parse(&r, &d) == -1); /* a conflict without its status */
    word.str = "deleted";
    CHECK(txn_delete_parse(&r, &d) == 0 && d.result == TXN_DELETE_DELETED);
    word.str = "what";
    CHECK(txn_delete_parse(&r, &d) == -1);
    CHECK(txn_delete_parse(NULL, &d) == -1);
}

int main(void)
{
    struct fx f;

    test_parse();
    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_refused(&f);
    test_deleted(&f);
    test_after_sweep(&f);
    test_batch_held(&f);
    fx_stop(&f);
    return check_done();
}
