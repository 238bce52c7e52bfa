/* imap.c - the IMAP side of a mailbox session (RFC 3501 with the parts
 * of RFC 9051 that a rev1 server also speaks; STARTTLS, SASL-IR of RFC
 * 4959, UIDPLUS of RFC 4315, LITERAL+/LITERAL- of RFC 7888, response
 * codes of RFC 5530), under mailbox.c's line I/O.
 *
 * A session: greeting (OK, PREAUTH or BYE) -> CAPABILITY -> (STARTTLS ->
 * CAPABILITY) -> AUTHENTICATE PLAIN when AUTH=PLAIN is offered, else
 * LOGIN -> SELECT -> UID FETCH 1:* (UID RFC822.SIZE) -> UID FETCH n
 * BODY.PEEK[] and UID STORE n +FLAGS.SILENT (\Deleted) -> UID EXPUNGE
 * (UIDPLUS) or EXPUNGE -> LOGOUT.
 *
 * A response is read whole: its lines (each at most IMAP_LINE_MAX) and
 * the literals they announce, inline as on the wire, at most
 * IMAP_RESPONSE_MAX in all, each literal at most IMAP_LITERAL_MAX --
 * except the message itself: while fetching, the literal that follows
 * "BODY[] " goes straight into the caller's buffer after its announced
 * size was checked against the caller's max, and stands in the response
 * as an empty literal "{0}".  A larger announced size is never read (the
 * session is then broken: the bytes are still on their way).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "log.h"
#include "mailbox_int.h"
#include "xalloc.h"

#define VALUE_DEPTH_MAX   32        /* nested parentheses skipped */
#define QUOTED_MAX        1000      /* longer strings we send go as literals */
#define LITERAL_MINUS_MAX 4096      /* RFC 7888: non-synchronizing up to this */
#define UID_SET_MAX       1000      /* characters of a UID set in one command */
#define CMD_SYNCS_MAX     4         /* literals in one command of ours */

/* What the server offers. */
typedef struct imap_caps {
    bool starttls, logindisabled, auth_plain, sasl_ir, uidplus, literal_plus, literal_minus;
} imap_caps;

/* A tagged response (or a continuation request) as the commands need it. */
typedef enum { R_CONT, R_OK, R_NO, R_BAD } resp_kind;
typedef struct imap_result {
    resp_kind kind;
    char      code[32];                 /* the response code's word, "" if none */
    char      text[MBX_ERR_TEXT_MAX];   /* "NO [CODE] text", printable, for errors */
    bool      had_caps;                 /* it carried [CAPABILITY ...] */
} imap_result;

/* One of the messages of a listing. */
typedef struct uid_size {
    uint64_t uid, size;
} uid_size;

typedef struct imap_state {
    unsigned  tag;                      /* last tag number used */
    imap_caps caps;
    bool      caps_known;
    bool      bye;                      /* an untagged BYE came */
    char      bye_text[MBX_ERR_TEXT_MAX];
    uint64_t  exists;
    char      uidvalidity[32];
    buf_t     resp, line;
    /* the listing under way */
    bool      listing;
    uid_size *found;
    size_t    n_found, cap_found;
    /* the fetch under way */
    bool      fetching;
    uint64_t  fetch_uid;
    size_t    fetch_max;
    buf_t    *fetch_out;
    size_t    fetch_start;              /* out's length before this response */
    bool      diverted;                 /* this response's body went to out */
    bool      got_body;                 /* the wanted message came */
    /* UIDs marked \Deleted in this session */
    uint64_t *deleted;
    size_t    n_deleted, cap_deleted;
} imap_state;

static imap_state *st_of(mailbox_t *m)
{
    return m->priv;
}

/* ============================================================== parsers */

void imap_cur_init(imap_cur *c, const char *data, size_t len)
{
    c->p = data;
    c->end = data + len;
    buf_init(&c->unq);
}

void imap_cur_free(imap_cur *c)
{
    buf_free(&c->unq);
}

bool imap_literal_size(const char *line, size_t len, uint64_t *n, bool *bad)
{
    size_t i, digits;
    uint64_t v = 0;

    *bad = false;
    if (len < 3 || line[len - 1] != '}')
        return false;
    i = len - 1;
    if (line[i - 1] == '+' || line[i - 1] == '-')  /* -: never from a server, forgiven */
        i--;
    digits = 0;
    while (i > 0 && line[i - 1] >= '0' && line[i - 1] <= '9') {
        i--;
        digits++;
    }
    if (i == 0 || line[i - 1] != '{' || digits == 0)
        return false;
    if (digits > 19) {
        *bad = true;
        return false;
    }
    for (size_t k = 0; k < digits; k++)
        v = v * 10 + (uint64_t)(line[i + k] - '0');
    *n = v;
    return true;
}

/* atom_stop - a byte that ends an atom. */
static bool atom_stop(char ch, bool bracket)
{
    switch (ch) {
    case ' ': case '(': case ')': case '"': case '{': case '\r': case '\n': case 0:
        return true;
    case '[': case ']':
        return bracket;
    default:
        return (unsigned char)ch < 0x20 || ch == 0x7f;
    }
}

/* next_literal - "{N}\r\n" then N bytes, at c->p. */
static imap_tok_kind next_literal(imap_cur *c, imap_tok *t)
{
    const char *p = c->p + 1;
    uint64_t n = 0;
    int digits = 0;

    while (p < c->end && *p >= '0' && *p <= '9' && digits < 19) {
        n = n * 10 + (uint64_t)(*p++ - '0');
        digits++;
    }
    if (digits == 0 || p >= c->end)
        return t->kind = IMAP_T_BAD;
    if (*p == '+' || *p == '-')
        p++;
    if (p + 3 > c->end || p[0] != '}' || p[1] != '\r' || p[2] != '\n')
        return t->kind = IMAP_T_BAD;
    p += 3;
    if (n > (uint64_t)(c->end - p))
        return t->kind = IMAP_T_BAD;
    t->s = p;
    t->len = (size_t)n;
    c->p = p + n;
    return t->kind = IMAP_T_STRING;
}

