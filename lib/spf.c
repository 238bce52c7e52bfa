/* spf.c - RFC 7208 check_host() as a state machine over lib/dns.h (see
 * spf.h).
 *
 * A check keeps a stack of frames, one per check_host() in progress: the
 * sender's domain at the bottom, one more for each include or redirect
 * being evaluated.  The top frame walks its record's terms; terms that
 * need no DNS (all, ip4, ip6) are decided at once, the others start
 * lookups and the evaluation resumes from their callbacks.  A frame's
 * result goes to its parent: an include maps it (pass matches; fail,
 * softfail and neutral do not; none and permerror are permerror), a
 * redirect passes it on (none becomes permerror).  The result of the
 * bottom frame is final; a fail then fetches the explanation (exp=) of
 * the record whose term matched, as RFC 7208 6.2 says.
 *
 * Lookups of mx and ptr hosts run in parallel; the first address that
 * matches decides and the others are abandoned.  Void lookups (NXDOMAIN
 * or no records) are counted over every lookup but the explanation's, as
 * python3-spf does.  A result known without DNS (a bad client address, a
 * sender domain that cannot exist) is still delivered later: dns.c parks
 * a query for the empty name on its deferred list, and its callback
 * carries the result out.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "log.h"
#include "spf.h"
#include "xalloc.h"

#define SPF_MAX_LOOKUPS   10    /* DNS-querying terms (RFC 7208 4.6.4) */
#define SPF_MAX_VOID      2     /* lookups without an answer */
#define SPF_MAX_NAMES     10    /* MX hosts per mx, PTR names per ptr */
#define SPF_MAX_DEPTH     (SPF_MAX_LOOKUPS + 2)
#define SPF_MAX_RECORD    4096  /* longer TXT records are a permerror */
#define SPF_MAX_TERMS     256
#define SPF_MAX_EXPAND    4096  /* a macro expansion longer than this is an error */
#define SPF_MAX_DOMAIN    253
#define SPF_MAX_SHOWN     256   /* outside text quoted in headers */

/* ---------------------------------------------------------------- records */

typedef enum { M_ALL, M_INCLUDE, M_A, M_MX, M_PTR, M_IP4, M_IP6, M_EXISTS } mech_kind;

static const char *const mech_names[] = {"all", "include", "a", "mx", "ptr", "ip4", "ip6",
                                         "exists"};

typedef struct spf_term {
    char          qual;         /* + - ~ ? */
    mech_kind     kind;
    char         *spec;         /* domain-spec, NULL when none */
    int           c4, c6;       /* CIDR lengths, -1 when not given */
    unsigned char net[16];      /* ip4 (first 4 bytes) / ip6 */
    char         *text;         /* as written, for the answer */
} spf_term;

struct spf_record {
    spf_term *t;
    size_t    n;
    char     *redirect, *exp;
    bool      has_all;
};

void spf_record_free(spf_record_t **rp)
{
    spf_record_t *r = *rp;

    if (r == NULL)
        return;
    for (size_t i = 0; i < r->n; i++) {
        xfree(&r->t[i].spec);
        xfree(&r->t[i].text);
    }
    xfree(&r->t);
    xfree(&r->redirect);
    xfree(&r->exp);
    xfree(rp);
}

/* macro_check - is s a valid macro-string (explain: exp text rules)? */
static bool macro_check(const char *s, bool explain, char **err)
{
    static const spf_macro_env dummy = {0};
    char *out = NULL;
    bool ok = spf_macro_expand(&dummy, s, explain, &out, err);

    xfree(&out);
    return ok;
}

/* domain_spec_ok - macro-string syntax, and a domain-end: "." toplabel
 * (optionally followed by a dot) or a macro at the end. */
static bool domain_spec_ok(const char *s, char **err)
{
    size_t n = strlen(s);
    const char *end, *label;

    if (n == 0) {
        *err = xstrdup("empty domain-spec");
        return false;
    }
    if (!macro_check(s, false, err))
        return false;
    if (s[n - 1] == '}')
        return true;
    end = s + n;
    if (end[-1] == '.')
        end--;
    label = end;
    while (label > s && label[-1] != '.')
        label--;
    if (label == s || label == end) {
        *err = xasprintf("domain-spec \"%s\" does not end in a top-level label", s);
        return false;
    }
    bool alpha = false;
    for (const char *p = label; p < end; p++) {
        if (isalpha((unsigned char)*p))
            alpha = true;
        else if (!isdigit((unsigned char)*p) && *p != '-') {
            *err = xasprintf("bad top-level label in \"%s\"", s);
            return false;
        }
    }
    if (!alpha || label[0] == '-' || end[-1] == '-') {
        *err = xasprintf("bad top-level label in \"%s\"", s);
        return false;
    }
    return true;
}

/* cidr_len - "/N" digits (no leading zero) up to max; -1 when bad. */
static int cidr_len(const char *s, size_t n, int max)
{
    int v = 0;

    if (n == 0 || n > 3 || (n > 1 && s[0] == '0'))
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v <= max ? v : -1;
}

/* parse_dual_cidr - strip "/N" and "//M" off the end of arg[0..*len). */
static bool parse_dual_cidr(const char *arg, size_t *len, int *c4, int *c6)
{
    const char *p;
    size_t n = *len;

    *c4 = *c6 = -1;
    for (p = arg + n; p > arg && isdigit((unsigned char)p[-1]); p--)
        ;
    if (p - arg >= 2 && p[-1] == '/' && p[-2] == '/') {
        if ((*c6 = cidr_len(p, (size_t)(arg + n - p), 128)) < 0)
            return false;
        n = (size_t)(p - 2 - arg);
        for (p = arg + n; p > arg && isdigit((unsigned char)p[-1]); p--)
            ;
    }
    if (p > arg && p[-1] == '/' && p < arg + n) {
        if ((*c4 = cidr_len(p, (size_t)(arg + n - p), 32)) < 0)
            return false;
        n = (size_t)(p - 1 - arg);
    } else if (p > arg && p[-1] == '/') {
        return false;               /* "/" with no digits */
    }
    *len = n;
    return true;
}

