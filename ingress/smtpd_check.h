/* smtpd_check.h - Postfix's SMTP restriction lists, evaluated for one
 * session: smtpd_client/helo/sender/relay/recipient/data_restrictions with
 * first-match semantics, the check_*_access tables, and the implicit
 * reject_unlisted_recipient.
 *
 * The evaluation is synchronous over facts the session supplies.  A check
 * that needs DNS (reject_unknown_sender_domain and friends) asks the
 * session through domain_fact(); when the answer is not there yet the
 * evaluation returns CHECK_WAIT and the session runs the command again
 * once the lookup is done.  Results of the client, helo and sender lists
 * are remembered (per session, per HELO, per MAIL), as is "defer if
 * permit" (a temporary DNS failure that answers 450 only when nothing
 * else rejects).
 *
 * DNS lists (reject_rbl_client, reject_rhsbl_sender, permit_dnswl_client)
 * ask the session's smtpd_rbl the same way (CHECK_WAIT until the answer
 * is there).  rbl_bypass exempts clients and senders from the reject_*
 * ones.  A DNS list's refusal is recorded in the check_session: the zone
 * in rbl_listed (for the intrusion report) and, with rbl_close, that the
 * session must hang up after the reply.
 *
 * With smtpd_delay_reject = no the client list runs before the greeting
 * (smtpd_check_connect); a refusal there becomes the greeting, and the
 * session answers every command but QUIT with 503 (access_denied), as
 * Postfix and RFC 5321 3.1 do.
 */
#ifndef CORREIO_SMTPD_CHECK_H
#define CORREIO_SMTPD_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "config.h"
#include "ingress.h"
#include "restriction.h"

#define CHECK_REPLY_MAX 600

typedef struct smtpd_checks smtpd_checks_t;

/* smtpd_checks_open - parse the restriction lists of cfg and open the
 * tables they name (and smtpd_sender_login_maps,
 * smtpd_sender_size_limit_maps).  NULL and *err (malloc'd) when a table
 * cannot be opened or has a bad line. */
smtpd_checks_t *smtpd_checks_open(const config_t *cfg, char **err);
void smtpd_checks_free(smtpd_checks_t **c);

/* What a DNS-based check knows about a name. */
typedef enum {
    FACT_NONE,          /* not asked */
    FACT_PENDING,       /* a lookup is running */
    FACT_OK,
    FACT_NOTFOUND,
    FACT_NULLMX,        /* RFC 7505: the domain accepts no mail */
    FACT_TEMPFAIL,
} dns_fact;

typedef struct check_memo {
    int  state;                     /* 0 not evaluated, else CHECK_* */
    char reply[CHECK_REPLY_MAX];    /* the rejection */
    char defer[CHECK_REPLY_MAX];    /* a defer_if_permit, "" if none */
    bool rbl;                       /* the rejection is a DNS list's */
    bool per_mail;                  /* the verdict depended on the sender
                                     * (rbl_bypass): evaluate again at MAIL */
} check_memo;

struct smtpd_rbl;

/* The session's side of a check: facts and memory. */
typedef struct check_session {
    ingress_t  *ig;
    const struct sockaddr *addr;
    const char *ip;
    const char *client_name;        /* verified name or "unknown" */
    const char *reverse_name;       /* PTR name or "unknown" */
    dns_fact    client_fact;        /* OK, NOTFOUND (no name/no match), TEMPFAIL */
    dns_fact    reverse_fact;
    const char *helo;               /* NULL before HELO/EHLO */
    const char *sender;             /* NULL before MAIL, "" for <> */
    const char *auth_user;          /* NULL unless authenticated */
    bool        tls;
    bool        pipelined;          /* sent input ahead of a reply it needed */
    /* the MX-or-address status of domain; may start a lookup (then
     * FACT_PENDING, and the session will run the command again) */
    dns_fact  (*domain_fact)(void *sess, const char *domain);
    /* a warn_if_reject or WARN: log it as the session does */
    void      (*warn)(void *sess, const char *what, const char *text);
    void       *sess;
    struct smtpd_rbl *rbl;          /* DNS list lookups; NULL: nothing is listed */
    check_memo  client, helo_memo, sender_memo;
    /* set by the checks */
    char        rbl_listed[RESTRICTION_ZONE_MAX + 1];  /* the DNS list that refused
                                     * the client or sender; "" none (stays set) */
    bool        rbl_reply;          /* the CHECK_REJECT just returned is a DNS
                                     * list's refusal (cleared by each check) */
    bool        close_after_reply;  /* ... and rbl_close: hang up after sending it */
    bool        access_denied;      /* the client list refused at connect */
    /* actions for the whole message: from access tables (HOLD, DISCARD) */
    bool        hold, discard;
    char        action_text[512];
} check_session;

typedef enum {
    CHECK_OK = 1,       /* go on */
    CHECK_REJECT,       /* reply holds "NNN d.d.d text" */
    CHECK_WAIT,         /* a DNS answer is needed; run the command again */
} check_status;

/* Each returns the decision for one SMTP command; on CHECK_REJECT the
 * reply (no CRLF) is in reply.  With smtpd_delay_reject (the default) the
 * client, helo and sender lists wait for RCPT TO. */
check_status smtpd_check_helo(check_session *cs, char *reply);
/* smtpd_check_connect - before the greeting: with smtpd_delay_reject = no,
 * the client list (CHECK_REJECT: reply is the greeting, and
 * access_denied is set); otherwise CHECK_OK at once.  A defer_if_permit
 * is not acted on here: it answers the first command, as before. */
check_status smtpd_check_connect(check_session *cs, char *reply);
check_status smtpd_check_mail(check_session *cs, char *reply);
check_status smtpd_check_rcpt(check_session *cs, const char *rcpt, char *reply);
check_status smtpd_check_data(check_session *cs, char *reply);

/* smtpd_check_new_helo / smtpd_check_new_mail - forget the helo (and
 * sender) results: a new HELO, a new MAIL, RSET. */
void smtpd_check_new_helo(check_session *cs);
void smtpd_check_new_mail(check_session *cs);

/* smtpd_check_size_limit - the largest message sender (or the
 * authenticated login, looked up first) may send, from
 * smtpd_sender_size_limit_maps (address, then domain); 0 when no entry. */
size_t smtpd_check_size_limit(ingress_t *ig, const char *login, const char *sender);

#endif
