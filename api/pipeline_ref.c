/*
 * api/pipeline_ref.c — replacing a step's references with earlier steps' outputs: the for_each
 * list, a task's resolved input and a task's message text (see api/pipeline_spec.h). Pure
 * functions over cJSON. A reference, a path and a splice are read with the syntax
 * api/pipeline_spec.c checked the spec with (api/pipeline_internal.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/pipeline_internal.h"
#include "api/pipeline_spec.h"

/* A string being built from text and splices, at most PIPE_TEXT_MAX bytes. */
struct sbuf {
    char *p;
    size_t len, cap;
};

const char *pipe_task_text(const struct pipe_task_out *t, char **owned)
{
    const cJSON *v, *item, *part;
    size_t len = 0;
    bool any = false;
    char *buf = NULL;

    *owned = NULL;
    if (t == NULL || t->result == NULL) {
        return NULL;
    }
    if (t->kind == TASK_KIND_CHAT) {
        v = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(t->result, "choices"), 0);
        v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(v, "message"),
                                             "content");
        return cJSON_IsString(v) ? v->valuestring : NULL;
    }
    if (t->kind != TASK_KIND_RESPONSE) {
        return NULL;
    }
    v = cJSON_GetObjectItemCaseSensitive(t->result, "output_text");
    if (cJSON_IsString(v)) {
        return v->valuestring;
    }
    /* two passes over output[].content[]: the size, then the copy */
    for (int pass = 0; pass < 2; pass++) {
        cJSON_ArrayForEach(item, cJSON_GetObjectItemCaseSensitive(t->result, "output"))
        {
            cJSON_ArrayForEach(part, cJSON_GetObjectItemCaseSensitive(item, "content"))
            {
                const cJSON *type = cJSON_GetObjectItemCaseSensitive(part, "type");
                const cJSON *text = cJSON_GetObjectItemCaseSensitive(part, "text");
                if (!cJSON_IsString(type) || strcmp(type->valuestring, "output_text") != 0 ||
                    !cJSON_IsString(text)) {
                    continue;
                }
                if (pass == 0) {
                    len += strlen(text->valuestring);
                    any = true;
                } else {
                    size_t n = strlen(text->valuestring);
                    memcpy(buf + len, text->valuestring, n);
                    len += n;
                }
            }
        }
        if (pass == 0) {
            if (!any) {
                return NULL;
            }
            buf = malloc(len + 1);
            if (buf == NULL) {
                return NULL;
            }
            len = 0;
        }
    }
    buf[len] = '\0';
    *owned = buf;
    return buf;
}

/* What kind of JSON value v is, for messages. */
static const char *json_type(const cJSON *v)
{
    if (cJSON_IsString(v)) {
        return "a string";
    }
    if (cJSON_IsNumber(v)) {
        return "a number";
    }
    if (cJSON_IsBool(v)) {
        return "a boolean";
    }
    if (cJSON_IsNull(v)) {
        return "null";
    }
    if (cJSON_IsArray(v)) {
        return "an array";
    }
    return cJSON_IsObject(v) ? "an object" : "not JSON";
}

/*
 * Walks ref->path from v: *out is the value there (borrowed from v). Returns 0, or
 * CORE_EUNPROCESSABLE with err naming the reference and what was missing where.
 */
static int path_walk(const cJSON *v, const struct pipe_ref *ref, const cJSON **out,
                     struct core_err *err)
{
    const char *p = ref->path, *done = ref->path, *why = NULL;
    char where[PIPE_REF_MAX + 4];
    struct pipe_seg s;
    int rc;

    while ((rc = pipe_seg_next(&p, &s, &why)) == 1) {
        if (done == ref->path) {
            snprintf(where, sizeof(where), "the value");
        } else {
            snprintf(where, sizeof(where), "\"%.*s\"", (int)(done - ref->path), ref->path);
        }
        if (s.is_index) {
            int n = cJSON_GetArraySize(v);
            if (!cJSON_IsArray(v)) {
                return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                                    "reference \"%s\": %s is %s, not an array", ref->text, where,
                                    json_type(v));
            }
            if (s.index >= n) {
                return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                                    "reference \"%s\": index %ld is past the end (%d items)",
                                    ref->text, s.index, n);
            }
            v = cJSON_GetArrayItem(v, (int)s.index);
        } else {
            const cJSON *c = NULL;
            if (!cJSON_IsObject(v)) {
                return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                                    "reference \"%s\": %s is %s, not an object", ref->text, where,
                                    json_type(v));
            }
            cJSON_ArrayForEach(c, v)
            {
                if (strlen(c->string) == s.name_len && memcmp(c->string, s.name, s.name_len) == 0) {
                    break;
                }
            }
            if (c == NULL) {
                return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                                    "reference \"%s\": %s has no member \"%.*s\"", ref->text, where,
                                    (int)s.name_len, s.name);
            }
            v = c;
        }
        done = s.end;
    }
    if (rc < 0) {
        return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                            "reference \"%s\" does not parse: %s", ref->text, why);
    }
    *out = v;
    return 0;
}

