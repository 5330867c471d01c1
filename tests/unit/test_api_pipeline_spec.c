/*
 * Unit tests of api/pipeline_spec: checking a spec (implied and explicit dependencies, final
 * steps, every 400 and 422 with its param, cycles, the bounds), a task's message text, and
 * resolving a step's input (text, json and result paths, artifacts through a fake hand-over,
 * fan-out lists, item and index, splices and their bound) and a for_each list.
 */
#include <stdlib.h>

#include "api/pipeline_spec.h"
#include "check.h"

/* A spec parsed from text; *rc its result. The caller frees spec and *json. */
static void parse_text(const char *text, size_t max_steps, cJSON **json, struct pipe_spec *spec,
                       int *rc, struct core_err *err)
{
    core_err_clear(err);
    *json = cJSON_Parse(text);
    *rc = pipe_spec_parse(*json, max_steps, spec, err);
}

/* text is refused with code and param (and a message containing msg, unless NULL). */
static void expect_refused(const char *text, size_t max_steps, int code, const char *param,
                           const char *msg)
{
    struct pipe_spec spec;
    struct core_err err;
    cJSON *json;
    int rc;

    parse_text(text, max_steps, &json, &spec, &rc, &err);
    CHECK_MSG(json != NULL, "the test's JSON does not parse: %s", text);
    CHECK_MSG(rc == code && err.code == code, "rc %d (want %d) for %s: %s", rc, code, text,
              err.message);
    CHECK_MSG(strcmp(err.param, param) == 0, "param \"%s\", want \"%s\" for %s", err.param, param,
              text);
    CHECK_I64(err.http_status, code == CORE_EINVAL ? 400 : 422);
    if (msg != NULL) {
        CHECK_MSG(strstr(err.message, msg) != NULL, "message \"%s\" lacks \"%s\"", err.message,
                  msg);
    }
    pipe_spec_free(&spec);
    cJSON_Delete(json);
}

/* The after list of step i as text: "0,2". */
static const char *after_text(const struct pipe_spec *spec, size_t i)
{
    static char buf[256];
    size_t len = 0;

    buf[0] = '\0';
    for (size_t k = 0; k < spec->steps[i].n_after; k++) {
        len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s%d", k ? "," : "",
                                spec->steps[i].after[k]);
    }
    return buf;
}

static void test_chat_image_video(void)
{
    struct pipe_spec spec = {0};
    struct core_err err;
    cJSON *json = NULL;
    int rc;

    parse_text("[{\"id\":\"script\",\"kind\":\"chat\",\"input\":{\"model\":\"m\",\"messages\":[{"
               "\"role\":\"user\",\"content\":\"write a scene\"}]}},"
               "{\"id\":\"img\",\"kind\":\"image\",\"input\":{\"model\":\"i\","
               "\"prompt\":\"Draw: {{ script.text }}\"}},"
               "{\"id\":\"vid\",\"kind\":\"video\",\"input\":{\"model\":\"v\",\"prompt\":\"move\","
               "\"input_reference\":{\"$ref\":\"img.artifacts[0]\"}}}]",
               10, &json, &spec, &rc, &err);
    CHECK_OR_OUT(rc == 0, "%s (%s)", err.message, err.param);
    CHECK_I64(spec.n, 3);
    CHECK_STR(spec.steps[0].id, "script");
    CHECK_I64(spec.steps[0].kind, TASK_KIND_CHAT);
    CHECK_I64(spec.steps[1].kind, TASK_KIND_IMAGE);
    CHECK_I64(spec.steps[2].kind, TASK_KIND_VIDEO);
    CHECK_STR(after_text(&spec, 0), "");
    CHECK_STR(after_text(&spec, 1), "0");
    CHECK_STR(after_text(&spec, 2), "1");
    CHECK(!spec.steps[0].final && !spec.steps[1].final && spec.steps[2].final);
    CHECK(!spec.steps[0].fan_out && !spec.steps[1].fan_out && !spec.steps[2].fan_out);
    CHECK(spec.steps[1].input == cJSON_GetObjectItem(cJSON_GetArrayItem(json, 1), "input"));
    CHECK_I64(pipe_spec_find(&spec, "vid"), 2);
    CHECK_I64(pipe_spec_find(&spec, "nope"), -1);
out:
    pipe_spec_free(&spec);
    cJSON_Delete(json);
}

static void test_after_union(void)
{
    struct pipe_spec spec = {0};
    struct core_err err;
    cJSON *json = NULL;
    int rc;

    /* explicit after ∪ references ∪ for_each, unique and ascending; two final steps */
    parse_text("[{\"id\":\"a\",\"kind\":\"chat\",\"input\":{}},"
               "{\"id\":\"b\",\"kind\":\"response\",\"input\":{}},"
               "{\"id\":\"c\",\"kind\":\"embedding\",\"input\":{}},"
               "{\"id\":\"d\",\"kind\":\"image\",\"after\":[\"c\",\"a\",\"c\"],"
               "\"for_each\":\"b.json.list\",\"input\":{\"p\":\"{{a.text}} {{item}} {{index}}\","
               "\"q\":[{\"$ref\":\"a.result.id\"},{\"deep\":{\"$ref\":\"c.result\"}}]}},"
               "{\"id\":\"e\",\"kind\":\"video\",\"input\":{\"x\":\"{{ d.json[0].k }}\"}}]",
               10, &json, &spec, &rc, &err);
    CHECK_OR_OUT(rc == 0, "%s (%s)", err.message, err.param);
    CHECK_STR(after_text(&spec, 3), "0,1,2");
    CHECK_STR(after_text(&spec, 4), "3");
    CHECK(spec.steps[3].fan_out);
    CHECK_I64(spec.steps[3].for_each.step, 1);
    CHECK_I64(spec.steps[3].for_each.sel, PIPE_SEL_JSON);
    CHECK_STR(spec.steps[3].for_each.path, "list");
    CHECK_STR(spec.steps[3].for_each.text, "b.json.list");
    CHECK(!spec.steps[0].final && !spec.steps[1].final && !spec.steps[2].final);
    CHECK(!spec.steps[3].final && spec.steps[4].final);
    CHECK_I64(spec.steps[1].kind, TASK_KIND_RESPONSE);
out:
    pipe_spec_free(&spec);
    cJSON_Delete(json);

    /* steps that wait for nothing and nobody waits for are all final, in any order */
    parse_text("[{\"id\":\"later\",\"kind\":\"chat\",\"input\":{\"m\":\"{{first.text}}\"}},"
               "{\"id\":\"first\",\"kind\":\"chat\",\"input\":{}},"
               "{\"id\":\"alone\",\"kind\":\"chat\",\"input\":{}}]",
               3, &json, &spec, &rc, &err);
    CHECK(rc == 0);
    if (rc == 0) {
        CHECK_STR(after_text(&spec, 0), "1");
        CHECK(spec.steps[0].final && !spec.steps[1].final && spec.steps[2].final);
    }
    pipe_spec_free(&spec);
    cJSON_Delete(json);
}

