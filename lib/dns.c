/* dns.c - asynchronous DNS lookups over c-ares, driven by the caller's loop.
 *
 * c-ares owns the sockets; its socket-state callback (ARES_OPT_SOCK_STATE_CB)
 * is passed on to the caller's watch callback, and is also kept in a small
 * table so that dns_wait can poll(2) without an outside loop.  Readiness
 * comes back through ares_process_fd, which also runs the timeouts.
 *
 * Lookups go to DNS only: ares_query with the exact name (no search
 * domains, ndots 1, ARES_FLAG_NOSEARCH) and lookups "b", so /etc/hosts is
 * never read.  ARES_FLAG_NOCHECKRESP lets SERVFAIL and REFUSED reach us
 * as themselves instead of a generic "could not contact".  "No such
 * name", "no such data" and a name that cannot be put in a query (a label
 * over 63 bytes, an empty name, a PTR of something that is not an
 * address) are DNS_NOTFOUND; every other c-ares status (timeout,
 * SERVFAIL, REFUSED, connection refused, bad reply, ...) is DNS_TEMPFAIL.
 *
 * Query handles.  A dns_query_t lives from dns_query until c-ares is done
 * with it: after its callback has run, or, when the caller abandoned it,
 * after c-ares completes it (answer, timeout or ares_destroy).  Abandoning
 * only clears the callback, so a handle abandoned from inside another
 * query's callback is still valid memory when c-ares finishes it.  A
 * callback may abandon its own query, start new ones, or abandon others.
 *
 * The callback never runs from inside dns_query: when c-ares completes a
 * query synchronously (a name it cannot encode, no usable server), the
 * result is parked on a "deferred" list, dns_timeout_ms says 0, and the
 * next dns_process delivers it.
 *
 * TTL: for A and AAAA the smallest addrttl c-ares reports; for MX, PTR and
 * TXT the smallest TTL in the answer section of the raw reply, read by
 * answer_min_ttl below (0 if the reply cannot be walked).
 *
 * Cache (dns_set_cache, lib/dns_cache.h): dns_query looks the name up
 * there first; a hit is parked on the deferred list with its copied
 * reply, exactly like a synchronous completion.  A miss remembers its
 * name, and complete() stores the answer, also for a query abandoned
 * meanwhile.  For DNS_NOTFOUND the SOA in the authority section gives
 * the negative TTL (RFC 2308), read by soa_negative_ttl below.
 *
 * dns_free runs no query callback (ares_destroy's ARES_EDESTRUCTION
 * completions are swallowed), but the watch callback is still told about
 * each socket c-ares closes, so the caller's loop must still exist.
 * dns_free must not be called from inside a query callback.
 *
 * c-ares retries: each of `tries` rounds asks every server in turn; c-ares
 * doubles the per-try timeout on each later round.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <errno.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "dns.h"
#include "dns_cache.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

typedef struct dns_sock {
    int  fd;
    bool want_read;
    bool want_write;
} dns_sock;

struct dns {
    ares_channel  channel;
    bool          channel_ok;     /* ares_init_options succeeded */
    dns_watch_cb  watch;
    void         *ctx;
    size_t        pending;        /* started, not yet called back or abandoned */
    int           starting;       /* > 0 inside ares_query: completions wait */
    int           busy;           /* > 0 inside dns_process / dns_wait */
    dns_query_t  *deferred;       /* completed, to be delivered by dns_process */
    dns_query_t **deferred_tail;
    dns_cache_t  *cache;          /* not owned; NULL: none */
    dns_sock     *socks;          /* what c-ares wants watched, for dns_wait */
    size_t        nsocks;
    size_t        socks_cap;
};

struct dns_query {
    dns_t         *d;
    dns_type       type;
    dns_cb         cb;            /* NULL once abandoned */
    void          *arg;
    bool           in_cb;         /* its callback is running right now */
    int            family;        /* DNS_PTR: AF_INET or AF_INET6 */
    unsigned char  addr[16];      /* DNS_PTR: the address asked about */
    char          *name;          /* with a cache: the key to store the answer under */
    dns_reply     *hit;           /* the answer came from the cache */
    /* a deferred completion */
    int            status;
    const char    *why;           /* error text instead of ares_strerror */
    unsigned char *abuf;
    int            alen;
    dns_query_t   *next;
};

