"""test_queue.py - `correio queue`, Postfix's mailq, postsuper, postqueue
and qshape over the delivery queue.

The hold queue: a message that header_checks answers HOLD is owned by
delivery but never delivered, `correio queue list` marks it with "!" after
its queue id, `correio queue release` delivers it at once, `correio queue
hold` stops a deferred one from being tried again, hold survives a
restart, and an unknown id is an error.  Then list --json (postqueue -j),
show (the header section), delete (postsuper -d, also ids from stdin),
requeue (postsuper -r) and flush (postqueue -f) that make the next attempt
happen now, summary (qshape), the exit statuses, and several delivery
nodes (queue_admin_endpoints), one of them dead.

The held messages come from a pcre header_checks table with
    /^Subject: hold me/ HOLD held by test
Deferred messages are relayed to relayhost, a loopback port nobody listens
on: they are deferred whether this build has an SMTP client or not, and
the tests never depend on the deferral's text.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import atexit
import json
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, SLOW, TestFailure, case, check, free_port, main, queue_id,  # noqa: E402
                     simple_message, test_dns, unique, wait_for)

DEMO = "demo@example.test"
REMOTE = "someone@remote.example"      # relayed to DEAD_RELAY: deferred
SENDER = "sender@client.example"
HOLD_SUBJECT = "hold me"
HOLD_TEXT = "held by test"


def _header_checks():
    """A pcre table outside any instance (the instance's directory does not
    exist before the case starts it), readable by mail_owner."""
    d = tempfile.mkdtemp(prefix="correio-queue-")
    os.chmod(d, 0o755)
    path = os.path.join(d, "header_checks")
    with open(path, "w") as f:
        f.write("# test_queue.py\n/^Subject: %s/ HOLD %s\n" % (HOLD_SUBJECT, HOLD_TEXT))
    os.chmod(path, 0o644)
    atexit.register(shutil.rmtree, d, True)
    return path


DEAD_RELAY = "[127.0.0.1]:%d" % free_port()     # nobody listens there

HOLD_CONF = {"header_checks": "pcre:" + _header_checks(),
             "relayhost": DEAD_RELAY,
             # a deferred recipient is not tried again during a test
             "minimal_backoff_time": "1h", "maximal_backoff_time": "2h"}


def out_of(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


def message(marker, rcpt=DEMO, subject="test"):
    """The bytes send() sends."""
    return simple_message(marker, to=rcpt if isinstance(rcpt, str) else rcpt[0], subject=subject)


def send(c, marker, rcpt=DEMO, subject="test"):
    """One message over SMTP to rcpt (an address or a list); returns its
    queue id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        for r in [rcpt] if isinstance(rcpt, str) else rcpt:
            code, text = s.rcpt(r)
            check(code == 250, "RCPT TO:<%s>: %d %r" % (r, code, text))
        code, text = s.data(message(marker, rcpt, subject))
        check(code == 250, "DATA: %d %r" % (code, text))
    qid = queue_id(text.decode())
    check(qid, "no queue id in %r" % text)
    return qid


def send_held(c, marker, rcpt=DEMO):
    return send(c, marker, rcpt, subject="%s %s" % (HOLD_SUBJECT, marker))


def delivered(c, marker, addr=DEMO):
    """Is a message with marker in addr's Maildir?"""
    return any(marker.encode() in m for m in c.maildir_messages(addr))


def queue_list(c):
    p = c.ctl("queue", "list")
    check(p.returncode == 0, "queue list: " + out_of(p))
    return p.stdout


def entry(listing, qid):
    """The lines of qid's entry in a queue listing (its row, then the
    indented lines under it), or None when it is not listed."""
    lines = listing.splitlines()
    for i, l in enumerate(lines):
        if re.match(r"%s[*!\s]" % qid, l):
            out = [l]
            for more in lines[i + 1:]:
                if not more.startswith("    "):
                    break
                out.append(more)
            return out
    return None


def wait_listed(c, qid, state, timeout=20):
    """Wait until qid is in the delivery queue in state (and gone from the
    ingress spool); returns its entry's lines."""
    def listed():
        e = entry(queue_list(c), qid)
        return e if e and re.match(r"%s[*!]?\s+%s\b" % (qid, state), e[0]) else None
    try:
        return wait_for(listed, timeout, interval=0.2, what="%s %s in queue list" % (qid, state))
    except TestFailure as e:
        raise TestFailure("%s; last queue list:\n%s" % (e, queue_list(c)))


