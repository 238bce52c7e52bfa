/* tls_test.c - TLS contexts and non-blocking connections: a server and a
 * client over a socketpair, driven by a poll loop; the protocol policy,
 * certificate checks and what a broken peer gets.
 *
 * The certificates are made here, at run time, with the OpenSSL API.
 * SIGPIPE keeps its default action: a write to a vanished peer that
 * raised it would kill the test.  No sleeps: every wait is a poll with a
 * deadline that fails the test, and every loop is bounded.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "tls.h"
#include "xalloc.h"

#define POLL_MS     5000        /* no progress for this long: the test fails */
#define MAX_ROUNDS  100000      /* bound on every drive loop */
#define BIG         (1024 * 1024)

static char tmpdir[] = "/tmp/tls_test.XXXXXX";
static char *cert_file;         /* self-signed, localhost and 127.0.0.1 */
static char *key_file;
static char *other_cert_file;   /* self-signed for otherhost, another key */
static char *other_key_file;
static char *locked_key_file;   /* key_file encrypted with a passphrase */
static char *missing_file;

/* ------------------------------------------------------------ certificates */

static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509_EXTENSION *ext;

    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* make_cert - a self-signed certificate for key, CN cn, SANs san. */
static X509 *make_cert(EVP_PKEY *key, const char *cn, const char *san, long serial)
{
    X509 *x = X509_new();
    X509_NAME *name;

    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x), -3600));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x), 86400));
    name = X509_get_subject_name(x);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                                (const unsigned char *)cn, -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x, name), 1);
    assert_int_equal(X509_set_pubkey(x, key), 1);
    add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(x, NID_subject_key_identifier, "hash");
    add_ext(x, NID_subject_alt_name, san);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    return x;
}

static char *tmp_path(const char *name)
{
    return xasprintf("%s/%s", tmpdir, name);
}

static void write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    assert_int_equal(PEM_write_X509(f, x), 1);
    assert_int_equal(fclose(f), 0);
}

static void write_key(const char *path, EVP_PKEY *key, const char *passphrase)
{
    FILE *f = fopen(path, "w");

    assert_non_null(f);
    if (passphrase != NULL)
        assert_int_equal(PEM_write_PrivateKey(f, key, EVP_aes_256_cbc(),
                                              (const unsigned char *)passphrase,
                                              (int)strlen(passphrase), NULL, NULL), 1);
    else
        assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    assert_int_equal(fclose(f), 0);
}

static int setup(void **state)
{
    EVP_PKEY *key, *other;
    X509 *x;

    (void)state;
    signal(SIGPIPE, SIG_DFL);
    if (mkdtemp(tmpdir) == NULL)
        return -1;
    cert_file = tmp_path("cert.pem");
    key_file = tmp_path("key.pem");
    other_cert_file = tmp_path("other-cert.pem");
    other_key_file = tmp_path("other-key.pem");
    locked_key_file = tmp_path("locked-key.pem");
    missing_file = tmp_path("missing.pem");

    key = EVP_EC_gen("P-256");
    other = EVP_EC_gen("P-256");
    if (key == NULL || other == NULL)
        return -1;
    x = make_cert(key, "localhost", "DNS:localhost,IP:127.0.0.1", 1);
    write_cert(cert_file, x);
    X509_free(x);
    write_key(key_file, key, NULL);
    write_key(locked_key_file, key, "secret");
    x = make_cert(other, "otherhost", "DNS:otherhost", 2);
    write_cert(other_cert_file, x);
    X509_free(x);
    write_key(other_key_file, other, NULL);
    EVP_PKEY_free(key);
    EVP_PKEY_free(other);
    return 0;
}

static int teardown(void **state)
{
    char **files[] = {&cert_file, &key_file, &other_cert_file, &other_key_file,
                      &locked_key_file, &missing_file};

    (void)state;
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        unlink(*files[i]);
        xfree(files[i]);
    }
    return rmdir(tmpdir);
}

/* ------------------------------------------------------------ the harness */

