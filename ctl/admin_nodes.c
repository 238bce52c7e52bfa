/* admin_nodes.c - find the nodes of a configured endpoint list, ping
 * them, and send one admin command to all of them in parallel (one REQ
 * socket each, polled together), so that a node that is down costs one
 * timeout, not one per node.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "admin_nodes.h"
#include "ctl.h"
#include "dns.h"
#include "endpoints.h"
#include "fanout.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

/* ------------------------------------------------------------ the list */

static admin_node *nodes_add(admin_nodes *ns, const char *endpoint, const char *configured)
{
    admin_node *n;

    for (size_t i = 0; i < ns->n; i++)          /* the same address twice: once */
        if (strcmp(ns->node[i].endpoint, endpoint) == 0)
            return &ns->node[i];
    ns->node = xrealloc(ns->node, (ns->n + 1) * sizeof(*ns->node));
    n = &ns->node[ns->n++];
    memset(n, 0, sizeof(*n));
    n->endpoint = xstrdup(endpoint);
    n->configured = xstrdup(configured);
    return n;
}

static void node_set_error(admin_node *n, char *error)
{
    free(n->error);
    n->error = error;
    wire_free_admin_reply(&n->reply);
}

static void node_release(admin_node *n)
{
    free(n->endpoint);
    free(n->configured);
    free(n->name);
    free(n->error);
    wire_free_admin_reply(&n->reply);
}

/* ------------------------------------------------------------ names */

/* resolve - the nodes of one configured endpoint (lib/endpoints.h); *d
 * is the resolver, made on first use. */
static void resolve(admin_nodes *ns, const config_t *cfg, dns_t **d, const char *endpoint)
{
    char *err = NULL;
    char **addrs = endpoints_resolve(cfg, d, endpoint, &err);

    if (addrs == NULL) {
        node_set_error(nodes_add(ns, endpoint, endpoint), err);
        return;
    }
    for (char **p = addrs; *p; p++)
        nodes_add(ns, *p, endpoint);
    endpoints_free(&addrs);
}

/* ------------------------------------------------------------ calls */

static void *node_socket(admin_nodes *ns, admin_node *n, int timeout_ms)
{
    char *err = NULL;
    void *sock = fanout_socket(ns->zctx, n->endpoint, timeout_ms, &err);

    if (sock == NULL)
        node_set_error(n, err);
    return sock;
}

/* The nodes asked by one admin_nodes_call, for on_answer. */
typedef struct call_ctx {
    admin_nodes *ns;
    size_t      *which;         /* socket k is node which[k] */
    size_t       answered;
} call_ctx;

/* on_answer - node which[k] answered (fanout_answer). */
static void on_answer(void *arg, size_t k, const void *data, size_t len, const char *error)
{
    call_ctx *cx = arg;
    admin_node *n = &cx->ns->node[cx->which[k]];

    if (error)
        node_set_error(n, xasprintf("receive: %s", error));
    else if ((n->reply = wire_unpack_admin_reply(data, len, n->endpoint)) == NULL)
        node_set_error(n, xasprintf("bad reply (%zu bytes)", len));
    else
        cx->answered++;
}

size_t admin_nodes_call(admin_nodes *ns, const char *command, const char *const *args,
                        int timeout_ms)
{
    AdminRequest req = CORREIO__ADMIN_REQUEST__INIT;
    void **socks = xcalloc(ns->n + 1, sizeof(*socks));
    call_ctx cx = {ns, xcalloc(ns->n + 1, sizeof(size_t)), 0};
    size_t n_socks = 0;
    int64_t deadline = time_mono_ms() + timeout_ms;
    bool *silent;
    uint8_t *out;
    size_t len;

    req.version = WIRE_VERSION;
    req.command = (char *)command;
    while (args && args[req.n_args])
        req.n_args++;
    req.args = (char **)args;
    out = wire_pack_admin_request(&req, &len);

    for (size_t i = 0; i < ns->n; i++) {
        admin_node *n = &ns->node[i];
        void *sock;

        wire_free_admin_reply(&n->reply);
        if (n->error)
            continue;
        if (ctl_ipc_listening(n->endpoint) == 0) {   /* fail at once, not at the timeout */
            node_set_error(n, xasprintf("nothing listens on %s", n->endpoint + strlen("ipc://")));
            continue;
        }
        if ((sock = node_socket(ns, n, timeout_ms)) == NULL)
            continue;
        if (zmq_send(sock, out, len, 0) < 0) {
            node_set_error(n, xasprintf("cannot send: %s", zmq_strerror(zmq_errno())));
            zmq_close(sock);
            continue;
        }
        socks[n_socks] = sock;
        cx.which[n_socks++] = i;
    }
    free(out);

    silent = fanout_wait(socks, n_socks, deadline, on_answer, &cx);
    for (size_t k = 0; k < n_socks; k++) {
        if (silent[k])
            node_set_error(&ns->node[cx.which[k]],
                           xasprintf("no answer within %d ms", timeout_ms));
        zmq_close(socks[k]);
    }
    xfree(&silent);
    xfree(&socks);
    xfree(&cx.which);
    return cx.answered;
}

