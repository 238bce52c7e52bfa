/* bayes.c - tokens, token database and spam probability of the Bayesian
 * filter (see bayes.h for the database layout).
 *
 * The probability follows SpamAssassin 4.0 (Plugin/Bayes.pm and
 * Bayes/CombineChi.pm) so that its scores (BAYES_00 .. BAYES_999) mean the
 * same here: per token Robinson's f(w) with s = 0.030 and x = 0.538;
 * tokens nearer to 0.5 than 0.346 ignored; the 150 strongest combined
 * with Fisher's chi-square method, starting from the learned ham/spam
 * ratio.
 */
#include <ctype.h>
#include <errno.h>
#include <lmdb.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <openssl/evp.h>

#include "bayes.h"
#include "buf.h"
#include "fsutil.h"
#include "lmdb_util.h"
#include "log.h"
#include "xalloc.h"

#define BAYES_SEEN_KEY   20     /* SHA-1 */
#define BAYES_ADDR_MAX   20     /* addresses read per address field */
#define BAYES_HOST_MAX   100    /* longer link hosts are skipped */

struct bayes {
    MDB_env *env;
    MDB_dbi  tokens, meta, seen;
    bool     writable;
    MDB_txn *txn;       /* writer: the open batch; reader: reset between messages */
    bool     txn_live;  /* reader: txn is renewed (not reset) */
    uint32_t nham, nspam;   /* writer: counts of the open batch */
};

/* bayes_err - *err = formatted text (malloc'ed); returns -1. */
static int bayes_err(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bayes_err(char **err, const char *fmt, ...)
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

/* ------------------------------------------------------------ tokens */

/* bayes_fnv - 64-bit FNV-1a of len bytes (the token keys). */
static uint64_t bayes_fnv(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ULL;
    }
    return h ? h : 1;      /* 0 marks an empty slot of the set */
}

/* tok_set_insert - add h to the set; false when it was there. */
static bool tok_set_insert(bayes_tokens *t, uint64_t h)
{
    if ((t->n + 1) * 2 > t->set_cap) {
        size_t cap = t->set_cap ? t->set_cap * 2 : 1024;
        uint64_t *set = xcalloc(cap, sizeof *set);

        for (size_t i = 0; i < t->set_cap; i++) {
            if (t->set[i] == 0)
                continue;
            size_t j = (size_t)(t->set[i] & (cap - 1));
            while (set[j])
                j = (j + 1) & (cap - 1);
            set[j] = t->set[i];
        }
        xfree(&t->set);
        t->set = set;
        t->set_cap = cap;
    }
    size_t j = (size_t)(h & (t->set_cap - 1));
    while (t->set[j]) {
        if (t->set[j] == h)
            return false;
        j = (j + 1) & (t->set_cap - 1);
    }
    t->set[j] = h;
    return true;
}

/* tok_add - add the token prefix+s (len bytes of s) unless it is there or
 * the message has BAYES_MAX_TOKENS already; false when full. */
static bool tok_add(bayes_tokens *t, const char *prefix, const char *s, size_t len)
{
    char buf[128];
    size_t plen = strlen(prefix);

    if (t->n >= BAYES_MAX_TOKENS)
        return false;
    if (len == 0 || plen + len >= sizeof buf)
        return true;
    memcpy(buf, prefix, plen);
    memcpy(buf + plen, s, len);
    len += plen;
    buf[len] = 0;

    uint64_t h = bayes_fnv(buf, len);
    if (!tok_set_insert(t, h))
        return true;
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 256;
        t->off = xrealloc(t->off, t->cap * sizeof *t->off);
        t->hash = xrealloc(t->hash, t->cap * sizeof *t->hash);
    }
    if (t->text_len + len + 1 > t->text_cap) {
        t->text_cap = (t->text_len + len + 1) * 2;
        t->text = xrealloc(t->text, t->text_cap);
    }
    t->off[t->n] = t->text_len;
    t->hash[t->n] = h;
    memcpy(t->text + t->text_len, buf, len + 1);
    t->text_len += len + 1;
    t->n++;
    return true;
}

