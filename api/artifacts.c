/*
 * api/artifacts.c — images answered the way the client asked (OpenAI's response_format), from the
 * bytes the worker kept, and the capability URLs that serve those bytes.
 *
 * An image task's stored result refers to its kept artifacts (core/artifact_ref.h). Every answer
 * renders it: "url" becomes a signed URL of this api (core/artifact_url.h) that a plain GET reads
 * with no bearer key, as clients read a provider's pre-signed URL; "b64_json" becomes the kept
 * bytes in base64. URLs are rendered per answer and never stored: they expire, and their base
 * is the host the client reached us by (or public_base_url).
 *
 * The signing key is blobs.url_key, or else one random key that the first api process creates in
 * Redis (SET NX) and every api process reads back each time its connection comes up, so they all
 * sign alike and any of them serves a URL another one issued.
 *
 * Reading kept bytes for b64_json is a plain blocking read on the loop, like the worker's writes
 * of them: a local disk answers in microseconds. The bytes inlined in one answer are capped
 * (API_INLINE_MAX_BYTES); past it the client is told to ask for URLs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "api/internal.h"
#include "core/artifact_ref.h"
#include "core/artifact_url.h"
#include "core/blobs.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/task.h"
#include "core/util.h"

/*
 * Raw bytes inlined as b64_json in one answer. Ten 1536x1024 PNGs from gpt-image-1 are ~30 MB;
 * the answer is built in memory (base64 is 4/3 of the bytes, and printing copies it once more).
 */
#define API_INLINE_MAX_BYTES (32L << 20)

/* ---- the signing key ---------------------------------------------------------------------- */

static void on_url_key(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api *a = arg;
    char key[64];

    if (err != NULL) {
        return; /* the connection went down: read again when it is back */
    }
    if (reply->type != REDIS_REPLY_STRING || reply->len < ARTIFACT_URL_KEY_MIN ||
        reply->len > ARTIFACT_URL_KEY_MAX) {
        keyspace_key(store_keys(a->store), key, sizeof(key), KS_ARTIFACT_URL_KEY, NULL);
        log_warn("the artifact URL key in Redis is unusable", "key=%s", key);
        return;
    }
    memcpy(a->url_key, reply->str, reply->len);
    a->url_key_len = reply->len;
}

/*
 * On every connect: offer a fresh random key (SET NX keeps the first one ever written) and read
 * back whichever key Redis holds (the keyspace's KS_ARTIFACT_URL_KEY). The two commands go in
 * order on one connection, so the GET sees the winner.
 */
static void on_store_state(bool connected, void *arg)
{
    struct api *a = arg;
    unsigned char fresh[ARTIFACT_URL_RANDOM_BYTES];
    char key[64]; /* the prefix (<= 36 bytes) and "artifact_url_key" */
    const char *set[] = {"SET", key, (const char *)fresh, "NX"};
    size_t set_lens[] = {3, 0, sizeof(fresh), 2};
    const char *get[] = {"GET", key};

    if (!connected ||
        keyspace_key(store_keys(a->store), key, sizeof(key), KS_ARTIFACT_URL_KEY, NULL) < 0) {
        return;
    }
    set_lens[1] = strlen(key);
    if (RAND_bytes(fresh, sizeof(fresh)) == 1) {
        store_command(a->store, NULL, NULL, 4, set, set_lens);
    }
    OPENSSL_cleanse(fresh, sizeof(fresh));
    store_command(a->store, on_url_key, a, 2, get, NULL);
}

void api_artifacts_init(struct api *a)
{
    const char *key = a->cfg->blobs.url_key;

    if (key != NULL) {
        /* the config checked its length */
        a->url_key_len = strlen(key);
        memcpy(a->url_key, key, a->url_key_len);
        return;
    }
    store_on_state(a->store, on_store_state, a);
    if (store_ready(a->store)) {
        on_store_state(true, a);
    }
}

void api_artifacts_cleanup(struct api *a)
{
    OPENSSL_cleanse(a->url_key, sizeof(a->url_key));
    a->url_key_len = 0;
}

/* ---- rendering ---------------------------------------------------------------------------- */

/*
 * The kept bytes of artifact index of task id, base64 (caller frees), charged to *budget.
 * NULL with err filled when they cannot be read or pass the budget.
 */
static char *read_b64(struct api *a, const char *id, long index, size_t *budget,
                      struct core_err *err)
{
    char path[4096];
    struct stat st;
    unsigned char *raw = NULL;
    char *b64 = NULL;
    size_t got = 0;
    ssize_t n;
    int fd = -1;
    bool ok = false;

