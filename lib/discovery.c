/* discovery.c - keeping a producer connected to every replica behind a
 * name (see discovery.h).
 *
 * Why a resolver per discovery_t and an epoll fd rather than a resolver
 * thread: lib/dns.h is already asynchronous and loop-driven, the stages'
 * loops already sleep on a timeout, and an epoll fd folds however many
 * sockets c-ares opens into one descriptor that zmq_poll and epoll loops
 * alike can watch.  No thread, no lock, no hand-over of address sets: the
 * connects and disconnects happen in the thread that owns the ZeroMQ
 * socket, which libzmq requires anyway.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zmq.h>

#include "discovery.h"
#include "dns.h"
#include "endpoints.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define DISCOVERY_INTERVAL_MS   5000    /* without a configuration */
#define DISCOVERY_DNS_TIMEOUT   5000
#define DISCOVERY_DNS_TRIES     2
#define DISCOVERY_EPOLL_BATCH   8

/* A NULL-terminated set of endpoints. */
typedef struct addr_set {
    char  **item;
    size_t  n;
} addr_set;

struct discovery {
    char        *endpoint;
    char        *host, *port;       /* NULL: fixed, never looked up again */
    void        *sock;              /* NULL: report to cb only */
    char        *peer;
    discovery_cb cb;
    void        *ctx;
    addr_set     cur;
    dns_t       *dns;
    int          epfd;
    int64_t      interval_ms;
    int64_t      next_at;           /* monotonic ms of the next lookup */
    /* the lookup in progress */
    int          outstanding;       /* queries not yet answered */
    addr_set     got;
    char        *why;               /* the last query's failure */
    bool         failing;           /* logged that the name does not resolve */
};

static const char *const no_addrs[] = { NULL };

/* ------------------------------------------------------------ sets */

static bool set_has(const addr_set *s, const char *a)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->item[i], a) == 0)
            return true;
    return false;
}

/* set_add - take a (malloc'd) into s, or free it when s has it. */
static void set_add(addr_set *s, char *a)
{
    if (set_has(s, a)) {
        free(a);
        return;
    }
    s->item = xrealloc(s->item, (s->n + 2) * sizeof(*s->item));
    s->item[s->n++] = a;
    s->item[s->n] = NULL;
}

static void set_clear(addr_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->item[i]);
    xfree(&s->item);
    s->n = 0;
}

/* ------------------------------------------------------------ changes */

/* join - one address joins: connect it (or tell cb).  False when it
 * could not be connected (it stays out of the set, tried next time). */
static bool join(discovery_t *d, const char *addr)
{
    if (d->sock && zmq_util_connect_to(d->sock, addr, d->peer) != 0)
        return false;
    if (d->cb)
        d->cb(d->ctx, addr, true);
    return true;
}

static void leave(discovery_t *d, const char *addr)
{
    if (d->sock)
        zmq_util_disconnect(d->sock, addr);
    if (d->cb)
        d->cb(d->ctx, addr, false);
}

/* apply - the lookup is over: make d->got the current set. */
static void apply(discovery_t *d)
{
    addr_set next = { 0 };

    if (d->got.n == 0) {                /* keep the last good set */
        if (!d->failing)
            log_warn("discovery: %s: %s; keeping %zu address%s", d->endpoint,
                     d->why ? d->why : "no address", d->cur.n, d->cur.n == 1 ? "" : "es");
        d->failing = true;
        xfree(&d->why);
        return;
    }
    if (d->failing)
        log_info("discovery: %s resolves again", d->endpoint);
    d->failing = false;
    xfree(&d->why);
    for (size_t i = 0; i < d->cur.n; i++) {
        if (set_has(&d->got, d->cur.item[i])) {
            set_add(&next, xstrdup(d->cur.item[i]));
        } else {
            log_info("discovery: %s: %s left", d->endpoint, d->cur.item[i]);
            leave(d, d->cur.item[i]);
        }
    }
    for (size_t i = 0; i < d->got.n; i++) {
        if (set_has(&d->cur, d->got.item[i]))
            continue;
        if (join(d, d->got.item[i])) {
            log_info("discovery: %s: %s joined", d->endpoint, d->got.item[i]);
            set_add(&next, xstrdup(d->got.item[i]));
        }
    }
    set_clear(&d->cur);
    set_clear(&d->got);
    d->cur = next;
}

/* ------------------------------------------------------------ lookups */

static void on_answer(void *arg, const dns_reply *reply)
{
    discovery_t *d = arg;

    if (reply->status == DNS_OK) {
        for (size_t i = 0; i < reply->n; i++)
            set_add(&d->got, endpoints_join(reply->rr[i].text, d->port));
    } else {
        free(d->why);
        d->why = xasprintf("%s %s", reply->status == DNS_TEMPFAIL ? "cannot look up now:"
                                                                 : "no address:",
                           reply->error ? reply->error : "no answer");
    }
    if (--d->outstanding == 0)
        apply(d);
}

static void start_lookup(discovery_t *d, int64_t now)
{
    d->next_at = now + d->interval_ms;
    d->outstanding = 2;
    dns_query(d->dns, d->host, DNS_A, on_answer, d);
    dns_query(d->dns, d->host, DNS_AAAA, on_answer, d);
}

