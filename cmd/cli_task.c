/*
 * cmd/cli_task.c — the task commands: submit, get, wait, cancel, tail (see cli.h).
 */
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "core/task.h"
#include "core/util.h"

#define TASK_POLL_MS 500
#define SPIN_MS 100
#define TAIL_WEBHOOK_GRACE_MS 10000
#define TAIL_LIMIT_MAX 100
#define PATH_MAX_LEN 512

static const char *const spinner[] = {"|", "/", "-", "\\"};

/* The exit code of a task status: -1 while it is not terminal. */
static int status_exit(const char *status)
{
    static const struct {
        const char *status;
        int code;
    } table[] = {
        {"completed", CLI_OK},
        {"failed", CLI_FAILED},
        {"cancelled", CLI_CANCELLED},
        {"expired", CLI_CANCELLED},
    };
    for (size_t i = 0; status && i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcmp(status, table[i].status) == 0) {
            return table[i].code;
        }
    }
    return -1;
}

/* The path of task id (plus suffix); an id that is not a task id is a usage error. */
static int task_path(const char *id, const char *suffix, char *buf, size_t size)
{
    if (id == NULL || !util_id_valid(TASK_ID_PREFIX, id)) {
        fprintf(stderr, "sluice: bad id '%s'\n", id ? id : "");
        return CLI_USAGE;
    }
    snprintf(buf, size, "/v1/tasks/%s%s", id, suffix);
    return CLI_OK;
}

/* GET the task into *task (caller frees). */
static int fetch_task(struct cli *c, const char *id, cJSON **task)
{
    char path[PATH_MAX_LEN];
    int rc = task_path(id, "", path, sizeof(path));

    *task = NULL;
    return rc != CLI_OK ? rc : cli_call_json(c, "GET", path, NULL, task);
}

/* "in_progress 40% attempt 1/3" for the spinner and the plain lines. */
static void describe(const cJSON *task, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s", cli_str(task, "status", "?"));
    double progress = cli_num(task, "progress", -1), qpos = cli_num(task, "queue_position", -1);

    if (progress >= 0 && n >= 0 && (size_t)n < size) {
        n += snprintf(buf + n, size - n, " %.0f%%", progress);
    }
    if (qpos >= 0 && n >= 0 && (size_t)n < size) {
        n += snprintf(buf + n, size - n, " queue position %.0f", qpos);
    }
    if (cli_num(task, "attempts", 0) > 0 && n >= 0 && (size_t)n < size) {
        snprintf(buf + n, size - n, " attempt %.0f/%.0f", cli_num(task, "attempts", 0),
                 cli_num(task, "max_attempts", 0));
    }
}

/* The final line of a wait: the status and, for a failure, the error's message. */
static void print_final(const struct cli *c, const char *id, const cJSON *task, double secs)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(task, "error");
    const char *status = cli_str(task, "status", "?");
    bool ok = strcmp(status, "completed") == 0;

    printf("%s %s%s%s (%.1fs)", id, cli_sgr(c, ok ? "\033[32m" : "\033[31m"), status,
           cli_sgr(c, "\033[0m"), secs);
    if (cli_str(err, "message", NULL)) {
        printf(": %s", cli_str(err, "message", ""));
    }
    printf("\n");
}

