/* content_checks.c - header_checks and body_checks while receiving (see
 * content_checks.h). */
#include <string.h>

#include "content_checks.h"
#include "log.h"
#include "map.h"
#include "smtpd_action.h"
#include "xalloc.h"

#define HEADER_CHECK_MAX (100u << 10)   /* bytes of one logical header given to the regexes */

struct content_checks {
    map_t **header, **body;
    size_t  n_header, n_body;
    size_t  body_limit;
    buf_t   scratch;                    /* the header being matched; single-threaded */
};

static bool open_list(const config_t *cfg, const char *param, map_t ***out, size_t *n,
                      char **err)
{
    const char *const *specs = config_list(cfg, param);

    for (size_t i = 0; specs[i]; i++) {
        map_t *m = map_open(specs[i], config_dir(cfg), err);
        if (!m)
            return false;
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = m;
    }
    return true;
}

content_checks_t *content_checks_open(const config_t *cfg, char **err)
{
    content_checks_t *c = xcalloc(1, sizeof(*c));

    *err = NULL;
    if (!open_list(cfg, "header_checks", &c->header, &c->n_header, err)
        || !open_list(cfg, "body_checks", &c->body, &c->n_body, err)
        || (c->n_header == 0 && c->n_body == 0)) {
        content_checks_free(&c);
        return NULL;
    }
    c->body_limit = (size_t)config_size(cfg, "body_checks_size_limit");
    buf_init(&c->scratch);
    return c;
}

void content_checks_free(content_checks_t **cp)
{
    content_checks_t *c = *cp;

    if (!c)
        return;
    for (size_t i = 0; i < c->n_header; i++)
        map_close(&c->header[i]);
    for (size_t i = 0; i < c->n_body; i++)
        map_close(&c->body[i]);
    xfree(&c->header);
    xfree(&c->body);
    buf_free(&c->scratch);
    xfree(cp);
}

void content_scan_start(content_scan *cs)
{
    memset(cs, 0, sizeof(*cs));
    cs->verdict = CONTENT_PASS;
}

/* check - match text against the tables; returns true when the text is to
 * be removed (IGNORE).  Sets the scan's verdict on REJECT/DISCARD. */
static bool check(content_scan *cs, map_t **maps, size_t n, const char *kind, const char *text,
                  void (*warn)(void *, const char *), void *arg)
{
    for (size_t i = 0; i < n; i++) {
        char *value = NULL, shown[200];
        smtpd_action a;

        switch (map_lookup(maps[i], text, &value)) {
        case MAP_NOTFOUND:
            continue;
        case MAP_ERROR:
            log_warn("%s: lookup failed; message deferred", map_spec(maps[i]));
            cs->verdict = CONTENT_REJECT;
            snprintf(cs->reply, sizeof(cs->reply), "451 4.3.0 Error: queue file write error");
            return false;
        case MAP_FOUND:
            break;
        }
        log_printable(shown, sizeof(shown), text, strlen(text));
        if (!smtpd_action_parse(value, 550, 450, &a)) {
            log_warn("%s: unknown action \"%s\" for %s %s", map_spec(maps[i]), value, kind, shown);
            xfree(&value);
            continue;
        }
        xfree(&value);
        snprintf(cs->what, sizeof(cs->what), "%s %s", kind, shown);
        snprintf(cs->text, sizeof(cs->text), "%s", a.text);
        switch (a.kind) {
        case ACT_REJECT:
        case ACT_DEFER:
            cs->verdict = CONTENT_REJECT;
            /* the text is cut to fit the reply on purpose */
            snprintf(cs->reply, sizeof(cs->reply), "%d %s %.480s", a.code, a.dsn,
                     a.text[0] ? a.text : "Error: message content rejected");
            return false;
        case ACT_DISCARD:
            cs->verdict = CONTENT_DISCARD;
            return false;
        case ACT_HOLD:
            cs->hold = true;
            warn(arg, cs->what);
            return false;
        case ACT_WARN:
            cs->warnings++;
            warn(arg, cs->what);
            return false;
        case ACT_IGNORE:
            return true;
        default:                        /* OK, DUNNO: no action, next line */
            return false;
        }
    }
    return false;
}

