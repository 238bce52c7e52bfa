/* routing.c - per-recipient routing: transport_maps, local Maildir or
 * LMTP, backup MX, relayhost or the domain's MX (see routing.h).  The one
 * thing this file must never do is build a mailbox path from outside text
 * that could leave mail_root. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include "address.h"
#include "alias.h"
#include "buf.h"
#include "content_filter.h"
#include "log.h"
#include "metrics.h"
#include "map.h"
#include "relayhost.h"
#include "routing.h"
#include "spam_action.h"
#include "transport.h"
#include "users.h"
#include "xalloc.h"

struct routing {
    map_t  **maps;          /* transport_maps, in order */
    size_t   n_maps;
    users_t *users;         /* users_file: local accounts */
    alias_t *aliases;       /* virtual_alias_maps, alias_maps */
    content_filter_t *filters;  /* content_filters_file, or NULL */
    spam_action_t *actions;     /* spam_action_maps */
    routing_whitelist_fn whitelisted;   /* the auto-whitelist, or NULL */
    void    *whitelist_ctx;
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
    if ((r->aliases = alias_open(cfg, err)) == NULL) {
        routing_close(&r);
        return NULL;
    }
    if (config_str(cfg, "content_filters_file")[0]) {
        char *path = config_path(cfg, "content_filters_file");
        r->filters = content_filter_load(path, err);
        xfree(&path);
        if (!r->filters) {
            routing_close(&r);
            return NULL;
        }
    }
    if ((r->actions = spam_action_open(cfg, err)) == NULL) {
        routing_close(&r);
        return NULL;
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
    alias_close(&r->aliases);
    content_filter_free(&r->filters);
    spam_action_close(&r->actions);
    xfree(rp);
}

void routing_set_whitelist(routing_t *r, routing_whitelist_fn fn, void *ctx)
{
    r->whitelisted = fn;
    r->whitelist_ctx = ctx;
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
    char       *local;      /* lower-cased, unquoted; NULL when malformed;
                             * without its extension once routing_account
                             * strips it */
    char       *folder;     /* the extension as a folder name, or NULL */
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
        } else if (rc->folder) {
            xfree(&out->folder);
            out->folder = xstrdup(rc->folder);
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

/* routing_folder_safe - an extension usable as a Maildir++ folder name:
 * ASCII letters, digits, '-' and '_' only. */
static bool routing_folder_safe(const char *ext, size_t n)
{
    if (n == 0 || n > ADDR_LOCAL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)ext[i];
        if (!(isascii(ch) && isalnum(ch)) && ch != '-' && ch != '_')
            return false;
    }
    return true;
}

/* routing_account - is rc a local account in users_file?  When the exact
 * address is not one and recipient_delimiter is set, rc's local part
 * loses its extension (user+foo becomes user, whether or not user is an
 * account: mydestination does not need one) and the extension becomes
 * rc->folder when recipient_delimiter_folder asks for it and it is a safe
 * name.  The answer is then about the address without the extension. */
