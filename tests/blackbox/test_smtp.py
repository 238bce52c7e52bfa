"""test_smtp.py - the ingress as real clients see it: swaks, smtplib and a
raw socket on loopback.  Prints PASS/FAIL/SKIP per case (see harness.py)."""

import os
import re
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DEFAULT_USERS, SLOW, TestFailure, case, check, free_port,  # noqa: E402
                     header_value, main, queue_id, simple_message, strip_added_headers, unique, wait_for)

DEMO = "demo@example.test"
DEFAULT_USERS_AND_POSTMASTER = DEFAULT_USERS + ("postmaster@mx.example.test",)
SENDER = "sender@client.example"


def swaks(c, *args, timeout=60):
    cmd = ["swaks", "--server", "127.0.0.1:%d" % c.port, "--helo", "client.example",
           "--timeout", "30"] + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW)


def deliver_in_session(r, marker, rcpt=DEMO, mail_from=SENDER):
    """On an open RawSMTP session: one complete transaction; returns the QID."""
    r.expect(250, "2.", "MAIL FROM:<%s>" % mail_from)
    r.expect(250, "2.", "RCPT TO:<%s>" % rcpt)
    r.expect(354, None, "DATA")
    r.send(simple_message(marker, to=rcpt) + b".\r\n")
    text = r.expect(250, "2.0.0")
    qid = queue_id(text)
    check(qid, "no 'queued as QID' in %r" % text)
    return qid


def open_session(c):
    r = c.raw()
    r.expect(220)
    r.expect(250, None, "EHLO client.example")
    return r


# ---------------------------------------------------------------- delivery
@case()
def test_delivery_smtplib(c):
    m = unique()
    refused = c.send(SENDER, [DEMO], simple_message(m))
    check(refused == {}, "refused: %r" % refused)
    data = c.wait_for_message(DEMO, m)
    names, rest = strip_added_headers(data)
    for h in ("return-path", "delivered-to", "received", "x-spam-score", "x-spam-status"):
        check(h in names, "added header %s missing; got %r" % (h, names))
    check(b"\r" not in data, "delivered file has CR bytes (expected LF line ends)")
    check(header_value(data, "Return-Path") == "<%s>" % SENDER,
          "Return-Path: %r" % header_value(data, "Return-Path"))
    check(DEMO in (header_value(data, "Delivered-To") or ""),
          "Delivered-To: %r" % header_value(data, "Delivered-To"))
    check(rest == simple_message(m).replace(b"\r\n", b"\n"), "body differs: %r" % rest[:300])


@case()
def test_delivery_swaks(c):
    m = unique()
    p = swaks(c, "--from", SENDER, "--to", DEMO, "--header", "Subject: " + m, "--body", m)
    check(p.returncode == 0, "swaks exit %d: %s" % (p.returncode, p.stdout[-800:]))
    c.wait_for_message(DEMO, m)


@case(conf={"mydestination": "example.test, mx.example.test"},
      users=DEFAULT_USERS_AND_POSTMASTER)
def test_rcpt_bare_postmaster(c):
    """RFC 5321 4.5.1: RCPT TO:<Postmaster> (no domain) is postmaster@myhostname."""
    m = unique()
    r = open_session(c)
    r.expect(250, "2.", "MAIL FROM:<%s>" % SENDER)
    r.expect(250, "2.1.5", "RCPT TO:<Postmaster>")
    r.expect(354, None, "DATA")
    r.send(simple_message(m, to="postmaster") + b".\r\n")
    r.expect(250, "2.0.0")
    r.expect(221, None, "QUIT")
    c.wait_for_message("postmaster@mx.example.test", m)


