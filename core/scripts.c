/*
 * core/scripts.c — the loader of the Lua scripts, one per state transition.
 *
 * The scripts are core/lua/<name>.lua, embedded at build time by cmake/embed_lua.cmake as
 * generated C fragments (one static array each, the key prefixes of keys.h spliced in by the
 * compiler). What Redis loads for a script is core/lua/prelude.lua followed by the script, and
 * its SHA-1 is over both: the store loads each source with SCRIPT LOAD on connect and calls it by
 * that SHA-1 (EVALSHA). Each script's header names its KEYS and ARGV; its first lines give them
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

static const char *const bodies[SCRIPT_COUNT] = {
    [SCRIPT_SUBMIT] = lua_submit,   [SCRIPT_CLAIM] = lua_claim,
    [SCRIPT_EXTEND] = lua_extend,   [SCRIPT_FINISH] = lua_finish,
    [SCRIPT_CANCEL] = lua_cancel,   [SCRIPT_TICK] = lua_tick,
    [SCRIPT_LIST] = lua_list,       [SCRIPT_GET] = lua_get,
    [SCRIPT_METRICS] = lua_metrics, [SCRIPT_WH_CLAIM] = lua_wh_claim,
    [SCRIPT_WH_DONE] = lua_wh_done, [SCRIPT_BATCH] = lua_batch,
};

/* Constants once scripts_init has run (prelude + body); written only there. */
static char *sources[SCRIPT_COUNT];
static char shas[SCRIPT_COUNT][41];

void scripts_init(void)
{
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        size_t n = strlen(lua_prelude) + strlen(bodies[i]) + 1;
        if (sources[i] == NULL) {
            sources[i] = malloc(n);
            if (sources[i] == NULL) {
                abort(); /* at start, before anything runs: nothing to recover */
            }
            snprintf(sources[i], n, "%s%s", lua_prelude, bodies[i]);
        }
        SHA1((const unsigned char *)sources[i], strlen(sources[i]), md);
        for (int j = 0; j < SHA_DIGEST_LENGTH; j++) {
            snprintf(&shas[i][2 * j], 3, "%02x", md[j]);
        }
    }
}

const char *script_source(int id)
{
    return sources[id];
}

const char *script_sha(int id)
{
    return shas[id];
}