/* ------------------------------------------------------------ small helpers */

static void query_free(dns_query_t **q)
{
    if (*q == NULL)
        return;
    xfree(&(*q)->abuf);
    xfree(&(*q)->name);
    dns_cache_reply_free(&(*q)->hit);
    xfree(q);
}

/* seterr - *err = message (when err is not NULL). */
static void seterr(char **err, char *msg)
{
    if (err != NULL)
        *err = msg;
    else
        xfree(&msg);
}

/* strip_dot - "host.example." to "host.example"; "." to "". */
static char *strip_dot(const char *name)
{
    size_t len = strlen(name);

    if (len > 0 && name[len - 1] == '.')
        len--;
    return xstrndup(name, len);
}

/* ------------------------------------------------------------ server list */

/* parse_port - "1".."65535", digits only. */
static bool parse_port(const char *s, unsigned *port)
{
    unsigned long v = 0;

    if (*s == 0 || strlen(s) > 5)
        return false;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (unsigned)v;
    return true;
}

/* server_append - one entry ("IP", "IP:port", "v6", "[v6]", "[v6]:port")
 * checked strictly and appended to csv in the form c-ares accepts;
 * c-ares 1.18's own parser takes "1.2.3" and wraps port 99999, so it is
 * only ever given what we have checked.  False on a bad entry. */
static bool server_append(buf_t *csv, const char *entry)
{
    char host[INET6_ADDRSTRLEN + 1];
    unsigned char bin[16];
    const char *port_text = NULL;
    unsigned port = 0;
    size_t hlen;
    bool v6;

    if (entry[0] == '[') {
        const char *close = strchr(entry, ']');
        if (close == NULL)
            return false;
        hlen = (size_t)(close - entry - 1);
        if (close[1] == ':')
            port_text = close + 2;
        else if (close[1] != 0)
            return false;
        entry++;
        v6 = true;
    } else {
        const char *colon = strchr(entry, ':');
        if (colon != NULL && strchr(colon + 1, ':') == NULL) {
            hlen = (size_t)(colon - entry);       /* IPv4:port */
            port_text = colon + 1;
            v6 = false;
        } else {
            hlen = strlen(entry);                 /* IPv4, or a bare IPv6 */
            v6 = colon != NULL;
        }
    }
    if (hlen == 0 || hlen >= sizeof(host))
        return false;
    memcpy(host, entry, hlen);
    host[hlen] = 0;
    if (inet_pton(v6 ? AF_INET6 : AF_INET, host, bin) != 1)
        return false;
    if (port_text != NULL && !parse_port(port_text, &port))
        return false;

    if (csv->len > 0)
        buf_append_char(csv, ',');
    if (v6 && port != 0)
        buf_printf(csv, "[%s]:%u", host, port);
    else if (port != 0)
        buf_printf(csv, "%s:%u", host, port);
    else
        buf_append_str(csv, host);
    return true;
}

/* ------------------------------------------------------------ sockets */

/* sock_state - c-ares opened, changed or is closing a socket. */
static void sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_t *d = data;
    size_t i;

    for (i = 0; i < d->nsocks; i++)
        if (d->socks[i].fd == fd)
            break;
    if (!readable && !writable) {
        if (i < d->nsocks)
            d->socks[i] = d->socks[--d->nsocks];
    } else {
        if (i == d->nsocks) {
            if (d->nsocks == d->socks_cap) {
                d->socks_cap = d->socks_cap ? d->socks_cap * 2 : 4;
                d->socks = xrealloc(d->socks, d->socks_cap * sizeof(*d->socks));
            }
            d->socks[d->nsocks++].fd = fd;
        }
        d->socks[i].want_read = readable != 0;
        d->socks[i].want_write = writable != 0;
    }
    if (d->watch != NULL)
        d->watch(d->ctx, fd, readable != 0, writable != 0);
}

/* ------------------------------------------------------------ replies */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* skip_name - past a (possibly compressed) name at *pos; false if it
 * runs off the end or uses a reserved label type. */
