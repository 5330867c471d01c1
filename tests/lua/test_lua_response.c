/*
 * tests/lua/test_lua_response.c — response tasks (kind "response", the Responses API) in the
 * scripts, against a real redis-server: FINISH's detail (a completed response that stopped short
 * is kept as `rstatus` incomplete), the webhook events their transitions queue (OpenAI's names:
 * response.completed, response.incomplete, response.failed, response.cancelled, and
 * response.failed for an expired one; the task's filter applies as for any task), a chat task's
 * events unchanged, and a deleted response's events list.
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

#define RESPONSE_HOOK                                                                              \
    "{\"url\":\"https://hooks.example/r\",\"events\":[\"response.completed\","                     \
    "\"response.failed\",\"response.cancelled\",\"response.incomplete\"]}"
#define RESPONSE_INPUT "{\"model\":\"m\",\"input\":\"hi\"}"

/* A response task id with the fixture's defaults, a response webhook and deadline (0: none). */
static struct txn_submit response_task(const char *id, long long deadline_ms)
{
    struct txn_submit t = fx_task(id);

    t.kind = TASK_KIND_RESPONSE;
    t.input = RESPONSE_INPUT;
    t.webhook = RESPONSE_HOOK;
    t.deadline_ms = deadline_ms;
    return t;
}

/* The events of the deliveries queued, in queue order, comma-separated (static buffer). */
static const char *queued_events(struct fx *f)
{
    static char buf[512];
    redisReply *r = fx_cmd(f, "ZRANGE %s 0 -1", fx_key(f, KS_WEBHOOK_QUEUE, NULL));
    size_t n = 0;

    buf[0] = '\0';
    for (size_t i = 0; r != NULL && i < r->elements; i++) {
        char *ev = fx_str(f, "HGET %s event", fx_key(f, KS_DELIVERY, r->element[i]->str));
        char *task = fx_str(f, "HGET %s task", fx_key(f, KS_DELIVERY, r->element[i]->str));
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s:%s", i ? "," : "", task ? task : "?",
                              ev ? ev : "?");
        free(ev);
        free(task);
    }
    freeReplyObject(r);
    return buf;
}

/* FINISH's detail: kept on a completed task as rstatus; none, nothing written. */
static void test_detail(struct fx *f)
{
    struct txn_submit a = response_task("resp_full", 0), b = response_task("resp_short", 0);
    struct txn_outcome o[2];

    CHECK_STR(txn_detail_name(TXN_DETAIL_NONE), "");
    CHECK_STR(txn_detail_name(TXN_DETAIL_INCOMPLETE), "incomplete");
    CHECK(txn_detail_parse("incomplete") == TXN_DETAIL_INCOMPLETE);
    CHECK(txn_detail_parse("partial") == -1);
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &a) == 0);
    CHECK(fx_submit1(f, &b) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 2));
    CHECK_FIELD(f, "resp_full", "kind", "response");
    o[0] = fx_outcome("resp_full", TXN_OUTCOME_COMPLETED);
    o[0].result = "{\"object\":\"response\",\"status\":\"completed\"}";
    o[1] = fx_outcome("resp_short", TXN_OUTCOME_COMPLETED);
    o[1].result = "{\"object\":\"response\",\"status\":\"incomplete\"}";
    o[1].detail = TXN_DETAIL_INCOMPLETE;
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, o, 2));
    CHECK_FIELD(f, "resp_full", "status", "completed");
    CHECK_FIELD(f, "resp_full", "rstatus", NULL);
    CHECK_FIELD(f, "resp_short", "status", "completed");
    CHECK_FIELD(f, "resp_short", "rstatus", "incomplete");
    CHECK_FIELD(f, "resp_short", "result", "{\"object\":\"response\",\"status\":\"incomplete\"}");
    CHECK_STR(queued_events(f), "resp_full:response.completed,resp_short:response.incomplete");
}

/*
 * Every terminal transition of a response task names its event in OpenAI's words: FINISH
 * (completed, failed, a cancelling task cancelled), CANCEL of a queued task, TICK (an expired
 * deadline: failed; a lost lease on the last attempt: failed). CLAIM queues no task.started: the
 * filter names only response events.
 */
