/* dns_cache.h - DNS answers kept for their TTL, shared by the lookups of
 * one thread (dns_cache_size, dns_cache_max_ttl, dns_negative_cache_ttl).
 *
 * The cache is attached to resolvers, and every dns_query on them goes
 * through it, so callers (smtpd_dns, smtpd_rbl, outbound) keep using
 * lib/dns.h as they did:
 *
 *   dns_cache_t *c = dns_cache_new(size, max_ttl_s, neg_ttl_s);
 *   dns_set_cache(d, c);            (several resolvers may share c)
 *   dns_query(d, name, type, cb, arg);
 *
 * A hit is answered like any query: its callback runs from the next
 * dns_process (dns_timeout_ms says 0 meanwhile), never from inside
 * dns_query, and dns_abandon works on it; the reply's ttl is what is left
 * of the TTL.  A miss goes to the servers, and the answer is kept when
 * it comes (even when the query was abandoned meanwhile).
 *
 * What is kept, keyed by (type, name) without case or trailing dot:
 *   DNS_OK        for the smallest TTL of its records, at most max_ttl;
 *                 a TTL of 0 is not kept (RFC 1035 3.2.1)
 *   DNS_NOTFOUND  for the zone's negative TTL (RFC 2308: the SOA's TTL or
 *                 MINIMUM, whichever is smaller) when the reply carried
 *                 the SOA, else neg_ttl; never longer than neg_ttl
 *   DNS_TEMPFAIL  never: the next lookup asks again
 * At most `size` entries; a new one pushes out the oldest (expired or
 * not).  Expired entries are dropped when met.  Every operation is O(1).
 *
 * Not thread-safe: one cache per thread (ingress: the event loop;
 * delivery: the outbound engine).  The clock is passed in (monotonic
 * milliseconds), so tests can run it.
 */
#ifndef CORREIO_DNS_CACHE_H
#define CORREIO_DNS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dns.h"

typedef struct dns_cache dns_cache_t;

/* dns_cache_new - a cache of at most size entries (0: one that keeps
 * nothing), positive answers kept at most max_ttl_s seconds, negative
 * ones at most neg_ttl_s (0: none kept). */
dns_cache_t *dns_cache_new(size_t size, unsigned max_ttl_s, unsigned neg_ttl_s);
/* dns_cache_free - free *c and every entry; *c becomes NULL.  Detach it
 * from the resolvers first (or free them first). */
void dns_cache_free(dns_cache_t **c);

/* dns_cache_get - a fresh answer for (type, name) at now_ms: true and
 * *copy (malloc'd, the caller frees it with dns_cache_reply_free) whose
 * ttl is the seconds left (at least 1), or false on a miss. */
bool dns_cache_get(dns_cache_t *c, dns_type type, const char *name, int64_t now_ms,
                   dns_reply **copy);
/* dns_cache_put - keep reply (copied) for (type, name) as described
 * above; replaces an older entry for the same key.  A reply that may not
 * be kept (TEMPFAIL, TTL 0) also removes the older entry. */
void dns_cache_put(dns_cache_t *c, dns_type type, const char *name, const dns_reply *reply,
                   int64_t now_ms);
/* dns_cache_reply_free - free a copy from dns_cache_get; NULL is fine. */
void dns_cache_reply_free(dns_reply **r);

/* dns_cache_stats - entries held now, lookups answered and missed. */
void dns_cache_stats(const dns_cache_t *c, size_t *entries, uint64_t *hits, uint64_t *misses);

#endif
