/* lmdb_util.c - open LMDB environments the same way in every stage.
 *
 * Full durability: no MDB_NOSYNC / MDB_NOMETASYNC, so a commit returns
 * only after fsync.  MDB_NOTLS because stages use read transactions from
 * worker threads that are not tied to one transaction each.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "fsutil.h"
#include "lmdb_util.h"
#include "log.h"
#include "xalloc.h"

MDB_env *lmdb_env_open(const char *dir, size_t map_size, unsigned max_dbs)
{
    MDB_env *env;
    int rc;

    if (fs_mkdir_p(dir, 0700) < 0)
        log_fatal("cannot create LMDB directory %s: %m "
                  "(check data_directory and that its parent is writable by this user)", dir);
    if ((rc = mdb_env_create(&env)) != 0)
        log_fatal("mdb_env_create for %s: %s", dir, mdb_strerror(rc));
    if ((rc = mdb_env_set_mapsize(env, map_size)) != 0)
        log_fatal("LMDB %s: cannot set map size %zu: %s (lower the *_map_size parameter)",
                  dir, map_size, mdb_strerror(rc));
    if ((rc = mdb_env_set_maxdbs(env, max_dbs)) != 0)
        log_fatal("LMDB %s: cannot set max databases %u: %s", dir, max_dbs, mdb_strerror(rc));
    if ((rc = mdb_env_open(env, dir, MDB_NOTLS, 0600)) != 0) {
        const char *hint =
            rc == EACCES ? "make the directory and its files owned by mail_owner" :
            rc == ENOMEM ? "lower the *_map_size parameter or raise the address space limit" :
            rc == MDB_VERSION_MISMATCH || rc == MDB_INVALID
                ? "the files were not written by this LMDB version; restore from a backup" :
            "check the directory, free disk space and permissions";
        mdb_env_close(env);
        log_fatal("cannot open LMDB environment %s: %s (%s)", dir, mdb_strerror(rc), hint);
    }
    return env;
}

MDB_dbi lmdb_dbi_open(MDB_env *env, const char *name)
{
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc;

    if ((rc = mdb_txn_begin(env, NULL, 0, &txn)) != 0)
        log_fatal("LMDB: cannot begin a transaction to open database %s: %s",
                  name, mdb_strerror(rc));
    if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, &dbi)) != 0) {
        mdb_txn_abort(txn);
        log_fatal("LMDB: cannot open database %s: %s%s", name, mdb_strerror(rc),
                  rc == MDB_DBS_FULL ? " (max_dbs too low: a bug)" : "");
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        log_fatal("LMDB: cannot commit the creation of database %s: %s "
                  "(is the disk full?)", name, mdb_strerror(rc));
    return dbi;
}

void lmdb_check(int rc, const char *what)
{
    if (rc != 0)
        log_panic("%s: %s", what, mdb_strerror(rc));
}

MDB_env *lmdb_env_open_shared(const char *dir, const char *what, bool writable,
                              size_t map_size, unsigned max_dbs, bool *missing, char **err)
{
    MDB_env *env;
    struct stat st;
    int rc;

    if (missing)
        *missing = false;
    if (writable) {
        if (fs_mkdir_p(dir, 0700) < 0) {
            *err = xasprintf("cannot create %s: %s%s", dir, strerror(errno),
                             errno == EACCES ? " (a parent directory is closed to this user)" : "");
            return NULL;
        }
    } else {
        char *data = xasprintf("%s/data.mdb", dir);
        rc = stat(data, &st);
        xfree(&data);
        if (rc != 0 && errno == ENOENT) {
            if (missing)
                *missing = true;
            *err = xasprintf("%s: no %s yet", dir, what);
            return NULL;
        }
    }
    if ((rc = mdb_env_create(&env)) != 0) {
        *err = xasprintf("mdb_env_create for %s: %s", dir, mdb_strerror(rc));
        return NULL;
    }
    if ((rc = mdb_env_set_mapsize(env, map_size)) != 0
        || (max_dbs && (rc = mdb_env_set_maxdbs(env, max_dbs)) != 0)
        || (rc = mdb_env_open(env, dir, MDB_NOTLS | (writable ? 0 : MDB_RDONLY), 0600)) != 0) {
        *err = xasprintf("cannot open %s in %s: %s%s", what, dir, mdb_strerror(rc),
                         rc == EACCES ? " (the directory and its files must belong to mail_owner)"
                                      : "");
        mdb_env_close(env);
        return NULL;
    }
    return env;
}
