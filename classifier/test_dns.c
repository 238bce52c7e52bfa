/* test_dns.c - the DNS tests of one message (see test_dns.h): RBL and
 * URI blocklist lookups, HELO_NO_MATCH, SPF and DKIM (dkim.h: the key
 * records asked here, the verifying done there), each lookup a small
 * record that points back at its scan. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "dkim.h"
#include "log.h"
#include "spf.h"
#include "test_dns.h"
#include "xalloc.h"

/* ------------------------------------------------------------ helpers */

char *test_dns_hit_name(const char *prefix, const char *zone)
{
    char *name = xasprintf("%s_%s", prefix, zone);
    for (char *p = name + strlen(prefix) + 1; *p; p++)
        *p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
    return name;
}

/* test_dns_parse_ip - a (maybe bracketed, "IPv6:"-tagged) address into
 * 16 bytes, IPv4 as IPv4-mapped IPv6. */
static bool test_dns_parse_ip(const char *text, unsigned char out[16])
{
    char buf[INET6_ADDRSTRLEN + 8];
    size_t len = strlen(text);
    struct in_addr a4;

    if (len >= 2 && text[0] == '[' && text[len - 1] == ']') {
        text++;
        len -= 2;
    }
    if (len >= 5 && strncasecmp(text, "IPv6:", 5) == 0) {
        text += 5;
        len -= 5;
    }
    if (len == 0 || len >= sizeof buf)
        return false;
    memcpy(buf, text, len);
    buf[len] = 0;
    if (inet_pton(AF_INET, buf, &a4) == 1) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, buf, out) == 1;
}

static bool test_dns_is_v4(const unsigned char a[16])
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, prefix, 12) == 0;
}

bool test_dns_same_ip(const char *a, const char *b)
{
    unsigned char x[16], y[16];
    return test_dns_parse_ip(a, x) && test_dns_parse_ip(b, y) && memcmp(x, y, 16) == 0;
}

bool test_dns_reverse_ip(const char *ip, char *out, size_t size)
{
    unsigned char a[16];
    int n;

    if (!test_dns_parse_ip(ip, a))
        return false;
    if (test_dns_is_v4(a)) {
        n = snprintf(out, size, "%u.%u.%u.%u", a[15], a[14], a[13], a[12]);
        return n > 0 && (size_t)n < size;
    }
    if (size < 64)
        return false;
    char *p = out;
    for (int i = 15; i >= 0; i--) {
        static const char hex[] = "0123456789abcdef";
        *p++ = hex[a[i] & 15];
        *p++ = '.';
        *p++ = hex[a[i] >> 4];
        *p++ = i ? '.' : 0;
    }
    return true;
}

const char *test_dns_registrable(const char *host)
{
    static const char *const generic[] = {"co", "com", "net", "org", "gov", "edu", "ac",
                                          "ne", "or", "go", "gob", "mil", NULL};
    unsigned char ip[16];
    size_t len = host ? strlen(host) : 0;

    if (len == 0 || test_dns_parse_ip(host, ip))
        return NULL;
    while (len && host[len - 1] == '.')         /* "example.com." */
        len--;
    /* the last three dots, from the right */
    const char *last = NULL, *second = NULL, *third = NULL;
    for (size_t i = len, k = 0; i-- > 0 && k < 3;)
        if (host[i] == '.') {
            if (k == 0)
                last = host + i;
            else if (k == 1)
                second = host + i;
            else
                third = host + i;
            k++;
        }
    if (!last || last == host)
        return NULL;                            /* one label */
    const char *sld = second ? second + 1 : host;
    size_t sld_len = (size_t)(last - sld);
    size_t tld_len = (size_t)(host + len - last - 1);
    if (tld_len == 2 && second) {
        for (size_t i = 0; generic[i]; i++)
            if (strlen(generic[i]) == sld_len && strncmp(sld, generic[i], sld_len) == 0)
                return third ? third + 1 : host;
    }
    return sld;
}

void test_dns_lists_free(test_dns_lists *l)
{
    for (size_t i = 0; i < l->n; i++) {
        xfree(&l->v[i].zone);
        xfree(&l->v[i].expect);
        xfree(&l->v[i].hit);
    }
    xfree(&l->v);
    l->n = 0;
}

