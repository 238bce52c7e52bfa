/* tap.c - the XPUB socket each stage publishes copies on while
 * `correio tap` listens, and the -v trace lines (see tap.h). */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "tap.h"
#include "xalloc.h"
#include "zmq_util.h"

#define TAP_TRACE_RCPTS 3     /* recipients named in one trace line */

static void *tap_sock;        /* NULL: no tap */
static long  tap_subs;        /* subscriptions XPUB told us about */

/* tap_param_known - does the parameter table have name? */
static bool tap_param_known(const char *name)
{
    for (const param_def *p = config_params; p->name; p++)
        if (strcmp(p->name, name) == 0)
            return true;
    return false;
}

/* tap_ipc_dir - make the directory of an ipc:// endpoint; false (warned)
 * when it cannot be made. */
static bool tap_ipc_dir(const char *endpoint)
{
    const char *path = endpoint + strlen("ipc://");
    char *dir, *slash;
    bool ok = true;

    if (*path == '@')          /* Linux abstract namespace: nothing on disk */
        return true;
    dir = xstrdup(path);
    if ((slash = strrchr(dir, '/')) != NULL && slash != dir) {
        *slash = '\0';
        if (fs_mkdir_p(dir, 0750) < 0) {
            log_warn("tap: cannot create directory %s: %m; running without a tap", dir);
            ok = false;
        }
    }
    xfree(&dir);
    return ok;
}

void tap_open(stage_t *st)
{
    char name[64];
    const char *endpoint;
    int off = 0;

    snprintf(name, sizeof name, "%s_tap_endpoint", st->name);
    if (tap_sock || !tap_param_known(name))
        return;
    endpoint = config_str(st->cfg, name);
    if (!endpoint[0])
        return;
    if (strncmp(endpoint, "ipc://", 6) == 0 && !tap_ipc_dir(endpoint))
        return;
    tap_sock = zmq_util_socket(st->zctx, ZMQ_XPUB, (int)config_int(st->cfg, "tap_hwm"));
    /* A slow tap loses copies; it must never make a send block. */
    if (zmq_setsockopt(tap_sock, ZMQ_XPUB_NODROP, &off, sizeof off) != 0)
        log_panic("tap_open: ZMQ_XPUB_NODROP: %s", zmq_strerror(zmq_errno()));
    if (zmq_bind(tap_sock, endpoint) != 0) {
        log_warn("tap: cannot bind %s: %s; running without a tap", endpoint,
                 zmq_strerror(zmq_errno()));
        tap_close();
        return;
    }
    tap_subs = 0;
    log_debug("tap: %s", endpoint);
}

/* tap_listened - take the (un)subscriptions XPUB has for us; is anyone
 * listening?  Without a subscriber this is the only cost of a tap. */
static bool tap_listened(void)
{
    char buf[256];
    int n;

    while ((n = zmq_recv(tap_sock, buf, sizeof buf, ZMQ_DONTWAIT)) >= 0) {
        if (n >= 1 && buf[0] == 1)
            tap_subs++;
        else if (n >= 1 && buf[0] == 0 && tap_subs > 0)
            tap_subs--;
    }
    if (zmq_errno() != EAGAIN && zmq_errno() != EINTR)
        log_warn("tap: zmq_recv: %s", zmq_strerror(zmq_errno()));
    return tap_subs > 0;
}

