/*
 * tests/unit/test_log.c — core/log: logfmt and JSON lines, escaping, numbers, quoted values,
 * cut lines, levels, libevent's messages; the config's log section (log.level, log.format, the
 * older log_level).
 *
 * Each case sends one log_msg to stderr while stderr is a temporary file (dup2), then reads the
 * line back; JSON lines are checked by parsing them with cJSON. The last case reads every log call
 * in the sources (the test runs in the source directory) and refuses one that names a secret.
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <event2/util.h>

#include "check.h"
#include "core/config.h"
#include "core/log.h"

/* The bytes log_msg wrote to stderr while capture() ran them; caller frees. */
#define CAPTURE(out, call)                                                                         \
    do {                                                                                           \
        FILE *f_ = tmpfile();                                                                      \
        int saved_ = dup(STDERR_FILENO);                                                           \
        fflush(stderr);                                                                            \
        dup2(fileno(f_), STDERR_FILENO);                                                           \
        call;                                                                                      \
        fflush(stderr);                                                                            \
        dup2(saved_, STDERR_FILENO);                                                               \
        close(saved_);                                                                             \
        (out) = read_all(f_);                                                                      \
        fclose(f_);                                                                                \
    } while (0)

static char *read_all(FILE *f)
{
    long n;
    char *buf;

    fseek(f, 0, SEEK_END);
    n = ftell(f);
    rewind(f);
    buf = calloc(1, (size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        buf[0] = '\0';
    }
    return buf;
}

/* The text after "ts=<stamp> " of a logfmt line, so cases compare without the clock. */
static const char *after_ts(const char *line)
{
    const char *sp = strchr(line, ' ');
    return sp ? sp + 1 : "";
}

/* True when s is one line: ends in '\n' and has no other newline. */
static bool one_line(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && s[n - 1] == '\n' && strchr(s, '\n') == s + n - 1;
}

static void test_logfmt(void)
{
    char *out = NULL;

    check_test_begin("logfmt: fields kept as written");
    log_setup("worker", LOG_INFO);
    log_set_format(LOG_FORMAT_LOGFMT);
    CAPTURE(out, log_info("attempt failed", "task=%s attempt=%d error=\"%s\"", "task_abc", 2,
                          "upstream said no"));
    CHECK(one_line(out));
    CHECK(strncmp(out, "ts=", 3) == 0);
    CHECK_STR(after_ts(out), "level=info role=worker msg=\"attempt failed\" task=task_abc "
                             "attempt=2 error=\"upstream said no\"\n");
    /* the stamp: RFC 3339 in UTC with milliseconds */
    CHECK(strlen(out) > 27 && out[13] == 'T' && out[19] == ':' && out[22] == '.' && out[26] == 'Z');
    free(out);

    CAPTURE(out, log_info("stopped", NULL));
    CHECK_STR(after_ts(out), "level=info role=worker msg=\"stopped\"\n");
    free(out);
    check_test_end();
}

static void test_logfmt_escaping(void)
{
    char *out = NULL;

    check_test_begin("logfmt: a value with quotes and a newline stays one line");
    log_set_format(LOG_FORMAT_LOGFMT);
    CAPTURE(out,
            log_warn("submit failed", "error=\"%s\" task=%s", "bad \"x\" here\nline2", "task_q"));
    CHECK(one_line(out));
    CHECK_STR(after_ts(out), "level=warn role=worker msg=\"submit failed\" "
                             "error=\"bad \\\"x\\\" here\\nline2\" task=task_q\n");
    free(out);

    /* an unquoted value that needs quotes gets them; one with spaces stays one value; a leading
     * word without '=' stays bare */
    CAPTURE(out, log_info("m", "flag path=%s model=%s n=%d", "a\\b", "odd alias \"x\"", 3));
    CHECK_STR(after_ts(out), "level=info role=worker msg=\"m\" flag path=\"a\\\\b\" "
                             "model=\"odd alias \\\"x\\\"\" n=3\n");
    free(out);
    check_test_end();
}

/* The parsed JSON line of one log_msg call; NULL when it is not one JSON object on one line. */
static cJSON *json_line(const char *out)
{
    cJSON *o;

    if (!one_line(out)) {
        return NULL;
    }
    o = cJSON_Parse(out);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        return NULL;
    }
    return o;
}