static bool routing_account(routing_t *r, routing_rcpt *rc)
{
    const char *delims = config_str(rc->cfg, "recipient_delimiter");
    const char *ext;
    bool found;

    users_refresh(r->users);
    if (users_lookup(r->users, rc->key))
        return true;
    if (!rc->local || rc->address[0] == '"'
        || (ext = alias_extension(rc->local, strlen(rc->local), delims)) == NULL)
        return false;
    size_t base = (size_t)(ext - rc->local);
    const char *at = strrchr(rc->address, '@');
    size_t local_len = at ? (size_t)(at - rc->address) : strlen(rc->address);
    char *key = xasprintf("%.*s@%s", (int)base, rc->local, rc->domain);

    found = users_lookup(r->users, key) != NULL;
    if (config_bool(rc->cfg, "recipient_delimiter_folder")
        && routing_folder_safe(rc->address + base + 1, local_len - base - 1))
        rc->folder = xmemdup(rc->address + base + 1, local_len - base - 1);
    rc->local[base] = '\0';
    xfree(&rc->key);
    rc->key = key;
    return found;
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
    bool virtual_domain = !domain_list_match(mydest, rc.domain)
                          && domain_list_match(config_list(cfg, "virtual_mailbox_domains"),
                                               rc.domain);
    bool local_domain = virtual_domain || domain_list_match(mydest, rc.domain);

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
    if (virtual_domain) {
        out->rule = ROUTING_BY_VIRTUAL_MAILBOX_DOMAINS;
        if (!routing_account(r, &rc)) {
            char *text = xasprintf("5.1.1 <%s>: Recipient address rejected: "
                                   "User unknown in virtual mailbox table", address);
            routing_set(out, CORREIO__ROUTE_KIND__ROUTE_ERROR, address, "", text);
            xfree(&text);
            goto done;
        }
        routing_config_transport(cfg, "local_transport", &t);
        routing_apply(&t, &rc, out);
        goto done;
    }
    if (local_domain) {
        out->rule = ROUTING_BY_MYDESTINATION;
        (void)routing_account(r, &rc);      /* strips an extension */
        routing_config_transport(cfg, "local_transport", &t);
        routing_apply(&t, &rc, out);
        goto done;
    }
    if (routing_domain_in(config_list(cfg, "backup_domains"), rc.domain)) {
        out->rule = ROUTING_BY_BACKUP_DOMAINS;
        if (routing_account(r, &rc)) {
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
    xfree(&rc.folder);
    return rv;
}

static const char *const routing_rule_names[] = {
    [ROUTING_BY_SAFETY] = "safety",
    [ROUTING_BY_TRANSPORT_MAPS] = "transport_maps",
    [ROUTING_BY_MYDESTINATION] = "mydestination",
    [ROUTING_BY_VIRTUAL_MAILBOX_DOMAINS] = "virtual_mailbox_domains",
    [ROUTING_BY_ALIAS] = "alias",
    [ROUTING_BY_BACKUP_DOMAINS] = "backup_domains",
    [ROUTING_BY_RELAYHOST] = "relayhost",
    [ROUTING_BY_DOMAIN] = "domain",
    [ROUTING_BY_CONTENT_FILTER] = "content_filter",
    [ROUTING_BY_SPAM_ACTION] = "spam_action",
};

/* routing_log - "QID: to=<x>, orig_to=<list>, route=maildir
 * mailbox=example.test/demo folder=Junk rule=mydestination", one line per
 * recipient (orig_to when an alias made it). */
static void routing_log(const char *qid, const char *address, const char *original,
                        const routing_decision *d)
{
    char to[ADDR_PATH_MAX + 8], hop[TRANSPORT_NEXTHOP_MAX + 8], text[TRANSPORT_TEXT_MAX + 8];
    char orig[ADDR_PATH_MAX + 20] = "";
    const char *rule = routing_rule_names[d->rule];

    log_printable(to, sizeof to, address, strlen(address));
    if (original && original[0]) {
        char o[ADDR_PATH_MAX + 8];
        log_printable(o, sizeof o, original, strlen(original));
        snprintf(orig, sizeof orig, " orig_to=<%s>,", o);
    }
    log_printable(hop, sizeof hop, d->nexthop, strlen(d->nexthop));
    log_printable(text, sizeof text, d->status_text, strlen(d->status_text));
    switch (d->route) {
    case CORREIO__ROUTE_KIND__ROUTE_MAILDIR:
        metrics_inc("correio_router_routed_total", "kind=\"maildir\"");
        log_info("%s: to=<%s>,%s route=maildir mailbox=%s%s%s rule=%s", qid, to, orig,
                 d->mailbox, d->folder[0] ? " folder=" : "", d->folder, rule);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_LMTP:
        metrics_inc("correio_router_routed_total", "kind=\"lmtp\"");
        log_info("%s: to=<%s>,%s route=lmtp nexthop=%s rule=%s", qid, to, orig, hop, rule);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_RELAY:
        metrics_inc("correio_router_routed_total", "kind=\"relay\"");
        log_info("%s: to=<%s>,%s route=relay nexthop=%s rule=%s", qid, to, orig, hop, rule);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_DISCARD:
        metrics_inc("correio_router_routed_total", "kind=\"discard\"");
        log_info("%s: to=<%s>,%s route=discard text=%s rule=%s", qid, to, orig,
                 text[0] ? text : "-", rule);
        break;
    default:
        metrics_inc("correio_router_routed_total", "kind=\"error\"");
        log_info("%s: to=<%s>,%s route=error status=%s rule=%s", qid, to, orig, text, rule);
        break;
    }
}

/* The recipients of the outgoing envelope, growing as aliases expand. */
typedef struct routing_out {
    routing_decision *d;
    Recipient        *copies;   /* shallow copies of the incoming ones */
    char            **strings;  /* addresses and originals owned here */
    bool             *gone;     /* replaced by a content filter's redirect */
    size_t            n, n_strings;
    bool              spam_folder;  /* a content filter marked the message spam:
                                     * local Maildir routes get spam_folder */
} routing_out;

/* routing_out_has - is address (any case) already one of out's? */
static bool routing_out_has(const routing_out *o, const char *address)
{
    for (size_t i = 0; i < o->n; i++)
        if (strcasecmp(o->copies[i].address, address) == 0)
            return true;
    return false;
}

/* routing_out_keep - a string that lives as long as out. */
static char *routing_out_keep(routing_out *o, const char *s)
{
    o->strings = xrealloc(o->strings, (o->n_strings + 1) * sizeof *o->strings);
    return o->strings[o->n_strings++] = xstrdup(s);
}

/* routing_out_add - one more recipient: a copy of rcpt at address with
 * the route d (taken over). */
static void routing_out_add(routing_out *o, const Recipient *rcpt, const char *address,
                            const char *original, routing_decision *d)
{
    o->d = xrealloc(o->d, (o->n + 1) * sizeof *o->d);
    o->copies = xrealloc(o->copies, (o->n + 1) * sizeof *o->copies);
    o->gone = xrealloc(o->gone, (o->n + 1) * sizeof *o->gone);
    o->gone[o->n] = false;
    o->d[o->n] = *d;
    memset(d, 0, sizeof *d);
    d = &o->d[o->n];
    Recipient *c = &o->copies[o->n];
    *c = *rcpt;                 /* shallow: notify, orcpt; the input stays untouched */
    c->address = (char *)(address == rcpt->address ? rcpt->address
                                                   : routing_out_keep(o, address));
    if (original)
        c->original = routing_out_keep(o, original);
    c->route = d->route;
    c->nexthop = d->nexthop;
    c->mailbox = d->mailbox;
    c->status_text = d->status_text;
    c->folder = d->folder;
    o->n++;
}

static void routing_out_free(routing_out *o)
{
    for (size_t i = 0; i < o->n; i++)
        routing_decision_free(&o->d[i]);
    for (size_t i = 0; i < o->n_strings; i++)
        xfree(&o->strings[i]);
    xfree(&o->d);
    xfree(&o->copies);
    xfree(&o->strings);
    xfree(&o->gone);
}

/* routing_route_rcpt - expand one recipient and route what it became
 * into out; -1 when a table cannot tell now. */
static int routing_route_rcpt(routing_t *r, const Envelope *env, const Recipient *rcpt,
                              const config_t *cfg, routing_out *out)
{
    alias_expansion x;

    if (alias_expand(r->aliases, cfg, rcpt->address, &x) < 0)
        return -1;
    /* the address before the first expansion, for ORCPT and DSNs */
    const char *original = !x.expanded ? NULL
                           : rcpt->original && rcpt->original[0] ? rcpt->original
                           : rcpt->address;
    if (x.error) {
        routing_decision d = {.rule = ROUTING_BY_ALIAS};
        routing_set(&d, CORREIO__ROUTE_KIND__ROUTE_ERROR, rcpt->address, "", x.error);
        log_warn("%s: to=<%s>: %s: %s", env->queue_id, rcpt->address, x.table, x.error);
        routing_log(env->queue_id, rcpt->address, NULL, &d);
        routing_out_add(out, rcpt, rcpt->address, NULL, &d);
        alias_expansion_free(&x);
        return 0;
    }
    for (size_t i = 0; i < x.n; i++) {
        routing_decision d;
        if (routing_out_has(out, x.addr[i])) {
            log_info("%s: to=<%s>, orig_to=<%s>: duplicate dropped", env->queue_id, x.addr[i],
                     rcpt->address);
            continue;
        }
        /* the classifier's spam goes to spam_folder by the spam actions
         * (routing_spam); a content filter's "set spam" by this flag */
        if (routing_decide(r, cfg, x.addr[i], out->spam_folder, &d) < 0) {
            alias_expansion_free(&x);
            return -1;
        }
        routing_log(env->queue_id, x.addr[i], original, &d);
        routing_out_add(out, rcpt, x.expanded ? x.addr[i] : rcpt->address, original, &d);
    }
    alias_expansion_free(&x);
    return 0;
}

/* routing_route_extra - route address, which a content filter added,
 * as one more recipient based on like (notify, orcpt), recording
 * original; -1 when a table cannot tell now. */
static int routing_route_extra(routing_t *r, const Envelope *env, const Recipient *like,
                               const char *address, const char *original,
                               const config_t *cfg, routing_out *o)
{
    Recipient extra = *like;
    size_t before = o->n;

    extra.address = (char *)address;
    extra.original = (char *)(original ? original : "");
    if (routing_route_rcpt(r, env, &extra, cfg, o) < 0)
        return -1;
    for (size_t k = before; k < o->n; k++)
        if (original && !(o->copies[k].original && o->copies[k].original[0]))
            o->copies[k].original = routing_out_keep(o, original);
    return 0;
}

/* routing_filter - run content_filters_file over the routed recipients
 * of o: discard and redirect them, add copies, mark the message spam
 * (*verdict, which env->verdict points to afterwards when set) and
 * collect the header fields to add into *headers.  -1 when a table
 * cannot route a new address now. */
static int routing_filter(routing_t *r, Envelope *env, const config_t *cfg, routing_out *o,
                          Verdict *verdict, content_filter_result *res)
{
    content_filter_rcpt *fr = xcalloc(o->n ? o->n : 1, sizeof *fr);
    size_t *index = xcalloc(o->n ? o->n : 1, sizeof *index);
    size_t n = 0, n_before = o->n;
    int rv = 0;

    /* only recipients that go somewhere: an error or a discard stays so */
    for (size_t k = 0; k < o->n; k++) {
        Correio__RouteKind route = o->d[k].route;
        if (route != CORREIO__ROUTE_KIND__ROUTE_MAILDIR && route != CORREIO__ROUTE_KIND__ROUTE_LMTP
            && route != CORREIO__ROUTE_KIND__ROUTE_RELAY)
            continue;
        fr[n].address = o->copies[k].address;
        fr[n].local = route != CORREIO__ROUTE_KIND__ROUTE_RELAY;
        index[n++] = k;
    }
    content_filter_apply(r->filters, env, fr, n, res);
    if (res->spam && !(env->verdict && env->verdict->is_spam)) {
        if (env->verdict)
            *verdict = *env->verdict;
        verdict->is_spam = true;
        env->verdict = verdict;
        o->spam_folder = true;      /* for the copies and redirects below */
        for (size_t k = 0; k < n_before; k++)
            if (o->d[k].route == CORREIO__ROUTE_KIND__ROUTE_MAILDIR) {
                xfree(&o->d[k].folder);
                o->d[k].folder = xstrdup(config_str(cfg, "spam_folder"));
                o->copies[k].folder = o->d[k].folder;
            }
    }
    for (size_t j = 0; j < n && rv == 0; j++) {
        size_t k = index[j];
        routing_decision *d = &o->d[k];
        if (res->fate[j] == CONTENT_FILTER_DISCARD) {
            const char *address = o->copies[k].address;
            routing_decision_free(d);
            d->rule = ROUTING_BY_CONTENT_FILTER;
            routing_set(d, CORREIO__ROUTE_KIND__ROUTE_DISCARD, address, "", "content filter");
            o->copies[k].route = d->route;
            o->copies[k].nexthop = d->nexthop;
            o->copies[k].mailbox = d->mailbox;
            o->copies[k].status_text = d->status_text;
            o->copies[k].folder = d->folder;
            routing_log(env->queue_id, address, NULL, d);
        } else if (res->fate[j] == CONTENT_FILTER_REDIRECT) {
            o->gone[k] = true;
            /* routing_route_rcpt drops an address already in o */
            Recipient like = o->copies[k];
            char *original = routing_out_keep(o, like.address);
            rv = routing_route_extra(r, env, &like, res->redirect[j], original, cfg, o);
        }
    }
    for (size_t j = 0; j < res->n_copies && rv == 0; j++) {
        Recipient like = CORREIO__RECIPIENT__INIT;
        like.notify = CORREIO__NOTIFY__NOTIFY_NEVER;    /* no DSN about an audit copy */
        rv = routing_route_extra(r, env, &like, res->copies[j], NULL, cfg, o);
    }
    xfree(&fr);
    xfree(&index);
    return rv;
}

/* routing_spam_routed - does o's recipient k go somewhere (a spam action
 * can apply to it)? */
static bool routing_spam_routed(const routing_out *o, size_t k)
{
    Correio__RouteKind route = o->d[k].route;
    return !o->gone[k] && (route == CORREIO__ROUTE_KIND__ROUTE_MAILDIR
                           || route == CORREIO__ROUTE_KIND__ROUTE_LMTP
                           || route == CORREIO__ROUTE_KIND__ROUTE_RELAY);
}

/* How the anti-spam log line shows one recipient. */
typedef enum { SPAM_SHOW_SKIP, SPAM_SHOW_ACTION, SPAM_SHOW_AWL, SPAM_SHOW_ARCHIVE } spam_show;

#define ROUTING_SPAM_LOG_RCPTS 32   /* recipients named on the anti-spam line */

/* routing_spam_log - the anti-spam line, one per message: "QID: spam:
 * client=IP from=<header From> sender=<envelope sender> to=<a@x>:folder,
 * <b@y>:none score=7.20/5.00 reasons=[...] action=folder" (the strongest
 * action of any recipient), then bypass=WHY when not scanned and
 * outbound=yes for our own users' mail. */
static void routing_spam_log(const Envelope *env, const routing_out *o, const spam_show *show,
                             Correio__SpamAction strongest)
{
    const Verdict *v = env->verdict;
    const char *ip = env->client && env->client->ip && env->client->ip[0] ? env->client->ip
                                                                         : "unknown";
    const char *hfrom = v->header_from ? v->header_from : "";
    const char *sender = env->reverse_path ? env->reverse_path : "";
    const char *reasons = v->reasons && v->reasons[0] ? v->reasons : "[]";
    char cip[64], from[ADDR_PATH_MAX + 8], snd[ADDR_PATH_MAX + 8], why[32], rsn[1024];
    buf_t to = BUF_INIT;
    size_t named = 0, more = 0;

    log_printable(cip, sizeof cip, ip, strlen(ip));
    log_printable(from, sizeof from, hfrom, strlen(hfrom));
    log_printable(snd, sizeof snd, sender, strlen(sender));
    log_printable(rsn, sizeof rsn, reasons, strlen(reasons));
    for (size_t k = 0; k < o->n; k++) {
        char a[ADDR_PATH_MAX + 8];
        const Recipient *c = &o->copies[k];

        if (show[k] == SPAM_SHOW_SKIP)
            continue;
        if (named == ROUTING_SPAM_LOG_RCPTS) {
            more++;
            continue;
        }
        log_printable(a, sizeof a, c->address, strlen(c->address));
        buf_printf(&to, "%s<%s>:%s", named ? "," : "", a,
                   show[k] == SPAM_SHOW_ARCHIVE ? "archive"
                   : show[k] == SPAM_SHOW_AWL   ? "none(AUTO_WHITELIST)"
                                                : spam_action_name(c->spam_action));
        named++;
    }
    if (more)
        buf_printf(&to, ",...(%zu more)", more);
    log_printable(why, sizeof why, v->bypass ? v->bypass : "", v->bypass ? strlen(v->bypass) : 0);
    log_info("%s: spam: client=%s from=<%s> sender=<%s> to=%s score=%.2f/%.2f reasons=%s "
             "action=%s%s%s%s", env->queue_id, cip, from, snd, to.len ? to.data : "-", v->score,
             v->required, rsn, spam_action_name(strongest), why[0] ? " bypass=" : "", why,
             v->outbound ? " outbound=yes" : "");
    buf_free(&to);
}

/* routing_spam_apply - give o's recipient k the action a. */
static void routing_spam_apply(const Envelope *env, const config_t *cfg, routing_out *o,
                               size_t k, Correio__SpamAction a, const spam_thresholds *t)
{
    const char *tag = config_str(cfg, "spam_subject_tag");
    routing_decision *d = &o->d[k];
    Recipient *c = &o->copies[k];

    c->spam_action = a;
    switch (a) {
    case CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER:
        xfree(&d->folder);
        d->folder = xstrdup(config_str(cfg, "spam_folder"));
        c->folder = d->folder;
        routing_log(env->queue_id, c->address, NULL, d);     /* the route changed */
        /* tagged too */
        /* fall through */
    case CORREIO__SPAM_ACTION__SPAM_ACTION_TAG:
    case CORREIO__SPAM_ACTION__SPAM_ACTION_QUARANTINE:
        c->subject_tag = (char *)tag;   /* cfg outlives the packing */
        break;
    case CORREIO__SPAM_ACTION__SPAM_ACTION_DELETE: {
        char *text = xasprintf("spam score %.2f >= delete score %.2f", env->verdict->score,
                               t->score[SPAM_LEVEL_DELETE]);
        const char *address = c->address;
        routing_decision_free(d);
        d->rule = ROUTING_BY_SPAM_ACTION;
        routing_set(d, CORREIO__ROUTE_KIND__ROUTE_DISCARD, address, "", text);
        xfree(&text);
        c->route = d->route;
        c->nexthop = d->nexthop;
        c->mailbox = d->mailbox;
        c->status_text = d->status_text;
        c->folder = d->folder;
        routing_log(env->queue_id, address, NULL, d);
        break;
    }
    default:
        break;
    }
}

/* routing_spam - the spam actions (spam_action.h) for every routed
 * recipient of o, when the classifier asks for them (verdict->act); one
 * copy to spam_archive_address when any was deleted; the anti-spam log
 * line for every message with a verdict.  -1 when a table cannot tell
 * now. */
static int routing_spam(routing_t *r, const Envelope *env, const config_t *cfg, routing_out *o)
{
    const Verdict *v = env->verdict;
    const char *archive = config_str(cfg, "spam_archive_address");
    const char *sender = env->reverse_path ? env->reverse_path : "";
    Correio__SpamAction strongest = CORREIO__SPAM_ACTION__SPAM_ACTION_NONE;
    size_t n_before = o->n;
    bool deleted = false;
    int rv = 0;

    if (!v)
        return 0;
    spam_show *show = xcalloc(n_before + 1, sizeof *show);
    for (size_t k = 0; k < n_before && rv == 0; k++) {
        spam_thresholds t;
        Correio__SpamAction a;
        Correio__RouteKind route = o->d[k].route;
        const char *address = o->copies[k].address;

        if (!routing_spam_routed(o, k))
            continue;
        show[k] = SPAM_SHOW_ACTION;
        o->copies[k].spam_action = CORREIO__SPAM_ACTION__SPAM_ACTION_NONE;
        o->copies[k].subject_tag = "";
        if (!v->act)
            continue;
        if (spam_action_thresholds(r->actions, cfg, address, &t) < 0) {
            rv = -1;
            break;
        }
        /* the archive keeps what the others lose */
        if (archive[0] && strcasecmp(address, archive) == 0)
            t.on[SPAM_LEVEL_DELETE] = false;
        a = spam_action_choose(&t, v->score);
        if (a == CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER
            && route != CORREIO__ROUTE_KIND__ROUTE_MAILDIR)
            a = CORREIO__SPAM_ACTION__SPAM_ACTION_TAG;     /* no folders over LMTP or SMTP */
        if (a != CORREIO__SPAM_ACTION__SPAM_ACTION_NONE && !v->outbound && r->whitelisted
            && sender[0] && route != CORREIO__ROUTE_KIND__ROUTE_RELAY
            && r->whitelisted(r->whitelist_ctx, address, sender)) {
            show[k] = SPAM_SHOW_AWL;
            a = CORREIO__SPAM_ACTION__SPAM_ACTION_NONE;
        }
        routing_spam_apply(env, cfg, o, k, a, &t);
        metrics_incf("correio_router_spam_actions_total", "action=\"%s\"", spam_action_name(a));
        if (spam_action_level(a) > spam_action_level(strongest))
            strongest = a;
        if (a == CORREIO__SPAM_ACTION__SPAM_ACTION_DELETE)
            deleted = true;
    }
    if (rv == 0 && deleted && archive[0]) {
        Recipient like = CORREIO__RECIPIENT__INIT;
        like.notify = CORREIO__NOTIFY__NOTIFY_NEVER;    /* no DSN about an archive copy */
        rv = routing_route_extra(r, env, &like, archive, NULL, cfg, o);
        show = xrealloc(show, (o->n + 1) * sizeof *show);
        for (size_t k = n_before; k < o->n; k++)
            show[k] = SPAM_SHOW_ARCHIVE;
    }
    if (rv == 0)
        routing_spam_log(env, o, show, strongest);
    xfree(&show);
    return rv;
}

uint8_t *routing_route_envelope(routing_t *r, const Envelope *env, const config_t *cfg,
                                size_t *len)
{
    routing_out o = {0};
    uint8_t *out = NULL;
    Envelope work = *env;       /* what the filters change: verdict, headers */
    Verdict verdict = CORREIO__VERDICT__INIT;
    content_filter_result res = {0};
    bool routed = true;
    size_t i;

    for (i = 0; i < env->n_rcpt; i++)
        if (routing_route_rcpt(r, env, env->rcpt[i], cfg, &o) < 0)
            break;
    routed = i == env->n_rcpt;
    if (routed && r->filters && routing_filter(r, &work, cfg, &o, &verdict, &res) < 0)
        routed = false;
    if (routed && routing_spam(r, &work, cfg, &o) < 0)
        routed = false;
    if (routed) {
        Envelope copy = work;
        Recipient **ptrs = xcalloc(o.n ? o.n : 1, sizeof *ptrs);
        ProtobufCBinaryData *headers = NULL;
        char **drop = NULL;
        size_t n = 0;
        for (size_t k = 0; k < o.n; k++)
            if (!o.gone[k])
                ptrs[n++] = &o.copies[k];
        copy.rcpt = ptrs;
        copy.n_rcpt = n;
        if (res.n_headers) {
            size_t nh = env->n_prepend_headers + res.n_headers;
            headers = xcalloc(nh, sizeof *headers);
            for (size_t k = 0; k < env->n_prepend_headers; k++)
                headers[k] = env->prepend_headers[k];
            for (size_t k = 0; k < res.n_headers; k++) {
                headers[env->n_prepend_headers + k].data = (uint8_t *)res.headers[k];
                headers[env->n_prepend_headers + k].len = strlen(res.headers[k]);
            }
            copy.prepend_headers = headers;
            copy.n_prepend_headers = nh;
        }
        if (res.n_drop) {       /* "edit header": the names delivery leaves out */
            size_t nd = env->n_drop_headers;
            drop = xcalloc(nd + res.n_drop, sizeof *drop);
            for (size_t k = 0; k < env->n_drop_headers; k++)
                drop[k] = env->drop_headers[k];
            for (size_t k = 0; k < res.n_drop; k++) {
                size_t m = 0;
                while (m < nd && strcasecmp(drop[m], res.drop[k]) != 0)
                    m++;
                if (m == nd)
                    drop[nd++] = res.drop[k];
            }
            copy.drop_headers = drop;
            copy.n_drop_headers = nd;
        }
        out = wire_pack_envelope(&copy, len);
        xfree(&ptrs);
        xfree(&headers);
        xfree(&drop);
    } else {
        log_warn("%s: not routed now; the ingress will send it again", env->queue_id);
    }
    routing_out_free(&o);
    content_filter_result_free(&res);
    return out;
}
