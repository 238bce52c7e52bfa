/* policy_state_test.c - the router's policy decisions, driven by `now`:
 * greylisting (new, early, passed, known, expired retry, pass lifetime),
 * each intrusion rule triggered at its limit and expired after its block
 * time, the connection rate per minute, spam traps, spam history,
 * sending limits and their day window, the auto-whitelist (note, check,
 * expiry, the per-user bound, its listing), the administration kinds,
 * the sweep, a full map, and a reopened environment that finds its
 * state. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../router/policy_state.h"
#include "xalloc.h"

#define TEST_MAP (16 * 1024 * 1024)
#define S        INT64_C(1000000)           /* one second in µs */
#define T0       (INT64_C(1700000000) * S)  /* a fixed start time */
#define NODE     "mx.example.test"

typedef struct fixture {
    char *root;                 /* the test's temporary directory */
    char *dir;
    policy_state_t *s;
    policy_settings ps;
} fixture;

/* defaults - the configuration's defaults, written out. */
static void defaults(policy_settings *ps)
{
    memset(ps, 0, sizeof(*ps));
    ps->greylist_delay = 300 * S;
    ps->greylist_retry_window = 2 * 86400 * S;
    ps->greylist_pass_lifetime = 30 * 86400 * S;
    ps->adaptive_memory = 30 * 86400 * S;
    ps->block_time = 240 * 60 * S;
    ps->spamtrap_block_time = 30 * 60 * S;
    ps->window = 60 * 60 * S;
    ps->intrusion = true;
    ps->unknown_rcpt_limit = 5;
    ps->conn_rate_limit = 100;
    ps->relay_failure_limit = 1;
    ps->auth_failure_limit = 10;
    ps->rset_limit = 20;
    ps->size_limit = 100 * 1024 * 1024;
    ps->block_on_dnsbl = true;
    ps->awl_lifetime = 180 * 86400 * S;
    ps->awl_max = AWL_PER_USER_MAX;
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/policy_state_test.XXXXXX";
    fixture *f = xcalloc(1, sizeof(*f));
    char *err = NULL;

    assert_non_null(mkdtemp(tmpl));
    f->root = xstrdup(tmpl);
    f->dir = xasprintf("%s/router/policy", tmpl);
    f->s = policy_state_open(f->dir, TEST_MAP, &err);
    assert_non_null(f->s);
    defaults(&f->ps);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    char *cmd = xasprintf("rm -rf '%s'", f->root);

    policy_state_close(&f->s);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    xfree(&f->dir);
    xfree(&f->root);
    xfree(&f);
    return 0;
}

/* One request's fields that the tests set. */
typedef struct q {
    Correio__PolicyKind kind;
    const char *key, *reason, *recipient, *sender, *table;
    uint32_t count, limit;
} q;

/* ask - one request in its own batch at now; the reply is the caller's
 * (policy_reply_clear). */
static PolicyReply ask(fixture *f, q r, int64_t now)
{
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    PolicyReply reply = CORREIO__POLICY_REPLY__INIT;

    req.version = WIRE_VERSION;
    req.id = 42;
    req.kind = r.kind;
    req.key = (char *)(r.key ? r.key : "");
    req.reason = (char *)(r.reason ? r.reason : "");
    req.recipient = (char *)(r.recipient ? r.recipient : "");
    req.sender = (char *)(r.sender ? r.sender : "");
    req.table = (char *)(r.table ? r.table : "");
    req.session = "TESTSESSION";
    req.count = r.count;
    req.limit = r.limit;
    assert_int_equal(policy_state_begin(f->s), 0);
    policy_state_apply(f->s, &f->ps, &req, now, NODE, &reply);
    assert_int_equal(policy_state_commit(f->s), 0);
    assert_int_equal(reply.id, 42);
    assert_int_equal(reply.version, WIRE_VERSION);
    return reply;
}

/* expect - ask and check the action and reason; returns nothing. */
static void expect(fixture *f, q r, int64_t now, Correio__PolicyAction action, const char *reason)
{
    PolicyReply reply = ask(f, r, now);

    if (reply.action != action || strcmp(reply.reason, reason) != 0)
        fail_msg("kind %d key %s reason %s at +%llds: got action %d reason %s (text %s), "
                 "expected %d %s", r.kind, r.key, r.reason ? r.reason : "-",
                 (long long)((now - T0) / S), reply.action, reply.reason, reply.text,
                 action, reason);
    policy_reply_clear(&reply);
}

#define GREY(k_)      ((q){.kind = CORREIO__POLICY_KIND__POLICY_GREYLIST, .key = (k_), \
                           .recipient = "bob@example.test"})
#define CONNECT(ip_)  ((q){.kind = CORREIO__POLICY_KIND__POLICY_CONNECT, .key = (ip_)})
#define EVENT(ip_, r_) ((q){.kind = CORREIO__POLICY_KIND__POLICY_EVENT, .key = (ip_), \
                            .reason = (r_)})
#define P_OK            CORREIO__POLICY_ACTION__POLICY_OK
#define P_DEFER         CORREIO__POLICY_ACTION__POLICY_DEFER
#define P_BLOCKED       CORREIO__POLICY_ACTION__POLICY_BLOCKED
#define P_ERROR         CORREIO__POLICY_ACTION__POLICY_ERROR

/* ------------------------------------------------------------ greylist */

