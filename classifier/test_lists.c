/* test_lists.c - the white and black lists and keyword points that
 * `correio list` keeps (lib/spam_lists.h), and the whitelisting of
 * authenticated senders.
 *
 * Rows of the table: USER_WHITELIST, USER_BLACKLIST, DOMAIN_WHITELIST,
 * DOMAIN_BLACKLIST, SERVER_WHITELIST, SERVER_BLACKLIST (at most one of
 * them hits: the precedence of spam_lists.h decides), KEYWORDS (the sum
 * of the points of the keywords found, times the row's score) and
 * AUTH_WHITELIST (the client authenticated; spam_whitelist_authenticated).
 *
 * Whose lists: a message is scored once for all its recipients, so the
 * user and domain lists are those of the first recipient in a domain of
 * ours (mydestination, virtual_mailbox_domains, relay_domains), with the
 * recipient_delimiter extension taken off ("alice+news@" is "alice@");
 * with none of ours, only the server lists apply.
 *
 * The environment (data_directory/lists) is opened read-only once per
 * process, shared by the rows, and opened late when `correio list` has
 * not made it yet (tried again at most once a second).  Each lookup is a
 * new read transaction, so a change by `correio list` counts from the
 * next message on.
 */
#include <string.h>
#include <strings.h>

#include "address.h"
#include "log.h"
#include "scoring.h"
#include "spam_lists.h"
#include "timeutil.h"
#include "xalloc.h"

/* How long to wait before trying to open a missing or broken environment again. */
#define LISTS_RETRY_MISSING_MS 1000
#define LISTS_RETRY_BROKEN_MS  10000

/* The one read-only handle of this process, shared by every row's ctx. */
static struct {
    spam_lists_t *lists;
    char         *dir;
    unsigned      refs;
    int64_t       next_try_ms;
} lists_shared;

typedef struct lists_ctx {
    char  **ours;             /* our domains, NULL-terminated */
    char   *delimiter;        /* recipient_delimiter characters, "" none */
    bool    auth_whitelist;   /* spam_whitelist_authenticated */
    double  last_points;      /* KEYWORDS: what fn found, for points */
} lists_ctx;

/* lists_add_domains - append the items of list parameter name to ours. */
static void lists_add_domains(lists_ctx *c, size_t *n, const config_t *cfg, const char *name)
{
    const char *const *items = config_list(cfg, name);

    for (size_t i = 0; items && items[i]; i++) {
        c->ours = xrealloc(c->ours, (*n + 2) * sizeof *c->ours);
        c->ours[(*n)++] = xstrdup(items[i][0] == '.' ? items[i] + 1 : items[i]);
        c->ours[*n] = NULL;
    }
}

void *test_lists_new(const config_t *cfg)
{
    lists_ctx *c = xcalloc(1, sizeof *c);
    char *dir = xasprintf("%s/lists", config_str(cfg, "data_directory"));
    size_t n = 0;

    lists_add_domains(c, &n, cfg, "mydestination");
    lists_add_domains(c, &n, cfg, "virtual_mailbox_domains");
    lists_add_domains(c, &n, cfg, "relay_domains");
    c->delimiter = xstrdup(config_str(cfg, "recipient_delimiter"));
    c->auth_whitelist = config_bool(cfg, "spam_whitelist_authenticated");
    if (lists_shared.dir == NULL || strcmp(lists_shared.dir, dir) != 0) {
        spam_lists_close(&lists_shared.lists);     /* data_directory changed */
        xfree(&lists_shared.dir);
        lists_shared.dir = dir;
        lists_shared.next_try_ms = 0;
    } else {
        xfree(&dir);
    }
    lists_shared.refs++;
    return c;
}

void test_lists_free(void *ctx)
{
    lists_ctx *c = ctx;

    for (size_t i = 0; c->ours && c->ours[i]; i++)
        xfree(&c->ours[i]);
    xfree(&c->ours);
    xfree(&c->delimiter);
    xfree(&c);
    if (lists_shared.refs > 0 && --lists_shared.refs == 0) {
        spam_lists_close(&lists_shared.lists);
        xfree(&lists_shared.dir);
    }
}

/* lists_handle - the shared handle, opened if it can be now; NULL when
 * there are no lists (yet). */
static spam_lists_t *lists_handle(void)
{
    bool missing = false;
    char *err = NULL;
    int64_t now;

    if (lists_shared.lists || lists_shared.dir == NULL)
        return lists_shared.lists;
    if ((now = time_mono_ms()) < lists_shared.next_try_ms)
        return NULL;
    lists_shared.lists = spam_lists_open(lists_shared.dir, false, &missing, &err);
    if (lists_shared.lists == NULL) {
        if (!missing)
            log_warn("spam lists: %s; scoring without them", err);
        lists_shared.next_try_ms = now + (missing ? LISTS_RETRY_MISSING_MS : LISTS_RETRY_BROKEN_MS);
        xfree(&err);
    }
    return lists_shared.lists;
}

