/*
 * adapters/openai.c — the OpenAI-compatible dialect: OpenAI itself and every server that speaks its
 * API. Chat (plain or streamed), embeddings, image generation, image edits (the edit form's data:
 * URIs sent as the multipart form /images/edits takes), and video generation as a long-running
 * job (submit, poll, cancel, then the MP4 fetched from /videos/{id}/content); a video's reference
 * image (input_reference) is sent as the multipart form /videos takes with a file.
 * Bodies pass through with the alias replaced by the deployment's model, so parameters sluice does
 * not know yet still reach the provider; replies are already OpenAI-shaped and pass through too,
 * but for embedding vectors, which come back in the encoding the client asked for
 * (openai_embedding.c).
 */
#define _GNU_SOURCE /* memmem */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "adapters/dialect.h"
#include "adapters/media.h"
#include "adapters/openai.h"

#define OPENAI_MAX_IMAGES 128 /* more images in one reply is not a reply we believe */
#define OPENAI_MAX_ID_LEN 200 /* a video id spliced into a URL path */
/* An edit's multipart body: the task's input bounds it already (the api's body limit), this
 * bounds what the adapter builds whatever the input. */
#define OPENAI_MAX_EDIT_BYTES (64u * 1024u * 1024u)
#define OPENAI_MAX_EDIT_PARTS 64 /* text fields and files of one edit */

struct openai_op;

/* Builds the upstream body for a call. Returns 0 with *out set, or a negative code with err. */
typedef int (*openai_body_fn)(const struct adapter_call *call, cJSON **out, struct core_err *err);

/*
 * Reads a 2xx reply's parsed body (borrowed: a parser that keeps root as the result detaches it
 * by setting *root to NULL) into out. Returns 0 or a negative code with err filled.
 */
typedef int (*openai_parse_fn)(const struct adapter_call *call, const struct adapter_response *resp,
                               cJSON **root, struct adapter_result *out, struct core_err *err);

/* What the dialect does for one task kind. */
struct openai_op {
    enum adapter_op op;
    const char *path;     /* POST <base_url>/<path> */
    const char *required; /* the input field every request of this kind needs */
    openai_body_fn body;
    openai_parse_fn parse;
};

/* Per-call state of a relayed stream. */
struct openai_stream {
    bool done;
};

/*
 * Fields removed from a chat body before the call: streaming is set from call->stream alone, and
 * OpenAI refuses stream_options unless stream is on.
 */
static const char *const openai_chat_dropped[] = {"stream", "stream_options"};

/* Image fields that ask for a stream of partial images, which sluice does not relay, and sluice's
 * own mark of the edit form (false here). */
static const char *const openai_image_dropped[] = {"stream", "partial_images", "edit"};

/*
 * Fields of an edit's input that are not sent as text parts: the files go as file parts, the
 * model is the deployment's, and edit is sluice's own mark.
 */
static const char *const openai_edit_skipped[] = {"image", "mask",   "edit",
                                                  "model", "stream", "partial_images"};

/* The fields of a video submission OpenAI takes, passed through as the client sent them. */
static const char *const openai_video_fields[] = {"prompt", "seconds", "size", "input_reference"};

/*
 * Provider error codes (or types) that no retry can fix, whatever the status says: an account out
 * of credit, and content-policy refusals (OpenAI's and Azure OpenAI's spelling).
 */
static const char *const openai_final_codes[] = {
    "insufficient_quota",
    "content_policy_violation",
    "content_filter",
};

/* The buckets OpenAI reports on a 429, each with the header saying when it refills. */
static const struct adapter_reset_header openai_reset_headers[] = {
    {"x-ratelimit-reset-requests", "x-ratelimit-remaining-requests"},
    {"x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens"},
};

/* Image output_format → content type; the first row is OpenAI's default. */
static const struct {
    const char *format;
    const char *content_type;
} openai_image_types[] = {
    {"png", "image/png"},
    {"jpeg", "image/jpeg"},
    {"jpg", "image/jpeg"},
    {"webp", "image/webp"},
};

/* Video statuses and where each leaves the task. */
enum openai_video_phase { VIDEO_PENDING, VIDEO_DONE, VIDEO_FAILED };

static const struct {
    const char *status;
    enum openai_video_phase phase;
} openai_video_statuses[] = {
    {"queued", VIDEO_PENDING},
    {"in_progress", VIDEO_PENDING},
    {"completed", VIDEO_DONE},
    {"failed", VIDEO_FAILED},
};

static int openai_chat_body(const struct adapter_call *call, cJSON **out, struct core_err *err);
static int openai_embedding_body(const struct adapter_call *call, cJSON **out,
                                 struct core_err *err);
static int openai_image_body(const struct adapter_call *call, cJSON **out, struct core_err *err);
static int openai_video_body(const struct adapter_call *call, cJSON **out, struct core_err *err);
static int openai_chat_parse(const struct adapter_call *call, const struct adapter_response *resp,
                             cJSON **root, struct adapter_result *out, struct core_err *err);
static int openai_embedding_parse(const struct adapter_call *call,
                                  const struct adapter_response *resp, cJSON **root,
                                  struct adapter_result *out, struct core_err *err);
static int openai_image_parse(const struct adapter_call *call, const struct adapter_response *resp,
                              cJSON **root, struct adapter_result *out, struct core_err *err);
static int openai_video_parse(const struct adapter_call *call, const struct adapter_response *resp,
                              cJSON **root, struct adapter_result *out, struct core_err *err);

