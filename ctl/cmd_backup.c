/* cmd_backup.c - `correio backup` and `correio restore`: everything a
 * new machine needs besides the Maildirs (which rsync copies, see the
 * README).
 *
 *   correio backup [DIR]
 *       writes DIR/backup_name (default backup_directory), a gzip'ed tar:
 *         MANIFEST          "correio-backup 1", when, where, which envs
 *         config/...        the configuration directory: correio.conf,
 *                           users, maps with their compiled *.lmdb,
 *                           rules, certificates and keys kept there
 *                           (symbolic links followed; data_directory,
 *                           run_directory, mail_root left out)
 *         data/REL/data.mdb a hot, compacted copy of every LMDB
 *                           environment found under data_directory
 *       Safe while correio runs: each copy is one LMDB read transaction
 *       (mdb_env_copy2).  The archive is written as NAME.tmp, fsync'ed
 *       and renamed; then archives with backup_name's prefix older than
 *       backup_retention days are deleted.
 *   correio restore ARCHIVE [--force]
 *       refuses while any stage (or the master) runs; puts config/ into
 *       the configuration directory (-c) and each environment into the
 *       restored configuration's data_directory, owned by mail_owner.
 *       Existing state (a config file that differs, an environment with
 *       records) is kept and the restore refused unless --force.
 *
 * The archive is made by tar(1) from a staging directory next to it
 * (tar is on every Debian system; the staging copy is what makes the
 * LMDB copies consistent before they are packed).
 */
#include <errno.h>
#include <dirent.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_files.h"
#include "ctl.h"
#include "fsutil.h"
#include "supervisor.h"
#include "xalloc.h"

#define BACKUP_MAGIC "correio-backup 1"
#define BACKUP_MANIFEST "MANIFEST"
#define BACKUP_NAME_MAX 255
#define BACKUP_MANIFEST_MAX (1024 * 1024)

static const char *const backup_stages[] = {"ingress", "classifier", "router", "delivery",
                                            "fetcher"};

/* abs_dir - dir made absolute (it exists); NULL after an error message. */
static char *abs_dir(const char *dir)
{
    char *p = realpath(dir, NULL);

    if (p == NULL)
        ctl_error("%s: %s", dir, strerror(errno));
    return p;
}

/* ---------------------------------------------------------------- backup */

/* backup_strftime - strftime with the operator's backup_name: a format
 * from the configuration is what this parameter is. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
static size_t backup_strftime(char *buf, size_t size, const char *pattern, time_t when)
{
    return strftime(buf, size, pattern, localtime(&when));
}
#pragma GCC diagnostic pop

/* backup_manifest - write staging/MANIFEST. */
static int backup_manifest(const char *staging, const config_t *cfg, const char *confdir,
                           char **envs, time_t now)
{
    char *path = xasprintf("%s/%s", staging, BACKUP_MANIFEST);
    char when[64], host[256] = "";
    FILE *f = fopen(path, "w");
    int rc = 0;

    if (f == NULL) {
        ctl_error("cannot create %s: %s", path, strerror(errno));
        xfree(&path);
        return -1;
    }
    gethostname(host, sizeof(host) - 1);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S%z", localtime(&now));
    fprintf(f, "%s\ncreated %s\nhost %s\nconfig_directory %s\ndata_directory %s\n",
            BACKUP_MAGIC, when, host, confdir, config_str(cfg, "data_directory"));
    for (char **e = envs; *e; e++)
        fprintf(f, "env %s\n", *e);
    if (ferror(f) | fclose(f)) {
        ctl_error("cannot write %s", path);
        rc = -1;
    }
    xfree(&path);
    return rc;
}

/* backup_age_time - when an archive was made: the time in its name when
 * the name matches pattern (so copies keep their age), else its mtime. */
static time_t backup_age_time(const char *name, const char *pattern, const struct stat *st)
{
    struct tm tm;
    const char *end;

    memset(&tm, 0, sizeof(tm));
    tm.tm_isdst = -1;
    end = strptime(name, pattern, &tm);
    if (end != NULL && *end == '\0' && tm.tm_year > 0)
        return mktime(&tm);
    return st->st_mtime;
}

