/*
 * worker/webhooks.c — Standard Webhooks delivery on the worker's loop.
 *
 * The task scripts queue a delivery whenever an event a task's webhook asked for happens
 * ({sl}:wd:<msg id>, due in {sl}:whq). Workers claim due deliveries (WH_CLAIM leases them), render
 * the body once — {type, timestamp, data: the task} — sign it with every valid secret of the
 * tenant (webhook-id stays the same on every retry, webhook-timestamp is new on each), and POST it
 * through the HTTP client with the address guard: a private, loopback, link-local or metadata
 * address is refused unless webhooks.allow_hosts lists it, checked on the address actually
 * connected to. 2xx delivers; 410 stops; 408, 429, 5xx, timeouts and connection errors retry on
 * the configured schedule (with jitter, never sooner than retry-after); anything else fails.
 * Every attempt is recorded on the delivery and on the task (WH_DONE). Tenants share the
 * worker's delivery slots fairly (WEBHOOKS_TENANT_MAX below).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/artifact_ref.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/task.h"
#include "core/txn_webhook.h"
#include "core/util.h"
#include "core/webhook_sign.h"
#include "worker/internal.h"

/*
 * Deliveries a worker runs at once, and its fair-share rule. A slot is held until the receiver
 * answers or timeout_ms passes, so one tenant's slow receivers could hold them all: with one
 * queue in due order, its backlog would run ahead of every other tenant's deliveries (measured:
 * a tenant's webhook 0.5 s after its task on an idle worker, 12 s while another tenant's
 * receivers took seconds each). So the claim (WH_CLAIM) splits the slots among the tenants with
 * deliveries due or in flight here — each may hold 64 / tenants — and never gives one tenant more
 * than 48: the last 16 are there at once for a tenant whose deliveries come due while a busy one
 * holds the rest, instead of after that tenant's receivers answer. A tenant alone keeps 48 at
 * once. One claim looks at the oldest 512 due deliveries; those of a tenant at its share move
 * behind the rest when more are due, so the next claim looks further on.
 */
#define WEBHOOKS_MAX_IN_FLIGHT 64
#define WEBHOOKS_TENANT_MAX 48
#define WEBHOOKS_CLAIM_SCAN 512
#define WEBHOOKS_POLL_MS 200
#define WEBHOOKS_MAX_KEYS 4

struct delivery {
    struct webhooks *wh;
    struct delivery *prev, *next;
    char id[96];
    char task[48];
    char *tenant; /* whole: it keys the signing secrets and the fair share */
    char event[32];
    char *url;
    char *body; /* rendered once, kept on the delivery for the retries */
    bool body_new;
    bool fetching; /* an HGETALL of the task is in flight: its reply owns the delivery */
    int attempt;
    struct http_call *call;
    int64_t started_mono;
};

struct webhooks {
    struct worker *w;
    struct delivery *list;
    size_t n;
    bool claiming;
    bool stopping;
    struct event *timer;
    struct txn_args args; /* the arguments of one WH_CLAIM or WH_DONE call, reused */
    uint64_t delivered, retried, failed;
};

static void delivery_free(struct delivery *d)
{
    struct webhooks *wh = d->wh;

    if (d->call) {
        http_call_cancel(d->call);
    }
    if (d->prev) {
        d->prev->next = d->next;
    } else {
        wh->list = d->next;
    }
    if (d->next) {
        d->next->prev = d->prev;
    }
    wh->n--;
    free(d->tenant);
    free(d->url);
    free(d->body);
    free(d);
}

static void on_done_reply(enum txn_wh_outcome recorded, const struct core_err *err, void *arg)
{
    (void)recorded;
    (void)arg;
    if (err) {
        /* The lease on the delivery runs out and it is tried again: at-least-once. */
        log_warn("webhook outcome not recorded", "error=\"%s\"", err->message);
    }
}

