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

/* --- DSN parameters (RFC 3461) */

#define DSN_ENVID_MAX     100   /* ENVID, decoded (RFC 3461 4.4) */
#define DSN_ORCPT_MAX     500   /* ORCPT "addr-type;address", decoded (RFC 3461 4.2) */
#define DSN_ADDR_TYPE_MAX 32

/* smtp_xtext_decode - RFC 3461 4 xtext (in, len bytes) into out
 * (outsize bytes, NUL added).  False when the xtext is malformed, when
 * what it decodes to is not printable ASCII (space included), or when it
 * does not fit. */
bool smtp_xtext_decode(const char *in, size_t len, char *out, size_t outsize);

/* smtp_parse_notify - the NOTIFY= value: "NEVER", or a comma list of
 * SUCCESS, FAILURE, DELAY (any case, each once); the OR of the Notify
 * bits of correio.proto, or 0 when malformed. */
unsigned smtp_parse_notify(const char *s, size_t len);

/* smtp_notify_valid - are bits a value NOTIFY may have (NEVER alone, no
 * unknown bits; 0 means not given and is valid)? */
bool smtp_notify_valid(unsigned bits);

/* smtp_parse_orcpt - the ORCPT= value "addr-type;xtext" into out as
 * "addr-type;decoded-address" (out at least DSN_ORCPT_MAX + 1 bytes);
 * false when malformed. */
bool smtp_parse_orcpt(const char *s, size_t len, char *out, size_t outsize);

/* smtp_orcpt_valid - is s an ORCPT as smtp_parse_orcpt stores it (for
 * values that come over the submit socket)? */
bool smtp_orcpt_valid(const char *s);

/* smtp_envid_valid - is s a decoded ENVID (printable ASCII, at most
 * DSN_ENVID_MAX)? */
bool smtp_envid_valid(const char *s);

#endif