/* next_quoted - a quoted string at c->p, unescaped into c->unq. */
static imap_tok_kind next_quoted(imap_cur *c, imap_tok *t)
{
    const char *p = c->p + 1;

    buf_reset(&c->unq);
    buf_append(&c->unq, "", 0);
    for (;;) {
        if (p >= c->end || *p == '\r' || *p == '\n')
            return t->kind = IMAP_T_BAD;
        if (*p == '"')
            break;
        if (*p == '\\') {
            if (++p >= c->end || (*p != '\\' && *p != '"'))
                return t->kind = IMAP_T_BAD;
        }
        buf_append_char(&c->unq, *p++);
    }
    c->p = p + 1;
    t->s = c->unq.data;
    t->len = c->unq.len;
    t->unq = &c->unq;
    return t->kind = IMAP_T_STRING;
}

imap_tok_kind imap_next(imap_cur *c, imap_tok *t, bool bracket)
{
    const char *start;

    memset(t, 0, sizeof(*t));
    while (c->p < c->end && *c->p == ' ')
        c->p++;
    if (c->p >= c->end || *c->p == '\r' || *c->p == '\n')
        return t->kind = IMAP_T_END;
    switch (*c->p) {
    case '(':
        c->p++;
        return t->kind = IMAP_T_LPAREN;
    case ')':
        c->p++;
        return t->kind = IMAP_T_RPAREN;
    case '"':
        return next_quoted(c, t);
    case '{':
        return next_literal(c, t);
    default:
        break;
    }
    if (bracket && (*c->p == '[' || *c->p == ']')) {
        t->kind = *c->p == '[' ? IMAP_T_LBRACKET : IMAP_T_RBRACKET;
        c->p++;
        return t->kind;
    }
    start = c->p;
    while (c->p < c->end && !atom_stop(*c->p, bracket)) {
        if (*c->p == '[' && !bracket) {
            /* a section, "BODY[HEADER.FIELDS (TO)]": up to its ']' */
            while (c->p < c->end && *c->p != ']' && *c->p != '\r' && *c->p != '\n')
                c->p++;
            if (c->p >= c->end || *c->p != ']')
                return t->kind = IMAP_T_BAD;
        }
        c->p++;
    }
    if (c->p == start)
        return t->kind = IMAP_T_BAD;
    t->s = start;
    t->len = (size_t)(c->p - start);
    return t->kind = IMAP_T_ATOM;
}

bool imap_skip_value(imap_cur *c, const imap_tok *t)
{
    imap_tok u;
    int depth;

    if (t->kind == IMAP_T_ATOM || t->kind == IMAP_T_STRING)
        return true;
    if (t->kind != IMAP_T_LPAREN)
        return false;
    for (depth = 1; depth > 0;) {
        switch (imap_next(c, &u, false)) {
        case IMAP_T_LPAREN:
            if (++depth > VALUE_DEPTH_MAX)
                return false;
            break;
        case IMAP_T_RPAREN:
            depth--;
            break;
        case IMAP_T_ATOM: case IMAP_T_STRING:
            break;
        default:
            return false;
        }
    }
    return true;
}

bool imap_atom_eq(const imap_tok *t, const char *word)
{
    size_t n = strlen(word);

    return t->kind == IMAP_T_ATOM && t->len == n && strncasecmp(t->s, word, n) == 0;
}

bool imap_atom_u64(const imap_tok *t, uint64_t *v)
{
    uint64_t n = 0;

    if (t->kind != IMAP_T_ATOM || t->len == 0 || t->len > 19)
        return false;
    for (size_t i = 0; i < t->len; i++) {
        if (t->s[i] < '0' || t->s[i] > '9')
            return false;
        n = n * 10 + (uint64_t)(t->s[i] - '0');
    }
    *v = n;
    return true;
}

/* rest_text - the text from the cursor to the end of the line, printable. */
static void rest_text(imap_cur *c, char *dst, size_t size)
{
    const char *p = c->p, *e;

    while (p < c->end && *p == ' ')
        p++;
    e = p;
    while (e < c->end && *e != '\r' && *e != '\n')
        e++;
    mbx_shown(dst, size, p, (size_t)(e - p));
}

/* ======================================================== response data */

/* set_caps - the capability atoms from the cursor on (to the end, or
 * to ']' when bracket): they replace what was known. */
static void set_caps(imap_state *is, imap_cur *c, bool bracket)
{
    imap_tok t;

    memset(&is->caps, 0, sizeof(is->caps));
    is->caps_known = true;
    while (imap_next(c, &t, bracket) == IMAP_T_ATOM) {
        if (imap_atom_eq(&t, "STARTTLS"))
            is->caps.starttls = true;
        else if (imap_atom_eq(&t, "LOGINDISABLED"))
            is->caps.logindisabled = true;
        else if (imap_atom_eq(&t, "AUTH=PLAIN"))
            is->caps.auth_plain = true;
        else if (imap_atom_eq(&t, "SASL-IR"))
            is->caps.sasl_ir = true;
        else if (imap_atom_eq(&t, "UIDPLUS"))
            is->caps.uidplus = true;
        else if (imap_atom_eq(&t, "LITERAL+"))
            is->caps.literal_plus = true;
        else if (imap_atom_eq(&t, "LITERAL-"))
            is->caps.literal_minus = true;
    }
}

