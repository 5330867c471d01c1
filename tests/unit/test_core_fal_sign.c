/*
 * Unit tests of core/fal_sign: fal's ED25519 webhook signatures. Keys and signatures are made
 * here with OpenSSL (the signer fal runs is not ours to call): a fixed seed signs the message
 * fal_sign_message builds, and verification must take it and refuse every tampering.
 *
 * RFC 8032's test 1 key pair gives the public key's spellings: seed 9d61b19d...7f60, public key
 * d75a9801...511a, whose JWKS `x` is 11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo.
 */
#include <stdlib.h>

#include <openssl/evp.h>

#include "core/fal_sign.h"
#include "check.h"

static const unsigned char rfc_seed[32] = {
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
};
static const unsigned char rfc_public[32] = {
    0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe, 0xd3, 0xc9, 0x64, 0x07, 0x3a,
    0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6, 0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
};
#define RFC_X_URL "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
#define RFC_X_STD "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="

#define REQ_ID "123e4567-e89b-12d3-a456-426614174000"
#define USER_ID "mock-user"
#define TS 1767225600
#define TS_TEXT "1767225600"
#define BODY "{\"status\":\"OK\"}"
#define BODY_SHA256 "3d23d39a30bb7323f8ccfd64c52cf286138fba4f83e78f7edcf66703b7c23aaa"

/* Signs fal's message of (REQ_ID, USER_ID, ts, body) with seed into hex (129 bytes). 0 or -1. */
static int sign_hex(const unsigned char *seed, const char *ts, const char *body, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    char msg[1024];
    unsigned char sig[FAL_SIGN_SIG_LEN];
    size_t sig_len = sizeof(sig);
    EVP_PKEY *pk = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, seed, 32);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int n = fal_sign_message(REQ_ID, USER_ID, ts, body, strlen(body), msg, sizeof(msg));
    int rc = -1;

    if (pk != NULL && ctx != NULL && n > 0 && EVP_DigestSignInit(ctx, NULL, NULL, NULL, pk) == 1 &&
        EVP_DigestSign(ctx, sig, &sig_len, (const unsigned char *)msg, (size_t)n) == 1 &&
        sig_len == sizeof(sig)) {
        for (size_t i = 0; i < sig_len; i++) {
            hex[2 * i] = digits[sig[i] >> 4];
            hex[2 * i + 1] = digits[sig[i] & 15];
        }
        hex[2 * sig_len] = '\0';
        rc = 0;
    }
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pk);
    return rc;
}

static int verify(const struct fal_sign_key *keys, size_t n, const char *ts, const char *sig,
                  const char *body, int64_t now)
{
    return fal_sign_verify(keys, n, REQ_ID, USER_ID, ts, sig, body, strlen(body), now,
                           FAL_SIGN_TOLERANCE_S);
}

static void test_key_parse(void)
{
    struct fal_sign_key k;

    CHECK(fal_sign_key_parse(RFC_X_URL, &k) == 0);
    CHECK(memcmp(k.bytes, rfc_public, 32) == 0);
    CHECK(fal_sign_key_parse(RFC_X_STD, &k) == 0);
    CHECK(memcmp(k.bytes, rfc_public, 32) == 0);
    CHECK(fal_sign_key_parse(RFC_X_URL "=", &k) == 0);
    /* wrong lengths, a bad character, padding inside, spare bits set, NULL */
    CHECK(fal_sign_key_parse("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHUR", &k) == FAL_SIGN_EKEY);
    CHECK(fal_sign_key_parse(RFC_X_URL "A", &k) == FAL_SIGN_EKEY);
    CHECK(fal_sign_key_parse("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcH!Ro", &k) == FAL_SIGN_EKEY);
    CHECK(fal_sign_key_parse("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPc=URo", &k) == FAL_SIGN_EKEY);
    CHECK(fal_sign_key_parse("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURp", &k) == FAL_SIGN_EKEY);
    CHECK(k.bytes[0] == 0 && k.bytes[31] == 0);
    CHECK(fal_sign_key_parse("", &k) == FAL_SIGN_EKEY);
    CHECK(fal_sign_key_parse(NULL, &k) == FAL_SIGN_EKEY);
}

