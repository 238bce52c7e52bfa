/* tls.h - TLS over non-blocking sockets with OpenSSL: contexts built from
 * the configuration, and connections whose handshake, read and write say
 * "call again when the socket is readable/writable" instead of blocking.
 *
 * Policy: TLS 1.2 and 1.3 only; TLS 1.2 with forward-secret AEAD ciphers
 * only (ECDHE with AES-GCM or ChaCha20-Poly1305); no compression, no
 * renegotiation; server cipher preference.
 */
#ifndef CORREIO_TLS_H
#define CORREIO_TLS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct tls_ctx tls_ctx_t;
typedef struct tls_conn tls_conn_t;

typedef enum {
    TLS_OK,
    TLS_WANT_READ,      /* call again when the socket is readable */
    TLS_WANT_WRITE,     /* call again when the socket is writable */
    TLS_CLOSED,         /* the peer closed (close_notify or EOF) */
    TLS_FAILED,         /* protocol or socket error; tls_error() says */
} tls_status;

/* tls_server_ctx_new - a server context with the certificate chain in
 * cert_file (PEM, leaf first) and key_file.  NULL and *err (malloc'd,
 * names the file and OpenSSL's reason) if they cannot be used or do not
 * match. */
tls_ctx_t *tls_server_ctx_new(const char *cert_file, const char *key_file, char **err);
/* tls_client_ctx_new - a client context; ca_file NULL: the system's
 * trust store.  Verification is decided per connection. */
tls_ctx_t *tls_client_ctx_new(const char *ca_file, char **err);
/* tls_ctx_free - release the caller's reference; connections made from
 * the context keep it alive until they are freed. */
void tls_ctx_free(tls_ctx_t **ctx);

/* tls_conn_new - TLS on the connected non-blocking socket fd (not owned:
 * the caller closes it).  server_name: for a client, the SNI name and the
 * name verified by tls_verified(); NULL for a server. */
tls_conn_t *tls_conn_new(tls_ctx_t *ctx, int fd, const char *server_name);
void tls_conn_free(tls_conn_t **c);

/* tls_handshake - drive the handshake; TLS_OK when done. */
tls_status tls_handshake(tls_conn_t *c);
/* tls_read - up to cap bytes into buf; TLS_OK sets *got > 0. */
tls_status tls_read(tls_conn_t *c, void *buf, size_t cap, size_t *got);
/* tls_write - from buf; TLS_OK sets *put > 0 (may be less than len). */
tls_status tls_write(tls_conn_t *c, const void *buf, size_t len, size_t *put);
/* tls_shutdown - send close_notify once, without waiting for the peer's. */
void tls_shutdown(tls_conn_t *c);

/* After the handshake: "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256. */
const char *tls_protocol(const tls_conn_t *c);
const char *tls_cipher(const tls_conn_t *c);
int         tls_cipher_bits(const tls_conn_t *c);
/* tls_verified - client side: the peer's chain verified against the
 * trust store and its certificate matches server_name. */
bool tls_verified(const tls_conn_t *c);
/* tls_error - why the last call failed, for a log line. */
const char *tls_error(const tls_conn_t *c);

#endif