/* One end of a connection: a tls_conn, or (to play an old or odd client)
 * a raw OpenSSL client. */
typedef struct {
    tls_conn_t *c;
    SSL        *raw;
    int         fd;
    tls_status  st;
} end_t;

static void socket_pair(int fd[2])
{
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fd), 0);
}

static bool waiting(tls_status st)
{
    return st == TLS_WANT_READ || st == TLS_WANT_WRITE;
}

static short poll_events(tls_status st)
{
    return st == TLS_WANT_READ ? POLLIN : POLLOUT;
}

/* raw_handshake - one step of a raw OpenSSL client, in tls_status terms. */
static tls_status raw_handshake(SSL *ssl)
{
    int ret = SSL_do_handshake(ssl);

    if (ret == 1)
        return TLS_OK;
    switch (SSL_get_error(ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    default:
        ERR_clear_error();
        return TLS_FAILED;
    }
}

static tls_status end_step(end_t *e)
{
    return e->c != NULL ? tls_handshake(e->c) : raw_handshake(e->raw);
}

/* wait_for - poll the ends that wait; failing the test after POLL_MS of
 * silence means a hang is reported, not suffered. */
static void wait_for(end_t **ends, int n)
{
    struct pollfd pfd[2];
    int np = 0, r;

    for (int i = 0; i < n; i++)
        if (waiting(ends[i]->st)) {
            pfd[np].fd = ends[i]->fd;
            pfd[np].events = poll_events(ends[i]->st);
            pfd[np].revents = 0;
            np++;
        }
    assert_true(np > 0);
    do
        r = poll(pfd, (nfds_t)np, POLL_MS);
    while (r < 0 && errno == EINTR);
    if (r == 0)
        fail_msg("no progress in %d ms", POLL_MS);
    assert_true(r > 0);
}

/* handshake - drive n (1 or 2) ends until none waits, or until one fails:
 * the other may then wait for ever on a peer that is gone. */
static void handshake(end_t **ends, int n)
{
    for (int i = 0; i < n; i++)
        ends[i]->st = TLS_WANT_WRITE;
    for (int round = 0; round < MAX_ROUNDS; round++) {
        bool any_waiting = false;

        for (int i = 0; i < n; i++) {
            if (!waiting(ends[i]->st))
                continue;
            ends[i]->st = end_step(ends[i]);
            if (ends[i]->st == TLS_CLOSED || ends[i]->st == TLS_FAILED)
                return;
            any_waiting |= waiting(ends[i]->st);
        }
        if (!any_waiting)
            return;
        wait_for(ends, n);
    }
    fail_msg("handshake: no end after %d rounds", MAX_ROUNDS);
}

/* One direction's bytes for pump(): what an end sends and what it expects. */
typedef struct {
    const unsigned char *tx;
    size_t tx_len, tx_off;
    unsigned char *rx;
    size_t rx_len, rx_got;
    int partial;                /* writes that took less than offered */
} flow_t;

/* pump - both ends write their tx and read their rx at once until all is
 * through; a call that makes no progress turns into a poll. */
static void pump(end_t *a, end_t *b, flow_t *fa, flow_t *fb)
{
    end_t *ends[2] = {a, b};
    flow_t *flows[2] = {fa, fb};

    for (int round = 0; round < MAX_ROUNDS; round++) {
        bool progress = false, done = true;
        struct pollfd pfd[2];
        int np = 0, r;

        for (int i = 0; i < 2; i++) {
            end_t *e = ends[i];
            flow_t *f = flows[i];
            short events = 0;
            tls_status st;
            size_t n;

            if (f->tx_off < f->tx_len) {
                st = tls_write(e->c, f->tx + f->tx_off, f->tx_len - f->tx_off, &n);
                if (st == TLS_OK) {
                    assert_true(n > 0 && n <= f->tx_len - f->tx_off);
                    if (n < f->tx_len - f->tx_off)
                        f->partial++;
                    f->tx_off += n;
                    progress = true;
                } else if (waiting(st)) {
                    events |= poll_events(st);
                } else {
                    fail_msg("end %d: write: %s", i, tls_error(e->c));
                }
            }
            if (f->rx_got < f->rx_len) {
                st = tls_read(e->c, f->rx + f->rx_got, f->rx_len - f->rx_got, &n);
                if (st == TLS_OK) {
                    assert_true(n > 0 && n <= f->rx_len - f->rx_got);
                    f->rx_got += n;
                    progress = true;
                } else if (waiting(st)) {
                    events |= poll_events(st);
                } else {
                    fail_msg("end %d: read: %s", i, tls_error(e->c));
                }
            }
            if (f->tx_off < f->tx_len || f->rx_got < f->rx_len)
                done = false;
            if (events != 0) {
                pfd[np].fd = e->fd;
                pfd[np].events = events;
                pfd[np].revents = 0;
                np++;
            }
        }
        if (done)
            return;
        if (progress)
            continue;
        assert_true(np > 0);
        do
            r = poll(pfd, (nfds_t)np, POLL_MS);
        while (r < 0 && errno == EINTR);
        if (r == 0)
            fail_msg("pump: no progress in %d ms", POLL_MS);
        assert_true(r > 0);
    }
    fail_msg("pump: not through after %d rounds", MAX_ROUNDS);
}

/* read_to_close - read until the peer's close_notify; no data expected. */
static void read_to_close(end_t *e)
{
    unsigned char buf[64];
    size_t n;

    for (int round = 0; round < MAX_ROUNDS; round++) {
        e->st = tls_read(e->c, buf, sizeof(buf), &n);
        if (e->st == TLS_CLOSED)
            return;
        if (e->st == TLS_OK)
            fail_msg("read_to_close: %zu unexpected bytes", n);
        if (!waiting(e->st))
            fail_msg("read_to_close: %s", tls_error(e->c));
        wait_for(&e, 1);
    }
    fail_msg("read_to_close: no close after %d rounds", MAX_ROUNDS);
}

static tls_ctx_t *server_ctx(void)
{
    char *err = NULL;
    tls_ctx_t *ctx = tls_server_ctx_new(cert_file, key_file, &err);

    if (ctx == NULL)
        fail_msg("server context: %s", err);
    return ctx;
}

static tls_ctx_t *client_ctx(const char *ca_file)
{
    char *err = NULL;
    tls_ctx_t *ctx = tls_client_ctx_new(ca_file, &err);

    if (ctx == NULL)
        fail_msg("client context: %s", err);
    return ctx;
}

/* ------------------------------------------------------------------ tests */

static void fill(unsigned char *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)((i * 131 + seed + (i >> 12)) & 0xff);
}