def tricky_message(marker):
    lines = [
        b"From: <sender@client.example>",
        b"To: <demo@example.test>",
        b"Subject: tricky " + marker.encode(),
        b"Message-ID: <" + marker.encode() + b"@client.example>",
        b"MIME-Version: 1.0",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: 8bit",
        b"X-Trailing: spaces   ",
        b"",
        b".leading dot",
        b"..two leading dots",
        b"..",
        b".",
        b" . space dot",
        b"trailing whitespace   ",
        b"trailing tab\t",
        b"",
        b"",
        "8-bit: caf\u00e9 na\u00efve \u65e5\u672c\u8a9e \u00ff\u00fe".encode("utf-8") + bytes(range(0x80, 0x100, 7)),
        b"x" * 998,
        b"." + b"y" * 996,   # 998 octets once dot-stuffed
        b"a line with \"quotes\" and <angle> and ; semi",
        b"",
        b"end.",
        b"",
    ]
    return b"\r\n".join(lines) + b"\r\n"


@case()
def test_body_byte_exact(c):
    m = unique()
    msg = tricky_message(m)
    refused = c.send(SENDER, [DEMO], msg, mail_options=["BODY=8BITMIME"])
    check(refused == {}, "refused: %r" % refused)
    data = c.wait_for_message(DEMO, m)
    names, rest = strip_added_headers(data)
    want = msg.replace(b"\r\n", b"\n")
    if rest != want:
        a, b = rest.split(b"\n"), want.split(b"\n")
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                raise TestFailure("line %d differs: got %r want %r" % (i + 1, x[:120], y[:120]))
        raise TestFailure("length differs: got %d lines, want %d" % (len(a), len(b)))


@case()
def test_body_byte_exact_raw_dot_stuffing(c):
    # by hand: dot-stuffed lines must come out unstuffed
    m = unique()
    msg = tricky_message(m)
    stuffed = b"".join((b"." + l if l.startswith(b".") else l)
                       for l in msg.splitlines(keepends=True))
    with open_session(c) as r:
        r.expect(250, "2.", "MAIL FROM:<%s> BODY=8BITMIME" % SENDER)
        r.expect(250, "2.", "RCPT TO:<%s>" % DEMO)
        r.expect(354, None, "DATA")
        r.send(stuffed + b".\r\n")
        r.expect(250, "2.0.0")
        r.expect(221, None, "QUIT")
    data = c.wait_for_message(DEMO, m)
    check(strip_added_headers(data)[1] == msg.replace(b"\r\n", b"\n"), "body differs")


# ---------------------------------------------------------------- pipelining
@case()
def test_pipelining_raw(c):
    markers = [unique("pipe") for _ in range(5)]
    with open_session(c) as r:
        # group 1: MAIL, RCPT x3 (one unknown), DATA in one write
        r.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nRCPT TO:<nosuchuser@example.test>\r\n"
               "RCPT TO:<alice@example.test>\r\nDATA\r\n" % (SENDER, DEMO))
        r.expect(250)
        r.expect(250)
        r.expect(550, "5.1.1")
        r.expect(250)
        r.expect(354)
        qids = []
        for i, m in enumerate(markers):
            # message content, end of data, and the next group in one write
            chunk = simple_message(m) + b".\r\n"
            last = i == len(markers) - 1
            if not last:
                chunk += ("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nDATA\r\n" % (SENDER, DEMO)).encode()
            else:
                chunk += b"RSET\r\nNOOP\r\nQUIT\r\n"
            r.send(chunk)
            qids.append(queue_id(r.expect(250, "2.0.0")))
            if not last:
                r.expect(250)
                r.expect(250)
                r.expect(354)
        r.expect(250)
        r.expect(250)
        r.expect(221)
        check(r.is_closed(), "not closed after QUIT")
    check(len(set(qids)) == len(markers) and all(qids), "queue ids not distinct: %r" % qids)
    for m in markers:
        c.wait_for_message(DEMO, m)
    c.wait_for_message("alice@example.test", markers[0])


