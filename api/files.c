/*
 * api/files.c — OpenAI's Files API, the part the Batch API needs: upload (multipart), list,
 * retrieve, download, delete; tenant-scoped (another tenant's file is a 404 like a missing one).
 *
 * Storage: the bytes in <blobs.dir>/files/<id> (written to "tmp_<random>.part" as the upload
 * arrives, fsynced, renamed; core/blobs.h has the layout), the metadata in the hash KS_FILE<id>
 * and the id in the tenant's zset KS_FILES_TENANT<tenant> (score: created ms; core/keys.h). Both
 * Redis writes go in one MULTI/EXEC rather than two plain commands: Redis applies the pair as one
 * step (and drops it whole when the connection breaks before EXEC), so no reader — in this or
 * another API process — ever sees a listed id without its metadata or metadata missing from the
 * list, and one reply tells whether both landed. No Lua is needed because nothing is read and
 * decided on inside Redis: the id is fresh and random.
 *
 * Blocking: an upload is written on the event loop piece by piece as it arrives (the connection
 * guard, api/guard.c, streams it: it is never held in memory) and fsynced there once complete
 * (200 MB at disk speed, a fraction of a second on an SSD), in exchange for a simple, durable
 * write; Redis holds the metadata with AOF, so the bytes must be on disk before the metadata
 * names them. Crashing between the rename and EXEC leaves a file with no metadata in
 * blobs.dir/files (never served; a sweep is not written yet); a client that disconnects
 * mid-upload leaves nothing (the guard frees the upload, which removes its file).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "api/files.h"
#include "api/guard.h"
#include "api/internal.h"
#include "core/blobs.h"
#include "core/keys.h"
#include "core/log.h"
#include "core/multipart.h"
#include "core/multipart_stream.h"
#include "core/task.h"
#include "core/util.h"

#define FILES_PATH_MAX 4096
#define FILES_KEY_MAX 128 /* a key: the prefix (<= 36), a family, a file id or a tenant (<= 64) */
#define FILES_ID_SIZE 48
#define FILES_FILENAME_MAX 255
#define FILES_PURPOSE_MAX 64
#define FILES_LIST_DEFAULT 20
#define FILES_LIST_MAX 100
#define FILES_TX_MAX_CMDS (FILES_LIST_MAX + 1)

/* The purposes the store knows. Clients upload only those marked upload; the server adds the
 * others (api_files_create_from_path). */
static const struct purpose {
    const char *name;
    bool upload;      /* POST /v1/files accepts it */
    bool max_lines;   /* an upload is capped at files.max_lines lines (and must not be empty) */
    const char *type; /* Content-Type of GET /v1/files/{id}/content */
} purposes[] = {
    {"batch", true, true, "application/jsonl"},
    {"batch_output", false, false, "application/jsonl"},
};

static const struct purpose *purpose_find(const char *name)
{
    for (size_t i = 0; i < sizeof(purposes) / sizeof(purposes[0]); i++) {
        if (name != NULL && strcmp(purposes[i].name, name) == 0) {
            return &purposes[i];
        }
    }
    return NULL;
}

/* ---- small helpers ------------------------------------------------------------------------ */

/* <blobs.dir>/files into out, created (with blobs.dir) when missing. Returns 0 or -1. */
static int files_dir(const struct api *a, char *out, size_t size)
{
    if (blobs_files_dir(a->cfg->blobs.dir, out, size) < 0) {
        return -1;
    }
    return blobs_make_dir(a->cfg->blobs.dir, out);
}

/*
 * The key of family (KS_FILE, KS_FILES_TENANT, KS_STATS) for id into buf (FILES_KEY_MAX bytes).
 * Returns 0, or -1 when it does not fit (it always does: config caps a tenant name at 64).
 */
static int files_key(const struct api *a, char *buf, const char *family, const char *id)
{
    return keyspace_key(store_keys(a->store), buf, FILES_KEY_MAX, family, id);
}

/* Makes a rename in dir durable (the directory entry, not only the file's bytes). */
static void sync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
}

int api_files_tmp_path(struct api *a, char *out, size_t out_size)
{
    char dir[FILES_PATH_MAX], name[FILES_ID_SIZE];

    if (files_dir(a, dir, sizeof(dir)) < 0 ||
        util_random_id(BLOBS_TMP_PREFIX, name, sizeof(name)) < 0) {
        return -1;
    }
    return blobs_file_tmp_path(a->cfg->blobs.dir, name, out, out_size);
}

/*
 * One Redis transaction: MULTI, the commands, EXEC. cb gets EXEC's reply (an array with one
 * reply per command). Everything is sent in one synchronous stretch, so no other command on the
 * shared connection can land inside the transaction. Returns 0 (cb runs once) or a negative code
 * (cb never runs; nothing was applied: a half-sent transaction is DISCARDed).
 */
struct tx_cmd {
    int argc;
    const char *argv[14];
};

