/*
 * core/webhook_sign.c — Standard Webhooks signing on OpenSSL.
 *
 * The signed content is msg_id "." timestamp "." body. It is fed to HMAC in pieces (EVP_MAC), so
 * a large body is never copied just to be signed. One MAC context serves every key of a call:
 * EVP_MAC_init with a new key starts it afresh.
 */
#include "core/webhook_sign.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "core/util.h"

#define HMAC_SHA256_LEN 32
/* Base64 of 32 bytes: 44 characters (one '=' of padding). */
#define SIG_B64_LEN 44
#define SIG_PREFIX "v1,"
#define SIG_PREFIX_LEN 3
/* Longest base64 text of a WEBHOOK_KEY_MAX-byte key. */
#define SECRET_B64_MAX (((WEBHOOK_KEY_MAX + 2) / 3) * 4)
/* Decimal text of a non-negative int64_t, plus NUL. */
#define TS_TEXT_SIZE 21

static const struct {
    int code;
    const char *msg;
} code_msgs[] = {
    {WEBHOOK_OK, "ok"},
    {WEBHOOK_ESECRET, "a webhook secret must be \"whsec_\" followed by base64"},
    {WEBHOOK_EKEYSIZE, "a webhook secret must hold 24 to 64 bytes"},
    {WEBHOOK_EINVAL, "invalid argument"},
    {WEBHOOK_ESPACE, "output buffer too small"},
    {WEBHOOK_ECRYPTO, "OpenSSL failed"},
    {WEBHOOK_ETIMESTAMP, "timestamp malformed or outside the tolerance"},
    {WEBHOOK_EMISMATCH, "no matching signature"},
};

const char *webhook_strerror(int code)
{
    for (size_t i = 0; i < sizeof(code_msgs) / sizeof(code_msgs[0]); i++) {
        if (code_msgs[i].code == code) {
            return code_msgs[i].msg;
        }
    }
    return "unknown error";
}

static bool is_b64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/* The 6-bit value of a base64 character (is_b64_char holds). */
static unsigned b64_value(char c)
{
    if (c >= 'A' && c <= 'Z') {
        return (unsigned)(c - 'A');
    }
    if (c >= 'a' && c <= 'z') {
        return (unsigned)(c - 'a') + 26;
    }
    if (c >= '0' && c <= '9') {
        return (unsigned)(c - '0') + 52;
    }
    return c == '+' ? 62 : 63;
}

/*
 * Canonical base64: whole quads, the alphabet, at most two '=' at the end only, and zero bits
 * where the padding cuts the last character (so each key has exactly one spelling). EVP_DecodeBlock
 * alone accepts whitespace and stray padding. Returns the decoded length, or -1.
 */
static int b64_check(const char *s, size_t n)
{
    size_t pad = 0;

    if (n == 0 || n % 4 != 0) {
        return -1;
    }
    while (pad < 2 && s[n - 1 - pad] == '=') {
        pad++;
    }
    for (size_t i = 0; i < n - pad; i++) {
        if (!is_b64_char(s[i])) {
            return -1;
        }
    }
    if (pad > 0 && (b64_value(s[n - 1 - pad]) & (pad == 2 ? 0x0f : 0x03)) != 0) {
        return -1;
    }
    return (int)(n / 4 * 3 - pad);
}