static bool skip_name(const unsigned char *abuf, size_t alen, size_t *pos)
{
    size_t p = *pos;

    for (;;) {
        unsigned len;

        if (p >= alen)
            return false;
        len = abuf[p];
        if (len == 0) {
            p++;
            break;
        }
        if ((len & 0xc0) == 0xc0) {           /* pointer: the name ends here */
            if (p + 2 > alen)
                return false;
            p += 2;
            break;
        }
        if ((len & 0xc0) != 0)
            return false;
        p += 1 + len;
    }
    *pos = p;
    return true;
}

/* get32 - a 32-bit big-endian number. */
static unsigned long get32(const unsigned char *p)
{
    return (unsigned long)p[0] << 24 | (unsigned long)p[1] << 16 | (unsigned long)p[2] << 8 | p[3];
}

/* skip_questions - move *pos (12: after the header) past the question
 * section of a reply. */
static bool skip_questions(const unsigned char *abuf, size_t alen, size_t *pos)
{
    unsigned qd = get16(abuf + 4);

    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(abuf, alen, pos) || *pos + 4 > alen)
            return false;
        *pos += 4;                             /* type, class */
    }
    return true;
}

/* next_record - the resource record at *pos: its type, its TTL (one with
 * the top bit set counts as 0, RFC 2181 8) and where its data is
 * (*rd, *rdlen); *pos moves past it.  False when the reply ends early. */
static bool next_record(const unsigned char *abuf, size_t alen, size_t *pos, unsigned *type,
                        unsigned long *ttl, size_t *rd, unsigned *rdlen)
{
    if (!skip_name(abuf, alen, pos) || *pos + 10 > alen)
        return false;
    *type = get16(abuf + *pos);
    *ttl = get32(abuf + *pos + 4);
    if (*ttl > 0x7fffffffUL)
        *ttl = 0;
    *rdlen = get16(abuf + *pos + 8);
    *pos += 10;
    if (*pos + *rdlen > alen)
        return false;
    *rd = *pos;
    *pos += *rdlen;
    return true;
}

/* answer_min_ttl - the smallest TTL in the answer section of a reply;
 * 0 when there is none or the reply cannot be walked. */
static unsigned answer_min_ttl(const unsigned char *abuf, int alen_int)
{
    size_t alen = alen_int > 0 ? (size_t)alen_int : 0;
    size_t pos = 12, rd;
    unsigned an, type, rdlen;
    unsigned long ttl, min = ULONG_MAX;

    if (abuf == NULL || alen < 12 || !skip_questions(abuf, alen, &pos))
        return 0;
    an = get16(abuf + 6);
    for (unsigned i = 0; i < an; i++) {
        if (!next_record(abuf, alen, &pos, &type, &ttl, &rd, &rdlen))
            return 0;
        if (ttl < min)
            min = ttl;
    }
    return min == ULONG_MAX ? 0 : (unsigned)min;
}

/* soa_negative_ttl - RFC 2308 5: the smaller of the TTL and the MINIMUM
 * of the SOA in the authority section of a negative reply; 0 when there
 * is none or the reply cannot be walked. */
static unsigned soa_negative_ttl(const unsigned char *abuf, int alen_int)
{
    size_t alen = alen_int > 0 ? (size_t)alen_int : 0;
    size_t pos = 12, rd;
    unsigned an, ns, type, rdlen;
    unsigned long ttl, min;

    if (abuf == NULL || alen < 12 || !skip_questions(abuf, alen, &pos))
        return 0;
    an = get16(abuf + 6);
    ns = get16(abuf + 8);
    for (unsigned i = 0; i < an + ns; i++) {
        if (!next_record(abuf, alen, &pos, &type, &ttl, &rd, &rdlen))
            return 0;
        if (i < an || type != ns_t_soa)
            continue;
        /* MNAME, RNAME, then SERIAL REFRESH RETRY EXPIRE MINIMUM */
        if (!skip_name(abuf, pos, &rd) || !skip_name(abuf, pos, &rd) || rd + 20 > pos)
            return 0;
        min = get32(abuf + rd + 16);
        if (min > 0x7fffffffUL)
            min = 0;
        return (unsigned)(ttl < min ? ttl : min);
    }
    return 0;
}

