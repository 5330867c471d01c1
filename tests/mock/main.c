/*
 * tests/mock/main.c — sluice-mock's process: command line, listener, signals, start and clean
 * stop. See mock.h for how the files fit together and README.md for the endpoints.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netdb.h>

#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/crypto.h>

#include "tests/mock/mock.h"

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
    snprintf(m->origin, sizeof(m->origin), "http://%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "",
             serv);
    printf("sluice-mock listening on %s%s%s:%s\n", v6 ? "[" : "", host, v6 ? "]" : "", serv);
    fflush(stdout);
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: sluice-mock --listen HOST:PORT [options]\n"
                 "  --listen HOST:PORT    address to bind; PORT 0 picks a free port (default "
                 "127.0.0.1:0)\n"
                 "  --api-key K           require K in each dialect's auth header (else 401)\n"
                 "  --latency-ms N        delay every provider answer by N ms\n"
                 "  --error-rate F        answer error-status to a random fraction F in [0,1]\n"
                 "  --error-status S      status of injected errors, 400..599 (default 500)\n"
                 "  --error-message M     message of injected errors\n"
                 "  --fail-first N        answer error-status to the first N provider requests\n"
                 "  --rate-limit RPS      token bucket of RPS requests/s; beyond it answer 429\n"
                 "  --retry-after S       retry-after of 429 answers, seconds (default 1)\n"
                 "  --hang                never answer provider requests\n"
                 "  --malformed           answer 200 with a broken JSON body\n"
                 "  --reset               reset (RST) the connection instead of answering\n"
                 "  --huge-body-bytes N   answer 200 with N bytes of valid JSON\n"
                 "  --no-faults-on-polls  job polls and downloads skip the faults and latency\n"
                 "  --job-ms N            duration of video/Replicate/fal jobs (default 2000)\n"
                 "  --stream-chunk-ms N   pause N ms between the events of a stream\n"
                 "  --record N            keep the last N requests for /_mock/stats (default 50)\n"
                 "  --seed N              seed of --error-rate's generator (default 1)\n"
                 "  --webhook-secret S    sign Replicate webhooks with S (whsec_<base64>)\n"
                 "  --fal-webhook-key K   sign fal webhooks with the ED25519 seed K (hex or "
                 "base64)\n"
                 "  --help                this text\n"
                 "See tests/mock/README.md for the endpoints.\n");
}

/* 'c' options are switches of struct mock_config, set through control.c's table. */
static const struct option long_options[] = {
    {"listen", required_argument, NULL, 'l'},
    {"api-key", required_argument, NULL, 'k'},
    {"record", required_argument, NULL, 'r'},
    {"seed", required_argument, NULL, 's'},
    {"webhook-secret", required_argument, NULL, 'w'},
    {"fal-webhook-key", required_argument, NULL, 'f'},
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
    {"reset", no_argument, NULL, 'c'},
    {"huge-body-bytes", required_argument, NULL, 'c'},
    {"no-faults-on-polls", no_argument, NULL, 'c'},
    {"job-ms", required_argument, NULL, 'c'},
    {"stream-chunk-ms", required_argument, NULL, 'c'},
    {NULL, 0, NULL, 0},
};

/* Parses the command line into m. Returns 0, 1 after --help, or -1 on a bad argument. */
static int parse_args(struct mock *m, int argc, char **argv, const char **listen)
{
    int opt, index = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, &index)) != -1) {
        if (opt == 'h') {
            usage(stdout);
            return 1;
        } else if (opt == 'l') {
            *listen = optarg;
        } else if (opt == 'k') {
            free(m->api_key);
            if ((m->api_key = strdup(optarg)) == NULL) {
                return -1;
            }
        } else if (opt == 'r') {
            char *end;
            errno = 0;
            double v = strtod(optarg, &end);
            if (errno != 0 || end == optarg || *end != '\0' || v < 0 || v > MOCK_RECORD_MAX ||
                v != floor(v)) {
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
        } else if (opt == 'w') {
            free(m->webhook_secret);
            if (strncmp(optarg, "whsec_", 6) != 0 || (m->webhook_secret = strdup(optarg)) == NULL) {
                fprintf(stderr, "sluice-mock: --webhook-secret wants whsec_<base64>\n");
                return -1;
            }
        } else if (opt == 'f') {
            if (fal_webhook_key_parse(optarg, m->fal_webhook_key) < 0) {
                fprintf(stderr, "sluice-mock: --fal-webhook-key wants a 32-byte ED25519 seed "
                                "(64 hex digits or base64)\n");
                return -1;
            }
            m->has_fal_webhook_key = true;
        } else if (opt == 'c') {
            if (config_set_flag(&m->startup, long_options[index].name, optarg) < 0) {
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

/* Frees everything. Held answers and streams go with their connections. */
static void mock_cleanup(struct mock *m)
{
    reply_cleanup(m);
    if (m->http != NULL) {
        evhttp_free(m->http);
    }
    if (m->sig_term != NULL) {
        event_free(m->sig_term);
    }
    if (m->sig_int != NULL) {
        event_free(m->sig_int);
    }
    replicate_hooks_cleanup(m);
    fal_hooks_cleanup(m);
    jobs_cleanup(m);
    if (m->base != NULL) {
        event_base_free(m->base);
    }
    control_ring_clear(&m->ring);
    free(m->ring.slots);
    config_cleanup(&m->config);
    config_cleanup(&m->startup);
    free(m->api_key);
    free(m->webhook_secret);
    OPENSSL_cleanse(m->fal_webhook_key, sizeof(m->fal_webhook_key));
    free(m->filler);
}

int main(int argc, char **argv)
{
    struct mock m = {
        .startup = {.error_status = 500,
                    .retry_after_s = 1,
                    .faults_on_polls = true,
                    .job_ms = MOCK_JOB_MS_DEFAULT},
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
    faults_bucket_refill(&m);
    if (m.ring.cap > 0 && (m.ring.slots = calloc(m.ring.cap, sizeof(*m.ring.slots))) == NULL) {
        goto out;
    }
    if ((m.base = event_base_new()) == NULL || (m.http = evhttp_new(m.base)) == NULL ||
        jobs_init(&m) < 0) {
        goto out;
    }
    evhttp_set_max_body_size(m.http, MOCK_MAX_BODY);
    evhttp_set_max_headers_size(m.http, MOCK_MAX_HEADERS);
    evhttp_set_default_content_type(m.http, "application/json");
    evhttp_set_allowed_methods(m.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_PATCH);
    evhttp_set_gencb(m.http, routes_on_request, &m);
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
