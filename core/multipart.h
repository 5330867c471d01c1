/*
 * core/multipart.h — multipart/form-data (RFC 7578), as the OpenAI SDK sends POST /v1/videos
 * and file uploads. The whole body is in memory (bounded by the API's body limit); parts are
 * slices of it, nothing is copied.
 */
#ifndef SLUICE_CORE_MULTIPART_H
#define SLUICE_CORE_MULTIPART_H

#include <stddef.h>

#define MULTIPART_MAX_PARTS 64

struct multipart_part {
    const char *name; /* the form field name (not NUL-terminated) */
    size_t name_len;
    const char *filename; /* NULL when the part is not a file */
    size_t filename_len;
    const char *content_type; /* NULL when absent */
    size_t content_type_len;
    const char *data;
    size_t len;
};

/*
 * The boundary parameter of a multipart/form-data Content-Type, copied into out (at most 70
 * characters, as the RFC allows). Returns 0, or -1 when the header is not multipart/form-data
 * or has no usable boundary.
 */
int multipart_boundary(const char *content_type, char *out, size_t out_size);

/*
 * Reads a part's header block [h, end) ("Name: value" lines separated by CRLF, no final blank
 * line) into part: the Content-Disposition name (required) and filename, and the Content-Type.
 * Slices point into the block. Returns 0, or -1 when no name was found. Shared by the in-memory
 * and the streaming parser (core/multipart_stream.c).
 */
int multipart_part_headers(const char *h, const char *end, struct multipart_part *part);

/*
 * Calls cb for each part of body, in order. Returns 0, -1 when the body is malformed or has more
 * than MULTIPART_MAX_PARTS parts, or the first non-zero value cb returned.
 */
int multipart_parse(const char *body, size_t len, const char *boundary,
                    int (*cb)(const struct multipart_part *part, void *arg), void *arg);

#endif
