/* cmd_drain.c - `correio drain [--timeout SECONDS] [NODE]`: empty one
 * delivery node's queue into its peers before the node is scaled down
 * (delivery/drain.c does the work; this asks it "drain" every half
 * second and prints how far it is):
 *
 *   draining: left=12 handed=20 peers=1 attempts=0
 *   drained: the queue of tcp://127.0.0.1:7025 is empty (32 handed over)
 *
 * NODE is the node's admin endpoint (tcp://ADDR:PORT, ipc://PATH), or an
 * address or host name that gets delivery_admin_endpoint's port.
 * Without NODE: delivery_admin_endpoint, and when that names a service
 * or a wildcard (tcp://NAME:PORT or a "*" host), the node on this host
 * (127.0.0.1 on that port): the way a container's preStop hook runs it.
 *
 * Exit status 0 once the queue is empty, 1 when the node does not answer
 * or the time runs out (default 600 s; the drain goes on regardless, and
 * the node stays closed to new work until it restarts), 2 on bad usage.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zmq.h>

#include "ctl.h"
#include "endpoints.h"
#include "timeutil.h"
#include "xalloc.h"

#define DRAIN_POLL_MS       500         /* between two progress questions */
#define DRAIN_CALL_MS       5000        /* one answer */
#define DRAIN_TIMEOUT_S     600
#define DRAIN_REPRINT_MS    5000        /* the same progress line again after */

/* drain_node_endpoint - the admin endpoint NODE (or the default) means;
 * malloc'd, NULL after an error message. */
static char *drain_node_endpoint(const config_t *cfg, const char *node)
{
    const char *admin = config_str(cfg, "delivery_admin_endpoint");
    const char *port = strncmp(admin, "tcp://", 6) == 0 ? strrchr(admin, ':') : NULL;
    char *host = NULL, *nport = NULL, *err = NULL;

    if (node && strstr(node, "://"))
        return xstrdup(node);
    if (node) {
        if (!port) {
            ctl_error("delivery_admin_endpoint %s has no tcp port: give NODE as an endpoint",
                      admin);
            return NULL;
        }
        return strchr(node, ':') ? xasprintf("tcp://[%s]%s", node, port)
                                 : xasprintf("tcp://%s%s", node, port);
    }
    if (!port)
        return xstrdup(admin);                 /* ipc:// on this host */
    int named = endpoints_name(admin, &host, &nport, &err);
    free(host);
    free(nport);
    free(err);
    if (named == 0)
        return xstrdup(admin);                 /* an address literal */
    return xasprintf("tcp://127.0.0.1%s", port);   /* a service name or *: this host's node */
}

int cmd_drain(const ctl_opts *o, int argc, char **argv)
{
    const char *node = NULL;
    long timeout_s = DRAIN_TIMEOUT_S;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
            char *end;
            timeout_s = strtol(argv[++i], &end, 10);
            if (*end || timeout_s <= 0 || timeout_s > 7 * 86400)
                return ctl_usage_error("drain", "bad --timeout '%s'", argv[i]);
        } else if (argv[i][0] == '-' || node) {
            return ctl_usage_error("drain", "unexpected '%s'", argv[i]);
        } else {
            node = argv[i];
        }
    }
    config_t *cfg = ctl_load_config(o);
    char *ep = drain_node_endpoint(cfg, node);
    void *zctx = ep ? zmq_ctx_new() : NULL;
    int rc = 1;
    char *last = NULL;
    int64_t deadline = time_mono_ms() + timeout_s * 1000, printed = 0;

    if (ep && !zctx)
        ctl_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
    while (zctx) {
        char *err = NULL;
        AdminReply *reply = ctl_admin_call(zctx, ep, "drain", DRAIN_CALL_MS, &err);
        if (!reply || reply->status != 0) {
            ctl_error("%s: %s", ep, reply ? reply->text : err);
            free(err);
            wire_free_admin_reply(&reply);
            break;
        }
        const char *left = strstr(reply->text, "left=");
        const char *handed = strstr(reply->text, "handed=");
        if (left && atol(left + 5) == 0) {
            printf("drained: the queue of %s is empty (%ld handed over)\n", ep,
                   handed ? atol(handed + 7) : 0L);
            wire_free_admin_reply(&reply);
            rc = 0;
            break;
        }
        int64_t now = time_mono_ms();
        if (!last || strcmp(last, reply->text) != 0 || now - printed >= DRAIN_REPRINT_MS) {
            printf("%s\n", reply->text);
            fflush(stdout);
            free(last);
            last = xstrdup(reply->text);
            printed = now;
        }
        wire_free_admin_reply(&reply);
        if (now >= deadline) {
            ctl_error("%s: not drained after %ld s (it goes on; the node takes no new work)",
                      ep, timeout_s);
            break;
        }
        poll(NULL, 0, DRAIN_POLL_MS);
    }
    free(last);
    if (zctx)
        zmq_ctx_term(zctx);
    free(ep);
    config_free(&cfg);
    return rc;
}
