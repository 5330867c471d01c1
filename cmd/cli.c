/*
 * cmd/cli.c — the CLI's dispatch, flags, HTTP helper and output helpers (see cli.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cli.h"

#define CLI_DEFAULT_URL "http://127.0.0.1:8080"
#define CLI_CONNECT_TIMEOUT_S 5L
#define CLI_REQUEST_TIMEOUT_S 30L
/* a download may take long; it only fails when it stalls below 1 byte/s for this long */
#define CLI_STALL_S 30L
#define CLI_URL_MAX 4096

static const struct cli_command commands[] = {
    {"submit", cli_cmd_submit,
     "submit (--model ALIAS [--kind chat] (--prompt TEXT | --input FILE.json|-) | --file "
     "TASK.json)\n"
     "         [--priority P] [--metadata k=v]... [--webhook URL] [--wait [--timeout S]]",
     "submit a task; prints its id (the task with --json); --wait waits as `wait` does"},
    {"get", cli_cmd_get, "get ID [--field result.choices.0.message.content]",
     "print a task (pretty JSON), or one field of it (strings printed raw)"},
    {"wait", cli_cmd_wait, "wait ID [--timeout S]",
     "wait until the task ends (spinner on a terminal, a line per change otherwise);\n"
     "         the exit code tells the final status"},
    {"cancel", cli_cmd_cancel, "cancel ID", "cancel a task; prints its new status"},
    {"tail", cli_cmd_tail, "tail [ID] [--interval S] [--limit N] [--once]",
     "follow one task's events (status, progress, attempts, webhook deliveries) until it ends;\n"
     "         without ID, follow the tenant's tasks: polls GET /v1/tasks?limit=N (default 50) "
     "every\n         --interval seconds (default 1) and prints new tasks and status changes; "
     "--once prints\n         the current list and exits"},
    {"batch", cli_cmd_batch,
     "batch run FILE.jsonl [--model ALIAS] [--endpoint /v1/chat/completions] [--out OUT.jsonl]\n"
     "         [--errors ERR.jsonl]  |  batch run --resume BATCH_ID [--out ...] [--errors ...]\n"
     "         |  batch get ID  |  batch cancel ID",
     "upload a JSONL file, run it as a batch with a progress bar (plain lines when piped),\n"
     "         download the output and error files; Ctrl-C stops watching (the batch goes on) "
     "and\n         prints how to resume"},
    {"top", cli_cmd_top, "top [--interval S] [--once]",
     "a live view of GET /v1/dashboard/state (totals, rates, queues, deployments, tenants);\n"
     "         q or Ctrl-C quits; --once prints one plain frame"},
    {"usage", cli_cmd_usage,
     "usage [--from T] [--to T] [--bucket hour|day] [--group-by model,provider,key] [--tenant T]",
     "GET /v1/usage as a table; T is unix seconds or a time ago (90m, 24h, 7d)"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/*
 * The one mutable global: a signal handler can only talk to the program through a
 * sig_atomic_t, so the Ctrl-C flag cannot live in struct cli.
 */
static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

void cli_catch_signals(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* no SA_RESTART: a sleep or a read in progress returns at once */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

bool cli_interrupted(void)
{
    return interrupted != 0;
}

bool cli_sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    while (!interrupted && nanosleep(&ts, &ts) < 0 && errno == EINTR) {
    }
    return interrupted != 0;
}

bool cli_is_command(const char *argv1)
{
    for (size_t i = 0; argv1 && i < NCOMMANDS; i++) {
        if (strcmp(argv1, commands[i].name) == 0) {
            return true;
        }
    }
    return false;
}

void cli_usage(FILE *out)
{
    fprintf(out, "\nclient commands (talk to a running sluice over HTTP):\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        fprintf(out, "  %s\n         %s\n", commands[i].synopsis, commands[i].help);
    }
    fprintf(out,
            "\n  common flags: --url URL (default $SLUICE_URL, else " CLI_DEFAULT_URL ")\n"
            "                --key KEY (default $SLUICE_API_KEY)   --json (print the API's JSON)\n"
            "  progress bars and spinners only when stdout is a terminal; NO_COLOR turns colour "
            "off\n"
            "\nexit codes:\n"
            "  0 ok / task completed     1 task (or batch) failed     2 usage error (bad flags)\n"
            "  3 task cancelled/expired  4 API error (message on stderr)\n"
            "  5 could not connect       6 timeout waiting            130 interrupted (Ctrl-C)\n");
}

static const struct cli_opt common_opts[] = {
    {"url", CLI_OPT_STR, NULL},
    {"key", CLI_OPT_STR, NULL},
    {"json", CLI_OPT_BOOL, NULL},
};

/* Stores value into opt's out (url/key/json of the common flags go to c). */
static int set_opt(struct cli *c, const struct cli_opt *o, const char *value)
{
    if (o->out == NULL) {
        if (strcmp(o->name, "url") == 0) {
            c->url = value;
        } else if (strcmp(o->name, "key") == 0) {
            c->key = value;
        } else {
            c->json = true;
        }
        return 0;
    }
    if (o->type == CLI_OPT_BOOL) {
        *(bool *)o->out = true;
    } else if (o->type == CLI_OPT_STR) {
        *(const char **)o->out = value;
    } else {
        struct cli_list *l = o->out;
        if (l->n >= CLI_LIST_MAX) {
            fprintf(stderr, "sluice: at most %d --%s flags\n", CLI_LIST_MAX, o->name);
            return CLI_USAGE;
        }
        l->v[l->n++] = value;
    }
    return 0;
}

/* The option named name (len bytes) among opts and the common flags, or NULL. */
static const struct cli_opt *find_opt(const struct cli_opt *opts, size_t nopts, const char *name,
                                      size_t len)
{
    for (size_t i = 0; i < nopts + 3; i++) {
        const struct cli_opt *o = i < nopts ? &opts[i] : &common_opts[i - nopts];
        if (strlen(o->name) == len && strncmp(o->name, name, len) == 0) {
            return o;
        }
    }
    return NULL;
}

int cli_parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
              const char **pos, size_t max_pos, size_t *npos)
{
    bool flags = true;

    *npos = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (flags && strcmp(a, "--") == 0) {
            flags = false;
            continue;
        }
        if (!flags || strncmp(a, "--", 2) != 0) {
            if (*npos >= max_pos) {
                fprintf(stderr, "sluice %s: unexpected argument '%s'\n", argv[0], a);
                return CLI_USAGE;
            }
            pos[(*npos)++] = a;
            continue;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        const struct cli_opt *o = find_opt(opts, nopts, name, len);
        const char *value = NULL;
        if (o == NULL) {
            fprintf(stderr, "sluice %s: unknown flag '%s' (see sluice help)\n", argv[0], a);
            return CLI_USAGE;
        }
        if (o->type != CLI_OPT_BOOL) {
            if (eq) {
                value = eq + 1;
            } else if (i + 1 < argc) {
                value = argv[++i];
            } else {
                fprintf(stderr, "sluice %s: --%s needs a value\n", argv[0], o->name);
                return CLI_USAGE;
            }
        } else if (eq) {
            fprintf(stderr, "sluice %s: --%s takes no value\n", argv[0], o->name);
            return CLI_USAGE;
        }
        if (set_opt(c, o, value) != 0) {
            return CLI_USAGE;
        }
    }
    return 0;
}

int cli_parse_one(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
                  const char **arg)
{
    size_t npos;
    int rc = cli_parse(c, argc, argv, opts, nopts, arg, 1, &npos);

    if (rc == CLI_OK && npos != 1) {
        fprintf(stderr, "sluice %s: which one? give its id (see sluice %s --help)\n", argv[0],
                argv[0]);
        rc = CLI_USAGE;
    }
    return rc;
}

/* What a request's write callback needs: the handle (for the status) and where bytes go. */
struct sink {
    CURL *curl;
    FILE *out;
    struct cli_resp *resp;
    bool too_big;
};

/* Streams a 2xx body to sink->out when there is one, else keeps it (up to CLI_MAX_BODY). */
static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct sink *s = arg;
    size_t len = size * n;
    long status = 0;

    curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (s->out && status >= 200 && status < 300) {
        return fwrite(data, 1, len, s->out);
    }
    if (s->resp->len + len > CLI_MAX_BODY) {
        s->too_big = true;
        return 0;
    }
    char *grown = realloc(s->resp->body, s->resp->len + len + 1);
    if (grown == NULL) {
        return 0;
    }
    memcpy(grown + s->resp->len, data, len);
    s->resp->body = grown;
    s->resp->len += len;
    grown[s->resp->len] = '\0';
    return len;
}

