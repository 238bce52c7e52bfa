/* ingress.h - the ingress stage's shared context: the parameters it uses
 * (read once from the configuration) and the modules every session needs
 * (spool, pipeline, users map, networks).  One per process, owned by main.
 */
#ifndef CORREIO_INGRESS_H
#define CORREIO_INGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cidr.h"
#include "stage.h"
#include "users.h"

struct spool;
struct pipeline;

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
    cidr_list_t *mynetworks;
    users_t     *users;
    struct spool    *spool;
    struct pipeline *pipeline;
    void        *push;              /* PUSH to the classifier */
    void        *events;            /* PULL bound on events_endpoint */
    void        *admin;             /* REP bound on ingress_admin_endpoint */
    unsigned     unacked;           /* spool entries written or being written, not yet acked */
} ingress_t;

/* ingress_configure - (re)read the parameters above from ig->st->cfg and
 * (re)open the users map and mynetworks (ingress_config.c).  The values
 * were checked when the configuration was loaded, so it cannot fail. */
void ingress_configure(ingress_t *ig);
/* ingress_unconfigure - free what ingress_configure made. */
void ingress_unconfigure(ingress_t *ig);

#endif
