/* fanout.c - wait for one answer from each of many sockets (see fanout.h). */
#include <zmq.h>

#include "curve.h"
#include "fanout.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

void *fanout_socket(void *zctx, const char *endpoint, int timeout_ms, char **err)
{
    void *sock = zmq_util_socket(zctx, ZMQ_REQ, 1);
    int one = 1;

    if (curve_client_setup(sock, endpoint, NULL, err) != 0) {   /* CurveZMQ off loopback */
        zmq_close(sock);
        return NULL;
    }
    if (zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof(one)) != 0
        || zmq_connect(sock, endpoint) != 0) {
        *err = xasprintf("cannot connect: %s", zmq_strerror(zmq_errno()));
        zmq_close(sock);
        return NULL;
    }
    zmq_util_set_timeout(sock, timeout_ms);
    return sock;
}

bool *fanout_wait(void *const *socks, size_t n, int64_t deadline_ms, fanout_answer answer,
                  void *arg)
{
    zmq_pollitem_t *items = xcalloc(n + 1, sizeof(*items));
    bool *silent = xcalloc(n + 1, sizeof(*silent));
    size_t waiting = n;

    for (size_t k = 0; k < n; k++) {
        items[k].socket = socks[k];
        items[k].events = ZMQ_POLLIN;
        silent[k] = true;
    }
    while (waiting > 0) {
        int64_t left = deadline_ms - time_mono_ms();
        int rc = zmq_poll(items, (int)n, (long)(left < 0 ? 0 : left));

        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc <= 0)
            break;
        for (size_t k = 0; k < n; k++) {
            zmq_msg_t msg;

            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            items[k].events = 0;                /* one answer per socket */
            items[k].revents = 0;
            silent[k] = false;
            waiting--;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, socks[k], ZMQ_DONTWAIT) < 0)
                answer(arg, k, NULL, 0, zmq_strerror(zmq_errno()));
            else
                answer(arg, k, zmq_msg_data(&msg), zmq_msg_size(&msg), NULL);
            zmq_msg_close(&msg);
        }
    }
    xfree(&items);
    return silent;
}
