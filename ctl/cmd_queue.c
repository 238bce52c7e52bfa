/* cmd_queue.c - `correio queue`: Postfix's mailq, postsuper, postqueue
 * and qshape over correio's queues.
 *
 *   list [--json]              the ingress spool and every delivery node's
 *                              queue (mailq; --json as postqueue -j)
 *   show ID                    one message and its header section
 *   summary [--json] [QUEUE..] recipients not yet final by domain and age
 *                              (qshape)
 *   hold ID...|ALL [QUEUE]     postsuper -h
 *   release ID...|ALL          postsuper -H: delivered again at once
 *   delete ID...|ALL [QUEUE]   postsuper -d: gone, no bounce
 *   requeue ID...|ALL [QUEUE]  postsuper -r: every recipient not yet final
 *                              is tried again now, backoff forgotten
 *   flush                      postqueue -f: every deferred message now
 *
 * An ID of "-" reads queue ids from stdin (postsuper -d -); a "*" or "!"
 * after an id, as list shows them, is ignored.  QUEUE is active,
 * deferred or hold, and with ALL limits the command to that queue.
 *
 * The delivery nodes are those queue_admin_endpoints names (see
 * admin_nodes.h); every command goes to all of them, and what they
 * answer is merged: an id is "not in the delivery queue" when no node
 * that answered has it.  A node that does not answer is named on stderr
 * and the others still act.  Exit status: 0 done, 1 partly done (an id
 * not in the queue, a node not answering), 2 bad usage.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin_nodes.h"
#include "ctl.h"
#include "log.h"
#include "qid.h"
#include "queue_print.h"
#include "timeutil.h"
#include "xalloc.h"

#define QUEUE_LIST_TIMEOUT_MS   15000
#define QUEUE_SHOW_TIMEOUT_MS   5000
#define QUEUE_CHANGE_TIMEOUT_MS 30000   /* ALL rewrites every record: one commit */
#define QUEUE_IDS_PER_CALL      1000    /* bounds one request and one commit */
#define QUEUE_MISSING_PREFIX    "not in the delivery queue:"

/* The commands that change messages: they differ only in words. */
typedef struct queue_change_verb {
    const char *name;        /* "hold" */
    const char *command;     /* the admin command, "queue-hold" */
    const char *done;        /* what the count line says, "placed on hold" */
    bool        takes_queue; /* ALL may name a queue */
} queue_change_verb;

static const queue_change_verb queue_change_verbs[] = {
    {"hold", "queue-hold", "placed on hold", true},
    {"release", "queue-release", "released from hold", false},
    {"delete", "queue-delete", "deleted", true},
    {"requeue", "queue-requeue", "requeued", true},
};
#define N_CHANGE_VERBS (sizeof(queue_change_verbs) / sizeof(queue_change_verbs[0]))

static const char *const queue_names[] = {"active", "deferred", "hold", NULL};

static bool queue_name_valid(const char *name)
{
    for (size_t i = 0; queue_names[i]; i++)
        if (strcmp(name, queue_names[i]) == 0)
            return true;
    return false;
}

/* ------------------------------------------------------------ nodes */

/* delivery_nodes - the delivery nodes, pinged; NULL (after saying why)
 * when the configuration names none. */
static admin_nodes *delivery_nodes(const config_t *cfg)
{
    const char *const *endpoints = config_list(cfg, "queue_admin_endpoints");

    if (endpoints == NULL || endpoints[0] == NULL) {
        ctl_error("queue_admin_endpoints names no delivery node");
        return NULL;
    }
    return admin_nodes_open(cfg, endpoints, "delivery");
}

/* ------------------------------------------------------------ list */

static bool json_flag(const char *arg)
{
    return strcmp(arg, "--json") == 0 || strcmp(arg, "-j") == 0;
}

/* list_call - "queue-list" to every node; nodes whose answer is an error
 * get it as their error.  Returns the messages listed. */
