/*
 * tests/unit/test_adapter_responses.c — adapters/responses.h where golden data cannot say it:
 * the edge check's refusal of every field (each naming its field), the response object's shape
 * and defaults, the chat request of the translated path, item and call ids, usage names, and the
 * streams' sequence numbers, ids and life (start, events after the end, fail, result). The
 * dialects' own wire shapes are the golden cases' (tests/data/<dialect>/response_*).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adapters/adapter.h"
#include "adapters/responses.h"
#include "tests/unit/check.h"

#define RID "resp_abcdefghijklmnopqrstuvwxyz"
#define CREATED 1700000000LL

static const struct adapter_target compat_target = {
    .provider = "local", .base_url = "http://local:8000/v1", .model = "m-upstream"};
static const struct adapter_target native_target = {.provider = "openai",
                                                    .base_url = "https://api.openai.com/v1",
                                                    .api_key = "sk-x",
                                                    .model = "gpt-4.1-mini",
                                                    .responses_native = true};
static const struct adapter_target anthropic_target = {.provider = "anthropic",
                                                       .base_url = "https://api.anthropic.com/v1",
                                                       .api_key = "sk-ant",
                                                       .model = "claude-sonnet-4-5"};

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

static const char *str(const cJSON *o, const char *key)
{
    return cJSON_GetStringValue(get(o, key));
}

/* o's value at a path of keys and indexes: "output", "0", "content" ... (NULL-terminated). */
static const cJSON *at(const cJSON *o, const char *const *path)
{
    for (; o != NULL && *path != NULL; path++) {
        char *end;
        long i = strtol(*path, &end, 10);
        o = (*end == '\0' && cJSON_IsArray(o)) ? cJSON_GetArrayItem(o, (int)i) : get(o, *path);
    }
    return o;
}

#define AT(o, ...) at((o), (const char *const[]){__VA_ARGS__, NULL})