static void test_handshake_and_data(void **state)
{
    tls_ctx_t *sctx = server_ctx(), *cctx = client_ctx(cert_file);
    static const char hello[] = "EHLO client.example\r\n";
    static const char reply[] = "250 server.example\r\n";
    unsigned char small_a[sizeof(reply)], small_b[sizeof(hello)];
    unsigned char *up, *down, *up_rx, *down_rx;
    end_t server = {0}, client = {0}, *ends[2] = {&server, &client};
    int fd[2];

    (void)state;
    socket_pair(fd);
    server.fd = fd[0];
    client.fd = fd[1];
    server.c = tls_conn_new(sctx, server.fd, NULL);
    client.c = tls_conn_new(cctx, client.fd, "localhost");
    /* the connections hold the contexts from here on */
    tls_ctx_free(&sctx);
    tls_ctx_free(&cctx);
    assert_null(sctx);
    tls_ctx_free(&sctx);

    handshake(ends, 2);
    assert_int_equal(server.st, TLS_OK);
    assert_int_equal(client.st, TLS_OK);
    assert_int_equal(tls_handshake(server.c), TLS_OK);  /* done stays done */
    for (int i = 0; i < 2; i++) {
        const char *proto = tls_protocol(ends[i]->c);

        assert_true(strcmp(proto, "TLSv1.3") == 0 || strcmp(proto, "TLSv1.2") == 0);
        assert_true(tls_cipher_bits(ends[i]->c) >= 128);
    }
    assert_string_equal(tls_cipher(server.c), tls_cipher(client.c));
    assert_true(tls_verified(client.c));
    assert_false(tls_verified(server.c));     /* no client certificates */

    /* a line each way */
    {
        flow_t fs = {.tx = (const unsigned char *)reply, .tx_len = sizeof(reply),
                     .rx = small_b, .rx_len = sizeof(hello)};
        flow_t fc = {.tx = (const unsigned char *)hello, .tx_len = sizeof(hello),
                     .rx = small_a, .rx_len = sizeof(reply)};

        pump(&server, &client, &fs, &fc);
        assert_memory_equal(small_b, hello, sizeof(hello));
        assert_memory_equal(small_a, reply, sizeof(reply));
    }

    /* 1 MB each way at once: writes come back partial, reads in pieces */
    up = xmalloc(BIG);
    down = xmalloc(BIG);
    up_rx = xmalloc(BIG);
    down_rx = xmalloc(BIG);
    fill(up, BIG, 7);
    fill(down, BIG, 99);
    {
        flow_t fs = {.tx = down, .tx_len = BIG, .rx = up_rx, .rx_len = BIG};
        flow_t fc = {.tx = up, .tx_len = BIG, .rx = down_rx, .rx_len = BIG};

        pump(&server, &client, &fs, &fc);
        assert_memory_equal(up_rx, up, BIG);
        assert_memory_equal(down_rx, down, BIG);
        assert_true(fs.partial > 0);
        assert_true(fc.partial > 0);
    }
    xfree(&up);
    xfree(&down);
    xfree(&up_rx);
    xfree(&down_rx);

    /* close_notify each way; a second shutdown sends nothing more */
    tls_shutdown(client.c);
    tls_shutdown(client.c);
    read_to_close(&server);
    tls_shutdown(server.c);
    read_to_close(&client);
    assert_int_equal(server.st, TLS_CLOSED);
    assert_int_equal(client.st, TLS_CLOSED);

    tls_conn_free(&server.c);
    tls_conn_free(&client.c);
    assert_null(server.c);
    tls_conn_free(&server.c);
    close(fd[0]);
    close(fd[1]);
}

