/* users.c - the users map in Dovecot's passwd-file format.
 *
 * The file is read whole into a sorted array (lookups by binary search on
 * the lower-cased address) and re-read when its mtime, size or inode
 * change, checked at most once a second.  Writes (users_file_set) go
 * through a temporary file and rename, so a reader (correio or Dovecot)
 * never sees half a file.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "fsutil.h"
#include "log.h"
#include "users.h"
#include "xalloc.h"

#define USERS_HASH_PREFIX "$y$"   /* yescrypt, Debian's default */

struct users {
    char       *path;
    user_entry *entries;      /* sorted by address */
    unsigned    count;
    char       *text;         /* the file; entries point into it */
    bool        present;      /* did the file exist at the last load? */
    struct stat st;
    time_t      checked;      /* last stat, seconds */
};

static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const user_entry *)a)->address, ((const user_entry *)b)->address);
}

static void users_clear(users_t *u)
{
    xfree(&u->entries);
    xfree(&u->text);
    u->count = 0;
}

/* users_load - (re)read the file; on failure the map is empty. */
static void users_load(users_t *u)
{
    unsigned cap = 0, lineno = 0;
    char *line, *next;

    users_clear(u);
    u->present = stat(u->path, &u->st) == 0;
    if ((u->text = fs_read_file(u->path, NULL)) == NULL) {
        if (errno != ENOENT)
            log_warn("%s: cannot read the users file: %m", u->path);
        u->present = u->present && errno != ENOENT;
        return;
    }
    for (line = u->text; line && *line; line = next) {
        char *nl = strchr(line, '\n');
        char *field[8] = {0};
        char *p = line;
        int n = 0;

        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = 0;
        lineno++;
        if (nl && nl > line && nl[-1] == '\r')
            nl[-1] = 0;
        if (*line == 0 || *line == '#')
            continue;
        /* address:password:uid:gid:gecos:home:shell:extra fields */
        while (n < 8) {
            field[n++] = p;
            if (n == 8 || (p = strchr(p, ':')) == NULL)
                break;
            *p++ = 0;
        }
        if (n < 2 || *field[0] == 0) {
            log_warn("%s:%u: not address:password, skipped", u->path, lineno);
            continue;
        }
        for (char *c = field[0]; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c - 'A' + 'a');
        if (u->count == cap) {
            cap = cap ? cap * 2 : 64;
            u->entries = xrealloc(u->entries, cap * sizeof(*u->entries));
        }
        u->entries[u->count].address = field[0];
        u->entries[u->count].password = field[1];
        u->entries[u->count].home = n > 5 ? field[5] : "";
        u->entries[u->count].extra = n > 7 ? field[7] : "";
        u->count++;
    }
    if (u->count == 0)
        return;
    qsort(u->entries, u->count, sizeof(*u->entries), entry_cmp);
    /* duplicates: keep the first of each address (qsort is not stable, so
     * "first" means one of them); tell the operator */
    {
        unsigned out = 1;
        for (unsigned i = 1; i < u->count; i++) {
            if (strcmp(u->entries[i].address, u->entries[out - 1].address) == 0) {
                log_warn("%s: %s appears more than once; one line is used",
                         u->path, u->entries[i].address);
                continue;
            }
            u->entries[out++] = u->entries[i];
        }
        u->count = out;
    }
}

bool users_extra_field(const user_entry *e, const char *name, char *out, size_t size)
{
    size_t nlen = strlen(name);
    for (const char *p = e->extra; *p;) {
        p += strspn(p, " \t");
        size_t len = strcspn(p, " \t");
        if (len > nlen && p[nlen] == '=' && strncmp(p, name, nlen) == 0) {
            snprintf(out, size, "%.*s", (int)(len - nlen - 1), p + nlen + 1);
            return true;
        }
        p += len;
    }
    return false;
}

users_t *users_open(const char *path)
{
    users_t *u = xcalloc(1, sizeof(*u));

    u->path = xstrdup(path);
    users_load(u);
    u->checked = time(NULL);
    return u;
}

bool users_refresh(users_t *u)
{
    time_t now = time(NULL);
    struct stat st;
    bool present;

    if (now == u->checked)
        return false;
    u->checked = now;
    present = stat(u->path, &st) == 0;
    if (present == u->present
        && (!present
            || (st.st_mtim.tv_sec == u->st.st_mtim.tv_sec
                && st.st_mtim.tv_nsec == u->st.st_mtim.tv_nsec
                && st.st_size == u->st.st_size && st.st_ino == u->st.st_ino
                && st.st_dev == u->st.st_dev)))
        return false;
    users_load(u);
    log_info("%s: reloaded, %u users", u->path, u->count);
    return true;
}

