"""test_bounce.py - the notices delivery sends to senders (RFC 3464 DSNs,
delivery/bounce.h and notices.h): their format, who gets one and who
does not, DSN parameters passed on to a DSN-capable server and "relayed"
notices for one that is not.

Remote mail goes to a scriptable peer (tests/peers/smtp_peer.py) as
relayhost [127.0.0.21]:PORT, so no DNS is needed; it refuses
bad@far.example with 550 5.1.1.  The usual sender is the local user
alice@example.test, whose notices land in her Maildir; a notice to a
remote sender goes to the relayhost peer like any remote mail, where the
test sees its envelope (MAIL FROM:<>).  A notice is parsed with Python's
email package (harness.parse_dsn).

"No notice" is checked after a later message's notice arrived (notices
go out in order of need, so by then an unwanted one would be there too),
never by sleeping.
"""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SmtpPeer, case, check, delivery_status, dsn_rcpt, main,  # noqa: E402
                     notices, queue_entry, send_mail, shared_port, unique, wait_for,
                     wait_notice, wait_status)

ALICE = "alice@example.test"
DEMO = "demo@example.test"
REMOTE_SENDER = "someone@client.example"
OK = "ok@far.example"
BAD = "bad@far.example"
BAD_REPLY = "550 5.1.1 <bad@far.example>: no such user here"
PEER_ADDR = "127.0.0.21"
PORT = shared_port([PEER_ADDR])
FAILED = "(failed|bounced)"
CONF = {"relayhost": "[%s]:%d" % (PEER_ADDR, PORT),
        "minimal_backoff_time": "1s", "maximal_backoff_time": "2s",
        "smtp_connect_timeout": "3s", "smtp_helo_timeout": "3s"}
LOCAL_ONLY_CONF = dict(CONF, bounce_only_local_senders="yes")


def peer(**behaviour):
    b = {"rcpt": {BAD: BAD_REPLY}}
    b.update(behaviour)
    return SmtpPeer(PEER_ADDR, PORT, **b)


def msg(marker, to, sender=ALICE, body=None, extra=""):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: bounce test %s\r\nMessage-ID: <%s@client.example>\r\n"
            "%s\r\n%s\r\n" % (sender, to, marker, marker, extra, body or "body " + marker)).encode()


def send(c, rcpts, marker, sender=ALICE, **kw):
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    body = kw.pop("body", None) or msg(marker, rcpts[0], sender)
    return send_mail(c, sender, rcpts, body, **kw)


def sync_with_a_bounce(c):
    """A message from alice to BAD, and its notice: whatever notice was
    due before it has had its turn."""
    m = unique("sync")
    send(c, BAD, m)
    wait_notice(c, ALICE, m, "failed")


def peer_notices(p, marker):
    """Notices (MAIL FROM:<>) about marker that reached the peer."""
    return [t for t in p.txns(marker) if t["mail_from"] == ""]


# ---------------------------------------------------------------- format
@case(conf=CONF)
def test_bounce_format(c):
    m = unique("format")
    with peer():
        qid = send(c, [OK, BAD], m, mail_options=["ENVID=" + m],
                   rcpt_options={BAD: ["ORCPT=rfc822;orig-bad@far.example"]})
        wait_status(c, qid, BAD, FAILED)
        d = wait_notice(c, ALICE, m, "failed")
    top = d["msg"]
    check("mailer-daemon" in (top["From"] or "").lower(), "From: %r" % top["From"])
    check(ALICE in (top["To"] or ""), "To: %r" % top["To"])
    check((top["Subject"] or "").startswith("Undelivered Mail Returned to Sender"),
          "Subject: %r" % top["Subject"])
    check((top["Auto-Submitted"] or "").lower().startswith("auto-replied"),
          "Auto-Submitted: %r" % top["Auto-Submitted"])
    check(top.get_content_type() == "multipart/report", "top type %s" % top.get_content_type())
    check((top.get_param("report-type") or "").lower() == "delivery-status",
          "report-type=%r" % top.get_param("report-type"))
    parts = [p.get_content_type() for p in top.get_payload()]
    check(parts == ["text/plain", "message/delivery-status", "message/rfc822"],
          "parts %r, want text/plain, message/delivery-status, message/rfc822" % parts)
    pm = d["per_message"]
    check("mx.example.test" in pm.get("reporting-mta", ""), "Reporting-MTA %r" % pm.get("reporting-mta"))
    check(pm.get("arrival-date"), "no Arrival-Date: %r" % pm)
    check(pm.get("original-envelope-id") == m, "Original-Envelope-Id %r" % pm.get("original-envelope-id"))
    check(qid in " ".join(pm.values()), "the queue id is not in the per-message fields: %r" % pm)
    check(len(d["recipients"]) == 1, "recipient blocks %r, want only %s" % (d["recipients"], BAD))
    r = dsn_rcpt(d, BAD)
    check(r is not None, "no Final-Recipient %s in %r" % (BAD, d["recipients"]))
    check(r.get("final-recipient", "").lower().startswith("rfc822;"), "Final-Recipient %r" % r)
    check(r.get("original-recipient", "").lower().replace(" ", "") == "rfc822;orig-bad@far.example",
          "Original-Recipient %r" % r.get("original-recipient"))
    check(r.get("action", "").lower() == "failed", "Action %r" % r.get("action"))
    check(r.get("status") == "5.1.1", "Status %r" % r.get("status"))
    check(r.get("diagnostic-code", "").lower().startswith("smtp;")
          and "550 5.1.1" in r.get("diagnostic-code", ""), "Diagnostic-Code %r" % r.get("diagnostic-code"))
    check(PEER_ADDR in r.get("remote-mta", ""), "Remote-MTA %r" % r.get("remote-mta"))
    check(d["text"] and BAD in d["text"] and "550" in d["text"],
          "the human part does not name the recipient and the reply: %r" % (d["text"] or "")[:400])
    check(d["original"] and m.encode() in d["original"]
          and ("body " + m).encode() in d["original"], "the original is not attached whole")
    # the notice itself comes from the null sender
    rp = re.search(rb"(?im)^Return-Path:\s*(\S*)", d["raw"])
    check(rp and rp.group(1) == b"<>", "notice delivered with Return-Path %r" % (rp and rp.group(1)))


