/* dns_test.c - the c-ares resolver against the DNS lab (tests/dns/).
 *
 * CORREIO_TEST_DNS=127.0.0.1:PORT names a running lab (tests/run-all.sh
 * starts one for the whole suite).  Without it the test starts its own
 * lab with tests/dns/lab.sh (found from the current directory or from
 * this program's path, build/tests/dns_test) on a random port and stops
 * it at the end, so `make unit` and a run by hand work too; if that is
 * impossible every case fails with a message saying what to do.
 *
 * The resolver is driven the way a stage drives it: an epoll loop fed by
 * the watch callback, dns_process on readiness and on dns_timeout_ms.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "dns.h"
#include "timeutil.h"
#include "xalloc.h"

#define LOOKUP_LIMIT_MS  5000   /* a lab answer takes a millisecond; this is "never" */
#define MAX_RR           16

/* ------------------------------------------------------------ the lab */

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
    if (n > 0) {
        char *slash;
        exe[n] = 0;
        for (int up = 0; up < 3; up++) {           /* REPO/build/tests/dns_test */
            slash = strrchr(exe, '/');
            if (slash == NULL)
                return NULL;
            *slash = 0;
        }
        char *p = xasprintf("%s/tests/dns/lab.sh", exe);
        if (access(p, R_OK) == 0)
            return p;
        xfree(&p);
    }
    return NULL;
}

/* run_sh - sh SCRIPT ARGS; the exit status, -1 if it did not exit. */
static int run_sh(const char *cmd)
{
    int st = system(cmd);

    return st != -1 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int lab_setup(void **state)
{
    static char server[32];

    (void)state;
    lab_server = getenv("CORREIO_TEST_DNS");
    if (lab_server != NULL && lab_server[0] != 0)
        return 0;
    lab_server = NULL;
    lab_script = find_lab_script();
    strcpy(lab_dir, "/tmp/correio-dnslab.XXXXXX");
    if (lab_script == NULL || mkdtemp(lab_dir) == NULL) {
        lab_dir[0] = 0;
        return 0;
    }
    for (int attempt = 0; attempt < 20; attempt++) {
        unsigned port = 20000 + arc4random_uniform(10000);
        char *cmd = xasprintf("sh '%s' start '%s' %u", lab_script, lab_dir, port);
        int rc = run_sh(cmd);

        xfree(&cmd);
        if (rc == 0) {
            snprintf(server, sizeof(server), "127.0.0.1:%u", port);
            lab_server = server;
            fprintf(stderr, "# dns_test: started its own DNS lab on %s\n", server);
            return 0;
        }
        if (rc != 2)                            /* not "port taken" */
            break;
    }
    return 0;
}

static int lab_teardown(void **state)
{
    (void)state;
    if (lab_dir[0] != 0) {
        char *cmd = xasprintf("sh '%s' stop '%s'; rm -rf '%s'", lab_script, lab_dir, lab_dir);
        run_sh(cmd);
        xfree(&cmd);
    }
    xfree(&lab_script);
    return 0;
}

/* need_lab - the lab's address, or fail the case saying why. */
static const char *need_lab(void)
{
    if (lab_server == NULL)
        fail_msg("no DNS lab: CORREIO_TEST_DNS is not set and tests/dns/lab.sh could not "
                 "start one; run `make test`, or `sh tests/dns/lab.sh start /tmp/dnslab 15353` "
                 "and CORREIO_TEST_DNS=127.0.0.1:15353 build/tests/dns_test");
    return lab_server;
}

/* ------------------------------------------------------------ an epoll loop */

typedef struct loop {
    int    epfd;
    int    fds[64];
    size_t nfds;
    int    watch_calls;
} loop;

static void loop_init(loop *l)
{
    memset(l, 0, sizeof(*l));
    l->epfd = epoll_create1(EPOLL_CLOEXEC);
    assert_true(l->epfd >= 0);
}

static void loop_close(loop *l)
{
    assert_int_equal(l->nfds, 0);           /* every socket was unwatched */
    close(l->epfd);
}

/* watch - the dns_watch_cb: keep epoll in step with c-ares's sockets. */
static void watch(void *ctx, int fd, bool want_read, bool want_write)
{
    loop *l = ctx;
    struct epoll_event ev;
    size_t i;

    l->watch_calls++;
    for (i = 0; i < l->nfds; i++)
        if (l->fds[i] == fd)
            break;
    memset(&ev, 0, sizeof(ev));
    ev.events = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (!want_read && !want_write) {
        if (i < l->nfds) {
            if (epoll_ctl(l->epfd, EPOLL_CTL_DEL, fd, NULL) != 0)
                fail_msg("epoll DEL %d: %s", fd, strerror(errno));
            l->fds[i] = l->fds[--l->nfds];
        }
        return;
    }
    if (i < l->nfds) {
        if (epoll_ctl(l->epfd, EPOLL_CTL_MOD, fd, &ev) != 0)
            fail_msg("epoll MOD %d: %s", fd, strerror(errno));
        return;
    }
    if (l->nfds == sizeof(l->fds) / sizeof(l->fds[0]))
        fail_msg("too many resolver sockets");
    if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) != 0)
        fail_msg("epoll ADD %d: %s", fd, strerror(errno));
    l->fds[l->nfds++] = fd;
}

