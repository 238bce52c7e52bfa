/* policy_client_test.c - the policy client against two ROUTERs in the
 * same process: keys spread over both by rendezvous hashing and each
 * answered by its owner, a silent router's requests failing at the
 * timeout (callback with NULL) and its late replies dropped, abandoned
 * calls that never call back, a request with no router at all failing
 * at its timeout in policy_client_process (never inside ask), one that
 * reaches a router that binds late, and the stability of
 * rendezvous hashing when a node goes away. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "policy_client.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define EP1 "inproc://policy-test-1"
#define EP2 "inproc://policy-test-2"
#define NKEYS 40
#define WAIT_MS 5000

typedef struct answer {
    int          calls;
    bool         got_reply;
    char         text[64];
    Correio__PolicyAction action;
} answer;

static void on_reply(void *arg, const PolicyReply *r)
{
    answer *a = arg;

    a->calls++;
    a->got_reply = r != NULL;
    if (r) {
        snprintf(a->text, sizeof(a->text), "%s", r->text);
        a->action = r->action;
    }
}

/* serve - answer every request waiting on router (text: the key), or
 * keep them (stored in held, identity and id) when silent.  Returns how
 * many it saw. */
typedef struct held { zmq_msg_t id; uint64_t req_id; char key[64]; } held;

static int serve(void *router, bool silent, held *keep, int *n_keep)
{
    int seen = 0;

    for (;;) {
        zmq_msg_t part[3];
        int n = 0, more = 1;
        PolicyRequest *req;

        zmq_msg_init(&part[0]);
        if (zmq_msg_recv(&part[0], router, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part[0]);
            return seen;
        }
        n = 1;
        more = zmq_msg_more(&part[0]);
        while (more) {
            assert_true(n < 3);
            zmq_msg_init(&part[n]);
            assert_true(zmq_msg_recv(&part[n], router, 0) >= 0);
            more = zmq_msg_more(&part[n]);
            n++;
        }
        assert_int_equal(n, 3);                         /* [identity][empty][request] */
        assert_int_equal(zmq_msg_size(&part[1]), 0);
        req = wire_unpack_policy_request(zmq_msg_data(&part[2]), zmq_msg_size(&part[2]), "test");
        assert_non_null(req);
        assert_int_equal(req->version, WIRE_VERSION);
        seen++;
        if (silent) {
            zmq_msg_init(&keep[*n_keep].id);
            zmq_msg_copy(&keep[*n_keep].id, &part[0]);
            keep[*n_keep].req_id = req->id;
            snprintf(keep[*n_keep].key, sizeof(keep[*n_keep].key), "%s", req->key);
            (*n_keep)++;
        } else {
            PolicyReply r = CORREIO__POLICY_REPLY__INIT;
            uint8_t *out;
            size_t len;

            r.version = WIRE_VERSION;
            r.id = req->id;
            r.action = CORREIO__POLICY_ACTION__POLICY_DEFER;
            r.text = req->key;
            out = wire_pack_policy_reply(&r, &len);
            assert_true(zmq_send(router, zmq_msg_data(&part[0]), zmq_msg_size(&part[0]),
                                 ZMQ_SNDMORE) >= 0);
            assert_true(zmq_send(router, "", 0, ZMQ_SNDMORE) >= 0);
            assert_true(zmq_send(router, out, len, 0) >= 0);
            xfree(&out);
        }
        wire_free_policy_request(&req);
        for (int i = 0; i < n; i++)
            zmq_msg_close(&part[i]);
    }
}

