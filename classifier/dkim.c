/* dkim.c - DKIM verification of one message over libopendkim (see
 * dkim.h).  The library hashes the header and body as they come; its key
 * lookup (dkim_check_lookup) only reads the answers the caller fetched,
 * and its own resolver is fenced off (dkim_check_no_dns), so a DKIM check
 * never blocks and never asks the network by itself.  Which signature
 * got which result is decided here from the key answers and the
 * library's per-signature flags, not from dkim_eom's single status. */
#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <opendkim/dkim.h>
#include "dkim.h"
#include "log.h"
#include "xalloc.h"

#define DKIM_CHECK_MAX_FIELDS 1000  /* header fields fed to the library */

typedef struct dkim_check_keyslot {
    char          *name;            /* "sel._domainkey.example.com" */
    char          *selector, *domain;
    bool           answered;
    dkim_check_key status;
    char          *text;
} dkim_check_keyslot;

typedef struct dkim_check_item {
    DKIM_SIGINFO  *si;              /* the library's, valid while c->dkim lives */
    dkim_check_sig pub;
    char          *domain, *selector, *reason;
    char           b[9];
} dkim_check_item;

struct dkim_check {
    DKIM              *dkim;        /* NULL: unsigned, or the library gave up */
    char              *id;
    bool               is_signed;   /* the header has a DKIM-Signature field */
    dkim_check_result  broken;      /* signed but no signature list: this result */
    char              *broken_reason;
    dkim_check_keyslot keys[DKIM_CHECK_MAX_SIGS];
    size_t             n_keys;
    dkim_check_item    items[DKIM_CHECK_MAX_SIGS];
    size_t             n_items;
    bool               finished;
};

static DKIM_LIB *dkim_check_libh;

/* ------------------------------------------------------------ the library */

/* dkim_check_no_dns - libopendkim's resolver start, fenced off: every
 * key comes from dkim_check_lookup, so getting here is a bug. */
static int dkim_check_no_dns(void *srv, int type, unsigned char *query, unsigned char *buf,
                             size_t buflen, void **qh)
{
    (void)srv;
    (void)type;
    (void)buf;
    (void)buflen;
    (void)qh;
    log_warn("dkim: libopendkim tried its own DNS lookup of %.200s (refused)",
             query ? (const char *)query : "?");
    return DKIM_DNS_ERROR;
}

/* dkim_check_no_dns_init - no resolver to set up either. */
static int dkim_check_no_dns_init(void **srv)
{
    *srv = NULL;
    return 0;
}

static void dkim_check_no_dns_close(void *srv)
{
    (void)srv;
}

static dkim_check_keyslot *dkim_check_slot(dkim_check_t *c, const char *sel, const char *dom)
{
    for (size_t i = 0; i < c->n_keys; i++)
        if (strcasecmp(c->keys[i].selector, sel) == 0 && strcasecmp(c->keys[i].domain, dom) == 0)
            return &c->keys[i];
    return NULL;
}

/* dkim_check_lookup - the library's key lookup: copy the answer already
 * fetched for this signature's selector and domain. */
static DKIM_CBSTAT dkim_check_lookup(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    dkim_check_t *c = dkim_get_user_context(dkim);
    const char *sel = (const char *)dkim_sig_getselector(sig);
    const char *dom = (const char *)dkim_sig_getdomain(sig);
    dkim_check_keyslot *k = c && sel && dom ? dkim_check_slot(c, sel, dom) : NULL;

    if (!k || !k->answered || k->status == DKIM_CHECK_KEY_TEMPFAIL)
        return DKIM_CBSTAT_TRYAGAIN;
    if (k->status == DKIM_CHECK_KEY_NONE)
        return DKIM_CBSTAT_NOTFOUND;
    size_t len = strlen(k->text);
    if (len >= buflen)
        return DKIM_CBSTAT_ERROR;
    memcpy(buf, k->text, len + 1);
    return DKIM_CBSTAT_CONTINUE;
}

/* dkim_check_lib - the process's DKIM_LIB, made at first use; NULL when
 * libopendkim cannot be set up (logged). */
