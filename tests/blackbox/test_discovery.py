#!/usr/bin/python3
"""test_discovery.py - producers follow the replicas behind one name
(lib/discovery.h, DESIGN.md "Sockets").

The stages run standalone, each `correio-STAGE -c DIR` in the foreground
with its own configuration directory (what `correio run` would start,
minus the supervisor): ingress, router and delivery share one directory;
each classifier has its own (its own admin socket, data directory and
listening address 127.0.0.N:PORT, one port for all).  The ingress's
classifier_endpoint is tcp://classifiers.test:PORT, answered by
tests/dns/zone_server.py, whose zone this test rewrites: two classifiers
at first, then one leaves, then a third joins.  Which classifier did the
work is read from their logs ("QID: classified ...").

    BLACKBOX_ONLY=discovery sh tests/run-blackbox.sh build
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD, REPO, SLOW, Correio, TestFailure, check,  # noqa: E402
                     shared_port, simple_message, unique, wait_for, SAN_PATTERNS, stage_dir)

INTERVAL = "500ms"              # discovery_interval
ZONE_SERVER = os.path.join(REPO, "tests", "dns", "zone_server.py")
RCPT = "demo@example.test"


class Cluster:
    """A zone server, ingress + router + delivery, and classifiers."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="correio-disc-")
        os.chmod(self.top, 0o755)
        self.procs = []             # (name, Popen, logpath)
        self.port = shared_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
        self.zone_path = os.path.join(self.top, "zone")
        self.zone([])
        portfile = os.path.join(self.top, "dnsport")
        self.dns = subprocess.Popen([sys.executable, ZONE_SERVER, self.zone_path, portfile],
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: os.path.exists(portfile), 10, what="the zone server's port")
        with open(portfile) as f:
            self.dns_server = "127.0.0.1:%d" % int(f.read())
        stage_dir(os.path.join(self.top, "main"))
        self.main = Correio(tmpdir=os.path.join(self.top, "main"), **self.common(),
                            classifier_endpoint="tcp://classifiers.test:%d" % self.port,
                            ingress_events_endpoint="ipc://%s/main/run/ingress-events" % self.top,
                            router_endpoint="ipc://%s/main/run/router" % self.top)

    def common(self):
        return dict(dns_servers=self.dns_server, dns_timeout="1s", dns_tries="1",
                    discovery_interval=INTERVAL, smtpd_peername_lookup="no",
                    curve_allow_plaintext="yes")      # CurveZMQ is not what is tested here

    def zone(self, addrs):
        tmp = self.zone_path + ".tmp"
        with open(tmp, "w") as f:
            for a in addrs:
                f.write("classifiers.test A %s\n" % a)
        os.rename(tmp, self.zone_path)

    def start(self, stage, confdir, label, ready="started"):
        log = os.path.join(self.top, label + ".log")
        with open(log, "ab") as out:
            p = subprocess.Popen([os.path.join(BUILD, "bin", "correio-" + stage), "-c", confdir],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True)
        self.procs.append((label, p, log))
        wait_for(lambda: ready in self.log(label) or p.poll() is not None, 30,
                 what=label + " to start")
        check(p.poll() is None, "%s exited at start:\n%s" % (label, self.log(label)[-2000:]))
        return p

    def start_classifier(self, addr):
        label = "classifier-" + addr
        d = os.path.join(self.top, label)
        stage_dir(d)
        shutil.copy(os.path.join(self.main.dir, "users"), d)
        Correio(tmpdir=d, **self.common(),
                classifier_endpoint="tcp://%s:%d" % (addr, self.port),
                classifier_admin_endpoint="ipc://%s/run/classifier-admin" % d,
                router_endpoint=self.main.conf["router_endpoint"])
        return self.start("classifier", d, label)

    def start_pipeline(self):
        for stage in ("delivery", "router"):
            self.start(stage, self.main.dir, stage)
        self.start("ingress", self.main.dir, "ingress", ready="listening on")

    def log(self, label):
        try:
            with open(os.path.join(self.top, label + ".log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def classified(self, addr):
        return self.log("classifier-" + addr).count(": classified ")

    def stop(self):
        for label, p, _ in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for label, p, _ in self.procs:
            try:
                p.wait(20 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self.dns.poll() is None:
            self.dns.terminate()
            self.dns.wait(5)
        return [(label, line) for label, _, _ in self.procs
                for line in self.log(label).splitlines() if SAN_PATTERNS.search(line)]


def send_batch(c, n, tag):
    with c.main.smtp() as s:
        for i in range(n):
            s.sendmail("sender@client.example", [RCPT],
                       simple_message("%s-%d" % (tag, i), to=RCPT))


def run():
    c = Cluster()
    ok = False
    try:
        port = c.port
        a2, a3, a4 = "127.0.0.2", "127.0.0.3", "127.0.0.4"
        c.zone([a2, a3])
        c.start_classifier(a2)
        c.start_classifier(a3)
        c.start_pipeline()
        ing = lambda: c.log("ingress")  # noqa: E731
        wait_for(lambda: "%s:%d joined" % (a3, port) in ing()
                 and "%s:%d joined" % (a2, port) in ing(), 10, what="both classifiers joined")

        # 200 messages: both classifiers work, all delivered
        t0 = time.monotonic()
        send_batch(c, 200, unique("d"))
        c.main.wait_for_maildir_count(RCPT, 200, timeout=60)
        n2, n3 = c.classified(a2), c.classified(a3)
        check(n2 > 0 and n3 > 0, "both classifiers should have got work: %d, %d" % (n2, n3))
        print("# 200 delivered in %.1fs; classifier %s: %d, %s: %d"
              % (time.monotonic() - t0, a2, n2, a3, n3), flush=True)

        # one leaves DNS: within a few seconds it gets no new work
        t0 = time.monotonic()
        c.zone([a2])
        wait_for(lambda: "%s:%d left" % (a3, port) in ing(), 5, what=a3 + " to leave")
        print("# %s left after %.1fs" % (a3, time.monotonic() - t0), flush=True)
        before = c.classified(a3)
        send_batch(c, 50, unique("e"))
        c.main.wait_for_maildir_count(RCPT, 250, timeout=60)
        check(c.classified(a3) == before, "%s got work after it left DNS: %d -> %d"
              % (a3, before, c.classified(a3)))

        # a third joins: it gets work
        c.start_classifier(a4)
        t0 = time.monotonic()
        c.zone([a2, a4])
        wait_for(lambda: "%s:%d joined" % (a4, port) in ing(), 5, what=a4 + " to join")
        print("# %s joined after %.1fs" % (a4, time.monotonic() - t0), flush=True)
        send_batch(c, 60, unique("f"))
        c.main.wait_for_maildir_count(RCPT, 310, timeout=60)
        check(c.classified(a4) > 0, a4 + " got no work after it joined")
        check(c.classified(a3) == before, a3 + " got work while out of DNS")
        ok = True
    finally:
        reps = c.stop()
        if reps:
            ok = False
            print("FAIL discovery.sanitizer_clean: %s" % "; ".join("%s: %s" % r for r in reps[:5]))
        if ok and os.environ.get("KEEP") != "1":
            shutil.rmtree(c.top, ignore_errors=True)
        else:
            sys.stderr.write("kept %s\n" % c.top)
    return ok


def main():
    t0 = time.monotonic()
    try:
        ok = run()
        if ok:
            print("PASS discovery.scale_classifiers (%.1fs)" % (time.monotonic() - t0))
        return 0 if ok else 1
    except TestFailure as e:
        print("FAIL discovery.scale_classifiers: %s" % str(e).splitlines()[0])
        sys.stderr.write(str(e) + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
