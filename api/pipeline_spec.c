/*
 * api/pipeline_spec.c — checking a pipeline's steps once (shape, references, dependencies,
 * cycles; see api/pipeline_spec.h), and the syntax of references, paths and splices that
 * resolving a step's input (api/pipeline_ref.c) reads them with (api/pipeline_internal.h).
 * Pure functions over cJSON.
 *
 * References are parsed by one function, pipe_ref_parse, both when the spec is checked and when
 * an input is resolved: the spec keeps no parsed copy of the references inside inputs, so the two
 * cannot disagree about what a reference means.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/pipeline_internal.h"
#include "api/pipeline_spec.h"

#define PARAM_MAX 512 /* a place in the spec while it is walked; err->param keeps its first 63 */
#define INDEX_DIGITS_MAX 9 /* an [i] in a reference: below 10^9, so it fits a long and an int */

/* The walk over one step's input while the spec is checked. */
struct scan {
    const struct pipe_spec *spec;
    size_t self;
    bool *dep; /* spec->n flags: the steps this one depends on */
    size_t n_refs;
    char param[PARAM_MAX];
    struct core_err *err;
};

static bool id_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '-';
}

/* True when s (len bytes) is a step id: 1 to PIPE_STEP_ID_MAX of [A-Za-z0-9_-]. */
static bool id_valid(const char *s, size_t len)
{
    if (len == 0 || len > PIPE_STEP_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!id_char(s[i])) {
            return false;
        }
    }
    return true;
}

/* The step whose id is name (len bytes), or -1. */
static int find_n(const struct pipe_spec *spec, const char *name, size_t len)
{
    for (size_t i = 0; i < spec->n; i++) {
        const char *id = spec->steps[i].id;
        if (id != NULL && strlen(id) == len && memcmp(id, name, len) == 0) {
            return (int)i;
        }
    }
    return -1;
}

int pipe_spec_find(const struct pipe_spec *spec, const char *id)
{
    return spec == NULL || id == NULL ? -1 : find_n(spec, id, strlen(id));
}

/* Reads "[<digits>]" at p into *value and sets *end past it. Returns 0, or -1 when p is not one. */
static int index_parse(const char *p, const char **end, long *value)
{
    long v = 0;
    size_t n = 0;

    if (*p != '[') {
        return -1;
    }
    for (p++; *p >= '0' && *p <= '9'; p++) {
        if (++n > INDEX_DIGITS_MAX) {
            return -1;
        }
        v = v * 10 + (*p - '0');
    }
    if (n == 0 || *p != ']') {
        return -1;
    }
    *end = p + 1;
    *value = v;
    return 0;
}

/*
 * Reads the path segment at *pp into s and moves *pp past it (and past a '.' after it). Returns 1,
 * 0 at the end of the path, or -1 with *why (static) when the path is malformed there. A name is
 * any run of characters other than '.' and '['; a '.' must be followed by a name.
 */
int pipe_seg_next(const char **pp, struct pipe_seg *s, const char **why)
{
    const char *p = *pp;

    if (*p == '\0') {
        return 0;
    }
    if (*p == '[') {
        if (index_parse(p, &p, &s->index) != 0) {
            *why = "an index is not [<digits>] (at most 9 digits)";
            return -1;
        }
        s->is_index = true;
    } else {
        size_t n = strcspn(p, ".[");
        if (n == 0) {
            *why = "a name is empty";
            return -1;
        }
        s->is_index = false;
        s->name = p;
        s->name_len = n;
        p += n;
    }
    s->end = p;
    if (*p == '.') {
        p++;
        if (*p == '\0' || *p == '.' || *p == '[') {
            *why = "a '.' is not followed by a name";
            return -1;
        }
    } else if (*p != '\0' && *p != '[') {
        *why = "an index is not followed by '.', '[' or the end";
        return -1;
    }
    *pp = p;
    return 1;
}

/* NULL when p is a path (names and [i] indexes, not empty), else why not (static). */
static const char *path_check(const char *p)
{
    struct pipe_seg s;
    const char *why = NULL;
    int rc;

    if (*p == '\0') {
        return "the path after the selector is empty";
    }
    while ((rc = pipe_seg_next(&p, &s, &why)) == 1) {
    }
    return rc < 0 ? why : NULL;
}

