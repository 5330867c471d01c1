/*
 * tests/lua/test_lua_cancel.c — CANCEL (core/lua/cancel.lua) against a real redis-server: a
 * queued task (also one waiting for its retry) cancelled at once, a running one cancelling (a
 * parked one made due), a second cancel answered ok, a finished task a conflict, another
 * tenant's or an unknown task not found.
 */
#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

static const char *status_of(const redisReply *r)
{
    return fx_elem(r, 0);
}

static void test_cancel(struct fx *f)
{
    struct fx_outcome retry = {.id = "task_r",
                               .outcome = "retry",
                               .error = "{}",
                               .retry_at = "1700000009000",
                               .took_slot = "1",
                               .class = "fail"};
    struct fx_outcome park = {.id = "task_p",
                              .outcome = "park",
                              .up_id = "u",
                              .poll_at = "1700000009000",
                              .took_slot = "1",
                              .class = "ok"};
    struct fx_outcome done = {
        .id = "task_d", .outcome = "completed", .result = "{}", .took_slot = "1", .class = "ok"};
    static const char *const ids[] = {"task_r", "task_p", "task_run", "task_d"};
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 4; i++) {
        struct fx_task t = {.id = ids[i]};
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, 4));
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &retry, 1));
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &park, 1));
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &done, 1));
    {
        struct fx_task t = {.id = "task_q"};
        CHECK(fx_submit1(f, &t) == 0);
    }

    /* queued: cancelled at once, out of the queue's counts */
    r = fx_cancel(f, "task_q", "t1", FX_NOW + 100);
    CHECK_STR(status_of(r), "ok");
    CHECK(r != NULL && r->elements == 2 && r->element[1]->type == REDIS_REPLY_ARRAY);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_q", "status", "cancelled");
    CHECK_FIELD(f, "task_q", "completed", "1700000000100");
    CHECK_FIELD(f, "task_q", "inq", NULL);
    CHECK(fx_stat(f, "tq|t1") == 0); /* (task_r waits in the delayed set, not in a list) */
    CHECK(fx_stat(f, "depth|m|1") == 0);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_EXPIRY " t1|task_q|cancelled|45|0"), "1700003600100");
    /* waiting for its retry: cancelled, out of the delayed set */
    r = fx_cancel(f, "task_r", "t1", FX_NOW + 100);
    CHECK_STR(status_of(r), "ok");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_r", "status", "cancelled");
    CHECK(fx_int(f, "ZCARD " KEY_DELAYED) == 0);
    /* running: cancelling; parked: cancelling and due now */
    r = fx_cancel(f, "task_run", "t1", FX_NOW + 100);
    CHECK_STR(status_of(r), "ok");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_run", "status", "cancelling");
    r = fx_cancel(f, "task_p", "t1", FX_NOW + 100);
    CHECK_STR(status_of(r), "ok");
    freeReplyObject(r);
    CHECK_FIELD(f, "task_p", "status", "cancelling");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_POLLS " task_p"), "1700000000100");
    CHECK(fx_stat(f, "status|cancelling") == 2);
    CHECK(fx_stat(f, "status|cancelled") == 2);
    CHECK(fx_stat(f, "status|in_progress") == 0);
    /* again: ok, nothing moves */
    r = fx_cancel(f, "task_run", "t1", FX_NOW + 200);
    CHECK_STR(status_of(r), "ok");
    freeReplyObject(r);
    CHECK(fx_stat(f, "status|cancelling") == 2);
    /* finished: a conflict, with the task */
    r = fx_cancel(f, "task_d", "t1", FX_NOW + 100);
    CHECK_STR(status_of(r), "conflict");
    CHECK(r != NULL && r->elements == 2 && r->element[1]->elements > 0);
    freeReplyObject(r);
    CHECK_FIELD(f, "task_d", "status", "completed");
    /* another tenant's, or no such task */
    r = fx_cancel(f, "task_run", "t2", FX_NOW + 100);
    CHECK_STR(status_of(r), "notfound");
    freeReplyObject(r);
    r = fx_cancel(f, "task_none", "t1", FX_NOW + 100);
    CHECK_STR(status_of(r), "notfound");
    freeReplyObject(r);
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
