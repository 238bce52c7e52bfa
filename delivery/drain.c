/* drain.c - `correio drain`: a delivery node that is about to be scaled
 * down hands every envelope of its queue to its peer delivery nodes, and
 * a node takes what a draining peer hands it.
 *
 * "A 250 is a promise" holds across the hand-over: an envelope leaves
 * this queue (to "done") only after a peer answered that it stored it
 * with its own LMDB commit (fsync).  The channel is the peers' admin
 * socket (REQ -> REP, "drain-take"), not their PULL input: the input has
 * no reply path (its acks go to the ingress in the envelope's origin),
 * and every delivery node already answers on delivery_admin_endpoint,
 * which `correio queue` finds through queue_admin_endpoints (tcp://NAME:
 * PORT: every address of NAME).  Those endpoints are watched here
 * (lib/discovery.h); this node is told from its peers by asking each one
 * "ping": the answer that is this process's own ("delivery HOST pid=N")
 * is this node.
 *
 * While draining (from the first "drain" request until the process
 * stops):
 *   - the input is closed (main.c, scheduler_draining): the router's
 *     PUSH, which sets ZMQ_IMMEDIATE, sends to the other replicas; frames
 *     already in flight here are dropped unacknowledged, so their
 *     ingress sends them again (pipeline_ack_timeout).  The operator
 *     should still take the node out of the service's name first (a
 *     Kubernetes preStop hook runs while the pod is out of the headless
 *     Service already), or the router keeps trying to connect to it;
 *   - no new attempt starts; attempts under way finish and are recorded;
 *   - every envelope with a recipient still to do (pending, deferred or
 *     quarantined; held ones too) and no attempt under way goes to a
 *     peer, with its recipients' states: delivered and failed recipients
 *     are not tried again, the peer tries the others at once, keeps
 *     hold and quarantine; the origin is kept, and the peer sends OWNED
 *     to it once more (harmless when it was acked already, and it spares
 *     a resend when this node's ack was lost);
 *   - an envelope whose recipients are all final but whose notices (a
 *     bounce, a success report) are still due stays here until notices.c
 *     has handed them to an ingress, then it finishes as usual.
 *
 * De-duplication: the ingress's resends are de-duplicated against
 * "envelopes" and "done" (duplicate_retention_time), but a hand-over is
 * never a duplicate of something finished: the peer takes it unless the
 * very id is in its "envelopes" (then it owns a copy already, and says
 * so).  A node that drained into a peer and came back with its volume
 * can thus take the same ids back.  A peer that is draining itself
 * refuses ("drain-take" status 1), and so does one whose commit fails;
 * then the next peer is asked.  A lost answer after the peer's commit
 * means two copies (delivery is at-least-once): never none. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
#include "admin.h"
#include "base64.h"
#include "buf.h"
#include "discovery.h"
#include "log.h"
#include "qid.h"
#include "scheduler_int.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define DRAIN_BATCH        32                /* envelopes per drain-take */
#define DRAIN_BATCH_BYTES  (8u << 20)        /* packed bytes per drain-take (one may be more) */
#define DRAIN_SCAN         512               /* records looked at per batch search */
#define DRAIN_TAKE_MAX     256               /* envelopes a drain-take may carry */
#define DRAIN_TAKE_MS      30000             /* a peer's answer to drain-take */
#define DRAIN_PING_MS      3000              /* a peer's answer to ping */
#define DRAIN_RETRY_MS     5000              /* then it is asked again after this */
#define DRAIN_TICK_MS      20                /* the loop's wake-up while draining */

typedef enum { PEER_UNKNOWN, PEER_SELF, PEER_OK, PEER_DOWN } drain_peer_state;

typedef struct drain_peer {
    char            *endpoint;       /* "tcp://192.0.2.7:7025", ipc://... */
    drain_peer_state state;
    bool             present;        /* in the names' current addresses */
    int64_t          retry_ms;       /* PEER_DOWN: ask again after */
    char            *why;            /* PEER_DOWN: what happened */
} drain_peer;

