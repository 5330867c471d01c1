/*
 * tests/mock/fal.c — the fal queue at /fal: submit to /fal/{model_id} (ids contain slashes, e.g.
 * fal-ai/flux/dev), then status, result and cancel under /fal/{app}/requests/{id}. As the real
 * queue does, the returned URLs name the app (owner/name) without the model's subpath, so a client
 * must use them verbatim; any prefix is accepted on the way back. Auth `Authorization: Key K`.
 * Output files point at /_mock/blob, or at the artifact_url switch when it is set.
 * Errors: {"detail":[{loc,msg,type,url}]} with X-Fal-Retryable. A video model's image_url (its
 * first frame) is recorded for GET /_mock/video_inputs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

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

/* An output file's URL, quoted: ORIGIN/_mock/blob/NAME, or the artifact_url switch verbatim. */
static void output_url(struct evbuffer *out, const struct mock *m, const char *origin,
                       const char *name)
{
    if (m->config.artifact_url != NULL) {
        mock_json_string(out, m->config.artifact_url);
        return;
    }
    evbuffer_add_printf(out, "\"");
    mock_json_escape(out, origin, strlen(origin));
    evbuffer_add_printf(out, "/_mock/blob/");
    mock_json_escape(out, name, strlen(name));
    evbuffer_add_printf(out, "\"");
}

/* The model's output of completed job j (its files under origin) into out. */
static void result_write(struct evbuffer *out, const struct mock *m, const char *origin,
                         const struct job *j)
{
    char name[80];

    if (j->video) {
        snprintf(name, sizeof(name), "%s.mp4", j->id);
        evbuffer_add_printf(out, "{\"video\":{\"url\":");
        output_url(out, m, origin, name);
        evbuffer_add_printf(out,
                            ",\"content_type\":\"video/mp4\","
                            "\"file_name\":\"%s.mp4\",\"file_size\":%d}",
                            j->id, MOCK_MP4_BYTES);
    } else {
        evbuffer_add_printf(out, "{\"images\":[");
        for (int i = 0; i < j->n; i++) {
            snprintf(name, sizeof(name), "%s-%d.png", j->id, i);
            evbuffer_add_printf(out, "%s{\"url\":", i > 0 ? "," : "");
            output_url(out, m, origin, name);
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
}

/* ---- webhooks: a request submitted with `fal_webhook` POSTs its result there when it ends ---- */

void fal_hooks_cleanup(struct mock *m)
{
    mock_hooks_cleanup(m, JOB_FAL);
}

static int hex_digit(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int fal_webhook_key_parse(const char *text, unsigned char *seed)
{
    size_t n = strlen(text);
    unsigned char raw[48];
    char b64[48];

    if (n == 64) {
        for (size_t i = 0; i < 32; i++) {
            int hi = hex_digit(text[2 * i]), lo = hex_digit(text[2 * i + 1]);
            if (hi < 0 || lo < 0) {
                return -1;
            }
            seed[i] = (unsigned char)(hi << 4 | lo);
        }
        return 0;
    }
    /* base64 or base64url of 32 bytes: 43 characters, and '=' */
    if (n == 44 && text[43] == '=') {
        n = 43;
    }
    if (n != 43) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        b64[i] = text[i] == '-' ? '+' : text[i] == '_' ? '/' : text[i];
    }
    b64[43] = '=';
    if (EVP_DecodeBlock(raw, (const unsigned char *)b64, 44) != 33) {
        return -1;
    }
    memcpy(seed, raw, 32);
    OPENSSL_cleanse(raw, sizeof(raw));
    return 0;
}

/*
 * fal's signature of a webhook: hex of the ED25519 signature (with the mock's seed) of request id,
 * user id, timestamp and the hex SHA-256 of body, joined by "\n", into out (129 bytes). 0 or -1.
 */
static int fal_hook_sign(const struct mock *m, const char *request_id, const char *user_id,
                         const char *ts, const unsigned char *body, size_t len, char *out)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char digest[32], sig[64];
    unsigned int digest_len = 0;
    size_t sig_len = sizeof(sig);
    char hex[65], msg[512];
    EVP_PKEY *pk = NULL;
    EVP_MD_CTX *ctx = NULL;
    int n, rc = -1;

    if (EVP_Digest(body, len, digest, &digest_len, EVP_sha256(), NULL) != 1) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(digest); i++) {
        hex[2 * i] = digits[digest[i] >> 4];
        hex[2 * i + 1] = digits[digest[i] & 15];
    }
    hex[64] = '\0';
    n = snprintf(msg, sizeof(msg), "%s\n%s\n%s\n%s", request_id, user_id, ts, hex);
    if (n < 0 || (size_t)n >= sizeof(msg) ||
        (pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, m->fal_webhook_key, 32)) ==
            NULL ||
        (ctx = EVP_MD_CTX_new()) == NULL || EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) != 1 ||
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)msg, (size_t)n) != 1 ||
        sig_len != sizeof(sig)) {
        goto out;
    }
    for (size_t i = 0; i < sizeof(sig); i++) {
        out[2 * i] = digits[sig[i] >> 4];
        out[2 * i + 1] = digits[sig[i] & 15];
    }
    out[128] = '\0';
    rc = 0;