static const struct openai_op openai_ops[] = {
    {ADAPTER_OP_CHAT, "chat/completions", "messages", openai_chat_body, openai_chat_parse},
    {ADAPTER_OP_EMBEDDING, "embeddings", "input", openai_embedding_body, openai_embedding_parse},
    {ADAPTER_OP_IMAGE, "images/generations", "prompt", openai_image_body, openai_image_parse},
    {ADAPTER_OP_VIDEO, "videos", "prompt", openai_video_body, openai_video_parse},
};

static const struct openai_op *openai_op_find(enum adapter_op op)
{
    for (size_t i = 0; i < ARRAY_LEN(openai_ops); i++) {
        if (openai_ops[i].op == op) {
            return &openai_ops[i];
        }
    }
    return NULL;
}

static int openai_unsupported(enum adapter_op op, struct core_err *err)
{
    return core_err_set(err, CORE_EUNPROCESSABLE, NULL,
                        "the openai dialect does not support this call for %s tasks",
                        adapter_op_name(op));
}

/* Sets o[key] to a string, replacing whatever was there. false on OOM. */
static bool openai_set_string(cJSON *o, const char *key, const char *value)
{
    cJSON_DeleteItemFromObjectCaseSensitive(o, key);
    return cJSON_AddStringToObject(o, key, value) != NULL;
}

/* A copy of the client's body without the dropped fields and with the deployment's model. */
static int openai_copy_body(const struct adapter_call *call, const char *const *dropped,
                            size_t n_dropped, cJSON **out, struct core_err *err)
{
    cJSON *body = cJSON_Duplicate(call->input, true);

    for (size_t i = 0; body != NULL && i < n_dropped; i++) {
        cJSON_DeleteItemFromObjectCaseSensitive(body, dropped[i]);
    }
    if (body == NULL || !openai_set_string(body, "model", call->target->model)) {
        cJSON_Delete(body);
        return adapter_oom(err);
    }
    *out = body;
    return 0;
}

/* The client's body as it is (encoding_format included: a provider that honours it saves work). */
static int openai_embedding_body(const struct adapter_call *call, cJSON **out, struct core_err *err)
{
    enum openai_encoding enc;
    int rc = openai_encoding_of(call->input, &enc, err);

    return rc != 0 ? rc : openai_copy_body(call, NULL, 0, out, err);
}

static int openai_image_body(const struct adapter_call *call, cJSON **out, struct core_err *err)
{
    return openai_copy_body(call, openai_image_dropped, ARRAY_LEN(openai_image_dropped), out, err);
}

/*
 * The chat body streams exactly when the call does. A streamed call always asks for
 * include_usage, keeping any other stream_options the client set: usage arrives only that way,
 * and the task's accounting needs it.
 */
static int openai_chat_body(const struct adapter_call *call, cJSON **out, struct core_err *err)
{
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive(call->input, "stream_options");
    cJSON *body = NULL;
    cJSON *stream_opts = NULL;
    int rc;

    rc = openai_copy_body(call, openai_chat_dropped, ARRAY_LEN(openai_chat_dropped), &body, err);
    if (rc != 0 || !call->stream) {
        *out = body;
        return rc;
    }
    stream_opts = cJSON_IsObject(opts) ? cJSON_Duplicate(opts, true) : cJSON_CreateObject();
    if (stream_opts != NULL) {
        cJSON_DeleteItemFromObjectCaseSensitive(stream_opts, "include_usage");
    }
    if (stream_opts == NULL || cJSON_AddTrueToObject(stream_opts, "include_usage") == NULL ||
        cJSON_AddTrueToObject(body, "stream") == NULL ||
        !cJSON_AddItemToObject(body, "stream_options", stream_opts)) {
        cJSON_Delete(stream_opts);
        cJSON_Delete(body);
        return adapter_oom(err);
    }
    *out = body;
    return 0;
}

/* {model, prompt, seconds?, size?}: the fields OpenAI's /videos takes as JSON (a reference image
 * goes as multipart: openai_video_form_request). */
static int openai_video_body(const struct adapter_call *call, cJSON **out, struct core_err *err)
{
    cJSON *body = cJSON_CreateObject();
    bool ok = body != NULL && cJSON_AddStringToObject(body, "model", call->target->model) != NULL;

    for (size_t i = 0; ok && i < ARRAY_LEN(openai_video_fields); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->input, openai_video_fields[i]);
        cJSON *copy;
        if (v == NULL || cJSON_IsNull(v)) {
            continue;
        }
        copy = cJSON_Duplicate(v, true);
        ok = copy != NULL && cJSON_AddItemToObject(body, openai_video_fields[i], copy);
        if (!ok) {
            cJSON_Delete(copy);
        }
    }
    if (!ok) {
        cJSON_Delete(body);
        return adapter_oom(err);
    }
    *out = body;
    return 0;
}

/* The field every request of this kind needs: a non-empty array or string (chat: an array). */
static int openai_check_input(const struct adapter_call *call, const struct openai_op *op,
                              struct core_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->input, op->required);
    bool ok = cJSON_IsArray(v) ? cJSON_GetArraySize(v) > 0
                               : (cJSON_IsString(v) && v->valuestring[0] != '\0');

    if (!cJSON_IsObject(call->input)) {
        return core_err_set(err, CORE_EINVAL, NULL, "the %s request is not a JSON object",
                            adapter_op_name(call->op));
    }
    if (op->op == ADAPTER_OP_CHAT && !cJSON_IsArray(v)) {
        ok = false;
    }
    if (!ok) {
        return core_err_set(err, CORE_EINVAL, op->required, "a %s request needs a non-empty %s%s",
                            adapter_op_name(call->op), op->required,
                            op->op == ADAPTER_OP_CHAT ? " array" : "");
    }
    return 0;
}

