/*
 * migration: NanoMDM's /migration (enrollments moved in from NanoMDM or MicroMDM by nano2nano
 * or llorne) and GET /v1/migration, how far the migrated fleet has come (docs/api.md).
 *
 * PUT (or POST) /migration takes one raw Authenticate or TokenUpdate check-in plist of a device
 * channel, XML as devices send it (a binary plist is refused unparsed, 400 binary_plist; a user
 * channel's, 400 user_channel), from an admin-scoped caller (HTTP Basic nanomdm:TOKEN as
 * nano2nano sends it, or Bearer), and writes the device and its migrated enrollment without a
 * device certificate in one transaction (vouch_migrate, db/functions/45_migration.sql); 200
 * only after the commit. The route exists only with migration = on. The migrated identity is
 * proven later, by the device's first signed request and an attestation (docs/protocol.md,
 * "Binding").
 *
 * migration_note_push_topics() writes the push certificate's topic of this instance where SQL
 * sees it (push_topics), so that the device object and GET /v1/migration can say which
 * enrollments no installed certificate can push ("no_certificate").
 *
 * Everything runs on the event loop; nothing here owns state beyond a request.
 */
#ifndef VOUCH_MIGRATION_H
#define VOUCH_MIGRATION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vouchd;

/* Registers GET /v1/migration, and /migration when on. */
void migration_register_routes(bool on);

/* Records in the database the topic of the push certificate this instance has now (NULL: none),
 * under this instance's name (host name and listen address). Not waiting for it. */
void migration_note_push_topics(struct vouchd *srv, const char *topic);

/* The same at start, before the loop runs (blocking): false after logging why. */
bool migration_store_push_topics(const struct vouchd *srv, const char *topic)
    __attribute__((warn_unused_result));

#endif
