/* workers.c - delivery worker threads (see workers.h): a job list under a
 * mutex and condition variable, a result list under a mutex, and an
 * eventfd that wakes the main loop when results arrive. */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include "log.h"
#include "maildir.h"
#include "workers.h"
#include "xalloc.h"

struct work_msg {
    Envelope *env;
    int       refs;
};

typedef struct work_job {
    struct work_job *next;
    work_msg        *msg;
    unsigned         rcpt;
    unsigned         tag;
    char            *mail_root;
} work_job;

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    work_job       *head, *tail;      /* jobs not started yet */
    bool            stop;
    pthread_t      *threads;
    unsigned        n;
    int             efd;
    pthread_mutex_t rlock;
    work_result    *results;           /* waiting for the main thread */
    size_t          n_results, cap_results;
};

work_msg *work_msg_new(Envelope *env)
{
    work_msg *m = xcalloc(1, sizeof *m);
    m->env = env;
    m->refs = 1;
    return m;
}

const Envelope *work_msg_envelope(const work_msg *m)
{
    return m->env;
}

work_msg *work_msg_ref(work_msg *m)
{
    __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
    return m;
}

void work_msg_unref(work_msg **mp)
{
    work_msg *m = *mp;
    if (!m)
        return;
    *mp = NULL;
    if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0) {
        wire_free_envelope(&m->env);
        xfree(&m);
    }
}

static void workers_lock(pthread_mutex_t *mu)
{
    int rc = pthread_mutex_lock(mu);
    if (rc != 0)
        log_panic("workers_lock: %s", strerror(rc));
}

static void workers_unlock(pthread_mutex_t *mu)
{
    int rc = pthread_mutex_unlock(mu);
    if (rc != 0)
        log_panic("workers_unlock: %s", strerror(rc));
}

/* workers_post - hand a result to the main thread and wake it. */
static void workers_post(workers_t *w, const work_result *r)
{
    workers_lock(&w->rlock);
    if (w->n_results == w->cap_results) {
        w->cap_results = w->cap_results ? 2 * w->cap_results : 64;
        w->results = xrealloc(w->results, w->cap_results * sizeof *w->results);
    }
    w->results[w->n_results++] = *r;
    workers_unlock(&w->rlock);
    uint64_t one = 1;
    while (write(w->efd, &one, sizeof one) < 0 && errno == EINTR)
        ;
}

/* workers_run_job - one Maildir delivery. */
static void workers_run_job(workers_t *w, work_job *job)
{
    const Envelope *env = job->msg->env;
    const Recipient *rc = env->rcpt[job->rcpt];
    maildir_msg m = {
        .sender = env->reverse_path,
        .recipient = rc->address,
        .headers = env->prepend_headers,
        .n_headers = env->n_prepend_headers,
        .body = env->body.data,
        .body_len = env->body.data ? env->body.len : 0,
        .arrival = (long long)(env->received_at / 1000000),
    };
    char err[256], stable_id[64];
    bool duplicate;
    work_result r = {.rcpt = job->rcpt, .tag = job->tag, .relay = "maildir"};
    snprintf(r.queue_id, sizeof r.queue_id, "%s", env->queue_id);
    snprintf(stable_id, sizeof stable_id, "%sR%u", env->queue_id, job->rcpt);
    m.stable_id = stable_id;
    int res = maildir_deliver(job->mail_root, rc->mailbox, &m, &duplicate, err, sizeof err);
    if (res == 0) {
        r.state = CORREIO__RCPT_STATE__RCPT_DELIVERED;
        r.text = xstrdup(duplicate ? "already in maildir from an earlier attempt"
                                   : "delivered to maildir");
    } else if (res == MAILDIR_UNSAFE) {    /* never retried */
        r.state = CORREIO__RCPT_STATE__RCPT_FAILED;
        r.text = xasprintf("5.1.3 %s", err);
    } else {                               /* anything else: retried with backoff */
        r.state = CORREIO__RCPT_STATE__RCPT_DEFERRED;
        r.text = xstrdup(err);
    }
    workers_post(w, &r);
}

