/* smtp_server.c - the ingress's event loop (see smtp_server.h).
 *
 * Sessions' sockets are edge-triggered: a connection remembers that it is
 * readable and reads until EAGAIN, except while its session waits for a
 * spool commit or has too much unsent output (then it resumes later).
 * Idle timeouts: connections sit in a list ordered by last activity, so
 * only its head is ever checked.  Connections closed during an iteration
 * are freed at its end, since a later event of the same batch may name
 * them; a connection whose message is still being committed lives on
 * (detached) until the spool hands the commit back.
 *
 * TLS: a connection's bytes go through tls_read/tls_write once its
 * handshake is done (after STARTTLS, or at once on a submissions
 * listener).  The handshake is driven by the same readiness events.
 * Sessions that wait for DNS, a password check or a delay are woken
 * through ig->resume (the ready list, run at the end of the iteration)
 * and ig->sleep_until (the sleepers list, in the epoll timeout).
 *
 * The submit socket (submit_server.c) shares the spool: its requests'
 * commits come back through the same eventfd, told apart by cookie.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include "admin.h"
#include "auth_pool.h"
#include "discovery.h"
#include "dns_cache.h"
#include "ingress_admin.h"
#include "hostport.h"
#include "log.h"
#include "pipeline.h"
#include "policy_client.h"
#include "smtp_server.h"
#include "smtp_session.h"
#include "spool.h"
#include "submit_server.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define MAX_EVENTS     256
#define READ_CHUNK     16384
#define OUT_HIGH       (256u << 10)  /* stop taking commands above this much unsent output */
#define ZMQ_BATCH      1000          /* frames per socket per iteration */
#define SHUTDOWN_WAIT_MS 30000       /* for commits in progress at SIGTERM */
#define SHUTDOWN_TICK_MS 100         /* the loop's wake-up while sessions finish */

enum { SRC_LISTEN, SRC_CONN, SRC_SPOOL, SRC_SIGNAL, SRC_ZMQ, SRC_DNS, SRC_AUTH, SRC_POLICY };

typedef struct src {
    int kind;
    int fd;
    int role;                       /* listeners: listener_role */
} src_t;

/* A connection's TLS, if any. */
enum { TLS_OFF, TLS_HANDSHAKE, TLS_ON };

typedef struct conn {
    src_t           src;            /* first: epoll data points here */
    buf_t           in, out;
    size_t          out_off;
    smtp_session_t *sess;
    struct conn    *prev, *next;    /* idle list, or graveyard */
    struct conn    *ready_next;     /* ready list: run at the end of the iteration */
    struct conn    *sleep_next;     /* sleeping list, by wake time */
    int64_t         last_active;
    int64_t         wake_at;
    tls_conn_t     *tls;
    int             tls_state;
    bool            implicit_tls;   /* submissions: greet after the handshake */
    bool            readable, writable_wanted_by_read, eof, dead, listed;
    bool            in_ready, sleeping;
} conn_t;

/* A socket of a resolver (ig->dns or ig->rbl_dns). */
typedef struct dns_src {
    src_t           src;
    dns_t         **dns;            /* whose */
    struct dns_src *next;
} dns_src_t;

/* The watch callback's context: which resolver reports. */
typedef struct dns_watcher {
    struct smtp_server *srv;
    dns_t             **dns;
} dns_watcher_t;

struct smtp_server {
    ingress_t *ig;
    int        epfd;
    src_t     *listeners;
    size_t     n_listeners;
    src_t      spool_src, signal_src, zmq_src[4], auth_src;
    src_t      discovery_src;       /* the classifiers' re-resolution (level-triggered) */
    dns_src_t *dns_srcs;
    dns_watcher_t dns_watchers[2];      /* ig->dns, ig->rbl_dns */
    conn_t    *idle_head, *idle_tail;   /* oldest activity first */
    conn_t    *graveyard;
    conn_t    *ready;                   /* sessions whose wait ended */
    conn_t    *sleepers;                /* sessions sleeping, soonest first */
    unsigned   n_conns, n_detached;
    bool       stopping;
    int64_t    stop_until;              /* SIGTERM: sessions may finish until then; 0 before */
    bool       zmq_more;                /* a drain stopped at ZMQ_BATCH */
    const void *policy_watched;         /* the policy client whose fds are in epoll */
    src_t     *policy_srcs;
};

