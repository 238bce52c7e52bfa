/* maildir_test.c - Maildir delivery: the file lands in new/ with LF line
 * ends, trace and prepended header fields first, a unique name carrying
 * S=<size>, and nothing left in tmp/; fields named in drop_headers left
 * out of the client's header (not of the prepended ones); Maildir++
 * folders; Delivered-To loop detection; the spam tag in the Subject. */
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

/* A folder is MAILDIR/.NAME/, a Maildir with a maildirfolder marker; the
 * inbox Maildir is made too. */
static void test_maildir_folder(void **state)
{
    (void)state;
    char root[] = "/tmp/maildir_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    const char *body = "Subject: spam\r\n\r\nbuy\r\n";
    maildir_msg m = {.sender = "s@example.org", .recipient = "demo@example.test",
                     .body = body, .body_len = strlen(body), .folder = "Junk"};
    char err[256], names[4][256];
    struct stat sb;

    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, NULL, err, sizeof err), 0);
    static const char *const dirs[] = {"cur", "new", "tmp", ".Junk", ".Junk/cur", ".Junk/new",
                                       ".Junk/tmp"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char *p = xasprintf("%s/example.test/demo/%s", root, dirs[i]);
        assert_int_equal(stat(p, &sb), 0);
        assert_true(S_ISDIR(sb.st_mode));
        assert_int_equal(sb.st_mode & 0777, 0700);
        xfree(&p);
    }
    char *marker = xasprintf("%s/example.test/demo/.Junk/maildirfolder", root);
    assert_int_equal(stat(marker, &sb), 0);
    assert_true(S_ISREG(sb.st_mode));
    assert_int_equal(sb.st_size, 0);
    char *junknew = xasprintf("%s/example.test/demo/.Junk/new", root);
    char *inboxnew = xasprintf("%s/example.test/demo/new", root);
    assert_int_equal(maildir_test_names(junknew, names, 4), 1);
    assert_int_equal(maildir_test_names(inboxnew, names, 4), 0);
    /* the size in the name is the file's, as for the inbox */
    maildir_test_names(junknew, names, 4);
    char *sz = xasprintf(",S=%zu", maildir_msg_size(&m));
    assert_non_null(strstr(names[0], sz));
    /* nested Maildir++ names and the inbox */
    m.folder = "Lists.correio";
    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, NULL, err, sizeof err), 0);
    m.folder = "";
    assert_int_equal(maildir_deliver(root, "example.test/demo", &m, NULL, err, sizeof err), 0);
    assert_int_equal(maildir_test_names(inboxnew, names, 4), 1);
    char *nested = xasprintf("%s/example.test/demo/.Lists.correio/new", root);
    assert_int_equal(maildir_test_names(nested, names, 4), 1);
    /* a name that is not a folder is refused, never made into a path */
    static const char *const bad[] = {"../x", ".Junk", "a/b", "x..y", "Junk.", "tab\there",
                                      "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        m.folder = bad[i];
        assert_false(maildir_folder_valid(bad[i]));
        assert_int_equal(maildir_deliver(root, "example.test/demo", &m, NULL, err, sizeof err),
                         MAILDIR_UNSAFE);
    }
    assert_true(maildir_folder_valid("Junk"));
    assert_true(maildir_folder_valid("Spam Box"));
    assert_false(maildir_folder_valid(""));
    xfree(&sz);
    xfree(&nested);
    xfree(&marker);
    xfree(&junknew);
    xfree(&inboxnew);
    char *cmd = xasprintf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
}

/* Delivered-To: RECIPIENT in the header section means the message was
 * here before; in the body, or for someone else, it does not. */
