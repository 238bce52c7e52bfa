/* accounts.h - the remote accounts file (fetch_accounts_file, relative
 * to the configuration directory; default /etc/correio/fetch_accounts).
 *
 * It holds passwords, so it is refused when group or other may read it
 * ("FILE: must not be readable by others (chmod 600)").  A missing file
 * is no accounts.  One block per account; a block starts with
 * `account NAME` and ends at the next `account` line or the end of the
 * file.  Inside it, one `keyword value` per line (indenting is
 * optional); `#` starts a comment line; blank lines are skipped.
 *
 *   account work                     # NAME: letters, digits, . _ - @ (64 max)
 *       server     imap.example.com  # required
 *       protocol   imap              # imap | pop3 (required)
 *       tls        implicit          # implicit (default) | starttls | none
 *       port       993               # default 993/143 (imap), 995/110 (pop3)
 *       verify     yes               # check the server's certificate (default yes)
 *       ca_file    /etc/ssl/my-ca.pem   # default: the system's trust store
 *       user       alice@example.com # required
 *       password   s3cret words      # required; the rest of the line, verbatim
 *       folder     INBOX             # IMAP folder (default INBOX)
 *       forward_to alice@example.test   # local recipient (required)
 *       keep       yes               # leave messages on the server (default yes)
 *       interval   5m                # default fetch_interval (10s .. 1d)
 *       domain_pop example.test      # catch-all for this local domain (domain_pop.h)
 *       ignore_received_for yes      # Domain POP: skip Received "for" (default yes)
 *
 * Errors are "FILE:LINE: what is wrong"; the password never appears in
 * them.  The fetcher reads the file at start and on SIGHUP (a bad file
 * on reload keeps the accounts in use).
 */
#ifndef CORREIO_FETCHER_ACCOUNTS_H
#define CORREIO_FETCHER_ACCOUNTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mailbox.h"

#define ACCOUNT_NAME_MAX 64

typedef struct fetch_account {
    char           *name;
    mailbox_server  srv;            /* its strings belong to the account */
    char           *forward_to;
    bool            keep;           /* leave on the server */
    int64_t         interval_ms;
    char           *domain_pop;     /* NULL: an ordinary account */
    bool            ignore_received_for;
    int             line;           /* of its `account` line */
} fetch_account;

typedef struct fetch_accounts {
    fetch_account *v;
    size_t         n;
    char          *path;
} fetch_accounts_t;

/* accounts_load - parse path.  default_interval_ms and timeout_ms come
 * from fetch_interval and fetch_timeout; relative ca_file names are made
 * absolute against config_dir.  NULL with *err (malloc'd) on any error;
 * a missing file gives an empty set. */
fetch_accounts_t *accounts_load(const char *path, const char *config_dir,
                                int64_t default_interval_ms, int64_t timeout_ms, char **err);
void accounts_free(fetch_accounts_t **a);
/* accounts_find - the account called name, or NULL. */
const fetch_account *accounts_find(const fetch_accounts_t *a, const char *name);
/* account_copy - a deep copy of src into dst (for a worker); free it with
 * account_clear. */
void account_copy(fetch_account *dst, const fetch_account *src);
/* account_clear - free what the account owns (the password is wiped
 * first); the struct itself is the caller's. */
void account_clear(fetch_account *ac);

#endif
