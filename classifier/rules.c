/* rules.c - the SpamAssassin-like rules files (see rules.h): the parser,
 * which compiles every pattern once, and the evaluator the classifier
 * runs on each message.  Everything the evaluator reads comes from
 * outside: it is only matched against, under PCRE2's match limit, never
 * trusted as a length.  The rules files come from the operator: a mistake
 * is an error "FILE:LINE: what", never a crash. */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <ctype.h>
#include <errno.h>
#include <pcre2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "log.h"
#include "rules.h"
#include "xalloc.h"

#define RULES_NAME_MAX     128          /* a rule name, as SpamAssassin's */
#define RULES_EXPR_DEPTH   64           /* nesting of a meta expression */
#define RULES_JIT_STACK    (1 << 20)    /* largest JIT stack, bytes */

/* ------------------------------------------------------------ the rules */

typedef enum { R_NONE, R_HEADER, R_BODY, R_RAWBODY, R_FULL, R_URI, R_META } rule_kind;
typedef enum { HF_DECODED, HF_RAW, HF_ADDR, HF_NAME } header_form;

typedef enum {
    EX_NUM, EX_RULE, EX_BUILTIN, EX_NOT, EX_NEG,
    EX_AND, EX_OR, EX_ADD, EX_SUB, EX_MUL,
    EX_GT, EX_GE, EX_LT, EX_LE, EX_EQ, EX_NE,
} expr_op;

/* One node of a meta expression.  Names are resolved when every file is
 * read (a meta may name a rule defined further down). */
typedef struct rules_expr {
    expr_op            op;
    struct rules_expr *a, *b;
    double             num;     /* EX_NUM */
    char              *name;    /* EX_RULE, EX_BUILTIN */
    size_t             rule;    /* EX_RULE once resolved */
} rules_expr;

typedef struct rule {
    char        *name;
    rule_kind    kind;          /* R_NONE: only score/describe/tflags lines so far */
    const char  *file;          /* owned by rules.files */
    int          line;
    pcre2_code  *re;
    char        *field;         /* header: the field name, "ALL", "ToCc" */
    header_form  form;
    bool         negate;        /* header !~ */
    bool         exists;        /* header exists:Field */
    char        *if_unset;
    rules_expr  *meta;
    double       score;
    bool         has_score;
    const char  *score_file;
    int          score_line;
    char        *describe;
    bool         nice, multiple;
    bool         needed;        /* scored, a sub-rule, or named by a meta */
    bool         limit_logged;
} rule;

/* What rules_run changes in a rule set it is given as const. */
typedef struct rules_stats {
    unsigned long limit_hits;
} rules_stats;

struct rules {
    rule                  *rule;
    size_t                 n, cap;
    size_t                *table;      /* open addressing: index + 1, 0 empty */
    size_t                 tcap;
    rules_override        *ov;
    size_t                 n_ov;
    char                 **files;
    size_t                 n_files;
    size_t                *meta_order; /* metas, each after those it names */
    size_t                 n_meta_order;
    size_t                 n_scored;
    pcre2_compile_context *cctx;
    pcre2_match_context   *mctx;
    pcre2_jit_stack       *jit_stack;
    rules_stats           *stats;
};

/* rules_hash - FNV-1a of a rule name. */
static size_t rules_hash(const char *s)
{
    size_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static size_t *rules_slot(const rules_t *r, const char *name)
{
    size_t mask = r->tcap - 1;
    for (size_t i = rules_hash(name) & mask;; i = (i + 1) & mask)
        if (r->table[i] == 0 || strcmp(r->rule[r->table[i] - 1].name, name) == 0)
            return &r->table[i];
}

/* rules_find - the rule called name, or NULL. */
static rule *rules_find(const rules_t *r, const char *name)
{
    size_t *slot = rules_slot(r, name);
    return *slot ? &r->rule[*slot - 1] : NULL;
}

/* rules_get - the rule called name, made (R_NONE) when new. */
static rule *rules_get(rules_t *r, const char *name)
{
    rule *ru = rules_find(r, name);
    if (ru)
        return ru;
    if (r->n + 1 > r->tcap / 2) {               /* grow: load at most 1/2 */
        xfree(&r->table);
        r->tcap *= 2;
        r->table = xcalloc(r->tcap, sizeof *r->table);
        for (size_t i = 0; i < r->n; i++)
            *rules_slot(r, r->rule[i].name) = i + 1;
    }
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 64;
        r->rule = xrealloc(r->rule, r->cap * sizeof *r->rule);
    }
    ru = &r->rule[r->n];
    memset(ru, 0, sizeof *ru);
    ru->name = xstrdup(name);
    ru->score = 1.0;
    *rules_slot(r, name) = ++r->n;
    return ru;
}

static void rules_expr_free(rules_expr **e)
{
    if (!*e)
        return;
    rules_expr_free(&(*e)->a);
    rules_expr_free(&(*e)->b);
    xfree(&(*e)->name);
    xfree(e);
}

/* rules_rule_clear - forget a rule's definition (not its score lines). */
static void rules_rule_clear(rule *ru)
{
    pcre2_code_free(ru->re);
    ru->re = NULL;
    xfree(&ru->field);
    xfree(&ru->if_unset);
    rules_expr_free(&ru->meta);
    ru->kind = R_NONE;
    ru->negate = ru->exists = false;
    ru->form = HF_DECODED;
}

static rules_t *rules_new(void)
{
    rules_t *r = xcalloc(1, sizeof *r);
    r->tcap = 128;
    r->table = xcalloc(r->tcap, sizeof *r->table);
    r->stats = xcalloc(1, sizeof *r->stats);
    r->cctx = pcre2_compile_context_create(NULL);
    r->mctx = pcre2_match_context_create(NULL);
    if (!r->cctx || !r->mctx)
        log_panic("rules_new: pcre2 context: out of memory");
    /* CR, LF and CRLF all end a line: header values are joined with LF,
     * the raw message has CRLF. */
    pcre2_set_newline(r->cctx, PCRE2_NEWLINE_ANYCRLF);
    pcre2_set_match_limit(r->mctx, RULES_MATCH_LIMIT);
    pcre2_set_depth_limit(r->mctx, RULES_DEPTH_LIMIT);
    r->jit_stack = pcre2_jit_stack_create(32 * 1024, RULES_JIT_STACK, NULL);
    if (r->jit_stack)                           /* NULL: JIT not available */
        pcre2_jit_stack_assign(r->mctx, NULL, r->jit_stack);
    return r;
}

