/*
 * netaddr: IP addresses and networks as configuration names them, and the client's address behind
 * trusted proxies (X-Forwarded-For). Pure: no I/O, no allocation; inet_pton and inet_ntop do the
 * reading and writing of each address.
 */
#ifndef VOUCH_NETADDR_H
#define VOUCH_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An IP address. An IPv4-mapped IPv6 address (::ffff:a.b.c.d, what a dual-stack socket reports
 * for an IPv4 peer) is kept as the IPv4 address, so that one host has one form. */
struct net_addr {
    uint8_t family;    /* 4 or 6 */
    uint8_t bytes[16]; /* network order; the first 4 for IPv4 */
};

/* A network: the addresses whose first `prefix` bits equal addr's (a single address: 32 or 128). */
struct net_prefix {
    struct net_addr addr;
    uint8_t prefix;
};

/* Parses one IPv4 or IPv6 address of len bytes (inet_pton: no zone, no brackets, no port). */
bool net_addr_parse(const char *text, size_t len, struct net_addr *out)
    __attribute__((warn_unused_result));
/* The address as inet_ntop writes it (canonical: one text per address). */
const char *net_addr_text(const struct net_addr *a, char *buf, size_t size);

/* Parses "address" or "address/prefix" (1-32 or 1-128 bits, none set beyond the prefix; /0,
 * which would trust everyone, is refused); on error err says what is wrong with it. */
bool net_prefix_parse(const char *text, struct net_prefix *out, char *err, size_t err_size)
    __attribute__((warn_unused_result));
/* Is a in net? (An IPv4 address is never in an IPv6 network, nor the other way round.) */
bool net_prefix_contains(const struct net_prefix *net, const struct net_addr *a);

/* The client behind trusted proxies: peer is the socket's address; lines are the request's
 * X-Forwarded-For field lines in the order received (n may be 0). When peer is not in proxies the
 * client is peer. Otherwise the elements (comma-separated across all lines, each an address,
 * "[IPv6]" or either with ":port") are walked from the right: the first that is not a trusted
 * proxy is the client; when all are trusted, the left-most (or peer, without any). Returns false
 * when an element that must be read is not an address. */
bool net_forwarded_client(const struct net_prefix *proxies, size_t proxy_count,
                          const struct net_addr *peer, const char *const *lines, size_t n,
                          struct net_addr *client) __attribute__((warn_unused_result));

#endif
