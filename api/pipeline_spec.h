/*
 * api/pipeline_spec.h — a pipeline's steps as a client writes them, checked and understood once,
 * and a step's input with its references to earlier steps' outputs replaced. Pure functions over
 * cJSON: no I/O, no Redis, no event loop (the api's POST /v1/pipelines checks a spec with them,
 * the pipeline runner resolves each step's input with them when the step starts).
 * api/pipeline_spec.c checks a spec (pipe_spec_parse, pipe_spec_find, pipe_spec_free);
 * api/pipeline_ref.c resolves references (pipe_for_each_list, pipe_resolve_input, pipe_task_text).
 *
 * A step is {id, kind, input, after?, for_each?}: `kind` and `input` are a task's (POST
 * /v1/tasks); `after` names steps it waits for; `for_each` ("<step>.<selector>") makes one task
 * per element of a list. Inside `input`:
 *   - a JSON object whose only member is "$ref" (a string "<step>.<selector>") is replaced by the
 *     selected value;
 *   - "{{<step>.<selector>}}" inside a string is replaced by the selected value's text (a string
 *     as it is, any other value as compact JSON); an artifact may not be spliced into a string.
 * Selectors (after "<step>."):
 *   text              the step's message text (a chat completion's choices[0].message.content, a
 *                     response's output_text parts joined)
 *   json / json.<p>   that text parsed as JSON (a structured-output step), then path p
 *   artifacts         every artifact the step produced (a list of artifact tokens)
 *   artifacts[<i>]    artifact i (an artifact token)
 *   result / result.<p>  the step's normalized result as stored, then path p
 * and, inside a for_each step only, without a step name: `item`, `item.<p>` (the current
 * element), `index` (its position, from 0).
 * A path p is names and [i] indexes: `prompts[2]`, `choices[0].message.content`, `[0]`.
 * Of a for_each step (a fan-out), a selector gives the list of its tasks' values in order
 * (`text` a list of texts, `json.p` a list of values, `result.p` a list), except `artifacts`,
 * which is every task's artifacts one after another, and `artifacts[i]`, which indexes that list.
 * A step depends on the steps it names in `after`, in references and in `for_each`.
 */
#ifndef SLUICE_API_PIPELINE_SPEC_H
#define SLUICE_API_PIPELINE_SPEC_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "core/err.h"
#include "core/task.h"

#define PIPE_STEP_ID_MAX 64 /* a step id: 1 to 64 of [A-Za-z0-9_-] */
#define PIPE_REF_MAX 256    /* the text of one reference ("<step>.<selector>") */
#define PIPE_REFS_MAX 256   /* references in one step's input */
/* a text a reference splices into a string, and a string's size after */
#define PIPE_TEXT_MAX (1 << 20)
/* objects and arrays nested in a step's input, the input included */
#define PIPE_INPUT_DEPTH_MAX 64

/* What a reference selects. */
enum pipe_sel {
    PIPE_SEL_TEXT,
    PIPE_SEL_JSON,      /* path: after "json." ("" the whole value) */
    PIPE_SEL_ARTIFACTS, /* every artifact */
    PIPE_SEL_ARTIFACT,  /* artifact `index` */
    PIPE_SEL_RESULT,    /* path: after "result." ("" the whole result) */
    PIPE_SEL_ITEM,      /* the for_each element; path: after "item." ("" the element) */
    PIPE_SEL_INDEX      /* the for_each element's position */
};

/* One parsed reference. */
struct pipe_ref {
    int step; /* the step it names (index into pipe_spec.steps); -1 for item and index */
    enum pipe_sel sel;
    long index;              /* PIPE_SEL_ARTIFACT */
    char path[PIPE_REF_MAX]; /* PIPE_SEL_JSON, PIPE_SEL_RESULT, PIPE_SEL_ITEM; "" none */
    char text[PIPE_REF_MAX]; /* the reference as written, for error messages */
};

struct pipe_step {
    const char *id; /* borrowed from the spec's JSON */
    enum task_kind kind;
    const cJSON *input; /* borrowed: the step's input as written, references and all */
    int *after; /* every step it depends on (after, references, for_each): unique, ascending */
    size_t n_after;
    bool fan_out; /* it has for_each */
    struct pipe_ref for_each;
    bool final; /* no other step depends on it: its output is the pipeline's output */
};

