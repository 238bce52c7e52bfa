/* cmd_bayes.c - `correio bayes`: train the Bayesian filter's token
 * database (lib/bayes.h) that every classifier reads when spam_bayes =
 * yes, like SpamAssassin's sa-learn.
 *
 *   correio bayes train ham|spam PATH...
 *   correio bayes forget PATH...
 *   correio bayes show
 *
 * PATH is a message file, a directory of message files, or a Maildir
 * (its cur/ and new/; subfolders are not walked).  Learning a message
 * twice counts it once (Message-ID, or the whole message when it has
 * none); learning it as the other class moves it.  Each PATH is one
 * write transaction, synced at its end, so an interrupted run keeps the
 * PATHs done before.
 *
 * The database is spam_bayes_database, an LMDB environment this command
 * writes directly.  Run as root, it makes the directory, gives it to
 * mail_owner and becomes mail_owner before opening it, so that every
 * file belongs to the user the classifiers run as (as `correio list`).
 */
#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bayes.h"
#include "ctl.h"
#include "fsutil.h"
#include "xalloc.h"

/* Larger files are skipped (not mail a Bayes filter learns from). */
#define BAYES_FILE_MAX (64L * 1024 * 1024)

/* What one run did. */
typedef struct bayes_run {
    bayes_t    *db;
    bool        forget;
    bayes_class cls;
    unsigned long learned, known, moved, forgotten, unknown, skipped;
} bayes_run;

/* bayes_db_open - the database, writable, or NULL after an error message. */
static bayes_t *bayes_db_open(const ctl_opts *o)
{
    config_t *cfg = ctl_load_config(o);
    char *dir = xstrdup(config_str(cfg, "spam_bayes_database"));
    bayes_t *db = NULL;
    char *err = NULL;

    if (ctl_become_owner(cfg, dir) == 0) {
        db = bayes_open(dir, true, NULL, &err);
        if (db == NULL) {
            ctl_error("%s", err);
            xfree(&err);
        }
    }
    xfree(&dir);
    config_free(&cfg);
    return db;
}

/* bayes_file - learn or forget one message file.  0, or -1 when the
 * database failed (the batch is then aborted). */
static int bayes_file(bayes_run *r, const char *path)
{
    struct stat st;
    char *data, *err = NULL;
    size_t len;
    int rc;

    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > BAYES_FILE_MAX) {
        const char *why = "larger than 64 MB";
        if (stat(path, &st) != 0)
            why = strerror(errno);
        else if (!S_ISREG(st.st_mode))
            why = "not a regular file";
        ctl_error("%s: %s, skipped", path, why);
        r->skipped++;
        return 0;
    }
    if ((data = fs_read_file(path, &len)) == NULL) {
        ctl_error("%s: %s, skipped", path, strerror(errno));
        r->skipped++;
        return 0;
    }
    if (r->forget) {
        bool found = false;
        rc = bayes_forget(r->db, data, len, &found, &err);
        if (rc == 0)
            found ? r->forgotten++ : r->unknown++;
    } else {
        bayes_learned what = BAYES_LEARNED_NEW;
        rc = bayes_learn(r->db, data, len, r->cls, &what, &err);
        if (rc == 0)
            what == BAYES_LEARNED_KNOWN ? r->known++ :
            what == BAYES_LEARNED_MOVED ? (r->moved++, r->learned++) : r->learned++;
    }
    xfree(&data);
    if (rc != 0) {
        ctl_error("%s: %s", path, err);
        xfree(&err);
    }
    return rc;
}

/* by_name - qsort: file names in order, so runs are reproducible. */
static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* bayes_dir - every file of dir (not its subdirectories, nor dot files). */
static int bayes_dir(bayes_run *r, const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **names = NULL;
    size_t n = 0, cap = 0;
    int rc = 0;

    if (d == NULL) {
        ctl_error("%s: %s, skipped", dir, strerror(errno));
        r->skipped++;
        return 0;
    }
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *path = xasprintf("%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
            xfree(&path);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            names = xrealloc(names, cap * sizeof *names);
        }
        names[n++] = path;
    }
    closedir(d);
    if (n)
        qsort(names, n, sizeof *names, by_name);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0)
            rc = bayes_file(r, names[i]);
        xfree(&names[i]);
    }
    xfree(&names);
    return rc;
}

