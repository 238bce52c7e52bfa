/* policy_client.c - asking the routers' policy service (see
 * policy_client.h).
 *
 * Calls wait in one list in the order they were made, which is also the
 * order of their deadlines (one timeout for all).  A request that cannot
 * be sent yet (ZMQ_IMMEDIATE: its router is not connected, e.g. in the
 * moment after a router or this process started) keeps its frame and is
 * tried again every POLICY_RETRY_MS; after POLICY_FAILOVER_MS it goes to
 * the next router of the key's ranking that is connected, and at its
 * deadline it fails like one that got no answer; callbacks run only in
 * policy_client_process.  Replies are few per session and the list is
 * short, so a reply finds its call by a walk over the list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>
#include <zmq.h>

#include "discovery.h"
#include "log.h"
#include "policy_client.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define POLICY_HWM 10000            /* requests queued per router */
#define POLICY_DRAIN_MAX 1000       /* replies read per socket per process call */
#define POLICY_RETRY_MS 20          /* try an unsent request again this often */
#define POLICY_FAILOVER_MS 1000     /* then the next router in the key's ranking */

typedef struct node {
    char *endpoint;
    void *sock;
    int   fd;                       /* its ZMQ_FD, in the client's epoll set */
} node;

struct policy_call {
    policy_client_t *c;
    uint64_t     id;
    int64_t      deadline;          /* monotonic ms */
    int64_t      asked;             /* monotonic ms */
    char        *key;               /* to find the owner again when routers change */
    uint8_t     *data;              /* the request, kept until answered */
    size_t       len;
    void        *sock;              /* the router it went to; NULL: not sent */
    policy_cb    cb;
    void        *arg;
    policy_call_t *prev, *next;
};

struct policy_client {
    void        *zctx;
    node        *node;
    size_t       n, cap;
    const char **names;             /* node[i].endpoint, for policy_rendezvous */
    discovery_t **watch;            /* one per configured endpoint */
    size_t       n_watch;
    int          epfd;              /* every node's ZMQ_FD and every watch's fd */
    int          fds[1];            /* policy_client_fds: epfd */
    int64_t      timeout_ms;
    uint64_t     next_id;
    policy_call_t *head, *tail;
};

/* ------------------------------------------------------------ hashing */

/* hash64 - FNV-1a of node, NUL, key, then splitmix64's finaliser so that
 * nearby inputs land far apart. */
static uint64_t hash64(const char *node_name, const char *key)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (const unsigned char *p = (const unsigned char *)node_name; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h = (h ^ 0) * 0x100000001b3ULL;
    for (const unsigned char *p = (const unsigned char *)key; *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return h;
}

uint64_t policy_rendezvous_score(const char *node_name, const char *key)
{
    return hash64(node_name, key);
}

size_t policy_rendezvous(const char *const *nodes, size_t n, const char *key)
{
    size_t best = 0;
    uint64_t best_h = 0;

    for (size_t i = 0; i < n; i++) {
        uint64_t h = hash64(nodes[i], key);

        /* ties (practically impossible): the smaller name, so every
         * process picks the same node */
        if (i == 0 || h > best_h || (h == best_h && strcmp(nodes[i], nodes[best]) < 0)) {
            best = i;
            best_h = h;
        }
    }
    return best;
}

const char *policy_client_owner(const policy_client_t *c, const char *key)
{
    return c->n ? c->names[policy_rendezvous(c->names, c->n, key)] : "";
}

/* owner_sock - the socket of the router that owns key now; NULL when no
 * router is known. */
static void *owner_sock(const policy_client_t *c, const char *key)
{
    return c->n ? c->node[policy_rendezvous(c->names, c->n, key ? key : "")].sock : NULL;
}

/* ------------------------------------------------------------ life */

/* epoll_watch - fd into (add) or out of the client's epoll set. */
static void epoll_watch(policy_client_t *c, int fd, bool add)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};

    if (fd < 0)
        return;
    if (epoll_ctl(c->epfd, add ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, fd, &ev) != 0)
        log_warn("policy: epoll_ctl: %s", strerror(errno));
}

