/* config.c - reading correio.conf against the parameter table.
 *
 * The file is read once; every value (from the file, or the table's
 * default) is expanded ($name, ${name}) and checked against its type and
 * bounds at load time, so a stage either starts with a configuration that
 * is entirely valid or not at all.  Errors say "FILE:LINE: NAME: problem"
 * (LINE is left out for a value that comes from the defaults).
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "buf.h"
#include "cidr.h"
#include "restriction.h"
#include "config.h"
#include "fsutil.h"
#include "log.h"
#include "relayhost.h"
#include "transport.h"
#include "xalloc.h"

#define CONFIG_FILE_NAME  "correio.conf"
#define CONFIG_EXPAND_MAX 20  /* nesting of $name inside $name */

/* Per parameter state, indexed like config_params[]. */
typedef struct config_value {
    char       *raw;        /* as written in the file; NULL: the default */
    int         line;       /* where it was set, 0 for the default */
    char       *value;      /* expanded */
    int         state;      /* expansion: 0 not yet, 1 in progress, 2 done */
    long long   num;        /* INT, SIZE (bytes), TIME (ms), BOOL */
    double      real;       /* NUMBER */
    char      **list;       /* LIST: NULL-terminated */
} config_value;

struct config {
    char         *dir;
    char         *path;
    size_t        count;
    config_value *v;
};

static size_t param_count(void)
{
    size_t n = 0;

    while (config_params[n].name)
        n++;
    return n;
}

static int param_index(const char *name, size_t len)
{
    for (int i = 0; config_params[i].name; i++)
        if (strlen(config_params[i].name) == len
            && memcmp(config_params[i].name, name, len) == 0)
            return i;
    return -1;
}

/* config_error - "FILE:LINE: NAME: problem" into *err; always returns -1. */
static int config_error(const config_t *cfg, int idx, char **err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int config_error(const config_t *cfg, int idx, char **err, const char *fmt, ...)
{
    buf_t b = BUF_INIT;
    va_list ap;

    if (*err)       /* keep the first error */
        return -1;
    buf_append_str(&b, cfg->path);
    if (idx >= 0 && cfg->v[idx].line > 0)
        buf_printf(&b, ":%d", cfg->v[idx].line);
    if (idx >= 0)
        buf_printf(&b, ": %s", config_params[idx].name);
    buf_append_str(&b, ": ");
    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    *err = buf_steal(&b, NULL);
    return -1;
}

static void free_list(char ***list)
{
    if (*list) {
        for (char **p = *list; *p; p++)
            free(*p);
        xfree(list);
    }
}

void config_free(config_t **cfgp)
{
    config_t *cfg = *cfgp;

    if (cfg == NULL)
        return;
    for (size_t i = 0; i < cfg->count; i++) {
        free(cfg->v[i].raw);
        free(cfg->v[i].value);
        free_list(&cfg->v[i].list);
    }
    free(cfg->v);
    free(cfg->dir);
    free(cfg->path);
    free(cfg);
    *cfgp = NULL;
}

/* ---------------------------------------------------------------- file */

static char *trim(char *s)
{
    char *e;

    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
        *--e = 0;
    return s;
}

/* parse_text - split the file into parameters, Postfix main.cf style. */
static int parse_text(config_t *cfg, char *text, char **err)
{
    int lineno = 0, cur = -1;
    char *line, *next;

    for (line = text; line && *line; line = next) {
        char *nl = strchr(line, '\n');
        char *body, *eq, *name, *value;

        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = 0;
        lineno++;
        body = trim(line);
        if (*body == 0 || *body == '#')
            continue;
        if (line[0] == ' ' || line[0] == '\t') {
            /* continuation of the previous value */
            if (cur < 0) {
                *err = xasprintf("%s:%d: continuation line without a parameter before it",
                                 cfg->path, lineno);
                return -1;
            }
            char *joined = (cfg->v[cur].raw[0]
                            ? xasprintf("%s %s", cfg->v[cur].raw, body)
                            : xstrdup(body));
            free(cfg->v[cur].raw);
            cfg->v[cur].raw = joined;
            continue;
        }
        if ((eq = strchr(body, '=')) == NULL) {
            *err = xasprintf("%s:%d: missing '=' after parameter name \"%s\"",
                             cfg->path, lineno, body);
            return -1;
        }
        *eq = 0;
        name = trim(body);
        value = trim(eq + 1);
        if (*name == 0) {
            *err = xasprintf("%s:%d: missing parameter name before '='", cfg->path, lineno);
            return -1;
        }
        if ((cur = param_index(name, strlen(name))) < 0) {
            *err = xasprintf("%s:%d: %s: unknown parameter", cfg->path, lineno, name);
            return -1;
        }
        /* a later setting wins, as in Postfix */
        free(cfg->v[cur].raw);
        cfg->v[cur].raw = xstrdup(value);
        cfg->v[cur].line = lineno;
    }
    return 0;
}

/* ---------------------------------------------------------------- expansion */

static const char *resolve(config_t *cfg, int idx, int depth, char **err);

/* expand - value with every $name / ${name} replaced; NULL on error. */
static char *expand(config_t *cfg, int idx, const char *src, int depth, char **err)
{
    buf_t b = BUF_INIT;
    const char *p = src;

    buf_append(&b, "", 0);
    while (*p) {
        const char *start, *end;
        const char *val;
        int ref;

        if (*p != '$') {
            buf_append_char(&b, *p++);
            continue;
        }
        p++;
        if (*p == '$') {                 /* $$ is a literal $ */
            buf_append_char(&b, *p++);
            continue;
        }
        if (*p == '{') {
            start = ++p;
            end = strchr(p, '}');
            if (end == NULL) {
                config_error(cfg, idx, err, "'%s': missing '}' after ${", src);
                goto fail;
            }
            p = end + 1;
        } else {
            start = p;
            while (isalnum((unsigned char)*p) || *p == '_')
                p++;
            end = p;
        }
        if (end == start) {
            config_error(cfg, idx, err, "'%s': '$' without a parameter name (write $$ for a $)", src);
            goto fail;
        }
        if ((ref = param_index(start, (size_t)(end - start))) < 0) {
            config_error(cfg, idx, err, "'%s': unknown parameter $%.*s", src,
                         (int)(end - start), start);
            goto fail;
        }
        if (depth >= CONFIG_EXPAND_MAX) {
            config_error(cfg, idx, err, "'%s': $name nested too deep (a loop?)", src);
            goto fail;
        }
        if ((val = resolve(cfg, ref, depth + 1, err)) == NULL) {
            if (*err == NULL)
                config_error(cfg, idx, err, "'%s': $%s refers back to itself",
                             src, config_params[ref].name);
            goto fail;
        }
        buf_append_str(&b, val);
    }
    return buf_steal(&b, NULL);
fail:
    buf_free(&b);
    return NULL;
}

static char *system_hostname(void)
{
    char host[256];

    if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == 0)
        return xstrdup("localhost");
    host[sizeof(host) - 1] = 0;
    return xstrdup(host);
}

