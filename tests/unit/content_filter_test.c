/* content_filter_test.c - the content filter rules: the parser (a good
 * file, and every bad construct named with its line), the evaluator
 * (IceWarp's two examples, and/or/not, size, client, header patterns,
 * variables, stop) and the router applying them to an envelope. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "../../router/content_filter.h"
#include "../../router/routing.h"
#include "buf.h"
#include "xalloc.h"

static content_filter_t *parse(const char *text)
{
    char *err = NULL;
    content_filter_t *cf = content_filter_parse("rules", text, strlen(text), &err);
    if (!cf)
        fail_msg("parse: %s", err);
    return cf;
}

#define ICEWARP \
    "# IceWarp's two examples\n" \
    "rule \"X-Auth on outgoing mail\"\n" \
    "  when recipient is remote\n" \
    "  then add header \"X-Auth: %%Auth_Email%%\"\n" \
    "\n" \
    "rule \"audit copy of mail to yahoo\"\n" \
    "  when recipient is remote and recipient matches /yahoo\\.com$/\n" \
    "  then copy to audit@example.test\n" \
    "\n" \
    "rule \"big mail from outside\"\n" \
    "  when not client in 192.0.2.0/24 and size over 5m\n" \
    "  then set spam; stop\n"

static const char icewarp[] = ICEWARP;

static const char good[] = ICEWARP
    "RULE \"every keyword\" WHEN (sender is <> or sender matches /x/) and header Subject\n"
    "  matches /a b/ or authenticated or auth user is <u@x.test> or spam score over 4.5\n"
    "  or recipient is local or recipient is a@b.test or client in 10.0.0.0/8,::1\n"
    "  THEN redirect to <r@x.test> discard ; add header \"X: \\\"q\\\"\"\n"
    "rule \"always\" then stop\n";

static void test_parse_good(void **state)
{
    (void)state;
    content_filter_t *cf = parse(good);
    assert_int_equal(content_filter_count(cf), 5);
    content_filter_free(&cf);
    assert_null(cf);
    cf = parse("# nothing but a comment\n\n");
    assert_int_equal(content_filter_count(cf), 0);
    content_filter_free(&cf);
}

typedef struct bad_case {
    const char *text;
    const char *error;      /* the whole message after "rules:" */
} bad_case;

