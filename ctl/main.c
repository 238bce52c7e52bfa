/* main.c - `correio`, the operator's command: global options, the table
 * of commands, dispatch, and the small helpers every command uses.
 *
 *   correio [-c DIR] [-v] COMMAND [ARGS...]
 *
 * DIR is the configuration directory (correio.conf and the users file),
 * /etc/correio by default.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"
#include "curve.h"
#include "log.h"

typedef struct ctl_command {
    const char *name;
    int (*handler)(const ctl_opts *o, int argc, char **argv);
    const char *usage;    /* arguments after the command's name */
    const char *summary;
} ctl_command;

static const ctl_command ctl_commands[] = {
    {"run", cmd_run, "",
     "start every stage in the foreground and supervise them"},
    {"stop", cmd_stop, "",
     "stop a running `correio run` and wait until it is gone"},
    {"status", cmd_status, "",
     "is the supervisor running, does each stage answer its admin socket"},
    {"user", cmd_user, "add ADDRESS [--password-file FILE] | list",
     "add or replace a local account (password from stdin or FILE)"},
    {"config", cmd_config, "[-d | -n] [NAME...] | check",
     "effective parameters; -d defaults and docs, -n only those set"},
    {"queue", cmd_queue,
     "list [--json] | show ID | summary [--json] [QUEUE...] | flush"
     " | hold|delete|requeue ID...|-|ALL [QUEUE] | release ID...|-|ALL",
     "mailq, postsuper, postqueue -f and qshape over every delivery node"},
    {"map", cmd_map, "build FILE... | query SPEC KEY",
     "compile FILE into FILE.lmdb; look KEY up in table SPEC (type:path)"},
    {"greylist", cmd_greylist, "list [--json] [PATTERN] | pass TRIPLET | delete TRIPLET|ALL",
     "greylisting triplets on every router; let one through, forget one"},
    {"intrusion", cmd_intrusion, "list [--json] [PATTERN] | block IP | unblock IP|ALL",
     "client IPs blocked or watched by intrusion prevention"},
    {"limits", cmd_limits, "list [--json] [PATTERN] | reset KEY|ALL",
     "daily sending counters (KEY user:ADDRESS or domain:DOMAIN)"},
    {"awl", cmd_awl, "list [--json] [USER|PATTERN] | delete USER ADDRESS | delete ALL",
     "auto-whitelist: the addresses each user wrote to (spam_auto_whitelist)"},
    {"fetch", cmd_fetch, "list [--json] | now ACCOUNT | reset ACCOUNT",
     "remote POP3/IMAP accounts: state, fetch at once, forget what was taken"},
    {"list", cmd_list,
     "add whitelist|blacklist SCOPE SENDER | add keyword SCOPE WORDS POINTS"
     " | del KIND SCOPE VALUE | show [SCOPE] [--json]",
     "spam white/black lists and keywords; SCOPE * (server), DOMAIN or ADDRESS"},
    {"bayes", cmd_bayes, "train ham|spam PATH... | forget PATH... | show",
     "train the Bayes token database (PATH: file, directory or Maildir)"},
    {"quarantine", cmd_quarantine,
     "list [ADDRESS|@DOMAIN] | show ID | release ID [RCPT] | delete ID [RCPT]",
     "spam held by delivery; release delivers it and whitelists the sender"},
    {"backup", cmd_backup, "[DIR]",
     "dated archive of the config, compiled maps and a hot copy of every LMDB"},
    {"restore", cmd_restore, "ARCHIVE [--force]",
     "put a backup's config and LMDB state back (correio must be stopped)"},
    {"drain", cmd_drain, "[--timeout SECONDS] [NODE]",
     "hand a delivery node's queue to its peers before scaling it down; exit 0 when empty"},
    {"health", cmd_health, "[--ready] [STAGE...]",
     "liveness (or readiness) of each stage over its admin socket; exit 0 when all ok"},
    {"tap", cmd_tap, "STAGE [--count N] [--raw DIR] [--timeout SECONDS]",
     "print what STAGE sends on (envelopes, acks, results) without disturbing it"},
    {"inject", cmd_inject, "STAGE FILE [--from ADDR] [--to ADDR]... [--keep-id] [--timeout SECONDS]",
     "feed STAGE one message (.eml, envelope text, or a tap --raw .envelope)"},
    {"keys", cmd_keys, "generate [--force] [DIR] | show [DIR]",
     "CurveZMQ key pairs of the stages and ctl (curve_keys_directory)"},
    {"help", NULL, "", "this text"},
    {NULL, NULL, NULL, NULL},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: correio [-c DIR] [-v] COMMAND [ARGS...]\n\n"
                 "  -c DIR   configuration directory (default %s)\n"
                 "  -v       verbose: debug logging\n\ncommands:\n",
            CTL_DEFAULT_CONFIG_DIR);
    for (const ctl_command *c = ctl_commands; c->name; c++) {
        char line[256];

        snprintf(line, sizeof(line), "%s %s", c->name, c->usage);
        fprintf(out, "  %-48s %s\n", line, c->summary);
    }
}

/* ctl_verror - "correio: TEXT" on stderr, after whatever stdout holds. */
static void ctl_verror(const char *fmt, va_list ap)
{
    fflush(stdout);
    fputs("correio: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void ctl_error(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctl_verror(fmt, ap);
    va_end(ap);
}

int ctl_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    ctl_verror(fmt, ap);
    va_end(ap);
    for (const ctl_command *c = ctl_commands; c->name; c++)
        if (strcmp(c->name, command) == 0)
            fprintf(stderr, "usage: correio [-c DIR] %s %s\n", c->name, c->usage);
    return 2;
}

config_t *ctl_load_config(const ctl_opts *o)
{
    char *err = NULL;
    config_t *cfg = config_load(o->config_dir, &err);

    if (cfg == NULL) {
        ctl_error("%s", err ? err : "cannot load the configuration");
        free(err);
        exit(1);
    }
    if (curve_init(NULL, cfg, "ctl", &err) != 0) {   /* the client key ctl.key */
        ctl_error("%s", err);
        free(err);
        exit(1);
    }
    return cfg;
}

int main(int argc, char **argv)
{
    ctl_opts o = {CTL_DEFAULT_CONFIG_DIR, false};
    int ch;

    log_init("correio");
    /* '+': stop at the command, whose own options come after it */
    while ((ch = getopt(argc, argv, "+c:vh")) != -1) {
        switch (ch) {
        case 'c':
            o.config_dir = optarg;
            break;
        case 'v':
            o.verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    log_set_verbose(o.verbose);
    for (const ctl_command *c = ctl_commands; c->name; c++) {
        if (strcmp(c->name, argv[optind]) != 0)
            continue;
        if (c->handler == NULL) {
            usage(stdout);
            return 0;
        }
        return c->handler(&o, argc - optind, argv + optind);
    }
    ctl_error("unknown command '%s' (correio help lists them)", argv[optind]);
    return 2;
}
