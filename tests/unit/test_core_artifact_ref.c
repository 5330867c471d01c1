/*
 * Unit tests of core/artifact_ref: the stored form of an image result (the marker first, data
 * items referring to their artifacts, no provider URL or base64 left), reading it back, the cheap
 * prefix test, the form a request asks for, and the blob path.
 */
#include <stdlib.h>

#include "core/artifact_ref.h"
#include "core/err.h"
#include "check.h"

/* result rewritten with form and n, printed; caller frees. NULL when the rewrite failed. */
static char *stored(const char *result, enum artifact_form form, size_t n, int *rc)
{
    cJSON *r = cJSON_Parse(result);
    char *text;

    *rc = artifact_ref_store(r, form, n);
    text = *rc == 0 ? cJSON_PrintUnformatted(r) : NULL;
    cJSON_Delete(r);
    return text;
}

static void test_store(void)
{
    int rc;
    char *t;

    t = stored("{\"created\":1700000000,\"data\":[{\"url\":\"https://provider.example/a.png\","
               "\"revised_prompt\":\"a cat\"},{\"b64_json\":\"iVBORw0KGgo=\"}],"
               "\"usage\":{\"images\":2}}",
               ARTIFACT_FORM_URL, 2, &rc);
    CHECK(rc == 0);
    CHECK_STR(t, "{\"sluice_response_format\":\"url\",\"created\":1700000000,\"data\":[{"
                 "\"revised_prompt\":\"a cat\",\"artifact\":0},{\"artifact\":1}],"
                 "\"usage\":{\"images\":2}}");
    CHECK(t != NULL && artifact_ref_is(t, strlen(t)));
    free(t);

    /* b64_json form; an item beyond the kept artifacts loses its provider URL, gets no reference */
    t = stored("{\"data\":[{\"b64_json\":\"AAAA\"},{\"url\":\"https://provider.example/b.png\"}]}",
               ARTIFACT_FORM_B64_JSON, 1, &rc);
    CHECK(rc == 0);
    CHECK_STR(t, "{\"sluice_response_format\":\"b64_json\",\"data\":[{\"artifact\":0},{}]}");
    free(t);

    /* a result that already had the marker (a rewrite done twice) keeps one, first */
    t = stored("{\"created\":1,\"sluice_response_format\":\"b64_json\",\"data\":[{\"artifact\":5,"
               "\"url\":\"x\"}]}",
               ARTIFACT_FORM_URL, 1, &rc);
    CHECK_STR(t, "{\"sluice_response_format\":\"url\",\"created\":1,\"data\":[{\"artifact\":0}]}");
    free(t);

    CHECK(stored("{\"created\":1}", ARTIFACT_FORM_URL, 0, &rc) == NULL && rc == CORE_EINVAL);
    CHECK(stored("[1]", ARTIFACT_FORM_URL, 0, &rc) == NULL && rc == CORE_EINVAL);
    CHECK(stored("{\"data\":[1]}", ARTIFACT_FORM_URL, 1, &rc) == NULL && rc == CORE_EINVAL);
    CHECK(stored("{\"data\":[]}", ARTIFACT_FORM_URL, ARTIFACT_REF_MAX + 1, &rc) == NULL &&
          rc == CORE_EINVAL);
    CHECK(artifact_ref_store(NULL, ARTIFACT_FORM_URL, 0) == CORE_EINVAL);
}

