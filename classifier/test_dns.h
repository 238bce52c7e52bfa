/* test_dns.h - the classifier's DNS tests of one message: RBL scoring
 * lists over the client IP (spam_rbl_lists, hits RBL_<ZONE>), URI
 * blocklists over the registered domains of the links in the body
 * (spam_uribl_lists, hits URIBL_<ZONE>), HELO_NO_MATCH (the HELO name's
 * A/AAAA records do not include the client IP), SPF of the envelope
 * sender (lib/spf.h, hits SPF_<RESULT>, and the Received-SPF header
 * field) and DKIM signatures (spam_dkim_verify; dkim.h verifies, the key
 * records are asked here; hits DKIM_*), both methods' results in one
 * Authentication-Results header field.
 *
 * Asynchronous over lib/dns.h: the classify loop (classify_loop.c) owns
 * the resolver and its sockets; a scan owns its lookups:
 *
 *   test_dns_t *t = test_dns_start(cfg, dns, env, mime, host, done, job);
 *   ... the loop runs dns_process; done(job) once every answer is in ...
 *   test_dns_hits(t, scoring, add, job)   the hits, with their scores
 *   test_dns_free(&t)                     abandons what is still asked
 *
 * The scan copies what it needs from env, mime and the lists, so those
 * may go (a reload) while it runs.
 */
#ifndef CORREIO_CLASSIFIER_TEST_DNS_H
#define CORREIO_CLASSIFIER_TEST_DNS_H

#include <stdbool.h>
#include <stddef.h>
#include "config.h"
#include "dns.h"
#include "mime.h"
#include "scoring.h"
#include "wire.h"

#define TEST_DNS_MAX_URIBL 20      /* URI blocklist lookups per message */

/* One DNS list of spam_rbl_lists / spam_uribl_lists. */
typedef struct test_dns_list {
    char   *zone;                  /* "dnsbl.test" */
    char   *expect;                /* "127.0.0.2": only this answer counts; NULL: any */
    double  score;
    char   *hit;                   /* "RBL_DNSBL_TEST" */
} test_dns_list;

typedef struct test_dns_lists {
    test_dns_list *v;
    size_t         n;
} test_dns_lists;

/* test_dns_lists_parse - items "zone=score" or "zone=127.0.0.x=score"
 * into *out with hit names prefix_ZONE; false and *err (malloc'd) on a
 * bad item. */
bool test_dns_lists_parse(const char *const *items, const char *prefix, test_dns_lists *out,
                          char **err);
void test_dns_lists_free(test_dns_lists *l);

/* test_dns_hit_name - prefix "_" zone upper-cased, every byte other than
 * a letter or digit made "_" ("RBL", "dnsbl.test" -> "RBL_DNSBL_TEST");
 * malloc'd. */
char *test_dns_hit_name(const char *prefix, const char *zone);
/* test_dns_registrable - the registered domain of host, approximated: the
 * last two labels, or three when the second-level label is a generic one
 * under a two-letter country code (co.uk, com.br, ne.jp).  Points into
 * host; NULL for an address, a single label or an empty name. */
const char *test_dns_registrable(const char *host);
/* test_dns_reverse_ip - ip as a DNS list query prefix ("127.0.0.30" ->
 * "30.0.0.127", IPv6 as 32 nibbles; IPv4-mapped IPv6 as IPv4) into out;
 * false when ip is no address or out is too small. */
bool test_dns_reverse_ip(const char *ip, char *out, size_t size);
/* test_dns_same_ip - are a and b the same address (IPv4-mapped IPv6
 * counts as IPv4; "[..]" and "IPv6:" of an address literal allowed)? */
bool test_dns_same_ip(const char *a, const char *b);

/* The lists, parsed once per configuration. */
typedef struct test_dns_config {
    test_dns_lists rbl, uribl;
    bool           dkim;           /* spam_dkim_verify */
} test_dns_config;

/* test_dns_config_load - spam_rbl_lists, spam_uribl_lists and
 * spam_dkim_verify; false and
 * *err on a mistake (out is then empty). */
bool test_dns_config_load(const config_t *cfg, test_dns_config *out, char **err);
void test_dns_config_free(test_dns_config *c);

typedef struct test_dns test_dns_t;
typedef void (*test_dns_done_fn)(void *arg);

/* test_dns_start - start every lookup env calls for; done(arg) runs once
 * from dns_process when the last answer is in (never from here: a scan
 * with nothing to ask has test_dns_pending 0 and done never runs).
 * receiver_host names this host in the SPF header fields. */
test_dns_t *test_dns_start(const test_dns_config *cfg, dns_t *dns, const Envelope *env,
                           const mime_msg *mime, const char *receiver_host,
                           test_dns_done_fn done, void *arg);
/* test_dns_pending - lookups (and SPF checks) still waiting. */
size_t test_dns_pending(const test_dns_t *t);
/* test_dns_hits - call add(arg, name, score) for every hit so far, with
 * the scores of the lists and of the table (scoring_hit_score). */
void test_dns_hits(const test_dns_t *t, const scoring_t *s,
                   void (*add)(void *arg, const char *name, double score), void *arg);
/* test_dns_headers - the header fields of the checks finished so far, else
 * NULL: "Authentication-Results: HOST;\r\n\tspf=...;\r\n\tdkim=...\r\n"
 * (one folded line per result: SPF's, then one per DKIM signature) and
 * "Received-SPF: ...\r\n" when SPF ran.  Valid until the next
 * dns_process or test_dns_free. */
const char *test_dns_headers(const test_dns_t *t);
/* test_dns_free - abandon what is still asked, free *t; NULL is fine. */
void test_dns_free(test_dns_t **t);

#endif
