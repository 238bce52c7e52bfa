/* ctl.h - what the parts of the `correio` command share: the global
 * options, the command handlers the dispatch table in main.c names, and a
 * few helpers for messages and the configuration.
 *
 * A handler gets argv with argv[0] = the command's name and returns the
 * process exit status (0 ok, 1 failure, 2 bad usage).
 */
#ifndef CORREIO_CTL_H
#define CORREIO_CTL_H

#include <stdbool.h>
#include "config.h"
#include "wire.h"

typedef struct ctl_opts {
    const char *config_dir;   /* -c DIR, default CTL_DEFAULT_CONFIG_DIR */
    bool        verbose;      /* -v */
} ctl_opts;

#define CTL_DEFAULT_CONFIG_DIR "/etc/correio"

/* The commands (one file each, see main.c for the table). */
int cmd_run(const ctl_opts *o, int argc, char **argv);     /* supervisor.c */
int cmd_stop(const ctl_opts *o, int argc, char **argv);    /* supervisor.c */
int cmd_status(const ctl_opts *o, int argc, char **argv);  /* cmd_status.c */
int cmd_user(const ctl_opts *o, int argc, char **argv);    /* cmd_user.c */
int cmd_config(const ctl_opts *o, int argc, char **argv);  /* cmd_config.c */
int cmd_queue(const ctl_opts *o, int argc, char **argv);   /* cmd_queue.c */
int cmd_map(const ctl_opts *o, int argc, char **argv);     /* cmd_map.c */
int cmd_fetch(const ctl_opts *o, int argc, char **argv);   /* cmd_fetch.c */
int cmd_greylist(const ctl_opts *o, int argc, char **argv);  /* cmd_policy.c */
int cmd_intrusion(const ctl_opts *o, int argc, char **argv); /* cmd_policy.c */
int cmd_limits(const ctl_opts *o, int argc, char **argv);    /* cmd_policy.c */
int cmd_awl(const ctl_opts *o, int argc, char **argv);       /* cmd_policy.c */
int cmd_list(const ctl_opts *o, int argc, char **argv);      /* cmd_list.c */
int cmd_quarantine(const ctl_opts *o, int argc, char **argv); /* cmd_quarantine.c */
int cmd_keys(const ctl_opts *o, int argc, char **argv);      /* cmd_keys.c */
int cmd_tap(const ctl_opts *o, int argc, char **argv);    /* cmd_tap.c */
int cmd_inject(const ctl_opts *o, int argc, char **argv); /* cmd_inject.c */
int cmd_health(const ctl_opts *o, int argc, char **argv);    /* cmd_health.c */
int cmd_drain(const ctl_opts *o, int argc, char **argv);     /* cmd_drain.c */

/* ctl_become_owner - as root: make data_directory and dir, give them
 * (and the files of an environment made by root before) to mail_owner
 * and become mail_owner; nothing as another user.  0, or -1 after an
 * error message (owner.c). */
int ctl_become_owner(const config_t *cfg, const char *dir);

/* list_open - the spam lists (data_directory/lists), writable; as root
 * the process becomes mail_owner first (cmd_list.c).  NULL after an
 * error message. */
struct spam_lists *list_open(const ctl_opts *o);
int cmd_bayes(const ctl_opts *o, int argc, char **argv);     /* cmd_bayes.c */
int cmd_backup(const ctl_opts *o, int argc, char **argv);    /* cmd_backup.c */
int cmd_restore(const ctl_opts *o, int argc, char **argv);   /* cmd_backup.c */

/* ctl_error - "correio: MESSAGE" on stderr (for interactive commands;
 * the supervisor logs through lib/log.c instead). */
void ctl_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* ctl_usage_error - ctl_error plus the command's usage line; returns 2. */
int ctl_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* ctl_load_config - load the configuration of -c DIR, or print the
 * "FILE:LINE: NAME: problem" message and exit(1).  The caller frees it. */
config_t *ctl_load_config(const ctl_opts *o);

/* ctl_ipc_listening - for an ipc:// endpoint: 1 when a process listens
 * on its socket, 0 when none does (no file, or a stale one); -1 when it
 * cannot tell (not ipc://, no permission). */
int ctl_ipc_listening(const char *endpoint);

/* ctl_admin_call - admin_call, but an ipc:// endpoint that nobody listens
 * on fails at once instead of after the timeout.  NULL with *err
 * malloc'ed on failure. */
AdminReply *ctl_admin_call(void *zctx, const char *endpoint, const char *command,
                           int timeout_ms, char **err);

/* ctl_users_file_access - when running as root, give the users file
 * (if it exists) to mail_owner's group with mode 0640, so that stages
 * that dropped privileges can read it.  Returns 0, or -1 after printing
 * a warning through warn (ctl_error or a log function). */
int ctl_users_file_access(const config_t *cfg, void (*warn)(const char *, ...));

#endif
