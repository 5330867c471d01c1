/*
 * core/artifact_url.h — capability URLs for kept artifacts: what lets a client download an image
 * with a plain GET and no bearer header, as it would a provider's pre-signed URL.
 *
 *   <base>/v1/artifacts/<task id>/<index>?expires=<Unix s>&sig=<43 characters>
 *
 * sig is the base64url (no padding) HMAC-SHA256 of "<task id>/<index>/<expires>" under a key that
 * every api process shares (blobs.url_key, or one random key created once in Redis), so any api
 * process serves a URL another one issued. The URL works until expires and cannot be made
 * without the key; the task id in it is unguessable on its own. Nothing here is stored: a URL is
 * rendered for each answer.
 */
#ifndef SLUICE_CORE_ARTIFACT_URL_H
#define SLUICE_CORE_ARTIFACT_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define ARTIFACT_URL_PATH "/v1/artifacts/"
#define ARTIFACT_URL_SIG_LEN 43   /* base64url of 32 bytes, unpadded */
#define ARTIFACT_URL_KEY_MIN 16   /* bytes of a signing key */
#define ARTIFACT_URL_KEY_MAX 256  /* bytes of a signing key */
#define ARTIFACT_URL_BASE_MAX 512 /* bytes of a base URL ("https://host:port/prefix") */
#define ARTIFACT_URL_MAX 768      /* room for a whole URL */
#define ARTIFACT_URL_MAX_INDEX 1000

/*
 * The size of the shared random signing key, for deployments without blobs.url_key: a string of
 * this many bytes in the keyspace's KS_ARTIFACT_URL_KEY (core/keys.h), written once with SET NX.
 */
#define ARTIFACT_URL_RANDOM_BYTES 32

/*
 * The signature of (id, index, expires) under key (key_len bytes, 1..ARTIFACT_URL_KEY_MAX), as
 * ARTIFACT_URL_SIG_LEN characters and a NUL. Returns 0, or -1 on a bad argument or an OpenSSL
 * failure (sig is then "").
 */
int artifact_url_sign(const unsigned char *key, size_t key_len, const char *id, long index,
                      int64_t expires, char sig[ARTIFACT_URL_SIG_LEN + 1]);

/*
 * The capability URL of artifact index of task id under base (no trailing '/'), valid until
 * expires (Unix s), into out (cap bytes). Returns 0, or -1 (out is then "").
 */
int artifact_url_format(const char *base, const unsigned char *key, size_t key_len, const char *id,
                        long index, int64_t expires, char *out, size_t cap);

/*
 * Checks a URL's expires and sig query values (borrowed, may be NULL) for (id, index) at now_s,
 * comparing signatures in constant time. Returns 0, or CORE_EPERM with err filled: code
 * "invalid_signature" (missing, malformed or wrong) or "url_expired".
 */
int artifact_url_check(const unsigned char *key, size_t key_len, const char *id, long index,
                       const char *expires, const char *sig, int64_t now_s, struct core_err *err);

/*
 * True when a Host header value is host[:port] of sane characters: a name or IPv4 address of
 * letters, digits, '.' and '-', or a [bracketed] IPv6 address; a port of 1-5 digits up to 65535.
 */
bool artifact_url_host_ok(const char *host);

/*
 * The base of the URLs an answer carries, into out (cap bytes): public_base when configured
 * (may be NULL), else "http://<host>" when the request's Host header (may be NULL) passes
 * artifact_url_host_ok, else the listen address. Returns 0, or -1 when it does not fit.
 */
int artifact_url_base(const char *public_base, const char *host, const char *listen_host,
                      int listen_port, char *out, size_t cap);

#endif
