/*
 * tests/lua/test_lua_submit.c — SUBMIT (core/lua/submit.lua) against a real redis-server: a task
 * written whole and queued, the wake message only for an empty list, a batched call equal to the
 * same calls one by one, idempotent replays and conflicts, a batch line submitted twice, and the
 * tenant quotas (queued tasks, stored bytes, artifact bytes).
 */
#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

static const char *answer(const redisReply *r, size_t i)
{
    if (r == NULL || r->type != REDIS_REPLY_ARRAY || i >= r->elements) {
        return NULL;
    }
    return fx_elem(r->element[i], 0);
}

static void test_single(struct fx *f)
{
    const char *input = "{\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}]}";
    struct fx_task t = {.id = "task_a",
                        .tenant = "acme",
                        .model = "gpt",
                        .prio = "1",
                        .input = input,
                        .metadata = "{\"k\":\"v\"}",
                        .reply_to = "{sl}:api:n1",
                        .deadline = "1700000100000",
                        .est = 42,
                        .max_attempts = 5};
    char sb[32];
    redisContext *sub;

    fx_flush(f);
    sub = fx_subscribe(f, FX_WAKE);
    CHECK(sub != NULL);
    CHECK(fx_submit1(f, &t) == 0);
    snprintf(sb, sizeof(sb), "%zu", strlen(input));
    CHECK_FIELD(f, "task_a", "status", "queued");
    CHECK_FIELD(f, "task_a", "tenant", "acme");
    CHECK_FIELD(f, "task_a", "kind", "chat");
    CHECK_FIELD(f, "task_a", "model", "gpt");
    CHECK_FIELD(f, "task_a", "priority", "1");
    CHECK_FIELD(f, "task_a", "created", "1700000000000");
    CHECK_FIELD(f, "task_a", "attempts", "0");
    CHECK_FIELD(f, "task_a", "max_attempts", "5");
    CHECK_FIELD(f, "task_a", "fence", "0");
    CHECK_FIELD(f, "task_a", "input", input);
    CHECK_FIELD(f, "task_a", "est", "42");
    CHECK_FIELD(f, "task_a", "inq", "1");
    CHECK_FIELD(f, "task_a", "sb", sb);
    CHECK_FIELD(f, "task_a", "metadata", "{\"k\":\"v\"}");
    CHECK_FIELD(f, "task_a", "reply_to", "{sl}:api:n1");
    CHECK_FIELD(f, "task_a", "deadline", "1700000100000");
    CHECK_FIELD(f, "task_a", "stream", NULL);
    CHECK_FIELD(f, "task_a", "batch", NULL);
    CHECK_OWNED(fx_str(f, "LINDEX " KEY_QUEUE "1:acme|gpt -1"), "task_a");
    CHECK_OWNED(fx_str(f, "LINDEX " KEY_RING "1 0"), "acme|gpt");
    CHECK(fx_int(f, "SISMEMBER " KEY_RINGSET "1 acme|gpt") == 1);
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_TENANT "acme task_a"), "1700000000000");
    CHECK_OWNED(fx_str(f, "ZSCORE " KEY_DEADLINES " task_a"), "1700000100000");
    CHECK(fx_stat(f, "status|queued") == 1);
    CHECK(fx_stat(f, "tq|acme") == 1);
    CHECK(fx_stat(f, "accepted") == 1);
    CHECK(fx_stat(f, "sb|acme") == (long long)strlen(input));
    CHECK(fx_stat(f, "depth|gpt|1") == 1);
    CHECK(fx_stat(f, "depthp|1") == 1);
    /* the list was empty: the workers are woken; a second task joins a list that is not */
    CHECK(fx_messages(f, sub, FX_WAKE, NULL, 0) == 1);
    t.id = "task_b";
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_messages(f, sub, FX_WAKE, NULL, 0) == 0);
    CHECK(fx_int(f, "LLEN " KEY_QUEUE "1:acme|gpt") == 2);
    CHECK_OWNED(fx_str(f, "LINDEX " KEY_QUEUE "1:acme|gpt -1"), "task_a");
    CHECK(fx_int(f, "LLEN " KEY_RING "1") == 1);
    redisFree(sub);
}

/* A mix that touches every shared write: two tenants, two aliases, two priorities, a deadline,
 * an idempotency key used twice, a quota reached within the call. */
static const struct fx_task mix[] = {
    {.id = "task_1", .tenant = "a", .model = "m1", .prio = "1"},
    {.id = "task_2", .tenant = "b", .model = "m1", .prio = "0", .deadline = "1700000009000"},
    {.id = "task_3", .tenant = "a", .model = "m2", .prio = "1", .idem = "k1", .body_hash = "aa"},
    {.id = "task_4", .tenant = "a", .model = "m2", .prio = "1", .idem = "k1", .body_hash = "aa"},
    {.id = "task_5", .tenant = "c", .model = "m1", .prio = "2", .max_queued = 1},
    {.id = "task_6", .tenant = "c", .model = "m1", .prio = "2", .max_queued = 1},
    {.id = "task_7", .tenant = "a", .model = "m1", .prio = "1", .stream = 1},
};
#define N_MIX (int)(sizeof(mix) / sizeof(mix[0]))

