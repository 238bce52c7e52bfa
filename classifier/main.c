/* main.c - correio-classifier: takes envelopes from the ingress (PULL),
 * scores them (scoring.c), adds X-Spam-* header fields and the verdict
 * (spam_headers.c) and pushes them on to the router.  It owns nothing:
 * an envelope lost here is sent again by the ingress. */
#include "buf.h"
#include "config.h"
#include "log.h"
#include "pass_stage.h"
#include "rules.h"
#include "scoring.h"
#include "spam_headers.h"
#include "stage.h"
#include "xalloc.h"

typedef struct classifier {
    stage_t           *st;
    scoring_t         *scoring;
    unsigned long long n_spam;
} classifier;

/* classifier_transform - score env and pack it with its verdict. */
static uint8_t *classifier_transform(void *ctx, const Envelope *env, size_t *len)
{
    classifier *c = ctx;
    scoring_result r;
    char *tests;
    uint8_t *out;

    scoring_run(c->scoring, env, &r);
    tests = scoring_tests_text(&r);
    log_info("%s: classified score=%.1f spam=%s tests=%s", env->queue_id,
             r.score, r.is_spam ? "yes" : "no", tests);
    xfree(&tests);
    out = spam_headers_pack(env, &r, c->st->hostname, len);
    if (r.is_spam)
        c->n_spam++;
    scoring_result_free(&r);
    return out;
}

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

static void classifier_stats(void *ctx, buf_t *out)
{
    classifier *c = ctx;

    buf_printf(out, " spam=%llu", c->n_spam);
}

int main(int argc, char **argv)
{
    static const pass_stage_ops ops = {
        .input_param = "classifier_endpoint",
        .output_param = "router_endpoint",
        .admin_param = "classifier_admin_endpoint",
        .transform = classifier_transform,
        .reload = classifier_reload,
        .stats = classifier_stats,
    };
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
    pass_stage_run(&st, &ops, &c);
    scoring_free(&c.scoring);
    stage_finish(&st);
    return 0;
}
