/* map.c - lookup tables named "type:path" (see map.h).
 *
 * One table of types (hash/lmdb, cidr, pcre), each with a loader, a
 * lookup and a free function.  A map holds its loaded contents in a
 * map_data; a reload builds a new map_data beside the old one and swaps
 * only when the new file loaded without error, so a bad edit never
 * empties a table that is in use.
 *
 * hash:/lmdb: tables are compiled by map_build into PATH.lmdb, one LMDB
 * file (MDB_NOSUBDIR).  The file is never changed in place: map_build
 * writes a temporary file and renames it over the old one, so readers
 * open it read-only with MDB_NOLOCK (no lock file next to it, which the
 * stages could not create in the configuration directory anyway) and
 * keep the old inode mapped until they reload.
 *
 * cidr: and pcre: tables are read into memory.  pcre: follows Postfix's
 * pcre_table(5): the flags after the pattern toggle Postfix's defaults
 * (case-insensitive and "." matching newline are on; "i" makes a pattern
 * case-sensitive, "s" turns dotall off), "!/re/" applies when re does not
 * match, "if /re/" ... "endif" nest, $n/${n}/$(n) insert groups and $$ is
 * a dollar sign.
 *
 * Lookups may come from several threads: each map has a mutex around the
 * reload check and the lookup.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <lmdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "map.h"
#include "timeutil.h"
#include "xalloc.h"

#define MAP_LINE_MAX     (64 * 1024)   /* bytes in one logical line */
#define MAP_CHECK_MS     1000          /* stat the file at most this often */
#define MAP_SHOW_MAX     80            /* bytes of a key quoted in a message */
#define MAP_BUILD_TRIES  8             /* map size doublings before giving up */

/* What identifies one version of a file. */
typedef struct file_sig {
    bool   exists;
    dev_t  dev;
    ino_t  ino;
    off_t  size;
    struct timespec mtime;
} file_sig;

typedef struct cidr_rule {
    int           family;       /* AF_INET or AF_INET6 */
    unsigned char addr[16];     /* network, host bits zero */
    unsigned      prefix;
    char         *value;
} cidr_rule;

typedef enum { RULE_MATCH, RULE_IF, RULE_ENDIF } rule_kind;

typedef struct pcre_rule {
    rule_kind   kind;
    bool        negate;         /* "!/re/": applies when re does not match */
    pcre2_code *re;             /* MATCH, IF */
    char       *value;          /* MATCH: with $n references */
    size_t      endif;          /* IF: index of its endif */
    int         line;
} pcre_rule;

/* The loaded contents of a map: one version of its file. */
typedef struct map_data {
    file_sig sig;
    /* hash, lmdb */
    MDB_env *env;
    MDB_txn *txn;               /* read-only, reset between lookups */
    MDB_dbi  dbi;
    size_t   maxkey;
    /* cidr */
    cidr_rule *cidr;
    size_t     ncidr;
    /* pcre */
    pcre_rule        *pcre;
    size_t            npcre;
    pcre2_match_data *md;       /* sized for the rule with most groups */
} map_data;

typedef struct map_type map_type;

struct map {
    const map_type *type;
    char           *spec;       /* "type:path" as opened */
    char           *path;       /* the text file, made absolute against dir */
    char           *file;       /* the file whose changes are watched */
    map_data        data;
    pthread_mutex_t lock;
    int64_t         checked_ms; /* monotonic time of the last stat */
    bool            have_bad;   /* bad: a version that failed to load */
    file_sig        bad;
};

struct map_type {
    const char *name;
    bool        compiled;       /* reads path.lmdb made by map_build */
    int        (*load)(const map_t *m, map_data *d, char **err);
    map_status (*lookup)(map_t *m, const char *key, char **value);
};

static int load_lmdb(const map_t *m, map_data *d, char **err);
static int load_cidr(const map_t *m, map_data *d, char **err);
static int load_pcre(const map_t *m, map_data *d, char **err);
static map_status lookup_lmdb(map_t *m, const char *key, char **value);
static map_status lookup_cidr(map_t *m, const char *key, char **value);
static map_status lookup_pcre(map_t *m, const char *key, char **value);

static const map_type map_types[] = {
    {"hash", true, load_lmdb, lookup_lmdb},
    {"lmdb", true, load_lmdb, lookup_lmdb},
    {"cidr", false, load_cidr, lookup_cidr},
    {"pcre", false, load_pcre, lookup_pcre},
    {NULL, false, NULL, NULL},
};

/* ---------------------------------------------------------------- files */

static void sig_of(const struct stat *st, file_sig *sig)
{
    memset(sig, 0, sizeof(*sig));
    sig->exists = true;
    sig->dev = st->st_dev;
    sig->ino = st->st_ino;
    sig->size = st->st_size;
    sig->mtime = st->st_mtim;
}

static bool sig_equal(const file_sig *a, const file_sig *b)
{
    if (a->exists != b->exists)
        return false;
    return !a->exists ||
           (a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
            a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec);
}

/* read_text - the whole regular file path (NUL-terminated) and its
 * signature; NULL with *err set on failure. */