static DKIM_LIB *dkim_check_lib(void)
{
    /* signatures are processed at dkim_eom, when the keys are in; broken
     * signatures keep a handle so they can be reported */
    unsigned int flags = DKIM_LIBFLAGS_DELAYSIGPROC | DKIM_LIBFLAGS_BADSIGHANDLES;
    DKIM_STAT st;

    static bool warned;             /* say it once, not once a message */

    if (dkim_check_libh)
        return dkim_check_libh;
    dkim_check_libh = dkim_init(NULL, NULL);
    if (!dkim_check_libh) {
        if (!warned)
            log_warn("dkim: cannot initialise libopendkim; DKIM signatures are not verified");
        warned = true;
        return NULL;
    }
    st = dkim_options(dkim_check_libh, DKIM_OP_SETOPT, DKIM_OPTS_FLAGS, &flags, sizeof flags);
    if (st == DKIM_STAT_OK)
        st = dkim_set_key_lookup(dkim_check_libh, dkim_check_lookup);
    if (st != DKIM_STAT_OK) {
        if (!warned)
            log_warn("dkim: cannot configure libopendkim: %s; DKIM signatures are not verified",
                     dkim_getresultstr(st));
        warned = true;
        dkim_close(dkim_check_libh);
        dkim_check_libh = NULL;
        return NULL;
    }
    dkim_dns_set_init(dkim_check_libh, dkim_check_no_dns_init);
    dkim_dns_set_close(dkim_check_libh, dkim_check_no_dns_close);
    dkim_dns_set_query_start(dkim_check_libh, dkim_check_no_dns);
    return dkim_check_libh;
}

void dkim_check_lib_free(void)
{
    if (dkim_check_libh)
        dkim_close(dkim_check_libh);
    dkim_check_libh = NULL;
}

/* ------------------------------------------------------------ the check */

static void dkim_check_break(dkim_check_t *c, dkim_check_result r, const char *why)
{
    c->broken = r;
    xfree(&c->broken_reason);
    c->broken_reason = xstrdup(why && why[0] ? why : "unusable signature");
}

/* dkim_check_fields - hand every header field to the library (without its
 * final line end, folding kept); returns where the body starts (len when
 * there is no empty line).  *is_signed: a DKIM-Signature field was seen. */
static size_t dkim_check_fields(DKIM *dkim, const char *msg, size_t len, bool *is_signed)
{
    size_t pos = 0, fields = 0;
    static const char sig_name[] = DKIM_SIGNHEADER;
    const size_t sig_len = sizeof sig_name - 1;

    *is_signed = false;
    while (pos < len) {
        const char *line = msg + pos;
        if (line[0] == '\n' || (line[0] == '\r' && pos + 1 < len && line[1] == '\n'))
            return pos + (line[0] == '\n' ? 1 : 2);     /* the empty line */
        /* the field: this line and the ones starting with white space */
        size_t end = pos;
        for (;;) {
            const char *nl = memchr(msg + end, '\n', len - end);
            end = nl ? (size_t)(nl - msg) + 1 : len;
            if (end >= len || (msg[end] != ' ' && msg[end] != '\t'))
                break;
        }
        size_t flen = end - pos;
        if (flen && msg[pos + flen - 1] == '\n')
            flen--;
        if (flen && msg[pos + flen - 1] == '\r')
            flen--;
        if (flen > sig_len && strncasecmp(line, sig_name, sig_len) == 0 &&
            (line[sig_len] == ':' || line[sig_len] == ' ' || line[sig_len] == '\t'))
            *is_signed = true;
        if (dkim && fields < DKIM_CHECK_MAX_FIELDS && flen) {
            /* the library copies the field; it does not write to it */
            (void)dkim_header(dkim, (u_char *)(uintptr_t)line, flen);
            fields++;
        }
        pos = end;
    }
    return len;
}

