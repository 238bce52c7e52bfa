/* sched_heap.h - the delivery schedule: recipients waiting for their
 * time, in a min-heap on (due time, queue id, recipient index). */
#ifndef CORREIO_DELIVERY_SCHED_HEAP_H
#define CORREIO_DELIVERY_SCHED_HEAP_H

#include <stddef.h>
#include <stdint.h>
#include "qid.h"

typedef struct sched_item {
    uint64_t due_us;                 /* wall time */
    char     queue_id[QID_LEN + 1];
    unsigned rcpt;
} sched_item;

typedef struct sched_heap {
    sched_item *item;
    size_t      n, cap;
} sched_heap;

/* sched_heap_push - schedule recipient rcpt of queue_id at due_us. */
void sched_heap_push(sched_heap *h, const char *queue_id, unsigned rcpt, uint64_t due_us);
/* sched_heap_top - the earliest item, NULL when empty. */
const sched_item *sched_heap_top(const sched_heap *h);
/* sched_heap_pop - remove the earliest item into *out (h not empty). */
void sched_heap_pop(sched_heap *h, sched_item *out);
/* sched_heap_remove_ids - drop every item of the n queue ids in ids
 * (sorted with sched_qid_cmp). */
void sched_heap_remove_ids(sched_heap *h, const char *const *ids, size_t n);
void sched_heap_free(sched_heap *h);

/* qsort/bsearch comparators: queue id strings (const char *), and items
 * by (queue id, recipient). */
int sched_qid_cmp(const void *a, const void *b);
int sched_item_id_cmp(const void *a, const void *b);

#endif
