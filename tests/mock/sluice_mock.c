/*
 * sluice-mock: a provider simulator for sluice's tests, demos and benchmarks.
 *
 * One process, one libevent loop, one evhttp server, no threads and no blocking calls once the
 * loop runs. All mutable state lives in `struct mock`. A request is matched against `routes[]`;
 * provider routes (those with a dialect) are counted, recorded, passed through the fault chain
 * (`faults[]`) and finally answered by the route's handler. Answers that must wait (latency, hang)
 * are parked as a `struct held` until a timer fires or the client goes away.
 *
 * Adding a dialect (Anthropic, Gemini, embeddings, images, ...) means one more `struct dialect`
 * instance and more rows in `routes[]`; the fault chain, recording and stats are shared.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netdb.h>

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <event2/util.h>

#define MOCK_MAX_BODY (32 * 1024 * 1024)
#define MOCK_MAX_HEADERS (64 * 1024)
#define MOCK_HANG_MS (10 * 60 * 1000)
#define MOCK_RECORD_DEFAULT 50
#define MOCK_RECORD_MAX 100000
#define MOCK_RECORD_BODY_MAX (1024 * 1024) /* bytes of each recorded body kept */
#define MOCK_REPLY_ECHO 64                 /* bytes of the last user message echoed back */
#define MOCK_LISTEN_BACKLOG 65535          /* the kernel clamps it to somaxconn */
#define MOCK_STATUS_MAX 600

/* What a fault or handler returns when it did not answer, or when the answer is "never". */
enum { ANSWER_PASS = 0, ANSWER_HANG = 1 };

struct mock;
struct exchange;

/*
 * A provider dialect: how it authenticates and how its errors look. Each hook writes headers and
 * body into the exchange's response and returns the HTTP status; `auth` returns ANSWER_PASS when
 * the credentials are good.
 */
struct dialect {
    const char *name;
    const char *request_id_header;
    int (*auth)(struct exchange *x);
    /* type and code NULL: the dialect's usual type for the status, code null */
    int (*error)(struct exchange *x, int status, const char *type, const char *message,
                 const char *code);
    int (*rate_limited)(struct exchange *x, double reset_s);
};

/* A route: exact method and path. dialect NULL marks a control route (no faults, no counting). */
struct route {
    enum evhttp_cmd_type method;
    const char *path;
    const struct dialect *dialect;
    int (*handle)(struct exchange *x);
};

/* One request being answered; lives on the stack of on_request. */
struct exchange {
    struct mock *m;
    struct evhttp_request *req;
    const struct route *route;
    const char *body; /* borrowed from the request's input buffer; NULL when empty */
    size_t body_len;
    unsigned long long seq;
};

static const struct dialect dialect_openai;
static int openai_chat(struct exchange *x);
static int control_healthz(struct exchange *x);
static int control_stats(struct exchange *x);
static int control_config_get(struct exchange *x);
static int control_config_set(struct exchange *x);
static int control_reset(struct exchange *x);

static const struct route routes[] = {
    {EVHTTP_REQ_POST, "/v1/chat/completions", &dialect_openai, openai_chat},
    {EVHTTP_REQ_GET, "/healthz", NULL, control_healthz},
    {EVHTTP_REQ_GET, "/_mock/stats", NULL, control_stats},
    {EVHTTP_REQ_GET, "/_mock/config", NULL, control_config_get},
    {EVHTTP_REQ_POST, "/_mock/config", NULL, control_config_set},
    {EVHTTP_REQ_POST, "/_mock/reset", NULL, control_reset},
};
#define N_ROUTES (sizeof(routes) / sizeof(routes[0]))

/* The switches that /_mock/config and the command line can change. */
struct mock_config {
    long latency_ms;
    double error_rate;
    long error_status;
    long fail_first;
    double rate_limit_rps;
    long retry_after_s;
    bool hang;
    bool malformed;
    char *error_message; /* owned; NULL: "mock: injected <status>" */
};

enum key_type { KEY_INT, KEY_DOUBLE, KEY_BOOL, KEY_STRING };

struct config_key {
    const char *name; /* key in /_mock/config */
    const char *flag; /* command-line flag */
    enum key_type type;
    size_t offset;
    double min, max; /* numbers only */
};

#define CFG(field) offsetof(struct mock_config, field)
static const struct config_key config_keys[] = {
    {"latency_ms", "latency-ms", KEY_INT, CFG(latency_ms), 0, MOCK_HANG_MS},
    {"error_rate", "error-rate", KEY_DOUBLE, CFG(error_rate), 0, 1},
    {"error_status", "error-status", KEY_INT, CFG(error_status), 400, 599},
    {"fail_first", "fail-first", KEY_INT, CFG(fail_first), 0, 1e15},
    {"rate_limit_rps", "rate-limit", KEY_DOUBLE, CFG(rate_limit_rps), 0, 1e9},
    {"retry_after_s", "retry-after", KEY_INT, CFG(retry_after_s), 0, 86400},
    {"hang", "hang", KEY_BOOL, CFG(hang), 0, 0},
    {"malformed", "malformed", KEY_BOOL, CFG(malformed), 0, 0},
    {"error_message", "error-message", KEY_STRING, CFG(error_message), 0, 0},
};
#define N_CONFIG_KEYS (sizeof(config_keys) / sizeof(config_keys[0]))

/* A recorded request. blob holds the path, then `name\0value\0` header pairs, then the body. */
struct record {
    char *blob;
    size_t path_len, headers_len, body_len;
    enum evhttp_cmd_type method;
    bool body_truncated;
    long long at_ms;
};

struct ring {
    struct record *slots;
    size_t cap, next, count;
};

