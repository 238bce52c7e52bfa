/* policy_client.c - asking the routers' policy service (see
 * policy_client.h).
 *
 * Calls wait in one list in the order they were made, which is also the
 * order of their deadlines (one timeout for all).  A request that cannot
 * be sent yet (ZMQ_IMMEDIATE: its router is not connected, e.g. in the
 * moment after a router or this process started) keeps its frame and is
 * tried again every POLICY_RETRY_MS until its deadline, when it fails
 * like one that got no answer; callbacks run only in
 * policy_client_process.  Replies are few per session and the list is
 * short, so a reply finds its call by a walk over the list.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "endpoints.h"
#include "log.h"
#include "policy_client.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define POLICY_HWM 10000            /* requests queued per router */
#define POLICY_DRAIN_MAX 1000       /* replies read per socket per process call */
#define POLICY_RETRY_MS 20          /* try an unsent request again this often */

typedef struct node {
    char *endpoint;
    void *sock;
} node;

struct policy_call {
    policy_client_t *c;
    uint64_t     id;
    int64_t      deadline;          /* monotonic ms */
    uint8_t     *unsent;            /* the request, while it could not be sent */
    size_t       unsent_len;
    void        *sock;              /* its router's socket */
    policy_cb    cb;
    void        *arg;
    policy_call_t *prev, *next;
};

struct policy_client {
    node        *node;
    size_t       n;
    const char **names;             /* node[i].endpoint, for policy_rendezvous */
    int         *fds;
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

/* ------------------------------------------------------------ life */

policy_client_t *policy_client_new(void *zctx, const config_t *cfg,
                                   const char *const *endpoints, int64_t timeout_ms,
                                   char **err)
{
    char **addrs = endpoints_expand(cfg, endpoints, err);
    policy_client_t *c;
    size_t n = 0;

    if (addrs == NULL)
        return NULL;
    while (addrs[n])
        n++;
    if (n == 0) {
        endpoints_free(&addrs);
        *err = xstrdup("no endpoint");
        return NULL;
    }
    c = xcalloc(1, sizeof(*c));
    c->node = xcalloc(n, sizeof(*c->node));
    c->names = xcalloc(n, sizeof(*c->names));
    c->fds = xcalloc(n, sizeof(*c->fds));
    c->timeout_ms = timeout_ms;
    c->next_id = 1;
    for (size_t i = 0; i < n; i++) {
        node *nd = &c->node[c->n];
        int one = 1;

        nd->endpoint = addrs[i];
        addrs[i] = NULL;
        nd->sock = zmq_util_socket(zctx, ZMQ_DEALER, POLICY_HWM);
        if (zmq_setsockopt(nd->sock, ZMQ_IMMEDIATE, &one, sizeof(one)) != 0
            || zmq_setsockopt(nd->sock, ZMQ_IPV6, &one, sizeof(one)) != 0
            || zmq_connect(nd->sock, nd->endpoint) != 0) {
            *err = xasprintf("%s: cannot connect: %s", nd->endpoint, zmq_strerror(zmq_errno()));
            zmq_close(nd->sock);
            xfree(&nd->endpoint);
            for (size_t j = i + 1; j < n; j++)
                xfree(&addrs[j]);
            xfree(&addrs);
            policy_client_free(&c);
            return NULL;
        }
        c->names[c->n] = nd->endpoint;
        c->fds[c->n] = zmq_util_fd(nd->sock);
        c->n++;
    }
    xfree(&addrs);
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
        xfree(&call->unsent);
        xfree(&call);
    }
    for (size_t i = 0; i < c->n; i++) {
        zmq_close(c->node[i].sock);
        xfree(&c->node[i].endpoint);
    }
    xfree(&c->node);
    xfree(&c->names);
    xfree(&c->fds);
    xfree(cp);
}

const int *policy_client_fds(const policy_client_t *c, size_t *n)
{
    *n = c->n;
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
    void *sock = c->node[policy_rendezvous(c->names, c->n, req->key ? req->key : "")].sock;
    policy_call_t *call;
    uint8_t *data;
    size_t len;
    bool sent;

    req->version = WIRE_VERSION;
    req->id = c->next_id++;
    data = wire_pack_policy_request(req, &len);
    sent = send_frames(sock, data, len);
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
    call->sock = sock;
    call->deadline = time_mono_ms() + c->timeout_ms;
    if (sent) {
        xfree(&data);
    } else {
        call->unsent = data;
        call->unsent_len = len;
    }
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
    xfree(&(*call)->unsent);
    xfree(call);
}

/* ------------------------------------------------------------ answers */

/* finish - run call's callback with reply (NULL: failed) and free it. */
static void finish(policy_call_t *call, const PolicyReply *reply)
{
    call_unlink(call);
    xfree(&call->unsent);
    call->cb(call->arg, reply);
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

void policy_client_process(policy_client_t *c)
{
    uint64_t first_new = c->next_id;    /* calls made by callbacks wait for the next round */
    int64_t now;

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
        if (call->unsent)
            log_debug("policy: request %llu not sent: no router reachable",
                      (unsigned long long)call->id);
        finish(call, NULL);
    }
    for (policy_call_t *call = c->head; call; call = call->next) {  /* routers back? */
        if (call->unsent && send_frames(call->sock, call->unsent, call->unsent_len))
            xfree(&call->unsent);
    }
}

int64_t policy_client_timeout_ms(const policy_client_t *c)
{
    int64_t left;

    if (c->head == NULL)
        return -1;
    left = c->head->deadline - time_mono_ms();
    for (const policy_call_t *call = c->head; call; call = call->next)
        if (call->unsent && left > POLICY_RETRY_MS)
            left = POLICY_RETRY_MS;
    return left < 0 ? 0 : left;
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
