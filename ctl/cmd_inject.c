/* cmd_inject.c - `correio inject`: hand one stage one message, for
 * debugging a stage alone (../DESIGN.md "Seeing inside").
 *
 *   correio inject STAGE FILE [--from ADDR] [--to ADDR]... [--keep-id]
 *                  [--origin ENDPOINT] [--timeout SECONDS]
 *
 * FILE is one of (told apart by its content):
 *   - an envelope as `correio tap --raw` saves it (a packed Envelope);
 *   - an envelope text: a first line "correio-envelope 1", then lines
 *     "key: value" (from, to, client, helo, auth_user, listener, prepend,
 *     queue_id), an empty line, and the message; a "to:" line may carry
 *     the router's decision: "to: a@b route=maildir mailbox=b/a
 *     folder=Junk" or "route=relay nexthop=[mx.b]:25";
 *   - a message (.eml): header fields from the first line on, with the
 *     envelope from --from (default the null sender <>) and --to.
 * --from and --to replace what FILE says.  Line ends become CRLF.
 *
 * classifier, router, delivery: the envelope (a fresh queue id unless
 * --keep-id) goes to the stage's input (PUSH to <stage>_endpoint).  Such
 * a message has no ingress spool entry, so its origin (where delivery
 * acks) is a PULL socket this command binds for the while
 * (ipc://$run_directory/inject-PID, or --origin): it prints the event
 * that comes back ("OWNED by delivery: delivery owns it") and exits 0,
 * or 1 when none comes within --timeout (default 30 s).
 * ingress: the message goes over the submit socket (like the fetcher's)
 * and the command prints the ingress's answer and queue id.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "buf.h"
#include "ctl.h"
#include "endpoints.h"
#include "fsutil.h"
#include "qid.h"
#include "submit_client.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define INJECT_MAGIC        "correio-envelope 1"
#define INJECT_MAX_RCPT     1000
#define INJECT_SEND_MS      5000     /* the stage must take the frame within this */
#define INJECT_TIMEOUT_S    30
#define INJECT_RESEND_MS    200      /* submit again until the ingress answers (same ref) */
#define INJECT_FILE_MAX     (256LL * 1024 * 1024)

/* What the command line and FILE say, before it becomes an Envelope. */
typedef struct inject_msg {
    char      *from;                 /* NULL: not given (the null sender) */
    Recipient **rcpt;
    size_t     n_rcpt;
    Client     client;
    bool       has_client;
    ProtobufCBinaryData *prepend;
    size_t     n_prepend;
    char      *queue_id;
    buf_t      body;
} inject_msg;

static const char *const inject_stages[] = {"ingress", "classifier", "router", "delivery", NULL};

/* inject_rcpt_add - a recipient for address (copied). */
static Recipient *inject_rcpt_add(inject_msg *m, const char *address)
{
    Recipient *r = xcalloc(1, sizeof *r);
    correio__recipient__init(r);
    r->address = xstrdup(address);
    m->rcpt = xrealloc(m->rcpt, (m->n_rcpt + 1) * sizeof *m->rcpt);
    m->rcpt[m->n_rcpt++] = r;
    return r;
}

static void inject_rcpts_free(inject_msg *m)
{
    for (size_t i = 0; i < m->n_rcpt; i++) {
        Recipient *r = m->rcpt[i];
        if (r->address != protobuf_c_empty_string)
            xfree(&r->address);
        if (r->mailbox != protobuf_c_empty_string)
            xfree(&r->mailbox);
        if (r->nexthop != protobuf_c_empty_string)
            xfree(&r->nexthop);
        if (r->folder != protobuf_c_empty_string)
            xfree(&r->folder);
        xfree(&m->rcpt[i]);
    }
    xfree(&m->rcpt);
    m->n_rcpt = 0;
}

static void inject_msg_free(inject_msg *m)
{
    inject_rcpts_free(m);
    xfree(&m->from);
    for (size_t i = 0; i < m->n_prepend; i++)
        xfree(&m->prepend[i].data);
    xfree(&m->prepend);
    char **s[] = {&m->client.ip, &m->client.helo, &m->client.auth_user, &m->client.listener};
    for (size_t i = 0; i < sizeof s / sizeof s[0]; i++)
        if (*s[i] != protobuf_c_empty_string)
            xfree(s[i]);
    xfree(&m->queue_id);
    buf_free(&m->body);
}