/* A checked spec. steps borrow from the cJSON array given to pipe_spec_parse. */
struct pipe_spec {
    struct pipe_step *steps;
    size_t n;
};

/*
 * Checks steps (a JSON array as the client sent it; borrowed, must outlive out) and fills out
 * (caller frees with pipe_spec_free, also after a failure). At most max_steps steps. Returns 0,
 * or sets err and returns:
 *   CORE_EINVAL (400) for a malformed spec: not an array, empty, too many steps, a step that is
 *     not an object, a missing or bad id, a duplicate id, an unknown kind, an input that is not an
 *     object, `after` not an array of strings, `for_each` not a string, a "$ref" object with other
 *     members or a non-string value, a "{{" without "}}", a reference that does not parse;
 *   CORE_EUNPROCESSABLE (422) for a spec that parses but cannot run: a reference or `after` naming
 *     an unknown step or the step itself, `item`/`index` outside a for_each step, an artifact
 *     spliced into a string, a cycle.
 * err's param names the place: "steps[2].input.messages[0].content", "steps[1].after[0]",
 * "steps[3].for_each"; its message names the step and the reference.
 */
int pipe_spec_parse(const cJSON *steps, size_t max_steps, struct pipe_spec *out,
                    struct core_err *err);

void pipe_spec_free(struct pipe_spec *spec);

/* The index of step id in spec, or -1. */
int pipe_spec_find(const struct pipe_spec *spec, const char *id);

/* One finished task of a step, as its output is read back. Borrowed. */
struct pipe_task_out {
    const char *task_id;
    enum task_kind kind;
    const cJSON *result;    /* its stored result (NULL: none) */
    const cJSON *artifacts; /* its stored artifact list [{index, content_type, bytes}], or NULL */
};

/* A step's outputs: its tasks in order (one unless it is a fan-out). Borrowed. */
struct pipe_step_out {
    const struct pipe_task_out *tasks;
    size_t n;
    bool fan_out;
};

/*
 * Hands artifact (an item of src's artifact list) to the task being made: returns the token that
 * stands for it in that task's input (malloc'd, caller frees), or NULL with err set.
 */
typedef char *(*pipe_artifact_fn)(void *ctx, const struct pipe_task_out *src, const cJSON *artifact,
                                  struct core_err *err);

/* What resolving one task's input needs. Borrowed. */
struct pipe_resolve {
    const struct pipe_spec *spec;
    const struct pipe_step_out
        *outs;         /* indexed like spec->steps; at least the step's dependencies */
    const cJSON *item; /* the for_each element, NULL outside a fan-out */
    long index;        /* its position */
    pipe_artifact_fn artifact;
    void *artifact_ctx;
};

/*
 * The list step's for_each selects (a new array, caller frees: cJSON_Delete), at most max_items
 * long. Returns 0, or sets err and returns CORE_EUNPROCESSABLE when the reference does not
 * resolve, the value is not an array, or it is longer than max_items (the message says which and
 * names the reference; param "for_each").
 */
int pipe_for_each_list(const struct pipe_resolve *r, size_t step, size_t max_items, cJSON **out,
                       struct core_err *err);

/*
 * Step's input with every reference replaced (a new tree, caller frees), for one task: r->item
 * and r->index are that task's element in a fan-out. Returns 0, or sets err and returns
 * CORE_EUNPROCESSABLE when a reference does not resolve (a missing path, text that is not JSON, an
 * index past the end, a step without text, a splice past PIPE_TEXT_MAX; param is the reference as
 * written, the message says what went wrong), or CORE_ENOMEM.
 */
int pipe_resolve_input(const struct pipe_resolve *r, size_t step, cJSON **out,
                       struct core_err *err);

/*
 * The message text of a finished task's result: a chat completion's choices[0].message.content
 * (a string), a response's output_text parts joined (object "response"). Borrowed from result, or
 * NULL when it has none (malloc'd into *owned when parts had to be joined; caller frees *owned).
 */
const char *pipe_task_text(const struct pipe_task_out *t, char **owned);

#endif
