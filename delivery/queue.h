/* queue.h - delivery's durable queue: one LMDB environment (directory
 * data_directory/queue) that this process alone owns.
 *
 *   envelopes  queue id -> record: per-recipient next retry time, then the
 *              packed Envelope whose Recipient fields carry each
 *              recipient's state, attempts, last result (text and DSN
 *              facts), the notices sent about it, and
 *              whose hold/hold_reason say whether it is on hold (as the
 *              ingress sent it, or as `correio queue hold/release` set it);
 *              a recipient in quarantine has state RCPT_QUARANTINED and
 *              its quarantined_at, until the operator releases or
 *              deletes it or spam_quarantine_lifetime drops it
 *   done       queue id -> 8 bytes, wall time (us) the id was finished;
 *              de-duplicates envelopes the ingress sends again, pruned
 *              after duplicate_retention_time
 *
 * Everything goes through transactions the caller opens and commits, so
 * that many envelopes or results share one commit (one fsync).  Only one
 * thread (delivery's main thread) uses the queue, one transaction at a
 * time.
 */
#ifndef CORREIO_DELIVERY_QUEUE_H
#define CORREIO_DELIVERY_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "config.h"
#include "wire.h"

typedef struct queue queue_t;
typedef struct queue_txn queue_txn;

/* One recipient's delivery state, decoded from a record.  Strings are
 * owned and never NULL. */
typedef struct queue_rcpt {
    Correio__RcptState state;
    uint32_t           attempts;
    uint64_t           next_us;       /* next retry, wall time in us; 0 = none */
    char              *status;        /* last result's text */
    char               dsn_status[16];/* last result's enhanced status */
    char              *remote_mta;    /* last result's peer, "" if none */
    char              *diagnostic;    /* its reply, "" if none */
    uint32_t           dsn_sent;      /* Notify bits of the notices sent */
    uint64_t           last_attempt_us;
    bool               relayed;       /* delivered to a server without DSN */
    Correio__RouteKind route;         /* may change: best_mx_transport = local */
    char              *mailbox;       /* with route MAILDIR */
    /* the router's spam action, cleared when the operator releases the
     * copy from quarantine (so it goes to the inbox untagged) */
    Correio__SpamAction spam_action;
    char              *subject_tag;   /* "" = none */
    char              *folder;        /* Maildir++ folder, "" = INBOX */
    uint64_t           quarantined_at;/* wall time in us held, 0 if never */
} queue_rcpt;

/* A decoded record.  env (owned, may be taken by setting it NULL) is as
 * the router sent it; the recipients' states are in rcpt[] and the hold
 * state in hold/hold_reason, not in env: queue_put writes those. */
typedef struct queue_rec {
    Envelope   *env;
    char       *queue_id;         /* owned copy, valid even when env is taken */
    size_t      n;                /* == env->n_rcpt */
    queue_rcpt *rcpt;
    bool        hold;             /* on hold: never scheduled until released */
    char       *hold_reason;      /* owned, never NULL; "" when not held */
} queue_rec;

/* queue_open - open (creating) dir with map_size bytes; fatal on failure. */
queue_t *queue_open(const char *dir, size_t map_size);
void queue_close(queue_t **q);

/* queue_begin - start a write or a read transaction.  NULL (after a
 * warning) when LMDB refuses. */
queue_txn *queue_begin(queue_t *q, bool write);
/* queue_commit - commit (with fsync) and free; -1 (after a warning) when
 * the commit failed and nothing of it is on disk. */
int queue_commit(queue_txn **t);
/* queue_abort - drop a transaction (always used to end a read one). */
void queue_abort(queue_txn **t);

/* queue_known - is qid queued or recently finished?  1 yes, 0 no, -1 on
 * an LMDB error (warned: then store nothing and ack nothing). */
int queue_known(queue_txn *t, const char *qid);
/* queue_put_new - store a just-received envelope: frame is its packed
 * form, env its decoded one.  -1 (after a warning) on failure: abort. */
int queue_put_new(queue_txn *t, const void *frame, size_t len, const Envelope *env);
/* queue_get - the record of qid, or NULL when there is none (or it does
 * not decode: warned).  Free with queue_rec_free. */
queue_rec *queue_get(queue_txn *t, const char *qid);
/* queue_put - store r's states (recipients, hold) back. */
int queue_put(queue_txn *t, const queue_rec *r);
/* queue_queued - is qid in envelopes (not looking at done)?  1 yes, 0 no,
 * -1 on an LMDB error (warned). */
int queue_queued(queue_txn *t, const char *qid);
/* queue_rec_pack - r as an Envelope with its recipients' states and hold
 * state (what queue_put stores after the retry times): a peer takes it
 * as it is (drain.c).  malloc'd, *len bytes. */
uint8_t *queue_rec_pack(const queue_rec *r, size_t *len);
/* queue_count - how many records are in envelopes; -1 on an LMDB error. */
long queue_count(queue_t *q);
/* queue_finish - drop qid from envelopes and remember it in done. */
int queue_finish(queue_txn *t, const char *qid, uint64_t now_us);

/* queue_scan - call fn for every record (in queue id order), at most max
 * records; returns how many were visited, -1 on an LMDB error.  fn must
 * not use the queue.  The record is freed after fn returns. */
typedef void (*queue_visit_fn)(void *ctx, const queue_rec *r);
long queue_scan(queue_t *q, queue_visit_fn fn, void *ctx, size_t max);
/* queue_scan_after - the same, starting with the first id after after
 * (NULL or "": from the start). */
long queue_scan_after(queue_t *q, const char *after, queue_visit_fn fn, void *ctx, size_t max);

/* queue_prune_done - delete up to max done entries finished before
 * before_us, looking at no more than 10 * max; returns how many went. */
size_t queue_prune_done(queue_t *q, uint64_t before_us, size_t max);

/* queue_lifetime_us - how long env may wait in the queue before its
 * deferred recipients fail: maximal_queue_lifetime, or
 * bounce_queue_lifetime for a bounce (the null sender). */
uint64_t queue_lifetime_us(const config_t *cfg, const Envelope *env);
/* queue_rcpt_final - nothing more will be tried for this state (a
 * quarantined recipient is not final: it waits for the operator). */
bool queue_rcpt_final(Correio__RcptState s);
/* queue_rcpt_active - the scheduler tries this state (pending or
 * deferred; when its record is not on hold). */
bool queue_rcpt_active(Correio__RcptState s);
/* queue_rcpt_set_status - replace r's status text with a copy of text. */
void queue_rcpt_set_status(queue_rcpt *r, const char *text);
/* queue_rcpt_set_str - replace the owned string *field with a copy of
 * text (NULL: ""). */
void queue_rcpt_set_str(char **field, const char *text);
/* queue_rec_set_hold - put r on hold with a copy of reason, or (hold
 * false) release it: the reason is cleared and every recipient that is
 * not final becomes due at once (its backoff is forgotten).  Only r in
 * memory changes: queue_put stores it. */
void queue_rec_set_hold(queue_rec *r, bool hold, const char *reason);
void queue_rec_free(queue_rec **r);

#endif
