/*
 * core/log.c — logfmt or JSON lines on stderr.
 *
 * The role name, level and format are the one piece of process-wide state outside a role's
 * struct: every module logs, and threading a logger through each call would add noise for no
 * gain. Callers keep writing their fields in logfmt; each line's fields are parsed back into
 * key/value pairs and written again in the chosen format, so a value with a newline or a quote
 * cannot split a line or forge a field in either format.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include "core/log.h"

#define LOG_FIELDS_MAX 2048 /* the caller's formatted fields; longer ones are cut */
#define LOG_MSG_MAX 512     /* msg bytes written; longer ones are cut */
/* One line: every byte of msg and fields may grow to 6 (\u00XX), plus the fixed parts. */
#define LOG_LINE_MAX (6 * (LOG_FIELDS_MAX + LOG_MSG_MAX) + 256)
#define LOG_TAIL 4 /* room always kept for the closing `"}` and the newline */

static struct {
    char role[16];
    enum log_level min_level;
    enum log_format format;
} log_state = {"sluice", LOG_INFO, LOG_FORMAT_LOGFMT};

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"logfmt", "json"};

/* The line being written: appends past the end (less LOG_TAIL) are dropped and set cut. */
struct log_line {
    char buf[LOG_LINE_MAX];
    size_t len;
    bool cut;
};

/* libevent's own messages (an accept error, a bad fd) as lines of ours, in the chosen format,
 * instead of its "[warn] ..." lines on stderr, which a JSON log reader could not parse. */
static void on_libevent_log(int severity, const char *msg)
{
    enum log_level level = severity <= EVENT_LOG_DEBUG  ? LOG_DEBUG
                           : severity == EVENT_LOG_MSG  ? LOG_INFO
                           : severity == EVENT_LOG_WARN ? LOG_WARN
                                                        : LOG_ERROR;
    log_msg(level, msg, "source=libevent");
}

void log_setup(const char *role, enum log_level min_level)
{
    snprintf(log_state.role, sizeof(log_state.role), "%s", role);
    log_state.min_level = min_level;
    event_set_log_callback(on_libevent_log);
}

void log_set_format(enum log_format format)
{
    log_state.format = format;
}

/* The index of s in names[0..n), or -1. */
static int name_index(const char *const *names, int n, const char *s)
{
    for (int i = 0; s != NULL && i < n; i++) {
        if (strcmp(s, names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

int log_level_parse(const char *s)
{
    return name_index(level_names, (int)(sizeof(level_names) / sizeof(level_names[0])), s);
}

int log_format_parse(const char *s)
{
    return name_index(format_names, (int)(sizeof(format_names) / sizeof(format_names[0])), s);
}

static void put(struct log_line *l, const char *s, size_t n)
{
    if (l->cut || l->len + n + LOG_TAIL > sizeof(l->buf)) {
        l->cut = true;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct log_line *l, const char *s)
{
    put(l, s, strlen(s));
}

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;

    if (len == 0 || len > n) {
        return 0;
    }
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    /* overlong 3- and 4-byte forms, surrogates, and code points past U+10FFFF */
    if ((s[0] == 0xe0 && s[1] < 0xa0) || (s[0] == 0xed && s[1] >= 0xa0) ||
        (s[0] == 0xf0 && s[1] < 0x90) || (s[0] == 0xf4 && s[1] >= 0x90)) {
        return 0;
    }
    return len;
}

/*
 * s[0..n) as the inside of a double-quoted string, escaped the same way for JSON and logfmt:
 * `"` and `\` with a backslash, \n \r \t, other control bytes as \u00XX, bytes that are not
 * UTF-8 as \ufffd.
 */
static void put_escaped(struct log_line *l, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    char esc[8];

    for (size_t i = 0; i < n; i++) {
        unsigned char c = u[i];
        size_t seq;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            put(l, esc, 2);
        } else if (c == '\n' || c == '\r' || c == '\t') {
            put(l, c == '\n' ? "\\n" : c == '\r' ? "\\r" : "\\t", 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof(esc), "\\u%04x", c);
            put(l, esc, 6);
        } else if (c < 0x80) {
            put(l, s + i, 1);
        } else if ((seq = utf8_len(u + i, n - i)) > 0) {
            put(l, s + i, seq);
            i += seq - 1;
        } else {
            put(l, "\\ufffd", 6);
        }
    }
}

static void put_quoted(struct log_line *l, const char *s, size_t n)
{
    put(l, "\"", 1);
    put_escaped(l, s, n);
    put(l, "\"", 1);
}

/* True when s[0..n) is a number as JSON writes one (no leading zeros, no inf/nan, no '+'). */
static bool is_json_number(const char *s, size_t n)
{
    size_t i = 0, digits;

    if (i < n && s[i] == '-') {
        i++;
    }
    if (i < n && s[i] == '0') {
        i++;
    } else {
        for (digits = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            digits++;
        }
        if (digits == 0) {
            return false;
        }
    }
    if (i < n && s[i] == '.') {
        for (digits = 0, i++; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            digits++;
        }
        if (digits == 0) {
            return false;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-')) {
            i++;
        }
        for (digits = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
            digits++;
        }
        if (digits == 0) {
            return false;
        }
    }
    return i == n && n > 0;
}

/* True when an unquoted logfmt value must be quoted to read back as itself. */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0) {
        return true;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
            return true;
        }
    }
    return false;
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
}

