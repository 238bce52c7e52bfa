/* endpoints.c - resolving configured ZeroMQ endpoints (see endpoints.h). */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "xalloc.h"

/* A growing NULL-terminated list of strings. */
typedef struct list {
    char  **item;
    size_t  n;
} list;

/* list_add - append a copy of s unless it is there already. */
static void list_add(list *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++)
        if (strcmp(l->item[i], s) == 0)
            return;
    l->item = xrealloc(l->item, (l->n + 2) * sizeof(*l->item));
    l->item[l->n++] = xstrdup(s);
    l->item[l->n] = NULL;
}

static void list_add_address(list *l, const char *addr, const char *port)
{
    char *ep = strchr(addr, ':') ? xasprintf("tcp://[%s]:%s", addr, port)
                                 : xasprintf("tcp://%s:%s", addr, port);

    list_add(l, ep);
    free(ep);
}

void endpoints_free(char ***listp)
{
    if (*listp == NULL)
        return;
    for (char **p = *listp; *p; p++)
        free(*p);
    xfree(listp);
}

/* ------------------------------------------------------------ names */

typedef struct addr_lookup {
    list        addr;       /* endpoints made of the answers */
    const char *port;
    bool        tempfail;   /* one of the queries failed temporarily */
    char       *error;      /* the resolver's word for the last failure */
} addr_lookup;

static void on_address(void *arg, const dns_reply *reply)
{
    addr_lookup *l = arg;

    if (reply->status != DNS_OK) {
        l->tempfail = l->tempfail || reply->status == DNS_TEMPFAIL;
        free(l->error);
        l->error = xstrdup(reply->error ? reply->error : "no answer");
        return;
    }
    for (size_t i = 0; i < reply->n; i++)
        list_add_address(&l->addr, reply->rr[i].text, l->port);
}

/* ip_literal - is host an address that needs no lookup ("[::1]" counts,
 * brackets as ZeroMQ wants them for IPv6)? */
static bool ip_literal(const char *host)
{
    unsigned char a[16];
    size_t len = strlen(host);

    if (inet_pton(AF_INET, host, a) == 1)
        return true;
    if (len > 2 && host[0] == '[' && host[len - 1] == ']') {
        char *inner = xasprintf("%.*s", (int)(len - 2), host + 1);
        bool ok = inet_pton(AF_INET6, inner, a) == 1;

        free(inner);
        return ok;
    }
    return false;
}

/* lookup - the addresses of host, as endpoints with port. */
static char **lookup(const config_t *cfg, dns_t **d, const char *host, const char *port,
                     char **err)
{
    addr_lookup l = { .port = port };

    if (*d == NULL) {
        char *why = NULL;

        *d = dns_new(config_list(cfg, "dns_servers"), config_time_ms(cfg, "dns_timeout"),
                     (int)config_int(cfg, "dns_tries"), NULL, NULL, &why);
        if (*d == NULL) {
            *err = xasprintf("cannot look %s up: %s", host, why ? why : "no resolver");
            free(why);
            return NULL;
        }
    }
    dns_query(*d, host, DNS_A, on_address, &l);
    dns_query(*d, host, DNS_AAAA, on_address, &l);
    dns_wait(*d);
    if (l.addr.n == 0)
        *err = l.tempfail ? xasprintf("cannot look %s up now: %s", host, l.error)
                          : xasprintf("%s has no address: %s", host, l.error);
    free(l.error);
    return l.addr.item;
}

char **endpoints_resolve(const config_t *cfg, dns_t **resolver, const char *endpoint,
                         char **err)
{
    const char *hostport, *colon;
    list out = { 0 };
    char *host;

    if (strncmp(endpoint, "tcp://", 6) != 0) {
        list_add(&out, endpoint);
        return out.item;
    }
    hostport = endpoint + strlen("tcp://");
    colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || colon[1] == '\0') {
        *err = xstrdup("not tcp://NAME:PORT");
        return NULL;
    }
    host = xasprintf("%.*s", (int)(colon - hostport), hostport);
    if (ip_literal(host)) {
        list_add(&out, endpoint);
    } else if (strcmp(host, "*") == 0) {
        *err = xstrdup("a wildcard address can be bound, not asked");
    } else if (strcmp(host, "localhost") == 0) {   /* RFC 6761: never looked up */
        list_add_address(&out, "127.0.0.1", colon + 1);
        list_add_address(&out, "::1", colon + 1);
    } else {
        out.item = lookup(cfg, resolver, host, colon + 1, err);
    }
    free(host);
    return out.item;
}

char **endpoints_expand(const config_t *cfg, const char *const *endpoints, char **err)
{
    list out = { 0 };
    dns_t *d = NULL;

    for (size_t i = 0; endpoints && endpoints[i]; i++) {
        char *why = NULL;
        char **one = endpoints_resolve(cfg, &d, endpoints[i], &why);

        if (one == NULL) {
            *err = xasprintf("%s: %s", endpoints[i], why);
            free(why);
            out.item = out.item ? out.item : xcalloc(1, sizeof(char *));
            endpoints_free(&out.item);
            dns_free(&d);
            return NULL;
        }
        for (char **p = one; *p; p++)
            list_add(&out, *p);
        endpoints_free(&one);
    }
    dns_free(&d);
    if (out.item == NULL)
        out.item = xcalloc(1, sizeof(char *));
    return out.item;
}
