/* smtp_client.h - the client side of one SMTP or LMTP connection, as a
 * non-blocking state machine: the outbound engine (outbound.c) owns the
 * socket and the event loop, connects, and calls smtp_client_io when the
 * socket is ready; this module speaks the protocol.
 *
 * A connection goes: greeting -> EHLO (HELO when EHLO gets a 5xx; LHLO for
 * LMTP) -> STARTTLS when offered and the policy wants it, then EHLO again
 * -> AUTH PLAIN or LOGIN when credentials are given -> READY.  Then any
 * number of transactions, each: MAIL FROM (SIZE, BODY, SMTPUTF8, RET,
 * ENVID when the peer offers them) -> RCPT TO per recipient (NOTIFY,
 * ORCPT when the peer offers DSN) -> DATA -> the content, dot-stuffed,
 * read straight from the envelope's buffers (nothing is copied whole) ->
 * the final dot -> READY again.  With PIPELINING, MAIL, every RCPT and
 * DATA go in one write.  With LMTP, each accepted recipient gets its own
 * reply after the dot.  A transaction that ended with a failure of its
 * own (MAIL refused, no recipient taken) sends RSET before the next one.
 *
 * Every step has its deadline (smtp_client_deadline_ms); a reply line
 * longer than SMTP_CLIENT_LINE_MAX or a reply that is not
 * "DDD[ -]text" fails the connection with a clear error.
 */
#ifndef CORREIO_DELIVERY_SMTP_CLIENT_H
#define CORREIO_DELIVERY_SMTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "tls.h"
#include "wire.h"

#define SMTP_CLIENT_LINE_MAX  2048      /* one reply line, CRLF included */
#define SMTP_CLIENT_REPLY_MAX 512       /* reply text kept, joined lines */

typedef enum {
    SMTP_TLS_NONE,      /* never STARTTLS */
    SMTP_TLS_MAY,       /* STARTTLS when offered; a failed handshake is
                         * retried on a new connection without TLS (by the
                         * engine: smtp_client_failure says so) */
    SMTP_TLS_ENCRYPT,   /* STARTTLS required, certificate not checked */
    SMTP_TLS_VERIFY,    /* STARTTLS required, certificate must verify for
                         * tls_server_name */
} smtp_tls_level;

/* Per-stage timeouts, in milliseconds (the smtp_*_timeout parameters). */
typedef struct smtp_timeouts {
    int64_t helo, starttls, mail, rcpt, data_init, data_xfer, data_done, quit;
} smtp_timeouts;

typedef struct smtp_client_opts {
    bool              lmtp;             /* LHLO, per-recipient replies after DATA */
    const char       *helo_name;        /* what EHLO/HELO/LHLO send */
    smtp_tls_level    tls_level;
    tls_ctx_t        *tls_ctx;          /* client context; NULL: no TLS at all */
    const char       *tls_server_name;  /* SNI and the name verified */
    const char       *auth_user;        /* NULL: no AUTH */
    const char       *auth_pass;
    bool              auth_needs_tls;   /* smtp_sasl_tls_required */
    const char       *peer;             /* "mx.example.com[192.0.2.1]:25", for texts */
    smtp_timeouts     timeouts;
} smtp_client_opts;

/* One server reply as the texts and DSNs need it. */
typedef struct smtp_reply {
    int         code;           /* 250, 450, 550...; 0 when no reply came
                                 * (lost connection, timeout, TLS failure) */
    char        status[16];     /* enhanced status from the reply, or derived
                                 * from the code ("4.0.0"/"5.0.0"), or set by
                                 * the client ("4.4.2" lost connection) */
    char        text[SMTP_CLIENT_REPLY_MAX];   /* "550 5.1.1 <a@b>: no such
                                 * user", lines joined with a space; or the
                                 * client's own words for code 0 */
    const char *stage;          /* static: "MAIL FROM", "RCPT TO", "DATA",
                                 * "end of DATA", "EHLO", "STARTTLS", "AUTH",
                                 * "greeting", "QUIT" */
} smtp_reply;

/* One transaction.  Everything is only read, and must stay valid until
 * the transaction is over (smtp_client_io returned SMTP_CLIENT_DONE or
 * SMTP_CLIENT_FAILED). */