/* What a raw client limited to a protocol version or a cipher list gets. */
static const struct {
    int max_version;
    const char *ciphers;
    bool ok;
    const char *want;           /* ok: the protocol; else: in tls_error() */
} client_policy_cases[] = {
    {TLS1_1_VERSION, "DEFAULT:@SECLEVEL=0", false, "protocol version is TLSv1.1"},
    {TLS1_2_VERSION, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA", false, "no shared cipher"},
    {TLS1_2_VERSION, "AES128-GCM-SHA256", false, "no shared cipher"},
    {TLS1_2_VERSION, "ECDHE-ECDSA-CHACHA20-POLY1305", true, "TLSv1.2"},
    {TLS1_2_VERSION, "DEFAULT", true, "TLSv1.2"},
    {0, "DEFAULT", true, "TLSv1.3"},
};

static void test_client_policy(void **state)
{
    tls_ctx_t *sctx = server_ctx();

    (void)state;
    for (size_t i = 0; i < sizeof(client_policy_cases) / sizeof(client_policy_cases[0]); i++) {
        SSL_CTX *raw_ctx = SSL_CTX_new(TLS_client_method());
        end_t server = {0}, client = {0}, *ends[2] = {&client, &server};
        int fd[2];

        assert_non_null(raw_ctx);
        SSL_CTX_set_security_level(raw_ctx, 0);
        assert_int_equal(SSL_CTX_set_min_proto_version(raw_ctx, TLS1_VERSION), 1);
        assert_int_equal(SSL_CTX_set_max_proto_version(raw_ctx, client_policy_cases[i].max_version), 1);
        assert_int_equal(SSL_CTX_set_cipher_list(raw_ctx, client_policy_cases[i].ciphers), 1);
        socket_pair(fd);
        server.fd = fd[0];
        client.fd = fd[1];
        server.c = tls_conn_new(sctx, server.fd, NULL);
        client.raw = SSL_new(raw_ctx);
        assert_non_null(client.raw);
        assert_int_equal(SSL_set_fd(client.raw, client.fd), 1);
        SSL_set_connect_state(client.raw);

        handshake(ends, 2);
        if (client_policy_cases[i].ok) {
            const char *cipher = tls_cipher(server.c);

            assert_int_equal(server.st, TLS_OK);
            assert_int_equal(client.st, TLS_OK);
            assert_string_equal(tls_protocol(server.c), client_policy_cases[i].want);
            if (strcmp(client_policy_cases[i].want, "TLSv1.2") == 0) {
                assert_true(strncmp(cipher, "ECDHE-", 6) == 0);
                assert_true(strstr(cipher, "-GCM-") != NULL || strstr(cipher, "CHACHA20") != NULL);
            }
        } else {
            assert_int_equal(server.st, TLS_FAILED);
            if (strstr(tls_error(server.c), client_policy_cases[i].want) == NULL)
                fail_msg("case %zu: \"%s\" not in \"%s\"", i, client_policy_cases[i].want,
                         tls_error(server.c));
            /* failed stays failed, and the error queue is left empty */
            assert_int_equal(tls_handshake(server.c), TLS_FAILED);
            assert_int_equal(ERR_peek_error(), 0);
            tls_shutdown(server.c);
        }
        SSL_free(client.raw);
        SSL_CTX_free(raw_ctx);
        tls_conn_free(&server.c);
        close(fd[0]);
        close(fd[1]);
    }
    tls_ctx_free(&sctx);
}

/* Key and certificate files that cannot be used: the error names the file. */
static void test_bad_files(void **state)
{
    const struct {
        const char *cert, *key, *named;
    } cases[] = {
        {cert_file, other_key_file, other_key_file},     /* key of another cert */
        {missing_file, key_file, missing_file},
        {cert_file, missing_file, missing_file},
        {cert_file, locked_key_file, locked_key_file},   /* fails, never prompts */
        {key_file, key_file, key_file},                  /* a key is no certificate */
        {cert_file, cert_file, cert_file},               /* nor a certificate a key */
    };
    char *err;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        err = NULL;
        assert_null(tls_server_ctx_new(cases[i].cert, cases[i].key, &err));
        assert_non_null(err);
        if (strstr(err, cases[i].named) == NULL || strstr(err, "error:") == NULL)
            fail_msg("case %zu: \"%s\" does not name %s with OpenSSL's reason", i, err,
                     cases[i].named);
        assert_int_equal(ERR_peek_error(), 0);
        xfree(&err);
    }
    err = NULL;
    assert_null(tls_client_ctx_new(missing_file, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, missing_file));
    xfree(&err);
}

