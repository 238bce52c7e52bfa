/* routing.c - per-recipient routing: transport_maps, local Maildir or
 * LMTP, backup MX, relayhost or the domain's MX (see routing.h).  The one
 * thing this file must never do is build a mailbox path from outside text
 * that could leave mail_root. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include "address.h"
#include "buf.h"
#include "log.h"
#include "map.h"
#include "relayhost.h"
#include "routing.h"
#include "transport.h"
#include "users.h"
#include "xalloc.h"

struct routing {
    map_t  **maps;          /* transport_maps, in order */
    size_t   n_maps;
    users_t *users;         /* users_file: local accounts of backup domains */
};

/* routing_lower - lower-cased copy of n bytes. */
static char *routing_lower(const char *s, size_t n)
{
    char *out = xmemdup(s, n);
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)out[i]);
    return out;
}

/* routing_unquote - the local part as a string of octets: a quoted local
 * part ("john doe") loses its quotes and backslash escapes.  NULL when a
 * quoted string is malformed. */
static char *routing_unquote(const char *local, size_t n)
{
    if (n == 0 || local[0] != '"')
        return routing_lower(local, n);
    if (n < 2 || local[n - 1] != '"')
        return NULL;
    buf_t b = BUF_INIT;
    for (size_t i = 1; i < n - 1; i++) {
        char ch = local[i];
        if (ch == '\\') {
            if (++i >= n - 1) {
                buf_free(&b);
                return NULL;
            }
            ch = local[i];
        }
        buf_append_char(&b, (char)tolower((unsigned char)ch));
    }
    char *out = buf_steal(&b, NULL);
    return out ? out : xstrdup("");     /* "" stays empty: unsafe below */
}

bool routing_mailbox_safe(const char *local)
{
    /* RFC 5322 atext without '/', plus inner dots: each byte is a plain
     * file name character, and "." / ".." / ".hidden" are ruled out. */
    static const char specials[] = "!#$%&'*+-=?^_`{|}~.";
    size_t n = strlen(local);
    if (n == 0 || n > ADDR_LOCAL_MAX || local[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)local[i];
        if (!(isascii(ch) && isalnum(ch)) && !strchr(specials, ch))
            return false;
    }
    return true;
}

/* routing_domain_safe - a lower-cased domain usable as a directory name:
 * letters, digits, '-', '.', no empty label. */
static bool routing_domain_safe(const char *domain)
{
    size_t n = strlen(domain);
    if (n == 0 || n > ADDR_DOMAIN_MAX || domain[0] == '.' || domain[0] == '-'
        || strstr(domain, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)domain[i];
        if (!(isascii(ch) && isalnum(ch)) && ch != '-' && ch != '.')
            return false;
    }
    return true;
}


routing_t *routing_open(const config_t *cfg, char **err)
{
    routing_t *r = xcalloc(1, sizeof *r);
    const char *const *specs = config_list(cfg, "transport_maps");

    *err = NULL;
    for (size_t i = 0; specs && specs[i]; i++) {
        char *why = NULL;
        map_t *m = map_open(specs[i], config_dir(cfg), &why);
        if (!m) {
            *err = xasprintf("transport_maps: %s", why ? why : specs[i]);
            xfree(&why);
            routing_close(&r);
            return NULL;
        }
        r->maps = xrealloc(r->maps, (r->n_maps + 1) * sizeof *r->maps);
        r->maps[r->n_maps++] = m;
    }
    char *users_path = config_path(cfg, "users_file");
    r->users = users_open(users_path);
    xfree(&users_path);
    return r;
}

void routing_close(routing_t **rp)
{
    routing_t *r = *rp;
    if (!r)
        return;
    for (size_t i = 0; i < r->n_maps; i++)
        map_close(&r->maps[i]);
    xfree(&r->maps);
    users_close(&r->users);
    xfree(rp);
}

void routing_decision_free(routing_decision *d)
{
    xfree(&d->nexthop);
    xfree(&d->mailbox);
    xfree(&d->status_text);
    xfree(&d->folder);
}