static void test_is_and_load(void)
{
    const char *s = "{\"sluice_response_format\":\"b64_json\",\"created\":1,"
                    "\"data\":[{\"artifact\":0},{\"artifact\":1,\"revised_prompt\":\"p\"},{}]}";
    enum artifact_form form = ARTIFACT_FORM_URL;
    const cJSON *data;
    cJSON *out = NULL;
    char *text;

    CHECK(artifact_ref_is(s, strlen(s)));
    CHECK(!artifact_ref_is(s, 10)); /* only the first len bytes count */
    CHECK(!artifact_ref_is("{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\"}", 44));
    CHECK(!artifact_ref_is("{\"created\":1,\"sluice_response_format\":\"url\"}", 44));
    CHECK(!artifact_ref_is(NULL, 0));

    CHECK(artifact_ref_load(s, strlen(s), &form, &out, NULL) == 0);
    CHECK(form == ARTIFACT_FORM_B64_JSON);
    text = cJSON_PrintUnformatted(out);
    CHECK_STR(text, "{\"created\":1,\"data\":[{\"artifact\":0},{\"artifact\":1,"
                    "\"revised_prompt\":\"p\"},{}]}");
    free(text);
    data = cJSON_GetObjectItemCaseSensitive(out, "data");
    CHECK(artifact_ref_index(cJSON_GetArrayItem(data, 0)) == 0);
    CHECK(artifact_ref_index(cJSON_GetArrayItem(data, 1)) == 1);
    CHECK(artifact_ref_index(cJSON_GetArrayItem(data, 2)) == -1);
    cJSON_Delete(out);

    /* a prefix alone is not enough: bad JSON, an unknown form, no data */
    CHECK(artifact_ref_load("{\"sluice_response_format\":\"url\",", 31, &form, &out, NULL) == -1);
    CHECK(out == NULL);
    s = "{\"sluice_response_format\":\"png\",\"data\":[]}";
    CHECK(artifact_ref_load(s, strlen(s), &form, &out, NULL) == -1);
    s = "{\"sluice_response_format\":\"url\"}";
    CHECK(artifact_ref_load(s, strlen(s), &form, &out, NULL) == -1);
}

static void test_index(void)
{
    static const char *const bad[] = {"{\"artifact\":-1}",
                                      "{\"artifact\":1.5}",
                                      "{\"artifact\":\"0\"}",
                                      "{\"artifact\":128}",
                                      "{}",
                                      "3"};

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cJSON *item = cJSON_Parse(bad[i]);
        CHECK(artifact_ref_index(item) == -1);
        cJSON_Delete(item);
    }
    cJSON *ok = cJSON_Parse("{\"artifact\":127}");
    CHECK(artifact_ref_index(ok) == 127);
    cJSON_Delete(ok);
}

static void test_form(void)
{
    static const struct {
        const char *input;
        bool inline_;
        int rc;
        enum artifact_form want;
    } cases[] = {
        {"{}", false, 0, ARTIFACT_FORM_URL},
        {"{}", true, 0, ARTIFACT_FORM_B64_JSON},
        {"{\"response_format\":null}", true, 0, ARTIFACT_FORM_B64_JSON},
        {"{\"response_format\":\"url\"}", true, 0, ARTIFACT_FORM_URL},
        {"{\"response_format\":\"b64_json\"}", false, 0, ARTIFACT_FORM_B64_JSON},
        {"{\"response_format\":\"png\"}", true, -1, ARTIFACT_FORM_URL},
        {"{\"response_format\":1}", false, -1, ARTIFACT_FORM_URL},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cJSON *in = cJSON_Parse(cases[i].input);
        enum artifact_form f = ARTIFACT_FORM_B64_JSON;
        CHECK(artifact_form_for(in, cases[i].inline_, &f) == cases[i].rc);
        CHECK(f == cases[i].want);
        cJSON_Delete(in);
    }
    CHECK(artifact_form_parse("url") == ARTIFACT_FORM_URL);
    CHECK(artifact_form_parse("b64_json") == ARTIFACT_FORM_B64_JSON);
    CHECK(artifact_form_parse("B64_JSON") == -1);
    CHECK(artifact_form_parse(NULL) == -1);
    CHECK_STR(artifact_form_name(ARTIFACT_FORM_B64_JSON), "b64_json");
    CHECK_STR(artifact_form_name(ARTIFACT_FORM_URL), "url");
}

static void test_blob_path(void)
{
    char p[64];

    CHECK(artifact_blob_path("blobs", "task_x", 3, p, sizeof(p)) == 0);
    CHECK_STR(p, "blobs/task_x/3");
    CHECK(artifact_blob_path("blobs", "task_x", 3, p, 8) == -1);
    CHECK_STR(p, "");
}

