/* scheduler.h - delivery's queue manager: takes envelopes off the PULL
 * socket into the LMDB queue (group commit, then OWNED events), decides
 * when each recipient is tried (at once, or after backoff), hands Maildir
 * jobs to the workers and SMTP/LMTP jobs to the outbound engine, records
 * their results (batched), sends notices to senders, and keeps held
 * envelopes off the schedule until they are released.  Everything here
 * runs on the main thread. */
#ifndef CORREIO_DELIVERY_SCHEDULER_H
#define CORREIO_DELIVERY_SCHEDULER_H

#include <stdbool.h>
#include "stage.h"
#include "wire.h"

typedef struct scheduler scheduler_t;

/* scheduler_new - open the queue (data_directory/queue), start the
 * workers, connect nothing yet (events connect lazily), and schedule
 * every recipient still pending or deferred in the queue. */
scheduler_t *scheduler_new(stage_t *st);
/* scheduler_accepting - false for a moment after the queue refused a
 * commit, so that the input is not read and dropped in a tight loop. */
bool scheduler_accepting(const scheduler_t *s);
/* scheduler_draining - `correio drain` asked this node to hand its queue
 * to its peers (drain.c): the caller closes its input for good. */
bool scheduler_draining(const scheduler_t *s);
/* scheduler_receive - take every envelope waiting on pull (up to one
 * batch), store the new ones in one commit, ack all of them. */
void scheduler_receive(scheduler_t *s, void *pull);
/* scheduler_results_fd - readable when workers have results. */
int scheduler_results_fd(const scheduler_t *s);
/* scheduler_run - collect results and record them, start what is due,
 * prune old de-duplication entries.  Call after every wake-up. */
void scheduler_run(scheduler_t *s);
/* scheduler_timeout_ms - how long the loop may sleep before
 * scheduler_run has something to do (-1: until input arrives). */
long scheduler_timeout_ms(const scheduler_t *s);
/* scheduler_submit_socket - the socket that brings the ingress's answers
 * about notices (poll ZMQ_POLLIN); scheduler_submit_ready reads them. */
void *scheduler_submit_socket(scheduler_t *s);
void scheduler_submit_ready(scheduler_t *s);
/* scheduler_reload - stage_reload's apply for SIGHUP. */
bool scheduler_reload(void *ctx);
/* scheduler_admin - admin_handler (queue_admin.c) for the operator's
 * verbs: "queue-list", "queue-show ID", "queue-hold", "queue-release",
 * "queue-delete", "queue-requeue" (IDs... or ALL [QUEUE]; the reply
 * lists the messages that changed, status 1 names ids not in the
 * queue), "queue-flush", "stats", and drain.c's "drain" and "drain-take". */
void scheduler_admin(void *ctx, const AdminRequest *req, AdminReply *reply);
/* scheduler_free - stop the workers, record what they finished, close
 * the queue and the event sockets. */
void scheduler_free(scheduler_t **s);

#endif
