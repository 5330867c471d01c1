/*
 * Unit tests of core/webhook_sign: the Standard Webhooks test vector, key rotation, secrets that
 * must be refused, and tampering that verification must catch.
 *
 * The vector is the one the specification's reference libraries test against
 * (standard-webhooks/standard-webhooks, libraries/go/webhook_test.go, TestWebhookSign): secret
 * whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw, id msg_p5jXN8AQM9LWM0D4loKWxJek, timestamp 1614265330,
 * body {"test": 2432232314}, signature v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=.
 */
#include <stdlib.h>

#include "core/webhook_sign.h"
#include "check.h"

#define VEC_SECRET "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
#define VEC_ID "msg_p5jXN8AQM9LWM0D4loKWxJek"
#define VEC_TS 1614265330
#define VEC_TS_TEXT "1614265330"
#define VEC_BODY "{\"test\": 2432232314}"
#define VEC_SIG "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

/* 32 bytes "0123456789abcdef0123456789abcdef" and 24 bytes of 0xff, as secrets. */
#define OTHER_SECRET "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
#define FF24_SECRET "whsec_////////////////////////////////"

static int verify_vec(const struct webhook_key *k, const char *ts, const char *body,
                      const char *sig, int64_t now)
{
    return webhook_verify(k, VEC_ID, ts, body, strlen(body), sig, now, WEBHOOK_TOLERANCE_S);
}

static void test_vector(void)
{
    struct webhook_key k;
    char out[WEBHOOK_SIGNATURE_SIZE(1)];

    CHECK(webhook_key_parse(VEC_SECRET, &k) == 0);
    CHECK(k.len == 24);
    CHECK(webhook_sign(&k, 1, VEC_ID, VEC_TS, VEC_BODY, strlen(VEC_BODY), out, sizeof(out)) == 0);
    CHECK_STR(out, VEC_SIG);
    CHECK(strlen(out) + 1 == sizeof(out));

    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG, VEC_TS) == 0);
    /* the tolerance window, both ways, edges included */
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG, VEC_TS + 300) == 0);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG, VEC_TS - 300) == 0);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG, VEC_TS + 301) == WEBHOOK_ETIMESTAMP);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG, VEC_TS - 301) == WEBHOOK_ETIMESTAMP);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG, INT64_MIN) == WEBHOOK_ETIMESTAMP);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG, INT64_MAX) == WEBHOOK_ETIMESTAMP);
    CHECK(webhook_verify(&k, VEC_ID, VEC_TS_TEXT, VEC_BODY, strlen(VEC_BODY), VEC_SIG,
                         VEC_TS + 3600, 4000) == 0);
    /* other versions are skipped; any matching v1 entry among others passes, as in the spec */
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY,
                     "v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc= "
                     "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= " VEC_SIG
                     " v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw==",
                     VEC_TS) == 0);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
                     VEC_TS) == WEBHOOK_EMISMATCH);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, "", VEC_TS) == WEBHOOK_EMISMATCH);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, "  ", VEC_TS) == WEBHOOK_EMISMATCH);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, "v1,", VEC_TS) == WEBHOOK_EMISMATCH);
    /* a truncated or extended signature is not a prefix match */
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE",
                     VEC_TS) == WEBHOOK_EMISMATCH);
    CHECK(verify_vec(&k, VEC_TS_TEXT, VEC_BODY, VEC_SIG "=", VEC_TS) == WEBHOOK_EMISMATCH);
    webhook_key_clear(&k);
    CHECK(k.len == 0);
}

static void test_rotation(void)
{
    struct webhook_key keys[2], third;
    char both[WEBHOOK_SIGNATURE_SIZE(2)], one[WEBHOOK_SIGNATURE_SIZE(1)];
    char two[WEBHOOK_SIGNATURE_SIZE(1)];
    const char *body = "{\"type\":\"task.completed\"}";
    size_t len = strlen(body);

    CHECK(webhook_key_parse(VEC_SECRET, &keys[0]) == 0);
    CHECK(webhook_key_parse(OTHER_SECRET, &keys[1]) == 0);
    CHECK(keys[1].len == 32 && memcmp(keys[1].bytes, "0123456789abcdef", 16) == 0);
    CHECK(webhook_key_parse(FF24_SECRET, &third) == 0);
    CHECK(third.len == 24 && third.bytes[0] == 0xff && third.bytes[23] == 0xff);

    CHECK(webhook_sign(keys, 2, "msg_rot", 1700000000, body, len, both, sizeof(both)) == 0);
    CHECK(webhook_sign(&keys[0], 1, "msg_rot", 1700000000, body, len, one, sizeof(one)) == 0);
    CHECK(webhook_sign(&keys[1], 1, "msg_rot", 1700000000, body, len, two, sizeof(two)) == 0);
    /* "v1,<old> v1,<new>", in key order, one space between */
    CHECK(strlen(both) == 2 * 47 + 1);
    CHECK(strncmp(both, one, 47) == 0 && both[47] == ' ' && strcmp(both + 48, two) == 0);
    CHECK(strcmp(one, two) != 0);
    for (int i = 0; i < 2; i++) {
        CHECK(webhook_verify(&keys[i], "msg_rot", "1700000000", body, len, both, 1700000010,
                             WEBHOOK_TOLERANCE_S) == 0);
    }
    CHECK(webhook_verify(&third, "msg_rot", "1700000000", body, len, both, 1700000010,
                         WEBHOOK_TOLERANCE_S) == WEBHOOK_EMISMATCH);
    /* the exact size is enough, one byte less is not */
    CHECK(webhook_sign(keys, 2, "msg_rot", 1700000000, body, len, both, 2 * 48) == 0);
    CHECK(webhook_sign(keys, 2, "msg_rot", 1700000000, body, len, both, 2 * 48 - 1) ==
          WEBHOOK_ESPACE);
    CHECK_STR(both, "");
}

