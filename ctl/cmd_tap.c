/* cmd_tap.c - `correio tap`: watch what a stage sends on, as readable
 * text, without changing what it sends (lib/tap.h publishes the copies).
 *
 *   correio tap STAGE [--count N] [--raw DIR] [--timeout SECONDS]
 *
 * STAGE is ingress, classifier, router or delivery.  The command
 * subscribes to STAGE's tap (every replica: <stage>_tap_endpoint is
 * resolved like every other endpoint), prints "# tapping ..." once it is
 * connected, then one block per message: an envelope with its queue id,
 * sender, recipients and their routes, verdict and a header summary;
 * delivery's acks (events) and result lines.  --count N: exit after N
 * messages; --raw DIR: also write each payload to DIR (an .envelope file
 * is what `correio inject` takes); --timeout: give up (exit 1) when no
 * message came for that long.  A slow terminal loses copies (the stage
 * never waits for a tap).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zmq.h>

#include "ctl.h"
#include "endpoints.h"
#include "fsutil.h"
#include "log.h"
#include "qid.h"
#include "xalloc.h"

#define TAP_POLL_MS        250      /* how often a signal or timeout is noticed */
#define TAP_CONNECT_MS     5000     /* wait this long for the handshakes */
#define TAP_FRAME_MAX      (256u * 1024 * 1024)
#define TAP_HEADER_SCAN    (64 * 1024)   /* header bytes looked at for the summary */
#define TAP_HEADER_SHOWN   160
#define TAP_MONITOR        "inproc://correio-tap-monitor"

static volatile sig_atomic_t tap_stop;

static void tap_on_signal(int sig)
{
    (void)sig;
    tap_stop = 1;
}

/* tap_stage_ok - the stages that have a tap. */
static bool tap_stage_ok(const char *s)
{
    return strcmp(s, "ingress") == 0 || strcmp(s, "classifier") == 0
           || strcmp(s, "router") == 0 || strcmp(s, "delivery") == 0;
}

/* tap_enum - the name of value v without its prefix ("ROUTE_"). */
static const char *tap_enum(const ProtobufCEnumDescriptor *d, int v, const char *prefix)
{
    const ProtobufCEnumValue *e = protobuf_c_enum_descriptor_get_value(d, v);
    size_t n = strlen(prefix);

    if (!e)
        return "?";
    return strncmp(e->name, prefix, n) == 0 ? e->name + n : e->name;
}

/* tap_show - print text from the message, made printable and bounded. */
static void tap_show(const char *label, const char *s, size_t len)
{
    char out[TAP_HEADER_SHOWN * 2];
    printf("%s%s", label, log_printable(out, sizeof out, s, len < TAP_HEADER_SHOWN ? len
                                                                               : TAP_HEADER_SHOWN));
}

/* tap_headers - "From: ... | Subject: ..." of the message's header
 * section, unfolded, for the fields a reader looks for. */
static void tap_headers(const uint8_t *body, size_t len)
{
    static const char *const wanted[] = {"From", "To", "Subject", "Date", "Message-ID", NULL};
    const char *p = (const char *)body, *end = p + (len < TAP_HEADER_SCAN ? len : TAP_HEADER_SCAN);
    bool any = false;

    while (p < end && *p != '\r' && *p != '\n') {
        const char *line = p, *colon = memchr(p, ':', (size_t)(end - p));
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *fend = eol ? eol + 1 : end;

        /* a field is its first line and the lines that start with SP/HT */
        while (fend < end && (*fend == ' ' || *fend == '\t')) {
            const char *n = memchr(fend, '\n', (size_t)(end - fend));
            fend = n ? n + 1 : end;
        }
        p = fend;
        if (!colon || colon >= fend)
            continue;
        for (size_t i = 0; wanted[i]; i++) {
            size_t n = strlen(wanted[i]);
            if ((size_t)(colon - line) != n || strncasecmp(line, wanted[i], n) != 0)
                continue;
            char value[TAP_HEADER_SHOWN + 1];
            size_t v = 0;
            for (const char *c = colon + 1; c < fend && v < TAP_HEADER_SHOWN; c++) {
                if (*c == '\r' || *c == '\n')
                    continue;
                if ((*c == ' ' || *c == '\t') && (v == 0 || value[v - 1] == ' '))
                    continue;
                value[v++] = *c == '\t' ? ' ' : *c;
            }
            printf(any ? " | %s: " : "  headers: %s: ", wanted[i]);
            tap_show("", value, v);
            any = true;
        }
    }
    if (any)
        putchar('\n');
}

