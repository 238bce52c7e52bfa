/* spf.h - SPF (RFC 7208) check_host() over the asynchronous resolver of
 * lib/dns.h: no blocking, no threads, driven by the caller's event loop
 * like any dns_query.
 *
 *   spf_check_t *c = spf_check(dns, "192.0.2.1", "mx.example.org",
 *                              "alice@example.com", "mx.example.net", done, sess);
 *   ... the loop runs dns_process ...
 *   done(sess, &answer)  runs once, never from inside spf_check
 *   ... session gone first: spf_abandon(&c) (done will not run)
 *
 * The whole evaluation is here: record selection, every mechanism (all,
 * include, a, mx, ptr, ip4, ip6, exists) with CIDR lengths and
 * qualifiers, redirect= and exp=, macros, and the limits of RFC 7208
 * 4.6.4 (10 DNS-querying terms, 10 MX and 10 PTR names, 2 void lookups).
 * The record parser and the macro expander are exposed for the tests and
 * the fuzz target.
 */
#ifndef CORREIO_SPF_H
#define CORREIO_SPF_H

#include <stdbool.h>
#include <stddef.h>

#include "dns.h"

typedef enum {
    SPF_NONE,           /* no SPF record (or no valid domain to check) */
    SPF_NEUTRAL,
    SPF_PASS,
    SPF_FAIL,
    SPF_SOFTFAIL,
    SPF_TEMPERROR,      /* a DNS lookup failed for now */
    SPF_PERMERROR,      /* a broken record, or a limit exceeded */
} spf_result;

/* Everything the callback gets; the strings belong to the check and are
 * valid only during the call. */
typedef struct spf_answer {
    spf_result  result;
    const char *domain;         /* the domain checked (sender's or HELO's) */
    const char *mechanism;      /* the top-level term that matched, as
                                 * written ("ip4:192.0.2.0/24", "-all"),
                                 * "default" when none did, NULL for
                                 * none/temperror/permerror */
    const char *explanation;    /* fail: the expanded exp= text, or NULL */
    const char *problem;        /* temperror/permerror: what went wrong */
    const char *received_spf;   /* the value of a "Received-SPF:" header
                                 * (RFC 7208 9.1), one line, printable */
    const char *auth_results;   /* "spf=pass smtp.mailfrom=a@example.com"
                                 * for an Authentication-Results header */
} spf_answer;

typedef void (*spf_cb)(void *arg, const spf_answer *answer);
typedef struct spf_check spf_check_t;

/* spf_check - start check_host(ip, domain of sender, sender).  ip is the
 * client address in text form (IPv4-mapped IPv6 counts as IPv4); helo the
 * HELO/EHLO name; sender the MAIL FROM address ("" or NULL: the null
 * sender, checked as postmaster@helo); receiver_host names this host in
 * the header (NULL: "unknown").  cb runs once, later, from dns_process;
 * the check frees itself after cb returns, so the handle is valid until
 * cb runs or spf_abandon is called.  Never NULL. */
spf_check_t *spf_check(dns_t *dns, const char *ip, const char *helo, const char *sender,
                       const char *receiver_host, spf_cb cb, void *arg);
/* spf_abandon - cancel *c (its callback will not run, its lookups are
 * abandoned) and free it; *c becomes NULL.  NULL is fine. */
void spf_abandon(spf_check_t **c);

/* spf_result_name - "pass", "fail", ... as in headers and logs. */
const char *spf_result_name(spf_result r);

/* ---------------------------------------------------------- for tests */

typedef struct spf_record spf_record_t;

/* spf_record_parse - a TXT record "v=spf1 ..." into terms; NULL and *err
 * (malloc'd: what and where) on any syntax error (RFC 7208 4.6: the whole
 * record is a permerror then). */
spf_record_t *spf_record_parse(const char *text, char **err);
/* spf_record_dump - the parsed record in canonical form, one space between
 * terms: qualifier always written, CIDR lengths only when given, the
 * modifiers last ("+ip4:192.0.2.0/24 -all redirect=x.example"); malloc'd. */
char *spf_record_dump(const spf_record_t *r);
void spf_record_free(spf_record_t **r);

/* The values macros expand to (RFC 7208 7.3); NULL counts as "". */
typedef struct spf_macro_env {
    const char *s, *l, *o, *d, *i, *p, *v, *h;
    const char *c, *r, *t;      /* only in explanations */
} spf_macro_env;

/* spf_macro_expand - expand the macro-string in (RFC 7208 7.1); explain
 * allows %{c} %{r} %{t} (exp= text).  true and *out (malloc'd), or false
 * and *err (malloc'd) on a syntax error.  Not truncated: see
 * spf_domain_truncate. */
bool spf_macro_expand(const spf_macro_env *env, const char *in, bool explain, char **out,
                      char **err);
/* spf_domain_truncate - drop left labels of name (in place) until it is
 * at most 253 characters (RFC 7208 7.3); a trailing dot is removed. */
void spf_domain_truncate(char *name);

#endif