/* parse_term - one term into r; false and *err on a syntax error. */
static bool parse_term(spf_record_t *r, const char *w, size_t wl, char **err)
{
    char *word = xmemdup(w, wl);
    const char *p = word, *rest;
    char qual = '+';
    bool explicit_qual = false;
    size_t nl;
    spf_term t;
    bool ok = false;

    memset(&t, 0, sizeof(t));
    t.c4 = t.c6 = -1;
    if (strchr("+-~?", *p) != NULL) {
        qual = *p++;
        explicit_qual = true;
    }
    for (nl = 0; isalnum((unsigned char)p[nl]) || p[nl] == '-' || p[nl] == '_' ||
                 p[nl] == '.'; nl++)
        ;
    rest = p + nl;
    if (*rest == '=' && !explicit_qual && nl > 0 && isalpha((unsigned char)p[0])) {
        const char *val = rest + 1;
        char **slot = NULL;

        if (nl == 8 && strncasecmp(p, "redirect", 8) == 0)
            slot = &r->redirect;
        else if (nl == 3 && strncasecmp(p, "exp", 3) == 0)
            slot = &r->exp;
        if (slot != NULL) {
            if (*slot != NULL) {
                *err = xasprintf("%.*s= given twice", (int)nl, p);
                goto out;
            }
            if (slot == &r->exp && *val == 0) {
                *slot = xstrdup("");        /* ignored, as python3-spf does */
            } else {
                if (!domain_spec_ok(val, err))
                    goto out;
                *slot = xstrdup(val);
            }
        } else if (!macro_check(val, false, err)) {
            goto out;                       /* unknown modifiers: ignored if valid */
        }
        ok = true;
        goto out;
    }
    for (t.kind = M_ALL; t.kind <= M_EXISTS; t.kind++)
        if (strlen(mech_names[t.kind]) == nl && strncasecmp(p, mech_names[t.kind], nl) == 0)
            break;
    if (t.kind > M_EXISTS || (*rest != 0 && *rest != ':' && *rest != '/')) {
        *err = xasprintf("unknown mechanism \"%s\"", word);
        goto out;
    }
    t.qual = qual;
    switch (t.kind) {
    case M_ALL:
        if (*rest != 0) {
            *err = xasprintf("\"all\" takes no argument: \"%s\"", word);
            goto out;
        }
        r->has_all = true;
        break;
    case M_INCLUDE:
    case M_EXISTS:
        if (*rest != ':' || !domain_spec_ok(rest + 1, err)) {
            if (*err == NULL)
                *err = xasprintf("\"%s\" needs a domain", word);
            goto out;
        }
        t.spec = xstrdup(rest + 1);
        break;
    case M_PTR:
        if (*rest == '/') {
            *err = xasprintf("\"ptr\" takes no CIDR length: \"%s\"", word);
            goto out;
        }
        if (*rest == ':') {
            if (!domain_spec_ok(rest + 1, err))
                goto out;
            t.spec = xstrdup(rest + 1);
        }
        break;
    case M_A:
    case M_MX: {
        size_t len = strlen(rest);
        if (!parse_dual_cidr(rest, &len, &t.c4, &t.c6)) {
            *err = xasprintf("bad CIDR length in \"%s\"", word);
            goto out;
        }
        if (len > 0) {
            if (rest[0] != ':') {
                *err = xasprintf("bad mechanism \"%s\"", word);
                goto out;
            }
            char *spec = xmemdup(rest + 1, len - 1);
            if (!domain_spec_ok(spec, err)) {
                xfree(&spec);
                goto out;
            }
            t.spec = spec;
        }
        break;
    }
    case M_IP4:
    case M_IP6: {
        bool v4 = t.kind == M_IP4;
        const char *slash = v4 ? strchr(rest, '/') : strrchr(rest, '/');
        char *addr;
        int len = v4 ? 32 : 128;

        if (*rest != ':') {
            *err = xasprintf("\"%s\" needs an address", word);
            goto out;
        }
        addr = slash ? xmemdup(rest + 1, (size_t)(slash - rest - 1)) : xstrdup(rest + 1);
        if (inet_pton(v4 ? AF_INET : AF_INET6, addr, t.net) != 1 ||
            (slash != NULL && (len = cidr_len(slash + 1, strlen(slash + 1), len)) < 0)) {
            *err = xasprintf("bad network in \"%s\"", word);
            xfree(&addr);
            goto out;
        }
        xfree(&addr);
        if (slash != NULL)
            *(v4 ? &t.c4 : &t.c6) = len;
        break;
    }
    }
    if (r->n >= SPF_MAX_TERMS) {
        *err = xstrdup("too many terms");
        xfree(&t.spec);
        goto out;
    }
    t.text = xstrdup(word);
    r->t = xrealloc(r->t, (r->n + 1) * sizeof(*r->t));
    r->t[r->n++] = t;
    ok = true;
out:
    xfree(&word);
    return ok;
}

spf_record_t *spf_record_parse(const char *text, char **err)
{
    spf_record_t *r;
    const char *p;

    *err = NULL;
    if (strlen(text) > SPF_MAX_RECORD) {
        *err = xstrdup("record too long");
        return NULL;
    }
    if (strncasecmp(text, "v=spf1", 6) != 0 || (text[6] != 0 && text[6] != ' ')) {
        *err = xstrdup("not an SPF record");
        return NULL;
    }
    r = xcalloc(1, sizeof(*r));
    for (p = text + 6; *p != 0;) {
        size_t n;

        if (*p == ' ') {
            p++;
            continue;
        }
        for (n = 0; p[n] != 0 && p[n] != ' '; n++) {
            if ((unsigned char)p[n] < 0x21 || (unsigned char)p[n] > 0x7e) {
                *err = xasprintf("bad character 0x%02x in record", (unsigned char)p[n]);
                spf_record_free(&r);
                return NULL;
            }
        }
        if (!parse_term(r, p, n, err)) {
            if (*err == NULL)
                *err = xasprintf("bad term \"%.*s\"", (int)n, p);
            spf_record_free(&r);
            return NULL;
        }
        p += n;
    }
    return r;
}