/* True when p (after a value's candidate end) is the end, or spaces then the end or `key=`. */
static bool at_field_end(const char *p)
{
    while (*p == ' ') {
        p++;
    }
    if (*p == '\0') {
        return true;
    }
    while (is_key_char(*p)) {
        p++;
    }
    return *p == '=';
}

/*
 * The quoted value that starts after the opening quote at p, unescaped into val (at least
 * strlen(p) + 1 bytes): it ends at the first `"` followed by the end or by ` key=` (see log.h),
 * or at the end of the text when no quote closes it. Returns where the next field starts.
 */
static const char *read_quoted(const char *p, char *val, size_t *val_len)
{
    size_t n = 0;

    while (*p != '\0') {
        if (*p == '\\' && p[1] != '\0' && strchr("\"\\nrt", p[1]) != NULL) {
            val[n++] = p[1] == 'n' ? '\n' : p[1] == 'r' ? '\r' : p[1] == 't' ? '\t' : p[1];
            p += 2;
        } else if (*p == '"' && at_field_end(p + 1)) {
            p++;
            break;
        } else {
            val[n++] = *p++;
        }
    }
    *val_len = n;
    return p;
}

/* One field in the line's format; val NULL: a key without a value. */
static void put_field(struct log_line *l, const char *key, size_t key_len, const char *val,
                      size_t val_len, bool quoted)
{
    if (log_state.format == LOG_FORMAT_JSON) {
        put(l, ",", 1);
        put_quoted(l, key, key_len);
        put(l, ":", 1);
        if (val == NULL) {
            put_str(l, "true");
        } else if (!quoted && is_json_number(val, val_len)) {
            put(l, val, val_len);
        } else {
            put_quoted(l, val, val_len);
        }
        return;
    }
    put(l, " ", 1);
    put_escaped(l, key, key_len);
    if (val == NULL) {
        return;
    }
    put(l, "=", 1);
    if (quoted || needs_quotes(val, val_len)) {
        put_quoted(l, val, val_len);
    } else {
        put(l, val, val_len);
    }
}

/*
 * Each `key=value` of fields (see log.h for the grammar) into the line. A field that does not fit
 * whole is left out, with every field after it, so the line stays well formed; returns true then.
 */
static bool put_fields(struct log_line *l, const char *fields)
{
    char val[LOG_FIELDS_MAX];
    const char *p = fields;

    while (*p != '\0') {
        const char *key, *v = NULL;
        size_t key_len, val_len = 0, mark = l->len;
        bool quoted = false;

        while (*p == ' ') {
            p++;
        }
        key = p;
        while (*p != '\0' && *p != '=' && *p != ' ') {
            p++;
        }
        key_len = (size_t)(p - key);
        if (key_len == 0 && *p != '=') {
            break;
        }
        if (*p == '=') {
            p++;
            if (*p == '"') {
                p = read_quoted(p + 1, val, &val_len);
                quoted = true;
            } else {
                /* to the next ` key=`: a caller's unquoted "%s" with spaces stays one value */
                const char *start = p;
                while (*p != '\0' && !(*p == ' ' && at_field_end(p))) {
                    p++;
                }
                val_len = (size_t)(p - start);
                memcpy(val, start, val_len);
            }
            v = val;
        }
        put_field(l, key, key_len, v, val_len, quoted);
        if (l->cut) {
            l->len = mark;
            l->cut = false;
            return true;
        }
    }
    return false;
}

void log_msg(enum log_level level, const char *msg, const char *fields_fmt, ...)
{
    struct log_line line;
    char fields[LOG_FIELDS_MAX];
    char stamp[48];
    struct timespec ts;
    struct tm tm;
    size_t msg_len = strlen(msg);
    bool json = log_state.format == LOG_FORMAT_JSON, truncated = msg_len > LOG_MSG_MAX;

    if (level < log_state.min_level) {
        return;
    }
    fields[0] = '\0';
    if (fields_fmt != NULL) {
        va_list ap;
        int n;
        va_start(ap, fields_fmt);
        n = vsnprintf(fields, sizeof(fields), fields_fmt, ap);
        va_end(ap);
        truncated = truncated || n < 0 || (size_t)n >= sizeof(fields);
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, 24, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(stamp + strlen(stamp), sizeof(stamp) - strlen(stamp), ".%03ldZ", ts.tv_nsec / 1000000);
    line.len = 0;
    line.cut = false;
    put_str(&line, json ? "{\"ts\":\"" : "ts=");
    put_str(&line, stamp);
    put_str(&line, json ? "\",\"level\":\"" : " level=");
    put_str(&line, level_names[level]);
    put_str(&line, json ? "\",\"role\":" : " role=");
    if (json) {
        put_quoted(&line, log_state.role, strlen(log_state.role));
    } else {
        put_escaped(&line, log_state.role, strlen(log_state.role));
    }
    put_str(&line, json ? ",\"msg\":" : " msg=");
    put_quoted(&line, msg, msg_len > LOG_MSG_MAX ? LOG_MSG_MAX : msg_len);
    if (put_fields(&line, fields)) {
        truncated = true;
    }
    if (truncated) {
        size_t mark = line.len;
        put_field(&line, "log_truncated", 13, "1", 1, false);
        if (line.cut) {
            line.len = mark; /* whole or not at all, like every field */
        }
    }
    if (json) {
        line.buf[line.len++] = '}';
    }
    line.buf[line.len++] = '\n';
    fwrite(line.buf, 1, line.len, stderr);
}
