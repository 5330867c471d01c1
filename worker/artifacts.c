/*
 * worker/artifacts.c — keeping the bytes of images and videos.
 *
 * A finished media task's artifacts are kept once, in the blob directory (one folder per task,
 * one file per artifact), so GET /v1/tasks/{id}/content serves them after the provider's URL has
 * expired. Inline base64 is decoded; URLs are downloaded through the worker's HTTP client,
 * streamed to a ".part" file and renamed when complete, capped at blobs.max_bytes. Disk writes
 * are plain blocking writes: artifacts are written once per task, and a local disk answers in
 * microseconds; a slow network filesystem would call for a writer thread.
 *
 * Once every image is kept, an image task's result refers to its artifacts instead of the
 * provider's URLs or base64 (core/artifact_ref.h): the api renders each answer from the kept bytes,
 * as the client's response_format asks.
 */
#include <dirent.h>
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/artifact_ref.h"
#include "core/log.h"
#include "core/util.h"
#include "worker/internal.h"

static void next_artifact(struct job *j);

/* The folder of this task's artifacts, created if missing. Caller frees. */
static char *task_dir(const struct job *j)
{
    const char *root = j->w->cfg->blobs.dir;
    size_t n = strlen(root) + strlen(j->id) + 2;
    char *dir = malloc(n);

    if (dir == NULL) {
        return NULL;
    }
    mkdir(root, 0750);
    snprintf(dir, n, "%s/%s", root, j->id);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        free(dir);
        return NULL;
    }
    return dir;
}

static void record(struct job *j, const char *content_type, int64_t bytes)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "index", (double)j->artifact_next);
    cJSON_AddStringToObject(a, "content_type",
                            content_type && content_type[0] ? content_type
                                                            : "application/octet-stream");
    cJSON_AddNumberToObject(a, "bytes", (double)bytes);
    cJSON_AddItemToArray(j->artifacts_json, a);
    j->artifact_next++;
}

static void fail_keep(struct job *j, bool retryable, const char *fmt, const char *detail)
{
    struct core_err e;
    core_err_clear(&e);
    core_err_set(&e, CORE_EUPSTREAM, NULL, fmt, detail ? detail : "");
    e.retryable = retryable;
    exec_fail(j, &e);
}

/* Decodes base64 into the artifact's file. Returns the byte count, or -1. */
static int64_t keep_b64(struct job *j, const char *b64, const char *path)
{
    size_t len = strlen(b64);
    unsigned char *raw = malloc(len / 4 * 3 + 3);
    int n, fd;
    int64_t out = -1;

    if (raw == NULL || len % 4 != 0) {
        free(raw);
        return -1;
    }
    n = EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)len);
    if (n >= 0) {
        /* EVP_DecodeBlock counts the padding as zero bytes. */
        n -= (len >= 1 && b64[len - 1] == '=') + (len >= 2 && b64[len - 2] == '=');
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        if (fd >= 0 && util_write_all(fd, (const char *)raw, (size_t)n) == 0) {
            out = n;
        }
        if (fd >= 0) {
            close(fd);
        }
    }
    free(raw);
    (void)j;
    return out;
}

static int on_fetch_data(int status, const char *buf, size_t len, void *arg)
{
    struct job *j = arg;
    (void)status;
    j->artifact_bytes += (int64_t)len;
    if (j->artifact_bytes > j->w->cfg->blobs.max_bytes) {
        return 1;
    }
    return util_write_all(j->artifact_fd, buf, len) == 0 ? 0 : 1;
}

static void on_fetch_done(const struct adapter_response *resp, void *arg)
{
    struct job *j = arg;
    const struct adapter_artifact *a = &j->done.artifacts[j->artifact_next];
    const char *ctype =
        a->content_type[0] ? a->content_type : adapter_header_get(resp, "content-type");
    bool ok = resp->transport == ADAPTER_TRANSPORT_OK && resp->status >= 200 &&
              resp->status <= 299 && j->artifact_bytes <= j->w->cfg->blobs.max_bytes;

    j->http = NULL;
    close(j->artifact_fd);
    j->artifact_fd = -1;
    if (!ok || rename(j->artifact_tmp, j->artifact_path) < 0) {
        unlink(j->artifact_tmp);
        if (j->artifact_bytes > j->w->cfg->blobs.max_bytes) {
            fail_keep(j, false, "the artifact is larger than blobs.max_bytes%s", NULL);
        } else {
            fail_keep(j, true, "could not download the artifact: %s",
                      resp->transport_msg ? resp->transport_msg : "bad status");
        }
        return;
    }
    record(j, ctype, j->artifact_bytes);
    next_artifact(j);
}

/*
 * An image result's data items refer to the kept artifacts (core/artifact_ref.h), in the form the
 * client asked for. A response_format the provider let through but sluice does not know is
 * answered as url. Returns 0, CORE_EINVAL for a result without a data array, or CORE_ENOMEM.
 */
