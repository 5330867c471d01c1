/*
 * core/artifact_url.c — signing and checking capability URLs (see artifact_url.h).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/artifact_url.h"

#define ARTIFACT_URL_MAX_EXPIRES_DIGITS 12
#define ARTIFACT_URL_HOST_MAX 255

int artifact_url_sign(const unsigned char *key, size_t key_len, const char *id, long index,
                      int64_t expires, char sig[ARTIFACT_URL_SIG_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned char b64[64];
    unsigned int md_len = 0;
    char msg[160];
    int n;

    sig[0] = '\0';
    n = snprintf(msg, sizeof(msg), "%s/%ld/%lld", id, index, (long long)expires);
    if (key == NULL || key_len == 0 || key_len > ARTIFACT_URL_KEY_MAX || n < 0 ||
        (size_t)n >= sizeof(msg) || index < 0 || expires < 0) {
        return -1;
    }
    if (HMAC(EVP_sha256(), key, (int)key_len, (const unsigned char *)msg, (size_t)n, md, &md_len) ==
            NULL ||
        md_len != 32 || EVP_EncodeBlock(b64, md, (int)md_len) != ARTIFACT_URL_SIG_LEN + 1) {
        OPENSSL_cleanse(md, sizeof(md));
        return -1;
    }
    /* base64url: '+' and '/' would need escaping in a query; the one '=' of padding is dropped */
    for (size_t i = 0; i < ARTIFACT_URL_SIG_LEN; i++) {
        sig[i] = b64[i] == '+' ? '-' : b64[i] == '/' ? '_' : (char)b64[i];
    }
    sig[ARTIFACT_URL_SIG_LEN] = '\0';
    OPENSSL_cleanse(md, sizeof(md));
    return 0;
}

int artifact_url_format(const char *base, const unsigned char *key, size_t key_len, const char *id,
                        long index, int64_t expires, char *out, size_t cap)
{
    char sig[ARTIFACT_URL_SIG_LEN + 1];
    int n;

    if (cap > 0) {
        out[0] = '\0';
    }
    if (artifact_url_sign(key, key_len, id, index, expires, sig) != 0) {
        return -1;
    }
    n = snprintf(out, cap, "%s" ARTIFACT_URL_PATH "%s/%ld?expires=%lld&sig=%s", base, id, index,
                 (long long)expires, sig);
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return -1;
    }
    return 0;
}

/* expires as the URL writes it: 1-12 digits. -1 when it is not. */
static int64_t artifact_url_expires(const char *s)
{
    size_t n = s ? strspn(s, "0123456789") : 0;

    if (n == 0 || n > ARTIFACT_URL_MAX_EXPIRES_DIGITS || s[n] != '\0') {
        return -1;
    }
    return (int64_t)strtoll(s, NULL, 10);
}

int artifact_url_check(const unsigned char *key, size_t key_len, const char *id, long index,
                       const char *expires, const char *sig, int64_t now_s, struct core_err *err)
{
    char want[ARTIFACT_URL_SIG_LEN + 1];
    int64_t exp = artifact_url_expires(expires);
    bool ok;

    /* every byte of both signatures is compared, whatever differs first */
    ok = exp >= 0 && sig != NULL && strlen(sig) == ARTIFACT_URL_SIG_LEN &&
         artifact_url_sign(key, key_len, id, index, exp, want) == 0 &&
         CRYPTO_memcmp(want, sig, ARTIFACT_URL_SIG_LEN) == 0;
    if (!ok) {
        core_err_set(err, CORE_EPERM, "sig", "The URL's signature is missing or does not match");
        core_err_set_code(err, "invalid_signature");
        return CORE_EPERM;
    }
    if (now_s > exp) {
        core_err_set(err, CORE_EPERM, "expires", "The URL expired at %lld", (long long)exp);
        core_err_set_code(err, "url_expired");
        return CORE_EPERM;
    }
    return 0;
}

/* A port: 1-5 digits, at most 65535. */
static bool artifact_url_port_ok(const char *p)
{
    size_t n = strspn(p, "0123456789");

    return n >= 1 && n <= 5 && p[n] == '\0' && strtol(p, NULL, 10) <= 65535;
}

bool artifact_url_host_ok(const char *host)
{
    size_t n;

    if (host == NULL || host[0] == '\0' || strlen(host) > ARTIFACT_URL_HOST_MAX) {
        return false;
    }
    if (host[0] == '[') {
        n = 1 + strspn(host + 1, "0123456789abcdefABCDEF:.");
        if (n < 3 || host[n] != ']') {
            return false;
        }
        n++;
    } else {
        n = strspn(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
        if (n == 0 || host[0] == '.' || host[0] == '-') {
            return false;
        }
    }
    return host[n] == '\0' || (host[n] == ':' && artifact_url_port_ok(host + n + 1));
}

int artifact_url_base(const char *public_base, const char *host, const char *listen_host,
                      int listen_port, char *out, size_t cap)
{
    int n;

    if (public_base != NULL && public_base[0] != '\0') {
        n = snprintf(out, cap, "%s", public_base);
    } else if (artifact_url_host_ok(host)) {
        n = snprintf(out, cap, "http://%s", host);
    } else if (strchr(listen_host, ':') != NULL) {
        n = snprintf(out, cap, "http://[%s]:%d", listen_host, listen_port);
    } else {
        n = snprintf(out, cap, "http://%s:%d", listen_host, listen_port);
    }
    if (n < 0 || (size_t)n >= cap) {
        if (cap > 0) {
            out[0] = '\0';
        }
        return -1;
    }
    return 0;
}