static void workers_job_free(work_job **jp)
{
    work_msg_unref(&(*jp)->msg);
    xfree(&(*jp)->mail_root);
    xfree(jp);
}

static void *workers_main(void *arg)
{
    workers_t *w = arg;
    for (;;) {
        workers_lock(&w->lock);
        while (!w->stop && !w->head) {
            int rc = pthread_cond_wait(&w->cond, &w->lock);
            if (rc != 0)
                log_panic("workers_main: pthread_cond_wait: %s", strerror(rc));
        }
        if (w->stop) {
            workers_unlock(&w->lock);
            return NULL;
        }
        work_job *job = w->head;
        w->head = job->next;
        if (!w->head)
            w->tail = NULL;
        workers_unlock(&w->lock);
        workers_run_job(w, job);
        workers_job_free(&job);
    }
}

workers_t *workers_start(unsigned n)
{
    workers_t *w = xcalloc(1, sizeof *w);
    if (pthread_mutex_init(&w->lock, NULL) != 0 || pthread_mutex_init(&w->rlock, NULL) != 0
        || pthread_cond_init(&w->cond, NULL) != 0)
        log_fatal("cannot create worker locks");
    w->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (w->efd < 0)
        log_fatal("cannot create an eventfd: %s", strerror(errno));
    w->threads = xcalloc(n, sizeof *w->threads);
    for (w->n = 0; w->n < n; w->n++) {
        int rc = pthread_create(&w->threads[w->n], NULL, workers_main, w);
        if (rc != 0)
            log_fatal("cannot start delivery worker %u: %s (lower delivery_workers)",
                      w->n, strerror(rc));
    }
    return w;
}

void workers_submit(workers_t *w, work_msg *m, unsigned rcpt, const char *mail_root,
                    unsigned tag)
{
    work_job *job = xcalloc(1, sizeof *job);
    job->msg = work_msg_ref(m);
    job->rcpt = rcpt;
    job->tag = tag;
    job->mail_root = xstrdup(mail_root);
    workers_lock(&w->lock);
    if (w->tail)
        w->tail->next = job;
    else
        w->head = job;
    w->tail = job;
    int rc = pthread_cond_signal(&w->cond);
    workers_unlock(&w->lock);
    if (rc != 0)
        log_panic("workers_submit: pthread_cond_signal: %s", strerror(rc));
}

int workers_fd(const workers_t *w)
{
    return w->efd;
}

size_t workers_collect(workers_t *w, work_result **out)
{
    uint64_t count;
    while (read(w->efd, &count, sizeof count) < 0 && errno == EINTR)
        ;                                  /* EAGAIN: nothing was signalled */
    workers_lock(&w->rlock);
    size_t n = w->n_results;
    *out = w->results;
    w->results = NULL;
    w->n_results = w->cap_results = 0;
    workers_unlock(&w->rlock);
    return n;
}

void workers_stop(workers_t *w)
{
    workers_lock(&w->lock);
    w->stop = true;
    int rc = pthread_cond_broadcast(&w->cond);
    workers_unlock(&w->lock);
    if (rc != 0)
        log_panic("workers_stop: pthread_cond_broadcast: %s", strerror(rc));
    for (unsigned i = 0; i < w->n; i++) {
        rc = pthread_join(w->threads[i], NULL);
        if (rc != 0)
            log_panic("workers_stop: pthread_join: %s", strerror(rc));
    }
    w->n = 0;
    while (w->head) {                      /* not started: stay pending on disk */
        work_job *job = w->head;
        w->head = job->next;
        workers_job_free(&job);
    }
    w->tail = NULL;
}

void workers_free(workers_t **wp)
{
    workers_t *w = *wp;
    if (!w)
        return;
    if (w->n)
        workers_stop(w);
    for (size_t i = 0; i < w->n_results; i++)
        xfree(&w->results[i].text);
    xfree(&w->results);
    xfree(&w->threads);
    if (close(w->efd) != 0)
        log_warn("close eventfd: %s", strerror(errno));
    pthread_mutex_destroy(&w->lock);
    pthread_mutex_destroy(&w->rlock);
    pthread_cond_destroy(&w->cond);
    xfree(wp);
}