char *spf_record_dump(const spf_record_t *r)
{
    buf_t b = BUF_INIT;
    char ip[INET6_ADDRSTRLEN];
    char *s;

    for (size_t i = 0; i < r->n; i++) {
        const spf_term *t = &r->t[i];
        buf_printf(&b, "%s%c%s", i ? " " : "", t->qual, mech_names[t->kind]);
        if (t->kind == M_IP4 || t->kind == M_IP6)
            buf_printf(&b, ":%s", inet_ntop(t->kind == M_IP4 ? AF_INET : AF_INET6, t->net,
                                             ip, sizeof(ip)));
        else if (t->spec != NULL)
            buf_printf(&b, ":%s", t->spec);
        if (t->c4 >= 0)
            buf_printf(&b, "/%d", t->c4);
        if (t->c6 >= 0)
            buf_printf(&b, t->kind == M_IP6 ? "/%d" : "//%d", t->c6);
    }
    if (r->redirect != NULL)
        buf_printf(&b, "%sredirect=%s", r->n ? " " : "", r->redirect);
    if (r->exp != NULL)
        buf_printf(&b, "%sexp=%s", r->n || r->redirect ? " " : "", r->exp);
    s = xmemdup(b.data ? b.data : "", b.len);
    buf_free(&b);
    return s;
}

/* ---------------------------------------------------------------- macros */

/* url_append - RFC 3986 escaping of everything but unreserved chars. */
static void url_append(buf_t *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (isalnum(ch) || ch == '-' || ch == '.' || ch == '_' || ch == '~')
            buf_append(b, (const char *)&ch, 1);
        else
            buf_printf(b, "%%%02X", ch);
    }
}

/* expand_one - the value of one macro with its transformers applied. */
static void expand_one(buf_t *b, const char *value, unsigned digits, bool reverse,
                       const char *delims, bool upper)
{
    const char *parts[128];
    size_t lens[128], np = 0;
    const char *p = value, *start = value;
    buf_t tmp = BUF_INIT;

    for (;; p++) {
        if (*p == 0 || strchr(delims, *p) != NULL) {
            if (np == sizeof(parts) / sizeof(parts[0])) {
                /* too many: fold the rest into the last part */
                lens[np - 1] = (size_t)(p - parts[np - 1]);
            } else {
                parts[np] = start;
                lens[np++] = (size_t)(p - start);
            }
            if (*p == 0)
                break;
            start = p + 1;
        }
    }
    if (reverse)
        for (size_t i = 0; i < np / 2; i++) {
            const char *tp = parts[i];
            size_t tl = lens[i];
            parts[i] = parts[np - 1 - i];
            lens[i] = lens[np - 1 - i];
            parts[np - 1 - i] = tp;
            lens[np - 1 - i] = tl;
        }
    size_t first = digits > 0 && digits < np ? np - digits : 0;
    for (size_t i = first; i < np; i++) {
        if (i > first)
            buf_append(&tmp, ".", 1);
        buf_append(&tmp, parts[i], lens[i]);
    }
    if (upper)
        url_append(b, tmp.data ? tmp.data : "", tmp.len);
    else if (tmp.len > 0)
        buf_append(b, tmp.data, tmp.len);
    buf_free(&tmp);
}

bool spf_macro_expand(const spf_macro_env *env, const char *in, bool explain, char **out,
                      char **err)
{
    buf_t b = BUF_INIT;
    const char *p = in;

    *out = NULL;
    *err = NULL;
    while (*p != 0) {
        if (b.len > SPF_MAX_EXPAND) {
            *err = xstrdup("macro expansion too long");
            goto bad;
        }
        if (*p != '%') {
            unsigned char ch = (unsigned char)*p;
            if (ch < 0x21 && !(explain && ch == ' ')) {
                *err = xasprintf("bad character 0x%02x in macro-string", ch);
                goto bad;
            }
            buf_append(&b, p++, 1);
            continue;
        }
        p++;
        if (*p == '%' || *p == '_' || *p == '-') {
            buf_append(&b, *p == '%' ? "%" : *p == '_' ? " " : "%20", *p == '-' ? 3 : 1);
            p++;
            continue;
        }
        if (*p != '{') {
            *err = xasprintf("bad macro at \"%%%.10s\"", p);
            goto bad;
        }
        p++;
        char letter = (char)tolower((unsigned char)*p);
        bool upper = isupper((unsigned char)*p);
        const char *value;
        switch (letter) {
        case 's': value = env->s; break;
        case 'l': value = env->l; break;
        case 'o': value = env->o; break;
        case 'd': value = env->d; break;
        case 'i': value = env->i; break;
        case 'p': value = env->p; break;
        case 'v': value = env->v; break;
        case 'h': value = env->h; break;
        case 'c': case 'r': case 't':
            if (!explain) {
                *err = xasprintf("%%{%c} is allowed only in exp= text", letter);
                goto bad;
            }
            value = letter == 'c' ? env->c : letter == 'r' ? env->r : env->t;
            break;
        default:
            *err = xasprintf("unknown macro letter '%c'", *p ? *p : '?');
            goto bad;
        }
        p++;
        unsigned digits = 0;
        size_t nd = 0;
        while (isdigit((unsigned char)*p)) {
            if (digits < 1000)
                digits = digits * 10 + (unsigned)(*p - '0');
            p++;
            nd++;
        }
        if (nd > 0 && digits == 0) {
            *err = xstrdup("macro digit transformer 0");
            goto bad;
        }
        bool reverse = false;
        if (*p == 'r' || *p == 'R') {
            reverse = true;
            p++;
        }
        char delims[8] = "";
        size_t ndl = 0;
        while (*p != 0 && strchr(".-+,/_=", *p) != NULL) {
            if (strchr(delims, *p) == NULL && ndl < sizeof(delims) - 1) {
                delims[ndl++] = *p;
                delims[ndl] = 0;
            }
            p++;
        }
        if (*p != '}') {
            *err = xstrdup("unterminated or bad macro");
            goto bad;
        }
        p++;
        expand_one(&b, value ? value : "", digits, reverse, ndl ? delims : ".", upper);
    }
    *out = xmemdup(b.data ? b.data : "", b.len);
    buf_free(&b);
    return true;
bad:
    buf_free(&b);
    return false;
}

