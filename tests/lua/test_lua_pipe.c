/*
 * tests/lua/test_lua_pipe.c — PIPE (core/lua/pipe.lua) and the pipeline count in finalize
 * (core/lua/prelude.lua) against a real redis-server: create, get and cancel scoped to the tenant;
 * list newest first, forgetting a pipeline whose hash has expired; claim leases the due pipelines
 * once; a pipeline's task submitted twice exists once (dup); a task that ends counts on its
 * pipeline (ok / bad, the first error kept, usage and cost summed) and makes it due — or, while a
 * runner holds it, dirty, so the unlease makes it due at once; advance and unlease refuse a lease
 * that is not the caller's; the end is written once, with its webhook delivery, and starts the
 * retention.
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"
#include "core/txn_pipe.h"

#define PID "pipe_aaaaaaaaaaaaaaaaaaaaaaaaaa"
#define PID2 "pipe_bbbbbbbbbbbbbbbbbbbbbbbbbb"

/* One PIPE call, parsed into *out; the reply: caller frees. */
static redisReply *pipe_call(struct fx *f, const struct txn_pipe *b, struct txn_pipe_reply *out)
{
    redisReply *r;

    CHECK(txn_pipe_build(&f->args, &f->keys, b) == 0);
    r = fx_run(f, SCRIPT_PIPE, &f->args);
    CHECK(r != NULL);
    CHECK(txn_pipe_parse(b->op, r, out) == 0);
    return r;
}

static void create(struct fx *f, const char *id, const char *tenant, long long now,
                   const char *webhook)
{
    const char *fields[] = {"id", id, "spec", "[]", "priority", "normal", "webhook", webhook};
    struct txn_pipe b = {.op = TXN_PIPE_CREATE, .id = id, .tenant = tenant, .now_ms = now};
    struct txn_pipe_reply out;

    b.u.create.fields = fields;
    b.u.create.n_fields = webhook ? 4 : 3;
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_OK);
}

static long long due_score(struct fx *f, const char *id)
{
    char *s = fx_str(f, "ZSCORE %s %s", fx_key(f, KS_PIPE_WORK, NULL), id);
    long long v = s ? atoll(s) : -1;

    free(s);
    return v;
}

static char *pfield(struct fx *f, const char *id, const char *field)
{
    return fx_str(f, "HGET %s %s", fx_key(f, KS_PIPE, id), field);
}

/* Claims at now (lease 1000 ms); the lease value of the first claimed pipeline into lease. */
static size_t claim(struct fx *f, long long now, char *lease, size_t size)
{
    struct txn_pipe b = {.op = TXN_PIPE_CLAIM, .now_ms = now};
    struct txn_pipe_reply out;
    redisReply *r;
    size_t n;

    b.u.claim.lease_ms = 1000;
    b.u.claim.max = 16;
    r = pipe_call(f, &b, &out);
    n = out.n;
    if (n > 0 && lease) {
        const char *id;
        const redisReply *hash;
        txn_pipe_claimed_at(&out, 0, &id, &hash);
        lease[0] = '\0';
        for (size_t i = 0; i + 1 < hash->elements; i += 2) {
            if (strcmp(hash->element[i]->str, "leased") == 0) {
                snprintf(lease, size, "%s", hash->element[i + 1]->str);
            }
        }
    }
    freeReplyObject(r);
    return n;
}

