/*
 * adapters/media.h — what the long-running media dialects (replicate, fal) share, internal to
 * adapters/: reading an OpenAI image or video body, mapping sizes to aspect ratios, judging the
 * URLs a provider hands back, and turning a finished job into OpenAI's images response or video
 * object with one download per file. The data: URIs of an image edit's files are read here too,
 * for every dialect that edits (openai as well) and for the api's check of the edit form.
 */
#ifndef SLUICE_ADAPTER_MEDIA_H
#define SLUICE_ADAPTER_MEDIA_H

#include <stdbool.h>
#include <stddef.h>

#include "adapters/adapter.h"
#include "core/err.h"

/* Bounds on what a client's request or a provider's reply can make a media dialect do. */
#define MEDIA_MAX_N 10           /* images per task, as OpenAI allows */
#define MEDIA_MAX_SIDE 16384     /* pixels per side of a requested size */
#define MEDIA_MAX_SECONDS 3600   /* a requested video length */
#define MEDIA_MAX_OUTPUTS 16     /* outputs of one job kept as artifacts; the rest are dropped */
#define MEDIA_MAX_URL 8192       /* a provider URL we keep or fetch */
#define MEDIA_MAX_EDIT_IMAGES 16 /* input images of one edit, as OpenAI's gpt-image models take */

/* What a client asked of a media task, read from its OpenAI-shaped body. Strings are borrowed. */
struct media_input {
    const char *prompt;
    int n;     /* images; 0 when not given */
    int width; /* 0 when no size was given, or "auto" */
    int height;
    const char *output_format; /* NULL when not given */
    double seconds;            /* video length; < 0 when not given */
    /* An image edit ("edit": true): the input images, data: URIs (media_data_uri), at least one. */
    const char *images[MEDIA_MAX_EDIT_IMAGES];
    size_t n_images;  /* 0: not an edit */
    const char *mask; /* a data: URI; NULL when not given */
    /* A video's reference image (input_reference): a data: URI (media_data_uri) or an http(s)
     * URL; NULL when not given. */
    const char *reference;
};

/* A data: URI of an image as an edit carries it, split. Slices borrow from the URI. */
struct media_data_uri {
    const char *mime; /* "image/png", "image/jpeg" or "image/webp"; static storage */
    const char *ext;  /* "png", "jpg", "webp": a filename's extension; static storage */
    const char *b64;  /* the base64 payload, not NUL-terminated */
    size_t b64_len;
};

/*
 * Reads s as "data:<image type>;base64,<payload>" with a PNG, JPEG or WEBP type and a payload of
 * base64 characters (with padding, length a multiple of 4, non-empty). Returns 0 with out filled,
 * or -1 when s is no such URI.
 */
int media_data_uri_parse(const char *s, struct media_data_uri *out);

/*
 * Decodes a parsed data: URI's payload. Returns the bytes (caller frees) with *len set, or NULL
 * on OOM or a payload that is not base64.
 */
unsigned char *media_data_uri_decode(const struct media_data_uri *u, size_t *len);

/*
 * The image type of a file: content_type (len bytes, parameters after ';' ignored) when it names
 * PNG, JPEG or WEBP, else what the leading bytes of data are (the SDK sends
 * application/octet-stream for bytes without a type). Returns "image/png", "image/jpeg" or
 * "image/webp" (static storage), or NULL when neither says so. Nothing need be NUL-terminated.
 */
const char *media_image_type(const char *content_type, size_t content_type_len, const char *data,
                             size_t len);

/*
 * "data:<mime>;base64,<data in base64>". Caller frees; NULL on OOM or len past INT32_MAX / 2.
 */
char *media_data_uri_encode(const char *mime, const char *data, size_t len);

/*
 * Checks a video's input_reference (v, borrowed; NULL or null: absent): a string holding a data:
 * URI of a PNG, JPEG or WEBP image (media_data_uri_parse) or an http(s) URL
 * (media_url_fetchable). Returns 0, or CORE_EINVAL with err naming input_reference. The api
 * checks a task's input with it; the dialects read the same field through media_submit_begin.
 */
