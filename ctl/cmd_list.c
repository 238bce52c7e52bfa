/* cmd_list.c - `correio list`: the spam white and black lists and
 * keyword points of the server, a domain or a user (lib/spam_lists.h),
 * read by every classifier from the next message on.
 *
 *   correio list add whitelist|blacklist SCOPE SENDER
 *   correio list add keyword SCOPE WORDS POINTS
 *   correio list del whitelist|blacklist|keyword SCOPE VALUE
 *   correio list show [SCOPE] [--json]
 *
 * SCOPE is "*" (the server), a domain or a user's address; SENDER an
 * address or "@domain".  show prints "SCOPE KIND VALUE [POINTS]" lines,
 * or one JSON object a line with --json.
 *
 * The lists are data_directory/lists, an LMDB environment this command
 * writes directly (classifiers only read it).  Run as root, it makes the
 * directory, gives it to mail_owner and becomes mail_owner before
 * opening it, so that every file of the environment belongs to the user
 * the classifiers run as.
 */
#include <errno.h>
#include <grp.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fsutil.h"
#include "queue_print.h"
#include "spam_lists.h"
#include "xalloc.h"

/* list_open - the lists, writable, or NULL after an error message
 * (also for `correio quarantine release`, see ctl.h). */
spam_lists_t *list_open(const ctl_opts *o)
{
    config_t *cfg = ctl_load_config(o);
    char *dir = xasprintf("%s/lists", config_str(cfg, "data_directory"));
    spam_lists_t *l = NULL;
    char *err = NULL;

    if (ctl_become_owner(cfg, dir) == 0) {
        l = spam_lists_open(dir, true, NULL, &err);
        if (l == NULL) {
            ctl_error("%s", err);
            xfree(&err);
        }
    }
    xfree(&dir);
    config_free(&cfg);
    return l;
}

/* list_points - POINTS of a keyword; false when it is not a number. */
static bool list_points(const char *s, double *points)
{
    char *end;

    errno = 0;
    *points = strtod(s, &end);
    return s[0] && *end == 0 && errno == 0 && isfinite(*points);
}

static int list_add(const ctl_opts *o, int argc, char **argv)
{
    spam_lists_kind kind;
    double points = 0;
    spam_lists_t *l;
    char *err = NULL;
    int rc;

    if (argc < 3 || !spam_lists_kind_parse(argv[2], &kind))
        return ctl_usage_error("list", "list add needs whitelist, blacklist or keyword");
    if (kind == SPAM_LISTS_KEYWORD) {
        if (argc != 6)
            return ctl_usage_error("list", "list add keyword needs SCOPE WORDS POINTS");
        if (!list_points(argv[5], &points))
            return ctl_usage_error("list", "bad POINTS \"%s\": a number such as 3.5 or -2",
                                   argv[5]);
    } else if (argc != 5) {
        return ctl_usage_error("list", "list add %s needs SCOPE SENDER", argv[2]);
    }
    if ((l = list_open(o)) == NULL)
        return 1;
    rc = spam_lists_add(l, argv[3], kind, argv[4], points, &err);
    spam_lists_close(&l);
    if (rc < 0) {
        ctl_error("%s", err);
        xfree(&err);
        return 1;
    }
    return 0;
}

static int list_del(const ctl_opts *o, int argc, char **argv)
{
    spam_lists_kind kind;
    spam_lists_t *l;
    char *err = NULL;
    int rc;

    if (argc != 5 || !spam_lists_kind_parse(argv[2], &kind))
        return ctl_usage_error("list", "list del needs whitelist|blacklist|keyword SCOPE VALUE");
    if ((l = list_open(o)) == NULL)
        return 1;
    rc = spam_lists_del(l, argv[3], kind, argv[4], &err);
    spam_lists_close(&l);
    if (rc < 0) {
        ctl_error("%s", err);
        xfree(&err);
        return 1;
    }
    if (rc == 0) {
        ctl_error("no %s entry \"%s\" in scope %s", argv[2], argv[4], argv[3]);
        return 1;
    }
    return 0;
}

static int list_show(const ctl_opts *o, int argc, char **argv)
{
    const char *scope = NULL;
    bool json = false;
    spam_lists_entry *e = NULL;
    spam_lists_t *l;
    char *err = NULL;
    long n;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            json = true;
        else if (scope == NULL)
            scope = argv[i];
        else
            return ctl_usage_error("list", "list show takes one SCOPE");
    }
    if ((l = list_open(o)) == NULL)
        return 1;
    n = spam_lists_show(l, scope, &e, &err);
    spam_lists_close(&l);
    if (n < 0) {
        ctl_error("%s", err);
        xfree(&err);
        return 1;
    }
    for (long i = 0; i < n; i++) {
        if (json) {
            fputs("{\"scope\": ", stdout);
            queue_print_json_string(stdout, e[i].scope);
            printf(", \"kind\": \"%s\", \"value\": ", spam_lists_kind_name(e[i].kind));
            queue_print_json_string(stdout, e[i].value);
            if (e[i].kind == SPAM_LISTS_KEYWORD)
                printf(", \"points\": %g", e[i].points);
            fputs("}\n", stdout);
        } else if (e[i].kind == SPAM_LISTS_KEYWORD) {
            printf("%s\t%s\t\"%s\"\t%g\n", e[i].scope, spam_lists_kind_name(e[i].kind),
                   e[i].value, e[i].points);
        } else {
            printf("%s\t%s\t%s\n", e[i].scope, spam_lists_kind_name(e[i].kind), e[i].value);
        }
    }
    spam_lists_entries_free(&e, (size_t)n);
    return 0;
}

int cmd_list(const ctl_opts *o, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "add") == 0)
        return list_add(o, argc, argv);
    if (argc >= 2 && strcmp(argv[1], "del") == 0)
        return list_del(o, argc, argv);
    if (argc >= 2 && strcmp(argv[1], "show") == 0)
        return list_show(o, argc, argv);
    return ctl_usage_error("list", "list needs add, del or show");
}
