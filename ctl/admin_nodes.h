/* admin_nodes.h - the stage processes one `correio queue` command talks
 * to, and one admin command sent to all of them at once.
 *
 * The endpoints come from the configuration (queue_admin_endpoints for
 * the delivery nodes, ingress_admin_endpoint for the spool).  An endpoint
 * tcp://NAME:PORT stands for every address NAME has (A and AAAA, asked
 * with the dns_* parameters; an IP literal or "localhost" is not looked
 * up): each address is one node.  Every node is pinged first, which
 * tells its node name and says at once which ones are down; two
 * endpoints that reach the same process (its ping text is the same) are
 * asked once.
 *
 * A node that cannot be reached, or stops answering, keeps the reason in
 * `error` and is left out of later calls; the others still act.
 */
#ifndef CORREIO_CTL_ADMIN_NODES_H
#define CORREIO_CTL_ADMIN_NODES_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "wire.h"

#define ADMIN_NODES_PING_TIMEOUT_MS 2000

typedef struct admin_node {
    char       *endpoint;   /* what is connected to: "tcp://192.0.2.1:7025" */
    char       *configured; /* the configured endpoint it came from */
    char       *name;       /* node name from ping ("mx1"), NULL if none */
    char       *error;      /* why it does not answer; NULL while it does */
    bool        refused;    /* error is what it answered, not silence */
    AdminReply *reply;      /* the last admin_nodes_call's answer, or NULL */
} admin_node;

typedef struct admin_nodes {
    void       *zctx;       /* one ZeroMQ context for every call */
    size_t      n;
    admin_node *node;
} admin_nodes;

/* admin_nodes_open - the nodes the endpoints name (a NULL-terminated
 * list), pinged; stage is what their ping must say ("delivery"), so that
 * a wrong endpoint is said clearly instead of refusing every command.
 * Names are resolved with cfg's dns_servers, dns_timeout and dns_tries.
 * Never NULL; nodes that cannot be reached have error set.  Free with
 * admin_nodes_free. */
admin_nodes *admin_nodes_open(const config_t *cfg, const char *const *endpoints,
                              const char *stage);

/* admin_nodes_call - send command with args (NULL-terminated, may be
 * NULL) to every node without an error, all at once, and wait up to
 * timeout_ms for the answers.  Each node's previous reply is freed; it
 * gets the new one, or error is set.  Returns how many answered. */
size_t admin_nodes_call(admin_nodes *ns, const char *command, const char *const *args,
                        int timeout_ms);

/* admin_nodes_up - how many nodes have no error. */
size_t admin_nodes_up(const admin_nodes *ns);

/* admin_node_label - the node's name from ping, else its endpoint. */
const char *admin_node_label(const admin_node *n);

/* admin_nodes_free - close everything, free *ns, set it NULL. */
void admin_nodes_free(admin_nodes **ns);

/* admin_nodes_report_down - name each node with an error ("STAGE node
 * NAME at ENDPOINT does not answer, so CONSEQUENCE: ERROR") on stderr;
 * returns how many. */
size_t admin_nodes_report_down(const admin_nodes *ns, const char *stage, const char *consequence);
/* admin_node_failed - n answered command with an error status: make
 * that its error (then reported as down) and drop the reply. */
void admin_node_failed(admin_node *n, const char *command);

#endif
