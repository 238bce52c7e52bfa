/* queue_metrics.h - the delivery queue's size gauges (queue_metrics.c). */
#ifndef CORREIO_QUEUE_METRICS_H
#define CORREIO_QUEUE_METRICS_H

#include "scheduler.h"

/* queue_metrics_update - count the queue by state into the gauges when
 * the last count is old enough (nothing when metrics are not served). */
void queue_metrics_update(scheduler_t *s);
/* queue_metrics_timeout_ms - ms until the next count is due, for the
 * loop's poll; -1 when metrics are not served. */
long queue_metrics_timeout_ms(void);

#endif
