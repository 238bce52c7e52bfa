/* routing.c - per-recipient routing: local Maildir or SMTP relay (see
 * routing.h).  The one thing this file must never do is build a mailbox
 * path from outside text that could leave mail_root. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include "address.h"
#include "buf.h"
#include "log.h"
#include "routing.h"
#include "xalloc.h"

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

static void routing_error(routing_decision *out, const char *address, const char *text)
{
    out->route = CORREIO__ROUTE_KIND__ROUTE_ERROR;
    out->nexthop = xstrdup(address);
    out->mailbox = xstrdup("");
    out->status_text = xstrdup(text);
}

void routing_decide(const char *const *mydestination, const char *myhostname,
                    const char *address, routing_decision *out)
{
    memset(out, 0, sizeof *out);
    const char *at = strrchr(address, '@');
    size_t local_len = at ? (size_t)(at - address) : strlen(address);
    char *domain = routing_lower(at ? at + 1 : myhostname,
                                 strlen(at ? at + 1 : myhostname));

    if (!domain_list_match(mydestination, domain)) {
        out->route = CORREIO__ROUTE_KIND__ROUTE_RELAY;
        out->nexthop = domain;
        out->mailbox = xstrdup("");
        out->status_text = xstrdup("");
        return;
    }
    char *local = routing_unquote(address, local_len);
    if (!local || !routing_mailbox_safe(local) || !routing_domain_safe(domain)) {
        routing_error(out, address, ROUTING_UNSAFE_TEXT);
    } else {
        out->route = CORREIO__ROUTE_KIND__ROUTE_MAILDIR;
        out->nexthop = xstrdup(address);
        out->mailbox = xasprintf("%s/%s", domain, local);
        out->status_text = xstrdup("");
    }
    xfree(&local);
    xfree(&domain);
}

void routing_decision_free(routing_decision *d)
{
    xfree(&d->nexthop);
    xfree(&d->mailbox);
    xfree(&d->status_text);
}

/* routing_log - "QID: to=<x>, route=maildir mailbox=example.test/demo" */
static void routing_log(const char *qid, const char *address, const routing_decision *d)
{
    char to[ADDR_PATH_MAX + 8];
    log_printable(to, sizeof to, address, strlen(address));
    switch (d->route) {
    case CORREIO__ROUTE_KIND__ROUTE_MAILDIR:
        log_info("%s: to=<%s>, route=maildir mailbox=%s", qid, to, d->mailbox);
        break;
    case CORREIO__ROUTE_KIND__ROUTE_RELAY: {
        char hop[ADDR_DOMAIN_MAX + 8];
        log_printable(hop, sizeof hop, d->nexthop, strlen(d->nexthop));
        log_info("%s: to=<%s>, route=relay nexthop=%s", qid, to, hop);
        break;
    }
    default:
        log_info("%s: to=<%s>, route=error status=%s", qid, to, d->status_text);
        break;
    }
}

uint8_t *routing_route_envelope(const Envelope *env, const config_t *cfg, size_t *len)
{
    const char *const *mydest = config_list(cfg, "mydestination");
    const char *myhostname = config_str(cfg, "myhostname");
    size_t n = env->n_rcpt;
    routing_decision *d = xcalloc(n, sizeof *d);
    Recipient *copies = xcalloc(n, sizeof *copies);
    Recipient **ptrs = xcalloc(n, sizeof *ptrs);

    for (size_t i = 0; i < n; i++) {
        routing_decide(mydest, myhostname, env->rcpt[i]->address, &d[i]);
        routing_log(env->queue_id, env->rcpt[i]->address, &d[i]);
        copies[i] = *env->rcpt[i];          /* shallow; env stays untouched */
        copies[i].route = d[i].route;
        copies[i].nexthop = d[i].nexthop;
        copies[i].mailbox = d[i].mailbox;
        copies[i].status_text = d[i].status_text;
        ptrs[i] = &copies[i];
    }
    Envelope copy = *env;
    copy.rcpt = ptrs;
    uint8_t *out = wire_pack_envelope(&copy, len);

    for (size_t i = 0; i < n; i++)
        routing_decision_free(&d[i]);
    xfree(&d);
    xfree(&copies);
    xfree(&ptrs);
    return out;
}