/* A deep copy of v's ref->path into *out (caller frees). */
static int walk_copy(const cJSON *v, const struct pipe_ref *ref, cJSON **out, struct core_err *err)
{
    const cJSON *at;
    int rc = path_walk(v, ref, &at, err);

    if (rc != 0) {
        return rc;
    }
    *out = cJSON_Duplicate(at, true);
    return *out != NULL ? 0 : core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
}

/* The value ref selects (text, json, result) of one task t (caller frees *out). */
static int task_value(const struct pipe_ref *ref, const char *step_id,
                      const struct pipe_task_out *t, cJSON **out, struct core_err *err)
{
    char *owned = NULL;
    const char *text = NULL;
    cJSON *parsed = NULL;
    int rc = 0;

    *out = NULL;
    if (ref->sel == PIPE_SEL_RESULT) {
        if (t->result == NULL) {
            return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                                "reference \"%s\": step \"%s\" has no result", ref->text, step_id);
        }
        return walk_copy(t->result, ref, out, err);
    }
    text = pipe_task_text(t, &owned);
    if (text == NULL) {
        return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                            "reference \"%s\": step \"%s\" has no text", ref->text, step_id);
    }
    if (ref->sel == PIPE_SEL_TEXT) {
        *out = cJSON_CreateString(text);
        rc = *out != NULL ? 0 : core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        goto out;
    }
    parsed = cJSON_ParseWithLength(text, strlen(text));
    if (parsed == NULL) {
        rc = core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                          "reference \"%s\": the text of step \"%s\" is not JSON", ref->text,
                          step_id);
        goto out;
    }
    rc = walk_copy(parsed, ref, out, err);
out:
    cJSON_Delete(parsed);
    free(owned);
    return rc;
}

/* Hands one artifact of src to r's artifact function: a new string item of its token. */
static int artifact_token(const struct pipe_resolve *r, const struct pipe_task_out *src,
                          const cJSON *artifact, cJSON **out, struct core_err *err)
{
    char *tok;

    if (r->artifact == NULL) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "no artifact function to hand over with");
    }
    core_err_clear(err);
    tok = r->artifact(r->artifact_ctx, src, artifact, err);
    if (tok == NULL) {
        return err->code != 0 ? err->code
                              : core_err_set(err, CORE_EINTERNAL, NULL, "an artifact was refused");
    }
    *out = cJSON_CreateString(tok);
    free(tok);
    return *out != NULL ? 0 : core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
}

/*
 * artifacts (a list of every task's artifact tokens, one task after another) or artifacts[i]
 * (the token of item i of that flattened list) of step so. Only the artifacts selected are
 * handed to r->artifact.
 */
static int artifacts_value(const struct pipe_resolve *r, const struct pipe_ref *ref,
                           const struct pipe_step_out *so, cJSON **out, struct core_err *err)
{
    cJSON *list = NULL, *tok = NULL;
    const cJSON *a;
    long seen = 0;
    int rc = 0;

    *out = NULL;
    if (ref->sel == PIPE_SEL_ARTIFACTS) {
        list = cJSON_CreateArray();
        if (list == NULL) {
            return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        }
    }
    for (size_t t = 0; t < so->n; t++) {
        cJSON_ArrayForEach(a, so->tasks[t].artifacts)
        {
            if (ref->sel == PIPE_SEL_ARTIFACT && seen++ != ref->index) {
                continue;
            }
            rc = artifact_token(r, &so->tasks[t], a, &tok, err);
            if (rc != 0) {
                goto fail;
            }
            if (list == NULL) {
                *out = tok;
                return 0;
            }
            cJSON_AddItemToArray(list, tok);
        }
    }
    if (list == NULL) {
        return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                            "reference \"%s\": index %ld is past the end (%ld items)", ref->text,
                            ref->index, seen);
    }
    *out = list;
    return 0;
