/* metrics_test.c - the metrics registry's exposition text (format
 * 0.0.4), the readiness check, and the two shapes of a log line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "metrics.h"

/* has_line - does text hold exactly this line? */
static bool has_line(const char *text, const char *line)
{
    size_t n = strlen(line);

    for (const char *p = text; (p = strstr(p, line)) != NULL; p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n')
            return true;
    return false;
}

static int count(const char *text, const char *what)
{
    int n = 0;

    for (const char *p = text; (p = strstr(p, what)) != NULL; p++)
        n++;
    return n;
}

static void test_counters_and_gauges(void **state)
{
    char *t;

    (void)state;
    metrics_reset();
    t = metrics_render();
    assert_string_equal(t, "");         /* nothing touched: nothing shown */
    free(t);

    metrics_inc("correio_ingress_messages_total", "result=\"accepted\"");
    metrics_inc("correio_ingress_messages_total", "result=\"accepted\"");
    metrics_add("correio_ingress_received_bytes_total", NULL, 1234);
    metrics_incf("correio_delivery_results_total", "dest=\"%s\",result=\"%s\"", "local", "sent");
    metrics_set("correio_ingress_spool_messages", NULL, 7);
    metrics_set("correio_ingress_spool_messages", NULL, 3);
    metrics_add("correio_ingress_received_bytes_total", NULL, 0.5);
    t = metrics_render();
    assert_true(has_line(t, "# TYPE correio_ingress_messages_total counter"));
    assert_true(has_line(t, "correio_ingress_messages_total{result=\"accepted\"} 2"));
    assert_true(has_line(t, "correio_ingress_received_bytes_total 1234.5"));
    assert_true(has_line(t, "# TYPE correio_ingress_spool_messages gauge"));
    assert_true(has_line(t, "correio_ingress_spool_messages 3"));
    assert_true(has_line(t, "correio_delivery_results_total{dest=\"local\",result=\"sent\"} 1"));
    assert_int_equal(count(t, "# HELP correio_ingress_messages_total "), 1);
    assert_int_equal(count(t, "correio_router_"), 0);
    /* HELP and TYPE come before the family's samples */
    assert_true(strstr(t, "# TYPE correio_ingress_messages_total")
                < strstr(t, "correio_ingress_messages_total{"));
    assert_int_equal(t[strlen(t) - 1], '\n');
    free(t);
}

static void test_histogram(void **state)
{
    char *t;

    (void)state;
    metrics_reset();
    metrics_observe("correio_classifier_scan_seconds", NULL, 0.003);
    metrics_observe("correio_classifier_scan_seconds", NULL, 0.2);
    metrics_observe("correio_classifier_scan_seconds", NULL, 7200);    /* above every bound */
    metrics_observe("correio_pipeline_latency_seconds", "dest=\"local\"", 1);
    t = metrics_render();
    assert_true(has_line(t, "# TYPE correio_classifier_scan_seconds histogram"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_bucket{le=\"0.001\"} 0"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_bucket{le=\"0.005\"} 1"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_bucket{le=\"0.1\"} 1"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_bucket{le=\"0.25\"} 2"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_bucket{le=\"3600\"} 2"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_bucket{le=\"+Inf\"} 3"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_count 3"));
    assert_true(has_line(t, "correio_classifier_scan_seconds_sum 7200.203"));
    /* labels and le together; a value on a bound falls in that bucket */
    assert_true(has_line(t, "correio_pipeline_latency_seconds_bucket{dest=\"local\",le=\"0.5\"} 0"));
    assert_true(has_line(t, "correio_pipeline_latency_seconds_bucket{dest=\"local\",le=\"1\"} 1"));
    assert_true(has_line(t, "correio_pipeline_latency_seconds_count{dest=\"local\"} 1"));
    free(t);
    metrics_reset();
}

static bool not_ready(void *ctx, char *why, size_t size)
{
    snprintf(why, size, "%s", (const char *)ctx);
    return false;
}

static void test_ready(void **state)
{
    char why[64];

    (void)state;
    assert_true(health_ready(why, sizeof(why)));        /* no check: ready */
    health_set_ready_check(not_ready, "spool full");
    assert_false(health_ready(why, sizeof(why)));
    assert_string_equal(why, "spool full");
    health_set_ready_check(NULL, NULL);
    assert_true(health_ready(why, sizeof(why)));
}

/* log_capture - one log_warn line written to a file as stderr, with
 * JOURNAL_STREAM naming that file (journal) or not. */
static void log_capture(bool journal, char *out, size_t size)
{
    char path[] = "/tmp/metrics_test_logXXXXXX";
    int fd = mkstemp(path), saved = dup(STDERR_FILENO);
    struct stat sb;
    char js[64];
    ssize_t n;

    assert_true(fd >= 0 && saved >= 0);
    assert_int_equal(fstat(fd, &sb), 0);
    snprintf(js, sizeof(js), "%llu:%llu", (unsigned long long)sb.st_dev,
             journal ? (unsigned long long)sb.st_ino : 1ULL);
    setenv("JOURNAL_STREAM", js, 1);
    dup2(fd, STDERR_FILENO);
    log_init("unit");
    log_warn("disk %s", "full");
    dup2(saved, STDERR_FILENO);
    close(saved);
    n = pread(fd, out, size - 1, 0);
    assert_true(n > 0);
    out[n] = 0;
    close(fd);
    unlink(path);
    unsetenv("JOURNAL_STREAM");
}

static void test_log_shapes(void **state)
{
    char line[512];
    long pid = (long)getpid();
    char want[128];

    (void)state;
    log_capture(true, line, sizeof(line));
    snprintf(want, sizeof(want), "<4>correio/unit[%ld]: warning: disk full\n", pid);
    assert_string_equal(line, want);

    log_capture(false, line, sizeof(line));    /* the variable names another stream */
    /* 2026-11-23T08:11:00.042Z HOST correio/unit[PID]: warning: disk full */
    assert_int_equal(strlen(line) > 25, 1);
    assert_true(line[4] == '-' && line[7] == '-' && line[10] == 'T' && line[13] == ':'
                && line[19] == '.' && line[23] == 'Z' && line[24] == ' ');
    snprintf(want, sizeof(want), " correio/unit[%ld]: warning: disk full\n", pid);
    assert_non_null(strstr(line, want));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counters_and_gauges),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_ready),
        cmocka_unit_test(test_log_shapes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
