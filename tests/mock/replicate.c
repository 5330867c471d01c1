/*
 * tests/mock/replicate.c — Replicate predictions at /replicate/v1: create (by model or by
 * version, with Prefer: wait), poll, cancel. Output URLs point at /_mock/blob, or at the
 * artifact_url switch when it is set. Errors are problem details: {"title","detail","status"}.
 * A video model's first frame (first_frame_image, start_image or image) is recorded for GET
 * /_mock/video_inputs.
 */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "tests/mock/mock.h"

static const char *replicate_title(int status)
{
    static const struct {
        int status;
        const char *title;
    } titles[] = {
        {400, "Bad request"},
        {401, "Unauthenticated"},
        {402, "Payment required"},
        {403, "Forbidden"},
        {404, "Not found"},
        {409, "Conflict"},
        {422, "Invalid input"},
        {429, "Request was throttled"},
        {500, "Internal server error"},
        {503, "Service unavailable"},
    };
    for (size_t i = 0; i < sizeof(titles) / sizeof(titles[0]); i++) {
        if (titles[i].status == status) {
            return titles[i].title;
        }
    }
    return status >= 500 ? "Internal server error" : "Bad request";
}

static int replicate_error(struct exchange *x, int status, const char *type, const char *message,
                           const char *code)
{
    struct evbuffer *out = mock_out_body(x);
    (void)code;
    if (status == 429) {
        faults_retry_after_header(x);
    }
    evbuffer_drain(out, (size_t)-1);
    evbuffer_add_printf(out, "{\"title\":");
    mock_json_string(out, type != NULL ? type : replicate_title(status));
    evbuffer_add_printf(out, ",\"detail\":");
    mock_json_string(out, message);
    evbuffer_add_printf(out, ",\"status\":%d}", status);
    return status;
}

/* Bearer is today's scheme; Token is the older one, still accepted. */
static int replicate_auth(struct exchange *x)
{
    const char *key = x->m->api_key;
    const char *got = mock_in_header(x, "Authorization");
    if (key == NULL ||
        (got != NULL && ((strncmp(got, "Bearer ", 7) == 0 && strcmp(got + 7, key) == 0) ||
                         (strncmp(got, "Token ", 6) == 0 && strcmp(got + 6, key) == 0)))) {
        return ANSWER_PASS;
    }
    return replicate_error(x, 401, NULL, "You did not pass a valid authentication token", NULL);
}

static int replicate_rate_limited(struct exchange *x, double reset_s)
{
    char detail[96];
    long s = (long)ceil(reset_s);
    s = s < 1 ? 1 : s;
    snprintf(detail, sizeof(detail), "Request was throttled. Expected available in %ld second%s.",
             s, s == 1 ? "" : "s");
    return replicate_error(x, 429, NULL, detail, NULL);
}

const struct dialect dialect_replicate = {
    .name = "replicate",
    .request_id_header = NULL,
    .auth = replicate_auth,
    .error = replicate_error,
    .rate_limited = replicate_rate_limited,
    .broken_body = "{\"id\":\"broken\",\"status\":\"succ",
};

static const char *prediction_status(enum job_phase phase)
{
    static const char *const names[] = {
        [PHASE_QUEUED] = "starting", [PHASE_RUNNING] = "processing", [PHASE_DONE] = "succeeded",
        [PHASE_FAILED] = "failed",   [PHASE_CANCELED] = "canceled",
    };
    return names[phase];
}

static void iso_or_null(struct evbuffer *out, const char *key, int64_t wall_ms)
{
    char buf[40];
    if (wall_ms < 0) {
        evbuffer_add_printf(out, ",\"%s\":null", key);
        return;
    }
    mock_iso8601(buf, sizeof(buf), wall_ms);
    evbuffer_add_printf(out, ",\"%s\":\"%s\"", key, buf);
}

