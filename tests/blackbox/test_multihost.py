#!/usr/bin/python3
"""test_multihost.py - the multi-host proof (issue 9): a cluster of
network namespaces, each a "host" with its own address on one bridge
(tests/blackbox/netns.py), running ingress x2, classifier x3, router x2
and delivery x2 over CurveZMQ, found by DNS names.

    host        address         runs
    client      10.77.0.100     tests/dns/zone_server.py, the SMTP sender
    ing1, ing2  10.77.0.1-2     correio-ingress   (ingress.mh.test)
    cls1..cls3  10.77.0.11-13   correio-classifier (classifier.mh.test)
    rtr1, rtr2  10.77.0.21-22   correio-router    (router.mh.test)
    dlv1, dlv2  10.77.0.31-32   correio-delivery  (delivery.mh.test)
    cls4        10.77.0.14      added mid-run (new namespace + DNS record)

Each process runs standalone in the foreground (`correio-STAGE -c DIR`,
inside `ip netns exec`), with its own configuration, data, run and mail
directories; every endpoint is tcp://SERVICE.mh.test:PORT (the same
port on every host: each has its own network stack), curve = yes with
one key set made by `correio keys generate`, dns_servers the zone
server.  The client is outside mynetworks and greylisting is on with
greylist_delay = 0s: every message's first RCPT gets a 450 from the
router that owns its triplet (rendezvous hashing over both routers; a
sender address per message), the retry passes.

The sender (this file with --send, inside the client host) sends N
small messages with unique Message-IDs to both ingresses in parallel
(8 SMTP sessions) and records every 250.  At 20% accepted one classifier
host and one delivery host die: link down (no FIN/RST reaches anyone),
then kill -9 of every process (their addresses stay in DNS); the second half of the
messages waits until the delivery host is back with the same
directories (its queue drains) and a fourth classifier host has joined
(new namespace + DNS record).  At the end every accepted message must
be in one of the two delivery hosts' Maildirs; the duplicates are
counted and printed (a message sent again after pipeline_ack_timeout,
here 10s, may arrive twice: at-least-once), as is how many messages
each classifier scored (its log's "classified" lines; cls4's /metrics
too) and how the greylisting triplets spread over the routers.

Skipped only when the kernel refuses network namespaces (`ip netns
add` fails).  N is 3000, 2000 under CORREIO_SANITIZER (the ASan+UBSan
build); MULTIHOST_N overrides it.  About 20-30s either way on 2 cores.
MULTIHOST_DEBUG=1 prints how long each stage took to stop.

    BLACKBOX_ONLY=multihost sh tests/run-blackbox.sh build
"""
import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

ZONE = "mh.test"
RCPT = "demo@example.test"
SMTP_PORT = 2525
PORTS = dict(classifier=7101, router=7102, delivery=7103, events=7104, submit=7105, policy=7106)


# ---------------------------------------------------------------- sender
def letters(i):
    """0 -> "a", 25 -> "z", 26 -> "ba": i in letters."""
    out = ""
    while True:
        out = chr(ord("a") + i % 26) + out
        i //= 26
        if i == 0:
            return out