/* A provider answer that waits for its timer, or (status ANSWER_HANG) for nothing. */
struct held {
    struct mock *m;
    struct evhttp_request *req;
    struct evhttp_connection *evcon;
    struct event *timer;
    struct event *watch; /* readable socket: the client may have gone */
    int status;
    struct held *prev, *next;
};

struct mock {
    struct event_base *base;
    struct evhttp *http;
    struct event *sig_term, *sig_int;
    char *auth_header; /* "Bearer K", or NULL without --api-key */
    struct mock_config config;
    struct mock_config startup; /* what /_mock/reset restores */
    uint64_t seed, rng;
    unsigned long long requests, unmatched, fail_seen;
    unsigned long long by_status[MOCK_STATUS_MAX];
    unsigned long long by_route[N_ROUTES];
    double tokens, bucket_at; /* rate-limit token bucket, monotonic seconds */
    struct held *held;
    size_t in_flight;
    long common_ms; /* latency_ms that common_tv was made for */
    const struct timeval *common_tv;
    struct ring ring;
};

static const struct {
    enum evhttp_cmd_type method;
    const char *name;
} method_names[] = {
    {EVHTTP_REQ_GET, "GET"},     {EVHTTP_REQ_POST, "POST"},       {EVHTTP_REQ_HEAD, "HEAD"},
    {EVHTTP_REQ_PUT, "PUT"},     {EVHTTP_REQ_DELETE, "DELETE"},   {EVHTTP_REQ_OPTIONS, "OPTIONS"},
    {EVHTTP_REQ_TRACE, "TRACE"}, {EVHTTP_REQ_CONNECT, "CONNECT"}, {EVHTTP_REQ_PATCH, "PATCH"},
};

