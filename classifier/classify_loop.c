/* classify_loop.c - the classifier's loop over its sockets, its resolver
 * and the messages in flight (see classify_loop.h). */
#include <errno.h>
#include <string.h>
#include <zmq.h>

#include "admin.h"
#include "cidr.h"
#include "classify_loop.h"
#include "dns.h"
#include "dns_cache.h"
#include "discovery.h"
#include "log.h"
#include "metrics.h"
#include "mime.h"
#include "spam_headers.h"
#include "spam_reasons.h"
#include "tap.h"
#include "test_dns.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define LOOP_ADMIN_HWM 16
#define LOOP_BATCH     256    /* frames read per wake-up, so admin and signals are not starved */
#define LOOP_MAX_FDS   64     /* resolver sockets watched */

struct loop;

/* One message in flight. */
typedef struct job {
    struct loop *lp;
    Envelope    *env;
    scoring_hit *hits;         /* names owned (copied: a reload may free the rules) */
    size_t       n_hits;
    double       required;
    test_dns_t  *dns;
    int64_t      deadline;     /* monotonic ms */
    bool         ready;        /* every answer is in */
    char        *header_from;  /* the verdict's facts (spam_headers.h) */
    const char  *bypass;       /* "size", "outbound" (not scanned) or "" */
    bool         outbound, act;
    struct job  *prev, *next;
} job;

/* A finished frame waiting for room downstream. */
typedef struct frame {
    uint8_t      *data;
    size_t        len;
    struct frame *next;
} frame;

typedef struct loop {
    stage_t           *st;
    scoring_t         *scoring;
    void             (*reload)(void *ctx, const config_t *cfg);
    void              *ctx;
    void              *in, *out, *admin;
    dns_t             *dns;
    dns_cache_t       *cache;
    int                fd[LOOP_MAX_FDS];
    short              events[LOOP_MAX_FDS];
    size_t             n_fd;
    test_dns_config    lists;
    int64_t            time_limit;
    size_t             concurrency;
    cidr_list_t       *mynetworks;     /* outbound mail comes from here */
    long long          size_limit;     /* spam_scan_size_limit, 0: none */
    const char        *outbound_scan;  /* spam_outbound_scan: scan, mark, skip */
    job               *jobs;   /* in flight, newest first */
    size_t             n_jobs, n_ready;
    frame             *out_head, **out_tail;
    unsigned long long n_passed, n_dropped, n_spam, n_timeout;
    discovery_t  *out_peers;     /* every router replica of router_endpoint */
} loop;

/* loop_watch - the resolver opened, changed or is closing a socket. */
static void loop_watch(void *ctx, int fd, bool want_read, bool want_write)
{
    loop *lp = ctx;
    size_t i;

    for (i = 0; i < lp->n_fd && lp->fd[i] != fd; i++)
        ;
    if (!want_read && !want_write) {
        if (i < lp->n_fd) {
            lp->fd[i] = lp->fd[lp->n_fd - 1];
            lp->events[i] = lp->events[lp->n_fd - 1];
            lp->n_fd--;
        }
        return;
    }
    if (i == lp->n_fd) {
        if (lp->n_fd == LOOP_MAX_FDS) {
            log_warn("more than %d resolver sockets; fd %d not watched", LOOP_MAX_FDS, fd);
            return;
        }
        lp->fd[lp->n_fd++] = fd;
    }
    lp->events[i] = (short)((want_read ? ZMQ_POLLIN : 0) | (want_write ? ZMQ_POLLOUT : 0));
}

/* loop_configure - what the loop takes from the configuration itself. */
static void loop_configure(loop *lp, const config_t *cfg)
{
    test_dns_config lists;
    char *err = NULL;

    lp->time_limit = config_time_ms(cfg, "spam_scan_time_limit");
    lp->concurrency = (size_t)config_int(cfg, "classifier_concurrency");
    lp->size_limit = config_size(cfg, "spam_scan_size_limit");
    lp->outbound_scan = config_str(cfg, "spam_outbound_scan");
    cidr_list_t *nets = cidr_list_parse(config_list(cfg, "mynetworks"), &err);
    if (nets) {
        cidr_list_free(&lp->mynetworks);
        lp->mynetworks = nets;
    } else {
        log_warn("mynetworks: %s; keeping the previous networks", err ? err : "bad value");
        xfree(&err);
    }
    if (!test_dns_config_load(cfg, &lists, &err)) {
        if (!lp->dns)
            log_fatal("%s", err);
        log_warn("%s; keeping the previous DNS lists", err);
        xfree(&err);
        return;
    }
    test_dns_config_free(&lp->lists);
    lp->lists = lists;
}

