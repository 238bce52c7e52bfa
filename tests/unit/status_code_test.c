/* status_code_test.c - status_code_len reads RFC 3463 codes at the start
 * of a text and nothing else. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "status_code.h"

static void test_status_code_len(void **state)
{
    (void)state;
    assert_int_equal(status_code_len("5.1.1"), 5);
    assert_int_equal(status_code_len("5.1.1 no such user"), 5);
    assert_int_equal(status_code_len("4.123.456 x"), 9);
    assert_int_equal(status_code_len("2.0.0"), 5);
    assert_int_equal(status_code_len("5.1.1x"), 0);      /* no space after it */
    assert_int_equal(status_code_len("5.1234.1"), 0);    /* four digits */
    assert_int_equal(status_code_len("5..1"), 0);
    assert_int_equal(status_code_len("5.1"), 0);
    assert_int_equal(status_code_len("55.1.1"), 0);
    assert_int_equal(status_code_len("x.1.1"), 0);
    assert_int_equal(status_code_len(""), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_code_len),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
