/* stage.c - the skeleton every stage program shares (see stage.h).
 *
 * Signal handlers only set a flag and write one byte to a non-blocking
 * self-pipe; the stage's loop watches signal_fd and calls
 * stage_take_signals() to learn what happened.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>
#include <zmq.h>

#include "curve.h"
#include "log.h"
#include "metrics.h"
#include "qid.h"
#include "stage.h"
#include "tap.h"
#include "xalloc.h"

#define STAGE_CONFIG_DIR_DEFAULT "/etc/correio"

static volatile sig_atomic_t sig_stop;
static volatile sig_atomic_t sig_bits;
static int sig_pipe[2] = {-1, -1};
static char *stage_config_dir;

static void on_signal(int sig)
{
    int saved = errno;
    char c = (char)sig;

    if (sig == SIGHUP) {
        sig_bits |= STAGE_SIG_RELOAD;
    } else {
        sig_stop = 1;
        sig_bits |= STAGE_SIG_STOP;
    }
    if (sig_pipe[1] >= 0)
        (void)!write(sig_pipe[1], &c, 1);  /* pipe full: a wake-up is pending anyway */
    errno = saved;
}

static void usage(const char *name)
{
    fprintf(stderr, "usage: correio-%s [-c CONFIG_DIR] [-v]\n", name);
    exit(2);
}

static void setup_signals(void)
{
    struct sigaction sa;

    if (pipe2(sig_pipe, O_NONBLOCK | O_CLOEXEC) != 0)
        log_fatal("cannot create the signal pipe: %m");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    if (sigaction(SIGTERM, &sa, NULL) != 0 || sigaction(SIGINT, &sa, NULL) != 0
        || sigaction(SIGHUP, &sa, NULL) != 0)
        log_fatal("sigaction: %m");
    sa.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &sa, NULL) != 0)
        log_fatal("sigaction SIGPIPE: %m");
}

void stage_start(stage_t *st, const char *name, int argc, char **argv)
{
    const char *dir = STAGE_CONFIG_DIR_DEFAULT;
    bool verbose = false;
    char *err = NULL;
    int ch;

    memset(st, 0, sizeof(*st));
    st->name = name;
    st->signal_fd = -1;
    log_init(name);
    opterr = 0;
    optind = 1;
    while ((ch = getopt(argc, argv, "c:v")) != -1) {
        switch (ch) {
        case 'c':
            dir = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        default:
            usage(name);
        }
    }
    if (optind != argc)
        usage(name);
    log_set_verbose(verbose);
    stage_config_dir = xstrdup(dir);

    if ((st->cfg = config_load(dir, &err)) == NULL)
        log_fatal("%s", err);
    st->hostname = xstrdup(config_str(st->cfg, "myhostname"));
    qid_init(st->hostname);
    setup_signals();
    st->signal_fd = sig_pipe[0];
    if ((st->zctx = zmq_ctx_new()) == NULL)
        log_fatal("cannot create the ZeroMQ context: %s", zmq_strerror(zmq_errno()));
    log_debug("starting: config %s/correio.conf host %s", dir, st->hostname);
    if (curve_init(st->zctx, st->cfg, name, &err) != 0)   /* before any socket */
        log_fatal("%s", err);
    tap_open(st);
    metrics_http_start(st);    /* STAGE_metrics_listen: /metrics, /healthz, /ready */
}

int stage_take_signals(stage_t *st)
{
    char drain[64];
    int bits;

    (void)st;
    while (sig_pipe[0] >= 0 && read(sig_pipe[0], drain, sizeof(drain)) > 0)
        ;
    /* sig_atomic_t has no atomic exchange; block the signals for a moment */
    {
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        bits = sig_bits;
        sig_bits = 0;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    return bits;
}

bool stage_stopping(void)
{
    return sig_stop != 0;
}

bool stage_reload(stage_t *st, bool (*apply)(void *ctx), void *ctx)
{
    char *err = NULL;
    config_t *cfg = config_load(stage_config_dir ? stage_config_dir
                                : STAGE_CONFIG_DIR_DEFAULT, &err);
    config_t *old = st->cfg;

    if (cfg == NULL) {
        log_warn("reload failed, keeping the old configuration: %s", err);
        free(err);
        return false;
    }
    st->cfg = cfg;
    if (apply && !apply(ctx)) {
        st->cfg = old;
        config_free(&cfg);
        log_warn("reload failed, keeping the old configuration");
        return false;
    }
    config_free(&old);
    log_info("configuration reloaded");
    return true;
}

/* rearm_parent_death - the kernel clears the parent-death signal on a
 * change of credentials: arm it again so that a stage started by
 * `correio run` never outlives a supervisor that was killed, and leave if
 * that already happened.  A stage started otherwise (by hand, by systemd,
 * as a container's service) is left alone. */
static void rearm_parent_death(void)
{
    const char *master = getenv(STAGE_MASTER_ENV);

    if (master == NULL || *master == 0)
        return;
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0)
        log_fatal("prctl PR_SET_PDEATHSIG: %m");
    if ((long)getppid() != atol(master))
        log_fatal("supervisor pid %s exited while this stage started", master);
}

void stage_drop_privileges(stage_t *st)
{
    const char *owner;
    struct passwd *pw;

    if (geteuid() != 0)
        return;
    owner = config_str(st->cfg, "mail_owner");
    errno = 0;
    if ((pw = getpwnam(owner)) == NULL)
        log_fatal("mail_owner %s: no such user (create it, e.g. "
                  "`useradd --system --no-create-home %s`, or set mail_owner)", owner, owner);
    if (pw->pw_uid == 0)
        log_fatal("mail_owner %s has uid 0: it must be an unprivileged user", owner);
    if (initgroups(owner, pw->pw_gid) != 0)
        log_fatal("initgroups %s: %m", owner);
    if (setgid(pw->pw_gid) != 0)
        log_fatal("setgid %ld: %m", (long)pw->pw_gid);
    if (setuid(pw->pw_uid) != 0)
        log_fatal("setuid %ld: %m", (long)pw->pw_uid);
    if (setuid(0) == 0 || geteuid() != pw->pw_uid || getegid() != pw->pw_gid)
        log_fatal("could not drop privileges to %s", owner);
    rearm_parent_death();
    log_debug("running as %s (uid %ld)", owner, (long)pw->pw_uid);
}

void stage_finish(stage_t *st)
{
    metrics_http_stop();       /* its thread uses the context */
    tap_close();
    if (st->zctx) {
        while (zmq_ctx_term(st->zctx) != 0 && zmq_errno() == EINTR)
            ;
        st->zctx = NULL;
    }
    curve_finish();             /* joins the ZAP thread, which the term ended */
    config_free(&st->cfg);
    xfree(&st->hostname);
    xfree(&stage_config_dir);
}
