/*
 * tests/mock/jobs.c — the store of upstream jobs: OpenAI videos, Replicate predictions and fal
 * requests, in one chained hash table keyed by id.
 *
 * A job holds no timer. Its state is computed from elapsed monotonic time whenever it is read:
 * queued for the first 10% of its duration, running (progress = elapsed / duration) until the
 * end, then completed or failed. One timer sweeps jobs 10 minutes after they ended, so 10,000+
 * concurrent jobs cost a few hundred bytes each and nothing per tick.
 */
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "tests/mock/mock.h"

#define JOBS_BUCKETS_MIN 1024
#define JOBS_QUEUED_FRACTION 0.1
#define JOBS_QUEUE_START 3 /* fal's queue_position counts down from this while queued */
#define JOBS_SWEEP_MS 5000

static size_t bucket_of(const struct job_store *s, const char *id, size_t n)
{
    return (size_t)(mock_hash(id, n) & (s->n_buckets - 1));
}

static void job_free(struct job *j)
{
    free(j->model);
    free(j->version);
    free(j->prompt);
    free(j->input);
    free(j);
}

static int64_t job_end_mono(const struct job *j)
{
    return j->canceled_mono_ms >= 0 ? j->canceled_mono_ms : j->created_mono_ms + j->duration_ms;
}

/* Drops every job that ended more than MOCK_JOB_KEEP_MS ago. */
static void jobs_sweep(evutil_socket_t fd, short what, void *arg)
{
    struct mock *m = arg;
    struct job_store *s = &m->jobs;
    int64_t now = mock_monotonic_ms();
    (void)fd;
    (void)what;
    for (size_t i = 0; i < s->n_buckets; i++) {
        struct job **link = &s->buckets[i];
        while (*link != NULL) {
            struct job *j = *link;
            if (now - job_end_mono(j) > MOCK_JOB_KEEP_MS) {
                *link = j->next;
                job_free(j);
                s->count--;
            } else {
                link = &j->next;
            }
        }
    }
}

int jobs_init(struct mock *m)
{
    struct job_store *s = &m->jobs;
    struct timeval every = {JOBS_SWEEP_MS / 1000, 0};
    s->n_buckets = JOBS_BUCKETS_MIN;
    s->buckets = calloc(s->n_buckets, sizeof(*s->buckets));
    s->sweep = event_new(m->base, -1, EV_PERSIST, jobs_sweep, m);
    if (s->buckets == NULL || s->sweep == NULL || event_add(s->sweep, &every) < 0) {
        return -1;
    }
    return 0;
}

static void jobs_clear(struct mock *m)
{
    struct job_store *s = &m->jobs;
    for (size_t i = 0; s->buckets != NULL && i < s->n_buckets; i++) {
        while (s->buckets[i] != NULL) {
            struct job *j = s->buckets[i];
            s->buckets[i] = j->next;
            job_free(j);
        }
    }
    s->count = 0;
}

void jobs_cleanup(struct mock *m)
{
    jobs_clear(m);
    free(m->jobs.buckets);
    m->jobs.buckets = NULL;
    if (m->jobs.sweep != NULL) {
        event_free(m->jobs.sweep);
        m->jobs.sweep = NULL;
    }
}

/* Doubles the table when it is as full as it has buckets; on OOM it just stays denser. */
static void jobs_grow(struct job_store *s)
{
    size_t n = s->n_buckets * 2;
    struct job **buckets = calloc(n, sizeof(*buckets));
    if (buckets == NULL) {
        return;
    }
    struct job_store next = {.buckets = buckets, .n_buckets = n};
    for (size_t i = 0; i < s->n_buckets; i++) {
        while (s->buckets[i] != NULL) {
            struct job *j = s->buckets[i];
            s->buckets[i] = j->next;
            size_t b = bucket_of(&next, j->id, strlen(j->id));
            j->next = buckets[b];
            buckets[b] = j;
        }
    }
    free(s->buckets);
    s->buckets = buckets;
    s->n_buckets = n;
}

/*
 * Ids look like each provider's: OpenAI "video_" + 32 hex, Replicate 26 characters of lowercase
 * base32, fal a UUID. Each carries all 64 bits of mix64(counter), a bijection, so ids never repeat
 * within a run (the counter survives /_mock/reset).
 */