/* watch - add fd to the epoll set. */
static void watch(smtp_server_t *srv, src_t *s, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = s };

    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, s->fd, &ev) < 0)
        log_fatal("epoll_ctl add fd %d: %s", s->fd, strerror(errno));
}

/* --- hooks the sessions call through ig */

static void on_resume(void *server, void *cookie)
{
    smtp_server_t *srv = server;
    conn_t *c = cookie;

    if (c->in_ready || c->dead)
        return;
    c->in_ready = true;
    c->ready_next = srv->ready;
    srv->ready = c;
}

static void sleepers_unlink(smtp_server_t *srv, conn_t *c)
{
    for (conn_t **pp = &srv->sleepers; *pp; pp = &(*pp)->sleep_next) {
        if (*pp == c) {
            *pp = c->sleep_next;
            break;
        }
    }
    c->sleeping = false;
}

static void on_sleep_until(void *server, void *cookie, int64_t at)
{
    smtp_server_t *srv = server;
    conn_t *c = cookie, **pp;

    if (c->sleeping)
        sleepers_unlink(srv, c);
    c->wake_at = at;
    for (pp = &srv->sleepers; *pp && (*pp)->wake_at <= at; pp = &(*pp)->sleep_next)
        ;
    c->sleep_next = *pp;
    *pp = c;
    c->sleeping = true;
}

/* dns_watch - the resolver opened, changed or is closing a socket. */
static void dns_watch(void *ctx, int fd, bool want_read, bool want_write)
{
    dns_watcher_t *w = ctx;
    smtp_server_t *srv = w->srv;
    dns_src_t *d;
    struct epoll_event ev = { 0 };

    for (d = srv->dns_srcs; d && d->src.fd != fd; d = d->next)
        ;
    if (!want_read && !want_write) {
        if (d) {
            epoll_ctl(srv->epfd, EPOLL_CTL_DEL, fd, NULL);
            d->src.fd = -1;         /* freed at the end of the iteration */
        }
        return;
    }
    ev.events = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0);
    if (d) {
        ev.data.ptr = &d->src;
        if (epoll_ctl(srv->epfd, EPOLL_CTL_MOD, fd, &ev) < 0)
            log_warn("epoll_ctl mod dns fd %d: %s", fd, strerror(errno));
        return;
    }
    d = xcalloc(1, sizeof(*d));
    d->src = (src_t){ SRC_DNS, fd, 0 };
    d->dns = w->dns;
    d->next = srv->dns_srcs;
    srv->dns_srcs = d;
    ev.data.ptr = &d->src;
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        log_warn("epoll_ctl add dns fd %d: %s", fd, strerror(errno));
}

static void free_dead_dns_srcs(smtp_server_t *srv)
{
    for (dns_src_t **pp = &srv->dns_srcs; *pp;) {
        dns_src_t *d = *pp;
        if (d->src.fd < 0) {
            *pp = d->next;
            xfree(&d);
        } else {
            pp = &d->next;
        }
    }
}

/* rbl_resolver - the DNS lists' resolver: one try per server, the servers
 * sharing rbl_timeout, so that a dead list costs at most that long. */
static void rbl_resolver(smtp_server_t *srv, const config_t *cfg)
{
    const char *const *servers = config_list(cfg, "rbl_dns_servers");
    int64_t timeout = config_time_ms(cfg, "rbl_timeout");
    size_t n = 0;
    char *err = NULL;

    while (servers[n])
        n++;
    if (n > 1)
        timeout = timeout / (int64_t)n > 100 ? timeout / (int64_t)n : 100;
    srv->ig->rbl_dns = dns_new(servers, timeout, 1, dns_watch, &srv->dns_watchers[1], &err);
    if (!srv->ig->rbl_dns)
        log_fatal("rbl_dns_servers: %s", err);
}

