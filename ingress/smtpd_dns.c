/* smtpd_dns.c - a session's DNS facts (see smtpd_dns.h). */
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtpd_dns.h"
#include "xalloc.h"

#define DOMAIN_CACHE 8

/* A domain's lookup goes MX, then A, then AAAA until one answers. */
typedef struct domain_entry {
    char        *name;
    dns_fact     fact;
    int          step;              /* 0 MX, 1 A, 2 AAAA */
    dns_query_t *q;
    struct smtpd_dns *owner;
} domain_entry;

struct smtpd_dns {
    dns_t       *dns;
    void       (*done)(void *);
    void        *arg;
    /* the client */
    char        *ip;
    dns_fact     client_state;      /* PENDING until both steps are done */
    char        *reverse, *name;
    dns_fact     reverse_fact, name_fact;
    dns_query_t *client_q;
    domain_entry domains[DOMAIN_CACHE];
    unsigned     next_slot;
};

smtpd_dns_t *smtpd_dns_new(dns_t *dns, void (*done)(void *), void *arg)
{
    smtpd_dns_t *d = xcalloc(1, sizeof(*d));

    d->dns = dns;
    d->done = done;
    d->arg = arg;
    d->client_state = FACT_NONE;
    return d;
}

static void entry_clear(domain_entry *e)
{
    dns_abandon(&e->q);
    xfree(&e->name);
    e->fact = FACT_NONE;
}

void smtpd_dns_free(smtpd_dns_t **dp)
{
    smtpd_dns_t *d = *dp;

    if (!d)
        return;
    dns_abandon(&d->client_q);
    for (int i = 0; i < DOMAIN_CACHE; i++)
        entry_clear(&d->domains[i]);
    xfree(&d->ip);
    xfree(&d->reverse);
    xfree(&d->name);
    xfree(dp);
}

/* fact_of - a finished lookup's status as a fact. */
static dns_fact fact_of(const dns_reply *r)
{
    switch (r->status) {
    case DNS_OK:
        return FACT_OK;
    case DNS_NOTFOUND:
        return FACT_NOTFOUND;
    default:
        return FACT_TEMPFAIL;
    }
}

/* ---------------------------------------------------------------- client */

static void client_done(smtpd_dns_t *d)
{
    d->client_state = FACT_OK;
    if (!d->name)
        d->name = xstrdup("unknown");
    if (!d->reverse)
        d->reverse = xstrdup("unknown");
    d->done(d->arg);
}

/* on_forward - the PTR name's addresses: does one of them equal the client's? */
static void on_forward(void *arg, const dns_reply *r)
{
    smtpd_dns_t *d = arg;

    d->client_q = NULL;
    d->name_fact = fact_of(r);
    if (r->status == DNS_OK) {
        d->name_fact = FACT_NOTFOUND;
        for (size_t i = 0; i < r->n; i++) {
            if (strcasecmp(r->rr[i].text, d->ip) == 0) {
                d->name = xstrdup(d->reverse);
                d->name_fact = FACT_OK;
                break;
            }
        }
        if (d->name_fact != FACT_OK)
            log_warn("hostname %s does not resolve to address %s", d->reverse, d->ip);
    } else if (r->status == DNS_NOTFOUND) {
        log_warn("hostname %s does not resolve to address %s: %s", d->reverse, d->ip,
                 r->error ? r->error : "not found");
    }
    client_done(d);
}

static void on_ptr(void *arg, const dns_reply *r)
{
    smtpd_dns_t *d = arg;

    d->client_q = NULL;
    d->reverse_fact = fact_of(r);
    if (r->status == DNS_OK && r->n > 0 && r->rr[0].text[0]) {
        d->reverse = xstrdup(r->rr[0].text);
        d->client_q = dns_query(d->dns, d->reverse, strchr(d->ip, ':') ? DNS_AAAA : DNS_A,
                                on_forward, d);
        return;
    }
    if (r->status == DNS_OK)
        d->reverse_fact = FACT_NOTFOUND;
    d->name_fact = d->reverse_fact;
    client_done(d);
}

void smtpd_dns_client(smtpd_dns_t *d, const char *ip)
{
    xfree(&d->ip);
    d->ip = xstrdup(ip);
    if (!d->dns) {
        d->reverse_fact = d->name_fact = FACT_TEMPFAIL;
        d->client_state = FACT_OK;
        d->name = xstrdup("unknown");
        d->reverse = xstrdup("unknown");
        return;
    }
    d->client_state = FACT_PENDING;
    d->client_q = dns_query(d->dns, ip, DNS_PTR, on_ptr, d);
}

dns_fact smtpd_dns_client_fact(const smtpd_dns_t *d, const char **name, dns_fact *name_fact,
                               const char **reverse, dns_fact *reverse_fact)
{
    if (d->client_state != FACT_OK)
        return d->client_state;
    *name = d->name;
    *name_fact = d->name_fact;
    *reverse = d->reverse;
    *reverse_fact = d->reverse_fact;
    return FACT_OK;
}

/* ---------------------------------------------------------------- domains */

static const dns_type domain_steps[] = { DNS_MX, DNS_A, DNS_AAAA };

static void on_domain(void *arg, const dns_reply *r)
{
    domain_entry *e = arg;
    smtpd_dns_t *d = e->owner;

    e->q = NULL;
    if (r->status == DNS_OK) {
        /* a null MX (RFC 7505) says the domain takes no mail */
        e->fact = (e->step == 0 && r->n == 1 && r->rr[0].text[0] == '\0') ? FACT_NULLMX : FACT_OK;
    } else if (r->status == DNS_NOTFOUND && e->step + 1 < 3) {
        e->step++;
        e->q = dns_query(d->dns, e->name, domain_steps[e->step], on_domain, e);
        return;
    } else {
        e->fact = fact_of(r);
    }
    d->done(d->arg);
}

dns_fact smtpd_dns_domain(smtpd_dns_t *d, const char *domain)
{
    domain_entry *e = NULL;

    for (int i = 0; i < DOMAIN_CACHE; i++)
        if (d->domains[i].name && strcasecmp(d->domains[i].name, domain) == 0)
            return d->domains[i].fact;
    if (!d->dns)
        return FACT_TEMPFAIL;
    /* a free slot, else the oldest that is not running */
    for (int i = 0; i < DOMAIN_CACHE && !e; i++) {
        domain_entry *c = &d->domains[(d->next_slot + (unsigned)i) % DOMAIN_CACHE];
        if (c->fact != FACT_PENDING)
            e = c;
    }
    if (!e)
        return FACT_TEMPFAIL;       /* eight lookups at once: the client is odd */
    d->next_slot = (unsigned)(e - d->domains + 1) % DOMAIN_CACHE;
    entry_clear(e);
    e->name = xstrdup(domain);
    e->owner = d;
    e->step = 0;
    e->fact = FACT_PENDING;
    e->q = dns_query(d->dns, domain, DNS_MX, on_domain, e);
    return FACT_PENDING;
}
