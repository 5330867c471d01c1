/*
 * core/channel.c — the API channel's message formats (core/channel.h).
 */
#include <stdlib.h>
#include <string.h>

#include "core/channel.h"

int channel_parse(const char *payload, size_t len, struct channel_msg *msg)
{
    const char *sp;

    memset(msg, 0, sizeof(*msg));
    if (len < 3 || payload[1] != ' ' ||
        (payload[0] != CHANNEL_DONE && payload[0] != CHANNEL_RESULT &&
         payload[0] != CHANNEL_CHUNK)) {
        return -1;
    }
    msg->kind = (enum channel_kind)payload[0];
    msg->id = payload + 2;
    sp = memchr(payload + 2, ' ', len - 2);
    msg->id_len = sp ? (size_t)(sp - msg->id) : len - 2;
    if (msg->id_len == 0) {
        return -1;
    }
    if (sp != NULL && msg->kind != CHANNEL_DONE) {
        msg->body = sp + 1;
        msg->body_len = len - (size_t)(sp + 1 - payload);
    }
    if (msg->kind != CHANNEL_DONE && msg->body == NULL) {
        return -1;
    }
    return 0;
}

char *channel_chunk_new(const char *id, const char *chunk, size_t chunk_len, size_t *len)
{
    size_t idlen = strlen(id);
    char *p = malloc(2 + idlen + 1 + chunk_len + 1);

    if (p == NULL) {
        return NULL;
    }
    p[0] = CHANNEL_CHUNK;
    p[1] = ' ';
    memcpy(p + 2, id, idlen);
    p[2 + idlen] = ' ';
    memcpy(p + 3 + idlen, chunk, chunk_len);
    *len = 3 + idlen + chunk_len;
    p[*len] = '\0';
    return p;
}
