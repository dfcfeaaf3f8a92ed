/* libFuzzer target: configuration files through config_parse. */
#include <stdint.h>
#include <stdlib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config cfg;
    char err[512];
    if (config_parse(&cfg, (const char *)data, size, NULL, err, sizeof(err))) {
        if (cfg.listen == NULL || cfg.max_body_bytes == 0)
            abort();
        config_clear(&cfg);
    }
    return 0;
}