/* status_rest - after OK/NO/BAD/BYE/PREAUTH: the response code (acted on:
 * CAPABILITY, UIDVALIDITY) and the text, into r (may be NULL). */
static void status_rest(imap_state *is, imap_cur *c, imap_result *r)
{
    imap_tok t;
    const char *save;
    char code[32] = "";

    while (c->p < c->end && *c->p == ' ')
        c->p++;
    save = c->p;
    if (c->p < c->end && *c->p == '[') {
        imap_next(c, &t, true);         /* the '[' */
        if (imap_next(c, &t, true) == IMAP_T_ATOM) {
            mbx_shown(code, sizeof(code), t.s, t.len);
            if (imap_atom_eq(&t, "CAPABILITY")) {
                set_caps(is, c, true);
                if (r != NULL)
                    r->had_caps = true;
            } else if (imap_atom_eq(&t, "UIDVALIDITY")) {
                uint64_t v;

                if (imap_next(c, &t, true) == IMAP_T_ATOM && imap_atom_u64(&t, &v)
                    && v > 0 && v <= UINT32_MAX)
                    snprintf(is->uidvalidity, sizeof(is->uidvalidity), "%llu",
                             (unsigned long long)v);
            }
        }
    }
    if (r != NULL) {
        c->p = save;
        snprintf(r->code, sizeof(r->code), "%s", code);
        rest_text(c, r->text, sizeof(r->text));
    }
}

/* on_fetch - "* N FETCH (...)": record what the listing or the fetch
 * under way wants.  false on bad syntax. */
static bool on_fetch(mailbox_t *m, imap_cur *c, char **err)
{
    imap_state *is = st_of(m);
    uint64_t uid = 0, size = 0;
    bool has_uid = false, has_size = false, has_body = false;
    const char *body = NULL;
    size_t body_len = 0;
    imap_tok t, v;

    if (imap_next(c, &t, false) != IMAP_T_LPAREN)
        return false;
    for (;;) {
        if (imap_next(c, &t, false) == IMAP_T_RPAREN)
            break;
        if (t.kind != IMAP_T_ATOM || imap_next(c, &v, false) == IMAP_T_END
            || v.kind == IMAP_T_BAD)
            return false;
        if (imap_atom_eq(&t, "UID")) {
            if (!imap_atom_u64(&v, &uid) || uid == 0 || uid > UINT32_MAX)
                return false;
            has_uid = true;
        } else if (imap_atom_eq(&t, "RFC822.SIZE")) {
            if (!imap_atom_u64(&v, &size))
                return false;
            has_size = true;
        } else if (imap_atom_eq(&t, "BODY[]")) {
            if (v.kind == IMAP_T_STRING) {
                has_body = true;
                body = v.s;
                body_len = v.len;
            } else if (!imap_atom_eq(&v, "NIL")) {
                return false;
            }
        } else if (!imap_skip_value(c, &v)) {
            return false;
        }
    }
    if (is->listing && has_uid && has_size) {
        if (is->n_found == MAILBOX_LIST_MAX) {
            mbx_break(m, MAILBOX_ERROR, err, "more than %d messages", MAILBOX_LIST_MAX);
            return false;
        }
        if (is->n_found == is->cap_found) {
            is->cap_found = is->cap_found ? is->cap_found * 2 : 256;
            is->found = xrealloc(is->found, is->cap_found * sizeof(*is->found));
        }
        is->found[is->n_found++] = (uid_size){uid, size};
    }
    if (is->fetching) {
        bool ours = has_body && !is->got_body && (!has_uid || uid == is->fetch_uid);

        if (!ours && is->diverted) {    /* another message's body: take it back */
            is->fetch_out->len = is->fetch_start;
            is->fetch_out->data[is->fetch_start] = 0;
        } else if (ours && !is->diverted) {
            if (body_len > is->fetch_max) {
                mbx_fail(m, MAILBOX_TOO_BIG, err, "message uid %llu has %zu bytes, more than %zu",
                         (unsigned long long)is->fetch_uid, body_len, is->fetch_max);
                return false;
            }
            buf_append(is->fetch_out, body, body_len);
        }
        if (ours)
            is->got_body = true;
    }
    return true;
}

/* on_untagged - "* ..." data: act on what matters, ignore the rest.
 * Returns MAILBOX_OK, or the failure (the session is broken). */
static mailbox_status on_untagged(mailbox_t *m, imap_cur *c, char **err)
{
    imap_state *is = st_of(m);
    imap_tok t, u;
    uint64_t n;
    mailbox_status st;

    if (imap_next(c, &t, false) != IMAP_T_ATOM)
        goto bad;
    if (imap_atom_u64(&t, &n)) {
        if (imap_next(c, &u, false) != IMAP_T_ATOM)
            goto bad;
        if (imap_atom_eq(&u, "EXISTS"))
            is->exists = n;
        else if (imap_atom_eq(&u, "FETCH")) {
            char *e = NULL;

            if (!on_fetch(m, c, &e)) {
                if (e != NULL) {        /* said why (TOO_BIG, too many) */
                    st = m->broken ? MAILBOX_ERROR : MAILBOX_TOO_BIG;
                    m->broken = true;
                    if (err != NULL)
                        *err = e;
                    else
                        xfree(&e);
                    return st;
                }
                goto bad;
            }
        }
        return MAILBOX_OK;              /* EXPUNGE, RECENT... */
    }
    if (imap_atom_eq(&t, "CAPABILITY")) {
        set_caps(is, c, false);
    } else if (imap_atom_eq(&t, "BYE")) {
        is->bye = true;
        rest_text(c, is->bye_text, sizeof(is->bye_text));
    } else if (imap_atom_eq(&t, "OK") || imap_atom_eq(&t, "NO") || imap_atom_eq(&t, "BAD")
               || imap_atom_eq(&t, "PREAUTH")) {
        status_rest(is, c, NULL);
    }
    return MAILBOX_OK;                  /* FLAGS, LIST, SEARCH, ... */
bad:
    {
        char shown[MBX_ERR_TEXT_MAX];

        return mbx_break(m, MAILBOX_ERROR, err, "cannot parse \"%s\"",
                         mbx_shown(shown, sizeof(shown), is->resp.data, is->resp.len));
    }
}

