/* quota.c - Maildir++ quota (maildirsize) and the per-user limits from
 * users_file (see quota.h). */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "fsutil.h"
#include "log.h"
#include "quota.h"
#include "users.h"
#include "xalloc.h"

#define QUOTA_LOCK_FILE   "maildirsize.lock"
#define QUOTA_LOCK_STALE  30        /* seconds: a lock this old was left by a crash */
#define QUOTA_RULE_NAME   "userdb_quota_rule"

/* ------------------------------------------------------------ rules */

/* quota_size_parse - digits and an optional unit (Dovecot's B, K, M, G,
 * T); a bare number is multiplied by bare.  -1 when malformed or huge. */
static int quota_size_parse(const char *s, unsigned long long bare, unsigned long long *out)
{
    unsigned long long n = 0, mult = bare;
    const char *p = s;

    if (!strcasecmp(s, "none")) {
        *out = 0;
        return 0;
    }
    if (!isdigit((unsigned char)*p))
        return -1;
    for (; isdigit((unsigned char)*p); p++) {
        if (n > (ULLONG_MAX - 9) / 10)
            return -1;
        n = n * 10 + (unsigned)(*p - '0');
    }
    if (*p) {
        switch (toupper((unsigned char)*p)) {
        case 'B': mult = 1; break;
        case 'K': mult = 1ULL << 10; break;
        case 'M': mult = 1ULL << 20; break;
        case 'G': mult = 1ULL << 30; break;
        case 'T': mult = 1ULL << 40; break;
        default:  return -1;
        }
        if (p[1])
            return -1;
    }
    if (n && mult > ULLONG_MAX / n)
        return -1;
    *out = n * mult;
    return 0;
}

int quota_rule_parse(const char *rule, unsigned long long *limit)
{
    bool have = false;
    unsigned long long bytes = 0;

    if ((rule[0] != '*' && rule[0] != '?') || rule[1] != ':')
        return -1;
    rule += 2;
    if (!strcmp(rule, "ignore")) {
        *limit = 0;
        return 0;
    }
    while (*rule) {
        size_t n = strcspn(rule, ":");
        char part[64];
        unsigned long long v;

        if (n == 0 || n >= sizeof part)
            return -1;
        memcpy(part, rule, n);
        part[n] = 0;
        rule += n + (rule[n] == ':');
        if (!strncmp(part, "storage=", 8)) {
            if (quota_size_parse(part + 8, 1024, &v) < 0)
                return -1;
            bytes = v;
            have = true;
        } else if (!strncmp(part, "bytes=", 6)) {
            if (quota_size_parse(part + 6, 1, &v) < 0)
                return -1;
            bytes = v;
            have = true;
        } else if (!strncmp(part, "messages=", 9)) {
            if (quota_size_parse(part + 9, 1, &v) < 0)   /* checked, not enforced */
                return -1;
        } else {
            return -1;
        }
    }
    if (!have)
        return -1;
    *limit = bytes;
    return 0;
}

/* ------------------------------------------------------------ maildirsize */

typedef struct quota_file {
    bool      limit_known;   /* the first line had an S limit */
    unsigned long long limit;
    long long bytes, count;
    size_t    size;          /* of the file */
} quota_file;

/* quota_read - parse root/maildirsize: 1 read, 0 missing or malformed
 * (recount), -1 cannot be read (errno). */
static int quota_read(const char *root, quota_file *qf)
{
    char *path = xasprintf("%s/%s", root, QUOTA_FILE);
    size_t len = 0;
    char *text = fs_read_file(path, &len);
    int e = errno;
    xfree(&path);

    memset(qf, 0, sizeof *qf);
    if (!text) {
        errno = e;
        return e == ENOENT ? 0 : -1;
    }
    qf->size = len;
    int rc = 0;
    char *line = text, *nl = memchr(text, '\n', len);
    if (!nl || memchr(text, '\0', len))
        goto out;
    *nl = 0;
    /* "10485760S" or "10485760S,1000C" */
    for (char *item = line; *item;) {
        char *end;
        errno = 0;
        unsigned long long v = strtoull(item, &end, 10);
        if (end == item || errno || (*end != 'S' && *end != 'C'))
            goto out;
        if (*end == 'S') {
            qf->limit = v;
            qf->limit_known = true;
        }
        item = end + 1;
        if (*item == ',')
            item++;
        else if (*item)
            goto out;
    }
    for (line = nl + 1; line < text + len; line = nl + 1) {
        long long b, c;
        char *end;
        if ((nl = memchr(line, '\n', (size_t)(text + len - line))) == NULL)
            goto out;       /* half a line: someone is writing */
        *nl = 0;
        errno = 0;
        b = strtoll(line, &end, 10);
        if (end == line || *end != ' ' || errno)
            goto out;
        line = end + 1;
        c = strtoll(line, &end, 10);
        if (end == line || *end != 0 || errno)
            goto out;
        qf->bytes += b;
        qf->count += c;
    }
    rc = 1;
out:
    xfree(&text);
    return rc;
}

