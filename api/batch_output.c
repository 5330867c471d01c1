/*
 * api/batch_output.c — a finished batch's output and error files: its tasks read back in chunks
 * (ids from the batch and the line), one line each in OpenAI's batch output format, the files
 * handed to the Files store, then the batch ended (see api/batch_runner.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/batch_runner.h"
#include "api/files.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/store.h"
#include "core/task.h"
#include "core/util.h"

/* One finalization read: which task it is. */
struct slot {
    struct batch_runner *r;
    long long ordinal;
    char id[64];
};

static void write_line(struct batch_file *file, cJSON *line)
{
    char *text = cJSON_PrintUnformatted(line);
    if (text) {
        fputs(text, file->f);
        fputc('\n', file->f);
        file->lines++;
    }
    cJSON_free(text);
    cJSON_Delete(line);
}

/* One task's line: into the output file when it completed, else into the error file. */
static void write_result(struct batch_runner *r, const struct slot *s, const redisReply *f)
{
    const char *status = f->element[0]->type == REDIS_REPLY_STRING ? f->element[0]->str : NULL;
    const char *custom_id = f->element[1]->type == REDIS_REPLY_STRING ? f->element[1]->str : NULL;
    const char *result = f->element[2]->type == REDIS_REPLY_STRING ? f->element[2]->str : NULL;
    const char *error = f->element[3]->type == REDIS_REPLY_STRING ? f->element[3]->str : NULL;
    cJSON *line = cJSON_CreateObject();
    char req_id[80];

    /* the id's random part, after its kind's prefix ("task_", "resp_") */
    snprintf(req_id, sizeof(req_id), "batch_req_%s",
             strchr(s->id, '_') ? strchr(s->id, '_') + 1 : s->id);
    cJSON_AddStringToObject(line, "id", req_id);
    if (custom_id) {
        cJSON_AddStringToObject(line, "custom_id", custom_id);
    } else {
        cJSON_AddNullToObject(line, "custom_id");
    }
    if (status && strcmp(status, "completed") == 0 && result) {
        cJSON *resp = cJSON_AddObjectToObject(line, "response");
        cJSON_AddNumberToObject(resp, "status_code", 200);
        cJSON_AddStringToObject(resp, "request_id", s->id);
        cJSON_AddRawToObject(resp, "body", result);
        cJSON_AddNullToObject(line, "error");
        write_line(&r->files[BATCH_OUTPUT], line);
        return;
    }
    {
        cJSON *e = error ? cJSON_Parse(error) : NULL;
        const cJSON *ps = cJSON_GetObjectItemCaseSensitive(e, "provider_status");
        const cJSON *code = cJSON_GetObjectItemCaseSensitive(e, "code");
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(e, "message");
        const char *end = runner_field(r, "end");

        if (cJSON_IsNumber(ps)) {
            /* the provider answered with an error: its answer, as OpenAI's batches show it */
            cJSON *resp = cJSON_AddObjectToObject(line, "response");
            cJSON *body = cJSON_AddObjectToObject(resp, "body");
            cJSON_AddNumberToObject(resp, "status_code", ps->valuedouble);
            cJSON_AddStringToObject(resp, "request_id", s->id);
            cJSON_DeleteItemFromObject(e, "retryable");
            cJSON_DeleteItemFromObject(e, "provider_status");
            cJSON_AddItemToObject(body, "error", e);
            cJSON_AddNullToObject(line, "error");
        } else {
            cJSON *err = cJSON_CreateObject();
            const char *c = cJSON_IsString(code) ? code->valuestring : NULL;
            if (status == NULL) {
                c = "task_missing";
            } else if (strcmp(status, "cancelled") == 0 || strcmp(status, "expired") == 0) {
                c = end && strcmp(end, "expired") == 0 ? "batch_expired" : "batch_cancelled";
            }
            cJSON_AddNullToObject(line, "response");
            cJSON_AddStringToObject(err, "code", c ? c : "request_failed");
            cJSON_AddStringToObject(err, "message",
                                    cJSON_IsString(msg) ? msg->valuestring
                                    : status == NULL    ? "The request's task is gone"
                                    : strcmp(c, "batch_expired") == 0
                                        ? "The batch expired before this request ran"
                                        : "The request did not complete");
            cJSON_AddItemToObject(line, "error", err);
            cJSON_Delete(e);
        }
    }
    write_line(&r->files[BATCH_ERRORS], line);
}

static void final_files(struct batch_runner *r);

/* One read of the step is in (or could not be sent). */
static void read_done(struct batch_runner *r)
{
    if (--r->waiting > 0) {
        return;
    }
    if (r->fail_ordinal != 0) {
        runner_abandon(r, "cannot read the batch's tasks");
    } else if (r->next > r->last) {
        final_files(r);
    } else {
        runner_schedule(r);
    }
}

