/* alias.c - virtual_alias_maps and alias_maps expansion (see alias.h):
 * a depth-first walk that keeps the path it is on, so that a loop is
 * told apart from an address that keeps a copy of itself. */
#include <ctype.h>
#include <stdbool.h>
#include <string.h>
#include <strings.h>
#include "address.h"
#include "alias.h"
#include "buf.h"
#include "log.h"
#include "map.h"
#include "xalloc.h"

/* How much of a loop's path goes into its status text. */
#define ALIAS_LOOP_TEXT_MAX 400

/* One list of tables. */
typedef struct alias_tables {
    const char *param;      /* "virtual_alias_maps" or "alias_maps" */
    map_t     **maps;
    size_t      n;
} alias_tables;

struct alias {
    alias_tables virtual_maps;
    alias_tables local_maps;
};

/* alias_tables_open - every table param names; -1 with *err. */
static int alias_tables_open(alias_tables *t, const config_t *cfg, const char *param,
                             char **err)
{
    const char *const *specs = config_list(cfg, param);

    t->param = param;
    for (size_t i = 0; specs && specs[i]; i++) {
        char *why = NULL;
        map_t *m = map_open(specs[i], config_dir(cfg), &why);
        if (!m) {
            *err = xasprintf("%s: %s", param, why ? why : specs[i]);
            xfree(&why);
            return -1;
        }
        t->maps = xrealloc(t->maps, (t->n + 1) * sizeof *t->maps);
        t->maps[t->n++] = m;
    }
    return 0;
}

static void alias_tables_close(alias_tables *t)
{
    for (size_t i = 0; i < t->n; i++)
        map_close(&t->maps[i]);
    xfree(&t->maps);
    t->n = 0;
}

alias_t *alias_open(const config_t *cfg, char **err)
{
    alias_t *a = xcalloc(1, sizeof *a);

    *err = NULL;
    if (alias_tables_open(&a->virtual_maps, cfg, "virtual_alias_maps", err) < 0
        || alias_tables_open(&a->local_maps, cfg, "alias_maps", err) < 0) {
        alias_close(&a);
        return NULL;
    }
    return a;
}

void alias_close(alias_t **ap)
{
    alias_t *a = *ap;
    if (!a)
        return;
    alias_tables_close(&a->virtual_maps);
    alias_tables_close(&a->local_maps);
    xfree(ap);
}

void alias_expansion_free(alias_expansion *x)
{
    for (size_t i = 0; i < x->n; i++)
        xfree(&x->addr[i]);
    xfree(&x->addr);
    xfree(&x->error);
    x->n = 0;
}

const char *alias_extension(const char *local, size_t n, const char *delims)
{
    if (!delims || !delims[0])
        return NULL;
    for (size_t i = 1; i < n; i++)
        if (strchr(delims, local[i]))
            return local + i;
    return NULL;
}

/* One address on the path from the recipient to where the walk is. */
typedef struct alias_step {
    char *addr;             /* normalised: lower case, with a domain */
    bool  keeps_copy;       /* its value lists the address itself */
} alias_step;

typedef struct alias_walk {
    alias_t          *a;
    const config_t   *cfg;
    const char       *delims;
    long long         depth_limit, size_limit;
    long long         emitted;      /* finals, duplicates counted */
    alias_step       *path;
    size_t            depth;
    alias_expansion  *out;
} alias_walk;

/* alias_normalise - lower-cased address with a domain (myhostname when
 * it has none). */