bool test_dns_lists_parse(const char *const *items, const char *prefix, test_dns_lists *out,
                          char **err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; items && items[i]; i++) {
        const char *item = items[i];
        const char *eq1 = strchr(item, '='), *eq2 = strrchr(item, '=');
        char *end;

        if (!eq1 || eq1 == item) {
            *err = xasprintf("\"%s\": expected zone=score or zone=127.0.0.x=score", item);
            goto bad;
        }
        errno = 0;
        double score = strtod(eq2 + 1, &end);
        if (errno || end == eq2 + 1 || *end || score < -1000 || score > 1000) {
            *err = xasprintf("\"%s\": bad score \"%s\"", item, eq2 + 1);
            goto bad;
        }
        test_dns_list l = {.zone = xstrndup(item, (size_t)(eq1 - item)), .score = score};
        if (eq2 != eq1) {
            struct in_addr a;
            l.expect = xstrndup(eq1 + 1, (size_t)(eq2 - eq1 - 1));
            if (inet_pton(AF_INET, l.expect, &a) != 1) {
                *err = xasprintf("\"%s\": bad answer address \"%s\"", item, l.expect);
                xfree(&l.zone);
                xfree(&l.expect);
                goto bad;
            }
        }
        size_t zl = strlen(l.zone);
        if (zl > 200 || strspn(l.zone, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789.-_") != zl) {
            *err = xasprintf("\"%s\": bad zone name", item);
            xfree(&l.zone);
            xfree(&l.expect);
            goto bad;
        }
        l.hit = test_dns_hit_name(prefix, l.zone);
        out->v = xrealloc(out->v, (out->n + 1) * sizeof *out->v);
        out->v[out->n++] = l;
    }
    return true;
bad:
    test_dns_lists_free(out);
    return false;
}

bool test_dns_config_load(const config_t *cfg, test_dns_config *out, char **err)
{
    char *e = NULL;

    memset(out, 0, sizeof *out);
    if (!test_dns_lists_parse(config_list(cfg, "spam_rbl_lists"), "RBL", &out->rbl, &e)) {
        *err = xasprintf("spam_rbl_lists: %s", e);
        xfree(&e);
        return false;
    }
    if (!test_dns_lists_parse(config_list(cfg, "spam_uribl_lists"), "URIBL", &out->uribl, &e)) {
        *err = xasprintf("spam_uribl_lists: %s", e);
        xfree(&e);
        test_dns_lists_free(&out->rbl);
        return false;
    }
    out->dkim = config_bool(cfg, "spam_dkim_verify");
    return true;
}

void test_dns_config_free(test_dns_config *c)
{
    test_dns_lists_free(&c->rbl);
    test_dns_lists_free(&c->uribl);
}

/* --------------------------------------------------------- the scan */

typedef enum { LOOKUP_LIST, LOOKUP_HELO, LOOKUP_DKIM } lookup_kind;

typedef struct lookup {
    struct test_dns *t;
    lookup_kind      kind;
    dns_query_t     *q;
    char            *hit;          /* LOOKUP_LIST: the hit name if listed */
    char            *expect;       /* LOOKUP_LIST: the answer that counts, or NULL */
    double           score;
    size_t           key;          /* LOOKUP_DKIM: which key of the DKIM check */
} lookup;

typedef struct dns_hit {
    char  *name;
    double score;
    bool   table;                  /* score from the table, not the list */
} dns_hit;

struct test_dns {
    dns_t           *dns;
    test_dns_done_fn done;
    void            *arg;
    char            *ip;
    lookup          *lk;
    size_t           n_lk;
    size_t           pending;
    dns_hit         *hits;
    size_t           n_hits;
    spf_check_t     *spf;
    char            *spf_ar;       /* SPF's resinfo, once it finished */
    char            *spf_rs;       /* SPF's Received-SPF value */
    dkim_check_t    *dkim;         /* NULL: DKIM not verified */
    size_t           dkim_pending; /* key lookups still out */
    char            *dkim_ar;      /* the dkim= resinfos, ";\r\n\t"-joined, once done */
    char            *from_domain;  /* the From: domain (DKIM_VALID_AU) */
    char            *headers;      /* Authentication-Results, Received-SPF */
    char            *receiver;
    char            *qid;
    bool             helo_matched, helo_answered;
    size_t           helo_pending;
};

