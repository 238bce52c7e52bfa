/* events.c - PUSH sockets to ingress event endpoints, one per origin,
 * cached (see events.h).  Origins come from envelopes, i.e. from outside:
 * a malformed one is a warning, never a fatal error. */
#include <errno.h>
#include <string.h>
#include <zmq.h>
#include "events.h"
#include "log.h"
#include "tap.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define EVENTS_MAX_ORIGINS  64     /* sockets kept; the least recently used goes */
#define EVENTS_ORIGIN_MAX   256    /* longest endpoint accepted */

typedef struct events_peer {
    char    *origin;
    void    *sock;
    int64_t  used_ms;
} events_peer;

struct events {
    void        *zctx;
    int          hwm;
    char        *stage, *node;
    events_peer  peers[EVENTS_MAX_ORIGINS];
    size_t       n;
};

events_t *events_new(void *zctx, int hwm, const char *stage, const char *node)
{
    events_t *ev = xcalloc(1, sizeof *ev);
    ev->zctx = zctx;
    ev->hwm = hwm;
    ev->stage = xstrdup(stage);
    ev->node = xstrdup(node);
    return ev;
}

static void events_close_peer(events_peer *p)
{
    if (p->sock && zmq_close(p->sock) != 0)
        log_warn("zmq_close events socket: %s", zmq_strerror(errno));
    p->sock = NULL;
    xfree(&p->origin);
}

/* events_origin_ok - an endpoint we are willing to connect to. */
static bool events_origin_ok(const char *origin)
{
    size_t n = strlen(origin);
    if (n == 0 || n > EVENTS_ORIGIN_MAX)
        return false;
    return strncmp(origin, "ipc://", 6) == 0 || strncmp(origin, "tcp://", 6) == 0;
}

/* events_peer_get - the socket for origin, connecting it if needed;
 * NULL when origin cannot be used. */
static void *events_peer_get(events_t *ev, const char *origin)
{
    int64_t now = time_mono_ms();
    for (size_t i = 0; i < ev->n; i++) {
        if (strcmp(ev->peers[i].origin, origin) == 0) {
            ev->peers[i].used_ms = now;
            return ev->peers[i].sock;
        }
    }
    if (!events_origin_ok(origin))
        return NULL;

    size_t slot = ev->n;
    if (slot == EVENTS_MAX_ORIGINS) {          /* evict the least recently used */
        slot = 0;
        for (size_t i = 1; i < ev->n; i++)
            if (ev->peers[i].used_ms < ev->peers[slot].used_ms)
                slot = i;
        events_close_peer(&ev->peers[slot]);
    } else {
        ev->n++;
    }
    void *sock = zmq_util_socket(ev->zctx, ZMQ_PUSH, ev->hwm);
    int one = 1;                /* an origin is one concrete ingress (ingress_events_advertise) */
    zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof(one));
    if (zmq_util_connect_to(sock, origin, "ingress") != 0) {
        int e = errno;
        if (zmq_close(sock) != 0)
            log_warn("zmq_close events socket: %s", zmq_strerror(errno));
        /* Keep the table dense: move the last peer into the free slot. */
        ev->n--;
        if (slot != ev->n) {
            ev->peers[slot] = ev->peers[ev->n];
            memset(&ev->peers[ev->n], 0, sizeof ev->peers[ev->n]);
        }
        char shown[EVENTS_ORIGIN_MAX + 8];
        log_warn("cannot connect events to origin %s: %s",
                 log_printable(shown, sizeof shown, origin, strlen(origin)),
                 zmq_strerror(e));
        return NULL;
    }
    ev->peers[slot].origin = xstrdup(origin);
    ev->peers[slot].sock = sock;
    ev->peers[slot].used_ms = now;
    return sock;
}

int events_send(events_t *ev, const char *origin, const char *queue_id,
                Correio__EventKind kind, const char *text)
{
    void *sock = events_peer_get(ev, origin);
    if (!sock) {
        char shown[EVENTS_ORIGIN_MAX + 8];
        log_warn("%s: unusable origin %s, no event sent", queue_id,
                 log_printable(shown, sizeof shown, origin, strlen(origin)));
        return -1;
    }
    Event e = CORREIO__EVENT__INIT;
    e.version = WIRE_VERSION;
    e.queue_id = (char *)queue_id;
    e.kind = kind;
    e.stage = ev->stage;
    e.node = ev->node;
    e.text = (char *)(text ? text : "");
    size_t len;
    uint8_t *frame = wire_pack_event(&e, &len);
    int rc = zmq_util_send(sock, frame, len);
    if (rc != 0)
        log_debug("%s: event not sent: %s (the ingress will resend)",
                  queue_id, zmq_strerror(errno));
    else
        tap_publish(TAP_EVENT, frame, len);
    xfree(&frame);
    return rc;
}

void events_free(events_t **evp)
{
    events_t *ev = *evp;
    if (!ev)
        return;
    for (size_t i = 0; i < ev->n; i++)
        events_close_peer(&ev->peers[i]);
    xfree(&ev->stage);
    xfree(&ev->node);
    xfree(evp);
}
