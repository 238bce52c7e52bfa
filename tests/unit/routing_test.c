/* routing_test.c - the router's per-recipient decision: the safety check,
 * transport_maps and its lookup order, mydestination with each
 * local_transport, backup_domains, relayhost, the domain's MX, the spam
 * folder and the other spam actions, and every local part that must
 * never become a path. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../router/routing.h"
#include "map.h"
#include "xalloc.h"

#define MAILDIR CORREIO__ROUTE_KIND__ROUTE_MAILDIR
#define RELAY   CORREIO__ROUTE_KIND__ROUTE_RELAY
#define ERROR   CORREIO__ROUTE_KIND__ROUTE_ERROR
#define LMTP    CORREIO__ROUTE_KIND__ROUTE_LMTP
#define DISCARD CORREIO__ROUTE_KIND__ROUTE_DISCARD

static char dir[] = "/tmp/routing_test.XXXXXX";

static void write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    xfree(&path);
}

/* build_map - write name as a text table and compile it (hash:). */
static void build_map(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name), *err = NULL;
    write_file(name, text);
    if (map_build(path, &err) < 0)
        fail_msg("map_build %s: %s", name, err);
    xfree(&path);
}

/* load - correio.conf from the common lines plus extra. */
static config_t *load(const char *extra)
{
    char *text = xasprintf("myhostname = mx.example.test\n"
                           "mydestination = example.test, localhost, mx.example.test\n"
                           "users_file = users\n%s", extra);
    char *err = NULL;
    write_file("correio.conf", text);
    xfree(&text);
    config_t *cfg = config_load(dir, &err);
    if (!cfg)
        fail_msg("config: %s", err);
    return cfg;
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    write_file("users", "demo@example.test:{PLAIN}x\nKnown@Backup.test:{PLAIN}x\n");
    build_map("transport",
              "special@example.test   smtp:[10.0.0.1]:2525\n"
              "moved@other.test       error:5.1.6 user has moved\n"
              "other.test             smtp:\n"
              "sub.test               discard:gone\n"
              ".sub.test              relay:[sub-relay.test]\n"
              "lmtp.test              lmtp:unix:/run/dovecot/lmtp\n"
              "localish.test          local\n"
              "# the full address beats the domain in any table order\n"
              "order.test             error:5.0.0 domain won\n"
              "broken.test            frobnicate:x\n");
    build_map("transport2",
              "who@order.test         smtp:[address.won]\n"
              "example.test           error:5.0.0 second table\n");
    build_map("wild", "*  smtp:[smarthost.test]:25\nexample.test local\n");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char *cmd = xasprintf("rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    xfree(&cmd);
    return 0;
}

typedef struct route_case {
    const char        *address;
    bool               spam;
    Correio__RouteKind route;
    const char        *nexthop;   /* NULL: not checked */
    const char        *mailbox;
    const char        *folder;
    const char        *text;      /* status_text */
    routing_rule       rule;
} route_case;

static void check_cases(const char *conf, const route_case *cases, size_t n)
{
    config_t *cfg = load(conf);
    char *err = NULL;
    routing_t *r = routing_open(cfg, &err);
    if (!r)
        fail_msg("routing_open: %s", err);
    for (size_t i = 0; i < n; i++) {
        const route_case *c = &cases[i];
        routing_decision d;
        if (routing_decide(r, cfg, c->address, c->spam, &d) != 0)
            fail_msg("%s: not routed", c->address);
        if (d.route != c->route || (c->nexthop && strcmp(d.nexthop, c->nexthop))
            || strcmp(d.mailbox, c->mailbox) || strcmp(d.folder, c->folder)
            || strcmp(d.status_text, c->text) || d.rule != c->rule)
            fail_msg("%s: got route=%d nexthop=%s mailbox=%s folder=%s text=%s rule=%d",
                     c->address, d.route, d.nexthop, d.mailbox, d.folder, d.status_text,
                     d.rule);
        if (d.route == MAILDIR) {
            const char *slash = strchr(d.mailbox, '/');
            assert_non_null(slash);
            assert_null(strchr(slash + 1, '/'));
            assert_true(slash[1] != '.' && slash[1] != '\0');
        }
        routing_decision_free(&d);
    }
    routing_close(&r);
    assert_null(r);
    config_free(&cfg);
}

#define U ROUTING_UNSAFE_TEXT
#define BY_SAFE ROUTING_BY_SAFETY
#define BY_MAPS ROUTING_BY_TRANSPORT_MAPS
#define BY_DEST ROUTING_BY_MYDESTINATION
#define BY_BACKUP ROUTING_BY_BACKUP_DOMAINS
#define BY_RELAYHOST ROUTING_BY_RELAYHOST
#define BY_DOMAIN ROUTING_BY_DOMAIN
#define BY_VIRTUAL ROUTING_BY_VIRTUAL_MAILBOX_DOMAINS

/* No tables, no relayhost: today's behaviour. */
static const route_case plain_cases[] = {
    {"demo@example.test", false, MAILDIR, "demo@example.test", "example.test/demo", "", "", BY_DEST},
    {"Demo@EXAMPLE.Test", false, MAILDIR, "Demo@EXAMPLE.Test", "example.test/demo", "", "", BY_DEST},
    {"first.last+tag@example.test", false, MAILDIR, NULL, "example.test/first.last+tag", "", "", BY_DEST},
    {"postmaster", false, MAILDIR, NULL, "mx.example.test/postmaster", "", "", BY_DEST},
    {"\"John\"@example.test", false, MAILDIR, NULL, "example.test/john", "", "", BY_DEST},
    {"\"a\\b\"@example.test", false, MAILDIR, NULL, "example.test/ab", "", "", BY_DEST},
    {"demo@example.test", true, MAILDIR, NULL, "example.test/demo", "Junk", "", BY_DEST},
    {"user@other.test", false, RELAY, "other.test", "", "", "", BY_DOMAIN},
    {"user@Other.TEST", false, RELAY, "other.test", "", "", "", BY_DOMAIN},
    {"user@sub.example.test", true, RELAY, "sub.example.test", "", "", "", BY_DOMAIN},
    /* nothing below may become a directory */
    {"\"a/b\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"../x\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"..\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\".\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {".hidden@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"john doe\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"a\\/b\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"tab\there\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"caf\xc3\xa9\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"a@b\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"unterminated@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"\"x\\\"@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
    {"a\\b@example.test", false, ERROR, NULL, "", "", U, BY_SAFE},
};

static void test_routing_plain(void **state)
{
    (void)state;
    check_cases("", plain_cases, sizeof plain_cases / sizeof plain_cases[0]);
}

/* transport_maps first, then mydestination, backup_domains, relayhost. */
static const route_case table_cases[] = {
    /* the full address beats everything, also for a local domain */
    {"special@example.test", false, RELAY, "[10.0.0.1]:2525", "", "", "", BY_MAPS},
    {"Special@Example.TEST", true, RELAY, "[10.0.0.1]:2525", "", "", "", BY_MAPS},
    /* the address beats the domain ("other.test smtp:") */
    {"moved@other.test", false, ERROR, "moved@other.test", "", "",
     "5.1.6 user has moved", BY_MAPS},
    /* "smtp:" with no next hop: the recipient's domain */
    {"anyone@other.test", false, RELAY, "other.test", "", "", "", BY_MAPS},
    /* exact domain vs. ".parent" */
    {"x@sub.test", false, DISCARD, "x@sub.test", "", "", "gone", BY_MAPS},
    {"x@a.sub.test", false, RELAY, "[sub-relay.test]", "", "", "", BY_MAPS},
    {"x@b.a.sub.test", false, RELAY, "[sub-relay.test]", "", "", "", BY_MAPS},
    {"x@notsub.test", false, RELAY, "[relay.example]:587", "", "", "", BY_RELAYHOST},
    {"x@lmtp.test", false, LMTP, "unix:/run/dovecot/lmtp", "lmtp.test/x", "", "", BY_MAPS},
    {"x@localish.test", true, MAILDIR, "x@localish.test", "localish.test/x", "Spam", "", BY_MAPS},
    {"\"a/b\"@localish.test", false, ERROR, NULL, "", "", U, BY_MAPS},
    /* key order over table order: the address in the second table beats
     * the domain in the first */
    {"who@order.test", false, RELAY, "[address.won]", "", "", "", BY_MAPS},
    {"other@order.test", false, ERROR, NULL, "", "", "5.0.0 domain won", BY_MAPS},
    /* a local domain's domain key in a table decides too */
    {"demo@example.test", false, ERROR, NULL, "", "", "5.0.0 second table", BY_MAPS},
    {"demo@localhost", true, LMTP, "[127.0.0.1]:24", "localhost/demo", "", "", BY_DEST},
    /* backup MX: a local account is delivered here, the rest goes on */
    {"known@backup.test", false, LMTP, "[127.0.0.1]:24", "backup.test/known", "", "", BY_BACKUP},
    {"stranger@backup.test", false, RELAY, "backup.test", "", "", "", BY_BACKUP},
    {"stranger@mail.backup.test", false, RELAY, "mail.backup.test", "", "", "", BY_BACKUP},
    {"x@unrelated.test", false, RELAY, "[relay.example]:587", "", "", "", BY_RELAYHOST},
};

static void test_routing_tables(void **state)
{
    (void)state;
    check_cases("transport_maps = hash:transport, hash:transport2\n"
                "backup_domains = backup.test\n"
                "local_transport = lmtp:[127.0.0.1]:24\n"
                "spam_folder = Spam\n"
                "relayhost = user:secret@[relay.example]:587\n",
                table_cases, sizeof table_cases / sizeof table_cases[0]);
}

/* "*" is the last key tried; maildir local_transport for a backup domain */
static const route_case wild_cases[] = {
    {"demo@example.test", true, MAILDIR, NULL, "example.test/demo", "Junk", "", BY_MAPS},
    {"x@anywhere.test", false, RELAY, "[smarthost.test]:25", "", "", "", BY_MAPS},
    {"postmaster", false, RELAY, "[smarthost.test]:25", "", "", "", BY_MAPS},
};

static const route_case backup_cases[] = {
    {"known@backup.test", true, MAILDIR, "known@backup.test", "backup.test/known", "Junk", "",
     BY_BACKUP},
    {"Known@BACKUP.test", false, MAILDIR, NULL, "backup.test/known", "", "", BY_BACKUP},
    {"nobody@backup.test", false, RELAY, "backup.test", "", "", "", BY_BACKUP},
    {"x@elsewhere.test", false, RELAY, "relay.example", "", "", "", BY_RELAYHOST},
};

static void test_routing_wildcard_and_backup(void **state)
{
    (void)state;
    check_cases("transport_maps = hash:wild\n", wild_cases,
                sizeof wild_cases / sizeof wild_cases[0]);
    check_cases("backup_domains = .backup.test\nrelayhost = relay.example\n", backup_cases,
                sizeof backup_cases / sizeof backup_cases[0]);
}

/* A value that does not parse: the recipient waits, the envelope is not
 * passed on; a table that cannot be opened is an error at open. */
static void test_routing_bad_table(void **state)
{
    (void)state;
    config_t *cfg = load("transport_maps = hash:transport\n");
    char *err = NULL;
    routing_t *r = routing_open(cfg, &err);
    assert_non_null(r);
    routing_decision d;
    assert_int_equal(routing_decide(r, cfg, "x@broken.test", false, &d), -1);
    assert_null(d.nexthop);

    Recipient r1 = CORREIO__RECIPIENT__INIT, r2 = CORREIO__RECIPIENT__INIT;
    r1.address = "demo@example.test";
    r2.address = "x@broken.test";
    Recipient *rcpts[] = {&r1, &r2};
    Envelope env = CORREIO__ENVELOPE__INIT;
    env.queue_id = "0123456789ABCDEFG";
    env.rcpt = rcpts;
    env.n_rcpt = 2;
    size_t len = 0;
    assert_null(routing_route_envelope(r, &env, cfg, &len));
    routing_close(&r);
    config_free(&cfg);

    cfg = load("transport_maps = hash:missing\n");
    assert_null(routing_open(cfg, &err));
    assert_non_null(strstr(err, "transport_maps: "));
    assert_non_null(strstr(err, "missing"));
    xfree(&err);
    config_free(&cfg);
}

/* The envelope leaves with routes and the spam actions filled in (the
 * server defaults: folder at 5, Subject tagged). */
static void test_routing_envelope(void **state)
{
    (void)state;
    config_t *cfg = load("");
    char *err = NULL;
    routing_t *r = routing_open(cfg, &err);
    assert_non_null(r);
    Recipient r1 = CORREIO__RECIPIENT__INIT, r2 = CORREIO__RECIPIENT__INIT;
    r1.address = "demo@example.test";
    r2.address = "x@remote.test";
    Recipient *rcpts[] = {&r1, &r2};
    Verdict v = CORREIO__VERDICT__INIT;
    v.is_spam = true;
    v.score = 6;
    v.required = 5;
    v.act = true;
    Envelope env = CORREIO__ENVELOPE__INIT;
    env.version = WIRE_VERSION;
    env.queue_id = "0123456789ABCDEFG";
    env.rcpt = rcpts;
    env.n_rcpt = 2;
    env.verdict = &v;
    size_t len = 0;
    uint8_t *packed = routing_route_envelope(r, &env, cfg, &len);
    assert_non_null(packed);
    Envelope *back = wire_unpack_envelope(packed, len, "test");
    assert_non_null(back);
    assert_int_equal(back->rcpt[0]->route, MAILDIR);
    assert_string_equal(back->rcpt[0]->mailbox, "example.test/demo");
    assert_string_equal(back->rcpt[0]->folder, "Junk");
    assert_int_equal(back->rcpt[0]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER);
    assert_string_equal(back->rcpt[0]->subject_tag, "[SPAM] ");
    assert_int_equal(back->rcpt[1]->route, RELAY);
    assert_string_equal(back->rcpt[1]->nexthop, "remote.test");
    assert_string_equal(back->rcpt[1]->folder, "");
    /* no folder over SMTP: tagged only */
    assert_int_equal(back->rcpt[1]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_TAG);
    assert_string_equal(r1.folder, "");       /* the input is untouched */
    wire_free_envelope(&back);
    xfree(&packed);

    /* headers only (Verdict.act false: outbound "mark", a bypass): nothing */
    v.act = false;
    packed = routing_route_envelope(r, &env, cfg, &len);
    assert_non_null(packed);
    back = wire_unpack_envelope(packed, len, "test");
    assert_non_null(back);
    assert_string_equal(back->rcpt[0]->folder, "");
    assert_int_equal(back->rcpt[0]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_NONE);
    assert_string_equal(back->rcpt[0]->subject_tag, "");
    wire_free_envelope(&back);
    xfree(&packed);
    routing_close(&r);
    config_free(&cfg);
}

static const route_case virtual_cases[] = {
    {"demo@virt.test", false, MAILDIR, "demo@virt.test", "virt.test/demo", "", "", BY_VIRTUAL},
    {"demo+Lists@virt.test", false, MAILDIR, NULL, "virt.test/demo", "Lists", "", BY_VIRTUAL},
    {"demo+Lists@virt.test", true, MAILDIR, NULL, "virt.test/demo", "Junk", "", BY_VIRTUAL},
    {"demo+a.b@virt.test", false, MAILDIR, NULL, "virt.test/demo", "", "", BY_VIRTUAL},
    {"demo-x@virt.test", false, MAILDIR, NULL, "virt.test/demo", "x", "", BY_VIRTUAL},
    {"exact+tag@virt.test", false, MAILDIR, NULL, "virt.test/exact+tag", "", "", BY_VIRTUAL},
    {"nobody@virt.test", false, ERROR, NULL, "", "",
     "5.1.1 <nobody@virt.test>: Recipient address rejected: User unknown in virtual mailbox table",
     BY_VIRTUAL},
    {"nobody+demo@virt.test", false, ERROR, NULL, "", "",
     "5.1.1 <nobody+demo@virt.test>: Recipient address rejected: User unknown in virtual "
     "mailbox table", BY_VIRTUAL},
    {"anyone+Tag@example.test", false, MAILDIR, NULL, "example.test/anyone", "Tag", "", BY_DEST},
    {"+x@example.test", false, MAILDIR, NULL, "example.test/+x", "", "", BY_DEST},
    {"known+x@backup.test", false, MAILDIR, NULL, "backup.test/known", "x", "", BY_BACKUP},
    {"nobody+x@backup.test", false, RELAY, "backup.test", "", "", "", BY_BACKUP},
};

/* virtual_mailbox_domains and recipient_delimiter (with folders). */
static void test_routing_virtual_and_delimiter(void **state)
{
    (void)state;
    write_file("users", "demo@example.test:{PLAIN}x\nKnown@Backup.test:{PLAIN}x\n"
                        "demo@virt.test:{PLAIN}x\nexact+tag@virt.test:{PLAIN}x\n");
    check_cases("virtual_mailbox_domains = virt.test\nbackup_domains = backup.test\n"
                "recipient_delimiter = +-\nrecipient_delimiter_folder = yes\n",
                virtual_cases, sizeof virtual_cases / sizeof virtual_cases[0]);
    write_file("users", "demo@example.test:{PLAIN}x\nKnown@Backup.test:{PLAIN}x\n");
}

/* Aliases expand before routing: each address routed on its own, with
 * the notify and orcpt of the recipient and original = the address before
 * expansion; duplicates dropped; a loop fails that recipient only. */
static void test_routing_aliases(void **state)
{
    (void)state;
    build_map("virtual",
              "team@example.test    demo@example.test, x@remote.test\n"
              "list@example.test    demo@example.test, other@example.test\n"
              "a@loop.test          b@loop.test\n"
              "b@loop.test          a@loop.test\n");
    config_t *cfg = load("virtual_alias_maps = hash:virtual\n");
    char *err = NULL;
    routing_t *r = routing_open(cfg, &err);
    assert_non_null(r);
    Recipient r1 = CORREIO__RECIPIENT__INIT, r2 = CORREIO__RECIPIENT__INIT;
    Recipient r3 = CORREIO__RECIPIENT__INIT;
    r1.address = "team@example.test";
    r1.orcpt = "rfc822;team@example.test";
    r1.notify = 6;
    r2.address = "list@example.test";
    r3.address = "a@loop.test";
    Recipient *rcpts[] = {&r1, &r2, &r3};
    Envelope env = CORREIO__ENVELOPE__INIT;
    env.version = WIRE_VERSION;
    env.queue_id = "0123456789ABCDEFG";
    env.rcpt = rcpts;
    env.n_rcpt = 3;
    size_t len = 0;
    uint8_t *packed = routing_route_envelope(r, &env, cfg, &len);
    assert_non_null(packed);
    Envelope *back = wire_unpack_envelope(packed, len, "test");
    assert_non_null(back);
    assert_int_equal(back->n_rcpt, 4);
    assert_string_equal(back->rcpt[0]->address, "demo@example.test");
    assert_int_equal(back->rcpt[0]->route, MAILDIR);
    assert_string_equal(back->rcpt[0]->original, "team@example.test");
    assert_string_equal(back->rcpt[0]->orcpt, "rfc822;team@example.test");
    assert_int_equal(back->rcpt[0]->notify, 6);
    assert_string_equal(back->rcpt[1]->address, "x@remote.test");
    assert_int_equal(back->rcpt[1]->route, RELAY);
    assert_string_equal(back->rcpt[1]->original, "team@example.test");
    /* demo@ is on both lists: one copy */
    assert_string_equal(back->rcpt[2]->address, "other@example.test");
    assert_string_equal(back->rcpt[2]->original, "list@example.test");
    assert_string_equal(back->rcpt[2]->orcpt, "");
    assert_int_equal(back->rcpt[2]->notify, 0);
    assert_string_equal(back->rcpt[3]->address, "a@loop.test");
    assert_int_equal(back->rcpt[3]->route, ERROR);
    assert_string_equal(back->rcpt[3]->status_text,
                        "5.4.6 alias loop: a@loop.test -> b@loop.test -> a@loop.test");
    wire_free_envelope(&back);
    xfree(&packed);
    routing_close(&r);
    config_free(&cfg);

    /* a value without a domain is a table error: the envelope waits */
    build_map("virtual", "team@example.test    demo\n");
    cfg = load("virtual_alias_maps = hash:virtual\n");
    r = routing_open(cfg, &err);
    assert_non_null(r);
    env.n_rcpt = 1;
    assert_null(routing_route_envelope(r, &env, cfg, &len));
    routing_close(&r);
    config_free(&cfg);
}

/* A whitelist that knows one user, and counts the questions. */
static int wl_asked;
static bool wl_keep(void *ctx, const char *user, const char *sender)
{
    (void)ctx;
    wl_asked++;
    return strcmp(user, "keep@example.test") == 0 && strcmp(sender, "friend@x.test") == 0;
}

/* route_spam - route env and unpack the result. */
static Envelope *route_spam(routing_t *r, const Envelope *env, const config_t *cfg)
{
    size_t len = 0;
    uint8_t *packed = routing_route_envelope(r, env, cfg, &len);
    assert_non_null(packed);
    Envelope *back = wire_unpack_envelope(packed, len, "test");
    assert_non_null(back);
    xfree(&packed);
    return back;
}

/* Per-recipient thresholds from spam_action_maps: delete (with one
 * archive copy), quarantine (route kept), folder (tag only over LMTP),
 * and the auto-whitelist for local recipients of inbound mail. */
static void test_routing_spam_actions(void **state)
{
    (void)state;
    build_map("actions", "keep@example.test  delete=off quarantine=off\n"
                         "lmtp.test          delete=off quarantine=off\n"
                         "quar.test          delete=off\n");
    config_t *cfg = load("transport_maps = hash:transport\n"
                         "spam_action_maps = hash:actions\n"
                         "spam_quarantine_score = 10\n"
                         "spam_delete_score = 20\n"
                         "spam_archive_address = archive@example.test\n");
    char *err = NULL;
    routing_t *r = routing_open(cfg, &err);
    if (!r)
        fail_msg("routing_open: %s", err);
    Recipient r1 = CORREIO__RECIPIENT__INIT, r2 = CORREIO__RECIPIENT__INIT,
              r3 = CORREIO__RECIPIENT__INIT, r4 = CORREIO__RECIPIENT__INIT;
    r1.address = "demo@example.test";
    r2.address = "keep@example.test";
    r3.address = "x@lmtp.test";
    r4.address = "q@quar.test";
    r1.notify = r2.notify = r3.notify = r4.notify = CORREIO__NOTIFY__NOTIFY_FAILURE;
    Recipient *rcpts[] = {&r1, &r2, &r3, &r4};
    Verdict v = CORREIO__VERDICT__INIT;
    v.is_spam = true;
    v.score = 25;
    v.required = 5;
    v.act = true;
    v.reasons = "[Rules=25.00]";
    Envelope env = CORREIO__ENVELOPE__INIT;
    env.version = WIRE_VERSION;
    env.queue_id = "0123456789ABCDEFG";
    env.reverse_path = "friend@x.test";
    env.rcpt = rcpts;
    env.n_rcpt = 4;
    env.verdict = &v;

    Envelope *back = route_spam(r, &env, cfg);
    assert_int_equal(back->n_rcpt, 5);
    assert_int_equal(back->rcpt[0]->route, DISCARD);
    assert_int_equal(back->rcpt[0]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_DELETE);
    assert_string_equal(back->rcpt[0]->status_text, "spam score 25.00 >= delete score 20.00");
    assert_int_equal(back->rcpt[1]->route, MAILDIR);
    assert_string_equal(back->rcpt[1]->folder, "Junk");
    assert_int_equal(back->rcpt[1]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER);
    assert_string_equal(back->rcpt[1]->subject_tag, "[SPAM] ");
    assert_int_equal(back->rcpt[2]->route, LMTP);
    assert_int_equal(back->rcpt[2]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_TAG);
    assert_string_equal(back->rcpt[2]->folder, "");
    assert_int_equal(back->rcpt[3]->route, RELAY);
    assert_string_equal(back->rcpt[3]->nexthop, "quar.test");
    assert_int_equal(back->rcpt[3]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_QUARANTINE);
    assert_string_equal(back->rcpt[3]->subject_tag, "[SPAM] ");
    /* the archive copy: routed, no DSN, no spam action */
    assert_string_equal(back->rcpt[4]->address, "archive@example.test");
    assert_int_equal(back->rcpt[4]->route, MAILDIR);
    assert_string_equal(back->rcpt[4]->folder, "");
    assert_int_equal(back->rcpt[4]->notify, CORREIO__NOTIFY__NOTIFY_NEVER);
    assert_int_equal(back->rcpt[4]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_NONE);
    wire_free_envelope(&back);

    /* the auto-whitelist: asked for local recipients with an action */
    routing_set_whitelist(r, wl_keep, NULL);
    wl_asked = 0;
    back = route_spam(r, &env, cfg);
    assert_int_equal(wl_asked, 3);         /* demo, keep, x@lmtp; not the relay one */
    assert_int_equal(back->rcpt[1]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_NONE);
    assert_string_equal(back->rcpt[1]->folder, "");
    assert_string_equal(back->rcpt[1]->subject_tag, "");
    assert_int_equal(back->rcpt[0]->route, DISCARD);
    wire_free_envelope(&back);
    /* ... but never for outbound mail */
    v.outbound = true;
    wl_asked = 0;
    back = route_spam(r, &env, cfg);
    assert_int_equal(wl_asked, 0);
    assert_int_equal(back->rcpt[1]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER);
    wire_free_envelope(&back);
    v.outbound = false;

    /* below every threshold: nothing, and no archive copy */
    v.score = 4.9;
    back = route_spam(r, &env, cfg);
    assert_int_equal(back->n_rcpt, 4);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(back->rcpt[i]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_NONE);
        assert_string_equal(back->rcpt[i]->subject_tag, "");
    }
    assert_string_equal(back->rcpt[0]->folder, "");
    wire_free_envelope(&back);
    routing_close(&r);
    config_free(&cfg);

    /* the archive itself a recipient: its copy is not deleted, no second */
    cfg = load("spam_delete_score = 20\nspam_subject_tag =\n"
               "spam_archive_address = archive@example.test\n");
    r = routing_open(cfg, &err);
    assert_non_null(r);
    r2.address = "archive@example.test";
    env.n_rcpt = 2;
    v.score = 25;
    back = route_spam(r, &env, cfg);
    assert_int_equal(back->n_rcpt, 2);
    assert_int_equal(back->rcpt[0]->route, DISCARD);
    assert_int_equal(back->rcpt[1]->route, MAILDIR);
    assert_int_equal(back->rcpt[1]->spam_action, CORREIO__SPAM_ACTION__SPAM_ACTION_FOLDER);
    assert_string_equal(back->rcpt[1]->subject_tag, "");      /* spam_subject_tag empty */
    wire_free_envelope(&back);
    routing_close(&r);
    config_free(&cfg);
}

static void test_routing_mailbox_safe(void **state)
{
    (void)state;
    assert_true(routing_mailbox_safe("demo"));
    assert_true(routing_mailbox_safe("a.b"));
    assert_false(routing_mailbox_safe(""));
    assert_false(routing_mailbox_safe("."));
    assert_false(routing_mailbox_safe(".."));
    assert_false(routing_mailbox_safe("a/b"));
    assert_false(routing_mailbox_safe("a b"));
    char longname[80];
    memset(longname, 'a', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_false(routing_mailbox_safe(longname));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routing_plain),
        cmocka_unit_test(test_routing_tables),
        cmocka_unit_test(test_routing_wildcard_and_backup),
        cmocka_unit_test(test_routing_bad_table),
        cmocka_unit_test(test_routing_envelope),
        cmocka_unit_test(test_routing_mailbox_safe),
        cmocka_unit_test(test_routing_virtual_and_delimiter),
        cmocka_unit_test(test_routing_aliases),
        cmocka_unit_test(test_routing_spam_actions),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
