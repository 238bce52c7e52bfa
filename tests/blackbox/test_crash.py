"""test_crash.py - "a 250 is a promise" under kill -9.

CRASH_MESSAGES messages (default 2000; 400 under sanitizers) from
CRASH_CLIENTS parallel smtplib clients (default 20) while a killer thread
kill -9s a random stage (the ingress too) every CRASH_KILL_INTERVAL seconds
(default 0.5) and the supervisor restarts it.  Afterwards every message that
got a 250 must be in the Maildir.  Each attempt carries a unique
X-Test-Seq (message) and X-Test-Attempt; clients pace themselves so that sending lasts at least
CRASH_MIN_SECONDS (default 10; 6 under sanitizers).  A duplicate is the same attempt
delivered twice (an unacknowledged earlier attempt of a message that was
resent is not a duplicate, it is a client retry).
"""

import os
import random
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SANITIZER, SLOW, STAGES, case, check, main, wait_for)  # noqa: E402

DEMO = "demo@example.test"
TOTAL = int(os.environ.get("CRASH_MESSAGES", "400" if SANITIZER else "2000"))
CLIENTS = int(os.environ.get("CRASH_CLIENTS", "20"))
KILL_INTERVAL = float(os.environ.get("CRASH_KILL_INTERVAL", "0.5"))
CLIENT_DEADLINE = float(os.environ.get("CRASH_CLIENT_DEADLINE", "600"))
DRAIN_DEADLINE = float(os.environ.get("CRASH_DRAIN_DEADLINE", "120"))
# clients pace themselves so that sending lasts at least this long: a fast
# build would otherwise finish before the killer has killed every stage
MIN_SECONDS = float(os.environ.get("CRASH_MIN_SECONDS", "6" if SANITIZER else "10"))
RUN = "%d-%d" % (os.getpid(), int(time.time()))


def message(seq, attempt):
    return ("From: <crash@client.example>\r\nTo: <%s>\r\nSubject: crash %s\r\n"
            "Message-ID: <%s.%d.%s@client.example>\r\nX-Test-Seq: %s\r\n"
            "X-Test-Attempt: %d\r\n\r\nmessage %s attempt %d\r\n%s\r\n"
            % (DEMO, seq, seq, attempt, RUN, seq, attempt, seq, attempt,
               "filler " * 30)).encode()


class Client(threading.Thread):
    def __init__(self, c, idx, count, stop):
        super().__init__(daemon=True)
        self.c, self.idx, self.count, self.stop = c, idx, count, stop
        self.accepted = set()        # (seq, attempt) answered 250
        self.given_up = []
        self.errors = 0
        self.smtp = None

    def connect(self):
        s = smtplib.SMTP(timeout=30 * SLOW)
        s.connect("127.0.0.1", self.c.port)
        s.ehlo("client%d.example" % self.idx)
        return s

    def drop(self):
        if self.smtp is not None:
            try:
                self.smtp.close()
            except Exception:
                pass
        self.smtp = None

    def run(self):
        t0 = time.monotonic()
        deadline = t0 + CLIENT_DEADLINE * SLOW
        for i in range(self.count):
            pause = t0 + MIN_SECONDS * i / self.count - time.monotonic()
            if pause > 0:
                self.stop.wait(pause)
            seq = "%d.%d" % (self.idx, i)
            attempt = 0
            while True:
                if self.stop.is_set() or time.monotonic() > deadline or attempt >= 200:
                    self.given_up.append(seq)
                    break
                attempt += 1
                try:
                    if self.smtp is None:
                        self.smtp = self.connect()
                    self.smtp.sendmail("crash@client.example", [DEMO], message(seq, attempt))
                    self.accepted.add((seq, attempt))
                    break
                except (smtplib.SMTPException, OSError, socket.timeout):
                    # refused/reset while the ingress restarts, or a 4xx:
                    # a fresh connection and the same message again
                    self.errors += 1
                    self.drop()
                    self.stop.wait(min(0.02 * attempt, 0.5))
        self.drop()


class Killer(threading.Thread):
    def __init__(self, c, stop):
        super().__init__(daemon=True)
        self.c, self.stop = c, stop
        self.kills = {n: 0 for n in STAGES}
        self.rng = random.Random(os.environ.get("CRASH_SEED"))

    def run(self):
        order = []
        while not self.stop.wait(KILL_INTERVAL):
            # a random stage each time; drawn from shuffled rounds of all
            # four so that every stage, the ingress too, gets killed
            if not order:
                order = list(STAGES)
                self.rng.shuffle(order)
            name = order.pop()
            pid = self.c.stage_pid(name)
            if pid:
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.kills[name] += 1
                except OSError:
                    pass


