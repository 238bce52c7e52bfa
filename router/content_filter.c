/* content_filter.c - IceWarp-style content filter rules: the parser for
 * content_filters_file and the evaluator the router runs once every
 * recipient is routed (see content_filter.h).  Everything the evaluator
 * reads comes from outside (addresses, header fields, the client's IP):
 * it is only matched against, never trusted as a length or a path, and a
 * header value built from it loses CR, LF and NUL before it is added. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "address.h"
#include "buf.h"
#include "cidr.h"
#include "content_filter.h"
#include "log.h"
#include "xalloc.h"

#define CF_LINE_MAX      998        /* RFC 5322 2.1.1, without the CRLF */
#define CF_HEADER_MAX    8192       /* one added field, folded, at most */
#define CF_FILE_MAX      (4 << 20)  /* a rule file larger than this is a mistake */

/* ------------------------------------------------------------ the rules */

typedef enum {
    CF_AND, CF_OR, CF_NOT,
    CF_SENDER_IS, CF_SENDER_RE,
    CF_RCPT_IS, CF_RCPT_RE, CF_RCPT_LOCAL, CF_RCPT_REMOTE,
    CF_HEADER_RE,
    CF_SIZE_OVER,
    CF_CLIENT_IN,
    CF_AUTH_IS, CF_AUTHENTICATED,
    CF_SCORE_OVER,
} cf_kind;

/* One node of a condition. */
typedef struct cf_node {
    cf_kind         kind;
    struct cf_node *a, *b;      /* AND, OR: both; NOT: a */
    char           *text;       /* *_IS: the address; HEADER_RE: the field name */
    pcre2_code     *re;         /* *_RE */
    unsigned long long size;    /* SIZE_OVER */
    double          score;      /* SCORE_OVER */
    cidr_list_t    *cidr;       /* CLIENT_IN */
} cf_node;

typedef enum { CF_ADD_HEADER, CF_EDIT_HEADER, CF_COPY, CF_REDIRECT, CF_DISCARD, CF_SET_SPAM, CF_STOP } cf_action_kind;

typedef struct cf_action {
    cf_action_kind kind;
    char          *text;        /* ADD_HEADER, EDIT_HEADER: "Name: value";
                                 * COPY, REDIRECT: the address */
} cf_action;

typedef struct cf_rule {
    char      *name;
    int        line;
    cf_node   *when;            /* NULL: always */
    cf_action *actions;
    size_t     n_actions;
} cf_rule;

struct content_filter {
    cf_rule *rules;
    size_t   n;
};

static void cf_node_free(cf_node **np)
{
    cf_node *n = *np;
    if (!n)
        return;
    cf_node_free(&n->a);
    cf_node_free(&n->b);
    xfree(&n->text);
    if (n->re)
        pcre2_code_free(n->re);
    cidr_list_free(&n->cidr);
    xfree(np);
}

void content_filter_free(content_filter_t **cfp)
{
    content_filter_t *cf = *cfp;
    if (!cf)
        return;
    for (size_t i = 0; i < cf->n; i++) {
        cf_rule *r = &cf->rules[i];
        xfree(&r->name);
        cf_node_free(&r->when);
        for (size_t k = 0; k < r->n_actions; k++)
            xfree(&r->actions[k].text);
        xfree(&r->actions);
    }
    xfree(&cf->rules);
    xfree(cfp);
}

size_t content_filter_count(const content_filter_t *cf)
{
    return cf ? cf->n : 0;
}

/* ------------------------------------------------------------ the lexer */

typedef enum { TOK_WORD, TOK_STRING, TOK_REGEX, TOK_LPAREN, TOK_RPAREN, TOK_SEMI, TOK_EOF } cf_tok_type;

typedef struct cf_token {
    cf_tok_type type;
    char       *text;       /* WORD, STRING (unescaped), REGEX (the pattern) */
    size_t      len;
    int         line;
} cf_token;

typedef struct cf_parser {
    const char *name;       /* the file, for error messages */
    cf_token   *tok;
    size_t      n, pos;
    char       *err;        /* the first error, "name:line: what" */
} cf_parser;