/* A request body that sets every field the edge knows, each at a valid value. */
static const char full_request[] =
    "{\"model\":\"fast-chat\",\"instructions\":\"Be brief.\","
    "\"input\":[{\"role\":\"user\",\"content\":\"hi\"},"
    "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
    "\"text\":\"hello\"},{\"type\":\"refusal\",\"refusal\":\"no\"}]},"
    "{\"role\":\"user\",\"content\":[{\"type\":\"input_text\",\"text\":\"look\"},"
    "{\"type\":\"input_image\",\"image_url\":\"https://x/y.png\",\"detail\":\"high\"},"
    "{\"type\":\"input_file\",\"file_data\":\"data:application/pdf;base64,JVBE\","
    "\"filename\":\"a.pdf\"}]},"
    "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
    "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":[{\"type\":\"input_text\","
    "\"text\":\"ok\"}]},"
    "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]}],"
    "\"tools\":[{\"type\":\"function\",\"name\":\"f\",\"description\":\"d\","
    "\"parameters\":{\"type\":\"object\"},\"strict\":true}],"
    "\"tool_choice\":{\"type\":\"function\",\"name\":\"f\"},\"parallel_tool_calls\":false,"
    "\"text\":{\"format\":{\"type\":\"json_schema\",\"name\":\"out\",\"schema\":{},"
    "\"strict\":true,\"description\":\"d\"},\"verbosity\":\"low\"},"
    "\"max_output_tokens\":100,\"temperature\":0.5,\"top_p\":0.9,\"top_logprobs\":3,"
    "\"reasoning\":{\"effort\":\"high\",\"summary\":\"auto\"},\"metadata\":{\"k\":\"v\"},"
    "\"store\":true,\"previous_response_id\":\"resp_x\",\"truncation\":\"disabled\","
    "\"include\":[\"reasoning.encrypted_content\",\"message.output_text.logprobs\"],"
    "\"service_tier\":\"flex\",\"stream\":true,\"stream_options\":{\"include_obfuscation\":false},"
    "\"background\":true,\"user\":\"u\",\"safety_identifier\":\"s\",\"prompt_cache_key\":\"p\","
    "\"webhook\":{\"url\":\"https://hook\"},\"conversation\":null}";

/* Checks body (JSON text) with responses_check: 0 when want_param is NULL, else a 400 naming it. */
static void check_one(const char *body, const char *want_param)
{
    cJSON *req = cJSON_Parse(body);
    struct core_err err;
    int rc;

    if (!CHECK(req != NULL)) {
        return;
    }
    rc = responses_check(req, &err);
    if (want_param == NULL) {
        CHECK_MSG(rc == 0, "%s: refused (%s: %s)", body, err.param, err.message);
    } else {
        CHECK_MSG(rc == CORE_EINVAL && err.http_status == 400 && strcmp(err.param, want_param) == 0,
                  "%s: rc %d, param \"%s\", want \"%s\" (%s)", body, rc, err.param, want_param,
                  err.message);
    }
    cJSON_Delete(req);
}

static void test_check_accepts(void)
{
    check_test_begin("check_accepts");
    check_one(full_request, NULL);
    check_one("{\"model\":\"m\",\"input\":\"hi\"}", NULL);
    check_one("{\"model\":\"m\",\"input\":\"hi\",\"tools\":null,\"text\":null,\"store\":null}",
              NULL);
    check_one("{\"model\":\"m\",\"input\":\"hi\",\"background\":true}", NULL);
    check_test_end();
}

/* Every field's refusal names the field (or the part of it that is wrong). */
static void test_check_refusals(void)
{
    static const struct {
        const char *body;
        const char *param;
    } cases[] = {
        {"[]", "body"},
        {"{\"input\":\"hi\"}", "model"},
        {"{\"model\":7,\"input\":\"hi\"}", "model"},
        {"{\"model\":\"m\"}", "input"},
        {"{\"model\":\"m\",\"input\":[]}", "input"},
        {"{\"model\":\"m\",\"input\":5}", "input"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"robot\",\"content\":\"x\"}]}", "input[0].role"},
        {"{\"model\":\"m\",\"input\":[\"x\"]}", "input[0]"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":7}]}", "input[0].content"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"output_text\","
         "\"text\":\"x\"}]}]}",
         "input[0].content[0].type"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_text\"}]}]"
         "}",
         "input[0].content[0].text"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\"}]}]"
         "}",
         "input[0].content[0]"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\","
         "\"image_url\":\"https://x\",\"detail\":\"ultra\"}]}]}",
         "input[0].content[0].detail"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\"}]}]"
         "}",
         "input[0].content[0]"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"item_reference\",\"id\":\"msg_1\"}]}",
         "input[0].type"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call\",\"call_id\":\"c\","
         "\"name\":\"f\"}]}",
         "input[0].arguments"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call_output\",\"output\":\"x\"}]}",
         "input[0].call_id"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"function_call_output\",\"call_id\":\"c\"}]}",
         "input[0].output"},
        {"{\"model\":\"m\",\"input\":[{\"type\":\"reasoning\",\"summary\":\"x\"}]}",
         "input[0].summary"},
        {"{\"model\":\"m\",\"input\":\"x\",\"instructions\":5}", "instructions"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":{}}", "tools"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"web_search\"}]}", "tools"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"file_search\"}]}", "tools"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"code_interpreter\"}]}", "tools"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"computer_use_preview\"}]}",
         "tools"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"a b\"}]}",
         "tools[0].name"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\","
         "\"defer_loading\":true}]}",
         "tools[0].defer_loading"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":\"function\",\"name\":\"f\","
         "\"parameters\":[]}]}",
         "tools[0]"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":\"always\"}", "tool_choice"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"file_search\"}}",
         "tool_choice"},
        {"{\"model\":\"m\",\"input\":\"x\",\"tool_choice\":{\"type\":\"function\"}}",
         "tool_choice.name"},
        {"{\"model\":\"m\",\"input\":\"x\",\"parallel_tool_calls\":\"yes\"}",
         "parallel_tool_calls"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":\"json\"}", "text"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"xml\"}}}",
         "text.format.type"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\","
         "\"name\":\"n\"}}}",
         "text.format.schema"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\","
         "\"schema\":{}}}}",
         "text.format.name"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"json_schema\","
         "\"name\":\"n\",\"schema\":{},\"strict\":1}}}",
         "text.format.strict"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"format\":{\"type\":\"text\",\"x\":1}}}",
         "text.format.x"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"verbosity\":\"loud\"}}", "text.verbosity"},
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"colour\":\"red\"}}", "text.colour"},
        {"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":0}", "max_output_tokens"},
        {"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":1.5}", "max_output_tokens"},
        {"{\"model\":\"m\",\"input\":\"x\",\"max_output_tokens\":\"9\"}", "max_output_tokens"},
        {"{\"model\":\"m\",\"input\":\"x\",\"temperature\":2.5}", "temperature"},
        {"{\"model\":\"m\",\"input\":\"x\",\"top_p\":-0.1}", "top_p"},
        {"{\"model\":\"m\",\"input\":\"x\",\"top_logprobs\":21}", "top_logprobs"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":\"high\"}", "reasoning"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"effort\":\"extreme\"}}",
         "reasoning.effort"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"summary\":\"short\"}}",
         "reasoning.summary"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"generate_summary\":1}}",
         "reasoning.generate_summary"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"mode\":\"pro\"}}", "reasoning.mode"},
        {"{\"model\":\"m\",\"input\":\"x\",\"metadata\":{\"k\":1}}", "metadata"},
        {"{\"model\":\"m\",\"input\":\"x\",\"metadata\":{\"1\":\"a\",\"2\":\"a\",\"3\":\"a\","
         "\"4\":\"a\",\"5\":\"a\",\"6\":\"a\",\"7\":\"a\",\"8\":\"a\",\"9\":\"a\",\"10\":\"a\","
         "\"11\":\"a\",\"12\":\"a\",\"13\":\"a\",\"14\":\"a\",\"15\":\"a\",\"16\":\"a\","
         "\"17\":\"a\"}}",
         "metadata"},
        {"{\"model\":\"m\",\"input\":\"x\",\"store\":\"no\"}", "store"},
        {"{\"model\":\"m\",\"input\":\"x\",\"previous_response_id\":\"task_1\"}",
         "previous_response_id"},
        {"{\"model\":\"m\",\"input\":\"x\",\"truncation\":\"sometimes\"}", "truncation"},
        {"{\"model\":\"m\",\"input\":\"x\",\"include\":\"reasoning.encrypted_content\"}",
         "include"},
        {"{\"model\":\"m\",\"input\":\"x\",\"include\":[\"output.everything\"]}", "include"},
        {"{\"model\":\"m\",\"input\":\"x\",\"service_tier\":\"gold\"}", "service_tier"},
        {"{\"model\":\"m\",\"input\":\"x\",\"stream\":1}", "stream"},
        {"{\"model\":\"m\",\"input\":\"x\",\"stream_options\":{\"include_obfuscation\":\"x\"}}",
         "stream_options.include_obfuscation"},
        {"{\"model\":\"m\",\"input\":\"x\",\"stream_options\":{\"chunk\":1}}",
         "stream_options.chunk"},
        {"{\"model\":\"m\",\"input\":\"x\",\"background\":\"yes\"}", "background"},
        {"{\"model\":\"m\",\"input\":\"x\",\"background\":true,\"store\":false}", "background"},
        {"{\"model\":\"m\",\"input\":\"x\",\"user\":5}", "user"},
        {"{\"model\":\"m\",\"input\":\"x\",\"safety_identifier\":5}", "safety_identifier"},
        {"{\"model\":\"m\",\"input\":\"x\",\"prompt_cache_key\":5}", "prompt_cache_key"},
        {"{\"model\":\"m\",\"input\":\"x\",\"webhook\":\"https://hook\"}", "webhook"},
        {"{\"model\":\"m\",\"input\":\"x\",\"conversation\":\"conv_1\"}", "conversation"},
        {"{\"model\":\"m\",\"input\":\"x\",\"prompt\":{\"id\":\"p\"}}", "prompt"},
        {"{\"model\":\"m\",\"input\":\"x\",\"messages\":[]}", "messages"},
    };
    cJSON *req = cJSON_Parse("{\"model\":\"m\",\"input\":\"x\",\"tools\":[{\"type\":"
                             "\"web_search_preview\"}]}");
    struct core_err err;

    check_test_begin("check_refusals");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        check_one(cases[i].body, cases[i].param);
    }
    /* a built-in tool's refusal names the tool's type in the message */
    CHECK(responses_check(req, &err) == CORE_EINVAL);
    CHECK(strstr(err.message, "web_search_preview") != NULL);
    CHECK_STR(err.err_code, "unsupported_parameter");
    cJSON_Delete(req);
    check_test_end();
}

