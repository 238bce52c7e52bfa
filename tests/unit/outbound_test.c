/* outbound_test.c - the outbound engine against a small SMTP server
 * thread on 127.0.0.1 (a random port): two jobs share one connection,
 * 4xx and 5xx recipients, a refused connection, a 5xx greeting, LMTP over
 * a UNIX socket, and a stop with a job under way (no result, no leak).
 * With the DNS lab (tests/dns/lab.sh; CORREIO_TEST_DNS names a running
 * one, else this program starts its own): MX, implicit MX, null MX,
 * NXDOMAIN, a temporary DNS failure, a backup MX after a dead primary,
 * and "loops back to myself" (bounced, or handed back for local delivery).
 *
 * The server speaks just enough SMTP: a greeting (or a 554 one, or none),
 * EHLO/LHLO, MAIL, RCPT (a local part "tempfail" gets 450, "reject" 550),
 * DATA (LMTP: one reply per accepted recipient), RSET, NOOP, QUIT.  It
 * serves one connection at a time: the tests set the destination
 * concurrency to 1, which is also what makes the second job reuse the
 * first one's connection.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <limits.h>
#include <unistd.h>

#include "../../delivery/outbound.h"
#include "config.h"
#include "fsutil.h"
#include "qid.h"
#include "timeutil.h"
#include "xalloc.h"

#define WAIT_MS 10000

/* ---------------------------------------------------------------- server */

typedef enum { GREET_OK, GREET_554, GREET_NONE } greet_mode;

typedef struct server {
    int         lfd;
    int         stop[2];        /* a pipe: the test says "stop" */
    pthread_t   thread;
    greet_mode  greet;
    bool        lmtp;
    char        path[108];      /* UNIX socket, or "" for TCP */
    unsigned    port;
    /* what happened, read after the thread is joined */
    int         connections, transactions;
    char        data[4096];     /* the last message's content */
} server;

/* read_line - one line (CRLF stripped) from fd; false on EOF or stop. */
static bool read_line(server *s, int fd, char *line, size_t size)
{
    size_t n = 0;

    for (;;) {
        struct pollfd p[2] = {{fd, POLLIN, 0}, {s->stop[0], POLLIN, 0}};
        char ch;
        if (poll(p, 2, WAIT_MS) <= 0 || (p[1].revents & POLLIN))
            return false;
        if (read(fd, &ch, 1) != 1)
            return false;
        if (ch == '\n') {
            if (n > 0 && line[n - 1] == '\r')
                n--;
            line[n] = '\0';
            return true;
        }
        if (n + 1 < size)
            line[n++] = ch;
    }
}

static void say(int fd, const char *text)
{
    assert_int_equal(fs_write_all(fd, text, strlen(text)), 0);
}

/* rcpt_reply - what RCPT TO:<local@...> gets. */
static const char *rcpt_reply(const char *arg, bool *ok)
{
    *ok = false;
    if (strstr(arg, "<tempfail@") != NULL)
        return "450 4.2.0 <tempfail@x.test>: try later\r\n";
    if (strstr(arg, "<reject@") != NULL)
        return "550 5.1.1 <reject@x.test>: Recipient address rejected\r\n";
    *ok = true;
    return "250 2.1.5 Ok\r\n";
}

/* serve_data - read the content up to the dot, then the reply(ies). */
static void serve_data(server *s, int fd, int accepted)
{
    char line[1024], reply[128];
    size_t len = 0;

    say(fd, "354 go ahead\r\n");
    while (read_line(s, fd, line, sizeof line) && strcmp(line, ".") != 0)
        len += (size_t)snprintf(s->data + len, sizeof s->data - len, "%s\n", line),
            len = len >= sizeof s->data ? sizeof s->data - 1 : len;
    s->transactions++;
    snprintf(reply, sizeof reply, "250 2.0.0 Ok: queued as Q%d\r\n", s->transactions);
    for (int i = 0; i < (s->lmtp ? accepted : 1); i++)
        say(fd, reply);
}

