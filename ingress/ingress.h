/* ingress.h - the ingress stage's shared context: the parameters it uses
 * (read from the configuration at start and after SIGHUP) and the modules
 * every session needs (spool, pipeline, users map, checks, DNS, TLS,
 * password checking).  One per process, owned by main.
 */
#ifndef CORREIO_INGRESS_H
#define CORREIO_INGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "dns.h"
#include "stage.h"
#include "tls.h"
#include "users.h"

struct spool;
struct pipeline;
struct smtpd_checks;
struct content_checks;
struct auth_pool;
struct bypass;
struct submit_server;
struct policy_conf;
struct policy_client;

/* What a listener is for (DESIGN.md: smtp 25, submission 587, submissions 465). */
typedef enum {
    ROLE_SMTP,              /* mail between servers */
    ROLE_SUBMISSION,        /* clients: every transaction authenticated */
    ROLE_SUBMISSIONS,       /* the same, inside implicit TLS */
} listener_role;

extern const char *const listener_role_names[];    /* "smtp", ... */

enum { TLS_LEVEL_NONE, TLS_LEVEL_MAY, TLS_LEVEL_ENCRYPT };

typedef struct ingress {
    stage_t    *st;
    const char *hostname;           /* myhostname */
    const char *banner;             /* smtpd_banner */
    const char *events_endpoint;    /* origin written into each envelope */
    size_t      message_size_limit;
    unsigned    rcpt_limit;         /* smtpd_recipient_limit */
    int64_t     timeout_ms;         /* smtpd_timeout */
    unsigned    session_limit;      /* smtpd_session_limit */
    unsigned    hard_error_limit;   /* smtpd_hard_error_limit */
    unsigned    spool_message_limit;
    const char *const *mydestination;
    const char *const *relay_domains;
    cidr_list_t *mynetworks;
    users_t     *users;
    /* TLS and AUTH */
    tls_ctx_t   *tls;               /* NULL: no certificate, no TLS */
    int          tls_level;         /* TLS_LEVEL_* for STARTTLS listeners */
    bool         auth_enable;       /* smtpd_sasl_auth_enable */
    bool         tls_auth_only;     /* smtpd_tls_auth_only */
    int64_t      auth_failure_delay_ms;
    bool         peername_lookup;   /* smtpd_peername_lookup */
    struct smtpd_checks   *checks;  /* restriction lists and their tables */
    struct content_checks *content; /* header_checks, body_checks */
    struct auth_pool *auth;         /* password checks off the event loop */
    struct bypass *bypass;          /* submission_bypass_file, NULL if none */
    dns_t       *dns;
    dns_t       *rbl_dns;           /* DNS lists: rbl_dns_servers, rbl_timeout */
    struct dns_cache *dns_cache;    /* both resolvers' answers, for their TTL */
    struct policy_conf   *policy;   /* greylisting, intrusion prevention, sending limits */
    struct policy_client *policy_client;  /* the routers' policy service; NULL until a
                                     * feature needs it, then kept (session_policy.c) */
    /* set by the server: a session's wait is over, run it again; or it
     * wants to be woken at a monotonic time (ms) */
    void       (*resume)(void *server, void *cookie);
    void       (*sleep_until)(void *server, void *cookie, int64_t at_ms);
    void        *server;
    struct spool    *spool;
    struct pipeline *pipeline;
    void        *push;              /* PUSH to the classifier */
    struct discovery *push_peers;   /* every classifier of classifier_endpoint */
    void        *events;            /* PULL bound on events_endpoint */
    void        *admin;             /* REP bound on ingress_admin_endpoint */
    struct submit_server *submit;   /* ROUTER bound on ingress_submit_endpoint */
    unsigned     unacked;           /* spool entries written or being written, not yet acked */
} ingress_t;

/* ingress_configure - (re)read the parameters above from ig->st->cfg and
 * (re)open what they name: users map, networks, TLS certificate, lookup
 * tables (ingress_config.c).  All or nothing: on a problem (a table line
 * that does not parse, a certificate that does not load) it logs it,
 * keeps what was there and returns false. */
bool ingress_configure(ingress_t *ig);
/* ingress_unconfigure - free what ingress_configure made. */
void ingress_unconfigure(ingress_t *ig);

/* ingress_is_local_domain - is domain one of mydestination or virtual_mailbox_domains? */
bool ingress_is_local_domain(const ingress_t *ig, const char *domain);
/* ingress_local_user - is address (any case) a local account? */
bool ingress_local_user(ingress_t *ig, const char *address);

#endif