static void test_object(void)
{
    cJSON *req = cJSON_Parse("{\"model\":\"fast-chat\",\"input\":\"x\",\"instructions\":\"Be.\","
                             "\"temperature\":0.3,\"metadata\":{\"k\":\"v\"},\"store\":false,"
                             "\"stream\":true,\"webhook\":{\"url\":\"https://h\"}}");
    cJSON *error = cJSON_Parse("{\"code\":\"server_error\",\"message\":\"boom\"}");
    cJSON *o = responses_object(req, RID, CREATED, RESPONSES_QUEUED, NULL);
    cJSON *f = responses_object(req, RID, CREATED, RESPONSES_FAILED, error);

    check_test_begin("object");
    CHECK_STR(responses_status_name(RESPONSES_QUEUED), "queued");
    CHECK_STR(responses_status_name(RESPONSES_IN_PROGRESS), "in_progress");
    CHECK_STR(responses_status_name(RESPONSES_COMPLETED), "completed");
    CHECK_STR(responses_status_name(RESPONSES_FAILED), "failed");
    CHECK_STR(responses_status_name(RESPONSES_CANCELLED), "cancelled");
    CHECK_STR(responses_status_name(RESPONSES_INCOMPLETE), "incomplete");
    CHECK_STR(responses_status_name((enum responses_status)99), "unknown");
    CHECK_OR_OUT(o != NULL && f != NULL, "responses_object returned NULL");
    CHECK_STR(str(o, "id"), RID);
    CHECK_STR(str(o, "object"), "response");
    CHECK(cJSON_GetNumberValue(get(o, "created_at")) == (double)CREATED);
    CHECK_STR(str(o, "status"), "queued");
    CHECK(cJSON_IsNull(get(o, "error")));
    CHECK(cJSON_IsNull(get(o, "incomplete_details")));
    CHECK(cJSON_IsNull(get(o, "usage")));
    CHECK(cJSON_IsArray(get(o, "output")) && cJSON_GetArraySize(get(o, "output")) == 0);
    CHECK_STR(str(o, "model"), "fast-chat");
    /* the request's settings echoed ... */
    CHECK_STR(str(o, "instructions"), "Be.");
    CHECK(cJSON_GetNumberValue(get(o, "temperature")) == 0.3);
    CHECK_STR(str(get(o, "metadata"), "k"), "v");
    CHECK(cJSON_IsFalse(get(o, "store")));
    /* ... and OpenAI's defaults for the rest */
    CHECK(cJSON_IsTrue(get(o, "parallel_tool_calls")));
    CHECK(cJSON_GetNumberValue(get(o, "top_p")) == 1);
    CHECK_STR(str(o, "tool_choice"), "auto");
    CHECK(cJSON_IsArray(get(o, "tools")));
    CHECK_STR(str(o, "truncation"), "disabled");
    CHECK_STR(str(AT(o, "text", "format"), "type"), "text");
    CHECK(cJSON_IsNull(AT(o, "reasoning", "effort")));
    CHECK(cJSON_IsNull(get(o, "max_output_tokens")));
    CHECK(cJSON_IsNull(get(o, "previous_response_id")));
    CHECK(cJSON_IsFalse(get(o, "background")));
    CHECK_STR(str(o, "service_tier"), "auto");
    /* fields that are no setting of the response are not echoed */
    CHECK(get(o, "input") == NULL && get(o, "stream") == NULL && get(o, "webhook") == NULL);
    CHECK_STR(str(f, "status"), "failed");
    CHECK_STR(str(get(f, "error"), "code"), "server_error");
    CHECK_STR(str(get(f, "error"), "message"), "boom");
out:
    cJSON_Delete(o);
    cJSON_Delete(f);
    cJSON_Delete(req);
    cJSON_Delete(error);
    check_test_end();
}

