/* policy_server.c - the router's policy service thread (see
 * policy_server.h).
 *
 * The thread owns the ROUTER socket and the state; the main thread only
 * starts it, hands it new settings under a mutex and stops it through an
 * inproc PAIR.  Each wake-up takes what is waiting (at most
 * POLICY_BATCH_MAX requests), decides them in one write transaction,
 * commits, and only then answers: an answer is never sent for a state
 * change that is not committed.
 */
#include <errno.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "log.h"
#include "metrics.h"
#include "policy_server.h"
#include "policy_state.h"
#include "timeutil.h"
#include "wire.h"
#include "xalloc.h"
#include "zmq_util.h"

#define POLICY_BATCH_MAX     256        /* requests decided in one transaction */
#define POLICY_SWEEP_MS      60000      /* sweep expired records this often */
#define POLICY_SWEEP_MAX     10000      /* records one sweep may delete */
#define POLICY_HWM           10000      /* requests waiting on the socket */
#define POLICY_FRAME_MAX     65536      /* larger requests are not policy questions */

struct policy_server {
    stage_t        *st;
    policy_state_t *state;
    char           *dir;
    char           *node;               /* myhostname, for PolicyEntry.node */
    void           *sock;               /* ROUTER, used by the thread only */
    void           *stop_tx, *stop_rx;  /* inproc PAIR: main -> thread */
    pthread_t       thread;
    struct pending *batch;              /* POLICY_BATCH_MAX, the thread's */
    pthread_mutex_t mu;                 /* guards the next two */
    policy_settings settings;
    int64_t         sync_ms;            /* policy_sync_interval */
    unsigned long long n_answered, n_dropped;
};

/* One request of a batch, with the identity to answer to. */
typedef struct pending {
    zmq_msg_t      id;
    PolicyRequest *req;
    PolicyReply    reply;
} pending;

/* recv_request - one multi-part message: [identity][empty][request].
 * Returns 1 with *p filled, 0 when nothing waits, -1 for a bad message
 * (logged, dropped). */
static int recv_request(policy_server_t *ps, pending *p)
{
    zmq_msg_t parts[3];
    int n = 0, more = 1, rc = 1;

    while (more) {
        zmq_msg_t m;

        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, ps->sock, ZMQ_DONTWAIT) < 0) {
            int e = zmq_errno();

            zmq_msg_close(&m);
            if (n == 0) {
                if (e != EAGAIN && e != EINTR)
                    log_warn("policy: receive: %s", zmq_strerror(e));
                return 0;
            }
            log_warn("policy: receive in the middle of a message: %s", zmq_strerror(e));
            rc = -1;
            break;
        }
        more = zmq_msg_more(&m);
        if (n < 3)
            parts[n] = m;               /* taken over; closed below */
        else
            zmq_msg_close(&m);
        n++;
    }
    if (rc == 1 && n != 3) {
        log_warn("policy: dropped a message of %d frames (expected identity, empty, request)", n);
        rc = -1;
    } else if (rc == 1 && zmq_msg_size(&parts[1]) != 0) {
        log_warn("policy: dropped a message without the empty delimiter frame");
        rc = -1;
    } else if (rc == 1 && zmq_msg_size(&parts[2]) > POLICY_FRAME_MAX) {
        log_warn("policy: dropped a request of %zu bytes", zmq_msg_size(&parts[2]));
        rc = -1;
    } else if (rc == 1) {
        p->req = wire_unpack_policy_request(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]),
                                            "policy socket");
        if (p->req == NULL)
            rc = -1;
    }
    for (int i = 0; i < n && i < 3; i++) {
        if (rc == 1 && i == 0)
            p->id = parts[0];           /* kept for the answer */
        else
            zmq_msg_close(&parts[i]);
    }
    if (rc < 0)
        ps->n_dropped++;
    return rc;
}

/* send_reply - [identity][empty][reply]; a peer that went away or is full
 * loses its answer (it times out and answers 4xx itself). */