static size_t list_call(admin_nodes *ns, const char *stage)
{
    size_t n_entries = 0;

    admin_nodes_call(ns, "queue-list", NULL, QUEUE_LIST_TIMEOUT_MS);
    for (size_t i = 0; i < ns->n; i++) {
        admin_node *n = &ns->node[i];

        if (n->reply == NULL)
            continue;
        if (n->reply->status != 0) {
            admin_node_failed(n, "queue-list");
            continue;
        }
        if (n->reply->text && strstr(n->reply->text, "truncated"))
            ctl_error("%s %s listed only its first %zu messages", stage, admin_node_label(n),
                      n->reply->n_entries);
        n_entries += n->reply->n_entries;
    }
    return n_entries;
}

static void list_text(const admin_nodes *ingress, const admin_nodes *delivery)
{
    bool several = admin_nodes_up(delivery) > 1, header = false;

    for (int pass = 0; pass < 2; pass++) {
        const admin_nodes *ns = pass == 0 ? ingress : delivery;

        for (size_t i = 0; i < ns->n; i++) {
            const admin_node *n = &ns->node[i];

            if (n->reply == NULL || n->reply->n_entries == 0)
                continue;
            if (!header)
                queue_print_header(stdout);
            header = true;
            if (several)     /* which node holds what */
                printf("== %s %s (%s)\n", pass == 0 ? "ingress" : "delivery node",
                       admin_node_label(n), n->endpoint);
            for (size_t j = 0; j < n->reply->n_entries; j++)
                queue_print_entry(stdout, n->reply->entries[j]);
        }
    }
}

static void list_json(const admin_nodes *ingress, const admin_nodes *delivery)
{
    for (int pass = 0; pass < 2; pass++) {
        const admin_nodes *ns = pass == 0 ? ingress : delivery;

        for (size_t i = 0; i < ns->n; i++) {
            const admin_node *n = &ns->node[i];

            for (size_t j = 0; n->reply && j < n->reply->n_entries; j++)
                queue_print_json(stdout, n->reply->entries[j], n->name);
        }
    }
}

static int queue_list(const ctl_opts *o, int argc, char **argv)
{
    bool json = false;
    config_t *cfg;
    admin_nodes *ingress, *delivery;
    size_t n_spool, n_queue, up, down;
    const char *spool_endpoint[2] = {NULL, NULL};

    for (int i = 0; i < argc; i++) {
        if (!json_flag(argv[i]))
            return ctl_usage_error("queue", "queue list: unexpected argument '%s'", argv[i]);
        json = true;
    }
    cfg = ctl_load_config(o);
    if ((delivery = delivery_nodes(cfg)) == NULL) {
        config_free(&cfg);
        return 1;
    }
    spool_endpoint[0] = config_str(cfg, "ingress_admin_endpoint");
    ingress = admin_nodes_open(cfg, spool_endpoint, "ingress");
    n_spool = list_call(ingress, "ingress");
    n_queue = list_call(delivery, "delivery node");

    if (json)
        list_json(ingress, delivery);
    else
        list_text(ingress, delivery);
    fflush(stdout);
    down = admin_nodes_report_down(ingress, "ingress", "the ingress spool is not listed");
    down += admin_nodes_report_down(delivery, "delivery", "its messages are not listed");

    if (!json) {
        /* "-- 2 messages in the ingress spool, 0 in the delivery queue" */
        printf("-- ");
        if (admin_nodes_up(ingress))
            printf("%zu message%s in the ingress spool", n_spool, n_spool == 1 ? "" : "s");
        else
            printf("? messages in the ingress spool (no answer)");
        up = admin_nodes_up(delivery);
        if (up == 0)
            printf(", ? in the delivery queue (no answer)");
        else if (up == delivery->n && up == 1)
            printf(", %zu in the delivery queue", n_queue);
        else if (up == delivery->n)
            printf(", %zu in the delivery queue (%zu nodes)", n_queue, up);
        else
            printf(", %zu in the delivery queue (%zu of %zu nodes answered)", n_queue, up,
                   delivery->n);
        printf("\n");
    }
    admin_nodes_free(&ingress);
    admin_nodes_free(&delivery);
    config_free(&cfg);
    return down ? 1 : 0;
}