/* One recipient on its way through the rules. */
typedef struct routing_rcpt {
    const char *address;    /* as given */
    char       *key;        /* lower-cased local@domain, for lookups */
    char       *domain;     /* lower-cased */
    char       *local;      /* lower-cased, unquoted; NULL when malformed */
    bool        spam;
    const config_t *cfg;
} routing_rcpt;

static void routing_set(routing_decision *out, Correio__RouteKind route, const char *nexthop,
                        const char *mailbox, const char *text)
{
    out->route = route;
    out->nexthop = xstrdup(nexthop);
    out->mailbox = xstrdup(mailbox);
    out->status_text = xstrdup(text);
    out->folder = xstrdup("");
}

/* routing_local_safe - can rc's domain and local part both safely be
 * directory names? */
static bool routing_local_safe(const routing_rcpt *rc)
{
    return rc->local && routing_mailbox_safe(rc->local) && routing_domain_safe(rc->domain);
}

/* routing_mailbox - "domain/local" when routing_local_safe, else NULL. */
static char *routing_mailbox(const routing_rcpt *rc)
{
    return routing_local_safe(rc) ? xasprintf("%s/%s", rc->domain, rc->local) : NULL;
}

/* routing_apply - the route a transport says for rc. */
static void routing_apply(const transport_t *t, const routing_rcpt *rc, routing_decision *out)
{
    char *mailbox = NULL;

    switch (t->kind) {
    case TRANSPORT_MAILDIR:
        if ((mailbox = routing_mailbox(rc)) == NULL) {
            routing_set(out, CORREIO__ROUTE_KIND__ROUTE_ERROR, rc->address, "",
                        ROUTING_UNSAFE_TEXT);
            break;
        }
        routing_set(out, CORREIO__ROUTE_KIND__ROUTE_MAILDIR, rc->address, mailbox, "");
        if (rc->spam) {
            xfree(&out->folder);
            out->folder = xstrdup(config_str(rc->cfg, "spam_folder"));
        }
        break;
    case TRANSPORT_LMTP:
        mailbox = routing_mailbox(rc);
        routing_set(out, CORREIO__ROUTE_KIND__ROUTE_LMTP, t->nexthop, mailbox ? mailbox : "", "");
        break;
    case TRANSPORT_SMTP:
        routing_set(out, CORREIO__ROUTE_KIND__ROUTE_RELAY,
                    t->nexthop[0] ? t->nexthop : rc->domain, "", "");
        break;
    case TRANSPORT_ERROR:
        routing_set(out, CORREIO__ROUTE_KIND__ROUTE_ERROR, rc->address, "", t->text);
        break;
    case TRANSPORT_DISCARD:
        routing_set(out, CORREIO__ROUTE_KIND__ROUTE_DISCARD, rc->address, "", t->text);
        break;
    }
    xfree(&mailbox);
}

/* routing_lookup_key - ask every table for key; 1 found (*t set), 0 not
 * found, -1 a table cannot answer or its value does not parse. */
static int routing_lookup_key(routing_t *r, const char *key, transport_t *t)
{
    for (size_t i = 0; i < r->n_maps; i++) {
        char *value = NULL, why[256];
        switch (map_lookup(r->maps[i], key, &value)) {
        case MAP_NOTFOUND:
            continue;
        case MAP_ERROR:
            log_warn("transport_maps: %s: lookup of %s failed; routing waits",
                     map_spec(r->maps[i]), key);
            return -1;
        case MAP_FOUND:
            break;
        }
        int rc = transport_parse(value, t, why, sizeof why);
        if (rc < 0) {
            char v[200];
            log_printable(v, sizeof v, value, strlen(value));
            log_warn("transport_maps: %s: %s: bad value \"%s\": %s; routing waits",
                     map_spec(r->maps[i]), key, v, why);
        }
        xfree(&value);
        return rc < 0 ? -1 : 1;
    }
    return 0;
}

/* routing_transport_maps - transport(5)'s lookup order: the address, the
 * domain, each parent domain as ".parent", then "*". */
