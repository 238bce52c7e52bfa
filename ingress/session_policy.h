/* session_policy.h - what an SMTP session asks the policy service
 * (greylisting, intrusion prevention, sending limits; the routers keep
 * the state, lib/policy_client.h carries the questions) and what it does
 * with the answers.  README.md "Policy: DNSBLs, greylisting, intrusion
 * prevention, sending limits" says when each question is asked.
 *
 * Like the DNS facts of smtpd_dns.c, a question that must be answered
 * before the reply (the connection, greylisting at RCPT, the limits at
 * MAIL, the counting at the end of DATA) gives SP_WAIT the first time:
 * the session waits (W_POLICY, no input taken) and, when every answer of
 * the command is in, runs the command again (session_rerun), which now
 * finds them.  The answers are kept until the next command line
 * (session_policy_forget).
 *
 * Intrusion events are told after the reply they go with: the session
 * sends its reply, waits for the router's verdict, and if the client got
 * blocked (intrusion_close_blocked) adds a 421 and closes.
 *
 * Fail-safe: no answer within policy_timeout means 451 4.3.0 (421 at
 * connect, and close); nothing is accepted that could not be checked.
 */
#ifndef CORREIO_INGRESS_SESSION_POLICY_H
#define CORREIO_INGRESS_SESSION_POLICY_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "smtp_session.h"

/* ---------------------------------------------------------------- settings */

typedef struct policy_conf policy_conf_t;

/* policy_conf_open - the ingress's policy parameters (greylist_*,
 * intrusion_*, spamtrap_addresses, sending_*), their bypass lists and
 * sending_limit_maps.  NULL and *err (malloc'd) on a bad list item or a
 * table that cannot be opened. */
policy_conf_t *policy_conf_open(const config_t *cfg, char **err);
void policy_conf_free(policy_conf_t **p);
/* policy_conf_needs_client - does any feature ask the routers? */
bool policy_conf_needs_client(const policy_conf_t *p);

/* ---------------------------------------------------------------- a session */

typedef enum {
    SP_GO,          /* nothing to say: go on */
    SP_WAIT,        /* the session waits (s->wait is set): run the command again later */
    SP_REPLIED,     /* the reply is given (4xx/5xx, maybe closing): stop the command */
} sp_step;

/* session_policy_end - abandon what the session still waits for (at free). */
void session_policy_end(smtp_session_t *s);
/* session_policy_forget - a new command line: forget the last one's answers. */
void session_policy_forget(smtp_session_t *s);

/* session_policy_connect - before the 220: POLICY_CONNECT (intrusion
 * prevention, adaptive greylisting).  SP_REPLIED: 421 given, closing.
 * SP_WAIT also covers the tarpit delay of a blocked client. */
sp_step session_policy_connect(smtp_session_t *s);
/* session_policy_tarpit - a blocked client that was not refused: true
 * when the session now sleeps intrusion_tarpit_delay (W_TARPIT) before
 * the command runs (again). */
bool session_policy_tarpit(smtp_session_t *s);

/* session_policy_mail - after MAIL's checks (s->sender set): resolve the
 * sender's limits and ask whether it is under them. */
sp_step session_policy_mail(smtp_session_t *s);
/* session_policy_rcpt_cap - the sender's recipients limit reached?  (452 given) */
bool session_policy_rcpt_cap(smtp_session_t *s);
/* session_policy_spamtrap - rcpt is a spam trap: 550 given, the event told. */
bool session_policy_spamtrap(smtp_session_t *s, const char *rcpt);
/* session_policy_rcpt - after every restriction accepted rcpt: greylisting. */
sp_step session_policy_rcpt(smtp_session_t *s, const char *rcpt);
/* session_policy_data - end of DATA before the spool write: the SIZE
 * event and the sending limits' counting. */
sp_step session_policy_data(smtp_session_t *s);

/* Events, after the reply is given (each may make the session wait). */
/* session_policy_rejected - a command was refused with text: a DNSBL
 * listing (cs.rbl_reply, the zone in cs.rbl_listed), an unknown recipient
 * (550 5.1.1), a relay attempt ("Relay access denied"). */
void session_policy_rejected(smtp_session_t *s, const char *cmd, const char *text);
void session_policy_size(smtp_session_t *s, unsigned long long size);
void session_policy_rset(smtp_session_t *s);
void session_policy_auth_failed(smtp_session_t *s);
/* session_policy_after_reply - after the 250 to DATA: close when the
 * message's own SIZE event got the client blocked. */
void session_policy_after_reply(smtp_session_t *s);

#endif