/* tqdm-style progress lines, one per 10% reached: " 30%|###       | 30/100". */
static void prediction_logs(struct evbuffer *out, int progress)
{
    static const char bar[] = "##########          ";
    evbuffer_add_printf(out, ",\"logs\":\"mock: starting\\n");
    for (int p = 10; p <= progress; p += 10) {
        evbuffer_add_printf(out, "%3d%%|%.10s| %d/100\\n", p, bar + 10 - p / 10, p);
    }
    if (progress % 10 != 0) {
        evbuffer_add_printf(out, "%3d%%|%.10s| %d/100\\n", progress, bar + 10 - progress / 10,
                            progress);
    }
    evbuffer_add_printf(out, "\"");
}

/* The prediction object as of mono_ms into out, its URLs under origin. */
static void prediction_write(struct evbuffer *out, const struct mock *m, const char *origin,
                             const struct job *j, int64_t mono_ms)
{
    struct job_view v;
    jobs_view(j, mono_ms, &v);
    evbuffer_add_printf(out, "{\"id\":\"%s\",\"model\":", j->id);
    mock_json_string(out, j->model);
    evbuffer_add_printf(out, ",\"version\":");
    mock_json_string(out, j->version);
    evbuffer_add_printf(out, ",\"input\":%s", j->input != NULL ? j->input : "{}");
    if (v.phase == PHASE_QUEUED) {
        evbuffer_add_printf(out, ",\"logs\":\"\"");
    } else {
        prediction_logs(out, v.progress);
    }
    evbuffer_add_printf(out, ",\"output\":");
    if (v.phase != PHASE_DONE) {
        evbuffer_add_printf(out, "null");
    } else if (m->config.artifact_url != NULL) {
        /* the artifact_url switch: every output is that URL, verbatim */
        if (j->video) {
            mock_json_string(out, m->config.artifact_url);
        } else {
            evbuffer_add(out, "[", 1);
            for (int i = 0; i < j->n; i++) {
                if (i > 0) {
                    evbuffer_add(out, ",", 1);
                }
                mock_json_string(out, m->config.artifact_url);
            }
            evbuffer_add(out, "]", 1);
        }
    } else if (j->video) {
        evbuffer_add_printf(out, "\"");
        mock_json_escape(out, origin, strlen(origin));
        evbuffer_add_printf(out, "/_mock/blob/%s.mp4\"", j->id);
    } else {
        evbuffer_add_printf(out, "[");
        for (int i = 0; i < j->n; i++) {
            evbuffer_add_printf(out, "%s\"", i > 0 ? "," : "");
            mock_json_escape(out, origin, strlen(origin));
            evbuffer_add_printf(out, "/_mock/blob/%s-%d.png\"", j->id, i);
        }
        evbuffer_add_printf(out, "]");
    }
    evbuffer_add_printf(out, ",\"data_removed\":false,\"error\":");
    mock_json_string(out, v.phase == PHASE_FAILED
                              ? "mock: generation failed (the prompt asked for mock:fail)"
                              : NULL);
    evbuffer_add_printf(out, ",\"status\":\"%s\"", prediction_status(v.phase));
    iso_or_null(out, "created_at", j->created_wall_ms);
    iso_or_null(out, "started_at", v.started_wall_ms);
    iso_or_null(out, "completed_at", v.ended_wall_ms);
    evbuffer_add_printf(out, ",\"urls\":{\"cancel\":\"");
    mock_json_escape(out, origin, strlen(origin));
    evbuffer_add_printf(out, "/replicate/v1/predictions/%s/cancel\",\"get\":\"", j->id);
    mock_json_escape(out, origin, strlen(origin));
    evbuffer_add_printf(out,
                        "/replicate/v1/predictions/%s\",\"web\":\"https://replicate.com/p/%s\"}",
                        j->id, j->id);
    if (v.phase == PHASE_DONE) {
        double predict = (double)(v.ended_wall_ms - v.started_wall_ms) / 1000.0;
        double total = (double)(v.ended_wall_ms - j->created_wall_ms) / 1000.0;
        evbuffer_add_printf(out, ",\"metrics\":{\"predict_time\":%.3f,\"total_time\":%.3f}",
                            predict, total);
    }
    evbuffer_add_printf(out, "}");
}