int media_reference_check(const cJSON *v, struct core_err *err);

/* One file a finished job produced. Strings are borrowed from the reply. */
struct media_output {
    const char *url;
    const char *content_type; /* NULL: judge by the URL's extension */
};

/* What media.c needs to know of a dialect. */
struct media_dialect {
    const char *name;        /* for messages: "the fal dialect ..." */
    const char *auth_prefix; /* the key's header up to the key: "Authorization: Key " */
};

/* The ops a media dialect serves: image and video. */
bool media_op_ok(enum adapter_op op);

/*
 * The start of build_request: out and err reset, then the op, the deployment (base_url and model)
 * and the client's body (call->input) checked and read into in (borrowing from it). Fields the
 * dialect cannot express are refused (CORE_EUNPROCESSABLE), bad values too (CORE_EINVAL).
 * Returns 0, or a negative code with err filled.
 */
int media_submit_begin(const struct media_dialect *d, const struct adapter_call *call,
                       struct media_input *in, struct adapter_request *out, struct core_err *err);

/*
 * The end of build_request: out becomes a POST of body (borrowed; NULL counts as OOM) to url
 * (taken; NULL counts as OOM) with the deployment's key and a JSON content type. Returns 0, or
 * CORE_ENOMEM with err filled; out is the caller's to clean up either way.
 */
int media_submit_finish(const struct media_dialect *d, const struct adapter_target *t, char *url,
                        const cJSON *body, struct adapter_request *out, struct core_err *err);

/*
 * The start of build_poll and build_cancel: out and err reset, the op and base_url checked, and
 * out's method set. Returns 0, or a negative code with err filled.
 */
int media_job_begin(const struct media_dialect *d, const struct adapter_call *call,
                    const char *method, struct adapter_request *out, struct core_err *err);

/*
 * The end of build_poll and build_cancel, once the dialect has set out->url (NULL counts as OOM):
 * the deployment's key. Returns 0, or CORE_ENOMEM with err filled and out cleaned up.
 */
int media_job_finish(const struct media_dialect *d, const struct adapter_target *t,
                     struct adapter_request *out, struct core_err *err);

/* The common aspect ratio ("16:9") nearest to w:h. Static storage. */
const char *media_aspect_ratio(int w, int h);

/* A length as OpenAI's video object writes seconds: "8", or "2.5" for a fraction. */
void media_seconds_text(double s, char *buf, size_t cap);

/*
 * The last percentage in a text (a progress bar in the logs: " 45%|####  | 9/20"), 0-100, or -1
 * when there is none.
 */
int media_progress_from_text(const char *s);

/* True when url is an http(s) URL of at most MEDIA_MAX_URL bytes, which the worker can fetch. */
bool media_url_fetchable(const char *url);

/*
 * True when url is an http(s) URL on the same scheme, host and port as base. Job URLs a provider
 * returns are used only then: the poll sends the API key with them.
 */
bool media_url_same_origin(const char *base, const char *url);

/*
 * Fills err for a job that ended upstream without output (failed or canceled): final, with
 * err_code, and the provider's detail (may be NULL) as the message, else what. Returns
 * CORE_EUPSTREAM.
 */
int media_job_ended(const struct adapter_response *resp, const char *err_code, const char *what,
                    const char *detail, struct core_err *err);

/*
 * Fills out as DONE for a job that produced outputs (n >= 1; borrowed): the OpenAI-shaped result,
 * usage ({"images": n} or {"seconds": s} when the length is known), upstream_id (a copy of id,
 * which may be NULL) and one download per file kept. A video task keeps its first output.
 * Returns 0, or CORE_ENOMEM with err filled (out is then the caller's to clean up).
 */
int media_done(const struct adapter_call *call, const struct adapter_response *resp,
               const struct media_output *outputs, size_t n, const char *id,
               struct adapter_result *out, struct core_err *err);

#endif
