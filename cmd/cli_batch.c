/*
 * cmd/cli_batch.c — `sluice batch run|get|cancel`: a JSONL file through the Batch API with a
 * progress bar, the output and error files downloaded at the end, resumable by batch id.
 */
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "core/util.h"

/* API_BATCH_ID_PREFIX of api/batches.h, whose header pulls in the api's internals */
#define BATCH_ID_PREFIX "batch_"
#define BATCH_POLL_TTY_MS 500
#define BATCH_POLL_MS 1000
/* piped output: at most one progress line per this many ms (and one per status change) */
#define BATCH_LINE_EVERY_MS 5000
#define BAR_WIDTH 30
#define PATH_MAX_LEN 512
#define NAME_MAX_LEN 600

/* A growing byte buffer for the rewritten JSONL (bounded by CLI_MAX_FILE). */
struct buf {
    char *data;
    size_t len, cap;
};

static int buf_put(struct buf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 65536;
        while (ncap < b->len + n + 1) {
            ncap *= 2;
        }
        char *grown = ncap > (size_t)CLI_MAX_FILE + 1 ? NULL : realloc(b->data, ncap);
        if (grown == NULL) {
            fprintf(stderr, "sluice batch: the file grows past %d bytes\n", CLI_MAX_FILE);
            return CLI_USAGE;
        }
        b->data = grown;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
    return CLI_OK;
}

/*
 * The file's lines with body.model set to model (when given); blank lines dropped. Lines that
 * are not JSON objects go through unchanged: the server's validation names them with their line
 * numbers, which is a better message than one the CLI could give. *endpoint (when NULL) becomes
 * the first line's url. Returns the number of lines in *lines, or -1 (message printed).
 */
static long prepare_lines(const char *data, size_t len, const char *model, struct buf *out,
                          char *endpoint, size_t endpoint_size)
{
    long n = 0;

    for (size_t i = 0; i < len;) {
        const char *line = data + i, *nl = memchr(line, '\n', len - i);
        size_t ll = nl ? (size_t)(nl - line) : len - i;
        cJSON *root = NULL, *body;
        char *text = NULL;
        int rc = CLI_OK;
        i += ll + (nl != NULL);
        if (strspn(line, " \t\r") >= ll) {
            continue;
        }
        root = cJSON_ParseWithLength(line, ll);
        body = cJSON_GetObjectItemCaseSensitive(root, "body");
        if (endpoint[0] == '\0' && cli_str(root, "url", NULL)) {
            snprintf(endpoint, endpoint_size, "%s", cli_str(root, "url", ""));
        }
        if (model && cJSON_IsObject(body)) {
            cJSON_DeleteItemFromObjectCaseSensitive(body, "model");
            cJSON_AddStringToObject(body, "model", model);
            text = cJSON_PrintUnformatted(root);
        }
        rc = text ? buf_put(out, text, strlen(text)) : buf_put(out, line, ll);
        if (rc == CLI_OK) {
            rc = buf_put(out, "\n", 1);
        }
        cJSON_free(text);
        cJSON_Delete(root);
        if (rc != CLI_OK) {
            return -1;
        }
        n++;
    }
    return n;
}

/* POST /v1/files purpose=batch with the bytes as `file` (named name); *file_id (caller frees). */
static int upload(struct cli *c, const char *name, const struct buf *b, char **file_id)
{
    curl_mime *mime = curl_mime_init(c->curl);
    curl_mimepart *part = curl_mime_addpart(mime);
    struct cli_req req = {.method = "POST", .path = "/v1/files", .mime = mime};
    struct cli_resp resp;
    cJSON *file = NULL;
    int rc;

    curl_mime_name(part, "purpose");
    curl_mime_data(part, "batch", CURL_ZERO_TERMINATED);
    part = curl_mime_addpart(mime);
    curl_mime_name(part, "file");
    curl_mime_filename(part, name);
    curl_mime_type(part, "application/jsonl");
    curl_mime_data(part, b->data, b->len);
    rc = cli_request(c, &req, &resp);
    if (rc == CLI_OK) {
        file = cJSON_Parse(resp.body ? resp.body : "");
        const char *id = cli_str(file, "id", NULL);
        *file_id = id ? strdup(id) : NULL;
        if (*file_id == NULL) {
            fprintf(stderr, "sluice batch: the upload's answer has no file id\n");
            rc = CLI_API;
        }
    }
    cJSON_Delete(file);
    cli_resp_cleanup(&resp);
    curl_mime_free(mime);
    return rc;
}