/* evhttp's own phrases are generic ("Client Error"); clients log these. */
static const struct {
    int status;
    const char *reason;
} status_reasons[] = {
    {200, "OK"},
    {400, "Bad Request"},
    {401, "Unauthorized"},
    {403, "Forbidden"},
    {404, "Not Found"},
    {408, "Request Timeout"},
    {409, "Conflict"},
    {413, "Payload Too Large"},
    {422, "Unprocessable Entity"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *method_name(enum evhttp_cmd_type method)
{
    for (size_t i = 0; i < sizeof(method_names) / sizeof(method_names[0]); i++) {
        if (method_names[i].method == method) {
            return method_names[i].name;
        }
    }
    return "OTHER";
}

static const char *status_reason(int status)
{
    for (size_t i = 0; i < sizeof(status_reasons) / sizeof(status_reasons[0]); i++) {
        if (status_reasons[i].status == status) {
            return status_reasons[i].reason;
        }
    }
    return NULL; /* evhttp picks a generic phrase */
}

static double monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* splitmix64: tiny, seedable and reproducible across runs, which is all error_rate needs. */
static double rng_next(struct mock *m)
{
    uint64_t z = (m->rng += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (double)(z >> 11) * 0x1.0p-53;
}

/* Appends s as the inside of a JSON string. Bytes >= 0x80 pass through unchanged. */
static void json_escape(struct evbuffer *out, const char *s, size_t n)
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

static struct evbuffer *out_body(struct exchange *x)
{
    return evhttp_request_get_output_buffer(x->req);
}

static void out_header(struct exchange *x, const char *name, const char *value)
{
    evhttp_add_header(evhttp_request_get_output_headers(x->req), name, value);
}

/* Sends cJSON as the body and frees it. Control endpoints only: they are not on the hot path. */
static int out_json(struct exchange *x, int status, cJSON *json)
{
    char *text = cJSON_PrintUnformatted(json);
    if (text != NULL) {
        evbuffer_add(out_body(x), text, strlen(text));
        cJSON_free(text);
    }
    cJSON_Delete(json);
    return status;
}

/* ---- OpenAI dialect ---- */

static const char *openai_error_type(int status)
{
    static const struct {
        int status;
        const char *type;
    } types[] = {
        {400, "invalid_request_error"}, {401, "authentication_error"}, {403, "permission_error"},
        {404, "not_found_error"},       {429, "rate_limit_error"},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        if (types[i].status == status) {
            return types[i].type;
        }
    }
    return status >= 500 ? "server_error" : "invalid_request_error";
}

static int openai_error(struct exchange *x, int status, const char *type, const char *message,
                        const char *code)
{
    struct evbuffer *out = out_body(x);
    evbuffer_add_printf(out, "{\"error\":{\"message\":\"");
    json_escape(out, message, strlen(message));
    evbuffer_add_printf(out, "\",\"type\":\"%s\",\"param\":null,\"code\":",
                        type != NULL ? type : openai_error_type(status));
    if (code != NULL) {
        evbuffer_add_printf(out, "\"%s\"}}", code);
    } else {
        evbuffer_add_printf(out, "null}}");
    }
    return status;
}

static int openai_auth(struct exchange *x)
{
    const char *want = x->m->auth_header;
    if (want == NULL) {
        return ANSWER_PASS;
    }
    const char *got = evhttp_find_header(evhttp_request_get_input_headers(x->req), "Authorization");
    if (got != NULL && strcmp(got, want) == 0) {
        return ANSWER_PASS;
    }
    return openai_error(x, 401, "authentication_error", "Incorrect API key provided.",
                        "invalid_api_key");
}

/* Formats a duration the way OpenAI's x-ratelimit-reset-* headers do: "12ms", "1s", "2.5s". */
static void format_duration(char *buf, size_t len, double s)
{
    if (s < 1.0) {
        snprintf(buf, len, "%lldms", (long long)ceil(s * 1000.0));
    } else {
        snprintf(buf, len, "%gs", ceil(s * 1000.0) / 1000.0);
    }
}

static int openai_rate_limited(struct exchange *x, double reset_s)
{
    char buf[64];
    snprintf(buf, sizeof(buf), "%ld", x->m->config.retry_after_s);
    out_header(x, "retry-after", buf);
    snprintf(buf, sizeof(buf), "%.0f", ceil(x->m->config.rate_limit_rps));
    out_header(x, "x-ratelimit-limit-requests", buf);
    out_header(x, "x-ratelimit-remaining-requests", "0");
    format_duration(buf, sizeof(buf), reset_s);
    out_header(x, "x-ratelimit-reset-requests", buf);
    return openai_error(x, 429, "requests", "Rate limit reached for requests",
                        "rate_limit_exceeded");
}

static const struct dialect dialect_openai = {
    .name = "openai",
    .request_id_header = "x-request-id",
    .auth = openai_auth,
    .error = openai_error,
    .rate_limited = openai_rate_limited,
};

/* Appends up to the free space of an echo buffer, never splitting a UTF-8 sequence. */
static bool echo_append(char *dst, size_t *n, const char *src, size_t len)
{
    size_t take = len;
    if (take > MOCK_REPLY_ECHO - *n) {
        take = MOCK_REPLY_ECHO - *n;
        while (take > 0 && ((unsigned char)src[take] & 0xc0) == 0x80) {
            take--;
        }
    }
    memcpy(dst + *n, src, take);
    *n += take;
    return take == len;
}

/*
 * Walks a message's content (a string, or an array of parts with "text"), adding its bytes to
 * *bytes and, when echo is set, copying the text into the echo buffer.
 */
static void content_scan(const cJSON *content, size_t *bytes, char *echo, size_t *echo_len)
{
    if (cJSON_IsString(content)) {
        size_t len = strlen(content->valuestring);
        *bytes += len;
        if (echo != NULL) {
            echo_append(echo, echo_len, content->valuestring, len);
        }
        return;
    }
    const cJSON *part;
    bool room = true;
    cJSON_ArrayForEach(part, content)
    {
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
        if (!cJSON_IsString(text)) {
            continue;
        }
        size_t len = strlen(text->valuestring);
        *bytes += len;
        if (echo != NULL && room) {
            room = echo_append(echo, echo_len, text->valuestring, len);
        }
    }
}

/*
 * POST /v1/chat/completions. The reply is written with printf rather than built with cJSON: this
 * is the benchmark baseline's hot path.
 */
static int openai_chat(struct exchange *x)
{
    cJSON *root = x->body != NULL ? cJSON_ParseWithLength(x->body, x->body_len) : NULL;
    if (root == NULL) {
        return openai_error(x, 400, NULL, "We could not parse the JSON body of your request.",
                            NULL);
    }
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
    if (!cJSON_IsArray(messages)) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, "Missing required parameter: 'messages'.", NULL);
    }

    size_t prompt_bytes = 0;
    const cJSON *last_user = NULL;
    const cJSON *msg;
    cJSON_ArrayForEach(msg, messages)
    {
        const cJSON *role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (cJSON_IsString(role) && strcmp(role->valuestring, "user") == 0) {
            last_user = msg;
        }
        content_scan(cJSON_GetObjectItemCaseSensitive(msg, "content"), &prompt_bytes, NULL, NULL);
    }
    char echo[MOCK_REPLY_ECHO];
    size_t echo_len = 0, ignored = 0;
    if (last_user != NULL) {
        content_scan(cJSON_GetObjectItemCaseSensitive(last_user, "content"), &ignored, echo,
                     &echo_len);
    }

    static const char prefix[] = "mock reply: ";
    long long prompt = (long long)((prompt_bytes + 3) / 4);
    long long completion = (long long)((sizeof(prefix) - 1 + echo_len + 3) / 4);
    const char *finish = "stop";
    const cJSON *max = cJSON_GetObjectItemCaseSensitive(root, "max_completion_tokens");
    if (!cJSON_IsNumber(max)) {
        max = cJSON_GetObjectItemCaseSensitive(root, "max_tokens");
    }
    if (cJSON_IsNumber(max) && max->valuedouble >= 0 && (double)completion > max->valuedouble) {
        completion = (long long)max->valuedouble;
        finish = "length";
    }
    if (prompt < 1) {
        prompt = 1;
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const char *model_name = cJSON_IsString(model) ? model->valuestring : "mock-model";

    struct evbuffer *out = out_body(x);
    evbuffer_add_printf(out,
                        "{\"id\":\"chatcmpl-mock-%llu\",\"object\":\"chat.completion\","
                        "\"created\":%lld,\"model\":\"",
                        x->seq, (long long)time(NULL));
    json_escape(out, model_name, strlen(model_name));
    evbuffer_add_printf(out,
                        "\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                        "\"content\":\"%s",
                        prefix);
    json_escape(out, echo, echo_len);
    evbuffer_add_printf(out,
                        "\",\"refusal\":null},\"logprobs\":null,\"finish_reason\":\"%s\"}],"
                        "\"usage\":{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                        "\"total_tokens\":%lld}}",
                        finish, prompt, completion, prompt + completion);
    cJSON_Delete(root);
    return 200;
}

/* ---- faults, applied in table order to every provider request ---- */

static int fault_hang(struct exchange *x)
{
    return x->m->config.hang ? ANSWER_HANG : ANSWER_PASS;
}

/* Credentials are checked before the rate limit and injected errors, as real providers do. */
static int fault_auth(struct exchange *x)
{
    return x->route->dialect->auth(x);
}

/*
 * Token bucket of rate_limit_rps requests per second, refilled continuously by monotonic time.
 * Capacity is rps but at least one, so a rate below 1/s still lets a request through now and then.
 */
static int fault_rate_limit(struct exchange *x)
{
    struct mock *m = x->m;
    double rps = m->config.rate_limit_rps;
    if (rps <= 0) {
        return ANSWER_PASS;
    }
    double now = monotonic_s();
    double cap = rps < 1 ? 1 : rps;
    m->tokens = fmin(cap, m->tokens + (now - m->bucket_at) * rps);
    m->bucket_at = now;
    if (m->tokens >= 1.0) {
        m->tokens -= 1.0;
        return ANSWER_PASS;
    }
    return x->route->dialect->rate_limited(x, (1.0 - m->tokens) / rps);
}

static int inject_error(struct exchange *x)
{
    const struct mock_config *c = &x->m->config;
    int status = (int)c->error_status;
    char message[64];
    snprintf(message, sizeof(message), "mock: injected %d", status);
    if (status == 429) {
        char retry[32];
        snprintf(retry, sizeof(retry), "%ld", c->retry_after_s);
        out_header(x, "retry-after", retry);
    }
    return x->route->dialect->error(x, status, NULL,
                                    c->error_message != NULL ? c->error_message : message, NULL);
}

static int fault_fail_first(struct exchange *x)
{
    struct mock *m = x->m;
    if (m->fail_seen >= (unsigned long long)m->config.fail_first) {
        return ANSWER_PASS;
    }
    m->fail_seen++;
    return inject_error(x);
}

static int fault_error_rate(struct exchange *x)
{
    double rate = x->m->config.error_rate;
    if (rate <= 0 || rng_next(x->m) >= rate) {
        return ANSWER_PASS;
    }
    return inject_error(x);
}

static int fault_malformed(struct exchange *x)
{
    static const char broken[] = "{\"id\":\"chatcmpl-broken\",\"choices\":[{";
    if (!x->m->config.malformed) {
        return ANSWER_PASS;
    }
    evbuffer_add(out_body(x), broken, sizeof(broken) - 1);
    return 200;
}

static int (*const faults[])(struct exchange *x) = {
    fault_hang, fault_auth, fault_rate_limit, fault_fail_first, fault_error_rate, fault_malformed,
};

/* ---- sending and holding answers ---- */

/* Sends a provider answer, counting it by status. */
static void reply_send(struct mock *m, struct evhttp_request *req, int status)
{
    if (status > 0 && status < MOCK_STATUS_MAX) {
        m->by_status[status]++;
    }
    evhttp_send_reply(req, status, status_reason(status), NULL);
}

/* Forgets a held answer. Touches neither the request nor the connection. */
static void held_release(struct held *h)
{
    struct mock *m = h->m;
    if (h->prev != NULL) {
        h->prev->next = h->next;
    } else {
        m->held = h->next;
    }
    if (h->next != NULL) {
        h->next->prev = h->prev;
    }
    m->in_flight--;
    event_free(h->timer);
    if (h->watch != NULL) {
        event_free(h->watch);
    }
    free(h);
}

/*
 * Called by evhttp_connection_free, which then frees the held request with the connection (it is
 * still queued on it because we never answered). So: forget our state, touch nothing else.
 */
static void held_on_close(struct evhttp_connection *evcon, void *arg)
{
    (void)evcon;
    held_release(arg);
}

static void held_on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct held *h = arg;
    struct mock *m = h->m;
    struct evhttp_request *req = h->req;
    int status = h->status;
    if (status == ANSWER_HANG) {
        evhttp_connection_free(h->evcon); /* runs held_on_close */
        return;
    }
    evhttp_connection_set_closecb(h->evcon, NULL, NULL);
    held_release(h);
    reply_send(m, req, status);
}

/*
 * evhttp (2.1) stops reading a connection while a request awaits its answer, so it would not
 * notice the client leaving until we write. Watch the socket ourselves: EOF or an error means the
 * client is gone and the connection is freed now. Bytes (a pipelined request) are left for evhttp
 * and the watch stops; the timer still ends the wait.
 */
static void held_on_readable(evutil_socket_t fd, short what, void *arg)
{
    (void)what;
    struct held *h = arg;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        evhttp_connection_free(h->evcon); /* runs held_on_close */
    } else if (n < 0) {
        event_add(h->watch, NULL);
    } else {
        event_free(h->watch);
        h->watch = NULL;
    }
}

