/* mailbox.h - one session with a remote mailbox, POP3 (RFC 1939, UIDL,
 * STLS per RFC 2595, implicit TLS on 995, USER/PASS and AUTH PLAIN) or
 * IMAP (RFC 3501/9051 subset: CAPABILITY, STARTTLS, implicit TLS on 993,
 * LOGIN and AUTHENTICATE PLAIN, SELECT, UID FETCH 1:* (UID RFC822.SIZE)
 * for the listing, UID FETCH BODY.PEEK[], UID STORE \Deleted, UID
 * EXPUNGE or EXPUNGE, UIDVALIDITY),
 * behind one interface so that the fetcher's logic does not care which.
 *
 * Blocking I/O with a deadline on every read and write (the fetcher runs
 * each session in a worker thread; sessions share nothing, so any number
 * may run at once in different threads, one thread per session).  Every line is capped, an IMAP
 * literal or a POP3 message larger than the caller's limit is refused
 * before it is read, and garbage from the server ends the session with
 * MAILBOX_ERROR: the account is tried again later.
 */
#ifndef CORREIO_FETCHER_MAILBOX_H
#define CORREIO_FETCHER_MAILBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"

typedef enum { MAILBOX_POP3, MAILBOX_IMAP } mailbox_protocol;
typedef enum {
    MAILBOX_TLS_NONE,       /* plain text (only sensible on loopback) */
    MAILBOX_TLS_STARTTLS,   /* STLS / STARTTLS, required: no fallback to plain */
    MAILBOX_TLS_IMPLICIT,   /* TLS from the first byte (995, 993) */
} mailbox_tls;

#define MAILBOX_TIMEOUT_DEFAULT_MS 60000   /* per read/write, when 0 is given */
#define MAILBOX_LIST_MAX 1000000            /* messages in one listing */

typedef struct mailbox_server {
    const char      *host;          /* name or address */
    unsigned         port;
    mailbox_protocol protocol;
    mailbox_tls      tls;
    bool             verify;        /* check the certificate (default on) */
    const char      *ca_file;       /* NULL: the system's trust store */
    const char      *user;
    const char      *password;      /* never logged */
    const char      *folder;        /* IMAP; NULL means INBOX */
    int64_t          timeout_ms;    /* per read/write: the longest wait for
                                     * the server, and a whole line (or
                                     * the next piece of a message) must
                                     * come within it */
    int64_t          session_ms;    /* the whole session, from mailbox_open
                                     * to mailbox_close, must end within
                                     * this (a server trickling a line
                                     * just under timeout_ms); 0: no limit */
} mailbox_server;

typedef enum {
    MAILBOX_OK = 0,
    MAILBOX_ERROR,          /* network, TLS, protocol, timeout: try later */
    MAILBOX_AUTH_FAILED,    /* the server refused the credentials */
    MAILBOX_TOO_BIG,        /* fetch: larger than max (nothing read) */
    MAILBOX_GONE,           /* fetch/delete: no such message any more */
} mailbox_status;

typedef struct mailbox_msg {
    char  *uid;             /* POP3 UIDL; IMAP UID in decimal */
    size_t size;            /* as the server says */
} mailbox_msg;

typedef struct mailbox mailbox_t;

/* mailbox_open - connect, TLS as asked, log in, select the folder.  NULL
 * with *status and *err (malloc'd, for the log and `fetch list`; never
 * holds the password) on failure.  srv and its strings are copied: they
 * need not outlive the call.  timeout_ms <= 0 means
 * MAILBOX_TIMEOUT_DEFAULT_MS.  MAILBOX_AUTH_FAILED: the server refused
 * the credentials (POP3 -ERR to USER, PASS or AUTH; IMAP NO or BAD to
 * LOGIN or AUTHENTICATE), except when its response code says the trouble
 * is elsewhere (POP3 [SYS/TEMP], [SYS/PERM], [IN-USE], [LOGIN-DELAY];
 * IMAP [UNAVAILABLE], [SERVERBUG], [LIMIT]): MAILBOX_ERROR then.  With
 * TLS and verify, the chain must lead to ca_file (or the system's trust
 * store) and the certificate must name host (a DNS name or an address). */
mailbox_t *mailbox_open(const mailbox_server *srv, mailbox_status *status, char **err);

/* Every function below: on failure *err (when err is not NULL) gets a
 * malloc'd text; on success it is left alone.  After a MAILBOX_ERROR the
 * session is dead (mailbox_broken): every later call returns
 * MAILBOX_ERROR again and mailbox_close commits nothing. */

/* mailbox_list - every message now in the mailbox (*msgs malloc'd; free
 * with mailbox_msgs_free) and, for IMAP, the folder's UIDVALIDITY in
 * *uidvalidity ("" for POP3).  At most MAILBOX_LIST_MAX messages (more:
 * MAILBOX_ERROR).  The listing is also what mailbox_fetch and
 * mailbox_delete look a message up in (by uid). */
mailbox_status mailbox_list(mailbox_t *m, mailbox_msg **msgs, size_t *n,
                            char uidvalidity[32], char **err);
void mailbox_msgs_free(mailbox_msg **msgs, size_t n);

/* mailbox_fetch - append the message's bytes exactly as stored (POP3
 * dot-stuffing undone) to out, without marking it seen (BODY.PEEK); on
 * any failure out keeps its old length.  A uid that the last
 * mailbox_list did not return, or that the server no longer has:
 * MAILBOX_GONE (the session goes on).  More than max bytes:
 * MAILBOX_TOO_BIG.  When the listed size already says so, nothing is
 * asked and the session goes on; when the server only reveals it during
 * the transfer (an IMAP literal larger than max, or a POP3 message
 * longer than its LIST size said), the rest is not read and the session
 * cannot go on: it is broken, as after MAILBOX_ERROR. */
mailbox_status mailbox_fetch(mailbox_t *m, const mailbox_msg *msg, size_t max, buf_t *out,
                             char **err);

/* mailbox_delete - mark the message deleted (POP3 DELE; IMAP UID STORE
 * +FLAGS.SILENT (\Deleted)).  It is gone for good after
 * mailbox_close(commit). */
mailbox_status mailbox_delete(mailbox_t *m, const mailbox_msg *msg, char **err);

/* mailbox_close - commit deletions (POP3 QUIT; IMAP UID EXPUNGE of the
 * marked UIDs when UIDPLUS is offered, else EXPUNGE, then LOGOUT) when
 * commit is true; otherwise leave without removing anything (POP3: RSET
 * then QUIT, or the connection is dropped without QUIT when RSET is not
 * answered +OK, so that DELEs do not apply; IMAP: the marks are taken
 * back with UID STORE -FLAGS.SILENT (\Deleted), then LOGOUT).  IMAP
 * without UIDPLUS: EXPUNGE removes every \Deleted message of the folder,
 * also those another client marked.  A broken IMAP session cannot take
 * its marks back: they stay until the next commit.  Frees
 * *m; NULL is fine.  Returns the commit's status (MAILBOX_OK when
 * commit is false, or when nothing was deleted; MAILBOX_ERROR when the
 * session was broken and deletions were pending). */
mailbox_status mailbox_close(mailbox_t **m, bool commit, char **err);

/* mailbox_broken - the session cannot be used any more (a MAILBOX_ERROR,
 * or a TOO_BIG found during a transfer): close it without commit. */
bool mailbox_broken(const mailbox_t *m);

/* mailbox_status_name - "ok", "error", "auth failed", "too big", "gone". */
const char *mailbox_status_name(mailbox_status st);

#endif