/* ancount - the answer count of a reply, at least 1 (sizes addrttl arrays). */
static int ancount(const unsigned char *abuf, int alen)
{
    unsigned n = abuf != NULL && alen >= 12 ? get16(abuf + 6) : 0;

    return n > 0 ? (int)n : 1;
}

/* rr_list - the records of a reply being built. */
typedef struct rr_list {
    dns_rr  *rr;
    size_t   n;
    size_t   cap;
    unsigned ttl;
} rr_list;

static void rr_add(rr_list *l, unsigned pref, char *text)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4;
        l->rr = xrealloc(l->rr, l->cap * sizeof(*l->rr));
    }
    l->rr[l->n].pref = pref;
    l->rr[l->n].text = text;
    l->n++;
}

static void rr_list_free(rr_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        xfree(&l->rr[i].text);
    xfree(&l->rr);
    l->n = l->cap = 0;
}

/* addr_ttl - an addrttl TTL as unsigned. */
static unsigned addr_ttl(int ttl)
{
    return ttl > 0 ? (unsigned)ttl : 0;
}

static int parse_a(const unsigned char *abuf, int alen, rr_list *l)
{
    int n = ancount(abuf, alen);
    struct ares_addrttl *at = xcalloc((size_t)n, sizeof(*at));
    int r = ares_parse_a_reply(abuf, alen, NULL, at, &n);

    if (r == ARES_SUCCESS) {
        for (int i = 0; i < n; i++) {
            char text[INET_ADDRSTRLEN];
            if (inet_ntop(AF_INET, &at[i].ipaddr, text, sizeof(text)) == NULL)
                log_panic("parse_a: inet_ntop: %m");
            rr_add(l, 0, xstrdup(text));
            if (i == 0 || addr_ttl(at[i].ttl) < l->ttl)
                l->ttl = addr_ttl(at[i].ttl);
        }
    }
    xfree(&at);
    return r;
}

static int parse_aaaa(const unsigned char *abuf, int alen, rr_list *l)
{
    int n = ancount(abuf, alen);
    struct ares_addr6ttl *at = xcalloc((size_t)n, sizeof(*at));
    int r = ares_parse_aaaa_reply(abuf, alen, NULL, at, &n);

    if (r == ARES_SUCCESS) {
        for (int i = 0; i < n; i++) {
            char text[INET6_ADDRSTRLEN];
            if (inet_ntop(AF_INET6, &at[i].ip6addr, text, sizeof(text)) == NULL)
                log_panic("parse_aaaa: inet_ntop: %m");
            rr_add(l, 0, xstrdup(text));
            if (i == 0 || addr_ttl(at[i].ttl) < l->ttl)
                l->ttl = addr_ttl(at[i].ttl);
        }
    }
    xfree(&at);
    return r;
}

/* mx_sort - an MX record with a random key that breaks preference ties. */
typedef struct mx_sort {
    dns_rr   rr;
    uint32_t key;
} mx_sort;

static int mx_cmp(const void *a, const void *b)
{
    const mx_sort *x = a, *y = b;

    if (x->rr.pref != y->rr.pref)
        return x->rr.pref < y->rr.pref ? -1 : 1;
    if (x->key != y->key)
        return x->key < y->key ? -1 : 1;
    return 0;
}

/* parse_mx - sorted by preference, equal preferences in random order
 * (RFC 5321 5.1); the root as host (null MX, RFC 7505) becomes "". */
static int parse_mx(const unsigned char *abuf, int alen, rr_list *l)
{
    struct ares_mx_reply *mx = NULL;
    int r = ares_parse_mx_reply(abuf, alen, &mx);
    size_t n = 0, i = 0;
    mx_sort *s;

    if (r != ARES_SUCCESS) {
        if (mx != NULL)
            ares_free_data(mx);
        return r;
    }
    for (struct ares_mx_reply *m = mx; m != NULL; m = m->next)
        n++;
    if (n == 0) {
        if (mx != NULL)
            ares_free_data(mx);
        return ARES_ENODATA;
    }
    s = xcalloc(n, sizeof(*s));
    for (struct ares_mx_reply *m = mx; m != NULL; m = m->next, i++) {
        s[i].rr.pref = m->priority;
        s[i].rr.text = strip_dot(m->host);
        s[i].key = arc4random();
    }
    ares_free_data(mx);
    qsort(s, n, sizeof(*s), mx_cmp);
    for (i = 0; i < n; i++)
        rr_add(l, s[i].rr.pref, s[i].rr.text);
    xfree(&s);
    l->ttl = answer_min_ttl(abuf, alen);
    return ARES_SUCCESS;
}

