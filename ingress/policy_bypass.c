/* policy_bypass.c - the bypass lists of the policy checks (see
 * policy_bypass.h).  The lists are short and read at start and SIGHUP:
 * addresses go into one cidr list, names and addresses into plain arrays
 * searched in turn.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "cidr.h"
#include "log.h"
#include "policy_bypass.h"
#include "xalloc.h"

#define LINE_MAX_LEN 1024           /* a line of a bypass file */
#define FILE_ITEMS_MAX 100000       /* items of one bypass file */

typedef struct strv {
    char  **v;
    size_t  n;
} strv;

struct policy_bypass {
    cidr_list_t *nets;              /* NULL: no address item */
    strv         hosts;             /* "mx.example.com": that name */
    strv         suffixes;          /* ".example.com": names under it */
    strv         senders;           /* "user@example.com" */
    strv         domains;           /* "example.com" from "@example.com" */
};

/* the items being collected */
typedef struct build {
    policy_bypass_t *b;
    strv             nets;
} build;

static void strv_add(strv *s, const char *item)
{
    s->v = xrealloc(s->v, (s->n + 1) * sizeof(*s->v));
    s->v[s->n++] = xstrdup(item);
}

static void strv_free(strv *s)
{
    for (size_t i = 0; i < s->n; i++)
        xfree(&s->v[i]);
    xfree(&s->v);
    s->n = 0;
}

/* name_ok - a host or domain name: letters, digits, '-', '_', dots. */
static bool name_ok(const char *s)
{
    size_t len = strlen(s);

    if (len == 0 || len > 253 || s[0] == '.' || s[len - 1] == '.' || strstr(s, ".."))
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return false;
    return true;
}

/* looks_like_address - an IP or CIDR item (cidr_list_parse says if it is good). */
static bool looks_like_address(const char *item)
{
    return item[0] == '[' || strchr(item, ':') != NULL
           || (isdigit((unsigned char)item[0]) && strspn(item, "0123456789./") == strlen(item));
}

/* add_item - one item that is not a file; NULL or what is wrong with it. */
static const char *add_item(build *bd, const char *item)
{
    const char *at = strchr(item, '@');

    if (at != NULL) {
        if (strchr(at + 1, '@') != NULL || !name_ok(at + 1))
            return "not an address: want user@example.com or @example.com";
        if (at == item)
            strv_add(&bd->b->domains, at + 1);
        else
            strv_add(&bd->b->senders, item);
        return NULL;
    }
    if (looks_like_address(item)) {
        const char *one[] = { item, NULL };
        char *err = NULL;
        cidr_list_t *l = cidr_list_parse(one, &err);
        if (l == NULL) {
            xfree(&err);
            return "not an IP address or network";
        }
        cidr_list_free(&l);
        strv_add(&bd->nets, item);
        return NULL;
    }
    if (item[0] == '.') {
        if (!name_ok(item + 1))
            return "not a domain name";
        strv_add(&bd->b->suffixes, item);
        return NULL;
    }
    if (!name_ok(item))
        return "not a host name, address, network or file";
    strv_add(&bd->b->hosts, item);
    return NULL;
}

/* add_file - the items of a file, one a line; false and *err on a problem. */
static bool add_file(build *bd, const char *path, char **err)
{
    FILE *f = fopen(path, "r");
    char line[LINE_MAX_LEN + 2];
    unsigned lineno = 0;
    size_t items = 0;

    if (f == NULL) {
        *err = xasprintf("%s: %s", path, strerror(errno));
        return false;
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        size_t len = strlen(line);
        char *p = line, *end, *hash;
        const char *why;

        lineno++;
        if (len > 0 && line[len - 1] != '\n' && !feof(f)) {
            *err = xasprintf("%s:%u: line longer than %d bytes", path, lineno, LINE_MAX_LEN);
            fclose(f);
            return false;
        }
        if ((hash = strchr(line, '#')) != NULL)
            *hash = '\0';
        while (isspace((unsigned char)*p))
            p++;
        end = p + strlen(p);
        while (end > p && isspace((unsigned char)end[-1]))
            *--end = '\0';
        if (*p == '\0')
            continue;
        if (*p == '/')
            why = "files do not nest";
        else if (++items > FILE_ITEMS_MAX)
            why = "too many items";
        else
            why = add_item(bd, p);
        if (why != NULL) {
            char safe[120];
            *err = xasprintf("%s:%u: %s: %s", path, lineno,
                             log_printable(safe, sizeof(safe), p, strlen(p)), why);
            fclose(f);
            return false;
        }
    }
    fclose(f);
    return true;
}

policy_bypass_t *policy_bypass_open(const char *param, const char *const *items, char **err)
{
    build bd = { xcalloc(1, sizeof(policy_bypass_t)), { NULL, 0 } };

    *err = NULL;
    for (size_t i = 0; items != NULL && items[i] != NULL; i++) {
        const char *why;

        if (items[i][0] == '/') {
            if (!add_file(&bd, items[i], err))
                goto fail;
            continue;
        }
        if ((why = add_item(&bd, items[i])) != NULL) {
            char safe[120];
            *err = xasprintf("%s: %s: %s", param,
                             log_printable(safe, sizeof(safe), items[i], strlen(items[i])),
                             why);
            goto fail;
        }
    }
    if (bd.nets.n > 0) {
        char **v = xrealloc(bd.nets.v, (bd.nets.n + 1) * sizeof(*v));
        v[bd.nets.n] = NULL;
        bd.nets.v = v;
        bd.b->nets = cidr_list_parse((const char *const *)v, err);
        if (bd.b->nets == NULL)
            goto fail;
    }
    strv_free(&bd.nets);
    return bd.b;
fail:
    strv_free(&bd.nets);
    policy_bypass_free(&bd.b);
    return NULL;
}

void policy_bypass_free(policy_bypass_t **bp)
{
    policy_bypass_t *b = *bp;

    if (b == NULL)
        return;
    cidr_list_free(&b->nets);
    strv_free(&b->hosts);
    strv_free(&b->suffixes);
    strv_free(&b->senders);
    strv_free(&b->domains);
    xfree(bp);
}

/* under - is name a subdomain of suffix (".example.com")? */
static bool under(const char *name, const char *suffix)
{
    size_t nl = strlen(name), sl = strlen(suffix);

    return nl > sl && strcasecmp(name + nl - sl, suffix) == 0;
}

bool policy_bypass_client(const policy_bypass_t *b, const struct sockaddr *addr,
                          const char *name)
{
    if (b == NULL)
        return false;
    if (b->nets != NULL && addr != NULL && cidr_list_match(b->nets, addr))
        return true;
    if (name == NULL || name[0] == '\0' || strcmp(name, "unknown") == 0)
        return false;
    for (size_t i = 0; i < b->hosts.n; i++)
        if (strcasecmp(b->hosts.v[i], name) == 0)
            return true;
    for (size_t i = 0; i < b->suffixes.n; i++)
        if (under(name, b->suffixes.v[i]))
            return true;
    return false;
}

bool policy_bypass_address(const policy_bypass_t *b, const char *address)
{
    const char *at;

    if (b == NULL || address == NULL || address[0] == '\0')
        return false;
    for (size_t i = 0; i < b->senders.n; i++)
        if (strcasecmp(b->senders.v[i], address) == 0)
            return true;
    if ((at = strrchr(address, '@')) == NULL)
        return false;
    for (size_t i = 0; i < b->domains.n; i++)
        if (strcasecmp(b->domains.v[i], at + 1) == 0)
            return true;
    return false;
}
