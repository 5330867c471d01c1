/*
 * core/webhook_sign.h — Standard Webhooks signatures (https://www.standardwebhooks.com, spec
 * version 1.0.0, symmetric scheme).
 *
 * A delivery carries three headers:
 *   webhook-id         the message id, the same on every retry (webhook_new_id makes one)
 *   webhook-timestamp  the attempt's time, integer Unix seconds
 *   webhook-signature  "v1,<base64 HMAC-SHA256 of id.timestamp.body>" for each signing key,
 *                      separated by single spaces
 * Secrets are written "whsec_" + base64 of the key bytes. During a secret rotation a tenant has
 * two keys and each delivery is signed with both, so the receiver can verify with either.
 *
 * HMAC, base64 and randomness come from OpenSSL. Only webhook_body returns memory to free.
 */
#ifndef SLUICE_CORE_WEBHOOK_SIGN_H
#define SLUICE_CORE_WEBHOOK_SIGN_H

#include <stddef.h>
#include <stdint.h>

#define WEBHOOK_SECRET_PREFIX "whsec_"
/* Key sizes the spec allows: at least 24 bytes (192 bits), at most 64 (512 bits). */
#define WEBHOOK_KEY_MIN 24
#define WEBHOOK_KEY_MAX 64
/* Longest message id webhook_sign takes. */
#define WEBHOOK_ID_MAX 128
/* Room for webhook_new_id's result: "msg_", 26 random characters, NUL. */
#define WEBHOOK_ID_SIZE 31
/* Room for the webhook-signature value of n keys: n × "v1," + 44 base64 characters, the spaces
 * between them and a NUL. */
#define WEBHOOK_SIGNATURE_SIZE(n) ((size_t)(n)*48)
/* Receivers' customary replay window, in seconds (the reference libraries use 5 minutes). */
#define WEBHOOK_TOLERANCE_S 300

enum webhook_code {
    WEBHOOK_OK = 0,
    WEBHOOK_ESECRET = -1,    /* not "whsec_" + canonical base64 */
    WEBHOOK_EKEYSIZE = -2,   /* the key is shorter or longer than the spec allows */
    WEBHOOK_EINVAL = -3,     /* bad argument: no keys, a malformed id, negative timestamp */
    WEBHOOK_ESPACE = -4,     /* out_size is too small */
    WEBHOOK_ECRYPTO = -5,    /* OpenSSL failed (HMAC or the random generator) */
    WEBHOOK_ETIMESTAMP = -6, /* verify: the timestamp is malformed or outside the tolerance */
    WEBHOOK_EMISMATCH = -7,  /* verify: no v1 signature matches */
};

/* A signing key: the decoded bytes of a whsec_ secret. Plain data, copy freely. */
struct webhook_key {
    unsigned char bytes[WEBHOOK_KEY_MAX];
    size_t len;
};

/* A message for an enum webhook_code. */
const char *webhook_strerror(int code);

/*
 * Decodes secret ("whsec_" followed by standard base64 with its '=' padding, no whitespace) into
 * *key. The key must be WEBHOOK_KEY_MIN..WEBHOOK_KEY_MAX bytes long. Returns 0, WEBHOOK_ESECRET
 * or WEBHOOK_EKEYSIZE; *key is zeroed on error. secret is borrowed.
 */
int webhook_key_parse(const char *secret, struct webhook_key *key);

/* Wipes a key's bytes (OPENSSL_cleanse), for keys that leave scope. */
void webhook_key_clear(struct webhook_key *key);

/*
 * Writes the webhook-signature header value for a message into out: "v1,<sig>" for each of the
 * n keys (1 <= n), in the order given, separated by single spaces, NUL-terminated.
 * WEBHOOK_SIGNATURE_SIZE(n) bytes of out are always enough.
 *   msg_id     1..WEBHOOK_ID_MAX characters from '!'..'~' except '.': the spec forbids dots, which
 *              would make "id.timestamp.body" ambiguous, and no space or control character can
 *              reach a header
 *   timestamp  Unix seconds, >= 0, signed as its decimal text
 *   body       len bytes, exactly as they will be sent (may be NULL when len is 0)
 * Returns 0, WEBHOOK_EINVAL, WEBHOOK_ESPACE or WEBHOOK_ECRYPTO; on error out holds "" (when
 * out_size > 0). All pointers are borrowed.
 */
int webhook_sign(const struct webhook_key *keys, size_t n, const char *msg_id, int64_t timestamp_s,
                 const char *body, size_t len, char *out, size_t out_size);

/*
 * What a receiver does, for tests and for a self-check: 0 when timestamp (the webhook-timestamp
 * header text: decimal digits only) is within tolerance_s of now_s either way and some "v1,"
 * entry of signature (the webhook-signature header: space-separated, other versions skipped)
 * is key's signature of msg_id.timestamp.body. Signatures are compared in constant time.
 * Returns 0, WEBHOOK_ETIMESTAMP, WEBHOOK_EMISMATCH, WEBHOOK_EINVAL (a bad msg_id) or
 * WEBHOOK_ECRYPTO. All pointers are borrowed.
 */
int webhook_verify(const struct webhook_key *key, const char *msg_id, const char *timestamp,
                   const char *body, size_t len, const char *signature, int64_t now_s,
                   int64_t tolerance_s);

/*
 * A new message id, "msg_" followed by 26 random characters of [a-z2-7] (130 bits from
 * RAND_bytes), into out (at least WEBHOOK_ID_SIZE bytes). Returns 0, WEBHOOK_ESPACE or
 * WEBHOOK_ECRYPTO.
 */
int webhook_new_id(char *out, size_t out_size);

struct cJSON;

/*
 * A delivery's body, the same for task and batch events: {"type": event, "timestamp": now in
 * ISO 8601 UTC, "data": data}. Takes data (deleted here, whatever happens). Returns the JSON text
 * (free with cJSON_free) or NULL when out of memory.
 */
char *webhook_body(const char *event, struct cJSON *data);

#endif
