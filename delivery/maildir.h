/* maildir.h - delivering one message into one Maildir, the way the
 * Maildir spec (cr.yp.to/proto/maildir.html) says: a unique name in tmp/,
 * write, fsync, rename into new/, fsync new/.  Files hold LF line ends,
 * as Postfix's virtual(8) and Dovecot write them.  Thread-safe: the
 * delivery workers call it in parallel. */
#ifndef CORREIO_DELIVERY_MAILDIR_H
#define CORREIO_DELIVERY_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include "wire.h"

/* What goes into the file, in this order: Return-Path, Delivered-To, the
 * header fields correio's stages prepended, the client's bytes.  All of
 * it is only read. */
typedef struct maildir_msg {
    const char                *sender;     /* reverse path, "" for <> */
    const char                *recipient;  /* for Delivered-To */
    const ProtobufCBinaryData *headers;    /* each a complete field with CRLF */
    size_t                     n_headers;
    const void                *body;       /* CRLF line ends only */
    size_t                     body_len;
    /* When set, the same for every attempt at this message and recipient
     * (the queue id and recipient index): the file's name is then built
     * from it, so an attempt after a crash that finds the file already in
     * new/ does not write it twice.  NULL: a fresh unique name. */
    const char                *stable_id;
    long long                  arrival;    /* seconds, used with stable_id */
} maildir_msg;

/* maildir_deliver - write m into mail_root/mailbox/new/, creating the
 * Maildir (tmp, new, cur; mode 0700) on first use.  mailbox is
 * "domain/local" as the router made it; anything else that could leave
 * mail_root is refused.  Returns 0 when the file is durable in new/
 * (also when an earlier attempt had already put it there: *duplicate is
 * then set, when duplicate is not NULL);
 * -1 for a failure worth retrying, with a short reason ("cannot write:
 * No space left on device") in err and nothing left behind in tmp/; or
 * MAILDIR_UNSAFE when mailbox is refused (retrying cannot help). */
#define MAILDIR_UNSAFE (-2)
int maildir_deliver(const char *mail_root, const char *mailbox,
                    const maildir_msg *m, bool *duplicate,
                    char *err, size_t errsize);

/* maildir_mailbox_safe - is mailbox exactly "domain/local" with neither
 * part empty or starting with '.'? */
bool maildir_mailbox_safe(const char *mailbox);

#endif