/* node_add - a router address joined: one DEALER for it. */
static void node_add(policy_client_t *c, const char *addr)
{
    int one = 1;
    void *sock = zmq_util_socket(c->zctx, ZMQ_DEALER, POLICY_HWM);

    if (zmq_setsockopt(sock, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0
        || zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof(one)) != 0
        || zmq_util_connect_to(sock, addr, "router") != 0) {
        log_warn("policy: %s: cannot connect: %s", addr, zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return;
    }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 4;
        c->node = xrealloc(c->node, c->cap * sizeof(*c->node));
        c->names = xrealloc(c->names, c->cap * sizeof(*c->names));
    }
    node *nd = &c->node[c->n];
    nd->endpoint = xstrdup(addr);
    nd->sock = sock;
    nd->fd = zmq_util_fd(sock);
    c->names[c->n] = nd->endpoint;
    c->n++;
    epoll_watch(c, nd->fd, true);
}

/* node_remove - a router address left: its unanswered requests go to
 * the keys' new owners (the old one will not answer). */
static void node_remove(policy_client_t *c, const char *addr)
{
    size_t i;

    for (i = 0; i < c->n && strcmp(c->node[i].endpoint, addr) != 0; i++)
        ;
    if (i == c->n)
        return;
    for (policy_call_t *call = c->head; call; call = call->next)
        if (call->sock == c->node[i].sock)
            call->sock = NULL;          /* sent again by policy_client_process */
    epoll_watch(c, c->node[i].fd, false);
    zmq_close(c->node[i].sock);
    xfree(&c->node[i].endpoint);
    c->n--;
    c->node[i] = c->node[c->n];
    for (size_t k = 0; k < c->n; k++)
        c->names[k] = c->node[k].endpoint;
}

/* on_change - discovery's callback: the router set changed, and with it
 * the owner of some keys (rendezvous hashing moves only those). */
static void on_change(void *ctx, const char *addr, bool added)
{
    policy_client_t *c = ctx;

    log_info("policy: router %s %s", addr, added ? "joined" : "left");
    if (added)
        node_add(c, addr);
    else
        node_remove(c, addr);
}