/* inject_crlf - append data to out with every line ending in CRLF. */
static void inject_crlf(buf_t *out, const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
            buf_append(out, "\r", 1);
        buf_append(out, &p[i], 1);
    }
    if (out->len && (out->len < 2 || memcmp(out->data + out->len - 2, "\r\n", 2) != 0))
        buf_append(out, "\r\n", 2);
}

/* inject_looks_like_message - a header field on the first line, no NUL. */
static bool inject_looks_like_message(const char *p, size_t len)
{
    size_t n = 0;

    if (len == 0 || memchr(p, 0, len))
        return false;
    while (n < len && p[n] > ' ' && p[n] < 0x7f && p[n] != ':')
        n++;
    return n > 0 && n < len && p[n] == ':';
}

/* inject_set_str - replace *dst (an owned string or the empty one). */
static void inject_set_str(char **dst, const char *v)
{
    if (*dst && *dst != protobuf_c_empty_string)
        xfree(dst);
    *dst = xstrdup(v);
}

/* inject_parse_to - "ADDR [route=K] [mailbox=M] [nexthop=H] [folder=F]". */
static bool inject_parse_to(inject_msg *m, char *v, char *why, size_t size)
{
    char *save = NULL, *w = strtok_r(v, " \t", &save);
    static const char *const kinds[] = {"none", "maildir", "relay", "discard", "error", "lmtp", NULL};

    if (!w) {
        snprintf(why, size, "to: wants an address");
        return false;
    }
    if (m->n_rcpt == INJECT_MAX_RCPT) {
        snprintf(why, size, "more than %d recipients", INJECT_MAX_RCPT);
        return false;
    }
    Recipient *r = inject_rcpt_add(m, w);
    while ((w = strtok_r(NULL, " \t", &save))) {
        char *eq = strchr(w, '=');
        if (!eq) {
            snprintf(why, size, "to: '%s' is not key=value", w);
            return false;
        }
        *eq++ = '\0';
        if (strcmp(w, "route") == 0) {
            size_t k = 0;
            while (kinds[k] && strcasecmp(kinds[k], eq) != 0)
                k++;
            if (!kinds[k]) {
                snprintf(why, size, "to: route=%s is not maildir, relay, lmtp, discard or error", eq);
                return false;
            }
            r->route = (Correio__RouteKind)k;
        } else if (strcmp(w, "mailbox") == 0) {
            inject_set_str(&r->mailbox, eq);
        } else if (strcmp(w, "nexthop") == 0) {
            inject_set_str(&r->nexthop, eq);
        } else if (strcmp(w, "folder") == 0) {
            inject_set_str(&r->folder, eq);
        } else {
            snprintf(why, size, "to: unknown key %s (route, mailbox, nexthop, folder)", w);
            return false;
        }
    }
    return true;
}