/* The prediction object as of mono_ms (later than now for a Prefer: wait answer). */
static void prediction_json(struct exchange *x, const struct job *j, int64_t mono_ms)
{
    char origin[300];
    mock_origin(x, origin, sizeof(origin));
    prediction_write(mock_out_body(x), x->m, origin, j, mono_ms);
}

/* ---- webhooks: a prediction created with `webhook` POSTs itself there when it ends ---- */

void replicate_hooks_cleanup(struct mock *m)
{
    mock_hooks_cleanup(m, JOB_REPLICATE);
}

/*
 * "v1,<base64 HMAC-SHA256 of id.timestamp.body>" with the key of secret ("whsec_<base64>") into
 * out (at least 64 bytes), as Standard Webhooks (and Replicate) sign. -1 when the secret does not
 * decode or OpenSSL fails.
 */
static int hook_sign(const char *secret, const char *msg_id, long long ts,
                     const unsigned char *body, size_t len, char *out, size_t out_size)
{
    unsigned char key[256], mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    const char *b64 = secret + 6;
    size_t b64_len = strlen(b64);
    char head[160];
    int head_len = snprintf(head, sizeof(head), "%s.%lld.", msg_id, ts);
    int key_len;
    unsigned char *msg;

    if (b64_len == 0 || b64_len % 4 != 0 || b64_len / 4 * 3 > sizeof(key) || head_len < 0 ||
        (size_t)head_len >= sizeof(head) || out_size < 4 + 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1) {
        return -1;
    }
    key_len = EVP_DecodeBlock(key, (const unsigned char *)b64, (int)b64_len);
    if (key_len < 0) {
        return -1;
    }
    key_len -= (b64[b64_len - 1] == '=') + (b64[b64_len - 2] == '=');
    msg = malloc((size_t)head_len + len + 1);
    if (msg != NULL) {
        memcpy(msg, head, (size_t)head_len);
        if (len > 0) {
            memcpy(msg + head_len, body, len);
        }
    }
    int ok = msg != NULL &&
             HMAC(EVP_sha256(), key, key_len, msg, (size_t)head_len + len, mac, &mac_len) != NULL;
    free(msg);
    OPENSSL_cleanse(key, sizeof(key));
    if (!ok) {
        return -1;
    }
    memcpy(out, "v1,", 3);
    EVP_EncodeBlock((unsigned char *)out + 3, mac, (int)mac_len);
    return 0;
}

/*
 * Replicate's part of a webhook (a mock_hook_write_fn): the prediction as of now, signed the
 * Standard Webhooks way (webhook-id msg_mock_hook_<n>, webhook-timestamp, webhook-signature).
 * Sends nothing without --webhook-secret.
 */
static int replicate_hook_write(struct mock *m, const struct job *j, const char *origin,
                                struct evbuffer *body, struct evkeyvalq *headers)
{
    char msg_id[64], ts[24], sig[128];
    long long now_s = mock_wall_ms() / 1000;

    if (m->webhook_secret == NULL) {
        return -1;
    }
    snprintf(msg_id, sizeof(msg_id), "msg_mock_hook_%llu", m->webhooks_sent + 1);
    snprintf(ts, sizeof(ts), "%lld", now_s);
    prediction_write(body, m, origin, j, mock_monotonic_ms());
    size_t len = evbuffer_get_length(body);
    const unsigned char *bytes = evbuffer_pullup(body, (ev_ssize_t)len);
    if (bytes == NULL ||
        hook_sign(m->webhook_secret, msg_id, now_s, bytes, len, sig, sizeof(sig)) != 0) {
        return -1;
    }
    evhttp_add_header(headers, "webhook-id", msg_id);
    evhttp_add_header(headers, "webhook-timestamp", ts);
    evhttp_add_header(headers, "webhook-signature", sig);
    return 0;
}

