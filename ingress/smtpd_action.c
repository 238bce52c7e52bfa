/* smtpd_action.c - access table and header check results (see
 * smtpd_action.h). */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "smtpd_action.h"

/* take_dsn - an enhanced status code "d.ddd.ddd" at *p, if any. */
static void take_dsn(const char **p, char *dsn, size_t size, char cls)
{
    const char *s = *p;
    size_t n;

    if (s[0] == cls && s[1] == '.' && isdigit((unsigned char)s[2])) {
        n = strspn(s, "0123456789.");
        if (n < size && (s[n] == '\0' || s[n] == ' ' || s[n] == '\t')) {
            memcpy(dsn, s, n);
            dsn[n] = '\0';
            s += n;
            while (*s == ' ' || *s == '\t')
                s++;
            *p = s;
            return;
        }
    }
    snprintf(dsn, size, "%c.7.1", cls);
}

static void set_text(smtpd_action *a, const char *text)
{
    log_printable(a->text, sizeof(a->text), text, strlen(text));
}

bool smtpd_action_parse(const char *value, int reject_code, int defer_code,
                        smtpd_action *a)
{
    static const struct { const char *word; action_kind kind; } words[] = {
        { "OK", ACT_OK }, { "PERMIT", ACT_OK }, { "DUNNO", ACT_DUNNO },
        { "REJECT", ACT_REJECT }, { "DEFER", ACT_DEFER },
        { "DEFER_IF_PERMIT", ACT_DEFER_IF_PERMIT }, { "WARN", ACT_WARN },
        { "HOLD", ACT_HOLD }, { "DISCARD", ACT_DISCARD }, { "IGNORE", ACT_IGNORE },
    };
    const char *p = value;
    size_t wl;

    memset(a, 0, sizeof(*a));
    while (*p == ' ' || *p == '\t')
        p++;
    wl = strcspn(p, " \t");
    if (wl == 0) {
        a->kind = ACT_BAD;
        return false;
    }
    if (wl == 3 && isdigit((unsigned char)p[0]) && isdigit((unsigned char)p[1])
        && isdigit((unsigned char)p[2])) {
        int code = atoi(p);
        if (code < 400 || code > 599) {
            a->kind = ACT_BAD;
            return false;
        }
        a->kind = code >= 500 ? ACT_REJECT : ACT_DEFER;
        a->code = code;
        p += 3;
        while (*p == ' ' || *p == '\t')
            p++;
        take_dsn(&p, a->dsn, sizeof(a->dsn), (char)('0' + code / 100));
        set_text(a, p);
        return true;
    }
    if (strspn(p, "0123456789") == wl) {      /* Postfix: a number is OK */
        a->kind = ACT_OK;
        return true;
    }
    a->kind = ACT_BAD;
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].word) == wl && strncasecmp(p, words[i].word, wl) == 0) {
            a->kind = words[i].kind;
            break;
        }
    }
    if (a->kind == ACT_BAD)
        return false;
    p += wl;
    while (*p == ' ' || *p == '\t')
        p++;
    switch (a->kind) {
    case ACT_REJECT:
        a->code = reject_code;
        take_dsn(&p, a->dsn, sizeof(a->dsn), (char)('0' + reject_code / 100));
        break;
    case ACT_DEFER:
    case ACT_DEFER_IF_PERMIT:
        a->code = defer_code;
        take_dsn(&p, a->dsn, sizeof(a->dsn), (char)('0' + defer_code / 100));
        break;
    default:
        break;
    }
    set_text(a, p);
    return true;
}