#define A "{\"id\":\"a\",\"kind\":\"chat\",\"input\":{}}"

static void test_refused_400(void)
{
    char big[2048];
    char *deep;
    size_t len;

    expect_refused("{}", 10, CORE_EINVAL, "steps", "array");
    expect_refused("[]", 10, CORE_EINVAL, "steps", "empty");
    expect_refused("[" A "," A "]", 1, CORE_EINVAL, "steps", "2 steps, at most 1");
    expect_refused("[1]", 10, CORE_EINVAL, "steps[0]", "not an object");
    expect_refused("[" A ",{\"kind\":\"chat\",\"input\":{}}]", 10, CORE_EINVAL, "steps[1].id",
                   NULL);
    expect_refused("[{\"id\":\"a b\",\"kind\":\"chat\",\"input\":{}}]", 10, CORE_EINVAL,
                   "steps[0].id", NULL);
    expect_refused("[{\"id\":\"\",\"kind\":\"chat\",\"input\":{}}]", 10, CORE_EINVAL, "steps[0].id",
                   NULL);
    expect_refused("[{\"id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\","
                   "\"kind\":\"chat\",\"input\":{}}]",
                   10, CORE_EINVAL, "steps[0].id", NULL); /* 65 characters */
    expect_refused("[{\"id\":\"item\",\"kind\":\"chat\",\"input\":{}}]", 10, CORE_EINVAL,
                   "steps[0].id", "reserved");
    /* a member a step does not have is refused, not ignored */
    expect_refused("[{\"id\":\"a\",\"kind\":\"chat\",\"input\":{},\"foreach\":\"x\"}]", 10,
                   CORE_EINVAL, "steps[0].foreach", "Unknown field");
    expect_refused("[" A "," A "]", 10, CORE_EINVAL, "steps[1].id", "twice");
    expect_refused("[{\"id\":\"a\",\"kind\":\"sing\",\"input\":{}}]", 10, CORE_EINVAL,
                   "steps[0].kind", NULL);
    expect_refused("[{\"id\":\"a\",\"input\":{}}]", 10, CORE_EINVAL, "steps[0].kind", NULL);
    expect_refused("[{\"id\":\"a\",\"kind\":\"chat\",\"input\":[]}]", 10, CORE_EINVAL,
                   "steps[0].input", NULL);
    expect_refused("[{\"id\":\"a\",\"kind\":\"chat\"}]", 10, CORE_EINVAL, "steps[0].input", NULL);
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"after\":\"a\",\"input\":{}}]", 10,
                   CORE_EINVAL, "steps[1].after", NULL);
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"after\":[\"a\",2],\"input\":{}}]", 10,
                   CORE_EINVAL, "steps[1].after[1]", NULL);
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"for_each\":[],\"input\":{}}]", 10,
                   CORE_EINVAL, "steps[1].for_each", NULL);
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"x\":{\"$ref\":\"a.text\","
                   "\"y\":1}}}]",
                   10, CORE_EINVAL, "steps[1].input.x", "$ref");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"x\":[{\"$ref\":7}]}}]", 10,
                   CORE_EINVAL, "steps[1].input.x[0]", "$ref");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"messages\":[{\"content\":"
                   "\"{{a.text}} and {{a.text\"}]}}]",
                   10, CORE_EINVAL, "steps[1].input.messages[0].content", "without");

    /* references that do not parse */
    static const char *const bad[] = {
        "{{}}",
        "{{ }}",
        "{{a}}",
        "{{a.}}",
        "{{a.bogus}}",
        "{{a.texts}}",
        "{{a.json.}}",
        "{{a.json.x..y}}",
        "{{a.json.x.}}",
        "{{a.json.[0]x}}",
        "{{a.json[x]}}",
        "{{a.json.p[1}}",
        "{{a.json.p[]}}",
        "{{a b.text}}",
        "{{.text}}",
        "{{a.artifacts[x]}}",
        "{{a.artifacts[0].x}}",
        "{{a.json.p[1234567890]}}",
        "{{item.}}",
        "{{indexes}}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(big, sizeof(big),
                 "[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"for_each\":\"a.json\","
                 "\"input\":{\"p\":\"x %s y\"}}]",
                 bad[i]);
        expect_refused(big, 10, CORE_EINVAL, "steps[1].input.p", NULL);
    }
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"p\":{\"$ref\":\"a\"}}}]",
                   10, CORE_EINVAL, "steps[1].input.p", "does not parse");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"for_each\":\"a.list\",\"input\":{}}]",
                   10, CORE_EINVAL, "steps[1].for_each", "does not parse");

    /* a reference of PIPE_REF_MAX bytes is one too long; PIPE_REF_MAX - 1 is fine */
    len = (size_t)snprintf(big, sizeof(big),
                           "[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{"
                           "\"p\":{\"$ref\":\"a.json.");
    memset(big + len, 'k', PIPE_REF_MAX - 7);
    snprintf(big + len + PIPE_REF_MAX - 7, sizeof(big) - len - PIPE_REF_MAX + 7, "\"}}}]");
    expect_refused(big, 10, CORE_EINVAL, "steps[1].input.p", "longer than 255");
    {
        struct pipe_spec spec;
        struct core_err err;
        cJSON *json;
        int rc;

        big[len + PIPE_REF_MAX - 8] = '"';
        memcpy(big + len + PIPE_REF_MAX - 7, "}}}]", 5);
        parse_text(big, 10, &json, &spec, &rc, &err);
        CHECK_MSG(rc == 0, "%s", err.message);
        pipe_spec_free(&spec);
        cJSON_Delete(json);
    }

    /* PIPE_REFS_MAX references in one input are fine, one more is not */
    deep = malloc(20 * (PIPE_REFS_MAX + 1) + 256);
    len = (size_t)sprintf(deep, "[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"p\":\"");
    for (int i = 0; i < PIPE_REFS_MAX - 1; i++) {
        len += (size_t)sprintf(deep + len, "{{a.text}}");
    }
    strcpy(deep + len, "\",\"q\":{\"$ref\":\"a.text\"}}}]");
    {
        struct pipe_spec spec;
        struct core_err err;
        cJSON *json;
        int rc;

        parse_text(deep, 10, &json, &spec, &rc, &err);
        CHECK_MSG(rc == 0, "%s", err.message);
        CHECK(rc != 0 || (spec.steps[1].n_after == 1 && spec.steps[1].after[0] == 0));
        pipe_spec_free(&spec);
        cJSON_Delete(json);
    }
    len += (size_t)sprintf(deep + len, "{{a.text}}");
    strcpy(deep + len, "\",\"q\":{\"$ref\":\"a.text\"}}}]");
    expect_refused(deep, 10, CORE_EINVAL, "steps[1].input.q", "more than 256 references");
    free(deep);

    /* PIPE_INPUT_DEPTH_MAX nested containers, the input included, are fine; one more is not */
    deep = malloc(8 * (PIPE_INPUT_DEPTH_MAX + 2) + 256);
    len = (size_t)sprintf(deep, "[{\"id\":\"a\",\"kind\":\"chat\",\"input\":");
    for (int i = 0; i < PIPE_INPUT_DEPTH_MAX; i++) {
        len += (size_t)sprintf(deep + len, i ? "[" : "{\"a\":");
    }
    len += (size_t)sprintf(deep + len, "1");
    for (int i = PIPE_INPUT_DEPTH_MAX - 1; i >= 0; i--) {
        len += (size_t)sprintf(deep + len, i ? "]" : "}");
    }
    strcpy(deep + len, "}]");
    {
        struct pipe_spec spec;
        struct core_err err;
        cJSON *json;
        int rc;

        parse_text(deep, 10, &json, &spec, &rc, &err);
        CHECK_MSG(json != NULL && rc == 0, "%s", err.message);
        pipe_spec_free(&spec);
        cJSON_Delete(json);
    }
    len = (size_t)sprintf(deep, "[{\"id\":\"a\",\"kind\":\"chat\",\"input\":");
    for (int i = 0; i <= PIPE_INPUT_DEPTH_MAX; i++) {
        len += (size_t)sprintf(deep + len, i ? "[" : "{\"a\":");
    }
    len += (size_t)sprintf(deep + len, "1");
    for (int i = PIPE_INPUT_DEPTH_MAX; i >= 0; i--) {
        len += (size_t)sprintf(deep + len, i ? "]" : "}");
    }
    strcpy(deep + len, "}]");
    /* err->param keeps the first 63 characters of "steps[0].input.a[0][0]…" */
    {
        char want[sizeof(((struct core_err *)0)->param)];
        size_t w = (size_t)snprintf(want, sizeof(want), "steps[0].input.a");
        while (w + 3 < sizeof(want)) {
            w += (size_t)snprintf(want + w, sizeof(want) - w, "[0]");
        }
        snprintf(want + w, sizeof(want) - w, "[0]");
        CHECK_I64(strlen(want), 63);
        expect_refused(deep, 10, CORE_EINVAL, want, "nested deeper than 64");
    }
    free(deep);
}