/* Records the attempt and the delivery's fate (WH_DONE), then forgets the delivery. */
static void finish(struct delivery *d, enum txn_wh_outcome outcome, int64_t next_at, int status,
                   int64_t latency_ms, const char *error)
{
    struct webhooks *wh = d->wh;
    cJSON *rec = cJSON_CreateObject();
    char *rec_text;

    cJSON_AddStringToObject(rec, "webhook_id", d->id);
    cJSON_AddStringToObject(rec, "event", d->event);
    cJSON_AddNumberToObject(rec, "attempt", d->attempt);
    cJSON_AddNumberToObject(rec, "at", (double)(util_now_ms() / 1000));
    if (status > 0) {
        cJSON_AddNumberToObject(rec, "status", status);
    } else {
        cJSON_AddNullToObject(rec, "status");
    }
    cJSON_AddNumberToObject(rec, "latency_ms", (double)latency_ms);
    cJSON_AddStringToObject(rec, "outcome", txn_wh_outcome_name(outcome));
    if (error) {
        cJSON_AddStringToObject(rec, "error", error);
    } else {
        cJSON_AddNullToObject(rec, "error");
    }
    rec_text = cJSON_PrintUnformatted(rec);
    cJSON_Delete(rec);
    {
        struct txn_wh_done done = {.msg_id = d->id,
                                   .outcome = outcome,
                                   .next_at_ms = next_at,
                                   .record = rec_text ? rec_text : "{}",
                                   .body = d->body_new ? d->body : NULL};
        /* refused (Redis away): the lease on the delivery runs out and it is tried again */
        txn_wh_done(wh->w->store, &wh->args, &done, on_done_reply, NULL);
    }
    cJSON_free(rec_text);
    if (outcome == TXN_WH_DELIVERED) {
        wh->delivered++;
    } else if (outcome == TXN_WH_RETRY) {
        wh->retried++;
    } else {
        wh->failed++;
    }
    delivery_free(d);
}

/* The wait before the next attempt: the schedule's step with ±10% jitter, or the receiver's
 * retry-after if longer. -1 when the schedule is used up. */
static int64_t next_wait_ms(const struct delivery *d, const struct adapter_response *resp)
{
    const struct config_webhooks *c = &d->wh->w->cfg->webhooks;
    int64_t ra = resp ? adapter_retry_after_ms(resp) : -1;
    double step;

    if ((size_t)d->attempt > c->n_schedule) {
        return -1;
    }
    step = (double)c->schedule_ms[d->attempt - 1] * (0.9 + 0.2 * util_rand_unit());
    return ra > (int64_t)step ? ra : (int64_t)step;
}

static void on_sent(const struct adapter_response *resp, void *arg)
{
    struct delivery *d = arg;
    int64_t latency = util_mono_ms() - d->started_mono;
    int st = resp->status;
    bool retryable;
    int64_t wait;

    d->call = NULL;
    if (resp->transport == ADAPTER_TRANSPORT_OK && st >= 200 && st <= 299) {
        finish(d, TXN_WH_DELIVERED, 0, st, latency, NULL);
        return;
    }
    if (resp->transport == ADAPTER_TRANSPORT_OK && st == 410) {
        finish(d, TXN_WH_STOPPED, 0, st, latency, "the receiver answered 410 Gone");
        return;
    }
    if (resp->transport != ADAPTER_TRANSPORT_OK && resp->transport_msg &&
        strstr(resp->transport_msg, "refused") && strstr(resp->transport_msg, "address")) {
        finish(d, TXN_WH_FAILED, 0, 0, latency, resp->transport_msg);
        return;
    }
    retryable = resp->transport != ADAPTER_TRANSPORT_OK || st == 408 || st == 429 || st >= 500;
    wait = retryable ? next_wait_ms(d, resp) : -1;
    if (wait < 0) {
        finish(d, TXN_WH_FAILED, 0, st, latency,
               resp->transport != ADAPTER_TRANSPORT_OK ? resp->transport_msg
               : retryable                             ? "the retry schedule is used up"
                                                       : "the receiver refused the delivery");
        return;
    }
    finish(d, TXN_WH_RETRY, util_now_ms() + wait, st, latency,
           resp->transport != ADAPTER_TRANSPORT_OK ? resp->transport_msg : NULL);
}

