/* fetch_state.c - the fetcher's LMDB state (see fetch_state.h). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "fetch_state.h"
#include "lmdb_util.h"
#include "log.h"
#include "timeutil.h"
#include "xalloc.h"

#define STATE_KEY_MAX 480           /* LMDB's default key limit is 511 */
#define STATUS_VERSION 1
#define LEASE_NODE_MAX 200

struct fetch_state {
    MDB_env *env;
    MDB_dbi  taken, status, lease;
};

/* The stored status: a version word, then the struct (host order; the
 * file never leaves this host). */
typedef struct status_rec {
    uint32_t     version;
    fetch_status st;
} status_rec;

typedef struct lease_rec {
    int64_t  pid;
    uint64_t expiry;            /* us since the epoch */
    char     node[LEASE_NODE_MAX];
} lease_rec;

fetch_state_t *fetch_state_open(const char *dir, size_t map_size)
{
    fetch_state_t *fs = xcalloc(1, sizeof(*fs));

    fs->env = lmdb_env_open(dir, map_size, 4);
    fs->taken = lmdb_dbi_open(fs->env, "taken");
    fs->status = lmdb_dbi_open(fs->env, "status");
    fs->lease = lmdb_dbi_open(fs->env, "lease");
    return fs;
}

void fetch_state_close(fetch_state_t **fsp)
{
    if (!*fsp)
        return;
    mdb_env_close((*fsp)->env);
    xfree(fsp);
}

/* taken_key - ACCOUNT\0UIDVALIDITY\0UID into k; its length, 0 when too long. */
static size_t taken_key(char *k, const char *account, const char *uidvalidity, const char *uid)
{
    size_t a = strlen(account), v = strlen(uidvalidity), u = strlen(uid);

    if (a + v + u + 2 > STATE_KEY_MAX)
        return 0;
    memcpy(k, account, a + 1);
    memcpy(k + a + 1, uidvalidity, v + 1);
    memcpy(k + a + v + 2, uid, u);
    return a + v + u + 2;
}

bool fetch_state_is_taken(fetch_state_t *fs, const char *account, const char *uidvalidity,
                          const char *uid)
{
    char k[STATE_KEY_MAX];
    MDB_val key = {taken_key(k, account, uidvalidity, uid), k}, val;
    MDB_txn *txn;
    int rc;

    if (key.mv_size == 0)
        return false;
    lmdb_check(mdb_txn_begin(fs->env, NULL, MDB_RDONLY, &txn), "fetch_state_is_taken");
    rc = mdb_get(txn, fs->taken, &key, &val);
    mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND)
        log_warn("fetcher state: read: %s", mdb_strerror(rc));
    return rc == 0;
}

int fetch_state_mark_taken(fetch_state_t *fs, const char *account, const char *uidvalidity,
                           const char *const *uids, size_t n)
{
    uint64_t now = time_now_us();
    MDB_txn *txn;
    int rc;

    if (n == 0)
        return 0;
    if ((rc = mdb_txn_begin(fs->env, NULL, 0, &txn)) != 0)
        goto bad;
    for (size_t i = 0; i < n; i++) {
        char k[STATE_KEY_MAX];
        MDB_val key = {taken_key(k, account, uidvalidity, uids[i]), k};
        MDB_val val = {sizeof(now), &now};

        if (key.mv_size == 0)
            continue;               /* fetch_run does not take such uids */
        if ((rc = mdb_put(txn, fs->taken, &key, &val, 0)) != 0) {
            mdb_txn_abort(txn);
            goto bad;
        }
    }
    if ((rc = mdb_txn_commit(txn)) == 0)
        return 0;
bad:
    log_warn("%s: fetcher state: cannot record %zu taken message%s: %s", account, n,
             n == 1 ? "" : "s", mdb_strerror(rc));
    return -1;
}

/* delete_account_keys - in txn, delete the taken keys of account; with
 * keep_uidvalidity, only those of other UIDVALIDITYs.  Returns the count
 * or -1. */