static int send_tx(struct api *a, struct tx_cmd *cmds, size_t n, store_cb cb, void *arg)
{
    static const char *multi[] = {"MULTI"}, *exec[] = {"EXEC"}, *discard[] = {"DISCARD"};
    int rc = store_command(a->store, NULL, NULL, 1, multi, NULL);

    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = store_command(a->store, NULL, NULL, cmds[i].argc, cmds[i].argv, NULL);
        if (rc < 0 && store_command(a->store, NULL, NULL, 1, discard, NULL) < 0) {
            /* Only reachable on OOM with the connection still up; reconnecting would clear it. */
            log_error("files: could not DISCARD a half-sent transaction", "rc=%d", rc);
        }
    }
    if (rc == 0 && (rc = store_command(a->store, cb, arg, 1, exec, NULL)) < 0) {
        store_command(a->store, NULL, NULL, 1, discard, NULL);
    }
    return rc;
}

/* True when an EXEC reply holds n replies and none of them is an error. */
static bool tx_ok(const redisReply *reply, size_t n)
{
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (reply->element[i]->type == REDIS_REPLY_ERROR) {
            return false;
        }
    }
    return true;
}

/* What a file object shows; strings borrowed. */
struct file_meta {
    const char *id;
    const char *filename;
    const char *purpose;
    long long bytes;
    int64_t created_ms;
};

/* The OpenAI file object. Caller frees. */
static cJSON *file_object(const struct file_meta *m)
{
    cJSON *o = cJSON_CreateObject();

    cJSON_AddStringToObject(o, "id", m->id);
    cJSON_AddStringToObject(o, "object", "file");
    cJSON_AddNumberToObject(o, "bytes", (double)m->bytes);
    cJSON_AddNumberToObject(o, "created_at", (double)(m->created_ms / 1000));
    cJSON_AddStringToObject(o, "filename", m->filename ? m->filename : "");
    cJSON_AddStringToObject(o, "purpose", m->purpose ? m->purpose : "");
    cJSON_AddStringToObject(o, "status", "processed");
    cJSON_AddNullToObject(o, "expires_at");
    cJSON_AddNullToObject(o, "status_details");
    return o;
}

/* The file object from a metadata hash (HGETALL reply). Caller frees. */
static cJSON *file_json(const char *id, const redisReply *hash)
{
    const char *bytes = task_hash_get(hash, "bytes");
    const char *created = task_hash_get(hash, "created");
    struct file_meta m = {
        .id = id,
        .filename = task_hash_get(hash, "filename"),
        .purpose = task_hash_get(hash, "purpose"),
        .bytes = bytes ? strtoll(bytes, NULL, 10) : 0,
        .created_ms = created ? strtoll(created, NULL, 10) : 0,
    };
    return file_object(&m);
}

/* A hash that exists and belongs to tenant. */
static bool owned_by(const redisReply *hash, const char *tenant)
{
    const char *owner = task_hash_get(hash, "tenant");
    return owner != NULL && tenant != NULL && strcmp(owner, tenant) == 0;
}

static void reply_not_found(struct api *a, struct evhttp_request *req, const char *id)
{
    api_reply_error(a, req, CORE_ENOTFOUND, "id", "file_not_found", "No such File object: %s", id);
}

/* ---- storing a finished file (uploads and api_files_create_from_path) -------------------- */

struct put {
    char id[FILES_ID_SIZE];
    char tmp[FILES_PATH_MAX];
    char path[FILES_PATH_MAX];
    char tenant[80];
    long long bytes;
    bool quota; /* a client's upload: refused past the tenant's file quotas */
    api_files_create_cb cb;
    void *arg;
    struct api *api;
};

/* The per-tenant counters of the Files API in the stats hash (/metrics shows the bytes). */
#define FILES_COUNT_STAT "fc|"
#define FILES_BYTES_STAT "fb|"

/*
 * Takes back what file_put wrote for a file that passed its tenant's quota: the metadata, the
 * list entry, the counters (one MULTI/EXEC, no answer awaited: a lost one leaves the counters
 * high, never low).
 */
static void put_undo(struct put *p)
{
    char key[FILES_KEY_MAX], zkey[FILES_KEY_MAX], stats[FILES_KEY_MAX], fc[112], fb[112], neg[24];

    if (files_key(p->api, key, KS_FILE, p->id) < 0 ||
        files_key(p->api, zkey, KS_FILES_TENANT, p->tenant) < 0 ||
        files_key(p->api, stats, KS_STATS, NULL) < 0) {
        return; /* file_put wrote nothing under keys that do not fit */
    }
    snprintf(fc, sizeof(fc), FILES_COUNT_STAT "%s", p->tenant);
    snprintf(fb, sizeof(fb), FILES_BYTES_STAT "%s", p->tenant);
    snprintf(neg, sizeof(neg), "%lld", -p->bytes);
    struct tx_cmd cmds[] = {{2, {"DEL", key}},
                            {3, {"ZREM", zkey, p->id}},
                            {4, {"HINCRBY", stats, fc, "-1"}},
                            {4, {"HINCRBY", stats, fb, neg}}};
    send_tx(p->api, cmds, 4, NULL, NULL);
}

