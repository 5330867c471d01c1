/*
 * bench/loadgen.c — an open-loop HTTP load generator for bench/run (Debian 12 has wrk, not wrk2).
 *
 *   loadgen --url http://HOST:PORT/PATH --rate R --duration S [--warmup S] [--conns N]
 *           [--max-conns M] [--method POST|GET] [--body STR | --body-file FILE] [--auth-env VAR]
 *           [--expect STATUS] [--timeout-s S] [--drain-s S] [--interval S]
 *
 * Request i is due at start + i/R, whatever happened to the requests before it (open loop), and
 * its latency is measured from that due time, not from when it was actually written: a server
 * that stalls is charged for every request that waited behind the stall (no coordinated
 * omission). Requests go over keep-alive evhttp connections, one request at a time each: --conns
 * are opened up front; a request due when none is free opens another, up to --max-conns (counted
 * as extra_conns); past that it waits for the first free connection (counted in backlog_max, and
 * its wait is part of its latency).
 *
 * The first --warmup seconds of requests are sent but not recorded; then --duration seconds are.
 * After the last due time it waits at most --drain-s for the answers still out, then stops:
 * bounded whatever the server does. It prints one machine-readable line on stdout:
 *   LOADGEN sent=.. done=.. ok=.. bad=.. transport_errors=.. timeouts=.. unfinished=..
 *           statuses=200:N,.. conns=.. extra_conns=.. backlog_max=.. send_lag_max_us=..
 *           seconds=.. rate=.. recorded=.. p50_us=.. p90_us=.. p99_us=.. p999_us=.. max_us=..
 *           mean_us=..
 * (percentiles over the recorded answers of any status; ok counts --expect answers), then
 * "LOADGEN_SAMPLE <status> <body>" for the first answer that was not --expect, if any. With
 * --interval S, a "LOADGEN_INTERVAL ..." line per S seconds on stderr (for a long soak).
 * Exits 0 when it ran (the caller judges the figures), 1 when it could not start, 2 on bad usage.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#define LG_MAX_STATUS 600
#define LG_MAX_BODY (8 * 1024 * 1024)
#define LG_MAX_RESPONSE (64 * 1024 * 1024)
#define LG_MAX_HEADERS (64 * 1024)
#define LG_MAX_REQUESTS 100000000L
#define LG_SAMPLE_BYTES 300

/* One keep-alive connection; it carries one request at a time. */
struct lg_conn {
    struct loadgen *lg;
    struct evhttp_connection *evcon;
    struct lg_conn *next_free;
    int64_t due_ns; /* the due time of the request it carries */
    bool recorded;  /* that request's latency counts (past the warm-up) */
    int error;      /* from the error callback: EVREQ_HTTP_* + 1, or 0 */
};

/* All of the process's state. */
struct loadgen {
    /* options */
    char host[256];
    int port;
    char *path;
    enum evhttp_cmd_type method;
    const char *method_name;
    char *body;
    size_t body_len;
    char *auth;
    int expect;
    double rate;
    double duration_s;
    double warmup_s;
    int conns;
    int max_conns;
    int timeout_s;
    double drain_s;
    double interval_s;

    struct event_base *base;
    struct event *send_timer; /* fires at the next due time */
    struct event *pump;       /* sends what is due once a connection is free again */
    struct event *drain_timer;
    struct event *interval_timer;
    struct event *sigint;
    struct event *sigterm;

    struct lg_conn **all; /* every connection opened, max_conns slots */
    int n_conns;
    struct lg_conn *free_list;

    int64_t start_ns;
    int64_t interval_ns; /* ns between due times */
    long total;          /* requests to send */
    long warmup_n;       /* the first warmup_n are not recorded */
    long sent;
    long done;
    long ok;
    long bad;
    long transport_errors;
    long timeouts;
    long extra_conns;
    long backlog_max;
    int64_t send_lag_max_ns;
    long statuses[LG_MAX_STATUS];
    char sample[LG_SAMPLE_BYTES + 16];
    bool finished;

    uint32_t *lat_us; /* recorded latencies, in completion order */
    long n_lat;
    long lat_cap;