smtp_server_t *smtp_server_new(ingress_t *ig)
{
    smtp_server_t *srv = xcalloc(1, sizeof(*srv));
    const config_t *cfg = ig->st->cfg;
    char *err = NULL;

    srv->ig = ig;
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->epfd < 0)
        log_fatal("epoll_create1: %s", strerror(errno));
    srv->signal_src = (src_t){ SRC_SIGNAL, ig->st->signal_fd, 0 };
    watch(srv, &srv->signal_src, EPOLLIN);
    ig->server = srv;
    ig->resume = on_resume;
    ig->sleep_until = on_sleep_until;
    srv->dns_watchers[0] = (dns_watcher_t){ srv, &ig->dns };
    srv->dns_watchers[1] = (dns_watcher_t){ srv, &ig->rbl_dns };
    ig->dns = dns_new(config_list(cfg, "dns_servers"), config_time_ms(cfg, "dns_timeout"),
                      (int)config_int(cfg, "dns_tries"), dns_watch, &srv->dns_watchers[0], &err);
    if (!ig->dns)
        log_fatal("dns_servers: %s", err);
    rbl_resolver(srv, cfg);
    ig->dns_cache = dns_cache_new((size_t)config_int(cfg, "dns_cache_size"),
                                  (unsigned)(config_time_ms(cfg, "dns_cache_max_ttl") / 1000),
                                  (unsigned)(config_time_ms(cfg, "dns_negative_cache_ttl") / 1000));
    dns_set_cache(ig->dns, ig->dns_cache);
    dns_set_cache(ig->rbl_dns, ig->dns_cache);
    return srv;
}

void smtp_server_watch_pipeline(smtp_server_t *srv)
{
    ingress_t *ig = srv->ig;
    void *socks[4] = { ig->events, ig->admin, ig->push,
                       ig->submit ? submit_server_socket(ig->submit) : NULL };

    srv->spool_src = (src_t){ SRC_SPOOL, spool_fd(ig->spool), 0 };
    watch(srv, &srv->spool_src, EPOLLIN);
    srv->auth_src = (src_t){ SRC_AUTH, auth_pool_fd(ig->auth), 0 };
    watch(srv, &srv->auth_src, EPOLLIN);
    for (int i = 0; i < 4 && socks[i]; i++) {
        srv->zmq_src[i] = (src_t){ SRC_ZMQ, zmq_util_fd(socks[i]), 0 };
        watch(srv, &srv->zmq_src[i], EPOLLIN | EPOLLET);
    }
    if (ig->push_peers && discovery_fd(ig->push_peers) >= 0) {
        srv->discovery_src = (src_t){ SRC_ZMQ, discovery_fd(ig->push_peers), 0 };
        watch(srv, &srv->discovery_src, EPOLLIN);   /* discovery_tick in run_timers */
    }
}

/* listen_one - bind "host:port" or "[v6]:port". */
static int listen_one(const char *param, const char *spec)
{
    char host[256];
    const char *port;
    struct addrinfo hints, *res = NULL;
    int fd, one = 1, rc;

    if (!hostport_split(spec, host, sizeof(host), &port))
        log_fatal("%s: %s: expected host:port or [address]:port", param, spec);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    rc = getaddrinfo(host[0] && strcmp(host, "*") != 0 ? host : NULL, port, &hints, &res);
    if (rc != 0)
        log_fatal("%s: %s: %s", param, spec, gai_strerror(rc));
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        log_fatal("%s: %s: socket: %s", param, spec, strerror(errno));
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (res->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        log_fatal("%s: cannot bind %s: %s", param, spec, strerror(errno));
    if (listen(fd, 1024) < 0)
        log_fatal("%s: cannot listen on %s: %s", param, spec, strerror(errno));
    freeaddrinfo(res);
    return fd;
}

void smtp_server_listen(smtp_server_t *srv, listener_role role, const char *param,
                        const char *const *addrs)
{
    size_t n = 0;

    while (addrs[n])
        n++;
    srv->listeners = xrealloc(srv->listeners, (srv->n_listeners + n) * sizeof(*srv->listeners));
    for (size_t i = 0; i < n; i++) {
        src_t *l = &srv->listeners[srv->n_listeners + i];
        *l = (src_t){ SRC_LISTEN, listen_one(param, addrs[i]), (int)role };
        log_info("listening on %s (%s)", addrs[i], listener_role_names[role]);
    }
    /* the array moved: (re)register every listener with its new address */
    for (size_t i = 0; i < srv->n_listeners; i++) {
        struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &srv->listeners[i] };
        epoll_ctl(srv->epfd, EPOLL_CTL_MOD, srv->listeners[i].fd, &ev);
    }
    for (size_t i = srv->n_listeners; i < srv->n_listeners + n; i++)
        watch(srv, &srv->listeners[i], EPOLLIN);
    srv->n_listeners += n;
}

