/* outbound.c - the SMTP and LMTP client engine (see outbound.h).
 *
 * One thread, one epoll loop.  What it watches, each through a `source`
 * header at the start of its struct (epoll's data.ptr points there):
 *   the wake eventfd    jobs and commands posted by other threads
 *   resolver sockets    told by lib/dns's watch callback
 *   connections         one per SMTP/LMTP session
 * Everything that goes away while epoll may still hold an event for it
 * (a connection, a resolver socket) is marked dead and freed at the end of
 * the loop iteration (the graveyard), so a late event is only skipped.
 *
 * The objects:
 *   dest   one destination key (nexthop.h): its job queue, its resolved
 *          address list (reused for DEST_REUSE_S; then resolved again, the
 *          answers coming from the engine's DNS cache while their TTL
 *          lasts, lib/dns_cache.h), its connections
 *   job    recipients of one envelope for one destination; when it starts
 *          it walks the address list (smtp_mx_address_limit addresses,
 *          smtp_mx_session_limit sessions) until a session takes the
 *          transaction; then one result per recipient
 *   conn   a socket and its smtp_client; CONNECTING -> SETUP (greeting,
 *          EHLO, TLS, AUTH) -> TXN -> IDLE (cached for the next job of the
 *          destination) -> QUITTING
 *
 * Limits: a connection counts toward default_destination_concurrency_limit
 * and smtp_connection_limit from its connect until it is closed or starts
 * its QUIT.  A destination that wants a connection while every slot is
 * taken first closes another destination's idle connection, else waits on
 * the blocked list until a slot frees.
 *
 * Re-entrancy: functions that dest_pump calls never call dest_pump; the
 * event handlers (connection events, timers, DNS answers, commands) call
 * dest_kick at their end.  A transaction just started is driven once more
 * from the loop (the kick list), not from inside the pump.
 *
 * Timers are found by a scan over the connections each iteration: fine for
 * the few hundred connections smtp_connection_limit allows by default.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "buf.h"
#include "dns.h"
#include "dns_cache.h"
#include "log.h"
#include "map.h"
#include "myself.h"
#include "nexthop.h"
#include "outbound.h"
#include "relayhost.h"
#include "smtp_client.h"
#include "timeutil.h"
#include "tls.h"
#include "xalloc.h"

#define EPOLL_BATCH          64
#define DEST_BUCKETS         1024
#define DEST_REUSE_S         5      /* a burst must not re-resolve per job; the
                                     * DNS cache keeps the answers for their TTL */
#define MX_HOSTS_MAX         16     /* MX hosts resolved per destination */
#define SWEEP_INTERVAL_MS    1000   /* unused destinations are freed this often */

/* ================================================================ types */

typedef enum { SRC_WAKE, SRC_DNS, SRC_CONN } src_kind;

typedef struct source {
    src_kind       kind;
    int            fd;
    uint32_t       events;      /* registered with epoll; 0: not registered */
    bool           dead;        /* in the graveyard: skip its events */
    struct source *grave_next;
} source;

struct outbound_settings {
    unsigned        refs;               /* the engine and its connections */
    char           *helo_name;
    smtp_timeouts   timeouts;
    int64_t         connect_timeout_ms, cache_time_ms, reuse_time_ms;
    bool            sasl_tls_required, best_mx_local;
    size_t          connection_limit, dest_limit, address_limit, session_limit;
    tls_ctx_t      *tls_ctx;
    map_t         **tls_maps, **sasl_maps;      /* NULL-terminated */
    relayhost_t     relayhost;
    nexthop_policy  policy;
    myself_t       *myself;
    char          **dns_servers;                /* NULL-terminated */
    int64_t         dns_timeout_ms;
    int             dns_tries;
    size_t          dns_cache_size;
    unsigned        dns_cache_max_ttl_s, dns_negative_ttl_s;
};

/* One address to connect to. */
typedef struct dest_addr {
    char                    host[256];  /* the MX host or next hop; the path for UNIX */
    char                    addr[sizeof(((struct sockaddr_un *)0)->sun_path)];  /* text, or the path */
    struct sockaddr_storage sa;
    socklen_t               salen;
} dest_addr;

/* A resolved address list, shared by the destination and its attempts. */
typedef struct addr_list {
    unsigned  refs;
    size_t    n;
    dest_addr a[];
} addr_list;

/* Why the last try of an attempt failed: what every recipient gets when
 * the attempt gives up. */
typedef struct failure {
    char  status[16];
    char *text;
    char *relay;
    char *remote_mta;
    char *diagnostic;
} failure;

typedef struct dest dest;
typedef struct conn conn;

typedef struct job {
    struct job    *next;
    work_msg      *msg;
    unsigned       tag;
    size_t         n;
    unsigned      *rcpt;            /* indexes into the envelope */
    const char   **addr;            /* for the txn: point into the envelope */
    uint32_t      *notify;
    const char   **orcpt;
    char          *extra_header;    /* LMTP Delivered-To, or NULL */
    smtp_txn       txn;
    nexthop_dest   nh;
    dest          *d;               /* its destination (counts it in d->jobs) */
    /* the attempt */
    addr_list     *addrs;
    size_t         next_addr;
    size_t         tried, sessions;
    bool           all_5xx;         /* every session so far ended in a 5xx */
    bool           stale_retried;   /* a cached connection was found dead once */
    failure        last;
} job;

typedef enum { DEST_UNKNOWN, DEST_RESOLVING, DEST_READY, DEST_UNUSABLE } dest_state;

typedef struct mx_host mx_host;

typedef struct host_query {
    mx_host     *host;
    dns_type     type;
    dns_query_t *q;
} host_query;

struct mx_host {
    dest       *d;
    char        name[256];
    unsigned    pref;
    host_query  hq[2];          /* A, AAAA */
    char      **addrs;          /* text addresses, as they came */
    size_t      n_addrs;
    bool        tempfail;
    char        error[160];     /* "type=A: Host not found" */
};

struct dest {
    dest         *hash_next;
    outbound_t   *o;
    char          key[NEXTHOP_KEY_MAX];
    nexthop_dest  nh;               /* host, path, port, mx of the key */
    dest_state    state;
    int64_t       expires;          /* READY and UNUSABLE: forget after this */
    addr_list    *addrs;            /* READY */
    /* UNUSABLE: what every job gets */
    Correio__RcptState fail_state;
    char          fail_status[16];
    char         *fail_text;
    bool          fail_local;       /* best_mx_transport = local */
    /* RESOLVING */
    dns_query_t  *mxq;
    mx_host      *mx;
    size_t        n_mx, pending;
    bool          self_check;       /* the hosts are MX hosts: look for this host */
    bool          implicit_mx;      /* no MX: the domain itself (RFC 5321 5.1) */
    /* jobs and connections */
    job          *head, *tail;      /* waiting to start */
    size_t        jobs;             /* waiting or under way */
    conn         *conns;            /* every connection of this destination */
    size_t        n_counted;        /* those that count toward the limit */
    bool          blocked;
    dest         *blocked_next;
};

typedef enum { CONN_CONNECTING, CONN_SETUP, CONN_TXN, CONN_IDLE, CONN_QUITTING } conn_state;

static const char *const conn_state_names[] = {
    "connecting", "setup", "transaction", "idle", "quitting",
};

struct conn {
    source              src;        /* first: epoll's data.ptr */
    conn               *prev, *next;        /* the engine's list */
    conn               *dprev, *dnext;      /* the destination's list */
    conn               *kick_next;
    bool                kicked;
    bool                counted;
    dest               *d;
    job                *job;
    outbound_settings  *set;
    conn_state          state;
    smtp_client_t      *client;
    smtp_client_opts    opts;
    nexthop_dest        nh;         /* TLS level and credentials it was opened with */
    dest_addr           addr;
    bool                tls_off;    /* the retry after a TLS failure (level may) */
    int64_t             opened, deadline, idle_since;
    char                hostaddr[600];  /* "mx.example.com[192.0.2.1]" */
    char                peer[620];      /* "mx.example.com[192.0.2.1]:25" */
};

typedef enum { CMD_SUBMIT, CMD_RECONFIGURE } cmd_kind;

typedef struct command {
    struct command     *next;
    cmd_kind            kind;
    outbound_settings  *settings;
    work_msg           *msg;
    unsigned           *rcpt;
    size_t              n;
    unsigned            tag;
} command;

struct outbound {
    pthread_t           thread;
    bool                running;
    pthread_mutex_t     lock;           /* inbox and stop */
    command            *inbox, *inbox_tail;
    bool                stop;
    source              wake;
    results_t          *box;
    outbound_settings  *set;
    int                 epfd;
    dns_t              *dns;
    dns_cache_t        *dns_cache;      /* the answers of o->dns, for their TTL */
    source            **dns_src;
    size_t              n_dns_src, cap_dns_src;
    dest               *buckets[DEST_BUCKETS];
    size_t              n_dests, n_jobs;
    dest               *blocked_head, *blocked_tail;
    conn               *conns;
    size_t              n_conns, n_counted, n_idle;
    conn               *kicks;
    source             *graveyard;
    int64_t             next_sweep;
    /* for outbound_stats, read by other threads */
    size_t              st_conns, st_idle, st_dests, st_jobs;
};

