"""test_queue.py - the delivery queue's hold queue, as Postfix's: a message
that header_checks answers HOLD is owned by delivery but never delivered,
`correio queue list` marks it with "!" after its queue id, `correio queue
release` delivers it at once, `correio queue hold` stops a deferred one
from being tried again, hold survives a restart, and an unknown id is an
error.

The held messages come from a pcre header_checks table with
    /^Subject: hold me/ HOLD held by test
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import atexit
import os
import re
import shutil
import smtplib
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, TestFailure, case, check, main, queue_id,  # noqa: E402
                     simple_message, unique, wait_for)

DEMO = "demo@example.test"
REMOTE = "someone@remote.example"      # relay: deferred (no SMTP client yet)
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


HOLD_CONF = {"header_checks": "pcre:" + _header_checks(),
             # a deferred recipient is not tried again during a test
             "minimal_backoff_time": "1h", "maximal_backoff_time": "2h"}


def out_of(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


def send(c, marker, rcpt=DEMO, subject="test"):
    """One message over SMTP; returns its queue id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        code, text = s.rcpt(rcpt)
        check(code == 250, "RCPT TO:<%s>: %d %r" % (rcpt, code, text))
        code, text = s.data(simple_message(marker, to=rcpt, subject=subject))
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
        if re.match(r"%s[!\s]" % qid, l):
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
        return e if e and re.match(r"%s!?\s+%s\b" % (qid, state), e[0]) else None
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
    check(re.search(r"queue: 2 envelopes \(2 on hold\), 0 recipients scheduled", c.log()),
          "delivery's startup line does not count 2 held envelopes")
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


if __name__ == "__main__":
    sys.exit(main(globals()))