def check_held_entry(e, qid, reason):
    check(e[0].startswith(qid + "! "), "held message without '!' after its id: %r" % e[0])
    check(re.match(r"%s!\s+hold\s" % qid, e[0]), "state is not hold: %r" % e[0])
    check(len(e) > 1 and e[1].strip() == "(%s)" % reason,
          "reason line %r, want (%s)" % (e[1:2], reason))
    check("next attempt" not in "\n".join(e), "a held message shows a next attempt:\n" +
          "\n".join(e))


def wait_delivery_ran(c):
    """Send a normal message and wait until it is in the Maildir: whatever
    delivery was going to do with what came before, it has had its turn."""
    m = unique("probe")
    send(c, m)
    c.wait_for_message(DEMO, m)


def attempts(c, qid):
    """How many delivery attempts the log shows for qid."""
    return len(re.findall(r"delivery\[\d+\]: %s: to=<[^>]*>, relay=.*status=" % qid, c.log()))


def hold_reason(marker):
    return "header Subject: %s %s: %s" % (HOLD_SUBJECT, marker, HOLD_TEXT)


UNKNOWN = "0000000000000000Z"          # a valid queue id that no message has
AGES = ["T", "5", "10", "20", "40", "80", "160", "320", "640", "1280", "1280+"]


def ctl_ok(c, *args, **kw):
    """c.ctl(*args) that must exit 0."""
    p = c.ctl(*args, **kw)
    check(p.returncode == 0, "%s: %s" % (" ".join(args), out_of(p)))
    return p


def ctl_conf(c, *args, **conf):
    """`correio` with the instance's configuration changed by conf, from a
    configuration directory of its own: the stages keep theirs."""
    d = tempfile.mkdtemp(prefix="ctl-", dir=c.dir)
    with open(os.path.join(d, "correio.conf"), "w") as f:
        for k, v in dict(c.conf, **conf).items():
            f.write("%s = %s\n" % (k, v))
    return subprocess.run([BIN, "-c", d] + list(args), capture_output=True, text=True,
                          timeout=30 * SLOW)


def json_lines(text):
    """Every line of text parsed as JSON."""
    out = []
    for l in text.splitlines():
        try:
            out.append(json.loads(l))
        except ValueError as e:
            raise TestFailure("not a JSON line: %r: %s" % (l, e))
    return out


def json_entry(objs, qid):
    """qid's object from the delivery queue (the ingress spool may list it
    too for a moment), or None."""
    found = [o for o in objs if o.get("queue_id") == qid and o.get("queue_name") != "spool"]
    check(len(found) <= 1, "%s listed %d times: %r" % (qid, len(found), found))
    return found[0] if found else None


def shape(text):
    """`queue summary`'s table as {domain: [T, 5, 10, ..., 1280+]}, with
    the order of its rows."""
    lines = text.splitlines()
    check(lines and lines[0].split() == AGES, "summary columns: %r" % lines[:1])
    rows, order = {}, []
    for l in lines[1:]:
        w = l.split()
        check(len(w) == len(AGES) + 1 and all(x.isdigit() for x in w[1:]), "summary row %r" % l)
        rows[w[0]] = [int(x) for x in w[1:]]
        order.append(w[0])
    return rows, order


# ---------------------------------------------------------------- cases
@case(conf=HOLD_CONF, fresh=True)
def test_header_hold_not_delivered_then_released(c):
    m = unique("held")
    qid = send_held(c, m)
    e = wait_listed(c, qid, "hold")
    check_held_entry(e, qid, hold_reason(m))
    check(re.search(r"^-- 0 messages in the ingress spool, 1 in the delivery queue$",
                    queue_list(c), re.M), "footer:\n" + queue_list(c))
    check(re.search(r"%s: from=<%s>.*\(queue hold\)" % (qid, SENDER), c.log()),
          "delivery did not log %s as queued on hold" % qid)

    wait_delivery_ran(c)
    check(not delivered(c, m), "the held message %s was delivered" % qid)
    check(entry(queue_list(c), qid), "the held message %s left the queue" % qid)

    p = c.ctl("queue", "release", qid)
    check(p.returncode == 0 and p.stdout == "correio: released from hold: 1 message\n",
          "queue release: " + out_of(p))
    c.wait_for_message(DEMO, m)
    wait_for(lambda: entry(queue_list(c), qid) is None, 10, interval=0.2,
             what="%s gone from the queue after delivery" % qid)
    check(re.search(r"%s: released from hold" % qid, c.log()), "no 'released from hold' log line")

    # released again: nothing left to release
    p = c.ctl("queue", "release", "ALL")
    check(p.returncode == 0 and p.stdout == "correio: released from hold: 0 messages\n",
          "queue release ALL on an empty hold queue: " + out_of(p))