/* tap_trace_out - the -v line for what is sent on. */
static void tap_trace_out(const char *kind, const void *data, size_t len)
{
    if (strcmp(kind, TAP_ENVELOPE) == 0) {
        Envelope *env = correio__envelope__unpack(NULL, len, data);
        char from[200], to[600] = "";
        size_t used = 0;

        if (!env) {
            log_debug("out: %zu bytes that do not decode as an envelope", len);
            return;
        }
        for (size_t i = 0; i < env->n_rcpt && i < TAP_TRACE_RCPTS; i++) {
            const Recipient *r = env->rcpt[i];
            char a[160], hop[160];
            const char *route = r->route == CORREIO__ROUTE_KIND__ROUTE_NONE      ? ""
                                : r->route == CORREIO__ROUTE_KIND__ROUTE_MAILDIR ? "maildir:"
                                : r->route == CORREIO__ROUTE_KIND__ROUTE_RELAY   ? "relay:"
                                : r->route == CORREIO__ROUTE_KIND__ROUTE_LMTP    ? "lmtp:"
                                : r->route == CORREIO__ROUTE_KIND__ROUTE_DISCARD ? "discard:"
                                                                                 : "error:";
            const char *hop_src = r->route == CORREIO__ROUTE_KIND__ROUTE_MAILDIR ? r->mailbox
                                  : r->route == CORREIO__ROUTE_KIND__ROUTE_NONE  ? ""
                                                                                 : r->nexthop;
            log_printable(a, sizeof a, r->address, strlen(r->address));
            log_printable(hop, sizeof hop, hop_src, strlen(hop_src));
            int n = snprintf(to + used, sizeof to - used, "%s<%s>%s%s%s", i ? "," : "", a,
                             route[0] ? "(" : "", route, route[0] ? hop : "");
            if (n < 0 || (size_t)n >= sizeof to - used)
                break;
            used += (size_t)n;
            if (route[0] && used + 1 < sizeof to) {
                to[used++] = ')';
                to[used] = '\0';
            }
        }
        log_printable(from, sizeof from, env->reverse_path, strlen(env->reverse_path));
        if (env->verdict)
            log_debug("%s: out: from=<%s> to=%s%s nrcpt=%zu size=%zu score=%.1f/%.1f spam=%s",
                      env->queue_id, from, to, env->n_rcpt > TAP_TRACE_RCPTS ? ",..." : "",
                      env->n_rcpt, env->body.len, env->verdict->score, env->verdict->required,
                      env->verdict->is_spam ? "yes" : "no");
        else
            log_debug("%s: out: from=<%s> to=%s%s nrcpt=%zu size=%zu", env->queue_id, from, to,
                      env->n_rcpt > TAP_TRACE_RCPTS ? ",..." : "", env->n_rcpt, env->body.len);
        correio__envelope__free_unpacked(env, NULL);
    } else if (strcmp(kind, TAP_EVENT) == 0) {
        Event *ev = correio__event__unpack(NULL, len, data);
        const ProtobufCEnumValue *k;

        if (!ev)
            return;
        k = protobuf_c_enum_descriptor_get_value(&correio__event_kind__descriptor, ev->kind);
        log_debug("%s: out: event=%s", ev->queue_id, k ? k->name : "?");
        correio__event__free_unpacked(ev, NULL);
    }
    /* TAP_RESULT lines are logged at info level by delivery already. */
}

void tap_publish(const char *kind, const void *data, size_t len)
{
    if (log_verbose())
        tap_trace_out(kind, data, len);
    if (!tap_sock || !tap_listened())
        return;
    /* EAGAIN (a full tap) and every other failure only lose this copy. */
    if (zmq_send(tap_sock, kind, strlen(kind), ZMQ_DONTWAIT | ZMQ_SNDMORE) < 0
        || zmq_send(tap_sock, data, len, ZMQ_DONTWAIT) < 0)
        log_debug("tap: copy not published: %s", zmq_strerror(zmq_errno()));
}

void tap_trace_in(const Envelope *env)
{
    char from[200], origin[200];

    if (!log_verbose())
        return;
    log_printable(from, sizeof from, env->reverse_path, strlen(env->reverse_path));
    log_printable(origin, sizeof origin, env->origin, strlen(env->origin));
    log_debug("%s: in: from=<%s> nrcpt=%zu size=%zu send=%u origin=%s%s", env->queue_id, from,
              env->n_rcpt, env->body.len, env->send_count, origin,
              env->verdict ? " scored" : "");
}

void tap_close(void)
{
    if (tap_sock && zmq_close(tap_sock) != 0)
        log_warn("tap: zmq_close: %s", zmq_strerror(errno));
    tap_sock = NULL;
    tap_subs = 0;
}