/* tls_verified() by trust anchor and by the name asked for. */
static void test_verified(void **state)
{
    const struct {
        char *const *ca;        /* NULL: the system's trust store */
        const char *name;
        bool verified;
    } cases[] = {
        {&cert_file, "localhost", true},
        {&cert_file, "LocalHost", true},
        {&cert_file, "localhost.", true},
        {&cert_file, "127.0.0.1", true},
        {&cert_file, NULL, true},                /* the chain alone */
        {&cert_file, "otherhost", false},
        {&cert_file, "127.0.0.2", false},
        {&cert_file, "::1", false},
        {&cert_file, "", false},
        {&other_cert_file, "localhost", false},  /* trusts someone else */
        {NULL, "localhost", false},              /* self-signed, not trusted */
    };
    tls_ctx_t *sctx = server_ctx();

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tls_ctx_t *cctx = client_ctx(cases[i].ca ? *cases[i].ca : NULL);
        end_t server = {0}, client = {0}, *ends[2] = {&client, &server};
        int fd[2];

        socket_pair(fd);
        server.fd = fd[0];
        client.fd = fd[1];
        server.c = tls_conn_new(sctx, server.fd, NULL);
        client.c = tls_conn_new(cctx, client.fd, cases[i].name);
        handshake(ends, 2);
        /* the handshake goes on either way; only the verdict differs */
        assert_int_equal(client.st, TLS_OK);
        assert_int_equal(server.st, TLS_OK);
        if (tls_verified(client.c) != cases[i].verified)
            fail_msg("case %zu (%s): verified %d", i, cases[i].name ? cases[i].name : "NULL",
                     !cases[i].verified);
        tls_conn_free(&server.c);
        tls_conn_free(&client.c);
        tls_ctx_free(&cctx);
        close(fd[0]);
        close(fd[1]);
    }
    tls_ctx_free(&sctx);
}

