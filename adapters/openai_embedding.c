/*
 * adapters/openai_embedding.c — embedding vectors in the encoding the client asked for, whatever
 * an OpenAI-compatible provider answered with (see openai.h).
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "adapters/dialect.h"
#include "adapters/openai.h"

/* encoding_format values, as the client writes them. */
static const struct {
    const char *name;
    enum openai_encoding enc;
} openai_encodings[] = {
    {"float", OPENAI_ENC_FLOAT},
    {"base64", OPENAI_ENC_BASE64},
};

int openai_encoding_of(const cJSON *input, enum openai_encoding *out, struct core_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(input, "encoding_format");

    *out = OPENAI_ENC_FLOAT;
    if (v == NULL || cJSON_IsNull(v)) {
        return 0;
    }
    for (size_t i = 0; cJSON_IsString(v) && i < ARRAY_LEN(openai_encodings); i++) {
        if (strcmp(v->valuestring, openai_encodings[i].name) == 0) {
            *out = openai_encodings[i].enc;
            return 0;
        }
    }
    return core_err_set(err, CORE_EINVAL, "encoding_format",
                        "encoding_format must be \"float\" or \"base64\"");
}

/*
 * A float32 as the shortest decimal that reads back as the same float32 ("0.61417198", not
 * "0.61417198181152344"), the way OpenAI writes float embeddings; as a double for cJSON, which
 * prints it back with those digits.
 */
static double openai_float_decimal(float f)
{
    char buf[32];

    for (int digits = 6; digits < 9; digits++) {
        snprintf(buf, sizeof(buf), "%.*g", digits, (double)f);
        if (strtof(buf, NULL) == f) {
            return strtod(buf, NULL);
        }
    }
    snprintf(buf, sizeof(buf), "%.9g", (double)f);
    return strtod(buf, NULL);
}

/*
 * A vector's float32 values, from either encoding a provider may answer with: an array of numbers
 * (each must fit a float32), or base64 of little-endian float32s (a whole number of them). On
 * success *out (caller frees) holds *n >= 1 values. Returns 0, CORE_ENOMEM, or CORE_EUPSTREAM
 * with *why saying what is wrong with the vector.
 */
