/* owner.c - what `correio` does as root before it writes an LMDB
 * environment the stages read (the spam lists, the Bayes database): the
 * environment and data_directory belong to mail_owner, and so does the
 * process from then on, so no file it makes is root's. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "fsutil.h"
#include "xalloc.h"

int ctl_become_owner(const config_t *cfg, const char *dir)
{
    static const char *const files[] = {"data.mdb", "lock.mdb"};
    const char *owner = config_str(cfg, "mail_owner");
    const char *data = config_str(cfg, "data_directory");
    struct passwd *pw;
    struct stat st;

    if (geteuid() != 0)
        return 0;
    if ((pw = getpwnam(owner)) == NULL || pw->pw_uid == 0) {
        ctl_error("mail_owner %s does not exist or is root: create it with useradd --system %s"
                  " or set mail_owner", owner, owner);
        return -1;
    }
    if (stat(data, &st) != 0) {
        if (fs_mkdir_p(data, 0700) != 0 || chown(data, pw->pw_uid, pw->pw_gid) != 0) {
            ctl_error("cannot create data_directory %s for %s: %s", data, owner, strerror(errno));
            return -1;
        }
    }
    if (fs_mkdir_p(dir, 0700) != 0 || chown(dir, pw->pw_uid, pw->pw_gid) != 0) {
        ctl_error("cannot create %s for %s: %s", dir, owner, strerror(errno));
        return -1;
    }
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *path = xasprintf("%s/%s", dir, files[i]);
        int rc = chown(path, pw->pw_uid, pw->pw_gid);

        if (rc != 0 && errno != ENOENT) {
            ctl_error("cannot give %s to %s: %s", path, owner, strerror(errno));
            xfree(&path);
            return -1;
        }
        xfree(&path);
    }
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) {
        ctl_error("cannot become mail_owner %s: %s", owner, strerror(errno));
        return -1;
    }
    return 0;
}
