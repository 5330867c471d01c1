/*
 * core/scripts.c — the loader of the Lua scripts, one per state transition.
 *
 * The scripts are core/lua/<name>.lua, embedded at build time by cmake/embed_lua.cmake as
 * generated C fragments (one static array each, the key families of keys.h spliced in by the
 * compiler after a mark). What Redis loads for a script is core/lua/prelude.lua followed by the
 * script, each mark replaced by the keyspace's prefix, and its SHA-1 is over that: a store renders
 * the scripts of its keyspace, loads each with SCRIPT LOAD on connect and calls it by that SHA-1
 * (EVALSHA). Each script's header names its KEYS and ARGV; its first lines give them
 * names.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "core/scripts.h"

#include "lua/prelude.lua.h"
#include "lua/submit.lua.h"
#include "lua/claim.lua.h"
#include "lua/extend.lua.h"
#include "lua/finish.lua.h"
#include "lua/cancel.lua.h"
#include "lua/tick.lua.h"
#include "lua/list.lua.h"
#include "lua/get.lua.h"
#include "lua/metrics.lua.h"
#include "lua/wh_claim.lua.h"
#include "lua/wh_done.lua.h"
#include "lua/batch.lua.h"
#include "lua/delete.lua.h"
#include "lua/pipe.lua.h"
#include "lua/nudge.lua.h"
#include "lua/budget.lua.h"
#include "lua/usage.lua.h"
#include "lua/keys.lua.h"
#include "lua/dash.lua.h"

static const char *const bodies[SCRIPT_COUNT] = {
    [SCRIPT_SUBMIT] = lua_submit,   [SCRIPT_CLAIM] = lua_claim,
    [SCRIPT_EXTEND] = lua_extend,   [SCRIPT_FINISH] = lua_finish,
    [SCRIPT_CANCEL] = lua_cancel,   [SCRIPT_TICK] = lua_tick,
    [SCRIPT_LIST] = lua_list,       [SCRIPT_GET] = lua_get,
    [SCRIPT_METRICS] = lua_metrics, [SCRIPT_WH_CLAIM] = lua_wh_claim,
    [SCRIPT_WH_DONE] = lua_wh_done, [SCRIPT_BATCH] = lua_batch,
    [SCRIPT_DELETE] = lua_delete,   [SCRIPT_PIPE] = lua_pipe,
    [SCRIPT_NUDGE] = lua_nudge,     [SCRIPT_BUDGET] = lua_budget,
    [SCRIPT_USAGE] = lua_usage,     [SCRIPT_API_KEYS] = lua_keys,
    [SCRIPT_DASH] = lua_dash,
};

struct scripts {
    char *source[SCRIPT_COUNT];
    char sha[SCRIPT_COUNT][41];
};

/* The embedded text with every KS_MARK replaced by prefix, appended to out at *n (out has room:
 * see scripts_new). */
static void render(char *out, size_t *n, const char *text, const struct keyspace *ks)
{
    for (const char *p = text; *p; p++) {
        if (*p == KS_MARK[0]) {
            memcpy(out + *n, ks->prefix, ks->len);
            *n += ks->len;
        } else {
            out[(*n)++] = *p;
        }
    }
}

static size_t marks(const char *text)
{
    size_t m = 0;
    for (const char *p = strchr(text, KS_MARK[0]); p; p = strchr(p + 1, KS_MARK[0])) {
        m++;
    }
    return m;
}

struct scripts *scripts_new(const struct keyspace *ks)
{
    struct scripts *sc = calloc(1, sizeof(*sc));

    if (sc == NULL) {
        return NULL;
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        size_t cap = strlen(lua_prelude) + strlen(bodies[i]) +
                     (marks(lua_prelude) + marks(bodies[i])) * ks->len + 1;
        size_t n = 0;
        sc->source[i] = malloc(cap);
        if (sc->source[i] == NULL) {
            scripts_free(sc);
            return NULL;
        }
        render(sc->source[i], &n, lua_prelude, ks);
        render(sc->source[i], &n, bodies[i], ks);
        sc->source[i][n] = '\0';
        SHA1((const unsigned char *)sc->source[i], n, md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            snprintf(&sc->sha[i][2 * j], 3, "%02x", md[j]);
        }
    }
    return sc;
}

void scripts_free(struct scripts *sc)
{
    if (sc == NULL) {
        return;
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        free(sc->source[i]);
    }
    free(sc);
}

const char *scripts_source(const struct scripts *sc, enum script_id id)
{
    return sc->source[id];
}

const char *scripts_sha(const struct scripts *sc, enum script_id id)
{
    return sc->sha[id];
}