static void on_put(redisReply *reply, const struct core_err *err, void *arg)
{
    struct put *p = arg;
    struct core_err e;

    if (err == NULL && !tx_ok(reply, 4)) {
        core_err_clear(&e);
        core_err_set(&e, CORE_EINTERNAL, NULL, "redis did not store the file's metadata");
        err = &e;
    } else if (err == NULL && p->quota) {
        /* the counters were taken with the write; past a limit, the write is taken back */
        const struct config_quota *q = config_quota_for(p->api->cfg, p->tenant);
        long long files = reply->element[2]->integer, bytes = reply->element[3]->integer;
        if (files > q->max_files || bytes > q->max_file_bytes) {
            put_undo(p);
            core_err_clear(&e);
            core_err_set(
                &e, CORE_EQUOTA, NULL,
                files > q->max_files
                    ? "Your tenant keeps %lld files, its limit max_files (%ld); delete some "
                      "first"
                    : "Your tenant's files would take %lld bytes, past its limit "
                      "max_file_bytes (%ld); delete some first",
                files > q->max_files ? files - 1 : bytes,
                files > q->max_files ? q->max_files : q->max_file_bytes);
            core_err_set_code(&e, "storage_quota_exceeded");
            err = &e;
        }
    }
    if (err != NULL) {
        /* Back where the caller left it: the caller owns it again. */
        if (rename(p->path, p->tmp) < 0) {
            log_error("files: cannot move a file back after a failed store", "path=%s errno=%d",
                      p->path, errno);
        }
        log_warn("files: storing metadata failed", "id=%s error=\"%s\"", p->id, err->message);
        p->cb(p->arg, NULL, err);
    } else {
        p->cb(p->arg, p->id, NULL);
    }
    free(p);
}

/*
 * Moves tmp_path to <blobs.dir>/files/<id> and writes the metadata (one MULTI/EXEC). The
 * ownership rules of api_files_create_from_path; id is fresh.
 */
static int file_put(struct api *a, const char *id, const char *tenant, const char *purpose,
                    const char *filename, const char *tmp_path, long long bytes, int64_t created_ms,
                    bool quota, api_files_create_cb cb, void *arg)
{
    struct put *p = calloc(1, sizeof(*p));
    char dir[FILES_PATH_MAX], key[FILES_KEY_MAX], zkey[FILES_KEY_MAX], stats[FILES_KEY_MAX];
    char bytes_s[24], created_s[24], fc[112], fb[112];
    int rc;

    if (p == NULL) {
        return CORE_ENOMEM;
    }
    p->cb = cb;
    p->arg = arg;
    p->api = a;
    p->quota = quota;
    p->bytes = bytes;
    snprintf(p->tenant, sizeof(p->tenant), "%s", tenant);
    snprintf(p->id, sizeof(p->id), "%s", id);
    snprintf(p->tmp, sizeof(p->tmp), "%s", tmp_path);
    if (blobs_file_path(a->cfg->blobs.dir, id, p->path, sizeof(p->path)) < 0 ||
        files_dir(a, dir, sizeof(dir)) < 0 || strlen(tmp_path) >= sizeof(p->tmp) ||
        files_key(a, key, KS_FILE, id) < 0 || files_key(a, zkey, KS_FILES_TENANT, tenant) < 0 ||
        files_key(a, stats, KS_STATS, NULL) < 0) {
        free(p);
        return CORE_EINTERNAL;
    }
    if (rename(p->tmp, p->path) < 0) {
        log_error("files: cannot move a file into the store", "from=%s to=%s errno=%d", p->tmp,
                  p->path, errno);
        free(p);
        return CORE_EINTERNAL;
    }
    sync_dir(dir);
    snprintf(bytes_s, sizeof(bytes_s), "%lld", bytes);
    snprintf(created_s, sizeof(created_s), "%lld", (long long)created_ms);
    snprintf(fc, sizeof(fc), FILES_COUNT_STAT "%s", tenant);
    snprintf(fb, sizeof(fb), FILES_BYTES_STAT "%s", tenant);
    struct tx_cmd cmds[] = {
        {14,
         {"HSET", key, "tenant", tenant, "bytes", bytes_s, "filename", filename, "purpose", purpose,
          "created", created_s, "path", p->path}},
        {4, {"ZADD", zkey, created_s, id}},
        {4, {"HINCRBY", stats, fc, "1"}},
        {4, {"HINCRBY", stats, fb, bytes_s}},
    };
    rc = send_tx(a, cmds, 4, on_put, p);
    if (rc < 0) {
        if (rename(p->path, p->tmp) < 0) {
            log_error("files: cannot move a file back", "path=%s errno=%d", p->path, errno);
        }
        free(p);
    }
    return rc;
}

int api_files_create_from_path(struct api *a, const char *tenant, const char *purpose,
                               const char *filename, const char *tmp_path, long long bytes,
                               api_files_create_cb cb, void *arg)
{
    char id[FILES_ID_SIZE];
    struct stat st;
    int fd, rc;

    if (purpose_find(purpose) == NULL || tenant == NULL || filename == NULL || cb == NULL) {
        return CORE_EINVAL;
    }
    fd = open(tmp_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
        (bytes >= 0 && (long long)st.st_size != bytes)) {
        if (fd >= 0) {
            close(fd);
        }
        return CORE_EINVAL;
    }
    /* The metadata will be durable (AOF), so the bytes it names must be on disk first. */
    rc = fsync(fd);
    close(fd);
    if (rc < 0) {
        return CORE_EINTERNAL;
    }
    if (util_random_id(API_FILE_ID_PREFIX, id, sizeof(id)) < 0) {
        return CORE_EINTERNAL;
    }
    return file_put(a, id, tenant, purpose, filename, tmp_path, (long long)st.st_size,
                    util_now_ms(), false, cb, arg);
}

/* ---- POST /v1/files: the upload, streamed (the contract is in api/files.h) --------------- */