/* inject_parse_text - the envelope text form; false with why ("line N: ..."). */
static bool inject_parse_text(inject_msg *m, const char *p, size_t len, char *why, size_t size)
{
    size_t pos = 0;
    unsigned lineno = 0;

    while (pos < len) {
        const char *eol = memchr(p + pos, '\n', len - pos);
        size_t n = (eol ? (size_t)(eol - (p + pos)) : len - pos);
        char *line = xstrndup(p + pos, n), *colon, *v;
        char msg[200] = "";

        pos += n + (eol ? 1 : 0);
        lineno++;
        if (n && line[n - 1] == '\r')
            line[--n] = '\0';
        if (lineno == 1) {
            xfree(&line);
            continue;                               /* the magic line */
        }
        if (n == 0) {
            xfree(&line);
            inject_crlf(&m->body, p + pos, len - pos);
            if (m->body.len == 0) {
                snprintf(why, size, "line %u: no message after the empty line", lineno);
                return false;
            }
            return true;
        }
        if (!(colon = strchr(line, ':'))) {
            snprintf(why, size, "line %u: expected \"key: value\"", lineno);
            xfree(&line);
            return false;
        }
        *colon = '\0';
        for (v = colon + 1; *v == ' ' || *v == '\t'; v++)
            ;
        if (strcasecmp(line, "from") == 0) {
            size_t n_v = strlen(v);
            bool angle = n_v >= 2 && v[0] == '<' && v[n_v - 1] == '>';
            xfree(&m->from);
            m->from = angle ? xstrndup(v + 1, n_v - 2) : xstrdup(v);
        } else if (strcasecmp(line, "to") == 0) {
            inject_parse_to(m, v, msg, sizeof msg);
        } else if (strcasecmp(line, "client") == 0) {
            inject_set_str(&m->client.ip, v);
            m->has_client = true;
        } else if (strcasecmp(line, "helo") == 0) {
            inject_set_str(&m->client.helo, v);
            m->has_client = true;
        } else if (strcasecmp(line, "auth_user") == 0) {
            inject_set_str(&m->client.auth_user, v);
            m->has_client = true;
        } else if (strcasecmp(line, "listener") == 0) {
            inject_set_str(&m->client.listener, v);
            m->has_client = true;
        } else if (strcasecmp(line, "queue_id") == 0) {
            if (!qid_valid(v, strlen(v)))
                snprintf(msg, sizeof msg, "queue_id: %s is not a queue id", v);
            xfree(&m->queue_id);
            m->queue_id = xstrdup(v);
        } else if (strcasecmp(line, "prepend") == 0) {
            buf_t h = BUF_INIT;
            if (!strchr(v, ':'))
                snprintf(msg, sizeof msg, "prepend: wants a header field \"Name: value\"");
            inject_crlf(&h, v, strlen(v));
            m->prepend = xrealloc(m->prepend, (m->n_prepend + 1) * sizeof *m->prepend);
            m->prepend[m->n_prepend].data = (uint8_t *)xmemdup(h.data, h.len);
            m->prepend[m->n_prepend++].len = h.len;
            buf_free(&h);
        } else {
            snprintf(msg, sizeof msg, "unknown key \"%.40s\" (from, to, client, helo, auth_user, "
                                      "listener, queue_id, prepend)", line);
        }
        xfree(&line);
        if (msg[0]) {
            snprintf(why, size, "line %u: %s", lineno, msg);
            return false;
        }
    }
    snprintf(why, size, "no empty line and message after the envelope lines");
    return false;
}

/* inject_fill - the envelope for m (its strings point into m). */
static void inject_fill(Envelope *env, inject_msg *m, const char *qid, const char *origin)
{
    env->version = WIRE_VERSION;
    env->queue_id = (char *)qid;
    env->origin = (char *)origin;
    env->received_at = time_now_us();
    env->reverse_path = m->from ? m->from : (char *)"";
    env->rcpt = m->rcpt;
    env->n_rcpt = m->n_rcpt;
    env->client = &m->client;
    env->prepend_headers = m->prepend;
    env->n_prepend_headers = m->n_prepend;
    env->body.data = (uint8_t *)m->body.data;
    env->body.len = m->body.len;
    env->send_count = 1;
    env->body_type = CORREIO__BODY_TYPE__BODY_7BIT;
    for (size_t i = 0; i < m->body.len; i++)
        if ((unsigned char)m->body.data[i] >= 0x80) {
            env->body_type = CORREIO__BODY_TYPE__BODY_8BITMIME;
            break;
        }
}

/* inject_read - FILE into m; false after an error message. */
static bool inject_read(inject_msg *m, const char *path, Envelope **raw)
{
    struct stat sb;
    size_t len;
    char why[300];

    if (stat(path, &sb) != 0) {
        ctl_error("%s: %s", path, strerror(errno));
        return false;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size > INJECT_FILE_MAX) {
        ctl_error("%s: not a regular file of at most %lld bytes", path, INJECT_FILE_MAX);
        return false;
    }
    char *p = fs_read_file(path, &len);
    if (!p) {
        ctl_error("%s: %s", path, strerror(errno));
        return false;
    }
    bool ok = true;
    if (len >= strlen(INJECT_MAGIC) && memcmp(p, INJECT_MAGIC, strlen(INJECT_MAGIC)) == 0
        && (len == strlen(INJECT_MAGIC) || p[strlen(INJECT_MAGIC)] == '\n'
            || p[strlen(INJECT_MAGIC)] == '\r')) {
        if (!inject_parse_text(m, p, len, why, sizeof why)) {
            ctl_error("%s: %s", path, why);
            ok = false;
        }
    } else if ((*raw = correio__envelope__unpack(NULL, len, (const uint8_t *)p)) != NULL
               && (*raw)->version == WIRE_VERSION && (*raw)->body.len > 0) {
        /* a frame as tap --raw saved it: taken as it is */
    } else if (inject_looks_like_message(p, len)) {
        if (*raw)
            correio__envelope__free_unpacked(*raw, NULL);
        *raw = NULL;
        inject_crlf(&m->body, p, len);
    } else {
        ctl_error("%s: not a message (no header field on the first line, or NUL bytes), "
                  "not an envelope text (first line \"%s\"), not a saved envelope "
                  "(correio tap --raw)", path, INJECT_MAGIC);
        ok = false;
    }
    if (!ok && *raw) {
        correio__envelope__free_unpacked(*raw, NULL);
        *raw = NULL;
    }
    xfree(&p);
    return ok;
}

