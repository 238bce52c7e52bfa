/* ingress_config.c - read the ingress's parameters from the configuration
 * into its context, at start and again after SIGHUP.  Everything that can
 * fail (tables, certificate, bypass file) is opened first; only when all
 * of it worked does it replace what the sessions use. */
#include <stdlib.h>
#include <strings.h>

#include "content_checks.h"
#include "endpoints.h"
#include "ingress.h"
#include "log.h"
#include "policy_client.h"
#include "session_policy.h"
#include "smtpd_check.h"
#include "submission_bypass.h"
#include "xalloc.h"

/* The pieces that are opened from files. */
typedef struct opened {
    cidr_list_t      *nets;
    smtpd_checks_t   *checks;
    content_checks_t *content;
    bypass_t         *bypass;
    tls_ctx_t        *tls;
    policy_conf_t    *policy;
} opened;

static void opened_free(opened *o)
{
    cidr_list_free(&o->nets);
    smtpd_checks_free(&o->checks);
    content_checks_free(&o->content);
    bypass_free(&o->bypass);
    tls_ctx_free(&o->tls);
    policy_conf_free(&o->policy);
}

/* open_all - open what the configuration names; false (logged) on a problem. */
static bool open_all(const config_t *cfg, opened *o)
{
    char *err = NULL, *cert, *key, *bypass;
    bool ok = false;

    if ((o->nets = cidr_list_parse(config_list(cfg, "mynetworks"), &err)) == NULL) {
        log_warn("mynetworks: %s", err ? err : "bad value");
        goto done;
    }
    if ((o->checks = smtpd_checks_open(cfg, &err)) == NULL) {
        log_warn("%s", err);
        goto done;
    }
    if ((o->policy = policy_conf_open(cfg, &err)) == NULL) {
        log_warn("%s", err);
        goto done;
    }
    if ((o->content = content_checks_open(cfg, &err)) == NULL && err) {
        log_warn("%s", err);
        goto done;
    }
    if (config_str(cfg, "submission_bypass_file")[0]) {
        bypass = config_path(cfg, "submission_bypass_file");
        o->bypass = bypass_open(bypass, &err);
        xfree(&bypass);
        if (!o->bypass) {
            log_warn("submission_bypass_file: %s", err);
            goto done;
        }
    }
    if (config_str(cfg, "smtpd_tls_cert_file")[0]) {
        cert = config_path(cfg, "smtpd_tls_cert_file");
        key = config_path(cfg, "smtpd_tls_key_file");
        o->tls = tls_server_ctx_new(cert, key, &err);
        xfree(&cert);
        xfree(&key);
        if (!o->tls) {
            log_warn("smtpd_tls_cert_file: %s", err);
            goto done;
        }
    } else if (strcasecmp(config_str(cfg, "smtpd_tls_security_level"), "encrypt") == 0
               || config_list(cfg, "submissions_listen")[0]) {
        log_warn("smtpd_tls_cert_file: empty, but %s needs a certificate",
                 config_list(cfg, "submissions_listen")[0] ? "submissions_listen"
                                                            : "smtpd_tls_security_level = encrypt");
        goto done;
    }
    ok = true;
done:
    free(err);
    if (!ok)
        opened_free(o);
    return ok;
}

/* open_policy_client - connect to the routers when a feature needs them
 * (first time only: sessions may be waiting on the client, so a changed
 * policy_endpoints takes effect at the next start). */
static bool open_policy_client(ingress_t *ig, const policy_conf_t *p)
{
    const config_t *cfg = ig->st->cfg;
    char *err = NULL;

    if (ig->policy_client || !policy_conf_needs_client(p))
        return true;
    ig->policy_client = policy_client_new(ig->st->zctx, cfg, config_list(cfg, "policy_endpoints"),
                                          config_time_ms(cfg, "policy_timeout"), &err);
    if (ig->policy_client == NULL) {
        log_warn("policy_endpoints: %s", err);
        free(err);
        return false;
    }
    return true;
}

static int tls_level(const char *v)
{
    if (strcasecmp(v, "none") == 0)
        return TLS_LEVEL_NONE;
    if (strcasecmp(v, "encrypt") == 0)
        return TLS_LEVEL_ENCRYPT;
    return TLS_LEVEL_MAY;
}

bool ingress_configure(ingress_t *ig)
{
    const config_t *cfg = ig->st->cfg;
    opened o = { 0 };
    char *path;

    if (!open_all(cfg, &o))
        return false;
    if (!open_policy_client(ig, o.policy)) {
        opened_free(&o);
        return false;
    }
    policy_conf_free(&ig->policy);
    ig->policy = o.policy;
    cidr_list_free(&ig->mynetworks);
    ig->mynetworks = o.nets;
    smtpd_checks_free(&ig->checks);
    ig->checks = o.checks;
    content_checks_free(&ig->content);
    ig->content = o.content;
    bypass_free(&ig->bypass);
    ig->bypass = o.bypass;
    tls_ctx_free(&ig->tls);             /* sessions in TLS keep their own reference */
    ig->tls = o.tls;

    ig->hostname = ig->st->hostname;
    ig->banner = config_str(cfg, "smtpd_banner");
    {   /* the origin delivery sends events to: THIS ingress, even when
         * the endpoint names the service (endpoints_advertise); worked
         * out at start, kept for the process's life (the bind does not
         * change on reload either) */
        static char *origin;
        if (origin == NULL)
            origin = endpoints_advertise(cfg, config_str(cfg, "ingress_events_endpoint"),
                                         config_str(cfg, "ingress_events_advertise"));
        ig->events_endpoint = origin;
    }
    ig->message_size_limit = (size_t)config_size(cfg, "message_size_limit");
    ig->rcpt_limit = (unsigned)config_int(cfg, "smtpd_recipient_limit");
    ig->timeout_ms = config_time_ms(cfg, "smtpd_timeout");
    ig->session_limit = (unsigned)config_int(cfg, "smtpd_session_limit");
    ig->hard_error_limit = (unsigned)config_int(cfg, "smtpd_hard_error_limit");
    ig->spool_message_limit = (unsigned)config_int(cfg, "spool_message_limit");
    ig->mydestination = config_list(cfg, "mydestination");
    ig->relay_domains = config_list(cfg, "relay_domains");
    ig->tls_level = tls_level(config_str(cfg, "smtpd_tls_security_level"));
    ig->auth_enable = config_bool(cfg, "smtpd_sasl_auth_enable");
    ig->tls_auth_only = config_bool(cfg, "smtpd_tls_auth_only");
    ig->auth_failure_delay_ms = config_time_ms(cfg, "smtpd_auth_failure_delay");
    ig->peername_lookup = config_bool(cfg, "smtpd_peername_lookup");
    path = config_path(cfg, "users_file");
    users_close(&ig->users);
    ig->users = users_open(path);
    xfree(&path);
    return true;
}

void ingress_unconfigure(ingress_t *ig)
{
    cidr_list_free(&ig->mynetworks);
    smtpd_checks_free(&ig->checks);
    content_checks_free(&ig->content);
    bypass_free(&ig->bypass);
    tls_ctx_free(&ig->tls);
    users_close(&ig->users);
    policy_conf_free(&ig->policy);
    policy_client_free(&ig->policy_client);
}