/* loop_once - wait for readiness or the resolver's next timeout (at most
 * max_ms) and hand it to the resolver. */
static void loop_once(loop *l, dns_t *d, int64_t max_ms)
{
    struct epoll_event ev[16];
    int64_t t = dns_timeout_ms(d);
    int wait = (int)(t < 0 || t > max_ms ? max_ms : t);
    int n = epoll_wait(l->epfd, ev, 16, wait);

    if (n < 0) {
        if (errno == EINTR)
            return;
        fail_msg("epoll_wait: %s", strerror(errno));
    }
    if (n == 0)
        dns_process(d, -1, false, false);
    for (int i = 0; i < n; i++)
        dns_process(d, ev[i].data.fd, (ev[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0,
                    (ev[i].events & EPOLLOUT) != 0);
}

/* loop_until - run until cond(arg) holds; fails after limit_ms. */
static void loop_until(loop *l, dns_t *d, bool (*cond)(dns_t *, void *), void *arg,
                       int64_t limit_ms)
{
    int64_t deadline = time_mono_ms() + limit_ms;

    while (!cond(d, arg)) {
        int64_t left = deadline - time_mono_ms();
        if (left <= 0)
            fail_msg("resolver: no progress in %lld ms", (long long)limit_ms);
        loop_once(l, d, left);
    }
}

static bool none_pending(dns_t *d, void *arg)
{
    (void)arg;
    return dns_pending(d) == 0;
}

/* drained - c-ares has nothing left, abandoned queries included. */
static bool drained(dns_t *d, void *arg)
{
    (void)arg;
    return dns_timeout_ms(d) < 0;
}

/* ------------------------------------------------------------ replies */

typedef struct result {
    int        calls;
    dns_status status;
    bool       nxdomain;
    unsigned   ttl;
    size_t     n;
    unsigned   pref[MAX_RR];
    char      *text[MAX_RR];
    char      *error;
    /* for callbacks that act on other queries */
    dns_query_t **abandon;      /* abandon this one from the callback */
    dns_t      *d;
    const char *chain_name;     /* start this lookup from the callback */
    struct result *chain_result;
} result;

static void result_clear(result *r)
{
    for (size_t i = 0; i < r->n && i < MAX_RR; i++)
        xfree(&r->text[i]);
    xfree(&r->error);
    memset(r, 0, sizeof(*r));
}

static void on_reply(void *arg, const dns_reply *reply)
{
    result *r = arg;

    r->calls++;
    r->status = reply->status;
    r->nxdomain = reply->nxdomain;
    r->ttl = reply->ttl;
    r->n = reply->n;
    assert_non_null(reply->error);
    r->error = xstrdup(reply->error);
    for (size_t i = 0; i < reply->n && i < MAX_RR; i++) {
        assert_non_null(reply->rr[i].text);
        r->pref[i] = reply->rr[i].pref;
        r->text[i] = xstrdup(reply->rr[i].text);
    }
    if (r->abandon != NULL)
        dns_abandon(r->abandon);
    if (r->chain_name != NULL)
        dns_query(r->d, r->chain_name, DNS_A, on_reply, r->chain_result);
}

static dns_t *resolver(loop *l, int64_t timeout_ms, int tries)
{
    const char *servers[] = {need_lab(), NULL};
    char *err = NULL;
    dns_t *d = dns_new(servers, timeout_ms, tries, watch, l, &err);

    if (d == NULL)
        fail_msg("dns_new(%s): %s", servers[0], err);
    return d;
}

static bool called(dns_t *d, void *arg)
{
    (void)d;
    return ((result *)arg)->calls > 0;
}

/* lookup - one query through the loop, its reply in *r. */
static void lookup(loop *l, dns_t *d, const char *name, dns_type type, result *r)
{
    result_clear(r);
    assert_non_null(dns_query(d, name, type, on_reply, r));
    assert_int_equal(r->calls, 0);
    loop_until(l, d, called, r, LOOKUP_LIMIT_MS);
    assert_int_equal(r->calls, 1);
}

/* ------------------------------------------------------------ cases */

static const char *status_name(dns_status s)
{
    return s == DNS_OK ? "OK" : s == DNS_NOTFOUND ? "NOTFOUND" : "TEMPFAIL";
}

static const struct lookup_case {
    const char *name;
    dns_type    type;
    dns_status  status;
    size_t      n;
    const char *first;       /* text of the first rr */
    unsigned    pref;        /* its preference */
    unsigned    ttl;         /* 0: not checked */
} lookups[] = {
    {"ok.test", DNS_A, DNS_OK, 1, "127.0.0.1", 0, 300},
    {"ok.test.", DNS_A, DNS_OK, 1, "127.0.0.1", 0, 300},
    {"mx.ok.test", DNS_AAAA, DNS_OK, 1, "::1", 0, 300},
    {"client1.ok.test", DNS_AAAA, DNS_OK, 1, "::1", 0, 300},
    {"ok.test", DNS_MX, DNS_OK, 1, "mx.ok.test", 10, 300},
    {"nullmx.test", DNS_MX, DNS_OK, 1, "", 0, 300},
    {"brokenmx.test", DNS_MX, DNS_OK, 1, "nowhere.brokenmx.test", 10, 300},
    {"ok.test", DNS_TXT, DNS_OK, 1, "v=spf1 ip4:127.0.0.0/8 -all", 0, 120},
    {"split.ok.test", DNS_TXT, DNS_OK, 1, "v=spf1 -all", 0, 300},
    {"2.0.0.127.dnsbl.test", DNS_A, DNS_OK, 1, "127.0.0.2", 0, 300},
    {"2.0.0.127.dnsbl.test", DNS_TXT, DNS_OK, 1, "listed for testing", 0, 300},
    {"10.0.0.127.dnsbl.test", DNS_A, DNS_OK, 1, "127.0.0.10", 0, 0},
    {"test.dbl.test", DNS_A, DNS_OK, 1, "127.0.1.2", 0, 0},
    {"127.0.0.1", DNS_PTR, DNS_OK, 1, "client1.ok.test", 0, 300},
    {"127.0.0.2", DNS_PTR, DNS_OK, 1, "host2.ok.test", 0, 300},
    {"127.0.0.3", DNS_PTR, DNS_OK, 1, "host3.ok.test", 0, 0},
    {"::1", DNS_PTR, DNS_OK, 1, "client1.ok.test", 0, 300},
    {"::ffff:127.0.0.2", DNS_PTR, DNS_OK, 1, "host2.ok.test", 0, 0},
    {"127.0.0.4", DNS_PTR, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"not-an-address", DNS_PTR, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"host3.ok.test", DNS_A, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"nosuch.ok.test", DNS_A, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"aonly.test", DNS_MX, DNS_NOTFOUND, 0, NULL, 0, 0},       /* the name exists */
    {"aonly.test", DNS_A, DNS_OK, 1, "127.0.0.1", 0, 0},
    {"nowhere.brokenmx.test", DNS_A, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"1.0.0.127.dnsbl.test", DNS_A, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"www.example.com", DNS_A, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"localhost.invalid", DNS_A, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"", DNS_A, DNS_NOTFOUND, 0, NULL, 0, 0},
    {"refused.test", DNS_A, DNS_TEMPFAIL, 0, NULL, 0, 0},
    {"www.refused.test", DNS_MX, DNS_TEMPFAIL, 0, NULL, 0, 0},
};

static void test_lookups(void **state)
{
    loop l;
    dns_t *d;
    result r = {0};
    static const char *const type_names[] = {"A", "AAAA", "MX", "PTR", "TXT"};

    (void)state;
    loop_init(&l);
    d = resolver(&l, 2000, 2);
    for (size_t i = 0; i < sizeof(lookups) / sizeof(lookups[0]); i++) {
        const struct lookup_case *c = &lookups[i];

        lookup(&l, d, c->name, c->type, &r);
        if (r.status != c->status)
            fail_msg("%s %s: status %s (%s), want %s", type_names[c->type], c->name,
                     status_name(r.status), r.error, status_name(c->status));
        if (r.n != c->n)
            fail_msg("%s %s: %zu records, want %zu", type_names[c->type], c->name, r.n, c->n);
        if (c->first != NULL && (strcmp(r.text[0], c->first) != 0 || r.pref[0] != c->pref))
            fail_msg("%s %s: got %u \"%s\", want %u \"%s\"", type_names[c->type], c->name,
                     r.pref[0], r.text[0], c->pref, c->first);
        if (c->ttl != 0 && r.ttl != c->ttl)
            fail_msg("%s %s: ttl %u, want %u", type_names[c->type], c->name, r.ttl, c->ttl);
        if (c->status != DNS_OK && r.ttl != 0)
            fail_msg("%s %s: ttl %u on a failure", type_names[c->type], c->name, r.ttl);
    }
    /* NXDOMAIN apart from "the name is there, without that type" */
    lookup(&l, d, "nosuch.ok.test", DNS_A, &r);
    assert_int_equal(r.status, DNS_NOTFOUND);
    assert_true(r.nxdomain);
    lookup(&l, d, "aonly.test", DNS_MX, &r);
    assert_int_equal(r.status, DNS_NOTFOUND);
    assert_false(r.nxdomain);
    lookup(&l, d, "ok.test", DNS_A, &r);
    assert_false(r.nxdomain);
    result_clear(&r);
    assert_int_equal(dns_pending(d), 0);
    dns_free(&d);
    assert_null(d);
    loop_close(&l);
}

/* without an event loop: no watch callback, dns_wait */
static void test_dns_wait(void **state)
{
    const char *servers[] = {need_lab(), NULL};
    result a = {0}, mx = {0};
    char *err = NULL;
    dns_t *d = dns_new(servers, 2000, 2, NULL, NULL, &err);

    (void)state;
    if (d == NULL)
        fail_msg("dns_new: %s", err);
    dns_query(d, "mx.ok.test", DNS_A, on_reply, &a);
    dns_query(d, "mx2.test", DNS_MX, on_reply, &mx);
    assert_int_equal(dns_pending(d), 2);
    dns_wait(d);
    assert_int_equal(dns_pending(d), 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.status, DNS_OK);
    assert_string_equal(a.text[0], "127.0.0.1");
    assert_int_equal(mx.calls, 1);
    assert_int_equal(mx.n, 3);
    dns_wait(d);                             /* nothing pending: returns */
    result_clear(&a);
    result_clear(&mx);
    dns_free(&d);
}

/* MX: sorted by preference, the two of preference 20 in both orders over
 * many lookups, and the smallest TTL (200) of the three records. */
static void test_mx_order(void **state)
{
    loop l;
    dns_t *d;
    result r = {0};
    int b_first = 0, c_first = 0;

    (void)state;
    loop_init(&l);
    d = resolver(&l, 2000, 2);
    for (int i = 0; i < 200; i++) {
        lookup(&l, d, "mx2.test", DNS_MX, &r);
        assert_int_equal(r.status, DNS_OK);
        assert_int_equal(r.n, 3);
        assert_int_equal(r.ttl, 200);
        assert_int_equal(r.pref[0], 10);
        assert_string_equal(r.text[0], "a.mx2.test");
        assert_int_equal(r.pref[1], 20);
        assert_int_equal(r.pref[2], 20);
        if (strcmp(r.text[1], "b.mx2.test") == 0 && strcmp(r.text[2], "c.mx2.test") == 0)
            b_first++;
        else if (strcmp(r.text[1], "c.mx2.test") == 0 && strcmp(r.text[2], "b.mx2.test") == 0)
            c_first++;
        else
            fail_msg("MX mx2.test: %s, %s", r.text[1], r.text[2]);
    }
    result_clear(&r);
    if (b_first == 0 || c_first == 0)
        fail_msg("equal preferences never shuffled: b first %d, c first %d", b_first, c_first);
    dns_free(&d);
    loop_close(&l);
}

/* a server that answers nothing: TEMPFAIL after about timeout * tries */
static void test_timeout(void **state)
{
    loop l;
    dns_t *d;
    result r = {0};
    int64_t start, took;

    (void)state;
    loop_init(&l);
    d = resolver(&l, 300, 1);
    start = time_mono_ms();
    lookup(&l, d, "www.timeout.test", DNS_A, &r);
    took = time_mono_ms() - start;
    assert_int_equal(r.status, DNS_TEMPFAIL);
    assert_int_equal(r.n, 0);
    if (took < 250 || took > 2000)
        fail_msg("timeout after %lld ms, want about 300", (long long)took);
    result_clear(&r);
    dns_free(&d);
    loop_close(&l);
}

/* a closed port: ICMP port unreachable, TEMPFAIL at once */
static void test_closed_port(void **state)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    char server[32];
    const char *servers[] = {server, NULL};
    char *err = NULL;
    loop l;
    dns_t *d;
    result r = {0};

    (void)state;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(s >= 0);
    assert_int_equal(bind(s, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&sin, &len), 0);
    snprintf(server, sizeof(server), "127.0.0.1:%u", ntohs(sin.sin_port));
    close(s);

    loop_init(&l);
    d = dns_new(servers, 2000, 1, watch, &l, &err);
    if (d == NULL)
        fail_msg("dns_new: %s", err);
    lookup(&l, d, "ok.test", DNS_A, &r);
    assert_int_equal(r.status, DNS_TEMPFAIL);
    result_clear(&r);
    dns_free(&d);
    loop_close(&l);
}

static void test_servers(void **state)
{
    static const char *const bad[] = {
        "bogus", "1.2.3", "999.1.1.1", "1.2.3.4:", "1.2.3.4:0", "1.2.3.4:99999",
        "1.2.3.4:53x", "[::1", "[::1]x", "[::1]:", "[1.2.3.4]:53", "", " 1.2.3.4",
        "1.2.3.4,5.6.7.8", "fe80::1%lo", "example.com",
    };
    static const char *const good[] = {
        "127.0.0.1", "127.0.0.1:53", "::1", "[::1]", "[::1]:5353", "192.0.2.1:65535",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *servers[] = {"127.0.0.1", bad[i], NULL};
        char *err = NULL;
        dns_t *d = dns_new(servers, 1000, 1, NULL, NULL, &err);

        if (d != NULL)
            fail_msg("server \"%s\" accepted", bad[i]);
        assert_non_null(err);
        assert_non_null(strstr(err, "bad DNS server"));
        xfree(&err);
    }
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        const char *servers[] = {good[i], NULL};
        char *err = NULL;
        dns_t *d = dns_new(servers, 1000, 1, NULL, NULL, &err);

        if (d == NULL)
            fail_msg("server \"%s\": %s", good[i], err);
        assert_null(err);
        assert_int_equal(dns_timeout_ms(d), -1);
        dns_free(&d);
    }
    {
        /* NULL and empty lists: the system's resolv.conf */
        const char *empty[] = {NULL};
        char *err = NULL;
        dns_t *d = dns_new(NULL, 1000, 1, NULL, NULL, &err);
        assert_non_null(d);
        dns_free(&d);
        d = dns_new(empty, 1000, 1, NULL, NULL, &err);
        assert_non_null(d);
        dns_free(&d);
    }
}

