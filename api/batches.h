/*
 * api/batches.h — the OpenAI Batch API: the endpoints (api/batches.c) and the batch runner that
 * carries a batch through its life (api/batch_runner.c). api-internal, like api/internal.h.
 *
 * A batch is a Redis hash (KS_BATCH <id>; fields in core/keys.h), listed in the tenant's
 * KS_BATCHES_TENANT zset; every step that changes it is one op of the BATCH script, called through
 * core/txn_batch.h. Its lines run as tasks at batch priority whose ids are derived from the batch
 * id and the line's ordinal (api_batch_task_id), so the runner never keeps a list of them and a
 * chunk submitted twice creates nothing twice.
 *
 * Life: POST /v1/batches writes the hash (validating) and puts the batch in KS_BATCH_WORK, due
 * now. Any API process's runner claims due batches (a lease in that zset) and does what the
 * status asks: validate the input file (every bad line reported with its line number; any bad
 * line fails the batch), expand it into tasks in chunks (in_progress), cancel its tasks
 * (cancelling, or past its completion window), and, once finalize (core/lua/prelude.lua) counted
 * the last task and moved it to finalizing, write the output and error files and end it (completed,
 * cancelled, expired or failed), with its batch.* webhook.
 */
#ifndef SLUICE_API_BATCHES_H
#define SLUICE_API_BATCHES_H

#include <stddef.h>

#include <cJSON.h>

#include "api/internal.h"
#include "core/store.h"

#define API_BATCH_ID_PREFIX "batch_"

/* The completion window a batch may ask for (the only one OpenAI offers); batches.window_s says
 * how long it is. */
#define API_BATCH_WINDOW "24h"

extern const struct api_webhook_events api_batch_webhook_events;

/* The task kind (enum task_kind) a batch endpoint's lines run as, or -1 when sluice does not
 * batch it (or endpoint is NULL). */
int api_batch_kind(const char *endpoint);

/* The id of the task (of kind: a response's is "resp_…") for request `ordinal` (1-based) of
 * batch_id. Returns 0 or -1. */
int api_batch_task_id(const char *batch_id, enum task_kind kind, long long ordinal, char *out,
                      size_t size);

/* The batch's fields as a cJSON object of strings, from an HGETALL reply. Caller frees. */
cJSON *api_batch_fields(const redisReply *hash);

/* The OpenAI batch object of a batch, from its fields. Caller frees. */
cJSON *api_batch_json(const char *id, const cJSON *fields);

/* A string field of fields, or NULL. */
const char *api_batch_field(const cJSON *fields, const char *name);

/* Handlers. */
void api_batches_create(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);
void api_batches_get(struct api *a, struct evhttp_request *req, const char *tenant,
                     const char *arg);
void api_batches_list(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg);
void api_batches_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);

/* The runner: one per API process, started by api_new, stopped by api_stop, freed by api_free. */
struct batch_runner;
struct batch_runner *batch_runner_new(struct api *a);
void batch_runner_stop(struct batch_runner *r);
void batch_runner_free(struct batch_runner *r);

#endif