void rules_free(rules_t **rp)
{
    rules_t *r = *rp;
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++) {
        rules_rule_clear(&r->rule[i]);
        xfree(&r->rule[i].name);
        xfree(&r->rule[i].describe);
    }
    xfree(&r->rule);
    xfree(&r->table);
    xfree(&r->ov);
    for (size_t i = 0; i < r->n_files; i++)
        xfree(&r->files[i]);
    xfree(&r->files);
    xfree(&r->meta_order);
    pcre2_compile_context_free(r->cctx);
    pcre2_match_context_free(r->mctx);
    if (r->jit_stack)
        pcre2_jit_stack_free(r->jit_stack);
    xfree(&r->stats);
    xfree(rp);
}

size_t rules_count(const rules_t *r)
{
    return r->n_scored;
}

const rules_override *rules_overrides(const rules_t *r, size_t *n)
{
    *n = r->n_ov;
    return r->ov;
}

unsigned long rules_limit_hits(const rules_t *r)
{
    return r->stats->limit_hits;
}

const char *rules_describe(const rules_t *r, const char *name)
{
    const rule *ru = rules_find(r, name);
    return ru ? ru->describe : NULL;
}

/* ------------------------------------------------------------ the parser */

typedef struct rules_parser {
    rules_t       *r;
    const char    *file;        /* owned by r->files */
    int            line;
    char          *err;         /* the first error */
    int            depth;       /* include nesting */
    bool           allow_include;
    rules_known_fn known;
    void          *kctx;
} rules_parser;

static void rules_error(rules_parser *p, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void rules_error(rules_parser *p, const char *file, int line, const char *fmt, ...)
{
    if (p->err)
        return;
    va_list ap;
    buf_t b = BUF_INIT;
    if (line > 0)
        buf_printf(&b, "%s:%d: ", file, line);
    else
        buf_printf(&b, "%s: ", file);
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    p->err = buf_steal(&b, NULL);
}

/* A cursor over one line. */
typedef struct rules_line {
    const char *s, *end;
} rules_line;

static void rules_skip_space(rules_line *l)
{
    while (l->s < l->end && (*l->s == ' ' || *l->s == '\t'))
        l->s++;
}

/* rules_word - the next white-space separated word into w (at most wmax-1
 * bytes); false at the end of the line or when it is too long. */
static bool rules_word(rules_line *l, char *w, size_t wmax)
{
    rules_skip_space(l);
    const char *b = l->s;
    while (l->s < l->end && *l->s != ' ' && *l->s != '\t')
        l->s++;
    size_t n = (size_t)(l->s - b);
    if (n == 0 || n >= wmax)
        return false;
    memcpy(w, b, n);
    w[n] = '\0';
    return true;
}

/* rules_name_ok - a rule name: letters, digits, '_', not starting with a
 * digit (what metas can name). */
static bool rules_name_ok(const char *s)
{
    if (!*s || isdigit((unsigned char)*s))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    return true;
}

/* rules_rule_name - the rule name word of a directive. */
static bool rules_rule_name(rules_parser *p, rules_line *l, const char *directive, char *name)
{
    char show[64];
    rules_skip_space(l);
    const rules_line start = *l;
    if (!rules_word(l, name, RULES_NAME_MAX)) {
        if (start.s == start.end)
            rules_error(p, p->file, p->line, "%s: missing rule name", directive);
        else
            rules_error(p, p->file, p->line, "%s: rule name too long", directive);
        return false;
    }
    if (!rules_name_ok(name)) {
        rules_error(p, p->file, p->line, "%s: bad rule name \"%s\" (letters, digits, _)",
                    directive, log_printable(show, sizeof show, name, strlen(name)));
        return false;
    }
    return true;
}

/* rules_regex - a pattern /re/flags, m{re}flags, m!re!flags at l; compiled
 * with extra options.  Leaves l after the flags. */
static pcre2_code *rules_regex(rules_parser *p, rules_line *l, const char *name, uint32_t extra)
{
    char open, close, show[80], msg[256];
    rules_skip_space(l);
    if (l->s < l->end && *l->s == '/') {
        open = close = '/';
        l->s++;
    } else if (l->end - l->s >= 2 && *l->s == 'm' && ispunct((unsigned char)l->s[1])) {
        open = l->s[1];
        close = open == '{' ? '}' : open == '(' ? ')' : open == '[' ? ']' : open == '<' ? '>' : open;
        l->s += 2;
    } else {
        rules_error(p, p->file, p->line, "%s: expected a pattern /.../ or m{...}", name);
        return NULL;
    }
    const char *b = l->s;
    int nest = 0;
    for (; l->s < l->end; l->s++) {
        if (*l->s == '\\') {
            if (l->s + 1 < l->end)
                l->s++;
            continue;
        }
        if (*l->s == close && nest == 0)
            break;
        if (open != close && *l->s == open)
            nest++;
        else if (open != close && *l->s == close)
            nest--;
    }
    if (l->s >= l->end) {
        rules_error(p, p->file, p->line, "%s: pattern without its closing %c", name, close);
        return NULL;
    }
    size_t len = (size_t)(l->s - b);
    l->s++;
    uint32_t opt = extra;
    for (; l->s < l->end && *l->s != ' ' && *l->s != '\t'; l->s++) {
        switch (*l->s) {
        case 'i': opt |= PCRE2_CASELESS; break;
        case 'm': opt |= PCRE2_MULTILINE; break;
        case 's': opt |= PCRE2_DOTALL; break;
        case 'x': opt |= PCRE2_EXTENDED; break;
        default:
            rules_error(p, p->file, p->line, "%s: unknown pattern flag '%s' (i, m, s, x)", name,
                        log_printable(show, sizeof show, l->s, 1));
            return NULL;
        }
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)b, len, opt, &code, &off, p->r->cctx);
    if (!re) {
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        rules_error(p, p->file, p->line, "%s: bad pattern %c%s%c: %s at offset %zu", name, open,
                    log_printable(show, sizeof show, b, len), close, msg, (size_t)off);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);    /* an optimisation only */
    return re;
}

