/* libFuzzer target: profile_check on arbitrary plists (the checker reads what it did not build:
 * a profile an operator edits or one read back from a device). */
#include <stdint.h>
#include <stdlib.h>

#include "profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    (void)profile_check((const char *)data, size, err, sizeof(err));
    return 0;
}