/* ======================================================= reading responses */

/* body_literal_here - while fetching, the literal announced at the end
 * of the response so far (whose "{" is at brace) is the message. */
static bool body_literal_here(const imap_state *is, size_t brace)
{
    static const char want[] = "BODY[] ";
    size_t n = sizeof(want) - 1;

    return is->fetching && brace >= n && strncasecmp(is->resp.data + brace - n, want, n) == 0
        && is->resp.len >= 2 && strncmp(is->resp.data, "* ", 2) == 0;
}

/* read_response - one whole response into is->resp (see the top). */
static mailbox_status read_response(mailbox_t *m, const char *doing, char **err)
{
    imap_state *is = st_of(m);
    size_t literals = 0;
    mailbox_status st;

    buf_reset(&is->resp);
    is->diverted = false;
    if (is->fetching)
        is->fetch_start = is->fetch_out->len;
    for (;;) {
        uint64_t n;
        bool bad;
        size_t brace;

        if ((st = mbx_read_line(m, IMAP_LINE_MAX, &is->line, doing, err)) != MAILBOX_OK)
            return st;
        if (is->resp.len + is->line.len + 2 > IMAP_RESPONSE_MAX)
            return mbx_break(m, MAILBOX_ERROR, err, "response longer than %d bytes while %s",
                             IMAP_RESPONSE_MAX, doing);
        brace = is->resp.len + is->line.len;
        buf_append(&is->resp, is->line.data, is->line.len);
        buf_append(&is->resp, "\r\n", 2);
        if (!imap_literal_size(is->line.data, is->line.len, &n, &bad)) {
            if (bad)
                return mbx_break(m, MAILBOX_ERROR, err, "malformed literal while %s", doing);
            return MAILBOX_OK;
        }
        while (is->resp.data[brace] != '{')
            brace--;
        if (++literals > IMAP_LITERALS_MAX)
            return mbx_break(m, MAILBOX_ERROR, err, "more than %d literals in a response",
                             IMAP_LITERALS_MAX);
        if (body_literal_here(is, brace) && !is->diverted) {
            if (n > is->fetch_max)
                return mbx_break(m, MAILBOX_TOO_BIG, err,
                                 "message uid %llu announced as %llu bytes, more than %zu "
                                 "(not read; the session ends)",
                                 (unsigned long long)is->fetch_uid, (unsigned long long)n,
                                 is->fetch_max);
            is->resp.len = brace;
            buf_append_str(&is->resp, "{0}\r\n");
            if ((st = mbx_read_bytes(m, (size_t)n, is->fetch_out, doing, err)) != MAILBOX_OK)
                return st;
            is->diverted = true;
            continue;
        }
        if (n > IMAP_LITERAL_MAX || is->resp.len + n > IMAP_RESPONSE_MAX)
            return mbx_break(m, MAILBOX_ERROR, err,
                             "literal of %llu bytes, more than this client takes, while %s",
                             (unsigned long long)n, doing);
        if ((st = mbx_read_bytes(m, (size_t)n, &is->resp, doing, err)) != MAILBOX_OK)
            return st;
    }
}

/* wait_for - read responses, handling untagged data, until the tagged
 * one for tag (or a continuation request when cont_ok).  A server that
 * said BYE and went away gets its BYE text in the error. */
static mailbox_status wait_for(mailbox_t *m, const char *tag, bool cont_ok, const char *what,
                               imap_result *r, char **err)
{
    imap_state *is = st_of(m);
    char doing[80], shown[MBX_ERR_TEXT_MAX];
    mailbox_status st;

    snprintf(doing, sizeof(doing), "waiting for the response to %s", what);
    for (;;) {
        char *e = NULL;
        imap_cur c;
        imap_tok t;

        if ((st = read_response(m, doing, &e)) != MAILBOX_OK) {
            if (st == MAILBOX_ERROR && is->bye) {
                xfree(&e);
                return mbx_fail(m, MAILBOX_ERROR, err, "the server said BYE: %s", is->bye_text);
            }
            if (err != NULL)
                *err = e;
            else
                xfree(&e);
            return st;
        }
        imap_cur_init(&c, is->resp.data, is->resp.len);
        if (imap_next(&c, &t, false) != IMAP_T_ATOM) {
            imap_cur_free(&c);
            goto bad;
        }
        if (t.len == 1 && t.s[0] == '*') {
            st = on_untagged(m, &c, err);
            imap_cur_free(&c);
            if (st != MAILBOX_OK)
                return st;
            continue;
        }
        if (t.len == 1 && t.s[0] == '+') {
            imap_cur_free(&c);
            if (!cont_ok)
                return mbx_break(m, MAILBOX_ERROR, err,
                                 "unexpected continuation request while %s", doing);
            memset(r, 0, sizeof(*r));
            r->kind = R_CONT;
            return MAILBOX_OK;
        }
        if (t.len != strlen(tag) || strncmp(t.s, tag, t.len) != 0) {
            imap_cur_free(&c);
            return mbx_break(m, MAILBOX_ERROR, err, "response with an unknown tag: \"%s\"",
                             mbx_shown(shown, sizeof(shown), is->resp.data, is->resp.len));
        }
        memset(r, 0, sizeof(*r));
        imap_next(&c, &t, false);
        if (imap_atom_eq(&t, "OK"))
            r->kind = R_OK;
        else if (imap_atom_eq(&t, "NO"))
            r->kind = R_NO;
        else if (imap_atom_eq(&t, "BAD"))
            r->kind = R_BAD;
        else {
            imap_cur_free(&c);
            goto bad;
        }
        status_rest(is, &c, r);
        imap_cur_free(&c);
        return MAILBOX_OK;
    }
bad:
    return mbx_break(m, MAILBOX_ERROR, err, "cannot parse \"%s\" while %s",
                     mbx_shown(shown, sizeof(shown), is->resp.data, is->resp.len), doing);
}