/* responses_to_chat of body; NULL (with *rc and err set) when refused. */
static cJSON *to_chat(const char *body, int *rc, struct core_err *err)
{
    cJSON *req = cJSON_Parse(body);
    cJSON *out = NULL;

    *rc = req ? responses_to_chat(req, &out, err) : -100;
    cJSON_Delete(req);
    return out;
}

static void test_to_chat(void)
{
    static const struct {
        const char *body;
        const char *param;
    } refused[] = {
        {"{\"model\":\"m\",\"input\":\"x\",\"truncation\":\"auto\"}", "truncation"},
        {"{\"model\":\"m\",\"input\":\"x\",\"service_tier\":\"flex\"}", "service_tier"},
        {"{\"model\":\"m\",\"input\":\"x\",\"include\":[\"reasoning.encrypted_content\"]}",
         "include"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"summary\":\"auto\"}}",
         "reasoning.summary"},
        {"{\"model\":\"m\",\"input\":\"x\",\"stream_options\":{\"include_obfuscation\":true}}",
         "stream_options.include_obfuscation"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_image\","
         "\"file_id\":\"file_1\"}]}]}",
         "input[0].content[0]"},
        {"{\"model\":\"m\",\"input\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_file\","
         "\"file_url\":\"https://x/a.pdf\"}]}]}",
         "input[0].content[0]"},
        {"{\"model\":\"m\",\"input\":\"x\",\"conversation\":\"c\"}", "conversation"},
    };
    struct core_err err;
    int rc;
    cJSON *chat = to_chat(
        "{\"model\":\"fast-chat\",\"instructions\":\"Be brief.\",\"input\":["
        "{\"role\":\"user\",\"content\":\"hi\"},"
        "{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
        "{\"type\":\"message\",\"role\":\"assistant\",\"content\":[{\"type\":\"output_text\","
        "\"text\":\"Let me \"},{\"type\":\"refusal\",\"refusal\":\"look.\"}]},"
        "{\"type\":\"function_call\",\"call_id\":\"c1\",\"name\":\"f\",\"arguments\":\"{}\"},"
        "{\"type\":\"function_call\",\"call_id\":\"c2\",\"name\":\"g\",\"arguments\":\"{\\\"a\\\":"
        "1}\","
        "\"extra_content\":{\"google\":{\"thought_signature\":\"sig\"}}},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c1\",\"output\":\"one\"},"
        "{\"type\":\"function_call_output\",\"call_id\":\"c2\",\"output\":\"two\"}],"
        "\"max_output_tokens\":50,\"reasoning\":{\"effort\":\"low\"},\"text\":{\"verbosity\":"
        "\"low\",\"format\":{\"type\":\"text\"}},\"metadata\":{\"k\":\"v\"},\"store\":true,"
        "\"background\":true,\"previous_response_id\":\"resp_p\",\"truncation\":\"disabled\","
        "\"service_tier\":\"default\",\"include\":[\"message.output_text.logprobs\"],"
        "\"user\":\"u1\",\"webhook\":{\"url\":\"https://h\"},\"stream\":true}",
        &rc, &err);
    const cJSON *msgs = get(chat, "messages");

    check_test_begin("to_chat");
    CHECK_OR_OUT(rc == 0 && chat != NULL, "refused: %s (%s)", err.param, err.message);
    CHECK_STR(str(chat, "model"), "fast-chat");
    CHECK_I64(cJSON_GetArraySize(msgs), 5);
    CHECK_STR(str(AT(msgs, "0"), "role"), "system");
    CHECK_STR(str(AT(msgs, "0"), "content"), "Be brief.");
    CHECK_STR(str(AT(msgs, "1"), "content"), "hi");
    /* the reasoning item is not sent; the text (a refusal is what the model said) and both
     * calls are one assistant message */
    CHECK_STR(str(AT(msgs, "2"), "role"), "assistant");
    CHECK_STR(str(AT(msgs, "2"), "content"), "Let me look.");
    CHECK_I64(cJSON_GetArraySize(AT(msgs, "2", "tool_calls")), 2);
    CHECK_STR(str(AT(msgs, "2", "tool_calls", "1"), "id"), "c2");
    CHECK_STR(str(AT(msgs, "2", "tool_calls", "1", "function"), "arguments"), "{\"a\":1}");
    CHECK_STR(str(AT(msgs, "2", "tool_calls", "1", "extra_content", "google"), "thought_signature"),
              "sig");
    CHECK_STR(str(AT(msgs, "3"), "role"), "tool");
    CHECK_STR(str(AT(msgs, "3"), "tool_call_id"), "c1");
    CHECK_STR(str(AT(msgs, "4"), "content"), "two");
    CHECK(cJSON_GetNumberValue(get(chat, "max_completion_tokens")) == 50);
    CHECK_STR(str(chat, "reasoning_effort"), "low");
    CHECK_STR(str(chat, "verbosity"), "low");
    CHECK_STR(str(chat, "user"), "u1");
    CHECK(cJSON_IsTrue(get(chat, "logprobs")));
    CHECK(cJSON_IsTrue(get(chat, "stream")));
    CHECK(cJSON_IsTrue(AT(chat, "stream_options", "include_usage")));
    /* sluice's own settings and the ones that ask for nothing are not sent */
    CHECK(get(chat, "metadata") == NULL && get(chat, "store") == NULL &&
          get(chat, "background") == NULL && get(chat, "previous_response_id") == NULL &&
          get(chat, "truncation") == NULL && get(chat, "service_tier") == NULL &&
          get(chat, "include") == NULL && get(chat, "webhook") == NULL &&
          get(chat, "response_format") == NULL && get(chat, "instructions") == NULL &&
          get(chat, "input") == NULL && get(chat, "text") == NULL);
out:
    cJSON_Delete(chat);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        chat = to_chat(refused[i].body, &rc, &err);
        CHECK_MSG(rc == CORE_EINVAL && chat == NULL && strcmp(err.param, refused[i].param) == 0,
                  "%s: rc %d param \"%s\", want \"%s\"", refused[i].body, rc, err.param,
                  refused[i].param);
        cJSON_Delete(chat);
    }
    check_test_end();
}

