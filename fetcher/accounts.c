/* accounts.c - reading the remote accounts file (see accounts.h). */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "accounts.h"
#include "address.h"
#include "fsutil.h"
#include "xalloc.h"

#define ACCOUNTS_FILE_MAX   (4 * 1024 * 1024)   /* a bigger file is a mistake */
#define ACCOUNTS_MAX        10000
#define ACCOUNTS_VALUE_MAX  1024
#define INTERVAL_MIN_MS     (10 * 1000)
#define INTERVAL_MAX_MS     (24 * 3600 * 1000LL)

typedef struct parse_ctx {
    const char       *path;
    const char       *config_dir;
    fetch_accounts_t *a;
    fetch_account    *cur;
    bool              port_set;
    int               lineno;
    char             *err;
} parse_ctx;

static void fail(parse_ctx *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(parse_ctx *p, const char *fmt, ...)
{
    char what[600];
    va_list ap;

    if (p->err)
        return;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    p->err = xasprintf("%s:%d: %s", p->path, p->lineno, what);
}

void accounts_free(fetch_accounts_t **ap)
{
    fetch_accounts_t *a = *ap;

    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        account_clear(&a->v[i]);
    xfree(&a->v);
    xfree(&a->path);
    xfree(ap);
}

const fetch_account *accounts_find(const fetch_accounts_t *a, const char *name)
{
    for (size_t i = 0; a && i < a->n; i++)
        if (strcmp(a->v[i].name, name) == 0)
            return &a->v[i];
    return NULL;
}

/* parse_bool - yes/no (true/false, on/off, 1/0); -1 if neither. */
static int parse_bool(const char *v)
{
    if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcasecmp(v, "on") || !strcmp(v, "1"))
        return 1;
    if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcasecmp(v, "off") || !strcmp(v, "0"))
        return 0;
    return -1;
}

/* parse_interval - "300", "30s", "5m", "2h", "1d" into milliseconds;
 * -1 when malformed. */
static int64_t parse_interval(const char *v)
{
    char *end;
    long long n;
    int64_t unit = 1000;

    errno = 0;
    n = strtoll(v, &end, 10);
    if (errno || end == v || n < 0 || n > 100000000LL)
        return -1;
    if (!strcmp(end, "") || !strcmp(end, "s"))
        unit = 1000;
    else if (!strcmp(end, "m"))
        unit = 60 * 1000;
    else if (!strcmp(end, "h"))
        unit = 3600 * 1000;
    else if (!strcmp(end, "d"))
        unit = 24 * 3600 * 1000LL;
    else
        return -1;
    return (int64_t)n * unit;
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= ACCOUNT_NAME_MAX
           && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")
                  == n;
}

/* address_ok - a plain local@domain mailbox as RCPT TO would take it. */
static bool address_ok(const char *s)
{
    char bracketed[ADDR_PATH_MAX + 3];
    smtp_path path;
    size_t n = strlen(s), used = 0;

    if (n == 0 || n > ADDR_PATH_MAX || !strchr(s, '@'))
        return false;
    snprintf(bracketed, sizeof(bracketed), "<%s>", s);
    return smtp_path_parse(bracketed, n + 2, false, &path, &used) == PATH_OK && used == n + 2;
}

static bool domain_ok(const char *s)
{
    size_t n = strlen(s);

    return n > 0 && n <= ADDR_DOMAIN_MAX && s[0] != '.' && s[0] != '-'
           && strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") == n;
}

/* finish - check the block that just ended and fill its defaults. */
static void finish(parse_ctx *p)
{
    fetch_account *ac = p->cur;
    int saved = p->lineno;

    if (!ac || p->err)
        return;
    p->lineno = ac->line;
    if (!ac->srv.host)
        fail(p, "account %s: no server", ac->name);
    else if (!ac->srv.user)
        fail(p, "account %s: no user", ac->name);
    else if (!ac->srv.password)
        fail(p, "account %s: no password", ac->name);
    else if (!ac->forward_to)
        fail(p, "account %s: no forward_to (the local address that gets its mail)", ac->name);
    if (!p->port_set) {
        bool tls = ac->srv.tls == MAILBOX_TLS_IMPLICIT;
        ac->srv.port = ac->srv.protocol == MAILBOX_IMAP ? (tls ? 993 : 143) : (tls ? 995 : 110);
    }
    if (!ac->srv.folder && ac->srv.protocol == MAILBOX_IMAP)
        ac->srv.folder = xstrdup("INBOX");
    p->lineno = saved;
    p->cur = NULL;
}