/* ============================================================== commands */

/* A command of ours: its text (literals inline) and where the server's
 * go-ahead must be awaited (just after each synchronizing "{N}\r\n"). */
typedef struct imap_cmd {
    buf_t  text;
    size_t sync[CMD_SYNCS_MAX];
    size_t n_sync;
} imap_cmd;

static void cmd_free(imap_cmd *cmd)
{
    if (cmd->text.data != NULL)
        explicit_bzero(cmd->text.data, cmd->text.len);
    buf_free(&cmd->text);
    cmd->n_sync = 0;
}

/* cmd_string - s as a quoted string, or a literal when it holds bytes a
 * quoted string cannot (or is long). */
static void cmd_string(imap_state *is, imap_cmd *cmd, const char *s)
{
    size_t len = strlen(s);
    bool quotable = len <= QUOTED_MAX;

    for (size_t i = 0; quotable && i < len; i++)
        quotable = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f;
    if (quotable) {
        buf_append_char(&cmd->text, '"');
        for (size_t i = 0; i < len; i++) {
            if (s[i] == '"' || s[i] == '\\')
                buf_append_char(&cmd->text, '\\');
            buf_append_char(&cmd->text, s[i]);
        }
        buf_append_char(&cmd->text, '"');
        return;
    }
    if (is->caps.literal_plus || (is->caps.literal_minus && len <= LITERAL_MINUS_MAX)) {
        buf_printf(&cmd->text, "{%zu+}\r\n", len);
    } else {
        if (cmd->n_sync == CMD_SYNCS_MAX)
            log_panic("cmd_string: more than %d literals in a command", CMD_SYNCS_MAX);
        buf_printf(&cmd->text, "{%zu}\r\n", len);
        cmd->sync[cmd->n_sync++] = cmd->text.len;
    }
    buf_append(&cmd->text, s, len);
}

/* run - send "TAG text\r\n", with a go-ahead awaited for each literal,
 * then the tagged response (r).  A tagged response that comes instead of
 * a go-ahead ends the command early (a NO to LOGIN, say). */
static mailbox_status run(mailbox_t *m, imap_cmd *cmd, const char *what, imap_result *r,
                          char **err)
{
    imap_state *is = st_of(m);
    char tag[16], doing[80];
    size_t pos = 0;
    mailbox_status st;

    snprintf(tag, sizeof(tag), "C%u", ++is->tag);
    snprintf(doing, sizeof(doing), "sending %s", what);
    if ((st = mbx_write(m, tag, strlen(tag), doing, err)) != MAILBOX_OK
        || (st = mbx_write(m, " ", 1, doing, err)) != MAILBOX_OK)
        return st;
    for (size_t i = 0; i < cmd->n_sync; i++) {
        if ((st = mbx_write(m, cmd->text.data + pos, cmd->sync[i] - pos, doing, err))
            != MAILBOX_OK
            || (st = wait_for(m, tag, true, what, r, err)) != MAILBOX_OK)
            return st;
        if (r->kind != R_CONT)
            return MAILBOX_OK;
        pos = cmd->sync[i];
    }
    if ((st = mbx_write(m, cmd->text.data + pos, cmd->text.len - pos, doing, err)) != MAILBOX_OK
        || (st = mbx_write(m, "\r\n", 2, doing, err)) != MAILBOX_OK)
        return st;
    return wait_for(m, tag, false, what, r, err);
}

