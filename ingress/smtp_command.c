/* smtp_command.c - SMTP command line parsing (see smtp_command.h). */
#include <ctype.h>
#include <string.h>
#include <strings.h>
#include "smtp_command.h"
#include "wire.h"

bool smtp_cmd_split(const char *line, size_t len, const char **verb,
                    size_t *verb_len, const char **arg, size_t *arg_len)
{
    size_t i = 0, v;

    while (i < len && line[i] == ' ')
        i++;
    if (i == len)
        return false;
    v = i;
    while (i < len && line[i] != ' ')
        i++;
    *verb = line + v;
    *verb_len = i - v;
    while (i < len && line[i] == ' ')
        i++;
    *arg = line + i;
    *arg_len = len - i;
    /* trailing spaces are not part of the argument */
    while (*arg_len > 0 && (*arg)[*arg_len - 1] == ' ')
        (*arg_len)--;
    return true;
}

smtp_args_status smtp_path_args(const char *arg, size_t len, const char *prefix,
                                bool allow_null, smtp_path *path,
                                smtp_param *params, size_t *n_params)
{
    size_t plen = strlen(prefix), i, used = 0;

    *n_params = 0;
    if (len < plen || strncasecmp(arg, prefix, plen) != 0)
        return SMTP_ARGS_SYNTAX;
    i = plen;
    while (i < len && arg[i] == ' ')
        i++;
    if (i == len || arg[i] != '<')
        return SMTP_ARGS_SYNTAX;
    if (smtp_path_parse(arg + i, len - i, allow_null, path, &used) != PATH_OK)
        return SMTP_ARGS_BAD_PATH;
    i += used;
    if (i < len && arg[i] != ' ')
        return SMTP_ARGS_BAD_PATH;      /* junk right after '>' */

    while (i < len) {
        size_t k;
        smtp_param *p;

        while (i < len && arg[i] == ' ')
            i++;
        if (i == len)
            break;
        if (*n_params == SMTP_PARAM_MAX)
            return SMTP_ARGS_BAD_PARAM;
        p = &params[(*n_params)++];
        k = i;
        while (i < len && arg[i] != ' ' && arg[i] != '=')
            i++;
        p->key = arg + k;
        p->key_len = i - k;
        p->value = NULL;
        p->value_len = 0;
        if (p->key_len == 0)
            return SMTP_ARGS_BAD_PARAM;
        if (i < len && arg[i] == '=') {
            size_t vs = ++i;
            while (i < len && arg[i] != ' ')
                i++;
            p->value = arg + vs;
            p->value_len = i - vs;
        }
    }
    return SMTP_ARGS_OK;
}

bool smtp_param_is(const smtp_param *p, const char *key)
{
    size_t n = strlen(key);
    return p->key_len == n && strncasecmp(p->key, key, n) == 0;
}

bool smtp_parse_size(const char *s, size_t len, unsigned long long *out)
{
    unsigned long long v = 0;

    if (len == 0 || len > 19)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned)(s[i] - '0');
    }
    *out = v;
    return true;
}

bool smtp_rcpt_is_postmaster(const char *arg, size_t len)
{
    static const char want[] = "<postmaster>";
    size_t i = 3;

    if (len < 3 || strncasecmp(arg, "TO:", 3) != 0)
        return false;
    while (i < len && arg[i] == ' ')
        i++;
    return len - i == sizeof(want) - 1 && strncasecmp(arg + i, want, sizeof(want) - 1) == 0;
}

/* --- DSN parameters */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    if (c >= 'a' && c <= 'f')          /* RFC 3461 says upper case; be lenient */
        return c - 'a' + 10;
    return -1;
}

bool smtp_xtext_decode(const char *in, size_t len, char *out, size_t outsize)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '+') {
            int hi, lo;
            if (i + 2 >= len)
                return false;
            hi = hex_value(in[i + 1]);
            lo = hex_value(in[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
            if (c < 0x20 || c > 0x7e)
                return false;
        } else if (c < '!' || c > '~' || c == '=') {
            return false;
        }
        if (o + 1 >= outsize)
            return false;
        out[o++] = (char)c;
    }
    if (outsize == 0)
        return false;
    out[o] = '\0';
    return true;
}

unsigned smtp_parse_notify(const char *s, size_t len)
{
    static const struct { const char *word; unsigned bit; } words[] = {
        { "NEVER", CORREIO__NOTIFY__NOTIFY_NEVER },
        { "SUCCESS", CORREIO__NOTIFY__NOTIFY_SUCCESS },
        { "FAILURE", CORREIO__NOTIFY__NOTIFY_FAILURE },
        { "DELAY", CORREIO__NOTIFY__NOTIFY_DELAY },
    };
    unsigned bits = 0;
    size_t i = 0;

    while (i <= len) {
        size_t start = i, n;
        unsigned bit = 0;

        while (i < len && s[i] != ',')
            i++;
        n = i - start;
        for (size_t w = 0; w < sizeof(words) / sizeof(words[0]); w++)
            if (n == strlen(words[w].word) && strncasecmp(s + start, words[w].word, n) == 0)
                bit = words[w].bit;
        if (bit == 0 || (bits & bit))
            return 0;                   /* unknown, empty or repeated */
        bits |= bit;
        i++;                            /* past the comma (or the end) */
    }
    return smtp_notify_valid(bits) ? bits : 0;
}

bool smtp_notify_valid(unsigned bits)
{
    const unsigned all = CORREIO__NOTIFY__NOTIFY_NEVER | CORREIO__NOTIFY__NOTIFY_SUCCESS
                         | CORREIO__NOTIFY__NOTIFY_FAILURE | CORREIO__NOTIFY__NOTIFY_DELAY;

    if (bits & ~all)
        return false;
    return !(bits & CORREIO__NOTIFY__NOTIFY_NEVER) || bits == CORREIO__NOTIFY__NOTIFY_NEVER;
}

/* addr_type_len - the length of an addr-type (an atom: letters, digits,
 * '-') at the start of s, up to len; 0 when there is none. */
static size_t addr_type_len(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && (isalnum((unsigned char)s[n]) || s[n] == '-'))
        n++;
    return n <= DSN_ADDR_TYPE_MAX ? n : 0;
}

bool smtp_parse_orcpt(const char *s, size_t len, char *out, size_t outsize)
{
    size_t t = addr_type_len(s, len);

    if (t == 0 || t >= len || s[t] != ';' || t + 1 == len)
        return false;
    if (outsize < DSN_ORCPT_MAX + 1)
        return false;
    memcpy(out, s, t + 1);
    return smtp_xtext_decode(s + t + 1, len - t - 1, out + t + 1, DSN_ORCPT_MAX + 1 - (t + 1));
}

/* printable - is s printable ASCII (space included) and at most max long? */
static bool printable(const char *s, size_t max)
{
    size_t n = 0;

    for (; s[n]; n++)
        if ((unsigned char)s[n] < 0x20 || (unsigned char)s[n] > 0x7e || n >= max)
            return false;
    return true;
}

bool smtp_orcpt_valid(const char *s)
{
    size_t len = strlen(s), t = addr_type_len(s, len);

    return t > 0 && t + 1 < len && s[t] == ';' && printable(s, DSN_ORCPT_MAX);
}

bool smtp_envid_valid(const char *s)
{
    return printable(s, DSN_ENVID_MAX);
}