/* dkim_check_lower - a copy of s, lower-cased; "" for NULL. */
static char *dkim_check_lower(const unsigned char *s)
{
    char *out = xstrdup(s ? (const char *)s : "");
    for (char *p = out; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return out;
}

/* dkim_check_take_sigs - note the signatures (the first
 * DKIM_CHECK_MAX_SIGS; the library ignores the others) and the keys they
 * need. */
static void dkim_check_take_sigs(dkim_check_t *c)
{
    DKIM_SIGINFO **sigs = NULL;
    int n = 0;

    if (dkim_getsiglist(c->dkim, &sigs, &n) != DKIM_STAT_OK || n <= 0 || !sigs) {
        dkim_check_break(c, DKIM_CHECK_PERMERROR, "no usable signature");
        return;
    }
    for (int i = 0; i < n; i++) {
        if (c->n_items == DKIM_CHECK_MAX_SIGS) {
            dkim_sig_ignore(sigs[i]);
            continue;
        }
        dkim_check_item *it = &c->items[c->n_items++];
        it->si = sigs[i];
        it->domain = dkim_check_lower(dkim_sig_getdomain(sigs[i]));
        it->selector = dkim_check_lower(dkim_sig_getselector(sigs[i]));
        const u_char *b = dkim_sig_gettagvalue(sigs[i], false, (u_char *)"b");
        size_t k = 0;
        for (; b && *b && k < 8; b++)
            if (!isspace(*b))
                it->b[k++] = (char)*b;
        it->b[k] = 0;

        int err = dkim_sig_geterror(sigs[i]);
        if ((err != DKIM_SIGERROR_UNKNOWN && err != DKIM_SIGERROR_OK) || !it->domain[0] ||
            !it->selector[0])
            continue;                   /* broken: no key to ask */
        if (dkim_check_slot(c, it->selector, it->domain))
            continue;
        char *name = xasprintf("%s._domainkey.%s", it->selector, it->domain);
        if (strlen(name) > 253) {       /* no such DNS name: the key is missing */
            xfree(&name);
            continue;
        }
        dkim_check_keyslot *ks = &c->keys[c->n_keys++];
        ks->name = name;
        ks->selector = xstrdup(it->selector);
        ks->domain = xstrdup(it->domain);
    }
}

dkim_check_t *dkim_check_new(const char *id, const char *msg, size_t len)
{
    dkim_check_t *c = xcalloc(1, sizeof *c);
    DKIM_STAT st = DKIM_STAT_OK;
    size_t body;

    c->id = xstrdup(id && id[0] ? id : "-");
    if (!msg)
        len = 0;
    dkim_check_fields(NULL, msg, len, &c->is_signed);
    if (!c->is_signed)
        return c;                       /* nothing to verify: no library work */

    DKIM_LIB *lib = dkim_check_lib();
    if (lib)
        c->dkim = dkim_verify(lib, (const u_char *)c->id, NULL, &st);
    if (!c->dkim) {
        dkim_check_break(c, DKIM_CHECK_TEMPERROR, "verifier unavailable");
        return c;
    }
    dkim_set_user_context(c->dkim, c);
    body = dkim_check_fields(c->dkim, msg, len, &c->is_signed);
    st = dkim_eoh(c->dkim);
    if (st != DKIM_STAT_OK) {
        /* NOSIG: every signature field was unparseable; SYNTAX: e.g. no
         * From: to sign */
        const char *why = st == DKIM_STAT_NOSIG ? "unparseable signature" : dkim_geterror(c->dkim);
        dkim_check_break(c, DKIM_CHECK_PERMERROR, why ? why : dkim_getresultstr(st));
        dkim_free(c->dkim);
        c->dkim = NULL;
        return c;
    }
    if (body < len)
        (void)dkim_body(c->dkim, (u_char *)(uintptr_t)(msg + body), len - body);
    dkim_check_take_sigs(c);
    return c;
}

size_t dkim_check_keys(const dkim_check_t *c)
{
    return c->n_keys;
}

const char *dkim_check_key_name(const dkim_check_t *c, size_t i)
{
    if (i >= c->n_keys)
        log_panic("dkim_check_key_name: key %zu of %zu", i, c->n_keys);
    return c->keys[i].name;
}

void dkim_check_key_answer(dkim_check_t *c, size_t i, dkim_check_key status, const char *text)
{
    if (i >= c->n_keys)
        log_panic("dkim_check_key_answer: key %zu of %zu", i, c->n_keys);
    dkim_check_keyslot *k = &c->keys[i];
    k->answered = true;
    k->status = status;
    xfree(&k->text);
    if (status == DKIM_CHECK_KEY_FOUND) {
        size_t len = text ? strlen(text) : 0;
        /* longer than any real key record: broken, like an empty one */
        k->text = len <= DKIM_CHECK_MAX_KEY ? xstrdup(text ? text : "") : xstrdup("");
    }
}

/* dkim_check_judge - one signature's result from its key and the
 * library's verdict on it. */
static void dkim_check_judge(dkim_check_t *c, dkim_check_item *it)
{
    dkim_check_keyslot *k = it->domain[0] && it->selector[0]
                                ? dkim_check_slot(c, it->selector, it->domain) : NULL;
    int err = dkim_sig_geterror(it->si);
    unsigned flags = dkim_sig_getflags(it->si);
    dkim_check_result r;
    const char *why;

    if (err != DKIM_SIGERROR_UNKNOWN && err != DKIM_SIGERROR_OK && err != DKIM_SIGERROR_BADSIG &&
        err != DKIM_SIGERROR_NOKEY && err != DKIM_SIGERROR_KEYFAIL && !k) {
        r = DKIM_CHECK_PERMERROR;       /* broken before any key was needed */
        why = dkim_sig_geterrorstr(err);
    } else if (!k) {
        r = DKIM_CHECK_PERMERROR;
        why = "no key name";
        it->pub.no_key = true;
    } else if (!k->answered || k->status == DKIM_CHECK_KEY_TEMPFAIL) {
        r = DKIM_CHECK_TEMPERROR;
        why = "key lookup failed";
    } else if (k->status == DKIM_CHECK_KEY_NONE) {
        r = DKIM_CHECK_PERMERROR;
        why = "no key";
        it->pub.no_key = true;
    } else if (DKIM_SIG_CHECK(it->si)) {
        r = DKIM_CHECK_PASS;
        why = "ok";
    } else if (dkim_sig_getbh(it->si) == DKIM_SIGBH_MISMATCH) {
        r = DKIM_CHECK_FAIL;
        why = "body hash mismatch";
    } else if (err == DKIM_SIGERROR_BADSIG ||
               ((flags & DKIM_SIGFLAG_PROCESSED) && !(flags & DKIM_SIGFLAG_PASSED) &&
                (err == DKIM_SIGERROR_UNKNOWN || err == DKIM_SIGERROR_OK))) {
        r = DKIM_CHECK_FAIL;
        why = "bad signature";
    } else if (err != DKIM_SIGERROR_UNKNOWN && err != DKIM_SIGERROR_OK) {
        r = DKIM_CHECK_PERMERROR;       /* broken key record, expired, ... */
        why = dkim_sig_geterrorstr(err);
    } else {
        r = DKIM_CHECK_PERMERROR;
        why = "not verified";
    }
    it->pub.result = r;
    it->reason = xstrdup(why ? why : "error");
}

void dkim_check_finish(dkim_check_t *c)
{
    if (c->finished)
        log_panic("dkim_check_finish: %s finished twice", c->id);
    c->finished = true;
    if (c->dkim && c->n_items) {
        _Bool testkey = false;
        /* the status is that of the "final" signature; each signature's
         * own flags and error are what count */
        DKIM_STAT st = dkim_eom(c->dkim, &testkey);
        if (st != DKIM_STAT_OK)
            log_debug("%s: dkim_eom: %s", c->id, dkim_getresultstr(st));
    }
    for (size_t i = 0; i < c->n_items; i++) {
        dkim_check_item *it = &c->items[i];
        dkim_check_judge(c, it);
        it->pub.domain = it->domain;
        it->pub.selector = it->selector;
        it->pub.b = it->b;
        it->pub.reason = it->reason;
    }
    if (c->is_signed && c->n_items == 0) {
        /* signed, but no signature list: one result for the message */
        dkim_check_item *it = &c->items[c->n_items++];
        it->pub.result = c->broken_reason ? c->broken : DKIM_CHECK_PERMERROR;
        it->domain = xstrdup("");
        it->selector = xstrdup("");
        it->reason = xstrdup(c->broken_reason ? c->broken_reason : "unusable signature");
        it->pub.domain = it->domain;
        it->pub.selector = it->selector;
        it->pub.b = it->b;
        it->pub.reason = it->reason;
    }
}

size_t dkim_check_sigs(const dkim_check_t *c)
{
    return c->finished ? c->n_items : 0;
}

const dkim_check_sig *dkim_check_get(const dkim_check_t *c, size_t i)
{
    if (!c->finished || i >= c->n_items)
        log_panic("dkim_check_get: signature %zu of %zu", i, c->n_items);
    return &c->items[i].pub;
}

const char *dkim_check_result_name(dkim_check_result r)
{
    switch (r) {
    case DKIM_CHECK_PASS:      return "pass";
    case DKIM_CHECK_FAIL:      return "fail";
    case DKIM_CHECK_PERMERROR: return "permerror";
    case DKIM_CHECK_TEMPERROR: return "temperror";
    }
    return "permerror";
}

bool dkim_check_aligned(const char *domain, const char *from_domain)
{
    size_t dl, fl;

    if (!domain || !from_domain)
        return false;
    dl = strlen(domain);
    fl = strlen(from_domain);
    while (dl && domain[dl - 1] == '.')
        dl--;
    while (fl && from_domain[fl - 1] == '.')
        fl--;
    if (dl == 0 || fl < dl || strchr(domain, '.') == NULL)
        return false;                   /* "" or a bare top-level name */
    if (strncasecmp(from_domain + fl - dl, domain, dl) != 0)
        return false;
    return fl == dl || from_domain[fl - dl - 1] == '.';
}

char *dkim_check_from_domain(const char *from_value)
{
    u_char *user = NULL, *domain = NULL;

    if (!from_value || strlen(from_value) > 998)
        return NULL;
    char *copy = xstrdup(from_value);
    char *out = NULL;
    if (dkim_mail_parse((u_char *)copy, &user, &domain) == 0 && domain && domain[0])
        out = dkim_check_lower(domain);
    xfree(&copy);
    return out;
}

void dkim_check_free(dkim_check_t **cp)
{
    dkim_check_t *c = *cp;

    if (!c)
        return;
    if (c->dkim)
        dkim_free(c->dkim);
    for (size_t i = 0; i < c->n_keys; i++) {
        xfree(&c->keys[i].name);
        xfree(&c->keys[i].selector);
        xfree(&c->keys[i].domain);
        xfree(&c->keys[i].text);
    }
    for (size_t i = 0; i < c->n_items; i++) {
        xfree(&c->items[i].domain);
        xfree(&c->items[i].selector);
        xfree(&c->items[i].reason);
    }
    xfree(&c->broken_reason);
    xfree(&c->id);
    xfree(cp);
}