typedef enum { REQ_NONE, REQ_PING, REQ_TAKE } drain_req_kind;

struct drain {
    discovery_t   **watch;           /* one per queue_admin_endpoints item */
    size_t          n_watch;
    drain_peer     *peer;
    size_t          n_peer, next_peer;
    void           *req;             /* the one request in flight, or NULL */
    drain_req_kind  req_kind;
    size_t          req_peer;
    int64_t         req_deadline;
    char          **batch;           /* the ids a drain-take in flight carries */
    size_t          n_batch;
    char            cursor[QID_LEN + 1]; /* the batch search goes on after this id */
    char            self[320];       /* this process's ping answer */
    long            left;            /* envelopes here, at the last count */
    int64_t         count_ms;
    unsigned long long handed;
    char           *problem;         /* the last reason nothing moves, or NULL */
};

/* ------------------------------------------------------------ peers */

static void drain_problem(drain_t *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* drain_problem - remember (and log once) why the hand-over waits. */
static void drain_problem(drain_t *d, const char *fmt, ...)
{
    va_list ap;
    char *text;

    va_start(ap, fmt);
    if (vasprintf(&text, fmt, ap) < 0)
        log_panic("drain_problem: out of memory");
    va_end(ap);
    if (!d->problem || strcmp(d->problem, text) != 0)
        log_warn("drain: %s", text);
    free(d->problem);
    d->problem = text;
}

/* drain_peer_changed - discovery's callback: an admin address came or went. */
static void drain_peer_changed(void *ctx, const char *addr, bool added)
{
    drain_t *d = ctx;

    for (size_t i = 0; i < d->n_peer; i++) {
        if (strcmp(d->peer[i].endpoint, addr) == 0) {
            d->peer[i].present = added;
            if (added && d->peer[i].state == PEER_DOWN)
                d->peer[i].retry_ms = 0;
            return;
        }
    }
    if (!added)
        return;
    d->peer = xrealloc(d->peer, (d->n_peer + 1) * sizeof *d->peer);
    d->peer[d->n_peer] = (drain_peer){.endpoint = xstrdup(addr), .state = PEER_UNKNOWN,
                                      .present = true};
    d->n_peer++;
}

/* drain_peer_down - p did not answer or refused: ask again later. */
static void drain_peer_down(drain_t *d, size_t i, const char *why)
{
    drain_peer *p = &d->peer[i];

    if (p->state != PEER_DOWN || !p->why || strcmp(p->why, why) != 0)
        log_warn("drain: peer %s: %s", p->endpoint, why);
    p->state = PEER_DOWN;
    p->retry_ms = time_mono_ms() + DRAIN_RETRY_MS;
    free(p->why);
    p->why = xstrdup(why);
}

static size_t drain_peers_ok(const drain_t *d)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n_peer; i++)
        n += d->peer[i].present && d->peer[i].state == PEER_OK;
    return n;
}

/* ------------------------------------------------------------ requests */

/* drain_send - start a request to peer i (one at a time); false when it
 * cannot even be sent (the peer is marked down). */
static bool drain_send(scheduler_t *s, size_t i, drain_req_kind kind, const char *command,
                       char **args, size_t n_args, int timeout_ms)
{
    drain_t *d = s->drain;
    AdminRequest req = CORREIO__ADMIN_REQUEST__INIT;
    size_t len;

    req.version = WIRE_VERSION;
    req.command = (char *)command;
    req.args = args;
    req.n_args = n_args;
    d->req = zmq_util_socket(s->st->zctx, ZMQ_REQ, 1);
    if (zmq_util_connect_to(d->req, d->peer[i].endpoint, "delivery") != 0) {
        drain_peer_down(d, i, "cannot connect");   /* CurveZMQ refused, or a bad endpoint */
        zmq_close(d->req);
        d->req = NULL;
        return false;
    }
    uint8_t *out = wire_pack_admin_request(&req, &len);
    int rc = zmq_send(d->req, out, len, ZMQ_DONTWAIT);
    free(out);
    if (rc < 0) {
        char why[200];
        snprintf(why, sizeof why, "cannot send: %s", zmq_strerror(zmq_errno()));
        drain_peer_down(d, i, why);
        zmq_close(d->req);
        d->req = NULL;
        return false;
    }
    d->req_kind = kind;
    d->req_peer = i;
    d->req_deadline = time_mono_ms() + timeout_ms;
    return true;
}