/* has_name - is name among the first n records already? */
static bool has_name(const rr_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcasecmp(l->rr[i].text, name) == 0)
            return true;
    return false;
}

/* parse_ptr - every PTR name once (c-ares puts one in h_name and all of
 * them in h_aliases). */
static int parse_ptr(const dns_query_t *q, const unsigned char *abuf, int alen, rr_list *l)
{
    struct hostent *he = NULL;
    int addrlen = q->family == AF_INET ? 4 : 16;
    int r = ares_parse_ptr_reply(abuf, alen, q->addr, addrlen, q->family, &he);
    char *name;

    if (r != ARES_SUCCESS) {
        if (he != NULL)
            ares_free_hostent(he);
        return r;
    }
    if (he == NULL)
        return ARES_ENODATA;
    if (he->h_name != NULL && he->h_name[0] != 0) {
        name = strip_dot(he->h_name);
        rr_add(l, 0, name);
    }
    for (char **a = he->h_aliases; a != NULL && *a != NULL; a++) {
        name = strip_dot(*a);
        if (name[0] == 0 || has_name(l, name))
            xfree(&name);
        else
            rr_add(l, 0, name);
    }
    ares_free_hostent(he);
    if (l->n == 0)
        return ARES_ENODATA;
    l->ttl = answer_min_ttl(abuf, alen);
    return ARES_SUCCESS;
}

/* parse_txt - one rr per TXT record, its strings joined without a
 * separator (as SPF and DNSBL texts are read).  A NUL byte inside a
 * string ends the text. */
static int parse_txt(const unsigned char *abuf, int alen, rr_list *l)
{
    struct ares_txt_ext *txt = NULL;
    int r = ares_parse_txt_reply_ext(abuf, alen, &txt);
    buf_t b = BUF_INIT;
    bool open = false;

    if (r != ARES_SUCCESS) {
        if (txt != NULL)
            ares_free_data(txt);
        return r;
    }
    for (struct ares_txt_ext *t = txt; t != NULL; t = t->next) {
        if (t->record_start && open) {
            rr_add(l, 0, xmemdup(b.data ? b.data : "", b.len));
            buf_reset(&b);
        }
        open = true;
        if (t->length > 0)
            buf_append(&b, t->txt, t->length);
    }
    if (open)
        rr_add(l, 0, xmemdup(b.data ? b.data : "", b.len));
    buf_free(&b);
    if (txt != NULL)
        ares_free_data(txt);
    if (l->n == 0)
        return ARES_ENODATA;
    l->ttl = answer_min_ttl(abuf, alen);
    return ARES_SUCCESS;
}

/* status_of - the three outcomes a caller acts on. */
static dns_status status_of(int ares_status)
{
    switch (ares_status) {
    case ARES_SUCCESS:
        return DNS_OK;
    case ARES_ENOTFOUND:
    case ARES_ENODATA:
    case ARES_EBADNAME:         /* a name that cannot exist: asking again won't help */
        return DNS_NOTFOUND;
    default:
        return DNS_TEMPFAIL;
    }
}

/* deliver - run the callback of a query that was not abandoned. */
static void deliver(dns_query_t *q, const dns_reply *reply)
{
    dns_t *d = q->d;

    if (q->cb == NULL)
        return;
    if (d->pending == 0)
        log_panic("dns complete: no query pending");
    d->pending--;
    q->in_cb = true;
    q->cb(q->arg, reply);
}

/* complete - build the reply of a finished query, keep it in the cache,
 * run its callback (unless abandoned) and free the query. */