@case(conf=HOLD_CONF, fresh=True)
def test_hold_all_stops_a_deferred_message(c):
    m = unique("relay")
    qid = send(c, m, rcpt=REMOTE)
    e = wait_listed(c, qid, "deferred")
    check(any("next attempt" in l for l in e), "deferred without a next attempt:\n" + "\n".join(e))
    check(attempts(c, qid) == 1, "%d attempts logged before hold" % attempts(c, qid))

    p = c.ctl("queue", "hold", "ALL")
    check(p.returncode == 0 and p.stdout == "correio: placed on hold: 1 message\n",
          "queue hold ALL: " + out_of(p))
    # committed before the answer: the listing shows it at once
    e = entry(queue_list(c), qid)
    check(e, "%s gone after hold" % qid)
    check_held_entry(e, qid, "put on hold by the operator")
    p = c.ctl("queue", "hold", "ALL")
    check(p.returncode == 0 and p.stdout == "correio: placed on hold: 0 messages\n",
          "queue hold ALL twice: " + out_of(p))
    check(re.search(r"%s: placed on hold" % qid, c.log()), "no 'placed on hold' log line")

    # release: tried again at once, not after the hour of backoff
    p = c.ctl("queue", "release", "ALL")
    check(p.returncode == 0 and p.stdout == "correio: released from hold: 1 message\n",
          "queue release ALL: " + out_of(p))

    wait_for(lambda: attempts(c, qid) == 2, 20, interval=0.2,
             what="a second attempt of %s after release" % qid)
    e = entry(queue_list(c), qid)
    check(e and re.match(r"%s\s+deferred\b" % qid, e[0]), "released message listed as %r" % e)


@case(conf=dict(HOLD_CONF, minimal_backoff_time="1s", maximal_backoff_time="1s"), fresh=True)
def test_hold_stops_retries(c):
    """A deferred message retried every second is no longer tried once
    held: a second one, sent after the hold, is tried three times
    meanwhile.  Release tries it again at once."""
    a = send(c, unique("relay-a"), rcpt=REMOTE)
    wait_for(lambda: attempts(c, a) >= 1, 20, interval=0.1, what="a first attempt of %s" % a)
    p = c.ctl("queue", "hold", a)
    check(p.returncode == 0 and p.stdout == "correio: placed on hold: 1 message\n",
          "queue hold ID: " + out_of(p))
    n = attempts(c, a)
    b = send(c, unique("relay-b"), rcpt=REMOTE)
    wait_for(lambda: attempts(c, b) >= 3, 30, interval=0.1, what="three attempts of %s" % b)
    check(attempts(c, a) == n, "held %s was tried %d more time(s)" % (a, attempts(c, a) - n))
    p = c.ctl("queue", "release", a)
    check(p.returncode == 0 and p.stdout == "correio: released from hold: 1 message\n",
          "queue release ID: " + out_of(p))
    wait_for(lambda: attempts(c, a) > n, 10, interval=0.1, what="an attempt of %s after release" % a)


@case(conf=HOLD_CONF, fresh=True, allow_restarts=True)
def test_hold_survives_restart(c):
    m = unique("held")
    qid = send_held(c, m)
    wait_listed(c, qid, "hold")
    mo = unique("held-by-operator")
    qid2 = send(c, mo, rcpt=REMOTE)
    wait_listed(c, qid2, "deferred")
    p = c.ctl("queue", "hold", qid2)
    check(p.returncode == 0 and p.stdout == "correio: placed on hold: 1 message\n",
          "queue hold ID: " + out_of(p))

    rc = c.stop()
    check(rc == 0, "correio run exited %s on SIGTERM" % rc)
    c.start()
    wait_for(lambda: re.search(r"queue: 2 envelopes \(2 on hold\), 0 recipients scheduled",
                               c.log()), 10, what="delivery's startup line counting 2 held envelopes")
    listing = queue_list(c)
    e = entry(listing, qid)
    check(e, "%s is gone after the restart:\n%s" % (qid, listing))
    check_held_entry(e, qid, hold_reason(m))
    e = entry(listing, qid2)
    check(e, "%s is gone after the restart:\n%s" % (qid2, listing))
    check_held_entry(e, qid2, "put on hold by the operator")

    wait_delivery_ran(c)
    check(not delivered(c, m), "the held message %s was delivered after the restart" % qid)
    p = c.ctl("queue", "release", qid)
    check(p.returncode == 0 and p.stdout == "correio: released from hold: 1 message\n",
          "queue release after the restart: " + out_of(p))
    c.wait_for_message(DEMO, m)
    e = entry(queue_list(c), qid2)
    check(e and e[0].startswith(qid2 + "!"), "%s no longer held: %r" % (qid2, e))


