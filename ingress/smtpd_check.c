/* smtpd_check.c - the restriction lists (see smtpd_check.h).  Reply codes
 * and texts are Postfix's, so that operators and their log parsers
 * recognise them.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "alias.h"
#include "log.h"
#include "map.h"
#include "policy_bypass.h"
#include "restriction.h"
#include "smtpd_action.h"
#include "smtpd_check.h"
#include "smtpd_rbl.h"
#include "xalloc.h"

enum { L_CLIENT, L_HELO, L_SENDER, L_RELAY, L_RECIPIENT, L_DATA, L_COUNT };

static const char *const list_params[L_COUNT] = {
    "smtpd_client_restrictions", "smtpd_helo_restrictions",
    "smtpd_sender_restrictions", "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions", "smtpd_data_restrictions",
};

struct smtpd_checks {
    restriction *list[L_COUNT];
    size_t       len[L_COUNT];
    char       **items[L_COUNT];    /* the list items the restrictions point into */
    map_t      **maps;              /* every table, once; parallel to map_specs */
    size_t       n_maps;
    map_t      **login_maps, **size_maps;
    size_t       n_login_maps, n_size_maps;
    alias_t     *aliases;           /* virtual_alias_maps, alias_maps */
    bool         delay_reject, helo_required, unlisted_recipient, unlisted_sender;
    bool         untrusted_routing;
    int          unknown_address_code, unknown_hostname_code, unknown_client_code;
    policy_bypass_t *rbl_bypass;
    int          rbl_code;          /* rbl_reject_code */
    bool         rbl_close;
};

/* The subject of a list, for "<x>: ... rejected:" */
static const char *const reject_what[L_COUNT] = {
    "Client host rejected", "Helo command rejected", "Sender address rejected",
    "Recipient address rejected", "Recipient address rejected", "Data command rejected",
};

/* ---------------------------------------------------------------- setup */

/* open_map - the table named spec, opened once however often it is named. */
static map_t *open_map(smtpd_checks_t *c, const config_t *cfg, const char *spec, char **err)
{
    map_t *m;

    for (size_t i = 0; i < c->n_maps; i++)
        if (strcmp(map_spec(c->maps[i]), spec) == 0)
            return c->maps[i];
    if ((m = map_open(spec, config_dir(cfg), err)) == NULL)
        return NULL;
    c->maps = xrealloc(c->maps, (c->n_maps + 1) * sizeof(*c->maps));
    c->maps[c->n_maps++] = m;
    return m;
}

static bool open_map_list(smtpd_checks_t *c, const config_t *cfg, const char *param,
                          map_t ***out, size_t *n, char **err)
{
    const char *const *specs = config_list(cfg, param);

    for (size_t i = 0; specs[i]; i++) {
        map_t *m = open_map(c, cfg, specs[i], err);
        if (!m)
            return false;
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = m;
    }
    return true;
}

smtpd_checks_t *smtpd_checks_open(const config_t *cfg, char **err)
{
    smtpd_checks_t *c = xcalloc(1, sizeof(*c));

    for (int l = 0; l < L_COUNT; l++) {
        const char *const *items = config_list(cfg, list_params[l]);
        size_t n = 0;
        long len;

        while (items[n])
            n++;
        c->items[l] = xcalloc(n + 1, sizeof(char *));
        for (size_t i = 0; i < n; i++)
            c->items[l][i] = xstrdup(items[i]);
        len = restriction_parse((const char *const *)c->items[l], &c->list[l], err);
        if (len < 0)        /* the configuration checked it; but be sure */
            goto fail;
        c->len[l] = (size_t)len;
        for (size_t i = 0; i < c->len[l]; i++) {
            if (c->list[l][i].table && !open_map(c, cfg, c->list[l][i].table, err))
                goto fail;
        }
    }
    if (!open_map_list(c, cfg, "smtpd_sender_login_maps", &c->login_maps, &c->n_login_maps, err)
        || !open_map_list(c, cfg, "smtpd_sender_size_limit_maps", &c->size_maps,
                          &c->n_size_maps, err)
        || (c->aliases = alias_open(cfg, err)) == NULL
        || (c->rbl_bypass = policy_bypass_open("rbl_bypass", config_list(cfg, "rbl_bypass"),
                                               err)) == NULL)
        goto fail;
    c->delay_reject = config_bool(cfg, "smtpd_delay_reject");
    c->helo_required = config_bool(cfg, "smtpd_helo_required");
    c->unlisted_recipient = config_bool(cfg, "smtpd_reject_unlisted_recipient");
    c->unlisted_sender = config_bool(cfg, "smtpd_reject_unlisted_sender");
    c->untrusted_routing = config_bool(cfg, "allow_untrusted_routing");
    c->unknown_address_code = (int)config_int(cfg, "unknown_address_reject_code");
    c->unknown_hostname_code = (int)config_int(cfg, "unknown_hostname_reject_code");
    c->unknown_client_code = (int)config_int(cfg, "unknown_client_reject_code");
    c->rbl_code = (int)config_int(cfg, "rbl_reject_code");
    c->rbl_close = config_bool(cfg, "rbl_close");
    return c;
fail:
    smtpd_checks_free(&c);
    return NULL;
}

