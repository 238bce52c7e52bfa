/* tls.c - TLS over non-blocking sockets with OpenSSL (see tls.h).
 *
 * The socket sits under OpenSSL through a small BIO of our own whose
 * writes use send(MSG_NOSIGNAL): a peer that vanishes while we write
 * gives EPIPE and a TLS_FAILED, never a SIGPIPE, whether or not the
 * program ignores that signal (the stages do, see stage.c; the tests and
 * the correio command need not).
 *
 * OpenSSL reports errors through a per-thread queue.  Every operation here
 * starts with an empty queue and leaves one behind: a failure's reasons
 * are copied into the connection (tls_error) or into *err, then the
 * queue is cleared, so one connection's errors never show up as
 * another's.
 *
 * Session resumption: SSL_OP_NO_TICKET.  OpenSSL seals TLS 1.2 tickets
 * with one key per context that is never rotated unless we do it, so a
 * long-running stage would keep a key that decrypts every ticketed
 * session it ever issued, undoing ECDHE's forward secrecy.  Without
 * tickets, TLS 1.2 resumes from a bounded in-memory session cache whose
 * entries expire, and TLS 1.3 (where OpenSSL then issues stateful
 * tickets from the same cache) still resumes with a fresh ECDHE.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "tls.h"
#include "xalloc.h"

/* TLS 1.2 only: forward secret key exchange, AEAD ciphers.  TLS 1.3
 * suites are all AEAD with (EC)DHE; OpenSSL's defaults stay. */
#define TLS12_CIPHERS "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!PSK"
#define TLS_SESSION_CACHE_SIZE 1024     /* sessions kept per server context */
#define TLS_SESSION_ID_CONTEXT "correio"
#define TLS_ERROR_MAX 256               /* tls_error() text, with its NUL */

struct tls_ctx {
    SSL_CTX *ssl_ctx;                   /* one reference of ours */
};

struct tls_conn {
    SSL    *ssl;
    int     fd;                         /* not owned */
    bool    eof;                        /* recv() returned 0 (the BIO's EOF) */
    bool    dead;                       /* fatal error or EOF: no more SSL I/O */
    tls_status dead_status;             /* what every call returns once dead */
    bool    shutdown_sent;
    bool    name_wanted;                /* client: server_name was given */
    bool    name_set;                   /* ... and could be set for checking */
    char    why[TLS_ERROR_MAX];
};

/* ------------------------------------------------------------------ errors */

/* err_collect - append the queued OpenSSL errors to dst (size bytes) and
 * clear the queue.  The first queued error is the root cause and comes in
 * full ("error:CODE:LIB::reason (data)"); the ones OpenSSL stacked on top
 * ("PEM lib", "system lib") add nothing, unless they carry data of their
 * own ("... (empty password)").  Returns dst. */
static char *err_collect(char *dst, size_t size)
{
    const char *data;
    unsigned long code;
    char one[256], piece[512];
    int flags, n = 0;

    while ((code = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0) {
        const char *reason = ERR_reason_error_string(code);
        bool has_data = (flags & ERR_TXT_STRING) && data != NULL && *data != 0;
        size_t len = strlen(dst);

        if (n++ == 0 || reason == NULL) {
            ERR_error_string_n(code, one, sizeof(one));
            reason = one;
        } else if (!has_data) {
            continue;
        }
        snprintf(piece, sizeof(piece), has_data ? "%s (%s)" : "%s", reason, data);
        if (n > 1 && strstr(dst, piece) != NULL)
            continue;
        snprintf(dst + len, size - len, "%s%s", n > 1 ? "; " : "", piece);
    }
    if (n == 0)
        snprintf(dst + strlen(dst), size - strlen(dst), "no reason given by OpenSSL");
    /* error data can quote the peer: keep the text printable */
    for (char *p = dst; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    ERR_clear_error();
    return dst;
}

/* ctx_error - "WHAT: OpenSSL's reasons" in fresh memory, for *err. */
static char *ctx_error(const char *what)
{
    char text[512];

    snprintf(text, sizeof(text), "%s: ", what);
    return xstrdup(err_collect(text, sizeof(text)));
}

/* ------------------------------------------------------------- socket BIO */

/* The BIO's data is the connection; it reads and writes c->fd. */

static int sockbio_write(BIO *b, const char *data, size_t len, size_t *written)
{
    tls_conn_t *c = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    *written = 0;
    do
        n = send(c->fd, data, len, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_write(b);
        return 0;
    }
    *written = (size_t)n;
    return 1;
}

static int sockbio_read(BIO *b, char *data, size_t len, size_t *got)
{
    tls_conn_t *c = BIO_get_data(b);
    ssize_t n;

    BIO_clear_retry_flags(b);
    *got = 0;
    do
        n = recv(c->fd, data, len, 0);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            BIO_set_retry_read(b);
        return 0;
    }
    if (n == 0) {
        if (len > 0)
            c->eof = true;              /* OpenSSL asks BIO_CTRL_EOF next */
        return 0;
    }
    *got = (size_t)n;
    return 1;
}

static long sockbio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    tls_conn_t *c = BIO_get_data(b);

    (void)num;
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;                       /* nothing is buffered here */
    case BIO_CTRL_EOF:
        return c->eof;
    case BIO_C_GET_FD:
        if (ptr != NULL)
            *(int *)ptr = c->fd;
        return c->fd;
    default:
        return 0;
    }
}

