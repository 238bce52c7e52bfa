/* discovery_test.c - replicas behind one name (lib/discovery.h), against
 * a DNS server whose answers the test changes while it runs
 * (tests/dns/zone_server.py, started here on a random port), and the
 * endpoint helpers that go with it (lib/endpoints.h).
 *
 * The loop is driven the way a stage drives it: poll discovery_fd() for
 * at most discovery_timeout_ms(), then discovery_tick().  Every wait is
 * for a condition with a deadline.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "config.h"
#include "discovery.h"
#include "endpoints.h"
#include "timeutil.h"
#include "xalloc.h"
#include "zmq_util.h"

#define INTERVAL "200ms"        /* discovery_interval in these tests */
#define CHANGE_LIMIT_MS 5000    /* a change must be seen long before this */

static char dir[64];            /* the DNS server's zone, port file, correio.conf */
static pid_t server = -1;
static config_t *cfg;

/* ------------------------------------------------------------ the DNS server */

static char *find_script(void)
{
    char exe[PATH_MAX];
    ssize_t n;

    if (access("tests/dns/zone_server.py", R_OK) == 0)
        return xstrdup("tests/dns/zone_server.py");
    n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    for (int up = 0; up < 3; up++) {               /* REPO/build/tests/discovery_test */
        char *slash = strrchr(exe, '/');
        if (slash == NULL)
            return NULL;
        *slash = 0;
    }
    return xasprintf("%s/tests/dns/zone_server.py", exe);
}

/* zone - write the zone file (atomically: the server reads it per query). */
static void zone(const char *text)
{
    char *tmp = xasprintf("%s/zone.tmp", dir), *path = xasprintf("%s/zone", dir);
    FILE *f = fopen(tmp, "w");

    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    assert_int_equal(rename(tmp, path), 0);
    xfree(&tmp);
    xfree(&path);
}

