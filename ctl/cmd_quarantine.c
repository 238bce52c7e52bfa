/* cmd_quarantine.c - `correio quarantine`: spam that delivery holds for
 * the operator (spam_quarantine_score, delivery/quarantine.c).
 *
 *   list [ADDRESS|@DOMAIN]   held copies: queue id, score, size, when held,
 *                            sender, header From, Subject, recipients
 *   show ID                  one message: verdict hits, held recipients,
 *                            header section
 *   release ID [RCPT]        deliver to the inbox now (untagged), and add
 *                            the sender to each released recipient's
 *                            whitelist (as `correio list add whitelist
 *                            RCPT SENDER`)
 *   delete ID [RCPT]         drop it, no bounce
 *
 * Without RCPT, release and delete take every held recipient of ID.  The
 * delivery nodes are those queue_admin_endpoints names; every command
 * goes to all of them (admin_nodes.h), and an id is "not in the
 * quarantine" when no node that answered holds it.  Exit status: 0 done,
 * 1 partly done or not found (a node not answering, a whitelist not
 * written), 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "admin_nodes.h"
#include "ctl.h"
#include "log.h"
#include "qid.h"
#include "queue_print.h"
#include "spam_lists.h"
#include "xalloc.h"

#define QUARANTINE_LIST_TIMEOUT_MS   15000
#define QUARANTINE_CHANGE_TIMEOUT_MS 10000
#define QUARANTINE_MISSING_PREFIX    "not in the quarantine:"
#define QUARANTINE_ARG_MAX           320

/* ------------------------------------------------------------ helpers */

/* q_when - "Sun Nov 23 08:11:00" for microseconds since the epoch. */
static const char *q_when(char *dst, size_t size, uint64_t us)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;

    if (us == 0 || localtime_r(&t, &tm) == NULL
        || strftime(dst, size, "%a %b %e %H:%M:%S", &tm) == 0)
        snprintf(dst, size, "-");
    return dst;
}

static const char *q_clean(char *dst, size_t size, const char *s)
{
    return log_printable(dst, size, s ? s : "", s ? strlen(s) : 0);
}

/* q_nodes - the delivery nodes, pinged; NULL (after saying why) when
 * the configuration names none. */
static admin_nodes *q_nodes(const config_t *cfg)
{
    const char *const *endpoints = config_list(cfg, "queue_admin_endpoints");

    if (endpoints == NULL || endpoints[0] == NULL) {
        ctl_error("queue_admin_endpoints names no delivery node");
        return NULL;
    }
    return admin_nodes_open(cfg, endpoints, "delivery");
}

/* q_missing - did node n answer that it does not hold the message? */
static bool q_missing(const admin_node *n)
{
    return n->reply && n->reply->status == 1 && n->reply->text
           && strncmp(n->reply->text, QUARANTINE_MISSING_PREFIX,
                      strlen(QUARANTINE_MISSING_PREFIX)) == 0;
}

/* q_answers - after a call: a node whose answer is an error (not
 * "not in the quarantine") becomes down; then every down node is named
 * on stderr.  Returns how many are down. */
static size_t q_answers(admin_nodes *ns, const char *command, const char *consequence)
{
    for (size_t i = 0; i < ns->n; i++) {
        admin_node *n = &ns->node[i];

        if (n->reply && n->reply->status != 0 && !q_missing(n))
            admin_node_failed(n, command);
    }
    return admin_nodes_report_down(ns, "delivery", consequence);
}

/* q_id_ok - usage check of a queue id; false after the message. */
static bool q_id_ok(const char *id)
{
    char shown[128];

    if (qid_valid(id, strlen(id)))
        return true;
    ctl_error("not a queue id: %s", log_printable(shown, sizeof shown, id, strlen(id)));
    return false;
}

/* q_rcpt_lines - the held recipients of e, indented. */
static void q_rcpt_lines(const QueueEntry *e)
{
    char a[300], o[300], t[64];

    for (size_t i = 0; i < e->n_rcpt; i++) {
        const Recipient *r = e->rcpt[i];

        printf("    %s", q_clean(a, sizeof a, r->address));
        if (r->original && r->original[0] && strcasecmp(r->original, r->address) != 0)
            printf(" (to <%s>)", q_clean(o, sizeof o, r->original));
        printf("  held since %s\n", q_when(t, sizeof t, r->quarantined_at));
    }
}

/* ------------------------------------------------------------ list */