static int routing_transport_maps(routing_t *r, const routing_rcpt *rc, transport_t *t)
{
    int found;

    if (r->n_maps == 0)
        return 0;
    if ((found = routing_lookup_key(r, rc->key, t)) != 0)
        return found;
    if ((found = routing_lookup_key(r, rc->domain, t)) != 0)
        return found;
    for (const char *dot = strchr(rc->domain, '.'); dot; dot = strchr(dot + 1, '.'))
        if (dot[1] && (found = routing_lookup_key(r, dot, t)) != 0)
            return found;
    return routing_lookup_key(r, "*", t);
}

/* routing_domain_in - domain is an item of list or a subdomain of one
 * (".item" and "item" alike), as the ingress matches relay_domains. */
static bool routing_domain_in(const char *const *list, const char *domain)
{
    size_t dl = strlen(domain);

    for (size_t i = 0; list && list[i]; i++) {
        const char *item = list[i][0] == '.' ? list[i] + 1 : list[i];
        size_t il = strlen(item);
        if (il == 0)
            continue;
        if (dl == il && strcasecmp(domain, item) == 0)
            return true;
        if (dl > il && domain[dl - il - 1] == '.' && strcasecmp(domain + dl - il, item) == 0)
            return true;
    }
    return false;
}

/* routing_config_transport - a transport from a parameter the
 * configuration loader has validated already. */
static void routing_config_transport(const config_t *cfg, const char *name, transport_t *t)
{
    char why[256];
    if (transport_parse(config_str(cfg, name), t, why, sizeof why) < 0)
        log_panic("routing_config_transport: %s passed the config check: %s", name, why);
}

int routing_decide(routing_t *r, const config_t *cfg, const char *address, bool spam,
                   routing_decision *out)
{
    const char *const *mydest = config_list(cfg, "mydestination");
    const char *myhostname = config_str(cfg, "myhostname");
    const char *at = strrchr(address, '@');
    size_t local_len = at ? (size_t)(at - address) : strlen(address);
    const char *dom = at ? at + 1 : myhostname;
    routing_rcpt rc = {.address = address, .spam = spam, .cfg = cfg};
    transport_t t;
    int rv = 0;

    memset(out, 0, sizeof *out);
    rc.domain = routing_lower(dom, strlen(dom));
    rc.local = routing_unquote(address, local_len);
    {
        char *lk = routing_lower(address, local_len);
        rc.key = xasprintf("%s@%s", lk, rc.domain);
        xfree(&lk);
    }
    bool local_domain = domain_list_match(mydest, rc.domain);

    if (local_domain && !routing_local_safe(&rc)) {
        out->rule = ROUTING_BY_SAFETY;
        routing_set(out, CORREIO__ROUTE_KIND__ROUTE_ERROR, address, "", ROUTING_UNSAFE_TEXT);
        goto done;
    }
    switch (routing_transport_maps(r, &rc, &t)) {
    case -1:
        rv = -1;
        goto done;
    case 1:
        out->rule = ROUTING_BY_TRANSPORT_MAPS;
        routing_apply(&t, &rc, out);
        goto done;
    }
    if (local_domain) {
        out->rule = ROUTING_BY_MYDESTINATION;
        routing_config_transport(cfg, "local_transport", &t);
        routing_apply(&t, &rc, out);
        goto done;
    }
    if (routing_domain_in(config_list(cfg, "backup_domains"), rc.domain)) {
        out->rule = ROUTING_BY_BACKUP_DOMAINS;
        users_refresh(r->users);
        if (users_lookup(r->users, rc.key)) {
            routing_config_transport(cfg, "local_transport", &t);
            routing_apply(&t, &rc, out);
        } else {
            routing_set(out, CORREIO__ROUTE_KIND__ROUTE_RELAY, rc.domain, "", "");
        }
        goto done;
    }
    const char *relayhost = config_str(cfg, "relayhost");
    if (relayhost[0]) {
        relayhost_t rh;
        char why[256], hop[TRANSPORT_NEXTHOP_MAX];
        if (relayhost_parse(relayhost, true, &rh, why, sizeof why) < 0)
            log_panic("routing_decide: relayhost passed the config check: %s", why);
        memset(rh.pass, 0, sizeof rh.pass);
        relayhost_nexthop(&rh, hop, sizeof hop);
        out->rule = ROUTING_BY_RELAYHOST;
        routing_set(out, CORREIO__ROUTE_KIND__ROUTE_RELAY, hop, "", "");
        goto done;
    }
    out->rule = ROUTING_BY_DOMAIN;
    routing_set(out, CORREIO__ROUTE_KIND__ROUTE_RELAY, rc.domain, "", "");

done:
    xfree(&rc.key);
    xfree(&rc.domain);
    xfree(&rc.local);
    return rv;
}

