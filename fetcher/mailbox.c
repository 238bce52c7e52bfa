/* mailbox.c - one session with a remote mailbox (see mailbox.h): the
 * dispatch to pop3.c or imap.c, and what both share: connecting with a
 * deadline, TLS through lib/tls (whose non-blocking calls are driven here
 * with poll), line and byte reads with a deadline and a cap, and error
 * texts that never hold the password.
 *
 * Deadlines: every read call (a line, or a run of bytes) and every write
 * call gets timeout_ms from its start; a line must be complete within
 * it, so a server that trickles one byte at a time cannot hold a worker.
 * A run of bytes (an IMAP literal) gets timeout_ms anew whenever data
 * arrives, so a large message on a slow link still comes through.  The
 * optional session_ms bounds them all: a server that trickles a line
 * just under timeout_ms cannot hold a worker for longer than that.
 *
 * Thread safety: nothing global; a session is used by one thread at a
 * time.  Each session makes its own TLS client context.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"
#include "mailbox_int.h"
#include "timeutil.h"
#include "xalloc.h"

#define READ_CHUNK      16384   /* one read from the socket */
#define COMPACT_AT      65536   /* consumed bytes dropped from the buffer */
#define TIMEOUT_CAP_MS  (7LL * 24 * 3600 * 1000)   /* longer asks are cut to this */

/* ------------------------------------------------------------------ errors */

const char *mailbox_status_name(mailbox_status st)
{
    switch (st) {
    case MAILBOX_OK:
        return "ok";
    case MAILBOX_ERROR:
        return "error";
    case MAILBOX_AUTH_FAILED:
        return "auth failed";
    case MAILBOX_TOO_BIG:
        return "too big";
    case MAILBOX_GONE:
        return "gone";
    }
    return "unknown";
}

/* scrub_one - overwrite every copy of secret in s with '*'. */
static void scrub_one(char *s, const char *secret)
{
    size_t n;
    char *p;

    if (secret == NULL || (n = strlen(secret)) == 0)
        return;
    while ((p = strstr(s, secret)) != NULL)
        memset(p, '*', n);
}

void mbx_scrub(const mailbox_t *m, char *s)
{
    scrub_one(s, m->password);
    scrub_one(s, m->secret_b64);
}

char *mbx_shown(char *dst, size_t size, const char *src, size_t len)
{
    return log_printable(dst, size, src, len);
}

static mailbox_status fail_v(mailbox_t *m, mailbox_status st, char **err, const char *fmt,
                             va_list ap)
{
    char *text, *full;

    if (err == NULL)
        return st;
    if (vasprintf(&text, fmt, ap) < 0)
        log_fatal("mbx_fail: out of memory");
    full = xasprintf("%s: %s", m->where, text);
    free(text);
    mbx_scrub(m, full);
    *err = full;                    /* callers set it once per failure */
    return st;
}

mailbox_status mbx_fail(mailbox_t *m, mailbox_status st, char **err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    fail_v(m, st, err, fmt, ap);
    va_end(ap);
    return st;
}

mailbox_status mbx_break(mailbox_t *m, mailbox_status st, char **err, const char *fmt, ...)
{
    va_list ap;

    m->broken = true;
    va_start(ap, fmt);
    fail_v(m, st, err, fmt, ap);
    va_end(ap);
    return st;
}

/* ---------------------------------------------------------------- waiting */

/* wait_fd - poll fd for events until deadline: 1 ready, 0 timed out,
 * -1 error (errno). */
