/*
 * Unit tests of core/json_in: client JSON parsed strictly (trailing data, UTF-8, NUL escapes,
 * non-finite numbers, depth), each refusal a 400 that says what is wrong.
 */
#include <stdlib.h>

#include "core/json_in.h"
#include "check.h"

/* Parses s; returns the error code string ("" when it parsed) and the param in *param. */
static const char *parse(const char *s, size_t len, const char **param)
{
    static struct core_err err;
    cJSON *out = (cJSON *)1;
    int rc;

    core_err_clear(&err);
    rc = json_in_parse(s, len, 8, &out, &err);
    *param = err.param;
    if (rc == 0) {
        CHECK(out != NULL);
        cJSON_Delete(out);
        return "";
    }
    CHECK(rc == CORE_EINVAL && out == NULL && err.http_status == 400);
    return err.err_code;
}

#define CHECK_PARSE(s, code, want_param)                                                           \
    do {                                                                                           \
        const char *p_;                                                                            \
        CHECK_STR(parse((s), sizeof(s) - 1, &p_), (code));                                         \
        CHECK_STR(p_, (want_param));                                                               \
    } while (0)

static void test_accepts(void)
{
    CHECK_PARSE("{\"a\":1}", "", "");
    CHECK_PARSE("  {\"a\":[1,2.5e10,-3]}\r\n\t ", "", "");
    CHECK_PARSE("{\"t\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x91\x8b\"}", "", "");
    CHECK_PARSE("{\"t\":\"\\u00e9 \\ud83d\\udc4b \\\"\\\\u0000\\\"\"}", "",
                ""); /* "\\u0000" is text */
    CHECK_PARSE("{\"big\":1e308}", "", "");
}

static void test_refuses(void)
{
    CHECK_PARSE("{\"a\":1}x", "invalid_json", "");
    CHECK_PARSE("{\"a\":1}{\"b\":2}", "invalid_json", "");
    CHECK_PARSE("{\"a\":1", "invalid_json", "");
    CHECK_PARSE("", "invalid_json", "");
    CHECK_PARSE("{\"a\":\"x\\u0000y\"}", "invalid_json", "");
    CHECK_PARSE("{\"model\":\"m\\u0000\"}", "invalid_json", "");
    CHECK_PARSE("{\"a\":\"\xff\"}", "invalid_json", "");             /* not UTF-8 */
    CHECK_PARSE("{\"a\":\"\xc0\xaf\"}", "invalid_json", "");         /* overlong */
    CHECK_PARSE("{\"a\":\"\xed\xa0\x80\"}", "invalid_json", "");     /* a surrogate */
    CHECK_PARSE("{\"a\":\"\xf4\x90\x80\x80\"}", "invalid_json", ""); /* past U+10FFFF */
    CHECK_PARSE("{\"a\":\"\xe2\x82\"}", "invalid_json", "");         /* cut short */
    CHECK_PARSE("{\"max_tokens\":1e999}", "invalid_number", "max_tokens");
    CHECK_PARSE("{\"messages\":[{\"x\":1},{\"n\":-1e999}]}", "invalid_number", "messages[1].n");
    CHECK_PARSE("1e999", "invalid_number", "");
    CHECK_PARSE("[[[[[[[[[[1]]]]]]]]]]", "invalid_json", ""); /* deeper than 8 */
}

static void test_utf8(void)
{
    CHECK(json_in_utf8_valid("", 0));
    CHECK(json_in_utf8_valid("\xef\xbf\xbf", 3));
    CHECK(!json_in_utf8_valid("\xe0\x80\x80", 3));     /* overlong 3-byte */
    CHECK(!json_in_utf8_valid("\xf0\x80\x80\x80", 4)); /* overlong 4-byte */
    CHECK(!json_in_utf8_valid("\x80", 1));
    CHECK(!json_in_utf8_valid("\xc3", 1));
}

int main(void)
{
    test_accepts();
    test_refuses();
    test_utf8();
    return check_done();
}
