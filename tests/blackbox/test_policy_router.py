"""test_policy_router.py - the router's policy service, asked straight on
its ROUTER socket (tests/blackbox/policy_client.py), with the policy clock
moved through CORREIO_TEST_CLOCK (the supervisor passes the environment on
to the stages).

greylist_cycle      new, early (seconds left), passed, known; a retry after
                    the window starts over
intrusion_rules     unknown recipients beyond the limit, a spam trap and the
                    connection rate block; CONNECT refuses with the ip, the
                    reason and until; each block expires with its block time
admin_kinds         LIST / PASS / DELETE / BLOCK, also from a REQ socket
bad_frames          undecodable, wrong frame counts, bad version, no kind,
                    oversized: no answer, logged, the router goes on
reload              SIGHUP to the router: the new limit is used
kill9_keeps_state   a thread keeps GREYLIST and LIMIT_COUNT requests in
                    flight, the router is kill -9'ed mid-load; after the
                    restart every answered state change is there
"""

import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SANITIZER, SLOW, at_cleanup, case, check, main, wait_for  # noqa: E402
from policy_client import (PolicyClient, PolicyTimeout, TestClock, ask,  # noqa: E402
                           encode_request, router_endpoint, wait_answering)

import zmq  # noqa: E402

_clock_dir = tempfile.mkdtemp(prefix="correio-clock-")
at_cleanup(lambda: shutil.rmtree(_clock_dir, True))
CLOCK = TestClock(os.path.join(_clock_dir, "clock"))

CONF = dict(intrusion_prevention="yes", intrusion_unknown_recipient_limit="3",
            intrusion_block_time="10m", intrusion_spamtrap_block_time="2m",
            intrusion_connection_rate_limit="20")
RUN = "%d" % os.getpid()
LOAD_ANSWERS = int(os.environ.get("POLICY_LOAD_ANSWERS", "600" if SANITIZER else "3000"))


def uniq(prefix):
    uniq.n += 1
    return "%s-%s-%d" % (prefix, RUN, uniq.n)


uniq.n = 0


def ip(n):
    uniq.n += 1
    return "198.18.%d.%d" % (uniq.n % 250, n)


def expect(r, action, reason=None, what=""):
    check(r["action"] == action and (reason is None or r["reason"] == reason),
          "%s: expected %s %s, got %r" % (what, action, reason or "", r))
    return r


@case(conf=CONF)
def test_greylist_cycle(c):
    ep = router_endpoint(c)
    key = "%s@sender.example/bob@example.test" % uniq("grey")
    r = expect(ask(ep, "GREYLIST", key, recipient="bob@example.test", session="S1"),
               "DEFER", "GREYLIST_NEW", "first attempt")
    check(r["text"] == "450 4.7.1 <bob@example.test>: Recipient address rejected: "
                      "Greylisted for 300 seconds (see RFC 6647)", r["text"])
    CLOCK.advance(100)
    r = expect(ask(ep, "GREYLIST", key, recipient="bob@example.test"), "DEFER",
               "GREYLIST_EARLY", "100 s later")
    left = int(re.search(r"Greylisted for (\d+) seconds", r["text"]).group(1))
    check(150 <= left <= 200, "seconds left after 100 s: %d" % left)
    CLOCK.advance(250)
    expect(ask(ep, "GREYLIST", key, recipient="bob@example.test"), "OK", "GREYLIST_PASSED",
           "after the delay")
    expect(ask(ep, "GREYLIST", key, recipient="bob@example.test"), "OK", "GREYLIST_KNOWN",
           "again")
    wait_for(lambda: re.search(r"policy: S1: greylist: defer triplet=<%s> reason=GREYLIST_NEW"
                               % re.escape(key), c.log()), 10, what="the router's log line")

    late = "%s@sender.example/bob@example.test" % uniq("late")
    expect(ask(ep, "GREYLIST", late, recipient="bob@example.test"), "DEFER", "GREYLIST_NEW",
           "late: first")
    CLOCK.advance(2 * 86400 + 301)       # past delay + retry window
    expect(ask(ep, "GREYLIST", late, recipient="bob@example.test"), "DEFER", "GREYLIST_NEW",
           "late: retry after the window")