/* test_dns_hit - note a hit once. */
static void test_dns_hit(test_dns_t *t, const char *name, double score, bool table)
{
    for (size_t i = 0; i < t->n_hits; i++)
        if (strcmp(t->hits[i].name, name) == 0)
            return;
    t->hits = xrealloc(t->hits, (t->n_hits + 1) * sizeof *t->hits);
    t->hits[t->n_hits++] = (dns_hit){xstrdup(name), score, table};
}

/* test_dns_settle - one lookup less; the last one tells the loop. */
static void test_dns_settle(test_dns_t *t)
{
    if (--t->pending == 0)
        t->done(t->arg);
}

static void test_dns_dkim_key(test_dns_t *t, lookup *l, const dns_reply *reply);

static void test_dns_answer(void *arg, const dns_reply *reply)
{
    lookup *l = arg;
    test_dns_t *t = l->t;

    l->q = NULL;
    if (l->kind == LOOKUP_DKIM) {
        test_dns_dkim_key(t, l, reply);
    } else if (l->kind == LOOKUP_LIST) {
        for (size_t i = 0; reply->status == DNS_OK && i < reply->n; i++) {
            if (l->expect && strcmp(reply->rr[i].text, l->expect) != 0)
                continue;
            test_dns_hit(t, l->hit, l->score, false);
            break;
        }
    } else {
        if (reply->status != DNS_TEMPFAIL)
            t->helo_answered = true;
        for (size_t i = 0; reply->status == DNS_OK && i < reply->n; i++)
            if (test_dns_same_ip(reply->rr[i].text, t->ip))
                t->helo_matched = true;
        if (--t->helo_pending == 0 && t->helo_answered && !t->helo_matched)
            test_dns_hit(t, "HELO_NO_MATCH", 0, true);
    }
    test_dns_settle(t);
}

static lookup *test_dns_lookup(test_dns_t *t, lookup_kind kind)
{
    lookup *l = &t->lk[t->n_lk++];
    l->t = t;
    l->kind = kind;
    return l;
}

static void test_dns_ask(test_dns_t *t, lookup *l, const char *name, dns_type type)
{
    l->q = dns_query(t->dns, name, type, test_dns_answer, l);
    t->pending++;
}

/* test_dns_oneline - a copy of s fit for one header line, whatever the
 * sender or HELO held: control bytes become "?". */
static char *test_dns_oneline(const char *s)
{
    char *out = xstrdup(s ? s : "");
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = '?';
    return out;
}

/* test_dns_pvalue - s as an Authentication-Results property value: bare
 * when it is a plain token or domain name, else quoted with anything
 * unfit ('"', '\\', control and 8-bit bytes) made "?"; at most 253
 * bytes of s. */
static void test_dns_pvalue(buf_t *b, const char *s)
{
    size_t len = strnlen(s, 253);
    bool bare = len > 0;

    for (size_t i = 0; i < len && bare; i++)
        bare = isalnum((unsigned char)s[i]) || strchr(".-_+", s[i]);
    if (bare) {
        buf_append(b, s, len);
        return;
    }
    buf_append_char(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        buf_append_char(b, c < 0x20 || c >= 0x7f || c == '"' || c == '\\' ? '?' : (char)c);
    }
    buf_append_char(b, '"');
}

/* test_dns_headers_make - the header fields from the parts finished so
 * far: one Authentication-Results with every method's resinfo on its own
 * folded line, then Received-SPF. */
