/* queue_metrics.c - the delivery queue's size gauges for /metrics:
 * correio_delivery_queue_messages{queue="active|deferred|hold|quarantine"}.
 *
 * Counting means reading every record, so it runs every few seconds from
 * scheduler_run, and less often when the queue is so big that a count
 * takes long (never more than about 5% of the loop's time).
 */
#include <stdint.h>

#include "log.h"
#include "metrics.h"
#include "queue_metrics.h"
#include "scheduler_int.h"
#include "timeutil.h"

#define QUEUE_METRICS_EVERY_MS 5000     /* the usual Prometheus scrape is 15 s */
#define QUEUE_METRICS_COST     20       /* wait at least 20 x what a count took */

typedef struct queue_counts {
    unsigned long active, deferred, hold, quarantine;
} queue_counts;

static int64_t queue_metrics_next_ms;

/* queue_metrics_visit - one record into its queue (as `correio queue`
 * lists it); a record with a quarantined recipient counts as quarantine. */
static void queue_metrics_visit(void *ctx, const queue_rec *r)
{
    queue_counts *c = ctx;
    const char *state;

    for (size_t i = 0; i < r->n; i++)
        if (r->rcpt[i].state == CORREIO__RCPT_STATE__RCPT_QUARANTINED) {
            c->quarantine++;
            return;
        }
    state = sched_rec_state(r);
    if (state[0] == 'h')
        c->hold++;
    else if (state[0] == 'd')
        c->deferred++;
    else
        c->active++;
}

void queue_metrics_update(scheduler_t *s)
{
    int64_t start = time_mono_ms(), took;
    queue_counts c = {0, 0, 0, 0};

    if (!metrics_serving() || start < queue_metrics_next_ms)
        return;
    if (queue_scan(s->queue, queue_metrics_visit, &c, (size_t)-1) < 0) {
        queue_metrics_next_ms = start + QUEUE_METRICS_EVERY_MS;
        return;                 /* queue_scan warned */
    }
    metrics_set("correio_delivery_queue_messages", "queue=\"active\"", (double)c.active);
    metrics_set("correio_delivery_queue_messages", "queue=\"deferred\"", (double)c.deferred);
    metrics_set("correio_delivery_queue_messages", "queue=\"hold\"", (double)c.hold);
    metrics_set("correio_delivery_queue_messages", "queue=\"quarantine\"", (double)c.quarantine);
    took = time_mono_ms() - start;
    queue_metrics_next_ms = start + (took * QUEUE_METRICS_COST > QUEUE_METRICS_EVERY_MS
                                     ? took * QUEUE_METRICS_COST : QUEUE_METRICS_EVERY_MS);
}

long queue_metrics_timeout_ms(void)
{
    int64_t left;

    if (!metrics_serving())
        return -1;
    left = queue_metrics_next_ms - time_mono_ms();
    return left > 0 ? (long)left : 0;
}
