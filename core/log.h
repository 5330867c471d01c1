/*
 * core/log.h — one logfmt line per event on stderr.
 *
 * `ts=... level=info role=worker msg="..." key=value ...`. Secrets are never passed here: callers
 * log ids, counts and statuses, never keys or request bodies.
 */
#ifndef SLUICE_CORE_LOG_H
#define SLUICE_CORE_LOG_H

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Sets the role name printed on every line and the lowest level printed. Call once at start. */
void log_setup(const char *role, enum log_level min_level);

/* Parses "debug", "info", "warn", "error"; returns -1 for anything else. */
int log_level_parse(const char *s);

/*
 * Prints one line: msg is quoted, then the printf-formatted fields (already in key=value form,
 * space separated; may be NULL).
 */
void log_msg(enum log_level level, const char *msg, const char *fields_fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(msg, ...) log_msg(LOG_DEBUG, msg, __VA_ARGS__)
#define log_info(msg, ...) log_msg(LOG_INFO, msg, __VA_ARGS__)
#define log_warn(msg, ...) log_msg(LOG_WARN, msg, __VA_ARGS__)
#define log_error(msg, ...) log_msg(LOG_ERROR, msg, __VA_ARGS__)

#endif
