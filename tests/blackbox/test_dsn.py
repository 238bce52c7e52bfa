"""test_dsn.py - delivery status notifications at the ingress: the DSN
ESMTP parameters (RFC 3461) on input, and the submit socket through which
delivery hands bounces (and the fetcher fetched mail) to an ingress.

SMTP: EHLO offers DSN; MAIL RET/ENVID and RCPT NOTIFY/ORCPT are taken and
land in the spooled envelope (read back from the spool with mdb_dump while
the classifier is stopped, so nothing moves on); malformed or repeated
ones get 501 5.5.4 and the session goes on.

Submit socket (ROUTER on ingress_submit_endpoint; frames [empty][request]
as a REQ socket sends them): a bounce-like message is answered "250 ...
queued as QID" and lands in a local Maildir with the ingress's Received:
line; malformed requests are refused with status 5 and a clear text; a
full spool answers status 4; garbage frames are logged and dropped; the
ingress keeps running through all of it.

Needs python3-zmq (Debian's /usr/bin/python3) for the submit socket and
mdb_dump (lmdb-utils) for the spool.  Prints PASS/FAIL/SKIP per case
(see harness.py)."""

import os
import re
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, TestFailure, case, check, header_value, main,  # noqa: E402
                     queue_id, simple_message, unique, wait_for)

try:
    import zmq
except ImportError:          # reported as SKIP by the submit cases
    zmq = None

DEMO = "demo@example.test"
ALICE = "alice@example.test"
SENDER = "sender@client.example"
WIRE_VERSION = 1             # lib/wire.h
NO_ZMQ = None if zmq else "python3-zmq is not installed (apt-get install python3-zmq)"
NO_MDB = None if shutil.which("mdb_dump") else "mdb_dump is not installed (lmdb-utils)"

NOTIFY_NEVER, NOTIFY_SUCCESS, NOTIFY_FAILURE, NOTIFY_DELAY = 1, 2, 4, 8
RET_FULL, RET_HDRS = 1, 2


# ---------------------------------------------------------------- protobuf by hand
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(field, value):
    return varint(field << 3 | 0) + varint(value)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def pb_decode(data):
    """{field: [values]}: varints as int, length-delimited as bytes."""
    out = {}
    i = 0

    def rd_varint():
        nonlocal i
        shift = n = 0
        while True:
            check(i < len(data), "truncated varint in %r" % data[:80])
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = rd_varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            v = rd_varint()
        elif wt == 2:
            ln = rd_varint()
            v = data[i:i + ln]
            i += ln
        elif wt == 1:
            v = data[i:i + 8]
            i += 8
        elif wt == 5:
            v = data[i:i + 4]
            i += 4
        else:
            raise TestFailure("unexpected wire type %d in %r" % (wt, data[:80]))
        out.setdefault(field, []).append(v)
    return out


def recipient(address, notify=0, orcpt=""):
    r = pb_bytes(1, address)
    if orcpt:
        r += pb_bytes(2, orcpt)
    if notify:
        r += pb_varint(3, notify)
    return r


def envelope(rcpts, body, sender="", listener="bounce", envid="", ret=0, orig_qid=""):
    """An Envelope as delivery would put it in a SubmitRequest; rcpts are
    recipient() encodings."""
    e = b""
    if orig_qid:
        e += pb_bytes(2, orig_qid)
    e += pb_bytes(5, pb_bytes(5, listener))
    e += pb_bytes(6, sender)
    for r in rcpts:
        e += pb_bytes(7, r)
    if envid:
        e += pb_bytes(10, envid)
    if ret:
        e += pb_varint(11, ret)
    e += pb_bytes(14, body)
    return e


def submit_request(ref, env, version=WIRE_VERSION):
    return pb_varint(1, version) + pb_bytes(2, ref) + pb_bytes(3, env)


def submit_reply(data):
    """(version, ref, status, queue_id, text) of a SubmitReply frame."""
    f = pb_decode(data)
    status = f.get(3, [0])[0]
    if status >= 1 << 63:            # int32 as a 64-bit two's complement varint
        status -= 1 << 64
    return (f.get(1, [0])[0], f.get(2, [b""])[0].decode(), status,
            f.get(4, [b""])[0].decode(), f.get(5, [b""])[0].decode())


