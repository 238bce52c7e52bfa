/* main.c - correio-fetcher: polls remote POP3/IMAP accounts
 * (fetch_accounts_file) on their schedules and hands each message to an
 * ingress over its submit socket; fetch_run.c schedules, fetch_session.c
 * runs one session, fetch_admin.c answers `correio fetch`. */
#include <errno.h>
#include <zmq.h>

#include "admin.h"
#include "fetch_run.h"
#include "log.h"
#include "stage.h"
#include "zmq_util.h"

#define FETCHER_ADMIN_HWM 16

int main(int argc, char **argv)
{
    stage_t st;
    stage_start(&st, "fetcher", argc, argv);
    /* No network listener: become mail_owner before any socket or
     * file is made, so that they all belong to it. */
    stage_drop_privileges(&st);

    void *admin = zmq_util_socket(st.zctx, ZMQ_REP, FETCHER_ADMIN_HWM);
    zmq_util_bind(admin, config_str(st.cfg, "fetcher_admin_endpoint"));
    fetch_run_t *fr = fetch_run_new(&st);
    log_info("started: submit=%s workers=%lld", config_str(st.cfg, "ingress_submit_endpoint"),
             config_int(st.cfg, "fetch_concurrency"));

    while (!stage_stopping()) {
        fetch_run_tick(fr);
        zmq_pollitem_t items[3] = {
            {NULL, st.signal_fd, ZMQ_POLLIN, 0},
            {admin, 0, ZMQ_POLLIN, 0},
            {NULL, fetch_run_fd(fr), ZMQ_POLLIN, 0},
        };
        if (zmq_poll(items, 3, fetch_run_timeout_ms(fr)) < 0) {
            if (errno == EINTR)
                continue;
            log_fatal("zmq_poll: %s", zmq_strerror(errno));
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int sig = stage_take_signals(&st);
            if (sig & STAGE_SIG_STOP)
                break;
            if (sig & STAGE_SIG_RELOAD)
                stage_reload(&st, fetch_run_reload, fr);
        }
        if (items[1].revents & ZMQ_POLLIN)
            admin_serve(admin, "fetcher", fetch_run_admin, fr);
    }

    log_info("stopping");
    fetch_run_free(&fr);
    if (zmq_close(admin) != 0)
        log_warn("zmq_close: %s", zmq_strerror(errno));
    stage_finish(&st);
    return 0;
}