/* cf_error - record the first error, at line. */
static void cf_error(cf_parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void cf_error(cf_parser *p, int line, const char *fmt, ...)
{
    if (p->err)
        return;
    buf_t b = BUF_INIT;
    va_list ap;
    buf_printf(&b, "%s:%d: ", p->name, line);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    p->err = buf_steal(&b, NULL);
}

static void cf_push(cf_parser *p, cf_tok_type type, const char *text, size_t len, int line)
{
    p->tok = xrealloc(p->tok, (p->n + 1) * sizeof *p->tok);
    p->tok[p->n].type = type;
    p->tok[p->n].text = text ? xmemdup(text, len) : NULL;
    p->tok[p->n].len = len;
    p->tok[p->n].line = line;
    p->n++;
}

/* cf_lex - the whole text into tokens; 0, or -1 with p->err set.  Strings
 * and patterns end on their line. */
static int cf_lex(cf_parser *p, const char *s, size_t len)
{
    int line = 1;
    size_t i = 0;

    while (i < len) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') {
            line++;
            i++;
        } else if (ch == ' ' || ch == '\t' || ch == '\r') {
            i++;
        } else if (ch == '#') {
            while (i < len && s[i] != '\n')
                i++;
        } else if (ch == '(' || ch == ')' || ch == ';') {
            cf_push(p, ch == '(' ? TOK_LPAREN : ch == ')' ? TOK_RPAREN : TOK_SEMI, NULL, 0, line);
            i++;
        } else if (ch == '"') {
            buf_t b = BUF_INIT;
            for (i++; i < len && s[i] != '"' && s[i] != '\n'; i++) {
                if (s[i] == '\\' && i + 1 < len && (s[i + 1] == '"' || s[i + 1] == '\\'))
                    i++;
                buf_append_char(&b, s[i]);
            }
            if (i >= len || s[i] != '"') {
                buf_free(&b);
                cf_error(p, line, "no closing \" on this line");
                return -1;
            }
            i++;
            cf_push(p, TOK_STRING, b.data ? b.data : "", b.len, line);
            buf_free(&b);
        } else if (ch == '/') {
            size_t start = ++i;
            for (; i < len && s[i] != '/' && s[i] != '\n'; i++)
                if (s[i] == '\\' && i + 1 < len && s[i + 1] != '\n')
                    i++;
            if (i >= len || s[i] != '/') {
                cf_error(p, line, "no closing / after the pattern");
                return -1;
            }
            cf_push(p, TOK_REGEX, s + start, i - start, line);
            i++;
            if (i < len && !strchr(" \t\r\n();#", s[i])) {
                cf_error(p, line, "unexpected '%c' after the pattern (no flags: patterns are "
                         "case-insensitive)", isprint((unsigned char)s[i]) ? s[i] : '?');
                return -1;
            }
        } else if (ch < 0x20 || ch == 0x7f) {
            cf_error(p, line, "control character 0x%02x", ch);
            return -1;
        } else {
            size_t start = i;
            while (i < len && !strchr(" \t\r\n();#\"", s[i]) && (unsigned char)s[i] >= 0x20
                   && s[i] != 0x7f)
                i++;
            cf_push(p, TOK_WORD, s + start, i - start, line);
        }
    }
    cf_push(p, TOK_EOF, NULL, 0, line);
    return 0;
}

/* ------------------------------------------------------------ the parser */

static cf_token *cf_peek(cf_parser *p)
{
    return &p->tok[p->pos];
}

static cf_token *cf_next(cf_parser *p)
{
    cf_token *t = &p->tok[p->pos];
    if (t->type != TOK_EOF)
        p->pos++;
    return t;
}

/* cf_is_word - is t the keyword w (any case)? */
static bool cf_is_word(const cf_token *t, const char *w)
{
    return t->type == TOK_WORD && strcasecmp(t->text, w) == 0;
}

/* cf_describe - t as an error message shows it. */
static const char *cf_describe(const cf_token *t, char *out, size_t size)
{
    char v[64];
    switch (t->type) {
    case TOK_EOF:    return "end of file";
    case TOK_LPAREN: return "\"(\"";
    case TOK_RPAREN: return "\")\"";
    case TOK_SEMI:   return "\";\"";
    default:
        log_printable(v, sizeof v, t->text, t->len);
        snprintf(out, size, t->type == TOK_REGEX ? "/%s/" : "\"%s\"", v);
        return out;
    }
}

/* cf_expect_word - the next token must be keyword w. */
static bool cf_expect_word(cf_parser *p, const char *w, const char *after)
{
    char d[80];
    cf_token *t = cf_next(p);
    if (cf_is_word(t, w))
        return true;
    cf_error(p, t->line, "expected \"%s\" after \"%s\", not %s", w, after,
             cf_describe(t, d, sizeof d));
    return false;
}

/* cf_address - the next token as an address (angle brackets dropped);
 * null_ok allows "<>".  NULL with p->err set when it is none. */
static char *cf_address(cf_parser *p, const char *after, bool null_ok)
{
    char d[80];
    cf_token *t = cf_next(p);
    const char *a = t->text;
    size_t n = t->len;

    if (t->type != TOK_WORD && t->type != TOK_STRING) {
        cf_error(p, t->line, "expected an address after \"%s\", not %s", after,
                 cf_describe(t, d, sizeof d));
        return NULL;
    }
    if (n >= 2 && a[0] == '<' && a[n - 1] == '>') {
        a++;
        n -= 2;
    }
    if (n == 0 && null_ok)
        return xstrdup("");
    bool ok = n > 0 && n <= ADDR_PATH_MAX && memchr(a, '@', n) && a[0] != '@' && a[n - 1] != '@';
    for (size_t i = 0; ok && i < n; i++)
        if ((unsigned char)a[i] <= ' ' || a[i] == 0x7f || a[i] == '<' || a[i] == '>')
            ok = false;
    if (!ok) {
        cf_error(p, t->line, "%s is not an address (local@domain)", cf_describe(t, d, sizeof d));
        return NULL;
    }
    return xmemdup(a, n);
}

