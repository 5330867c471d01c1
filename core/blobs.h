/*
 * core/blobs.h — every path under blobs.dir, written once.
 *
 * sluice keeps bytes that do not belong in Redis on disk, under the configured blobs.dir (the
 * hashes in Redis name them; processes on several hosts need blobs.dir on a shared filesystem):
 *
 *   <dir>/<task id>/                   a task's kept artifacts (the worker writes them, the api
 *                                      serves them, the scheduler removes the folder with the task)
 *   <dir>/<task id>/<index>            artifact index of the task (images, a video)
 *   <dir>/<task id>/<index>.part.XXXXXX  one being written (mkstemp), renamed when complete
 *   <dir>/<task id>/in<k>              input k of a pipeline's task: an earlier step's artifact,
 *                                      linked here by the pipeline runner before the task exists;
 *                                      its input names it with the token
 *                                      "sluice-input:<k>:<content type>", which the worker
 *                                      replaces with a data: URI of the bytes (worker/inputs.c).
 *                                      A task reads only its own folder, so a token in a client's
 *                                      own input names nothing of another task.
 *   <dir>/files/                       the Files API's bytes (api/files.c)
 *   <dir>/files/<file id>              one file's bytes (its hash's "path" names it)
 *   <dir>/files/tmp_<random>.part      a file being written (an upload, a batch's output)
 *
 * The functions here only compose paths (and make folders): each returns 0, or -1 when the path
 * does not fit in cap bytes (out then holds "" when cap > 0). All strings are borrowed.
 */
#ifndef SLUICE_CORE_BLOBS_H
#define SLUICE_CORE_BLOBS_H

#include <stddef.h>

#define BLOBS_FILES_DIR "files"                  /* the Files API's folder in blobs.dir */
#define BLOBS_TMP_PREFIX "tmp_"                  /* a file being written: its random name's */
#define BLOBS_TMP_SUFFIX ".part"                 /* ... and its suffix */
#define BLOBS_ARTIFACT_TMP_SUFFIX ".part.XXXXXX" /* an artifact being written (mkstemp) */

/* The folder of task id's artifacts: "<dir>/<id>". */
int blobs_artifact_dir(const char *dir, const char *id, char *out, size_t cap);

/*
 * Where artifact index of task id is kept: "<dir>/<id>/<index>", into out (cap bytes). Returns 0,
 * or -1 when it does not fit.
 */
int artifact_blob_path(const char *dir, const char *id, size_t index, char *out, size_t cap);

/*
 * Removes the blob folder of task id ("<dir>/<id>" and the files in it), when the task is gone.
 * id must be a task id (checked, so no path can be named). Returns 0 (also when there was no
 * folder), or -1 with errno set.
 */
int artifact_blob_remove(const char *dir, const char *id);

#define BLOBS_INPUT_TOKEN "sluice-input:" /* a task input's stand-in for its input file */
#define BLOBS_INPUT_MAX 64                /* input files one task may have */

/* Where input k of task id is kept: "<dir>/<id>/in<k>". */
int blobs_input_path(const char *dir, const char *id, size_t k, char *out, size_t cap);

/* The Files API's folder: "<dir>/files". */
int blobs_files_dir(const char *dir, char *out, size_t cap);

/* The bytes of file id: "<dir>/files/<id>". */
int blobs_file_path(const char *dir, const char *id, char *out, size_t cap);

/*
 * A path for a file being written in "<dir>/files": "<dir>/files/<name>.part", where name is a
 * fresh random name that starts with BLOBS_TMP_PREFIX (util_random_id makes one).
 */
int blobs_file_tmp_path(const char *dir, const char *name, char *out, size_t cap);

/*
 * Creates dir (blobs.dir) and then sub, a folder in it (from blobs_artifact_dir or
 * blobs_files_dir), mode 0750, each unless it exists. Returns 0, or -1 with errno set.
 */
int blobs_make_dir(const char *dir, const char *sub);

#endif