/* the callback never runs inside dns_query, even for an answer known at once */
static void test_no_callback_inside_query(void **state)
{
    loop l;
    dns_t *d;
    result r = {0};

    (void)state;
    loop_init(&l);
    d = resolver(&l, 2000, 1);
    assert_non_null(dns_query(d, "bad address", DNS_PTR, on_reply, &r));
    assert_int_equal(r.calls, 0);
    assert_int_equal(dns_pending(d), 1);
    assert_int_equal(dns_timeout_ms(d), 0);       /* come back at once */
    dns_process(d, -1, false, false);
    assert_int_equal(r.calls, 1);
    assert_int_equal(r.status, DNS_NOTFOUND);
    assert_int_equal(dns_pending(d), 0);
    assert_int_equal(dns_timeout_ms(d), -1);
    result_clear(&r);

    /* a label longer than 63 bytes: c-ares refuses it synchronously */
    {
        char name[100];
        memset(name, 'a', 70);
        strcpy(name + 70, ".test");
        assert_non_null(dns_query(d, name, DNS_A, on_reply, &r));
        assert_int_equal(r.calls, 0);
        loop_until(&l, d, called, &r, LOOKUP_LIMIT_MS);
        assert_int_equal(r.status, DNS_NOTFOUND);
        result_clear(&r);
    }
    dns_free(&d);
    loop_close(&l);
}

