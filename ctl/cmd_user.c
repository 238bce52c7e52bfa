/* cmd_user.c - `correio user`: the local accounts in the users file
 * (Dovecot passwd-file format, see lib/users.h).
 *
 *   correio user add ADDRESS [--password-file FILE]
 *       add the account or replace its password.  The password is the
 *       first line of FILE, or of stdin (asked for twice, without echo,
 *       when stdin is a terminal).  Stored as a crypt(3) hash.
 *   correio user list
 *       the addresses in the file, one a line.
 */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "address.h"
#include "ctl.h"
#include "fsutil.h"
#include "users.h"
#include "xalloc.h"

int ctl_users_file_access(const config_t *cfg, void (*warn)(const char *, ...))
{
    const char *owner = config_str(cfg, "mail_owner");
    struct passwd *pw;
    struct stat st;
    char *path;
    int rc = 0;

    if (geteuid() != 0)
        return 0;
    path = config_path(cfg, "users_file");
    if (stat(path, &st) != 0) {
        free(path);
        return 0;
    }
    if ((pw = getpwnam(owner)) == NULL) {
        warn("mail_owner %s does not exist; %s stays readable by root only"
             " (create it with useradd --system %s or set mail_owner)", owner, path, owner);
        rc = -1;
    } else if (chown(path, (uid_t)-1, pw->pw_gid) != 0 || chmod(path, 0640) != 0) {
        warn("cannot give %s to group %s with mode 0640: %s", path, owner, strerror(errno));
        rc = -1;
    }
    free(path);
    return rc;
}

/* read_line - the first line of f without its line end; NULL at EOF. */
static char *read_line(FILE *f)
{
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, f);

    if (n < 0) {
        free(line);
        return NULL;
    }
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        line[--n] = 0;
    return line;
}

/* forget - wipe and free a password. */
static void forget(char **pw)
{
    if (*pw) {
        explicit_bzero(*pw, strlen(*pw));
        xfree(pw);
    }
}

/* ask_tty - prompt on the terminal with echo off. */
static char *ask_tty(const char *prompt)
{
    struct termios old, quiet;
    bool restore = tcgetattr(STDIN_FILENO, &old) == 0;
    char *line;

    fputs(prompt, stderr);
    fflush(stderr);
    if (restore) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    line = read_line(stdin);
    if (restore)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    fputc('\n', stderr);
    return line;
}

/* read_password - from file, the terminal, or stdin; NULL after an error
 * message. */
static char *read_password(const char *file)
{
    char *pw, *again;
    FILE *f;

    if (file) {
        if ((f = fopen(file, "r")) == NULL) {
            ctl_error("%s: %s", file, strerror(errno));
            return NULL;
        }
        pw = read_line(f);
        fclose(f);
    } else if (isatty(STDIN_FILENO)) {
        pw = ask_tty("Password: ");
        again = ask_tty("Again: ");
        if (pw && (again == NULL || strcmp(pw, again) != 0)) {
            ctl_error("the passwords differ");
            forget(&pw);
        }
        forget(&again);
        if (pw == NULL)
            return NULL;
    } else {
        pw = read_line(stdin);
    }
    if (pw == NULL || pw[0] == 0) {
        ctl_error("empty password refused (give it on the first line of %s)",
                  file ? file : "stdin");
        forget(&pw);
        return NULL;
    }
    return pw;
}

/* address_ok - fit for the passwd-file: local@domain, printable, no ':'. */
static bool address_ok(const char *a)
{
    const char *at = strrchr(a, '@');

    if (at == NULL || at == a || at[1] == 0 || strlen(a) > ADDR_PATH_MAX)
        return false;
    for (const char *p = a; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == ':')
            return false;
    return true;
}

static int user_add(const ctl_opts *o, int argc, char **argv)
{
    const char *file = NULL, *addr = NULL;
    char *lower, *pw, *hash, *path, *err = NULL;
    config_t *cfg;
    int rc = 0;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--password-file") == 0 && i + 1 < argc)
            file = argv[++i];
        else if (strncmp(argv[i], "--password-file=", 16) == 0)
            file = argv[i] + 16;
        else if (argv[i][0] != '-' && addr == NULL)
            addr = argv[i];
        else
            return ctl_usage_error("user", "unexpected argument %s", argv[i]);
    }
    if (addr == NULL)
        return ctl_usage_error("user", "user add needs an ADDRESS");
    if (!address_ok(addr)) {
        ctl_error("%s: not an address fit for the users file (local@domain,"
                  " no spaces or ':')", addr);
        return 1;
    }
    cfg = ctl_load_config(o);
    lower = address_lower(addr);
    if (!domain_list_match(config_list(cfg, "mydestination"), address_domain(lower)))
        ctl_error("warning: %s is not in mydestination; mail to %s is not delivered"
                  " to a local Maildir", address_domain(lower), lower);
    if ((pw = read_password(file)) == NULL) {
        rc = 1;
        goto out;
    }
    hash = users_hash_password(pw);
    forget(&pw);
    path = config_path(cfg, "users_file");
    if (users_file_set(path, lower, hash, &err) != 0) {
        ctl_error("%s", err);
        free(err);
        rc = 1;
    } else {
        ctl_users_file_access(cfg, ctl_error);
        printf("%s: user %s set\n", path, lower);
    }
    free(path);
    free(hash);
out:
    free(lower);
    config_free(&cfg);
    return rc;
}

static int user_list(const ctl_opts *o)
{
    config_t *cfg = ctl_load_config(o);
    char *path = config_path(cfg, "users_file");
    char *text, *line, *save = NULL;
    int rc = 0;

    if ((text = fs_read_file(path, NULL)) == NULL) {
        if (errno != ENOENT) {
            ctl_error("%s: %s", path, strerror(errno));
            rc = 1;
        }
    } else {
        for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
            if (line[0] == '#' || line[strspn(line, " \t\r")] == 0)
                continue;
            printf("%.*s\n", (int)strcspn(line, ":"), line);
        }
        free(text);
    }
    free(path);
    config_free(&cfg);
    return rc;
}

int cmd_user(const ctl_opts *o, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "add") == 0)
        return user_add(o, argc, argv);
    if (argc == 2 && strcmp(argv[1], "list") == 0)
        return user_list(o);
    return ctl_usage_error("user", "user needs add or list");
}