static void test_dns_headers_make(test_dns_t *t)
{
    buf_t b;

    xfree(&t->headers);
    if (!t->spf_ar && !t->dkim_ar)
        return;
    buf_init(&b);
    buf_printf(&b, "Authentication-Results: %s;", t->receiver);
    if (t->spf_ar)
        buf_printf(&b, "\r\n\t%s%s", t->spf_ar, t->dkim_ar ? ";" : "");
    if (t->dkim_ar)
        buf_printf(&b, "\r\n\t%s", t->dkim_ar);
    buf_append_str(&b, "\r\n");
    if (t->spf_rs)
        buf_printf(&b, "Received-SPF: %s\r\n", t->spf_rs);
    t->headers = buf_steal(&b, NULL);
}

/* test_dns_dkim_done - every key is in: verify, note the hits, write the
 * dkim= resinfos. */
static void test_dns_dkim_done(test_dns_t *t)
{
    size_t n;
    bool pass = false, aligned = false, invalid = false, nokey = false, temp = false;
    buf_t b;

    dkim_check_finish(t->dkim);
    n = dkim_check_sigs(t->dkim);
    if (n == 0)
        return;                         /* unsigned */
    buf_init(&b);
    for (size_t i = 0; i < n; i++) {
        const dkim_check_sig *g = dkim_check_get(t->dkim, i);

        if (i)
            buf_append_str(&b, ";\r\n\t");
        size_t line = b.len;
        buf_printf(&b, "dkim=%s", dkim_check_result_name(g->result));
        if (g->result != DKIM_CHECK_PASS) {
            buf_append_str(&b, " reason=");
            test_dns_pvalue(&b, g->reason);
        }
        const char *props[][2] = {{"header.d", g->domain}, {"header.s", g->selector},
                                  {"header.b", g->b}};
        for (size_t k = 0; k < 3; k++) {
            if (!props[k][1][0])
                continue;
            if (b.len - line + strlen(props[k][0]) + strnlen(props[k][1], 253) > 74) {
                buf_append_str(&b, "\r\n\t");     /* fold between properties */
                line = b.len;
            } else {
                buf_append_char(&b, ' ');
            }
            buf_printf(&b, "%s=", props[k][0]);
            test_dns_pvalue(&b, props[k][1]);
        }
        switch (g->result) {
        case DKIM_CHECK_PASS:
            pass = true;
            if (t->from_domain && dkim_check_aligned(g->domain, t->from_domain))
                aligned = true;
            break;
        case DKIM_CHECK_FAIL:
            invalid = true;
            break;
        case DKIM_CHECK_PERMERROR:
            if (g->no_key)
                nokey = true;
            else
                invalid = true;
            break;
        case DKIM_CHECK_TEMPERROR:
            temp = true;
            break;
        }
        char d[80], s[80], why[80];
        log_printable(d, sizeof d, g->domain, strlen(g->domain));
        log_printable(s, sizeof s, g->selector, strlen(g->selector));
        log_printable(why, sizeof why, g->reason, strlen(g->reason));
        log_info("%s: dkim=%s d=%s s=%s (%s)", t->qid, dkim_check_result_name(g->result), d, s,
                 why);
    }
    xfree(&t->dkim_ar);
    t->dkim_ar = buf_steal(&b, NULL);

    test_dns_hit(t, "DKIM_SIGNED", 0, true);
    if (pass) {
        test_dns_hit(t, "DKIM_VALID", 0, true);
        if (aligned)
            test_dns_hit(t, "DKIM_VALID_AU", 0, true);
    } else {
        if (invalid)
            test_dns_hit(t, "DKIM_INVALID", 0, true);
        if (nokey)
            test_dns_hit(t, "DKIM_KEY_MISSING", 0, true);
        if (temp)
            test_dns_hit(t, "DKIM_TEMPERROR", 0, true);
    }
    test_dns_headers_make(t);
}

/* test_dns_dkim_key - a key record came back: the first TXT record that
 * says v=DKIM1 (else the first one) goes to the check. */
static void test_dns_dkim_key(test_dns_t *t, lookup *l, const dns_reply *reply)
{
    dkim_check_key st = DKIM_CHECK_KEY_TEMPFAIL;
    const char *text = NULL;

    if (reply->status == DNS_OK && reply->n) {
        st = DKIM_CHECK_KEY_FOUND;
        text = reply->rr[0].text;
        for (size_t i = 0; i < reply->n; i++)
            if (strncmp(reply->rr[i].text, "v=DKIM1", 7) == 0) {
                text = reply->rr[i].text;
                break;
            }
    } else if (reply->status == DNS_NOTFOUND) {
        st = DKIM_CHECK_KEY_NONE;
    }
    dkim_check_key_answer(t->dkim, l->key, st, text);
    if (--t->dkim_pending == 0)
        test_dns_dkim_done(t);
}

