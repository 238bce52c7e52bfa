/* html.c - visible text, links and images of HTML, and bare URLs in plain
 * text (see html.h).  A tolerant one-pass scanner, not a DOM: what a
 * spam test needs is the words a reader sees and the addresses the
 * message makes the reader's client fetch or follow. */
#include <string.h>
#include <strings.h>
#include "html.h"

/* Longest tag name and attribute name we look at; longer ones are
 * skipped as unknown. */
#define HTML_NAME_MAX 16

/* The named entities mail actually uses; anything else stays as text. */
static const struct {
    const char *name;
    unsigned    cp;
} html_entities[] = {
    {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''},
    {"nbsp", ' '}, {"copy", 0xA9}, {"reg", 0xAE}, {"trade", 0x2122},
    {"euro", 0x20AC}, {"pound", 0xA3}, {"yen", 0xA5}, {"cent", 0xA2},
    {"hellip", 0x2026}, {"mdash", 0x2014}, {"ndash", 0x2013},
    {"lsquo", 0x2018}, {"rsquo", 0x2019}, {"ldquo", 0x201C}, {"rdquo", 0x201D},
    {"laquo", 0xAB}, {"raquo", 0xBB}, {"bull", 0x2022}, {"middot", 0xB7},
    {"deg", 0xB0}, {"times", 0xD7}, {"shy", 0}, {"zwnj", 0}, {"zwj", 0},
    {"auml", 0xE4}, {"ouml", 0xF6}, {"uuml", 0xFC}, {"Auml", 0xC4},
    {"Ouml", 0xD6}, {"Uuml", 0xDC}, {"szlig", 0xDF}, {"eacute", 0xE9},
    {"egrave", 0xE8}, {"aacute", 0xE1}, {"agrave", 0xE0}, {"ccedil", 0xE7},
    {"oacute", 0xF3}, {"iacute", 0xED}, {"uacute", 0xFA}, {"ntilde", 0xF1},
    {"atilde", 0xE3}, {"otilde", 0xF5}, {"ecirc", 0xEA}, {"acirc", 0xE2},
};

/* html_utf8 - append code point cp as UTF-8 (invalid ones as U+FFFD). */
static void html_utf8(buf_t *out, unsigned cp)
{
    char b[4];

    if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
        cp = 0xFFFD;
    if (cp < 0x80) {
        buf_append_char(out, (char)cp);
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 3);
    } else {
        b[0] = (char)(0xF0 | (cp >> 18));
        b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        buf_append(out, b, 4);
    }
}

static bool html_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool html_alnum(char c)
{
    return html_alpha(c) || (c >= '0' && c <= '9');
}

static bool html_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v';
}

size_t html_entity(const char *s, size_t n, buf_t *out)
{
    size_t i = 1;

    if (n < 3 || s[0] != '&')
        return 0;
    if (s[1] == '#') {
        unsigned long cp = 0;
        bool hex = n > 2 && (s[2] == 'x' || s[2] == 'X');
        size_t start;

        i = hex ? 3 : 2;
        start = i;
        for (; i < n; i++) {
            char c = s[i];
            if (cp > 0x10FFFF)
                cp = 0x110000;          /* too big: stays invalid, no overflow */
            if (c >= '0' && c <= '9')
                cp = cp * (hex ? 16 : 10) + (unsigned)(c - '0');
            else if (hex && c >= 'a' && c <= 'f')
                cp = cp * 16 + (unsigned)(c - 'a' + 10);
            else if (hex && c >= 'A' && c <= 'F')
                cp = cp * 16 + (unsigned)(c - 'A' + 10);
            else
                break;
        }
        if (i == start)
            return 0;
        if (i < n && s[i] == ';')
            i++;
        html_utf8(out, cp > 0x10FFFF ? 0xFFFD : (unsigned)cp);
        return i;
    }
    while (i < n && i <= HTML_NAME_MAX && html_alnum(s[i]))
        i++;
    for (size_t e = 0; e < sizeof html_entities / sizeof html_entities[0]; e++) {
        size_t el = strlen(html_entities[e].name);
        if (el == i - 1 && memcmp(s + 1, html_entities[e].name, el) == 0) {
            if (i < n && s[i] == ';')
                i++;
            if (html_entities[e].cp)
                html_utf8(out, html_entities[e].cp);
            return i;
        }
    }
    return 0;
}