/* Authorization (when the deployment has a key) and, for requests with a body, Content-Type. */
static int openai_add_headers(const struct adapter_target *t, struct adapter_request *out,
                              bool json_body)
{
    if (adapter_request_add_key(out, "Authorization: Bearer ", t->api_key) != 0) {
        return CORE_ENOMEM;
    }
    if (json_body && adapter_request_add_header(out, "Content-Type: application/json") != 0) {
        return CORE_ENOMEM;
    }
    return 0;
}

/* One part of an edit's multipart body. data points at text, at bytes owned by the part, or
 * into the input. */
struct openai_part {
    const char *name;
    char filename[32]; /* "" for a text part */
    const char *type;  /* a file's content type */
    const char *data;
    size_t len;
    char *owned; /* freed with the part */
};

struct openai_form {
    struct openai_part parts[OPENAI_MAX_EDIT_PARTS];
    size_t n;
};

static void openai_form_cleanup(struct openai_form *f)
{
    for (size_t i = 0; i < f->n; i++) {
        free(f->parts[i].owned);
    }
    f->n = 0;
}

/* The next free part, or NULL when the form is full. */
static struct openai_part *openai_form_add(struct openai_form *f, const char *name)
{
    struct openai_part *p;

    if (f->n >= OPENAI_MAX_EDIT_PARTS) {
        return NULL;
    }
    p = &f->parts[f->n++];
    memset(p, 0, sizeof(*p));
    p->name = name;
    return p;
}

/*
 * A file part from a data: URI (its bytes decoded), named stem.<ext> (stem_<index>.<ext> past the
 * first); a refused URI names stem as the field ("image", "mask", "input_reference"). Returns 0
 * or a negative code with err.
 */
static int openai_form_file(struct openai_form *f, const char *name, const char *uri,
                            const char *stem, size_t index, struct core_err *err)
{
    struct media_data_uri u;
    struct openai_part *p;
    size_t len = 0;

    if (media_data_uri_parse(uri, &u) != 0) {
        return core_err_set(err, CORE_EINVAL, stem,
                            "%s must be a data: URI of a PNG, JPEG or WEBP image", stem);
    }
    if ((p = openai_form_add(f, name)) == NULL) {
        return core_err_set(err, CORE_EINVAL, "image", "an edit has more than %d parts",
                            OPENAI_MAX_EDIT_PARTS);
    }
    p->owned = (char *)media_data_uri_decode(&u, &len);
    if (p->owned == NULL) {
        return adapter_oom(err);
    }
    p->data = p->owned;
    p->len = len;
    p->type = u.mime;
    if (index == 0) {
        snprintf(p->filename, sizeof(p->filename), "%s.%s", stem, u.ext);
    } else {
        snprintf(p->filename, sizeof(p->filename), "%s_%zu.%s", stem, index, u.ext);
    }
    return 0;
}

/*
 * The text parts: every field of the input but the skipped ones, strings as they are, numbers
 * and booleans as JSON writes them (as the SDK sends n: "2"), the model the deployment's. An
 * object or array has no form encoding OpenAI reads and is refused.
 */
static int openai_form_texts(const struct adapter_call *call, struct openai_form *f,
                             struct core_err *err)
{
    struct openai_part *p = openai_form_add(f, "model");
    const cJSON *v;

    if (p == NULL) {
        return adapter_oom(err);
    }
    p->data = call->target->model;
    p->len = strlen(p->data);
    cJSON_ArrayForEach(v, call->input)
    {
        bool skipped = cJSON_IsNull(v);
        for (size_t i = 0; !skipped && i < ARRAY_LEN(openai_edit_skipped); i++) {
            skipped = strcmp(v->string, openai_edit_skipped[i]) == 0;
        }
        if (skipped) {
            continue;
        }
        if (strlen(v->string) > 64 ||
            v->string[strspn(v->string, "abcdefghijklmnopqrstuvwxyz"
                                        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.[]")] != '\0') {
            /* a part's name goes into its header between quotes: no quote, CR or LF gets there */
            return core_err_set(err, CORE_EINVAL, NULL,
                                "an image edit's field names are letters, digits, _ - . [ ] "
                                "(at most 64)");
        }
        if (cJSON_IsArray(v) || cJSON_IsObject(v)) {
            return core_err_set(err, CORE_EINVAL, v->string,
                                "%.64s cannot be sent in an image edit's form", v->string);
        }
        if ((p = openai_form_add(f, v->string)) == NULL) {
            return core_err_set(err, CORE_EINVAL, NULL, "an edit has more than %d parts",
                                OPENAI_MAX_EDIT_PARTS);
        }
        if (cJSON_IsString(v)) {
            p->data = v->valuestring;
        } else if ((p->owned = cJSON_PrintUnformatted(v)) == NULL) {
            return adapter_oom(err);
        } else {
            p->data = p->owned;
        }
        p->len = strlen(p->data);
    }
    return 0;
}

/*
 * The boundary: "sluice-" and the hex SHA-256 of every part's bytes, so the same task builds the
 * same body (adapters are pure) and no part holds it but by a hash collision, which is checked.
 */
static int openai_form_boundary(const struct openai_form *f, char *out, size_t cap,
                                struct core_err *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    size_t at;

    for (size_t i = 0; ok && i < f->n; i++) {
        ok = EVP_DigestUpdate(ctx, f->parts[i].data, f->parts[i].len) == 1;
    }
    ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len) == 1;
    EVP_MD_CTX_free(ctx);
    if (!ok) {
        return adapter_oom(err);
    }
    at = (size_t)snprintf(out, cap, "sluice-");
    for (unsigned int i = 0; i < 20 && at + 2 < cap; i++) {
        at += (size_t)snprintf(out + at, cap - at, "%02x", md[i]);
    }
    for (size_t i = 0; i < f->n; i++) {
        if (memmem(f->parts[i].data, f->parts[i].len, out, strlen(out)) != NULL) {
            return core_err_set(err, CORE_EINTERNAL, NULL, "an edit's part holds its boundary");
        }
    }
    return 0;
}

/* The multipart/form-data body of the parts into out, bounded by OPENAI_MAX_EDIT_BYTES. */
static int openai_form_body(const struct openai_form *f, const char *boundary,
                            struct adapter_request *out, struct core_err *err)
{
    size_t cap = strlen(boundary) + 8;
    size_t at = 0;

