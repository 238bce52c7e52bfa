/* pop3.c - the POP3 side of a mailbox session (RFC 1939, CAPA of RFC
 * 2449, STLS of RFC 2595, AUTH PLAIN of RFC 5034, response codes of RFC
 * 3206), under mailbox.c's line I/O.
 *
 * A session: greeting -> CAPA -> (STLS -> CAPA) -> AUTH PLAIN when SASL
 * PLAIN is offered, else USER/PASS -> UIDL and LIST -> RETR and DELE ->
 * QUIT (commit), or RSET and QUIT, or no QUIT at all (no commit).
 *
 * Limits: status lines POP3_LINE_MAX, UIDL/LIST/CAPA lines
 * POP3_LIST_LINE_MAX, a message's lines only by the caller's max (a
 * message longer than max is cut off: MAILBOX_TOO_BIG, session broken).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "mailbox_int.h"
#include "xalloc.h"

#define CAPA_LINES_MAX 200      /* lines of a CAPA answer */

/* What CAPA offered. */
typedef struct pop3_state {
    bool   capa_known;          /* CAPA answered +OK */
    bool   stls, uidl, sasl_plain;
    bool   deleted;             /* a DELE was accepted */
    buf_t  line;
} pop3_state;

/* -------------------------------------------------------------- parsers */

pop3_kind pop3_parse_status(const char *line, size_t len, const char **text)
{
    static const struct {
        const char *word;
        size_t      len;
        pop3_kind   kind;
    } words[] = {{"+OK", 3, POP3_OK}, {"-ERR", 4, POP3_ERR}, {"+", 1, POP3_CONT}};

    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        size_t n = words[i].len;

        if (len >= n && strncasecmp(line, words[i].word, n) == 0
            && (len == n || line[n] == ' ')) {
            *text = line + (len > n ? n + 1 : n);
            return words[i].kind;
        }
    }
    *text = line;
    return POP3_BAD;
}

/* parse_u64 - decimal digits at *p (at most 19): false when none. */
static bool parse_u64(const char **p, const char *end, uint64_t *v)
{
    const char *s = *p;
    uint64_t n = 0;

    while (s < end && *s >= '0' && *s <= '9' && s - *p < 19)
        n = n * 10 + (uint64_t)(*s++ - '0');
    if (s == *p || (s < end && *s >= '0' && *s <= '9'))
        return false;
    *v = n;
    *p = s;
    return true;
}

bool pop3_parse_uidl(const char *line, size_t len, uint64_t *num, char uid[POP3_UID_MAX + 1])
{
    const char *p = line, *end = line + len, *u;

    if (!parse_u64(&p, end, num) || *num == 0 || p >= end || *p != ' ')
        return false;
    while (p < end && *p == ' ')
        p++;
    u = p;
    while (p < end && *p > 0x20 && *p < 0x7f)
        p++;
    if (p == u || p - u > POP3_UID_MAX)
        return false;
    memcpy(uid, u, (size_t)(p - u));
    uid[p - u] = 0;
    while (p < end && *p == ' ')    /* trailing blanks are seen in the wild */
        p++;
    return p == end;
}

bool pop3_parse_list(const char *line, size_t len, uint64_t *num, uint64_t *size)
{
    const char *p = line, *end = line + len;

    if (!parse_u64(&p, end, num) || *num == 0 || p >= end || *p != ' ')
        return false;
    while (p < end && *p == ' ')
        p++;
    return parse_u64(&p, end, size) && (p == end || *p == ' ');
}

void pop3_resp_code(const char *text, char *code, size_t size)
{
    const char *close;
    size_t n;

    code[0] = 0;
    if (text[0] != '[' || (close = strchr(text, ']')) == NULL)
        return;
    n = (size_t)(close - text - 1);
    if (n >= size)
        n = size - 1;
    memcpy(code, text + 1, n);
    code[n] = 0;
}

/* ------------------------------------------------------------- commands */

static pop3_state *st_of(mailbox_t *m)
{
    return m->priv;
}

/* status_line - read one status line; *kind, *text (into the state's
 * line buffer).  Garbage breaks the session. */