/* A webhook body's images: each reference as the task's content URL. */
static void test_content_urls(void)
{
    const char *s =
        "{\"sluice_response_format\":\"b64_json\",\"created\":1,\"data\":[{\"artifact\":0},"
        "{\"artifact\":1,\"revised_prompt\":\"p\"},{}]}";
    cJSON *r = artifact_ref_content_urls(s, "https://sl.example", "task_abc");
    char *text = cJSON_PrintUnformatted(r);

    CHECK_STR(text, "{\"created\":1,\"data\":[{\"url\":\"https://sl.example/v1/tasks/task_abc/"
                    "content?index=0\"},{\"revised_prompt\":\"p\",\"url\":\"https://"
                    "sl.example/v1/tasks/task_abc/content?index=1\"},{}]}");
    free(text);
    cJSON_Delete(r);
    r = artifact_ref_content_urls(s, NULL, "task_abc");
    CHECK_STR(cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(
                  cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(r, "data"), 0), "url")),
              "/v1/tasks/task_abc/content?index=0");
    cJSON_Delete(r);
    CHECK(artifact_ref_content_urls("{\"id\":\"chatcmpl-1\"}", NULL, "task_abc") == NULL);
}

/* A cached answer names the task whose files it shows: after the marker in its result, and on
 * each artifact; a reader takes the files from that task, and nothing of it reaches the client. */
static void test_owner(void)
{
    const char *s =
        "{\"sluice_response_format\":\"url\",\"sluice_artifact_task\":"
        "\"task_abcdefghijklmnopqrstuvwxyz\",\"created\":1,\"data\":[{\"artifact\":0}]}";
    enum artifact_form form;
    char owner[ARTIFACT_REF_OWNER_MAX];
    cJSON *out = NULL, *item;
    char *text;

    CHECK(artifact_ref_is(s, strlen(s)));
    CHECK(artifact_ref_load(s, strlen(s), &form, &out, owner) == 0);
    CHECK(form == ARTIFACT_FORM_URL);
    CHECK_STR(owner, "task_abcdefghijklmnopqrstuvwxyz");
    text = cJSON_PrintUnformatted(out);
    CHECK_STR(text, "{\"created\":1,\"data\":[{\"artifact\":0}]}");
    free(text);
    cJSON_Delete(out);
    /* a result of its own names none */
    s = "{\"sluice_response_format\":\"url\",\"data\":[{\"artifact\":0}]}";
    strcpy(owner, "x");
    CHECK(artifact_ref_load(s, strlen(s), &form, &out, owner) == 0);
    CHECK_STR(owner, "");
    cJSON_Delete(out);
    /* something that is not a task id is not an owner */
    s = "{\"sluice_response_format\":\"url\",\"sluice_artifact_task\":\"../../etc\","
        "\"data\":[]}";
    CHECK(artifact_ref_load(s, strlen(s), &form, &out, owner) == 0);
    CHECK_STR(owner, "");
    cJSON_Delete(out);

    item = cJSON_Parse("{\"index\":0,\"blob_task\":\"task_abcdefghijklmnopqrstuvwxyz\"}");
    CHECK_STR(artifact_ref_blob_task(item, "task_zzzzzzzzzzzzzzzzzzzzzzzzzz"),
              "task_abcdefghijklmnopqrstuvwxyz");
    cJSON_Delete(item);
    item = cJSON_Parse("{\"index\":0,\"blob_task\":\"../x\"}");
    CHECK_STR(artifact_ref_blob_task(item, "task_zzzzzzzzzzzzzzzzzzzzzzzzzz"),
              "task_zzzzzzzzzzzzzzzzzzzzzzzzzz");
    cJSON_Delete(item);
    CHECK_STR(artifact_ref_blob_task(NULL, "task_zzzzzzzzzzzzzzzzzzzzzzzzzz"),
              "task_zzzzzzzzzzzzzzzzzzzzzzzzzz");
}

int main(void)
{
    test_store();
    test_is_and_load();
    test_owner();
    test_index();
    test_form();
    test_blob_path();
    test_content_urls();
    return check_done();
}