enum part_kind { PART_NONE, PART_FILE, PART_PURPOSE, PART_OTHER };

struct api_upload {
    struct api *api; /* borrowed: used while bytes are fed, never by api_upload_free */
    struct multipart_stream *mp;
    bool failed;
    struct core_err err;
    long long body_bytes;
    enum part_kind part;      /* the part bytes are arriving for */
    int fd;                   /* the file part's temporary file, -1 when none is open */
    char tmp[FILES_PATH_MAX]; /* its path; "" once the store took it over (or none) */
    bool have_file;
    bool file_has_name; /* the file part was a file (had a filename), not a text field */
    bool name_too_long;
    char filename[FILES_FILENAME_MAX + 1];
    bool have_purpose;
    size_t purpose_len;
    char purpose[FILES_PURPOSE_MAX];
    long long bytes;    /* of the file */
    long long newlines; /* in the file */
    char last;          /* the file's last byte */
};

/* Marks u failed: the error its answer gives (a CORE_E* code, the param and OpenAI code it names,
 * a message). The first failure is the one answered. Returns -1. */
static int upload_fail(struct api_upload *u, int code, const char *param, const char *err_code,
                       const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int upload_fail(struct api_upload *u, int code, const char *param, const char *err_code,
                       const char *fmt, ...)
{
    va_list ap;

    if (u->failed) {
        return -1;
    }
    u->failed = true;
    core_err_set(&u->err, code, param, "%s", "");
    core_err_set_code(&u->err, err_code);
    va_start(ap, fmt);
    vsnprintf(u->err.message, sizeof(u->err.message), fmt, ap);
    va_end(ap);
    return -1;
}

static int storage_failed(struct api_upload *u)
{
    log_error("files: cannot write an upload", "path=%s errno=%d", u->tmp, errno);
    return upload_fail(u, CORE_EINTERNAL, NULL, "storage_error", "The file could not be stored");
}

static bool part_is(const struct multipart_part *p, const char *name)
{
    return p->name_len == strlen(name) && memcmp(p->name, name, p->name_len) == 0;
}

/* A part begins: the file part gets its temporary file; purpose is kept; others are ignored. */
static int on_part_begin(const struct multipart_part *p, void *arg)
{
    struct api_upload *u = arg;

    u->part = PART_OTHER;
    if (part_is(p, "purpose")) {
        u->part = PART_PURPOSE;
        u->have_purpose = true;
        u->purpose_len = 0;
        return 0;
    }
    if (!part_is(p, "file")) {
        return 0;
    }
    if (u->have_file) {
        return upload_fail(u, CORE_EINVAL, "file", NULL, "Send exactly one 'file' part");
    }
    u->have_file = true;
    u->part = PART_FILE;
    u->file_has_name = p->filename != NULL;
    if (!u->file_has_name) {
        return 0; /* a text field: refused once the purpose is checked, as before */
    }
    u->name_too_long = p->filename_len > FILES_FILENAME_MAX;
    snprintf(u->filename, sizeof(u->filename), "%.*s",
             (int)(u->name_too_long ? 0 : p->filename_len), p->filename);
    if (api_files_tmp_path(u->api, u->tmp, sizeof(u->tmp)) < 0 ||
        (u->fd = open(u->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640)) < 0) {
        u->tmp[0] = '\0';
        return storage_failed(u);
    }
    return 0;
}

/* The purpose this upload names so far, if the store knows it. */
static const struct purpose *upload_purpose(const struct api_upload *u)
{
    char name[FILES_PURPOSE_MAX];

    if (!u->have_purpose) {
        return NULL;
    }
    memcpy(name, u->purpose, u->purpose_len);
    name[u->purpose_len] = '\0';
    return purpose_find(name);
}

static int on_part_data(const char *data, size_t len, void *arg)
{
    struct api_upload *u = arg;
    long max_bytes = u->api->cfg->files.max_bytes;
    long max_lines = u->api->cfg->files.max_lines;
    const struct purpose *purpose;

    if (u->part == PART_PURPOSE) {
        if (u->purpose_len + len >= sizeof(u->purpose) || memchr(data, '\0', len) != NULL) {
            return upload_fail(u, CORE_EINVAL, "purpose", NULL, "'purpose' is not valid");
        }
        memcpy(u->purpose + u->purpose_len, data, len);
        u->purpose_len += len;
        return 0;
    }
    if (u->part != PART_FILE || !u->file_has_name) {
        return 0;
    }
    u->bytes += (long long)len;
    if (u->bytes > max_bytes) {
        return upload_fail(u, CORE_ETOOLARGE, "file", "file_too_large",
                           "The file is larger than the limit of %ld bytes", max_bytes);
    }
    for (const char *p = data, *end = data + len; (p = memchr(p, '\n', (size_t)(end - p)));) {
        u->newlines++;
        p++;
    }
    u->last = data[len - 1];
    purpose = upload_purpose(u);
    if (purpose != NULL && purpose->max_lines && u->newlines > max_lines) {
        return upload_fail(u, CORE_EINVAL, "file", "too_many_lines",
                           "A batch file may have at most %ld lines; this one has more", max_lines);
    }
    if (util_write_all(u->fd, data, len) < 0) {
        return storage_failed(u);
    }
    return 0;
}

static int on_part_end(void *arg)
{
    struct api_upload *u = arg;
    u->part = PART_NONE;
    return 0;
}

static const struct multipart_stream_cbs upload_cbs = {on_part_begin, on_part_data, on_part_end};

struct api_upload *api_upload_new(struct api *a, const char *content_type, size_t ct_len,
                                  int64_t declared)
{
    struct api_upload *u = calloc(1, sizeof(*u));
    long cap = a->cfg->files.max_bytes + API_FILES_FORM_OVERHEAD;
    char ct[1024], boundary[80];

    if (u == NULL) {
        return NULL;
    }
    u->api = a;
    u->fd = -1;
    core_err_clear(&u->err);
    if (content_type == NULL || ct_len >= sizeof(ct)) {
        ct[0] = '\0';
    } else {
        memcpy(ct, content_type, ct_len);
        ct[ct_len] = '\0';
    }
    if (multipart_boundary(ct, boundary, sizeof(boundary)) < 0) {
        upload_fail(u, CORE_EINVAL, NULL, "invalid_content_type",
                    "Uploads must be multipart/form-data with 'purpose' and 'file' fields");
    } else if (declared > cap) {
        upload_fail(u, CORE_ETOOLARGE, "file", "request_too_large",
                    "Upload of %lld bytes is larger than the file limit of %ld bytes",
                    (long long)declared, a->cfg->files.max_bytes);
    } else if ((u->mp = multipart_stream_new(boundary, &upload_cbs, u)) == NULL) {
        upload_fail(u, CORE_EINVAL, NULL, "invalid_content_type",
                    "The multipart boundary of the Content-Type is not valid");
    }
    return u;
}

int api_upload_feed(struct api_upload *u, const char *data, size_t len)
{
    long cap = u->api->cfg->files.max_bytes + API_FILES_FORM_OVERHEAD;

    if (u->failed) {
        return -1;
    }
    u->body_bytes += (long long)len;
    if (u->body_bytes > cap) {
        return upload_fail(u, CORE_ETOOLARGE, "file", "request_too_large",
                           "Upload is larger than the file limit of %ld bytes",
                           u->api->cfg->files.max_bytes);
    }
    if (multipart_stream_feed(u->mp, data, len) != 0) {
        /* a callback's failure is already recorded; otherwise the form itself is broken */
        return upload_fail(u, CORE_EINVAL, NULL, "invalid_multipart",
                           "The multipart/form-data body is malformed");
    }
    return 0;
}

/* The checks of a complete form, in the order the Files API has always answered them. */
int api_upload_finish(struct api_upload *u)
{
    const struct purpose *purpose = upload_purpose(u);
    long max_lines = u->api->cfg->files.max_lines;
    long long lines = u->newlines + (u->bytes > 0 && u->last != '\n');

    if (u->failed) {
        return -1;
    }
    if (multipart_stream_finish(u->mp) < 0) {
        return upload_fail(u, CORE_EINVAL, NULL, "invalid_multipart",
                           "The multipart/form-data body is malformed");
    }
    if (!u->have_purpose) {
        return upload_fail(u, CORE_EINVAL, "purpose", NULL, "'purpose' is required");
    }
    if (purpose == NULL || !purpose->upload) {
        return upload_fail(u, CORE_EINVAL, "purpose", NULL,
                           "'%.*s' is not a supported purpose; sluice accepts 'batch' files",
                           (int)u->purpose_len, u->purpose);
    }
    if (!u->have_file || !u->file_has_name) {
        return upload_fail(u, CORE_EINVAL, "file", NULL, "'file' must be a file part");
    }
    if (u->name_too_long) {
        return upload_fail(u, CORE_EINVAL, "file", NULL, "The file name is longer than %d bytes",
                           FILES_FILENAME_MAX);
    }
    if (purpose->max_lines && lines == 0) {
        return upload_fail(u, CORE_EINVAL, "file", "empty_file", "The file is empty");
    }
    if (purpose->max_lines && lines > max_lines) {
        return upload_fail(u, CORE_EINVAL, "file", "too_many_lines",
                           "A batch file may have at most %ld lines; this one has more", max_lines);
    }
    /* The metadata will be durable (AOF), so the bytes it names must be on disk first. */
    if (fsync(u->fd) < 0 || close(u->fd) < 0) {
        u->fd = -1;
        return storage_failed(u);
    }
    u->fd = -1;
    return 0;
}

const struct core_err *api_upload_error(const struct api_upload *u)
{
    return u->failed ? &u->err : NULL;
}

void api_upload_free(struct api_upload *u)
{
    if (u == NULL) {
        return;
    }
    if (u->fd >= 0) {
        close(u->fd);
    }
    if (u->tmp[0] != '\0') {
        unlink(u->tmp);
    }
    multipart_stream_free(u->mp);
    free(u);
}

static void on_uploaded(void *arg, const char *file_id, const struct core_err *err)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        /* file_put moved the file back to its temporary path, which c->body names */
        if (cJSON_IsString(c->body)) {
            unlink(c->body->valuestring);
        }
        if (err->code == CORE_EUNAVAILABLE) {
            api_reply_store_down(c->api, c->req);
        } else {
            api_reply_err(c->api, c->req, err);
        }
    } else {
        api_reply_json(c->api, c->req, 200, c->task);
        c->task = NULL;
    }
    api_ctx_free(c);
}

