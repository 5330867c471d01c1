/*
 * Fuzz target: the Gemini dialect. The first byte picks what the rest is:
 *   byte % 3 == 0  a reply body for parse_response, with the HTTP status (byte / 3) picks;
 *   byte % 3 == 1  a stream: events separated by NUL bytes, each handed to one stream_event on
 *                  the same state until one fails or says done;
 *   byte % 3 == 2  a client chat body for build_request (streaming when byte / 3 is odd).
 * Bodies and event data are copied into buffers of their exact length, as the worker hands them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

static const int statuses[] = {200, 200, 400, 403, 404, 429, 500, 503, 504};

static const char default_input[] =
    "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}";

static void fuzz_parse(const struct adapter_call *call, const uint8_t *data, size_t size,
                       int status)
{
    struct adapter_header h[] = {{"content-type", "application/json"}};
    struct adapter_response resp = {0};
    struct adapter_result res = {0};
    struct core_err err;
    char *body = malloc(size ? size : 1);

    if (body == NULL) {
        return;
    }
    memcpy(body, data, size);
    resp.status = status;
    resp.body = body;
    resp.body_len = size;
    resp.headers = h;
    resp.n_headers = 1;
    resp.now_ms = 1700000000000;
    if (adapter_gemini.parse_response(call, &resp, &res, &err) == 0) {
        adapter_result_cleanup(&res);
    }
    free(body);
}

static void fuzz_stream(const struct adapter_call *call, const uint8_t *data, size_t size)
{
    void *state = adapter_gemini.stream_new(call);
    cJSON *chunks = cJSON_CreateArray();
    size_t at = 0;

    while (state != NULL && chunks != NULL && at <= size) {
        const uint8_t *nul = memchr(data + at, 0, size - at);
        size_t len = nul ? (size_t)(nul - (data + at)) : size - at;
        char *event = malloc(len ? len : 1);
        struct core_err err;
        bool done = false;
        int rc;

        if (event == NULL) {
            break;
        }
        memcpy(event, data + at, len);
        rc = adapter_gemini.stream_event(state, NULL, event, len, chunks, &done, &err);
        free(event);
        if (rc != 0 || done) {
            break;
        }
        at += len + 1;
    }
    cJSON_Delete(chunks);
    if (state != NULL) {
        adapter_gemini.stream_free(state);
    }
}

static void fuzz_build(struct adapter_call *call, const uint8_t *data, size_t size, bool stream)
{
    cJSON *input = cJSON_ParseWithLength((const char *)data, size);
    struct adapter_request req;
    struct core_err err;

    call->input = input;
    call->stream = stream;
    if (input != NULL && adapter_gemini.build_request(call, &req, &err) == 0) {
        adapter_request_cleanup(&req);
    }
    cJSON_Delete(input);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct adapter_target t = {"p", "http://127.0.0.1/v1beta", "k", "gemini-2.5-flash", 0, false};
    cJSON *input = cJSON_Parse(default_input);
    struct adapter_call call = {.op = ADAPTER_OP_CHAT, .input = input, .target = &t};
    unsigned sel;

    if (size == 0 || input == NULL) {
        cJSON_Delete(input);
        return 0;
    }
    sel = data[0];
    switch (sel % 3) {
    case 0:
        fuzz_parse(&call, data + 1, size - 1,
                   statuses[(sel / 3) % (sizeof(statuses) / sizeof(statuses[0]))]);
        break;
    case 1:
        fuzz_stream(&call, data + 1, size - 1);
        break;
    default:
        fuzz_build(&call, data + 1, size - 1, (sel / 3) % 2 == 1);
        break;
    }
    cJSON_Delete(input);
    return 0;
}