/* html_decode_into - entity-decode s[0..n) into out (reset first). */
static void html_decode_into(const char *s, size_t n, buf_t *out)
{
    buf_reset(out);
    for (size_t i = 0; i < n;) {
        size_t k = s[i] == '&' ? html_entity(s + i, n - i, out) : 0;
        if (k) {
            i += k;
        } else {
            buf_append_char(out, s[i]);
            i++;
        }
    }
}

/* Elements whose start or end is a line break for the reader. */
static const char *const html_blocks[] = {
    "br", "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3",
    "h4", "h5", "h6", "hr", "blockquote", "pre", "dd", "dt", "dl", "center",
    "section", "article", "header", "footer", "form", "address", NULL,
};

static bool html_in(const char *name, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (list[i][0] == name[0] && strcmp(name, list[i]) == 0)
            return true;
    return false;
}

/* The text state: collapse white space, remember if the output ends in
 * a space or a line break so that none is doubled. */
typedef struct html_out {
    buf_t *text;
    bool   space;   /* last thing written was white space (or nothing) */
} html_out;

static void html_put_space(html_out *o, char c)
{
    if (o->space) {
        if (c == '\n' && o->text->len && o->text->data[o->text->len - 1] == ' ')
            o->text->data[o->text->len - 1] = '\n';
        return;
    }
    buf_append_char(o->text, c);
    o->space = true;
}

/* html_skip_to_end - for <script>, <style>, <title>: the position after
 * "</name ...>" (case-insensitive), or len. */
static size_t html_skip_to_end(const char *h, size_t len, size_t i, const char *name)
{
    size_t nl = strlen(name);

    while (i < len) {
        const char *lt = memchr(h + i, '<', len - i);
        if (lt == NULL)
            return len;
        i = (size_t)(lt - h) + 1;
        if (i + 1 + nl <= len && h[i] == '/' && strncasecmp(h + i + 1, name, nl) == 0
            && (i + 1 + nl == len || !html_alnum(h[i + 1 + nl]))) {
            const char *gt = memchr(h + i, '>', len - i);
            return gt ? (size_t)(gt - h) + 1 : len;
        }
    }
    return len;
}

/* html_attr_kind - what an attribute of tag means to us: 1 link, 2 image,
 * 0 nothing. */
static int html_attr_kind(const char *tag, const char *attr)
{
    if (strcmp(attr, "href") == 0)
        return (strcmp(tag, "a") == 0 || strcmp(tag, "area") == 0) ? 1 : 0;
    if (strcmp(attr, "src") == 0) {
        if (strcmp(tag, "img") == 0 || strcmp(tag, "input") == 0)
            return 2;
        return (strcmp(tag, "iframe") == 0 || strcmp(tag, "frame") == 0) ? 1 : 0;
    }
    if (strcmp(attr, "background") == 0)
        return 2;
    if (strcmp(attr, "action") == 0 && strcmp(tag, "form") == 0)
        return 1;
    return 0;
}

/* html_tag - parse the tag at h[i] == '<' (followed by a letter or '/'):
 * report its links, write the line break of a block element.  Returns
 * the position after '>' (or len). */
static size_t html_tag(const char *h, size_t len, size_t i, html_out *o, buf_t *tmp,
                       html_uri_fn uri, void *ctx, char *name)
{
    bool closing = false;
    size_t nl = 0;

    i++;
    if (i < len && h[i] == '/') {
        closing = true;
        i++;
    }
    while (i < len && (html_alnum(h[i]) || h[i] == ':' || h[i] == '-')) {
        if (nl < HTML_NAME_MAX)
            name[nl++] = (char)(h[i] | 0x20);
        i++;
    }
    name[nl] = '\0';
    if (html_in(name, html_blocks))
        html_put_space(o, '\n');
    else if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0 || strcmp(name, "img") == 0)
        html_put_space(o, ' ');
    /* attributes: name[=value], value quoted or not, up to '>' */
    while (i < len && h[i] != '>') {
        char attr[HTML_NAME_MAX + 1];
        size_t al = 0;

        if (html_space(h[i]) || h[i] == '/') {
            i++;
            continue;
        }
        if (h[i] == '"' || h[i] == '\'' || h[i] == '=') {   /* junk: skip it */
            char q = h[i];
            const char *e = q == '=' ? NULL : memchr(h + i + 1, q, len - i - 1);
            i = e ? (size_t)(e - h) + 1 : i + 1;
            continue;
        }
        while (i < len && !html_space(h[i]) && h[i] != '=' && h[i] != '>' && h[i] != '/') {
            if (al < HTML_NAME_MAX)
                attr[al++] = (char)(h[i] | 0x20);
            i++;
        }
        attr[al] = '\0';
        while (i < len && html_space(h[i]))
            i++;
        if (i >= len || h[i] != '=')
            continue;
        i++;
        while (i < len && html_space(h[i]))
            i++;
        size_t vs, ve;
        if (i < len && (h[i] == '"' || h[i] == '\'')) {
            const char *e = memchr(h + i + 1, h[i], len - i - 1);
            vs = i + 1;
            ve = e ? (size_t)(e - h) : len;
            i = e ? ve + 1 : len;
        } else {
            vs = i;
            while (i < len && !html_space(h[i]) && h[i] != '>')
                i++;
            ve = i;
        }
        int kind = closing || uri == NULL ? 0 : html_attr_kind(name, attr);
        if (kind) {
            html_decode_into(h + vs, ve - vs, tmp);
            uri(ctx, tmp->data ? tmp->data : "", tmp->len, kind == 2);
        }
    }
    return i < len ? i + 1 : len;
}