/* inject_push - send the packed envelope to the stage's input; false
 * after an error message. */
static bool inject_push(void *zctx, const config_t *cfg, const char *stage, void **out,
                        const uint8_t *frame, size_t len)
{
    char param[64], *err = NULL, **eps;
    snprintf(param, sizeof param, "%s_endpoint", stage);
    const char *endpoint = config_str(cfg, param), *list[2] = {endpoint, NULL};
    int one = 1, ms = INJECT_SEND_MS, zero = 0;

    if (ctl_ipc_listening(endpoint) == 0) {
        ctl_error("the %s does not run (nothing listens on %s)", stage, endpoint + 6);
        return false;
    }
    if (!(eps = endpoints_expand(cfg, list, &err))) {
        ctl_error("%s: %s", param, err ? err : "cannot resolve");
        xfree(&err);
        return false;
    }
    *out = zmq_socket(zctx, ZMQ_PUSH);
    /* IMMEDIATE: the send waits for a connected stage, nothing queues blind */
    if (!*out || zmq_setsockopt(*out, ZMQ_IMMEDIATE, &one, sizeof one) != 0
        || zmq_setsockopt(*out, ZMQ_SNDTIMEO, &ms, sizeof ms) != 0
        || zmq_setsockopt(*out, ZMQ_LINGER, &zero, sizeof zero) != 0) {
        ctl_error("cannot make a PUSH socket: %s", zmq_strerror(zmq_errno()));
        endpoints_free(&eps);
        return false;
    }
    for (char **e = eps; *e; e++)
        if (zmq_connect(*out, *e) != 0)
            ctl_error("cannot connect to %s: %s", *e, zmq_strerror(zmq_errno()));
    endpoints_free(&eps);
    if (zmq_send(*out, frame, len, 0) < 0) {
        ctl_error("the %s did not take the message within %d s (%s)", stage,
                  INJECT_SEND_MS / 1000, zmq_strerror(zmq_errno()));
        return false;
    }
    return true;
}

/* inject_wait_event - the event for qid on pull; 0 printed, 1 none. */
static int inject_wait_event(void *pull, const char *stage, const char *qid, long timeout_s)
{
    int64_t deadline = time_mono_ms() + timeout_s * 1000;

    for (int64_t now; (now = time_mono_ms()) < deadline;) {
        zmq_pollitem_t it = {pull, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, (long)(deadline - now)) <= 0)
            continue;
        zmq_msg_t msg;
        if (zmq_util_recv_frame(pull, &msg, "inject origin") != ZMQ_UTIL_FRAME)
            continue;
        Event *ev = wire_unpack_event(zmq_msg_data(&msg), zmq_msg_size(&msg), "inject origin");
        zmq_msg_close(&msg);
        if (!ev)
            continue;
        if (strcmp(ev->queue_id, qid) != 0) {
            wire_free_event(&ev);
            continue;
        }
        const ProtobufCEnumValue *k =
            protobuf_c_enum_descriptor_get_value(&correio__event_kind__descriptor, ev->kind);
        const char *what = ev->kind == CORREIO__EVENT_KIND__EVENT_OWNED ? " (delivery owns it)"
                           : ev->kind == CORREIO__EVENT_KIND__EVENT_DISCARDED ? " (discarded)"
                                                                              : " (rejected)";
        printf("%s: ack %s from %s node=%s%s%s%s\n", qid, k ? k->name : "?", ev->stage,
               ev->node, what, ev->text[0] ? ": " : "", ev->text);
        wire_free_event(&ev);
        return 0;
    }
    ctl_error("%s: sent to the %s, but no ack came back within %ld s "
              "(does delivery run, and can it reach this host?)", qid, stage, timeout_s);
    return 1;
}

