/* metrics.c - the registry of a stage's metrics, its text exposition, and
 * the libmicrohttpd endpoint serving /metrics, /healthz and /ready.
 *
 * The registry is a small array of series under one mutex: stages move a
 * few series per message, the scrape reads them all every few seconds, so
 * a lock costs nothing worth a lock-free design.  Families are declared
 * below, once, with their help line (like config_params.c).
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <microhttpd.h>

#include "admin.h"
#include "buf.h"
#include "hostport.h"
#include "log.h"
#include "metrics.h"
#include "stage.h"
#include "xalloc.h"

typedef enum { METRIC_COUNTER, METRIC_GAUGE, METRIC_HISTOGRAM } metric_type;

typedef struct metric_family {
    const char *name;
    metric_type type;
    const char *help;
} metric_family;

/* Every family any stage moves.  Latencies are in seconds, sizes in bytes
 * (Prometheus base units). */
static const metric_family metric_families[] = {
    /* ingress */
    {"correio_ingress_sessions_total", METRIC_COUNTER,
     "SMTP sessions accepted"},
    {"correio_ingress_messages_total", METRIC_COUNTER,
     "messages accepted at the end of DATA (spooled, 250)"},
    {"correio_ingress_rejects_total", METRIC_COUNTER,
     "4xx and 5xx replies to SMTP commands and DATA, by reply class"},
    {"correio_ingress_received_bytes_total", METRIC_COUNTER,
     "bytes of the messages accepted"},
    {"correio_ingress_spool_messages", METRIC_GAUGE,
     "messages spooled and not yet acknowledged by the pipeline (limit: spool_message_limit)"},
    /* classifier */
    {"correio_classifier_messages_total", METRIC_COUNTER,
     "messages classified, by verdict (ham, spam, bypass) "},
    {"correio_classifier_scan_timeouts_total", METRIC_COUNTER,
     "scans cut short by classifier_scan_timeout"},
    {"correio_classifier_scan_seconds", METRIC_HISTOGRAM,
     "time from a message's arrival at the classifier to its verdict"},
    /* router */
    {"correio_router_routed_total", METRIC_COUNTER,
     "recipients routed, by route kind"},
    {"correio_router_policy_decisions_total", METRIC_COUNTER,
     "policy service decisions, by request kind and action (proto enum names)"},
    {"correio_router_spam_actions_total", METRIC_COUNTER,
     "spam actions chosen per recipient of a message with a verdict"},
    /* delivery */
    {"correio_delivery_results_total", METRIC_COUNTER,
     "delivery results per recipient, by destination kind (local, relay) and result"},
    {"correio_delivery_queue_messages", METRIC_GAUGE,
     "messages in the delivery queue, by queue (active, deferred, hold, quarantine)"},
    {"correio_pipeline_latency_seconds", METRIC_HISTOGRAM,
     "pipeline latency: from receipt by the ingress (received_at) to delivery of a recipient, by destination kind"},
    /* fetcher */
    {"correio_fetcher_messages_total", METRIC_COUNTER,
     "messages fetched from remote POP3/IMAP accounts"},
    {"correio_fetcher_errors_total", METRIC_COUNTER,
     "fetch sessions that failed (connection, login, protocol, state)"},
};

#define METRIC_NFAMILIES (sizeof(metric_families) / sizeof(metric_families[0]))

/* Histogram upper bounds in seconds: a fast local delivery to an hour in
 * the deferred queue. */
static const double metric_buckets[] = {
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600,
};

#define METRIC_NBUCKETS (sizeof(metric_buckets) / sizeof(metric_buckets[0]))

typedef struct metric_series {
    const metric_family *family;
    char    *labels;                /* "" when none */
    double   value;                 /* counter, gauge; histogram: sum */
    uint64_t count;                 /* histogram */
    uint64_t bucket[METRIC_NBUCKETS]; /* histogram, not cumulative */
} metric_series;

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static metric_series *metrics_series;
static size_t metrics_nseries;

/* metrics_family_find - the declared family, or a panic: a name is code. */
static const metric_family *metrics_family_find(const char *name)
{
    for (size_t i = 0; i < METRIC_NFAMILIES; i++)
        if (strcmp(metric_families[i].name, name) == 0)
            return &metric_families[i];
    log_panic("metrics: family %s is not declared in metrics.c", name);
}

/* metrics_find - the series of (family, labels), made on first use;
 * metrics_lock held. */
static metric_series *metrics_find(const char *name, const char *labels, metric_type want)
{
    const metric_family *f = metrics_family_find(name);
    metric_series *s;

    if (f->type != want)
        log_panic("metrics: %s used with the wrong type", name);
    if (labels == NULL)
        labels = "";
    for (size_t i = 0; i < metrics_nseries; i++)
        if (metrics_series[i].family == f && strcmp(metrics_series[i].labels, labels) == 0)
            return &metrics_series[i];
    metrics_series = xrealloc(metrics_series, (metrics_nseries + 1) * sizeof(*metrics_series));
    s = &metrics_series[metrics_nseries++];
    memset(s, 0, sizeof(*s));
    s->family = f;
    s->labels = xstrdup(labels);
    return s;
}