static int wait_fd(int fd, short events, int64_t deadline)
{
    struct pollfd p = {.fd = fd, .events = events};
    int64_t left;
    int n;

    for (;;) {
        left = deadline - time_mono_ms();
        if (left <= 0)
            return 0;
        n = poll(&p, 1, left > 60000 ? 60000 : (int)left);
        if (n > 0)
            return 1;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* wait_tls - wait as a TLS call asked (WANT_READ or WANT_WRITE). */
static int wait_tls(int fd, tls_status st, int64_t deadline)
{
    return wait_fd(fd, st == TLS_WANT_WRITE ? POLLOUT : POLLIN, deadline);
}

/* deadline_from_now - timeout_ms from now, or the session's end if sooner. */
static int64_t deadline_from_now(const mbx_conn *c)
{
    int64_t d = time_mono_ms() + c->timeout_ms;

    return d < c->session_end ? d : c->session_end;
}

/* timed_out - the text for a wait that reached deadline. */
static mailbox_status timed_out(mailbox_t *m, int64_t deadline, const char *doing, char **err)
{
    if (deadline == m->conn.session_end)
        return mbx_break(m, MAILBOX_ERROR, err, "the session took longer than %lld ms, while %s",
                         (long long)m->conn.session_ms, doing);
    return mbx_break(m, MAILBOX_ERROR, err, "timed out after %lld ms while %s",
                     (long long)m->conn.timeout_ms, doing);
}

/* ----------------------------------------------------------------- reads */

/* conn_fill - read more bytes into the buffer before deadline. */
static mailbox_status conn_fill(mailbox_t *m, int64_t deadline, const char *doing, char **err)
{
    mbx_conn *c = &m->conn;
    size_t got = 0;
    ssize_t n;
    int w;

    if (c->in_pos >= COMPACT_AT || (c->in_pos > 0 && c->in_pos == c->in.len)) {
        buf_consume(&c->in, c->in_pos);
        c->in_pos = 0;
    }
    buf_reserve(&c->in, READ_CHUNK);
    if (c->fd < 0) {                    /* scripted */
        size_t left = c->script_len - c->script_pos;

        if (left == 0)
            return mbx_break(m, MAILBOX_ERROR, err, "connection closed by the server while %s",
                             doing);
        got = left < READ_CHUNK ? left : READ_CHUNK;
        memcpy(c->in.data + c->in.len, c->script + c->script_pos, got);
        c->script_pos += got;
        c->in.len += got;
        c->in.data[c->in.len] = 0;
        return MAILBOX_OK;
    }
    for (;;) {
        if (c->tls != NULL) {
            tls_status st = tls_read(c->tls, c->in.data + c->in.len, READ_CHUNK, &got);

            if (st == TLS_OK)
                break;
            if (st == TLS_CLOSED)
                return mbx_break(m, MAILBOX_ERROR, err,
                                 "connection closed by the server while %s", doing);
            if (st == TLS_FAILED)
                return mbx_break(m, MAILBOX_ERROR, err, "TLS failure while %s: %s", doing,
                                 tls_error(c->tls));
            w = wait_tls(c->fd, st, deadline);
        } else {
            n = recv(c->fd, c->in.data + c->in.len, READ_CHUNK, 0);
            if (n > 0) {
                got = (size_t)n;
                break;
            }
            if (n == 0)
                return mbx_break(m, MAILBOX_ERROR, err,
                                 "connection closed by the server while %s", doing);
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return mbx_break(m, MAILBOX_ERROR, err, "read error while %s: %s", doing,
                                 strerror(errno));
            w = wait_fd(c->fd, POLLIN, deadline);
        }
        if (w == 0)
            return timed_out(m, deadline, doing, err);
        if (w < 0)
            return mbx_break(m, MAILBOX_ERROR, err, "poll failed while %s: %s", doing,
                             strerror(errno));
    }
    c->in.len += got;
    c->in.data[c->in.len] = 0;
    return MAILBOX_OK;
}

mailbox_status mbx_read_line_capped(mailbox_t *m, size_t max, buf_t *line, const char *doing,
                                    char **err, bool *too_long)
{
    mbx_conn *c = &m->conn;
    int64_t deadline = deadline_from_now(c);
    size_t scanned = 0;                 /* bytes after in_pos known to hold no LF */

    if (too_long != NULL)
        *too_long = false;
    if (m->broken)
        return mbx_fail(m, MAILBOX_ERROR, err, "session already failed");
    for (;;) {
        const char *start = c->in.data + c->in_pos;
        size_t avail = c->in.len - c->in_pos;
        const char *lf = avail > scanned ? memchr(start + scanned, '\n', avail - scanned) : NULL;

        if (lf != NULL) {
            size_t len = (size_t)(lf - start) + 1;

            if (len > max)
                break;
            c->in_pos += len;
            len--;                      /* the LF */
            if (len > 0 && start[len - 1] == '\r')
                len--;
            buf_reset(line);
            buf_append(line, start, len);
            return MAILBOX_OK;
        }
        scanned = avail;
        if (avail >= max)
            break;
        if (conn_fill(m, deadline, doing, err) != MAILBOX_OK)
            return MAILBOX_ERROR;
    }
    if (too_long != NULL) {
        *too_long = true;
        m->broken = true;
        return MAILBOX_ERROR;
    }
    return mbx_break(m, MAILBOX_ERROR, err, "line too long (more than %zu bytes) while %s",
                     max, doing);
}

mailbox_status mbx_read_line(mailbox_t *m, size_t max, buf_t *line, const char *doing,
                             char **err)
{
    return mbx_read_line_capped(m, max, line, doing, err, NULL);
}

mailbox_status mbx_read_bytes(mailbox_t *m, size_t n, buf_t *out, const char *doing,
                              char **err)
{
    mbx_conn *c = &m->conn;

    if (m->broken)
        return mbx_fail(m, MAILBOX_ERROR, err, "session already failed");
    while (n > 0) {
        size_t avail = c->in.len - c->in_pos, take = avail < n ? avail : n;

        if (take > 0) {
            buf_append(out, c->in.data + c->in_pos, take);
            c->in_pos += take;
            n -= take;
            continue;
        }
        if (conn_fill(m, deadline_from_now(c), doing, err) != MAILBOX_OK)
            return MAILBOX_ERROR;
    }
    return MAILBOX_OK;
}

size_t mbx_buffered(const mailbox_t *m)
{
    return m->conn.in.len - m->conn.in_pos;
}

/* ----------------------------------------------------------------- writes */

mailbox_status mbx_write(mailbox_t *m, const void *data, size_t len, const char *doing,
                         char **err)
{
    mbx_conn *c = &m->conn;
    int64_t deadline = deadline_from_now(c);
    const char *p = data;
    int w;

    if (m->broken)
        return mbx_fail(m, MAILBOX_ERROR, err, "session already failed");
    if (c->fd < 0)                      /* scripted: nobody listens */
        return MAILBOX_OK;
    while (len > 0) {
        size_t put = 0;

        if (c->tls != NULL) {
            tls_status st = tls_write(c->tls, p, len, &put);

            if (st == TLS_OK) {
                p += put;
                len -= put;
                continue;
            }
            if (st == TLS_CLOSED || st == TLS_FAILED)
                return mbx_break(m, MAILBOX_ERROR, err, "TLS failure while %s: %s", doing,
                                 tls_error(c->tls));
            w = wait_tls(c->fd, st, deadline);
        } else {
            ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

            if (n > 0) {
                p += n;
                len -= (size_t)n;
                continue;
            }
            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
                return mbx_break(m, MAILBOX_ERROR, err, "write error while %s: %s", doing,
                                 strerror(errno));
            w = wait_fd(c->fd, POLLOUT, deadline);
        }
        if (w == 0)
            return timed_out(m, deadline, doing, err);
        if (w < 0)
            return mbx_break(m, MAILBOX_ERROR, err, "poll failed while %s: %s", doing,
                             strerror(errno));
    }
    return MAILBOX_OK;
}

/* -------------------------------------------------------------------- TLS */

mailbox_status mbx_start_tls(mailbox_t *m, char **err)
{
    mbx_conn *c = &m->conn;
    int64_t deadline = deadline_from_now(c);
    char *why = NULL;
    tls_status st;
    int w;

    if (c->fd < 0)
        return mbx_break(m, MAILBOX_ERROR, err, "no TLS on a scripted connection");
    /* bytes that came before the handshake would be taken as if they
     * came over TLS: a man in the middle's injection (CVE-2011-0411) */
    if (mbx_buffered(m) > 0)
        return mbx_break(m, MAILBOX_ERROR, err,
                         "the server sent data ahead of the TLS handshake");
    if ((c->tls_ctx = tls_client_ctx_new(m->ca_file, &why)) == NULL) {
        mbx_break(m, MAILBOX_ERROR, err, "%s", why);
        xfree(&why);
        return MAILBOX_ERROR;
    }
    c->tls = tls_conn_new(c->tls_ctx, c->fd, m->host);
    while ((st = tls_handshake(c->tls)) != TLS_OK) {
        if (st == TLS_FAILED || st == TLS_CLOSED)
            return mbx_break(m, MAILBOX_ERROR, err, "TLS handshake failed: %s",
                             tls_error(c->tls));
        if ((w = wait_tls(c->fd, st, deadline)) == 0)
            return timed_out(m, deadline, "in the TLS handshake", err);
        if (w < 0)
            return mbx_break(m, MAILBOX_ERROR, err, "poll failed in the TLS handshake: %s",
                             strerror(errno));
    }
    if (m->verify && !tls_verified(c->tls))
        return mbx_break(m, MAILBOX_ERROR, err,
                         "certificate verification failed for %s (%s); "
                         "trust its CA (ca_file) or turn verification off for this account",
                         m->host, tls_error(c->tls));
    return MAILBOX_OK;
}

/* ------------------------------------------------------------- connecting */

/* connect_one - a non-blocking connect to ai before deadline: the fd or
 * -1 with *why set (static text or strerror). */
static int connect_one(const struct addrinfo *ai, int64_t deadline, const char **why)
{
    int fd, w, soerr = 0;
    socklen_t sl = sizeof(soerr);

    fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
        *why = strerror(errno);
        return -1;
    }
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
        return fd;
    if (errno != EINPROGRESS) {
        *why = strerror(errno);
        close(fd);
        return -1;
    }
    w = wait_fd(fd, POLLOUT, deadline);
    if (w <= 0) {
        *why = w == 0 ? "connection timed out" : strerror(errno);
        close(fd);
        return -1;
    }
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0 || soerr != 0) {
        *why = strerror(soerr != 0 ? soerr : errno);
        close(fd);
        return -1;
    }
    return fd;
}

