/*
 * api/files.h — the Files API's contract with the rest of the api (the Batch API first): find a
 * tenant's file, and add a file the server wrote itself (a batch's output and error files).
 * api-internal, like api/internal.h: not for other roles.
 *
 * A file is its bytes at <blobs.dir>/files/<id> plus a Redis hash KEY_FILE<id> (tenant, bytes,
 * filename, purpose, created ms, path) listed in the tenant's KEY_FILES_TENANT<tenant> zset. The
 * bytes live on the API host's disk, like task artifacts: processes on several hosts need
 * blobs.dir on a shared filesystem.
 *
 * Callbacks follow libuv's rule: when a call that takes a callback returns 0, the callback runs
 * exactly once, later, from the event loop (never from inside the call); when it returns a
 * negative CORE_E* code, the callback never runs.
 */
#ifndef SLUICE_API_FILES_H
#define SLUICE_API_FILES_H

#include <stddef.h>

#include "core/err.h"

struct api;

#define API_FILE_ID_PREFIX "file_"

/* What an upload's multipart body may carry beyond the file's own bytes (boundaries, part
 * headers, the purpose field): evhttp's body cap is files.max_bytes plus this. */
#define API_FILES_FORM_OVERHEAD (64L * 1024)

/*
 * How a lookup went. On success err is NULL, path is the file's bytes on disk and bytes its size
 * (path borrowed for the call: copy it, and open the file before yielding to the loop if you can —
 * a DELETE may unlink it later, though an open descriptor keeps working) and purpose the file's
 * purpose (borrowed too). On failure path and purpose are NULL
 * and err says why: CORE_ENOTFOUND (no such file, or another tenant's, which is the same thing to
 * the caller) or CORE_EUNAVAILABLE (Redis down or timed out); err is borrowed for the call.
 */
typedef void (*api_files_lookup_cb)(void *arg, const char *path, long long bytes,
                                    const char *purpose, const struct core_err *err);

/*
 * Looks up file id for tenant: one HGETALL. tenant and id are borrowed for the call only; arg is
 * passed through. Returns 0 (cb runs once), CORE_ENOTFOUND when id is not even a file id,
 * CORE_EUNAVAILABLE when Redis is not connected, or CORE_ENOMEM (cb never runs).
 */
int api_files_lookup(struct api *a, const char *tenant, const char *id, api_files_lookup_cb cb,
                     void *arg);

/*
 * How a create went: file_id ("file_" + 26 chars, borrowed for the call) and err NULL, or
 * file_id NULL and err (borrowed) saying why — CORE_EUNAVAILABLE or CORE_EINTERNAL from Redis.
 */
typedef void (*api_files_create_cb)(void *arg, const char *file_id, const struct core_err *err);

/*
 * Adds a finished file the server wrote (a batch's output or error JSONL) to tenant's files: the
 * file at tmp_path is fsynced and renamed into the store, then its metadata is written in one
 * MULTI/EXEC (the file's id is fresh). Blocks on the fsync: call it for a closed, finished file.
 * purpose is one the Files API knows ("batch", "batch_output"); filename is what clients will
 * see; bytes is the file's size as the caller counted it (checked against the file; -1 skips the
 * check). All strings are borrowed for the call only.
 *
 * tmp_path must be on the same filesystem as <blobs.dir>/files so the move is one rename():
 * api_files_tmp_path gives such a path. Ownership of the file: on success it belongs to the
 * store (it is no longer at tmp_path); on any failure — a negative return or an error in cb — it
 * is left at tmp_path and the caller still owns it (to retry or unlink).
 *
 * Returns 0 (cb runs once), or CORE_EINVAL (unknown purpose, tmp_path missing or of another
 * size), CORE_EINTERNAL (rename failed), CORE_EUNAVAILABLE (Redis not connected), CORE_ENOMEM;
 * then cb never runs.
 */
int api_files_create_from_path(struct api *a, const char *tenant, const char *purpose,
                               const char *filename, const char *tmp_path, long long bytes,
                               api_files_create_cb cb, void *arg);

/*
 * A fresh path for a file being written, inside <blobs.dir>/files (created if missing), ending
 * in ".part" so nothing mistakes it for a stored file. Returns 0, or -1 when out is too small,
 * the folder cannot be created or no random name could be made.
 */
int api_files_tmp_path(struct api *a, char *out, size_t out_size);

#endif
