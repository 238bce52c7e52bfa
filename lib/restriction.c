/* restriction.c - the vocabulary and syntax of restriction lists (see
 * restriction.h). */
#include <string.h>
#include <strings.h>

#include "restriction.h"
#include "xalloc.h"

static const char *const names[R_COUNT] = {
    [R_PERMIT] = "permit",
    [R_REJECT] = "reject",
    [R_DEFER] = "defer",
    [R_WARN_IF_REJECT] = "warn_if_reject",
    [R_PERMIT_MYNETWORKS] = "permit_mynetworks",
    [R_PERMIT_SASL_AUTHENTICATED] = "permit_sasl_authenticated",
    [R_PERMIT_TLS_CLIENT] = "permit_tls_all_clientcerts",
    [R_REJECT_UNAUTH_DESTINATION] = "reject_unauth_destination",
    [R_DEFER_UNAUTH_DESTINATION] = "defer_unauth_destination",
    [R_PERMIT_AUTH_DESTINATION] = "permit_auth_destination",
    [R_REJECT_UNAUTH_PIPELINING] = "reject_unauth_pipelining",
    [R_REJECT_NON_FQDN_SENDER] = "reject_non_fqdn_sender",
    [R_REJECT_NON_FQDN_RECIPIENT] = "reject_non_fqdn_recipient",
    [R_REJECT_UNKNOWN_SENDER_DOMAIN] = "reject_unknown_sender_domain",
    [R_REJECT_UNKNOWN_RECIPIENT_DOMAIN] = "reject_unknown_recipient_domain",
    [R_REJECT_SENDER_LOGIN_MISMATCH] = "reject_sender_login_mismatch",
    [R_REJECT_INVALID_HELO_HOSTNAME] = "reject_invalid_helo_hostname",
    [R_REJECT_NON_FQDN_HELO_HOSTNAME] = "reject_non_fqdn_helo_hostname",
    [R_REJECT_UNKNOWN_HELO_HOSTNAME] = "reject_unknown_helo_hostname",
    [R_REJECT_UNKNOWN_CLIENT_HOSTNAME] = "reject_unknown_client_hostname",
    [R_REJECT_UNKNOWN_REVERSE_CLIENT_HOSTNAME] = "reject_unknown_reverse_client_hostname",
    [R_REJECT_UNLISTED_RECIPIENT] = "reject_unlisted_recipient",
    [R_REJECT_UNLISTED_SENDER] = "reject_unlisted_sender",
    [R_CHECK_CLIENT_ACCESS] = "check_client_access",
    [R_CHECK_HELO_ACCESS] = "check_helo_access",
    [R_CHECK_SENDER_ACCESS] = "check_sender_access",
    [R_CHECK_RECIPIENT_ACCESS] = "check_recipient_access",
};

const char *restriction_name(restriction_kind kind)
{
    return kind < R_COUNT ? names[kind] : "?";
}

int restriction_table_spec_ok(const char *spec)
{
    static const char *const types[] = { "hash:", "lmdb:", "cidr:", "pcre:", NULL };

    for (int i = 0; types[i]; i++) {
        size_t n = strlen(types[i]);
        if (strncasecmp(spec, types[i], n) == 0 && spec[n] != '\0')
            return 1;
    }
    return 0;
}

long restriction_parse(const char *const *items, restriction **out, char **err)
{
    size_t n = 0, count = 0;
    restriction *r;

    while (items[n])
        n++;
    r = xcalloc(n ? n : 1, sizeof(*r));
    for (size_t i = 0; i < n; i++) {
        int kind = -1;

        for (int k = 0; k < R_COUNT; k++) {
            if (strcasecmp(items[i], names[k]) == 0) {
                kind = k;
                break;
            }
        }
        /* Postfix's older name for the relay check */
        if (kind < 0 && strcasecmp(items[i], "check_relay_domains") == 0)
            kind = R_REJECT_UNAUTH_DESTINATION;
        if (kind < 0) {
            *err = xasprintf("unknown restriction \"%s\"", items[i]);
            xfree(&r);
            return -1;
        }
        r[count].kind = (restriction_kind)kind;
        if (kind >= R_CHECK_CLIENT_ACCESS) {
            if (!items[i + 1] || !restriction_table_spec_ok(items[i + 1])) {
                *err = xasprintf("%s needs a table such as hash:/etc/correio/access%s%s",
                                 items[i], items[i + 1] ? ", not " : "",
                                 items[i + 1] ? items[i + 1] : "");
                xfree(&r);
                return -1;
            }
            r[count].table = items[++i];
        }
        count++;
    }
    *out = r;
    return (long)count;
}