static void test_greylist_states(void **state)
{
    fixture *f = *state;
    const char *k = "a@sender.example/bob@example.test";
    PolicyReply r = ask(f, GREY(k), T0);

    assert_int_equal(r.action, P_DEFER);
    assert_string_equal(r.reason, "GREYLIST_NEW");
    assert_int_equal(r.until, T0 + 300 * S);
    assert_string_equal(r.text, "450 4.7.1 <bob@example.test>: Recipient address rejected: "
                                "Greylisted for 300 seconds (see RFC 6647)");
    policy_reply_clear(&r);

    r = ask(f, GREY(k), T0 + 100 * S);
    assert_int_equal(r.action, P_DEFER);
    assert_string_equal(r.reason, "GREYLIST_EARLY");
    assert_non_null(strstr(r.text, "Greylisted for 200 seconds"));
    policy_reply_clear(&r);

    /* half a second before: still "at least 1" second */
    r = ask(f, GREY(k), T0 + 300 * S - S / 2);
    assert_string_equal(r.reason, "GREYLIST_EARLY");
    assert_non_null(strstr(r.text, "Greylisted for 1 seconds"));
    policy_reply_clear(&r);

    expect(f, GREY(k), T0 + 301 * S, P_OK, "GREYLIST_PASSED");
    expect(f, GREY(k), T0 + 1000 * S, P_OK, "GREYLIST_KNOWN");
    /* used within the lifetime keeps it passed */
    expect(f, GREY(k), T0 + 29 * 86400 * S, P_OK, "GREYLIST_KNOWN");
    expect(f, GREY(k), T0 + 58 * 86400 * S, P_OK, "GREYLIST_KNOWN");
    /* idle longer than the lifetime: starts over */
    expect(f, GREY(k), T0 + 89 * 86400 * S, P_DEFER, "GREYLIST_NEW");
}

static void test_greylist_retry_window(void **state)
{
    fixture *f = *state;
    const char *k = "192.0.2.0/24/a@sender.example/bob@example.test";
    int64_t late = T0 + 300 * S + 2 * 86400 * S + S;

    expect(f, GREY(k), T0, P_DEFER, "GREYLIST_NEW");
    /* the retry came after first + delay + window: a new first */
    expect(f, GREY(k), late, P_DEFER, "GREYLIST_NEW");
    expect(f, GREY(k), late + 299 * S, P_DEFER, "GREYLIST_EARLY");
    expect(f, GREY(k), late + 300 * S, P_OK, "GREYLIST_PASSED");
    /* last moment of the window still passes */
    expect(f, GREY("x/y"), T0, P_DEFER, "GREYLIST_NEW");
    expect(f, GREY("x/y"), T0 + 300 * S + 2 * 86400 * S, P_OK, "GREYLIST_PASSED");
}

/* ------------------------------------------------------------ intrusion */

/* A rule, its limit setting and the event that blocks. */
static const struct rule_case {
    const char *reason;
    unsigned    blocks_at;      /* the event number that blocks */
    int64_t     block_time;
} rules[] = {
    {"UNKNOWN_RCPT", 6, 240 * 60 * S},   /* more than 5 */
    {"RELAY", 1, 240 * 60 * S},          /* at 1 */
    {"AUTH", 11, 240 * 60 * S},          /* more than 10 */
    {"SIZE", 1, 240 * 60 * S},           /* at once */
    {"RSET", 1, 240 * 60 * S},
    {"DNSBL", 1, 240 * 60 * S},
    {"SPAMTRAP", 1, 30 * 60 * S},        /* intrusion_spamtrap_block_time */
};

static void test_intrusion_rules(void **state)
{
    fixture *f = *state;

    for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
        const struct rule_case *rc = &rules[i];
        char ip[32];
        int64_t now = T0;
        PolicyReply r;

        snprintf(ip, sizeof(ip), "198.51.100.%zu", i + 1);
        for (unsigned n = 1; n < rc->blocks_at; n++, now += S) {
            r = ask(f, EVENT(ip, rc->reason), now);
            if (r.action != P_OK)
                fail_msg("%s: event %u answered %d", rc->reason, n, r.action);
            assert_int_equal(r.count, n);
            policy_reply_clear(&r);
        }
        r = ask(f, EVENT(ip, rc->reason), now);
        if (r.action != P_BLOCKED)
            fail_msg("%s: event %u did not block", rc->reason, rc->blocks_at);
        assert_string_equal(r.reason, rc->reason);
        assert_int_equal(r.until, now + rc->block_time);
        assert_non_null(strstr(r.text, "421 4.7.0 " NODE ": Error: blocked by intrusion prevention ("));
        policy_reply_clear(&r);

        /* blocked: connect refused, with the ip and until in the text */
        r = ask(f, CONNECT(ip), now + S);
        assert_int_equal(r.action, P_BLOCKED);
        assert_string_equal(r.reason, rc->reason);
        assert_non_null(strstr(r.text, "] blocked by intrusion prevention ("));
        assert_non_null(strstr(r.text, ip));
        assert_non_null(strstr(r.text, " until 20"));
        policy_reply_clear(&r);
        /* further events while blocked: still blocked */
        expect(f, EVENT(ip, rc->reason), now + 2 * S, P_BLOCKED, rc->reason);

        /* the block is over: connect passes, and counting starts again */
        now += rc->block_time;
        expect(f, CONNECT(ip), now, P_OK, "");
        r = ask(f, EVENT(ip, rc->reason), now);
        assert_int_equal(r.action, rc->blocks_at == 1 ? P_BLOCKED : P_OK);
        policy_reply_clear(&r);
    }
}

static void test_intrusion_rules_off(void **state)
{
    fixture *f = *state;

    f->ps.unknown_rcpt_limit = 0;
    f->ps.relay_failure_limit = 0;
    f->ps.auth_failure_limit = 0;
    f->ps.size_limit = 0;
    f->ps.rset_limit = 0;
    f->ps.block_on_dnsbl = false;
    for (int n = 0; n < 20; n++) {
        expect(f, EVENT("192.0.2.9", "UNKNOWN_RCPT"), T0 + n, P_OK, "");
        expect(f, EVENT("192.0.2.9", "RELAY"), T0 + n, P_OK, "");
        expect(f, EVENT("192.0.2.9", "AUTH"), T0 + n, P_OK, "");
        expect(f, EVENT("192.0.2.9", "SIZE"), T0 + n, P_OK, "");
        expect(f, EVENT("192.0.2.9", "RSET"), T0 + n, P_OK, "");
        expect(f, EVENT("192.0.2.9", "DNSBL"), T0 + n, P_OK, "");
    }
    /* the whole feature off: nothing blocks, not even a spam trap */
    f->ps.intrusion = false;
    expect(f, EVENT("192.0.2.9", "SPAMTRAP"), T0, P_OK, "");
    expect(f, CONNECT("192.0.2.9"), T0, P_OK, "");
}