def submit_endpoint(c):
    return "ipc://%s/ingress-submit" % c.conf["run_directory"]


class Submitter:
    """A REQ socket on the submit endpoint: its frames are [empty][payload],
    the convention of lib/submit_client.c."""

    def __init__(self, c, timeout=15):
        self.ctx = zmq.Context()
        self.timeout = timeout
        self.sock = self._req(c)
        self.c = c

    def _req(self, c):
        s = self.ctx.socket(zmq.REQ)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVTIMEO, int(self.timeout * 1000 * SLOW))
        s.setsockopt(zmq.SNDTIMEO, int(self.timeout * 1000 * SLOW))
        s.connect(submit_endpoint(c))
        return s

    def call(self, payload):
        self.sock.send(payload)
        try:
            reply = self.sock.recv()
        except zmq.Again:
            # a REQ that got no answer cannot send again: start over
            self.sock.close(0)
            self.sock = self._req(self.c)
            raise TestFailure("no reply on the submit socket within %.0fs" % (self.timeout * SLOW))
        return submit_reply(reply)

    def dealer(self):
        d = self.ctx.socket(zmq.DEALER)
        d.setsockopt(zmq.LINGER, 0)
        d.setsockopt(zmq.RCVTIMEO, int(self.timeout * 1000 * SLOW))
        d.setsockopt(zmq.SNDTIMEO, int(self.timeout * 1000 * SLOW))
        d.connect(submit_endpoint(self.c))
        return d

    def close(self):
        self.sock.close(0)
        self.ctx.term()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def bounce_body(marker, to=SENDER):
    """A small report in the shape delivery's bounce_compose makes."""
    return ("Date: Mon, 2 Feb 2026 10:00:00 +0000\r\n"
            "From: Mail Delivery System <MAILER-DAEMON@mx.example.test>\r\n"
            "Subject: Undelivered Mail Returned to Sender\r\n"
            "To: <%s>\r\n"
            "Auto-Submitted: auto-replied\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: multipart/report; report-type=delivery-status;\r\n"
            "\tboundary=\"b.%s\"\r\n"
            "\r\n"
            "--b.%s\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
            "This is the mail system at host mx.example.test. %s\r\n\r\n"
            "--b.%s\r\n"
            "Content-Type: message/delivery-status\r\n\r\n"
            "Reporting-MTA: dns; mx.example.test\r\n\r\n"
            "Final-Recipient: rfc822; nobody@example.net\r\n"
            "Action: failed\r\nStatus: 5.1.1\r\n\r\n"
            "--b.%s--\r\n" % (to, marker, marker, marker, marker, marker)).encode()


# ---------------------------------------------------------------- helpers
def open_session(c):
    r = c.raw()
    r.expect(220)
    r.expect(250, None, "EHLO client.example")
    return r


class Paused:
    """The classifier stopped (SIGSTOP) for a while: what the ingress
    spools stays in its spool, unacknowledged."""

    def __init__(self, c):
        self.pid = c.stage_pid("classifier")
        check(self.pid, "no classifier process")

    def __enter__(self):
        os.kill(self.pid, signal.SIGSTOP)
        return self

    def __exit__(self, *exc):
        os.kill(self.pid, signal.SIGCONT)


def spool_entry(c, qid):
    """The packed envelope of qid in the ingress spool (mdb_dump), or None."""
    p = subprocess.run(["mdb_dump", "-s", "messages", os.path.join(c.conf["data_directory"], "spool")],
                       capture_output=True, text=True, timeout=30 * SLOW)
    check(p.returncode == 0, "mdb_dump: %s" % p.stderr.strip())
    lines = p.stdout.split("HEADER=END\n", 1)[1].split("DATA=END", 1)[0].splitlines()
    data = [bytes.fromhex(l.strip()) for l in lines if l.startswith(" ")]
    for k, v in zip(data[0::2], data[1::2]):
        if k.rstrip(b"\0").decode("ascii", "replace") == qid:
            return v
    return None


def log_has(c, pos, pattern, timeout=15):
    """Wait until the log since pos matches the regular expression."""
    rx = re.compile(pattern)
    return wait_for(lambda: rx.search(c.log_since(pos)), timeout,
                    what="a log line matching %r" % pattern)


