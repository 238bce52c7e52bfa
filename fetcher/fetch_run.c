/* fetch_run.c - the scheduler and its worker threads (see fetch_run.h).
 *
 * The main thread owns the slots (due times, running flags); workers
 * only take jobs off the queue, run the session with their own submit
 * client (a ZeroMQ socket is never shared between threads), put the job
 * on the done list and poke the eventfd.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "fetch_run_int.h"
#include "log.h"
#include "policy_client.h"
#include "timeutil.h"
#include "xalloc.h"

#define FETCH_SUBMIT_HWM     64
#define LEASE_BUSY_RETRY_US  (30 * 1000000ULL)   /* another session held it: look again */
#define TICK_MAX_MS          (60 * 1000)

/* ------------------------------------------------------------ accounts */

const char *fetch_run_owner(const fetch_run_t *fr, const char *name)
{
    if (fr->nnodes == 0)
        return fr->st->hostname;
    return fr->nodes[policy_rendezvous((const char *const *)fr->nodes, fr->nnodes, name)];
}

acct_slot *fetch_run_slot(fetch_run_t *fr, const char *name)
{
    for (size_t i = 0; fr->accounts && i < fr->accounts->n; i++)
        if (strcmp(fr->accounts->v[i].name, name) == 0)
            return &fr->slots[i];
    return NULL;
}

/* read_nodes - fetcher_nodes from the configuration in use. */
static void read_nodes(fetch_run_t *fr)
{
    const char *const *l = config_list(fr->st->cfg, "fetcher_nodes");

    for (size_t i = 0; i < fr->nnodes; i++)
        xfree(&fr->nodes[i]);
    xfree(&fr->nodes);
    fr->nnodes = 0;
    fr->in_nodes = false;
    while (l[fr->nnodes])
        fr->nnodes++;
    fr->nodes = xcalloc(fr->nnodes + 1, sizeof(*fr->nodes));
    for (size_t i = 0; i < fr->nnodes; i++) {
        fr->nodes[i] = xstrdup(l[i]);
        if (strcasecmp(l[i], fr->st->hostname) == 0)
            fr->in_nodes = true;
    }
    if (fr->nnodes && !fr->in_nodes)
        log_warn("myhostname %s is not one of fetcher_nodes: this node fetches no account",
                 fr->st->hostname);
}

/* load_accounts - read the file; install it when it parses.  Slots keep
 * their running flag and due time by name. */
static bool load_accounts(fetch_run_t *fr)
{
    const config_t *cfg = fr->st->cfg;
    char *path = config_path(cfg, "fetch_accounts_file"), *err = NULL;
    fetch_accounts_t *a = accounts_load(path, config_dir(cfg), config_time_ms(cfg, "fetch_interval"),
                                        config_time_ms(cfg, "fetch_timeout"), &err);
    acct_slot *slots;
    uint64_t now = time_now_us();

    xfree(&path);
    if (!a) {
        log_warn("%s%s", err, fr->accounts ? "; the accounts in use stay" : "; no accounts");
        xfree(&fr->accounts_error);
        fr->accounts_error = err;
        return false;
    }
    xfree(&fr->accounts_error);
    slots = xcalloc(a->n + 1, sizeof(*slots));
    for (size_t i = 0; i < a->n; i++) {
        acct_slot *old = fetch_run_slot(fr, a->v[i].name);
        slots[i].ac = &a->v[i];
        slots[i].owned = fr->nnodes == 0
                         || (fr->in_nodes
                             && strcasecmp(fetch_run_owner(fr, a->v[i].name), fr->st->hostname) == 0);
        if (old) {
            slots[i].running = old->running;
            slots[i].now = old->now;
            slots[i].due_us = old->due_us;
        } else {
            fetch_status s;
            fetch_state_status(fr->state, a->v[i].name, &s);
            slots[i].due_us = s.next_try ? s.next_try : now;
        }
    }
    accounts_free(&fr->accounts);
    xfree(&fr->slots);
    fr->accounts = a;
    fr->slots = slots;
    log_info("accounts: %zu in %s", a->n, a->path);
    return true;
}

/* ------------------------------------------------------------ workers */

