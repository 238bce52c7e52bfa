/* myself.c - this host's addresses, for MX loop detection (see myself.h).
 *
 * Built once per configuration (outbound_settings_new), read only by the
 * outbound thread afterwards.  Interface addresses come from getifaddrs()
 * when a listener is a wildcard; nothing here resolves a name.
 */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "hostport.h"
#include "log.h"
#include "myself.h"
#include "xalloc.h"

typedef struct self_addr {
    int           family;       /* AF_INET or AF_INET6 */
    unsigned char addr[16];     /* 4 or 16 bytes used */
    unsigned      port;         /* 0: any port */
} self_addr;

struct myself {
    self_addr *a;
    size_t     n, cap;
};

/* Which wildcard a listener host is. */
enum { WILD_NONE = 0, WILD_V4 = 1, WILD_V6 = 2, WILD_ALL = 3 };

static void add(myself_t *m, int family, const void *addr, unsigned port)
{
    self_addr *e;

    for (size_t i = 0; i < m->n; i++)
        if (m->a[i].family == family && m->a[i].port == port
            && memcmp(m->a[i].addr, addr, family == AF_INET ? 4 : 16) == 0)
            return;
    if (m->n == m->cap) {
        m->cap = m->cap ? 2 * m->cap : 8;
        m->a = xrealloc(m->a, m->cap * sizeof *m->a);
    }
    e = &m->a[m->n++];
    memset(e, 0, sizeof *e);
    e->family = family;
    memcpy(e->addr, addr, family == AF_INET ? 4 : 16);
    e->port = port;
}

/* add_interfaces - every interface address of the families in wild. */
static void add_interfaces(myself_t *m, int wild, unsigned port)
{
    struct ifaddrs *list = NULL;

    if (getifaddrs(&list) != 0) {
        log_warn("getifaddrs: %m; mail loop detection knows only listed addresses");
        return;
    }
    for (struct ifaddrs *i = list; i != NULL; i = i->ifa_next) {
        const struct sockaddr *sa = i->ifa_addr;
        if (sa == NULL)
            continue;
        if (sa->sa_family == AF_INET && (wild & WILD_V4))
            add(m, AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, port);
        else if (sa->sa_family == AF_INET6 && (wild & WILD_V6))
            add(m, AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, port);
    }
    freeifaddrs(list);
}

/* add_host - one host of a listener or proxy item: an address, a
 * wildcard, "localhost"; false for a name this module cannot know. */
static bool add_host(myself_t *m, const char *host, unsigned port, bool listener)
{
    static const unsigned char lo4[4] = {127, 0, 0, 1};
    unsigned char a[16];

    if (listener && (host[0] == '\0' || strcmp(host, "*") == 0)) {
        add_interfaces(m, WILD_ALL, port);
    } else if (listener && strcmp(host, "0.0.0.0") == 0) {
        add_interfaces(m, WILD_V4, port);
    } else if (listener && strcmp(host, "::") == 0) {
        add_interfaces(m, WILD_V6, port);
    } else if (inet_pton(AF_INET, host, a) == 1) {
        add(m, AF_INET, a, port);
    } else if (inet_pton(AF_INET6, host, a) == 1) {
        add(m, AF_INET6, a, port);
    } else if (strcasecmp(host, "localhost") == 0) {
        add(m, AF_INET, lo4, port);
        add(m, AF_INET6, &in6addr_loopback, port);
    } else {
        return false;
    }
    return true;
}

/* split_listener - "host:port", "[v6]:port", ":port" into host and a
 * port number. */
static bool split_listener(const char *item, char *host, size_t size, unsigned *port)
{
    const char *p;
    char *end;
    unsigned long v;

    if (!hostport_split(item, host, size, &p) || *p < '0' || *p > '9')
        return false;
    v = strtoul(p, &end, 10);
    if (*end != '\0' || v == 0 || v > 65535)
        return false;
    *port = (unsigned)v;
    return true;
}

/* unbracket - "[addr]" or "addr" into host. */
static bool unbracket(const char *item, char *host, size_t size)
{
    size_t len = strlen(item);

    if (item[0] == '[') {
        if (len < 2 || item[len - 1] != ']')
            return false;
        item++;
        len -= 2;
    }
    if (len == 0 || len >= size)
        return false;
    memcpy(host, item, len);
    host[len] = '\0';
    return true;
}

myself_t *myself_new(const char *const *listen, const char *const *proxy, char **err)
{
    myself_t *m = xcalloc(1, sizeof *m);
    char host[256];
    unsigned port;

    for (size_t i = 0; listen != NULL && listen[i] != NULL; i++) {
        if (!split_listener(listen[i], host, sizeof host, &port)) {
            *err = xasprintf("smtpd_listen: %s: expected host:port or [address]:port", listen[i]);
            myself_free(&m);
            return NULL;
        }
        if (!add_host(m, host, port, true))
            log_warn("smtpd_listen: %s: a host name; mail loop detection sees only addresses",
                     listen[i]);
    }
    for (size_t i = 0; proxy != NULL && proxy[i] != NULL; i++) {
        if (!unbracket(proxy[i], host, sizeof host)) {
            *err = xasprintf("proxy_interfaces: %s: expected an address", proxy[i]);
            myself_free(&m);
            return NULL;
        }
        if (!add_host(m, host, 0, false)) {
            *err = xasprintf("proxy_interfaces: %s: not an IP address", proxy[i]);
            myself_free(&m);
            return NULL;
        }
    }
    return m;
}

void myself_free(myself_t **mp)
{
    myself_t *m = *mp;

    if (m == NULL)
        return;
    xfree(&m->a);
    xfree(mp);
}

/* match - is family/addr/port in the set? */
static bool match(const myself_t *m, int family, const unsigned char *addr, unsigned port)
{
    for (size_t i = 0; i < m->n; i++) {
        const self_addr *e = &m->a[i];
        if (e->family == family && (e->port == 0 || e->port == port)
            && memcmp(e->addr, addr, family == AF_INET ? 4 : 16) == 0)
            return true;
    }
    return false;
}

bool myself_has(const myself_t *m, const struct sockaddr *sa)
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)(const void *)sa;
        return match(m, AF_INET, (const unsigned char *)&s4->sin_addr, ntohs(s4->sin_port));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)(const void *)sa;
        const unsigned char *b = s6->sin6_addr.s6_addr;
        if (memcmp(b, mapped, sizeof mapped) == 0)
            return match(m, AF_INET, b + 12, ntohs(s6->sin6_port));
        return match(m, AF_INET6, b, ntohs(s6->sin6_port));
    }
    return false;
}

bool myself_has_text(const myself_t *m, const char *addr, unsigned port)
{
    struct sockaddr_in s4 = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6, .sin6_port = htons((uint16_t)port)};

    if (inet_pton(AF_INET, addr, &s4.sin_addr) == 1)
        return myself_has(m, (const struct sockaddr *)&s4);
    if (inet_pton(AF_INET6, addr, &s6.sin6_addr) == 1)
        return myself_has(m, (const struct sockaddr *)&s6);
    return false;
}

size_t myself_count(const myself_t *m)
{
    return m->n;
}
