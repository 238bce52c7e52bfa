/* cmd_policy.c - `correio greylist`, `correio intrusion` and `correio
 * limits`: the routers' policy state as the operator sees and changes it.
 *
 *   greylist list [--json] [PATTERN]   triplets waiting or passed
 *   greylist pass TRIPLET              let the triplet through from now on
 *   greylist delete TRIPLET|ALL        forget it: its next RCPT is greylisted
 *   intrusion list [--json] [PATTERN]  blocked and watched client IPs
 *   intrusion block IP                 block IP for intrusion_block_time (MANUAL)
 *   intrusion unblock IP|ALL           lift the block(s)
 *   limits list [--json] [PATTERN]     daily sending counters
 *   limits reset KEY|ALL               forget a counter (user:ADDR, domain:DOM)
 *   awl list [--json] [USER|PATTERN]   auto-whitelist: addresses users wrote to
 *   awl delete USER ADDRESS|ALL        forget one (USER's mail from ADDRESS is
 *                                      scored as usual again)
 *
 * The routers are those policy_endpoints names (tcp://NAME:PORT is every
 * address of NAME, lib/endpoints.h), each asked over its own REQ socket
 * (frames [empty][PolicyRequest], what the router's ROUTER expects), all
 * at once with one deadline.  A list merges every router's entries; a
 * change of one key goes to the router that owns it, chosen with
 * policy_rendezvous over the same addresses the ingress uses, so a
 * passed triplet lands where the ingress will look; ALL goes to every
 * router.  An auto-whitelist entry is keyed "USER ADDRESS" and lives on
 * the router that owns "awl:USER" (router/awl.c asks that one).  A router that does not answer is named on stderr and the
 * others still answer.  Exit status: 0 done, 1 in part (a router that
 * does not answer, a key no router has), 2 bad usage.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "ctl.h"
#include "dns.h"
#include "endpoints.h"
#include "fanout.h"
#include "log.h"
#include "policy_client.h"
#include "queue_print.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define POLICY_CTL_TIMEOUT_MS  5000     /* one admin request to the routers */
#define POLICY_CTL_KEY_MAX     1024     /* longest key accepted on the command line */
#define POLICY_DAY_US          (86400LL * 1000000)

/* ------------------------------------------------------------ the routers */

typedef struct policy_node {
    char        *endpoint;   /* what is connected to: "tcp://192.0.2.1:7030" */
    char        *configured; /* the configured endpoint it came from */
    char        *error;      /* why it does not answer; NULL while it does */
    void        *sock;       /* REQ, made on first call */
    PolicyReply *reply;      /* the last call's answer, or NULL */
    PolicyReply *listed;     /* the answer to the list (its entries outlive later calls) */
    bool         name_shared; /* another router gave the same name: show endpoints */
} policy_node;

typedef struct policy_nodes {
    void        *zctx;
    size_t       n;
    policy_node *node;
    const char **names;      /* node[i].endpoint, for policy_rendezvous */
    bool         complete;   /* every configured endpoint resolved */
    uint64_t     next_id;
} policy_nodes;

static void node_set_error(policy_node *n, char *error)
{
    free(n->error);
    n->error = error;
    wire_free_policy_reply(&n->reply);
    if (n->sock) {
        zmq_close(n->sock);
        n->sock = NULL;
    }
}

static policy_node *nodes_add(policy_nodes *ns, const char *endpoint, const char *configured)
{
    policy_node *n;

    for (size_t i = 0; i < ns->n; i++)          /* one address twice: once */
        if (strcmp(ns->node[i].endpoint, endpoint) == 0)
            return &ns->node[i];
    ns->node = xrealloc(ns->node, (ns->n + 1) * sizeof(*ns->node));
    n = &ns->node[ns->n++];
    memset(n, 0, sizeof(*n));
    n->endpoint = xstrdup(endpoint);
    n->configured = xstrdup(configured);
    return n;
}

/* nodes_open - the routers of policy_endpoints, resolved as the ingress
 * resolves them; an endpoint that does not resolve becomes a node with
 * its error (and makes the owner of a key unknowable).  NULL after
 * saying why when the list is empty. */
static policy_nodes *nodes_open(const config_t *cfg)
{
    const char *const *endpoints = config_list(cfg, "policy_endpoints");
    policy_nodes *ns;
    dns_t *resolver = NULL;

    if (endpoints == NULL || endpoints[0] == NULL) {
        ctl_error("policy_endpoints names no router");
        return NULL;
    }
    ns = xcalloc(1, sizeof(*ns));
    ns->complete = true;
    ns->next_id = 1;
    if ((ns->zctx = zmq_ctx_new()) == NULL)
        log_fatal("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    for (size_t i = 0; endpoints[i]; i++) {
        char *err = NULL;
        char **addrs = endpoints_resolve(cfg, &resolver, endpoints[i], &err);

        if (addrs == NULL) {
            node_set_error(nodes_add(ns, endpoints[i], endpoints[i]),
                           err ? err : xstrdup("cannot resolve it"));
            ns->complete = false;
            continue;
        }
        for (size_t j = 0; addrs[j]; j++)
            nodes_add(ns, addrs[j], endpoints[i]);
        endpoints_free(&addrs);
    }
    dns_free(&resolver);
    ns->names = xcalloc(ns->n + 1, sizeof(*ns->names));
    for (size_t i = 0; i < ns->n; i++)
        ns->names[i] = ns->node[i].endpoint;
    return ns;
}

