/*
 * tests/unit/check.h — the one CHECK family every unit test (and tests/lua) uses.
 *
 * Each CHECK_* counts one assertion; a failed one prints "FAIL file:line: what" on stderr and
 * the test goes on, except CHECK_OR_OUT, which then jumps to the function's `out:` label (its
 * cleanup) because the steps after it depend on it. check_done() prints "N passed, N failed" and
 * gives the exit status: 0 only when something passed and nothing failed.
 *
 * A file of named tests brackets each with check_test_begin / check_test_end, which print
 * "ok <name>" or "FAIL <name>" on stdout after the assertion lines.
 */
#ifndef SLUICE_TEST_CHECK_H
#define SLUICE_TEST_CHECK_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static int check_passed, check_failed;
static const char *check_test_name;
static int check_test_failed_before;

/* Counts one assertion: a pass, or a failure reported as "FAIL file:line: what". */
static inline bool check_count(bool ok, const char *file, int line, const char *what)
{
    if (ok) {
        check_passed++;
    } else {
        check_failed++;
        fflush(stdout); /* the report lines before it stay before it */
        fprintf(stderr, "FAIL %s:%d: %s\n", file, line, what);
    }
    return ok;
}

/* The details under a failed assertion, indented, printf-style. */
static inline void check_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline void check_note(const char *fmt, ...)
{
    va_list ap;

    fputs("    ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

#define CHECK(cond) check_count((cond) ? true : false, __FILE__, __LINE__, #cond)

/* CHECK with details, printf-style, printed under a failure. */
#define CHECK_MSG(cond, ...)                                                                       \
    do {                                                                                           \
        if (!check_count((cond) ? true : false, __FILE__, __LINE__, #cond)) {                      \
            check_note(__VA_ARGS__);                                                               \
        }                                                                                          \
    } while (0)

/* CHECK_MSG that ends the test on failure: jumps to the enclosing function's `out:` label. */
#define CHECK_OR_OUT(cond, ...)                                                                    \
    do {                                                                                           \
        if (!check_count((cond) ? true : false, __FILE__, __LINE__, #cond)) {                      \
            check_note(__VA_ARGS__);                                                               \
            goto out;                                                                              \
        }                                                                                          \
    } while (0)

/* got equals want as strings; want NULL: got must be NULL. */
#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        bool same_ = (g_ == NULL || w_ == NULL) ? g_ == w_ : strcmp(g_, w_) == 0;                  \
        if (!check_count(same_, __FILE__, __LINE__, #got " == " #want)) {                          \
            check_note("%s is \"%s\", want \"%s\"", #got, g_ ? g_ : "(null)", w_ ? w_ : "(null)"); \
        }                                                                                          \
    } while (0)

/* got equals want as integers (any integer or enum type, compared as int64_t). */
#define CHECK_I64(got, want)                                                                       \
    do {                                                                                           \
        int64_t g_ = (int64_t)(got), w_ = (int64_t)(want);                                         \
        if (!check_count(g_ == w_, __FILE__, __LINE__, #got " == " #want)) {                       \
            check_note("%s is %" PRId64 ", want %" PRId64, #got, g_, w_);                          \
        }                                                                                          \
    } while (0)

/* Starts the named test (name borrowed; a string literal). */
static inline void check_test_begin(const char *name)
{
    check_test_name = name;
    check_test_failed_before = check_failed;
}

/* Ends the test check_test_begin started: "ok <name>", or "FAIL <name>" when a CHECK failed. */
static inline void check_test_end(void)
{
    bool ok = check_failed == check_test_failed_before;

    fflush(stderr);
    printf("%s %s\n", ok ? "ok" : "FAIL", check_test_name);
    fflush(stdout);
}

static inline int check_done(void)
{
    printf("%d passed, %d failed\n", check_passed, check_failed);
    return (check_failed == 0 && check_passed > 0) ? 0 : 1;
}

#endif