@case(conf=CONF)
def test_ret_hdrs_returns_headers_only(c):
    m = unique("hdrs")
    with peer():
        send(c, BAD, m, mail_options=["RET=HDRS"])
        d = wait_notice(c, ALICE, m, "failed")
    check(d["original_type"] == "text/rfc822-headers", "original part %r" % d["original_type"])
    check(m.encode() in d["original"], "the original's header is missing")
    check(("body " + m).encode() not in d["raw"], "RET=HDRS, yet the body came back")


@case(conf=CONF)
def test_large_original_returns_headers_only(c):
    m = unique("large")
    body = ("line of a large message %s\r\n" % m) * 2500           # ~100 KB > bounce_size_limit
    with peer():
        send(c, BAD, m, body=msg(m, BAD, body=body))
        d = wait_notice(c, ALICE, m, "failed")
    check(d["original_type"] == "text/rfc822-headers",
          "a %d byte original returned as %r (bounce_size_limit 50000)" % (len(body), d["original_type"]))
    check(len(d["raw"]) < 60000, "notice of %d bytes" % len(d["raw"]))


@case(conf=CONF)
def test_hostile_original_keeps_mime_intact(c):
    # an original made to look like the end of the report
    m = unique("hostile")
    evil = ("--boundary\r\nContent-Type: message/delivery-status\r\n\r\n"
            "Final-Recipient: rfc822; forged@evil.example\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n"
            "--boundary--\r\n")
    with peer():
        send(c, BAD, m, body=msg(m, BAD, body=evil, extra="Content-Type: multipart/mixed; boundary=boundary\r\n"))
        d = wait_notice(c, ALICE, m, "failed")
    finals = [r.get("final-recipient", "") for r in d["recipients"]]
    check(not any("forged" in f for f in finals), "the original injected a DSN field: %r" % finals)
    check(dsn_rcpt(d, BAD), "the real recipient block is missing: %r" % finals)


# ---------------------------------------------------------------- who gets one
@case(conf=CONF)
def test_bounce_to_remote_sender_goes_out_from_null_sender(c):
    m = unique("remote")
    with peer() as p:
        send(c, BAD, m, sender=REMOTE_SENDER)
        t = wait_for(lambda: (peer_notices(p, m) or [None])[0], 30,
                     what="the notice for %s at the relayhost" % REMOTE_SENDER)
        check(t["rcpts"] == [REMOTE_SENDER], "notice sent to %r" % t["rcpts"])


@case(conf=CONF)
def test_no_bounce_to_null_sender(c):
    m = unique("nullsender")
    with peer() as p:
        start = c.log_size()
        qid = send(c, BAD, m, sender="")
        wait_status(c, qid, BAD, FAILED)
        sync_with_a_bounce(c)
        wait_for(lambda: queue_entry(c, qid) is None, 20, what="%s gone from the queue" % qid)
        check(not peer_notices(p, m), "a notice about a notice went out")
        log = c.log_since(start)
        null_in = [l for l in log.splitlines() if "ingress" in l and "from=<>" in l]
        # the null-sender message itself and the sync notice, nothing more
        check(len(null_in) <= 2, "%d messages from <> entered the ingress:\n%s"
              % (len(null_in), "\n".join(null_in)))
        # (the classifier's verdict line may name SPF_TEMPERROR: not a warning)
        check(not [l for l in log.splitlines() if qid in l and ": classified " not in l
                   and re.search(r"(?i)warn|error|panic", l)],
              "warnings about %s:\n%s" % (qid, "\n".join(l for l in log.splitlines() if qid in l)))