static void test_events(struct fx *f)
{
    static const char *const run[] = {"resp_ok", "resp_fail", "resp_cing", "resp_lost"};
    struct txn_outcome o[3];
    struct txn_submit t;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    for (int i = 0; i < 4; i++) {
        t = response_task(run[i], 0);
        if (i == 3) {
            t.max_attempts = 1;
        }
        CHECK(fx_submit1(f, &t) == 0);
    }
    freeReplyObject(fx_claim(f, FX_NOW, 4));
    CHECK_STR(queued_events(f), "");
    t = response_task("resp_q", 0);
    CHECK(fx_submit1(f, &t) == 0);
    t = response_task("resp_exp", FX_NOW + 50);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_cancel(f, "resp_cing", "t1", FX_NOW + 10));
    freeReplyObject(fx_cancel(f, "resp_q", "t1", FX_NOW + 20));
    CHECK_STR(queued_events(f), "resp_q:response.cancelled");
    freeReplyObject(fx_tick(f, FX_NOW + 50, "n"));
    CHECK_FIELD(f, "resp_exp", "status", "expired");
    o[0] = fx_outcome("resp_ok", TXN_OUTCOME_COMPLETED);
    o[0].result = "{}";
    o[1] = fx_outcome("resp_fail", TXN_OUTCOME_FAILED);
    o[1].error = "{\"message\":\"no\"}";
    o[2] = fx_outcome("resp_cing", TXN_OUTCOME_COMPLETED);
    o[2].result = "{}";
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, o, 3));
    CHECK_FIELD(f, "resp_cing", "status", "cancelled");
    freeReplyObject(fx_tick(f, FX_NOW + FX_LEASE + 1, "n"));
    CHECK_FIELD(f, "resp_lost", "status", "failed");
    /* (the queue is in due order; FINISH's three, due at once, by their delivery ids) */
    CHECK_STR(queued_events(f), "resp_q:response.cancelled,resp_exp:response.failed,"
                                "resp_cing:response.cancelled,resp_fail:response.failed,"
                                "resp_ok:response.completed,resp_lost:response.failed");
    /* the delivery ids are the task's, as for any task: msg_<random part>_<n> */
    CHECK_OWNED(fx_str(f, "HGET %s event", fx_key(f, KS_DELIVERY, "msg_ok_1")),
                "response.completed");
}

/*
 * The task's filter applies: a response task that asked only for response.completed gets no
 * delivery when it fails; a chat task's events keep their names (a detail on it changes nothing).
 */
static void test_filter(struct fx *f)
{
    struct txn_submit a = response_task("resp_a", 0), c = fx_task("task_c");
    struct txn_outcome o[2];

    a.webhook = "{\"url\":\"https://hooks.example/r\",\"events\":[\"response.completed\"]}";
    c.webhook = "{\"url\":\"https://hooks.example/c\",\"events\":[\"task.completed\","
                "\"response.completed\",\"response.incomplete\"]}";
    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &a) == 0);
    CHECK(fx_submit1(f, &c) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 2));
    o[0] = fx_outcome("resp_a", TXN_OUTCOME_FAILED);
    o[0].error = "{\"message\":\"no\"}";
    o[1] = fx_outcome("task_c", TXN_OUTCOME_COMPLETED);
    o[1].result = "{}";
    o[1].detail = TXN_DETAIL_INCOMPLETE;
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, o, 2));
    CHECK_STR(queued_events(f), "task_c:task.completed");
}

/* A deleted response task's events list goes with it. */
static void test_delete_events(struct fx *f)
{
    struct txn_submit t = response_task("resp_del", 0);
    struct txn_outcome o = fx_outcome("resp_del", TXN_OUTCOME_COMPLETED);
    struct txn_delete p = {.id = "resp_del", .tenant = "t1"};
    struct txn_deleted d;
    redisReply *r;

    fx_flush(f);
    fx_routing(f, "m", FX_ROUTING_OPEN);
    CHECK(fx_submit1(f, &t) == 0);
    freeReplyObject(fx_claim(f, FX_NOW, 1));
    freeReplyObject(fx_cmd(f, "RPUSH %s {\"sequence_number\":0} {\"sequence_number\":1}",
                           fx_key(f, KS_EVENTS, "resp_del")));
    o.result = "{}";
    freeReplyObject(fx_finish(f, FX_NOW + 100, 10, &o, 1));
    CHECK(fx_int(f, "LLEN %s", fx_key(f, KS_EVENTS, "resp_del")) == 2);
    CHECK(txn_delete_build(&f->args, &f->keys, &p) == 0);
    r = fx_run(f, SCRIPT_DELETE, &f->args);
    CHECK(txn_delete_parse(r, &d) == 0 && d.result == TXN_DELETE_DELETED);
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_EVENTS, "resp_del")) == 0);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_TASK, "resp_del")) == 0);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_detail(&f);
    test_events(&f);
    test_filter(&f);
    test_delete_events(&f);
    fx_stop(&f);
    return check_done();
}
