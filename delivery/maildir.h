/* maildir.h - delivering one message into one Maildir, the way the
 * Maildir spec (cr.yp.to/proto/maildir.html) says: a unique name in tmp/,
 * write, fsync, rename into new/, fsync new/.  Files hold LF line ends,
 * as Postfix's virtual(8) and Dovecot write them.  A message may go into
 * a Maildir++ folder instead of the inbox (folder "Junk": MAILDIR/.Junk/,
 * made with its maildirfolder marker file as Dovecot does).  Thread-safe:
 * the delivery workers call it in parallel. */
#ifndef CORREIO_DELIVERY_MAILDIR_H
#define CORREIO_DELIVERY_MAILDIR_H

#include <stdbool.h>
#include <stddef.h>
#include "wire.h"

/* What goes into the file, in this order: Return-Path, Delivered-To, the
 * header fields correio's stages prepended, the client's bytes (less the
 * fields of its header section named in drop_headers, with subject_tag
 * in its Subject).  All of it is only read. */
typedef struct maildir_msg {
    const char                *sender;     /* reverse path, "" for <> */
    const char                *recipient;  /* for Delivered-To */
    const ProtobufCBinaryData *headers;    /* each a complete field with CRLF */
    size_t                     n_headers;
    const void                *body;       /* CRLF line ends only */
    size_t                     body_len;
    /* Field names (any case) left out of the body's header section, as
     * Envelope.drop_headers; the prepended headers are never dropped. */
    const char *const         *drop_headers;
    size_t                     n_drop_headers;
    /* When set, the same for every attempt at this message and recipient
     * (the queue id and recipient index): the file's name is then built
     * from it, so an attempt after a crash that finds the file already in
     * new/ does not write it twice.  NULL: a fresh unique name. */
    const char                *stable_id;
    long long                  arrival;    /* seconds, used with stable_id */
    /* Maildir++ folder ("Junk", "Lists.correio"); NULL or "" is the inbox.
     * Must pass maildir_folder_valid. */
    const char                *folder;
    /* Spam tag written into the Subject (subject_tag.h), NULL or "" for
     * none. */
    const char                *subject_tag;
} maildir_msg;

/* maildir_deliver - write m into mail_root/mailbox/new/ (or, with a
 * folder, mail_root/mailbox/.FOLDER/new/), creating the Maildir (tmp, new,
 * cur; mode 0700) and the folder on first use.  mailbox is "domain/local"
 * as the router made it; anything else that could leave mail_root, and a
 * folder that is not maildir_folder_valid, is refused.  Returns 0 when
 * the file is durable in new/ (also when an earlier attempt had already
 * put it there: *duplicate is then set, when duplicate is not NULL);
 * -1 for a failure worth retrying, with a short reason ("cannot write:
 * No space left on device") in err and nothing left behind in tmp/; or
 * MAILDIR_UNSAFE when mailbox or folder is refused (retrying cannot
 * help). */
#define MAILDIR_UNSAFE (-2)
int maildir_deliver(const char *mail_root, const char *mailbox,
                    const maildir_msg *m, bool *duplicate,
                    char *err, size_t errsize);

/* maildir_mailbox_safe - is mailbox exactly "domain/local" with neither
 * part empty or starting with '.'? */
bool maildir_mailbox_safe(const char *mailbox);

/* maildir_folder_valid - can folder name a Maildir++ folder: 1 to 200
 * printable ASCII characters, no '/', no leading or trailing '.', no
 * "..". */
bool maildir_folder_valid(const char *folder);

/* maildir_msg_size - the size of the file maildir_deliver writes for m
 * (its S=), for quota checks before delivery. */
size_t maildir_msg_size(const maildir_msg *m);

/* maildir_delivered_to_loop - does m's header (the prepended fields and
 * the client's header section, up to the first empty line) hold a
 * Delivered-To: field whose value is m->recipient (case-insensitive)?
 * Then this message has been here before: a forwarding loop. */
bool maildir_delivered_to_loop(const maildir_msg *m);

#endif