/* quota_name_size - the S= of a Maildir file name, else -1. */
static long long quota_name_size(const char *name)
{
    const char *s = strstr(name, ",S=");
    if (!s || !isdigit((unsigned char)s[3]))
        return -1;
    errno = 0;
    char *end;
    long long v = strtoll(s + 3, &end, 10);
    return errno ? -1 : v;
}

/* quota_count_dir - add the messages in dir to *bytes and *count.  A
 * missing dir counts nothing. */
static int quota_count_dir(const char *dir, long long *bytes, long long *count)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    if (!d)
        return errno == ENOENT ? 0 : -1;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        long long sz = quota_name_size(de->d_name);
        if (sz < 0) {
            struct stat st;
            char *p = xasprintf("%s/%s", dir, de->d_name);
            int rc = lstat(p, &st);
            xfree(&p);
            if (rc != 0)
                continue;      /* moved or expunged under us */
            sz = (long long)st.st_size;
        }
        *bytes += sz;
        (*count)++;
    }
    closedir(d);
    return 0;
}

/* quota_count_maildir - new/ and cur/ of one Maildir (the inbox or a
 * folder). */
static int quota_count_maildir(const char *dir, long long *bytes, long long *count)
{
    static const char *const subs[] = {"new", "cur"};
    for (size_t i = 0; i < 2; i++) {
        char *p = xasprintf("%s/%s", dir, subs[i]);
        int rc = quota_count_dir(p, bytes, count);
        int e = errno;
        xfree(&p);
        if (rc != 0) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

/* quota_write - the recount into maildirsize, through the lock file.
 * Another process recounting (a fresh lock) is fine: skip writing. */
static int quota_write(const char *root, unsigned long long limit, long long bytes,
                       long long count)
{
    char *lock = xasprintf("%s/%s", root, QUOTA_LOCK_FILE);
    char *path = xasprintf("%s/%s", root, QUOTA_FILE);
    int rc = -1, fd;

    for (int attempt = 0;; attempt++) {
        fd = open(lock, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST || attempt > 0)
            break;
        struct stat st;
        if (stat(lock, &st) == 0 && time(NULL) - st.st_mtime < QUOTA_LOCK_STALE) {
            rc = 0;                 /* someone else writes it now */
            goto out;
        }
        (void)unlink(lock);
    }
    if (fd < 0) {
        if (errno == EEXIST)
            rc = 0;
        goto out;
    }
    char text[96];
    int n = snprintf(text, sizeof text, "%lluS\n%lld %lld\n", limit, bytes, count);
    bool ok = fs_write_all(fd, text, (size_t)n) == 0;
    int e = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    if (ok && rename(lock, path) == 0) {
        rc = 0;
    } else {
        e = ok ? errno : e;
        (void)unlink(lock);
        errno = e;
    }
out:
    xfree(&lock);
    xfree(&path);
    return rc;
}

int quota_recalc(const char *root, unsigned long long limit, long long *bytes,
                 long long *count, char *err, size_t errsize)
{
    DIR *d;
    struct dirent *de;

    *bytes = *count = 0;
    if (quota_count_maildir(root, bytes, count) != 0) {
        snprintf(err, errsize, "cannot count %s: %s", root, strerror(errno));
        return -1;
    }
    if ((d = opendir(root)) == NULL) {
        snprintf(err, errsize, "cannot read %s: %s", root, strerror(errno));
        return -1;
    }
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] != '.' || !strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *sub = xasprintf("%s/%s", root, de->d_name);
        struct stat st;
        int rc = 0;
        if (lstat(sub, &st) == 0 && S_ISDIR(st.st_mode))
            rc = quota_count_maildir(sub, bytes, count);
        int e = errno;
        xfree(&sub);
        if (rc != 0) {
            closedir(d);
            snprintf(err, errsize, "cannot count %s/%s: %s", root, de->d_name, strerror(e));
            return -1;
        }
    }
    closedir(d);
    if (quota_write(root, limit, *bytes, *count) != 0) {
        snprintf(err, errsize, "cannot write %s/%s: %s", root, QUOTA_FILE, strerror(errno));
        return -1;
    }
    return 0;
}

