/* users_test.c - the passwd-file users map, password hashes, atomic edits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <crypt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fsutil.h"
#include "users.h"
#include "xalloc.h"

static char tmpdir[] = "/tmp/users_test.XXXXXX";

static char *write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char sample[] =
    "# local accounts\n"
    "\n"
    "alice@example.com:{PLAIN}secret:1000:1000::/home/alice::\n"
    "Bob@Example.COM:{PLAIN}hunter2\n"
    "carol@example.com:\n"
    "broken line without colon\n"
    "dave@example.org:{SHA512-CRYPT}$6$saltsalt$placeholder:::::\r\n";

static void test_parse_lookup(void **state)
{
    char *path = write_file("users", sample);
    users_t *u = users_open(path);
    const user_entry *e;

    (void)state;
    assert_int_equal(users_count(u), 4);
    e = users_lookup(u, "ALICE@example.com");
    assert_non_null(e);
    assert_string_equal(e->address, "alice@example.com");
    assert_string_equal(e->password, "{PLAIN}secret");
    assert_string_equal(e->home, "/home/alice");
    e = users_lookup(u, "bob@example.com");
    assert_non_null(e);
    assert_string_equal(e->address, "bob@example.com");
    assert_string_equal(e->home, "");
    e = users_lookup(u, "carol@example.com");
    assert_non_null(e);
    assert_string_equal(e->password, "");
    assert_false(users_verify_password(e, ""));
    assert_null(users_lookup(u, "nobody@example.com"));
    assert_null(users_lookup(u, "broken line without colon"));
    users_close(&u);
    assert_null(u);
    unlink(path);
    free(path);
}

/* Dovecot's extra fields, after the seventh colon. */
static void test_extra_fields(void **state)
{
    (void)state;
    user_entry e = {.address = "a@b", .password = "", .home = "",
                    .extra = "userdb_mail=maildir:~/M  userdb_quota_rule=*:storage=1G"};
    char v[64];
    assert_true(users_extra_field(&e, "userdb_quota_rule", v, sizeof v));
    assert_string_equal(v, "*:storage=1G");
    assert_true(users_extra_field(&e, "userdb_mail", v, sizeof v));
    assert_string_equal(v, "maildir:~/M");
    assert_false(users_extra_field(&e, "userdb_quota", v, sizeof v));
    e.extra = "";
    assert_false(users_extra_field(&e, "userdb_quota_rule", v, sizeof v));
}

static void test_missing_file(void **state)
{
    users_t *u = users_open("/nonexistent/users");

    (void)state;
    assert_int_equal(users_count(u), 0);
    assert_null(users_lookup(u, "a@b"));
    users_close(&u);
}

static void test_verify(void **state)
{
    char *h = users_hash_password("correct horse");
    user_entry e = {.address = "x@example.com", .password = h, .home = "", .extra = ""};
    struct { const char *scheme, *prefix; } schemes[] = {
        {"SHA512-CRYPT", "$6$"}, {"SHA256-CRYPT", "$5$"}, {"BLF-CRYPT", "$2b$"},
        {"MD5-CRYPT", "$1$"},
    };

    (void)state;
    assert_true(strncmp(h, "{CRYPT}$y$", 10) == 0);
    assert_true(users_verify_password(&e, "correct horse"));
    assert_false(users_verify_password(&e, "correct horse "));
    assert_false(users_verify_password(&e, ""));
    free(h);

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++) {
        char *salt = crypt_gensalt_ra(schemes[i].prefix, 0, NULL, 0);
        void *data = NULL;
        int size = 0;
        const char *c;

        if (salt == NULL)
            continue;   /* scheme not built into this libxcrypt */
        c = crypt_ra("pw", salt, &data, &size);
        e.password = h = xasprintf("{%s}%s", schemes[i].scheme, c);
        if (!users_verify_password(&e, "pw"))
            fail_msg("%s does not verify", schemes[i].scheme);
        assert_false(users_verify_password(&e, "pw2"));
        free(h);
        free(data);
        free(salt);
    }

    e.password = "{PLAIN}abc";
    assert_true(users_verify_password(&e, "abc"));
    assert_false(users_verify_password(&e, "abcd"));
    assert_false(users_verify_password(&e, "ab"));
    assert_false(users_verify_password(&e, ""));
    e.password = "{PLAIN}";
    assert_false(users_verify_password(&e, ""));
    e.password = "{NOSUCH}abc";
    assert_false(users_verify_password(&e, "abc"));
    e.password = "{CRYPT}*";
    assert_false(users_verify_password(&e, "*"));
}

