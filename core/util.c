/*
 * core/util.c — clocks, ids, hashing and JSON bounds.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "core/util.h"

static const char base32_alphabet[] = "abcdefghijklmnopqrstuvwxyz234567";

int64_t util_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t util_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * Random bytes for ids, drawn from OpenSSL's CSPRNG a page at a time: one RAND_bytes call per
 * id cost more than the rest of the id (a profile of the accept path). Each process has its own
 * pool (one loop per process, no threads); bytes handed out are wiped from it.
 */
static int id_random_bytes(unsigned char *out, size_t n)
{
    static unsigned char pool[4096];
    static size_t left;

    if (n > sizeof(pool)) {
        return RAND_bytes(out, (int)n) == 1 ? 0 : -1;
    }
    if (left < n) {
        if (RAND_bytes(pool, sizeof(pool)) != 1) {
            return -1;
        }
        left = sizeof(pool);
    }
    memcpy(out, pool + sizeof(pool) - left, n);
    memset(pool + sizeof(pool) - left, 0, n);
    left -= n;
    return 0;
}

int util_random_id(const char *prefix, char *out, size_t out_size)
{
    unsigned char raw[UTIL_ID_RANDOM_CHARS];
    size_t plen = strlen(prefix);

    if (out_size < plen + UTIL_ID_RANDOM_CHARS + 1) {
        return -1;
    }
    if (id_random_bytes(raw, sizeof(raw)) < 0) {
        return -1;
    }
    memcpy(out, prefix, plen);
    /* Each character takes 5 bits of its own byte: 26 × 5 = 130 bits of entropy. */
    for (size_t i = 0; i < UTIL_ID_RANDOM_CHARS; i++) {
        out[plen + i] = base32_alphabet[raw[i] & 31];
    }
    out[plen + UTIL_ID_RANDOM_CHARS] = '\0';
    return 0;
}

int util_derived_id(const char *prefix, const char *seed, char *out, size_t out_size)
{
    unsigned char md[32];
    size_t plen = strlen(prefix);

    if (out_size < plen + UTIL_ID_RANDOM_CHARS + 1) {
        return -1;
    }
    util_sha256(seed, strlen(seed), md);
    memcpy(out, prefix, plen);
    for (size_t i = 0; i < UTIL_ID_RANDOM_CHARS; i++) {
        out[plen + i] = base32_alphabet[md[i] & 31];
    }
    out[plen + UTIL_ID_RANDOM_CHARS] = '\0';
    return 0;
}

bool util_id_valid(const char *prefix, const char *s)
{
    size_t plen = strlen(prefix);

    if (strncmp(s, prefix, plen) != 0 || strlen(s) != plen + UTIL_ID_RANDOM_CHARS) {
        return false;
    }
    for (const char *p = s + plen; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '2' && *p <= '7'))) {
            return false;
        }
    }
    return true;
}

void util_sha256(const void *data, size_t len, unsigned char out[32])
{
    /* fetched once: EVP_sha256() makes EVP_Digest look the algorithm up in the providers on every
     * call, which cost more than hashing an API key (this runs once per request); the process is
     * single-threaded */
    static EVP_MD *md;
    unsigned int n = 32;

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    EVP_Digest(data, len, out, &n, md ? md : EVP_sha256(), NULL);
}

void util_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];

    util_sha256(data, len, md);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}

int util_json_depth(const char *buf, size_t len, int max_depth)
{
    int depth = 0;
    int max_seen = 0;
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (in_string) {
            if (c == '\\') {
                i++;
            } else if (c == '"') {
                in_string = false;
            }
            continue;
        }
        if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            depth++;
            if (depth > max_seen) {
                max_seen = depth;
                if (max_seen > max_depth) {
                    return max_seen;
                }
            }
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return max_seen;
}

double util_rand_unit(void)
{
    uint32_t r;
    if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1) {
        r = (uint32_t)rand();
    }
    return (double)r / 4294967296.0;
}

int util_fmt_i64(char *out, size_t size, int64_t v)
{
    char tmp[24];
    size_t n = 0;
    /* the magnitude as unsigned, so INT64_MIN does not overflow */
    uint64_t m = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        tmp[n++] = (char)('0' + m % 10);
        m /= 10;
    } while (m > 0);
    if (v < 0) {
        tmp[n++] = '-';
    }
    if (size < n + 1) {
        if (size > 0) {
            out[0] = '\0';
        }
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    out[n] = '\0';
    return 0;
}

int util_join(char *out, size_t size, const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);

    if (size < la + lb + 1) {
        if (size > 0) {
            out[0] = '\0';
        }
        return -1;
    }
    memcpy(out, a, la);
    memcpy(out + la, b, lb + 1);
    return 0;
}

int util_write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;

    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}