quota_status quota_check(const char *root, unsigned long long limit, unsigned long long size,
                         unsigned long long *used, char *err, size_t errsize)
{
    quota_file qf;
    struct stat st;

    if (used)
        *used = 0;
    if (size > limit)
        return QUOTA_TOO_BIG;
    if (stat(root, &st) != 0) {
        if (errno == ENOENT)
            return QUOTA_OK;        /* a Maildir still to be made is empty */
        snprintf(err, errsize, "cannot stat %s: %s", root, strerror(errno));
        return QUOTA_FAIL;
    }
    int rc = quota_read(root, &qf);
    if (rc < 0) {
        snprintf(err, errsize, "cannot read %s/%s: %s", root, QUOTA_FILE, strerror(errno));
        return QUOTA_FAIL;
    }
    if (rc == 0 || qf.size > QUOTA_RECALC_SIZE || !qf.limit_known || qf.limit != limit) {
        if (quota_recalc(root, limit, &qf.bytes, &qf.count, err, errsize) != 0)
            return QUOTA_FAIL;
    }
    unsigned long long in_use = qf.bytes > 0 ? (unsigned long long)qf.bytes : 0;
    if (used)
        *used = in_use;
    return in_use + size > limit ? QUOTA_OVER : QUOTA_OK;
}

int quota_add(const char *root, unsigned long long limit, unsigned long long size)
{
    char *path = xasprintf("%s/%s", root, QUOTA_FILE);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
    int e = errno;
    xfree(&path);

    if (fd < 0) {
        if (e != ENOENT) {
            errno = e;
            return -1;
        }
        if (limit == 0)
            return 0;               /* no quota here, nobody counts */
        long long b, c;
        char err[256];
        if (quota_recalc(root, limit, &b, &c, err, sizeof err) != 0) {
            log_warn("quota: %s", err);
            return -1;
        }
        return 0;
    }
    char line[48];
    int n = snprintf(line, sizeof line, "%llu 1\n", size);
    bool ok = fs_write_all(fd, line, (size_t)n) == 0;   /* one write: O_APPEND keeps it whole */
    e = errno;
    if (close(fd) != 0 && ok) {
        ok = false;
        e = errno;
    }
    errno = e;
    return ok ? 0 : -1;
}

/* ------------------------------------------------------------ per-user limits */

static struct {
    pthread_mutex_t lock;
    users_t        *users;          /* NULL: no users_file */
} quota_users = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void quota_users_lock(void)
{
    int rc = pthread_mutex_lock(&quota_users.lock);
    if (rc != 0)
        log_panic("quota_users_lock: %s", strerror(rc));
}

static void quota_users_unlock(void)
{
    int rc = pthread_mutex_unlock(&quota_users.lock);
    if (rc != 0)
        log_panic("quota_users_unlock: %s", strerror(rc));
}

void quota_users_configure(const char *path)
{
    quota_users_lock();
    users_close(&quota_users.users);
    if (path)
        quota_users.users = users_open(path);
    quota_users_unlock();
}

/* quota_user_rule - the user's own limit into *limit: false when the
 * user has no rule (or a malformed one, warned). Lock held. */
static bool quota_user_rule(const char *address, unsigned long long *limit)
{
    char rule[256];
    users_refresh(quota_users.users);
    const user_entry *e = users_lookup(quota_users.users, address);
    if (!e || !users_extra_field(e, QUOTA_RULE_NAME, rule, sizeof rule))
        return false;
    if (quota_rule_parse(rule, limit) == 0)
        return true;
    char shown[128];
    log_printable(shown, sizeof shown, rule, strlen(rule));
    log_warn("users_file: %s: %s=%s is not a quota rule such as %s=*:storage=1G; "
             "mailbox_quota applies", address, QUOTA_RULE_NAME, shown, QUOTA_RULE_NAME);
    return false;
}

unsigned long long quota_users_limit(const char *mailbox, unsigned long long dflt)
{
    const char *slash = strchr(mailbox, '/');
    unsigned long long limit = dflt;

    if (!slash)
        return dflt;
    char *addr = xasprintf("%s@%.*s", slash + 1, (int)(slash - mailbox), mailbox);
    quota_users_lock();
    if (quota_users.users && !quota_user_rule(addr, &limit))
        limit = dflt;
    quota_users_unlock();
    xfree(&addr);
    return limit;
}

void quota_users_free(void)
{
    quota_users_configure(NULL);
}
