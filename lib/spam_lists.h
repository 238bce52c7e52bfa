/* spam_lists.h - per-user, per-domain and server-wide white and black
 * lists and keyword points, in one LMDB environment
 * (data_directory/lists).
 *
 * `correio list` (ctl/cmd_list.c) is the only writer; classifiers open
 * the environment read-only and begin one read transaction per message,
 * so they see every commit of the ctl at the next message.
 *
 * An entry is (scope, kind, value):
 *   scope  "*" (the server), "example.com" (a domain) or
 *          "alice@example.com" (a user), lower-cased;
 *   kind   whitelist or blacklist of a sender, whose value is an address
 *          "sender@partner.com" or a domain "@partner.com" (which also
 *          covers its subdomains); or a keyword, whose value is a word or
 *          phrase (matched case-insensitively, at word boundaries, in the
 *          Subject and the text of the body) with points, positive or
 *          negative.
 *
 * Which sender entry counts for a message and a recipient: the scopes
 * are looked at from the most specific, user, then domain, then server;
 * the first scope with an entry for the sender decides (so a user's
 * whitelist beats a domain's or the server's blacklist, and a user's
 * blacklist beats a server whitelist).  Within a scope an address entry
 * beats a domain entry, a longer domain beats its parent, and a
 * whitelist beats a blacklist of the same value.  Keyword points add up
 * over the three scopes (a keyword listed at two levels counts twice).
 *
 * Keys are "scope\0kind\0value"; the data of a keyword is its points as
 * text, empty for the others.
 */
#ifndef CORREIO_SPAM_LISTS_H
#define CORREIO_SPAM_LISTS_H

#include <stdbool.h>
#include <stddef.h>

/* Bounds on what an entry may hold (LMDB keys are at most 511 bytes). */
#define SPAM_LISTS_SCOPE_MAX   254
#define SPAM_LISTS_VALUE_MAX   200
#define SPAM_LISTS_POINTS_MAX  1000.0
/* Keywords read per scope and message; more are ignored (and warned). */
#define SPAM_LISTS_KEYWORDS_MAX 10000

typedef struct spam_lists spam_lists_t;

typedef enum {
    SPAM_LISTS_WHITELIST,
    SPAM_LISTS_BLACKLIST,
    SPAM_LISTS_KEYWORD,
} spam_lists_kind;

typedef enum {
    SPAM_LISTS_NONE,         /* no entry for this sender */
    SPAM_LISTS_USER,
    SPAM_LISTS_DOMAIN,
    SPAM_LISTS_SERVER,
} spam_lists_level;

/* One entry, as spam_lists_show returns it. */
typedef struct spam_lists_entry {
    char           *scope;
    spam_lists_kind kind;
    char           *value;
    double          points;   /* keywords; 0 for the others */
} spam_lists_entry;

/* What the lists say about one message for one recipient. */
typedef struct spam_lists_verdict {
    spam_lists_level level;       /* where the sender decision came from */
    bool             whitelisted; /* when level != NONE: white or black */
    double           keyword_points;
    unsigned         keyword_hits;
} spam_lists_verdict;

/* spam_lists_open - open the environment in dir.  writable: create dir
 * and the environment if needed (the ctl).  Read-only (classifiers): a
 * missing environment is not an error: *missing is set and NULL
 * returned, so the caller tries again later.  NULL with *err (malloc'ed)
 * on other failures. */
spam_lists_t *spam_lists_open(const char *dir, bool writable, bool *missing, char **err);
/* spam_lists_close - close and set *l to NULL; NULL is fine. */
void spam_lists_close(spam_lists_t **l);

/* spam_lists_kind_parse - "whitelist", "blacklist", "keyword"; false for
 * another word.  spam_lists_kind_name is the reverse. */
bool spam_lists_kind_parse(const char *word, spam_lists_kind *kind);
const char *spam_lists_kind_name(spam_lists_kind kind);
/* spam_lists_level_name - "USER", "DOMAIN", "SERVER" or "NONE". */
const char *spam_lists_level_name(spam_lists_level level);

/* spam_lists_scope_norm - the canonical form of a scope ("*", a domain or
 * an address, lower-cased), malloc'ed; NULL with *err when it is none. */
char *spam_lists_scope_norm(const char *scope, char **err);
/* spam_lists_value_norm - the canonical form of a value of kind:
 * "@domain" for a domain (a bare "domain" gets its "@"), the address,
 * or the keyword, lower-cased and trimmed; NULL with *err when bad. */
char *spam_lists_value_norm(spam_lists_kind kind, const char *value, char **err);

/* spam_lists_add - add or replace an entry (scope and value are
 * normalised here; points only for keywords, finite, nonzero and within
 * +-SPAM_LISTS_POINTS_MAX).  0, or -1 with *err. */
int spam_lists_add(spam_lists_t *l, const char *scope, spam_lists_kind kind,
                   const char *value, double points, char **err);
/* spam_lists_del - remove an entry: 1 removed, 0 there was none, -1 with
 * *err. */
int spam_lists_del(spam_lists_t *l, const char *scope, spam_lists_kind kind,
                   const char *value, char **err);
/* spam_lists_show - the entries of scope (NULL: all), sorted by scope,
 * kind and value, into *out (free with spam_lists_entries_free).
 * Returns the count, or -1 with *err. */
long spam_lists_show(spam_lists_t *l, const char *scope, spam_lists_entry **out, char **err);
void spam_lists_entries_free(spam_lists_entry **entries, size_t n);

/* spam_lists_check - what the lists say about a message from sender ("" the
 * null sender: no sender entry applies) to rcpt (NULL: the server scope
 * only) whose Subject and body text are the n texts[i] of lens[i] bytes.
 * 0 with *out filled, or -1 with *err (out then says nothing). */
int spam_lists_check(spam_lists_t *l, const char *rcpt, const char *sender,
                     const char *const *texts, const size_t *lens, size_t n,
                     spam_lists_verdict *out, char **err);

#endif