/* conn_connect - the first address of host:port that answers. */
static mailbox_status conn_connect(mailbox_t *m, char **err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL, *ai;
    char port[16];
    const char *why = "no address";
    int rc;

    snprintf(port, sizeof(port), "%u", m->port);
    if ((rc = getaddrinfo(m->host, port, &hints, &res)) != 0)
        return mbx_break(m, MAILBOX_ERROR, err, "cannot resolve %s: %s", m->host,
                         gai_strerror(rc));
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        if ((m->conn.fd = connect_one(ai, deadline_from_now(&m->conn), &why)) >= 0)
            break;
    }
    freeaddrinfo(res);
    if (m->conn.fd < 0)
        return mbx_break(m, MAILBOX_ERROR, err, "cannot connect: %s", why);
    return MAILBOX_OK;
}

/* ---------------------------------------------------------------- session */

static char *dup_or_null(const char *s)
{
    return s != NULL ? xstrdup(s) : NULL;
}

/* session_new - the session's own copy of srv, not connected. */
static mailbox_t *session_new(const mailbox_server *srv)
{
    mailbox_t *m = xcalloc(1, sizeof(*m));

    m->ops = srv->protocol == MAILBOX_IMAP ? &mbx_imap_ops : &mbx_pop3_ops;
    m->protocol = srv->protocol;
    m->tls = srv->tls;
    m->verify = srv->verify;
    m->port = srv->port;
    m->host = xstrdup(srv->host != NULL ? srv->host : "");
    m->ca_file = dup_or_null(srv->ca_file);
    m->user = xstrdup(srv->user != NULL ? srv->user : "");
    m->password = xstrdup(srv->password != NULL ? srv->password : "");
    m->folder = xstrdup(srv->folder != NULL && *srv->folder ? srv->folder : "INBOX");
    m->where = xasprintf("%s %s:%u", srv->protocol == MAILBOX_IMAP ? "imap" : "pop3",
                         m->host, m->port);
    m->conn.fd = -1;
    m->conn.timeout_ms = srv->timeout_ms > 0 ? srv->timeout_ms : MAILBOX_TIMEOUT_DEFAULT_MS;
    if (m->conn.timeout_ms > TIMEOUT_CAP_MS)
        m->conn.timeout_ms = TIMEOUT_CAP_MS;
    m->conn.session_ms = srv->session_ms > 0 ? srv->session_ms : 0;
    if (m->conn.session_ms > TIMEOUT_CAP_MS)
        m->conn.session_ms = TIMEOUT_CAP_MS;
    m->conn.session_end = m->conn.session_ms > 0 ? time_mono_ms() + m->conn.session_ms
                                                 : INT64_MAX;
    buf_init(&m->conn.in);
    return m;
}

