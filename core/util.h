/*
 * core/util.h — small helpers every role needs: clocks, random ids, hashing, JSON bounds.
 */
#ifndef SLUICE_CORE_UTIL_H
#define SLUICE_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Wall clock in Unix milliseconds (what is stored in Redis and shown to clients). */
int64_t util_now_ms(void);

/* Monotonic milliseconds (for timeouts and latencies; never stored). */
int64_t util_mono_ms(void);

/* Monotonic microseconds (for latencies finer than a millisecond). */
int64_t util_mono_us(void);

#define UTIL_ID_RANDOM_CHARS 26

/*
 * Writes prefix followed by 26 random base32 characters ([a-z2-7], 130 bits from RAND_bytes) and a
 * NUL into out (size at least strlen(prefix) + 27). Returns 0, or -1 if the CSPRNG failed.
 */
int util_random_id(const char *prefix, char *out, size_t out_size);

/*
 * Like util_random_id, but the 26 characters come from SHA-256 of seed: the same seed always
 * gives the same id (a batch line's task). Returns 0, or -1 when out is too small.
 */
int util_derived_id(const char *prefix, const char *seed, char *out, size_t out_size);

/* True when s is prefix followed by exactly 26 characters of [a-z2-7]. */
bool util_id_valid(const char *prefix, const char *s);

/* SHA-256 of data as 64 lower-case hex characters plus NUL in out[65]. */
void util_sha256_hex(const void *data, size_t len, char out[65]);

/* Raw SHA-256 (32 bytes). */
void util_sha256(const void *data, size_t len, unsigned char out[32]);

/*
 * The nesting depth of the JSON text in buf (brackets outside strings), stopping early once it
 * passes max_depth. Used before cJSON parses client input, so deep input is refused cheaply and
 * the parser's recursion stays bounded.
 */
int util_json_depth(const char *buf, size_t len, int max_depth);

/* Writes all len bytes to fd, retrying short writes and EINTR. Returns 0, or -1 (errno set). */
int util_write_all(int fd, const void *buf, size_t len);

/*
 * v in decimal, and a + b, into out (size bytes, NUL-terminated): the hot paths' formatting
 * without printf's machinery (snprintf was ~9 % of an accepted task's instructions). Both
 * return 0, or -1 when out is too small (out then holds "").
 */
int util_fmt_i64(char *out, size_t size, int64_t v);
int util_join(char *out, size_t size, const char *a, const char *b);

/* A uniformly random double in [0, 1) for jitter (not for secrets). */
double util_rand_unit(void);

#endif