void spf_domain_truncate(char *name)
{
    size_t n = strlen(name);
    char *p = name;

    if (n > 0 && name[n - 1] == '.')
        name[--n] = 0;
    while (n > SPF_MAX_DOMAIN) {
        char *dot = strchr(p, '.');
        if (dot == NULL) {
            p += n - SPF_MAX_DOMAIN;        /* one huge label: keep its end */
            n = SPF_MAX_DOMAIN;
            break;
        }
        n -= (size_t)(dot + 1 - p);
        p = dot + 1;
    }
    memmove(name, p, n + 1);
}

/* ---------------------------------------------------------------- the check */

typedef enum { VIA_TOP, VIA_INCLUDE, VIA_REDIRECT } via_kind;

typedef struct frame {
    char         *domain;
    spf_record_t *rec;
    size_t        next;         /* the next term to evaluate */
    via_kind      via;
} frame;

typedef enum {
    STEP_NONE, STEP_DEFER, STEP_RECORD, STEP_ADDR, STEP_EXISTS, STEP_MX, STEP_MX_ADDR,
    STEP_PTR, STEP_PTR_ADDR, STEP_EXP,
} step_kind;

typedef struct slot {
    struct spf_check *c;
    dns_query_t      *q;
    char             *name;
} slot;

struct spf_check {
    dns_t       *dns;
    spf_cb       cb;
    void        *arg;
    /* the client and the identity */
    int          fam;           /* AF_INET or AF_INET6 */
    unsigned char ip[16];
    char        *ip_text, *ip_i, *ip_c, *p_value;
    char        *sender, *local, *sdomain, *helo, *receiver, *ts;
    bool         helo_identity;
    /* evaluation */
    frame        fr[SPF_MAX_DEPTH];
    int          depth;
    unsigned     lookups, voids;
    step_kind    step;
    const spf_term *term;       /* the term whose lookups are running */
    bool         p_for_macro;   /* STEP_PTR* validates %{p}, not a ptr term */
    char        *target;
    slot         sl[SPF_MAX_NAMES + 1];
    unsigned     outstanding;
    /* the outcome */
    spf_result   result;
    char        *mechanism, *problem, *explanation;
    char        *exp_spec, *exp_domain;     /* of the record whose term failed */
    bool         done;
};

static void run(spf_check_t *c);
static void frame_done(spf_check_t *c, spf_result r);
static void on_record(void *arg, const dns_reply *r);

const char *spf_result_name(spf_result r)
{
    static const char *const names[] = {"none", "neutral", "pass", "fail", "softfail",
                                        "temperror", "permerror"};
    return (unsigned)r < sizeof(names) / sizeof(names[0]) ? names[r] : "?";
}

/* slots_abandon - forget every lookup in progress. */
static void slots_abandon(spf_check_t *c)
{
    for (size_t i = 0; i < sizeof(c->sl) / sizeof(c->sl[0]); i++) {
        dns_abandon(&c->sl[i].q);
        xfree(&c->sl[i].name);
    }
    c->outstanding = 0;
}

static void check_free(spf_check_t **cp)
{
    spf_check_t *c = *cp;

    slots_abandon(c);
    for (int i = 0; i < c->depth; i++) {
        xfree(&c->fr[i].domain);
        spf_record_free(&c->fr[i].rec);
    }
    xfree(&c->ip_text);
    xfree(&c->ip_i);
    xfree(&c->ip_c);
    xfree(&c->p_value);
    xfree(&c->sender);
    xfree(&c->local);
    xfree(&c->sdomain);
    xfree(&c->helo);
    xfree(&c->receiver);
    xfree(&c->ts);
    xfree(&c->target);
    xfree(&c->mechanism);
    xfree(&c->problem);
    xfree(&c->explanation);
    xfree(&c->exp_spec);
    xfree(&c->exp_domain);
    xfree(cp);
}

void spf_abandon(spf_check_t **cp)
{
    if (cp == NULL || *cp == NULL)
        return;
    check_free(cp);
}

/* start - a lookup in slot i; its reply goes to cb with the slot. */
static void start(spf_check_t *c, unsigned i, const char *name, dns_type type, dns_cb cb)
{
    c->sl[i].c = c;
    xfree(&c->sl[i].name);
    c->sl[i].name = xstrdup(name);
    c->sl[i].q = dns_query(c->dns, name, type, cb, &c->sl[i]);
    c->outstanding++;
}

/* slot_done - the slot's query has answered: the check it belongs to. */
static spf_check_t *slot_done(void *arg)
{
    slot *s = arg;

    s->q = NULL;
    s->c->outstanding--;
    return s->c;
}

/* sanitize - outside text made printable, quote-safe and bounded. */
static char *sanitize(const char *s)
{
    size_t n = strlen(s);
    char *o;

    if (n > SPF_MAX_SHOWN)
        n = SPF_MAX_SHOWN;
    o = xmemdup(s, n);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)o[i] < 0x20 || (unsigned char)o[i] > 0x7e || o[i] == '"' ||
            o[i] == '\\' || o[i] == ';')
            o[i] = '?';
    return o;
}

