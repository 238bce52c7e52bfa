/* metrics.h - Prometheus metrics of one stage process, and the HTTP
 * endpoint that serves them with /healthz and /ready.
 *
 * Every metric family is declared once, in the table in metrics.c (name,
 * type, help line), the way config_params.c declares parameters; stage
 * code then moves a series with one call:
 *   metrics_inc("correio_ingress_messages_total", "result=\"accepted\"");
 *   metrics_set("correio_delivery_queue_messages", "queue=\"deferred\"", n);
 *   metrics_observe("correio_pipeline_latency_seconds", NULL, secs);
 * labels is NULL or a fixed string of key="value" pairs written by the
 * code (never text from outside); a new (family, labels) pair is a new
 * series.  An unknown family name is an internal bug (log_panic).
 * Every call is thread-safe (one mutex: the router's policy thread and
 * the HTTP thread share the registry with the stage's loop).
 *
 * The HTTP side (libmicrohttpd, its own thread) listens on the stage's
 * STAGE_metrics_listen (host:port; empty: none) and serves
 *   /metrics  text exposition format 0.0.4
 *   /healthz  200 when the stage's loop answers "ping" on its admin
 *             socket within metrics_health_timeout, else 503 (liveness)
 *   /ready    200 when it answers "ready" with status 0 (readiness; see
 *             health.h), else 503 with the reason
 * Both health answers go through the loop, so a stuck loop is not live.
 */
#ifndef CORREIO_METRICS_H
#define CORREIO_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct stage;

void metrics_inc(const char *name, const char *labels);
void metrics_add(const char *name, const char *labels, double v);
/* metrics_incf - metrics_inc with labels made by printf (values from a
 * fixed set: enum names, never text from outside); cut at 256 bytes. */
void metrics_incf(const char *name, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* metrics_set - a gauge's value. */
void metrics_set(const char *name, const char *labels, double v);
/* metrics_observe - one histogram observation (seconds, bytes...). */
void metrics_observe(const char *name, const char *labels, double v);
/* metrics_observe_since_us - observe (now - t_us) seconds, t_us a wall
 * clock time in microseconds since the epoch (Envelope.received_at);
 * nothing when t_us is 0 or in the future. */
void metrics_observe_since_us(const char *name, const char *labels, uint64_t t_us);

/* metrics_render - the whole registry as exposition text 0.0.4,
 * malloc'ed (the caller frees).  Families in table order, with HELP and
 * TYPE lines; families nobody touched yet are left out. */
char *metrics_render(void);
/* metrics_reset - forget every series (for tests). */
void metrics_reset(void);

/* metrics_http_start - when STAGE_metrics_listen is set, serve the
 * endpoints above on it; fatal when it cannot listen.  Called by
 * stage_start; metrics_http_stop (stage_finish) joins the thread. */
void metrics_http_start(struct stage *st);
void metrics_http_stop(void);
/* metrics_serving - is the HTTP endpoint up (worth keeping gauges that
 * cost work up to date)? */
bool metrics_serving(void);

#endif