/* loop_admin - "stats"; "ping" is answered by admin_serve. */
static void loop_admin(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    loop *lp = ctx;

    if (strcmp(req->command, "stats") != 0) {
        admin_reply_text(reply, 2, "unknown command");
        return;
    }
    admin_reply_text(reply, 0, "passed=%llu dropped=%llu spam=%llu in_flight=%zu scan_timeouts=%llu",
                     lp->n_passed, lp->n_dropped, lp->n_spam, lp->n_jobs, lp->n_timeout);
}

/* job_add_hit - a hit of the DNS tests (test_dns_hits callback). */
static void job_add_hit(void *arg, const char *name, double score)
{
    job *j = arg;

    j->hits = xrealloc(j->hits, (j->n_hits + 1) * sizeof *j->hits);
    j->hits[j->n_hits].name = xstrdup(name);
    j->hits[j->n_hits].score = score;
    j->n_hits++;
}

/* job_done - test_dns's callback: every answer is in (runs inside
 * dns_process: only mark the job; the loop finishes it afterwards). */
static void job_done(void *arg)
{
    job *j = arg;

    if (!j->ready) {
        j->ready = true;
        j->lp->n_ready++;
    }
}

/* loop_queue - a finished frame goes to the end of the output queue. */
static void loop_queue(loop *lp, uint8_t *data, size_t len)
{
    frame *f = xcalloc(1, sizeof *f);

    f->data = data;
    f->len = len;
    *lp->out_tail = f;
    lp->out_tail = &f->next;
}

/* job_free - unlink and free j, abandoning its lookups. */
static void job_free(loop *lp, job *j)
{
    if (j->prev)
        j->prev->next = j->next;
    else
        lp->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    lp->n_jobs--;
    if (j->ready)
        lp->n_ready--;
    test_dns_free(&j->dns);
    xfree(&j->header_from);
    for (size_t i = 0; i < j->n_hits; i++)
        xfree((char **)&j->hits[i].name);
    xfree(&j->hits);
    wire_free_envelope(&j->env);
    xfree(&j);
}

/* job_finish - the verdict from every hit so far, packed and queued. */
static void job_finish(loop *lp, job *j, bool timed_out)
{
    scoring_result r = {.required = j->required};
    double score;
    const char *spf_hdrs = j->dns ? test_dns_headers(j->dns) : NULL;
    size_t n = j->env->n_prepend_headers;

    if (j->dns)
        test_dns_hits(j->dns, lp->scoring, job_add_hit, j);
    if (timed_out) {
        lp->n_timeout++;
        metrics_inc("correio_classifier_scan_timeouts_total", NULL);
        if (scoring_hit_score(lp->scoring, "SCAN_TIMEOUT", &score))
            job_add_hit(j, "SCAN_TIMEOUT", score);
    }
    r.hits = j->hits;
    r.n_hits = j->n_hits;
    for (size_t i = 0; i < r.n_hits; i++)
        r.score += r.hits[i].score;
    r.is_spam = !j->bypass[0] && r.score >= r.required;

    char *tests = scoring_tests_text(&r);
    log_info("%s: classified score=%.1f spam=%s tests=%s%s%s%s", j->env->queue_id, r.score,
             r.is_spam ? "yes" : "no", tests, j->bypass[0] ? " bypass=" : "", j->bypass,
             timed_out ? " (scan timeout)" : "");
    xfree(&tests);
    char *reasons = spam_reasons_format(r.hits, r.n_hits, scoring_known, NULL);
    spam_facts facts = {.reasons = reasons, .header_from = j->header_from, .bypass = j->bypass,
                        .outbound = j->outbound, .act = j->act};

    /* The SPF header fields go before the X-Spam ones. */
    Envelope copy = *j->env;
    ProtobufCBinaryData *hdrs = xcalloc(n + 1, sizeof *hdrs);
    if (n)
        memcpy(hdrs, j->env->prepend_headers, n * sizeof *hdrs);
    if (spf_hdrs) {
        hdrs[n].data = (uint8_t *)spf_hdrs;
        hdrs[n].len = strlen(spf_hdrs);
        copy.n_prepend_headers = n + 1;
    }
    copy.prepend_headers = hdrs;
    size_t len;
    uint8_t *out = spam_headers_pack(&copy, &r, &facts, lp->st->hostname, &len);
    xfree(&hdrs);
    xfree(&reasons);
    if (r.is_spam)
        lp->n_spam++;
    lp->n_passed++;
    metrics_inc("correio_classifier_messages_total", j->bypass[0] ? "verdict=\"bypass\"" : r.is_spam ? "verdict=\"spam\"" : "verdict=\"ham\"");
    metrics_observe("correio_classifier_scan_seconds", NULL, (double)(time_mono_ms() - (j->deadline - lp->time_limit)) / 1000.0);
    loop_queue(lp, out, len);
    job_free(lp, j);
}

