/* wire_test.c - protobuf encoding and strict decoding; the admin socket
 * round trip over inproc://. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "admin.h"
#include "qid.h"
#include "wire.h"
#include "zmq_util.h"

static void fill_envelope(Envelope *e, Recipient *r, Recipient **rp, char *qid)
{
    correio__envelope__init(e);
    correio__recipient__init(r);
    qid_next(qid);
    e->version = WIRE_VERSION;
    e->queue_id = qid;
    e->reverse_path = "sender@example.com";
    r->address = "rcpt@example.net";
    rp[0] = r;
    e->n_rcpt = 1;
    e->rcpt = rp;
    e->body.data = (uint8_t *)"Subject: x\r\n\r\nbody\r\n";
    e->body.len = strlen((char *)e->body.data);
}

static void test_envelope_roundtrip(void **state)
{
    Envelope e;
    Recipient r, *rp[1];
    char qid[QID_LEN + 1];
    uint8_t *data;
    size_t len;
    Envelope *d;

    (void)state;
    fill_envelope(&e, &r, rp, qid);
    data = wire_pack_envelope(&e, &len);
    d = wire_unpack_envelope(data, len, "test");
    assert_non_null(d);
    assert_string_equal(d->queue_id, qid);
    assert_string_equal(d->reverse_path, "sender@example.com");
    assert_int_equal(d->n_rcpt, 1);
    assert_string_equal(d->rcpt[0]->address, "rcpt@example.net");
    assert_int_equal(d->body.len, e.body.len);
    assert_memory_equal(d->body.data, e.body.data, e.body.len);
    wire_free_envelope(&d);
    assert_null(d);
    free(data);
}

static void test_envelope_rejects(void **state)
{
    static const char garbage[] = "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
    Envelope e;
    Recipient r, *rp[1];
    char qid[QID_LEN + 1];
    uint8_t *data;
    size_t len;

    (void)state;
    assert_null(wire_unpack_envelope(garbage, sizeof(garbage) - 1, "test"));
    assert_null(wire_unpack_envelope("", 0, "test"));      /* version 0 */
    assert_null(wire_unpack_envelope(NULL, 5, "test"));

    /* wrong version */
    fill_envelope(&e, &r, rp, qid);
    e.version = WIRE_VERSION + 1;
    data = wire_pack_envelope(&e, &len);
    assert_null(wire_unpack_envelope(data, len, "test"));
    free(data);
    /* bad queue id */
    fill_envelope(&e, &r, rp, qid);
    e.queue_id = "not-a-qid";
    data = wire_pack_envelope(&e, &len);
    assert_null(wire_unpack_envelope(data, len, "test"));
    free(data);
    /* no recipients */
    fill_envelope(&e, &r, rp, qid);
    e.n_rcpt = 0;
    data = wire_pack_envelope(&e, &len);
    assert_null(wire_unpack_envelope(data, len, "test"));
    free(data);
    /* truncated frame */
    fill_envelope(&e, &r, rp, qid);
    data = wire_pack_envelope(&e, &len);
    assert_null(wire_unpack_envelope(data, len - 3, "test"));
    free(data);
}

static void test_event(void **state)
{
    Event ev = CORREIO__EVENT__INIT;
    char qid[QID_LEN + 1];
    uint8_t *data;
    size_t len;
    Event *d;

    (void)state;
    qid_next(qid);
    ev.version = WIRE_VERSION;
    ev.queue_id = qid;
    ev.kind = CORREIO__EVENT_KIND__EVENT_OWNED;
    ev.stage = "delivery";
    data = wire_pack_event(&ev, &len);
    d = wire_unpack_event(data, len, "test");
    assert_non_null(d);
    assert_int_equal(d->kind, CORREIO__EVENT_KIND__EVENT_OWNED);
    assert_string_equal(d->stage, "delivery");
    wire_free_event(&d);
    free(data);

    ev.queue_id = "";
    data = wire_pack_event(&ev, &len);
    assert_null(wire_unpack_event(data, len, "test"));
    free(data);
    ev.queue_id = qid;
    ev.version = 0;
    data = wire_pack_event(&ev, &len);
    assert_null(wire_unpack_event(data, len, "test"));
    free(data);
}

