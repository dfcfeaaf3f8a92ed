/*
 * enroll: GET /mdm/enroll, the enrollment profile (profiles/profile.h) a device installs, built
 * from the configuration and the push certificate's topic, signed when profile_signing_cert is
 * set, and behind enroll_token when one is set (?token=, compared in constant time; a wrong or
 * missing token is 403). The signing identity and the CA to embed are read at start.
 *
 * Each download carries a fresh ClientIdentifier for the ACME payload. With vouchd's own ACME
 * server (acme_ca_cert) it is stored first, as a one-time code the device's order must present;
 * a ?token= that is an expected device's own (vouchctl devices expect) ties it to that serial,
 * and opens the profile even when enroll_token is set.
 */
#ifndef VOUCH_ENROLL_H
#define VOUCH_ENROLL_H

#include <stdbool.h>
#include <stddef.h>

struct evhttp_request;
struct vouchd;
struct enroll;

/* NULL with a message when a configured file cannot be used. */
struct enroll *enroll_new(const struct vouchd *srv, char *err, size_t err_size);
void enroll_free(struct enroll *e);

/* Registers GET /mdm/enroll with the HTTP front (http_route). */
void enroll_register_routes(void);

#endif
