/*
 * tests/mock/routes.c — the route table and the request entry point.
 *
 * Each dialect lives under its own path prefix, so one mock serves them all: OpenAI at /v1,
 * Anthropic at /anthropic/v1, Gemini at /gemini/v1beta, Replicate at /replicate/v1, fal at /fal.
 * Patterns: `*` is one non-empty segment, `*:suffix` one segment ending in ":suffix", `**` one or
 * more segments. Each wildcard is captured in order into x->cap.
 */
#include <stdio.h>
#include <string.h>

#include "tests/mock/mock.h"

const struct route mock_routes[] = {
    {EVHTTP_REQ_POST, "/v1/chat/completions", "openai.chat", &dialect_openai, 0, openai_chat},
    {EVHTTP_REQ_POST, "/v1/responses", "openai.responses", &dialect_openai, 0, openai_responses},
    {EVHTTP_REQ_POST, "/v1/embeddings", "openai.embeddings", &dialect_openai, 0, openai_embeddings},
    {EVHTTP_REQ_POST, "/v1/images/generations", "openai.images", &dialect_openai, 0, openai_images},
    {EVHTTP_REQ_POST, "/v1/images/edits", "openai.images.edits", &dialect_openai, 0,
     openai_images_edits},
    {EVHTTP_REQ_POST, "/v1/videos", "openai.videos.create", &dialect_openai, 0, videos_create},
    {EVHTTP_REQ_GET, "/v1/videos/*", "openai.videos.get", &dialect_openai, ROUTE_POLL, videos_get},
    {EVHTTP_REQ_GET, "/v1/videos/*/content", "openai.videos.content", &dialect_openai, ROUTE_POLL,
     videos_content},
    {EVHTTP_REQ_DELETE, "/v1/videos/*", "openai.videos.delete", &dialect_openai, 0, videos_delete},
    {EVHTTP_REQ_POST, "/anthropic/v1/messages", "anthropic.messages", &dialect_anthropic, 0,
     anthropic_messages},
    {EVHTTP_REQ_POST, "/gemini/v1beta/models/*:generateContent", "gemini.generate", &dialect_gemini,
     0, gemini_generate},
    {EVHTTP_REQ_POST, "/gemini/v1beta/models/*:streamGenerateContent", "gemini.stream",
     &dialect_gemini, 0, gemini_stream},
    {EVHTTP_REQ_POST, "/gemini/v1beta/models/*:predictLongRunning", "gemini.videos.create",
     &dialect_gemini, 0, gemini_predict_long_running},
    {EVHTTP_REQ_GET, "/gemini/v1beta/models/*/operations/*", "gemini.videos.get", &dialect_gemini,
     ROUTE_POLL, gemini_operation_get},
    {EVHTTP_REQ_GET, "/gemini/v1beta/files/*:download", "gemini.files.download", &dialect_gemini,
     ROUTE_POLL, gemini_file_download},
    {EVHTTP_REQ_POST, "/replicate/v1/models/*/*/predictions", "replicate.create_model",
     &dialect_replicate, 0, replicate_create_model},
    {EVHTTP_REQ_POST, "/replicate/v1/predictions", "replicate.create", &dialect_replicate, 0,
     replicate_create},
    {EVHTTP_REQ_GET, "/replicate/v1/predictions/*", "replicate.get", &dialect_replicate, ROUTE_POLL,
     replicate_get},
    {EVHTTP_REQ_POST, "/replicate/v1/predictions/*/cancel", "replicate.cancel", &dialect_replicate,
     0, replicate_cancel},
    {EVHTTP_REQ_GET, "/fal/**/requests/*/status", "fal.status", &dialect_fal, ROUTE_POLL,
     fal_status},
    {EVHTTP_REQ_GET, "/fal/**/requests/*", "fal.result", &dialect_fal, ROUTE_POLL, fal_result},
    {EVHTTP_REQ_PUT, "/fal/**/requests/*/cancel", "fal.cancel", &dialect_fal, 0, fal_cancel},
    {EVHTTP_REQ_POST, "/fal/**", "fal.submit", &dialect_fal, 0, fal_submit},
    {EVHTTP_REQ_GET, "/healthz", "healthz", NULL, 0, control_healthz},
    {EVHTTP_REQ_GET, "/_mock/stats", "mock.stats", NULL, 0, control_stats},
    {EVHTTP_REQ_GET, "/_mock/config", "mock.config", NULL, 0, control_config_get},
    {EVHTTP_REQ_POST, "/_mock/config", "mock.config", NULL, 0, control_config_set},
    {EVHTTP_REQ_POST, "/_mock/reset", "mock.reset", NULL, 0, control_reset},
    {EVHTTP_REQ_GET, "/_mock/blob/*", "mock.blob", NULL, 0, control_blob},
    {EVHTTP_REQ_GET, "/_mock/edits", "mock.edits", NULL, 0, mock_edits_get},
    {EVHTTP_REQ_GET, "/_mock/video_inputs", "mock.video_inputs", NULL, 0, mock_video_inputs_get},
    {EVHTTP_REQ_DELETE, "/_mock/video_inputs", "mock.video_inputs", NULL, 0,
     mock_video_inputs_delete},
};
const size_t mock_n_routes = sizeof(mock_routes) / sizeof(mock_routes[0]);
_Static_assert(sizeof(mock_routes) / sizeof(mock_routes[0]) <= MOCK_MAX_ROUTES,
               "raise MOCK_MAX_ROUTES");

