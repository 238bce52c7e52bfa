/* awl_test.c - the router's auto-whitelist client (router/awl.c) against
 * a real policy service thread (policy_server.c over policy_state.c) on
 * an ipc:// socket in a temporary directory: whose mail is noted (an
 * authenticated user, or a verdict that says outbound), which addresses
 * (each recipient as the user wrote it, never the user), checks that
 * find them in any case, the null sender, spam_auto_whitelist = no, and
 * a check that nobody answers giving up after policy_timeout. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include <zmq.h>
#include "../../router/awl.h"
#include "../../router/policy_server.h"
#include "stage.h"
#include "timeutil.h"
#include "xalloc.h"

#define TIMEOUT_MS 400                  /* policy_timeout in these tests */

typedef struct fixture {
    char *root;
    config_t *cfg;
    stage_t st;
    policy_server_t *server;
    awl_t *awl;
} fixture;

/* load - a configuration in root with the extra lines. */
static config_t *load(const char *root, const char *extra)
{
    char *path = xasprintf("%s/correio.conf", root), *err = NULL;
    FILE *fp = fopen(path, "w");
    config_t *cfg;

    assert_non_null(fp);
    fprintf(fp, "data_directory = %s/data\nrun_directory = %s/run\npolicy_timeout = %dms\n%s",
            root, root, TIMEOUT_MS, extra);
    fclose(fp);
    cfg = config_load(root, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err);
    xfree(&path);
    return cfg;
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/awl_test.XXXXXX";
    fixture *f = xcalloc(1, sizeof(*f));
    char *run;

    assert_non_null(mkdtemp(tmpl));
    f->root = xstrdup(tmpl);
    run = xasprintf("%s/run", tmpl);
    assert_int_equal(mkdir(run, 0700), 0);
    xfree(&run);
    f->cfg = load(f->root, "spam_auto_whitelist = yes\n");
    f->st.name = "router";
    f->st.hostname = (char *)"router.test";
    f->st.cfg = f->cfg;
    f->st.zctx = zmq_ctx_new();
    f->st.signal_fd = -1;
    assert_non_null(f->st.zctx);
    f->server = policy_server_start(&f->st);
    f->awl = awl_new(f->st.zctx, f->cfg);
    assert_non_null(f->awl);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->root);

    awl_free(&f->awl);
    assert_null(f->awl);
    policy_server_stop(&f->server);
    zmq_ctx_term(f->st.zctx);
    config_free(&f->cfg);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    xfree(&f->root);
    xfree(&f);
    return 0;
}

/* An envelope from sender to the recipients (address, original pairs). */
typedef struct env_fixture {
    Envelope env;
    Client client;
    Verdict verdict;
    Recipient rcpt[4], *rp[4];
} env_fixture;

static void envelope(env_fixture *e, const char *sender, const char *auth_user, bool outbound,
                     const char *const *addrs, const char *const *originals, size_t n)
{
    Envelope env = CORREIO__ENVELOPE__INIT;
    Client client = CORREIO__CLIENT__INIT;
    Verdict verdict = CORREIO__VERDICT__INIT;

    assert_true(n <= 4);
    e->env = env;
    e->client = client;
    e->verdict = verdict;
    e->client.ip = "127.0.0.1";
    e->client.auth_user = (char *)auth_user;
    e->verdict.outbound = outbound;
    e->env.queue_id = "4F2A1B";
    e->env.client = &e->client;
    e->env.verdict = &e->verdict;
    e->env.reverse_path = (char *)sender;
    for (size_t i = 0; i < n; i++) {
        Recipient r = CORREIO__RECIPIENT__INIT;

        e->rcpt[i] = r;
        e->rcpt[i].address = (char *)addrs[i];
        e->rcpt[i].original = (char *)(originals ? originals[i] : "");
        e->rp[i] = &e->rcpt[i];
    }
    e->env.n_rcpt = n;
    e->env.rcpt = e->rp;
}