/* lists_rcpt - whose lists: the first recipient of ours without its
 * extension (malloc'ed), or NULL for the server lists only. */
static char *lists_rcpt(const lists_ctx *c, const Envelope *env)
{
    for (size_t i = 0; i < env->n_rcpt; i++) {
        const char *a = env->rcpt[i] && env->rcpt[i]->address ? env->rcpt[i]->address : "";
        const char *at = strrchr(a, '@');

        if (at == NULL || at == a || !domain_list_match((const char *const *)c->ours, at + 1))
            continue;
        size_t local = strcspn(a, c->delimiter);
        if (c->delimiter[0] == 0 || local == 0 || a + local > at)
            local = (size_t)(at - a);
        return xasprintf("%.*s%s", (int)local, a, at);
    }
    return NULL;
}

/* lists_check - what the lists say about msg; keywords: look for them
 * too (in the Subject and the text parts).  false when there are no
 * lists or they cannot be read. */
static bool lists_check(const scoring_msg *msg, const lists_ctx *c, bool keywords,
                        spam_lists_verdict *v)
{
    spam_lists_t *l = lists_handle();
    const char **texts = NULL;
    size_t *lens = NULL, n = 0;
    char *rcpt, *err = NULL;
    int rc;

    if (l == NULL)
        return false;
    if (keywords && msg->mime) {
        const mime_header *subject = mime_header_get(msg->mime, "Subject", 0);

        texts = xcalloc(msg->mime->n_parts + 1, sizeof *texts);
        lens = xcalloc(msg->mime->n_parts + 1, sizeof *lens);
        if (subject && subject->decoded) {
            texts[n] = subject->decoded;
            lens[n++] = strlen(subject->decoded);
        }
        for (size_t i = 0; i < msg->mime->n_parts; i++) {
            const mime_part *p = &msg->mime->parts[i];

            if (p->text && !p->attachment) {
                texts[n] = p->text;
                lens[n++] = p->text_len;
            }
        }
    }
    rcpt = lists_rcpt(c, msg->env);
    rc = spam_lists_check(l, rcpt, msg->env->reverse_path ? msg->env->reverse_path : "",
                          texts, lens, n, v, &err);
    if (rc < 0) {
        log_warn("%s: spam lists: %s", msg->env->queue_id ? msg->env->queue_id : "-", err);
        xfree(&err);
    }
    xfree(&rcpt);
    xfree(&texts);
    xfree(&lens);
    return rc == 0;
}

/* lists_sender - does the sender decision come from level, white or not? */
static bool lists_sender(const scoring_msg *msg, void *ctx, spam_lists_level level, bool white)
{
    spam_lists_verdict v;

    return lists_check(msg, ctx, false, &v) && v.level == level && v.whitelisted == white;
}

bool test_lists_user_white(const scoring_msg *msg, void *ctx)
{
    return lists_sender(msg, ctx, SPAM_LISTS_USER, true);
}

bool test_lists_user_black(const scoring_msg *msg, void *ctx)
{
    return lists_sender(msg, ctx, SPAM_LISTS_USER, false);
}

bool test_lists_domain_white(const scoring_msg *msg, void *ctx)
{
    return lists_sender(msg, ctx, SPAM_LISTS_DOMAIN, true);
}

bool test_lists_domain_black(const scoring_msg *msg, void *ctx)
{
    return lists_sender(msg, ctx, SPAM_LISTS_DOMAIN, false);
}

bool test_lists_server_white(const scoring_msg *msg, void *ctx)
{
    return lists_sender(msg, ctx, SPAM_LISTS_SERVER, true);
}

bool test_lists_server_black(const scoring_msg *msg, void *ctx)
{
    return lists_sender(msg, ctx, SPAM_LISTS_SERVER, false);
}

bool test_lists_keywords(const scoring_msg *msg, void *ctx)
{
    lists_ctx *c = ctx;
    spam_lists_verdict v;

    c->last_points = 0;
    if (!lists_check(msg, c, true, &v) || v.keyword_hits == 0 || v.keyword_points == 0.0)
        return false;
    c->last_points = v.keyword_points;
    return true;
}

double test_lists_keyword_points(const scoring_msg *msg, void *ctx)
{
    (void)msg;
    return ((const lists_ctx *)ctx)->last_points;
}

bool test_lists_auth(const scoring_msg *msg, void *ctx)
{
    const lists_ctx *c = ctx;
    const Client *cl = msg->env->client;

    return c->auth_whitelist && cl && cl->auth_user && cl->auth_user[0];
}