static void dest_pump(outbound_t *o, dest *d);
static void dest_kick(outbound_t *o, dest *d);
static void attempt_next(outbound_t *o, job *j);
static void conn_close(outbound_t *o, conn *c);
static void conn_quit(outbound_t *o, conn *c);

/* ================================================================ settings */

static void settings_maps_free(map_t ***maps)
{
    for (size_t i = 0; *maps != NULL && (*maps)[i] != NULL; i++)
        map_close(&(*maps)[i]);
    xfree(maps);
}

void outbound_settings_free(outbound_settings **sp)
{
    outbound_settings *s = *sp;

    if (s == NULL)
        return;
    *sp = NULL;
    xfree(&s->helo_name);
    tls_ctx_free(&s->tls_ctx);
    settings_maps_free(&s->tls_maps);
    settings_maps_free(&s->sasl_maps);
    explicit_bzero(&s->relayhost, sizeof s->relayhost);
    myself_free(&s->myself);
    for (size_t i = 0; s->dns_servers != NULL && s->dns_servers[i] != NULL; i++)
        xfree(&s->dns_servers[i]);
    xfree(&s->dns_servers);
    xfree(&s);
}

static outbound_settings *settings_ref(outbound_settings *s)
{
    s->refs++;
    return s;
}

static void settings_unref(outbound_settings **sp)
{
    if (*sp != NULL && --(*sp)->refs == 0)
        outbound_settings_free(sp);
    *sp = NULL;
}

/* open_maps - every map of a MAPS parameter, NULL-terminated. */
static map_t **open_maps(const config_t *cfg, const char *param, char **err)
{
    const char *const *specs = config_list(cfg, param);
    size_t n = 0;
    map_t **maps;

    while (specs[n] != NULL)
        n++;
    maps = xcalloc(n + 1, sizeof *maps);
    for (size_t i = 0; i < n; i++) {
        char *why = NULL;
        maps[i] = map_open(specs[i], config_dir(cfg), &why);
        if (maps[i] == NULL) {
            *err = xasprintf("%s: %s", param, why);
            xfree(&why);
            settings_maps_free(&maps);
            return NULL;
        }
    }
    return maps;
}

static void no_watch(void *ctx, int fd, bool r, bool w)
{
    (void)ctx, (void)fd, (void)r, (void)w;
}

/* settings_dns - copy dns_servers and check that the resolver takes them. */
static bool settings_dns(outbound_settings *s, const config_t *cfg, char **err)
{
    const char *const *servers = config_list(cfg, "dns_servers");
    size_t n = 0;
    char *why = NULL;
    dns_t *probe;

    while (servers[n] != NULL)
        n++;
    s->dns_servers = xcalloc(n + 1, sizeof *s->dns_servers);
    for (size_t i = 0; i < n; i++)
        s->dns_servers[i] = xstrdup(servers[i]);
    s->dns_timeout_ms = config_time_ms(cfg, "dns_timeout");
    s->dns_tries = (int)config_int(cfg, "dns_tries");
    s->dns_cache_size = (size_t)config_int(cfg, "dns_cache_size");
    s->dns_cache_max_ttl_s = (unsigned)(config_time_ms(cfg, "dns_cache_max_ttl") / 1000);
    s->dns_negative_ttl_s = (unsigned)(config_time_ms(cfg, "dns_negative_cache_ttl") / 1000);
    probe = dns_new((const char *const *)s->dns_servers, s->dns_timeout_ms, s->dns_tries,
                    no_watch, NULL, &why);
    if (probe == NULL) {
        *err = xasprintf("dns_servers: %s", why);
        xfree(&why);
        return false;
    }
    dns_free(&probe);
    return true;
}

static bool settings_tls(outbound_settings *s, const config_t *cfg, char **err)
{
    const char *ca = config_str(cfg, "smtp_tls_CAfile");
    char *path = ca[0] ? config_path(cfg, "smtp_tls_CAfile") : NULL, *why = NULL;
    int level = nexthop_tls_level_parse(config_str(cfg, "smtp_tls_security_level"));

    if (level < 0) {
        *err = xasprintf("smtp_tls_security_level: '%s' is not none, may, encrypt or verify",
                         config_str(cfg, "smtp_tls_security_level"));
        xfree(&path);
        return false;
    }
    s->policy.tls_level = (smtp_tls_level)level;
    s->tls_ctx = tls_client_ctx_new(path, &why);
    xfree(&path);
    if (s->tls_ctx == NULL) {
        *err = xasprintf("smtp_tls_CAfile: %s", why);
        xfree(&why);
        return false;
    }
    return true;
}

static void settings_numbers(outbound_settings *s, const config_t *cfg)
{
    s->helo_name = xstrdup(config_str(cfg, "smtp_helo_name"));
    s->timeouts = (smtp_timeouts){
        .helo = config_time_ms(cfg, "smtp_helo_timeout"),
        .starttls = config_time_ms(cfg, "smtp_starttls_timeout"),
        .mail = config_time_ms(cfg, "smtp_mail_timeout"),
        .rcpt = config_time_ms(cfg, "smtp_rcpt_timeout"),
        .data_init = config_time_ms(cfg, "smtp_data_init_timeout"),
        .data_xfer = config_time_ms(cfg, "smtp_data_xfer_timeout"),
        .data_done = config_time_ms(cfg, "smtp_data_done_timeout"),
        .quit = config_time_ms(cfg, "smtp_quit_timeout"),
    };
    s->connect_timeout_ms = config_time_ms(cfg, "smtp_connect_timeout");
    s->cache_time_ms = config_time_ms(cfg, "smtp_connection_cache_time_limit");
    s->reuse_time_ms = config_time_ms(cfg, "smtp_connection_reuse_time_limit");
    s->sasl_tls_required = config_bool(cfg, "smtp_sasl_tls_required");
    s->best_mx_local = strcmp(config_str(cfg, "best_mx_transport"), "local") == 0;
    s->connection_limit = (size_t)config_int(cfg, "smtp_connection_limit");
    s->dest_limit = (size_t)config_int(cfg, "default_destination_concurrency_limit");
    s->address_limit = (size_t)config_int(cfg, "smtp_mx_address_limit");
    s->session_limit = (size_t)config_int(cfg, "smtp_mx_session_limit");
    s->policy.default_port = (unsigned)config_int(cfg, "smtp_default_port");
}

outbound_settings *outbound_settings_new(const config_t *cfg, char **err)
{
    outbound_settings *s = xcalloc(1, sizeof *s);
    const char *rh = config_str(cfg, "relayhost");
    char why[256];

    s->refs = 1;
    settings_numbers(s, cfg);
    if (rh[0] != '\0') {
        if (relayhost_parse(rh, true, &s->relayhost, why, sizeof why) < 0) {
            *err = xasprintf("relayhost: %s", why);
            goto fail;
        }
        s->policy.relayhost = &s->relayhost;
    }
    if (!settings_tls(s, cfg, err))
        goto fail;
    if ((s->tls_maps = open_maps(cfg, "smtp_tls_policy_maps", err)) == NULL
        || (s->sasl_maps = open_maps(cfg, "smtp_sasl_password_maps", err)) == NULL)
        goto fail;
    s->policy.tls_maps = s->tls_maps;
    s->policy.sasl_maps = s->sasl_maps;
    s->myself = myself_new(config_list(cfg, "smtpd_listen"), config_list(cfg, "proxy_interfaces"),
                           err);
    if (s->myself == NULL || !settings_dns(s, cfg, err))
        goto fail;
    return s;
fail:
    outbound_settings_free(&s);
    return NULL;
}

/* ================================================================ epoll */

/* watch - register what s wants (0: nothing, taken out of epoll). */
static void watch(outbound_t *o, source *s, uint32_t want)
{
    struct epoll_event ev = {.events = want, .data.ptr = s};
    int op;

    if (want == s->events)
        return;
    op = s->events == 0 ? EPOLL_CTL_ADD : want == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
    if (epoll_ctl(o->epfd, op, s->fd, &ev) < 0)
        log_panic("outbound watch: epoll_ctl fd %d: %s", s->fd, strerror(errno));
    s->events = want;
}

/* bury - s is gone: no more events, freed after this iteration. */
static void bury(outbound_t *o, source *s)
{
    watch(o, s, 0);
    s->dead = true;
    s->grave_next = o->graveyard;
    o->graveyard = s;
}