/* Common timeouts keep thousands of same-length latency timers O(1) each. */
static const struct timeval *latency_tv(struct mock *m, long ms, struct timeval *plain)
{
    plain->tv_sec = ms / 1000;
    plain->tv_usec = (ms % 1000) * 1000;
    if (m->common_tv == NULL || m->common_ms != ms) {
        m->common_tv = event_base_init_common_timeout(m->base, plain);
        m->common_ms = ms;
    }
    return m->common_tv != NULL ? m->common_tv : plain;
}

/* Parks an answer for ms milliseconds. If that fails, the answer (503 for a hang) goes now. */
static void held_start(struct mock *m, struct evhttp_request *req, int status, long ms)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    struct held *h = calloc(1, sizeof(*h));
    if (h == NULL || evcon == NULL) {
        goto fail;
    }
    evutil_socket_t fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    *h = (struct held){.m = m, .req = req, .evcon = evcon, .status = status, .next = m->held};
    h->timer = evtimer_new(m->base, held_on_timer, h);
    h->watch = event_new(m->base, fd, EV_READ, held_on_readable, h);
    struct timeval plain;
    if (h->timer == NULL || h->watch == NULL ||
        event_add(h->timer, latency_tv(m, ms, &plain)) < 0 || event_add(h->watch, NULL) < 0) {
        goto fail;
    }
    if (m->held != NULL) {
        m->held->prev = h;
    }
    m->held = h;
    m->in_flight++;
    evhttp_connection_set_closecb(evcon, held_on_close, h);
    return;
fail:
    if (h != NULL && h->timer != NULL) {
        event_free(h->timer);
    }
    if (h != NULL && h->watch != NULL) {
        event_free(h->watch);
    }
    free(h);
    reply_send(m, req, status == ANSWER_HANG ? 503 : status);
}