    if (artifact_blob_path(a->cfg->blobs.dir, id, (size_t)index, path, sizeof(path)) != 0 ||
        (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        core_err_set(err, CORE_EINTERNAL, NULL,
                     "The image of task %s is not available on this server", id);
        goto out;
    }
    if ((size_t)st.st_size > *budget) {
        core_err_set(err, CORE_EUNPROCESSABLE, "response_format",
                     "The images are larger than the %ld bytes sluice inlines as b64_json; ask "
                     "for response_format \"url\"",
                     API_INLINE_MAX_BYTES);
        core_err_set_code(err, "images_too_large");
        goto out;
    }
    raw = malloc((size_t)st.st_size + 1);
    b64 = malloc(4 * (((size_t)st.st_size + 2) / 3) + 1);
    if (raw == NULL || b64 == NULL) {
        core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
        goto out;
    }
    while (got < (size_t)st.st_size &&
           ((n = read(fd, raw + got, (size_t)st.st_size - got)) > 0 || (n < 0 && errno == EINTR))) {
        got += n > 0 ? (size_t)n : 0;
    }
    if (got != (size_t)st.st_size) {
        core_err_set(err, CORE_EINTERNAL, NULL, "The image of task %s could not be read", id);
        goto out;
    }
    EVP_EncodeBlock((unsigned char *)b64, raw, (int)got);
    *budget -= got;
    ok = true;
out:
    free(raw);
    if (fd >= 0) {
        close(fd);
    }
    if (!ok) {
        free(b64);
        b64 = NULL;
    }
    return b64;
}

/*
 * Renders a loaded stored result (borrowed, changed in place) in form: each data item's
 * {"artifact": i} becomes "url" (a capability URL of task id on the base this request reached us
 * by) or "b64_json" (the bytes of the task owner names, "": id's own). Returns 0, or a negative
 * code with err filled.
 */
static int render(struct api *a, struct evhttp_request *req, const char *id, const char *owner,
                  cJSON *result, enum artifact_form form, struct core_err *err)
{
    const char *host = evhttp_find_header(evhttp_request_get_input_headers(req), "Host");
    int64_t expires = util_now_ms() / 1000 + a->cfg->blobs.url_ttl_s;
    size_t budget = API_INLINE_MAX_BYTES;
    char base[ARTIFACT_URL_BASE_MAX];
    char url[ARTIFACT_URL_MAX];
    cJSON *item;

    if (form == ARTIFACT_FORM_URL && a->url_key_len == 0) {
        return core_err_set(err, CORE_EUNAVAILABLE, NULL,
                            "Image URLs cannot be signed until the key is read from Redis");
    }
    if (form == ARTIFACT_FORM_URL &&
        artifact_url_base(a->cfg->public_base_url, host, a->cfg->listen_host, a->cfg->listen_port,
                          base, sizeof(base)) != 0) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "The base URL is too long");
    }
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(result, "data"))
    {
        long index = artifact_ref_index(item);
        char *b64;
        bool ok;

        if (index < 0) {
            continue;
        }
        cJSON_DeleteItemFromObjectCaseSensitive(item, ARTIFACT_REF_ITEM);
        if (form == ARTIFACT_FORM_URL) {
            ok = artifact_url_format(base, a->url_key, a->url_key_len, id, index, expires, url,
                                     sizeof(url)) == 0 &&
                 cJSON_AddStringToObject(item, "url", url) != NULL;
        } else {
            if ((b64 = read_b64(a, owner[0] ? owner : id, index, &budget, err)) == NULL) {
                return err->code;
            }
            ok = cJSON_AddStringToObject(item, "b64_json", b64) != NULL;
            free(b64);
        }
        if (!ok) {
            return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
        }
    }
    return 0;
}

void api_answer_result(struct api *a, struct evhttp_request *req, const char *id,
                       const char *result, size_t len)
{
    enum artifact_form form;
    cJSON *loaded = NULL;
    struct core_err e;
    char owner[ARTIFACT_REF_OWNER_MAX];
    char *text;

    if (!artifact_ref_is(result, len)) {
        evbuffer_add(evhttp_request_get_output_buffer(req), result, len);
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json");
        a->responses[2]++;
        evhttp_send_reply(req, 200, "OK", NULL);
        return;
    }
    core_err_clear(&e);
    if (artifact_ref_load(result, len, &form, &loaded, owner) != 0) {
        core_err_set(&e, CORE_EINTERNAL, NULL,
                     "The stored images response of task %s is unreadable", id);
    } else if (render(a, req, id, owner, loaded, form, &e) == 0) {
        text = cJSON_PrintUnformatted(loaded);
        cJSON_Delete(loaded);
        if (text != NULL) {
            api_reply_json_text(a, req, 200, text);
            return;
        }
        core_err_set(&e, CORE_ENOMEM, NULL, "Out of memory");
        loaded = NULL;
    }
    cJSON_Delete(loaded);
    log_warn("cannot render an images response", "task=%s error=\"%s\"", id, e.message);
    api_reply_err(a, req, &e);
}

/* The stored result text rendered in form; NULL when it cannot be. Caller frees. */
static cJSON *render_text(struct api *a, struct evhttp_request *req, const char *id,
                          const char *text, bool inline_ok, struct core_err *err)
{
    enum artifact_form form;
    char owner[ARTIFACT_REF_OWNER_MAX];
    cJSON *r = NULL;

    if (artifact_ref_load(text, strlen(text), &form, &r, owner) != 0) {
        core_err_set(err, CORE_EINTERNAL, NULL, "unreadable stored images response");
        return NULL;
    }
    if (render(a, req, id, owner, r, inline_ok ? form : ARTIFACT_FORM_URL, err) != 0) {
        cJSON_Delete(r);
        return NULL;
    }
    return r;
}