# ---------------------------------------------------------------- SMTP: DSN parameters
@case()
def test_ehlo_offers_dsn(c):
    r = c.raw()
    try:
        r.expect(220)
        text = r.expect(250, None, "EHLO client.example")
        lines = [l[4:] for l in text.splitlines()]
        check("DSN" in lines, "EHLO does not offer DSN: %r" % lines)
        check("8BITMIME" in lines and "ENHANCEDSTATUSCODES" in lines,
              "EHLO lost an extension: %r" % lines)
    finally:
        r.close()


@case(skip=NO_MDB)
def test_dsn_parameters_reach_the_envelope(c):
    m = unique("dsn")
    with Paused(c):
        r = open_session(c)
        try:
            r.expect(250, "2.1.0", "MAIL FROM:<%s> RET=HDRS ENVID=QQ+2B314159 SIZE=100" % SENDER)
            r.expect(250, "2.1.5", "RCPT TO:<%s> NOTIFY=SUCCESS,FAILURE "
                                   "ORCPT=rfc822;demo+2Btag@example.test" % DEMO)
            r.expect(250, "2.1.5", "RCPT TO:<%s> notify=never" % ALICE)
            r.expect(250, "2.1.5", "RCPT TO:<bob@example.test> ORCPT=rfc822;bob@example.test "
                                   "NOTIFY=DELAY")
            r.expect(354, None, "DATA")
            r.send(simple_message(m) + b".\r\n")
            qid = queue_id(r.expect(250, "2.0.0"))
            check(qid, "no queue id")
        finally:
            r.close()
        raw = spool_entry(c, qid)
        check(raw is not None, "%s is not in the spool" % qid)
    env = pb_decode(raw)
    check(env.get(10) == [b"QQ+314159"], "envid %r" % env.get(10))
    check(env.get(11) == [RET_HDRS], "ret %r" % env.get(11))
    rcpts = [pb_decode(x) for x in env.get(7, [])]
    got = [(x.get(1, [b""])[0].decode(), x.get(2, [b""])[0].decode(), x.get(3, [0])[0])
           for x in rcpts]
    check(got == [(DEMO, "rfc822;demo+tag@example.test", NOTIFY_SUCCESS | NOTIFY_FAILURE),
                  (ALICE, "", NOTIFY_NEVER),
                  ("bob@example.test", "rfc822;bob@example.test", NOTIFY_DELAY)],
          "recipients in the envelope: %r" % got)
    c.wait_for_message(DEMO, m, timeout=60)
    c.wait_for_message(ALICE, m, timeout=30)


@case(skip=NO_MDB)
def test_no_dsn_parameters_no_dsn_fields(c):
    m = unique("nodsn")
    with Paused(c):
        r = open_session(c)
        try:
            r.expect(250, "2.1.0", "MAIL FROM:<%s>" % SENDER)
            r.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)
            r.expect(354, None, "DATA")
            r.send(simple_message(m) + b".\r\n")
            qid = queue_id(r.expect(250, "2.0.0"))
        finally:
            r.close()
        raw = spool_entry(c, qid)
        check(raw is not None, "%s is not in the spool" % qid)
    env = pb_decode(raw)
    check(10 not in env and 11 not in env, "envid/ret set without parameters: %r" % env)
    rc = pb_decode(env[7][0])
    check(2 not in rc and 3 not in rc, "orcpt/notify set without parameters: %r" % rc)
    c.wait_for_message(DEMO, m, timeout=60)