/* loop_outbound - is env from our own users: authenticated, sent to a
 * submission listener, or from mynetworks?  Fetched mail and bounces
 * are inbound whatever address handed them over. */
static bool loop_outbound(const loop *lp, const Envelope *env)
{
    const Client *cl = env->client;
    const char *listener = cl && cl->listener ? cl->listener : "";

    if (!cl)
        return false;
    if (cl->auth_user && cl->auth_user[0])
        return true;
    if (strcmp(listener, "submission") == 0 || strcmp(listener, "submissions") == 0)
        return true;
    if (strcmp(listener, "fetch") == 0 || strcmp(listener, "bounce") == 0)
        return false;
    return lp->mynetworks && cl->ip && cl->ip[0] && cidr_list_match_text(lp->mynetworks, cl->ip);
}

/* loop_facts - outbound or not, scanned or not (and why), acted on or
 * not: spam_outbound_scan and spam_scan_size_limit. */
static void loop_facts(const loop *lp, job *j)
{
    const Envelope *env = j->env;
    size_t size = env->body.data ? env->body.len : 0;

    j->outbound = loop_outbound(lp, env);
    j->bypass = "";
    j->act = !j->outbound || strcmp(lp->outbound_scan, "scan") == 0;
    if (j->outbound && strcmp(lp->outbound_scan, "skip") == 0)
        j->bypass = "outbound";
    else if (lp->size_limit > 0 && size > (unsigned long long)lp->size_limit)
        j->bypass = "size";
    if (j->bypass[0])
        j->act = false;
    j->header_from = spam_reasons_header_from((const char *)env->body.data, size);
}

/* loop_start - decode one frame, run the synchronous tests and start the
 * lookups; a message with nothing to ask is finished at once, and so is
 * one that is not scanned (loop_facts). */
static void loop_start(loop *lp, const void *data, size_t len)
{
    Envelope *env = wire_unpack_envelope(data, len, lp->st->name);
    scoring_result r;
    mime_msg mime;

    if (!env) {
        lp->n_dropped++;
        return;
    }
    tap_trace_in(env);
    job *j = xcalloc(1, sizeof *j);
    j->lp = lp;
    j->env = env;
    j->deadline = time_mono_ms() + lp->time_limit;
    j->next = lp->jobs;
    if (lp->jobs)
        lp->jobs->prev = j;
    lp->jobs = j;
    lp->n_jobs++;

    loop_facts(lp, j);
    if (j->bypass[0]) {
        j->required = config_number(lp->st->cfg, "spam_required_score");
        job_finish(lp, j, false);
        return;
    }
    mime_parse((const char *)env->body.data, env->body.data ? env->body.len : 0, &mime);
    scoring_run_mime(lp->scoring, env, &mime, &r);
    j->required = r.required;
    for (size_t i = 0; i < r.n_hits; i++)
        job_add_hit(j, r.hits[i].name, r.hits[i].score);
    scoring_result_free(&r);
    j->dns = test_dns_start(&lp->lists, lp->dns, env, &mime, lp->st->hostname, job_done, j);
    mime_free(&mime);
    if (test_dns_pending(j->dns) == 0)
        job_finish(lp, j, false);
}

/* loop_flush - hand queued frames downstream.  Returns true when none
 * waits any more. */