static void test_bad_secrets(void)
{
    static const struct {
        const char *secret;
        int want;
    } cases[] = {
        {"MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", WEBHOOK_ESECRET}, /* no prefix */
        {"WHSEC_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", WEBHOOK_ESECRET},
        {"whsec_", WEBHOOK_ESECRET},
        {"whsec", WEBHOOK_ESECRET},
        {"", WEBHOOK_ESECRET},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", WEBHOOK_ESECRET},   /* not whole quads */
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS!", WEBHOOK_ESECRET},  /* bad character */
        {"whsec_MfKQ9r8GKYqrTwjU PD8ILPZIo2LaLaSw", WEBHOOK_ESECRET}, /* whitespace */
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\n", WEBHOOK_ESECRET},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLa==", WEBHOOK_ESECRET}, /* padding not canonical */
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2La=aSw", WEBHOOK_ESECRET}, /* padding inside */
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaL===", WEBHOOK_ESECRET},
        {"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw-_", WEBHOOK_ESECRET}, /* URL alphabet */
        {"whsec_c2hvcnQ=", WEBHOOK_EKEYSIZE},                          /* 5 bytes */
        {"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY=", WEBHOOK_EKEYSIZE},  /* 23 bytes */
        {"whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3", WEBHOOK_OK},        /* 24 bytes */
    };
    struct webhook_key k;
    char secret[256];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int want = cases[i].want;
        int rc = webhook_key_parse(cases[i].secret, &k);

        CHECK(rc == want);
        if (rc != want) {
            fprintf(stderr, "  secret \"%s\": %d, want %d\n", cases[i].secret, rc, want);
        }
        if (want != 0) {
            CHECK(k.len == 0);
        }
    }
    CHECK(webhook_key_parse(NULL, &k) == WEBHOOK_ESECRET);

    /* 64 bytes is the largest key, 65 is one too many; a very long secret stays an error */
    strcpy(secret, "whsec_");
    memset(secret + 6, 'A', 84);
    strcpy(secret + 90, "AA==");
    CHECK(webhook_key_parse(secret, &k) == 0 && k.len == 64);
    strcpy(secret + 90, "AAA=");
    CHECK(webhook_key_parse(secret, &k) == WEBHOOK_EKEYSIZE);
    memset(secret + 6, 'A', 200);
    secret[206] = '\0';
    CHECK(webhook_key_parse(secret, &k) == WEBHOOK_EKEYSIZE);
    secret[100] = '*';
    CHECK(webhook_key_parse(secret, &k) == WEBHOOK_ESECRET);
    CHECK(strlen(webhook_strerror(WEBHOOK_EKEYSIZE)) > 0);
    CHECK_STR(webhook_strerror(12345), "unknown error");
}

