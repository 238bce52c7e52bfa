/* results.h - what the delivery threads share with the main thread: the
 * envelope a job reads (work_msg, reference counted, read-only) and the
 * box where finished attempts wait (results_t: a list under a mutex and
 * an eventfd that wakes the main loop).  The Maildir workers and the
 * outbound SMTP/LMTP engine both post into one box, so the scheduler has
 * one fd to watch and one kind of result to record. */
#ifndef CORREIO_DELIVERY_RESULTS_H
#define CORREIO_DELIVERY_RESULTS_H

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

/* The outcome of one delivery attempt for one recipient.  Every string
 * is owned (free with work_result_clear). */
typedef struct work_result {
    char               queue_id[QID_LEN + 1];
    unsigned           rcpt;        /* index into the envelope's rcpt */
    unsigned           tag;         /* the job's tag as submitted */
    Correio__RcptState state;       /* DELIVERED, DEFERRED or FAILED */
    char              *relay;       /* for the log: "maildir", "none", "discard",
                                     * "mx.example.com[192.0.2.1]:25" */
    char              *text;        /* status text for the log and the queue:
                                     * "host mx.example.com[192.0.2.1] said: 550
                                     * 5.1.1 no such user (in reply to RCPT TO
                                     * command)" */
    char               dsn_status[16];  /* enhanced status, "5.1.1"; "" lets
                                     * the scheduler derive one from state */
    char              *remote_mta;  /* "mx.example.com", NULL when no peer answered */
    char              *diagnostic;  /* the peer's reply, "550 5.1.1 no such user";
                                     * NULL when there was none */
    /* SMTP only: the peer took the recipient but does not speak DSN, so
     * no delivery notice will come from further on (DSN "relayed"). */
    int                relayed_no_dsn;
    /* best_mx_transport = local: this host is the best MX; the scheduler
     * routes the recipient to its local Maildir (state is DEFERRED). */
    int                loops_to_local;
} work_result;

/* work_result_clear - free r's strings (r itself is not freed). */
void work_result_clear(work_result *r);

typedef struct results results_t;

results_t *results_new(void);
/* results_post - move *r (its strings included) into the box and wake
 * the main thread; any thread. */
void results_post(results_t *b, const work_result *r);
/* results_fd - readable while results are waiting. */
int results_fd(const results_t *b);
/* results_collect - take every waiting result: returns how many and
 * *out (malloc'ed array: work_result_clear each, then free it). */
size_t results_collect(results_t *b, work_result **out);
/* results_free - drop what was never collected. */
void results_free(results_t **b);

#endif
