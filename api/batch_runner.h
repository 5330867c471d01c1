/*
 * api/batch_runner.h — the batch runner's parts, shared by its three files: the state machine
 * (batch_runner.c: claim, validation, expansion, the cancel pass), reading and checking input
 * lines (batch_lines.c) and writing the output and error files (batch_output.c). Internal to
 * them; the rest of the api sees only api/batches.h.
 */
#ifndef SLUICE_API_BATCH_RUNNER_H
#define SLUICE_API_BATCH_RUNNER_H

#include <stdbool.h>
#include <stdio.h>

#include <cJSON.h>

#include "api/batches.h"
#include "api/keys.h"
#include "core/config.h"
#include "core/task.h"
#include "core/txn.h"

#define RUNNER_VALIDATE_LINES 2000
#define RUNNER_CHUNK 256
#define RUNNER_MAX_ERRORS 100
#define RUNNER_RECHECK_MS 30000
#define RUNNER_BACKOFF_MS 2000
#define RUNNER_CUSTOM_ID_MAX 512

enum phase { PH_IDLE, PH_BUSY, PH_VALIDATE, PH_EXPAND, PH_CANCEL, PH_FINAL };

struct seen {
    char *custom_id;
    long long line;
};

/* A finished batch's two files: the lines that completed, and the rest. */
enum { BATCH_OUTPUT, BATCH_ERRORS, BATCH_FILES };

struct batch_file {
    FILE *f;
    char path[4096]; /* while it is ours: a .part file under blobs.dir/files */
    long long lines, bytes;
    char id[64]; /* once stored */
};

struct batch_runner {
    struct api *api;
    struct event *timer; /* looks for due batches every batches.poll_ms */
    struct event *step;  /* the next step of the current phase, or a claim (idle) */
    bool stopping;
    enum phase phase;
    int waiting;          /* replies the current step still waits for */
    struct txn_args args; /* the arguments of the BATCH call being sent, reused by every op */

    /* the batch in hand */
    char id[64];
    char *tenant;
    cJSON *fields;
    /* the key it was created under, as this process's table knows it (NULL: none, or unknown
     * here): its lines may use only the key's aliases */
    const struct api_key_ref *key;
    enum task_kind kind; /* what the endpoint's lines run as */
    FILE *in;
    char *line;
    size_t line_len, line_cap;
    bool line_too_long;
    long long line_no, ordinal, off;

    /* validation */
    cJSON *errors;
    long long n_errors;
    struct seen *seen;
    size_t n_seen, cap_seen;

    /* expansion */
    long long chunk_first;
    long long offs[RUNNER_CHUNK];
    long long fail_ordinal;
    bool eof;

    /* cancel pass and finalization: ordinals next..last */
    long long next, last;
    struct batch_file files[BATCH_FILES];
    int storing; /* the file being handed to the Files store */
    char final_status[16];
};

/* What is wrong with a line: OpenAI's {code, line, message, param}. */
struct line_err {
    const char *code;
    char param[80];
    char message[256];
};

/* ---- batch_runner.c: what the other two parts call back ---- */
/* Runs the current phase's next step from the loop (after pending I/O). */
void runner_schedule(struct batch_runner *r);
/* A field of the batch in hand (as claimed), or NULL; as a number (0 when absent). */
const char *runner_field(const struct batch_runner *r, const char *name);
long long runner_field_num(const struct batch_runner *r, const char *name);
/* The store failed mid-step: the batch goes back (its lease brings it back later). */
void runner_abandon(struct batch_runner *r, const char *why);
/* Keeps the lease while a long phase runs. */
void runner_renew(struct batch_runner *r);
/*
 * The batch's tasks task_ids (n of them; borrowed for the call) start their retention now (BATCH's
 * release op; nobody waits for the answer). 0, or a negative code when it could not be sent.
 */
int runner_release(struct batch_runner *r, const char *const *task_ids, size_t n);
/* Ends the batch with r->final_status (errors: a JSON list object, or NULL) and its webhook. */
void runner_finish(struct batch_runner *r, const char *errors);

/* ---- batch_lines.c ---- */
/* Reads the next line (without its newline) into r->line, at most limits.max_body_bytes of it
 * kept (r->line_too_long says more was there). Returns 1, or 0 at the end of the file. */
int batch_line_read(struct batch_runner *r);
/* The line holds only blanks (skipped, not a request). */
bool batch_line_blank(const struct batch_runner *r);
/*
 * Checks the current line: a JSON object {custom_id, method: "POST", url: the batch's endpoint,
 * body} whose body is a valid request for a model of the endpoint's kind. On success *root owns
 * the parse and *body, *model, *custom_id point into it; returns 0. Else fills le, returns -1.
 */
int batch_line_check(struct batch_runner *r, cJSON **root, const cJSON **body,
                     const struct config_model **model, const char **custom_id,
                     struct line_err *le);

/* ---- batch_output.c ---- */
/* Every task is done: opens the output and error files and starts reading the tasks back. */
void batch_final_start(struct batch_runner *r);
/* One step of that: RUNNER_CHUNK tasks read, written, and released to their retention. */
void batch_final_step(struct batch_runner *r);

#endif