static const bad_case bad_cases[] = {
    {"when recipient is remote then discard\n",
     "1: expected rule \"NAME\", not \"when\""},
    {"rule X then discard\n",
     "1: expected the rule's name in quotes after \"rule\", not \"X\""},
    {"rule \"\" then discard\n",
     "1: expected the rule's name in quotes after \"rule\", not \"\""},
    {"rule \"a\n",
     "1: no closing \" on this line"},
    {"rule \"a\"\n when recipient matches /abc\n then discard\n",
     "2: no closing / after the pattern"},
    {"rule \"a\"\n when recipient matches /abc/i\n then discard\n",
     "2: unexpected 'i' after the pattern (no flags: patterns are case-insensitive)"},
    {"rule \"a\"\n when recipient matches /ab(c/\n then discard\n",
     "2: bad pattern /ab(c/: missing closing parenthesis (at offset 4)"},
    {"rule \"a\"\n\n when recipient is\n then discard\n",
     "4: \"then\" is not an address (local@domain)"},
    {"rule \"a\"\n when recipient equals x@y\n then discard\n",
     "2: expected \"is\" or \"matches\" after \"recipient\", not \"equals\""},
    {"rule \"a\"\n when size over 5g\n then discard\n",
     "2: expected a size (N, Nk or Nm) after \"over\", not \"5g\""},
    {"rule \"a\"\n when size 5m\n then discard\n",
     "2: expected \"over\" after \"size\", not \"5m\""},
    {"rule \"a\"\n when client in 300.1.2.3/8\n then discard\n",
     NULL /* the message is cidr.h's; checked for the line only */},
    {"rule \"a\"\n when spam score over lots\n then discard\n",
     "2: expected a number after \"spam score over\", not \"lots\""},
    {"rule \"a\"\n when header Sub:ject matches /x/\n then discard\n",
     "2: expected a header field name after \"header\", not \"Sub:ject\""},
    {"rule \"a\"\n when (authenticated or size over 1\n then discard\n",
     "3: expected \")\", not \"then\""},
    {"rule \"a\"\n when frobnicated\n then discard\n",
     "2: expected a condition (sender, recipient, header, size, client, auth user, "
     "authenticated, spam score), not \"frobnicated\""},
    {"rule \"a\"\n when authenticated discard\n",
     "2: expected \"and\", \"or\" or \"then\" in rule \"a\", not \"discard\""},
    {"rule \"a\"\n when authenticated\n then\nrule \"b\" then stop\n",
     "4: rule \"a\" has no action after \"then\""},
    {"rule \"a\" then\n  explode\n",
     "2: expected an action (add header, edit header, copy to, redirect to, discard, "
     "set spam, stop), not \"explode\""},
    {"rule \"a\" then\n  add header \"NoColon\"\n",
     "2: header \"NoColon\" is not \"Name: value\""},
    {"rule \"a\" then\n  add header \"Bad Name: x\"\n",
     "2: bad header field name in \"Bad Name: x\""},
    {"rule \"a\" then\n  add header \"X: %%Nope%%\"\n",
     "2: unknown variable %%Nope%% (known: %%Auth_Email%%, %%Sender_Email%%, "
     "%%Recipient_Email%%, %%Client_IP%%, %%Subject%%)"},
    {"rule \"a\" then\n\n  edit header Subject\n",
     "3: expected \"Name: value\" after \"edit header\", not \"Subject\""},
    {"rule \"a\" then\n  edit \"Subject: x\"\n",
     "2: expected \"header\" after \"edit\", not \"Subject: x\""},
    {"rule \"a\" then\n  edit header \"Bad Name: x\"\n",
     "2: bad header field name in \"Bad Name: x\""},
    {"rule \"a\" then copy to nobody\n",
     "1: \"nobody\" is not an address (local@domain)"},
    {"rule \"a\" then redirect x@y\n",
     "1: expected \"to\" after \"redirect\", not \"x@y\""},
    {"rule \"a\" then set ham\n",
     "1: expected \"spam\" after \"set\", not \"ham\""},
    {"rule \"a\" then discard\n\x01\n",
     "2: control character 0x01"},
};

static void test_parse_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const bad_case *c = &bad_cases[i];
        char *err = NULL;
        content_filter_t *cf = content_filter_parse("rules", c->text, strlen(c->text), &err);
        if (cf)
            fail_msg("case %zu parsed: %s", i, c->text);
        assert_non_null(err);
        assert_true(strncmp(err, "rules:", 6) == 0);
        if (c->error && strcmp(err + 6, c->error) != 0)
            fail_msg("case %zu: got \"%s\", want \"rules:%s\"", i, err, c->error);
        if (!c->error)
            assert_true(strncmp(err, "rules:2: bad network \"300.1.2.3/8\": ", 36) == 0);
        xfree(&err);
    }
    /* a NUL byte, and a file that does not exist */
    char *err = NULL;
    assert_null(content_filter_parse("rules", "rule \"a\"\nthen\0 stop", 19, &err));
    assert_string_equal(err, "rules:2: NUL byte");
    xfree(&err);
    assert_null(content_filter_load("/nonexistent/rules", &err));
    assert_string_equal(err, "/nonexistent/rules: cannot open: No such file or directory");
    xfree(&err);
}

/* A message to run rules over. */
typedef struct msg {
    Envelope env;
    Client client;
    Verdict verdict;
    ProtobufCBinaryData prepend[1];
} msg;

