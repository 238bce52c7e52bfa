/* smtp_auth.c - SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN
 * mechanisms against the users file.  The password is checked by the
 * auth pool's threads; a failure is answered only after a delay that
 * doubles with each failure of the session, so guessing is slow.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "base64.h"
#include "log.h"
#include "session_policy.h"
#include "smtp_session_state.h"
#include "timeutil.h"
#include "xalloc.h"

#define AUTH_DELAY_DOUBLINGS 5      /* the delay grows to 32 times the first */

bool smtp_auth_offered(const smtp_session_t *s)
{
    const ingress_t *ig = s->ig;

    if (!ig->auth_enable || s->auth_user)
        return false;
    return s->tls || !ig->tls_auth_only;
}

void smtp_auth_reset(smtp_session_t *s)
{
    auth_job_abandon(&s->auth_job);
    xfree(&s->auth_user);
    if (s->auth_login) {
        memset(s->auth_login, 0, strlen(s->auth_login));
        xfree(&s->auth_login);
    }
    s->auth_step = AUTH_NONE;
    s->cs.auth_user = NULL;
}

/* check - ask the pool about user/password; the answer comes to
 * smtp_session_auth_done. */
static void check(smtp_session_t *s, const char *user, const char *password)
{
    char *lower = address_lower(user);
    const user_entry *u;

    users_refresh(s->ig->users);
    u = users_lookup(s->ig->users, lower);
    xfree(&s->auth_login);
    s->auth_login = lower;          /* kept: the identity if it succeeds */
    s->auth_job = auth_pool_check(s->ig->auth, u ? u->password : NULL, password, s);
    s->wait = W_AUTH;
}