/* --- the idle list */
static void idle_unlink(smtp_server_t *srv, conn_t *c)
{
    if (!c->listed)
        return;
    if (c->prev)
        c->prev->next = c->next;
    else
        srv->idle_head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        srv->idle_tail = c->prev;
    c->prev = c->next = NULL;
    c->listed = false;
}

/* touch - c was active now: to the tail of the idle list. */
static void touch(smtp_server_t *srv, conn_t *c, int64_t now)
{
    c->last_active = now;
    if (srv->idle_tail == c)
        return;
    idle_unlink(srv, c);
    c->prev = srv->idle_tail;
    if (srv->idle_tail)
        srv->idle_tail->next = c;
    else
        srv->idle_head = c;
    srv->idle_tail = c;
    c->listed = true;
}

/* bury - free c at the end of this iteration. */
static void bury(smtp_server_t *srv, conn_t *c)
{
    c->next = srv->graveyard;
    srv->graveyard = c;
}

static void free_graveyard(smtp_server_t *srv)
{
    while (srv->graveyard) {
        conn_t *c = srv->graveyard;
        srv->graveyard = c->next;
        buf_free(&c->in);
        buf_free(&c->out);
        xfree(&c);
    }
}

/* conn_close - hang up; the session goes too unless its message is still
 * being committed (then the spool completion finishes it). */
static void conn_close(smtp_server_t *srv, conn_t *c)
{
    if (c->dead)
        return;
    c->dead = true;
    idle_unlink(srv, c);
    if (c->sleeping)
        sleepers_unlink(srv, c);
    if (c->tls) {
        if (c->tls_state == TLS_ON)
            tls_shutdown(c->tls);
        tls_conn_free(&c->tls);
    }
    close(c->src.fd);           /* also leaves the epoll set */
    c->src.fd = -1;
    srv->n_conns--;
    if (smtp_session_committing(c->sess)) {
        srv->n_detached++;
        return;
    }
    smtp_session_free(&c->sess);
    bury(srv, c);
}

/* conn_recv - read into buf: > 0 bytes, 0 at the end, -1 when it would
 * block, -2 on an error. */
