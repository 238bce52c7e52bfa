/* supervisor.c - `correio run` and `correio stop`.
 *
 * `run` is the master of one host: it prepares the directories, takes
 * the pid-file lock, starts the stages (consumers first: delivery,
 * router, classifier, ingress, then the fetcher) as `correio-NAME -c DIR [-v]`, and keeps
 * them running.  They inherit its stderr, so everything is one log
 * stream.  A stage that exits is started again after a backoff (100 ms,
 * doubling up to 10 s, back to 100 ms once it has run 30 s).  SIGTERM or
 * SIGINT stops every stage (SIGKILL after 10 s) and exits 0; a second one
 * kills at once.  SIGHUP is passed on to the stages, which reload.
 *
 * Signal handlers only set flags and write a byte to a self-pipe; the
 * loop sleeps in poll(2) on that pipe until a signal or the next restart
 * is due.  The stages' programs are found next to this one
 * (/proc/self/exe) or in $CORREIO_LIBEXEC.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ctl.h"
#include "fsutil.h"
#include "log.h"
#include "stage.h"
#include "supervisor.h"
#include "timeutil.h"
#include "xalloc.h"

#define BACKOFF_FIRST_MS       100
#define BACKOFF_MAX_MS         (10 * 1000)
#define BACKOFF_RESET_AFTER_MS (30 * 1000)  /* a stage that ran this long was healthy */
#define STOP_GRACE_MS          (10 * 1000)  /* SIGTERM, then SIGKILL after this */
#define STOP_WAIT_MS           (15 * 1000)  /* `correio stop` waits this long */

typedef struct stage_proc {
    const char *name;
    char       *path;          /* the program */
    pid_t       pid;           /* 0 when not running */
    int64_t     started_ms;    /* monotonic */
    int64_t     restart_at_ms; /* monotonic; 0 when no restart is due */
    int64_t     backoff_ms;    /* delay before the next restart */
} stage_proc;

/* Start order: each consumer binds before its producers connect. */
static stage_proc sv_stages[] = {
    {"delivery", NULL, 0, 0, 0, BACKOFF_FIRST_MS},
    {"router", NULL, 0, 0, 0, BACKOFF_FIRST_MS},
    {"classifier", NULL, 0, 0, 0, BACKOFF_FIRST_MS},
    {"ingress", NULL, 0, 0, 0, BACKOFF_FIRST_MS},
    {"fetcher", NULL, 0, 0, 0, BACKOFF_FIRST_MS},   /* a producer of the ingress */
};
#define SV_NSTAGES (sizeof(sv_stages) / sizeof(sv_stages[0]))

static char *sv_config_dir;   /* absolute, passed to the stages */
static bool  sv_verbose;
static pid_t sv_pid;

static volatile sig_atomic_t sig_stop;   /* count of SIGTERM/SIGINT */
static volatile sig_atomic_t sig_stop_signo;
static volatile sig_atomic_t sig_reload;
static int sig_pipe[2] = {-1, -1};

/* on_signal - set a flag and wake the loop; nothing else. */
static void on_signal(int signo)
{
    int saved = errno;
    ssize_t r;

    if (signo == SIGTERM || signo == SIGINT) {
        sig_stop++;
        sig_stop_signo = signo;
    } else if (signo == SIGHUP) {
        sig_reload = 1;
    }
    r = write(sig_pipe[1], "", 1);   /* a full pipe already wakes the loop */
    (void)r;
    errno = saved;
}

static void signals_install(void)
{
    static const int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGCHLD};
    struct sigaction sa;

    if (pipe2(sig_pipe, O_CLOEXEC | O_NONBLOCK) != 0)
        log_fatal("cannot make the signal pipe: %m");
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    sigfillset(&sa.sa_mask);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
        if (sigaction(sigs[i], &sa, NULL) != 0)
            log_fatal("sigaction: %m");
    /* a closed log pipe must not kill the master; the child restores it */
    signal(SIGPIPE, SIG_IGN);
}

/* wait_signal - sleep until a signal arrives or timeout_ms (-1: forever)
 * passes; drains the self-pipe. */
static void wait_signal(int64_t timeout_ms)
{
    struct pollfd pfd = {sig_pipe[0], POLLIN, 0};
    char drain[64];

    if (timeout_ms > INT_MAX)
        timeout_ms = INT_MAX;
    if (poll(&pfd, 1, (int)timeout_ms) < 0 && errno != EINTR)
        log_fatal("poll: %m");
    while (read(sig_pipe[0], drain, sizeof(drain)) > 0)
        ;
}

/* ---------------------------------------------------------------- pid file */

static char *pid_file_path(const config_t *cfg)
{
    return xasprintf("%s/%s", config_str(cfg, "run_directory"), SUPERVISOR_PID_FILE);
}

