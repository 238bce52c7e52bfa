/* smtpd_action.h - what an access table or a header/body check says:
 * "OK", "DUNNO", "REJECT text", "DEFER text", "450 4.7.1 text",
 * "WARN text", "HOLD text", "DISCARD text", "IGNORE" (Postfix access(5)
 * and header_checks(5)).  Parsing only; the caller decides what each one
 * means where it is used.
 */
#ifndef CORREIO_SMTPD_ACTION_H
#define CORREIO_SMTPD_ACTION_H

#include <stdbool.h>

typedef enum {
    ACT_DUNNO,          /* no decision: go on */
    ACT_OK,             /* accept (OK, PERMIT, or a number such as 1234) */
    ACT_REJECT,         /* REJECT or a 5xx code */
    ACT_DEFER,          /* DEFER or a 4xx code */
    ACT_DEFER_IF_PERMIT,
    ACT_WARN,
    ACT_HOLD,
    ACT_DISCARD,
    ACT_IGNORE,         /* header/body checks: drop the line */
    ACT_BAD,            /* not understood: logged by the caller, treated as 451 */
} action_kind;

typedef struct smtpd_action {
    action_kind kind;
    int         code;           /* 4xx/5xx for REJECT/DEFER kinds */
    char        dsn[16];        /* "5.7.1" */
    char        text[512];      /* the text after the word/code/dsn, printable */
} smtpd_action;

/* smtpd_action_parse - parse value.  reject_code and defer_code are the
 * codes REJECT and DEFER stand for (554/450 for access tables, 550/450
 * for header checks).  Returns false (kind ACT_BAD) for an unknown word,
 * a code out of 400..599 or an empty value. */
bool smtpd_action_parse(const char *value, int reject_code, int defer_code,
                        smtpd_action *out);

#endif
