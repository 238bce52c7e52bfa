/* cmd_map.c - `correio map`: lookup tables (lib/map.h), like postmap.
 *
 *   correio map build FILE...
 *       compile each text FILE into FILE.lmdb for hash:/lmdb: tables.
 *       Prints nothing on success; each bad file is "FILE:LINE: problem"
 *       and the exit status is 1.
 *   correio map query SPEC KEY
 *       look KEY up in SPEC ("type:path"; a bare path is hash:) and print
 *       the value: exit 0 when found, 1 when not, 2 on an error.
 *
 * File names are taken as given (relative to the current directory), as
 * postmap does; in correio.conf they are relative to the configuration
 * directory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "map.h"

static int map_build_files(int argc, char **argv)
{
    int rc = 0;

    if (argc < 3)
        return ctl_usage_error("map", "map build needs at least one FILE");
    for (int i = 2; i < argc; i++) {
        char *err = NULL;

        if (map_build(argv[i], &err) < 0) {
            ctl_error("%s", err);
            free(err);
            rc = 1;
        }
    }
    return rc;
}

static int map_query(int argc, char **argv)
{
    char *err = NULL, *value = NULL;
    map_t *m;
    int rc;

    if (argc != 4)
        return ctl_usage_error("map", "map query needs SPEC and KEY");
    if ((m = map_open(argv[2], NULL, &err)) == NULL) {
        ctl_error("%s", err);
        free(err);
        return 2;
    }
    switch (map_lookup(m, argv[3], &value)) {
    case MAP_FOUND:
        printf("%s\n", value);
        rc = 0;
        break;
    case MAP_NOTFOUND:
        rc = 1;
        break;
    default:
        ctl_error("%s: lookup of \"%s\" failed (see the warning above)", map_spec(m), argv[3]);
        rc = 2;
        break;
    }
    free(value);
    map_close(&m);
    return rc;
}

int cmd_map(const ctl_opts *o, int argc, char **argv)
{
    (void)o;
    if (argc >= 2 && strcmp(argv[1], "build") == 0)
        return map_build_files(argc, argv);
    if (argc >= 2 && strcmp(argv[1], "query") == 0)
        return map_query(argc, argv);
    return ctl_usage_error("map", "map needs build or query");
}
