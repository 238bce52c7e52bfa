/* routing.h - where each recipient's copy goes.
 *
 * First every recipient of an envelope is expanded through
 * virtual_alias_maps and alias_maps (alias.h); each address it becomes is
 * routed on its own, an address already in the envelope is dropped, and a
 * recipient whose expansion fails (a loop, too deep, too large) gets
 * ROUTE_ERROR "5.4.6 ...".
 *
 * Per address, in this order (the first rule that applies decides):
 *   0. a recipient in mydestination whose local part cannot safely be a
 *      directory name (empty, starting with '.', holding '/', white space,
 *      control or non-ASCII bytes) is never turned into a path: it gets
 *      ROUTE_ERROR "5.1.3 unsafe mailbox name";
 *   1. transport_maps (transport.h values), looked up as Postfix's
 *      transport(5): the full address, then the domain, then each parent
 *      domain as ".parent.domain", then "*"; every table is asked for one
 *      key before the next key is tried.  "smtp:" without a next hop means
 *      the recipient's domain;
 *   2. a domain in virtual_mailbox_domains (and not in mydestination):
 *      as 3 for an address in users_file, else ROUTE_ERROR "5.1.1 <addr>:
 *      Recipient address rejected: User unknown in virtual mailbox table";
 *   3. a domain in mydestination: local_transport (maildir: ROUTE_MAILDIR,
 *      mailbox "domain/local" under mail_root, both lower-cased as the
 *      users map is case-insensitive; lmtp:...: ROUTE_LMTP to that next
 *      hop, the mailbox recorded too);
 *   4. a domain in backup_domains (or a subdomain of one, as the ingress
 *      matches relay_domains): an address in users_file is delivered as in
 *      3; any other goes on to the domain's MX hosts (delivery drops this
 *      host and the less preferred ones from the MX list);
 *   5. anything else: relayhost when set (its next hop, never its
 *      credentials), else the recipient's domain (MX lookup).
 * (routing_decide's spam flag puts a local Maildir route into spam_folder;
 * routing_route_envelope passes false: the spam actions below decide.)
 * recipient_delimiter: in 2-4, user+foo@domain that is not itself in
 * users_file is delivered as user@domain (mailbox "domain/user"); with
 * recipient_delimiter_folder, an extension of ASCII letters, digits, '-'
 * and '_' becomes Recipient.folder (as written), unless the message is
 * spam.
 * Then content_filters_file (content_filter.h), when set, looks at the
 * routed recipients: it may discard or redirect them, add copies (routed
 * as above), mark the message spam (local Maildir routes get
 * spam_folder) and add header fields (after prepend_headers).
 * Last, when the classifier asks for it (Verdict.act), every recipient
 * that goes somewhere gets its spam action (spam_action.h: thresholds
 * per recipient, user@domain, @domain, domain in spam_action_maps):
 *   tag        Recipient.subject_tag = spam_subject_tag;
 *   folder     tagged, and a Maildir route gets Recipient.folder =
 *              spam_folder (LMTP and relay routes: tag only);
 *   quarantine tagged, route kept: delivery holds the copy;
 *   delete     ROUTE_DISCARD "spam score S >= delete score D", and the
 *              message gets one copy to spam_archive_address (routed like
 *              a content filter's copy, NOTIFY=NEVER, no spam action;
 *              the archive's own copy is never deleted).
 * An inbound message's action for a local recipient is dropped when the
 * auto-whitelist (routing_set_whitelist) says that recipient wrote to
 * the sender.  One anti-spam log line per message with a verdict:
 * "QID: spam: client=IP from=<header from> sender=<sender>
 * to=<a@x>:folder,<b@y>:none(AUTO_WHITELIST),<arch@z>:archive
 * score=7.20/5.00 reasons=[...] action=folder [bypass=size] [outbound=yes]".
 */
#ifndef CORREIO_ROUTER_ROUTING_H
#define CORREIO_ROUTER_ROUTING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "wire.h"