/* A deterministic 64-hex version id for a model, like Replicate's. */
static void version_of(const char *model, char *buf, size_t len)
{
    uint64_t h = mock_hash(model, strlen(model));
    snprintf(buf, len, "%016llx%016llx%016llx%016llx", (unsigned long long)mock_mix64(h),
             (unsigned long long)mock_mix64(h + 1), (unsigned long long)mock_mix64(h + 2),
             (unsigned long long)mock_mix64(h + 3));
}

/* Prefer: wait[=N] asks to hold the answer up to N seconds (1..60, default 60). -1: not asked. */
static long prefer_wait_ms(struct exchange *x)
{
    const char *prefer = mock_in_header(x, "Prefer");
    const char *w = prefer != NULL ? strstr(prefer, "wait") : NULL;
    if (w == NULL) {
        return -1;
    }
    long s = w[4] == '=' ? strtol(w + 5, NULL, 10) : 60;
    return (s < 1 ? 1 : s > 60 ? 60 : s) * 1000L;
}

/*
 * Creates the prediction for model (owner/name) and version from the body's input. With
 * Prefer: wait the answer is held until the job ends or the wait runs out, and shows the
 * prediction as of that moment.
 */
static int prediction_create(struct exchange *x, const cJSON *root, const char *model,
                             const char *version)
{
    const cJSON *input = cJSON_GetObjectItemCaseSensitive(root, "input");
    if (!cJSON_IsObject(input)) {
        return replicate_error(x, 422, NULL, "- input: input is required", NULL);
    }
    static const char *const edit_fields[] = {"image", "mask"};
    if (mock_edit_uris(x, input, edit_fields, sizeof(edit_fields) / sizeof(edit_fields[0])) != 0) {
        return replicate_error(x, 422, NULL, "- input.image: a data: URI that does not decode",
                               NULL);
    }
    /* a video model's first frame, in the field its model names it, for /_mock/video_inputs */
    static const char *const ref_fields[] = {"first_frame_image", "start_image", "image"};
    const char *ref_text = NULL;
    for (size_t i = 0; strstr(model, "video") != NULL && ref_text == NULL &&
                       i < sizeof(ref_fields) / sizeof(ref_fields[0]);
         i++) {
        ref_text = mock_json_str(input, ref_fields[i], NULL);
    }
    struct mock_video_ref ref;
    if (mock_video_ref_read(ref_text, &ref) < 0) {
        mock_video_ref_cleanup(&ref);
        return replicate_error(x, 422, NULL, "- input: the first frame does not decode", NULL);
    }
    struct job *j = jobs_add(x->m, JOB_REPLICATE, model);
    if (j == NULL) {
        mock_video_ref_cleanup(&ref);
        return replicate_error(x, 503, NULL, "mock: job store full", NULL);
    }
    mock_video_ref_record("replicate", j->id, &ref);
    char *text = cJSON_PrintUnformatted(input);
    const char *prompt = mock_json_str(input, "prompt", NULL);
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(input, "num_outputs");
    int rc = jobs_set(&j->version, version, 128);
    if (rc == 0) {
        rc = jobs_set(&j->input,
                      text != NULL && strlen(text) <= MOCK_INPUT_KEEP ? text
                                                                      : "{\"mock_truncated\":true}",
                      MOCK_INPUT_KEEP);
    }
    if (rc == 0) {
        rc = jobs_set(&j->prompt, prompt, MOCK_PROMPT_KEEP);
    }
    cJSON_free(text);
    if (rc < 0) {
        jobs_remove(x->m, j);
        return replicate_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    if (cJSON_IsNumber(n)) {
        j->n = n->valuedouble < 1            ? 1
               : n->valuedouble > MOCK_MAX_N ? MOCK_MAX_N
                                             : (int)n->valuedouble;
    }
    j->fail = jobs_prompt_fails(prompt);
    j->video = strstr(model, "video") != NULL;
    const char *webhook = mock_json_str(root, "webhook", NULL);
    if (webhook != NULL && x->m->webhook_secret != NULL) {
        int hrc = mock_hook_add(x, j, webhook, replicate_hook_write);
        if (hrc != 0) {
            jobs_remove(x->m, j);
            return hrc > 0
                       ? replicate_error(x, 422, NULL,
                                         "- webhook: the mock calls only http loopback URLs", NULL)
                       : replicate_error(x, 500, NULL, "mock: out of memory", NULL);
        }
    }
    long wait = prefer_wait_ms(x);
    if (wait > 0) {
        x->hold_ms = wait < j->duration_ms ? wait : j->duration_ms;
    }
    prediction_json(x, j, j->created_mono_ms + x->hold_ms);
    return 201;
}

/* POST /replicate/v1/models/{owner}/{name}/predictions */
int replicate_create_model(struct exchange *x)
{
    char model[200], version[80];
    snprintf(model, sizeof(model), "%.*s/%.*s", (int)x->cap[0].n, x->cap[0].s, (int)x->cap[1].n,
             x->cap[1].s);
    cJSON *root = mock_body_json(x);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return replicate_error(x, 400, NULL, "The request body is not valid JSON.", NULL);
    }
    version_of(model, version, sizeof(version));
    int status = prediction_create(x, root, model, version);
    cJSON_Delete(root);
    return status;
}