def scan(c, seen):
    """Parse new Maildir files into seen {path: (seq, attempt)}."""
    for p in c.maildir_files(DEMO):
        if p in seen:
            continue
        try:
            with open(p, "rb") as f:
                head = f.read(8192).split(b"\n\n", 1)[0]
        except OSError:
            continue
        seq = att = None
        for line in head.split(b"\n"):
            if line.lower().startswith(b"x-test-seq:"):
                seq = line.split(b":", 1)[1].strip().decode()
            elif line.lower().startswith(b"x-test-attempt:"):
                att = int(line.split(b":", 1)[1].strip())
        seen[p] = (seq, att)


@case(conf={"pipeline_ack_timeout": "2s", "pipeline_ack_timeout_max": "4s",
            "smtpd_session_limit": "200",
            # a transient delivery error must show up as a delay, not as
            # mail missing at the end of the drain
            "minimal_backoff_time": "1s", "maximal_backoff_time": "5s"},
      fresh=True, allow_restarts=True, timeout=CLIENT_DEADLINE + DRAIN_DEADLINE + 120)
def test_kill9_random_stage(c):
    stop_clients = threading.Event()
    stop_killer = threading.Event()
    per = [TOTAL // CLIENTS + (1 if i < TOTAL % CLIENTS else 0) for i in range(CLIENTS)]
    clients = [Client(c, i, n, stop_clients) for i, n in enumerate(per)]
    killer = Killer(c, stop_killer)
    t0 = time.monotonic()
    try:
        for t in clients:
            t.start()
        killer.start()
        for t in clients:
            t.join()
    finally:
        stop_clients.set()
        stop_killer.set()
        killer.join()
        for t in clients:
            t.join(60)
    t_send = time.monotonic() - t0
    accepted = set().union(*(t.accepted for t in clients))
    given_up = sum(len(t.given_up) for t in clients)
    errors = sum(t.errors for t in clients)
    kills = sum(killer.kills.values())

    # every stage back up, then every accepted message in the Maildir
    wait_for(lambda: all(c.stage_pid(n) for n in STAGES), 30, what="all stages restarted")
    seen = {}

    def all_in():
        scan(c, seen)
        got = set(seen.values())
        return accepted <= got
    t1 = time.monotonic()
    try:
        wait_for(all_in, DRAIN_DEADLINE / SLOW, interval=0.5,
                 what="every accepted message in the Maildir")
    except AssertionError:
        pass
    scan(c, seen)
    counts = {}
    for k in seen.values():
        counts[k] = counts.get(k, 0) + 1
    delivered_keys = set(counts)
    missing = sorted(accepted - delivered_keys)
    duplicates = sum(n - 1 for n in counts.values() if n > 1)
    unacked_delivered = len(delivered_keys - accepted)
    retried = sum(1 for k in accepted if k[1] > 1)
    deferred = [l for l in c.log().splitlines() if "status=deferred" in l]
    print("crash: accepted=%d delivered=%d missing=%d duplicates=%d kills=%d "
          "(%s) client_errors=%d retried=%d unacked_delivered=%d given_up=%d deferred=%d "
          "send=%.1fs drain=%.1fs messages=%d clients=%d"
          % (len(accepted), len(accepted & delivered_keys), len(missing), duplicates, kills,
             " ".join("%s=%d" % kv for kv in killer.kills.items()), errors, retried,
             unacked_delivered, given_up, len(deferred), t_send, time.monotonic() - t1, TOTAL, CLIENTS),
          flush=True)
    for l in deferred[:5]:
        print("# " + l, flush=True)
    check(not missing, "%d accepted message(s) missing, e.g. %r" % (len(missing), missing[:10]))
    check(kills > 0, "the killer killed nothing")
    check(killer.kills["ingress"] > 0 or kills < 4, "the ingress was never killed")
    check(given_up <= TOTAL // 20,
          "clients gave up on %d of %d messages (the system did not recover)" % (given_up, TOTAL))


if __name__ == "__main__":
    sys.exit(main(globals()))
