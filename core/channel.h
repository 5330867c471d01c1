/*
 * core/channel.h — the messages on an API process's channel ({<tag>}:api:<node>), in one place.
 *
 *   "d <id>"           the task is terminal: read it (core/lua/prelude.lua, finalize)
 *   "r <id> <result>"  the task completed with this result JSON (finalize)
 *   "c <id> <chunk>"   one chat chunk of a streamed task, as JSON (worker/exec.c)
 *
 * The Lua side writes "d" and "r" (finalize in core/lua/prelude.lua names this header); C writes
 * "c" with channel_chunk_new and reads all three with channel_parse.
 */
#ifndef SLUICE_CORE_CHANNEL_H
#define SLUICE_CORE_CHANNEL_H

#include <stddef.h>

enum channel_kind { CHANNEL_DONE = 'd', CHANNEL_RESULT = 'r', CHANNEL_CHUNK = 'c' };

struct channel_msg {
    enum channel_kind kind;
    const char *id; /* not terminated: id_len bytes */
    size_t id_len;
    const char *body; /* the result or chunk (NULL for "d"); body_len bytes */
    size_t body_len;
};

/*
 * Parses payload (len bytes; borrowed, and msg points into it). 0, or -1 for a message that is
 * none of the three (an unknown letter, no id, a result or chunk without its body).
 */
int channel_parse(const char *payload, size_t len, struct channel_msg *msg);

/* "c <id> <chunk>" (chunk: chunk_len bytes) into a new buffer, its length in *len. Caller frees;
 * NULL on OOM. */
char *channel_chunk_new(const char *id, const char *chunk, size_t chunk_len, size_t *len);

#endif