/* finish - build the header texts and call back; frees c. */
static void finish(spf_check_t *c)
{
    spf_answer a;
    char *ident = sanitize(c->helo_identity ? c->helo : c->sender);
    char *sender = sanitize(c->sender), *helo = sanitize(c->helo[0] ? c->helo : "unknown");
    char *recv = sanitize(c->receiver), *ip = sanitize(c->ip_text);
    char *problem = c->problem ? sanitize(c->problem) : NULL;
    char *mech = c->mechanism ? sanitize(c->mechanism) : NULL;
    char *comment, *hdr, *ar;

    switch (c->result) {
    case SPF_PASS:
        comment = xasprintf("%s: domain of %s designates %s as permitted sender", recv, ident, ip);
        break;
    case SPF_FAIL:
        comment = xasprintf("%s: domain of %s does not designate %s as permitted sender", recv,
                            ident, ip);
        break;
    case SPF_SOFTFAIL:
        comment = xasprintf("%s: transitioning domain of %s does not designate %s as permitted "
                            "sender", recv, ident, ip);
        break;
    case SPF_NEUTRAL:
        comment = xasprintf("%s: %s is neither permitted nor denied by domain of %s", recv, ip,
                            ident);
        break;
    case SPF_NONE:
        comment = xasprintf("%s: domain of %s does not designate permitted sender hosts", recv,
                            ident);
        break;
    case SPF_TEMPERROR:
        comment = xasprintf("%s: error in processing during lookup of %s: %s", recv, ident,
                            problem ? problem : "DNS error");
        break;
    default:
        comment = xasprintf("%s: permanent error in processing domain of %s: %s", recv, ident,
                            problem ? problem : "bad record");
        break;
    }
    hdr = xasprintf("%s (%s) client-ip=%s; envelope-from=\"%s\"; helo=\"%s\"; receiver=%s; "
                    "identity=%s;%s%s%s%s%s%s",
                    spf_result_name(c->result), comment, ip, sender, helo, recv,
                    c->helo_identity ? "helo" : "mailfrom",
                    mech ? " mechanism=\"" : "", mech ? mech : "", mech ? "\";" : "",
                    problem ? " problem=\"" : "", problem ? problem : "", problem ? "\";" : "");
    ar = xasprintf("spf=%s smtp.%s=%s", spf_result_name(c->result),
                   c->helo_identity ? "helo" : "mailfrom", ident);
    memset(&a, 0, sizeof(a));
    a.result = c->result;
    a.domain = c->sdomain;
    a.mechanism = c->result <= SPF_SOFTFAIL && c->result != SPF_NONE ? c->mechanism : NULL;
    a.explanation = c->result == SPF_FAIL ? c->explanation : NULL;
    a.problem = c->result >= SPF_TEMPERROR ? c->problem : NULL;
    a.received_spf = hdr;
    a.auth_results = ar;
    c->done = true;
    c->cb(c->arg, &a);
    xfree(&comment);
    xfree(&hdr);
    xfree(&ar);
    xfree(&ident);
    xfree(&sender);
    xfree(&helo);
    xfree(&recv);
    xfree(&ip);
    xfree(&problem);
    xfree(&mech);
    check_free(&c);
}

/* env_of - the macro values for the top frame (d: its domain). */
static spf_macro_env env_of(spf_check_t *c, const char *domain)
{
    spf_macro_env e = {
        .s = c->sender, .l = c->local, .o = c->sdomain, .d = domain, .i = c->ip_i,
        .p = c->p_value ? c->p_value : "unknown", .v = c->fam == AF_INET ? "in-addr" : "ip6",
        .h = c->helo, .c = c->ip_c, .r = c->receiver, .t = c->ts,
    };
    return e;
}

/* fail_now - end the whole check with r (temperror/permerror). */
static void fail_now(spf_check_t *c, spf_result r, char *problem)
{
    slots_abandon(c);
    xfree(&c->problem);
    c->problem = problem;
    c->result = r;
    finish(c);
}

/* domain_valid - a multi-label name with labels of 1..63 (RFC 7208 4.3). */
static bool domain_valid(const char *d)
{
    size_t n = strlen(d), label = 0;

    if (n > 0 && d[n - 1] == '.')
        n--;
    if (n == 0 || n > SPF_MAX_DOMAIN || memchr(d, '.', n) == NULL)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (++label > 63 || (unsigned char)d[i] <= 0x20 || (unsigned char)d[i] > 0x7e) {
            return false;
        }
    }
    return label > 0;
}

/* push_frame - begin check_host() for domain. */
static void push_frame(spf_check_t *c, const char *domain, via_kind via)
{
    frame *f;

    if (c->depth >= SPF_MAX_DEPTH) {
        fail_now(c, SPF_PERMERROR, xstrdup("includes nested too deep"));
        return;
    }
    f = &c->fr[c->depth++];
    memset(f, 0, sizeof(*f));
    f->domain = xstrdup(domain);
    f->via = via;
    if (!domain_valid(domain)) {
        frame_done(c, SPF_NONE);
        return;
    }
    c->step = STEP_RECORD;
    start(c, 0, domain, DNS_TXT, on_record);
}

/* void_lookup - count one; false (and the check is over) past the limit. */
static bool void_lookup(spf_check_t *c)
{
    if (++c->voids > SPF_MAX_VOID) {
        fail_now(c, SPF_PERMERROR, xasprintf("more than %d void lookups", SPF_MAX_VOID));
        return false;
    }
    return true;
}

static void on_record(void *arg, const dns_reply *r)
{
    spf_check_t *c = slot_done(arg);
    frame *f = &c->fr[c->depth - 1];
    const char *txt = NULL;
    size_t found = 0;
    char *err = NULL;

    if (r->status == DNS_TEMPFAIL) {
        fail_now(c, SPF_TEMPERROR, xasprintf("DNS error looking up %s TXT: %s", f->domain,
                                             r->error ? r->error : "temporary failure"));
        return;
    }
    if (r->status == DNS_NOTFOUND) {
        if (!void_lookup(c))
            return;
        frame_done(c, SPF_NONE);
        return;
    }
    for (size_t i = 0; i < r->n; i++) {
        const char *t = r->rr[i].text;
        if (strncasecmp(t, "v=spf1", 6) == 0 && (t[6] == 0 || t[6] == ' ')) {
            txt = t;
            found++;
        }
    }
    if (found == 0) {
        frame_done(c, SPF_NONE);
        return;
    }
    if (found > 1) {
        fail_now(c, SPF_PERMERROR, xasprintf("%s has %zu SPF records", f->domain, found));
        return;
    }
    f->rec = spf_record_parse(txt, &err);
    if (f->rec == NULL) {
        fail_now(c, SPF_PERMERROR, xasprintf("in the record of %s: %s", f->domain, err));
        xfree(&err);
        return;
    }
    f->next = 0;
    run(c);
}