/* keyword - one `keyword value` line inside a block. */
static void keyword(parse_ctx *p, const char *key, const char *val)
{
    fetch_account *ac = p->cur;
    int b;

    if (!ac) {
        fail(p, "'%s' outside an account block (start one with: account NAME)", key);
        return;
    }
    if (!*val) {
        fail(p, "%s: no value", key);
        return;
    }
#define SET_STR(field)                                                                  \
    do {                                                                                \
        if (field) {                                                                    \
            fail(p, "%s given twice", key);                                             \
            return;                                                                     \
        }                                                                               \
        field = xstrdup(val);                                                           \
    } while (0)
    if (!strcmp(key, "server")) {
        if (!domain_ok(val) && !strchr(val, ':'))
            fail(p, "server: '%s' is not a host name or address", val);
        else
            SET_STR(ac->srv.host);
    } else if (!strcmp(key, "port")) {
        char *end;
        long n = strtol(val, &end, 10);
        if (*end || n < 1 || n > 65535)
            fail(p, "port: '%s' is not a port number", val);
        ac->srv.port = (unsigned)n;
        p->port_set = true;
    } else if (!strcmp(key, "protocol")) {
        if (!strcasecmp(val, "imap"))
            ac->srv.protocol = MAILBOX_IMAP;
        else if (!strcasecmp(val, "pop3"))
            ac->srv.protocol = MAILBOX_POP3;
        else
            fail(p, "protocol: '%s': use imap or pop3", val);
    } else if (!strcmp(key, "tls")) {
        if (!strcasecmp(val, "implicit"))
            ac->srv.tls = MAILBOX_TLS_IMPLICIT;
        else if (!strcasecmp(val, "starttls"))
            ac->srv.tls = MAILBOX_TLS_STARTTLS;
        else if (!strcasecmp(val, "none"))
            ac->srv.tls = MAILBOX_TLS_NONE;
        else
            fail(p, "tls: '%s': use implicit, starttls or none", val);
    } else if (!strcmp(key, "verify")) {
        if ((b = parse_bool(val)) < 0)
            fail(p, "verify: '%s': use yes or no", val);
        ac->srv.verify = b == 1;
    } else if (!strcmp(key, "ca_file")) {
        if (ac->srv.ca_file)
            fail(p, "%s given twice", key);
        else if (val[0] == '/')
            ac->srv.ca_file = xstrdup(val);
        else
            ac->srv.ca_file = xasprintf("%s/%s", p->config_dir, val);
    } else if (!strcmp(key, "user")) {
        SET_STR(ac->srv.user);
    } else if (!strcmp(key, "password")) {
        SET_STR(ac->srv.password);
    } else if (!strcmp(key, "folder")) {
        SET_STR(ac->srv.folder);
    } else if (!strcmp(key, "forward_to")) {
        if (!address_ok(val))
            fail(p, "forward_to: '%s' is not an address (local@domain)", val);
        else
            SET_STR(ac->forward_to);
    } else if (!strcmp(key, "keep")) {
        if ((b = parse_bool(val)) < 0)
            fail(p, "keep: '%s': use yes or no", val);
        ac->keep = b == 1;
    } else if (!strcmp(key, "interval")) {
        int64_t ms = parse_interval(val);
        if (ms < INTERVAL_MIN_MS || ms > INTERVAL_MAX_MS)
            fail(p, "interval: '%s': a time from 10s to 1d (30s, 5m, 2h)", val);
        ac->interval_ms = ms;
    } else if (!strcmp(key, "domain_pop")) {
        if (!domain_ok(val) || !strchr(val, '.'))
            fail(p, "domain_pop: '%s' is not a domain", val);
        else
            SET_STR(ac->domain_pop);
    } else if (!strcmp(key, "ignore_received_for")) {
        if ((b = parse_bool(val)) < 0)
            fail(p, "ignore_received_for: '%s': use yes or no", val);
        ac->ignore_received_for = b == 1;
    } else {
        fail(p, "unknown keyword '%s'", key);
    }
#undef SET_STR
}

