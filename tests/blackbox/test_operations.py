#!/usr/bin/python3
"""test_operations.py - operating a running correio (issue 9 item 7).

drain: two delivery nodes, each `correio-delivery -c DIR` with its own
configuration directory, bound on 127.0.0.2 and 127.0.0.3 (one port for
both); the router's delivery_endpoint and the nodes' queue_admin_endpoints
name delivery.test, answered by tests/dns/zone_server.py with both
addresses.  Messages to a relayhost nobody listens on stay deferred, on
both nodes; `correio drain` empties node A into node B (A empty, B has
every message, none lost, none twice), then the relayhost comes up and
each message arrives there once.

    BLACKBOX_ONLY=operations sh tests/run-blackbox.sh build
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, BUILD, REPO, SAN_PATTERNS, SLOW, Correio,  # noqa: E402
                     RawSMTP, SmtpPeer, TestFailure, check, free_port, queue_id, tls_cert,
                     shared_port, simple_message, unique, wait_for, stage_dir)

ZONE_SERVER = os.path.join(REPO, "tests", "dns", "zone_server.py")
REMOTE = "someone@remote.example"
SENDER = "sender@client.example"
NODES = ("127.0.0.2", "127.0.0.3")


class Site:
    """A zone server, ingress + classifier + router (one directory), and
    the delivery nodes (a directory each)."""

    def __init__(self):
        self.top = tempfile.mkdtemp(prefix="correio-ops-")
        os.chmod(self.top, 0o755)
        self.procs = {}
        self.port = shared_port(list(NODES))
        self.admin_port = shared_port(list(NODES), avoid=(self.port,))
        self.relay_port = free_port()
        self.zone_path = os.path.join(self.top, "zone")
        with open(self.zone_path, "w") as f:
            for a in NODES:
                f.write("delivery.test A %s\n" % a)
        portfile = os.path.join(self.top, "dnsport")
        self.dns = subprocess.Popen([sys.executable, ZONE_SERVER, self.zone_path, portfile],
                                    stdin=subprocess.DEVNULL, start_new_session=True)
        wait_for(lambda: os.path.exists(portfile), 10, what="the zone server's port")
        with open(portfile) as f:
            self.dns_server = "127.0.0.1:%d" % int(f.read())
        self.maindir = os.path.join(self.top, "main")
        stage_dir(self.maindir)
        run = os.path.join(self.maindir, "run")
        self.main = Correio(tmpdir=self.maindir, **self.common(),
                            delivery_endpoint="tcp://delivery.test:%d" % self.port,
                            ingress_events_endpoint="ipc://%s/ingress-events" % run,
                            ingress_submit_endpoint="ipc://%s/ingress-submit" % run)
        self.nodes = {}
        for a in NODES:
            d = os.path.join(self.top, "delivery-" + a)
            stage_dir(d)
            shutil.copy(os.path.join(self.maindir, "users"), d)
            Correio(tmpdir=d, **self.common(),
                    delivery_endpoint="tcp://%s:%d" % (a, self.port),
                    delivery_admin_endpoint="tcp://%s:%d" % (a, self.admin_port),
                    queue_admin_endpoints="tcp://delivery.test:%d" % self.admin_port,
                    ingress_events_endpoint=self.main.conf["ingress_events_endpoint"],
                    ingress_submit_endpoint=self.main.conf["ingress_submit_endpoint"])
            # `correio -c ctl-A queue ...` asks node A only
            ctl = os.path.join(self.top, "ctl-" + a)
            os.makedirs(ctl)
            with open(os.path.join(ctl, "correio.conf"), "w") as f:
                f.write("queue_admin_endpoints = tcp://%s:%d\n" % (a, self.admin_port))
                f.write("delivery_admin_endpoint = tcp://%s:%d\n" % (a, self.admin_port))
                f.write("run_directory = %s/run\ndata_directory = %s/data\n" % (d, d))
            self.nodes[a] = (d, ctl)

    def common(self):
        return dict(dns_servers=self.dns_server, dns_timeout="1s", dns_tries="1",
                    discovery_interval="500ms", smtpd_peername_lookup="no",
                    curve_allow_plaintext="yes",
                    relayhost="[127.0.0.1]:%d" % self.relay_port, smtp_connect_timeout="2s",
                    minimal_backoff_time="1h", maximal_backoff_time="2h")

    def start(self, stage, confdir, label, ready="started"):
        log = os.path.join(self.top, label + ".log")
        with open(log, "ab") as out:
            p = subprocess.Popen([os.path.join(BUILD, "bin", "correio-" + stage), "-c", confdir],
                                 stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                 start_new_session=True)
        self.procs[label] = p
        wait_for(lambda: ready in self.log(label) or p.poll() is not None, 30,
                 what=label + " to start")
        check(p.poll() is None, "%s exited at start:\n%s" % (label, self.log(label)[-2000:]))
        return p

    def log(self, label):
        try:
            with open(os.path.join(self.top, label + ".log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def ctl(self, confdir, *args, timeout=60):
        return subprocess.run([BIN, "-c", confdir] + list(args), capture_output=True, text=True,
                              timeout=timeout * SLOW)

    def queue(self, node):
        """{queue id: state} of one delivery node."""
        p = self.ctl(self.nodes[node][1], "queue", "list", "--json")
        out = {}
        for line in p.stdout.splitlines():      # postqueue -j: one object a line
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            if e.get("queue_name") != "spool" and "queue_id" in e:
                out[e["queue_id"]] = e.get("queue_name", "")
        check(p.returncode == 0 or out or "not in" not in p.stderr,
              "queue list %s: %s %s" % (node, p.stdout, p.stderr))
        return out

    def stop(self):
        for p in self.procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for label, p in self.procs.items():
            try:
                p.wait(20 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        if self.dns.poll() is None:
            self.dns.terminate()
            self.dns.wait(5)
        return [(label, line) for label in self.procs
                for line in self.log(label).splitlines() if SAN_PATTERNS.search(line)]


def send_remote(port, marker):
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        code, text = s.rcpt(REMOTE)
        check(code == 250, "RCPT: %d %r" % (code, text))
        code, text = s.data(simple_message(marker, to=REMOTE))
        check(code == 250, "DATA: %d %r" % (code, text))
    return queue_id(text.decode())


def drain_into_peer():
    site = Site()
    ok = False
    peer = None
    try:
        a, b = NODES
        for n in NODES:
            site.start("delivery", site.nodes[n][0], "delivery-" + n)
        site.start("router", site.maindir, "router")
        site.start("classifier", site.maindir, "classifier")
        site.start("ingress", site.maindir, "ingress", ready="listening on")
        wait_for(lambda: site.log("router").count(" joined") >= 2, 10,
                 what="the router to connect to both delivery nodes")

        n_msgs = 24
        markers = [unique("drain") for _ in range(n_msgs)]
        ids = set(send_remote(site.main.port, m) for m in markers)
        check(len(ids) == n_msgs, "queue ids: %r" % ids)

        def both():
            qa, qb = site.queue(a), site.queue(b)
            return (qa, qb) if len(qa) + len(qb) == n_msgs else None
        qa, qb = wait_for(both, 30, interval=0.3, what="every message in a delivery queue")
        check(set(qa) | set(qb) == ids, "ids differ: %r" % (set(qa) ^ set(qb) ^ ids))
        check(len(qa) > 0, "node A got none of %d messages: %r" % (n_msgs, qb))
        wait_for(lambda: all(s == "deferred" for s in site.queue(a).values()), 20,
                 interval=0.3, what="node A's messages to be deferred")
        print("# before: A %d, B %d" % (len(qa), len(qb)), flush=True)

        t0 = time.monotonic()
        p = site.ctl(site.nodes[a][1], "drain", "--timeout", "60")
        check(p.returncode == 0, "correio drain: %d\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
        check("drained" in p.stdout, "drain output: %r" % p.stdout)
        qa2, qb2 = site.queue(a), site.queue(b)
        print("# drained in %.1fs: A %d, B %d" % (time.monotonic() - t0, len(qa2), len(qb2)),
              flush=True)
        check(qa2 == {}, "node A not empty: %r" % qa2)
        check(set(qb2) == ids, "node B should hold all %d: missing %r, extra %r"
              % (n_msgs, ids - set(qb2), set(qb2) - ids))
        check(site.log("delivery-" + a).count(": handed over to ") == len(qa),
              "A should log one hand-over per message")

        # the relayhost comes up: each message arrives once
        peer = SmtpPeer("127.0.0.1", site.relay_port)
        peer.start()
        p = site.ctl(site.nodes[b][1], "queue", "flush")
        check(p.returncode == 0, "queue flush: %s %s" % (p.stdout, p.stderr))
        for m in markers:
            peer.wait_txn(m, timeout=30)
        wait_for(lambda: site.queue(b) == {}, 20, interval=0.3, what="node B's queue to empty")
        for m in markers:
            n = len(peer.txns(m))
            check(n == 1, "%s arrived %d times" % (m, n))
        check(site.procs["delivery-" + a].poll() is None, "node A died")
        ok = True
    finally:
        if peer:
            peer.stop()
        reps = site.stop()
        if reps:
            ok = False
            raise TestFailure("sanitizer: %s" % "; ".join("%s: %s" % r for r in reps[:5]))
        if ok and os.environ.get("KEEP") != "1":
            shutil.rmtree(site.top, ignore_errors=True)
        else:
            sys.stderr.write("kept %s\n" % site.top)


def refused(port):
    import socket
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return False
    except ConnectionRefusedError:
        return True


def with_instance(conf, fn):
    c = Correio(**conf)
    try:
        c.start()
        fn(c)
    finally:
        c.stop()
        reps = c.sanitizer_reports()
        if reps:
            raise TestFailure("sanitizer: %s" % "; ".join(reps[:5]))
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(c.dir, ignore_errors=True)


def graceful_sigterm():
    """SIGTERM to the ingress: the listeners close (new connections are
    refused), an idle session gets 421, a session in the middle of DATA
    still gets its 250, and that message is delivered."""
    def body(c):
        marker = unique("term")
        busy = RawSMTP(c.port)
        busy.expect(220)
        busy.cmd("EHLO client.example")
        busy.cmd("MAIL FROM:<%s>" % SENDER)
        busy.cmd("RCPT TO:<demo@example.test>")
        code, _ = busy.cmd("DATA")
        check(code == 354, "DATA: %r" % code)
        msg = simple_message(marker)              # CRLF lines, bytes
        half = len(msg) // 2
        busy.send(msg[:half])
        idle = RawSMTP(c.port)
        idle.expect(220)
        idle.cmd("EHLO client.example")
        pid = c.stage_pid("ingress")
        check(pid, "no ingress process")
        os.kill(pid, signal.SIGTERM)
        code, lines = idle.read_reply() or (None, [])
        check(code == 421, "the idle session should get 421, got %r %r" % (code, lines))
        check(idle.is_closed(), "the idle session should be closed")
        wait_for(lambda: refused(c.port), 5, what="new connections to be refused")
        busy.send(msg[half:] + b".\r\n")
        code, lines = busy.read_reply() or (None, [])
        check(code == 250, "the session in DATA should get 250, got %r %r" % (code, lines))
        busy.close()
        idle.close()
        c.wait_for_message("demo@example.test", marker, timeout=30)
    with_instance(dict(shutdown_timeout="20s"), body)


def tls_reload():
    """SIGHUP with a new certificate: a new STARTTLS session sees the new
    subject, a session opened before keeps working."""
    import smtplib
    import ssl
    d = tempfile.mkdtemp(prefix="correio-cert2-")
    os.chmod(d, 0o755)
    cert1, key1 = tls_cert()
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    shutil.copy(cert1, cert)
    shutil.copy(key1, key)
    os.chmod(key, 0o644)

    def subject(port):
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP("127.0.0.1", port, timeout=15 * SLOW) as s:
            s.starttls(context=ctx)
            der = s.sock.getpeercert(binary_form=True)
        p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject"],
                           input=der, capture_output=True)
        return p.stdout.decode()

    def body(c):
        check("CN = localhost" in subject(c.port) or "CN=localhost" in subject(c.port),
              "first certificate: %r" % subject(c.port))
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        old = smtplib.SMTP("127.0.0.1", c.port, timeout=15 * SLOW)
        old.starttls(context=ctx)
        old.ehlo("client.example")
        tmp = os.path.join(d, "new")
        os.makedirs(tmp)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                        "-subj", "/CN=reloaded.example.test", "-keyout",
                        os.path.join(tmp, "key.pem"), "-out", os.path.join(tmp, "cert.pem")],
                       check=True, capture_output=True)
        os.chmod(os.path.join(tmp, "key.pem"), 0o644)
        os.replace(os.path.join(tmp, "key.pem"), key)
        os.replace(os.path.join(tmp, "cert.pem"), cert)
        before = c.log_size()
        os.kill(c.stage_pid("ingress"), signal.SIGHUP)
        wait_for(lambda: "configuration reloaded" in c.log_since(before), 10,
                 what="the ingress to reload")
        sub = subject(c.port)
        check("reloaded.example.test" in sub, "a new session should see the new cert: %r" % sub)
        marker = unique("tlsold")
        old.sendmail(SENDER, ["demo@example.test"], simple_message(marker))
        old.quit()
        c.wait_for_message("demo@example.test", marker, timeout=30)
    try:
        with_instance(dict(smtpd_tls_cert_file=cert, smtpd_tls_key_file=key), body)
    finally:
        shutil.rmtree(d, ignore_errors=True)


CASES = [drain_into_peer, graceful_sigterm, tls_reload]


def main():
    wanted = set(sys.argv[1:])
    failed = 0
    for fn in CASES:
        if wanted and fn.__name__ not in wanted:
            continue
        t0 = time.monotonic()
        try:
            fn()
            print("PASS operations.%s (%.1fs)" % (fn.__name__, time.monotonic() - t0), flush=True)
        except TestFailure as e:
            failed += 1
            print("FAIL operations.%s: %s" % (fn.__name__, str(e).splitlines()[0]), flush=True)
            sys.stderr.write(str(e) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