/* matched - the term t of the top frame matched: its qualifier decides. */
static void matched(spf_check_t *c, const spf_term *t)
{
    frame *f = &c->fr[c->depth - 1];
    spf_result r = t->qual == '-' ? SPF_FAIL : t->qual == '~' ? SPF_SOFTFAIL :
                   t->qual == '?' ? SPF_NEUTRAL : SPF_PASS;

    xfree(&c->mechanism);
    c->mechanism = xstrdup(t->text);
    if (r == SPF_FAIL) {
        xfree(&c->exp_spec);
        xfree(&c->exp_domain);
        if (f->rec->exp != NULL && f->rec->exp[0] != 0) {
            c->exp_spec = xstrdup(f->rec->exp);
            c->exp_domain = xstrdup(f->domain);
        }
    }
    frame_done(c, r);
}

/* ip_in - does the client fall in net/len of its own family? */
static bool ip_in(const spf_check_t *c, int fam, const unsigned char *net, int len)
{
    int bytes = len / 8, bits = len % 8;

    if (fam != c->fam)
        return false;
    if (memcmp(c->ip, net, (size_t)bytes) != 0)
        return false;
    if (bits == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - bits));
    return (c->ip[bytes] & mask) == (net[bytes] & mask);
}

/* addr_match - does address text a (an A/AAAA answer) cover the client? */
static bool addr_match(const spf_check_t *c, const char *a, const spf_term *t)
{
    unsigned char net[16];

    if (c->fam == AF_INET)
        return inet_pton(AF_INET, a, net) == 1 && ip_in(c, AF_INET, net, t && t->c4 >= 0 ? t->c4 : 32);
    return inet_pton(AF_INET6, a, net) == 1 && ip_in(c, AF_INET6, net, t && t->c6 >= 0 ? t->c6 : 128);
}

/* target_of - expand the term's domain-spec (or the frame's domain). */
static bool target_of(spf_check_t *c, const char *spec)
{
    frame *f = &c->fr[c->depth - 1];
    spf_macro_env env = env_of(c, f->domain);
    char *out = NULL, *err = NULL;

    xfree(&c->target);
    if (spec == NULL) {
        c->target = xstrdup(f->domain);
        return true;
    }
    if (!spf_macro_expand(&env, spec, false, &out, &err)) {
        fail_now(c, SPF_PERMERROR, err);
        return false;
    }
    spf_domain_truncate(out);
    if (out[0] == 0) {
        xfree(&out);
        fail_now(c, SPF_PERMERROR, xasprintf("\"%s\" expands to nothing", spec));
        return false;
    }
    c->target = out;
    return true;
}

/* needs_p - does the spec use %{p}, not yet known? */
static bool needs_p(const spf_check_t *c, const char *spec)
{
    if (spec == NULL || c->p_value != NULL)
        return false;
    for (const char *p = spec; (p = strchr(p, '%')) != NULL; p += 2) {
        if (p[1] == '{' && (p[2] == 'p' || p[2] == 'P'))
            return true;
        if (p[1] == 0)
            break;
    }
    return false;
}

static void on_addr(void *arg, const dns_reply *r);
static void on_mx(void *arg, const dns_reply *r);
static void on_ptr(void *arg, const dns_reply *r);

/* start_ptr - the PTR step, for a ptr term or for %{p}. */
static void start_ptr(spf_check_t *c, bool for_macro)
{
    c->p_for_macro = for_macro;
    c->step = STEP_PTR;
    start(c, 0, c->ip_text, DNS_PTR, on_ptr);
}

/* run - evaluate the top frame's terms from f->next until one needs DNS,
 * one decides, or none is left. */
static void run(spf_check_t *c)
{
    frame *f = &c->fr[c->depth - 1];

    c->step = STEP_NONE;
    while (f->next < f->rec->n) {
        const spf_term *t = &f->rec->t[f->next];

        switch (t->kind) {
        case M_ALL:
            f->next++;
            matched(c, t);
            return;
        case M_IP4:
        case M_IP6: {
            int fam = t->kind == M_IP4 ? AF_INET : AF_INET6;
            int len = fam == AF_INET ? (t->c4 >= 0 ? t->c4 : 32) : (t->c6 >= 0 ? t->c6 : 128);
            f->next++;
            if (ip_in(c, fam, t->net, len)) {
                matched(c, t);
                return;
            }
            continue;
        }
        default:
            break;
        }
        /* a DNS-querying term */
        if (needs_p(c, t->spec)) {
            c->term = t;
            start_ptr(c, true);
            return;
        }
        if (++c->lookups > SPF_MAX_LOOKUPS) {
            fail_now(c, SPF_PERMERROR, xasprintf("more than %d DNS lookups", SPF_MAX_LOOKUPS));
            return;
        }
        f->next++;
        c->term = t;
        if (!target_of(c, t->spec))
            return;
        switch (t->kind) {
        case M_INCLUDE:
            push_frame(c, c->target, VIA_INCLUDE);
            return;
        case M_A:
            c->step = STEP_ADDR;
            start(c, 0, c->target, c->fam == AF_INET ? DNS_A : DNS_AAAA, on_addr);
            return;
        case M_EXISTS:
            c->step = STEP_EXISTS;
            start(c, 0, c->target, DNS_A, on_addr);
            return;
        case M_MX:
            c->step = STEP_MX;
            start(c, 0, c->target, DNS_MX, on_mx);
            return;
        case M_PTR:
            start_ptr(c, false);
            return;
        default:
            log_panic("spf run: term kind %d", (int)t->kind);
        }
    }
    /* no term matched */
    if (f->rec->redirect != NULL && !f->rec->has_all) {
        if (needs_p(c, f->rec->redirect)) {
            c->term = NULL;
            start_ptr(c, true);
            return;
        }
        if (++c->lookups > SPF_MAX_LOOKUPS) {
            fail_now(c, SPF_PERMERROR, xasprintf("more than %d DNS lookups", SPF_MAX_LOOKUPS));
            return;
        }
        if (!target_of(c, f->rec->redirect))
            return;
        push_frame(c, c->target, VIA_REDIRECT);
        return;
    }
    xfree(&c->mechanism);
    c->mechanism = xstrdup("default");
    frame_done(c, SPF_NEUTRAL);
}

