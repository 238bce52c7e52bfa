/* test_bayes.c - the Bayesian filter's rows: BAYES_00, _05, _20, _40,
 * _50, _60, _80, _95, _99 (the probability's band, as SpamAssassin's
 * 23_bayes.cf draws them: BAYES_00 is P <= 0.01, BAYES_05 0.01 < P <=
 * 0.05, ..., BAYES_99 P > 0.99) and BAYES_999 (P > 0.999, in addition to
 * BAYES_99).
 *
 * Only with spam_bayes = yes, and only once the database (lib/bayes.h,
 * spam_bayes_database, written by `correio bayes train`) knows
 * spam_bayes_min_learned ham and spam messages.
 *
 * The database is opened read-only once per process and shared by the
 * rows (as test_lists.c shares the lists); a missing one is logged once
 * and tried again at most once a second, so training while classifiers
 * run takes effect without a reload.  Each message is one read
 * transaction (bayes_classify), so a training run counts from the next
 * message on.
 *
 * The probability is computed once per message: the rows run in table
 * order within one scoring_run, so a row whose index is not above the
 * last one seen, or another message (mime or envelope pointer), starts
 * a new message.
 */
#include <string.h>

#include "bayes.h"
#include "log.h"
#include "scoring.h"
#include "timeutil.h"
#include "xalloc.h"

#define BAYES_RETRY_MISSING_MS 1000
#define BAYES_RETRY_BROKEN_MS  10000

/* The rows, in table order: the band (lo, hi] of P each one hits. */
enum { B00, B05, B20, B40, B50, B60, B80, B95, B99, B999, B_NROWS };
static const struct { double lo, hi; } bayes_band[B_NROWS] = {
    [B00] = {-1, 0.01},   [B05] = {0.01, 0.05}, [B20] = {0.05, 0.20},
    [B40] = {0.20, 0.40}, [B50] = {0.40, 0.60}, [B60] = {0.60, 0.80},
    [B80] = {0.80, 0.95}, [B95] = {0.95, 0.99}, [B99] = {0.99, 2},
    [B999] = {0.999, 2},
};

/* The one state of this process, every row's ctx points here. */
static struct {
    unsigned  refs;
    bool      enabled;          /* spam_bayes */
    unsigned  min_learned;      /* spam_bayes_min_learned */
    char     *dir;              /* spam_bayes_database */
    bayes_t  *db;
    int64_t   next_try_ms;
    bool      told_missing;     /* logged that it is missing (once per dir) */
    /* this message's probability */
    int           last_row;
    const void   *last_mime, *last_env;
    bool          have_p;
    double        p;
} bayes_shared = {.last_row = B_NROWS};

void *test_bayes_new(const config_t *cfg)
{
    const char *dir = config_str(cfg, "spam_bayes_database");

    bayes_shared.enabled = config_bool(cfg, "spam_bayes");
    bayes_shared.min_learned = (unsigned)config_int(cfg, "spam_bayes_min_learned");
    if (bayes_shared.dir == NULL || strcmp(bayes_shared.dir, dir) != 0) {
        bayes_close(&bayes_shared.db);          /* the database moved */
        xfree(&bayes_shared.dir);
        bayes_shared.dir = xstrdup(dir);
        bayes_shared.next_try_ms = 0;
        bayes_shared.told_missing = false;
    }
    bayes_shared.last_row = B_NROWS;            /* a reload starts afresh */
    bayes_shared.refs++;
    return &bayes_shared;
}

void test_bayes_free(void *ctx)
{
    (void)ctx;
    if (bayes_shared.refs > 0 && --bayes_shared.refs == 0) {
        bayes_close(&bayes_shared.db);
        xfree(&bayes_shared.dir);
    }
}

/* bayes_handle - the shared database, opened if it can be now; NULL when
 * there is none (yet). */
static bayes_t *bayes_handle(void)
{
    bool missing = false;
    char *err = NULL;
    int64_t now;

    if (bayes_shared.db || bayes_shared.dir == NULL)
        return bayes_shared.db;
    if ((now = time_mono_ms()) < bayes_shared.next_try_ms)
        return NULL;
    bayes_shared.db = bayes_open(bayes_shared.dir, false, &missing, &err);
    if (bayes_shared.db == NULL) {
        if (!missing)
            log_warn("bayes: %s; scoring without Bayes", err);
        else if (!bayes_shared.told_missing)
            log_info("bayes: no database in %s yet: BAYES_* silent until "
                     "`correio bayes train` makes it", bayes_shared.dir);
        bayes_shared.told_missing = bayes_shared.told_missing || missing;
        bayes_shared.next_try_ms = now + (missing ? BAYES_RETRY_MISSING_MS : BAYES_RETRY_BROKEN_MS);
        xfree(&err);
    } else {
        log_info("bayes: using the database in %s", bayes_shared.dir);
    }
    return bayes_shared.db;
}

/* bayes_prob - this message's probability into *p; false when Bayes is
 * off or says nothing.  Computed at the first row of each message. */
static bool bayes_prob(const scoring_msg *msg, int row, double *p)
{
    if (!bayes_shared.enabled || msg->mime == NULL)
        return false;
    if (row <= bayes_shared.last_row || msg->mime != bayes_shared.last_mime ||
        msg->env != bayes_shared.last_env) {
        bayes_t *db = bayes_handle();
        char *err = NULL;
        int rc = 0;

        bayes_shared.last_mime = msg->mime;
        bayes_shared.last_env = msg->env;
        bayes_shared.have_p = false;
        if (db && (rc = bayes_classify(db, msg->mime, bayes_shared.min_learned,
                                       &bayes_shared.p, &err)) < 0) {
            log_warn("%s: bayes: %s; reopening later",
                     msg->env && msg->env->queue_id ? msg->env->queue_id : "-", err);
            xfree(&err);
            bayes_close(&bayes_shared.db);
            bayes_shared.next_try_ms = time_mono_ms() + BAYES_RETRY_BROKEN_MS;
        }
        bayes_shared.have_p = rc == 1;
    }
    bayes_shared.last_row = row;
    *p = bayes_shared.p;
    return bayes_shared.have_p;
}

/* bayes_row - does row's band hold this message's probability? */
static bool bayes_row(const scoring_msg *msg, int row)
{
    double p;

    return bayes_prob(msg, row, &p) && p > bayes_band[row].lo && p <= bayes_band[row].hi;
}

bool test_bayes_00(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B00); }
bool test_bayes_05(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B05); }
bool test_bayes_20(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B20); }
bool test_bayes_40(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B40); }
bool test_bayes_50(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B50); }
bool test_bayes_60(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B60); }
bool test_bayes_80(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B80); }
bool test_bayes_95(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B95); }
bool test_bayes_99(const scoring_msg *msg, void *ctx)  { (void)ctx; return bayes_row(msg, B99); }
bool test_bayes_999(const scoring_msg *msg, void *ctx) { (void)ctx; return bayes_row(msg, B999); }