static void msg_init(msg *m, const char *body, const char *ip, const char *auth)
{
    Envelope e = CORREIO__ENVELOPE__INIT;
    Client c = CORREIO__CLIENT__INIT;
    Verdict v = CORREIO__VERDICT__INIT;
    m->env = e;
    m->client = c;
    m->verdict = v;
    m->client.ip = (char *)ip;
    m->client.auth_user = (char *)auth;
    m->env.queue_id = "0123456789ABCDEFG";
    m->env.client = &m->client;
    m->env.verdict = &m->verdict;
    m->env.reverse_path = "sender@client.example";
    m->env.body.data = (uint8_t *)body;
    m->env.body.len = strlen(body);
    m->prepend[0].data = (uint8_t *)"Received: from client.example\r\n\tby mx.example.test\r\n";
    m->prepend[0].len = strlen((const char *)m->prepend[0].data);
    m->env.prepend_headers = m->prepend;
    m->env.n_prepend_headers = 1;
}

static const char body[] = "Subject: Hello\r\n  world\r\nFrom: a@client.example\r\n"
                           "X-Tag: first\r\nX-Tag: second\r\n\r\nSubject: not a header\r\n";

static void test_icewarp_examples(void **state)
{
    (void)state;
    content_filter_t *cf = parse(icewarp);
    msg m;
    content_filter_rcpt rc[] = {
        {"someone@yahoo.com", false}, {"demo@example.test", true}, {"x@other.test", false},
    };
    content_filter_result res;

    msg_init(&m, body, "192.0.2.7", "user@example.test");
    content_filter_apply(cf, &m.env, rc, 3, &res);
    assert_int_equal(res.n_headers, 1);
    assert_string_equal(res.headers[0], "X-Auth: user@example.test\r\n");
    assert_int_equal(res.n_copies, 1);
    assert_string_equal(res.copies[0], "audit@example.test");
    assert_false(res.spam);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(res.fate[i], CONTENT_FILTER_KEEP);
    assert_int_equal(res.n_fired, 2);
    content_filter_result_free(&res);

    /* only local recipients: neither example fires */
    content_filter_apply(cf, &m.env, rc + 1, 1, &res);
    assert_int_equal(res.n_headers, 0);
    assert_int_equal(res.n_copies, 0);
    content_filter_result_free(&res);

    /* big mail from outside: spam, and stop before the rules after it */
    content_filter_t *more = NULL;
    {
        char *text = xasprintf("%s%s", icewarp, "rule \"after\" then discard\n");
        more = parse(text);
        xfree(&text);
    }
    char *big = xmalloc(6 * 1024 * 1024);
    memset(big, 'x', 6 * 1024 * 1024 - 1);
    big[6 * 1024 * 1024 - 1] = '\0';
    msg_init(&m, big, "198.51.100.1", "");
    content_filter_apply(more, &m.env, rc + 1, 1, &res);
    assert_true(res.spam);
    assert_int_equal(res.fate[0], CONTENT_FILTER_KEEP);
    assert_int_equal(res.n_fired, 1);
    content_filter_result_free(&res);
    /* from inside the network it is not */
    msg_init(&m, big, "192.0.2.1", "");
    content_filter_apply(more, &m.env, rc + 1, 1, &res);
    assert_false(res.spam);
    assert_int_equal(res.fate[0], CONTENT_FILTER_DISCARD);
    content_filter_result_free(&res);
    content_filter_free(&more);
    xfree(&big);

    content_filter_free(&cf);
}

/* rules with one condition, run against a message; the result: did the
 * rule fire for recipient 0 / 1 (via discard) */
typedef struct eval_case {
    const char *when;
    bool        hit0, hit1;
} eval_case;

