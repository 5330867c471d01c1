/*
 * api/cache.h — the exact response cache's key and the request's cache directives (issue 16).
 *
 * A chat or embedding alias opts in with `cache: {ttl_s, scope?}` (core/config.h); a chat
 * alias's Responses tasks use it too. A task of it is looked up by
 * the SHA-256 of its scope (the tenant, or the alias's shared scope string), its alias, its kind
 * and its canonical request: the input JSON with `stream`, `stream_options`, `user` and
 * `metadata` left out, object keys sorted recursively, printed compactly. Exact means exact: a
 * request with n > 1 or a nonzero temperature is cached as it is.
 *
 * SUBMIT (core/lua/submit.lua) answers a hit at once (the task completes with the stored result,
 * cached, cost 0) and makes identical requests that arrive while the first is still running wait
 * for it (single-flight); finalize (core/lua/prelude.lua cache_end) stores what a task computed.
 * The request may say `Cache-Control: no-cache` (compute again, store the answer), `no-store`
 * (neither read nor store) and `X-Sluice-Cache-TTL: N` (this answer's TTL in seconds, at most the
 * alias's).
 */
#ifndef SLUICE_API_CACHE_H
#define SLUICE_API_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>
#include <event2/http.h>

#include "core/config.h"
#include "core/err.h"
#include "core/task.h"

/* Room for SUBMIT's cache argument: "<r|w> <64 hex> <ttl ms> <max bytes>". */
#define API_CACHE_ARG_MAX 128

/*
 * The canonical text of a request (input borrowed): a copy without the top-level fields that do
 * not change the answer (stream, stream_options, user, metadata), object keys sorted by byte
 * order at every depth (keys that repeat keep their order), printed without spaces. Caller frees
 * (cJSON_free); NULL on OOM.
 */
char *api_cache_canonical(const cJSON *input);

/*
 * The cache key of a request into hex (65 bytes; "" on OOM): SHA-256 over the scope (a tenant,
 * or with shared an alias's shared scope string), alias, kind name and canonical text (all
 * borrowed), each followed by a NUL byte so no two tuples hash alike.
 */
void api_cache_key(bool shared, const char *scope, const char *alias, enum task_kind kind,
                   const char *canonical, char hex[65]);

/*
 * SUBMIT's cache argument for a task of kind on alias m for tenant, from req's headers (req may
 * be NULL: no directives) and its input (all borrowed), into out (API_CACHE_ARG_MAX bytes): ""
 * when the task does not use the cache (m has no cache, a kind that is never cached, or
 * no-store), else "r <key> <ttl ms> <max bytes>" ("w ...": no-cache, store only). max_bytes is the
 * tenant's max_cache_bytes. Returns 0, or a negative code with err filled: CORE_EINVAL for an
 * X-Sluice-Cache-TTL that is not a whole number of seconds from 1, CORE_ENOMEM.
 */
int api_cache_arg(const struct config_model *m, const char *tenant, long max_bytes,
                  enum task_kind kind, const cJSON *input, struct evhttp_request *req, char *out,
                  struct core_err *err);

#endif
