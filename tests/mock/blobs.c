/*
 * tests/mock/blobs.c — deterministic media bytes: the same name always gives the same bytes.
 *
 * `.png`: a valid 64x64 RGB PNG (stored, uncompressed deflate: no zlib needed) whose colours come
 * from the name. `.mp4`: 64 KiB starting with a real `ftyp` box and an `mdat` box of
 * pseudo-random payload — it looks like an MP4 to a sniffer, it does not play.
 */
#include <string.h>

#include "tests/mock/mock.h"

static uint32_t crc32_update(uint32_t crc, const unsigned char *p, size_t n)
{
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        for (int k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static void put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* One PNG chunk: length, type, data, CRC of type and data. */
static void png_chunk(struct evbuffer *out, const char *type, const unsigned char *data, size_t n)
{
    unsigned char head[8], crc[4];
    put32(head, (uint32_t)n);
    memcpy(head + 4, type, 4);
    put32(crc, crc32_update(crc32_update(0, head + 4, 4), data, n));
    evbuffer_add(out, head, 8);
    evbuffer_add(out, data, n);
    evbuffer_add(out, crc, 4);
}

#define PNG_ROW (1 + 3 * MOCK_PNG_SIDE)
#define PNG_RAW (PNG_ROW * MOCK_PNG_SIDE)
_Static_assert(PNG_RAW <= 65535, "one stored deflate block");

static int blob_png(struct evbuffer *out, uint64_t seed)
{
    static const unsigned char signature[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    unsigned char ihdr[13] = {0};
    unsigned char idat[2 + 5 + PNG_RAW + 4];
    unsigned char *raw = idat + 7;
    put32(ihdr, MOCK_PNG_SIDE);
    put32(ihdr + 4, MOCK_PNG_SIDE);
    ihdr[8] = 8; /* bit depth */
    ihdr[9] = 2; /* RGB */

    unsigned char base[3] = {(unsigned char)seed, (unsigned char)(seed >> 8),
                             (unsigned char)(seed >> 16)};
    for (int y = 0; y < MOCK_PNG_SIDE; y++) {
        unsigned char *row = raw + y * PNG_ROW;
        row[0] = 0; /* filter: none */
        for (int x = 0; x < MOCK_PNG_SIDE; x++) {
            row[1 + 3 * x] = (unsigned char)(base[0] + 3 * x);
            row[2 + 3 * x] = (unsigned char)(base[1] + 3 * y);
            row[3 + 3 * x] = (unsigned char)(base[2] ^ ((x ^ y) << 2));
        }
    }
    /* zlib header, one final stored block, Adler-32 of the raw bytes */
    uint32_t a = 1, b = 0;
    for (size_t i = 0; i < PNG_RAW; i++) {
        a = (a + raw[i]) % 65521;
        b = (b + a) % 65521;
    }
    idat[0] = 0x78;
    idat[1] = 0x01;
    idat[2] = 0x01;
    idat[3] = (unsigned char)(PNG_RAW & 0xff);
    idat[4] = (unsigned char)(PNG_RAW >> 8);
    idat[5] = (unsigned char)(~PNG_RAW & 0xff);
    idat[6] = (unsigned char)((~PNG_RAW >> 8) & 0xff);
    put32(idat + 7 + PNG_RAW, (b << 16) | a);

    if (evbuffer_add(out, signature, sizeof(signature)) < 0) {
        return -1;
    }
    png_chunk(out, "IHDR", ihdr, sizeof(ihdr));
    png_chunk(out, "IDAT", idat, sizeof(idat));
    png_chunk(out, "IEND", ihdr, 0); /* no data; any non-NULL pointer */
    return 0;
}

static int blob_mp4(struct evbuffer *out, uint64_t seed)
{
    static const unsigned char ftyp[32] = {
        0,   0,   0,   32,  'f', 't', 'y', 'p', 'i', 's', 'o', 'm', 0,   0,   2,   0,
        'i', 's', 'o', 'm', 'i', 's', 'o', '2', 'a', 'v', 'c', '1', 'm', 'p', '4', '1',
    };
    struct evbuffer_iovec v;
    if (evbuffer_reserve_space(out, MOCK_MP4_BYTES, &v, 1) < 1) {
        return -1;
    }
    unsigned char *p = v.iov_base;
    memcpy(p, ftyp, sizeof(ftyp));
    put32(p + 32, MOCK_MP4_BYTES - 32);
    memcpy(p + 36, "mdat", 4);
    for (size_t i = 40; i < MOCK_MP4_BYTES; i += 8) {
        uint64_t r = mock_mix64(seed + i);
        size_t take = MOCK_MP4_BYTES - i < 8 ? MOCK_MP4_BYTES - i : 8;
        memcpy(p + i, &r, take);
    }
    v.iov_len = MOCK_MP4_BYTES;
    return evbuffer_commit_space(out, &v, 1);
}

static const struct {
    const char *ext;
    const char *content_type;
    int (*render)(struct evbuffer *out, uint64_t seed);
} blob_kinds[] = {
    {".png", "image/png", blob_png},
    {".mp4", "video/mp4", blob_mp4},
};

const char *blob_render(struct evbuffer *out, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = name; *p != '\0'; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '_')) {
            return NULL;
        }
    }
    for (size_t i = 0; i < sizeof(blob_kinds) / sizeof(blob_kinds[0]); i++) {
        size_t e = strlen(blob_kinds[i].ext);
        if (n > e && strcmp(name + n - e, blob_kinds[i].ext) == 0) {
            return blob_kinds[i].render(out, mock_hash(name, n)) == 0 ? blob_kinds[i].content_type
                                                                      : NULL;
        }
    }
    return NULL;
}