static void complete(dns_query_t *q, int status, const unsigned char *abuf, int alen)
{
    dns_t *d = q->d;
    rr_list l = {0};
    dns_reply reply;

    if (q->hit != NULL) {                     /* answered from the cache */
        deliver(q, q->hit);
        query_free(&q);
        return;
    }
    if (q->cb == NULL && (d->cache == NULL || q->name == NULL)) {   /* abandoned */
        query_free(&q);
        return;
    }
    if (status == ARES_SUCCESS) {
        if (abuf == NULL || alen <= 0)
            status = ARES_EBADRESP;
        else if (q->type == DNS_A)
            status = parse_a(abuf, alen, &l);
        else if (q->type == DNS_AAAA)
            status = parse_aaaa(abuf, alen, &l);
        else if (q->type == DNS_MX)
            status = parse_mx(abuf, alen, &l);
        else if (q->type == DNS_PTR)
            status = parse_ptr(q, abuf, alen, &l);
        else
            status = parse_txt(abuf, alen, &l);
        if (status == ARES_SUCCESS && l.n == 0)
            status = ARES_ENODATA;
        if (status != ARES_SUCCESS)
            rr_list_free(&l);
    }
    memset(&reply, 0, sizeof(reply));
    reply.status = status_of(status);
    reply.error = q->why != NULL ? q->why : ares_strerror(status);
    reply.nxdomain = status == ARES_ENOTFOUND && q->why == NULL;
    if (status == ARES_SUCCESS) {
        reply.ttl = l.ttl;
        reply.n = l.n;
        reply.rr = l.rr;
    } else if (reply.status == DNS_NOTFOUND && q->why == NULL) {
        reply.neg_ttl = soa_negative_ttl(abuf, alen);
    }
    if (d->cache != NULL && q->name != NULL)
        dns_cache_put(d->cache, q->type, q->name, &reply, time_mono_ms());
    deliver(q, &reply);
    rr_list_free(&l);
    query_free(&q);
}

/* defer - park a completion that happened inside dns_query. */
static void defer(dns_query_t *q, int status, const char *why,
                  const unsigned char *abuf, int alen)
{
    dns_t *d = q->d;

    q->status = status;
    q->why = why;
    if (abuf != NULL && alen > 0) {
        q->abuf = xmalloc((size_t)alen);
        memcpy(q->abuf, abuf, (size_t)alen);
        q->alen = alen;
    }
    q->next = NULL;
    *d->deferred_tail = q;
    d->deferred_tail = &q->next;
}

/* deliver_deferred - complete what was parked so far (what the callbacks
 * park meanwhile waits for the next round). */
static void deliver_deferred(dns_t *d)
{
    dns_query_t *q = d->deferred, *next;

    d->deferred = NULL;
    d->deferred_tail = &d->deferred;
    for (; q != NULL; q = next) {
        next = q->next;
        complete(q, q->status, q->abuf, q->alen);
    }
}

/* on_answer - c-ares is done with a query. */
static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    dns_query_t *q = arg;

    (void)timeouts;
    if (status == ARES_EDESTRUCTION) {        /* dns_free: no callback */
        query_free(&q);
        return;
    }
    if (q->d->starting > 0) {
        defer(q, status, NULL, abuf, alen);
        return;
    }
    complete(q, status, abuf, alen);
}

/* ------------------------------------------------------------ PTR names */

/* reverse_name - the in-addr.arpa or ip6.arpa name of a text address
 * (IPv4-mapped IPv6 as IPv4); false if text is not an address. */
static bool reverse_name(dns_query_t *q, const char *text, char *out, size_t size)
{
    static const char hex[] = "0123456789abcdef";
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    unsigned char a[16];
    size_t o = 0;

    if (inet_pton(AF_INET, text, a) == 1) {
        q->family = AF_INET;
        memcpy(q->addr, a, 4);
    } else if (inet_pton(AF_INET6, text, a) == 1) {
        if (memcmp(a, mapped, 12) == 0) {
            q->family = AF_INET;
            memcpy(q->addr, a + 12, 4);
        } else {
            q->family = AF_INET6;
            memcpy(q->addr, a, 16);
        }
    } else {
        return false;
    }
    if (q->family == AF_INET) {
        int n = snprintf(out, size, "%u.%u.%u.%u.in-addr.arpa",
                         q->addr[3], q->addr[2], q->addr[1], q->addr[0]);
        if (n < 0 || (size_t)n >= size)
            log_panic("reverse_name: buffer too small");
        return true;
    }
    if (size < 16 * 4 + sizeof("ip6.arpa"))
        log_panic("reverse_name: buffer too small");
    for (int i = 15; i >= 0; i--) {
        out[o++] = hex[q->addr[i] & 0xf];
        out[o++] = '.';
        out[o++] = hex[q->addr[i] >> 4];
        out[o++] = '.';
    }
    memcpy(out + o, "ip6.arpa", sizeof("ip6.arpa"));
    return true;
}