/* Signs and sends the body. */
static void send_delivery(struct delivery *d)
{
    const struct config *cfg = d->wh->w->cfg;
    struct webhook_key keys[WEBHOOKS_MAX_KEYS];
    int64_t now_s = util_now_ms() / 1000;
    size_t n = config_webhook_keys(cfg, d->tenant, now_s, keys, WEBHOOKS_MAX_KEYS);
    char sig[WEBHOOK_SIGNATURE_SIZE(WEBHOOKS_MAX_KEYS)];
    struct adapter_request req = {0};

    if (n == 0 ||
        webhook_sign(keys, n, d->id, now_s, d->body, strlen(d->body), sig, sizeof(sig)) < 0) {
        for (size_t i = 0; i < n; i++) {
            webhook_key_clear(&keys[i]);
        }
        finish(d, TXN_WH_FAILED, 0, 0, 0, "no valid signing secret for the tenant");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        webhook_key_clear(&keys[i]);
    }
    snprintf(req.method, sizeof(req.method), "POST");
    req.url = d->url;
    req.body = d->body;
    req.body_len = strlen(d->body);
    if (adapter_request_add_header(&req, "Content-Type: application/json") < 0 ||
        adapter_request_add_header(&req, "webhook-id: %s", d->id) < 0 ||
        adapter_request_add_header(&req, "webhook-timestamp: %lld", (long long)now_s) < 0 ||
        adapter_request_add_header(&req, "webhook-signature: %s", sig) < 0) {
        req.url = NULL;
        req.body = NULL;
        adapter_request_cleanup(&req);
        finish(d, TXN_WH_RETRY, util_now_ms() + 1000, 0, 0, "out of memory");
        return;
    }
    d->started_mono = util_mono_ms();
    d->call = http_client_send_guarded(d->wh->w->http, &req, cfg->webhooks.timeout_ms,
                                       cfg->webhooks.allow, on_sent, d);
    req.url = NULL; /* borrowed from the delivery */
    req.body = NULL;
    adapter_request_cleanup(&req);
    if (d->call == NULL) {
        finish(d, TXN_WH_RETRY, util_now_ms() + 1000, 0, 0, "could not start the delivery");
    }
}

/*
 * An image task's stored result refers to its kept artifacts (core/artifact_ref.h); a webhook
 * body names them by the task's content URL (the receiver holds the tenant's key), under
 * public_base_url when one is configured.
 */
static char *render_images(const struct webhooks *wh, const char *text, const char *id)
{
    cJSON *r;
    char *out;

    if (text == NULL || !artifact_ref_is(text, strlen(text))) {
        return NULL;
    }
    r = artifact_ref_content_urls(text, wh->w->cfg->public_base_url, id);
    out = r ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    return out;
}

/* The first attempt renders the body from the task as it is now. */
static void on_task(redisReply *reply, const struct core_err *err, void *arg)
{
    struct delivery *d = arg;
    struct task_view v;
    char *result, *text;
    cJSON *raw;

    d->fetching = false;
    if (d->wh->stopping) {
        delivery_free(d);
        return;
    }
    if (err != NULL) {
        finish(d, TXN_WH_RETRY, util_now_ms() + 1000, 0, 0, "the task store is unavailable");
        return;
    }
    if (task_view_from_hash(&v, d->task, reply) != 0) {
        finish(d, TXN_WH_FAILED, 0, 0, 0, "the task no longer exists");
        return;
    }
    v.webhook_attempts = NULL;
    result = render_images(d->wh, v.result, d->task);
    if (result != NULL) {
        v.result = result;
    }
    text = task_view_render(&v);
    cJSON_free(result);
    raw = text ? cJSON_CreateRaw(text) : NULL;
    cJSON_free(text);
    d->body = raw ? webhook_body(d->event, raw) : NULL;
    d->body_new = true;
    if (d->body == NULL) {
        finish(d, TXN_WH_RETRY, util_now_ms() + 1000, 0, 0, "out of memory");
        return;
    }
    send_delivery(d);
}

/* Takes a claimed delivery (copied out of the claim's reply) and starts its attempt. */
static void start(struct webhooks *wh, const struct txn_wh_delivery *c)
{
    struct delivery *d = calloc(1, sizeof(*d));
    char key[128];

    if (d == NULL) {
        return; /* its lease runs out and it comes back */
    }
    d->wh = wh;
    snprintf(d->id, sizeof(d->id), "%s", c->id);
    snprintf(d->task, sizeof(d->task), "%s", c->task);
    snprintf(d->event, sizeof(d->event), "%s", c->event);
    d->tenant = strdup(c->tenant);
    d->url = strdup(c->url);
    d->attempt = c->attempt;
    if (c->body != NULL) {
        d->body = strdup(c->body);
    }
    d->next = wh->list;
    if (wh->list) {
        wh->list->prev = d;
    }
    wh->list = d;
    wh->n++;
    if (d->tenant == NULL || d->url == NULL) {
        finish(d, TXN_WH_RETRY, util_now_ms() + 1000, 0, 0, "out of memory");
        return;
    }
    if (d->body) {
        send_delivery(d);
        return;
    }
    const char *argv[] = {"HGETALL", key};
    if (keyspace_key(store_keys(wh->w->store), key, sizeof(key), KS_TASK, d->task) < 0 ||
        store_command(wh->w->store, on_task, d, 2, argv, NULL) < 0) {
        finish(d, TXN_WH_RETRY, util_now_ms() + 1000, 0, 0, "the task store is unavailable");
    } else {
        d->fetching = true;
    }
}

