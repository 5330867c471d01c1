/*
 * cmd/sluice.c — the sluice binary: one role (or all three) on one libevent loop.
 *
 *   sluice serve|api|worker|scheduler [--config FILE]
 *   sluice version
 *   sluice submit|get|wait|cancel|tail|batch|top|usage ...   (the CLI: cmd/cli.c)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "api/api.h"
#include "cmd/cli.h"
#include "core/config.h"
#include "core/log.h"
#include "core/scripts.h"
#include "core/store.h"
#include "core/util.h"
#include "scheduler/scheduler.h"
#include "worker/worker.h"

#define ROLE_API 1
#define ROLE_WORKER 2
#define ROLE_SCHED 4
#define STOP_DRAIN_MS 5000

static const struct {
    const char *name;
    int roles;
    const char *help;
} commands[] = {
    {"serve", ROLE_API | ROLE_WORKER | ROLE_SCHED, "api, worker and scheduler in one process"},
    {"api", ROLE_API, "the HTTP front end"},
    {"worker", ROLE_WORKER, "claims tasks and calls providers"},
    {"scheduler", ROLE_SCHED, "promotes retries, recovers expired leases, sweeps"},
};

/* All of the process's state. */
struct app {
    int roles;
    struct event_base *base;
    struct config *cfg;
    struct store *store;
    struct store *wake;
    struct api *api;
    struct api_metrics_listener *metrics;
    struct worker *worker;
    struct sched *sched;
    struct event *sigterm;
    struct event *sigint;
    struct event *drain;
    int signals;
    int64_t drain_deadline;
};

static void usage(FILE *out)
{
    fprintf(out, "usage: sluice COMMAND [--config FILE]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].help);
    }
    fprintf(out, "  %-10s %s\n", "version", "print the version");
    fprintf(out, "\n--config FILE  the JSON configuration (default: $SLUICE_CONFIG, else "
                 "./sluice.json)\n");
    cli_usage(out);
}

/* Waits for the api's pending answers (bounded), then ends the loop. */
static void on_drain(evutil_socket_t fd, short what, void *arg)
{
    struct app *app = arg;
    (void)fd;
    (void)what;
    if ((app->api && api_in_flight(app->api) > 0) && util_mono_ms() < app->drain_deadline) {
        return;
    }
    event_base_loopexit(app->base, NULL);
}

static void on_worker_done(void *arg)
{
    struct app *app = arg;
    struct timeval tv = {0, 50 * 1000};

    app->drain_deadline = util_mono_ms() + STOP_DRAIN_MS;
    app->drain = event_new(app->base, -1, EV_PERSIST, on_drain, app);
    event_add(app->drain, &tv);
}

/*
 * First SIGTERM/SIGINT: stop accepting, stop claiming, let calls finish for the grace period and
 * return the rest to the queue. A second one exits at once (leases cover what was held).
 */
static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    struct app *app = arg;
    (void)what;

    if (++app->signals > 1) {
        log_warn("second signal: exiting now", "signal=%d", (int)sig);
        event_base_loopbreak(app->base);
        return;
    }
    log_info("shutting down", "signal=%d", (int)sig);
    api_stop(app->api);
    sched_free(app->sched);
    app->sched = NULL;
    if (app->worker) {
        worker_stop(app->worker, on_worker_done, app);
    } else {
        on_worker_done(app);
    }
}

