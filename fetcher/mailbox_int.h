/* mailbox_int.h - what mailbox.c (the session, line I/O with deadlines
 * and caps, TLS, errors) shares with its two protocols, pop3.c and
 * imap.c.  Not for the rest of the fetcher: mailbox.h is the interface.
 *
 * The pure parsers (pop3_parse_*, imap_resp_*) work on a buffer and are
 * declared here so that the fuzz targets can feed them directly; the
 * scripted connection (mailbox_open_scripted) lets a fuzz target run a
 * whole session against bytes in memory.
 */
#ifndef CORREIO_FETCHER_MAILBOX_INT_H
#define CORREIO_FETCHER_MAILBOX_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "buf.h"
#include "mailbox.h"
#include "tls.h"

#define POP3_LINE_MAX      1024           /* a status line, CRLF included */
#define POP3_LIST_LINE_MAX 1024           /* a UIDL or LIST line */
#define POP3_UID_MAX       70             /* RFC 1939: 1 to 70 characters */
#define IMAP_LINE_MAX      (64 * 1024)    /* one line of a response */
#define IMAP_RESPONSE_MAX  (256 * 1024)   /* a response with its small literals */
#define IMAP_LITERAL_MAX   (64 * 1024)    /* a literal that is not the message */
#define IMAP_LITERALS_MAX  64             /* literals in one response */
#define MBX_ERR_TEXT_MAX   200            /* server text quoted in an error */

/* One entry of the last listing: what fetch and delete look up by uid. */
typedef struct mbx_entry {
    char    *uid;           /* shares the string of the index, owned here */
    uint64_t id;            /* POP3 message number, IMAP UID */
    size_t   size;
} mbx_entry;

/* The connection: a socket (or a script in memory), TLS on it maybe,
 * and the bytes read but not yet consumed. */
typedef struct mbx_conn {
    int         fd;             /* -1: scripted */
    tls_ctx_t  *tls_ctx;
    tls_conn_t *tls;
    int64_t     timeout_ms;
    int64_t     session_ms;     /* 0: no limit */
    int64_t     session_end;    /* monotonic; INT64_MAX without a limit */
    buf_t       in;             /* read, from in_pos on not yet consumed */
    size_t      in_pos;
    const char *script;         /* scripted input (fuzz targets) */
    size_t      script_len, script_pos;
} mbx_conn;

typedef struct mailbox mailbox_t;

/* A protocol: open logs in (and selects); the rest as in mailbox.h.
 * finish ends the session (commit or not) and frees priv. */
typedef struct mbx_ops {
    mailbox_status (*open)(mailbox_t *m, char **err);
    mailbox_status (*list)(mailbox_t *m, mailbox_msg **msgs, size_t *n,
                           char uidvalidity[32], char **err);
    mailbox_status (*fetch)(mailbox_t *m, const mbx_entry *e, size_t max, buf_t *out,
                            char **err);
    mailbox_status (*del)(mailbox_t *m, const mbx_entry *e, char **err);
    mailbox_status (*finish)(mailbox_t *m, bool commit, char **err);
    void (*free_priv)(mailbox_t *m);
} mbx_ops;

struct mailbox {
    const mbx_ops *ops;
    mbx_conn       conn;
    mailbox_protocol protocol;
    mailbox_tls    tls;
    bool           verify;
    unsigned       port;
    char          *host, *ca_file, *user, *password, *folder;
    char          *where;           /* "pop3 HOST:PORT", starts every error */
    char          *secret_b64;      /* the SASL PLAIN blob, also scrubbed */
    bool           broken;
    mbx_entry     *index;           /* the last listing, sorted by uid */
    size_t         n_index;
    void          *priv;            /* the protocol's state */
};

extern const mbx_ops mbx_pop3_ops;
extern const mbx_ops mbx_imap_ops;

/* ------------------------------------------------------------ mailbox.c */

/* mbx_fail - *err = "WHERE: text" (printf-style, the password scrubbed
 * out); MAILBOX_ERROR and TOO_BIG-during-transfer callers set broken
 * themselves through mbx_break.  Returns st. */