static void test_refused_422(void)
{
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"m\":[\"{{zz.text}}\"]}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].input.m[0]", "\"zz.text\" names no step");
    expect_refused("[" A
                   ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"m\":{\"$ref\":\"b.text\"}}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].input.m", "the step itself");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"after\":[\"a\",\"zz\"],\"input\":{}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].after[1]", "\"zz\"");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"after\":[\"b\"],\"input\":{}}]", 10,
                   CORE_EUNPROCESSABLE, "steps[1].after[0]", "itself");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"p\":\"{{item.x}}\"}}]", 10,
                   CORE_EUNPROCESSABLE, "steps[1].input.p", "for_each");
    expect_refused("[" A
                   ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"p\":{\"$ref\":\"index\"}}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].input.p", "for_each");
    expect_refused("[" A
                   ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"p\":\"{{a.artifacts[0]}}\"}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].input.p", "spliced");
    expect_refused("[" A
                   ",{\"id\":\"b\",\"kind\":\"chat\",\"input\":{\"p\":\"x {{ a.artifacts }}\"}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].input.p", "spliced");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"for_each\":\"item\",\"input\":{}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].for_each", "not item or index");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"for_each\":\"index\",\"input\":{}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].for_each", "not item or index");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"for_each\":\"zz.json\",\"input\":{}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].for_each", "names no step");
    expect_refused("[" A ",{\"id\":\"b\",\"kind\":\"chat\",\"for_each\":\"b.json\",\"input\":{}}]",
                   10, CORE_EUNPROCESSABLE, "steps[1].for_each", "itself");

    /* cycles: a → b → a (one through a reference, one through after), and a longer one */
    expect_refused("[{\"id\":\"a\",\"kind\":\"chat\",\"input\":{\"m\":\"{{b.text}}\"}},"
                   "{\"id\":\"b\",\"kind\":\"chat\",\"after\":[\"a\"],\"input\":{}}]",
                   10, CORE_EUNPROCESSABLE, "steps[0]",
                   "cycle (each waits for the next): a -> b -> a");
    expect_refused("[{\"id\":\"s\",\"kind\":\"chat\",\"input\":{}},"
                   "{\"id\":\"x\",\"kind\":\"chat\",\"input\":{\"m\":\"{{s.text}}\"}},"
                   "{\"id\":\"y\",\"kind\":\"chat\",\"input\":{\"m\":{\"$ref\":\"z.text\"}}},"
                   "{\"id\":\"z\",\"kind\":\"chat\",\"for_each\":\"w.json\",\"input\":{}},"
                   "{\"id\":\"w\",\"kind\":\"chat\",\"after\":[\"x\",\"y\"],\"input\":{}}]",
                   10, CORE_EUNPROCESSABLE, "steps[2]", "y -> z -> w -> y");
}