static void test_intrusion_window(void **state)
{
    fixture *f = *state;

    /* 5 unknown recipients, the window passes, 5 more: never more than 5 */
    for (int n = 0; n < 5; n++)
        expect(f, EVENT("192.0.2.10", "UNKNOWN_RCPT"), T0 + n * S, P_OK, "");
    for (int n = 0; n < 5; n++)
        expect(f, EVENT("192.0.2.10", "UNKNOWN_RCPT"), T0 + 3600 * S + n * S, P_OK, "");
    expect(f, EVENT("192.0.2.10", "UNKNOWN_RCPT"), T0 + 3600 * S + 10 * S, P_BLOCKED,
           "UNKNOWN_RCPT");
}

static void test_conn_rate(void **state)
{
    fixture *f = *state;

    f->ps.conn_rate_limit = 3;
    for (int n = 0; n < 3; n++)
        expect(f, CONNECT("203.0.113.1"), T0 + n * S, P_OK, "");
    PolicyReply r = ask(f, CONNECT("203.0.113.1"), T0 + 10 * S);
    assert_int_equal(r.action, P_BLOCKED);
    assert_string_equal(r.reason, "CONN_RATE");
    assert_int_equal(r.until, T0 + 10 * S + 240 * 60 * S);
    assert_non_null(strstr(r.text, "421 4.7.0 " NODE ": Error: [203.0.113.1] blocked by "
                                   "intrusion prevention (CONN_RATE) until "));
    policy_reply_clear(&r);

    /* a new minute window: 3 more connections are fine */
    for (int n = 0; n < 3; n++)
        expect(f, CONNECT("203.0.113.2"), T0 + n * 20 * S, P_OK, "");
    for (int n = 0; n < 3; n++)
        expect(f, CONNECT("203.0.113.2"), T0 + 61 * S + n * S, P_OK, "");
    expect(f, CONNECT("203.0.113.2"), T0 + 70 * S, P_BLOCKED, "CONN_RATE");
}

static void test_spamtrap_block_time(void **state)
{
    fixture *f = *state;

    expect(f, EVENT("192.0.2.20", "SPAMTRAP"), T0, P_BLOCKED, "SPAMTRAP");
    expect(f, CONNECT("192.0.2.20"), T0 + 30 * 60 * S - 1, P_BLOCKED, "SPAMTRAP");
    expect(f, CONNECT("192.0.2.20"), T0 + 30 * 60 * S, P_OK, "");
}

static void test_spam_history(void **state)
{
    fixture *f = *state;
    PolicyReply r;
    q seen = {.kind = CORREIO__POLICY_KIND__POLICY_SPAM_SEEN, .key = "192.0.2.30"};

    r = ask(f, CONNECT("192.0.2.30"), T0);
    assert_false(r.spam_history);
    policy_reply_clear(&r);
    expect(f, seen, T0 + S, P_OK, "");
    r = ask(f, CONNECT("192.0.2.30"), T0 + 2 * S);
    assert_true(r.spam_history);
    policy_reply_clear(&r);
    r = ask(f, CONNECT("192.0.2.30"), T0 + S + 30 * 86400 * S);
    assert_true(r.spam_history);
    policy_reply_clear(&r);
    r = ask(f, CONNECT("192.0.2.30"), T0 + 2 * S + 30 * 86400 * S);
    assert_false(r.spam_history);
    policy_reply_clear(&r);
    /* with intrusion prevention off, CONNECT still answers the history */
    f->ps.intrusion = false;
    expect(f, seen, T0 + 40 * 86400 * S, P_OK, "");
    r = ask(f, CONNECT("192.0.2.30"), T0 + 40 * 86400 * S + S);
    assert_true(r.spam_history);
    policy_reply_clear(&r);
}

static void test_ipv6_and_bad_keys(void **state)
{
    fixture *f = *state;
    q block = {.kind = CORREIO__POLICY_KIND__POLICY_BLOCK, .key = "2001:db8:1:2::/64"};

    expect(f, block, T0, P_OK, "MANUAL");
    /* an address in the /64, typed in full, is the same key */
    expect(f, CONNECT("2001:db8:1:2::5"), T0 + S, P_BLOCKED, "MANUAL");
    expect(f, CONNECT("2001:db8:1:3::5"), T0 + S, P_OK, "");
    expect(f, CONNECT("not-an-ip"), T0, P_ERROR, "ERROR");
    expect(f, CONNECT("10.0.0.1/8"), T0, P_ERROR, "ERROR");
    expect(f, CONNECT(""), T0, P_ERROR, "ERROR");
    expect(f, EVENT("192.0.2.1", "NONSENSE"), T0, P_ERROR, "ERROR");
    expect(f, EVENT("192.0.2.1", "MANUAL"), T0, P_ERROR, "ERROR");
    expect(f, GREY(""), T0, P_ERROR, "ERROR");

    char longkey[600];
    memset(longkey, 'a', sizeof(longkey) - 1);
    longkey[sizeof(longkey) - 1] = 0;
    expect(f, GREY(longkey), T0, P_ERROR, "ERROR");
    q unknown = {.kind = (Correio__PolicyKind)77, .key = "x"};
    expect(f, unknown, T0, P_ERROR, "ERROR");
}

/* ------------------------------------------------------------ limits */

