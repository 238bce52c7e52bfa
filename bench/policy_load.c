/* policy_load.c - a load generator for the router's policy service, for
 * bench/policy.sh (compiled there against libcorreio.a; not part of the
 * product).
 *
 *   policy_load -e ENDPOINT [-c CONNS] [-w WINDOW] [-d SECONDS] [-k KIND] [-n KEYS]
 *
 * CONNS DEALER sockets (as many ingresses or ingress threads), each with
 * WINDOW requests in flight, for SECONDS seconds.  KIND:
 *   known   POLICY_GREYLIST on KEYS triplets passed beforehand (POLICY_PASS):
 *           the path of every RCPT of a known sender (a read and a write)
 *   new     POLICY_GREYLIST on a fresh triplet each time: a record is made
 *   limit   POLICY_LIMIT_CHECK on KEYS users: the path of every MAIL of a
 *           limited sender (a read)
 * Prints one line: "requests=N seconds=S rps=R p50_us=A p99_us=B errors=E".
 * Nothing is asserted.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "log.h"
#include "timeutil.h"
#include "wire.h"
#include "xalloc.h"

#define LOAD_SLOT_BITS 20            /* id = sequence << 20 | slot */

typedef struct load {
    void     **sock;
    size_t     conns, window, keys;
    const char *kind;
    uint64_t   seq;                  /* request ids */
    uint64_t   key_base;             /* "new": keys no earlier run used */
    int64_t   *sent_us;              /* per slot (conn * window + i) */
    uint32_t  *lat;                  /* every answered request's round trip, µs */
    size_t     n_lat, cap_lat;
    uint64_t   errors, other;
} load;

static int64_t mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* load_send - one request on conn, in slot; the key depends on the kind. */
static void load_send(load *l, size_t conn, size_t slot, int kind, const char *table)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    char key[160];
    uint8_t *out;
    size_t len;
    uint64_t k = l->seq++;

    req.version = WIRE_VERSION;
    req.id = (k << LOAD_SLOT_BITS) | slot;
    k += l->key_base;
    req.kind = (Correio__PolicyKind)kind;
    req.session = (char *)"BENCH";
    req.table = (char *)table;
    if (strcmp(l->kind, "new") == 0 && kind == CORREIO__POLICY_KIND__POLICY_GREYLIST)
        snprintf(key, sizeof(key), "sender@bench%llu.example/rcpt@local.example",
                 (unsigned long long)k);
    else if (strcmp(l->kind, "limit") == 0) {
        snprintf(key, sizeof(key), "user:user%llu@bench.example",
                 (unsigned long long)(k % l->keys));
        req.limit = 1000000000;
    } else
        snprintf(key, sizeof(key), "sender@bench%llu.example/rcpt@local.example",
                 (unsigned long long)(k % l->keys));
    req.key = key;
    out = wire_pack_policy_request(&req, &len);
    if (zmq_send(l->sock[conn], "", 0, ZMQ_SNDMORE) < 0 || zmq_send(l->sock[conn], out, len, 0) < 0)
        log_fatal("send: %s", zmq_strerror(zmq_errno()));
    free(out);
    l->sent_us[slot] = mono_us();
}

/* load_receive - every answer waiting on conn; each frees its slot,
 * which send_again (when set) fills at once. */
static size_t load_receive(load *l, size_t conn, bool record, bool send_again, int kind,
                           const char *table)
{
    size_t got = 0;

    for (;;) {
        zmq_msg_t delim, body;
        PolicyReply *r;
        int more = 0;
        size_t more_len = sizeof(more);

        zmq_msg_init(&delim);
        if (zmq_msg_recv(&delim, l->sock[conn], ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&delim);
            if (zmq_errno() == EAGAIN)
                return got;
            log_fatal("receive: %s", zmq_strerror(zmq_errno()));
        }
        zmq_getsockopt(l->sock[conn], ZMQ_RCVMORE, &more, &more_len);
        zmq_msg_close(&delim);
        if (!more) {
            l->errors++;
            continue;
        }
        zmq_msg_init(&body);
        if (zmq_msg_recv(&body, l->sock[conn], 0) < 0)
            log_fatal("receive: %s", zmq_strerror(zmq_errno()));
        r = wire_unpack_policy_reply(zmq_msg_data(&body), zmq_msg_size(&body), "router");
        zmq_msg_close(&body);
        if (r == NULL) {
            l->errors++;
            continue;
        }
        size_t slot = (size_t)(r->id & ((1u << LOAD_SLOT_BITS) - 1));

        if (r->action == CORREIO__POLICY_ACTION__POLICY_ERROR)
            l->errors++;
        else if (r->action != CORREIO__POLICY_ACTION__POLICY_OK)
            l->other++;
        wire_free_policy_reply(&r);
        if (slot >= l->conns * l->window)
            log_fatal("reply to an unknown slot %zu", slot);
        if (record) {
            if (l->n_lat == l->cap_lat) {
                l->cap_lat = l->cap_lat ? l->cap_lat * 2 : 1 << 16;
                l->lat = xrealloc(l->lat, l->cap_lat * sizeof(*l->lat));
            }
            l->lat[l->n_lat++] = (uint32_t)(mono_us() - l->sent_us[slot]);
        }
        got++;
        if (send_again)
            load_send(l, conn, slot, kind, table);
    }
}

/* load_run - keep every slot busy with kind until deadline (or, with
 * count, until count requests were answered); returns the answers. */