static void serve(server *s, int fd)
{
    char line[1024];
    int accepted = 0;

    s->connections++;
    if (s->greet == GREET_554)
        say(fd, "554 5.7.1 go away\r\n");
    else if (s->greet == GREET_OK)
        say(fd, "220 fake.test ESMTP\r\n");
    while (read_line(s, fd, line, sizeof line)) {
        bool ok;
        if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "LHLO", 4) == 0) {
            say(fd, "250-fake.test\r\n250 ENHANCEDSTATUSCODES\r\n");
        } else if (strncasecmp(line, "MAIL", 4) == 0) {
            accepted = 0;
            say(fd, "250 2.1.0 Ok\r\n");
        } else if (strncasecmp(line, "RCPT", 4) == 0) {
            say(fd, rcpt_reply(line, &ok));
            accepted += ok;
        } else if (strcasecmp(line, "DATA") == 0) {
            serve_data(s, fd, accepted);
        } else if (strcasecmp(line, "QUIT") == 0) {
            say(fd, "221 2.0.0 Bye\r\n");
            break;
        } else if (strcasecmp(line, "RSET") == 0 || strcasecmp(line, "NOOP") == 0) {
            say(fd, "250 2.0.0 Ok\r\n");
        } else {
            say(fd, "502 5.5.2 what?\r\n");
        }
    }
    close(fd);
}

static void *server_main(void *arg)
{
    server *s = arg;

    for (;;) {
        struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->stop[0], POLLIN, 0}};
        int fd;
        if (poll(p, 2, -1) < 0 || (p[1].revents & POLLIN))
            break;
        fd = accept(s->lfd, NULL, NULL);
        if (fd >= 0)
            serve(s, fd);
    }
    return NULL;
}

static void server_start_at(server *s, greet_mode greet, const char *unix_path,
                            const char *ip, unsigned port)
{
    memset(s, 0, sizeof *s);
    s->greet = greet;
    if (unix_path != NULL) {
        struct sockaddr_un su = {.sun_family = AF_UNIX};
        s->lmtp = true;
        snprintf(s->path, sizeof s->path, "%s", unix_path);
        snprintf(su.sun_path, sizeof su.sun_path, "%s", unix_path);
        s->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
        assert_int_equal(bind(s->lfd, (struct sockaddr *)&su, sizeof su), 0);
    } else {
        struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        socklen_t len = sizeof sin;
        int one = 1;
        inet_pton(AF_INET, ip, &sin.sin_addr);
        s->lfd = socket(AF_INET, SOCK_STREAM, 0);
        setsockopt(s->lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        assert_int_equal(bind(s->lfd, (struct sockaddr *)&sin, sizeof sin), 0);
        assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&sin, &len), 0);
        s->port = ntohs(sin.sin_port);
    }
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(pipe(s->stop), 0);
    assert_int_equal(pthread_create(&s->thread, NULL, server_main, s), 0);
}

static void server_start(server *s, greet_mode greet, const char *unix_path)
{
    server_start_at(s, greet, unix_path, "127.0.0.1", 0);
}

static void server_stop(server *s)
{
    assert_int_equal(write(s->stop[1], "x", 1), 1);
    pthread_join(s->thread, NULL);
    close(s->lfd);
    close(s->stop[0]);
    close(s->stop[1]);
    if (s->path[0])
        unlink(s->path);
}

