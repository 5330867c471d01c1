/*
 * Unit tests of core/multipart.
 */
#include "core/multipart.h"
#include "check.h"

struct seen {
    char names[256];
    char values[256];
    int files;
};

static int collect(const struct multipart_part *p, void *arg)
{
    struct seen *s = arg;
    size_t n = strlen(s->names), v = strlen(s->values);
    snprintf(s->names + n, sizeof(s->names) - n, "%.*s,", (int)p->name_len, p->name);
    snprintf(s->values + v, sizeof(s->values) - v, "%.*s,", (int)p->len, p->data);
    s->files += p->filename != NULL;
    return 0;
}

int main(void)
{
    char b[80];
    struct seen s = {0};
    const char body[] = "preamble\r\n--XyZ\r\n"
                        "Content-Disposition: form-data; name=\"model\"\r\n\r\n"
                        "sora-2\r\n"
                        "--XyZ\r\n"
                        "Content-Disposition: form-data; name=\"prompt\"\r\n\r\n"
                        "a cat\r\non two lines\r\n"
                        "--XyZ\r\n"
                        "Content-Disposition: form-data; name=\"ref\"; filename=\"r.png\"\r\n"
                        "Content-Type: image/png\r\n\r\n"
                        "PNG--XyZ-not-a-delimiter\r\n"
                        "--XyZ--\r\n";

    CHECK(multipart_boundary("multipart/form-data; boundary=XyZ", b, sizeof(b)) == 0);
    CHECK_STR(b, "XyZ");
    CHECK(multipart_boundary("multipart/form-data; boundary=\"a b\"; x=1", b, sizeof(b)) == 0);
    CHECK_STR(b, "a b");
    CHECK(multipart_boundary("application/json", b, sizeof(b)) < 0);
    CHECK(multipart_boundary("multipart/form-data", b, sizeof(b)) < 0);

    CHECK(multipart_parse(body, sizeof(body) - 1, "XyZ", collect, &s) == 0);
    CHECK_STR(s.names, "model,prompt,ref,");
    CHECK_STR(s.values, "sora-2,a cat\r\non two lines,PNG--XyZ-not-a-delimiter,");
    CHECK(s.files == 1);

    /* truncated bodies and missing names are malformed */
    CHECK(multipart_parse(body, 60, "XyZ", collect, &s) < 0);
    CHECK(multipart_parse("--XyZ\r\nContent-Type: x\r\n\r\nv\r\n--XyZ--", 37, "XyZ", collect, &s) <
          0);
    CHECK(multipart_parse("nothing here", 12, "XyZ", collect, &s) < 0);
    return check_done();
}
