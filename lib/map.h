/* map.h - lookup tables named "type:path", as Postfix's maps.
 *
 * Types:
 *   hash:PATH, lmdb:PATH  text file PATH compiled by `correio map build PATH`
 *                         (map_build) into PATH.lmdb; exact keys, folded to
 *                         lower case, as postmap's hash: tables.
 *   cidr:PATH             "network/prefix  value" lines, first match wins
 *                         (Postfix cidr_table(5)); the key is an IP address.
 *   pcre:PATH             "/regex/flags  value" lines, first match wins,
 *                         $1..$9 in the value replaced by the groups; flags
 *                         i (case-insensitive, the default), m, s, x and
 *                         "if /re/" ... "endif" blocks (Postfix pcre_table(5)).
 *                         A line may also be "!/regex/ value" (matches when
 *                         the regex does not).
 * A relative PATH is relative to the configuration directory.
 *
 * Text format of every type: one entry a line; "#" starts a comment line;
 * a line that starts with white space continues the one before; the value
 * is what follows the key and its white space.  Every error in a file is
 * reported as "PATH:LINE: what is wrong".
 *
 * A map notices when its file changes (checked at most once a second, at
 * lookup) and reopens it; if the new file is bad, the old contents stay in
 * use and a warning is logged once.
 */
#ifndef CORREIO_MAP_H
#define CORREIO_MAP_H

#include <stdbool.h>

typedef struct map map_t;

typedef enum {
    MAP_FOUND,
    MAP_NOTFOUND,
    MAP_ERROR,          /* the table cannot be read now: answer 4xx */
} map_status;

/* map_open - open the map named by spec ("type:path").  dir is the
 * configuration directory, for relative paths.  On failure returns NULL
 * and sets *err (malloc'd, caller frees) to "PATH:LINE: problem" or a
 * description of what is missing ("PATH.lmdb: not found; run correio map
 * build PATH"). */
map_t *map_open(const char *spec, const char *dir, char **err);
/* map_close - free m and set *m to NULL; NULL is fine. */
void map_close(map_t **m);
/* map_spec - the "type:path" m was opened with. */
const char *map_spec(const map_t *m);

/* map_lookup - look key up.  MAP_FOUND sets *value to a malloc'd string
 * the caller frees (regex groups substituted).  For hash/lmdb maps the key
 * is folded to lower case first. */
map_status map_lookup(map_t *m, const char *key, char **value);

/* map_build - compile the text file path into path.lmdb, written under a
 * temporary name and renamed into place, so readers see the old or the new
 * table, never half of one.  Returns the number of entries, or -1 with
 * *err set ("PATH:LINE: problem").  Duplicate keys: the last one wins and a
 * warning is logged, as postmap does. */
long map_build(const char *path, char **err);

#endif
