/* cmd_fetch.c - `correio fetch`: the remote POP3/IMAP accounts the
 * fetcher polls (fetcher/fetch_admin.c answers).
 *
 *   correio fetch list [--json]   one row per account; --json: one JSON
 *                                 object per line
 *   correio fetch now ACCOUNT     a session at once (backoff or not)
 *   correio fetch reset ACCOUNT   forget which messages were taken: the
 *                                 next session fetches everything again
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

#include "admin.h"
#include "ctl.h"
#include "queue_print.h"
#include "xalloc.h"

#define FETCH_ADMIN_TIMEOUT_MS 10000
#define FETCH_FIELDS 15

enum { F_NAME, F_PROTO, F_SERVER, F_OWNER, F_STATE, F_RUNS, F_LAST_RUN, F_LAST_OK, F_NEXT,
       F_TAKEN_TOTAL, F_TAKEN_LAST, F_TOO_BIG, F_FAILURES, F_KEEP, F_ERROR };

static const char *const field_names[FETCH_FIELDS] = {
    "account", "protocol", "server", "owner", "state", "runs", "last_run", "last_success",
    "next_try", "taken_total", "taken_last", "too_big", "failures", "mode", "last_error",
};

/* call - one admin command to the fetcher; NULL after printing why. */
static AdminReply *call(const ctl_opts *o, const char *command, const char *arg)
{
    config_t *cfg = ctl_load_config(o);
    const char *endpoint = config_str(cfg, "fetcher_admin_endpoint");
    const char *args[2] = {arg, NULL};
    char *err = NULL;
    void *zctx = zmq_ctx_new();
    AdminReply *r = NULL;

    if (!zctx) {
        ctl_error("cannot create a ZeroMQ context");
        config_free(&cfg);
        return NULL;
    }
    if (ctl_ipc_listening(endpoint) == 0)
        err = xasprintf("the fetcher does not run (nothing listens on %s)", endpoint + 6);
    else
        r = admin_call(zctx, endpoint, command, arg ? args : NULL, FETCH_ADMIN_TIMEOUT_MS, &err);
    if (!r) {
        ctl_error("%s", err ? err : "no answer from the fetcher");
        free(err);
    }
    zmq_ctx_term(zctx);
    config_free(&cfg);
    return r;
}

/* when - a time in microseconds as "2026-11-23 08:11:00", or "-". */
static const char *when(const char *us, char *dst, size_t size)
{
    unsigned long long v = strtoull(us, NULL, 10);
    time_t t = (time_t)(v / 1000000);
    struct tm tm;

    if (v == 0 || !localtime_r(&t, &tm) || strftime(dst, size, "%Y-%m-%d %H:%M:%S", &tm) == 0)
        snprintf(dst, size, "-");
    return dst;
}

/* split - the tab-separated fields of line into f; how many. */
static int split(char *line, char **f)
{
    int n = 0;

    for (char *p = line; n < FETCH_FIELDS; n++) {
        f[n] = p;
        p = strchr(p, '\t');
        if (!p)
            return n + 1;
        *p++ = '\0';
    }
    return n;
}

static int fetch_list(const ctl_opts *o, bool json)
{
    AdminReply *r = call(o, "fetch-list", NULL);
    char *text, *line, *next;
    int rows = 0;

    if (!r)
        return 1;
    if (r->status != 0) {
        ctl_error("%s", r->text);
        wire_free_admin_reply(&r);
        return 1;
    }
    text = xstrdup(r->text);
    for (line = text; line && *line; line = next) {
        char *f[FETCH_FIELDS], t1[32], t2[32];

        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        if (line[0] == '#') {
            if (!json && strstr(line, "; error: "))
                fprintf(stderr, "correio: %s\n", strstr(line, "; error: ") + 9);
            continue;
        }
        if (split(line, f) != FETCH_FIELDS)
            continue;
        if (json) {
            fputc('{', stdout);
            for (int i = 0; i < FETCH_FIELDS; i++) {
                bool number = (i >= F_RUNS && i <= F_FAILURES);
                printf("%s\"%s\":", i ? "," : "", field_names[i]);
                if (number)
                    printf("%llu", strtoull(f[i], NULL, 10));
                else
                    queue_print_json_string(stdout, f[i]);
            }
            fputs("}\n", stdout);
        } else {
            if (rows == 0)
                printf("%-16s %-5s %-28s %-11s %-19s %7s %5s %-19s %s\n", "ACCOUNT", "PROTO",
                       "SERVER", "STATE", "LAST RUN", "TAKEN", "LAST", "NEXT TRY", "LAST ERROR");
            printf("%-16s %-5s %-28s %-11s %-19s %7s %5s %-19s %s\n", f[F_NAME], f[F_PROTO],
                   f[F_SERVER], f[F_STATE], when(f[F_LAST_RUN], t1, sizeof(t1)),
                   f[F_TAKEN_TOTAL], f[F_TAKEN_LAST], when(f[F_NEXT], t2, sizeof(t2)),
                   f[F_ERROR][0] ? f[F_ERROR] : "-");
        }
        rows++;
    }
    if (!json && rows == 0)
        printf("no remote accounts\n");
    xfree(&text);
    wire_free_admin_reply(&r);
    return 0;
}

static int fetch_one(const ctl_opts *o, const char *command, const char *account)
{
    AdminReply *r = call(o, command, account);
    int rc;

    if (!r)
        return 1;
    if (r->status == 0) {
        printf("%s\n", r->text);
        rc = 0;
    } else {
        ctl_error("%s", r->text);
        rc = 1;
    }
    wire_free_admin_reply(&r);
    return rc;
}

int cmd_fetch(const ctl_opts *o, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "list") == 0) {
        if (argc == 2)
            return fetch_list(o, false);
        if (argc == 3 && strcmp(argv[2], "--json") == 0)
            return fetch_list(o, true);
        return ctl_usage_error("fetch", "fetch list takes only --json");
    }
    if (argc == 3 && strcmp(argv[1], "now") == 0)
        return fetch_one(o, "fetch-now", argv[2]);
    if (argc == 3 && strcmp(argv[1], "reset") == 0)
        return fetch_one(o, "fetch-reset", argv[2]);
    return ctl_usage_error("fetch", "expected list, now ACCOUNT or reset ACCOUNT");
}