    for (size_t i = 0; i < f->n; i++) {
        size_t head = strlen(boundary) + strlen(f->parts[i].name) + sizeof(f->parts[i].filename) +
                      (f->parts[i].type ? strlen(f->parts[i].type) : 0) + 128;
        if (f->parts[i].len > OPENAI_MAX_EDIT_BYTES || cap > OPENAI_MAX_EDIT_BYTES) {
            return core_err_set(err, CORE_ETOOLARGE, "image",
                                "an image edit's body is larger than %u bytes",
                                OPENAI_MAX_EDIT_BYTES);
        }
        cap += head + f->parts[i].len;
    }
    if (cap > OPENAI_MAX_EDIT_BYTES) {
        return core_err_set(err, CORE_ETOOLARGE, "image",
                            "an image edit's body is larger than %u bytes", OPENAI_MAX_EDIT_BYTES);
    }
    if ((out->body = malloc(cap + 1)) == NULL) {
        return adapter_oom(err);
    }
    for (size_t i = 0; i < f->n; i++) {
        const struct openai_part *p = &f->parts[i];
        if (p->filename[0] != '\0') {
            at += (size_t)snprintf(out->body + at, cap - at,
                                   "--%s\r\nContent-Disposition: form-data; name=\"%s\"; "
                                   "filename=\"%s\"\r\nContent-Type: %s\r\n\r\n",
                                   boundary, p->name, p->filename, p->type);
        } else {
            at += (size_t)snprintf(out->body + at, cap - at,
                                   "--%s\r\nContent-Disposition: form-data; name=\"%s\"\r\n\r\n",
                                   boundary, p->name);
        }
        memcpy(out->body + at, p->data, p->len);
        at += p->len;
        memcpy(out->body + at, "\r\n", 2);
        at += 2;
    }
    at += (size_t)snprintf(out->body + at, cap + 1 - at, "--%s--\r\n", boundary);
    out->body_len = at;
    return 0;
}

/*
 * The parts of f sent as multipart/form-data: a boundary no part holds, the body, POST
 * {base}/path with the key and the Content-Type naming the boundary. Shared by image edits and
 * videos with a reference image. f is borrowed; out's fields are the caller's to clean up.
 */
static int openai_form_request(const struct adapter_target *t, const char *path,
                               const struct openai_form *f, struct adapter_request *out,
                               struct core_err *err)
{
    char boundary[64];
    int rc;

    if ((rc = openai_form_boundary(f, boundary, sizeof(boundary), err)) != 0 ||
        (rc = openai_form_body(f, boundary, out, err)) != 0) {
        return rc;
    }
    snprintf(out->method, sizeof(out->method), "POST");
    out->url = adapter_url_join(t->base_url, path);
    if (out->url == NULL ||
        adapter_request_add_key(out, "Authorization: Bearer ", t->api_key) != 0 ||
        adapter_request_add_header(out, "Content-Type: multipart/form-data; boundary=%s",
                                   boundary) != 0) {
        return adapter_oom(err);
    }
    return 0;
}

/*
 * An image edit ("edit": true): POST {base}/images/edits as multipart/form-data, as OpenAI takes
 * it — the input's fields as text parts, each image a file part ("image", or "image[]" each when
 * there are several, as the SDK names them), the mask one more.
 */
static int openai_edit_request(const struct adapter_call *call, struct adapter_request *out,
                               struct core_err *err)
{
    const cJSON *images = cJSON_GetObjectItemCaseSensitive(call->input, "image");
    const cJSON *mask = cJSON_GetObjectItemCaseSensitive(call->input, "mask");
    int n = cJSON_GetArraySize(images);
    struct openai_form *f = calloc(1, sizeof(*f));
    int rc = 0;

    if (f == NULL) {
        return adapter_oom(err);
    }
    if (!cJSON_IsArray(images) || n < 1 || n > MEDIA_MAX_EDIT_IMAGES) {
        rc = core_err_set(err, CORE_EINVAL, "image",
                          "an edit needs image: 1 to %d data: URIs of PNG, JPEG or WEBP images",
                          MEDIA_MAX_EDIT_IMAGES);
        goto out;
    }
    if ((rc = openai_form_texts(call, f, err)) != 0) {
        goto out;
    }
    for (int i = 0; i < n; i++) {
        const char *uri = cJSON_GetStringValue(cJSON_GetArrayItem(images, i));
        if ((rc = openai_form_file(f, n > 1 ? "image[]" : "image", uri, "image", (size_t)i, err)) !=
            0) {
            goto out;
        }
    }
    if (mask != NULL && !cJSON_IsNull(mask) &&
        (rc = openai_form_file(f, "mask", cJSON_GetStringValue(mask), "mask", 0, err)) != 0) {
        goto out;
    }
    rc = openai_form_request(call->target, "images/edits", f, out, err);
out:
    openai_form_cleanup(f);
    free(f);
    return rc;
}

/*
 * A video with a reference image: POST {base}/videos as multipart/form-data, as OpenAI takes
 * input_reference — the model and the other fields of openai_video_fields as text parts, the
 * image (a data: URI) as the file part input_reference. OpenAI takes the image as a file only,
 * so a URL is refused naming the field rather than sent to be rejected or ignored.
 */
static int openai_video_form_request(const struct adapter_call *call, const char *reference,
                                     struct adapter_request *out, struct core_err *err)
{
    const struct adapter_target *t = call->target;
    struct openai_form *f = calloc(1, sizeof(*f));
    struct openai_part *p;
    int rc = 0;