fail:
    cJSON_Delete(list);
    return rc;
}

/*
 * The value ref selects for the task r describes (a new tree, caller frees). Of a fan-out step,
 * text, json and result give the list of its tasks' values in task order.
 */
static int ref_value(const struct pipe_resolve *r, const struct pipe_ref *ref, cJSON **out,
                     struct core_err *err)
{
    const struct pipe_step_out *so;
    const char *sid;
    cJSON *list, *v;
    int rc;

    *out = NULL;
    if (ref->sel == PIPE_SEL_INDEX) {
        *out = cJSON_CreateNumber((double)r->index);
        return *out != NULL ? 0 : core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    if (ref->sel == PIPE_SEL_ITEM) {
        if (r->item == NULL) {
            return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                                "reference \"%s\": there is no for_each element", ref->text);
        }
        return walk_copy(r->item, ref, out, err);
    }
    if (ref->step < 0 || (size_t)ref->step >= r->spec->n || r->outs == NULL) {
        return core_err_set(err, CORE_EINTERNAL, ref->text,
                            "reference \"%s\": the outputs of its step are missing", ref->text);
    }
    so = &r->outs[ref->step];
    sid = r->spec->steps[ref->step].id;
    if (ref->sel == PIPE_SEL_ARTIFACTS || ref->sel == PIPE_SEL_ARTIFACT) {
        return artifacts_value(r, ref, so, out, err);
    }
    if (!so->fan_out) {
        if (so->n == 0) {
            return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                                "reference \"%s\": step \"%s\" has no output", ref->text, sid);
        }
        return task_value(ref, sid, &so->tasks[0], out, err);
    }
    list = cJSON_CreateArray();
    if (list == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    for (size_t t = 0; t < so->n; t++) {
        rc = task_value(ref, sid, &so->tasks[t], &v, err);
        if (rc != 0) {
            cJSON_Delete(list);
            return rc;
        }
        cJSON_AddItemToArray(list, v);
    }
    *out = list;
    return 0;
}

