/*
 * api/provider_callbacks.c — providers' job callbacks (api/provider_callbacks.h).
 *
 * The order of the checks is the contract: the route and the provider (404) before the body is
 * read (the guard asks api_provider_callback_accepts), then the body's size (413), then the
 * signature (401: nothing changes; Standard Webhooks with the provider's webhook_secret, or for
 * fal its ED25519 headers with one of webhook_public_keys), and only then Redis. After a valid
 * signature the answer is 200 {"ok":true} whatever NUDGE found (the task finished, unknown, another
 * provider's): a provider retries a callback it did not get a 2xx for, and none of those would ever
 * change.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>

#include "api/internal.h"
#include "api/provider_callbacks.h"
#include "core/config.h"
#include "core/fal_sign.h"
#include "core/log.h"
#include "core/task.h"
#include "core/txn_callback.h"
#include "core/util.h"
#include "core/webhook_sign.h"

/* The longest webhook-signature header read: a few signatures (rotation) of ~48 bytes each. */
#define CALLBACK_SIGNATURE_MAX 1024

/*
 * Splits path (path_len bytes) into the provider it names (its config entry, which must have a
 * webhook key) and the task id, copied into id (TASK_ID_LEN + 1 bytes). NULL when path is not a
 * callback URL of a configured provider or the id is not task-id shaped.
 */
static const struct config_provider *callback_target(const struct config *cfg, const char *path,
                                                     size_t path_len, char *id)
{
    static const char prefix[] = TXN_CALLBACK_PATH;
    const size_t plen = sizeof(prefix) - 1;
    const char *name, *slash;
    size_t name_len, id_len;

    if (path_len <= plen || memcmp(path, prefix, plen) != 0) {
        return NULL;
    }
    name = path + plen;
    slash = memchr(name, '/', path_len - plen);
    if (slash == NULL) {
        return NULL;
    }
    name_len = (size_t)(slash - name);
    id_len = path_len - plen - name_len - 1;
    if (name_len == 0 || name_len > TXN_CALLBACK_PROVIDER_MAX || id_len != TASK_ID_LEN) {
        return NULL;
    }
    memcpy(id, slash + 1, id_len);
    id[id_len] = '\0';
    if (!task_id_valid(id)) {
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_providers; i++) {
        const struct config_provider *p = &cfg->providers[i];
        if (p->has_webhook_key && strlen(p->name) == name_len &&
            memcmp(p->name, name, name_len) == 0 && txn_callback_provider_ok(p->name)) {
            return p;
        }
    }
    return NULL;
}

bool api_provider_callback_accepts(const struct config *cfg, const char *path, size_t path_len)
{
    char id[TASK_ID_LEN + 1];

    return callback_target(cfg, path, path_len, id) != NULL;
}

/*
 * The deployments of provider p as NUDGE's (alias, index) pairs: caller frees. *n = 0 (and NULL)
 * when no alias uses it, or out of memory (then *oom).
 */
static struct txn_nudge_dep *provider_deps(const struct config *cfg,
                                           const struct config_provider *p, size_t *n, bool *oom)
{
    struct txn_nudge_dep *deps = NULL;
    size_t count = 0;

    *n = 0;
    *oom = false;
    for (size_t i = 0; i < cfg->n_models; i++) {
        for (size_t j = 0; j < cfg->models[i].n_deployments; j++) {
            count += cfg->models[i].deployments[j].provider == p;
        }
    }
    if (count == 0) {
        return NULL;
    }
    if ((deps = calloc(count, sizeof(*deps))) == NULL) {
        *oom = true;
        return NULL;
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        for (size_t j = 0; j < cfg->models[i].n_deployments; j++) {
            if (cfg->models[i].deployments[j].provider == p) {
                deps[*n].alias = cfg->models[i].alias;
                deps[*n].index = j;
                (*n)++;
            }
        }
    }
    return deps;
}

/*
 * Checks a callback's signature (body: len bytes, borrowed) by p's scheme: fal's ED25519 headers
 * (X-Fal-Webhook-*, any of p's public keys) for a provider with fal_keys, Standard Webhooks with
 * p's secret otherwise; both refuse a timestamp more than 5 minutes from now. NULL when it
 * verifies, else why not (static text, for the log line only: the provider gets one answer).
 */