/* ---- request recording ---- */

static void ring_clear(struct ring *r)
{
    for (size_t i = 0; r->slots != NULL && i < r->cap; i++) {
        free(r->slots[i].blob);
        r->slots[i].blob = NULL;
    }
    r->next = 0;
    r->count = 0;
}

/* Copies method, path, headers (names lower-cased) and up to 1 MiB of body into the ring. */
static void ring_add(struct mock *m, struct exchange *x, const char *path)
{
    struct ring *r = &m->ring;
    if (r->cap == 0) {
        return;
    }
    struct evkeyvalq *headers = evhttp_request_get_input_headers(x->req);
    struct evkeyval *kv;
    size_t path_len = strlen(path), headers_len = 0;
    size_t body_len = x->body_len > MOCK_RECORD_BODY_MAX ? MOCK_RECORD_BODY_MAX : x->body_len;
    for (kv = headers->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        headers_len += strlen(kv->key) + strlen(kv->value) + 2;
    }
    char *blob = malloc(path_len + 1 + headers_len + body_len + 1);
    if (blob == NULL) {
        return;
    }
    memcpy(blob, path, path_len + 1);
    char *p = blob + path_len + 1;
    for (kv = headers->tqh_first; kv != NULL; kv = kv->next.tqe_next) {
        for (const char *k = kv->key; *k != '\0'; k++) {
            *p++ = (char)(*k >= 'A' && *k <= 'Z' ? *k - 'A' + 'a' : *k);
        }
        *p++ = '\0';
        size_t vlen = strlen(kv->value) + 1;
        memcpy(p, kv->value, vlen);
        p += vlen;
    }
    if (body_len > 0) {
        memcpy(p, x->body, body_len);
    }
    struct record *rec = &r->slots[r->next];
    struct timeval now;
    event_base_gettimeofday_cached(m->base, &now);
    free(rec->blob);
    *rec = (struct record){
        .blob = blob,
        .path_len = path_len,
        .headers_len = headers_len,
        .body_len = body_len,
        .method = evhttp_request_get_command(x->req),
        .body_truncated = body_len < x->body_len,
        .at_ms = (long long)now.tv_sec * 1000 + now.tv_usec / 1000,
    };
    r->next = (r->next + 1) % r->cap;
    if (r->count < r->cap) {
        r->count++;
    }
}

static cJSON *record_json(const struct record *rec)
{
    cJSON *o = cJSON_CreateObject();
    cJSON *headers = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "method", method_name(rec->method));
    cJSON_AddStringToObject(o, "path", rec->blob);
    const char *p = rec->blob + rec->path_len + 1;
    const char *end = p + rec->headers_len;
    while (p < end) {
        const char *name = p;
        const char *value = name + strlen(name) + 1;
        p = value + strlen(value) + 1;
        cJSON *prev = cJSON_GetObjectItemCaseSensitive(headers, name);
        if (cJSON_IsString(prev)) { /* a repeated header: join as HTTP would */
            size_t len = strlen(prev->valuestring) + strlen(value) + 3;
            char *joined = malloc(len);
            if (joined != NULL) {
                snprintf(joined, len, "%s, %s", prev->valuestring, value);
                cJSON_ReplaceItemInObjectCaseSensitive(headers, name, cJSON_CreateString(joined));
                free(joined);
            }
        } else {
            cJSON_AddStringToObject(headers, name, value);
        }
    }
    cJSON_AddItemToObject(o, "headers", headers);
    cJSON *body = NULL;
    if (rec->body_len > 0) {
        body = cJSON_ParseWithLength(end, rec->body_len);
        if (body == NULL) {
            char *raw = malloc(rec->body_len + 1);
            if (raw != NULL) {
                memcpy(raw, end, rec->body_len);
                raw[rec->body_len] = '\0';
                body = cJSON_CreateString(raw);
                free(raw);
            }
        }
    }
    cJSON_AddItemToObject(o, "body", body != NULL ? body : cJSON_CreateNull());
    if (rec->body_truncated) {
        cJSON_AddTrueToObject(o, "body_truncated");
    }
    cJSON_AddNumberToObject(o, "at_ms", (double)rec->at_ms);
    return o;
}

/* ---- config ---- */

static void config_cleanup(struct mock_config *c)
{
    free(c->error_message);
    c->error_message = NULL;
}

static int config_copy(struct mock_config *dst, const struct mock_config *src)
{
    *dst = *src;
    if (src->error_message != NULL && (dst->error_message = strdup(src->error_message)) == NULL) {
        return -1;
    }
    return 0;
}

static const struct config_key *config_key_find(const char *name, bool by_flag)
{
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        if (strcmp(by_flag ? config_keys[i].flag : config_keys[i].name, name) == 0) {
            return &config_keys[i];
        }
    }
    return NULL;
}

/* Sets one switch from a number (KEY_INT, KEY_DOUBLE), checking range and integrality. */
static int config_set_number(struct mock_config *c, const struct config_key *k, double v)
{
    void *field = (char *)c + k->offset;
    if (!(v >= k->min && v <= k->max)) {
        return -1;
    }
    if (k->type == KEY_INT) {
        if (v != floor(v)) {
            return -1;
        }
        *(long *)field = (long)v;
    } else if (k->type == KEY_DOUBLE) {
        *(double *)field = v;
    } else {
        return -1;
    }
    return 0;
}