/* Reads the part of a selector after json/result/item ("", ".<p>" or "[i]…") into ref->path. */
static const char *rest_path(const char *rest, struct pipe_ref *ref)
{
    const char *p = rest;
    const char *why;

    if (*rest == '\0') {
        ref->path[0] = '\0';
        return NULL;
    }
    if (*rest == '.') {
        p = rest + 1;
    }
    why = path_check(p);
    if (why == NULL) {
        snprintf(ref->path, sizeof(ref->path), "%s", p);
    }
    return why;
}

/* True when s starts with word followed by the end, '.' or '['. */
static bool word_then_path(const char *s, const char *word)
{
    size_t n = strlen(word);
    return strncmp(s, word, n) == 0 && (s[n] == '\0' || s[n] == '.' || s[n] == '[');
}

/*
 * The syntax of a reference: fills ref (text, sel, path, index; step left -1) and the step name
 * it names (*name, *name_len; none for item and index). Returns NULL, or why it does not parse.
 */
static const char *ref_syntax(struct pipe_ref *ref, const char **name, size_t *name_len)
{
    const char *t = ref->text;
    const char *sel, *dot, *end;

    *name = NULL;
    *name_len = 0;
    if (strcmp(t, "index") == 0) {
        ref->sel = PIPE_SEL_INDEX;
        return NULL;
    }
    if (word_then_path(t, "item")) {
        ref->sel = PIPE_SEL_ITEM;
        return rest_path(t + 4, ref);
    }
    dot = strchr(t, '.');
    if (dot == NULL) {
        return "it is not <step>.<selector>, item, item.<path> or index";
    }
    if (!id_valid(t, (size_t)(dot - t))) {
        return "a step id is 1 to 64 of [A-Za-z0-9_-]";
    }
    *name = t;
    *name_len = (size_t)(dot - t);
    sel = dot + 1;
    if (strcmp(sel, "text") == 0) {
        ref->sel = PIPE_SEL_TEXT;
        return NULL;
    }
    if (word_then_path(sel, "json")) {
        ref->sel = PIPE_SEL_JSON;
        return rest_path(sel + 4, ref);
    }
    if (word_then_path(sel, "result")) {
        ref->sel = PIPE_SEL_RESULT;
        return rest_path(sel + 6, ref);
    }
    if (strcmp(sel, "artifacts") == 0) {
        ref->sel = PIPE_SEL_ARTIFACTS;
        return NULL;
    }
    if (strncmp(sel, "artifacts[", 10) == 0) {
        if (index_parse(sel + 9, &end, &ref->index) != 0 || *end != '\0') {
            return "an artifact is artifacts[<i>]";
        }
        ref->sel = PIPE_SEL_ARTIFACT;
        return NULL;
    }
    return "the selector is not text, json, json.<path>, result, result.<path>, artifacts or "
           "artifacts[<i>]";
}

/*
 * Parses reference s (len bytes, as written) found in step self at param, and checks that it can
 * run there: the step it names exists and is not self, item and index only in a for_each step,
 * no artifact spliced into a string (splice). Used both by the check and by resolution. Returns
 * 0, or sets err: CORE_EINVAL when it does not parse, CORE_EUNPROCESSABLE when it cannot run.
 */