static bool rules_line_end(rules_parser *p, rules_line *l, const char *name)
{
    char show[64];
    rules_skip_space(l);
    if (l->s < l->end) {
        rules_error(p, p->file, p->line, "%s: unexpected \"%s\" after the pattern", name,
                    log_printable(show, sizeof show, l->s, (size_t)(l->end - l->s)));
        return false;
    }
    return true;
}

/* rules_define - rule name gets a new definition of kind. */
static rule *rules_define(rules_parser *p, const char *name, rule_kind kind)
{
    if (!rules_find(p->r, name) && p->r->n >= RULES_MAX_RULES) {
        rules_error(p, p->file, p->line, "more than %d rules", RULES_MAX_RULES);
        return NULL;
    }
    rule *ru = rules_get(p->r, name);
    rules_rule_clear(ru);               /* a later definition replaces */
    ru->kind = kind;
    ru->file = p->file;
    ru->line = p->line;
    return ru;
}

/* header NAME Field[:form] =~ /re/ [if-unset: TEXT] | header NAME exists:Field */
static void rules_header(rules_parser *p, rules_line *l)
{
    char name[RULES_NAME_MAX], field[256], op[8], show[64];
    if (!rules_rule_name(p, l, "header", name))
        return;
    if (!rules_word(l, field, sizeof field)) {
        rules_error(p, p->file, p->line, "%s: missing header field name", name);
        return;
    }
    if (strncasecmp(field, "exists:", 7) == 0) {
        if (!field[7]) {
            rules_error(p, p->file, p->line, "%s: exists: without a field name", name);
            return;
        }
        if (!rules_line_end(p, l, name))
            return;
        rule *ru = rules_define(p, name, R_HEADER);
        if (ru) {
            ru->exists = true;
            ru->field = xstrdup(field + 7);
        }
        return;
    }
    if (strncasecmp(field, "eval:", 5) == 0) {
        rules_error(p, p->file, p->line, "%s: eval: tests are not supported", name);
        return;
    }
    header_form form = HF_DECODED;
    char *colon = strchr(field, ':');
    if (colon) {
        *colon++ = '\0';
        if (strcasecmp(colon, "raw") == 0)
            form = HF_RAW;
        else if (strcasecmp(colon, "addr") == 0)
            form = HF_ADDR;
        else if (strcasecmp(colon, "name") == 0)
            form = HF_NAME;
        else {
            rules_error(p, p->file, p->line, "%s: unknown header modifier \":%s\" (raw, addr, name)",
                        name, log_printable(show, sizeof show, colon, strlen(colon)));
            return;
        }
    }
    if (!*field) {
        rules_error(p, p->file, p->line, "%s: missing header field name", name);
        return;
    }
    if (!rules_word(l, op, sizeof op) || (strcmp(op, "=~") != 0 && strcmp(op, "!~") != 0)) {
        rules_error(p, p->file, p->line, "%s: expected =~ or !~ after the field name", name);
        return;
    }
    pcre2_code *re = rules_regex(p, l, name, 0);
    if (!re)
        return;
    char *if_unset = NULL;
    rules_skip_space(l);
    if (l->s < l->end) {
        static const char tag[] = "[if-unset:";
        size_t n = (size_t)(l->end - l->s);
        if (n > sizeof tag - 1 && strncasecmp(l->s, tag, sizeof tag - 1) == 0 && l->end[-1] == ']') {
            const char *b = l->s + sizeof tag - 1, *e = l->end - 1;
            while (b < e && (*b == ' ' || *b == '\t'))
                b++;
            while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
                e--;
            if_unset = xstrndup(b, (size_t)(e - b));
        } else if (!rules_line_end(p, l, name)) {
            pcre2_code_free(re);
            return;
        }
    }
    rule *ru = rules_define(p, name, R_HEADER);
    if (!ru) {
        pcre2_code_free(re);
        xfree(&if_unset);
        return;
    }
    ru->re = re;
    ru->field = xstrdup(field);
    ru->form = form;
    ru->negate = op[0] == '!';
    ru->if_unset = if_unset;
}

/* body|rawbody|full|uri NAME /re/ */
static void rules_pattern(rules_parser *p, rules_line *l, const char *directive, rule_kind kind)
{
    char name[RULES_NAME_MAX];
    if (!rules_rule_name(p, l, directive, name))
        return;
    rules_line save = *l;
    char word[16];
    if (rules_word(l, word, sizeof word) && strncasecmp(word, "eval:", 5) == 0) {
        rules_error(p, p->file, p->line, "%s: eval: tests are not supported", name);
        return;
    }
    *l = save;
    uint32_t extra = kind == R_BODY || kind == R_RAWBODY ? PCRE2_MULTILINE : 0;
    pcre2_code *re = rules_regex(p, l, name, extra);
    if (!re)
        return;
    if (!rules_line_end(p, l, name)) {
        pcre2_code_free(re);
        return;
    }
    rule *ru = rules_define(p, name, kind);
    if (ru)
        ru->re = re;
    else
        pcre2_code_free(re);
}

/* ------------------------------------------------------------ meta expressions */

typedef struct expr_parser {
    rules_parser *p;
    const char   *name;
    const char   *s, *end;
    int           depth;
    bool          failed;
} expr_parser;

static void expr_space(expr_parser *x)
{
    while (x->s < x->end && isspace((unsigned char)*x->s))
        x->s++;
}

