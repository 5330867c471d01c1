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

/* Op o on batch id (NULL: none) of tenant acme at now, without the op's own arguments. */
static struct txn_batch op(enum txn_batch_op o, const char *id, long long now)
{
    return (struct txn_batch){.op = o, .id = id, .tenant = "acme", .now_ms = now};
}

/* The BATCH call b. Caller frees the reply. */
static redisReply *batch(struct fx *f, const struct txn_batch *b)
{
    CHECK(txn_batch_build(&f->args, &f->keys, b) == 0);
    return fx_run(f, SCRIPT_BATCH, &f->args);
}

/* The BATCH call b's answer, parsed (TXN_BATCH_ANSWER_COUNT: a reply that is none of the op's
 * answers); the batch's status after it into status (NULL: not wanted), for started and expire. */
static enum txn_batch_answer op1(struct fx *f, const struct txn_batch *b,
                                 enum txn_batch_status *status)
{
    redisReply *r = batch(f, b);
    struct txn_batch_reply out;
    enum txn_batch_answer answer = TXN_BATCH_ANSWER_COUNT;

    if (CHECK(txn_batch_parse(b->op, r, &out) == 0)) {
        answer = out.answer;
        if (status != NULL) {
            *status = out.status;
        }
    }
    freeReplyObject(r);
    return answer;
}

static char *bfield(struct fx *f, const char *id, const char *field)
{
    return fx_str(f, "HGET %s %s", fx_key(f, KS_BATCH, id), field);
}