/* Uploads the file (rewritten for --model) and creates the batch; *batch_id (caller frees). */
static int start_batch(struct cli *c, const char *path, const char *model, const char *endpoint,
                       char **batch_id)
{
    struct buf lines = {0};
    char *data = NULL, *file_id = NULL, ep[256] = "";
    const char *base = strrchr(path, '/');
    size_t len;
    cJSON *body = NULL, *batch = NULL;
    long n;
    int rc = cli_read_file(path, &data, &len);

    *batch_id = NULL;
    if (rc != CLI_OK) {
        goto out;
    }
    if (endpoint) {
        snprintf(ep, sizeof(ep), "%s", endpoint);
    }
    if ((n = prepare_lines(data, len, model, &lines, ep, sizeof(ep))) <= 0) {
        if (n == 0) {
            fprintf(stderr, "sluice batch: %s has no lines\n", path);
        }
        rc = CLI_USAGE;
        goto out;
    }
    if (ep[0] == '\0') {
        snprintf(ep, sizeof(ep), "/v1/chat/completions");
    }
    if ((rc = upload(c, base ? base + 1 : path, &lines, &file_id)) != CLI_OK) {
        goto out;
    }
    body = cJSON_CreateObject();
    cJSON_AddStringToObject(body, "input_file_id", file_id);
    cJSON_AddStringToObject(body, "endpoint", ep);
    cJSON_AddStringToObject(body, "completion_window", "24h");
    if ((rc = cli_call_json(c, "POST", "/v1/batches", body, &batch)) != CLI_OK) {
        goto out;
    }
    if (cli_str(batch, "id", NULL) == NULL ||
        (*batch_id = strdup(cli_str(batch, "id", ""))) == NULL) {
        fprintf(stderr, "sluice batch: the answer has no batch id\n");
        rc = CLI_API;
        goto out;
    }
    fprintf(stderr, "uploaded %s (%ld lines) as %s; batch %s on %s\n", path, n, file_id, *batch_id,
            ep);
out:
    free(data);
    free(lines.data);
    free(file_id);
    cJSON_Delete(body);
    cJSON_Delete(batch);
    return rc;
}

/* Where the watcher is: the counts it started from, for the rate. */
struct watch {
    int64_t t0;
    double done0;
    int64_t last_line;
    char last_status[32];
};

/* Draws the bar (TTY) or prints a plain line (at most every few seconds, or on a change). */
static void show_progress(const struct cli *c, struct watch *w, const cJSON *b, bool final)
{
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(b, "request_counts");
    double total = cli_num(counts, "total", 0), ok = cli_num(counts, "completed", 0);
    double failed = cli_num(counts, "failed", 0), done = ok + failed;
    const char *status = cli_str(b, "status", "?");
    int64_t now = util_mono_ms();
    double secs = (now - w->t0) / 1000.0, rate = secs > 0.5 ? (done - w->done0) / secs : 0;
    double pct = total > 0 ? 100.0 * done / total : 0;
    char eta[32] = "-";
    bool changed = strcmp(status, w->last_status) != 0;

    if (rate > 0 && total > done) {
        snprintf(eta, sizeof(eta), "%.0fs", (total - done) / rate);
    }
    snprintf(w->last_status, sizeof(w->last_status), "%s", status);
    if (c->tty) {
        int fill = total > 0 ? (int)(BAR_WIDTH * done / total) : 0;
        char bar[BAR_WIDTH + 1];
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '-', (size_t)(BAR_WIDTH - fill));
        bar[BAR_WIDTH] = '\0';
        printf("\r\033[K[%s%s%s] %3.0f%%  %.0f/%.0f done  %s%.0f failed%s  %.1f/s  ETA %s  %s",
               cli_sgr(c, "\033[32m"), bar, cli_sgr(c, "\033[0m"), pct, done, total,
               cli_sgr(c, failed > 0 ? "\033[31m" : ""), failed, cli_sgr(c, "\033[0m"), rate, eta,
               status);
        if (final) {
            printf("\n");
        }
        fflush(stdout);
        return;
    }
    if (final || changed || now - w->last_line >= BATCH_LINE_EVERY_MS) {
        printf("%s %.0f/%.0f done (%.0f%%) %.0f failed %.1f/s ETA %s\n", status, done, total, pct,
               failed, rate, eta);
        fflush(stdout);
        w->last_line = now;
    }
}