static void graveyard_empty(outbound_t *o)
{
    while (o->graveyard != NULL) {
        source *s = o->graveyard;
        o->graveyard = s->grave_next;
        xfree(&s);
    }
}

/* on_dns_watch - the resolver's sockets come and go. */
static void on_dns_watch(void *ctx, int fd, bool want_read, bool want_write)
{
    outbound_t *o = ctx;
    uint32_t want = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0);
    source *s = NULL;
    size_t i;

    for (i = 0; i < o->n_dns_src; i++)
        if (o->dns_src[i]->fd == fd) {
            s = o->dns_src[i];
            break;
        }
    if (s == NULL && want == 0)
        return;
    if (s == NULL) {
        if (o->n_dns_src == o->cap_dns_src) {
            o->cap_dns_src = o->cap_dns_src ? 2 * o->cap_dns_src : 4;
            o->dns_src = xrealloc(o->dns_src, o->cap_dns_src * sizeof *o->dns_src);
        }
        s = xcalloc(1, sizeof *s);
        s->kind = SRC_DNS;
        s->fd = fd;
        o->dns_src[o->n_dns_src++] = s;
        i = o->n_dns_src - 1;
    }
    if (want != 0) {
        watch(o, s, want);
        return;
    }
    o->dns_src[i] = o->dns_src[--o->n_dns_src];
    bury(o, s);
}

/* engine_dns - a resolver for o->set, with a fresh cache (the settings
 * may name other servers) in o->dns_cache. */
static dns_t *engine_dns(outbound_t *o)
{
    char *err = NULL;
    dns_t *d = dns_new((const char *const *)o->set->dns_servers, o->set->dns_timeout_ms,
                       o->set->dns_tries, on_dns_watch, o, &err);

    if (d == NULL)      /* outbound_settings_new tried the same list */
        log_panic("outbound: dns_new: %s", err);
    dns_cache_free(&o->dns_cache);
    o->dns_cache = dns_cache_new(o->set->dns_cache_size, o->set->dns_cache_max_ttl_s,
                                 o->set->dns_negative_ttl_s);
    dns_set_cache(d, o->dns_cache);
    return d;
}

/* ================================================================ results */

static void failure_clear(failure *f)
{
    xfree(&f->text);
    xfree(&f->relay);
    xfree(&f->remote_mta);
    xfree(&f->diagnostic);
    f->status[0] = '\0';
}

static void failure_set(failure *f, const char *status, char *text, const char *relay,
                        const char *remote_mta, const char *diagnostic)
{
    failure_clear(f);
    snprintf(f->status, sizeof f->status, "%s", status);
    f->text = text;
    f->relay = relay ? xstrdup(relay) : NULL;
    f->remote_mta = remote_mta ? xstrdup(remote_mta) : NULL;
    f->diagnostic = diagnostic ? xstrdup(diagnostic) : NULL;
}

typedef struct outcome {
    Correio__RcptState state;
    const char        *status, *text, *relay, *remote_mta, *diagnostic;
    int                relayed_no_dsn, loops_to_local;
} outcome;

/* post - one result for recipient i of j. */
static void post(outbound_t *o, const job *j, size_t i, const outcome *oc)
{
    const Envelope *env = work_msg_envelope(j->msg);
    work_result r = {
        .rcpt = j->rcpt[i],
        .tag = j->tag,
        .state = oc->state,
        .relay = xstrdup(oc->relay ? oc->relay : "none"),
        .text = xstrdup(oc->text),
        .remote_mta = oc->remote_mta ? xstrdup(oc->remote_mta) : NULL,
        .diagnostic = oc->diagnostic ? xstrdup(oc->diagnostic) : NULL,
        .relayed_no_dsn = oc->relayed_no_dsn,
        .loops_to_local = oc->loops_to_local,
    };

    snprintf(r.queue_id, sizeof r.queue_id, "%s", env->queue_id);
    snprintf(r.dsn_status, sizeof r.dsn_status, "%s", oc->status ? oc->status : "");
    results_post(o->box, &r);
}

/* post_all - the same outcome for every recipient of j. */
static void post_all(outbound_t *o, const job *j, const outcome *oc)
{
    for (size_t i = 0; i < j->n; i++)
        post(o, j, i, oc);
}

static Correio__RcptState state_of(int code)
{
    if (code / 100 == 2)
        return CORREIO__RCPT_STATE__RCPT_DELIVERED;
    if (code / 100 == 5)
        return CORREIO__RCPT_STATE__RCPT_FAILED;
    return CORREIO__RCPT_STATE__RCPT_DEFERRED;
}

/* reply_text - Postfix's wording of a reply from the peer of c. */
static char *reply_text(const conn *c, const smtp_reply *r)
{
    if (r->code == 0)
        return xstrdup(r->text);
    if (r->stage != NULL && strcmp(r->stage, "greeting") == 0)
        return xasprintf("host %s refused to talk to me: %s", c->hostaddr, r->text);
    if (r->stage != NULL && strcmp(r->stage, "AUTH") == 0)
        return xasprintf("SASL authentication failed; server %s said: %s", c->hostaddr, r->text);
    return xasprintf("host %s said: %s (in reply to %s command)", c->hostaddr, r->text,
                     r->stage ? r->stage : "unknown");
}

/* ================================================================ jobs */

static void addr_list_unref(addr_list **lp)
{
    if (*lp != NULL && --(*lp)->refs == 0)
        xfree(lp);
    *lp = NULL;
}

static job *job_new(work_msg *m, const unsigned *rcpt, size_t n, unsigned tag)
{
    const Envelope *env = work_msg_envelope(m);
    job *j = xcalloc(1, sizeof *j);

    j->msg = m;
    j->tag = tag;
    j->n = n;
    j->rcpt = xcalloc(n, sizeof *j->rcpt);
    j->addr = xcalloc(n, sizeof *j->addr);
    j->notify = xcalloc(n, sizeof *j->notify);
    j->orcpt = xcalloc(n, sizeof *j->orcpt);
    for (size_t i = 0; i < n; i++) {
        if (rcpt[i] >= env->n_rcpt)
            log_panic("outbound job_new: %s: recipient %u of %zu", env->queue_id, rcpt[i],
                      env->n_rcpt);
        j->rcpt[i] = rcpt[i];
        j->addr[i] = env->rcpt[rcpt[i]]->address;
        j->notify[i] = env->rcpt[rcpt[i]]->notify;
        j->orcpt[i] = env->rcpt[rcpt[i]]->orcpt;
    }
    j->all_5xx = true;
    return j;
}

/* job_txn - the transaction of j, once its protocol is known. */
static void job_txn(job *j)
{
    const Envelope *env = work_msg_envelope(j->msg);

    /* several LMTP recipients: the server writes its own Delivered-To */
    if (j->nh.lmtp && j->n == 1)
        j->extra_header = xasprintf("Delivered-To: %s\r\n", j->addr[0]);
    j->txn = (smtp_txn){
        .sender = env->reverse_path,
        .n_rcpt = j->n,
        .rcpt = j->addr,
        .notify = j->notify,
        .orcpt = j->orcpt,
        .body_type = env->body_type,
        .smtputf8 = env->smtputf8,
        .ret = env->ret,
        .envid = env->envid,
        .headers = env->prepend_headers,
        .n_headers = env->n_prepend_headers,
        .extra_header = j->extra_header,
        .body = env->body.data,
        .body_len = env->body.data ? env->body.len : 0,
        .drop_headers = (const char *const *)env->drop_headers,
        .n_drop_headers = env->n_drop_headers,
        .subject_tag = env->rcpt[j->rcpt[0]]->subject_tag,   /* one tag per job: sched_same_hop */
    };
}

static void job_free(outbound_t *o, job **jp)
{
    job *j = *jp;

    if (j == NULL)
        return;
    *jp = NULL;
    work_msg_unref(&j->msg);
    xfree(&j->rcpt);
    xfree(&j->addr);
    xfree(&j->notify);
    xfree(&j->orcpt);
    xfree(&j->extra_header);
    addr_list_unref(&j->addrs);
    failure_clear(&j->last);
    explicit_bzero(j->nh.pass, sizeof j->nh.pass);
    if (j->d != NULL)
        j->d->jobs--;
    xfree(&j);
    o->n_jobs--;
}

/* job_give_up - every address and session tried: the last reason for
 * all; a failure only when every session ended in a 5xx. */
static void job_give_up(outbound_t *o, job **jp)
{
    job *j = *jp;
    bool failed = j->all_5xx && j->sessions > 0;
    outcome oc = {
        .state = failed ? CORREIO__RCPT_STATE__RCPT_FAILED : CORREIO__RCPT_STATE__RCPT_DEFERRED,
        .status = j->last.status[0] ? j->last.status : "4.4.1",
        .text = j->last.text ? j->last.text : "no address of the destination could be tried",
        .relay = j->last.relay,
        .remote_mta = j->last.remote_mta,
        .diagnostic = j->last.diagnostic,
    };

    if (!failed && j->last.status[0] == '5')
        j->last.status[0] = '4';        /* a deferral says 4.x.x (535 5.7.8 -> 4.7.8) */
    post_all(o, j, &oc);
    job_free(o, jp);
}

