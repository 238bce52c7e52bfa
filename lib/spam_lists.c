/* spam_lists.c - white and black lists and keyword points in LMDB (see
 * spam_lists.h for the model and the precedence rules).
 *
 * One unnamed database; keys "scope\0K\0value" with K one of 'b', 'k',
 * 'w', so that a cursor walks one scope, or one scope's keywords, as a
 * range, sorted by scope, kind and value.
 */
#include <ctype.h>
#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "address.h"
#include "buf.h"
#include "fsutil.h"
#include "lmdb_util.h"
#include "log.h"
#include "spam_lists.h"
#include "xalloc.h"

/* Largest size of the environment (a sparse file); lists are small. */
#define SPAM_LISTS_MAP_SIZE (256UL * 1024 * 1024)

struct spam_lists {
    MDB_env *env;
    MDB_dbi  dbi;
    bool     writable;
};

static const char spam_lists_kind_char[] = {
    [SPAM_LISTS_WHITELIST] = 'w', [SPAM_LISTS_BLACKLIST] = 'b', [SPAM_LISTS_KEYWORD] = 'k',
};

/* lists_err - *err = formatted text (malloc'ed); returns -1. */
static int lists_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int lists_err(char **err, const char *fmt, ...)
{
    va_list ap;
    buf_t b = BUF_INIT;

    va_start(ap, fmt);
    buf_vprintf(&b, fmt, ap);
    va_end(ap);
    if (err)
        *err = buf_steal(&b, NULL);
    else
        buf_free(&b);
    return -1;
}

spam_lists_t *spam_lists_open(const char *dir, bool writable, bool *missing, char **err)
{
    spam_lists_t *l;
    MDB_txn *txn;
    int rc;

    char *why = NULL;
    MDB_env *env = lmdb_env_open_shared(dir, "lists", writable, SPAM_LISTS_MAP_SIZE, 0, missing,
                                        &why);
    if (!env) {
        lists_err(err, "%s", why);
        xfree(&why);
        return NULL;
    }
    l = xcalloc(1, sizeof *l);
    l->writable = writable;
    l->env = env;
    if ((rc = mdb_txn_begin(l->env, NULL, writable ? 0 : MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &l->dbi)) != 0 ||
        (rc = mdb_txn_commit(txn)) != 0) {
        lists_err(err, "cannot open the lists database in %s: %s", dir, mdb_strerror(rc));
        mdb_env_close(l->env);
        xfree(&l);
        return NULL;
    }
    if (writable) {         /* free the slots of classifiers that died in a read */
        int dead = 0;
        (void)mdb_reader_check(l->env, &dead);
    }
    return l;
}

void spam_lists_close(spam_lists_t **l)
{
    if (*l == NULL)
        return;
    mdb_env_close((*l)->env);
    xfree(l);
}

bool spam_lists_kind_parse(const char *word, spam_lists_kind *kind)
{
    static const char *const names[] = {"whitelist", "blacklist", "keyword"};

    for (int i = 0; i < 3; i++)
        if (strcmp(word, names[i]) == 0) {
            *kind = (spam_lists_kind)i;
            return true;
        }
    return false;
}

const char *spam_lists_kind_name(spam_lists_kind kind)
{
    switch (kind) {
    case SPAM_LISTS_WHITELIST: return "whitelist";
    case SPAM_LISTS_BLACKLIST: return "blacklist";
    case SPAM_LISTS_KEYWORD:   return "keyword";
    }
    log_panic("spam_lists_kind_name: kind %d", (int)kind);
}

const char *spam_lists_level_name(spam_lists_level level)
{
    switch (level) {
    case SPAM_LISTS_USER:   return "USER";
    case SPAM_LISTS_DOMAIN: return "DOMAIN";
    case SPAM_LISTS_SERVER: return "SERVER";
    default:                return "NONE";
    }
}

/* lists_domain_ok - letters, digits, '-', '_' and dots between labels. */
static bool lists_domain_ok(const char *d)
{
    size_t n = strlen(d);

    if (n == 0 || n > SPAM_LISTS_SCOPE_MAX || d[0] == '.' || d[n - 1] == '.' ||
        strstr(d, "..") != NULL)
        return false;
    for (const char *p = d; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '_' && *p != '.')
            return false;
    return true;
}

