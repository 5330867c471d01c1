/*
 * tests/mock/util.c — what every file of sluice-mock shares: writing answers, small JSON helpers,
 * the chat reply text, time, hashing and base64.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>

#include "tests/mock/mock.h"

struct evbuffer *mock_out_body(struct exchange *x)
{
    return evhttp_request_get_output_buffer(x->req);
}

void mock_out_header(struct exchange *x, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(x->req), name, value);
}

const char *mock_in_header(struct exchange *x, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(x->req), name);
}

const char *mock_query(struct exchange *x, const char *name, char *buf, size_t len)
{
    const char *q = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(x->req));
    size_t name_len = strlen(name);
    while (q != NULL && *q != '\0') {
        const char *end = strchr(q, '&');
        size_t n = end != NULL ? (size_t)(end - q) : strlen(q);
        if (n >= name_len && strncmp(q, name, name_len) == 0 &&
            (n == name_len || q[name_len] == '=')) {
            size_t vn = n > name_len ? n - name_len - 1 : 0;
            snprintf(buf, len, "%.*s", (int)vn, q + n - vn);
            return buf;
        }
        q = end != NULL ? end + 1 : NULL;
    }
    return NULL;
}

int mock_out_json(struct exchange *x, int status, cJSON *json)
{
    char *text = cJSON_PrintUnformatted(json);
    if (text != NULL) {
        evbuffer_add(mock_out_body(x), text, strlen(text));
        cJSON_free(text);
    }
    cJSON_Delete(json);
    return status;
}

void mock_json_escape(struct evbuffer *out, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') {
            continue;
        }
        evbuffer_add(out, s + start, i - start);
        if (c == '"' || c == '\\') {
            char esc[2] = {'\\', (char)c};
            evbuffer_add(out, esc, 2);
        } else {
            char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
            evbuffer_add(out, esc, 6);
        }
        start = i + 1;
    }
    evbuffer_add(out, s + start, n - start);
}

void mock_json_string(struct evbuffer *out, const char *s)
{
    if (s == NULL) {
        evbuffer_add(out, "null", 4);
        return;
    }
    evbuffer_add(out, "\"", 1);
    mock_json_escape(out, s, strlen(s));
    evbuffer_add(out, "\"", 1);
}

cJSON *mock_body_json(struct exchange *x)
{
    return x->body != NULL ? cJSON_ParseWithLength(x->body, x->body_len) : NULL;
}

const char *mock_json_str(const cJSON *obj, const char *key, const char *fallback)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : fallback;
}

/*
 * Absolute URLs in answers (blob links, job URLs) point back at the mock. The Host header is what
 * the client reached us by, so it wins when it is a plain host[:port]; otherwise the listener's
 * own address.
 */
void mock_origin(struct exchange *x, char *buf, size_t len)
{
    const char *host = mock_in_header(x, "Host");
    bool ok = host != NULL && host[0] != '\0' && strlen(host) < 256;
    for (const char *p = host; ok && *p != '\0'; p++) {
        ok = isalnum((unsigned char)*p) || strchr(".-:[]", *p) != NULL;
    }
    if (ok) {
        snprintf(buf, len, "http://%s", host);
    } else {
        snprintf(buf, len, "%s", x->m->origin);
    }
}

const char *mock_cap(struct exchange *x, size_t i, char *buf, size_t len)
{
    if (i >= x->n_caps) {
        buf[0] = '\0';
    } else {
        snprintf(buf, len, "%.*s", (int)x->cap[i].n, x->cap[i].s);
    }
    return buf;
}

double mock_monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int64_t mock_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mock_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mock_iso8601(char *buf, size_t len, int64_t wall_ms)
{
    time_t s = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    char date[32];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, len, "%s.%03d000Z", date, (int)(wall_ms % 1000));
}

uint64_t mock_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

double mock_rng_next(struct mock *m)
{
    uint64_t z = mock_mix64(m->rng);
    m->rng += 0x9e3779b97f4a7c15ULL;
    return (double)(z >> 11) * 0x1.0p-53;
}

uint64_t mock_hash(const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ p[i]) * 0x100000001b3ULL;
    }
    return h;
}

static const char reply_prefix[] = "mock reply: ";

void mock_reply_init(struct mock_reply *r)
{
    memcpy(r->text, reply_prefix, sizeof(reply_prefix));
    r->len = sizeof(reply_prefix) - 1;
    r->prompt_bytes = 0;
    r->echo_full = false;
}

/*
 * Appends up to the free space of the echo, never splitting a UTF-8 sequence. Once a piece did
 * not fit, later pieces are not echoed either: the echo is a prefix of the joined text.
 */
void mock_reply_echo(struct mock_reply *r, const char *s, size_t n)
{
    if (r->echo_full) {
        return;
    }
    size_t room = sizeof(reply_prefix) - 1 + MOCK_REPLY_ECHO - r->len;
    size_t take = n;
    if (take > room) {
        take = room;
        while (take > 0 && ((unsigned char)s[take] & 0xc0) == 0x80) {
            take--;
        }
        r->echo_full = true;
    }
    memcpy(r->text + r->len, s, take);
    r->len += take;
    r->text[r->len] = '\0';
}

long long mock_tokens(size_t bytes)
{
    return (long long)((bytes + 3) / 4);
}

size_t mock_split(const char *s, size_t n, size_t pieces, size_t *ends)
{
    size_t count = 0, start = 0;
    for (size_t i = 1; i <= pieces && start < n; i++) {
        size_t end = i == pieces ? n : n * i / pieces;
        while (end < n && ((unsigned char)s[end] & 0xc0) == 0x80) {
            end++;
        }
        if (end > start) {
            ends[count++] = end;
            start = end;
        }
    }
    return count;
}

int mock_base64(struct evbuffer *out, const unsigned char *data, size_t n)
{
    size_t len = 4 * ((n + 2) / 3);
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, (ev_ssize_t)len + 1, &v, 1) < 1) {
        return -1;
    }
    int wrote = EVP_EncodeBlock(v.iov_base, data, (int)n);
    v.iov_len = wrote > 0 ? (size_t)wrote : 0;
    return evbuffer_commit_space(out, &v, 1);
}
