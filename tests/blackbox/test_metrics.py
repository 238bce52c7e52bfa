"""test_metrics.py - each stage's Prometheus /metrics, /healthz and /ready
(STAGE_metrics_listen), and `correio health [--ready] [STAGE...]`.

counters: a few messages (and one refused recipient) through the whole
pipeline move the counters and histograms of every stage by exactly that
much; every line of every scrape is valid exposition text 0.0.4.
health: all five stages live and ready (HTTP and `correio health`, exit
0); a stage stopped with SIGSTOP fails `correio health` (exit 1, "no
answer") and its /healthz while the others pass.  (A loop stuck while
the HTTP thread runs gets 503 from /healthz: the probe asks the loop.)
ready_spool_full: with spool_message_limit = 2 and the classifier stopped,
two accepted messages fill the spool: the ingress's /ready answers 503 and
`correio health --ready ingress` exits 1, MAIL FROM gets 451; after the
classifier resumes both are delivered and /ready is 200 again.
"""

import os
import re
import signal
import smtplib
import sys
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, STAGES, case, check, free_port, main, send_mail,  # noqa: E402
                     simple_message, unique, wait_for)

DEMO = "demo@example.test"
ALL = ("ingress", "classifier", "router", "delivery", "fetcher")


def metrics_conf(**more):
    """A configuration with a metrics port per stage (its own ports: the
    shared instance still runs while a fresh one starts)."""
    conf = {"%s_metrics_listen" % s: "127.0.0.1:%d" % free_port() for s in ALL}
    conf["metrics_health_timeout"] = "1s"
    conf.update(more)
    return conf


CONF = metrics_conf()
SPOOL_CONF = metrics_conf(spool_message_limit="2")

SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
                    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*\})? '
                    r'(-?[0-9.e+-]+|[+-]Inf|NaN)$')