static void drain_batch_free(drain_t *d)
{
    for (size_t i = 0; i < d->n_batch; i++)
        xfree(&d->batch[i]);
    xfree(&d->batch);
    d->n_batch = 0;
}

/* drain_handed - the peer owns the batch: finish the ids here (to
 * "done", so that the ingress's late resends are acked as duplicates)
 * and take them off the schedule. */
static void drain_handed(scheduler_t *s, const char *peer)
{
    drain_t *d = s->drain;
    uint64_t now_us = time_now_us();
    queue_txn *t = queue_begin(s->queue, true);
    bool ok = t != NULL;

    for (size_t i = 0; ok && i < d->n_batch; i++)
        ok = queue_finish(t, d->batch[i], now_us) == 0;
    if (ok)
        ok = queue_commit(&t) == 0;
    else
        queue_abort(&t);
    if (!ok) {      /* the peer has them: it answers "already here" next time */
        drain_problem(d, "cannot remove handed-over envelopes from the queue; trying again");
        drain_batch_free(d);
        return;
    }
    qsort(d->batch, d->n_batch, sizeof *d->batch, sched_qid_cmp);
    sched_heap_remove_ids(&s->heap, (const char **)d->batch, d->n_batch);
    for (size_t i = 0; i < d->n_batch; i++)
        log_info("%s: handed over to %s", d->batch[i], peer);
    d->handed += d->n_batch;
    d->left = queue_count(s->queue);
    d->count_ms = time_mono_ms() + 1000;
    drain_batch_free(d);
}

/* drain_answer - the request in flight was answered (reply) or not
 * (NULL: timeout). */
static void drain_answer(scheduler_t *s, AdminReply *reply)
{
    drain_t *d = s->drain;
    drain_peer *p = &d->peer[d->req_peer];

    if (!reply) {
        drain_peer_down(d, d->req_peer, d->req_kind == REQ_PING ? "no answer to ping"
                                                                : "no answer to drain-take");
        drain_batch_free(d);                 /* still here: found again */
        return;
    }
    if (d->req_kind == REQ_PING) {
        if (strcmp(reply->text, d->self) == 0) {
            p->state = PEER_SELF;
        } else if (reply->status == 0 && strncmp(reply->text, "delivery ", 9) == 0) {
            p->state = PEER_OK;
            log_info("drain: peer %s (%s)", p->endpoint, reply->text);
        } else {
            char why[300];
            snprintf(why, sizeof why, "not a delivery node: %.200s", reply->text);
            drain_peer_down(d, d->req_peer, why);
        }
        return;
    }
    if (reply->status != 0) {
        char why[300];
        snprintf(why, sizeof why, "drain-take refused: %.200s", reply->text);
        drain_peer_down(d, d->req_peer, why);
        drain_batch_free(d);
        return;
    }
    drain_handed(s, p->endpoint);
    free(d->problem);
    d->problem = NULL;
}

/* drain_poll - the answer to the request in flight, or its timeout. */
static void drain_poll(scheduler_t *s)
{
    drain_t *d = s->drain;
    zmq_msg_t msg;

    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, d->req, ZMQ_DONTWAIT) >= 0) {
        AdminReply *reply = wire_unpack_admin_reply(zmq_msg_data(&msg), zmq_msg_size(&msg),
                                                    d->peer[d->req_peer].endpoint);
        zmq_msg_close(&msg);
        zmq_close(d->req);
        d->req = NULL;
        if (reply) {
            drain_answer(s, reply);
            wire_free_admin_reply(&reply);
        } else {
            drain_peer_down(d, d->req_peer, "a bad answer");
            drain_batch_free(d);
        }
        return;
    }
    zmq_msg_close(&msg);
    if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
        log_warn("drain: receive from %s: %s", d->peer[d->req_peer].endpoint,
                 zmq_strerror(zmq_errno()));
    if (time_mono_ms() >= d->req_deadline) {
        zmq_close(d->req);                   /* a REQ without its answer is stuck */
        d->req = NULL;
        drain_answer(s, NULL);
    }
}

