/* policy_state.c - the router's policy decisions and their LMDB records
 * (see policy_state.h and the "Router decisions" of issue 4).
 *
 * Four databases in one environment, keyed by the request's key:
 *   greylist   triplet  -> grey_rec   {first, last, passed_at, count}
 *   intrusion  ip       -> intr_rec   {block, counters per rule, spam seen}
 *   limits     user:/domain: -> limit_rec {window_start, last, count}
 *   awl        "USER ADDRESS" -> awl_rec {first, last, count}, and
 *              "USER" -> awl_user_rec {count, last}: the user's header,
 *              whose count bounds the user's live addresses from above
 *              (every note that adds or revives an address counts; a
 *              prune counts them afresh), so that the bound costs a scan
 *              of the user's addresses only once it is reached.  A user's
 *              records are adjacent: ' ' sorts before any address byte.
 * Records are fixed structs in host byte order (the environment never
 * leaves this host) whose first byte is a version; a record of another
 * size or version is treated as absent and overwritten (logged).
 *
 * The environment is opened MDB_NOSYNC: a commit reaches the page cache
 * (a kill -9 loses nothing) and policy_state_sync flushes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fsutil.h"
#include "log.h"
#include "policy_state.h"
#include "timeutil.h"
#include "xalloc.h"

#define REC_VERSION      1
#define US               INT64_C(1000000)
#define CONN_WINDOW      (60 * US)          /* the connection rate rule's window */
#define LIMIT_WINDOW     (24 * 3600 * US)   /* sending limits: a day from the first message */
#define POLICY_LIST_MAX  100000             /* entries in one LIST reply */
#define POLICY_KEY_MAX   511                /* LMDB's default largest key */
#define POLICY_TEXT_MAX  320                /* address bytes copied into a reply text */
#define SWEEP_SCAN_PER_DELETE 8             /* records a sweep may look at per allowed delete */
#define AWL_PREFIX       "awl:"             /* the shard key of an auto-whitelist request */
#define AWL_ADDR_MAX     254                /* longest user or address (RFC 5321 path) */

enum { T_GREYLIST, T_INTRUSION, T_LIMITS, T_AWL, T_COUNT };
static const char *const table_names[T_COUNT] = {"greylist", "intrusion", "limits", "awl"};

/* Intrusion reason codes as stored (intr_rec.reason) and as answered. */
enum {
    R_NONE, R_CONN_RATE, R_UNKNOWN_RCPT, R_RELAY, R_AUTH, R_SIZE, R_RSET, R_DNSBL,
    R_SPAMTRAP, R_MANUAL, R_COUNT
};
static const char *const reason_names[R_COUNT] = {
    "", "CONN_RATE", "UNKNOWN_RCPT", "RELAY", "AUTH", "SIZE", "RSET", "DNSBL",
    "SPAMTRAP", "MANUAL",
};

/* The counting rules' counters in intr_rec.ctr. */
enum { C_CONN, C_UNKNOWN_RCPT, C_RELAY, C_AUTH, C_COUNT };

typedef struct grey_rec {
    uint8_t  version;
    uint8_t  pad[3];
    uint32_t count;             /* attempts */
    int64_t  first, last;       /* µs */
    int64_t  passed_at;         /* 0: not passed */
} grey_rec;

typedef struct intr_counter {
    int64_t  start;             /* window start, µs; 0: not counting */
    uint32_t count;
    uint32_t pad;
} intr_counter;

typedef struct intr_rec {
    uint8_t  version;
    uint8_t  reason;            /* R_* of the last block */
    uint8_t  pad[2];
    uint32_t block_count;       /* the count that made the last block */
    int64_t  blocked_until, blocked_since;
    int64_t  last_seen;
    int64_t  spam_seen_at;      /* 0: never */
    intr_counter ctr[C_COUNT];
} intr_rec;

typedef struct limit_rec {
    uint8_t  version;
    uint8_t  pad[7];
    int64_t  window_start, last;
    uint64_t count;
} limit_rec;

typedef struct awl_rec {
    uint8_t  version;
    uint8_t  pad[3];
    uint32_t count;             /* notes: how often the user wrote to it */
    int64_t  first, last;       /* µs; alive until last + awl_lifetime */
} awl_rec;

typedef struct awl_user_rec {
    uint8_t  version;
    uint8_t  pad[3];
    uint32_t count;             /* at least the user's live addresses */
    int64_t  last;              /* the user's last note */
} awl_user_rec;

_Static_assert(sizeof(grey_rec) == 32, "grey_rec layout");
_Static_assert(sizeof(awl_rec) == 24, "awl_rec layout");
_Static_assert(sizeof(awl_user_rec) == 16, "awl_user_rec layout");
_Static_assert(sizeof(intr_rec) == 104, "intr_rec layout");
_Static_assert(sizeof(limit_rec) == 32, "limit_rec layout");

struct policy_state {
    MDB_env *env;
    MDB_dbi  dbi[T_COUNT];
    MDB_txn *txn;               /* the open batch, between begin and commit */
    int      rc;                /* first LMDB error inside the batch */
    char    *resume[T_COUNT];   /* where the next sweep goes on in each table */
    size_t   resume_len[T_COUNT];
};

/* ------------------------------------------------------------ settings */

void policy_settings_read(policy_settings *ps, const config_t *cfg)
{
    memset(ps, 0, sizeof(*ps));
    ps->greylist_delay = config_time_ms(cfg, "greylist_delay") * 1000;
    ps->greylist_retry_window = config_time_ms(cfg, "greylist_retry_window") * 1000;
    ps->greylist_pass_lifetime = config_time_ms(cfg, "greylist_pass_lifetime") * 1000;
    ps->adaptive_memory = config_time_ms(cfg, "greylist_adaptive_memory") * 1000;
    ps->block_time = config_time_ms(cfg, "intrusion_block_time") * 1000;
    ps->spamtrap_block_time = config_time_ms(cfg, "intrusion_spamtrap_block_time") * 1000;
    ps->window = config_time_ms(cfg, "intrusion_window") * 1000;
    ps->intrusion = config_bool(cfg, "intrusion_prevention");
    ps->unknown_rcpt_limit = (unsigned)config_int(cfg, "intrusion_unknown_recipient_limit");
    ps->conn_rate_limit = (unsigned)config_int(cfg, "intrusion_connection_rate_limit");
    ps->relay_failure_limit = (unsigned)config_int(cfg, "intrusion_relay_failure_limit");
    ps->auth_failure_limit = (unsigned)config_int(cfg, "intrusion_auth_failure_limit");
    ps->rset_limit = (unsigned)config_int(cfg, "intrusion_rset_limit");
    ps->size_limit = config_size(cfg, "intrusion_message_size_limit");
    ps->block_on_dnsbl = config_bool(cfg, "intrusion_dnsbl");
    ps->awl_lifetime = config_time_ms(cfg, "spam_auto_whitelist_lifetime") * 1000;
    ps->awl_max = AWL_PER_USER_MAX;
}