static int refer_artifacts(struct job *j)
{
    bool all_inline = j->done.n_artifacts > 0;
    enum artifact_form form;

    for (size_t i = 0; i < j->done.n_artifacts; i++) {
        all_inline = all_inline && j->done.artifacts[i].b64 != NULL;
    }
    artifact_form_for(j->call.input, all_inline, &form);
    return artifact_ref_store(j->done.result, form, j->done.n_artifacts);
}

/* Keeps artifacts one after the other; the last one reports the job completed. */
static void next_artifact(struct job *j)
{
    char *dir = NULL;
    int rc;

    while (j->artifact_next < j->done.n_artifacts) {
        const struct adapter_artifact *a = &j->done.artifacts[j->artifact_next];
        size_t n;

        dir = dir ? dir : task_dir(j);
        if (dir == NULL) {
            fail_keep(j, true, "cannot create the blob directory%s", NULL);
            return;
        }
        n = strlen(dir) + 32;
        free(j->artifact_path);
        free(j->artifact_tmp);
        j->artifact_path = malloc(n);
        j->artifact_tmp = malloc(n);
        if (j->artifact_path == NULL || j->artifact_tmp == NULL ||
            artifact_blob_path(j->w->cfg->blobs.dir, j->id, j->artifact_next, j->artifact_path,
                               n) != 0) {
            free(dir);
            fail_keep(j, true, "out of memory%s", NULL);
            return;
        }
        snprintf(j->artifact_tmp, n, "%s.part", j->artifact_path);
        if (a->b64) {
            int64_t bytes = keep_b64(j, a->b64, j->artifact_path);
            if (bytes < 0) {
                free(dir);
                fail_keep(j, false, "the provider's base64 image could not be decoded%s", NULL);
                return;
            }
            record(j, a->content_type, bytes);
            continue;
        }
        j->artifact_fd = open(j->artifact_tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
        j->artifact_bytes = 0;
        if (j->artifact_fd < 0) {
            free(dir);
            fail_keep(j, true, "cannot write the artifact: %s", strerror(errno));
            return;
        }
        j->http = http_client_send_stream(j->w->http, &a->fetch, j->dep->provider->timeout_ms,
                                          on_fetch_data, on_fetch_done, j);
        if (j->http == NULL) {
            close(j->artifact_fd);
            j->artifact_fd = -1;
            unlink(j->artifact_tmp);
            free(dir);
            fail_keep(j, true, "could not start the artifact download%s", NULL);
        }
        free(dir);
        return;
    }
    free(dir);
    if (j->call.op == ADAPTER_OP_IMAGE && (rc = refer_artifacts(j)) != 0) {
        fail_keep(j, rc == CORE_ENOMEM, "the images response cannot refer to its kept images%s",
                  NULL);
        return;
    }
    j->artifacts = cJSON_PrintUnformatted(j->artifacts_json);
    exec_complete(j, &j->done);
}

void artifacts_keep(struct job *j)
{
    j->artifact_next = 0;
    j->artifacts_json = cJSON_CreateArray();
    if (j->artifacts_json == NULL) {
        fail_keep(j, true, "out of memory%s", NULL);
        return;
    }
    next_artifact(j);
}

void artifacts_abort(struct job *j)
{
    if (j->artifact_fd >= 0) {
        close(j->artifact_fd);
        j->artifact_fd = -1;
        if (j->artifact_tmp) {
            unlink(j->artifact_tmp);
        }
    }
}

/* Removes one task folder and the files in it (artifacts are flat: no subfolders). */
static void remove_task_dir(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    char file[4096 + 256];

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') {
            continue;
        }
        int n = snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        if (n > 0 && (size_t)n < sizeof(file)) {
            unlink(file);
        }
    }
    closedir(d);
    rmdir(path);
}

void artifacts_sweep(struct worker *w, int max_entries)
{
    const char *root = w->cfg->blobs.dir;
    time_t cutoff = time(NULL) - (time_t)w->cfg->tasks.retention_s - 3600;
    DIR *d = opendir(root);
    struct dirent *e;
    char path[4096 + 256];
    struct stat st;
    int seen = 0, removed = 0;

    if (d == NULL) {
        return;
    }
    while ((e = readdir(d)) != NULL && seen++ < max_entries) {
        if (strncmp(e->d_name, "task_", 5) != 0) {
            continue;
        }
        int n = snprintf(path, sizeof(path), "%s/%s", root, e->d_name);
        if (n > 0 && (size_t)n < sizeof(path) && stat(path, &st) == 0 && S_ISDIR(st.st_mode) &&
            st.st_mtime < cutoff) {
            remove_task_dir(path);
            removed++;
        }
    }
    closedir(d);
    if (removed > 0) {
        log_info("removed expired artifacts", "tasks=%d", removed);
    }
}
