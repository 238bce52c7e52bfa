/* zmq_util.c - ZeroMQ sockets with correio's settings (see zmq_util.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "curve.h"
#include "endpoints.h"
#include "fsutil.h"
#include "log.h"
#include "xalloc.h"
#include "zmq_util.h"

/* setopt_int - set an int option; a failure here is a bug. */
static void setopt_int(void *sock, int opt, int value, const char *what)
{
    if (zmq_setsockopt(sock, opt, &value, sizeof(value)) != 0)
        log_panic("zmq_setsockopt %s=%d: %s", what, value, zmq_strerror(zmq_errno()));
}

void *zmq_util_socket(void *ctx, int type, int hwm)
{
    void *sock = zmq_socket(ctx, type);

    if (sock == NULL)
        log_fatal("cannot create a ZeroMQ socket (type %d): %s "
                  "(too many open files? raise the limit)", type, zmq_strerror(zmq_errno()));
    if (hwm <= 0)
        hwm = ZMQ_UTIL_HWM_DEFAULT;
    setopt_int(sock, ZMQ_SNDHWM, hwm, "ZMQ_SNDHWM");
    setopt_int(sock, ZMQ_RCVHWM, hwm, "ZMQ_RCVHWM");
    setopt_int(sock, ZMQ_LINGER, 0, "ZMQ_LINGER");
    /* ZMTP heartbeats: a peer whose host died without a FIN or RST (power
     * off, cable out) is dropped within seconds, so a PUSH stops filling
     * its pipe (else until TCP gives up, ~15 minutes, and every resend
     * could go there again: tests/blackbox/test_multihost.py).
     *
     * Heartbeats travel in band, so a receiver that applies backpressure
     * (its pipe full, its engine no longer reading the connection) sees
     * neither PINGs nor PONGs.  Hence by type:
     *  - PUSH sets nothing: it answers the PULL's PINGs and drops the
     *    connection when they stop for the TTL the PULL announces (its
     *    own direction is never stopped: a PUSH receives nothing else);
     *  - PULL sends PINGs with that TTL but never times out itself: a
     *    slow consumer must not drop its producers (bench/
     *    classifier_scaling.sh showed 1040 frames lost that way);
     *  - request/reply sockets do both: their peers read all the time;
     *  - PUB/SUB (the tap) go without. */
    switch (type) {
    case ZMQ_PULL:
        setopt_int(sock, ZMQ_HEARTBEAT_IVL, ZMQ_UTIL_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL");
        setopt_int(sock, ZMQ_HEARTBEAT_TTL, ZMQ_UTIL_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TTL");
        setopt_int(sock, ZMQ_HEARTBEAT_TIMEOUT, ZMQ_UTIL_HEARTBEAT_NEVER, "ZMQ_HEARTBEAT_TIMEOUT");
        break;
    case ZMQ_DEALER:
    case ZMQ_ROUTER:
    case ZMQ_REQ:
    case ZMQ_REP:
        setopt_int(sock, ZMQ_HEARTBEAT_IVL, ZMQ_UTIL_HEARTBEAT_IVL, "ZMQ_HEARTBEAT_IVL");
        setopt_int(sock, ZMQ_HEARTBEAT_TIMEOUT, ZMQ_UTIL_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TIMEOUT");
        setopt_int(sock, ZMQ_HEARTBEAT_TTL, ZMQ_UTIL_HEARTBEAT_TIMEOUT, "ZMQ_HEARTBEAT_TTL");
        break;
    default:
        break;
    }
    return sock;
}

/* ipc_prepare - make the directory of an ipc:// endpoint. */
static void ipc_prepare(const char *endpoint)
{
    const char *path = endpoint + strlen("ipc://");
    char *dir, *slash;

    if (*path == '@')   /* Linux abstract namespace: nothing on disk */
        return;
    dir = xstrdup(path);
    if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
        *slash = 0;
        if (fs_mkdir_p(dir, 0750) < 0)
            log_fatal("cannot create directory %s for %s: %m "
                      "(check run_directory and its permissions)", dir, endpoint);
    }
    free(dir);
}

void zmq_util_bind(void *sock, const char *endpoint)
{
    if (strncmp(endpoint, "ipc://", 6) == 0)
        ipc_prepare(endpoint);
    char *why = NULL;           /* CurveZMQ server settings (lib/curve.h) */
    if (curve_server_setup(sock, endpoint, &why) != 0)
        log_fatal("cannot bind %s: %s", endpoint, why);
    char *form = endpoints_bind_form(endpoint);     /* tcp://NAME:PORT binds host "*" */
    int rc = zmq_bind(sock, form);
    xfree(&form);
    if (rc != 0)
        log_fatal("cannot bind %s: %s%s", endpoint, zmq_strerror(zmq_errno()),
                  zmq_errno() == EADDRINUSE ? " (is another copy of this stage running?)" : "");
}

void zmq_util_connect(void *sock, const char *endpoint)
{
    char *why = NULL;           /* the peer is the stage whose parameter names endpoint */

    if (curve_client_setup(sock, endpoint, NULL, &why) != 0)
        log_fatal("cannot connect to %s: %s", endpoint, why);
    if (zmq_connect(sock, endpoint) != 0)
        log_fatal("cannot connect to %s: %s (check the *_endpoint parameters)",
                  endpoint, zmq_strerror(zmq_errno()));
}

int zmq_util_connect_to(void *sock, const char *endpoint, const char *peer)
{
    char *why = NULL;

    if (curve_client_setup(sock, endpoint, peer, &why) != 0) {   /* peer's server key */
        log_warn("cannot connect to %s: %s", endpoint, why);
        free(why);
        return -1;
    }
    if (zmq_connect(sock, endpoint) != 0) {
        log_warn("cannot connect to %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int zmq_util_disconnect(void *sock, const char *endpoint)
{
    if (zmq_disconnect(sock, endpoint) != 0) {
        log_debug("disconnect %s: %s", endpoint, zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int zmq_util_fd(void *sock)
{
    int fd;
    size_t len = sizeof(fd);

    if (zmq_getsockopt(sock, ZMQ_FD, &fd, &len) != 0)
        log_panic("zmq_getsockopt ZMQ_FD: %s", zmq_strerror(zmq_errno()));
    return fd;
}

static int events(void *sock)
{
    int ev;
    size_t len = sizeof(ev);

    while (zmq_getsockopt(sock, ZMQ_EVENTS, &ev, &len) != 0) {
        if (zmq_errno() == EINTR)
            continue;
        if (zmq_errno() == ETERM)
            return 0;
        log_panic("zmq_getsockopt ZMQ_EVENTS: %s", zmq_strerror(zmq_errno()));
    }
    return ev;
}

bool zmq_util_readable(void *sock)
{
    return (events(sock) & ZMQ_POLLIN) != 0;
}

bool zmq_util_writable(void *sock)
{
    return (events(sock) & ZMQ_POLLOUT) != 0;
}

int zmq_util_send(void *sock, const void *data, size_t len)
{
    for (;;) {
        if (zmq_send(sock, data, len, ZMQ_DONTWAIT) >= 0)
            return 0;
        if (zmq_errno() != EINTR)
            break;
    }
    errno = zmq_errno();
    return -1;
}

zmq_util_recv_status zmq_util_recv_frame(void *sock, zmq_msg_t *msg, const char *input)
{
    if (zmq_msg_init(msg) != 0)
        log_panic("zmq_util_recv_frame: zmq_msg_init: %s", zmq_strerror(errno));
    if (zmq_msg_recv(msg, sock, ZMQ_DONTWAIT) < 0) {
        int e = errno;

        zmq_msg_close(msg);
        if (e != EAGAIN && e != EINTR)
            log_warn("receive on %s: %s", input, zmq_strerror(e));
        return ZMQ_UTIL_NONE;
    }
    if (zmq_msg_more(msg)) {
        /* Envelopes are one frame: drop a multi-part message whole. */
        log_warn("dropping a multi-part frame on %s", input);
        while (zmq_msg_more(msg) && zmq_msg_recv(msg, sock, ZMQ_DONTWAIT) >= 0)
            ;
        zmq_msg_close(msg);
        return ZMQ_UTIL_DROPPED;
    }
    return ZMQ_UTIL_FRAME;
}

void zmq_util_set_timeout(void *sock, int ms)
{
    setopt_int(sock, ZMQ_RCVTIMEO, ms, "ZMQ_RCVTIMEO");
    setopt_int(sock, ZMQ_SNDTIMEO, ms, "ZMQ_SNDTIMEO");
}
