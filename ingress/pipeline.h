/* pipeline.h - what the ingress has spooled but delivery has not yet
 * acknowledged: sending envelopes to the classifier, resending them with
 * exponential backoff until an event (owned, discarded, rejected) comes
 * back, then removing them from the spool.
 *
 * Entries live in a hash table by queue id; those waiting to be sent are
 * in a FIFO (a full PUSH keeps them there, nothing blocks, nothing is
 * dropped); those sent wait in a min-heap by resend time.
 */
#ifndef CORREIO_PIPELINE_H
#define CORREIO_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "ingress.h"

typedef struct pipeline pipeline_t;

/* pipeline_new - sends on ig->push, rereads and deletes in ig->spool,
 * keeps ig->unacked in step; ack_ms is the first ack timeout, doubling up
 * to ack_max_ms. */
pipeline_t *pipeline_new(ingress_t *ig, int64_t ack_ms, int64_t ack_max_ms);
void pipeline_free(pipeline_t **pl);

/* pipeline_add - a message is durable in the spool: queue it for sending.
 * data (len bytes, the packed envelope) is taken over and freed after the
 * first send; NULL means "read it from the spool when sending". */
void pipeline_add(pipeline_t *pl, const char *qid, uint8_t *data, size_t len);
/* pipeline_flush - send queued envelopes while the PUSH socket takes them. */
void pipeline_flush(pipeline_t *pl);
/* pipeline_deadline - monotonic ms of the next timer (INT64_MAX: none). */
int64_t pipeline_deadline(const pipeline_t *pl);
/* pipeline_run_timers - queue again every envelope whose ack is overdue. */
void pipeline_run_timers(pipeline_t *pl, int64_t now_ms);
/* pipeline_event - handle one frame received on the events socket. */
void pipeline_event(pipeline_t *pl, const void *data, size_t len);
/* pipeline_next_attempt - wall-clock microseconds of qid's next send (now
 * when it is waiting to be sent); false when qid is not in flight. */
bool pipeline_next_attempt(const pipeline_t *pl, const char *qid, uint64_t *when_us);
/* pipeline_count - envelopes not yet acknowledged. */
size_t pipeline_count(const pipeline_t *pl);

#endif
