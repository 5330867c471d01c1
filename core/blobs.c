/*
 * core/blobs.c — the path layout under blobs.dir (see blobs.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/blobs.h"
#include "core/task.h"

/* printf into out (cap bytes): 0, or -1 when it does not fit (out then ""). */
static int path_fmt(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return -1;
    }
    return 0;
}

int blobs_artifact_dir(const char *dir, const char *id, char *out, size_t cap)
{
    return path_fmt(out, cap, "%s/%s", dir, id);
}

int artifact_blob_path(const char *dir, const char *id, size_t index, char *out, size_t cap)
{
    return path_fmt(out, cap, "%s/%s/%zu", dir, id, index);
}

int blobs_input_path(const char *dir, const char *id, size_t k, char *out, size_t cap)
{
    return path_fmt(out, cap, "%s/%s/in%zu", dir, id, k);
}

int blobs_files_dir(const char *dir, char *out, size_t cap)
{
    return path_fmt(out, cap, "%s/" BLOBS_FILES_DIR, dir);
}

int blobs_file_path(const char *dir, const char *id, char *out, size_t cap)
{
    return path_fmt(out, cap, "%s/" BLOBS_FILES_DIR "/%s", dir, id);
}

int blobs_file_tmp_path(const char *dir, const char *name, char *out, size_t cap)
{
    return path_fmt(out, cap, "%s/" BLOBS_FILES_DIR "/%s" BLOBS_TMP_SUFFIX, dir, name);
}

int blobs_make_dir(const char *dir, const char *sub)
{
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        return -1;
    }
    if (mkdir(sub, 0750) < 0 && errno != EEXIST) {
        return -1;
    }
    return 0;
}

/*
 * The folder's entries are the task's artifacts (and any temporary file a crash left): unlinked
 * one by one, then the folder. The id is checked first, so a bad id cannot name another path.
 */
int artifact_blob_remove(const char *dir, const char *id)
{
    char path[4096], file[4096 + 256];
    DIR *d;
    struct dirent *e;

    if (!task_id_valid(id)) {
        errno = EINVAL;
        return -1;
    }
    if (blobs_artifact_dir(dir, id, path, sizeof(path)) != 0) {
        errno = ENAMETOOLONG;
        return -1;
    }
    if ((d = opendir(path)) == NULL) {
        return errno == ENOENT ? 0 : -1;
    }
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        snprintf(file, sizeof(file), "%s/%s", path, e->d_name);
        unlink(file);
    }
    closedir(d);
    return rmdir(path) == 0 || errno == ENOENT ? 0 : -1;
}
