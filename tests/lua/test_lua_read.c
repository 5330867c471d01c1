/*
 * tests/lua/test_lua_read.c — the read scripts against a real redis-server: LIST
 * (core/lua/list.lua: newest first, pages and cursors, a status filter, the scan cap, a bad
 * cursor), GET (core/lua/get.lua: a queued task's place in line and eta, none for others) and
 * METRICS (core/lua/metrics.lua: counters, deployments, set sizes).
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

static redisReply *list(struct fx *f, const char *after, int limit, const char *status, int cap)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_arg(a, KEY_TENANT "t1");
    fx_arg(a, after);
    fx_argf(a, "%d", limit);
    fx_arg(a, status);
    fx_arg(a, KEY_TASK);
    fx_argf(a, "%d", cap);
    r = fx_script(f, SCRIPT_LIST, 1, a);
    fx_args_free(a);
    return r;
}

/* "has_more cursor: id id ..." of a LIST reply (static buffer). */
static const char *page(const redisReply *r)
{
    static char buf[512];
    size_t n;

    if (r == NULL || r->type != REDIS_REPLY_ARRAY || r->elements < 3) {
        return fx_elem(r, 0) ? fx_elem(r, 0) : "?";
    }
    n = (size_t)snprintf(buf, sizeof(buf), "%lld %s:", fx_elem_int(r, 1), fx_elem(r, 2));
    for (size_t i = 3; i + 1 < r->elements; i += 2) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, " %s", fx_elem(r, i));
    }
    return buf;
}

static void test_list(struct fx *f)
{
    static const char *const ids[] = {"task_1", "task_2", "task_3", "task_4", "task_5"};
    struct fx_outcome done = {
        .id = "task_2", .outcome = "completed", .result = "{}", .took_slot = "1", .class = "ok"};
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 5; i++) {
        struct fx_task t = {.id = ids[i], .now = FX_NOW + i};
        CHECK(fx_submit1(f, &t) == 0);
    }
    r = list(f, "", 2, "", 1000);
    CHECK_STR(page(r), "1 task_4: task_5 task_4");
    freeReplyObject(r);
    r = list(f, "task_4", 2, "", 1000);
    CHECK_STR(page(r), "1 task_2: task_3 task_2");
    freeReplyObject(r);
    r = list(f, "task_2", 2, "", 1000);
    CHECK_STR(page(r), "0 task_1: task_1");
    freeReplyObject(r);
    /* a filter */
    freeReplyObject(fx_claim(f, FX_NOW, 1)); /* task_1, the oldest */
    done.id = "task_1";
    freeReplyObject(fx_finish(f, FX_NOW + 10, 10, &done, 1));
    r = list(f, "", 10, "completed", 1000);
    CHECK_STR(page(r), "0 task_1: task_1");
    freeReplyObject(r);
    /* the scan cap: nothing found in 2 entries, but the cursor moves on */
    r = list(f, "", 10, "completed", 2);
    CHECK_STR(page(r), "1 task_4:");
    freeReplyObject(r);
    r = list(f, "task_none", 10, "", 1000);
    CHECK_STR(page(r), "badcursor");
    freeReplyObject(r);
}

static redisReply *get(struct fx *f, const char *id)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_argf(a, KEY_TASK "%s", id);
    fx_arg(a, id);
    r = fx_script(f, SCRIPT_GET, 1, a);
    fx_args_free(a);
    return r;
}

static void test_get(struct fx *f)
{
    static const struct fx_task tasks[] = {
        {.id = "task_a", .tenant = "t1"},
        {.id = "task_b", .tenant = "t1"},
        {.id = "task_c", .tenant = "t1"},
        {.id = "task_d", .tenant = "t2"},
        {.id = "task_i", .tenant = "t3", .prio = "0"},
        {.id = "task_j", .tenant = "t3", .prio = "0"},
    };
    redisReply *r;

    fx_flush(f);
    /* 60 rpm: one a second */
    fx_routing(f, "m",
               "{\"strategy\":\"cost\",\"breaker\":{\"open\":15000},\"deps\":[{\"rpm\":60,"
               "\"tpm\":0,\"maxc\":0,\"weight\":1,\"pin\":0,\"pout\":0}]}");
    freeReplyObject(fx_submit(f, tasks, 6));
    /* two ahead in its list, two tenants taking turns, two interactive tasks first */
    r = get(f, "task_c");
    CHECK(r != NULL && r->elements == 3 && r->element[0]->elements > 0);
    CHECK(fx_elem_int(r, 1) == 6);
    CHECK(fx_elem_int(r, 2) == 6);
    freeReplyObject(r);
    r = get(f, "task_a");
    CHECK(fx_elem_int(r, 1) == 2);
    freeReplyObject(r);
    /* not queued, or no such task */
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    r = get(f, "task_i");
    CHECK(fx_elem_int(r, 1) == -1 && fx_elem_int(r, 2) == -1);
    freeReplyObject(r);
    r = get(f, "task_none");
    CHECK(r != NULL && r->elements == 3 && r->element[0]->elements == 0);
    CHECK(fx_elem_int(r, 1) == -1);
    freeReplyObject(r);
}

static void test_metrics(struct fx *f)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;
    const redisReply *deps;
    struct fx_task t = {.id = "task_m"};

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    freeReplyObject(fx_cmd(f, "ZADD " KEY_DELAYED " 1 x 2 y"));
    fx_arg(a, "m");
    fx_arg(a, "2");
    r = fx_script(f, SCRIPT_METRICS, 0, a);
    fx_args_free(a);
    CHECK(r != NULL && r->elements == 5);
    CHECK(r->element[0]->type == REDIS_REPLY_ARRAY && r->element[0]->elements > 0);
    deps = r->element[1];
    CHECK(deps->elements == 2);
    /* alias, index, rt, tt, inf, br, pause, lat */
    CHECK_STR(fx_elem(deps->element[0], 0), "m");
    CHECK_STR(fx_elem(deps->element[0], 1), "0");
    CHECK_STR(fx_elem(deps->element[0], 4), "1");
    CHECK_STR(fx_elem(deps->element[0], 5), "closed");
    CHECK_STR(fx_elem(deps->element[1], 1), "1");
    CHECK_STR(fx_elem(deps->element[1], 2), "");
    CHECK_STR(fx_elem(deps->element[1], 4), "0");
    CHECK(fx_elem_int(r, 2) == 2);
    CHECK(fx_elem_int(r, 3) == 1);
    CHECK(fx_elem_int(r, 4) == 0);
    freeReplyObject(r);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_list(&f);
    test_get(&f);
    test_metrics(&f);
    fx_stop(&f);
    return check_done();
}
