/* curve_test.c - lib/curve.c: where an endpoint leads, the Curve / plain
 * / refused decision table, key files (parse, write, modes, --force),
 * the startup check that names the parameter, which stage listens on an
 * endpoint, and the ZAP handler over real tcp sockets on 127.0.0.1: an
 * authorised client gets through, one with a foreign key does not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "curve.h"
#include "fsutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define WAIT_MS     5000
#define ABSENT_MS   700            /* how long "nothing arrives" is watched */

static char *tmpdir(void)
{
    char *d = xstrdup("/tmp/curve-test-XXXXXX");

    assert_non_null(mkdtemp(d));
    return d;
}

static void rm_rf(const char *dir)
{
    char *cmd = xasprintf("rm -rf '%s'", dir);

    assert_int_equal(system(cmd), 0);
    free(cmd);
}

/* load - DIR/correio.conf with text, loaded. */
static config_t *load(const char *dir, const char *text)
{
    char *path = xasprintf("%s/correio.conf", dir), *err = NULL;
    FILE *f = fopen(path, "w");
    config_t *cfg;

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    cfg = config_load(dir, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err);
    free(path);
    return cfg;
}

static void test_endpoint_class(void **state)
{
    static const struct { const char *ep; curve_ep_class cls; } t[] = {
        {"ipc:///run/correio/classifier", CURVE_EP_LOCAL},
        {"inproc://x", CURVE_EP_LOCAL},
        {"tcp://127.0.0.1:5555", CURVE_EP_LOOPBACK},
        {"tcp://127.9.8.7:1", CURVE_EP_LOOPBACK},
        {"tcp://localhost:5555", CURVE_EP_LOOPBACK},
        {"tcp://lo:5555", CURVE_EP_LOOPBACK},
        {"tcp://[::1]:5555", CURVE_EP_LOOPBACK},
        {"tcp://[::ffff:127.0.0.1]:5555", CURVE_EP_LOOPBACK},
        {"tcp://10.0.0.1:5555;127.0.0.1:5555", CURVE_EP_LOOPBACK},
        {"tcp://128.0.0.1:5555", CURVE_EP_REMOTE},
        {"tcp://10.1.2.3:5555", CURVE_EP_REMOTE},
        {"tcp://*:5555", CURVE_EP_REMOTE},
        {"tcp://0.0.0.0:5555", CURVE_EP_REMOTE},
        {"tcp://[2001:db8::1]:5555", CURVE_EP_REMOTE},
        {"tcp://classifier:5555", CURVE_EP_REMOTE},
        {"tcp://eth0:5555", CURVE_EP_REMOTE},
        {"tcp://127.0.0.1.evil.example:5555", CURVE_EP_REMOTE},
        {"tcp://", CURVE_EP_REMOTE},
        {"tcp://:5555", CURVE_EP_REMOTE},
        {"pgm://eth0;239.1.1.1:5555", CURVE_EP_REMOTE},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (curve_endpoint_class(t[i].ep) != t[i].cls)
            fail_msg("%s: class %d, expected %d", t[i].ep, curve_endpoint_class(t[i].ep),
                     t[i].cls);
}

static void test_decide(void **state)
{
    enum { L = CURVE_EP_LOCAL, LB = CURVE_EP_LOOPBACK, R = CURVE_EP_REMOTE };
    enum { P = CURVE_PLAIN, ON = CURVE_ON, X = CURVE_REFUSED };
    static const struct { curve_mode m; int cls; bool keys, allow; int d; } t[] = {
        {CURVE_MODE_AUTO, L, false, false, P},  {CURVE_MODE_AUTO, L, true, false, P},
        {CURVE_MODE_AUTO, LB, false, false, P}, {CURVE_MODE_AUTO, LB, true, false, P},
        {CURVE_MODE_AUTO, R, true, false, ON},  {CURVE_MODE_AUTO, R, true, true, ON},
        {CURVE_MODE_AUTO, R, false, false, X},  {CURVE_MODE_AUTO, R, false, true, P},
        {CURVE_MODE_YES, L, false, false, P},   {CURVE_MODE_YES, LB, true, false, ON},
        {CURVE_MODE_YES, LB, false, false, X},  {CURVE_MODE_YES, R, true, false, ON},
        {CURVE_MODE_YES, R, false, true, X},
        {CURVE_MODE_NO, L, true, false, P},     {CURVE_MODE_NO, LB, true, false, P},
        {CURVE_MODE_NO, R, true, false, X},     {CURVE_MODE_NO, R, true, true, P},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if ((int)curve_decide(t[i].m, (curve_ep_class)t[i].cls, t[i].keys, t[i].allow) != t[i].d)
            fail_msg("row %zu: got %d expected %d", i,
                     curve_decide(t[i].m, (curve_ep_class)t[i].cls, t[i].keys, t[i].allow),
                     t[i].d);
    assert_int_equal(curve_mode_parse("auto"), CURVE_MODE_AUTO);
    assert_int_equal(curve_mode_parse("yes"), CURVE_MODE_YES);
    assert_int_equal(curve_mode_parse("no"), CURVE_MODE_NO);
    assert_int_equal(curve_mode_parse("maybe"), -1);
}

static void test_key_parse(void **state)
{
    curve_keypair kp, got;
    char *text, *err = NULL;

    (void)state;
    assert_int_equal(curve_key_generate(&kp), 0);
    assert_true(curve_key_valid(kp.pub, strlen(kp.pub)));

    text = xasprintf("# a comment\n\npublic = %s\r\nsecret=%s\n", kp.pub, kp.sec);
    assert_int_equal(curve_key_parse(text, strlen(text), true, &got, &err), 0);
    assert_string_equal(got.pub, kp.pub);
    assert_string_equal(got.sec, kp.sec);
    /* a public file keeps no secret */
    assert_int_equal(curve_key_parse(text, strlen(text), false, &got, &err), 0);
    assert_string_equal(got.sec, "");
    free(text);

    text = xasprintf("secret=%s", kp.sec);          /* public derived */
    assert_int_equal(curve_key_parse(text, strlen(text), true, &got, &err), 0);
    assert_string_equal(got.pub, kp.pub);
    free(text);

    text = xasprintf("%s\n", kp.pub);               /* a bare key is the public one */
    assert_int_equal(curve_key_parse(text, strlen(text), false, &got, &err), 0);
    assert_string_equal(got.pub, kp.pub);
    assert_int_equal(curve_key_parse(text, strlen(text), true, &got, &err), -1);
    assert_non_null(strstr(err, "no secret"));
    xfree(&err);
    free(text);

    {
        curve_keypair other;
        assert_int_equal(curve_key_generate(&other), 0);
        text = xasprintf("public=%s\nsecret=%s\n", other.pub, kp.sec);
        assert_int_equal(curve_key_parse(text, strlen(text), true, &got, &err), -1);
        assert_non_null(strstr(err, "does not belong"));
        xfree(&err);
        free(text);
    }

    static const char *const bad[] = {
        "public=short\n", "public=", "colour=blue\n", "just some words here\n",
        "secret=\"not a key at all, forty chars long...\"\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (curve_key_parse(bad[i], strlen(bad[i]), false, &got, &err) != -1)
            fail_msg("accepted %s", bad[i]);
        xfree(&err);
    }
    assert_int_equal(curve_key_parse("", 0, false, &got, &err), -1);
    assert_non_null(strstr(err, "no public"));
    xfree(&err);
    /* 41 characters: not a key */
    text = xasprintf("public=%sA\n", kp.pub);
    assert_int_equal(curve_key_parse(text, strlen(text), false, &got, &err), -1);
    xfree(&err);
    free(text);
}

static void test_key_files(void **state)
{
    char *dir = tmpdir(), *kdir = xasprintf("%s/keys", dir), *err = NULL;
    char *kpath = xasprintf("%s/router.key", kdir), *ppath = xasprintf("%s/router.pub", kdir);
    curve_keypair kp, kp2, got;
    struct stat st;

    (void)state;
    assert_int_equal(curve_key_generate(&kp), 0);
    assert_int_equal(curve_key_save(kdir, "router", &kp, false, &err), 0);
    assert_int_equal(stat(kpath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(ppath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);
    assert_int_equal(curve_key_load(kpath, true, &got, &err), 0);
    assert_string_equal(got.pub, kp.pub);
    assert_string_equal(got.sec, kp.sec);
    assert_int_equal(curve_key_load(ppath, false, &got, &err), 0);
    assert_string_equal(got.pub, kp.pub);
    assert_int_equal(curve_key_load(ppath, true, &got, &err), -1);  /* no secret there */
    xfree(&err);

    /* no overwrite without force */
    assert_int_equal(curve_key_generate(&kp2), 0);
    assert_int_equal(curve_key_save(kdir, "router", &kp2, false, &err), 1);
    assert_int_equal(curve_key_load(kpath, true, &got, &err), 0);
    assert_string_equal(got.pub, kp.pub);
    assert_int_equal(curve_key_save(kdir, "router", &kp2, true, &err), 0);
    assert_int_equal(curve_key_load(kpath, true, &got, &err), 0);
    assert_string_equal(got.pub, kp2.pub);

    /* a secret others can read is refused */
    assert_int_equal(chmod(kpath, 0644), 0);
    assert_int_equal(curve_key_load(kpath, true, &got, &err), -1);
    assert_non_null(strstr(err, "chmod 600"));
    xfree(&err);
    assert_int_equal(curve_key_load("/nonexistent/x.key", true, &got, &err), -1);
    assert_non_null(strstr(err, "/nonexistent/x.key"));
    xfree(&err);

    rm_rf(dir);
    free(dir);
    free(kdir);
    free(kpath);
    free(ppath);
}

/* init_error - curve_init of a stage (with a context) on conf: the error,
 * or NULL when it starts. */
static char *init_error(const char *dir, const char *conf, const char *self)
{
    config_t *cfg = load(dir, conf);
    void *zctx = zmq_ctx_new();
    char *err = NULL;

    if (curve_init(zctx, cfg, self, &err) == 0)
        err = NULL;
    zmq_ctx_term(zctx);
    curve_finish();
    config_free(&cfg);
    return err;
}

static void test_startup_check(void **state)
{
    char *dir = tmpdir(), *err, *conf, *kdir = xasprintf("%s/keys", dir);
    curve_keypair kp;

    (void)state;
    /* defaults: ipc everywhere, nothing to check */
    assert_null(init_error(dir, "", "router"));
    assert_null(init_error(dir, "curve = yes\n", "router"));
    /* loopback tcp is plain in auto */
    assert_null(init_error(dir, "classifier_endpoint = tcp://127.0.0.1:5555\n", "router"));
    /* not loopback, no keys: the parameter is named */
    err = init_error(dir, "classifier_endpoint = tcp://10.1.2.3:5555\n", "router");
    assert_non_null(err);
    assert_non_null(strstr(err, "classifier_endpoint = tcp://10.1.2.3:5555"));
    assert_non_null(strstr(err, "curve_allow_plaintext"));
    assert_non_null(strstr(err, "correio keys generate"));
    xfree(&err);
    err = init_error(dir, "queue_admin_endpoints = ipc:///x, tcp://delivery:7025\n", "ingress");
    assert_non_null(err);
    assert_non_null(strstr(err, "queue_admin_endpoints = tcp://delivery:7025"));
    xfree(&err);
    assert_null(init_error(dir, "classifier_endpoint = tcp://10.1.2.3:5555\n"
                                "curve_allow_plaintext = yes\n", "router"));
    /* curve = yes on loopback needs the keys */
    err = init_error(dir, "curve = yes\nrouter_endpoint = tcp://127.0.0.1:5555\n", "router");
    assert_non_null(err);
    assert_non_null(strstr(err, "router_endpoint"));
    assert_non_null(strstr(err, "curve = yes"));
    xfree(&err);
    /* with the key pair, both start (and the ZAP thread ends with the context) */
    assert_int_equal(curve_key_generate(&kp), 0);
    assert_int_equal(curve_key_save(kdir, "router", &kp, false, &err), 0);
    assert_null(init_error(dir, "curve = yes\nrouter_endpoint = tcp://127.0.0.1:5555\n", "router"));
    assert_null(init_error(dir, "classifier_endpoint = tcp://10.1.2.3:5555\n", "router"));
    /* a broken key pair stops a stage */
    conf = xasprintf("%s/router.key", kdir);
    assert_int_equal(chmod(conf, 0604), 0);
    err = init_error(dir, "", "router");
    assert_non_null(err);
    assert_non_null(strstr(err, "router.key"));
    xfree(&err);
    free(conf);

    rm_rf(dir);
    free(dir);
    free(kdir);
}

static void test_peer_of(void **state)
{
    char *dir = tmpdir(), *err = NULL;
    config_t *cfg = load(dir, "router_endpoint = tcp://router:6001\n"
                              "router_admin_endpoint = tcp://router:6101\n"
                              "queue_admin_endpoints = tcp://delivery:7025\n"
                              "policy_endpoints = tcp://router:6201\n"
                              "classifier_endpoint = tcp://classifier:5000\n"
                              "delivery_endpoint = tcp://delivery:5000\n"
                              "curve_allow_plaintext = yes\n");

    (void)state;
    assert_int_equal(curve_init(NULL, cfg, "ctl", &err), 0);
    assert_string_equal(curve_peer_of("tcp://router:6001"), "router");
    assert_string_equal(curve_peer_of("tcp://router:6101"), "router");
    assert_string_equal(curve_peer_of("tcp://10.0.0.9:7025"), "delivery");
    assert_string_equal(curve_peer_of("tcp://10.0.0.9:6201"), "router");
    assert_string_equal(curve_peer_of("ipc:///run/correio/ingress-events"), "ingress");
    assert_null(curve_peer_of("tcp://10.0.0.9:5000"));      /* two kinds on 5000 */
    assert_null(curve_peer_of("tcp://10.0.0.9:9999"));
    assert_null(curve_peer_of("tcp://[::1]"));
    curve_finish();
    config_free(&cfg);
    rm_rf(dir);
    free(dir);
}

/* arrives - does a frame come to sock within ms? */
static bool arrives(void *sock, int ms, const char *expect)
{
    zmq_pollitem_t pi = {sock, 0, ZMQ_POLLIN, 0};
    char buf[64];
    int n;

    if (zmq_poll(&pi, 1, ms) != 1)
        return false;
    n = zmq_recv(sock, buf, sizeof(buf) - 1, 0);
    assert_true(n >= 0);
    buf[n] = 0;
    assert_string_equal(buf, expect);
    return true;
}

static void test_zap(void **state)
{
    char *dir = tmpdir(), *kdir = xasprintf("%s/keys", dir), *err = NULL, *conf;
    char ep[128];
    size_t eplen = sizeof(ep);
    curve_keypair kp, stranger, server;
    config_t *cfg;
    void *zctx, *pull, *good, *bad, *plain;

    (void)state;
    for (const char *const *n = curve_key_names; *n; n++) {
        assert_int_equal(curve_key_generate(&kp), 0);
        assert_int_equal(curve_key_save(kdir, *n, &kp, false, &err), 0);
    }
    conf = xasprintf("curve = yes\ncurve_keys_directory = %s\n", kdir);
    cfg = load(dir, conf);
    free(conf);
    zctx = zmq_ctx_new();
    assert_int_equal(curve_init(zctx, cfg, "classifier", &err), 0);

    pull = zmq_util_socket(zctx, ZMQ_PULL, 0);
    zmq_util_bind(pull, "tcp://127.0.0.1:*");
    assert_int_equal(zmq_getsockopt(pull, ZMQ_LAST_ENDPOINT, ep, &eplen), 0);
    {
        int mech = 0;
        size_t ml = sizeof(mech);
        assert_int_equal(zmq_getsockopt(pull, ZMQ_MECHANISM, &mech, &ml), 0);
        assert_int_equal(mech, ZMQ_CURVE);
    }

    /* a client whose key is in the keys directory: through */
    good = zmq_util_socket(zctx, ZMQ_PUSH, 0);
    assert_int_equal(zmq_util_connect_to(good, ep, "classifier"), 0);
    assert_int_equal(zmq_send(good, "hello", 5, 0), 5);
    assert_true(arrives(pull, WAIT_MS, "hello"));

    /* a foreign key that knows the server key: nothing arrives */
    assert_int_equal(curve_key_generate(&stranger), 0);
    assert_int_equal(curve_key_load(conf = xasprintf("%s/classifier.pub", kdir), false,
                                    &server, &err), 0);
    free(conf);
    bad = zmq_util_socket(zctx, ZMQ_PUSH, 0);
    assert_int_equal(zmq_setsockopt(bad, ZMQ_CURVE_SERVERKEY, server.pub, 41), 0);
    assert_int_equal(zmq_setsockopt(bad, ZMQ_CURVE_PUBLICKEY, stranger.pub, 41), 0);
    assert_int_equal(zmq_setsockopt(bad, ZMQ_CURVE_SECRETKEY, stranger.sec, 41), 0);
    assert_int_equal(zmq_connect(bad, ep), 0);
    zmq_send(bad, "intruder", 8, ZMQ_DONTWAIT);
    /* a plain client: nothing either */
    plain = zmq_util_socket(zctx, ZMQ_PUSH, 0);
    assert_int_equal(zmq_connect(plain, ep), 0);
    zmq_send(plain, "plain", 5, ZMQ_DONTWAIT);
    assert_false(arrives(pull, ABSENT_MS, ""));

    /* ... and once the stranger's key is authorised (a new .pub), it gets in */
    {
        curve_keypair pub_only = stranger;
        char *p = xasprintf("%s/stranger.pub", kdir), *t = xasprintf("public=%s\n", pub_only.pub);
        int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);

        assert_true(fd >= 0);
        assert_int_equal(fs_write_all(fd, t, strlen(t)), 0);
        close(fd);
        free(p);
        free(t);
        zmq_close(bad);
        bad = zmq_util_socket(zctx, ZMQ_PUSH, 0);
        assert_int_equal(zmq_setsockopt(bad, ZMQ_CURVE_SERVERKEY, server.pub, 41), 0);
        assert_int_equal(zmq_setsockopt(bad, ZMQ_CURVE_PUBLICKEY, stranger.pub, 41), 0);
        assert_int_equal(zmq_setsockopt(bad, ZMQ_CURVE_SECRETKEY, stranger.sec, 41), 0);
        assert_int_equal(zmq_connect(bad, ep), 0);
        assert_int_equal(zmq_send(bad, "admitted", 8, 0), 8);
        assert_true(arrives(pull, WAIT_MS, "admitted"));
    }

    /* a connect to a peer whose .pub is missing fails with the file name */
    {
        void *s = zmq_util_socket(zctx, ZMQ_PUSH, 0);
        char *p = xasprintf("%s/router.pub", kdir);

        assert_int_equal(unlink(p), 0);
        assert_int_equal(curve_client_setup(s, "tcp://127.0.0.1:1", "router", &err), -1);
        assert_non_null(strstr(err, "router.pub"));
        xfree(&err);
        zmq_close(s);
        free(p);
    }

    zmq_close(pull);
    zmq_close(good);
    zmq_close(bad);
    zmq_close(plain);
    zmq_ctx_term(zctx);
    curve_finish();
    config_free(&cfg);
    rm_rf(dir);
    free(dir);
    free(kdir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_class),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_key_parse),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_startup_check),
        cmocka_unit_test(test_peer_of),
        cmocka_unit_test(test_zap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