static void test_create_get_list_cancel(struct fx *f)
{
    struct txn_pipe b = {.op = TXN_PIPE_GET, .id = PID, .tenant = "t1", .now_ms = FX_NOW};
    struct txn_pipe_reply out;
    redisReply *r;

    fx_flush(f);
    create(f, PID, "t1", FX_NOW, NULL);
    create(f, PID2, "t1", FX_NOW + 5, NULL);
    CHECK(due_score(f, PID) == FX_NOW);
    CHECK_OWNED(pfield(f, PID, "status"), "queued");
    r = pipe_call(f, &b, &out);
    CHECK(out.answer == TXN_PIPE_OK && out.hash && out.hash->elements >= 8);
    freeReplyObject(r);
    b.tenant = "t2";
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_NOTFOUND);

    /* list: newest first; a pipeline whose hash expired is dropped from the index */
    b = (struct txn_pipe){.op = TXN_PIPE_LIST, .tenant = "t1", .now_ms = FX_NOW};
    b.u.list.limit = 10;
    r = pipe_call(f, &b, &out);
    CHECK(out.n == 2 && !out.has_more);
    freeReplyObject(r);
    b.u.list.limit = 1;
    r = pipe_call(f, &b, &out);
    CHECK(out.n == 1 && out.has_more);
    freeReplyObject(r);
    freeReplyObject(fx_cmd(f, "DEL %s", fx_key(f, KS_PIPE, PID2)));
    b.u.list.limit = 10;
    r = pipe_call(f, &b, &out);
    CHECK(out.n == 1 && !out.has_more);
    freeReplyObject(r);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_PIPES_TENANT, "t1")) == 1);

    /* cancel: another tenant's is not found; a live one is cancelling and due now */
    freeReplyObject(
        fx_cmd(f, "ZADD %s %lld %s", fx_key(f, KS_PIPE_WORK, NULL), FX_NOW + 999999, PID));
    b = (struct txn_pipe){.op = TXN_PIPE_CANCEL, .id = PID, .tenant = "t2", .now_ms = FX_NOW};
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_NOTFOUND);
    b.tenant = "t1";
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_OK);
    CHECK_OWNED(pfield(f, PID, "status"), "cancelling");
    CHECK(due_score(f, PID) == FX_NOW);
    /* an ended one: conflict */
    freeReplyObject(fx_cmd(f, "HSET %s status completed", fx_key(f, KS_PIPE, PID)));
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_CONFLICT);
}

static void test_claim_lease(struct fx *f)
{
    char lease[32];
    struct txn_pipe b = {.op = TXN_PIPE_UNLEASE, .id = PID, .now_ms = FX_NOW + 10};
    struct txn_pipe_reply out;

    fx_flush(f);
    create(f, PID, "t1", FX_NOW, NULL);
    CHECK(claim(f, FX_NOW, lease, sizeof(lease)) == 1);
    CHECK_STR(lease, "1700000001000");
    CHECK(due_score(f, PID) == FX_NOW + 1000);
    CHECK(claim(f, FX_NOW + 10, NULL, 0) == 0); /* held */
    /* another lease is refused */
    b.u.unlease.lease = "123";
    b.u.unlease.due_ms = FX_NOW + 5000;
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_STALE);
    CHECK(due_score(f, PID) == FX_NOW + 1000);
    /* the holder's: due when it says (nothing ended meanwhile) */
    b.u.unlease.lease = lease;
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_OK);
    CHECK(due_score(f, PID) == FX_NOW + 5000);
    CHECK_OWNED(pfield(f, PID, "leased"), NULL);
    /* a lease that ran out: claimed again, with a new lease */
    CHECK(claim(f, FX_NOW + 5000, lease, sizeof(lease)) == 1);
    CHECK_STR(lease, "1700000006000");
    /* a pipeline whose hash is gone leaves the work set at the next claim */
    freeReplyObject(fx_cmd(f, "DEL %s", fx_key(f, KS_PIPE, PID)));
    CHECK(claim(f, FX_NOW + 7000, NULL, 0) == 0);
    CHECK(due_score(f, PID) == -1);
}

/* A pipeline task of step s: chat on alias m, pipe PID. */
static struct txn_submit pipe_task(const char *id, const char *step)
{
    struct txn_submit t = fx_task(id);
    t.pipeline_id = PID;
    t.step = step;
    return t;
}