static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static int app_start(struct app *app, const char *role)
{
    struct core_err err;
    struct store_opts so = {app->cfg->redis_host,       app->cfg->redis_port,
                            app->cfg->redis_db,         app->cfg->redis_password,
                            app->cfg->redis_timeout_ms, "main",
                            app->cfg->redis_key_tag};

    core_err_clear(&err);
    app->store = store_new(app->base, &so);
    if (app->store == NULL) {
        log_error("cannot create the store", NULL);
        return -1;
    }
    if (app->roles & ROLE_API) {
        app->api = api_new(app->base, app->cfg, app->store, &err);
        if (app->api == NULL) {
            log_error("cannot start the api", "error=\"%s\"", err.message);
            return -1;
        }
        if (app->cfg->metrics_host != NULL &&
            (app->metrics = api_metrics_listener_new(app->api, &err)) == NULL) {
            log_error("cannot start the metrics listener", "error=\"%s\"", err.message);
            return -1;
        }
    }
    if (app->roles & ROLE_WORKER) {
        so.name = "wake";
        app->wake = store_new(app->base, &so);
        app->worker =
            app->wake ? worker_new(app->base, app->cfg, app->store, app->wake, &err) : NULL;
        if (app->worker == NULL) {
            log_error("cannot start the worker", "error=\"%s\"", err.message);
            return -1;
        }
    }
    if (app->roles & ROLE_SCHED) {
        app->sched = sched_new(app->base, app->cfg, app->store, &err);
        if (app->sched == NULL) {
            log_error("cannot start the scheduler", "error=\"%s\"", err.message);
            return -1;
        }
    }
    log_info("ready", "command=%s version=%s", role, SLUICE_VERSION_STRING);
    return 0;
}

/*
 * Frees in dependency order: the stores first, so their pending callbacks run (with an error)
 * while the api and worker they call into are still alive.
 */
static void app_cleanup(struct app *app)
{
    store_free(app->store);
    store_free(app->wake);
    api_metrics_listener_free(app->metrics);
    api_free(app->api);
    worker_free(app->worker);
    sched_free(app->sched);
    if (app->sigterm) {
        event_free(app->sigterm);
    }
    if (app->sigint) {
        event_free(app->sigint);
    }
    if (app->drain) {
        event_free(app->drain);
    }
    if (app->base) {
        event_base_free(app->base);
    }
    config_free(app->cfg);
}

int main(int argc, char **argv)
{
    struct app app = {0};
    const char *role = NULL, *config_path = getenv("SLUICE_CONFIG");
    struct core_err err;
    int rc = 1;

    if (argc > 1 && cli_is_command(argv[1])) {
        return cli_main(argc - 1, argv + 1);
    }
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config_path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0 ||
                   strcmp(argv[i], "help") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "version") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("sluice %s\n", SLUICE_VERSION_STRING);
            return 0;
        } else if (role == NULL && argv[i][0] != '-') {
            role = argv[i];
        } else {
            fprintf(stderr, "sluice: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    for (size_t i = 0; role && i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(role, commands[i].name) == 0) {
            app.roles = commands[i].roles;
        }
    }
    if (app.roles == 0) {
        usage(stderr);
        return 2;
    }
    log_setup(role, LOG_INFO);
    /* before the config: limits.max_connections is derived from the descriptor limit */
    raise_fd_limit();
    if (config_load(config_path ? config_path : "sluice.json", &app.cfg, &err) < 0) {
        fprintf(stderr, "sluice: %s\n", err.message);
        return 2;
    }
    log_setup(role, (enum log_level)log_level_parse(app.cfg->log_level));
    log_set_format(app.cfg->log_format);
    signal(SIGPIPE, SIG_IGN);
    /* a file-size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, reported as a storage
     * error, instead of killing the process */
    signal(SIGXFSZ, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* epoll's changelist: the interest changes of a loop turn (evhttp and curl switch read and
     * write interest on and off per request) are merged and applied once, before the next wait,
     * instead of one epoll_ctl each: +3-13 % accepted tasks/s and ~+2 % sync rate here. libevent's
     * caveat is fds cloned with dup(), which sluice never watches. */
    {
        struct event_config *ec = event_config_new();
        if (ec != NULL) {
            event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
            app.base = event_base_new_with_config(ec);
            event_config_free(ec);
        }
    }
    if (app.base == NULL) {
        goto out;
    }
    app.sigterm = evsignal_new(app.base, SIGTERM, on_signal, &app);
    app.sigint = evsignal_new(app.base, SIGINT, on_signal, &app);
    event_add(app.sigterm, NULL);
    event_add(app.sigint, NULL);
    if (app_start(&app, role) < 0) {
        goto out;
    }
    event_base_dispatch(app.base);
    rc = 0;
    log_info("stopped", NULL);
out:
    app_cleanup(&app);
    curl_global_cleanup();
    return rc;
}
