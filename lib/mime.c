/* mime.c - a message taken apart once (see mime.h): RFC 5322 header
 * fields unfolded, RFC 2047 encoded words decoded, the RFC 2045/2046 tree
 * walked (multipart with boundaries, message/rfc822 as a nested message),
 * leaves decoded (base64, quoted-printable) and text converted to UTF-8
 * with iconv; HTML goes through html.c.
 *
 * Cost: every byte is looked at a bounded number of times: a multipart
 * body is searched for its delimiter once per nesting level (memmem, so
 * at most MIME_MAX_DEPTH passes), a leaf is decoded once and converted
 * once, URIs are deduplicated through a hash table.  Nothing here fails:
 * broken input sets flags (bad_structure, bad_encoding, bad_charset,
 * truncated).
 */
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "html.h"
#include "mime.h"
#include "xalloc.h"

/* Longest boundary we accept (RFC 2046 says 70). */
#define MIME_BOUNDARY_MAX 200
/* Longest charset name handed to iconv. */
#define MIME_CHARSET_MAX  40
/* URI dedup hash table: a power of two well above MIME_MAX_URIS. */
#define MIME_URI_HASH     4096
/* Longest encoded text of one RFC 2047 word we decode (RFC: 75 in all). */
#define MIME_WORD_MAX     1000

typedef struct mime_ctx {
    mime_msg *m;
    size_t    cap_parts, cap_uris, cap_headers;
    size_t    decoded;                  /* bytes of MIME_MAX_DECODED used */
    unsigned  alt_seq;                  /* multipart/alternative numbering */
    uint32_t  uri_hash[MIME_URI_HASH];  /* index + 1 into m->uris, 0 empty */
} mime_ctx;

/* The Content-* fields of one entity, values unfolded, NULL if absent. */
typedef struct mime_fields {
    char *ctype, *cte, *disp, *cid;
} mime_fields;

/* ---- UTF-8 and charsets */

static const char mime_replacement[] = "\xEF\xBF\xBD";   /* U+FFFD */

/* mime_utf8_len - length of the valid UTF-8 sequence at s[0..n), 0 if
 * invalid (overlong, surrogate, above U+10FFFF, truncated). */
static size_t mime_utf8_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        return n >= 2 && (s[1] & 0xC0) == 0x80 ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0))
            return 0;
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
            return 0;
        if ((c == 0xF0 && s[1] < 0x90) || (c == 0xF4 && s[1] >= 0x90))
            return 0;
        return 4;
    }
    return 0;
}

/* mime_utf8_append - append s[0..n) as UTF-8, every invalid byte
 * replaced by U+FFFD.  Returns true when something was replaced. */
static bool mime_utf8_append(buf_t *out, const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    bool bad = false;
    size_t i = 0, run = 0;

    buf_reserve(out, n);
    while (i < n) {
        if (u[i] < 0x80) {              /* fast path for ASCII runs */
            i++;
            continue;
        }
        size_t k = mime_utf8_len(u + i, n - i);
        if (k) {
            i += k;
            continue;
        }
        buf_append(out, s + run, i - run);
        buf_append(out, mime_replacement, 3);
        bad = true;
        run = ++i;
    }
    buf_append(out, s + run, n - run);
    return bad;
}

static bool mime_has_8bit(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] >= 0x80)
            return true;
    return false;
}

/* mime_iconv_name - the name to give iconv for a declared charset: a few
 * aliases glibc lacks or that mail misdeclares (gb2312 text is mostly GBK
 * in practice).  NULL for a name iconv must not see (options, junk). */
static const char *mime_iconv_name(const char *cs)
{
    static const struct {
        const char *declared, *iconv;
    } aliases[] = {
        {"gb2312", "GBK"}, {"x-gbk", "GBK"}, {"ks_c_5601-1987", "CP949"},
        {"unicode-1-1-utf-7", "UTF-7"}, {"x-unknown", NULL}, {"unknown-8bit", NULL},
    };
    size_t n = strlen(cs);

    if (n == 0 || n > MIME_CHARSET_MAX)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        char c = cs[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'
              || c == '.' || c == ':'))
            return NULL;
    }
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcmp(cs, aliases[i].declared) == 0)
            return aliases[i].iconv;
    return cs;
}

/* mime_is_utf8ish - charsets that we read as UTF-8 without iconv. */
static bool mime_is_utf8ish(const char *cs)
{
    return cs == NULL || strcmp(cs, "utf-8") == 0 || strcmp(cs, "utf8") == 0
        || strcmp(cs, "us-ascii") == 0 || strcmp(cs, "ascii") == 0;
}

