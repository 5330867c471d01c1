/*
 * core/artifact_ref.c — the stored form of an image result (see artifact_ref.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/artifact_ref.h"
#include "core/err.h"
#include "core/task.h"

/* The stored text's first bytes, as cJSON_PrintUnformatted writes the marker member. */
static const char artifact_ref_prefix[] = "{\"" ARTIFACT_REF_KEY "\":";

static const char *const artifact_form_names[] = {
    [ARTIFACT_FORM_URL] = "url",
    [ARTIFACT_FORM_B64_JSON] = "b64_json",
};

int artifact_form_parse(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(artifact_form_names) / sizeof(char *); i++) {
        if (strcmp(name, artifact_form_names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

const char *artifact_form_name(enum artifact_form form)
{
    return artifact_form_names[form == ARTIFACT_FORM_B64_JSON ? form : ARTIFACT_FORM_URL];
}

int artifact_form_for(const cJSON *input, bool provider_inline, enum artifact_form *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, "response_format");
    int form;

    *out = provider_inline ? ARTIFACT_FORM_B64_JSON : ARTIFACT_FORM_URL;
    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    form = cJSON_IsString(v) ? artifact_form_parse(v->valuestring) : -1;
    *out = form < 0 ? ARTIFACT_FORM_URL : (enum artifact_form)form;
    return form < 0 ? -1 : 0;
}

int artifact_ref_store(cJSON *result, enum artifact_form form, size_t n)
{
    cJSON *data = cJSON_GetObjectItemCaseSensitive(result, "data");
    cJSON *marker;
    cJSON *item;
    size_t i = 0;

    if (!cJSON_IsObject(result) || !cJSON_IsArray(data) || n > ARTIFACT_REF_MAX) {
        return CORE_EINVAL;
    }
    cJSON_ArrayForEach(item, data)
    {
        cJSON_DeleteItemFromObjectCaseSensitive(item, "url");
        cJSON_DeleteItemFromObjectCaseSensitive(item, "b64_json");
        cJSON_DeleteItemFromObjectCaseSensitive(item, ARTIFACT_REF_ITEM);
        if (i < n && (!cJSON_IsObject(item) ||
                      cJSON_AddNumberToObject(item, ARTIFACT_REF_ITEM, (double)i) == NULL)) {
            return cJSON_IsObject(item) ? CORE_ENOMEM : CORE_EINVAL;
        }
        i++;
    }
    /*
     * cJSON has no "prepend to object": add the marker (which names it), detach it, and insert it
     * before the first member; a detached item keeps its name.
     */
    cJSON_DeleteItemFromObjectCaseSensitive(result, ARTIFACT_REF_KEY);
    marker = cJSON_AddStringToObject(result, ARTIFACT_REF_KEY, artifact_form_name(form));
    if (marker == NULL) {
        return CORE_ENOMEM;
    }
    cJSON_DetachItemViaPointer(result, marker);
    cJSON_InsertItemInArray(result, 0, marker);
    return 0;
}

bool artifact_ref_is(const char *text, size_t len)
{
    const size_t plen = sizeof(artifact_ref_prefix) - 1;

    return text != NULL && len > plen && memcmp(text, artifact_ref_prefix, plen) == 0;
}

int artifact_ref_load(const char *text, size_t len, enum artifact_form *form, cJSON **out,
                      char *owner)
{
    cJSON *root;
    const char *o;
    int f;

    *out = NULL;
    if (owner != NULL) {
        owner[0] = '\0';
    }
    if (!artifact_ref_is(text, len) || (root = cJSON_ParseWithLength(text, len)) == NULL) {
        return -1;
    }
    f = artifact_form_parse(
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, ARTIFACT_REF_KEY)));
    if (f < 0 || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "data"))) {
        cJSON_Delete(root);
        return -1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, ARTIFACT_REF_KEY);
    o = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(root, ARTIFACT_REF_OWNER));
    if (owner != NULL && o != NULL && task_id_valid(o) && strlen(o) < ARTIFACT_REF_OWNER_MAX) {
        strcpy(owner, o);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(root, ARTIFACT_REF_OWNER);
    *form = (enum artifact_form)f;
    *out = root;
    return 0;
}

const char *artifact_ref_blob_task(const cJSON *item, const char *task_id)
{
    const char *o =
        cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(item, ARTIFACT_REF_BLOB_TASK));

    return o != NULL && task_id_valid(o) ? o : task_id;
}

long artifact_ref_index(const cJSON *item)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(item, ARTIFACT_REF_ITEM);

    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble >= ARTIFACT_REF_MAX ||
        v->valuedouble != (double)(long)v->valuedouble) {
        return -1;
    }
    return (long)v->valuedouble;
}

cJSON *artifact_ref_content_urls(const char *text, const char *base, const char *id)
{
    enum artifact_form form;
    cJSON *r = NULL;
    cJSON *item;

    if (text == NULL || artifact_ref_load(text, strlen(text), &form, &r, NULL) != 0) {
        return NULL;
    }
    cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(r, "data"))
    {
        long i = artifact_ref_index(item);
        char url[1024];

        if (i < 0) {
            continue;
        }
        snprintf(url, sizeof(url), "%s/v1/tasks/%s/content?index=%ld", base ? base : "", id, i);
        cJSON_DeleteItemFromObjectCaseSensitive(item, ARTIFACT_REF_ITEM);
        if (cJSON_AddStringToObject(item, "url", url) == NULL) {
            cJSON_Delete(r);
            return NULL;
        }
    }
    return r;
}
