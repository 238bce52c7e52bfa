/* stage.h - the skeleton every stage program shares.
 *
 * A stage's main() is: stage_start() (options, config, logging, signals,
 * ZeroMQ context), open its state, wire its sockets, run its loop until
 * stage_stopping(), stage_finish().  Command line of every stage:
 *   correio-NAME [-c CONFIG_DIR] [-v]
 * (default CONFIG_DIR /etc/correio; -v logs debug lines).
 *
 * Signals only set flags and write a byte to a self-pipe, so a loop that
 * polls stage->signal_fd wakes up at once: SIGTERM and SIGINT stop, SIGHUP
 * asks for a reload, SIGPIPE is ignored.
 */
#ifndef CORREIO_STAGE_H
#define CORREIO_STAGE_H

#include <stdbool.h>
#include "config.h"

typedef struct stage {
    const char *name;     /* "ingress", "classifier", ... */
    char       *hostname; /* myhostname, for logs and events */
    config_t   *cfg;
    void       *zctx;     /* the process's one ZeroMQ context */
    int         signal_fd;/* readable after a signal; see stage_take_signals */
} stage_t;

/* The supervisor (correio run) puts its pid in this variable of every
 * stage it starts. */
#define STAGE_MASTER_ENV "CORREIO_MASTER_PID"

#define STAGE_SIG_STOP   1
#define STAGE_SIG_RELOAD 2

/* stage_start - everything up to "open your state": fatal on a bad
 * command line or configuration (the message names file, line and
 * parameter). */
void stage_start(stage_t *st, const char *name, int argc, char **argv);
/* stage_take_signals - drain the self-pipe and return the STAGE_SIG_*
 * bits that arrived since the last call. */
int  stage_take_signals(stage_t *st);
/* stage_stopping - has SIGTERM/SIGINT arrived? (safe to call anywhere) */
bool stage_stopping(void);
/* stage_reload - read the configuration again and make it st->cfg; then
 * apply(ctx), if given, puts it to use and may refuse it (returning
 * false, having logged why).  On any error the old configuration stays
 * (returns false). */
bool stage_reload(stage_t *st, bool (*apply)(void *ctx), void *ctx);
/* stage_drop_privileges - when running as root, become mail_owner (its
 * uid, gid and supplementary groups).  Call after binding network
 * listeners.  Fatal when mail_owner does not exist. */
void stage_drop_privileges(stage_t *st);
/* stage_finish - close the ZeroMQ context, free the config. */
void stage_finish(stage_t *st);

#endif