/* tap_print_envelope - the readable form of one envelope. */
static void tap_print_envelope(const char *stamp, const char *stage, const void *data, size_t len)
{
    Envelope *env = correio__envelope__unpack(NULL, len, data);

    if (!env) {
        printf("%s %s: %zu bytes that do not decode as an envelope\n", stamp, stage, len);
        return;
    }
    printf("%s %s envelope %s", stamp, stage, env->queue_id);
    tap_show(" from=<", env->reverse_path, strlen(env->reverse_path));
    printf("> size=%zu nrcpt=%zu send=%u", env->body.len, env->n_rcpt, env->send_count);
    if (env->client) {
        tap_show(" client=", env->client->ip, strlen(env->client->ip));
        tap_show(" listener=", env->client->listener, strlen(env->client->listener));
        if (env->client->auth_user[0])
            tap_show(" auth=", env->client->auth_user, strlen(env->client->auth_user));
    }
    if (env->hold)
        tap_show(" hold=", env->hold_reason, strlen(env->hold_reason));
    putchar('\n');
    for (size_t i = 0; i < env->n_rcpt; i++) {
        const Recipient *r = env->rcpt[i];
        tap_show("  to=<", r->address, strlen(r->address));
        printf("> route=%s", tap_enum(&correio__route_kind__descriptor, r->route, "ROUTE_"));
        if (r->mailbox[0])
            tap_show(" mailbox=", r->mailbox, strlen(r->mailbox));
        if (r->nexthop[0])
            tap_show(" nexthop=", r->nexthop, strlen(r->nexthop));
        if (r->folder[0])
            tap_show(" folder=", r->folder, strlen(r->folder));
        if (r->original[0] && strcmp(r->original, r->address) != 0) {
            tap_show(" original=<", r->original, strlen(r->original));
            putchar('>');
        }
        if (r->state != CORREIO__RCPT_STATE__RCPT_PENDING)
            printf(" state=%s", tap_enum(&correio__rcpt_state__descriptor, r->state, "RCPT_"));
        if (r->spam_action != CORREIO__SPAM_ACTION__SPAM_ACTION_NONE)
            printf(" spam_action=%s",
                   tap_enum(&correio__spam_action__descriptor, r->spam_action, "SPAM_ACTION_"));
        if (r->status_text[0])
            tap_show(" status=", r->status_text, strlen(r->status_text));
        putchar('\n');
    }
    if (env->verdict) {
        const Verdict *v = env->verdict;
        printf("  verdict score=%.1f/%.1f spam=%s", v->score, v->required,
               v->is_spam ? "yes" : "no");
        if (v->classifier[0])
            tap_show(" classifier=", v->classifier, strlen(v->classifier));
        if (v->bypass[0])
            tap_show(" bypass=", v->bypass, strlen(v->bypass));
        printf(" hits=");
        for (size_t i = 0; i < v->n_hits; i++)
            tap_show(i ? "," : "", v->hits[i], strlen(v->hits[i]));
        if (v->n_hits == 0)
            printf("none");
        putchar('\n');
    }
    if (env->n_prepend_headers) {
        printf("  prepended:");
        for (size_t i = 0; i < env->n_prepend_headers; i++) {
            const ProtobufCBinaryData *h = &env->prepend_headers[i];
            const char *colon = memchr(h->data, ':', h->len);
            tap_show(i ? ", " : " ", (const char *)h->data,
                     colon ? (size_t)(colon - (const char *)h->data) : h->len);
        }
        putchar('\n');
    }
    tap_headers(env->body.data, env->body.len);
    correio__envelope__free_unpacked(env, NULL);
}

/* tap_print - one published message: kind, payload. */
static void tap_print(const char *stage, const char *kind, const void *data, size_t len)
{
    struct timespec ts;
    struct tm tm;
    char stamp[32] = "";

    clock_gettime(CLOCK_REALTIME, &ts);
    if (localtime_r(&ts.tv_sec, &tm))
        snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03ld", tm.tm_hour, tm.tm_min, tm.tm_sec,
                 ts.tv_nsec / 1000000);
    if (strcmp(kind, "envelope") == 0) {
        tap_print_envelope(stamp, stage, data, len);
    } else if (strcmp(kind, "event") == 0) {
        Event *ev = correio__event__unpack(NULL, len, data);
        if (!ev) {
            printf("%s %s: %zu bytes that do not decode as an event\n", stamp, stage, len);
            return;
        }
        printf("%s %s event %s %s", stamp, stage, ev->queue_id,
               tap_enum(&correio__event_kind__descriptor, ev->kind, "EVENT_"));
        tap_show(" stage=", ev->stage, strlen(ev->stage));
        tap_show(" node=", ev->node, strlen(ev->node));
        if (ev->text[0])
            tap_show(" text=", ev->text, strlen(ev->text));
        putchar('\n');
        correio__event__free_unpacked(ev, NULL);
    } else {
        printf("%s %s %s ", stamp, stage, kind);
        tap_show("", data, len);
        putchar('\n');
    }
}