mailbox_status mbx_fail(mailbox_t *m, mailbox_status st, char **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* mbx_break - as mbx_fail with MAILBOX_ERROR (or st), and the session is dead. */
mailbox_status mbx_break(mailbox_t *m, mailbox_status st, char **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* mbx_shown - text from the server, printable and bounded, in dst. */
char *mbx_shown(char *dst, size_t size, const char *src, size_t len);

/* mbx_read_line - the next line, CRLF (or LF) removed, into line
 * (replaced).  Longer than max with its line end: MAILBOX_ERROR "line
 * too long".  doing: "reading the greeting" for the texts. */
mailbox_status mbx_read_line(mailbox_t *m, size_t max, buf_t *line, const char *doing,
                             char **err);
/* mbx_read_line_capped - the same, but a line longer than max only sets
 * *too_long (the session is broken, *err untouched): the caller says why. */
mailbox_status mbx_read_line_capped(mailbox_t *m, size_t max, buf_t *line, const char *doing,
                                    char **err, bool *too_long);
/* mbx_read_bytes - exactly n bytes appended to out. */
mailbox_status mbx_read_bytes(mailbox_t *m, size_t n, buf_t *out, const char *doing,
                              char **err);
/* mbx_write - all of data. */
mailbox_status mbx_write(mailbox_t *m, const void *data, size_t len, const char *doing,
                         char **err);
/* mbx_start_tls - the TLS handshake on the connection (nothing may be
 * buffered from before it), then the certificate check when verify. */
mailbox_status mbx_start_tls(mailbox_t *m, char **err);
/* mbx_buffered - bytes read and not consumed. */
size_t mbx_buffered(const mailbox_t *m);

/* mbx_scrub - replace every copy of the password (and its SASL blob) in
 * s by "*". */
void mbx_scrub(const mailbox_t *m, char *s);

/* mailbox_open_scripted - a session over script (the server's side of
 * the conversation, in memory; what the client writes is dropped): for
 * the fuzz targets.  TLS cannot be used on it. */
mailbox_t *mailbox_open_scripted(const mailbox_server *srv, const char *script, size_t len,
                                 mailbox_status *status, char **err);

/* --------------------------------------------------------------- pop3.c */

typedef enum { POP3_OK, POP3_ERR, POP3_CONT, POP3_BAD } pop3_kind;

/* pop3_parse_status - "+OK text", "-ERR text", "+ text" (a SASL
 * challenge) or anything else (POP3_BAD).  *text: after the indicator
 * and its space (may be empty). */
pop3_kind pop3_parse_status(const char *line, size_t len, const char **text);
/* pop3_parse_uidl - "NUM UID": false when not that (UID: 1 to 70 bytes
 * 0x21..0x7e). */
bool pop3_parse_uidl(const char *line, size_t len, uint64_t *num, char uid[POP3_UID_MAX + 1]);
/* pop3_parse_list - "NUM SIZE" (more words may follow). */
bool pop3_parse_list(const char *line, size_t len, uint64_t *num, uint64_t *size);
/* pop3_resp_code - the response code of "-ERR [CODE] ..." into code
 * (size bytes), "" when none. */
void pop3_resp_code(const char *text, char *code, size_t size);

/* --------------------------------------------------------------- imap.c */

/* A token of an IMAP response. */
typedef enum {
    IMAP_T_END,         /* end of the response */
    IMAP_T_ATOM,        /* an atom, a number, NIL, or "BODY[...]<n>" */
    IMAP_T_STRING,      /* quoted (escapes undone into the token) or literal */
    IMAP_T_LPAREN, IMAP_T_RPAREN,
    IMAP_T_LBRACKET, IMAP_T_RBRACKET,   /* only where response codes are read */
    IMAP_T_BAD,         /* not IMAP */
} imap_tok_kind;

typedef struct imap_tok {
    imap_tok_kind kind;
    const char   *s;            /* atom or literal bytes (in the response) */
    size_t        len;
    buf_t        *unq;          /* quoted strings: the unescaped text */
} imap_tok;

/* A cursor over one whole response: its lines with CRLF and its literals
 * inline, as on the wire ("{N}\r\n" then N bytes). */
typedef struct imap_cur {
    const char *p, *end;
    buf_t       unq;            /* holds the last quoted string */
} imap_cur;

void imap_cur_init(imap_cur *c, const char *data, size_t len);
void imap_cur_free(imap_cur *c);
/* imap_next - the next token; brackets are tokens only when bracket is
 * set (inside response codes), else part of atoms (BODY[]). */
imap_tok_kind imap_next(imap_cur *c, imap_tok *t, bool bracket);
/* imap_skip_value - skip one value (atom, string, or list, nested at
 * most 32 deep) that starts with t. false on bad syntax. */
bool imap_skip_value(imap_cur *c, const imap_tok *t);
/* imap_literal_size - the "{N}" or "{N+}" at the end of line (len
 * bytes, CRLF removed): true with *n when there is one (N may be huge;
 * the caller caps it); *bad when it looks like one but is malformed. */
bool imap_literal_size(const char *line, size_t len, uint64_t *n, bool *bad);
/* imap_atom_eq - the token is the atom word (any case). */
bool imap_atom_eq(const imap_tok *t, const char *word);
/* imap_atom_u64 - the token is a number (at most 20 digits, fits). */
bool imap_atom_u64(const imap_tok *t, uint64_t *v);

#endif
