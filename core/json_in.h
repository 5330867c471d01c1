/*
 * core/json_in.h — JSON that comes from a client, parsed strictly. cJSON is lenient where a broker
 * must not be: it stops at the end of the first value (trailing bytes would be ignored), keeps
 * invalid UTF-8 (a stored task would no longer be valid JSON), cuts a string at an escaped NUL
 * ("\u0000": the rest of a message silently lost) and reads 1e999 as infinity (sent upstream as
 * null). Every body and every batch line goes through here instead.
 */
#ifndef SLUICE_CORE_JSON_IN_H
#define SLUICE_CORE_JSON_IN_H

#include <stdbool.h>
#include <stddef.h>

#include <cJSON.h>

#include "core/err.h"

/*
 * Parses text (len bytes, need not be NUL-terminated) as one JSON document: nested at most
 * max_depth deep, valid UTF-8 throughout (no overlong forms, surrogates or code points past
 * U+10FFFF), no "\u0000" escape, nothing but whitespace after the value, every number finite.
 * Returns 0 with *out (caller frees), or CORE_EINVAL with err saying what is wrong (code
 * "invalid_json"; a number out of range: code "invalid_number", param the field's path such as
 * "messages[0].max_tokens") and *out NULL.
 */
int json_in_parse(const char *text, size_t len, int max_depth, cJSON **out, struct core_err *err);

/* True when text[0..len) is valid UTF-8 (as json_in_parse requires). */
bool json_in_utf8_valid(const char *text, size_t len);

#endif