typedef struct smtp_txn {
    const char                *sender;       /* "" for <> */
    size_t                     n_rcpt;
    const char *const         *rcpt;         /* addresses */
    const uint32_t            *notify;       /* Notify bits per recipient (0: not given) */
    const char *const         *orcpt;        /* "rfc822;addr" or "" per recipient */
    Correio__BodyType          body_type;
    bool                       smtputf8;
    Correio__DsnRet            ret;
    const char                *envid;        /* "" if none */
    const ProtobufCBinaryData *headers;      /* prepended fields, each with CRLF */
    size_t                     n_headers;
    const char                *extra_header; /* one more field with CRLF written
                                              * first (e.g. Delivered-To for
                                              * LMTP), or NULL */
    const void                *body;         /* the client's bytes, CRLF lines */
    size_t                     body_len;
    const char *const         *drop_headers; /* field names (any case) left out
                                              * of the body's header section
                                              * (Envelope.drop_headers); the
                                              * prepended ones are never dropped */
    size_t                     n_drop_headers;
    const char                *subject_tag;  /* spam tag written into the body's
                                              * Subject (subject_tag.h), NULL or
                                              * "" for none: the same for every
                                              * recipient of the transaction */
} smtp_txn;

typedef enum {
    SMTP_CLIENT_RUNNING,    /* waiting: watch the socket as smtp_client_wants says */
    SMTP_CLIENT_READY,      /* session set up, or transaction over: give it
                             * the next with smtp_client_start, or quit */
    SMTP_CLIENT_DONE,       /* the transaction is over: read the recipients'
                             * replies; the state is READY afterwards */
    SMTP_CLIENT_FAILED,     /* the connection is unusable; smtp_client_failure
                             * says why (a transaction under way has every
                             * undecided recipient failed with that reply) */
    SMTP_CLIENT_CLOSED,     /* QUIT done (or the peer closed after it) */
} smtp_client_status;

typedef struct smtp_client smtp_client_t;

/* smtp_client_new - speak on the connected non-blocking socket fd (not
 * owned: the caller closes it after smtp_client_free).  Starts by
 * waiting for the greeting. */
smtp_client_t *smtp_client_new(int fd, const smtp_client_opts *opts);
void smtp_client_free(smtp_client_t **c);

/* smtp_client_io - the socket is readable and/or writable (both false:
 * just look at the clock).  Returns the new status. */
smtp_client_status smtp_client_io(smtp_client_t *c, bool readable, bool writable);
/* smtp_client_wants - what to watch: bit 1 readable, bit 2 writable. */
#define SMTP_WANT_READ  1
#define SMTP_WANT_WRITE 2
int smtp_client_wants(const smtp_client_t *c);
/* smtp_client_deadline_ms - monotonic time (time_mono_ms) when the step
 * under way times out; after it, smtp_client_io returns FAILED with
 * "conversation with PEER timed out while sending X" (or "...receiving
 * the greeting").  INT64_MAX when idle in READY. */
int64_t smtp_client_deadline_ms(const smtp_client_t *c);

/* smtp_client_start - begin txn (state must be READY).  Recipients the
 * peer cannot take for a reason known before sending (8-bit content to a
 * peer without 8BITMIME: 5.6.3; SMTPUTF8 needed and not offered: 5.6.7;
 * larger than the peer's SIZE: 5.3.4) are failed at once, without a
 * round trip, and smtp_client_io then returns DONE (until it is called,
 * smtp_client_wants asks for writable and the deadline is already past,
 * so a loop calls it at once). */
void smtp_client_start(smtp_client_t *c, const smtp_txn *txn);
/* smtp_client_rcpt_reply - after DONE (or FAILED during a transaction):
 * recipient i's outcome; 2xx delivered, 4xx deferred, 5xx failed; code 0
 * (no reply) counts as deferred. */
const smtp_reply *smtp_client_rcpt_reply(const smtp_client_t *c, size_t i);
/* smtp_client_peer_dsn - did the peer advertise DSN (so NOTIFY went on)? */
bool smtp_client_peer_dsn(const smtp_client_t *c);
/* smtp_client_failure - after FAILED: the reply or the client's reason.
 * tls_failed is set when the failure was in STARTTLS or the handshake
 * (with SMTP_TLS_MAY the engine may then retry without TLS). */
const smtp_reply *smtp_client_failure(const smtp_client_t *c, bool *tls_failed);
/* smtp_client_quit - send QUIT (state must be READY); io then ends in
 * CLOSED (or FAILED, which the caller may ignore). */
void smtp_client_quit(smtp_client_t *c);

/* What the session found, for logs and the Received:-like texts. */
const char *smtp_client_tls_protocol(const smtp_client_t *c);   /* "" without TLS */
const char *smtp_client_tls_cipher(const smtp_client_t *c);
unsigned smtp_client_transactions(const smtp_client_t *c);      /* finished so far */

#endif