static void job_make_id(struct job *j, unsigned long long counter)
{
    static const char base32[] = "0123456789abcdefghjkmnpqrstvwxyz";
    uint64_t r = mock_mix64(counter), r2 = mock_mix64(r);
    switch (j->kind) {
    case JOB_VIDEO:
        snprintf(j->id, sizeof(j->id), "video_%016llx%016llx", (unsigned long long)r,
                 (unsigned long long)r2);
        break;
    case JOB_REPLICATE:
        for (int i = 0; i < 13; i++) {
            j->id[i] = base32[(r >> (5 * i)) & 31];
            j->id[13 + i] = base32[(r2 >> (5 * i)) & 31];
        }
        j->id[26] = '\0';
        break;
    case JOB_FAL:
        snprintf(j->id, sizeof(j->id), "%08x-%04x-4%03x-%04x-%04x%08x", (unsigned)(r >> 32),
                 (unsigned)((r >> 16) & 0xffff), (unsigned)(r2 & 0xfff),
                 (unsigned)(0x8000 | ((r2 >> 12) & 0x3fff)), (unsigned)(r & 0xffff),
                 (unsigned)(r2 >> 32));
        break;
    }
}

struct job *jobs_add(struct mock *m, enum job_kind kind, const char *model)
{
    struct job_store *s = &m->jobs;
    if (s->count >= MOCK_JOBS_MAX) {
        return NULL;
    }
    struct job *j = calloc(1, sizeof(*j));
    if (j == NULL || jobs_set(&j->model, model, 256) < 0) {
        free(j);
        return NULL;
    }
    if (s->count >= s->n_buckets) {
        jobs_grow(s);
    }
    j->kind = kind;
    j->n = 1;
    j->created_wall_ms = mock_wall_ms();
    j->created_mono_ms = mock_monotonic_ms();
    j->canceled_mono_ms = -1;
    j->duration_ms = m->config.job_ms;
    job_make_id(j, ++s->next_id);
    size_t b = bucket_of(s, j->id, strlen(j->id));
    j->next = s->buckets[b];
    s->buckets[b] = j;
    s->count++;
    return j;
}

struct job *jobs_find(struct mock *m, enum job_kind kind, const char *id, size_t id_len)
{
    struct job_store *s = &m->jobs;
    for (struct job *j = s->buckets[bucket_of(s, id, id_len)]; j != NULL; j = j->next) {
        if (j->kind == kind && strlen(j->id) == id_len && memcmp(j->id, id, id_len) == 0) {
            return j;
        }
    }
    return NULL;
}

void jobs_remove(struct mock *m, struct job *j)
{
    struct job_store *s = &m->jobs;
    struct job **link = &s->buckets[bucket_of(s, j->id, strlen(j->id))];
    while (*link != NULL && *link != j) {
        link = &(*link)->next;
    }
    if (*link == j) {
        *link = j->next;
        job_free(j);
        s->count--;
    }
}

void jobs_view(const struct job *j, int64_t mono_ms, struct job_view *v)
{
    int64_t elapsed = mono_ms - j->created_mono_ms;
    double f = j->duration_ms > 0 ? (double)elapsed / (double)j->duration_ms : 1.0;
    int64_t start_ms = (int64_t)((double)j->duration_ms * JOBS_QUEUED_FRACTION);
    *v = (struct job_view){.started_wall_ms = -1, .ended_wall_ms = -1};
    if (j->canceled_mono_ms >= 0 && mono_ms >= j->canceled_mono_ms) {
        int64_t at = j->canceled_mono_ms - j->created_mono_ms;
        v->phase = PHASE_CANCELED;
        v->progress = j->duration_ms > 0 ? (int)(100 * at / j->duration_ms) : 100;
        v->progress = v->progress > 99 ? 99 : v->progress;
        v->started_wall_ms = at >= start_ms ? j->created_wall_ms + start_ms : -1;
        v->ended_wall_ms = j->created_wall_ms + at;
        return;
    }
    if (f >= 1.0) {
        v->phase = j->fail ? PHASE_FAILED : PHASE_DONE;
        v->progress = 100;
        v->started_wall_ms = j->created_wall_ms + start_ms;
        v->ended_wall_ms = j->created_wall_ms + j->duration_ms;
    } else if (f < JOBS_QUEUED_FRACTION) {
        v->phase = PHASE_QUEUED;
        v->queue_position =
            (int)((JOBS_QUEUED_FRACTION - f) / JOBS_QUEUED_FRACTION * JOBS_QUEUE_START);
        v->queue_position =
            v->queue_position >= JOBS_QUEUE_START ? JOBS_QUEUE_START - 1 : v->queue_position;
    } else {
        v->phase = PHASE_RUNNING;
        v->progress = (int)(f * 100);
        v->started_wall_ms = j->created_wall_ms + start_ms;
    }
}

int jobs_set(char **field, const char *s, size_t max)
{
    free(*field);
    *field = NULL;
    if (s == NULL) {
        return 0;
    }
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80) {
            n--;
        }
    }
    if ((*field = malloc(n + 1)) == NULL) {
        return -1;
    }
    memcpy(*field, s, n);
    (*field)[n] = '\0';
    return 0;
}

bool jobs_prompt_fails(const char *s)
{
    return s != NULL && strstr(s, "mock:fail") != NULL;
}
