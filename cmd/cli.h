/*
 * cmd/cli.h — the sluice CLI: subcommands of the `sluice` binary that talk to a running sluice
 * over its HTTP API (submit, get, wait, cancel, tail, batch, top, usage).
 *
 * The CLI is a one-request-at-a-time client: it sends a request, waits for the answer, acts, and
 * sends the next. So it uses libcurl's easy interface (one handle, kept for the whole run so the
 * connection is reused), never the multi interface and never the server's event loop. Every
 * request has a connect timeout and a total timeout, and every answer read into memory is capped
 * (CLI_MAX_BODY); file downloads stream to disk instead.
 */
#ifndef SLUICE_CMD_CLI_H
#define SLUICE_CMD_CLI_H

#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

/* Exit codes scripts can rely on (printed by `sluice help`). */
enum cli_exit {
    CLI_OK = 0,           /* done; a task or batch completed */
    CLI_FAILED = 1,       /* the task (or batch) failed */
    CLI_USAGE = 2,        /* bad flags or arguments */
    CLI_CANCELLED = 3,    /* the task was cancelled or expired */
    CLI_API = 4,          /* the API answered an error (4xx/5xx); its message is on stderr */
    CLI_CONNECT = 5,      /* could not connect, or the connection failed mid-request */
    CLI_TIMEOUT = 6,      /* gave up waiting (--timeout) */
    CLI_INTERRUPTED = 130 /* Ctrl-C while waiting (128 + SIGINT) */
};

/* The largest answer read into memory: a task with a big result, a page of tasks. */
#define CLI_MAX_BODY (64 * 1024 * 1024)
/* The largest file read from disk (a task body, a batch JSONL): the server's files.max_bytes. */
#define CLI_MAX_FILE (200 * 1024 * 1024)

/* One CLI run's state: settings from flags/env (borrowed from argv and environ) and the handle. */
struct cli {
    const char *url; /* base URL, e.g. http://127.0.0.1:8080 (a trailing / is ignored) */
    const char *key; /* bearer key, or NULL */
    bool json;       /* --json: print the API's JSON instead of text */
    bool tty;        /* stdout is a terminal: spinners and bars allowed */
    bool color;      /* tty and NO_COLOR unset */
    long timeout_s;  /* per-request total timeout */
    CURL *curl;      /* owned; reused across requests */
};

/* One answer: status and body (NUL-terminated, owned; free with cli_resp_cleanup). */
struct cli_resp {
    long status;
    char *body;
    size_t len;
};

/* A request: method and path (with query) relative to the base URL; at most one body kind. */
struct cli_req {
    const char *method;
    const char *path;
    const char *json; /* borrowed JSON text to send, or NULL */
    curl_mime *mime;  /* borrowed multipart body, or NULL */
    FILE *out;        /* borrowed: a 2xx body is streamed here instead of kept in memory */
    bool quiet;       /* false: errors are printed on stderr; true: the caller reports them */
};

/* A flag of a subcommand: --name VALUE (or --name=VALUE), or a boolean --name. */
enum cli_opt_type { CLI_OPT_STR, CLI_OPT_BOOL, CLI_OPT_LIST };

#define CLI_LIST_MAX 32

/* A repeatable flag's values (borrowed from argv). */
struct cli_list {
    const char *v[CLI_LIST_MAX];
    size_t n;
};

struct cli_opt {
    const char *name; /* without the leading -- */
    enum cli_opt_type type;
    void *out; /* const char **, bool * or struct cli_list * */
};

/* A subcommand: run(c, argc, argv) with argv[0] the subcommand's name; returns an exit code. */
struct cli_command {
    const char *name;
    int (*run)(struct cli *c, int argc, char **argv);
    const char *synopsis;
    const char *help;
};

/* True when argv1 names a CLI subcommand (so cmd/sluice.c hands the run to cli_main). */
bool cli_is_command(const char *argv1);

/* Runs a subcommand; argv[0] is its name. Returns the process exit code (enum cli_exit). */
int cli_main(int argc, char **argv);

/* Prints the CLI's commands, environment and exit codes (part of `sluice help`). */
void cli_usage(FILE *out);

/*
 * Parses argv[1..] against opts plus the common flags (--url, --key, --json) into their outs and
 * collects up to max_pos positional arguments into pos (borrowed). Returns 0, or prints what is
 * wrong on stderr and returns CLI_USAGE.
 */
int cli_parse(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
              const char **pos, size_t max_pos, size_t *npos);

/* cli_parse with exactly one positional argument (an id), put in *arg; else CLI_USAGE. */
int cli_parse_one(struct cli *c, int argc, char **argv, const struct cli_opt *opts, size_t nopts,
                  const char **arg);

/*
 * Sends one request. Returns CLI_OK for a 2xx answer (kept in resp unless req->out), CLI_API for
 * an error answer (resp keeps it; its envelope's message is printed on stderr unless req->quiet),
 * CLI_CONNECT when no answer came. resp must be cleaned up with cli_resp_cleanup in every case.
 */
int cli_request(struct cli *c, const struct cli_req *req, struct cli_resp *resp);

void cli_resp_cleanup(struct cli_resp *resp);

/*
 * GET path, or method with a JSON body (borrowed, may be NULL), and parse the answer: on CLI_OK
 * *out is the parsed JSON (caller frees with cJSON_Delete); otherwise *out is NULL.
 */
int cli_call_json(struct cli *c, const char *method, const char *path, const cJSON *body,
                  cJSON **out);

/* Reads a whole file (or stdin for "-") up to CLI_MAX_FILE bytes. Caller frees *data. */
int cli_read_file(const char *path, char **data, size_t *len);

/* Prints a JSON value pretty (or compact with --json piped) followed by a newline. */
void cli_print_json(const struct cli *c, const cJSON *v);

/* An object's member as a number / string (def when missing or of another type). */
double cli_num(const cJSON *o, const char *name, double def);
const char *cli_str(const cJSON *o, const char *name, const char *def);

/* Formats a unix time as local HH:MM:SS into buf (>= 9 bytes); "-" for 0. Returns buf. */
const char *cli_clock(double unix_s, char *buf, size_t size);

/* Sleeps ms milliseconds, returning early (true) once Ctrl-C was pressed. */
bool cli_sleep_ms(long ms);

/* Installs the SIGINT/SIGTERM handler that makes cli_interrupted() true (no SA_RESTART). */
void cli_catch_signals(void);
bool cli_interrupted(void);

/* The terminal's width in columns ($COLUMNS, else 80, when the terminal does not say). */
int cli_term_width(void);

/* ANSI SGR sequence s when colour is on, else "". */
const char *cli_sgr(const struct cli *c, const char *s);

/*
 * Waits for task id to end (the `wait` command's body, shared with `submit --wait`): polls it,
 * shows a spinner on a TTY or a line per change otherwise, returns the exit code of its final
 * status (CLI_TIMEOUT after timeout_s > 0, CLI_INTERRUPTED on Ctrl-C).
 */
int cli_task_wait(struct cli *c, const char *id, double timeout_s);

/* The subcommands, one per file. */
int cli_cmd_submit(struct cli *c, int argc, char **argv);
int cli_cmd_get(struct cli *c, int argc, char **argv);
int cli_cmd_wait(struct cli *c, int argc, char **argv);
int cli_cmd_cancel(struct cli *c, int argc, char **argv);
int cli_cmd_tail(struct cli *c, int argc, char **argv);
int cli_cmd_batch(struct cli *c, int argc, char **argv);
int cli_cmd_top(struct cli *c, int argc, char **argv);
int cli_cmd_usage(struct cli *c, int argc, char **argv);

#endif
