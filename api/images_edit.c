/*
 * api/images_edit.c — POST /v1/images/edits, as the official OpenAI SDK sends it: a
 * multipart/form-data body of one or more `image` files (`image[]` when several), an optional
 * `mask` file, and text fields (`prompt`, `model`, `n`, `size`, `response_format`, ...).
 *
 * The form becomes the image kind's edit form, {"prompt", "image": [data: URIs], "mask"?, "n"?,
 * ..., "edit": true}: every file is kept in the task's input as a data: URI, so the task is
 * self-contained and durable (a retry, a failover to another provider or a restart needs nothing
 * but the task). From there the request takes the path of POST /v1/images/generations
 * (api/compat.c): the same validation, waiting and rendering of the images as url or b64_json.
 *
 * Bounds: the connection guard reads the body like any JSON request's, up to
 * limits.max_body_bytes (its route is API_ROUTE_JSON, not the upload path of /v1/files). The
 * task's input, the files in base64, is held to the same limit: it is what every later step
 * (Redis, the worker, the provider's request) carries, so an edit's files may take about three
 * quarters of it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "adapters/media.h"
#include "api/internal.h"
#include "core/multipart.h"

#define EDIT_MAX_FIELD_NAME 64

/* The form's fields that carry files, and the input field each becomes. */
static const struct {
    const char *field;
    const char *input; /* "image" collects into an array, "mask" is one */
} edit_files[] = {
    {"image", "image"},
    {"image[]", "image"},
    {"mask", "mask"},
};

/* The form as it is read; the first refusal stops the parse. */
struct edit_form {
    cJSON *input;
    cJSON *images;
    int error;                       /* 0, or the core code of the refusal */
    char param[EDIT_MAX_FIELD_NAME]; /* the field the refusal names */
    const char *message;             /* static */
};

static int edit_refuse(struct edit_form *f, int code, const char *param, const char *message)
{
    f->error = code;
    snprintf(f->param, sizeof(f->param), "%s", param);
    f->message = message;
    return 1;
}

/* One file part: image (one of several) or mask, into the input as a data: URI. */
static int edit_on_file(struct edit_form *f, const char *input_field,
                        const struct multipart_part *p)
{
    const char *mime = media_image_type(p->content_type, p->content_type_len, p->data, p->len);
    char *uri;
    bool ok;

    if (mime == NULL) {
        return edit_refuse(f, CORE_EINVAL, input_field,
                           "The file is not a PNG, JPEG or WEBP image");
    }
    if (strcmp(input_field, "image") == 0 &&
        cJSON_GetArraySize(f->images) >= MEDIA_MAX_EDIT_IMAGES) {
        return edit_refuse(f, CORE_EINVAL, "image", "Too many images to edit (at most 16)");
    }
    if ((uri = media_data_uri_encode(mime, p->data, p->len)) == NULL) {
        return edit_refuse(f, CORE_ENOMEM, input_field, "Out of memory");
    }
    if (strcmp(input_field, "image") == 0) {
        ok = cJSON_AddItemToArray(f->images, cJSON_CreateString(uri));
    } else {
        cJSON_DeleteItemFromObjectCaseSensitive(f->input, input_field);
        ok = cJSON_AddStringToObject(f->input, input_field, uri) != NULL;
    }
    free(uri);
    return ok ? 0 : edit_refuse(f, CORE_ENOMEM, input_field, "Out of memory");
}

/*
 * A text part: its value as a string, but n, which the SDK sends as digits and the input holds as
 * a number (a value that is not digits stays a string and is refused by the kind's validation).
 * The edit mark is sluice's own and not taken from the form.
 */
static int edit_on_text(struct edit_form *f, const char *name, const struct multipart_part *p)
{
    char *value = strndup(p->data, p->len);
    bool ok;

    if (value == NULL) {
        return edit_refuse(f, CORE_ENOMEM, name, "Out of memory");
    }
    cJSON_DeleteItemFromObjectCaseSensitive(f->input, name);
    if (strcmp(name, "edit") == 0) {
        ok = true;
    } else if (strcmp(name, "n") == 0 && p->len > 0 && p->len <= 2 &&
               strspn(value, "0123456789") == p->len) {
        ok = cJSON_AddNumberToObject(f->input, name, atoi(value)) != NULL;
    } else {
        ok = cJSON_AddStringToObject(f->input, name, value) != NULL;
    }
    free(value);
    return ok ? 0 : edit_refuse(f, CORE_ENOMEM, name, "Out of memory");
}

