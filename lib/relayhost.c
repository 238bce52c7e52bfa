/* relayhost.c - parse next-hop specifications (see relayhost.h).
 *
 * Strict on purpose: a relayhost typo must be an error when the file is
 * loaded, not mail that goes somewhere odd.  The grammar, from the end:
 *
 *   spec  = [ creds "@" ] hop
 *   creds = user ":" password          user: up to the first ':'
 *   hop   = "[" address "]" [ ":" port ]   no MX lookup
 *         | host [ ":" port ]              MX lookup (an IP literal: none)
 *
 * The host part starts after the last '@', so a user may be an address
 * (IceWarp's user@domain:password@host).  No white space anywhere.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "relayhost.h"

#define PORT_MAX 65535

/* fail - format the reason into err; returns -1 for the caller. */
static int fail(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;

    if (err != NULL && errsize > 0) {
        va_start(ap, fmt);
        vsnprintf(err, errsize, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* copy_part - s[0..len) into dst (size 256) as a string; false when it
 * does not fit. */
static bool copy_part(char *dst, size_t size, const char *s, size_t len)
{
    if (len >= size)
        return false;
    memcpy(dst, s, len);
    dst[len] = '\0';
    return true;
}

/* parse_port - s[0..len) as a port 1..65535. */
static int parse_port(const char *s, size_t len, unsigned *port, char *err, size_t errsize)
{
    unsigned long v = 0;

    if (len == 0)
        return fail(err, errsize, "missing port after ':'");
    for (size_t i = 0; i < len; i++) {
        if (!isdigit((unsigned char)s[i]) || v > PORT_MAX)
            return fail(err, errsize, "bad port %.*s", (int)(len > 16 ? 16 : len), s);
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (v == 0 || v > PORT_MAX)
        return fail(err, errsize, "bad port %.*s", (int)(len > 16 ? 16 : len), s);
    *port = (unsigned)v;
    return 0;
}

/* valid_hostname - letters, digits, '-', '_' and dots between non-empty
 * labels (one trailing dot allowed). */
static bool valid_hostname(const char *h)
{
    size_t label = 0;

    for (const char *p = h; *p; p++) {
        if (*p == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if (isalnum((unsigned char)*p) || *p == '-' || *p == '_') {
            label++;
        } else {
            return false;
        }
    }
    return h[0] != '\0';
}

static bool is_ip_literal(const char *h)
{
    unsigned char a[16];

    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* parse_creds - "user:password" of s[0..len). */
static int parse_creds(const char *s, size_t len, relayhost_t *out, char *err, size_t errsize)
{
    const char *colon = memchr(s, ':', len);

    if (colon == NULL)
        return fail(err, errsize, "credentials without a password (expected user:password@host)");
    if (colon == s)
        return fail(err, errsize, "empty user name in credentials");
    if (colon + 1 == s + len)
        return fail(err, errsize, "empty password in credentials");
    if (!copy_part(out->user, sizeof out->user, s, (size_t)(colon - s)))
        return fail(err, errsize, "user name too long");
    if (!copy_part(out->pass, sizeof out->pass, colon + 1, (size_t)(s + len - colon - 1)))
        return fail(err, errsize, "password too long");
    return 0;
}

/* parse_bracketed - "[address]" or "[address]:port". */
static int parse_bracketed(const char *hop, relayhost_t *out, char *err, size_t errsize)
{
    const char *close = strchr(hop, ']');
    unsigned char a[16];

    if (close == NULL)
        return fail(err, errsize, "missing ']' in %s", hop);
    if (close == hop + 1)
        return fail(err, errsize, "empty host name");
    if (memchr(hop + 1, '[', (size_t)(close - hop - 1)) || strchr(close + 1, '[')
        || strchr(close + 1, ']'))
        return fail(err, errsize, "unbalanced brackets in %s", hop);
    if (!copy_part(out->host, sizeof out->host, hop + 1, (size_t)(close - hop - 1)))
        return fail(err, errsize, "host name too long");
    if (strchr(out->host, ':') ? inet_pton(AF_INET6, out->host, a) != 1
                               : !valid_hostname(out->host))
        return fail(err, errsize, "bad host name %s", out->host);
    out->mx = false;
    if (close[1] == '\0')
        return 0;
    if (close[1] != ':')
        return fail(err, errsize, "expected ':port' after ']' in %s", hop);
    return parse_port(close + 2, strlen(close + 2), &out->port, err, errsize);
}

/* parse_plain - "host" or "host:port". */
static int parse_plain(const char *hop, relayhost_t *out, char *err, size_t errsize)
{
    const char *colon = strchr(hop, ':');
    size_t hlen = colon ? (size_t)(colon - hop) : strlen(hop);

    if (strchr(hop, ']'))
        return fail(err, errsize, "unbalanced brackets in %s", hop);
    if (colon && strchr(colon + 1, ':'))
        return fail(err, errsize, "an IPv6 address must be in brackets: %s", hop);
    if (hlen == 0)
        return fail(err, errsize, "empty host name");
    if (!copy_part(out->host, sizeof out->host, hop, hlen))
        return fail(err, errsize, "host name too long");
    if (!valid_hostname(out->host))
        return fail(err, errsize, "bad host name %s", out->host);
    out->mx = !is_ip_literal(out->host);       /* an address has no MX */
    if (colon == NULL)
        return 0;
    return parse_port(colon + 1, strlen(colon + 1), &out->port, err, errsize);
}

int relayhost_parse(const char *spec, bool allow_credentials, relayhost_t *out,
                    char *err, size_t errsize)
{
    const char *at, *hop;

    memset(out, 0, sizeof *out);
    if (err != NULL && errsize > 0)
        err[0] = '\0';
    if (spec == NULL || spec[0] == '\0')
        return fail(err, errsize, "empty host name");
    for (const char *p = spec; *p; p++)
        if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
            return fail(err, errsize, "white space or control character in next hop");
    at = strrchr(spec, '@');
    hop = at ? at + 1 : spec;
    if (at != NULL) {
        if (!allow_credentials)
            return fail(err, errsize, "credentials are not allowed here");
        if (*hop == '\0')
            return fail(err, errsize, "credentials without a host");
        if (parse_creds(spec, (size_t)(at - spec), out, err, errsize) < 0)
            return -1;
    }
    if (*hop == '[' ? parse_bracketed(hop, out, err, errsize) < 0
                    : parse_plain(hop, out, err, errsize) < 0) {
        memset(out->pass, 0, sizeof out->pass);
        return -1;
    }
    return 0;
}

void relayhost_nexthop(const relayhost_t *r, char *dst, size_t size)
{
    const char *open = r->mx ? "" : "[", *close = r->mx ? "" : "]";

    if (r->port != 0)
        snprintf(dst, size, "%s%s%s:%u", open, r->host, close, r->port);
    else
        snprintf(dst, size, "%s%s%s", open, r->host, close);
}