static void test_limits(void **state)
{
    fixture *f = *state;
    q check = {.kind = CORREIO__POLICY_KIND__POLICY_LIMIT_CHECK, .key = "user:al@example.test",
               .sender = "al@example.test", .limit = 2};
    q count = {.kind = CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT, .key = "user:al@example.test",
               .count = 1, .limit = 2};
    PolicyReply r;

    r = ask(f, check, T0);
    assert_int_equal(r.action, P_OK);
    assert_int_equal(r.count, 0);
    policy_reply_clear(&r);
    r = ask(f, count, T0 + S);
    assert_int_equal(r.action, P_OK);
    assert_int_equal(r.count, 1);
    policy_reply_clear(&r);
    expect(f, check, T0 + 2 * S, P_OK, "");
    r = ask(f, count, T0 + 3 * S);
    assert_int_equal(r.count, 2);
    policy_reply_clear(&r);
    r = ask(f, check, T0 + 4 * S);
    assert_int_equal(r.action, P_DEFER);
    assert_string_equal(r.reason, "LIMIT");
    assert_int_equal(r.count, 2);
    assert_string_equal(r.text, "450 4.7.1 <al@example.test>: Sender address rejected: "
                                "daily sending limit of 2 messages reached");
    policy_reply_clear(&r);
    /* a domain key without a sender names the domain */
    q dcheck = {.kind = CORREIO__POLICY_KIND__POLICY_LIMIT_CHECK, .key = "domain:example.test",
                .limit = 1};
    q dcount = {.kind = CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT, .key = "domain:example.test",
                .count = 3};
    expect(f, dcount, T0, P_OK, "");
    r = ask(f, dcheck, T0);
    assert_non_null(strstr(r.text, "<example.test>"));
    policy_reply_clear(&r);
    /* 24 h after the window's first message: a new window */
    expect(f, check, T0 + S + 86400 * S - 1, P_DEFER, "LIMIT");
    r = ask(f, check, T0 + S + 86400 * S);
    assert_int_equal(r.action, P_OK);
    assert_int_equal(r.count, 0);
    policy_reply_clear(&r);
    r = ask(f, count, T0 + S + 86400 * S);
    assert_int_equal(r.count, 1);
    policy_reply_clear(&r);
    /* no limit given: always P_OK */
    check.limit = 0;
    expect(f, check, T0 + S + 86400 * S, P_OK, "");
}

/* ------------------------------------------------------------ administration */

static PolicyEntry *find_entry(PolicyReply *r, const char *key)
{
    for (size_t i = 0; i < r->n_entries; i++)
        if (strcmp(r->entries[i]->key, key) == 0)
            return r->entries[i];
    return NULL;
}

static void test_admin(void **state)
{
    fixture *f = *state;
    q list = {.kind = CORREIO__POLICY_KIND__POLICY_LIST, .table = "greylist"};
    q del = {.kind = CORREIO__POLICY_KIND__POLICY_DELETE, .table = "greylist", .key = "a/b"};
    q pass = {.kind = CORREIO__POLICY_KIND__POLICY_PASS, .table = "greylist", .key = "c/d"};
    q block = {.kind = CORREIO__POLICY_KIND__POLICY_BLOCK, .table = "intrusion",
               .key = "192.0.2.50"};
    q unblock = {.kind = CORREIO__POLICY_KIND__POLICY_DELETE, .table = "intrusion",
                 .key = "192.0.2.50"};
    PolicyReply r;
    PolicyEntry *e;

    expect(f, GREY("a/b"), T0, P_DEFER, "GREYLIST_NEW");
    expect(f, pass, T0 + S, P_OK, "GREYLIST_PASSED");
    r = ask(f, list, T0 + 2 * S);
    assert_int_equal(r.action, P_OK);
    assert_int_equal(r.n_entries, 2);
    assert_non_null(e = find_entry(&r, "a/b"));
    assert_string_equal(e->state, "waiting");
    assert_int_equal(e->first, T0);
    assert_int_equal(e->until, T0 + 300 * S);
    assert_int_equal(e->count, 1);
    assert_string_equal(e->node, NODE);
    assert_non_null(e = find_entry(&r, "c/d"));
    assert_string_equal(e->state, "passed");
    policy_reply_clear(&r);
    /* a passed key is known at once */
    expect(f, GREY("c/d"), T0 + 3 * S, P_OK, "GREYLIST_KNOWN");

    expect(f, del, T0, P_OK, "");
    expect(f, del, T0, P_ERROR, "NOT_FOUND");
    r = ask(f, del, T0);
    assert_string_equal(r.text, "not found");
    policy_reply_clear(&r);
    expect(f, GREY("a/b"), T0 + 400 * S, P_DEFER, "GREYLIST_NEW");

    /* block by hand, list, unblock */
    r = ask(f, block, T0);
    assert_int_equal(r.action, P_OK);
    assert_int_equal(r.until, T0 + 240 * 60 * S);
    policy_reply_clear(&r);
    expect(f, CONNECT("192.0.2.50"), T0 + S, P_BLOCKED, "MANUAL");
    expect(f, EVENT("192.0.2.51", "UNKNOWN_RCPT"), T0, P_OK, "");
    list.table = "intrusion";
    r = ask(f, list, T0 + 2 * S);
    assert_int_equal(r.n_entries, 2);
    assert_non_null(e = find_entry(&r, "192.0.2.50"));
    assert_string_equal(e->state, "blocked");
    assert_string_equal(e->reason, "MANUAL");
    assert_int_equal(e->until, T0 + 240 * 60 * S);
    assert_non_null(e = find_entry(&r, "192.0.2.51"));
    assert_string_equal(e->state, "watching");
    assert_int_equal(e->count, 1);
    policy_reply_clear(&r);
    expect(f, unblock, T0 + 3 * S, P_OK, "");
    expect(f, CONNECT("192.0.2.50"), T0 + 4 * S, P_OK, "");
    expect(f, unblock, T0 + 5 * S, P_OK, "");      /* the connection is counted */
    q nothing = unblock;
    nothing.key = "192.0.2.99";
    expect(f, nothing, T0, P_ERROR, "NOT_FOUND");

    /* limits table */
    q count = {.kind = CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT, .key = "user:u@x.test",
               .count = 2};
    expect(f, count, T0, P_OK, "");
    list.table = "limits";
    r = ask(f, list, T0 + S);
    assert_int_equal(r.n_entries, 1);
    assert_string_equal(r.entries[0]->key, "user:u@x.test");
    assert_string_equal(r.entries[0]->state, "counting");
    assert_int_equal(r.entries[0]->count, 2);
    policy_reply_clear(&r);

    /* bad tables */
    list.table = "nonsense";
    expect(f, list, T0, P_ERROR, "ERROR");
    pass.table = "intrusion";
    expect(f, pass, T0, P_ERROR, "ERROR");
    block.table = "greylist";
    expect(f, block, T0, P_ERROR, "ERROR");
}

