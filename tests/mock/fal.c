/*
 * tests/mock/fal.c — the fal queue at /fal: submit to /fal/{model_id} (ids contain slashes, e.g.
 * fal-ai/flux/dev), then status, result and cancel under /fal/{app}/requests/{id}. As the real
 * queue does, the returned URLs name the app (owner/name) without the model's subpath, so a client
 * must use them verbatim; any prefix is accepted on the way back. Auth `Authorization: Key K`.
 * Output files point at /_mock/blob, or at the artifact_url switch when it is set.
 * Errors: {"detail":[{loc,msg,type,url}]} with X-Fal-Retryable.
 */
#include <stdio.h>
#include <string.h>

#include "tests/mock/mock.h"

static const char *fal_error_type(int status)
{
    static const struct {
        int status;
        const char *type;
    } types[] = {
        {400, "bad_request"},
        {401, "unauthorized"},
        {403, "forbidden"},
        {404, "not_found"},
        {422, "value_error"},
        {429, "rate_limited"},
        {499, "client_cancelled"},
        {500, "internal_server_error"},
        {503, "downstream_service_unavailable"},
        {504, "generation_timeout"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (types[i].status == status) {
            return types[i].type;
        }
    }
    return status >= 500 ? "internal_server_error" : "bad_request";
}

/* retryable < 0: by status (429 and 5xx retry). */
static int fal_envelope(struct exchange *x, int status, const char *type, const char *message,
                        int retryable)
{
    struct evbuffer *out = mock_out_body(x);
    type = type != NULL ? type : fal_error_type(status);
    if (retryable < 0) {
        retryable = status == 429 || status >= 500;
    }
    if (status == 429) {
        faults_retry_after_header(x);
    }
    mock_out_header(x, "X-Fal-Retryable", retryable ? "true" : "false");
    evbuffer_drain(out, (size_t)-1);
    evbuffer_add_printf(out, "{\"detail\":[{\"loc\":[\"body\"],\"msg\":");
    mock_json_string(out, message);
    evbuffer_add_printf(out, ",\"type\":\"%s\",\"url\":\"https://docs.fal.ai/errors/#%s\"}]}", type,
                        type);
    return status;
}

static int fal_error(struct exchange *x, int status, const char *type, const char *message,
                     const char *code)
{
    (void)code;
    return fal_envelope(x, status, type, message, -1);
}

static int fal_auth(struct exchange *x)
{
    const char *key = x->m->api_key;
    const char *got = mock_in_header(x, "Authorization");
    if (key == NULL || (got != NULL && strncmp(got, "Key ", 4) == 0 && strcmp(got + 4, key) == 0)) {
        return ANSWER_PASS;
    }
    return fal_envelope(x, 401, NULL, "No valid credentials were provided.", 0);
}

static int fal_rate_limited(struct exchange *x, double reset_s)
{
    (void)reset_s;
    return fal_envelope(x, 429, NULL, "mock: too many requests", 1);
}

const struct dialect dialect_fal = {
    .name = "fal",
    .request_id_header = "x-fal-request-id",
    .auth = fal_auth,
    .error = fal_error,
    .rate_limited = fal_rate_limited,
    .broken_body = "{\"request_id\":\"broken\",\"status_url\":\"http",
};

/* The app part of a model id: "fal-ai/flux/dev" -> "fal-ai/flux". */
static int app_len(const char *model)
{
    const char *slash = strchr(model, '/');
    slash = slash != NULL ? strchr(slash + 1, '/') : NULL;
    return slash != NULL ? (int)(slash - model) : (int)strlen(model);
}

/* "ORIGIN/fal/APP/requests/ID" into out, as the inside of a JSON string. */
static void request_url(struct evbuffer *out, struct exchange *x, const struct job *j,
                        const char *suffix)
{
    char origin[300];
    mock_origin(x, origin, sizeof(origin));
    mock_json_escape(out, origin, strlen(origin));
    evbuffer_add_printf(out, "/fal/");
    mock_json_escape(out, j->model, (size_t)app_len(j->model));
    evbuffer_add_printf(out, "/requests/%s%s", j->id, suffix);
}

static void urls_json(struct evbuffer *out, struct exchange *x, const struct job *j)
{
    evbuffer_add_printf(out, "\"response_url\":\"");
    request_url(out, x, j, "");
    evbuffer_add_printf(out, "\",\"status_url\":\"");
    request_url(out, x, j, "/status");
    evbuffer_add_printf(out, "\",\"cancel_url\":\"");
    request_url(out, x, j, "/cancel");
    evbuffer_add_printf(out, "\"");
}

/* POST /fal/{model_id}: the body is the model's input. */
int fal_submit(struct exchange *x)
{
    char model[256];
    cJSON *root = x->body != NULL ? mock_body_json(x) : cJSON_CreateObject();
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return fal_envelope(x, 422, "dict_type", "Input should be a valid dictionary", 0);
    }
    static const char *const edit_fields[] = {"image_url", "image_urls", "mask_url"};
    if (mock_edit_uris(x, root, edit_fields, sizeof(edit_fields) / sizeof(edit_fields[0])) != 0) {
        cJSON_Delete(root);
        return fal_envelope(x, 422, "value_error", "mock: a data: URI that does not decode", 0);
    }
    mock_cap(x, 0, model, sizeof(model));
    struct job *j = jobs_add(x->m, JOB_FAL, model);
    const char *prompt = mock_json_str(root, "prompt", NULL);
    if (j == NULL || jobs_set(&j->prompt, prompt, MOCK_PROMPT_KEEP) < 0) {
        cJSON_Delete(root);
        return fal_envelope(x, 503, NULL, "mock: job store full", 1);
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "num_images");
    if (cJSON_IsNumber(n)) {
        j->n = n->valuedouble < 1            ? 1
               : n->valuedouble > MOCK_MAX_N ? MOCK_MAX_N
                                             : (int)n->valuedouble;
    }
    j->fail = jobs_prompt_fails(prompt);
    j->video = strstr(model, "video") != NULL;
    cJSON_Delete(root);

    struct job_view v;
    struct evbuffer *out = mock_out_body(x);
    jobs_view(j, j->created_mono_ms, &v);
    evbuffer_add_printf(out, "{\"status\":\"IN_QUEUE\",\"request_id\":\"%s\",", j->id);
    urls_json(out, x, j);
    evbuffer_add_printf(out, ",\"queue_position\":%d}", v.queue_position);
    return 200;
}