/* ------------------------------------------------------------ batches */

typedef struct drain_collect {
    drain_t    *d;
    sched_item *busy;
    size_t      n_busy;
    char      **args;                /* base64 of each packed record */
    size_t      n, bytes;
    bool        full;
} drain_collect;

/* drain_handable - has r something for a peer to do, and no attempt
 * under way? */
static bool drain_handable(const drain_collect *c, const queue_rec *r)
{
    bool todo = false;

    for (size_t i = 0; i < r->n; i++) {
        sched_item key = {.rcpt = (unsigned)i};
        snprintf(key.queue_id, sizeof key.queue_id, "%s", r->queue_id);
        if (c->n_busy && bsearch(&key, c->busy, c->n_busy, sizeof *c->busy, sched_item_id_cmp))
            return false;
        if (queue_rcpt_active(r->rcpt[i].state)
            || r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_QUARANTINED)
            todo = true;
    }
    return todo;
}

static void drain_collect_visit(void *ctx, const queue_rec *r)
{
    drain_collect *c = ctx;
    drain_t *d = c->d;

    if (c->full)
        return;
    snprintf(d->cursor, sizeof d->cursor, "%s", r->queue_id);
    if (!drain_handable(c, r))
        return;
    size_t len;
    uint8_t *packed = queue_rec_pack(r, &len);
    buf_t b = BUF_INIT;
    base64_encode(&b, packed, len);
    xfree(&packed);
    c->args = xrealloc(c->args, (c->n + 1) * sizeof *c->args);
    c->args[c->n++] = b.data ? b.data : xstrdup("");
    d->batch = xrealloc(d->batch, (d->n_batch + 1) * sizeof *d->batch);
    d->batch[d->n_batch++] = xstrdup(r->queue_id);
    c->bytes += len;
    c->full = c->n >= DRAIN_BATCH || c->bytes >= DRAIN_BATCH_BYTES;
}

/* drain_next_batch - send the next envelopes to a peer, if any is ready
 * and there is something to send. */
static void drain_next_batch(scheduler_t *s)
{
    drain_t *d = s->drain;
    size_t n_ok = drain_peers_ok(d);

    if (n_ok == 0)
        return;
    drain_collect c = {.d = d};
    c.busy = sched_busy(s, &c.n_busy);
    bool from_start = d->cursor[0] == '\0';
    long visited = queue_scan_after(s->queue, d->cursor, drain_collect_visit, &c, DRAIN_SCAN);
    if (visited >= 0 && visited < DRAIN_SCAN && !c.full)
        d->cursor[0] = '\0';                 /* the end: from the start next time */
    xfree(&c.busy);
    if (visited < 0)
        drain_problem(d, "cannot read the queue");
    if (c.n > 0) {
        size_t pick = d->n_peer;
        for (size_t k = 0; k < d->n_peer && pick == d->n_peer; k++) {
            size_t i = (d->next_peer + k) % d->n_peer;
            if (d->peer[i].present && d->peer[i].state == PEER_OK)
                pick = i;
        }
        d->next_peer = pick + 1;
        if (!drain_send(s, pick, REQ_TAKE, "drain-take", c.args, c.n, DRAIN_TAKE_MS))
            drain_batch_free(d);
    } else if (from_start && visited >= 0 && d->left > 0) {
        drain_problem(d, "%ld envelope%s waiting for attempts under way or notices to send",
                      d->left, d->left == 1 ? "" : "s");
    }
    for (size_t i = 0; i < c.n; i++)
        xfree(&c.args[i]);
    xfree(&c.args);
}

