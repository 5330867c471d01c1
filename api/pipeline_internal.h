/*
 * api/pipeline_internal.h — internal to api/pipeline_spec.c and api/pipeline_ref.c; nothing else
 * includes it (api/pipeline_spec.h is the contract). The syntax both read a reference, a path and
 * a splice with: checking a spec (api/pipeline_spec.c, which defines these) and resolving a step's
 * input (api/pipeline_ref.c) share one reader each, so they cannot disagree about what a
 * reference means.
 */
#ifndef SLUICE_API_PIPELINE_INTERNAL_H
#define SLUICE_API_PIPELINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "api/pipeline_spec.h"
#include "core/err.h"

/* One segment of a path: a name or an [i] index. */
struct pipe_seg {
    bool is_index;
    long index;
    const char *name; /* not NUL-terminated: name_len bytes */
    size_t name_len;
    const char *end; /* just past the segment (before a following '.') */
};

/*
 * Reads the path segment at *pp into s and moves *pp past it (and past a '.' after it). Returns 1,
 * 0 at the end of the path, or -1 with *why (static) when the path is malformed there. s and *why
 * point into *pp's string (borrowed).
 */
int pipe_seg_next(const char **pp, struct pipe_seg *s, const char **why);

/*
 * Finds the next splice in s: *open at its "{{", *ref and *ref_len the trimmed reference, *next
 * past its "}}" (all pointing into s). Returns 1, 0 when there is none, -1 for a "{{" without
 * "}}".
 */
int pipe_splice_next(const char *s, const char **open, const char **ref, size_t *ref_len,
                     const char **next);

/*
 * Parses reference s (len bytes, as written; borrowed) found in step self of spec at param, into
 * ref, and checks that it can run there: the step it names exists and is not self, item and index
 * only in a for_each step, no artifact spliced into a string (splice). Returns 0, or sets err:
 * CORE_EINVAL when it does not parse, CORE_EUNPROCESSABLE when it cannot run.
 */
int pipe_ref_parse(const struct pipe_spec *spec, size_t self, const char *s, size_t len,
                   bool splice, const char *param, struct pipe_ref *ref, struct core_err *err);

#endif