int pipe_ref_parse(const struct pipe_spec *spec, size_t self, const char *s, size_t len,
                   bool splice, const char *param, struct pipe_ref *ref, struct core_err *err)
{
    const char *sid = spec->steps[self].id;
    const char *why, *name;
    size_t name_len;

    memset(ref, 0, sizeof(*ref));
    ref->step = -1;
    if (len == 0) {
        return core_err_set(err, CORE_EINVAL, param, "step \"%s\": a reference is empty", sid);
    }
    if (len >= PIPE_REF_MAX) {
        return core_err_set(err, CORE_EINVAL, param,
                            "step \"%s\": a reference is longer than %d bytes", sid,
                            PIPE_REF_MAX - 1);
    }
    memcpy(ref->text, s, len);
    ref->text[len] = '\0';
    if (strlen(ref->text) != len) {
        return core_err_set(err, CORE_EINVAL, param, "step \"%s\": a reference holds a NUL", sid);
    }
    why = ref_syntax(ref, &name, &name_len);
    if (why != NULL) {
        return core_err_set(err, CORE_EINVAL, param,
                            "step \"%s\": reference \"%s\" does not parse: %s", sid, ref->text,
                            why);
    }
    if (name == NULL) {
        if (!spec->steps[self].fan_out) {
            return core_err_set(err, CORE_EUNPROCESSABLE, param,
                                "step \"%s\": reference \"%s\": item and index exist only in a "
                                "step with for_each",
                                sid, ref->text);
        }
        return 0;
    }
    ref->step = find_n(spec, name, name_len);
    if (ref->step < 0) {
        return core_err_set(err, CORE_EUNPROCESSABLE, param,
                            "step \"%s\": reference \"%s\" names no step of this pipeline", sid,
                            ref->text);
    }
    if ((size_t)ref->step == self) {
        return core_err_set(err, CORE_EUNPROCESSABLE, param,
                            "step \"%s\": reference \"%s\" names the step itself", sid, ref->text);
    }
    if (splice && (ref->sel == PIPE_SEL_ARTIFACTS || ref->sel == PIPE_SEL_ARTIFACT)) {
        return core_err_set(err, CORE_EUNPROCESSABLE, param,
                            "step \"%s\": reference \"%s\": an artifact cannot be spliced into a "
                            "string; use {\"$ref\": \"%s\"} as the whole value",
                            sid, ref->text, ref->text);
    }
    return 0;
}

/* Appends printf-formatted text to param at len; returns the new length (kept below PARAM_MAX). */
static size_t param_add(char *param, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static size_t param_add(char *param, size_t len, const char *fmt, ...)
{
    va_list ap;
    int k;

    va_start(ap, fmt);
    k = vsnprintf(param + len, PARAM_MAX - len, fmt, ap);
    va_end(ap);
    if (k < 0) {
        param[len] = '\0';
        return len;
    }
    return len + (size_t)k >= PARAM_MAX ? PARAM_MAX - 1 : len + (size_t)k;
}

/* sc->param cut back to its first len bytes: the place being looked at. */
static const char *param_at(struct scan *sc, size_t len)
{
    sc->param[len] = '\0';
    return sc->param;
}

/* Counts and checks one reference of the input (s, len bytes, at param length plen). */
static int scan_ref(struct scan *sc, const char *s, size_t len, bool splice, size_t plen)
{
    struct pipe_ref ref;
    const char *param = param_at(sc, plen);
    int rc;

    if (++sc->n_refs > PIPE_REFS_MAX) {
        return core_err_set(sc->err, CORE_EINVAL, param,
                            "step \"%s\": more than %d references in its input",
                            sc->spec->steps[sc->self].id, PIPE_REFS_MAX);
    }
    rc = pipe_ref_parse(sc->spec, sc->self, s, len, splice, param, &ref, sc->err);
    if (rc == 0 && ref.step >= 0) {
        sc->dep[ref.step] = true;
    }
    return rc;
}

/* Whitespace around a splice's reference ("{{ a.text }}") is not part of it. */
static void trim(const char **s, size_t *len)
{
    while (*len > 0 && strchr(" \t\r\n", (*s)[0]) != NULL) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && strchr(" \t\r\n", (*s)[*len - 1]) != NULL) {
        (*len)--;
    }
}

/* Finds the next splice in s: *open at its "{{", *ref and *ref_len the trimmed reference, *next
 * past its "}}". Returns 1, 0 when there is none, -1 for a "{{" without "}}". */
int pipe_splice_next(const char *s, const char **open, const char **ref, size_t *ref_len,
                     const char **next)
{
    const char *o = strstr(s, "{{");
    const char *c;

    if (o == NULL) {
        return 0;
    }
    c = strstr(o + 2, "}}");
    if (c == NULL) {
        return -1;
    }
    *open = o;
    *ref = o + 2;
    *ref_len = (size_t)(c - (o + 2));
    trim(ref, ref_len);
    *next = c + 2;
    return 1;
}

