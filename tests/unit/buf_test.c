/* buf_test.c - growable byte strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "buf.h"

static void test_append(void **state)
{
    buf_t b = BUF_INIT;

    (void)state;
    buf_append(&b, "ab\0cd", 5);
    assert_int_equal(b.len, 5);
    assert_memory_equal(b.data, "ab\0cd", 5);
    assert_int_equal(b.data[5], 0);
    buf_append_str(&b, "ef");
    buf_append_char(&b, 'g');
    assert_int_equal(b.len, 8);
    assert_memory_equal(b.data, "ab\0cdefg", 9);
    assert_true(b.len + 1 <= b.cap);
    buf_free(&b);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
}

static void test_printf_grows(void **state)
{
    buf_t b = BUF_INIT;
    char big[5000];

    (void)state;
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    buf_printf(&b, "%d-%s", 42, "a");
    assert_string_equal(b.data, "42-a");
    buf_printf(&b, "%s", big);
    assert_int_equal(b.len, 4 + 4999);
    assert_int_equal(b.data[b.len], 0);
    assert_int_equal(strspn(b.data + 4, "x"), 4999);
    buf_free(&b);
}

static void test_consume_reset_steal(void **state)
{
    buf_t b;
    size_t len;
    char *p;

    (void)state;
    buf_init(&b);
    for (int i = 0; i < 1000; i++)
        buf_append_char(&b, (char)('a' + i % 26));
    buf_consume(&b, 26);
    assert_int_equal(b.len, 974);
    assert_memory_equal(b.data, "abc", 3);
    buf_consume(&b, 0);
    buf_consume(&b, b.len);
    assert_int_equal(b.len, 0);
    assert_int_equal(b.data[0], 0);
    buf_append_str(&b, "hello");
    buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_non_null(b.data);
    buf_append_str(&b, "world");
    p = buf_steal(&b, &len);
    assert_string_equal(p, "world");
    assert_int_equal(len, 5);
    assert_null(b.data);
    assert_int_equal(b.len, 0);
    free(p);
    p = buf_steal(&b, &len);
    assert_null(p);
    assert_int_equal(len, 0);
}

static void test_reserve(void **state)
{
    buf_t b = BUF_INIT;

    (void)state;
    buf_reserve(&b, 100);
    assert_true(b.cap >= 101);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append),
        cmocka_unit_test(test_printf_grows),
        cmocka_unit_test(test_consume_reset_steal),
        cmocka_unit_test(test_reserve),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
