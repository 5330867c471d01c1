/*
 * api/pipelines.h — pipelines: a DAG of task steps run as one durable job (issue 15).
 *
 * POST /v1/pipelines checks the steps (api/pipeline_spec.h) and writes the pipeline (PIPE create,
 * core/txn_pipe.h): its spec as the client sent it, due for a runner now. A runner in every API
 * process (api/pipeline_runner.c) claims due pipelines with a lease and moves them on: a step
 * whose dependencies completed starts — its references resolved against their outputs, an
 * artifact linked into the new task's blob folder as an input file, its tasks submitted with ids
 * derived from the pipeline, the step and the element (pipe_task_id), so a start repeated after a
 * crash finds its tasks there (SUBMIT's dup) and never runs a step twice. A step's task that ends
 * counts itself on the pipeline in the same atomic step (finalize, core/lua/prelude.lua) and makes
 * it due, so no end is ever missed. Tasks are ordinary tasks: paced, routed, retried, fenced.
 */
#ifndef SLUICE_API_PIPELINES_H
#define SLUICE_API_PIPELINES_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>
#include <hiredis/hiredis.h>

#include "api/pipeline_spec.h"
#include "core/txn_pipe.h"

#define API_PIPE_ID_PREFIX "pipe_"
#define PIPE_LIST_DEFAULT 20
#define PIPE_LIST_MAX 100

struct api;

/* The id of task k of step (an id) of pipeline pipe_id, for kind, into out. 0 or -1. */
int pipe_task_id(const char *pipe_id, const char *step, enum task_kind kind, size_t k, char *out,
                 size_t size);

/*
 * The outputs of finished tasks (t, n; borrowed, as PIPE tasks read them; ids in ids) rendered for
 * a client: {task_id, status, text?, result, artifacts?, error?} each, images' results naming their
 * content URLs. A new object or array (many: an array), caller frees.
 */
cJSON *pipe_output_json(const char *const *ids, const struct txn_pipe_task *t, size_t n, bool many);

/*
 * The pipeline object of its fields (the hash as a cJSON object of strings, api_batch_fields;
 * borrowed) and its checked spec (borrowed; NULL when the stored spec no longer parses). output:
 * the final steps' outputs, taken (NULL: null). Caller frees.
 */
cJSON *pipe_json(const char *id, const cJSON *fields, const struct pipe_spec *spec, cJSON *output);

/* The pipeline's events a webhook may ask for (and the tasks' own, handed to its tasks). */
extern const struct api_webhook_events api_pipeline_webhook_events;

/* The runner: one per API process, started by api_new, stopped by api_stop, freed by api_free. */
struct pipe_runner;
struct pipe_runner *pipe_runner_new(struct api *a);
void pipe_runner_stop(struct pipe_runner *r);
void pipe_runner_free(struct pipe_runner *r);

/* The endpoints (api/server.c routes them). */
struct evhttp_request;
void api_pipelines_create(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg);
void api_pipelines_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg);
void api_pipelines_list(struct api *a, struct evhttp_request *req, const char *tenant,
                        const char *arg);
void api_pipelines_cancel(struct api *a, struct evhttp_request *req, const char *tenant,
                          const char *arg);

#endif