/* Checks the references in v (at param length plen, nested depth deep) and marks their steps. */
static int scan_value(struct scan *sc, const cJSON *v, size_t plen, int depth)
{
    const cJSON *c;
    int rc = 0, i = 0;

    if (cJSON_IsString(v)) {
        const char *p = v->valuestring, *open, *ref, *next;
        size_t len;
        while ((rc = pipe_splice_next(p, &open, &ref, &len, &next)) == 1) {
            rc = scan_ref(sc, ref, len, true, plen);
            if (rc != 0) {
                return rc;
            }
            p = next;
        }
        if (rc < 0) {
            return core_err_set(sc->err, CORE_EINVAL, param_at(sc, plen),
                                "step \"%s\": a \"{{\" without \"}}\"",
                                sc->spec->steps[sc->self].id);
        }
        return 0;
    }
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) {
        return 0;
    }
    if (depth > PIPE_INPUT_DEPTH_MAX) {
        return core_err_set(sc->err, CORE_EINVAL, param_at(sc, plen),
                            "step \"%s\": the input is nested deeper than %d",
                            sc->spec->steps[sc->self].id, PIPE_INPUT_DEPTH_MAX);
    }
    if (cJSON_IsObject(v)) {
        c = cJSON_GetObjectItemCaseSensitive(v, "$ref");
        if (c != NULL) {
            if (!cJSON_IsString(c) || v->child->next != NULL) {
                return core_err_set(sc->err, CORE_EINVAL, param_at(sc, plen),
                                    "step \"%s\": a \"$ref\" object has exactly one member, "
                                    "\"$ref\", a string",
                                    sc->spec->steps[sc->self].id);
            }
            return scan_ref(sc, c->valuestring, strlen(c->valuestring), false, plen);
        }
    }
    cJSON_ArrayForEach(c, v)
    {
        size_t n = cJSON_IsObject(v) ? param_add(sc->param, plen, ".%s", c->string)
                                     : param_add(sc->param, plen, "[%d]", i);
        rc = scan_value(sc, c, n, depth + 1);
        if (rc != 0) {
            return rc;
        }
        i++;
    }
    return 0;
}

/* Checks the shape of step i (s): an object with an id, a kind, an input object, and `after` and
 * `for_each` of the right types. Fills id, kind, input and fan_out. */
static int step_shape(struct pipe_spec *spec, size_t i, const cJSON *s, struct core_err *err)
{
    struct pipe_step *st = &spec->steps[i];
    char param[PARAM_MAX];
    const cJSON *id, *kind, *input, *after, *fe, *a;
    int k, j = 0;

    if (!cJSON_IsObject(s)) {
        snprintf(param, sizeof(param), "steps[%zu]", i);
        return core_err_set(err, CORE_EINVAL, param, "steps[%zu] is not an object", i);
    }
    /* every member is honoured or refused: a misspelled one (foreach) must not pass unseen */
    cJSON_ArrayForEach(a, s)
    {
        static const char *const known[] = {"id", "kind", "input", "after", "for_each"};
        bool ok = false;
        for (size_t m = 0; m < sizeof(known) / sizeof(known[0]); m++) {
            ok = ok || strcmp(a->string, known[m]) == 0;
        }
        if (!ok) {
            snprintf(param, sizeof(param), "steps[%zu].%.64s", i, a->string);
            return core_err_set(err, CORE_EINVAL, param,
                                "Unknown field '%.64s' of steps[%zu]: a step has id, kind, input, "
                                "after and for_each",
                                a->string, i);
        }
    }
    id = cJSON_GetObjectItemCaseSensitive(s, "id");
    snprintf(param, sizeof(param), "steps[%zu].id", i);
    if (!cJSON_IsString(id) || !id_valid(id->valuestring, strlen(id->valuestring))) {
        return core_err_set(err, CORE_EINVAL, param,
                            "steps[%zu].id must be 1 to %d of [A-Za-z0-9_-]", i, PIPE_STEP_ID_MAX);
    }
    if (strcmp(id->valuestring, "item") == 0 || strcmp(id->valuestring, "index") == 0) {
        return core_err_set(err, CORE_EINVAL, param,
                            "steps[%zu].id \"%s\" is reserved: references use it for a for_each "
                            "element",
                            i, id->valuestring);
    }
    if (find_n(spec, id->valuestring, strlen(id->valuestring)) >= 0) {
        return core_err_set(err, CORE_EINVAL, param, "steps[%zu].id \"%s\" is used twice", i,
                            id->valuestring);
    }
    st->id = id->valuestring;

    kind = cJSON_GetObjectItemCaseSensitive(s, "kind");
    k = cJSON_IsString(kind) ? task_kind_parse(kind->valuestring) : -1;
    if (k < 0) {
        snprintf(param, sizeof(param), "steps[%zu].kind", i);
        return core_err_set(err, CORE_EINVAL, param,
                            "step \"%s\": kind must be chat, embedding, image, video or response",
                            st->id);
    }
    st->kind = (enum task_kind)k;

    input = cJSON_GetObjectItemCaseSensitive(s, "input");
    if (!cJSON_IsObject(input)) {
        snprintf(param, sizeof(param), "steps[%zu].input", i);
        return core_err_set(err, CORE_EINVAL, param, "step \"%s\": input must be an object",
                            st->id);
    }
    st->input = input;

    after = cJSON_GetObjectItemCaseSensitive(s, "after");
    if (after != NULL && !cJSON_IsArray(after)) {
        snprintf(param, sizeof(param), "steps[%zu].after", i);
        return core_err_set(err, CORE_EINVAL, param,
                            "step \"%s\": after must be an array of step ids", st->id);
    }
    cJSON_ArrayForEach(a, after)
    {
        if (!cJSON_IsString(a)) {
            snprintf(param, sizeof(param), "steps[%zu].after[%d]", i, j);
            return core_err_set(err, CORE_EINVAL, param,
                                "step \"%s\": after must be an array of step ids", st->id);
        }
        j++;
    }

    fe = cJSON_GetObjectItemCaseSensitive(s, "for_each");
    if (fe != NULL && !cJSON_IsString(fe)) {
        snprintf(param, sizeof(param), "steps[%zu].for_each", i);
        return core_err_set(err, CORE_EINVAL, param,
                            "step \"%s\": for_each must be a reference \"<step>.<selector>\"",
                            st->id);
    }
    st->fan_out = fe != NULL;
    return 0;
}