/*
 * A dialect's refusal of a chat field reaches the client under the Responses field it came
 * from, in param and in the message.
 */
static void test_param_mapping(void)
{
    static const struct {
        const char *body;
        const char *param;
    } cases[] = {
        {"{\"model\":\"m\",\"input\":\"x\",\"text\":{\"verbosity\":\"low\"}}", "text.verbosity"},
        {"{\"model\":\"m\",\"input\":\"x\",\"reasoning\":{\"effort\":\"low\"}}",
         "reasoning.effort"},
        {"{\"model\":\"m\",\"input\":\"x\",\"include\":[\"message.output_text.logprobs\"]}",
         "include"},
        {"{\"model\":\"m\",\"input\":\"x\",\"safety_identifier\":\"s\"}", "safety_identifier"},
    };

    check_test_begin("param_mapping");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *req = cJSON_Parse(cases[i].body);
        struct adapter_call call = {
            .op = ADAPTER_OP_RESPONSE, .input = req, .target = &anthropic_target};
        struct adapter_request out;
        struct core_err err;
        char quoted[80];
        int rc = responses_build_request(&adapter_anthropic, &call, &out, &err);

        snprintf(quoted, sizeof(quoted), "'%s'", cases[i].param);
        CHECK_MSG(rc == CORE_EINVAL && strcmp(err.param, cases[i].param) == 0 &&
                      strstr(err.message, quoted) != NULL,
                  "%s: rc %d param \"%s\" message \"%s\", want %s", cases[i].body, rc, err.param,
                  err.message, quoted);
        CHECK(out.url == NULL && out.body == NULL);
        adapter_request_cleanup(&out);
        cJSON_Delete(req);
    }
    check_test_end();
}