static void test_submit_dup_and_counts(struct fx *f)
{
    struct txn_submit t = pipe_task("task_p1", "a");
    struct txn_submitted res;
    struct txn_outcome o;
    char lease[32];
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    create(f, PID, "t1", FX_NOW, NULL);
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_FIELD(f, "task_p1", "pipe", PID);
    CHECK_FIELD(f, "task_p1", "pstep", "a");
    /* the same start again (a runner that died before it wrote the step running): dup */
    r = fx_submit(f, &t, 1);
    CHECK(txn_submit_parse(r, 1, &res) == 0 && res.result == TXN_SUBMIT_DUP);
    freeReplyObject(r);
    CHECK(fx_stat(f, "accepted") == 1);

    /* the pipeline is held by a runner while the task completes: dirty, not due */
    CHECK(claim(f, FX_NOW, lease, sizeof(lease)) == 1);
    freeReplyObject(fx_claim(f, FX_NOW + 1, 1));
    o = fx_outcome("task_p1", TXN_OUTCOME_COMPLETED);
    o.result = "{\"choices\":[]}";
    o.usage = "{\"prompt_tokens\":3,\"completion_tokens\":5,\"prompt_tokens_details\":{\"x\":1}}";
    o.cost = "{\"amount\":0.25,\"currency\":\"USD\"}";
    freeReplyObject(fx_finish(f, FX_NOW + 2, 10, &o, 1));
    CHECK_OWNED(pfield(f, PID, "ok:a"), "1");
    CHECK_OWNED(pfield(f, PID, "u:prompt_tokens"), "3");
    CHECK_OWNED(pfield(f, PID, "u:completion_tokens"), "5");
    CHECK_OWNED(pfield(f, PID, "u:prompt_tokens_details"), NULL);
    CHECK_OWNED(pfield(f, PID, "cost"), "0.25");
    CHECK_OWNED(pfield(f, PID, "dirty"), "1");
    CHECK(due_score(f, PID) == FX_NOW + 1000);
    {
        struct txn_pipe b = {.op = TXN_PIPE_UNLEASE, .id = PID, .now_ms = FX_NOW + 3};
        struct txn_pipe_reply out;
        b.u.unlease.lease = lease;
        b.u.unlease.due_ms = FX_NOW + 30000;
        freeReplyObject(pipe_call(f, &b, &out));
        CHECK(out.answer == TXN_PIPE_OK);
    }
    CHECK(due_score(f, PID) == FX_NOW + 3); /* dirty: at once */

    /* two tasks of step b fail: bad counts both, the first error is kept */
    struct txn_submit t2 = pipe_task("task_p2", "b"), t3 = pipe_task("task_p3", "b");
    t2.max_attempts = t3.max_attempts = 1;
    CHECK(fx_submit1(f, &t2) == 0);
    CHECK(fx_submit1(f, &t3) == 0);
    freeReplyObject(
        fx_cmd(f, "ZADD %s %lld %s", fx_key(f, KS_PIPE_WORK, NULL), FX_NOW + 999999, PID));
    freeReplyObject(fx_claim(f, FX_NOW + 10, 2));
    struct txn_outcome fo[2] = {fx_outcome("task_p2", TXN_OUTCOME_FAILED),
                                fx_outcome("task_p3", TXN_OUTCOME_FAILED)};
    fo[0].error = "{\"message\":\"first\"}";
    fo[1].error = "{\"message\":\"second\"}";
    fo[1].cost = "{\"amount\":0.5,\"currency\":\"USD\"}";
    freeReplyObject(fx_finish(f, FX_NOW + 11, 10, fo, 2));
    CHECK_OWNED(pfield(f, PID, "bad:b"), "2");
    CHECK_OWNED(pfield(f, PID, "err:b"), "{\"message\":\"first\"}");
    CHECK_OWNED(pfield(f, PID, "cost"), "0.75");
    CHECK(due_score(f, PID) == FX_NOW + 11); /* not held: due at once */
    /* due earlier already: it keeps its place in line */
    freeReplyObject(fx_cmd(f, "ZADD %s %lld %s", fx_key(f, KS_PIPE_WORK, NULL), FX_NOW + 5, PID));
    {
        struct txn_submit t6 = pipe_task("task_p6", "b");
        CHECK(fx_submit1(f, &t6) == 0);
        freeReplyObject(fx_cancel(f, "task_p6", "t1", FX_NOW + 12));
    }
    CHECK(due_score(f, PID) == FX_NOW + 5);

    /* a queued task cancelled counts as bad with an error of its own */
    struct txn_submit t4 = pipe_task("task_p4", "c");
    CHECK(fx_submit1(f, &t4) == 0);
    freeReplyObject(fx_cancel(f, "task_p4", "t1", FX_NOW + 20));
    CHECK_OWNED(pfield(f, PID, "bad:c"), "1");
    {
        char *e = pfield(f, PID, "err:c");
        CHECK(e != NULL && strstr(e, "task_cancelled") != NULL);
        free(e);
    }
    /* a task of a pipeline that is gone counts nowhere */
    freeReplyObject(fx_cmd(f, "DEL %s", fx_key(f, KS_PIPE, PID)));
    struct txn_submit t5 = pipe_task("task_p5", "c");
    CHECK(fx_submit1(f, &t5) == 0);
    freeReplyObject(fx_cancel(f, "task_p5", "t1", FX_NOW + 21));
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_PIPE, PID)) == 0);
}

