/* workers.h - the delivery worker threads (delivery_workers of them).
 *
 * The main thread submits jobs (one recipient of one envelope); a worker
 * writes the Maildir file and posts a result.  Results wait in a
 * mutex-protected list; an eventfd becomes readable when there are any,
 * so the main zmq_poll loop wakes up and collects them.  Workers never
 * touch LMDB: the main thread records results in batched transactions.
 */
#ifndef CORREIO_DELIVERY_WORKERS_H
#define CORREIO_DELIVERY_WORKERS_H

#include <stddef.h>
#include "qid.h"
#include "wire.h"

/* An envelope shared, read-only, by the jobs of its recipients. */
typedef struct work_msg work_msg;

/* work_msg_new - wrap env (ownership moves in); one reference. */
work_msg *work_msg_new(Envelope *env);
const Envelope *work_msg_envelope(const work_msg *m);
work_msg *work_msg_ref(work_msg *m);
/* work_msg_unref - drop one reference (any thread); NULLs *m. */
void work_msg_unref(work_msg **m);

/* The outcome of one delivery attempt for one recipient.  Also made by
 * the main thread for routes it settles itself (relay, error). */
typedef struct work_result {
    char               queue_id[QID_LEN + 1];
    unsigned           rcpt;       /* index into the envelope's rcpt */
    unsigned           tag;        /* the job's tag as submitted (unused
                                    * when made by the main thread) */
    Correio__RcptState state;      /* DELIVERED, DEFERRED or FAILED */
    const char        *relay;      /* "maildir", "none" (static text) */
    char              *text;       /* status text, owned */
} work_result;

typedef struct workers workers_t;

/* workers_start - n threads; fatal if they cannot be created. */
workers_t *workers_start(unsigned n);
/* workers_submit - deliver recipient rcpt of m into mail_root (copied);
 * takes one reference of m.  tag comes back in the job's result. */
void workers_submit(workers_t *w, work_msg *m, unsigned rcpt, const char *mail_root,
                    unsigned tag);
/* workers_fd - readable while results are waiting. */
int workers_fd(const workers_t *w);
/* workers_collect - take every waiting result: returns how many and
 * *out (malloc'ed array; free each text and the array). */
size_t workers_collect(workers_t *w, work_result **out);
/* workers_stop - let running jobs finish, drop queued ones (their
 * recipients stay pending in the queue), join the threads.  Results of
 * finished jobs can still be collected afterwards. */
void workers_stop(workers_t *w);
void workers_free(workers_t **w);

#endif