static const char *jstr(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void test_json(void)
{
    char *out = NULL;
    cJSON *o = NULL;
    const cJSON *v;

    check_test_begin("json: members, numbers as numbers, strings escaped");
    log_setup("api", LOG_INFO);
    log_set_format(LOG_FORMAT_JSON);
    CAPTURE(out, log_info("attempt failed",
                          "bare task=%s attempt=%d ratio=%s neg=%d big=%s id=%s zero=0 lead=%s "
                          "q=\"%s\" error=\"%s\"",
                          "task_abc", 3, "0.25", -4, "1e3", "007", "12ab", "5",
                          "say \"hi\"\tand\nbye \\ end"));
    o = json_line(out);
    CHECK_OR_OUT(o != NULL, "not one JSON object: %s", out);
    CHECK_STR(jstr(o, "level"), "info");
    CHECK_STR(jstr(o, "role"), "api");
    CHECK_STR(jstr(o, "msg"), "attempt failed");
    CHECK_STR(jstr(o, "task"), "task_abc");
    CHECK(jstr(o, "ts") != NULL && strlen(jstr(o, "ts")) == 24 && jstr(o, "ts")[23] == 'Z');
    v = cJSON_GetObjectItemCaseSensitive(o, "attempt");
    CHECK(cJSON_IsNumber(v) && v->valueint == 3);
    v = cJSON_GetObjectItemCaseSensitive(o, "ratio");
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 0.25);
    v = cJSON_GetObjectItemCaseSensitive(o, "neg");
    CHECK(cJSON_IsNumber(v) && v->valueint == -4);
    v = cJSON_GetObjectItemCaseSensitive(o, "big");
    CHECK(cJSON_IsNumber(v) && v->valuedouble == 1000);
    v = cJSON_GetObjectItemCaseSensitive(o, "zero");
    CHECK(cJSON_IsNumber(v) && v->valueint == 0);
    /* not JSON numbers: leading zeros, trailing letters; a quoted number stays a string */
    CHECK_STR(jstr(o, "id"), "007");
    CHECK_STR(jstr(o, "lead"), "12ab");
    CHECK_STR(jstr(o, "q"), "5");
    CHECK_STR(jstr(o, "error"), "say \"hi\"\tand\nbye \\ end");
    CHECK(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "bare")));
    /* the raw line escapes them */
    CHECK(strstr(out, "\"error\":\"say \\\"hi\\\"\\tand\\nbye \\\\ end\"") != NULL);
out:
    cJSON_Delete(o);
    free(out);
    check_test_end();
}

static void test_json_quoted_value_with_spaces(void)
{
    char *out = NULL;
    cJSON *o = NULL;

    check_test_begin("json: quoted values with spaces, unescaped quotes and escapes");
    log_set_format(LOG_FORMAT_JSON);
    /* a caller's "%s" with quotes inside, then another field: the value ends before ` task=` */
    CAPTURE(out, log_warn("m", "reason=\"%s\" task=%s note=\"%s\"", "it said \"stop\" twice",
                          "task_z", "x=1 \\\"y\\\""));
    o = json_line(out);
    CHECK_OR_OUT(o != NULL, "not one JSON object: %s", out);
    CHECK_STR(jstr(o, "reason"), "it said \"stop\" twice");
    CHECK_STR(jstr(o, "task"), "task_z");
    CHECK_STR(jstr(o, "note"), "x=1 \"y\"");
    cJSON_Delete(o);
    free(out);

    /* an unclosed quote: the value runs to the end */
    CAPTURE(out, log_warn("m", "task=%s error=\"%s", "task_u", "cut off"));
    o = json_line(out);
    CHECK_OR_OUT(o != NULL, "not one JSON object: %s", out);
    CHECK_STR(jstr(o, "task"), "task_u");
    CHECK_STR(jstr(o, "error"), "cut off");
out:
    cJSON_Delete(o);
    free(out);
    check_test_end();
}

static void test_json_bytes(void)
{
    char *out = NULL, *big = NULL;
    cJSON *o = NULL;

    check_test_begin("json: control bytes, UTF-8 kept, invalid bytes replaced, long lines cut");
    log_set_format(LOG_FORMAT_JSON);
    CAPTURE(out, log_error("m", "v=\"%s\" u=\"%s\" bad=\"%s\"", "a\001b\033c", "h\xc3\xa9llo",
                           "x\xff\xc3y"));
    o = json_line(out);
    CHECK_OR_OUT(o != NULL, "not one JSON object: %s", out);
    CHECK(strstr(out, "a\\u0001b\\u001bc") != NULL);
    CHECK_STR(jstr(o, "v"), "a\001b\033c");
    CHECK_STR(jstr(o, "u"), "h\xc3\xa9llo");
    CHECK_STR(jstr(o, "bad"), "x\xef\xbf\xbd\xef\xbf\xbdy");
    cJSON_Delete(o);
    o = NULL;
    free(out);

    /* 10 KB of quotes and newlines: still one valid line, cut and marked */
    big = malloc(10001);
    CHECK_OR_OUT(big != NULL, "malloc");
    for (int i = 0; i < 10000; i++) {
        big[i] = i % 2 ? '"' : '\n';
    }
    big[10000] = '\0';
    CAPTURE(out, log_error("m", "task=%s error=\"%s\"", "task_big", big));
    o = json_line(out);
    CHECK_OR_OUT(o != NULL, "not one JSON object (%zu bytes)", strlen(out));
    CHECK_STR(jstr(o, "task"), "task_big");
    CHECK(jstr(o, "error") != NULL && strlen(jstr(o, "error")) > 1000);
    CHECK(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, "log_truncated")));