static const char *const routing_rule_names[] = {
    [ROUTING_BY_SAFETY] = "safety",
    [ROUTING_BY_TRANSPORT_MAPS] = "transport_maps",
    [ROUTING_BY_MYDESTINATION] = "mydestination",
    [ROUTING_BY_BACKUP_DOMAINS] = "backup_domains",
    [ROUTING_BY_RELAYHOST] = "relayhost",
    [ROUTING_BY_DOMAIN] = "domain",
};

/* routing_log - "QID: to=<x>, route=maildir mailbox=example.test/demo
 * folder=Junk rule=mydestination", one line per recipient. */
static void routing_log(const char *qid, const char *address, const routing_decision *d)
{
    char to[ADDR_PATH_MAX + 8], hop[TRANSPORT_NEXTHOP_MAX + 8], text[TRANSPORT_TEXT_MAX + 8];
    const char *rule = routing_rule_names[d->rule];

    log_printable(to, sizeof to, address, strlen(address));
    log_printable(hop, sizeof hop, d->nexthop, strlen(d->nexthop));
    log_printable(text, sizeof text, d->status_text, strlen(d->status_text));
    switch (d->route) {
    case CORREIO__ROUTE_KIND__ROUTE_MAILDIR:
        log_info("%s: to=<%s>, route=maildir mailbox=%s%s%s rule=%s", qid, to, d->mailbox,
                 d->folder[0] ? " folder=" : "", d->folder, rule);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_LMTP:
        log_info("%s: to=<%s>, route=lmtp nexthop=%s rule=%s", qid, to, hop, rule);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_RELAY:
        log_info("%s: to=<%s>, route=relay nexthop=%s rule=%s", qid, to, hop, rule);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_DISCARD:
        log_info("%s: to=<%s>, route=discard text=%s rule=%s", qid, to,
                 text[0] ? text : "-", rule);
        break;
    default:
        log_info("%s: to=<%s>, route=error status=%s rule=%s", qid, to, text, rule);
        break;
    }
}

uint8_t *routing_route_envelope(routing_t *r, const Envelope *env, const config_t *cfg,
                                size_t *len)
{
    size_t n = env->n_rcpt;
    bool spam = env->verdict && env->verdict->is_spam;
    routing_decision *d = xcalloc(n, sizeof *d);
    Recipient *copies = xcalloc(n, sizeof *copies);
    Recipient **ptrs = xcalloc(n, sizeof *ptrs);
    uint8_t *out = NULL;
    size_t done;

    for (done = 0; done < n; done++) {
        if (routing_decide(r, cfg, env->rcpt[done]->address, spam, &d[done]) < 0)
            break;
        routing_log(env->queue_id, env->rcpt[done]->address, &d[done]);
        copies[done] = *env->rcpt[done];    /* shallow; env stays untouched */
        copies[done].route = d[done].route;
        copies[done].nexthop = d[done].nexthop;
        copies[done].mailbox = d[done].mailbox;
        copies[done].status_text = d[done].status_text;
        copies[done].folder = d[done].folder;
        ptrs[done] = &copies[done];
    }
    if (done == n) {
        Envelope copy = *env;
        copy.rcpt = ptrs;
        out = wire_pack_envelope(&copy, len);
    } else {
        log_warn("%s: not routed now; the ingress will send it again", env->queue_id);
    }
    for (size_t i = 0; i < n; i++)
        routing_decision_free(&d[i]);
    xfree(&d);
    xfree(&copies);
    xfree(&ptrs);
    return out;
}