/* lock_holder - the pid holding a write lock on fd's file, or 0. */
static pid_t lock_holder(int fd)
{
    struct flock fl;

    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type == F_UNLCK)
        return 0;
    return fl.l_pid;
}

pid_t supervisor_master_pid(const config_t *cfg)
{
    char *path = pid_file_path(cfg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    pid_t pid = 0;

    if (fd >= 0) {
        pid = lock_holder(fd);
        close(fd);
    }
    free(path);
    return pid;
}

/* pid_file_take - lock and write run_directory/master.pid; fatal when
 * another master holds it.  The descriptor stays open (and locked) until
 * the process ends. */
static int pid_file_take(const char *path)
{
    struct flock fl;
    char text[32];
    int fd, n;

    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        log_fatal("cannot open the pid file %s: %m", path);
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    if (fcntl(fd, F_SETLK, &fl) != 0) {
        if (errno == EACCES || errno == EAGAIN)
            log_fatal("correio is already running as pid %ld (correio stop ends it)",
                      (long)lock_holder(fd));
        log_fatal("cannot lock the pid file %s: %m", path);
    }
    n = snprintf(text, sizeof(text), "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) != 0 || pwrite(fd, text, (size_t)n, 0) != n)
        log_fatal("cannot write the pid file %s: %m", path);
    return fd;
}

/* ---------------------------------------------------------------- set-up */

/* libexec_dir - where correio-ingress and the others are. */
static char *libexec_dir(void)
{
    const char *env = getenv("CORREIO_LIBEXEC");
    char self[PATH_MAX];
    ssize_t n;

    if (env && env[0])
        return xstrdup(env);
    if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) < 0)
        log_fatal("cannot read /proc/self/exe: %m; set CORREIO_LIBEXEC to the"
                  " directory that holds correio-ingress");
    self[n] = 0;
    *strrchr(self, '/') = 0;
    return xstrdup(self[0] ? self : "/");
}

/* make_dir - create the directory a parameter names; as root give it to
 * the mail owner (the stages run as that user). */
static void make_dir(const config_t *cfg, const char *param, mode_t mode,
                     const struct passwd *owner)
{
    const char *path = config_str(cfg, param);

    if (path[0] == 0)
        log_fatal("%s is empty; set it in %s/correio.conf", param, sv_config_dir);
    if (fs_mkdir_p(path, mode) != 0)
        log_fatal("cannot create %s %s: %m", param, path);
    if (owner && chown(path, owner->pw_uid, owner->pw_gid) != 0)
        log_fatal("cannot give %s %s to %s: %m", param, path, owner->pw_name);
}

/* owner_can_reach - can owner use path (mode: access(2) bits)?  Checked
 * in a child that becomes owner, so every parent directory counts. */
static bool owner_can_reach(const struct passwd *owner, const char *path, int mode)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        return true;   /* cannot tell; the stage will say */
    if (pid == 0) {
        if (setgroups(0, NULL) != 0 || setgid(owner->pw_gid) != 0 ||
            setuid(owner->pw_uid) != 0)
            _exit(0);
        _exit(access(path, mode) == 0 ? 0 : 1);
    }
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return !(WIFEXITED(status) && WEXITSTATUS(status) == 1);
}

static void prepare(const config_t *cfg)
{
    const char *owner_name = config_str(cfg, "mail_owner");
    struct passwd *owner = NULL;

    if (geteuid() == 0 && (owner = getpwnam(owner_name)) == NULL)
        log_fatal("mail_owner %s does not exist: create it with useradd --system %s"
                  " or set mail_owner in %s/correio.conf",
                  owner_name, owner_name, sv_config_dir);
    if (owner && owner->pw_uid == 0)
        log_fatal("mail_owner %s has uid 0: it must be an unprivileged user (useradd"
                  " --system correio, then mail_owner = correio)", owner_name);
    make_dir(cfg, "data_directory", 0700, owner);
    make_dir(cfg, "run_directory", 0750, owner);
    make_dir(cfg, "mail_root", 0750, owner);
    ctl_users_file_access(cfg, log_warn);
    if (owner) {
        static const char *const dirs[] = {"data_directory", "run_directory", "mail_root"};
        char *users = config_path(cfg, "users_file");

        for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++)
            if (!owner_can_reach(owner, config_str(cfg, dirs[i]), R_OK | W_OK | X_OK))
                log_fatal("mail_owner %s cannot use %s %s: a parent directory is closed"
                          " to it (chmod o+x the parents, or move it)",
                          owner->pw_name, dirs[i], config_str(cfg, dirs[i]));
        if (access(users, F_OK) == 0 && !owner_can_reach(owner, users, R_OK))
            log_fatal("mail_owner %s cannot read the users file %s: a parent directory"
                      " is closed to it", owner->pw_name, users);
        free(users);
    }
}