@case(conf=HOLD_CONF, fresh=True)
def test_unknown_id_exit_1(c):
    unknown = "0000000000000000Z"
    for verb in ("hold", "release"):
        p = c.ctl("queue", verb, unknown)
        check(p.returncode == 1, "queue %s of an unknown id: %s" % (verb, out_of(p)))
        check(unknown in p.stderr and "not in the delivery queue" in p.stderr,
              "queue %s: no clear message: %s" % (verb, out_of(p)))
    p = c.ctl("queue", "hold", "not-a-queue-id")
    check(p.returncode == 1 and "not-a-queue-id" in p.stderr, "a malformed id: " + out_of(p))

    # an unknown id among known ones: the known one is still held
    m = unique("relay")
    qid = send(c, m, rcpt=REMOTE)
    wait_listed(c, qid, "deferred")
    p = c.ctl("queue", "hold", unknown, qid)
    check(p.returncode == 1 and p.stdout == "correio: placed on hold: 1 message\n"
          and unknown in p.stderr and qid not in p.stderr, "hold of one known, one unknown: "
          + out_of(p))
    e = entry(queue_list(c), qid)
    check(e and e[0].startswith(qid + "!"), "%s not held: %r" % (qid, e))

    p = c.ctl("queue", "hold")
    check(p.returncode == 2 and "usage:" in p.stderr, "queue hold without ids: " + out_of(p))
    p = c.ctl("queue", "release")
    check(p.returncode == 2 and "usage:" in p.stderr, "queue release without ids: " + out_of(p))


@case(conf=HOLD_CONF, fresh=True)
def test_list_and_json_show_the_deferral(c):
    m = unique("relay")
    rcpts = [REMOTE, "other@other.example", DEMO]
    t0 = time.time()
    qid = send(c, m, rcpt=rcpts)
    c.wait_for_message(DEMO, m)
    e = wait_listed(c, qid, "deferred")
    # mailq: the reason in parentheses under the row, the recipients indented
    r = re.match(r"^    \((.+); next attempt [^)]+\)$", e[1]) if len(e) > 1 else None
    check(r, "no (reason; next attempt) line under the row:\n" + "\n".join(e))
    reason = r.group(1)
    for addr, state in ((REMOTE, "deferred"), ("other@other.example", "deferred"),
                        (DEMO, "delivered")):
        check(any(re.match(r"^    %s\s+%s\b" % (re.escape(addr), state), l) for l in e[2:]),
              "recipient %s not listed %s:\n%s" % (addr, state, "\n".join(e)))

    # postqueue -j: one object per line, Postfix's names
    p = ctl_ok(c, "queue", "list", "--json")
    o = json_entry(json_lines(p.stdout), qid)
    check(o, "%s not in list --json:\n%s" % (qid, p.stdout))
    check(o["queue_name"] == "deferred", "queue_name %r" % o["queue_name"])
    check(isinstance(o["arrival_time"], int) and t0 - 5 <= o["arrival_time"] <= time.time() + 5,
          "arrival_time %r, sent at %d" % (o["arrival_time"], t0))
    check(o["message_size"] == len(message(m, rcpts)),
          "message_size %r, want %d" % (o["message_size"], len(message(m, rcpts))))
    check(o["sender"] == SENDER, "sender %r" % o["sender"])
    got = {r["address"]: r for r in o["recipients"]}
    check(sorted(got) == sorted(rcpts), "recipients %r" % o["recipients"])
    check(got[REMOTE]["state"] == "deferred" and got[REMOTE]["delay_reason"] == reason,
          "deferred recipient %r, the listing's reason %r" % (got[REMOTE], reason))
    check(got[DEMO]["state"] == "delivered", "delivered recipient %r" % got[DEMO])
    check(o["reason"] == reason, "reason %r, want %r" % (o["reason"], reason))
    check(isinstance(o["next_attempt"], int) and o["next_attempt"] > time.time() + 30 * 60,
          "next_attempt %r with an hour of backoff" % o["next_attempt"])
    check(isinstance(o["node"], str) and o["node"], "node %r" % o["node"])