static void test_tasks_read(struct fx *f)
{
    struct txn_submit t = pipe_task("task_r1", "a");
    const char *ids[] = {"task_r1", "task_missing"};
    struct txn_pipe b = {.op = TXN_PIPE_TASKS, .now_ms = FX_NOW};
    struct txn_pipe_reply out;
    struct txn_pipe_task x;
    redisReply *r;

    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    b.u.tasks.task_ids = ids;
    b.u.tasks.n = 2;
    r = pipe_call(f, &b, &out);
    CHECK(out.n == 2);
    txn_pipe_task_at(&out, 0, &x);
    CHECK_STR(x.status, "queued");
    CHECK_STR(x.kind, "chat");
    CHECK(x.result == NULL && x.artifacts == NULL && x.error == NULL);
    txn_pipe_task_at(&out, 1, &x);
    CHECK(x.status == NULL && x.kind == NULL);
    freeReplyObject(r);
}

static void test_advance_end(struct fx *f)
{
    char lease[32];
    const char *writes[] = {"st:a", "completed", "t1:a", "123"};
    struct txn_pipe b = {.op = TXN_PIPE_ADVANCE, .id = PID, .now_ms = FX_NOW + 50};
    struct txn_pipe_reply out;

    fx_flush(f);
    create(f, PID, "t1", FX_NOW,
           "{\"url\":\"https://example.com/h\",\"events\":[\"pipeline.completed\"]}");
    CHECK(claim(f, FX_NOW, lease, sizeof(lease)) == 1);
    b.u.advance.fields = writes;
    b.u.advance.n_fields = 2;
    b.u.advance.status = "running";
    b.u.advance.lease = "1";
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_STALE);
    CHECK_OWNED(pfield(f, PID, "st:a"), NULL);
    b.u.advance.lease = lease;
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_OK);
    CHECK_OWNED(pfield(f, PID, "st:a"), "completed");
    CHECK_OWNED(pfield(f, PID, "status"), "running");
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_PIPE, PID)) == -1);
    /* the end: status, completed, retention, out of the work set, the webhook delivery */
    b.u.advance.status = "completed";
    b.u.advance.ret_ms = FX_RET;
    b.u.advance.webhook_body = "{\"type\":\"pipeline.completed\"}";
    b.u.advance.event = "pipeline.completed";
    b.u.advance.n_fields = 0;
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_OK);
    CHECK_OWNED(pfield(f, PID, "status"), "completed");
    CHECK_OWNED(pfield(f, PID, "completed"), "1700000000050");
    CHECK_OWNED(pfield(f, PID, "leased"), NULL);
    CHECK(due_score(f, PID) == -1);
    CHECK(fx_int(f, "PTTL %s", fx_key(f, KS_PIPE, PID)) > FX_RET - 60000);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == 1);
    {
        redisReply *r = fx_cmd(f, "ZRANGE %s 0 0", fx_key(f, KS_WEBHOOK_QUEUE, NULL));
        const char *id = fx_elem(r, 0);
        char key[128];
        CHECK(id != NULL);
        snprintf(key, sizeof(key), "%s", fx_key(f, KS_DELIVERY, id));
        CHECK_OWNED(fx_str(f, "HGET %s body", key), "{\"type\":\"pipeline.completed\"}");
        CHECK_OWNED(fx_str(f, "HGET %s task", key), PID);
        CHECK_OWNED(fx_str(f, "HGET %s event", key), "pipeline.completed");
        freeReplyObject(r);
    }
    /* written once: a second end is stale, and so is an unlease */
    b.u.advance.status = "failed";
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_STALE);
    CHECK_OWNED(pfield(f, PID, "status"), "completed");
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == 1);
    /* an event the webhook did not ask for queues nothing */
    fx_flush(f);
    create(f, PID, "t1", FX_NOW,
           "{\"url\":\"https://example.com/h\",\"events\":[\"pipeline.failed\"]}");
    CHECK(claim(f, FX_NOW, lease, sizeof(lease)) == 1);
    b.u.advance.lease = lease;
    b.u.advance.status = "completed";
    freeReplyObject(pipe_call(f, &b, &out));
    CHECK(out.answer == TXN_PIPE_OK);
    CHECK(fx_int(f, "ZCARD %s", fx_key(f, KS_WEBHOOK_QUEUE, NULL)) == 0);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_create_get_list_cancel(&f);
    test_claim_lease(&f);
    test_submit_dup_and_counts(&f);
    test_tasks_read(&f);
    test_advance_end(&f);
    fx_stop(&f);
    return check_done();
}