static void nodes_free(policy_nodes **nsp)
{
    policy_nodes *ns = *nsp;

    if (ns == NULL)
        return;
    for (size_t i = 0; i < ns->n; i++) {
        policy_node *n = &ns->node[i];

        if (n->sock)
            zmq_close(n->sock);
        free(n->endpoint);
        free(n->configured);
        free(n->error);
        wire_free_policy_reply(&n->reply);
        wire_free_policy_reply(&n->listed);
    }
    free(ns->node);
    free(ns->names);
    if (ns->zctx)
        zmq_ctx_term(ns->zctx);
    xfree(nsp);
}

/* tcp_listening - for tcp://HOST:PORT: 0 when the address refuses a
 * connection (nobody listens), 1 when one is accepted, -1 when it cannot
 * tell within timeout_ms (then the request's own timeout decides). */
static int tcp_listening(const char *endpoint, int timeout_ms)
{
    const char *hp = endpoint + strlen("tcp://");
    const char *colon = strrchr(hp, ':');
    struct addrinfo hints = {0}, *ai = NULL;
    struct pollfd pfd;
    char *host;
    int fd, rc = -1, soerr = 0;
    socklen_t len = sizeof(soerr);

    if (strncmp(endpoint, "tcp://", 6) != 0 || colon == NULL || colon == hp)
        return -1;
    host = hp[0] == '[' && colon[-1] == ']' ? xasprintf("%.*s", (int)(colon - hp - 2), hp + 1)
                                            : xasprintf("%.*s", (int)(colon - hp), hp);
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    hints.ai_socktype = SOCK_STREAM;
    if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL) {
        free(host);
        return -1;
    }
    free(host);
    fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
            rc = 1;
        else if (errno == ECONNREFUSED)
            rc = 0;
        else if (errno == EINPROGRESS) {
            pfd.fd = fd;
            pfd.events = POLLOUT;
            if (poll(&pfd, 1, timeout_ms) == 1
                && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &len) == 0)
                rc = soerr == 0 ? 1 : soerr == ECONNREFUSED ? 0 : -1;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    return rc;
}

/* node_socket - the node's REQ socket, connected; NULL (error set) when
 * nothing listens there. */
static void *node_socket(policy_nodes *ns, policy_node *n, int timeout_ms)
{
    char *err = NULL;

    if (n->sock)
        return n->sock;
    if (ctl_ipc_listening(n->endpoint) == 0) {  /* fail at once, not at the timeout */
        node_set_error(n, xasprintf("nothing listens on %s", n->endpoint + strlen("ipc://")));
        return NULL;
    }
    if (tcp_listening(n->endpoint, timeout_ms) == 0) {
        node_set_error(n, xasprintf("nothing listens on %s", n->endpoint + strlen("tcp://")));
        return NULL;
    }
    if ((n->sock = fanout_socket(ns->zctx, n->endpoint, timeout_ms, &err)) == NULL)
        node_set_error(n, err);
    return n->sock;
}

/* The routers asked by one nodes_call, for on_answer. */
typedef struct call_ctx {
    policy_nodes *ns;
    size_t       *which;        /* socket k is node which[k] */
    uint64_t     *ids;          /* and was sent request ids[k] */
    size_t        answered;
} call_ctx;

/* on_answer - router which[k] answered (fanout_answer). */
static void on_answer(void *arg, size_t k, const void *data, size_t len, const char *error)
{
    call_ctx *cx = arg;
    policy_node *n = &cx->ns->node[cx->which[k]];

    if (error)
        node_set_error(n, xasprintf("receive: %s", error));
    else if ((n->reply = wire_unpack_policy_reply(data, len, n->endpoint)) == NULL)
        node_set_error(n, xasprintf("bad reply (%zu bytes)", len));
    else if (n->reply->id != cx->ids[k])
        node_set_error(n, xasprintf("reply to request %llu, not %llu",
                                    (unsigned long long)n->reply->id,
                                    (unsigned long long)cx->ids[k]));
    else
        cx->answered++;
}

/* nodes_call - send req[i] (NULL: nothing) to node i, all at once, and
 * wait up to timeout_ms for the answers.  Each asked node's previous
 * reply is freed; it gets the new one, or its error is set (and it is
 * left out of later calls).  Returns how many answered. */