/* ------------------------------------------------------------ environment */

policy_state_t *policy_state_open(const char *dir, size_t map_size, char **err)
{
    policy_state_t *s;
    MDB_txn *txn;
    int rc, dead;

    if (fs_mkdir_p(dir, 0700) < 0) {
        *err = xasprintf("cannot create the policy state directory %s: %s "
                         "(check data_directory and its permissions)", dir, strerror(errno));
        return NULL;
    }
    s = xcalloc(1, sizeof(*s));
    if ((rc = mdb_env_create(&s->env)) != 0) {
        *err = xasprintf("policy state %s: mdb_env_create: %s", dir, mdb_strerror(rc));
        xfree(&s);
        return NULL;
    }
    if ((rc = mdb_env_set_mapsize(s->env, map_size)) != 0
        || (rc = mdb_env_set_maxdbs(s->env, T_COUNT + 1)) != 0
        || (rc = mdb_env_open(s->env, dir, MDB_NOSYNC | MDB_NOTLS, 0600)) != 0) {
        *err = xasprintf("cannot open the policy state LMDB %s: %s (%s)", dir, mdb_strerror(rc),
                         rc == EACCES ? "make it owned by mail_owner" :
                         rc == ENOMEM ? "lower policy_state_map_size" :
                         "check the directory, free disk space and permissions");
        mdb_env_close(s->env);
        xfree(&s);
        return NULL;
    }
    mdb_reader_check(s->env, &dead);     /* readers left by a killed process */
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        *err = xasprintf("policy state %s: cannot begin a transaction: %s", dir,
                         mdb_strerror(rc));
        mdb_env_close(s->env);
        xfree(&s);
        return NULL;
    }
    for (int t = 0; t < T_COUNT && rc == 0; t++)
        rc = mdb_dbi_open(txn, table_names[t], MDB_CREATE, &s->dbi[t]);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0) {
        *err = xasprintf("policy state %s: cannot open its databases: %s", dir, mdb_strerror(rc));
        mdb_env_close(s->env);
        xfree(&s);
        return NULL;
    }
    return s;
}

void policy_state_close(policy_state_t **sp)
{
    policy_state_t *s = *sp;

    if (s == NULL)
        return;
    if (s->txn)
        mdb_txn_abort(s->txn);
    mdb_env_sync(s->env, 1);
    mdb_env_close(s->env);
    for (int t = 0; t < T_COUNT; t++)
        xfree(&s->resume[t]);
    xfree(sp);
}

int policy_state_begin(policy_state_t *s)
{
    int rc;

    if (s->txn)
        log_panic("policy_state_begin: a transaction is already open");
    s->rc = 0;
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &s->txn)) != 0) {
        s->txn = NULL;
        log_warn("policy: cannot begin a transaction: %s", mdb_strerror(rc));
    }
    return rc;
}

int policy_state_commit(policy_state_t *s)
{
    int rc = s->rc;

    if (s->txn == NULL)
        log_panic("policy_state_commit: no transaction open");
    if (rc != 0) {
        mdb_txn_abort(s->txn);
    } else if ((rc = mdb_txn_commit(s->txn)) != 0) {
        log_warn("policy: commit failed: %s%s", mdb_strerror(rc),
                 rc == MDB_MAP_FULL ? " (raise policy_state_map_size)" : "");
    }
    s->txn = NULL;
    s->rc = 0;
    return rc;
}

void policy_state_sync(policy_state_t *s)
{
    int rc = mdb_env_sync(s->env, 1);

    if (rc != 0)
        log_warn("policy: flushing the state to disk failed: %s", mdb_strerror(rc));
}

/* ------------------------------------------------------------ records */

/* rec_get - the record of key in table t into rec (size bytes): 1 found,
 * 0 absent (or unreadable: logged, treated as absent). */
static int rec_get(policy_state_t *s, int t, const char *key, void *rec, size_t size)
{
    MDB_val k = {strlen(key), (void *)key}, v;
    int rc = mdb_get(s->txn, s->dbi[t], &k, &v);

    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0) {
        log_warn("policy: %s: read failed: %s", table_names[t], mdb_strerror(rc));
        if (s->rc == 0)
            s->rc = rc;
        return 0;
    }
    if (v.mv_size != size || ((const uint8_t *)v.mv_data)[0] != REC_VERSION) {
        log_warn("policy: %s: record of %zu bytes, version %u is not one this build reads; "
                 "starting it afresh", table_names[t], v.mv_size,
                 v.mv_size ? ((const uint8_t *)v.mv_data)[0] : 0);
        return 0;
    }
    memcpy(rec, v.mv_data, size);
    return 1;
}

/* rec_put - write a record; an error fails the batch (s->rc). */
static void rec_put(policy_state_t *s, int t, const char *key, void *rec, size_t size)
{
    MDB_val k = {strlen(key), (void *)key}, v = {size, rec};
    int rc;

    *(uint8_t *)rec = REC_VERSION;
    if ((rc = mdb_put(s->txn, s->dbi[t], &k, &v, 0)) != 0) {
        log_warn("policy: %s: write failed: %s%s", table_names[t], mdb_strerror(rc),
                 rc == MDB_MAP_FULL ? " (raise policy_state_map_size)" : "");
        if (s->rc == 0)
            s->rc = rc;
    }
}

/* rec_del - 1 deleted, 0 absent. */
static int rec_del(policy_state_t *s, int t, const char *key)
{
    MDB_val k = {strlen(key), (void *)key};
    int rc = mdb_del(s->txn, s->dbi[t], &k, NULL);

    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0) {
        log_warn("policy: %s: delete failed: %s", table_names[t], mdb_strerror(rc));
        if (s->rc == 0)
            s->rc = rc;
        return 0;
    }
    return 1;
}

/* ------------------------------------------------------------ replies */

static char *str_or_empty(const char *s)
{
    return xstrdup(s ? s : "");
}