    if (f == NULL) {
        return adapter_oom(err);
    }
    if (strncmp(reference, "data:", 5) != 0) {
        rc = core_err_set(err, CORE_EUNPROCESSABLE, "input_reference",
                          "the openai dialect sends input_reference as a file: give a file or a "
                          "data: URI, not a URL");
        goto out;
    }
    p = openai_form_add(f, "model");
    p->data = t->model;
    p->len = strlen(t->model);
    for (size_t i = 0; i < ARRAY_LEN(openai_video_fields); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(call->input, openai_video_fields[i]);
        if (v == NULL || cJSON_IsNull(v) ||
            strcmp(openai_video_fields[i], "input_reference") == 0) {
            continue;
        }
        if (!cJSON_IsString(v) && !cJSON_IsNumber(v)) {
            rc = core_err_set(err, CORE_EINVAL, openai_video_fields[i],
                              "%s must be a string or a number", openai_video_fields[i]);
            goto out;
        }
        p = openai_form_add(f, openai_video_fields[i]);
        if (cJSON_IsString(v)) {
            p->data = v->valuestring;
        } else if ((p->owned = cJSON_PrintUnformatted(v)) == NULL) {
            rc = adapter_oom(err);
            goto out;
        } else {
            p->data = p->owned;
        }
        p->len = strlen(p->data);
    }
    if ((rc = openai_form_file(f, "input_reference", reference, "input_reference", 0, err)) != 0) {
        goto out;
    }
    rc = openai_form_request(t, "videos", f, out, err);
out:
    openai_form_cleanup(f);
    free(f);
    return rc;
}

static int openai_build_request(const struct adapter_call *call, struct adapter_request *out,
                                struct core_err *err)
{
    const cJSON *reference = NULL;
    const struct openai_op *op = openai_op_find(call->op);
    const struct adapter_target *t = call->target;
    cJSON *body = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (op == NULL) {
        rc = openai_unsupported(call->op, err);
        goto out;
    }
    if ((rc = adapter_target_check(t, err)) != 0 || (rc = openai_check_input(call, op, err)) != 0) {
        goto out;
    }
    if (op->op == ADAPTER_OP_IMAGE &&
        cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(call->input, "edit"))) {
        rc = openai_edit_request(call, out, err);
        goto out;
    }
    if (op->op == ADAPTER_OP_VIDEO) {
        reference = cJSON_GetObjectItemCaseSensitive(call->input, "input_reference");
        if ((rc = media_reference_check(reference, err)) != 0) {
            goto out;
        }
        if (cJSON_IsString(reference)) {
            rc = openai_video_form_request(call, reference->valuestring, out, err);
            goto out;
        }
    }
    if ((rc = op->body(call, &body, err)) != 0) {
        goto out;
    }
    if (adapter_request_set_json(out, "POST", adapter_url_join(t->base_url, op->path), body) != 0 ||
        openai_add_headers(t, out, true) != 0) {
        rc = adapter_oom(err);
        goto out;
    }
out:
    cJSON_Delete(body);
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/*
 * A provider's id is safe to splice into a URL path when it is short and made only of letters,
 * digits, '_', '-' and '.' (not "." or ".."), as OpenAI's video ids ("video_68d7...") are.
 */
static bool openai_id_ok(const char *id)
{
    return adapter_id_ok(id, OPENAI_MAX_ID_LEN, "_-.");
}

/* A request on <base>/videos/<id><suffix>: polls, the cancel, and the content fetch. */
static int openai_video_request(const struct adapter_target *t, const char *method, const char *id,
                                const char *suffix, struct adapter_request *out,
                                struct core_err *err)
{
    char path[OPENAI_MAX_ID_LEN + 32];
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if ((rc = adapter_target_check(t, err)) != 0) {
        goto out;
    }
    if (!openai_id_ok(id)) {
        rc = core_err_set(err, CORE_EINTERNAL, NULL, "the video job has no usable upstream id");
        goto out;
    }
    snprintf(out->method, sizeof(out->method), "%s", method);
    snprintf(path, sizeof(path), "videos/%s%s", id, suffix);
    out->url = adapter_url_join(t->base_url, path);
    if (out->url == NULL || openai_add_headers(t, out, false) != 0) {
        rc = adapter_oom(err);
        goto out;
    }
out:
    if (rc != 0) {
        adapter_request_cleanup(out);
    }
    return rc;
}

/* A request on the call's video job: polls and the cancel; other kinds have no job. */
static int openai_job_request(const struct adapter_call *call, const char *method,
                              struct adapter_request *out, struct core_err *err)
{
    core_err_clear(err);
    if (call->op != ADAPTER_OP_VIDEO) {
        memset(out, 0, sizeof(*out));
        return openai_unsupported(call->op, err);
    }
    return openai_video_request(call->target, method, call->upstream_id, "", out, err);
}

static int openai_build_poll(const struct adapter_call *call, struct adapter_request *out,
                             struct core_err *err)
{
    return openai_job_request(call, "GET", out, err);
}

/* OpenAI drops a video job, queued or not, by deleting the video. */
static int openai_build_cancel(const struct adapter_call *call, struct adapter_request *out,
                               struct core_err *err)
{
    return openai_job_request(call, "DELETE", out, err);
}

/* OpenAI's reset headers are Go durations ("6m0s"), counted from when the reply came. */
static int openai_reset_parse(const struct adapter_response *resp, const char *value, int64_t *ms)
{
    return adapter_parse_duration_ms(value, ms);
}

static bool openai_is_final(const struct core_err *err)
{
    for (size_t i = 0; i < ARRAY_LEN(openai_final_codes); i++) {
        if (strcmp(err->err_code, openai_final_codes[i]) == 0 ||
            strcmp(err->type, openai_final_codes[i]) == 0) {
            return true;
        }
    }
    return false;
}

/*
 * An error reply: the shared rules, plus OpenAI's final codes and its reset headers. Also used
 * for an error inside a 200 stream, where the status (200) makes it a non-retryable 502.
 */
static int openai_http_error(const struct adapter_response *resp, const cJSON *root,
                             struct core_err *err)
{
    struct adapter_error_fields f;
    bool have = adapter_error_fields_read(root, &f);