/* ------------------------------------------------------------ ping */

/* check_ping - a node's ping answer: its name, and that it is the stage
 * wanted ("delivery mx1 pid=42"). */
static void check_ping(admin_node *n, const char *stage)
{
    const char *text = n->reply->text ? n->reply->text : "";
    size_t stage_len = strcspn(text, " ");
    char shown[128];

    if (n->reply->status != 0) {
        node_set_error(n, xasprintf("ping answered status %d: %s", n->reply->status,
                                    log_printable(shown, sizeof(shown), text, strlen(text))));
        n->refused = true;
        return;
    }
    if (strlen(stage) != stage_len || strncmp(text, stage, stage_len) != 0) {
        node_set_error(n, xasprintf("it is not a %s admin socket (ping says \"%s\")", stage,
                                    log_printable(shown, sizeof(shown), text, strlen(text))));
        n->refused = true;
        return;
    }
    text += stage_len + strspn(text + stage_len, " ");
    n->name = xasprintf("%.*s", (int)strcspn(text, " "), text);
    if (n->name[0] == '\0')
        xfree(&n->name);
}

/* drop_duplicates - two endpoints that reach one process (a name with
 * an A and an AAAA record, both bound): keep the first. */
static void drop_duplicates(admin_nodes *ns)
{
    size_t kept = 0;

    for (size_t i = 0; i < ns->n; i++) {
        admin_node *n = &ns->node[i];
        bool dup = false;

        for (size_t j = 0; n->reply && !dup && j < kept; j++)
            dup = ns->node[j].reply && strcmp(ns->node[j].reply->text, n->reply->text) == 0;
        if (dup) {
            node_release(n);
            continue;
        }
        ns->node[kept++] = *n;
    }
    ns->n = kept;
}

admin_nodes *admin_nodes_open(const config_t *cfg, const char *const *endpoints,
                              const char *stage)
{
    admin_nodes *ns = xcalloc(1, sizeof(*ns));
    dns_t *d = NULL;

    if ((ns->zctx = zmq_ctx_new()) == NULL)
        log_fatal("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    for (size_t i = 0; endpoints && endpoints[i]; i++) {
        resolve(ns, cfg, &d, endpoints[i]);
    }
    dns_free(&d);

    admin_nodes_call(ns, "ping", NULL, ADMIN_NODES_PING_TIMEOUT_MS);
    for (size_t i = 0; i < ns->n; i++)
        if (ns->node[i].reply)
            check_ping(&ns->node[i], stage);
    drop_duplicates(ns);
    for (size_t i = 0; i < ns->n; i++)
        wire_free_admin_reply(&ns->node[i].reply);
    return ns;
}

size_t admin_nodes_up(const admin_nodes *ns)
{
    size_t up = 0;

    for (size_t i = 0; i < ns->n; i++)
        up += ns->node[i].error == NULL;
    return up;
}

const char *admin_node_label(const admin_node *n)
{
    return n->name ? n->name : n->endpoint;
}

void admin_nodes_free(admin_nodes **ns)
{
    if (*ns == NULL)
        return;
    for (size_t i = 0; i < (*ns)->n; i++)
        node_release(&(*ns)->node[i]);
    free((*ns)->node);
    if ((*ns)->zctx)
        zmq_ctx_term((*ns)->zctx);
    xfree(ns);
}

/* admin_nodes_report_down - say which nodes did not answer (or answered
 * an error) and what that means; returns how many. */
size_t admin_nodes_report_down(const admin_nodes *ns, const char *stage, const char *consequence)
{
    size_t down = 0;

    for (size_t i = 0; i < ns->n; i++) {
        const admin_node *n = &ns->node[i];
        bool resolved = strcmp(n->endpoint, n->configured) != 0;

        if (n->error == NULL)
            continue;
        ctl_error("%s%s%s at %s%s%s%s %s, so %s: %s%s", stage,
                  n->name ? " node " : "", n->name ? n->name : "", n->endpoint,
                  resolved ? " (from " : "", resolved ? n->configured : "", resolved ? ")" : "",
                  n->refused ? "failed" : "does not answer", consequence, n->error,
                  !n->refused && strncmp(n->endpoint, "ipc://", 6) == 0
                      ? " (is correio running?)" : "");
        down++;
    }
    return down;
}

/* admin_node_failed - a node answered with an error that is not about ids:
 * turn it into the node's error (it is then reported as down). */
void admin_node_failed(admin_node *n, const char *command)
{
    char text[600];
    const char *t = n->reply->text ? n->reply->text : "";

    free(n->error);
    if (n->reply->status == 2 && strcmp(t, "unknown command") == 0)
        n->error = xasprintf("it does not know %s (an older correio-delivery?)", command);
    else
        n->error = xasprintf("it answered status %d: %s", n->reply->status,
                             log_printable(text, sizeof(text), t, strlen(t)));
    n->refused = true;
    wire_free_admin_reply(&n->reply);
}