/* answer - set action, reason and text (text taken over, may be NULL). */
static void answer(PolicyReply *r, Correio__PolicyAction action, const char *reason, char *text)
{
    r->action = action;
    r->reason = str_or_empty(reason);
    r->text = text ? text : xstrdup("");
}

static void answer_error(PolicyReply *r, const char *why)
{
    answer(r, CORREIO__POLICY_ACTION__POLICY_ERROR, "ERROR", xstrdup(why));
}

void policy_reply_clear(PolicyReply *r)
{
    PolicyReply fresh = CORREIO__POLICY_REPLY__INIT;

    if (r->reason != protobuf_c_empty_string)
        xfree(&r->reason);
    if (r->text != protobuf_c_empty_string)
        xfree(&r->text);
    for (size_t i = 0; i < r->n_entries; i++) {
        PolicyEntry *e = r->entries[i];
        char **strs[] = {&e->key, &e->state, &e->reason, &e->node};

        for (size_t j = 0; j < sizeof(strs) / sizeof(strs[0]); j++)
            if (*strs[j] != protobuf_c_empty_string)
                xfree(strs[j]);
        xfree(&e);
    }
    xfree(&r->entries);
    *r = fresh;
}

/* iso_time - "2026-11-23T08:11:00Z" for a time in µs. */
static char *iso_time(char *dst, size_t size, int64_t us)
{
    time_t t = (time_t)(us / US);
    struct tm tm;

    if (gmtime_r(&t, &tm) == NULL || strftime(dst, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(dst, size, "%" PRId64, us / US);
    return dst;
}

/* printable - bounded, printable copy of text from a request for logs. */
static char *printable(char *dst, size_t size, const char *src)
{
    return log_printable(dst, size, src ? src : "", src ? strlen(src) : 0);
}

/* addr_text - an address from a request for a reply text: bounded, and
 * without bytes that would break the SMTP reply line. */
static char *addr_text(const char *src)
{
    char buf[POLICY_TEXT_MAX + 4];

    return xstrdup(printable(buf, sizeof(buf), src));
}

/* ------------------------------------------------------------ greylist */

static void greylist_decide(policy_state_t *s, const policy_settings *ps,
                            const PolicyRequest *req, int64_t now, const char *sess,
                            PolicyReply *reply)
{
    grey_rec g;
    const char *reason;
    int found = rec_get(s, T_GREYLIST, req->key, &g, sizeof(g));
    char keybuf[POLICY_KEY_MAX + 4];

    if (!found
        || (g.passed_at != 0 && now - g.last > ps->greylist_pass_lifetime)
        || (g.passed_at == 0 && now > g.first + ps->greylist_delay + ps->greylist_retry_window)) {
        memset(&g, 0, sizeof(g));
        g.first = now;
        reason = "GREYLIST_NEW";
    } else if (g.passed_at != 0) {
        reason = "GREYLIST_KNOWN";
    } else if (now < g.first + ps->greylist_delay) {
        reason = "GREYLIST_EARLY";
    } else {
        g.passed_at = now;
        reason = "GREYLIST_PASSED";
    }
    g.last = now;
    if (g.count < UINT32_MAX)
        g.count++;
    rec_put(s, T_GREYLIST, req->key, &g, sizeof(g));

    if (g.passed_at != 0) {
        answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, reason, NULL);
        return;
    }
    int64_t left = (g.first + ps->greylist_delay - now + US - 1) / US;
    char *rcpt = addr_text(req->recipient);

    if (left < 1)
        left = 1;
    reply->until = (uint64_t)(g.first + ps->greylist_delay);
    answer(reply, CORREIO__POLICY_ACTION__POLICY_DEFER, reason,
           xasprintf("450 4.7.1 <%s>: Recipient address rejected: Greylisted for %" PRId64
                     " seconds (see RFC 6647)", rcpt, left));
    xfree(&rcpt);
    log_info("policy: %s: greylist: defer triplet=<%s> reason=%s left=%" PRId64 "s",
             sess, printable(keybuf, sizeof(keybuf), req->key), reason, left);
}

/* ------------------------------------------------------------ intrusion */

/* ip_key - the intrusion key for text: an IPv4 address, or an IPv6
 * address reduced to its /64 ("2001:db8:1:2::/64", as the ingress makes
 * it; a key that already ends in /64 stays as it is).  false when text is
 * not an address. */
static bool ip_key(const char *text, char *dst, size_t size)
{
    char buf[INET6_ADDRSTRLEN + 8];
    unsigned char a6[16];
    struct in_addr a4;
    const char *slash = strchr(text, '/');
    size_t len = slash ? (size_t)(slash - text) : strlen(text);

    if (len == 0 || len >= INET6_ADDRSTRLEN)
        return false;
    memcpy(buf, text, len);
    buf[len] = 0;
    if (slash == NULL && inet_pton(AF_INET, buf, &a4) == 1) {
        inet_ntop(AF_INET, &a4, dst, (socklen_t)size);
        return true;
    }
    if (inet_pton(AF_INET6, buf, a6) != 1 || (slash && strcmp(slash, "/64") != 0))
        return false;
    memset(a6 + 8, 0, 8);
    if (inet_ntop(AF_INET6, a6, buf, INET6_ADDRSTRLEN) == NULL || strlen(buf) + 4 > size)
        return false;
    memcpy(dst, buf, strlen(buf));
    memcpy(dst + strlen(buf), "/64", 4);
    return true;
}

/* reason_name - a stored reason code's name (a damaged one is "UNKNOWN"). */
static const char *reason_name(unsigned reason)
{
    return reason > R_NONE && reason < R_COUNT ? reason_names[reason] : "UNKNOWN";
}

static int reason_code(const char *name)
{
    for (int r = R_CONN_RATE; r < R_COUNT; r++)
        if (strcmp(name, reason_names[r]) == 0)
            return r;
    return R_NONE;
}

/* counter_add - count one event in c, starting a new window when the
 * current one (length window) is over; returns the new count. */
static uint32_t counter_add(intr_counter *c, int64_t now, int64_t window)
{
    if (c->start == 0 || now - c->start >= window) {
        c->start = now;
        c->count = 0;
    }
    if (c->count < UINT32_MAX)
        c->count++;
    return c->count;
}

static bool blocked(const intr_rec *r, int64_t now)
{
    return r->blocked_until > now;
}

static bool spam_recent(const intr_rec *r, const policy_settings *ps, int64_t now)
{
    return r->spam_seen_at != 0 && now - r->spam_seen_at <= ps->adaptive_memory;
}

/* block - block the ip for how long with reason; the counters start over
 * so that the rules count afresh once the block is over. */
static void block(intr_rec *r, int reason, uint32_t count, int64_t now, int64_t how_long)
{
    r->reason = (uint8_t)reason;
    r->block_count = count;
    r->blocked_since = now;
    r->blocked_until = now + how_long;
    memset(r->ctr, 0, sizeof(r->ctr));
}

/* answer_blocked - the BLOCKED reply; at_connect: the text names the ip
 * and the end of the block. */
static void answer_blocked(PolicyReply *reply, const intr_rec *r, const char *ip,
                           const char *node, bool at_connect)
{
    char when[40];

    iso_time(when, sizeof(when), r->blocked_until);
    reply->until = (uint64_t)r->blocked_until;
    answer(reply, CORREIO__POLICY_ACTION__POLICY_BLOCKED, reason_name(r->reason),
           at_connect
           ? xasprintf("421 4.7.0 %s: Error: [%s] blocked by intrusion prevention (%s) until %s",
                       node, ip, reason_name(r->reason), when)
           : xasprintf("421 4.7.0 %s: Error: blocked by intrusion prevention (%s)",
                       node, reason_name(r->reason)));
}

static void log_block(const char *sess, const char *ip, const intr_rec *r, const char *detail)
{
    char when[40], det[128];

    log_info("policy: %s: intrusion: block ip=%s reason=%s count=%u until=%s%s%s", sess, ip,
             reason_name(r->reason), r->block_count,
             iso_time(when, sizeof(when), r->blocked_until),
             detail && *detail ? " detail=" : "",
             detail && *detail ? printable(det, sizeof(det), detail) : "");
}

static void log_blocked(const char *sess, const char *what, const char *ip, const intr_rec *r)
{
    char when[40];

    log_info("policy: %s: intrusion: %s ip=%s blocked reason=%s until=%s", sess, what, ip,
             reason_name(r->reason), iso_time(when, sizeof(when), r->blocked_until));
}

static void intrusion_connect(policy_state_t *s, const policy_settings *ps, const char *ip,
                              int64_t now, const char *sess, const char *node,
                              PolicyReply *reply)
{
    intr_rec r;
    int found = rec_get(s, T_INTRUSION, ip, &r, sizeof(r));

    if (!found)
        memset(&r, 0, sizeof(r));
    if (ps->intrusion && blocked(&r, now)) {
        answer_blocked(reply, &r, ip, node, true);
        log_blocked(sess, "connect", ip, &r);
        return;
    }
    if (ps->intrusion && ps->conn_rate_limit > 0) {
        uint32_t n = counter_add(&r.ctr[C_CONN], now, CONN_WINDOW);

        r.last_seen = now;
        if (n > ps->conn_rate_limit) {
            block(&r, R_CONN_RATE, n, now, ps->block_time);
            rec_put(s, T_INTRUSION, ip, &r, sizeof(r));
            log_block(sess, ip, &r, NULL);
            answer_blocked(reply, &r, ip, node, true);
            return;
        }
        rec_put(s, T_INTRUSION, ip, &r, sizeof(r));
    }
    reply->spam_history = found && spam_recent(&r, ps, now);
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
}

static void intrusion_event(policy_state_t *s, const policy_settings *ps,
                            const PolicyRequest *req, const char *ip, int64_t now,
                            const char *sess, const char *node, PolicyReply *reply)
{
    intr_rec r;
    int code = reason_code(req->reason ? req->reason : "");
    int64_t how_long = ps->block_time;
    int ctr = -1;                   /* the counting rules' counter */
    unsigned limit = 0;
    bool on, at_limit = false;      /* block at the limit, not beyond it */
    uint32_t n = 1;

    switch (code) {
    case R_UNKNOWN_RCPT:
        ctr = C_UNKNOWN_RCPT;
        on = (limit = ps->unknown_rcpt_limit) > 0;
        break;
    case R_RELAY:
        ctr = C_RELAY;
        on = (limit = ps->relay_failure_limit) > 0;
        at_limit = true;
        break;
    case R_AUTH:
        ctr = C_AUTH;
        on = (limit = ps->auth_failure_limit) > 0;
        break;
    case R_SIZE:
        on = ps->size_limit > 0;
        break;
    case R_RSET:
        on = ps->rset_limit > 0;
        break;
    case R_DNSBL:
        on = ps->block_on_dnsbl;
        break;
    case R_SPAMTRAP:
        on = true;
        how_long = ps->spamtrap_block_time;
        break;
    default: {                      /* CONN_RATE and MANUAL are not events */
        char buf[64];

        log_warn("policy: %s: intrusion event with unknown reason \"%s\" for ip=%s", sess,
                 printable(buf, sizeof(buf), req->reason), ip);
        answer_error(reply, "unknown intrusion reason");
        return;
    }
    }
    if (!ps->intrusion) {
        answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
        return;
    }
    if (!rec_get(s, T_INTRUSION, ip, &r, sizeof(r)))
        memset(&r, 0, sizeof(r));
    if (blocked(&r, now)) {
        answer_blocked(reply, &r, ip, node, false);
        log_blocked(sess, reason_names[code], ip, &r);
        return;
    }
    if (!on) {                      /* the rule is off */
        answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
        return;
    }
    r.last_seen = now;
    if (ctr >= 0) {
        n = counter_add(&r.ctr[ctr], now, ps->window);
        if (at_limit ? n < limit : n <= limit) {
            rec_put(s, T_INTRUSION, ip, &r, sizeof(r));
            reply->count = n;
            answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
            return;
        }
    }
    block(&r, code, n, now, how_long);
    rec_put(s, T_INTRUSION, ip, &r, sizeof(r));
    log_block(sess, ip, &r, req->detail);
    reply->count = n;
    answer_blocked(reply, &r, ip, node, false);
}

static void spam_seen(policy_state_t *s, const char *ip, int64_t now, PolicyReply *reply)
{
    intr_rec r;

    if (!rec_get(s, T_INTRUSION, ip, &r, sizeof(r)))
        memset(&r, 0, sizeof(r));
    r.spam_seen_at = now;
    r.last_seen = now;
    rec_put(s, T_INTRUSION, ip, &r, sizeof(r));
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
}

/* ------------------------------------------------------------ limits */

/* limit_current - the key's count in its current window (0 when none). */
static uint64_t limit_current(const limit_rec *l, int found, int64_t now)
{
    return found && now - l->window_start < LIMIT_WINDOW ? l->count : 0;
}

static void limit_check(policy_state_t *s, const PolicyRequest *req, int64_t now,
                        const char *sess, PolicyReply *reply)
{
    limit_rec l;
    int found = rec_get(s, T_LIMITS, req->key, &l, sizeof(l));
    uint64_t count = limit_current(&l, found, now);
    char keybuf[POLICY_KEY_MAX + 4];

    reply->count = count;
    if (req->limit == 0 || count < req->limit) {
        answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
        return;
    }
    const char *colon = strchr(req->key, ':');
    char *who = addr_text(req->sender && *req->sender ? req->sender
                          : colon ? colon + 1 : req->key);

    reply->until = (uint64_t)(l.window_start + LIMIT_WINDOW);
    answer(reply, CORREIO__POLICY_ACTION__POLICY_DEFER, "LIMIT",
           xasprintf("450 4.7.1 <%s>: Sender address rejected: daily sending limit of %u "
                     "messages reached", who, req->limit));
    xfree(&who);
    log_info("policy: %s: limits: defer key=%s count=%" PRIu64 " limit=%u reason=LIMIT",
             sess, printable(keybuf, sizeof(keybuf), req->key), count, req->limit);
}

static void limit_count(policy_state_t *s, const PolicyRequest *req, int64_t now,
                        PolicyReply *reply)
{
    limit_rec l;
    int found = rec_get(s, T_LIMITS, req->key, &l, sizeof(l));

    if (!found || now - l.window_start >= LIMIT_WINDOW) {
        memset(&l, 0, sizeof(l));
        l.window_start = now;
    }
    l.count += req->count;
    l.last = now;
    rec_put(s, T_LIMITS, req->key, &l, sizeof(l));
    reply->count = l.count;
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
}

/* ------------------------------------------------------------ auto-whitelist */

/* awl_addr - src as the auto-whitelist stores it: lower case, 1 to
 * AWL_ADDR_MAX bytes, no space or control character (so that "USER
 * ADDRESS" splits at its one space).  false when it is not such. */
static bool awl_addr(const char *src, char *dst, size_t size)
{
    size_t len = src ? strlen(src) : 0;

    if (len == 0 || len > AWL_ADDR_MAX || len >= size)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];

        if (c <= ' ' || c == 0x7f)
            return false;
        dst[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    dst[len] = 0;
    return true;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return x < y ? -1 : x > y;
}

/* awl_alive - does an address noted at last still count at now? */
static bool awl_alive(int64_t last, const policy_settings *ps, int64_t now)
{
    return now - last <= ps->awl_lifetime;
}

/* awl_prune - count the user's addresses afresh, deleting the expired
 * ones and, past ps->awl_max, the ones written to longest ago (down to
 * 15/16 of the bound, so that the next prune is max/16 notes away; keep
 * is never dropped).  Returns how many are left. */
static uint32_t awl_prune(policy_state_t *s, const policy_settings *ps, const char *user,
                          const char *keep, int64_t now, const char *sess)
{
    unsigned max = ps->awl_max ? ps->awl_max : AWL_PER_USER_MAX;
    char prefix[AWL_ADDR_MAX + 2], ubuf[AWL_ADDR_MAX + 8];
    size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "%s ", user);
    size_t n = 0, cap = 0, expired = 0, dropped = 0;
    int64_t *lasts = NULL;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    for (int pass = 0; pass < 2; pass++) {
        int64_t threshold = 0;
        size_t lt = 0, eq_budget = 0, drop = 0;

        if (pass == 1) {
            if (n <= max)
                break;
            int64_t *sorted = xmalloc(n * sizeof(*sorted));

            memcpy(sorted, lasts, n * sizeof(*sorted));
            qsort(sorted, n, sizeof(*sorted), cmp_i64);
            drop = n - (max - max / 16);
            threshold = sorted[drop - 1];
            while (lt < n && sorted[lt] < threshold)
                lt++;
            eq_budget = drop - lt;
            xfree(&sorted);
        }
        if ((rc = mdb_cursor_open(s->txn, s->dbi[T_AWL], &cur)) != 0)
            break;
        k.mv_size = plen;
        k.mv_data = prefix;
        for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            awl_rec e;
            bool del;

            memset(&e, 0, sizeof(e));
            if (k.mv_size < plen || memcmp(k.mv_data, prefix, plen) != 0)
                break;
            if (v.mv_size == sizeof(e))
                memcpy(&e, v.mv_data, sizeof(e));
            if (pass == 0) {
                del = v.mv_size != sizeof(e) || e.version != REC_VERSION
                      || !awl_alive(e.last, ps, now);
            } else if (e.last < threshold) {
                del = true;
            } else if (e.last == threshold && eq_budget > 0
                       && !(k.mv_size == strlen(keep) && memcmp(k.mv_data, keep, k.mv_size) == 0)) {
                del = true;
                eq_budget--;
            } else {
                del = false;
            }
            if (del) {
                if ((rc = mdb_cursor_del(cur, 0)) != 0)
                    break;
                if (pass == 0)
                    expired++;
                else
                    dropped++;
                continue;
            }
            if (pass == 0) {
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    lasts = xrealloc(lasts, cap * sizeof(*lasts));
                }
                lasts[n++] = e.last;
            }
        }
        mdb_cursor_close(cur);
        if (rc != 0 && rc != MDB_NOTFOUND)
            break;
        rc = 0;
    }
    xfree(&lasts);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        log_warn("policy: awl: cannot prune the addresses of a user: %s", mdb_strerror(rc));
        if (s->rc == 0)
            s->rc = rc;
    }
    log_info("policy: %s: awl: prune user=<%s> expired=%zu dropped=%zu left=%zu", sess,
             printable(ubuf, sizeof(ubuf), user), expired, dropped, n - dropped);
    return (uint32_t)(n - dropped);
}

