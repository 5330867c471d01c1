/*
 * tests/lua/test_lua_extend.c — EXTEND (core/lua/extend.lua) against a real redis-server: the
 * leases of held attempts move, a cancelling task says so, a stale fence or a finished or unknown
 * task is lost and its lease untouched.
 */
#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

/* EXTEND of the n attempts held to deadline. Caller frees the reply. */
static redisReply *extend(struct fx *f, long long deadline, const struct txn_held *held, size_t n)
{
    CHECK(txn_extend_build(&f->args, &f->keys, deadline, held, n) == 0);
    return fx_run(f, SCRIPT_EXTEND, &f->args);
}

static void test_extend(struct fx *f)
{
    static const char *const ids[] = {"task_a", "task_b", "task_c", "task_d"};
    static const struct txn_held held[] = {
        {"task_a", 1}, {"task_b", 2}, {"task_c", 1}, {"task_d", 1}, {"task_none", 1}};
    struct txn_outcome done = fx_outcome("task_d", TXN_OUTCOME_COMPLETED);
    enum txn_lease leases[5];
    redisReply *r;

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
    freeReplyObject(fx_cancel(f, "task_c", "t1", FX_NOW + 10));
    freeReplyObject(fx_finish(f, FX_NOW + 20, 10, &done, 1));
    r = extend(f, FX_NOW + 90000, held, 5);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 5);
    CHECK(txn_extend_parse(r, leases, 5) == 0);
    CHECK(leases[0] == TXN_LEASE_HELD);
    CHECK(leases[1] == TXN_LEASE_LOST);       /* another attempt's fence */
    CHECK(leases[2] == TXN_LEASE_CANCELLING); /* stop and finish it */
    CHECK(leases[3] == TXN_LEASE_LOST);       /* finished */
    CHECK(leases[4] == TXN_LEASE_LOST);       /* gone */
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_a", fx_key(f, KS_LEASES, NULL)), "1700000090000");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_b", fx_key(f, KS_LEASES, NULL)), "1700000060000");
    CHECK_OWNED(fx_str(f, "ZSCORE %s task_c", fx_key(f, KS_LEASES, NULL)), "1700000090000");
    CHECK(fx_int(f, "ZSCORE %s task_d", fx_key(f, KS_LEASES, NULL)) == -999);
    CHECK(fx_int(f, "ZSCORE %s task_none", fx_key(f, KS_LEASES, NULL)) == -999);
    /* nothing held: an empty answer */
    r = extend(f, FX_NOW + 90000, held, 0);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 0);
    CHECK(txn_extend_parse(r, leases, 0) == 0);
    freeReplyObject(r);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_extend(&f);
    fx_stop(&f);
    return check_done();
}
