/* maildir.c - one message into one Maildir (see maildir.h).  A file in
 * tmp/ is named "SECONDS.M<usec>P<pid>Q<n>.HOST", the Maildir spec's
 * unique name; in new/ it is "ARRIVAL.Q<queue id>R<recipient>.HOST" when
 * the caller gives a stable id (queue ids are unique across hosts and
 * restarts), so that link(2) into new/ fails with EEXIST for a copy an
 * earlier, crashed attempt already delivered.  Both end with Dovecot's
 * ",S=<size>" (the file's size, so Dovecot need not stat).  A Maildir++
 * folder is the directory ".NAME" inside the Maildir, itself a Maildir
 * with an empty "maildirfolder" file (the marker Dovecot and Courier
 * write). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <unistd.h>
#include "buf.h"
#include "fsutil.h"
#include "header_skip.h"
#include "maildir.h"
#include "subject_tag.h"
#include "xalloc.h"

#define MAILDIR_CHUNK (64 * 1024)   /* bytes converted and written at a time */
#define MAILDIR_FOLDER_MAX 200      /* longest folder name */
#define MAILDIR_FOLDER_MARKER "maildirfolder"

static pthread_once_t maildir_once = PTHREAD_ONCE_INIT;
static char maildir_host[256];
static unsigned long maildir_counter;

/* maildir_host_init - the host part of names, with '/' and ':' encoded
 * as the spec asks (\057, \072). */
static void maildir_host_init(void)
{
    char raw[200];
    if (gethostname(raw, sizeof raw) != 0 || raw[0] == '\0')
        strcpy(raw, "localhost");
    raw[sizeof raw - 1] = '\0';
    size_t o = 0;
    for (const char *p = raw; *p && o + 5 < sizeof maildir_host; p++) {
        if (*p == '/')
            o += (size_t)snprintf(maildir_host + o, 5, "\\057");
        else if (*p == ':')
            o += (size_t)snprintf(maildir_host + o, 5, "\\072");
        else if (*p == ',')
            o += (size_t)snprintf(maildir_host + o, 5, "\\054");
        else
            maildir_host[o++] = *p;
    }
    maildir_host[o] = '\0';
}

bool maildir_mailbox_safe(const char *mailbox)
{
    const char *slash = strchr(mailbox, '/');
    if (!slash || slash == mailbox || slash[1] == '\0')
        return false;
    if (strchr(slash + 1, '/') || mailbox[0] == '.' || slash[1] == '.')
        return false;
    return true;
}

bool maildir_folder_valid(const char *folder)
{
    size_t n = strlen(folder);
    if (n == 0 || n > MAILDIR_FOLDER_MAX || folder[0] == '.' || folder[n - 1] == '.'
        || strstr(folder, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (folder[i] < 0x20 || folder[i] >= 0x7f || folder[i] == '/')
            return false;
    return true;
}

/* maildir_lf_len - size of data once CRLF became LF. */
static size_t maildir_lf_len(const char *data, size_t len)
{
    size_t n = len;
    for (const char *p = data, *end = data + len;
         (p = memchr(p, '\r', (size_t)(end - p))) != NULL; p++)
        if (p + 1 < end && p[1] == '\n')
            n--;
    return n;
}

/* maildir_write_lf - write data with CRLF turned into LF, a chunk at a
 * time.  Returns 0 or -1 with errno. */
static int maildir_write_lf(int fd, const char *data, size_t len, char *chunk)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '\r' && i + 1 < len && data[i + 1] == '\n')
            continue;
        chunk[o++] = data[i];
        if (o == MAILDIR_CHUNK) {
            if (fs_write_all(fd, chunk, o) != 0)
                return -1;
            o = 0;
        }
    }
    return o ? fs_write_all(fd, chunk, o) : 0;
}

/* maildir_trace_line - "NAME: <addr>\n" (or "NAME: addr\n" when not
 * bracketed, as Postfix and Dovecot write Delivered-To) with any byte that
 * could break the header (CR, LF, controls) made harmless. */
static void maildir_trace_line(buf_t *b, const char *name, const char *addr,
                               bool bracketed)
{
    buf_printf(b, "%s: %s", name, bracketed ? "<" : "");
    for (const unsigned char *p = (const unsigned char *)addr; *p; p++)
        buf_append_char(b, (*p < 0x20 || *p == 0x7f) ? '?' : (char)*p);
    buf_append_str(b, bracketed ? ">\n" : "\n");
}

/* maildir_head - the trace fields correio writes first. */
static void maildir_head(buf_t *head, const maildir_msg *m)
{
    maildir_trace_line(head, "Return-Path", m->sender, true);
    maildir_trace_line(head, "Delivered-To", m->recipient, false);
}

