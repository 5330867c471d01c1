/*
 * api/provider_callbacks.h — POST /v1/provider_callbacks/{provider}/{task_id}: a provider says a
 * long-running job ended (Replicate's `webhook`, fal's `fal_webhook`; the worker asks for it when
 * the provider's callbacks can be verified and callback_base_url is set, core/txn_callback.h).
 * No bearer key: the request is authenticated by its signature: Standard Webhooks with the
 * provider's webhook_secret, or fal's ED25519 scheme (X-Fal-Webhook-* headers, core/fal_sign.h)
 * with one of a fal provider's webhook_public_keys. A verified callback only makes the task's poll
 * due now (NUDGE); the poll reads the authoritative state. api-internal, like api/internal.h.
 */
#ifndef SLUICE_API_PROVIDER_CALLBACKS_H
#define SLUICE_API_PROVIDER_CALLBACKS_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/http.h>

struct api;
struct config;

/* The most bytes of a callback's body (a prediction or a queue result: a few KiB; 413 past). */
#define API_CALLBACK_BODY_MAX 65536

/*
 * True when path (path_len bytes, not NUL-terminated; borrowed) is a callback URL sluice would
 * have handed out: "/v1/provider_callbacks/<provider>/<task id>" for a configured provider with a
 * webhook_secret (or, fal, webhook_public_keys) and a task-id-shaped id. What the connection guard
 * asks before it reads a body: a callback that cannot be one is answered 404 on its headers alone.
 */
bool api_provider_callback_accepts(const struct config *cfg, const char *path, size_t path_len);

/* The route's handler (api/server.c's table; tenant is NULL, arg the last path segment). */
void api_provider_callback(struct api *a, struct evhttp_request *req, const char *tenant,
                           const char *arg);

#endif
