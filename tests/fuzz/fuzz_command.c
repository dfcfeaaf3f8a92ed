/* libFuzzer target: command plists from the admin API through command_prepare. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct prepared_command cmd;
    char err[256];
    if (command_prepare((const char *)data, size, &cmd, err, sizeof(err))) {
        if (cmd.xml == NULL || cmd.uuid[0] == '\0' || cmd.request_type[0] == '\0')
            abort();
        command_clear(&cmd);
    }
    return 0;
}
