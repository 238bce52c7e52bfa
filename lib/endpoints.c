/* endpoints.c - resolving configured ZeroMQ endpoints (see endpoints.h). */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "endpoints.h"
#include "log.h"
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

char *endpoints_join(const char *addr, const char *port)
{
    return strchr(addr, ':') ? xasprintf("tcp://[%s]:%s", addr, port)
                             : xasprintf("tcp://%s:%s", addr, port);
}

static void list_add_address(list *l, const char *addr, const char *port)
{
    char *ep = endpoints_join(addr, port);

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

int endpoints_name(const char *endpoint, char **host, char **port, char **err)
{
    const char *hostport, *colon;
    char *h;

    if (strncmp(endpoint, "tcp://", 6) != 0)
        return 0;
    hostport = endpoint + strlen("tcp://");
    colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || colon[1] == '\0') {
        *err = xstrdup("not tcp://NAME:PORT");
        return -1;
    }
    h = xasprintf("%.*s", (int)(colon - hostport), hostport);
    if (strcmp(h, "*") == 0) {
        free(h);
        *err = xstrdup("a wildcard address can be bound, not asked");
        return -1;
    }
    if (ip_literal(h) || strcmp(h, "localhost") == 0) {
        free(h);
        return 0;
    }
    *host = h;
    *port = xstrdup(colon + 1);
    return 1;
}

char *endpoints_bind_form(const char *endpoint)
{
    char *host = NULL, *port = NULL, *err = NULL, *out;

    if (endpoints_name(endpoint, &host, &port, &err) != 1) {
        free(err);
        return xstrdup(endpoint);
    }
    out = xasprintf("tcp://*:%s", port);
    free(host);
    free(port);
    return out;
}

/* ------------------------------------------------------------ own address */

/* addr_text - the address of sa in text form, or false for a loopback
 * one when no_loopback. */
static bool addr_text(const struct sockaddr *sa, bool no_loopback, char *out, size_t size)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        if (no_loopback && (ntohl(in->sin_addr.s_addr) >> 24) == 127)
            return false;
        return inet_ntop(AF_INET, &in->sin_addr, out, (socklen_t)size) != NULL;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_LINKLOCAL(&in6->sin6_addr)
            || (no_loopback && IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr)))
            return false;
        return inet_ntop(AF_INET6, &in6->sin6_addr, out, (socklen_t)size) != NULL;
    }
    return false;
}

/* route_source - the source address the kernel picks to reach peer
 * ("tcp://ADDR:PORT"). */
static bool route_source(const char *peer, char *out, size_t size)
{
    char *host;
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_flags = AI_NUMERICHOST }, *ai;
    struct sockaddr_storage me;
    socklen_t len = sizeof(me);
    const char *hp = peer + strlen("tcp://"), *colon = strrchr(hp, ':');
    bool ok = false;
    int fd;

    if (strncmp(peer, "tcp://", 6) != 0 || colon == NULL)
        return false;
    host = (*hp == '[') ? xasprintf("%.*s", (int)(colon - hp - 2), hp + 1)
                        : xasprintf("%.*s", (int)(colon - hp), hp);
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0) {
        free(host);
        return false;
    }
    fd = socket(ai->ai_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && connect(fd, ai->ai_addr, ai->ai_addrlen) == 0
        && getsockname(fd, (struct sockaddr *)&me, &len) == 0)
        ok = addr_text((struct sockaddr *)&me, false, out, size);
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    free(host);
    return ok;
}

/* hostname_address - the first non-loopback address gethostname() has. */
static bool hostname_address(char *out, size_t size)
{
    char name[256];
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
    bool ok = false;

    if (gethostname(name, sizeof(name)) != 0 || getaddrinfo(name, NULL, &hints, &res) != 0)
        return false;
    for (ai = res; ai && !ok; ai = ai->ai_next)
        ok = addr_text(ai->ai_addr, true, out, size);
    freeaddrinfo(res);
    return ok;
}

/* interface_address - the first non-loopback address of an interface that is up. */
static bool interface_address(char *out, size_t size)
{
    struct ifaddrs *ifs, *i;
    bool ok = false;

    if (getifaddrs(&ifs) != 0)
        return false;
    for (i = ifs; i && !ok; i = i->ifa_next)
        if (i->ifa_addr && (i->ifa_flags & IFF_UP) && !(i->ifa_flags & IFF_LOOPBACK))
            ok = addr_text(i->ifa_addr, true, out, size);
    freeifaddrs(ifs);
    return ok;
}

char *endpoints_advertise(const config_t *cfg, const char *endpoint, const char *advertise)
{
    const char *hp, *colon;
    char *host, own[INET6_ADDRSTRLEN] = "";
    bool named, wildcard;
    const char *how = NULL;
    char *out;

    if (advertise && *advertise)
        return xstrdup(advertise);
    if (strncmp(endpoint, "tcp://", 6) != 0)
        return xstrdup(endpoint);
    hp = endpoint + strlen("tcp://");
    if ((colon = strrchr(hp, ':')) == NULL)
        return xstrdup(endpoint);       /* malformed: the bind said so already */
    host = xasprintf("%.*s", (int)(colon - hp), hp);
    wildcard = strcmp(host, "*") == 0 || strcmp(host, "0.0.0.0") == 0
               || strcmp(host, "[::]") == 0;
    named = !wildcard && !ip_literal(host) && strcmp(host, "localhost") != 0;
    if (!named && !wildcard) {
        free(host);
        return xstrdup(endpoint);
    }
    if (named) {
        dns_t *d = NULL;
        char *err = NULL;
        char **peers = endpoints_resolve(cfg, &d, endpoint, &err);

        for (char **p = peers; p && *p && !how; p++)
            if (route_source(*p, own, sizeof(own)))
                how = "the route to";
        endpoints_free(&peers);
        dns_free(&d);
        free(err);
    }
    if (!how && hostname_address(own, sizeof(own)))
        how = "the host name of";
    if (!how && interface_address(own, sizeof(own)))
        how = "an interface of";
    if (!how) {
        snprintf(own, sizeof(own), "127.0.0.1");
        how = "no other address than loopback for";
    }
    out = endpoints_join(own, colon + 1);
    log_info("events: advertising %s (%s %s)", out, how, endpoint);
    free(host);
    return out;
}
