/*
 * cmd/cli_top.c — `sluice top`: GET /v1/dashboard/state drawn as a terminal view, refreshed
 * every second (contract: the dashboard's JSON, "dashboard.state"). On a terminal it takes the
 * alternate screen, hides the cursor and reads keys unbuffered; q, Ctrl-C, SIGTERM or any exit
 * path puts the terminal back as it was. `--once` (or piped output) prints plain frames.
 */
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cmd/cli.h"
#include "core/util.h"

#define TOP_FRAME_MAX 65536
#define TOP_ROWS_MAX 40 /* rows per table: a frame stays readable with thousands of queues */

/* A frame being drawn: its text (bounded) and the width lines are cut to. */
struct frame {
    char text[TOP_FRAME_MAX];
    size_t len;
    int width;
    bool ansi;  /* a terminal: each line also clears the rest of its row */
    bool color; /* colours on: each line ends with a reset, in case the cut fell inside one */
};

/* Appends one line, cut to the frame's width; on a terminal it also clears the line's rest. */
__attribute__((format(printf, 2, 3))) static void put(struct frame *f, const char *fmt, ...)
{
    char line[1024];
    va_list ap;

    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    if (n < 0) {
        return;
    }
    if (n > f->width) {
        line[f->width] = '\0';
    }
    n = snprintf(f->text + f->len, sizeof(f->text) - f->len, "%s%s%s\n", line,
                 f->color ? "\033[0m" : "", f->ansi ? "\033[K" : "");
    if (n > 0 && f->len + (size_t)n < sizeof(f->text)) {
        f->len += (size_t)n;
    }
}

/* A number member as text with fmt, or "-" when null or missing (never invented). */
static const char *num(const cJSON *o, const char *name, const char *fmt, char *buf, size_t size)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(v)) {
        return "-";
    }
    snprintf(buf, size, fmt, v->valuedouble);
    return buf;
}

static void draw_totals(struct frame *f, const cJSON *st)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(st, "totals");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(st, "rates");
    char a[7][32];

    put(f,
        "tasks   queued %s  in progress %s  delayed %s  parked %s    accepted %s  completed %s"
        "  failed %s",
        num(t, "queued", "%.0f", a[0], 32), num(t, "in_progress", "%.0f", a[1], 32),
        num(t, "delayed", "%.0f", a[2], 32), num(t, "parked", "%.0f", a[3], 32),
        num(t, "accepted_total", "%.0f", a[4], 32), num(t, "completed_total", "%.0f", a[5], 32),
        num(t, "failed_total", "%.0f", a[6], 32));
    put(f, "rates   accepted %s/s  completed %s/s", num(r, "accepted_per_s", "%.2f", a[0], 32),
        num(r, "completed_per_s", "%.2f", a[1], 32));
}

static void draw_queues(struct frame *f, const cJSON *st)
{
    const cJSON *q, *list = cJSON_GetObjectItemCaseSensitive(st, "queues");
    double now = cli_num(st, "now", 0);
    char depth[32], oldest[32];
    int rows = 0;

    put(f, "%s", "");
    put(f, "QUEUES (%d)", cJSON_GetArraySize(list));
    put(f, "%-24s %-12s %8s %10s", "MODEL", "PRIORITY", "DEPTH", "OLDEST");
    cJSON_ArrayForEach(q, list)
    {
        double at = cli_num(q, "oldest_queued_at", 0);
        if (rows++ >= TOP_ROWS_MAX) {
            break;
        }
        if (at > 0 && now > 0) {
            snprintf(oldest, sizeof(oldest), "%.0fs", now > at ? now - at : 0);
        } else {
            snprintf(oldest, sizeof(oldest), "-");
        }
        put(f, "%-24s %-12s %8s %10s", cli_str(q, "model", "?"), cli_str(q, "priority", "?"),
            num(q, "depth", "%.0f", depth, sizeof(depth)), oldest);
    }
}