/* Prints an error answer on stderr: its envelope's message and code, else its first bytes. */
static void print_api_error(const struct cli_req *req, const struct cli_resp *resp)
{
    cJSON *root = resp->body ? cJSON_Parse(resp->body) : NULL;
    const cJSON *err = cJSON_GetObjectItemCaseSensitive(root, "error");
    const char *msg = cli_str(err, "message", NULL), *code = cli_str(err, "code", NULL);

    if (msg) {
        fprintf(stderr, "sluice: %s %s: %ld%s%s%s: %s\n", req->method, req->path, resp->status,
                code ? " (" : "", code ? code : "", code ? ")" : "", msg);
    } else {
        fprintf(stderr, "sluice: %s %s: HTTP %ld %.200s\n", req->method, req->path, resp->status,
                resp->body ? resp->body : "");
    }
    cJSON_Delete(root);
}

/* Builds base URL + path into buf (a trailing / of the base is dropped). */
static int full_url(const struct cli *c, const char *path, char *buf, size_t size)
{
    size_t blen = strlen(c->url);

    while (blen > 0 && c->url[blen - 1] == '/') {
        blen--;
    }
    int n = snprintf(buf, size, "%.*s%s", (int)blen, c->url, path);
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

int cli_request(struct cli *c, const struct cli_req *req, struct cli_resp *resp)
{
    struct curl_slist *headers = NULL;
    struct sink sink = {c->curl, req->out, resp, false};
    char url[CLI_URL_MAX], auth[1024];
    CURLcode cc;
    int rc = CLI_CONNECT;

    memset(resp, 0, sizeof(*resp));
    if (full_url(c, req->path, url, sizeof(url)) < 0) {
        fprintf(stderr, "sluice: URL too long\n");
        return CLI_USAGE;
    }
    curl_easy_reset(c->curl);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (c->key && c->key[0]) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %.900s", c->key);
        headers = curl_slist_append(headers, auth);
    }
    if (req->json) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, req->json);
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(req->json));
    } else if (req->mime) {
        curl_easy_setopt(c->curl, CURLOPT_MIMEPOST, req->mime);
    } else if (strcmp(req->method, "POST") == 0) {
        curl_easy_setopt(c->curl, CURLOPT_POSTFIELDS, "");
    }
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "POST") != 0) {
        curl_easy_setopt(c->curl, CURLOPT_CUSTOMREQUEST, req->method);
    }
    curl_easy_setopt(c->curl, CURLOPT_URL, url);
    curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c->curl, CURLOPT_USERAGENT, "sluice-cli/" SLUICE_VERSION_STRING);
    curl_easy_setopt(c->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->curl, CURLOPT_CONNECTTIMEOUT, CLI_CONNECT_TIMEOUT_S);
    if (req->out) {
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, CLI_STALL_S);
    } else {
        curl_easy_setopt(c->curl, CURLOPT_TIMEOUT, c->timeout_s);
    }
    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, &sink);
    cc = curl_easy_perform(c->curl);
    curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &resp->status);
    if (sink.too_big) {
        rc = CLI_API;
        if (!req->quiet) {
            fprintf(stderr, "sluice: %s %s: the answer is larger than %d bytes\n", req->method,
                    req->path, CLI_MAX_BODY);
        }
        goto out;
    }
    if (cc != CURLE_OK) {
        if (!req->quiet) {
            fprintf(stderr, "sluice: %s %s: %s (%s)\n", req->method, url,
                    cc == CURLE_OPERATION_TIMEDOUT ? "no answer in time" : "cannot reach sluice",
                    curl_easy_strerror(cc));
        }
        goto out;
    }
    rc = resp->status >= 200 && resp->status < 300 ? CLI_OK : CLI_API;
    if (rc == CLI_API && !req->quiet) {
        print_api_error(req, resp);
    }