static size_t nodes_call(policy_nodes *ns, PolicyRequest *const *req, int timeout_ms)
{
    void **socks = xcalloc(ns->n + 1, sizeof(*socks));
    call_ctx cx = {ns, xcalloc(ns->n + 1, sizeof(size_t)), xcalloc(ns->n + 1, sizeof(uint64_t)),
                   0};
    size_t n_socks = 0;
    int64_t deadline = time_mono_ms() + timeout_ms;
    bool *silent;

    for (size_t i = 0; i < ns->n; i++) {
        policy_node *n = &ns->node[i];
        uint8_t *out;
        size_t len;
        void *sock;
        int rc;

        if (req[i] == NULL || n->error)
            continue;
        wire_free_policy_reply(&n->reply);
        if ((sock = node_socket(ns, n, timeout_ms)) == NULL)
            continue;
        req[i]->version = WIRE_VERSION;
        req[i]->id = cx.ids[n_socks] = ns->next_id++;
        out = wire_pack_policy_request(req[i], &len);
        rc = zmq_send(sock, out, len, 0);
        free(out);
        if (rc < 0) {
            node_set_error(n, xasprintf("cannot send: %s", zmq_strerror(zmq_errno())));
            continue;
        }
        socks[n_socks] = sock;
        cx.which[n_socks++] = i;
    }

    silent = fanout_wait(socks, n_socks, deadline, on_answer, &cx);
    for (size_t k = 0; k < n_socks; k++)      /* a REQ that got no answer is stuck */
        if (silent[k])
            node_set_error(&ns->node[cx.which[k]], xasprintf("no answer within %d ms", timeout_ms));
    xfree(&silent);
    xfree(&socks);
    xfree(&cx.which);
    xfree(&cx.ids);
    return cx.answered;
}

/* node_label - the router's own name (its myhostname) when it gave one
 * and no other router has the same, else its endpoint. */
static const char *node_label(const policy_node *n, const char *name)
{
    return name && name[0] && !n->name_shared ? name : n->endpoint;
}

/* report_down - name each router that did not answer (once); returns
 * how many. */
static size_t report_down(policy_nodes *ns, const char *consequence)
{
    size_t down = 0;

    for (size_t i = 0; i < ns->n; i++) {
        const policy_node *n = &ns->node[i];
        bool resolved = strcmp(n->endpoint, n->configured) != 0;

        if (n->error == NULL)
            continue;
        ctl_error("router at %s%s%s%s does not answer, so %s: %s%s", n->endpoint,
                  resolved ? " (from " : "", resolved ? n->configured : "", resolved ? ")" : "",
                  consequence, n->error,
                  strncmp(n->endpoint, "ipc://", 6) == 0 ? " (is correio running?)" : "");
        down++;
    }
    return down;
}

/* reply_text - the router's text made printable, for messages. */
static const char *reply_text(char *dst, size_t size, const PolicyReply *r)
{
    const char *t = r->text && r->text[0] ? r->text : r->reason ? r->reason : "";

    return log_printable(dst, size, t, strlen(t));
}

/* ------------------------------------------------------------ times */