static void test_note_and_check(void **state)
{
    fixture *f = *state;
    env_fixture e;
    const char *to[] = {"bob@remote.example", "carol@other.example", "alice@example.org"};
    const char *orig[] = {"", "Carol@Remote.Example", ""};

    /* the first check waits for the connection to the router: nothing yet */
    assert_false(awl_check(f->awl, "alice@example.org", "bob@remote.example"));
    envelope(&e, "Alice@Example.ORG", "alice", false, to, orig, 3);
    awl_note_outbound(f->awl, &e.env);
    /* notes and checks share one connection: the notes are in first */
    assert_true(awl_check(f->awl, "alice@example.org", "bob@remote.example"));
    assert_true(awl_check(f->awl, "ALICE@example.org", "Bob@Remote.Example"));
    /* the recipient as the user wrote it, before alias expansion */
    assert_true(awl_check(f->awl, "alice@example.org", "carol@remote.example"));
    assert_false(awl_check(f->awl, "alice@example.org", "carol@other.example"));
    /* never the user, never <>, never another user's */
    assert_false(awl_check(f->awl, "alice@example.org", "alice@example.org"));
    assert_false(awl_check(f->awl, "alice@example.org", ""));
    assert_false(awl_check(f->awl, "dave@example.org", "bob@remote.example"));
    assert_false(awl_check(f->awl, "", "bob@remote.example"));
    assert_false(awl_check(f->awl, NULL, "bob@remote.example"));
    assert_false(awl_check(f->awl, "alice@example.org", NULL));
}

static void test_whose_mail(void **state)
{
    fixture *f = *state;
    env_fixture e;
    const char *to1[] = {"one@remote.example"}, *to2[] = {"two@remote.example"};
    const char *to3[] = {"three@remote.example"};

    assert_false(awl_check(f->awl, "erin@example.org", "one@remote.example"));
    /* not authenticated, not outbound: a stranger's mail notes nothing */
    envelope(&e, "erin@example.org", "", false, to1, NULL, 1);
    awl_note_outbound(f->awl, &e.env);
    e.env.client = NULL;
    e.env.verdict = NULL;
    awl_note_outbound(f->awl, &e.env);
    assert_false(awl_check(f->awl, "erin@example.org", "one@remote.example"));
    /* the classifier's outbound verdict is enough */
    envelope(&e, "erin@example.org", "", true, to2, NULL, 1);
    awl_note_outbound(f->awl, &e.env);
    assert_true(awl_check(f->awl, "erin@example.org", "two@remote.example"));
    /* the null sender writes for nobody */
    envelope(&e, "", "erin", true, to3, NULL, 1);
    awl_note_outbound(f->awl, &e.env);
    assert_false(awl_check(f->awl, "erin@example.org", "three@remote.example"));
    awl_note_outbound(f->awl, NULL);
}

static void test_off(void **state)
{
    fixture *f = *state;
    config_t *cfg = load(f->root, "spam_auto_whitelist = no\n");
    env_fixture e;
    const char *to[] = {"bob@remote.example"};

    assert_null(awl_new(f->st.zctx, cfg));
    envelope(&e, "alice@example.org", "alice", false, to, NULL, 1);
    awl_note_outbound(NULL, &e.env);
    assert_false(awl_check(NULL, "alice@example.org", "bob@remote.example"));
    awl_free(&(awl_t *){NULL});
    config_free(&cfg);
}

/* Nobody listens: the check gives up after policy_timeout, not before,
 * not much after. */
static void test_no_answer(void **state)
{
    fixture *f = *state;
    char *extra = xasprintf("spam_auto_whitelist = yes\npolicy_endpoints = ipc://%s/run/nobody\n",
                            f->root);
    config_t *cfg = load(f->root, extra);
    awl_t *a = awl_new(f->st.zctx, cfg);
    int64_t t0, took;

    assert_non_null(a);
    t0 = time_mono_ms();
    assert_false(awl_check(a, "alice@example.org", "bob@remote.example"));
    took = time_mono_ms() - t0;
    assert_true(took >= TIMEOUT_MS - 5);
    assert_true(took < TIMEOUT_MS + 1000);
    awl_free(&a);
    config_free(&cfg);
    xfree(&extra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_note_and_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_whose_mail, setup, teardown),
        cmocka_unit_test_setup_teardown(test_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_answer, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
