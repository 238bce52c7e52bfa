/* bounce.h - delivery status notifications (RFC 3464): the message that
 * tells a sender what became of some recipients of one message.
 *
 * The result is a complete message, CRLF lines: From: MAILER-DAEMON,
 * To: the original sender, Subject by kind ("Undelivered Mail Returned to
 * Sender", "Delayed Mail (still being retried)", "Successful Mail Delivery
 * Report"), Auto-Submitted: auto-replied, a multipart/report;
 * report-type=delivery-status with three parts:
 *   1. text/plain: a human explanation, one paragraph per recipient with
 *      the server's reply (Postfix's wording, "This is the mail system at
 *      host ...")
 *   2. message/delivery-status: per-message fields (Reporting-MTA,
 *      X-Postfix-Queue-ID-like X-Correio-Queue-ID, Original-Envelope-Id,
 *      Arrival-Date) and per-recipient fields (Original-Recipient when an
 *      ORCPT was given, Final-Recipient, Action, Status, Remote-MTA,
 *      Diagnostic-Code: smtp; ..., Last-Attempt-Date, Will-Retry-Until
 *      for delayed)
 *   3. message/rfc822 (the whole original, when RET=FULL or RET unset and
 *      it fits in size_limit) or text/rfc822-headers (its header only:
 *      RET=HDRS, too large, and every notice but a failure)
 * Each text field is folded and sanitised; nothing of the original can
 * break the MIME structure (the boundary is checked against the
 * original's bytes).
 */
#ifndef CORREIO_DELIVERY_BOUNCE_H
#define CORREIO_DELIVERY_BOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "wire.h"

typedef enum {
    DSN_FAILED,
    DSN_DELAYED,
    DSN_DELIVERED,
    DSN_RELAYED,        /* handed to a server that does not speak DSN */
} dsn_action;

typedef struct dsn_rcpt {
    const char *address;        /* final recipient */
    const char *orcpt;          /* DSN ORCPT as given ("rfc822;a@b"), "" if none */
    dsn_action  action;
    const char *status;         /* "5.1.1"; "" (or not a status code): the
                                 * action's own, 5.0.0, 4.0.0 or 2.0.0 */
    const char *remote_mta;     /* "mx.example.com" or "" */
    const char *diagnostic;     /* "550 5.1.1 no such user" or "" */
    const char *text;           /* the human reason when there is no
                                 * diagnostic ("mail for x loops back to
                                 * myself") */
    uint64_t    last_attempt_us;    /* 0: none */
    uint64_t    retry_until_us;     /* DSN_DELAYED: when it gives up */
} dsn_rcpt;

typedef struct dsn_report {
    dsn_action      kind;           /* what the notice is about (its
                                     * subject); every rcpt[] has it */
    const char     *reporting_mta;  /* myhostname */
    const Envelope *orig;           /* the original: queue id, sender,
                                     * envid, ret, received_at, headers, body */
    size_t          size_limit;     /* bounce_size_limit */
    size_t          n;
    const dsn_rcpt *rcpt;
    uint64_t        now_us;         /* Date: */
} dsn_report;

/* bounce_compose - the notice as one message; malloc'ed, *len its size.
 * Never NULL. */
uint8_t *bounce_compose(const dsn_report *r, size_t *len);

/* bounce_is_8bit - has msg (len bytes) a byte above 127?  A notice that
 * carries such an original must go with body_type BODY_8BITMIME (the
 * caller sets it on the notice's envelope). */
bool bounce_is_8bit(const uint8_t *msg, size_t len);

#endif