    adapter_http_error(resp, have ? &f : NULL, err);
    if (openai_is_final(err)) {
        err->retryable = false;
    }
    if (resp->status == 429 && err->retry_after_ms < 0) {
        err->retry_after_ms = adapter_reset_wait_ms(
            resp, openai_reset_headers, ARRAY_LEN(openai_reset_headers), openai_reset_parse);
    }
    return err->code;
}

/* Copies o[key] (an object) into *slot; absent or not an object leaves *slot NULL. */
static int openai_copy_object(const cJSON *o, const char *key, cJSON **slot, struct core_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

    if (cJSON_IsObject(v) && (*slot = cJSON_Duplicate(v, true)) == NULL) {
        return adapter_oom(err);
    }
    return 0;
}

/* Some compatible servers leave "model" out; the result then names the deployment's model. */
static int openai_fill_model(const struct adapter_call *call, cJSON *root, struct core_err *err)
{
    const struct adapter_target *t = call->target;

    if (cJSON_IsString(cJSON_GetObjectItemCaseSensitive(root, "model")) || t == NULL ||
        t->model == NULL) {
        return 0;
    }
    return openai_set_string(root, "model", t->model) ? 0 : adapter_oom(err);
}

/* Takes root as the DONE result. */
static void openai_take_result(cJSON **root, struct adapter_result *out)
{
    out->outcome = ADAPTER_DONE;
    out->result = *root;
    *root = NULL;
}

static int openai_chat_parse(const struct adapter_call *call, const struct adapter_response *resp,
                             cJSON **root, struct adapter_result *out, struct core_err *err)
{
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(*root, "id");
    int rc;

    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(*root, "choices"))) {
        return adapter_malformed_body(resp->status, resp->body_len, "no choices array", err);
    }
    if ((rc = openai_fill_model(call, *root, err)) != 0 ||
        (rc = openai_copy_object(*root, "usage", &out->usage, err)) != 0) {
        return rc;
    }
    if (cJSON_IsString(id) && (out->upstream_id = strdup(id->valuestring)) == NULL) {
        return adapter_oom(err);
    }
    openai_take_result(root, out);
    return 0;
}

static int openai_embedding_parse(const struct adapter_call *call,
                                  const struct adapter_response *resp, cJSON **root,
                                  struct adapter_result *out, struct core_err *err)
{
    cJSON *data = cJSON_GetObjectItemCaseSensitive(*root, "data");
    enum openai_encoding enc;
    int rc;

    if (!cJSON_IsArray(data)) {
        return adapter_malformed_body(resp->status, resp->body_len, "no data array", err);
    }
    if ((rc = openai_encoding_of(call->input, &enc, err)) != 0 ||
        (rc = openai_embeddings_encode(data, enc, resp, err)) != 0) {
        return rc;
    }
    if ((rc = openai_fill_model(call, *root, err)) != 0 ||
        (rc = openai_copy_object(*root, "usage", &out->usage, err)) != 0) {
        return rc;
    }
    openai_take_result(root, out);
    return 0;
}

/* The content type of generated images: the reply's output_format, else the request's, else PNG. */
static const char *openai_image_type(const cJSON *reply, const cJSON *input)
{
    const char *fmt = adapter_json_str(reply, "output_format");

    if (fmt == NULL) {
        fmt = adapter_json_str(input, "output_format");
    }
    for (size_t i = 0; fmt != NULL && i < ARRAY_LEN(openai_image_types); i++) {
        if (strcmp(fmt, openai_image_types[i].format) == 0) {
            return openai_image_types[i].content_type;
        }
    }
    return openai_image_types[0].content_type;
}

/*
 * One artifact per image: b64_json kept inline, or a url fetched as given. The URL is pre-signed
 * (and not OpenAI's host), so the fetch carries no Authorization header; its content type is the
 * one the download answers with.
 */