/* reply_late - answer a held request now. */
static void reply_late(void *router, held *h)
{
    PolicyReply r = CORREIO__POLICY_REPLY__INIT;
    uint8_t *out;
    size_t len;

    r.version = WIRE_VERSION;
    r.id = h->req_id;
    r.text = h->key;
    out = wire_pack_policy_reply(&r, &len);
    assert_true(zmq_send(router, zmq_msg_data(&h->id), zmq_msg_size(&h->id), ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(router, "", 0, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(router, out, len, 0) >= 0);
    xfree(&out);
    zmq_msg_close(&h->id);
}

static bool all_called(const answer *a, int n)
{
    for (int i = 0; i < n; i++)
        if (a[i].calls == 0)
            return false;
    return true;
}

static void ask_key(policy_client_t *c, const char *key, answer *a)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;

    req.kind = CORREIO__POLICY_KIND__POLICY_GREYLIST;
    req.key = (char *)key;
    assert_non_null(policy_client_ask(c, &req, on_reply, a));
    assert_int_equal(a->calls, 0);                      /* never from inside ask */
}

static void test_split_and_timeout(void **state)
{
    void *ctx = zmq_ctx_new();
    void *r1 = zmq_util_socket(ctx, ZMQ_ROUTER, 1000), *r2 = zmq_util_socket(ctx, ZMQ_ROUTER, 1000);
    const char *eps[] = { EP1, EP2, NULL };
    policy_client_t *c;
    char *err = NULL, keys[NKEYS][32];
    answer a[NKEYS];
    held keep[NKEYS];
    int n_keep = 0, seen1 = 0, seen2 = 0, owned1 = 0;
    int64_t deadline;
    size_t nfd;

    (void)state;
    memset(a, 0, sizeof(a));
    zmq_util_bind(r1, EP1);
    zmq_util_bind(r2, EP2);
    c = policy_client_new(ctx, NULL, eps, 300, &err);
    assert_non_null(c);
    policy_client_fds(c, &nfd);
    assert_int_equal(nfd, 1);            /* one epoll fd for both routers */
    assert_int_equal(policy_client_timeout_ms(c), -1);

    /* both answer: every key answered by its owner, keys on both */
    for (int i = 0; i < NKEYS; i++) {
        snprintf(keys[i], sizeof(keys[i]), "192.0.2.%d", i);
        owned1 += strcmp(policy_client_owner(c, keys[i]), EP1) == 0;
        ask_key(c, keys[i], &a[i]);
    }
    assert_true(owned1 > 0 && owned1 < NKEYS);
    deadline = time_mono_ms() + WAIT_MS;
    while (!all_called(a, NKEYS) && time_mono_ms() < deadline) {
        zmq_pollitem_t pi[2] = { { r1, 0, ZMQ_POLLIN, 0 }, { r2, 0, ZMQ_POLLIN, 0 } };
        zmq_poll(pi, 2, 10);
        seen1 += serve(r1, false, keep, &n_keep);
        seen2 += serve(r2, false, keep, &n_keep);
        policy_client_process(c);
    }
    assert_int_equal(seen1, owned1);
    assert_int_equal(seen2, NKEYS - owned1);
    for (int i = 0; i < NKEYS; i++) {
        assert_int_equal(a[i].calls, 1);
        assert_true(a[i].got_reply);
        assert_string_equal(a[i].text, keys[i]);
        assert_int_equal(a[i].action, CORREIO__POLICY_ACTION__POLICY_DEFER);
    }

    /* router 2 silent: its keys time out with NULL, router 1's answer */
    memset(a, 0, sizeof(a));
    for (int i = 0; i < NKEYS; i++)
        ask_key(c, keys[i], &a[i]);
    assert_true(policy_client_timeout_ms(c) > 0);
    deadline = time_mono_ms() + WAIT_MS;
    while (!all_called(a, NKEYS) && time_mono_ms() < deadline) {
        zmq_pollitem_t pi[2] = { { r1, 0, ZMQ_POLLIN, 0 }, { r2, 0, ZMQ_POLLIN, 0 } };
        zmq_poll(pi, 2, 10);
        serve(r1, false, keep, &n_keep);
        serve(r2, true, keep, &n_keep);
        policy_client_process(c);
    }
    assert_int_equal(n_keep, NKEYS - owned1);
    for (int i = 0; i < NKEYS; i++) {
        bool mine = strcmp(policy_client_owner(c, keys[i]), EP1) == 0;
        assert_int_equal(a[i].calls, 1);
        assert_int_equal(a[i].got_reply, mine);
    }
    assert_int_equal(policy_client_timeout_ms(c), -1);

    /* the late replies are dropped: no second callback */
    for (int i = 0; i < n_keep; i++)
        reply_late(r2, &keep[i]);
    deadline = time_mono_ms() + 200;
    while (time_mono_ms() < deadline) {
        zmq_poll(NULL, 0, 10);
        policy_client_process(c);
    }
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(a[i].calls, 1);

    policy_client_free(&c);
    assert_null(c);
    zmq_close(r1);
    zmq_close(r2);
    zmq_ctx_term(ctx);
}

/* test_failover - a key whose owner is not connected goes, after the
 * failover delay, to the next router of its ranking, which answers. */
static void test_failover(void **state)
{
    void *ctx = zmq_ctx_new();
    void *r1 = zmq_util_socket(ctx, ZMQ_ROUTER, 1000);
    const char *dead = "ipc:///nonexistent/policy-test-dead";
    const char *eps[] = { EP1, dead, NULL };
    policy_client_t *c;
    char *err = NULL, key[32];
    answer a;
    held keep[1];
    int n_keep = 0, i;
    int64_t start, deadline;

    (void)state;
    memset(&a, 0, sizeof(a));
    zmq_util_bind(r1, EP1);
    c = policy_client_new(ctx, NULL, eps, 4000, &err);
    assert_non_null(c);
    for (i = 0; i < 1000; i++) {                /* a key the dead router owns */
        snprintf(key, sizeof(key), "198.51.100.%d", i);
        if (strcmp(policy_client_owner(c, key), dead) == 0)
            break;
    }
    assert_true(i < 1000);
    start = time_mono_ms();
    ask_key(c, key, &a);
    deadline = start + WAIT_MS;
    while (a.calls == 0 && time_mono_ms() < deadline) {
        zmq_pollitem_t pi[1] = { { r1, 0, ZMQ_POLLIN, 0 } };
        zmq_poll(pi, 1, 10);
        serve(r1, false, keep, &n_keep);
        policy_client_process(c);
    }
    assert_int_equal(a.calls, 1);
    assert_true(a.got_reply);                   /* answered, not timed out */
    assert_string_equal(a.text, key);
    assert_true(time_mono_ms() - start >= 900); /* only after the failover delay */
    assert_true(time_mono_ms() - start < 4000);
    policy_client_free(&c);
    zmq_close(r1);
    zmq_ctx_term(ctx);
}

static void test_abandon_and_no_router(void **state)
{
    void *ctx = zmq_ctx_new();
    const char *eps[] = { "ipc:///nonexistent/policy-test-nobody", NULL };
    policy_client_t *c;
    policy_call_t *call;
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    answer a = { 0 }, b = { 0 };
    char *err = NULL;
    int64_t t0;

    (void)state;
    c = policy_client_new(ctx, NULL, eps, 100, &err);
    assert_non_null(c);
    req.kind = CORREIO__POLICY_KIND__POLICY_CONNECT;
    req.key = "192.0.2.1";
    t0 = time_mono_ms();
    call = policy_client_ask(c, &req, on_reply, &a);   /* nothing connected: kept, tried again */
    assert_non_null(call);
    assert_int_equal(a.calls, 0);
    assert_true(policy_client_timeout_ms(c) <= 20);
    while (a.calls == 0 && time_mono_ms() < t0 + WAIT_MS) {
        zmq_poll(NULL, 0, (long)policy_client_timeout_ms(c));
        policy_client_process(c);
    }
    assert_int_equal(a.calls, 1);
    assert_false(a.got_reply);
    assert_true(time_mono_ms() - t0 >= 100);           /* failed at its timeout */

    call = policy_client_ask(c, &req, on_reply, &b);
    policy_call_abandon(&call);
    assert_null(call);
    policy_call_abandon(&call);                         /* NULL is fine */
    policy_client_process(c);
    assert_int_equal(b.calls, 0);
    assert_int_equal(policy_client_timeout_ms(c), -1);

    req.no_reply = true;                                /* fire and forget: no handle */
    assert_null(policy_client_ask(c, &req, on_reply, &b));
    policy_client_process(c);
    assert_int_equal(b.calls, 0);

    policy_client_free(&c);
    zmq_ctx_term(ctx);
}

/* a router that binds after the request was made still gets it */
static void test_router_late(void **state)
{
    void *ctx = zmq_ctx_new();
    char ep[128], *err = NULL;
    const char *eps[] = { ep, NULL };
    policy_client_t *c;
    void *router;
    answer a = { 0 };
    held keep[1];
    int n_keep = 0;
    int64_t deadline;

    (void)state;
    snprintf(ep, sizeof(ep), "ipc:///tmp/policy-client-test-%d", (int)getpid());
    c = policy_client_new(ctx, NULL, eps, WAIT_MS, &err);
    assert_non_null(c);
    ask_key(c, "late-key", &a);
    policy_client_process(c);
    router = zmq_util_socket(ctx, ZMQ_ROUTER, 100);
    zmq_util_bind(router, ep);
    deadline = time_mono_ms() + WAIT_MS;
    while (a.calls == 0 && time_mono_ms() < deadline) {
        zmq_poll(NULL, 0, 10);
        serve(router, false, keep, &n_keep);
        policy_client_process(c);
    }
    assert_int_equal(a.calls, 1);
    assert_true(a.got_reply);
    assert_string_equal(a.text, "late-key");
    policy_client_free(&c);
    zmq_close(router);
    unlink(ep + strlen("ipc://"));
    zmq_ctx_term(ctx);
}

static void test_bad_endpoint(void **state)
{
    void *ctx = zmq_ctx_new();
    const char *bad[] = { "tcp://*:7000", NULL };
    const char *none[] = { NULL };
    char *err = NULL;

    (void)state;
    assert_null(policy_client_new(ctx, NULL, bad, 100, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "wildcard"));
    xfree(&err);
    assert_null(policy_client_new(ctx, NULL, none, 100, &err));
    assert_non_null(err);
    xfree(&err);
    zmq_ctx_term(ctx);
}

static void test_rendezvous(void **state)
{
    const char *three[] = { "tcp://192.0.2.1:7100", "tcp://192.0.2.2:7100", "tcp://192.0.2.3:7100" };
    const char *two[] = { three[0], three[2] };
    int per[3] = { 0 }, moved = 0;

    (void)state;
    assert_int_equal(policy_rendezvous(three, 1, "x"), 0);
    for (int i = 0; i < 3000; i++) {
        char key[32];
        size_t o3, o2;

        snprintf(key, sizeof(key), "key-%d", i);
        o3 = policy_rendezvous(three, 3, key);
        assert_int_equal(o3, policy_rendezvous(three, 3, key));     /* stable */
        per[o3]++;
        o2 = policy_rendezvous(two, 2, key);
        if (o3 == 1) {
            moved++;                    /* the removed node's keys go somewhere */
        } else {
            assert_string_equal(two[o2], three[o3]);   /* the others stay put */
        }
    }
    for (int i = 0; i < 3; i++)         /* about a third each */
        assert_true(per[i] > 800 && per[i] < 1200);
    assert_int_equal(moved, per[1]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_split_and_timeout),
        cmocka_unit_test(test_failover),
        cmocka_unit_test(test_abandon_and_no_router),
        cmocka_unit_test(test_router_late),
        cmocka_unit_test(test_bad_endpoint),
        cmocka_unit_test(test_rendezvous),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
