/* spam_action.c - thresholds per final recipient and the action they
 * give (see spam_action.h). */
#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "log.h"
#include "map.h"
#include "spam_action.h"
#include "xalloc.h"

#define SPAM_ACTION_LIMIT 1000.0    /* the bounds of the spam_*_score parameters */
#define SPAM_ACTION_WORD_MAX 64     /* longest word quoted in a warning */

struct spam_action {
    map_t  **maps;          /* spam_action_maps, in order */
    size_t   n_maps;
};

static const char *const spam_level_names[SPAM_LEVELS] = {
    [SPAM_LEVEL_TAG] = "tag",
    [SPAM_LEVEL_FOLDER] = "folder",
    [SPAM_LEVEL_QUARANTINE] = "quarantine",
    [SPAM_LEVEL_DELETE] = "delete",
};

static const char *const spam_level_params[SPAM_LEVELS] = {
    [SPAM_LEVEL_TAG] = "spam_tag_score",
    [SPAM_LEVEL_FOLDER] = "spam_folder_score",
    [SPAM_LEVEL_QUARANTINE] = "spam_quarantine_score",
    [SPAM_LEVEL_DELETE] = "spam_delete_score",
};

/* The action of each level, and back. */
static const Correio__SpamAction spam_level_actions[SPAM_LEVELS] = {
    [SPAM_LEVEL_TAG] = CORREIO__SPAM_ACTION__SPAM_ACTION_TAG,
    [SPAM_LEVEL_FOLDER] = CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER,
    [SPAM_LEVEL_QUARANTINE] = CORREIO__SPAM_ACTION__SPAM_ACTION_QUARANTINE,
    [SPAM_LEVEL_DELETE] = CORREIO__SPAM_ACTION__SPAM_ACTION_DELETE,
};

/* spam_action_set - one threshold: 0 means never, as the parameters say. */
static void spam_action_set(spam_thresholds *t, int level, double score)
{
    t->on[level] = score != 0.0;
    t->score[level] = score;
}

void spam_action_defaults(const config_t *cfg, spam_thresholds *t)
{
    for (int i = 0; i < SPAM_LEVELS; i++)
        spam_action_set(t, i, config_number(cfg, spam_level_params[i]));
}

bool spam_action_parse(const char *value, spam_thresholds *t, const char **bad)
{
    spam_thresholds out = *t;
    const char *p = value;

    *bad = NULL;
    for (;;) {
        while (*p && (isspace((unsigned char)*p) || *p == ','))
            p++;
        if (!*p)
            break;
        const char *word = p, *eq = NULL;
        while (*p && !isspace((unsigned char)*p) && *p != ',') {
            if (*p == '=' && !eq)
                eq = p;
            p++;
        }
        int level = -1;
        for (int i = 0; eq && i < SPAM_LEVELS; i++)
            if ((size_t)(eq - word) == strlen(spam_level_names[i])
                && strncasecmp(word, spam_level_names[i], (size_t)(eq - word)) == 0)
                level = i;
        if (level < 0) {
            *bad = word;
            return false;
        }
        const char *num = eq + 1;
        size_t n = (size_t)(p - num);
        if (n == 3 && strncasecmp(num, "off", 3) == 0) {
            out.on[level] = false;
            out.score[level] = 0;
            continue;
        }
        char tmp[32], *end;
        if (n == 0 || n >= sizeof tmp) {
            *bad = word;
            return false;
        }
        memcpy(tmp, num, n);
        tmp[n] = '\0';
        double v = strtod(tmp, &end);
        if (*end || !isfinite(v) || v < -SPAM_ACTION_LIMIT || v > SPAM_ACTION_LIMIT) {
            *bad = word;
            return false;
        }
        spam_action_set(&out, level, v);
    }
    *t = out;
    return true;
}

