/*
 * core/log.c — logfmt lines on stderr.
 *
 * The role name and level are the one piece of process-wide state outside a role's struct: every
 * module logs, and threading a logger through each call would add noise for no gain.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/log.h"

static struct {
    char role[16];
    enum log_level min_level;
} log_state = {"sluice", LOG_INFO};

static const char *const level_names[] = {"debug", "info", "warn", "error"};

void log_setup(const char *role, enum log_level min_level)
{
    snprintf(log_state.role, sizeof(log_state.role), "%s", role);
    log_state.min_level = min_level;
}

int log_level_parse(const char *s)
{
    for (int i = 0; i < (int)(sizeof(level_names) / sizeof(level_names[0])); i++) {
        if (strcmp(s, level_names[i]) == 0) {
            return i;
        }
    }
    return -1;
}

void log_msg(enum log_level level, const char *msg, const char *fields_fmt, ...)
{
    char line[1024];
    char stamp[32];
    struct timespec ts;
    struct tm tm;
    int n;

    if (level < log_state.min_level) {
        return;
    }
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s role=%s msg=\"%s\"", stamp,
                 ts.tv_nsec / 1000000, level_names[level], log_state.role, msg);
    if (fields_fmt != NULL && n > 0 && (size_t)n < sizeof(line) - 2) {
        va_list ap;
        line[n++] = ' ';
        va_start(ap, fields_fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n, fields_fmt, ap);
        va_end(ap);
    }
    fprintf(stderr, "%s\n", line);
}