/* cf_regex - the next token as a pattern, compiled case-insensitive. */
static pcre2_code *cf_regex(cf_parser *p, const char *after)
{
    char d[80], msg[256];
    cf_token *t = cf_next(p);
    int code;
    PCRE2_SIZE off;

    if (t->type != TOK_REGEX) {
        cf_error(p, t->line, "expected /pattern/ after \"%s\", not %s", after,
                 cf_describe(t, d, sizeof d));
        return NULL;
    }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)t->text, t->len, PCRE2_CASELESS, &code, &off, NULL);
    if (!re) {
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        cf_error(p, t->line, "bad pattern /%s/: %s (at offset %zu)",
                 log_printable(d, sizeof d, t->text, t->len), msg, (size_t)off);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);    /* an optimisation only */
    return re;
}

static cf_node *cf_new(cf_kind kind)
{
    cf_node *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    return n;
}

/* cf_size - "N", "Nk" or "Nm" (1024 and 1024*1024). */
static bool cf_size(const char *s, unsigned long long *out)
{
    char *end;
    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return false;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned long long mul = 1;
    if (errno)
        return false;
    if (*end == 'k' || *end == 'K')
        mul = 1024, end++;
    else if (*end == 'm' || *end == 'M')
        mul = 1024 * 1024, end++;
    if (*end || v > (1ULL << 50))
        return false;
    *out = v * mul;
    return true;
}

static cf_node *cf_expr(cf_parser *p);

/* cf_condition - one test (see content_filter.h). */
static cf_node *cf_condition(cf_parser *p)
{
    char d[80];
    cf_token *t = cf_next(p);
    cf_node *n = NULL;

    if (cf_is_word(t, "sender") || cf_is_word(t, "recipient")) {
        bool rcpt = cf_is_word(t, "recipient");
        const char *what = rcpt ? "recipient" : "sender";
        cf_token *v = cf_next(p);
        if (cf_is_word(v, "matches")) {
            n = cf_new(rcpt ? CF_RCPT_RE : CF_SENDER_RE);
            if ((n->re = cf_regex(p, "matches")) == NULL)
                cf_node_free(&n);
        } else if (cf_is_word(v, "is")) {
            if (rcpt && (cf_is_word(cf_peek(p), "local") || cf_is_word(cf_peek(p), "remote")))
                return cf_new(cf_is_word(cf_next(p), "local") ? CF_RCPT_LOCAL : CF_RCPT_REMOTE);
            n = cf_new(rcpt ? CF_RCPT_IS : CF_SENDER_IS);
            if ((n->text = cf_address(p, "is", !rcpt)) == NULL)
                cf_node_free(&n);
        } else {
            cf_error(p, v->line, "expected \"is\" or \"matches\" after \"%s\", not %s", what,
                     cf_describe(v, d, sizeof d));
        }
    } else if (cf_is_word(t, "header")) {
        cf_token *name = cf_next(p);
        bool ok = name->type == TOK_WORD && name->len > 0;
        for (size_t i = 0; ok && i < name->len; i++)
            if (name->text[i] == ':' || (unsigned char)name->text[i] > 126)
                ok = false;
        if (!ok) {
            cf_error(p, name->line, "expected a header field name after \"header\", not %s",
                     cf_describe(name, d, sizeof d));
        } else if (cf_expect_word(p, "matches", name->text)) {
            n = cf_new(CF_HEADER_RE);
            n->text = xstrdup(name->text);
            if ((n->re = cf_regex(p, "matches")) == NULL)
                cf_node_free(&n);
        }
    } else if (cf_is_word(t, "size")) {
        if (cf_expect_word(p, "over", "size")) {
            cf_token *v = cf_next(p);
            n = cf_new(CF_SIZE_OVER);
            if (v->type != TOK_WORD || !cf_size(v->text, &n->size)) {
                cf_error(p, v->line, "expected a size (N, Nk or Nm) after \"over\", not %s",
                         cf_describe(v, d, sizeof d));
                cf_node_free(&n);
            }
        }
    } else if (cf_is_word(t, "client")) {
        if (cf_expect_word(p, "in", "client")) {
            cf_token *v = cf_next(p);
            if (v->type != TOK_WORD) {
                cf_error(p, v->line, "expected a network (192.0.2.0/24) after \"in\", not %s",
                         cf_describe(v, d, sizeof d));
                return NULL;
            }
            /* "a,b,c": a list of networks */
            char *copy = xstrdup(v->text), *save = NULL, *why = NULL;
            char **items = xcalloc(v->len + 2, sizeof *items);
            size_t k = 0;
            for (char *it = strtok_r(copy, ",", &save); it; it = strtok_r(NULL, ",", &save))
                items[k++] = it;
            n = cf_new(CF_CLIENT_IN);
            if (k == 0 || (n->cidr = cidr_list_parse((const char *const *)items, &why)) == NULL) {
                cf_error(p, v->line, "bad network %s: %s", cf_describe(v, d, sizeof d),
                         why ? why : "empty");
                cf_node_free(&n);
            }
            xfree(&why);
            xfree(&items);
            xfree(&copy);
        }
    } else if (cf_is_word(t, "auth")) {
        if (cf_expect_word(p, "user", "auth") && cf_expect_word(p, "is", "auth user")) {
            n = cf_new(CF_AUTH_IS);
            if ((n->text = cf_address(p, "auth user is", false)) == NULL)
                cf_node_free(&n);
        }
    } else if (cf_is_word(t, "authenticated")) {
        n = cf_new(CF_AUTHENTICATED);
    } else if (cf_is_word(t, "spam")) {
        if (cf_expect_word(p, "score", "spam") && cf_expect_word(p, "over", "spam score")) {
            cf_token *v = cf_next(p);
            char *end = NULL;
            n = cf_new(CF_SCORE_OVER);
            if (v->type == TOK_WORD)
                n->score = strtod(v->text, &end);
            if (v->type != TOK_WORD || end == v->text || *end) {
                cf_error(p, v->line, "expected a number after \"spam score over\", not %s",
                         cf_describe(v, d, sizeof d));
                cf_node_free(&n);
            }
        }
    } else if (t->type == TOK_LPAREN) {
        n = cf_expr(p);
        cf_token *c = cf_next(p);
        if (n && c->type != TOK_RPAREN) {
            cf_error(p, c->line, "expected \")\", not %s", cf_describe(c, d, sizeof d));
            cf_node_free(&n);
        }
    } else {
        cf_error(p, t->line, "expected a condition (sender, recipient, header, size, client, "
                 "auth user, authenticated, spam score), not %s", cf_describe(t, d, sizeof d));
    }
    return n;
}