out:
    cJSON_Delete(o);
    free(big);
    free(out);
    check_test_end();
}

static void test_levels_and_parse(void)
{
    char *out = NULL;

    check_test_begin("levels below the minimum are dropped; names parse");
    log_setup("scheduler", LOG_WARN);
    log_set_format(LOG_FORMAT_LOGFMT);
    CAPTURE(out, (log_info("hidden", NULL), log_debug("hidden", NULL)));
    CHECK_STR(out, "");
    free(out);
    CAPTURE(out, log_error("shown", "task=%s", "task_e"));
    CHECK_STR(after_ts(out), "level=error role=scheduler msg=\"shown\" task=task_e\n");
    free(out);
    CHECK_I64(log_level_parse("warn"), LOG_WARN);
    CHECK_I64(log_level_parse("WARN"), -1);
    CHECK_I64(log_format_parse("json"), LOG_FORMAT_JSON);
    CHECK_I64(log_format_parse("logfmt"), LOG_FORMAT_LOGFMT);
    CHECK_I64(log_format_parse("text"), -1);
    CHECK_I64(log_format_parse(NULL), -1);
    check_test_end();
}

static void test_libevent_routed(void)
{
    char *out = NULL;
    cJSON *o = NULL;

    check_test_begin("libevent's own warnings become lines of the chosen format");
    log_setup("api", LOG_INFO);
    log_set_format(LOG_FORMAT_JSON);
    /* fcntl on a bad descriptor fails, and libevent warns about it through its log callback */
    CAPTURE(out, evutil_make_socket_nonblocking(-1));
    o = json_line(out);
    CHECK_OR_OUT(o != NULL, "not one JSON object: %s", out);
    CHECK_STR(jstr(o, "level"), "warn");
    CHECK_STR(jstr(o, "source"), "libevent");
    CHECK_MSG(jstr(o, "msg") != NULL && strstr(jstr(o, "msg"), "fcntl") != NULL, "%s", out);
out:
    cJSON_Delete(o);
    free(out);
    check_test_end();
}

/*
 * Random field texts over the bytes the parser treats specially (a fixed seed, so a failure
 * repeats): every JSON line parses as one object and every logfmt line is one line.
 */
static void test_random_fields(void)
{
    static const char alphabet[] = "ab=\"\\ \n\t\r.-_09ke\xc3\xa9\xff\x01";
    unsigned int seed = 17;
    char fields[300];
    int bad_json = 0, bad_lines = 0;

    check_test_begin("random field texts: always one line, JSON always parses");
    for (int i = 0; i < 2000; i++) {
        char *out = NULL;
        size_t n = (size_t)(rand_r(&seed) % (sizeof(fields) - 1));
        for (size_t k = 0; k < n; k++) {
            fields[k] = alphabet[rand_r(&seed) % (sizeof(alphabet) - 1)];
        }
        fields[n] = '\0';
        log_set_format(i % 2 ? LOG_FORMAT_JSON : LOG_FORMAT_LOGFMT);
        CAPTURE(out, log_error("m", "%s", fields));
        if (!one_line(out)) {
            bad_lines++;
        } else if (i % 2) {
            cJSON *o = json_line(out);
            bad_json += o == NULL;
            cJSON_Delete(o);
        }
        free(out);
    }
    CHECK_I64(bad_lines, 0);
    CHECK_I64(bad_json, 0);
    check_test_end();
}

/* The config's log section with a minimal config around it; want_param "" = accepted. */
static void check_log_config(const char *log_json, const char *want_param, const char *want_level,
                             enum log_format want_format)
{
    char text[1024];
    struct config *cfg = NULL;
    struct core_err err;
    int rc;

    snprintf(text, sizeof(text),
             "{\"keys\": [{\"key\": \"sk-test-log-123456\", \"tenant\": \"t\"}], \"providers\": "
             "{\"p\": {\"dialect\": \"openai\", \"base_url\": \"http://x/v1\"}},"
             " \"models\": {\"m\": {\"kind\": \"chat\", \"deployments\": [{\"provider\": "
             "\"p\", \"model\": \"up\"}]}}%s%s}",
             log_json[0] ? ", " : "", log_json);
    rc = config_parse(text, &cfg, &err);
    if (want_param[0] == '\0') {
        CHECK_MSG(rc == 0, "%s: %s", log_json, err.message);
        if (cfg != NULL) {
            CHECK_STR(cfg->log_level, want_level);
            CHECK_I64(cfg->log_format, want_format);
        }
    } else {
        CHECK_MSG(rc < 0, "%s accepted", log_json);
        CHECK_STR(err.param, want_param);
        CHECK_MSG(strstr(err.message, want_param) == err.message, "%s", err.message);
    }
    config_free(cfg);
}

