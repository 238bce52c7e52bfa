/* address.c - RFC 5321 paths (MAIL FROM / RCPT TO arguments).
 *
 * A recursive-descent reader of RFC 5321 section 4.1.2:
 *   Reverse-path = Path / "<>"
 *   Path         = "<" [ A-d-l ":" ] Mailbox ">"
 *   Mailbox      = Local-part "@" ( Domain / address-literal )
 *   Local-part   = Dot-string / Quoted-string
 * Syntax is checked first, lengths after, so an address that is merely
 * too long gets PATH_TOO_LONG rather than a syntax error.  Source routes
 * are read and dropped (RFC 5321 says servers SHOULD ignore them); a
 * General-address-literal ([tag:content]) is refused: nothing here could
 * deliver to one.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "xalloc.h"

#define ADDR_LABEL_MAX   63   /* RFC 1035 */
#define ADDR_LITERAL_MAX 64   /* longest IPv6 literal text is far below */

typedef struct cursor {
    const char *p;
    const char *end;
    bool too_long;      /* a label or literal over its limit */
} cursor;

static bool is_atext(int c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

static bool is_letdig(int c)
{
    return isalnum(c) != 0;
}

static int peek(const cursor *c)
{
    return c->p < c->end ? (unsigned char)*c->p : -1;
}

/* read_domain - sub-domain *("." sub-domain); labels are Let-dig
 * [Ldh-str], so no leading or trailing hyphen. */
static bool read_domain(cursor *c)
{
    for (;;) {
        const char *start = c->p;

        if (peek(c) < 0 || !is_letdig(peek(c)))
            return false;
        while (peek(c) >= 0 && (is_letdig(peek(c)) || peek(c) == '-'))
            c->p++;
        if (c->p[-1] == '-')
            return false;
        if (c->p - start > ADDR_LABEL_MAX)
            c->too_long = true;
        if (peek(c) != '.')
            return true;
        c->p++;
    }
}

/* read_literal - "[" IPv4 / "IPv6:" IPv6 "]", checked with inet_pton. */
static bool read_literal(cursor *c)
{
    const char *start = ++c->p;   /* after '[' */
    char text[ADDR_LITERAL_MAX + 1];
    unsigned char bin[16];
    size_t len;

    while (peek(c) >= 0 && peek(c) != ']') {
        int ch = peek(c);
        if (ch == '[' || ch == '\\' || ch < 33 || ch > 126)
            return false;
        c->p++;
    }
    if (peek(c) != ']')
        return false;
    len = (size_t)(c->p - start);
    c->p++;
    if (len == 0)
        return false;
    if (len > ADDR_LITERAL_MAX) {
        c->too_long = true;
        return true;
    }
    memcpy(text, start, len);
    text[len] = 0;
    if (strncasecmp(text, "IPv6:", 5) == 0)
        return inet_pton(AF_INET6, text + 5, bin) == 1;
    if (strchr(text, ':'))       /* General-address-literal: not supported */
        return false;
    return inet_pton(AF_INET, text, bin) == 1;
}

/* read_local - Dot-string or Quoted-string. */
static bool read_local(cursor *c)
{
    if (peek(c) == '"') {
        c->p++;
        for (;;) {
            int ch = peek(c);

            if (ch < 0)
                return false;
            c->p++;
            if (ch == '"')
                return true;
            if (ch == '\\') {           /* quoted-pairSMTP = "\" %d32-126 */
                ch = peek(c);
                if (ch < 32 || ch > 126)
                    return false;
                c->p++;
            } else if (ch < 32 || ch > 126) {
                return false;           /* qtextSMTP is %d32-33 / %d35-91 / %d93-126 */
            }
        }
    }
    for (;;) {
        if (!is_atext(peek(c)))
            return false;
        while (is_atext(peek(c)))
            c->p++;
        if (peek(c) != '.')
            return true;
        c->p++;
    }
}

path_status smtp_path_parse(const char *s, size_t len, bool allow_null,
                            smtp_path *out, size_t *consumed)
{
    cursor c = {s, s + len, false};
    const char *local, *local_end, *domain, *domain_end;
    size_t local_len, domain_len, path_len;

    memset(out, 0, sizeof(*out));
    if (peek(&c) != '<')
        return PATH_SYNTAX;
    c.p++;
    if (peek(&c) == '>') {
        if (!allow_null)
            return PATH_NULL_REFUSED;
        out->null = true;
        *consumed = 2;
        return PATH_OK;
    }
    /* A-d-l = At-domain *( "," At-domain ) ":"  -- read and dropped */
    if (peek(&c) == '@') {
        for (;;) {
            c.p++;                      /* '@' */
            if (!read_domain(&c))
                return PATH_SYNTAX;
            if (peek(&c) == ':')
                break;
            if (peek(&c) != ',')
                return PATH_SYNTAX;
            c.p++;
            if (peek(&c) != '@')
                return PATH_SYNTAX;
        }
        c.p++;                          /* ':' */
    }
    local = c.p;
    if (!read_local(&c))
        return PATH_SYNTAX;
    local_end = c.p;
    if (peek(&c) != '@')
        return PATH_SYNTAX;
    c.p++;
    domain = c.p;
    if (peek(&c) == '[') {
        if (!read_literal(&c))
            return PATH_SYNTAX;
    } else if (!read_domain(&c)) {
        return PATH_SYNTAX;
    }
    domain_end = c.p;
    if (peek(&c) != '>')
        return PATH_SYNTAX;
    c.p++;

    local_len = (size_t)(local_end - local);
    domain_len = (size_t)(domain_end - domain);
    path_len = (size_t)(c.p - s);
    if (c.too_long || path_len > ADDR_PATH_MAX || domain_len > ADDR_DOMAIN_MAX
        || local_len > (local[0] == '"' ? ADDR_LOCAL_MAX + 2 : ADDR_LOCAL_MAX)
        || local_len + 1 + domain_len > ADDR_PATH_MAX)
        return PATH_TOO_LONG;

    memcpy(out->local, local, local_len);
    out->local[local_len] = 0;
    memcpy(out->domain, domain, domain_len);
    out->domain[domain_len] = 0;
    memcpy(out->address, local, local_len);
    out->address[local_len] = '@';
    memcpy(out->address + local_len + 1, domain, domain_len);
    out->address[local_len + 1 + domain_len] = 0;
    *consumed = path_len;
    return PATH_OK;
}

const char *address_domain(const char *address)
{
    const char *at = strrchr(address, '@');

    return at ? at + 1 : "";
}

bool domain_list_match(const char *const *list, const char *domain)
{
    if (list == NULL || domain == NULL)
        return false;
    for (; *list; list++)
        if (strcasecmp(*list, domain) == 0)
            return true;
    return false;
}

char *address_lower(const char *address)
{
    char *copy = xstrdup(address);

    for (char *p = copy; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return copy;
}