/* awl_request - the user (from key "awl:USER") and the address of an
 * auto-whitelist request, lower-cased; false after answering the error. */
static bool awl_request(const PolicyRequest *req, const char *addr, char *user, char *address,
                        size_t size, PolicyReply *reply)
{
    const char *key = req->key ? req->key : "";

    if (strncmp(key, AWL_PREFIX, strlen(AWL_PREFIX)) != 0
        || !awl_addr(key + strlen(AWL_PREFIX), user, size)) {
        answer_error(reply, "an auto-whitelist key is awl:USER, USER an address");
        return false;
    }
    if (!awl_addr(addr, address, size)) {
        answer_error(reply, "not an address the auto-whitelist keeps");
        return false;
    }
    return true;
}

/* awl_note - USER wrote to req->recipient: add or refresh it. */
static void awl_note(policy_state_t *s, const policy_settings *ps, const PolicyRequest *req,
                     int64_t now, const char *sess, PolicyReply *reply)
{
    char user[AWL_ADDR_MAX + 1], addr[AWL_ADDR_MAX + 1], key[2 * AWL_ADDR_MAX + 2];
    char ubuf[AWL_ADDR_MAX + 8], abuf[AWL_ADDR_MAX + 8];
    awl_user_rec u;
    awl_rec e;
    bool added;

    if (!awl_request(req, req->recipient, user, addr, sizeof(user), reply))
        return;
    if (strcmp(user, addr) == 0) {      /* else spam "from" the user would pass */
        answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "SELF", NULL);
        return;
    }
    snprintf(key, sizeof(key), "%s %s", user, addr);
    added = !rec_get(s, T_AWL, key, &e, sizeof(e)) || !awl_alive(e.last, ps, now);
    if (added) {
        memset(&e, 0, sizeof(e));
        e.first = now;
    }
    e.last = now;
    if (e.count < UINT32_MAX)
        e.count++;
    rec_put(s, T_AWL, key, &e, sizeof(e));
    if (!rec_get(s, T_AWL, user, &u, sizeof(u)))
        memset(&u, 0, sizeof(u));
    u.last = now;
    if (added && u.count < UINT32_MAX)
        u.count++;
    if (u.count > (ps->awl_max ? ps->awl_max : AWL_PER_USER_MAX))
        u.count = awl_prune(s, ps, user, key, now, sess);
    rec_put(s, T_AWL, user, &u, sizeof(u));
    if (added)
        log_info("policy: %s: awl: note user=<%s> address=<%s>", sess,
                 printable(ubuf, sizeof(ubuf), user), printable(abuf, sizeof(abuf), addr));
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, added ? "AWL_NEW" : "AWL_REFRESHED", NULL);
}