static void on_task_read(redisReply *reply, const struct core_err *err, void *arg)
{
    struct slot *s = arg;
    struct batch_runner *r = s->r;

    if (err != NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 4) {
        r->fail_ordinal = s->ordinal;
    } else if (r->fail_ordinal == 0) {
        write_result(r, s, reply);
    }
    free(s);
    read_done(r);
}

void batch_final_step(struct batch_runner *r)
{
    const char *rel[RUNNER_CHUNK];
    char ids[RUNNER_CHUNK][64];
    size_t n_rel = 0;

    r->waiting = 1; /* held while the step is sent */
    for (int n = 0; n < RUNNER_CHUNK && r->next <= r->last; n++, r->next++) {
        struct slot *s = calloc(1, sizeof(*s));
        char key[96]; /* the prefix (<= 36 bytes), KS_TASK and a task id */
        if (s == NULL || api_batch_task_id(r->id, r->kind, r->next, s->id, sizeof(s->id)) < 0) {
            free(s);
            r->fail_ordinal = r->next;
            continue;
        }
        s->r = r;
        s->ordinal = r->next;
        keyspace_key(store_keys(r->api->store), key, sizeof(key), KS_TASK, s->id);
        snprintf(ids[n], sizeof(ids[n]), "%s", s->id);
        rel[n_rel++] = ids[n];
        const char *argv[] = {"HMGET", key, "status", "custom_id", "result", "error"};
        if (store_command(r->api->store, on_task_read, s, 6, argv, NULL) < 0) {
            free(s);
            r->fail_ordinal = r->next;
            continue;
        }
        r->waiting++;
    }
    /* The tasks read in this step start their retention now (Redis runs it after the reads). */
    if (r->fail_ordinal == 0 && n_rel > 0) {
        runner_release(r, rel, n_rel);
    }
    runner_renew(r);
    read_done(r);
}

/* Ends a batch whose tasks are all done, with its files stored. */
static void finish_final(struct batch_runner *r)
{
    if (strcmp(r->final_status, "failed") == 0) {
        runner_finish(r,
                      "{\"object\":\"list\",\"data\":[{\"code\":\"file_not_found\",\"line\":null,"
                      "\"message\":\"The input file was deleted before every request was "
                      "submitted\",\"param\":\"input_file_id\"}]}");
    } else {
        runner_finish(r, NULL);
    }
}

static void store_next(struct batch_runner *r);

static void on_stored(void *arg, const char *file_id, const struct core_err *err)
{
    struct batch_runner *r = arg;
    struct batch_file *file = &r->files[r->storing];

    r->waiting = 0;
    if (err != NULL) {
        runner_abandon(r, err->message);
        return;
    }
    file->path[0] = '\0'; /* the store's now */
    snprintf(file->id, sizeof(file->id), "%s", file_id);
    r->storing++;
    store_next(r);
}

/* Hands the next non-empty file to the Files store; when none is left, ends the batch. */
static void store_next(struct batch_runner *r)
{
    static const char *const suffixes[BATCH_FILES] = {"output", "error"};
    char name[96];

    while (r->storing < BATCH_FILES && r->files[r->storing].lines == 0) {
        r->storing++;
    }
    if (r->storing == BATCH_FILES) {
        finish_final(r);
        return;
    }
    snprintf(name, sizeof(name), "%s_%s.jsonl", r->id, suffixes[r->storing]);
    if (api_files_create_from_path(r->api, r->tenant, "batch_output", name,
                                   r->files[r->storing].path, r->files[r->storing].bytes, on_stored,
                                   r) < 0) {
        runner_abandon(r, "cannot store a batch file");
        return;
    }
    r->waiting = 1;
}

static void final_files(struct batch_runner *r)
{
    bool ok = true;

    for (int i = 0; i < BATCH_FILES; i++) {
        r->files[i].bytes = ftello(r->files[i].f);
        ok &= r->files[i].bytes >= 0;
        ok &= fclose(r->files[i].f) == 0; /* flushes: a full disk shows here */
        r->files[i].f = NULL;
    }
    if (!ok) {
        runner_abandon(r, "cannot write the batch's files");
        return;
    }
    r->storing = 0;
    store_next(r);
}

void batch_final_start(struct batch_runner *r)
{
    const char *end = runner_field(r, "end");

    snprintf(r->final_status, sizeof(r->final_status), "%s", end ? end : "completed");
    for (int i = 0; i < BATCH_FILES; i++) {
        struct batch_file *file = &r->files[i];
        if (api_files_tmp_path(r->api, file->path, sizeof(file->path)) < 0 ||
            (file->f = fopen(file->path, "w")) == NULL) {
            file->path[0] = '\0';
            runner_abandon(r, "cannot create a batch file");
            return;
        }
    }
    r->phase = PH_FINAL;
    r->next = 1;
    r->last = runner_field_num(r, "expanded");
    r->fail_ordinal = 0;
    runner_schedule(r);
}