/* ------------------------------------------------------------ the API */

dns_t *dns_new(const char *const *servers, int64_t timeout_ms, int tries,
               dns_watch_cb watch, void *ctx, char **err)
{
    struct ares_options o;
    buf_t csv = BUF_INIT;
    dns_t *d;
    int r;

    if (err != NULL)
        *err = NULL;
    if (timeout_ms <= 0 || tries <= 0)
        log_panic("dns_new: timeout %lld ms, %d tries", (long long)timeout_ms, tries);
    for (size_t i = 0; servers != NULL && servers[i] != NULL; i++) {
        if (!server_append(&csv, servers[i])) {
            char safe[80];
            seterr(err, xasprintf("bad DNS server \"%s\": want IP, IP:port or [IPv6]:port",
                                  log_printable(safe, sizeof(safe), servers[i],
                                                strlen(servers[i]))));
            buf_free(&csv);
            return NULL;
        }
    }

    r = ares_library_init(ARES_LIB_INIT_ALL);
    if (r != ARES_SUCCESS) {
        seterr(err, xasprintf("c-ares library init: %s", ares_strerror(r)));
        buf_free(&csv);
        return NULL;
    }
    d = xcalloc(1, sizeof(*d));
    d->watch = watch;
    d->ctx = ctx;
    d->deferred_tail = &d->deferred;

    memset(&o, 0, sizeof(o));
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOCHECKRESP | ARES_FLAG_NOALIASES;
    o.timeout = timeout_ms > INT_MAX ? INT_MAX : (int)timeout_ms;
    o.tries = tries;
    o.ndots = 1;
    o.lookups = (char *)"b";
    o.sock_state_cb = sock_state;
    o.sock_state_cb_data = d;
    r = ares_init_options(&d->channel, &o,
                          ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                          ARES_OPT_NDOTS | ARES_OPT_LOOKUPS | ARES_OPT_SOCK_STATE_CB);
    if (r != ARES_SUCCESS) {
        seterr(err, xasprintf("c-ares init: %s", ares_strerror(r)));
        goto fail;
    }
    d->channel_ok = true;
    if (csv.len > 0) {
        r = ares_set_servers_ports_csv(d->channel, csv.data);
        if (r != ARES_SUCCESS) {
            seterr(err, xasprintf("DNS servers \"%s\": %s", csv.data, ares_strerror(r)));
            goto fail;
        }
    }
    buf_free(&csv);
    return d;

fail:
    buf_free(&csv);
    dns_free(&d);
    return NULL;
}

void dns_free(dns_t **dp)
{
    dns_t *d = *dp;
    dns_query_t *q, *next;

    if (d == NULL)
        return;
    if (d->busy > 0 || d->starting > 0)
        log_panic("dns_free: called from inside a DNS callback");
    *dp = NULL;
    if (d->channel_ok)
        ares_destroy(d->channel);             /* EDESTRUCTION: on_answer frees */
    ares_library_cleanup();
    for (q = d->deferred; q != NULL; q = next) {
        next = q->next;
        query_free(&q);
    }
    xfree(&d->socks);
    xfree(&d);
}