static void test_config(void)
{
    check_test_begin("config: log.format and log.level, errors naming the field");
    check_log_config("", "", "info", LOG_FORMAT_LOGFMT);
    check_log_config("\"log\": {\"format\": \"json\"}", "", "info", LOG_FORMAT_JSON);
    check_log_config("\"log\": {\"format\": \"logfmt\", \"level\": \"debug\"}", "", "debug",
                     LOG_FORMAT_LOGFMT);
    check_log_config("\"log_level\": \"warn\", \"log\": {\"format\": \"json\"}", "", "warn",
                     LOG_FORMAT_JSON);
    check_log_config("\"log\": {\"format\": \"text\"}", "log.format", NULL, 0);
    check_log_config("\"log\": {\"format\": 1}", "log.format", NULL, 0);
    check_log_config("\"log\": {\"level\": \"loud\"}", "log.level", NULL, 0);
    check_log_config("\"log\": {\"level\": 3}", "log.level", NULL, 0);
    check_log_config("\"log_level\": \"loud\"", "log_level", NULL, 0);
    check_log_config("\"log_level\": \"info\", \"log\": {\"level\": \"info\"}", "log.level", NULL,
                     0);
    check_log_config("\"log\": \"json\"", "log", NULL, 0);
    check_test_end();
}

/* Words that would put a secret in a log line: a key's value, a password, a signature. */
static const char *const secret_words[] = {"secret",  "password", "passwd",
                                           "api_key", "apikey",   "authorization",
                                           "bearer",  "url_key",  "hmac"};

/* Each log call in the C file at path (up to its ';', 800 bytes at most) without secret_words;
 * returns how many calls it read, or -1 when one names a secret. */
static int scan_log_calls(const char *path)
{
    static const char *const calls[] = {"log_debug(", "log_info(", "log_warn(", "log_error(",
                                        "log_msg("};
    FILE *f = fopen(path, "r");
    char *text = f ? read_all(f) : NULL;
    int n = 0;

    if (f) {
        fclose(f);
    }
    for (size_t c = 0; text && c < sizeof(calls) / sizeof(calls[0]); c++) {
        for (const char *p = strstr(text, calls[c]); p; p = strstr(p + 1, calls[c])) {
            char call[801];
            size_t len = 0;
            while (p[len] != '\0' && p[len] != ';' && len < sizeof(call) - 1) {
                call[len] = (char)tolower((unsigned char)p[len]);
                len++;
            }
            call[len] = '\0';
            n++;
            for (size_t w = 0; w < sizeof(secret_words) / sizeof(secret_words[0]); w++) {
                if (strstr(call, secret_words[w]) != NULL) {
                    check_note("%s: a log call names \"%s\": %.200s", path, secret_words[w], call);
                    n = -1;
                }
            }
            if (n < 0) {
                free(text);
                return -1;
            }
        }
    }
    free(text);
    return n;
}

static void test_no_secrets_logged(void)
{
    static const char *const dirs[] = {"api", "worker", "scheduler", "core", "cmd", "adapters"};
    int calls = 0;

    check_test_begin("no log call in the sources names a secret");
    for (size_t d = 0; d < sizeof(dirs) / sizeof(dirs[0]); d++) {
        DIR *dir = opendir(dirs[d]);
        struct dirent *e;
        CHECK_MSG(dir != NULL, "cannot open %s/ (run from the source directory)", dirs[d]);
        while (dir && (e = readdir(dir)) != NULL) {
            size_t len = strlen(e->d_name);
            char path[512];
            int n;
            if (len < 3 || strcmp(e->d_name + len - 2, ".c") != 0 ||
                strcmp(e->d_name, "log.c") == 0) {
                continue;
            }
            snprintf(path, sizeof(path), "%s/%s", dirs[d], e->d_name);
            n = scan_log_calls(path);
            CHECK_MSG(n >= 0, "%s", path);
            calls += n > 0 ? n : 0;
        }
        if (dir) {
            closedir(dir);
        }
    }
    /* the scan saw the calls it is meant to guard (83 when this test was written) */
    CHECK_MSG(calls > 50, "only %d log calls found", calls);
    check_test_end();
}

int main(void)
{
    test_logfmt();
    test_logfmt_escaping();
    test_json();
    test_json_quoted_value_with_spaces();
    test_json_bytes();
    test_levels_and_parse();
    test_libevent_routed();
    test_random_fields();
    test_config();
    test_no_secrets_logged();
    return check_done();
}
