/* submit_client_test.c - the submit socket's client side against a
 * ROUTER in the same process: the frames it sends ([empty][request]),
 * the reply it matches back, the bad replies it skips, and a send with
 * no ingress connected that fails at once instead of queueing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <zmq.h>

#include "submit_client.h"
#include "xalloc.h"
#include "zmq_util.h"

#define ENDPOINT "inproc://submit-test"
#define WAIT_MS  5000

/* recv_parts - one whole message from sock (waiting up to WAIT_MS):
 * its parts, malloc'ed, in parts[] (at most max); returns the count. */
static size_t recv_parts(void *sock, zmq_msg_t *parts, size_t max)
{
    zmq_pollitem_t pi = { sock, 0, ZMQ_POLLIN, 0 };
    size_t n = 0;
    int more = 1;

    assert_int_equal(zmq_poll(&pi, 1, WAIT_MS), 1);
    while (more) {
        assert_true(n < max);
        zmq_msg_init(&parts[n]);
        assert_true(zmq_msg_recv(&parts[n], sock, 0) >= 0);
        more = zmq_msg_more(&parts[n]);
        n++;
    }
    return n;
}

/* wait_reply - poll the client's socket until a reply (or give up). */
static SubmitReply *wait_reply(submit_client_t *c)
{
    zmq_pollitem_t pi = { submit_client_socket(c), 0, ZMQ_POLLIN, 0 };
    SubmitReply *r;

    for (int i = 0; i < 50; i++) {
        if ((r = submit_client_receive(c)) != NULL)
            return r;
        zmq_poll(&pi, 1, WAIT_MS / 50);
    }
    return submit_client_receive(c);
}

static void send_reply(void *router, zmq_msg_t *identity, const char *ref, int status,
                       bool with_delimiter)
{
    SubmitReply r = CORREIO__SUBMIT_REPLY__INIT;
    uint8_t *packed;
    size_t len;

    r.version = WIRE_VERSION;
    r.ref = (char *)ref;
    r.status = status;
    r.queue_id = "0000000000000ABCD";
    r.text = "250 2.0.0 Ok: queued as 0000000000000ABCD";
    packed = wire_pack_submit_reply(&r, &len);
    assert_true(zmq_send(router, zmq_msg_data(identity), zmq_msg_size(identity), ZMQ_SNDMORE) >= 0);
    if (with_delimiter)
        assert_true(zmq_send(router, "", 0, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(router, packed, len, 0) >= 0);
    xfree(&packed);
}

static void test_round_trip(void **state)
{
    void *ctx = zmq_ctx_new();
    void *router = zmq_util_socket(ctx, ZMQ_ROUTER, 100);
    submit_client_t *c;
    Envelope env = CORREIO__ENVELOPE__INIT;
    Recipient rcpt = CORREIO__RECIPIENT__INIT, *rp = &rcpt;
    zmq_msg_t parts[4];
    SubmitRequest *req;
    SubmitReply *reply;
    size_t n;

    (void)state;
    zmq_util_bind(router, ENDPOINT);
    c = submit_client_new(ctx, NULL, ENDPOINT, 100);
    rcpt.address = "sender@example.net";
    rcpt.notify = CORREIO__NOTIFY__NOTIFY_NEVER;
    env.version = WIRE_VERSION;
    env.reverse_path = "";
    env.n_rcpt = 1;
    env.rcpt = &rp;
    env.body.data = (uint8_t *)"Subject: x\r\n\r\nbody\r\n";
    env.body.len = strlen((const char *)env.body.data);

    /* inproc connects at once; allow a moment all the same */
    for (int i = 0; i < 100 && submit_client_send(c, "ref-1", &env) != 0; i++)
        zmq_poll(NULL, 0, 10);
    n = recv_parts(router, parts, 4);
    assert_int_equal(n, 3);                     /* [identity][empty][request] */
    assert_int_equal(zmq_msg_size(&parts[1]), 0);
    req = wire_unpack_submit_request(zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), "test");
    assert_non_null(req);
    assert_string_equal(req->ref, "ref-1");
    assert_int_equal(req->envelope->n_rcpt, 1);
    assert_string_equal(req->envelope->rcpt[0]->address, "sender@example.net");
    assert_int_equal(req->envelope->rcpt[0]->notify, CORREIO__NOTIFY__NOTIFY_NEVER);
    wire_free_submit_request(&req);

    assert_null(submit_client_receive(c));      /* nothing yet */
    /* a reply without the delimiter is skipped; the good one after it comes through */
    send_reply(router, &parts[0], "bad", 0, false);
    send_reply(router, &parts[0], "ref-1", 0, true);
    reply = wait_reply(c);
    assert_non_null(reply);
    assert_string_equal(reply->ref, "ref-1");
    assert_int_equal(reply->status, 0);
    assert_string_equal(reply->queue_id, "0000000000000ABCD");
    wire_free_submit_reply(&reply);
    assert_null(submit_client_receive(c));

    for (size_t i = 0; i < n; i++)
        zmq_msg_close(&parts[i]);
    submit_client_free(&c);
    assert_null(c);
    zmq_close(router);
    zmq_ctx_term(ctx);
}

static void test_no_ingress(void **state)
{
    void *ctx = zmq_ctx_new();
    submit_client_t *c = submit_client_new(ctx, NULL, "ipc:///nonexistent/correio-submit-test", 10);
    Envelope env = CORREIO__ENVELOPE__INIT;
    Recipient rcpt = CORREIO__RECIPIENT__INIT, *rp = &rcpt;

    (void)state;
    rcpt.address = "a@example.net";
    env.version = WIRE_VERSION;
    env.reverse_path = "";
    env.n_rcpt = 1;
    env.rcpt = &rp;
    assert_int_equal(submit_client_send(c, "r", &env), -1);
    assert_null(submit_client_receive(c));
    submit_client_free(&c);
    submit_client_free(&c);                     /* NULL is fine */
    zmq_ctx_term(ctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_no_ingress),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