/* on_watch - c-ares wants fd watched (or not): mirror it in our epoll set. */
static void on_watch(void *ctx, int fd, bool want_read, bool want_write)
{
    discovery_t *d = ctx;
    struct epoll_event ev = { .events = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0),
                              .data.fd = fd };

    if (!want_read && !want_write) {
        if (epoll_ctl(d->epfd, EPOLL_CTL_DEL, fd, NULL) < 0 && errno != ENOENT)
            log_warn("discovery: epoll_ctl del %d: %m", fd);
        return;
    }
    if (epoll_ctl(d->epfd, EPOLL_CTL_MOD, fd, &ev) < 0
        && (errno != ENOENT || epoll_ctl(d->epfd, EPOLL_CTL_ADD, fd, &ev) < 0))
        log_warn("discovery: epoll_ctl %d: %m", fd);
}

/* ------------------------------------------------------------ life */

static discovery_t *make(void *sock, const char *endpoint, const char *peer,
                         const config_t *cfg, discovery_cb cb, void *ctx, char **err)
{
    discovery_t *d;
    char *host = NULL, *port = NULL;
    int kind = endpoints_name(endpoint, &host, &port, err);

    if (kind < 0)
        return NULL;
    d = xcalloc(1, sizeof(*d));
    d->endpoint = xstrdup(endpoint);
    d->sock = sock;
    d->peer = xstrdup(peer ? peer : "");
    d->cb = cb;
    d->ctx = ctx;
    d->epfd = -1;
    if (sock) {
        /* every socket kept here is a producer: ZMQ_IMMEDIATE, so nothing
         * queues for a replica that is not (or no longer) connected; the
         * caller keeps what cannot be sent (backpressure) */
        int one = 1;
        if (zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof(one)) != 0
            || zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0)
            log_panic("discovery_new: ZMQ_IPV6/ZMQ_IMMEDIATE: %s", zmq_strerror(zmq_errno()));
    }
    if (kind == 0) {                    /* fixed: connect once */
        dns_t *none = NULL;
        char **fixed = endpoints_resolve(cfg, &none, endpoint, err);

        if (fixed == NULL) {
            discovery_free(&d);
            return NULL;
        }
        for (char **p = fixed; *p; p++)
            if (join(d, *p))
                set_add(&d->cur, xstrdup(*p));
        endpoints_free(&fixed);
        return d;
    }
    d->host = host;
    d->port = port;
    d->interval_ms = cfg ? config_time_ms(cfg, "discovery_interval") : DISCOVERY_INTERVAL_MS;
    if ((d->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
        log_fatal("discovery: epoll_create1: %m (too many open files?)");
    d->dns = dns_new(cfg ? config_list(cfg, "dns_servers") : NULL,
                     cfg ? config_time_ms(cfg, "dns_timeout") : DISCOVERY_DNS_TIMEOUT,
                     cfg ? (int)config_int(cfg, "dns_tries") : DISCOVERY_DNS_TRIES,
                     on_watch, d, err);
    if (d->dns == NULL) {
        discovery_free(&d);
        return NULL;
    }
    start_lookup(d, time_mono_ms());
    dns_wait(d->dns);                   /* the first set, before the loop runs */
    return d;
}

discovery_t *discovery_new(void *sock, const char *endpoint, const char *peer,
                           const config_t *cfg)
{
    char *err = NULL;
    discovery_t *d = make(sock, endpoint, peer, cfg, NULL, NULL, &err);

    if (d == NULL)
        log_fatal("cannot connect to %s: %s (check the *_endpoint parameters)", endpoint, err);
    return d;
}

discovery_t *discovery_watch(const char *endpoint, const config_t *cfg, discovery_cb cb,
                             void *ctx, char **err)
{
    return make(NULL, endpoint, NULL, cfg, cb, ctx, err);
}

void discovery_free(discovery_t **dp)
{
    discovery_t *d = *dp;

    if (d == NULL)
        return;
    dns_free(&d->dns);                  /* no callback runs any more */
    if (d->epfd >= 0)
        close(d->epfd);
    set_clear(&d->cur);
    set_clear(&d->got);
    xfree(&d->why);
    xfree(&d->endpoint);
    xfree(&d->host);
    xfree(&d->port);
    xfree(&d->peer);
    xfree(dp);
}

/* ------------------------------------------------------------ the loop */

int discovery_fd(const discovery_t *d)
{
    return d->epfd;
}

int64_t discovery_timeout_ms(const discovery_t *d, int64_t now)
{
    if (d->host == NULL)
        return -1;
    if (d->outstanding > 0) {
        int64_t t = dns_timeout_ms(d->dns);
        return t < 0 ? 0 : t;
    }
    return d->next_at > now ? d->next_at - now : 0;
}

void discovery_tick(discovery_t *d, int64_t now)
{
    struct epoll_event evs[DISCOVERY_EPOLL_BATCH];
    int n;

    if (d->host == NULL)
        return;
    n = epoll_wait(d->epfd, evs, DISCOVERY_EPOLL_BATCH, 0);
    for (int i = 0; i < n; i++)
        dns_process(d->dns, evs[i].data.fd, evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP),
                    evs[i].events & EPOLLOUT);
    if (d->outstanding > 0 && dns_timeout_ms(d->dns) == 0)
        dns_process(d->dns, -1, false, false);
    if (d->outstanding == 0 && now >= d->next_at)
        start_lookup(d, now);
}

const char *const *discovery_addrs(const discovery_t *d, size_t *n)
{
    if (n)
        *n = d->cur.n;
    return d->cur.item ? (const char *const *)d->cur.item : no_addrs;
}

const char *discovery_endpoint(const discovery_t *d)
{
    return d->endpoint;
}