/* inject_origin_owner - as root, give the origin's socket file to
 * mail_owner: delivery, running as that user, must connect to it. */
static void inject_origin_owner(const config_t *cfg, const char *origin)
{
    struct passwd *pw;

    if (geteuid() != 0 || strncmp(origin, "ipc://", 6) != 0 || origin[6] == '@')
        return;
    if (!(pw = getpwnam(config_str(cfg, "mail_owner"))))
        return;
    if (chown(origin + 6, pw->pw_uid, pw->pw_gid) != 0)
        ctl_error("warning: cannot give %s to %s: %s (delivery may not reach it)", origin + 6,
                  pw->pw_name, strerror(errno));
}

/* inject_stage - classifier, router, delivery. */
static int inject_stage(const config_t *cfg, const char *stage, Envelope *env, const char *origin,
                        long timeout_s)
{
    void *zctx = zmq_ctx_new(), *pull = NULL, *out = NULL;
    int rc = 1;

    if (!zctx) {
        ctl_error("cannot create a ZeroMQ context");
        return 1;
    }
    pull = zmq_util_socket(zctx, ZMQ_PULL, 16);
    if (strncmp(origin, "ipc://", 6) == 0) {
        char *dir = xstrdup(origin + 6), *slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            fs_mkdir_p(dir, 0750);
        }
        xfree(&dir);
    }
    if (zmq_bind(pull, origin) != 0) {
        ctl_error("cannot bind the origin %s: %s", origin, zmq_strerror(zmq_errno()));
        goto done;
    }
    inject_origin_owner(cfg, origin);
    size_t len;
    uint8_t *frame = wire_pack_envelope(env, &len);
    bool sent = inject_push(zctx, cfg, stage, &out, frame, len);
    xfree(&frame);
    if (sent) {
        printf("%s: injected into the %s (%zu recipient%s, %zu bytes); waiting for its ack\n",
               env->queue_id, stage, env->n_rcpt, env->n_rcpt == 1 ? "" : "s", env->body.len);
        fflush(stdout);
        rc = inject_wait_event(pull, stage, env->queue_id, timeout_s);
    }
done:
    if (out)
        zmq_close(out);
    zmq_close(pull);
    if (strncmp(origin, "ipc://", 6) == 0)
        unlink(origin + 6);
    zmq_ctx_term(zctx);
    return rc;
}