@case()
def test_bad_dsn_parameters_refused(c):
    bad_mail = [
        ("RET=ALL", "Bad RET parameter"),
        ("RET", "Bad RET parameter"),
        ("RET=FULL RET=HDRS", "Duplicate RET"),
        ("ENVID=", "Bad ENVID parameter"),
        ("ENVID=a+0Db", "Bad ENVID parameter"),        # CR inside
        ("ENVID=a+2", "Bad ENVID parameter"),
        ("ENVID=" + "x" * 101, "Bad ENVID parameter"),
        ("ENVID=a ENVID=b", "Duplicate ENVID"),
    ]
    bad_rcpt = [
        ("NOTIFY=NEVER,SUCCESS", "Bad NOTIFY parameter"),
        ("NOTIFY=SOMETIMES", "Bad NOTIFY parameter"),
        ("NOTIFY=", "Bad NOTIFY parameter"),
        ("NOTIFY=SUCCESS,SUCCESS", "Bad NOTIFY parameter"),
        ("NOTIFY=SUCCESS NOTIFY=FAILURE", "Duplicate NOTIFY"),
        ("ORCPT=demo@example.test", "Bad ORCPT parameter"),
        ("ORCPT=rfc822;", "Bad ORCPT parameter"),
        ("ORCPT=rfc822;a+0Ab@c", "Bad ORCPT parameter"),
        ("ORCPT=rfc822;a ORCPT=rfc822;b", "Duplicate ORCPT"),
    ]
    # a fresh session every few refusals: smtpd_hard_error_limit is 20
    for chunk in (bad_mail, bad_rcpt[:5], bad_rcpt[5:]):
        m = unique("after-bad")
        r = open_session(c)
        try:
            for param, why in chunk:
                if chunk is bad_mail:
                    text = r.expect(501, "5.5.4", "MAIL FROM:<%s> %s" % (SENDER, param))
                else:
                    if r.cmd("RSET")[0] != 250 or r.cmd("MAIL FROM:<%s>" % SENDER)[0] != 250:
                        raise TestFailure("RSET/MAIL refused")
                    text = r.expect(501, "5.5.4", "RCPT TO:<%s> %s" % (DEMO, param))
                check(why in text, "%s: reply %r does not say %r" % (param, text, why))
            # the session goes on: a complete transaction
            r.cmd("RSET")
            r.expect(250, "2.1.0", "MAIL FROM:<%s> RET=FULL" % SENDER)
            r.expect(250, "2.1.5", "RCPT TO:<%s> NOTIFY=FAILURE,DELAY" % DEMO)
            r.expect(354, None, "DATA")
            r.send(simple_message(m) + b".\r\n")
            r.expect(250, "2.0.0")
        finally:
            r.close()
        c.wait_for_message(DEMO, m, timeout=30)


@case()
def test_unknown_rcpt_parameter_still_555(c):
    r = open_session(c)
    try:
        r.expect(250, "2.1.0", "MAIL FROM:<%s>" % SENDER)
        text = r.expect(555, "5.5.4", "RCPT TO:<%s> FOO=BAR" % DEMO)
        check("FOO" in text, "reply %r" % text)
        r.expect(250, "2.1.5", "RCPT TO:<%s>" % DEMO)
    finally:
        r.close()


# ---------------------------------------------------------------- the submit socket
@case(skip=NO_ZMQ)
def test_submit_bounce_delivered(c):
    m = unique("bounce")
    pos = c.log_size()
    with Submitter(c) as s:
        body = bounce_body(m, to=DEMO)
        env = envelope([recipient(DEMO)], body, sender="", listener="bounce",
                       orig_qid="0000000000000ABCD")
        v, ref, status, qid, text = s.call(submit_request("ref-" + m, env))
    check(v == WIRE_VERSION, "reply version %d" % v)
    check(ref == "ref-" + m, "ref %r" % ref)
    check(status == 0, "status %d: %r" % (status, text))
    check(re.fullmatch(r"[0-9A-Z]{17}", qid or ""), "queue id %r" % qid)
    check(text == "250 2.0.0 Ok: queued as %s" % qid, "text %r" % text)
    data = c.wait_for_message(DEMO, m, timeout=30)
    check(header_value(data, "Return-Path") == "<>",
          "Return-Path: %r" % header_value(data, "Return-Path"))
    rec = header_value(data, "Received") or ""
    check(re.fullmatch(r"by mx\.example\.test \(correio\) id %s\s*for <%s>; .+" % (qid, DEMO), rec),
          "Received: %r" % rec)
    check(body.replace(b"\r\n", b"\n") in data, "the report's bytes changed on the way")
    log = c.log_since(pos)
    check(re.search(r"%s: client=local, listener=bounce, ref=ref-%s, orig_queue_id=0000000000000ABCD"
                    % (qid, re.escape(m)), log), "no client= log line:\n" + log[-2000:])
    check(re.search(r"%s: from=<>, size=\d+, nrcpt=1 \(queue active\)" % qid, log),
          "no from= log line:\n" + log[-2000:])