/* an abandoned query's callback never runs; the handle is freed when
 * c-ares is done with it (ASan sees any leak or use after free) */
static void test_abandon(void **state)
{
    loop l;
    dns_t *d;
    result gone = {0}, gone2 = {0}, gone3 = {0}, kept = {0};
    dns_query_t *q, *q2, *q3;

    (void)state;
    loop_init(&l);
    d = resolver(&l, 300, 1);
    q = dns_query(d, "ok.test", DNS_A, on_reply, &gone);
    q2 = dns_query(d, "www.timeout.test", DNS_A, on_reply, &gone2);
    q3 = dns_query(d, "not an address", DNS_PTR, on_reply, &gone3);   /* deferred */
    dns_query(d, "ok.test", DNS_MX, on_reply, &kept);
    assert_int_equal(dns_pending(d), 4);
    dns_abandon(&q);
    dns_abandon(&q2);
    dns_abandon(&q3);
    assert_null(q);
    assert_null(q2);
    assert_null(q3);
    dns_abandon(&q);                     /* NULL is fine */
    dns_abandon(NULL);
    assert_int_equal(dns_pending(d), 1);
    loop_until(&l, d, none_pending, NULL, LOOKUP_LIMIT_MS);
    assert_int_equal(kept.calls, 1);
    assert_int_equal(kept.status, DNS_OK);
    loop_until(&l, d, drained, NULL, LOOKUP_LIMIT_MS);   /* the timeout one too */
    assert_int_equal(gone.calls, 0);
    assert_int_equal(gone2.calls, 0);
    assert_int_equal(gone3.calls, 0);
    result_clear(&kept);
    dns_free(&d);
    loop_close(&l);
}

