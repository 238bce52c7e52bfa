/* ingress_admin.h - the ingress's admin commands (beyond "ping", which
 * admin_serve answers): "queue-list". */
#ifndef CORREIO_INGRESS_ADMIN_H
#define CORREIO_INGRESS_ADMIN_H

#include "admin.h"

/* ingress_admin_handle - an admin_handler; ctx is the ingress_t. */
void ingress_admin_handle(void *ctx, const AdminRequest *req, AdminReply *reply);

#endif