/* POST /replicate/v1/predictions: version is a hash, or owner/name[:hash]. */
int replicate_create(struct exchange *x)
{
    char model[200], hash[80];
    cJSON *root = mock_body_json(x);
    const char *version = mock_json_str(root, "version", NULL);
    if (!cJSON_IsObject(root) || version == NULL || version[0] == '\0') {
        bool object = cJSON_IsObject(root);
        cJSON_Delete(root);
        return object ? replicate_error(x, 422, NULL, "- version: version is required", NULL)
                      : replicate_error(x, 400, NULL, "The request body is not valid JSON.", NULL);
    }
    const char *colon = strchr(version, ':');
    if (strchr(version, '/') != NULL) {
        size_t n = colon != NULL ? (size_t)(colon - version) : strlen(version);
        snprintf(model, sizeof(model), "%.*s", (int)n, version);
        if (colon != NULL) {
            snprintf(hash, sizeof(hash), "%s", colon + 1);
        } else {
            version_of(model, hash, sizeof(hash));
        }
    } else {
        snprintf(model, sizeof(model), "mock/model");
        snprintf(hash, sizeof(hash), "%s", version);
    }
    int status = prediction_create(x, root, model, hash);
    cJSON_Delete(root);
    return status;
}

static struct job *prediction_find(struct exchange *x)
{
    return jobs_find(x->m, JOB_REPLICATE, x->cap[0].s, x->cap[0].n);
}

/* GET /replicate/v1/predictions/{id} */
int replicate_get(struct exchange *x)
{
    struct job *j = prediction_find(x);
    if (j == NULL) {
        return replicate_error(x, 404, NULL, "Not found.", NULL);
    }
    prediction_json(x, j, mock_monotonic_ms());
    return 200;
}

/* POST /replicate/v1/predictions/{id}/cancel: a running prediction becomes canceled. */
int replicate_cancel(struct exchange *x)
{
    struct job *j = prediction_find(x);
    struct job_view v;
    if (j == NULL) {
        return replicate_error(x, 404, NULL, "Not found.", NULL);
    }
    int64_t now = mock_monotonic_ms();
    jobs_view(j, now, &v);
    if (v.phase == PHASE_QUEUED || v.phase == PHASE_RUNNING) {
        j->canceled_mono_ms = now;
    }
    prediction_json(x, j, now);
    return 200;
}