static void on_claim(const struct txn_wh_claimed *c, const struct core_err *err, void *arg)
{
    struct webhooks *wh = arg;

    wh->claiming = false;
    if (err != NULL || wh->stopping) {
        return;
    }
    for (size_t i = 0; i < c->n; i++) {
        struct txn_wh_delivery d;
        if (txn_wh_claimed_get(c, i, &d) == 0) {
            start(wh, &d);
        }
    }
}

/*
 * The tenants this worker is delivering for and how many deliveries each has in flight, as
 * WH_CLAIM's held list: held (room for WEBHOOKS_MAX_IN_FLIGHT) gets them, the tenants borrowed
 * from the deliveries. Returns how many it wrote.
 */
static size_t in_flight(const struct webhooks *wh, struct txn_wh_held *held)
{
    size_t n = 0;

    for (const struct delivery *d = wh->list; d; d = d->next) {
        size_t i = 0;

        if (d->tenant == NULL) {
            continue;
        }
        while (i < n && strcmp(held[i].tenant, d->tenant) != 0) {
            i++;
        }
        if (i == n) {
            if (n == WEBHOOKS_MAX_IN_FLIGHT) {
                continue;
            }
            held[n].tenant = d->tenant;
            held[n++].count = 0;
        }
        held[i].count++;
    }
    return n;
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
    struct webhooks *wh = arg;
    long room = WEBHOOKS_MAX_IN_FLIGHT - (long)wh->n;
    struct txn_wh_held held[WEBHOOKS_MAX_IN_FLIGHT];
    struct txn_wh_claim p;

    (void)fd;
    (void)what;
    if (wh->claiming || wh->stopping || room <= 0 || !store_ready(wh->w->store)) {
        return;
    }
    p = (struct txn_wh_claim){.now_ms = util_now_ms(),
                              .n = room,
                              .lease_ms = wh->w->cfg->webhooks.timeout_ms + 5000,
                              .slots = WEBHOOKS_MAX_IN_FLIGHT,
                              .most = WEBHOOKS_TENANT_MAX,
                              .scan = WEBHOOKS_CLAIM_SCAN,
                              .held = held,
                              .n_held = in_flight(wh, held)};
    if (txn_wh_claim(wh->w->store, &wh->args, &p, on_claim, wh) == 0) {
        wh->claiming = true;
    }
}

struct webhooks *webhooks_new(struct worker *w)
{
    struct webhooks *wh = calloc(1, sizeof(*wh));
    struct timeval tv = {0, WEBHOOKS_POLL_MS * 1000};

    if (wh == NULL) {
        return NULL;
    }
    wh->w = w;
    txn_args_init(&wh->args);
    wh->timer = event_new(w->base, -1, EV_PERSIST, on_poll, wh);
    if (wh->timer == NULL) {
        free(wh);
        return NULL;
    }
    event_add(wh->timer, &tv);
    return wh;
}

void webhooks_stop(struct webhooks *wh)
{
    if (wh == NULL) {
        return;
    }
    wh->stopping = true;
    event_del(wh->timer);
    /* Deliveries in flight are dropped; their leases run out and another worker retries them.
     * One waiting for its task's HGETALL is freed by that reply. */
    for (struct delivery *d = wh->list, *next; d; d = next) {
        next = d->next;
        if (!d->fetching) {
            delivery_free(d);
        }
    }
}

void webhooks_free(struct webhooks *wh)
{
    if (wh == NULL) {
        return;
    }
    webhooks_stop(wh);
    log_info("webhooks stopped", "delivered=%llu retried=%llu failed=%llu",
             (unsigned long long)wh->delivered, (unsigned long long)wh->retried,
             (unsigned long long)wh->failed);
    event_free(wh->timer);
    txn_args_cleanup(&wh->args);
    free(wh);
}