/*
 * The dependencies of step i (s, whose shape step_shape checked): its `after`, its for_each and
 * the references in its input, unique and ascending in st->after. dep is spec->n flags of scratch.
 */
static int step_deps(struct pipe_spec *spec, size_t i, const cJSON *s, bool *dep,
                     struct core_err *err)
{
    struct pipe_step *st = &spec->steps[i];
    struct scan sc = {.spec = spec, .self = i, .dep = dep, .err = err};
    char param[PARAM_MAX];
    const cJSON *a, *fe;
    size_t plen, n = 0;
    int rc, j = 0;

    memset(dep, 0, spec->n * sizeof(*dep));
    cJSON_ArrayForEach(a, cJSON_GetObjectItemCaseSensitive(s, "after"))
    {
        int k = find_n(spec, a->valuestring, strlen(a->valuestring));
        snprintf(param, sizeof(param), "steps[%zu].after[%d]", i, j);
        if (k < 0) {
            return core_err_set(err, CORE_EUNPROCESSABLE, param,
                                "step \"%s\": after names \"%.64s\", no step of this pipeline",
                                st->id, a->valuestring);
        }
        if ((size_t)k == i) {
            return core_err_set(err, CORE_EUNPROCESSABLE, param,
                                "step \"%s\": after names the step itself", st->id);
        }
        dep[k] = true;
        j++;
    }

    fe = cJSON_GetObjectItemCaseSensitive(s, "for_each");
    if (fe != NULL) {
        snprintf(param, sizeof(param), "steps[%zu].for_each", i);
        rc = pipe_ref_parse(spec, i, fe->valuestring, strlen(fe->valuestring), false, param,
                            &st->for_each, err);
        if (rc != 0) {
            return rc;
        }
        if (st->for_each.step < 0) {
            return core_err_set(err, CORE_EUNPROCESSABLE, param,
                                "step \"%s\": for_each \"%s\" must name a list of another step, "
                                "not item or index",
                                st->id, st->for_each.text);
        }
        dep[st->for_each.step] = true;
    }

    plen = param_add(sc.param, 0, "steps[%zu].input", i);
    rc = scan_value(&sc, st->input, plen, 1);
    if (rc != 0) {
        return rc;
    }

    for (size_t k = 0; k < spec->n; k++) {
        n += dep[k] ? 1 : 0;
    }
    if (n > 0) {
        st->after = malloc(n * sizeof(*st->after));
        if (st->after == NULL) {
            return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        }
        for (size_t k = 0; k < spec->n; k++) {
            if (dep[k]) {
                st->after[st->n_after++] = (int)k;
            }
        }
    }
    return 0;
}