/* Unmatched paths are answered in the dialect that owns their prefix. */
static const struct {
    const char *prefix;
    const struct dialect *dialect;
} prefixes[] = {
    {"/anthropic/", &dialect_anthropic},
    {"/gemini/", &dialect_gemini},
    {"/replicate/", &dialect_replicate},
    {"/fal/", &dialect_fal},
};

const struct dialect *routes_dialect_for(const char *path)
{
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        if (strncmp(path, prefixes[i].prefix, strlen(prefixes[i].prefix)) == 0) {
            return prefixes[i].dialect;
        }
    }
    return &dialect_openai;
}

const char *routes_path_key(const struct route *r)
{
    return strchr(r->pattern, '*') != NULL ? r->name : r->pattern;
}

/* Length of the segment at s (up to '/' or the end). */
static size_t segment_len(const char *s)
{
    const char *slash = strchr(s, '/');
    return slash != NULL ? (size_t)(slash - s) : strlen(s);
}

/*
 * Matches pattern p against path s, both positioned at a segment start (after a '/'). `**`
 * tries every split, shortest first; paths are short and patterns have one `**` at most.
 */
static bool match(struct exchange *x, const char *p, const char *s)
{
    while (*p != '\0') {
        size_t pn = segment_len(p), sn = segment_len(s);
        if (pn == 2 && p[0] == '*' && p[1] == '*') {
            size_t caps = x->n_caps;
            const char *rest = p[pn] == '/' ? p + pn + 1 : p + pn;
            for (const char *end = s + sn; sn > 0; end += 1 + segment_len(end + 1)) {
                if (caps >= MOCK_MAX_CAPTURES) {
                    return false;
                }
                x->cap[caps] = (struct capture){s, (size_t)(end - s)};
                x->n_caps = caps + 1;
                if (*rest == '\0' ? *end == '\0' : (*end == '/' && match(x, rest, end + 1))) {
                    return true;
                }
                x->n_caps = caps;
                if (*end == '\0') {
                    break;
                }
            }
            return false;
        }
        if (sn == 0) {
            return false;
        }
        if (p[0] == '*') {
            size_t suffix = pn - 1; /* "*:generateContent": the suffix is ":generateContent" */
            if (sn <= suffix || strncmp(s + sn - suffix, p + 1, suffix) != 0 ||
                x->n_caps >= MOCK_MAX_CAPTURES) {
                return false;
            }
            x->cap[x->n_caps++] = (struct capture){s, sn - suffix};
        } else if (pn != sn || strncmp(p, s, pn) != 0) {
            return false;
        }
        p += pn;
        s += sn;
        if (*p == '/' && *s == '/') {
            p++;
            s++;
        } else if (*p != '\0' || *s != '\0') {
            return false;
        }
    }
    return *s == '\0';
}

const struct route *routes_match(struct exchange *x, enum evhttp_cmd_type method, const char *path)
{
    if (path[0] != '/') {
        return NULL;
    }
    for (size_t i = 0; i < mock_n_routes; i++) {
        x->n_caps = 0;
        if (mock_routes[i].method == method && match(x, mock_routes[i].pattern + 1, path + 1)) {
            return &mock_routes[i];
        }
    }
    x->n_caps = 0;
    return NULL;
}

/*
 * Every request enters here. Control routes answer at once. Everything else is a provider request:
 * counted, recorded, run through the faults, answered by its handler, then sent now or held.
 */
void routes_on_request(struct evhttp_request *req, void *arg)
{
    struct mock *m = arg;
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = evhttp_uri_get_path(uri);
    const char *query = evhttp_uri_get_query(uri);
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct exchange x = {.m = m, .req = req, .body_len = evbuffer_get_length(in)};
    path = path != NULL ? path : "";
    x.body = x.body_len > 0 ? (const char *)evbuffer_pullup(in, -1) : NULL;
    x.route = routes_match(&x, evhttp_request_get_command(req), path);
    if (x.route != NULL && x.route->dialect == NULL) {
        reply_send_control(req, x.route->handle(&x));
        return;
    }

    x.seq = ++m->requests;
    control_record(m, &x, path, query);
    char request_id[40];
    snprintf(request_id, sizeof(request_id), "req_mock_%llu", x.seq);
    mock_out_header(&x, "x-request-id", request_id);
    if (x.route == NULL) {
        const struct dialect *d = routes_dialect_for(path);
        m->unmatched++;
        if (d->request_id_header != NULL) {
            mock_out_header(&x, d->request_id_header, request_id);
        }
        reply_send(m, req, d->error(&x, 404, NULL, "mock: unknown route", NULL));
        return;
    }
    m->by_route[x.route - mock_routes]++;
    if (x.route->dialect->request_id_header != NULL) {
        mock_out_header(&x, x.route->dialect->request_id_header, request_id);
    }

    int status = faults_run(&x);
    if (status == ANSWER_PASS) {
        status = x.route->handle(&x);
    }
    bool delay = (x.route->flags & ROUTE_POLL) == 0 || m->config.faults_on_polls;
    long latency = delay ? m->config.latency_ms : 0;
    if (status == ANSWER_HANG) {
        reply_hold(m, req, status, NULL, MOCK_HANG_MS, false);
    } else if (x.hold_ms > 0) {
        reply_hold(m, req, status, x.stream, x.hold_ms + latency, false);
    } else if (latency > 0 || status == ANSWER_RESET) {
        reply_hold(m, req, status, x.stream, latency, latency > 0);
    } else {
        reply_answer(m, req, status, x.stream);
    }
}