/* cf_factor - [not] condition. */
static cf_node *cf_factor(cf_parser *p)
{
    if (cf_is_word(cf_peek(p), "not")) {
        cf_next(p);
        cf_node *a = cf_factor(p);
        if (!a)
            return NULL;
        cf_node *n = cf_new(CF_NOT);
        n->a = a;
        return n;
    }
    return cf_condition(p);
}

/* cf_binary - left-associative chain of sub joined by word. */
static cf_node *cf_binary(cf_parser *p, const char *word, cf_kind kind, cf_node *(*sub)(cf_parser *))
{
    cf_node *left = sub(p);
    while (left && cf_is_word(cf_peek(p), word)) {
        cf_next(p);
        cf_node *right = sub(p);
        if (!right) {
            cf_node_free(&left);
            return NULL;
        }
        cf_node *n = cf_new(kind);
        n->a = left;
        n->b = right;
        left = n;
    }
    return left;
}

static cf_node *cf_term(cf_parser *p)
{
    return cf_binary(p, "and", CF_AND, cf_factor);
}

/* cf_expr - or binds looser than and, and than not. */
static cf_node *cf_expr(cf_parser *p)
{
    return cf_binary(p, "or", CF_OR, cf_term);
}

static const char *const cf_variables[] = {
    "Auth_Email", "Sender_Email", "Recipient_Email", "Client_IP", "Subject", NULL,
};

/* cf_header_ok - is t "Name: value" with a field name of printable ASCII
 * and only known %%variables%%?  false with p->err set when not. */
static bool cf_header_ok(cf_parser *p, const cf_token *t)
{
    const char *s = t->text, *colon = memchr(s, ':', t->len);
    char d[80];

    if (!colon || colon == s) {
        cf_error(p, t->line, "header %s is not \"Name: value\"", cf_describe(t, d, sizeof d));
        return false;
    }
    for (const char *c = s; c < colon; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c > 126) {
            cf_error(p, t->line, "bad header field name in %s", cf_describe(t, d, sizeof d));
            return false;
        }
    for (const char *v = strstr(colon, "%%"); v; ) {
        const char *e = strstr(v + 2, "%%");
        if (!e)
            break;
        size_t k, n = (size_t)(e - v - 2);
        for (k = 0; cf_variables[k]; k++)
            if (strlen(cf_variables[k]) == n && strncasecmp(cf_variables[k], v + 2, n) == 0)
                break;
        if (!cf_variables[k]) {
            cf_error(p, t->line, "unknown variable %%%%%s%%%% (known: %%%%Auth_Email%%%%, "
                     "%%%%Sender_Email%%%%, %%%%Recipient_Email%%%%, %%%%Client_IP%%%%, "
                     "%%%%Subject%%%%)", log_printable(d, sizeof d, v + 2, n));
            return false;
        }
        v = strstr(e + 2, "%%");
    }
    return true;
}