int cli_task_wait(struct cli *c, const char *id, double timeout_s)
{
    int64_t start = util_mono_ms(), next_poll = start;
    char last[256] = "", now[256];
    cJSON *task = NULL;
    int rc = CLI_TIMEOUT;
    unsigned frame = 0;

    cli_catch_signals();
    for (;;) {
        int64_t t = util_mono_ms();
        if (timeout_s > 0 && t - start >= (int64_t)(timeout_s * 1000)) {
            break;
        }
        if (t >= next_poll) {
            cJSON_Delete(task);
            if ((rc = fetch_task(c, id, &task)) != CLI_OK) {
                goto out;
            }
            next_poll = t + TASK_POLL_MS;
            describe(task, now, sizeof(now));
            if (!c->tty && !c->json && strcmp(now, last) != 0) {
                char clock[16];
                printf("%s %s %s\n", cli_clock(util_now_ms() / 1000.0, clock, sizeof(clock)), id,
                       now);
                fflush(stdout);
            }
            snprintf(last, sizeof(last), "%s", now);
            if ((rc = status_exit(cli_str(task, "status", NULL))) >= 0) {
                break;
            }
            rc = CLI_TIMEOUT;
        }
        if (c->tty && !c->json) {
            printf("\r\033[K%s %s %s  %.1fs", spinner[frame++ % 4], id, last,
                   (util_mono_ms() - start) / 1000.0);
            fflush(stdout);
        }
        if (cli_sleep_ms(c->tty ? SPIN_MS : TASK_POLL_MS)) {
            rc = CLI_INTERRUPTED;
            break;
        }
    }
    if (c->tty && !c->json) {
        printf("\r\033[K");
    }
    if (rc == CLI_TIMEOUT) {
        fprintf(stderr, "sluice: %s still %s after %.0f s\n", id, last, timeout_s);
    } else if (rc == CLI_INTERRUPTED) {
        fprintf(stderr, "sluice: stopped waiting; the task goes on: sluice wait %s\n", id);
    } else if (c->json) {
        cli_print_json(c, task);
    } else {
        print_final(c, id, task, (util_mono_ms() - start) / 1000.0);
    }
out:
    fflush(stdout);
    cJSON_Delete(task);
    return rc;
}

/* Sets the text "k=v" as metadata member k. Returns 0, or CLI_USAGE without a '='. */
static int add_metadata(cJSON *meta, const char *kv)
{
    const char *eq = strchr(kv, '=');
    char key[128];

    if (eq == NULL || eq == kv || (size_t)(eq - kv) >= sizeof(key)) {
        fprintf(stderr, "sluice submit: --metadata wants key=value, not '%s'\n", kv);
        return CLI_USAGE;
    }
    snprintf(key, sizeof(key), "%.*s", (int)(eq - kv), kv);
    cJSON_DeleteItemFromObjectCaseSensitive(meta, key);
    cJSON_AddStringToObject(meta, key, eq + 1);
    return CLI_OK;
}

/* Reads a JSON object from path ("-": stdin) into *out (caller frees). */
static int read_json_object(const char *path, cJSON **out)
{
    char *data = NULL;
    size_t len = 0;
    int rc = cli_read_file(path, &data, &len);

    *out = NULL;
    if (rc == CLI_OK && (*out = cJSON_ParseWithLength(data, len)) == NULL) {
        fprintf(stderr, "sluice: %s is not valid JSON\n", path);
        rc = CLI_USAGE;
    } else if (rc == CLI_OK && !cJSON_IsObject(*out)) {
        fprintf(stderr, "sluice: %s is not a JSON object\n", path);
        rc = CLI_USAGE;
    }
    free(data);
    return rc;
}

/* The task's input from --prompt: the OpenAI request body of kind with one prompt. */
static cJSON *input_from_prompt(const char *kind, const char *model, const char *prompt)
{
    cJSON *in = cJSON_CreateObject();

    cJSON_AddStringToObject(in, "model", model);
    if (strcmp(kind, "chat") == 0) {
        cJSON *msg = cJSON_CreateObject();
        cJSON_AddStringToObject(msg, "role", "user");
        cJSON_AddStringToObject(msg, "content", prompt);
        cJSON_AddItemToArray(cJSON_AddArrayToObject(in, "messages"), msg);
    } else if (strcmp(kind, "embedding") == 0) {
        cJSON_AddStringToObject(in, "input", prompt);
    } else {
        cJSON_AddStringToObject(in, "prompt", prompt);
    }
    return in;
}

