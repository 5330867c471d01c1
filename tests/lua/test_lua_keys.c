/*
 * tests/lua/test_lua_keys.c — API_KEYS (core/lua/keys.lua) against a real redis-server: create
 * writes the record (the secret's hash, never a secret) and the sha index and bumps the version;
 * a second key with the same sha or id is refused and writes nothing; list is newest first,
 * filtered by tenant, and shows a revoked key with its time; revoke is once (the first time stays,
 * the version moves once) and an unknown id is not_found; load answers "same" for the current
 * version and every record otherwise; a submitted task records its key (SUBMIT's key id).
 */
#include <stdio.h>
#include <string.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"
#include "core/txn_keys.h"

#define SHA_A "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define SHA_B "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
#define SHA_C "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
#define ID_A "key_aaaaaaaaaaaaaaaaaaaaaaaaaa"
#define ID_B "key_bbbbbbbbbbbbbbbbbbbbbbbbbb"
#define ID_C "key_cccccccccccccccccccccccccc"

/* One API_KEYS call, parsed into *out (cleaned up by the caller); the reply: caller frees. */
static redisReply *keys_call(struct fx *f, const struct txn_keys *k, struct txn_keys_reply *out)
{
    redisReply *r;

    CHECK(txn_keys_build(&f->args, &f->keys, k) == 0);
    r = fx_run(f, SCRIPT_API_KEYS, &f->args);
    CHECK(r != NULL);
    CHECK(txn_keys_parse(r, out) == 0);
    return r;
}

static enum txn_keys_status create(struct fx *f, const char *id, const char *tenant,
                                   const char *sha, long long created, const char *models)
{
    struct txn_keys k = {.op = TXN_KEYS_CREATE,
                         .id = id,
                         .tenant = tenant,
                         .name = "n",
                         .sha = sha,
                         .models = models,
                         .created_s = created};
    struct txn_keys_reply out;
    redisReply *r = keys_call(f, &k, &out);
    enum txn_keys_status st = out.status;

    if (st == TXN_KEYS_OK) {
        CHECK(out.n == 1 && strcmp(out.recs[0].id, id) == 0);
        CHECK(strcmp(out.recs[0].sha, sha) == 0 && out.recs[0].revoked_s == 0);
    }
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    return st;
}

static long long version(struct fx *f)
{
    char *v = fx_str(f, "GET %s", fx_key(f, KS_API_KEY_VERSION, NULL));
    long long n = v ? atoll(v) : 0;

    free(v);
    return n;
}

static void test_create(struct fx *f)
{
    struct txn_keys k = {.op = TXN_KEYS_CREATE,
                         .id = ID_A,
                         .tenant = "t1",
                         .name = "ci",
                         .sha = SHA_A,
                         .models = "[\"m1\"]",
                         .budget = "{\"policy\":\"pace\"}",
                         .created_s = 1000,
                         .expires_s = 5000};
    struct txn_keys_reply out;
    redisReply *r;

    fx_flush(f);
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.version == 1 && out.n == 1);
    CHECK(strcmp(out.recs[0].tenant, "t1") == 0 && strcmp(out.recs[0].name, "ci") == 0);
    CHECK(strcmp(out.recs[0].models, "[\"m1\"]") == 0);
    CHECK(strcmp(out.recs[0].budget, "{\"policy\":\"pace\"}") == 0);
    CHECK(out.recs[0].created_s == 1000 && out.recs[0].expires_s == 5000);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    CHECK_OWNED(fx_str(f, "HGET %s %s", fx_key(f, KS_API_KEY_SHA, NULL), SHA_A), ID_A);
    CHECK_OWNED(fx_str(f, "HGET %s sha", fx_key(f, KS_API_KEY, ID_A)), SHA_A);
    CHECK_OWNED(fx_str(f, "HGET %s budget", fx_key(f, KS_API_KEY, ID_A)), "{\"policy\":\"pace\"}");
    CHECK(fx_int(f, "HLEN %s", fx_key(f, KS_API_KEY, ID_A)) == 8); /* no revoked yet */
    CHECK(version(f) == 1);
    /* the same secret's hash again (another id): refused, nothing written, no new version */
    CHECK(create(f, ID_B, "t2", SHA_A, 1001, NULL) == TXN_KEYS_EXISTS);
    CHECK(fx_int(f, "EXISTS %s", fx_key(f, KS_API_KEY, ID_B)) == 0);
    CHECK(fx_int(f, "HLEN %s", fx_key(f, KS_API_KEY_SHA, NULL)) == 1);
    CHECK(version(f) == 1);
    /* optional fields absent: not written */
    CHECK(create(f, ID_B, "t2", SHA_B, 1001, NULL) == TXN_KEYS_OK);
    CHECK(fx_int(f, "HEXISTS %s models", fx_key(f, KS_API_KEY, ID_B)) == 0);
    CHECK(fx_int(f, "HEXISTS %s expires", fx_key(f, KS_API_KEY, ID_B)) == 0);
    CHECK(version(f) == 2);
    /* an id that exists already: refused, and its new sha is not indexed */
    CHECK(create(f, ID_A, "t1", SHA_C, 1002, NULL) == TXN_KEYS_EXISTS);
    CHECK(fx_int(f, "HEXISTS %s %s", fx_key(f, KS_API_KEY_SHA, NULL), SHA_C) == 0);
    CHECK(version(f) == 2);
    /* a create with no id or a short sha is never built */
    k.sha = "abc";
    CHECK(txn_keys_build(&f->args, &f->keys, &k) == CORE_EINVAL);
    k.sha = SHA_C;
    k.id = NULL;
    CHECK(txn_keys_build(&f->args, &f->keys, &k) == CORE_EINVAL);
}