static void test_maildir_loop(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        const char *prepended;     /* NULL: none */
        bool        loop;
    } cases[] = {
        {"Delivered-To: demo@example.test\r\nSubject: x\r\n\r\nhi\r\n", NULL, true},
        {"Subject: x\r\nDELIVERED-TO:   Demo@Example.TEST  \r\n\r\nhi\r\n", NULL, true},
        {"Delivered-To : <demo@example.test>\r\n\r\nhi\r\n", NULL, true},
        {"Delivered-To:\r\n demo@example.test\r\n\r\nhi\r\n", NULL, true},
        {"Subject: x\r\n\r\nhi\r\n", "Delivered-To: demo@example.test\r\n", true},
        {"Delivered-To: other@example.test\r\n\r\nhi\r\n", NULL, false},
        {"Delivered-To: demo@example.test.evil\r\n\r\nhi\r\n", NULL, false},
        {"X-Delivered-To: demo@example.test\r\n\r\nhi\r\n", NULL, false},
        {"Subject: x\r\n\r\nDelivered-To: demo@example.test\r\n", NULL, false},
        {"\r\nDelivered-To: demo@example.test\r\n", NULL, false},
        {"Subject: x\r\n X-Folded: Delivered-To: demo@example.test\r\n\r\n", NULL, false},
        {"", NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        ProtobufCBinaryData h = {0, NULL};
        if (cases[i].prepended) {
            h.len = strlen(cases[i].prepended);
            h.data = (uint8_t *)cases[i].prepended;
        }
        maildir_msg m = {.sender = "", .recipient = "demo@example.test",
                         .headers = &h, .n_headers = cases[i].prepended ? 1 : 0,
                         .body = cases[i].body, .body_len = strlen(cases[i].body)};
        if (maildir_delivered_to_loop(&m) != cases[i].loop)
            fail_msg("case %zu: loop should be %d", i, cases[i].loop);
    }
}

/* drop_headers: every Subject (any case, with its continuation lines)
 * of the client's header goes, the prepended one and the body's stay;
 * LF conversion holds across the skipped ranges; S= is the real size. */
static void test_maildir_drop_headers(void **state)
{
    (void)state;
    char root[] = "/tmp/maildir_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    ProtobufCBinaryData hdrs[1] = {
        {strlen("Subject: [external] hi\r\n"), (uint8_t *)"Subject: [external] hi\r\n"},
    };
    const char *body = "Subject: hi\r\n folded\r\nFrom: a@example.org\r\n"
                       "SUBJECT: again\r\nTo: b@example.test\r\n\r\n"
                       "Subject: in the body\r\n.\r\n";
    const char *const drop[] = {"subject"};
    maildir_msg m = {.sender = "a@example.org", .recipient = "b@example.test",
                     .headers = hdrs, .n_headers = 1, .body = body, .body_len = strlen(body),
                     .drop_headers = drop, .n_drop_headers = 1};
    char err[256];
    const char *expect =
        "Return-Path: <a@example.org>\n"
        "Delivered-To: b@example.test\n"
        "Subject: [external] hi\n"
        "From: a@example.org\n"
        "To: b@example.test\n"
        "\n"
        "Subject: in the body\n.\n";

    assert_int_equal(maildir_msg_size(&m), strlen(expect));
    assert_int_equal(maildir_deliver(root, "example.test/b", &m, NULL, err, sizeof err), 0);
    char *newdir = xasprintf("%s/example.test/b/new", root);
    char names[2][256];
    assert_int_equal(maildir_test_names(newdir, names, 2), 1);
    char *path = xasprintf("%s/%s", newdir, names[0]);
    size_t len;
    char *data = fs_read_file(path, &len);
    assert_non_null(data);
    assert_int_equal(len, strlen(expect));
    assert_memory_equal(data, expect, len);
    char *sz = xasprintf(",S=%zu", len);
    assert_string_equal(names[0] + strlen(names[0]) - strlen(sz), sz);
    xfree(&sz);
    xfree(&data);
    xfree(&path);
    xfree(&newdir);
    char *cmd = xasprintf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
}

