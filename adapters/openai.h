/*
 * adapters/openai.h — internal to the openai dialect, whose hooks are split by concept: openai.c
 * (the vtable, the requests and replies of every kind, errors, streams) and openai_embedding.c
 * (embedding vectors in the encoding the client asked for).
 */
#ifndef SLUICE_ADAPTER_OPENAI_H
#define SLUICE_ADAPTER_OPENAI_H

#include <cJSON.h>

#include "adapters/adapter.h"
#include "core/err.h"

/*
 * How embedding vectors travel: the client's encoding_format, absent = float. base64 is the bytes
 * of little-endian float32 values.
 */
enum openai_encoding { OPENAI_ENC_FLOAT = 0, OPENAI_ENC_BASE64 };

/*
 * The encoding a client's embedding request (input, borrowed) asks for: absent or null = float.
 * Returns 0, or CORE_EINVAL naming encoding_format for a value sluice cannot re-encode into.
 */
int openai_encoding_of(const cJSON *input, enum openai_encoding *out, struct core_err *err);

/*
 * Puts every vector of an embeddings reply's data array (changed in place) in encoding enc,
 * whatever the provider answered with — an OpenAI-compatible server may ignore encoding_format,
 * and the official SDKs ask for base64 and decode whatever comes back. A vector already in enc
 * is kept as sent (floats keep their digits) once it has been read: an array of numbers that each
 * fit a float32, or base64 of a whole number of float32s. Floats made from base64 are written as
 * the shortest decimals that read back as the same float32, as OpenAI writes them. Returns 0,
 * a malformed-reply error (adapter_malformed_body, with resp's status) for any other vector, or
 * CORE_ENOMEM.
 */
int openai_embeddings_encode(cJSON *data, enum openai_encoding enc,
                             const struct adapter_response *resp, struct core_err *err);

#endif