out:
    curl_slist_free_all(headers);
    return rc;
}

void cli_resp_cleanup(struct cli_resp *resp)
{
    free(resp->body);
    memset(resp, 0, sizeof(*resp));
}

int cli_call_json(struct cli *c, const char *method, const char *path, const cJSON *body,
                  cJSON **out)
{
    char *text = body ? cJSON_PrintUnformatted(body) : NULL;
    struct cli_req req = {.method = method, .path = path, .json = text};
    struct cli_resp resp;
    int rc;

    *out = NULL;
    if (body && text == NULL) {
        fprintf(stderr, "sluice: out of memory\n");
        return CLI_FAILED;
    }
    rc = cli_request(c, &req, &resp);
    if (rc == CLI_OK && (*out = cJSON_Parse(resp.body ? resp.body : "")) == NULL) {
        fprintf(stderr, "sluice: %s %s: the answer is not JSON\n", method, path);
        rc = CLI_API;
    }
    cli_resp_cleanup(&resp);
    cJSON_free(text);
    return rc;
}

int cli_read_file(const char *path, char **data, size_t *len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t cap = 0;
    int rc = CLI_USAGE;

    *data = NULL;
    *len = 0;
    if (f == NULL) {
        fprintf(stderr, "sluice: cannot open %s: %s\n", path, strerror(errno));
        return CLI_USAGE;
    }
    for (;;) {
        if (*len + 1 >= cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *grown = ncap > CLI_MAX_FILE + 1 ? NULL : realloc(*data, ncap);
            if (grown == NULL) {
                fprintf(stderr, "sluice: %s is larger than %d bytes\n", path, CLI_MAX_FILE);
                goto out;
            }
            *data = grown;
            cap = ncap;
        }
        size_t got = fread(*data + *len, 1, cap - *len - 1, f);
        *len += got;
        if (got == 0) {
            break;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "sluice: cannot read %s\n", path);
        goto out;
    }
    (*data)[*len] = '\0';
    rc = CLI_OK;
out:
    if (f != stdin) {
        fclose(f);
    }
    if (rc != CLI_OK) {
        free(*data);
        *data = NULL;
    }
    return rc;
}