/* bayes_path - one PATH in its own batch.  0, or -1 after an error. */
static int bayes_path(bayes_run *r, const char *path)
{
    struct stat st;
    char *err = NULL;
    int rc;

    if (stat(path, &st) != 0) {
        ctl_error("%s: %s", path, strerror(errno));
        return -1;
    }
    if (bayes_begin(r->db, &err) != 0) {
        ctl_error("%s", err);
        xfree(&err);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        char *cur = xasprintf("%s/cur", path), *new = xasprintf("%s/new", path);
        struct stat sc, sn;
        bool maildir = (stat(cur, &sc) == 0 && S_ISDIR(sc.st_mode)) ||
                       (stat(new, &sn) == 0 && S_ISDIR(sn.st_mode));

        if (maildir) {
            rc = 0;
            if (stat(cur, &sc) == 0 && S_ISDIR(sc.st_mode))
                rc = bayes_dir(r, cur);
            if (rc == 0 && stat(new, &sn) == 0 && S_ISDIR(sn.st_mode))
                rc = bayes_dir(r, new);
        } else {
            rc = bayes_dir(r, path);
        }
        xfree(&cur);
        xfree(&new);
    } else {
        rc = bayes_file(r, path);
    }
    if (rc != 0)
        return -1;                /* the batch is aborted already */
    if (bayes_commit(r->db, &err) != 0) {
        ctl_error("%s", err);
        xfree(&err);
        return -1;
    }
    return 0;
}

/* bayes_totals - "database now H ham, S spam" into a static buffer. */
static const char *bayes_totals(bayes_t *db)
{
    static char line[128];
    uint32_t h = 0, s = 0;
    size_t tokens = 0;
    char *err = NULL;

    if (bayes_counts(db, &h, &s, &tokens, &err) != 0) {
        snprintf(line, sizeof line, "database counts unreadable: %s", err);
        xfree(&err);
    } else {
        snprintf(line, sizeof line, "database now %u ham, %u spam, %zu tokens", h, s, tokens);
    }
    return line;
}

static int bayes_train(const ctl_opts *o, int argc, char **argv, bool forget)
{
    bayes_run r = {.forget = forget};
    int first = forget ? 2 : 3, rc = 0;

    if (!forget) {
        if (argc < 3 || (strcmp(argv[2], "ham") != 0 && strcmp(argv[2], "spam") != 0))
            return ctl_usage_error("bayes", "bayes train needs ham or spam");
        r.cls = strcmp(argv[2], "spam") == 0 ? BAYES_SPAM : BAYES_HAM;
    }
    if (argc <= first)
        return ctl_usage_error("bayes", "bayes %s needs at least one PATH", argv[1]);
    if ((r.db = bayes_db_open(o)) == NULL)
        return 1;
    for (int i = first; i < argc && rc == 0; i++)
        if (bayes_path(&r, argv[i]) != 0)
            rc = 1;
    if (forget)
        printf("forgot %lu messages (%lu not learned)", r.forgotten, r.unknown);
    else
        printf("learned %lu %s messages (%lu already known, %lu moved from %s)",
               r.learned, argv[2], r.known, r.moved, r.cls == BAYES_SPAM ? "ham" : "spam");
    if (r.skipped)
        printf(", %lu skipped", r.skipped);
    printf("; %s\n", bayes_totals(r.db));
    bayes_close(&r.db);
    return rc;
}

static int bayes_show(const ctl_opts *o, int argc, char **argv)
{
    config_t *cfg;
    bayes_t *db;
    bool missing = false;
    char *err = NULL, *dir;
    uint32_t h, s;
    size_t tokens;
    int rc = 0;

    (void)argv;
    if (argc != 2)
        return ctl_usage_error("bayes", "bayes show takes no arguments");
    cfg = ctl_load_config(o);
    dir = xstrdup(config_str(cfg, "spam_bayes_database"));
    printf("database %s\nspam_bayes %s, min learned %lld\n", dir,
           config_bool(cfg, "spam_bayes") ? "yes" : "no",
           config_int(cfg, "spam_bayes_min_learned"));
    config_free(&cfg);
    if ((db = bayes_open(dir, false, &missing, &err)) == NULL) {
        if (missing) {
            printf("no database yet (correio bayes train makes it)\n");
        } else {
            ctl_error("%s", err);
            rc = 1;
        }
        xfree(&err);
        xfree(&dir);
        return rc;
    }
    if (bayes_counts(db, &h, &s, &tokens, &err) != 0) {
        ctl_error("%s", err);
        xfree(&err);
        rc = 1;
    } else {
        printf("ham %u\nspam %u\ntokens %zu\n", h, s, tokens);
    }
    bayes_close(&db);
    xfree(&dir);
    return rc;
}

int cmd_bayes(const ctl_opts *o, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "train") == 0)
        return bayes_train(o, argc, argv, false);
    if (argc >= 2 && strcmp(argv[1], "forget") == 0)
        return bayes_train(o, argc, argv, true);
    if (argc >= 2 && strcmp(argv[1], "show") == 0)
        return bayes_show(o, argc, argv);
    return ctl_usage_error("bayes", "bayes needs train, forget or show");
}