@case()
def test_pipelining_swaks(c):
    m = unique()
    p = swaks(c, "--pipeline", "--from", SENDER, "--to", DEMO + ",bob@example.test",
              "--header", "Subject: " + m, "--body", m)
    check(p.returncode == 0, "swaks --pipeline exit %d: %s" % (p.returncode, p.stdout[-800:]))
    c.wait_for_message(DEMO, m)
    c.wait_for_message("bob@example.test", m)


@case(conf={"message_size_limit": "1048576"})
def test_ehlo_keywords(c):
    s = c.smtp()
    try:
        for k in ("pipelining", "size", "8bitmime", "enhancedstatuscodes"):
            check(s.has_extn(k), "EHLO lacks %s: %r" % (k.upper(), s.ehlo_resp))
        check(s.esmtp_features["size"].strip() == "1048576",
              "SIZE %r, want 1048576" % s.esmtp_features["size"])
    finally:
        s.quit()


# ---------------------------------------------------------------- rejections
@case()
def test_unknown_user_550(c):
    with open_session(c) as r:
        r.expect(250, None, "MAIL FROM:<%s>" % SENDER)
        r.expect(550, "5.1.1", "RCPT TO:<nosuchuser@example.test>")
        r.expect(250, "2.", "RCPT TO:<%s>" % DEMO)


@case()
def test_smtplib_partial_recipients(c):
    m = unique()
    refused = c.send(SENDER, [DEMO, "nosuchuser@example.test"], simple_message(m))
    check(list(refused) == ["nosuchuser@example.test"], "refused dict: %r" % refused)
    code, text = refused["nosuchuser@example.test"]
    check(code == 550 and text.startswith(b"5.1.1"), "refusal %r %r" % (code, text))
    c.wait_for_message(DEMO, m)
    try:
        c.send(SENDER, ["nosuchuser@example.test", "other@example.test"], simple_message(unique()))
        raise TestFailure("all recipients unknown, but no SMTPRecipientsRefused")
    except smtplib.SMTPRecipientsRefused as e:
        check(len(e.recipients) == 2, "refused %r" % e.recipients)


@case(conf={"mynetworks": "192.0.2.0/24"})
def test_relay_denied_outside_mynetworks(c):
    m = unique()
    with open_session(c) as r:
        r.expect(250, None, "MAIL FROM:<%s>" % SENDER)
        r.expect(554, "5.7.1", "RCPT TO:<someone@remote.example>")
        # local recipients are still accepted from anywhere
        r.expect(250, "2.", "RCPT TO:<%s>" % DEMO)
        r.expect(354, None, "DATA")
        r.send(simple_message(m) + b".\r\n")
        r.expect(250, "2.0.0")
    c.wait_for_message(DEMO, m)
    p = swaks(c, "--from", SENDER, "--to", "someone@remote.example")
    check(p.returncode == 24, "swaks relay attempt exit %d, want 24" % p.returncode)


# relayed through a next hop where nothing listens: deferred, and kept
@case(conf={"minimal_backoff_time": "1h", "maximal_backoff_time": "2h",
            "relayhost": "[127.0.0.1]:%d" % free_port()})
def test_relay_from_mynetworks_deferred(c):
    with open_session(c) as r:
        qid = deliver_in_session(r, unique(), rcpt="someone@remote.example")

    def listed():
        p = c.ctl("queue", "list")
        return re.search(r"^%s\s+deferred\b" % qid, p.stdout, re.M) and p
    p = wait_for(listed, 30, interval=0.3, what="%s deferred in `correio queue list`" % qid)
    check(p.returncode == 0, "queue list exit %d" % p.returncode)


@case(conf={"message_size_limit": "10240"})
def test_size_at_mail_552(c):
    with open_session(c) as r:
        r.expect(552, "5.3.4", "MAIL FROM:<%s> SIZE=20000" % SENDER)
        r.expect(250, None, "MAIL FROM:<%s> SIZE=2000" % SENDER)


