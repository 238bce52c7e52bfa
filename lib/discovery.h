/* discovery.h - the replicas one configured producer endpoint stands for,
 * kept connected (DESIGN.md "Sockets").
 *
 * tcp://NAME:PORT is every A and AAAA address of NAME, asked with c-ares
 * (lib/dns.h, the dns_* parameters) at start and again every
 * discovery_interval: a new address is connected, a gone one
 * disconnected, so replicas added by `docker compose up --scale` get work
 * within seconds and removed ones stop getting it.  IP literals, "localhost"
 * (127.0.0.1 and ::1, never looked up), ipc:// and inproc:// are connected
 * once and never looked at again.  A lookup that fails (NXDOMAIN, no
 * address, timeout) keeps the last good set: a DNS hiccup never empties a
 * pipeline; the failure is logged once per change of state.
 *
 * Re-resolution never blocks the caller's loop: each discovery_t has its
 * own resolver whose sockets sit in a private epoll set, and that epoll fd
 * is the one descriptor the loop watches (readable: call discovery_tick).
 * The loop sleeps at most discovery_timeout_ms() and then calls
 * discovery_tick(), which reads answers and starts the next lookup when it
 * is due.  Only the first lookup, in discovery_new, waits (bounded by
 * dns_timeout x dns_tries), so that a stage starts connected.
 *
 * A disconnected replica: libzmq 4.3.4 drops, with LINGER 0, the frames
 * already queued in that peer's pipe (at most its HWM; with ZMQ_IMMEDIATE,
 * which every producer sets, nothing queues for a peer that never
 * connected).  Nothing durable is lost: those envelopes are not acked, so
 * the ingress sends them again from its spool after pipeline_ack_timeout
 * (a policy request times out into a 4xx; a submission is sent again).
 */
#ifndef CORREIO_DISCOVERY_H
#define CORREIO_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"

typedef struct discovery discovery_t;

/* An address joined (added true) or left the set; addr is a connectable
 * endpoint ("tcp://192.0.2.7:7001"), valid during the call only. */
typedef void (*discovery_cb)(void *ctx, const char *addr, bool added);

/* discovery_new - connect sock to every address endpoint stands for,
 * through zmq_util_connect_to(sock, addr, peer) (peer: "classifier",
 * "router", ... for the CurveZMQ settings), and keep it so.  ZMQ_IPV6 and
 * ZMQ_IMMEDIATE (sock is a producer: PUSH or DEALER) are set here.  cfg
 * gives dns_servers, dns_timeout, dns_tries and discovery_interval; NULL
 * means the defaults (/etc/resolv.conf, 5s, 2 tries, 5s).  Fatal when the
 * endpoint is malformed or a wildcard (a configuration error); a name
 * that does not resolve yet is logged and asked again every interval.
 * The socket stays the caller's: close it after discovery_free. */
discovery_t *discovery_new(void *sock, const char *endpoint, const char *peer,
                           const config_t *cfg);
/* discovery_watch - the same without a socket: cb(ctx, addr, added) for
 * every change (the first set is reported from here, one call per
 * address).  NULL and *err (malloc'd) when the endpoint is malformed. */
discovery_t *discovery_watch(const char *endpoint, const config_t *cfg, discovery_cb cb,
                             void *ctx, char **err);
/* discovery_free - stop; nothing is disconnected (the caller closes the
 * socket).  *d becomes NULL; NULL is fine. */
void discovery_free(discovery_t **d);

/* discovery_fd - the descriptor to watch for input (level-triggered; an
 * epoll fd); -1 when the endpoint is never re-resolved. */
int discovery_fd(const discovery_t *d);
/* discovery_timeout_ms - how long the caller may sleep before
 * discovery_tick must run (now: monotonic ms); -1 for never. */
int64_t discovery_timeout_ms(const discovery_t *d, int64_t now);
/* discovery_tick - read the resolver's answers, apply a finished lookup
 * (connect/disconnect, callbacks), start the next one when it is due.
 * Never blocks; cheap to call on every loop iteration. */
void discovery_tick(discovery_t *d, int64_t now);

/* discovery_addrs - the current set (NULL-terminated, owned by d, valid
 * until the next discovery_tick); *n gets its size when n is not NULL. */
const char *const *discovery_addrs(const discovery_t *d, size_t *n);
/* discovery_endpoint - the configured endpoint, for logs. */
const char *discovery_endpoint(const discovery_t *d);

#endif