static uint64_t load_run(load *l, int kind, const char *table, int64_t deadline_us,
                         uint64_t count, bool record)
{
    zmq_pollitem_t *items = xcalloc(l->conns, sizeof(*items));
    uint64_t answered = 0, sent = 0, in_flight = 0;

    for (size_t c = 0; c < l->conns; c++) {
        items[c].socket = l->sock[c];
        items[c].events = ZMQ_POLLIN;
        for (size_t w = 0; w < l->window && (count == 0 || sent < count); w++, sent++, in_flight++)
            load_send(l, c, c * l->window + w, kind, table);
    }
    while (in_flight > 0) {
        bool more = count ? sent < count : mono_us() < deadline_us;
        int rc = zmq_poll(items, (int)l->conns, 5000);

        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc <= 0)
            log_fatal("no answer from the router within 5 s (%llu in flight)",
                      (unsigned long long)in_flight);
        for (size_t c = 0; c < l->conns; c++) {
            size_t got;

            if (!(items[c].revents & ZMQ_POLLIN))
                continue;
            more = count ? sent < count : mono_us() < deadline_us;
            got = load_receive(l, c, record, more, kind, table);
            answered += got;
            if (more)
                sent += got;
            else
                in_flight -= got;
        }
    }
    free(items);
    return answered;
}

static int by_value(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    load l = {0};
    const char *endpoint = NULL;
    double seconds = 3;
    void *zctx;
    int ch, kind = CORREIO__POLICY_KIND__POLICY_GREYLIST;
    int64_t t0, t1;
    uint64_t n;

    log_init("policy-load");
    l.conns = 20;
    l.window = 8;
    l.keys = 1000;
    l.kind = "known";
    while ((ch = getopt(argc, argv, "e:c:w:d:k:n:")) != -1) {
        switch (ch) {
        case 'e': endpoint = optarg; break;
        case 'c': l.conns = strtoul(optarg, NULL, 10); break;
        case 'w': l.window = strtoul(optarg, NULL, 10); break;
        case 'd': seconds = strtod(optarg, NULL); break;
        case 'k': l.kind = optarg; break;
        case 'n': l.keys = strtoul(optarg, NULL, 10); break;
        default:
            fprintf(stderr, "usage: policy_load -e ENDPOINT [-c CONNS] [-w WINDOW] [-d SECONDS]"
                            " [-k known|new|limit] [-n KEYS]\n");
            return 2;
        }
    }
    if (endpoint == NULL || l.conns == 0 || l.window == 0 || l.keys == 0
        || l.conns * l.window >= (1u << LOAD_SLOT_BITS)
        || (strcmp(l.kind, "known") && strcmp(l.kind, "new") && strcmp(l.kind, "limit"))) {
        fprintf(stderr, "policy_load: bad arguments (-e is required)\n");
        return 2;
    }
    if ((zctx = zmq_ctx_new()) == NULL)
        log_fatal("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    l.sock = xcalloc(l.conns, sizeof(*l.sock));
    l.sent_us = xcalloc(l.conns * l.window, sizeof(*l.sent_us));
    for (size_t c = 0; c < l.conns; c++) {
        int hwm = 100000, linger = 0;

        if ((l.sock[c] = zmq_socket(zctx, ZMQ_DEALER)) == NULL
            || zmq_setsockopt(l.sock[c], ZMQ_SNDHWM, &hwm, sizeof(hwm)) != 0
            || zmq_setsockopt(l.sock[c], ZMQ_RCVHWM, &hwm, sizeof(hwm)) != 0
            || zmq_setsockopt(l.sock[c], ZMQ_LINGER, &linger, sizeof(linger)) != 0
            || zmq_connect(l.sock[c], endpoint) != 0)
            log_fatal("%s: %s", endpoint, zmq_strerror(zmq_errno()));
    }

    /* the keys the measured run asks about exist beforehand */
    if (strcmp(l.kind, "known") == 0)
        load_run(&l, CORREIO__POLICY_KIND__POLICY_PASS, "greylist", 0, l.keys, false);
    else if (strcmp(l.kind, "limit") == 0)
        load_run(&l, CORREIO__POLICY_KIND__POLICY_LIMIT_CHECK, "", 0, l.keys, false);
    if (strcmp(l.kind, "limit") == 0)
        kind = CORREIO__POLICY_KIND__POLICY_LIMIT_CHECK;
    l.errors = l.other = 0;
    l.key_base = strcmp(l.kind, "new") == 0 ? (uint64_t)time_now_us() : 0; /* fresh keys each run */

    t0 = mono_us();
    n = load_run(&l, kind, "", t0 + (int64_t)(seconds * 1e6), 0, true);
    t1 = mono_us();
    qsort(l.lat, l.n_lat, sizeof(*l.lat), by_value);
    printf("requests=%llu seconds=%.2f rps=%.0f p50_us=%u p99_us=%u errors=%llu not_ok=%llu\n",
           (unsigned long long)n, (t1 - t0) / 1e6, n / ((t1 - t0) / 1e6),
           l.n_lat ? l.lat[l.n_lat / 2] : 0, l.n_lat ? l.lat[l.n_lat * 99 / 100] : 0,
           (unsigned long long)l.errors, (unsigned long long)l.other);
    for (size_t c = 0; c < l.conns; c++)
        zmq_close(l.sock[c]);
    zmq_ctx_term(zctx);
    free(l.sock);
    free(l.sent_us);
    free(l.lat);
    return 0;
}
