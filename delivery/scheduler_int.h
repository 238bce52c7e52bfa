/* scheduler_int.h - the scheduler's state, shared by its own files only
 * (scheduler.c: input, schedule, dispatch, results; queue_admin.c: the
 * operator's verbs; quarantine.c: held spam).  Nothing outside
 * delivery/scheduler*.c, delivery/queue_admin.c, delivery/quarantine.c,
 * delivery/queue_metrics.c and delivery/drain.c includes it. */
#ifndef CORREIO_DELIVERY_SCHEDULER_INT_H
#define CORREIO_DELIVERY_SCHEDULER_INT_H

#include <zmq.h>
#include "events.h"
#include "notices.h"
#include "outbound.h"
#include "queue.h"
#include "results.h"
#include "sched_heap.h"
#include "scheduler.h"
#include "workers.h"

#define SCHED_BATCH 512                    /* envelopes per group commit */

/* One attempt under way (a Maildir job: one recipient; an outbound job:
 * the recipients of one envelope that share a next hop); its slot
 * number is the job's tag. */
typedef struct sched_job {
    char      queue_id[QID_LEN + 1];       /* "" when the slot is free */
    unsigned *rcpt;
    size_t    n, left;                     /* recipients, results still due */
    bool      outbound;
} sched_job;

struct scheduler {
    stage_t     *st;
    queue_t     *queue;
    events_t    *events;
    results_t   *box;
    workers_t   *workers;
    outbound_t  *outbound;
    notices_t   *notices;
    size_t       max_local, max_outbound;  /* jobs in flight at most */
    size_t       n_local, n_outbound;      /* jobs in flight */
    sched_job   *jobs;                     /* max_local + max_outbound slots */
    size_t       n_jobs;
    unsigned    *free_jobs;                /* free slot numbers (a stack) */
    size_t       n_free_jobs;
    sched_heap   heap;
    work_result *results;                  /* finished attempts not yet recorded */
    size_t       n_results, cap_results;
    int64_t      record_retry_ms;          /* after a failed commit: not before */
    int64_t      accept_after_ms;          /* after a failed store: not before */
    int64_t      next_prune_ms;
    uint64_t     quarantine_due_us;        /* earliest quarantine expiry; 0: none held */
    zmq_msg_t    frames[SCHED_BATCH];
    unsigned long long n_received, n_duplicates, n_delivered, n_deferred, n_failed;
    unsigned long long n_quarantined;
    struct drain *drain;                   /* `correio drain` under way, or NULL */
};

/* sched_busy - the recipients with an attempt under way (a job has it,
 * or its result is not recorded yet), sorted with sched_item_id_cmp; *n
 * is how many.  The caller frees the array. */
sched_item *sched_busy(const scheduler_t *s, size_t *n);
/* sched_schedule_now - put every recipient of r that is not final, not
 * held and not in busy on the schedule at now_us. */
void sched_schedule_now(scheduler_t *s, const queue_rec *r, const sched_item *busy,
                        size_t n_busy, uint64_t now_us);
/* sched_rec_state - what a listing shows: "hold", "deferred" (some
 * recipient waits for a retry and none is untried) or "active" (some
 * recipient not tried yet, or all are done and notices are on their
 * way). */
const char *sched_rec_state(const queue_rec *r);
/* admin_header_section - the fields correio prepended and the client's
 * header section of env, printable, bounded (queue_admin.c); malloc'ed. */
char *admin_header_section(const Envelope *env);

/* ---- quarantine.c: recipients held for the operator */

/* quarantine_wanted - is r, as the router sent it, to be held
 * (SPAM_ACTION_QUARANTINE and still pending)? */
bool quarantine_wanted(const Recipient *r);
/* quarantine_take - within the transaction that stored env just now:
 * its wanted recipients become RCPT_QUARANTINED at now_us.  0, or -1
 * (warned): abort the transaction. */
int quarantine_take(queue_txn *t, const Envelope *env, uint64_t now_us);
/* quarantine_taken - after that commit: log the held recipients and
 * note when they expire. */
void quarantine_taken(scheduler_t *s, const Envelope *env, uint64_t now_us);
/* quarantine_note_rec - at startup: note when r's held recipients
 * expire. */
void quarantine_note_rec(scheduler_t *s, const queue_rec *r);
/* quarantine_sweep - drop the held copies past spam_quarantine_lifetime
 * (no bounce), when one is due. */
void quarantine_sweep(scheduler_t *s);
/* quarantine_timeout_ms - until the next expiry, -1 when none is held. */
long quarantine_timeout_ms(const scheduler_t *s);
/* quarantine_reconfigure - after a reload: look again soon (the
 * lifetime may be shorter now). */
void quarantine_reconfigure(scheduler_t *s);
/* quarantine_admin - "quarantine-list [ADDRESS|@DOMAIN]", "quarantine-show
 * ID", "quarantine-release ID [RCPT|ALL]", "quarantine-delete ID
 * [RCPT|ALL]"; false when command is none of them. */
bool quarantine_admin(scheduler_t *s, const AdminRequest *req, AdminReply *reply);

/* ---- drain.c: hand the queue to the peers (`correio drain`) */

typedef struct drain drain_t;

/* drain_admin - "drain" (start, or say how far it is: "draining: left=N
 * handed=N peers=N attempts=N"), "drain-take B64..." (a draining peer's
 * envelopes, answered after the commit); false for other commands. */
bool drain_admin(scheduler_t *s, const AdminRequest *req, AdminReply *reply);
/* drain_active - draining: no new attempt starts, the input is closed. */
bool drain_active(const scheduler_t *s);
/* drain_run - the hand-over's next step (never blocks); from scheduler_run. */
void drain_run(scheduler_t *s);
/* drain_timeout_ms - the loop's wake-up while draining; -1 otherwise. */
long drain_timeout_ms(const scheduler_t *s);
void drain_free(drain_t **d);

#endif
