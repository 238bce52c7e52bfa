/* dns_cache.c - DNS answers kept for their TTL (see dns_cache.h).
 *
 * A chained hash table finds an entry by (type, name); a doubly linked
 * list keeps the entries in the order they were stored, so the oldest is
 * at its head and goes first when the cache is full.  Entries do not
 * move on a hit: the oldest stored is also, within a factor of the TTL
 * spread, the soonest to expire, and a full cache has no better victim
 * to find in O(1).  The table doubles when it holds more entries than
 * buckets.
 */
#include <string.h>

#include "dns_cache.h"
#include "xalloc.h"

#define BUCKETS_MIN 16

typedef struct entry {
    struct entry *hash_next;
    struct entry *prev, *next;      /* storing order: head is the oldest */
    uint32_t      hash;
    dns_type      type;
    char         *name;             /* lower case, no trailing dot */
    int64_t       expires_ms;
    dns_reply     reply;            /* deep copy; error points into err */
    char         *err;
} entry;

struct dns_cache {
    size_t    max;
    unsigned  max_ttl_s, neg_ttl_s;
    entry   **buckets;
    size_t    nbuckets;             /* a power of two, or 0 before the first put */
    size_t    n;
    entry    *head, *tail;
    uint64_t  hits, misses;
};

/* key_of - name lower-cased, without a trailing dot, into a fresh string. */
static char *key_of(const char *name)
{
    size_t len = strlen(name);
    char *k;

    if (len > 0 && name[len - 1] == '.')
        len--;
    k = xstrndup(name, len);
    for (char *p = k; *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return k;
}

static uint32_t hash_of(dns_type type, const char *key)
{
    uint32_t h = 2166136261u ^ (uint32_t)type;

    for (; *key; key++)
        h = (h ^ (unsigned char)*key) * 16777619u;
    return h;
}

/* reply_copy_into - a deep copy of r into *dst (error text into *err). */
static void reply_copy_into(dns_reply *dst, char **err, const dns_reply *r)
{
    *dst = *r;
    *err = xstrdup(r->error != NULL ? r->error : "");
    dst->error = *err;
    dst->rr = NULL;
    if (r->n > 0) {
        dst->rr = xcalloc(r->n, sizeof(*dst->rr));
        for (size_t i = 0; i < r->n; i++) {
            dst->rr[i].pref = r->rr[i].pref;
            dst->rr[i].text = xstrdup(r->rr[i].text != NULL ? r->rr[i].text : "");
        }
    }
}

static void reply_clear(dns_reply *r)
{
    for (size_t i = 0; i < r->n; i++)
        xfree(&r->rr[i].text);
    xfree(&r->rr);
    r->n = 0;
}

dns_cache_t *dns_cache_new(size_t size, unsigned max_ttl_s, unsigned neg_ttl_s)
{
    dns_cache_t *c = xcalloc(1, sizeof(*c));

    c->max = size;
    c->max_ttl_s = max_ttl_s;
    c->neg_ttl_s = neg_ttl_s;
    return c;
}

static void entry_free(entry **ep)
{
    entry *e = *ep;

    reply_clear(&e->reply);
    xfree(&e->err);
    xfree(&e->name);
    xfree(ep);
}

void dns_cache_free(dns_cache_t **cp)
{
    dns_cache_t *c = *cp;

    if (c == NULL)
        return;
    for (entry *e = c->head, *next; e != NULL; e = next) {
        next = e->next;
        entry_free(&e);
    }
    xfree(&c->buckets);
    xfree(cp);
}

/* find - the entry for (type, key). */
static entry *find(dns_cache_t *c, dns_type type, const char *key, uint32_t h)
{
    if (c->nbuckets == 0)
        return NULL;
    for (entry **pp = &c->buckets[h & (c->nbuckets - 1)]; *pp != NULL; pp = &(*pp)->hash_next) {
        entry *e = *pp;
        if (e->hash == h && e->type == type && strcmp(e->name, key) == 0)
            return e;
    }
    return NULL;
}

/* remove_entry - out of the table and the list, and freed. */
static void remove_entry(dns_cache_t *c, entry *e)
{
    entry **pp = &c->buckets[e->hash & (c->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->hash_next;
    *pp = e->hash_next;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    c->n--;
    entry_free(&e);
}

/* grow - twice the buckets (or the first ones), entries rehashed. */
static void grow(dns_cache_t *c)
{
    size_t nb = c->nbuckets ? c->nbuckets * 2 : BUCKETS_MIN;
    entry **b = xcalloc(nb, sizeof(*b));

    for (entry *e = c->head; e != NULL; e = e->next) {
        size_t i = e->hash & (nb - 1);
        e->hash_next = b[i];
        b[i] = e;
    }
    xfree(&c->buckets);
    c->buckets = b;
    c->nbuckets = nb;
}

bool dns_cache_get(dns_cache_t *c, dns_type type, const char *name, int64_t now_ms,
                   dns_reply **copy)
{
    char *key = key_of(name);
    uint32_t h = hash_of(type, key);
    entry *e = find(c, type, key, h);
    dns_reply *r;
    char *err;

    xfree(&key);
    *copy = NULL;
    if (e != NULL && e->expires_ms <= now_ms) {
        remove_entry(c, e);
        e = NULL;
    }
    if (e == NULL) {
        c->misses++;
        return false;
    }
    c->hits++;
    r = xcalloc(1, sizeof(*r));
    reply_copy_into(r, &err, &e->reply);        /* r->error is err: freed with r */
    r->ttl = r->status == DNS_OK ? (unsigned)((e->expires_ms - now_ms + 999) / 1000) : 0;
    if (r->status == DNS_NOTFOUND)
        r->neg_ttl = (unsigned)((e->expires_ms - now_ms + 999) / 1000);
    *copy = r;
    return true;
}

void dns_cache_reply_free(dns_reply **rp)
{
    dns_reply *r = *rp;
    char *err;

    if (r == NULL)
        return;
    reply_clear(r);
    err = (char *)r->error;
    xfree(&err);
    xfree(rp);
}

/* keep_for - how many seconds reply may be kept (0: not at all). */
static unsigned keep_for(const dns_cache_t *c, const dns_reply *r)
{
    unsigned t;

    switch (r->status) {
    case DNS_OK:
        t = r->ttl;
        return t < c->max_ttl_s ? t : c->max_ttl_s;
    case DNS_NOTFOUND:
        t = r->neg_ttl ? r->neg_ttl : c->neg_ttl_s;
        return t < c->neg_ttl_s ? t : c->neg_ttl_s;
    default:
        return 0;
    }
}

void dns_cache_put(dns_cache_t *c, dns_type type, const char *name, const dns_reply *reply,
                   int64_t now_ms)
{
    char *key = key_of(name);
    uint32_t h = hash_of(type, key);
    entry *e = find(c, type, key, h);
    unsigned keep = keep_for(c, reply);
    size_t i;

    if (e != NULL)
        remove_entry(c, e);
    if (keep == 0 || c->max == 0) {
        xfree(&key);
        return;
    }
    while (c->n >= c->max)
        remove_entry(c, c->head);           /* the oldest, expired or not */
    if (c->n + 1 > c->nbuckets)
        grow(c);
    e = xcalloc(1, sizeof(*e));
    e->hash = h;
    e->type = type;
    e->name = key;
    e->expires_ms = now_ms + 1000 * (int64_t)keep;
    reply_copy_into(&e->reply, &e->err, reply);
    i = h & (c->nbuckets - 1);
    e->hash_next = c->buckets[i];
    c->buckets[i] = e;
    e->prev = c->tail;
    if (c->tail != NULL)
        c->tail->next = e;
    else
        c->head = e;
    c->tail = e;
    c->n++;
}

void dns_cache_stats(const dns_cache_t *c, size_t *entries, uint64_t *hits, uint64_t *misses)
{
    if (entries != NULL)
        *entries = c->n;
    if (hits != NULL)
        *hits = c->hits;
    if (misses != NULL)
        *misses = c->misses;
}