/* awl_check - has USER written to req->sender lately?  OK yes, DEFER no. */
static void awl_check(policy_state_t *s, const policy_settings *ps, const PolicyRequest *req,
                      int64_t now, const char *sess, PolicyReply *reply)
{
    char user[AWL_ADDR_MAX + 1], addr[AWL_ADDR_MAX + 1], key[2 * AWL_ADDR_MAX + 2];
    char ubuf[AWL_ADDR_MAX + 8], abuf[AWL_ADDR_MAX + 8];
    awl_rec e;

    if (req->sender == NULL || req->sender[0] == 0) {   /* <> is never on it */
        answer(reply, CORREIO__POLICY_ACTION__POLICY_DEFER, "NULL_SENDER", NULL);
        return;
    }
    if (!awl_request(req, req->sender, user, addr, sizeof(user), reply))
        return;
    snprintf(key, sizeof(key), "%s %s", user, addr);
    if (strcmp(user, addr) != 0 && rec_get(s, T_AWL, key, &e, sizeof(e))
        && awl_alive(e.last, ps, now)) {
        reply->until = (uint64_t)(e.last + ps->awl_lifetime);
        reply->count = e.count;
        answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "AUTO_WHITELIST", NULL);
        log_debug("policy: %s: awl: check user=<%s> sender=<%s> found", sess,
                  printable(ubuf, sizeof(ubuf), user), printable(abuf, sizeof(abuf), addr));
        return;
    }
    answer(reply, CORREIO__POLICY_ACTION__POLICY_DEFER, "", NULL);
}

