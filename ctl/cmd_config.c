/* cmd_config.c - `correio config`: show parameters, like postconf.
 *
 *   correio config             every parameter with its effective value
 *   correio config -d          the table: default and one-line doc
 *   correio config -n          only what correio.conf sets
 *   correio config [-d|-n] NAME...   just those parameters
 *   correio config check       load the file; say ok or what is wrong
 *
 * A configuration that does not load prints "FILE:LINE: NAME: problem"
 * and exits 1 (except -d, which needs no file).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

/* print_named - config_print's lines for the parameters named in
 * names[0..n), in the order given; 1 if a name is not a parameter. */
static int print_named(const config_t *cfg, config_show what, char **names, int n)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    int rc = 0;

    if (mem == NULL) {
        ctl_error("open_memstream: %s", strerror(errno));
        return 1;
    }
    config_print(cfg, mem, what);
    fclose(mem);
    for (int i = 0; i < n; i++) {
        size_t nlen = strlen(names[i]);
        const param_def *d;
        const char *line;

        for (d = config_params; d->name && strcmp(d->name, names[i]) != 0; d++)
            ;
        if (d->name == NULL) {
            ctl_error("%s: unknown parameter (correio config -d lists them)", names[i]);
            rc = 1;
            continue;
        }
        /* every line is "NAME = ..."; with -n a parameter may have none */
        for (line = text; *line; line += strcspn(line, "\n") + (strchr(line, '\n') != NULL))
            if (strncmp(line, names[i], nlen) == 0 && strncmp(line + nlen, " = ", 3) == 0)
                printf("%.*s\n", (int)strcspn(line, "\n"), line);
    }
    free(text);
    return rc;
}

/* config_check - `correio config check`. */
static int config_check(const ctl_opts *o)
{
    config_t *cfg = ctl_load_config(o);   /* exits 1 on error */

    printf("%s/correio.conf: ok\n", o->config_dir);
    config_free(&cfg);
    return 0;
}

int cmd_config(const ctl_opts *o, int argc, char **argv)
{
    config_show what = CONFIG_SHOW_EFFECTIVE;
    config_t *cfg = NULL;
    int first = 1, rc = 0;

    if (argc == 2 && strcmp(argv[1], "check") == 0)
        return config_check(o);
    for (; first < argc && argv[first][0] == '-'; first++) {
        if (strcmp(argv[first], "-d") == 0)
            what = CONFIG_SHOW_DEFAULTS;
        else if (strcmp(argv[first], "-n") == 0)
            what = CONFIG_SHOW_CHANGED;
        else
            return ctl_usage_error("config", "unknown option %s", argv[first]);
    }
    /* the defaults need no file: they must print even when it is broken */
    if (what != CONFIG_SHOW_DEFAULTS)
        cfg = ctl_load_config(o);

    if (first == argc)
        config_print(cfg, stdout, what);
    else
        rc = print_named(cfg, what, argv + first, argc - first);
    config_free(&cfg);
    return rc;
}