static BIO_METHOD *sockbio_method;
static pthread_once_t sockbio_once = PTHREAD_ONCE_INIT;

/* sockbio_init - make the BIO method once per process (never freed). */
static void sockbio_init(void)
{
    int type = BIO_get_new_index();
    BIO_METHOD *m;

    if (type == -1
        || (m = BIO_meth_new(type | BIO_TYPE_SOURCE_SINK | BIO_TYPE_DESCRIPTOR,
                             "correio socket")) == NULL
        || !BIO_meth_set_write_ex(m, sockbio_write)
        || !BIO_meth_set_read_ex(m, sockbio_read)
        || !BIO_meth_set_ctrl(m, sockbio_ctrl))
        log_fatal("tls: cannot create the socket BIO method (out of memory?)");
    sockbio_method = m;
}

/* -------------------------------------------------------------- contexts */

/* no_passphrase - an encrypted key fails to load instead of prompting on
 * the terminal (OpenSSL's default). */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

/* ctx_new - a context with the policy of tls.h; NULL and *err if not. */
static SSL_CTX *ctx_new(bool server, char **err)
{
    SSL_CTX *sc;

    ERR_clear_error();
    if ((sc = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method())) == NULL) {
        *err = ctx_error("cannot create a TLS context");
        return NULL;
    }
    if (SSL_CTX_set_min_proto_version(sc, TLS1_2_VERSION) != 1
        || SSL_CTX_set_cipher_list(sc, TLS12_CIPHERS) != 1) {
        *err = ctx_error("cannot set the TLS protocol versions and ciphers");
        SSL_CTX_free(sc);
        return NULL;
    }
    SSL_CTX_set_options(sc, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                        | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(sc, SSL_MODE_ENABLE_PARTIAL_WRITE
                     | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_default_passwd_cb(sc, no_passphrase);
    return sc;
}

/* ctx_wrap - our handle around sc (whose reference it takes over). */
static tls_ctx_t *ctx_wrap(SSL_CTX *sc)
{
    tls_ctx_t *ctx = xmalloc(sizeof(*ctx));

    ctx->ssl_ctx = sc;
    return ctx;
}

tls_ctx_t *tls_server_ctx_new(const char *cert_file, const char *key_file, char **err)
{
    SSL_CTX *sc;
    char *what = NULL;

    if ((sc = ctx_new(true, err)) == NULL)
        return NULL;
    if (SSL_CTX_use_certificate_chain_file(sc, cert_file) != 1)
        what = xasprintf("%s: cannot load the certificate chain", cert_file);
    else if (SSL_CTX_use_PrivateKey_file(sc, key_file, SSL_FILETYPE_PEM) != 1)
        what = xasprintf("%s: cannot load the private key for %s", key_file, cert_file);
    else if (SSL_CTX_check_private_key(sc) != 1)
        what = xasprintf("%s: the private key does not match the certificate in %s",
                         key_file, cert_file);
    else if (SSL_CTX_set_session_id_context(sc, (const unsigned char *)TLS_SESSION_ID_CONTEXT,
                                            sizeof(TLS_SESSION_ID_CONTEXT) - 1) != 1)
        what = xasprintf("cannot set the TLS session id context");
    if (what != NULL) {
        *err = ctx_error(what);
        xfree(&what);
        SSL_CTX_free(sc);
        return NULL;
    }
    SSL_CTX_sess_set_cache_size(sc, TLS_SESSION_CACHE_SIZE);
    return ctx_wrap(sc);
}

tls_ctx_t *tls_client_ctx_new(const char *ca_file, char **err)
{
    SSL_CTX *sc;
    char *what = NULL;

    if ((sc = ctx_new(false, err)) == NULL)
        return NULL;
    /* the handshake goes on whatever the chain; tls_verified() tells */
    SSL_CTX_set_verify(sc, SSL_VERIFY_NONE, NULL);
    if (ca_file != NULL) {
        if (SSL_CTX_load_verify_locations(sc, ca_file, NULL) != 1)
            what = xasprintf("%s: cannot load the trusted certificates", ca_file);
    } else if (SSL_CTX_set_default_verify_paths(sc) != 1) {
        what = xasprintf("cannot load the system's trusted certificates");
    }
    if (what != NULL) {
        *err = ctx_error(what);
        xfree(&what);
        SSL_CTX_free(sc);
        return NULL;
    }
    return ctx_wrap(sc);
}

void tls_ctx_free(tls_ctx_t **ctx)
{
    if (ctx == NULL || *ctx == NULL)
        return;
    SSL_CTX_free((*ctx)->ssl_ctx);      /* SSL objects hold their own references */
    xfree(ctx);
}

/* ----------------------------------------------------------- connections */

/* conn_peer_name - what a client checks the server's certificate against:
 * a DNS name (also sent as SNI) or an IP address (never SNI, RFC 6066). */
static void conn_peer_name(tls_conn_t *c, const char *server_name)
{
    X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);
    unsigned char addr[16];
    size_t len = strlen(server_name);
    char *name;

    c->name_wanted = true;
    if (inet_pton(AF_INET, server_name, addr) == 1
        || inet_pton(AF_INET6, server_name, addr) == 1) {
        c->name_set = X509_VERIFY_PARAM_set1_ip_asc(vp, server_name) == 1;
    } else {
        /* "mx.example.org." names the same host; the SNI must not end in '.' */
        name = xstrndup(server_name, len > 1 && server_name[len - 1] == '.' ? len - 1 : len);
        X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        c->name_set = *name != 0 && SSL_set1_host(c->ssl, name) == 1
            && SSL_set_tlsext_host_name(c->ssl, name) == 1;
        xfree(&name);
    }
    if (!c->name_set) {
        char shown[80];

        snprintf(c->why, sizeof(c->why), "cannot use server name \"%s\": ",
                 log_printable(shown, sizeof(shown), server_name, len));
        err_collect(c->why, sizeof(c->why));
    }
}

