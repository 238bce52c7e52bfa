/* cmd_status.c - `correio status`: is the master running, and does each
 * stage answer "ping" on its admin socket?
 *
 *   master: running as pid 4242
 *   ingress: up (ingress mail.example.test pid=4246)
 *   classifier: down (no answer from ipc://... within 2000 ms)
 *
 * Exit status 0 when all five stages answer, 1 otherwise, so a test can
 * wait for `correio status` to succeed.  Also home of ctl_admin_call
 * and ctl_ipc_listening (admin_nodes.c uses the latter).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <zmq.h>

#include "admin.h"
#include "ctl.h"
#include "supervisor.h"
#include "xalloc.h"

#define STATUS_PING_TIMEOUT_MS 2000

static const char *const status_stages[] = {"ingress", "classifier", "router", "delivery",
                                            "fetcher"};

int ctl_ipc_listening(const char *endpoint)
{
    struct sockaddr_un addr;
    int fd, rc;

    if (strncmp(endpoint, "ipc://", 6) != 0 || strlen(endpoint + 6) >= sizeof(addr.sun_path))
        return -1;
    memset(&addr, 0, sizeof(addr));
    addr.sun_family = AF_UNIX;
    strcpy(addr.sun_path, endpoint + 6);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0)
        rc = 1;
    else if (errno == ENOENT || errno == ECONNREFUSED)
        rc = 0;
    else
        rc = -1;
    close(fd);
    return rc;
}

AdminReply *ctl_admin_call(void *zctx, const char *endpoint, const char *command,
                           int timeout_ms, char **err)
{
    if (ctl_ipc_listening(endpoint) == 0) {
        *err = xasprintf("nothing listens on %s", endpoint + 6);
        return NULL;
    }
    return admin_call(zctx, endpoint, command, NULL, timeout_ms, err);
}

/* ping - one stage's line; true when it answered. */
static bool ping(void *zctx, const config_t *cfg, const char *stage)
{
    char param[64], *err = NULL;
    const char *endpoint;
    AdminReply *reply;
    bool up = false;

    snprintf(param, sizeof(param), "%s_admin_endpoint", stage);
    endpoint = config_str(cfg, param);
    reply = ctl_admin_call(zctx, endpoint, "ping", STATUS_PING_TIMEOUT_MS, &err);
    if (reply == NULL) {
        printf("%s: down (%s)\n", stage, err ? err : "no answer");
    } else if (reply->status != 0) {
        printf("%s: error (%s)\n", stage, reply->text);
    } else {
        printf("%s: up (%s)\n", stage, reply->text);
        up = true;
    }
    free(err);
    wire_free_admin_reply(&reply);
    return up;
}

int cmd_status(const ctl_opts *o, int argc, char **argv)
{
    config_t *cfg;
    void *zctx;
    pid_t master;
    int down = 0;

    (void)argv;
    if (argc != 1)
        return ctl_usage_error("status", "status takes no arguments");
    cfg = ctl_load_config(o);
    if ((master = supervisor_master_pid(cfg)) > 0)
        printf("master: running as pid %ld\n", (long)master);
    else
        printf("master: not running\n");
    if ((zctx = zmq_ctx_new()) == NULL) {
        ctl_error("zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        config_free(&cfg);
        return 1;
    }
    for (size_t i = 0; i < sizeof(status_stages) / sizeof(status_stages[0]); i++)
        if (!ping(zctx, cfg, status_stages[i]))
            down++;
    zmq_ctx_term(zctx);
    config_free(&cfg);
    return down ? 1 : 0;
}