/* cf_action - one action into r. */
static bool cf_parse_action(cf_parser *p, cf_rule *r)
{
    char d[80];
    cf_token *t = cf_next(p);
    cf_action a = {0};

    if (cf_is_word(t, "add") || cf_is_word(t, "edit")) {
        bool edit = cf_is_word(t, "edit");
        if (!cf_expect_word(p, "header", edit ? "edit" : "add"))
            return false;
        cf_token *v = cf_next(p);
        if (v->type != TOK_STRING) {
            cf_error(p, v->line, "expected \"Name: value\" after \"%s header\", not %s",
                     edit ? "edit" : "add", cf_describe(v, d, sizeof d));
            return false;
        }
        if (!cf_header_ok(p, v))
            return false;
        a.kind = edit ? CF_EDIT_HEADER : CF_ADD_HEADER;
        a.text = xstrdup(v->text);
    } else if (cf_is_word(t, "copy") || cf_is_word(t, "redirect")) {
        bool copy = cf_is_word(t, "copy");
        if (!cf_expect_word(p, "to", copy ? "copy" : "redirect"))
            return false;
        a.kind = copy ? CF_COPY : CF_REDIRECT;
        if ((a.text = cf_address(p, "to", false)) == NULL)
            return false;
    } else if (cf_is_word(t, "discard")) {
        a.kind = CF_DISCARD;
    } else if (cf_is_word(t, "set")) {
        if (!cf_expect_word(p, "spam", "set"))
            return false;
        a.kind = CF_SET_SPAM;
    } else if (cf_is_word(t, "stop")) {
        a.kind = CF_STOP;
    } else {
        cf_error(p, t->line, "expected an action (add header, edit header, copy to, redirect to, "
                 "discard, set spam, stop), not %s", cf_describe(t, d, sizeof d));
        return false;
    }
    r->actions = xrealloc(r->actions, (r->n_actions + 1) * sizeof *r->actions);
    r->actions[r->n_actions++] = a;
    return true;
}

/* cf_rule - rule "NAME" [when EXPR] then ACTION [;] ... */
static bool cf_parse_rule(cf_parser *p, content_filter_t *cf)
{
    char d[80];
    cf_token *t = cf_next(p);
    cf_rule r = {.line = t->line};

    if (!cf_is_word(t, "rule")) {
        cf_error(p, t->line, "expected rule \"NAME\", not %s", cf_describe(t, d, sizeof d));
        return false;
    }
    t = cf_next(p);
    if (t->type != TOK_STRING || t->len == 0) {
        cf_error(p, t->line, "expected the rule's name in quotes after \"rule\", not %s",
                 cf_describe(t, d, sizeof d));
        return false;
    }
    r.name = xstrdup(t->text);
    if (cf_is_word(cf_peek(p), "when")) {
        cf_next(p);
        if ((r.when = cf_expr(p)) == NULL)
            goto fail;
    }
    t = cf_next(p);
    if (!cf_is_word(t, "then")) {
        cf_error(p, t->line, "expected %s\"then\" in rule \"%s\", not %s",
                 r.when ? "\"and\", \"or\" or " : "\"when\" or ", r.name,
                 cf_describe(t, d, sizeof d));
        goto fail;
    }
    while (cf_peek(p)->type != TOK_EOF && !cf_is_word(cf_peek(p), "rule")) {
        if (cf_peek(p)->type == TOK_SEMI) {
            cf_next(p);
            continue;
        }
        if (!cf_parse_action(p, &r))
            goto fail;
    }
    if (r.n_actions == 0) {
        cf_error(p, cf_peek(p)->line, "rule \"%s\" has no action after \"then\"", r.name);
        goto fail;
    }
    cf->rules = xrealloc(cf->rules, (cf->n + 1) * sizeof *cf->rules);
    cf->rules[cf->n++] = r;
    return true;

fail:
    xfree(&r.name);
    cf_node_free(&r.when);
    for (size_t k = 0; k < r.n_actions; k++)
        xfree(&r.actions[k].text);
    xfree(&r.actions);
    return false;
}

content_filter_t *content_filter_parse(const char *name, const char *text, size_t len,
                                       char **err)
{
    cf_parser p = {.name = name};
    content_filter_t *cf = xcalloc(1, sizeof *cf);

    *err = NULL;
    if (memchr(text, '\0', len)) {
        size_t at = (size_t)((const char *)memchr(text, '\0', len) - text);
        int line = 1;
        for (size_t i = 0; i < at; i++)
            line += text[i] == '\n';
        cf_error(&p, line, "NUL byte");
    } else if (cf_lex(&p, text, len) == 0) {
        while (cf_peek(&p)->type != TOK_EOF)
            if (!cf_parse_rule(&p, cf))
                break;
    }
    for (size_t i = 0; i < p.n; i++)
        xfree(&p.tok[i].text);
    xfree(&p.tok);
    if (p.err) {
        content_filter_free(&cf);
        *err = p.err;
        return NULL;
    }
    return cf;
}

