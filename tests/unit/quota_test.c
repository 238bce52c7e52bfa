/* quota_test.c - Maildir++ quota: Dovecot's quota rules, the maildirsize
 * file (read, recount, append), over quota and too big, and the per-user
 * limits from users_file. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../delivery/quota.h"
#include "fsutil.h"
#include "xalloc.h"

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

/* make_maildir - root/{cur,new,tmp} */
static void make_maildir(const char *root)
{
    static const char *const subs[] = {"cur", "new", "tmp"};
    for (size_t i = 0; i < 3; i++) {
        char *p = xasprintf("%s/%s", root, subs[i]);
        assert_int_equal(fs_mkdir_p(p, 0700), 0);
        xfree(&p);
    }
}

/* put - a message file of size bytes named with (or without) S=. */
static void put(const char *dir, const char *name, size_t size)
{
    char *p = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++)
        fputc('x', f);
    assert_int_equal(fclose(f), 0);
    xfree(&p);
}

static char *read_quota_file(const char *root)
{
    char *p = xasprintf("%s/maildirsize", root);
    char *text = fs_read_file(p, NULL);
    xfree(&p);
    return text;
}

static void rm_rf(const char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
}

static void test_quota_rules(void **state)
{
    (void)state;
    static const struct {
        const char *rule;
        int rc;
        unsigned long long limit;
    } cases[] = {
        {"*:storage=1G", 0, 1ULL << 30},
        {"*:storage=10M", 0, 10ULL << 20},
        {"*:storage=512k", 0, 512ULL << 10},
        {"*:storage=2T", 0, 2ULL << 40},
        {"*:storage=100", 0, 100ULL * 1024},   /* Dovecot: kilobytes */
        {"*:storage=100B", 0, 100},
        {"*:bytes=5000", 0, 5000},
        {"*:storage=1G:messages=1000", 0, 1ULL << 30},
        {"?:storage=1M", 0, 1ULL << 20},
        {"*:storage=0", 0, 0},
        {"*:storage=none", 0, 0},
        {"*:ignore", 0, 0},
        {"*:storage=", -1, 0},
        {"*:storage=1X", -1, 0},
        {"*:storage=1GB", -1, 0},
        {"*:storage=+100M", -1, 0},
        {"*:storage=10%", -1, 0},
        {"*:storage=-1", -1, 0},
        {"*:messages=10", -1, 0},
        {"Trash:storage=1G", -1, 0},
        {"storage=1G", -1, 0},
        {"*:size=1G", -1, 0},
        {"*:storage=99999999999999999999", -1, 0},
        {"*:storage=99999999999T", -1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned long long limit = 12345;
        int rc = quota_rule_parse(cases[i].rule, &limit);
        if (rc != cases[i].rc || (rc == 0 && limit != cases[i].limit))
            fail_msg("%s: rc %d limit %llu", cases[i].rule, rc, limit);
    }
}

/* Missing maildirsize: counted from the names' S= (or the file size),
 * folders included, dot files not; then written with the limit line. */
static void test_quota_recalc(void **state)
{
    (void)state;
    char root[] = "/tmp/quota_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    make_maildir(root);
    char *newdir = xasprintf("%s/new", root), *curdir = xasprintf("%s/cur", root);
    char *junk = xasprintf("%s/.Junk", root), *junknew = xasprintf("%s/.Junk/new", root);
    put(newdir, "1.M1P1.host,S=1000", 10);            /* S= wins over the real size */
    put(curdir, "2.M2P2.host,S=500:2,S", 10);
    put(curdir, "3.M3P3.host", 300);                   /* no S=: stat */
    put(curdir, ".hidden", 5000);                      /* not a message */
    make_maildir(junk);
    put(junknew, "4.M4P4.host,S=200", 1);
    char *tmpdir = xasprintf("%s/tmp", root);
    put(tmpdir, "5.M5P5.host,S=9999", 1);              /* tmp/ is not counted */

    unsigned long long used = 0;
    char err[256];
    assert_int_equal(quota_check(root, 100000, 10, &used, err, sizeof err), QUOTA_OK);
    assert_int_equal(used, 2000);
    char *text = read_quota_file(root);
    assert_non_null(text);
    assert_string_equal(text, "100000S\n2000 4\n");
    xfree(&text);

    long long b, c;
    assert_int_equal(quota_recalc(root, 7, &b, &c, err, sizeof err), 0);
    assert_int_equal(b, 2000);
    assert_int_equal(c, 4);
    char *lock = xasprintf("%s/maildirsize.lock", root);
    struct stat sb;
    assert_int_equal(stat(lock, &sb), -1);             /* renamed into place */
    xfree(&lock);

    rm_rf(root);
    xfree(&newdir);
    xfree(&curdir);
    xfree(&junk);
    xfree(&junknew);
    xfree(&tmpdir);
}

/* Appends add up; the sum decides; a changed limit, a long file or a
 * malformed one is recounted. */
static void test_quota_append_and_over(void **state)
{
    (void)state;
    char root[] = "/tmp/quota_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    make_maildir(root);
    char *path = xasprintf("%s/maildirsize", root);
    char err[256];
    unsigned long long used;

    write_file(path, "1000S\n400 2\n");
    assert_int_equal(quota_check(root, 1000, 600, &used, err, sizeof err), QUOTA_OK);
    assert_int_equal(used, 400);
    assert_int_equal(quota_add(root, 1000, 600), 0);
    char *text = read_quota_file(root);
    assert_string_equal(text, "1000S\n400 2\n600 1\n");
    xfree(&text);
    assert_int_equal(quota_check(root, 1000, 1, &used, err, sizeof err), QUOTA_OVER);
    assert_int_equal(used, 1000);
    /* expunges show up as negative lines (Dovecot writes them) */
    write_file(path, "1000S\n400 2\n600 1\n-500 -1\n");
    assert_int_equal(quota_check(root, 1000, 100, &used, err, sizeof err), QUOTA_OK);
    assert_int_equal(used, 500);
    /* larger than the whole quota: never fits, whatever is in use */
    assert_int_equal(quota_check(root, 1000, 1001, &used, err, sizeof err), QUOTA_TOO_BIG);

    /* another limit: recounted (the Maildir is really empty) */
    assert_int_equal(quota_check(root, 2000, 100, &used, err, sizeof err), QUOTA_OK);
    assert_int_equal(used, 0);
    text = read_quota_file(root);
    assert_string_equal(text, "2000S\n0 0\n");
    xfree(&text);

    /* malformed lines and a half-written last line: recounted */
    static const char *const broken[] = {"2000S\n900 x\n", "2000S\n900 1", "junk\n900 1\n",
                                         "2000S,10C\n900\n", ""};
    for (size_t i = 0; i < sizeof broken / sizeof broken[0]; i++) {
        write_file(path, broken[i]);
        assert_int_equal(quota_check(root, 2000, 100, &used, err, sizeof err), QUOTA_OK);
        assert_int_equal(used, 0);
    }
    /* a count limit beside the byte limit is read */
    write_file(path, "2000S,10C\n1900 3\n");
    assert_int_equal(quota_check(root, 2000, 200, &used, err, sizeof err), QUOTA_OVER);

    /* longer than 5120 bytes: recounted into two lines */
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("2000S\n", f);
    for (int i = 0; i < 700; i++)
        fputs("1 1\n", f);          /* 700 bytes "in use" on paper, 2800 bytes of file */
    for (int i = 0; i < 700; i++)
        fputs("1 1\n", f);
    assert_int_equal(fclose(f), 0);
    assert_int_equal(quota_check(root, 2000, 100, &used, err, sizeof err), QUOTA_OK);
    assert_int_equal(used, 0);
    text = read_quota_file(root);
    assert_string_equal(text, "2000S\n0 0\n");
    xfree(&text);

    /* no file and no limit: nothing is written */
    unlink(path);
    assert_int_equal(quota_add(root, 0, 100), 0);
    assert_null(read_quota_file(root));
    /* no file with a limit: counted (the new message is in new/ by now) */
    char *newdir = xasprintf("%s/new", root);
    put(newdir, "9.M9P9.host,S=123", 1);
    assert_int_equal(quota_add(root, 5000, 123), 0);
    text = read_quota_file(root);
    assert_string_equal(text, "5000S\n123 1\n");
    xfree(&text);

    /* a Maildir that does not exist yet is empty */
    char *none = xasprintf("%s/missing", root);
    assert_int_equal(quota_check(none, 1000, 10, &used, err, sizeof err), QUOTA_OK);
    xfree(&none);

    rm_rf(root);
    xfree(&path);
    xfree(&newdir);
}

/* A lock left by a crashed recount is taken over; a fresh one is left to
 * its owner. */
static void test_quota_lock(void **state)
{
    (void)state;
    char root[] = "/tmp/quota_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    make_maildir(root);
    char *lock = xasprintf("%s/maildirsize.lock", root);
    char err[256];
    long long b, c;

    write_file(lock, "");
    assert_int_equal(quota_recalc(root, 1000, &b, &c, err, sizeof err), 0);
    assert_null(read_quota_file(root));           /* someone else writes it */
    struct timespec old[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    assert_int_equal(utimensat(AT_FDCWD, lock, old, 0), 0);
    assert_int_equal(quota_recalc(root, 1000, &b, &c, err, sizeof err), 0);
    char *text = read_quota_file(root);
    assert_string_equal(text, "1000S\n0 0\n");
    xfree(&text);
    xfree(&lock);
    rm_rf(root);
}

/* users_file's userdb_quota_rule overrides the default, per user. */
static void test_quota_users(void **state)
{
    (void)state;
    char dir[] = "/tmp/quota_test.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char *path = xasprintf("%s/users", dir);
    write_file(path,
               "# users\n"
               "small@example.test:{PLAIN}x::::::userdb_quota_rule=*:storage=1M\n"
               "Big@Example.TEST:{PLAIN}x:1000:1000::/home/big::userdb_mail=maildir:~ "
               "userdb_quota_rule=*:storage=2G\n"
               "free@example.test:{PLAIN}x::::::userdb_quota_rule=*:ignore\n"
               "bad@example.test:{PLAIN}x::::::userdb_quota_rule=*:storage=lots\n"
               "plain@example.test:{PLAIN}x\n");
    quota_users_configure(path);
    assert_int_equal(quota_users_limit("example.test/small", 777), 1ULL << 20);
    assert_int_equal(quota_users_limit("example.test/big", 777), 2ULL << 30);
    assert_int_equal(quota_users_limit("example.test/free", 777), 0);
    assert_int_equal(quota_users_limit("example.test/bad", 777), 777);
    assert_int_equal(quota_users_limit("example.test/plain", 777), 777);
    assert_int_equal(quota_users_limit("example.test/nobody", 777), 777);
    assert_int_equal(quota_users_limit("nonsense", 777), 777);

    /* a changed file is read again (checked at most once a second) */
    write_file(path, "plain@example.test:{PLAIN}x::::::userdb_quota_rule=*:bytes=4096\n");
    struct timespec later[2] = {{time(NULL) + 5, 0}, {time(NULL) + 5, 0}};
    assert_int_equal(utimensat(AT_FDCWD, path, later, 0), 0);
    unsigned long long got = 0;
    for (int i = 0; i < 30 && got != 4096; i++) {
        got = quota_users_limit("example.test/plain", 777);
        if (got != 4096)
            usleep(100 * 1000);
    }
    assert_int_equal(got, 4096);
    assert_int_equal(quota_users_limit("example.test/small", 777), 777);

    quota_users_free();
    assert_int_equal(quota_users_limit("example.test/plain", 777), 777);
    unlink(path);
    xfree(&path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quota_rules),
        cmocka_unit_test(test_quota_recalc),
        cmocka_unit_test(test_quota_append_and_over),
        cmocka_unit_test(test_quota_lock),
        cmocka_unit_test(test_quota_users),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