/*
 * The connection guard streamed the body already and hands over the finished upload it names
 * (API_UPLOAD_HEADER): its error is the answer, or its file is stored (renamed into place, then
 * the metadata in one MULTI/EXEC).
 */
void api_files_create(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    const char *name = evhttp_find_header(evhttp_request_get_input_headers(req), API_UPLOAD_HEADER);
    struct api_upload *u = name ? api_guard_take_upload(a, name) : NULL;
    const struct purpose *purpose;
    struct api_ctx *c = NULL;
    struct core_err e;
    int rc;

    if (u == NULL) {
        api_reply_error(a, req, CORE_EINTERNAL, NULL, NULL, "The upload's body was not received");
        return;
    }
    if (api_upload_error(u) != NULL) {
        api_reply_err(a, req, api_upload_error(u));
        goto out;
    }
    purpose = upload_purpose(u);
    c = api_ctx_new(a, req, tenant);
    if (c == NULL || util_random_id(API_FILE_ID_PREFIX, c->id, sizeof(c->id)) < 0 ||
        (c->body = cJSON_CreateString(u->tmp)) == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    {
        /* The answer, rendered now from the values the hash gets. */
        struct file_meta m = {.id = c->id,
                              .filename = u->filename[0] ? u->filename : "upload",
                              .purpose = purpose->name,
                              .bytes = u->bytes,
                              .created_ms = util_now_ms()};
        c->task = file_object(&m);
        rc = file_put(a, c->id, tenant, purpose->name, m.filename, u->tmp, m.bytes, m.created_ms,
                      true, on_uploaded, c);
    }
    if (rc < 0) {
        core_err_clear(&e);
        if (rc == CORE_EUNAVAILABLE) {
            api_reply_store_down(a, req);
        } else {
            core_err_set(&e, rc, NULL, "The file could not be stored");
            api_reply_err(a, req, &e);
        }
        goto out; /* the file is back at u->tmp: api_upload_free removes it */
    }
    u->tmp[0] = '\0'; /* the store has it now */
    c = NULL;         /* on_uploaded answers and frees it */
out:
    api_upload_free(u);
    api_ctx_free(c);
}

/* ---- GET /v1/files/{id}, GET /v1/files/{id}/content, DELETE /v1/files/{id} ---------------- */

enum read_mode { READ_META, READ_CONTENT, READ_DELETE };

/* A context for a request about file id: NULL after answering 404 (not a file id) or 500. */
static struct api_ctx *ctx_for_file(struct api *a, struct evhttp_request *req, const char *tenant,
                                    const char *id)
{
    return api_ctx_for_id(a, req, tenant, API_FILE_ID_PREFIX, id, reply_not_found);
}

/* Sends the file's bytes without copying them (evbuffer_add_file: sendfile or mmap). */
static void send_content(struct api_ctx *c, const redisReply *hash)
{
    const char *path = task_hash_get(hash, "path");
    const struct purpose *p = purpose_find(task_hash_get(hash, "purpose"));
    struct stat st;
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;

    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0) {
            close(fd);
        }
        api_reply_error(c->api, c->req, CORE_ENOTFOUND, "id", "content_not_found",
                        "The content of file %s is not available on this server", c->id);
        return;
    }
    evhttp_add_header(evhttp_request_get_output_headers(c->req), "Content-Type",
                      p ? p->type : "application/octet-stream");
    /* evbuffer_add_file takes the descriptor (and closes it); a file of 0 bytes adds nothing. */
    if (st.st_size > 0) {
        evbuffer_add_file(evhttp_request_get_output_buffer(c->req), fd, 0, st.st_size);
    } else {
        close(fd);
    }
    c->api->responses[2]++;
    evhttp_send_reply(c->req, 200, "OK", NULL);
}