static struct job *request_find(struct exchange *x)
{
    return x->n_caps >= 2 ? jobs_find(x->m, JOB_FAL, x->cap[1].s, x->cap[1].n) : NULL;
}

static int request_not_found(struct exchange *x)
{
    return fal_envelope(x, 404, NULL, "Request not found", 0);
}

/* Log lines "NN%" for each 10% reached, timestamped when that progress was reached. */
static void logs_json(struct evbuffer *out, const struct job *j, int progress)
{
    char when[40];
    evbuffer_add_printf(out, ",\"logs\":[");
    for (int p = 10, first = 1; p <= progress; p += 10, first = 0) {
        mock_iso8601(when, sizeof(when), j->created_wall_ms + j->duration_ms * p / 100);
        evbuffer_add_printf(out,
                            "%s{\"message\":\"%d%%\",\"level\":\"INFO\",\"source\":\"user\","
                            "\"timestamp\":\"%s\"}",
                            first ? "" : ",", p, when);
    }
    evbuffer_add_printf(out, "]");
}

/* GET /fal/{app}/requests/{id}/status */
int fal_status(struct exchange *x)
{
    struct job *j = request_find(x);
    struct job_view v;
    if (j == NULL) {
        return request_not_found(x);
    }
    struct evbuffer *out = mock_out_body(x);
    jobs_view(j, mock_monotonic_ms(), &v);
    static const char *const names[] = {
        [PHASE_QUEUED] = "IN_QUEUE",  [PHASE_RUNNING] = "IN_PROGRESS", [PHASE_DONE] = "COMPLETED",
        [PHASE_FAILED] = "COMPLETED", [PHASE_CANCELED] = "COMPLETED",
    };
    evbuffer_add_printf(out, "{\"status\":\"%s\",\"request_id\":\"%s\",", names[v.phase], j->id);
    urls_json(out, x, j);
    if (v.phase == PHASE_QUEUED) {
        evbuffer_add_printf(out, ",\"queue_position\":%d}", v.queue_position);
        return 200;
    }
    logs_json(out, j, v.progress);
    if (v.phase == PHASE_FAILED) {
        evbuffer_add_printf(out, ",\"error\":\"mock: generation failed (the prompt asked for "
                                 "mock:fail)\",\"error_type\":\"runner_server_error\"");
    } else if (v.phase == PHASE_CANCELED) {
        evbuffer_add_printf(out, ",\"error\":\"mock: request was cancelled\","
                                 "\"error_type\":\"client_cancelled\"");
    }
    if (v.phase != PHASE_RUNNING) {
        evbuffer_add_printf(out, ",\"metrics\":{\"inference_time\":%.3f}",
                            (double)(v.ended_wall_ms - j->created_wall_ms) / 1000.0);
    }
    evbuffer_add_printf(out, "}");
    return 200;
}