/* fmt_time - "2026-11-23 18:40:02" (local time) for µs since the epoch. */
static const char *fmt_time(char *dst, size_t size, uint64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;

    if (us == 0 || localtime_r(&t, &tm) == NULL
        || strftime(dst, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(dst, size, "-");
    return dst;
}

/* fmt_span - "3h59m", "4m59s", "29d23h", "12s" for a duration in µs. */
static const char *fmt_span(char *dst, size_t size, int64_t us)
{
    long long s = us <= 0 ? 0 : (us + 999999) / 1000000;

    if (s >= 86400)
        snprintf(dst, size, "%lldd%lldh", s / 86400, s % 86400 / 3600);
    else if (s >= 3600)
        snprintf(dst, size, "%lldh%lldm", s / 3600, s % 3600 / 60);
    else if (s >= 60)
        snprintf(dst, size, "%lldm%llds", s / 60, s % 60);
    else
        snprintf(dst, size, "%llds", s);
    return dst;
}

/* fmt_until - "2026-11-23 18:40:02 (3h59m left)", or "(... ago)" when past. */
static const char *fmt_until(char *dst, size_t size, uint64_t until, int64_t now)
{
    char t[32], d[24];

    fmt_time(t, sizeof(t), until);
    fmt_span(d, sizeof(d), (int64_t)until > now ? (int64_t)until - now : now - (int64_t)until);
    snprintf(dst, size, "%s (%s %s)", t, d, (int64_t)until > now ? "left" : "ago");
    return dst;
}

/* ------------------------------------------------------------ the tables */

typedef struct policy_table {
    const char *command;     /* "greylist" */
    const char *key_title;   /* column title: "TRIPLET" */
    const char *key_word;    /* in usage messages: "TRIPLET" */
    const char *plural;      /* "greylist entries" */
    const char *one, *many;  /* what ALL counts: "address", "addresses" */
} policy_table;

static const policy_table table_greylist = {"greylist", "TRIPLET", "TRIPLET", "greylist entries",
                                            "triplet", "triplets"};
static const policy_table table_intrusion = {"intrusion", "IP", "IP", "intrusion records",
                                             "address", "addresses"};
static const policy_table table_limits = {"limits", "KEY", "KEY", "sending counters",
                                          "counter", "counters"};
static const policy_table table_awl = {"awl", "USER ADDRESS", "USER ADDRESS",
                                       "auto-whitelist entries", "address", "addresses"};

/* One entry of a list, with the router that holds it. */
typedef struct listed {
    const PolicyEntry *e;
    const policy_node *n;
} listed;

static int listed_by_key(const void *a, const void *b)
{
    const listed *x = a, *y = b;
    int c = strcmp(x->e->key ? x->e->key : "", y->e->key ? y->e->key : "");

    return c ? c : strcmp(x->n->endpoint, y->n->endpoint);
}

/* detail - the last column: what the entry means now. */
static void detail(char *dst, size_t size, const policy_table *t, const PolicyEntry *e,
                   int64_t now)
{
    char a[32], b[32], c[96], reason[64];
    const char *state = e->state ? e->state : "", *r = e->reason ? e->reason : "";

    log_printable(reason, sizeof(reason), r, strlen(r));
    if (t == &table_greylist && strcmp(state, "passed") == 0)
        snprintf(dst, size, "first %s, last %s, expires %s", fmt_time(a, sizeof(a), e->first),
                 fmt_time(b, sizeof(b), e->last), fmt_until(c, sizeof(c), e->until, now));
    else if (t == &table_greylist)
        snprintf(dst, size, "first %s, %s %s", fmt_time(a, sizeof(a), e->first),
                 (int64_t)e->until > now ? "may pass from" : "may pass since",
                 fmt_until(c, sizeof(c), e->until, now));
    else if (t == &table_intrusion && strcmp(state, "blocked") == 0)
        snprintf(dst, size, "blocked until %s reason=%s since %s",
                 fmt_until(c, sizeof(c), e->until, now), reason[0] ? reason : "-",
                 fmt_time(a, sizeof(a), e->first));
    else if (t == &table_intrusion && e->count == 0)
        snprintf(dst, size, "no events counted now, last seen %s%s%s",
                 fmt_time(b, sizeof(b), e->last), reason[0] ? " reason=" : "", reason);
    else if (t == &table_intrusion)
        snprintf(dst, size, "%llu events since %s, last seen %s%s%s", (unsigned long long)e->count,
                 fmt_time(a, sizeof(a), e->first), fmt_time(b, sizeof(b), e->last),
                 reason[0] ? " reason=" : "", reason);
    else if (t == &table_awl)
        snprintf(dst, size, "written to %llu time%s, first %s, last %s, expires %s",
                 (unsigned long long)e->count, e->count == 1 ? "" : "s",
                 fmt_time(a, sizeof(a), e->first), fmt_time(b, sizeof(b), e->last),
                 fmt_until(c, sizeof(c), e->until, now));
    else
        snprintf(dst, size, "%llu messages since %s, resets %s", (unsigned long long)e->count,
                 fmt_time(a, sizeof(a), e->first),
                 fmt_until(c, sizeof(c), e->until ? e->until : e->first + POLICY_DAY_US, now));
}

static void list_json(const policy_table *t, const listed *l, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const PolicyEntry *e = l[i].e;

        fprintf(stdout, "{\"table\": \"%s\", \"key\": ", t->command);
        queue_print_json_string(stdout, e->key);
        fputs(", \"state\": ", stdout);
        queue_print_json_string(stdout, e->state);
        fprintf(stdout, ", \"first\": %llu, \"last\": %llu, \"until\": %llu, \"count\": %llu",
                (unsigned long long)(e->first / 1000000), (unsigned long long)(e->last / 1000000),
                (unsigned long long)(e->until / 1000000), (unsigned long long)e->count);
        fputs(", \"reason\": ", stdout);
        queue_print_json_string(stdout, e->reason);
        fputs(", \"node\": ", stdout);
        queue_print_json_string(stdout, node_label(l[i].n, e->node));
        fputs(", \"endpoint\": ", stdout);
        queue_print_json_string(stdout, l[i].n->endpoint);
        fputs("}\n", stdout);
    }
}

/* nodes_listed - did any router answer the list? */
static bool nodes_listed(const policy_nodes *ns)
{
    for (size_t i = 0; i < ns->n; i++)
        if (ns->node[i].listed)
            return true;
    return false;
}

static void list_text(const policy_nodes *ns, const policy_table *t, const listed *l, size_t n)
{
    int64_t now = policy_clock_now();
    int kw = (int)strlen(t->key_title), nw = 4;
    char key[POLICY_CTL_KEY_MAX + 8], node[128], state[32], more[512];

    if (n == 0) {
        if (nodes_listed(ns))      /* else stderr says why there is nothing */
            printf("no %s\n", t->plural);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const char *k = l[i].e->key ? l[i].e->key : "";
        const char *nl = node_label(l[i].n, l[i].e->node);
        int len = (int)strlen(k);

        kw = len > kw ? (len > 64 ? 64 : len) : kw;
        len = (int)strlen(nl);
        nw = len > nw ? (len > 40 ? 40 : len) : nw;
    }
    printf("%-*s  %-*s  %-8s  %s\n", kw, t->key_title, nw, "NODE", "STATE", "DETAIL");
    for (size_t i = 0; i < n; i++) {
        const PolicyEntry *e = l[i].e;
        const char *k = e->key ? e->key : "", *nl = node_label(l[i].n, e->node);
        const char *st = e->state ? e->state : "";

        log_printable(key, sizeof(key), k, strlen(k));
        log_printable(node, sizeof(node), nl, strlen(nl));
        log_printable(state, sizeof(state), st, strlen(st));
        detail(more, sizeof(more), t, e, now);
        printf("%-*s  %-*s  %-8s  %s\n", kw, key, nw, node, state, more);
    }
}

/* matches - PATTERN: a shell pattern when it has *, ? or [, else a
 * substring; either way regardless of case. */
static bool matches(const char *pattern, const char *key)
{
    if (pattern == NULL)
        return true;
    if (strpbrk(pattern, "*?["))
        return fnmatch(pattern, key, FNM_CASEFOLD) == 0;
    return strcasestr(key, pattern) != NULL;
}

/* pattern_prefix - what every key a shell pattern matches starts with
 * (keys are stored in lower case), for the router to list only those;
 * "" for a substring or no pattern.  malloc'd. */
static char *pattern_prefix(const char *pattern)
{
    size_t len = pattern ? strcspn(pattern, "*?[") : 0;
    char *prefix;

    /* no wildcard: a substring anywhere; an escape: keep it simple */
    if (pattern == NULL || pattern[len] == '\0' || memchr(pattern, '\\', len))
        return xstrdup("");
    prefix = xasprintf("%.*s", (int)len, pattern);
    for (char *p = prefix; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return prefix;
}

/* mark_shared_names - routers whose entries carry the same node name
 * (two routers on one host share myhostname) are told apart by endpoint. */
static void mark_shared_names(policy_nodes *ns)
{
    for (size_t i = 0; i < ns->n; i++) {
        policy_node *a = &ns->node[i];

        if (a->listed == NULL || a->listed->n_entries == 0)
            continue;
        for (size_t j = i + 1; j < ns->n; j++) {
            policy_node *b = &ns->node[j];

            if (b->listed && b->listed->n_entries
                && strcmp(a->listed->entries[0]->node ? a->listed->entries[0]->node : "",
                          b->listed->entries[0]->node ? b->listed->entries[0]->node : "") == 0)
                a->name_shared = b->name_shared = true;
        }
    }
}

/* list_call - POLICY_LIST of t to every router (each answer kept in its
 * node's `listed`); the entries matching pattern, sorted, in *out.  Returns how many. */
static size_t list_call(policy_nodes *ns, const policy_table *t, const char *pattern,
                        listed **out)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    PolicyRequest **reqs = xcalloc(ns->n + 1, sizeof(*reqs));
    listed *l = NULL;
    size_t n = 0;
    char text[300];

    req.kind = CORREIO__POLICY_KIND__POLICY_LIST;
    req.table = (char *)t->command;
    req.key = pattern_prefix(pattern);      /* the router lists only those */
    req.session = (char *)"correio";
    for (size_t i = 0; i < ns->n; i++)
        reqs[i] = &req;
    nodes_call(ns, reqs, POLICY_CTL_TIMEOUT_MS);
    free(reqs);
    free(req.key);
    for (size_t i = 0; i < ns->n; i++) {
        policy_node *nd = &ns->node[i];

        if (nd->reply == NULL)
            continue;
        if (nd->reply->action != CORREIO__POLICY_ACTION__POLICY_OK) {
            node_set_error(nd, xasprintf("it refused the list: %s",
                                         reply_text(text, sizeof(text), nd->reply)));
            continue;
        }
        wire_free_policy_reply(&nd->listed);
        nd->listed = nd->reply;
        nd->reply = NULL;
        if (nd->listed->text && strstr(nd->listed->text, "only the first"))
            ctl_error("router %s listed only its first %zu entries", nd->endpoint,
                      nd->listed->n_entries);
        l = xrealloc(l, (n + nd->listed->n_entries + 1) * sizeof(*l));
        for (size_t j = 0; j < nd->listed->n_entries; j++) {
            const PolicyEntry *e = nd->listed->entries[j];

            if (matches(pattern, e->key ? e->key : "")) {
                l[n].e = e;
                l[n++].n = nd;
            }
        }
    }
    if (n > 1)
        qsort(l, n, sizeof(*l), listed_by_key);
    mark_shared_names(ns);
    *out = l;
    return n;
}

static bool json_flag(const char *arg)
{
    return strcmp(arg, "--json") == 0 || strcmp(arg, "-j") == 0;
}

/* policy_list - `correio T list [--json] [PATTERN]`. */
static int policy_list(const ctl_opts *o, const policy_table *t, int argc, char **argv)
{
    const char *pattern = NULL;
    char *awl_pattern = NULL;
    bool json = false;
    config_t *cfg;
    policy_nodes *ns;
    listed *l = NULL;
    size_t n, down;

    for (int i = 2; i < argc; i++) {
        if (json_flag(argv[i]))
            json = true;
        else if (argv[i][0] == '-' && argv[i][1] != '\0')
            return ctl_usage_error(t->command, "unknown option '%s'", argv[i]);
        else if (pattern == NULL)
            pattern = argv[i];
        else
            return ctl_usage_error(t->command, "list takes one PATTERN");
    }
    /* awl list USER: that user's entries ("USER ADDRESS"), not a substring */
    if (t == &table_awl && pattern && strchr(pattern, '@') && !strpbrk(pattern, "*?[ \\")) {
        awl_pattern = xasprintf("%s *", pattern);
        for (char *p = awl_pattern; *p; p++)
            *p = (char)tolower((unsigned char)*p);
        pattern = awl_pattern;
    }
    cfg = ctl_load_config(o);
    if ((ns = nodes_open(cfg)) == NULL) {
        free(awl_pattern);
        config_free(&cfg);
        return 1;
    }
    n = list_call(ns, t, pattern, &l);
    if (json)
        list_json(t, l, n);
    else
        list_text(ns, t, l, n);
    fflush(stdout);
    down = report_down(ns, "its entries are not listed");
    free(awl_pattern);
    free(l);
    nodes_free(&ns);
    config_free(&cfg);
    return down ? 1 : 0;
}

/* ------------------------------------------------------------ keys */

/* key_problem - a key from the command line: not empty, not too long,
 * printable ASCII without spaces.  Returns NULL or what is wrong. */
static const char *key_problem(const char *key)
{
    size_t len = strlen(key);

    if (len == 0)
        return "is empty";
    if (len > POLICY_CTL_KEY_MAX)
        return "is too long";
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)key[i] <= ' ' || (unsigned char)key[i] >= 0x7f)
            return "has a space or a character that is not printable ASCII";
    return NULL;
}