static void on_deleted(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (!tx_ok(reply, 2) || reply->element[0]->type != REDIS_REPLY_INTEGER) {
        api_reply_error(c->api, c->req, CORE_EINTERNAL, NULL, NULL,
                        "Redis did not delete the file's metadata");
    } else if (reply->element[0]->integer == 0) {
        reply_not_found(c->api, c->req, c->id); /* a concurrent DELETE won */
    } else {
        cJSON *o = cJSON_CreateObject();
        char fc[112], fb[112], stats[FILES_KEY_MAX];
        files_key(c->api, stats, KS_STATS, NULL);
        snprintf(fc, sizeof(fc), FILES_COUNT_STAT "%s", c->tenant);
        snprintf(fb, sizeof(fb), FILES_BYTES_STAT "%s", c->tenant);
        /* this DELETE removed the metadata (a concurrent one found nothing): the tenant's
         * counters go down once */
        const char *count_argv[] = {"HINCRBY", stats, fc, "-1"};
        char neg[24];
        snprintf(neg, sizeof(neg), "%lld", -(long long)c->values[0]);
        const char *bytes_argv[] = {"HINCRBY", stats, fb, neg};
        store_command(c->api->store, NULL, NULL, 4, count_argv, NULL);
        store_command(c->api->store, NULL, NULL, 4, bytes_argv, NULL);
        /* The metadata is gone, so nothing serves the bytes any more; a crash before this
         * unlink leaves an unreferenced file, never a reference to a missing one. */
        if (cJSON_IsString(c->body) && unlink(c->body->valuestring) < 0 && errno != ENOENT) {
            log_warn("files: cannot remove a deleted file's bytes", "path=%s errno=%d",
                     c->body->valuestring, errno);
        }
        cJSON_AddStringToObject(o, "id", c->id);
        cJSON_AddStringToObject(o, "object", "file");
        cJSON_AddBoolToObject(o, "deleted", true);
        api_reply_json(c->api, c->req, 200, o);
    }
    api_ctx_free(c);
}

