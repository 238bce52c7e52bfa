/* backup_files.c - tree copies, LMDB hot copies and the tar child of
 * `correio backup` / `correio restore` (see backup_files.h).
 *
 * Walks are depth-limited (BK_MAX_DEPTH), so a symbolic link loop in a
 * configuration directory ends as an error, not as a full disk.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backup_files.h"
#include "ctl.h"
#include "fsutil.h"
#include "xalloc.h"

#define BK_MAX_DEPTH 24
#define BK_MAX_DBS 256          /* named databases looked at per environment */
#define BK_COPY_CHUNK 65536

/* ---------------------------------------------------------------- helpers */

void bk_excl_add(bk_excl *x, const char *path)
{
    struct stat st;

    if (x->n >= BK_EXCL_MAX || stat(path, &st) != 0)
        return;
    x->d[x->n].dev = st.st_dev;
    x->d[x->n].ino = st.st_ino;
    x->n++;
}

static bool bk_excluded(const bk_excl *x, const struct stat *st)
{
    for (size_t i = 0; x && i < x->n; i++)
        if (x->d[i].dev == st->st_dev && x->d[i].ino == st->st_ino)
            return true;
    return false;
}

/* list_push - append a copy of s to the NULL-terminated *list. */
static void list_push(char ***list, size_t *n, const char *s)
{
    *list = xrealloc(*list, (*n + 2) * sizeof(**list));
    (*list)[(*n)++] = xstrdup(s);
    (*list)[*n] = NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void bk_free_list(char ***list)
{
    if (*list == NULL)
        return;
    for (char **p = *list; *p; p++)
        xfree(p);
    xfree(list);
}

bool bk_safe_relpath(const char *rel)
{
    const char *p = rel;

    if (*rel == '\0' || *rel == '/')
        return false;
    for (const char *c = rel; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return false;
    while (*p) {
        size_t len = strcspn(p, "/");

        if (len == 0 || (len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return false;
        p += len;
        if (*p == '/')
            p++;
    }
    return p[-1] != '/';
}

/* copy_fd - all of in to out.  0 or -1 with errno. */
static int copy_fd(int in, int out)
{
    char *buf = xmalloc(BK_COPY_CHUNK);
    ssize_t n;
    int rc = 0;

    while ((n = read(in, buf, BK_COPY_CHUNK)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        if (fs_write_all(out, buf, (size_t)n) != 0) {
            rc = -1;
            break;
        }
    }
    xfree(&buf);
    return rc;
}

/* copy_file - src to a new file dst with mode (no fsync: a staging copy). */
static int copy_file(const char *src, const char *dst, mode_t mode)
{
    int in, out, rc;

    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
        ctl_error("cannot read %s: %s", src, strerror(errno));
        return -1;
    }
    if ((out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777)) < 0) {
        ctl_error("cannot create %s: %s", dst, strerror(errno));
        close(in);
        return -1;
    }
    rc = copy_fd(in, out);
    if (rc != 0)
        ctl_error("cannot copy %s to %s: %s", src, dst, strerror(errno));
    close(in);
    if (close(out) != 0 && rc == 0) {
        ctl_error("cannot write %s: %s", dst, strerror(errno));
        rc = -1;
    }
    return rc;
}

/* ---------------------------------------------------------------- trees */

static long copy_tree_at(const char *src, const char *dst, const bk_excl *x, int depth)
{
    DIR *d;
    struct dirent *e;
    long count = 0;

    if (depth > BK_MAX_DEPTH) {
        ctl_error("%s: directories nested too deep (a symbolic link loop?)", src);
        return -1;
    }
    if ((d = opendir(src)) == NULL) {
        ctl_error("cannot read the directory %s: %s", src, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        char *s, *t;
        struct stat st;
        long n = 0;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        s = xasprintf("%s/%s", src, e->d_name);
        t = xasprintf("%s/%s", dst, e->d_name);
        if (stat(s, &st) != 0) {
            /* a dangling link is not configuration */
            if (errno != ENOENT) {
                ctl_error("cannot stat %s: %s", s, strerror(errno));
                n = -1;
            }
        } else if (S_ISDIR(st.st_mode) && !bk_excluded(x, &st)) {
            if (mkdir(t, (st.st_mode & 07777) | S_IRWXU) != 0) {
                ctl_error("cannot create %s: %s", t, strerror(errno));
                n = -1;
            } else {
                n = copy_tree_at(s, t, x, depth + 1);
            }
        } else if (S_ISREG(st.st_mode)) {
            n = copy_file(s, t, st.st_mode) == 0 ? 1 : -1;
        }
        xfree(&s);
        xfree(&t);
        if (n < 0) {
            closedir(d);
            return -1;
        }
        count += n;
    }
    closedir(d);
    return count;
}

long bk_copy_tree(const char *src, const char *dst, const bk_excl *x)
{
    if (mkdir(dst, 0700) != 0 && errno != EEXIST) {
        ctl_error("cannot create %s: %s", dst, strerror(errno));
        return -1;
    }
    return copy_tree_at(src, dst, x, 0);
}

/* list_files_at - regular files under root/rel into *list (lstat: a
 * restore never follows a link an archive brought). */
static int list_files_at(const char *root, const char *rel, char ***list, size_t *n, int depth)
{
    char *dir = rel[0] ? xasprintf("%s/%s", root, rel) : xstrdup(root);
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if (depth > BK_MAX_DEPTH || (d = opendir(dir)) == NULL) {
        ctl_error("cannot read the directory %s: %s", dir,
                  depth > BK_MAX_DEPTH ? "nested too deep" : strerror(errno));
        xfree(&dir);
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char *r, *p;
        struct stat st;

        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        r = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
        p = xasprintf("%s/%s", root, r);
        if (lstat(p, &st) != 0) {
            ctl_error("cannot stat %s: %s", p, strerror(errno));
            rc = -1;
        } else if (S_ISDIR(st.st_mode)) {
            rc = list_files_at(root, r, list, n, depth + 1);
        } else if (S_ISREG(st.st_mode) && bk_safe_relpath(r)) {
            list_push(list, n, r);
        } else {
            ctl_error("warning: skipping %s (not a regular file)", r);
        }
        xfree(&r);
        xfree(&p);
    }
    closedir(d);
    xfree(&dir);
    return rc;
}

char **bk_list_files(const char *root)
{
    char **list = xcalloc(1, sizeof(*list));
    size_t n = 0;

    if (list_files_at(root, "", &list, &n, 0) != 0) {
        bk_free_list(&list);
        return NULL;
    }
    qsort(list, n, sizeof(*list), cmp_str);
    return list;
}

static int find_envs_at(const char *root, const char *rel, const bk_excl *x, char ***list,
                        size_t *n, int depth)
{
    char *dir = rel[0] ? xasprintf("%s/%s", root, rel) : xstrdup(root);
    char *mdb = xasprintf("%s/data.mdb", dir);
    struct stat st;
    DIR *d;
    struct dirent *e;
    int rc = 0;

    if (stat(mdb, &st) == 0 && S_ISREG(st.st_mode))
        list_push(list, n, rel);
    xfree(&mdb);
    if (depth > BK_MAX_DEPTH || (d = opendir(dir)) == NULL) {
        ctl_error("cannot read the directory %s: %s", dir,
                  depth > BK_MAX_DEPTH ? "nested too deep" : strerror(errno));
        xfree(&dir);
        return -1;
    }
    while (rc == 0 && (e = readdir(d)) != NULL) {
        char *r, *p;

        if (e->d_name[0] == '.')    /* ., .., and restore's own staging */
            continue;
        r = rel[0] ? xasprintf("%s/%s", rel, e->d_name) : xstrdup(e->d_name);
        p = xasprintf("%s/%s", root, r);
        /* lstat: Maildirs and whatever else lives here are not followed */
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode) && !bk_excluded(x, &st))
            rc = find_envs_at(root, r, x, list, n, depth + 1);
        xfree(&r);
        xfree(&p);
    }
    closedir(d);
    xfree(&dir);
    return rc;
}

char **bk_find_envs(const char *root, const bk_excl *x)
{
    char **list = xcalloc(1, sizeof(*list));
    size_t n = 0;
    struct stat st;

    if (stat(root, &st) != 0 && errno == ENOENT)
        return list;                /* nothing ran here yet */
    if (find_envs_at(root, "", x, &list, &n, 0) != 0) {
        bk_free_list(&list);
        return NULL;
    }
    qsort(list, n, sizeof(*list), cmp_str);
    return list;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if ((flag == FTW_DP ? rmdir(path) : unlink(path)) != 0 && errno != ENOENT) {
        ctl_error("cannot remove %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int bk_remove_tree(const char *path)
{
    struct stat st;

    if (lstat(path, &st) != 0 && errno == ENOENT)
        return 0;
    return nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- LMDB */

/* env_open_rdonly - open dir's environment read-only.  Without a lock
 * file nobody has it open, and creating one (as root) would lock the
 * stage out of it later: then MDB_NOLOCK. */
static MDB_env *env_open_rdonly(const char *dir, bool nolock)
{
    char *path = xasprintf("%s/data.mdb", dir);
    char *lock = xasprintf("%s/lock.mdb", dir);
    MDB_env *env = NULL;
    struct stat st;
    unsigned flags = MDB_RDONLY | MDB_NOTLS;
    int rc;

    if (nolock || access(lock, F_OK) != 0)
        flags |= MDB_NOLOCK;
    if (stat(path, &st) != 0) {
        ctl_error("cannot stat %s: %s", path, strerror(errno));
        goto out;
    }
    if ((rc = mdb_env_create(&env)) != 0 ||
        /* at least the file's size: the whole file must be mappable */
        (rc = mdb_env_set_mapsize(env, (size_t)st.st_size)) != 0 ||
        (rc = mdb_env_set_maxdbs(env, BK_MAX_DBS)) != 0 ||
        (rc = mdb_env_open(env, dir, flags, 0600)) != 0) {
        ctl_error("cannot open the LMDB environment %s: %s", dir, mdb_strerror(rc));
        if (env)
            mdb_env_close(env);
        env = NULL;
    }
out:
    xfree(&path);
    xfree(&lock);
    return env;
}

int bk_env_copy(const char *dir, const char *dst)
{
    MDB_env *env = env_open_rdonly(dir, false);
    int rc;

    if (env == NULL)
        return -1;
    if ((rc = mdb_env_copy2(env, dst, MDB_CP_COMPACT)) != 0)
        ctl_error("cannot copy the LMDB environment %s to %s: %s", dir, dst, mdb_strerror(rc));
    mdb_env_close(env);
    return rc == 0 ? 0 : -1;
}

bool bk_env_in_use(const char *dir, pid_t *pid)
{
    char *lock = xasprintf("%s/lock.mdb", dir);
    struct flock fl;
    int fd = open(lock, O_RDONLY | O_CLOEXEC);
    bool used = false;

    *pid = 0;
    xfree(&lock);
    if (fd < 0)
        return false;
    /* every process with the environment open holds at least a read
     * lock on the lock file's first byte (mdb_env_excl_lock) */
    memset(&fl, 0, sizeof(fl));
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = 0;
    fl.l_len = 1;
    if (fcntl(fd, F_GETLK, &fl) == 0 && fl.l_type != F_UNLCK) {
        used = true;
        *pid = fl.l_pid;
    }
    close(fd);
    return used;
}

long long bk_env_entries(const char *dir)
{
    char *path = xasprintf("%s/data.mdb", dir);
    MDB_env *env;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi main_dbi;
    MDB_val k, v;
    long long total = 0;
    int rc;

    if (access(path, F_OK) != 0) {
        xfree(&path);
        return 0;
    }
    xfree(&path);
    if ((env = env_open_rdonly(dir, true)) == NULL)
        return -1;
    if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
        (rc = mdb_cursor_open(txn, main_dbi, &cur)) != 0) {
        ctl_error("cannot read the LMDB environment %s: %s", dir, mdb_strerror(rc));
        total = -1;
        goto out;
    }
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        char *name = xmemdup(k.mv_data, k.mv_size);   /* NUL-terminated */
        MDB_dbi dbi;
        MDB_stat ms;

        if (strlen(name) == k.mv_size && mdb_dbi_open(txn, name, 0, &dbi) == 0 &&
            mdb_stat(txn, dbi, &ms) == 0)
            total += (long long)ms.ms_entries;
        else
            total++;        /* a plain record of the main database */
        xfree(&name);
    }
    if (rc != MDB_NOTFOUND) {
        ctl_error("cannot read the LMDB environment %s: %s", dir, mdb_strerror(rc));
        total = -1;
    }
out:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    mdb_env_close(env);
    return total;
}

/* ---------------------------------------------------------------- files */

int bk_run(char *const argv[])
{
    pid_t pid;
    int status;

    fflush(stdout);
    fflush(stderr);
    if ((pid = fork()) < 0) {
        ctl_error("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open("/dev/null", O_RDONLY);

        if (fd >= 0 && fd != 0) {
            dup2(fd, 0);
            close(fd);
        }
        umask(077);
        execvp(argv[0], argv);
        fprintf(stderr, "correio: cannot run %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) {
            ctl_error("waitpid: %s", strerror(errno));
            return -1;
        }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
        return 0;
    if (WIFEXITED(status))
        ctl_error("%s exited with status %d", argv[0], WEXITSTATUS(status));
    else
        ctl_error("%s was killed by signal %d", argv[0], WTERMSIG(status));
    return -1;
}

int bk_install_file(const char *src, const char *dst, mode_t mode)
{
    char *tmp = xasprintf("%s.restore-tmp", dst);
    char *dir = xstrdup(dst);
    char *slash = strrchr(dir, '/');
    int in = -1, out = -1, rc = -1;

    if (slash)
        *slash = '\0';
    unlink(tmp);
    if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
        ctl_error("cannot read %s: %s", src, strerror(errno));
        goto out;
    }
    if ((out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode & 07777)) < 0) {
        ctl_error("cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (copy_fd(in, out) != 0 || fchmod(out, mode & 07777) != 0 || fsync(out) != 0) {
        ctl_error("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    if (close(out) != 0) {
        out = -1;
        ctl_error("cannot write %s: %s", tmp, strerror(errno));
        goto out;
    }
    out = -1;
    if (rename(tmp, dst) != 0) {
        ctl_error("cannot rename %s to %s: %s", tmp, dst, strerror(errno));
        goto out;
    }
    if (slash && fs_fsync_dir(dir) != 0) {
        ctl_error("cannot fsync %s: %s", dir, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    if (rc != 0)
        unlink(tmp);
    xfree(&tmp);
    xfree(&dir);
    return rc;
}

bool bk_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *pa = fs_read_file(a, &la);
    char *pb = pa ? fs_read_file(b, &lb) : NULL;
    bool same = pa && pb && la == lb && memcmp(pa, pb, la) == 0;

    free(pa);
    free(pb);
    return same;
}
