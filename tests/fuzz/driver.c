/*
 * tests/fuzz/driver.c — runs a fuzz target without libFuzzer, as a unit test: every file of the
 * corpus directory given as argv[1], then a fixed number of deterministic pseudo-random inputs
 * (mutations of the corpus), so the suite exercises the parsers under the sanitizers on every
 * run. Build with -DSLUICE_FUZZ=ON (clang) for real coverage-guided fuzzing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define DRIVER_RANDOM_RUNS 20000
#define DRIVER_MAX_INPUT 4096
#define DRIVER_MAX_SEEDS 256

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

int main(int argc, char **argv)
{
    static uint8_t seeds[DRIVER_MAX_SEEDS][DRIVER_MAX_INPUT];
    static size_t seed_len[DRIVER_MAX_SEEDS];
    static uint8_t buf[DRIVER_MAX_INPUT];
    size_t n_seeds = 0;
    DIR *d = argc > 1 ? opendir(argv[1]) : NULL;
    struct dirent *e;

    if (d == NULL) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 1;
    }
    while ((e = readdir(d)) != NULL && n_seeds < DRIVER_MAX_SEEDS) {
        char path[4096];
        FILE *f;
        if (e->d_name[0] == '.') {
            continue;
        }
        snprintf(path, sizeof(path), "%s/%s", argv[1], e->d_name);
        f = fopen(path, "rb");
        if (f == NULL) {
            continue;
        }
        seed_len[n_seeds] = fread(seeds[n_seeds], 1, DRIVER_MAX_INPUT, f);
        fclose(f);
        LLVMFuzzerTestOneInput(seeds[n_seeds], seed_len[n_seeds]);
        n_seeds++;
    }
    closedir(d);
    if (n_seeds == 0) {
        fprintf(stderr, "no corpus files in %s\n", argv[1]);
        return 1;
    }
    /* Mutations: flip, insert, delete and truncate bytes of a random seed. */
    for (int run = 0; run < DRIVER_RANDOM_RUNS; run++) {
        size_t s = rng() % n_seeds, len = seed_len[s];
        memcpy(buf, seeds[s], len);
        for (int m = (int)(rng() % 8); m >= 0; m--) {
            size_t at = len ? rng() % len : 0;
            switch (rng() % 4) {
            case 0:
                if (len) {
                    buf[at] = (uint8_t)rng();
                }
                break;
            case 1:
                if (len < DRIVER_MAX_INPUT) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = "{}[]\",:\\0a"[rng() % 10];
                    len++;
                }
                break;
            case 2:
                if (len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            default:
                len = at;
                break;
            }
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("%zu passed, 0 failed\n", n_seeds + DRIVER_RANDOM_RUNS);
    return 0;
}