/* expr_eat - the operator tok is next: consume it. */
static bool expr_eat(expr_parser *x, const char *tok)
{
    expr_space(x);
    size_t n = strlen(tok);
    if ((size_t)(x->end - x->s) < n || memcmp(x->s, tok, n) != 0)
        return false;
    /* "!" must not be the start of "!=", ">" of ">=", "<" of "<=" */
    if (n == 1 && (tok[0] == '!' || tok[0] == '>' || tok[0] == '<') && x->end - x->s > 1 && x->s[1] == '=')
        return false;
    x->s += n;
    return true;
}

static void expr_fail(expr_parser *x, const char *what)
{
    char show[64];
    if (!x->failed) {
        expr_space(x);
        rules_error(x->p, x->p->file, x->p->line, "%s: meta: %s at \"%s\"", x->name, what,
                    x->s < x->end ? log_printable(show, sizeof show, x->s, (size_t)(x->end - x->s))
                                  : "end of line");
    }
    x->failed = true;
}

static rules_expr *expr_node(expr_op op, rules_expr *a, rules_expr *b)
{
    rules_expr *e = xcalloc(1, sizeof *e);
    e->op = op;
    e->a = a;
    e->b = b;
    return e;
}

static rules_expr *expr_or(expr_parser *x);

/* primary: NUMBER | NAME | ( or ) | ! unary | - unary */
static rules_expr *expr_unary(expr_parser *x)
{
    if (x->failed)
        return NULL;
    if (++x->depth > RULES_EXPR_DEPTH) {
        expr_fail(x, "nested too deep");
        return NULL;
    }
    rules_expr *e = NULL;
    expr_space(x);
    if (expr_eat(x, "!")) {
        rules_expr *a = expr_unary(x);
        e = a ? expr_node(EX_NOT, a, NULL) : NULL;
    } else if (expr_eat(x, "-")) {
        rules_expr *a = expr_unary(x);
        e = a ? expr_node(EX_NEG, a, NULL) : NULL;
    } else if (expr_eat(x, "(")) {
        e = expr_or(x);
        if (e && !expr_eat(x, ")")) {
            expr_fail(x, "expected )");
            rules_expr_free(&e);
        }
    } else if (x->s < x->end && (isdigit((unsigned char)*x->s) || *x->s == '.')) {
        char *endp;
        char num[64];
        size_t n = 0;
        while (x->s + n < x->end && n < sizeof num - 1 && (isdigit((unsigned char)x->s[n]) || x->s[n] == '.'))
            n++;
        memcpy(num, x->s, n);
        num[n] = '\0';
        double v = strtod(num, &endp);
        if (endp != num + n) {
            expr_fail(x, "bad number");
        } else {
            x->s += n;
            e = expr_node(EX_NUM, NULL, NULL);
            e->num = v;
        }
    } else if (x->s < x->end && (isalpha((unsigned char)*x->s) || *x->s == '_')) {
        const char *b = x->s;
        while (x->s < x->end && (isalnum((unsigned char)*x->s) || *x->s == '_'))
            x->s++;
        if (x->s - b >= RULES_NAME_MAX) {
            expr_fail(x, "name too long");
        } else {
            e = expr_node(EX_RULE, NULL, NULL);
            e->name = xstrndup(b, (size_t)(x->s - b));
        }
    } else {
        expr_fail(x, "expected a rule name, a number, ! or (");
    }
    x->depth--;
    return e;
}

/* One binary level: ops[i] gives kinds[i]; next parses the operands. */
static rules_expr *expr_binary(expr_parser *x, rules_expr *(*next)(expr_parser *),
                               const char *const *ops, const expr_op *kinds)
{
    rules_expr *e = next(x);
    while (e && !x->failed) {
        size_t i;
        for (i = 0; ops[i]; i++)
            if (expr_eat(x, ops[i]))
                break;
        if (!ops[i])
            break;
        rules_expr *b = next(x);
        if (!b) {
            rules_expr_free(&e);
            break;
        }
        e = expr_node(kinds[i], e, b);
    }
    return e;
}

static rules_expr *expr_mul(expr_parser *x)
{
    static const char *const ops[] = {"*", NULL};
    static const expr_op kinds[] = {EX_MUL};
    return expr_binary(x, expr_unary, ops, kinds);
}

static rules_expr *expr_add(expr_parser *x)
{
    static const char *const ops[] = {"+", "-", NULL};
    static const expr_op kinds[] = {EX_ADD, EX_SUB};
    return expr_binary(x, expr_mul, ops, kinds);
}

static rules_expr *expr_cmp(expr_parser *x)
{
    static const char *const ops[] = {">=", "<=", ">", "<", NULL};
    static const expr_op kinds[] = {EX_GE, EX_LE, EX_GT, EX_LT};
    return expr_binary(x, expr_add, ops, kinds);
}

static rules_expr *expr_eq(expr_parser *x)
{
    static const char *const ops[] = {"==", "!=", NULL};
    static const expr_op kinds[] = {EX_EQ, EX_NE};
    return expr_binary(x, expr_cmp, ops, kinds);
}

static rules_expr *expr_and(expr_parser *x)
{
    static const char *const ops[] = {"&&", NULL};
    static const expr_op kinds[] = {EX_AND};
    return expr_binary(x, expr_eq, ops, kinds);
}

static rules_expr *expr_or(expr_parser *x)
{
    static const char *const ops[] = {"||", NULL};
    static const expr_op kinds[] = {EX_OR};
    return expr_binary(x, expr_and, ops, kinds);
}

/* meta NAME EXPR */
static void rules_meta(rules_parser *p, rules_line *l)
{
    char name[RULES_NAME_MAX];
    if (!rules_rule_name(p, l, "meta", name))
        return;
    expr_parser x = {.p = p, .name = name, .s = l->s, .end = l->end};
    expr_space(&x);
    if (x.s == x.end) {
        rules_error(p, p->file, p->line, "%s: meta without an expression", name);
        return;
    }
    rules_expr *e = expr_or(&x);
    if (e && !x.failed) {
        expr_space(&x);
        if (x.s < x.end)
            expr_fail(&x, "unexpected text");
    }
    if (x.failed || !e) {
        if (!x.failed)
            expr_fail(&x, "bad expression");
        rules_expr_free(&e);
        return;
    }
    rule *ru = rules_define(p, name, R_META);
    if (ru)
        ru->meta = e;
    else
        rules_expr_free(&e);
}