/* mime_convert - append s[0..n) in charset cs (lower-cased, NULL:
 * undeclared) to out as UTF-8.  Returns false when the charset is unknown
 * or the bytes are invalid in it (they are then replaced by U+FFFD). */
static bool mime_convert(const char *cs, const char *s, size_t n, buf_t *out)
{
    if (mime_is_utf8ish(cs)) {
        bool bad = mime_utf8_append(out, s, n);
        return cs == NULL || !bad;
    }
    const char *name = mime_iconv_name(cs);
    iconv_t cd = name ? iconv_open("UTF-8", name) : (iconv_t)-1;
    if (cd == (iconv_t)-1) {
        mime_utf8_append(out, s, n);
        return false;
    }
    bool ok = true;
    char *in = (char *)s;
    size_t inleft = n;
    while (inleft > 0) {
        buf_reserve(out, inleft * 2 + 16);
        char *o = out->data + out->len;
        size_t oleft = out->cap - out->len - 1;   /* keep room for the NUL */
        size_t before = oleft;
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        out->len += before - oleft;
        if (r != (size_t)-1)
            break;
        if (errno == E2BIG)
            continue;
        /* EILSEQ or EINVAL (truncated sequence): replace one byte, go on */
        buf_append(out, mime_replacement, 3);
        ok = false;
        in++;
        inleft--;
    }
    /* stateful charsets (ISO-2022-JP, UTF-7) may owe a reset sequence */
    buf_reserve(out, 16);
    char *o = out->data + out->len;
    size_t oleft = out->cap - out->len - 1, before = oleft;
    if (iconv(cd, NULL, NULL, &o, &oleft) != (size_t)-1)
        out->len += before - oleft;
    if (out->data)
        out->data[out->len] = '\0';
    iconv_close(cd);
    return ok;
}

/* mime_text_tidy - in place: CRLF and lone CR to LF, NUL to space. */
static void mime_text_tidy(buf_t *b)
{
    size_t j = 0;

    for (size_t i = 0; i < b->len; i++) {
        char c = b->data[i];
        if (c == '\r') {
            if (i + 1 < b->len && b->data[i + 1] == '\n')
                continue;
            c = '\n';
        } else if (c == '\0') {
            c = ' ';
        }
        b->data[j++] = c;
    }
    b->len = j;
    if (b->data)
        b->data[j] = '\0';
}

/* ---- transfer encodings */

/* The base64 alphabet: value + 1, 0 for other bytes. */
static const unsigned char mime_b64[256] = {
    ['A'] = 1, ['B'] = 2, ['C'] = 3, ['D'] = 4, ['E'] = 5, ['F'] = 6, ['G'] = 7,
    ['H'] = 8, ['I'] = 9, ['J'] = 10, ['K'] = 11, ['L'] = 12, ['M'] = 13, ['N'] = 14,
    ['O'] = 15, ['P'] = 16, ['Q'] = 17, ['R'] = 18, ['S'] = 19, ['T'] = 20, ['U'] = 21,
    ['V'] = 22, ['W'] = 23, ['X'] = 24, ['Y'] = 25, ['Z'] = 26,
    ['a'] = 27, ['b'] = 28, ['c'] = 29, ['d'] = 30, ['e'] = 31, ['f'] = 32, ['g'] = 33,
    ['h'] = 34, ['i'] = 35, ['j'] = 36, ['k'] = 37, ['l'] = 38, ['m'] = 39, ['n'] = 40,
    ['o'] = 41, ['p'] = 42, ['q'] = 43, ['r'] = 44, ['s'] = 45, ['t'] = 46, ['u'] = 47,
    ['v'] = 48, ['w'] = 49, ['x'] = 50, ['y'] = 51, ['z'] = 52,
    ['0'] = 53, ['1'] = 54, ['2'] = 55, ['3'] = 56, ['4'] = 57, ['5'] = 58, ['6'] = 59,
    ['7'] = 60, ['8'] = 61, ['9'] = 62, ['+'] = 63, ['/'] = 64,
};

static int mime_b64_value(unsigned char c)
{
    return (int)mime_b64[c] - 1;
}

/* mime_base64 - tolerant base64 decode of s[0..n) into out, at most max
 * bytes: white space skipped, other junk skipped and flagged, decoding
 * ends at '=' padding.  *bad set on junk or a dangling quantum; returns
 * false when max was reached. */