static long delete_account_keys(fetch_state_t *fs, MDB_txn *txn, const char *account,
                                const char *keep_uidvalidity)
{
    size_t a = strlen(account) + 1;
    MDB_cursor *cur;
    MDB_val key = {a, (void *)account}, val;
    long n = 0;
    int rc;

    if ((rc = mdb_cursor_open(txn, fs->taken, &cur)) != 0)
        return -1;
    for (rc = mdb_cursor_get(cur, &key, &val, MDB_SET_RANGE); rc == 0;
         rc = mdb_cursor_get(cur, &key, &val, MDB_NEXT)) {
        const char *k = key.mv_data;

        if (key.mv_size < a || memcmp(k, account, a) != 0)
            break;
        if (keep_uidvalidity) {
            size_t v = strlen(keep_uidvalidity) + 1;
            if (key.mv_size >= a + v && memcmp(k + a, keep_uidvalidity, v) == 0)
                continue;
        }
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        n++;
    }
    mdb_cursor_close(cur);
    return rc == 0 || rc == MDB_NOTFOUND ? n : -1;
}

size_t fetch_state_forget_other_uidvalidity(fetch_state_t *fs, const char *account,
                                            const char *uidvalidity)
{
    MDB_txn *txn;
    long n;
    int rc;

    if ((rc = mdb_txn_begin(fs->env, NULL, 0, &txn)) != 0) {
        log_warn("%s: fetcher state: %s", account, mdb_strerror(rc));
        return 0;
    }
    n = delete_account_keys(fs, txn, account, uidvalidity);
    if (n <= 0) {
        mdb_txn_abort(txn);
        return 0;
    }
    if ((rc = mdb_txn_commit(txn)) != 0) {
        log_warn("%s: fetcher state: %s", account, mdb_strerror(rc));
        return 0;
    }
    return (size_t)n;
}

long fetch_state_reset(fetch_state_t *fs, const char *account)
{
    MDB_val key = {strlen(account), (void *)account};
    MDB_txn *txn;
    long n;
    int rc;

    if ((rc = mdb_txn_begin(fs->env, NULL, 0, &txn)) != 0)
        goto bad;
    if ((n = delete_account_keys(fs, txn, account, NULL)) < 0) {
        rc = EIO;
        mdb_txn_abort(txn);
        goto bad;
    }
    {
        status_rec rec;
        MDB_val val = {sizeof(rec), &rec};

        memset(&rec, 0, sizeof(rec));
        rec.version = STATUS_VERSION;
        rec.st.generation = time_now_us();
        if ((rc = mdb_put(txn, fs->status, &key, &val, 0)) != 0) {
            mdb_txn_abort(txn);
            goto bad;
        }
    }
    if ((rc = mdb_txn_commit(txn)) == 0)
        return n;
bad:
    log_warn("%s: fetcher state: reset failed: %s", account, mdb_strerror(rc));
    return -1;
}

void fetch_state_status(fetch_state_t *fs, const char *account, fetch_status *out)
{
    MDB_val key = {strlen(account), (void *)account}, val;
    MDB_txn *txn;
    status_rec rec;

    memset(out, 0, sizeof(*out));
    lmdb_check(mdb_txn_begin(fs->env, NULL, MDB_RDONLY, &txn), "fetch_state_status");
    if (mdb_get(txn, fs->status, &key, &val) == 0 && val.mv_size == sizeof(rec)) {
        memcpy(&rec, val.mv_data, sizeof(rec));
        if (rec.version == STATUS_VERSION) {
            *out = rec.st;
            out->last_error[FETCH_ERROR_MAX - 1] = '\0';
            out->uidvalidity[sizeof(out->uidvalidity) - 1] = '\0';
        }
    }
    mdb_txn_abort(txn);
}