class FakeRelay:
    """A loopback SMTP server that answers MAIL FROM with one canned
    temporary failure, raw bytes and all, in a thread."""

    def __init__(self, mail_reply):
        self.mail_reply = mail_reply
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(10)
                try:
                    self._session(conn)
                except OSError:
                    pass

    def _session(self, conn):
        conn.sendall(b"220 fake.relay ESMTP\r\n")
        f = conn.makefile("rb")
        for line in f:
            verb = line[:4].upper()
            if verb in (b"EHLO", b"HELO"):
                conn.sendall(b"250 fake.relay\r\n")
            elif verb == b"MAIL":
                conn.sendall(self.mail_reply + b"\r\n")
            elif verb == b"RSET" or verb == b"NOOP":
                conn.sendall(b"250 ok\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 bye\r\n")
                return
            else:
                conn.sendall(b"502 no\r\n")

    def stop(self):
        self.stopping = True
        self.thread.join(5)
        self.sock.close()


JSON_MARK = "jsonmark%d" % os.getpid()
FAKE_RELAY = [None]


def _fake_relay_port():
    """The fake relay, started when the module's configurations are made
    (it must listen before the case's correio starts)."""
    FAKE_RELAY[0] = FakeRelay(b'450 4.7.1 ' + JSON_MARK.encode()
                              + b' "quoted" back\\slash tab\there caf\xe9 \xff\x01 end')
    atexit.register(FAKE_RELAY[0].stop)
    return FAKE_RELAY[0].port


@case(conf=dict(HOLD_CONF, relayhost="[127.0.0.1]:%d" % _fake_relay_port()), fresh=True)
def test_json_escapes_what_others_send(c):
    """Text from outside reaches the listing: a hold reason quotes the
    client's Subject, a delay reason quotes the relay's answer (here with
    quotes, a backslash, a tab, bytes that are not UTF-8 and a control
    character; the stages make the last three printable, the quotes and
    the backslash stay).  Each message is still one valid JSON line."""
    m = unique("json")
    subject = 'hold me %s "quoted" back\\slash' % m
    held = send(c, m, subject=subject)
    wait_listed(c, held, "hold")
    relayed = send(c, unique("relay"), rcpt=REMOTE)
    wait_listed(c, relayed, "deferred")

    p = ctl_ok(c, "queue", "list", "--json")
    objs = json_lines(p.stdout)
    check(len(p.stdout.splitlines()) == len(objs), "one line per message")
    o = json_entry(objs, held)
    check(o and o["queue_name"] == "hold", "%s not held in:\n%s" % (held, p.stdout))
    check('%s "quoted" back\\slash' % m in o["reason"] and "held by test" in o["reason"],
          "hold reason %r" % o["reason"])
    o = json_entry(objs, relayed)
    check(o and o["queue_name"] == "deferred", "%s not deferred in:\n%s" % (relayed, p.stdout))
    why = o["recipients"][0]["delay_reason"]
    check(JSON_MARK + ' "quoted" back\\slash' in why and "end" in why,
          "delay_reason %r lacks the relay's answer" % why)
    # the text listing shows it printable
    e = entry(queue_list(c), relayed)
    check(e and all(ch.isprintable() for l in e for ch in l), "unprintable listing %r" % e)


@case(conf=HOLD_CONF, fresh=True)
def test_show_prints_the_header_section(c):
    m = unique("show")
    subject = "show me " + m
    qid = send(c, m, rcpt=REMOTE, subject=subject)
    wait_listed(c, qid, "deferred")
    p = ctl_ok(c, "queue", "show", qid)
    check(entry(p.stdout, qid), "no row for %s:\n%s" % (qid, p.stdout))
    check(re.search(r"^    %s\s+deferred\b" % re.escape(REMOTE), p.stdout, re.M),
          "recipient not shown:\n" + p.stdout)
    check(re.search(r"^Subject: %s$" % re.escape(subject), p.stdout, re.M),
          "no Subject header:\n" + p.stdout)
    check(re.search(r"^Message-ID: <%s@client.example>$" % re.escape(m), p.stdout, re.M),
          "no Message-ID header:\n" + p.stdout)
    check("body " + m not in p.stdout, "show printed the body:\n" + p.stdout)

    p = c.ctl("queue", "show", UNKNOWN)
    check(p.returncode == 1 and "not in the delivery queue" in p.stderr and UNKNOWN in p.stderr,
          "show of an unknown id: " + out_of(p))
    p = c.ctl("queue", "show", "not-a-queue-id")
    check(p.returncode == 1 and "not-a-queue-id" in p.stderr, "show of a malformed id: " + out_of(p))