static ssize_t conn_recv(conn_t *c, char *buf, size_t cap)
{
    ssize_t n;

    if (c->tls_state == TLS_ON) {
        size_t got = 0;
        switch (tls_read(c->tls, buf, cap, &got)) {
        case TLS_OK:
            return (ssize_t)got;
        case TLS_WANT_WRITE:
            c->writable_wanted_by_read = true;
            return -1;
        case TLS_WANT_READ:
            return -1;
        case TLS_CLOSED:
            return 0;
        case TLS_FAILED:
            log_info("TLS read error from %s: %s", "client", tls_error(c->tls));
            return -2;
        }
    }
    do {
        n = read(c->src.fd, buf, cap);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return errno == EAGAIN ? -1 : -2;
    return n;
}

/* flush - write what we can; false on a write error. */
static bool flush(conn_t *c)
{
    while (c->out_off < c->out.len) {
        const char *p = c->out.data + c->out_off;
        size_t len = c->out.len - c->out_off;
        ssize_t n;

        if (c->tls_state == TLS_ON) {
            size_t put = 0;
            switch (tls_write(c->tls, p, len, &put)) {
            case TLS_OK:
                c->out_off += put;
                continue;
            case TLS_WANT_READ:
            case TLS_WANT_WRITE:
                return true;        /* the next readiness event goes on */
            default:
                return false;
            }
        }
        n = send(c->src.fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            c->out_off += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && errno == EAGAIN) {
            return true;            /* EPOLLOUT (edge) tells us when to go on */
        } else {
            return false;
        }
    }
    c->out_off = 0;
    if (c->out.cap > OUT_HIGH)
        buf_free(&c->out);
    else
        buf_reset(&c->out);
    return true;
}

/* handshake - drive the TLS handshake; true once it is done. */
static bool handshake(smtp_server_t *srv, conn_t *c, int64_t now)
{
    switch (tls_handshake(c->tls)) {
    case TLS_OK:
        break;
    case TLS_WANT_READ:
    case TLS_WANT_WRITE:
        return false;
    default:
        smtp_session_tls_failed(c->sess, tls_error(c->tls));
        conn_close(srv, c);
        return false;
    }
    c->tls_state = TLS_ON;
    c->readable = true;                 /* records may already wait in OpenSSL */
    touch(srv, c, now);
    smtp_session_tls_started(c->sess, tls_protocol(c->tls), tls_cipher(c->tls),
                             tls_cipher_bits(c->tls));
    if (c->implicit_tls)
        smtp_session_start(c->sess);
    return true;
}

/* start_tls - the 220 to STARTTLS is sent: anything the client sent after
 * STARTTLS was sent before it could know TLS would start, so it is thrown
 * away (RFC 3207 section 6, the command injection of CVE-2011-0411). */
static void start_tls(smtp_server_t *srv, conn_t *c)
{
    if (c->in.len > 0) {
        log_warn("discarding %zu bytes the client sent after STARTTLS", c->in.len);
        buf_reset(&c->in);
    }
    c->tls = tls_conn_new(srv->ig->tls, c->src.fd, NULL);
    c->tls_state = TLS_HANDSHAKE;
}

/* conn_run - process buffered input, read more while allowed, write the
 * replies (all of a pipelined group in one write), hang up when done. */
static void conn_run(smtp_server_t *srv, conn_t *c, int64_t now)
{
    bool write_ok;

again:
    if (c->dead)
        return;
    if (c->tls_state == TLS_HANDSHAKE && !handshake(srv, c, now))
        return;
    for (;;) {
        ssize_t n;

        if (c->in.len && !smtp_session_waiting(c->sess) && !smtp_session_closing(c->sess)) {
            size_t used = smtp_session_input(c->sess, c->in.data, c->in.len);
            buf_consume(&c->in, used);
        }
        if (smtp_session_closing(c->sess) || smtp_session_waiting(c->sess))
            break;
        if (c->out.len - c->out_off > OUT_HIGH) {
            if (!flush(c) || c->out.len - c->out_off > OUT_HIGH)
                break;
        }
        if (!c->readable || c->eof)
            break;
        buf_reserve(&c->in, READ_CHUNK + 1);
        n = conn_recv(c, c->in.data + c->in.len, READ_CHUNK);
        if (n > 0) {
            c->in.len += (size_t)n;
            c->in.data[c->in.len] = '\0';
            touch(srv, c, now);
        } else if (n == 0 || n == -2) {
            c->eof = true;
        } else {
            c->readable = false;
        }
    }
    write_ok = flush(c);
    if (!write_ok) {
        smtp_session_lost(c->sess, "lost connection");
        conn_close(srv, c);
    } else if (smtp_session_closing(c->sess)) {
        if (c->out.len == 0)
            conn_close(srv, c);
    } else if (smtp_session_wants_tls(c->sess) && c->tls_state == TLS_OFF) {
        if (c->out.len == 0) {
            start_tls(srv, c);
            goto again;
        }
    } else if (c->eof && !smtp_session_committing(c->sess)) {
        smtp_session_lost(c->sess, "lost connection");
        conn_close(srv, c);
    }
}

/* accept_all - take every pending connection of listener l. */
static void accept_all(smtp_server_t *srv, const src_t *l, int64_t now)
{
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int one = 1;
        conn_t *c;

        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if (errno != EAGAIN)
                log_warn("accept: %s", strerror(errno));
            return;
        }
        if (srv->n_conns >= srv->ig->session_limit) {
            char msg[300];
            int len = snprintf(msg, sizeof(msg), "421 4.7.0 %s Error: too many connections\r\n",
                               srv->ig->hostname);
            log_warn("too many connections (%u); refusing one", srv->n_conns);
            if (l->role != ROLE_SUBMISSIONS
                && send(fd, msg, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
                log_debug("421 not sent: %s", strerror(errno));
            close(fd);
            continue;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = xcalloc(1, sizeof(*c));
        c->src = (src_t){ SRC_CONN, fd, l->role };
        buf_init(&c->in);
        buf_init(&c->out);
        c->sess = smtp_session_new(srv->ig, (listener_role)l->role, (struct sockaddr *)&peer,
                                   plen, &c->out, c);
        srv->n_conns++;
        touch(srv, c, now);
        watch(srv, &c->src, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET);
        c->readable = true;
        if (l->role == ROLE_SUBMISSIONS) {
            c->implicit_tls = true;
            c->tls = tls_conn_new(srv->ig->tls, fd, NULL);
            c->tls_state = TLS_HANDSHAKE;
        } else {
            smtp_session_start(c->sess);
        }
        conn_run(srv, c, now);
    }
}

/* commits_done - the spool writer finished a group commit: answer the
 * sessions (and the submit socket's callers), hand the envelopes to the
 * pipeline, resume those sessions. */
static void commits_done(smtp_server_t *srv, int64_t now)
{
    spool_done *d = spool_take_done(srv->ig->spool), *next;

    for (; d; d = next) {
        conn_t *c = d->cookie;

        next = d->next;
        if (submit_server_owns(srv->ig->submit, d->cookie)) {
            submit_server_committed(srv->ig->submit, d);
            spool_done_free(&d);
            continue;
        }
        smtp_session_committed(c->sess, d->rc);
        if (d->rc == 0) {
            pipeline_add(srv->ig->pipeline, d->qid, d->data, d->len);
            d->data = NULL;
        }
        spool_done_free(&d);
        if (c->dead) {
            srv->n_detached--;
            smtp_session_free(&c->sess);
            bury(srv, c);
        } else {
            conn_run(srv, c, now);
        }
    }
}

/* run_ready - sessions whose wait ended (DNS, AUTH, a delay). */
static void run_ready(smtp_server_t *srv, int64_t now)
{
    while (srv->ready) {
        conn_t *c = srv->ready;
        srv->ready = c->ready_next;
        c->in_ready = false;
        if (!c->dead) {
            touch(srv, c, now);
            conn_run(srv, c, now);
        }
    }
}

/* drain_zmq - receive while ZMQ_EVENTS says POLLIN (edge-triggered
 * ZMQ_FD), a batch at most per socket, then push out what waits. */
static void drain_zmq(smtp_server_t *srv)
{
    ingress_t *ig = srv->ig;
    int n;

    srv->zmq_more = false;
    for (n = 0; n < ZMQ_BATCH && zmq_util_readable(ig->events); n++) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, ig->events, ZMQ_DONTWAIT) < 0) {
            if (errno != EAGAIN)
                log_warn("events socket: %s", zmq_strerror(errno));
            zmq_msg_close(&m);
            break;
        }
        pipeline_event(ig->pipeline, zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
    }
    if (n == ZMQ_BATCH)
        srv->zmq_more = true;
    for (n = 0; n < ZMQ_BATCH && zmq_util_readable(ig->admin); n++)
        admin_serve(ig->admin, "ingress", ingress_admin_handle, ig);
    if (n == ZMQ_BATCH)
        srv->zmq_more = true;
    if (ig->submit && submit_server_drain(ig->submit, ZMQ_BATCH) == ZMQ_BATCH)
        srv->zmq_more = true;
    pipeline_flush(ig->pipeline);
}