static int openai_image_artifacts(const struct adapter_call *call,
                                  const struct adapter_response *resp, const cJSON *root,
                                  struct adapter_result *out, struct core_err *err)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(root, "data");
    const char *type = openai_image_type(root, call->input);
    size_t n = (size_t)cJSON_GetArraySize(data);
    const cJSON *item;

    if (n > OPENAI_MAX_IMAGES) {
        return adapter_malformed_body(resp->status, resp->body_len, "too many images", err);
    }
    if (n == 0) {
        return 0;
    }
    out->artifacts = calloc(n, sizeof(*out->artifacts));
    if (out->artifacts == NULL) {
        return adapter_oom(err);
    }
    cJSON_ArrayForEach(item, data)
    {
        struct adapter_artifact *art = &out->artifacts[out->n_artifacts];
        const char *b64 = adapter_json_str(item, "b64_json");
        const char *url = adapter_json_str(item, "url");

        if (b64 != NULL && b64[0] != '\0') {
            snprintf(art->content_type, sizeof(art->content_type), "%s", type);
            if ((art->b64 = strdup(b64)) == NULL) {
                return adapter_oom(err);
            }
        } else if (url != NULL && url[0] != '\0') {
            snprintf(art->fetch.method, sizeof(art->fetch.method), "GET");
            if ((art->fetch.url = strdup(url)) == NULL) {
                return adapter_oom(err);
            }
        } else {
            return adapter_malformed_body(resp->status, resp->body_len,
                                          "an image has neither url nor b64_json", err);
        }
        out->n_artifacts++;
    }
    return 0;
}

/* Usage of an image call: whatever the provider reported, plus {"images": n}. */
static int openai_image_usage(const cJSON *root, struct adapter_result *out, struct core_err *err)
{
    int n = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(root, "data"));
    int rc = openai_copy_object(root, "usage", &out->usage, err);

    if (rc != 0) {
        return rc;
    }
    if (out->usage == NULL && (out->usage = cJSON_CreateObject()) == NULL) {
        return adapter_oom(err);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(out->usage, "images");
    if (cJSON_AddNumberToObject(out->usage, "images", n) == NULL) {
        return adapter_oom(err);
    }
    return 0;
}

static int openai_image_parse(const struct adapter_call *call, const struct adapter_response *resp,
                              cJSON **root, struct adapter_result *out, struct core_err *err)
{
    int rc;

    if (!cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(*root, "data"))) {
        return adapter_malformed_body(resp->status, resp->body_len, "no data array", err);
    }
    if ((rc = openai_image_artifacts(call, resp, *root, out, err)) != 0 ||
        (rc = openai_image_usage(*root, out, err)) != 0) {
        return rc;
    }
    openai_take_result(root, out);
    return 0;
}

/* A video's length in seconds: OpenAI sends it as a string ("8"); a number works too. -1: none. */
static double openai_video_seconds(const cJSON *v)
{
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(v, "seconds");
    char *end = NULL;
    double d;

    if (cJSON_IsNumber(s)) {
        d = s->valuedouble;
    } else if (cJSON_IsString(s)) {
        d = strtod(s->valuestring, &end);
        if (end == s->valuestring || *end != '\0') {
            return -1;
        }
    } else {
        return -1;
    }
    return (isfinite(d) && d >= 0 && d < 1e9) ? d : -1;
}

/* A finished video: the object as the result, its length as usage, the MP4 as the artifact. */
static int openai_video_done(const struct adapter_call *call, const char *id, cJSON **root,
                             struct adapter_result *out, struct core_err *err)
{
    double seconds = openai_video_seconds(*root);
    struct adapter_artifact *art;
    int rc;

    if (seconds < 0) {
        seconds = openai_video_seconds(call->input);
    }
    if (seconds >= 0 && ((out->usage = cJSON_CreateObject()) == NULL ||
                         cJSON_AddNumberToObject(out->usage, "seconds", seconds) == NULL)) {
        return adapter_oom(err);
    }
    art = calloc(1, sizeof(*art));
    if (art == NULL) {
        return adapter_oom(err);
    }
    out->artifacts = art;
    out->n_artifacts = 1;
    snprintf(art->content_type, sizeof(art->content_type), "video/mp4");
    if ((rc = openai_video_request(call->target, "GET", id, "/content", &art->fetch, err)) != 0) {
        return rc;
    }
    openai_take_result(root, out);
    return 0;
}

/*
 * A failed video job. Final: the provider rendered and refused (content policy, bad input), and
 * submitting the same prompt again fails the same way.
 */
static int openai_video_failed(const struct adapter_response *resp, const cJSON *root,
                               struct core_err *err)
{
    struct adapter_error_fields f;

    if (adapter_error_fields_read(root, &f) && f.message != NULL && f.message[0] != '\0') {
        core_err_set(err, CORE_EUPSTREAM, NULL, "%s", f.message);
    } else {
        core_err_set(err, CORE_EUPSTREAM, NULL, "the provider failed the video job");
    }
    core_err_set_code(err, f.code[0] != '\0' ? f.code : "video_failed");
    err->provider_status = resp->status;
    err->retryable = false;
    return err->code;
}

/*
 * A video object, from the submission or a poll: queued or in progress is PENDING (progress as
 * reported; the configured poll interval), completed is DONE, failed is a final error.
 */
static int openai_video_parse(const struct adapter_call *call, const struct adapter_response *resp,
                              cJSON **root, struct adapter_result *out, struct core_err *err)
{
    const char *id = adapter_json_str(*root, "id");
    const char *status = adapter_json_str(*root, "status");
    const cJSON *progress = cJSON_GetObjectItemCaseSensitive(*root, "progress");
    enum openai_video_phase phase = VIDEO_PENDING;
    bool known = (status == NULL);

    if (!openai_id_ok(id)) {
        return adapter_malformed_body(resp->status, resp->body_len, "no usable video id", err);
    }
    for (size_t i = 0; status != NULL && i < ARRAY_LEN(openai_video_statuses); i++) {
        if (strcmp(status, openai_video_statuses[i].status) == 0) {
            phase = openai_video_statuses[i].phase;
            known = true;
        }
    }
    if (!known) {
        return adapter_malformed_body(resp->status, resp->body_len, "unknown video status", err);
    }
    if (phase == VIDEO_FAILED) {
        return openai_video_failed(resp, *root, err);
    }
    if ((out->upstream_id = strdup(id)) == NULL) {
        return adapter_oom(err);
    }
    if (phase == VIDEO_DONE) {
        return openai_video_done(call, id, root, out, err);
    }
    out->outcome = ADAPTER_PENDING;
    out->progress = -1;
    if (cJSON_IsNumber(progress) && progress->valuedouble >= 0 && progress->valuedouble <= 100) {
        out->progress = (int)progress->valuedouble;
    }
    out->queue_position = -1;
    out->poll_after_ms = -1;
    return 0;
}