static bool loop_flush(loop *lp)
{
    while (lp->out_head) {
        frame *f = lp->out_head;

        if (zmq_util_send(lp->out, f->data, f->len) < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return false;          /* backpressure: wait for POLLOUT */
            log_warn("cannot send to %s: %s (envelope left to the ingress to resend)",
                     config_str(lp->st->cfg, "router_endpoint"), zmq_strerror(errno));
            lp->n_dropped++;
        } else
            tap_publish(TAP_ENVELOPE, f->data, f->len);
        lp->out_head = f->next;
        if (!lp->out_head)
            lp->out_tail = &lp->out_head;
        xfree(&f->data);
        xfree(&f);
    }
    return true;
}

/* loop_can_read - room for one more message, and nothing waits to go. */
static bool loop_can_read(const loop *lp)
{
    return lp->out_head == NULL && lp->n_jobs < lp->concurrency;
}

/* loop_drain - read input until it is empty, the batch is done, or the
 * loop is full or pushed back. */
static void loop_drain(loop *lp)
{
    char input[64];

    snprintf(input, sizeof(input), "%s input", lp->st->name);
    for (int i = 0; i < LOOP_BATCH && loop_flush(lp) && loop_can_read(lp); i++) {
        zmq_msg_t msg;
        zmq_util_recv_status got = zmq_util_recv_frame(lp->in, &msg, input);

        if (got == ZMQ_UTIL_NONE)
            return;
        if (got == ZMQ_UTIL_DROPPED) {
            lp->n_dropped++;
            continue;
        }
        loop_start(lp, zmq_msg_data(&msg), zmq_msg_size(&msg));
        zmq_msg_close(&msg);
    }
    loop_flush(lp);
}

/* loop_settle - finish the jobs whose answers are in or whose time is up. */
static void loop_settle(loop *lp, int64_t now)
{
    job *j = lp->jobs, *next;

    for (; j; j = next) {
        next = j->next;
        if (j->ready)
            job_finish(lp, j, false);
        else if (j->deadline <= now)
            job_finish(lp, j, true);
    }
}

/* loop_timeout - zmq_poll's timeout in ms: the nearest job deadline or
 * resolver timeout; -1 when nothing waits. */
static long loop_timeout(const loop *lp, int64_t now)
{
    int64_t next = -1, dns = dns_timeout_ms(lp->dns);

    if (lp->n_ready)
        return 0;
    for (const job *j = lp->jobs; j; j = j->next)
        if (next < 0 || j->deadline - now < next)
            next = j->deadline - now > 0 ? j->deadline - now : 0;
    if (dns >= 0 && (next < 0 || dns < next))
        next = dns;
    dns = discovery_timeout_ms(lp->out_peers, now);
    if (dns >= 0 && (next < 0 || dns < next))
        next = dns;
    return (long)next;
}

/* loop_resolver - one resolver for every DNS test, with a cache. */
static void loop_resolver(loop *lp, const config_t *cfg)
{
    char *err = NULL;

    lp->dns = dns_new(config_list(cfg, "dns_servers"), config_time_ms(cfg, "dns_timeout"),
                      (int)config_int(cfg, "dns_tries"), loop_watch, lp, &err);
    if (!lp->dns)
        log_fatal("dns_servers: %s", err);
    lp->cache = dns_cache_new((size_t)config_int(cfg, "dns_cache_size"),
                              (unsigned)(config_time_ms(cfg, "dns_cache_max_ttl") / 1000),
                              (unsigned)(config_time_ms(cfg, "dns_negative_cache_ttl") / 1000));
    dns_set_cache(lp->dns, lp->cache);
}

/* loop_close - drop what is in flight (the ingress sends it again). */
static void loop_close(loop *lp)
{
    log_info("stopping: passed=%llu dropped=%llu in_flight=%zu", lp->n_passed, lp->n_dropped,
             lp->n_jobs);
    while (lp->jobs)
        job_free(lp, lp->jobs);
    while (lp->out_head) {
        frame *f = lp->out_head;
        lp->out_head = f->next;
        xfree(&f->data);
        xfree(&f);
    }
    dns_free(&lp->dns);
    dns_cache_free(&lp->cache);
    discovery_free(&lp->out_peers);
    test_dns_config_free(&lp->lists);
    cidr_list_free(&lp->mynetworks);
    void *socks[] = {lp->in, lp->out, lp->admin};
    for (size_t i = 0; i < sizeof socks / sizeof socks[0]; i++)
        if (zmq_close(socks[i]) != 0)
            log_warn("zmq_close: %s", zmq_strerror(errno));
}