/*
 * The stored result text of an images task rendered (as the client asked when inline_ok, else as
 * URLs; URLs too when the bytes cannot be inlined here), printed. NULL for any other result, or
 * when it cannot be rendered (the task's artifacts[].url still lead to the bytes). Caller frees.
 */
static char *render_result(struct api *a, struct evhttp_request *req, const char *id,
                           const char *text, bool inline_ok)
{
    struct core_err e;
    cJSON *r;
    char *out;

    if (text == NULL || !artifact_ref_is(text, strlen(text))) {
        return NULL;
    }
    core_err_clear(&e);
    r = render_text(a, req, id, text, inline_ok, &e);
    if (r == NULL && inline_ok) {
        r = render_text(a, req, id, text, false, &e);
    }
    if (r == NULL) {
        log_warn("cannot render an images response", "task=%s error=\"%s\"", id, e.message);
        return NULL;
    }
    out = cJSON_PrintUnformatted(r);
    cJSON_Delete(r);
    return out;
}

char *api_task_text(struct api *a, struct evhttp_request *req, const char *id,
                    const redisReply *hash, bool inline_ok, const struct api_task_live *live)
{
    struct task_view v;
    char *result, *text;

    if (task_view_from_hash(&v, id, hash) != 0) {
        return NULL;
    }
    result = render_result(a, req, id, v.result, inline_ok);
    if (result != NULL) {
        v.result = result;
    }
    if (live != NULL && live->queue_position >= 0) {
        v.queue_position = TASK_VIEW_NONE; /* shown last, where GET always put the live one */
        v.queue_position_now = live->queue_position;
    }
    if (live != NULL && live->eta_s >= 0) {
        v.eta_seconds = live->eta_s;
    }
    text = task_view_render(&v);
    cJSON_free(result);
    return text;
}

/* ---- GET /v1/artifacts/<task id>/<index>?expires=&sig= ------------------------------------ */

static void on_artifacts(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (reply->type != REDIS_REPLY_STRING) {
        api_reply_error(c->api, c->req, CORE_ENOTFOUND, NULL, "artifact_not_found",
                        "The artifact is no longer kept");
    } else {
        api_send_artifact(c->api, c->req, c->id, reply->str, (long)c->values[0]);
    }
    api_ctx_free(c);
}

/* The index segment of the URL: 1-4 digits up to ARTIFACT_URL_MAX_INDEX; -1 when it is not. */
static long parse_index(const char *s)
{
    size_t n = strspn(s, "0123456789");
    long v;

    if (n == 0 || n > 4 || s[n] != '\0') {
        return -1;
    }
    v = strtol(s, NULL, 10);
    return v <= ARTIFACT_URL_MAX_INDEX ? v : -1;
}

/*
 * No bearer key: the signature is the credential. A URL that is not one sluice makes is 404; a
 * signature that does not match, or one past its expiry, is 403. The task must still exist.
 */
void api_artifacts_get(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri); /* the route matched /v1/artifacts/<id>/<index> */
    const char *query = evhttp_uri_get_query(uri);
    const char *start = path + strlen(ARTIFACT_URL_PATH);
    size_t id_len = strcspn(start, "/");
    long index = parse_index(arg); /* arg is the last segment */
    struct evkeyvalq params;
    struct api_ctx *c = NULL;
    struct core_err e;
    char id[TASK_ID_LEN + 1];
    char key[96]; /* the prefix (<= 36 bytes), KS_TASK and a task id */

    TAILQ_INIT(&params);
    core_err_clear(&e);
    if (id_len != TASK_ID_LEN || index < 0) {
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "artifact_not_found", "No such artifact");
        goto out;
    }
    memcpy(id, start, id_len);
    id[id_len] = '\0';
    if (!util_id_valid(TASK_ID_PREFIX, id)) {
        api_reply_error(a, req, CORE_ENOTFOUND, NULL, "artifact_not_found", "No such artifact");
        goto out;
    }
    if (a->url_key_len == 0) {
        api_reply_store_down(a, req);
        goto out;
    }
    if (query != NULL && evhttp_parse_query_str(query, &params) < 0) {
        evhttp_clear_headers(&params);
        TAILQ_INIT(&params);
    }
    if (artifact_url_check(a->url_key, a->url_key_len, id, index,
                           evhttp_find_header(&params, "expires"),
                           evhttp_find_header(&params, "sig"), util_now_ms() / 1000, &e) != 0) {
        api_reply_err(a, req, &e);
        goto out;
    }
    if ((c = api_ctx_for_task(a, req, tenant, id)) == NULL) {
        goto out;
    }
    c->values[0] = index;
    keyspace_key(store_keys(a->store), key, sizeof(key), KS_TASK, id);
    const char *argv[] = {"HGET", key, "artifacts"};
    if (store_command(a->store, on_artifacts, c, 3, argv, NULL) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
out:
    evhttp_clear_headers(&params);
}