@case(skip=NO_ZMQ)
def test_submit_keeps_dsn_fields_and_8bit(c):
    """Several recipients, a sender, ENVID/RET/NOTIFY/ORCPT, an 8-bit body:
    all taken, each delivered."""
    m = unique("fetch")
    body = ("From: <%s>\r\nSubject: fetched\r\n\r\nol\xe1 %s\r\n" % (SENDER, m)).encode("latin-1")
    with Submitter(c) as s:
        env = envelope([recipient(DEMO, NOTIFY_FAILURE, "rfc822;demo@example.test"),
                        recipient(ALICE, NOTIFY_NEVER)], body, sender=SENDER, listener="fetch",
                       envid="E-1", ret=RET_HDRS)
        _, _, status, qid, text = s.call(submit_request("r1", env))
    check(status == 0, "status %d: %r" % (status, text))
    for a in (DEMO, ALICE):
        data = c.wait_for_message(a, m, timeout=30)
        check(header_value(data, "Received").startswith("by mx.example.test (correio) id %s;" % qid),
              "Received (several recipients: no 'for'): %r" % header_value(data, "Received"))
        check(b"ol\xe1" in data, "8-bit byte lost")


@case(conf={"message_size_limit": "2000", "smtpd_recipient_limit": "3"}, skip=NO_ZMQ)
def test_submit_refusals(c):
    pid = c.stage_pid("ingress")
    good = bounce_body("x")
    big = b"Subject: big\r\n\r\n" + b"y" * 3000 + b"\r\n"
    cases = [
        ("no body", envelope([recipient(DEMO)], b""), "no content"),
        ("bare LF", envelope([recipient(DEMO)], b"Subject: x\n\nbody\n"), "CRLF"),
        ("bare CR", envelope([recipient(DEMO)], b"Subject: x\r\n\r\nbo\rdy\r\n"), "CRLF"),
        ("no final CRLF", envelope([recipient(DEMO)], b"Subject: x\r\n\r\nbody"), "CRLF"),
        ("too big", envelope([recipient(DEMO)], big), "5.3.4"),
        ("too many rcpts", envelope([recipient(a) for a in
                                     (DEMO, ALICE, "bob@example.test", "carol@example.test")], good),
         "too many recipients"),
        ("bad rcpt", envelope([recipient("not an address")], good), "5.1.3"),
        ("empty rcpt", envelope([recipient("")], good), "5.1.3"),
        ("rcpt with CRLF", envelope([recipient("a\r\nb@example.test")], good), "5.1.3"),
        ("bad sender", envelope([recipient(DEMO)], good, sender="a@@b"), "5.1.7"),
        ("NEVER and more", envelope([recipient(DEMO, NOTIFY_NEVER | NOTIFY_SUCCESS)], good), "NOTIFY"),
        ("unknown notify bit", envelope([recipient(DEMO, 16)], good), "NOTIFY"),
        ("bad orcpt", envelope([recipient(DEMO, 0, "no-type")], good), "ORCPT"),
        ("envid with CR", envelope([recipient(DEMO)], good, envid="a\rb"), "ENVID"),
        ("ret 7", envelope([recipient(DEMO)], good, ret=7), "RET"),
    ]
    with Submitter(c) as s:
        for name, env, why in cases:
            pos = c.log_size()
            _, ref, status, qid, text = s.call(submit_request("ref-" + name, env))
            check(ref == "ref-" + name, "%s: ref %r" % (name, ref))
            check(status == 5, "%s: status %d %r" % (name, status, text))
            check(qid == "", "%s: a queue id for a refused request: %r" % (name, qid))
            check(re.match(r"5\d\d 5\.\d+\.\d+ ", text) and why in text,
                  "%s: reply text %r does not say %r" % (name, text, why))
            log_has(c, pos, r"NOQUEUE: reject: submit from local \(bounce\): .*; ref=ref-%s "
                    % re.escape(name))
        # requests the wire decoding refuses, answered all the same
        _, ref, status, _, text = s.call(submit_request("ref-v9", envelope([recipient(DEMO)], good),
                                                        version=9))
        check(status == 5 and "version 9" in text, "version 9: status %d %r" % (status, text))
        _, ref, status, _, text = s.call(submit_request("ref-norcpt", envelope([], good)))
        check(status == 5 and "recipients" in text, "no recipients: status %d %r" % (status, text))
        # and a good one still goes through
        m = unique("after-refusals")
        _, _, status, qid, text = s.call(submit_request("ok", envelope([recipient(DEMO)],
                                                                       bounce_body(m, DEMO))))
        check(status == 0, "good request after the refusals: %d %r" % (status, text))
    c.wait_for_message(DEMO, m, timeout=30)
    check(c.stage_pid("ingress") == pid, "the ingress restarted")


