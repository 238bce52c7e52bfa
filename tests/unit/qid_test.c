/* qid_test.c - queue ids: unique, sorted, valid. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "qid.h"
#include "xalloc.h"

#define N_IDS 100000

static void test_unique_sorted(void **state)
{
    char (*ids)[QID_LEN + 1] = xmalloc(N_IDS * sizeof(*ids));

    (void)state;
    qid_init("mx.example.com");
    for (int i = 0; i < N_IDS; i++) {
        qid_next(ids[i]);
        assert_int_equal(strlen(ids[i]), QID_LEN);
        assert_true(qid_valid(ids[i], QID_LEN));
        if (i > 0 && strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("not increasing: %s then %s", ids[i - 1], ids[i]);
    }
    free(ids);
}

static void *thread_ids(void *arg)
{
    char (*ids)[QID_LEN + 1] = arg;

    for (int i = 0; i < N_IDS / 4; i++)
        qid_next(ids[i]);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void test_threads(void **state)
{
    char (*ids)[QID_LEN + 1] = xmalloc(N_IDS * sizeof(*ids));
    pthread_t t[4];

    (void)state;
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, thread_ids, ids + i * (N_IDS / 4));
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    qsort(ids, N_IDS, sizeof(*ids), cmp_id);
    for (int i = 1; i < N_IDS; i++)
        assert_string_not_equal(ids[i - 1], ids[i]);
    free(ids);
}

static void test_valid(void **state)
{
    static const struct { const char *s; bool want; } cases[] = {
        {"0123456789ABCDEFG", true},
        {"ZZZZZZZZZZZZZZZZZ", true},
        {"0123456789ABCDEF", false},       /* short */
        {"0123456789ABCDEFGH", false},     /* long */
        {"0123456789ABCDEFI", false},      /* I is not Crockford */
        {"0123456789ABCDEFL", false},
        {"0123456789ABCDEFO", false},
        {"0123456789ABCDEFU", false},
        {"0123456789abcdefg", false},      /* lower case is not what we make */
        {"0123456789ABCDEF-", false},
        {"", false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (qid_valid(cases[i].s, strlen(cases[i].s)) != cases[i].want)
            fail_msg("case %zu %s", i, cases[i].s);
    assert_false(qid_valid("0123456789ABCDE\0G", QID_LEN));
    assert_false(qid_valid(NULL, QID_LEN));
}

static void test_node_differs(void **state)
{
    char a[QID_LEN + 1], b[QID_LEN + 1];

    (void)state;
    qid_init("host-a.example");
    qid_next(a);
    qid_init("host-b.example");
    qid_next(b);
    assert_memory_not_equal(a + 11, b + 11, 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unique_sorted),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_node_differs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
