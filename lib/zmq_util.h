/* zmq_util.h - ZeroMQ sockets with correio's settings.
 *
 * One context per process.  Every socket gets an explicit high-water mark
 * and LINGER 0 (nothing durable ever sits only in a ZeroMQ queue: the
 * ingress spool is the truth, so a stage stops at once).  Endpoints are
 * ipc:// paths under run_directory on one host and tcp://NAME:PORT in a
 * cluster; the consumer of a hop binds, producers connect.
 *
 * Edge-triggered ZMQ_FD: a loop that watches zmq_util_fd() must, after
 * every wake-up and after every send or receive on the socket, keep
 * receiving while zmq_util_readable() is true.
 */
#ifndef CORREIO_ZMQ_UTIL_H
#define CORREIO_ZMQ_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <zmq.h>

#define ZMQ_UTIL_HWM_DEFAULT 1000
#define ZMQ_UTIL_HEARTBEAT_IVL     1000   /* ms between ZMTP PINGs */
#define ZMQ_UTIL_HEARTBEAT_TIMEOUT 5000   /* ms without traffic: the peer is gone */
#define ZMQ_UTIL_HEARTBEAT_NEVER   (24 * 3600 * 1000)   /* a PULL's own timeout: off */

/* zmq_util_socket - a socket of type with send and receive HWM, LINGER 0
 * and ZMTP heartbeats (a producer drops a dead consumer's connection,
 * and request/reply peers each other's, after ZMQ_UTIL_HEARTBEAT_TIMEOUT;
 * a slow consumer never drops its producers); fatal on failure. */
void *zmq_util_socket(void *ctx, int type, int hwm);
/* zmq_util_bind - bind, making the directory of an ipc:// path first;
 * fatal (naming the endpoint) on failure.  tcp://NAME:PORT, NAME not an
 * IP literal, "*" or "localhost", binds host "*" (all interfaces) on
 * PORT: NAME is the service this host is one replica of, so one
 * parameter serves both sides (the producers connect to every address
 * of NAME, lib/discovery.h). */
void zmq_util_bind(void *sock, const char *endpoint);
/* zmq_util_connect - connect; fatal on a malformed endpoint.  Like
 * zmq_util_bind, it applies the CurveZMQ settings first (lib/curve.h:
 * the peer is the stage whose *_endpoint parameter names endpoint), and
 * is fatal when plain TCP is refused there. */
void zmq_util_connect(void *sock, const char *endpoint);
/* zmq_util_connect_to - connect to a stage of kind peer ("ingress",
 * "classifier", "router", "delivery", "fetcher"): the CurveZMQ client
 * settings for that peer are applied first (lib/curve.h).  Returns 0, or
 * -1 (logged) when the endpoint cannot be connected. */
int zmq_util_connect_to(void *sock, const char *endpoint, const char *peer);
/* zmq_util_disconnect - undo a connect (a replica went away); -1 (logged
 * at debug) when it was not connected. */
int zmq_util_disconnect(void *sock, const char *endpoint);
int  zmq_util_fd(void *sock);
bool zmq_util_readable(void *sock);
bool zmq_util_writable(void *sock);
/* zmq_util_send - one frame, non-blocking.  Returns 0, or -1 with errno
 * EAGAIN when the HWM is reached or no peer is there. */
int zmq_util_send(void *sock, const void *data, size_t len);
/* What zmq_util_recv_frame found. */
typedef enum {
    ZMQ_UTIL_NONE,      /* nothing waits (or the receive failed: logged) */
    ZMQ_UTIL_DROPPED,   /* a multi-part message came: dropped whole, logged */
    ZMQ_UTIL_FRAME,     /* msg holds one single-frame message */
} zmq_util_recv_status;

/* zmq_util_recv_frame - receive, without blocking, one message that must
 * be a single frame (an envelope) into msg, which is initialised here;
 * the caller closes it after ZMQ_UTIL_FRAME (it is already closed
 * otherwise).  input names the socket in log lines ("router input"). */
zmq_util_recv_status zmq_util_recv_frame(void *sock, zmq_msg_t *msg, const char *input);

/* zmq_util_set_timeout - receive and send timeouts in milliseconds. */
void zmq_util_set_timeout(void *sock, int ms);

#endif