/* ------------------------------------------------------------ sweep, restart */

static size_t count_entries(fixture *f, const char *table, int64_t now)
{
    q list = {.kind = CORREIO__POLICY_KIND__POLICY_LIST, .table = table};
    PolicyReply r = ask(f, list, now);
    size_t n = r.n_entries;

    policy_reply_clear(&r);
    return n;
}

/* ------------------------------------------------------------ auto-whitelist */

#define NOTE(u_, a_)  ((q){.kind = CORREIO__POLICY_KIND__POLICY_AWL_NOTE, .key = (u_), \
                           .recipient = (a_)})
#define CHECK(u_, s_) ((q){.kind = CORREIO__POLICY_KIND__POLICY_AWL_CHECK, .key = (u_), \
                           .sender = (s_)})
#define ALICE         "awl:alice@example.org"

static void test_awl_note_check(void **state)
{
    fixture *f = *state;
    char longaddr[300];
    PolicyReply r;

    expect(f, CHECK(ALICE, "bob@remote.example"), T0, P_DEFER, "");
    expect(f, NOTE("awl:Alice@Example.ORG", "Bob@Remote.Example"), T0, P_OK, "AWL_NEW");
    /* compared in lower case, exact address */
    r = ask(f, CHECK(ALICE, "bob@remote.example"), T0 + S);
    assert_int_equal(r.action, P_OK);
    assert_string_equal(r.reason, "AUTO_WHITELIST");
    assert_int_equal(r.until, T0 + 180 * 86400 * S);
    assert_int_equal(r.count, 1);
    policy_reply_clear(&r);
    expect(f, CHECK("awl:ALICE@example.org", "BOB@remote.EXAMPLE"), T0, P_OK, "AUTO_WHITELIST");
    expect(f, CHECK(ALICE, "bob@remote.example.net"), T0, P_DEFER, "");
    expect(f, CHECK(ALICE, "bob@remote.exampl"), T0, P_DEFER, "");
    expect(f, CHECK(ALICE, "ob@remote.example"), T0, P_DEFER, "");
    expect(f, CHECK(ALICE, "carol@remote.example"), T0, P_DEFER, "");
    /* another user has not written to bob */
    expect(f, CHECK("awl:carol@example.org", "bob@remote.example"), T0, P_DEFER, "");
    /* the null sender is never on it */
    expect(f, CHECK(ALICE, ""), T0, P_DEFER, "NULL_SENDER");
    /* writing again refreshes */
    expect(f, NOTE(ALICE, "bob@remote.example"), T0 + 2 * S, P_OK, "AWL_REFRESHED");
    r = ask(f, CHECK(ALICE, "bob@remote.example"), T0 + 3 * S);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.until, T0 + 2 * S + 180 * 86400 * S);
    policy_reply_clear(&r);
    /* writing to oneself whitelists nothing: spam forges the user as sender */
    expect(f, NOTE(ALICE, "ALICE@example.org"), T0, P_OK, "SELF");
    expect(f, CHECK(ALICE, "alice@example.org"), T0, P_DEFER, "");

    /* bad requests: a clear error, nothing stored */
    expect(f, NOTE("alice@example.org", "bob@remote.example"), T0, P_ERROR, "ERROR");
    expect(f, NOTE("awl:", "bob@remote.example"), T0, P_ERROR, "ERROR");
    expect(f, NOTE("awl:a b@example.org", "bob@remote.example"), T0, P_ERROR, "ERROR");
    expect(f, NOTE(ALICE, ""), T0, P_ERROR, "ERROR");
    expect(f, NOTE(ALICE, "bob @remote.example"), T0, P_ERROR, "ERROR");
    expect(f, NOTE(ALICE, "bob\r\n@remote.example"), T0, P_ERROR, "ERROR");
    memset(longaddr, 'x', sizeof(longaddr) - 1);
    longaddr[sizeof(longaddr) - 1] = 0;
    memcpy(longaddr + 250, "@x.example", 10);
    expect(f, NOTE(ALICE, longaddr), T0, P_ERROR, "ERROR");
    expect(f, CHECK(ALICE, longaddr), T0, P_ERROR, "ERROR");
    longaddr[254] = 0;                                  /* 254 bytes: kept */
    expect(f, NOTE(ALICE, longaddr), T0, P_OK, "AWL_NEW");
    expect(f, CHECK(ALICE, longaddr), T0, P_OK, "AUTO_WHITELIST");
    expect(f, CHECK("awl:bob@remote.example", "alice@example.org"), T0, P_DEFER, "");
    /* UTF-8 addresses (SMTPUTF8) are kept as they are */
    expect(f, NOTE(ALICE, "j\xc3\xb6rg@b\xc3\xbc" "cher.example"), T0, P_OK, "AWL_NEW");
    expect(f, CHECK(ALICE, "j\xc3\xb6rg@b\xc3\xbc" "cher.example"), T0, P_OK, "AUTO_WHITELIST");
}