/* from inside a callback: abandon another query, abandon itself, start a
 * new lookup */
static void test_abandon_from_callback(void **state)
{
    loop l;
    dns_t *d;
    result first = {0}, slow = {0}, self = {0}, chained = {0};
    dns_query_t *slow_q, *self_q;

    (void)state;
    loop_init(&l);
    d = resolver(&l, 300, 1);
    slow_q = dns_query(d, "www.timeout.test", DNS_A, on_reply, &slow);
    first.abandon = &slow_q;
    first.d = d;
    first.chain_name = "host2.ok.test";
    first.chain_result = &chained;
    dns_query(d, "ok.test", DNS_A, on_reply, &first);
    self_q = dns_query(d, "ok.test", DNS_TXT, on_reply, &self);
    self.abandon = &self_q;
    loop_until(&l, d, none_pending, NULL, LOOKUP_LIMIT_MS);
    assert_int_equal(first.calls, 1);
    assert_null(slow_q);
    assert_int_equal(self.calls, 1);
    assert_null(self_q);
    assert_int_equal(chained.calls, 1);
    assert_int_equal(chained.status, DNS_OK);
    assert_string_equal(chained.text[0], "127.0.0.2");
    loop_until(&l, d, drained, NULL, LOOKUP_LIMIT_MS);
    assert_int_equal(slow.calls, 0);
    result_clear(&first);
    result_clear(&self);
    result_clear(&chained);
    dns_free(&d);
    loop_close(&l);
}