static void test_conditions(void **state)
{
    (void)state;
    static const eval_case cases[] = {
        {"recipient is remote", true, false},
        {"recipient is local", false, true},
        {"recipient is FAR@Remote.test", true, false},
        {"recipient matches /^demo@/", false, true},
        {"recipient matches /EXAMPLE/", false, true},           /* case-insensitive */
        {"sender is sender@client.example", true, true},
        {"sender is <>", false, false},
        {"sender matches /@client\\.example$/", true, true},
        {"not sender matches /@client\\.example$/", false, false},
        {"header subject matches /^hello  world$/", true, true}, /* unfolded */
        {"header Subject matches /not a header/", false, false}, /* the body */
        {"header x-tag matches /second/", true, true},          /* any field */
        {"header Received matches /client.example\tby mx/", true, true},
        {"header X-Missing matches /./", false, false},
        {"size over 50", true, true},
        {"size over 1k", false, false},
        {"client in 192.0.2.0/24", true, true},
        {"client in 198.51.100.0/24,192.0.2.7", true, true},
        {"client in 10.0.0.0/8", false, false},
        {"authenticated", true, true},
        {"auth user is USER@example.test", true, true},
        {"auth user is other@example.test", false, false},
        {"spam score over 4.9", true, true},
        {"spam score over 5", false, false},
        {"recipient is remote and size over 1k", false, false},
        {"recipient is remote or size over 1k", true, false},
        {"recipient is local or recipient is remote and size over 1k", false, true},
        {"(recipient is local or recipient is remote) and size over 50", true, true},
        {"not recipient is local and not not authenticated", true, false},
        {"not (recipient is local or authenticated)", false, false},
    };
    msg m;
    content_filter_rcpt rc[] = {{"far@remote.test", false}, {"demo@example.test", true}};

    msg_init(&m, body, "192.0.2.7", "user@example.test");
    m.verdict.score = 5.0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *text = xasprintf("rule \"t\" when %s then discard\n", cases[i].when);
        content_filter_t *cf = parse(text);
        content_filter_result res;
        content_filter_apply(cf, &m.env, rc, 2, &res);
        if ((res.fate[0] == CONTENT_FILTER_DISCARD) != cases[i].hit0
            || (res.fate[1] == CONTENT_FILTER_DISCARD) != cases[i].hit1)
            fail_msg("%s: got %d %d", cases[i].when, res.fate[0], res.fate[1]);
        assert_int_equal(res.n_fired, cases[i].hit0 || cases[i].hit1);
        content_filter_result_free(&res);
        content_filter_free(&cf);
        xfree(&text);
    }
    /* no client at all, no verdict */
    m.env.client = NULL;
    m.env.verdict = NULL;
    content_filter_t *cf = parse("rule \"t\" when authenticated or client in 0.0.0.0/0 "
                                 "or spam score over -1 then discard\n");
    content_filter_result res;
    content_filter_apply(cf, &m.env, rc, 2, &res);
    assert_int_equal(res.n_fired, 0);
    content_filter_result_free(&res);
    content_filter_free(&cf);
}

static void test_actions(void **state)
{
    (void)state;
    msg m;
    content_filter_rcpt rc[] = {
        {"a@remote.test", false}, {"b@example.test", true}, {"c@remote.test", false},
    };
    content_filter_result res;
    content_filter_t *cf = parse(
        "rule \"vars\" when recipient is remote\n"
        "  then add header \"X-Info: %%Sender_Email%% %%Recipient_Email%% %%client_ip%% "
        "[%%Subject%%] <%%Auth_Email%%> 100% %%\"\n"
        "rule \"redirect c\" when recipient is c@remote.test then redirect to z@remote.test\n"
        "rule \"c is gone\" when recipient is c@remote.test then add header \"X-Never: 1\"\n"
        "rule \"copies\" then copy to audit@example.test; copy to AUDIT@example.test\n"
        "rule \"local\" when recipient is local then discard set spam stop\n"
        "rule \"after stop\" then add header \"X-Never: 2\"\n");

    msg_init(&m, body, "192.0.2.7", "");
    content_filter_apply(cf, &m.env, rc, 3, &res);
    assert_int_equal(res.n_headers, 1);
    assert_string_equal(res.headers[0], "X-Info: sender@client.example a@remote.test 192.0.2.7 "
                                        "[Hello  world] <> 100% %%\r\n");
    assert_int_equal(res.fate[0], CONTENT_FILTER_KEEP);
    assert_int_equal(res.fate[1], CONTENT_FILTER_DISCARD);
    assert_int_equal(res.fate[2], CONTENT_FILTER_REDIRECT);
    assert_string_equal(res.redirect[2], "z@remote.test");
    assert_null(res.redirect[0]);
    assert_int_equal(res.n_copies, 1);
    assert_true(res.spam);
    assert_int_equal(res.n_fired, 4);
    content_filter_result_free(&res);
    content_filter_free(&cf);
}