static bool mime_base64(const char *s, size_t n, buf_t *out, size_t max, bool *bad)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t i;

    /* 6 bits a character: the output fits in n * 3 / 4 + 1 bytes */
    size_t room = n / 4 * 3 + 3 < max ? n / 4 * 3 + 3 : max;
    size_t limit = out->len + room;
    buf_reserve(out, room);
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int v = mime_b64_value(c);
        if (v < 0) {
            if (c == '=')
                break;
            if (c != ' ' && c != '\t' && c != '\r' && c != '\n')
                *bad = true;
            continue;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (out->len >= limit) {
                out->data[out->len] = '\0';
                return false;
            }
            out->data[out->len++] = (char)((acc >> bits) & 0xFF);
        }
    }
    out->data[out->len] = '\0';
    if (bits >= 6)          /* a lone sixth character: not base64 */
        *bad = true;
    /* after the padding only '=' and white space may follow */
    for (; i < n; i++) {
        char c = s[i];
        if (c != '=' && c != ' ' && c != '\t' && c != '\r' && c != '\n') {
            *bad = true;
            break;
        }
    }
    return true;
}

static int mime_hex(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20;
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* mime_qp - quoted-printable decode of s[0..n) into out, at most max
 * bytes; q: RFC 2047 "Q" (underscore is a space).  A '=' not followed by
 * two hex digits or a line break is kept and flagged. */
static bool mime_qp(const char *s, size_t n, buf_t *out, size_t max, bool q, bool *bad)
{
    size_t line_start = out->len;

    buf_reserve(out, n < max ? n : max);
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (out->len >= max)
            return false;
        if (c == '=') {
            if (i + 2 < n && mime_hex((unsigned char)s[i + 1]) >= 0
                && mime_hex((unsigned char)s[i + 2]) >= 0) {
                buf_append_char(out, (char)(mime_hex((unsigned char)s[i + 1]) * 16
                                            + mime_hex((unsigned char)s[i + 2])));
                i += 2;
                continue;
            }
            /* soft line break: '=' [white space] CRLF */
            size_t j = i + 1;
            while (j < n && (s[j] == ' ' || s[j] == '\t'))
                j++;
            if (j < n && s[j] == '\r')
                j++;
            if (j >= n || s[j] == '\n') {
                i = j;
                line_start = out->len;
                continue;
            }
            *bad = true;
            buf_append_char(out, c);
            continue;
        }
        if (c == '_' && q) {
            buf_append_char(out, ' ');
            continue;
        }
        if (c == '\n') {
            /* transport white space at the end of a line is not data */
            size_t e = out->len;
            while (e > line_start && (out->data[e - 1] == ' ' || out->data[e - 1] == '\t'
                                      || out->data[e - 1] == '\r'))
                e--;
            out->len = e;
            buf_append(out, "\r\n", 2);
            line_start = out->len;
            continue;
        }
        buf_append_char(out, c);
    }
    while (out->len > line_start && (out->data[out->len - 1] == ' '
                                     || out->data[out->len - 1] == '\t'))
        out->len--;
    if (out->data)
        out->data[out->len] = '\0';
    return true;
}

/* ---- header fields */

static bool mime_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* mime_field_next - read the header field at *pp (before end): its name
 * and unfolded value (CR LF removed, NUL made a space) into name/value.
 * Returns false at the end of the header section, with *pp at the body:
 * after an empty line, or at a line that is not a field (no colon, bad
 * name) which then belongs to the body. */
static bool mime_field_next(const char **pp, const char *end, buf_t *name, buf_t *value)
{
    const char *p = *pp;

    if (p >= end)
        return false;
    if (*p == '\n') {
        *pp = p + 1;
        return false;
    }
    if (*p == '\r' && p + 1 < end && p[1] == '\n') {
        *pp = p + 2;
        return false;
    }
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *le = eol ? eol : end;
    const char *colon = memchr(p, ':', (size_t)(le - p));
    if (colon == NULL || colon == p)
        return false;
    const char *ne = colon;
    while (ne > p && mime_wsp(ne[-1]))          /* "Subject :" */
        ne--;
    if (ne == p)
        return false;
    for (const char *q = p; q < ne; q++)
        if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7F)
            return false;
    buf_reset(name);
    buf_append(name, p, (size_t)(ne - p));
    buf_reset(value);
    const char *v = colon + 1;
    while (v < le && mime_wsp(*v))
        v++;
    for (;;) {
        const char *ve = le;
        if (ve > v && ve[-1] == '\r')
            ve--;
        size_t start = value->len;
        buf_append(value, v, (size_t)(ve - v));
        for (size_t i = start; i < value->len; i++)
            if (value->data[i] == '\0' || value->data[i] == '\r')
                value->data[i] = ' ';
        p = eol ? eol + 1 : end;
        if (p >= end || !mime_wsp(*p))
            break;
        eol = memchr(p, '\n', (size_t)(end - p));     /* continuation line */
        le = eol ? eol : end;
        v = p;
    }
    while (value->len && mime_wsp(value->data[value->len - 1]))
        value->len--;
    buf_reserve(value, 1);
    value->data[value->len] = '\0';
    *pp = p;
    return true;
}

