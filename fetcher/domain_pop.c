/* domain_pop.c - recipients of a Domain POP message from its header
 * section (see domain_pop.h).  The header is read in place: fields are
 * unfolded into a bounded scratch buffer one at a time. */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "domain_pop.h"
#include "xalloc.h"

#define HEADER_SCAN_MAX (512 * 1024)    /* header bytes looked at */
#define FIELD_MAX       (64 * 1024)     /* one unfolded field at most */
#define ADDR_MAX        254
#define LOCAL_MAX       64

enum { TIER_ENVELOPE_TO, TIER_DELIVERED_TO, TIER_ORIGINAL_TO, TIER_VISIBLE, TIERS };

static const char *const tier_name[TIERS] = {
    "X-Envelope-To", "Delivered-To", "X-Original-To", "To/Cc",
};

typedef struct rcpt_set {
    char  **v;
    size_t  n, max;
    bool    full;
} rcpt_set;

/* set_add - add a (lower-case) address unless it is there or the set is full. */
static void set_add(rcpt_set *s, const char *a)
{
    for (size_t i = 0; i < s->n; i++)
        if (strcmp(s->v[i], a) == 0)
            return;
    if (s->n >= s->max) {
        s->full = true;
        return;
    }
    s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
    s->v[s->n++] = xstrdup(a);
}

/* candidate - one address as written (len bytes): if it is a plain
 * local@domain of o->domain, add its local user (or forward_to). */
static bool candidate(const char *p, size_t len, const domain_pop_opts *o, rcpt_set *s)
{
    char a[ADDR_MAX + 1];
    const char *at;
    size_t local;

    while (len && isspace((unsigned char)*p))
        p++, len--;
    while (len && isspace((unsigned char)p[len - 1]))
        len--;
    if (len >= 2 && p[0] == '<' && p[len - 1] == '>')
        p++, len -= 2;
    if (len == 0 || len > ADDR_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        a[i] = (char)tolower((unsigned char)p[i]);
    a[len] = '\0';
    at = strrchr(a, '@');
    if (!at || (local = (size_t)(at - a)) == 0 || local > LOCAL_MAX
        || strcasecmp(at + 1, o->domain) != 0)
        return false;
    if (strspn(a, "abcdefghijklmnopqrstuvwxyz0123456789!#$%&'*+-/=?^_`{|}~.") != local
        || a[0] == '.' || a[local - 1] == '.' || strstr(a, ".."))
        return false;
    set_add(s, o->exists && o->exists(o->ctx, a) ? a : o->forward_to);
    return true;
}

/* address_list - the addresses of an RFC 5322 address list (display
 * names, quoted strings, comments, groups).  Returns how many of them
 * were in the domain. */
static size_t address_list(const char *v, size_t len, const domain_pop_opts *o, rcpt_set *s)
{
    size_t found = 0, angle_at = 0;
    bool in_quote = false, in_angle = false, had_angle = false;
    int comment = 0;
    buf_t bare = BUF_INIT;      /* the element without comments and quotes */

    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? v[i] : ',';

        if (in_quote) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '"')
                in_quote = false;
            continue;
        }
        if (comment) {
            if (c == '\\' && i + 1 < len)
                i++;
            else if (c == '(')
                comment++;
            else if (c == ')')
                comment--;
            continue;
        }
        if (in_angle) {
            if (c == '>') {
                in_angle = false;
                had_angle = true;
                found += candidate(v + angle_at, i - angle_at, o, s);
            }
            continue;
        }
        switch (c) {
        case '"':
            in_quote = true;
            break;
        case '(':
            comment = 1;
            break;
        case '<':
            in_angle = true;
            angle_at = i + 1;
            break;
        case ':':               /* a group's name: what came before is not an address */
            buf_reset(&bare);
            break;
        case ',':
        case ';':
            if (!had_angle)
                found += candidate(bare.data ? bare.data : "", bare.len, o, s);
            buf_reset(&bare);
            had_angle = false;
            break;
        default:
            buf_append_char(&bare, c);
        }
    }
    buf_free(&bare);
    return found;
}