static void test_awl_expiry(void **state)
{
    fixture *f = *state;
    int64_t life = 180 * 86400 * S;
    q list = {.kind = CORREIO__POLICY_KIND__POLICY_LIST, .table = "awl"};
    PolicyReply r;

    expect(f, NOTE(ALICE, "bob@remote.example"), T0, P_OK, "AWL_NEW");
    expect(f, NOTE(ALICE, "dave@remote.example"), T0, P_OK, "AWL_NEW");
    expect(f, CHECK(ALICE, "bob@remote.example"), T0 + life, P_OK, "AUTO_WHITELIST");
    expect(f, CHECK(ALICE, "bob@remote.example"), T0 + life + 1, P_DEFER, "");
    /* dave is written to again on day 100: alive 180 days from then */
    expect(f, NOTE(ALICE, "dave@remote.example"), T0 + 100 * 86400 * S, P_OK, "AWL_REFRESHED");
    expect(f, CHECK(ALICE, "dave@remote.example"), T0 + life + 1, P_OK, "AUTO_WHITELIST");
    expect(f, CHECK(ALICE, "dave@remote.example"), T0 + 100 * 86400 * S + life + 1, P_DEFER,
           "");
    /* listed as expired until the sweep takes it */
    r = ask(f, list, T0 + life + 1);
    assert_int_equal(r.n_entries, 2);
    assert_non_null(find_entry(&r, "alice@example.org bob@remote.example"));
    assert_string_equal(find_entry(&r, "alice@example.org bob@remote.example")->state,
                        "expired");
    assert_string_equal(find_entry(&r, "alice@example.org dave@remote.example")->state,
                        "whitelisted");
    policy_reply_clear(&r);
    /* the sweep: bob (expired) goes, dave and alice's header stay */
    assert_int_equal(policy_state_sweep(f->s, &f->ps, T0 + life + 1, 1000), 1);
    assert_int_equal(count_entries(f, "awl", T0 + life + 1), 1);
    /* an expired address written to again is new */
    expect(f, NOTE(ALICE, "bob@remote.example"), T0 + life + 2, P_OK, "AWL_NEW");
    r = ask(f, CHECK(ALICE, "bob@remote.example"), T0 + life + 3);
    assert_int_equal(r.action, P_OK);
    assert_int_equal(r.count, 1);
    policy_reply_clear(&r);
    /* much later everything goes, the user's header too */
    assert_int_equal(policy_state_sweep(f->s, &f->ps, T0 + 3 * life, 1000), 3);
    assert_int_equal(count_entries(f, "awl", T0 + 3 * life), 0);
    assert_int_equal(policy_state_sweep(f->s, &f->ps, T0 + 3 * life, 1000), 0);
    /* and a new note starts afresh */
    expect(f, NOTE(ALICE, "bob@remote.example"), T0 + 3 * life, P_OK, "AWL_NEW");
    expect(f, CHECK(ALICE, "bob@remote.example"), T0 + 3 * life, P_OK, "AUTO_WHITELIST");
}

/* count_user - how many addresses LIST shows for the user (key prefix). */
static size_t count_user(fixture *f, const char *user, int64_t now)
{
    char prefix[300];
    q list = {.kind = CORREIO__POLICY_KIND__POLICY_LIST, .table = "awl", .key = prefix};
    PolicyReply r;
    size_t n;

    snprintf(prefix, sizeof(prefix), "%s ", user);
    r = ask(f, list, now);
    n = r.n_entries;
    policy_reply_clear(&r);
    return n;
}

static void test_awl_bound(void **state)
{
    fixture *f = *state;
    char addr[64];

    /* a small bound: the addresses written to longest ago go */
    f->ps.awl_max = 32;
    expect(f, NOTE("awl:carol@example.org", "x@remote.example"), T0, P_OK, "AWL_NEW");
    for (int i = 0; i < 40; i++) {
        snprintf(addr, sizeof(addr), "a%02d@remote.example", i);
        expect(f, NOTE(ALICE, addr), T0 + (i + 1) * S, P_OK, "AWL_NEW");
        assert_true(count_user(f, "alice@example.org", T0 + (i + 1) * S) <= 32);
    }
    /* the 33rd address made it prune down to 30 (15/16 of 32), and so
     * did the 36th and the 39th: the 31 newest are left */
    assert_int_equal(count_user(f, "alice@example.org", T0 + 41 * S), 31);
    expect(f, CHECK(ALICE, "a00@remote.example"), T0 + 41 * S, P_DEFER, "");
    expect(f, CHECK(ALICE, "a08@remote.example"), T0 + 41 * S, P_DEFER, "");
    expect(f, CHECK(ALICE, "a09@remote.example"), T0 + 41 * S, P_OK, "AUTO_WHITELIST");
    expect(f, CHECK(ALICE, "a39@remote.example"), T0 + 41 * S, P_OK, "AUTO_WHITELIST");
    /* a refreshed old address is young again and stays */
    expect(f, NOTE(ALICE, "a09@remote.example"), T0 + 42 * S, P_OK, "AWL_REFRESHED");
    for (int i = 40; i < 43; i++) {
        snprintf(addr, sizeof(addr), "a%02d@remote.example", i);
        expect(f, NOTE(ALICE, addr), T0 + (i + 3) * S, P_OK, "AWL_NEW");
    }
    assert_int_equal(count_user(f, "alice@example.org", T0 + 50 * S), 31);
    expect(f, CHECK(ALICE, "a09@remote.example"), T0 + 50 * S, P_OK, "AUTO_WHITELIST");
    expect(f, CHECK(ALICE, "a10@remote.example"), T0 + 50 * S, P_DEFER, "");
    expect(f, CHECK(ALICE, "a12@remote.example"), T0 + 50 * S, P_DEFER, "");
    expect(f, CHECK(ALICE, "a13@remote.example"), T0 + 50 * S, P_OK, "AUTO_WHITELIST");
    /* other users are untouched */
    assert_int_equal(count_user(f, "carol@example.org", T0 + 50 * S), 1);

    /* the real bound, all in one batch at one time (every address as
     * old as the others): never more than AWL_PER_USER_MAX, the last
     * one noted always kept */
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    PolicyReply reply = CORREIO__POLICY_REPLY__INIT;

    f->ps.awl_max = AWL_PER_USER_MAX;
    req.version = WIRE_VERSION;
    req.kind = CORREIO__POLICY_KIND__POLICY_AWL_NOTE;
    req.key = "awl:dave@example.org";
    req.recipient = addr;
    assert_int_equal(policy_state_begin(f->s), 0);
    for (int i = 0; i <= AWL_PER_USER_MAX; i++) {
        snprintf(addr, sizeof(addr), "r%05d@remote.example", i);
        policy_state_apply(f->s, &f->ps, &req, T0, NODE, &reply);
        assert_int_equal(reply.action, P_OK);
        policy_reply_clear(&reply);
    }
    assert_int_equal(policy_state_commit(f->s), 0);
    assert_int_equal(count_user(f, "dave@example.org", T0),
                     AWL_PER_USER_MAX - AWL_PER_USER_MAX / 16);
    snprintf(addr, sizeof(addr), "r%05d@remote.example", AWL_PER_USER_MAX);
    expect(f, CHECK("awl:dave@example.org", addr), T0, P_OK, "AUTO_WHITELIST");
}

