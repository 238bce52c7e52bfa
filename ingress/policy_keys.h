/* policy_keys.h - the keys the ingress gives the policy service (the
 * router treats them as opaque strings, except that an intrusion key
 * must be an IP address), and the values of sending_limit_maps.  Pure
 * functions, no state.
 *   intrusion, spam history: the client IP; IPv6 reduced to its /64
 *   greylist: "SENDER/RECIPIENT", or "NET/SENDER/RECIPIENT" with
 *             greylist_network, lower-cased; SENDER normalised so that
 *             VERP and BATV senders still pass (see policy_key_sender)
 *   limits:   "user:ADDRESS" and "domain:DOMAIN"
 */
#ifndef CORREIO_INGRESS_POLICY_KEYS_H
#define CORREIO_INGRESS_POLICY_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#define POLICY_KEY_MAX 1100         /* a triplet: network, two paths, slashes */

/* policy_key_ip - the intrusion key of a client address in text form:
 * IPv4 as it is, IPv6 reduced to its /64 ("2001:db8:1:2::/64").  An
 * unparsable ip is copied as it is.  Never longer than size-1. */
void policy_key_ip(const char *ip, char *out, size_t size);

/* policy_key_network - "192.0.2.0/24" for ip with prefix4 (IPv4) or
 * prefix6 (IPv6) bits kept. */
void policy_key_network(const char *ip, int prefix4, int prefix6, char *out, size_t size);

/* policy_key_sender - the greylist form of an envelope sender, so that
 * VERP and BATV senders still match their retries: lower case, "<>" for
 * the null sender, a "prvs=TAG=" prefix removed, a "+extension" removed
 * from the local part, and every run of digits in the local part
 * replaced by '#'. */
void policy_key_sender(const char *sender, char *out, size_t size);

/* policy_key_triplet - "SENDER/RECIPIENT", or "NET/SENDER/RECIPIENT"
 * when network is not NULL; lower case; sender as policy_key_sender. */
void policy_key_triplet(const char *network, const char *sender, const char *rcpt, char *out,
                        size_t size);

/* A sending_limit_maps value: -1 where it says nothing. */
typedef struct policy_limits {
    long messages, recipients, domain_messages;
} policy_limits;

/* policy_limits_parse - "messages=N recipients=N domain_messages=N", any
 * subset, any order, separated by white space or commas.  false (and
 * *bad pointing at the offending word) on anything else. */
bool policy_limits_parse(const char *value, policy_limits *l, const char **bad);

#endif
