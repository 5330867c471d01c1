/*
 * tests/lua/test_lua_extend.c — EXTEND (core/lua/extend.lua) against a real redis-server: the
 * leases of held attempts move, a cancelling task says so, a stale fence or a finished or unknown
 * task is lost and its lease untouched.
 */
#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

static redisReply *extend(struct fx *f, long long deadline, const char *const *pairs, int n)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, KEY_LEASES);
    fx_argf(a, "%lld", deadline);
    fx_arg(a, KEY_TASK);
    for (int i = 0; i < 2 * n; i++) {
        fx_arg(a, pairs[i]);
    }
    r = fx_script(f, SCRIPT_EXTEND, 1, a);
    fx_args_free(a);
    return r;
}

static void test_extend(struct fx *f)
{
    static const char *const ids[] = {"task_a", "task_b", "task_c", "task_d"};
    static const char *const pairs[] = {"task_a", "1",      "task_b", "2",         "task_c",
                                        "1",      "task_d", "1",      "task_none", "1"};
    struct fx_outcome done = {
        .id = "task_d", .outcome = "completed", .result = "{}", .took_slot = "1", .class = "ok"};
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 4; i++) {
        struct fx_task t = {.id = ids[i]};
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, 4));
    freeReplyObject(fx_cancel(f, "task_c", "t1", FX_NOW + 10));
    freeReplyObject(fx_finish(f, FX_NOW + 20, 10, &done, 1));
    r = extend(f, FX_NOW + 90000, pairs, 5);
    CHECK(r != NULL && r->elements == 5);
    CHECK_STR(fx_elem(r, 0), "ok");
    CHECK_STR(fx_elem(r, 1), "lost");       /* another attempt's fence */
    CHECK_STR(fx_elem(r, 2), "cancelling"); /* stop and finish it */
    CHECK_STR(fx_elem(r, 3), "lost");       /* finished */
    CHECK_STR(fx_elem(r, 4), "lost");       /* gone */
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_LEASES " task_a"), "1700000090000");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_LEASES " task_b"), "1700000060000");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_LEASES " task_c"), "1700000090000");
    CHECK(fx_int(f, "ZSCORE " KEY_LEASES " task_d") == -999);
    CHECK(fx_int(f, "ZSCORE " KEY_LEASES " task_none") == -999);
    /* nothing held: an empty answer */
    r = extend(f, FX_NOW + 90000, pairs, 0);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 0);
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