/* ------------------------------------------------------------ the loop */

bool drain_active(const scheduler_t *s)
{
    return s->drain != NULL;
}

void drain_run(scheduler_t *s)
{
    drain_t *d = s->drain;
    int64_t now = time_mono_ms();

    if (!d)
        return;
    for (size_t i = 0; i < d->n_watch; i++)
        discovery_tick(d->watch[i], now);
    if (now >= d->count_ms) {
        d->left = queue_count(s->queue);
        d->count_ms = now + 1000;
    }
    if (d->req) {
        drain_poll(s);
        if (d->req)
            return;
    }
    /* Who is who: ping the addresses not known yet (or down a while). */
    for (size_t i = 0; i < d->n_peer; i++) {
        drain_peer *p = &d->peer[i];
        if (p->present && (p->state == PEER_UNKNOWN
                           || (p->state == PEER_DOWN && now >= p->retry_ms))) {
            if (drain_send(s, i, REQ_PING, "ping", NULL, 0, DRAIN_PING_MS))
                return;
        }
    }
    if (d->left > 0 && drain_peers_ok(d) == 0) {
        size_t down = 0;
        for (size_t i = 0; i < d->n_peer; i++)
            down += d->peer[i].present && d->peer[i].state == PEER_DOWN;
        drain_problem(d, "no peer delivery node to hand over to (queue_admin_endpoints: "
                      "%zu address%s, %zu not answering)", d->n_peer,
                      d->n_peer == 1 ? "" : "es", down);
        return;
    }
    if (d->left != 0)
        drain_next_batch(s);
}

long drain_timeout_ms(const scheduler_t *s)
{
    return s->drain ? DRAIN_TICK_MS : -1;
}

/* drain_start - the first "drain": watch the peers, stop dispatching. */
static void drain_start(scheduler_t *s)
{
    drain_t *d = xcalloc(1, sizeof *d);
    const char *const *eps = config_list(s->st->cfg, "queue_admin_endpoints");
    char host[256] = "";

    gethostname(host, sizeof host - 1);
    snprintf(d->self, sizeof d->self, "delivery %s pid=%ld", host, (long)getpid());
    s->drain = d;                            /* before the watches report */
    for (size_t i = 0; eps && eps[i]; i++) {
        char *err = NULL;
        discovery_t *w = discovery_watch(eps[i], s->st->cfg, drain_peer_changed, d, &err);
        if (!w) {
            log_warn("drain: queue_admin_endpoints: %s: %s", eps[i], err ? err : "unusable");
            free(err);
            continue;
        }
        d->watch = xrealloc(d->watch, (d->n_watch + 1) * sizeof *d->watch);
        d->watch[d->n_watch++] = w;
    }
    d->left = queue_count(s->queue);
    d->count_ms = time_mono_ms() + 1000;
    log_info("drain: started: %ld envelope%s to hand over, %zu address%s to ask", d->left,
             d->left == 1 ? "" : "s", d->n_peer, d->n_peer == 1 ? "" : "es");
}

void drain_free(drain_t **dp)
{
    drain_t *d = *dp;

    if (!d)
        return;
    for (size_t i = 0; i < d->n_watch; i++)
        discovery_free(&d->watch[i]);
    xfree(&d->watch);
    for (size_t i = 0; i < d->n_peer; i++) {
        xfree(&d->peer[i].endpoint);
        free(d->peer[i].why);
    }
    xfree(&d->peer);
    if (d->req)
        zmq_close(d->req);
    drain_batch_free(d);
    free(d->problem);
    xfree(dp);
}

/* ------------------------------------------------------------ taking */

/* drain_take - a draining peer's envelopes: store them in one commit,
 * then answer 0 (the peer may forget them); status 1 takes nothing. */