out:
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rc;
}

/* fal's webhook body for job j as of now: {request_id, gateway_request_id, status "OK" and the
 * result as payload, or "ERROR" with error and a payload of error details}. */
static void fal_hook_body(struct evbuffer *out, const struct mock *m, const char *origin,
                          const struct job *j)
{
    struct job_view v;

    jobs_view(j, mock_monotonic_ms(), &v);
    evbuffer_add_printf(out, "{\"request_id\":\"%s\",\"gateway_request_id\":\"%s\",", j->id, j->id);
    if (v.phase == PHASE_DONE) {
        evbuffer_add_printf(out, "\"status\":\"OK\",\"payload\":");
        result_write(out, m, origin, j);
    } else {
        const char *msg = v.phase == PHASE_CANCELED ? "mock: request was cancelled"
                                                    : "mock: generation failed (the prompt asked "
                                                      "for mock:fail)";
        evbuffer_add_printf(out, "\"status\":\"ERROR\",\"error\":");
        mock_json_string(out, msg);
        evbuffer_add_printf(out, ",\"payload\":{\"detail\":[{\"loc\":[\"body\"],\"msg\":");
        mock_json_string(out, msg);
        evbuffer_add_printf(out, ",\"type\":\"%s\"}]}",
                            v.phase == PHASE_CANCELED ? "client_cancelled" : "runner_server_error");
    }
    evbuffer_add_printf(out, "}");
}

/*
 * fal's part of a webhook (a mock_hook_write_fn): the body for the ended job, signed with the
 * X-Fal-Webhook-* headers. The timestamp is Unix seconds; the user id is always "mock-user".
 */
static int fal_hook_write(struct mock *m, const struct job *j, const char *origin,
                          struct evbuffer *body, struct evkeyvalq *headers)
{
    char ts[24], sig[129];

    snprintf(ts, sizeof(ts), "%lld", (long long)(mock_wall_ms() / 1000));
    fal_hook_body(body, m, origin, j);
    size_t len = evbuffer_get_length(body);
    const unsigned char *bytes = evbuffer_pullup(body, (ev_ssize_t)len);
    if (bytes == NULL || fal_hook_sign(m, j->id, "mock-user", ts, bytes, len, sig) != 0) {
        return -1;
    }
    evhttp_add_header(headers, "X-Fal-Webhook-Request-Id", j->id);
    evhttp_add_header(headers, "X-Fal-Webhook-User-Id", "mock-user");
    evhttp_add_header(headers, "X-Fal-Webhook-Timestamp", ts);
    evhttp_add_header(headers, "X-Fal-Webhook-Signature", sig);
    return 0;
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
    /* a video model's first frame (image-to-video) is its image_url, recorded for
     * /_mock/video_inputs */
    struct mock_video_ref ref;
    if (mock_video_ref_read(strstr(model, "video") != NULL ? mock_json_str(root, "image_url", NULL)
                                                           : NULL,
                            &ref) < 0) {
        cJSON_Delete(root);
        mock_video_ref_cleanup(&ref);
        return fal_envelope(x, 422, "value_error", "mock: image_url does not decode", 0);
    }
    struct job *j = jobs_add(x->m, JOB_FAL, model);
    const char *prompt = mock_json_str(root, "prompt", NULL);
    if (j == NULL || jobs_set(&j->prompt, prompt, MOCK_PROMPT_KEEP) < 0) {
        cJSON_Delete(root);
        mock_video_ref_cleanup(&ref);
        return fal_envelope(x, 503, NULL, "mock: job store full", 1);
    }
    mock_video_ref_record("fal", j->id, &ref);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "num_images");
    if (cJSON_IsNumber(n)) {
        j->n = n->valuedouble < 1            ? 1
               : n->valuedouble > MOCK_MAX_N ? MOCK_MAX_N
                                             : (int)n->valuedouble;
    }
    j->fail = jobs_prompt_fails(prompt);
    j->video = strstr(model, "video") != NULL;
    cJSON_Delete(root);
    /* fal_webhook (percent-encoded in the query): armed only with --fal-webhook-key */
    char hook_q[8192];
    if (x->m->has_fal_webhook_key && mock_query(x, "fal_webhook", hook_q, sizeof(hook_q)) != NULL) {
        char *hook_url = evhttp_uridecode(hook_q, 0, NULL);
        int hrc = hook_url != NULL ? mock_hook_add(x, j, hook_url, fal_hook_write) : -1;
        free(hook_url);
        if (hrc != 0) {
            jobs_remove(x->m, j);
            return hrc > 0 ? fal_envelope(x, 422, "value_error",
                                          "mock: fal_webhook must be an http loopback URL", 0)
                           : fal_envelope(x, 503, NULL, "mock: out of memory", 1);
        }
    }

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

/* GET /fal/{app}/requests/{id}: the model's output once COMPLETED. */
int fal_result(struct exchange *x)
{
    struct job *j = request_find(x);
    struct job_view v;
    char origin[300];
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
    mock_origin(x, origin, sizeof(origin));
    result_write(mock_out_body(x), x->m, origin, j);
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