/* lists_address_ok - "local@domain" with a printable local part. */
static bool lists_address_ok(const char *a)
{
    const char *at = strrchr(a, '@');

    if (at == NULL || at == a || strchr(a, '@') != at || strlen(a) > SPAM_LISTS_SCOPE_MAX)
        return false;
    for (const char *p = a; p < at; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return lists_domain_ok(at + 1);
}

char *spam_lists_scope_norm(const char *scope, char **err)
{
    char *s;

    if (strcmp(scope, "*") == 0)
        return xstrdup("*");
    s = address_lower(scope);
    if (strchr(s, '@') ? !lists_address_ok(s) : !lists_domain_ok(s)) {
        lists_err(err, "bad scope \"%.100s\": use *, a domain or an address", scope);
        xfree(&s);
    }
    return s;
}

/* lists_keyword_norm - lower-case, trim, one space for each run of white
 * space; NULL when empty or with control characters. */
static char *lists_keyword_norm(const char *value)
{
    buf_t b = BUF_INIT;
    bool space = false;

    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            space = b.len > 0;
            continue;
        }
        if (*p < ' ' || *p == 0x7f) {
            buf_free(&b);
            return NULL;
        }
        if (space)
            buf_append_char(&b, ' ');
        space = false;
        buf_append_char(&b, (char)tolower(*p));
    }
    if (b.len == 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, NULL);
}

char *spam_lists_value_norm(spam_lists_kind kind, const char *value, char **err)
{
    char *v;

    if (kind == SPAM_LISTS_KEYWORD) {
        v = lists_keyword_norm(value);
        if (v == NULL || strlen(v) > SPAM_LISTS_VALUE_MAX) {
            lists_err(err, "bad keyword \"%.100s\": 1 to %d characters, no control characters",
                      value, SPAM_LISTS_VALUE_MAX);
            xfree(&v);
        }
        return v;
    }
    if (value[0] == '@')
        value++;
    else if (strchr(value, '@') != NULL) {
        v = address_lower(value);
        if (!lists_address_ok(v) || strlen(v) > SPAM_LISTS_VALUE_MAX) {
            lists_err(err, "bad sender \"%.100s\": use an address or @domain", value);
            xfree(&v);
        }
        return v;
    }
    v = address_lower(value);
    if (!lists_domain_ok(v) || strlen(v) >= SPAM_LISTS_VALUE_MAX) {
        lists_err(err, "bad sender domain \"%.100s\": use an address or @domain", value);
        xfree(&v);
        return NULL;
    }
    char *d = xasprintf("@%s", v);
    xfree(&v);
    return d;
}

/* lists_key - "scope\0K\0value" into b; its length is b->len. */
static void lists_key(buf_t *b, const char *scope, spam_lists_kind kind, const char *value)
{
    buf_reset(b);
    buf_append(b, scope, strlen(scope) + 1);
    buf_append_char(b, spam_lists_kind_char[kind]);
    buf_append_char(b, 0);
    if (value)
        buf_append(b, value, strlen(value));
}

