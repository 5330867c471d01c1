/*
 * core/store.h — one Redis connection on the process's libevent loop (hiredis async).
 *
 * Debian's hiredis 0.14 has no command timeout, so the store keeps its own FIFO of pending
 * commands: Redis answers in order, so only the oldest can be late, and one timer watches it.
 * When a round trip passes its deadline, or the connection drops, every pending callback is
 * called once with an error and the store reconnects by itself with backoff, loading the Lua
 * scripts again before anything else is sent. A callback is called exactly once for each command
 * that store_* accepted (returned 0); never for one it refused.
 */
#ifndef SLUICE_CORE_STORE_H
#define SLUICE_CORE_STORE_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <hiredis/hiredis.h>

#include "core/err.h"
#include "core/keys.h"
#include "core/scripts.h"

struct store;

struct store_opts {
    const char *host; /* borrowed for the call only */
    int port;
    int db;
    const char *password; /* may be NULL */
    long timeout_ms;      /* every round trip, and the connect */
    const char *name;     /* for log lines: "main", "wake" */
    const char *key_tag;  /* the keyspace's hash tag (NULL: KEY_TAG_DEFAULT); borrowed */
};

/*
 * Reply callback. On success reply is the Redis reply (borrowed: hiredis frees it after the
 * callback returns, so copy out what you keep) and err is NULL. On failure reply is NULL and err
 * says why: CORE_EUNAVAILABLE (disconnected, timed out) or CORE_EINTERNAL (Redis error reply).
 */
typedef void (*store_cb)(redisReply *reply, const struct core_err *err, void *arg);

/* Connection state changes: called after connecting (scripts queued) and after losing it. */
typedef void (*store_state_cb)(bool connected, void *arg);

/* A Pub/Sub message on a subscribed channel; payload borrowed. */
typedef void (*store_msg_cb)(const char *payload, size_t len, void *arg);

/* Creates the store and starts connecting. NULL on OOM. */
struct store *store_new(struct event_base *base, const struct store_opts *opts);

/*
 * Frees the store. Pending callbacks are called with CORE_EUNAVAILABLE first, so free the store
 * before the objects those callbacks use, or make sure none are pending. NULL is a no-op.
 */
void store_free(struct store *s);

/* Adds a listener for connection state changes (up to 4). */
void store_on_state(struct store *s, store_state_cb cb, void *arg);

/* The store's keyspace (every key it names starts with its prefix). Borrowed from s. */
const struct keyspace *store_keys(const struct store *s);

/* True while connected and usable. */
bool store_ready(const struct store *s);

/* Commands waiting for their reply. */
size_t store_pending(const struct store *s);

/*
 * Sends a command. argv/lens borrowed for the call. Returns 0 (cb will be called once) or
 * CORE_EUNAVAILABLE when not connected (cb is never called). cb may be NULL for a command whose
 * answer nobody needs.
 */
int store_command(struct store *s, store_cb cb, void *arg, int argc, const char **argv,
                  const size_t *lens);

/*
 * Runs one of the registered Lua scripts with EVALSHA: nkeys keys first in argv, then the args.
 * Same contract as store_command.
 */
int store_script(struct store *s, enum script_id id, store_cb cb, void *arg, int nkeys, int argc,
                 const char **argv, const size_t *lens);

/*
 * Turns this store into a subscriber of channel (it must be used for nothing else). It
 * subscribes again after every reconnect; cb gets each message.
 */
int store_subscribe(struct store *s, const char *channel, store_msg_cb cb, void *arg);

#endif