static mailbox_status status_line(mailbox_t *m, const char *what, pop3_kind *kind,
                                  const char **text, char **err)
{
    pop3_state *ps = st_of(m);
    char doing[64], shown[MBX_ERR_TEXT_MAX];

    snprintf(doing, sizeof(doing), "reading the reply to %s", what);
    if (mbx_read_line(m, POP3_LINE_MAX, &ps->line, doing, err) != MAILBOX_OK)
        return MAILBOX_ERROR;
    *kind = pop3_parse_status(ps->line.data, ps->line.len, text);
    /* "+ challenge" is only an answer inside AUTH */
    if (*kind == POP3_BAD || (*kind == POP3_CONT && strncmp(what, "AUTH", 4) != 0))
        return mbx_break(m, MAILBOX_ERROR, err, "unexpected reply to %s: \"%s\"", what,
                         mbx_shown(shown, sizeof(shown), ps->line.data, ps->line.len));
    return MAILBOX_OK;
}

/* command - send "cmd\r\n" (what names it in texts: never the secret)
 * and read the status line. */
static mailbox_status command(mailbox_t *m, const char *cmd, const char *what,
                              pop3_kind *kind, const char **text, char **err)
{
    buf_t b = BUF_INIT;
    mailbox_status st;
    char doing[64];

    buf_printf(&b, "%s\r\n", cmd);
    snprintf(doing, sizeof(doing), "sending %s", what);
    st = mbx_write(m, b.data, b.len, doing, err);
    if (b.data != NULL)
        explicit_bzero(b.data, b.len);
    buf_free(&b);
    if (st != MAILBOX_OK)
        return st;
    return status_line(m, what, kind, text, err);
}

/* refused - the server said -ERR (or something unexpected) to what. */
static mailbox_status refused(mailbox_t *m, mailbox_status st, const char *what,
                              const char *text, char **err)
{
    char shown[MBX_ERR_TEXT_MAX];

    return mbx_fail(m, st, err, "%s refused: %s", what,
                    mbx_shown(shown, sizeof(shown), text, strlen(text)));
}

/* multiline - the lines of a multi-line answer until ".", dot-unstuffed,
 * each to fn (which may stop everything with false: the session is then
 * broken by fn).  At most lines_max lines. */
static mailbox_status multiline(mailbox_t *m, const char *what, size_t lines_max,
                                bool (*fn)(mailbox_t *m, const char *line, size_t len,
                                           void *arg, char **err),
                                void *arg, char **err)
{
    pop3_state *ps = st_of(m);
    char doing[64];
    size_t count = 0;

    snprintf(doing, sizeof(doing), "reading the answer to %s", what);
    for (;;) {
        const char *l;
        size_t len;

        if (mbx_read_line(m, POP3_LIST_LINE_MAX, &ps->line, doing, err) != MAILBOX_OK)
            return MAILBOX_ERROR;
        l = ps->line.data;
        len = ps->line.len;
        if (len == 1 && l[0] == '.')
            return MAILBOX_OK;
        if (len > 0 && l[0] == '.') {
            l++;
            len--;
        }
        if (++count > lines_max)
            return mbx_break(m, MAILBOX_ERROR, err, "more than %zu lines in the answer to %s",
                             lines_max, what);
        if (!fn(m, l, len, arg, err))
            return MAILBOX_ERROR;
    }
}

/* word_eq - the first word of line (len bytes) is word, any case. */
static bool word_eq(const char *line, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len >= n && strncasecmp(line, word, n) == 0 && (len == n || line[n] == ' ');
}

static bool on_capa(mailbox_t *m, const char *l, size_t len, void *arg, char **err)
{
    pop3_state *ps = st_of(m);

    (void)arg;
    (void)err;
    if (word_eq(l, len, "STLS"))
        ps->stls = true;
    else if (word_eq(l, len, "UIDL"))
        ps->uidl = true;
    else if (word_eq(l, len, "SASL")) {
        for (size_t i = 4; i + 5 <= len; i++)
            if (l[i - 1] == ' ' && strncasecmp(l + i, "PLAIN", 5) == 0
                && (i + 5 == len || l[i + 5] == ' '))
                ps->sasl_plain = true;
    }
    return true;
}

/* capa - ask what the server offers (forgetting what it said before). */
static mailbox_status capa(mailbox_t *m, char **err)
{
    pop3_state *ps = st_of(m);
    const char *text;
    pop3_kind kind;

    ps->capa_known = ps->stls = ps->uidl = ps->sasl_plain = false;
    if (command(m, "CAPA", "CAPA", &kind, &text, err) != MAILBOX_OK)
        return MAILBOX_ERROR;
    if (kind != POP3_OK)
        return MAILBOX_OK;              /* an RFC 1939 server: no capabilities */
    ps->capa_known = true;
    return multiline(m, "CAPA", CAPA_LINES_MAX, on_capa, NULL, err);
}

/* auth_refused - -ERR to a credential: AUTH_FAILED, unless the response
 * code says the trouble is elsewhere (RFC 3206, RFC 2449 IN-USE). */
