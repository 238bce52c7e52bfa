/* dns.h - asynchronous DNS lookups with c-ares, driven by the caller's
 * event loop (epoll): the resolver says which sockets to watch through a
 * callback, the loop hands their readiness back, and asks how long it may
 * sleep before timeouts must be processed.  No threads, no blocking.
 *
 *   dns_t *d = dns_new(servers, 5000, 2, watch_cb, loop, &err);
 *   dns_query_t *q = dns_query(d, "example.com", DNS_MX, on_mx, sess);
 *   ... epoll: dns_process(d, fd, readable, writable);
 *   ... timeout: dns_process(d, -1, false, false) when dns_timeout_ms says so
 *   ... session gone first: dns_abandon(&q) (the callback will not run)
 */
#ifndef CORREIO_DNS_H
#define CORREIO_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct dns dns_t;
typedef struct dns_query dns_query_t;

typedef enum { DNS_A, DNS_AAAA, DNS_MX, DNS_PTR, DNS_TXT } dns_type;

typedef enum {
    DNS_OK,             /* at least one record */
    DNS_NOTFOUND,       /* NXDOMAIN, or the name exists with no such record */
    DNS_TEMPFAIL,       /* timeout, SERVFAIL, REFUSED, no server: try later */
} dns_status;

typedef struct dns_rr {
    unsigned pref;      /* MX preference; 0 for other types */
    char    *text;      /* MX host, PTR name (no trailing dot), A/AAAA
                         * address in text form, TXT strings joined */
} dns_rr;

typedef struct dns_reply {
    dns_status  status;
    const char *error;  /* for logs when not DNS_OK: "Domain name not found" */
    bool        nxdomain;   /* DNS_NOTFOUND because the name does not exist
                             * at all (NXDOMAIN), not just lacks the type */
    unsigned    ttl;    /* smallest TTL among the records (0 if unknown) */
    unsigned    neg_ttl;    /* DNS_NOTFOUND: how long the zone lets the
                             * answer be kept (RFC 2308: its SOA's TTL or
                             * MINIMUM, the smaller); 0 when the reply had
                             * no SOA, and for other statuses */
    size_t      n;
    dns_rr     *rr;     /* MX sorted by preference (ties in random order);
                         * a null MX (RFC 7505) is one rr with pref 0 and
                         * text "" */
} dns_reply;

/* Called once per query with the reply; the reply and its strings belong
 * to the resolver and are valid only during the call. */
typedef void (*dns_cb)(void *arg, const dns_reply *reply);

/* The resolver's socket needs watching: want_read/want_write say for
 * what; both false means stop watching fd (it is about to be closed). */
typedef void (*dns_watch_cb)(void *ctx, int fd, bool want_read, bool want_write);

/* dns_new - a resolver asking servers ("IP" or "IP:port" or "[v6]:port";
 * NULL or empty: /etc/resolv.conf), each query tried `tries` times over the
 * servers in turn with timeout_ms for each try.  NULL and *err (malloc'd)
 * on a bad server list. */
dns_t *dns_new(const char *const *servers, int64_t timeout_ms, int tries,
               dns_watch_cb watch, void *ctx, char **err);
/* dns_free - cancel every query (no callbacks run) and free *d. */
void dns_free(dns_t **d);

/* dns_query - start a lookup of name (for DNS_PTR: an IPv4 or IPv6
 * address in text form).  cb runs later, from dns_process, never from
 * inside dns_query.  The handle stays valid until cb has run or
 * dns_abandon is called. */
dns_query_t *dns_query(dns_t *d, const char *name, dns_type type, dns_cb cb, void *arg);
/* dns_abandon - the caller no longer wants the answer of *q: cb will not
 * run; *q becomes NULL.  NULL is fine. */
void dns_abandon(dns_query_t **q);

/* dns_process - fd is ready (fd -1: no socket, just run timeouts). */
void dns_process(dns_t *d, int fd, bool readable, bool writable);
/* dns_timeout_ms - how long the loop may sleep before dns_process must
 * run for timeouts; -1 when no query is outstanding. */
int64_t dns_timeout_ms(dns_t *d);
/* dns_set_cache - answer queries from cache (lib/dns_cache.h) and keep
 * their answers in it; NULL detaches.  The cache is not owned: it must
 * outlive the resolver or be detached first.  Several resolvers may
 * share one cache (same thread). */
struct dns_cache;
void dns_set_cache(dns_t *d, struct dns_cache *cache);

/* dns_pending - queries outstanding (not yet called back or abandoned). */
size_t dns_pending(const dns_t *d);
/* dns_wait - for programs without an event loop (ctl, tests): process
 * until no query is outstanding. */
void dns_wait(dns_t *d);

#endif
