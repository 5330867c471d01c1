/*
 * tests/lua/test_lua_keyspace.c — the scripts rendered for another keyspace (redis.key_tag "t2")
 * against a real redis-server: a submit → claim → finish → tick → cancel cycle built by the
 * transaction layer with that keyspace writes only keys under "{t2}:" and publishes only on its
 * channels; the same cycle in the default keyspace on the same server then leaves the "{t2}:"
 * keys as they were and writes the same state under "{sl}:" (two deployments share one Redis).
 */
#define _GNU_SOURCE /* open_memstream */
#include <stdio.h>

#include "tests/unit/check.h"
#include "tests/lua/fixture.h"

#define HOOK                                                                                       \
    "{\"url\":\"https://hooks.example/k\",\"events\":[\"task.started\",\"task.completed\"]}"

/*
 * Every key on the server (SCAN, so nothing is missed however many there are): how many there
 * are, how many start with prefix, and how many with other (both "{<tag>}:").
 */
static void count_keys(struct fx *f, const char *prefix, const char *other, long *all, long *in,
                       long *in_other)
{
    char cursor[32] = "0";

    *all = *in = *in_other = 0;
    do {
        redisReply *r = fx_cmd(f, "SCAN %s COUNT 1000", cursor);
        if (!CHECK(r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2)) {
            freeReplyObject(r);
            return;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++) {
            const char *k = r->element[1]->element[i]->str;
            (*all)++;
            *in += strncmp(k, prefix, strlen(prefix)) == 0;
            *in_other += strncmp(k, other, strlen(other)) == 0;
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
}

/*
 * The blocks of an fx_dump text whose key starts with prefix, every prefix in them (keys,
 * channel names in values) written as "{*}:" so two keyspaces' states compare. Caller frees.
 */
static char *dump_of(const char *dump, const char *prefix)
{
    char *text = NULL;
    size_t len = 0, pl = strlen(prefix);
    FILE *out = open_memstream(&text, &len);
    int keep = 0;

    for (const char *line = dump; *line;) {
        const char *end = strchr(line, '\n');
        size_t n = end ? (size_t)(end - line) + 1 : strlen(line);
        if (line[0] != ' ') {
            keep = strncmp(line, prefix, pl) == 0;
        }
        for (size_t i = 0; keep && i < n; i++) {
            if (i + pl <= n && strncmp(line + i, prefix, pl) == 0) {
                fputs("{*}:", out);
                i += pl - 1;
            } else {
                fputc(line[i], out);
            }
        }
        line += n;
    }
    fclose(out);
    return text;
}

/* Three tasks through every step, read back (GET, LIST, METRICS), a webhook delivery claimed and
 * delivered, a batch created: every call built by the txn layer in f's keyspace. */
static void cycle(struct fx *f)
{
    static const struct txn_attempt rec = {.attempt = 1, .provider = "p", .model = "up"};
    struct txn_submit t[3] = {fx_task("task_k1"), fx_task("task_k2"), fx_task("task_k3")};
    struct txn_outcome o[3] = {fx_outcome("task_k1", TXN_OUTCOME_COMPLETED),
                               fx_outcome("task_k2", TXN_OUTCOME_RETRY),
                               fx_outcome("task_k3", TXN_OUTCOME_PARK)};
    struct txn_wh_claim whc = {
        .now_ms = FX_NOW + 700, .n = 1, .lease_ms = 15000, .slots = 4, .most = 4, .scan = 10};
    struct txn_batch b = {
        .op = TXN_BATCH_CREATE, .id = "batch_k", .tenant = "t1", .now_ms = FX_NOW};
    struct txn_submitted submitted[3];
    struct txn_claim_reply claimed;
    enum txn_applied applied[3];
    struct txn_ticked ticked;
    struct txn_cancelled cancelled;
    struct txn_wh_claimed whs;
    struct txn_wh_delivery whd;
    struct txn_wh_done done = {.outcome = TXN_WH_DELIVERED, .record = "{}"};
    enum txn_wh_outcome recorded;
    struct txn_batch_reply batched;
    struct txn_list lp = {.tenant = "t1", .limit = 10, .scan_cap = 100};
    struct txn_got got;
    struct txn_listed listed;
    struct txn_metrics metrics;
    char reply_to[FX_KEY_MAX];
    redisReply *r, *delivered;

    keyspace_key(&f->keys, reply_to, sizeof(reply_to), KS_CHANNEL_API, "n1");
    t[0].reply_to = reply_to;
    t[0].idem_hash = "idem-1";
    t[0].body_hash = "b1";
    t[0].deadline_ms = FX_NOW + 100000;
    t[0].webhook = HOOK;
    t[1].kind = TASK_KIND_IMAGE;
    o[0].result = "{\"ok\":true}";
    o[0].took_slot = true;
    o[0].class = TXN_CLASS_OK;
    o[0].latency_ms = 12.5;
    o[0].http_status = 200;
    o[0].tokens_used = 20;
    o[0].attempt = &rec;
    o[1].error = "{}";
    o[1].retry_at_ms = FX_NOW + 500;
    o[1].took_slot = true;
    o[1].class = TXN_CLASS_FAIL;
    o[1].http_status = 503;
    o[2].up_id = "up_k3";
    o[2].poll_at_ms = FX_NOW + 60000;
    o[2].took_slot = true;
    o[2].class = TXN_CLASS_OK;

    fx_routing(f, "m", FX_ROUTING_OPEN);
    r = fx_submit(f, t, 3);
    CHECK(txn_submit_parse(r, 3, submitted) == 0);
    for (int i = 0; i < 3; i++) {
        CHECK(submitted[i].result == TXN_SUBMIT_OK);
    }
    freeReplyObject(r);
    r = fx_claim(f, FX_NOW, 3);
    CHECK(txn_claim_parse(r, &claimed) == 0 && claimed.n_units == 3);
    freeReplyObject(r);
    r = fx_finish(f, FX_NOW + 100, 10, o, 3);
    CHECK(txn_finish_parse(r, applied, 3) == 0);
    CHECK(applied[0] == TXN_APPLIED_COMPLETED && applied[1] == TXN_APPLIED_RETRY);
    CHECK(applied[2] == TXN_APPLIED_PARK);
    freeReplyObject(r);
    r = fx_tick(f, FX_NOW + 500, "node-1");
    CHECK(txn_tick_parse(r, &ticked) == 0 && ticked.leader && ticked.promoted == 1);
    freeReplyObject(r);
    r = fx_cancel(f, "task_k2", "t1", FX_NOW + 600);
    CHECK(txn_cancel_parse(r, &cancelled) == 0 && cancelled.result == TXN_CANCEL_CANCELLED);
    freeReplyObject(r);
    CHECK(txn_wh_claim_build(&f->args, &f->keys, &whc) == 0);
    r = fx_run(f, SCRIPT_WH_CLAIM, &f->args);
    CHECK(txn_wh_claim_parse(r, &whs) == 0 && whs.n == 1);
    CHECK(txn_wh_claimed_get(&whs, 0, &whd) == 0);
    done.msg_id = whd.id;
    CHECK(txn_wh_done_build(&f->args, &f->keys, &done) == 0);
    delivered = fx_run(f, SCRIPT_WH_DONE, &f->args); /* done.msg_id is borrowed from r */
    freeReplyObject(r);
    CHECK(txn_wh_done_parse(delivered, &recorded) == 0 && recorded == TXN_WH_DELIVERED);
    freeReplyObject(delivered);
    CHECK(txn_get_build(&f->args, &f->keys, "task_k1") == 0);
    r = fx_run(f, SCRIPT_GET, &f->args);
    CHECK(txn_get_parse(r, &got) == 0);
    CHECK_STR(got.hash ? task_hash_get(got.hash, "status") : NULL, "completed");
    freeReplyObject(r);
    CHECK(txn_list_build(&f->args, &f->keys, &lp) == 0);
    r = fx_run(f, SCRIPT_LIST, &f->args);
    CHECK(txn_list_parse(r, &listed) == 0 && listed.n == 3);
    freeReplyObject(r);
    txn_metrics_begin(&f->args);
    txn_metrics_add(&f->args, "m", 1);
    r = fx_run(f, SCRIPT_METRICS, &f->args);
    CHECK(txn_metrics_parse(r, &metrics) == 0 && metrics.n_stats > 0 && metrics.n_deps == 1);
    CHECK(metrics.parked == 1);
    freeReplyObject(r);
    CHECK(txn_batch_build(&f->args, &f->keys, &b) == 0);
    r = fx_run(f, SCRIPT_BATCH, &f->args);
    CHECK(txn_batch_parse(TXN_BATCH_CREATE, r, &batched) == 0 && batched.answer == TXN_BATCH_OK);
    freeReplyObject(r);
}

static void test_other_keyspace(struct fx *f)
{
    redisContext *wake_t2, *wake_sl, *api_t2;
    char msg[256];
    char *d_t2, *d_t2_after, *d_sl_after, *all;
    long n_all, n_t2, n_sl;

    fx_flush(f);
    if (!CHECK(fx_keyspace(f, "t2") == 0)) {
        return;
    }
    CHECK_STR(f->keys.prefix, "{t2}:");
    wake_t2 = fx_subscribe(f, "{t2}:wake");
    wake_sl = fx_subscribe(f, "{sl}:wake");
    api_t2 = fx_subscribe(f, "{t2}:api:n1");
    CHECK(wake_t2 != NULL && wake_sl != NULL && api_t2 != NULL);
    cycle(f);
    count_keys(f, "{t2}:", "{sl}:", &n_all, &n_t2, &n_sl);
    CHECK(n_all > 10);
    CHECK(n_t2 == n_all);
    CHECK(n_sl == 0);
    /* each family the cycle touches, in the keyspace */
    CHECK(fx_int(f, "EXISTS {t2}:t:task_k1 {t2}:t:task_k2 {t2}:tn:t1 {t2}:stats") == 4);
    CHECK(fx_int(f, "EXISTS {t2}:idem:t1:idem-1 {t2}:cfg:m {t2}:dep:m:0 {t2}:leader") == 4);
    CHECK(fx_int(f, "EXISTS {t2}:expiry {t2}:whq {t2}:wd:msg_k1_1 {t2}:wd:msg_k1_2") == 4);
    CHECK(fx_int(f, "EXISTS {t2}:polls {t2}:b:batch_k {t2}:bw {t2}:bn:t1") == 4);
    CHECK_FIELD(f, "task_k1", "reply_to", "{t2}:api:n1");
    /* the channels are the keyspace's too: woken there, the result there, nothing under {sl} */
    CHECK(fx_messages(f, wake_t2, "{t2}:wake", NULL, 0) >= 1);
    CHECK(fx_messages(f, wake_sl, "{sl}:wake", NULL, 0) == 0);
    CHECK(fx_messages(f, api_t2, "{t2}:api:n1", msg, sizeof(msg)) == 1);
    CHECK_STR(msg, "r task_k1 {\"ok\":true}");

    /* the default keyspace on the same server: {t2} untouched, the same state under {sl} */
    all = fx_dump(f);
    CHECK(strstr(all, "{sl}:") == NULL); /* nor in a value (a channel, a key named in a field) */
    d_t2 = dump_of(all, "{t2}:");
    free(all);
    if (CHECK(fx_keyspace(f, NULL) == 0)) {
        CHECK_STR(f->keys.prefix, "{sl}:");
        cycle(f);
        count_keys(f, "{t2}:", "{sl}:", &n_all, &n_t2, &n_sl);
        CHECK(n_sl > 10);
        CHECK(n_t2 + n_sl == n_all);
        all = fx_dump(f);
        d_t2_after = dump_of(all, "{t2}:");
        d_sl_after = dump_of(all, "{sl}:");
        CHECK_STR(d_t2_after, d_t2);
        CHECK_STR(d_sl_after, d_t2);
        CHECK(fx_messages(f, wake_sl, "{sl}:wake", NULL, 0) >= 1);
        CHECK(fx_messages(f, wake_t2, "{t2}:wake", NULL, 0) == 0);
        free(all);
        free(d_t2_after);
        free(d_sl_after);
    }
    free(d_t2);
    redisFree(wake_t2);
    redisFree(wake_sl);
    redisFree(api_t2);
}

int main(void)
{
    struct fx f;

    if (fx_start(&f) != 0) {
        CHECK(!"redis-server and the scripts");
        return check_done();
    }
    test_other_keyspace(&f);
    fx_stop(&f);
    return check_done();
}
