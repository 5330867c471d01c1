/*
 * Fuzz target: the OpenAI dialect's reply parser. The first byte picks the HTTP status, the rest
 * is the body (not NUL-terminated, as the transport hands it over).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

static const int statuses[] = {200, 201, 400, 401, 404, 408, 413, 429, 500, 502, 503, 529};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct adapter_target t = {"p", "http://127.0.0.1/v1", "k", "m", 0};
    struct adapter_header h[] = {{"retry-after", "2"}, {"x-ratelimit-reset-requests", "1m3s"}};
    struct adapter_response resp = {0};
    struct adapter_result res = {0};
    struct core_err err;
    cJSON *input =
        cJSON_Parse("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    char *body = NULL;

    if (size == 0 || input == NULL) {
        cJSON_Delete(input);
        return 0;
    }
    body = malloc(size - 1 ? size - 1 : 1);
    if (body == NULL) {
        cJSON_Delete(input);
        return 0;
    }
    memcpy(body, data + 1, size - 1);
    resp.status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    resp.body = body;
    resp.body_len = size - 1;
    resp.headers = h;
    resp.n_headers = 2;
    resp.now_ms = 1700000000000;
    struct adapter_call call = {.op = ADAPTER_OP_CHAT, .input = input, .target = &t};
    if (adapter_openai.parse_response(&call, &resp, &res, &err) == 0) {
        adapter_result_cleanup(&res);
    }
    free(body);
    cJSON_Delete(input);
    return 0;
}