static char *lower_dup(const char *s)
{
    char *d = xstrdup(s);

    for (char *p = d; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return d;
}

/* intrusion_key - an IP as the ingress keys it: IPv4 in its usual form,
 * IPv6 as its /64 ("2001:db8:1:2::/64"); "[...]" and a "/64" suffix are
 * accepted.  NULL when ip is not an address. */
static char *intrusion_key(const char *ip)
{
    unsigned char a[16];
    char text[INET6_ADDRSTRLEN], *s = xstrdup(ip), *p = s;
    size_t len = strlen(s);

    if (len > 2 && s[0] == '[' && s[len - 1] == ']') {
        s[len - 1] = '\0';
        p = s + 1;
    }
    if (inet_pton(AF_INET, p, a) == 1 && inet_ntop(AF_INET, a, text, sizeof(text))) {
        free(s);
        return xstrdup(text);
    }
    len = strlen(p);
    if (len > 3 && strcmp(p + len - 3, "/64") == 0)
        p[len - 3] = '\0';
    if (inet_pton(AF_INET6, p, a) == 1) {
        memset(a + 8, 0, 8);
        if (inet_ntop(AF_INET6, a, text, sizeof(text))) {
            free(s);
            return xasprintf("%s/64", text);
        }
    }
    free(s);
    return NULL;
}

/* command_key - the key argument of a change, as the routers store it
 * (malloc'd), or NULL after a usage message. */
static char *command_key(const policy_table *t, const char *arg)
{
    const char *problem = key_problem(arg);
    char *key;

    if (problem) {
        ctl_usage_error(t->command, "%s %s", t->key_word, problem);
        return NULL;
    }
    if (t == &table_intrusion) {
        if ((key = intrusion_key(arg)) == NULL)
            ctl_usage_error(t->command, "'%s' is not an IPv4 or IPv6 address", arg);
        return key;
    }
    key = lower_dup(arg);
    if (t == &table_greylist && strchr(key, '/') == NULL) {
        ctl_usage_error(t->command, "a TRIPLET is SENDER/RECIPIENT or NETWORK/SENDER/RECIPIENT,"
                                    " as `correio greylist list` shows it");
        xfree(&key);
    } else if (t == &table_limits && strncmp(key, "user:", 5) != 0
               && strncmp(key, "domain:", 7) != 0) {
        ctl_usage_error(t->command, "a KEY is user:ADDRESS or domain:DOMAIN");
        xfree(&key);
    } else if (t == &table_limits && key[strcspn(key, ":") + 1] == '\0') {
        ctl_usage_error(t->command, "a KEY is user:ADDRESS or domain:DOMAIN");
        xfree(&key);
    }
    return key;
}

/* ------------------------------------------------------------ changes */

typedef struct policy_verb {
    const policy_table *table;
    const char  *name;        /* "unblock" */
    int          kind;        /* Correio__PolicyKind */
    bool         all;         /* takes ALL */
    const char  *done;        /* "unblocked" */
    const char  *all_state;   /* ALL touches only entries in this state (NULL: every one) */
} policy_verb;

static const policy_verb policy_verbs[] = {
    {&table_greylist, "pass", CORREIO__POLICY_KIND__POLICY_PASS, false, "passed", NULL},
    {&table_greylist, "delete", CORREIO__POLICY_KIND__POLICY_DELETE, true, "deleted", NULL},
    {&table_intrusion, "block", CORREIO__POLICY_KIND__POLICY_BLOCK, false, "blocked", NULL},
    {&table_intrusion, "unblock", CORREIO__POLICY_KIND__POLICY_DELETE, true, "unblocked",
     "blocked"},
    {&table_limits, "reset", CORREIO__POLICY_KIND__POLICY_DELETE, true, "reset", NULL},
    {&table_awl, "delete", CORREIO__POLICY_KIND__POLICY_DELETE, true, "deleted", NULL},
    {NULL, NULL, 0, false, NULL, NULL},
};

static bool not_found(const PolicyReply *r)
{
    return r->action == CORREIO__POLICY_ACTION__POLICY_ERROR && r->text
           && strstr(r->text, "not found") != NULL;
}

/* change_one - the verb on one key, at the router that owns it. */
static int change_one(policy_nodes *ns, const policy_verb *v, const char *key)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    PolicyRequest **reqs;
    policy_node *owner;
    char text[300], shown[POLICY_CTL_KEY_MAX + 8], until[96];
    int rc = 0;

    if (!ns->complete) {
        report_down(ns, "the router that owns a key cannot be known");
        return 1;
    }
    if (v->table == &table_awl) {       /* held where "awl:USER" is */
        char *route = xasprintf("awl:%.*s", (int)strcspn(key, " "), key);

        owner = &ns->node[policy_rendezvous(ns->names, ns->n, route)];
        xfree(&route);
    } else {
        owner = &ns->node[policy_rendezvous(ns->names, ns->n, key)];
    }
    log_printable(shown, sizeof(shown), key, strlen(key));
    req.kind = (Correio__PolicyKind)v->kind;
    req.table = (char *)v->table->command;
    req.key = (char *)key;
    req.session = (char *)"correio";
    reqs = xcalloc(ns->n + 1, sizeof(*reqs));
    reqs[owner - ns->node] = &req;
    nodes_call(ns, reqs, POLICY_CTL_TIMEOUT_MS);
    free(reqs);
    if (owner->reply == NULL) {
        ctl_error("router at %s, which holds %s, does not answer: %s%s", owner->endpoint, shown,
                  owner->error ? owner->error : "no reply",
                  strncmp(owner->endpoint, "ipc://", 6) == 0 ? " (is correio running?)" : "");
        return 1;
    }
    if (not_found(owner->reply)) {
        if (v->table == &table_intrusion)
            ctl_error("%s is not blocked: router %s has no record of it", shown,
                      owner->endpoint);
        else
            ctl_error("%s: no such %s entry on router %s", shown,
                      v->table == &table_greylist ? "greylist"
                      : v->table == &table_awl ? "auto-whitelist" : "sending counter",
                      owner->endpoint);
        rc = 1;
    } else if (owner->reply->action == CORREIO__POLICY_ACTION__POLICY_ERROR) {
        ctl_error("router %s refused to %s %s: %s", owner->endpoint, v->name, shown,
                  reply_text(text, sizeof(text), owner->reply));
        rc = 1;
    } else if (owner->reply->until && v->kind == CORREIO__POLICY_KIND__POLICY_BLOCK) {
        printf("%s %s until %s on router %s\n", v->done, shown,
               fmt_until(until, sizeof(until), owner->reply->until, policy_clock_now()),
               owner->endpoint);
    } else {
        printf("%s %s on router %s\n", v->done, shown, owner->endpoint);
    }
    return rc;
}