static int openai_vector_read(const cJSON *v, float **out, size_t *n, const char **why)
{
    size_t len = cJSON_IsString(v) ? strlen(v->valuestring) : 0;
    unsigned char *raw = NULL;
    float *f = NULL;
    size_t count = 0, i = 0;
    const cJSON *x;
    int decoded;
    int rc = CORE_EUPSTREAM;

    *out = NULL;
    *n = 0;
    if (cJSON_IsArray(v)) {
        count = (size_t)cJSON_GetArraySize(v);
        f = count > 0 ? malloc(count * sizeof(*f)) : NULL;
        cJSON_ArrayForEach(x, v)
        {
            if (f == NULL) {
                rc = CORE_ENOMEM;
                goto fail;
            }
            if (!cJSON_IsNumber(x) || fabs(x->valuedouble) > FLT_MAX) {
                *why = "an embedding value is not a float32 number";
                goto fail;
            }
            f[i++] = (float)x->valuedouble;
        }
    } else if (cJSON_IsString(v)) {
        /* 4 characters carry 3 bytes; "=" pads the last quad, and pads count as zero bytes */
        if (len % 4 != 0 || len > INT32_MAX) {
            *why = "an embedding is not base64";
            goto fail;
        }
        if ((raw = malloc(len / 4 * 3 + 1)) == NULL) {
            rc = CORE_ENOMEM;
            goto fail;
        }
        decoded = EVP_DecodeBlock(raw, (const unsigned char *)v->valuestring, (int)len);
        if (decoded < 0) {
            *why = "an embedding is not base64";
            goto fail;
        }
        decoded -= (len >= 1 && v->valuestring[len - 1] == '=') +
                   (len >= 2 && v->valuestring[len - 2] == '=');
        if (decoded % 4 != 0) {
            *why = "an embedding's base64 is not a whole number of float32 values";
            goto fail;
        }
        count = (size_t)decoded / 4;
        f = count > 0 ? malloc(count * sizeof(*f)) : NULL;
        for (i = 0; f != NULL && i < count; i++) {
            const unsigned char *b = raw + 4 * i;
            uint32_t u =
                (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
            memcpy(&f[i], &u, sizeof(u));
            if (!isfinite(f[i])) {
                *why = "an embedding value is not a finite float32";
                goto fail;
            }
        }
    } else {
        *why = "an embedding is neither an array of numbers nor a base64 string";
        goto fail;
    }
    if (count == 0) {
        *why = "an embedding is empty";
        goto fail;
    }
    if (f == NULL) {
        rc = CORE_ENOMEM;
        goto fail;
    }
    free(raw);
    *out = f;
    *n = count;
    return 0;
fail:
    free(raw);
    free(f);
    return rc;
}

/* The vector in the wanted encoding: an array of numbers, or base64 of little-endian float32s. */
static cJSON *openai_vector_write(const float *f, size_t n, enum openai_encoding enc)
{
    unsigned char *raw;
    char *b64;
    cJSON *out = NULL;

    if (enc == OPENAI_ENC_FLOAT) {
        out = cJSON_CreateArray();
        for (size_t i = 0; out != NULL && i < n; i++) {
            if (!cJSON_AddItemToArray(out, cJSON_CreateNumber(openai_float_decimal(f[i])))) {
                cJSON_Delete(out);
                out = NULL;
            }
        }
        return out;
    }
    raw = malloc(4 * n);
    b64 = malloc(4 * ((4 * n + 2) / 3) + 1);
    if (raw != NULL && b64 != NULL && 4 * n <= INT32_MAX) {
        for (size_t i = 0; i < n; i++) {
            uint32_t u;
            memcpy(&u, &f[i], sizeof(u));
            for (int k = 0; k < 4; k++) {
                raw[4 * i + (size_t)k] = (unsigned char)(u >> (8 * k));
            }
        }
        EVP_EncodeBlock((unsigned char *)b64, raw, (int)(4 * n));
        out = cJSON_CreateString(b64);
    }
    free(raw);
    free(b64);
    return out;
}

/*
 * One data item's embedding, in the encoding the client asked for. A vector already in that
 * encoding is kept as the provider sent it (floats keep their digits), once it has been read.
 */
static int openai_embedding_item(cJSON *item, enum openai_encoding enc,
                                 const struct adapter_response *resp, struct core_err *err)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(item, "embedding");
    enum openai_encoding got = cJSON_IsString(v) ? OPENAI_ENC_BASE64 : OPENAI_ENC_FLOAT;
    const char *why = NULL;
    cJSON *fresh = NULL;
    float *f = NULL;
    size_t n = 0;
    int rc = openai_vector_read(v, &f, &n, &why);

    if (rc != 0) {
        return rc == CORE_ENOMEM ? adapter_oom(err)
                                 : adapter_malformed_body(resp->status, resp->body_len, why, err);
    }
    if (got != enc) {
        fresh = openai_vector_write(f, n, enc);
        if (fresh == NULL || !cJSON_ReplaceItemInObjectCaseSensitive(item, "embedding", fresh)) {
            cJSON_Delete(fresh);
            free(f);
            return adapter_oom(err);
        }
    }
    free(f);
    return 0;
}

int openai_embeddings_encode(cJSON *data, enum openai_encoding enc,
                             const struct adapter_response *resp, struct core_err *err)
{
    cJSON *item;
    int rc;

    cJSON_ArrayForEach(item, data)
    {
        if ((rc = openai_embedding_item(item, enc, resp, err)) != 0) {
            return rc;
        }
    }
    return 0;
}
