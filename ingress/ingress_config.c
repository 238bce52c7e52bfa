/* ingress_config.c - read the ingress's parameters from the configuration
 * into its context, at start and again after SIGHUP. */
#include <stdlib.h>
#include "ingress.h"
#include "log.h"
#include "xalloc.h"

void ingress_configure(ingress_t *ig)
{
    const config_t *cfg = ig->st->cfg;
    char *err = NULL, *path;
    cidr_list_t *nets = cidr_list_parse(config_list(cfg, "mynetworks"), &err);

    if (!nets)      /* the configuration checked it when it was loaded */
        log_panic("ingress_configure: mynetworks: %s", err ? err : "bad value");
    cidr_list_free(&ig->mynetworks);
    ig->mynetworks = nets;
    ig->hostname = ig->st->hostname;
    ig->banner = config_str(cfg, "smtpd_banner");
    ig->events_endpoint = config_str(cfg, "ingress_events_endpoint");
    ig->message_size_limit = (size_t)config_size(cfg, "message_size_limit");
    ig->rcpt_limit = (unsigned)config_int(cfg, "smtpd_recipient_limit");
    ig->timeout_ms = config_time_ms(cfg, "smtpd_timeout");
    ig->session_limit = (unsigned)config_int(cfg, "smtpd_session_limit");
    ig->hard_error_limit = (unsigned)config_int(cfg, "smtpd_hard_error_limit");
    ig->spool_message_limit = (unsigned)config_int(cfg, "spool_message_limit");
    ig->mydestination = config_list(cfg, "mydestination");
    path = config_path(cfg, "users_file");
    users_close(&ig->users);
    ig->users = users_open(path);
    xfree(&path);
}

void ingress_unconfigure(ingress_t *ig)
{
    cidr_list_free(&ig->mynetworks);
    users_close(&ig->users);
}