/* The fake hand-over of an artifact: "tok:<task_id>:<index>", every call recorded. */
struct fake_art {
    int calls;
    char log[512];
    bool refuse;
};

static char *fake_artifact(void *ctx, const struct pipe_task_out *src, const cJSON *artifact,
                           struct core_err *err)
{
    struct fake_art *fa = ctx;
    char buf[128], *tok;
    size_t n;
    size_t len = strlen(fa->log);
    int idx = (int)cJSON_GetNumberValue(cJSON_GetObjectItem(artifact, "index"));

    fa->calls++;
    snprintf(fa->log + len, sizeof(fa->log) - len, "%s:%d;", src->task_id, idx);
    if (fa->refuse) {
        core_err_set(err, CORE_ENOTFOUND, "artifact", "gone");
        return NULL;
    }
    n = (size_t)snprintf(buf, sizeof(buf), "tok:%s:%d", src->task_id, idx);
    tok = malloc(n + 1);
    if (tok != NULL) {
        memcpy(tok, buf, n + 1);
    }
    return tok;
}

/*
 * The pipeline every resolution test runs in: sources script (chat, whose text is script_text),
 * img (image, two artifacts), imgs (a fan-out image step: tasks i0 with one artifact, i1 with
 * two), resp (a response), write (a fan-out chat step: texts {"k":1} and {"k":2}), and target t
 * (step 5, kind video) whose input is target_input, with for_each "script.json.prompts" when
 * fan_out.
 */
#define N_TASKS 7
struct fix {
    cJSON *steps;
    struct pipe_spec spec;
    cJSON *res[N_TASKS], *arts[N_TASKS];
    struct pipe_task_out tasks[N_TASKS];
    struct pipe_step_out outs[6];
    struct fake_art fa;
    struct pipe_resolve r;
};

static const char *const fix_ids[N_TASKS] = {"task_script", "task_img", "task_i0", "task_i1",
                                             "resp_r",      "task_w0",  "task_w1"};

static cJSON *chat_result(const char *id, const char *content)
{
    cJSON *r = cJSON_CreateObject(), *choices = cJSON_AddArrayToObject(r, "choices");
    cJSON *c = cJSON_CreateObject(), *m = cJSON_AddObjectToObject(c, "message");

    cJSON_AddStringToObject(r, "id", id);
    cJSON_AddItemToArray(choices, c);
    cJSON_AddStringToObject(m, "role", "assistant");
    cJSON_AddStringToObject(m, "content", content);
    cJSON_AddItemToObject(r, "usage", cJSON_Parse("{\"total_tokens\":42}"));
    return r;
}

static int fix_init(struct fix *f, const char *script_text, const char *target_input, bool fan_out,
                    struct core_err *err)
{
    char *text;
    size_t cap = strlen(target_input) + 1024;
    int rc;

    memset(f, 0, sizeof(*f));
    text = malloc(cap);
    snprintf(text, cap,
             "[{\"id\":\"script\",\"kind\":\"chat\",\"input\":{}},"
             "{\"id\":\"img\",\"kind\":\"image\",\"input\":{\"prompt\":\"{{script.text}}\"}},"
             "{\"id\":\"imgs\",\"kind\":\"image\",\"for_each\":\"script.json.prompts\","
             "\"input\":{\"prompt\":\"{{item.text}}\"}},"
             "{\"id\":\"resp\",\"kind\":\"response\",\"input\":{}},"
             "{\"id\":\"write\",\"kind\":\"chat\",\"for_each\":\"script.json.prompts\","
             "\"input\":{}},"
             "{\"id\":\"t\",\"kind\":\"video\",%s\"input\":%s}]",
             fan_out ? "\"for_each\":\"script.json.prompts\"," : "", target_input);
    f->steps = cJSON_Parse(text);
    free(text);
    core_err_clear(err);
    rc = pipe_spec_parse(f->steps, 10, &f->spec, err);
    if (rc != 0) {
        return rc;
    }
    f->res[0] = chat_result("chatcmpl-1", script_text);
    f->res[1] = cJSON_Parse("{\"created\":1,\"data\":[{\"artifact\":0},{\"artifact\":1}]}");
    f->arts[1] = cJSON_Parse("[{\"index\":0,\"content_type\":\"image/png\",\"bytes\":10},"
                             "{\"index\":1,\"content_type\":\"image/png\",\"bytes\":11}]");
    f->res[2] = cJSON_Parse("{\"data\":[{\"artifact\":0}]}");
    f->arts[2] = cJSON_Parse("[{\"index\":0,\"content_type\":\"image/png\",\"bytes\":1}]");
    f->res[3] = cJSON_Parse("{\"data\":[{\"artifact\":0},{\"artifact\":1}]}");
    f->arts[3] = cJSON_Parse("[{\"index\":0,\"content_type\":\"image/png\",\"bytes\":2},"
                             "{\"index\":1,\"content_type\":\"image/png\",\"bytes\":3}]");
    f->res[4] = cJSON_Parse(
        "{\"id\":\"resp_r\",\"object\":\"response\",\"output\":[{\"type\":\"reasoning\"},"
        "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"Hel\"},"
        "{\"type\":\"refusal\",\"refusal\":\"no\"},{\"type\":\"output_text\",\"text\":\"lo\"}]},"
        "{\"type\":\"message\",\"content\":[{\"type\":\"output_text\",\"text\":\"!\"}]}]}");
    f->res[5] = chat_result("w0", "{\"k\":1}");
    f->res[6] = chat_result("w1", "{\"k\":2}");
    for (int i = 0; i < N_TASKS; i++) {
        f->tasks[i].task_id = fix_ids[i];
        f->tasks[i].kind = i == 4               ? TASK_KIND_RESPONSE
                           : (i >= 1 && i <= 3) ? TASK_KIND_IMAGE
                                                : TASK_KIND_CHAT;
        f->tasks[i].result = f->res[i];
        f->tasks[i].artifacts = f->arts[i];
    }
    f->outs[0] = (struct pipe_step_out){&f->tasks[0], 1, false};
    f->outs[1] = (struct pipe_step_out){&f->tasks[1], 1, false};
    f->outs[2] = (struct pipe_step_out){&f->tasks[2], 2, true};
    f->outs[3] = (struct pipe_step_out){&f->tasks[4], 1, false};
    f->outs[4] = (struct pipe_step_out){&f->tasks[5], 2, true};
    f->outs[5] = (struct pipe_step_out){NULL, 0, false};
    f->r = (struct pipe_resolve){.spec = &f->spec,
                                 .outs = f->outs,
                                 .item = NULL,
                                 .index = 0,
                                 .artifact = fake_artifact,
                                 .artifact_ctx = &f->fa};
    return 0;
}