tls_conn_t *tls_conn_new(tls_ctx_t *ctx, int fd, const char *server_name)
{
    tls_conn_t *c = xcalloc(1, sizeof(*c));
    BIO *bio;

    pthread_once(&sockbio_once, sockbio_init);
    ERR_clear_error();
    c->fd = fd;
    if ((c->ssl = SSL_new(ctx->ssl_ctx)) == NULL || (bio = BIO_new(sockbio_method)) == NULL)
        log_fatal("tls_conn_new: %s", err_collect(c->why, sizeof(c->why)));
    BIO_set_data(bio, c);
    BIO_set_init(bio, 1);
    SSL_set_bio(c->ssl, bio, bio);      /* the SSL owns the BIO now */
    if (SSL_is_server(c->ssl)) {
        if (server_name != NULL)
            log_panic("tls_conn_new: server_name given for a server connection");
        SSL_set_accept_state(c->ssl);
    } else {
        SSL_set_connect_state(c->ssl);
        if (server_name != NULL)
            conn_peer_name(c, server_name);
    }
    return c;
}

void tls_conn_free(tls_conn_t **c)
{
    if (c == NULL || *c == NULL)
        return;
    SSL_free((*c)->ssl);                /* and the BIO, and a context reference */
    xfree(c);
}

/* conn_dead - no more I/O on this connection: every later call says st. */
static tls_status conn_dead(tls_conn_t *c, tls_status st)
{
    c->dead = true;
    c->dead_status = st;
    ERR_clear_error();
    return st;
}

/* version_name - a protocol version number as OpenSSL names it. */
static const char *version_name(int version)
{
    switch (version) {
    case SSL3_VERSION:
        return "SSLv3";
    case TLS1_VERSION:
        return "TLSv1";
    case TLS1_1_VERSION:
        return "TLSv1.1";
    case TLS1_2_VERSION:
        return "TLSv1.2";
    case TLS1_3_VERSION:
        return "TLSv1.3";
    default:
        return "unknown";
    }
}

/* conn_outcome - what an SSL call that returned ret (not success) means;
 * saved_errno is errno right after it. */
