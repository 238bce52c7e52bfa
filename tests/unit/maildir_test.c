/* maildir_test.c - Maildir delivery: the file lands in new/ with LF line
 * ends, trace and prepended header fields first, a unique name carrying
 * S=<size>, and nothing left in tmp/. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../delivery/maildir.h"
#include "fsutil.h"
#include "xalloc.h"

/* maildir_test_names - the entries of dir (not . and ..), at most max. */
static size_t maildir_test_names(const char *dir, char names[][256], size_t max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        assert_true(n < max);
        snprintf(names[n++], 256, "%s", de->d_name);
    }
    closedir(d);
    return n;
}

static void test_maildir_deliver(void **state)
{
    (void)state;
    char root[] = "/tmp/maildir_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    ProtobufCBinaryData hdrs[2] = {
        {strlen("X-Spam-Score: 0.0\r\n"), (uint8_t *)"X-Spam-Score: 0.0\r\n"},
        {strlen("X-Spam-Status: No\r\n"), (uint8_t *)"X-Spam-Status: No\r\n"},
    };
    const char *body = "Subject: hi\r\n\r\nline one\r\nline two\r\n";
    maildir_msg m = {.sender = "sender@example.org", .recipient = "demo@example.test",
                     .headers = hdrs, .n_headers = 2, .body = body, .body_len = strlen(body)};
    char err[256];

    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, NULL, err, sizeof err), 0);
    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, NULL, err, sizeof err), 0);

    char *tmpdir = xasprintf("%s/example.test/demo/tmp", root);
    char *newdir = xasprintf("%s/example.test/demo/new", root);
    char *curdir = xasprintf("%s/example.test/demo/cur", root);
    char names[4][256];
    struct stat sb;
    assert_int_equal(stat(curdir, &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
    assert_int_equal(maildir_test_names(tmpdir, names, 4), 0);
    assert_int_equal(maildir_test_names(newdir, names, 4), 2);
    assert_string_not_equal(names[0], names[1]);

    const char *expect =
        "Return-Path: <sender@example.org>\n"
        "Delivered-To: demo@example.test\n"
        "X-Spam-Score: 0.0\n"
        "X-Spam-Status: No\n"
        "Subject: hi\n\nline one\nline two\n";
    for (size_t i = 0; i < 2; i++) {
        char *path = xasprintf("%s/%s", newdir, names[i]);
        size_t len;
        char *data = fs_read_file(path, &len);
        assert_non_null(data);
        assert_int_equal(len, strlen(expect));
        assert_memory_equal(data, expect, len);
        char *sz = xasprintf(",S=%zu", len);
        const char *tail = names[i] + strlen(names[i]) - strlen(sz);
        assert_string_equal(tail, sz);       /* S= is the file's size */
        assert_non_null(strstr(names[i], ".M"));
        assert_int_equal(stat(path, &sb), 0);
        assert_int_equal(sb.st_mode & 0777, 0600);
        xfree(&sz);
        xfree(&data);
        xfree(&path);
    }
    char *cmd = xasprintf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    xfree(&tmpdir);
    xfree(&newdir);
    xfree(&curdir);
}

static void test_maildir_null_sender_and_injection(void **state)
{
    (void)state;
    char root[] = "/tmp/maildir_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    const char *body = "\r\nbody\r\n";
    maildir_msg m = {.sender = "", .recipient = "x@example.test\r\nX-Evil: 1",
                     .body = body, .body_len = strlen(body)};
    char err[256];
    assert_int_equal(maildir_deliver(root, "example.test/x", &m, NULL, err, sizeof err), 0);
    char *newdir = xasprintf("%s/example.test/x/new", root);
    char names[2][256];
    assert_int_equal(maildir_test_names(newdir, names, 2), 1);
    char *path = xasprintf("%s/%s", newdir, names[0]);
    size_t len;
    char *data = fs_read_file(path, &len);
    assert_non_null(data);
    assert_string_equal(data, "Return-Path: <>\nDelivered-To: x@example.test??X-Evil: 1\n\nbody\n");
    xfree(&data);
    xfree(&path);
    xfree(&newdir);
    char *cmd = xasprintf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
}

static void test_maildir_refuses(void **state)
{
    (void)state;
    char root[] = "/tmp/maildir_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    maildir_msg m = {.sender = "", .recipient = "x@y", .body = "\r\n", .body_len = 2};
    char err[256];
    static const char *const bad[] = {"", "demo", "/etc/x", "a/b/c", "../x", "a/..", "a/.x",
                                      ".a/x", "a/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(maildir_deliver(root, bad[i], &m, NULL, err, sizeof err), MAILDIR_UNSAFE);

    /* A Maildir that cannot be written: -1 with a reason, nothing left. */
    if (geteuid() != 0) {
        char *dom = xasprintf("%s/ro.test", root);
        assert_int_equal(mkdir(dom, 0500), 0);
        assert_int_equal(maildir_deliver(root, "ro.test/u", &m, NULL, err, sizeof err), -1);
        assert_non_null(strstr(err, "Permission denied"));
        xfree(&dom);
    }
    char *cmd = xasprintf("chmod -R u+w '%s'; rm -rf '%s'", root, root);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
}

/* An attempt after a crash finds its file already in new/: not written twice. */
static void test_maildir_stable_id(void **state)
{
    (void)state;
    char root[] = "/tmp/maildir_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    const char *body = "Subject: once\r\n\r\nbody\r\n";
    maildir_msg m = {.sender = "a@example.org", .recipient = "demo@example.test",
                     .body = body, .body_len = strlen(body),
                     .stable_id = "1K0XSQMXS5NF19800R0", .arrival = 1795427046};
    char err[256], names[4][256];
    bool dup = true;

    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, &dup, err, sizeof err), 0);
    assert_false(dup);
    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, &dup, err, sizeof err), 0);
    assert_true(dup);
    char *newdir = xasprintf("%s/example.test/demo/new", root);
    char *tmpdir = xasprintf("%s/example.test/demo/tmp", root);
    assert_int_equal(maildir_test_names(newdir, names, 4), 1);
    assert_non_null(strstr(names[0], "1795427046.Q1K0XSQMXS5NF19800R0."));
    assert_int_equal(maildir_test_names(tmpdir, names, 4), 0);
    /* another recipient index is another file */
    m.stable_id = "1K0XSQMXS5NF19800R1";
    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, &dup, err, sizeof err), 0);
    assert_false(dup);
    assert_int_equal(maildir_test_names(newdir, names, 4), 2);
    xfree(&newdir);
    xfree(&tmpdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maildir_deliver),
        cmocka_unit_test(test_maildir_stable_id),
        cmocka_unit_test(test_maildir_null_sender_and_injection),
        cmocka_unit_test(test_maildir_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