struct submit_opts {
    const char *kind, *model, *prompt, *input, *file, *priority, *webhook, *timeout;
    struct cli_list metadata;
    bool wait;
};

/* The POST /v1/tasks body from the flags, into *body (caller frees). */
static int build_task(const struct submit_opts *o, cJSON **body)
{
    cJSON *input = NULL, *meta;
    int rc = CLI_OK;

    if (o->file) {
        rc = read_json_object(o->file, body);
    } else if (o->input || o->prompt) {
        if (o->input && (rc = read_json_object(o->input, &input)) != CLI_OK) {
            return rc;
        }
        if (input == NULL && o->model == NULL) {
            fprintf(stderr, "sluice submit: --prompt needs --model ALIAS\n");
            return CLI_USAGE;
        }
        if (input == NULL) {
            input = input_from_prompt(o->kind, o->model, o->prompt);
        } else if (o->model) {
            cJSON_DeleteItemFromObjectCaseSensitive(input, "model");
            cJSON_AddStringToObject(input, "model", o->model);
        }
        *body = cJSON_CreateObject();
        cJSON_AddStringToObject(*body, "kind", o->kind);
        cJSON_AddItemToObject(*body, "input", input);
    } else {
        fprintf(stderr, "sluice submit: give --prompt, --input or --file (see sluice help)\n");
        return CLI_USAGE;
    }
    if (rc != CLI_OK) {
        return rc;
    }
    if (o->priority) {
        cJSON_DeleteItemFromObjectCaseSensitive(*body, "priority");
        cJSON_AddStringToObject(*body, "priority", o->priority);
    }
    if (o->webhook) {
        cJSON_DeleteItemFromObjectCaseSensitive(*body, "webhook");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(*body, "webhook"), "url", o->webhook);
    }
    meta = cJSON_GetObjectItemCaseSensitive(*body, "metadata");
    if (o->metadata.n > 0 && !cJSON_IsObject(meta)) {
        cJSON_DeleteItemFromObjectCaseSensitive(*body, "metadata");
        meta = cJSON_AddObjectToObject(*body, "metadata");
    }
    for (size_t i = 0; i < o->metadata.n && rc == CLI_OK; i++) {
        rc = add_metadata(meta, o->metadata.v[i]);
    }
    return rc;
}