/* header_done - the logical header body[start..end) is complete. */
static bool header_done(content_checks_t *cc, content_scan *cs, const buf_t *body,
                        size_t start, size_t end, void (*warn)(void *, const char *), void *arg)
{
    buf_t *t = &cc->scratch;
    size_t len = end - start;

    if (cc->n_header == 0)
        return false;
    buf_reset(t);
    if (len > HEADER_CHECK_MAX)
        len = HEADER_CHECK_MAX;
    for (size_t i = 0; i < len; i++) {
        char ch = body->data[start + i];
        if (ch == '\r' && i + 1 < len && body->data[start + i + 1] == '\n')
            continue;
        buf_append_char(t, ch);
    }
    while (t->len && (t->data[t->len - 1] == '\n' || t->data[t->len - 1] == '\r'))
        t->data[--t->len] = '\0';
    return check(cs, cc->header, cc->n_header, "header", t->data ? t->data : "", warn, arg);
}

/* cut - remove body[start..end) (IGNORE). */
static void cut(buf_t *body, size_t start, size_t end)
{
    memmove(body->data + start, body->data + end, body->len - end + 1);
    body->len -= end - start;
}

static bool is_header_start(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] == ':')
            return i > 0;
        if ((unsigned char)p[i] <= ' ' || (unsigned char)p[i] >= 127)
            return false;
    }
    return false;
}

void content_scan_run(content_checks_t *cc, content_scan *cs, buf_t *body, bool final,
                      void (*warn)(void *, const char *), void *arg)
{
    while (cs->verdict == CONTENT_PASS) {
        const char *p = body->data ? body->data + cs->line_start : NULL;
        size_t avail = body->len - cs->line_start;
        const char *crlf = p ? memmem(p, avail, "\r\n", 2) : NULL;
        size_t llen, start = cs->line_start;

        if (!crlf)
            break;
        llen = (size_t)(crlf - p);
        if (cs->in_body) {
            if (cc->n_body == 0 || start >= cc->body_limit)
                break;
            buf_reset(&cc->scratch);
            buf_append(&cc->scratch, p, llen);
            if (check(cs, cc->body, cc->n_body, "body",
                      cc->scratch.data ? cc->scratch.data : "", warn, arg))
                cut(body, start, start + llen + 2);
            else
                cs->line_start = start + llen + 2;
            continue;
        }
        /* headers: a line that does not continue the open header ends it */
        if (cs->hdr_open && (llen == 0 || (p[0] != ' ' && p[0] != '\t'))) {
            cs->hdr_open = false;
            if (header_done(cc, cs, body, cs->hdr_start, start, warn, arg)) {
                cut(body, cs->hdr_start, start);
                cs->line_start = start = cs->hdr_start;
                continue;
            }
            if (cs->verdict != CONTENT_PASS)
                break;
        }
        if (llen == 0 || (!is_header_start(p, llen) && !cs->hdr_open
                          && p[0] != ' ' && p[0] != '\t')) {
            cs->in_body = true;         /* the empty line, or a body with no headers */
            if (llen == 0)
                cs->line_start = start + 2;
            continue;
        }
        if (!cs->hdr_open) {
            cs->hdr_open = true;
            cs->hdr_start = start;
        }
        cs->line_start = start + llen + 2;
    }
    if (final && cs->hdr_open && cs->verdict == CONTENT_PASS) {
        cs->hdr_open = false;
        if (header_done(cc, cs, body, cs->hdr_start, cs->line_start, warn, arg))
            cut(body, cs->hdr_start, cs->line_start);
    }
}