/* on_addr - A/AAAA of an a term, or the A of an exists term. */
static void on_addr(void *arg, const dns_reply *r)
{
    spf_check_t *c = slot_done(arg);
    const spf_term *t = c->term;

    if (r->status == DNS_TEMPFAIL) {
        fail_now(c, SPF_TEMPERROR, xasprintf("DNS error looking up %s: %s", c->target,
                                             r->error ? r->error : "temporary failure"));
        return;
    }
    if (r->status == DNS_NOTFOUND) {
        if (void_lookup(c))
            run(c);
        return;
    }
    if (c->step == STEP_EXISTS) {
        matched(c, t);
        return;
    }
    for (size_t i = 0; i < r->n; i++)
        if (addr_match(c, r->rr[i].text, t)) {
            matched(c, t);
            return;
        }
    run(c);
}

/* on_mx_addr - an address lookup of one MX host. */
static void on_mx_addr(void *arg, const dns_reply *r)
{
    spf_check_t *c = slot_done(arg);

    if (r->status == DNS_TEMPFAIL) {
        fail_now(c, SPF_TEMPERROR, xasprintf("DNS error looking up %s: %s", ((slot *)arg)->name,
                                             r->error ? r->error : "temporary failure"));
        return;
    }
    if (r->status == DNS_NOTFOUND) {
        if (!void_lookup(c))
            return;
    } else {
        for (size_t i = 0; i < r->n; i++)
            if (addr_match(c, r->rr[i].text, c->term)) {
                slots_abandon(c);
                matched(c, c->term);
                return;
            }
    }
    if (c->outstanding == 0)
        run(c);
}

static void on_mx(void *arg, const dns_reply *r)
{
    spf_check_t *c = slot_done(arg);
    unsigned n = 0;

    if (r->status == DNS_TEMPFAIL) {
        fail_now(c, SPF_TEMPERROR, xasprintf("DNS error looking up %s MX: %s", c->target,
                                             r->error ? r->error : "temporary failure"));
        return;
    }
    if (r->status == DNS_NOTFOUND) {
        if (void_lookup(c))
            run(c);
        return;
    }
    if (r->n > SPF_MAX_NAMES) {
        fail_now(c, SPF_PERMERROR, xasprintf("%s has more than %d MX records", c->target,
                                             SPF_MAX_NAMES));
        return;
    }
    c->step = STEP_MX_ADDR;
    for (size_t i = 0; i < r->n; i++) {
        if (r->rr[i].text[0] == 0)          /* null MX */
            continue;
        start(c, 1 + n++, r->rr[i].text, c->fam == AF_INET ? DNS_A : DNS_AAAA, on_mx_addr);
    }
    if (n == 0)
        run(c);
}

/* ptr_done - every PTR name is checked: for %{p}, resume the term that
 * needed it; for a ptr term, no name validated. */
static void ptr_done(spf_check_t *c)
{
    if (c->p_for_macro) {
        if (c->p_value == NULL)
            c->p_value = xstrdup("unknown");
        run(c);                 /* the term that needed %{p} is still next */
        return;
    }
    run(c);
}

/* name_under - is name the domain d or below it? */
static bool name_under(const char *name, const char *d)
{
    size_t n = strlen(name), m = strlen(d);

    if (m > 0 && d[m - 1] == '.')
        m--;
    if (n == m)
        return strncasecmp(name, d, m) == 0;
    return n > m && name[n - m - 1] == '.' && strncasecmp(name + n - m, d, m) == 0;
}

/* on_ptr_addr - the forward lookup of one PTR name. */
static void on_ptr_addr(void *arg, const dns_reply *r)
{
    slot *s = arg;
    spf_check_t *c = slot_done(arg);
    bool ok = false;

    if (r->status == DNS_NOTFOUND && !c->p_for_macro && !void_lookup(c))
        return;
    if (r->status == DNS_OK)
        for (size_t i = 0; i < r->n && !ok; i++)
            ok = addr_match(c, r->rr[i].text, NULL);
    if (ok) {
        if (c->p_for_macro) {
            const char *d = c->fr[c->depth - 1].domain;
            /* prefer the domain or a name under it (RFC 7208 7.3) */
            if (c->p_value == NULL || (!name_under(c->p_value, d) && name_under(s->name, d))) {
                xfree(&c->p_value);
                c->p_value = xstrdup(s->name);
            }
        } else {
            slots_abandon(c);
            matched(c, c->term);
            return;
        }
    }
    if (c->outstanding == 0)
        ptr_done(c);
}

static void on_ptr(void *arg, const dns_reply *r)
{
    spf_check_t *c = slot_done(arg);
    unsigned n = 0;

    /* RFC 7208 5.5: a DNS error in the PTR lookup is no match */
    if (r->status == DNS_NOTFOUND && !c->p_for_macro && !void_lookup(c))
        return;
    c->step = STEP_PTR_ADDR;
    if (r->status == DNS_OK)
        for (size_t i = 0; i < r->n && n < SPF_MAX_NAMES; i++) {
            if (!c->p_for_macro && !name_under(r->rr[i].text, c->target))
                continue;
            start(c, 1 + n++, r->rr[i].text, c->fam == AF_INET ? DNS_A : DNS_AAAA,
                  on_ptr_addr);
        }
    if (n == 0)
        ptr_done(c);
}