@case(skip=NO_ZMQ)
def test_submit_garbage_dropped(c):
    pid = c.stage_pid("ingress")
    pos = c.log_size()
    with Submitter(c) as s:
        d = s.dealer()
        junk = b"\x07" + os.urandom(200)
        d.send(junk)                             # no delimiter
        d.send_multipart([b"", junk])            # does not decode
        d.send_multipart([b"", b"a", b"b"])      # too many parts
        d.send_multipart([b"x", junk])           # not an empty delimiter
        log_has(c, pos, r"dropped bad frame from submit socket: 201 bytes: submit request: "
                        r"1 part, expected \[empty\]\[SubmitRequest\]")
        log_has(c, pos, r"dropped bad frame from submit socket: 201 bytes: submit request: "
                        r"does not decode")
        log_has(c, pos, r"dropped bad frame from submit socket: \d+ bytes: submit request: "
                        r"3 parts, expected")
        log_has(c, pos, r"dropped bad frame from submit socket: 202 bytes: submit request: "
                        r"2 parts, expected")
        # nothing was answered to the garbage
        check(d.poll(200) == 0, "the ingress answered a garbage frame")
        # the same DEALER, done right (as submit_client.c does), is answered
        m = unique("dealer")
        d.send_multipart([b"", submit_request("dealer-ref", envelope([recipient(DEMO)],
                                                                     bounce_body(m, DEMO)))])
        parts = d.recv_multipart()
        check(len(parts) == 2 and parts[0] == b"", "reply frames %r" % [p[:20] for p in parts])
        _, ref, status, qid, text = submit_reply(parts[1])
        check(ref == "dealer-ref" and status == 0, "DEALER request: %r %d %r" % (ref, status, text))
        d.close(0)
    c.wait_for_message(DEMO, m, timeout=30)
    check(c.stage_pid("ingress") == pid, "the ingress restarted")
    # SMTP still works
    m2 = unique("smtp-after-garbage")
    check(c.send(SENDER, [DEMO], simple_message(m2)) == {}, "SMTP refused after the garbage")
    c.wait_for_message(DEMO, m2, timeout=30)


@case(conf={"spool_message_limit": "1"}, skip=NO_ZMQ, fresh=True, timeout=120)
def test_submit_spool_full_is_temporary(c):
    m1, m2 = unique("first"), unique("second")
    with Submitter(c) as s:
        with Paused(c):
            _, _, status, qid1, text = s.call(submit_request("one", envelope([recipient(DEMO)],
                                                                             bounce_body(m1, DEMO))))
            check(status == 0, "first: %d %r" % (status, text))
            _, _, status, qid, text = s.call(submit_request("two", envelope([recipient(DEMO)],
                                                                            bounce_body(m2, DEMO))))
            check(status == 4 and text.startswith("451 4.3.1"),
                  "second while the spool is full: %d %r" % (status, text))
            r = open_session(c)
            try:
                r.expect(451, "4.3.1", "MAIL FROM:<%s>" % SENDER)
            finally:
                r.close()
        c.wait_for_message(DEMO, m1, timeout=60)
        # once delivery owns the first, the caller's retry is taken
        def retried():
            _, _, st, q, _ = s.call(submit_request("two", envelope([recipient(DEMO)],
                                                                   bounce_body(m2, DEMO))))
            return st == 0 and q
        wait_for(retried, 30, interval=0.2, what="the retried submission taken")
    c.wait_for_message(DEMO, m2, timeout=30)


if __name__ == "__main__":
    sys.exit(main(globals()))