def http(c, stage, path, method="GET", timeout=10):
    """(status, body) of one request to the stage's metrics port."""
    req = urllib.request.Request("http://%s%s" % (c.conf["%s_metrics_listen" % stage], path),
                                 method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(c, stage):
    """{'name{labels}': value} of the stage's /metrics, checking the format."""
    status, body = http(c, stage, "/metrics")
    check(status == 200, "%s /metrics: %d" % (stage, status))
    out = {}
    for line in body.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        check(SAMPLE.match(line), "%s /metrics: bad line %r" % (stage, line))
        key, value = line.rsplit(" ", 1)
        check(key not in out, "%s /metrics: %s twice" % (stage, key))
        out[key] = float(value)
    return out


def value(c, stage, key):
    return scrape(c, stage).get(key, 0.0)


@case(conf=CONF)
def test_counters(c):
    before = {s: scrape(c, s) for s in ("ingress", "classifier", "router", "delivery")}

    def moved(stage, key):
        return scrape(c, stage).get(key, 0.0) - before[stage].get(key, 0.0)

    n = 3
    for i in range(n):
        send_mail(c, "sender@client.example", [DEMO], simple_message(unique("metrics")))
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        s.mail("sender@client.example")
        code, _ = s.rcpt("nobody@example.test")
        check(code >= 500, "unknown local recipient: %d" % code)
    c.wait_for_maildir_count(DEMO, n, timeout=30)

    key = 'correio_delivery_results_total{dest="local",result="sent"}'
    wait_for(lambda: moved("delivery", key) == n, 10, what="delivery results = %d" % n)
    check(moved("ingress", 'correio_ingress_messages_total{result="accepted"}') == n,
          "ingress accepted")
    check(moved("ingress", "correio_ingress_received_bytes_total") > 100 * n, "ingress bytes")
    check(moved("ingress", 'correio_ingress_rejects_total{class="5xx"}') >= 1, "ingress 5xx")
    check(moved("ingress", "correio_ingress_sessions_total") >= n + 1, "ingress sessions")
    check(moved("classifier", 'correio_classifier_messages_total{verdict="ham"}') == n,
          "classifier ham")
    check(moved("classifier", "correio_classifier_scan_seconds_count") == n, "scan histogram")
    check(moved("router", 'correio_router_routed_total{kind="maildir"}') == n, "router maildir")
    check(moved("delivery", 'correio_pipeline_latency_seconds_count{dest="local"}') == n,
          "delivery latency histogram")
    check(value(c, "delivery", 'correio_pipeline_latency_seconds_bucket{dest="local",le="+Inf"}')
          == value(c, "delivery", 'correio_pipeline_latency_seconds_count{dest="local"}'),
          "+Inf bucket == count")
    # the queue gauges are counted every 5 s: they show the queue drained
    wait_for(lambda: 'correio_delivery_queue_messages{queue="active"}' in scrape(c, "delivery")
             and value(c, "delivery", 'correio_delivery_queue_messages{queue="active"}') == 0,
             12, what="delivery queue gauges")
    check(scrape(c, "fetcher") is not None, "fetcher /metrics")


@case(conf=CONF)
def test_health(c):
    for s in STAGES:
        for path in ("/healthz", "/ready"):
            status, body = http(c, s, path)
            check(status == 200 and body.startswith("ok: "), "%s %s: %d %r" % (s, path, status, body))
    check(http(c, "ingress", "/nope")[0] == 404, "unknown path: 404")
    check(http(c, "ingress", "/metrics", method="POST")[0] == 405, "POST: 405")
    r = c.ctl("health")
    check(r.returncode == 0 and r.stdout.count(": ok (") == len(STAGES),
          "health: %d %r %r" % (r.returncode, r.stdout, r.stderr))
    r = c.ctl("health", "--ready")
    check(r.returncode == 0 and "ingress: ok (ingress ready)" in r.stdout,
          "health --ready: %d %r" % (r.returncode, r.stdout))
    check(c.ctl("health", "nosuchstage").returncode == 2, "unknown stage: exit 2")

    pid = c.stage_pid("router")
    os.kill(pid, signal.SIGSTOP)
    try:
        r = c.ctl("health")
        check(r.returncode == 1 and re.search(r"^router: fail \(no answer", r.stdout, re.M),
              "health with the router stopped: %d %r" % (r.returncode, r.stdout))
        check(c.ctl("health", "ingress", "delivery").returncode == 0, "the others are fine")
        # SIGSTOP stops the HTTP thread too: the probe gets no answer, as
        # an orchestrator's probe of a hung process would
        try:
            status = http(c, "router", "/healthz", timeout=2)[0]
        except OSError:
            status = None
        check(status != 200, "router /healthz while stopped: %s" % status)
    finally:
        os.kill(pid, signal.SIGCONT)
    wait_for(lambda: c.ctl("health", "router").returncode == 0, 10, what="router healthy again")


@case(conf=SPOOL_CONF, fresh=True)
def test_ready_spool_full(c):
    pid = c.stage_pid("classifier")
    os.kill(pid, signal.SIGSTOP)
    try:
        for i in range(2):
            send_mail(c, "sender@client.example", [DEMO], simple_message(unique("full")))
        status, body = http(c, "ingress", "/ready")
        check(status == 503 and "spool full" in body, "/ready: %d %r" % (status, body))
        check(http(c, "ingress", "/healthz")[0] == 200, "full but alive")
        r = c.ctl("health", "--ready", "ingress")
        check(r.returncode == 1 and "not ready: spool full" in r.stdout,
              "health --ready: %d %r" % (r.returncode, r.stdout))
        check(value(c, "ingress", "correio_ingress_spool_messages") == 2, "spool gauge 2")
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
            s.ehlo("client.example")
            code, _ = s.mail("sender@client.example")
            check(code == 451, "MAIL FROM with a full spool: %d" % code)
    finally:
        os.kill(pid, signal.SIGCONT)
    c.wait_for_maildir_count(DEMO, 2, timeout=30)
    wait_for(lambda: http(c, "ingress", "/ready")[0] == 200, 15, what="ingress ready again")
    check(value(c, "ingress", "correio_ingress_spool_messages") == 0, "spool gauge 0")


if __name__ == "__main__":
    sys.exit(main(globals()))
