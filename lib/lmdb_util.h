/* lmdb_util.h - opening LMDB environments the same way in every stage.
 *
 * Each durable thing (ingress spool, delivery queue, router state, fetcher
 * state) is one LMDB environment in its own directory under
 * data_directory, owned by exactly one process.  Environments are opened
 * with full durability (a commit returns after fsync): correio's group
 * commit makes that cheap.
 */
#ifndef CORREIO_LMDB_UTIL_H
#define CORREIO_LMDB_UTIL_H

#include <lmdb.h>
#include <stdbool.h>
#include <stddef.h>

/* lmdb_env_open - create dir if needed and open the environment with
 * map_size bytes and up to max_dbs named databases.  A failure is fatal
 * (log_fatal names the directory and what to fix). */
MDB_env *lmdb_env_open(const char *dir, size_t map_size, unsigned max_dbs);
/* lmdb_env_open_shared - open an environment that one `correio` command
 * writes and every stage of a kind reads (the spam lists, the Bayes
 * database): writable creates dir; read-only finds no data.mdb and sets
 * *missing (when given) instead.  NULL and *err (malloc'd, naming dir and
 * what) on failure; what ("the lists") names the thing in messages. */
MDB_env *lmdb_env_open_shared(const char *dir, const char *what, bool writable,
                              size_t map_size, unsigned max_dbs, bool *missing, char **err);
/* lmdb_dbi_open - open (creating) a named database in its own write txn. */
MDB_dbi lmdb_dbi_open(MDB_env *env, const char *name);
/* lmdb_check - log_panic with what and mdb_strerror(rc) if rc != 0, for
 * calls that cannot fail unless correio has a bug. */
void lmdb_check(int rc, const char *what);

#endif