static void test_list_revoke_load(struct fx *f)
{
    struct txn_keys k = {.op = TXN_KEYS_LIST};
    struct txn_keys_reply out;
    redisReply *r;

    fx_flush(f);
    CHECK(create(f, ID_A, "t1", SHA_A, 1000, NULL) == TXN_KEYS_OK);
    CHECK(create(f, ID_B, "t2", SHA_B, 1002, NULL) == TXN_KEYS_OK);
    CHECK(create(f, ID_C, "t1", SHA_C, 1001, "[\"m\"]") == TXN_KEYS_OK);
    /* every tenant, newest first */
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.n == 3 && out.version == 3);
    CHECK(out.n == 3 && strcmp(out.recs[0].id, ID_B) == 0 && strcmp(out.recs[1].id, ID_C) == 0 &&
          strcmp(out.recs[2].id, ID_A) == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    /* one tenant */
    k.tenant = "t1";
    r = keys_call(f, &k, &out);
    CHECK(out.n == 2 && strcmp(out.recs[0].id, ID_C) == 0 && strcmp(out.recs[1].id, ID_A) == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k.tenant = "nobody";
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.n == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    /* pages: two, then the one after the second ("more" while keys follow) */
    k = (struct txn_keys){.op = TXN_KEYS_LIST, .limit = 2};
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_MORE && out.n == 2);
    CHECK(out.n == 2 && strcmp(out.recs[1].id, ID_C) == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k.after = ID_C;
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.n == 1 && strcmp(out.recs[0].id, ID_A) == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k.after = ID_A; /* the last: an empty page */
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.n == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k = (struct txn_keys){.op = TXN_KEYS_LIST, .tenant = "t1", .limit = 2};
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.n == 2); /* exactly the tenant's two: nothing more */
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);

    /* revoke: once; the first time stays and the version moves once */
    k = (struct txn_keys){.op = TXN_KEYS_REVOKE, .id = ID_A, .now_s = 2000};
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.n == 1 && out.version == 4);
    CHECK(out.n == 1 && out.recs[0].revoked_s == 2000);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k.now_s = 3000;
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.version == 4);
    CHECK(out.n == 1 && out.recs[0].revoked_s == 2000);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k.id = "key_zzzzzzzzzzzzzzzzzzzzzzzzzz";
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_NOT_FOUND && out.n == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    CHECK(version(f) == 4);
    /* the list shows the revoked key with its time */
    k = (struct txn_keys){.op = TXN_KEYS_LIST, .tenant = "t1"};
    r = keys_call(f, &k, &out);
    CHECK(out.n == 2 && out.recs[1].revoked_s == 2000 && out.recs[0].revoked_s == 0);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);

    /* load: everything for an old (or no) version, nothing for the current one */
    k = (struct txn_keys){.op = TXN_KEYS_LOAD, .version = -1};
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.version == 4 && out.n == 3);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k.version = 3;
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_OK && out.n == 3);
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
    k.version = 4;
    r = keys_call(f, &k, &out);
    CHECK(out.status == TXN_KEYS_SAME && out.version == 4 && out.n == 0);
    CHECK(r->elements == 2); /* one GET's worth: no record is read */
    txn_keys_reply_cleanup(&out);
    freeReplyObject(r);
}

/* A reply of the wrong shape is refused by the parser. */
static void test_parse_shapes(void)
{
    redisReply s1 = {.type = REDIS_REPLY_STRING, .str = "ok", .len = 2};
    redisReply s2 = {.type = REDIS_REPLY_STRING, .str = "1", .len = 1};
    redisReply bad = {.type = REDIS_REPLY_STRING, .str = "what", .len = 4};
    redisReply *two[] = {&s1, &s2, &s2};
    redisReply arr = {.type = REDIS_REPLY_ARRAY, .elements = 2, .element = two};
    struct txn_keys_reply out;

    CHECK(txn_keys_parse(&arr, &out) == 0 && out.status == TXN_KEYS_OK && out.version == 1);
    arr.elements = 3; /* not a whole record */
    CHECK(txn_keys_parse(&arr, &out) < 0);
    two[0] = &bad;
    arr.elements = 2;
    CHECK(txn_keys_parse(&arr, &out) < 0);
    CHECK(txn_keys_parse(NULL, &out) < 0);
}

/* SUBMIT records the key a task came with as its `key`; none: no field. */
static void test_submit_key(struct fx *f)
{
    struct txn_submit t = fx_task("task_keyaaaaaaaaaaaaaaaaaaaaaa");

    fx_flush(f);
    t.key_id = ID_A;
    CHECK(fx_submit1(f, &t) == 0);
    CHECK_FIELD(f, "task_keyaaaaaaaaaaaaaaaaaaaaaa", "key", ID_A);
    t = fx_task("task_keybbbbbbbbbbbbbbbbbbbbbb");
    CHECK(fx_submit1(f, &t) == 0);
    CHECK(fx_int(f, "HEXISTS %s key", fx_key(f, KS_TASK, "task_keybbbbbbbbbbbbbbbbbbbbbb")) == 0);
}

int main(void)
{
    struct fx f;

    test_parse_shapes();
    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_create(&f);
    test_list_revoke_load(&f);
    test_submit_key(&f);
    fx_stop(&f);
    return check_done();
}