/* in_state - is e in state (NULL: any)? */
static bool in_state(const PolicyEntry *e, const char *state)
{
    return state == NULL || strcmp(e->state ? e->state : "", state) == 0;
}

/* change_all - the verb on every entry of its table (in the state it
 * names), each at the router that holds it: list, then one request per
 * key, every router working through its own keys in parallel. */
static int change_all(policy_nodes *ns, const policy_verb *v)
{
    listed *l = NULL;
    size_t n = list_call(ns, v->table, NULL, &l), done = 0, failed = 0;
    bool answered = nodes_listed(ns);
    size_t *next = xcalloc(ns->n + 1, sizeof(*next));
    PolicyRequest *req = xcalloc(ns->n + 1, sizeof(*req));
    PolicyRequest **reqs = xcalloc(ns->n + 1, sizeof(*reqs));
    char text[300], shown[POLICY_CTL_KEY_MAX + 8];
    int rc = 0;

    /* every router's entries, one at a time, until each has none left */
    for (;;) {
        bool any = false;

        for (size_t i = 0; i < ns->n; i++) {
            policy_node *nd = &ns->node[i];

            reqs[i] = NULL;
            while (next[i] < n && (l[next[i]].n != nd || !in_state(l[next[i]].e, v->all_state)))
                next[i]++;
            if (next[i] >= n || nd->error)
                continue;
            req[i] = (PolicyRequest)CORREIO__POLICY_REQUEST__INIT;
            req[i].kind = (Correio__PolicyKind)v->kind;
            req[i].table = (char *)v->table->command;
            req[i].key = l[next[i]].e->key;
            req[i].session = (char *)"correio";
            reqs[i] = &req[i];
            any = true;
        }
        if (!any)
            break;
        nodes_call(ns, reqs, POLICY_CTL_TIMEOUT_MS);
        for (size_t i = 0; i < ns->n; i++) {
            policy_node *nd = &ns->node[i];

            if (reqs[i] == NULL || nd->reply == NULL)
                continue;
            if (nd->reply->action == CORREIO__POLICY_ACTION__POLICY_OK || not_found(nd->reply))
                done++;       /* gone already: expired, or another correio took it */
            else {
                log_printable(shown, sizeof(shown), reqs[i]->key, strlen(reqs[i]->key));
                ctl_error("router %s refused to %s %s: %s", nd->endpoint, v->name, shown,
                          reply_text(text, sizeof(text), nd->reply));
                failed++;
            }
            wire_free_policy_reply(&nd->reply);
            next[i]++;
        }
    }
    if (answered)
        printf("%s %zu %s\n", v->done, done, done == 1 ? v->table->one : v->table->many);
    if (report_down(ns, "not everything was done") || failed)
        rc = 1;
    free(next);
    free(req);
    free(reqs);
    free(l);
    return rc;
}