def send_main(argv):
    """--send OUT RUNID N ADDR[,ADDR...] THREADS GATE: runs in the client
    host.  Messages from N/2 on wait (at most 120s) for the file GATE."""
    out, runid, n, addrs, threads = argv[0], argv[1], int(argv[2]), argv[3].split(","), int(argv[4])
    gate = argv[5]
    lock = threading.Lock()
    f = open(out, "a", buffering=1)

    def record(line):
        with lock:
            f.write(line + "\n")

    def worker(t):
        addr = addrs[t % len(addrs)]
        s = None
        for i in range(t, n, threads):
            if i >= n // 2:
                deadline = time.monotonic() + 120
                while not os.path.exists(gate) and time.monotonic() < deadline:
                    time.sleep(0.05)
            mid = "%s-%d" % (runid, i)
            msg = ("From: <sender@client.example>\r\nTo: <%s>\r\nSubject: mh %s\r\n"
                   "Message-ID: <%s@client.example>\r\n\r\nbody %s\r\n"
                   % (RCPT, mid, mid, mid)).encode()
            for attempt in range(3):
                try:
                    if s is None:
                        s = smtplib.SMTP(addr, SMTP_PORT, timeout=60)
                        s.ehlo("client.example")
                    # a sender of its own: a greylisting triplet per message
                    # (letters: the triplet key folds digit runs into "#")
                    s.sendmail("s%s@client.example" % letters(i), [RCPT], msg)
                    record("ok %s %s" % (mid, addr))
                    break
                except (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused) as e:
                    code = (e.smtp_code if isinstance(e, smtplib.SMTPResponseException)
                            else min(c for c, _ in e.recipients.values()))
                    record("no %s %s %s" % (mid, addr, code))
                    if code >= 500:
                        break
                    try:
                        s.rset()
                    except Exception:
                        s = None
                    time.sleep(0.01)            # greylist_delay is 0s
                except (OSError, smtplib.SMTPException) as e:
                    record("err %s %s %s" % (mid, addr, type(e).__name__))
                    s = None
                    time.sleep(0.2)
        if s is not None:
            try:
                s.quit()
            except Exception:
                pass

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    record("done")
    f.close()
    return 0


if len(sys.argv) > 1 and sys.argv[1] == "--send":
    sys.exit(send_main(sys.argv[2:]))


from harness import (BIN, BUILD, REPO, SANITIZER, SLOW, Correio,  # noqa: E402
                     TestFailure, check, wait_for, SAN_PATTERNS, stage_dir)
import netns  # noqa: E402

ZONE_SERVER = os.path.join(REPO, "tests", "dns", "zone_server.py")
PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
N = int(os.environ.get("MULTIHOST_N") or (2000 if SANITIZER else 3000))
THREADS = 8
NAME = "multihost.cluster"


