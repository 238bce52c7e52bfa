/* dkim.h - DKIM signature verification (RFC 6376) of one message with
 * OpenDKIM's library (libopendkim).  The library never touches the
 * network: the caller fetches the key records (the classifier asks them
 * over lib/dns.h, see test_dns.c) and hands them in; libopendkim's key
 * lookup is a callback that only reads what was handed in.
 *
 *   dkim_check_t *c = dkim_check_new("4F2A1B", msg, len);  header and body hashed
 *   for (i = 0; i < dkim_check_keys(c); i++)
 *       ask TXT dkim_check_key_name(c, i), then
 *       dkim_check_key_answer(c, i, DKIM_CHECK_KEY_FOUND, "v=DKIM1; p=...")
 *   dkim_check_finish(c);                     verify with those keys
 *   for (i = 0; i < dkim_check_sigs(c); i++)  one result per signature
 *       dkim_check_get(c, i)->result ...
 *   dkim_check_free(&c);
 *
 * One DKIM_LIB per process, made at the first dkim_check_new and kept
 * (dkim_check_lib_free drops it, for tests and leak checkers).  Bounds: at
 * most DKIM_CHECK_MAX_SIGS signatures are looked at (the others are
 * ignored); a signature the library cannot parse is a permerror, never a
 * crash.  The message's size is bounded by whoever accepted it.
 */
#ifndef CORREIO_CLASSIFIER_DKIM_H
#define CORREIO_CLASSIFIER_DKIM_H

#include <stdbool.h>
#include <stddef.h>

#define DKIM_CHECK_MAX_SIGS  5      /* signatures verified per message */
#define DKIM_CHECK_MAX_KEY   4096   /* longer key records count as broken */

/* A signature's result, as RFC 8601 names them in Authentication-Results. */
typedef enum {
    DKIM_CHECK_PASS,
    DKIM_CHECK_FAIL,        /* bad signature or body hash */
    DKIM_CHECK_PERMERROR,   /* broken signature, no key record, broken key */
    DKIM_CHECK_TEMPERROR,   /* the key lookup failed for now */
} dkim_check_result;

/* What a key lookup gave. */
typedef enum {
    DKIM_CHECK_KEY_FOUND,       /* text: the TXT record, strings joined */
    DKIM_CHECK_KEY_NONE,        /* NXDOMAIN or no TXT record */
    DKIM_CHECK_KEY_TEMPFAIL,    /* timeout, SERVFAIL */
} dkim_check_key;

typedef struct dkim_check_sig {
    dkim_check_result result;
    bool        no_key;     /* permerror because the key record does not exist */
    const char *domain;     /* d=, lower-cased; "" when the signature has none */
    const char *selector;   /* s=; "" when none */
    const char *b;          /* the first 8 characters of b= ("" if none) */
    const char *reason;     /* for logs: "ok", "bad signature", "no key", ... */
} dkim_check_sig;

typedef struct dkim_check dkim_check_t;

/* dkim_check_new - take msg (the whole message as the client sent it,
 * CRLF line ends, header and body), hash it for every DKIM-Signature it
 * carries, and list the key records needed.  id names the message in
 * logs.  Never NULL: a message the library cannot take (no From:, a
 * library failure) gives one permerror signature when it is signed, none
 * otherwise. */
dkim_check_t *dkim_check_new(const char *id, const char *msg, size_t len);
/* dkim_check_keys - how many key records to ask (distinct selector and
 * domain pairs, at most DKIM_CHECK_MAX_SIGS). */
size_t dkim_check_keys(const dkim_check_t *c);
/* dkim_check_key_name - the TXT name of key i: "SELECTOR._domainkey.DOMAIN". */
const char *dkim_check_key_name(const dkim_check_t *c, size_t i);
/* dkim_check_key_answer - what the lookup of key i gave (text: FOUND only;
 * copied). */
void dkim_check_key_answer(dkim_check_t *c, size_t i, dkim_check_key status,
                           const char *text);
/* dkim_check_finish - verify every signature with the keys handed in
 * (a key never answered counts as a temporary failure).  Once. */
void dkim_check_finish(dkim_check_t *c);
/* dkim_check_sigs - the signatures looked at (0 for an unsigned message);
 * valid after dkim_check_finish. */
size_t dkim_check_sigs(const dkim_check_t *c);
const dkim_check_sig *dkim_check_get(const dkim_check_t *c, size_t i);
/* dkim_check_result_name - "pass", "fail", "permerror", "temperror". */
const char *dkim_check_result_name(dkim_check_result r);
/* dkim_check_aligned - is domain (a signature's d=) the From: domain or a
 * parent of it ("example.com" for "news.example.com"), any case? */
bool dkim_check_aligned(const char *domain, const char *from_domain);
/* dkim_check_from_domain - the domain of the first address of a From:
 * header field's value, lower-cased, malloc'd; NULL when there is none. */
char *dkim_check_from_domain(const char *from_value);
/* dkim_check_free - free *c; NULL is fine. */
void dkim_check_free(dkim_check_t **c);
/* dkim_check_lib_free - drop the process's DKIM_LIB (no check may be
 * alive); the next dkim_check_new makes a new one. */
void dkim_check_lib_free(void);

#endif