/*
 * Refuses a spec whose steps wait for each other in a cycle (422), naming the cycle. Steps are
 * settled while some unsettled step has all its dependencies settled; what stays unsettled holds
 * a cycle, found by following unsettled dependencies until a step repeats. Iterative: the number
 * of steps bounds every loop.
 */
static int cycle_check(const struct pipe_spec *spec, bool *done, struct core_err *err)
{
    size_t n = spec->n, x, len = 0, first;
    size_t *path = NULL;
    bool progress = true;
    char msg[sizeof(err->message)];
    char param[32];
    int rc = 0;

    memset(done, 0, n * sizeof(*done));
    while (progress) {
        progress = false;
        for (size_t i = 0; i < n; i++) {
            bool ready = !done[i];
            for (size_t k = 0; ready && k < spec->steps[i].n_after; k++) {
                ready = done[spec->steps[i].after[k]];
            }
            if (ready) {
                done[i] = true;
                progress = true;
            }
        }
    }
    for (x = 0; x < n && done[x]; x++) {
    }
    if (x == n) {
        return 0;
    }
    path = malloc((n + 1) * sizeof(*path));
    if (path == NULL) {
        return core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
    }
    /* every unsettled step waits for some unsettled step; at most n steps until one repeats */
    for (;;) {
        size_t k;
        for (first = 0; first < len && path[first] != x; first++) {
        }
        path[len++] = x;
        if (first < len - 1 || len > n) {
            break;
        }
        for (k = 0; k < spec->steps[x].n_after && done[spec->steps[x].after[k]]; k++) {
        }
        if (k == spec->steps[x].n_after) {
            break; /* cannot happen: x would have been settled */
        }
        x = (size_t)spec->steps[x].after[k];
    }
    msg[0] = '\0';
    for (size_t k = first; k < len; k++) {
        size_t used = strlen(msg);
        snprintf(msg + used, sizeof(msg) - used, "%s%s", k > first ? " -> " : "",
                 spec->steps[path[k]].id);
    }
    snprintf(param, sizeof(param), "steps[%zu]", path[first]);
    rc = core_err_set(err, CORE_EUNPROCESSABLE, param,
                      "steps wait for each other in a cycle (each waits for the next): %s", msg);
    free(path);
    return rc;
}

int pipe_spec_parse(const cJSON *steps, size_t max_steps, struct pipe_spec *out,
                    struct core_err *err)
{
    const cJSON *s;
    bool *flags = NULL;
    size_t n, i;
    int rc = 0;

    out->steps = NULL;
    out->n = 0;
    if (!cJSON_IsArray(steps)) {
        return core_err_set(err, CORE_EINVAL, "steps", "steps must be an array of steps");
    }
    n = (size_t)cJSON_GetArraySize(steps);
    if (n == 0) {
        return core_err_set(err, CORE_EINVAL, "steps", "steps must not be empty");
    }
    if (n > max_steps) {
        return core_err_set(err, CORE_EINVAL, "steps", "steps has %zu steps, at most %zu", n,
                            max_steps);
    }
    out->steps = calloc(n, sizeof(*out->steps));
    flags = calloc(n, sizeof(*flags));
    if (out->steps == NULL || flags == NULL) {
        rc = core_err_set(err, CORE_ENOMEM, NULL, "out of memory");
        goto out;
    }
    out->n = n;
    i = 0;
    cJSON_ArrayForEach(s, steps)
    {
        rc = step_shape(out, i++, s, err);
        if (rc != 0) {
            goto out;
        }
    }
    i = 0;
    cJSON_ArrayForEach(s, steps)
    {
        rc = step_deps(out, i++, s, flags, err);
        if (rc != 0) {
            goto out;
        }
    }
    rc = cycle_check(out, flags, err);
    if (rc != 0) {
        goto out;
    }
    memset(flags, 0, n * sizeof(*flags));
    for (i = 0; i < n; i++) {
        for (size_t k = 0; k < out->steps[i].n_after; k++) {
            flags[out->steps[i].after[k]] = true;
        }
    }
    for (i = 0; i < n; i++) {
        out->steps[i].final = !flags[i];
    }
out:
    free(flags);
    return rc;
}

void pipe_spec_free(struct pipe_spec *spec)
{
    if (spec == NULL) {
        return;
    }
    for (size_t i = 0; spec->steps != NULL && i < spec->n; i++) {
        free(spec->steps[i].after);
    }
    free(spec->steps);
    spec->steps = NULL;
    spec->n = 0;
}