static void fix_free(struct fix *f)
{
    for (int i = 0; i < N_TASKS; i++) {
        cJSON_Delete(f->res[i]);
        cJSON_Delete(f->arts[i]);
    }
    pipe_spec_free(&f->spec);
    cJSON_Delete(f->steps);
}

#define SCRIPT                                                                                     \
    "{\"prompts\":[{\"text\":\"p0\"},{\"text\":\"p1\",\"n\":2.5},{\"text\":\"p2\"}],\"n\":3,"      \
    "\"ok\":true,\"none\":null}"

/*
 * Resolves target t's input (target_input, with item/index when fan_out) in the fixture; returns
 * it printed (caller frees) or NULL with *rc and err set. *calls/log: the artifact hand-overs.
 */
static char *resolve(const char *script_text, const char *target_input, bool fan_out,
                     const char *item, long index, int *rc, struct core_err *err,
                     struct fake_art *fa)
{
    struct fix f;
    cJSON *it = item ? cJSON_Parse(item) : NULL;
    cJSON *out = NULL;
    char *printed = NULL;

    *rc = fix_init(&f, script_text, target_input, fan_out, err);
    if (*rc != 0) {
        fprintf(stderr, "    the fixture does not parse: %s (%s)\n", err->message, err->param);
        goto out;
    }
    f.r.item = it;
    f.r.index = index;
    if (fa != NULL) {
        f.fa.refuse = fa->refuse;
    }
    core_err_clear(err);
    *rc = pipe_resolve_input(&f.r, 5, &out, err);
    if (*rc == 0) {
        printed = cJSON_PrintUnformatted(out);
    }
    if (fa != NULL) {
        *fa = f.fa;
    }
out:
    cJSON_Delete(out);
    cJSON_Delete(it);
    fix_free(&f);
    return printed;
}

/* target_input resolves to want (with the default script text, no item). */
static void expect_resolved(const char *target_input, const char *want)
{
    struct core_err err;
    int rc;
    char *got = resolve(SCRIPT, target_input, false, NULL, 0, &rc, &err, NULL);

    CHECK_MSG(rc == 0, "%s: %s (%s)", target_input, err.message, err.param);
    CHECK_STR(got, want);
    free(got);
}

/* target_input fails to resolve with 422, param and exactly message msg. */
static void expect_unresolved(const char *script_text, const char *target_input, const char *param,
                              const char *msg)
{
    struct core_err err;
    int rc;
    char *got = resolve(script_text, target_input, false, NULL, 0, &rc, &err, NULL);

    CHECK_MSG(got == NULL && rc == CORE_EUNPROCESSABLE, "%s resolved: %s", target_input,
              got ? got : "(error)");
    CHECK_I64(err.http_status, 422);
    CHECK_STR(err.param, param);
    CHECK_STR(err.message, msg);
    free(got);
}

static void test_resolve_text_json_result(void)
{
    struct core_err err;
    cJSON *got_json;
    char *got;
    int rc;

    /* text, whole and by splice; other values copied as they are */
    got = resolve(SCRIPT,
                  "{\"model\":\"v\",\"n\":[1,true,null,{\"a\":\"b\"}],\"p\":\"{{script.text}}\","
                  "\"q\":{\"$ref\":\"script.text\"}}",
                  false, NULL, 0, &rc, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    got_json = cJSON_Parse(got);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(got_json, "p")), SCRIPT);
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItem(got_json, "q")), SCRIPT);
    cJSON_DeleteItemFromObject(got_json, "p");
    cJSON_DeleteItemFromObject(got_json, "q");
    free(got);
    got = cJSON_PrintUnformatted(got_json);
    CHECK_STR(got, "{\"model\":\"v\",\"n\":[1,true,null,{\"a\":\"b\"}]}");
    free(got);
    cJSON_Delete(got_json);
    /* json with paths and [i] */
    expect_resolved(
        "{\"a\":{\"$ref\":\"script.json.prompts[2].text\"},"
        "\"b\":{\"$ref\":\"script.json.prompts[1]\"},\"c\":{\"$ref\":\"script.json.n\"},"
        "\"d\":{\"$ref\":\"script.json.ok\"},\"e\":{\"$ref\":\"script.json.none\"}}",
        "{\"a\":\"p2\",\"b\":{\"text\":\"p1\",\"n\":2.5},\"c\":3,\"d\":true,\"e\":null}");
    expect_resolved("{\"all\":{\"$ref\":\"script.json\"}}", "{\"all\":" SCRIPT "}");
    /* result paths */
    expect_resolved("{\"r\":{\"$ref\":\"script.result.choices[0].message.role\"},"
                    "\"u\":{\"$ref\":\"script.result.usage\"},"
                    "\"s\":\"tokens: {{script.result.usage.total_tokens}}\","
                    "\"w\":{\"$ref\":\"img.result.data[1]\"}}",
                    "{\"r\":\"assistant\",\"u\":{\"total_tokens\":42},\"s\":\"tokens: 42\","
                    "\"w\":{\"artifact\":1}}");
    expect_resolved("{\"x\":{\"$ref\":\"img.result\"}}",
                    "{\"x\":{\"created\":1,\"data\":[{\"artifact\":0},{\"artifact\":1}]}}");
    /* a response's text, joined from its output_text parts */
    expect_resolved("{\"x\":\"<{{resp.text}}>\"}", "{\"x\":\"<Hello!>\"}");
}