static void *worker_main(void *arg)
{
    fetch_run_t *fr = arg;
    submit_client_t *submit = submit_client_new(fr->st->zctx, fr->st->cfg, fr->submit_endpoint,
                                                FETCH_SUBMIT_HWM);

    for (;;) {
        fetch_job *job;
        uint64_t one = 1;

        pthread_mutex_lock(&fr->mu);
        while (!fr->stop && !fr->q_head)
            pthread_cond_wait(&fr->cond, &fr->mu);
        if (fr->stop) {
            pthread_mutex_unlock(&fr->mu);
            break;
        }
        job = fr->q_head;
        fr->q_head = job->next;
        if (!fr->q_head)
            fr->q_tail = NULL;
        pthread_mutex_unlock(&fr->mu);

        fetch_session(&fr->env, &job->ac, submit, stage_stopping, &job->out);

        pthread_mutex_lock(&fr->mu);
        job->next = fr->d_head;
        fr->d_head = job;
        pthread_mutex_unlock(&fr->mu);
        if (write(fr->efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
            log_panic("fetcher: eventfd write: %s", strerror(errno));
    }
    submit_client_free(&submit);
    return NULL;
}

fetch_run_t *fetch_run_new(stage_t *st)
{
    fetch_run_t *fr = xcalloc(1, sizeof(*fr));
    const config_t *cfg = st->cfg;
    char *dir = xasprintf("%s/fetcher", config_str(cfg, "data_directory"));
    char *users = config_path(cfg, "users_file");
    int rc;

    fr->st = st;
    fr->state = fetch_state_open(dir, (size_t)config_size(cfg, "fetch_state_map_size"));
    xfree(&dir);
    pthread_mutex_init(&fr->users_mu, NULL);
    fr->users = users_open(users);
    xfree(&users);
    fr->env.state = fr->state;
    fr->env.node = st->hostname;
    fr->env.size_limit = (size_t)config_size(cfg, "fetch_message_size_limit");
    fr->env.rcpt_limit = (size_t)config_int(cfg, "smtpd_recipient_limit");
    fr->env.users = fr->users;
    fr->env.users_mu = &fr->users_mu;
    fr->submit_endpoint = xstrdup(config_str(cfg, "ingress_submit_endpoint"));
    read_nodes(fr);
    load_accounts(fr);

    pthread_mutex_init(&fr->mu, NULL);
    pthread_cond_init(&fr->cond, NULL);
    if ((fr->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0)
        log_fatal("fetcher: eventfd: %s", strerror(errno));
    fr->nthreads = (size_t)config_int(cfg, "fetch_concurrency");
    fr->threads = xcalloc(fr->nthreads, sizeof(*fr->threads));
    for (size_t i = 0; i < fr->nthreads; i++)
        if ((rc = pthread_create(&fr->threads[i], NULL, worker_main, fr)) != 0)
            log_fatal("fetcher: cannot start a worker thread: %s", strerror(rc));
    return fr;
}

void fetch_run_free(fetch_run_t **frp)
{
    fetch_run_t *fr = *frp;

    if (!fr)
        return;
    pthread_mutex_lock(&fr->mu);
    fr->stop = true;
    pthread_cond_broadcast(&fr->cond);
    pthread_mutex_unlock(&fr->mu);
    for (size_t i = 0; i < fr->nthreads; i++)
        pthread_join(fr->threads[i], NULL);
    for (fetch_job *j = fr->q_head, *next; j; j = next) {
        next = j->next;
        account_clear(&j->ac);
        xfree(&j);
    }
    for (fetch_job *j = fr->d_head, *next; j; j = next) {
        next = j->next;
        account_clear(&j->ac);
        xfree(&j);
    }
    xfree(&fr->threads);
    close(fr->efd);
    pthread_mutex_destroy(&fr->mu);
    pthread_cond_destroy(&fr->cond);
    accounts_free(&fr->accounts);
    xfree(&fr->accounts_error);
    xfree(&fr->slots);
    for (size_t i = 0; i < fr->nnodes; i++)
        xfree(&fr->nodes[i]);
    xfree(&fr->nodes);
    users_close(&fr->users);
    pthread_mutex_destroy(&fr->users_mu);
    xfree(&fr->submit_endpoint);
    fetch_state_close(&fr->state);
    xfree(frp);
}

int fetch_run_fd(const fetch_run_t *fr)
{
    return fr->efd;
}

/* reap - sessions that ended: the slot is free again, due at next_try. */
static void reap(fetch_run_t *fr)
{
    fetch_job *done;
    uint64_t v;

    if (read(fr->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        log_panic("fetcher: eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&fr->mu);
    done = fr->d_head;
    fr->d_head = NULL;
    pthread_mutex_unlock(&fr->mu);
    while (done) {
        fetch_job *next = done->next;
        acct_slot *slot = fetch_run_slot(fr, done->ac.name);

        if (slot) {
            slot->running = false;
            slot->due_us = done->out.ran ? done->out.next_try
                                         : time_now_us() + LEASE_BUSY_RETRY_US;
        }
        account_clear(&done->ac);
        xfree(&done);
        done = next;
    }
}

void fetch_run_tick(fetch_run_t *fr)
{
    uint64_t now = time_now_us();

    reap(fr);
    for (size_t i = 0; fr->accounts && i < fr->accounts->n; i++) {
        acct_slot *s = &fr->slots[i];
        fetch_job *job;

        if (!s->owned || s->running || !(s->now || s->due_us <= now))
            continue;
        s->running = true;
        s->now = false;
        job = xcalloc(1, sizeof(*job));
        account_copy(&job->ac, s->ac);
        pthread_mutex_lock(&fr->mu);
        if (fr->q_tail)
            fr->q_tail->next = job;
        else
            fr->q_head = job;
        fr->q_tail = job;
        pthread_cond_signal(&fr->cond);
        pthread_mutex_unlock(&fr->mu);
    }
}

int64_t fetch_run_timeout_ms(const fetch_run_t *fr)
{
    uint64_t now = time_now_us();
    int64_t best = TICK_MAX_MS;

    for (size_t i = 0; fr->accounts && i < fr->accounts->n; i++) {
        const acct_slot *s = &fr->slots[i];
        int64_t ms;

        if (!s->owned || s->running)
            continue;
        if (s->now || s->due_us <= now)
            return 0;
        ms = (int64_t)((s->due_us - now) / 1000) + 1;
        if (ms < best)
            best = ms;
    }
    return best;
}

bool fetch_run_reload(void *arg)
{
    fetch_run_t *fr = arg;

    /* fetch_message_size_limit and the endpoints are read at start only:
     * the workers use them without a lock */
    read_nodes(fr);
    if (!load_accounts(fr)) {
        for (size_t i = 0; fr->accounts && i < fr->accounts->n; i++)
            fr->slots[i].owned = fr->nnodes == 0
                || (fr->in_nodes && strcasecmp(fetch_run_owner(fr, fr->accounts->v[i].name),
                                               fr->st->hostname) == 0);
    }
    return true;
}