#define ROUTING_UNSAFE_TEXT "5.1.3 unsafe mailbox name"

/* The tables routing reads: transport_maps, users_file, virtual_alias_maps
 * and alias_maps; and the rules of content_filters_file. */
typedef struct routing routing_t;

/* routing_open - open the tables that cfg names (spam_action_maps
 * among them) and load its content filters.  NULL, with *err (malloc'ed, the caller frees it) naming the
 * table and what is wrong (for the filters "FILE:LINE: what"), when one
 * cannot be opened.  The result does not point into cfg. */
routing_t *routing_open(const config_t *cfg, char **err);
/* routing_close - free *r and set it to NULL; NULL is fine. */
void routing_close(routing_t **r);

/* Has user (a final local recipient) written to sender lately?  The
 * auto-whitelist (awl.h) answers it in the router. */
typedef bool (*routing_whitelist_fn)(void *ctx, const char *user, const char *sender);
/* routing_set_whitelist - ask fn(ctx, ...) before a spam action for an
 * inbound message's local recipient; NULL fn: nobody is whitelisted.
 * The handle does not own ctx. */
void routing_set_whitelist(routing_t *r, routing_whitelist_fn fn, void *ctx);

/* Which rule decided, for the log line. */
typedef enum {
    ROUTING_BY_SAFETY,
    ROUTING_BY_TRANSPORT_MAPS,
    ROUTING_BY_MYDESTINATION,
    ROUTING_BY_BACKUP_DOMAINS,
    ROUTING_BY_RELAYHOST,
    ROUTING_BY_DOMAIN,
    ROUTING_BY_VIRTUAL_MAILBOX_DOMAINS,
    ROUTING_BY_ALIAS,           /* alias expansion failed (loop, limits) */
    ROUTING_BY_CONTENT_FILTER,  /* content_filters_file: discard */
    ROUTING_BY_SPAM_ACTION,     /* spam_delete_score: discard */
} routing_rule;

/* One recipient's route; every string is malloc'ed and owned by it. */
typedef struct routing_decision {
    Correio__RouteKind route;   /* MAILDIR, LMTP, RELAY, DISCARD or ERROR */
    char *nexthop;              /* maildir, error, discard: the address;
                                 * relay: "domain" or a relayhost.h next hop;
                                 * lmtp: "unix:/path" or "[host]:port" */
    char *mailbox;              /* maildir, lmtp: "domain/localpart", else "" */
    char *status_text;          /* error: why; discard: the table's text; else "" */
    char *folder;               /* maildir: spam_folder for spam, else "" */
    routing_rule rule;
} routing_decision;

/* routing_decide - route address under cfg.  An address without a domain
 * (RCPT TO:<postmaster>) is taken as being at myhostname; spam says the
 * classifier marked the message as spam.  Returns 0 with *out filled, or
 * -1 (a warning logged, *out empty) when a table cannot be read now or
 * holds a value that does not parse: the recipient cannot be routed
 * until that is fixed. */
int routing_decide(routing_t *r, const config_t *cfg, const char *address, bool spam,
                   routing_decision *out);
void routing_decision_free(routing_decision *d);

/* routing_mailbox_safe - can local (a lower-cased, unquoted local part)
 * be used as one directory name under mail_root/DOMAIN/? */
bool routing_mailbox_safe(const char *local);

/* routing_route_envelope - decide every recipient of env (logging one
 * line per recipient) and encode env with the routes filled in: each
 * recipient replaced by the addresses it expands to, each with the
 * notify and orcpt of the recipient it came from and, when an alias made
 * it, Recipient.original = the address before expansion.  env is not
 * changed.  Returns fresh memory (free it), *len its size; NULL when
 * a recipient could not be routed now (routing_decide returned -1): the
 * envelope is then dropped here and the ingress, which still holds it,
 * sends it again later. */
uint8_t *routing_route_envelope(routing_t *r, const Envelope *env, const config_t *cfg,
                                size_t *len);

#endif
