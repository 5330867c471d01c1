/*
 * Fuzz target: the long-running job dialects' reply parsers (replicate, fal) on arbitrary bodies.
 * The first byte picks the dialect (bit 0), the op (bit 1: image or video), the hook (bit 2:
 * parse_response or parse_poll), fal's job phase (bit 3: status or result) and the HTTP status
 * (bits 4-7); the rest is the body, not NUL-terminated, as the transport hands it over. A reply
 * read as PENDING is fed back into build_poll and build_cancel, as the worker would.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"

static const int statuses[16] = {200, 201, 202, 400, 401, 404, 408, 422,
                                 429, 500, 502, 503, 504, 529, 299, 302};

static const char *const jobs[] = {
    "{\"get\":\"https://api.replicate.com/v1/predictions/abc123\","
    "\"cancel\":\"https://api.replicate.com/v1/predictions/abc123/cancel\"}",
    "{\"status\":\"https://queue.fal.run/fal-ai/flux/requests/abc123/status\","
    "\"response\":\"https://queue.fal.run/fal-ai/flux/requests/abc123\","
    "\"cancel\":\"https://queue.fal.run/fal-ai/flux/requests/abc123/cancel\",\"phase\":\"%s\"}",
};

/* The hooks a PENDING result leads to next, with the state it carries. */
static void follow_up(const struct adapter *a, const struct adapter_call *call,
                      const struct adapter_result *res)
{
    struct adapter_call next = *call;
    struct adapter_request req;
    struct core_err err;

    next.upstream_id = res->upstream_id;
    next.job = res->job;
    if (a->build_poll(&next, &req, &err) == 0) {
        adapter_request_cleanup(&req);
    }
    if (a->build_cancel(&next, &req, &err) == 0) {
        adapter_request_cleanup(&req);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const bool fal = size > 0 && (data[0] & 1) != 0;
    const struct adapter *a = fal ? &adapter_fal : &adapter_replicate;
    struct adapter_target t = {fal ? "fal" : "replicate",
                               fal ? "https://queue.fal.run" : "https://api.replicate.com/v1",
                               "k",
                               fal ? "fal-ai/flux/dev" : "owner/model",
                               0,
                               false};
    struct adapter_header h[] = {
        {"retry-after", "2"},
        {"X-Fal-Retryable", (size & 1) ? "true" : "false"},
        {"x-fal-error-type", "runner_disconnected"},
    };
    struct adapter_call call = {.target = &t};
    struct adapter_response resp = {0};
    struct adapter_result res = {0};
    struct core_err err;
    char job_text[512];
    cJSON *input = NULL;
    cJSON *job = NULL;
    char *body = NULL;
    int rc;

    if (size == 0) {
        return 0;
    }
    snprintf(job_text, sizeof(job_text), jobs[fal ? 1 : 0], (data[0] & 8) ? "result" : "status");
    input = cJSON_Parse("{\"model\":\"a\",\"prompt\":\"p\",\"n\":2,\"size\":\"1024x1024\","
                        "\"seconds\":\"5\"}");
    job = cJSON_Parse(job_text);
    body = malloc(size - 1 ? size - 1 : 1);
    if (input == NULL || job == NULL || body == NULL) {
        goto out;
    }
    memcpy(body, data + 1, size - 1);
    resp.status = statuses[data[0] >> 4];
    resp.body = body;
    resp.body_len = size - 1;
    resp.headers = h;
    resp.n_headers = sizeof(h) / sizeof(h[0]);
    resp.now_ms = 1700000000000;
    call.op = (data[0] & 2) ? ADAPTER_OP_VIDEO : ADAPTER_OP_IMAGE;
    call.input = input;
    if (data[0] & 4) {
        call.upstream_id = "abc123";
        call.job = job;
        rc = a->parse_poll(&call, &resp, &res, &err);
    } else {
        rc = a->parse_response(&call, &resp, &res, &err);
    }
    if (rc == 0 && res.outcome == ADAPTER_PENDING) {
        follow_up(a, &call, &res);
    }
    adapter_result_cleanup(&res);
out:
    free(body);
    cJSON_Delete(job);
    cJSON_Delete(input);
    return 0;
}