static void test_awl_admin(void **state)
{
    fixture *f = *state;
    q list = {.kind = CORREIO__POLICY_KIND__POLICY_LIST, .table = "awl",
              .key = "alice@example.org "};
    q del = {.kind = CORREIO__POLICY_KIND__POLICY_DELETE, .table = "awl",
             .key = "alice@example.org bob@remote.example"};
    q del_header = {.kind = CORREIO__POLICY_KIND__POLICY_DELETE, .table = "awl",
                    .key = "alice@example.org"};
    PolicyReply r;
    PolicyEntry *e;

    expect(f, NOTE(ALICE, "bob@remote.example"), T0, P_OK, "AWL_NEW");
    expect(f, NOTE(ALICE, "bob@remote.example"), T0 + 5 * S, P_OK, "AWL_REFRESHED");
    expect(f, NOTE(ALICE, "dave@remote.example"), T0, P_OK, "AWL_NEW");
    expect(f, NOTE("awl:alice@example.org.uk", "eve@remote.example"), T0, P_OK, "AWL_NEW");
    /* one user's: the prefix "USER " leaves out alice@example.org.uk */
    r = ask(f, list, T0 + 6 * S);
    assert_int_equal(r.action, P_OK);
    assert_int_equal(r.n_entries, 2);
    assert_non_null(e = find_entry(&r, "alice@example.org bob@remote.example"));
    assert_string_equal(e->state, "whitelisted");
    assert_int_equal(e->first, T0);
    assert_int_equal(e->last, T0 + 5 * S);
    assert_int_equal(e->until, T0 + 5 * S + 180 * 86400 * S);
    assert_int_equal(e->count, 2);
    assert_string_equal(e->node, NODE);
    policy_reply_clear(&r);
    /* every user's; the users' own records are never listed */
    assert_int_equal(count_entries(f, "awl", T0), 3);

    expect(f, del, T0, P_OK, "");
    expect(f, CHECK(ALICE, "bob@remote.example"), T0, P_DEFER, "");
    expect(f, CHECK(ALICE, "dave@remote.example"), T0, P_OK, "AUTO_WHITELIST");
    expect(f, del, T0, P_ERROR, "NOT_FOUND");
    expect(f, del_header, T0, P_ERROR, "ERROR");
    expect(f, NOTE(ALICE, "bob@remote.example"), T0, P_OK, "AWL_NEW");
}

static void test_sweep(void **state)
{
    fixture *f = *state;
    q count = {.kind = CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT, .key = "user:u@x.test",
               .count = 1};
    q seen = {.kind = CORREIO__POLICY_KIND__POLICY_SPAM_SEEN, .key = "192.0.2.62"};
    int64_t later = T0 + 3 * 86400 * S;

    expect(f, GREY("dead/waiting"), T0, P_DEFER, "GREYLIST_NEW");      /* retry window over */
    expect(f, GREY("live/waiting"), later - S, P_DEFER, "GREYLIST_NEW");
    expect(f, GREY("live/passed"), T0, P_DEFER, "GREYLIST_NEW");
    expect(f, GREY("live/passed"), T0 + 400 * S, P_OK, "GREYLIST_PASSED");
    expect(f, EVENT("192.0.2.60", "UNKNOWN_RCPT"), T0, P_OK, "");      /* window over */
    expect(f, EVENT("192.0.2.61", "SPAMTRAP"), later - S, P_BLOCKED, "SPAMTRAP");
    expect(f, seen, T0, P_OK, "");                                      /* history kept */
    expect(f, count, T0, P_OK, "");                                     /* day over */

    assert_int_equal(policy_state_sweep(f->s, &f->ps, later, 1000), 3);
    assert_int_equal(count_entries(f, "greylist", later), 2);
    assert_int_equal(count_entries(f, "intrusion", later), 2);
    assert_int_equal(count_entries(f, "limits", later), 0);
    assert_int_equal(policy_state_sweep(f->s, &f->ps, later, 1000), 0);

    /* at most max per call; the next calls go on */
    for (int i = 0; i < 50; i++) {
        char k[32];

        snprintf(k, sizeof(k), "old/%02d", i);
        expect(f, GREY(k), T0, P_DEFER, "GREYLIST_NEW");
    }
    unsigned total = 0, got;

    for (int calls = 0; total < 50; calls++) {
        got = policy_state_sweep(f->s, &f->ps, later, 7);
        assert_true(got <= 7);
        total += got;
        if (calls > 100)
            fail_msg("the sweep does not finish");
    }
    assert_int_equal(policy_state_sweep(f->s, &f->ps, later, 7), 0);
    assert_int_equal(total, 50);
    assert_int_equal(count_entries(f, "greylist", later), 2);
}