/* ------------------------------------------------------------ show */

static int queue_show(const ctl_opts *o, int argc, char **argv)
{
    const char *args[2] = {NULL, NULL};
    config_t *cfg;
    admin_nodes *ns;
    size_t found = 0, up;
    char shown[128];
    int rc = 0;

    if (argc != 1)
        return ctl_usage_error("queue", "queue show needs one queue id");
    if (!qid_valid(argv[0], strlen(argv[0]))) {
        ctl_error("not a queue id: %s", log_printable(shown, sizeof(shown), argv[0], strlen(argv[0])));
        return 1;
    }
    cfg = ctl_load_config(o);
    if ((ns = delivery_nodes(cfg)) == NULL) {
        config_free(&cfg);
        return 1;
    }
    args[0] = argv[0];
    admin_nodes_call(ns, "queue-show", args, QUEUE_SHOW_TIMEOUT_MS);
    up = admin_nodes_up(ns);
    for (size_t i = 0; i < ns->n; i++) {
        admin_node *n = &ns->node[i];

        if (n->reply == NULL)
            continue;
        if (n->reply->status == 1 && strncmp(n->reply->text, QUEUE_MISSING_PREFIX,
                                             strlen(QUEUE_MISSING_PREFIX)) == 0)
            continue;
        if (n->reply->status != 0 || n->reply->n_entries == 0) {
            admin_node_failed(n, "queue-show");
            continue;
        }
        if (found++)
            printf("\n");
        if (up > 1)
            printf("== delivery node %s (%s)\n", admin_node_label(n), n->endpoint);
        queue_print_header(stdout);
        queue_print_entry(stdout, n->reply->entries[0]);
        printf("\n");
        queue_print_headers(stdout, n->reply->text);
    }
    fflush(stdout);
    if (admin_nodes_report_down(ns, "delivery", "it was not asked for the message"))
        rc = 1;
    if (found == 0 && admin_nodes_up(ns) > 0) {
        ctl_error("%s %s", QUEUE_MISSING_PREFIX, argv[0]);
        rc = 1;
    }
    admin_nodes_free(&ns);
    config_free(&cfg);
    return rc;
}

/* ------------------------------------------------------------ summary */

static int queue_summary(const ctl_opts *o, int argc, char **argv)
{
    bool json = false, only[3] = {false, false, false}, any_only = false;
    config_t *cfg;
    admin_nodes *ns;
    queue_shape *shape;
    int rc = 0;

    for (int i = 0; i < argc; i++) {
        if (json_flag(argv[i])) {
            json = true;
            continue;
        }
        if (!queue_name_valid(argv[i]))
            return ctl_usage_error("queue", "queue summary: '%s' is not active, deferred or hold",
                                   argv[i]);
        for (size_t q = 0; queue_names[q]; q++)
            if (strcmp(argv[i], queue_names[q]) == 0)
                only[q] = any_only = true;
    }
    cfg = ctl_load_config(o);
    if ((ns = delivery_nodes(cfg)) == NULL) {
        config_free(&cfg);
        return 1;
    }
    list_call(ns, "delivery node");
    shape = queue_shape_new(time_now_us());
    for (size_t i = 0; i < ns->n; i++) {
        const admin_node *n = &ns->node[i];

        for (size_t j = 0; n->reply && j < n->reply->n_entries; j++) {
            const QueueEntry *e = n->reply->entries[j];
            bool wanted = !any_only;

            for (size_t q = 0; !wanted && queue_names[q]; q++)
                wanted = only[q] && strcmp(e->state, queue_names[q]) == 0;
            if (wanted)
                queue_shape_add(shape, e);
        }
    }
    queue_shape_print(stdout, shape, json);
    fflush(stdout);
    if (admin_nodes_report_down(ns, "delivery", "its messages are not counted"))
        rc = 1;
    queue_shape_free(&shape);
    admin_nodes_free(&ns);
    config_free(&cfg);
    return rc;
}

