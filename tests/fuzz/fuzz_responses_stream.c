/*
 * Fuzz target: a response task's stream (adapters/responses.h). The first byte picks the path —
 * native (OpenAI's typed Responses events), translated through the OpenAI-compatible chat stream,
 * Anthropic's or Gemini's — and where the rest is cut; the rest is an event stream split into
 * events by core/sse, each handed to responses_stream_event as the worker does, then the result
 * taken (or the stream failed) and freed. Every sequence_number the events carry must increase by
 * one from 0.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/responses.h"
#include "core/sse.h"

struct run {
    struct responses_stream *s;
    cJSON *events;
    bool done;
    double next_seq;
};

/* Checks and drops the events made so far; aborts on a gap (the fuzzer's finding). */
static void drain(struct run *r)
{
    cJSON *ev;

    while ((ev = cJSON_DetachItemFromArray(r->events, 0)) != NULL) {
        const cJSON *seq = cJSON_GetObjectItemCaseSensitive(ev, "sequence_number");
        if (!cJSON_IsNumber(seq) || seq->valuedouble != r->next_seq) {
            abort();
        }
        r->next_seq += 1;
        cJSON_Delete(ev);
    }
}

/* Data is copied into an exact-length buffer: the hook must not read past len. */
static int on_event(const char *event, const char *data, size_t len, void *arg)
{
    struct run *r = arg;
    struct core_err err;
    char *copy = malloc(len ? len : 1);
    int rc;

    if (copy == NULL) {
        return 1;
    }
    memcpy(copy, data, len);
    core_err_clear(&err);
    rc = responses_stream_event(r->s, event, copy, len, r->events, &r->done, &err);
    free(copy);
    if (rc != 0) {
        responses_stream_fail(r->s, &err, r->events);
    }
    drain(r);
    return rc != 0 || r->done;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const struct adapter *const dialects[] = {&adapter_openai, &adapter_openai,
                                                     &adapter_anthropic, &adapter_gemini};
    cJSON *input = cJSON_Parse("{\"model\":\"a\",\"input\":\"x\",\"stream\":true,"
                               "\"tools\":[{\"type\":\"function\",\"name\":\"f\","
                               "\"parameters\":{\"type\":\"object\"}}]}");
    struct adapter_target t = {"p", "http://127.0.0.1/v1", "k", "m", 1024, false};
    struct adapter_call call = {
        .op = ADAPTER_OP_RESPONSE, .input = input, .target = &t, .stream = true};
    struct sse_parser *p = sse_parser_new(2048);
    struct adapter_result res = {0};
    struct run r = {0};
    const struct adapter *ad;
    size_t cut;

    if (size == 0 || input == NULL || p == NULL) {
        goto out;
    }
    ad = dialects[data[0] % 4];
    t.responses_native = data[0] % 4 == 0;
    r.s = responses_stream_new(ad, &call, "resp_abcdefghijklmnopqrstuvwxyz", 1700000000);
    r.events = cJSON_CreateArray();
    if (r.s == NULL || r.events == NULL || responses_stream_start(r.s, r.events) != 0) {
        goto out;
    }
    drain(&r);
    cut = 1 + (data[0] / 4) % size;
    if (sse_parser_feed(p, (const char *)data + 1, cut - 1, on_event, &r) == 0) {
        sse_parser_feed(p, (const char *)data + cut, size - cut, on_event, &r);
    }
    if (r.done && responses_stream_result(r.s, &res) == 0) {
        adapter_result_cleanup(&res);
    }
out:
    responses_stream_free(r.s);
    cJSON_Delete(r.events);
    sse_parser_free(p);
    cJSON_Delete(input);
    return 0;
}