content_filter_t *content_filter_load(const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    buf_t b = BUF_INIT;
    char chunk[8192];
    size_t n;

    *err = NULL;
    if (!f) {
        *err = xasprintf("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf_append(&b, chunk, n);
        if (b.len > CF_FILE_MAX) {
            *err = xasprintf("%s: larger than %d bytes", path, CF_FILE_MAX);
            break;
        }
    }
    if (!*err && ferror(f))
        *err = xasprintf("%s: cannot read: %s", path, strerror(errno));
    fclose(f);
    content_filter_t *cf = *err ? NULL : content_filter_parse(path, b.data ? b.data : "", b.len, err);
    buf_free(&b);
    return cf;
}

/* ------------------------------------------------------------ the evaluator */

/* The message's header section, unfolded: prepend_headers, then the
 * body's fields up to the empty line. */
typedef struct cf_header {
    char  **name, **value;
    size_t  n;
} cf_header;

/* cf_header_take - the value being collected becomes field n-1's, its
 * NUL bytes (which would end it early) turned into spaces. */
static void cf_header_take(cf_header *h, buf_t *cur)
{
    for (size_t k = 0; k < cur->len; k++)
        if (cur->data[k] == '\0')
            cur->data[k] = ' ';
    char *v = buf_steal(cur, NULL);
    h->value[h->n - 1] = v ? v : xstrdup("");
}

/* cf_header_add_lines - the fields of s[0..len) into h; stops at an
 * empty line.  A line that is neither a field nor a continuation is
 * skipped. */
static void cf_header_add_lines(cf_header *h, const char *s, size_t len)
{
    size_t i = 0;
    bool open = false;
    buf_t cur = BUF_INIT;

    while (i < len) {
        size_t e = i;
        while (e < len && s[e] != '\n')
            e++;
        size_t l = e - i;
        if (l > 0 && s[i + l - 1] == '\r')
            l--;
        if (l == 0)
            break;                              /* the end of the header */
        if (s[i] == ' ' || s[i] == '\t') {
            if (open)
                buf_append(&cur, s + i, l);     /* unfold: only the CRLF goes */
        } else {
            if (open)
                cf_header_take(h, &cur);
            open = false;
            const char *colon = memchr(s + i, ':', l);
            if (colon && colon > s + i) {
                size_t nl = (size_t)(colon - (s + i)), vo = nl + 1;
                while (nl > 0 && (s[i + nl - 1] == ' ' || s[i + nl - 1] == '\t'))
                    nl--;
                h->name = xrealloc(h->name, (h->n + 1) * sizeof *h->name);
                h->value = xrealloc(h->value, (h->n + 1) * sizeof *h->value);
                h->name[h->n] = xmemdup(s + i, nl);
                h->value[h->n] = NULL;
                h->n++;
                buf_append(&cur, s + i + vo, l - vo);
                open = true;
            }
        }
        i = e + 1;
    }
    if (open)
        cf_header_take(h, &cur);
    buf_free(&cur);
}

static void cf_header_read(cf_header *h, const Envelope *env)
{
    memset(h, 0, sizeof *h);
    for (size_t i = 0; i < env->n_prepend_headers; i++)
        cf_header_add_lines(h, (const char *)env->prepend_headers[i].data,
                            env->prepend_headers[i].len);
    cf_header_add_lines(h, (const char *)env->body.data, env->body.len);
}

static void cf_header_free(cf_header *h)
{
    for (size_t i = 0; i < h->n; i++) {
        xfree(&h->name[i]);
        xfree(&h->value[i]);
    }
    xfree(&h->name);
    xfree(&h->value);
}

/* cf_field - the first value of field name (trimmed), or "". */
static const char *cf_field(const cf_header *h, const char *name)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcasecmp(h->name[i], name) == 0) {
            const char *v = h->value[i];
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
    return "";
}

static bool cf_match(const pcre2_code *re, const char *s, size_t len)
{
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md)
        log_panic("cf_match: pcre2_match_data_create_from_pattern: out of memory");
    int rc = pcre2_match(re, (PCRE2_SPTR)s, len, 0, 0, md, NULL);
    pcre2_match_data_free(md);
    if (rc < 0 && rc != PCRE2_ERROR_NOMATCH) {
        char msg[128];
        pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
        log_warn("content filter: pattern match failed: %s; taken as no match", msg);
    }
    return rc >= 0;
}