/* "edit header": the name goes into drop (once, whatever its case), the
 * new field into headers as add header would; a field the client did
 * not send is just added. */
static void test_edit_header(void **state)
{
    (void)state;
    msg m;
    content_filter_rcpt rc[] = {{"a@remote.test", false}};
    content_filter_result res;
    content_filter_t *cf = parse(
        "rule \"tag\" when recipient is remote\n"
        "  then edit header \"Subject: [external] %%Subject%%\"\n"
        "rule \"again\" then edit header \"SUBJECT: twice\"; edit header \"X-New: 1\"\n");

    msg_init(&m, body, "192.0.2.7", "");
    content_filter_apply(cf, &m.env, rc, 1, &res);
    assert_int_equal(res.n_drop, 2);
    assert_string_equal(res.drop[0], "Subject");
    assert_string_equal(res.drop[1], "X-New");
    assert_int_equal(res.n_headers, 3);
    assert_string_equal(res.headers[0], "Subject: [external] Hello  world\r\n");
    assert_string_equal(res.headers[1], "SUBJECT: twice\r\n");
    assert_string_equal(res.headers[2], "X-New: 1\r\n");
    assert_int_equal(m.env.n_drop_headers, 0);      /* env is not changed */
    content_filter_result_free(&res);
    assert_null(res.drop);
    content_filter_free(&cf);
}

/* check_folded - every line of the field h at most 998 bytes, every CR
 * followed by LF and then white space (a continuation) but at the end. */
static void check_folded(const char *h)
{
    size_t n = strlen(h), line = 0;
    assert_string_equal(h + n - 2, "\r\n");
    for (size_t i = 0; i < n; i++) {
        if (h[i] == '\r') {
            assert_true(h[i + 1] == '\n');
            assert_true(i + 2 == n || h[i + 2] == ' ' || h[i + 2] == '\t');
            assert_true(line <= 998);
            line = 0;
            i++;
        } else {
            assert_true(h[i] != '\n' && h[i] != '\0');
            line++;
        }
    }
}

/* Header values from outside lose CR, LF and NUL and are folded. */
static void test_header_sanitised(void **state)
{
    (void)state;
    msg m;
    content_filter_rcpt rc[] = {{"a@remote.test", false}};
    content_filter_result res;
    content_filter_t *cf = parse("rule \"s\" then add header \"X-Subject: %%Subject%%\"\n");
    buf_t b = BUF_INIT;

    /* a subject with a bare CR, a NUL, and 3000 bytes with one space
     * every 100 */
    buf_append_str(&b, "Subject: evil\rX-Injected: yes");
    buf_append_char(&b, '\0');
    for (int i = 0; i < 30; i++) {
        for (int k = 0; k < 99; k++)
            buf_append_char(&b, 'a');
        buf_append_char(&b, ' ');
    }
    buf_append_str(&b, "\r\n\r\nbody\r\n");
    msg_init(&m, "", "192.0.2.7", "");
    m.env.body.data = (uint8_t *)b.data;
    m.env.body.len = b.len;
    content_filter_apply(cf, &m.env, rc, 1, &res);
    assert_int_equal(res.n_headers, 1);
    const char *h = res.headers[0];
    assert_true(strncmp(h, "X-Subject: evil X-Injected: yes ", 32) == 0);
    assert_true(strlen(h) > 3000);
    check_folded(h);
    content_filter_result_free(&res);
    buf_free(&b);

    /* a value without white space is broken anyway */
    char *big = xmalloc(2100);
    memcpy(big, "Subject: ", 9);
    memset(big + 9, 'x', 2000);
    memcpy(big + 2009, "\r\n\r\n", 5);
    m.env.body.data = (uint8_t *)big;
    m.env.body.len = strlen(big);
    content_filter_apply(cf, &m.env, rc, 1, &res);
    h = res.headers[0];
    check_folded(h);
    assert_true(strncmp(h, "X-Subject:\r\n xxx", 16) == 0);
    assert_true(strlen(h) > 2010);
    content_filter_result_free(&res);
    xfree(&big);
    content_filter_free(&cf);
}

