/* smtp_command.h - parsing SMTP command lines: the verb, and the
 * arguments of MAIL FROM:/RCPT TO: with their ESMTP parameters.  Pure
 * functions over one line (without its CRLF), unit-tested and fuzzable.
 */
#ifndef CORREIO_SMTP_COMMAND_H
#define CORREIO_SMTP_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include "address.h"

#define SMTP_CMD_LINE_MAX 512   /* octets, CRLF included (RFC 5321 4.5.3.1.4) */
#define SMTP_PARAM_MAX    16    /* ESMTP parameters on one MAIL/RCPT */

/* smtp_cmd_split - the verb (up to the first space) and the argument
 * after the spaces that follow it.  Returns false for an empty or
 * all-space line. */
bool smtp_cmd_split(const char *line, size_t len, const char **verb,
                    size_t *verb_len, const char **arg, size_t *arg_len);

typedef struct smtp_param {
    const char *key;    /* not NUL-terminated */
    size_t      key_len;
    const char *value;  /* NULL when there is no "=" */
    size_t      value_len;
} smtp_param;

typedef enum {
    SMTP_ARGS_OK = 0,
    SMTP_ARGS_SYNTAX,      /* no "FROM:" / "TO:" or no path: 501 5.5.4 */
    SMTP_ARGS_BAD_PATH,    /* the path does not parse: 501 5.1.7 / 5.1.3 */
    SMTP_ARGS_BAD_PARAM,   /* a malformed or too many parameters: 501 5.5.4 */
} smtp_args_status;

/* smtp_path_args - parse "FROM:<path> KEY=VALUE ..." (prefix "FROM:") or
 * "TO:<path> ..." (prefix "TO:"); spaces between the colon and the path
 * are accepted, as Postfix does.  Parameters point into arg. */
smtp_args_status smtp_path_args(const char *arg, size_t len, const char *prefix,
                                bool allow_null, smtp_path *path,
                                smtp_param *params, size_t *n_params);

/* smtp_param_is - case-insensitive compare of a parameter's key. */
bool smtp_param_is(const smtp_param *p, const char *key);

/* smtp_parse_size - the decimal SIZE= value; false if not a number or it
 * does not fit. */
bool smtp_parse_size(const char *s, size_t len, unsigned long long *out);

/* smtp_rcpt_is_postmaster - is arg (after the verb) "TO:<Postmaster>",
 * the one path without a domain that RFC 5321 4.5.1 requires a server to
 * take?  Case-insensitive, spaces after the colon allowed, no
 * parameters. */
bool smtp_rcpt_is_postmaster(const char *arg, size_t len);

#endif