/* test_dns_dkim_start - hash the message for its signatures and ask
 * their keys; an unsigned message is done at once. */
static void test_dns_dkim_start(test_dns_t *t, const Envelope *env, const mime_msg *mime)
{
    t->dkim = dkim_check_new(env->queue_id, (const char *)env->body.data,
                             env->body.data ? env->body.len : 0);
    size_t n = dkim_check_keys(t->dkim);
    if (n == 0) {
        test_dns_dkim_done(t);
        return;
    }
    const mime_header *from = mime ? mime_header_get(mime, "From", 0) : NULL;
    if (from)
        t->from_domain = dkim_check_from_domain(from->value);
    t->dkim_pending = n;
    for (size_t i = 0; i < n; i++) {
        lookup *l = test_dns_lookup(t, LOOKUP_DKIM);
        l->key = i;
        test_dns_ask(t, l, dkim_check_key_name(t->dkim, i), DNS_TXT);
    }
}

static void test_dns_spf_done(void *arg, const spf_answer *a)
{
    test_dns_t *t = arg;
    static const char *const hits[] = {
        [SPF_NONE] = "SPF_NONE", [SPF_NEUTRAL] = "SPF_NEUTRAL", [SPF_PASS] = "SPF_PASS",
        [SPF_FAIL] = "SPF_FAIL", [SPF_SOFTFAIL] = "SPF_SOFTFAIL",
        [SPF_TEMPERROR] = "SPF_TEMPERROR", [SPF_PERMERROR] = "SPF_PERMERROR",
    };

    t->spf = NULL;                  /* it frees itself after this call */
    if ((size_t)a->result < sizeof hits / sizeof hits[0])
        test_dns_hit(t, hits[a->result], 0, true);
    t->spf_ar = test_dns_oneline(a->auth_results);
    t->spf_rs = test_dns_oneline(a->received_spf);
    test_dns_headers_make(t);
    test_dns_settle(t);
}

/* test_dns_uribl - the link domains, each asked of every URI list. */
static void test_dns_uribl(test_dns_t *t, const test_dns_lists *lists, const mime_msg *mime)
{
    const char **seen = xcalloc(TEST_DNS_MAX_URIBL, sizeof *seen);
    size_t n_seen = 0, asked = 0;

    for (size_t i = 0; i < mime->n_uris && asked < TEST_DNS_MAX_URIBL; i++) {
        const char *dom = test_dns_registrable(mime->uris[i].host);
        bool dup = false;
        size_t dl = dom ? strlen(dom) : 0;

        while (dl && dom[dl - 1] == '.')
            dl--;
        if (dl == 0 || dl > 200)
            continue;
        for (size_t k = 0; k < n_seen && !dup; k++)
            dup = strlen(seen[k]) >= dl && strncasecmp(seen[k], dom, dl) == 0 &&
                  (seen[k][dl] == 0 || seen[k][dl] == '.');
        if (dup || n_seen == TEST_DNS_MAX_URIBL)
            continue;
        seen[n_seen++] = dom;
        for (size_t k = 0; k < lists->n && asked < TEST_DNS_MAX_URIBL; k++, asked++) {
            char *name = xasprintf("%.*s.%s", (int)dl, dom, lists->v[k].zone);
            lookup *l = test_dns_lookup(t, LOOKUP_LIST);
            l->hit = xstrdup(lists->v[k].hit);
            l->expect = lists->v[k].expect ? xstrdup(lists->v[k].expect) : NULL;
            l->score = lists->v[k].score;
            test_dns_ask(t, l, name, DNS_A);
            xfree(&name);
        }
    }
    xfree(&seen);
}