void classify_loop_run(stage_t *st, scoring_t *scoring,
                       void (*reload)(void *ctx, const config_t *cfg), void *ctx)
{
    loop lp = {.st = st, .scoring = scoring, .reload = reload, .ctx = ctx};
    int hwm = (int)config_int(st->cfg, "pipeline_hwm");

    lp.out_tail = &lp.out_head;
    loop_configure(&lp, st->cfg);
    loop_resolver(&lp, st->cfg);
    lp.in = zmq_util_socket(st->zctx, ZMQ_PULL, hwm);
    zmq_util_bind(lp.in, config_str(st->cfg, "classifier_endpoint"));
    lp.out = zmq_util_socket(st->zctx, ZMQ_PUSH, hwm);
    lp.out_peers = discovery_new(lp.out, config_str(st->cfg, "router_endpoint"), "router",
                                 st->cfg);
    lp.admin = zmq_util_socket(st->zctx, ZMQ_REP, LOOP_ADMIN_HWM);
    zmq_util_bind(lp.admin, config_str(st->cfg, "classifier_admin_endpoint"));
    log_info("started: input=%s output=%s concurrency=%zu scan time limit=%lldms",
             config_str(st->cfg, "classifier_endpoint"), config_str(st->cfg, "router_endpoint"),
             lp.concurrency, (long long)lp.time_limit);

    while (!stage_stopping()) {
        zmq_pollitem_t items[4 + LOOP_MAX_FDS];
        size_t n = 0, n_dns;

        items[n++] = (zmq_pollitem_t){NULL, st->signal_fd, ZMQ_POLLIN, 0};
        items[n++] = (zmq_pollitem_t){lp.admin, 0, ZMQ_POLLIN, 0};
        /* Backpressure: while a frame waits for downstream, stop reading
         * input and wait for room there instead; while full, read nothing. */
        if (lp.out_head)
            items[n++] = (zmq_pollitem_t){lp.out, 0, ZMQ_POLLOUT, 0};
        else if (loop_can_read(&lp))
            items[n++] = (zmq_pollitem_t){lp.in, 0, ZMQ_POLLIN, 0};
        else
            items[n++] = (zmq_pollitem_t){NULL, st->signal_fd, 0, 0};   /* a place holder */
        for (size_t i = 0; i < lp.n_fd; i++)
            items[n++] = (zmq_pollitem_t){NULL, lp.fd[i], lp.events[i], 0};
        n_dns = n;
        if (discovery_fd(lp.out_peers) >= 0)
            items[n++] = (zmq_pollitem_t){NULL, discovery_fd(lp.out_peers), ZMQ_POLLIN, 0};

        if (zmq_poll(items, (int)n, loop_timeout(&lp, time_mono_ms())) < 0) {
            if (errno == EINTR)
                continue;
            log_fatal("zmq_poll: %s", zmq_strerror(errno));
        }
        if (items[0].revents & ZMQ_POLLIN) {
            int sig = stage_take_signals(st);

            if (sig & STAGE_SIG_STOP)
                break;
            if ((sig & STAGE_SIG_RELOAD) && stage_reload(st, NULL, NULL)) {
                if (reload)
                    reload(ctx, st->cfg);
                loop_configure(&lp, st->cfg);
            }
        }
        if (items[1].revents & ZMQ_POLLIN)
            admin_serve(lp.admin, st->name, loop_admin, &lp);
        discovery_tick(lp.out_peers, time_mono_ms());
        for (size_t i = 3; i < n_dns; i++)
            if (items[i].revents)
                /* an error (ICMP refused) is read like data: c-ares sees it */
                dns_process(lp.dns, items[i].fd, items[i].revents & (ZMQ_POLLIN | ZMQ_POLLERR),
                            items[i].revents & ZMQ_POLLOUT);
        if (dns_pending(lp.dns) > 0)
            dns_process(lp.dns, -1, false, false);
        loop_settle(&lp, time_mono_ms());
        if (items[2].revents || loop_can_read(&lp) || lp.out_head)
            loop_drain(&lp);
    }
    loop_close(&lp);
}
