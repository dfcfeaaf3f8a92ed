#include "migration_plist.h"

#include <plist/plist.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define BPLIST_MAGIC "bplist00"

bool migration_plist_is_binary(const void *body, size_t len)
{
    return len >= sizeof(BPLIST_MAGIC) - 1 &&
           memcmp(body, BPLIST_MAGIC, sizeof(BPLIST_MAGIC) - 1) == 0;
}

bool migration_plist_to_xml(const void *body, size_t len, char **xml, size_t *xml_len)
{
    *xml = NULL;
    *xml_len = 0;
    if (!migration_plist_is_binary(body, len) || len > UINT32_MAX)
        return false;
    plist_t root = NULL;
    plist_from_bin(body, (uint32_t)len, &root);
    if (root == NULL)
        return false;
    char *text = NULL;
    uint32_t text_len = 0;
    plist_to_xml(root, &text, &text_len);
    plist_free(root);
    if (text == NULL)
        return false;
    /* libplist's buffer is freed with its own function: copy it into one free() takes. */
    *xml = malloc((size_t)text_len + 1);
    if (*xml != NULL) {
        memcpy(*xml, text, text_len);
        (*xml)[text_len] = '\0';
        *xml_len = text_len;
    }
    plist_to_xml_free(text);
    return *xml != NULL;
}
