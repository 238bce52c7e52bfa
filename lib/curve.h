/* curve.h - CurveZMQ on the TCP hops: key files, the per-endpoint
 * decision (Curve, plain, or refused), the socket options, and the ZAP
 * handler that admits only authorised clients.
 *
 * Keys: one key pair per stage kind (ingress, classifier, router,
 * delivery, fetcher) and one for `correio` itself (ctl), in
 * curve_keys_directory: NAME.key holds "public=Z85\nsecret=Z85\n" (mode
 * 0600), NAME.pub holds "public=Z85\n".  A stage binds with its own
 * secret key; a connect to a stage of kind X uses X.pub as the server key
 * and this process's pair as the client key.  `correio keys generate`
 * makes them.
 *
 * The decision for one endpoint (curve_decide):
 *   ipc://, inproc://        never Curve (one host, file permissions)
 *   tcp:// on loopback       (127.0.0.0/8, ::1, localhost, lo) plain,
 *                            unless curve = yes
 *   tcp:// elsewhere         curve = auto: Curve when this process's key
 *                            pair exists, else plain only with
 *                            curve_allow_plaintext = yes, else refused;
 *                            curve = yes: Curve, keys required;
 *                            curve = no: plain only with
 *                            curve_allow_plaintext = yes.
 * A stage refuses to start when a configured tcp endpoint is refused
 * (the message names the parameter).
 *
 * Server side: a ZAP handler thread (inproc://zeromq.zap.01) per stage
 * process accepts a CURVE client whose public key is in the authorised
 * list (curve_authorized_clients: a directory of *.pub or a file of keys,
 * by default every *.pub of the keys directory; re-read when it changes)
 * and rejects the others, logging each rejected key once.
 *
 * The state is process-wide, set once by curve_init (stage_start, or
 * ctl_load_config for `correio`), read-only afterwards apart from the
 * ZAP thread's own list.  Before curve_init, every tcp endpoint that is
 * not loopback is refused.
 */
#ifndef CORREIO_CURVE_H
#define CORREIO_CURVE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define CURVE_KEY_Z85_LEN 40           /* a 32-byte key as Z85 text */
#define CURVE_ZAP_DOMAIN  "correio"

/* The key pair file names `correio keys generate` makes, NULL-ended. */
extern const char *const curve_key_names[];

typedef struct curve_keypair {
    char pub[CURVE_KEY_Z85_LEN + 1];
    char sec[CURVE_KEY_Z85_LEN + 1];
} curve_keypair;

typedef enum { CURVE_MODE_AUTO, CURVE_MODE_YES, CURVE_MODE_NO } curve_mode;

typedef enum {
    CURVE_EP_LOCAL,     /* ipc://, inproc:// */
    CURVE_EP_LOOPBACK,  /* tcp:// on 127.0.0.0/8, ::1, localhost, lo */
    CURVE_EP_REMOTE,    /* any other tcp:// (and other transports) */
} curve_ep_class;

typedef enum {
    CURVE_PLAIN,        /* no security mechanism */
    CURVE_ON,           /* CurveZMQ */
    CURVE_REFUSED,      /* plain would leave the host: not allowed */
} curve_decision;

/* curve_endpoint_class - where an endpoint leads (no DNS: a name other
 * than localhost counts as remote; for a bind, * and an interface other
 * than lo too). */
curve_ep_class curve_endpoint_class(const char *endpoint);
/* curve_decide - the table above; have_keys: this process's pair. */
curve_decision curve_decide(curve_mode mode, curve_ep_class cls, bool have_keys,
                            bool allow_plaintext);
/* curve_mode_parse - "auto", "yes", "no"; -1 otherwise. */
int curve_mode_parse(const char *word);

/* curve_key_valid - is text (len bytes) a Z85 key of 32 bytes? */
bool curve_key_valid(const char *text, size_t len);
/* curve_key_parse - "public=...\nsecret=..." text (either may be absent;
 * # comments and blank lines allowed; a bare key line is the public
 * key).  need_secret: the secret must be there and match the public key
 * (which is then optional).  Returns 0, or -1 with *err malloc'ed. */
int curve_key_parse(const char *text, size_t len, bool need_secret, curve_keypair *kp,
                    char **err);
/* curve_key_load - curve_key_parse of a file; a secret file must not be
 * readable by group or others.  *err names the file. */
int curve_key_load(const char *path, bool need_secret, curve_keypair *kp, char **err);
/* curve_key_generate - a fresh pair (zmq_curve_keypair); -1 when libzmq
 * has no CURVE support. */
int curve_key_generate(curve_keypair *kp);
/* curve_key_save - write dir/name.key (0600) and dir/name.pub (0644),
 * each through a temporary file and rename.  Without force an existing
 * name.key or name.pub is left alone: returns 1.  0 when written, -1
 * with *err malloc'ed on failure. */
int curve_key_save(const char *dir, const char *name, const curve_keypair *kp, bool force,
                   char **err);

/* curve_init - read the curve parameters and this process's key pair
 * (self: the stage's name, or "ctl").  With zctx (a stage): every
 * configured tcp endpoint is checked, and a ZAP handler is started on
 * zctx when a key pair is there; any problem is an error.  Without zctx
 * (`correio`): client side only, and a key problem is reported only when
 * a connect needs the key.  Returns 0, or -1 with *err malloc'ed
 * ("PARAM = VALUE: ... (set ...)"). */
int curve_init(void *zctx, const config_t *cfg, const char *self, char **err);
/* curve_finish - after zmq_ctx_term of the stage's context: join the ZAP
 * thread and free the state. */
void curve_finish(void);

/* curve_peer_of - the stage kind that listens on endpoint, from the
 * configured *_endpoint(s) parameters: the parameter whose value (or list
 * item) is endpoint, else the one tcp port they all agree on.  NULL when
 * it cannot tell.  The string is static. */
const char *curve_peer_of(const char *endpoint);

/* curve_server_setup - before zmq_bind: the server settings endpoint
 * needs.  curve_client_setup - before zmq_connect to a stage of kind
 * peer (NULL: curve_peer_of(endpoint)).  Return 0, or -1 with *err
 * malloc'ed (refused, unknown peer, missing key). */
int curve_server_setup(void *sock, const char *endpoint, char **err);
int curve_client_setup(void *sock, const char *endpoint, const char *peer, char **err);

#endif