@case(conf=CONF)
def test_intrusion_rules(c):
    ep = router_endpoint(c)
    a = ip(1)
    for n in range(1, 4):
        r = expect(ask(ep, "EVENT", a, reason="UNKNOWN_RCPT", session="S2"), "OK", "",
                   "unknown recipient %d" % n)
        check(r["count"] == n, "count %r after %d events" % (r["count"], n))
    r = expect(ask(ep, "EVENT", a, reason="UNKNOWN_RCPT", detail="rcpt=x@example.test",
                   session="S2"),
               "BLOCKED", "UNKNOWN_RCPT", "fourth unknown recipient")
    check("blocked by intrusion prevention (UNKNOWN_RCPT)" in r["text"], r["text"])
    r = expect(ask(ep, "CONNECT", a), "BLOCKED", "UNKNOWN_RCPT", "connect while blocked")
    check(re.match(r"421 4\.7\.0 \S+: Error: \[%s\] blocked by intrusion prevention "
                   r"\(UNKNOWN_RCPT\) until \S+" % re.escape(a), r["text"]), r["text"])
    until = r["until"]
    wait_for(lambda: re.search(r"policy: S2: intrusion: block ip=%s reason=UNKNOWN_RCPT count=4"
                               % re.escape(a), c.log()), 10, what="the block's log line")

    b = ip(2)
    r = expect(ask(ep, "EVENT", b, reason="SPAMTRAP"), "BLOCKED", "SPAMTRAP", "spam trap")
    check(r["until"] < until, "a spam trap blocks for the shorter time")
    CLOCK.advance(121)
    expect(ask(ep, "CONNECT", b), "OK", "", "spam trap block over after 2 min")
    expect(ask(ep, "CONNECT", a), "BLOCKED", "UNKNOWN_RCPT", "still blocked after 2 min")
    CLOCK.advance(600)
    expect(ask(ep, "CONNECT", a), "OK", "", "block over after 10 min")

    d = ip(3)
    cl = PolicyClient(ep)
    try:
        for n in range(20):
            expect(cl.ask("CONNECT", d), "OK", "", "connection %d" % (n + 1))
        expect(cl.ask("CONNECT", d), "BLOCKED", "CONN_RATE", "connection 21 in a minute")
    finally:
        cl.close()


@case(conf=CONF)
def test_admin_kinds(c):
    ep = router_endpoint(c)
    key = "%s@sender.example/carol@example.test" % uniq("admin")
    other = "%s@sender.example/carol@example.test" % uniq("admin")
    expect(ask(ep, "GREYLIST", key, recipient="carol@example.test"), "DEFER", "GREYLIST_NEW",
           "first")
    expect(ask(ep, "PASS", other, table="greylist"), "OK", None, "pass")
    expect(ask(ep, "GREYLIST", other, recipient="carol@example.test"), "OK", "GREYLIST_KNOWN",
           "a passed triplet")
    r = expect(ask(ep, "LIST", "", table="greylist"), "OK", None, "list")
    entries = {e["key"]: e for e in r["entries"]}
    check(entries.get(key, {}).get("state") == "waiting", "list: %r" % entries.get(key))
    check(entries.get(other, {}).get("state") == "passed", "list: %r" % entries.get(other))
    check(entries[key]["node"] == "mx.example.test", "node %r" % entries[key]["node"])
    expect(ask(ep, "DELETE", key, table="greylist"), "OK", None, "delete")
    r = expect(ask(ep, "DELETE", key, table="greylist"), "ERROR", None, "delete again")
    check(r["text"] == "not found", r["text"])

    # the command's REQ socket makes the same frames
    a = ip(4)
    req = zmq.Context.instance().socket(zmq.REQ)
    req.setsockopt(zmq.LINGER, 0)
    req.connect(ep)
    try:
        req.send(encode_request(version=1, id=7, kind="BLOCK", key=a, table="intrusion"))
        check(req.poll(5000 * SLOW), "no answer on a REQ socket")
        from policy_client import decode_reply
        r = decode_reply(req.recv())
        check(r["id"] == 7 and r["action"] == "OK" and r["reason"] == "MANUAL", "block: %r" % r)
    finally:
        req.close(0)
    expect(ask(ep, "CONNECT", a), "BLOCKED", "MANUAL", "manually blocked")
    r = ask(ep, "LIST", "", table="intrusion")
    e = [e for e in r["entries"] if e["key"] == a]
    check(e and e[0]["state"] == "blocked" and e[0]["reason"] == "MANUAL", "list: %r" % e)
    expect(ask(ep, "DELETE", a, table="intrusion"), "OK", None, "unblock")
    expect(ask(ep, "CONNECT", a), "OK", "", "unblocked")
    expect(ask(ep, "LIST", "", table="nonsense"), "ERROR", None, "unknown table")
    expect(ask(ep, "CONNECT", "not-an-ip"), "ERROR", None, "bad ip")


@case(conf=CONF)
def test_bad_frames(c):
    ep = router_endpoint(c)
    pos = c.log_size()
    good = encode_request(version=1, id=1, kind="CONNECT", key="192.0.2.1")
    bad = [
        [b"", b"\xff\xff\xff\xff not protobuf"],
        [b"one frame, no delimiter"],
        [b"", good, b"a third frame"],
        [b"not empty", good],
        [b"", encode_request(version=2, id=2, kind="CONNECT", key="192.0.2.1")],
        [b"", encode_request(version=1, id=3, key="192.0.2.1")],       # no kind
        [b"", b"\x22" + b"\xff" * 100000],                             # oversized
    ]
    cl = PolicyClient(ep)
    try:
        for frames in bad:
            cl.send_frames(frames)
        # replies keep the order of the requests: the first one that comes
        # must be the good request's
        r = cl.ask("CONNECT", "192.0.2.2")
        check(r["action"] == "OK", "good request after bad frames: %r" % r)
        wait_for(lambda: len(re.findall(r"policy: dropped|dropped bad frame from policy socket",
                                        c.log_since(pos))) >= len(bad), 10,
                 what="a log line for each bad frame")
    finally:
        cl.close()