/* ------------------------------------------------------------ administration */

static int table_code(const char *name)
{
    for (int t = 0; t < T_COUNT; t++)
        if (name && strcmp(name, table_names[t]) == 0)
            return t;
    return -1;
}

/* entry_of - the PolicyEntry for one record of table t, or NULL when the
 * record is unreadable. */
static PolicyEntry *entry_of(int t, const MDB_val *k, const MDB_val *v,
                             const policy_settings *ps, int64_t now, const char *node)
{
    PolicyEntry *e;
    const char *state, *reason = "";

    if (t == T_GREYLIST && v->mv_size == sizeof(grey_rec)) {
        grey_rec g;

        memcpy(&g, v->mv_data, sizeof(g));
        if (g.version != REC_VERSION)
            return NULL;
        e = xmalloc(sizeof(*e));
        correio__policy_entry__init(e);
        state = g.passed_at ? "passed" : "waiting";
        e->first = (uint64_t)g.first;
        e->last = (uint64_t)g.last;
        e->until = (uint64_t)(g.passed_at ? g.last + ps->greylist_pass_lifetime
                                          : g.first + ps->greylist_delay);
        e->count = g.count;
    } else if (t == T_INTRUSION && v->mv_size == sizeof(intr_rec)) {
        intr_rec r;

        memcpy(&r, v->mv_data, sizeof(r));
        if (r.version != REC_VERSION)
            return NULL;
        e = xmalloc(sizeof(*e));
        correio__policy_entry__init(e);
        e->last = (uint64_t)r.last_seen;
        if (blocked(&r, now)) {
            state = "blocked";
            reason = reason_name(r.reason);
            e->first = (uint64_t)r.blocked_since;
            e->until = (uint64_t)r.blocked_until;
            e->count = r.block_count;
        } else {
            int64_t first = 0;

            state = "watching";
            for (int c = 0; c < C_COUNT; c++) {
                int64_t window = c == C_CONN ? CONN_WINDOW : ps->window;

                if (r.ctr[c].start && now - r.ctr[c].start < window) {
                    e->count += r.ctr[c].count;
                    if (first == 0 || r.ctr[c].start < first)
                        first = r.ctr[c].start;
                }
            }
            if (spam_recent(&r, ps, now))
                reason = "SPAM_SEEN";
            e->first = (uint64_t)first;
        }
    } else if (t == T_LIMITS && v->mv_size == sizeof(limit_rec)) {
        limit_rec l;

        memcpy(&l, v->mv_data, sizeof(l));
        if (l.version != REC_VERSION)
            return NULL;
        e = xmalloc(sizeof(*e));
        correio__policy_entry__init(e);
        state = "counting";
        e->first = (uint64_t)l.window_start;
        e->last = (uint64_t)l.last;
        e->until = (uint64_t)(l.window_start + LIMIT_WINDOW);
        e->count = limit_current(&l, 1, now);
    } else if (t == T_AWL && v->mv_size == sizeof(awl_rec)) {
        awl_rec a;                      /* a user's header (another size) is not listed */

        memcpy(&a, v->mv_data, sizeof(a));
        if (a.version != REC_VERSION)
            return NULL;
        e = xmalloc(sizeof(*e));
        correio__policy_entry__init(e);
        state = awl_alive(a.last, ps, now) ? "whitelisted" : "expired";
        e->first = (uint64_t)a.first;
        e->last = (uint64_t)a.last;
        e->until = (uint64_t)(a.last + ps->awl_lifetime);
        e->count = a.count;
    } else {
        return NULL;
    }
    e->key = xmemdup(k->mv_data, k->mv_size);
    e->state = xstrdup(state);
    e->reason = xstrdup(reason);
    e->node = xstrdup(node);
    return e;
}