/* lists_write - put (points: the data) or delete one normalised key. */
static int lists_write(spam_lists_t *l, const char *scope, spam_lists_kind kind,
                       const char *value, const char *data, char **err)
{
    buf_t kb = BUF_INIT;
    MDB_txn *txn;
    MDB_val k, d;
    int rc, result = 0;

    if (!l->writable)
        return lists_err(err, "the lists are open read-only");
    lists_key(&kb, scope, kind, value);
    k.mv_data = kb.data;
    k.mv_size = kb.len;
    if ((rc = mdb_txn_begin(l->env, NULL, 0, &txn)) != 0) {
        buf_free(&kb);
        return lists_err(err, "cannot begin a write transaction: %s", mdb_strerror(rc));
    }
    if (data) {
        d.mv_data = (void *)data;
        d.mv_size = strlen(data);
        rc = mdb_put(txn, l->dbi, &k, &d, 0);
        result = 0;
    } else {
        rc = mdb_del(txn, l->dbi, &k, NULL);
        result = rc == 0 ? 1 : 0;
        if (rc == MDB_NOTFOUND)
            rc = 0;
    }
    buf_free(&kb);
    if (rc != 0) {
        mdb_txn_abort(txn);
        return lists_err(err, "cannot change the lists: %s%s", mdb_strerror(rc),
                         rc == MDB_MAP_FULL ? " (the lists are full)" : "");
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return lists_err(err, "cannot commit to the lists: %s (is the disk full?)",
                         mdb_strerror(rc));
    return result;
}

/* lists_norm - normalised scope and value, or -1 with *err. */
static int lists_norm(const char *scope, spam_lists_kind kind, const char *value,
                      char **s, char **v, char **err)
{
    *v = NULL;
    if ((*s = spam_lists_scope_norm(scope, err)) == NULL)
        return -1;
    if ((*v = spam_lists_value_norm(kind, value, err)) == NULL) {
        xfree(s);
        return -1;
    }
    return 0;
}

int spam_lists_add(spam_lists_t *l, const char *scope, spam_lists_kind kind,
                   const char *value, double points, char **err)
{
    char *s, *v, pts[64] = "";
    int rc;

    if (kind == SPAM_LISTS_KEYWORD &&
        (!isfinite(points) || points == 0.0 || fabs(points) > SPAM_LISTS_POINTS_MAX))
        return lists_err(err, "keyword points must be nonzero, between -%g and %g",
                         SPAM_LISTS_POINTS_MAX, SPAM_LISTS_POINTS_MAX);
    if (lists_norm(scope, kind, value, &s, &v, err) < 0)
        return -1;
    if (kind == SPAM_LISTS_KEYWORD)
        snprintf(pts, sizeof pts, "%.17g", points);
    rc = lists_write(l, s, kind, v, pts, err);
    xfree(&s);
    xfree(&v);
    return rc;
}

int spam_lists_del(spam_lists_t *l, const char *scope, spam_lists_kind kind,
                   const char *value, char **err)
{
    char *s, *v;
    int rc;

    if (lists_norm(scope, kind, value, &s, &v, err) < 0)
        return -1;
    rc = lists_write(l, s, kind, v, NULL, err);
    xfree(&s);
    xfree(&v);
    return rc;
}

/* lists_read_txn - a read transaction that sees the latest commit. */
static int lists_read_txn(spam_lists_t *l, MDB_txn **txn, char **err)
{
    int rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn);

    if (rc == MDB_MAP_RESIZED) {    /* the writer grew the map */
        mdb_env_set_mapsize(l->env, 0);
        rc = mdb_txn_begin(l->env, NULL, MDB_RDONLY, txn);
    }
    if (rc != 0)
        return lists_err(err, "cannot read the lists: %s", mdb_strerror(rc));
    return 0;
}

/* lists_points - the points of a keyword entry's data (0 when bad). */
static double lists_points(const MDB_val *d)
{
    char tmp[64];
    double p;
    char *end;

    if (d->mv_size == 0 || d->mv_size >= sizeof tmp)
        return 0;
    memcpy(tmp, d->mv_data, d->mv_size);
    tmp[d->mv_size] = 0;
    p = strtod(tmp, &end);
    return *end == 0 && isfinite(p) ? p : 0;
}

/* lists_kind_of - the kind whose key letter is c; false for none. */
static bool lists_kind_of(char c, spam_lists_kind *kind)
{
    for (int i = 0; i < 3; i++)
        if (spam_lists_kind_char[i] == c) {
            *kind = (spam_lists_kind)i;
            return true;
        }
    return false;
}