/* ------------------------------------------------------------ score, describe, tflags */

static void rules_score(rules_parser *p, rules_line *l)
{
    char name[RULES_NAME_MAX], num[64], *endp;
    if (!rules_rule_name(p, l, "score", name))
        return;
    if (!rules_word(l, num, sizeof num)) {
        rules_error(p, p->file, p->line, "score %s: missing score", name);
        return;
    }
    errno = 0;
    double v = strtod(num, &endp);
    if (*endp || errno || !(v >= -1000.0 && v <= 1000.0)) {
        char show[64];
        rules_error(p, p->file, p->line, "score %s: \"%s\" is not a score (-1000..1000)", name,
                    log_printable(show, sizeof show, num, strlen(num)));
        return;
    }
    /* further values (SpamAssassin's score sets) are ignored */
    if (!rules_find(p->r, name) && p->r->n >= RULES_MAX_RULES) {
        rules_error(p, p->file, p->line, "more than %d rules", RULES_MAX_RULES);
        return;
    }
    rule *ru = rules_get(p->r, name);
    ru->score = v;
    ru->has_score = true;
    ru->score_file = p->file;
    ru->score_line = p->line;
}

static void rules_describe_line(rules_parser *p, rules_line *l)
{
    char name[RULES_NAME_MAX];
    if (!rules_rule_name(p, l, "describe", name))
        return;
    rules_skip_space(l);
    if (!rules_find(p->r, name) && p->r->n >= RULES_MAX_RULES) {
        rules_error(p, p->file, p->line, "more than %d rules", RULES_MAX_RULES);
        return;
    }
    rule *ru = rules_get(p->r, name);
    xfree(&ru->describe);
    size_t n = (size_t)(l->end - l->s);
    ru->describe = xstrndup(l->s, n > 200 ? 200 : n);
}

static void rules_tflags(rules_parser *p, rules_line *l)
{
    char name[RULES_NAME_MAX], word[64];
    if (!rules_rule_name(p, l, "tflags", name))
        return;
    if (!rules_find(p->r, name) && p->r->n >= RULES_MAX_RULES) {
        rules_error(p, p->file, p->line, "more than %d rules", RULES_MAX_RULES);
        return;
    }
    rule *ru = rules_get(p->r, name);
    while (rules_word(l, word, sizeof word)) {
        if (strcmp(word, "nice") == 0)
            ru->nice = true;
        else if (strcmp(word, "multiple") == 0)
            ru->multiple = true;
        /* others (net, learn, userconf, maxhits=N ...) mean nothing here */
    }
}

/* ------------------------------------------------------------ files */

static void rules_text(rules_parser *p, const char *text, size_t len);

/* rules_read - a whole file, at most RULES_FILE_MAX bytes; NULL and an
 * error on failure. */
static char *rules_read(rules_parser *p, const char *path, size_t *len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        if (p->file)        /* an include */
            rules_error(p, p->file, p->line, "cannot open %s: %s", path, strerror(errno));
        else
            rules_error(p, path, 0, "cannot open: %s", strerror(errno));
        return NULL;
    }
    buf_t b = BUF_INIT;
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (b.len + n > RULES_FILE_MAX) {
            rules_error(p, path, 0, "larger than %d bytes", RULES_FILE_MAX);
            break;
        }
        buf_append(&b, chunk, n);
    }
    if (!p->err && ferror(f))
        rules_error(p, path, 0, "read error: %s", strerror(errno));
    fclose(f);
    if (p->err) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, len);
}

/* rules_file - parse the file at path (already resolved). */
static void rules_file(rules_parser *p, const char *path)
{
    size_t len;
    char *text = rules_read(p, path, &len);
    if (!text)
        return;
    rules_t *r = p->r;
    r->files = xrealloc(r->files, (r->n_files + 1) * sizeof *r->files);
    r->files[r->n_files++] = xstrdup(path);
    const char *save_file = p->file;
    int save_line = p->line;
    p->file = r->files[r->n_files - 1];
    rules_text(p, text, len);
    p->file = save_file;
    p->line = save_line;
    xfree(&text);
}

/* include FILE: relative to the directory of the including file. */
static void rules_include(rules_parser *p, rules_line *l)
{
    rules_skip_space(l);
    const char *e = l->end;
    while (e > l->s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e == l->s) {
        rules_error(p, p->file, p->line, "include without a file name");
        return;
    }
    if (!p->allow_include) {
        rules_error(p, p->file, p->line, "include is not allowed here");
        return;
    }
    if (p->depth >= RULES_INCLUDE_DEPTH) {
        rules_error(p, p->file, p->line, "include nested deeper than %d", RULES_INCLUDE_DEPTH);
        return;
    }
    char *name = xstrndup(l->s, (size_t)(e - l->s));
    char *path;
    const char *slash = strrchr(p->file, '/');
    if (name[0] == '/' || !slash)
        path = xstrdup(name);
    else
        path = xasprintf("%.*s/%s", (int)(slash - p->file), p->file, name);
    p->depth++;
    rules_file(p, path);
    p->depth--;
    xfree(&path);
    xfree(&name);
}

/* rules_directive - one line, comments and blank lines already gone. */
static void rules_directive(rules_parser *p, rules_line *l)
{
    char word[32], show[64];
    rules_line save = *l;
    if (!rules_word(l, word, sizeof word)) {
        *l = save;
        rules_skip_space(l);
        const char *b = l->s;
        while (l->s < l->end && *l->s != ' ' && *l->s != '\t')
            l->s++;
        rules_error(p, p->file, p->line, "unknown directive \"%s\"",
                    log_printable(show, sizeof show, b, (size_t)(l->s - b)));
        return;
    }
    if (strcasecmp(word, "header") == 0)
        rules_header(p, l);
    else if (strcasecmp(word, "body") == 0)
        rules_pattern(p, l, "body", R_BODY);
    else if (strcasecmp(word, "rawbody") == 0)
        rules_pattern(p, l, "rawbody", R_RAWBODY);
    else if (strcasecmp(word, "full") == 0)
        rules_pattern(p, l, "full", R_FULL);
    else if (strcasecmp(word, "uri") == 0)
        rules_pattern(p, l, "uri", R_URI);
    else if (strcasecmp(word, "meta") == 0)
        rules_meta(p, l);
    else if (strcasecmp(word, "score") == 0)
        rules_score(p, l);
    else if (strcasecmp(word, "describe") == 0)
        rules_describe_line(p, l);
    else if (strcasecmp(word, "tflags") == 0)
        rules_tflags(p, l);
    else if (strcasecmp(word, "include") == 0)
        rules_include(p, l);
    else
        rules_error(p, p->file, p->line, "unknown directive \"%s\"",
                    log_printable(show, sizeof show, word, strlen(word)));
}

