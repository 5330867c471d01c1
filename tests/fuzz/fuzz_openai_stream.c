/*
 * Fuzz target: the OpenAI dialect's stream relay. The input after the first byte is an event
 * stream, cut where the first byte says and split into events by core/sse; every event goes to
 * stream_event and every chunk it makes to adapter_accum, finished at the end, as the worker does.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "core/sse.h"

struct run {
    void *state;
    cJSON *chunks;
    struct adapter_accum *acc;
    bool done;
};

/* Data is copied into an exact-length buffer: the hook must not read past len. */
static int on_event(const char *event, const char *data, size_t len, void *arg)
{
    struct run *r = arg;
    struct core_err err;
    char *copy = malloc(len ? len : 1);
    cJSON *chunk;
    int rc;

    if (copy == NULL) {
        return 1;
    }
    memcpy(copy, data, len);
    rc = adapter_openai.stream_event(r->state, event, copy, len, r->chunks, &r->done, &err);
    free(copy);
    while ((chunk = cJSON_DetachItemFromArray(r->chunks, 0)) != NULL) {
        adapter_accum_add(r->acc, chunk);
        cJSON_Delete(chunk);
    }
    return rc != 0 || r->done;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *input = cJSON_Parse("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":"
                               "\"x\"}],\"stream\":true}");
    struct adapter_target t = {"p", "http://127.0.0.1/v1", "k", "m", 0, false};
    struct adapter_call call = {
        .op = ADAPTER_OP_CHAT, .input = input, .target = &t, .stream = true};
    struct sse_parser *p = sse_parser_new(2048);
    struct adapter_result res = {0};
    struct run r = {0};
    size_t cut;

    r.state = adapter_openai.stream_new(&call);
    r.chunks = cJSON_CreateArray();
    r.acc = adapter_accum_new();
    if (size == 0 || input == NULL || p == NULL || r.state == NULL || r.chunks == NULL ||
        r.acc == NULL) {
        goto out;
    }
    cut = 1 + data[0] % size;
    if (sse_parser_feed(p, (const char *)data + 1, cut - 1, on_event, &r) == 0) {
        sse_parser_feed(p, (const char *)data + cut, size - cut, on_event, &r);
    }
    if (adapter_accum_finish(r.acc, &res) == 0) {
        adapter_result_cleanup(&res);
    }
out:
    if (r.state != NULL) {
        adapter_openai.stream_free(r.state);
    }
    adapter_accum_free(r.acc);
    cJSON_Delete(r.chunks);
    sse_parser_free(p);
    cJSON_Delete(input);
    return 0;
}