const user_entry *users_lookup(users_t *u, const char *address)
{
    user_entry key;
    char *lower;
    const user_entry *found;

    if (u == NULL || address == NULL || u->count == 0)
        return NULL;
    lower = xstrdup(address);
    for (char *c = lower; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    key.address = lower;
    found = bsearch(&key, u->entries, u->count, sizeof(*u->entries), entry_cmp);
    free(lower);
    return found;
}

unsigned users_count(const users_t *u)
{
    return u ? u->count : 0;
}

void users_close(users_t **up)
{
    if (up && *up) {
        users_clear(*up);
        free((*up)->path);
        xfree(up);
    }
}

/* ---------------------------------------------------------------- passwords */

char *users_hash_password(const char *password)
{
    char *salt = crypt_gensalt_ra(USERS_HASH_PREFIX, 0, NULL, 0);
    void *data = NULL;
    int size = 0;
    const char *hash;
    char *out;

    if (salt == NULL)
        log_fatal("crypt_gensalt_ra(%s): %m (is libxcrypt built with yescrypt?)",
                  USERS_HASH_PREFIX);
    hash = crypt_ra(password, salt, &data, &size);
    if (hash == NULL || hash[0] == '*')
        log_fatal("crypt_ra with yescrypt failed: %m");
    out = xasprintf("{CRYPT}%s", hash);
    free(data);
    free(salt);
    return out;
}

/* ct_equal - compare without an early exit, so timing tells nothing
 * about where a guess went wrong. */
static bool ct_equal(const char *a, const char *b)
{
    size_t alen = strlen(a), blen = strlen(b);
    unsigned char diff = alen != blen;

    for (size_t i = 0; i < blen; i++)
        diff |= (unsigned char)(a[alen ? i % alen : 0] ^ b[i]);
    return diff == 0 && alen == blen;
}

bool users_verify_password(const user_entry *e, const char *password)
{
    static const char *const crypt_schemes[] = {
        "CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "MD5-CRYPT", NULL,
    };
    const char *stored, *close_brace;
    char scheme[32];
    bool ok;

    /* an empty password never logs in, whatever the stored value says */
    if (e == NULL || password == NULL || password[0] == 0 || e->password == NULL
        || e->password[0] == 0)
        return false;
    stored = e->password;
    if (stored[0] == '{' && (close_brace = strchr(stored, '}')) != NULL
        && (size_t)(close_brace - stored) < sizeof(scheme)) {
        memcpy(scheme, stored + 1, (size_t)(close_brace - stored - 1));
        scheme[close_brace - stored - 1] = 0;
        stored = close_brace + 1;
    } else {
        strcpy(scheme, "CRYPT");   /* Dovecot's default for passwd-file */
    }
    if (strcasecmp(scheme, "PLAIN") == 0 || strcasecmp(scheme, "CLEARTEXT") == 0)
        return ct_equal(password, stored);
    for (int i = 0; crypt_schemes[i]; i++) {
        if (strcasecmp(scheme, crypt_schemes[i]) == 0) {
            void *data = NULL;
            int size = 0;
            const char *h;

            if (stored[0] == 0)
                return false;
            h = crypt_ra(password, stored, &data, &size);
            ok = h != NULL && h[0] != '*' && ct_equal(h, stored);
            free(data);
            return ok;
        }
    }
    log_warn("users: %s: unknown password scheme {%s}", e->address, scheme);
    return false;
}

/* ---------------------------------------------------------------- editing */

/* line_is_for - does this passwd-file line belong to address? */
static bool line_is_for(const char *line, size_t len, const char *address)
{
    size_t alen = strlen(address);

    return len > alen && line[0] != '#' && line[alen] == ':'
           && strncasecmp(line, address, alen) == 0;
}

int users_file_set(const char *path, const char *address, const char *hash,
                   char **err)
{
    buf_t out = BUF_INIT;
    char *old, *tmp = NULL, *dircopy = NULL;
    size_t old_len = 0;
    struct stat st;
    bool existed, replaced = false;
    int fd = -1;

    *err = NULL;
    if (*address == 0 || strpbrk(address, ":\n\r") || strpbrk(hash, ":\n\r")) {
        *err = xasprintf("%s: address and hash must not be empty or contain ':' or newlines",
                         path);
        return -1;
    }
    existed = stat(path, &st) == 0;
    old = fs_read_file(path, &old_len);
    if (old == NULL && errno != ENOENT) {
        *err = xasprintf("%s: cannot read: %s", path, strerror(errno));
        return -1;
    }
    /* copy line by line, replacing the password field of address's line
     * and keeping the fields after it */
    for (size_t pos = 0; old && pos < old_len;) {
        const char *line = old + pos;
        const char *nl = memchr(line, '\n', old_len - pos);
        size_t len = nl ? (size_t)(nl - line) : old_len - pos;

        if (!replaced && line_is_for(line, len, address)) {
            const char *rest = memchr(line + strlen(address) + 1, ':',
                                      len - strlen(address) - 1);
            buf_printf(&out, "%s:%s", address, hash);
            if (rest)
                buf_append(&out, rest, len - (size_t)(rest - line));
            buf_append_char(&out, '\n');
            replaced = true;
        } else {
            buf_append(&out, line, len);
            buf_append_char(&out, '\n');
        }
        pos += len + 1;
    }
    if (!replaced)
        buf_printf(&out, "%s:%s\n", address, hash);
    free(old);

    tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) {
        *err = xasprintf("%s: cannot create: %s", tmp, strerror(errno));
        goto fail;
    }
    if (fchmod(fd, 0640) != 0) {
        *err = xasprintf("%s: chmod: %s", tmp, strerror(errno));
        goto fail;
    }
    if (existed && fchown(fd, (uid_t)-1, st.st_gid) != 0)
        log_warn("%s: cannot keep group %ld: %m", path, (long)st.st_gid);
    if (fs_write_all(fd, out.data, out.len) != 0 || fsync(fd) != 0) {
        *err = xasprintf("%s: write: %s", tmp, strerror(errno));
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        *err = xasprintf("%s: close: %s", tmp, strerror(errno));
        goto fail;
    }
    fd = -1;
    if (rename(tmp, path) != 0) {
        *err = xasprintf("rename %s to %s: %s", tmp, path, strerror(errno));
        goto fail;
    }
    dircopy = xstrdup(path);
    if (fs_fsync_dir(dirname(dircopy)) != 0) {
        *err = xasprintf("%s: fsync of its directory: %s", path, strerror(errno));
        free(dircopy);
        free(tmp);
        buf_free(&out);
        return -1;
    }
    free(dircopy);
    free(tmp);
    buf_free(&out);
    return 0;
fail:
    if (fd >= 0)
        close(fd);
    if (tmp)
        unlink(tmp);
    free(tmp);
    buf_free(&out);
    return -1;
}