policy_client_t *policy_client_new(void *zctx, const config_t *cfg,
                                   const char *const *endpoints, int64_t timeout_ms,
                                   char **err)
{
    policy_client_t *c;
    size_t n = 0;

    while (endpoints && endpoints[n])
        n++;
    if (n == 0) {
        *err = xstrdup("no endpoint");
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    c->zctx = zctx;
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    if ((c->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
        *err = xasprintf("epoll_create1: %s", strerror(errno));
        xfree(&c);
        return NULL;
    }
    c->fds[0] = c->epfd;
    c->watch = xcalloc(n, sizeof(*c->watch));
    for (size_t i = 0; i < n; i++) {
        /* the first set is reported from here, through on_change */
        c->watch[i] = discovery_watch(endpoints[i], cfg, on_change, c, err);
        if (c->watch[i] == NULL) {
            policy_client_free(&c);
            return NULL;
        }
        c->n_watch++;
        epoll_watch(c, discovery_fd(c->watch[i]), true);
    }
    return c;
}

static void call_unlink(policy_call_t *call)
{
    policy_client_t *c = call->c;

    if (call->prev)
        call->prev->next = call->next;
    else
        c->head = call->next;
    if (call->next)
        call->next->prev = call->prev;
    else
        c->tail = call->prev;
    call->prev = call->next = NULL;
}

void policy_client_free(policy_client_t **cp)
{
    policy_client_t *c = *cp;

    if (c == NULL)
        return;
    while (c->head) {                   /* nobody waits any more */
        policy_call_t *call = c->head;
        call_unlink(call);
        xfree(&call->key);
        xfree(&call->data);
        xfree(&call);
    }
    for (size_t i = 0; i < c->n_watch; i++)
        discovery_free(&c->watch[i]);
    xfree(&c->watch);
    for (size_t i = 0; i < c->n; i++) {
        zmq_close(c->node[i].sock);
        xfree(&c->node[i].endpoint);
    }
    xfree(&c->node);
    xfree(&c->names);
    close(c->epfd);
    xfree(cp);
}

const int *policy_client_fds(const policy_client_t *c, size_t *n)
{
    *n = 1;
    return c->fds;
}

/* ------------------------------------------------------------ asking */

/* send_frames - [empty][data] on sock; false when it cannot be sent now
 * (no router connected, HWM reached).  A DEALER takes both frames or
 * neither (atomic multipart). */
static bool send_frames(void *sock, const uint8_t *data, size_t len)
{
    return zmq_send(sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) == 0
           && zmq_send(sock, data, len, ZMQ_DONTWAIT) == (int)len;
}

policy_call_t *policy_client_ask(policy_client_t *c, PolicyRequest *req, policy_cb cb,
                                 void *arg)
{
    void *sock = owner_sock(c, req->key);
    policy_call_t *call;
    uint8_t *data;
    size_t len;
    bool sent;

    req->version = WIRE_VERSION;
    req->id = c->next_id++;
    data = wire_pack_policy_request(req, &len);
    sent = sock && send_frames(sock, data, len);
    if (req->no_reply) {
        if (!sent)
            log_debug("policy: %s: not sent (no router reachable)", req->key);
        xfree(&data);
        return NULL;
    }
    call = xcalloc(1, sizeof(*call));
    call->c = c;
    call->id = req->id;
    call->cb = cb;
    call->arg = arg;
    call->key = xstrdup(req->key ? req->key : "");
    call->data = data;
    call->len = len;
    call->sock = sent ? sock : NULL;
    call->asked = time_mono_ms();
    call->deadline = call->asked + c->timeout_ms;
    call->prev = c->tail;
    if (c->tail)
        c->tail->next = call;
    else
        c->head = call;
    c->tail = call;
    return call;
}

void policy_call_abandon(policy_call_t **call)
{
    if (*call == NULL)
        return;
    call_unlink(*call);
    xfree(&(*call)->key);
    xfree(&(*call)->data);
    xfree(call);
}

/* ------------------------------------------------------------ answers */

/* finish - run call's callback with reply (NULL: failed) and free it. */
static void finish(policy_call_t *call, const PolicyReply *reply)
{
    call_unlink(call);
    call->cb(call->arg, reply);
    xfree(&call->key);
    xfree(&call->data);
    xfree(&call);
}

/* take_reply - one [empty][reply] message from sock: run its call. */
static bool take_reply(policy_client_t *c, node *nd)
{
    zmq_msg_t part[2];
    int n = 0, more = 1;
    bool got = false;

    while (more) {
        zmq_msg_t m;

        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, nd->sock, ZMQ_DONTWAIT) < 0) {
            if (zmq_errno() != EAGAIN)
                log_warn("policy: %s: receive: %s", nd->endpoint, zmq_strerror(zmq_errno()));
            zmq_msg_close(&m);
            break;
        }
        got = true;
        more = zmq_msg_more(&m);
        if (n < 2)
            part[n] = m;
        else
            zmq_msg_close(&m);
        n++;
    }
    if (n == 2 && zmq_msg_size(&part[0]) == 0) {
        PolicyReply *r = wire_unpack_policy_reply(zmq_msg_data(&part[1]), zmq_msg_size(&part[1]),
                                                  nd->endpoint);
        policy_call_t *call = c->head;

        while (r && call && call->id != r->id)
            call = call->next;
        if (r && call)
            finish(call, r);
        else if (r)
            log_debug("policy: %s: reply %llu came too late", nd->endpoint,
                      (unsigned long long)r->id);
        wire_free_policy_reply(&r);
    } else if (n > 0) {
        log_warn("policy: %s: dropped a reply of %d frame%s", nd->endpoint, n,
                 n == 1 ? "" : "s");
    }
    for (int i = 0; i < n && i < 2; i++)
        zmq_msg_close(&part[i]);
    return got;
}