static void q_list_entry(const QueueEntry *e)
{
    char id[64], t[64], sender[300], from[300], subject[400];

    printf("%-17s  %6.1f  %9llu  %-19s  %s\n", q_clean(id, sizeof id, e->queue_id), e->score,
           (unsigned long long)e->size, q_when(t, sizeof t, e->arrival),
           e->sender[0] ? q_clean(sender, sizeof sender, e->sender) : "<>");
    printf("    From: %s\n", e->header_from[0] ? q_clean(from, sizeof from, e->header_from) : "-");
    printf("    Subject: %s\n", q_clean(subject, sizeof subject, e->subject));
    q_rcpt_lines(e);
}

static int q_list(const ctl_opts *o, int argc, char **argv)
{
    const char *args[2] = {NULL, NULL};
    size_t n_entries = 0, down;
    bool header = false;

    if (argc > 1)
        return ctl_usage_error("quarantine", "quarantine list takes at most one ADDRESS or @DOMAIN");
    if (argc == 1) {
        if (!strchr(argv[0], '@') || strlen(argv[0]) > QUARANTINE_ARG_MAX
            || strcmp(argv[0], "@") == 0)
            return ctl_usage_error("quarantine", "quarantine list: '%s' is no ADDRESS or @DOMAIN",
                                   argv[0]);
        args[0] = argv[0];
    }
    config_t *cfg = ctl_load_config(o);
    admin_nodes *ns = q_nodes(cfg);
    if (ns == NULL) {
        config_free(&cfg);
        return 1;
    }
    admin_nodes_call(ns, "quarantine-list", args, QUARANTINE_LIST_TIMEOUT_MS);
    for (size_t i = 0; i < ns->n; i++) {
        const admin_node *n = &ns->node[i];

        if (n->reply == NULL || n->reply->status != 0)
            continue;
        if (n->reply->text && strstr(n->reply->text, "truncated"))
            ctl_error("delivery node %s listed only its first %zu messages", admin_node_label(n),
                      n->reply->n_entries);
        for (size_t j = 0; j < n->reply->n_entries; j++) {
            if (!header)
                printf("%-17s  %6s  %9s  %-19s  %s\n", "QUEUE-ID", "SCORE", "SIZE", "ARRIVAL",
                       "SENDER");
            header = true;
            q_list_entry(n->reply->entries[j]);
            n_entries++;
        }
    }
    fflush(stdout);
    down = q_answers(ns, "quarantine-list", "its quarantine is not listed");
    if (admin_nodes_up(ns) > 0)
        printf("-- %zu message%s in quarantine\n", n_entries, n_entries == 1 ? "" : "s");
    admin_nodes_free(&ns);
    config_free(&cfg);
    return down ? 1 : 0;
}

/* ------------------------------------------------------------ show */

static int q_show(const ctl_opts *o, int argc, char **argv)
{
    const char *args[2] = {NULL, NULL};
    size_t found = 0;
    int rc = 0;

    if (argc != 1)
        return ctl_usage_error("quarantine", "quarantine show needs one queue id");
    if (!q_id_ok(argv[0]))
        return 1;
    config_t *cfg = ctl_load_config(o);
    admin_nodes *ns = q_nodes(cfg);
    if (ns == NULL) {
        config_free(&cfg);
        return 1;
    }
    args[0] = argv[0];
    admin_nodes_call(ns, "quarantine-show", args, QUARANTINE_CHANGE_TIMEOUT_MS);
    for (size_t i = 0; i < ns->n; i++) {
        const admin_node *n = &ns->node[i];
        char buf[600];

        if (n->reply == NULL || n->reply->status != 0 || n->reply->n_entries == 0)
            continue;
        const QueueEntry *e = n->reply->entries[0];
        if (found++)
            printf("\n");
        printf("Queue-ID: %s\n", q_clean(buf, sizeof buf, e->queue_id));
        printf("Sender: <%s>\n", q_clean(buf, sizeof buf, e->sender));
        printf("From: %s\n", e->header_from[0] ? q_clean(buf, sizeof buf, e->header_from) : "-");
        printf("Subject: %s\n", q_clean(buf, sizeof buf, e->subject));
        printf("Size: %llu\n", (unsigned long long)e->size);
        printf("Score: %.1f\n", e->score);
        printf("Hits:");
        for (size_t h = 0; h < e->n_hits; h++)
            printf("%s %s", h ? "," : "", q_clean(buf, sizeof buf, e->hits[h]));
        printf("%s\nHeld for:\n", e->n_hits ? "" : " -");
        q_rcpt_lines(e);
        printf("\n");
        queue_print_headers(stdout, n->reply->text);
    }
    fflush(stdout);
    if (q_answers(ns, "quarantine-show", "it was not asked for the message"))
        rc = 1;
    if (found == 0 && admin_nodes_up(ns) > 0) {
        ctl_error("%s %s", QUARANTINE_MISSING_PREFIX, argv[0]);
        rc = 1;
    }
    admin_nodes_free(&ns);
    config_free(&cfg);
    return rc;
}