/* Sets one switch from a JSON value: numbers, booleans, or a string (null clears it). */
static int config_set_json(struct mock_config *c, const struct config_key *k, const cJSON *v)
{
    void *field = (char *)c + k->offset;
    switch (k->type) {
    case KEY_INT:
    case KEY_DOUBLE:
        return cJSON_IsNumber(v) ? config_set_number(c, k, v->valuedouble) : -1;
    case KEY_BOOL:
        if (!cJSON_IsBool(v)) {
            return -1;
        }
        *(bool *)field = cJSON_IsTrue(v);
        return 0;
    case KEY_STRING: {
        if (!cJSON_IsString(v) && !cJSON_IsNull(v)) {
            return -1;
        }
        char *s = cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
        if (cJSON_IsString(v) && s == NULL) {
            return -1;
        }
        free(*(char **)field);
        *(char **)field = s;
        return 0;
    }
    }
    return -1;
}

static cJSON *config_json(const struct mock_config *c)
{
    cJSON *o = cJSON_CreateObject();
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        const struct config_key *k = &config_keys[i];
        const void *field = (const char *)c + k->offset;
        switch (k->type) {
        case KEY_INT:
            cJSON_AddNumberToObject(o, k->name, (double)*(const long *)field);
            break;
        case KEY_DOUBLE:
            cJSON_AddNumberToObject(o, k->name, *(const double *)field);
            break;
        case KEY_BOOL:
            cJSON_AddBoolToObject(o, k->name, *(const bool *)field);
            break;
        case KEY_STRING: {
            const char *s = *(char *const *)field;
            cJSON_AddItemToObject(o, k->name,
                                  s != NULL ? cJSON_CreateString(s) : cJSON_CreateNull());
            break;
        }
        }
    }
    return o;
}

/* The rate-limit bucket starts full whenever its rate is (re)set. */
static void bucket_refill(struct mock *m)
{
    m->tokens = m->config.rate_limit_rps < 1 ? 1 : m->config.rate_limit_rps;
    m->bucket_at = monotonic_s();
}

/* ---- control endpoints (no faults, not counted) ---- */

static int control_healthz(struct exchange *x)
{
    evbuffer_add_printf(out_body(x), "{\"status\":\"ok\"}");
    return 200;
}

static int control_stats(struct exchange *x)
{
    struct mock *m = x->m;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "requests", (double)m->requests);
    cJSON_AddNumberToObject(o, "in_flight", (double)m->in_flight);
    cJSON *by_status = cJSON_AddObjectToObject(o, "by_status");
    for (int s = 0; s < MOCK_STATUS_MAX; s++) {
        if (m->by_status[s] > 0) {
            char key[8];
            snprintf(key, sizeof(key), "%d", s);
            cJSON_AddNumberToObject(by_status, key, (double)m->by_status[s]);
        }
    }
    cJSON *by_path = cJSON_AddObjectToObject(o, "by_path");
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (m->by_route[i] > 0) {
            cJSON_AddNumberToObject(by_path, routes[i].path, (double)m->by_route[i]);
        }
    }
    if (m->unmatched > 0) {
        cJSON_AddNumberToObject(by_path, "(unmatched)", (double)m->unmatched);
    }
    cJSON *last = cJSON_AddArrayToObject(o, "last_requests");
    const struct ring *r = &m->ring;
    for (size_t i = 0; i < r->count; i++) {
        cJSON_AddItemToArray(last,
                             record_json(&r->slots[(r->next + r->cap - r->count + i) % r->cap]));
    }
    return out_json(x, 200, o);
}

static int control_config_get(struct exchange *x)
{
    return out_json(x, 200, config_json(&x->m->config));
}

/* Applies all keys or none: the new config is built on a copy and swapped in at the end. */
static int control_config_set(struct exchange *x)
{
    struct mock *m = x->m;
    char message[128];
    cJSON *root = x->body != NULL ? cJSON_ParseWithLength(x->body, x->body_len) : NULL;
    struct mock_config next;
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return openai_error(x, 400, NULL, "mock: config must be a JSON object", NULL);
    }
    if (config_copy(&next, &m->config) < 0) {
        cJSON_Delete(root);
        return openai_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    const cJSON *item;
    cJSON_ArrayForEach(item, root)
    {
        const struct config_key *k = config_key_find(item->string, false);
        if (k == NULL || config_set_json(&next, k, item) < 0) {
            snprintf(message, sizeof(message), "mock: %s config key '%.64s'",
                     k == NULL ? "unknown" : "bad value for", item->string);
            config_cleanup(&next);
            cJSON_Delete(root);
            return openai_error(x, 400, NULL, message, NULL);
        }
    }
    config_cleanup(&m->config);
    m->config = next;
    if (cJSON_GetObjectItemCaseSensitive(root, "fail_first") != NULL) {
        m->fail_seen = 0;
    }
    if (cJSON_GetObjectItemCaseSensitive(root, "rate_limit_rps") != NULL) {
        bucket_refill(m);
    }
    cJSON_Delete(root);
    return out_json(x, 200, config_json(&m->config));
}

/* Counters, recordings and switches back to startup values. Held answers keep their timers. */
static int control_reset(struct exchange *x)
{
    struct mock *m = x->m;
    struct mock_config fresh;
    if (config_copy(&fresh, &m->startup) < 0) {
        return openai_error(x, 500, NULL, "mock: out of memory", NULL);
    }
    config_cleanup(&m->config);
    m->config = fresh;
    m->requests = m->unmatched = m->fail_seen = 0;
    memset(m->by_status, 0, sizeof(m->by_status));
    memset(m->by_route, 0, sizeof(m->by_route));
    m->rng = m->seed;
    bucket_refill(m);
    ring_clear(&m->ring);
    evbuffer_add_printf(out_body(x), "{\"ok\":true}");
    return 200;
}

/* ---- dispatch ---- */

static const struct route *route_find(enum evhttp_cmd_type method, const char *path)
{
    for (size_t i = 0; i < N_ROUTES; i++) {
        if (routes[i].method == method && strcmp(routes[i].path, path) == 0) {
            return &routes[i];
        }
    }
    return NULL;
}