/* ------------------------------------------------------------ flush */

static int queue_flush(const ctl_opts *o, int argc, char **argv)
{
    unsigned long long scheduled = 0;
    config_t *cfg;
    admin_nodes *ns;
    int rc = 0;

    (void)argv;
    if (argc != 0)
        return ctl_usage_error("queue", "queue flush takes no arguments");
    cfg = ctl_load_config(o);
    if ((ns = delivery_nodes(cfg)) == NULL) {
        config_free(&cfg);
        return 1;
    }
    admin_nodes_call(ns, "queue-flush", NULL, QUEUE_CHANGE_TIMEOUT_MS);
    for (size_t i = 0; i < ns->n; i++) {
        admin_node *n = &ns->node[i];

        if (n->reply == NULL)
            continue;
        if (n->reply->status != 0) {
            admin_node_failed(n, "queue-flush");
            continue;
        }
        scheduled += strtoull(n->reply->text, NULL, 10);   /* "N messages scheduled" */
    }
    if (admin_nodes_up(ns))
        printf("correio: %llu message%s scheduled\n", scheduled, scheduled == 1 ? "" : "s");
    fflush(stdout);
    if (admin_nodes_report_down(ns, "delivery", "its deferred messages were not scheduled"))
        rc = 1;
    admin_nodes_free(&ns);
    config_free(&cfg);
    return rc;
}

/* ------------------------------------------------------------ changes */

/* The queue ids a change names, and what became of each. */
typedef struct change_ids {
    char    **id;        /* sorted, unique */
    size_t    n, cap;
    unsigned *asked;     /* per id: nodes that answered about it */
    unsigned *absent;    /* per id: nodes that said it is not in their queue */
    char    **invalid;   /* not queue ids at all */
    size_t    n_invalid;
} change_ids;

static void ids_add(change_ids *ids, const char *word)
{
    size_t len = strlen(word);

    while (len > 0 && (word[len - 1] == '*' || word[len - 1] == '!'))   /* as list marks them */
        len--;
    if (len == 0)
        return;
    if (!qid_valid(word, len)) {
        ids->invalid = xrealloc(ids->invalid, (ids->n_invalid + 1) * sizeof(*ids->invalid));
        ids->invalid[ids->n_invalid++] = xasprintf("%.*s", (int)len, word);
        return;
    }
    if (ids->n == ids->cap) {
        ids->cap = ids->cap ? 2 * ids->cap : 16;
        ids->id = xrealloc(ids->id, ids->cap * sizeof(*ids->id));
    }
    ids->id[ids->n++] = xasprintf("%.*s", (int)len, word);
}