static void test_lifecycle(struct fx *f)
{
    static const char *const fields[] = {"endpoint", "/v1/chat/completions", "webhook",
                                         BATCH_HOOK, "expires_at",           "1700086400"};
    static const char *const tasks[] = {"task_b1", "task_b2"};
    struct txn_batch b = op(TXN_BATCH_CREATE, "batch_1", FX_NOW);
    struct txn_submit t = fx_task(NULL);
    struct txn_outcome ok = fx_outcome("task_b1", TXN_OUTCOME_COMPLETED);
    struct txn_outcome bad = fx_outcome("task_b2", TXN_OUTCOME_FAILED);
    struct txn_batch_reply got;
    enum txn_batch_status status = TXN_BATCH_STATUS_COUNT;
    redisReply *r;

    t.tenant = "acme";
    t.batch_id = "batch_1";
    t.custom_id = "line";
    ok.result = "{}";
    ok.took_slot = true;
    ok.class = TXN_CLASS_OK;
    bad.error = "{}";
    bad.took_slot = true;
    bad.class = TXN_CLASS_CLIENT;
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    b.u.create.fields = fields;
    b.u.create.n_fields = 3;
    CHECK(op1(f, &b, NULL) == TXN_BATCH_OK);
    CHECK_OWNED(bfield(f, "batch_1", "status"), "validating");
    CHECK_OWNED(bfield(f, "batch_1", "created_at"), "1700000000");
    CHECK_OWNED(bfield(f, "batch_1", "endpoint"), "/v1/chat/completions");
    CHECK_OWNED(fx_str(f, "ZSCORE %s batch_1", fx_key(f, KS_BATCH_WORK, NULL)), "0");
    CHECK_OWNED(fx_str(f, "ZSCORE %s batch_1", fx_key(f, KS_BATCHES_TENANT, "acme")),
                "1700000000000");
    b = op(TXN_BATCH_GET, "batch_1", FX_NOW);
    b.tenant = "evil";
    CHECK(op1(f, &b, NULL) == TXN_BATCH_NOTFOUND);
    b.tenant = "acme";
    r = batch(f, &b);
    CHECK(txn_batch_parse(TXN_BATCH_GET, r, &got) == 0 && got.answer == TXN_BATCH_OK);
    CHECK_STR(got.hash ? task_hash_get(got.hash, "status") : NULL, "validating");
    freeReplyObject(r);

    /* the runner claims it; nobody else can while the lease holds */
    b = op(TXN_BATCH_CLAIM, NULL, FX_NOW);
    b.tenant = NULL;
    b.u.claim.lease_ms = 30000;
    r = batch(f, &b);
    CHECK(txn_batch_parse(TXN_BATCH_CLAIM, r, &got) == 0 && got.answer == TXN_BATCH_OK);
    CHECK_STR(got.id, "batch_1");
    CHECK_STR(got.hash ? task_hash_get(got.hash, "tenant") : NULL, "acme");
    freeReplyObject(r);
    CHECK_OWNED(bfield(f, "batch_1", "leased"), "1700000030000");
    b.now_ms = FX_NOW + 1;
    r = batch(f, &b);
    CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 0);
    CHECK(txn_batch_parse(TXN_BATCH_CLAIM, r, &got) == 0 && got.answer == TXN_BATCH_NONE);
    freeReplyObject(r);
    b = op(TXN_BATCH_STARTED, "batch_1", FX_NOW);
    b.u.started.total = 2;
    CHECK(op1(f, &b, &status) == TXN_BATCH_OK);
    CHECK(status == TXN_BATCH_IN_PROGRESS);
    CHECK_OWNED(bfield(f, "batch_1", "leased"), NULL);
    CHECK_OWNED(bfield(f, "batch_1", "total"), "2");

    /* its two lines become tasks; expansion over: due when the window ends */
    t.id = "task_b1";
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_b2";
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 2));
    b = op(TXN_BATCH_PROGRESS, "batch_1", FX_NOW);
    b.u.progress.expanded = 2;
    b.u.progress.offset = 180;
    b.u.progress.all = true;
    b.u.progress.due_ms = 1700000010000LL;
    CHECK(op1(f, &b, NULL) == TXN_BATCH_OK);
    CHECK_OWNED(bfield(f, "batch_1", "expanded_all"), "1");
    CHECK_OWNED(fx_str(f, "ZSCORE %s batch_1", fx_key(f, KS_BATCH_WORK, NULL)), "1700086400000");
    /* the first outcome is counted, the task kept (no retention yet) */
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, &ok, 1));
    CHECK_OWNED(bfield(f, "batch_1", "completed"), "1");
    CHECK_OWNED(bfield(f, "batch_1", "status"), "in_progress");
    CHECK_FIELD(f, "task_b1", "status", "completed");
    CHECK_FIELD(f, "task_b1", "expires", NULL);
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_TASK, "task_b1")) == -1);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_EXPIRY, NULL)) == 0);
    /* the last one: finalizing, due now */
    freeReplyObject(fx_finish(f, FX_NOW + 2000, 10, &bad, 1));
    CHECK_OWNED(bfield(f, "batch_1", "failed"), "1");
    CHECK_OWNED(bfield(f, "batch_1", "status"), "finalizing");
    CHECK_OWNED(bfield(f, "batch_1", "finalizing_at"), "1700000002");
    CHECK_OWNED(fx_str(f, "ZSCORE %s batch_1", fx_key(f, KS_BATCH_WORK, NULL)), "0");

    /* the runner writes the output: completed, its webhook queued with the body given */
    b = op(TXN_BATCH_DONE, "batch_1", FX_NOW + 3000);
    b.u.done.status = TXN_BATCH_COMPLETED;
    b.u.done.output_file = "file_out";
    b.u.done.error_file = "file_err";
    b.u.done.webhook_body = "{\"id\":\"b\"}";
    CHECK(op1(f, &b, NULL) == TXN_BATCH_OK);
    CHECK_OWNED(bfield(f, "batch_1", "status"), "completed");
    CHECK_OWNED(bfield(f, "batch_1", "completed_at"), "1700000003");
    CHECK_OWNED(bfield(f, "batch_1", "output_file_id"), "file_out");
    CHECK_OWNED(bfield(f, "batch_1", "error_file_id"), "file_err");
    CHECK_OWNED(bfield(f, "batch_1", "errors"), NULL);
    CHECK(fx_int(f, "ZSCORE %s batch_1", fx_key(f, KS_BATCH_WORK, NULL)) == -999);
    CHECK_OWNED(fx_str(f, "HGET %s body", fx_key(f, KS_DELIVERY, "msg_1_1")), "{\"id\":\"b\"}");
    CHECK_OWNED(fx_str(f, "HGET %s event", fx_key(f, KS_DELIVERY, "msg_1_1")), "batch.completed");
    CHECK_OWNED(fx_str(f, "ZSCORE %s msg_1_1", fx_key(f, KS_WEBHOOK_QUEUE, NULL)), "1700000003000");
    /* a second done (a runner that lost its lease) changes nothing */
    b.now_ms = FX_NOW + 4000;
    CHECK(op1(f, &b, NULL) == TXN_BATCH_STALE);
    CHECK_OWNED(bfield(f, "batch_1", "completed_at"), "1700000003");

    /* the tasks' retention starts */
    b = op(TXN_BATCH_RELEASE, "batch_1", FX_NOW + 5000);
    b.u.release.ret_ms = 3600000;
    b.u.release.task_ids = tasks;
    b.u.release.n = 2;
    CHECK(op1(f, &b, NULL) == TXN_BATCH_OK);
    CHECK_FIELD(f, "task_b1", "expires", "1700003605000");
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_TASK, "task_b1")) > 0);
    CHECK_OWNED(fx_str(f, "ZSCORE %s acme|task_b1|completed|47|0", fx_key(f, KS_EXPIRY, NULL)),
                "1700003605000");
    CHECK_OWNED(fx_str(f, "ZSCORE %s acme|task_b2|failed|45|0", fx_key(f, KS_EXPIRY, NULL)),
                "1700003605000");
}