static void on_exp(void *arg, const dns_reply *r)
{
    spf_check_t *c = slot_done(arg);

    if (r->status == DNS_OK && r->n == 1) {
        spf_macro_env env = env_of(c, c->exp_domain);
        char *out = NULL, *err = NULL;

        if (spf_macro_expand(&env, r->rr[0].text, true, &out, &err)) {
            c->explanation = sanitize(out);
            xfree(&out);
        } else {
            xfree(&err);        /* RFC 7208 6.2: a bad exp text is ignored */
        }
    }
    finish(c);
}

/* frame_done - the top frame's check_host() has result r. */
static void frame_done(spf_check_t *c, spf_result r)
{
    frame *f = &c->fr[c->depth - 1];
    via_kind via = f->via;

    xfree(&f->domain);
    spf_record_free(&f->rec);
    c->depth--;
    if (c->depth == 0) {
        c->result = r;
        if (r == SPF_FAIL && c->exp_spec != NULL) {
            spf_macro_env env = env_of(c, c->exp_domain);
            char *name = NULL, *err = NULL;

            if (spf_macro_expand(&env, c->exp_spec, false, &name, &err)) {
                spf_domain_truncate(name);
                if (name[0] != 0) {
                    c->step = STEP_EXP;
                    start(c, 0, name, DNS_TXT, on_exp);
                    xfree(&name);
                    return;
                }
            }
            xfree(&name);
            xfree(&err);
        }
        if (r == SPF_NONE)
            xfree(&c->mechanism);
        finish(c);
        return;
    }
    if (via == VIA_REDIRECT) {
        if (r == SPF_NONE) {
            fail_now(c, SPF_PERMERROR, xstrdup("redirect= to a domain without SPF record"));
            return;
        }
        frame_done(c, r);
        return;
    }
    /* an include (RFC 7208 5.2) */
    switch (r) {
    case SPF_PASS:
        matched(c, c->fr[c->depth - 1].rec->t + c->fr[c->depth - 1].next - 1);
        return;
    case SPF_FAIL:
    case SPF_SOFTFAIL:
    case SPF_NEUTRAL:
        run(c);
        return;
    case SPF_TEMPERROR:
        fail_now(c, SPF_TEMPERROR, c->problem ? xstrdup(c->problem) : NULL);
        return;
    default:
        fail_now(c, SPF_PERMERROR, xstrdup("include: of a domain without SPF record"));
        return;
    }
}

/* on_deferred - carries a result decided inside spf_check out of it. */
static void on_deferred(void *arg, const dns_reply *r)
{
    spf_check_t *c = slot_done(arg);

    (void)r;
    if (c->result == SPF_PERMERROR) {
        finish(c);
        return;
    }
    push_frame(c, c->sdomain, VIA_TOP);
}

/* ip_setup - the client address in the forms the check needs. */
static bool ip_setup(spf_check_t *c, const char *ip)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN];
    buf_t b = BUF_INIT;

    if (ip != NULL && inet_pton(AF_INET, ip, a) == 1) {
        c->fam = AF_INET;
        memcpy(c->ip, a, 4);
    } else if (ip != NULL && inet_pton(AF_INET6, ip, a) == 1) {
        if (memcmp(a, mapped, 12) == 0) {
            c->fam = AF_INET;
            memcpy(c->ip, a + 12, 4);
        } else {
            c->fam = AF_INET6;
            memcpy(c->ip, a, 16);
        }
    } else {
        return false;
    }
    inet_ntop(c->fam, c->ip, text, sizeof(text));
    c->ip_text = xstrdup(text);
    c->ip_c = xstrdup(text);
    if (c->fam == AF_INET) {
        c->ip_i = xstrdup(text);
    } else {
        for (int i = 0; i < 16; i++)
            buf_printf(&b, "%s%x.%x", i ? "." : "", c->ip[i] >> 4, c->ip[i] & 15);
        c->ip_i = xmemdup(b.data, b.len);
        buf_free(&b);
    }
    return true;
}

spf_check_t *spf_check(dns_t *dns, const char *ip, const char *helo, const char *sender,
                       const char *receiver_host, spf_cb cb, void *arg)
{
    spf_check_t *c = xcalloc(1, sizeof(*c));
    const char *at;
    bool ip_ok;

    c->dns = dns;
    c->cb = cb;
    c->arg = arg;
    c->helo = xstrdup(helo ? helo : "");
    c->receiver = xstrdup(receiver_host && receiver_host[0] ? receiver_host : "unknown");
    c->ts = xasprintf("%lld", (long long)time(NULL));
    if (sender == NULL || sender[0] == 0) {
        c->helo_identity = true;
        c->sender = xasprintf("postmaster@%s", c->helo);
    } else {
        c->sender = xstrdup(sender);
    }
    at = strrchr(c->sender, '@');
    if (at == NULL) {
        c->local = xstrdup("postmaster");
        c->sdomain = xstrdup(c->sender);
    } else {
        c->local = at == c->sender ? xstrdup("postmaster") : xstrndup(c->sender,
                                                                     (size_t)(at - c->sender));
        c->sdomain = xstrdup(at + 1);
    }
    ip_ok = ip_setup(c, ip);
    if (!ip_ok) {
        c->ip_text = sanitize(ip ? ip : "");
        c->ip_i = xstrdup("");
        c->ip_c = xstrdup("");
    }
    if (!ip_ok || !domain_valid(c->sdomain)) {
        /* decided without DNS: reported from dns.c's deferred list */
        if (!ip_ok) {
            c->result = SPF_PERMERROR;
            c->problem = xstrdup("the client address is not an IP address");
        }
        c->step = STEP_DEFER;
        start(c, 0, "", DNS_TXT, on_deferred);
        return c;
    }
    push_frame(c, c->sdomain, VIA_TOP);
    return c;
}