void html_to_text(const char *h, size_t len, buf_t *text, html_uri_fn uri, void *ctx)
{
    html_out o = {text, true};
    buf_t tmp = BUF_INIT;
    char name[HTML_NAME_MAX + 1];
    size_t i = 0;

    while (i < len) {
        char c = h[i];

        if (c == '<' && i + 1 < len) {
            char d = h[i + 1];
            if (d == '!') {
                const char *e;
                if (i + 3 < len && h[i + 2] == '-' && h[i + 3] == '-') {
                    e = memmem(h + i + 4, len - i - 4, "-->", 3);
                    i = e ? (size_t)(e - h) + 3 : len;
                } else {
                    e = memchr(h + i, '>', len - i);
                    i = e ? (size_t)(e - h) + 1 : len;
                }
                continue;
            }
            if (d == '?') {
                const char *e = memchr(h + i, '>', len - i);
                i = e ? (size_t)(e - h) + 1 : len;
                continue;
            }
            if (html_alpha(d) || d == '/') {
                i = html_tag(h, len, i, &o, &tmp, uri, ctx, name);
                if (h[i - 1] == '>' && d != '/'
                    && (strcmp(name, "script") == 0 || strcmp(name, "style") == 0
                        || strcmp(name, "title") == 0))
                    i = html_skip_to_end(h, len, i, name);
                continue;
            }
        }
        if (c == '&') {
            size_t before = text->len;
            size_t k = html_entity(h + i, len - i, text);
            if (k) {
                /* &nbsp; decodes to a space: collapse it like one */
                if (text->len == before) {
                    /* &shy; and friends: nothing visible */
                } else if (text->len == before + 1 && text->data[before] == ' ') {
                    text->len--;
                    html_put_space(&o, ' ');
                } else {
                    o.space = false;
                }
                i += k;
                continue;
            }
        }
        if (html_space(c)) {
            html_put_space(&o, ' ');
            i++;
            continue;
        }
        size_t j = i + 1;               /* a run of plain text at once */
        while (j < len && h[j] != '<' && h[j] != '&' && !html_space(h[j]))
            j++;
        buf_append(text, h + i, j - i);
        o.space = false;
        i = j;
    }
    buf_free(&tmp);
}

/* html_url_char - may c be part of a bare URL? */
static bool html_url_char(unsigned char c)
{
    return c > ' ' && c != '<' && c != '>' && c != '"' && c != '\'' && c != '`'
        && c != '{' && c != '}' && c != '|' && c != '\\' && c != '^' && c != 0x7F;
}

void html_scan_urls(const char *t, size_t len, html_uri_fn uri, void *ctx)
{
    static const char *const prefixes[] = {"http://", "https://", "ftp://", "www.", NULL};
    size_t i = 0;

    while (i < len) {
        char c = (char)(t[i] | 0x20);
        size_t pl = 0;

        if ((c == 'h' || c == 'w' || c == 'f') && (i == 0 || !html_alnum(t[i - 1]))) {
            for (size_t k = 0; prefixes[k]; k++) {
                size_t l = strlen(prefixes[k]);
                if (len - i >= l && strncasecmp(t + i, prefixes[k], l) == 0) {
                    pl = l;
                    break;
                }
            }
        }
        if (pl == 0 || i + pl >= len || !html_alnum(t[i + pl])) {
            i++;
            continue;
        }
        size_t e = i + pl;
        while (e < len && html_url_char((unsigned char)t[e]))
            e++;
        while (e > i + pl && strchr(".,;:!?)]*", t[e - 1]))
            e--;
        uri(ctx, t + i, e - i, false);
        i = e;
    }
}
