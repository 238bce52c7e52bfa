/* restriction.c - the vocabulary and syntax of restriction lists (see
 * restriction.h). */
#include <arpa/inet.h>
#include <ctype.h>
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
    [R_REJECT_RBL_CLIENT] = "reject_rbl_client",
    [R_REJECT_RHSBL_SENDER] = "reject_rhsbl_sender",
    [R_PERMIT_DNSWL_CLIENT] = "permit_dnswl_client",
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

/* number - digits at *p, at most 255; false if none or too big. */
static bool number(const char **p, unsigned *v)
{
    const char *s = *p;

    *v = 0;
    if (!isdigit((unsigned char)*s))
        return false;
    for (; isdigit((unsigned char)*s); s++) {
        *v = *v * 10 + (unsigned)(*s - '0');
        if (*v > 255)
            return false;
    }
    *p = s;
    return true;
}

/* filter_walk - check filter's syntax and, with octets, whether it
 * matches them.  Each of the four parts is a number or "[...]" of
 * ';'-separated numbers and n..m ranges. */
static bool filter_walk(const char *f, const unsigned char *octets, bool *match)
{
    const char *p = f;

    *match = true;
    for (int i = 0; i < 4; i++) {
        bool this = false;
        unsigned lo, hi;

        if (i > 0 && *p++ != '.')
            return false;
        if (*p != '[') {
            if (!number(&p, &lo))
                return false;
            this = octets == NULL || octets[i] == lo;
        } else {
            p++;
            for (;;) {
                if (!number(&p, &lo))
                    return false;
                hi = lo;
                if (p[0] == '.' && p[1] == '.') {
                    p += 2;
                    if (!number(&p, &hi) || hi < lo)
                        return false;
                }
                if (octets == NULL || (octets[i] >= lo && octets[i] <= hi))
                    this = true;
                if (*p == ';') {
                    p++;
                    continue;
                }
                if (*p++ != ']')
                    return false;
                break;
            }
        }
        if (!this)
            *match = false;
    }
    return *p == '\0';
}

bool restriction_filter_match(const char *filter, const char *addr)
{
    unsigned char a[4];
    bool match;

    if (filter == NULL)
        return true;
    if (inet_pton(AF_INET, addr, a) != 1)
        return false;
    return filter_walk(filter, a, &match) && match;
}

/* zone_ok - a domain name with a dot: labels of letters, digits, '-', '_'. */
static bool zone_ok(const char *z, size_t len)
{
    size_t label = 0;

    if (len == 0 || len > RESTRICTION_ZONE_MAX || z[0] == '.' || z[len - 1] == '.'
        || memchr(z, '.', len) == NULL)         /* "reject" is not a zone */
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)z[i];
        if (ch == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum(ch) || ch == '-' || ch == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* parse_zone - "zone" or "zone=filter" into r; false if either is bad. */
static bool parse_zone(const char *item, restriction *r)
{
    const char *eq = strchr(item, '=');
    size_t len = eq ? (size_t)(eq - item) : strlen(item);
    bool match;

    if (!zone_ok(item, len))
        return false;
    if (eq != NULL && !filter_walk(eq + 1, NULL, &match))
        return false;
    for (size_t i = 0; i < len; i++)
        r->zone[i] = (char)tolower((unsigned char)item[i]);
    r->zone[len] = '\0';
    r->filter = eq ? eq + 1 : NULL;
    return true;
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
        if (kind == R_REJECT_RBL_CLIENT || kind == R_REJECT_RHSBL_SENDER
            || kind == R_PERMIT_DNSWL_CLIENT) {
            if (!items[i + 1] || !parse_zone(items[i + 1], &r[count])) {
                *err = xasprintf("%s needs a DNS list zone such as zen.example or "
                                 "zen.example=127.0.0.[2..11]%s%s", items[i],
                                 items[i + 1] ? ", not " : "", items[i + 1] ? items[i + 1] : "");
                xfree(&r);
                return -1;
            }
            i++;
        } else if (kind >= R_CHECK_CLIENT_ACCESS) {
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