/* watch_policy - the policy client's ZMQ_FDs in epoll (edge-triggered),
 * once it exists (a reload may turn a feature on); its replies and
 * timeouts are handled at the end of every iteration. */
static void watch_policy(smtp_server_t *srv)
{
    const int *fds;
    size_t n;

    if (srv->ig->policy_client == NULL || srv->policy_watched == srv->ig->policy_client)
        return;
    fds = policy_client_fds(srv->ig->policy_client, &n);
    xfree(&srv->policy_srcs);
    srv->policy_srcs = xcalloc(n, sizeof(*srv->policy_srcs));
    for (size_t i = 0; i < n; i++) {
        srv->policy_srcs[i] = (src_t){ SRC_POLICY, fds[i], 0 };
        watch(srv, &srv->policy_srcs[i], EPOLLIN | EPOLLET);
    }
    srv->policy_watched = srv->ig->policy_client;
}

/* run_timers - idle sessions, failure delays, DNS timeouts, overdue acks. */
static void run_timers(smtp_server_t *srv, int64_t now)
{
    while (srv->idle_head && srv->idle_head->last_active + srv->ig->timeout_ms <= now) {
        conn_t *c = srv->idle_head;
        if (smtp_session_committing(c->sess) || c->sleeping) {
            touch(srv, c, now);         /* the spool is slow, not the client */
            continue;
        }
        if (smtp_session_closing(c->sess) || c->tls_state == TLS_HANDSHAKE) {
            if (c->tls_state == TLS_HANDSHAKE)
                smtp_session_tls_failed(c->sess, "timeout during the handshake");
            conn_close(srv, c);         /* it does not read its last reply */
            continue;
        }
        smtp_session_timeout(c->sess);
        idle_unlink(srv, c);
        conn_run(srv, c, now);
        if (!c->dead)
            conn_close(srv, c);
    }
    while (srv->sleepers && srv->sleepers->wake_at <= now) {
        conn_t *c = srv->sleepers;
        srv->sleepers = c->sleep_next;
        c->sleeping = false;
        smtp_session_wake(c->sess);
    }
    if (dns_pending(srv->ig->dns) > 0)
        dns_process(srv->ig->dns, -1, false, false);
    if (dns_pending(srv->ig->rbl_dns) > 0)
        dns_process(srv->ig->rbl_dns, -1, false, false);
    pipeline_run_timers(srv->ig->pipeline, now);
    if (srv->ig->push_peers)
        discovery_tick(srv->ig->push_peers, now);
}

