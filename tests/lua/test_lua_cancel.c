/*
 * tests/lua/test_lua_cancel.c — CANCEL (core/lua/cancel.lua) against a real redis-server: a
 * queued task (also one waiting for its retry) cancelled at once, a running one cancelling (a
 * parked one made due), a second cancel answered ok, a finished task a conflict, another
 * tenant's or an unknown task not found.
 */
#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

/* CANCEL of id by tenant at now: its answer, and the status of the task it comes with (-1 none:
 * not found). The reply, parsed: caller frees. */
static redisReply *cancel(struct fx *f, const char *id, const char *tenant, long long now,
                          enum txn_cancel_result *result, int *status)
{
    redisReply *r = fx_cancel(f, id, tenant, now);
    struct txn_cancelled c;

    *result = TXN_CANCEL_NOTFOUND;
    *status = -1;
    if (!CHECK(txn_cancel_parse(r, &c) == 0)) {
        return r;
    }
    *result = c.result;
    if (c.hash != NULL) {
        /* the task as it is now comes with the answer */
        CHECK_STR(task_hash_get(c.hash, "status"), task_status_name(c.status));
        *status = (int)c.status;
    }
    return r;
}

/* CANCEL of id by tenant at now answers want, the task (if any) in status want_status. */
#define CHECK_CANCEL(f, id, tenant, now, want, want_status)                                        \
    do {                                                                                           \
        enum txn_cancel_result res_;                                                               \
        int status_;                                                                               \
        freeReplyObject(cancel((f), (id), (tenant), (now), &res_, &status_));                      \
        CHECK(res_ == (want));                                                                     \
        CHECK(status_ == (int)(want_status));                                                      \
    } while (0)

static void test_cancel(struct fx *f)
{
    static const char *const ids[] = {"task_r", "task_p", "task_run", "task_d"};
    struct txn_outcome retry = fx_outcome("task_r", TXN_OUTCOME_RETRY);
    struct txn_outcome park = fx_outcome("task_p", TXN_OUTCOME_PARK);
    struct txn_outcome done = fx_outcome("task_d", TXN_OUTCOME_COMPLETED);
    struct txn_submit q = fx_task("task_q");
    enum txn_cancel_result result;
    redisReply *r;
    int status;

    retry.error = "{}";
    retry.retry_at_ms = 1700000009000LL;
    retry.took_slot = true;
    retry.class = TXN_CLASS_FAIL;
    park.up_id = "u";
    park.poll_at_ms = 1700000009000LL;
    park.took_slot = true;
    park.class = TXN_CLASS_OK;
    done.result = "{}";
    done.took_slot = true;
    done.class = TXN_CLASS_OK;
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 4; i++) {
        struct txn_submit t = fx_task(ids[i]);
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, 4));
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &retry, 1));
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &park, 1));
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &done, 1));
    CHECK(fx_submit1(f, &q) == 0);

    /* queued: cancelled at once, out of the queue's counts */
    r = cancel(f, "task_q", "t1", FX_NOW + 100, &result, &status);
    CHECK(result == TXN_CANCEL_CANCELLED && status == TASK_CANCELLED);
    CHECK_STR(fx_elem(r, 0), "ok");
    CHECK(r != NULL && r->elements == 2 && r->element[1]->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_q", "status", "cancelled");
    CHECK_FIELD(f, "task_q", "completed", "1700000000100");
    CHECK_FIELD(f, "task_q", "inq", NULL);
    CHECK(fx_stat(f, "tq|t1") == 0); /* (task_r waits in the delayed set, not in a list) */
    CHECK(fx_stat(f, "depth|m|1") == 0);
    CHECK_OWNED(fx_str(f, "ZSCORE %s t1|task_q|cancelled|45|0", fx_key(f, KS_EXPIRY, NULL)),
                "1700003600100");
    /* waiting for its retry: cancelled, out of the delayed set */
    CHECK_CANCEL(f, "task_r", "t1", FX_NOW + 100, TXN_CANCEL_CANCELLED, TASK_CANCELLED);
    CHECK_FIELD(f, "task_r", "status", "cancelled");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_DELAYED, NULL)) == 0);
    /* running: cancelling; parked: cancelling and due now */
    CHECK_CANCEL(f, "task_run", "t1", FX_NOW + 100, TXN_CANCEL_CANCELLING, TASK_CANCELLING);
    CHECK_FIELD(f, "task_run", "status", "cancelling");
    CHECK_CANCEL(f, "task_p", "t1", FX_NOW + 100, TXN_CANCEL_CANCELLING, TASK_CANCELLING);
    CHECK_FIELD(f, "task_p", "status", "cancelling");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_p", fx_key(f, KS_POLLS, NULL)), "1700000000100");
    CHECK(fx_stat(f, "status|cancelling") == 2);
    CHECK(fx_stat(f, "status|cancelled") == 2);
    CHECK(fx_stat(f, "status|in_progress") == 0);
    /* again: ok, nothing moves */
    CHECK_CANCEL(f, "task_run", "t1", FX_NOW + 200, TXN_CANCEL_CANCELLING, TASK_CANCELLING);
    CHECK(fx_stat(f, "status|cancelling") == 2);
    /* finished: a conflict, with the task */
    r = cancel(f, "task_d", "t1", FX_NOW + 100, &result, &status);
    CHECK(result == TXN_CANCEL_CONFLICT && status == TASK_COMPLETED);
    CHECK_STR(fx_elem(r, 0), "conflict");
    CHECK(r != NULL && r->elements == 2 && r->element[1]->elements > 0);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_d", "status", "completed");
    /* another tenant's, or no such task */
    CHECK_CANCEL(f, "task_run", "t2", FX_NOW + 100, TXN_CANCEL_NOTFOUND, -1);
    CHECK_CANCEL(f, "task_none", "t1", FX_NOW + 100, TXN_CANCEL_NOTFOUND, -1);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_cancel(&f);
    fx_stop(&f);
    return check_done();
}