/* What one evaluation looks at. */
typedef struct cf_ctx {
    const Envelope            *env;
    const cf_header           *hdr;
    const content_filter_rcpt *rcpt;   /* NULL when the message has none */
} cf_ctx;

static const char *cf_str(const char *s)
{
    return s ? s : "";
}

static bool cf_eval(const cf_node *n, const cf_ctx *c)
{
    const Client *cl = c->env->client;
    const char *auth = cl ? cf_str(cl->auth_user) : "";
    const char *sender = cf_str(c->env->reverse_path);

    switch (n->kind) {
    case CF_AND:
        return cf_eval(n->a, c) && cf_eval(n->b, c);
    case CF_OR:
        return cf_eval(n->a, c) || cf_eval(n->b, c);
    case CF_NOT:
        return !cf_eval(n->a, c);
    case CF_SENDER_IS:
        return strcasecmp(sender, n->text) == 0;
    case CF_SENDER_RE:
        return cf_match(n->re, sender, strlen(sender));
    case CF_RCPT_IS:
        return c->rcpt && strcasecmp(c->rcpt->address, n->text) == 0;
    case CF_RCPT_RE:
        return c->rcpt && cf_match(n->re, c->rcpt->address, strlen(c->rcpt->address));
    case CF_RCPT_LOCAL:
        return c->rcpt && c->rcpt->local;
    case CF_RCPT_REMOTE:
        return c->rcpt && !c->rcpt->local;
    case CF_HEADER_RE:
        for (size_t i = 0; i < c->hdr->n; i++)
            if (strcasecmp(c->hdr->name[i], n->text) == 0) {
                const char *v = c->hdr->value[i];
                while (*v == ' ' || *v == '\t')
                    v++;
                if (cf_match(n->re, v, strlen(v)))
                    return true;
            }
        return false;
    case CF_SIZE_OVER:
        return c->env->body.len > n->size;
    case CF_CLIENT_IN:
        return cl && cl->ip && cl->ip[0] && cidr_list_match_text(n->cidr, cl->ip);
    case CF_AUTH_IS:
        return auth[0] && strcasecmp(auth, n->text) == 0;
    case CF_AUTHENTICATED:
        return auth[0] != '\0';
    case CF_SCORE_OVER:
        return c->env->verdict && c->env->verdict->score > n->score;
    }
    log_panic("cf_eval: node kind %d", (int)n->kind);
}

/* cf_expand - the template with its variables replaced. */
static void cf_expand(buf_t *out, const char *tpl, const cf_ctx *c, const char *rcpt)
{
    const Client *cl = c->env->client;
    const char *values[] = {
        cl ? cf_str(cl->auth_user) : "", cf_str(c->env->reverse_path), rcpt,
        cl ? cf_str(cl->ip) : "", cf_field(c->hdr, "Subject"),
    };

    for (const char *s = tpl; *s; ) {
        const char *v = strstr(s, "%%"), *e = v ? strstr(v + 2, "%%") : NULL;
        size_t k = 0, n = e ? (size_t)(e - v - 2) : 0;
        if (e)
            for (k = 0; cf_variables[k]; k++)
                if (strlen(cf_variables[k]) == n && strncasecmp(cf_variables[k], v + 2, n) == 0)
                    break;
        if (!e || !cf_variables[k]) {
            buf_append_str(out, s);     /* the parser let only known ones through */
            return;
        }
        buf_append(out, s, (size_t)(v - s));
        buf_append_str(out, values[k]);
        s = e + 2;
    }
}

/* cf_fold - "Name: value" as a complete field: control characters other
 * than TAB become spaces, lines are folded before white space to at most
 * CF_LINE_MAX bytes (a longer run without white space is broken with a
 * space), and the whole is cut at CF_HEADER_MAX.  Returns malloc'ed text
 * ending in CRLF. */
static char *cf_fold(const char *text, size_t len)
{
    buf_t out = BUF_INIT;
    char *clean = xmemdup(text, len);
    size_t i = 0, line_start = 0;

    if (len > CF_HEADER_MAX)
        len = CF_HEADER_MAX;
    for (size_t k = 0; k < len; k++)
        if (((unsigned char)clean[k] < 0x20 && clean[k] != '\t') || clean[k] == 0x7f)
            clean[k] = ' ';
    while (i < len) {
        size_t rest = len - i, room = CF_LINE_MAX - (out.len - line_start);
        if (rest <= room) {
            buf_append(&out, clean + i, rest);
            break;
        }
        /* the last white space that keeps this line short enough, not
         * the first byte of the line (a line of only white space is not
         * allowed) */
        size_t cut = 0;
        for (size_t k = room; k > 1; k--)
            if (clean[i + k - 1] == ' ' || clean[i + k - 1] == '\t') {
                cut = k - 1;
                break;
            }
        if (cut == 0) {
            buf_append(&out, clean + i, room - 1);
            i += room - 1;
            buf_append_str(&out, "\r\n ");
            line_start = out.len - 1;
        } else {
            buf_append(&out, clean + i, cut);
            i += cut;
            buf_append_str(&out, "\r\n");
            line_start = out.len;
        }
    }
    buf_append_str(&out, "\r\n");
    xfree(&clean);
    return buf_steal(&out, NULL);
}