/* backup_retention - delete archives in dir with pattern's prefix older
 * than days (never keep the one just written from being counted). */
static void backup_expire(const char *dir, const char *pattern, const char *keep, long long days,
                          time_t now)
{
    size_t plen = strcspn(pattern, "%");
    DIR *d;
    struct dirent *e;

    if (days <= 0)
        return;
    if (plen == 0) {
        ctl_error("warning: backup_name %s has no fixed prefix: old archives are kept", pattern);
        return;
    }
    if ((d = opendir(dir)) == NULL) {
        ctl_error("warning: cannot read %s for old archives: %s", dir, strerror(errno));
        return;
    }
    while ((e = readdir(d)) != NULL) {
        char *path;
        struct stat st;

        if (strncmp(e->d_name, pattern, plen) != 0 || strcmp(e->d_name, keep) == 0)
            continue;
        path = xasprintf("%s/%s", dir, e->d_name);
        if (lstat(path, &st) == 0 && S_ISREG(st.st_mode) &&
            now - backup_age_time(e->d_name, pattern, &st) > (time_t)days * 86400) {
            if (unlink(path) == 0)
                printf("removed old archive %s\n", path);
            else
                ctl_error("warning: cannot remove %s: %s", path, strerror(errno));
        }
        xfree(&path);
    }
    closedir(d);
}

/* backup_fsync_file - fsync path (tar does not). */
static int backup_fsync_file(const char *path)
{
    FILE *f = fopen(path, "r");
    int rc = f && fsync(fileno(f)) == 0 ? 0 : -1;

    if (rc != 0)
        ctl_error("cannot fsync %s: %s", path, strerror(errno));
    if (f)
        fclose(f);
    return rc;
}

/* backup_envs - hot copies of every environment under data into
 * staging/data/REL.  0 or -1. */
