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
    void *sock = zmq_util_socket(ns->zctx, ZMQ_REQ, 1);
    int one = 1;

    if (zmq_setsockopt(sock, ZMQ_IPV6, &one, sizeof(one)) != 0
        || zmq_connect(sock, n->endpoint) != 0) {
        node_set_error(n, xasprintf("cannot connect: %s", zmq_strerror(zmq_errno())));
        zmq_close(sock);
        return NULL;
    }
    zmq_util_set_timeout(sock, timeout_ms);
    return sock;
}

size_t admin_nodes_call(admin_nodes *ns, const char *command, const char *const *args,
                        int timeout_ms)
{
    AdminRequest req = CORREIO__ADMIN_REQUEST__INIT;
    zmq_pollitem_t *items = xcalloc(ns->n + 1, sizeof(*items));
    size_t *which = xcalloc(ns->n + 1, sizeof(*which));
    size_t n_items = 0, waiting, answered = 0;
    int64_t deadline = time_mono_ms() + timeout_ms;
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
        items[n_items].socket = sock;
        items[n_items].events = ZMQ_POLLIN;
        which[n_items++] = i;
    }
    free(out);

    for (waiting = n_items; waiting > 0;) {
        int64_t left = deadline - time_mono_ms();
        int rc = zmq_poll(items, (int)n_items, (long)(left < 0 ? 0 : left));

        if (rc < 0 && zmq_errno() == EINTR)
            continue;
        if (rc <= 0)
            break;
        for (size_t k = 0; k < n_items; k++) {
            admin_node *n = &ns->node[which[k]];
            zmq_msg_t msg;

            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            items[k].events = 0;              /* one answer per node */
            items[k].revents = 0;
            waiting--;
            zmq_msg_init(&msg);
            if (zmq_msg_recv(&msg, items[k].socket, ZMQ_DONTWAIT) < 0)
                node_set_error(n, xasprintf("receive: %s", zmq_strerror(zmq_errno())));
            else if ((n->reply = wire_unpack_admin_reply(zmq_msg_data(&msg), zmq_msg_size(&msg),
                                                         n->endpoint)) == NULL)
                node_set_error(n, xasprintf("bad reply (%zu bytes)", zmq_msg_size(&msg)));
            else
                answered++;
            zmq_msg_close(&msg);
        }
    }
    for (size_t k = 0; k < n_items; k++) {
        admin_node *n = &ns->node[which[k]];

        if (items[k].events != 0)
            node_set_error(n, xasprintf("no answer within %d ms", timeout_ms));
        zmq_close(items[k].socket);
    }
    free(items);
    free(which);
    return answered;
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
