/* quota.h - Maildir++ quota, in the form Dovecot's quota = maildir backend
 * reads and writes, so that correio and a Dovecot beside it agree on how
 * full a mailbox is.
 *
 * The file "maildirsize" in the Maildir's root holds a first line with the
 * limit ("10485760S"; Courier and Dovecot may add ",NNNC" for a message
 * count, which correio does not enforce), then one line "BYTES COUNT" per
 * change; the sum of those lines is the Maildir's use.  It is counted
 * again (new/ and cur/ of the inbox and of every ".Folder") when it is
 * missing, malformed, longer than 5120 bytes, or when its limit line is
 * not the current limit.  The recount is written to "maildirsize.lock"
 * (created exclusively, as Dovecot's lock) and renamed into place; a
 * delivery appends "SIZE 1" with O_APPEND.  Maildir++ is racy by design:
 * two deliveries at once may both pass the check.
 *
 * Per-user limits come from users_file (Dovecot's passwd-file): the extra
 * field userdb_quota_rule=*:storage=SIZE (SIZE in kilobytes, or with a
 * suffix B, k, M, G, T; 0 is no limit; also *:bytes=SIZE and *:ignore).
 * The table is process-wide and thread-safe: quota_users_configure (main
 * thread, at start and after a reload) names the file; the workers ask
 * quota_users_limit, which re-reads the file when it has changed (checked
 * at most once a second), through lib/users under a mutex (its reload
 * is not safe against concurrent readers).
 */
#ifndef CORREIO_DELIVERY_QUOTA_H
#define CORREIO_DELIVERY_QUOTA_H

#include <stdbool.h>
#include <stddef.h>

#define QUOTA_FILE          "maildirsize"
#define QUOTA_RECALC_SIZE   5120      /* Maildir++: recount a longer file */

/* quota_rule_parse - a Dovecot quota rule for all mailboxes ("*:storage=1G",
 * "*:storage=1048576" (kilobytes), "*:bytes=1000", "*:ignore",
 * "*:storage=none"): 0 with *limit in bytes (0: no limit), -1 when
 * malformed. */
int quota_rule_parse(const char *rule, unsigned long long *limit);

typedef enum {
    QUOTA_OK,           /* fits */
    QUOTA_OVER,         /* the Maildir is too full for it now */
    QUOTA_TOO_BIG,      /* larger than the whole quota: never fits */
    QUOTA_FAIL,         /* maildirsize cannot be read or counted */
} quota_status;

/* quota_check - may a message of size bytes go into the Maildir at root
 * under limit (bytes, > 0)?  Recounts maildirsize when needed (see above).
 * A Maildir that does not exist yet is empty.  *used gets the bytes in
 * use (when not NULL); QUOTA_FAIL puts a reason into err. */
quota_status quota_check(const char *root, unsigned long long limit, unsigned long long size,
                         unsigned long long *used, char *err, size_t errsize);

/* quota_add - record a delivered message of size bytes: append "SIZE 1"
 * to root/maildirsize when it exists; else, with a limit, count the
 * Maildir (the new message included) and write it.  0, or -1 with errno
 * (the delivery stands; the next check recounts). */
int quota_add(const char *root, unsigned long long limit, unsigned long long size);

/* quota_recalc - count root's messages (S= from the names, else stat)
 * into *bytes and *count and write maildirsize with limit.  0, or -1
 * with a reason in err. */
int quota_recalc(const char *root, unsigned long long limit, long long *bytes,
                 long long *count, char *err, size_t errsize);

/* quota_users_configure - use users_file at path for per-user limits
 * (NULL: none).  Main thread; the file is read now and when it changes. */
void quota_users_configure(const char *path);
/* quota_users_limit - the limit for the Maildir "domain/local" (the
 * user local@domain): users_file's rule when it has one, else dflt.  Any
 * thread. */
unsigned long long quota_users_limit(const char *mailbox, unsigned long long dflt);
/* quota_users_free - forget the table (at exit). */
void quota_users_free(void);

#endif
