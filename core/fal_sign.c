/*
 * core/fal_sign.c — fal's ED25519 webhook signatures (core/fal_sign.h).
 */
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "core/fal_sign.h"

/* The longest timestamp text: 19 digits hold any int64 time. */
#define TS_DIGITS_MAX 19

const char *fal_sign_strerror(int code)
{
    static const struct {
        int code;
        const char *text;
    } texts[] = {
        {FAL_SIGN_OK, "ok"},
        {FAL_SIGN_EKEY, "a public key must be base64url (or base64) of 32 bytes"},
        {FAL_SIGN_EINVAL, "a webhook header is missing or too long"},
        {FAL_SIGN_ETIMESTAMP, "the webhook timestamp is malformed or too far from now"},
        {FAL_SIGN_EHEX, "the webhook signature is not 128 hex digits"},
        {FAL_SIGN_EMISMATCH, "no configured public key verifies the webhook signature"},
        {FAL_SIGN_ECRYPTO, "OpenSSL failed"},
    };
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
        if (texts[i].code == code) {
            return texts[i].text;
        }
    }
    return "unknown error";
}

/*
 * 32 bytes are 43 base64 characters and one '=' of padding. The URL alphabet is mapped onto the
 * standard one so EVP_DecodeBlock (standard alphabet, padded input only) can decode both; the
 * spare bits of the last character must be zero, so each key has one spelling.
 */
int fal_sign_key_parse(const char *text, struct fal_sign_key *key)
{
    char b64[45];
    unsigned char raw[34];
    size_t n = text ? strlen(text) : 0;
    int rc = FAL_SIGN_EKEY;

    if (key == NULL) {
        return FAL_SIGN_EKEY;
    }
    memset(key, 0, sizeof(*key));
    if (n == 44 && text[43] == '=') {
        n = 43;
    }
    if (n != 43) {
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char c = text[i];
        b64[i] = c == '-' ? '+' : c == '_' ? '/' : c;
        if (b64[i] == '=') {
            goto out;
        }
    }
    b64[43] = '=';
    b64[44] = '\0';
    if (EVP_DecodeBlock(raw, (const unsigned char *)b64, 44) != 33 || raw[32] != 0) {
        goto out;
    }
    memcpy(key->bytes, raw, FAL_SIGN_KEY_LEN);
    rc = FAL_SIGN_OK;
out:
    OPENSSL_cleanse(raw, sizeof(raw));
    return rc;
}

/* True when s is 1..FAL_SIGN_FIELD_MAX bytes without a newline (which would shift the lines). */
static int field_ok(const char *s)
{
    size_t n = s ? strnlen(s, FAL_SIGN_FIELD_MAX + 1) : 0;

    return n > 0 && n <= FAL_SIGN_FIELD_MAX && memchr(s, '\n', n) == NULL;
}

int fal_sign_message(const char *request_id, const char *user_id, const char *timestamp,
                     const char *body, size_t len, char *out, size_t out_size)
{
    static const char hexdig[] = "0123456789abcdef";
    unsigned char digest[32];
    unsigned int digest_len = 0;
    char hex[65];
    int n, rc = FAL_SIGN_EINVAL;

    if (out != NULL && out_size > 0) {
        out[0] = '\0';
    }
    if (out == NULL || !field_ok(request_id) || !field_ok(user_id) || !field_ok(timestamp) ||
        (body == NULL && len > 0)) {
        return rc;
    }
    if (EVP_Digest(len > 0 ? body : "", len, digest, &digest_len, EVP_sha256(), NULL) != 1 ||
        digest_len != sizeof(digest)) {
        return FAL_SIGN_ECRYPTO;
    }
    for (size_t i = 0; i < sizeof(digest); i++) {
        hex[2 * i] = hexdig[digest[i] >> 4];
        hex[2 * i + 1] = hexdig[digest[i] & 15];
    }
    hex[64] = '\0';
    n = snprintf(out, out_size, "%s\n%s\n%s\n%s", request_id, user_id, timestamp, hex);
    if (n < 0 || (size_t)n >= out_size) {
        if (out_size > 0) {
            out[0] = '\0';
        }
        return FAL_SIGN_EINVAL;
    }
    return n;
}