static void index_clear(mailbox_t *m)
{
    for (size_t i = 0; i < m->n_index; i++)
        xfree(&m->index[i].uid);
    xfree(&m->index);
    m->n_index = 0;
}

/* session_free - close the connection and free everything. */
static void session_free(mailbox_t **mp)
{
    mailbox_t *m = *mp;

    if (m->ops->free_priv != NULL)
        m->ops->free_priv(m);
    if (m->conn.tls != NULL) {
        if (!m->broken)
            tls_shutdown(m->conn.tls);
        tls_conn_free(&m->conn.tls);
    }
    tls_ctx_free(&m->conn.tls_ctx);
    if (m->conn.fd >= 0)
        close(m->conn.fd);
    buf_free(&m->conn.in);
    index_clear(m);
    if (m->password != NULL)
        explicit_bzero(m->password, strlen(m->password));
    if (m->secret_b64 != NULL)
        explicit_bzero(m->secret_b64, strlen(m->secret_b64));
    xfree(&m->host);
    xfree(&m->ca_file);
    xfree(&m->user);
    xfree(&m->password);
    xfree(&m->folder);
    xfree(&m->where);
    xfree(&m->secret_b64);
    xfree(mp);
}

/* session_login - TLS first when implicit, then the protocol's open. */
static mailbox_t *session_login(mailbox_t *m, mailbox_status *status, char **err)
{
    mailbox_status st = MAILBOX_OK;

    if (m->tls == MAILBOX_TLS_IMPLICIT)
        st = mbx_start_tls(m, err);
    if (st == MAILBOX_OK)
        st = m->ops->open(m, err);
    if (status != NULL)
        *status = st;
    if (st != MAILBOX_OK) {
        m->broken = true;               /* no polite goodbye on a failed open */
        session_free(&m);
        return NULL;
    }
    return m;
}