/* plain - "authzid NUL authcid NUL passwd" */
static void plain(smtp_session_t *s, const char *b64, size_t len)
{
    buf_t dec = BUF_INIT;
    const char *authz, *authc, *pass;
    size_t zl, cl;
    bool ok;

    if (base64_decode(&dec, b64, len) < 0 || dec.len == 0) {
        buf_free(&dec);
        session_reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    authz = dec.data;
    zl = strnlen(authz, dec.len);
    authc = authz + zl + 1;             /* dec.data is NUL-terminated past len */
    cl = zl + 1 < dec.len ? strnlen(authc, dec.len - zl - 1) : 0;
    ok = cl > 0 && zl + cl + 2 <= dec.len && (zl == 0 || strcasecmp(authz, authc) == 0);
    pass = ok ? authc + cl + 1 : NULL;
    if (ok && !memchr(pass, '\0', dec.len - zl - cl - 2))
        check(s, authc, pass);
    else
        session_reply(s, "535 5.7.8 Error: authentication failed: Invalid authentication data");
    memset(dec.data, 0, dec.len);
    buf_free(&dec);
}

/* login_user - AUTH LOGIN's user name (base64) */
static void login_user(smtp_session_t *s, const char *b64, size_t len)
{
    buf_t dec = BUF_INIT;

    if (base64_decode(&dec, b64, len) < 0 || dec.len == 0 || memchr(dec.data, '\0', dec.len)) {
        buf_free(&dec);
        session_reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    xfree(&s->auth_login);
    s->auth_login = xstrdup(dec.data);
    buf_free(&dec);
    s->auth_step = AUTH_LOGIN_PASSWORD;
    session_reply(s, "334 UGFzc3dvcmQ6");      /* "Password:" */
}

static void login_password(smtp_session_t *s, const char *b64, size_t len)
{
    buf_t dec = BUF_INIT;
    char *user = s->auth_login;

    s->auth_login = NULL;
    if (base64_decode(&dec, b64, len) < 0 || memchr(dec.data ? dec.data : "", '\0', dec.len)) {
        xfree(&user);
        buf_free(&dec);
        session_reply(s, "501 5.5.2 Cannot decode response");
        return;
    }
    check(s, user, dec.data ? dec.data : "");
    xfree(&user);
    if (dec.data)
        memset(dec.data, 0, dec.len);
    buf_free(&dec);
}

void smtp_auth_command(smtp_session_t *s, const char *arg, size_t len)
{
    const char *sp = memchr(arg, ' ', len);
    size_t mlen = sp ? (size_t)(sp - arg) : len;
    const char *init = sp ? sp + 1 : NULL;
    size_t ilen = sp ? len - mlen - 1 : 0;

    if (!s->ig->auth_enable) {
        session_reply(s, "503 5.5.1 Error: authentication not enabled");
        return;
    }
    if (s->auth_user) {
        session_reply(s, "503 5.5.1 Error: already authenticated");
        return;
    }
    if (s->state != S_IDLE) {
        session_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
        return;
    }
    if (!s->tls && s->ig->tls_auth_only) {
        if (s->ig->tls)
            session_reply(s, "538 5.7.11 Encryption required for requested authentication mechanism");
        else
            session_reply(s, "503 5.5.1 Error: authentication not enabled");
        return;
    }
    if (len == 0) {
        session_reply(s, "501 5.5.4 Syntax: AUTH mechanism");
        return;
    }
    if (mlen == 5 && strncasecmp(arg, "PLAIN", 5) == 0) {
        snprintf(s->auth_method, sizeof(s->auth_method), "PLAIN");
        if (init && !(ilen == 1 && init[0] == '=')) {
            plain(s, init, ilen);
        } else {
            s->auth_step = AUTH_PLAIN_RESPONSE;
            session_reply(s, "334 ");
        }
    } else if (mlen == 5 && strncasecmp(arg, "LOGIN", 5) == 0) {
        snprintf(s->auth_method, sizeof(s->auth_method), "LOGIN");
        if (init) {
            login_user(s, init, ilen);
        } else {
            s->auth_step = AUTH_LOGIN_USER;
            session_reply(s, "334 VXNlcm5hbWU6");  /* "Username:" */
        }
    } else {
        session_reply(s, "504 5.5.4 Unsupported authentication mechanism");
    }
}

void smtp_auth_response(smtp_session_t *s, const char *line, size_t len)
{
    int step = s->auth_step;

    s->auth_step = AUTH_NONE;
    if (len == 1 && line[0] == '*') {
        xfree(&s->auth_login);
        session_reply(s, "501 5.7.0 Authentication aborted");
        return;
    }
    switch (step) {
    case AUTH_PLAIN_RESPONSE:
        plain(s, line, len);
        break;
    case AUTH_LOGIN_USER:
        login_user(s, line, len);
        break;
    case AUTH_LOGIN_PASSWORD:
        login_password(s, line, len);
        break;
    default:
        log_panic("smtp_auth_response: step %d", step);
    }
}

void smtp_session_auth_done(void *session, bool ok)
{
    smtp_session_t *s = session;
    char user[300];

    s->auth_job = NULL;
    log_printable(user, sizeof(user), s->auth_login ? s->auth_login : "",
                  s->auth_login ? strlen(s->auth_login) : 0);
    if (ok) {
        s->auth_user = s->auth_login;
        s->auth_login = NULL;
        s->cs.auth_user = s->auth_user;
        s->cs.sender_memo.state = 0;
        s->cs.client.state = 0;         /* permit_sasl_authenticated may apply now */
        s->cs.helo_memo.state = 0;
        s->wait = W_NONE;
        s->count[V_AUTH].ok++;
        log_info("%s: SASL %s authentication succeeded, sasl_username=%s", s->client,
                 s->auth_method, user);
        session_reply(s, "235 2.7.0 Authentication successful");
        session_resume(s);
        return;
    }
    xfree(&s->auth_login);
    s->auth_failures++;
    log_warn("%s: SASL %s authentication failed: authentication failure, sasl_username=%s",
             s->client, s->auth_method, user);
    {
        unsigned shift = s->auth_failures - 1;
        int64_t delay = s->ig->auth_failure_delay_ms
                        << (shift > AUTH_DELAY_DOUBLINGS ? AUTH_DELAY_DOUBLINGS : shift);
        if (delay <= 0) {
            smtp_session_wake(s);
            return;
        }
        s->wait = W_SLEEP;
        s->ig->sleep_until(s->ig->server, s->cookie, time_mono_ms() + delay);
    }
}

void smtp_session_wake(smtp_session_t *s)
{
    if (s->wait == W_TARPIT) {          /* session_policy.c: a blocked client's delay */
        session_rerun(s);
        return;
    }
    if (s->wait != W_SLEEP && s->wait != W_AUTH)
        return;
    s->wait = W_NONE;
    session_reply(s, "535 5.7.8 Error: authentication failed: authentication failure");
    session_policy_auth_failed(s);      /* an intrusion event: may wait for its verdict */
    session_resume(s);
}
