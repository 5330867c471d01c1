/*
 * worker/inputs.c — a pipeline task's input files, handed to the provider as data: URIs.
 *
 * The pipeline runner links an earlier step's artifact into the new task's blob folder as input
 * file k (core/blobs.h) and writes the token "sluice-input:<k>:<content type>" where the step's
 * input referred to the artifact. Before the adapter builds the request, every string of the
 * input that is exactly such a token becomes "data:<content type>;base64,<the bytes>", so each
 * dialect receives the bytes in the form it already takes (a multipart file for OpenAI, a data:
 * URI for fal and Replicate, inline bytes for Gemini) and no URL of sluice's is needed. A task
 * reads only its own folder. The read is a plain blocking one, like the artifacts' writes: once
 * per attempt, bounded by blobs.max_bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "core/blobs.h"
#include "worker/internal.h"

#define INPUT_MAX_DEPTH 64
#define INPUT_TYPE_MAX 128

/* Reads the whole file at path (at most max bytes) into *out (caller frees). 0 or an errno. */
static int read_file(const char *path, long max, unsigned char **out, size_t *len)
{
    struct stat st;
    unsigned char *buf = NULL;
    size_t got = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC), err = 0;

    if (fd < 0) {
        return errno;
    }
    if (fstat(fd, &st) < 0) {
        err = errno;
    } else if (st.st_size > max) {
        err = EFBIG;
    } else if ((buf = malloc((size_t)st.st_size + 1)) == NULL) {
        err = ENOMEM;
    }
    while (err == 0 && got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            err = n < 0 ? errno : EIO;
            break;
        }
        got += (size_t)n;
    }
    close(fd);
    if (err != 0) {
        free(buf);
        return err;
    }
    *out = buf;
    *len = got;
    return 0;
}

/*
 * The data: URI for token s ("sluice-input:<k>:<type>") of task id, or NULL with e set. A token
 * that does not parse is an error too: only the runner writes the prefix.
 */
static char *token_uri(struct worker *w, const char *id, const char *s, struct core_err *e)
{
    const char *p = s + strlen(BLOBS_INPUT_TOKEN), *type;
    char path[4096], *end, *uri = NULL;
    unsigned char *bytes = NULL;
    size_t len = 0, head;
    unsigned long k = strtoul(p, &end, 10);
    int err;

    if (end == p || *end != ':' || k >= BLOBS_INPUT_MAX) {
        core_err_set(e, CORE_EINVAL, "input", "malformed input file reference");
        return NULL;
    }
    type = end + 1;
    if (type[0] == '\0' || strlen(type) > INPUT_TYPE_MAX || strpbrk(type, ";, \"") != NULL) {
        core_err_set(e, CORE_EINVAL, "input", "malformed input file reference");
        return NULL;
    }
    if (blobs_input_path(w->cfg->blobs.dir, id, k, path, sizeof(path)) != 0) {
        core_err_set(e, CORE_EINTERNAL, "input", "input file path too long");
        return NULL;
    }
    err = read_file(path, w->cfg->blobs.max_bytes, &bytes, &len);
    if (err != 0) {
        core_err_set(e, err == EFBIG ? CORE_ETOOLARGE : CORE_EUNPROCESSABLE, "input",
                     "input file %lu of this task cannot be read: %s", k, strerror(err));
        return NULL;
    }
    head = strlen("data:") + strlen(type) + strlen(";base64,");
    uri = malloc(head + 4 * ((len + 2) / 3) + 1);
    if (uri == NULL) {
        free(bytes);
        core_err_set(e, CORE_ENOMEM, NULL, "out of memory");
        return NULL;
    }
    snprintf(uri, head + 1, "data:%s;base64,", type);
    EVP_EncodeBlock((unsigned char *)uri + head, bytes, (int)len);
    free(bytes);
    return uri;
}

/* Replaces the tokens in node and below it. 0, or -1 with e set. */
static int walk(struct worker *w, const char *id, cJSON *node, int depth, struct core_err *e)
{
    cJSON *c;

    if (depth > INPUT_MAX_DEPTH) {
        core_err_set(e, CORE_EINVAL, "input", "input nested too deeply");
        return -1;
    }
    cJSON_ArrayForEach(c, node)
    {
        if (cJSON_IsString(c) &&
            strncmp(c->valuestring, BLOBS_INPUT_TOKEN, strlen(BLOBS_INPUT_TOKEN)) == 0) {
            char *uri = token_uri(w, id, c->valuestring, e);
            if (uri == NULL) {
                return -1;
            }
            cJSON_free(c->valuestring);
            c->valuestring = uri; /* cJSON frees it with cJSON_free: the default is free */
        } else if ((cJSON_IsObject(c) || cJSON_IsArray(c)) && walk(w, id, c, depth + 1, e) < 0) {
            return -1;
        }
    }
    return 0;
}

int inputs_inline(struct worker *w, const char *id, cJSON *input, struct core_err *e)
{
    return walk(w, id, input, 0, e);
}