class Cluster:
    """The namespaces, the zone server and the stage processes."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="correio-mh-")
        os.chmod(self.top, 0o755)
        self.net = netns.Net("10.77.0")
        self.procs = {}             # label -> (Host, Popen, stage, dir)
        self.records = {}           # service -> [addresses]
        self.keys = os.path.join(self.top, "keys")
        p = subprocess.run([BIN, "keys", "generate", self.keys], capture_output=True,
                           text=True, timeout=30 * SLOW)
        check(p.returncode == 0, "correio keys generate: %s %s" % (p.stdout, p.stderr))
        self.client = self.net.host("client", 100)
        self.zone_path = os.path.join(self.top, "zone")
        self.write_zone()
        portfile = os.path.join(self.top, "dnsport")
        self.dns_log = open(os.path.join(self.top, "dns.log"), "ab")
        self.dns = self.client.popen([PY, ZONE_SERVER, self.zone_path, portfile,
                                      self.client.addr], stdout=self.dns_log,
                                     stderr=self.dns_log)
        wait_for(lambda: os.path.exists(portfile) or self.dns.poll() is not None, 10,
                 what="the zone server's port")
        check(self.dns.poll() is None, "the zone server exited")
        with open(portfile) as f:
            self.dns_server = "%s:%d" % (self.client.addr, int(f.read()))

    def write_zone(self):
        tmp = self.zone_path + ".tmp"
        with open(tmp, "w") as f:
            for svc, addrs in self.records.items():
                for a in addrs:
                    f.write("%s.%s A %s\n" % (svc, ZONE, a))
        os.rename(tmp, self.zone_path)

    def conf(self, host):
        ep = lambda svc, port: "tcp://%s.%s:%d" % (svc, ZONE, port)  # noqa: E731
        return dict(
            myhostname="%s.%s" % (host.name, ZONE),
            mynetworks="127.0.0.0/8",       # the client is not: the routers' policy is asked
            greylisting="yes", greylist_delay="0s",   # first try 450, the retry passes
            smtpd_hard_error_limit="1000",  # those 450s: the sessions go on
            smtpd_listen="%s:%d" % (host.addr, SMTP_PORT),
            smtpd_peername_lookup="no",
            dns_servers=self.dns_server, dns_timeout="1s", dns_tries="1",
            discovery_interval="1s",
            pipeline_ack_timeout="10s",
            curve="yes", curve_keys_directory=self.keys,
            classifier_endpoint=ep("classifier", PORTS["classifier"]),
            router_endpoint=ep("router", PORTS["router"]),
            delivery_endpoint=ep("delivery", PORTS["delivery"]),
            ingress_events_endpoint=ep("ingress", PORTS["events"]),
            ingress_submit_endpoint=ep("ingress", PORTS["submit"]),
            router_policy_endpoint=ep("router", PORTS["policy"]),
            classifier_metrics_listen="%s:9102" % host.addr)

    def add_host(self, stage, name, octet, publish=True):
        """A new host running one stage; in DNS when publish."""
        host = self.net.host(name, octet)
        d = os.path.join(self.top, name)
        stage_dir(d)
        Correio(tmpdir=d, **self.conf(host))
        if publish:
            self.publish(stage, host.addr)
        self.start(name, host, stage, d)
        return host

    def publish(self, stage, addr):
        self.records.setdefault(stage, [])
        if addr not in self.records[stage]:
            self.records[stage].append(addr)
        self.write_zone()

    def start(self, label, host, stage, d):
        log = os.path.join(self.top, label + ".log")
        with open(log, "ab") as out:
            p = host.popen([os.path.join(BUILD, "bin", "correio-" + stage), "-c", d],
                           stdout=out, stderr=out)
        self.procs[label] = (host, p, stage, d)
        ready = "listening on" if stage == "ingress" else "started"
        since = self.log_size(label)
        wait_for(lambda: ready in self.log(label)[since:] or p.poll() is not None, 30,
                 what=label + " to start")
        check(p.poll() is None, "%s exited at start:\n%s" % (label, self.log(label)[-2000:]))

    def kill_host(self, label):
        """The host dies as a machine does (power off): its link goes
        down first, so no FIN or RST reaches its peers (they must find out
        by themselves: ZMTP heartbeats), then kill -9 everything in it.
        Its address stays in DNS: connects to it go unanswered.
        MULTIHOST_GENTLE=1: kill first (the kernel then closes the
        connections), link down after."""
        host, p, _, _ = self.procs[label]
        if not os.environ.get("MULTIHOST_GENTLE"):
            host.link(False)
        host.kill()
        p.wait(10)
        host.link(False)

    def restart(self, label):
        host, _, stage, d = self.procs[label]
        host.link(True)
        self.start(label, host, stage, d)

    def log(self, label):
        try:
            with open(os.path.join(self.top, label + ".log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self, label):
        try:
            return os.path.getsize(os.path.join(self.top, label + ".log"))
        except OSError:
            return 0

    def greylisted(self, label):
        """How many new triplets the router deferred (its log)."""
        return self.log(label).count(": greylist: defer ")

    def classified(self, label):
        return self.log(label).count(": classified ")

    def metric(self, label, name):
        """A counter's total from the stage's /metrics (None when unreachable)."""
        host = self.procs[label][0]
        code = ("import urllib.request,sys\n"
                "print(urllib.request.urlopen('http://%s:9102/metrics', timeout=5)"
                ".read().decode())" % host.addr)
        try:
            p = host.run([PY, "-c", code], timeout=15 * SLOW)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0:
            return None
        total = 0.0
        for line in p.stdout.splitlines():
            m = re.match(re.escape(name) + r"(\{[^}]*\})?\s+([0-9.eE+]+)$", line)
            if m:
                total += float(m.group(2))
        return total

    def maildirs(self):
        """Message-ID -> how many times delivered, over every delivery host."""
        seen = {}
        for label, (_, _, stage, d) in self.procs.items():
            if stage != "delivery":
                continue
            for sub in ("new", "cur"):
                md = os.path.join(d, "mail", "example.test", "demo", sub)
                try:
                    names = os.listdir(md)
                except OSError:
                    continue
                for n in names:
                    try:
                        with open(os.path.join(md, n), "rb") as f:
                            m = re.search(rb"(?im)^Message-ID:\s*<([^@>]+)@", f.read())
                    except OSError:
                        continue
                    if m:
                        k = m.group(1).decode()
                        seen[k] = seen.get(k, 0) + 1
        return seen

    def stop(self):
        """Stop the stages (SIGTERM, then the namespaces go), return the
        sanitizer reports found in their logs."""
        for label, (host, p, _, _) in self.procs.items():
            if p.poll() is None:
                try:
                    p.send_signal(signal.SIGTERM)
                except OSError:
                    pass
        t0 = time.monotonic()
        for label, (host, p, _, _) in self.procs.items():
            try:
                p.wait(20 * SLOW)
            except subprocess.TimeoutExpired:
                pass
            if os.environ.get("MULTIHOST_DEBUG"):
                print("# %s: stopped %.1fs after SIGTERM, status %s"
                      % (label, time.monotonic() - t0, p.poll()), flush=True)
        self.net.cleanup()
        try:
            self.dns.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self.dns_log.close()
        return [(label, line) for label in self.procs
                for line in self.log(label).splitlines() if SAN_PATTERNS.search(line)]


def sent(path):
    """(accepted ids, 4xx/5xx/errors count, done) from the sender's record."""
    ok, no, done = [], 0, False
    try:
        with open(path) as f:
            for line in f:
                w = line.split()
                if not w or not line.endswith("\n"):
                    continue
                if w[0] == "ok":
                    ok.append(w[1])
                elif w[0] in ("no", "err"):
                    no += 1
                elif w[0] == "done":
                    done = True
    except OSError:
        pass
    return ok, no, done