/* rules_text - every line of one file.  A `#` starts a comment when it
 * begins the line or follows white space (a pattern may hold "#"). */
static void rules_text(rules_parser *p, const char *text, size_t len)
{
    const char *s = text, *end = text + len;
    p->line = 0;
    while (s < end && !p->err) {
        const char *nl = memchr(s, '\n', (size_t)(end - s));
        const char *e = nl ? nl : end;
        p->line++;
        rules_line l = {s, e};
        while (l.end > l.s && (l.end[-1] == '\r' || l.end[-1] == ' ' || l.end[-1] == '\t'))
            l.end--;
        rules_skip_space(&l);
        if (l.s < l.end && *l.s != '#') {
            /* a comment after white space ends the line, as in
             * SpamAssassin, unless it is escaped as \# */
            for (const char *c = l.s + 1; c < l.end; c++)
                if (*c == '#' && (c[-1] == ' ' || c[-1] == '\t')) {
                    l.end = c;
                    while (l.end > l.s && (l.end[-1] == ' ' || l.end[-1] == '\t'))
                        l.end--;
                    break;
                }
            rules_directive(p, &l);
        }
        s = e + (nl != NULL);
    }
}

/* ------------------------------------------------------------ after the last file */

/* rules_resolve - names in a meta expression to rules or built-in tests. */
static void rules_resolve(rules_parser *p, rule *ru, rules_expr *e)
{
    if (!e)
        return;
    rules_resolve(p, ru, e->a);
    rules_resolve(p, ru, e->b);
    if (e->op != EX_RULE)
        return;
    rule *t = rules_find(p->r, e->name);
    if (t && t->kind != R_NONE) {
        e->rule = (size_t)(t - p->r->rule);
        t->needed = true;
    } else if (p->known && p->known(e->name, p->kctx)) {
        e->op = EX_BUILTIN;
    } else {
        log_warn("%s:%d: meta %s: unknown rule %s counts as 0", ru->file, ru->line, ru->name, e->name);
        e->op = EX_NUM;
        e->num = 0;
    }
}

/* rules_order - depth-first over metas: each after those it names;
 * state 1 = on the path (a cycle), 2 = placed. */
static bool rules_order(rules_parser *p, size_t i, unsigned char *state);

static bool rules_order_expr(rules_parser *p, const rules_expr *e, unsigned char *state)
{
    if (!e)
        return true;
    if (e->op == EX_RULE && p->r->rule[e->rule].kind == R_META && !rules_order(p, e->rule, state))
        return false;
    return rules_order_expr(p, e->a, state) && rules_order_expr(p, e->b, state);
}

static bool rules_order(rules_parser *p, size_t i, unsigned char *state)
{
    rule *ru = &p->r->rule[i];
    if (state[i] == 2)
        return true;
    if (state[i] == 1) {
        rules_error(p, ru->file, ru->line, "meta %s depends on itself", ru->name);
        return false;
    }
    state[i] = 1;
    if (!rules_order_expr(p, ru->meta, state))
        return false;
    state[i] = 2;
    p->r->meta_order[p->r->n_meta_order++] = i;
    return true;
}

static void rules_finish(rules_parser *p)
{
    rules_t *r = p->r;
    for (size_t i = 0; i < r->n && !p->err; i++) {
        rule *ru = &r->rule[i];
        if (ru->kind == R_NONE) {
            if (ru->has_score) {
                if (p->known && p->known(ru->name, p->kctx)) {
                    r->ov = xrealloc(r->ov, (r->n_ov + 1) * sizeof *r->ov);
                    r->ov[r->n_ov].name = ru->name;
                    r->ov[r->n_ov].score = ru->score;
                    r->n_ov++;
                } else {
                    rules_error(p, ru->score_file, ru->score_line,
                                "score for %s, which is neither a rule nor a built-in test", ru->name);
                }
            } else {
                log_warn("rules: describe or tflags for %s, which is not a rule", ru->name);
            }
            continue;
        }
        if (ru->score < 0 && !ru->nice)
            rules_error(p, ru->score_file, ru->score_line,
                        "score %s: a negative score needs \"tflags %s nice\"", ru->name, ru->name);
        if (ru->kind == R_META)
            rules_resolve(p, ru, ru->meta);
        if (ru->name[0] != '_' || ru->name[1] != '_') {
            r->n_scored++;
            if (ru->score != 0)
                ru->needed = true;
        } else {
            ru->needed = true;
        }
    }
    if (p->err)
        return;
    unsigned char *state = xcalloc(r->n ? r->n : 1, 1);
    r->meta_order = xcalloc(r->n ? r->n : 1, sizeof *r->meta_order);
    for (size_t i = 0; i < r->n && !p->err; i++)
        if (r->rule[i].kind == R_META)
            rules_order(p, i, state);
    xfree(&state);
}

static rules_t *rules_done(rules_parser *p, char **err)
{
    if (!p->err)
        rules_finish(p);
    if (p->err) {
        rules_free(&p->r);
        *err = p->err;
        return NULL;
    }
    *err = NULL;
    return p->r;
}

