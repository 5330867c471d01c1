/*
 * core/log.h — one line per event on stderr, as logfmt or as JSON.
 *
 * logfmt: `ts=2026-01-01T00:00:00.000Z level=info role=worker msg="..." key=value ...`
 * JSON:   `{"ts":"2026-01-01T00:00:00.000Z","level":"info","role":"worker","msg":"...","key":...}`
 *
 * Callers write their fields once, in logfmt (`"task=%s status=%d error=\"%s\""`); log.c parses
 * the formatted text into fields and writes them in the chosen format, escaped, one line each.
 * Every line that concerns a task carries `task=<id>`. Secrets are never passed here: callers log
 * ids, counts and statuses, never keys or request bodies.
 */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_format { LOG_FORMAT_LOGFMT = 0, LOG_FORMAT_JSON };

/* Sets the role name (borrowed, copied; cut to 15 bytes) printed on every line and the lowest
 * level printed, and routes libevent's own messages into these lines (msg: libevent's text,
 * source=libevent). Call at start; the format stays what log_set_format last set (logfmt). */
void log_setup(const char *role, enum log_level min_level);

/* Sets the line format of every later line. */
void log_set_format(enum log_format format);

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *s);

/* Parses "logfmt", "json"; returns -1 for anything else. */
int log_format_parse(const char *s);

/*
 * Prints one line at level: msg (a constant sentence), then the printf-formatted fields
 * (fields_fmt may be NULL). The fields are `key=value` pairs separated by spaces; a value with
 * spaces is written in double quotes (`error="%s"`). A quoted value ends at the first `"` that is
 * followed by the end or by ` key=`, so a quote inside it rarely needs escaping; `\"`, `\\`, `\n`,
 * `\r` and `\t` inside one are read as escapes. An unquoted value also runs to the next ` key=`
 * (words without `=` belong to it). In JSON an unquoted value that is a JSON number becomes a
 * number, everything else a string; a leading word without `=` becomes a key whose value is `true`.
 * The formatted fields are cut at 2 KiB and msg at 512 bytes (then `log_truncated=1` is added);
 * bytes that are not UTF-8 are written as U+FFFD. The line reaches stderr in one write.
 */
void log_msg(enum log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_msg(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_msg(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_msg(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(LOG_ERROR, msg, __VA_ARGS__)

#endif