mailbox_t *mailbox_open(const mailbox_server *srv, mailbox_status *status, char **err)
{
    mailbox_t *m = session_new(srv);

    if (conn_connect(m, err) != MAILBOX_OK) {
        if (status != NULL)
            *status = MAILBOX_ERROR;
        session_free(&m);
        return NULL;
    }
    return session_login(m, status, err);
}

mailbox_t *mailbox_open_scripted(const mailbox_server *srv, const char *script, size_t len,
                                 mailbox_status *status, char **err)
{
    mailbox_t *m = session_new(srv);

    m->conn.script = script;
    m->conn.script_len = len;
    return session_login(m, status, err);
}

/* entry_cmp - index order: by uid. */
static int entry_cmp(const void *a, const void *b)
{
    return strcmp(((const mbx_entry *)a)->uid, ((const mbx_entry *)b)->uid);
}

mailbox_status mailbox_list(mailbox_t *m, mailbox_msg **msgs, size_t *n,
                            char uidvalidity[32], char **err)
{
    mailbox_status st;

    *msgs = NULL;
    *n = 0;
    uidvalidity[0] = 0;
    if (m->broken)
        return mbx_fail(m, MAILBOX_ERROR, err, "session already failed");
    index_clear(m);
    if ((st = m->ops->list(m, msgs, n, uidvalidity, err)) != MAILBOX_OK) {
        mailbox_msgs_free(msgs, *n);
        *n = 0;
        index_clear(m);
        return st;
    }
    if (m->n_index > 1)                 /* index is NULL for an empty mailbox */
        qsort(m->index, m->n_index, sizeof(*m->index), entry_cmp);
    for (size_t i = 1; i < m->n_index; i++)
        if (strcmp(m->index[i - 1].uid, m->index[i].uid) == 0) {
            char shown[80];

            mbx_shown(shown, sizeof(shown), m->index[i].uid, strlen(m->index[i].uid));
            mailbox_msgs_free(msgs, *n);
            *n = 0;
            index_clear(m);
            return mbx_break(m, MAILBOX_ERROR, err, "the server lists uid %s twice", shown);
        }
    return MAILBOX_OK;
}

