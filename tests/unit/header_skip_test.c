/* header_skip_test.c - the ranges kept when header fields are dropped:
 * nothing to drop keeps the whole; a dropped field goes with its
 * continuation lines, in any case and wherever it stands; the empty line
 * and the body are kept whatever they hold; every range starts at a line
 * start; a message without an empty line, or of only dropped fields. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "buf.h"
#include "header_skip.h"
#include "xalloc.h"

/* kept - the bytes of s the ranges keep, joined (malloc'ed); checks that
 * every range is inside s, non-empty, in order, and starts a line. */
static char *kept(const char *s, const char *const *drop, size_t n_drop, size_t *n_ranges)
{
    header_range *r = NULL;
    size_t len = strlen(s), n = header_skip_ranges(s, len, drop, n_drop, &r);
    buf_t out = BUF_INIT;
    size_t prev_end = 0;

    for (size_t i = 0; i < n; i++) {
        assert_true(r[i].len > 0);
        assert_true(r[i].offset + r[i].len <= len);
        assert_true(i == 0 || r[i].offset > prev_end);   /* adjacent ones are joined */
        assert_true(r[i].offset == 0 || s[r[i].offset - 1] == '\n');
        assert_true(r[i].offset + r[i].len == len || s[r[i].offset + r[i].len - 1] == '\n');
        buf_append(&out, s + r[i].offset, r[i].len);
        prev_end = r[i].offset + r[i].len;
    }
    assert_int_equal(header_skip_size(r, n), out.len);
    xfree(&r);
    if (n_ranges)
        *n_ranges = n;
    char *text = buf_steal(&out, NULL);
    return text != NULL ? text : xstrdup("");
}

static void check(const char *in, const char *const *drop, size_t n_drop, const char *want,
                  size_t want_ranges)
{
    size_t n;
    char *got = kept(in, drop, n_drop, &n);
    if (strcmp(got, want) != 0)
        fail_msg("kept \"%s\", want \"%s\"", got, want);
    assert_int_equal(n, want_ranges);
    xfree(&got);
}

static void test_nothing_to_drop(void **state)
{
    (void)state;
    const char *subject[] = {"Subject"};
    check("Subject: a\r\n\r\nbody\r\n", NULL, 0, "Subject: a\r\n\r\nbody\r\n", 1);
    check("From: x\r\n\r\nSubject: b\r\n", subject, 1, "From: x\r\n\r\nSubject: b\r\n", 1);
    check("", subject, 1, "", 0);
    check("", NULL, 0, "", 0);
    header_range *r = (header_range *)&r;
    assert_int_equal(header_skip_ranges("", 0, subject, 1, &r), 0);
    assert_null(r);
}

static void test_drop_fields(void **state)
{
    (void)state;
    const char *subject[] = {"subject"};
    const char *two[] = {"X-Tag", "Subject"};

    /* first, middle and last field; folded; any case; "Name :" */
    check("Subject: a\r\n b\r\nFrom: x\r\n\r\nbody\r\n", subject, 1,
          "From: x\r\n\r\nbody\r\n", 1);
    check("From: x\r\nSUBJECT: a\r\n\tb\r\nTo: y\r\n\r\nbody\r\n", subject, 1,
          "From: x\r\nTo: y\r\n\r\nbody\r\n", 2);
    check("From: x\r\nSubject : a\r\n\r\n", subject, 1, "From: x\r\n\r\n", 2);
    /* every field of the name, and two names */
    check("X-Tag: 1\r\nFrom: x\r\nSubject: a\r\nX-Tag: 2\r\n  more\r\nTo: y\r\n\r\n.dot\r\n",
          two, 2, "From: x\r\nTo: y\r\n\r\n.dot\r\n", 2);
    /* a name that only starts the same is kept */
    check("Subject-Extra: 1\r\nSubjec: 2\r\nSubject: 3\r\n\r\nb", subject, 1,
          "Subject-Extra: 1\r\nSubjec: 2\r\n\r\nb", 2);
    /* bare LF lines too */
    check("Subject: a\nFrom: x\n\nb\n", subject, 1, "From: x\n\nb\n", 1);
}

static void test_odd_messages(void **state)
{
    (void)state;
    const char *subject[] = {"Subject"};

    /* no empty line: the whole is header */
    check("From: x\r\nSubject: a\r\n", subject, 1, "From: x\r\n", 1);
    check("From: x\r\nSubject: a", subject, 1, "From: x\r\n", 1);
    check("Subject: a\r\n", subject, 1, "", 0);
    /* empty header section: only the body */
    check("\r\nSubject: a\r\n", subject, 1, "\r\nSubject: a\r\n", 1);
    /* a line without a colon, and a leading continuation, are kept */
    check(" lead\r\nno colon\r\nSubject: a\r\n\r\n", subject, 1, " lead\r\nno colon\r\n\r\n", 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_to_drop),
        cmocka_unit_test(test_drop_fields),
        cmocka_unit_test(test_odd_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
