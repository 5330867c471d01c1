/*
 * worker/artifact_fetch.h — what the worker lets a provider's artifact URL do.
 *
 * A finished media task names its artifacts' downloads (struct adapter_artifact): URLs a
 * provider's reply chose, and, for a download from the provider's own API (OpenAI's video
 * content), the provider's key in a header. Before the worker fetches one, artifact_fetch_vet
 * decides, once for every dialect:
 *   - the URL must be absolute http or https with a host, and carry no user name, password or
 *     login options: a URL's credentials would be sent as Basic auth, and nothing a provider
 *     names should make sluice authenticate anywhere;
 *   - the fetch's headers (the provider's key; adapters put nothing else on a fetch) go only to
 *     the provider's own origin, the scheme, host and port of its configured base_url; to any
 *     other origin the fetch goes without them (a pre-signed URL needs no key, and one that does
 *     answers 401, which fails the artifact visibly rather than handing the key to a stranger);
 *   - what is fetched is the URL as curl parsed it here, so the origin compared is the one
 *     connected to.
 * Where the URL may connect is the address guard's business (http_client_send_guarded_stream,
 * blobs.allow_hosts), checked on the address actually connected to; redirects are not followed.
 */
#ifndef SLUICE_WORKER_ARTIFACT_FETCH_H
#define SLUICE_WORKER_ARTIFACT_FETCH_H

#include <stdbool.h>
#include <stddef.h>

/* Longest artifact URL the worker fetches, in bytes. */
#define ARTIFACT_FETCH_MAX_URL 8192

/* What artifact_fetch_vet decided for one download. */
struct artifact_fetch_plan {
    char *url;         /* the URL to fetch, as curl normalized it; caller frees with free() */
    bool send_headers; /* the fetch's headers may go: url has the provider's origin */
};

/*
 * Vets url (borrowed), a download a provider named, against base_url (borrowed; the provider's
 * configured base URL; NULL or unparsable: no origin matches). Returns 0 with *plan filled, -1
 * with why (a sentence for the task's error, NUL-terminated, cut to why_size) when the URL is
 * refused, or -2 on out of memory (plan->url NULL either way).
 */
int artifact_fetch_vet(const char *url, const char *base_url, struct artifact_fetch_plan *plan,
                       char *why, size_t why_size);

#endif