static char *read_text(const char *path, size_t *len, file_sig *sig, char **err)
{
    struct stat st;
    buf_t b = BUF_INIT;
    int fd = open(path, O_RDONLY | O_CLOEXEC);

    if (fd < 0) {
        *err = xasprintf("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) != 0) {
        *err = xasprintf("%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    if (!S_ISREG(st.st_mode)) {
        *err = xasprintf("%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    buf_reserve(&b, (size_t)st.st_size);
    for (;;) {
        ssize_t n;

        buf_reserve(&b, 65536);
        n = read(fd, b.data + b.len, b.cap - b.len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            *err = xasprintf("%s: cannot read: %s", path, strerror(errno));
            close(fd);
            buf_free(&b);
            return NULL;
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
        b.data[b.len] = 0;
    }
    close(fd);
    sig_of(&st, sig);
    *len = b.len;
    return buf_steal(&b, NULL);
}

/* ---------------------------------------------------------------- lines */

/* Logical lines of a table file: "#" lines and blank lines are skipped; a
 * line that starts with white space continues the entry before it (joined
 * with one space, as correio.conf does). */
typedef struct reader {
    const char *path;
    const char *p, *end;        /* what is not read yet */
    int         lineno;         /* physical lines read */
    int         start;          /* the line the current entry starts on */
    buf_t       line;           /* the current entry, trimmed */
} reader_t;

static void reader_init(reader_t *r, const char *path, const char *text, size_t len)
{
    r->path = path;
    r->p = text;
    r->end = text + len;
    r->lineno = 0;
    r->start = 0;
    buf_init(&r->line);
}

/* reader_append - add [s, e) to the entry, keeping it under the limit. */
static int reader_append(reader_t *r, const char *s, const char *e, char **err)
{
    size_t need = (size_t)(e - s) + (r->line.len ? 1 : 0);

    if (r->line.len + need > MAP_LINE_MAX) {
        *err = xasprintf("%s:%d: entry longer than %d bytes", r->path, r->start, MAP_LINE_MAX);
        return -1;
    }
    if (r->line.len)
        buf_append_char(&r->line, ' ');
    buf_append(&r->line, s, (size_t)(e - s));
    return 0;
}

/* reader_next - the next entry into r->line (r->start is its line): 1,
 * 0 at the end of the file, -1 with *err set. */
static int reader_next(reader_t *r, char **err)
{
    buf_reset(&r->line);
    r->start = 0;
    while (r->p < r->end) {
        const char *s = r->p;
        const char *nl = memchr(s, '\n', (size_t)(r->end - s));
        const char *e = nl ? nl : r->end;
        const char *next = nl ? nl + 1 : r->end;
        const char *b = s, *t = e;
        bool content;

        while (b < e && (*b == ' ' || *b == '\t'))
            b++;
        while (t > b && (t[-1] == ' ' || t[-1] == '\t' || t[-1] == '\r'))
            t--;
        content = b < t && *b != '#';
        if (content && b == s && r->start != 0)
            return 1;               /* it starts the next entry: leave it */
        r->p = next;
        r->lineno++;
        if (memchr(s, 0, (size_t)(e - s)) != NULL) {
            *err = xasprintf("%s:%d: NUL byte in the line (not a text file?)", r->path, r->lineno);
            return -1;
        }
        if (!content)
            continue;               /* blank or comment */
        if (b > s && r->start == 0) {
            *err = xasprintf("%s:%d: continuation line (it starts with white space) "
                             "with no entry before it", r->path, r->lineno);
            return -1;
        }
        if (r->start == 0)
            r->start = r->lineno;
        if (reader_append(r, b, t, err) != 0)
            return -1;
    }
    return r->start != 0;
}

/* split_key - the entry's first word (its key) and the rest (its value,
 * possibly empty).  line is trimmed and NUL-terminated. */
static void split_key(char *line, size_t *klen, char **value)
{
    char *v;

    *klen = strcspn(line, " \t");
    v = line + *klen;
    v += strspn(v, " \t");
    *value = v;
}

/* show - key text fit for a message (printable, bounded). */
static const char *show(char dst[MAP_SHOW_MAX + 1], const char *s, size_t len)
{
    return log_printable(dst, MAP_SHOW_MAX + 1, s, len);
}

static void fold_lower(char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] >= 'A' && s[i] <= 'Z')
            s[i] = (char)(s[i] - 'A' + 'a');
}

/* ---------------------------------------------------------------- hash, lmdb */

static char *lmdb_name(const char *path)
{
    return xasprintf("%s.lmdb", path);
}

static int load_lmdb(const map_t *m, map_data *d, char **err)
{
    struct stat st, src;
    int rc, fd;

    if (stat(m->file, &st) != 0) {
        if (errno == ENOENT)
            *err = xasprintf("%s: not found; run correio map build %s", m->file, m->path);
        else
            *err = xasprintf("%s: %s", m->file, strerror(errno));
        return -1;
    }
    if ((rc = mdb_env_create(&d->env)) != 0) {
        *err = xasprintf("%s: mdb_env_create: %s", m->file, mdb_strerror(rc));
        return -1;
    }
    /* the file is complete: map what is there, LMDB raises it if needed */
    if ((rc = mdb_env_set_mapsize(d->env, st.st_size > 65536 ? (size_t)st.st_size : 65536)) != 0 ||
        (rc = mdb_env_open(d->env, m->file, MDB_RDONLY | MDB_NOSUBDIR | MDB_NOLOCK | MDB_NOTLS,
                           0)) != 0) {
        *err = xasprintf("%s: cannot open: %s (run correio map build %s)", m->file,
                         rc == MDB_INVALID || rc == ENOENT ? "not a table made by correio map build"
                                                           : mdb_strerror(rc), m->path);
        goto fail;
    }
    if ((rc = mdb_txn_begin(d->env, NULL, MDB_RDONLY, &d->txn)) != 0 ||
        (rc = mdb_dbi_open(d->txn, NULL, 0, &d->dbi)) != 0) {
        *err = xasprintf("%s: cannot read: %s (run correio map build %s)", m->file,
                         mdb_strerror(rc), m->path);
        goto fail;
    }
    mdb_txn_reset(d->txn);
    d->maxkey = (size_t)mdb_env_get_maxkeysize(d->env);
    /* the signature of what was opened, not of what the name says now */
    if ((rc = mdb_env_get_fd(d->env, &fd)) != 0 || fstat(fd, &st) != 0) {
        *err = xasprintf("%s: cannot stat the open table", m->file);
        goto fail;
    }
    sig_of(&st, &d->sig);
    if (stat(m->path, &src) == 0 &&
        (src.st_mtim.tv_sec > st.st_mtim.tv_sec ||
         (src.st_mtim.tv_sec == st.st_mtim.tv_sec && src.st_mtim.tv_nsec > st.st_mtim.tv_nsec)))
        log_warn("%s is older than %s; run correio map build %s", m->file, m->path, m->path);
    return 0;

fail:
    if (d->txn)
        mdb_txn_abort(d->txn);
    d->txn = NULL;
    mdb_env_close(d->env);
    d->env = NULL;
    return -1;
}

static map_status lookup_lmdb(map_t *m, const char *key, char **value)
{
    map_data *d = &m->data;
    size_t len = strlen(key);
    MDB_val k, v;
    char *folded;
    int rc;

    if (len == 0 || len > d->maxkey)
        return MAP_NOTFOUND;         /* no such key can be in the table */
    folded = xmemdup(key, len);
    fold_lower(folded, len);
    k.mv_data = folded;
    k.mv_size = len;
    if ((rc = mdb_txn_renew(d->txn)) != 0) {
        log_warn("%s: cannot begin a read: %s", m->file, mdb_strerror(rc));
        free(folded);
        return MAP_ERROR;
    }
    rc = mdb_get(d->txn, d->dbi, &k, &v);
    if (rc == 0)
        *value = xmemdup(v.mv_data, v.mv_size);
    mdb_txn_reset(d->txn);
    free(folded);
    if (rc == 0)
        return MAP_FOUND;
    if (rc == MDB_NOTFOUND)
        return MAP_NOTFOUND;
    log_warn("%s: lookup failed: %s (rebuild it with correio map build %s)",
             m->file, mdb_strerror(rc), m->path);
    return MAP_ERROR;
}

/* ---------------------------------------------------------------- map_build */

typedef struct build_entry {
    char  *key;          /* folded */
    size_t klen;
    char  *value;
    int    line;
} build_entry;

/* entry_cmp - LMDB's default key order (bytes, then shorter first), then
 * the line, so the last of equal keys comes last. */
static int entry_cmp(const void *pa, const void *pb)
{
    const build_entry *a = pa, *b = pb;
    size_t n = a->klen < b->klen ? a->klen : b->klen;
    int c = memcmp(a->key, b->key, n);

    if (c)
        return c;
    if (a->klen != b->klen)
        return a->klen < b->klen ? -1 : 1;
    return (a->line > b->line) - (a->line < b->line);
}

static void free_entries(build_entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(e[i].key);
        free(e[i].value);
    }
    free(e);
}

/* parse_hash - every entry of the text into *entries (*count of them);
 * -1 and *err at the first bad one. */
static int parse_hash(const char *path, const char *text, size_t len, size_t maxkey,
                      build_entry **entries, size_t *count, char **err)
{
    reader_t r;
    build_entry *e = NULL;
    size_t n = 0, cap = 0;
    int rc;

    reader_init(&r, path, text, len);
    while ((rc = reader_next(&r, err)) > 0) {
        char shown[MAP_SHOW_MAX + 1];
        size_t klen;
        char *value;

        split_key(r.line.data, &klen, &value);
        if (*value == 0) {
            *err = xasprintf("%s:%d: key \"%s\" has no value", path, r.start,
                             show(shown, r.line.data, klen));
            rc = -1;
            break;
        }
        if (klen > maxkey) {
            *err = xasprintf("%s:%d: key longer than %zu bytes", path, r.start, maxkey);
            rc = -1;
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            e = xrealloc(e, cap * sizeof(*e));
        }
        e[n].key = xmemdup(r.line.data, klen);
        e[n].klen = klen;
        fold_lower(e[n].key, klen);
        e[n].value = xstrdup(value);
        e[n].line = r.start;
        n++;
    }
    buf_free(&r.line);
    if (rc < 0) {
        free_entries(e, n);
        return -1;
    }
    *entries = e;
    *count = n;
    return 0;
}

/* write_lmdb - the entries (sorted; of equal keys only the last) into a
 * new LMDB file tmp.  0, or -1 with *err. */
static int write_lmdb(const char *tmp, const build_entry *e, size_t n, size_t text_len,
                      char **err)
{
    size_t mapsize = ((2 * text_len + 64 * n + (1u << 20)) | 0xffff) + 1;
    int rc = 0;

    for (int attempt = 0; attempt < MAP_BUILD_TRIES; attempt++, mapsize *= 2) {
        MDB_env *env;
        MDB_txn *txn = NULL;
        MDB_dbi dbi;

        if (truncate(tmp, 0) != 0) {
            *err = xasprintf("%s: cannot truncate: %s", tmp, strerror(errno));
            return -1;
        }
        if ((rc = mdb_env_create(&env)) != 0) {
            *err = xasprintf("%s: mdb_env_create: %s", tmp, mdb_strerror(rc));
            return -1;
        }
        if ((rc = mdb_env_set_mapsize(env, mapsize)) != 0 ||
            (rc = mdb_env_open(env, tmp, MDB_NOSUBDIR | MDB_NOLOCK, 0600)) != 0 ||
            (rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0 ||
            (rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0)
            goto next;
        for (size_t i = 0; i < n && rc == 0; i++) {
            MDB_val k, v;

            if (i + 1 < n && e[i].klen == e[i + 1].klen &&
                memcmp(e[i].key, e[i + 1].key, e[i].klen) == 0)
                continue;           /* a later line has the same key */
            k.mv_data = e[i].key;
            k.mv_size = e[i].klen;
            v.mv_data = e[i].value;
            v.mv_size = strlen(e[i].value);
            rc = mdb_put(txn, dbi, &k, &v, MDB_APPEND);
        }
        if (rc == 0) {
            rc = mdb_txn_commit(txn);   /* fsyncs the file */
            txn = NULL;
        }
next:
        if (txn)
            mdb_txn_abort(txn);
        mdb_env_close(env);
        if (rc != MDB_MAP_FULL)
            break;
    }
    if (rc != 0) {
        *err = xasprintf("%s: cannot write: %s", tmp, mdb_strerror(rc));
        return -1;
    }
    return 0;
}

/* dir_of - the directory part of path ("." when there is none). */
static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL)
        return xstrdup(".");
    if (slash == path)
        return xstrdup("/");
    return xstrndup(path, (size_t)(slash - path));
}

long map_build(const char *path, char **err)
{
    size_t len = 0, n = 0, stored = 0, maxkey;
    build_entry *e = NULL;
    file_sig sig;
    struct stat st;
    char *text, *tmp, *final, *dir;
    MDB_env *probe;
    int fd, rc;

    *err = NULL;
    if ((text = read_text(path, &len, &sig, err)) == NULL)
        return -1;
    if ((rc = mdb_env_create(&probe)) != 0) {
        *err = xasprintf("%s: mdb_env_create: %s", path, mdb_strerror(rc));
        free(text);
        return -1;
    }
    maxkey = (size_t)mdb_env_get_maxkeysize(probe);
    mdb_env_close(probe);
    rc = parse_hash(path, text, len, maxkey, &e, &n, err);
    free(text);
    if (rc != 0)
        return -1;
    if (n > 1)
        qsort(e, n, sizeof(*e), entry_cmp);
    for (size_t i = 0; i < n; i++) {
        if (i + 1 < n && e[i].klen == e[i + 1].klen &&
            memcmp(e[i].key, e[i + 1].key, e[i].klen) == 0) {
            char shown[MAP_SHOW_MAX + 1];

            log_warn("%s:%d: duplicate key \"%s\" (also on line %d); the last one wins",
                     path, e[i + 1].line, show(shown, e[i].key, e[i].klen), e[i].line);
        } else {
            stored++;
        }
    }

    final = lmdb_name(path);
    tmp = xasprintf("%s.XXXXXX", final);
    if ((fd = mkstemp(tmp)) < 0) {
        *err = xasprintf("%s: cannot create: %s", tmp, strerror(errno));
        goto fail_nofile;
    }
    /* readers (stages running as mail_owner) get what the source gives them */
    if (stat(path, &st) == 0) {
        if (geteuid() == 0 && fchown(fd, st.st_uid, st.st_gid) != 0)
            log_warn("%s: cannot give it to uid %ld gid %ld: %s", tmp, (long)st.st_uid,
                     (long)st.st_gid, strerror(errno));
        if (fchmod(fd, st.st_mode & 0666) != 0)
            log_warn("%s: cannot chmod: %s", tmp, strerror(errno));
    }
    close(fd);
    if (write_lmdb(tmp, e, n, len, err) != 0)
        goto fail;
    if (rename(tmp, final) != 0) {
        *err = xasprintf("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        goto fail;
    }
    dir = dir_of(final);
    if (fs_fsync_dir(dir) != 0)
        log_warn("%s: fsync of the directory: %s", dir, strerror(errno));
    free(dir);
    free(tmp);
    free(final);
    free_entries(e, n);
    return (long)stored;

fail:
    unlink(tmp);
fail_nofile:
    free(tmp);
    free(final);
    free_entries(e, n);
    return -1;
}

/* ---------------------------------------------------------------- cidr */

/* cidr_parse_addr - "192.0.2.1", "2001:db8::1", "[::1]" into family and
 * 16 bytes (IPv4 in the first 4).  With unmap, an IPv4-mapped IPv6
 * address (a client's ::ffff:192.0.2.1) counts as IPv4. */
static bool cidr_parse_addr(const char *s, size_t len, bool unmap, int *family,
                            unsigned char a[16])
{
    char text[INET6_ADDRSTRLEN + 1];

    if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
        s++;
        len -= 2;
    }
    if (len == 0 || len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = 0;
    memset(a, 0, 16);
    if (inet_pton(AF_INET, text, a) == 1) {
        *family = AF_INET;
        return true;
    }
    if (strchr(text, ':') == NULL || inet_pton(AF_INET6, text, a) != 1)
        return false;
    *family = AF_INET6;
    if (unmap && IN6_IS_ADDR_V4MAPPED((const struct in6_addr *)(const void *)a)) {
        memmove(a, a + 12, 4);
        memset(a + 4, 0, 12);
        *family = AF_INET;
    }
    return true;
}

static void cidr_mask(unsigned char a[16], unsigned prefix)
{
    for (unsigned i = 0; i < 16; i++) {
        unsigned bits = prefix > i * 8 ? prefix - i * 8 : 0;

        if (bits < 8)
            a[i] &= (unsigned char)(0xff << (8 - bits));
    }
}

/* cidr_parse_rule - "network[/prefix]" of line into r; NULL or an error
 * message (malloc'd, without the PATH:LINE: part). */
static char *cidr_parse_rule(const char *key, size_t klen, cidr_rule *r)
{
    const char *slash = memchr(key, '/', klen);
    size_t alen = slash ? (size_t)(slash - key) : klen;
    char shown[MAP_SHOW_MAX + 1];
    unsigned char masked[16];
    unsigned max;

    if (!cidr_parse_addr(key, alen, false, &r->family, r->addr))
        return xasprintf("\"%s\" is not a network (use 192.0.2.0/24, 2001:db8::/32 "
                         "or one address)", show(shown, key, klen));
    max = r->family == AF_INET ? 32 : 128;
    r->prefix = max;
    if (slash) {
        const char *p = slash + 1, *end = key + klen;
        unsigned long v = 0;

        if (p == end || end - p > 3)
            return xasprintf("\"%s\": bad prefix length", show(shown, key, klen));
        for (; p < end; p++) {
            if (*p < '0' || *p > '9')
                return xasprintf("\"%s\": bad prefix length", show(shown, key, klen));
            v = v * 10 + (unsigned long)(*p - '0');
        }
        if (v > max)
            return xasprintf("\"%s\": prefix length above %u", show(shown, key, klen), max);
        r->prefix = (unsigned)v;
    }
    memcpy(masked, r->addr, 16);
    cidr_mask(masked, r->prefix);
    if (memcmp(masked, r->addr, 16) != 0) {
        char net[INET6_ADDRSTRLEN];

        inet_ntop(r->family, masked, net, sizeof(net));
        return xasprintf("\"%s\" has host bits set (did you mean %s/%u?)",
                         show(shown, key, klen), net, r->prefix);
    }
    return NULL;
}

static void free_cidr(cidr_rule *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(c[i].value);
    free(c);
}

static int load_cidr(const map_t *m, map_data *d, char **err)
{
    size_t len, cap = 0;
    char *text = read_text(m->path, &len, &d->sig, err);
    reader_t r;
    int rc;

    if (text == NULL)
        return -1;
    reader_init(&r, m->path, text, len);
    while ((rc = reader_next(&r, err)) > 0) {
        char shown[MAP_SHOW_MAX + 1], *value, *problem;
        cidr_rule rule;
        size_t klen;

        split_key(r.line.data, &klen, &value);
        if ((problem = cidr_parse_rule(r.line.data, klen, &rule)) != NULL) {
            *err = xasprintf("%s:%d: %s", m->path, r.start, problem);
            free(problem);
            rc = -1;
            break;
        }
        if (*value == 0) {
            *err = xasprintf("%s:%d: network \"%s\" has no value", m->path, r.start,
                             show(shown, r.line.data, klen));
            rc = -1;
            break;
        }
        if (d->ncidr == cap) {
            cap = cap ? cap * 2 : 16;
            d->cidr = xrealloc(d->cidr, cap * sizeof(*d->cidr));
        }
        rule.value = xstrdup(value);
        d->cidr[d->ncidr++] = rule;
    }
    buf_free(&r.line);
    free(text);
    if (rc < 0) {
        free_cidr(d->cidr, d->ncidr);
        d->cidr = NULL;
        d->ncidr = 0;
        return -1;
    }
    return 0;
}

static map_status lookup_cidr(map_t *m, const char *key, char **value)
{
    unsigned char a[16];
    int family;

    if (!cidr_parse_addr(key, strlen(key), true, &family, a))
        return MAP_NOTFOUND;
    for (size_t i = 0; i < m->data.ncidr; i++) {
        const cidr_rule *r = &m->data.cidr[i];
        unsigned char masked[16];

        if (r->family != family)
            continue;
        memcpy(masked, a, 16);
        cidr_mask(masked, r->prefix);
        if (memcmp(masked, r->addr, 16) == 0) {
            *value = xstrdup(r->value);
            return MAP_FOUND;
        }
    }
    return MAP_NOTFOUND;
}

/* ---------------------------------------------------------------- pcre */

/* dollar_ref - v[0] is '$': 1 for a group reference ($1, ${12}, $(3);
 * *group and *len set), 0 for "$$" (*len 2), -1 when it is neither. */
static int dollar_ref(const char *v, unsigned *group, size_t *len)
{
    const char *p = v + 1;
    char close = 0;
    unsigned n = 0;
    int digits = 0;

    if (*p == '$') {
        *len = 2;
        return 0;
    }
    if (*p == '{' || *p == '(') {
        close = *p == '{' ? '}' : ')';
        p++;
    }
    for (; *p >= '0' && *p <= '9'; p++, digits++)
        if (digits < 6)
            n = n * 10 + (unsigned)(*p - '0');
    if (digits == 0 || digits > 5)
        return -1;
    if (close) {
        if (*p != close)
            return -1;
        p++;
    }
    *group = n;
    *len = (size_t)(p - v);
    return 1;
}

/* check_value - the $ references of a pcre value against its pattern;
 * NULL or a problem (malloc'd, without PATH:LINE:). */
static char *check_value(const char *value, uint32_t groups, bool negate)
{
    for (const char *p = strchr(value, '$'); p; p = strchr(p, '$')) {
        unsigned g;
        size_t len;
        int kind = dollar_ref(p, &g, &len);

        if (kind < 0)
            return xasprintf("bad $ in the value (use $1 .. $9, ${1} or $(1) for a group, "
                             "$$ for a dollar sign)");
        if (kind == 1 && negate)
            return xasprintf("$%u in the value of a negated pattern (!/.../ has no groups "
                             "when it applies)", g);
        if (kind == 1 && (g == 0 || g > groups))
            return xasprintf("$%u in the value, but the pattern has %u group%s", g,
                             (unsigned)groups, groups == 1 ? "" : "s");
        p += len;
    }
    return NULL;
}

/* expand - value with its references replaced by the groups of the match
 * of key (ov: the match's ovector, count: its pairs). */
static char *expand(const char *value, const char *key, const PCRE2_SIZE *ov, int count)
{
    buf_t b = BUF_INIT;
    const char *p = value, *dollar;

    while ((dollar = strchr(p, '$')) != NULL) {
        unsigned g = 0;
        size_t len = 1;
        int kind = dollar_ref(dollar, &g, &len);

        buf_append(&b, p, (size_t)(dollar - p));
        if (kind == 0) {
            buf_append_char(&b, '$');
        } else if (kind == 1) {
            if ((int)g < count && ov[2 * g] != PCRE2_UNSET)
                buf_append(&b, key + ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
        } else {
            log_panic("expand: unchecked $ in \"%s\"", value);
        }
        p = dollar + len;
    }
    buf_append_str(&b, p);
    return buf_steal(&b, NULL);
}

/* pcre_flags - the compile options for Postfix's flag letters: each
 * toggles a default.  -1 on a letter that is not a flag. */
static int pcre_flags(const char *f, size_t n, uint32_t *opts, char *bad)
{
    *opts = PCRE2_CASELESS | PCRE2_DOTALL;
    for (size_t i = 0; i < n; i++) {
        switch (f[i]) {
        case 'i': *opts ^= PCRE2_CASELESS; break;
        case 'm': *opts ^= PCRE2_MULTILINE; break;
        case 's': *opts ^= PCRE2_DOTALL; break;
        case 'x': *opts ^= PCRE2_EXTENDED; break;
        case 'A': *opts ^= PCRE2_ANCHORED; break;
        case 'E': *opts ^= PCRE2_DOLLAR_ENDONLY; break;
        case 'U': *opts ^= PCRE2_UNGREEDY; break;
        case 'X': break;   /* PCRE_EXTRA: PCRE2 always refuses unknown escapes */
        default:
            *bad = f[i];
            return -1;
        }
    }
    return 0;
}

/* pcre_pattern - "[!]/re/flags" at *pp: compiled into *re (the caller
 * frees it), *pp moved past it.  NULL or a problem (malloc'd). */
static char *pcre_pattern(const char **pp, bool *negate, pcre2_code **re, uint32_t *groups)
{
    const char *p = *pp, *q, *f;
    char delim, bad = 0, msg[256];
    uint32_t opts;
    PCRE2_SIZE off;
    int code;

    *negate = false;
    if (*p == '!') {
        *negate = true;
        p++;
    }
    delim = *p;
    if (delim == 0 || isalnum((unsigned char)delim) || delim == ' ' || delim == '\t' ||
        delim == '\\')
        return xasprintf("expected /pattern/ (or !/pattern/, if, endif)");
    for (q = p + 1; *q && *q != delim; q++)
        if (*q == '\\' && q[1])
            q++;
    if (*q == 0)
        return xasprintf("no closing %c after the pattern", delim);
    for (f = q + 1; *f && *f != ' ' && *f != '\t'; f++)
        ;
    if (pcre_flags(q + 1, (size_t)(f - q - 1), &opts, &bad) != 0)
        return xasprintf("unknown flag '%c' after the pattern (flags: i m s x A E U X)", bad);
    *re = pcre2_compile((PCRE2_SPTR)(p + 1), (PCRE2_SIZE)(q - p - 1), opts, &code, &off, NULL);
    if (*re == NULL) {
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof(msg));
        return xasprintf("bad pattern: %s (at offset %zu)", msg, (size_t)off);
    }
    (void)pcre2_jit_compile(*re, PCRE2_JIT_COMPLETE);   /* an optimisation only */
    pcre2_pattern_info(*re, PCRE2_INFO_CAPTURECOUNT, groups);
    *pp = f;
    return NULL;
}

/* word_is - does the entry start with the keyword (any case), followed
 * by something that is not a letter or digit? */
static bool word_is(const char *s, const char *word)
{
    size_t n = strlen(word);

    return strncasecmp(s, word, n) == 0 && !isalnum((unsigned char)s[n]);
}

/* pcre_parse_entry - one entry into rule; NULL or a problem (malloc'd). */
static char *pcre_parse_entry(const char *line, pcre_rule *rule, uint32_t *groups)
{
    const char *p = line;
    char *problem;

    memset(rule, 0, sizeof(*rule));
    if (word_is(p, "endif")) {
        rule->kind = RULE_ENDIF;
        p += 5;
        p += strspn(p, " \t");
        return *p ? xasprintf("text after endif") : NULL;
    }
    rule->kind = RULE_MATCH;
    if (word_is(p, "if")) {
        rule->kind = RULE_IF;
        p += 2;
        p += strspn(p, " \t");
    }
    if ((problem = pcre_pattern(&p, &rule->negate, &rule->re, groups)) != NULL)
        return problem;
    p += strspn(p, " \t");
    if (rule->kind == RULE_IF)
        return *p ? xasprintf("text after the pattern of an if (its rules go on the next lines)")
                  : NULL;
    if (*p == 0)
        return xasprintf("the pattern has no value");
    if ((problem = check_value(p, *groups, rule->negate)) != NULL)
        return problem;
    rule->value = xstrdup(p);
    return NULL;
}

static void free_pcre(pcre_rule *rules, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        pcre2_code_free(rules[i].re);
        free(rules[i].value);
    }
    free(rules);
}

static int load_pcre(const map_t *m, map_data *d, char **err)
{
    size_t len, cap = 0, depth = 0, opencap = 0, *open_ifs = NULL;
    uint32_t most = 0;
    char *text = read_text(m->path, &len, &d->sig, err);
    reader_t r;
    int rc;

    if (text == NULL)
        return -1;
    reader_init(&r, m->path, text, len);
    while ((rc = reader_next(&r, err)) > 0) {
        uint32_t groups = 0;
        pcre_rule rule;
        char *problem;

        if ((problem = pcre_parse_entry(r.line.data, &rule, &groups)) != NULL) {
            *err = xasprintf("%s:%d: %s", m->path, r.start, problem);
            free(problem);
            pcre2_code_free(rule.re);
            rc = -1;
            break;
        }
        rule.line = r.start;
        if (rule.kind == RULE_ENDIF) {
            if (depth == 0) {
                *err = xasprintf("%s:%d: endif without if", m->path, r.start);
                rc = -1;
                break;
            }
            d->pcre[open_ifs[--depth]].endif = d->npcre;
        } else if (rule.kind == RULE_IF) {
            if (depth == opencap) {
                opencap = opencap ? opencap * 2 : 8;
                open_ifs = xrealloc(open_ifs, opencap * sizeof(*open_ifs));
            }
            open_ifs[depth++] = d->npcre;
        }
        if (groups > most)
            most = groups;
        if (d->npcre == cap) {
            cap = cap ? cap * 2 : 16;
            d->pcre = xrealloc(d->pcre, cap * sizeof(*d->pcre));
        }
        d->pcre[d->npcre++] = rule;
    }
    if (rc == 0 && depth > 0) {
        *err = xasprintf("%s:%d: if without endif", m->path, d->pcre[open_ifs[depth - 1]].line);
        rc = -1;
    }
    free(open_ifs);
    buf_free(&r.line);
    free(text);
    if (rc < 0) {
        free_pcre(d->pcre, d->npcre);
        d->pcre = NULL;
        d->npcre = 0;
        return -1;
    }
    if ((d->md = pcre2_match_data_create(most + 1, NULL)) == NULL)
        log_panic("load_pcre: pcre2_match_data_create: out of memory");
    return 0;
}

/* pcre_try - does rule r apply to key?  -1 when not; else the number of
 * group pairs set in m's match data (0 for a negated rule).  A match that
 * fails (a resource limit) is warned about and does not apply, as in
 * Postfix. */
static int pcre_try(map_t *m, const pcre_rule *r, const char *key, size_t len)
{
    int rc = pcre2_match(r->re, (PCRE2_SPTR)key, len, 0, 0, m->data.md, NULL);

    if (rc >= 0)
        return r->negate ? -1 : rc;
    if (rc == PCRE2_ERROR_NOMATCH)
        return r->negate ? 0 : -1;
    {
        char msg[256], shown[MAP_SHOW_MAX + 1];

        pcre2_get_error_message(rc, (PCRE2_UCHAR *)msg, sizeof(msg));
        log_warn("%s:%d: matching \"%s\" failed: %s; the rule is skipped",
                 m->path, r->line, show(shown, key, len), msg);
    }
    return -1;
}

static map_status lookup_pcre(map_t *m, const char *key, char **value)
{
    const map_data *d = &m->data;
    size_t len = strlen(key);
    int pairs;

    for (size_t i = 0; i < d->npcre; i++) {
        const pcre_rule *r = &d->pcre[i];

        if (r->kind == RULE_ENDIF)
            continue;
        if ((pairs = pcre_try(m, r, key, len)) < 0) {
            if (r->kind == RULE_IF)
                i = r->endif;       /* skip the block */
            continue;
        }
        if (r->kind == RULE_MATCH) {
            *value = expand(r->value, key, pcre2_get_ovector_pointer(d->md), pairs);
            return MAP_FOUND;
        }
    }
    return MAP_NOTFOUND;
}

/* ---------------------------------------------------------------- maps */

static void data_free(map_data *d)
{
    if (d->txn)
        mdb_txn_abort(d->txn);
    if (d->env)
        mdb_env_close(d->env);
    free_cidr(d->cidr, d->ncidr);
    free_pcre(d->pcre, d->npcre);
    pcre2_match_data_free(d->md);
    memset(d, 0, sizeof(*d));
}

map_t *map_open(const char *spec, const char *dir, char **err)
{
    const char *colon = strchr(spec, ':'), *path = spec;
    const map_type *t = &map_types[0];
    map_t *m;

    *err = NULL;
    /* "type:path"; a bare path is hash:, as postmap's default type */
    if (colon && colon > spec && strspn(spec, "abcdefghijklmnopqrstuvwxyz0123456789") ==
                                     (size_t)(colon - spec)) {
        for (t = map_types; t->name; t++)
            if (strlen(t->name) == (size_t)(colon - spec) &&
                strncmp(t->name, spec, (size_t)(colon - spec)) == 0)
                break;
        if (t->name == NULL) {
            *err = xasprintf("%s: unknown table type \"%.*s\" (use hash, lmdb, cidr or pcre)",
                             spec, (int)(colon - spec), spec);
            return NULL;
        }
        path = colon + 1;
    }
    if (*path == 0) {
        *err = xasprintf("%s: no file name after the table type", spec);
        return NULL;
    }
    m = xcalloc(1, sizeof(*m));
    m->type = t;
    m->spec = xstrdup(spec);       /* as given: callers compare it */
    m->path = path[0] == '/' || dir == NULL || dir[0] == 0 ? xstrdup(path)
                                                          : xasprintf("%s/%s", dir, path);
    m->file = t->compiled ? lmdb_name(m->path) : xstrdup(m->path);
    if (t->load(m, &m->data, err) != 0) {
        free(m->spec);
        free(m->path);
        free(m->file);
        free(m);
        return NULL;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->checked_ms = time_mono_ms();
    return m;
}

void map_close(map_t **mp)
{
    map_t *m;

    if (mp == NULL || (m = *mp) == NULL)
        return;
    data_free(&m->data);
    pthread_mutex_destroy(&m->lock);
    free(m->spec);
    free(m->path);
    free(m->file);
    xfree(mp);
}

const char *map_spec(const map_t *m)
{
    return m->spec;
}

/* map_refresh - reload m when its file changed (looked at once a second
 * at most); a file that does not load leaves the old contents in place
 * and is warned about once. */
static void map_refresh(map_t *m)
{
    int64_t now = time_mono_ms();
    map_data fresh;
    struct stat st;
    file_sig sig;
    char *err = NULL;

    if (now - m->checked_ms < MAP_CHECK_MS)
        return;
    m->checked_ms = now;
    memset(&sig, 0, sizeof(sig));
    if (stat(m->file, &st) == 0)
        sig_of(&st, &sig);
    if (sig_equal(&sig, &m->data.sig) || (m->have_bad && sig_equal(&sig, &m->bad)))
        return;
    memset(&fresh, 0, sizeof(fresh));
    if (m->type->load(m, &fresh, &err) != 0) {
        log_warn("%s; still using the table loaded before (%s)", err, m->spec);
        free(err);
        m->bad = sig;
        m->have_bad = true;
        return;
    }
    data_free(&m->data);
    m->data = fresh;
    m->have_bad = false;
    log_info("table %s reloaded", m->spec);
}

map_status map_lookup(map_t *m, const char *key, char **value)
{
    map_status s;

    *value = NULL;
    pthread_mutex_lock(&m->lock);
    map_refresh(m);
    s = m->type->lookup(m, key, value);
    pthread_mutex_unlock(&m->lock);
    return s;
}