/* Item ids from the response id; call ids made when the provider gave none. */
static void test_ids_and_usage(void)
{
    cJSON *req = cJSON_Parse("{\"model\":\"fast-chat\",\"input\":\"x\"}");
    cJSON *completion = cJSON_Parse(
        "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hi\","
        "\"reasoning_content\":\"think\",\"tool_calls\":["
        "{\"id\":\"call_a\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}"
        "\"}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"g\",\"arguments\":\"\"}}]},"
        "\"finish_reason\":\"content_filter\"}],"
        "\"usage\":{\"prompt_tokens\":10,\"completion_tokens\":5,\"total_tokens\":15,"
        "\"prompt_tokens_details\":{\"cached_tokens\":4},"
        "\"completion_tokens_details\":{\"reasoning_tokens\":2}}}");
    struct core_err err;
    cJSON *o = NULL;
    const cJSON *out;

    check_test_begin("ids_and_usage");
    CHECK_OR_OUT(responses_from_chat(req, completion, RID, CREATED, &o, &err) == 0, "%s",
                 err.message);
    out = get(o, "output");
    CHECK_STR(str(o, "id"), RID);
    CHECK_I64(cJSON_GetArraySize(out), 4);
    CHECK_STR(str(AT(out, "0"), "type"), "reasoning");
    CHECK_STR(str(AT(out, "0"), "id"), "rs_abcdefghijklmnopqrstuvwxyz");
    CHECK_STR(str(AT(out, "1"), "type"), "message");
    CHECK_STR(str(AT(out, "1"), "id"), "msg_abcdefghijklmnopqrstuvwxyz");
    CHECK_STR(str(AT(out, "2"), "id"), "fc_abcdefghijklmnopqrstuvwxyz");
    CHECK_STR(str(AT(out, "2"), "call_id"), "call_a");
    CHECK_STR(str(AT(out, "3"), "id"), "fc_abcdefghijklmnopqrstuvwxyz_1");
    CHECK_STR(str(AT(out, "3"), "call_id"), "call_abcdefghijklmnopqrstuvwxyz_1");
    /* content_filter: incomplete, and every item says so */
    CHECK_STR(str(o, "status"), "incomplete");
    CHECK_STR(str(get(o, "incomplete_details"), "reason"), "content_filter");
    CHECK_STR(str(AT(out, "1"), "status"), "incomplete");
    /* usage in the Responses names */
    CHECK(cJSON_GetNumberValue(AT(o, "usage", "input_tokens")) == 10);
    CHECK(cJSON_GetNumberValue(AT(o, "usage", "output_tokens")) == 5);
    CHECK(cJSON_GetNumberValue(AT(o, "usage", "total_tokens")) == 15);
    CHECK(cJSON_GetNumberValue(AT(o, "usage", "input_tokens_details", "cached_tokens")) == 4);
    CHECK(cJSON_GetNumberValue(AT(o, "usage", "output_tokens_details", "reasoning_tokens")) == 2);
    CHECK(get(get(o, "usage"), "prompt_tokens") == NULL);
out:
    cJSON_Delete(o);
    cJSON_Delete(req);
    cJSON_Delete(completion);
    check_test_end();
}

/* The native call's body: sluice's own settings out, store false, the deployment's model. */
static void test_native_body(void)
{
    cJSON *req = cJSON_Parse(
        "{\"model\":\"fast-chat\",\"input\":[{\"type\":\"message\",\"id\":\"msg_1\",\"role\":"
        "\"user\",\"content\":\"hi\"},{\"type\":\"reasoning\",\"id\":\"rs_1\",\"summary\":[]},"
        "{\"type\":\"reasoning\",\"id\":\"rs_2\",\"summary\":[],\"encrypted_content\":\"e\"}],"
        "\"background\":true,\"store\":true,\"previous_response_id\":\"resp_p\","
        "\"webhook\":{\"url\":\"https://h\"},\"stream\":true,\"service_tier\":\"flex\","
        "\"truncation\":\"auto\",\"metadata\":{\"k\":\"v\"}}");
    struct adapter_call call = {.op = ADAPTER_OP_RESPONSE, .input = req, .target = &native_target};
    struct adapter_request out;
    struct core_err err;
    cJSON *body = NULL;
    const cJSON *input;

    check_test_begin("native_body");
    CHECK_OR_OUT(responses_build_request(&adapter_openai, &call, &out, &err) == 0, "%s",
                 err.message);
    CHECK_STR(out.url, "https://api.openai.com/v1/responses");
    body = cJSON_Parse(out.body);
    input = get(body, "input");
    CHECK_STR(str(body, "model"), "gpt-4.1-mini");
    CHECK(cJSON_IsFalse(get(body, "store")));
    CHECK(get(body, "background") == NULL && get(body, "previous_response_id") == NULL &&
          get(body, "webhook") == NULL);
    /* call->stream is false: the upstream call does not stream whatever the request said */
    CHECK(get(body, "stream") == NULL);
    CHECK_STR(str(body, "service_tier"), "flex");
    CHECK_STR(str(body, "truncation"), "auto");
    CHECK_I64(cJSON_GetArraySize(input), 2);
    CHECK(get(AT(input, "0"), "id") == NULL);
    CHECK_STR(str(AT(input, "1"), "id"), "rs_2");
    adapter_request_cleanup(&out);
    call.stream = true;
    CHECK_OR_OUT(responses_build_request(&adapter_openai, &call, &out, &err) == 0, "%s",
                 err.message);
    cJSON_Delete(body);
    body = cJSON_Parse(out.body);
    CHECK(cJSON_IsTrue(get(body, "stream")));
    adapter_request_cleanup(&out);
    /* the same request on a translated deployment refuses what chat cannot do */
    call.target = &compat_target;
    CHECK(responses_build_request(&adapter_openai, &call, &out, &err) == CORE_EINVAL);
    CHECK(strcmp(err.param, "service_tier") == 0 || strcmp(err.param, "truncation") == 0);
out:
    adapter_request_cleanup(&out);
    cJSON_Delete(body);
    cJSON_Delete(req);
    check_test_end();
}