static void test_batched_equals_sequential(struct fx *f)
{
    redisReply *batched, *one[N_MIX];
    char *d_batched, *d_seq;

    fx_flush(f);
    batched = fx_submit(f, mix, N_MIX);
    CHECK(batched != NULL && batched->type == REDIS_REPLY_ARRAY && batched->elements == N_MIX);
    d_batched = fx_dump(f);
    fx_flush(f);
    for (int i = 0; i < N_MIX; i++) {
        one[i] = fx_submit(f, &mix[i], 1);
    }
    d_seq = fx_dump(f);
    CHECK_STR(d_batched, d_seq);
    for (int i = 0; i < N_MIX; i++) {
        CHECK_STR(answer(batched, (size_t)i), answer(one[i], 0));
        freeReplyObject(one[i]);
    }
    CHECK_STR(answer(batched, 0), "ok");
    CHECK_STR(answer(batched, 3), "dup");
    CHECK_STR(answer(batched, 5), "quota");
    CHECK_STR(answer(batched, 6), "ok");
    free(d_batched);
    free(d_seq);
    freeReplyObject(batched);
}

static void test_idempotency(struct fx *f)
{
    struct fx_task t = {.id = "task_x", .idem = "key-1", .body_hash = "beef"};
    redisReply *r;

    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_OWNED(fx_str(f, "GET " KEY_IDEM "t1:key-1"), "beef task_x");
    CHECK(fx_int(f, "PTTL " KEY_IDEM "t1:key-1") > 0);
    /* the same key and body again (a client's retry with a new id): the first task, nothing new */
    t.id = "task_y";
    r = fx_submit(f, &t, 1);
    CHECK_STR(answer(r, 0), "dup");
    CHECK_STR(fx_elem(r->element[0], 1), "task_x");
    CHECK(r->element[0]->element[2]->type == REDIS_REPLY_ARRAY &&
          r->element[0]->element[2]->elements > 0);
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS " KEY_TASK "task_y") == 0);
    CHECK(fx_stat(f, "accepted") == 1);
    CHECK(fx_stat(f, "tq|t1") == 1);
    /* the same key, another body: a conflict, nothing written */
    t.body_hash = "cafe";
    r = fx_submit(f, &t, 1);
    CHECK_STR(answer(r, 0), "conflict");
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS " KEY_TASK "task_y") == 0);
    CHECK_OWNED(fx_str(f, "GET " KEY_IDEM "t1:key-1"), "beef task_x");
    /* a key whose task is gone (swept) creates the task again */
    freeReplyObject(fx_cmd(f, "DEL " KEY_TASK "task_x"));
    t.body_hash = "beef";
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_OWNED(fx_str(f, "GET " KEY_IDEM "t1:key-1"), "beef task_y");
}

static void test_batch_line_twice(struct fx *f)
{
    struct fx_task t = {.id = "task_bl1", .batch = "batch_1", .custom_id = "line-1"};
    char *before;
    redisReply *r;

    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_FIELD(f, "task_bl1", "batch", "batch_1");
    CHECK_FIELD(f, "task_bl1", "custom_id", "line-1");
    before = fx_dump(f);
    r = fx_submit(f, &t, 1);
    CHECK_STR(answer(r, 0), "dup");
    CHECK_STR(fx_elem(r->element[0], 1), "task_bl1");
    freeReplyObject(r);
    CHECK_OWNED(fx_dump(f), before);
    free(before);
    /* without a batch the custom_id is not kept */
    t.id = "task_nb";
    t.batch = NULL;
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_FIELD(f, "task_nb", "custom_id", NULL);
}

static void test_quotas(struct fx *f)
{
    struct fx_task t = {.id = "task_q1", .tenant = "q", .max_queued = 2};
    redisReply *r;

    fx_flush(f);
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_q2";
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_q3";
    r = fx_submit(f, &t, 1);
    CHECK_STR(answer(r, 0), "quota");
    CHECK(fx_elem_int(r->element[0], 1) == 2);
    freeReplyObject(r);
    CHECK(fx_int(f, "EXISTS " KEY_TASK "task_q3") == 0);

    /* stored bytes: the input must fit in what is left */
    fx_flush(f);
    t = (struct fx_task){.id = "task_s1", .tenant = "s", .input = "0123456789", .max_stored = 15};
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_stat(f, "sb|s") == 10);
    t.id = "task_s2";
    r = fx_submit(f, &t, 1);
    CHECK_STR(answer(r, 0), "storage");
    CHECK(fx_elem_int(r->element[0], 1) == 10);
    freeReplyObject(r);
    t.input = "01234";
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_stat(f, "sb|s") == 15);

    /* artifact bytes: image and video tasks refused once the tenant's kept artifacts reach it */
    fx_flush(f);
    freeReplyObject(fx_cmd(f, "HSET " KEY_STATS " ab|art 500"));
    t = (struct fx_task){.id = "task_i1", .tenant = "art", .kind = "image", .max_artifacts = 500};
    r = fx_submit(f, &t, 1);
    CHECK_STR(answer(r, 0), "artifacts");
    CHECK(fx_elem_int(r->element[0], 1) == 500);
    freeReplyObject(r);
    t.kind = "chat";
    CHECK(fx_submit1(f, &t) == 0);
    t.id = "task_i2";
    t.kind = "image";
    t.max_artifacts = 501;
    CHECK(fx_submit1(f, &t) == 0);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_single(&f);
    test_batched_equals_sequential(&f);
    test_idempotency(&f);
    test_batch_line_twice(&f);
    test_quotas(&f);
    fx_stop(&f);
    return check_done();
}