rules_t *rules_parse(const char *fname, const char *text, size_t len,
                     rules_known_fn known, void *kctx, char **err)
{
    rules_parser p = {.r = rules_new(), .known = known, .kctx = kctx};
    p.r->files = xcalloc(1, sizeof *p.r->files);
    p.r->files[p.r->n_files++] = xstrdup(fname);
    p.file = p.r->files[0];
    rules_text(&p, text, len);
    return rules_done(&p, err);
}

rules_t *rules_load(const char *const *paths, const char *dir,
                    rules_known_fn known, void *kctx, char **err)
{
    rules_parser p = {.r = rules_new(), .known = known, .kctx = kctx, .allow_include = true};
    for (size_t i = 0; paths && paths[i] && !p.err; i++) {
        char *path = paths[i][0] == '/' || !dir ? xstrdup(paths[i]) : xasprintf("%s/%s", dir, paths[i]);
        p.file = NULL;
        p.line = 0;
        rules_file(&p, path);
        xfree(&path);
    }
    return rules_done(&p, err);
}

/* ------------------------------------------------------------ evaluation */

/* The texts rules look at, built when a rule first needs them. */
typedef struct rules_texts {
    const mime_msg *m;
    buf_t           body, rawbody, all, allraw, val;
    bool            have_body, have_rawbody, have_all, have_allraw;
} rules_texts;

/* rules_render - append text as SpamAssassin's body lines: paragraphs
 * (up to a blank line) one line each, white space runs one space. */
static void rules_render(buf_t *b, const char *s, size_t len)
{
    bool space = false;     /* pending white space in the paragraph */
    unsigned nl = 0;        /* newlines in the pending white space */
    bool started = false;   /* text in the current paragraph */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v' || c == '\n') {
            space = true;
            nl += c == '\n';
            continue;
        }
        if (space && started)
            buf_append_char(b, nl >= 2 ? '\n' : ' ');
        space = false;
        nl = 0;
        started = true;
        buf_append_char(b, (char)c);
    }
    buf_append_char(b, '\n');
}

static const char *rules_hvalue(const mime_header *h, bool raw)
{
    const char *v = raw || !h->decoded ? h->value : h->decoded;
    if (!v)
        return "";
    while (*v == ' ' || *v == '\t')
        v++;
    return v;
}

/* rules_field - the first field called name (any case), or NULL. */
static const mime_header *rules_field(const mime_msg *m, const char *name)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (m->headers[i].name && strcasecmp(m->headers[i].name, name) == 0)
            return &m->headers[i];
    return NULL;
}

static const char *rules_body(rules_texts *t)
{
    if (!t->have_body) {
        t->have_body = true;
        const mime_header *subj = rules_field(t->m, "Subject");
        if (subj) {
            const char *v = rules_hvalue(subj, false);
            rules_render(&t->body, v, strlen(v));
        }
        for (size_t i = 0; i < t->m->n_parts; i++) {
            const mime_part *pt = &t->m->parts[i];
            if (pt->text && pt->type && strncmp(pt->type, "text/", 5) == 0)
                rules_render(&t->body, pt->text, pt->text_len);
        }
    }
    return t->body.len ? t->body.data : "";
}

static const char *rules_rawbody(rules_texts *t)
{
    if (!t->have_rawbody) {
        t->have_rawbody = true;
        for (size_t i = 0; i < t->m->n_parts; i++) {
            const mime_part *pt = &t->m->parts[i];
            if (!pt->type || strncmp(pt->type, "text/", 5) != 0)
                continue;
            if (pt->raw)
                buf_append(&t->rawbody, pt->raw, pt->raw_len);
            else if (pt->text)
                buf_append(&t->rawbody, pt->text, pt->text_len);
            buf_append_char(&t->rawbody, '\n');
        }
    }
    return t->rawbody.len ? t->rawbody.data : "";
}

static const char *rules_all(rules_texts *t, bool raw)
{
    buf_t *b = raw ? &t->allraw : &t->all;
    bool *have = raw ? &t->have_allraw : &t->have_all;
    if (!*have) {
        *have = true;
        for (size_t i = 0; i < t->m->n_headers; i++) {
            const mime_header *h = &t->m->headers[i];
            buf_printf(b, "%s: %s\n", h->name ? h->name : "", rules_hvalue(h, raw));
        }
    }
    return b->len ? b->data : "";
}

/* rules_addr - the address in a From/To-like value: <inside>, else the
 * first word with an @ outside comments, else the whole value. */
static void rules_addr(buf_t *b, const char *v)
{
    const char *lt = strrchr(v, '<');
    const char *gt = lt ? strchr(lt, '>') : NULL;
    if (lt && gt) {
        buf_append(b, lt + 1, (size_t)(gt - lt - 1));
        return;
    }
    const char *s = v;
    while (*s) {
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (*s == '(') {
            while (*s && *s != ')')
                s++;
            if (*s)
                s++;
            continue;
        }
        const char *w = s;
        while (*s && *s != ' ' && *s != '\t' && *s != ',' && *s != '(')
            s++;
        if (memchr(w, '@', (size_t)(s - w))) {
            buf_append(b, w, (size_t)(s - w));
            return;
        }
    }
    buf_append_str(b, v);
}

/* rules_dname - the display name: before <addr>, or in (comment). */
static void rules_dname(buf_t *b, const char *v)
{
    const char *lt = strchr(v, '<');
    const char *s = v, *e;
    if (lt) {
        e = lt;
    } else if ((s = strchr(v, '(')) != NULL && strchr(s, ')')) {
        s++;
        e = strchr(s, ')');
    } else {
        return;
    }
    while (s < e && (*s == ' ' || *s == '\t'))
        s++;
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        e--;
    if (e - s >= 2 && *s == '"' && e[-1] == '"') {
        s++;
        e--;
    }
    buf_append(b, s, (size_t)(e - s));
}

/* rules_header_text - what a header rule matches; NULL: no such field
 * and no if-unset text. */