/* received_for - the address after " for " in a Received: field. */
static size_t received_for(const char *v, size_t len, const domain_pop_opts *o, rcpt_set *s)
{
    for (size_t i = 0; i + 4 < len; i++) {
        if (!isspace((unsigned char)v[i]) || strncasecmp(v + i + 1, "for", 3) != 0
            || !isspace((unsigned char)v[i + 4]))
            continue;
        size_t b = i + 5, e;
        while (b < len && isspace((unsigned char)v[b]))
            b++;
        e = b;
        while (e < len && !isspace((unsigned char)v[e]) && v[e] != ';')
            e++;
        return candidate(v + b, e - b, o, s);
    }
    return 0;
}

/* field_tier - which tier a field name belongs to; *received for
 * Received:.  -1 for the others. */
static int field_tier(const char *name, size_t n, bool *received)
{
    *received = false;
#define IS(s) (n == sizeof(s) - 1 && strncasecmp(name, s, n) == 0)
    if (IS("X-Envelope-To"))
        return TIER_ENVELOPE_TO;
    if (IS("Delivered-To"))
        return TIER_DELIVERED_TO;
    if (IS("X-Original-To"))
        return TIER_ORIGINAL_TO;
    if (IS("To") || IS("Cc"))
        return TIER_VISIBLE;
    if (IS("Received")) {
        *received = true;
        return TIER_VISIBLE;
    }
#undef IS
    return -1;
}

size_t domain_pop_recipients(const char *msg, size_t len, const domain_pop_opts *o,
                             char ***out, const char **source)
{
    rcpt_set tiers[TIERS];
    size_t found[TIERS] = {0};
    size_t end = len < HEADER_SCAN_MAX ? len : HEADER_SCAN_MAX, i = 0;
    buf_t field = BUF_INIT;

    memset(tiers, 0, sizeof(tiers));
    for (int t = 0; t < TIERS; t++)
        tiers[t].max = o->max ? o->max : 1;

    while (i < end) {
        const char *line = msg + i, *nl = memchr(line, '\n', end - i);
        size_t llen = nl ? (size_t)(nl - line) : end - i, name;
        bool received;
        int tier;

        if (llen == 0 || (llen == 1 && line[0] == '\r'))
            break;                                  /* the end of the header */
        /* a field: its first line and the continuation lines */
        buf_reset(&field);
        for (;;) {
            size_t n = llen && line[llen - 1] == '\r' ? llen - 1 : llen;
            if (field.len + n + 1 > FIELD_MAX)      /* cut: the rest is not looked at */
                n = field.len + 1 < FIELD_MAX ? FIELD_MAX - field.len - 1 : 0;
            buf_append(&field, line, n);
            buf_append_char(&field, ' ');
            i += llen + (nl ? 1 : 0);
            if (i >= end || (msg[i] != ' ' && msg[i] != '\t'))
                break;
            line = msg + i;
            nl = memchr(line, '\n', end - i);
            llen = nl ? (size_t)(nl - line) : end - i;
        }
        name = strcspn(field.data, ":");
        if (name == field.len || name == 0)
            continue;                               /* not a field: ignored */
        tier = field_tier(field.data, name, &received);
        if (tier < 0)
            continue;
        if (received) {
            if (!o->ignore_received_for)
                found[tier] += received_for(field.data + name + 1, field.len - name - 1, o,
                                            &tiers[tier]);
        } else {
            found[tier] += address_list(field.data + name + 1, field.len - name - 1, o,
                                        &tiers[tier]);
        }
    }
    buf_free(&field);

    int win = -1;
    for (int t = 0; t < TIERS && win < 0; t++)
        if (found[t] > 0)
            win = t;
    for (int t = 0; t < TIERS; t++) {
        if (t == win)
            continue;
        domain_pop_free(&tiers[t].v, tiers[t].n);
    }
    if (win < 0) {
        *out = xcalloc(1, sizeof(**out));
        (*out)[0] = xstrdup(o->forward_to);
        *source = "none";
        return 1;
    }
    *out = tiers[win].v;
    *source = tier_name[win];
    return tiers[win].n;
}

void domain_pop_free(char ***rcpts, size_t n)
{
    if (!*rcpts)
        return;
    for (size_t i = 0; i < n; i++)
        xfree(&(*rcpts)[i]);
    xfree(rcpts);
}
