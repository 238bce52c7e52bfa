/* cmd_keys.c - `correio keys`: the CurveZMQ key pairs of the TCP hops
 * (lib/curve.h says how they are used).
 *
 *   correio keys generate [--force] [DIR]
 *                         a key pair for each stage kind and for ctl in
 *                         DIR (default curve_keys_directory): NAME.key
 *                         (0600) and NAME.pub; an existing pair is kept
 *                         unless --force
 *   correio keys show [DIR]
 *                         the public key of every NAME.pub in DIR, and
 *                         whether its secret is there
 *
 * A cluster shares the directory (a volume or a secret): each process
 * reads its own NAME.key and the NAME.pub of the stages it connects to;
 * every *.pub is an authorised client by default.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctl.h"
#include "curve.h"
#include "xalloc.h"

/* keys_dir - DIR from the command line, or curve_keys_directory. */
static char *keys_dir(const ctl_opts *o, const char *arg)
{
    config_t *cfg;
    char *dir;

    if (arg)
        return xstrdup(arg);
    cfg = ctl_load_config(o);
    dir = config_path(cfg, "curve_keys_directory");
    config_free(&cfg);
    return dir;
}

static int keys_generate(const ctl_opts *o, int argc, char **argv)
{
    bool force = false;
    const char *arg = NULL;
    char *dir;
    int failed = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--force") == 0)
            force = true;
        else if (argv[i][0] == '-' || arg)
            return ctl_usage_error("keys", "keys generate: unexpected '%s'", argv[i]);
        else
            arg = argv[i];
    }
    dir = keys_dir(o, arg);
    for (const char *const *name = curve_key_names; *name; name++) {
        curve_keypair kp;
        char *err = NULL;
        int rc;

        if (curve_key_generate(&kp) != 0) {
            ctl_error("this libzmq cannot make CurveZMQ keys (built without CURVE)");
            failed = 1;
            break;
        }
        rc = curve_key_save(dir, *name, &kp, force, &err);
        memset(&kp, 0, sizeof(kp));
        if (rc < 0) {
            ctl_error("%s", err);
            free(err);
            failed = 1;
            break;
        }
        if (rc == 1)
            printf("%-10s kept %s/%s.key (exists; --force replaces it)\n", *name, dir, *name);
        else
            printf("%-10s wrote %s/%s.key and %s.pub\n", *name, dir, *name, *name);
    }
    free(dir);
    return failed;
}

static int pub_filter(const struct dirent *de)
{
    size_t l = strlen(de->d_name);

    return de->d_name[0] != '.' && l > 4 && strcmp(de->d_name + l - 4, ".pub") == 0;
}

static int keys_show(const ctl_opts *o, int argc, char **argv)
{
    struct dirent **list;
    char *dir;
    int n, failed = 0;

    if (argc > 2)
        return ctl_usage_error("keys", "keys show: too many arguments");
    dir = keys_dir(o, argc == 2 ? argv[1] : NULL);
    if ((n = scandir(dir, &list, pub_filter, alphasort)) < 0) {
        ctl_error("cannot read %s: %m (make the keys with `correio keys generate`)", dir);
        free(dir);
        return 1;
    }
    if (n == 0)
        printf("no keys in %s (correio keys generate makes them)\n", dir);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(list[i]->d_name) - 4;
        char *path = xasprintf("%s/%s", dir, list[i]->d_name), *err = NULL;
        char *secret = xasprintf("%s/%.*s.key", dir, (int)l, list[i]->d_name);
        curve_keypair kp;

        if (curve_key_load(path, false, &kp, &err) == 0) {
            printf("%-10.*s %s  secret %s\n", (int)l, list[i]->d_name, kp.pub,
                   access(secret, F_OK) == 0 ? "present" : "absent");
        } else {
            ctl_error("%s", err);
            failed = 1;
        }
        free(err);
        free(path);
        free(secret);
        free(list[i]);
    }
    free(list);
    free(dir);
    return failed;
}

int cmd_keys(const ctl_opts *o, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "generate") == 0)
        return keys_generate(o, argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "show") == 0)
        return keys_show(o, argc - 1, argv + 1);
    return ctl_usage_error("keys", "keys: expected generate or show");
}