static void test_restart_keeps_state(void **state)
{
    fixture *f = *state;
    char *err = NULL;
    q count = {.kind = CORREIO__POLICY_KIND__POLICY_LIMIT_COUNT, .key = "user:u@x.test",
               .count = 5};

    expect(f, GREY("p/q"), T0, P_DEFER, "GREYLIST_NEW");
    expect(f, EVENT("192.0.2.70", "RELAY"), T0, P_BLOCKED, "RELAY");
    expect(f, count, T0, P_OK, "");
    policy_state_close(&f->s);
    assert_null(f->s);

    f->s = policy_state_open(f->dir, TEST_MAP, &err);
    assert_non_null(f->s);
    expect(f, GREY("p/q"), T0 + 301 * S, P_OK, "GREYLIST_PASSED");
    expect(f, CONNECT("192.0.2.70"), T0 + S, P_BLOCKED, "RELAY");
    PolicyReply r = ask(f, count, T0 + S);
    assert_int_equal(r.count, 10);
    policy_reply_clear(&r);
}

/* A batch that overflows the map fails as a whole; the next one works. */
static void test_map_full(void **state)
{
    fixture *f = *state;
    char *err = NULL, *dir = xasprintf("%s-small", f->dir);
    policy_state_t *s = policy_state_open(dir, 256 * 1024, &err);
    PolicyRequest req = CORREIO__POLICY_REQUEST__INIT;
    PolicyReply reply = CORREIO__POLICY_REPLY__INIT;
    char key[400];
    bool errors = false;

    assert_non_null(s);
    req.version = WIRE_VERSION;
    req.kind = CORREIO__POLICY_KIND__POLICY_GREYLIST;
    req.key = key;
    assert_int_equal(policy_state_begin(s), 0);
    for (int i = 0; i < 2000; i++) {
        memset(key, 'k', sizeof(key) - 1);
        snprintf(key, sizeof(key), "%05d", i);
        key[5] = 'k';
        key[sizeof(key) - 1] = 0;
        policy_state_apply(s, &f->ps, &req, T0, NODE, &reply);
        errors |= reply.action == P_ERROR;
        policy_reply_clear(&reply);
    }
    assert_true(errors);
    assert_int_not_equal(policy_state_commit(s), 0);

    req.key = "small/one";
    assert_int_equal(policy_state_begin(s), 0);
    policy_state_apply(s, &f->ps, &req, T0, NODE, &reply);
    assert_int_equal(reply.action, P_DEFER);
    policy_reply_clear(&reply);
    assert_int_equal(policy_state_commit(s), 0);
    policy_state_close(&s);

    xfree(&dir);
}

static void test_open_failure(void **state)
{
    (void)state;
    char *err = NULL;

    assert_null(policy_state_open("/proc/no/such/dir", TEST_MAP, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "/proc/no/such/dir"));
    xfree(&err);
}

static void test_clock(void **state)
{
    (void)state;
    char path[] = "/tmp/policy_clock.XXXXXX";
    int fd = mkstemp(path);
    int64_t real, moved;

    assert_true(fd >= 0);
    assert_int_equal(write(fd, "400\n", 4), 4);
    close(fd);
    unsetenv("CORREIO_TEST_CLOCK");
    real = policy_clock_now();
    setenv("CORREIO_TEST_CLOCK", path, 1);
    moved = policy_clock_now();
    assert_true(moved - real >= 400 * S && moved - real < 410 * S);
    /* rewritten with a value of the same length: read again */
    fd = open(path, O_WRONLY | O_TRUNC);
    assert_int_equal(write(fd, "800\n", 4), 4);
    close(fd);
    moved = policy_clock_now();
    assert_true(moved - real >= 800 * S && moved - real < 810 * S);
    unlink(path);
    moved = policy_clock_now();                 /* no file: the real time */
    assert_true(moved - real < 10 * S);
    unsetenv("CORREIO_TEST_CLOCK");
}

static void test_settings_read(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/policy_settings.XXXXXX";
    char *err = NULL, *path;
    config_t *cfg;
    policy_settings ps, want;
    FILE *fp;

    assert_non_null(mkdtemp(tmpl));
    path = xasprintf("%s/correio.conf", tmpl);
    assert_non_null(fp = fopen(path, "w"));
    fprintf(fp, "intrusion_prevention = yes\nintrusion_rset_limit = 0\ngreylist_delay = 10s\n");
    fclose(fp);
    cfg = config_load(tmpl, &err);
    assert_non_null(cfg);
    policy_settings_read(&ps, cfg);
    defaults(&want);
    want.greylist_delay = 10 * S;
    want.rset_limit = 0;
    assert_memory_equal(&ps, &want, sizeof(ps));
    config_free(&cfg);
    unlink(path);
    rmdir(tmpl);
    xfree(&path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_greylist_states, setup, teardown),
        cmocka_unit_test_setup_teardown(test_greylist_retry_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intrusion_rules, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intrusion_rules_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_intrusion_window, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_rate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spamtrap_block_time, setup, teardown),
        cmocka_unit_test_setup_teardown(test_spam_history, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_and_bad_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awl_note_check, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awl_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awl_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_awl_admin, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full, setup, teardown),
        cmocka_unit_test(test_open_failure),
        cmocka_unit_test(test_clock),
        cmocka_unit_test(test_settings_read),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
