/* nexthop.c - from a recipient's route and next hop to a destination
 * (see nexthop.h).  Pure apart from the map lookups: no DNS, no sockets. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "log.h"
#include "nexthop.h"
#include "xalloc.h"

static const char *const tls_level_names[] = {
    [SMTP_TLS_NONE] = "none",
    [SMTP_TLS_MAY] = "may",
    [SMTP_TLS_ENCRYPT] = "encrypt",
    [SMTP_TLS_VERIFY] = "verify",
};

int nexthop_tls_level_parse(const char *word)
{
    for (size_t i = 0; i < sizeof tls_level_names / sizeof tls_level_names[0]; i++)
        if (strcasecmp(word, tls_level_names[i]) == 0)
            return (int)i;
    return -1;
}

const char *nexthop_tls_level_name(smtp_tls_level level)
{
    if ((size_t)level >= sizeof tls_level_names / sizeof tls_level_names[0])
        log_panic("nexthop_tls_level_name: level %d", (int)level);
    return tls_level_names[level];
}

/* lower_copy - host folded to lower case into dst. */
static void lower_copy(char *dst, size_t size, const char *src)
{
    size_t i;

    for (i = 0; src[i] != '\0' && i + 1 < size; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* make_key - the destination key: what groups jobs that may share a
 * connection. */
static void make_key(nexthop_dest *d, unsigned default_port)
{
    const char *proto = d->lmtp ? "lmtp" : "smtp";
    char host[256];

    lower_copy(host, sizeof host, d->host);
    if (d->path[0] != '\0')
        snprintf(d->key, sizeof d->key, "%s:unix:%s", proto, d->path);
    else if (!d->mx)
        snprintf(d->key, sizeof d->key, "%s:[%s]:%u", proto, host, d->port);
    else if (d->port != default_port)
        snprintf(d->key, sizeof d->key, "%s:%s:%u", proto, host, d->port);
    else
        snprintf(d->key, sizeof d->key, "%s:%s", proto, host);
}

/* lookup_maps - the first of maps that has one of keys[0..n); MAP_ERROR
 * stops the search (the answer would be a guess).  *value is malloc'ed
 * on MAP_FOUND; *which names the key that matched. */
static map_status lookup_maps(map_t *const *maps, const char *const *keys, size_t n,
                              char **value, const char **which, const char *param)
{
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; maps != NULL && maps[i] != NULL; i++) {
            map_status s = map_lookup(maps[i], keys[k], value);
            if (s == MAP_ERROR) {
                log_warn("%s lookup failed: %s: %s", param, map_spec(maps[i]), keys[k]);
                return MAP_ERROR;
            }
            if (s == MAP_FOUND) {
                *which = keys[k];
                return MAP_FOUND;
            }
        }
    }
    return MAP_NOTFOUND;
}

/* policy_keys - "[host]:port" (no MX lookup only), then "host". */
static size_t policy_keys(const nexthop_dest *d, char *bracketed, size_t size,
                          const char *keys[2])
{
    size_t n = 0;

    if (!d->mx) {
        snprintf(bracketed, size, "[%s]:%u", d->host, d->port);
        keys[n++] = bracketed;
    }
    keys[n++] = d->host;
    return n;
}

static nexthop_status tls_policy(const nexthop_policy *p, nexthop_dest *d, char *err,
                                 size_t errsize)
{
    char bracketed[300], word[16] = "", *value = NULL;
    const char *keys[2], *which = NULL;
    size_t n = policy_keys(d, bracketed, sizeof bracketed, keys);
    int level;

    switch (lookup_maps(p->tls_maps, keys, n, &value, &which, "smtp_tls_policy_maps")) {
    case MAP_ERROR:
        snprintf(err, errsize, "4.3.0 smtp_tls_policy_maps lookup failed for %s", d->host);
        return NEXTHOP_TRYLATER;
    case MAP_NOTFOUND:
        return NEXTHOP_OK;
    case MAP_FOUND:
        break;
    }
    /* the first word; Postfix's attributes after it are not ours */
    sscanf(value, "%15s", word);
    level = nexthop_tls_level_parse(word);
    if (level < 0) {
        log_warn("smtp_tls_policy_maps: %s: bad TLS level \"%.40s\"", which, value);
        snprintf(err, errsize, "4.7.5 TLS policy lookup error for %s", d->host);
        xfree(&value);
        return NEXTHOP_TRYLATER;
    }
    d->tls_level = (smtp_tls_level)level;
    xfree(&value);
    return NEXTHOP_OK;
}

/* is_relayhost - is d the relayhost (same host, MX lookup and port)? */
static bool is_relayhost(const nexthop_policy *p, const nexthop_dest *d)
{
    const relayhost_t *r = p->relayhost;

    return r != NULL && !d->lmtp && r->mx == d->mx && strcasecmp(r->host, d->host) == 0
           && (r->port ? r->port : p->default_port) == d->port;
}