static mailbox_status auth_refused(mailbox_t *m, const char *what, const char *text,
                                   char **err)
{
    char code[32];

    pop3_resp_code(text, code, sizeof(code));
    if (strcasecmp(code, "SYS/TEMP") == 0 || strcasecmp(code, "SYS/PERM") == 0
        || strcasecmp(code, "IN-USE") == 0 || strcasecmp(code, "LOGIN-DELAY") == 0)
        return refused(m, MAILBOX_ERROR, what, text, err);
    return refused(m, MAILBOX_AUTH_FAILED, what, text, err);
}

/* login - AUTH PLAIN with the initial response, or USER and PASS. */
static mailbox_status login(mailbox_t *m, char **err)
{
    pop3_state *ps = st_of(m);
    const char *text;
    pop3_kind kind;
    buf_t plain = BUF_INIT, b64 = BUF_INIT, cmd = BUF_INIT;
    mailbox_status st;

    if (strpbrk(m->user, "\r\n") != NULL || strpbrk(m->password, "\r\n") != NULL)
        return mbx_fail(m, MAILBOX_AUTH_FAILED, err,
                        "the user name or password holds a line break");
    if (ps->sasl_plain) {
        buf_append_char(&plain, 0);
        buf_append_str(&plain, m->user);
        buf_append_char(&plain, 0);
        buf_append_str(&plain, m->password);
        base64_encode(&b64, plain.data, plain.len);
        explicit_bzero(plain.data, plain.len);
        buf_free(&plain);
        xfree(&m->secret_b64);
        m->secret_b64 = xstrdup(b64.data);
        buf_printf(&cmd, "AUTH PLAIN %s", b64.data);
        st = command(m, cmd.data, "AUTH PLAIN", &kind, &text, err);
        if (st == MAILBOX_OK && kind == POP3_CONT)     /* wants it in a second step */
            st = command(m, b64.data, "AUTH PLAIN response", &kind, &text, err);
        explicit_bzero(cmd.data, cmd.len);
        explicit_bzero(b64.data, b64.len);
        buf_free(&cmd);
        buf_free(&b64);
        if (st != MAILBOX_OK)
            return st;
        if (kind != POP3_OK)
            return auth_refused(m, "AUTH PLAIN", kind == POP3_CONT ? "another challenge" : text,
                                err);
        return MAILBOX_OK;
    }
    buf_printf(&cmd, "USER %s", m->user);
    st = command(m, cmd.data, "USER", &kind, &text, err);
    buf_free(&cmd);
    if (st != MAILBOX_OK)
        return st;
    if (kind != POP3_OK)
        return auth_refused(m, "USER", text, err);
    buf_printf(&cmd, "PASS %s", m->password);
    st = command(m, cmd.data, "PASS", &kind, &text, err);
    explicit_bzero(cmd.data, cmd.len);
    buf_free(&cmd);
    if (st != MAILBOX_OK)
        return st;
    if (kind != POP3_OK)
        return auth_refused(m, "PASS", text, err);
    return MAILBOX_OK;
}

static mailbox_status pop3_open(mailbox_t *m, char **err)
{
    pop3_state *ps = xcalloc(1, sizeof(*ps));
    const char *text;
    pop3_kind kind;

    buf_init(&ps->line);
    m->priv = ps;
    if (status_line(m, "the greeting", &kind, &text, err) != MAILBOX_OK)
        return MAILBOX_ERROR;
    if (kind != POP3_OK) {
        m->broken = true;
        return refused(m, MAILBOX_ERROR, "the connection", text, err);
    }
    if (capa(m, err) != MAILBOX_OK)
        return MAILBOX_ERROR;
    if (m->tls == MAILBOX_TLS_STARTTLS) {
        if (!ps->stls)
            return mbx_break(m, MAILBOX_ERROR, err,
                             "the server does not offer STLS, and TLS is required");
        if (command(m, "STLS", "STLS", &kind, &text, err) != MAILBOX_OK)
            return MAILBOX_ERROR;
        if (kind != POP3_OK)
            return refused(m, MAILBOX_ERROR, "STLS", text, err);
        if (mbx_start_tls(m, err) != MAILBOX_OK || capa(m, err) != MAILBOX_OK)
            return MAILBOX_ERROR;
    }
    return login(m, err);
}

/* ---------------------------------------------------------------- listing */

/* One line of UIDL or LIST. */
typedef struct num_item {
    uint64_t num;
    uint64_t value;             /* LIST: the size */
    char    *uid;               /* UIDL: the uid */
} num_item;