/* send_failover - the key's owner has been unreachable (not connected:
 * ZMQ_IMMEDIATE refuses) for POLICY_FAILOVER_MS: ask the next router of
 * the key's rendezvous ranking that takes it (the first round is the
 * owner itself, already tried).  Availability over
 * consistency: that router decides from its own state (a greylisted
 * triplet may wait once more), which beats a 4xx for every key of a dead
 * router until DNS drops it.  Returns the socket it went to, or NULL. */
static void *send_failover(policy_client_t *c, const policy_call_t *call)
{
    bool *tried = xcalloc(c->n ? c->n : 1, sizeof(*tried));
    void *sent = NULL;

    for (size_t round = 0; round < c->n && !sent; round++) {
        size_t best = c->n;
        uint64_t best_h = 0;

        for (size_t i = 0; i < c->n; i++) {     /* the next in the ranking */
            uint64_t h;

            if (tried[i])
                continue;
            h = policy_rendezvous_score(c->names[i], call->key);
            if (best == c->n || h > best_h) {
                best = i;
                best_h = h;
            }
        }
        tried[best] = true;
        if (round > 0 && send_frames(c->node[best].sock, call->data, call->len)) {
            log_debug("policy: %s: owner unreachable, asked %s", call->key, c->names[best]);
            sent = c->node[best].sock;
        }
    }
    xfree(&tried);
    return sent;
}

void policy_client_process(policy_client_t *c)
{
    uint64_t first_new = c->next_id;    /* calls made by callbacks wait for the next round */
    int64_t now = time_mono_ms();

    /* the epoll set needs no reading: what made it ready (a router's
     * ZMQ_FD, a resolver's socket) is consumed by the calls below */
    for (size_t i = 0; i < c->n_watch; i++)     /* routers joined or left */
        discovery_tick(c->watch[i], now);
    for (size_t i = 0; i < c->n; i++)
        for (int k = 0; k < POLICY_DRAIN_MAX && zmq_util_readable(c->node[i].sock); k++)
            if (!take_reply(c, &c->node[i]))
                break;
    now = time_mono_ms();
    for (;;) {
        policy_call_t *call = c->head;

        while (call && call->id >= first_new)
            call = call->next;
        if (call == NULL || call->deadline > now)
            break;
        if (call->sock == NULL)
            log_debug("policy: request %llu not sent: no router reachable",
                      (unsigned long long)call->id);
        finish(call, NULL);
    }
    for (policy_call_t *call = c->head; call; call = call->next) {  /* routers back? */
        void *sock = call->sock ? NULL : owner_sock(c, call->key);
        if (sock && send_frames(sock, call->data, call->len))
            call->sock = sock;
        else if (sock && now - call->asked >= POLICY_FAILOVER_MS)
            call->sock = send_failover(c, call);
    }
}

int64_t policy_client_timeout_ms(const policy_client_t *c)
{
    int64_t now = time_mono_ms(), left = -1;

    for (size_t i = 0; i < c->n_watch; i++) {
        int64_t t = discovery_timeout_ms(c->watch[i], now);
        if (t >= 0 && (left < 0 || t < left))
            left = t;
    }
    if (c->head == NULL)
        return left;
    int64_t call_left = c->head->deadline - now;
    for (const policy_call_t *call = c->head; call; call = call->next)
        if (call->sock == NULL && call_left > POLICY_RETRY_MS)
            call_left = POLICY_RETRY_MS;
    if (call_left < 0)
        call_left = 0;
    return left < 0 || call_left < left ? call_left : left;
}

/* ---------------------------------------------------------------- clock */

/* clock_offset - the whole seconds in the CORREIO_TEST_CLOCK file (read
 * every time: tests rewrite it with values of the same length, which an
 * mtime check could miss). */
static int64_t clock_offset(void)
{
    const char *path = getenv("CORREIO_TEST_CLOCK");
    char buf[32];
    ssize_t n;
    int fd;

    if (path == NULL || *path == 0)
        return 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    return strtoll(buf, NULL, 10);
}

int64_t policy_clock_now(void)
{
    return (int64_t)time_now_us() + clock_offset() * INT64_C(1000000);
}