@case(conf=HOLD_CONF, fresh=True)
def test_hold_all_of_one_queue_then_release(c):
    mh = unique("held")
    held = send_held(c, mh)
    wait_listed(c, held, "hold")
    deferred = send(c, unique("relay"), rcpt=REMOTE)
    wait_listed(c, deferred, "deferred")

    p = ctl_ok(c, "queue", "hold", "ALL", "hold")
    check(p.stdout == "correio: placed on hold: 0 messages\n", "hold ALL hold: " + out_of(p))
    p = ctl_ok(c, "queue", "hold", "ALL", "deferred")
    check(p.stdout == "correio: placed on hold: 1 message\n", "hold ALL deferred: " + out_of(p))
    listing = queue_list(c)
    check_held_entry(entry(listing, deferred), deferred, "put on hold by the operator")
    check_held_entry(entry(listing, held), held, hold_reason(mh))

    p = ctl_ok(c, "queue", "release", "ALL")
    check(p.stdout == "correio: released from hold: 2 messages\n", "release ALL: " + out_of(p))
    c.wait_for_message(DEMO, mh)
    wait_listed(c, deferred, "deferred")


@case(conf=HOLD_CONF, fresh=True)
def test_delete_one_from_stdin_and_all(c):
    ids = [send(c, unique("del%d" % i), rcpt=REMOTE) for i in range(5)]
    for q in ids:
        wait_listed(c, q, "deferred")
    held = send_held(c, unique("held"))
    wait_listed(c, held, "hold")

    p = ctl_ok(c, "queue", "delete", ids[0])
    check(p.stdout == "correio: deleted: 1 message\n", "delete ID: " + out_of(p))
    check(entry(queue_list(c), ids[0]) is None, "%s still listed after delete" % ids[0])
    check(re.search(r"%s: deleted" % ids[0], c.log()), "no 'deleted' log line for " + ids[0])

    # postsuper -d -: ids on stdin, also as the listing marks them
    p = ctl_ok(c, "queue", "delete", "-", input="%s\n\n  %s!\n" % (ids[1], ids[2]))
    check(p.stdout == "correio: deleted: 2 messages\n", "delete - : " + out_of(p))
    p = ctl_ok(c, "queue", "delete", "-", input="")
    check(p.stdout == "correio: deleted: 0 messages\n", "delete - with nothing: " + out_of(p))

    p = c.ctl("queue", "delete", ids[3], UNKNOWN)
    check(p.returncode == 1 and p.stdout == "correio: deleted: 1 message\n"
          and UNKNOWN in p.stderr and ids[3] not in p.stderr, "delete known+unknown: " + out_of(p))
    p = c.ctl("queue", "delete", ids[3])
    check(p.returncode == 1 and "not in the delivery queue" in p.stderr and ids[3] in p.stderr,
          "delete of a deleted id: " + out_of(p))

    p = ctl_ok(c, "queue", "delete", "ALL", "deferred")
    check(p.stdout == "correio: deleted: 1 message\n", "delete ALL deferred: " + out_of(p))
    listing = queue_list(c)
    check(entry(listing, ids[4]) is None and entry(listing, held),
          "after delete ALL deferred:\n" + listing)
    p = ctl_ok(c, "queue", "delete", "ALL")
    check(p.stdout == "correio: deleted: 1 message\n", "delete ALL: " + out_of(p))

    # gone, not returned: postsuper -d makes no bounce (one to the remote
    # sender would sit in the queue, deferred)
    wait_delivery_ran(c)
    check(re.search(r"^-- \d+ messages? in the ingress spool, 0 in the delivery queue$",
                    queue_list(c), re.M), "queue not empty after delete ALL:\n" + queue_list(c))


@case(conf=HOLD_CONF, fresh=True)
def test_requeue_and_flush_try_again_now(c):
    """An hour of backoff: each attempt after the first comes from
    requeue or flush."""
    qid = send(c, unique("relay"), rcpt=REMOTE)
    wait_listed(c, qid, "deferred")
    wait_for(lambda: attempts(c, qid) == 1, 20, interval=0.1, what="a first attempt of " + qid)

    def tried(n, after):
        wait_for(lambda: attempts(c, qid) == n, 20, interval=0.1,
                 what="attempt %d of %s after %s" % (n, qid, after))
        wait_listed(c, qid, "deferred")

    p = ctl_ok(c, "queue", "requeue", qid)
    check(p.stdout == "correio: requeued: 1 message\n", "requeue ID: " + out_of(p))
    tried(2, "requeue")
    p = ctl_ok(c, "queue", "flush")
    check(p.stdout == "correio: 1 message scheduled\n", "flush: " + out_of(p))
    tried(3, "flush")
    p = ctl_ok(c, "queue", "requeue", "ALL", "deferred")
    check(p.stdout == "correio: requeued: 1 message\n", "requeue ALL deferred: " + out_of(p))
    tried(4, "requeue ALL deferred")
    p = ctl_ok(c, "queue", "requeue", "-", input=qid + "\n")
    tried(5, "requeue -")
    o = json_entry(json_lines(ctl_ok(c, "queue", "list", "--json").stdout), qid)
    check(o and o["next_attempt"] > time.time() + 30 * 60, "backoff after requeue: %r" % o)

    # held: neither requeue nor flush tries it
    ctl_ok(c, "queue", "hold", qid)
    p = ctl_ok(c, "queue", "requeue", qid)
    check(p.stdout == "correio: requeued: 0 messages\n", "requeue of a held one: " + out_of(p))
    p = ctl_ok(c, "queue", "flush")
    check(p.stdout == "correio: 0 messages scheduled\n", "flush with it held: " + out_of(p))
    wait_delivery_ran(c)
    check(attempts(c, qid) == 5, "a held message was tried")
    p = c.ctl("queue", "requeue", UNKNOWN)
    check(p.returncode == 1 and UNKNOWN in p.stderr, "requeue of an unknown id: " + out_of(p))