void mailbox_msgs_free(mailbox_msg **msgs, size_t n)
{
    if (msgs == NULL || *msgs == NULL)
        return;
    for (size_t i = 0; i < n; i++)
        xfree(&(*msgs)[i].uid);
    xfree(msgs);
}

/* lookup - the listing's entry for msg, or NULL. */
static const mbx_entry *lookup(const mailbox_t *m, const mailbox_msg *msg)
{
    mbx_entry key = {.uid = msg->uid};

    if (msg->uid == NULL || m->n_index == 0)
        return NULL;
    return bsearch(&key, m->index, m->n_index, sizeof(*m->index), entry_cmp);
}

mailbox_status mailbox_fetch(mailbox_t *m, const mailbox_msg *msg, size_t max, buf_t *out,
                             char **err)
{
    const mbx_entry *e;
    size_t old_len = out->len;
    mailbox_status st;
    char shown[80];

    if (m->broken)
        return mbx_fail(m, MAILBOX_ERROR, err, "session already failed");
    if ((e = lookup(m, msg)) == NULL)
        return mbx_fail(m, MAILBOX_GONE, err, "uid %s is not in the listing",
                        msg->uid != NULL ? mbx_shown(shown, sizeof(shown), msg->uid,
                                                     strlen(msg->uid)) : "(null)");
    if (e->size > max)
        return mbx_fail(m, MAILBOX_TOO_BIG, err, "message uid %s has %zu bytes, more than %zu",
                        mbx_shown(shown, sizeof(shown), e->uid, strlen(e->uid)), e->size, max);
    if ((st = m->ops->fetch(m, e, max, out, err)) != MAILBOX_OK) {
        out->len = old_len;
        if (out->data != NULL)
            out->data[old_len] = 0;
    }
    return st;
}

mailbox_status mailbox_delete(mailbox_t *m, const mailbox_msg *msg, char **err)
{
    const mbx_entry *e;
    char shown[80];

    if (m->broken)
        return mbx_fail(m, MAILBOX_ERROR, err, "session already failed");
    if ((e = lookup(m, msg)) == NULL)
        return mbx_fail(m, MAILBOX_GONE, err, "uid %s is not in the listing",
                        msg->uid != NULL ? mbx_shown(shown, sizeof(shown), msg->uid,
                                                     strlen(msg->uid)) : "(null)");
    return m->ops->del(m, e, err);
}

mailbox_status mailbox_close(mailbox_t **mp, bool commit, char **err)
{
    mailbox_status st;

    if (mp == NULL || *mp == NULL)
        return MAILBOX_OK;
    st = (*mp)->ops->finish(*mp, commit, err);
    session_free(mp);
    return st;
}

bool mailbox_broken(const mailbox_t *m)
{
    return m->broken;
}