/* mime_2047_word - decode the encoded word at s (s[0..2) == "=?") into
 * out (UTF-8).  Returns its length, 0 if s does not start one. */
static size_t mime_2047_word(const char *s, buf_t *out, buf_t *tmp)
{
    const char *cs = s + 2;
    const char *q1 = memchr(cs, '?', strnlen(cs, MIME_CHARSET_MAX + 20));
    if (q1 == NULL || q1 == cs)
        return 0;
    char enc = (char)(q1[1] | 0x20);
    if ((enc != 'b' && enc != 'q') || q1[2] != '?')
        return 0;
    const char *text = q1 + 3;
    /* bounded, so that many "=?" without "?=" stay linear */
    const char *e = memmem(text, strnlen(text, MIME_WORD_MAX), "?=", 2);
    if (e == NULL)
        return 0;
    for (const char *c = text; c < e; c++)
        if (*c == ' ' || *c == '\t')
            return 0;
    char charset[MIME_CHARSET_MAX + 21];
    size_t cl = 0;
    for (const char *c = cs; c < q1 && *c != '*'; c++)      /* RFC 2231 *lang */
        charset[cl++] = (char)(*c >= 'A' && *c <= 'Z' ? *c | 0x20 : *c);
    charset[cl] = '\0';
    bool bad = false;
    buf_reset(tmp);
    if (enc == 'b')
        mime_base64(text, (size_t)(e - text), tmp, MIME_MAX_HEADER_BYTES, &bad);
    else
        mime_qp(text, (size_t)(e - text), tmp, MIME_MAX_HEADER_BYTES, true, &bad);
    mime_convert(charset, tmp->data ? tmp->data : "", tmp->len, out);
    return (size_t)(e + 2 - s);
}

/* mime_2047_decode - a header value with its encoded words decoded and
 * everything else read as UTF-8 (invalid bytes replaced); malloc'ed. */
static char *mime_2047_decode(const char *v)
{
    if (strstr(v, "=?") == NULL && !mime_has_8bit(v, strlen(v)))
        return xstrdup(v);
    buf_t out = BUF_INIT, tmp = BUF_INIT;
    const char *p = v, *run = v;
    const char *after_word = NULL;   /* end of the last encoded word */

    while (*p) {
        if (p[0] == '=' && p[1] == '?') {
            /* white space between two encoded words is dropped */
            bool only_ws = after_word != NULL;
            for (const char *c = run; only_ws && c < p; c++)
                only_ws = mime_wsp(*c);
            if (!only_ws)
                mime_utf8_append(&out, run, (size_t)(p - run));
            size_t k = mime_2047_word(p, &out, &tmp);
            if (k) {
                p += k;
                run = p;
                after_word = p;
                continue;
            }
            if (only_ws)      /* not a word after all: keep the space */
                mime_utf8_append(&out, run, (size_t)(p - run));
            run = p;
            after_word = NULL;
            p += 2;
            continue;
        }
        p++;
    }
    mime_utf8_append(&out, run, (size_t)(p - run));
    buf_free(&tmp);
    mime_text_tidy(&out);
    char *r = buf_steal(&out, NULL);
    return r ? r : xstrdup("");
}

/* mime_param - the value of parameter name in a Content-Type or
 * Content-Disposition value (quotes removed, backslash escapes undone;
 * name* of RFC 2231 with its charset'lang' prefix and %XX decoded);
 * malloc'ed, NULL if absent. */
