/*
 * migration_plist: the body of a /migration request as the check-in parser reads it. nano2nano
 * and llorne send the XML plists devices sent; a captured check-in may also be a binary plist
 * (bplist00), which is written again here as XML for mdm_message_parse() (server/device/
 * mdm_message.c), whose depth and markup checks then apply as to any device body.
 *
 * Pure: no I/O, no global state; unit-tested (tests/unit/test_migration_plist.c) and fuzzed
 * (tests/fuzz/fuzz_migration_plist.c). The caller owns what it gets.
 */
#ifndef VOUCH_MIGRATION_PLIST_H
#define VOUCH_MIGRATION_PLIST_H

#include <stdbool.h>
#include <stddef.h>

/* Whether body[0..len) starts as a binary plist does. */
bool migration_plist_is_binary(const void *body, size_t len);

/* A binary plist written again as an XML plist: *xml is a fresh NUL-terminated buffer of
 * *xml_len bytes the caller frees with free(). False (and *xml NULL) when it is not a binary
 * plist, does not parse, or is larger than 4 GiB. */
bool migration_plist_to_xml(const void *body, size_t len, char **xml, size_t *xml_len)
    __attribute__((warn_unused_result));

#endif