/*
 * A deployment's state as one short word (ok, paused, open, half_open) in state, and what an
 * operator wants next to it (the pause's reason and end, the breaker's end) in note.
 */
static void deployment_state(const cJSON *d, char *state, size_t ssize, char *note, size_t nsize)
{
    const char *breaker = cli_str(d, "breaker", "closed");
    char until[16];

    note[0] = '\0';
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "paused"))) {
        snprintf(state, ssize, "paused");
        snprintf(note, nsize, "%s until %s", cli_str(d, "pause_reason", "-"),
                 cli_clock(cli_num(d, "paused_until", 0), until, sizeof(until)));
    } else if (strcmp(breaker, "closed") != 0) {
        snprintf(state, ssize, "%s", breaker);
        snprintf(note, nsize, "breaker %s until %s", breaker,
                 cli_clock(cli_num(d, "breaker_until", 0), until, sizeof(until)));
    } else {
        snprintf(state, ssize, "ok");
    }
}

static void draw_deployments(struct frame *f, const struct cli *c, const cJSON *st)
{
    const cJSON *d, *list = cJSON_GetObjectItemCaseSensitive(st, "deployments");
    char a[10][32], state[32], note[160], flight[64], reqs[72], toks[72];
    int rows = 0;

    put(f, "%s", "");
    put(f, "DEPLOYMENTS (%d)", cJSON_GetArraySize(list));
    put(f, "%-18s %2s %-10s %-18s %9s %-9s %8s %6s %8s %13s %17s  %s", "MODEL", "#", "PROVIDER",
        "UPSTREAM", "IN-FLIGHT", "STATE", "EWMA", "429s", "$/HOUR", "REQ AVAIL/RPM",
        "TOK AVAIL/TPM", "NOTE");
    cJSON_ArrayForEach(d, list)
    {
        if (rows++ >= TOP_ROWS_MAX) {
            break;
        }
        deployment_state(d, state, sizeof(state), note, sizeof(note));
        snprintf(flight, sizeof(flight), "%s/%s", num(d, "in_flight", "%.0f", a[0], 32),
                 num(d, "max_concurrency", "%.0f", a[1], 32));
        snprintf(reqs, sizeof(reqs), "%s/%s", num(d, "requests_available", "%.0f", a[2], 32),
                 num(d, "rpm", "%.0f", a[3], 32));
        snprintf(toks, sizeof(toks), "%s/%s", num(d, "tokens_available", "%.0f", a[4], 32),
                 num(d, "tpm", "%.0f", a[5], 32));
        bool bad = f->ansi && strcmp(state, "ok") != 0;
        put(f, "%-18s %2s %-10.10s %-18.18s %9s %s%-9s%s %8s %6s %8s %13s %17s  %s",
            cli_str(d, "model", "?"), num(d, "index", "%.0f", a[6], 32),
            cli_str(d, "provider", "?"), cli_str(d, "upstream_model", "?"), flight,
            bad ? cli_sgr(c, "\033[33m") : "", state, bad ? cli_sgr(c, "\033[0m") : "",
            num(d, "latency_ewma_ms", "%.0fms", a[7], 32),
            num(d, "rate_limited_total", "%.0f", a[8], 32),
            num(d, "cost_last_hour_usd", "%.4f", a[9], 32), reqs, toks, note);
    }
}

/* "hour 0.12/1.00 day ..." of a tenant's budget (or "-"). */
static void budget_text(const cJSON *budget, char *buf, size_t size)
{
    const cJSON *l, *limits = cJSON_GetObjectItemCaseSensitive(budget, "limits");
    size_t n = 0;

    buf[0] = '\0';
    cJSON_ArrayForEach(l, limits)
    {
        int w =
            snprintf(buf + n, size - n, "%s%s %.2f/%.2f", n ? " " : "", cli_str(l, "window", "?"),
                     cli_num(l, "spent_usd", 0), cli_num(l, "max_usd", 0));
        if (w < 0 || (size_t)w >= size - n) {
            break;
        }
        n += (size_t)w;
    }
    if (n == 0) {
        snprintf(buf, size, "-");
    }
}