/* Feeds one data: line to the stream. */
static int feed(struct responses_stream *s, const char *event, const char *data, cJSON *events,
                bool *done, struct core_err *err)
{
    return responses_stream_event(s, event, data, strlen(data), events, done, err);
}

/* Sequence numbers run 0, 1, 2, ... over events. */
static bool sequence_ok(const cJSON *events)
{
    const cJSON *ev;
    double want = 0;

    cJSON_ArrayForEach(ev, events)
    {
        if (cJSON_GetNumberValue(get(ev, "sequence_number")) != want) {
            return false;
        }
        want++;
    }
    return want > 0;
}

static void test_translated_stream(void)
{
    static const char *const chunks[] = {
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
        "\"content\":\"\"}}]}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"a\\\"\"}}]}}]}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"}}]}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,"
        "\"function\":{\"arguments\":\":1}\"}}]}}]}",
        "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}",
        "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,"
        "\"total_tokens\":7}}",
        "[DONE]",
    };
    cJSON *req = cJSON_Parse("{\"model\":\"fast-chat\",\"input\":\"x\",\"stream\":true}");
    struct adapter_call call = {
        .op = ADAPTER_OP_RESPONSE, .input = req, .target = &compat_target, .stream = true};
    struct responses_stream *s = responses_stream_new(&adapter_openai, &call, RID, CREATED);
    cJSON *events = cJSON_CreateArray();
    struct adapter_result res = {0};
    struct core_err err;
    bool done = false;
    const cJSON *last;
    int n;

    check_test_begin("translated_stream");
    CHECK_OR_OUT(s != NULL && events != NULL, "setup");
    CHECK(responses_stream_result(s, &res) == CORE_EINVAL);
    CHECK(responses_stream_start(s, events) == 0);
    CHECK(responses_stream_start(s, events) == 0); /* once only */
    CHECK_I64(cJSON_GetArraySize(events), 2);
    CHECK_STR(str(AT(events, "0"), "type"), "response.created");
    CHECK_STR(str(AT(events, "0", "response"), "id"), RID);
    CHECK_STR(str(AT(events, "0", "response"), "status"), "in_progress");
    CHECK_STR(str(AT(events, "1"), "type"), "response.in_progress");
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        CHECK_MSG(feed(s, NULL, chunks[i], events, &done, &err) == 0, "chunk %zu: %s", i,
                  err.message);
    }
    CHECK(done);
    n = cJSON_GetArraySize(events);
    /* after the end nothing more comes out */
    CHECK(feed(s, NULL, chunks[1], events, &done, &err) == 0);
    CHECK_I64(cJSON_GetArraySize(events), n);
    CHECK(sequence_ok(events));
    last = cJSON_GetArrayItem(events, n - 1);
    /* length: the response is incomplete, for max_output_tokens */
    CHECK_STR(str(last, "type"), "response.incomplete");
    CHECK_STR(str(AT(last, "response", "incomplete_details"), "reason"), "max_output_tokens");
    /* the message opened first (index 0), the call second; the text came in two pieces */
    CHECK_STR(str(AT(last, "response", "output", "0"), "id"), "msg_abcdefghijklmnopqrstuvwxyz");
    CHECK_STR(str(AT(last, "response", "output", "0", "content", "0"), "text"), "Hello");
    CHECK_STR(str(AT(last, "response", "output", "1"), "arguments"), "{\"a\":1}");
    CHECK_STR(str(AT(last, "response", "output", "1"), "call_id"),
              "call_abcdefghijklmnopqrstuvwxyz");
    CHECK(cJSON_GetNumberValue(AT(last, "response", "usage", "output_tokens")) == 4);
    CHECK_OR_OUT(responses_stream_result(s, &res) == 0, "no result");
    CHECK(res.outcome == ADAPTER_DONE);
    CHECK(cJSON_Compare(res.result, get(last, "response"), true));
    CHECK(cJSON_GetNumberValue(get(res.usage, "completion_tokens")) == 4);
out:
    adapter_result_cleanup(&res);
    responses_stream_free(s);
    cJSON_Delete(events);
    cJSON_Delete(req);
    check_test_end();
}

