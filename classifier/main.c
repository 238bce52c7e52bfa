/* main.c - correio-classifier: takes envelopes from the ingress (PULL),
 * scores them (scoring.c, and the DNS tests of test_dns.c in the loop of
 * classify_loop.c), adds X-Spam-* header fields and the verdict
 * (spam_headers.c) and pushes them on to the router.  It owns nothing:
 * an envelope lost here is sent again by the ingress. */
#include "classify_loop.h"
#include "config.h"
#include "log.h"
#include "rules.h"
#include "scoring.h"
#include "stage.h"
#include "xalloc.h"

typedef struct classifier {
    stage_t   *st;
    scoring_t *scoring;
} classifier;

/* classifier_rules - load spam_rules_files; NULL and *err on a mistake. */
static rules_t *classifier_rules(const config_t *cfg, char **err)
{
    const char *const *files = config_list(cfg, "spam_rules_files");
    rules_t *r = rules_load(files, config_dir(cfg), scoring_known, NULL, err);
    if (r)
        log_info("spam rules: %zu rules from %s", rules_count(r),
                 files && files[0] ? "spam_rules_files" : "no file");
    return r;
}

static void classifier_reload(void *ctx, const config_t *cfg)
{
    classifier *c = ctx;
    char *err = NULL;

    scoring_configure(c->scoring, cfg);
    rules_t *r = classifier_rules(cfg, &err);
    if (r) {
        scoring_set_rules(c->scoring, r);
    } else {
        log_warn("spam_rules_files: %s; keeping the previous rules", err);
        xfree(&err);
    }
}

int main(int argc, char **argv)
{
    stage_t st;
    classifier c = {.st = &st};

    stage_start(&st, "classifier", argc, argv);
    /* No network listener: become mail_owner before any socket or
     * file is made, so that they all belong to it. */
    stage_drop_privileges(&st);
    c.scoring = scoring_new(st.cfg);
    char *err = NULL;
    rules_t *rules = classifier_rules(st.cfg, &err);
    if (!rules)
        log_fatal("spam_rules_files: %s", err);
    scoring_set_rules(c.scoring, rules);
    log_info("required score %.1f", config_number(st.cfg, "spam_required_score"));
    classify_loop_run(&st, c.scoring, classifier_reload, &c);
    scoring_free(&c.scoring);
    stage_finish(&st);
    return 0;
}