static int setup(void **state)
{
    char *script = find_script(), *portfile, *conf;
    int64_t deadline;
    unsigned port = 0;
    FILE *f;

    (void)state;
    strcpy(dir, "/tmp/correio-disc.XXXXXX");
    if (script == NULL || mkdtemp(dir) == NULL)
        return -1;
    zone("");
    portfile = xasprintf("%s/port", dir);
    server = fork();
    if (server == 0) {
        char *zf = xasprintf("%s/zone", dir);
        execlp("python3", "python3", script, zf, portfile, (char *)NULL);
        _exit(127);
    }
    deadline = time_mono_ms() + 10000;
    while (time_mono_ms() < deadline) {
        if ((f = fopen(portfile, "r")) != NULL) {
            if (fscanf(f, "%u", &port) != 1)
                port = 0;
            fclose(f);
            if (port)
                break;
        }
        poll(NULL, 0, 20);
    }
    xfree(&portfile);
    xfree(&script);
    if (port == 0) {
        fprintf(stderr, "# discovery_test: tests/dns/zone_server.py did not start\n");
        return -1;
    }
    conf = xasprintf("%s/correio.conf", dir);
    f = fopen(conf, "w");
    fprintf(f, "dns_servers = 127.0.0.1:%u\ndns_timeout = 1s\ndns_tries = 1\n"
               "discovery_interval = " INTERVAL "\n", port);
    fclose(f);
    xfree(&conf);
    char *err = NULL;
    cfg = config_load(dir, &err);
    if (cfg == NULL) {
        fprintf(stderr, "# %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    char *cmd;

    (void)state;
    config_free(&cfg);
    if (server > 0) {
        kill(server, SIGTERM);
        waitpid(server, NULL, 0);
    }
    if (dir[0]) {
        cmd = xasprintf("rm -rf '%s'", dir);
        if (system(cmd) != 0)
            fprintf(stderr, "# could not remove %s\n", dir);
        xfree(&cmd);
    }
    return 0;
}

/* ------------------------------------------------------------ helpers */

/* What the callback saw. */
typedef struct seen {
    int added, removed;
} seen;

static void on_change(void *ctx, const char *addr, bool added)
{
    seen *s = ctx;

    (void)addr;
    if (added)
        s->added++;
    else
        s->removed++;
}

static bool has(discovery_t *d, const char *addr)
{
    for (const char *const *p = discovery_addrs(d, NULL); *p; p++)
        if (strcmp(*p, addr) == 0)
            return true;
    return false;
}

/* run_until - drive d like a stage loop until its set has n addresses
 * (and, when addr is not NULL, addr is (want) or is not (!want) in it). */
static bool run_until(discovery_t *d, size_t n, const char *addr, bool want)
{
    int64_t deadline = time_mono_ms() + CHANGE_LIMIT_MS;

    for (;;) {
        size_t got;
        int64_t now = time_mono_ms(), t = discovery_timeout_ms(d, now);
        struct pollfd p = { .fd = discovery_fd(d), .events = POLLIN };

        discovery_addrs(d, &got);
        if (got == n && (addr == NULL || has(d, addr) == want))
            return true;
        if (now >= deadline)
            return false;
        if (t < 0 || t > deadline - now)
            t = deadline - now;
        poll(&p, 1, (int)t);
        discovery_tick(d, time_mono_ms());
    }
}

/* run_for - drive d like a stage loop for ms. */
static void run_for(discovery_t *d, int64_t ms)
{
    int64_t until = time_mono_ms() + ms;

    for (int64_t now = time_mono_ms(); now < until; now = time_mono_ms()) {
        int64_t t = discovery_timeout_ms(d, now);
        struct pollfd p = { .fd = discovery_fd(d), .events = POLLIN };

        if (t < 0 || t > until - now)
            t = until - now;
        poll(&p, 1, (int)t);
        discovery_tick(d, time_mono_ms());
    }
}

/* ------------------------------------------------------------ cases */

/* Endpoints that stand for themselves are reported once, never asked. */
static void test_fixed(void **state)
{
    seen s = { 0 };
    size_t n;
    char *err = NULL;
    discovery_t *d;

    (void)state;
    d = discovery_watch("ipc:///tmp/x", cfg, on_change, &s, &err);
    assert_non_null(d);
    assert_int_equal(discovery_fd(d), -1);
    assert_int_equal(discovery_timeout_ms(d, time_mono_ms()), -1);
    assert_string_equal(discovery_addrs(d, &n)[0], "ipc:///tmp/x");
    assert_int_equal(n, 1);
    discovery_free(&d);

    d = discovery_watch("tcp://localhost:7000", cfg, on_change, &s, &err);
    assert_non_null(d);
    discovery_addrs(d, &n);
    assert_int_equal(n, 2);                 /* 127.0.0.1 and ::1 */
    assert_true(has(d, "tcp://127.0.0.1:7000"));
    assert_true(has(d, "tcp://[::1]:7000"));
    discovery_free(&d);

    d = discovery_watch("tcp://[::1]:7000", cfg, on_change, &s, &err);
    assert_non_null(d);
    assert_true(has(d, "tcp://[::1]:7000"));
    discovery_free(&d);
    assert_int_equal(s.added, 4);
    assert_int_equal(s.removed, 0);

    assert_null(discovery_watch("tcp://*:7000", cfg, on_change, &s, &err));
    assert_non_null(strstr(err, "wildcard"));
    xfree(&err);
    assert_null(discovery_watch("tcp://nameonly", cfg, on_change, &s, &err));
    xfree(&err);
    assert_null(discovery_watch("tcp://:7000", cfg, on_change, &s, &err));
    xfree(&err);
}

/* One, two, three addresses; one goes; the name vanishes (the last set
 * stays); it comes back with another set. */
static void test_follow(void **state)
{
    seen s = { 0 };
    char *err = NULL;
    discovery_t *d;

    (void)state;
    zone("svc.test A 127.0.0.2\n");
    d = discovery_watch("tcp://svc.test:7001", cfg, on_change, &s, &err);
    assert_non_null(d);
    assert_true(discovery_fd(d) >= 0);
    assert_true(run_until(d, 1, "tcp://127.0.0.2:7001", true));    /* the first, at once */
    assert_int_equal(s.added, 1);

    zone("svc.test A 127.0.0.2\nsvc.test A 127.0.0.3\n");
    assert_true(run_until(d, 2, "tcp://127.0.0.3:7001", true));
    zone("svc.test A 127.0.0.2\nsvc.test A 127.0.0.3\nsvc.test AAAA ::1\n");
    assert_true(run_until(d, 3, "tcp://[::1]:7001", true));
    assert_int_equal(s.added, 3);
    assert_int_equal(s.removed, 0);

    zone("svc.test A 127.0.0.3\nsvc.test AAAA ::1\n");              /* 127.0.0.2 scaled away */
    assert_true(run_until(d, 2, "tcp://127.0.0.2:7001", false));
    assert_int_equal(s.removed, 1);

    zone("");                                   /* NXDOMAIN: keep what we have */
    run_for(d, 4 * 200);                        /* several lookups fail */
    {
        size_t n;
        discovery_addrs(d, &n);
        assert_int_equal(n, 2);
    }
    assert_int_equal(s.removed, 1);

    zone("svc.test A 127.0.0.4\n");            /* back, elsewhere */
    assert_true(run_until(d, 1, "tcp://127.0.0.4:7001", true));
    assert_int_equal(s.removed, 3);
    assert_int_equal(s.added, 4);
    discovery_free(&d);
}

/* recv_all - frames waiting on pull within ms, counted. */
static int recv_all(void *pull, int ms)
{
    int n = 0;
    char buf[16];
    int64_t until = time_mono_ms() + ms;

    while (time_mono_ms() < until) {
        zmq_pollitem_t it = { pull, 0, ZMQ_POLLIN, 0 };
        if (zmq_poll(&it, 1, 50) > 0)
            while (zmq_recv(pull, buf, sizeof(buf), ZMQ_DONTWAIT) >= 0)
                n++;
    }
    return n;
}

/* A PUSH spreads over every replica; a removed one gets nothing more. */
static void test_socket(void **state)
{
    void *ctx = zmq_ctx_new(), *push, *a, *b;
    discovery_t *d;
    int one = 1, got_a, got_b;
    char ep[64];
    unsigned port = 0;
    size_t len = sizeof(ep);

    (void)state;
    a = zmq_util_socket(ctx, ZMQ_PULL, 1000);
    zmq_util_bind(a, "tcp://127.0.0.2:0");
    assert_int_equal(zmq_getsockopt(a, ZMQ_LAST_ENDPOINT, ep, &len), 0);
    port = (unsigned)atoi(strrchr(ep, ':') + 1);
    b = zmq_util_socket(ctx, ZMQ_PULL, 1000);
    snprintf(ep, sizeof(ep), "tcp://127.0.0.3:%u", port);
    zmq_util_bind(b, ep);

    zone("work.test A 127.0.0.2\nwork.test A 127.0.0.3\n");
    push = zmq_util_socket(ctx, ZMQ_PUSH, 1000);
    assert_int_equal(zmq_setsockopt(push, ZMQ_IMMEDIATE, &one, sizeof(one)), 0);
    snprintf(ep, sizeof(ep), "tcp://work.test:%u", port);
    d = discovery_new(push, ep, "classifier", cfg);
    assert_true(run_until(d, 2, NULL, true));
    {   /* both connections up before sending, so PUSH spreads over both */
        int64_t until = time_mono_ms() + CHANGE_LIMIT_MS;
        int sent = 0;
        got_a = got_b = 0;
        while ((got_a == 0 || got_b == 0) && time_mono_ms() < until) {
            for (int i = 0; i < 20; i++)
                if (zmq_send(push, "x", 1, ZMQ_DONTWAIT) == 1)
                    sent++;
            got_a += recv_all(a, 100);
            got_b += recv_all(b, 100);
        }
        assert_true(got_a > 0);
        assert_true(got_b > 0);
        assert_int_equal(got_a + got_b, sent);
    }

    zone("work.test A 127.0.0.3\n");            /* a is scaled away */
    snprintf(ep, sizeof(ep), "tcp://127.0.0.2:%u", port);
    assert_true(run_until(d, 1, ep, false));
    recv_all(a, 100);                           /* what was in flight */
    for (int i = 0; i < 20; i++)
        assert_int_equal(zmq_send(push, "y", 1, ZMQ_DONTWAIT), 1);
    got_b = recv_all(b, 300);
    got_a = recv_all(a, 100);
    assert_int_equal(got_a, 0);
    assert_int_equal(got_b, 20);

    discovery_free(&d);
    zmq_close(push);
    zmq_close(a);
    zmq_close(b);
    zmq_ctx_term(ctx);
}

/* The consumer's side of one parameter, and the origin an ingress gives. */
static void test_bind_and_advertise(void **state)
{
    char *s;

    (void)state;
    s = endpoints_bind_form("tcp://classifier.test:7001");
    assert_string_equal(s, "tcp://*:7001");
    xfree(&s);
    s = endpoints_bind_form("tcp://127.0.0.2:7001");
    assert_string_equal(s, "tcp://127.0.0.2:7001");
    xfree(&s);
    s = endpoints_bind_form("ipc:///run/correio/x");
    assert_string_equal(s, "ipc:///run/correio/x");
    xfree(&s);
    s = endpoints_bind_form("tcp://localhost:7001");
    assert_string_equal(s, "tcp://localhost:7001");
    xfree(&s);

    s = endpoints_advertise(cfg, "ipc:///run/correio/ingress-events", "");
    assert_string_equal(s, "ipc:///run/correio/ingress-events");
    xfree(&s);
    s = endpoints_advertise(cfg, "tcp://ingress.test:7002", "tcp://192.0.2.9:7002");
    assert_string_equal(s, "tcp://192.0.2.9:7002");
    xfree(&s);
    s = endpoints_advertise(cfg, "tcp://127.0.0.5:7002", "");
    assert_string_equal(s, "tcp://127.0.0.5:7002");
    xfree(&s);
    /* a name: the address this host reaches it from (on loopback: 127.x) */
    zone("ingress.test A 127.0.0.6\n");
    s = endpoints_advertise(cfg, "tcp://ingress.test:7002", "");
    assert_true(strncmp(s, "tcp://127.", 10) == 0);
    assert_non_null(strstr(s, ":7002"));
    xfree(&s);
    /* a name that does not resolve and a wildcard: still an address */
    zone("");
    s = endpoints_advertise(cfg, "tcp://gone.test:7002", "");
    assert_true(strncmp(s, "tcp://", 6) == 0 && strstr(s, ":7002") && !strstr(s, "gone"));
    xfree(&s);
    s = endpoints_advertise(cfg, "tcp://*:7002", "");
    assert_true(strncmp(s, "tcp://", 6) == 0 && !strchr(s + 6, '*'));
    xfree(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed),
        cmocka_unit_test(test_follow),
        cmocka_unit_test(test_socket),
        cmocka_unit_test(test_bind_and_advertise),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
