/*
 * Fuzz target: the OpenAI dialect's reply parsers. The first byte picks the HTTP status (byte %
 * 12) and the parser ((byte / 12) % 5: chat, embedding, image, video submission, video poll);
 * the rest is the body (not NUL-terminated, as the transport hands it over).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const int statuses[] = {200, 201, 400, 401, 404, 408, 413, 429, 500, 502, 503, 529};

/* Each parse path with the client request it answers. */
static const struct {
    enum adapter_op op;
    bool poll;
    const char *input;
} paths[] = {
    {ADAPTER_OP_CHAT, false,
     "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}"},
    {ADAPTER_OP_EMBEDDING, false, "{\"model\":\"e\",\"input\":\"x\"}"},
    {ADAPTER_OP_IMAGE, false, "{\"model\":\"i\",\"prompt\":\"x\",\"output_format\":\"jpeg\"}"},
    {ADAPTER_OP_VIDEO, false, "{\"model\":\"v\",\"prompt\":\"x\",\"seconds\":\"4\"}"},
    {ADAPTER_OP_VIDEO, true, "{\"model\":\"v\",\"prompt\":\"x\"}"},
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct adapter_target t = {"p", "http://127.0.0.1/v1", "k", "m", 0, false};
    struct adapter_header h[] = {{"retry-after", "2"}, {"x-ratelimit-reset-requests", "1m3s"}};
    struct adapter_response resp = {0};
    struct adapter_result res = {0};
    struct core_err err;
    cJSON *input = NULL;
    char *body = NULL;
    size_t path;
    int rc;

    if (size == 0) {
        return 0;
    }
    path = (size_t)(data[0] / ARRAY_LEN(statuses)) % ARRAY_LEN(paths);
    input = cJSON_Parse(paths[path].input);
    body = malloc(size - 1 ? size - 1 : 1);
    if (body == NULL || input == NULL) {
        goto out;
    }
    memcpy(body, data + 1, size - 1);
    resp.status = statuses[data[0] % ARRAY_LEN(statuses)];
    resp.body = body;
    resp.body_len = size - 1;
    resp.headers = h;
    resp.n_headers = ARRAY_LEN(h);
    resp.now_ms = 1700000000000;
    struct adapter_call call = {.op = paths[path].op,
                                .input = input,
                                .target = &t,
                                .upstream_id = paths[path].poll ? "video_1" : NULL};
    if (paths[path].poll) {
        rc = adapter_openai.parse_poll(&call, &resp, &res, &err);
    } else {
        rc = adapter_openai.parse_response(&call, &resp, &res, &err);
    }
    if (rc == 0) {
        adapter_result_cleanup(&res);
    }
out:
    free(body);
    cJSON_Delete(input);
    return 0;
}
