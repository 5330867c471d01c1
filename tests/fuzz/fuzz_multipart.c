/*
 * Fuzz target: the multipart/form-data parser, with a fixed boundary and with the boundary taken
 * from a Content-Type made of the input's first line.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/multipart.h"

static int count(const struct multipart_part *part, void *arg)
{
    size_t *n = arg;
    *n += part->len + part->name_len + part->filename_len + part->content_type_len;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    const char *nl = memchr(data, '\n', size);
    char boundary[80];

    multipart_parse((const char *)data, size, "XyZ", count, &n);
    if (nl != NULL) {
        size_t line = (size_t)(nl - (const char *)data);
        char *ct = malloc(line + 1);
        if (ct != NULL) {
            memcpy(ct, data, line);
            ct[line] = '\0';
            if (multipart_boundary(ct, boundary, sizeof(boundary)) == 0) {
                multipart_parse(nl + 1, size - line - 1, boundary, count, &n);
            }
            free(ct);
        }
    }
    return 0;
}