/* ids_read - every white-space separated word of f.  -1 on a read error. */
static int ids_read(change_ids *ids, FILE *f)
{
    char *line = NULL, *save = NULL;
    size_t cap = 0;

    while (getline(&line, &cap, f) >= 0)
        for (char *w = strtok_r(line, " \t\r\n", &save); w; w = strtok_r(NULL, " \t\r\n", &save))
            ids_add(ids, w);
    free(line);
    return ferror(f) ? -1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* ids_finish - sort, drop repeats (delivery would find a deleted id
 * missing the second time), make the counters. */
static void ids_finish(change_ids *ids)
{
    size_t kept = 0;

    if (ids->n > 1)
        qsort(ids->id, ids->n, sizeof(*ids->id), cmp_str);
    for (size_t i = 0; i < ids->n; i++) {
        if (kept > 0 && strcmp(ids->id[kept - 1], ids->id[i]) == 0)
            free(ids->id[i]);
        else
            ids->id[kept++] = ids->id[i];
    }
    ids->n = kept;
    ids->asked = xcalloc(ids->n + 1, sizeof(*ids->asked));
    ids->absent = xcalloc(ids->n + 1, sizeof(*ids->absent));
}

static void ids_free(change_ids *ids)
{
    for (size_t i = 0; i < ids->n; i++)
        free(ids->id[i]);
    for (size_t i = 0; i < ids->n_invalid; i++)
        free(ids->invalid[i]);
    free(ids->id);
    free(ids->invalid);
    free(ids->asked);
    free(ids->absent);
}

/* mark_absent - the ids a node's "not in the delivery queue: ID ID"
 * names, among ids[from, to). */
static void mark_absent(change_ids *ids, size_t from, size_t to, const char *text)
{
    char *copy = xstrdup(text + strlen(QUEUE_MISSING_PREFIX)), *save = NULL;

    for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char **hit = bsearch(&w, ids->id + from, to - from, sizeof(*ids->id), cmp_str);

        if (hit)
            ids->absent[hit - ids->id]++;
    }
    free(copy);
}

/* change_answers - count what the nodes changed for one request (ids
 * [from, to), or ALL when ids is NULL); a node whose answer is an error
 * becomes down. */
static size_t change_answers(admin_nodes *ns, const queue_change_verb *v, change_ids *ids,
                             size_t from, size_t to)
{
    size_t changed = 0;

    for (size_t i = 0; i < ns->n; i++) {
        admin_node *n = &ns->node[i];
        bool missing;

        if (n->reply == NULL)
            continue;
        missing = n->reply->status == 1 && n->reply->text
                  && strncmp(n->reply->text, QUEUE_MISSING_PREFIX, strlen(QUEUE_MISSING_PREFIX)) == 0;
        if (n->reply->status != 0 && !missing) {
            changed += n->reply->n_entries;     /* what it did before it failed */
            admin_node_failed(n, v->command);
            continue;
        }
        changed += n->reply->n_entries;
        for (size_t k = from; ids && k < to; k++)
            ids->asked[k]++;
        if (missing && ids)
            mark_absent(ids, from, to, n->reply->text);
    }
    return changed;
}

/* change_missing - "not in the delivery queue: ID ..." for the ids no
 * answering node had; returns how many. */
static size_t change_missing(const change_ids *ids)
{
    size_t n = 0, len = 0;
    char *text = NULL;

    for (size_t k = 0; k < ids->n; k++) {
        if (ids->asked[k] == 0 || ids->absent[k] < ids->asked[k])
            continue;
        text = xrealloc(text, len + strlen(ids->id[k]) + 2);
        len += (size_t)sprintf(text + len, " %s", ids->id[k]);
        n++;
    }
    if (n)
        ctl_error("%s%s", QUEUE_MISSING_PREFIX, text);
    free(text);
    return n;
}