/* maildir_test_one - deliver m into a fresh root and return the file
 * (malloc'ed), checking its S= against maildir_msg_size. */
static char *maildir_test_one(const maildir_msg *m, size_t *len)
{
    char root[] = "/tmp/maildir_test.XXXXXX";
    assert_non_null(mkdtemp(root));
    char err[256];
    assert_int_equal(maildir_deliver(root, "example.test/b", m, NULL, err, sizeof err), 0);
    char *newdir = xasprintf("%s/example.test/b/new", root);
    char names[2][256];
    assert_int_equal(maildir_test_names(newdir, names, 2), 1);
    char *path = xasprintf("%s/%s", newdir, names[0]);
    char *data = fs_read_file(path, len);
    assert_non_null(data);
    assert_int_equal(maildir_msg_size(m), *len);
    char *sz = xasprintf(",S=%zu", *len);
    assert_string_equal(names[0] + strlen(names[0]) - strlen(sz), sz);
    xfree(&sz);
    xfree(&path);
    xfree(&newdir);
    char *cmd = xasprintf("rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    return data;
}

/* The spam tag goes into the client's Subject (with LF line ends like
 * the rest), or a Subject field is made; a dropped Subject is not
 * tagged; no tag leaves the message as it was. */
static void test_maildir_subject_tag(void **state)
{
    (void)state;
    static const struct {
        const char *body, *tag, *drop, *want;
    } cases[] = {
        {"From: a@example.org\r\nSubject: Hello\r\n\r\nSubject: body\r\n", "[SPAM] ", NULL,
         "From: a@example.org\nSubject: [SPAM] Hello\n\nSubject: body\n"},
        {"From: a@example.org\r\n\r\nbody\r\n", "[SPAM] ", NULL,
         "Subject: [SPAM]\nFrom: a@example.org\n\nbody\n"},
        {"Subject: [SPAM] again\r\n\r\nb\r\n", "[SPAM] ", NULL,
         "Subject: [SPAM] again\n\nb\n"},
        {"subject:\r\n =?utf-8?Q?caf=C3=A9?=\r\n\r\nb\r\n", "***SPAM*** ", NULL,
         "subject:\n ***SPAM*** =?utf-8?Q?caf=C3=A9?=\n\nb\n"},
        {"X-Old: 1\r\nSubject: Hi\r\n\r\nb\r\n", "[SPAM] ", "x-old",
         "Subject: [SPAM] Hi\n\nb\n"},
        {"Subject: Hi\r\nTo: b@example.test\r\n\r\nb\r\n", "[SPAM] ", "subject",
         "To: b@example.test\n\nb\n"},
        {"Subject: Hi\r\n\r\nb\r\n", "", NULL, "Subject: Hi\n\nb\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *drop[1] = {cases[i].drop};
        maildir_msg m = {.sender = "a@example.org", .recipient = "b@example.test",
                         .body = cases[i].body, .body_len = strlen(cases[i].body),
                         .drop_headers = drop, .n_drop_headers = cases[i].drop ? 1 : 0,
                         .subject_tag = cases[i].tag};
        char *want = xasprintf("Return-Path: <a@example.org>\nDelivered-To: b@example.test\n%s",
                               cases[i].want);
        size_t len;
        char *data = maildir_test_one(&m, &len);
        if (len != strlen(want) || memcmp(data, want, len) != 0)
            fail_msg("case %zu: got \"%.*s\", want \"%s\"", i, (int)len, data, want);
        xfree(&data);
        xfree(&want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_maildir_deliver),
        cmocka_unit_test(test_maildir_stable_id),
        cmocka_unit_test(test_maildir_null_sender_and_injection),
        cmocka_unit_test(test_maildir_drop_headers),
        cmocka_unit_test(test_maildir_refuses),
        cmocka_unit_test(test_maildir_folder),
        cmocka_unit_test(test_maildir_loop),
        cmocka_unit_test(test_maildir_subject_tag),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