long spam_lists_show(spam_lists_t *l, const char *scope, spam_lists_entry **out, char **err)
{
    char *s = NULL;
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, d;
    size_t n = 0, cap = 0, plen = 0;
    MDB_cursor_op op = MDB_FIRST;
    int rc;

    *out = NULL;
    if (scope && (s = spam_lists_scope_norm(scope, err)) == NULL)
        return -1;
    if (lists_read_txn(l, &txn, err) < 0) {
        xfree(&s);
        return -1;
    }
    if ((rc = mdb_cursor_open(txn, l->dbi, &cur)) != 0) {
        mdb_txn_abort(txn);
        xfree(&s);
        return lists_err(err, "cannot read the lists: %s", mdb_strerror(rc));
    }
    if (s) {
        plen = strlen(s) + 1;     /* "scope\0" */
        k.mv_data = s;
        k.mv_size = plen;
        op = MDB_SET_RANGE;
    }
    for (; (rc = mdb_cursor_get(cur, &k, &d, op)) == 0; op = MDB_NEXT) {
        const char *key = k.mv_data, *nul = memchr(key, 0, k.mv_size);
        spam_lists_kind kind;

        if (s && (k.mv_size < plen || memcmp(key, s, plen) != 0))
            break;
        if (nul == NULL || (size_t)(nul - key) + 3 > k.mv_size || nul[2] != 0 ||
            !lists_kind_of(nul[1], &kind))
            continue;           /* not ours: skip */
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            *out = xrealloc(*out, cap * sizeof **out);
        }
        (*out)[n].scope = xstrdup(key);
        (*out)[n].kind = kind;
        (*out)[n].value = xstrndup(nul + 3, k.mv_size - (size_t)(nul + 3 - key));
        (*out)[n].points = kind == SPAM_LISTS_KEYWORD ? lists_points(&d) : 0;
        n++;
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    xfree(&s);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        spam_lists_entries_free(out, n);
        return lists_err(err, "cannot read the lists: %s", mdb_strerror(rc));
    }
    return (long)n;
}

void spam_lists_entries_free(spam_lists_entry **entries, size_t n)
{
    if (*entries == NULL)
        return;
    for (size_t i = 0; i < n; i++) {
        xfree(&(*entries)[i].scope);
        xfree(&(*entries)[i].value);
    }
    xfree(entries);
}

/* lists_has - is the key (scope, kind, value) there?  -1 on a read error. */
static int lists_has(spam_lists_t *l, MDB_txn *txn, buf_t *kb, const char *scope,
                     spam_lists_kind kind, const char *value)
{
    MDB_val k, d;
    int rc;

    lists_key(kb, scope, kind, value);
    k.mv_data = kb->data;
    k.mv_size = kb->len;
    rc = mdb_get(txn, l->dbi, &k, &d);
    return rc == 0 ? 1 : rc == MDB_NOTFOUND ? 0 : -1;
}

/* lists_decide - does scope list sender (lower-cased)?  1 with *white
 * set, 0 if not, -1 on a read error.  The address first, then its
 * domain and each parent domain; white before black at each step. */
static int lists_decide(spam_lists_t *l, MDB_txn *txn, const char *scope,
                        const char *sender, bool *white)
{
    buf_t kb = BUF_INIT;
    const char *at = strrchr(sender, '@');
    const char *dom = at ? at + 1 : NULL;
    char *value = NULL;
    int rc = 0;

    for (const char *v = sender; v && rc == 0;) {
        int w = lists_has(l, txn, &kb, scope, SPAM_LISTS_WHITELIST, v);
        int b = w == 1 ? 0 : lists_has(l, txn, &kb, scope, SPAM_LISTS_BLACKLIST, v);

        if (w < 0 || b < 0)
            rc = -1;
        else if (w || b) {
            *white = w == 1;
            rc = 1;
        }
        if (rc != 0 || dom == NULL || *dom == 0)
            break;
        xfree(&value);
        value = xasprintf("@%s", dom);
        v = value;
        dom = strchr(dom, '.');
        if (dom)
            dom++;
    }
    xfree(&value);
    buf_free(&kb);
    return rc;
}

/* lists_word_char - could c be inside a word (ASCII letter or digit, or
 * a byte of a UTF-8 sequence)? */
static bool lists_word_char(unsigned char c)
{
    return isalnum(c) || c >= 0x80;
}

/* lists_find - is kw in text at word boundaries (where kw's own edge is
 * a word character)? */
static bool lists_find(const char *text, size_t tlen, const char *kw, size_t klen)
{
    const char *p = text, *end = text + tlen;

    while (klen && p < end && (size_t)(end - p) >= klen) {
        const char *m = memmem(p, (size_t)(end - p), kw, klen);

        if (m == NULL)
            return false;
        bool left = m == text || !lists_word_char((unsigned char)kw[0]) ||
                    !lists_word_char((unsigned char)m[-1]);
        bool right = m + klen == end || !lists_word_char((unsigned char)kw[klen - 1]) ||
                     !lists_word_char((unsigned char)m[klen]);
        if (left && right)
            return true;
        p = m + 1;
    }
    return false;
}