/*
 * The reply to an op the script does not know: the layer builds only the ops it names
 * (txn_batch_build refuses another), so the call is a GET built by it with its op word swapped.
 */
static redisReply *unknown_op(struct fx *f, const char *id, long long now)
{
    struct txn_batch b = op(TXN_BATCH_GET, id, now);
    const char *get = txn_batch_op_name(TXN_BATCH_GET);
    int swapped = 0;

    CHECK(txn_batch_build(&f->args, &f->keys, &b) == 0);
    for (int i = f->args.nkeys; i < f->args.n; i++) {
        if (strcmp(f->args.v[i], get) == 0) {
            f->args.v[i] = "bogus";
            f->args.len[i] = strlen("bogus");
            swapped++;
        }
    }
    CHECK(swapped == 1);
    return fx_run(f, SCRIPT_BATCH, &f->args);
}

static void test_cancel_list_unknown(struct fx *f)
{
    static const char *const ids[] = {"batch_1", "batch_2", "batch_3"};
    struct txn_batch b;
    struct txn_batch_reply got;
    redisReply *r;

    fx_flush(f);
    for (int i = 0; i < 3; i++) {
        b = op(TXN_BATCH_CREATE, ids[i], FX_NOW + i);
        CHECK(op1(f, &b, NULL) == TXN_BATCH_OK);
    }
    /* newest first, two a page */
    b = op(TXN_BATCH_LIST, NULL, FX_NOW);
    b.u.list.limit = 2;
    r = batch(f, &b);
    CHECK(r != NULL && r->elements == 4);
    CHECK(txn_batch_parse(TXN_BATCH_LIST, r, &got) == 0 && got.answer == TXN_BATCH_OK);
    CHECK(got.has_more);
    CHECK(got.n_hashes == 2);
    CHECK_STR(got.n_hashes == 2 ? task_hash_get(got.hashes[0], "created_at") : NULL, "1700000000");
    freeReplyObject(r);
    b.u.list.after = "batch_2";
    r = batch(f, &b);
    CHECK(r != NULL && r->elements == 3);
    CHECK(txn_batch_parse(TXN_BATCH_LIST, r, &got) == 0 && got.answer == TXN_BATCH_OK);
    CHECK(!got.has_more);
    CHECK(got.n_hashes == 1);
    freeReplyObject(r);

    b = op(TXN_BATCH_CANCEL, "batch_1", FX_NOW);
    r = batch(f, &b);
    CHECK(txn_batch_parse(TXN_BATCH_CANCEL, r, &got) == 0 && got.answer == TXN_BATCH_OK);
    CHECK_STR(got.hash ? task_hash_get(got.hash, "status") : NULL, "cancelling");
    freeReplyObject(r);
    CHECK_OWNED(bfield(f, "batch_1", "status"), "cancelling");
    CHECK_OWNED(bfield(f, "batch_1", "end"), "cancelled");
    CHECK(op1(f, &b, NULL) == TXN_BATCH_OK);
    b.tenant = "evil";
    CHECK(op1(f, &b, NULL) == TXN_BATCH_NOTFOUND);
    /* expanding when cancelled: the lines not submitted are not part of it */
    b = op(TXN_BATCH_PROGRESS, "batch_1", FX_NOW);
    b.u.progress.expanded = 3;
    b.u.progress.offset = 90;
    b.u.progress.all = false;
    b.u.progress.due_ms = 1700000010000LL;
    CHECK(op1(f, &b, NULL) == TXN_BATCH_STOP);
    CHECK_OWNED(bfield(f, "batch_1", "total"), "3");
    CHECK_OWNED(bfield(f, "batch_1", "expanded_all"), "1");
    r = unknown_op(f, "batch_1", FX_NOW);
    CHECK(r != NULL && r->type == REDIS_REPLY_ERROR);
    freeReplyObject(r);
    b = op(TXN_BATCH_OP_COUNT, "batch_1", FX_NOW);
    CHECK(txn_batch_build(&f->args, &f->keys, &b) == CORE_EINVAL);
    b = op(TXN_BATCH_STARTED, "batch_9", FX_NOW);
    b.u.started.total = 1;
    CHECK(op1(f, &b, NULL) == TXN_BATCH_GONE);
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
