/* workers.h - the Maildir delivery threads (delivery_workers of them).
 *
 * The main thread submits jobs (one recipient of one envelope); a worker
 * writes the Maildir file and posts a result into the shared result box
 * (results.h).  Workers never touch LMDB: the main thread records results
 * in batched transactions.
 */
#ifndef CORREIO_DELIVERY_WORKERS_H
#define CORREIO_DELIVERY_WORKERS_H

#include "results.h"

typedef struct workers workers_t;

/* What a Maildir job needs besides the envelope; copied at submit. */
typedef struct maildir_job_opts {
    const char *mail_root;
    const char *folder;          /* Maildir++ folder ("Junk"), "" = INBOX */
    unsigned long long quota;    /* bytes, 0 = none (users_file may override) */
    int         quota_bounce;    /* over quota: fail (1) or defer (0) */
} maildir_job_opts;

/* workers_start - n threads posting into box; fatal if they cannot be
 * created. */
workers_t *workers_start(unsigned n, results_t *box);
/* workers_submit - deliver recipient rcpt of m; takes one reference of m.
 * tag comes back in the job's result. */
void workers_submit(workers_t *w, work_msg *m, unsigned rcpt, const maildir_job_opts *opts,
                    unsigned tag);
/* workers_stop - let running jobs finish, drop queued ones (their
 * recipients stay pending in the queue), join the threads. */
void workers_stop(workers_t *w);
void workers_free(workers_t **w);

#endif