/* admin_list - every record of the table (whose key starts with
 * req->key, when given) as entries, at most POLICY_LIST_MAX. */
static void admin_list(policy_state_t *s, const policy_settings *ps, int t,
                       const PolicyRequest *req, int64_t now, const char *node,
                       PolicyReply *reply)
{
    MDB_cursor *cur;
    MDB_val k, v;
    size_t plen = req->key ? strlen(req->key) : 0, cap = 0;
    bool truncated = false;
    int rc = mdb_cursor_open(s->txn, s->dbi[t], &cur);

    if (rc != 0) {
        answer_error(reply, "cannot read the policy state");
        return;
    }
    k.mv_size = plen;
    k.mv_data = (void *)req->key;
    rc = plen ? mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE) : mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        PolicyEntry *e;

        if (plen && (k.mv_size < plen || memcmp(k.mv_data, req->key, plen) != 0))
            break;
        if (reply->n_entries == POLICY_LIST_MAX) {
            truncated = true;
            break;
        }
        if ((e = entry_of(t, &k, &v, ps, now, node)) == NULL)
            continue;
        if (reply->n_entries == cap) {
            cap = cap ? cap * 2 : 64;
            reply->entries = xrealloc(reply->entries, cap * sizeof(*reply->entries));
        }
        reply->entries[reply->n_entries++] = e;
    }
    mdb_cursor_close(cur);
    reply->count = reply->n_entries;
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "",
           truncated ? xasprintf("only the first %d entries", POLICY_LIST_MAX) : NULL);
}

/* admin_delete - forget a key; intrusion: unblock and forget the
 * counters, but keep the spam history adaptive greylisting needs. */
static void admin_delete(policy_state_t *s, int t, const char *key, const char *sess,
                         PolicyReply *reply)
{
    char keybuf[POLICY_KEY_MAX + 4];
    int done;

    if (t == T_INTRUSION) {
        intr_rec r;

        if ((done = rec_get(s, t, key, &r, sizeof(r))) != 0) {
            if (r.spam_seen_at != 0) {
                int64_t spam = r.spam_seen_at;

                memset(&r, 0, sizeof(r));
                r.spam_seen_at = spam;
                r.last_seen = spam;
                rec_put(s, t, key, &r, sizeof(r));
            } else {
                rec_del(s, t, key);
            }
        } else {
            done = rec_del(s, t, key);       /* an unreadable record */
        }
    } else if (t == T_AWL && strchr(key, ' ') == NULL) {
        answer_error(reply, "an awl key is \"USER ADDRESS\"");  /* not a user's header */
        return;
    } else {
        done = rec_del(s, t, key);
    }
    if (!done) {
        answer(reply, CORREIO__POLICY_ACTION__POLICY_ERROR, "NOT_FOUND", xstrdup("not found"));
        return;
    }
    log_info("policy: %s: %s: %s key=%s by the administrator", sess, table_names[t],
             t == T_INTRUSION ? "unblock" : "delete", printable(keybuf, sizeof(keybuf), key));
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "", NULL);
}

static void admin_pass(policy_state_t *s, const char *key, int64_t now, const char *sess,
                       PolicyReply *reply)
{
    grey_rec g;
    char keybuf[POLICY_KEY_MAX + 4];

    if (!rec_get(s, T_GREYLIST, key, &g, sizeof(g))) {
        memset(&g, 0, sizeof(g));
        g.first = now;
    }
    g.passed_at = now;
    g.last = now;
    rec_put(s, T_GREYLIST, key, &g, sizeof(g));
    log_info("policy: %s: greylist: pass triplet=<%s> by the administrator", sess,
             printable(keybuf, sizeof(keybuf), key));
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "GREYLIST_PASSED", NULL);
}

static void admin_block(policy_state_t *s, const policy_settings *ps, const char *ip,
                        int64_t now, const char *sess, PolicyReply *reply)
{
    intr_rec r;

    if (!rec_get(s, T_INTRUSION, ip, &r, sizeof(r)))
        memset(&r, 0, sizeof(r));
    r.last_seen = now;
    block(&r, R_MANUAL, 0, now, ps->block_time);
    rec_put(s, T_INTRUSION, ip, &r, sizeof(r));
    log_block(sess, ip, &r, "by the administrator");
    reply->until = (uint64_t)r.blocked_until;
    answer(reply, CORREIO__POLICY_ACTION__POLICY_OK, "MANUAL", NULL);
}

/* ------------------------------------------------------------ apply */