static char *alias_normalise(const config_t *cfg, const char *address)
{
    char *lower = strrchr(address, '@') ? xstrdup(address)
                                        : xasprintf("%s@%s", address, config_str(cfg, "myhostname"));
    for (char *p = lower; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    return lower;
}

/* alias_lookup_key - ask every table of t for key: 1 found (*value set),
 * 0 not found, -1 a table cannot answer now. */
static int alias_lookup_key(const alias_tables *t, const char *key, char **value)
{
    for (size_t i = 0; i < t->n; i++) {
        switch (map_lookup(t->maps[i], key, value)) {
        case MAP_NOTFOUND:
            continue;
        case MAP_ERROR:
            log_warn("%s: %s: lookup of %s failed; routing waits", t->param,
                     map_spec(t->maps[i]), key);
            return -1;
        case MAP_FOUND:
            return 1;
        }
    }
    return 0;
}

/* alias_bad_value - the warning for a value that is not allowed. */
static void alias_bad_value(const alias_tables *t, const char *key, const char *value,
                            const char *why)
{
    char v[200];
    log_printable(v, sizeof v, value, strlen(value));
    log_warn("%s: %s: bad value \"%s\": %s; routing waits", t->param, key, v, why);
}

/* alias_split - the addresses of value, each made complete: a bare name
 * gets @domain (alias_maps only), ext goes before the '@' (when not
 * NULL).  NULL (a warning logged) when value holds an item that is not
 * allowed. */
static char **alias_split(const alias_tables *t, bool local, const char *key,
                          const char *value, const char *domain, const char *ext,
                          size_t *n)
{
    static const char seps[] = ", \t\r\n";
    char **items = NULL;
    const char *why = NULL;

    *n = 0;
    for (const char *p = value + strspn(value, seps); *p && !why; p += strspn(p, seps)) {
        size_t len = strcspn(p, seps);
        char *item = xmemdup(p, len);
        const char *at = strrchr(item, '@');
        p += len;
        if (local && (item[0] == '|' || item[0] == '/' || strncasecmp(item, ":include:", 9) == 0))
            why = "commands, files and :include: are not supported";
        else if (!at && !local)
            why = "an address without a domain";
        else if (at && (at == item || !at[1]))
            why = "an empty local part or domain";
        if (why) {
            xfree(&item);
            break;
        }
        char *full = at ? xstrdup(item) : xasprintf("%s@%s", item, domain);
        xfree(&item);
        if (ext) {
            const char *fat = strrchr(full, '@');
            char *with = xasprintf("%.*s%s%s", (int)(fat - full), full, ext, fat);
            xfree(&full);
            full = with;
        }
        if (strlen(full) > ADDR_PATH_MAX) {
            why = "an address longer than 256 octets";
            xfree(&full);
            break;
        }
        items = xrealloc(items, (*n + 1) * sizeof *items);
        items[(*n)++] = full;
    }
    if (!why && *n == 0)
        why = "no address";
    if (why) {
        alias_bad_value(t, key, value, why);
        for (size_t i = 0; i < *n; i++)
            xfree(&items[i]);
        xfree(&items);
        *n = 0;
    }
    return items;
}

/* alias_lookup - what the tables say for addr (given, normalised): 1 with
 * *items (n of them, malloc'ed), 0 nothing, -1 cannot tell now. */
static int alias_lookup(alias_walk *w, const char *given, const char *addr, char ***items,
                        size_t *n, const char **table)
{
    const char *at = strrchr(addr, '@');
    const char *domain = at + 1;
    size_t local_len = (size_t)(at - addr);
    const char *ext = alias_extension(addr, local_len, w->delims);
    char *keys[3] = {NULL, NULL, NULL};
    char *value = NULL;
    int found = 0;
    size_t k;

    /* virtual(5): user@domain, user@domain without extension, @domain */
    keys[0] = xstrdup(addr);
    if (ext)
        keys[1] = xasprintf("%.*s%s", (int)(ext - addr), addr, at);
    keys[2] = xstrdup(at);
    for (k = 0; k < 3 && found == 0; k++)
        if (keys[k])
            found = alias_lookup_key(&w->a->virtual_maps, keys[k], &value);
    if (found == 1) {
        /* the extension an alias did not match travels on (user+foo -> bob+foo) */
        size_t ext_at = ext ? (size_t)(ext - addr) : 0;
        char *orig_ext = ext && k > 1 ? xmemdup(given + ext_at, local_len - ext_at) : NULL;
        *table = "virtual_alias_maps";
        *items = alias_split(&w->a->virtual_maps, false, keys[k - 1], value, domain, orig_ext, n);
        xfree(&orig_ext);
        found = *items ? 1 : -1;
    }
    for (k = 0; k < 3; k++)
        xfree(&keys[k]);
    xfree(&value);
    if (found != 0 || !domain_list_match(config_list(w->cfg, "mydestination"), domain))
        return found;

    /* aliases(5): the local part, then without its extension */
    keys[0] = xmemdup(addr, local_len);
    if (ext)
        keys[1] = xmemdup(addr, (size_t)(ext - addr));
    for (k = 0; k < 2 && found == 0; k++)
        if (keys[k])
            found = alias_lookup_key(&w->a->local_maps, keys[k], &value);
    if (found == 1) {
        *table = "alias_maps";
        *items = alias_split(&w->a->local_maps, true, keys[k - 1], value, domain, NULL, n);
        found = *items ? 1 : -1;
    }
    for (k = 0; k < 2; k++)
        xfree(&keys[k]);
    xfree(&value);
    return found;
}

/* alias_fail - the recipient cannot be delivered: text says why. */
static int alias_fail(alias_walk *w, char *text)
{
    w->out->error = text;
    return 1;
}

/* alias_emit - one final address, dropped when already there. */
static int alias_emit(alias_walk *w, const char *address, const char *norm)
{
    if (++w->emitted > w->size_limit)
        return alias_fail(w, xstrdup(ALIAS_TOO_LARGE_TEXT));
    for (size_t i = 0; i < w->out->n; i++) {
        char *other = alias_normalise(w->cfg, w->out->addr[i]);
        bool same = strcmp(other, norm) == 0;
        xfree(&other);
        if (same)
            return 0;
    }
    w->out->addr = xrealloc(w->out->addr, (w->out->n + 1) * sizeof *w->out->addr);
    w->out->addr[w->out->n++] = xstrdup(address);
    return 0;
}

/* alias_loop_text - "5.4.6 alias loop: a@x -> b@y -> a@x". */
static char *alias_loop_text(const alias_walk *w, const char *again)
{
    buf_t b = BUF_INIT;
    buf_append_str(&b, "5.4.6 alias loop: ");
    for (size_t i = 0; i < w->depth; i++) {
        buf_append_str(&b, w->path[i].addr);
        buf_append_str(&b, " -> ");
    }
    buf_append_str(&b, again);
    char *text = buf_steal(&b, NULL);
    if (strlen(text) > ALIAS_LOOP_TEXT_MAX)
        strcpy(text + ALIAS_LOOP_TEXT_MAX - 3, "...");
    return text;
}

/* alias_walk_from - expand address: 0 done, 1 the recipient fails
 * (out->error set), -1 a table cannot tell now. */
static int alias_walk_from(alias_walk *w, const char *address)
{
    char *norm = alias_normalise(w->cfg, address);
    char **items = NULL;
    size_t n = 0;
    const char *table = "";
    int rc;

    rc = alias_lookup(w, address, norm, &items, &n, &table);
    if (rc <= 0) {
        if (rc == 0)
            rc = alias_emit(w, address, norm);
        xfree(&norm);
        return rc;
    }
    if ((long long)w->depth + 1 > w->depth_limit) {
        for (size_t i = 0; i < n; i++)
            xfree(&items[i]);
        xfree(&items);
        xfree(&norm);
        return alias_fail(w, xstrdup(ALIAS_TOO_DEEP_TEXT));
    }
    if (w->depth == 0) {
        w->out->expanded = true;
        w->out->table = table;
    }
    alias_step *step = &w->path[w->depth];
    step->addr = norm;
    step->keeps_copy = false;
    for (size_t i = 0; i < n; i++) {
        char *in = alias_normalise(w->cfg, items[i]);
        if (strcmp(in, norm) == 0)
            step->keeps_copy = true;
        xfree(&in);
    }
    w->depth++;
    rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char *in = alias_normalise(w->cfg, items[i]);
        size_t on_path = w->depth;
        for (size_t j = 0; j < w->depth; j++)
            if (strcmp(w->path[j].addr, in) == 0)
                on_path = j;
        if (on_path == w->depth)
            rc = alias_walk_from(w, items[i]);
        else if (w->path[on_path].keeps_copy)
            rc = alias_emit(w, items[i], in);      /* "a@x  a@x, b@y" */
        else
            rc = alias_fail(w, alias_loop_text(w, in));
        xfree(&in);
    }
    w->depth--;
    xfree(&step->addr);
    for (size_t i = 0; i < n; i++)
        xfree(&items[i]);
    xfree(&items);
    return rc;
}

int alias_expand(alias_t *a, const config_t *cfg, const char *address, alias_expansion *out)
{
    alias_walk w = {
        .a = a,
        .cfg = cfg,
        .delims = config_str(cfg, "recipient_delimiter"),
        .depth_limit = config_int(cfg, "virtual_alias_recursion_limit"),
        .size_limit = config_int(cfg, "virtual_alias_expansion_limit"),
        .out = out,
    };
    int rc;

    memset(out, 0, sizeof *out);
    out->table = "";
    w.path = xcalloc((size_t)w.depth_limit + 2, sizeof *w.path);
    rc = alias_walk_from(&w, address);
    xfree(&w.path);
    if (rc < 0) {
        alias_expansion_free(out);
        return -1;
    }
    if (rc > 0) {           /* no address of a failed recipient is delivered */
        for (size_t i = 0; i < out->n; i++)
            xfree(&out->addr[i]);
        out->n = 0;
    }
    return 0;
}