/* One end goes away mid-handshake: the other gets TLS_CLOSED or
 * TLS_FAILED, with a reason, at once. */
static void test_peer_gone(void **state)
{
    const struct {
        int steps;              /* handshake steps, client first, alternating */
        bool server_goes;       /* else the client goes */
    } cases[] = {
        {0, false}, {1, false}, {2, false},
        {0, true}, {1, true}, {2, true},
    };
    tls_ctx_t *sctx = server_ctx(), *cctx = client_ctx(cert_file);

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        end_t server = {0}, client = {0}, *gone, *left;
        int fd[2];

        socket_pair(fd);
        server.fd = fd[0];
        client.fd = fd[1];
        server.c = tls_conn_new(sctx, server.fd, NULL);
        client.c = tls_conn_new(cctx, client.fd, "localhost");
        for (int s = 0; s < cases[i].steps; s++) {
            end_t *e = s % 2 == 0 ? &client : &server;

            e->st = tls_handshake(e->c);
            assert_true(waiting(e->st) || e->st == TLS_OK);
        }
        gone = cases[i].server_goes ? &server : &client;
        left = cases[i].server_goes ? &client : &server;
        tls_conn_free(&gone->c);
        close(gone->fd);
        handshake(&left, 1);
        if (left->st != TLS_CLOSED && left->st != TLS_FAILED)
            fail_msg("case %zu: status %d", i, left->st);
        assert_string_not_equal(tls_error(left->c), "no error");
        assert_int_equal(ERR_peek_error(), 0);
        tls_shutdown(left->c);
        tls_conn_free(&left->c);
        close(left->fd);
    }
    tls_ctx_free(&sctx);
    tls_ctx_free(&cctx);
}

/* A client that speaks SMTP (or HTTP) in clear to a TLS server. */
static void test_not_tls(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
    } inputs[] = {
#define BYTES(s) {s, sizeof(s) - 1}
        BYTES("EHLO x\r\n"),
        BYTES("GET / HTTP/1.0\r\n\r\n"),
        BYTES("\0\0\0\0\0\0\0\0"),
        BYTES("\x16\x03\x01\x00\x05hello"),     /* a handshake record of nonsense */
#undef BYTES
    };
    tls_ctx_t *sctx = server_ctx();

    (void)state;
    for (size_t i = 0; i < sizeof(inputs) / sizeof(inputs[0]); i++) {
        end_t server = {0}, *ends[1] = {&server};
        int fd[2];

        socket_pair(fd);
        server.fd = fd[0];
        server.c = tls_conn_new(sctx, server.fd, NULL);
        assert_int_equal(send(fd[1], inputs[i].bytes, inputs[i].len, MSG_NOSIGNAL),
                         (ssize_t)inputs[i].len);
        handshake(ends, 1);
        if (server.st != TLS_FAILED)
            fail_msg("input %zu: status %d (%s)", i, server.st, tls_error(server.c));
        assert_string_not_equal(tls_error(server.c), "no error");
        assert_int_equal(ERR_peek_error(), 0);
        tls_conn_free(&server.c);
        close(fd[0]);
        close(fd[1]);
    }
    tls_ctx_free(&sctx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_and_data),
        cmocka_unit_test(test_client_policy),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_verified),
        cmocka_unit_test(test_peer_gone),
        cmocka_unit_test(test_not_tls),
    };

    return cmocka_run_group_tests(tests, setup, teardown);
}