/* ================================================================ destinations */

static uint32_t key_hash(const char *s)
{
    uint32_t h = 2166136261u;

    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static dest *dest_get(outbound_t *o, const nexthop_dest *nh)
{
    dest **bucket = &o->buckets[key_hash(nh->key) % DEST_BUCKETS];
    dest *d;

    for (d = *bucket; d != NULL; d = d->hash_next)
        if (strcmp(d->key, nh->key) == 0)
            return d;
    d = xcalloc(1, sizeof *d);
    d->o = o;
    snprintf(d->key, sizeof d->key, "%s", nh->key);
    d->hash_next = *bucket;
    *bucket = d;
    o->n_dests++;
    return d;
}

static void dest_enqueue(dest *d, job *j, bool at_head)
{
    if (at_head) {
        j->next = d->head;
        d->head = j;
        if (d->tail == NULL)
            d->tail = j;
    } else {
        j->next = NULL;
        if (d->tail)
            d->tail->next = j;
        else
            d->head = j;
        d->tail = j;
    }
}

static job *dest_dequeue(dest *d)
{
    job *j = d->head;

    if (j == NULL)
        return NULL;
    d->head = j->next;
    if (d->head == NULL)
        d->tail = NULL;
    j->next = NULL;
    return j;
}

static void mx_hosts_free(dest *d)
{
    for (size_t i = 0; i < d->n_mx; i++) {
        mx_host *h = &d->mx[i];
        dns_abandon(&h->hq[0].q);
        dns_abandon(&h->hq[1].q);
        for (size_t k = 0; k < h->n_addrs; k++)
            xfree(&h->addrs[k]);
        xfree(&h->addrs);
    }
    xfree(&d->mx);
    d->n_mx = 0;
    d->pending = 0;
}

/* dest_forget - drop what is known (cache expired, reconfigured), or the
 * resolution under way; the next job resolves again. */
static void dest_forget(dest *d)
{
    dns_abandon(&d->mxq);
    mx_hosts_free(d);
    addr_list_unref(&d->addrs);
    xfree(&d->fail_text);
    d->state = DEST_UNKNOWN;
}

static void dest_free(outbound_t *o, dest **dp)
{
    dest *d = *dp;

    dest_forget(d);
    o->n_dests--;
    xfree(dp);
}

/* dest_unusable - every job fails or defers with this; cache_s 0: only
 * the jobs waiting now (a temporary failure is not remembered). */
static void dest_unusable(dest *d, Correio__RcptState state, const char *status, bool local,
                          unsigned cache_s, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

static void dest_unusable(dest *d, Correio__RcptState state, const char *status, bool local,
                          unsigned cache_s, const char *fmt, ...)
{
    va_list ap;
    buf_t b = BUF_INIT;

    va_start(ap, fmt);                  /* the arguments may point into d->mx */
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    dest_forget(d);
    d->fail_text = buf_steal(&b, NULL);
    d->fail_state = state;
    snprintf(d->fail_status, sizeof d->fail_status, "%s", status);
    d->fail_local = local;
    /* -1: not remembered; fail the waiting jobs, then forget */
    d->expires = cache_s ? time_mono_ms() + 1000 * (int64_t)cache_s : -1;
    d->state = DEST_UNUSABLE;
}

static void dest_ready(dest *d, addr_list *l, unsigned ttl_s)
{
    mx_hosts_free(d);
    d->addrs = l;
    d->expires = time_mono_ms() + 1000 * (int64_t)ttl_s;
    d->state = DEST_READY;
}

/* fill_addr - a text address and port into a; false if it is not one. */
static bool fill_addr(dest_addr *a, const char *host, const char *text, unsigned port)
{
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->sa;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->sa;

    memset(a, 0, sizeof *a);
    snprintf(a->host, sizeof a->host, "%s", host);
    snprintf(a->addr, sizeof a->addr, "%s", text);
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        a->salen = sizeof *s4;
        return true;
    }
    if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        a->salen = sizeof *s6;
        return true;
    }
    return false;
}

static addr_list *addr_list_new(size_t cap)
{
    addr_list *l = xcalloc(1, sizeof *l + cap * sizeof l->a[0]);

    l->refs = 1;
    return l;
}

/* resolve_unix - an LMTP socket: one "address". */
static void resolve_unix(dest *d)
{
    addr_list *l = addr_list_new(1);
    dest_addr *a = &l->a[0];
    struct sockaddr_un *su = (struct sockaddr_un *)&a->sa;

    snprintf(a->host, sizeof a->host, "%s", d->nh.path);
    snprintf(a->addr, sizeof a->addr, "%s", d->nh.path);
    su->sun_family = AF_UNIX;
    snprintf(su->sun_path, sizeof su->sun_path, "%s", d->nh.path);
    a->salen = sizeof *su;
    l->n = 1;
    dest_ready(d, l, DEST_REUSE_S);
}

static void on_mx(void *arg, const dns_reply *reply);
static void on_host_addr(void *arg, const dns_reply *reply);

/* start_host_lookups - A and AAAA of every host in d->mx (an address
 * literal needs none). */
static void start_host_lookups(outbound_t *o, dest *d)
{
    static const dns_type types[2] = {DNS_A, DNS_AAAA};
    unsigned char a[16];

    for (size_t i = 0; i < d->n_mx; i++) {
        mx_host *h = &d->mx[i];
        h->d = d;
        if (inet_pton(AF_INET, h->name, a) == 1 || inet_pton(AF_INET6, h->name, a) == 1) {
            h->addrs = xcalloc(1, sizeof *h->addrs);
            h->addrs[h->n_addrs++] = xstrdup(h->name);
            continue;
        }
        for (size_t k = 0; k < 2; k++) {
            h->hq[k] = (host_query){.host = h, .type = types[k]};
            h->hq[k].q = dns_query(o->dns, h->name, types[k], on_host_addr, &h->hq[k]);
            d->pending++;
        }
    }
}

/* resolve_hosts - the hosts are known (MX, implicit MX, the next hop):
 * look up their addresses; hosts_done when they are all in. */
static void resolve_hosts(outbound_t *o, dest *d);
static void hosts_done(outbound_t *o, dest *d);

static void mx_add(dest *d, const char *name, unsigned pref)
{
    mx_host *h = &d->mx[d->n_mx++];

    memset(h, 0, sizeof *h);
    snprintf(h->name, sizeof h->name, "%s", name);
    h->pref = pref;
}

/* dest_resolve - start finding d's addresses; may finish at once. */
static void dest_resolve(outbound_t *o, dest *d)
{
    d->nh = d->head->nh;        /* the newest settings' port for the key */
    d->self_check = d->implicit_mx = false;
    if (d->nh.path[0] != '\0') {
        resolve_unix(d);
        return;
    }
    d->state = DEST_RESOLVING;
    if (!d->nh.mx) {
        d->mx = xcalloc(1, sizeof *d->mx);
        mx_add(d, d->nh.host, 0);
        resolve_hosts(o, d);
        return;
    }
    d->mxq = dns_query(o->dns, d->nh.host, DNS_MX, on_mx, d);
}

static void on_mx(void *arg, const dns_reply *reply)
{
    dest *d = arg;
    outbound_t *o = d->o;
    size_t limit = o->set->address_limit < MX_HOSTS_MAX ? o->set->address_limit : MX_HOSTS_MAX;

    d->mxq = NULL;
    if (reply->status == DNS_TEMPFAIL) {
        dest_unusable(d, CORREIO__RCPT_STATE__RCPT_DEFERRED, "4.4.3", false, 0,
                      "Host or domain name not found. Name service error for name=%s "
                      "type=MX: %s", d->nh.host, reply->error);
    } else if (reply->nxdomain) {
        dest_unusable(d, CORREIO__RCPT_STATE__RCPT_FAILED, "5.1.2", false, DEST_REUSE_S,
                      "Host or domain name not found. Name service error for name=%s "
                      "type=MX: Host not found", d->nh.host);
    } else if (reply->status == DNS_NOTFOUND) {        /* no MX: the name itself */
        d->mx = xcalloc(1, sizeof *d->mx);
        mx_add(d, d->nh.host, 0);
        d->self_check = d->implicit_mx = true;
        resolve_hosts(o, d);
    } else if (reply->n == 1 && reply->rr[0].text[0] == '\0') {
        dest_unusable(d, CORREIO__RCPT_STATE__RCPT_FAILED, "5.1.10", false, DEST_REUSE_S,
                      "Domain %s does not accept mail (nullMX)", d->nh.host);
    } else {
        d->mx = xcalloc(limit, sizeof *d->mx);
        for (size_t i = 0; i < reply->n && d->n_mx < limit; i++)
            if (reply->rr[i].text[0] != '\0')
                mx_add(d, reply->rr[i].text, reply->rr[i].pref);
        d->self_check = true;
        resolve_hosts(o, d);
    }
    dest_kick(o, d);
}