static void test_tampering(void)
{
    struct webhook_key k;
    char sig[WEBHOOK_SIGNATURE_SIZE(1)];
    const char *body = "{\"id\":\"task_1\",\"status\":\"completed\"}";
    const char *forged = "{\"id\":\"task_1\",\"status\":\"completed\" }";

    CHECK(webhook_key_parse(VEC_SECRET, &k) == 0);
    CHECK(webhook_sign(&k, 1, "msg_t", 1700000000, body, strlen(body), sig, sizeof(sig)) == 0);
    CHECK(webhook_verify(&k, "msg_t", "1700000000", body, strlen(body), sig, 1700000000, 300) == 0);
    /* body: one byte more, one byte less, one byte changed */
    CHECK(webhook_verify(&k, "msg_t", "1700000000", forged, strlen(forged), sig, 1700000000, 300) ==
          WEBHOOK_EMISMATCH);
    CHECK(webhook_verify(&k, "msg_t", "1700000000", body, strlen(body) - 1, sig, 1700000000, 300) ==
          WEBHOOK_EMISMATCH);
    {
        char copy[64];

        strcpy(copy, body);
        copy[7] = 'T';
        CHECK(webhook_verify(&k, "msg_t", "1700000000", copy, strlen(copy), sig, 1700000000, 300) ==
              WEBHOOK_EMISMATCH);
    }
    /* timestamp: a different second, even inside the window, and non-canonical spellings */
    CHECK(webhook_verify(&k, "msg_t", "1700000001", body, strlen(body), sig, 1700000000, 300) ==
          WEBHOOK_EMISMATCH);
    CHECK(webhook_verify(&k, "msg_t", "01700000000", body, strlen(body), sig, 1700000000, 300) ==
          WEBHOOK_ETIMESTAMP);
    CHECK(webhook_verify(&k, "msg_t", "+1700000000", body, strlen(body), sig, 1700000000, 300) ==
          WEBHOOK_ETIMESTAMP);
    CHECK(webhook_verify(&k, "msg_t", "1700000000 ", body, strlen(body), sig, 1700000000, 300) ==
          WEBHOOK_ETIMESTAMP);
    CHECK(webhook_verify(&k, "msg_t", "", body, strlen(body), sig, 1700000000, 300) ==
          WEBHOOK_ETIMESTAMP);
    CHECK(webhook_verify(&k, "msg_t", "-5", body, strlen(body), sig, 0, 300) == WEBHOOK_ETIMESTAMP);
    CHECK(webhook_verify(&k, "msg_t", "99999999999999999999", body, strlen(body), sig, 0, 300) ==
          WEBHOOK_ETIMESTAMP);
    /* id */
    CHECK(webhook_verify(&k, "msg_u", "1700000000", body, strlen(body), sig, 1700000000, 300) ==
          WEBHOOK_EMISMATCH);
    /* a signature flipped in one character */
    sig[10] = sig[10] == 'A' ? 'B' : 'A';
    CHECK(webhook_verify(&k, "msg_t", "1700000000", body, strlen(body), sig, 1700000000, 300) ==
          WEBHOOK_EMISMATCH);
}

static void test_sign_arguments(void)
{
    struct webhook_key k;
    char out[WEBHOOK_SIGNATURE_SIZE(1)];
    char long_id[WEBHOOK_ID_MAX + 2];

    CHECK(webhook_key_parse(VEC_SECRET, &k) == 0);
    CHECK(webhook_sign(&k, 0, "msg_a", 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(NULL, 1, "msg_a", 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(&k, 1, "msg.a", 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK_STR(out, "");
    CHECK(webhook_sign(&k, 1, "msg a", 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(&k, 1, "msg\r\na", 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(&k, 1, "", 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(&k, 1, NULL, 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(&k, 1, "msg_a", -1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(&k, 1, "msg_a", 1, NULL, 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    CHECK(webhook_sign(&k, 1, "msg_a", 1, "x", 1, out, sizeof(out) - 1) == WEBHOOK_ESPACE);
    memset(long_id, 'a', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    CHECK(webhook_sign(&k, 1, long_id, 1, "x", 1, out, sizeof(out)) == WEBHOOK_EINVAL);
    long_id[WEBHOOK_ID_MAX] = '\0';
    CHECK(webhook_sign(&k, 1, long_id, 1, "x", 1, out, sizeof(out)) == 0);
    /* an empty body, and the timestamp 0 */
    CHECK(webhook_sign(&k, 1, "msg_a", 0, NULL, 0, out, sizeof(out)) == 0);
    CHECK(webhook_verify(&k, "msg_a", "0", "", 0, out, 10, 300) == 0);
    CHECK(webhook_verify(&k, "msg_a", "0", NULL, 0, out, 10, 300) == 0);
    CHECK(webhook_verify(&k, "msg_a", "0", "", 0, out, 10, -1) == WEBHOOK_EINVAL);
    /* a key nobody parsed is refused rather than signing with no key */
    {
        struct webhook_key empty = {{0}, 0};

        CHECK(webhook_sign(&empty, 1, "msg_a", 1, "x", 1, out, sizeof(out)) == WEBHOOK_ECRYPTO);
    }
}

static void test_new_id(void)
{
    char a[WEBHOOK_ID_SIZE], b[WEBHOOK_ID_SIZE];

    CHECK(webhook_new_id(a, sizeof(a)) == 0);
    CHECK(webhook_new_id(b, sizeof(b)) == 0);
    CHECK(strncmp(a, "msg_", 4) == 0);
    CHECK(strlen(a) == WEBHOOK_ID_SIZE - 1);
    CHECK(strcmp(a, b) != 0);
    CHECK(strchr(a, '.') == NULL);
    CHECK(webhook_new_id(a, sizeof(a) - 1) == WEBHOOK_ESPACE);
    CHECK(webhook_new_id(NULL, 64) == WEBHOOK_ESPACE);
    /* an id it makes is one webhook_sign takes */
    {
        struct webhook_key k;
        char out[WEBHOOK_SIGNATURE_SIZE(1)];

        CHECK(webhook_key_parse(VEC_SECRET, &k) == 0);
        CHECK(webhook_sign(&k, 1, b, 5, "{}", 2, out, sizeof(out)) == 0);
        CHECK(webhook_verify(&k, b, "5", "{}", 2, out, 5, 0) == 0);
    }
}

int main(void)
{
    test_vector();
    test_rotation();
    test_bad_secrets();
    test_tampering();
    test_sign_arguments();
    test_new_id();
    return check_done();
}