/* tap_save - the payload as DIR/NNNNNN-ID.KIND; false after a message. */
static bool tap_save(const char *dir, unsigned seq, const char *kind, const void *data, size_t len)
{
    char id[QID_LEN + 1] = "message";
    if (strcmp(kind, "envelope") == 0) {
        Envelope *env = correio__envelope__unpack(NULL, len, data);
        if (env && qid_valid(env->queue_id, strlen(env->queue_id)))
            snprintf(id, sizeof id, "%s", env->queue_id);
        if (env)
            correio__envelope__free_unpacked(env, NULL);
    }
    char *path = xasprintf("%s/%06u-%s.%s", dir, seq, id, kind);
    FILE *f = fopen(path, "wb");
    bool ok = f && fwrite(data, 1, len, f) == len;
    if (f && fclose(f) != 0)
        ok = false;
    if (!ok)
        ctl_error("cannot write %s: %s", path, strerror(errno));
    xfree(&path);
    return ok;
}

/* tap_wait_connected - wait for every handshake the monitor reports (at
 * most TAP_CONNECT_MS); how many succeeded. */
static size_t tap_wait_connected(void *mon, size_t want)
{
    size_t got = 0;
    int64_t waited = 0;

    while (got < want && waited < TAP_CONNECT_MS && !tap_stop) {
        zmq_pollitem_t it = {mon, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) < 0 && zmq_errno() != EINTR)
            break;
        waited += 100;   /* a bound, not a sleep: poll returns at once on an event */
        while (zmq_poll(&it, 1, 0) > 0) {
            zmq_msg_t m1, m2;
            zmq_msg_init(&m1);
            zmq_msg_init(&m2);
            if (zmq_msg_recv(&m1, mon, 0) >= 0 && zmq_msg_size(&m1) >= 2) {
                uint16_t event;
                memcpy(&event, zmq_msg_data(&m1), 2);
                if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED)
                    got++;
            }
            if (zmq_msg_more(&m1))
                zmq_msg_recv(&m2, mon, 0);
            zmq_msg_close(&m1);
            zmq_msg_close(&m2);
        }
    }
    return got;
}

/* tap_receive - one published message into kind/payload; false when
 * nothing (or a malformed message) was there. */
static bool tap_receive(void *sub, char *kind, size_t kind_size, zmq_msg_t *payload)
{
    zmq_msg_t k;
    bool ok = false;

    zmq_msg_init(&k);
    if (zmq_msg_recv(&k, sub, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&k);
        return false;
    }
    if (zmq_msg_more(&k) && zmq_msg_size(&k) < kind_size) {
        memcpy(kind, zmq_msg_data(&k), zmq_msg_size(&k));
        kind[zmq_msg_size(&k)] = '\0';
        zmq_msg_init(payload);
        ok = zmq_msg_recv(payload, sub, ZMQ_DONTWAIT) >= 0 && !zmq_msg_more(payload);
        if (!ok)
            zmq_msg_close(payload);
    }
    /* drop whatever is left of a malformed message */
    int more = 0;
    size_t sz = sizeof more;
    while (zmq_getsockopt(sub, ZMQ_RCVMORE, &more, &sz) == 0 && more) {
        zmq_msg_t rest;
        zmq_msg_init(&rest);
        zmq_msg_recv(&rest, sub, ZMQ_DONTWAIT);
        zmq_msg_close(&rest);
        ok = false;
    }
    zmq_msg_close(&k);
    return ok;
}