typedef struct num_list {
    num_item *v;
    size_t    n, cap;
} num_list;

static num_item *list_add(num_list *l)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 64;
        l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
    }
    memset(&l->v[l->n], 0, sizeof(l->v[0]));
    return &l->v[l->n++];
}

static void list_free(num_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        xfree(&l->v[i].uid);
    xfree(&l->v);
    l->n = l->cap = 0;
}

static int item_cmp(const void *a, const void *b)
{
    uint64_t x = ((const num_item *)a)->num, y = ((const num_item *)b)->num;

    return x < y ? -1 : x > y;
}

static bool on_uidl(mailbox_t *m, const char *l, size_t len, void *arg, char **err)
{
    char uid[POP3_UID_MAX + 1], shown[MBX_ERR_TEXT_MAX];
    uint64_t num;
    num_item *it;

    if (!pop3_parse_uidl(l, len, &num, uid)) {
        mbx_break(m, MAILBOX_ERROR, err, "bad UIDL line \"%s\"",
                  mbx_shown(shown, sizeof(shown), l, len));
        return false;
    }
    it = list_add(arg);
    it->num = num;
    it->uid = xstrdup(uid);
    return true;
}

static bool on_list(mailbox_t *m, const char *l, size_t len, void *arg, char **err)
{
    char shown[MBX_ERR_TEXT_MAX];
    uint64_t num, size;
    num_item *it;

    if (!pop3_parse_list(l, len, &num, &size)) {
        mbx_break(m, MAILBOX_ERROR, err, "bad LIST line \"%s\"",
                  mbx_shown(shown, sizeof(shown), l, len));
        return false;
    }
    it = list_add(arg);
    it->num = num;
    it->value = size;
    return true;
}

/* sorted_unique - sort l by number; false when a number repeats. */
static bool sorted_unique(num_list *l)
{
    if (l->n > 1)                       /* l->v is NULL for an empty mailbox */
        qsort(l->v, l->n, sizeof(*l->v), item_cmp);
    for (size_t i = 1; i < l->n; i++)
        if (l->v[i].num == l->v[i - 1].num)
            return false;
    return true;
}

static mailbox_status pop3_list(mailbox_t *m, mailbox_msg **msgs, size_t *n,
                                char uidvalidity[32], char **err)
{
    num_list uidl = {0}, list = {0};
    const char *text;
    pop3_kind kind;
    mailbox_status st = MAILBOX_ERROR;
    size_t j = 0;

    uidvalidity[0] = 0;
    if (command(m, "UIDL", "UIDL", &kind, &text, err) != MAILBOX_OK)
        goto out;
    if (kind != POP3_OK) {
        mbx_break(m, MAILBOX_ERROR, err, "server lacks UIDL");
        goto out;
    }
    if (multiline(m, "UIDL", MAILBOX_LIST_MAX, on_uidl, &uidl, err) != MAILBOX_OK
        || command(m, "LIST", "LIST", &kind, &text, err) != MAILBOX_OK)
        goto out;
    if (kind != POP3_OK) {
        refused(m, MAILBOX_ERROR, "LIST", text, err);
        m->broken = true;
        goto out;
    }
    if (multiline(m, "LIST", MAILBOX_LIST_MAX, on_list, &list, err) != MAILBOX_OK)
        goto out;
    if (!sorted_unique(&uidl) || !sorted_unique(&list)) {
        mbx_break(m, MAILBOX_ERROR, err, "a message number repeats in UIDL or LIST");
        goto out;
    }
    *msgs = xcalloc(uidl.n ? uidl.n : 1, sizeof(**msgs));
    m->index = xcalloc(uidl.n ? uidl.n : 1, sizeof(*m->index));
    for (size_t i = 0; i < uidl.n; i++) {
        while (j < list.n && list.v[j].num < uidl.v[i].num)
            j++;
        if (j == list.n || list.v[j].num != uidl.v[i].num) {
            mbx_break(m, MAILBOX_ERROR, err, "message %llu is in UIDL but not in LIST",
                      (unsigned long long)uidl.v[i].num);
            goto out;
        }
        if (list.v[j].value > SIZE_MAX / 2) {
            mbx_break(m, MAILBOX_ERROR, err, "message %llu has an absurd size",
                      (unsigned long long)uidl.v[i].num);
            goto out;
        }
        (*msgs)[i].uid = xstrdup(uidl.v[i].uid);
        (*msgs)[i].size = (size_t)list.v[j].value;
        (*n)++;
        m->index[i].uid = uidl.v[i].uid;
        uidl.v[i].uid = NULL;
        m->index[i].id = uidl.v[i].num;
        m->index[i].size = (size_t)list.v[j].value;
        m->n_index++;
    }
    st = MAILBOX_OK;
out:
    list_free(&uidl);
    list_free(&list);
    return st;
}

