/*
 * core/json_in.c — strict parsing of client JSON (see json_in.h for why each rule exists).
 * One pass over the bytes checks UTF-8 and escaped NULs; cJSON parses; a walk over the tree
 * checks the numbers. All three are linear in the body and allocate nothing beyond cJSON's tree.
 */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "core/json_in.h"
#include "core/util.h"

bool json_in_utf8_valid(const char *text, size_t len)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;

    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        uint32_t cp;

        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false; /* a continuation byte first, 0xC0/0xC1 (overlong) or past 0xF4 */
        }
        if (len - i <= n) {
            return false; /* cut short */
        }
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return false;
            }
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF)) {
            return false; /* overlong, past U+10FFFF, or a surrogate */
        }
        i += n + 1;
    }
    return true;
}

/* True when a "\u0000" escape occurs inside a string of the JSON text. */
static bool has_nul_escape(const char *s, size_t len)
{
    bool in_string = false;

    for (size_t i = 0; i < len; i++) {
        if (!in_string) {
            in_string = s[i] == '"';
            continue;
        }
        if (s[i] == '"') {
            in_string = false;
        } else if (s[i] == '\\' && i + 1 < len) {
            if (s[i + 1] == 'u' && i + 5 < len && memcmp(s + i + 2, "0000", 4) == 0) {
                return true;
            }
            i++; /* the escaped character (a quote does not end the string) */
        }
    }
    return false;
}

/* Appends ".key" or "[i]" to the path in buf (truncated at cap). */
static void path_push(char *buf, size_t cap, const cJSON *item, int index)
{
    size_t n = strlen(buf);

    if (n + 1 >= cap) {
        return;
    }
    if (item->string != NULL) {
        snprintf(buf + n, cap - n, "%s%s", n > 0 ? "." : "", item->string);
    } else {
        snprintf(buf + n, cap - n, "[%d]", index);
    }
}

/* The first number of the tree that is not finite; its path in buf. NULL when there is none. */
static const cJSON *bad_number(const cJSON *node, char *buf, size_t cap)
{
    const cJSON *child;
    int i = 0;

    if (cJSON_IsNumber(node)) {
        return isfinite(node->valuedouble) ? NULL : node;
    }
    cJSON_ArrayForEach(child, node)
    {
        size_t n = strlen(buf);
        const cJSON *bad;

        path_push(buf, cap, child, i++);
        if ((bad = bad_number(child, buf, cap)) != NULL) {
            return bad;
        }
        buf[n] = '\0';
    }
    return NULL;
}

int json_in_parse(const char *text, size_t len, int max_depth, cJSON **out, struct core_err *err)
{
    const char *end = NULL;
    char path[128] = "";
    cJSON *json;

    *out = NULL;
    if (util_json_depth(text, len, max_depth) > max_depth) {
        core_err_set(err, CORE_EINVAL, NULL, "The JSON is nested deeper than %d levels", max_depth);
        core_err_set_code(err, "invalid_json");
        return CORE_EINVAL;
    }
    if (!json_in_utf8_valid(text, len)) {
        core_err_set(err, CORE_EINVAL, NULL, "The JSON is not valid UTF-8");
        core_err_set_code(err, "invalid_json");
        return CORE_EINVAL;
    }
    if (has_nul_escape(text, len)) {
        core_err_set(err, CORE_EINVAL, NULL,
                     "A string in the JSON holds a NUL character (\\u0000), which sluice cannot "
                     "keep");
        core_err_set_code(err, "invalid_json");
        return CORE_EINVAL;
    }
    json = cJSON_ParseWithLengthOpts(text, len, &end, false);
    if (json == NULL) {
        core_err_set(err, CORE_EINVAL, NULL, "We could not parse the JSON body of your request");
        core_err_set_code(err, "invalid_json");
        return CORE_EINVAL;
    }
    for (; end != NULL && end < text + len; end++) {
        if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n') {
            cJSON_Delete(json);
            core_err_set(err, CORE_EINVAL, NULL,
                         "Unexpected data after the JSON document (at byte %zu)",
                         (size_t)(end - text));
            core_err_set_code(err, "invalid_json");
            return CORE_EINVAL;
        }
    }
    if (bad_number(json, path, sizeof(path)) != NULL) {
        cJSON_Delete(json);
        core_err_set(err, CORE_EINVAL, path[0] ? path : NULL,
                     "'%s' is a number out of range (it must be finite)", path[0] ? path : "$");
        core_err_set_code(err, "invalid_number");
        return CORE_EINVAL;
    }
    *out = json;
    return 0;
}