def run():
    t0 = time.monotonic()
    c = Cluster()
    ok = False
    sender = None
    try:
        for i in (1, 2):
            c.publish("ingress", "10.77.0.%d" % i)
        for i in (1, 2):
            c.add_host("router", "rtr%d" % i, 20 + i)
        for i in (1, 2):
            c.add_host("delivery", "dlv%d" % i, 30 + i)
        for i in (1, 2, 3):
            c.add_host("classifier", "cls%d" % i, 10 + i)
        for i in (1, 2):
            c.add_host("ingress", "ing%d" % i, i, publish=False)
        for i in (1, 2):
            wait_for(lambda: all("10.77.0.1%d:%d joined" % (k, PORTS["classifier"])
                                 in c.log("ing%d" % i) for k in (1, 2, 3)), 15,
                     what="ing%d connected to the three classifiers" % i)
        print("# N=%d messages, %d sender threads, cluster up in %.1fs"
              % (N, THREADS, time.monotonic() - t0), flush=True)

        out = os.path.join(c.top, "sent")
        gate = os.path.join(c.top, "second-half")
        runid = "mh%d" % os.getpid()
        t1 = time.monotonic()
        with open(out + ".err", "ab") as err:
            sender = c.client.popen([PY, os.path.abspath(__file__), "--send", out, runid,
                                     str(N), "10.77.0.1,10.77.0.2", str(THREADS), gate],
                                    stdout=subprocess.DEVNULL, stderr=err)
        budget = 120 * SLOW

        def progress(frac):
            wait_for(lambda: len(sent(out)[0]) >= N * frac or sent(out)[2], budget,
                     interval=0.1, what="%d%% of the messages accepted" % (frac * 100))

        progress(0.2)
        c.kill_host("cls3")
        c.kill_host("dlv2")
        print("# %.1fs: killed host cls3 (classifier) and dlv2 (delivery) at %d accepted"
              % (time.monotonic() - t1, len(sent(out)[0])), flush=True)

        # the first half in; the second waits for the gate (so that
        # cls4 is there for half of the run, however fast the first went)
        progress(0.5)
        c.restart("dlv2")
        cls4 = c.add_host("classifier", "cls4", 14)
        wait_for(lambda: all("%s:%d joined" % (cls4.addr, PORTS["classifier"])
                             in c.log("ing%d" % i) for i in (1, 2)), 10,
                 what="the ingresses to connect to cls4")
        print("# %.1fs: dlv2 back, cls4 joined at %d accepted"
              % (time.monotonic() - t1, len(sent(out)[0])), flush=True)
        with open(gate, "w"):
            pass

        wait_for(lambda: sent(out)[2], budget, interval=0.2, what="the sender to finish")
        sender.wait(10)
        accepted, refused, _ = sent(out)
        print("# %.1fs: sender done: %d accepted; %d replies 4xx/5xx or errors (greylisting: "
              "one 450 per message, then the retry)" % (time.monotonic() - t1, len(accepted),
                                                         refused), flush=True)

        def all_in():
            got = c.maildirs()
            return all(a in got for a in accepted) and got
        try:
            wait_for(all_in, 60, interval=0.5, what="every accepted message in a Maildir")
        except TestFailure:
            pass
        got = c.maildirs()
        missing = [a for a in accepted if a not in got]
        dups = sum(v - 1 for v in got.values() if v > 1)
        per_dlv = {l: sum(1 for _ in os.listdir(os.path.join(d, "mail", "example.test", "demo",
                                                             "new")))
                   if os.path.isdir(os.path.join(d, "mail", "example.test", "demo", "new")) else 0
                   for l, (_, _, s, d) in c.procs.items() if s == "delivery"}
        scored = {l: c.classified(l) for l, (_, _, s, _) in c.procs.items() if s == "classifier"}
        m4 = c.metric("cls4", "correio_classifier_messages_total")
        held = re.findall(r"queue: (\d+) envelopes", c.log("dlv2"))
        print("# %.1fs: accepted %d, delivered %d distinct, missing %d, duplicates %d"
              % (time.monotonic() - t1, len(accepted), len(got), len(missing), dups), flush=True)
        resent = sum(c.log(l).count("sent to classifier again") for l in ("ing1", "ing2"))
        print("# per delivery host: %s; sent again after the ack timeout: %d; triplets "
              "greylisted per router: %s"
              % (", ".join("%s %d" % kv for kv in sorted(per_dlv.items())), resent,
                 ", ".join("%s %d" % (l, c.greylisted(l)) for l in ("rtr1", "rtr2"))))
        print("# scored per classifier: %s; cls4 metrics: %s; dlv2 restarted with %s "
              "envelope(s) in its queue"
              % (", ".join("%s %d" % kv for kv in sorted(scored.items())), m4,
                 held[-1] if len(held) > 1 else "?"), flush=True)
        check(len(accepted) >= N * 0.9, "only %d of %d accepted" % (len(accepted), N))
        check(not missing, "%d accepted message(s) not delivered, e.g. %s"
              % (len(missing), ", ".join(missing[:5])))
        check(scored["cls4"] > 0, "the added classifier took no work")
        check(c.greylisted("rtr1") > 0 and c.greylisted("rtr2") > 0,
              "the greylisting keys did not spread over both routers")
        check(m4 is None or m4 > 0, "cls4's metrics count no message: %s" % m4)
        stray = [k for k in got if k not in set(accepted)]
        check(not stray or len(stray) <= refused,
              "%d delivered message(s) never accepted" % len(stray))
        ok = True
    finally:
        if sender is not None and sender.poll() is None:
            sender.kill()
            sender.wait(5)
        reps = c.stop()
        if reps:
            ok = False
            print("FAIL multihost.sanitizer_clean: %s"
                  % "; ".join("%s: %s" % r for r in reps[:5]))
        if ok and os.environ.get("KEEP") != "1":
            shutil.rmtree(c.top, ignore_errors=True)
        else:
            sys.stderr.write("kept %s\n" % c.top)
    return ok


def main():
    t0 = time.monotonic()
    why = netns.probe()
    if why:
        print("SKIP %s: the kernel refuses network namespaces: %s" % (NAME, why))
        return 0
    try:
        ok = run()
        if ok:
            print("PASS %s (%.1fs)" % (NAME, time.monotonic() - t0))
        return 0 if ok else 1
    except (TestFailure, netns.NetError) as e:
        print("FAIL %s: %s" % (NAME, str(e).splitlines()[0]))
        sys.stderr.write(str(e) + "\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