/* Removes the metadata and the list entry in one MULTI/EXEC, then the bytes. Takes c. */
static void start_delete(struct api_ctx *c, const redisReply *hash)
{
    const char *path = task_hash_get(hash, "path");
    char key[FILES_KEY_MAX], zkey[FILES_KEY_MAX];

    files_key(c->api, key, KS_FILE, c->id);
    struct tx_cmd cmds[] = {{2, {"DEL", key}}, {3, {"ZREM", zkey, c->id}}};
    c->body = path ? cJSON_CreateString(path) : NULL;
    c->values[0] = task_hash_get(hash, "bytes") ? atoll(task_hash_get(hash, "bytes")) : 0;
    if (files_key(c->api, zkey, KS_FILES_TENANT, c->tenant) < 0 ||
        send_tx(c->api, cmds, 2, on_deleted, c) < 0) {
        api_reply_store_down(c->api, c->req);
        api_ctx_free(c);
    }
}

static void on_read(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (!owned_by(reply, c->tenant)) {
        /* Another tenant's file is indistinguishable from a missing one. */
        reply_not_found(c->api, c->req, c->id);
    } else if (c->mode == READ_META) {
        api_reply_json(c->api, c->req, 200, file_json(c->id, reply));
    } else if (c->mode == READ_CONTENT) {
        send_content(c, reply);
    } else {
        start_delete(c, reply);
        return;
    }
    api_ctx_free(c);
}

static void read_file(struct api *a, struct evhttp_request *req, const char *tenant, const char *id,
                      enum read_mode mode)
{
    struct api_ctx *c = ctx_for_file(a, req, tenant, id);
    char key[FILES_KEY_MAX];

    if (c == NULL) {
        return;
    }
    c->mode = mode;
    files_key(a, key, KS_FILE, id); /* id is a file id: it fits */
    const char *argv[] = {"HGETALL", key};
    if (store_command(a->store, on_read, c, 2, argv, NULL) < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
}

void api_files_get(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    read_file(a, req, tenant, arg, READ_META);
}

void api_files_content(struct api *a, struct evhttp_request *req, const char *tenant,
                       const char *arg)
{
    read_file(a, req, tenant, arg, READ_CONTENT);
}

void api_files_delete(struct api *a, struct evhttp_request *req, const char *tenant,
                      const char *arg)
{
    read_file(a, req, tenant, arg, READ_DELETE);
}

/* ---- GET /v1/files ------------------------------------------------------------------------ */

/*
 * Three round trips, each needing the one before: the rank of `after` (skipped without it), a
 * page of ids (limit + 1, to know has_more), and their hashes in one MULTI/EXEC. c->values[0] is
 * the limit, c->values[1] 1 for order=asc; c->id the cursor; c->body the page's ids.
 */
enum { LIST_LIMIT, LIST_ASC };

static void on_hashes(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    size_t n = (size_t)cJSON_GetArraySize(c->body);
    size_t want = n < (size_t)c->values[LIST_LIMIT] ? n : (size_t)c->values[LIST_LIMIT];
    cJSON *data;

    if (err != NULL || !tx_ok(reply, want)) {
        api_reply_store_down(c->api, c->req);
        goto out;
    }
    data = cJSON_CreateArray();
    for (size_t i = 0; i < want; i++) {
        const char *id = cJSON_GetArrayItem(c->body, (int)i)->valuestring;
        /* A file deleted between the two round trips has an empty hash: skip it. */
        if (owned_by(reply->element[i], c->tenant)) {
            cJSON_AddItemToArray(data, file_json(id, reply->element[i]));
        }
    }
    api_reply_json(c->api, c->req, 200, api_list_page(data, n > want));
out:
    api_ctx_free(c);
}

static void on_range(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;
    struct tx_cmd cmds[FILES_TX_MAX_CMDS];
    char keys[FILES_TX_MAX_CMDS][FILES_KEY_MAX];
    size_t want;

    if (err != NULL || reply->type != REDIS_REPLY_ARRAY) {
        api_reply_store_down(c->api, c->req);
        goto fail;
    }
    c->body = cJSON_CreateArray();
    for (size_t i = 0; i < reply->elements && c->body; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING) {
            cJSON_AddItemToArray(c->body, cJSON_CreateString(reply->element[i]->str));
        }
    }
    want = (size_t)cJSON_GetArraySize(c->body);
    want = want < (size_t)c->values[LIST_LIMIT] ? want : (size_t)c->values[LIST_LIMIT];
    for (size_t i = 0; i < want; i++) {
        files_key(c->api, keys[i], KS_FILE, cJSON_GetArrayItem(c->body, (int)i)->valuestring);
        cmds[i] = (struct tx_cmd){2, {"HGETALL", keys[i]}};
    }
    if (send_tx(c->api, cmds, want, on_hashes, c) < 0) {
        api_reply_store_down(c->api, c->req);
        goto fail;
    }
    return;
fail:
    api_ctx_free(c);
}

