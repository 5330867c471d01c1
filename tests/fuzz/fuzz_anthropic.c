/*
 * Fuzz target: the Anthropic dialect. The first byte picks what the rest is:
 *   0: a reply body for parse_response, with the HTTP status picked by the second byte and
 *      rate-limit headers (retry-after absent, so the RFC 3339 reset path runs);
 *   1: a stream: events separated by blank lines ("\n\n"), each handed to stream_event as one
 *      event's data, until the dialect sets done or fails;
 *   2: a client's chat body for build_request (streaming when the second byte is odd).
 * Bodies and events are copied into exact-length buffers, as the transport hands them over.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

static const int statuses[] = {200, 201, 400, 401, 403, 404, 413, 429, 500, 502, 529};

static const struct adapter_header headers[] = {
    {"anthropic-ratelimit-requests-remaining", "0"},
    {"anthropic-ratelimit-requests-reset", "2023-11-14T22:13:50.25+01:00"},
    {"anthropic-ratelimit-tokens-remaining", "10"},
    {"anthropic-ratelimit-tokens-reset", "2023-11-14T22:14:20Z"},
};

/* A copy of data[0..len) with nothing after it, so reading past len trips ASan. */
static char *exact_copy(const uint8_t *data, size_t len)
{
    char *p = malloc(len ? len : 1);

    if (p != NULL && len > 0) {
        memcpy(p, data, len);
    }
    return p;
}

static void fuzz_reply(const struct adapter_call *call, const uint8_t *data, size_t size)
{
    struct adapter_response resp = {0};
    struct adapter_result res;
    struct core_err err;
    char *body;

    if (size == 0) {
        return;
    }
    body = exact_copy(data + 1, size - 1);
    if (body == NULL) {
        return;
    }
    resp.status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    resp.body = body;
    resp.body_len = size - 1;
    resp.headers = headers;
    resp.n_headers = sizeof(headers) / sizeof(headers[0]);
    resp.now_ms = 1700000000000;
    if (adapter_anthropic.parse_response(call, &resp, &res, &err) == 0) {
        adapter_result_cleanup(&res);
    }
    free(body);
}

static void fuzz_stream(const struct adapter_call *call, const uint8_t *data, size_t size)
{
    void *state = adapter_anthropic.stream_new(call);
    cJSON *chunks = cJSON_CreateArray();
    struct adapter_accum *acc = adapter_accum_new();
    size_t at = 0;
    bool done = false;

    while (state != NULL && chunks != NULL && at < size && !done) {
        const uint8_t *sep = NULL;
        size_t len;
        char *ev;
        struct core_err err;
        int rc;

        for (size_t i = at; i + 1 < size; i++) {
            if (data[i] == '\n' && data[i + 1] == '\n') {
                sep = data + i;
                break;
            }
        }
        len = sep ? (size_t)(sep - (data + at)) : size - at;
        ev = exact_copy(data + at, len);
        if (ev == NULL) {
            break;
        }
        rc = adapter_anthropic.stream_event(state, len % 3 ? NULL : "message_stop", ev, len, chunks,
                                            &done, &err);
        free(ev);
        if (rc != 0) {
            break;
        }
        at += len + 2;
    }
    if (acc != NULL && chunks != NULL) {
        const cJSON *c;
        struct adapter_result res = {0};
        cJSON_ArrayForEach(c, chunks)
        {
            adapter_accum_add(acc, c);
        }
        if (adapter_accum_finish(acc, &res) == 0) {
            adapter_result_cleanup(&res);
        }
    }
    adapter_accum_free(acc);
    cJSON_Delete(chunks);
    adapter_anthropic.stream_free(state);
}

static void fuzz_request(struct adapter_call *call, const uint8_t *data, size_t size)
{
    struct adapter_request req;
    struct core_err err;
    cJSON *input;

    if (size == 0) {
        return;
    }
    input = adapter_json_parse((const char *)data + 1, size - 1);
    call->input = input;
    call->stream = data[0] & 1;
    if (adapter_anthropic.build_request(call, &req, &err) == 0) {
        adapter_request_cleanup(&req);
    }
    cJSON_Delete(input);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct adapter_target t = {"p", "https://api.anthropic.com/v1", "k", "claude-x", 0, false};
    cJSON *input =
        cJSON_Parse("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    struct adapter_call call = {.op = ADAPTER_OP_CHAT, .input = input, .target = &t};

    if (size == 0 || input == NULL) {
        cJSON_Delete(input);
        return 0;
    }
    switch (data[0] % 3) {
    case 0:
        fuzz_reply(&call, data + 1, size - 1);
        break;
    case 1:
        call.stream = true;
        fuzz_stream(&call, data + 1, size - 1);
        break;
    default:
        t.default_max_tokens = size % 2 ? 1024 : 0;
        fuzz_request(&call, data + 1, size - 1);
        break;
    }
    cJSON_Delete(input);
    return 0;
}