void metrics_add(const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_find(name, labels, METRIC_COUNTER)->value += v;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_inc(const char *name, const char *labels)
{
    metrics_add(name, labels, 1);
}

void metrics_incf(const char *name, const char *fmt, ...)
{
    char labels[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(labels, sizeof(labels), fmt, ap);
    va_end(ap);
    metrics_add(name, labels, 1);
}

void metrics_set(const char *name, const char *labels, double v)
{
    pthread_mutex_lock(&metrics_lock);
    metrics_find(name, labels, METRIC_GAUGE)->value = v;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_observe(const char *name, const char *labels, double v)
{
    metric_series *s;
    size_t i;

    if (isnan(v))
        return;
    pthread_mutex_lock(&metrics_lock);
    s = metrics_find(name, labels, METRIC_HISTOGRAM);
    for (i = 0; i < METRIC_NBUCKETS && v > metric_buckets[i]; i++)
        ;
    if (i < METRIC_NBUCKETS)
        s->bucket[i]++;
    s->count++;
    s->value += v;
    pthread_mutex_unlock(&metrics_lock);
}

void metrics_observe_since_us(const char *name, const char *labels, uint64_t t_us)
{
    struct timeval tv;
    uint64_t now;

    if (t_us == 0)
        return;
    gettimeofday(&tv, NULL);
    now = (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
    if (t_us > now)
        return;
    metrics_observe(name, labels, (double)(now - t_us) / 1e6);
}

/* metrics_number - a sample value as Prometheus writes it. */
static void metrics_number(buf_t *b, double v)
{
    if (isinf(v))
        buf_append_str(b, v > 0 ? "+Inf" : "-Inf");
    else if (v == (double)(long long)v && fabs(v) < 1e15)
        buf_printf(b, "%lld", (long long)v);
    else {
        char s[40];

        snprintf(s, sizeof(s), "%.15g", v);     /* the short form, when it is exact */
        if (strtod(s, NULL) != v)
            snprintf(s, sizeof(s), "%.17g", v);
        buf_append_str(b, s);
    }
}

/* metrics_sample - NAME[SUFFIX]{LABELS[,EXTRA]} VALUE */
static void metrics_sample(buf_t *b, const char *name, const char *suffix, const char *labels,
                           const char *extra, double v)
{
    buf_printf(b, "%s%s", name, suffix);
    if (labels[0] || extra)
        buf_printf(b, "{%s%s%s}", labels, labels[0] && extra ? "," : "", extra ? extra : "");
    buf_append_char(b, ' ');
    metrics_number(b, v);
    buf_append_char(b, '\n');
}

char *metrics_render(void)
{
    buf_t b = BUF_INIT;
    static const char *const type_names[] = {"counter", "gauge", "histogram"};

    pthread_mutex_lock(&metrics_lock);
    for (size_t f = 0; f < METRIC_NFAMILIES; f++) {
        const metric_family *fam = &metric_families[f];
        bool head = false;

        for (size_t i = 0; i < metrics_nseries; i++) {
            const metric_series *s = &metrics_series[i];

            if (s->family != fam)
                continue;
            if (!head) {
                buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", fam->name, fam->help,
                           fam->name, type_names[fam->type]);
                head = true;
            }
            if (fam->type != METRIC_HISTOGRAM) {
                metrics_sample(&b, fam->name, "", s->labels, NULL, s->value);
                continue;
            }
            uint64_t cum = 0;
            char le[48];

            for (size_t k = 0; k < METRIC_NBUCKETS; k++) {
                cum += s->bucket[k];
                snprintf(le, sizeof(le), "le=\"%g\"", metric_buckets[k]);
                metrics_sample(&b, fam->name, "_bucket", s->labels, le, (double)cum);
            }
            metrics_sample(&b, fam->name, "_bucket", s->labels, "le=\"+Inf\"", (double)s->count);
            metrics_sample(&b, fam->name, "_sum", s->labels, NULL, s->value);
            metrics_sample(&b, fam->name, "_count", s->labels, NULL, (double)s->count);
        }
    }
    pthread_mutex_unlock(&metrics_lock);
    if (b.data == NULL)
        return xstrdup("");
    return b.data;
}

void metrics_reset(void)
{
    pthread_mutex_lock(&metrics_lock);
    for (size_t i = 0; i < metrics_nseries; i++)
        free(metrics_series[i].labels);
    free(metrics_series);
    metrics_series = NULL;
    metrics_nseries = 0;
    pthread_mutex_unlock(&metrics_lock);
}

/* ------------------------------------------------------------------ */
/* The HTTP endpoint */

#define METRICS_HTTP_CONNECTIONS 16     /* scrapers and probes at once */
#define METRICS_HTTP_TIMEOUT_S   10     /* an idle connection is closed */

static struct MHD_Daemon *metrics_daemon;
static void *metrics_zctx;
static char *metrics_admin_endpoint;
static int metrics_health_ms;

/* metrics_respond - queue one response with a body copied by MHD. */
static enum MHD_Result metrics_respond(struct MHD_Connection *conn, unsigned code,
                                       const char *type, const char *body)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc;

    if (r == NULL)
        return MHD_NO;
    MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
    MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    rc = MHD_queue_response(conn, code, r);
    MHD_destroy_response(r);
    return rc;
}

/* metrics_ask_loop - /healthz and /ready: ask the stage's own loop over
 * its admin socket; 200 when it answers command with status 0. */
static enum MHD_Result metrics_ask_loop(struct MHD_Connection *conn, const char *command)
{
    char *err = NULL, *body;
    AdminReply *reply = admin_call(metrics_zctx, metrics_admin_endpoint, command, NULL,
                                   metrics_health_ms, &err);
    unsigned code;
    enum MHD_Result rc;

    if (reply == NULL) {
        code = MHD_HTTP_SERVICE_UNAVAILABLE;
        body = xasprintf("fail: %s\n", err ? err : "no answer");
    } else {
        code = reply->status == 0 ? MHD_HTTP_OK : MHD_HTTP_SERVICE_UNAVAILABLE;
        body = xasprintf("%s: %s\n", reply->status == 0 ? "ok" : "fail", reply->text);
    }
    rc = metrics_respond(conn, code, "text/plain; charset=utf-8", body);
    free(body);
    free(err);
    wire_free_admin_reply(&reply);
    return rc;
}

/* metrics_request - MHD's handler: GET (or HEAD) of one of three paths. */
static enum MHD_Result metrics_request(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload_data, size_t *upload_size,
                                       void **con_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    (void)con_cls;
    if (*upload_size != 0) {    /* a body we do not want: drop it */
        *upload_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return metrics_respond(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "text/plain",
                               "only GET and HEAD\n");
    if (strcmp(url, "/metrics") == 0) {
        char *text = metrics_render();
        enum MHD_Result rc =
            metrics_respond(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text);
        free(text);
        return rc;
    }
    if (strcmp(url, "/healthz") == 0)
        return metrics_ask_loop(conn, "ping");
    if (strcmp(url, "/ready") == 0)
        return metrics_ask_loop(conn, "ready");
    return metrics_respond(conn, MHD_HTTP_NOT_FOUND, "text/plain",
                           "not found (try /metrics, /healthz, /ready)\n");
}

void metrics_http_start(stage_t *st)
{
    char param[64], host[256];
    const char *spec, *port;
    struct addrinfo hints, *ai = NULL;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
    int rc;

    snprintf(param, sizeof(param), "%s_metrics_listen", st->name);
    spec = config_str(st->cfg, param);
    if (spec == NULL || spec[0] == 0)
        return;
    if (!hostport_split(spec, host, sizeof(host), &port))
        log_fatal("%s: '%s' is not host:port", param, spec);
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai)) != 0)
        log_fatal("%s: %s: %s", param, spec, gai_strerror(rc));
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    snprintf(param, sizeof(param), "%s_admin_endpoint", st->name);
    metrics_admin_endpoint = xstrdup(config_str(st->cfg, param));
    metrics_health_ms = (int)config_time_ms(st->cfg, "metrics_health_timeout");
    metrics_zctx = st->zctx;
    metrics_daemon = MHD_start_daemon(flags, 0, NULL, NULL, metrics_request, NULL,
                                      MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                      MHD_OPTION_CONNECTION_LIMIT,
                                      (unsigned)METRICS_HTTP_CONNECTIONS,
                                      MHD_OPTION_CONNECTION_TIMEOUT,
                                      (unsigned)METRICS_HTTP_TIMEOUT_S,
                                      MHD_OPTION_END);
    freeaddrinfo(ai);
    if (metrics_daemon == NULL)
        log_fatal("%s_metrics_listen: cannot listen on %s (in use? a bad address?)",
                  st->name, spec);
    log_info("metrics: http://%s/metrics, /healthz, /ready", spec);
}

void metrics_http_stop(void)
{
    if (metrics_daemon) {
        MHD_stop_daemon(metrics_daemon);
        metrics_daemon = NULL;
    }
    xfree(&metrics_admin_endpoint);
    metrics_zctx = NULL;
}

bool metrics_serving(void)
{
    return metrics_daemon != NULL;
}