void smtpd_checks_free(smtpd_checks_t **cp)
{
    smtpd_checks_t *c = *cp;

    if (!c)
        return;
    for (int l = 0; l < L_COUNT; l++) {
        xfree(&c->list[l]);
        if (c->items[l]) {
            for (char **p = c->items[l]; *p; p++)
                xfree(p);
            xfree(&c->items[l]);
        }
    }
    alias_close(&c->aliases);
    policy_bypass_free(&c->rbl_bypass);
    for (size_t i = 0; i < c->n_maps; i++)
        map_close(&c->maps[i]);
    xfree(&c->maps);
    xfree(&c->login_maps);
    xfree(&c->size_maps);
    xfree(cp);
}

/* ---------------------------------------------------------------- helpers */

/* textf - snprintf for reply and log texts, which are cut at their
 * buffer's size on purpose (the parts come from clients and tables). */
static void textf(char *dst, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void textf(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(dst, size, fmt, ap);
    va_end(ap);
}

/* An evaluation in progress: which list, about what. */
typedef struct eval {
    check_session *cs;
    int         list;
    const char *rcpt;
    char       *reply;
    bool        warn_next;          /* warn_if_reject was seen */
    char       *defer;              /* where a defer_if_permit goes */
    bool        rbl;                /* the rejection is a DNS list's */
    bool        sender_used;        /* rbl_bypass was asked about the sender */
} eval_t;

/* subject - "<x>" of a reply: the client, helo, sender or recipient. */
static void subject(const eval_t *e, char *dst, size_t size)
{
    const check_session *cs = e->cs;
    char tmp[300];

    switch (e->list) {
    case L_CLIENT:
        textf(dst, size, "%s[%s]", cs->client_name, cs->ip);
        return;
    case L_HELO:
        log_printable(tmp, sizeof(tmp), cs->helo ? cs->helo : "", cs->helo ? strlen(cs->helo) : 0);
        textf(dst, size, "<%s>", tmp);
        return;
    case L_SENDER:
        log_printable(tmp, sizeof(tmp), cs->sender ? cs->sender : "",
                      cs->sender ? strlen(cs->sender) : 0);
        textf(dst, size, "<%s>", tmp);
        return;
    case L_DATA:
        textf(dst, size, "<DATA>");
        return;
    default:
        log_printable(tmp, sizeof(tmp), e->rcpt ? e->rcpt : "", e->rcpt ? strlen(e->rcpt) : 0);
        textf(dst, size, "<%s>", tmp);
        return;
    }
}

/* rejected - the verdict of one restriction: fill the reply, or only log
 * it after warn_if_reject.  Returns CHECK_REJECT, or 0 to go on. */
static int rejected(eval_t *e, int code, const char *dsn, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int rejected(eval_t *e, int code, const char *dsn, const char *fmt, ...)
{
    char text[CHECK_REPLY_MAX - 32];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    if (e->warn_next) {
        char line[CHECK_REPLY_MAX];
        e->warn_next = false;
        textf(line, sizeof(line), "%d %s %s", code, dsn, text);
        e->cs->warn(e->cs->sess, "reject_warning", line);
        return 0;
    }
    textf(e->reply, CHECK_REPLY_MAX, "%d %s %s", code, dsn, text);
    return CHECK_REJECT;
}

/* defer_if_permit - remember a temporary failure that answers 450 only if
 * nothing else in the whole evaluation rejects. */
static void defer_if_permit(eval_t *e, int code, const char *dsn, const char *text)
{
    if (e->defer[0] == '\0')
        textf(e->defer, CHECK_REPLY_MAX, "%d %s %s", code, dsn, text);
}

/* dsn_for - "4.x.y" or "5.x.y" matching the code's class. */
static const char *dsn_for(int code, const char *detail, char *buf, size_t size)
{
    textf(buf, size, "%d.%s", code / 100, detail);
    return buf;
}

bool ingress_is_local_domain(const ingress_t *ig, const char *domain)
{
    return domain[0] && domain[0] != '['
           && (domain_list_match(ig->mydestination, domain)
               || domain_list_match(config_list(ig->st->cfg, "virtual_mailbox_domains"),
                                    domain));
}

/* local_recipient_known - address is a local account, an alias
 * (virtual_alias_maps, alias_maps), or (with recipient_delimiter)
 * user+ext@domain where user@domain is an account.  A table that cannot
 * be read now counts as knowing it: the router defers the recipient until
 * the table is fixed, rather than the client being told "unknown". */
static bool local_recipient_known(ingress_t *ig, const char *address)
{
    const char *delims = config_str(ig->st->cfg, "recipient_delimiter");
    const char *at = strrchr(address, '@');
    size_t n = at ? (size_t)(at - address) : 0;
    alias_expansion x;

    if (ingress_local_user(ig, address))
        return true;
    if (alias_expand(ig->checks->aliases, ig->st->cfg, address, &x) != 0)
        return true;
    bool alias = x.expanded;
    alias_expansion_free(&x);
    if (alias)
        return true;
    for (size_t i = 1; delims[0] && i < n; i++)
        if (strchr(delims, address[i])) {
            char *base = xasprintf("%.*s%s", (int)i, address, at);
            bool found = ingress_local_user(ig, base);
            xfree(&base);
            return found;
        }
    return false;
}

bool ingress_local_user(ingress_t *ig, const char *address)
{
    char *lower = address_lower(address);
    bool found;

    users_refresh(ig->users);
    found = users_lookup(ig->users, lower) != NULL;
    xfree(&lower);
    return found;
}

/* domain_in_list - domain is an item, or a subdomain of an item ".d" or
 * (as Postfix's parent_domain_matches_subdomains) of any item. */
static bool domain_in_list(const char *const *list, const char *domain)
{
    size_t dl = strlen(domain);

    for (size_t i = 0; list && list[i]; i++) {
        const char *item = list[i][0] == '.' ? list[i] + 1 : list[i];
        size_t il = strlen(item);

        if (dl == il && strcasecmp(domain, item) == 0)
            return true;
        if (dl > il && domain[dl - il - 1] == '.' && strcasecmp(domain + dl - il, item) == 0)
            return true;
    }
    return false;
}

/* has_routing - user%host@domain, host!user@domain, "user@host"@domain */
static bool has_routing(const char *address)
{
    const char *at = strrchr(address, '@');
    size_t n = at ? (size_t)(at - address) : strlen(address);

    for (size_t i = 0; i < n; i++)
        if (address[i] == '%' || address[i] == '!' || address[i] == '@')
            return true;
    return false;
}

/* auth_destination - may anyone send to rcpt: a local or relay domain
 * (backup_domains are relay domains: this host is their backup MX),
 * without sender-specified routing from an untrusted client? */
static bool auth_destination(const eval_t *e, const char *rcpt)
{
    const check_session *cs = e->cs;
    const char *domain = address_domain(rcpt);

    if (ingress_is_local_domain(cs->ig, domain))
        return true;
    if (domain[0] == '['
        || (!domain_in_list(cs->ig->relay_domains, domain)
            && !domain_in_list(config_list(cs->ig->st->cfg, "backup_domains"), domain)))
        return false;
    return cs->ig->checks->untrusted_routing || !has_routing(rcpt);
}

/* fqdn - a domain with a dot, or an address literal */
static bool fqdn(const char *domain)
{
    return domain[0] == '[' || (strchr(domain, '.') && domain[strlen(domain) - 1] != '.');
}

/* valid_hostname - RFC 1035 labels, or an address literal [...] */
static bool valid_hostname(const char *h)
{
    size_t len = strlen(h), label = 0;

    if (len == 0 || len > 255)
        return false;
    if (h[0] == '[')
        return h[len - 1] == ']';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)h[i];
        if (ch == '.') {
            if (label == 0 || h[i - 1] == '-')
                return false;
            label = 0;
        } else if (isalnum(ch) || ch == '-' || ch == '_') {
            if (label == 0 && ch == '-')
                return false;
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    /* an all-numeric name is an address without brackets */
    return strspn(h, "0123456789.") != len;
}

/* ---------------------------------------------------------------- access tables */

/* access_result - act on one table's answer for the current list. */
static int access_result(eval_t *e, const char *table, const char *key, const char *value)
{
    smtpd_action a;
    char who[300];

    subject(e, who, sizeof(who));
    if (!smtpd_action_parse(value, 554, 450, &a)) {
        log_warn("%s: key %s: unknown access action \"%s\"", table, key, value);
        return rejected(e, 451, "4.3.5", "%s: %s: Server configuration error",
                        who, reject_what[e->list]);
    }
    switch (a.kind) {
    case ACT_OK:
        return CHECK_OK;
    case ACT_DUNNO:
    case ACT_IGNORE:
    case ACT_BAD:
        return 0;
    case ACT_REJECT:
    case ACT_DEFER:
        return rejected(e, a.code, a.dsn, "%s: %s: %s", who, reject_what[e->list],
                        a.text[0] ? a.text : "Access denied");
    case ACT_DEFER_IF_PERMIT: {
        char text[CHECK_REPLY_MAX - 32];
        textf(text, sizeof(text), "%s: %s: %s", who, reject_what[e->list],
                 a.text[0] ? a.text : "Service unavailable");
        defer_if_permit(e, a.code, a.dsn, text);
        return 0;
    }
    case ACT_WARN:
        e->cs->warn(e->cs->sess, "warning", a.text[0] ? a.text : key);
        return 0;
    case ACT_HOLD:
    case ACT_DISCARD:
        if (a.kind == ACT_HOLD)
            e->cs->hold = true;
        else
            e->cs->discard = true;
        textf(e->cs->action_text, sizeof(e->cs->action_text), "%s: %s %s",
                 who, a.kind == ACT_HOLD ? "HOLD" : "DISCARD", a.text);
        e->cs->warn(e->cs->sess, a.kind == ACT_HOLD ? "hold" : "discard",
                    e->cs->action_text);
        return a.kind == ACT_DISCARD ? CHECK_OK : 0;
    }
    return 0;
}

/* lookup_one - one key in one table: 0 not found (go on), or a verdict. */
static int lookup_one(eval_t *e, map_t *m, const char *key, bool *found)
{
    char *value = NULL;
    int rc;

    switch (map_lookup(m, key, &value)) {
    case MAP_NOTFOUND:
        *found = false;
        return 0;
    case MAP_ERROR: {
        char who[300];
        *found = true;
        subject(e, who, sizeof(who));
        return rejected(e, 451, "4.3.0", "%s: Temporary lookup failure", who);
    }
    case MAP_FOUND:
        break;
    }
    *found = true;
    rc = access_result(e, map_spec(m), key, value);
    xfree(&value);
    return rc;
}

static bool partial_keys(const map_t *m)
{
    const char *spec = map_spec(m);
    return strncasecmp(spec, "hash:", 5) == 0 || strncasecmp(spec, "lmdb:", 5) == 0;
}

/* lookup_domain - name, then its parent domains (hash tables only). */
static int lookup_domain(eval_t *e, map_t *m, const char *name, bool *found)
{
    int rc;

    for (const char *d = name; d && *d;) {
        rc = lookup_one(e, m, d, found);
        if (*found || !partial_keys(m))
            return rc;
        d = strchr(d, '.');
        if (d)
            d++;
    }
    return 0;
}

/* lookup_ip - the address, then shorter prefixes "1.2.3", "1.2", "1". */
static int lookup_ip(eval_t *e, map_t *m, const char *ip, bool *found)
{
    char key[64];
    char sep = strchr(ip, ':') ? ':' : '.';
    char *p;
    int rc = lookup_one(e, m, ip, found);

    if (*found || !partial_keys(m))
        return rc;
    textf(key, sizeof(key), "%s", ip);
    while ((p = strrchr(key, sep)) != NULL) {
        *p = '\0';
        if (key[0] == '\0')
            break;
        rc = lookup_one(e, m, key, found);
        if (*found)
            return rc;
    }
    return 0;
}

/* lookup_address - user@domain, domain and parents, user@ (Postfix's
 * order for sender and recipient access); the null sender is "<>". */
static int lookup_address(eval_t *e, map_t *m, const char *address, bool *found)
{
    const char *at;
    char local[ADDR_LOCAL_MAX + 4];
    int rc;

    if (address[0] == '\0')
        return lookup_one(e, m, "<>", found);
    rc = lookup_one(e, m, address, found);
    if (*found || !partial_keys(m))
        return rc;
    at = strrchr(address, '@');
    if (!at)
        return 0;
    rc = lookup_domain(e, m, at + 1, found);
    if (*found)
        return rc;
    if ((size_t)(at - address) + 2 <= sizeof(local)) {
        memcpy(local, address, (size_t)(at - address) + 1);
        local[at - address + 1] = '\0';
        return lookup_one(e, m, local, found);
    }
    return 0;
}

static map_t *table_of(const eval_t *e, const restriction *r)
{
    smtpd_checks_t *c = e->cs->ig->checks;

    for (size_t i = 0; i < c->n_maps; i++)
        if (strcmp(map_spec(c->maps[i]), r->table) == 0)
            return c->maps[i];
    log_panic("smtpd_check: table %s was not opened", r->table);
}

/* ---------------------------------------------------------------- one restriction */

/* domain_check - reject_unknown_{sender,recipient}_domain */
static int domain_check(eval_t *e, const char *address, bool sender)
{
    smtpd_checks_t *c = e->cs->ig->checks;
    const char *domain = address_domain(address);
    char who[300], dsn[16], text[CHECK_REPLY_MAX - 32];
    const char *what = sender ? "Sender address rejected" : "Recipient address rejected";
    int code = c->unknown_address_code;

    if (!address[0] || !domain[0] || domain[0] == '[')
        return 0;
    /* as Postfix: final destinations are not looked up, for senders too */
    if (ingress_is_local_domain(e->cs->ig, domain))
        return 0;
    subject(e, who, sizeof(who));
    switch (e->cs->domain_fact(e->cs->sess, domain)) {
    case FACT_PENDING:
        return CHECK_WAIT;
    case FACT_OK:
    case FACT_NONE:
        return 0;
    case FACT_NULLMX:
        return rejected(e, sender ? 550 : 556, sender ? "5.7.27" : "5.1.10",
                        "%s: %s: Domain %s does not accept mail (nullMX)", who, what, domain);
    case FACT_NOTFOUND:
        return rejected(e, code, dsn_for(code, sender ? "1.8" : "1.2", dsn, sizeof(dsn)),
                        "%s: %s: Domain not found", who, what);
    case FACT_TEMPFAIL:
        textf(text, sizeof(text), "%s: %s: Domain not found", who, what);
        defer_if_permit(e, 450, sender ? "4.1.8" : "4.1.2", text);
        return 0;
    }
    return 0;
}

/* login_mismatch - reject_sender_login_mismatch */
static int login_mismatch(eval_t *e)
{
    check_session *cs = e->cs;
    smtpd_checks_t *c = cs->ig->checks;
    const char *sender = cs->sender;
    char who[300], *owners = NULL;
    bool owned = false, listed = false;

    if (!sender || !sender[0])
        return 0;
    subject(e, who, sizeof(who));
    for (size_t i = 0; i < c->n_login_maps && !owners; i++) {
        char *v = NULL;
        map_status st = map_lookup(c->login_maps[i], sender, &v);
        if (st == MAP_NOTFOUND) {
            char *at_domain = xasprintf("@%s", address_domain(sender));
            st = map_lookup(c->login_maps[i], at_domain, &v);
            xfree(&at_domain);
        }
        if (st == MAP_ERROR)
            return rejected(e, 451, "4.3.0", "%s: Temporary lookup failure", who);
        if (st == MAP_FOUND)
            owners = v;
    }
    if (owners) {
        listed = true;
        for (char *tok = strtok(owners, ", \t"); tok; tok = strtok(NULL, ", \t"))
            if (cs->auth_user && strcasecmp(tok, cs->auth_user) == 0)
                owned = true;
        xfree(&owners);
    } else if (ingress_local_user(cs->ig, sender)) {
        listed = true;      /* a local account owns its own address */
        owned = cs->auth_user && strcasecmp(cs->auth_user, sender) == 0;
    }
    if (cs->auth_user && !owned)
        return rejected(e, 553, "5.7.1", "%s: Sender address rejected: not owned by user %s",
                        who, cs->auth_user);
    if (!cs->auth_user && listed)
        return rejected(e, 553, "5.7.1", "%s: Sender address rejected: not logged in", who);
    return 0;
}

/* client_name_check - reject_unknown_(reverse_)client_hostname */
static int client_name_check(eval_t *e, bool reverse)
{
    check_session *cs = e->cs;
    dns_fact f = reverse ? cs->reverse_fact : cs->client_fact;
    int code = cs->ig->checks->unknown_client_code;
    char dsn[16], text[CHECK_REPLY_MAX - 32];
    const char *what = reverse ? "cannot find your reverse hostname" : "cannot find your hostname";

    if (f == FACT_OK)
        return 0;
    if (f == FACT_TEMPFAIL) {
        textf(text, sizeof(text), "Client host rejected: %s, [%s]", what, cs->ip);
        defer_if_permit(e, 450, "4.7.25", text);
        return 0;
    }
    return rejected(e, code, dsn_for(code, "7.25", dsn, sizeof(dsn)),
                    "Client host rejected: %s, [%s]", what, cs->ip);
}

/* helo_check - the three HELO name tests */
static int helo_check(eval_t *e, restriction_kind k)
{
    check_session *cs = e->cs;
    char who[300], dsn[16], text[CHECK_REPLY_MAX - 32];
    int code = cs->ig->checks->unknown_hostname_code;

    if (!cs->helo)
        return 0;
    subject(e, who, sizeof(who));
    switch (k) {
    case R_REJECT_INVALID_HELO_HOSTNAME:
        if (!valid_hostname(cs->helo))
            return rejected(e, 501, "5.5.2", "%s: Helo command rejected: Invalid name", who);
        return 0;
    case R_REJECT_NON_FQDN_HELO_HOSTNAME:
        if (!valid_hostname(cs->helo) || !fqdn(cs->helo))
            return rejected(e, 504, "5.5.2",
                            "%s: Helo command rejected: need fully-qualified hostname", who);
        return 0;
    default:
        break;
    }
    if (cs->helo[0] == '[')
        return 0;
    switch (cs->domain_fact(cs->sess, cs->helo)) {
    case FACT_PENDING:
        return CHECK_WAIT;
    case FACT_NOTFOUND:
    case FACT_NULLMX:
        return rejected(e, code, dsn_for(code, "7.1", dsn, sizeof(dsn)),
                        "%s: Helo command rejected: Host not found", who);
    case FACT_TEMPFAIL:
        textf(text, sizeof(text), "%s: Helo command rejected: Host not found", who);
        defer_if_permit(e, 450, "4.7.1", text);
        return 0;
    default:
        return 0;
    }
}

/* rbl_check - reject_rbl_client, reject_rhsbl_sender, permit_dnswl_client:
 * is the client's address (or the sender's domain) listed in r->zone with
 * an answer that r->filter accepts?  Postfix's reply texts. */
static int rbl_check(eval_t *e, const restriction *r)
{
    check_session *cs = e->cs;
    smtpd_checks_t *c = cs->ig->checks;
    char name[RBL_NAME_MAX + 1], what[300], dsn[16];
    const char *class, *domain = NULL;
    const rbl_answer *ans = NULL;
    size_t i;
    int rc;

    if (r->kind == R_REJECT_RHSBL_SENDER) {
        if (!cs->sender || !cs->sender[0])
            return 0;
        domain = address_domain(cs->sender);
        if (!smtpd_rbl_domain_name(domain, r->zone, name))
            return 0;
        class = "Sender address";
        log_printable(what, sizeof(what), domain, strlen(domain));
    } else {
        if (!smtpd_rbl_client_name(cs->ip, r->zone, name))
            return 0;
        class = "Client host";
        textf(what, sizeof(what), "%s", cs->ip);
    }
    if (r->kind != R_PERMIT_DNSWL_CLIENT) {
        if (policy_bypass_client(c->rbl_bypass, cs->addr, cs->client_name))
            return 0;
        if (cs->sender) {
            e->sender_used = true;
            if (policy_bypass_address(c->rbl_bypass, cs->sender))
                return 0;
        }
    }
    if (!cs->rbl)
        return 0;
    switch (smtpd_rbl_lookup(cs->rbl, name, &ans)) {
    case RBL_PENDING:
        return CHECK_WAIT;
    case RBL_NOT_LISTED:
        return 0;
    case RBL_LISTED:
        break;
    }
    for (i = 0; i < ans->n; i++)
        if (restriction_filter_match(r->filter, ans->addrs[i]))
            break;
    if (i == ans->n)
        return 0;
    if (r->kind == R_PERMIT_DNSWL_CLIENT)
        return CHECK_OK;
    rc = rejected(e, c->rbl_code, dsn_for(c->rbl_code, "7.1", dsn, sizeof(dsn)),
                  "Service unavailable; %s [%s] blocked using %s%s%s", class, what, r->zone,
                  ans->text[0] ? "; " : "", ans->text);
    if (rc == CHECK_REJECT) {
        e->rbl = true;
        textf(cs->rbl_listed, sizeof(cs->rbl_listed), "%s", r->zone);
        cs->rbl_reply = true;
        cs->close_after_reply = c->rbl_close;
    }
    return rc;
}

/* one - evaluate one restriction: 0 (no decision), CHECK_OK (permit, the
 * list ends), CHECK_REJECT or CHECK_WAIT. */
static int one(eval_t *e, const restriction *r)
{
    check_session *cs = e->cs;
    ingress_t *ig = cs->ig;
    char who[300];
    bool found;

    subject(e, who, sizeof(who));
    switch (r->kind) {
    case R_PERMIT:
        return CHECK_OK;
    case R_REJECT:
        return rejected(e, 554, "5.7.1", "%s: %s: Access denied", who, reject_what[e->list]);
    case R_DEFER:
        return rejected(e, 450, "4.7.1", "%s: %s: Try again later", who, reject_what[e->list]);
    case R_WARN_IF_REJECT:
        e->warn_next = true;
        return 0;
    case R_PERMIT_MYNETWORKS:
        return cidr_list_match(ig->mynetworks, cs->addr) ? CHECK_OK : 0;
    case R_PERMIT_SASL_AUTHENTICATED:
        return cs->auth_user ? CHECK_OK : 0;
    case R_PERMIT_TLS_CLIENT:
        return cs->tls ? CHECK_OK : 0;
    case R_REJECT_UNAUTH_DESTINATION:
    case R_DEFER_UNAUTH_DESTINATION:
        if (!e->rcpt || auth_destination(e, e->rcpt))
            return 0;
        if (r->kind == R_DEFER_UNAUTH_DESTINATION)
            return rejected(e, 454, "4.7.1", "%s: Relay access denied", who);
        return rejected(e, 554, "5.7.1", "%s: Relay access denied", who);
    case R_PERMIT_AUTH_DESTINATION:
        return e->rcpt && auth_destination(e, e->rcpt) ? CHECK_OK : 0;
    case R_REJECT_UNAUTH_PIPELINING:
        if (e->list == L_DATA && cs->pipelined)
            return rejected(e, 503, "5.5.0",
                            "%s: Data command rejected: Improper use of SMTP command pipelining",
                            who);
        return 0;
    case R_REJECT_NON_FQDN_SENDER:
        if (cs->sender && cs->sender[0] && !fqdn(address_domain(cs->sender)))
            return rejected(e, 504, "5.5.2",
                            "<%s>: Sender address rejected: need fully-qualified address",
                            cs->sender);
        return 0;
    case R_REJECT_NON_FQDN_RECIPIENT:
        if (e->rcpt && !fqdn(address_domain(e->rcpt)))
            return rejected(e, 504, "5.5.2",
                            "<%s>: Recipient address rejected: need fully-qualified address",
                            e->rcpt);
        return 0;
    case R_REJECT_UNKNOWN_SENDER_DOMAIN:
        return cs->sender ? domain_check(e, cs->sender, true) : 0;
    case R_REJECT_UNKNOWN_RECIPIENT_DOMAIN:
        return e->rcpt ? domain_check(e, e->rcpt, false) : 0;
    case R_REJECT_SENDER_LOGIN_MISMATCH:
        return login_mismatch(e);
    case R_REJECT_INVALID_HELO_HOSTNAME:
    case R_REJECT_NON_FQDN_HELO_HOSTNAME:
    case R_REJECT_UNKNOWN_HELO_HOSTNAME:
        return helo_check(e, r->kind);
    case R_REJECT_UNKNOWN_CLIENT_HOSTNAME:
        return client_name_check(e, false);
    case R_REJECT_UNKNOWN_REVERSE_CLIENT_HOSTNAME:
        return client_name_check(e, true);
    case R_REJECT_UNLISTED_RECIPIENT:
        if (e->rcpt && ingress_is_local_domain(ig, address_domain(e->rcpt))
            && !local_recipient_known(ig, e->rcpt))
            return rejected(e, 550, "5.1.1", "%s: Recipient address rejected: "
                            "User unknown in local recipient table", who);
        return 0;
    case R_REJECT_UNLISTED_SENDER:
        if (cs->sender && cs->sender[0]
            && ingress_is_local_domain(ig, address_domain(cs->sender))
            && !ingress_local_user(ig, cs->sender))
            return rejected(e, 553, "5.1.0", "<%s>: Sender address rejected: "
                            "User unknown in local recipient table", cs->sender);
        return 0;
    case R_REJECT_RBL_CLIENT:
    case R_REJECT_RHSBL_SENDER:
    case R_PERMIT_DNSWL_CLIENT:
        return rbl_check(e, r);
    case R_CHECK_CLIENT_ACCESS: {
        map_t *m = table_of(e, r);
        int rc = 0;
        found = false;
        if (strcmp(cs->client_name, "unknown") != 0)
            rc = lookup_domain(e, m, cs->client_name, &found);
        if (!found)
            rc = lookup_ip(e, m, cs->ip, &found);
        return rc;
    }
    case R_CHECK_HELO_ACCESS:
        return cs->helo ? lookup_domain(e, table_of(e, r), cs->helo, &found) : 0;
    case R_CHECK_SENDER_ACCESS:
        return cs->sender ? lookup_address(e, table_of(e, r), cs->sender, &found) : 0;
    case R_CHECK_RECIPIENT_ACCESS:
        return e->rcpt ? lookup_address(e, table_of(e, r), e->rcpt, &found) : 0;
    case R_COUNT:
        break;
    }
    log_panic("smtpd_check: restriction %d", (int)r->kind);
}

/* run_list - first match wins: CHECK_OK when the list permits or ends.
 * memo (NULL for the lists not remembered) learns whether the verdict is
 * a DNS list's and whether it depended on the sender. */
static check_status run_list(check_session *cs, int list, const char *rcpt, char *reply,
                             char *defer, check_memo *memo)
{
    smtpd_checks_t *c = cs->ig->checks;
    eval_t e = { cs, list, rcpt, reply, false, defer, false, false };
    check_status st = CHECK_OK;

    for (size_t i = 0; i < c->len[list]; i++) {
        int rc = one(&e, &c->list[list][i]);
        if (rc == CHECK_OK || rc == CHECK_REJECT || rc == CHECK_WAIT) {
            st = (check_status)rc;
            break;
        }
    }
    if (memo) {
        memo->rbl = st == CHECK_REJECT && e.rbl;
        memo->per_mail = e.sender_used;
    }
    return st;
}

/* memo_list - run a list once and remember its verdict (client, helo,
 * sender lists do not depend on the recipient). */
static check_status memo_list(check_session *cs, int list, check_memo *m, char *reply,
                              char *defer)
{
    check_status st;

    if (m->state == 0) {
        m->defer[0] = '\0';
        st = run_list(cs, list, NULL, m->reply, m->defer, m);
        if (st == CHECK_WAIT)
            return st;
        m->state = st;
    }
    if (m->defer[0] && defer[0] == '\0')
        textf(defer, CHECK_REPLY_MAX, "%s", m->defer);
    if (m->state == CHECK_REJECT) {
        textf(reply, CHECK_REPLY_MAX, "%s", m->reply);
        if (m->rbl) {                   /* replayed: the same DNS list refusal */
            cs->rbl_reply = true;
            cs->close_after_reply = cs->ig->checks->rbl_close;
        }
    }
    return (check_status)m->state;
}

/* finish - a permit with a defer_if_permit pending is a 450. */
static check_status finish(check_status st, const char *defer, char *reply)
{
    if (st == CHECK_OK && defer[0]) {
        textf(reply, CHECK_REPLY_MAX, "%s", defer);
        return CHECK_REJECT;
    }
    return st;
}

/* early - the client, helo and sender lists up to `upto`. */
static check_status early(check_session *cs, int upto, char *reply, char *defer)
{
    check_status st = memo_list(cs, L_CLIENT, &cs->client, reply, defer);

    if (st != CHECK_OK || upto == L_CLIENT)
        return st;
    st = memo_list(cs, L_HELO, &cs->helo_memo, reply, defer);
    if (st != CHECK_OK || upto == L_HELO)
        return st;
    return memo_list(cs, L_SENDER, &cs->sender_memo, reply, defer);
}

check_status smtpd_check_connect(check_session *cs, char *reply)
{
    char defer[CHECK_REPLY_MAX] = "";

    cs->rbl_reply = false;
    if (cs->ig->checks->delay_reject)
        return CHECK_OK;
    if (memo_list(cs, L_CLIENT, &cs->client, reply, defer) == CHECK_WAIT)
        return CHECK_WAIT;
    if (cs->client.state != CHECK_REJECT)
        return CHECK_OK;
    cs->access_denied = true;
    return CHECK_REJECT;
}

check_status smtpd_check_helo(check_session *cs, char *reply)
{
    char defer[CHECK_REPLY_MAX] = "";

    cs->rbl_reply = false;
    if (cs->ig->checks->delay_reject)
        return CHECK_OK;
    return finish(early(cs, L_HELO, reply, defer), defer, reply);
}

check_status smtpd_check_mail(check_session *cs, char *reply)
{
    char defer[CHECK_REPLY_MAX] = "";

    cs->rbl_reply = false;
    if (cs->ig->checks->helo_required && !cs->helo) {
        textf(reply, CHECK_REPLY_MAX, "503 5.5.1 Error: send HELO/EHLO first");
        return CHECK_REJECT;
    }
    if (cs->ig->checks->delay_reject)
        return CHECK_OK;
    return finish(early(cs, L_SENDER, reply, defer), defer, reply);
}

check_status smtpd_check_rcpt(check_session *cs, const char *rcpt, char *reply)
{
    smtpd_checks_t *c = cs->ig->checks;
    char defer[CHECK_REPLY_MAX] = "";
    check_status st;

    cs->rbl_reply = false;
    if ((st = early(cs, L_SENDER, reply, defer)) != CHECK_OK)
        return st;
    if ((st = run_list(cs, L_RELAY, rcpt, reply, defer, NULL)) != CHECK_OK)
        return st;
    if ((st = run_list(cs, L_RECIPIENT, rcpt, reply, defer, NULL)) != CHECK_OK)
        return st;
    if (c->unlisted_recipient) {
        static const restriction unlisted = { .kind = R_REJECT_UNLISTED_RECIPIENT };
        eval_t e = { cs, L_RECIPIENT, rcpt, reply, false, defer, false, false };
        if (one(&e, &unlisted) == CHECK_REJECT)
            return CHECK_REJECT;
    }
    if (c->unlisted_sender) {
        static const restriction unlisted = { .kind = R_REJECT_UNLISTED_SENDER };
        eval_t e = { cs, L_SENDER, rcpt, reply, false, defer, false, false };
        if (one(&e, &unlisted) == CHECK_REJECT)
            return CHECK_REJECT;
    }
    return finish(CHECK_OK, defer, reply);
}

check_status smtpd_check_data(check_session *cs, char *reply)
{
    char defer[CHECK_REPLY_MAX] = "";

    cs->rbl_reply = false;
    return finish(run_list(cs, L_DATA, NULL, reply, defer, NULL), defer, reply);
}

void smtpd_check_new_helo(check_session *cs)
{
    cs->helo_memo.state = 0;
    cs->sender_memo.state = 0;
}

void smtpd_check_new_mail(check_session *cs)
{
    cs->sender_memo.state = 0;
    if (cs->client.per_mail && !cs->access_denied)
        cs->client.state = 0;
    if (cs->helo_memo.per_mail)
        cs->helo_memo.state = 0;
    cs->hold = cs->discard = false;
    cs->action_text[0] = '\0';
}

/* ---------------------------------------------------------------- limits */

size_t smtpd_check_size_limit(ingress_t *ig, const char *login, const char *sender)
{
    smtpd_checks_t *c = ig->checks;
    const char *keys[4];
    size_t n = 0;

    if (login && login[0]) {
        keys[n++] = login;
        keys[n++] = address_domain(login);
    }
    if (sender && sender[0]) {
        keys[n++] = sender;
        keys[n++] = address_domain(sender);
    }
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; keys[k][0] && i < c->n_size_maps; i++) {
            char *v = NULL, *end;
            unsigned long long size;

            if (map_lookup(c->size_maps[i], keys[k], &v) != MAP_FOUND)
                continue;
            size = strtoull(v, &end, 10);
            switch (tolower((unsigned char)*end)) {
            case 'k': size <<= 10; end++; break;
            case 'm': size <<= 20; end++; break;
            case 'g': size <<= 30; end++; break;
            default: break;
            }
            if (*end || end == v)
                log_warn("%s: %s: \"%s\" is not a size (use 5242880, 5m, 1g)",
                         map_spec(c->size_maps[i]), keys[k], v);
            xfree(&v);
            if (size)
                return (size_t)size;
        }
    }
    return 0;
}