int webhook_key_parse(const char *secret, struct webhook_key *key)
{
    const size_t plen = sizeof(WEBHOOK_SECRET_PREFIX) - 1;
    unsigned char raw[SECRET_B64_MAX / 4 * 3];
    const char *b64;
    size_t n;
    int len, rc = WEBHOOK_ESECRET;

    memset(key, 0, sizeof(*key));
    if (secret == NULL || strncmp(secret, WEBHOOK_SECRET_PREFIX, plen) != 0) {
        goto out;
    }
    b64 = secret + plen;
    n = strnlen(b64, SECRET_B64_MAX + 4);
    if (n > SECRET_B64_MAX) {
        rc = b64_check(b64, strlen(b64)) < 0 ? WEBHOOK_ESECRET : WEBHOOK_EKEYSIZE;
        goto out;
    }
    len = b64_check(b64, n);
    if (len < 0) {
        goto out;
    }
    if (len < WEBHOOK_KEY_MIN || len > WEBHOOK_KEY_MAX) {
        rc = WEBHOOK_EKEYSIZE;
        goto out;
    }
    if (EVP_DecodeBlock(raw, (const unsigned char *)b64, (int)n) < len) {
        goto out;
    }
    memcpy(key->bytes, raw, (size_t)len);
    key->len = (size_t)len;
    rc = WEBHOOK_OK;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

void webhook_key_clear(struct webhook_key *key)
{
    if (key != NULL) {
        OPENSSL_cleanse(key, sizeof(*key));
    }
}

/* True when msg_id may be signed (see webhook_sign). */
static bool msg_id_ok(const char *msg_id)
{
    size_t n;

    if (msg_id == NULL) {
        return false;
    }
    n = strnlen(msg_id, WEBHOOK_ID_MAX + 1);
    if (n == 0 || n > WEBHOOK_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (msg_id[i] < '!' || msg_id[i] > '~' || msg_id[i] == '.') {
            return false;
        }
    }
    return true;
}

/*
 * The base64 HMAC-SHA256 of msg_id.ts.body under key, as SIG_B64_LEN characters and a NUL in
 * b64. ctx is a fresh or used HMAC context. Returns 0 or -1.
 */
static int sign_one(EVP_MAC_CTX *ctx, const struct webhook_key *key, const char *msg_id,
                    const char *ts, const char *body, size_t len, char b64[SIG_B64_LEN + 1])
{
    char digest_name[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest_name, 0),
        OSSL_PARAM_construct_end(),
    };
    unsigned char md[HMAC_SHA256_LEN];
    size_t md_len = 0;
    int rc = -1;

    if (key->len == 0 || key->len > WEBHOOK_KEY_MAX ||
        EVP_MAC_init(ctx, key->bytes, key->len, params) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)msg_id, strlen(msg_id)) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)ts, strlen(ts)) != 1 ||
        EVP_MAC_update(ctx, (const unsigned char *)".", 1) != 1 ||
        (len > 0 && EVP_MAC_update(ctx, (const unsigned char *)body, len) != 1) ||
        EVP_MAC_final(ctx, md, &md_len, sizeof(md)) != 1 || md_len != sizeof(md)) {
        goto out;
    }
    if (EVP_EncodeBlock((unsigned char *)b64, md, (int)sizeof(md)) != SIG_B64_LEN) {
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(md, sizeof(md));
    return rc;
}

/* A new HMAC context, or NULL. */
static EVP_MAC_CTX *hmac_ctx_new(void)
{
    EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;

    EVP_MAC_free(mac); /* the context holds its own reference */
    return ctx;
}

int webhook_sign(const struct webhook_key *keys, size_t n, const char *msg_id, int64_t timestamp_s,
                 const char *body, size_t len, char *out, size_t out_size)
{
    char ts[TS_TEXT_SIZE];
    EVP_MAC_CTX *ctx = NULL;
    size_t pos = 0;
    int rc = WEBHOOK_EINVAL;

    if (out != NULL && out_size > 0) {
        out[0] = '\0';
    }
    if (keys == NULL || n == 0 || out == NULL || !msg_id_ok(msg_id) || timestamp_s < 0 ||
        (body == NULL && len > 0)) {
        goto out;
    }
    if (n > SIZE_MAX / 48 || out_size < WEBHOOK_SIGNATURE_SIZE(n)) {
        rc = WEBHOOK_ESPACE;
        goto out;
    }
    snprintf(ts, sizeof(ts), "%" PRId64, timestamp_s);
    ctx = hmac_ctx_new();
    rc = WEBHOOK_ECRYPTO;
    if (ctx == NULL) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            out[pos++] = ' ';
        }
        memcpy(out + pos, SIG_PREFIX, SIG_PREFIX_LEN);
        pos += SIG_PREFIX_LEN;
        if (sign_one(ctx, &keys[i], msg_id, ts, body, len, out + pos) != 0) {
            out[0] = '\0';
            goto out;
        }
        pos += SIG_B64_LEN;
    }
    out[pos] = '\0';
    rc = WEBHOOK_OK;