static char *mime_param(const char *v, const char *name)
{
    size_t nl = strlen(name);
    const char *p = v ? strchr(v, ';') : NULL;

    while (p) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        const char *ps = p;
        while (*p && *p != '=' && *p != ';')
            p++;
        const char *pe = p;
        while (pe > ps && mime_wsp(pe[-1]))
            pe--;
        if (*p != '=') {
            if (*p == '\0')
                return NULL;
            continue;
        }
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        bool ext = (size_t)(pe - ps) == nl + 1 && pe[-1] == '*';
        bool match = ((size_t)(pe - ps) == nl || ext) && strncasecmp(ps, name, nl) == 0;
        buf_t b = BUF_INIT;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1])
                    p++;
                buf_append_char(&b, *p);
            }
            if (*p == '"')
                p++;
            p = strchr(p, ';');
        } else {
            const char *vs = p;
            while (*p && *p != ';' && *p != ' ' && *p != '\t')
                p++;
            buf_append(&b, vs, (size_t)(p - vs));
            p = strchr(p, ';');
        }
        if (!match) {
            buf_free(&b);
            continue;
        }
        char *r = buf_steal(&b, NULL);
        if (r == NULL)
            r = xstrdup("");
        if (ext) {   /* charset'lang'value with %XX */
            char *q = strchr(r, '\'');
            q = q ? strchr(q + 1, '\'') : NULL;
            const char *s = q ? q + 1 : r;
            char *d = r;
            for (; *s; s++) {
                if (*s == '%' && mime_hex((unsigned char)s[1]) >= 0
                    && mime_hex((unsigned char)s[2]) >= 0) {
                    char c = (char)(mime_hex((unsigned char)s[1]) * 16 + mime_hex((unsigned char)s[2]));
                    *d++ = c ? c : ' ';
                    s += 2;
                } else {
                    *d++ = *s;
                }
            }
            *d = '\0';
        }
        return r;
    }
    return NULL;
}