void cli_print_json(const struct cli *c, const cJSON *v)
{
    char *text = c->json && !c->tty ? cJSON_PrintUnformatted(v) : cJSON_Print(v);

    if (text) {
        printf("%s\n", text);
    }
    cJSON_free(text);
}

double cli_num(const cJSON *o, const char *name, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

const char *cli_str(const cJSON *o, const char *name, const char *def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
    return cJSON_IsString(v) ? v->valuestring : def;
}

const char *cli_clock(double unix_s, char *buf, size_t size)
{
    time_t t = (time_t)unix_s;
    struct tm tm;

    if (unix_s <= 0 || localtime_r(&t, &tm) == NULL) {
        snprintf(buf, size, "-");
    } else {
        strftime(buf, size, "%H:%M:%S", &tm);
    }
    return buf;
}

int cli_term_width(void)
{
    struct winsize ws;
    const char *cols = getenv("COLUMNS");
    long n = cols ? strtol(cols, NULL, 10) : 0;

    if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 20) {
        return ws.ws_col;
    }
    /* a pseudo-terminal nobody sized (script(1) without a terminal) reports 0 columns */
    return n > 20 && n < 1000 ? (int)n : 80;
}

const char *cli_sgr(const struct cli *c, const char *s)
{
    return c->color ? s : "";
}

static void command_help(const struct cli_command *cmd)
{
    printf("usage: sluice %s\n\n  %s\n", cmd->synopsis, cmd->help);
    cli_usage(stdout);
}

/*
 * Settings come from flags first, then SLUICE_URL / SLUICE_API_KEY; --help anywhere prints the
 * command's help. The curl handle lives for the whole run so keep-alive reuses one connection
 * for a command's many polls.
 */
int cli_main(int argc, char **argv)
{
    struct cli c = {.url = getenv("SLUICE_URL"),
                    .key = getenv("SLUICE_API_KEY"),
                    .timeout_s = CLI_REQUEST_TIMEOUT_S};
    const struct cli_command *cmd = NULL;
    int rc;

    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (strcmp(argv[0], commands[i].name) == 0) {
            cmd = &commands[i];
        }
    }
    if (cmd == NULL) {
        fprintf(stderr, "sluice: unknown command '%s'\n", argv[0]);
        return CLI_USAGE;
    }
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            command_help(cmd);
            return CLI_OK;
        }
    }
    if (c.url == NULL || c.url[0] == '\0') {
        c.url = CLI_DEFAULT_URL;
    }
    c.tty = isatty(STDOUT_FILENO) == 1;
    c.color = c.tty && (getenv("NO_COLOR") == NULL || getenv("NO_COLOR")[0] == '\0');
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    c.curl = curl_easy_init();
    if (c.curl == NULL) {
        fprintf(stderr, "sluice: cannot initialise libcurl\n");
        rc = CLI_CONNECT;
        goto out;
    }
    rc = cmd->run(&c, argc, argv);
    fflush(stdout);
out:
    curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    return rc;
}