int fetch_state_set_status(fetch_state_t *fs, const char *account, const fetch_status *st)
{
    status_rec rec;
    MDB_val key = {strlen(account), (void *)account}, val = {sizeof(rec), &rec};
    MDB_txn *txn;
    int rc;

    memset(&rec, 0, sizeof(rec));
    rec.version = STATUS_VERSION;
    rec.st = *st;
    if ((rc = mdb_txn_begin(fs->env, NULL, 0, &txn)) == 0) {
        if ((rc = mdb_put(txn, fs->status, &key, &val, 0)) == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc != 0)
        log_warn("%s: fetcher state: cannot store the status: %s", account, mdb_strerror(rc));
    return rc == 0 ? 0 : -1;
}

/* pid_alive - does pid run on this host? (EPERM: it does, as another user) */
static bool pid_alive(int64_t pid)
{
    return pid > 0 && (kill((pid_t)pid, 0) == 0 || errno == EPERM);
}

bool fetch_state_lease_take(fetch_state_t *fs, const char *account, const char *node, long pid,
                            int64_t ttl_ms, char *holder, size_t holder_size)
{
    MDB_val key = {strlen(account), (void *)account}, val;
    uint64_t now = time_now_us();
    lease_rec rec;
    MDB_txn *txn;
    int rc;

    holder[0] = '\0';
    if ((rc = mdb_txn_begin(fs->env, NULL, 0, &txn)) != 0) {
        snprintf(holder, holder_size, "(state unreadable: %s)", mdb_strerror(rc));
        return false;
    }
    rc = mdb_get(txn, fs->lease, &key, &val);
    if (rc == 0 && val.mv_size == sizeof(rec)) {
        memcpy(&rec, val.mv_data, sizeof(rec));
        rec.node[LEASE_NODE_MAX - 1] = '\0';
        bool same_node = strcmp(rec.node, node) == 0;
        bool free = rec.expiry <= now || (same_node && rec.pid == pid)
                    || (same_node && !pid_alive(rec.pid));
        if (!free) {
            snprintf(holder, holder_size, "%s pid %lld", rec.node, (long long)rec.pid);
            mdb_txn_abort(txn);
            return false;
        }
        if (!(same_node && rec.pid == pid))
            log_info("%s: taking over the session lease of %s pid %lld (%s)", account, rec.node,
                     (long long)rec.pid, rec.expiry <= now ? "expired" : "process gone");
    }
    memset(&rec, 0, sizeof(rec));
    rec.pid = pid;
    rec.expiry = now + (uint64_t)ttl_ms * 1000u;
    snprintf(rec.node, sizeof(rec.node), "%s", node);
    val.mv_size = sizeof(rec);
    val.mv_data = &rec;
    if ((rc = mdb_put(txn, fs->lease, &key, &val, 0)) != 0)
        mdb_txn_abort(txn);
    else
        rc = mdb_txn_commit(txn);
    if (rc != 0) {
        snprintf(holder, holder_size, "(state not writable: %s)", mdb_strerror(rc));
        log_warn("%s: fetcher state: cannot write the lease: %s", account, mdb_strerror(rc));
        return false;
    }
    return true;
}

void fetch_state_lease_release(fetch_state_t *fs, const char *account, const char *node,
                               long pid)
{
    MDB_val key = {strlen(account), (void *)account}, val;
    lease_rec rec;
    MDB_txn *txn;
    int rc;

    if ((rc = mdb_txn_begin(fs->env, NULL, 0, &txn)) != 0)
        return;
    rc = mdb_get(txn, fs->lease, &key, &val);
    if (rc == 0 && val.mv_size == sizeof(rec)) {
        memcpy(&rec, val.mv_data, sizeof(rec));
        rec.node[LEASE_NODE_MAX - 1] = '\0';
        if (rec.pid == pid && strcmp(rec.node, node) == 0) {
            if ((rc = mdb_del(txn, fs->lease, &key, NULL)) == 0)
                rc = mdb_txn_commit(txn);
            else
                mdb_txn_abort(txn);
            if (rc != 0)
                log_warn("%s: fetcher state: cannot release the lease: %s", account,
                         mdb_strerror(rc));
            return;
        }
    }
    mdb_txn_abort(txn);
}