static void test_file_set(void **state)
{
    char *path = write_file("users2", sample);
    char *err = NULL, *text, *tmp;
    users_t *u;
    const user_entry *e;
    struct stat st;

    (void)state;
    /* replace: the line keeps its other fields, others stay as they are */
    assert_int_equal(users_file_set(path, "alice@example.com", "{PLAIN}new", &err), 0);
    text = fs_read_file(path, NULL);
    assert_non_null(strstr(text, "# local accounts\n\nalice@example.com:{PLAIN}new:1000:1000::/home/alice::\n"
                                 "Bob@Example.COM:{PLAIN}hunter2\n"));
    assert_non_null(strstr(text, "broken line without colon\n"));
    free(text);
    /* case-insensitive replace */
    assert_int_equal(users_file_set(path, "bob@example.com", "{PLAIN}b2", &err), 0);
    /* append */
    assert_int_equal(users_file_set(path, "erin@example.com", "{PLAIN}e", &err), 0);
    text = fs_read_file(path, NULL);
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(text, "\nerin@example.com:{PLAIN}e\n"));
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);

    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    free(tmp);

    u = users_open(path);
    assert_int_equal(users_count(u), 5);
    e = users_lookup(u, "alice@example.com");
    assert_true(users_verify_password(e, "new"));
    e = users_lookup(u, "BOB@example.com");
    assert_true(users_verify_password(e, "b2"));
    assert_non_null(users_lookup(u, "erin@example.com"));
    users_close(&u);

    /* a file that does not exist yet */
    unlink(path);
    assert_int_equal(users_file_set(path, "x@y", "{PLAIN}z", &err), 0);
    text = fs_read_file(path, NULL);
    assert_string_equal(text, "x@y:{PLAIN}z\n");
    free(text);

    /* refused input */
    assert_int_equal(users_file_set(path, "a:b@c", "{PLAIN}z", &err), -1);
    assert_non_null(err);
    free(err);
    err = NULL;
    assert_int_equal(users_file_set(path, "a@c", "{PLAIN}z\nroot:x", &err), -1);
    free(err);
    err = NULL;
    assert_int_equal(users_file_set("/nonexistent/dir/users", "a@c", "{PLAIN}z", &err), -1);
    assert_non_null(err);
    free(err);
    unlink(path);
    free(path);
}

static void test_refresh(void **state)
{
    char *path = write_file("users3", "a@example.com:{PLAIN}1\n");
    users_t *u = users_open(path);
    char *err = NULL;

    (void)state;
    assert_int_equal(users_count(u), 1);
    assert_int_equal(users_file_set(path, "b@example.com", "{PLAIN}2", &err), 0);
    /* checked at most once a second: wait for the next second */
    for (int i = 0; i < 30 && !users_refresh(u); i++)
        usleep(100000);
    assert_int_equal(users_count(u), 2);
    assert_non_null(users_lookup(u, "b@example.com"));
    sleep(1);
    assert_false(users_refresh(u));   /* unchanged */
    users_close(&u);
    unlink(path);
    free(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_lookup),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_extra_fields),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_file_set),
        cmocka_unit_test(test_refresh),
    };
    int rc;

    if (mkdtemp(tmpdir) == NULL)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    rmdir(tmpdir);
    return rc;
}