/* closed_port - a port on 127.0.0.1 where nothing listens. */
static unsigned closed_port(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    socklen_t len = sizeof sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    unsigned port;

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* ---------------------------------------------------------------- engine */

static char tmpdir[] = "/tmp/outbound_test.XXXXXX";

/* engine_start_with - an engine whose configuration is the test's
 * defaults, then extra (later lines win). */
static outbound_t *engine_start_with(results_t *box, const char *extra)
{
    char *conf = xasprintf("%s/correio.conf", tmpdir), *err = NULL;
    char *text = xasprintf("myhostname = client.test\n"
                           "smtpd_listen = 127.0.0.1:1\n"
                           "dns_servers = 127.0.0.1:1\n"
                           "smtp_tls_security_level = none\n"
                           "default_destination_concurrency_limit = 1\n"
                           "smtp_connection_cache_time_limit = 5s\n"
                           "smtp_connect_timeout = 5s\n%s", extra);
    int fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    config_t *cfg;
    outbound_settings *set;

    assert_true(fd >= 0);
    assert_int_equal(fs_write_all(fd, text, strlen(text)), 0);
    close(fd);
    cfg = config_load_file(tmpdir, conf, &err);
    if (cfg == NULL)
        fail_msg("config: %s", err);
    set = outbound_settings_new(cfg, &err);
    if (set == NULL)
        fail_msg("outbound_settings_new: %s", err);
    config_free(&cfg);
    free(conf);
    free(text);
    return outbound_start(set, box);
}

static outbound_t *engine_start(results_t *box)
{
    return engine_start_with(box, "");
}

/* message - an envelope to addrs (NULL-terminated), all routed to nexthop. */
static work_msg *message(Correio__RouteKind route, const char *nexthop, const char *const *addrs)
{
    Envelope e;
    Recipient r[8], *rp[8];
    char qid[QID_LEN + 1];
    size_t n = 0, len;
    uint8_t *data;
    Envelope *env;

    correio__envelope__init(&e);
    qid_next(qid);
    e.version = WIRE_VERSION;
    e.queue_id = qid;
    e.reverse_path = "sender@client.test";
    for (; addrs[n] != NULL; n++) {
        correio__recipient__init(&r[n]);
        r[n].address = (char *)addrs[n];
        r[n].route = route;
        r[n].nexthop = (char *)nexthop;
        r[n].notify = CORREIO__NOTIFY__NOTIFY_SUCCESS | CORREIO__NOTIFY__NOTIFY_FAILURE;
        rp[n] = &r[n];
    }
    e.n_rcpt = n;
    e.rcpt = rp;
    e.body.data = (uint8_t *)"Subject: test\r\n\r\nhello\r\n";
    e.body.len = strlen((char *)e.body.data);
    data = wire_pack_envelope(&e, &len);
    env = wire_unpack_envelope(data, len, "test");
    assert_non_null(env);
    free(data);
    return work_msg_new(env);
}

/* submit - outbound_submit takes its own reference: drop the test's. */
static void submit(outbound_t *o, work_msg *m, const unsigned *rcpt, size_t n, unsigned tag)
{
    outbound_submit(o, m, rcpt, n, tag);
    work_msg_unref(&m);
}

/* collect - wait until want results are in the box; sorted by tag, rcpt. */
static int by_tag(const void *a, const void *b)
{
    const work_result *x = a, *y = b;

    if (x->tag != y->tag)
        return x->tag < y->tag ? -1 : 1;
    return x->rcpt < y->rcpt ? -1 : x->rcpt > y->rcpt;
}

static work_result *collect(results_t *box, size_t want)
{
    work_result *all = xcalloc(want + 8, sizeof *all);
    size_t have = 0;
    int64_t end = time_mono_ms() + WAIT_MS;

    while (have < want) {
        struct pollfd p = {results_fd(box), POLLIN, 0};
        work_result *got = NULL;
        size_t n;
        if (time_mono_ms() > end)
            fail_msg("%zu results of %zu after %d ms", have, want, WAIT_MS);
        poll(&p, 1, 200);
        n = results_collect(box, &got);
        if (have + n > want + 8)
            fail_msg("too many results: %zu", have + n);
        if (n > 0)
            memcpy(all + have, got, n * sizeof *got);
        have += n;
        free(got);
    }
    qsort(all, have, sizeof *all, by_tag);
    return all;
}

static void free_results(work_result *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        work_result_clear(&r[i]);
    free(r);
}

static void want_result(const work_result *r, unsigned tag, unsigned rcpt,
                        Correio__RcptState state, const char *dsn, const char *text)
{
    if (r->tag != tag || r->rcpt != rcpt || r->state != state
        || strcmp(r->dsn_status, dsn) != 0 || strstr(r->text, text) == NULL)
        fail_msg("result tag=%u rcpt=%u state=%d dsn=%s text=\"%s\"; want tag=%u rcpt=%u "
                 "state=%d dsn=%s text~\"%s\"", r->tag, r->rcpt, r->state, r->dsn_status,
                 r->text, tag, rcpt, state, dsn, text);
}

#define DELIVERED CORREIO__RCPT_STATE__RCPT_DELIVERED
#define DEFERRED  CORREIO__RCPT_STATE__RCPT_DEFERRED
#define FAILED    CORREIO__RCPT_STATE__RCPT_FAILED
#define RELAY     CORREIO__ROUTE_KIND__ROUTE_RELAY

/* wait_stats - until outbound_stats says what (a substring). */
static void wait_stats(outbound_t *o, const char *what)
{
    char stats[128];
    int64_t end = time_mono_ms() + WAIT_MS;

    for (;;) {
        outbound_stats(o, stats, sizeof stats);
        if (strstr(stats, what) != NULL)
            return;
        if (time_mono_ms() > end)
            fail_msg("stats \"%s\", want \"%s\"", stats, what);
        poll(NULL, 0, 10);
    }
}

/* ---------------------------------------------------------------- tests */

static void test_reuse_and_replies(void **state)
{
    static const char *const a1[] = {"one@x.test", NULL};
    static const char *const a2[] = {"two@x.test", "tempfail@x.test", "reject@x.test", NULL};
    static const unsigned r1[] = {0}, r2[] = {0, 1, 2};
    results_t *box = results_new();
    outbound_t *o = engine_start(box);
    server s;
    char hop[64], relay[64];
    work_result *res;

    (void)state;
    server_start(&s, GREET_OK, NULL);
    snprintf(hop, sizeof hop, "[127.0.0.1]:%u", s.port);
    snprintf(relay, sizeof relay, "127.0.0.1[127.0.0.1]:%u", s.port);
    submit(o, message(RELAY, hop, a1), r1, 1, 7);
    submit(o, message(RELAY, hop, a2), r2, 3, 8);
    res = collect(box, 4);
    want_result(&res[0], 7, 0, DELIVERED, "2.0.0", "250 2.0.0 Ok: queued as Q1");
    assert_string_equal(res[0].relay, relay);
    assert_string_equal(res[0].remote_mta, "127.0.0.1");
    assert_int_equal(res[0].relayed_no_dsn, 1);        /* NOTIFY=SUCCESS, peer without DSN */
    want_result(&res[1], 8, 0, DELIVERED, "2.0.0", "queued as Q2");
    want_result(&res[2], 8, 1, DEFERRED, "4.2.0",
                "host 127.0.0.1[127.0.0.1] said: 450 4.2.0 <tempfail@x.test>: try later "
                "(in reply to RCPT TO command)");
    assert_string_equal(res[2].diagnostic, "450 4.2.0 <tempfail@x.test>: try later");
    want_result(&res[3], 8, 2, FAILED, "5.1.1", "550 5.1.1 <reject@x.test>: Recipient");
    assert_int_equal(res[3].relayed_no_dsn, 0);
    wait_stats(o, "connections=1 idle=1 destinations=1 jobs=0");
    outbound_stop(o);
    outbound_free(&o);
    server_stop(&s);
    assert_int_equal(s.connections, 1);                 /* the second job reused it */
    assert_int_equal(s.transactions, 2);
    assert_non_null(strstr(s.data, "Subject: test"));
    free_results(res, 4);
    results_free(&box);
}

static void test_refused(void **state)
{
    static const char *const a[] = {"one@x.test", "two@x.test", NULL};
    static const unsigned r[] = {0, 1};
    results_t *box = results_new();
    outbound_t *o = engine_start(box);
    unsigned port = closed_port();
    char hop[64], text[128];
    work_result *res;

    (void)state;
    snprintf(hop, sizeof hop, "[127.0.0.1]:%u", port);
    snprintf(text, sizeof text, "connect to 127.0.0.1[127.0.0.1]:%u: Connection refused", port);
    submit(o, message(RELAY, hop, a), r, 2, 1);
    res = collect(box, 2);
    want_result(&res[0], 1, 0, DEFERRED, "4.4.1", text);
    want_result(&res[1], 1, 1, DEFERRED, "4.4.1", text);
    assert_null(res[0].remote_mta);
    outbound_free(&o);
    free_results(res, 2);
    results_free(&box);
}

/* Every server answered 5xx at the greeting: a failure, not a deferral. */
static void test_greeting_554(void **state)
{
    static const char *const a[] = {"one@x.test", NULL};
    static const unsigned r[] = {0};
    results_t *box = results_new();
    outbound_t *o = engine_start(box);
    server s;
    char hop[64];
    work_result *res;

    (void)state;
    server_start(&s, GREET_554, NULL);
    snprintf(hop, sizeof hop, "[127.0.0.1]:%u", s.port);
    submit(o, message(RELAY, hop, a), r, 1, 3);
    res = collect(box, 1);
    want_result(&res[0], 3, 0, FAILED, "5.7.1",
                "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.7.1 go away");
    outbound_free(&o);
    server_stop(&s);
    free_results(res, 1);
    results_free(&box);
}

/* LMTP over a UNIX socket, one recipient: Delivered-To is written first. */
static void test_lmtp_unix(void **state)
{
    static const char *const a[] = {"one@x.test", NULL};
    static const unsigned r[] = {0};
    results_t *box = results_new();
    outbound_t *o = engine_start(box);
    char *path = xasprintf("%s/lmtp", tmpdir), *hop = xasprintf("unix:%s", path);
    server s;
    work_result *res;

    (void)state;
    server_start(&s, GREET_OK, path);
    submit(o, message(CORREIO__ROUTE_KIND__ROUTE_LMTP, hop, a), r, 1, 4);
    res = collect(box, 1);
    want_result(&res[0], 4, 0, DELIVERED, "2.0.0", "queued as Q1");
    assert_int_equal(res[0].relayed_no_dsn, 0);         /* LMTP is final delivery */
    outbound_free(&o);
    server_stop(&s);
    assert_true(strncmp(s.data, "Delivered-To: one@x.test\n", 25) == 0);
    free_results(res, 1);
    results_free(&box);
    free(path);
    free(hop);
}

/* A bad next hop: deferred at once with the reason. */
static void test_bad_nexthop(void **state)
{
    static const char *const a[] = {"one@x.test", NULL};
    static const unsigned r[] = {0};
    results_t *box = results_new();
    outbound_t *o = engine_start(box);
    work_result *res;

    (void)state;
    submit(o, message(RELAY, "[127.0.0.1]:0", a), r, 1, 5);
    res = collect(box, 1);
    want_result(&res[0], 5, 0, DEFERRED, "4.3.5", "bad next hop \"[127.0.0.1]:0\": bad port 0");
    outbound_free(&o);
    free_results(res, 1);
    results_free(&box);
}

/* Stop while a session waits for a greeting that never comes: nothing is
 * posted, the envelope is released (ASan would see a leak). */
static void test_stop_drops_jobs(void **state)
{
    static const char *const a[] = {"one@x.test", NULL};
    static const unsigned r[] = {0};
    results_t *box = results_new();
    outbound_t *o = engine_start(box);
    server s;
    char hop[64];
    work_result *got = NULL;

    (void)state;
    server_start(&s, GREET_NONE, NULL);
    snprintf(hop, sizeof hop, "[127.0.0.1]:%u", s.port);
    submit(o, message(RELAY, hop, a), r, 1, 6);
    wait_stats(o, "connections=1 idle=0 destinations=1 jobs=1");
    outbound_stop(o);
    outbound_free(&o);
    server_stop(&s);
    assert_int_equal(results_collect(box, &got), 0);
    free(got);
    results_free(&box);
}

/* ---------------------------------------------------------------- DNS */

static const char *lab_server;          /* "127.0.0.1:PORT" */
static char lab_dir[64];                /* set when this test started the lab */
static char *lab_script;

/* find_lab_script - tests/dns/lab.sh from the cwd or from build/tests/. */
static char *find_lab_script(void)
{
    char exe[PATH_MAX];
    ssize_t n;

    if (access("tests/dns/lab.sh", R_OK) == 0)
        return xstrdup("tests/dns/lab.sh");
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    for (int up = 0; up < 3; up++) {           /* REPO/build/tests/outbound_test */
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return NULL;
        *slash = 0;
    }
    char *p = xasprintf("%s/tests/dns/lab.sh", exe);
    if (access(p, R_OK) == 0)
        return p;
    free(p);
    return NULL;
}

static void lab_start(void)
{
    static char server_addr[32];

    lab_server = getenv("CORREIO_TEST_DNS");
    if (lab_server != NULL && lab_server[0] != 0)
        return;
    lab_server = NULL;
    lab_script = find_lab_script();
    strcpy(lab_dir, "/tmp/outbound-dnslab.XXXXXX");
    if (lab_script == NULL || mkdtemp(lab_dir) == NULL) {
        lab_dir[0] = 0;
        return;
    }
    for (int attempt = 0; attempt < 20; attempt++) {
        unsigned port = 20000 + arc4random_uniform(10000);
        char *cmd = xasprintf("sh '%s' start '%s' %u", lab_script, lab_dir, port);
        int st = system(cmd), rc = st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;

        free(cmd);
        if (rc == 0) {
            snprintf(server_addr, sizeof server_addr, "127.0.0.1:%u", port);
            lab_server = server_addr;
            return;
        }
        if (rc != 2)                            /* not "port taken" */
            return;
    }
}

static void lab_stop(void)
{
    if (lab_dir[0] != 0) {
        char *cmd = xasprintf("sh '%s' stop '%s'; rm -rf '%s'", lab_script, lab_dir, lab_dir);
        if (system(cmd) != 0)
            fprintf(stderr, "# outbound_test: could not stop the DNS lab in %s\n", lab_dir);
        free(cmd);
    }
    free(lab_script);
}

static const char *need_lab(void)
{
    if (lab_server == NULL)
        fail_msg("no DNS lab: CORREIO_TEST_DNS is not set and tests/dns/lab.sh could not "
                 "start one (needs unbound and dig)");
    return lab_server;
}

/* One recipient per job, next hop "" (the recipient's domain). */
static const struct dns_case {
    const char        *rcpt;
    Correio__RcptState state;
    const char        *dsn, *text, *remote_mta;
} dns_cases[] = {
    {"u@nullmx.test", FAILED, "5.1.10", "Domain nullmx.test does not accept mail (nullMX)", NULL},
    {"u@nosuch.test", FAILED, "5.1.2", "Host or domain name not found. Name service error for "
     "name=nosuch.test type=MX: Host not found", NULL},
    /* best MX mx1.relay.test is 127.0.0.2, where this "host" listens */
    {"u@relay.test", FAILED, "5.4.6", "mail for relay.test loops back to myself", NULL},
    {"u@aonly.test", DELIVERED, "2.0.0", "250 2.0.0 Ok: queued as", "aonly.test"},
    {"u@ok.test", DELIVERED, "2.0.0", "250 2.0.0 Ok: queued as", "mx.ok.test"},
    {"u@tempfail.test", DEFERRED, "4.4.3", "Host or domain name not found. Name service error "
     "for name=mx.refused.test type=", NULL},
    {"u@brokenmx.test", FAILED, "5.4.4", "Host or domain name not found. Name service error "
     "for name=nowhere.brokenmx.test type=", NULL},
    /* primary.backup.test (127.0.0.5) refuses; secondary (127.0.0.1) takes it */
    {"u@backup.test", DELIVERED, "2.0.0", "250 2.0.0 Ok: queued as", "secondary.backup.test"},
};

static void test_dns_destinations(void **state)
{
    const size_t n = sizeof dns_cases / sizeof dns_cases[0];
    results_t *box = results_new();
    server s;
    char *extra;
    outbound_t *o;
    work_result *res;

    (void)state;
    server_start(&s, GREET_OK, NULL);
    extra = xasprintf("dns_servers = %s\nsmtp_default_port = %u\n"
                      "smtpd_listen = 127.0.0.2:%u\nsmtp_connection_cache_time_limit = 0\n",
                      need_lab(), s.port, s.port);
    o = engine_start_with(box, extra);
    for (size_t i = 0; i < n; i++) {
        const char *a[] = {dns_cases[i].rcpt, NULL};
        const unsigned r[] = {0};
        submit(o, message(RELAY, "", a), r, 1, (unsigned)i);
    }
    res = collect(box, n);
    for (size_t i = 0; i < n; i++) {
        const struct dns_case *c = &dns_cases[i];
        want_result(&res[i], (unsigned)i, 0, c->state, c->dsn, c->text);
        if (c->remote_mta != NULL && (res[i].remote_mta == NULL
                                      || strcmp(res[i].remote_mta, c->remote_mta) != 0))
            fail_msg("%s: remote_mta %s, want %s", c->rcpt, res[i].remote_mta, c->remote_mta);
    }
    outbound_free(&o);
    server_stop(&s);
    assert_int_equal(s.transactions, 3);
    free_results(res, n);
    results_free(&box);
    free(extra);
}

/* best_mx_transport = local: the recipient comes back for local delivery. */
static void test_dns_best_mx_local(void **state)
{
    static const char *const a[] = {"u@loop.test", NULL};
    static const unsigned r[] = {0};
    results_t *box = results_new();
    char *extra = xasprintf("dns_servers = %s\nsmtp_default_port = 25\n"
                            "smtpd_listen = 0.0.0.0:25\nbest_mx_transport = local\n", need_lab());
    outbound_t *o = engine_start_with(box, extra);
    work_result *res;

    (void)state;
    submit(o, message(RELAY, "", a), r, 1, 9);
    res = collect(box, 1);
    want_result(&res[0], 9, 0, DEFERRED, "4.4.6", "mail for loop.test loops back to myself");
    assert_int_equal(res[0].loops_to_local, 1);
    outbound_free(&o);
    free_results(res, 1);
    results_free(&box);
    free(extra);
}

/* smtp_connection_limit = 1: a second destination gets the slot of the
 * first one's idle connection (closed with QUIT), without waiting for
 * smtp_connection_cache_time_limit (30 s here, longer than WAIT_MS). */
static void test_connection_limit(void **state)
{
    static const char *const a[] = {"one@x.test", NULL};
    static const unsigned r[] = {0};
    results_t *box = results_new();
    outbound_t *o = engine_start_with(box, "smtp_connection_limit = 1\n"
                                           "smtp_connection_cache_time_limit = 30s\n");
    server s1, s2;
    char hop1[64], hop2[64];
    work_result *res1, *res2;

    (void)state;
    server_start(&s1, GREET_OK, NULL);
    server_start(&s2, GREET_OK, NULL);
    snprintf(hop1, sizeof hop1, "[127.0.0.1]:%u", s1.port);
    snprintf(hop2, sizeof hop2, "[127.0.0.1]:%u", s2.port);
    submit(o, message(RELAY, hop1, a), r, 1, 1);
    res1 = collect(box, 1);
    wait_stats(o, "connections=1 idle=1");
    submit(o, message(RELAY, hop2, a), r, 1, 2);
    res2 = collect(box, 1);
    want_result(&res1[0], 1, 0, DELIVERED, "2.0.0", "queued as Q1");
    want_result(&res2[0], 2, 0, DELIVERED, "2.0.0", "queued as Q1");
    wait_stats(o, "connections=1 idle=1 destinations=2");
    outbound_free(&o);
    server_stop(&s1);
    server_stop(&s2);
    free_results(res1, 1);
    free_results(res2, 1);
    results_free(&box);
}

/* outbound_reconfigure: new settings (a new resolver, no cache, the idle
 * connection closed); the next job is delivered with them. */
static void test_reconfigure(void **state)
{
    static const char *const a[] = {"one@x.test", NULL};
    static const unsigned r[] = {0};
    results_t *box = results_new();
    outbound_t *o = engine_start(box);
    server s;
    char hop[64], *conf = xasprintf("%s/correio.conf", tmpdir), *err = NULL;
    config_t *cfg;
    outbound_settings *set;
    work_result *res1, *res2;

    (void)state;
    server_start(&s, GREET_OK, NULL);
    snprintf(hop, sizeof hop, "[127.0.0.1]:%u", s.port);
    submit(o, message(RELAY, hop, a), r, 1, 1);
    res1 = collect(box, 1);
    wait_stats(o, "connections=1 idle=1");
    cfg = config_load_file(tmpdir, conf, &err);     /* the file engine_start wrote */
    assert_non_null(cfg);
    set = outbound_settings_new(cfg, &err);
    assert_non_null(set);
    config_free(&cfg);
    outbound_reconfigure(o, set);
    submit(o, message(RELAY, hop, a), r, 1, 2);
    res2 = collect(box, 1);
    want_result(&res1[0], 1, 0, DELIVERED, "2.0.0", "queued as Q1");
    want_result(&res2[0], 2, 0, DELIVERED, "2.0.0", "queued as Q2");
    outbound_free(&o);
    server_stop(&s);
    assert_int_equal(s.connections, 2);     /* the old idle connection was not reused */
    free_results(res1, 1);
    free_results(res2, 1);
    results_free(&box);
    free(conf);
}

/* Settings errors name the parameter. */
static void test_settings_errors(void **state)
{
    static const struct {
        const char *extra, *want;
    } cases[] = {
        {"smtp_tls_policy_maps = hash:/nonexistent/tls\n", "smtp_tls_policy_maps: "},
        {"proxy_interfaces = mail.example\n", "proxy_interfaces: mail.example"},
        {"smtp_tls_CAfile = /nonexistent/ca.pem\n", "smtp_tls_CAfile: "},
    };
    char *conf = xasprintf("%s/correio.conf", tmpdir);

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int fd = open(conf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        char *err = NULL;
        config_t *cfg;
        outbound_settings *set;

        assert_true(fd >= 0);
        assert_int_equal(fs_write_all(fd, cases[i].extra, strlen(cases[i].extra)), 0);
        close(fd);
        cfg = config_load_file(tmpdir, conf, &err);
        if (cfg == NULL)
            fail_msg("case %zu: config: %s", i, err);
        set = outbound_settings_new(cfg, &err);
        if (set != NULL || err == NULL || strncmp(err, cases[i].want, strlen(cases[i].want)) != 0)
            fail_msg("case %zu: %s", i, err ? err : "accepted");
        free(err);
        config_free(&cfg);
    }
    free(conf);
}

static int setup(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    qid_init("outbound-test");
    lab_start();
    return 0;
}

static int teardown(void **state)
{
    char *conf = xasprintf("%s/correio.conf", tmpdir);

    (void)state;
    lab_stop();
    unlink(conf);
    free(conf);
    rmdir(tmpdir);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_and_replies),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_greeting_554),
        cmocka_unit_test(test_lmtp_unix),
        cmocka_unit_test(test_bad_nexthop),
        cmocka_unit_test(test_stop_drops_jobs),
        cmocka_unit_test(test_connection_limit),
        cmocka_unit_test(test_reconfigure),
        cmocka_unit_test(test_settings_errors),
        cmocka_unit_test(test_dns_destinations),
        cmocka_unit_test(test_dns_best_mx_local),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