static void test_resolve_splices(void)
{
    /* several splices and text around them; numbers, objects, bools, null as compact JSON */
    expect_resolved("{\"p\":\"A {{script.json.n}} B {{ script.json.prompts[0].text }} C "
                    "{{script.json.prompts[1]}}{{script.json.ok}}/{{script.json.none}} "
                    "{{script.json.prompts[1].n}}\"}",
                    "{\"p\":\"A 3 B p0 C {\\\"text\\\":\\\"p1\\\",\\\"n\\\":2.5}true/null 2.5\"}");
    /* a splice inside an array inside an object; keys are never spliced */
    expect_resolved("{\"{{script.text}}\":[\"{{script.json.prompts[0].text}}\"]}",
                    "{\"{{script.text}}\":[\"p0\"]}");
    /* braces that are not a splice stay: a lone "}}" and "{x}" */
    expect_resolved("{\"p\":\"}} {x} {{script.json.n}}}\"}", "{\"p\":\"}} {x} 3}\"}");
}

static void test_resolve_text_max(void)
{
    char *big = malloc(PIPE_TEXT_MAX + 2);
    struct core_err err;
    char *got;
    int rc;

    memset(big, 'x', PIPE_TEXT_MAX);
    big[PIPE_TEXT_MAX] = '\0';
    /* exactly PIPE_TEXT_MAX bytes: fine */
    got = resolve(big, "{\"p\":\"{{script.text}}\"}", false, NULL, 0, &rc, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(got != NULL && strlen(got) == PIPE_TEXT_MAX + 8);
    free(got);
    /* one byte of text more around it: refused, naming the reference */
    got = resolve(big, "{\"p\":\"{{script.text}}.\"}", false, NULL, 0, &rc, &err, NULL);
    CHECK(got == NULL && rc == CORE_EUNPROCESSABLE);
    CHECK_STR(err.param, "script.text");
    CHECK_STR(err.message, "reference \"script.text\": the string it is spliced into would be "
                           "longer than 1048576 bytes");
    free(got);
    got = resolve(big, "{\"p\":\".{{script.text}}\"}", false, NULL, 0, &rc, &err, NULL);
    CHECK(got == NULL && rc == CORE_EUNPROCESSABLE);
    CHECK_STR(err.param, "script.text");
    free(got);
    /* a text of PIPE_TEXT_MAX + 1 bytes alone */
    big[PIPE_TEXT_MAX] = 'x';
    big[PIPE_TEXT_MAX + 1] = '\0';
    got = resolve(big, "{\"p\":\"{{script.text}}\"}", false, NULL, 0, &rc, &err, NULL);
    CHECK(got == NULL && rc == CORE_EUNPROCESSABLE);
    CHECK_STR(err.param, "script.text");
    free(got);
    /* the whole value by $ref is not a splice: no bound here (the task's own limits apply) */
    got = resolve(big, "{\"p\":{\"$ref\":\"script.text\"}}", false, NULL, 0, &rc, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK(got != NULL && strlen(got) == PIPE_TEXT_MAX + 1 + 8);
    free(got);
    free(big);
}

static void test_resolve_missing(void)
{
    expect_unresolved(SCRIPT, "{\"p\":{\"$ref\":\"script.json.prompts[7]\"}}",
                      "script.json.prompts[7]",
                      "reference \"script.json.prompts[7]\": index 7 is past the end (3 items)");
    expect_unresolved(SCRIPT, "{\"p\":\"{{script.json.prompts[0].title}}\"}",
                      "script.json.prompts[0].title",
                      "reference \"script.json.prompts[0].title\": \"prompts[0]\" has no member "
                      "\"title\"");
    expect_unresolved(SCRIPT, "{\"p\":\"{{script.json.n.x}}\"}", "script.json.n.x",
                      "reference \"script.json.n.x\": \"n\" is a number, not an object");
    expect_unresolved(SCRIPT, "{\"p\":\"{{script.json[0]}}\"}", "script.json[0]",
                      "reference \"script.json[0]\": the value is an object, not an array");
    expect_unresolved("not json {", "{\"p\":\"{{script.json}}\"}", "script.json",
                      "reference \"script.json\": the text of step \"script\" is not JSON");
    expect_unresolved(SCRIPT, "{\"p\":\"{{img.text}}\"}", "img.text",
                      "reference \"img.text\": step \"img\" has no text");
    expect_unresolved(SCRIPT, "{\"p\":\"{{script.result.usage.cost}}\"}",
                      "script.result.usage.cost",
                      "reference \"script.result.usage.cost\": \"usage\" has no member \"cost\"");
    expect_unresolved(SCRIPT, "{\"p\":{\"$ref\":\"img.artifacts[2]\"}}", "img.artifacts[2]",
                      "reference \"img.artifacts[2]\": index 2 is past the end (2 items)");
    expect_unresolved(SCRIPT, "{\"p\":{\"$ref\":\"imgs.artifacts[3]\"}}", "imgs.artifacts[3]",
                      "reference \"imgs.artifacts[3]\": index 3 is past the end (3 items)");
    /* a fan-out's list fails when one task lacks the value */
    expect_unresolved(SCRIPT, "{\"p\":{\"$ref\":\"write.json.k\"},\"q\":\"{{write.json.j}}\"}",
                      "write.json.j", "reference \"write.json.j\": the value has no member \"j\"");
}

static void test_resolve_artifacts(void)
{
    struct fake_art fa = {0};
    struct core_err err;
    char *got;
    int rc;

    got = resolve(SCRIPT, "{\"first\":{\"$ref\":\"img.artifacts[1]\"}}", false, NULL, 0, &rc, &err,
                  &fa);
    CHECK_STR(got, "{\"first\":\"tok:task_img:1\"}");
    CHECK_I64(fa.calls, 1); /* only the artifact selected is handed over */
    CHECK_STR(fa.log, "task_img:1;");
    free(got);

    memset(&fa, 0, sizeof(fa));
    got = resolve(SCRIPT, "{\"all\":{\"$ref\":\"img.artifacts\"}}", false, NULL, 0, &rc, &err, &fa);
    CHECK_STR(got, "{\"all\":[\"tok:task_img:0\",\"tok:task_img:1\"]}");
    CHECK_I64(fa.calls, 2);
    free(got);

    /* a fan-out: every task's artifacts one after another */
    memset(&fa, 0, sizeof(fa));
    got =
        resolve(SCRIPT,
                "{\"all\":{\"$ref\":\"imgs.artifacts\"},\"third\":{\"$ref\":\"imgs.artifacts[2]\"},"
                "\"first\":[{\"$ref\":\"imgs.artifacts[0]\"}]}",
                false, NULL, 0, &rc, &err, &fa);
    CHECK_STR(got, "{\"all\":[\"tok:task_i0:0\",\"tok:task_i1:0\",\"tok:task_i1:1\"],"
                   "\"third\":\"tok:task_i1:1\",\"first\":[\"tok:task_i0:0\"]}");
    CHECK_I64(fa.calls, 5);
    CHECK_STR(fa.log, "task_i0:0;task_i1:0;task_i1:1;task_i1:1;task_i0:0;");
    free(got);

    /* a step without artifacts gives an empty list */
    got = resolve(SCRIPT, "{\"none\":{\"$ref\":\"script.artifacts\"}}", false, NULL, 0, &rc, &err,
                  NULL);
    CHECK_STR(got, "{\"none\":[]}");
    free(got);

    /* the hand-over's refusal is passed on as it is */
    memset(&fa, 0, sizeof(fa));
    fa.refuse = true;
    got =
        resolve(SCRIPT, "{\"p\":{\"$ref\":\"img.artifacts[0]\"}}", false, NULL, 0, &rc, &err, &fa);
    CHECK(got == NULL && rc == CORE_ENOTFOUND);
    CHECK_STR(err.param, "artifact");
    CHECK_STR(err.message, "gone");
    CHECK_I64(fa.calls, 1);
    free(got);
}

static void test_resolve_fan_out_lists(void)
{
    expect_resolved(
        "{\"t\":{\"$ref\":\"write.text\"},\"j\":{\"$ref\":\"write.json.k\"},"
        "\"r\":{\"$ref\":\"write.result.id\"},\"w\":{\"$ref\":\"write.json\"},"
        "\"s\":\"{{write.json.k}} {{write.result.id}}\"}",
        "{\"t\":[\"{\\\"k\\\":1}\",\"{\\\"k\\\":2}\"],\"j\":[1,2],\"r\":[\"w0\",\"w1\"],"
        "\"w\":[{\"k\":1},{\"k\":2}],\"s\":\"[1,2] [\\\"w0\\\",\\\"w1\\\"]\"}");
}

static void test_resolve_item_index(void)
{
    struct core_err err;
    char *got;
    int rc;

    got = resolve(SCRIPT,
                  "{\"prompt\":\"{{item.text}} #{{ index }}\",\"el\":{\"$ref\":\"item\"},"
                  "\"n\":{\"$ref\":\"item.n\"},\"i\":{\"$ref\":\"index\"},\"s\":\"{{item}}\","
                  "\"deep\":{\"$ref\":\"item.tags[1]\"}}",
                  true, "{\"text\":\"p1\",\"n\":2.5,\"tags\":[\"a\",\"b\"]}", 1, &rc, &err, NULL);
    CHECK_MSG(rc == 0, "%s", err.message);
    CHECK_STR(got,
              "{\"prompt\":\"p1 #1\",\"el\":{\"text\":\"p1\",\"n\":2.5,\"tags\":[\"a\",\"b\"]},"
              "\"n\":2.5,\"i\":1,\"s\":\"{\\\"text\\\":\\\"p1\\\",\\\"n\\\":2.5,\\\"tags\\\":"
              "[\\\"a\\\",\\\"b\\\"]}\",\"deep\":\"b\"}");
    free(got);

    /* an element that is a string, and item[i] of an element that is a list */
    got = resolve(SCRIPT, "{\"p\":\"{{item}}\"}", true, "\"plain\"", 0, &rc, &err, NULL);
    CHECK_STR(got, "{\"p\":\"plain\"}");
    free(got);
    got = resolve(SCRIPT, "{\"p\":{\"$ref\":\"item[1]\"}}", true, "[\"x\",\"y\"]", 0, &rc, &err,
                  NULL);
    CHECK_STR(got, "{\"p\":\"y\"}");
    free(got);

    got = resolve(SCRIPT, "{\"p\":\"{{item.title}}\"}", true, "{\"text\":\"p1\"}", 0, &rc, &err,
                  NULL);
    CHECK(got == NULL && rc == CORE_EUNPROCESSABLE);
    CHECK_STR(err.param, "item.title");
    CHECK_STR(err.message, "reference \"item.title\": the value has no member \"title\"");
    free(got);
}

static void test_task_text(void)
{
    cJSON *chat = chat_result("c", "hi");
    cJSON *nocontent = cJSON_Parse("{\"choices\":[{\"message\":{\"content\":null,"
                                   "\"tool_calls\":[]}}]}");
    cJSON *resp_direct = cJSON_Parse("{\"object\":\"response\",\"output_text\":\"direct\","
                                     "\"output\":[{\"type\":\"message\",\"content\":[{\"type\":"
                                     "\"output_text\",\"text\":\"parts\"}]}]}");
    cJSON *resp_parts = cJSON_Parse("{\"object\":\"response\",\"output\":[{\"type\":\"message\","
                                    "\"content\":[{\"type\":\"output_text\",\"text\":\"a\"},"
                                    "{\"type\":\"output_text\",\"text\":\"\"},{\"type\":\"output_"
                                    "text\",\"text\":\"b\"}]}]}");
    cJSON *resp_none = cJSON_Parse("{\"object\":\"response\",\"output\":[{\"type\":"
                                   "\"function_call\",\"name\":\"f\"}]}");
    struct pipe_task_out t = {.task_id = "task_x", .kind = TASK_KIND_CHAT, .result = chat};
    char *owned = (char *)"junk";

    CHECK_STR(pipe_task_text(&t, &owned), "hi");
    CHECK(owned == NULL);
    t.result = nocontent;
    CHECK(pipe_task_text(&t, &owned) == NULL);
    t.result = NULL;
    CHECK(pipe_task_text(&t, &owned) == NULL);
    t.kind = TASK_KIND_IMAGE;
    t.result = chat;
    CHECK(pipe_task_text(&t, &owned) == NULL); /* an image has no text, whatever its result */
    t.kind = TASK_KIND_RESPONSE;
    t.result = resp_direct;
    CHECK_STR(pipe_task_text(&t, &owned), "direct");
    CHECK(owned == NULL);
    t.result = resp_parts;
    CHECK_STR(pipe_task_text(&t, &owned), "ab");
    CHECK(owned != NULL);
    free(owned);
    t.result = resp_none;
    CHECK(pipe_task_text(&t, &owned) == NULL);
    CHECK(owned == NULL);
    cJSON_Delete(chat);
    cJSON_Delete(nocontent);
    cJSON_Delete(resp_direct);
    cJSON_Delete(resp_parts);
    cJSON_Delete(resp_none);
}

/* The for_each list of target t ("script.json.prompts"): fits, too long, not an array, missing,
 * empty, and of a fan-out source. */
static void test_for_each_list(void)
{
    struct fix f;
    struct core_err err;
    cJSON *list = NULL;
    char *got;
    int rc;

    rc = fix_init(&f, SCRIPT, "{}", true, &err);
    CHECK_OR_OUT(rc == 0, "%s", err.message);
    rc = pipe_for_each_list(&f.r, 5, 3, &list, &err);
    CHECK_MSG(rc == 0, "%s", err.message);
    got = cJSON_PrintUnformatted(list);
    CHECK_STR(got, "[{\"text\":\"p0\"},{\"text\":\"p1\",\"n\":2.5},{\"text\":\"p2\"}]");
    free(got);
    cJSON_Delete(list);
    list = NULL;

    /* too long */
    rc = pipe_for_each_list(&f.r, 5, 2, &list, &err);
    CHECK(rc == CORE_EUNPROCESSABLE && list == NULL);
    CHECK_STR(err.param, "for_each");
    CHECK_STR(err.message, "step \"t\": for_each \"script.json.prompts\" has 3 items, at most 2");

    /* a step without for_each is a caller's bug */
    rc = pipe_for_each_list(&f.r, 0, 2, &list, &err);
    CHECK(rc == CORE_EINTERNAL && list == NULL);
    fix_free(&f);

    /* not an array */
    rc = fix_init(&f, "{\"prompts\":\"one\"}", "{}", true, &err);
    CHECK_OR_OUT(rc == 0, "%s", err.message);
    rc = pipe_for_each_list(&f.r, 5, 10, &list, &err);
    CHECK(rc == CORE_EUNPROCESSABLE && list == NULL);
    CHECK_STR(err.param, "for_each");
    CHECK_STR(err.message,
              "step \"t\": for_each \"script.json.prompts\" is a string, not an array");
    fix_free(&f);

    /* the reference does not resolve */
    rc = fix_init(&f, "{\"other\":[]}", "{}", true, &err);
    CHECK_OR_OUT(rc == 0, "%s", err.message);
    rc = pipe_for_each_list(&f.r, 5, 10, &list, &err);
    CHECK(rc == CORE_EUNPROCESSABLE && list == NULL);
    CHECK_STR(err.param, "for_each");
    CHECK_STR(err.message,
              "reference \"script.json.prompts\": the value has no member \"prompts\"");
    fix_free(&f);

    /* an empty list is a list */
    rc = fix_init(&f, "{\"prompts\":[]}", "{}", true, &err);
    CHECK_OR_OUT(rc == 0, "%s", err.message);
    rc = pipe_for_each_list(&f.r, 5, 10, &list, &err);
    CHECK(rc == 0 && cJSON_IsArray(list) && cJSON_GetArraySize(list) == 0);
    cJSON_Delete(list);
    list = NULL;
    /* a fan-out source: the list of its tasks' values */
    f.spec.steps[5].for_each.step = 4;
    snprintf(f.spec.steps[5].for_each.path, sizeof(f.spec.steps[5].for_each.path), "k");
    rc = pipe_for_each_list(&f.r, 5, 10, &list, &err);
    got = cJSON_PrintUnformatted(list);
    CHECK_STR(got, "[1,2]");
    free(got);
    cJSON_Delete(list);
    list = NULL;
out:
    fix_free(&f);
}

int main(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"chat_image_video", test_chat_image_video},
        {"after_union", test_after_union},
        {"refused_400", test_refused_400},
        {"refused_422", test_refused_422},
        {"resolve_text_json_result", test_resolve_text_json_result},
        {"resolve_splices", test_resolve_splices},
        {"resolve_text_max", test_resolve_text_max},
        {"resolve_missing", test_resolve_missing},
        {"resolve_artifacts", test_resolve_artifacts},
        {"resolve_fan_out_lists", test_resolve_fan_out_lists},
        {"resolve_item_index", test_resolve_item_index},
        {"task_text", test_task_text},
        {"for_each_list", test_for_each_list},
    };

    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        check_test_begin(tests[i].name);
        tests[i].fn();
        check_test_end();
    }
    return check_done();
}