/* Parses a --timeout value: seconds > 0. */
static int parse_seconds(const char *s, double *out)
{
    char *end;

    *out = s ? strtod(s, &end) : 0;
    if (s && (end == s || *end != '\0' || *out <= 0 || *out > 1e7)) {
        fprintf(stderr, "sluice: bad number of seconds '%s'\n", s);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cli_cmd_submit(struct cli *c, int argc, char **argv)
{
    struct submit_opts o = {.kind = "chat"};
    const struct cli_opt opts[] = {
        {"kind", CLI_OPT_STR, &o.kind},       {"model", CLI_OPT_STR, &o.model},
        {"prompt", CLI_OPT_STR, &o.prompt},   {"input", CLI_OPT_STR, &o.input},
        {"file", CLI_OPT_STR, &o.file},       {"priority", CLI_OPT_STR, &o.priority},
        {"webhook", CLI_OPT_STR, &o.webhook}, {"metadata", CLI_OPT_LIST, &o.metadata},
        {"wait", CLI_OPT_BOOL, &o.wait},      {"timeout", CLI_OPT_STR, &o.timeout},
    };
    const char *pos[1];
    size_t npos;
    cJSON *body = NULL, *task = NULL;
    double timeout_s = 0;
    int rc = cli_parse(c, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 0, &npos);

    if (rc == CLI_OK) {
        rc = parse_seconds(o.timeout, &timeout_s);
    }
    if (rc == CLI_OK && (o.file != NULL) + (o.input != NULL) + (o.prompt != NULL) > 1) {
        fprintf(stderr, "sluice submit: --file, --input and --prompt exclude each other\n");
        rc = CLI_USAGE;
    }
    if (rc != CLI_OK || (rc = build_task(&o, &body)) != CLI_OK) {
        goto out;
    }
    if ((rc = cli_call_json(c, "POST", "/v1/tasks", body, &task)) != CLI_OK) {
        goto out;
    }
    if (!cJSON_IsString(cJSON_GetObjectItemCaseSensitive(task, "id"))) {
        fprintf(stderr, "sluice submit: the answer has no task id\n");
        rc = CLI_API;
        goto out;
    }
    if (!o.wait || !c->json) {
        if (c->json) {
            cli_print_json(c, task);
        } else {
            printf("%s\n", cli_str(task, "id", ""));
        }
        fflush(stdout);
    }
    if (o.wait) {
        rc = cli_task_wait(c, cli_str(task, "id", ""), timeout_s);
    }
out:
    cJSON_Delete(body);
    cJSON_Delete(task);
    return rc;
}

/* Follows a dotted path (object members; numbers index arrays) from v; NULL when absent. */
static const cJSON *field_at(const cJSON *v, const char *path)
{
    char part[256];

    while (v && *path) {
        size_t n = strcspn(path, ".");
        char *end;
        snprintf(part, sizeof(part), "%.*s", (int)(n < sizeof(part) ? n : sizeof(part) - 1), path);
        long i = strtol(part, &end, 10);
        if (cJSON_IsArray(v) && *end == '\0' && end != part) {
            v = cJSON_GetArrayItem(v, (int)i);
        } else {
            v = cJSON_GetObjectItemCaseSensitive(v, part);
        }
        path += n + (path[n] == '.');
    }
    return v;
}

int cli_cmd_get(struct cli *c, int argc, char **argv)
{
    const char *field = NULL, *pos[1];
    const struct cli_opt opts[] = {{"field", CLI_OPT_STR, &field}};
    cJSON *task = NULL;
    int rc = cli_parse_one(c, argc, argv, opts, 1, pos);

    if (rc != CLI_OK || (rc = fetch_task(c, pos[0], &task)) != CLI_OK) {
        goto out;
    }
    if (field == NULL) {
        cli_print_json(c, task);
    } else {
        const cJSON *v = field_at(task, field);
        if (v == NULL) {
            fprintf(stderr, "sluice get: the task has no field %s\n", field);
            rc = CLI_FAILED;
        } else if (cJSON_IsString(v)) {
            printf("%s\n", v->valuestring);
        } else {
            char *text = cJSON_PrintUnformatted(v);
            printf("%s\n", text ? text : "");
            cJSON_free(text);
        }
    }
out:
    cJSON_Delete(task);
    return rc;
}

int cli_cmd_wait(struct cli *c, int argc, char **argv)
{
    const char *timeout = NULL, *pos[1];
    const struct cli_opt opts[] = {{"timeout", CLI_OPT_STR, &timeout}};
    double timeout_s = 0;
    int rc = cli_parse_one(c, argc, argv, opts, 1, pos);

    if (rc == CLI_OK) {
        rc = parse_seconds(timeout, &timeout_s);
    }
    return rc == CLI_OK ? cli_task_wait(c, pos[0], timeout_s) : rc;
}

int cli_cmd_cancel(struct cli *c, int argc, char **argv)
{
    const char *pos[1];
    char path[PATH_MAX_LEN];
    cJSON *task = NULL;
    int rc = cli_parse_one(c, argc, argv, NULL, 0, pos);

    if (rc == CLI_OK && (rc = task_path(pos[0], "/cancel", path, sizeof(path))) == CLI_OK &&
        (rc = cli_call_json(c, "POST", path, NULL, &task)) == CLI_OK) {
        if (c->json) {
            cli_print_json(c, task);
        } else {
            printf("%s %s\n", cli_str(task, "id", pos[0]), cli_str(task, "status", "?"));
        }
    }
    cJSON_Delete(task);
    return rc;
}

/* What `tail ID` has printed so far. */
struct tail_seen {
    char status[32];
    double progress;
    int attempts; /* highest attempt number printed */
    int hooks;    /* webhook log entries printed */
};

/* Prints one attempt_log entry. */
static void print_attempt(const cJSON *a)
{
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(a, "error");
    double status = cli_num(a, "status", 0), lat = cli_num(a, "latency_ms", -1);
    char clock[16];

    printf("%s attempt %.0f  %s/%s  ", cli_clock(cli_num(a, "at", 0), clock, sizeof(clock)),
           cli_num(a, "attempt", 0), cli_str(a, "provider", "?"), cli_str(a, "model", "?"));
    status > 0 ? printf("HTTP %.0f", status) : printf("no answer");
    if (lat >= 0) {
        printf("  %.0f ms", lat);
    }
    printf("  %s", cli_str(a, "outcome", "?"));
    if (cli_str(err, "message", NULL)) {
        printf("  %s: %s", cli_str(err, "code", ""), cli_str(err, "message", ""));
    }
    printf("\n");
}

/* Prints what changed in task since seen (and records it). Returns true when a webhook delivery
 * of the task's terminal event has ended (delivered, failed or stopped). */
static bool print_task_events(const cJSON *task, struct tail_seen *seen)
{
    const char *status = cli_str(task, "status", "?");
    double progress = cli_num(task, "progress", -1);
    const cJSON *log = cJSON_GetObjectItemCaseSensitive(task, "attempt_log"), *a;
    const cJSON *hooks = cJSON_GetObjectItemCaseSensitive(task, "webhook_attempts");
    char clock[16], final_event[64];
    bool hook_done = false;
    int i = 0;

    cli_clock(util_now_ms() / 1000.0, clock, sizeof(clock));
    cJSON_ArrayForEach(a, log)
    {
        if (cli_num(a, "attempt", 0) > seen->attempts) {
            print_attempt(a);
            seen->attempts = (int)cli_num(a, "attempt", 0);
        }
    }
    if (progress >= 0 && progress != seen->progress) {
        printf("%s progress %.0f%%\n", clock, progress);
        seen->progress = progress;
    }
    if (strcmp(status, seen->status) != 0) {
        printf("%s status %s\n", clock, status);
        snprintf(seen->status, sizeof(seen->status), "%s", status);
    }
    snprintf(final_event, sizeof(final_event), "task.%s", status);
    cJSON_ArrayForEach(a, hooks)
    {
        if (i++ >= seen->hooks) {
            double st = cli_num(a, "status", 0);
            printf("%s webhook %s attempt %.0f  ", cli_clock(cli_num(a, "at", 0), clock, 16),
                   cli_str(a, "event", "?"), cli_num(a, "attempt", 0));
            st > 0 ? printf("HTTP %.0f", st) : printf("no answer");
            printf("  %.0f ms  %s\n", cli_num(a, "latency_ms", 0), cli_str(a, "outcome", "?"));
        }
        if (strcmp(cli_str(a, "event", ""), final_event) == 0 &&
            strcmp(cli_str(a, "outcome", "retry"), "retry") != 0) {
            hook_done = true;
        }
    }
    seen->hooks = i;
    fflush(stdout);
    return hook_done;
}

/* `tail ID`: polls the task and prints its events until it ends (and, when it has a webhook,
 * until the delivery of its final event ended, for at most TAIL_WEBHOOK_GRACE_MS more). */
static int tail_task(struct cli *c, const char *id)
{
    struct tail_seen seen = {.progress = -1};
    int64_t ended = 0;
    cJSON *task = NULL;
    int rc;

    cli_catch_signals();
    for (;;) {
        if ((rc = fetch_task(c, id, &task)) != CLI_OK) {
            break;
        }
        bool hook_done = print_task_events(task, &seen);
        bool has_hook = cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(task, "webhook"));
        rc = status_exit(seen.status);
        if (rc >= 0 && ended == 0) {
            ended = util_mono_ms();
        }
        if (rc >= 0 &&
            (!has_hook || hook_done || util_mono_ms() - ended >= TAIL_WEBHOOK_GRACE_MS)) {
            break;
        }
        cJSON_Delete(task);
        task = NULL;
        if (cli_sleep_ms(TASK_POLL_MS)) {
            rc = CLI_INTERRUPTED;
            break;
        }
    }
    cJSON_Delete(task);
    return rc;
}

/* Prints one line of the tenant's task list; old_status non-NULL for a change. */
static void print_task_line(const cJSON *t, const char *old_status)
{
    char clock[16];

    printf("%s %s %-9s %-12s %s%s%s\n", cli_clock(util_now_ms() / 1000.0, clock, sizeof(clock)),
           cli_str(t, "id", "?"), cli_str(t, "kind", "?"), cli_str(t, "model", "?"),
           old_status ? old_status : "", old_status ? " -> " : "new ", cli_str(t, "status", "?"));
}

/* `tail` without an id: polls the newest tasks, prints new ones and status changes. */
static int tail_tenant(struct cli *c, const char *interval, const char *limit, bool once)
{
    cJSON *seen = cJSON_CreateObject(), *page = NULL;
    double every_s = 1;
    long n = limit ? strtol(limit, NULL, 10) : 50;
    char path[PATH_MAX_LEN];
    int rc = parse_seconds(interval, &every_s);

    if (rc == CLI_OK && (n < 1 || n > TAIL_LIMIT_MAX)) {
        fprintf(stderr, "sluice tail: --limit is 1..%d\n", TAIL_LIMIT_MAX);
        rc = CLI_USAGE;
    }
    snprintf(path, sizeof(path), "/v1/tasks?limit=%ld", n);
    cli_catch_signals();
    while (rc == CLI_OK) {
        cJSON *now = cJSON_CreateObject(), *t;
        if ((rc = cli_call_json(c, "GET", path, NULL, &page)) != CLI_OK) {
            cJSON_Delete(now);
            break;
        }
        const cJSON *data = cJSON_GetObjectItemCaseSensitive(page, "data");
        /* newest first: walk backwards so lines come oldest first */
        for (int i = cJSON_GetArraySize(data) - 1; i >= 0; i--) {
            t = cJSON_GetArrayItem(data, i);
            const char *id = cli_str(t, "id", NULL), *st = cli_str(t, "status", "?");
            if (id == NULL) {
                continue;
            }
            const char *old = cli_str(seen, id, NULL);
            if (old == NULL) {
                print_task_line(t, NULL);
            } else if (strcmp(old, st) != 0) {
                print_task_line(t, old);
            }
            cJSON_AddStringToObject(now, id, st);
        }
        /* only the current page is remembered: the map stays bounded by --limit */
        cJSON_Delete(seen);
        seen = now;
        cJSON_Delete(page);
        page = NULL;
        fflush(stdout);
        if (once || cli_sleep_ms((long)(every_s * 1000))) {
            break;
        }
    }
    cJSON_Delete(seen);
    cJSON_Delete(page);
    return rc;
}

int cli_cmd_tail(struct cli *c, int argc, char **argv)
{
    const char *interval = NULL, *limit = NULL, *pos[1];
    bool once = false;
    const struct cli_opt opts[] = {
        {"interval", CLI_OPT_STR, &interval},
        {"limit", CLI_OPT_STR, &limit},
        {"once", CLI_OPT_BOOL, &once},
    };
    size_t npos;
    int rc = cli_parse(c, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 1, &npos);

    if (rc != CLI_OK) {
        return rc;
    }
    return npos == 1 ? tail_task(c, pos[0]) : tail_tenant(c, interval, limit, once);
}