/* simple - run a command without literals; text is printf-style. */
static mailbox_status simple(mailbox_t *m, const char *what, imap_result *r, char **err,
                             const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static mailbox_status simple(mailbox_t *m, const char *what, imap_result *r, char **err,
                             const char *fmt, ...)
{
    imap_cmd cmd = {.text = BUF_INIT};
    mailbox_status st;
    va_list ap;

    va_start(ap, fmt);
    buf_vprintf(&cmd.text, fmt, ap);
    va_end(ap);
    st = run(m, &cmd, what, r, err);
    cmd_free(&cmd);
    return st;
}

/* refused - a tagged NO or BAD to what: st (BAD always breaks). */
static mailbox_status refused(mailbox_t *m, mailbox_status st, const char *what,
                              const imap_result *r, char **err)
{
    if (r->kind == R_BAD)
        m->broken = true;
    return mbx_fail(m, st, err, "%s refused: %s %s", what, r->kind == R_BAD ? "BAD" : "NO",
                    r->text);
}

/* ================================================================= open */

/* auth_refused - NO/BAD to LOGIN or AUTHENTICATE: AUTH_FAILED, unless the
 * response code says the server is unwell (RFC 5530). */
static mailbox_status auth_refused(mailbox_t *m, const char *what, const imap_result *r,
                                   char **err)
{
    bool temporary = strcasecmp(r->code, "UNAVAILABLE") == 0
        || strcasecmp(r->code, "SERVERBUG") == 0 || strcasecmp(r->code, "LIMIT") == 0;

    return mbx_fail(m, temporary ? MAILBOX_ERROR : MAILBOX_AUTH_FAILED, err, "%s refused: %s %s",
                    what, r->kind == R_BAD ? "BAD" : "NO", r->text);
}

/* authenticate - AUTHENTICATE PLAIN, the response inline with SASL-IR. */
static mailbox_status authenticate(mailbox_t *m, imap_result *r, char **err)
{
    imap_state *is = st_of(m);
    buf_t plain = BUF_INIT, b64 = BUF_INIT;
    char tag[16];
    mailbox_status st;
    imap_cmd cmd = {.text = BUF_INIT};

    buf_append_char(&plain, 0);
    buf_append_str(&plain, m->user);
    buf_append_char(&plain, 0);
    buf_append_str(&plain, m->password);
    base64_encode(&b64, plain.data, plain.len);
    if (b64.data == NULL)
        buf_append(&b64, "", 0);
    explicit_bzero(plain.data, plain.len);
    buf_free(&plain);
    xfree(&m->secret_b64);
    m->secret_b64 = xstrdup(b64.data);
    if (is->caps.sasl_ir) {
        buf_printf(&cmd.text, "AUTHENTICATE PLAIN %s", b64.len > 0 ? b64.data : "=");
        st = run(m, &cmd, "AUTHENTICATE", r, err);
        cmd_free(&cmd);
        if (st == MAILBOX_OK && r->kind == R_CONT)
            st = mbx_break(m, MAILBOX_ERROR, err, "AUTHENTICATE: unexpected challenge");
        goto out;
    }
    snprintf(tag, sizeof(tag), "C%u", ++is->tag);
    buf_printf(&cmd.text, "%s AUTHENTICATE PLAIN\r\n", tag);
    if ((st = mbx_write(m, cmd.text.data, cmd.text.len, "sending AUTHENTICATE", err))
        != MAILBOX_OK
        || (st = wait_for(m, tag, true, "AUTHENTICATE", r, err)) != MAILBOX_OK
        || r->kind != R_CONT)
        goto out;
    buf_reset(&cmd.text);
    buf_printf(&cmd.text, "%s\r\n", b64.data);
    if ((st = mbx_write(m, cmd.text.data, cmd.text.len, "sending AUTHENTICATE", err))
        != MAILBOX_OK
        || (st = wait_for(m, tag, true, "AUTHENTICATE", r, err)) != MAILBOX_OK)
        goto out;
    if (r->kind == R_CONT) {            /* another challenge: PLAIN has none; cancel */
        if ((st = mbx_write(m, "*\r\n", 3, "cancelling AUTHENTICATE", err)) == MAILBOX_OK
            && (st = wait_for(m, tag, false, "AUTHENTICATE", r, err)) == MAILBOX_OK)
            r->kind = R_NO;
    }
out:
    cmd_free(&cmd);
    explicit_bzero(b64.data, b64.len);
    buf_free(&b64);
    return st;
}

/* login - authenticate by the best means offered. */
static mailbox_status login(mailbox_t *m, char **err)
{
    imap_state *is = st_of(m);
    imap_cmd cmd = {.text = BUF_INIT};
    const char *what;
    imap_result r;
    mailbox_status st;

    if (is->caps.auth_plain) {
        what = "AUTHENTICATE PLAIN";
        st = authenticate(m, &r, err);
    } else if (is->caps.logindisabled) {
        return mbx_break(m, MAILBOX_ERROR, err,
                         "the server offers neither LOGIN nor AUTHENTICATE PLAIN%s",
                         m->tls == MAILBOX_TLS_NONE ? " (try TLS)" : "");
    } else {
        what = "LOGIN";
        buf_append_str(&cmd.text, "LOGIN ");
        cmd_string(is, &cmd, m->user);
        buf_append_char(&cmd.text, ' ');
        cmd_string(is, &cmd, m->password);
        st = run(m, &cmd, "LOGIN", &r, err);
        cmd_free(&cmd);
    }
    if (st != MAILBOX_OK)
        return st;
    if (r.kind != R_OK)
        return auth_refused(m, what, &r, err);
    if (!r.had_caps)                    /* they may differ once logged in */
        is->caps_known = false;
    return MAILBOX_OK;
}

/* capability - ask for CAPABILITY unless it is known. */
static mailbox_status capability(mailbox_t *m, char **err)
{
    imap_state *is = st_of(m);
    imap_result r;
    mailbox_status st;

    if (is->caps_known)
        return MAILBOX_OK;
    if ((st = simple(m, "CAPABILITY", &r, err, "CAPABILITY")) != MAILBOX_OK)
        return st;
    if (r.kind != R_OK)
        return refused(m, MAILBOX_ERROR, "CAPABILITY", &r, err);
    if (!is->caps_known)
        return mbx_break(m, MAILBOX_ERROR, err, "no CAPABILITY data came");
    return MAILBOX_OK;
}

/* select_folder - SELECT, with its EXISTS and UIDVALIDITY. */
static mailbox_status select_folder(mailbox_t *m, char **err)
{
    imap_state *is = st_of(m);
    imap_cmd cmd = {.text = BUF_INIT};
    imap_result r;
    mailbox_status st;
    char shown[80];

    is->uidvalidity[0] = 0;
    is->exists = 0;
    buf_append_str(&cmd.text, "SELECT ");
    cmd_string(is, &cmd, m->folder);
    st = run(m, &cmd, "SELECT", &r, err);
    cmd_free(&cmd);
    if (st != MAILBOX_OK)
        return st;
    mbx_shown(shown, sizeof(shown), m->folder, strlen(m->folder));
    if (r.kind != R_OK) {
        m->broken = true;
        return mbx_fail(m, MAILBOX_ERROR, err, "cannot select folder \"%s\": %s %s", shown,
                        r.kind == R_BAD ? "BAD" : "NO", r.text);
    }
    if (is->uidvalidity[0] == 0)
        return mbx_break(m, MAILBOX_ERROR, err, "no UIDVALIDITY for folder \"%s\"", shown);
    return MAILBOX_OK;
}

static mailbox_status imap_open(mailbox_t *m, char **err)
{
    imap_state *is = xcalloc(1, sizeof(*is));
    imap_result r;
    imap_cur c;
    imap_tok t;
    bool preauth = false;
    mailbox_status st;
    char shown[MBX_ERR_TEXT_MAX];

    buf_init(&is->resp);
    buf_init(&is->line);
    m->priv = is;
    /* the greeting: "* OK", "* PREAUTH" or "* BYE" */
    if ((st = read_response(m, "reading the greeting", err)) != MAILBOX_OK)
        return st;
    imap_cur_init(&c, is->resp.data, is->resp.len);
    if (imap_next(&c, &t, false) != IMAP_T_ATOM || t.len != 1 || t.s[0] != '*'
        || imap_next(&c, &t, false) != IMAP_T_ATOM
        || !(imap_atom_eq(&t, "OK") || (preauth = imap_atom_eq(&t, "PREAUTH"))
             || imap_atom_eq(&t, "BYE"))) {
        imap_cur_free(&c);
        return mbx_break(m, MAILBOX_ERROR, err, "unexpected greeting \"%s\"",
                         mbx_shown(shown, sizeof(shown), is->resp.data, is->resp.len));
    }
    if (imap_atom_eq(&t, "BYE")) {
        rest_text(&c, shown, sizeof(shown));
        imap_cur_free(&c);
        return mbx_break(m, MAILBOX_ERROR, err, "the server said BYE: %s", shown);
    }
    status_rest(is, &c, NULL);
    imap_cur_free(&c);
    if ((st = capability(m, err)) != MAILBOX_OK)
        return st;
    if (m->tls == MAILBOX_TLS_STARTTLS) {
        if (preauth)
            return mbx_break(m, MAILBOX_ERROR, err,
                             "PREAUTH greeting: STARTTLS is impossible, and TLS is required");
        if (!is->caps.starttls)
            return mbx_break(m, MAILBOX_ERROR, err,
                             "the server does not offer STARTTLS, and TLS is required");
        if ((st = simple(m, "STARTTLS", &r, err, "STARTTLS")) != MAILBOX_OK)
            return st;
        if (r.kind != R_OK) {
            m->broken = true;
            return refused(m, MAILBOX_ERROR, "STARTTLS", &r, err);
        }
        if ((st = mbx_start_tls(m, err)) != MAILBOX_OK)
            return st;
        is->caps_known = false;         /* what came before TLS is forgotten */
        memset(&is->caps, 0, sizeof(is->caps));
        if ((st = capability(m, err)) != MAILBOX_OK)
            return st;
    }
    if (!preauth) {
        if ((st = login(m, err)) != MAILBOX_OK)
            return st;
        if ((st = capability(m, err)) != MAILBOX_OK)
            return st;
    }
    return select_folder(m, err);
}

/* ============================================================== listing */

static int found_cmp(const void *a, const void *b)
{
    uint64_t x = ((const uid_size *)a)->uid, y = ((const uid_size *)b)->uid;

    return x < y ? -1 : x > y;
}

static mailbox_status imap_list(mailbox_t *m, mailbox_msg **msgs, size_t *n,
                                char uidvalidity[32], char **err)
{
    imap_state *is = st_of(m);
    imap_result r;
    mailbox_status st = MAILBOX_OK;
    size_t k = 0;

    is->n_found = 0;
    if (is->exists > 0) {
        is->listing = true;
        st = simple(m, "UID FETCH", &r, err, "UID FETCH 1:* (UID RFC822.SIZE)");
        is->listing = false;
        if (st != MAILBOX_OK)
            return st;
        if (r.kind != R_OK)
            return refused(m, MAILBOX_ERROR, "UID FETCH 1:*", &r, err);
    }
    /* one entry per UID (a server may repeat a FETCH): the last wins */
    if (is->n_found > 1)                /* found is NULL for an empty folder */
        qsort(is->found, is->n_found, sizeof(*is->found), found_cmp);
    *msgs = xcalloc(is->n_found ? is->n_found : 1, sizeof(**msgs));
    m->index = xcalloc(is->n_found ? is->n_found : 1, sizeof(*m->index));
    for (size_t i = 0; i < is->n_found; i++) {
        if (i + 1 < is->n_found && is->found[i + 1].uid == is->found[i].uid)
            continue;
        if (is->found[i].size > SIZE_MAX / 2)
            return mbx_break(m, MAILBOX_ERROR, err, "message uid %llu has an absurd size",
                             (unsigned long long)is->found[i].uid);
        (*msgs)[k].uid = xasprintf("%llu", (unsigned long long)is->found[i].uid);
        (*msgs)[k].size = (size_t)is->found[i].size;
        m->index[k].uid = xstrdup((*msgs)[k].uid);
        m->index[k].id = is->found[i].uid;
        m->index[k].size = (size_t)is->found[i].size;
        k++;
        *n = k;
        m->n_index = k;
    }
    snprintf(uidvalidity, 32, "%s", is->uidvalidity);
    return MAILBOX_OK;
}

/* ==================================================== fetch and delete */

static mailbox_status imap_fetch(mailbox_t *m, const mbx_entry *e, size_t max, buf_t *out,
                                 char **err)
{
    imap_state *is = st_of(m);
    imap_result r;
    mailbox_status st;

    if (out->data == NULL)
        buf_append(out, "", 0);         /* fetch_start indexes it */
    is->fetching = true;
    is->fetch_uid = e->id;
    is->fetch_max = max;
    is->fetch_out = out;
    is->got_body = false;
    st = simple(m, "UID FETCH", &r, err, "UID FETCH %llu BODY.PEEK[]",
                (unsigned long long)e->id);
    is->fetching = false;
    is->fetch_out = NULL;
    if (st != MAILBOX_OK)
        return st;
    if (r.kind == R_BAD)
        return refused(m, MAILBOX_ERROR, "UID FETCH", &r, err);
    if (r.kind == R_NO)
        return refused(m, MAILBOX_GONE, "UID FETCH", &r, err);
    if (!is->got_body)
        return mbx_fail(m, MAILBOX_GONE, err, "message uid %llu is gone (no FETCH data)",
                        (unsigned long long)e->id);
    return MAILBOX_OK;
}

static mailbox_status imap_del(mailbox_t *m, const mbx_entry *e, char **err)
{
    imap_state *is = st_of(m);
    imap_result r;
    mailbox_status st;

    st = simple(m, "UID STORE", &r, err, "UID STORE %llu +FLAGS.SILENT (\\Deleted)",
                (unsigned long long)e->id);
    if (st != MAILBOX_OK)
        return st;
    if (r.kind == R_BAD)
        return refused(m, MAILBOX_ERROR, "UID STORE", &r, err);
    if (r.kind == R_NO)
        return refused(m, MAILBOX_GONE, "UID STORE", &r, err);
    if (is->n_deleted == is->cap_deleted) {
        is->cap_deleted = is->cap_deleted ? is->cap_deleted * 2 : 64;
        is->deleted = xrealloc(is->deleted, is->cap_deleted * sizeof(*is->deleted));
    }
    is->deleted[is->n_deleted++] = e->id;
    return MAILBOX_OK;
}

/* ================================================================ close */

static int u64_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

/* uid_sets - run "PREFIX SET SUFFIX" over the deleted UIDs, SET at most
 * about UID_SET_MAX characters per command ("3:7,9"). */
static mailbox_status uid_sets(mailbox_t *m, const char *what, const char *prefix,
                               const char *suffix, char **err)
{
    imap_state *is = st_of(m);
    size_t i = 0;
    imap_result r;
    mailbox_status st;

    if (is->n_deleted > 1)
        qsort(is->deleted, is->n_deleted, sizeof(*is->deleted), u64_cmp);
    while (i < is->n_deleted) {
        buf_t set = BUF_INIT;

        while (i < is->n_deleted && set.len < UID_SET_MAX) {
            size_t j = i;

            while (j + 1 < is->n_deleted && is->deleted[j + 1] <= is->deleted[j] + 1)
                j++;
            if (set.len > 0)
                buf_append_char(&set, ',');
            if (j > i && is->deleted[j] != is->deleted[i])
                buf_printf(&set, "%llu:%llu", (unsigned long long)is->deleted[i],
                           (unsigned long long)is->deleted[j]);
            else
                buf_printf(&set, "%llu", (unsigned long long)is->deleted[i]);
            i = j + 1;
        }
        st = simple(m, what, &r, err, "%s %s%s", prefix, set.data, suffix);
        buf_free(&set);
        if (st != MAILBOX_OK)
            return st;
        if (r.kind != R_OK)
            return refused(m, MAILBOX_ERROR, what, &r, err);
    }
    return MAILBOX_OK;
}

static mailbox_status imap_finish(mailbox_t *m, bool commit, char **err)
{
    imap_state *is = st_of(m);
    mailbox_status st = MAILBOX_OK;
    char *ignored = NULL;
    imap_result r;

    if (is == NULL)
        return MAILBOX_OK;
    if (m->broken) {
        if (commit && is->n_deleted > 0)
            return mbx_fail(m, MAILBOX_ERROR, err,
                            "the session failed before EXPUNGE: no message was deleted");
        return MAILBOX_OK;
    }
    if (is->n_deleted > 0) {
        if (!commit)
            (void)uid_sets(m, "UID STORE", "UID STORE", " -FLAGS.SILENT (\\Deleted)", &ignored);
        else if (is->caps.uidplus)
            st = uid_sets(m, "UID EXPUNGE", "UID EXPUNGE", "", err);
        else if ((st = simple(m, "EXPUNGE", &r, err, "EXPUNGE")) == MAILBOX_OK && r.kind != R_OK)
            st = refused(m, MAILBOX_ERROR, "EXPUNGE", &r, err);
    }
    xfree(&ignored);
    if (!m->broken) {
        (void)simple(m, "LOGOUT", &r, &ignored, "LOGOUT");
        xfree(&ignored);
    }
    return commit ? st : MAILBOX_OK;
}

static void imap_free_priv(mailbox_t *m)
{
    imap_state *is = st_of(m);

    if (is == NULL)
        return;
    buf_free(&is->resp);
    buf_free(&is->line);
    xfree(&is->found);
    xfree(&is->deleted);
    xfree(&m->priv);
}

const mbx_ops mbx_imap_ops = {
    .open = imap_open,
    .list = imap_list,
    .fetch = imap_fetch,
    .del = imap_del,
    .finish = imap_finish,
    .free_priv = imap_free_priv,
};