@case(conf=dict(CONF, intrusion_auth_failure_limit="5"), fresh=True)
def test_reload(c):
    ep = router_endpoint(c)
    expect(ask(ep, "EVENT", ip(5), reason="AUTH"), "OK", "", "first auth failure")
    c.conf["intrusion_auth_failure_limit"] = "1"
    with open(os.path.join(c.dir, "correio.conf"), "w") as f:
        for k, v in c.conf.items():
            f.write("%s = %s\n" % (k, v))
    os.kill(c.stage_pid("router"), signal.SIGHUP)

    def second_blocks():
        a = ip(6)
        ask(ep, "EVENT", a, reason="AUTH")
        return ask(ep, "EVENT", a, reason="AUTH")["action"] == "BLOCKED"
    wait_for(second_blocks, 10, interval=0.2, what="the reloaded auth failure limit")


class Load(threading.Thread):
    """Keeps up to WINDOW requests in flight: GREYLIST of new triplets and
    LIMIT_COUNT of a few keys; remembers what was answered."""
    WINDOW = 64

    def __init__(self, ep):
        super().__init__(daemon=True)
        self.ep = ep
        self.stop = threading.Event()
        self.greylisted = []            # triplets answered GREYLIST_NEW
        self.counted = {}               # key -> highest count answered
        self.answers = 0
        self.error = None

    def run(self):
        cl = PolicyClient(self.ep)
        sent = {}
        i = 0
        quiet_since = time.monotonic()
        try:
            while not self.stop.is_set():
                while len(sent) < self.WINDOW:
                    i += 1
                    if i % 3:
                        key = "load-%s-%d@sender.example/bob@example.test" % (RUN, i)
                        rid = cl.send("GREYLIST", key, recipient="bob@example.test")
                        sent[rid] = ("G", key)
                    else:
                        key = "user:load%d-%s@example.test" % (i % 7, RUN)
                        rid = cl.send("LIMIT_COUNT", key, count=1)
                        sent[rid] = ("L", key)
                r = cl.recv(0.1)
                if r is None:
                    # the router died with these: they will never be answered
                    if time.monotonic() - quiet_since > 1.0:
                        sent.clear()
                    continue
                quiet_since = time.monotonic()
                what = sent.pop(r["id"], None)
                if what is None:
                    continue
                self.answers += 1
                if what[0] == "G" and r["reason"] == "GREYLIST_NEW":
                    self.greylisted.append(what[1])
                elif what[0] == "L" and r["action"] == "OK":
                    self.counted[what[1]] = max(self.counted.get(what[1], 0), r["count"])
        except Exception as e:          # reported by the test
            self.error = e
        finally:
            cl.close()


@case(conf=CONF, fresh=True, allow_restarts=True, timeout=180)
def test_kill9_keeps_state(c):
    ep = router_endpoint(c)
    load = Load(ep)
    load.start()
    try:
        wait_for(lambda: load.answers >= LOAD_ANSWERS or load.error, 60,
                 what="%d answers before the kill" % LOAD_ANSWERS)
        old = c.stage_pid("router")
        os.kill(old, signal.SIGKILL)
        at_kill = load.answers
        wait_for(lambda: (c.stage_pid("router") or old) != old, 30, what="the router restarted")
        wait_answering(ep, 30 * SLOW)
        wait_for(lambda: load.answers >= at_kill + 200 or load.error, 60,
                 what="answers from the restarted router")
    finally:
        load.stop.set()
        load.join(10)
    check(load.error is None, "load thread: %r" % load.error)
    sys.stderr.write("kill9_keeps_state: %d answers before the kill, %d in all; checking %d "
                     "triplets and %d counters\n" % (at_kill, load.answers, len(load.greylisted),
                                                     len(load.counted)))
    check(len(load.greylisted) > 100, "only %d triplets answered" % len(load.greylisted))

    cl = PolicyClient(ep)
    try:
        lost = []
        for key in load.greylisted:
            r = cl.ask("GREYLIST", key, recipient="bob@example.test")
            if r["reason"] != "GREYLIST_EARLY":
                lost.append((key, r["reason"]))
        check(not lost, "%d of %d answered triplets lost, e.g. %r"
              % (len(lost), len(load.greylisted), lost[:3]))
        for key, n in load.counted.items():
            r = cl.ask("LIMIT_CHECK", key)
            check(r["count"] >= n, "%s: count %d after the restart, %d was answered"
                  % (key, r["count"], n))
    finally:
        cl.close()
    check(len(re.findall(r"correio/router\[\d+\]: policy: listening", c.log())) >= 2,
          "the router's policy service did not start twice")


if __name__ == "__main__":
    sys.exit(main(globals()))