@case(conf=HOLD_CONF, fresh=True)
def test_summary_counts_recipients_by_domain(c):
    m = unique("shape")
    a = send(c, m, rcpt=["a@remote.example", "b@remote.example", "x@other.example", DEMO])
    b = send(c, unique("shape"), rcpt=["c@Remote.Example"])
    c.wait_for_message(DEMO, m)
    wait_listed(c, a, "deferred")
    wait_listed(c, b, "deferred")

    # only recipients not yet final: DEMO's is delivered
    rows, order = shape(ctl_ok(c, "queue", "summary").stdout)
    check(order == ["TOTAL", "remote.example", "other.example"], "rows %r" % order)
    check(rows["TOTAL"] == [4, 4] + [0] * 9, "TOTAL %r" % rows["TOTAL"])
    check(rows["remote.example"] == [3, 3] + [0] * 9, "remote.example %r" % rows["remote.example"])
    check(rows["other.example"] == [1, 1] + [0] * 9, "other.example %r" % rows["other.example"])

    o = json.loads(ctl_ok(c, "queue", "summary", "--json").stdout)
    check(o["total"]["total"] == 4 and o["total"]["by_age"][0] == 4, "JSON total %r" % o["total"])
    check([(d["domain"], d["total"]) for d in o["domains"]]
          == [("remote.example", 3), ("other.example", 1)], "JSON domains %r" % o["domains"])

    # one queue only, as qshape's queue argument
    ctl_ok(c, "queue", "hold", b)
    rows, _ = shape(ctl_ok(c, "queue", "summary", "hold").stdout)
    check(rows["TOTAL"][0] == 1 and rows["remote.example"][0] == 1, "summary hold %r" % rows)
    rows, _ = shape(ctl_ok(c, "queue", "summary", "deferred").stdout)
    check(rows["TOTAL"][0] == 3 and rows["remote.example"][0] == 2, "summary deferred %r" % rows)


@case(conf=HOLD_CONF)
def test_usage_errors_exit_2(c):
    for args in (["queue"], ["queue", "frob"], ["queue", "list", "extra"], ["queue", "show"],
                 ["queue", "show", UNKNOWN, UNKNOWN], ["queue", "hold", "ALL", "bogus"],
                 ["queue", "release", "ALL", "hold"], ["queue", "delete"],
                 ["queue", "delete", "ALL", "deferred", "hold"], ["queue", "requeue", UNKNOWN, "ALL"],
                 ["queue", "flush", "now"], ["queue", "summary", "bogus"]):
        p = c.ctl(*args)
        check(p.returncode == 2 and "usage: correio [-c DIR] queue " in p.stderr,
              "%s: %s" % (" ".join(args), out_of(p)))


DEAD_NODE = "ipc://$run_directory/no-such-delivery-admin"


@case(conf=dict(HOLD_CONF, queue_admin_endpoints="$delivery_admin_endpoint, " + DEAD_NODE),
      fresh=True)