/* Appends n bytes of s to b, refusing (-1) to grow it past PIPE_TEXT_MAX bytes. */
static int sbuf_add(struct sbuf *b, const char *s, size_t n)
{
    if (n > PIPE_TEXT_MAX || b->len + n > PIPE_TEXT_MAX) {
        return -1;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n + 1) {
            cap *= 2;
        }
        p = realloc(b->p, cap);
        if (p == NULL) {
            return -2;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

/* The error for a failed sbuf_add (rc) while ref was being spliced. */
static int sbuf_fail(int rc, const struct pipe_ref *ref, struct core_err *err)
{
    if (rc == -2) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    return core_err_set(err, CORE_EUNPROCESSABLE, ref->text,
                        "reference \"%s\": the string it is spliced into would be longer than %d "
                        "bytes",
                        ref->text, PIPE_TEXT_MAX);
}

/* String s of step's input with its "{{ref}}" splices replaced (a new string item). */
static int resolve_string(const struct pipe_resolve *r, size_t step, const char *s, cJSON **out,
                          struct core_err *err)
{
    struct sbuf b = {0};
    struct pipe_ref ref;
    const char *p = s, *open, *rs, *next;
    size_t rlen;
    cJSON *v = NULL;
    char *printed = NULL;
    int rc, more;

    *out = NULL;
    while ((more = pipe_splice_next(p, &open, &rs, &rlen, &next)) == 1) {
        const char *piece;
        rc = pipe_ref_parse(r->spec, step, rs, rlen, true, "input", &ref, err);
        if (rc != 0) {
            goto out;
        }
        rc = ref_value(r, &ref, &v, err);
        if (rc != 0) {
            goto out;
        }
        if (cJSON_IsString(v)) {
            piece = v->valuestring;
        } else {
            printed = cJSON_PrintUnformatted(v);
            if (printed == NULL) {
                rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
                goto out;
            }
            piece = printed;
        }
        rc = sbuf_add(&b, p, (size_t)(open - p));
        if (rc == 0) {
            rc = sbuf_add(&b, piece, strlen(piece));
        }
        if (rc != 0) {
            rc = sbuf_fail(rc, &ref, err);
            goto out;
        }
        cJSON_Delete(v);
        v = NULL;
        free(printed);
        printed = NULL;
        p = next;
    }
    if (more < 0) {
        rc = core_err_set(err, CORE_EINTERNAL, "input",
                          "a \"{{\" without \"}}\" got past the check");
        goto out;
    }
    if (b.p == NULL) {
        *out = cJSON_CreateString(s); /* no splice */
    } else {
        rc = sbuf_add(&b, p, strlen(p));
        if (rc != 0) {
            rc = sbuf_fail(rc, &ref, err);
            goto out;
        }
        *out = cJSON_CreateString(b.p);
    }
    rc = *out != NULL ? 0 : core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
out:
    cJSON_Delete(v);
    free(printed);
    free(b.p);
    return rc;
}

/* v (a part of step's input) with its references replaced (a new tree into *out). The check
 * bounded the nesting, so the recursion is bounded by PIPE_INPUT_DEPTH_MAX. */
static int resolve_value(const struct pipe_resolve *r, size_t step, const cJSON *v, cJSON **out,
                         struct core_err *err)
{
    const cJSON *c;
    cJSON *copy = NULL, *child;
    struct pipe_ref ref;
    int rc;

    *out = NULL;
    if (cJSON_IsString(v)) {
        return resolve_string(r, step, v->valuestring, out, err);
    }
    if (cJSON_IsObject(v)) {
        c = cJSON_GetObjectItemCaseSensitive(v, "$ref");
        if (cJSON_IsString(c) && v->child->next == NULL) {
            rc = pipe_ref_parse(r->spec, step, c->valuestring, strlen(c->valuestring), false,
                                "input", &ref, err);
            return rc != 0 ? rc : ref_value(r, &ref, out, err);
        }
        copy = cJSON_CreateObject();
    } else if (cJSON_IsArray(v)) {
        copy = cJSON_CreateArray();
    } else {
        *out = cJSON_Duplicate(v, false);
        return *out != NULL ? 0 : core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    if (copy == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    cJSON_ArrayForEach(c, v)
    {
        rc = resolve_value(r, step, c, &child, err);
        if (rc != 0) {
            cJSON_Delete(copy);
            return rc;
        }
        if (cJSON_IsObject(copy)) {
            cJSON_AddItemToObject(copy, c->string, child);
        } else {
            cJSON_AddItemToArray(copy, child);
        }
    }
    *out = copy;
    return 0;
}

int pipe_resolve_input(const struct pipe_resolve *r, size_t step, cJSON **out, struct core_err *err)
{
    *out = NULL;
    if (r == NULL || r->spec == NULL || step >= r->spec->n) {
        return core_err_set(err, CORE_EINTERNAL, NULL, "no such step to resolve");
    }
    return resolve_value(r, step, r->spec->steps[step].input, out, err);
}

int pipe_for_each_list(const struct pipe_resolve *r, size_t step, size_t max_items, cJSON **out,
                       struct core_err *err)
{
    const struct pipe_step *st;
    cJSON *v = NULL;
    int rc;

    *out = NULL;
    if (r == NULL || r->spec == NULL || step >= r->spec->n || !r->spec->steps[step].fan_out) {
        return core_err_set(err, CORE_EINTERNAL, "for_each", "the step has no for_each");
    }
    st = &r->spec->steps[step];
    rc = ref_value(r, &st->for_each, &v, err);
    if (rc != 0) {
        if (rc == CORE_EUNPROCESSABLE) {
            snprintf(err->param, sizeof(err->param), "for_each");
        }
        return rc;
    }
    if (!cJSON_IsArray(v)) {
        rc = core_err_set(err, CORE_EUNPROCESSABLE, "for_each",
                          "step \"%s\": for_each \"%s\" is %s, not an array", st->id,
                          st->for_each.text, json_type(v));
        cJSON_Delete(v);
        return rc;
    }
    if ((size_t)cJSON_GetArraySize(v) > max_items) {
        rc = core_err_set(err, CORE_EUNPROCESSABLE, "for_each",
                          "step \"%s\": for_each \"%s\" has %d items, at most %zu", st->id,
                          st->for_each.text, cJSON_GetArraySize(v), max_items);
        cJSON_Delete(v);
        return rc;
    }
    *out = v;
    return 0;
}