/* refuse_leftovers - stages of an earlier master that was killed with
 * SIGKILL may still run; two sets on one run_directory would steal each
 * other's sockets. */
static void refuse_leftovers(const config_t *cfg)
{
    static const char *const params[] = {
        "ingress_admin_endpoint", "classifier_admin_endpoint",
        "router_admin_endpoint", "delivery_admin_endpoint", "fetcher_admin_endpoint",
    };

    for (size_t i = 0; i < sizeof(params) / sizeof(params[0]); i++) {
        const char *endpoint = config_str(cfg, params[i]);

        if (ctl_ipc_listening(endpoint) == 1)
            log_fatal("a stage of an earlier run still listens on %s; stop it first"
                      " (correio -c %s status shows its pid)", endpoint + 6, sv_config_dir);
    }
}

/* ---------------------------------------------------------------- stages */

static void stage_spawn(stage_proc *s)
{
    pid_t pid;

    s->restart_at_ms = 0;
    if ((pid = fork()) < 0) {
        log_warn("cannot fork for stage %s: %m; trying again in %.1f s",
                 s->name, (double)s->backoff_ms / 1000);
        s->restart_at_ms = time_mono_ms() + s->backoff_ms;
        return;
    }
    if (pid == 0) {
        char *argv[] = {s->path, (char *)"-c", sv_config_dir,
                        sv_verbose ? (char *)"-v" : NULL, NULL};
        int null;

        /* do not outlive the master (even when it is SIGKILLed) */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != sv_pid)
            _exit(1);
        signal(SIGPIPE, SIG_DFL);
        {
            char master[24];

            snprintf(master, sizeof(master), "%ld", (long)sv_pid);
            setenv(STAGE_MASTER_ENV, master, 1);
        }
        if ((null = open("/dev/null", O_RDONLY)) >= 0 && null != STDIN_FILENO) {
            dup2(null, STDIN_FILENO);
            close(null);
        }
        execv(s->path, argv);
        log_warn("cannot execute %s: %m", s->path);
        _exit(127);
    }
    s->pid = pid;
    s->started_ms = time_mono_ms();
    log_info("stage %s started as pid %ld", s->name, (long)pid);
}

static stage_proc *stage_by_pid(pid_t pid)
{
    for (size_t i = 0; i < SV_NSTAGES; i++)
        if (sv_stages[i].pid == pid)
            return &sv_stages[i];
    return NULL;
}