static void drain_take(scheduler_t *s, const AdminRequest *req, AdminReply *reply)
{
    if (s->drain) {
        admin_reply_text(reply, 1, "this node is draining itself");
        return;
    }
    if (req->n_args == 0 || req->n_args > DRAIN_TAKE_MAX) {
        admin_reply_text(reply, 2, "drain-take needs 1 to %d envelopes", DRAIN_TAKE_MAX);
        return;
    }
    size_t n = req->n_args;
    buf_t *raw = xcalloc(n, sizeof *raw);
    Envelope **env = xcalloc(n, sizeof *env);
    bool *take = xcalloc(n, sizeof *take);
    size_t n_taken = 0, n_here = 0;
    bool ok = true;

    for (size_t i = 0; ok && i < n; i++) {
        const char *a = req->args[i];
        if (base64_decode(&raw[i], a, strlen(a)) != 0
            || !(env[i] = wire_unpack_envelope(raw[i].data, raw[i].len, "drain-take"))
            || !qid_valid(env[i]->queue_id, strlen(env[i]->queue_id))) {
            admin_reply_text(reply, 2, "drain-take: envelope %zu does not decode", i + 1);
            ok = false;
        }
    }
    uint64_t now_us = time_now_us();
    queue_txn *t = ok ? queue_begin(s->queue, true) : NULL;
    if (ok && !t) {
        admin_reply_text(reply, 1, "cannot write the queue; nothing taken");
        ok = false;
    }
    for (size_t i = 0; ok && i < n; i++) {
        int known = queue_queued(t, env[i]->queue_id);
        if (known == 0) {   /* "done" does not count: a hand-over is the live copy */
            take[i] = queue_put_new(t, raw[i].data, raw[i].len, env[i]) == 0
                      && quarantine_take(t, env[i], now_us) == 0;
            ok = take[i];
        }
        if (known < 0)
            ok = false;
    }
    if (t && (!ok || queue_commit(&t) != 0)) {
        queue_abort(&t);
        admin_reply_text(reply, 1, "cannot write the queue; nothing taken");
        ok = false;
    }
    if (ok) {
        size_t n_busy;
        sched_item *busy = sched_busy(s, &n_busy);
        queue_txn *r = queue_begin(s->queue, false);
        for (size_t i = 0; i < n; i++) {
            if (!take[i]) {
                n_here++;
                log_info("%s: offered by a draining peer, already queued here", env[i]->queue_id);
                continue;
            }
            n_taken++;
            s->n_received++;
            log_info("%s: taken over from a draining peer (origin %s)", env[i]->queue_id,
                     env[i]->origin);
            events_send(s->events, env[i]->origin, env[i]->queue_id,
                        CORREIO__EVENT_KIND__EVENT_OWNED, "");
            queue_rec *rec = r ? queue_get(r, env[i]->queue_id) : NULL;
            if (rec) {
                sched_schedule_now(s, rec, busy, n_busy, now_us);
                quarantine_note_rec(s, rec);
            }
            queue_rec_free(&rec);
        }
        queue_abort(&r);
        xfree(&busy);
        admin_reply_text(reply, 0, "taken %zu, already here %zu", n_taken, n_here);
    }
    for (size_t i = 0; i < n; i++) {
        buf_free(&raw[i]);
        if (env[i])
            wire_free_envelope(&env[i]);
    }
    xfree(&raw);
    xfree(&env);
    xfree(&take);
}

bool drain_admin(scheduler_t *s, const AdminRequest *req, AdminReply *reply)
{
    if (strcmp(req->command, "drain-take") == 0) {
        drain_take(s, req, reply);
        return true;
    }
    if (strcmp(req->command, "drain") != 0)
        return false;
    if (!s->drain)
        drain_start(s);
    drain_t *d = s->drain;
    d->left = queue_count(s->queue);
    d->count_ms = time_mono_ms() + 1000;
    size_t in_flight = s->n_local + s->n_outbound;
    admin_reply_text(reply, d->left < 0 ? 1 : 0,
                     "draining: left=%ld handed=%llu peers=%zu attempts=%zu%s%s", d->left,
                     d->handed, drain_peers_ok(d), in_flight,
                     d->problem && d->left ? " waiting: " : "",
                     d->problem && d->left ? d->problem : "");
    return true;
}