@case(conf={"message_size_limit": "10240"})
def test_size_data_over_limit_552(c):
    big = unique("big")
    with open_session(c) as r:
        r.expect(250, None, "MAIL FROM:<%s>" % SENDER)
        r.expect(250, None, "RCPT TO:<%s>" % DEMO)
        r.expect(354, None, "DATA")
        r.send(simple_message(big) + (b"z" * 70 + b"\r\n") * 400 + b".\r\n")
        r.expect(552, "5.3.4")
        r.expect(250, None, "NOOP")
        m = unique()
        deliver_in_session(r, m)
    c.wait_for_message(DEMO, m)
    check(not any(big.encode() in x for x in c.maildir_messages(DEMO)), "oversized message delivered")


@case(conf={"smtpd_recipient_limit": "3"})
def test_recipient_limit_452(c):
    m = unique()
    with open_session(c) as r:
        r.expect(250, None, "MAIL FROM:<%s>" % SENDER)
        for u in ("demo", "alice", "bob"):
            r.expect(250, None, "RCPT TO:<%s@example.test>" % u)
        r.expect(452, "4.5.3", "RCPT TO:<carol@example.test>")
        r.expect(354, None, "DATA")
        r.send(simple_message(m) + b".\r\n")
        r.expect(250, "2.0.0")
    for u in ("demo", "alice", "bob"):
        c.wait_for_message(u + "@example.test", m)
    check(not c.maildir_files("carol@example.test"), "carol got the message")


@case(conf={"smtpd_timeout": "2s"}, timeout=40)
def test_idle_timeout_421(c):
    with c.raw(timeout=20) as r:
        t0 = time.monotonic()
        r.expect(220)
        r.expect(250, None, "EHLO client.example")
        r.expect(421, "4.4.2")
        dt = time.monotonic() - t0
        check(dt >= 1.5, "421 after %.2fs, before smtpd_timeout 2s" % dt)
        check(r.is_closed(), "connection not closed after 421")


@case(conf={"smtpd_session_limit": "3"}, timeout=40)
def test_session_limit_421(c):
    sessions = []
    try:
        for _ in range(3):
            r = c.raw()
            r.expect(220)
            sessions.append(r)
        with c.raw() as r4:
            r4.expect(421, "4.7.0")
            check(r4.is_closed(), "4th connection not closed after 421")
        sessions.pop().close()

        def fourth_ok():
            with c.raw() as r:
                rep = r.read_reply()
                return rep is not None and rep[0] == 220
        wait_for(fourth_ok, 10, interval=0.1, what="a free session slot after one closed")
    finally:
        for r in sessions:
            r.close()


@case()
def test_line_too_long_500(c):
    with open_session(c) as r:
        r.expect(500, "5.5.2", "NOOP " + "x" * 600)
        r.expect(250, None, "NOOP")
        r.expect(500, "5.5.2", "MAIL FROM:<" + "a" * 1000 + "@example.com>")
        r.expect(250, None, "NOOP")
        m = unique()
        deliver_in_session(r, m)
    c.wait_for_message(DEMO, m)


def malformed(cmd, code, enhanced, setup=()):
    def fn(c):
        m = unique()
        with open_session(c) as r:
            for s in setup:
                r.expect(250, None, s)
            r.expect(code, enhanced, cmd)
            r.expect(250, None, "RSET")
            deliver_in_session(r, m)
        c.wait_for_message(DEMO, m)
    return fn


for _name, _args in {
    "unknown_verb_502": ("FROBNICATE now", 502, "5.5.2"),
    "mail_without_from_501": ("MAIL <%s>" % SENDER, 501, "5.5.4"),
    "bad_sender_501": ("MAIL FROM:<foo@@bad..example>", 501, "5.1.7"),
    "bad_recipient_501": ("RCPT TO:<bar@@bad..example>", 501, "5.1.3",
                          ("MAIL FROM:<%s>" % SENDER,)),
    "rcpt_before_mail_503": ("RCPT TO:<%s>" % DEMO, 503, "5.5.1"),
    "data_before_rcpt_503": ("DATA", 503, "5.5.1", ("MAIL FROM:<%s>" % SENDER,)),
    "unknown_mail_param_555": ("MAIL FROM:<%s> FOO=BAR" % SENDER, 555, "5.5.4"),
}.items():
    _fn = malformed(*_args)
    _fn.__name__ = "test_" + _name
    case()(_fn)