static void mime_lower(char *s)
{
    for (; s && *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s |= 0x20;
}

/* mime_type - "type/subtype" lower-cased from a Content-Type value, or
 * NULL when absent or malformed. */
static char *mime_type(const char *v)
{
    if (v == NULL)
        return NULL;
    while (mime_wsp(*v))
        v++;
    size_t n = strcspn(v, "; \t(");
    const char *slash = memchr(v, '/', n);
    if (slash == NULL || slash == v || slash + 1 == v + n)
        return NULL;
    char *t = xstrndup(v, n);
    mime_lower(t);
    return t;
}

/* ---- URIs */

static uint32_t mime_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

/* mime_uri_host - the host of url: scheme://[user@]host[:port], www.x,
 * mailto:user@host; lower-cased, "" if none. */
static char *mime_uri_host(const char *u)
{
    const char *p = u, *h = NULL, *he;

    while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')
           || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (*p == ':' && p > u) {
        if (strncasecmp(u, "mailto:", 7) == 0) {
            const char *at = strchr(p, '@');
            if (at)
                h = at + 1;
        } else if ((p[1] == '/' || p[1] == '\\') && (p[2] == '/' || p[2] == '\\')) {
            h = p + 3;
        }
    } else if (strncasecmp(u, "www.", 4) == 0) {
        h = u;
    } else if (u[0] == '/' && u[1] == '/') {
        h = u + 2;
    }
    if (h == NULL)
        return xstrdup("");
    he = h + strcspn(h, "/?#\\>\" ");
    /* user:password@ before the host */
    for (const char *q = he; q > h; q--)
        if (q[-1] == '@') {
            h = q;
            break;
        }
    const char *pe = he;
    if (*h == '[') {
        const char *rb = memchr(h, ']', (size_t)(he - h));
        if (rb)
            pe = rb + 1;
    } else {
        const char *colon = memchr(h, ':', (size_t)(he - h));
        if (colon)
            pe = colon;
    }
    while (pe > h && pe[-1] == '.')
        pe--;
    char *r = xstrndup(h, (size_t)(pe - h));
    mime_lower(r);
    return r;
}

/* mime_uri_add - html_uri_fn: record a link or image once. */
static void mime_uri_add(void *vc, const char *url, size_t len, bool image)
{
    mime_ctx *c = vc;
    mime_msg *m = c->m;

    while (len && (unsigned char)*url <= ' ') {
        url++;
        len--;
    }
    while (len && (unsigned char)url[len - 1] <= ' ')
        len--;
    if (len == 0 || url[0] == '#' || (len >= 11 && strncasecmp(url, "javascript:", 11) == 0))
        return;
    uint32_t h = mime_hash(url, len);
    size_t slot = h & (MIME_URI_HASH - 1);
    for (;;) {
        uint32_t idx = c->uri_hash[slot];
        if (idx == 0)
            break;
        mime_uri *u = &m->uris[idx - 1];
        if (strlen(u->url) == len && memcmp(u->url, url, len) == 0) {
            u->image |= image;
            return;
        }
        slot = (slot + 1) & (MIME_URI_HASH - 1);
    }
    if (m->n_uris >= MIME_MAX_URIS) {
        m->truncated = true;
        return;
    }
    if (m->n_uris == c->cap_uris) {
        c->cap_uris = c->cap_uris ? c->cap_uris * 2 : 16;
        m->uris = xrealloc(m->uris, c->cap_uris * sizeof *m->uris);
    }
    mime_uri *u = &m->uris[m->n_uris++];
    u->url = xmemdup(url, len);
    for (char *q = u->url; q < u->url + len; q++)
        if (*q == '\0')
            *q = ' ';
    u->host = mime_uri_host(u->url);
    u->image = image;
    c->uri_hash[slot] = (uint32_t)m->n_uris;
}

/* ---- the tree */

static void mime_fields_free(mime_fields *f)
{
    xfree(&f->ctype);
    xfree(&f->cte);
    xfree(&f->disp);
    xfree(&f->cid);
}

/* mime_headers - read an entity's header section at *pp: keep its
 * Content-* fields in f, and for the top level every field in m. */
static void mime_headers(mime_ctx *c, const char **pp, const char *end, bool top, mime_fields *f)
{
    mime_msg *m = c->m;
    buf_t name = BUF_INIT, value = BUF_INIT;
    const char *start = *pp;

    while (mime_field_next(pp, end, &name, &value)) {
        if (top && (size_t)(*pp - start) > MIME_MAX_HEADER_BYTES) {
            /* skip the rest of an oversized header section unread */
            const char *p = *pp;
            m->truncated = true;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                if (nl == NULL) {
                    p = end;
                    break;
                }
                p = nl + 1;
                if (p < end && *p == '\n') {
                    p++;
                    break;
                }
                if (p + 1 < end && p[0] == '\r' && p[1] == '\n') {
                    p += 2;
                    break;
                }
            }
            *pp = p;
            break;
        }
        char **slot = NULL;
        if (name.len > 8 && strncasecmp(name.data, "content-", 8) == 0) {
            const char *rest = name.data + 8;
            if (strcasecmp(rest, "type") == 0)
                slot = &f->ctype;
            else if (strcasecmp(rest, "transfer-encoding") == 0)
                slot = &f->cte;
            else if (strcasecmp(rest, "disposition") == 0)
                slot = &f->disp;
            else if (strcasecmp(rest, "id") == 0)
                slot = &f->cid;
        }
        if (slot && *slot == NULL)
            *slot = xstrdup(value.data);
        if (!top)
            continue;
        if (m->n_headers >= MIME_MAX_HEADERS) {
            m->truncated = true;
            continue;
        }
        if (m->n_headers == c->cap_headers) {
            c->cap_headers = c->cap_headers ? c->cap_headers * 2 : 32;
            m->headers = xrealloc(m->headers, c->cap_headers * sizeof *m->headers);
        }
        mime_header *h = &m->headers[m->n_headers++];
        h->name = xstrdup(name.data);
        h->value = xstrdup(value.data);
        h->decoded = mime_2047_decode(h->value);
    }
    buf_free(&name);
    buf_free(&value);
}