/* ------------------------------------------------------- through routing */

static char dir[] = "/tmp/content_filter_test.XXXXXX";

static void write_file(const char *name, const char *text)
{
    char *path = xasprintf("%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
    xfree(&path);
}

static config_t *load(void)
{
    char *err = NULL;
    write_file("correio.conf", "myhostname = mx.example.test\n"
                               "mydestination = example.test\n"
                               "users_file = users\n"
                               "content_filters_file = filters\n");
    config_t *cfg = config_load(dir, &err);
    if (!cfg)
        fail_msg("config: %s", err);
    return cfg;
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(dir));
    write_file("users", "demo@example.test:{PLAIN}x\naudit@example.test:{PLAIN}x\n");
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

static void test_routing_applies_filters(void **state)
{
    (void)state;
    write_file("filters", good);
    write_file("filters",
               "rule \"X-Auth on outgoing mail\"\n"
               "  when recipient is remote\n"
               "  then add header \"X-Auth: %%Auth_Email%%\"\n"
               "rule \"audit copy of mail to yahoo\"\n"
               "  when recipient is remote and recipient matches /yahoo\\.com$/\n"
               "  then copy to audit@example.test\n"
               "rule \"drop\" when recipient is drop@remote.test then discard\n"
               "rule \"move\" when recipient is old@remote.test then redirect to new@remote.test\n"
               "rule \"spam\" when header subject matches /viagra/ then set spam\n");
    config_t *cfg = load();
    char *err = NULL;
    routing_t *r = routing_open(cfg, &err);
    if (!r)
        fail_msg("routing_open: %s", err);
    Recipient r1 = CORREIO__RECIPIENT__INIT, r2 = CORREIO__RECIPIENT__INIT,
              r3 = CORREIO__RECIPIENT__INIT, r4 = CORREIO__RECIPIENT__INIT;
    r1.address = "someone@yahoo.com";
    r2.address = "demo@example.test";
    r3.address = "drop@remote.test";
    r4.address = "old@remote.test";
    r4.notify = 2;
    Recipient *rcpts[] = {&r1, &r2, &r3, &r4};
    msg m;
    msg_init(&m, "Subject: cheap viagra\r\n\r\nbody\r\n", "192.0.2.7", "user@example.test");
    m.env.version = WIRE_VERSION;
    m.env.rcpt = rcpts;
    m.env.n_rcpt = 4;
    size_t len = 0;
    uint8_t *packed = routing_route_envelope(r, &m.env, cfg, &len);
    assert_non_null(packed);
    Envelope *back = wire_unpack_envelope(packed, len, "test");
    assert_non_null(back);
    assert_int_equal(back->n_rcpt, 5);
    assert_string_equal(back->rcpt[0]->address, "someone@yahoo.com");
    assert_int_equal(back->rcpt[0]->route, CORREIO__ROUTE_KIND__ROUTE_RELAY);
    assert_string_equal(back->rcpt[1]->address, "demo@example.test");
    assert_string_equal(back->rcpt[1]->folder, "Junk");         /* set spam */
    assert_string_equal(back->rcpt[2]->address, "drop@remote.test");
    assert_int_equal(back->rcpt[2]->route, CORREIO__ROUTE_KIND__ROUTE_DISCARD);
    assert_string_equal(back->rcpt[3]->address, "new@remote.test");
    assert_string_equal(back->rcpt[3]->original, "old@remote.test");
    assert_int_equal(back->rcpt[3]->notify, 2);
    assert_int_equal(back->rcpt[3]->route, CORREIO__ROUTE_KIND__ROUTE_RELAY);
    assert_string_equal(back->rcpt[4]->address, "audit@example.test");
    assert_int_equal(back->rcpt[4]->route, CORREIO__ROUTE_KIND__ROUTE_MAILDIR);
    assert_string_equal(back->rcpt[4]->folder, "Junk");
    assert_int_equal(back->rcpt[4]->notify, CORREIO__NOTIFY__NOTIFY_NEVER);
    assert_true(back->verdict && back->verdict->is_spam);
    assert_int_equal(back->n_prepend_headers, 2);
    assert_int_equal(back->prepend_headers[1].len, strlen("X-Auth: user@example.test\r\n"));
    assert_memory_equal(back->prepend_headers[1].data, "X-Auth: user@example.test\r\n",
                        back->prepend_headers[1].len);
    assert_false(m.verdict.is_spam);         /* the input is untouched */
    assert_int_equal(m.env.n_prepend_headers, 1);
    wire_free_envelope(&back);
    xfree(&packed);

    routing_close(&r);

    /* edit header: the name travels in drop_headers, once, after the
     * envelope's own; the new field is prepended */
    write_file("filters", "rule \"tag\" then edit header \"Subject: [ext] %%Subject%%\"\n"
                          "rule \"again\" then edit header \"subject: x\"\n");
    r = routing_open(cfg, &err);
    if (!r)
        fail_msg("routing_open: %s", err);
    char *had[] = {"X-Old"};
    Recipient *one[] = {&r2};
    r2.address = "demo@example.test";
    msg_init(&m, "Subject: hi\r\n\r\nbody\r\n", "192.0.2.7", "");
    m.env.version = WIRE_VERSION;
    m.env.rcpt = one;
    m.env.n_rcpt = 1;
    m.env.drop_headers = had;
    m.env.n_drop_headers = 1;
    packed = routing_route_envelope(r, &m.env, cfg, &len);
    assert_non_null(packed);
    back = wire_unpack_envelope(packed, len, "test");
    assert_non_null(back);
    assert_int_equal(back->n_drop_headers, 2);
    assert_string_equal(back->drop_headers[0], "X-Old");
    assert_string_equal(back->drop_headers[1], "Subject");
    assert_int_equal(back->n_prepend_headers, 3);
    assert_memory_equal(back->prepend_headers[1].data, "Subject: [ext] hi\r\n",
                        back->prepend_headers[1].len);
    assert_int_equal(m.env.n_drop_headers, 1);
    wire_free_envelope(&back);
    xfree(&packed);

    /* a bad file: routing_open names it and the line */
    write_file("filters", "rule \"ok\" then stop\n\nrule \"bad\" when nothing then stop\n");
    routing_t *r2nd = routing_open(cfg, &err);
    assert_null(r2nd);
    char *want = xasprintf("%s/filters:3: expected a condition", dir);
    assert_true(strncmp(err, want, strlen(want)) == 0);
    xfree(&want);
    xfree(&err);
    routing_close(&r);
    config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad),
        cmocka_unit_test(test_icewarp_examples),
        cmocka_unit_test(test_conditions),
        cmocka_unit_test(test_actions),
        cmocka_unit_test(test_edit_header),
        cmocka_unit_test(test_header_sanitised),
        cmocka_unit_test(test_routing_applies_filters),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