void policy_state_apply(policy_state_t *s, const policy_settings *ps, const PolicyRequest *req,
                        int64_t now, const char *node, PolicyReply *reply)
{
    char sess[80], ip[INET6_ADDRSTRLEN + 8];
    const char *key = req->key ? req->key : "";
    int t = -1;

    if (s->txn == NULL)
        log_panic("policy_state_apply: no transaction open");
    reply->version = WIRE_VERSION;
    reply->id = req->id;
    if (req->session && *req->session)
        printable(sess, sizeof(sess), req->session);
    else
        snprintf(sess, sizeof(sess), "NOQUEUE");

    if (strlen(key) > POLICY_KEY_MAX) {
        answer_error(reply, "key too long");
        return;
    }
    if (*key == 0 && req->kind != CORREIO__POLICY_KIND__POLICY_LIST) {
        answer_error(reply, "no key");
        return;
    }
    switch (req->kind) {
    case CORREIO__POLICY_KIND__POLICY_CONNECT:
    case CORREIO__POLICY_KIND__POLICY_EVENT:
    case CORREIO__POLICY_KIND__POLICY_SPAM_SEEN:
    case CORREIO__POLICY_KIND__POLICY_BLOCK:
        if (!ip_key(key, ip, sizeof(ip))) {
            char buf[64];

            log_warn("policy: %s: not an IP address: \"%s\"", sess,
                     printable(buf, sizeof(buf), key));
            answer_error(reply, "the key is not an IP address");
            return;
        }
        break;
    case CORREIO__POLICY_KIND__POLICY_LIST:
    case CORREIO__POLICY_KIND__POLICY_DELETE:
        if ((t = table_code(req->table)) < 0) {
            answer_error(reply, "unknown table (greylist, intrusion, limits or awl)");
            return;
        }
        /* an administrator types an IPv6 address as it is */
        if (req->kind == CORREIO__POLICY_KIND__POLICY_DELETE && t == T_INTRUSION
            && ip_key(key, ip, sizeof(ip)))
            key = ip;
        break;
    default:
        break;
    }

    switch (req->kind) {
    case CORREIO__POLICY_KIND__POLICY_CONNECT:
        intrusion_connect(s, ps, ip, now, sess, node, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_EVENT:
        intrusion_event(s, ps, req, ip, now, sess, node, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_GREYLIST:
        greylist_decide(s, ps, req, now, sess, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_LIMIT_CHECK:
        limit_check(s, req, now, sess, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT:
        limit_count(s, req, now, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_SPAM_SEEN:
        spam_seen(s, ip, now, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_AWL_NOTE:
        awl_note(s, ps, req, now, sess, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_AWL_CHECK:
        awl_check(s, ps, req, now, sess, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_LIST:
        admin_list(s, ps, t, req, now, node, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_DELETE:
        admin_delete(s, t, key, sess, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_PASS:
        if (req->table && *req->table && strcmp(req->table, "greylist") != 0)
            answer_error(reply, "pass applies to the greylist table only");
        else
            admin_pass(s, key, now, sess, reply);
        break;
    case CORREIO__POLICY_KIND__POLICY_BLOCK:
        if (req->table && *req->table && strcmp(req->table, "intrusion") != 0)
            answer_error(reply, "block applies to the intrusion table only");
        else
            admin_block(s, ps, ip, now, sess, reply);
        break;
    default:
        log_warn("policy: %s: request of unknown kind %d", sess, (int)req->kind);
        answer_error(reply, "unknown request kind");
        break;
    }
    if (s->rc != 0 && reply->action != CORREIO__POLICY_ACTION__POLICY_ERROR) {
        policy_reply_clear(reply);
        reply->version = WIRE_VERSION;
        reply->id = req->id;
        answer_error(reply, "policy state write failed");
    }
}

/* ------------------------------------------------------------ sweep */

/* dead - can the record (table t) no longer change a decision? */
static bool dead(int t, const MDB_val *v, const policy_settings *ps, int64_t now)
{
    if (t == T_GREYLIST) {
        grey_rec g;

        if (v->mv_size != sizeof(g))
            return true;
        memcpy(&g, v->mv_data, sizeof(g));
        if (g.version != REC_VERSION)
            return true;
        return g.passed_at ? now - g.last > ps->greylist_pass_lifetime
                           : now > g.first + ps->greylist_delay + ps->greylist_retry_window;
    }
    if (t == T_INTRUSION) {
        intr_rec r;

        if (v->mv_size != sizeof(r))
            return true;
        memcpy(&r, v->mv_data, sizeof(r));
        if (r.version != REC_VERSION)
            return true;
        if (blocked(&r, now) || spam_recent(&r, ps, now))
            return false;
        for (int c = 0; c < C_COUNT; c++) {
            int64_t window = c == C_CONN ? CONN_WINDOW : ps->window;

            if (r.ctr[c].start && now - r.ctr[c].start < window)
                return false;
        }
        return true;
    }
    if (t == T_AWL) {                   /* an address, or its user's header */
        awl_rec a;
        awl_user_rec u;

        if (v->mv_size == sizeof(a)) {
            memcpy(&a, v->mv_data, sizeof(a));
            return a.version != REC_VERSION || !awl_alive(a.last, ps, now);
        }
        if (v->mv_size == sizeof(u)) {  /* its addresses are all older */
            memcpy(&u, v->mv_data, sizeof(u));
            return u.version != REC_VERSION || !awl_alive(u.last, ps, now);
        }
        return true;
    }
    limit_rec l;

    if (v->mv_size != sizeof(l))
        return true;
    memcpy(&l, v->mv_data, sizeof(l));
    return l.version != REC_VERSION || now - l.window_start >= LIMIT_WINDOW;
}

/* sweep_table - go on from where the last sweep of t stopped; look at
 * no more than *budget records and delete at most *left.  Returns the
 * LMDB error, if any. */
static int sweep_table(policy_state_t *s, MDB_txn *txn, int t, const policy_settings *ps,
                       int64_t now, unsigned *left, unsigned *budget, unsigned *gone)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc = mdb_cursor_open(txn, s->dbi[t], &cur);

    if (rc != 0)
        return rc;
    if (s->resume[t]) {
        k.mv_size = s->resume_len[t];
        k.mv_data = s->resume[t];
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    } else {
        rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    }
    for (; rc == 0 && *left > 0 && *budget > 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        (*budget)--;
        if (!dead(t, &v, ps, now))
            continue;
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        (*left)--;
        (*gone)++;
    }
    xfree(&s->resume[t]);
    if (rc == 0) {                          /* stopped early: go on from here */
        s->resume[t] = xmemdup(k.mv_data, k.mv_size);
        s->resume_len[t] = k.mv_size;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

unsigned policy_state_sweep(policy_state_t *s, const policy_settings *ps, int64_t now,
                            unsigned max)
{
    MDB_txn *txn;
    unsigned left = max, budget = max * SWEEP_SCAN_PER_DELETE, gone = 0;
    int rc;

    if (s->txn)
        log_panic("policy_state_sweep: called inside a batch");
    if (budget < max)
        budget = UINT32_MAX;                /* overflow */
    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0) {
        log_warn("policy: sweep: cannot begin a transaction: %s", mdb_strerror(rc));
        return 0;
    }
    for (int t = 0; t < T_COUNT && rc == 0; t++)
        rc = sweep_table(s, txn, t, ps, now, &left, &budget, &gone);
    if (rc == 0)
        rc = mdb_txn_commit(txn);
    else
        mdb_txn_abort(txn);
    if (rc != 0) {
        log_warn("policy: sweep failed: %s", mdb_strerror(rc));
        for (int t = 0; t < T_COUNT; t++)
            xfree(&s->resume[t]);
        return 0;
    }
    if (gone)
        log_info("policy: sweep: %u expired records deleted", gone);
    return gone;
}