/*
 * Every request enters here. Control routes answer at once. Everything else is a provider request:
 * counted, recorded, run through the faults, answered by its handler, then sent now or held.
 */
static void on_request(struct evhttp_request *req, void *arg)
{
    struct mock *m = arg;
    const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct exchange x = {.m = m, .req = req, .body_len = evbuffer_get_length(in)};
    x.body = x.body_len > 0 ? (const char *)evbuffer_pullup(in, -1) : NULL;
    x.route = route_find(evhttp_request_get_command(req), path != NULL ? path : "");
    if (x.route != NULL && x.route->dialect == NULL) {
        int status = x.route->handle(&x);
        evhttp_send_reply(req, status, status_reason(status), NULL);
        return;
    }

    x.seq = ++m->requests;
    ring_add(m, &x, path != NULL ? path : "");
    char request_id[40];
    snprintf(request_id, sizeof(request_id), "req_mock_%llu", x.seq);
    if (x.route == NULL) {
        m->unmatched++;
        out_header(&x, dialect_openai.request_id_header, request_id);
        reply_send(m, req, openai_error(&x, 404, NULL, "mock: unknown route", NULL));
        return;
    }
    m->by_route[x.route - routes]++;
    out_header(&x, x.route->dialect->request_id_header, request_id);

    int status = ANSWER_PASS;
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]) && status == ANSWER_PASS; i++) {
        status = faults[i](&x);
    }
    if (status == ANSWER_PASS) {
        status = x.route->handle(&x);
    }
    if (status == ANSWER_HANG) {
        held_start(m, req, status, MOCK_HANG_MS);
    } else if (m->config.latency_ms > 0) {
        held_start(m, req, status, m->config.latency_ms);
    } else {
        reply_send(m, req, status);
    }
}

/* ---- process ---- */

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(((struct mock *)arg)->base);
}

static void listener_resume(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    evconnlistener_enable(arg);
}

/* accept() failing for want of descriptors would spin the loop: pause accepting for 100 ms. */
static void listener_on_error(struct evconnlistener *lev, void *arg)
{
    (void)arg;
    const struct timeval pause = {0, 100000};
    fprintf(stderr, "sluice-mock: accept: %s; pausing\n",
            evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    evconnlistener_disable(lev);
    event_base_once(evconnlistener_get_base(lev), -1, EV_TIMEOUT, listener_resume, lev, &pause);
}

static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            perror("sluice-mock: setrlimit(RLIMIT_NOFILE)");
        }
    }
}

/*
 * Binds --listen (HOST:PORT, HOST numeric, [IPv6] or localhost, PORT 0 for any free port) with a
 * deep backlog, and prints the line tests wait for. Resolution happens before the loop runs.
 */
static int mock_listen(struct mock *m, const char *listen)
{
    char host[256], serv[16];
    const char *colon = strrchr(listen, ':');
    size_t host_len = colon != NULL ? (size_t)(colon - listen) : 0;
    if (host_len >= 2 && listen[0] == '[' && listen[host_len - 1] == ']') {
        snprintf(host, sizeof(host), "%.*s", (int)host_len - 2, listen + 1);
    } else {
        snprintf(host, sizeof(host), "%.*s", (int)host_len, listen);
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICSERV, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    char *end;
    long port = colon != NULL ? strtol(colon + 1, &end, 10) : -1;
    if (port < 0 || port > 65535 || end == colon + 1 || *end != '\0' || host_len == 0 ||
        getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
        fprintf(stderr, "sluice-mock: bad --listen '%s' (want HOST:PORT)\n", listen);
        return -1;
    }
    struct evconnlistener *lev = evconnlistener_new_bind(
        m->base, NULL, NULL, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC | LEV_OPT_REUSEABLE,
        MOCK_LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (lev == NULL) {
        fprintf(stderr, "sluice-mock: cannot listen on %s: %s\n", listen,
                evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    if (evhttp_bind_listener(m->http, lev) == NULL) {
        evconnlistener_free(lev);
        return -1;
    }
    evconnlistener_set_error_cb(lev, listener_on_error);
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&ss, &len) < 0 ||
        getnameinfo((struct sockaddr *)&ss, len, host, sizeof(host), serv, sizeof(serv),
                    NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
        return -1;
    }
    bool v6 = strchr(host, ':') != NULL;
    printf("sluice-mock listening on %s%s%s:%s\n", v6 ? "[" : "", host, v6 ? "]" : "", serv);
    fflush(stdout);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: sluice-mock --listen HOST:PORT [options]\n"
                 "  --listen HOST:PORT    address to bind; PORT 0 picks a free port (default "
                 "127.0.0.1:0)\n"
                 "  --api-key K           require 'Authorization: Bearer K' (else 401)\n"
                 "  --latency-ms N        delay every provider answer by N ms\n"
                 "  --error-rate F        answer error-status to a random fraction F in [0,1]\n"
                 "  --error-status S      status of injected errors, 400..599 (default 500)\n"
                 "  --error-message M     message of injected errors\n"
                 "  --fail-first N        answer error-status to the first N provider requests\n"
                 "  --rate-limit RPS      token bucket of RPS requests/s; beyond it answer 429\n"
                 "  --retry-after S       retry-after of 429 answers, seconds (default 1)\n"
                 "  --hang                never answer provider requests\n"
                 "  --malformed           answer 200 with a broken JSON body\n"
                 "  --record N            keep the last N requests for /_mock/stats (default 50)\n"
                 "  --seed N              seed of --error-rate's generator (default 1)\n"
                 "  --help                this text\n"
                 "See tests/mock/README.md for the endpoints.\n");
}

static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"api-key", required_argument, NULL, 'k'},
    {"record", required_argument, NULL, 'r'},
    {"seed", required_argument, NULL, 's'},
    {"help", no_argument, NULL, 'h'},
    {"latency-ms", required_argument, NULL, 'c'},
    {"error-rate", required_argument, NULL, 'c'},
    {"error-status", required_argument, NULL, 'c'},
    {"error-message", required_argument, NULL, 'c'},
    {"fail-first", required_argument, NULL, 'c'},
    {"rate-limit", required_argument, NULL, 'c'},
    {"retry-after", required_argument, NULL, 'c'},
    {"hang", no_argument, NULL, 'c'},
    {"malformed", no_argument, NULL, 'c'},
    {NULL, 0, NULL, 0},
};

