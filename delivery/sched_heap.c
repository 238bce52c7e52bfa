/* sched_heap.c - the delivery schedule's min-heap (see sched_heap.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sched_heap.h"
#include "xalloc.h"

static int sched_item_cmp(const sched_item *a, const sched_item *b)
{
    if (a->due_us != b->due_us)
        return a->due_us < b->due_us ? -1 : 1;
    int c = strcmp(a->queue_id, b->queue_id);
    return c ? c : (a->rcpt > b->rcpt) - (a->rcpt < b->rcpt);
}

int sched_qid_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int sched_item_id_cmp(const void *a, const void *b)
{
    const sched_item *x = a, *y = b;
    int c = strcmp(x->queue_id, y->queue_id);
    return c ? c : (x->rcpt > y->rcpt) - (x->rcpt < y->rcpt);
}

void sched_heap_push(sched_heap *h, const char *queue_id, unsigned rcpt, uint64_t due_us)
{
    if (h->n == h->cap) {
        h->cap = h->cap ? 2 * h->cap : 256;
        h->item = xrealloc(h->item, h->cap * sizeof *h->item);
    }
    sched_item it = {.due_us = due_us, .rcpt = rcpt};
    snprintf(it.queue_id, sizeof it.queue_id, "%s", queue_id);
    size_t i = h->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (sched_item_cmp(&h->item[parent], &it) <= 0)
            break;
        h->item[i] = h->item[parent];
        i = parent;
    }
    h->item[i] = it;
}

/* sift_down - move item[i] down to its place. */
static void sift_down(sched_heap *h, size_t i)
{
    sched_item it = h->item[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && sched_item_cmp(&h->item[child + 1], &h->item[child]) < 0)
            child++;
        if (sched_item_cmp(&it, &h->item[child]) <= 0)
            break;
        h->item[i] = h->item[child];
        i = child;
    }
    h->item[i] = it;
}

const sched_item *sched_heap_top(const sched_heap *h)
{
    return h->n ? &h->item[0] : NULL;
}

void sched_heap_pop(sched_heap *h, sched_item *out)
{
    *out = h->item[0];
    h->item[0] = h->item[--h->n];
    if (h->n)
        sift_down(h, 0);
}

void sched_heap_remove_ids(sched_heap *h, const char *const *ids, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < h->n; i++) {
        const char *key = h->item[i].queue_id;
        if (!bsearch(&key, ids, n, sizeof *ids, sched_qid_cmp))
            h->item[kept++] = h->item[i];
    }
    h->n = kept;
    for (size_t i = kept / 2; i-- > 0;)
        sift_down(h, i);
}

void sched_heap_free(sched_heap *h)
{
    xfree(&h->item);
    h->n = h->cap = 0;
}
