/*
 * api/pipeline_runner.h — internal to api/pipeline_runner.c and api/pipeline_start.c; nothing else
 * includes it (api/pipelines.h is the runner's contract). A pass over one claimed pipeline, as
 * the pass's state machine (api/pipeline_runner.c, which defines the pipe_runner_ functions) and
 * the start of a step (api/pipeline_start.c, pipe_start_step) both see it. Everything runs on the
 * API's event loop; a pass is owned by the runner until its last store call comes back.
 */
#ifndef SLUICE_API_PIPELINE_RUNNER_H
#define SLUICE_API_PIPELINE_RUNNER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cJSON.h>

#include "api/pipeline_spec.h"
#include "api/pipelines.h"
#include "core/err.h"

struct api;
struct event;

#define RUNNER_TASK_ID_MAX 64

enum step_state {
    ST_WAITING,
    ST_RUNNING,
    ST_COMPLETED,
    ST_FAILED,
    ST_SKIPPED,
    ST_CANCELLED,
};

struct pipe_runner {
    struct api *api;
    struct event *timer;
    bool stopping;
    bool claiming;
    bool freed; /* pipe_runner_free ran with passes still in hand: the last one frees it */
    int passes; /* in hand */
};

/* One pass over one claimed pipeline. */
struct pass {
    struct pipe_runner *r;
    char id[48];
    char *tenant;
    char lease[24];
    int64_t now;
    cJSON *fields;
    cJSON *steps_json;
    struct pipe_spec spec;
    bool spec_ok;
    enum step_state *st;
    bool *start;
    int *pending, *failed; /* per step: submits in flight, submits that failed */
    long long *n;          /* per step: its tasks (n:<step>) */
    bool cancelling;
    const char *end; /* the pipeline's final status when this pass ends it, else NULL */
    cJSON *writes;   /* field → string, for PIPE advance */
    const char *new_status;
    char *webhook_body;
    const char *event;
    int waiting;     /* submits and cancels in flight */
    bool retry_soon; /* a start could not be completed */
    bool again;      /* a step failed to start: its dependents are skipped in the next pass */
    /* the tasks read: ids in order, each step's first index */
    char (*ids)[RUNNER_TASK_ID_MAX];
    const char **id_ptrs;
    size_t n_ids;
    size_t *first;
};

/* Field "<prefix><step>" of the pipeline's hash as claimed (step NULL: none), borrowed from p, or
 * NULL; as a number (0 when absent). */
const char *pipe_runner_field(const struct pass *p, const char *prefix, const char *step);
long long pipe_runner_field_num(const struct pass *p, const char *prefix, const char *step);

/* Queues field "<prefix><step>" = v (a number) for the pass's advance. */
void pipe_runner_put_num(struct pass *p, const char *prefix, const char *step, long long v);

/* Step i is now in state s (queued for the advance; an ended state also stamps t1:<step>). */
void pipe_runner_set_state(struct pass *p, size_t i, enum step_state s);

/* Step i failed before it had tasks: e (borrowed; OpenAI's fields) is kept on the pipeline. */
void pipe_runner_fail_step(struct pass *p, size_t i, const struct core_err *e);

/* A submit or cancel of the pass came back (p->waiting counts them): the last one writes the
 * pass (PIPE advance) and p may be freed by the time this returns. */
void pipe_runner_settle(struct pass *p);

/*
 * Step 3 for step i (api/pipeline_start.c): resolves its tasks' inputs against the tasks r read
 * (borrowed), checks them and submits them, each submit counted in p->waiting and settled when it
 * comes back. A reference that does not resolve or an input that a task would refuse fails the
 * step; a submit that fails leaves it waiting for the next pass.
 */
void pipe_start_step(struct pass *p, size_t i, const struct txn_pipe_reply *r);

#endif
