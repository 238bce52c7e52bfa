/* smtp_session_state.h - the inside of an SMTP session, shared by the
 * files that implement it (smtp_session.c: verbs and DATA; smtp_auth.c:
 * AUTH).  Not for the server's eyes: it uses smtp_session.h.
 */
#ifndef CORREIO_SMTP_SESSION_STATE_H
#define CORREIO_SMTP_SESSION_STATE_H

#include <netinet/in.h>
#include <arpa/inet.h>

#include "address.h"
#include "auth_pool.h"
#include "content_checks.h"
#include "qid.h"
#include "smtp_command.h"
#include "smtp_data.h"
#include "smtp_session.h"
#include "smtpd_check.h"
#include "smtpd_dns.h"
#include "wire.h"

/* Session states, as bits for the verb table. */
enum {
    S_IDLE = 1,     /* no transaction */
    S_MAIL = 2,     /* after MAIL */
    S_RCPT = 4,     /* after the first accepted RCPT */
    S_DATA = 8,     /* receiving message content */
};
#define S_ANY (S_IDLE | S_MAIL | S_RCPT)

enum { V_EHLO, V_HELO, V_MAIL, V_RCPT, V_DATA, V_RSET, V_NOOP, V_QUIT,
       V_VRFY, V_HELP, V_STARTTLS, V_AUTH, V_UNKNOWN, V_COUNT };

/* What the session waits for (no input is taken meanwhile). */
typedef enum {
    W_NONE,
    W_SPOOL,        /* the spool commit of a message */
    W_DNS,          /* a lookup: the greeting or a command to run again */
    W_AUTH,         /* a password check */
    W_SLEEP,        /* the delay after a failed AUTH */
    W_TLS,          /* the TLS handshake after STARTTLS */
    W_POLICY,       /* the policy service: the greeting or a command to run
                     * again, or an intrusion event's verdict (session_policy.c) */
    W_TARPIT,       /* a blocked client's delay before the command runs again */
} wait_kind;

/* AUTH exchange steps */
enum { AUTH_NONE, AUTH_PLAIN_RESPONSE, AUTH_LOGIN_USER, AUTH_LOGIN_PASSWORD };

typedef void (*verb_handler)(smtp_session_t *s, const char *arg, size_t len);

/* One accepted recipient with its DSN parameters (RFC 3461). */
typedef struct session_rcpt {
    char    *address;
    char    *orcpt;                 /* "rfc822;addr" decoded, NULL if none */
    unsigned notify;                /* Notify bits, 0 if not given */
} session_rcpt;

typedef struct verb {
    const char  *name;
    int          id;
    int          states;        /* where the verb is allowed */
    verb_handler handler;
    const char  *bad_state;     /* the reply elsewhere */
} verb;

struct smtp_session {
    ingress_t  *ig;
    listener_role role;
    buf_t      *out;
    void       *cookie;
    struct sockaddr_storage peer;
    char        ip[INET6_ADDRSTRLEN];
    char        client[300];        /* "name[ip]" for logs */
    unsigned    port;
    bool        ipv6;
    int         state;
    wait_kind   wait;
    bool        greeted, closing, discarding;
    bool        esmtp;
    bool        input_ahead;        /* the client sent more after this command */
    char       *helo;               /* as given, or NULL */
    unsigned    errors;
    int         last_code;
    struct { unsigned ok, total; } count[V_COUNT];
    /* TLS */
    bool        tls, starttls_pending;
    char        tls_protocol[32], tls_cipher[96];
    int         tls_bits;
    /* AUTH */
    char       *auth_user;          /* NULL until authenticated */
    char        auth_method[8];
    int         auth_step;
    char       *auth_login;         /* AUTH LOGIN's user name so far */
    auth_job_t *auth_job;
    unsigned    auth_failures;
    /* checks and DNS */
    check_session cs;
    smtpd_dns_t *dns;
    struct session_policy *policy;  /* policy answers (session_policy.c), NULL if none */
    const verb  *rerun_verb;        /* the command waiting for DNS or the policy service */
    char        *rerun_arg;
    size_t       rerun_len;
    /* the transaction */
    bool        have_qid;
    char        qid[QID_LEN + 1];
    char        sender[ADDR_PATH_MAX + 1];
    Correio__BodyType body_type;
    unsigned long long size_declared;
    size_t      size_limit;         /* for this sender */
    char        envid[DSN_ENVID_MAX + 1];  /* MAIL ENVID=, decoded; "" if none */
    Correio__DsnRet ret;            /* MAIL RET= */
    session_rcpt *rcpt;
    size_t      n_rcpt, rcpt_cap;
    smtp_data_t data;
    content_scan scan;
    buf_t       body;
    size_t      msg_size;           /* of the message being committed */
};

/* reply - one reply line (CRLF added); a 4xx/5xx counts as an error, and
 * too many of them end the session. */
void session_reply(smtp_session_t *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* session_resume - a wait is over: tell the server to run the session. */
void session_resume(smtp_session_t *s);
/* session_rerun - a W_POLICY or W_TARPIT wait is over: greet, finish the
 * end of DATA, or run the waiting command again; then resume. */
void session_rerun(smtp_session_t *s);

/* smtp_auth.c */
void smtp_auth_command(smtp_session_t *s, const char *arg, size_t len);
void smtp_auth_response(smtp_session_t *s, const char *line, size_t len);
/* smtp_auth_offered - may this session use AUTH now (for EHLO)? */
bool smtp_auth_offered(const smtp_session_t *s);
void smtp_auth_reset(smtp_session_t *s);

#endif