test_dns_t *test_dns_start(const test_dns_config *cfg, dns_t *dns, const Envelope *env,
                           const mime_msg *mime, const char *receiver_host,
                           test_dns_done_fn done, void *arg)
{
    test_dns_t *t = xcalloc(1, sizeof *t);
    const Client *c = env->client;
    const char *ip = c && c->ip ? c->ip : "";
    const char *helo = c && c->helo ? c->helo : "";
    const char *listener = c && c->listener ? c->listener : "";
    bool authed = c && c->auth_user && c->auth_user[0];
    char rev[80];

    t->dns = dns;
    t->done = done;
    t->arg = arg;
    t->ip = xstrdup(ip);
    t->receiver = xstrdup(receiver_host ? receiver_host : "unknown");
    t->qid = xstrdup(env->queue_id ? env->queue_id : "-");
    t->lk = xcalloc(cfg->rbl.n + TEST_DNS_MAX_URIBL + 2 + DKIM_CHECK_MAX_SIGS, sizeof *t->lk);
    if (cfg->uribl.n && mime)       /* the links, whoever sends them */
        test_dns_uribl(t, &cfg->uribl, mime);
    if (cfg->dkim)                  /* signatures, whoever sends them */
        test_dns_dkim_start(t, env, mime);
    if (authed || !test_dns_reverse_ip(ip, rev, sizeof rev))
        return t;                   /* nothing to ask about this client */

    for (size_t i = 0; i < cfg->rbl.n; i++) {
        char *name = xasprintf("%s.%s", rev, cfg->rbl.v[i].zone);
        lookup *l = test_dns_lookup(t, LOOKUP_LIST);
        l->hit = xstrdup(cfg->rbl.v[i].hit);
        l->expect = cfg->rbl.v[i].expect ? xstrdup(cfg->rbl.v[i].expect) : NULL;
        l->score = cfg->rbl.v[i].score;
        test_dns_ask(t, l, name, DNS_A);
        xfree(&name);
    }
    unsigned char addr[16];
    if (helo[0] && strlen(helo) <= 253) {
        if (test_dns_parse_ip(helo, addr)) {
            if (!test_dns_same_ip(helo, ip))
                test_dns_hit(t, "HELO_NO_MATCH", 0, true);
        } else {
            t->helo_pending = 2;
            test_dns_ask(t, test_dns_lookup(t, LOOKUP_HELO), helo, DNS_A);
            test_dns_ask(t, test_dns_lookup(t, LOOKUP_HELO), helo, DNS_AAAA);
        }
    }
    if (strcmp(listener, "fetch") != 0 && strcmp(listener, "bounce") != 0) {
        t->spf = spf_check(dns, ip, helo, env->reverse_path, t->receiver,
                           test_dns_spf_done, t);
        t->pending++;
    }
    return t;
}

size_t test_dns_pending(const test_dns_t *t)
{
    return t->pending;
}

void test_dns_hits(const test_dns_t *t, const scoring_t *s,
                   void (*add)(void *arg, const char *name, double score), void *arg)
{
    for (size_t i = 0; i < t->n_hits; i++) {
        double score = t->hits[i].score;
        if (t->hits[i].table && !scoring_hit_score(s, t->hits[i].name, &score))
            continue;
        add(arg, t->hits[i].name, score);
    }
}

const char *test_dns_headers(const test_dns_t *t)
{
    return t->headers;
}

void test_dns_free(test_dns_t **tp)
{
    test_dns_t *t = *tp;

    if (!t)
        return;
    spf_abandon(&t->spf);
    dkim_check_free(&t->dkim);
    for (size_t i = 0; i < t->n_lk; i++) {
        dns_abandon(&t->lk[i].q);
        xfree(&t->lk[i].hit);
        xfree(&t->lk[i].expect);
    }
    for (size_t i = 0; i < t->n_hits; i++)
        xfree(&t->hits[i].name);
    xfree(&t->hits);
    xfree(&t->lk);
    xfree(&t->ip);
    xfree(&t->receiver);
    xfree(&t->qid);
    xfree(&t->spf_ar);
    xfree(&t->spf_rs);
    xfree(&t->dkim_ar);
    xfree(&t->from_domain);
    xfree(&t->headers);
    xfree(tp);
}