/* The native stream: renumbered from 0 after sluice's own head, ids rewritten, items kept. */
static void test_native_stream(void)
{
    static const char *const upstream[] = {
        "{\"type\":\"response.created\",\"sequence_number\":57,\"response\":{\"id\":\"resp_up\","
        "\"status\":\"in_progress\",\"output\":[]}}",
        "{\"type\":\"response.output_item.added\",\"sequence_number\":58,\"output_index\":0,"
        "\"item\":{\"type\":\"message\",\"id\":\"msg_up\",\"role\":\"assistant\",\"content\":[]}}",
        "{\"type\":\"response.output_text.delta\",\"sequence_number\":59,\"item_id\":\"msg_up\","
        "\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}",
        "{\"type\":\"response.completed\",\"sequence_number\":60,\"response\":{\"id\":\"resp_up\","
        "\"object\":\"response\",\"created_at\":5,\"model\":\"gpt-4.1-mini-2025\",\"status\":"
        "\"completed\",\"store\":false,\"output\":[{\"type\":\"message\",\"id\":\"msg_up\"}],"
        "\"usage\":{\"input_tokens\":2,\"output_tokens\":1,\"total_tokens\":3}}}",
    };
    cJSON *req = cJSON_Parse("{\"model\":\"fast-chat\",\"input\":\"x\",\"stream\":true}");
    struct adapter_call call = {
        .op = ADAPTER_OP_RESPONSE, .input = req, .target = &native_target, .stream = true};
    struct responses_stream *s = responses_stream_new(&adapter_openai, &call, RID, CREATED);
    cJSON *events = cJSON_CreateArray();
    struct adapter_result res = {0};
    struct core_err err;
    bool done = false;
    const cJSON *last;

    check_test_begin("native_stream");
    CHECK_OR_OUT(s != NULL && events != NULL, "setup");
    /* an event before start starts the stream itself */
    for (size_t i = 0; i < sizeof(upstream) / sizeof(upstream[0]); i++) {
        CHECK_MSG(feed(s, NULL, upstream[i], events, &done, &err) == 0, "event %zu: %s", i,
                  err.message);
    }
    CHECK(done);
    CHECK(sequence_ok(events));
    CHECK_I64(cJSON_GetArraySize(events), 5);
    CHECK_STR(str(AT(events, "0"), "type"), "response.created");
    CHECK_STR(str(AT(events, "0", "response"), "id"), RID);
    CHECK_STR(str(AT(events, "2", "item"), "id"), "msg_up");
    last = AT(events, "4");
    CHECK_STR(str(last, "type"), "response.completed");
    CHECK_STR(str(get(last, "response"), "id"), RID);
    CHECK_STR(str(get(last, "response"), "model"), "fast-chat");
    CHECK(cJSON_GetNumberValue(AT(last, "response", "created_at")) == (double)CREATED);
    CHECK(cJSON_IsTrue(AT(last, "response", "store")));
    CHECK_OR_OUT(responses_stream_result(s, &res) == 0, "no result");
    CHECK(cJSON_GetNumberValue(get(res.usage, "prompt_tokens")) == 2);
    CHECK(cJSON_GetNumberValue(get(res.usage, "completion_tokens")) == 1);
out:
    adapter_result_cleanup(&res);
    responses_stream_free(s);
    cJSON_Delete(events);
    cJSON_Delete(req);
    check_test_end();
}

/* A stream that fails: the provider's error, then response.failed with it as the error. */
static void test_stream_fail(void)
{
    cJSON *req = cJSON_Parse("{\"model\":\"fast-chat\",\"input\":\"x\",\"stream\":true}");
    struct adapter_call call = {
        .op = ADAPTER_OP_RESPONSE, .input = req, .target = &native_target, .stream = true};
    struct responses_stream *s = responses_stream_new(&adapter_openai, &call, RID, CREATED);
    cJSON *events = cJSON_CreateArray();
    struct adapter_result res = {0};
    struct core_err err;
    bool done = false;
    const cJSON *last;
    int rc;

    check_test_begin("stream_fail");
    /* a dialect that cannot stream has no stream: the caller makes a plain call */
    call.target = &compat_target;
    CHECK(responses_stream_new(&adapter_replicate, &call, RID, CREATED) == NULL);
    call.target = &native_target;
    CHECK_OR_OUT(s != NULL && events != NULL, "setup");
    CHECK(responses_stream_start(s, events) == 0);
    rc = feed(s, "error",
              "{\"type\":\"error\",\"code\":\"rate_limit_exceeded\",\"message\":\"slow\"}", events,
              &done, &err);
    CHECK(rc == CORE_EUPSTREAM && !done && !err.retryable);
    CHECK_STR(err.err_code, "rate_limit_exceeded");
    CHECK(responses_stream_fail(s, &err, events) == 0);
    CHECK(sequence_ok(events));
    last = cJSON_GetArrayItem(events, cJSON_GetArraySize(events) - 1);
    CHECK_STR(str(last, "type"), "response.failed");
    CHECK_STR(str(get(last, "response"), "status"), "failed");
    CHECK_STR(str(AT(last, "response", "error"), "code"), "rate_limit_exceeded");
    CHECK_STR(str(AT(last, "response", "error"), "message"), "slow");
    CHECK(responses_stream_result(s, &res) == CORE_EINVAL);
    /* garbage is refused, not passed on */
    responses_stream_free(s);
    s = responses_stream_new(&adapter_openai, &call, RID, CREATED);
    CHECK_OR_OUT(s != NULL, "setup");
    CHECK(feed(s, NULL, "not json", events, &done, &err) == CORE_EUPSTREAM);
    CHECK_STR(err.err_code, "malformed_reply");
out:
    adapter_result_cleanup(&res);
    responses_stream_free(s);
    responses_stream_free(NULL);
    cJSON_Delete(events);
    cJSON_Delete(req);
    check_test_end();
}

int main(void)
{
    test_check_accepts();
    test_check_refusals();
    test_object();
    test_to_chat();
    test_param_mapping();
    test_ids_and_usage();
    test_native_body();
    test_translated_stream();
    test_native_stream();
    test_stream_fail();
    return check_done();
}