/* resolve - the expanded value of a parameter (memoized); NULL on error
 * or on a reference loop (state 1 seen again). */
static const char *resolve(config_t *cfg, int idx, int depth, char **err)
{
    config_value *v = &cfg->v[idx];
    const param_def *d = &config_params[idx];
    char *val;

    if (v->state == 2)
        return v->value;
    if (v->state == 1)
        return NULL;
    v->state = 1;
    val = expand(cfg, idx, v->raw ? v->raw : d->def, depth, err);
    if (val == NULL)
        return NULL;
    if (val[0] == 0 && strcmp(d->name, "myhostname") == 0) {
        free(val);
        val = system_hostname();
    } else if (val[0] == 0 && strcmp(d->name, "mydomain") == 0) {
        const char *host = resolve(cfg, param_index("myhostname", 10), depth + 1, err);
        const char *dot;

        free(val);
        if (host == NULL)
            return NULL;
        dot = strchr(host, '.');
        val = xstrdup(dot && dot[1] ? dot + 1 : host);
    }
    v->value = val;
    v->state = 2;
    return val;
}

/* ---------------------------------------------------------------- types */

/* parse_scaled - digits with an optional unit from units[] (multipliers
 * in mult[]); a bare number uses bare_mult.  -1 when malformed or huge. */
static int parse_scaled(const char *s, const char *const *units, const long long *mult,
                        long long bare_mult, long long *out)
{
    const char *p = s;
    unsigned long long n = 0;
    long long m = bare_mult;

    if (!isdigit((unsigned char)*p))
        return -1;
    while (isdigit((unsigned char)*p)) {
        if (n > (unsigned long long)LLONG_MAX / 10)
            return -1;
        n = n * 10 + (unsigned)(*p++ - '0');
    }
    if (*p) {
        int i;
        for (i = 0; units[i]; i++)
            if (strcasecmp(p, units[i]) == 0)
                break;
        if (units[i] == NULL)
            return -1;
        m = mult[i];
    }
    if (n > (unsigned long long)LLONG_MAX / (unsigned long long)m)
        return -1;
    *out = (long long)n * m;
    return 0;
}