/* ------------------------------------------------------------ changes */

/* q_whitelist - the sender of e into the whitelist of each recipient e
 * names (the address the client gave, which the classifier checks).
 * Returns how many could not be written. */
static size_t q_whitelist(const ctl_opts *o, const QueueEntry *e)
{
    char s[300], r[300];
    size_t failed = 0;

    if (!e->sender[0]) {
        printf("correio: %s: the null sender <> cannot be whitelisted\n", e->queue_id);
        return 0;
    }
    spam_lists_t *l = list_open(o);
    if (l == NULL)
        return e->n_rcpt;
    for (size_t i = 0; i < e->n_rcpt; i++) {
        const Recipient *rc = e->rcpt[i];
        const char *scope = rc->original && rc->original[0] ? rc->original : rc->address;
        char *err = NULL;

        if (spam_lists_add(l, scope, SPAM_LISTS_WHITELIST, e->sender, 0, &err) != 0) {
            ctl_error("cannot whitelist <%s> for %s: %s", q_clean(s, sizeof s, e->sender),
                      q_clean(r, sizeof r, scope), err ? err : "?");
            xfree(&err);
            failed++;
            continue;
        }
        printf("correio: <%s> whitelisted for %s\n", q_clean(s, sizeof s, e->sender),
               q_clean(r, sizeof r, scope));
    }
    spam_lists_close(&l);
    return failed;
}

static int q_change(const ctl_opts *o, int argc, char **argv, bool release)
{
    const char *name = release ? "release" : "delete";
    const char *args[3] = {NULL, NULL, NULL};
    size_t found = 0, problems = 0;
    char a[300];

    if (argc < 1 || argc > 2)
        return ctl_usage_error("quarantine", "quarantine %s needs a queue id and optionally RCPT",
                               name);
    if (argc == 2 && (strlen(argv[1]) > QUARANTINE_ARG_MAX || !strchr(argv[1], '@'))
        && strcmp(argv[1], "ALL") != 0)
        return ctl_usage_error("quarantine", "quarantine %s: '%s' is no recipient address",
                               name, argv[1]);
    if (!q_id_ok(argv[0]))
        return 1;
    config_t *cfg = ctl_load_config(o);
    admin_nodes *ns = q_nodes(cfg);
    if (ns == NULL) {
        config_free(&cfg);
        return 1;
    }
    args[0] = argv[0];
    args[1] = argc == 2 ? argv[1] : NULL;
    admin_nodes_call(ns, release ? "quarantine-release" : "quarantine-delete", args,
                     QUARANTINE_CHANGE_TIMEOUT_MS);
    for (size_t i = 0; i < ns->n; i++) {
        const admin_node *n = &ns->node[i];

        if (n->reply == NULL || n->reply->status != 0 || n->reply->n_entries == 0)
            continue;
        const QueueEntry *e = n->reply->entries[0];
        found++;
        for (size_t k = 0; k < e->n_rcpt; k++)
            printf("correio: %s: %s from quarantine: %s\n", e->queue_id,
                   release ? "released" : "deleted", q_clean(a, sizeof a, e->rcpt[k]->address));
        if (release)
            problems += q_whitelist(o, e);
    }
    fflush(stdout);
    problems += q_answers(ns, release ? "quarantine-release" : "quarantine-delete",
                          "the message, if it holds it, was not changed");
    if (found == 0 && admin_nodes_up(ns) > 0) {
        ctl_error("%s %s%s%s", QUARANTINE_MISSING_PREFIX, argv[0], argc == 2 ? " " : "",
                  argc == 2 ? q_clean(a, sizeof a, argv[1]) : "");
        problems++;
    }
    admin_nodes_free(&ns);
    config_free(&cfg);
    return problems ? 1 : 0;
}

/* ------------------------------------------------------------ dispatch */

int cmd_quarantine(const ctl_opts *o, int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";

    if (strcmp(verb, "list") == 0)
        return q_list(o, argc - 2, argv + 2);
    if (strcmp(verb, "show") == 0)
        return q_show(o, argc - 2, argv + 2);
    if (strcmp(verb, "release") == 0)
        return q_change(o, argc - 2, argv + 2, true);
    if (strcmp(verb, "delete") == 0)
        return q_change(o, argc - 2, argv + 2, false);
    if (argc < 2)
        return ctl_usage_error("quarantine", "quarantine needs a subcommand");
    return ctl_usage_error("quarantine", "quarantine: unknown subcommand '%s'", verb);
}
