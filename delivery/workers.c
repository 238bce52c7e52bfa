/* workers.c - Maildir delivery threads (see workers.h): a job list under
 * a mutex and condition variable; results go into the shared box.  A job
 * checks for a Delivered-To loop, picks the folder, checks the quota
 * (quota.h: users_file's rule, else the job's limit) and writes the file
 * (maildir.h). */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "address.h"
#include "log.h"
#include "maildir.h"
#include "quota.h"
#include "workers.h"
#include "xalloc.h"

typedef struct work_job {
    struct work_job *next;
    work_msg        *msg;
    unsigned         rcpt;
    unsigned         tag;
    char            *mail_root;
    char            *folder;
    unsigned long long quota;
    int              quota_bounce;
} work_job;

struct workers {
    pthread_mutex_t lock;
    pthread_cond_t  cond;
    work_job       *head, *tail;      /* jobs not started yet */
    bool            stop;
    pthread_t      *threads;
    unsigned        n;
    results_t      *box;
};

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

/* workers_settle - the result's state, DSN status and text. */
static void workers_settle(work_result *r, Correio__RcptState state, const char *dsn,
                           char *text)
{
    r->state = state;
    snprintf(r->dsn_status, sizeof r->dsn_status, "%s", dsn);
    r->text = text;
}

/* workers_quota - check the recipient's quota before writing: 0 go on
 * (*limit is the limit that applies, 0 none), -1 settled in *r. */
static int workers_quota(const work_job *job, const Recipient *rc, const char *root,
                         size_t size, unsigned long long *limit, work_result *r)
{
    char err[256];

    *limit = quota_users_limit(rc->mailbox, job->quota);
    if (*limit == 0)
        return 0;
    switch (quota_check(root, *limit, size, NULL, err, sizeof err)) {
    case QUOTA_OK:
        return 0;
    case QUOTA_TOO_BIG:                    /* can never fit: no use retrying */
        workers_settle(r, CORREIO__RCPT_STATE__RCPT_FAILED, "5.2.2",
                       xstrdup("5.2.2 mailbox full (the message is larger than the quota)"));
        return -1;
    case QUOTA_OVER:
        if (job->quota_bounce)
            workers_settle(r, CORREIO__RCPT_STATE__RCPT_FAILED, "5.2.2",
                           xstrdup("5.2.2 mailbox full"));
        else
            workers_settle(r, CORREIO__RCPT_STATE__RCPT_DEFERRED, "4.2.2",
                           xstrdup("4.2.2 mailbox full"));
        return -1;
    case QUOTA_FAIL:
        break;
    }
    workers_settle(r, CORREIO__RCPT_STATE__RCPT_DEFERRED, "4.3.0",
                   xasprintf("4.3.0 cannot check the quota: %s", err));
    return -1;
}

/* workers_run_job - one Maildir delivery: loop check, folder, quota,
 * the file, the quota's record. */