static void draw_tenants(struct frame *f, const cJSON *st)
{
    const cJSON *t, *list = cJSON_GetObjectItemCaseSensitive(st, "tenants");
    char a[5][32], budget[256];
    int rows = 0;

    put(f, "%s", "");
    put(f, "TENANTS (%d)", cJSON_GetArraySize(list));
    put(f, "%-20s %8s %8s %10s %10s %10s  %s", "TENANT", "QUEUED", "RUNNING", "$HOUR", "$DAY",
        "$MONTH", "BUDGET");
    cJSON_ArrayForEach(t, list)
    {
        const cJSON *spent = cJSON_GetObjectItemCaseSensitive(t, "spent_usd");
        if (rows++ >= TOP_ROWS_MAX) {
            break;
        }
        budget_text(cJSON_GetObjectItemCaseSensitive(t, "budget"), budget, sizeof(budget));
        put(f, "%-20s %8s %8s %10s %10s %10s  %s", cli_str(t, "tenant", "?"),
            num(t, "queued", "%.0f", a[0], 32), num(t, "running", "%.0f", a[1], 32),
            num(spent, "hour", "%.4f", a[2], 32), num(spent, "day", "%.4f", a[3], 32),
            num(spent, "month", "%.4f", a[4], 32), budget);
    }
}

static void draw_batches(struct frame *f, const cJSON *st)
{
    const cJSON *b, *list = cJSON_GetObjectItemCaseSensitive(st, "batches");
    int rows = 0;

    if (cJSON_GetArraySize(list) == 0) {
        return;
    }
    put(f, "%s", "");
    put(f, "BATCHES (%d)", cJSON_GetArraySize(list));
    cJSON_ArrayForEach(b, list)
    {
        if (rows++ >= TOP_ROWS_MAX) {
            break;
        }
        put(f, "%-34s %-12s %-14s %-16s %.0f/%.0f done, %.0f failed", cli_str(b, "id", "?"),
            cli_str(b, "tenant", "?"), cli_str(b, "status", "?"), cli_str(b, "model", "-"),
            cli_num(b, "completed", 0) + cli_num(b, "failed", 0), cli_num(b, "total", 0),
            cli_num(b, "failed", 0));
    }
}

/* Draws a whole frame of state (or of the error that stood in for it) into f. */
static void draw(struct frame *f, const struct cli *c, const cJSON *st, const char *error)
{
    const cJSON *scope = cJSON_GetObjectItemCaseSensitive(st, "scope");
    char clock[16], who[160];

    f->len = 0;
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(scope, "admin"))) {
        snprintf(who, sizeof(who), "admin");
    } else {
        snprintf(who, sizeof(who), "tenant %s", cli_str(scope, "tenant", "?"));
    }
    put(f, "sluice top  %s  %s  %s%s", c->url, st ? who : "",
        cli_clock(st ? cli_num(st, "now", 0) : util_now_ms() / 1000.0, clock, sizeof(clock)),
        f->ansi ? "   (q quits)" : "");
    if (error) {
        put(f, "%s", error);
    }
    if (st == NULL) {
        return;
    }
    draw_totals(f, st);
    draw_queues(f, st);
    draw_deployments(f, c, st);
    draw_tenants(f, st);
    draw_batches(f, st);
}

/* GET the state into *st (caller frees); on failure a one-line reason in error. */
static int fetch_state(struct cli *c, bool quiet, cJSON **st, char *error, size_t size)
{
    struct cli_req req = {.method = "GET", .path = "/v1/dashboard/state", .quiet = quiet};
    struct cli_resp resp;
    int rc = cli_request(c, &req, &resp);

    *st = NULL;
    error[0] = '\0';
    if (rc == CLI_OK && (*st = cJSON_Parse(resp.body ? resp.body : "")) == NULL) {
        rc = CLI_API;
    }
    if (rc == CLI_CONNECT) {
        snprintf(error, size, "cannot reach %s", c->url);
    } else if (rc != CLI_OK) {
        snprintf(error, size, "GET /v1/dashboard/state: HTTP %ld", resp.status);
    }
    cli_resp_cleanup(&resp);
    return rc;
}

