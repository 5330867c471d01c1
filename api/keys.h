/*
 * api/keys.h — the bearer keys an api process accepts: the config's (keys in the config file) and
 * the keys kept as data in Redis (the admin API, api/admin_keys.c; records in core/keys.h).
 *
 * Every api process keeps a table of the Redis keys (SHA-256 → identity), loaded at start and
 * loaded again whenever the keys' version in Redis moved: the version is checked every
 * API_KEYS_POLL_MS (one script call that reads one string when nothing changed), and at once
 * after this process created or revoked a key. So a key revoked on any api process is refused by
 * every api process within API_KEYS_POLL_MS plus a round trip. An identity (struct api_key_ref)
 * is never freed while the process runs: a request may hold one for its life. A revoke marks it
 * in place; an identity's tenant is interned (one copy per distinct tenant, kept for the
 * process's life), so a tenant handed to a request stays valid for the request's life.
 *
 * Each table change bumps a generation (api_keys_gen): a connection that cached its last
 * Authorization's identity looks the key up again when the generation moved.
 */
#ifndef SLUICE_API_KEYS_H
#define SLUICE_API_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

#define API_KEYS_POLL_MS 250
/* The id of a key: "key_" + 26 characters (a Redis key), or "cfg:<tenant>:<index>" (a config
 * key: its tenant and its place among the config's keys, stable while the config is). */
#define API_KEY_ID_MAX 96

struct api;
struct api_keys;

/* A key's identity. Borrowed from the table, valid while the process runs. */
struct api_key_ref {
    char id[API_KEY_ID_MAX];
    const char *tenant; /* interned, or the config's */
    /* the aliases the key may use: limited false, any; else the n_models configured ones (an
     * alias the config no longer has is dropped, and the key may use none of it) */
    bool limited;
    const struct config_model **models;
    size_t n_models;
    int64_t expires_s; /* Unix s; 0 never */
    bool revoked;
    bool config; /* a key of the config file */
};

/* Makes a's table and starts loading it (its first answer fills it; until then only the config's
 * keys are accepted). a is borrowed and outlives the table. NULL on OOM. */
struct api_keys *api_keys_new(struct api *a);

/* Stops polling and frees the table (every identity with it). NULL is a no-op. */
void api_keys_free(struct api_keys *k);

/*
 * The identity of bearer key `key` (len bytes, not NUL-terminated) when it is a usable key at
 * now_s (not revoked, not expired), else NULL. Hashes key once (SHA-256); the config's keys are
 * compared in constant time against every stored hash, the Redis keys are found by their hash
 * (the lookup's time depends on the hash, never on the secret). k NULL (no table: the api is
 * being freed): NULL.
 */
const struct api_key_ref *api_keys_auth(struct api_keys *k, const struct config *cfg,
                                        const char *key, size_t len, int64_t now_s);

/*
 * The identity whose id is id (a Redis key's "key_…" or a config key's "cfg:…"), usable or not,
 * or NULL when the table has none (a key this process has not loaded, or k NULL). For work that
 * runs later under the key that submitted it (a batch's lines, a pipeline's steps). Linear in the
 * number of keys: call it once per pass, not per task.
 */
const struct api_key_ref *api_keys_find_id(const struct api_keys *k, const char *id);

/* Whether ref (NULL: none) is usable at now_s. */
bool api_key_ref_usable(const struct api_key_ref *ref, int64_t now_s);

/* Whether ref (NULL: a request with no key identity, which is never limited) may use model. */
bool api_key_allows(const struct api_key_ref *ref, const struct config_model *model);

/*
 * The check of a request's model against its key: 0 when key (NULL: none) may use model, else
 * CORE_EPERM with e filled: 403 permission_error, code model_not_allowed, param (borrowed, e.g.
 * "model" or "input.model").
 */
int api_key_model_check(const struct api_key_ref *key, const struct config_model *model,
                        const char *param, struct core_err *e);

/* The table's generation: moves on every change of the table. 0 for NULL. */
uint64_t api_keys_gen(const struct api_keys *k);

/* Checks the keys' version now (after this process created or revoked one). */
void api_keys_refresh(struct api_keys *k);

#endif
