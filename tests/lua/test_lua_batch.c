/*
 * tests/lua/test_lua_batch.c — BATCH (core/lua/batch.lua) against a real redis-server, with the
 * batch accounting of finalize (core/lua/prelude.lua): create, get and list per tenant, the
 * runner's claim and lease, started, progress, the tasks' outcomes counted until the batch is
 * finalizing and due, done (with its webhook delivery), release of the tasks' retention, a stale
 * done, cancel and an unknown op.
 */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

#define BATCH_HOOK "{\"url\":\"https://h/b\",\"events\":[\"batch.completed\"]}"

/* One BATCH op on batch id of tenant at now with the op's arguments (NULL-terminated). */
static redisReply *batch(struct fx *f, const char *id, const char *tenant, const char *op,
                         long long now, const char *const *extra)
{
    struct fx_args *a = fx_args_new();
    redisReply *r;

    fx_argf(a, KEY_BATCH "%s", id);
    fx_arg(a, KEY_BATCH_WORK);
    fx_argf(a, KEY_BATCHES_TENANT "%s", tenant);
    fx_arg(a, id);
    fx_arg(a, op);
    fx_argf(a, "%lld", now);
    for (int i = 0; extra && extra[i]; i++) {
        fx_arg(a, extra[i]);
    }
    r = fx_script(f, SCRIPT_BATCH, 3, a);
    fx_args_free(a);
    return r;
}

/* The op's first answer (static buffer). */
static const char *op1(struct fx *f, const char *id, const char *tenant, const char *op,
                       long long now, const char *const *extra)
{
    static char answer[64];
    redisReply *r = batch(f, id, tenant, op, now, extra);

    snprintf(answer, sizeof(answer), "%s",
             r && r->type == REDIS_REPLY_ERROR ? "error"
             : fx_elem(r, 0)                   ? fx_elem(r, 0)
                                               : "");
    freeReplyObject(r);
    return answer;
}

static char *bfield(struct fx *f, const char *id, const char *field)
{
    return fx_str(f, "HGET " KEY_BATCH "%s %s", id, field);
}

static void test_lifecycle(struct fx *f)
{
    static const char *const create[] = {"acme",       "endpoint", "/v1/chat/completions",
                                         "webhook",    BATCH_HOOK, "expires_at",
                                         "1700086400", NULL};
    static const char *const lease[] = {"30000", NULL};
    static const char *const total[] = {"2", NULL};
    static const char *const progress[] = {"2", "180", "1", "1700000010000", NULL};
    static const char *const done[] = {"completed",       "file_out", "file_err", "{\"id\":\"b\"}",
                                       "batch.completed", "",         NULL};
    static const char *const release[] = {"3600000", "task_b1", "task_b2", NULL};
    static const char *const tenant[] = {"acme", NULL};
    static const char *const other[] = {"evil", NULL};
    struct fx_task t = {.tenant = "acme", .batch = "batch_1", .custom_id = "line"};
    struct fx_outcome ok = {
        .id = "task_b1", .outcome = "completed", .result = "{}", .took_slot = "1", .class = "ok"};
    struct fx_outcome bad = {
        .id = "task_b2", .outcome = "failed", .error = "{}", .took_slot = "1", .class = "client"};
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK_STR(op1(f, "batch_1", "acme", "create", FX_NOW, create), "ok");
    CHECK_OWNED(bfield(f, "batch_1", "status"), "validating");
    CHECK_OWNED(bfield(f, "batch_1", "created_at"), "1700000000");
    CHECK_OWNED(bfield(f, "batch_1", "endpoint"), "/v1/chat/completions");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_BATCH_WORK " batch_1"), "0");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_BATCHES_TENANT "acme batch_1"), "1700000000000");
    CHECK_STR(op1(f, "batch_1", "evil", "get", FX_NOW, other), "notfound");
    CHECK_STR(op1(f, "batch_1", "acme", "get", FX_NOW, tenant), "ok");

    /* the runner claims it; nobody else can while the lease holds */
    r = batch(f, "", "acme", "claim", FX_NOW, lease);
    CHECK_STR(fx_elem(r, 0), "batch_1");
    freeReplyObject(r);
    CHECK_OWNED(bfield(f, "batch_1", "leased"), "1700000030000");
    r = batch(f, "", "acme", "claim", FX_NOW + 1, lease);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 0);
    freeReplyObject(r);
    CHECK_STR(op1(f, "batch_1", "acme", "started", FX_NOW, total), "in_progress");
    CHECK_OWNED(bfield(f, "batch_1", "leased"), NULL);
    CHECK_OWNED(bfield(f, "batch_1", "total"), "2");

    /* its two lines become tasks; expansion over: due when the window ends */
    t.id = "task_b1";
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_b2";
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 2));
    CHECK_STR(op1(f, "batch_1", "acme", "progress", FX_NOW, progress), "ok");
    CHECK_OWNED(bfield(f, "batch_1", "expanded_all"), "1");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_BATCH_WORK " batch_1"), "1700086400000");

    /* the first outcome is counted, the task kept (no retention yet) */
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, &ok, 1));
    CHECK_OWNED(bfield(f, "batch_1", "completed"), "1");
    CHECK_OWNED(bfield(f, "batch_1", "status"), "in_progress");
    CHECK_FIELD(f, "task_b1", "status", "completed");
    CHECK_FIELD(f, "task_b1", "expires", NULL);
    CHECK(fx_int(f, "PTTL " KEY_TASK "task_b1") == -1);
    CHECK(fx_int(f, "ZCARD " KEY_EXPIRY) == 0);
    /* the last one: finalizing, due now */
    freeReplyObject(fx_finish(f, FX_NOW + 2000, 10, &bad, 1));
    CHECK_OWNED(bfield(f, "batch_1", "failed"), "1");
    CHECK_OWNED(bfield(f, "batch_1", "status"), "finalizing");
    CHECK_OWNED(bfield(f, "batch_1", "finalizing_at"), "1700000002");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_BATCH_WORK " batch_1"), "0");

    /* the runner writes the output: completed, its webhook queued with the body given */
    CHECK_STR(op1(f, "batch_1", "acme", "done", FX_NOW + 3000, done), "ok");
    CHECK_OWNED(bfield(f, "batch_1", "status"), "completed");
    CHECK_OWNED(bfield(f, "batch_1", "completed_at"), "1700000003");
    CHECK_OWNED(bfield(f, "batch_1", "output_file_id"), "file_out");
    CHECK_OWNED(bfield(f, "batch_1", "error_file_id"), "file_err");
    CHECK_OWNED(bfield(f, "batch_1", "errors"), NULL);
    CHECK(fx_int(f, "ZSCORE " KEY_BATCH_WORK " batch_1") == -999);
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_1_1 body"), "{\"id\":\"b\"}");
    CHECK_OWNED(fx_str(f, "HGET " KEY_DELIVERY "msg_1_1 event"), "batch.completed");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_WEBHOOK_QUEUE " msg_1_1"), "1700000003000");
    /* a second done (a runner that lost its lease) changes nothing */
    CHECK_STR(op1(f, "batch_1", "acme", "done", FX_NOW + 4000, done), "stale");
    CHECK_OWNED(bfield(f, "batch_1", "completed_at"), "1700000003");

    /* the tasks' retention starts */
    CHECK_STR(op1(f, "batch_1", "acme", "release", FX_NOW + 5000, release), "ok");
    CHECK_FIELD(f, "task_b1", "expires", "1700003605000");
    CHECK(fx_int(f, "PTTL " KEY_TASK "task_b1") > 0);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_EXPIRY " acme|task_b1|completed|47|0"), "1700003605000");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_EXPIRY " acme|task_b2|failed|45|0"), "1700003605000");
}

