/* spam_action.h - what a final recipient's copy of a scored message gets:
 * the thresholds (spam_tag_score, spam_folder_score, spam_quarantine_score,
 * spam_delete_score; a threshold of 0 is "never"), overridden per user and
 * per domain by spam_action_maps ("user@domain", then "@domain", then
 * "domain": the first key any table knows decides, every table being asked
 * for one key before the next key is tried), and the strongest action
 * whose threshold the score reaches: delete > quarantine > folder > tag.
 *
 * A map value is "tag=N folder=N quarantine=N delete=N", any subset (the
 * others keep the server's defaults); N is a number, or "off" (never).
 * routing.c applies the action (see routing.h); delivery executes it.
 */
#ifndef CORREIO_ROUTER_SPAM_ACTION_H
#define CORREIO_ROUTER_SPAM_ACTION_H

#include <stdbool.h>
#include "config.h"
#include "wire.h"

enum { SPAM_LEVEL_TAG, SPAM_LEVEL_FOLDER, SPAM_LEVEL_QUARANTINE, SPAM_LEVEL_DELETE,
       SPAM_LEVELS };

/* One recipient's thresholds, indexed by SPAM_LEVEL_*. */
typedef struct spam_thresholds {
    bool   on[SPAM_LEVELS];     /* false: never */
    double score[SPAM_LEVELS];  /* at or above: the action */
} spam_thresholds;

/* spam_action_defaults - the server's thresholds from cfg. */
void spam_action_defaults(const config_t *cfg, spam_thresholds *t);

/* spam_action_parse - apply a map value to *t (the words it names; the
 * others stay).  false, *t unchanged and *bad pointing at the offending
 * word (a pointer into value) when a word is not "NAME=N" or "NAME=off"
 * with a known NAME and a finite number within +-1000. */
bool spam_action_parse(const char *value, spam_thresholds *t, const char **bad);

/* spam_action_choose - the strongest action whose threshold score
 * reaches. */
Correio__SpamAction spam_action_choose(const spam_thresholds *t, double score);

/* spam_action_name - "none", "tag", "folder", "quarantine", "delete". */
const char *spam_action_name(Correio__SpamAction a);

/* spam_action_level - the threshold index of an action (TAG..DELETE);
 * -1 for NONE. */
int spam_action_level(Correio__SpamAction a);

/* The tables of spam_action_maps. */
typedef struct spam_action spam_action_t;

/* spam_action_open - open spam_action_maps; NULL with *err (malloc'ed)
 * naming the table when one cannot be opened.  No maps: a handle that
 * always answers the server defaults. */
spam_action_t *spam_action_open(const config_t *cfg, char **err);
void spam_action_close(spam_action_t **sa);

/* spam_action_thresholds - the thresholds for recipient ("user@domain"):
 * the server defaults, overridden by the map entry found.  A value that
 * does not parse is logged (map, key, word) and the defaults are used.
 * Returns 0, or -1 (logged) when a table cannot be read now. */
int spam_action_thresholds(spam_action_t *sa, const config_t *cfg, const char *recipient,
                           spam_thresholds *t);

#endif
