/* users.h - the users map, in Dovecot's passwd-file format.
 *
 *   address:{SCHEME}hash:uid:gid:gecos:home:shell:extra_fields
 * Only the first two fields are required.  Lines starting with '#' and
 * empty lines are skipped.  Lookups are case-insensitive on the address.
 * The same file serves a Dovecot beside correio.
 */
#ifndef CORREIO_USERS_H
#define CORREIO_USERS_H

#include <stdbool.h>
#include <stddef.h>

typedef struct users users_t;

typedef struct user_entry {
    const char *address;   /* lower-cased */
    const char *password;  /* "{SCHEME}hash", may be "" */
    const char *home;      /* may be "" */
    const char *extra;     /* Dovecot's extra fields, "name=value ...", may be "" */
} user_entry;

/* users_open - load the file; a missing file is an empty map.  A line
 * that does not parse is logged (file:line) and skipped. */
users_t *users_open(const char *path);
/* users_refresh - reload if the file changed on disk (checked at most
 * once a second); returns true if it reloaded. */
bool users_refresh(users_t *u);
const user_entry *users_lookup(users_t *u, const char *address);
unsigned users_count(const users_t *u);
void users_close(users_t **u);
/* users_extra_field - the value of the extra field name ("userdb_quota_rule")
 * of e into out; false when e has none. */
bool users_extra_field(const user_entry *e, const char *name, char *out, size_t size);

/* users_hash_password - "{CRYPT}" + a yescrypt hash from libxcrypt with a
 * fresh salt; malloc'ed. */
char *users_hash_password(const char *password);
/* users_verify_password - does password match the entry's stored hash?
 * Understands {CRYPT}, {SHA512-CRYPT}, {SHA256-CRYPT}, {BLF-CRYPT} and
 * {PLAIN}. */
bool users_verify_password(const user_entry *e, const char *password);

/* users_file_set - add or replace address's line in the file at path with
 * the given password hash, atomically (write a temporary file, fsync,
 * rename).  Returns 0, or -1 with *err malloc'ed. */
int users_file_set(const char *path, const char *address, const char *hash,
                   char **err);

#endif