/* tok_wordchar - may c be part of a word?  Bytes of UTF-8 sequences are,
 * so non-ASCII words stay whole. */
static bool tok_wordchar(unsigned char c)
{
    return isalnum(c) || c >= 0x80 || c == '$' || c == '\'' || c == '-';
}

/* tok_utf8_cut - the longest prefix of s (len bytes) of at most max bytes
 * that does not end inside a UTF-8 sequence. */
static size_t tok_utf8_cut(const char *s, size_t len, size_t max)
{
    if (len <= max)
        return len;
    size_t n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* tok_word - one word of w (len bytes, lower-cased here) with prefix;
 * false when the message is full. */
static bool tok_word(bayes_tokens *t, const char *prefix, const char *w, size_t len)
{
    char low[BAYES_WORD_MAX + 1];
    char skip[3 + 8];
    bool digits = true;

    while (len && (w[0] == '-' || w[0] == '\''))
        w++, len--;
    while (len && (w[len - 1] == '-' || w[len - 1] == '\''))
        len--;
    if (len < BAYES_WORD_MIN)
        return true;
    for (size_t i = 0; i < len && digits; i++)
        digits = isdigit((unsigned char)w[i]) != 0;
    if (digits)
        return true;                            /* pure numbers say nothing */
    if (len > BAYES_WORD_MAX) {                 /* SpamAssassin's "sk:" */
        size_t n = tok_utf8_cut(w, len, 7);
        memcpy(skip, "sk:", 3);
        for (size_t i = 0; i < n; i++)
            skip[3 + i] = (char)tolower((unsigned char)w[i]);
        return tok_add(t, prefix, skip, 3 + n);
    }
    for (size_t i = 0; i < len; i++)
        low[i] = (char)tolower((unsigned char)w[i]);
    return tok_add(t, prefix, low, len);
}

/* tok_words - the words of s (len bytes) with prefix; *budget is the text
 * bytes still to read (NULL: no bound).  false when the message is full. */
static bool tok_words(bayes_tokens *t, const char *prefix, const char *s, size_t len,
                      size_t *budget)
{
    if (budget) {
        if (len > *budget)
            len = *budget;
        *budget -= len;
    }
    for (size_t i = 0; i < len;) {
        while (i < len && !tok_wordchar((unsigned char)s[i]))
            i++;
        size_t start = i;
        while (i < len && tok_wordchar((unsigned char)s[i]))
            i++;
        if (i > start && !tok_word(t, prefix, s + start, i - start))
            return false;
    }
    return true;
}

/* tok_addresses - "PREFIXuser" and "PREFIXdomain" of each address in
 * value (a From/To/Reply-To field). */
static void tok_addresses(bayes_tokens *t, const char *prefix, const char *value)
{
    static const char local_ok[] = "!#$%&'*+/=?^_`{|}~.-";
    size_t len = strlen(value);
    unsigned n = 0;

    for (size_t at = 0; at < len && n < BAYES_ADDR_MAX; at++) {
        if (value[at] != '@')
            continue;
        size_t l = at, r = at + 1;
        while (l > 0 && (isalnum((unsigned char)value[l - 1]) || strchr(local_ok, value[l - 1])))
            l--;
        while (r < len && (isalnum((unsigned char)value[r]) || value[r] == '.' || value[r] == '-'))
            r++;
        size_t dlen = r - at - 1;
        while (dlen && value[at + dlen] == '.')
            dlen--;
        if (at - l == 0 || at - l > 64 || dlen == 0 || dlen > 100)
            continue;
        char buf[170];
        for (size_t i = l; i < at; i++)
            buf[i - l] = (char)tolower((unsigned char)value[i]);
        tok_add(t, prefix, buf, at - l);
        for (size_t i = 0; i < dlen; i++)
            buf[i] = (char)tolower((unsigned char)value[at + 1 + i]);
        tok_add(t, prefix, buf, dlen);
        n++;
    }
}

/* tok_first_word - "PREFIX" + the first word of value (up to white space,
 * '/', '(' or ';'), lower-cased and cut to BAYES_WORD_MAX bytes. */
static void tok_first_word(bayes_tokens *t, const char *prefix, const char *value)
{
    char w[BAYES_WORD_MAX];
    size_t n = 0;

    while (*value == ' ' || *value == '\t')
        value++;
    while (value[n] && n < sizeof w && !strchr(" \t/(;", value[n])) {
        w[n] = (char)tolower((unsigned char)value[n]);
        n++;
    }
    n = tok_utf8_cut(w, n, sizeof w);
    tok_add(t, prefix, n ? w : "none", n ? n : 4);
}

/* tok_headers - the tokens of the header section. */
static void tok_headers(bayes_tokens *t, const mime_msg *m)
{
    static const char *const present[] = {
        "List-Unsubscribe", "List-Id", "Precedence", "X-Priority", "In-Reply-To",
        "References", "Message-ID", "Date", "MIME-Version", "Organization",
    };
    static const struct { const char *field, *prefix; } addr[] = {
        {"From", "H*F:"}, {"To", "H*T:"}, {"Reply-To", "H*R:"},
    };
    const mime_header *h;
    size_t received = 0;
    char tok[64];

    if ((h = mime_header_get(m, "Subject", 0)) && h->decoded)
        tok_words(t, "S:", h->decoded, strlen(h->decoded), NULL);
    for (size_t i = 0; i < sizeof addr / sizeof addr[0]; i++)
        if ((h = mime_header_get(m, addr[i].field, 0)) && h->value)
            tok_addresses(t, addr[i].prefix, h->value);
    if ((h = mime_header_get(m, "X-Mailer", 0)) && h->value)
        tok_first_word(t, "H:X-Mailer:", h->value);
    if ((h = mime_header_get(m, "User-Agent", 0)) && h->value)
        tok_first_word(t, "H:User-Agent:", h->value);
    for (size_t i = 0; i < sizeof present / sizeof present[0]; i++) {
        snprintf(tok, sizeof tok, "%s%s", mime_header_get(m, present[i], 0) ? "H:" : "H!",
                 present[i]);
        tok_add(t, "", tok, strlen(tok));
    }
    for (size_t i = 0; i < m->n_headers; i++)
        if (m->headers[i].name && strcasecmp(m->headers[i].name, "Received") == 0)
            received++;
    snprintf(tok, sizeof tok, "H:Received:%s",
             received <= 3 ? (const char *[]){"0", "1", "2", "3"}[received] :
             received <= 5 ? "4-5" : received <= 9 ? "6-9" : "10+");
    tok_add(t, "", tok, strlen(tok));
}

/* tok_host - "U:host" and "U:" + its last two labels (a name, not an
 * address). */
static void tok_host(bayes_tokens *t, const char *host)
{
    size_t len = strlen(host);
    bool name = false;

    if (len == 0 || len > BAYES_HOST_MAX)
        return;
    tok_add(t, "U:", host, len);
    for (size_t i = 0; i < len; i++)
        if (isalpha((unsigned char)host[i]))
            name = true;
    if (!name || strchr(host, ':'))
        return;
    const char *last = host + len, *p = NULL;
    int dots = 0;
    for (const char *q = last; q > host; q--)
        if (q[-1] == '.' && ++dots == 2) {
            p = q;
            break;
        }
    if (p)
        tok_add(t, "U:", p, (size_t)(last - p));
}

void bayes_tokenize(const mime_msg *m, bayes_tokens *t)
{
    size_t budget = BAYES_MAX_TEXT;

    memset(t, 0, sizeof *t);
    tok_headers(t, m);
    for (size_t i = 0; i < m->n_parts; i++) {
        const mime_part *p = &m->parts[i];

        if (p->type)
            tok_add(t, "H*CT:", p->type, strlen(p->type));
        if (p->charset)
            tok_add(t, "H*CS:", p->charset, strlen(p->charset));
    }
    for (size_t i = 0; i < m->n_uris; i++)
        if (m->uris[i].host)
            tok_host(t, m->uris[i].host);
    for (size_t i = 0; i < m->n_parts && budget > 0; i++) {
        const mime_part *p = &m->parts[i];

        if (p->text == NULL || p->attachment || p->type == NULL ||
            (strcmp(p->type, "text/plain") != 0 && strcmp(p->type, "text/html") != 0))
            continue;
        if (!tok_words(t, "", p->text, p->text_len, &budget))
            break;
    }
}

const char *bayes_token(const bayes_tokens *t, size_t i)
{
    return t->text + t->off[i];
}

bool bayes_tokens_has(const bayes_tokens *t, const char *text)
{
    for (size_t i = 0; i < t->n; i++)
        if (strcmp(bayes_token(t, i), text) == 0)
            return true;
    return false;
}

void bayes_tokens_free(bayes_tokens *t)
{
    xfree(&t->text);
    xfree(&t->off);
    xfree(&t->hash);
    xfree(&t->set);
    memset(t, 0, sizeof *t);
}

/* ------------------------------------------------------------ database */

/* bayes_meta_get - meta value name into *v (0 when absent). */
static int bayes_meta_get(bayes_t *b, MDB_txn *txn, const char *name, uint32_t *v)
{
    MDB_val k = {strlen(name), (void *)name}, d;
    int rc = mdb_get(txn, b->meta, &k, &d);

    *v = 0;
    if (rc == 0 && d.mv_size == sizeof *v)
        memcpy(v, d.mv_data, sizeof *v);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int bayes_meta_put(bayes_t *b, const char *name, uint32_t v)
{
    MDB_val k = {strlen(name), (void *)name}, d = {sizeof v, &v};
    return mdb_put(b->txn, b->meta, &k, &d, 0);
}

bayes_t *bayes_open(const char *dir, bool writable, bool *missing, char **err)
{
    bayes_t *b;
    MDB_txn *txn = NULL;
    uint32_t version = 0;
    char *why = NULL;
    int rc;

    MDB_env *env = lmdb_env_open_shared(dir, "a Bayes database", writable, BAYES_MAP_SIZE, 3,
                                        missing, &why);
    if (!env) {
        bayes_err(err, "%s%s", why, missing && *missing ? " (correio bayes train makes it)" : "");
        xfree(&why);
        return NULL;
    }
    b = xcalloc(1, sizeof *b);
    b->writable = writable;
    b->env = env;
    unsigned flags = writable ? MDB_CREATE : 0;
    if ((rc = mdb_txn_begin(b->env, NULL, writable ? 0 : MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, "tokens", flags, &b->tokens)) != 0 ||
        (rc = mdb_dbi_open(txn, "meta", flags, &b->meta)) != 0 ||
        (rc = mdb_dbi_open(txn, "seen", flags, &b->seen)) != 0 ||
        (rc = bayes_meta_get(b, txn, "version", &version)) != 0) {
        if (txn)
            mdb_txn_abort(txn);
        bayes_err(err, "cannot open the Bayes database %s: %s%s", dir, mdb_strerror(rc),
                  rc == MDB_NOTFOUND ? " (not a Bayes database)" : "");
        mdb_env_close(b->env);
        xfree(&b);
        return NULL;
    }
    if (version == 0 && writable) {
        b->txn = txn;
        rc = bayes_meta_put(b, "version", BAYES_VERSION);
        b->txn = NULL;
        version = rc == 0 ? BAYES_VERSION : 0;
    }
    if (version != BAYES_VERSION || (rc = mdb_txn_commit(txn)) != 0) {
        if (version != BAYES_VERSION)
            mdb_txn_abort(txn);
        bayes_err(err, "Bayes database %s: %s", dir,
                  version != BAYES_VERSION ? "another format version: train a new one"
                                           : mdb_strerror(rc));
        mdb_env_close(b->env);
        xfree(&b);
        return NULL;
    }
    if (writable) {         /* free the slots of classifiers that died in a read */
        int dead = 0;
        (void)mdb_reader_check(b->env, &dead);
    }
    return b;
}

void bayes_close(bayes_t **b)
{
    if (*b == NULL)
        return;
    if ((*b)->txn)
        mdb_txn_abort((*b)->txn);
    mdb_env_close((*b)->env);
    xfree(b);
}

int bayes_begin(bayes_t *b, char **err)
{
    int rc;

    if (!b->writable || b->txn)
        log_panic("bayes_begin: %s", b->txn ? "a batch is open" : "read-only database");
    if ((rc = mdb_txn_begin(b->env, NULL, 0, &b->txn)) != 0 ||
        (rc = bayes_meta_get(b, b->txn, "nham", &b->nham)) != 0 ||
        (rc = bayes_meta_get(b, b->txn, "nspam", &b->nspam)) != 0) {
        if (b->txn)
            mdb_txn_abort(b->txn);
        b->txn = NULL;
        return bayes_err(err, "Bayes database: cannot begin a batch: %s", mdb_strerror(rc));
    }
    return 0;
}

/* bayes_fail - abort the batch after an LMDB error; -1 with *err. */
static int bayes_fail(bayes_t *b, int rc, const char *what, char **err)
{
    mdb_txn_abort(b->txn);
    b->txn = NULL;
    return bayes_err(err, "Bayes database: %s: %s%s", what, mdb_strerror(rc),
                     rc == MDB_MAP_FULL ? " (more than BAYES_MAP_SIZE: start a new database)" : "");
}

/* bayes_seen_key - SHA-1 of the Message-ID (trimmed) or of the whole
 * message into key. */
static void bayes_seen_key(const mime_msg *m, const char *data, size_t len,
                           unsigned char key[BAYES_SEEN_KEY])
{
    const mime_header *h = mime_header_get(m, "Message-ID", 0);
    unsigned int n = 0;
    unsigned char md[EVP_MAX_MD_SIZE];

    if (h && h->value) {
        const char *v = h->value;
        size_t vl = strlen(v);
        while (vl && isspace((unsigned char)*v))
            v++, vl--;
        while (vl && isspace((unsigned char)v[vl - 1]))
            vl--;
        if (vl) {
            data = v;
            len = vl;
        }
    }
    if (EVP_Digest(data, len, md, &n, EVP_sha1(), NULL) != 1 || n < BAYES_SEEN_KEY)
        log_panic("bayes_seen_key: SHA-1 failed");
    memcpy(key, md, BAYES_SEEN_KEY);
}

/* bayes_count - add delta (+1/-1) to cls's count of every token. */
static int bayes_count(bayes_t *b, const bayes_tokens *t, bayes_class cls, int delta)
{
    for (size_t i = 0; i < t->n; i++) {
        uint64_t h = t->hash[i];
        uint32_t c[2] = {0, 0};              /* ham, spam */
        MDB_val k = {sizeof h, &h}, d;
        int rc = mdb_get(b->txn, b->tokens, &k, &d);

        if (rc == 0 && d.mv_size == sizeof c)
            memcpy(c, d.mv_data, sizeof c);
        else if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
        uint32_t *v = &c[cls == BAYES_SPAM];
        if (delta > 0 && *v < UINT32_MAX)
            (*v)++;
        else if (delta < 0 && *v > 0)
            (*v)--;
        if (c[0] == 0 && c[1] == 0) {
            rc = mdb_del(b->txn, b->tokens, &k, NULL);
            if (rc == MDB_NOTFOUND)
                rc = 0;
        } else {
            d.mv_size = sizeof c;
            d.mv_data = c;
            rc = mdb_put(b->txn, b->tokens, &k, &d, 0);
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* bayes_counter - the batch's message count of cls. */
static uint32_t *bayes_counter(bayes_t *b, bayes_class cls)
{
    return cls == BAYES_SPAM ? &b->nspam : &b->nham;
}

int bayes_learn(bayes_t *b, const char *data, size_t len, bayes_class cls,
                bayes_learned *what, char **err)
{
    unsigned char key[BAYES_SEEN_KEY];
    char mark = cls == BAYES_SPAM ? 's' : 'h';
    mime_msg m;
    bayes_tokens t;
    MDB_val k = {sizeof key, key}, d;
    int rc;

    if (b->txn == NULL)
        log_panic("bayes_learn: no batch open");
    mime_parse(data, len, &m);
    bayes_seen_key(&m, data, len, key);
    rc = mdb_get(b->txn, b->seen, &k, &d);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mime_free(&m);
        return bayes_fail(b, rc, "reading seen", err);
    }
    if (rc == 0 && d.mv_size == 1 && *(char *)d.mv_data == mark) {
        *what = BAYES_LEARNED_KNOWN;
        mime_free(&m);
        return 0;
    }
    bayes_tokenize(&m, &t);
    mime_free(&m);
    *what = BAYES_LEARNED_NEW;
    if (rc == 0 && d.mv_size == 1) {              /* learned as the other class: move */
        bayes_class other = cls == BAYES_SPAM ? BAYES_HAM : BAYES_SPAM;
        if ((rc = bayes_count(b, &t, other, -1)) != 0) {
            bayes_tokens_free(&t);
            return bayes_fail(b, rc, "updating tokens", err);
        }
        if (*bayes_counter(b, other) > 0)
            (*bayes_counter(b, other))--;
        *what = BAYES_LEARNED_MOVED;
    }
    rc = bayes_count(b, &t, cls, +1);
    bayes_tokens_free(&t);
    if (rc != 0)
        return bayes_fail(b, rc, "updating tokens", err);
    if (*bayes_counter(b, cls) < UINT32_MAX)
        (*bayes_counter(b, cls))++;
    d.mv_size = 1;
    d.mv_data = &mark;
    if ((rc = mdb_put(b->txn, b->seen, &k, &d, 0)) != 0)
        return bayes_fail(b, rc, "writing seen", err);
    return 0;
}

int bayes_forget(bayes_t *b, const char *data, size_t len, bool *found, char **err)
{
    unsigned char key[BAYES_SEEN_KEY];
    mime_msg m;
    bayes_tokens t;
    MDB_val k = {sizeof key, key}, d;
    int rc;

    if (b->txn == NULL)
        log_panic("bayes_forget: no batch open");
    mime_parse(data, len, &m);
    bayes_seen_key(&m, data, len, key);
    *found = false;
    rc = mdb_get(b->txn, b->seen, &k, &d);
    if (rc == MDB_NOTFOUND || (rc == 0 && d.mv_size != 1)) {
        mime_free(&m);
        return 0;
    }
    if (rc != 0) {
        mime_free(&m);
        return bayes_fail(b, rc, "reading seen", err);
    }
    bayes_class cls = *(char *)d.mv_data == 's' ? BAYES_SPAM : BAYES_HAM;
    bayes_tokenize(&m, &t);
    mime_free(&m);
    rc = bayes_count(b, &t, cls, -1);
    bayes_tokens_free(&t);
    if (rc != 0)
        return bayes_fail(b, rc, "updating tokens", err);
    if (*bayes_counter(b, cls) > 0)
        (*bayes_counter(b, cls))--;
    if ((rc = mdb_del(b->txn, b->seen, &k, NULL)) != 0)
        return bayes_fail(b, rc, "deleting seen", err);
    *found = true;
    return 0;
}

int bayes_commit(bayes_t *b, char **err)
{
    int rc;

    if (b->txn == NULL)
        log_panic("bayes_commit: no batch open");
    if ((rc = bayes_meta_put(b, "nham", b->nham)) != 0 ||
        (rc = bayes_meta_put(b, "nspam", b->nspam)) != 0)
        return bayes_fail(b, rc, "writing counts", err);
    rc = mdb_txn_commit(b->txn);
    b->txn = NULL;
    if (rc != 0)
        return bayes_err(err, "Bayes database: commit: %s%s", mdb_strerror(rc),
                         rc == MDB_MAP_FULL ? " (more than BAYES_MAP_SIZE)" : "");
    if ((rc = mdb_env_sync(b->env, 1)) != 0)
        return bayes_err(err, "Bayes database: sync: %s", mdb_strerror(rc));
    return 0;
}

/* bayes_read_begin - a read transaction (the reader's, renewed). */
static int bayes_read_begin(bayes_t *b, MDB_txn **txn)
{
    int rc;

    if (b->writable) {
        if (b->txn) {
            *txn = b->txn;                /* inside a batch: see its changes */
            return 0;
        }
        return mdb_txn_begin(b->env, NULL, MDB_RDONLY, txn);
    }
    if (b->txn == NULL)
        rc = mdb_txn_begin(b->env, NULL, MDB_RDONLY, &b->txn);
    else
        rc = mdb_txn_renew(b->txn);
    b->txn_live = rc == 0;
    *txn = b->txn;
    return rc;
}

static void bayes_read_end(bayes_t *b, MDB_txn *txn)
{
    if (b->writable) {
        if (txn != b->txn)
            mdb_txn_abort(txn);
        return;
    }
    if (b->txn_live)
        mdb_txn_reset(b->txn);
    b->txn_live = false;
}

int bayes_counts(bayes_t *b, uint32_t *nham, uint32_t *nspam, size_t *ntokens, char **err)
{
    MDB_txn *txn = NULL;
    MDB_stat st;
    uint32_t h = 0, s = 0;
    int rc;

    if ((rc = bayes_read_begin(b, &txn)) != 0)
        return bayes_err(err, "Bayes database: cannot begin a read: %s", mdb_strerror(rc));
    if ((rc = bayes_meta_get(b, txn, "nham", &h)) != 0 ||
        (rc = bayes_meta_get(b, txn, "nspam", &s)) != 0 ||
        (rc = mdb_stat(txn, b->tokens, &st)) != 0) {
        bayes_read_end(b, txn);
        return bayes_err(err, "Bayes database: cannot read the counts: %s", mdb_strerror(rc));
    }
    if (b->writable && b->txn) {          /* the batch's counts are not written yet */
        h = b->nham;
        s = b->nspam;
    }
    bayes_read_end(b, txn);
    if (nham)
        *nham = h;
    if (nspam)
        *nspam = s;
    if (ntokens)
        *ntokens = st.ms_entries;
    return 0;
}

/* ------------------------------------------------------------ probability */

double bayes_token_prob(uint32_t spam, uint32_t ham, uint32_t nspam, uint32_t nham)
{
    double s = spam, n = ham, ns = nspam, nn = nham;

    if (spam == 0 && ham == 0)
        return -1;
    if (nspam == 0 || nham == 0)
        return -1;
    if (s > ns)       /* counts past the totals (a forgotten message): clamp */
        s = ns;
    if (n > nn)
        n = nn;
    double prob = (s * nn) / (n * ns + s * nn);
    double robn = s + n;
    return (BAYES_FW_S * BAYES_FW_X + robn * prob) / (BAYES_FW_S + robn);
}

/* bayes_chi2q - the upper tail of chi-square with 2 * halfv degrees of
 * freedom at x2 (SpamAssassin's chi2q). */
static double bayes_chi2q(double x2, size_t halfv)
{
    double m = x2 / 2.0, sum, term;

    sum = term = exp(-m);
    for (size_t i = 1; i < halfv; i++) {
        term *= m / (double)i;
        sum += term;
    }
    return sum < 1.0 ? sum : 1.0;
}

double bayes_combine(const double *f, size_t n, uint32_t nspam, uint32_t nham)
{
    double S, H;
    int se = 0, he = 0, e;

    if (n == 0 || (uint64_t)nspam + nham == 0)
        return 0.5;
    S = (double)nspam / ((double)nspam + nham);
    H = (double)nham / ((double)nspam + nham);
    for (size_t i = 0; i < n; i++) {
        S *= 1.0 - f[i];
        H *= f[i];
        if (S < 1e-200) {
            S = frexp(S, &e);
            se += e;
        }
        if (H < 1e-200) {
            H = frexp(H, &e);
            he += e;
        }
    }
    S = log(S) + se * M_LN2;
    H = log(H) + he * M_LN2;
    S = 1.0 - bayes_chi2q(-2.0 * S, n);
    H = 1.0 - bayes_chi2q(-2.0 * H, n);
    return ((S - H) + 1.0) / 2.0;
}

/* by_strength - qsort: strongest (farthest from 0.5) first. */
static int by_strength(const void *a, const void *b)
{
    double x = fabs(*(const double *)a - 0.5), y = fabs(*(const double *)b - 0.5);
    return x < y ? 1 : x > y ? -1 : 0;
}

int bayes_classify(bayes_t *b, const mime_msg *m, unsigned min_learned, double *p, char **err)
{
    MDB_txn *txn = NULL;
    uint32_t nham, nspam;
    bayes_tokens t;
    double *f;
    size_t nf = 0;
    int rc;

    if ((rc = bayes_read_begin(b, &txn)) != 0)
        return bayes_err(err, "Bayes database: cannot begin a read: %s", mdb_strerror(rc));
    if ((rc = bayes_meta_get(b, txn, "nham", &nham)) != 0 ||
        (rc = bayes_meta_get(b, txn, "nspam", &nspam)) != 0) {
        bayes_read_end(b, txn);
        return bayes_err(err, "Bayes database: cannot read the counts: %s", mdb_strerror(rc));
    }
    if (nham < min_learned || nspam < min_learned || nham == 0 || nspam == 0) {
        bayes_read_end(b, txn);
        return 0;
    }
    bayes_tokenize(m, &t);
    f = xmalloc((t.n ? t.n : 1) * sizeof *f);
    for (size_t i = 0; i < t.n; i++) {
        MDB_val k = {sizeof t.hash[i], &t.hash[i]}, d;
        uint32_t c[2];

        rc = mdb_get(txn, b->tokens, &k, &d);
        if (rc == MDB_NOTFOUND)
            continue;
        if (rc != 0)
            break;
        if (d.mv_size != sizeof c)
            continue;
        memcpy(c, d.mv_data, sizeof c);
        double fw = bayes_token_prob(c[1], c[0], nspam, nham);
        if (fw >= 0 && fabs(fw - 0.5) >= BAYES_MIN_PROB_STRENGTH)
            f[nf++] = fw;
    }
    bayes_read_end(b, txn);
    bayes_tokens_free(&t);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        xfree(&f);
        return bayes_err(err, "Bayes database: token lookup: %s", mdb_strerror(rc));
    }
    if (nf == 0) {
        xfree(&f);
        return 0;
    }
    qsort(f, nf, sizeof *f, by_strength);
    *p = bayes_combine(f, nf < BAYES_N_SIGNIFICANT ? nf : BAYES_N_SIGNIFICANT, nspam, nham);
    xfree(&f);
    return 1;
}