/* describe - "exited with status 1" / "killed by signal 9 (Killed)". */
static void describe(int status, char *dst, size_t size)
{
    if (WIFEXITED(status))
        snprintf(dst, size, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(dst, size, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    else
        snprintf(dst, size, "ended with wait status 0x%x", (unsigned)status);
}

/* reap - collect every stage that ended; when not stopping, schedule its
 * restart with backoff. */
static void reap(bool stopping)
{
    pid_t pid;
    int status;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        stage_proc *s = stage_by_pid(pid);
        int64_t now = time_mono_ms();
        char how[96];

        if (s == NULL)
            continue;
        s->pid = 0;
        describe(status, how, sizeof(how));
        if (stopping) {
            if ((WIFEXITED(status) && WEXITSTATUS(status) == 0) ||
                (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM))
                log_info("stage %s pid %ld stopped", s->name, (long)pid);
            else
                log_info("stage %s pid %ld %s", s->name, (long)pid, how);
            continue;
        }
        if (now - s->started_ms >= BACKOFF_RESET_AFTER_MS)
            s->backoff_ms = BACKOFF_FIRST_MS;
        s->restart_at_ms = now + s->backoff_ms;
        log_warn("stage %s pid %ld %s, restarting in %.1f s",
                 s->name, (long)pid, how, (double)s->backoff_ms / 1000);
        s->backoff_ms *= 2;
        if (s->backoff_ms > BACKOFF_MAX_MS)
            s->backoff_ms = BACKOFF_MAX_MS;
    }
}

static void signal_stages(int signo)
{
    /* reverse start order: the ingress stops taking mail first */
    for (size_t i = SV_NSTAGES; i-- > 0;)
        if (sv_stages[i].pid > 0 && kill(sv_stages[i].pid, signo) != 0 && errno != ESRCH)
            log_warn("cannot signal stage %s pid %ld: %m",
                     sv_stages[i].name, (long)sv_stages[i].pid);
}

static bool any_running(void)
{
    for (size_t i = 0; i < SV_NSTAGES; i++)
        if (sv_stages[i].pid > 0)
            return true;
    return false;
}

/* stop_all - SIGTERM, wait up to STOP_GRACE_MS (or a second signal),
 * then SIGKILL what is left. */
static void stop_all(void)
{
    int64_t deadline = time_mono_ms() + STOP_GRACE_MS;

    log_info("terminating on signal %s", sig_stop_signo == SIGINT ? "INT" : "TERM");
    signal_stages(SIGTERM);
    for (;;) {
        int64_t left;

        reap(true);
        if (!any_running() || sig_stop > 1 || (left = deadline - time_mono_ms()) <= 0)
            break;
        wait_signal(left);
    }
    for (size_t i = 0; i < SV_NSTAGES; i++) {
        stage_proc *s = &sv_stages[i];

        if (s->pid <= 0)
            continue;
        log_warn("stage %s pid %ld did not stop%s, killing it", s->name, (long)s->pid,
                 sig_stop > 1 ? "" : " within 10 s");
        kill(s->pid, SIGKILL);
        while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
            ;
        s->pid = 0;
    }
}

static void supervise(void)
{
    for (;;) {
        int64_t now, timeout = -1;

        if (sig_stop)
            return;
        if (sig_reload) {
            sig_reload = 0;
            log_info("reload: passing SIGHUP on to the stages");
            signal_stages(SIGHUP);
        }
        reap(false);
        now = time_mono_ms();
        for (size_t i = 0; i < SV_NSTAGES; i++) {
            stage_proc *s = &sv_stages[i];

            if (s->pid != 0 || s->restart_at_ms == 0)
                continue;
            if (now >= s->restart_at_ms)
                stage_spawn(s);
            if (s->restart_at_ms && (timeout < 0 || s->restart_at_ms - now < timeout))
                timeout = s->restart_at_ms - now;
        }
        wait_signal(timeout);
    }
}

int cmd_run(const ctl_opts *o, int argc, char **argv)
{
    char *libexec, *err = NULL, *pid_path;
    config_t *cfg;
    int lock_fd;

    (void)argv;
    if (argc != 1)
        return ctl_usage_error("run", "run takes no arguments");
    log_init("master");
    sv_verbose = o->verbose;
    sv_pid = getpid();
    if ((sv_config_dir = realpath(o->config_dir, NULL)) == NULL)
        log_fatal("configuration directory %s: %m", o->config_dir);
    if ((cfg = config_load(sv_config_dir, &err)) == NULL)
        log_fatal("%s", err);

    libexec = libexec_dir();
    for (size_t i = 0; i < SV_NSTAGES; i++) {
        sv_stages[i].path = xasprintf("%s/correio-%s", libexec, sv_stages[i].name);
        if (access(sv_stages[i].path, X_OK) != 0)
            log_fatal("cannot run %s: %m (build it with make, or set CORREIO_LIBEXEC"
                      " to the directory that holds the stage programs)", sv_stages[i].path);
    }
    prepare(cfg);
    pid_path = pid_file_path(cfg);
    lock_fd = pid_file_take(pid_path);
    refuse_leftovers(cfg);
    signals_install();

    log_info("daemon started -- configuration %s", sv_config_dir);
    for (size_t i = 0; i < SV_NSTAGES; i++)
        stage_spawn(&sv_stages[i]);
    supervise();
    stop_all();

    unlink(pid_path);
    close(lock_fd);
    log_info("daemon stopped");
    for (size_t i = 0; i < SV_NSTAGES; i++)
        xfree(&sv_stages[i].path);
    free(pid_path);
    free(libexec);
    free(sv_config_dir);
    config_free(&cfg);
    return 0;
}

int cmd_stop(const ctl_opts *o, int argc, char **argv)
{
    config_t *cfg;
    pid_t pid;
    int64_t deadline;
    int rc = 0;

    (void)argv;
    if (argc != 1)
        return ctl_usage_error("stop", "stop takes no arguments");
    cfg = ctl_load_config(o);
    if ((pid = supervisor_master_pid(cfg)) <= 0) {
        ctl_error("correio is not running (no master holds %s/%s)",
                  config_str(cfg, "run_directory"), SUPERVISOR_PID_FILE);
        config_free(&cfg);
        return 1;
    }
    if (kill(pid, SIGTERM) != 0) {
        ctl_error("cannot signal the master, pid %ld: %s", (long)pid, strerror(errno));
        config_free(&cfg);
        return 1;
    }
    deadline = time_mono_ms() + STOP_WAIT_MS;
    while (supervisor_master_pid(cfg) == pid) {
        if (time_mono_ms() >= deadline) {
            ctl_error("the master, pid %ld, is still running after %d s",
                      (long)pid, STOP_WAIT_MS / 1000);
            rc = 1;
            break;
        }
        usleep(50 * 1000);
    }
    if (rc == 0)
        printf("correio stopped (master pid %ld)\n", (long)pid);
    config_free(&cfg);
    return rc;
}