/* maildir_body_pieces - the pieces of the client's bytes to write (its
 * header section less the dropped fields, the spam tag spliced into its
 * Subject, then the rest).  The pieces of the body start and end at line
 * boundaries and the tag holds no CR, so converting CRLF per piece is
 * the same as converting the whole.  *pieces is malloc'ed (or NULL);
 * the tag's text is in *plan (free with subject_tag_plan_free). */
static size_t maildir_body_pieces(const maildir_msg *m, subject_tag_plan *plan,
                                  struct iovec **pieces)
{
    header_range *keep = NULL;
    size_t len = m->body != NULL ? m->body_len : 0;
    size_t n_keep = header_skip_ranges(m->body, len, m->drop_headers, m->n_drop_headers, &keep);

    *plan = (subject_tag_plan){0};
    if (m->subject_tag && m->subject_tag[0])
        subject_tag_plan_make(m->body, len, m->subject_tag, plan);
    size_t n = subject_tag_pieces(m->body, keep, n_keep, plan, pieces);
    xfree(&keep);
    return n;
}

size_t maildir_msg_size(const maildir_msg *m)
{
    buf_t head = BUF_INIT;
    maildir_head(&head, m);
    size_t size = head.len;
    for (size_t i = 0; i < m->n_headers; i++)
        size += maildir_lf_len((const char *)m->headers[i].data, m->headers[i].len);
    subject_tag_plan plan;
    struct iovec *pieces;
    size_t n_pieces = maildir_body_pieces(m, &plan, &pieces);
    for (size_t i = 0; i < n_pieces; i++)
        size += maildir_lf_len(pieces[i].iov_base, pieces[i].iov_len);
    xfree(&pieces);
    subject_tag_plan_free(&plan);
    buf_free(&head);
    return size;
}

/* maildir_value_is - is the field value v[0..n) (unfolded: CR, LF and
 * folding white space skipped; angle brackets allowed) the address? */
static bool maildir_value_is(const char *v, size_t n, const char *addr)
{
    buf_t b = BUF_INIT;
    bool same;

    for (size_t i = 0; i < n; i++)
        if (v[i] != '\r' && v[i] != '\n')
            buf_append_char(&b, v[i]);
    buf_append(&b, "", 0);
    char *s = b.data;
    size_t len = b.len;
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len >= 2 && s[0] == '<' && s[len - 1] == '>')
        s++, len -= 2;
    same = len == strlen(addr) && strncasecmp(s, addr, len) == 0;
    buf_free(&b);
    return same;
}

/* maildir_scan_fields - look through data[0..len), header fields with CRLF
 * (or LF) ends, for Delivered-To: addr, stopping at an empty line when
 * stop_at_empty.  Sets *ended when that empty line was seen. */
static bool maildir_scan_fields(const char *data, size_t len, const char *addr,
                                bool *ended)
{
    static const char name[] = "delivered-to";
    const size_t nl = sizeof name - 1;
    size_t pos = 0;

    while (pos < len) {
        const char *line = data + pos;
        const char *eol = memchr(line, '\n', len - pos);
        size_t end = eol ? (size_t)(eol - data) + 1 : len;
        size_t ll = end - pos;
        if (ll == 1 || (ll == 2 && line[0] == '\r')) {
            *ended = true;                     /* the empty line: body next */
            return false;
        }
        /* the field runs on over continuation lines */
        size_t fend = end;
        while (fend < len && (data[fend] == ' ' || data[fend] == '\t')) {
            const char *nx = memchr(data + fend, '\n', len - fend);
            fend = nx ? (size_t)(nx - data) + 1 : len;
        }
        if (ll > nl && strncasecmp(line, name, nl) == 0) {
            size_t i = nl;
            while (pos + i < fend && (line[i] == ' ' || line[i] == '\t'))
                i++;
            if (pos + i < fend && line[i] == ':'
                && maildir_value_is(line + i + 1, fend - pos - i - 1, addr))
                return true;
        }
        pos = fend;
    }
    return false;
}

bool maildir_delivered_to_loop(const maildir_msg *m)
{
    bool ended = false;

    if (!m->recipient || !m->recipient[0])
        return false;
    for (size_t i = 0; i < m->n_headers; i++)
        if (maildir_scan_fields((const char *)m->headers[i].data, m->headers[i].len,
                                m->recipient, &ended))
            return true;
    ended = false;
    return maildir_scan_fields(m->body, m->body_len, m->recipient, &ended);
}

static int maildir_fail(char *err, size_t errsize, const char *what, int e)
{
    snprintf(err, errsize, "%s: %s", what, strerror(e));
    errno = e;
    return -1;
}

/* maildir_create - make DIR/cur, DIR/new, DIR/tmp: tmp/ last, so that a
 * worker that finds tmp/ (and writes into it) also finds new/.  A folder
 * gets its maildirfolder marker before tmp/ too. */