/* The terminal as it was before `top` changed it. */
struct term {
    struct termios saved;
    bool raw;
};

static void term_enter(struct term *t)
{
    struct termios raw;

    if (isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &t->saved) == 0) {
        raw = t->saved;
        raw.c_lflag &= ~(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        t->raw = tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
    }
    fputs("\033[?1049h\033[?25l", stdout);
    fflush(stdout);
}

static void term_leave(struct term *t)
{
    fputs("\033[?25h\033[?1049l", stdout);
    fflush(stdout);
    if (t->raw) {
        tcsetattr(STDIN_FILENO, TCSANOW, &t->saved);
    }
}

/* Waits up to ms for a key; true when it was q (or Q) or Ctrl-C arrived. */
static bool wait_quit(long ms, bool keys)
{
    struct pollfd p = {STDIN_FILENO, POLLIN, 0};
    int64_t end = util_mono_ms() + ms;

    while (!cli_interrupted()) {
        int64_t left = end - util_mono_ms();
        if (left <= 0) {
            return false;
        }
        if (!keys) {
            return cli_sleep_ms((long)left);
        }
        char ch;
        if (poll(&p, 1, (int)left) > 0 && read(STDIN_FILENO, &ch, 1) == 1 &&
            (ch == 'q' || ch == 'Q')) {
            return true;
        }
    }
    return true;
}

int cli_cmd_top(struct cli *c, int argc, char **argv)
{
    const char *interval = NULL, *pos[1];
    bool once = false;
    const struct cli_opt opts[] = {{"interval", CLI_OPT_STR, &interval},
                                   {"once", CLI_OPT_BOOL, &once}};
    struct frame *f = calloc(1, sizeof(*f));
    struct term term = {0};
    size_t npos;
    double every_s = interval ? 0 : 1;
    char error[256];
    cJSON *st = NULL;
    int rc = f ? cli_parse(c, argc, argv, opts, 2, pos, 0, &npos) : CLI_FAILED;

    if (rc == CLI_OK && interval && ((every_s = strtod(interval, NULL)) < 0.2 || every_s > 3600)) {
        fprintf(stderr, "sluice top: --interval is 0.2..3600 seconds\n");
        rc = CLI_USAGE;
    }
    if (rc != CLI_OK) {
        goto out;
    }
    f->width = c->tty ? cli_term_width() : 1000;
    if (once || !c->tty || c->json) {
        /* plain frames for scripts: one with --once, else one per interval until Ctrl-C */
        cli_catch_signals();
        for (bool first = true;; first = false) {
            if ((rc = fetch_state(c, false, &st, error, sizeof(error))) != CLI_OK) {
                break;
            }
            if (c->json) {
                cli_print_json(c, st);
            } else {
                printf("%s", first ? "" : "\n");
                draw(f, c, st, NULL);
                fwrite(f->text, 1, f->len, stdout);
            }
            fflush(stdout);
            cJSON_Delete(st);
            st = NULL;
            if (once || cli_sleep_ms((long)(every_s * 1000))) {
                break;
            }
        }
        goto out;
    }
    f->ansi = true;
    f->color = c->color;
    cli_catch_signals();
    term_enter(&term);
    do {
        fetch_state(c, true, &st, error, sizeof(error));
        f->width = cli_term_width();
        draw(f, c, st, error[0] ? error : NULL);
        fputs("\033[H", stdout);
        fwrite(f->text, 1, f->len, stdout);
        fputs("\033[J", stdout);
        fflush(stdout);
        cJSON_Delete(st);
        st = NULL;
    } while (!wait_quit((long)(every_s * 1000), term.raw));
    term_leave(&term);
out:
    cJSON_Delete(st);
    free(f);
    return rc;
}
