/*
 * core/fal_sign.h — fal's webhook signatures (ED25519), verified by the receiver.
 *
 * fal does not sign with a shared secret. A callback carries four headers:
 *   X-Fal-Webhook-Request-Id  the queue's request id
 *   X-Fal-Webhook-User-Id     the account that submitted it
 *   X-Fal-Webhook-Timestamp   integer Unix seconds of the attempt
 *   X-Fal-Webhook-Signature   hex of a 64-byte ED25519 signature
 * and the signed message is request id, user id, timestamp and the lowercase hex SHA-256 of the
 * raw body, joined by "\n" (no trailing newline). The verifying keys are the ED25519 public keys
 * fal publishes as a JWKS (kty OKP, crv Ed25519, the 32 key bytes as base64url in `x`); any of
 * them verifying is enough, so a key rotation is a config edit that lists both.
 *
 * SHA-256 and ED25519 come from OpenSSL (EVP). Nothing here allocates memory the caller frees.
 */
#ifndef SLUICE_CORE_FAL_SIGN_H
#define SLUICE_CORE_FAL_SIGN_H

#include <stddef.h>
#include <stdint.h>

/* An ED25519 public key's size, and the signature's (FAL_SIGN_SIG_LEN bytes, twice that in hex). */
#define FAL_SIGN_KEY_LEN 32
#define FAL_SIGN_SIG_LEN 64
/* The most public keys a provider lists (fal publishes one or two while it rotates). */
#define FAL_SIGN_KEYS_MAX 8
/* The longest request id and user id taken (fal's are UUIDs and short account names). */
#define FAL_SIGN_FIELD_MAX 256
/* fal's own examples refuse a timestamp more than 5 minutes away from now, either way. */
#define FAL_SIGN_TOLERANCE_S 300

enum fal_sign_code {
    FAL_SIGN_OK = 0,
    FAL_SIGN_EKEY = -1,       /* a public key is not base64(url) of 32 bytes */
    FAL_SIGN_EINVAL = -2,     /* bad argument: no keys, a missing or oversize header */
    FAL_SIGN_ETIMESTAMP = -3, /* the timestamp is malformed or outside the tolerance */
    FAL_SIGN_EHEX = -4,       /* the signature is not 128 hex digits */
    FAL_SIGN_EMISMATCH = -5,  /* no configured key verifies the signature */
    FAL_SIGN_ECRYPTO = -6,    /* OpenSSL failed */
};

/* An ED25519 public key's raw bytes. Plain data, copy freely (it is not a secret). */
struct fal_sign_key {
    unsigned char bytes[FAL_SIGN_KEY_LEN];
};

/* A message for an enum fal_sign_code. Static. */
const char *fal_sign_strerror(int code);

/*
 * Decodes text (a JWKS `x`: base64url without padding; standard base64 and '=' padding are
 * accepted too, no whitespace) into *key. Returns 0 or FAL_SIGN_EKEY (then *key is zeroed).
 * text is borrowed.
 */
int fal_sign_key_parse(const char *text, struct fal_sign_key *key);

/*
 * The signed message of a callback into out (out_size bytes, NUL-terminated): request_id "\n"
 * user_id "\n" timestamp "\n" hex SHA-256 of body (len bytes; NULL when len is 0). Returns its
 * length, or FAL_SIGN_EINVAL (a field missing, longer than FAL_SIGN_FIELD_MAX or holding a
 * newline), or FAL_SIGN_ECRYPTO; on error out holds "" when out_size > 0. 3 * FAL_SIGN_FIELD_MAX
 * + 68 bytes are always enough. Public so that tests and the mock sign the same bytes. All
 * borrowed.
 */
int fal_sign_message(const char *request_id, const char *user_id, const char *timestamp,
                     const char *body, size_t len, char *out, size_t out_size);

/*
 * What sluice does with a fal callback: 0 when timestamp (decimal digits only) is within
 * tolerance_s of now_s either way and signature_hex (128 hex digits, either case) is a valid
 * ED25519 signature of fal_sign_message(...) under one of the n keys (1 <= n). Returns 0,
 * FAL_SIGN_EINVAL, FAL_SIGN_ETIMESTAMP, FAL_SIGN_EHEX, FAL_SIGN_EMISMATCH or FAL_SIGN_ECRYPTO.
 * The checks run in that order, so a stale or malformed callback costs no signature check. All
 * pointers are borrowed.
 */
int fal_sign_verify(const struct fal_sign_key *keys, size_t n, const char *request_id,
                    const char *user_id, const char *timestamp, const char *signature_hex,
                    const char *body, size_t len, int64_t now_s, int64_t tolerance_s);

#endif