    long iv_done_mark; /* counters at the last interval line */
    long iv_lat_mark;
    long iv_bad_mark;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static struct timeval tv_of_ns(int64_t ns)
{
    struct timeval tv;
    if (ns < 0) {
        ns = 0;
    }
    tv.tv_sec = (time_t)(ns / 1000000000);
    tv.tv_usec = (suseconds_t)((ns % 1000000000) / 1000);
    return tv;
}

static int64_t due_of(const struct loadgen *lg, long i)
{
    return lg->start_ns + (int64_t)((double)i * 1e9 / lg->rate);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of a sorted array (0 when empty). */
static uint32_t percentile(const uint32_t *v, long n, double p)
{
    long k;
    if (n <= 0) {
        return 0;
    }
    k = (long)ceil(p / 100.0 * (double)n) - 1;
    if (k < 0) {
        k = 0;
    }
    if (k >= n) {
        k = n - 1;
    }
    return v[k];
}

static void on_request_done(struct evhttp_request *req, void *arg);

static void on_request_error(enum evhttp_request_error error, void *arg)
{
    struct lg_conn *c = arg;
    c->error = (int)error + 1;
}

/* Opens one more connection (not connected until its first request). NULL when at the cap. */
static struct lg_conn *conn_new(struct loadgen *lg)
{
    struct lg_conn *c;

    if (lg->n_conns >= lg->max_conns) {
        return NULL;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->lg = lg;
    c->evcon = evhttp_connection_base_new(lg->base, NULL, lg->host, (unsigned short)lg->port);
    if (c->evcon == NULL) {
        free(c);
        return NULL;
    }
    evhttp_connection_set_timeout(c->evcon, lg->timeout_s);
    evhttp_connection_set_max_body_size(c->evcon, LG_MAX_RESPONSE);
    evhttp_connection_set_max_headers_size(c->evcon, LG_MAX_HEADERS);
    evhttp_connection_set_retries(c->evcon, 0);
    lg->all[lg->n_conns++] = c;
    return c;
}

/*
 * Sends request number lg->sent, due at DUE, on connection C. A request evhttp refuses at once
 * (it could not even create a socket) counts as a transport error and frees the connection.
 */
static void send_one(struct loadgen *lg, struct lg_conn *c, int64_t due)
{
    struct evhttp_request *req;
    struct evkeyvalq *h;
    int64_t lag = now_ns() - due;

    if (lag > lg->send_lag_max_ns) {
        lg->send_lag_max_ns = lag;
    }
    c->due_ns = due;
    c->recorded = lg->sent >= lg->warmup_n;
    c->error = 0;
    lg->sent++;
    req = evhttp_request_new(on_request_done, c);
    if (req == NULL) {
        goto refused;
    }
    evhttp_request_set_error_cb(req, on_request_error);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", lg->host);
    if (lg->auth) {
        evhttp_add_header(h, "Authorization", lg->auth);
    }
    if (lg->body) {
        evhttp_add_header(h, "Content-Type", "application/json");
        evbuffer_add_reference(evhttp_request_get_output_buffer(req), lg->body, lg->body_len, NULL,
                               NULL);
    }
    if (evhttp_make_request(c->evcon, req, lg->method, lg->path) != 0) {
        goto refused;
    }
    return;
refused:
    lg->transport_errors++;
    lg->done++;
    c->next_free = lg->free_list;
    lg->free_list = c;
}

/* How many requests are due by now. */
static long due_count(const struct loadgen *lg, int64_t now)
{
    long n;
    if (now < lg->start_ns) {
        return 0;
    }
    n = (long)((double)(now - lg->start_ns) * lg->rate / 1e9) + 1;
    while (n > 0 && due_of(lg, n - 1) > now) {
        n--;
    }
    return n > lg->total ? lg->total : n;
}

static void finish(struct loadgen *lg)
{
    if (!lg->finished) {
        lg->finished = true;
        event_base_loopexit(lg->base, NULL);
    }
}

/*
 * Sends every request that is due and has (or may open) a connection, then arms the timer for
 * the next due time. The rest wait for a connection: pump runs this again when one frees.
 */
static void send_due(struct loadgen *lg)
{
    int64_t now = now_ns();
    long due = due_count(lg, now);
    struct lg_conn *c;
    struct timeval tv;

    while (lg->sent < due) {
        c = lg->free_list;
        if (c != NULL) {
            lg->free_list = c->next_free;
        } else {
            c = conn_new(lg);
            if (c == NULL) {
                break;
            }
            lg->extra_conns++;
        }
        send_one(lg, c, due_of(lg, lg->sent));
    }
    if (due - lg->sent > lg->backlog_max) {
        lg->backlog_max = due - lg->sent;
    }
    if (due < lg->total) {
        tv = tv_of_ns(due_of(lg, due) - now_ns());
        evtimer_add(lg->send_timer, &tv);
    } else if (lg->sent == lg->total && lg->done == lg->total) {
        finish(lg);
    }
}

static void on_send_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_due(arg);
}

static void on_pump(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    send_due(arg);
}

/*
 * One answer (or a failure: REQ is NULL). The latency runs from the request's due time. The
 * connection goes back to the free list and the pump sends what waited for it, after evhttp has
 * finished with this request.
 */
static void on_request_done(struct evhttp_request *req, void *arg)
{
    struct lg_conn *c = arg;
    struct loadgen *lg = c->lg;
    int64_t lat = now_ns() - c->due_ns;
    int code = req ? evhttp_request_get_response_code(req) : 0;
    struct evbuffer *in;
    size_t n;

    lg->done++;
    if (code <= 0) {
        if (c->error == EVREQ_HTTP_TIMEOUT + 1) {
            lg->timeouts++;
        } else {
            lg->transport_errors++;
        }
    } else {
        lg->statuses[code < LG_MAX_STATUS ? code : 0]++;
        if (code == lg->expect) {
            lg->ok++;
        } else {
            lg->bad++;
            if (lg->sample[0] == '\0') {
                in = evhttp_request_get_input_buffer(req);
                n = evbuffer_get_length(in);
                n = n > LG_SAMPLE_BYTES ? LG_SAMPLE_BYTES : n;
                snprintf(lg->sample, 16, "%d ", code);
                evbuffer_copyout(in, lg->sample + strlen(lg->sample), n);
                for (char *p = lg->sample; *p; p++) {
                    if (*p == '\n' || *p == '\r') {
                        *p = ' ';
                    }
                }
            }
        }
        if (c->recorded && lg->n_lat < lg->lat_cap) {
            lat /= 1000;
            lg->lat_us[lg->n_lat++] = lat > UINT32_MAX ? UINT32_MAX : (uint32_t)lat;
        }
    }
    c->next_free = lg->free_list;
    lg->free_list = c;
    if (!lg->finished) {
        event_active(lg->pump, EV_TIMEOUT, 0);
    }
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg);
}

/* Every --interval seconds: the window's answers and their p50/p99, on stderr. */
static void on_interval(evutil_socket_t fd, short what, void *arg)
{
    struct loadgen *lg = arg;
    long n = lg->n_lat - lg->iv_lat_mark;
    uint32_t *w = NULL;
    uint32_t p50 = 0, p99 = 0, mx = 0;
    (void)fd;
    (void)what;

    if (n > 0 && (w = malloc((size_t)n * sizeof(*w))) != NULL) {
        memcpy(w, lg->lat_us + lg->iv_lat_mark, (size_t)n * sizeof(*w));
        qsort(w, (size_t)n, sizeof(*w), cmp_u32);
        p50 = percentile(w, n, 50);
        p99 = percentile(w, n, 99);
        mx = w[n - 1];
        free(w);
    }
    fprintf(stderr,
            "LOADGEN_INTERVAL t=%.1f sent=%ld done=%ld window_done=%ld window_bad=%ld "
            "window_p50_us=%u window_p99_us=%u window_max_us=%u conns=%d\n",
            (double)(now_ns() - lg->start_ns) / 1e9, lg->sent, lg->done,
            lg->done - lg->iv_done_mark, lg->bad - lg->iv_bad_mark, p50, p99, mx, lg->n_conns);
    lg->iv_done_mark = lg->done;
    lg->iv_lat_mark = lg->n_lat;
    lg->iv_bad_mark = lg->bad;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    finish(arg);
}

static void report(struct loadgen *lg, double seconds)
{
    long unfinished = lg->sent - lg->done;
    double sum = 0;
    bool first = true;

    qsort(lg->lat_us, (size_t)lg->n_lat, sizeof(*lg->lat_us), cmp_u32);
    for (long i = 0; i < lg->n_lat; i++) {
        sum += lg->lat_us[i];
    }
    printf("LOADGEN sent=%ld done=%ld ok=%ld bad=%ld transport_errors=%ld timeouts=%ld "
           "unfinished=%ld statuses=",
           lg->sent, lg->done, lg->ok, lg->bad, lg->transport_errors, lg->timeouts,
           unfinished + (lg->total - lg->sent));
    for (int s = 0; s < LG_MAX_STATUS; s++) {
        if (lg->statuses[s] > 0) {
            printf("%s%d:%ld", first ? "" : ",", s, lg->statuses[s]);
            first = false;
        }
    }
    printf("%s conns=%d extra_conns=%ld backlog_max=%ld send_lag_max_us=%lld seconds=%.3f "
           "rate=%.1f recorded=%ld p50_us=%u p90_us=%u p99_us=%u p999_us=%u max_us=%u "
           "mean_us=%.0f\n",
           first ? "-" : "", lg->n_conns, lg->extra_conns, lg->backlog_max,
           (long long)(lg->send_lag_max_ns / 1000), seconds,
           seconds > 0 ? (double)lg->done / seconds : 0.0, lg->n_lat,
           percentile(lg->lat_us, lg->n_lat, 50), percentile(lg->lat_us, lg->n_lat, 90),
           percentile(lg->lat_us, lg->n_lat, 99), percentile(lg->lat_us, lg->n_lat, 99.9),
           lg->n_lat > 0 ? lg->lat_us[lg->n_lat - 1] : 0,
           lg->n_lat > 0 ? sum / (double)lg->n_lat : 0.0);
    if (lg->sample[0] != '\0') {
        printf("LOADGEN_SAMPLE %s\n", lg->sample);
    }
    fflush(stdout);
}

/* Reads FILE whole (at most LG_MAX_BODY bytes). Returns a malloc'ed string, or NULL. */
static char *read_file(const char *file, size_t *len)
{
    FILE *f = fopen(file, "rb");
    char *buf = NULL;
    size_t n = 0;

    if (f == NULL) {
        return NULL;
    }
    buf = malloc(LG_MAX_BODY + 1);
    if (buf != NULL) {
        n = fread(buf, 1, LG_MAX_BODY + 1, f);
        if (ferror(f) || n > LG_MAX_BODY) {
            free(buf);
            buf = NULL;
        } else {
            buf[n] = '\0';
            *len = n;
        }
    }
    fclose(f);
    return buf;
}

/* "http://HOST:PORT/PATH?QUERY" into host, port and path. Returns 0, or -1. */
static int parse_url(struct loadgen *lg, const char *url)
{
    struct evhttp_uri *u = evhttp_uri_parse(url);
    const char *host, *path, *query;
    int rc = -1;

    if (u == NULL) {
        return -1;
    }
    host = evhttp_uri_get_host(u);
    path = evhttp_uri_get_path(u);
    query = evhttp_uri_get_query(u);
    if (evhttp_uri_get_scheme(u) == NULL || strcmp(evhttp_uri_get_scheme(u), "http") != 0 ||
        host == NULL || strlen(host) >= sizeof(lg->host)) {
        goto out;
    }
    snprintf(lg->host, sizeof(lg->host), "%s", host);
    lg->port = evhttp_uri_get_port(u) > 0 ? evhttp_uri_get_port(u) : 80;
    if (path == NULL || path[0] == '\0') {
        path = "/";
    }
    lg->path = malloc(strlen(path) + (query ? strlen(query) + 1 : 0) + 1);
    if (lg->path == NULL) {
        goto out;
    }
    sprintf(lg->path, "%s%s%s", path, query ? "?" : "", query ? query : "");
    rc = 0;
out:
    evhttp_uri_free(u);
    return rc;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: loadgen --url http://HOST:PORT/PATH --rate R --duration S [--warmup S]\n"
            "               [--conns N] [--max-conns M] [--method POST|GET] [--body STR |\n"
            "               --body-file FILE] [--auth-env VAR] [--expect STATUS] [--timeout-s S]\n"
            "               [--drain-s S] [--interval S]\n");
    return 2;
}

