/*
 * api/cache.c — the exact response cache's key and the request's cache directives
 * (api/cache.h). Only the key is made here; what a key holds lives in Redis and is read and
 * written by the task scripts (core/lua/submit.lua, core/lua/prelude.lua cache_end).
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>

#include "api/cache.h"

/* The top-level request fields that do not change the answer. */
static const char *const ignored_fields[] = {"stream", "stream_options", "user", "metadata"};

/* One object member and its place, for a stable sort. */
struct member {
    cJSON *item;
    size_t place;
};

static int member_cmp(const void *x, const void *y)
{
    const struct member *a = x, *b = y;
    int c = strcmp(a->item->string ? a->item->string : "", b->item->string ? b->item->string : "");

    if (c != 0) {
        return c;
    }
    return a->place < b->place ? -1 : a->place > b->place;
}

/*
 * Sorts every object's members of v by key, at every depth (the JSON parser bounded the depth).
 * cJSON links an object's children as a list whose first element's prev is the last one.
 * 0, or -1 on OOM (v then holds its members in some order, all of them).
 */
static int sort_keys(cJSON *v)
{
    struct member *m = NULL;
    size_t n = 0, i = 0;
    cJSON *c;

    for (c = v->child; c; c = c->next) {
        if (sort_keys(c) < 0) {
            return -1;
        }
        n++;
    }
    if (!cJSON_IsObject(v) || n < 2) {
        return 0;
    }
    m = malloc(n * sizeof(*m));
    if (m == NULL) {
        return -1;
    }
    for (c = v->child; c; c = c->next) {
        m[i].item = c;
        m[i].place = i;
        i++;
    }
    qsort(m, n, sizeof(*m), member_cmp);
    for (i = 0; i < n; i++) {
        m[i].item->prev = i == 0 ? m[n - 1].item : m[i - 1].item;
        m[i].item->next = i + 1 < n ? m[i + 1].item : NULL;
    }
    v->child = m[0].item;
    free(m);
    return 0;
}

char *api_cache_canonical(const cJSON *input)
{
    cJSON *copy = cJSON_Duplicate(input, true);
    char *text = NULL;

    if (copy == NULL) {
        return NULL;
    }
    if (cJSON_IsObject(copy)) {
        for (size_t i = 0; i < sizeof(ignored_fields) / sizeof(ignored_fields[0]); i++) {
            cJSON_DeleteItemFromObjectCaseSensitive(copy, ignored_fields[i]);
        }
    }
    if (sort_keys(copy) == 0) {
        text = cJSON_PrintUnformatted(copy);
    }
    cJSON_Delete(copy);
    return text;
}

void api_cache_key(bool shared, const char *scope, const char *alias, enum task_kind kind,
                   const char *canonical, char hex[65])
{
    /* a tenant's own entries and a shared scope of the same name never meet */
    const char *parts[] = {shared ? "s" : "t", scope, alias, task_kind_name(kind), canonical};
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    static const char digits[] = "0123456789abcdef";

    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        hex[0] = '\0';
        return;
    }
    for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
        EVP_DigestUpdate(ctx, parts[i], strlen(parts[i]) + 1);
    }
    EVP_DigestFinal_ex(ctx, md, &len);
    EVP_MD_CTX_free(ctx);
    for (unsigned int i = 0; i < len && i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = '\0';
}

/* True when the comma-separated Cache-Control value h holds the directive word. */
static bool has_directive(const char *h, const char *word)
{
    size_t wl = strlen(word);

    while (h != NULL && *h) {
        h += strspn(h, " \t,");
        if (strncasecmp(h, word, wl) == 0 && (h[wl] == '\0' || strchr(" \t,=", h[wl]))) {
            return true;
        }
        h = strchr(h, ',');
    }
    return false;
}

/* Kinds whose answer can be replayed: an image's answer refers to the files its task kept, which
 * a cached answer shows for as long as that task keeps them (core/lua/prelude.lua cache_owned);
 * a video job is minutes of a provider's work per request and is not cached. */
static bool kind_cacheable(enum task_kind kind)
{
    return kind == TASK_KIND_CHAT || kind == TASK_KIND_EMBEDDING || kind == TASK_KIND_RESPONSE ||
           kind == TASK_KIND_IMAGE;
}

int api_cache_arg(const struct config_model *m, const char *tenant, long max_bytes,
                  enum task_kind kind, const cJSON *input, struct evhttp_request *req, char *out,
                  struct core_err *err)
{
    const struct evkeyvalq *h;
    const char *cc, *ttl_h;
    long ttl_s = m->cache_ttl_s;
    char key[65];
    char *canonical;

    out[0] = '\0';
    /* an alias without a cache costs nothing more: the headers are read only for one with it */
    if (m->cache_ttl_s <= 0 || !kind_cacheable(kind)) {
        return 0;
    }
    h = req ? evhttp_request_get_input_headers(req) : NULL;
    cc = h ? evhttp_find_header(h, "Cache-Control") : NULL;
    ttl_h = h ? evhttp_find_header(h, "X-Sluice-Cache-TTL") : NULL;
    if (has_directive(cc, "no-store")) {
        return 0;
    }
    if (ttl_h != NULL) {
        char *end = NULL;
        long n = strtol(ttl_h, &end, 10);
        if (end == ttl_h || *end != '\0' || n < 1) {
            return core_err_set(err, CORE_EINVAL, "X-Sluice-Cache-TTL",
                                "X-Sluice-Cache-TTL must be a whole number of seconds from 1");
        }
        ttl_s = n < ttl_s ? n : ttl_s; /* never longer than the alias keeps its answers */
    }
    canonical = api_cache_canonical(input);
    if (canonical == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
    }
    api_cache_key(m->cache_scope != NULL, m->cache_scope ? m->cache_scope : tenant, m->alias, kind,
                  canonical, key);
    cJSON_free(canonical);
    if (key[0] == '\0') {
        return core_err_set(err, CORE_ENOMEM, NULL, "Out of memory");
    }
    snprintf(out, API_CACHE_ARG_MAX, "%c %s %lld %ld", has_directive(cc, "no-cache") ? 'w' : 'r',
             key, (long long)ttl_s * 1000, max_bytes);
    return 0;
}
