/* recipient_check.c - local recipients must exist, others need a client
 * in mynetworks (see recipient_check.h). */
#include "address.h"
#include "recipient_check.h"
#include "xalloc.h"

rcpt_check_result recipient_check(ingress_t *ig, const char *address,
                                  const struct sockaddr *client)
{
    const char *domain = address_domain(address);

    /* an address literal [192.0.2.1] is never one of our domains */
    if (domain[0] && domain[0] != '[' && domain_list_match(ig->mydestination, domain)) {
        char *lower = address_lower(address);
        const user_entry *u;

        users_refresh(ig->users);
        u = users_lookup(ig->users, lower);
        xfree(&lower);
        return u ? RCPT_CHECK_OK : RCPT_CHECK_UNKNOWN_USER;
    }
    if (cidr_list_match(ig->mynetworks, client))
        return RCPT_CHECK_OK;
    return RCPT_CHECK_RELAY_DENIED;
}