static void test_message(void)
{
    char msg[1024];
    const char *want = REQ_ID "\n" USER_ID "\n" TS_TEXT "\n" BODY_SHA256;
    int n = fal_sign_message(REQ_ID, USER_ID, TS_TEXT, BODY, strlen(BODY), msg, sizeof(msg));

    CHECK(n == (int)strlen(want));
    CHECK_STR(msg, want);
    /* an empty body hashes as "" */
    n = fal_sign_message("r", "u", "1", NULL, 0, msg, sizeof(msg));
    CHECK_STR(msg, "r\nu\n1\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    /* a newline in a field would shift the lines; too small a buffer; a missing field */
    CHECK(fal_sign_message("r\n", "u", "1", "", 0, msg, sizeof(msg)) == FAL_SIGN_EINVAL);
    CHECK(fal_sign_message("r", "u", "1", "", 0, msg, 10) == FAL_SIGN_EINVAL);
    CHECK_STR(msg, "");
    CHECK(fal_sign_message("r", NULL, "1", "", 0, msg, sizeof(msg)) == FAL_SIGN_EINVAL);
}

static void test_known_answer(void)
{
    struct fal_sign_key k;
    char sig[2 * FAL_SIGN_SIG_LEN + 1];

    CHECK(fal_sign_key_parse(RFC_X_URL, &k) == 0);
    CHECK(sign_hex(rfc_seed, TS_TEXT, BODY, sig) == 0);
    CHECK(verify(&k, 1, TS_TEXT, sig, BODY, TS) == FAL_SIGN_OK);
    /* within 5 minutes either way, and not past them */
    CHECK(verify(&k, 1, TS_TEXT, sig, BODY, TS + FAL_SIGN_TOLERANCE_S) == FAL_SIGN_OK);
    CHECK(verify(&k, 1, TS_TEXT, sig, BODY, TS - FAL_SIGN_TOLERANCE_S) == FAL_SIGN_OK);
    CHECK(verify(&k, 1, TS_TEXT, sig, BODY, TS + FAL_SIGN_TOLERANCE_S + 1) == FAL_SIGN_ETIMESTAMP);
    CHECK(verify(&k, 1, TS_TEXT, sig, BODY, TS - FAL_SIGN_TOLERANCE_S - 1) == FAL_SIGN_ETIMESTAMP);
    /* upper-case hex is the same signature */
    for (char *p = sig; *p != '\0'; p++) {
        *p = (char)(*p >= 'a' && *p <= 'f' ? *p - 'a' + 'A' : *p);
    }
    CHECK(verify(&k, 1, TS_TEXT, sig, BODY, TS) == FAL_SIGN_OK);
}

static void test_tampering(void)
{
    struct fal_sign_key keys[2];
    unsigned char other_seed[32];
    char sig[2 * FAL_SIGN_SIG_LEN + 1], other[2 * FAL_SIGN_SIG_LEN + 1];

    memset(other_seed, 0x42, sizeof(other_seed));
    CHECK(fal_sign_key_parse(RFC_X_URL, &keys[1]) == 0);
    memset(keys[0].bytes, 0x11, sizeof(keys[0].bytes)); /* not the signer's */
    CHECK(sign_hex(rfc_seed, TS_TEXT, BODY, sig) == 0);
    /* any configured key verifying is enough */
    CHECK(verify(keys, 2, TS_TEXT, sig, BODY, TS) == FAL_SIGN_OK);
    /* a wrong key alone */
    CHECK(verify(keys, 1, TS_TEXT, sig, BODY, TS) == FAL_SIGN_EMISMATCH);
    /* a flipped byte of the body, of the signature */
    CHECK(verify(keys, 2, TS_TEXT, sig, "{\"status\":\"OL\"}", TS) == FAL_SIGN_EMISMATCH);
    sig[10] = sig[10] == '0' ? '1' : '0';
    CHECK(verify(keys, 2, TS_TEXT, sig, BODY, TS) == FAL_SIGN_EMISMATCH);
    /* signed by another key */
    CHECK(sign_hex(other_seed, TS_TEXT, BODY, other) == 0);
    CHECK(verify(keys, 2, TS_TEXT, other, BODY, TS) == FAL_SIGN_EMISMATCH);
    /* the timestamp is part of the message: a signature for another one does not carry over */
    CHECK(sign_hex(rfc_seed, "1767225601", BODY, sig) == 0);
    CHECK(verify(keys, 2, TS_TEXT, sig, BODY, TS) == FAL_SIGN_EMISMATCH);
    /* bad hex: a non-hex digit, too short, too long */
    CHECK(sign_hex(rfc_seed, TS_TEXT, BODY, sig) == 0);
    sig[5] = 'g';
    CHECK(verify(keys, 2, TS_TEXT, sig, BODY, TS) == FAL_SIGN_EHEX);
    CHECK(sign_hex(rfc_seed, TS_TEXT, BODY, sig) == 0);
    sig[127] = '\0';
    CHECK(verify(keys, 2, TS_TEXT, sig, BODY, TS) == FAL_SIGN_EHEX);
    CHECK(verify(keys, 2, TS_TEXT, "", BODY, TS) == FAL_SIGN_EHEX);
    char longer[2 * FAL_SIGN_SIG_LEN + 3];
    CHECK(sign_hex(rfc_seed, TS_TEXT, BODY, sig) == 0);
    snprintf(longer, sizeof(longer), "%s00", sig);
    CHECK(verify(keys, 2, TS_TEXT, longer, BODY, TS) == FAL_SIGN_EHEX);
    /* a stale timestamp is refused before the signature is looked at */
    CHECK(verify(keys, 2, TS_TEXT, sig, BODY, TS + 3600) == FAL_SIGN_ETIMESTAMP);
    CHECK(verify(keys, 2, "-1767225600", sig, BODY, TS) == FAL_SIGN_ETIMESTAMP);
    CHECK(verify(keys, 2, "1767225600.5", sig, BODY, TS) == FAL_SIGN_ETIMESTAMP);
    CHECK(verify(keys, 2, "99999999999999999999", sig, BODY, TS) == FAL_SIGN_ETIMESTAMP);
    CHECK(verify(keys, 2, "", sig, BODY, TS) == FAL_SIGN_ETIMESTAMP);
    /* missing headers, no keys */
    CHECK(fal_sign_verify(keys, 2, NULL, USER_ID, TS_TEXT, sig, BODY, strlen(BODY), TS,
                          FAL_SIGN_TOLERANCE_S) == FAL_SIGN_EINVAL);
    CHECK(fal_sign_verify(keys, 2, REQ_ID, "", TS_TEXT, sig, BODY, strlen(BODY), TS,
                          FAL_SIGN_TOLERANCE_S) == FAL_SIGN_EINVAL);
    CHECK(fal_sign_verify(keys, 0, REQ_ID, USER_ID, TS_TEXT, sig, BODY, strlen(BODY), TS,
                          FAL_SIGN_TOLERANCE_S) == FAL_SIGN_EINVAL);
    CHECK(fal_sign_verify(keys, 2, REQ_ID, USER_ID, NULL, sig, BODY, strlen(BODY), TS,
                          FAL_SIGN_TOLERANCE_S) == FAL_SIGN_EINVAL);
    /* an oversize request id */
    char big[FAL_SIGN_FIELD_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    CHECK(fal_sign_verify(keys, 2, big, USER_ID, TS_TEXT, sig, BODY, strlen(BODY), TS,
                          FAL_SIGN_TOLERANCE_S) == FAL_SIGN_EINVAL);
}

static void test_strerror(void)
{
    CHECK(strstr(fal_sign_strerror(FAL_SIGN_EMISMATCH), "public key") != NULL);
    CHECK_STR(fal_sign_strerror(12345), "unknown error");
}

int main(void)
{
    test_key_parse();
    test_message();
    test_known_answer();
    test_tampering();
    test_strerror();
    return check_done();
}
