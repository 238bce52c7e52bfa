/* smtpd_rbl.c - a session's DNS list lookups (see smtpd_rbl.h).  A
 * session asks few lists about few names, so the answers sit in a small
 * array; when it is full the oldest finished entry makes room.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtpd_rbl.h"
#include "xalloc.h"

#define RBL_ENTRIES 16

typedef struct rbl_entry {
    struct smtpd_rbl *owner;
    char        *name;              /* NULL: free slot */
    rbl_status   status;
    dns_query_t *a_q, *txt_q;
    bool         a_done, txt_done;
    rbl_answer   ans;
    char         text[RBL_TEXT_MAX + 1];
} rbl_entry;

struct smtpd_rbl {
    dns_t     *dns;
    void     (*done)(void *);
    void      *arg;
    rbl_entry  e[RBL_ENTRIES];
    unsigned   next_slot;
};

smtpd_rbl_t *smtpd_rbl_new(dns_t *dns, void (*done)(void *), void *arg)
{
    smtpd_rbl_t *r = xcalloc(1, sizeof(*r));

    r->dns = dns;
    r->done = done;
    r->arg = arg;
    return r;
}

static void entry_clear(rbl_entry *e)
{
    dns_abandon(&e->a_q);
    dns_abandon(&e->txt_q);
    for (size_t i = 0; i < e->ans.n; i++)
        xfree(&e->ans.addrs[i]);
    xfree(&e->ans.addrs);
    e->ans.n = 0;
    xfree(&e->name);
    e->a_done = e->txt_done = false;
    e->text[0] = '\0';
}

void smtpd_rbl_free(smtpd_rbl_t **rp)
{
    smtpd_rbl_t *r = *rp;

    if (r == NULL)
        return;
    for (int i = 0; i < RBL_ENTRIES; i++)
        entry_clear(&r->e[i]);
    xfree(rp);
}

/* finish - the answer is known: tell the session (last: it may ask again). */
static void finish(rbl_entry *e, rbl_status st)
{
    dns_abandon(&e->txt_q);
    e->status = st;
    e->ans.text = e->text;
    e->owner->done(e->owner->arg);
}

static void on_a(void *arg, const dns_reply *reply)
{
    rbl_entry *e = arg;

    e->a_q = NULL;
    e->a_done = true;
    switch (reply->status) {
    case DNS_OK:
        e->ans.addrs = xcalloc(reply->n, sizeof(*e->ans.addrs));
        for (size_t i = 0; i < reply->n; i++)
            e->ans.addrs[e->ans.n++] = xstrdup(reply->rr[i].text);
        if (e->txt_done)
            finish(e, RBL_LISTED);
        return;
    case DNS_NOTFOUND:
        finish(e, RBL_NOT_LISTED);
        return;
    case DNS_TEMPFAIL:
        log_warn("dnsbl lookup of %s: %s; counted as not listed", e->name,
                 reply->error ? reply->error : "temporary failure");
        finish(e, RBL_NOT_LISTED);
        return;
    }
}

static void on_txt(void *arg, const dns_reply *reply)
{
    rbl_entry *e = arg;

    e->txt_q = NULL;
    e->txt_done = true;
    if (reply->status == DNS_OK && reply->n > 0)
        log_printable(e->text, sizeof(e->text), reply->rr[0].text, strlen(reply->rr[0].text));
    if (e->a_done && e->ans.n > 0)
        finish(e, RBL_LISTED);
}

rbl_status smtpd_rbl_lookup(smtpd_rbl_t *r, const char *name, const rbl_answer **ans)
{
    rbl_entry *e = NULL;

    for (int i = 0; i < RBL_ENTRIES; i++) {
        if (r->e[i].name != NULL && strcasecmp(r->e[i].name, name) == 0) {
            *ans = &r->e[i].ans;
            return r->e[i].status;
        }
    }
    if (r->dns == NULL)
        return RBL_NOT_LISTED;
    for (int i = 0; i < RBL_ENTRIES && e == NULL; i++) {
        rbl_entry *c = &r->e[(r->next_slot + (unsigned)i) % RBL_ENTRIES];
        if (c->name == NULL || c->status != RBL_PENDING)
            e = c;
    }
    if (e == NULL) {
        log_warn("dnsbl lookup of %s: %d lookups under way already; counted as not listed",
                 name, RBL_ENTRIES);
        return RBL_NOT_LISTED;
    }
    r->next_slot = (unsigned)(e - r->e + 1) % RBL_ENTRIES;
    entry_clear(e);
    e->owner = r;
    e->name = xstrdup(name);
    e->status = RBL_PENDING;
    e->a_q = dns_query(r->dns, name, DNS_A, on_a, e);
    e->txt_q = dns_query(r->dns, name, DNS_TXT, on_txt, e);
    *ans = &e->ans;
    return RBL_PENDING;
}

bool smtpd_rbl_client_name(const char *ip, const char *zone, char *out)
{
    static const char hex[] = "0123456789abcdef";
    static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    unsigned char a[16];
    size_t o = 0;
    int n;

    if (inet_pton(AF_INET, ip, a) == 1
        || (inet_pton(AF_INET6, ip, a) == 1 && memcmp(a, mapped, 12) == 0
            && (memmove(a, a + 12, 4), true))) {
        n = snprintf(out, RBL_NAME_MAX + 1, "%u.%u.%u.%u.%s", a[3], a[2], a[1], a[0], zone);
        return n > 0 && n <= RBL_NAME_MAX;
    }
    if (inet_pton(AF_INET6, ip, a) != 1 || strlen(zone) + 64 > RBL_NAME_MAX)
        return false;
    for (int i = 15; i >= 0; i--) {
        out[o++] = hex[a[i] & 0xf];
        out[o++] = '.';
        out[o++] = hex[a[i] >> 4];
        out[o++] = '.';
    }
    memcpy(out + o, zone, strlen(zone) + 1);
    return true;
}

bool smtpd_rbl_domain_name(const char *domain, const char *zone, char *out)
{
    int n;

    if (domain[0] == '\0' || domain[0] == '[')
        return false;
    n = snprintf(out, RBL_NAME_MAX + 1, "%s.%s", domain, zone);
    return n > 0 && n <= RBL_NAME_MAX;
}