/* start - an `account NAME` line. */
static void start(parse_ctx *p, const char *name, int64_t interval_ms, int64_t timeout_ms)
{
    fetch_accounts_t *a = p->a;
    fetch_account *ac;

    finish(p);
    if (p->err)
        return;
    if (!name_ok(name)) {
        fail(p, "account name '%s': use 1-64 letters, digits, '.', '_', '-', '@'", name);
        return;
    }
    if (accounts_find(a, name)) {
        fail(p, "account %s defined twice", name);
        return;
    }
    if (a->n == ACCOUNTS_MAX) {
        fail(p, "more than %d accounts", ACCOUNTS_MAX);
        return;
    }
    a->v = xrealloc(a->v, (a->n + 1) * sizeof(*a->v));
    ac = &a->v[a->n++];
    memset(ac, 0, sizeof(*ac));
    ac->name = xstrdup(name);
    ac->line = p->lineno;
    ac->srv.protocol = MAILBOX_IMAP;
    ac->srv.tls = MAILBOX_TLS_IMPLICIT;
    ac->srv.verify = true;
    ac->srv.timeout_ms = timeout_ms;
    ac->keep = true;
    ac->interval_ms = interval_ms;
    ac->ignore_received_for = true;
    p->cur = ac;
    p->port_set = false;
}

fetch_accounts_t *accounts_load(const char *path, const char *config_dir,
                                int64_t default_interval_ms, int64_t timeout_ms, char **err)
{
    parse_ctx p = {.path = path, .config_dir = config_dir};
    struct stat sb;
    char *text, *line, *next;
    size_t len;

    p.a = xcalloc(1, sizeof(*p.a));
    p.a->path = xstrdup(path);
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return p.a;
        *err = xasprintf("%s: %s", path, strerror(errno));
        accounts_free(&p.a);
        return NULL;
    }
    if (sb.st_mode & (S_IRWXG | S_IRWXO)) {
        *err = xasprintf("%s: must not be readable by others (chmod 600)", path);
        accounts_free(&p.a);
        return NULL;
    }
    if (!S_ISREG(sb.st_mode) || sb.st_size > ACCOUNTS_FILE_MAX) {
        *err = xasprintf("%s: not a regular file of at most %d bytes", path, ACCOUNTS_FILE_MAX);
        accounts_free(&p.a);
        return NULL;
    }
    if ((text = fs_read_file(path, &len)) == NULL) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        accounts_free(&p.a);
        return NULL;
    }
    if (memchr(text, '\0', len)) {
        p.lineno = 1;
        fail(&p, "%s", "the file holds a NUL byte");
    }
    for (line = text; line && !p.err; line = next) {
        char *key, *val, *end;

        p.lineno++;
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        end = line + strlen(line);
        while (end > line && isspace((unsigned char)end[-1]))
            *--end = '\0';
        while (isspace((unsigned char)*line))
            line++;
        if (!*line || *line == '#')
            continue;
        if (end - line > ACCOUNTS_VALUE_MAX) {
            fail(&p, "line longer than %d bytes", ACCOUNTS_VALUE_MAX);
            break;
        }
        key = line;
        val = key + strcspn(key, " \t");
        if (*val)
            *val++ = '\0';
        while (isspace((unsigned char)*val))
            val++;
        if (!strcmp(key, "account"))
            start(&p, val, default_interval_ms, timeout_ms);
        else
            keyword(&p, key, val);
    }
    finish(&p);
    explicit_bzero(text, len);
    xfree(&text);
    if (p.err) {
        *err = p.err;
        accounts_free(&p.a);
        return NULL;
    }
    return p.a;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

void account_copy(fetch_account *dst, const fetch_account *src)
{
    *dst = *src;
    dst->name = xstrdup(src->name);
    dst->srv.host = xstrdup(src->srv.host);
    dst->srv.ca_file = dup_or_null(src->srv.ca_file);
    dst->srv.user = xstrdup(src->srv.user);
    dst->srv.password = xstrdup(src->srv.password);
    dst->srv.folder = dup_or_null(src->srv.folder);
    dst->forward_to = xstrdup(src->forward_to);
    dst->domain_pop = dup_or_null(src->domain_pop);
}

void account_clear(fetch_account *ac)
{
    xfree(&ac->name);
    xfree(&ac->srv.host);
    xfree(&ac->srv.ca_file);
    xfree(&ac->srv.user);
    if (ac->srv.password) {
        explicit_bzero((char *)ac->srv.password, strlen(ac->srv.password));
        xfree(&ac->srv.password);
    }
    xfree(&ac->srv.folder);
    xfree(&ac->forward_to);
    xfree(&ac->domain_pop);
}