static void send_reply(policy_server_t *ps, pending *p)
{
    size_t len;
    uint8_t *data = wire_pack_policy_reply(&p->reply, &len);

    if (zmq_msg_send(&p->id, ps->sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
        || zmq_send(ps->sock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
        || zmq_send(ps->sock, data, len, ZMQ_DONTWAIT) < 0)
        log_debug("policy: reply %llu not sent: %s", (unsigned long long)p->reply.id,
                  zmq_strerror(zmq_errno()));
    else
        ps->n_answered++;
    xfree(&data);
}

/* fail_reply - replace whatever was decided by POLICY_ERROR. */
static void fail_reply(pending *p, int rc)
{
    policy_reply_clear(&p->reply);
    p->reply.version = WIRE_VERSION;
    p->reply.id = p->req->id;
    p->reply.action = CORREIO__POLICY_ACTION__POLICY_ERROR;
    p->reply.reason = xstrdup("ERROR");
    p->reply.text = xasprintf("policy state not written: %s", mdb_strerror(rc));
}

/* count_decision - correio_router_policy_decisions_total{kind,action}. */
static void count_decision(const PolicyRequest *req, const PolicyReply *reply)
{
    const ProtobufCEnumValue *k =
        protobuf_c_enum_descriptor_get_value(&correio__policy_kind__descriptor, req->kind);
    const ProtobufCEnumValue *a =
        protobuf_c_enum_descriptor_get_value(&correio__policy_action__descriptor, reply->action);

    metrics_incf("correio_router_policy_decisions_total", "kind=\"%s\",action=\"%s\"",
                 k ? k->name : "unknown", a ? a->name : "unknown");
}

/* serve_batch - take what waits, decide it in one transaction, commit,
 * answer.  Returns true when a transaction was committed. */
static bool serve_batch(policy_server_t *ps)
{
    pending *batch = ps->batch;
    policy_settings settings;
    size_t n = 0;
    int rc;

    while (n < POLICY_BATCH_MAX) {
        int got = recv_request(ps, &batch[n]);

        if (got == 0)
            break;
        if (got > 0) {
            PolicyReply fresh = CORREIO__POLICY_REPLY__INIT;

            batch[n++].reply = fresh;
        }
    }
    if (n == 0)
        return false;

    pthread_mutex_lock(&ps->mu);
    settings = ps->settings;
    pthread_mutex_unlock(&ps->mu);

    int64_t now = policy_clock_now();

    if ((rc = policy_state_begin(ps->state)) == 0) {
        for (size_t i = 0; i < n; i++)
            policy_state_apply(ps->state, &settings, batch[i].req, now, ps->node,
                               &batch[i].reply);
        rc = policy_state_commit(ps->state);
    }
    for (size_t i = 0; i < n; i++) {
        if (rc != 0)
            fail_reply(&batch[i], rc);
        count_decision(batch[i].req, &batch[i].reply);
        if (!batch[i].req->no_reply)
            send_reply(ps, &batch[i]);
        zmq_msg_close(&batch[i].id);
        policy_reply_clear(&batch[i].reply);
        wire_free_policy_request(&batch[i].req);
    }
    return rc == 0;
}

/* server_main - the thread's loop until the stop message. */
static void *server_main(void *arg)
{
    policy_server_t *ps = arg;
    int64_t next_sweep = time_mono_ms() + POLICY_SWEEP_MS, sync_at = -1;

    for (;;) {
        zmq_pollitem_t items[2] = {
            {ps->sock, 0, ZMQ_POLLIN, 0},
            {ps->stop_rx, 0, ZMQ_POLLIN, 0},
        };
        int64_t now = time_mono_ms(), timeout = next_sweep - now, sync_ms;

        if (sync_at >= 0 && sync_at - now < timeout)
            timeout = sync_at - now;
        if (timeout < 0)
            timeout = 0;
        if (zmq_poll(items, 2, (long)timeout) < 0) {
            if (zmq_errno() == EINTR)
                continue;
            log_fatal("policy: zmq_poll: %s", zmq_strerror(zmq_errno()));
        }
        if (items[1].revents & ZMQ_POLLIN)
            break;
        pthread_mutex_lock(&ps->mu);
        sync_ms = ps->sync_ms;
        pthread_mutex_unlock(&ps->mu);
        /* drain: each batch is at most POLICY_BATCH_MAX; go on while
         * anything waits (edge-triggered socket state) */
        while (zmq_util_readable(ps->sock)) {
            if (serve_batch(ps)) {
                if (sync_ms == 0)
                    policy_state_sync(ps->state);
                else if (sync_at < 0)
                    sync_at = time_mono_ms() + sync_ms;
            }
        }
        now = time_mono_ms();
        if (sync_at >= 0 && now >= sync_at) {
            policy_state_sync(ps->state);
            sync_at = -1;
        }
        if (now >= next_sweep) {
            policy_settings settings;

            pthread_mutex_lock(&ps->mu);
            settings = ps->settings;
            pthread_mutex_unlock(&ps->mu);
            if (policy_state_sweep(ps->state, &settings, policy_clock_now(), POLICY_SWEEP_MAX)
                && sync_at < 0)
                sync_at = now + sync_ms;
            next_sweep = time_mono_ms() + POLICY_SWEEP_MS;
        }
    }
    return NULL;
}

/* read_settings - the configuration's numbers into ps (under the mutex). */
static void read_settings(policy_server_t *ps, const config_t *cfg)
{
    policy_settings fresh;

    policy_settings_read(&fresh, cfg);
    pthread_mutex_lock(&ps->mu);
    ps->settings = fresh;
    ps->sync_ms = config_time_ms(cfg, "policy_sync_interval");
    pthread_mutex_unlock(&ps->mu);
}

policy_server_t *policy_server_start(stage_t *st)
{
    policy_server_t *ps = xcalloc(1, sizeof(*ps));
    const char *endpoint = config_str(st->cfg, "router_policy_endpoint");
    char *err = NULL, stop_ep[64];
    int rc;

    ps->st = st;
    ps->node = xstrdup(st->hostname);
    ps->batch = xcalloc(POLICY_BATCH_MAX, sizeof(*ps->batch));
    pthread_mutex_init(&ps->mu, NULL);
    read_settings(ps, st->cfg);
    ps->dir = xasprintf("%s/router/policy", config_str(st->cfg, "data_directory"));
    ps->state = policy_state_open(ps->dir, (size_t)config_size(st->cfg, "policy_state_map_size"),
                                  &err);
    if (ps->state == NULL)
        log_fatal("%s", err);

    /* every socket is made here and handed to the thread before it runs */
    ps->sock = zmq_util_socket(st->zctx, ZMQ_ROUTER, POLICY_HWM);
    zmq_util_bind(ps->sock, endpoint);
    snprintf(stop_ep, sizeof(stop_ep), "inproc://policy-server-stop-%p", (void *)ps);
    ps->stop_rx = zmq_util_socket(st->zctx, ZMQ_PAIR, 1);
    zmq_util_bind(ps->stop_rx, stop_ep);
    ps->stop_tx = zmq_util_socket(st->zctx, ZMQ_PAIR, 1);
    zmq_util_connect(ps->stop_tx, stop_ep);

    if ((rc = pthread_create(&ps->thread, NULL, server_main, ps)) != 0)
        log_fatal("policy: cannot start the policy server thread: %s", strerror(rc));
    log_info("policy: listening on %s, state in %s", endpoint, ps->dir);
    return ps;
}

void policy_server_reload(policy_server_t *ps, const config_t *cfg)
{
    if (ps)
        read_settings(ps, cfg);
}

void policy_server_stop(policy_server_t **psp)
{
    policy_server_t *ps = *psp;
    int rc;

    if (ps == NULL)
        return;
    /* a blocking send: the PAIR is connected, HWM 1, and read once */
    if (zmq_send(ps->stop_tx, "", 0, 0) < 0)
        log_panic("policy_server_stop: cannot signal the thread: %s", zmq_strerror(zmq_errno()));
    if ((rc = pthread_join(ps->thread, NULL)) != 0)
        log_panic("policy_server_stop: pthread_join: %s", strerror(rc));
    log_info("policy: stopping: answered=%llu dropped=%llu", ps->n_answered, ps->n_dropped);
    void *socks[] = {ps->sock, ps->stop_rx, ps->stop_tx};
    for (size_t i = 0; i < sizeof(socks) / sizeof(socks[0]); i++)
        if (zmq_close(socks[i]) != 0)
            log_warn("zmq_close: %s", zmq_strerror(zmq_errno()));
    policy_state_sync(ps->state);
    policy_state_close(&ps->state);
    pthread_mutex_destroy(&ps->mu);
    xfree(&ps->dir);
    xfree(&ps->node);
    xfree(&ps->batch);
    xfree(psp);
}