static int queue_change(const ctl_opts *o, const queue_change_verb *v, int argc, char **argv)
{
    change_ids ids = {0};
    const char **args;
    bool all = argc > 0 && strcmp(argv[0], "ALL") == 0;
    size_t changed = 0, problems = 0;
    config_t *cfg;
    admin_nodes *ns;
    char shown[128];

    if (argc == 0)
        return ctl_usage_error("queue", "queue %s needs queue ids, ALL or - (ids on stdin)", v->name);
    if (all && argc > 2)
        return ctl_usage_error("queue", "queue %s ALL takes at most a queue name", v->name);
    if (all && argc == 2 && !v->takes_queue)
        return ctl_usage_error("queue", "queue %s ALL takes no queue name", v->name);
    if (all && argc == 2 && !queue_name_valid(argv[1]))
        return ctl_usage_error("queue", "queue %s ALL: '%s' is not active, deferred or hold",
                               v->name, argv[1]);
    for (int i = 0; !all && i < argc; i++) {
        if (strcmp(argv[i], "ALL") == 0) {
            ids_free(&ids);
            return ctl_usage_error("queue", "queue %s: ALL goes alone, not among ids", v->name);
        }
        if (strcmp(argv[i], "-") == 0) {
            if (ids_read(&ids, stdin) < 0) {
                ctl_error("cannot read queue ids from stdin: %m");
                ids_free(&ids);
                return 1;
            }
        } else {
            ids_add(&ids, argv[i]);
        }
    }
    ids_finish(&ids);
    for (size_t i = 0; i < ids.n_invalid; i++) {
        ctl_error("not a queue id: %s",
                  log_printable(shown, sizeof(shown), ids.invalid[i], strlen(ids.invalid[i])));
        problems++;
    }
    if (!all && ids.n == 0) {       /* e.g. nothing on stdin: nothing to ask */
        printf("correio: %s: 0 messages\n", v->done);
        ids_free(&ids);
        return problems ? 1 : 0;
    }

    cfg = ctl_load_config(o);
    if ((ns = delivery_nodes(cfg)) == NULL) {
        ids_free(&ids);
        config_free(&cfg);
        return 1;
    }
    args = xcalloc((all ? 3 : QUEUE_IDS_PER_CALL) + 1, sizeof(*args));
    if (all) {
        args[0] = "ALL";
        args[1] = argc == 2 ? argv[1] : NULL;
        admin_nodes_call(ns, v->command, args, QUEUE_CHANGE_TIMEOUT_MS);
        changed += change_answers(ns, v, NULL, 0, 0);
    } else {
        for (size_t from = 0; from < ids.n && admin_nodes_up(ns) > 0; from += QUEUE_IDS_PER_CALL) {
            size_t to = from + QUEUE_IDS_PER_CALL < ids.n ? from + QUEUE_IDS_PER_CALL : ids.n;

            for (size_t k = from; k < to; k++)
                args[k - from] = ids.id[k];
            args[to - from] = NULL;
            admin_nodes_call(ns, v->command, args, QUEUE_CHANGE_TIMEOUT_MS);
            changed += change_answers(ns, v, &ids, from, to);
        }
    }

    /* postsuper: "Placed on hold: 1 message"; then why not all were */
    if (admin_nodes_up(ns) > 0 || changed > 0)
        printf("correio: %s: %zu message%s\n", v->done, changed, changed == 1 ? "" : "s");
    fflush(stdout);
    if (!all)
        problems += change_missing(&ids);
    problems += admin_nodes_report_down(ns, "delivery",
                            all ? "its messages were not changed"
                                : "the ids it holds, if any, were not changed");
    free(args);
    ids_free(&ids);
    admin_nodes_free(&ns);
    config_free(&cfg);
    return problems ? 1 : 0;
}

/* ------------------------------------------------------------ dispatch */

int cmd_queue(const ctl_opts *o, int argc, char **argv)
{
    const char *verb = argc >= 2 ? argv[1] : "";

    if (strcmp(verb, "list") == 0)
        return queue_list(o, argc - 2, argv + 2);
    if (strcmp(verb, "show") == 0)
        return queue_show(o, argc - 2, argv + 2);
    if (strcmp(verb, "summary") == 0)
        return queue_summary(o, argc - 2, argv + 2);
    if (strcmp(verb, "flush") == 0)
        return queue_flush(o, argc - 2, argv + 2);
    for (size_t i = 0; i < N_CHANGE_VERBS; i++)
        if (strcmp(verb, queue_change_verbs[i].name) == 0)
            return queue_change(o, &queue_change_verbs[i], argc - 2, argv + 2);
    if (argc < 2)
        return ctl_usage_error("queue", "queue needs a subcommand");
    return ctl_usage_error("queue", "queue: unknown subcommand '%s'", verb);
}