static const char *callback_verify(const struct config_provider *p, struct evkeyvalq *headers,
                                   const char *body, size_t len)
{
    const int64_t now_s = util_now_ms() / 1000;
    const char *msg_id, *ts, *sig, *user;
    int rc;

    if (p->n_fal_keys > 0) {
        msg_id = evhttp_find_header(headers, "X-Fal-Webhook-Request-Id");
        user = evhttp_find_header(headers, "X-Fal-Webhook-User-Id");
        ts = evhttp_find_header(headers, "X-Fal-Webhook-Timestamp");
        sig = evhttp_find_header(headers, "X-Fal-Webhook-Signature");
        if (msg_id == NULL || user == NULL || ts == NULL || sig == NULL) {
            return "missing X-Fal-Webhook headers";
        }
        rc = fal_sign_verify(p->fal_keys, p->n_fal_keys, msg_id, user, ts, sig, body, len, now_s,
                             FAL_SIGN_TOLERANCE_S);
        return rc == 0 ? NULL : fal_sign_strerror(rc);
    }
    msg_id = evhttp_find_header(headers, "webhook-id");
    ts = evhttp_find_header(headers, "webhook-timestamp");
    sig = evhttp_find_header(headers, "webhook-signature");
    if (msg_id == NULL || ts == NULL || sig == NULL) {
        return "missing webhook headers";
    }
    if (strlen(sig) > CALLBACK_SIGNATURE_MAX) {
        return webhook_strerror(WEBHOOK_EMISMATCH);
    }
    rc = webhook_verify(&p->webhook_key, msg_id, ts, body, len, sig, now_s, WEBHOOK_TOLERANCE_S);
    return rc == 0 ? NULL : webhook_strerror(rc);
}

/* 200 {"ok":true}: the provider may stop retrying. */
static void reply_ok(struct api *a, struct evhttp_request *req)
{
    cJSON *o = cJSON_CreateObject();

    if (o == NULL || cJSON_AddTrueToObject(o, "ok") == NULL) {
        cJSON_Delete(o);
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        return;
    }
    api_reply_json(a, req, 200, o);
}

/* NUDGE answered: the provider gets 200 whatever the task's state; a store failure is a 503, so
 * the provider retries later. */
static void on_nudged(enum txn_nudge_result r, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else {
        log_info("provider callback", "provider=%s task=%s result=%s", (const char *)c->owner,
                 c->id, txn_nudge_result_name(r));
        reply_ok(c->api, c->req);
    }
    api_ctx_free(c);
}

void api_provider_callback(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct evkeyvalq *headers = evhttp_request_get_input_headers(req);
    const struct config_provider *p;
    const char *reason;
    const char *body = NULL;
    size_t len = in ? evbuffer_get_length(in) : 0;
    struct txn_nudge_dep *deps = NULL;
    struct txn_nudge n = {0};
    struct api_ctx *c = NULL;
    char id[TASK_ID_LEN + 1];
    bool oom = false;

    (void)tenant;
    (void)arg;
    p = path ? callback_target(a->cfg, path, strlen(path), id) : NULL;
    if (p == NULL) {
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "unknown_url", "Unknown request URL: %s",
                        path ? path : "");
        goto out;
    }
    if (len > API_CALLBACK_BODY_MAX) {
        api_reply_error(a, req, CORE_ETOOLARGE, NULL, "request_too_large",
                        "A callback's body must be at most %d bytes", API_CALLBACK_BODY_MAX);
        goto out;
    }
    if (len > 0 && (body = (const char *)evbuffer_pullup(in, (ev_ssize_t)len)) == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    if ((reason = callback_verify(p, headers, body, len)) != NULL) {
        log_info("provider callback refused", "provider=%s task=%s reason=\"%s\"", p->name, id,
                 reason);
        api_reply_error(a, req, CORE_EAUTH, NULL, "invalid_signature",
                        "The callback's webhook signature is missing, stale or wrong");
        goto out;
    }
    deps = provider_deps(a->cfg, p, &n.n_deps, &oom);
    if (oom) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    if (n.n_deps == 0) {
        log_info("provider callback", "provider=%s task=%s result=unused_provider", p->name, id);
        reply_ok(a, req);
        goto out;
    }
    if ((c = api_ctx_new(a, req, NULL)) == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    snprintf(c->id, sizeof(c->id), "%s", id);
    c->owner = p->name; /* borrowed from the config, for the log line */
    n.id = c->id;
    n.now_ms = util_now_ms();
    n.deps = deps;
    if (txn_nudge(a->store, &a->txn, &n, on_nudged, c) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
out:
    free(deps);
}