static void workers_run_job(workers_t *w, work_job *job)
{
    const Envelope *env = work_msg_envelope(job->msg);
    const Recipient *rc = env->rcpt[job->rcpt];
    maildir_msg m = {
        .sender = env->reverse_path,
        .recipient = rc->address,
        .headers = env->prepend_headers,
        .n_headers = env->n_prepend_headers,
        .body = env->body.data,
        .body_len = env->body.data ? env->body.len : 0,
        .drop_headers = (const char *const *)env->drop_headers,
        .n_drop_headers = env->n_drop_headers,
        .arrival = (long long)(env->received_at / 1000000),
        .folder = job->folder,
        .subject_tag = rc->subject_tag,
    };
    char err[256], stable_id[64], to[ADDR_PATH_MAX + 8];
    bool duplicate;
    unsigned long long limit = 0;
    work_result r = {.rcpt = job->rcpt, .tag = job->tag, .relay = xstrdup("maildir")};
    snprintf(r.queue_id, sizeof r.queue_id, "%s", env->queue_id);
    snprintf(stable_id, sizeof stable_id, "%sR%u", env->queue_id, job->rcpt);
    m.stable_id = stable_id;
    log_printable(to, sizeof to, rc->address, strlen(rc->address));

    if (job->folder[0] && !maildir_folder_valid(job->folder)) {
        char f[128];
        log_printable(f, sizeof f, job->folder, strlen(job->folder));
        log_warn("%s: to=<%s>: folder \"%s\" is not a valid Maildir++ name; "
                 "delivering to the inbox", env->queue_id, to, f);
        m.folder = "";
    }
    if (maildir_delivered_to_loop(&m)) {
        workers_settle(&r, CORREIO__RCPT_STATE__RCPT_FAILED, "5.4.6",
                       xasprintf("5.4.6 mail forwarding loop for %s", to));
        goto post;
    }
    char *root = maildir_mailbox_safe(rc->mailbox)
        ? xasprintf("%s/%s", job->mail_root, rc->mailbox) : NULL;
    size_t size = maildir_msg_size(&m);
    if (root && workers_quota(job, rc, root, size, &limit, &r) < 0) {
        xfree(&root);
        goto post;
    }
    int res = maildir_deliver(job->mail_root, rc->mailbox, &m, &duplicate, err, sizeof err);
    if (res == 0) {
        workers_settle(&r, CORREIO__RCPT_STATE__RCPT_DELIVERED, "2.0.0",
                       duplicate ? xstrdup("already in maildir from an earlier attempt")
                       : m.folder[0] ? xasprintf("delivered to maildir folder %s", m.folder)
                       : xstrdup("delivered to maildir"));
        if (!duplicate && root && quota_add(root, limit, size) != 0)
            log_warn("%s: to=<%s>: cannot update %s/%s: %m; it is counted again later",
                     env->queue_id, to, root, QUOTA_FILE);
    } else if (res == MAILDIR_UNSAFE) {    /* never retried */
        workers_settle(&r, CORREIO__RCPT_STATE__RCPT_FAILED, "5.1.3",
                       xasprintf("5.1.3 %s", err));
    } else {                               /* anything else: retried with backoff */
        workers_settle(&r, CORREIO__RCPT_STATE__RCPT_DEFERRED, "4.3.0", xstrdup(err));
    }
    xfree(&root);
post:
    results_post(w->box, &r);
}

static void workers_job_free(work_job **jp)
{
    work_msg_unref(&(*jp)->msg);
    xfree(&(*jp)->mail_root);
    xfree(&(*jp)->folder);
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

workers_t *workers_start(unsigned n, results_t *box)
{
    workers_t *w = xcalloc(1, sizeof *w);
    if (pthread_mutex_init(&w->lock, NULL) != 0 || pthread_cond_init(&w->cond, NULL) != 0)
        log_fatal("cannot create worker locks");
    w->box = box;
    w->threads = xcalloc(n, sizeof *w->threads);
    for (w->n = 0; w->n < n; w->n++) {
        int rc = pthread_create(&w->threads[w->n], NULL, workers_main, w);
        if (rc != 0)
            log_fatal("cannot start delivery worker %u: %s (lower delivery_workers)",
                      w->n, strerror(rc));
    }
    return w;
}

void workers_submit(workers_t *w, work_msg *m, unsigned rcpt, const maildir_job_opts *opts,
                    unsigned tag)
{
    work_job *job = xcalloc(1, sizeof *job);
    job->msg = work_msg_ref(m);
    job->rcpt = rcpt;
    job->tag = tag;
    job->mail_root = xstrdup(opts->mail_root);
    job->folder = xstrdup(opts->folder ? opts->folder : "");
    job->quota = opts->quota;
    job->quota_bounce = opts->quota_bounce;
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
    xfree(&w->threads);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
    xfree(wp);
}