/* next_timeout - epoll_wait's timeout from the nearest deadline. */
static int next_timeout(const smtp_server_t *srv, int64_t now)
{
    int64_t next = pipeline_deadline(srv->ig->pipeline);
    int64_t dns = dns_timeout_ms(srv->ig->dns), rbl = dns_timeout_ms(srv->ig->rbl_dns);

    if (srv->zmq_more || srv->ready)
        return 0;
    if (srv->idle_head && srv->idle_head->last_active + srv->ig->timeout_ms < next)
        next = srv->idle_head->last_active + srv->ig->timeout_ms;
    if (srv->sleepers && srv->sleepers->wake_at < next)
        next = srv->sleepers->wake_at;
    if (dns >= 0 && now + dns < next)
        next = now + dns;
    if (rbl >= 0 && now + rbl < next)
        next = now + rbl;
    if (srv->ig->push_peers) {
        int64_t disc = discovery_timeout_ms(srv->ig->push_peers, now);
        if (disc >= 0 && now + disc < next)
            next = now + disc;
    }
    if (srv->ig->policy_client) {
        int64_t policy = policy_client_timeout_ms(srv->ig->policy_client);
        if (policy >= 0 && now + policy < next)
            next = now + policy;
    }
    if (next == INT64_MAX)
        return -1;
    if (next <= now)
        return 0;
    return next - now > 60000 ? 60000 : (int)(next - now);
}

static bool reconfigure(void *ig)
{
    return ingress_configure(ig);
}

static void handle_signals(smtp_server_t *srv)
{
    int sig = stage_take_signals(srv->ig->st);

    if (sig & STAGE_SIG_STOP)
        srv->stopping = true;
    if (sig & STAGE_SIG_RELOAD)         /* a bad file keeps the old configuration */
        stage_reload(srv->ig->st, reconfigure, srv->ig);
}

/* graceful_stop - after SIGTERM: the listeners close at once (new
 * connections are refused), a session idle between commands gets 421,
 * one in the middle of DATA (or waiting for DNS, a policy answer, its
 * commit) goes on to its reply, for shutdown_timeout at most; what is
 * spooled keeps going to the classifier meanwhile.  true once nothing is
 * left (or the time is up): the loop ends. */
static bool graceful_stop(smtp_server_t *srv, int64_t now)
{
    if (!srv->stopping && !stage_stopping())
        return false;
    if (srv->stop_until == 0) {
        int64_t t = config_time_ms(srv->ig->st->cfg, "shutdown_timeout");
        for (size_t i = 0; i < srv->n_listeners; i++)
            close(srv->listeners[i].fd);
        srv->n_listeners = 0;
        srv->stop_until = now + (t > 0 ? t : 1);
        log_info("stopping: listeners closed; %u session%s may finish within %lld ms",
                 srv->n_conns, srv->n_conns == 1 ? "" : "s", (long long)t);
    }
    for (conn_t *c = srv->idle_head, *next; c; c = next) {
        next = c->next;
        if (c->tls_state == TLS_HANDSHAKE || c->in.len > 0 || smtp_session_closing(c->sess)
            || smtp_session_waiting(c->sess) || smtp_session_committing(c->sess)
            || smtp_session_in_data(c->sess))
            continue;
        smtp_session_shutdown(c->sess);     /* 421 4.3.2 between commands */
        flush(c);
        conn_close(srv, c);
    }
    return (srv->n_conns == 0 && srv->n_detached == 0
            && submit_server_pending(srv->ig->submit) == 0)
           || now >= srv->stop_until;
}