/* ------------------------------------------------------- fetch and delete */

static mailbox_status pop3_fetch(mailbox_t *m, const mbx_entry *e, size_t max, buf_t *out,
                                 char **err)
{
    pop3_state *ps = st_of(m);
    size_t got = 0;
    const char *text;
    pop3_kind kind;
    char cmd[48];
    bool too_long;

    snprintf(cmd, sizeof(cmd), "RETR %llu", (unsigned long long)e->id);
    if (command(m, cmd, "RETR", &kind, &text, err) != MAILBOX_OK)
        return MAILBOX_ERROR;
    if (kind != POP3_OK)
        return refused(m, MAILBOX_GONE, "RETR", text, err);
    for (;;) {
        /* a line may be as long as what is left of max, with its CRLF
         * and a stuffed dot */
        size_t cap = max - got + 3;
        const char *l;
        size_t len;

        if (mbx_read_line_capped(m, cap < POP3_LINE_MAX ? POP3_LINE_MAX : cap, &ps->line,
                                 "reading a message (RETR)", err, &too_long) != MAILBOX_OK)
            return too_long ? mbx_fail(m, MAILBOX_TOO_BIG, err,
                                       "message %llu is longer than %zu bytes (LIST said %zu)",
                                       (unsigned long long)e->id, max, e->size)
                            : MAILBOX_ERROR;
        l = ps->line.data;
        len = ps->line.len;
        if (len == 1 && l[0] == '.')
            return MAILBOX_OK;
        if (len > 0 && l[0] == '.') {
            l++;
            len--;
        }
        if (len + 2 > max - got)
            return mbx_break(m, MAILBOX_TOO_BIG, err,
                             "message %llu is longer than %zu bytes (LIST said %zu)",
                             (unsigned long long)e->id, max, e->size);
        buf_append(out, l, len);
        buf_append(out, "\r\n", 2);
        got += len + 2;
    }
}

static mailbox_status pop3_del(mailbox_t *m, const mbx_entry *e, char **err)
{
    const char *text;
    pop3_kind kind;
    char cmd[48];

    snprintf(cmd, sizeof(cmd), "DELE %llu", (unsigned long long)e->id);
    if (command(m, cmd, "DELE", &kind, &text, err) != MAILBOX_OK)
        return MAILBOX_ERROR;
    if (kind != POP3_OK)
        return refused(m, MAILBOX_GONE, "DELE", text, err);
    st_of(m)->deleted = true;
    return MAILBOX_OK;
}

/* ------------------------------------------------------------------ close */

static mailbox_status pop3_finish(mailbox_t *m, bool commit, char **err)
{
    pop3_state *ps = st_of(m);
    const char *text;
    pop3_kind kind;
    char *ignored = NULL;

    if (ps == NULL)
        return MAILBOX_OK;
    if (m->broken) {
        if (commit && ps->deleted)
            return mbx_fail(m, MAILBOX_ERROR, err,
                            "the session failed before QUIT: no message was deleted");
        return MAILBOX_OK;
    }
    if (commit) {
        if (command(m, "QUIT", "QUIT", &kind, &text, err) != MAILBOX_OK)
            return MAILBOX_ERROR;
        if (kind != POP3_OK)
            return refused(m, MAILBOX_ERROR, "QUIT", text, err);
        return MAILBOX_OK;
    }
    /* no commit: RSET takes the DELEs back; without its +OK, no QUIT */
    if (ps->deleted && (command(m, "RSET", "RSET", &kind, &text, &ignored) != MAILBOX_OK
                        || kind != POP3_OK)) {
        m->broken = true;
        xfree(&ignored);
        return MAILBOX_OK;
    }
    (void)command(m, "QUIT", "QUIT", &kind, &text, &ignored);
    xfree(&ignored);
    return MAILBOX_OK;
}

static void pop3_free_priv(mailbox_t *m)
{
    pop3_state *ps = st_of(m);

    if (ps == NULL)
        return;
    buf_free(&ps->line);
    xfree(&m->priv);
}

const mbx_ops mbx_pop3_ops = {
    .open = pop3_open,
    .list = pop3_list,
    .fetch = pop3_fetch,
    .del = pop3_del,
    .finish = pop3_finish,
    .free_priv = pop3_free_priv,
};