/* inject_ingress - over the submit socket, like the fetcher. */
static int inject_ingress(const config_t *cfg, Envelope *env, long timeout_s)
{
    const char *endpoint = config_str(cfg, "ingress_submit_endpoint");
    char ref[64];
    int rc = 1;

    if (ctl_ipc_listening(endpoint) == 0) {
        ctl_error("the ingress does not run (nothing listens on %s)", endpoint + 6);
        return 1;
    }
    void *zctx = zmq_ctx_new();
    if (!zctx) {
        ctl_error("cannot create a ZeroMQ context");
        return 1;
    }
    submit_client_t *c = submit_client_new(zctx, cfg, endpoint, 16);
    char qid[QID_LEN + 1];
    qid_next(qid);
    snprintf(ref, sizeof ref, "inject-%s", qid);
    env->queue_id = (char *)"";
    env->origin = (char *)"";
    int64_t deadline = time_mono_ms() + timeout_s * 1000, next_send = 0;
    while (time_mono_ms() < deadline) {
        /* (re)send until the ingress answers: a connect takes a moment, and
         * the ref makes a second copy harmless (the ingress answers with
         * the first queue id) */
        if (time_mono_ms() >= next_send) {
            submit_client_send(c, ref, env);
            next_send = time_mono_ms() + INJECT_RESEND_MS;
        }
        zmq_pollitem_t it = {submit_client_socket(c), 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        SubmitReply *r;
        while ((r = submit_client_receive(c)) != NULL) {
            bool mine = strcmp(r->ref, ref) == 0;
            if (mine && r->status == 0) {
                printf("%s: ingress took it: %s\n", r->queue_id, r->text);
                rc = 0;
            } else if (mine) {
                ctl_error("the ingress refused it: %s", r->text);
                rc = 1;
            }
            wire_free_submit_reply(&r);
            if (mine)
                goto done;
        }
    }
    ctl_error("no answer from the ingress within %ld s", timeout_s);
done:
    submit_client_free(&c);
    zmq_ctx_term(zctx);
    return rc;
}

int cmd_inject(const ctl_opts *o, int argc, char **argv)
{
    inject_msg m = {.body = BUF_INIT};
    const char *stage = NULL, *file = NULL, *from = NULL, *origin_opt = NULL;
    const char **to = xcalloc((size_t)argc + 1, sizeof *to);
    size_t n_to = 0;
    bool keep_id = false;
    long timeout_s = INJECT_TIMEOUT_S;
    Envelope *raw = NULL;
    int rc = 1;

    correio__client__init(&m.client);
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--from") == 0 && i + 1 < argc) {
            from = argv[++i];
        } else if (strcmp(argv[i], "--to") == 0 && i + 1 < argc) {
            to[n_to++] = argv[++i];
        } else if (strcmp(argv[i], "--origin") == 0 && i + 1 < argc) {
            origin_opt = argv[++i];
        } else if (strcmp(argv[i], "--keep-id") == 0) {
            keep_id = true;
        } else if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            timeout_s = strtol(argv[++i], &end, 10);
            if (*end || timeout_s <= 0) {
                xfree(&to);
                return ctl_usage_error("inject", "--timeout wants a positive number of seconds");
            }
        } else if (argv[i][0] != '-' && !stage) {
            stage = argv[i];
        } else if (argv[i][0] != '-' && !file) {
            file = argv[i];
        } else {
            xfree(&to);
            return ctl_usage_error("inject", "unexpected argument '%s'", argv[i]);
        }
    }
    size_t s = 0;
    while (stage && inject_stages[s] && strcmp(inject_stages[s], stage) != 0)
        s++;
    if (!stage || !file || !inject_stages[s]) {
        xfree(&to);
        return ctl_usage_error("inject", "STAGE (ingress, classifier, router or delivery) "
                                         "and FILE are needed");
    }

    config_t *cfg = ctl_load_config(o);
    qid_init(config_str(cfg, "myhostname"));
    if (!inject_read(&m, file, &raw))
        goto out;
    /* a saved envelope is copied shallowly: what is overridden points
     * into m, and raw is freed as it was unpacked */
    Envelope env = CORREIO__ENVELOPE__INIT;
    if (raw)
        env = *raw;
    else
        inject_fill(&env, &m, "", "");
    if (from) {
        xfree(&m.from);
        m.from = xstrdup(from);
        env.reverse_path = m.from;
    }
    if (n_to) {
        inject_rcpts_free(&m);
        for (size_t i = 0; i < n_to && i < INJECT_MAX_RCPT; i++)
            inject_rcpt_add(&m, to[i]);
        env.rcpt = m.rcpt;
        env.n_rcpt = m.n_rcpt;
    }
    if (!raw && !m.has_client)
        m.client.listener = xstrdup("inject");
    if (env.n_rcpt == 0) {
        ctl_error("%s: no recipient: give --to ADDRESS (or a \"to:\" line)", file);
        goto out;
    }
    if (strcmp(stage, "delivery") == 0)
        for (size_t i = 0; i < env.n_rcpt; i++)
            if (env.rcpt[i]->route == CORREIO__ROUTE_KIND__ROUTE_NONE) {
                ctl_error("<%s> has no route: delivery executes the router's decisions; "
                          "inject into the router, or give \"to: ADDR route=maildir "
                          "mailbox=DOMAIN/LOCAL\" in an envelope text", env.rcpt[i]->address);
                goto out;
            }
    char qid[QID_LEN + 1];
    const char *keep = raw ? raw->queue_id : m.queue_id;
    if (keep_id && keep && qid_valid(keep, strlen(keep)))
        snprintf(qid, sizeof qid, "%s", keep);
    else
        qid_next(qid);

    if (strcmp(stage, "ingress") == 0) {
        rc = inject_ingress(cfg, &env, timeout_s);
    } else {
        char *origin = origin_opt ? xstrdup(origin_opt)
                                  : xasprintf("ipc://%s/inject-%ld",
                                              config_str(cfg, "run_directory"), (long)getpid());
        env.queue_id = qid;
        env.origin = origin;
        env.send_count = 1;
        rc = inject_stage(cfg, stage, &env, origin, timeout_s);
        xfree(&origin);
    }
out:
    if (raw)
        correio__envelope__free_unpacked(raw, NULL);
    inject_msg_free(&m);
    xfree(&to);
    config_free(&cfg);
    return rc;
}