/* mime_leaf - decode and record one leaf; type is taken over. */
static void mime_leaf(mime_ctx *c, char *type, const mime_fields *f, const char *body,
                      const char *end, unsigned alt_id)
{
    mime_msg *m = c->m;

    if (m->n_parts >= MIME_MAX_PARTS) {
        m->truncated = true;
        xfree(&type);
        return;
    }
    if (m->n_parts == c->cap_parts) {
        c->cap_parts = c->cap_parts ? c->cap_parts * 2 : 8;
        m->parts = xrealloc(m->parts, c->cap_parts * sizeof *m->parts);
    }
    mime_part *p = &m->parts[m->n_parts++];
    memset(p, 0, sizeof *p);
    p->type = type;
    p->alt_id = alt_id;
    p->charset = mime_param(f->ctype, "charset");
    mime_lower(p->charset);
    if (p->charset && p->charset[0] == '\0')
        xfree(&p->charset);
    p->filename = mime_param(f->disp, "filename");
    if (p->filename == NULL)
        p->filename = mime_param(f->ctype, "name");
    const char *disp = f->disp ? f->disp + strspn(f->disp, " \t") : "";
    p->attachment = strncasecmp(disp, "attachment", 10) == 0;
    if (f->cid) {
        const char *s = f->cid + strspn(f->cid, " \t<");
        size_t n = strcspn(s, "> \t");
        if (n)
            p->content_id = xstrndup(s, n);
    }

    /* decode within what is left of the budget */
    size_t left = MIME_MAX_DECODED - c->decoded;
    size_t n = (size_t)(end - body);
    buf_t raw = BUF_INIT;
    char cte[32] = "";
    if (f->cte) {
        const char *s = f->cte + strspn(f->cte, " \t");
        size_t l = strcspn(s, " \t;(");
        if (l < sizeof cte) {
            memcpy(cte, s, l);
            cte[l] = '\0';
            mime_lower(cte);
        }
    }
    bool complete;
    if (strcmp(cte, "base64") == 0) {
        complete = mime_base64(body, n, &raw, left, &p->bad_encoding);
    } else if (strcmp(cte, "quoted-printable") == 0) {
        complete = mime_qp(body, n, &raw, left, false, &p->bad_encoding);
    } else {
        complete = n <= left;
        buf_append(&raw, body, complete ? n : left);
    }
    if (!complete)
        m->truncated = true;
    c->decoded += raw.len;
    p->raw = buf_steal(&raw, &p->raw_len);
    if (p->raw == NULL)
        p->raw = xstrdup("");

    if (strncmp(type, "text/", 5) == 0) {
        buf_t t = BUF_INIT;
        bool is_html = strcmp(type, "text/html") == 0;
        p->eight_bit_no_charset = p->charset == NULL && mime_has_8bit(p->raw, p->raw_len);
        p->bad_charset = !mime_convert(p->charset, p->raw, p->raw_len, &t)
                         && p->charset != NULL;
        mime_text_tidy(&t);
        if (is_html) {
            buf_t vis = BUF_INIT;
            html_to_text(t.data ? t.data : "", t.len, &vis, mime_uri_add, c);
            buf_free(&t);
            t = vis;
            if (!p->attachment)
                m->has_html = true;
        } else if (strcmp(type, "text/plain") == 0 && !p->attachment) {
            m->has_text = true;
        }
        html_scan_urls(t.data ? t.data : "", t.len, mime_uri_add, c);
        p->text = buf_steal(&t, &p->text_len);
        if (p->text == NULL)
            p->text = xstrdup("");
    } else if (strncmp(type, "image/", 6) == 0) {
        p->inline_image = p->content_id != NULL || strncasecmp(disp, "inline", 6) == 0;
    }
}

static void mime_entity(mime_ctx *c, const char *p, const char *end, unsigned depth, bool top,
                        unsigned alt_id, const char *default_type);

/* mime_delim - the delimiter line "--boundary" at or after the line
 * start from, or NULL.  "--boundary" followed by anything but "--",
 * white space or the line end is another (longer) boundary. */
static const char *mime_delim(const char *from, const char *end, const char *needle, size_t nl)
{
    /* needle is "\n--boundary"; from is at a line start */
    const char *p = from;

    if ((size_t)(end - p) >= nl - 1 && memcmp(p, needle + 1, nl - 1) == 0) {
        const char *a = p + nl - 1;
        if (a == end || *a == '-' || *a == '\r' || *a == '\n' || mime_wsp(*a))
            return p;
    }
    while (p < end) {
        const char *d = memmem(p, (size_t)(end - p), needle, nl);
        if (d == NULL)
            return NULL;
        const char *a = d + nl;
        if (a == end || *a == '-' || *a == '\r' || *a == '\n' || mime_wsp(*a))
            return d + 1;
        p = d + 1;
    }
    return NULL;
}

/* mime_multipart - split body[..end) at the boundary and parse each
 * part at depth. */
