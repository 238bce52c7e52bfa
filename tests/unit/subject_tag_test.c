/* subject_tag_test.c - the spam tag in the Subject: a message without a
 * Subject gets the field first; a folded Subject, "subject:" in lower
 * case and "Subject :" are found; a Subject already tagged is left
 * alone; a "Subject:" after the empty line is body; an encoded word gets
 * the tag before it; a tag that could break the header writes nothing;
 * and the pieces splice the tag into header_skip's ranges, a dropped
 * Subject taking it along. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "buf.h"
#include "subject_tag.h"
#include "xalloc.h"

/* tagged - msg as a writer emits it with tag, dropping drop (may be NULL),
 * malloc'ed. */
static char *tagged(const char *msg, const char *tag, const char *drop)
{
    subject_tag_plan p;
    header_range *keep = NULL;
    struct iovec *v = NULL;
    size_t len = strlen(msg);
    const char *names[1] = {drop};
    buf_t out = BUF_INIT;

    subject_tag_plan_make(msg, len, tag, &p);
    size_t n_keep = header_skip_ranges(msg, len, names, drop ? 1 : 0, &keep);
    size_t n = subject_tag_pieces(msg, keep, n_keep, &p, &v);
    for (size_t i = 0; i < n; i++) {
        assert_true(v[i].iov_len > 0);
        buf_append(&out, v[i].iov_base, v[i].iov_len);
    }
    buf_append(&out, "", 1);
    xfree(&v);
    xfree(&keep);
    subject_tag_plan_free(&p);
    return buf_steal(&out, NULL);
}

static void check(const char *msg, const char *tag, const char *want)
{
    char *got = tagged(msg, tag, NULL);
    if (strcmp(got, want) != 0)
        fail_msg("got \"%s\", want \"%s\"", got, want);
    xfree(&got);
}

static void test_plain(void **state)
{
    (void)state;
    check("From: a@b\r\nSubject: Hello\r\n\r\nbody\r\n", "[SPAM] ",
          "From: a@b\r\nSubject: [SPAM] Hello\r\n\r\nbody\r\n");
    /* CRLF kept as it is, the body untouched */
    check("Subject: x\r\nTo: c@d\r\n\r\nSubject: body\r\n", "[SPAM] ",
          "Subject: [SPAM] x\r\nTo: c@d\r\n\r\nSubject: body\r\n");
}

static void test_no_subject(void **state)
{
    (void)state;
    check("From: a@b\r\n\r\nbody\r\n", "[SPAM] ",
          "Subject: [SPAM]\r\nFrom: a@b\r\n\r\nbody\r\n");
    check("", "[SPAM] ", "Subject: [SPAM]\r\n");
    /* a Subject in the body is not the header's */
    check("From: a@b\r\n\r\nSubject: in body\r\n", "***",
          "Subject: ***\r\nFrom: a@b\r\n\r\nSubject: in body\r\n");
}

static void test_folded_and_case(void **state)
{
    (void)state;
    check("subject: lower\r\n\r\n", "[SPAM] ", "subject: [SPAM] lower\r\n\r\n");
    check("SUBJECT :  spaced\r\n\r\n", "[SPAM] ", "SUBJECT :  [SPAM] spaced\r\n\r\n");
    check("Subject:\r\n folded\r\n second\r\n\r\nb", "[SPAM] ",
          "Subject:\r\n [SPAM] folded\r\n second\r\n\r\nb");
    check("Subject:nospace\r\n\r\n", "[SPAM] ", "Subject: [SPAM] nospace\r\n\r\n");
    check("Subject:\r\n\r\n", "[SPAM] ", "Subject: [SPAM]\r\n\r\n");
    check("Subject: \r\n\r\n", "[SPAM] ", "Subject: [SPAM]\r\n\r\n");
    /* X-Subject is another field */
    check("X-Subject: no\r\n\r\n", "[S]", "Subject: [S]\r\nX-Subject: no\r\n\r\n");
    /* LF-only lines work too */
    check("Subject: lf\n\nbody\n", "[SPAM] ", "Subject: [SPAM] lf\n\nbody\n");
}