dns_query_t *dns_query(dns_t *d, const char *name, dns_type type, dns_cb cb, void *arg)
{
    char rev[128];
    const char *qname = name;
    int qtype;
    dns_query_t *q;

    if (d == NULL || name == NULL || cb == NULL)
        log_panic("dns_query: no resolver, name or callback");
    switch (type) {
    case DNS_A:    qtype = ns_t_a; break;
    case DNS_AAAA: qtype = ns_t_aaaa; break;
    case DNS_MX:   qtype = ns_t_mx; break;
    case DNS_PTR:  qtype = ns_t_ptr; break;
    case DNS_TXT:  qtype = ns_t_txt; break;
    default:       log_panic("dns_query: bad type %d", (int)type);
    }
    q = xcalloc(1, sizeof(*q));
    q->d = d;
    q->type = type;
    q->cb = cb;
    q->arg = arg;
    d->pending++;

    if (type == DNS_PTR) {
        if (!reverse_name(q, name, rev, sizeof(rev))) {
            defer(q, ARES_ENOTFOUND, "not an IP address", NULL, 0);
            return q;
        }
        qname = rev;
    } else if (name[0] == 0 || strcmp(name, ".") == 0) {
        defer(q, ARES_EBADNAME, "empty domain name", NULL, 0);
        return q;
    }
    if (d->cache != NULL) {
        if (dns_cache_get(d->cache, type, name, time_mono_ms(), &q->hit)) {
            defer(q, ARES_SUCCESS, NULL, NULL, 0);
            return q;
        }
        q->name = xstrdup(name);
    }
    d->starting++;
    ares_query(d->channel, qname, ns_c_in, qtype, on_answer, q);
    d->starting--;
    return q;
}

void dns_abandon(dns_query_t **qp)
{
    dns_query_t *q = qp != NULL ? *qp : NULL;

    if (q == NULL)
        return;
    *qp = NULL;
    if (q->in_cb)           /* abandoning itself from its own callback */
        return;
    if (q->cb == NULL)
        log_panic("dns_abandon: query abandoned twice");
    q->cb = NULL;
    q->arg = NULL;
    if (q->d->pending == 0)
        log_panic("dns_abandon: no query pending");
    q->d->pending--;
    /* still c-ares's (or on the deferred list): freed when it completes */
}

void dns_set_cache(dns_t *d, dns_cache_t *cache)
{
    d->cache = cache;
}

void dns_process(dns_t *d, int fd, bool readable, bool writable)
{
    ares_socket_t rfd = fd >= 0 && readable ? fd : ARES_SOCKET_BAD;
    ares_socket_t wfd = fd >= 0 && writable ? fd : ARES_SOCKET_BAD;

    d->busy++;
    ares_process_fd(d->channel, rfd, wfd);
    deliver_deferred(d);
    d->busy--;
}

int64_t dns_timeout_ms(dns_t *d)
{
    struct timeval tv, *tvp;

    if (d->deferred != NULL)
        return 0;
    tvp = ares_timeout(d->channel, NULL, &tv);
    if (tvp == NULL)
        return -1;
    return (int64_t)tvp->tv_sec * 1000 + (tvp->tv_usec + 999) / 1000;
}

size_t dns_pending(const dns_t *d)
{
    return d->pending;
}

void dns_wait(dns_t *d)
{
    struct pollfd *pfd = NULL;
    size_t cap = 0;

    d->busy++;
    while (d->pending > 0) {
        int64_t t = dns_timeout_ms(d);
        size_t n = d->nsocks;
        int r;

        if (n == 0 && t < 0)
            log_panic("dns_wait: %zu queries pending, nothing to wait for", d->pending);
        if (n > cap) {
            cap = n;
            pfd = xrealloc(pfd, cap * sizeof(*pfd));
        }
        for (size_t i = 0; i < n; i++) {
            pfd[i].fd = d->socks[i].fd;
            pfd[i].events = (short)((d->socks[i].want_read ? POLLIN : 0) |
                                    (d->socks[i].want_write ? POLLOUT : 0));
            pfd[i].revents = 0;
        }
        r = poll(pfd, (nfds_t)n, t < 0 ? -1 : t > INT_MAX ? INT_MAX : (int)t);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            log_fatal("dns_wait: poll: %m");
        }
        if (r == 0) {
            dns_process(d, -1, false, false);
            continue;
        }
        /* pfd is a copy: a socket closed meanwhile is unknown to c-ares */
        for (size_t i = 0; i < n; i++)
            if (pfd[i].revents != 0)
                dns_process(d, pfd[i].fd, (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) != 0,
                            (pfd[i].revents & POLLOUT) != 0);
    }
    d->busy--;
    xfree(&pfd);
}
