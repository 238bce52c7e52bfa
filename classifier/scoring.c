/* scoring.c - the classifier's table of tests and the engine that runs
 * them (see scoring.h).  To add a test: write test_NAME.c, declare it in
 * scoring.h, add its row to scoring_table below. */
#include <string.h>
#include <strings.h>
#include "buf.h"
#include "log.h"
#include "scoring.h"
#include "xalloc.h"

/* The one table of tests, in the order they run. */
static const scoring_test scoring_table[] = {
    {"GTUBE", 1000.0, test_gtube,
     "the GTUBE test string is in the message (spam filter self-test)"},
};
#define SCORING_NTESTS (sizeof scoring_table / sizeof scoring_table[0])

struct scoring {
    double required;
    double score[SCORING_NTESTS];   /* effective score per table row */
    void  *ctx[SCORING_NTESTS];     /* per-test state, NULL for now */
};

scoring_t *scoring_new(const config_t *cfg)
{
    scoring_t *s = xcalloc(1, sizeof *s);
    for (size_t i = 0; i < SCORING_NTESTS; i++)
        s->score[i] = scoring_table[i].score;
    scoring_configure(s, cfg);
    return s;
}

void scoring_configure(scoring_t *s, const config_t *cfg)
{
    s->required = config_number(cfg, "spam_required_score");
}

bool scoring_set_score(scoring_t *s, const char *name, double score)
{
    for (size_t i = 0; i < SCORING_NTESTS; i++) {
        if (strcasecmp(scoring_table[i].name, name) == 0) {
            s->score[i] = score;
            return true;
        }
    }
    return false;
}

/* scoring_split - find the blank line between header section and body. */
static void scoring_split(const Envelope *env, scoring_msg *msg)
{
    const char *data = (const char *)env->body.data;
    size_t len = data ? env->body.len : 0;

    msg->env = env;
    msg->headers = data;
    msg->headers_len = 0;
    msg->body = data;
    msg->body_len = len;
    if (len >= 2 && data[0] == '\r' && data[1] == '\n') {   /* no headers */
        msg->body = data + 2;
        msg->body_len = len - 2;
        return;
    }
    const char *sep = len ? memmem(data, len, "\r\n\r\n", 4) : NULL;
    if (sep) {
        msg->headers_len = (size_t)(sep - data) + 2;   /* keep the last CRLF */
        msg->body = sep + 4;
        msg->body_len = len - (size_t)(sep + 4 - data);
    }
}

void scoring_run(const scoring_t *s, const Envelope *env, scoring_result *out)
{
    scoring_msg msg;
    scoring_split(env, &msg);

    memset(out, 0, sizeof *out);
    out->required = s->required;
    out->hits = xcalloc(SCORING_NTESTS, sizeof *out->hits);
    for (size_t i = 0; i < SCORING_NTESTS; i++) {
        if (s->score[i] == 0.0)
            continue;                   /* disabled by `score NAME 0` */
        if (!scoring_table[i].fn(&msg, s->ctx[i]))
            continue;
        out->hits[out->n_hits].name = scoring_table[i].name;
        out->hits[out->n_hits].score = s->score[i];
        out->n_hits++;
        out->score += s->score[i];
    }
    out->is_spam = out->score >= out->required;
}

void scoring_result_free(scoring_result *r)
{
    xfree(&r->hits);
    r->n_hits = 0;
}

char *scoring_tests_text(const scoring_result *r)
{
    if (r->n_hits == 0)
        return xstrdup("none");
    buf_t b = BUF_INIT;
    for (size_t i = 0; i < r->n_hits; i++) {
        if (i)
            buf_append_char(&b, ',');
        buf_append_str(&b, r->hits[i].name);
    }
    return buf_steal(&b, NULL);
}

void scoring_free(scoring_t **s)
{
    xfree(s);
}