static void test_already_tagged(void **state)
{
    (void)state;
    check("Subject: [SPAM] Hello\r\n\r\n", "[SPAM] ", "Subject: [SPAM] Hello\r\n\r\n");
    check("Subject: [SPAM]\r\n\r\n", "[SPAM] ", "Subject: [SPAM]\r\n\r\n");
    /* another tag is not the same */
    check("Subject: [SPAM] Hello\r\n\r\n", "[JUNK] ", "Subject: [JUNK] [SPAM] Hello\r\n\r\n");
    /* a tag without its trailing space (correio.conf trims it) */
    check("Subject: Hello\r\n\r\n", "[SPAM]", "Subject: [SPAM] Hello\r\n\r\n");
    check("Subject: [SPAM] Hello\r\n\r\n", "[SPAM]", "Subject: [SPAM] Hello\r\n\r\n");
    check("Subject: Hello\r\n\r\n", "[SPAM]   ", "Subject: [SPAM] Hello\r\n\r\n");
}

static void test_encoded_word(void **state)
{
    (void)state;
    check("Subject: =?utf-8?B?w6lsw6k=?=\r\n\r\n", "[SPAM] ",
          "Subject: [SPAM] =?utf-8?B?w6lsw6k=?=\r\n\r\n");
}

static void test_bad_tags(void **state)
{
    (void)state;
    subject_tag_plan p;
    const char *msg = "Subject: x\r\n\r\n";
    char long_tag[SUBJECT_TAG_MAX + 2];

    memset(long_tag, 'a', sizeof long_tag - 1);
    long_tag[sizeof long_tag - 1] = '\0';
    const char *bad[] = {"", "   ", "[SPAM]\r\nBcc: x@y", "\xc3\xa9t\xc3\xa9", long_tag, NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_false(subject_tag_plan_make(msg, strlen(msg), bad[i], &p));
        assert_null(p.text);
    }
    check(msg, long_tag, msg);
}

static void test_find(void **state)
{
    (void)state;
    size_t off, n;
    const char *m = "From: a\r\nSubject: one\r\n two\r\nTo: b\r\n\r\n";
    assert_true(subject_tag_find(m, strlen(m), &off, &n));
    assert_int_equal(n, strlen(" one\r\n two"));
    assert_memory_equal(m + off, " one\r\n two", n);
    assert_false(subject_tag_find("From: a\r\n\r\nSubject: b\r\n", 22, &off, &n));
    assert_false(subject_tag_find(NULL, 0, &off, &n));
    /* a header cut off in the middle of the Subject */
    const char *cut = "Subject: abc";
    assert_true(subject_tag_find(cut, strlen(cut), &off, &n));
    assert_int_equal(n, 4);
}

static void test_with_dropped_fields(void **state)
{
    (void)state;
    /* another field dropped: the tag still goes in */
    char *got = tagged("X-Old: 1\r\nSubject: hi\r\n\r\nb", "[SPAM] ", "X-Old");
    assert_string_equal(got, "Subject: [SPAM] hi\r\n\r\nb");
    xfree(&got);
    /* the Subject itself dropped (a filter wrote a new one): left out */
    got = tagged("X-A: 1\r\nSubject: hi\r\n\r\nb", "[SPAM] ", "Subject");
    assert_string_equal(got, "X-A: 1\r\n\r\nb");
    xfree(&got);
    /* no Subject and the first field dropped: the new field still first */
    got = tagged("X-Old: 1\r\nFrom: a\r\n\r\nb", "[SPAM] ", "X-Old");
    assert_string_equal(got, "Subject: [SPAM]\r\nFrom: a\r\n\r\nb");
    xfree(&got);
}

static void test_no_plan(void **state)
{
    (void)state;
    struct iovec *v = NULL;
    header_range r = {0, 5};
    assert_int_equal(subject_tag_pieces("hello", &r, 1, NULL, &v), 1);
    assert_int_equal(v[0].iov_len, 5);
    xfree(&v);
    assert_int_equal(subject_tag_pieces("", NULL, 0, NULL, &v), 0);
    assert_null(v);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_no_subject),
        cmocka_unit_test(test_folded_and_case),
        cmocka_unit_test(test_already_tagged),
        cmocka_unit_test(test_encoded_word),
        cmocka_unit_test(test_bad_tags),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_with_dropped_fields),
        cmocka_unit_test(test_no_plan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
