/*
 * api/batch_lines.c — reading a batch's input file line by line, with a bound on a line's size,
 * and checking a line as OpenAI's Batch API defines it (see api/batch_runner.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/batch_runner.h"
#include "core/json_in.h"
#include "core/util.h"

/* Reads the next line (without its newline) into r->line, at most max_body_bytes of it kept.
 * Returns 1, or 0 at the end of the file. */
int batch_line_read(struct batch_runner *r)
{
    size_t max = (size_t)r->api->cfg->limits.max_body_bytes;
    int ch;
    bool any = false;

    r->line_len = 0;
    r->line_too_long = false;
    while ((ch = getc_unlocked(r->in)) != EOF) {
        any = true;
        r->off++;
        if (ch == '\n') {
            break;
        }
        if (r->line_len >= max) {
            r->line_too_long = true;
            continue;
        }
        if (r->line_len + 1 >= r->line_cap) {
            size_t cap = r->line_cap ? r->line_cap * 2 : 4096;
            char *p = realloc(r->line, cap);
            if (p == NULL) {
                r->line_too_long = true;
                continue;
            }
            r->line = p;
            r->line_cap = cap;
        }
        r->line[r->line_len++] = (char)ch;
    }
    if (!any) {
        return 0;
    }
    if (r->line) {
        r->line[r->line_len] = '\0';
    }
    r->line_no++;
    return 1;
}

bool batch_line_blank(const struct batch_runner *r)
{
    for (size_t i = 0; i < r->line_len; i++) {
        if (r->line[i] != ' ' && r->line[i] != '\t' && r->line[i] != '\r') {
            return false;
        }
    }
    return !r->line_too_long;
}

/*
 * What a /v1/responses line may not ask for (set to anything but null or false): a line's answer
 * is its output line, written when the batch ends, so there is nothing to stream or to answer at
 * once; and its task is submitted without a read of an earlier response.
 */
static const struct {
    const char *field, *param, *why;
} response_refused[] = {
    {"background", "body.background",
     "'background' has no meaning in a batch line: every line runs in the background"},
    {"stream", "body.stream", "A batch line cannot stream: its answer is its output line"},
    {"previous_response_id", "body.previous_response_id",
     "A batch line cannot continue an earlier response: send its input items instead"},
    {"webhook", "body.webhook", "A batch line has no webhook of its own: the batch's tells"},
};

/*
 * Checks the current line: a JSON object {custom_id, method: "POST", url: the batch's endpoint,
 * body} whose body is a valid request for a model of the endpoint's kind. On success *root owns
 * the parse and *body, *model, *custom_id point into it; returns 0. Else fills le, returns -1.
 */
int batch_line_check(struct batch_runner *r, cJSON **root, const cJSON **body,
                     const struct config_model **model, const char **custom_id, struct line_err *le)
{
    const struct config *cfg = r->api->cfg;
    const cJSON *v;
    struct core_err e;

    *root = NULL;
    le->param[0] = '\0';
#define LINE_FAIL(c, p, ...)                                                                       \
    do {                                                                                           \
        le->code = (c);                                                                            \
        snprintf(le->param, sizeof(le->param), "%s", (p));                                         \
        snprintf(le->message, sizeof(le->message), __VA_ARGS__);                                   \
        cJSON_Delete(*root);                                                                       \
        *root = NULL;                                                                              \
        return -1;                                                                                 \
    } while (0)
    if (r->line_too_long) {
        LINE_FAIL("line_too_large", "", "The line is longer than %ld bytes",
                  cfg->limits.max_body_bytes);
    }
    core_err_clear(&e);
    if (json_in_parse(r->line, r->line_len, (int)cfg->limits.max_json_depth, root, &e) < 0) {
        LINE_FAIL("invalid_json_line", e.param, "%.200s", e.message);
    }
    if (!cJSON_IsObject(*root)) {
        LINE_FAIL("invalid_json_line", "", "The line is not a JSON object");
    }
    v = cJSON_GetObjectItemCaseSensitive(*root, "custom_id");
    if (!cJSON_IsString(v) || v->valuestring[0] == '\0' ||
        strlen(v->valuestring) > RUNNER_CUSTOM_ID_MAX) {
        LINE_FAIL("invalid_custom_id", "custom_id",
                  "'custom_id' must be a string of 1 to %d characters", RUNNER_CUSTOM_ID_MAX);
    }
    *custom_id = v->valuestring;
    v = cJSON_GetObjectItemCaseSensitive(*root, "method");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, "POST") != 0) {
        LINE_FAIL("invalid_method", "method", "'method' must be \"POST\"");
    }
    v = cJSON_GetObjectItemCaseSensitive(*root, "url");
    if (!cJSON_IsString(v) || strcmp(v->valuestring, runner_field(r, "endpoint")) != 0) {
        LINE_FAIL("invalid_url", "url", "'url' must be the batch's endpoint, %s",
                  runner_field(r, "endpoint"));
    }
    *body = cJSON_GetObjectItemCaseSensitive(*root, "body");
    if (!cJSON_IsObject(*body)) {
        LINE_FAIL("invalid_body", "body", "'body' must be a JSON object");
    }
    v = cJSON_GetObjectItemCaseSensitive(*body, "model");
    if (!cJSON_IsString(v) || (*model = config_model_find(cfg, v->valuestring)) == NULL) {
        LINE_FAIL("model_not_found", "body.model", "The model '%.128s' does not exist",
                  cJSON_IsString(v) ? v->valuestring : "");
    }
    if (!api_key_allows(r->key, *model)) {
        LINE_FAIL("model_not_allowed", "body.model",
                  "The batch's API key may not use the model '%.128s'", v->valuestring);
    }
    if (!api_model_serves(*model, r->kind)) {
        LINE_FAIL("invalid_model", "body.model", "The model '%.128s' serves %s requests, not %s",
                  v->valuestring, task_kind_name((*model)->kind), task_kind_name(r->kind));
    }
    core_err_clear(&e);
    if (api_validate_task_input(r->kind, *body, &e) < 0) {
        LINE_FAIL("invalid_request", e.param[0] ? e.param : "body", "%.250s", e.message);
    }
    for (size_t i = 0; r->kind == TASK_KIND_RESPONSE &&
                       i < sizeof(response_refused) / sizeof(response_refused[0]);
         i++) {
        v = cJSON_GetObjectItemCaseSensitive(*body, response_refused[i].field);
        if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsFalse(v)) {
            LINE_FAIL("invalid_request", response_refused[i].param, "%s", response_refused[i].why);
        }
    }
    if (r->kind == TASK_KIND_RESPONSE &&
        cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(*body, "store"))) {
        LINE_FAIL("invalid_request", "body.store", "%s",
                  "'store: false' cannot apply to a batch line: its response is kept for the "
                  "batch's output file");
    }
#undef LINE_FAIL
    return 0;
}