/* human - a size or time bound in the unit an operator would write. */
static void human(char *dst, size_t size, param_type type, long long n)
{
    static const char *const su[] = {"g", "m", "k"};
    static const long long sm[] = {1LL << 30, 1LL << 20, 1LL << 10};
    static const char *const tu[] = {"d", "h", "m", "s"};
    static const long long tm[] = {86400000LL, 3600000LL, 60000LL, 1000LL};

    if (n == LLONG_MAX) {
        snprintf(dst, size, "unlimited");
        return;
    }
    for (int i = 0; i < 4 && (type == PARAM_SIZE || type == PARAM_TIME); i++) {
        if (type == PARAM_SIZE && i < 3 && n && n % sm[i] == 0) {
            snprintf(dst, size, "%lld%s", n / sm[i], su[i]);
            return;
        }
        if (type == PARAM_TIME && n && n % tm[i] == 0) {
            snprintf(dst, size, "%lld%s", n / tm[i], tu[i]);
            return;
        }
    }
    snprintf(dst, size, type == PARAM_TIME ? "%lldms" : "%lld", n);
}

static int check_bounds(config_t *cfg, int idx, const char *val, long long n, char **err)
{
    const param_def *d = &config_params[idx];
    char lo[32], hi[32];

    if (d->min == 0 && d->max == 0)
        return 0;
    if (n >= d->min && n <= d->max)
        return 0;
    human(lo, sizeof(lo), d->type, d->min);
    human(hi, sizeof(hi), d->type, d->max);
    return config_error(cfg, idx, err, "'%s' is out of range (%s..%s)", val, lo, hi);
}

static char **split_list(const char *s)
{
    size_t n = 0, cap = 4;
    char **items = xmalloc(cap * sizeof(*items));

    for (;;) {
        size_t len;

        s += strspn(s, ", \t\r\n");
        if (*s == 0)
            break;
        len = strcspn(s, ", \t\r\n");
        if (n + 2 > cap) {
            cap *= 2;
            items = xrealloc(items, cap * sizeof(*items));
        }
        items[n++] = xstrndup(s, len);
        s += len;
    }
    items[n] = NULL;
    return items;
}

/* check_choice - is the value one of the parameter's words? */
static int check_choice(config_t *cfg, int idx, char **err)
{
    const char *name = config_params[idx].name, *val = cfg->v[idx].value;
    size_t len = strlen(val);

    if (len == 0 && config_params[idx].def[0] == 0)
        return 0;       /* "not set" is allowed where it is the default */
    for (size_t i = 0; config_param_choices[i].name; i++) {
        const char *w = config_param_choices[i].words;

        if (strcmp(config_param_choices[i].name, name) != 0)
            continue;
        while (*w) {
            size_t wl = strcspn(w, " ");
            if (wl == len && len > 0 && strncasecmp(w, val, len) == 0)
                return 0;
            w += wl;
            w += strspn(w, " ");
        }
        return config_error(cfg, idx, err, "'%s' is not one of: %s", val,
                            config_param_choices[i].words);
    }
    log_panic("check_choice: %s has no entry in config_param_choices", name);
}