static tls_status conn_outcome(tls_conn_t *c, const char *op, int ret, int saved_errno)
{
    unsigned long code;

    switch (SSL_get_error(c->ssl, ret)) {
    case SSL_ERROR_WANT_READ:
        return TLS_WANT_READ;
    case SSL_ERROR_WANT_WRITE:
        return TLS_WANT_WRITE;
    case SSL_ERROR_ZERO_RETURN:
        /* close_notify: a clean end; our own may still be sent */
        snprintf(c->why, sizeof(c->why), "%s: the peer closed the TLS session", op);
        ERR_clear_error();
        return TLS_CLOSED;
    case SSL_ERROR_SYSCALL:
        if (ERR_peek_error() == 0) {
            if (saved_errno == 0 || c->eof) {
                snprintf(c->why, sizeof(c->why),
                         "%s: the peer closed the connection without close_notify", op);
                return conn_dead(c, TLS_CLOSED);
            }
            snprintf(c->why, sizeof(c->why), "%s: %s", op, strerror(saved_errno));
            return conn_dead(c, TLS_FAILED);
        }
        break;
    default:
        break;
    }
    code = ERR_peek_error();
    if (ERR_GET_LIB(code) == ERR_LIB_SSL
        && ERR_GET_REASON(code) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        snprintf(c->why, sizeof(c->why),
                 "%s: the peer closed the connection without close_notify", op);
        return conn_dead(c, TLS_CLOSED);
    }
    snprintf(c->why, sizeof(c->why), "%s: ", op);
    err_collect(c->why, sizeof(c->why));
    if (ERR_GET_LIB(code) == ERR_LIB_SSL && ERR_GET_REASON(code) == SSL_R_UNSUPPORTED_PROTOCOL
        && SSL_is_server(c->ssl)) {
        size_t len = strlen(c->why);

        snprintf(c->why + len, sizeof(c->why) - len,
                 "; the client's highest protocol version is %s, TLSv1.2 is the least we take",
                 version_name(SSL_client_version(c->ssl)));
    }
    return conn_dead(c, TLS_FAILED);
}

/* conn_begin - before an SSL I/O call: an empty error queue and errno,
 * so that what follows belongs to this call alone. */
static void conn_begin(void)
{
    ERR_clear_error();
    errno = 0;
}

tls_status tls_handshake(tls_conn_t *c)
{
    int ret;

    if (c->dead)
        return c->dead_status;
    conn_begin();
    if ((ret = SSL_do_handshake(c->ssl)) == 1)
        return TLS_OK;
    return conn_outcome(c, "handshake", ret, errno);
}

tls_status tls_read(tls_conn_t *c, void *buf, size_t cap, size_t *got)
{
    size_t n = 0;
    int ret;

    *got = 0;
    if (cap == 0)
        log_panic("tls_read: no room to read into");
    if (c->dead)
        return c->dead_status;
    conn_begin();
    if ((ret = SSL_read_ex(c->ssl, buf, cap, &n)) == 1) {
        *got = n;
        return TLS_OK;
    }
    return conn_outcome(c, "read", ret, errno);
}

tls_status tls_write(tls_conn_t *c, const void *buf, size_t len, size_t *put)
{
    size_t n = 0;
    int ret;

    *put = 0;
    if (len == 0)
        log_panic("tls_write: nothing to write");
    if (c->dead)
        return c->dead_status;
    conn_begin();
    if ((ret = SSL_write_ex(c->ssl, buf, len, &n)) == 1) {
        *put = n;
        return TLS_OK;
    }
    return conn_outcome(c, "write", ret, errno);
}

void tls_shutdown(tls_conn_t *c)
{
    /* OpenSSL forbids SSL_shutdown() after a fatal error; during the
     * handshake there is no session to close */
    if (c->dead || c->shutdown_sent || !SSL_is_init_finished(c->ssl))
        return;
    c->shutdown_sent = true;
    conn_begin();
    (void)SSL_shutdown(c->ssl);         /* socket full: no close_notify, fine */
    ERR_clear_error();
}

const char *tls_protocol(const tls_conn_t *c)
{
    return SSL_get_version(c->ssl);
}

const char *tls_cipher(const tls_conn_t *c)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);

    return cipher != NULL ? SSL_CIPHER_get_name(cipher) : "none";
}

int tls_cipher_bits(const tls_conn_t *c)
{
    const SSL_CIPHER *cipher = SSL_get_current_cipher(c->ssl);

    return cipher != NULL ? SSL_CIPHER_get_bits(cipher, NULL) : 0;
}

bool tls_verified(const tls_conn_t *c)
{
    if (SSL_is_server(c->ssl) || !SSL_is_init_finished(c->ssl))
        return false;
    if (c->name_wanted && !c->name_set)
        return false;
    /* X509_V_OK is also the answer when there was no certificate at all */
    return SSL_get0_peer_certificate(c->ssl) != NULL
        && SSL_get_verify_result(c->ssl) == X509_V_OK;
}

const char *tls_error(const tls_conn_t *c)
{
    return c->why[0] != 0 ? c->why : "no error";
}