static void test_cancel_list_unknown(struct fx *f)
{
    static const char *const acme[] = {"acme", NULL};
    static const char *const evil[] = {"evil", NULL};
    static const char *const page1[] = {"acme", "", "2", NULL};
    static const char *const page2[] = {"acme", "batch_2", "2", NULL};
    static const char *const progress[] = {"3", "90", "0", "1700000010000", NULL};
    redisReply *r;

    fx_flush(f);
    CHECK_STR(op1(f, "batch_1", "acme", "create", FX_NOW, acme), "ok");
    CHECK_STR(op1(f, "batch_2", "acme", "create", FX_NOW + 1, acme), "ok");
    CHECK_STR(op1(f, "batch_3", "acme", "create", FX_NOW + 2, acme), "ok");
    /* newest first, two a page */
    r = batch(f, "", "acme", "list", FX_NOW, page1);
    CHECK(r != NULL && r->elements == 4);
    CHECK(fx_elem_int(r, 1) == 1);
    freeReplyObject(r);
    r = batch(f, "", "acme", "list", FX_NOW, page2);
    CHECK(r != NULL && r->elements == 3);
    CHECK(fx_elem_int(r, 1) == 0);
    freeReplyObject(r);

    CHECK_STR(op1(f, "batch_1", "acme", "cancel", FX_NOW, acme), "ok");
    CHECK_OWNED(bfield(f, "batch_1", "status"), "cancelling");
    CHECK_OWNED(bfield(f, "batch_1", "end"), "cancelled");
    CHECK_STR(op1(f, "batch_1", "acme", "cancel", FX_NOW, acme), "ok");
    CHECK_STR(op1(f, "batch_1", "evil", "cancel", FX_NOW, evil), "notfound");
    /* expanding when cancelled: the lines not submitted are not part of it */
    CHECK_STR(op1(f, "batch_1", "acme", "progress", FX_NOW, progress), "stop");
    CHECK_OWNED(bfield(f, "batch_1", "total"), "3");
    CHECK_OWNED(bfield(f, "batch_1", "expanded_all"), "1");
    CHECK_STR(op1(f, "batch_1", "acme", "bogus", FX_NOW, NULL), "error");
    CHECK_STR(op1(f, "batch_9", "acme", "started", FX_NOW, acme), "gone");
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_lifecycle(&f);
    test_cancel_list_unknown(&f);
    fx_stop(&f);
    return check_done();
}