def test_dead_node_named_live_node_acts(c):
    """Two delivery nodes, one of them dead: every verb still acts on the
    live one, names the dead one and exits 1."""
    dead = os.path.join(c.conf["run_directory"], "no-such-delivery-admin")
    m = unique("relay")
    qid = send(c, m, rcpt=REMOTE, subject="multi " + m)

    def partial(*args, **kw):
        p = c.ctl(*args, **kw)
        check(p.returncode == 1 and dead in p.stderr and "does not answer" in p.stderr,
              "%s with a dead node: %s" % (" ".join(args), out_of(p)))
        return p

    def listed():
        p = c.ctl("queue", "list")
        e = entry(p.stdout, qid)
        return p if e and re.match(r"%s\s+deferred\b" % qid, e[0]) else None
    p = wait_for(listed, 20, interval=0.2, what="%s deferred in queue list" % qid)
    partial("queue", "list")
    check(re.search(r"^-- \d+ messages? in the ingress spool, 1 in the delivery queue "
                    r"\(1 of 2 nodes answered\)$", p.stdout, re.M), "footer:\n" + p.stdout)
    o = json_entry(json_lines(partial("queue", "list", "--json").stdout), qid)
    check(o and o["queue_name"] == "deferred", "list --json: %r" % o)
    check("Subject: multi " + m in partial("queue", "show", qid).stdout, "show: no Subject")
    rows, _ = shape(partial("queue", "summary").stdout)
    check(rows["TOTAL"][0] == 1, "summary %r" % rows)

    p = partial("queue", "hold", qid)
    check(p.stdout == "correio: placed on hold: 1 message\n" and qid not in p.stderr,
          "hold: " + out_of(p))
    check(entry(partial("queue", "list").stdout, qid)[0].startswith(qid + "!"), "not held")
    p = partial("queue", "release", "ALL")
    check(p.stdout == "correio: released from hold: 1 message\n", "release ALL: " + out_of(p))
    wait_for(lambda: attempts(c, qid) == 2, 20, interval=0.1, what="an attempt after release")
    p = partial("queue", "requeue", qid)
    check(p.stdout == "correio: requeued: 1 message\n", "requeue: " + out_of(p))
    wait_for(lambda: attempts(c, qid) == 3, 20, interval=0.1, what="an attempt after requeue")
    p = partial("queue", "flush")
    check(re.match(r"correio: [01] messages? scheduled\n$", p.stdout), "flush: " + out_of(p))
    p = partial("queue", "delete", qid, UNKNOWN)
    check(p.stdout == "correio: deleted: 1 message\n" and UNKNOWN in p.stderr
          and "not in the delivery queue" in p.stderr, "delete: " + out_of(p))
    check(entry(c.ctl("queue", "list").stdout, qid) is None, "%s listed after delete" % qid)


ADMIN_PORT = free_port()


@case(conf=dict(HOLD_CONF, delivery_admin_endpoint="tcp://127.0.0.1:%d" % ADMIN_PORT),
      fresh=True)
def test_tcp_nodes_and_names(c):
    """Delivery's admin socket on TCP: an IP literal is asked as it is; the
    same process reached twice is asked once; a name is asked at every
    address it has (the DNS lab's mx.ok.test: 127.0.0.1 and ::1, and
    nothing listens on ::1)."""
    qid = send(c, unique("relay"), rcpt=REMOTE)
    wait_listed(c, qid, "deferred")
    here = "tcp://127.0.0.1:%d" % ADMIN_PORT

    p = ctl_conf(c, "queue", "list", queue_admin_endpoints="tcp://127.0.0.1")
    check(p.returncode == 1 and "not tcp://NAME:PORT" in p.stderr, "no port: " + out_of(p))
    p = ctl_conf(c, "queue", "list", queue_admin_endpoints=here)
    check(p.returncode == 0 and entry(p.stdout, qid), "list over tcp: " + out_of(p))
    p = ctl_conf(c, "queue", "list", queue_admin_endpoints="%s tcp://[::ffff:127.0.0.1]:%d"
                 % (here, ADMIN_PORT))
    check(p.returncode == 0 and len(re.findall(r"^%s\s" % qid, p.stdout, re.M)) == 1
          and "nodes" not in p.stdout, "one node reached twice: " + out_of(p))

    if not test_dns():
        return
    p = ctl_conf(c, "queue", "list", queue_admin_endpoints="tcp://aonly.test:%d" % ADMIN_PORT)
    check(p.returncode == 0 and entry(p.stdout, qid), "list at aonly.test: " + out_of(p))
    name = "tcp://mx.ok.test:%d" % ADMIN_PORT
    p = ctl_conf(c, "queue", "hold", qid, queue_admin_endpoints=name)
    check(p.returncode == 1 and p.stdout == "correio: placed on hold: 1 message\n"
          and "tcp://[::1]:%d (from %s) does not answer" % (ADMIN_PORT, name) in p.stderr,
          "hold at both addresses of mx.ok.test: " + out_of(p))
    p = ctl_conf(c, "queue", "list", queue_admin_endpoints="tcp://nowhere.ok.test:%d" % ADMIN_PORT)
    check(p.returncode == 1 and "nowhere.ok.test has no address" in p.stderr,
          "a name without address: " + out_of(p))


if __name__ == "__main__":
    sys.exit(main(globals()))
