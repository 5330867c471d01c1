/*
 * tests/mock/faults.c — the fault chain, applied in table order to every provider request (and
 * to job polls unless faults_on_polls is off). Each step either passes or answers, in the route's
 * dialect: its envelope, its auth header, its 429 headers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/mock/mock.h"

/* Whether the switches apply: always for submits, for polls only with faults_on_polls. */
static bool faults_apply(struct exchange *x)
{
    return !(x->route->flags & ROUTE_POLL) || x->m->config.faults_on_polls;
}

static int fault_hang(struct exchange *x)
{
    return faults_apply(x) && x->m->config.hang ? ANSWER_HANG : ANSWER_PASS;
}

static int fault_reset(struct exchange *x)
{
    return faults_apply(x) && x->m->config.reset ? ANSWER_RESET : ANSWER_PASS;
}

/* Credentials are checked before the rate limit and injected errors, as real providers do. */
static int fault_auth(struct exchange *x)
{
    return x->route->dialect->auth(x);
}

/*
 * Token bucket of rate_limit_rps requests per second, refilled continuously by monotonic time.
 * Capacity is rps but at least one, so a rate below 1/s still lets a request through now and then.
 */
static int fault_rate_limit(struct exchange *x)
{
    struct mock *m = x->m;
    double rps = m->config.rate_limit_rps;
    if (rps <= 0 || !faults_apply(x)) {
        return ANSWER_PASS;
    }
    double now = mock_monotonic_s();
    double cap = rps < 1 ? 1 : rps;
    m->tokens = fmin(cap, m->tokens + (now - m->bucket_at) * rps);
    m->bucket_at = now;
    if (m->tokens >= 1.0) {
        m->tokens -= 1.0;
        return ANSWER_PASS;
    }
    return x->route->dialect->rate_limited(x, (1.0 - m->tokens) / rps);
}

const char *faults_message(struct mock *m, int status, char *buf, size_t len)
{
    if (m->config.error_message != NULL) {
        return m->config.error_message;
    }
    snprintf(buf, len, "mock: injected %d", status);
    return buf;
}

void faults_retry_after_header(struct exchange *x)
{
    char retry[32];
    if (evhttp_find_header(evhttp_request_get_output_headers(x->req), "retry-after") != NULL) {
        return;
    }
    snprintf(retry, sizeof(retry), "%ld", x->m->config.retry_after_s);
    mock_out_header(x, "retry-after", retry);
}

/* The dialect adds what its 429s carry (retry-after, or Gemini's RetryInfo). */
static int inject_error(struct exchange *x)
{
    int status = (int)x->m->config.error_status;
    char message[64];
    return x->route->dialect->error(x, status, NULL,
                                    faults_message(x->m, status, message, sizeof(message)), NULL);
}

static int fault_fail_first(struct exchange *x)
{
    struct mock *m = x->m;
    if (!faults_apply(x) || m->fail_seen >= (unsigned long long)m->config.fail_first) {
        return ANSWER_PASS;
    }
    m->fail_seen++;
    return inject_error(x);
}

static int fault_error_rate(struct exchange *x)
{
    double rate = x->m->config.error_rate;
    if (rate <= 0 || !faults_apply(x) || mock_rng_next(x->m) >= rate) {
        return ANSWER_PASS;
    }
    return inject_error(x);
}

static int fault_malformed(struct exchange *x)
{
    if (!x->m->config.malformed || !faults_apply(x)) {
        return ANSWER_PASS;
    }
    const char *broken = x->route->dialect->broken_body;
    evbuffer_add(mock_out_body(x), broken, strlen(broken));
    return 200;
}

/*
 * 200 with exactly N bytes of valid JSON ({"mock_padding":"xxxx…"}), to test a client's
 * response cap. The padding is one 64 KiB block of the mock's, added by reference: no copy.
 */
static int fault_huge_body(struct exchange *x)
{
    static const char head[] = "{\"mock_padding\":\"", tail[] = "\"}";
    struct mock *m = x->m;
    size_t n = (size_t)m->config.huge_body_bytes;
    if (n == 0 || !faults_apply(x)) {
        return ANSWER_PASS;
    }
    if (m->filler == NULL) {
        if ((m->filler = malloc(MOCK_FILLER_BYTES)) == NULL) {
            return x->route->dialect->error(x, 500, NULL, "mock: out of memory", NULL);
        }
        memset(m->filler, 'x', MOCK_FILLER_BYTES);
    }
    struct evbuffer *out = mock_out_body(x);
    size_t frame = sizeof(head) - 1 + sizeof(tail) - 1;
    if (n < frame) { /* too small for valid JSON: its first n bytes */
        static const char whole[] = "{\"mock_padding\":\"\"}";
        evbuffer_add(out, whole, n);
        return 200;
    }
    evbuffer_add(out, head, sizeof(head) - 1);
    for (size_t left = n - frame; left > 0;) {
        size_t take = left < MOCK_FILLER_BYTES ? left : MOCK_FILLER_BYTES;
        evbuffer_add_reference(out, m->filler, take, NULL, NULL);
        left -= take;
    }
    evbuffer_add(out, tail, sizeof(tail) - 1);
    return 200;
}

static int (*const faults[])(struct exchange *x) = {
    fault_hang,       fault_reset,      fault_auth,      fault_rate_limit,
    fault_fail_first, fault_error_rate, fault_malformed, fault_huge_body,
};

int faults_run(struct exchange *x)
{
    int status = ANSWER_PASS;
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]) && status == ANSWER_PASS; i++) {
        status = faults[i](x);
    }
    return status;
}

void faults_bucket_refill(struct mock *m)
{
    m->tokens = m->config.rate_limit_rps < 1 ? 1 : m->config.rate_limit_rps;
    m->bucket_at = mock_monotonic_s();
}
