/* bayes.h - the Bayesian filter: a message's tokens, the token database
 * and the spam probability of a message (Gary Robinson's f(w) and Fisher's
 * chi-square combining, as SpamAssassin does it).
 *
 * `correio bayes train` (ctl/cmd_bayes.c) is the only writer of the
 * database; classifiers (classifier/test_bayes.c) open it read-only and
 * begin one read transaction per message, so they see each training run
 * from the next message on.
 *
 * The database is an LMDB environment in one directory
 * (spam_bayes_database) with three named databases:
 *   "tokens"  key: the first 8 bytes of the 64-bit FNV-1a hash of the
 *             token text; data: {u32 ham, u32 spam}, the number of learned
 *             messages of each class that carry the token;
 *   "meta"    "version" (u32 BAYES_VERSION), "nham", "nspam" (u32);
 *   "seen"    key: SHA-1 of the Message-ID field (of the whole message
 *             when it has none); data: 'h' or 's', the class it was
 *             learned as, so that learning a message again changes
 *             nothing and learning it as the other class moves it.
 * Integers are in host byte order (LMDB files are not portable anyway).
 */
#ifndef CORREIO_BAYES_H
#define CORREIO_BAYES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mime.h"

#define BAYES_VERSION      1
#define BAYES_MAX_TOKENS   5000               /* distinct tokens taken per message */
#define BAYES_MAX_TEXT     (256 * 1024)       /* text bytes of the body read per message */
#define BAYES_WORD_MIN     3                  /* shorter body/Subject words are skipped */
#define BAYES_WORD_MAX     20                 /* longer ones become "sk:" + 7 bytes */
#define BAYES_MAP_SIZE     ((size_t)1 << 30)  /* LMDB map: ~60 M tokens */

/* The constants of the probability (SpamAssassin 4.0, Bayes/CombineChi.pm
 * and Plugin/Bayes.pm). */
#define BAYES_FW_S             0.030   /* Robinson's s: strength of the prior */
#define BAYES_FW_X             0.538   /* Robinson's x: f(w) of an unseen token */
#define BAYES_MIN_PROB_STRENGTH 0.346  /* tokens with |f(w) - 0.5| below are ignored */
#define BAYES_N_SIGNIFICANT    150     /* the most significant tokens combined */

/* A message's tokens, distinct, in the order found. */
typedef struct bayes_tokens {
    char   *text;      /* the tokens, each NUL-terminated, one after another */
    size_t  text_len, text_cap;
    size_t *off;       /* n offsets into text */
    uint64_t *hash;    /* n FNV-1a hashes (the database keys) */
    size_t  n;
    size_t  cap;       /* of off/hash (internal) */
    uint64_t *set;     /* open-addressing set of hashes (internal) */
    size_t  set_cap;
} bayes_tokens;

typedef enum { BAYES_HAM, BAYES_SPAM } bayes_class;

/* What learning one message did. */
typedef enum {
    BAYES_LEARNED_NEW,     /* counted for the first time */
    BAYES_LEARNED_KNOWN,   /* already learned as this class: nothing changed */
    BAYES_LEARNED_MOVED,   /* was learned as the other class: moved */
} bayes_learned;

typedef struct bayes bayes_t;

/* bayes_tokenize - the tokens of a parsed message into *t (free with
 * bayes_tokens_free):
 *   body words of the text/plain and text/html leaves (HTML as visible
 *     text), lower-cased, 3..20 bytes (UTF-8 kept whole), longer ones as
 *     "sk:" + their first 7 bytes, numbers skipped;
 *   Subject words as "S:word";
 *   From, To, Reply-To addresses as "H*F:user", "H*F:domain" (H*T:,
 *     H*R:);
 *   content types and charsets of the leaves "H*CT:text/html",
 *     "H*CS:utf-8";
 *   link hosts "U:host" (and "U:" + its last two labels);
 *   "H:X-Mailer:word", "H:User-Agent:word" (the first word) and the
 *     presence of a few header fields ("H:List-Unsubscribe");
 *   the number of Received fields, bucketed ("H:Received:2", "4-5",
 *     "6-9", "10+").
 * At most BAYES_MAX_TOKENS tokens and BAYES_MAX_TEXT bytes of body text
 * are taken; never fails. */
void bayes_tokenize(const mime_msg *m, bayes_tokens *t);
/* bayes_token - the i-th token's text. */
const char *bayes_token(const bayes_tokens *t, size_t i);
/* bayes_tokens_has - is text one of the tokens? (tests, debugging) */
bool bayes_tokens_has(const bayes_tokens *t, const char *text);
void bayes_tokens_free(bayes_tokens *t);

/* bayes_open - the database in dir.  writable (the trainer): create dir
 * and the environment if needed.  Read-only (classifiers): a missing
 * database is not an error: *missing is set and NULL returned.  NULL with
 * *err (malloc'ed) on other failures, e.g. another version. */
bayes_t *bayes_open(const char *dir, bool writable, bool *missing, char **err);
/* bayes_close - close (aborting an open batch) and set *b to NULL; NULL
 * is fine. */
void bayes_close(bayes_t **b);

/* Training (writable only): bayes_begin opens a batch (one write
 * transaction), bayes_learn / bayes_forget add messages to it,
 * bayes_commit makes it durable (commit and mdb_env_sync).  Each returns
 * 0, or -1 with *err (the batch is then aborted). */
int bayes_begin(bayes_t *b, char **err);
/* bayes_learn - learn data (a whole message, header and body) as cls;
 * *what says what it did. */
int bayes_learn(bayes_t *b, const char *data, size_t len, bayes_class cls,
                bayes_learned *what, char **err);
/* bayes_forget - unlearn data: *found false when it was never learned. */
int bayes_forget(bayes_t *b, const char *data, size_t len, bool *found, char **err);
int bayes_commit(bayes_t *b, char **err);

/* bayes_counts - learned ham and spam messages and distinct tokens (each
 * may be NULL).  0, or -1 with *err. */
int bayes_counts(bayes_t *b, uint32_t *nham, uint32_t *nspam, size_t *ntokens, char **err);

/* bayes_classify - the probability that the parsed message m is spam, in
 * [0, 1], into *p: 1 when it says something, 0 when the database knows
 * fewer than min_learned ham or spam messages or none of m's tokens is
 * significant (silent), -1 with *err when it cannot be read.  One read
 * transaction, one lookup per distinct token. */
int bayes_classify(bayes_t *b, const mime_msg *m, unsigned min_learned, double *p, char **err);

/* bayes_combine - the chi-square combining of n token probabilities
 * f[i] with nspam and nham messages learned (the prior), in [0, 1];
 * exposed for the unit tests. */
double bayes_combine(const double *f, size_t n, uint32_t nspam, uint32_t nham);
/* bayes_token_prob - Robinson's f(w) of a token seen in spam spam and
 * ham ham messages out of nspam and nham; -1 for a token never seen. */
double bayes_token_prob(uint32_t spam, uint32_t ham, uint32_t nspam, uint32_t nham);

#endif