/* Downloads file_id's content to path (an empty file when there is none). */
static int download(struct cli *c, const char *file_id, const char *path)
{
    FILE *f = fopen(path, "wb");
    char p[PATH_MAX_LEN];
    struct cli_req req = {.method = "GET", .path = p, .out = f};
    struct cli_resp resp;
    int rc = CLI_OK;
    long lines = 0;

    if (f == NULL) {
        fprintf(stderr, "sluice batch: cannot write %s\n", path);
        return CLI_USAGE;
    }
    if (file_id) {
        snprintf(p, sizeof(p), "/v1/files/%s/content", file_id);
        rc = cli_request(c, &req, &resp);
        cli_resp_cleanup(&resp);
    }
    if (fclose(f) != 0 && rc == CLI_OK) {
        fprintf(stderr, "sluice batch: cannot write %s\n", path);
        rc = CLI_USAGE;
    }
    if (rc == CLI_OK && (f = fopen(path, "rb")) != NULL) {
        for (int ch; (ch = fgetc(f)) != EOF;) {
            lines += ch == '\n';
        }
        fclose(f);
        fprintf(stderr, "wrote %s (%ld lines)\n", path, lines);
    }
    return rc;
}

/* The batch's validation errors on stderr (a batch that failed before it ran). */
static void print_batch_errors(const cJSON *b)
{
    const cJSON *data = cJSON_GetObjectItemCaseSensitive(
                    cJSON_GetObjectItemCaseSensitive(b, "errors"), "data"),
                *e;
    int shown = 0;

    cJSON_ArrayForEach(e, data)
    {
        if (shown++ >= 20) {
            fprintf(stderr, "  ... %d more\n", cJSON_GetArraySize(data) - 20);
            break;
        }
        fprintf(stderr, "  line %.0f: %s (%s) %s\n", cli_num(e, "line", 0), cli_str(e, "code", ""),
                cli_str(e, "param", ""), cli_str(e, "message", ""));
    }
}

/* The exit code of a terminal batch status, or -1 while it runs. */
static int batch_exit(const char *status)
{
    if (strcmp(status, "completed") == 0) {
        return CLI_OK;
    }
    if (strcmp(status, "failed") == 0) {
        return CLI_FAILED;
    }
    if (strcmp(status, "cancelled") == 0 || strcmp(status, "expired") == 0) {
        return CLI_CANCELLED;
    }
    return -1;
}

/*
 * Watches the batch to its end, then downloads its files. Ctrl-C stops the watch (the batch goes
 * on in the server) and prints the command that resumes it.
 */
static int watch_batch(struct cli *c, const char *id, const char *out, const char *errors)
{
    struct watch w = {.t0 = util_mono_ms(), .done0 = -1};
    char path[PATH_MAX_LEN], out_path[NAME_MAX_LEN], err_path[NAME_MAX_LEN];
    cJSON *b = NULL;
    int rc;

    snprintf(path, sizeof(path), "/v1/batches/%s", id);
    snprintf(out_path, sizeof(out_path), "%s", out ? out : id);
    snprintf(err_path, sizeof(err_path), "%s", errors ? errors : id);
    if (out == NULL) {
        strncat(out_path, ".output.jsonl", sizeof(out_path) - strlen(out_path) - 1);
    }
    if (errors == NULL) {
        strncat(err_path, ".errors.jsonl", sizeof(err_path) - strlen(err_path) - 1);
    }
    cli_catch_signals();
    for (;;) {
        cJSON_Delete(b);
        if ((rc = cli_call_json(c, "GET", path, NULL, &b)) != CLI_OK) {
            b = NULL;
            goto out;
        }
        if (w.done0 < 0) {
            const cJSON *counts = cJSON_GetObjectItemCaseSensitive(b, "request_counts");
            w.done0 = cli_num(counts, "completed", 0) + cli_num(counts, "failed", 0);
        }
        rc = batch_exit(cli_str(b, "status", "?"));
        show_progress(c, &w, b, rc >= 0);
        if (rc >= 0) {
            break;
        }
        if (cli_sleep_ms(c->tty ? BATCH_POLL_TTY_MS : BATCH_POLL_MS)) {
            if (c->tty) {
                printf("\n");
            }
            fprintf(stderr,
                    "stopped watching; the batch goes on.\nresume with: sluice batch run "
                    "--resume %s --out %s --errors %s\n",
                    id, out_path, err_path);
            rc = CLI_INTERRUPTED;
            goto out;
        }
    }
    if (rc == CLI_FAILED) {
        fprintf(stderr, "sluice batch: %s failed\n", id);
        print_batch_errors(b);
    }
    if (rc != CLI_FAILED || cli_str(b, "output_file_id", NULL)) {
        int drc = download(c, cli_str(b, "output_file_id", NULL), out_path);
        int erc = download(c, cli_str(b, "error_file_id", NULL), err_path);
        if (rc == CLI_OK) {
            rc = drc != CLI_OK ? drc : erc;
        }
    }
    if (c->json) {
        cli_print_json(c, b);
    }
out:
    cJSON_Delete(b);
    return rc;
}