static int edit_on_part(const struct multipart_part *p, void *arg)
{
    struct edit_form *f = arg;
    char name[EDIT_MAX_FIELD_NAME];

    if (p->name_len == 0 || p->name_len >= sizeof(name)) {
        return edit_refuse(f, CORE_EINVAL, "", "A form field has no name or a name too long");
    }
    memcpy(name, p->name, p->name_len);
    name[p->name_len] = '\0';
    for (size_t i = 0; i < sizeof(edit_files) / sizeof(edit_files[0]); i++) {
        if (strcmp(name, edit_files[i].field) == 0) {
            return p->filename != NULL ? edit_on_file(f, edit_files[i].input, p)
                                       : edit_refuse(f, CORE_EINVAL, edit_files[i].input,
                                                     "The field must be a file");
        }
    }
    if (p->filename != NULL) {
        return edit_refuse(f, CORE_EINVAL, name, "The field is not a file field of an image edit");
    }
    return edit_on_text(f, name, p);
}

/*
 * Replaces the request's body with the input's JSON text, for the generations path to read
 * (api_read_json). Returns 0, or -1 after answering the error itself.
 */
static int edit_set_body(struct api *a, struct evhttp_request *req, const cJSON *input)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    char *text = cJSON_PrintUnformatted(input);
    size_t len = text ? strlen(text) : 0;
    int rc = -1;

    if (text == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
    } else if (len > (size_t)a->cfg->limits.max_body_bytes) {
        api_reply_error(a, req, CORE_ETOOLARGE, "image", "request_too_large",
                        "The images, as the task keeps them (base64), take %zu bytes, more than "
                        "the limit of %ld bytes",
                        len, a->cfg->limits.max_body_bytes);
    } else if (evbuffer_drain(in, evbuffer_get_length(in)) != 0 ||
               evbuffer_add(in, text, len) != 0) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
    } else {
        rc = 0;
    }
    free(text);
    return rc;
}

void api_images_edits(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    const char *ct = evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    struct edit_form f = {0};
    const char *body;
    char boundary[80];
    int rc;

    if (multipart_boundary(ct, boundary, sizeof(boundary)) < 0) {
        api_reply_error(a, req, CORE_EINVAL, NULL, "invalid_content_type",
                        "POST /v1/images/edits takes a multipart/form-data body");
        return;
    }
    if (len > (size_t)a->cfg->limits.max_body_bytes) {
        api_reply_error(a, req, CORE_ETOOLARGE, NULL, "request_too_large",
                        "Request body of %zu bytes is larger than the limit of %ld bytes", len,
                        a->cfg->limits.max_body_bytes);
        return;
    }
    body = len > 0 ? (const char *)evbuffer_pullup(in, -1) : "";
    f.input = cJSON_CreateObject();
    f.images = cJSON_CreateArray();
    if (f.input == NULL || f.images == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    rc = multipart_parse(body ? body : "", len, boundary, edit_on_part, &f);
    if (rc != 0 && f.error != 0) {
        api_reply_error(a, req, f.error, f.param[0] ? f.param : NULL, NULL, "%s%s%s", f.message,
                        f.param[0] ? ": " : "", f.param);
        goto out;
    }
    if (rc != 0) {
        api_reply_error(a, req, CORE_EINVAL, NULL, "invalid_multipart",
                        "The multipart/form-data body is malformed");
        goto out;
    }
    if (cJSON_GetArraySize(f.images) == 0) {
        api_reply_error(a, req, CORE_EINVAL, "image", NULL,
                        "An image edit needs at least one image file: image");
        goto out;
    }
    cJSON_AddItemToObject(f.input, "image", f.images);
    f.images = NULL;
    if (cJSON_AddTrueToObject(f.input, "edit") == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    if (edit_set_body(a, req, f.input) == 0) {
        api_compat_images(a, req, tenant, arg);
    }
out:
    cJSON_Delete(f.images);
    cJSON_Delete(f.input);
}
