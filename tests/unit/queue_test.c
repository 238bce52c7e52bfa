/* queue_test.c - the delivery queue keeps what the scheduler writes: a
 * new envelope, each recipient's state with its DSN facts and the
 * notices sent, the hold state and the route a recipient was moved to;
 * finish moves an id to "done" (so a resent copy is known) and prune
 * forgets old ids.  Also the schedule's heap order. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../delivery/queue.h"
#include "../../delivery/sched_heap.h"
#include "xalloc.h"

#define TEST_MAP (64 * 1024 * 1024)

/* make_env - a packed envelope with two recipients; *env its decoded form. */
static uint8_t *make_env(const char *qid, size_t *len, Envelope **env)
{
    Recipient r[2] = {CORREIO__RECIPIENT__INIT, CORREIO__RECIPIENT__INIT};
    Recipient *rp[2] = {&r[0], &r[1]};
    r[0].address = "a@example.test";
    r[0].route = CORREIO__ROUTE_KIND__ROUTE_RELAY;
    r[0].nexthop = "example.test";
    r[1].address = "b@remote.test";
    r[1].route = CORREIO__ROUTE_KIND__ROUTE_RELAY;
    r[1].nexthop = "remote.test";
    r[1].notify = CORREIO__NOTIFY__NOTIFY_FAILURE;
    Envelope e = CORREIO__ENVELOPE__INIT;
    e.version = WIRE_VERSION;
    e.queue_id = (char *)qid;
    e.reverse_path = "s@example.test";
    e.n_rcpt = 2;
    e.rcpt = rp;
    e.body.data = (uint8_t *)"Subject: x\r\n\r\nbody\r\n";
    e.body.len = strlen((char *)e.body.data);
    uint8_t *packed = wire_pack_envelope(&e, len);
    *env = wire_unpack_envelope(packed, *len, "test");
    assert_non_null(*env);
    return packed;
}

static char *test_dir(void)
{
    char tmpl[] = "/tmp/queue_test.XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    return xstrdup(tmpl);
}

static void test_queue_states_round_trip(void **state)
{
    (void)state;
    char *dir = test_dir();
    queue_t *q = queue_open(dir, TEST_MAP);
    const char *qid = "0F2A1B3C5D6E7890A";
    size_t len;
    Envelope *env;
    uint8_t *packed = make_env(qid, &len, &env);

    queue_txn *t = queue_begin(q, true);
    assert_int_equal(queue_known(t, qid), 0);
    assert_int_equal(queue_put_new(t, packed, len, env), 0);
    assert_int_equal(queue_commit(&t), 0);

    t = queue_begin(q, true);
    assert_int_equal(queue_known(t, qid), 1);
    queue_rec *r = queue_get(t, qid);
    assert_non_null(r);
    assert_int_equal(r->n, 2);
    assert_int_equal(r->rcpt[0].state, CORREIO__RCPT_STATE__RCPT_PENDING);
    r->rcpt[0].state = CORREIO__RCPT_STATE__RCPT_DEFERRED;
    r->rcpt[0].attempts = 3;
    r->rcpt[0].next_us = 1234567;
    queue_rcpt_set_status(&r->rcpt[0], "host mx[192.0.2.1] said: 451 4.3.0 later");
    snprintf(r->rcpt[0].dsn_status, sizeof r->rcpt[0].dsn_status, "4.3.0");
    queue_rcpt_set_str(&r->rcpt[0].remote_mta, "mx.example.test");
    queue_rcpt_set_str(&r->rcpt[0].diagnostic, "451 4.3.0 later");
    r->rcpt[0].last_attempt_us = 99;
    r->rcpt[1].state = CORREIO__RCPT_STATE__RCPT_FAILED;
    r->rcpt[1].dsn_sent = CORREIO__NOTIFY__NOTIFY_FAILURE;
    r->rcpt[1].route = CORREIO__ROUTE_KIND__ROUTE_MAILDIR;
    queue_rcpt_set_str(&r->rcpt[1].mailbox, "remote.test/b");
    queue_rec_set_hold(r, true, "held for a test");
    assert_int_equal(queue_put(t, r), 0);
    queue_rec_free(&r);
    assert_int_equal(queue_commit(&t), 0);

    t = queue_begin(q, false);
    r = queue_get(t, qid);
    assert_non_null(r);
    assert_true(r->hold);
    assert_string_equal(r->hold_reason, "held for a test");
    assert_int_equal(r->rcpt[0].state, CORREIO__RCPT_STATE__RCPT_DEFERRED);
    assert_int_equal(r->rcpt[0].attempts, 3);
    assert_int_equal(r->rcpt[0].next_us, 1234567);
    assert_string_equal(r->rcpt[0].dsn_status, "4.3.0");
    assert_string_equal(r->rcpt[0].remote_mta, "mx.example.test");
    assert_string_equal(r->rcpt[0].diagnostic, "451 4.3.0 later");
    assert_int_equal(r->rcpt[0].last_attempt_us, 99);
    assert_int_equal(r->rcpt[1].dsn_sent, CORREIO__NOTIFY__NOTIFY_FAILURE);
    assert_int_equal(r->rcpt[1].route, CORREIO__ROUTE_KIND__ROUTE_MAILDIR);
    assert_string_equal(r->rcpt[1].mailbox, "remote.test/b");
    assert_int_equal(r->env->rcpt[1]->notify, CORREIO__NOTIFY__NOTIFY_FAILURE);

    /* release forgets the backoff of every recipient not final */
    queue_rec_set_hold(r, false, NULL);
    assert_false(r->hold);
    assert_string_equal(r->hold_reason, "");
    assert_int_equal(r->rcpt[0].next_us, 0);
    queue_rec_free(&r);
    queue_abort(&t);

    t = queue_begin(q, true);
    assert_int_equal(queue_finish(t, qid, 1000), 0);
    assert_int_equal(queue_commit(&t), 0);
    t = queue_begin(q, false);
    assert_null(queue_get(t, qid));
    assert_int_equal(queue_known(t, qid), 1);      /* a resent copy is known */
    queue_abort(&t);
    assert_int_equal(queue_prune_done(q, 2000, 10), 1);
    t = queue_begin(q, false);
    assert_int_equal(queue_known(t, qid), 0);
    queue_abort(&t);

    wire_free_envelope(&env);
    xfree(&packed);
    queue_close(&q);
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    xfree(&dir);
}

static void test_sched_heap_order(void **state)
{
    (void)state;
    sched_heap h = {0};
    sched_heap_push(&h, "B0000000000001", 1, 30);
    sched_heap_push(&h, "A0000000000001", 2, 10);
    sched_heap_push(&h, "A0000000000001", 0, 10);
    sched_heap_push(&h, "C0000000000001", 0, 20);
    const char *gone[] = {"C0000000000001"};
    sched_heap_remove_ids(&h, gone, 1);
    sched_item it;
    sched_heap_pop(&h, &it);
    assert_string_equal(it.queue_id, "A0000000000001");
    assert_int_equal(it.rcpt, 0);              /* same time: by id, then recipient */
    sched_heap_pop(&h, &it);
    assert_int_equal(it.rcpt, 2);
    sched_heap_pop(&h, &it);
    assert_string_equal(it.queue_id, "B0000000000001");
    assert_null(sched_heap_top(&h));
    sched_heap_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_states_round_trip),
        cmocka_unit_test(test_sched_heap_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
