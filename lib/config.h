/* config.h - correio.conf: one table of parameters, typed values.
 *
 * The file is `key = value` lines; `#` starts a comment line; a line that
 * starts with white space continues the previous value (as in Postfix's
 * main.cf).  A value may name other parameters as $name or ${name}; they
 * are expanded when the value is read (so `mydestination = $myhostname,
 * localhost` follows myhostname).  Every parameter is declared once in
 * config_params.c with its type, default, bounds and a one-line doc; an
 * unknown name, a value of the wrong type or out of bounds is an error
 * "FILE:LINE: NAME: what is wrong".
 *
 * Value syntax by type:
 *   STR   any text
 *   INT   decimal integer within [min, max]
 *   SIZE  bytes: a decimal integer, optional suffix k, m, g (powers of 1024)
 *   TIME  a number with unit s, m, h, d, or ms; a bare number is seconds
 *   BOOL  yes/no (also true/false, on/off, 1/0)
 *   LIST  items separated by commas and/or white space
 *   NUMBER a decimal number such as 5 or 6.5, within [min, max]
 *   NETWORKS a LIST whose every item is a network (see cidr.h); read it
 *         with config_list
 *   CHOICE one word of those config_param_choices lists for the
 *         parameter; read it with config_str.  A CHOICE whose default is
 *         empty may also be left empty ("not set").
 *   RESTRICTIONS a LIST that is a valid restriction list (restriction.h);
 *         read it with config_list
 *   MAPS  a LIST of lookup tables "type:path" (map.h); read it with
 *         config_list.  The tables' contents are checked by whoever opens
 *         them.
 *   TRANSPORT a transport specification (transport.h: maildir,
 *         lmtp:unix:/path, smtp:[host]:port, ...); the row's max is a mask
 *         of TRANSPORT_ALLOW() bits for the kinds it may name (0: any).
 *         Read it with config_str and transport_parse.
 *   RELAYHOST empty, or a next hop with optional credentials
 *         (relayhost.h: [host]:port, host, user:password@host:port); read
 *         it with config_str and relayhost_parse.  The password is never
 *         printed: config_print writes user:****@host.
 */
#ifndef CORREIO_CONFIG_H
#define CORREIO_CONFIG_H

#include <stdbool.h>
#include <stdio.h>

typedef enum {
    PARAM_STR,
    PARAM_INT,
    PARAM_SIZE,
    PARAM_TIME,
    PARAM_BOOL,
    PARAM_LIST,
    PARAM_NUMBER,
    PARAM_NETWORKS,
    PARAM_CHOICE,
    PARAM_RESTRICTIONS,
    PARAM_MAPS,
    PARAM_TRANSPORT,
    PARAM_RELAYHOST,
} param_type;

/* One row of the parameter table (config_params.c). */
typedef struct param_def {
    const char *name;
    param_type  type;
    const char *def;       /* default, in the file's syntax; may use $name */
    long long   min, max;  /* INT, SIZE (bytes), TIME (milliseconds);
                            * TRANSPORT: max = allowed kinds (transport.h) */
    const char *doc;       /* one line, shown by `correio config -d` */
} param_def;

extern const param_def config_params[];   /* ends with a NULL name */

/* The words a CHOICE parameter allows, separated by spaces. */
typedef struct param_choice {
    const char *name;
    const char *words;
} param_choice;

extern const param_choice config_param_choices[];   /* ends with a NULL name */

typedef struct config config_t;

/* config_load - read DIR/correio.conf (a missing file means all defaults).
 * On error returns NULL and *err is a malloc'ed "FILE:LINE: NAME: problem"
 * message that the caller frees. */
config_t *config_load(const char *dir, char **err);
/* config_load_file - the same for an explicit file path; dir is where
 * relative file names (users, certificates) are found. */
config_t *config_load_file(const char *dir, const char *path, char **err);
void config_free(config_t **cfg);

/* Typed getters.  Asking for a name that is not in the table, or with the
 * wrong type, is a bug: log_panic. Strings stay owned by the config. */
const char *config_str(const config_t *cfg, const char *name);
long long   config_int(const config_t *cfg, const char *name);
long long   config_size(const config_t *cfg, const char *name);
long long   config_time_ms(const config_t *cfg, const char *name);
bool        config_bool(const config_t *cfg, const char *name);
/* config_list - NULL-terminated items, owned by the config. */
const char *const *config_list(const config_t *cfg, const char *name);
double      config_number(const config_t *cfg, const char *name);

/* config_dir - the configuration directory the file was loaded from. */
const char *config_dir(const config_t *cfg);
/* config_path - a file name from a parameter made absolute against the
 * configuration directory; malloc'ed, the caller frees it. */
char *config_path(const config_t *cfg, const char *name);

typedef enum {
    CONFIG_SHOW_EFFECTIVE,  /* every parameter, effective value (correio config) */
    CONFIG_SHOW_DEFAULTS,   /* the table: name, default, doc (config -d) */
    CONFIG_SHOW_CHANGED,    /* only those set in the file (config -n) */
} config_show;

void config_print(const config_t *cfg, FILE *out, config_show what);

#endif