/* Decimal digits only (no sign, no spaces), at most TS_DIGITS_MAX of them. 0 or -1. */
static int ts_parse(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    int64_t v = 0;

    if (n == 0 || n > TS_DIGITS_MAX) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10) {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int hex_val(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* 128 hex digits into FAL_SIGN_SIG_LEN bytes. 0 or -1. */
static int sig_parse(const char *hex, unsigned char *sig)
{
    if (strnlen(hex, 2 * FAL_SIGN_SIG_LEN + 1) != 2 * FAL_SIGN_SIG_LEN) {
        return -1;
    }
    for (size_t i = 0; i < FAL_SIGN_SIG_LEN; i++) {
        int hi = hex_val(hex[2 * i]), lo = hex_val(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        sig[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}

/* 1 when sig is key's ED25519 signature of msg, 0 when not, -1 when OpenSSL failed. ED25519
 * hashes inside the signature scheme, so the digest is NULL and the one-shot EVP_DigestVerify is
 * the only form OpenSSL offers. */
static int verify_one(const struct fal_sign_key *key, const unsigned char *sig, const char *msg,
                      size_t msg_len)
{
    EVP_PKEY *pk =
        EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, key->bytes, FAL_SIGN_KEY_LEN);
    EVP_MD_CTX *ctx = pk ? EVP_MD_CTX_new() : NULL;
    int rc = -1;

    if (ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pk) == 1) {
        rc = EVP_DigestVerify(ctx, sig, FAL_SIGN_SIG_LEN, (const unsigned char *)msg, msg_len) == 1;
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rc;
}

int fal_sign_verify(const struct fal_sign_key *keys, size_t n, const char *request_id,
                    const char *user_id, const char *timestamp, const char *signature_hex,
                    const char *body, size_t len, int64_t now_s, int64_t tolerance_s)
{
    char msg[3 * FAL_SIGN_FIELD_MAX + 68];
    unsigned char sig[FAL_SIGN_SIG_LEN];
    int64_t ts;
    uint64_t skew;
    int msg_len, rc = FAL_SIGN_EINVAL;

    if (keys == NULL || n == 0 || !field_ok(request_id) || !field_ok(user_id) ||
        timestamp == NULL || signature_hex == NULL || tolerance_s < 0 ||
        (body == NULL && len > 0)) {
        return rc;
    }
    if (ts_parse(timestamp, &ts) != 0) {
        return FAL_SIGN_ETIMESTAMP;
    }
    /* |ts - now_s| without overflow: the true difference always fits in 64 unsigned bits. */
    skew = ts > now_s ? (uint64_t)ts - (uint64_t)now_s : (uint64_t)now_s - (uint64_t)ts;
    if (skew > (uint64_t)tolerance_s) {
        return FAL_SIGN_ETIMESTAMP;
    }
    if (sig_parse(signature_hex, sig) != 0) {
        return FAL_SIGN_EHEX;
    }
    msg_len = fal_sign_message(request_id, user_id, timestamp, body, len, msg, sizeof(msg));
    if (msg_len < 0) {
        return msg_len;
    }
    /* a key OpenSSL fails on does not stop the others: ECRYPTO only when none could be tried */
    rc = FAL_SIGN_ECRYPTO;
    for (size_t i = 0; i < n; i++) {
        int v = verify_one(&keys[i], sig, msg, (size_t)msg_len);
        if (v > 0) {
            return FAL_SIGN_OK;
        }
        if (v == 0) {
            rc = FAL_SIGN_EMISMATCH;
        }
    }
    return rc;
}