@case()
def test_bare_lf_command_500(c):
    with open_session(c) as r:
        # the server may end the line at the bare LF (then the rest is a
        # second command) or at the CRLF (one line holding a bare LF); either
        # way the bare LF gets a 500 and nothing else goes wrong
        r.send(b"NOOP\nNOOP\r\n")
        r.expect(500, "5.5.2")
        r.send(b"VRFY demo\r\n")
        codes = []
        while not codes or codes[-1] != 252:
            rep = r.read_reply()
            check(rep is not None, "connection closed after the bare LF")
            codes.append(rep[0])
        check(codes in ([252], [250, 252]), "replies after the 500: %r" % codes)
        r.expect(250, None, "NOOP")
        m = unique()
        deliver_in_session(r, m)
    c.wait_for_message(DEMO, m)


@case()
def test_simple_commands(c):
    with open_session(c) as r:
        r.expect(252, "2.0.0", "VRFY demo")
        r.expect(214, "2.0.0", "HELP")
        r.expect(250, None, "NOOP")
        r.expect(250, None, "RSET")
        r.expect(250, None, "HELO client.example")
        r.expect(221, "2.0.0", "QUIT")
        check(r.is_closed(), "not closed after QUIT")


@case()
def test_queue_id_in_reply_and_log(c):
    m = unique()
    with open_session(c) as r:
        qid = deliver_in_session(r, m)
    c.wait_for_message(DEMO, m)
    wait_for(lambda: qid in c.log(), 10, what="queue id %s in the log" % qid)


# ---------------------------------------------------------------- smuggling
SMUGGLE_TAIL = (b"MAIL FROM:<evil@x.example>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n"
                b"smuggled %s\r\n.\r\n")


def smuggle(variant):
    def fn(c):
        m = unique("smug")
        with open_session(c) as r:
            r.expect(250, None, "MAIL FROM:<%s>" % SENDER)
            r.expect(250, None, "RCPT TO:<%s>" % DEMO)
            r.expect(354, None, "DATA")
            r.send(b"Subject: smuggling " + m.encode() + b"\r\n\r\nhello" + variant +
                   SMUGGLE_TAIL.replace(b"%s", m.encode()))
            r.expect(554, "5.5.2")
            # Any smuggled command would have produced replies (250, 250,
            # 354, 250) before these; the exact sequence proves there were none.
            r.send(b"VRFY demo\r\nRSET\r\nNOOP\r\nQUIT\r\n")
            codes = [x[0] for x in r.read_all()]
            check(codes == [252, 250, 250, 221],
                  "replies after the refusal %r, want [252, 250, 250, 221]" % codes)
        # a marker message after it: once it is in, the refused one would be too
        m2 = unique()
        c.send(SENDER, [DEMO], simple_message(m2))
        c.wait_for_message(DEMO, m2)
        for data in c.maildir_messages(DEMO):
            check(b"smuggled" not in data and m.encode() not in data,
                  "a smuggling attempt was delivered: %r" % data[:400])
    return fn


for _name, _v in {"lf_dot_crlf": b"\n.\r\n", "cr_dot_crlf": b"\r.\r\n",
                  "crlf_dot_lf": b"\r\n.\n", "lf_dot_lf": b"\n.\n"}.items():
    _fn = smuggle(_v)
    _fn.__name__ = "test_smuggling_" + _name
    case()(_fn)


if __name__ == "__main__":
    sys.exit(main(globals()))
