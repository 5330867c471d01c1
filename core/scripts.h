/*
 * core/scripts.h — the Lua scripts that make every task state transition one atomic step.
 *
 * Each transition checks the expected current state and, for a worker's writes, the attempt's
 * fencing token (the task's `fence`, bumped on every claim), so a stale worker can never overwrite
 * a newer attempt or a terminal state. Each script is a file, core/lua/<name>.lua, whose header
 * documents its KEYS and ARGV and whose first lines name them; core/lua/prelude.lua is shared by
 * all of them. They are embedded at build time (cmake/embed_lua.cmake) and rendered for a
 * keyspace at run time (its prefix in every key name; the key layout is in keys.h): each store
 * holds the scripts of its own keyspace.
 */
#ifndef SLUICE_CORE_SCRIPTS_H
#define SLUICE_CORE_SCRIPTS_H

#include "core/keys.h"

enum script_id {
    SCRIPT_SUBMIT = 0,
    SCRIPT_CLAIM,
    SCRIPT_EXTEND,
    SCRIPT_FINISH,
    SCRIPT_CANCEL,
    SCRIPT_TICK,
    SCRIPT_LIST,
    SCRIPT_GET,
    SCRIPT_METRICS,
    SCRIPT_WH_CLAIM,
    SCRIPT_WH_DONE,
    SCRIPT_BATCH,
    SCRIPT_DELETE,
    SCRIPT_PIPE,
    SCRIPT_NUDGE,
    SCRIPT_BUDGET,
    SCRIPT_USAGE,
    SCRIPT_API_KEYS,
    SCRIPT_DASH,
    SCRIPT_COUNT
};

/* SUBMIT's arguments: SUBMIT_HEADER, then SUBMIT_GROUP per task (core/lua/submit.lua names
 * them; SUBMIT_GROUP_S is spliced into it). */
#define SUBMIT_HEADER 1
#define SUBMIT_GROUP 30
#define SUBMIT_GROUP_S "30"

/* FINISH's arguments: FINISH_HEADER shared by every outcome of a call, then FINISH_GROUP per
 * outcome (core/lua/finish.lua names them; FINISH_GROUP_S is spliced into it). */
#define FINISH_HEADER 6
#define FINISH_GROUP 28
#define FINISH_GROUP_S "28"

/* The scripts rendered for one keyspace: their sources and SHA-1s. */
struct scripts;

/*
 * Renders every script (prelude + body) for ks (borrowed for the call): each KS_MARK of the
 * embedded text becomes ks's prefix, and computes the SHA-1s. Caller frees. NULL on OOM.
 */
struct scripts *scripts_new(const struct keyspace *ks);
void scripts_free(struct scripts *sc);

/* The Lua source of script id and its 40-hex-character SHA-1. Borrowed from sc. */
const char *scripts_source(const struct scripts *sc, enum script_id id);
const char *scripts_sha(const struct scripts *sc, enum script_id id);

#endif
