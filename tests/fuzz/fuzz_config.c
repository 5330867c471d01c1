/*
 * Fuzz target: the config parser and the JSON depth scan, on arbitrary text.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct config *cfg = NULL;
    struct core_err err;

    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    util_json_depth(text, size, 64);
    if (config_parse(text, &cfg, &err) == 0) {
        config_free(cfg);
    }
    free(text);
    return 0;
}