/* shutdown_sessions - stop accepting, 421 to everyone, wait for the
 * commits in progress (sessions' and submissions') so no 250-worthy
 * message is left half done. */
static void shutdown_sessions(smtp_server_t *srv)
{
    int64_t until = time_mono_ms() + SHUTDOWN_WAIT_MS;

    for (size_t i = 0; i < srv->n_listeners; i++)
        close(srv->listeners[i].fd);
    srv->n_listeners = 0;
    while (srv->idle_head) {
        conn_t *c = srv->idle_head;
        if (!smtp_session_committing(c->sess) && c->tls_state != TLS_HANDSHAKE)
            smtp_session_shutdown(c->sess);
        flush(c);
        conn_close(srv, c);
    }
    while ((srv->n_detached > 0 || submit_server_pending(srv->ig->submit) > 0)
           && time_mono_ms() < until) {
        struct pollfd p = { .fd = spool_fd(srv->ig->spool), .events = POLLIN };
        if (poll(&p, 1, 1000) > 0)
            commits_done(srv, time_mono_ms());
    }
    free_graveyard(srv);
}

void smtp_server_run(smtp_server_t *srv)
{
    struct epoll_event evs[MAX_EVENTS];

    if (srv->n_listeners == 0)
        log_fatal("smtpd_listen, submission_listen, submissions_listen: no listener configured");
    drain_zmq(srv);
    while (!graceful_stop(srv, time_mono_ms())) {
        int64_t now = time_mono_ms();
        int timeout = next_timeout(srv, now);
        if (srv->stop_until && (timeout < 0 || timeout > SHUTDOWN_TICK_MS))
            timeout = SHUTDOWN_TICK_MS;     /* look at the sessions left again soon */
        int n = epoll_wait(srv->epfd, evs, MAX_EVENTS, timeout);

        if (n < 0 && errno != EINTR)
            log_fatal("epoll_wait: %s", strerror(errno));
        now = time_mono_ms();
        for (int i = 0; i < n; i++) {
            src_t *s = evs[i].data.ptr;
            switch (s->kind) {
            case SRC_LISTEN:
                accept_all(srv, s, now);
                break;
            case SRC_CONN: {
                conn_t *c = (conn_t *)s;
                if (evs[i].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
                    c->readable = true;
                if ((evs[i].events & EPOLLOUT) && c->writable_wanted_by_read) {
                    c->writable_wanted_by_read = false;
                    c->readable = true;
                }
                conn_run(srv, c, now);
                break;
            }
            case SRC_SPOOL:
                commits_done(srv, now);
                break;
            case SRC_SIGNAL:
                handle_signals(srv);
                break;
            case SRC_ZMQ:
            case SRC_POLICY:
                break;                  /* drained below, every iteration */
            case SRC_DNS:
                if (s->fd >= 0)
                    dns_process(*((dns_src_t *)s)->dns, s->fd,
                                evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP),
                                evs[i].events & EPOLLOUT);
                break;
            case SRC_AUTH:
                auth_pool_run(srv->ig->auth, smtp_session_auth_done);
                break;
            }
        }
        run_timers(srv, now);
        run_ready(srv, now);
        drain_zmq(srv);                 /* also sends what the timers queued */
        watch_policy(srv);
        if (srv->ig->policy_client)     /* replies, timeouts; after any request sent */
            policy_client_process(srv->ig->policy_client);
        free_graveyard(srv);
        free_dead_dns_srcs(srv);
    }
    log_info("stopping: %u session%s open", srv->n_conns, srv->n_conns == 1 ? "" : "s");
    shutdown_sessions(srv);
}

void smtp_server_free(smtp_server_t **srvp)
{
    smtp_server_t *srv = *srvp;

    if (!srv)
        return;
    for (size_t i = 0; i < srv->n_listeners; i++)
        close(srv->listeners[i].fd);
    xfree(&srv->listeners);
    xfree(&srv->policy_srcs);
    dns_free(&srv->ig->dns);
    dns_free(&srv->ig->rbl_dns);
    dns_cache_free(&srv->ig->dns_cache);
    for (dns_src_t *d = srv->dns_srcs, *next; d; d = next) {
        next = d->next;
        xfree(&d);
    }
    close(srv->epfd);
    xfree(srvp);
}
