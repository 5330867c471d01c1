/*
 * core/sse.h — an incremental parser for server-sent events (the WHATWG event-stream format), as
 * providers stream chat completions. Bytes go in as they arrive, in any split; each complete
 * event comes out once. Every buffer is capped: an event larger than max_event_bytes is an error.
 */
#ifndef SLUICE_CORE_SSE_H
#define SLUICE_CORE_SSE_H

#include <stddef.h>

#define SSE_ETOOLARGE (-1)
#define SSE_ENOMEM (-2)

struct sse_parser;

/*
 * One event: its name (NULL when the stream gave none) and its data lines joined by '\n', without
 * the final newline; data is NUL-terminated at data[len]. Both are valid during the call only.
 * Return 0 to go on, anything else to stop sse_parser_feed with that value.
 */
typedef int (*sse_event_cb)(const char *event, const char *data, size_t len, void *arg);

/* A parser whose events may not pass max_event_bytes. NULL on OOM. */
struct sse_parser *sse_parser_new(size_t max_event_bytes);

/*
 * Feeds len bytes and calls cb for every event they complete. Returns 0, SSE_ETOOLARGE,
 * SSE_ENOMEM, or the first non-zero value cb returned.
 */
int sse_parser_feed(struct sse_parser *p, const char *buf, size_t len, sse_event_cb cb, void *arg);

/* Frees the parser; an unfinished event is dropped, as the format says. NULL is a no-op. */
void sse_parser_free(struct sse_parser *p);

#endif
