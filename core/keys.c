/*
 * core/keys.c — the keyspace: the prefix every key of one sluice deployment starts with.
 */
#include <stdio.h>
#include <string.h>

#include "core/keys.h"

static bool tag_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-' || c == '.';
}

int keyspace_init(struct keyspace *ks, const char *tag)
{
    size_t n = tag ? strlen(tag) : 0;
    bool ok = tag == NULL || (n >= 1 && n <= KEY_TAG_MAX);

    for (size_t i = 0; ok && i < n; i++) {
        ok = tag_char(tag[i]);
    }
    if (!ok || tag == NULL) {
        tag = KEY_TAG_DEFAULT;
    }
    ks->len = (size_t)snprintf(ks->prefix, sizeof(ks->prefix), "{%s}:", tag);
    return ok ? 0 : -1;
}

int keyspace_key(const struct keyspace *ks, char *buf, size_t size, const char *family,
                 const char *id)
{
    size_t fl = strlen(family), il = id ? strlen(id) : 0;

    if (size == 0) {
        return -1;
    }
    if (ks->len + fl + il >= size) {
        buf[0] = '\0';
        return -1;
    }
    memcpy(buf, ks->prefix, ks->len);
    memcpy(buf + ks->len, family, fl);
    memcpy(buf + ks->len + fl, id ? id : "", il);
    buf[ks->len + fl + il] = '\0';
    return 0;
}
