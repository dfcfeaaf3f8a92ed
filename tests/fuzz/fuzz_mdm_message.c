/* libFuzzer target: device request bodies through mdm_message_parse, on both channels. */
#include <stdint.h>
#include <stdlib.h>

#include "mdm_message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int channel = 0; channel < 2; channel++) {
        struct mdm_message msg;
        const char *field;
        enum mdm_parse_error err = mdm_message_parse((const char *)data, size,
                                                     (enum mdm_channel)channel, &msg, &field);
        if (err == MDM_PARSE_OK) {
            if (msg.kind != MDM_CHECKIN_UNSUPPORTED && msg.udid == NULL)
                abort();
            mdm_message_clear(&msg);
        } else if (msg.plist != NULL) {
            abort(); /* an error must leave nothing owned */
        }
    }
    return 0;
}