/* A number option's value within [lo, hi]. Returns 0, or -1. */
static int num_arg(const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !(v >= lo && v <= hi)) {
        return -1;
    }
    *out = v;
    return 0;
}

/* Fills LG from the command line. Returns 0, or -1 on bad usage (after saying why). */
static int parse_args(struct loadgen *lg, int argc, char **argv)
{
    const char *url = NULL, *body_file = NULL, *auth_env = NULL;
    double v;

    lg->conns = 32;
    lg->max_conns = 256;
    lg->expect = 200;
    lg->timeout_s = 30;
    lg->drain_s = 10;
    lg->method = EVHTTP_REQ_POST;
    lg->method_name = "POST";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        if (val == NULL) {
            fprintf(stderr, "loadgen: %s wants a value\n", a);
            return -1;
        }
        i++;
        if (strcmp(a, "--url") == 0) {
            url = val;
        } else if (strcmp(a, "--rate") == 0) {
            bad = num_arg(val, 0.001, 1e6, &lg->rate);
        } else if (strcmp(a, "--duration") == 0) {
            bad = num_arg(val, 0.001, 1e6, &lg->duration_s);
        } else if (strcmp(a, "--warmup") == 0) {
            bad = num_arg(val, 0, 1e6, &lg->warmup_s);
        } else if (strcmp(a, "--conns") == 0) {
            bad = num_arg(val, 1, 100000, &v);
            lg->conns = (int)v;
        } else if (strcmp(a, "--max-conns") == 0) {
            bad = num_arg(val, 1, 100000, &v);
            lg->max_conns = (int)v;
        } else if (strcmp(a, "--method") == 0) {
            if (strcmp(val, "GET") == 0) {
                lg->method = EVHTTP_REQ_GET;
                lg->method_name = "GET";
            } else {
                bad = strcmp(val, "POST") != 0;
            }
        } else if (strcmp(a, "--body") == 0) {
            free(lg->body);
            lg->body = strdup(val);
            lg->body_len = strlen(val);
        } else if (strcmp(a, "--body-file") == 0) {
            body_file = val;
        } else if (strcmp(a, "--auth-env") == 0) {
            auth_env = val;
        } else if (strcmp(a, "--expect") == 0) {
            bad = num_arg(val, 100, LG_MAX_STATUS - 1, &v);
            lg->expect = (int)v;
        } else if (strcmp(a, "--timeout-s") == 0) {
            bad = num_arg(val, 1, 3600, &v);
            lg->timeout_s = (int)v;
        } else if (strcmp(a, "--drain-s") == 0) {
            bad = num_arg(val, 0, 3600, &lg->drain_s);
        } else if (strcmp(a, "--interval") == 0) {
            bad = num_arg(val, 0, 86400, &lg->interval_s);
        } else {
            fprintf(stderr, "loadgen: unknown option %s\n", a);
            return -1;
        }
        if (bad) {
            fprintf(stderr, "loadgen: bad value for %s: %s\n", a, val);
            return -1;
        }
    }
    if (url == NULL || lg->rate <= 0 || lg->duration_s <= 0 || parse_url(lg, url) != 0) {
        fprintf(stderr, "loadgen: --url http://HOST:PORT/PATH, --rate and --duration are needed\n");
        return -1;
    }
    if (lg->max_conns < lg->conns) {
        lg->max_conns = lg->conns;
    }
    if (body_file) {
        free(lg->body);
        lg->body = read_file(body_file, &lg->body_len);
        if (lg->body == NULL) {
            fprintf(stderr, "loadgen: cannot read %s (or it is over %d bytes)\n", body_file,
                    LG_MAX_BODY);
            return -1;
        }
    }
    if (auth_env) {
        const char *key = getenv(auth_env);
        if (key == NULL || key[0] == '\0') {
            fprintf(stderr, "loadgen: $%s is empty\n", auth_env);
            return -1;
        }
        lg->auth = malloc(strlen(key) + 8);
        if (lg->auth == NULL) {
            return -1;
        }
        sprintf(lg->auth, "Bearer %s", key);
    }
    return 0;
}