static int policy_change(const ctl_opts *o, const policy_verb *v, int argc, char **argv)
{
    config_t *cfg;
    policy_nodes *ns;
    char *key = NULL;
    int rc;

    if (v->table == &table_awl && argc == 4) {     /* USER ADDRESS: one key */
        const char *problem = key_problem(argv[2]) ? key_problem(argv[2]) : key_problem(argv[3]);

        if (problem)
            return ctl_usage_error(v->table->command, "USER or ADDRESS %s", problem);
        key = xasprintf("%s %s", argv[2], argv[3]);
        for (char *p = key; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    } else if (v->table == &table_awl && !(argc == 3 && strcmp(argv[2], "ALL") == 0)) {
        return ctl_usage_error(v->table->command, "%s takes USER ADDRESS, or ALL", v->name);
    } else if (argc != 3) {
        return ctl_usage_error(v->table->command, "%s takes one %s%s", v->name,
                               v->table->key_word, v->all ? " or ALL" : "");
    }
    if (key == NULL && !(v->all && strcmp(argv[2], "ALL") == 0)
        && (key = command_key(v->table, argv[2])) == NULL)
        return 2;
    cfg = ctl_load_config(o);
    if ((ns = nodes_open(cfg)) == NULL) {
        free(key);
        config_free(&cfg);
        return 1;
    }
    rc = key ? change_one(ns, v, key) : change_all(ns, v);
    free(key);
    nodes_free(&ns);
    config_free(&cfg);
    return rc;
}

/* ------------------------------------------------------------ entry points */

static int policy_command(const ctl_opts *o, const policy_table *t, int argc, char **argv)
{
    if (argc < 2)
        return ctl_usage_error(t->command, "what to do?");
    if (strcmp(argv[1], "list") == 0)
        return policy_list(o, t, argc, argv);
    for (const policy_verb *v = policy_verbs; v->name; v++)
        if (v->table == t && strcmp(argv[1], v->name) == 0)
            return policy_change(o, v, argc, argv);
    return ctl_usage_error(t->command, "unknown %s command '%s'", t->command, argv[1]);
}

int cmd_greylist(const ctl_opts *o, int argc, char **argv)
{
    return policy_command(o, &table_greylist, argc, argv);
}

int cmd_intrusion(const ctl_opts *o, int argc, char **argv)
{
    return policy_command(o, &table_intrusion, argc, argv);
}

int cmd_limits(const ctl_opts *o, int argc, char **argv)
{
    return policy_command(o, &table_limits, argc, argv);
}

int cmd_awl(const ctl_opts *o, int argc, char **argv)
{
    return policy_command(o, &table_awl, argc, argv);
}