static int parse_number(const char *s, double *out)
{
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return (errno != 0 || end == s || *end != '\0') ? -1 : 0;
}

/* Parses the command line into m. Returns 0, 1 after --help, or -1 on a bad argument. */
static int parse_args(struct mock *m, int argc, char **argv, const char **listen)
{
    int opt, index = 0;
    double v;
    while ((opt = getopt_long(argc, argv, "h", long_options, &index)) != -1) {
        const char *flag = long_options[index].name;
        if (opt == 'h') {
            usage(stdout);
            return 1;
        } else if (opt == 'l') {
            *listen = optarg;
        } else if (opt == 'k') {
            free(m->auth_header);
            size_t len = strlen(optarg) + sizeof("Bearer ");
            if ((m->auth_header = malloc(len)) == NULL) {
                return -1;
            }
            snprintf(m->auth_header, len, "Bearer %s", optarg);
        } else if (opt == 'r') {
            if (parse_number(optarg, &v) < 0 || v < 0 || v > MOCK_RECORD_MAX || v != floor(v)) {
                fprintf(stderr, "sluice-mock: --record wants 0..%d\n", MOCK_RECORD_MAX);
                return -1;
            }
            m->ring.cap = (size_t)v;
        } else if (opt == 's') {
            char *end;
            errno = 0;
            m->seed = strtoull(optarg, &end, 10);
            if (errno != 0 || *end != '\0' || end == optarg) {
                fprintf(stderr, "sluice-mock: --seed wants an unsigned integer\n");
                return -1;
            }
        } else if (opt == 'c') {
            const struct config_key *k = config_key_find(flag, true);
            int rc;
            if (k->type == KEY_BOOL) {
                *(bool *)((char *)&m->startup + k->offset) = true;
                rc = 0;
            } else if (k->type == KEY_STRING) {
                cJSON *s = cJSON_CreateString(optarg);
                rc = s != NULL ? config_set_json(&m->startup, k, s) : -1;
                cJSON_Delete(s);
            } else {
                rc = parse_number(optarg, &v) < 0 ? -1 : config_set_number(&m->startup, k, v);
            }
            if (rc < 0) {
                fprintf(stderr, "sluice-mock: bad value '%s' for --%s (range %g..%g)\n", optarg,
                        flag, k->min, k->max);
                return -1;
            }
        } else {
            usage(stderr);
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "sluice-mock: unexpected argument '%s'\n", argv[optind]);
        return -1;
    }
    return 0;
}

/* Frees everything. Held answers go with their connections, which evhttp_free closes. */
static void mock_cleanup(struct mock *m)
{
    while (m->held != NULL) {
        evhttp_connection_free(m->held->evcon); /* runs held_on_close */
    }
    if (m->http != NULL) {
        evhttp_free(m->http);
    }
    if (m->sig_term != NULL) {
        event_free(m->sig_term);
    }
    if (m->sig_int != NULL) {
        event_free(m->sig_int);
    }
    if (m->base != NULL) {
        event_base_free(m->base);
    }
    ring_clear(&m->ring);
    free(m->ring.slots);
    config_cleanup(&m->config);
    config_cleanup(&m->startup);
    free(m->auth_header);
}

int main(int argc, char **argv)
{
    struct mock m = {
        .startup = {.error_status = 500, .retry_after_s = 1},
        .seed = 1,
        .ring = {.cap = MOCK_RECORD_DEFAULT},
    };
    const char *listen = "127.0.0.1:0";
    int rc = parse_args(&m, argc, argv, &listen);
    if (rc != 0) {
        mock_cleanup(&m);
        return rc > 0 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN); /* a client that left must not kill us mid-write */
    raise_nofile_limit();

    rc = 1;
    m.rng = m.seed;
    if (config_copy(&m.config, &m.startup) < 0) {
        goto out;
    }
    bucket_refill(&m);
    if (m.ring.cap > 0 && (m.ring.slots = calloc(m.ring.cap, sizeof(*m.ring.slots))) == NULL) {
        goto out;
    }
    if ((m.base = event_base_new()) == NULL || (m.http = evhttp_new(m.base)) == NULL) {
        goto out;
    }
    evhttp_set_max_body_size(m.http, MOCK_MAX_BODY);
    evhttp_set_max_headers_size(m.http, MOCK_MAX_HEADERS);
    evhttp_set_default_content_type(m.http, "application/json");
    evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_PATCH);
    evhttp_set_gencb(m.http, on_request, &m);
    m.sig_term = evsignal_new(m.base, SIGTERM, on_signal, &m);
    m.sig_int = evsignal_new(m.base, SIGINT, on_signal, &m);
    if (m.sig_term == NULL || m.sig_int == NULL || evsignal_add(m.sig_term, NULL) < 0 ||
        evsignal_add(m.sig_int, NULL) < 0) {
        goto out;
    }
    if (mock_listen(&m, listen) < 0) {
        goto out;
    }
    rc = event_base_dispatch(m.base) < 0 ? 1 : 0;
out:
    if (rc != 0) {
        fprintf(stderr, "sluice-mock: failed to start\n");
    }
    mock_cleanup(&m);
    libevent_global_shutdown();
    return rc;
}