/* Asks for the page of ids from rank start on. Returns 0 or a negative code (nothing sent). */
static int list_range(struct api_ctx *c, long long start)
{
    char zkey[FILES_KEY_MAX], start_s[24], stop_s[24];

    if (files_key(c->api, zkey, KS_FILES_TENANT, c->tenant) < 0) {
        return CORE_EINTERNAL;
    }
    snprintf(start_s, sizeof(start_s), "%lld", start);
    snprintf(stop_s, sizeof(stop_s), "%lld", start + (long long)c->values[LIST_LIMIT]);
    const char *argv[] = {c->values[LIST_ASC] ? "ZRANGE" : "ZREVRANGE", zkey, start_s, stop_s};
    return store_command(c->api->store, on_range, c, 4, argv, NULL);
}

static void on_rank(redisReply *reply, const struct core_err *err, void *arg)
{
    struct api_ctx *c = arg;

    if (err != NULL) {
        api_reply_store_down(c->api, c->req);
    } else if (reply->type != REDIS_REPLY_INTEGER) {
        api_reply_error(c->api, c->req, CORE_EINVAL, "after", NULL,
                        "'after' does not name a file in this list");
    } else if (list_range(c, reply->integer + 1) < 0) {
        api_reply_store_down(c->api, c->req);
    } else {
        return;
    }
    api_ctx_free(c);
}

void api_files_list(struct api *a, struct evhttp_request *req, const char *tenant, const char *arg)
{
    static const struct api_list_spec spec = {FILES_LIST_DEFAULT, FILES_LIST_MAX,
                                              API_FILE_ID_PREFIX, "file"};
    struct evkeyvalq params;
    const char *after, *order;
    long limit;
    struct api_ctx *c = NULL;
    int rc;

    if (api_list_query(a, req, &params, &spec, &limit, &after) < 0) {
        goto out;
    }
    order = evhttp_find_header(&params, "order");
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        api_reply_error(a, req, CORE_EINVAL, "order", NULL, "'order' must be 'asc' or 'desc'");
        goto out;
    }
    if (evhttp_find_header(&params, "purpose") != NULL) {
        api_reply_error(a, req, CORE_EINVAL, "purpose", NULL,
                        "Filtering the list by 'purpose' is not supported yet");
        goto out;
    }
    c = api_ctx_new(a, req, tenant);
    if (c == NULL) {
        api_reply_error(a, req, CORE_ENOMEM, NULL, NULL, "Out of memory");
        goto out;
    }
    c->values[LIST_LIMIT] = limit;
    c->values[LIST_ASC] = order && strcmp(order, "asc") == 0;
    if (after) {
        char zkey[FILES_KEY_MAX];
        snprintf(c->id, sizeof(c->id), "%s", after);
        const char *argv[] = {c->values[LIST_ASC] ? "ZRANK" : "ZREVRANK", zkey, c->id};
        rc = files_key(a, zkey, KS_FILES_TENANT, tenant) < 0
                 ? CORE_EINTERNAL
                 : store_command(a->store, on_rank, c, 3, argv, NULL);
    } else {
        rc = list_range(c, 0);
    }
    if (rc < 0) {
        api_reply_store_down(a, req);
        api_ctx_free(c);
    }
out:
    evhttp_clear_headers(&params);
}

/* ---- api_files_lookup --------------------------------------------------------------------- */

struct lookup {
    char *tenant;
    char id[FILES_ID_SIZE];
    api_files_lookup_cb cb;
    void *arg;
};

static void on_lookup(redisReply *reply, const struct core_err *err, void *arg)
{
    struct lookup *l = arg;
    const char *path = err ? NULL : task_hash_get(reply, "path");
    const char *bytes = err ? NULL : task_hash_get(reply, "bytes");
    const char *purpose = err ? NULL : task_hash_get(reply, "purpose");
    struct core_err e;

    if (err != NULL) {
        l->cb(l->arg, NULL, 0, NULL, err);
    } else if (!owned_by(reply, l->tenant) || path == NULL) {
        core_err_clear(&e);
        core_err_set(&e, CORE_ENOTFOUND, NULL, "No such File object: %s", l->id);
        core_err_set_code(&e, "file_not_found");
        l->cb(l->arg, NULL, 0, NULL, &e);
    } else {
        l->cb(l->arg, path, bytes ? strtoll(bytes, NULL, 10) : 0, purpose ? purpose : "", NULL);
    }
    free(l->tenant);
    free(l);
}

int api_files_lookup(struct api *a, const char *tenant, const char *id, api_files_lookup_cb cb,
                     void *arg)
{
    struct lookup *l;
    char key[FILES_KEY_MAX];
    int rc;

    if (id == NULL || !util_id_valid(API_FILE_ID_PREFIX, id)) {
        return CORE_ENOTFOUND;
    }
    l = calloc(1, sizeof(*l));
    if (l == NULL || (l->tenant = strdup(tenant)) == NULL) {
        free(l);
        return CORE_ENOMEM;
    }
    snprintf(l->id, sizeof(l->id), "%s", id);
    l->cb = cb;
    l->arg = arg;
    files_key(a, key, KS_FILE, id); /* id is a file id: it fits */
    const char *argv[] = {"HGETALL", key};
    rc = store_command(a->store, on_lookup, l, 2, argv, NULL);
    if (rc < 0) {
        free(l->tenant);
        free(l);
    }
    return rc;
}