static void cleanup(struct loadgen *lg)
{
    for (int i = 0; i < lg->n_conns; i++) {
        evhttp_connection_free(lg->all[i]->evcon);
        free(lg->all[i]);
    }
    free(lg->all);
    struct event *evs[] = {lg->send_timer,     lg->pump,   lg->drain_timer,
                           lg->interval_timer, lg->sigint, lg->sigterm};
    for (size_t i = 0; i < sizeof(evs) / sizeof(evs[0]); i++) {
        if (evs[i]) {
            event_free(evs[i]);
        }
    }
    if (lg->base) {
        event_base_free(lg->base);
    }
    free(lg->lat_us);
    free(lg->path);
    free(lg->body);
    free(lg->auth);
}

int main(int argc, char **argv)
{
    static struct loadgen lg;
    struct event_config *ec;
    struct timeval tv;
    double total;
    int64_t t_end;
    int rc = 1;

    if (parse_args(&lg, argc, argv) != 0) {
        cleanup(&lg);
        return usage();
    }
    total = (lg.warmup_s + lg.duration_s) * lg.rate;
    if (total < 1 || total > LG_MAX_REQUESTS) {
        fprintf(stderr, "loadgen: (warmup + duration) x rate must be 1..%ld requests\n",
                LG_MAX_REQUESTS);
        cleanup(&lg);
        return 2;
    }
    lg.total = (long)total;
    lg.warmup_n = (long)(lg.warmup_s * lg.rate);
    signal(SIGPIPE, SIG_IGN);
    /* Timers on timerfd: the default epoll timeout rounds every wait to a millisecond. */
    ec = event_config_new();
    if (ec) {
        event_config_set_flag(ec, EVENT_BASE_FLAG_PRECISE_TIMER);
        lg.base = event_base_new_with_config(ec);
        event_config_free(ec);
    }
    lg.lat_cap = lg.total - lg.warmup_n;
    lg.lat_us = malloc((size_t)(lg.lat_cap > 0 ? lg.lat_cap : 1) * sizeof(*lg.lat_us));
    lg.all = calloc((size_t)lg.max_conns, sizeof(*lg.all));
    if (lg.base == NULL || lg.lat_us == NULL || lg.all == NULL) {
        fprintf(stderr, "loadgen: out of memory\n");
        goto out;
    }
    lg.send_timer = evtimer_new(lg.base, on_send_timer, &lg);
    lg.pump = event_new(lg.base, -1, 0, on_pump, &lg);
    lg.drain_timer = evtimer_new(lg.base, on_drain_timer, &lg);
    lg.interval_timer = event_new(lg.base, -1, EV_PERSIST, on_interval, &lg);
    lg.sigint = evsignal_new(lg.base, SIGINT, on_signal, &lg);
    lg.sigterm = evsignal_new(lg.base, SIGTERM, on_signal, &lg);
    if (!lg.send_timer || !lg.pump || !lg.drain_timer || !lg.interval_timer || !lg.sigint ||
        !lg.sigterm || event_add(lg.sigint, NULL) < 0 || event_add(lg.sigterm, NULL) < 0) {
        fprintf(stderr, "loadgen: cannot set up the event loop\n");
        goto out;
    }
    for (int i = 0; i < lg.conns; i++) {
        struct lg_conn *c = conn_new(&lg);
        if (c == NULL) {
            fprintf(stderr, "loadgen: cannot create connection %d\n", i);
            goto out;
        }
        c->next_free = lg.free_list;
        lg.free_list = c;
    }
    lg.start_ns = now_ns() + 10000000; /* 10 ms from now */
    t_end = due_of(&lg, lg.total - 1);
    tv = tv_of_ns(t_end - now_ns() + (int64_t)(lg.drain_s * 1e9));
    evtimer_add(lg.drain_timer, &tv);
    if (lg.interval_s > 0) {
        tv = tv_of_ns((int64_t)(lg.interval_s * 1e9));
        event_add(lg.interval_timer, &tv);
    }
    tv = tv_of_ns(lg.start_ns - now_ns());
    evtimer_add(lg.send_timer, &tv);
    if (event_base_dispatch(lg.base) < 0) {
        fprintf(stderr, "loadgen: the event loop failed\n");
        goto out;
    }
    report(&lg, (double)(now_ns() - lg.start_ns) / 1e9);
    rc = 0;
out:
    cleanup(&lg);
    return rc;
}