out:
    EVP_MAC_CTX_free(ctx);
    return rc;
}

/*
 * The webhook-timestamp text as seconds: 1..19 decimal digits, no sign, no leading zero (so the
 * text is exactly what the sender signed), not past INT64_MAX. Returns 0 or -1.
 */
static int ts_parse(const char *text, int64_t *out)
{
    size_t n = strnlen(text, TS_TEXT_SIZE);
    uint64_t v = 0;

    if (n == 0 || n > 19 || (n > 1 && text[0] == '0')) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (text[i] < '0' || text[i] > '9') {
            return -1;
        }
        v = v * 10 + (uint64_t)(text[i] - '0');
    }
    if (v > INT64_MAX) {
        return -1;
    }
    *out = (int64_t)v;
    return 0;
}

int webhook_verify(const struct webhook_key *key, const char *msg_id, const char *timestamp,
                   const char *body, size_t len, const char *signature, int64_t now_s,
                   int64_t tolerance_s)
{
    char want[SIG_B64_LEN + 1];
    EVP_MAC_CTX *ctx = NULL;
    int64_t ts;
    uint64_t skew;
    int rc = WEBHOOK_EINVAL;

    if (key == NULL || !msg_id_ok(msg_id) || timestamp == NULL || signature == NULL ||
        tolerance_s < 0 || (body == NULL && len > 0)) {
        goto out;
    }
    rc = WEBHOOK_ETIMESTAMP;
    if (ts_parse(timestamp, &ts) != 0) {
        goto out;
    }
    /* |ts - now_s| without overflow: the true difference always fits in 64 unsigned bits. */
    skew = ts > now_s ? (uint64_t)ts - (uint64_t)now_s : (uint64_t)now_s - (uint64_t)ts;
    if (skew > (uint64_t)tolerance_s) {
        goto out;
    }
    ctx = hmac_ctx_new();
    rc = WEBHOOK_ECRYPTO;
    if (ctx == NULL || sign_one(ctx, key, msg_id, timestamp, body, len, want) != 0) {
        goto out;
    }
    rc = WEBHOOK_EMISMATCH;
    for (const char *p = signature; *p != '\0';) {
        size_t n = strcspn(p, " ");

        if (n == SIG_PREFIX_LEN + SIG_B64_LEN && memcmp(p, SIG_PREFIX, SIG_PREFIX_LEN) == 0 &&
            CRYPTO_memcmp(p + SIG_PREFIX_LEN, want, SIG_B64_LEN) == 0) {
            rc = WEBHOOK_OK;
            break;
        }
        p += n;
        p += *p == ' ';
    }
out:
    OPENSSL_cleanse(want, sizeof(want));
    EVP_MAC_CTX_free(ctx);
    return rc;
}

int webhook_new_id(char *out, size_t out_size)
{
    if (out == NULL || out_size < WEBHOOK_ID_SIZE) {
        return WEBHOOK_ESPACE;
    }
    return util_random_id("msg_", out, out_size) == 0 ? WEBHOOK_OK : WEBHOOK_ECRYPTO;
}

char *webhook_body(const char *event, cJSON *data)
{
    cJSON *env = cJSON_CreateObject();
    struct timespec ts;
    struct tm tm;
    char stamp[32];
    char *body;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (env == NULL) {
        cJSON_Delete(data);
        return NULL;
    }
    cJSON_AddStringToObject(env, "type", event);
    cJSON_AddStringToObject(env, "timestamp", stamp);
    cJSON_AddItemToObject(env, "data", data);
    body = cJSON_PrintUnformatted(env);
    cJSON_Delete(env);
    return body;
}