static int batch_run(struct cli *c, int argc, char **argv)
{
    const char *model = NULL, *endpoint = NULL, *out = NULL, *errors = NULL, *resume = NULL;
    const struct cli_opt opts[] = {
        {"model", CLI_OPT_STR, &model},   {"endpoint", CLI_OPT_STR, &endpoint},
        {"out", CLI_OPT_STR, &out},       {"errors", CLI_OPT_STR, &errors},
        {"resume", CLI_OPT_STR, &resume},
    };
    const char *pos[1];
    size_t npos;
    char *id = NULL;
    int rc = cli_parse(c, argc, argv, opts, sizeof(opts) / sizeof(opts[0]), pos, 1, &npos);

    if (rc != CLI_OK) {
        return rc;
    }
    if ((resume != NULL) == (npos == 1)) {
        fprintf(stderr, "sluice batch run: give FILE.jsonl or --resume BATCH_ID (one of them)\n");
        return CLI_USAGE;
    }
    if (resume && !util_id_valid(BATCH_ID_PREFIX, resume)) {
        fprintf(stderr, "sluice batch run: '%s' is not a batch id\n", resume);
        return CLI_USAGE;
    }
    if (resume == NULL && (rc = start_batch(c, pos[0], model, endpoint, &id)) != CLI_OK) {
        return rc;
    }
    rc = watch_batch(c, resume ? resume : id, out, errors);
    free(id);
    return rc;
}

/* `batch get ID` and `batch cancel ID`. */
static int batch_one(struct cli *c, int argc, char **argv, bool cancel)
{
    const char *pos[1];
    char path[PATH_MAX_LEN];
    cJSON *b = NULL;
    int rc = cli_parse_one(c, argc, argv, NULL, 0, pos);

    if (rc == CLI_OK && !util_id_valid(BATCH_ID_PREFIX, pos[0])) {
        fprintf(stderr, "sluice batch %s: give a batch id\n", argv[0]);
        rc = CLI_USAGE;
    }
    if (rc != CLI_OK) {
        return rc;
    }
    snprintf(path, sizeof(path), "/v1/batches/%s%s", pos[0], cancel ? "/cancel" : "");
    rc = cli_call_json(c, cancel ? "POST" : "GET", path, NULL, &b);
    if (rc == CLI_OK && cancel && !c->json) {
        printf("%s %s\n", pos[0], cli_str(b, "status", "?"));
    } else if (rc == CLI_OK) {
        cli_print_json(c, b);
    }
    cJSON_Delete(b);
    return rc;
}

int cli_cmd_batch(struct cli *c, int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "sluice batch: run, get or cancel (see sluice help)\n");
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "run") == 0) {
        return batch_run(c, argc - 1, argv + 1);
    }
    if (strcmp(argv[1], "get") == 0 || strcmp(argv[1], "cancel") == 0) {
        return batch_one(c, argc - 1, argv + 1, strcmp(argv[1], "cancel") == 0);
    }
    fprintf(stderr, "sluice batch: unknown subcommand '%s'\n", argv[1]);
    return CLI_USAGE;
}