/* check_value - parse the expanded value by type, store it. */
static int check_value(config_t *cfg, int idx, char **err)
{
    static const char *const size_units[] = {"k", "m", "g", "kb", "mb", "gb", "b", NULL};
    static const long long size_mult[] = {1LL << 10, 1LL << 20, 1LL << 30,
                                          1LL << 10, 1LL << 20, 1LL << 30, 1};
    static const char *const time_units[] = {"ms", "s", "m", "h", "d", "w", NULL};
    static const long long time_mult[] = {1, 1000, 60000, 3600000, 86400000, 604800000};
    config_value *v = &cfg->v[idx];
    const param_def *d = &config_params[idx];
    const char *val = v->value;
    char *end;

    switch (d->type) {
    case PARAM_STR:
        return 0;
    case PARAM_LIST:
        v->list = split_list(val);
        return 0;
    case PARAM_NETWORKS: {
        char *why = NULL;
        cidr_list_t *nets;
        int rc = 0;

        v->list = split_list(val);
        if ((nets = cidr_list_parse((const char *const *)v->list, &why)) == NULL)
            rc = config_error(cfg, idx, err, "%s", why ? why : "not a list of networks");
        cidr_list_free(&nets);
        free(why);
        return rc;
    }
    case PARAM_CHOICE:
        return check_choice(cfg, idx, err);
    case PARAM_RESTRICTIONS: {
        restriction *r = NULL;
        char *why = NULL;

        v->list = split_list(val);
        if (restriction_parse((const char *const *)v->list, &r, &why) < 0) {
            int rc = config_error(cfg, idx, err, "%s", why);
            free(why);
            return rc;
        }
        free(r);
        return 0;
    }
    case PARAM_MAPS:
        v->list = split_list(val);
        for (char **m = v->list; *m; m++) {
            if (!restriction_table_spec_ok(*m))
                return config_error(cfg, idx, err, "\"%s\" is not a table such as "
                                    "hash:/etc/correio/access or pcre:/etc/correio/checks", *m);
        }
        return 0;
    case PARAM_TRANSPORT: {
        transport_t t;
        char why[256];

        if (transport_parse(val, &t, why, sizeof why) < 0)
            return config_error(cfg, idx, err, "%s", why);
        if (d->max != 0 && !(d->max & TRANSPORT_ALLOW(t.kind)))
            return config_error(cfg, idx, err, "'%s': the %s transport is not allowed here",
                                val, transport_kind_name(t.kind));
        return 0;
    }
    case PARAM_RELAYHOST: {
        relayhost_t r;
        char why[256];
        int rc = 0;

        if (val[0] && relayhost_parse(val, true, &r, why, sizeof why) < 0)
            rc = config_error(cfg, idx, err, "%s", why);   /* why never holds the password */
        memset(r.pass, 0, sizeof r.pass);
        return rc;
    }
    case PARAM_INT:
        errno = 0;
        v->num = strtoll(val, &end, 10);
        if (*val == 0 || *end != 0 || errno == ERANGE || isspace((unsigned char)*val))
            return config_error(cfg, idx, err, "'%s' is not an integer", val);
        return check_bounds(cfg, idx, val, v->num, err);
    case PARAM_SIZE:
        if (parse_scaled(val, size_units, size_mult, 1, &v->num) < 0)
            return config_error(cfg, idx, err,
                                "'%s' is not a size (use 10240000, 10m, 1g)", val);
        return check_bounds(cfg, idx, val, v->num, err);
    case PARAM_TIME:
        if (parse_scaled(val, time_units, time_mult, 1000, &v->num) < 0)
            return config_error(cfg, idx, err,
                                "'%s' is not a time (use 300s, 5m, 1h, 2d, 500ms)", val);
        return check_bounds(cfg, idx, val, v->num, err);
    case PARAM_BOOL:
        if (!strcasecmp(val, "yes") || !strcasecmp(val, "true")
            || !strcasecmp(val, "on") || !strcmp(val, "1"))
            v->num = 1;
        else if (!strcasecmp(val, "no") || !strcasecmp(val, "false")
                 || !strcasecmp(val, "off") || !strcmp(val, "0"))
            v->num = 0;
        else
            return config_error(cfg, idx, err, "'%s' is not yes or no", val);
        return 0;
    case PARAM_NUMBER:
        errno = 0;
        v->real = strtod(val, &end);
        if (*val == 0 || *end != 0 || errno == ERANGE || !isfinite(v->real)
            || isspace((unsigned char)*val))
            return config_error(cfg, idx, err, "'%s' is not a number (use 5 or 6.5)", val);
        if ((d->min || d->max) && (v->real < (double)d->min || v->real > (double)d->max))
            return config_error(cfg, idx, err, "'%s' is out of range (%lld..%lld)",
                                val, d->min, d->max);
        return 0;
    }
    log_panic("config check_value: %s has unknown type %d", d->name, (int)d->type);
}

/* ---------------------------------------------------------------- loading */

config_t *config_load_file(const char *dir, const char *path, char **err)
{
    config_t *cfg = xcalloc(1, sizeof(*cfg));
    char *text;

    *err = NULL;
    cfg->dir = xstrdup(dir ? dir : ".");
    cfg->path = xstrdup(path);
    cfg->count = param_count();
    cfg->v = xcalloc(cfg->count, sizeof(*cfg->v));

    if ((text = fs_read_file(path, NULL)) != NULL) {
        int rc = parse_text(cfg, text, err);
        free(text);
        if (rc < 0)
            goto fail;
    } else if (errno != ENOENT) {
        *err = xasprintf("%s: cannot read: %s", path, strerror(errno));
        goto fail;
    }
    for (size_t i = 0; i < cfg->count; i++) {
        if (resolve(cfg, (int)i, 0, err) == NULL) {
            if (*err == NULL)
                config_error(cfg, (int)i, err, "$name refers back to itself");
            goto fail;
        }
        if (check_value(cfg, (int)i, err) < 0)
            goto fail;
    }
    return cfg;
fail:
    config_free(&cfg);
    return NULL;
}

