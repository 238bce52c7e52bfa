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

test_kill9_deferred_queue: the same promise for the deferred queue.
DEFERRED_MESSAGES messages (default 200; 100 under sanitizers) for a
remote recipient whose server (tests/peers/smtp_peer.py as relayhost)
answers 451; once every one has been deferred, delivery is kill -9'ed
each time it has been up DEFERRED_KILL_INTERVAL seconds (default 1),
DEFERRED_KILLS times (default 3) while it retries (backoff 1-2 s), then
the server starts accepting (slowly: 0.1 s per message) and as many
kills follow.  Afterwards every
message must be at the server at least once; duplicates (a copy handed
over just before a kill, before delivery recorded it) are counted and
reported, as the first test does.
"""

import os
import random
import re
import signal
import smtplib
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SANITIZER, SLOW, STAGES, SmtpPeer, case, check, main,  # noqa: E402
                     send_mail, shared_port, wait_for)

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


DEFERRED_TOTAL = int(os.environ.get("DEFERRED_MESSAGES", "100" if SANITIZER else "200"))
DEFERRED_KILL_INTERVAL = float(os.environ.get("DEFERRED_KILL_INTERVAL", "1"))
DEFERRED_KILLS = int(os.environ.get("DEFERRED_KILLS", "3"))     # per phase
DEFERRED_PEER = "127.0.0.22"
DEFERRED_PORT = shared_port([DEFERRED_PEER])
FAR = "user@far.example"


def deferred_message(seq):
    return ("From: <crash@client.example>\r\nTo: <%s>\r\nSubject: deferred crash %d\r\n"
            "Message-ID: <deferred.%d.%s@client.example>\r\nX-Test-Seq: %d\r\n\r\n"
            "deferred message %d\r\n%s\r\n" % (FAR, seq, seq, RUN, seq, seq, "filler " * 30)).encode()


class DeliveryKiller(threading.Thread):
    """kill -9 the delivery stage each time it has been up for interval
    seconds (so that it gets to work between kills), until stopped.  Few
    kills: the supervisor doubles its restart delay after each."""

    def __init__(self, c, interval):
        super().__init__(daemon=True)
        self.c, self.interval = c, interval
        self.stop = threading.Event()
        self.kills = 0

    def run(self):
        seen, since = None, 0.0
        while not self.stop.wait(0.05):
            pid = self.c.stage_pid("delivery")
            if pid != seen:
                seen, since = pid, time.monotonic()
                continue
            if pid and time.monotonic() - since >= self.interval:
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.kills += 1
                except OSError:
                    pass


@case(conf={"relayhost": "[%s]:%d" % (DEFERRED_PEER, DEFERRED_PORT),
            "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
            "smtp_connect_timeout": "3s", "smtp_helo_timeout": "3s",
            "pipeline_ack_timeout": "2s", "pipeline_ack_timeout_max": "4s"},
      fresh=True, allow_restarts=True, timeout=6 * DEFERRED_KILLS * DEFERRED_KILL_INTERVAL + DRAIN_DEADLINE + 300)
def test_kill9_deferred_queue(c):
    # the server takes its time over each message once it accepts, so
    # that the kills of the second phase find deliveries under way
    with SmtpPeer(DEFERRED_PEER, DEFERRED_PORT, rcpt="451 4.3.0 not yet, try again",
                  dot_delay=0.1) as p:
        qids = {}
        for seq in range(DEFERRED_TOTAL):
            qids[send_mail(c, "crash@client.example", [FAR], deferred_message(seq))] = seq

        def all_deferred():
            done = set(re.findall(r"(\S+): to=<%s>, relay=[^,]*, delay=[0-9.]+,(?: [a-z_]+=[^, ]*,)* status=deferred"
                                  % re.escape(FAR), c.log()))
            return set(qids) <= done
        wait_for(all_deferred, 120, interval=0.5, what="every message deferred once")
        killer = DeliveryKiller(c, DEFERRED_KILL_INTERVAL)
        t0 = time.monotonic()
        killer.start()
        # the supervisor's restart delay doubles with each kill (0.1 s, 0.2 s, ...)
        phase = DEFERRED_KILLS * (DEFERRED_KILL_INTERVAL + 15) + 30
        try:
            # kills while the retries are refused, then while messages go out
            wait_for(lambda: killer.kills >= DEFERRED_KILLS, phase, interval=0.2,
                     what="%d kills while deferred" % DEFERRED_KILLS)
            kills_deferred = killer.kills
            p.set(rcpt=None)
            wait_for(lambda: killer.kills >= kills_deferred + DEFERRED_KILLS, phase, interval=0.2,
                     what="%d kills while delivering" % DEFERRED_KILLS)
        finally:
            killer.stop.set()
            killer.join()
        wait_for(lambda: c.stage_pid("delivery"), 30, what="delivery restarted")

        def seqs():
            got = {}
            for t in p.delivered():
                mm = re.search(r"X-Test-Seq: (\d+)", t["data"])
                if mm:
                    got[int(mm.group(1))] = got.get(int(mm.group(1)), 0) + 1
            return got
        try:
            wait_for(lambda: len(seqs()) >= DEFERRED_TOTAL, DRAIN_DEADLINE / SLOW, interval=0.5,
                     what="every deferred message at the server")
        except AssertionError:
            pass
        got = seqs()
        missing = sorted(set(range(DEFERRED_TOTAL)) - set(got))
        duplicates = sum(n - 1 for n in got.values() if n > 1)
        print("crash_deferred: messages=%d delivered=%d missing=%d duplicates=%d kills=%d "
              "(while refused %d) connections=%d took=%.1fs"
              % (DEFERRED_TOTAL, len(got), len(missing), duplicates, killer.kills, kills_deferred,
                 p.connections(), time.monotonic() - t0), flush=True)
        check(not missing, "%d deferred message(s) lost, e.g. seq %r" % (len(missing), missing[:10]))
        check(killer.kills > 0, "the killer killed nothing")


if __name__ == "__main__":
    sys.exit(main(globals()))