static void on_host_addr(void *arg, const dns_reply *reply)
{
    host_query *hq = arg;
    mx_host *h = hq->host;
    dest *d = h->d;
    const char *type = hq->type == DNS_A ? "A" : "AAAA";

    hq->q = NULL;
    if (reply->status == DNS_OK) {
        h->addrs = xrealloc(h->addrs, (h->n_addrs + reply->n) * sizeof *h->addrs);
        for (size_t i = 0; i < reply->n; i++)
            h->addrs[h->n_addrs++] = xstrdup(reply->rr[i].text);
    } else if (reply->status == DNS_TEMPFAIL) {
        h->tempfail = true;
        snprintf(h->error, sizeof h->error, "type=%s: %s", type, reply->error);
    } else if (h->error[0] == '\0' || hq->type == DNS_AAAA) {
        snprintf(h->error, sizeof h->error, "type=%s: Host not found", type);
    }
    if (--d->pending == 0)
        hosts_done(d->o, d);
    if (d->state != DEST_RESOLVING)
        dest_kick(d->o, d);
}

/* self_cut - how many MX hosts stay: those more preferred than the best
 * MX that is this host (all when none is). */
static size_t self_cut(const outbound_t *o, const dest *d, bool *found)
{
    *found = false;
    for (size_t i = 0; d->self_check && i < d->n_mx; i++) {
        const mx_host *h = &d->mx[i];
        for (size_t k = 0; k < h->n_addrs; k++) {
            if (!myself_has_text(o->set->myself, h->addrs[k], d->nh.port))
                continue;
            size_t cut = 0;
            while (cut < d->n_mx && d->mx[cut].pref < h->pref)
                cut++;
            *found = true;
            return cut;
        }
    }
    return d->n_mx;
}

/* build_list - the addresses of mx[0..n) in order, IPv4 before IPv6 for
 * each host, at most address_limit. */
static addr_list *build_list(const outbound_t *o, const dest *d, size_t n, bool *tempfail,
                             const mx_host **first_bad)
{
    size_t limit = o->set->address_limit;
    addr_list *l = addr_list_new(limit);

    *tempfail = false;
    *first_bad = NULL;
    for (size_t i = 0; i < n; i++) {
        const mx_host *h = &d->mx[i];
        if (h->n_addrs == 0) {
            *tempfail |= h->tempfail;
            if (*first_bad == NULL)
                *first_bad = h;
            if (d->self_check && !d->implicit_mx)
                log_debug("unable to look up MX host %s for %s: %s", h->name, d->nh.host,
                          h->error);
        }
        for (int pass = 0; pass < 2; pass++)
            for (size_t k = 0; k < h->n_addrs && l->n < limit; k++) {
                bool v6 = strchr(h->addrs[k], ':') != NULL;
                if (v6 == (pass == 1) && fill_addr(&l->a[l->n], h->name, h->addrs[k], d->nh.port))
                    l->n++;
            }
    }
    return l;
}

static void resolve_hosts(outbound_t *o, dest *d)
{
    start_host_lookups(o, d);
    if (d->pending == 0)
        hosts_done(o, d);
}

static void hosts_done(outbound_t *o, dest *d)
{
    bool myself, tempfail;
    const mx_host *bad;
    size_t n;
    addr_list *l;

    n = self_cut(o, d, &myself);
    if (n == 0 && myself) {
        dest_unusable(d, o->set->best_mx_local ? CORREIO__RCPT_STATE__RCPT_DEFERRED
                                               : CORREIO__RCPT_STATE__RCPT_FAILED,
                      o->set->best_mx_local ? "4.4.6" : "5.4.6", o->set->best_mx_local,
                      DEST_REUSE_S, "mail for %s loops back to myself", d->nh.host);
        return;
    }
    l = build_list(o, d, n, &tempfail, &bad);
    if (l->n > 0) {
        dest_ready(d, l, DEST_REUSE_S);
        return;
    }
    addr_list_unref(&l);
    if (tempfail)
        dest_unusable(d, CORREIO__RCPT_STATE__RCPT_DEFERRED, "4.4.3", false, 0,
                      "Host or domain name not found. Name service error for name=%s %s",
                      bad->name, bad->error);
    else
        dest_unusable(d, CORREIO__RCPT_STATE__RCPT_FAILED, d->implicit_mx ? "5.1.2" : "5.4.4",
                      false, DEST_REUSE_S,
                      "Host or domain name not found. Name service error for name=%s %s",
                      bad ? bad->name : d->nh.host, bad ? bad->error : "type=A: Host not found");
}

/* ================================================================ connections */

static void conn_link(outbound_t *o, conn *c)
{
    c->next = o->conns;
    if (o->conns)
        o->conns->prev = c;
    o->conns = c;
    c->dnext = c->d->conns;
    if (c->d->conns)
        c->d->conns->dprev = c;
    c->d->conns = c;
    o->n_conns++;
    c->counted = true;
    c->d->n_counted++;
    o->n_counted++;
}

static void conn_unlink(outbound_t *o, conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        o->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    if (c->dprev)
        c->dprev->dnext = c->dnext;
    else
        c->d->conns = c->dnext;
    if (c->dnext)
        c->dnext->dprev = c->dprev;
    o->n_conns--;
}

/* conn_uncount - c no longer takes a slot (closing or quitting). */
static void conn_uncount(outbound_t *o, conn *c)
{
    if (!c->counted)
        return;
    c->counted = false;
    c->d->n_counted--;
    o->n_counted--;
}

static void conn_set_state(outbound_t *o, conn *c, conn_state st)
{
    if (c->state == CONN_IDLE)
        o->n_idle--;
    if (st == CONN_IDLE)
        o->n_idle++;
    c->state = st;
}

/* conn_kick - drive c once more from the loop (smtp_client_io with no
 * readiness): a transaction just started may be over without a byte. */
static void conn_kick(outbound_t *o, conn *c)
{
    if (c->kicked)
        return;
    c->kicked = true;
    c->kick_next = o->kicks;
    o->kicks = c;
}

static void conn_watch_client(outbound_t *o, conn *c)
{
    int w = smtp_client_wants(c->client);

    watch(o, &c->src, (w & SMTP_WANT_READ ? EPOLLIN : 0) | (w & SMTP_WANT_WRITE ? EPOLLOUT : 0));
}

static void conn_close(outbound_t *o, conn *c)
{
    log_debug("outbound: %s: %s closed in state %s after %u transactions%s%s", c->d->key,
              c->peer, conn_state_names[c->state],
              c->client ? smtp_client_transactions(c->client) : 0,
              c->client && smtp_client_tls_protocol(c->client)[0] ? " tls=" : "",
              c->client ? smtp_client_tls_protocol(c->client) : "");
    conn_uncount(o, c);
    conn_set_state(o, c, CONN_QUITTING);
    conn_unlink(o, c);
    watch(o, &c->src, 0);
    smtp_client_free(&c->client);
    if (close(c->src.fd) < 0)
        log_warn("outbound: close %s: %s", c->peer, strerror(errno));
    explicit_bzero(c->nh.pass, sizeof c->nh.pass);
    settings_unref(&c->set);
    c->job = NULL;
    bury(o, &c->src);
}

/* conn_new - a socket connecting to a for j (the slot is j's). */
static conn *conn_new(outbound_t *o, job *j, const dest_addr *a, bool tls_off)
{
    conn *c = xcalloc(1, sizeof *c);

    c->d = j->d;
    c->src.kind = SRC_CONN;
    c->src.fd = -1;
    c->addr = *a;
    c->tls_off = tls_off;
    c->set = settings_ref(o->set);
    c->nh = j->nh;
    c->job = j;
    c->opened = time_mono_ms();
    if (a->sa.ss_family == AF_UNIX) {
        snprintf(c->hostaddr, sizeof c->hostaddr, "%s[%s]", a->host, a->addr);
        snprintf(c->peer, sizeof c->peer, "%s", c->hostaddr);
    } else {
        snprintf(c->hostaddr, sizeof c->hostaddr, "%s[%s]", a->host, a->addr);
        snprintf(c->peer, sizeof c->peer, "%s:%u", c->hostaddr, j->nh.port);
    }
    return c;
}