/*
 * The shared shape of parse_response and parse_poll: the checks every reply goes through
 * (adapter_reply_root), then the kind's parser.
 */
static int openai_parse_with(openai_parse_fn parse, const struct adapter_call *call,
                             const struct adapter_response *resp, struct adapter_result *out,
                             struct core_err *err)
{
    cJSON *root = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    core_err_clear(err);
    if (parse == NULL) {
        rc = openai_unsupported(call->op, err);
        goto out;
    }
    if ((rc = adapter_reply_root(resp, openai_http_error, &root, err)) != 0) {
        goto out;
    }
    rc = parse(call, resp, &root, out, err);
out:
    cJSON_Delete(root);
    if (rc != 0) {
        adapter_result_cleanup(out);
    }
    return rc;
}

static int openai_parse_response(const struct adapter_call *call,
                                 const struct adapter_response *resp, struct adapter_result *out,
                                 struct core_err *err)
{
    const struct openai_op *op = openai_op_find(call->op);

    return openai_parse_with(op ? op->parse : NULL, call, resp, out, err);
}

static int openai_parse_poll(const struct adapter_call *call, const struct adapter_response *resp,
                             struct adapter_result *out, struct core_err *err)
{
    return openai_parse_with(call->op == ADAPTER_OP_VIDEO ? openai_video_parse : NULL, call, resp,
                             out, err);
}

static void *openai_stream_new(const struct adapter_call *call)
{
    (void)call;
    return calloc(1, sizeof(struct openai_stream));
}

static void openai_stream_free(void *state)
{
    free(state);
}

/*
 * A stream that went wrong after its 200: a bad chunk or the provider's own error event. Final,
 * because chunks may already have reached the client and a retry would send them twice.
 */
static int openai_stream_error(const cJSON *root, const char *why, struct core_err *err)
{
    struct adapter_response started = {.status = 200, .transport = ADAPTER_TRANSPORT_OK};
    struct adapter_error_fields f;

    if (root != NULL && adapter_error_fields_read(root, &f)) {
        openai_http_error(&started, root, err);
        if (f.message == NULL || f.message[0] == '\0') {
            snprintf(err->message, sizeof(err->message), "the provider's stream failed");
        }
    } else {
        core_err_set(err, CORE_EUPSTREAM, NULL, "malformed stream from the provider: %s", why);
        core_err_set_code(err, "malformed_reply");
        err->provider_status = 200;
    }
    err->retryable = false;
    return err->code;
}

/* data is exactly "[DONE]", give or take surrounding whitespace. */
static bool openai_is_done(const char *data, size_t len)
{
    static const char marker[] = "[DONE]";
    const size_t mlen = sizeof(marker) - 1;

    while (len > 0 && memchr(" \t\r\n", data[0], 4) != NULL) {
        data++;
        len--;
    }
    while (len > 0 && memchr(" \t\r\n", data[len - 1], 4) != NULL) {
        len--;
    }
    return len == mlen && memcmp(data, marker, mlen) == 0;
}

/*
 * One event of OpenAI's stream: `data: {chunk}` passes through as sent (model included), `data:
 * [DONE]` ends it, `data: {"error": {...}}` (or an `error` event) fails it; a chunk carrying
 * "error": null is an ordinary chunk. Empty events are keep-alives. Events after the end are
 * ignored.
 */
static int openai_stream_event(void *state, const char *event, const char *data, size_t len,
                               cJSON *chunks, bool *done, struct core_err *err)
{
    struct openai_stream *s = state;
    const cJSON *error;
    cJSON *root = NULL;
    int rc = 0;

    core_err_clear(err);
    if (s->done) {
        *done = true;
        return 0;
    }
    if (openai_is_done(data, len)) {
        s->done = true;
        *done = true;
        return 0;
    }
    if (len == 0) {
        return 0;
    }
    root = adapter_json_parse(data, len);
    if (!cJSON_IsObject(root)) {
        rc = openai_stream_error(NULL, "a chunk is not a JSON object", err);
        goto out;
    }
    error = cJSON_GetObjectItemCaseSensitive(root, "error");
    if (cJSON_IsObject(error) || cJSON_IsString(error) ||
        (event != NULL && strcmp(event, "error") == 0)) {
        rc = openai_stream_error(root, "the provider sent an error event", err);
        goto out;
    }
    if (!cJSON_AddItemToArray(chunks, root)) {
        rc = adapter_oom(err);
        goto out;
    }
    root = NULL;
out:
    cJSON_Delete(root);
    return rc;
}

const struct adapter adapter_openai = {
    .name = "openai",
    .build_request = openai_build_request,
    .parse_response = openai_parse_response,
    .build_poll = openai_build_poll,
    .parse_poll = openai_parse_poll,
    .build_cancel = openai_build_cancel,
    .stream_new = openai_stream_new,
    .stream_event = openai_stream_event,
    .stream_free = openai_stream_free,
};