Correio__SpamAction spam_action_choose(const spam_thresholds *t, double score)
{
    for (int i = SPAM_LEVELS - 1; i >= 0; i--)
        if (t->on[i] && score >= t->score[i])
            return spam_level_actions[i];
    return CORREIO__SPAM_ACTION__SPAM_ACTION_NONE;
}

const char *spam_action_name(Correio__SpamAction a)
{
    int level = spam_action_level(a);
    return level < 0 ? "none" : spam_level_names[level];
}

int spam_action_level(Correio__SpamAction a)
{
    for (int i = 0; i < SPAM_LEVELS; i++)
        if (spam_level_actions[i] == a)
            return i;
    return -1;
}

spam_action_t *spam_action_open(const config_t *cfg, char **err)
{
    spam_action_t *sa = xcalloc(1, sizeof *sa);
    const char *const *specs = config_list(cfg, "spam_action_maps");

    *err = NULL;
    for (size_t i = 0; specs && specs[i]; i++) {
        char *why = NULL;
        map_t *m = map_open(specs[i], config_dir(cfg), &why);
        if (!m) {
            *err = xasprintf("spam_action_maps: %s", why ? why : specs[i]);
            xfree(&why);
            spam_action_close(&sa);
            return NULL;
        }
        sa->maps = xrealloc(sa->maps, (sa->n_maps + 1) * sizeof *sa->maps);
        sa->maps[sa->n_maps++] = m;
    }
    return sa;
}

void spam_action_close(spam_action_t **sap)
{
    spam_action_t *sa = *sap;
    if (!sa)
        return;
    for (size_t i = 0; i < sa->n_maps; i++)
        map_close(&sa->maps[i]);
    xfree(&sa->maps);
    xfree(sap);
}

/* spam_action_lookup - ask every table for key: 1 found (applied to *t,
 * or logged and ignored when bad), 0 not found, -1 a table cannot answer. */
static int spam_action_lookup(spam_action_t *sa, const char *key, spam_thresholds *t)
{
    for (size_t i = 0; i < sa->n_maps; i++) {
        char *value = NULL;
        const char *bad = NULL;

        switch (map_lookup(sa->maps[i], key, &value)) {
        case MAP_NOTFOUND:
            continue;
        case MAP_ERROR:
            log_warn("spam_action_maps: %s: lookup of %s failed; routing waits",
                     map_spec(sa->maps[i]), key);
            return -1;
        case MAP_FOUND:
            break;
        }
        if (!spam_action_parse(value, t, &bad)) {
            char v[200], w[SPAM_ACTION_WORD_MAX + 8];
            size_t wl = strcspn(bad, " \t,");
            log_printable(v, sizeof v, value, strlen(value));
            log_printable(w, sizeof w, bad, wl < SPAM_ACTION_WORD_MAX ? wl : SPAM_ACTION_WORD_MAX);
            log_warn("spam_action_maps: %s: %s: bad value \"%s\" at \"%s\" (use tag=N folder=N "
                     "quarantine=N delete=N, N a score or off); the server's thresholds apply",
                     map_spec(sa->maps[i]), key, v, w);
        }
        xfree(&value);
        return 1;
    }
    return 0;
}

int spam_action_thresholds(spam_action_t *sa, const config_t *cfg, const char *recipient,
                           spam_thresholds *t)
{
    spam_action_defaults(cfg, t);
    if (!sa || sa->n_maps == 0)
        return 0;
    const char *at = strrchr(recipient, '@');
    const char *domain = at ? at + 1 : config_str(cfg, "myhostname");
    char *keys[3];
    int found = 0;

    keys[0] = at ? xstrdup(recipient) : xasprintf("%s@%s", recipient, domain);
    keys[1] = xasprintf("@%s", domain);
    keys[2] = xstrdup(domain);
    for (int i = 0; i < 3 && found == 0; i++)
        found = spam_action_lookup(sa, keys[i], t);
    for (int i = 0; i < 3; i++)
        xfree(&keys[i]);
    return found < 0 ? -1 : 0;
}