/* conn_connected - the socket is up: the SMTP session starts. */
static void conn_connected(outbound_t *o, conn *c)
{
    c->opts = (smtp_client_opts){
        .lmtp = c->nh.lmtp,
        .helo_name = c->set->helo_name,
        .tls_level = c->tls_off ? SMTP_TLS_NONE : c->nh.tls_level,
        .tls_ctx = c->set->tls_ctx,
        .tls_server_name = c->addr.host,
        .auth_user = c->nh.user[0] ? c->nh.user : NULL,
        .auth_pass = c->nh.user[0] ? c->nh.pass : NULL,
        .auth_needs_tls = c->set->sasl_tls_required,
        .peer = c->peer,
        .timeouts = c->set->timeouts,
    };
    c->client = smtp_client_new(c->src.fd, &c->opts);
    conn_set_state(o, c, CONN_SETUP);
    conn_watch_client(o, c);
}

/* connect_failed - j's try at c's address failed before any SMTP. */
static void connect_failed(job *j, const conn *c, const char *why)
{
    failure_set(&j->last, "4.4.1", xasprintf("connect to %s: %s", c->peer, why), c->peer, NULL,
                NULL);
    j->all_5xx = false;
}

/* conn_open - connect to a for j; NULL (j->last says why) when the
 * connect failed at once. */
static conn *conn_open(outbound_t *o, job *j, const dest_addr *a, bool tls_off)
{
    conn *c = conn_new(o, j, a, tls_off);
    int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || (connect(fd, (const struct sockaddr *)&a->sa, a->salen) < 0
                   && errno != EINPROGRESS)) {
        connect_failed(j, c, strerror(errno));
        if (fd >= 0)
            close(fd);
        settings_unref(&c->set);
        xfree(&c);
        return NULL;
    }
    c->src.fd = fd;
    conn_link(o, c);
    c->state = CONN_CONNECTING;
    c->deadline = c->opened + c->set->connect_timeout_ms;
    watch(o, &c->src, EPOLLOUT);
    return c;
}

/* attempt_next - j tries the next address of its list; gives up when the
 * list or the limits are exhausted. */
static void attempt_next(outbound_t *o, job *j)
{
    const outbound_settings *s = o->set;

    while (j->next_addr < j->addrs->n && j->tried < s->address_limit
           && j->sessions < s->session_limit) {
        const dest_addr *a = &j->addrs->a[j->next_addr++];
        j->tried++;
        if (conn_open(o, j, a, false) != NULL)
            return;
    }
    job_give_up(o, &j);
}

/* conn_start_txn - c runs j's transaction. */
static void conn_start_txn(outbound_t *o, conn *c, job *j)
{
    c->job = j;
    conn_set_state(o, c, CONN_TXN);
    smtp_client_start(c->client, &j->txn);
    conn_watch_client(o, c);
    conn_kick(o, c);
}

/* conn_rcpt_results - after the transaction: one result per recipient. */
static void conn_rcpt_results(outbound_t *o, conn *c, job *j)
{
    bool peer_dsn = smtp_client_peer_dsn(c->client);
    const char *mta = c->addr.host;

    for (size_t i = 0; i < j->n; i++) {
        const smtp_reply *r = smtp_client_rcpt_reply(c->client, i);
        outcome oc = {
            .state = state_of(r->code),
            .status = r->status,
            .relay = c->peer,
            .remote_mta = mta,
            .diagnostic = r->code ? r->text : NULL,
        };
        char *text = oc.state == CORREIO__RCPT_STATE__RCPT_DELIVERED ? xstrdup(r->text)
                                                                     : reply_text(c, r);
        oc.text = text;
        oc.relayed_no_dsn = !c->nh.lmtp && oc.state == CORREIO__RCPT_STATE__RCPT_DELIVERED
                            && (j->notify[i] & CORREIO__NOTIFY__NOTIFY_SUCCESS) && !peer_dsn;
        post(o, j, i, &oc);
        xfree(&text);
    }
}

/* conn_txn_over - DONE: results, then the connection waits for the next
 * job of its destination (or quits when it is too old to reuse). */
static void conn_txn_over(outbound_t *o, conn *c)
{
    job *j = c->job;

    c->job = NULL;
    conn_rcpt_results(o, c, j);
    job_free(o, &j);
    if (c->set != o->set || time_mono_ms() - c->opened >= c->set->reuse_time_ms) {
        conn_quit(o, c);
        return;
    }
    conn_set_state(o, c, CONN_IDLE);
    c->idle_since = time_mono_ms();
    watch(o, &c->src, EPOLLIN);         /* the peer may say goodbye */
}

static bool greeted(const smtp_reply *r)
{
    return !(r->code == 0 && r->stage != NULL && strcmp(r->stage, "greeting") == 0);
}

/* refused_session - a 5xx to the greeting or to EHLO/HELO: the server
 * refuses this client.  (A refused AUTH or STARTTLS is this side's
 * configuration, never a bounce: Postfix's smtp_sasl_auth_soft_bounce.) */
static bool refused_session(const smtp_reply *r)
{
    return r->code / 100 == 5 && r->stage != NULL
           && (strcmp(r->stage, "greeting") == 0 || strcmp(r->stage, "EHLO") == 0
               || strcmp(r->stage, "HELO") == 0);
}

/* conn_setup_failed - the session failed before MAIL: j moves on (to the
 * same address without TLS once, when TLS failed at level may). */
static void conn_setup_failed(outbound_t *o, conn *c, const smtp_reply *r, bool tls_failed)
{
    job *j = c->job;
    dest *d = c->d;
    dest_addr a = c->addr;
    bool retry_plain = tls_failed && c->opts.tls_level == SMTP_TLS_MAY && !c->tls_off;

    if (greeted(r))
        j->sessions++;
    if (!refused_session(r))
        j->all_5xx = false;
    failure_set(&j->last, r->status, reply_text(c, r), c->peer,
                r->code ? c->addr.host : NULL, r->code ? r->text : NULL);
    conn_close(o, c);
    if (retry_plain) {
        log_debug("outbound: %s: TLS failed (%s); trying again without TLS", d->key, j->last.text);
        if (conn_open(o, j, &a, true) != NULL)
            return;
    }
    attempt_next(o, j);
}

/* conn_txn_failed - the connection broke during the transaction.  A
 * cached connection that was found dead at MAIL is no fault of the
 * destination: the job goes back to the head of the queue once. */
static void conn_txn_failed(outbound_t *o, conn *c, const smtp_reply *r)
{
    job *j = c->job;
    bool stale = smtp_client_transactions(c->client) > 0 && r->code == 0 && r->stage != NULL
                 && strcmp(r->stage, "MAIL FROM") == 0 && !j->stale_retried;

    if (stale) {
        j->stale_retried = true;
        addr_list_unref(&j->addrs);
        c->job = NULL;
        conn_close(o, c);
        dest_enqueue(j->d, j, true);
        return;
    }
    conn_rcpt_results(o, c, j);
    c->job = NULL;
    job_free(o, &j);
    conn_close(o, c);
}

static void conn_failed(outbound_t *o, conn *c)
{
    bool tls_failed = false;
    const smtp_reply *r = smtp_client_failure(c->client, &tls_failed);

    switch (c->state) {
    case CONN_SETUP:
        conn_setup_failed(o, c, r, tls_failed);
        break;
    case CONN_TXN:
        conn_txn_failed(o, c, r);
        break;
    default:
        conn_close(o, c);
        break;
    }
}

static void conn_quit(outbound_t *o, conn *c)
{
    conn_uncount(o, c);
    conn_set_state(o, c, CONN_QUITTING);
    smtp_client_quit(c->client);
    conn_watch_client(o, c);
    conn_kick(o, c);
}

/* conn_drive - hand readiness to the client and act on its status. */
static void conn_drive(outbound_t *o, conn *c, bool readable, bool writable)
{
    switch (smtp_client_io(c->client, readable, writable)) {
    case SMTP_CLIENT_RUNNING:
        conn_watch_client(o, c);
        break;
    case SMTP_CLIENT_READY:
        if (c->state == CONN_SETUP) {
            c->job->sessions++;
            conn_start_txn(o, c, c->job);
        } else {
            conn_watch_client(o, c);
        }
        break;
    case SMTP_CLIENT_DONE:
        if (c->state == CONN_TXN)
            conn_txn_over(o, c);
        else
            log_panic("outbound conn_drive: %s: DONE in state %s", c->peer,
                      conn_state_names[c->state]);
        break;
    case SMTP_CLIENT_FAILED:
        conn_failed(o, c);
        break;
    case SMTP_CLIENT_CLOSED:
        conn_close(o, c);
        break;
    }
}

/* conn_connect_done - the non-blocking connect finished (or timed out:
 * err ETIMEDOUT). */
static void conn_connect_done(outbound_t *o, conn *c, int err)
{
    job *j = c->job;

    if (err == 0) {
        conn_connected(o, c);
        return;
    }
    connect_failed(j, c, strerror(err));
    conn_close(o, c);
    attempt_next(o, j);
}

