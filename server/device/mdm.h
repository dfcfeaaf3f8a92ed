/*
 * mdm: the MDM check-in and command endpoints (PUT /mdm/checkin, /mdm/connect, /mdm), the
 * service layer between HTTP and the database.
 *
 * For each request: the Content-Type picks the channel, the device's identity certificate is
 * proven (identity.c), the body is parsed (mdm_message.c), and one database function records
 * the message and, for reports, picks the next command. Every refusal gets a precise 4xx (never
 * 401), a log line and a counter. A request owns its struct device_request until the database
 * answers and the reply is sent.
 */
#ifndef VOUCH_MDM_H
#define VOUCH_MDM_H

/* Registers PUT /mdm/checkin, /mdm/connect and /mdm with the HTTP front (http_route). */
void mdm_register_routes(void);

#endif
