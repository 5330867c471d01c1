/*
 * tests/mock/schema.c — a JSON value that satisfies a JSON Schema, for answers to structured-output
 * requests (OpenAI's response_format json_schema, Gemini's responseJsonSchema, an Anthropic tool
 * forced to answer in a schema). Tests parse the answer and check it against the schema they
 * sent, so the value must really satisfy it: objects carry every property (required or not),
 * arrays one element, enums and consts their first value. Bounded in depth; keywords the mock
 * does not know yield a string.
 */
#include <string.h>

#include "tests/mock/mock.h"

#define SCHEMA_MAX_DEPTH 16

static cJSON *sample(const cJSON *s, int depth)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(s, "type");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(s, "enum");
    const cJSON *cst = cJSON_GetObjectItemCaseSensitive(s, "const");
    const cJSON *any = cJSON_GetObjectItemCaseSensitive(s, "anyOf");
    const char *t = NULL;

    if (depth > SCHEMA_MAX_DEPTH) {
        return cJSON_CreateNull();
    }
    if (cst != NULL) {
        return cJSON_Duplicate(cst, true);
    }
    if (cJSON_IsArray(en) && cJSON_GetArraySize(en) > 0) {
        return cJSON_Duplicate(cJSON_GetArrayItem(en, 0), true);
    }
    if (cJSON_IsArray(any) && cJSON_GetArraySize(any) > 0) {
        return sample(cJSON_GetArrayItem(any, 0), depth + 1);
    }
    if (cJSON_IsString(type)) {
        t = type->valuestring;
    } else if (cJSON_IsArray(type) && cJSON_IsString(cJSON_GetArrayItem(type, 0))) {
        t = cJSON_GetArrayItem(type, 0)->valuestring;
    } else if (cJSON_GetObjectItemCaseSensitive(s, "properties") != NULL) {
        t = "object";
    }
    if (t == NULL || strcmp(t, "string") == 0) {
        return cJSON_CreateString("mock");
    }
    if (strcmp(t, "integer") == 0 || strcmp(t, "number") == 0) {
        const cJSON *min = cJSON_GetObjectItemCaseSensitive(s, "minimum");
        return cJSON_CreateNumber(cJSON_IsNumber(min) ? min->valuedouble : 1);
    }
    if (strcmp(t, "boolean") == 0) {
        return cJSON_CreateTrue();
    }
    if (strcmp(t, "null") == 0) {
        return cJSON_CreateNull();
    }
    if (strcmp(t, "array") == 0) {
        cJSON *arr = cJSON_CreateArray();
        const cJSON *items = cJSON_GetObjectItemCaseSensitive(s, "items");
        const cJSON *min = cJSON_GetObjectItemCaseSensitive(s, "minItems");
        int n = cJSON_IsNumber(min) && min->valuedouble > 1 ? (int)min->valuedouble : 1;
        for (int i = 0; arr != NULL && i < n && i < 16; i++) {
            cJSON_AddItemToArray(arr, sample(items, depth + 1));
        }
        return arr;
    }
    if (strcmp(t, "object") == 0) {
        cJSON *obj = cJSON_CreateObject();
        const cJSON *props = cJSON_GetObjectItemCaseSensitive(s, "properties");
        const cJSON *p;
        cJSON_ArrayForEach(p, props)
        {
            if (obj != NULL && p->string != NULL) {
                cJSON_AddItemToObject(obj, p->string, sample(p, depth + 1));
            }
        }
        return obj;
    }
    return cJSON_CreateString("mock");
}

cJSON *mock_schema_sample(const cJSON *schema)
{
    return sample(schema, 0);
}
