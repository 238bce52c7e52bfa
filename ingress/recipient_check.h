/* recipient_check.h - may this client send to this recipient?  A domain
 * in mydestination needs the address in the users map; any other domain
 * needs a client in mynetworks (no open relay). */
#ifndef CORREIO_RECIPIENT_CHECK_H
#define CORREIO_RECIPIENT_CHECK_H

#include <sys/socket.h>
#include "ingress.h"

typedef enum {
    RCPT_CHECK_OK = 0,
    RCPT_CHECK_UNKNOWN_USER,   /* 550 5.1.1 */
    RCPT_CHECK_RELAY_DENIED,   /* 554 5.7.1 */
} rcpt_check_result;

/* recipient_check - address is "local@domain" as parsed from RCPT TO;
 * client is the peer's address. */
rcpt_check_result recipient_check(ingress_t *ig, const char *address,
                                  const struct sockaddr *client);

#endif