static const char *rules_header_text(rules_texts *t, const rule *ru, size_t *len)
{
    if (strcmp(ru->field, "ALL") == 0) {
        const char *s = rules_all(t, ru->form == HF_RAW);
        *len = strlen(s);
        return s;
    }
    bool tocc = strcmp(ru->field, "ToCc") == 0;
    bool found = false;
    buf_reset(&t->val);
    for (size_t i = 0; i < t->m->n_headers; i++) {
        const mime_header *h = &t->m->headers[i];
        if (!h->name)
            continue;
        if (tocc ? strcasecmp(h->name, "To") != 0 && strcasecmp(h->name, "Cc") != 0
                 : strcasecmp(h->name, ru->field) != 0)
            continue;
        found = true;
        const char *v = rules_hvalue(h, ru->form == HF_RAW);
        if (ru->form == HF_ADDR)
            rules_addr(&t->val, v);
        else if (ru->form == HF_NAME)
            rules_dname(&t->val, v);
        else
            buf_append_str(&t->val, v);
        buf_append_char(&t->val, '\n');
    }
    if (!found && ru->if_unset)
        buf_append_str(&t->val, ru->if_unset);
    *len = t->val.len;
    return t->val.len ? t->val.data : "";
}

/* rules_exec - how many times ru's pattern matches s (at most 1 unless
 * tflags multiple).  A match that stops at a limit is no match. */
static unsigned rules_exec(const rules_t *r, rule *ru, const char *s, size_t len,
                           pcre2_match_data *md)
{
    unsigned count = 0, max = ru->multiple ? RULES_MAX_MULTIPLE : 1;
    size_t off = 0;
    while (count < max && off <= len) {
        int rc = pcre2_match(ru->re, (PCRE2_SPTR)s, len, off, 0, md, r->mctx);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            r->stats->limit_hits++;
            if (!ru->limit_logged) {
                char msg[128];
                pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof msg);
                log_warn("%s:%d: rule %s: %s; taken as no match (logged once)",
                         ru->file, ru->line, ru->name, msg);
                ru->limit_logged = true;
            }
            return 0;
        }
        count++;
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t next = ov[1];
        off = next > off ? next : off + 1;      /* an empty match moves on */
    }
    return count;
}

/* rules_eval - a meta expression's value. */
static double rules_eval(const rules_expr *e, const double *val,
                         rules_builtin_fn builtin, void *bctx)
{
    switch (e->op) {
    case EX_NUM: return e->num;
    case EX_RULE: return val[e->rule];
    case EX_BUILTIN: return builtin && builtin(e->name, bctx) ? 1 : 0;
    case EX_NOT: return rules_eval(e->a, val, builtin, bctx) == 0;
    case EX_NEG: return -rules_eval(e->a, val, builtin, bctx);
    case EX_AND:
        return rules_eval(e->a, val, builtin, bctx) != 0 && rules_eval(e->b, val, builtin, bctx) != 0;
    case EX_OR:
        return rules_eval(e->a, val, builtin, bctx) != 0 || rules_eval(e->b, val, builtin, bctx) != 0;
    default: break;
    }
    double a = rules_eval(e->a, val, builtin, bctx), b = rules_eval(e->b, val, builtin, bctx);
    switch (e->op) {
    case EX_ADD: return a + b;
    case EX_SUB: return a - b;
    case EX_MUL: return a * b;
    case EX_GT: return a > b;
    case EX_GE: return a >= b;
    case EX_LT: return a < b;
    case EX_LE: return a <= b;
    case EX_EQ: return a == b;
    case EX_NE: return a != b;
    default: log_panic("rules_eval: bad operator %d", (int)e->op);
    }
}

size_t rules_run(const rules_t *r, const mime_msg *m, const char *raw, size_t raw_len,
                 rules_builtin_fn builtin, void *bctx, rules_hit *hits)
{
    if (r->n == 0)
        return 0;
    rules_texts t = {.m = m};
    double *val = xcalloc(r->n, sizeof *val);
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md)
        log_panic("rules_run: pcre2_match_data_create: out of memory");
    if (!raw)
        raw = "", raw_len = 0;

    for (size_t i = 0; i < r->n; i++) {
        rule *ru = &r->rule[i];
        const char *s;
        size_t len;
        if (!ru->needed || ru->kind == R_NONE || ru->kind == R_META)
            continue;
        switch (ru->kind) {
        case R_HEADER:
            if (ru->exists) {
                val[i] = rules_field(m, ru->field) != NULL;
                continue;
            }
            s = rules_header_text(&t, ru, &len);
            unsigned n = rules_exec(r, ru, s, len, md);
            val[i] = ru->negate ? n == 0 : n;
            continue;
        case R_BODY:
            s = rules_body(&t);
            val[i] = rules_exec(r, ru, s, t.body.len, md);
            continue;
        case R_RAWBODY:
            s = rules_rawbody(&t);
            val[i] = rules_exec(r, ru, s, t.rawbody.len, md);
            continue;
        case R_FULL:
            val[i] = rules_exec(r, ru, raw, raw_len, md);
            continue;
        case R_URI:
            for (size_t u = 0; u < m->n_uris; u++) {
                const char *url = m->uris[u].url ? m->uris[u].url : "";
                if (rules_exec(r, ru, url, strlen(url), md)) {
                    val[i]++;
                    if (!ru->multiple || val[i] >= RULES_MAX_MULTIPLE)
                        break;
                }
            }
            continue;
        default:
            continue;
        }
    }
    for (size_t k = 0; k < r->n_meta_order; k++) {
        size_t i = r->meta_order[k];
        val[i] = rules_eval(r->rule[i].meta, val, builtin, bctx) != 0;
    }

    size_t n_hits = 0;
    for (size_t i = 0; i < r->n; i++) {
        const rule *ru = &r->rule[i];
        if (ru->kind == R_NONE || val[i] == 0 || ru->score == 0
            || (ru->name[0] == '_' && ru->name[1] == '_'))
            continue;
        hits[n_hits].name = ru->name;
        hits[n_hits].score = ru->multiple ? ru->score * val[i] : ru->score;
        n_hits++;
    }
    pcre2_match_data_free(md);
    xfree(&val);
    buf_free(&t.body);
    buf_free(&t.rawbody);
    buf_free(&t.all);
    buf_free(&t.allraw);
    buf_free(&t.val);
    return n_hits;
}