static int maildir_create(const char *dir, bool folder)
{
    static const char *const subs[] = {"cur", "new", "tmp"};
    for (size_t i = 0; i < 3; i++) {
        if (folder && i == 2) {
            char *marker = xasprintf("%s/%s", dir, MAILDIR_FOLDER_MARKER);
            int fd = open(marker, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
            int e = errno;
            xfree(&marker);
            if (fd < 0) {
                errno = e;
                return -1;
            }
            close(fd);
        }
        char *p = xasprintf("%s/%s", dir, subs[i]);
        int rc = fs_mkdir_p(p, 0700);
        int e = errno;
        xfree(&p);
        if (rc != 0) {
            errno = e;
            return -1;
        }
    }
    return 0;
}

int maildir_deliver(const char *mail_root, const char *mailbox,
                    const maildir_msg *m, bool *duplicate,
                    char *err, size_t errsize)
{
    if (duplicate)
        *duplicate = false;
    pthread_once(&maildir_once, maildir_host_init);
    if (!maildir_mailbox_safe(mailbox)) {
        snprintf(err, errsize, "unsafe mailbox name");
        return MAILDIR_UNSAFE;
    }
    bool in_folder = m->folder && m->folder[0];
    if (in_folder && !maildir_folder_valid(m->folder)) {
        snprintf(err, errsize, "unsafe folder name");
        return MAILDIR_UNSAFE;
    }

    buf_t head = BUF_INIT;
    maildir_head(&head, m);
    size_t size = maildir_msg_size(m);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    unsigned long q = __atomic_add_fetch(&maildir_counter, 1, __ATOMIC_RELAXED);
    char *root = xasprintf("%s/%s", mail_root, mailbox);
    char *dir = in_folder ? xasprintf("%s/.%s", root, m->folder) : xstrdup(root);
    char *name = xasprintf("%lld.M%06ldP%ldQ%lu.%s,S=%zu", (long long)tv.tv_sec,
                           (long)tv.tv_usec, (long)getpid(), q, maildir_host, size);
    char *tmp = xasprintf("%s/tmp/%s", dir, name);
    char *newdir = xasprintf("%s/new", dir);
    char *dst = m->stable_id
        ? xasprintf("%s/%lld.Q%s.%s,S=%zu", newdir, m->arrival, m->stable_id, maildir_host, size)
        : xasprintf("%s/%s", newdir, name);
    char *chunk = NULL;
    struct iovec *pieces = NULL;
    subject_tag_plan plan = {0};
    int rc = -1, fd;

    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0 && errno == ENOENT) {            /* first use: make the Maildir */
        if ((in_folder && maildir_create(root, false) != 0)
            || maildir_create(dir, in_folder) != 0) {
            maildir_fail(err, errsize, "cannot create maildir", errno);
            goto out;
        }
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    }
    if (fd < 0) {
        maildir_fail(err, errsize, "cannot create file", errno);
        goto out;
    }

    chunk = xmalloc(MAILDIR_CHUNK);
    bool ok = fs_write_all(fd, head.data, head.len) == 0;
    for (size_t i = 0; ok && i < m->n_headers; i++)
        ok = maildir_write_lf(fd, (const char *)m->headers[i].data,
                              m->headers[i].len, chunk) == 0;
    size_t n_pieces = maildir_body_pieces(m, &plan, &pieces);
    for (size_t i = 0; ok && i < n_pieces; i++)
        ok = maildir_write_lf(fd, pieces[i].iov_base, pieces[i].iov_len, chunk) == 0;
    if (!ok) {
        maildir_fail(err, errsize, "cannot write", errno);
    } else if (fsync(fd) != 0) {
        maildir_fail(err, errsize, "cannot fsync", errno);
        ok = false;
    }
    if (close(fd) != 0 && ok) {
        maildir_fail(err, errsize, "cannot write", errno);
        ok = false;
    }
    /* link, not rename: it never replaces a file that is already there */
    if (ok && link(tmp, dst) != 0) {
        if (errno == EEXIST && m->stable_id) {
            if (duplicate)
                *duplicate = true;
        } else {
            maildir_fail(err, errsize, "cannot link into new", errno);
            ok = false;
        }
    }
    {
        int e = errno;
        (void)unlink(tmp);
        errno = e;
    }
    if (!ok)
        goto out;
    /* The new name is durable only once new/ itself is on disk. */
    if (fs_fsync_dir(newdir) != 0) {
        maildir_fail(err, errsize, "cannot fsync new", errno);
        goto out;   /* the file is in new/; a retry may duplicate, never lose */
    }
    rc = 0;

out:
    buf_free(&head);
    xfree(&chunk);
    xfree(&pieces);
    subject_tag_plan_free(&plan);
    xfree(&root);
    xfree(&dir);
    xfree(&name);
    xfree(&tmp);
    xfree(&newdir);
    xfree(&dst);
    return rc;
}
