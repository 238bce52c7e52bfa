/* content_filter.h - IceWarp-style content filters: rules of the form
 * "when CONDITIONS then ACTIONS" from content_filters_file, run by the
 * router once every recipient has its route.
 *
 * The rule file, line-based ('#' starts a comment; a rule may span lines):
 *
 *   rule "X-Auth on outgoing mail"
 *     when recipient is remote
 *     then add header "X-Auth: %%Auth_Email%%"
 *
 * Conditions (keywords in any case), combined with and, or, not, ( ):
 *   sender is ADDR | sender matches /re/       (reverse path; <> is null)
 *   recipient is ADDR | recipient matches /re/
 *   recipient is local | recipient is remote   (local: a MAILDIR or LMTP
 *                                               route; remote: RELAY)
 *   header NAME matches /re/   (prepend_headers and the body's header
 *                               section, unfolded; any field of that name)
 *   size over N[k|m]           (the client's message, in bytes)
 *   client in CIDR[,CIDR...]   (cidr.h)
 *   auth user is ADDR | authenticated
 *   spam score over N
 * Regular expressions are PCRE2, case-insensitive.  A rule without "when"
 * always matches.
 * Actions, one after another, ';' between them optional:
 *   add header "Name: value"   (once per message; %%Auth_Email%%,
 *                               %%Sender_Email%%, %%Recipient_Email%%
 *                               (the first matching recipient),
 *                               %%Client_IP%%, %%Subject%% are replaced;
 *                               the result loses CR, LF and NUL and is
 *                               folded to lines of at most 998 bytes)
 *   edit header "Name: value"  (as add header, and every Name field of
 *                               the client's header section is left out
 *                               on delivery: Envelope.drop_headers; a
 *                               field the client did not send is just
 *                               added; fields correio's stages or filters
 *                               prepended stay)
 *   copy to ADDR               (one more recipient, NOTIFY=NEVER)
 *   redirect to ADDR           (replaces each matching recipient)
 *   discard                    (the matching recipients are discarded)
 *   set spam                   (the message counts as spam from now on)
 *   stop                       (no further rules)
 * Recipient conditions are evaluated per recipient: a rule fires when its
 * condition holds for at least one recipient; copy, redirect and discard
 * apply to the recipients it holds for, header actions and set spam to
 * the message.  Recipients a filter adds are not looked at again.
 */
#ifndef CORREIO_ROUTER_CONTENT_FILTER_H
#define CORREIO_ROUTER_CONTENT_FILTER_H

#include <stdbool.h>
#include <stddef.h>
#include "wire.h"

/* The rules of one file, in order; immutable once loaded. */
typedef struct content_filter content_filter_t;

/* content_filter_load - read and check the rule file at path.  NULL, with
 * *err (malloc'ed, the caller frees it) as "PATH:LINE: what is wrong",
 * when it cannot be read or a rule does not parse. */
content_filter_t *content_filter_load(const char *path, char **err);
/* content_filter_parse - the same for text in memory; name stands for
 * the file in error messages. */
content_filter_t *content_filter_parse(const char *name, const char *text, size_t len,
                                       char **err);
/* content_filter_free - free *cf and set it to NULL; NULL is fine. */
void content_filter_free(content_filter_t **cf);
/* content_filter_count - how many rules. */
size_t content_filter_count(const content_filter_t *cf);

/* One recipient as the filters see it. */
typedef struct content_filter_rcpt {
    const char *address;
    bool        local;      /* routed to MAILDIR or LMTP */
} content_filter_rcpt;

/* What the filters decided for one recipient. */
typedef enum {
    CONTENT_FILTER_KEEP = 0,
    CONTENT_FILTER_DISCARD,
    CONTENT_FILTER_REDIRECT,    /* to redirect[i] */
} content_filter_fate;

/* What the filters decided; every string malloc'ed and owned here. */
typedef struct content_filter_result {
    char  **headers;            /* complete fields, each ending in CRLF */
    size_t  n_headers;
    char  **drop;               /* field names to leave out of the client's
                                 * header section, no duplicates (any case) */
    size_t  n_drop;
    char  **copies;             /* extra recipients, in order, no duplicates */
    size_t  n_copies;
    content_filter_fate *fate;  /* one per recipient given */
    char  **redirect;           /* one per recipient: the new address or NULL */
    size_t  n_rcpt;             /* how many recipients fate and redirect hold */
    bool    spam;               /* a rule said set spam */
    size_t  n_fired;            /* how many rules fired */
} content_filter_result;

/* content_filter_apply - run the rules over env (sender, client, verdict,
 * prepend_headers, body) with the n recipients rcpts, logging one line
 * per rule that fires ("QID: filter rule=\"name\" to=<first>").  out is
 * filled (free it with content_filter_result_free); env is not changed. */
void content_filter_apply(const content_filter_t *cf, const Envelope *env,
                          const content_filter_rcpt *rcpts, size_t n,
                          content_filter_result *out);
void content_filter_result_free(content_filter_result *res);

#endif