static nexthop_status credentials(const nexthop_policy *p, nexthop_dest *d, char *err,
                                  size_t errsize)
{
    char bracketed[300], *value = NULL, *colon;
    const char *keys[2], *which = NULL;
    size_t n;

    if (is_relayhost(p, d) && p->relayhost->user[0] != '\0') {
        snprintf(d->user, sizeof d->user, "%s", p->relayhost->user);
        snprintf(d->pass, sizeof d->pass, "%s", p->relayhost->pass);
        return NEXTHOP_OK;
    }
    snprintf(bracketed, sizeof bracketed, "[%s]:%u", d->host, d->port);
    keys[0] = bracketed;
    keys[1] = d->host;
    n = 2;
    switch (lookup_maps(p->sasl_maps, keys, n, &value, &which, "smtp_sasl_password_maps")) {
    case MAP_ERROR:
        snprintf(err, errsize, "4.3.0 smtp_sasl_password_maps lookup failed for %s", d->host);
        return NEXTHOP_TRYLATER;
    case MAP_NOTFOUND:
        return NEXTHOP_OK;
    case MAP_FOUND:
        break;
    }
    colon = strchr(value, ':');
    if (colon == NULL || colon == value || strlen(value) >= sizeof d->user) {
        log_warn("smtp_sasl_password_maps: %s: expected user:password", which);
        snprintf(err, errsize, "4.7.0 SASL credentials lookup error for %s", d->host);
        xfree(&value);
        return NEXTHOP_TRYLATER;
    }
    *colon = '\0';
    snprintf(d->user, sizeof d->user, "%s", value);
    snprintf(d->pass, sizeof d->pass, "%s", colon + 1);
    explicit_bzero(value, strlen(colon + 1) + (size_t)(colon - value) + 1);
    xfree(&value);
    return NEXTHOP_OK;
}

/* from_spec - a TCP destination from a relayhost-style spec. */
static nexthop_status from_spec(const nexthop_policy *p, const char *spec, bool lmtp,
                                nexthop_dest *d, char *err, size_t errsize)
{
    relayhost_t r;
    char why[128];

    if (relayhost_parse(spec, false, &r, why, sizeof why) < 0) {
        snprintf(err, errsize, "4.3.5 bad next hop \"%.100s\": %s", spec, why);
        return NEXTHOP_BAD;
    }
    if (lmtp && r.port == 0) {
        snprintf(err, errsize, "4.3.5 bad next hop \"%.100s\": LMTP over TCP needs a port", spec);
        return NEXTHOP_BAD;
    }
    snprintf(d->host, sizeof d->host, "%s", r.host);
    d->port = r.port ? r.port : p->default_port;
    d->mx = lmtp ? false : r.mx;
    return NEXTHOP_OK;
}

/* from_unix - "unix:/absolute/path". */
static nexthop_status from_unix(const char *spec, nexthop_dest *d, char *err, size_t errsize)
{
    const char *path = spec + strlen("unix:");

    if (path[0] != '/' || strlen(path) >= sizeof d->path) {
        snprintf(err, errsize, "4.3.5 bad next hop \"%.100s\": expected unix:/absolute/path", spec);
        return NEXTHOP_BAD;
    }
    snprintf(d->path, sizeof d->path, "%s", path);
    return NEXTHOP_OK;
}

/* domain_spec - the recipient's domain as a next hop: "example.com",
 * "[192.0.2.1]", "[IPv6:2001:db8::1]" -> "[2001:db8::1]". */
static void domain_spec(const char *rcpt, char *dst, size_t size)
{
    const char *dom = address_domain(rcpt);

    if (strncasecmp(dom, "[IPv6:", 6) == 0)
        snprintf(dst, size, "[%s", dom + 6);
    else
        snprintf(dst, size, "%s", dom);
}

nexthop_status nexthop_resolve(const nexthop_policy *p, Correio__RouteKind route,
                               const char *nexthop, const char *rcpt, nexthop_dest *out,
                               char *err, size_t errsize)
{
    char spec[300];
    nexthop_status s;

    memset(out, 0, sizeof *out);
    err[0] = '\0';
    out->tls_level = p->tls_level;
    if (route == CORREIO__ROUTE_KIND__ROUTE_LMTP) {
        out->lmtp = true;
        out->tls_level = SMTP_TLS_NONE;
        if (strncmp(nexthop, "unix:", 5) == 0) {
            s = from_unix(nexthop, out, err, errsize);
            if (s == NEXTHOP_OK)
                make_key(out, p->default_port);
            return s;
        }
        s = from_spec(p, nexthop, true, out, err, errsize);
    } else if (route == CORREIO__ROUTE_KIND__ROUTE_RELAY) {
        if (nexthop[0] == '\0')
            domain_spec(rcpt, spec, sizeof spec);
        else
            snprintf(spec, sizeof spec, "%s", nexthop);
        s = from_spec(p, spec, false, out, err, errsize);
    } else {
        snprintf(err, errsize, "4.3.5 route %d is not SMTP or LMTP", (int)route);
        return NEXTHOP_BAD;
    }
    if (s == NEXTHOP_OK)
        s = tls_policy(p, out, err, errsize);
    if (s == NEXTHOP_OK && !out->lmtp)
        s = credentials(p, out, err, errsize);
    if (s == NEXTHOP_OK)
        make_key(out, p->default_port);
    return s;
}