static int tap_run(const config_t *cfg, const char *stage, long count, const char *raw,
                   long timeout_s)
{
    char param[64];
    snprintf(param, sizeof param, "%s_tap_endpoint", stage);
    const char *endpoint = config_str(cfg, param);
    const char *list[2] = {endpoint, NULL};
    char *err = NULL, **eps;
    long seen = 0;
    int rc = 0;

    if (!endpoint[0]) {
        ctl_error("the %s has no tap (%s is empty)", stage, param);
        return 1;
    }
    if (ctl_ipc_listening(endpoint) == 0) {
        ctl_error("the %s does not run (nothing listens on %s)", stage, endpoint + 6);
        return 1;
    }
    if (!(eps = endpoints_expand(cfg, list, &err))) {
        ctl_error("%s: %s", param, err ? err : "cannot resolve");
        xfree(&err);
        return 1;
    }
    if (raw && fs_mkdir_p(raw, 0750) < 0) {
        ctl_error("cannot create %s: %s", raw, strerror(errno));
        endpoints_free(&eps);
        return 1;
    }
    void *zctx = zmq_ctx_new();
    if (!zctx) {
        ctl_error("cannot create a ZeroMQ context");
        endpoints_free(&eps);
        return 1;
    }
    void *sub = zmq_socket(zctx, ZMQ_SUB), *mon = NULL;
    int zero = 0, hwm = 10000;
    size_t n_eps = 0;
    if (!sub || zmq_setsockopt(sub, ZMQ_LINGER, &zero, sizeof zero) != 0
        || zmq_setsockopt(sub, ZMQ_RCVHWM, &hwm, sizeof hwm) != 0
        || zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0) != 0
        || zmq_socket_monitor(sub, TAP_MONITOR, ZMQ_EVENT_HANDSHAKE_SUCCEEDED) != 0
        || !(mon = zmq_socket(zctx, ZMQ_PAIR))
        || zmq_setsockopt(mon, ZMQ_LINGER, &zero, sizeof zero) != 0
        || zmq_connect(mon, TAP_MONITOR) != 0) {
        ctl_error("cannot set up the tap socket: %s", zmq_strerror(zmq_errno()));
        rc = 1;
        goto done;
    }
    for (char **e = eps; *e; e++) {
        if (zmq_connect(sub, *e) != 0)
            ctl_error("cannot connect to %s: %s", *e, zmq_strerror(zmq_errno()));
        else
            n_eps++;
    }
    size_t connected = tap_wait_connected(mon, n_eps);
    if (connected == 0) {
        ctl_error("no %s tap answered at %s within %d s", stage, endpoint, TAP_CONNECT_MS / 1000);
        rc = 1;
        goto done;
    }
    printf("# tapping %s at %s (%zu of %zu connected)\n", stage, endpoint, connected, n_eps);
    fflush(stdout);

    int64_t idle_ms = 0;
    while (!tap_stop && (count <= 0 || seen < count)) {
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        int n = zmq_poll(&it, 1, TAP_POLL_MS);
        if (n < 0) {
            if (zmq_errno() == EINTR)
                continue;
            ctl_error("zmq_poll: %s", zmq_strerror(zmq_errno()));
            rc = 1;
            break;
        }
        if (n == 0) {
            idle_ms += TAP_POLL_MS;
            if (timeout_s > 0 && idle_ms >= timeout_s * 1000) {
                ctl_error("nothing from the %s for %ld s (%ld of %ld messages seen)", stage,
                          timeout_s, seen, count);
                rc = 1;
                break;
            }
            continue;
        }
        idle_ms = 0;
        char kind[32];
        zmq_msg_t payload;
        while ((count <= 0 || seen < count) && tap_receive(sub, kind, sizeof kind, &payload)) {
            size_t len = zmq_msg_size(&payload);
            if (len <= TAP_FRAME_MAX) {
                tap_print(stage, kind, zmq_msg_data(&payload), len);
                if (raw && !tap_save(raw, (unsigned)seen + 1, kind, zmq_msg_data(&payload), len))
                    tap_stop = 1, rc = 1;
                seen++;
            }
            zmq_msg_close(&payload);
            fflush(stdout);
        }
    }
done:
    if (sub) {
        zmq_socket_monitor(sub, NULL, 0);
        zmq_close(sub);
    }
    if (mon)
        zmq_close(mon);
    zmq_ctx_term(zctx);
    endpoints_free(&eps);
    return rc;
}

int cmd_tap(const ctl_opts *o, int argc, char **argv)
{
    const char *stage = NULL, *raw = NULL;
    long count = 0, timeout_s = 0;

    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--count") == 0 && i + 1 < argc) {
            count = strtol(argv[++i], &end, 10);
            if (*end || count <= 0)
                return ctl_usage_error("tap", "--count wants a positive number");
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout_s = strtol(argv[++i], &end, 10);
            if (*end || timeout_s <= 0)
                return ctl_usage_error("tap", "--timeout wants a positive number of seconds");
        } else if (strcmp(argv[i], "--raw") == 0 && i + 1 < argc) {
            raw = argv[++i];
        } else if (argv[i][0] != '-' && !stage) {
            stage = argv[i];
        } else {
            return ctl_usage_error("tap", "unexpected argument '%s'", argv[i]);
        }
    }
    if (!stage || !tap_stage_ok(stage))
        return ctl_usage_error("tap", "STAGE is ingress, classifier, router or delivery");

    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = tap_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    config_t *cfg = ctl_load_config(o);
    int rc = tap_run(cfg, stage, count, raw, timeout_s);
    config_free(&cfg);
    return rc;
}
