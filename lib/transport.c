/* transport.c - parsing transport specifications (see transport.h).
 * Strict on purpose: a transport_maps value or local_transport that is
 * not understood must be an error the operator sees, never a guess. */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "relayhost.h"
#include "status_code.h"
#include "transport.h"

/* transport_fail - a reason into err; always -1. */
static int transport_fail(char *err, size_t errsize, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int transport_fail(char *err, size_t errsize, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, errsize, fmt, ap);
    va_end(ap);
    return -1;
}

const char *transport_kind_name(transport_kind kind)
{
    switch (kind) {
    case TRANSPORT_MAILDIR: return "maildir";
    case TRANSPORT_SMTP:    return "smtp";
    case TRANSPORT_LMTP:    return "lmtp";
    case TRANSPORT_ERROR:   return "error";
    case TRANSPORT_DISCARD: return "discard";
    }
    return "?";
}

/* transport_printable - only printable ASCII and spaces (a text goes into
 * logs, DSNs and SMTP replies). */
static bool transport_printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

/* transport_host - an SMTP or LMTP host next hop through relayhost_parse,
 * written back without credentials.  need_port: LMTP has no default. */
static int transport_host(const char *name, const char *hop, bool need_port,
                          transport_t *out, char *err, size_t errsize)
{
    relayhost_t r;
    char why[200];

    if (relayhost_parse(hop, false, &r, why, sizeof why) < 0)
        return transport_fail(err, errsize, "%s: %s", name, why);
    if (need_port && r.port == 0)
        return transport_fail(err, errsize, "%s: \"%s\" needs a port (lmtp:[host]:24)",
                              name, hop);
    relayhost_nexthop(&r, out->nexthop, sizeof out->nexthop);
    return 0;
}

/* transport_lmtp - "unix:/path", "inet:host:port", "[host]:port", "host:port". */
static int transport_lmtp(const char *hop, transport_t *out, char *err, size_t errsize)
{
    if (*hop == 0)
        return transport_fail(err, errsize, "lmtp: needs a next hop "
                              "(lmtp:unix:/path or lmtp:[host]:port)");
    if (strncasecmp(hop, "unix:", 5) == 0) {
        const char *path = hop + 5;
        if (path[0] != '/')
            return transport_fail(err, errsize, "lmtp: \"%s\" is not an absolute path", path);
        if (strpbrk(path, " \t") || !transport_printable(path))
            return transport_fail(err, errsize, "lmtp: bad socket path \"%s\"", path);
        if (strlen(path) + 5 > TRANSPORT_NEXTHOP_MAX)
            return transport_fail(err, errsize, "lmtp: socket path too long");
        snprintf(out->nexthop, sizeof out->nexthop, "unix:%s", path);
        return 0;
    }
    if (strncasecmp(hop, "inet:", 5) == 0)
        hop += 5;
    return transport_host("lmtp", hop, true, out, err, errsize);
}

int transport_parse(const char *spec, transport_t *out, char *err, size_t errsize)
{
    char buf[TRANSPORT_NEXTHOP_MAX + TRANSPORT_TEXT_MAX + 32];
    size_t len;
    const char *s = spec;
    char *name, *hop, *colon;

    memset(out, 0, sizeof *out);
    s += strspn(s, " \t");
    len = strlen(s);
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0)
        return transport_fail(err, errsize, "empty transport");
    if (len >= sizeof buf)
        return transport_fail(err, errsize, "transport specification too long");
    memcpy(buf, s, len);
    buf[len] = 0;
    if (!transport_printable(buf))
        return transport_fail(err, errsize, "control or non-ASCII bytes in transport");

    name = buf;
    colon = strchr(buf, ':');
    hop = colon ? colon + 1 : buf + len;
    if (colon)
        *colon = 0;

    if (!strcasecmp(name, "local") || !strcasecmp(name, "maildir")) {
        if (*hop)
            return transport_fail(err, errsize, "%s: takes no next hop (\"%s\")", name, hop);
        out->kind = TRANSPORT_MAILDIR;
        return 0;
    }
    if (!strcasecmp(name, "smtp") || !strcasecmp(name, "relay")) {
        out->kind = TRANSPORT_SMTP;
        if (*hop == 0)
            return 0;       /* the recipient's domain */
        return transport_host(name, hop, false, out, err, errsize);
    }
    if (!strcasecmp(name, "lmtp")) {
        out->kind = TRANSPORT_LMTP;
        return transport_lmtp(hop, out, err, errsize);
    }
    if (!strcasecmp(name, "error")) {
        size_t sl = status_code_len(hop);
        out->kind = TRANSPORT_ERROR;
        if (*hop == 0) {
            snprintf(out->text, sizeof out->text, "%s", TRANSPORT_ERROR_DEFAULT);
            return 0;
        }
        if (sl > 0 && hop[0] != '5')
            return transport_fail(err, errsize, "error: \"%.*s\" is not a 5.X.Y status "
                                  "(error: always fails the recipient)", (int)sl, hop);
        if (strlen(hop) + 6 > TRANSPORT_TEXT_MAX)
            return transport_fail(err, errsize, "error: text too long");
        if (sl > 0 && hop[sl] == 0)     /* a bare status: give it words */
            snprintf(out->text, sizeof out->text, "%.*s recipient address rejected",
                     (int)sl, hop);
        else
            snprintf(out->text, sizeof out->text, "%s%s", sl ? "" : "5.0.0 ", hop);
        return 0;
    }
    if (!strcasecmp(name, "discard")) {
        out->kind = TRANSPORT_DISCARD;
        if (strlen(hop) > TRANSPORT_TEXT_MAX)
            return transport_fail(err, errsize, "discard: text too long");
        snprintf(out->text, sizeof out->text, "%s", hop);
        return 0;
    }
    if (!colon)
        return transport_fail(err, errsize, "unknown transport \"%s\" (use local, "
                              "smtp:, lmtp:, error: or discard:)", name);
    return transport_fail(err, errsize, "unknown transport \"%s:\" (use local, "
                          "smtp:, lmtp:, error: or discard:)", name);
}