/* ------------------------------------------------------------ admin */

static void handler(void *ctx, const AdminRequest *req, AdminReply *reply)
{
    (void)ctx;
    if (strcmp(req->command, "queue-list") == 0) {
        QueueEntry *e = admin_reply_add_entry(reply, "0123456789ABCDEFG", "deferred", "a@b");
        admin_entry_add_rcpt(e, "c@d", CORREIO__RCPT_STATE__RCPT_DEFERRED, "451 later");
        admin_entry_add_rcpt(e, "e@f", CORREIO__RCPT_STATE__RCPT_PENDING, NULL);
        admin_entry_set_reason(e, "connection refused");
        admin_reply_text(reply, 0, "%zu args", req->n_args);
    }
}

struct server { void *zctx; int count; };

static void *serve(void *arg)
{
    struct server *s = arg;
    void *rep = zmq_util_socket(s->zctx, ZMQ_REP, 10);

    zmq_util_bind(rep, "inproc://admin-test");
    for (int i = 0; i < s->count; i++) {
        zmq_pollitem_t it = {rep, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 5000);
        admin_serve(rep, "tester", handler, NULL);
    }
    zmq_close(rep);
    return NULL;
}

static void test_admin(void **state)
{
    struct server s;
    pthread_t t;
    const char *args[] = {"x", "y", NULL};
    char *err = NULL;
    AdminReply *r;

    (void)state;
    s.zctx = zmq_ctx_new();
    s.count = 3;
    pthread_create(&t, NULL, serve, &s);

    /* inproc needs the bind first: retry until it is there */
    for (int i = 0; i < 100; i++) {
        r = admin_call(s.zctx, "inproc://admin-test", "ping", NULL, 2000, &err);
        if (r || strstr(err, "connect") == NULL)
            break;
        free(err);
        err = NULL;
        usleep(10000);
    }
    if (r == NULL)
        fail_msg("ping: %s", err);
    assert_int_equal(r->status, 0);
    assert_non_null(strstr(r->text, "tester "));
    assert_non_null(strstr(r->text, " pid="));
    wire_free_admin_reply(&r);

    r = admin_call(s.zctx, "inproc://admin-test", "queue-list", args, 2000, &err);
    assert_non_null(r);
    assert_int_equal(r->status, 0);
    assert_string_equal(r->text, "2 args");
    assert_int_equal(r->n_entries, 1);
    assert_string_equal(r->entries[0]->queue_id, "0123456789ABCDEFG");
    assert_string_equal(r->entries[0]->reason, "connection refused");
    assert_int_equal(r->entries[0]->n_rcpt, 2);
    assert_string_equal(r->entries[0]->rcpt[0]->status_text, "451 later");
    wire_free_admin_reply(&r);

    r = admin_call(s.zctx, "inproc://admin-test", "frobnicate", NULL, 2000, &err);
    assert_non_null(r);
    assert_int_equal(r->status, 2);
    assert_string_equal(r->text, "unknown command");
    wire_free_admin_reply(&r);
    pthread_join(t, NULL);

    /* nobody answers: timeout */
    {
        void *rep = zmq_util_socket(s.zctx, ZMQ_REP, 10);
        zmq_util_bind(rep, "inproc://admin-silent");
        r = admin_call(s.zctx, "inproc://admin-silent", "ping", NULL, 100, &err);
        assert_null(r);
        assert_non_null(err);
        assert_non_null(strstr(err, "no answer from inproc://admin-silent within 100 ms"));
        free(err);
        zmq_close(rep);
    }
    zmq_ctx_term(s.zctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_envelope_roundtrip),
        cmocka_unit_test(test_envelope_rejects),
        cmocka_unit_test(test_event),
        cmocka_unit_test(test_admin),
    };
    qid_init("wire-test");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