/* lists_text - the texts joined by spaces, lower-cased, white space runs
 * made one space (as keywords are stored). */
static char *lists_text(const char *const *texts, const size_t *lens, size_t n, size_t *len)
{
    buf_t b = BUF_INIT;
    bool space = false;

    for (size_t i = 0; i < n; i++) {
        space = b.len > 0;
        for (size_t j = 0; j < lens[i]; j++) {
            unsigned char c = (unsigned char)texts[i][j];

            if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
                space = b.len > 0;
                continue;
            }
            if (space)
                buf_append_char(&b, ' ');
            space = false;
            buf_append_char(&b, (char)tolower(c));
        }
    }
    char *t = buf_steal(&b, len);
    return t ? t : xstrdup("");
}

/* lists_keywords - add up the points of scope's keywords found in text. */
static int lists_keywords(spam_lists_t *l, MDB_txn *txn, const char *scope, const char *text,
                          size_t tlen, spam_lists_verdict *out)
{
    buf_t kb = BUF_INIT;
    MDB_cursor *cur;
    MDB_val k, d;
    MDB_cursor_op op = MDB_SET_RANGE;
    unsigned seen = 0;
    int rc;

    if ((rc = mdb_cursor_open(txn, l->dbi, &cur)) != 0)
        return -1;
    lists_key(&kb, scope, SPAM_LISTS_KEYWORD, NULL);
    k.mv_data = kb.data;
    k.mv_size = kb.len;
    for (; (rc = mdb_cursor_get(cur, &k, &d, op)) == 0; op = MDB_NEXT) {
        if (k.mv_size < kb.len || memcmp(k.mv_data, kb.data, kb.len) != 0)
            break;
        if (++seen > SPAM_LISTS_KEYWORDS_MAX) {
            log_warn("spam lists: scope %s has more than %d keywords; the rest are ignored",
                     scope, SPAM_LISTS_KEYWORDS_MAX);
            break;
        }
        if (lists_find(text, tlen, (const char *)k.mv_data + kb.len, k.mv_size - kb.len)) {
            out->keyword_points += lists_points(&d);
            out->keyword_hits++;
        }
    }
    mdb_cursor_close(cur);
    buf_free(&kb);
    return rc == 0 || rc == MDB_NOTFOUND ? 0 : -1;
}

int spam_lists_check(spam_lists_t *l, const char *rcpt, const char *sender,
                     const char *const *texts, const size_t *lens, size_t n,
                     spam_lists_verdict *out, char **err)
{
    char *user = NULL, *snd = NULL, *text = NULL;
    const char *scopes[3] = {NULL, NULL, "*"};
    size_t tlen = 0;
    MDB_txn *txn;
    int rc = 0;

    memset(out, 0, sizeof *out);
    if (lists_read_txn(l, &txn, err) < 0)
        return -1;
    if (rcpt && strchr(rcpt, '@')) {
        user = address_lower(rcpt);
        scopes[0] = user;
        scopes[1] = address_domain(user);
    }
    if (sender && sender[0])
        snd = address_lower(sender);
    for (int i = 0; i < 3 && rc == 0; i++) {
        bool white = false;
        int r;

        if (scopes[i] == NULL || scopes[i][0] == 0)
            continue;
        if (snd && out->level == SPAM_LISTS_NONE) {
            if ((r = lists_decide(l, txn, scopes[i], snd, &white)) < 0)
                rc = -1;
            else if (r > 0) {
                out->level = (spam_lists_level)(SPAM_LISTS_USER + i);
                out->whitelisted = white;
            }
        }
        if (text == NULL && n > 0)
            text = lists_text(texts, lens, n, &tlen);
        if (rc == 0 && text && lists_keywords(l, txn, scopes[i], text, tlen, out) < 0)
            rc = -1;
    }
    mdb_txn_abort(txn);
    xfree(&user);
    xfree(&snd);
    xfree(&text);
    if (rc < 0) {
        memset(out, 0, sizeof *out);
        return lists_err(err, "cannot read the lists (a damaged environment?)");
    }
    return 0;
}