static void conn_event(outbound_t *o, conn *c, uint32_t ev)
{
    dest *d = c->d;
    int err = 0;
    socklen_t len = sizeof err;

    switch (c->state) {
    case CONN_CONNECTING:
        if (getsockopt(c->src.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        conn_connect_done(o, c, err);
        break;
    case CONN_IDLE:                     /* a 421 or a close: not worth reading */
        conn_close(o, c);
        break;
    default:
        conn_drive(o, c, ev & (EPOLLIN | EPOLLHUP | EPOLLERR), ev & (EPOLLOUT | EPOLLERR));
        break;
    }
    dest_kick(o, d);
}

static int64_t conn_deadline(const conn *c)
{
    switch (c->state) {
    case CONN_CONNECTING:
        return c->deadline;
    case CONN_IDLE:
        return c->idle_since + c->set->cache_time_ms;
    default:
        return smtp_client_deadline_ms(c->client);
    }
}

static void conn_timer(outbound_t *o, conn *c)
{
    dest *d = c->d;

    switch (c->state) {
    case CONN_CONNECTING:
        conn_connect_done(o, c, ETIMEDOUT);
        break;
    case CONN_IDLE:
        conn_quit(o, c);
        break;
    default:
        conn_drive(o, c, false, false);
        break;
    }
    dest_kick(o, d);
}

/* ================================================================ scheduling */

/* idle_conn - an idle connection of d that j may use. */
static conn *idle_conn(const dest *d, const job *j, int64_t now)
{
    for (conn *c = d->conns; c != NULL; c = c->dnext)
        if (c->state == CONN_IDLE && now - c->opened < c->set->reuse_time_ms
            && c->nh.tls_level == j->nh.tls_level && strcmp(c->nh.user, j->nh.user) == 0)
            return c;
    return NULL;
}

/* reclaim_idle - close the longest idle connection of any destination
 * to free a slot; false when there is none. */
static bool reclaim_idle(outbound_t *o)
{
    conn *oldest = NULL;

    if (o->n_idle == 0)
        return false;
    for (conn *c = o->conns; c != NULL; c = c->next)
        if (c->state == CONN_IDLE && (oldest == NULL || c->idle_since < oldest->idle_since))
            oldest = c;
    if (oldest == NULL)
        return false;
    conn_quit(o, oldest);
    return true;
}

static void block(outbound_t *o, dest *d)
{
    if (d->blocked)
        return;
    d->blocked = true;
    d->blocked_next = NULL;
    if (o->blocked_tail)
        o->blocked_tail->blocked_next = d;
    else
        o->blocked_head = d;
    o->blocked_tail = d;
}

/* dest_start_one - start d's first job; false when it must wait. */
static bool dest_start_one(outbound_t *o, dest *d)
{
    job *j = d->head;
    conn *c = idle_conn(d, j, time_mono_ms());

    if (c != NULL) {
        conn_start_txn(o, c, dest_dequeue(d));
        return true;
    }
    if (d->n_counted >= o->set->dest_limit)
        return false;
    if (o->n_counted >= o->set->connection_limit && !reclaim_idle(o)) {
        block(o, d);
        return false;
    }
    j = dest_dequeue(d);
    j->addrs = d->addrs;
    j->addrs->refs++;
    j->next_addr = j->tried = j->sessions = 0;
    attempt_next(o, j);
    return true;
}

/* dest_fail_waiting - UNUSABLE: every waiting job gets the reason. */
static void dest_fail_waiting(outbound_t *o, dest *d)
{
    outcome oc = {
        .state = d->fail_state,
        .status = d->fail_status,
        .text = d->fail_text,
        .relay = "none",
        .loops_to_local = d->fail_local,
    };
    job *j;

    while ((j = dest_dequeue(d)) != NULL) {
        post_all(o, j, &oc);
        job_free(o, &j);
    }
    if (d->expires < 0)
        dest_forget(d);
}

static void dest_pump(outbound_t *o, dest *d)
{
    while (d->head != NULL) {
        if ((d->state == DEST_READY || d->state == DEST_UNUSABLE) && d->expires >= 0
            && time_mono_ms() >= d->expires)
            dest_forget(d);
        switch (d->state) {
        case DEST_UNKNOWN:
            dest_resolve(o, d);
            if (d->state == DEST_RESOLVING)
                return;
            break;
        case DEST_RESOLVING:
            return;
        case DEST_UNUSABLE:
            dest_fail_waiting(o, d);
            return;
        case DEST_READY:
            if (!dest_start_one(o, d))
                return;
            break;
        }
    }
}

/* pump_blocked - destinations that waited for a slot, while slots last. */
static void pump_blocked(outbound_t *o)
{
    while (o->blocked_head != NULL
           && (o->n_counted < o->set->connection_limit || o->n_idle > 0)) {
        dest *d = o->blocked_head;
        o->blocked_head = d->blocked_next;
        if (o->blocked_head == NULL)
            o->blocked_tail = NULL;
        d->blocked = false;
        dest_pump(o, d);
        if (d->blocked)
            return;
    }
}

static void dest_kick(outbound_t *o, dest *d)
{
    dest_pump(o, d);
    pump_blocked(o);
}

/* ================================================================ commands */

static void engine_submit(outbound_t *o, command *cmd)
{
    const Envelope *env = work_msg_envelope(cmd->msg);
    job *j = job_new(cmd->msg, cmd->rcpt, cmd->n, cmd->tag);     /* checks the indexes */
    const Recipient *r0 = env->rcpt[j->rcpt[0]];
    char err[300];
    dest *d;

    cmd->msg = NULL;
    o->n_jobs++;
    if (nexthop_resolve(&o->set->policy, r0->route, r0->nexthop, r0->address, &j->nh, err,
                        sizeof err) != NEXTHOP_OK) {
        /* err is "4.3.5 why": the status, then the text */
        size_t sp = strcspn(err, " ");
        outcome oc = {.state = CORREIO__RCPT_STATE__RCPT_DEFERRED, .status = "4.3.0",
                      .text = err[sp] ? err + sp + 1 : err, .relay = "none"};
        if (err[sp] && sp < 16)
            err[sp] = '\0', oc.status = err;
        post_all(o, j, &oc);
        job_free(o, &j);
        return;
    }
    job_txn(j);
    d = dest_get(o, &j->nh);
    j->d = d;
    d->jobs++;
    dest_enqueue(d, j, false);
    dest_kick(o, d);
}

static void for_each_dest(outbound_t *o, void (*fn)(outbound_t *, dest *))
{
    for (size_t b = 0; b < DEST_BUCKETS; b++)
        for (dest *d = o->buckets[b], *next; d != NULL; d = next) {
            next = d->hash_next;
            fn(o, d);
        }
}

static void forget_one(outbound_t *o, dest *d)
{
    (void)o;
    dest_forget(d);
}

static void kick_one(outbound_t *o, dest *d)
{
    dest_kick(o, d);
}

/* engine_reconfigure - new settings for what starts from now on: a new
 * resolver, no cached destination, no idle connection of the old ones. */
static void engine_reconfigure(outbound_t *o, outbound_settings *s)
{
    for_each_dest(o, forget_one);       /* abandons the queries under way */
    dns_free(&o->dns);
    settings_unref(&o->set);
    o->set = s;
    o->dns = engine_dns(o);
    for (conn *c = o->conns, *next; c != NULL; c = next) {
        next = c->next;
        if (c->state == CONN_IDLE)
            conn_quit(o, c);
    }
    for_each_dest(o, kick_one);
}

static void command_free(command **cp)
{
    command *c = *cp;

    work_msg_unref(&c->msg);
    outbound_settings_free(&c->settings);
    xfree(&c->rcpt);
    xfree(cp);
}

/* engine_commands - take the inbox; run what is in it. */
static void engine_commands(outbound_t *o)
{
    uint64_t n;
    command *list;

    if (read(o->wake.fd, &n, sizeof n) < 0 && errno != EAGAIN)
        log_panic("outbound: read eventfd: %s", strerror(errno));
    pthread_mutex_lock(&o->lock);
    list = o->inbox;
    o->inbox = o->inbox_tail = NULL;
    pthread_mutex_unlock(&o->lock);
    while (list != NULL) {
        command *c = list;
        list = c->next;
        if (c->kind == CMD_SUBMIT) {
            engine_submit(o, c);
        } else {
            engine_reconfigure(o, c->settings);
            c->settings = NULL;
        }
        command_free(&c);
    }
}

/* ================================================================ the loop */

/* engine_timeout - how long epoll may sleep, in ms (-1: until an event). */
static int engine_timeout(outbound_t *o, int64_t now)
{
    int64_t due = INT64_MAX, t = dns_timeout_ms(o->dns);

    if (o->kicks != NULL)
        return 0;
    if (t >= 0)
        due = now + t;
    for (conn *c = o->conns; c != NULL; c = c->next) {
        int64_t dl = conn_deadline(c);
        if (dl < due)
            due = dl;
    }
    if (o->n_dests > 0 && o->next_sweep < due)
        due = o->next_sweep;
    if (due == INT64_MAX)
        return -1;
    if (due <= now)
        return 0;
    return due - now > 60000 ? 60000 : (int)(due - now);
}

/* engine_timers - expired connection steps, the resolver's timeouts. */
static void engine_timers(outbound_t *o, int64_t now)
{
    size_t n = 0, cap = 0;
    conn **due = NULL;

    if (dns_timeout_ms(o->dns) == 0)
        dns_process(o->dns, -1, false, false);
    for (conn *c = o->conns; c != NULL; c = c->next)
        if (conn_deadline(c) <= now) {
            if (n == cap) {
                cap = cap ? 2 * cap : 8;
                due = xrealloc(due, cap * sizeof *due);
            }
            due[n++] = c;
        }
    for (size_t i = 0; i < n; i++)     /* one may close another: dead ones are skipped */
        if (!due[i]->src.dead)
            conn_timer(o, due[i]);
    xfree(&due);
}

static void engine_kicks(outbound_t *o)
{
    while (o->kicks != NULL) {
        conn *c = o->kicks;
        o->kicks = c->kick_next;
        c->kicked = false;
        if (!c->src.dead) {
            dest *d = c->d;
            conn_drive(o, c, false, false);
            dest_kick(o, d);
        }
    }
}

/* engine_sweep - free destinations with nothing waiting, nothing open
 * and nothing worth remembering. */
static void engine_sweep(outbound_t *o, int64_t now)
{
    if (now < o->next_sweep)
        return;
    o->next_sweep = now + SWEEP_INTERVAL_MS;
    for (size_t b = 0; b < DEST_BUCKETS; b++)
        for (dest **dp = &o->buckets[b]; *dp != NULL;) {
            dest *d = *dp;
            bool keep = d->jobs > 0 || d->conns != NULL || d->state == DEST_RESOLVING
                        || d->blocked
                        || ((d->state == DEST_READY || d->state == DEST_UNUSABLE)
                            && now < d->expires);
            if (keep) {
                dp = &d->hash_next;
                continue;
            }
            *dp = d->hash_next;
            dest_free(o, &d);
        }
}

static void engine_dispatch(outbound_t *o, source *s, uint32_t ev)
{
    if (s->dead)
        return;
    switch (s->kind) {
    case SRC_WAKE:
        engine_commands(o);
        break;
    case SRC_DNS:
        dns_process(o->dns, s->fd, ev & (EPOLLIN | EPOLLHUP | EPOLLERR), ev & EPOLLOUT);
        break;
    case SRC_CONN:
        conn_event(o, (conn *)s, ev);
        break;
    }
}

static void engine_publish(outbound_t *o)
{
    __atomic_store_n(&o->st_conns, o->n_conns, __ATOMIC_RELAXED);
    __atomic_store_n(&o->st_idle, o->n_idle, __ATOMIC_RELAXED);
    __atomic_store_n(&o->st_dests, o->n_dests, __ATOMIC_RELAXED);
    __atomic_store_n(&o->st_jobs, o->n_jobs, __ATOMIC_RELAXED);
}

static bool engine_stopping(outbound_t *o)
{
    bool stop;

    pthread_mutex_lock(&o->lock);
    stop = o->stop;
    pthread_mutex_unlock(&o->lock);
    return stop;
}

/* engine_shutdown - close everything; unfinished jobs post nothing. */
static void engine_shutdown(outbound_t *o)
{
    while (o->conns != NULL) {
        conn *c = o->conns;
        job *j = c->job;
        conn_close(o, c);
        job_free(o, &j);
    }
    for (size_t b = 0; b < DEST_BUCKETS; b++)
        while (o->buckets[b] != NULL) {
            dest *d = o->buckets[b];
            job *j;
            o->buckets[b] = d->hash_next;
            while ((j = dest_dequeue(d)) != NULL)
                job_free(o, &j);
            dest_free(o, &d);
        }
    o->blocked_head = o->blocked_tail = NULL;
    o->kicks = NULL;
    dns_free(&o->dns);
    dns_cache_free(&o->dns_cache);
    while (o->n_dns_src > 0)            /* sockets the resolver did not report closed */
        bury(o, o->dns_src[--o->n_dns_src]);
    graveyard_empty(o);
    engine_publish(o);
}

static void *engine_main(void *arg)
{
    outbound_t *o = arg;
    struct epoll_event ev[EPOLL_BATCH];

    o->dns = engine_dns(o);
    while (!engine_stopping(o)) {
        int n = epoll_wait(o->epfd, ev, EPOLL_BATCH, engine_timeout(o, time_mono_ms()));
        int64_t now;

        if (n < 0 && errno != EINTR)
            log_fatal("outbound: epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            engine_dispatch(o, ev[i].data.ptr, ev[i].events);
        engine_kicks(o);
        now = time_mono_ms();
        engine_timers(o, now);
        engine_kicks(o);
        engine_sweep(o, now);
        graveyard_empty(o);
        engine_publish(o);
    }
    engine_shutdown(o);
    return NULL;
}

/* ================================================================ API */

static void post_command(outbound_t *o, command *c)
{
    uint64_t one = 1;

    pthread_mutex_lock(&o->lock);
    if (o->inbox_tail)
        o->inbox_tail->next = c;
    else
        o->inbox = c;
    o->inbox_tail = c;
    pthread_mutex_unlock(&o->lock);
    if (write(o->wake.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_panic("outbound: write eventfd: %s", strerror(errno));
}

outbound_t *outbound_start(outbound_settings *settings, results_t *box)
{
    outbound_t *o = xcalloc(1, sizeof *o);
    int rc;

    o->set = settings;
    o->box = box;
    if (pthread_mutex_init(&o->lock, NULL) != 0)
        log_fatal("outbound: cannot create a mutex");
    o->epfd = epoll_create1(EPOLL_CLOEXEC);
    o->wake.kind = SRC_WAKE;
    o->wake.fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (o->epfd < 0 || o->wake.fd < 0)
        log_fatal("outbound: cannot create epoll or eventfd: %s", strerror(errno));
    watch(o, &o->wake, EPOLLIN);
    rc = pthread_create(&o->thread, NULL, engine_main, o);
    if (rc != 0)
        log_fatal("outbound: cannot start the thread: %s", strerror(rc));
    o->running = true;
    return o;
}

void outbound_reconfigure(outbound_t *o, outbound_settings *settings)
{
    command *c = xcalloc(1, sizeof *c);

    c->kind = CMD_RECONFIGURE;
    c->settings = settings;
    post_command(o, c);
}

void outbound_submit(outbound_t *o, work_msg *m, const unsigned *rcpt, size_t n, unsigned tag)
{
    command *c;

    if (n == 0)
        return;
    c = xcalloc(1, sizeof *c);
    c->kind = CMD_SUBMIT;
    c->msg = work_msg_ref(m);           /* the caller keeps its own reference */
    c->rcpt = xcalloc(n, sizeof *c->rcpt);
    memcpy(c->rcpt, rcpt, n * sizeof *rcpt);
    c->n = n;
    c->tag = tag;
    post_command(o, c);
}

void outbound_stats(outbound_t *o, char *buf, size_t size)
{
    snprintf(buf, size, "connections=%zu idle=%zu destinations=%zu jobs=%zu",
             __atomic_load_n(&o->st_conns, __ATOMIC_RELAXED),
             __atomic_load_n(&o->st_idle, __ATOMIC_RELAXED),
             __atomic_load_n(&o->st_dests, __ATOMIC_RELAXED),
             __atomic_load_n(&o->st_jobs, __ATOMIC_RELAXED));
}

void outbound_stop(outbound_t *o)
{
    uint64_t one = 1;
    command *list;
    int rc;

    if (o == NULL || !o->running)
        return;
    pthread_mutex_lock(&o->lock);
    o->stop = true;
    pthread_mutex_unlock(&o->lock);
    if (write(o->wake.fd, &one, sizeof one) < 0 && errno != EAGAIN)
        log_panic("outbound: write eventfd: %s", strerror(errno));
    rc = pthread_join(o->thread, NULL);
    if (rc != 0)
        log_panic("outbound_stop: pthread_join: %s", strerror(rc));
    o->running = false;
    list = o->inbox;            /* what came after the last wake-up */
    o->inbox = o->inbox_tail = NULL;
    while (list != NULL) {
        command *c = list;
        list = c->next;
        command_free(&c);
    }
}

void outbound_free(outbound_t **op)
{
    outbound_t *o = *op;

    if (o == NULL)
        return;
    outbound_stop(o);
    close(o->wake.fd);
    close(o->epfd);
    xfree(&o->dns_src);
    settings_unref(&o->set);
    pthread_mutex_destroy(&o->lock);
    xfree(op);
}