static int backup_envs(const char *data, const char *staging, char **envs)
{
    for (char **e = envs; *e; e++) {
        char *src = (*e)[0] ? xasprintf("%s/%s", data, *e) : xstrdup(data);
        char *dst = xasprintf("%s/data/%s", staging, *e);
        int rc;

        if (!bk_safe_relpath((*e)[0] ? *e : "x")) {
            ctl_error("warning: skipping the environment %s (odd name)", src);
            rc = 0;
        } else if (fs_mkdir_p(dst, 0700) != 0) {
            ctl_error("cannot create %s: %s", dst, strerror(errno));
            rc = -1;
        } else {
            rc = bk_env_copy(src, dst);
        }
        xfree(&src);
        xfree(&dst);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int cmd_backup(const ctl_opts *o, int argc, char **argv)
{
    config_t *cfg;
    const char *pattern;
    char name[BACKUP_NAME_MAX + 1];
    char *dir = NULL, *confdir = NULL, *staging = NULL, *tmp = NULL, *final = NULL;
    char **envs = NULL;
    bk_excl excl = {0};
    time_t now = time(NULL);
    struct stat st;
    long files;
    int rc = 1;

    if (argc > 2 || (argc == 2 && argv[1][0] == '-'))
        return ctl_usage_error("backup", "backup takes one optional DIR");
    cfg = ctl_load_config(o);
    pattern = config_str(cfg, "backup_name");
    if (pattern[0] == '\0' || backup_strftime(name, sizeof(name), pattern, now) == 0 ||
        strchr(name, '/') || name[0] == '.') {
        ctl_error("backup_name %s does not make a file name (no '/', not empty)", pattern);
        goto out;
    }
    dir = xstrdup(argc == 2 ? argv[1] : config_str(cfg, "backup_directory"));
    if (fs_mkdir_p(dir, 0700) != 0) {
        ctl_error("cannot create the backup directory %s: %s", dir, strerror(errno));
        goto out;
    }
    {
        char *a = abs_dir(dir);

        if (a == NULL)
            goto out;
        xfree(&dir);
        dir = a;
    }
    if ((confdir = abs_dir(o->config_dir)) == NULL)
        goto out;
    if (strcmp(confdir, dir) == 0) {
        /* each archive would carry the ones before it */
        ctl_error("backup directory %s is the configuration directory: choose another", dir);
        goto out;
    }
    final = xasprintf("%s/%s", dir, name);
    tmp = xasprintf("%s.tmp", final);
    staging = xasprintf("%s/.correio-backup-XXXXXX", dir);
    if (mkdtemp(staging) == NULL) {
        ctl_error("cannot create a staging directory in %s: %s", dir, strerror(errno));
        xfree(&staging);
        goto out;
    }

    /* what the config copy and the environment walk leave out */
    bk_excl_add(&excl, config_str(cfg, "data_directory"));
    bk_excl_add(&excl, config_str(cfg, "run_directory"));
    bk_excl_add(&excl, config_str(cfg, "mail_root"));
    bk_excl_add(&excl, dir);
    bk_excl_add(&excl, staging);
    {
        char *cdst = xasprintf("%s/config", staging);

        files = bk_copy_tree(confdir, cdst, &excl);
        xfree(&cdst);
    }
    if (files < 0)
        goto out;
    /* the environment walk must enter data_directory itself */
    excl.n = 0;
    bk_excl_add(&excl, config_str(cfg, "run_directory"));
    bk_excl_add(&excl, config_str(cfg, "mail_root"));
    bk_excl_add(&excl, dir);
    bk_excl_add(&excl, staging);
    if ((envs = bk_find_envs(config_str(cfg, "data_directory"), &excl)) == NULL)
        goto out;
    if (backup_envs(config_str(cfg, "data_directory"), staging, envs) != 0)
        goto out;
    if (backup_manifest(staging, cfg, confdir, envs, now) != 0)
        goto out;
    {
        char *targv[] = {"tar", "-czf", tmp, "-C", staging, "--numeric-owner", BACKUP_MANIFEST,
                         "config", envs[0] ? "data" : NULL, NULL};

        unlink(tmp);
        if (bk_run(targv) != 0) {
            ctl_error("tar could not write %s", tmp);
            unlink(tmp);
            goto out;
        }
    }
    if (backup_fsync_file(tmp) != 0 || rename(tmp, final) != 0 || fs_fsync_dir(dir) != 0) {
        ctl_error("cannot put %s in place: %s", final, strerror(errno));
        unlink(tmp);
        goto out;
    }
    if (stat(final, &st) != 0)
        st.st_size = 0;
    printf("backup %s (%lld bytes): %ld config files from %s\n", final, (long long)st.st_size,
           files, confdir);
    for (char **e = envs; *e; e++)
        printf("  environment %s/%s\n", config_str(cfg, "data_directory"), *e);
    backup_expire(dir, pattern, name, config_int(cfg, "backup_retention"), now);
    rc = 0;
out:
    if (staging)
        bk_remove_tree(staging);
    bk_free_list(&envs);
    xfree(&staging);
    xfree(&tmp);
    xfree(&final);
    xfree(&confdir);
    xfree(&dir);
    config_free(&cfg);
    return rc;
}

/* ---------------------------------------------------------------- restore */

/* restore_manifest - the "env REL" lines of tmp/MANIFEST; NULL after an
 * error message when it is not a correio backup. */
static char **restore_manifest(const char *tmp, const char *archive)
{
    char *path = xasprintf("%s/%s", tmp, BACKUP_MANIFEST);
    size_t len, n = 0;
    char *text = fs_read_file(path, &len);
    char **envs = NULL, *line, *save = NULL;

    xfree(&path);
    if (text == NULL || len > BACKUP_MANIFEST_MAX || strlen(text) != len ||
        strncmp(text, BACKUP_MAGIC "\n", strlen(BACKUP_MAGIC) + 1) != 0) {
        ctl_error("%s: not a correio backup (no %s in its MANIFEST)", archive, BACKUP_MAGIC);
        free(text);
        return NULL;
    }
    envs = xcalloc(1, sizeof(*envs));
    for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (strncmp(line, "env ", 4) != 0)
            continue;
        if (!bk_safe_relpath(line + 4) && line[4] != '\0') {
            ctl_error("%s: bad environment name in MANIFEST: %.80s", archive, line + 4);
            bk_free_list(&envs);
            break;
        }
        envs = xrealloc(envs, (n + 2) * sizeof(*envs));
        envs[n++] = xstrdup(line + 4);
        envs[n] = NULL;
    }
    free(text);
    return envs;
}

/* restore_running - true (after saying why) when correio runs for cfg:
 * its master, a stage's admin socket, or an environment held open. */
static bool restore_running(const config_t *cfg, char **envs)
{
    const char *data = config_str(cfg, "data_directory");
    pid_t pid;
    char **found;
    bool running = false;

    if ((pid = supervisor_master_pid(cfg)) > 0) {
        ctl_error("correio is running (master pid %ld): stop it first (correio stop)", (long)pid);
        return true;
    }
    for (size_t i = 0; i < sizeof(backup_stages) / sizeof(backup_stages[0]); i++) {
        char param[64];

        snprintf(param, sizeof(param), "%s_admin_endpoint", backup_stages[i]);
        if (ctl_ipc_listening(config_str(cfg, param)) == 1) {
            ctl_error("the %s stage is running (it answers on %s): stop it first",
                      backup_stages[i], config_str(cfg, param));
            return true;
        }
    }
    /* a stage on another host or in a container shares the volume */
    found = bk_find_envs(data, NULL);
    for (int pass = 0; pass < 2 && !running; pass++) {
        char **list = pass ? envs : found;

        for (char **e = list; e && *e && !running; e++) {
            char *dir = (*e)[0] ? xasprintf("%s/%s", data, *e) : xstrdup(data);

            if (bk_env_in_use(dir, &pid)) {
                ctl_error("the LMDB environment %s is in use (pid %ld): stop correio first",
                          dir, (long)pid);
                running = true;
            }
            xfree(&dir);
        }
    }
    bk_free_list(&found);
    return running;
}

/* restore_owner - mail_owner when running as root (NULL otherwise or
 * after an error, *bad then set). */
static struct passwd *restore_owner(const config_t *cfg, bool *bad)
{
    struct passwd *pw;

    *bad = false;
    if (geteuid() != 0)
        return NULL;
    if ((pw = getpwnam(config_str(cfg, "mail_owner"))) == NULL || pw->pw_uid == 0) {
        ctl_error("mail_owner %s does not exist or is root: create it (useradd --system %s)",
                  config_str(cfg, "mail_owner"), config_str(cfg, "mail_owner"));
        *bad = true;
        return NULL;
    }
    return pw;
}

/* restore_mkdirs - make base/rel's missing directories with mode (given
 * to pw when not NULL). */
static int restore_mkdirs(const char *base, const char *rel, mode_t mode,
                          const struct passwd *pw)
{
    char *path = xasprintf("%s/%s", base, rel);
    int rc = 0;

    for (char *p = path + strlen(base) + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        {
            char c = *p;

            *p = '\0';
            if (mkdir(path, mode) != 0 && errno != EEXIST) {
                ctl_error("cannot create %s: %s", path, strerror(errno));
                rc = -1;
            } else if (pw && chown(path, pw->pw_uid, pw->pw_gid) != 0) {
                ctl_error("cannot give %s to %s: %s", path, pw->pw_name, strerror(errno));
                rc = -1;
            }
            *p = c;
            if (rc != 0 || c == '\0')
                break;
        }
    }
    xfree(&path);
    return rc;
}

/* restore_conflicts - what a restore would overwrite: config files that
 * differ, environments with records.  Prints each; returns their count
 * (-1 when one cannot be read). */
static int restore_conflicts(const char *tmpconf, char **files, const char *confdir,
                             const char *data, char **envs)
{
    int n = 0;

    for (char **f = files; *f; f++) {
        char *src = xasprintf("%s/%s", tmpconf, *f);
        char *dst = xasprintf("%s/%s", confdir, *f);

        if (access(dst, F_OK) == 0 && !bk_same_file(src, dst)) {
            ctl_error("%s exists and differs from the backup's", dst);
            n++;
        }
        xfree(&src);
        xfree(&dst);
    }
    for (char **e = envs; *e; e++) {
        char *dir = (*e)[0] ? xasprintf("%s/%s", data, *e) : xstrdup(data);
        long long entries = bk_env_entries(dir);

        if (entries < 0)
            n = n ? n : -1;
        else if (entries > 0) {
            ctl_error("the LMDB environment %s holds %lld records", dir, entries);
            n++;
        }
        xfree(&dir);
    }
    return n;
}

/* restore_config - install every file of tmpconf into confdir. */
static int restore_config(const char *tmpconf, char **files, const char *confdir)
{
    for (char **f = files; *f; f++) {
        char *src = xasprintf("%s/%s", tmpconf, *f);
        char *dst = xasprintf("%s/%s", confdir, *f);
        char *slash = strrchr(*f, '/');
        struct stat st;
        int rc = 0;

        if (slash) {
            char *sub = xstrndup(*f, (size_t)(slash - *f));

            /* config directories are readable, keys in them are not */
            rc = restore_mkdirs(confdir, sub, 0755, NULL);
            xfree(&sub);
        }
        if (rc == 0 && stat(src, &st) != 0)
            rc = -1;
        if (rc == 0)
            rc = bk_install_file(src, dst, st.st_mode & 0777);
        xfree(&src);
        xfree(&dst);
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* restore_envs - move each environment from staging/data/REL into
 * data/REL, for pw. */
static int restore_envs(const char *staging, const char *data, char **envs,
                        const struct passwd *pw)
{
    for (char **e = envs; *e; e++) {
        char *src = xasprintf("%s/data/%s/data.mdb", staging, *e);
        char *dir = (*e)[0] ? xasprintf("%s/%s", data, *e) : xstrdup(data);
        char *dst = xasprintf("%s/data.mdb", dir);
        char *lock = xasprintf("%s/lock.mdb", dir);
        long long entries;
        int rc = 0;

        if ((*e)[0])
            rc = restore_mkdirs(data, *e, 0700, pw);
        if (rc == 0 && (chmod(src, 0600) != 0 ||
                        (pw && chown(src, pw->pw_uid, pw->pw_gid) != 0) ||
                        rename(src, dst) != 0)) {
            ctl_error("cannot put %s in place as %s: %s", src, dst, strerror(errno));
            rc = -1;
        }
        /* a lock file of the old environment describes the old one */
        if (rc == 0 && unlink(lock) != 0 && errno != ENOENT) {
            ctl_error("cannot remove %s: %s", lock, strerror(errno));
            rc = -1;
        }
        if (rc == 0 && fs_fsync_dir(dir) != 0) {
            ctl_error("cannot fsync %s: %s", dir, strerror(errno));
            rc = -1;
        }
        if (rc == 0) {
            entries = bk_env_entries(dir);
            printf("restored environment %s (%lld records)\n", dir, entries);
        }
        xfree(&src);
        xfree(&dir);
        xfree(&dst);
        xfree(&lock);
        if (rc != 0)
            return -1;
    }
    return 0;
}

int cmd_restore(const ctl_opts *o, int argc, char **argv)
{
    const char *archive = NULL;
    bool force = false, bad;
    char tmp[] = "/tmp/correio-restore-XXXXXX";
    char *tmpconf = NULL, *staging = NULL, *absarch = NULL;
    char **envs = NULL, **files = NULL;
    config_t *acfg = NULL, *cur = NULL, *final = NULL;
    struct passwd *pw;
    const char *data;
    char *err = NULL;
    struct stat st;
    bool have_tmp = false;
    int rc = 1, conflicts;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (argv[i][0] == '-' || archive)
            return ctl_usage_error("restore", "unexpected argument %s", argv[i]);
        else
            archive = argv[i];
    }
    if (archive == NULL)
        return ctl_usage_error("restore", "restore needs the ARCHIVE");
    if (stat(archive, &st) != 0 || !S_ISREG(st.st_mode)) {
        ctl_error("%s: %s", archive, errno && !S_ISREG(st.st_mode) ? strerror(errno)
                                                                   : "not a regular file");
        return 1;
    }
    if ((absarch = realpath(archive, NULL)) == NULL) {
        ctl_error("%s: %s", archive, strerror(errno));
        return 1;
    }
    if (mkdtemp(tmp) == NULL) {
        ctl_error("cannot create %s: %s", tmp, strerror(errno));
        goto out;
    }
    have_tmp = true;
    {
        char *targv[] = {"tar", "-xzf", absarch, "-C", tmp, "--no-same-owner",
                         BACKUP_MANIFEST, "config", NULL};

        if (bk_run(targv) != 0) {
            ctl_error("%s: not a correio backup (tar cannot read its MANIFEST and config)",
                      archive);
            goto out;
        }
    }
    if ((envs = restore_manifest(tmp, archive)) == NULL)
        goto out;
    tmpconf = xasprintf("%s/config", tmp);
    if ((acfg = config_load(tmpconf, &err)) == NULL) {
        ctl_error("%s: the backup's correio.conf: %s", archive, err ? err : "cannot load it");
        goto out;
    }
    data = config_str(acfg, "data_directory");
    if (data[0] != '/') {
        ctl_error("%s: the backup's data_directory %s is not an absolute path", archive, data);
        goto out;
    }
    if ((files = bk_list_files(tmpconf)) == NULL)
        goto out;

    /* never under a running correio: this host's config and the backup's */
    if (restore_running(acfg, envs))
        goto out;
    {
        char *conf = xasprintf("%s/correio.conf", o->config_dir);

        if (access(conf, F_OK) == 0 && (cur = config_load(o->config_dir, &err)) != NULL &&
            restore_running(cur, NULL)) {
            xfree(&conf);
            goto out;
        }
        xfree(&conf);
        free(err);
        err = NULL;
    }
    pw = restore_owner(acfg, &bad);
    if (bad)
        goto out;
    conflicts = restore_conflicts(tmpconf, files, o->config_dir, data, envs);
    if (conflicts < 0)
        goto out;
    if (conflicts > 0 && !force) {
        ctl_error("nothing restored: %d thing(s) would be overwritten (--force replaces them)",
                  conflicts);
        goto out;
    }

    /* the environments: unpacked next to where they go, then renamed */
    if (envs[0]) {
        if (fs_mkdir_p(data, 0700) != 0 || (pw && chown(data, pw->pw_uid, pw->pw_gid) != 0)) {
            ctl_error("cannot create data_directory %s: %s", data, strerror(errno));
            goto out;
        }
        staging = xasprintf("%s/.correio-restore-XXXXXX", data);
        if (mkdtemp(staging) == NULL) {
            ctl_error("cannot create a staging directory in %s: %s", data, strerror(errno));
            xfree(&staging);
            goto out;
        }
        {
            char *targv[] = {"tar", "-xzf", absarch, "-C", staging, "--no-same-owner", "data",
                             NULL};

            if (bk_run(targv) != 0) {
                ctl_error("%s: cannot unpack its LMDB environments", archive);
                goto out;
            }
        }
        for (char **e = envs; *e; e++) {
            char *p = xasprintf("%s/data/%s/data.mdb", staging, *e);
            struct stat es;

            if (lstat(p, &es) != 0 || !S_ISREG(es.st_mode)) {
                ctl_error("%s: the environment %s named in MANIFEST is missing", archive, *e);
                xfree(&p);
                goto out;
            }
            xfree(&p);
        }
    }
    if (fs_mkdir_p(o->config_dir, 0755) != 0) {
        ctl_error("cannot create the configuration directory %s: %s", o->config_dir,
                  strerror(errno));
        goto out;
    }
    if (restore_config(tmpconf, files, o->config_dir) != 0)
        goto out;
    {
        size_t n = 0;

        while (files[n])
            n++;
        printf("restored %zu config files into %s\n", n, o->config_dir);
    }
    if ((final = config_load(o->config_dir, &err)) != NULL)
        ctl_users_file_access(final, ctl_error);
    if (envs[0] && restore_envs(staging, data, envs, pw) != 0)
        goto out;
    printf("restore done: start correio (correio run); Maildirs are not in the archive\n");
    rc = 0;
out:
    if (staging)
        bk_remove_tree(staging);
    if (have_tmp)
        bk_remove_tree(tmp);
    free(err);
    free(absarch);
    xfree(&staging);
    xfree(&tmpconf);
    bk_free_list(&envs);
    bk_free_list(&files);
    config_free(&acfg);
    config_free(&cur);
    config_free(&final);
    return rc;
}
