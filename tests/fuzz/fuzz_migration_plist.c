/* libFuzzer target: /migration bodies (server/operator/migration_plist.c): a binary plist
 * written again as XML, then read by mdm_message_parse as a check-in. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mdm_message.h"
#include "migration_plist.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *xml = NULL;
    size_t xml_len = 0;
    if (!migration_plist_to_xml(data, size, &xml, &xml_len)) {
        if (xml != NULL)
            abort(); /* a refusal leaves nothing owned */
        return 0;
    }
    if (xml[xml_len] != '\0')
        abort(); /* NUL-terminated (a string of the plist may hold a NUL of its own) */
    struct mdm_message msg;
    const char *field;
    if (mdm_message_parse(xml, xml_len, MDM_CHANNEL_CHECKIN, &msg, &field) == MDM_PARSE_OK)
        mdm_message_clear(&msg);
    free(xml);
    return 0;
}
