/* domain_pop.h - Domain POP: one remote mailbox collects the mail of a
 * whole domain (a catch-all at the provider), and correio hands each
 * message to the local users it was meant for.
 *
 * The envelope is gone by the time the message sits in the remote
 * mailbox, so the recipients are read back from the header section, in
 * tiers; the first tier that names at least one address of the domain
 * wins:
 *   1. X-Envelope-To:    2. Delivered-To:    3. X-Original-To:
 *   4. To: and Cc:, and Received: "... for <x>" unless
 *      ignore_received_for (recommended: a Received "for" may be a
 *      stranger's guess, and names only one of several recipients)
 * Only addresses in the domain count (case-insensitive); one that is not
 * a local user (exists() false) becomes forward_to.  No address at all:
 * forward_to alone.  The result has no duplicates and at most max
 * addresses (the rest go unnamed: one submission per message).
 *
 * A pure function of its inputs: no I/O, tested by
 * tests/unit/domain_pop_test.c.
 */
#ifndef CORREIO_FETCHER_DOMAIN_POP_H
#define CORREIO_FETCHER_DOMAIN_POP_H

#include <stdbool.h>
#include <stddef.h>

typedef bool (*domain_pop_exists_fn)(void *ctx, const char *address);

typedef struct domain_pop_opts {
    const char          *domain;        /* the local domain the account collects */
    const char          *forward_to;    /* where the unresolvable goes */
    bool                 ignore_received_for;
    domain_pop_exists_fn exists;        /* is this (lower-case) address a local user? */
    void                *ctx;
    size_t               max;           /* recipients at most (>= 1) */
} domain_pop_opts;

/* domain_pop_recipients - the local recipients of the message msg (len
 * bytes, header section first).  Returns how many (>= 1) and sets *out to
 * a malloc'd array of malloc'd lower-case addresses (free with
 * domain_pop_free) and *source to the header that decided ("X-Envelope-To",
 * ..., "To/Cc", or "none"). */
size_t domain_pop_recipients(const char *msg, size_t len, const domain_pop_opts *o,
                             char ***out, const char **source);
void domain_pop_free(char ***rcpts, size_t n);

#endif