/* An output file's URL, quoted: ORIGIN/_mock/blob/NAME, or the artifact_url switch verbatim. */
static void output_url(struct evbuffer *out, struct exchange *x, const char *origin,
                       const char *name)
{
    if (x->m->config.artifact_url != NULL) {
        mock_json_string(out, x->m->config.artifact_url);
        return;
    }
    evbuffer_add_printf(out, "\"");
    mock_json_escape(out, origin, strlen(origin));
    evbuffer_add_printf(out, "/_mock/blob/");
    mock_json_escape(out, name, strlen(name));
    evbuffer_add_printf(out, "\"");
}

/* GET /fal/{app}/requests/{id}: the model's output once COMPLETED. */
int fal_result(struct exchange *x)
{
    struct job *j = request_find(x);
    struct job_view v;
    char origin[300], name[80];
    if (j == NULL) {
        return request_not_found(x);
    }
    jobs_view(j, mock_monotonic_ms(), &v);
    if (v.phase == PHASE_QUEUED || v.phase == PHASE_RUNNING) {
        return fal_envelope(x, 400, "request_in_progress", "Request is still in progress", 0);
    }
    if (v.phase == PHASE_FAILED) {
        mock_out_header(x, "X-Fal-Error-Type", "runner_server_error");
        return fal_envelope(x, 500, NULL,
                            "mock: generation failed (the prompt asked for mock:fail)", 0);
    }
    if (v.phase == PHASE_CANCELED) {
        mock_out_header(x, "X-Fal-Error-Type", "client_cancelled");
        return fal_envelope(x, 499, NULL, "mock: request was cancelled", 0);
    }
    struct evbuffer *out = mock_out_body(x);
    mock_origin(x, origin, sizeof(origin));
    if (j->video) {
        snprintf(name, sizeof(name), "%s.mp4", j->id);
        evbuffer_add_printf(out, "{\"video\":{\"url\":");
        output_url(out, x, origin, name);
        evbuffer_add_printf(out,
                            ",\"content_type\":\"video/mp4\","
                            "\"file_name\":\"%s.mp4\",\"file_size\":%d}",
                            j->id, MOCK_MP4_BYTES);
    } else {
        evbuffer_add_printf(out, "{\"images\":[");
        for (int i = 0; i < j->n; i++) {
            snprintf(name, sizeof(name), "%s-%d.png", j->id, i);
            evbuffer_add_printf(out, "%s{\"url\":", i > 0 ? "," : "");
            output_url(out, x, origin, name);
            evbuffer_add_printf(out,
                                ",\"width\":%d,\"height\":%d,"
                                "\"content_type\":\"image/png\"}",
                                MOCK_PNG_SIDE, MOCK_PNG_SIDE);
        }
        evbuffer_add_printf(out, "],\"has_nsfw_concepts\":[");
        for (int i = 0; i < j->n; i++) {
            evbuffer_add_printf(out, "%sfalse", i > 0 ? "," : "");
        }
        evbuffer_add_printf(out, "],\"seed\":%llu",
                            (unsigned long long)(mock_hash(j->id, strlen(j->id)) >> 33));
    }
    evbuffer_add_printf(
        out, ",\"timings\":{\"inference\":%.3f},\"prompt\":", (double)j->duration_ms / 1000.0);
    mock_json_string(out, j->prompt);
    evbuffer_add_printf(out, "}");
    return 200;
}

/* PUT /fal/{app}/requests/{id}/cancel */
int fal_cancel(struct exchange *x)
{
    struct job *j = request_find(x);
    struct job_view v;
    if (j == NULL) {
        return request_not_found(x);
    }
    int64_t now = mock_monotonic_ms();
    jobs_view(j, now, &v);
    if (v.phase != PHASE_QUEUED && v.phase != PHASE_RUNNING) {
        evbuffer_add_printf(mock_out_body(x), "{\"status\":\"ALREADY_COMPLETED\"}");
        return 400;
    }
    j->canceled_mono_ms = now;
    evbuffer_add_printf(mock_out_body(x), "{\"status\":\"CANCELLATION_REQUESTED\"}");
    return 202;
}
