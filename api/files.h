/*
 * api/files.h — the Files API's contract with the rest of the api (the Batch API first): find a
 * tenant's file, and add a file the server wrote itself (a batch's output and error files).
 * api-internal, like api/internal.h: not for other roles.
 *
 * A file is its bytes at <blobs.dir>/files/<id> (core/blobs.h) plus a Redis hash KS_FILE<id>
 * (tenant, bytes, filename, purpose, created ms, path) listed in the tenant's
 * KS_FILES_TENANT<tenant> zset (core/keys.h). The bytes live on the API host's disk, like task
 * artifacts: processes on several hosts need blobs.dir on a shared filesystem.
 *
 * Callbacks follow libuv's rule: when a call that takes a callback returns 0, the callback runs
 * exactly once, later, from the event loop (never from inside the call); when it returns a
 * negative CORE_E* code, the callback never runs.
 */
#ifndef SLUICE_API_FILES_H
#define SLUICE_API_FILES_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

struct api;

#define API_FILE_ID_PREFIX "file_"

/* What an upload's multipart body may carry beyond the file's own bytes (boundaries, part
 * headers, the purpose field): an upload's body may have files.max_bytes plus this. */
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

/*
 * An upload (POST /v1/files) streamed as its body arrives, by the connection guard (api/guard.h):
 * the file part goes straight into a temporary file in <blobs.dir>/files, the purpose field into
 * memory, other fields nowhere; files.max_bytes, the body's own cap (files.max_bytes +
 * API_FILES_FORM_OVERHEAD) and, for a purpose with a line limit, files.max_lines are enforced as
 * bytes arrive. Once the body is complete (or the upload failed), the guard hands evhttp a
 * bodiless POST /v1/files naming it in API_UPLOAD_HEADER, and api_files_create takes it over
 * (api_guard_take_upload): it stores the file, or answers the upload's error. Nothing of an upload
 * is ever held in memory beyond one piece of the body.
 */
#define API_UPLOAD_HEADER "X-Sluice-Upload"

struct api_upload;

/*
 * Starts an upload for a request whose key was checked: content_type is its Content-Type (ct_len
 * bytes, borrowed for the call, NULL when absent) and declared its Content-Length (-1: chunked).
 * Returns NULL only on OOM. An upload refused on its headers alone (not multipart/form-data, or
 * declared larger than the body's cap) comes back failed already (api_upload_error), and takes no
 * bytes. a must outlive the feeding (not the upload: see api_upload_free).
 */
struct api_upload *api_upload_new(struct api *a, const char *content_type, size_t ct_len,
                                  int64_t declared);

/*
 * Takes the next len bytes of the body (borrowed). Returns 0, or -1 once the upload has failed
 * (for this piece or before): api_upload_error says why, and later bytes are ignored.
 */
int api_upload_feed(struct api_upload *u, const char *data, size_t len);

/*
 * The body is complete: checks the form (a purpose the Files API accepts, one file part with a
 * name, within the line limit, not empty) and makes the file durable (fsync, blocking). Returns
 * 0 or -1 (the upload has failed).
 */
int api_upload_finish(struct api_upload *u);

/* Why the upload failed (the answer to give, with its status), or NULL. Borrowed from u. */
const struct core_err *api_upload_error(const struct api_upload *u);

/* Frees u and removes the temporary file it still holds. Never touches the api, so it is safe
 * after api_free. NULL is a no-op. */
void api_upload_free(struct api_upload *u);

#endif