static void mime_multipart(mime_ctx *c, const char *body, const char *end, const char *boundary,
                           unsigned depth, unsigned alt_id, const char *child_type)
{
    char needle[MIME_BOUNDARY_MAX + 4];
    size_t bl = strlen(boundary);
    size_t nl = bl + 3;

    needle[0] = '\n';
    needle[1] = needle[2] = '-';
    memcpy(needle + 3, boundary, bl);
    const char *d = mime_delim(body, end, needle, nl);
    if (d == NULL) {                    /* no part at all: read it as text */
        c->m->bad_structure = true;
        mime_fields none = {0};
        mime_leaf(c, xstrdup("text/plain"), &none, body, end, alt_id);
        return;
    }
    for (;;) {
        const char *a = d + nl - 1;
        if (end - a >= 2 && a[0] == '-' && a[1] == '-')
            return;                     /* close delimiter: the epilogue is ignored */
        const char *eol = memchr(a, '\n', (size_t)(end - a));
        if (eol == NULL) {
            c->m->bad_structure = true;
            return;
        }
        const char *ps = eol + 1;
        const char *next = mime_delim(ps, end, needle, nl);
        const char *pe = next ? next : end;
        if (next) {
            if (pe > ps && pe[-1] == '\n')
                pe--;
            if (pe > ps && pe[-1] == '\r')
                pe--;
        } else {
            c->m->bad_structure = true;     /* no close delimiter */
        }
        if (c->m->n_parts >= MIME_MAX_PARTS) {
            c->m->truncated = true;
            return;
        }
        mime_entity(c, ps, pe, depth, false, alt_id, child_type);
        if (next == NULL)
            return;
        d = next;
    }
}

/* mime_entity - parse the entity p[..end) (header fields, then body). */
static void mime_entity(mime_ctx *c, const char *p, const char *end, unsigned depth, bool top,
                        unsigned alt_id, const char *default_type)
{
    mime_fields f = {0};
    char *type;

    mime_headers(c, &p, end, top, &f);
    if (depth > c->m->depth)
        c->m->depth = depth;
    type = mime_type(f.ctype);
    if (type == NULL) {
        if (f.ctype)                    /* present but not type/subtype */
            c->m->bad_structure = true;
        type = xstrdup(default_type);
    }
    if (strncmp(type, "multipart/", 10) == 0) {
        char *boundary = mime_param(f.ctype, "boundary");
        if (boundary == NULL || boundary[0] == '\0' || strlen(boundary) > MIME_BOUNDARY_MAX) {
            c->m->bad_structure = true;
            xfree(&type);
            type = xstrdup("text/plain");
        } else if (depth >= MIME_MAX_DEPTH) {
            c->m->truncated = true;
        } else {
            unsigned id = alt_id;
            if (strcmp(type, "multipart/alternative") == 0)
                id = ++c->alt_seq;
            mime_multipart(c, p, end, boundary, depth + 1, id,
                           strcmp(type, "multipart/digest") == 0 ? "message/rfc822" : "text/plain");
            xfree(&boundary);
            xfree(&type);
            mime_fields_free(&f);
            return;
        }
        xfree(&boundary);
        if (type[0] == 'm') {           /* too deep: stop here */
            xfree(&type);
            mime_fields_free(&f);
            return;
        }
    } else if (strcmp(type, "message/rfc822") == 0 || strcmp(type, "message/global") == 0) {
        if (depth >= MIME_MAX_DEPTH)
            c->m->truncated = true;
        else
            mime_entity(c, p, end, depth + 1, false, alt_id, "text/plain");
        xfree(&type);
        mime_fields_free(&f);
        return;
    }
    mime_leaf(c, type, &f, p, end, alt_id);
    mime_fields_free(&f);
}

void mime_parse(const char *data, size_t len, mime_msg *m)
{
    mime_ctx *c = xcalloc(1, sizeof *c);

    memset(m, 0, sizeof *m);
    c->m = m;
    if (data == NULL)
        data = "";
    mime_entity(c, data, data + len, 0, true, 0, "text/plain");
    xfree(&c);
}

void mime_free(mime_msg *m)
{
    for (size_t i = 0; i < m->n_headers; i++) {
        xfree(&m->headers[i].name);
        xfree(&m->headers[i].value);
        xfree(&m->headers[i].decoded);
    }
    for (size_t i = 0; i < m->n_parts; i++) {
        mime_part *p = &m->parts[i];
        xfree(&p->type);
        xfree(&p->charset);
        xfree(&p->filename);
        xfree(&p->content_id);
        xfree(&p->text);
        xfree(&p->raw);
    }
    for (size_t i = 0; i < m->n_uris; i++) {
        xfree(&m->uris[i].url);
        xfree(&m->uris[i].host);
    }
    xfree(&m->headers);
    xfree(&m->parts);
    xfree(&m->uris);
    memset(m, 0, sizeof *m);
}

const mime_header *mime_header_get(const mime_msg *m, const char *name, size_t nth)
{
    for (size_t i = 0; i < m->n_headers; i++)
        if (strcasecmp(m->headers[i].name, name) == 0 && nth-- == 0)
            return &m->headers[i];
    return NULL;
}
