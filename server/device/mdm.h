/*
 * mdm: the MDM check-in and command endpoints (PUT /mdm/checkin, /mdm/connect, /mdm, NanoMDM's
 * /checkin, and the configured mdm_path and checkin_path), the service layer between HTTP and
 * the database.
 *
 * For each request: the Content-Type picks the channel, the device's identity certificate is
 * proven (identity.c), the body is parsed (mdm_message.c), and one database function records
 * the message and, for reports, picks the next command. Every refusal gets a precise 4xx (never
 * 401), a log line and a counter. A request owns its struct device_request until the database
 * answers and the reply is sent.
 */
#ifndef VOUCH_MDM_H
#define VOUCH_MDM_H

struct config;

/* Registers PUT /mdm/checkin, /mdm/connect, /mdm, /checkin, and cfg's mdm_path and checkin_path
 * when they are not one of those, with the HTTP front (http_route). cfg outlives the routes. */
void mdm_register_routes(const struct config *cfg);

#endif