config_t *config_load(const char *dir, char **err)
{
    char *path = xasprintf("%s/%s", dir, CONFIG_FILE_NAME);
    config_t *cfg = config_load_file(dir, path, err);

    free(path);
    return cfg;
}

/* ---------------------------------------------------------------- getters */

/* lookup - the value of name, which must have the given type. */
static const config_value *lookup(const config_t *cfg, const char *name,
                                  param_type type, const char *fn)
{
    int idx = param_index(name, strlen(name));

    if (idx < 0)
        log_panic("%s: no parameter named \"%s\"", fn, name);
    if (config_params[idx].type != type)
        log_panic("%s: parameter %s has another type (%d)", fn, name,
                  (int)config_params[idx].type);
    return &cfg->v[idx];
}

/* config_str - the expanded text of any parameter.  Every type has a
 * text form (ctl's `correio config NAME` prints it), so only an unknown
 * name is a bug here; the typed getters below insist on their type. */
const char *config_str(const config_t *cfg, const char *name)
{
    int idx = param_index(name, strlen(name));

    if (idx < 0)
        log_panic("config_str: no parameter named \"%s\"", name);
    return cfg->v[idx].value;
}

long long config_int(const config_t *cfg, const char *name)
{
    return lookup(cfg, name, PARAM_INT, "config_int")->num;
}

long long config_size(const config_t *cfg, const char *name)
{
    return lookup(cfg, name, PARAM_SIZE, "config_size")->num;
}

long long config_time_ms(const config_t *cfg, const char *name)
{
    return lookup(cfg, name, PARAM_TIME, "config_time_ms")->num;
}

bool config_bool(const config_t *cfg, const char *name)
{
    return lookup(cfg, name, PARAM_BOOL, "config_bool")->num != 0;
}

const char *const *config_list(const config_t *cfg, const char *name)
{
    int idx = param_index(name, strlen(name));

    /* lists of networks, restrictions and tables are lists too */
    if (idx >= 0 && (config_params[idx].type == PARAM_NETWORKS
                     || config_params[idx].type == PARAM_RESTRICTIONS
                     || config_params[idx].type == PARAM_MAPS))
        return (const char *const *)cfg->v[idx].list;
    return (const char *const *)lookup(cfg, name, PARAM_LIST, "config_list")->list;
}

double config_number(const config_t *cfg, const char *name)
{
    return lookup(cfg, name, PARAM_NUMBER, "config_number")->real;
}

const char *config_dir(const config_t *cfg)
{
    return cfg->dir;
}

char *config_path(const config_t *cfg, const char *name)
{
    const char *val = config_str(cfg, name);

    if (val[0] == '/')
        return xstrdup(val);
    return xasprintf("%s/%s", cfg->dir, val);
}

/* print_value - "NAME = VALUE"; a relayhost's password as "****".  The
 * credentials are what comes before the last '@', the user what comes
 * before their first ':' (relayhost.h), so the text is masked the same
 * way whether it parses or not (a raw value may hold $names). */
static void print_value(FILE *out, const param_def *d, const char *val)
{
    const char *at, *colon;

    if (d->type != PARAM_RELAYHOST || (at = strrchr(val, '@')) == NULL) {
        fprintf(out, "%s = %s\n", d->name, val);
        return;
    }
    colon = memchr(val, ':', (size_t)(at - val));
    fprintf(out, "%s = %.*s:****%s\n", d->name,
            (int)((colon ? colon : at) - val), val, at);
}

void config_print(const config_t *cfg, FILE *out, config_show what)
{
    for (size_t i = 0; config_params[i].name; i++) {
        const param_def *d = &config_params[i];

        switch (what) {
        case CONFIG_SHOW_EFFECTIVE:
            print_value(out, d, cfg ? cfg->v[i].value : d->def);
            break;
        case CONFIG_SHOW_DEFAULTS:
            fprintf(out, "%s = %s    # %s\n", d->name, d->def, d->doc);
            break;
        case CONFIG_SHOW_CHANGED:
            if (cfg && cfg->v[i].raw)
                print_value(out, d, cfg->v[i].raw);
            break;
        }
    }
}
