/* smtp_command.c - SMTP command line parsing (see smtp_command.h). */
#include <string.h>
#include <strings.h>
#include "smtp_command.h"

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