/* cf_add_unique - append s to list unless it is there (any case). */
static void cf_add_unique(char ***list, size_t *n, const char *s)
{
    for (size_t i = 0; i < *n; i++)
        if (strcasecmp((*list)[i], s) == 0)
            return;
    *list = xrealloc(*list, (*n + 1) * sizeof **list);
    (*list)[(*n)++] = xstrdup(s);
}

void content_filter_apply(const content_filter_t *cf, const Envelope *env,
                          const content_filter_rcpt *rcpts, size_t n,
                          content_filter_result *out)
{
    cf_header hdr;
    bool *hit = xcalloc(n ? n : 1, sizeof *hit);
    bool stop = false;

    memset(out, 0, sizeof *out);
    out->fate = xcalloc(n ? n : 1, sizeof *out->fate);
    out->redirect = xcalloc(n ? n : 1, sizeof *out->redirect);
    out->n_rcpt = n;
    cf_header_read(&hdr, env);
    for (size_t ri = 0; cf && ri < cf->n && !stop; ri++) {
        const cf_rule *r = &cf->rules[ri];
        cf_ctx c = {.env = env, .hdr = &hdr};
        const char *first = NULL;
        bool fired = false;

        if (n == 0) {
            fired = !r->when || cf_eval(r->when, &c);
        }
        for (size_t i = 0; i < n; i++) {
            /* a recipient already redirected or discarded is gone */
            hit[i] = out->fate[i] == CONTENT_FILTER_KEEP;
            c.rcpt = &rcpts[i];
            if (hit[i] && r->when)
                hit[i] = cf_eval(r->when, &c);
            if (hit[i] && !first)
                first = rcpts[i].address;
            fired |= hit[i];
        }
        if (!fired)
            continue;
        out->n_fired++;
        {
            char q[64], name[128], to[ADDR_PATH_MAX + 8];
            log_printable(q, sizeof q, cf_str(env->queue_id), strlen(cf_str(env->queue_id)));
            log_printable(name, sizeof name, r->name, strlen(r->name));
            log_printable(to, sizeof to, first ? first : "", first ? strlen(first) : 0);
            log_info("%s: filter rule=\"%s\" to=<%s>", q, name, to);
        }
        c.rcpt = NULL;
        for (size_t k = 0; k < r->n_actions; k++) {
            const cf_action *a = &r->actions[k];
            switch (a->kind) {
            case CF_EDIT_HEADER:
            case CF_ADD_HEADER: {
                buf_t b = BUF_INIT;
                if (a->kind == CF_EDIT_HEADER) {
                    /* the name as cf_header_ok checked it, before the colon */
                    char *name = xmemdup(a->text, (size_t)(strchr(a->text, ':') - a->text));
                    cf_add_unique(&out->drop, &out->n_drop, name);
                    xfree(&name);
                }
                cf_expand(&b, a->text, &c, first ? first : "");
                out->headers = xrealloc(out->headers, (out->n_headers + 1) * sizeof *out->headers);
                out->headers[out->n_headers++] = cf_fold(b.data ? b.data : "", b.len);
                buf_free(&b);
                break;
            }
            case CF_COPY:
                cf_add_unique(&out->copies, &out->n_copies, a->text);
                break;
            case CF_REDIRECT:
            case CF_DISCARD:
                for (size_t i = 0; i < n; i++) {
                    if (!hit[i])
                        continue;
                    xfree(&out->redirect[i]);
                    if (a->kind == CF_REDIRECT) {
                        out->fate[i] = CONTENT_FILTER_REDIRECT;
                        out->redirect[i] = xstrdup(a->text);
                    } else {
                        out->fate[i] = CONTENT_FILTER_DISCARD;
                    }
                }
                break;
            case CF_SET_SPAM:
                out->spam = true;
                break;
            case CF_STOP:
                stop = true;
                break;
            }
        }
    }
    cf_header_free(&hdr);
    xfree(&hit);
}

void content_filter_result_free(content_filter_result *res)
{
    for (size_t i = 0; i < res->n_headers; i++)
        xfree(&res->headers[i]);
    for (size_t i = 0; i < res->n_copies; i++)
        xfree(&res->copies[i]);
    for (size_t i = 0; i < res->n_drop; i++)
        xfree(&res->drop[i]);
    xfree(&res->headers);
    xfree(&res->drop);
    xfree(&res->copies);
    xfree(&res->fate);
    for (size_t i = 0; res->redirect && i < res->n_rcpt; i++)
        xfree(&res->redirect[i]);
    xfree(&res->redirect);
    memset(res, 0, sizeof *res);
}