@case(conf=CONF)
def test_notify_never_no_bounce(c):
    m = unique("never")
    with peer():
        qid = send(c, BAD, m, rcpt_options=["NOTIFY=NEVER"])
        wait_status(c, qid, BAD, FAILED)
        sync_with_a_bounce(c)
        check(not notices(c, ALICE, m), "a notice despite NOTIFY=NEVER")


@case(conf=CONF)
def test_notify_delay_only_no_failure_notice(c):
    m = unique("delayonly")
    with peer():
        qid = send(c, BAD, m, rcpt_options=["NOTIFY=DELAY"])
        wait_status(c, qid, BAD, FAILED)
        sync_with_a_bounce(c)
        check(not notices(c, ALICE, m, "failed"), "a failure notice despite NOTIFY=DELAY")


@case(conf=LOCAL_ONLY_CONF)
def test_bounce_only_local_senders(c):
    m = unique("localonly")
    with peer() as p:
        start = c.log_size()
        qid = send(c, BAD, m, sender=REMOTE_SENDER)
        wait_status(c, qid, BAD, FAILED)
        sync_with_a_bounce(c)          # a local sender still gets hers
        check(not peer_notices(p, m), "a notice went to the remote sender")
        log = c.log_since(start)
        why = [l for l in log.splitlines() if qid in l and
               re.search(r"(?i)bounce_only_local_senders|not local|non-local|local sender", l)]
        check(why, "the log does not say why no notice went to %s:\n%s"
              % (REMOTE_SENDER, "\n".join(l for l in log.splitlines() if qid in l)))


# ---------------------------------------------------------------- success DSNs
@case(conf=CONF)
def test_notify_success_passed_to_dsn_peer(c):
    m = unique("dsnpeer")
    with peer() as p:
        qid = send(c, OK, m, mail_options=["RET=HDRS", "ENVID=" + m],
                   rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig@far.example"])
        t = p.wait_txn(m)
        wait_status(c, qid, OK, "sent")
        mp = [x.upper() for x in t["mail_params"]]
        rp = [x.upper() for x in t["rcpt_params"].get(OK, [])]
        check("RET=HDRS" in mp, "MAIL parameters %r lack RET=HDRS" % mp)
        check("ENVID=" + m.upper() in mp, "MAIL parameters %r lack ENVID" % mp)
        check(any(x.startswith("NOTIFY=") and "SUCCESS" in x and "FAILURE" in x for x in rp),
              "RCPT parameters %r lack NOTIFY=SUCCESS,FAILURE" % rp)
        check("ORCPT=RFC822;ORIG@FAR.EXAMPLE" in rp, "RCPT parameters %r lack the ORCPT" % rp)
        sync_with_a_bounce(c)
        check(not notices(c, ALICE, m), "a notice from us although the peer took over DSN: %r"
              % [r["recipients"] for r in notices(c, ALICE, m)])


@case(conf=CONF)
def test_notify_success_to_non_dsn_peer_relayed(c):
    m = unique("relayed")
    with peer(extensions={"DSN": False}) as p:
        qid = send(c, OK, m, rcpt_options=["NOTIFY=SUCCESS"])
        t = p.wait_txn(m)
        wait_status(c, qid, OK, "sent")
        rp = [x.upper() for x in t["rcpt_params"].get(OK, [])]
        check(not any(x.startswith(("NOTIFY=", "ORCPT=")) for x in rp),
              "DSN parameters to a server without DSN: %r" % rp)
        d = wait_notice(c, ALICE, m, "relayed")
        r = dsn_rcpt(d, OK)
        check(r and r.get("status", "").startswith("2."), "DSN fields %r" % (r,))
        check(d["original_type"] == "text/rfc822-headers",
              "a relayed notice returned %r, want the header only" % d["original_type"])


@case(conf=CONF)
def test_notify_success_local_delivered(c):
    m = unique("delivered")
    qid = send(c, DEMO, m, rcpt_options=["NOTIFY=SUCCESS"])
    c.wait_for_message(DEMO, m)
    wait_status(c, qid, DEMO, "sent")
    d = wait_notice(c, ALICE, m, "delivered")
    check("successful" in (d["msg"]["Subject"] or "").lower(), "Subject %r" % d["msg"]["Subject"])
    r = dsn_rcpt(d, DEMO)
    check(r and r.get("status", "").startswith("2."), "DSN fields %r" % (r,))


@case(conf=CONF)
def test_default_notify_no_success_notice(c):
    # without NOTIFY, a delivery gets no notice
    m = unique("nonotify")
    qid = send(c, DEMO, m)
    c.wait_for_message(DEMO, m)
    wait_status(c, qid, DEMO, "sent")
    with peer():
        sync_with_a_bounce(c)
    check(not notices(c, ALICE, m), "a notice for an ordinary delivery")
    check(not delivery_status(c, qid, DEMO, FAILED), "failed?")


if __name__ == "__main__":
    sys.exit(main(globals()))
