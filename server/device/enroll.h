/*
 * enroll: GET /mdm/enroll, the enrollment profile (profiles/profile.h) a device installs, built
 * from the configuration and the push certificate's topic, signed when profile_signing_cert is
 * set, and behind enroll_token when one is set (?token=, compared in constant time; a wrong or
 * missing token is 403). The signing identity and the CA to embed are read at start.
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