static void never(void *arg, const dns_reply *reply)
{
    (void)arg;
    fail_msg("callback after dns_free (status %d)", (int)reply->status);
}

/* dns_free with queries in flight, abandoned and deferred: no callbacks,
 * every socket unwatched, nothing leaked */
static void test_free_outstanding(void **state)
{
    loop l;
    dns_t *d;
    dns_query_t *q;

    (void)state;
    loop_init(&l);
    d = resolver(&l, 2000, 2);
    dns_query(d, "ok.test", DNS_A, never, NULL);
    dns_query(d, "www.timeout.test", DNS_MX, never, NULL);
    dns_query(d, "127.0.0.2", DNS_PTR, never, NULL);
    dns_query(d, "nonsense", DNS_PTR, never, NULL);
    q = dns_query(d, "ok.test", DNS_TXT, never, NULL);
    dns_abandon(&q);
    assert_int_equal(dns_pending(d), 4);
    dns_free(&d);
    assert_null(d);
    dns_free(&d);                              /* NULL is fine */
    loop_close(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_dns_wait),
        cmocka_unit_test(test_mx_order),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_closed_port),
        cmocka_unit_test(test_servers),
        cmocka_unit_test(test_no_callback_inside_query),
        cmocka_unit_test(test_abandon),
        cmocka_unit_test(test_abandon_from_callback),
        cmocka_unit_test(test_free_outstanding),
    };

    return cmocka_run_group_tests(tests, lab_setup, lab_teardown);
}
