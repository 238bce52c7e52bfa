"""test_outbound.py - onward delivery against real peers: correio's SMTP
and LMTP client, MX resolution, relayhost, TLS and AUTH, retries,
timeouts and misbehaving servers.

Mail comes in over correio's ingress from 127.0.0.1 (in mynetworks, so
it may relay) and goes out to test peers on 127.0.0.x: the scriptable
tests/peers/smtp_peer.py (which logs every command and transaction), a
real Postfix (tests/peers/postfix.sh) and a real Dovecot LMTP
(tests/peers/dovecot.sh).  MX records come from the DNS lab
(tests/dns/unbound.conf.in: relay.test, equal.test, nomx.test,
nullmx.test, loop.test, backup.test, deadmx.test, tempfail.test,
[a-h].peer.test, postfix.test), started here when no lab runs.

Every MX peer listens on one port, MXPORT, which is also correio's
smtp_default_port and the port of correio's own listener, so an MX at
127.0.0.1 is correio itself (loop.test, backup.test), as port 25 would
be.  The sender is a local user (alice@example.test): notices land in
her Maildir.  Retries are quick (minimal/maximal_backoff_time 1s/2s)
and SMTP timeouts short (3s).

Peer addresses: .2/.3 relay.test and equal.test MX hosts, .4 nomx.test,
.5 backup.test's primary, .11-.18 [a-h].peer.test, .30 Postfix,
.40 Dovecot.  Each test starts the peers it needs and stops them; a
test finds its own mail by a unique marker.
"""

import os
import re
import shutil
import smtplib
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, DovecotLmtp, PostfixServer, SmtpPeer, at_cleanup, case, check,  # noqa: E402
                     delivery_status, dsn_rcpt, ensure_dns_lab, main, queue_entry,
                     rcpt_queue_state, send_mail, shared_port, status_has, unique,
                     wait_for, wait_notice, wait_status)

ALICE = "alice@example.test"
DNS = ensure_dns_lab()
NO_DNS = None if DNS else "no DNS lab (tests/dns/lab.sh needs unbound; mk/deps.sh installs it)"
PEER_ADDRS = ["127.0.0.%d" % i for i in (1, 2, 3, 4, 5, 11, 12, 13, 14, 15, 16, 17, 18, 30, 40)]
MXPORT = shared_port(PEER_ADDRS)
SMTP_TIMEOUTS = {p: "3s" for p in (
    "smtp_connect_timeout", "smtp_helo_timeout", "smtp_starttls_timeout", "smtp_mail_timeout",
    "smtp_rcpt_timeout", "smtp_data_init_timeout", "smtp_data_xfer_timeout",
    "smtp_data_done_timeout", "smtp_quit_timeout")}
# the instance whose listener is on MXPORT (loop.test and backup.test
# need that); other configurations are variants of it with a listener
# of their own (two instances cannot share one), so for them 127.0.0.1
# on MXPORT is another host, as it is to the test peers
MX_CONF = dict(SMTP_TIMEOUTS, smtpd_listen="127.0.0.1:%d" % MXPORT,
               smtp_default_port=str(MXPORT), backup_domains="backup.test",
               minimal_backoff_time="1s", maximal_backoff_time="2s")


def mx_variant(**changes):
    conf = {k: v for k, v in MX_CONF.items() if k != "smtpd_listen"}
    conf.update(changes)
    return conf
FAILED = "(failed|bounced)"


def peer(letter_or_addr, **behaviour):
    """A scriptable peer on MXPORT: "a".."h" for [a-h].peer.test's MX
    host, or an address."""
    addr = letter_or_addr
    if len(letter_or_addr) == 1:
        addr = "127.0.0.%d" % (11 + ord(letter_or_addr) - ord("a"))
    return SmtpPeer(addr, MXPORT, **behaviour)


def out_of(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


def msg(marker, to, extra_headers="", body=None):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: outbound %s\r\nMessage-ID: <%s@client.example>\r\n%s"
            "\r\n%s\r\n" % (ALICE, to, marker, marker, extra_headers,
                            body or ("body %s" % marker))).encode()


def send(c, rcpts, marker, **kw):
    if isinstance(rcpts, str):
        rcpts = [rcpts]
    body = kw.pop("body", None)
    return send_mail(c, kw.pop("sender", ALICE), rcpts, body or msg(marker, rcpts[0]), **kw)


def no_txn_with(p, marker):
    ts = p.txns(marker)
    check(not ts, "the peer %s got the message %r: %r" % (p.addr, marker, ts[:1]))


def listed(c, qid):
    e = queue_entry(c, qid)
    return "\n".join(e) if e else "(not listed)"


def _tmpdir(prefix):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    at_cleanup(lambda: shutil.rmtree(d, True))
    return d


# ---------------------------------------------------------------- MX
@case(conf=MX_CONF, skip=NO_DNS)
def test_mx_lowest_preference(c):
    m = unique("mx")
    with peer("127.0.0.2") as p1, peer("127.0.0.3") as p2:
        qid = send(c, "user@relay.test", m)
        t = p1.wait_txn(m)
        check(t["mail_from"] == ALICE, "MAIL FROM %r" % t["mail_from"])
        check(t["rcpts"] == ["user@relay.test"], "RCPT TO %r" % t["rcpts"])
        check(t["verb"] == "EHLO" and t["helo"] == "mx.example.test",
              "greeted with %s %s, want EHLO myhostname" % (t["verb"], t["helo"]))
        check(m in t["data"], "content lost")
        line = wait_status(c, qid, "user@relay.test", "sent")
        check("127.0.0.2" in line.group("relay"), "relay= %r does not name mx1" % line.group("relay"))
        no_txn_with(p2, m)
        check(p2.connections() == 0, "the less preferred MX was contacted")


@case(conf=MX_CONF, skip=NO_DNS)
def test_mx_fallback_connection_refused(c):
    # nothing listens on mx1 (127.0.0.2): the next MX gets it
    m = unique("mxref")
    with peer("127.0.0.3") as p2:
        qid = send(c, "user@relay.test", m)
        p2.wait_txn(m)
        line = wait_status(c, qid, "user@relay.test", "sent")
        check("127.0.0.3" in line.group("relay"), "relay= %r" % line.group("relay"))


@case(conf=MX_CONF, skip=NO_DNS)
def test_mx_fallback_greeting_4xx(c):
    m = unique("mx421")
    with peer("127.0.0.2", greeting="421 4.3.2 mx1 is busy") as p1, peer("127.0.0.3") as p2:
        qid = send(c, "user@relay.test", m)
        p2.wait_txn(m)
        check(p1.connections() >= 1, "mx1 was not tried first")
        no_txn_with(p1, m)
        wait_status(c, qid, "user@relay.test", "sent")


@case(conf=MX_CONF, skip=NO_DNS)
def test_mx_fallback_greeting_5xx(c):
    m = unique("mx554")
    with peer("127.0.0.2", greeting="554 5.3.2 mx1 refuses service") as p1, peer("127.0.0.3") as p2:
        qid = send(c, "user@relay.test", m)
        p2.wait_txn(m)
        check(p1.connections() >= 1, "mx1 was not tried first")
        wait_status(c, qid, "user@relay.test", "sent")


@case(conf=MX_CONF, skip=NO_DNS)
def test_equal_preference_mx(c):
    marks = [unique("eq") for _ in range(8)]
    with peer("127.0.0.2") as p1, peer("127.0.0.3") as p2:
        for m in marks:
            send(c, "user@equal.test", m)
        for m in marks:
            wait_for(lambda: p1.delivered(m) or p2.delivered(m), 30,
                     what="%s at one of the equal MX hosts" % m)
        for m in marks:
            n = len(p1.delivered(m)) + len(p2.delivered(m))
            check(n == 1, "%s delivered %d times" % (m, n))
        print("# equal MX: %d at 127.0.0.2, %d at 127.0.0.3"
              % (sum(len(p1.delivered(m)) for m in marks), sum(len(p2.delivered(m)) for m in marks)),
              flush=True)


@case(conf=MX_CONF, skip=NO_DNS)
def test_no_mx_uses_address(c):
    m = unique("amx")
    with peer("127.0.0.4") as p:
        qid = send(c, "user@nomx.test", m)
        p.wait_txn(m)
        wait_status(c, qid, "user@nomx.test", "sent")


@case(conf=MX_CONF, skip=NO_DNS)
def test_null_mx_bounces(c):
    m = unique("nullmx")
    qid = send(c, "user@nullmx.test", m)
    line = wait_status(c, qid, "user@nullmx.test", FAILED)
    check(status_has(line, "5.1.10"), "status %s (%s), want 5.1.10" % (line.group("dsn"), line.group("text")))
    d = wait_notice(c, ALICE, m, "failed")
    r = dsn_rcpt(d, "user@nullmx.test")
    check(r and r.get("status") == "5.1.10", "DSN fields %r, want Status: 5.1.10" % (r,))


@case(conf=MX_CONF, skip=NO_DNS)
def test_mx_loops_back_to_myself(c):
    m = unique("loop")
    qid = send(c, "user@loop.test", m)
    line = wait_status(c, qid, "user@loop.test", FAILED)
    check("loops back to myself" in line.group("text"), "failure text %r" % line.group("text"))
    d = wait_notice(c, ALICE, m, "failed")
    r = dsn_rcpt(d, "user@loop.test")
    check(r and r.get("status") == "5.4.6", "DSN fields %r, want Status: 5.4.6" % (r,))
    check("loops back to myself" in d["raw"].decode("latin-1"), "the notice does not say why")


@case(conf=mx_variant(best_mx_transport="local", proxy_interfaces="127.0.0.1"), skip=NO_DNS)
def test_best_mx_transport_local(c):
    # loop.test's best MX, 127.0.0.1, is this host (through proxy_interfaces,
    # which matches any port): the copy is delivered here instead
    m = unique("bestmx")
    qid = send(c, "User@loop.test", m)
    wait_status(c, qid, "User@loop.test", "local")
    c.wait_for_message("user@loop.test", m, timeout=30)
    wait_status(c, qid, "User@loop.test", "sent")


@case(conf=MX_CONF, skip=NO_DNS)
def test_backup_mx_relays_to_primary(c):
    m = unique("backup")
    with peer("127.0.0.5") as p:
        qid = send(c, "user@backup.test", m)
        p.wait_txn(m)
        line = wait_status(c, qid, "user@backup.test", "sent")
        check("127.0.0.5" in line.group("relay"), "relay= %r" % line.group("relay"))
    # the primary down: deferred and kept (not a loop, not bounced)
    m2 = unique("backup-down")
    qid2 = send(c, "user@backup.test", m2)
    line = wait_status(c, qid2, "user@backup.test", "deferred")
    check("loops back" not in line.group("text"), "deferred as a loop: %r" % line.group("text"))
    with peer("127.0.0.5") as p:
        p.wait_txn(m2, timeout=30)
        wait_status(c, qid2, "user@backup.test", "sent", timeout=30)


@case(conf=MX_CONF, skip=NO_DNS)
def test_dead_mx_deferred(c):
    m = unique("dead")
    qid = send(c, "user@deadmx.test", m)
    wait_status(c, qid, "user@deadmx.test", "deferred")
    check(not delivery_status(c, qid, "user@deadmx.test", FAILED), "bounced instead of deferred")
    wait_for(lambda: rcpt_queue_state(c, qid, "user@deadmx.test") == "deferred", 10,
             what="queue list shows the recipient deferred")


@case(conf=MX_CONF, skip=NO_DNS)
def test_dns_failure_deferred(c):
    m = unique("tempdns")
    qid = send(c, "user@tempfail.test", m)
    wait_status(c, qid, "user@tempfail.test", "deferred")
    # and a REFUSED domain itself
    qid2 = send(c, "user@refused.test", unique("refused"))
    wait_status(c, qid2, "user@refused.test", "deferred")
    for q, r in ((qid, "user@tempfail.test"), (qid2, "user@refused.test")):
        check(not delivery_status(c, q, r, FAILED), "%s bounced on a temporary DNS failure" % r)


# ---------------------------------------------------------------- relayhost
RELAY_PORT = shared_port(["127.0.0.12"])
RELAY_CONF = dict(SMTP_TIMEOUTS, relayhost="[127.0.0.12]:%d" % RELAY_PORT,
                  minimal_backoff_time="1s", maximal_backoff_time="2s")


@case(conf=RELAY_CONF)
def test_relayhost_skips_mx(c):
    m = unique("relayhost")
    with SmtpPeer("127.0.0.12", RELAY_PORT) as p:
        # relay.test has MX records; the relayhost gets it all the same
        qid = send(c, ["user@relay.test", "other@elsewhere.example"], m)
        t = p.wait_txn(m)
        check(sorted(t["rcpts"]) == ["other@elsewhere.example", "user@relay.test"],
              "one transaction for both recipients expected, got %r" % t["rcpts"])
        wait_status(c, qid, "user@relay.test", "sent")
        wait_status(c, qid, "other@elsewhere.example", "sent")


AUTH_PORT = shared_port(["127.0.0.13"])
AUTH_CONF = dict(SMTP_TIMEOUTS, relayhost="relayuser:s3cret@[127.0.0.13]:%d" % AUTH_PORT,
                 minimal_backoff_time="1s", maximal_backoff_time="2s")


@case(conf=AUTH_CONF)
def test_relayhost_starttls_auth(c):
    m = unique("auth")
    with SmtpPeer("127.0.0.13", AUTH_PORT, tls=True, require_tls=True,
                  auth="relayuser:s3cret", require_auth=True) as p:
        qid = send(c, "user@far.example", m)
        t = p.wait_txn(m)
        check(t["tls"], "the message went in clear")
        check(t["auth"] == "relayuser", "AUTH user %r" % t["auth"])
        wait_status(c, qid, "user@far.example", "sent")
        check(not p.events("auth-failed"), "a failed AUTH: %r" % p.events("auth-failed"))
        # AUTH only inside TLS: no AUTH command before STARTTLS on any connection
        for conn in {e["conn"] for e in p.commands()}:
            cmds = [e["line"].split()[0].upper() for e in p.commands(conn)]
            if "AUTH" in cmds:
                check("STARTTLS" in cmds and cmds.index("STARTTLS") < cmds.index("AUTH"),
                      "AUTH before STARTTLS: %r" % cmds)


BADAUTH_PORT = shared_port(["127.0.0.13"], avoid=(AUTH_PORT,))


@case(conf=dict(SMTP_TIMEOUTS, relayhost="relayuser:wrong@[127.0.0.13]:%d" % BADAUTH_PORT,
                minimal_backoff_time="1s", maximal_backoff_time="2s"))
def test_relayhost_auth_refused_deferred(c):
    # a refused AUTH is the sender's configuration, not the message's
    # fault: deferred, as Postfix does (smtp_sasl_auth_soft_bounce = yes)
    m = unique("badauth")
    with SmtpPeer("127.0.0.13", BADAUTH_PORT, tls=True, require_tls=True,
                  auth="relayuser:s3cret", require_auth=True) as p:
        qid = send(c, "user@far.example", m)
        wait_status(c, qid, "user@far.example", "deferred")
        p.wait_event(lambda e: e.get("ev") == "auth-failed", what="a refused AUTH")
        no_txn_with(p, m)


ENCRYPT_CONF = mx_variant(smtp_tls_security_level="encrypt")


@case(conf=ENCRYPT_CONF, skip=NO_DNS)
def test_tls_encrypt_without_starttls_defers(c):
    m = unique("encrypt")
    with peer("d") as p:          # no certificate: no STARTTLS offered
        qid = send(c, "user@d.peer.test", m)
        line = wait_status(c, qid, "user@d.peer.test", "deferred")
        check(p.connections() >= 1, "the peer was never contacted")
        mails = [e for e in p.commands() if e["line"].upper().startswith("MAIL")]
        check(not mails, "MAIL sent without TLS: %r" % mails[:1])
        no_txn_with(p, m)
        check(re.search(r"(?i)tls|starttls|encrypt", line.group("text")),
              "deferral reason does not mention TLS: %r" % line.group("text"))
        # with STARTTLS offered it goes, encrypted
        p.set(tls=True)
        t = p.wait_txn(m, timeout=30)
        check(t["tls"], "delivered in clear")


@case(conf=ENCRYPT_CONF, skip=NO_DNS)
def test_tls_may_delivers_encrypted(c):
    # (any level that is not "none" uses STARTTLS when offered)
    m = unique("maytls")
    with peer("d", tls=True) as p:
        send(c, "user@d.peer.test", m)
        t = p.wait_txn(m)
        check(t["tls"], "STARTTLS offered but not used")


@case(conf=MX_CONF, skip=NO_DNS)
def test_tls_may_handshake_fails_retried_in_clear(c):
    # opportunistic TLS that breaks in the handshake: the same server is
    # tried again without STARTTLS (Postfix does the same), not deferred
    m = unique("maybroken")
    with peer("d", tls=True, starttls_break=True) as p:
        qid = send(c, "user@d.peer.test", m)
        t = p.wait_txn(m, timeout=30)
        check(not t["tls"], "delivered over TLS through a broken handshake?")
        wait_status(c, qid, "user@d.peer.test", "sent")


# ---------------------------------------------------------------- protocol
@case(conf=MX_CONF, skip=NO_DNS)
def test_ehlo_refused_helo_fallback(c):
    m = unique("helo")
    with peer("a", ehlo="502 5.5.2 EHLO not implemented") as p:
        qid = send(c, "user@a.peer.test", m)
        t = p.wait_txn(m)
        check(t["verb"] == "HELO", "session greeted with %s" % t["verb"])
        check(not t["mail_params"], "ESMTP parameters sent after HELO: %r" % t["mail_params"])
        wait_status(c, qid, "user@a.peer.test", "sent")


@case(conf=MX_CONF, skip=NO_DNS)
def test_pipelining(c):
    m = unique("pipe")
    with peer("a") as p:
        send(c, ["u1@a.peer.test", "u2@a.peer.test"], m)
        t = p.wait_txn(m)
        check(t["pipelined"], "MAIL, RCPT and DATA did not come in one read (no PIPELINING)")
    m2 = unique("nopipe")
    with peer("a", extensions={"PIPELINING": False}) as p:
        send(c, ["u1@a.peer.test", "u2@a.peer.test"], m2)
        t = p.wait_txn(m2)
        check(not t["pipelined"], "pipelined to a server that does not offer PIPELINING")


@case(conf=MX_CONF, skip=NO_DNS)
def test_esmtp_parameters_passed_on(c):
    m = unique("params")
    body = ("From: <%s>\r\nTo: <u@a.peer.test>\r\nSubject: 8bit\r\nMessage-ID: <%s@client.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "caf\xc3\xa9 %s\r\n" % (ALICE, m, m)).encode("latin-1")
    with peer("a") as p:
        send(c, "u@a.peer.test", m, body=body, mail_options=["BODY=8BITMIME"])
        t = p.wait_txn(m)
        params = [x.upper() for x in t["mail_params"]]
        check("BODY=8BITMIME" in params, "MAIL FROM parameters %r lack BODY=8BITMIME" % params)
        check(any(x.startswith("SIZE=") for x in params), "no SIZE= to a SIZE server: %r" % params)
        check("caf\xc3\xa9" in t["data"], "8-bit content changed on the way")


@case(conf=MX_CONF, skip=NO_DNS)
def test_8bit_to_7bit_peer(c):
    m = unique("8bit")
    m_ascii = unique("ascii")
    body = ("From: <%s>\r\nTo: <u@f.peer.test>\r\nSubject: 8bit\r\nMessage-ID: <%s@client.example>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "caf\xc3\xa9 %s\r\n" % (ALICE, m, m)).encode("latin-1")
    with peer("f", extensions={"8BITMIME": False}) as p:
        qid = send(c, "u@f.peer.test", m, body=body, mail_options=["BODY=8BITMIME"])
        qid2 = send(c, "u@f.peer.test", m_ascii)
        p.wait_txn(m_ascii)
        wait_status(c, qid2, "u@f.peer.test", "sent")
        line = wait_status(c, qid, "u@f.peer.test", FAILED)
        check(status_has(line, "5.6.3"), "status %s (%s), want 5.6.3" % (line.group("dsn"), line.group("text")))
        no_txn_with(p, m)
        d = wait_notice(c, ALICE, m, "failed")
        r = dsn_rcpt(d, "u@f.peer.test")
        check(r and r.get("status") == "5.6.3", "DSN fields %r, want Status: 5.6.3" % (r,))


@case(conf=MX_CONF, skip=NO_DNS)
def test_size_limit_of_peer(c):
    m = unique("size")
    big = msg(m, "u@f.peer.test", body=("x" * 70 + "\r\n") * 200)    # ~14 KB
    with peer("f", extensions={"SIZE": 4096}) as p:
        qid = send(c, "u@f.peer.test", m, body=big)
        line = wait_status(c, qid, "u@f.peer.test", FAILED)
        check(status_has(line, "5.3.4"), "status %s (%s), want 5.3.4" % (line.group("dsn"), line.group("text")))
        no_txn_with(p, m)


REUSE_CONF = mx_variant(default_destination_concurrency_limit="2",
                  smtp_connection_cache_time_limit="5s")


@case(conf=REUSE_CONF, fresh=True, skip=NO_DNS, timeout=120)
def test_connection_reuse(c):
    marks = [unique("reuse") for _ in range(20)]
    with peer("b") as p:
        with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
            s.ehlo("client.example")
            for m in marks:
                s.sendmail(ALICE, ["user@b.peer.test"], msg(m, "user@b.peer.test"))
        wait_for(lambda: all(p.delivered(m) for m in marks), 60,
                 what="all 20 messages at the peer")
        dup = [m for m in marks if len(p.delivered(m)) > 1]
        check(not dup, "delivered twice: %r" % dup)
        conns = p.connections()
        txns = len(p.txns())
        print("# connection reuse: %d messages over %d connection(s)" % (txns, conns), flush=True)
        check(conns <= 2, "%d connections for 20 messages (default_destination_concurrency_limit = 2)"
              % conns)


# ---------------------------------------------------------------- retries
@case(conf=MX_CONF, skip=NO_DNS, timeout=90)
def test_partial_success_and_retry(c):
    m = unique("partial")
    ok, later, bad = "ok@e.peer.test", "later@e.peer.test", "bad@e.peer.test"
    with peer("e", rcpt={later: "450 4.2.0 mailbox busy, try later",
                         bad: "550 5.1.1 no such user here"}) as p:
        qid = send(c, [ok, later, bad], m)
        t = p.wait_txn(m)
        check(t["accepted"] == [ok], "accepted %r" % t["accepted"])
        wait_status(c, qid, ok, "sent")
        wait_status(c, qid, later, "deferred")
        line = wait_status(c, qid, bad, FAILED)
        check("550 5.1.1" in line.group("text"), "failure text %r" % line.group("text"))
        wait_for(lambda: rcpt_queue_state(c, qid, later) == "deferred", 10,
                 what="queue list shows %s deferred:\n%s" % (later, listed(c, qid)))
        d = wait_notice(c, ALICE, m, "failed")
        check(dsn_rcpt(d, bad), "no DSN block for %s: %r" % (bad, d["recipients"]))
        check(not dsn_rcpt(d, ok) and not dsn_rcpt(d, later),
              "the notice names recipients that did not fail: %r" % d["recipients"])
        # the peer takes it now: the retry brings only the deferred one
        p.set(rcpt={bad: "550 5.1.1 no such user here"})
        t2 = wait_for(lambda: [x for x in p.delivered(m) if later in x["accepted"]], 30,
                      what="the retry for %s" % later)[0]
        check(t2["rcpts"] == [later], "the retry carried %r, want only %s" % (t2["rcpts"], later))
        wait_status(c, qid, later, "sent", timeout=30)
        wait_for(lambda: queue_entry(c, qid) is None, 20, what="%s gone from the queue" % qid)
        check(len([x for x in p.delivered(m) if ok in x["accepted"]]) == 1,
              "%s got the message twice" % ok)


@case(conf=MX_CONF, skip=NO_DNS, timeout=90)
def test_4xx_everywhere_deferred_then_delivered(c):
    m = unique("retry")
    with peer("e", mail="451 4.3.0 temporary local problem") as p:
        qid = send(c, "user@e.peer.test", m)
        wait_status(c, qid, "user@e.peer.test", "deferred")
        # retried (backoff 1-2s) while refused
        wait_for(lambda: len(p.commands()) and
                 len({e["conn"] for e in p.events("cmd") if e["line"].upper().startswith("MAIL")}) >= 2,
                 20, what="a second attempt")
        check(not delivery_status(c, qid, "user@e.peer.test", FAILED), "a 4xx bounced")
        p.set(mail=None)
        p.wait_txn(m, timeout=30)
        wait_status(c, qid, "user@e.peer.test", "sent", timeout=30)


SLOWRETRY_CONF = mx_variant(minimal_backoff_time="1h", maximal_backoff_time="2h")


@case(conf=SLOWRETRY_CONF, skip=NO_DNS, timeout=90)
def test_queue_flush_and_requeue_retry_now(c):
    m1, m2 = unique("flush"), unique("requeue")
    with peer("e", rcpt="451 4.7.1 greylisted, try again later") as p:
        q1 = send(c, "user@e.peer.test", m1)
        q2 = send(c, "user@e.peer.test", m2)
        wait_status(c, q1, "user@e.peer.test", "deferred")
        wait_status(c, q2, "user@e.peer.test", "deferred")
        p.set(rcpt=None)
        r = c.ctl("queue", "flush")
        check(r.returncode == 0, "queue flush: " + out_of(r))
        p.wait_txn(m1, timeout=20)
        p.wait_txn(m2, timeout=20)
    with peer("e", rcpt="451 4.7.1 greylisted, try again later") as p:
        q3 = send(c, "user@e.peer.test", m2 + "-2")
        wait_status(c, q3, "user@e.peer.test", "deferred")
        p.set(rcpt=None)
        r = c.ctl("queue", "requeue", q3)
        check(r.returncode == 0, "queue requeue %s: %s" % (q3, out_of(r)))
        wait_status(c, q3, "user@e.peer.test", "sent", timeout=20)


EXPIRE_CONF = mx_variant(maximal_queue_lifetime="5s", delay_warning_time="1s")


@case(conf=EXPIRE_CONF, skip=NO_DNS, timeout=90)
def test_delay_warning(c):
    m = unique("delay")
    with peer("e", rcpt="451 4.3.0 still busy"):
        send(c, "user@e.peer.test", m)
        d = wait_notice(c, ALICE, m, "delayed", timeout=30)
        check("delay" in (d["msg"]["Subject"] or "").lower(), "subject %r" % d["msg"]["Subject"])
        r = dsn_rcpt(d, "user@e.peer.test")
        check(r and r.get("status", "").startswith("4."), "DSN fields %r, want Status 4.x.x" % (r,))
        check(r.get("will-retry-until"), "no Will-Retry-Until in a delayed notice: %r" % r)


@case(conf=EXPIRE_CONF, skip=NO_DNS, timeout=90)
def test_queue_lifetime_expires(c):
    m = unique("expire")
    with peer("e", rcpt="451 4.3.0 still busy"):
        qid = send(c, "user@e.peer.test", m)
        wait_status(c, qid, "user@e.peer.test", "deferred")
        # Postfix logs an expired recipient as status=expired
        wait_status(c, qid, "user@e.peer.test", "(failed|bounced|expired)", timeout=30)
        d = wait_notice(c, ALICE, m, "failed", timeout=30)
        raw = d["raw"].decode("latin-1")
        check("still busy" in raw or "temporarily suspended" in raw,
              "the notice gives neither the last reason nor 'temporarily suspended'")
        wait_for(lambda: queue_entry(c, qid) is None, 20, what="%s gone from the queue" % qid)


# ---------------------------------------------------------------- failures
HANG_CONF = mx_variant(**{p: "2s" for p in SMTP_TIMEOUTS})


@case(conf=HANG_CONF, skip=NO_DNS, timeout=90)
def test_peer_hangs_after_data_no_harm(c):
    m, m_ok = unique("hang"), unique("nohang")
    with peer("g", dot="hang") as hp, peer("h") as ok:
        t0 = time.monotonic()
        qid = send(c, "user@g.peer.test", m)
        hp.wait_event(lambda e: e.get("ev") == "hang", what="the peer hanging after the dot")
        qid2 = send(c, "user@h.peer.test", m_ok)
        ok.wait_txn(m_ok)
        wait_status(c, qid2, "user@h.peer.test", "sent")
        took = time.monotonic() - t0
        line = wait_status(c, qid, "user@g.peer.test", "deferred", timeout=20)
        check(re.search(r"(?i)timed? ?out", line.group("text")), "reason %r" % line.group("text"))
        check(took < 10 * SLOW, "the other destination waited %.1fs" % took)


@case(conf=HANG_CONF, skip=NO_DNS, timeout=90)
def test_peer_hangs_at_greeting(c):
    m = unique("hanggreet")
    with peer("g", greeting="hang") as p:
        qid = send(c, "user@g.peer.test", m)
        line = wait_status(c, qid, "user@g.peer.test", "deferred", timeout=20)
        check(re.search(r"(?i)timed? ?out", line.group("text")), "reason %r" % line.group("text"))
        check(p.connections() >= 1, "never connected")
        p.set(greeting=None)
        p.wait_txn(m, timeout=30)


@case(conf=MX_CONF, skip=NO_DNS, timeout=90)
def test_peer_drops_mid_data_then_retry(c):
    m = unique("drop")
    with peer("h", content="drop") as p:
        qid = send(c, "user@h.peer.test", m)
        p.wait_event(lambda e: e.get("ev") == "drop-in-data", what="the peer dropping mid-DATA")
        wait_status(c, qid, "user@h.peer.test", "deferred")
        p.set(content=None)
        p.wait_txn(m, timeout=30)
        wait_status(c, qid, "user@h.peer.test", "sent", timeout=30)
        check(len(p.delivered(m)) == 1, "delivered %d times" % len(p.delivered(m)))


@case(conf=MX_CONF, skip=NO_DNS, timeout=90)
def test_garbage_reply_deferred(c):
    m = unique("garbage")
    with peer("h", mail="garbage") as p:
        qid = send(c, "user@h.peer.test", m)
        wait_status(c, qid, "user@h.peer.test", "deferred")
        check(not delivery_status(c, qid, "user@h.peer.test", FAILED), "bounced on garbage")
        p.set(mail=None)
        p.wait_txn(m, timeout=30)


@case(conf=MX_CONF, skip=NO_DNS, timeout=90)
def test_overlong_reply_line_deferred(c):
    m = unique("longline")
    with peer("h", ehlo="longline") as p:
        qid = send(c, "user@h.peer.test", m)
        wait_status(c, qid, "user@h.peer.test", "deferred")
        no_txn_with(p, m)
        p.set(ehlo=None)
        p.wait_txn(m, timeout=30)


@case(conf=MX_CONF, skip=NO_DNS, timeout=90)
def test_data_rejected_5xx_bounces(c):
    m = unique("data5xx")
    with peer("h", dot={"*": "554 5.7.1 content rejected"}):
        qid = send(c, "user@h.peer.test", m)
        line = wait_status(c, qid, "user@h.peer.test", FAILED)
        check("554 5.7.1" in line.group("text"), "failure text %r" % line.group("text"))
        d = wait_notice(c, ALICE, m, "failed")
        r = dsn_rcpt(d, "user@h.peer.test")
        check(r and "554 5.7.1" in r.get("diagnostic-code", ""), "DSN fields %r" % (r,))


# ---------------------------------------------------------------- LMTP (Dovecot)
DOVECOT = DovecotLmtp("127.0.0.40", MXPORT)
_lmtp_maps = _tmpdir("correio-outbound-")
with open(os.path.join(_lmtp_maps, "transport.pcre"), "w") as _f:
    _f.write("/(^|@)lmtp\\.test$/ lmtp:[127.0.0.40]:%d\n" % MXPORT)
os.chmod(os.path.join(_lmtp_maps, "transport.pcre"), 0o644)
at_cleanup(DOVECOT.cleanup)
LMTP_CONF = dict(SMTP_TIMEOUTS, transport_maps="pcre:" + os.path.join(_lmtp_maps, "transport.pcre"),
                 minimal_backoff_time="1s", maximal_backoff_time="2s")


@case(conf=LMTP_CONF, skip=DovecotLmtp.SKIP, timeout=90)
def test_lmtp_transport_maps_dovecot(c):
    m = unique("lmtp")
    with DovecotLmtp("127.0.0.40", MXPORT) as dc:
        qid = send(c, ["alice@lmtp.test", "bob@lmtp.test", "nobody@lmtp.test"], m)
        dc.wait_message("alice@lmtp.test", m)
        dc.wait_message("bob@lmtp.test", m)
        wait_status(c, qid, "alice@lmtp.test", "sent")
        wait_status(c, qid, "bob@lmtp.test", "sent")
        line = wait_status(c, qid, "nobody@lmtp.test", FAILED)
        check(status_has(line, "5.1.1"), "status %s (%s), want 5.1.1" % (line.group("dsn"), line.group("text")))
        d = wait_notice(c, ALICE, m, "failed")
        check(dsn_rcpt(d, "nobody@lmtp.test"), "no DSN block for nobody@lmtp.test")


@case(conf=dict(LMTP_CONF, local_transport="lmtp:unix:" + DOVECOT.socket),
      skip=DovecotLmtp.SKIP, timeout=90)
def test_local_transport_lmtp_dovecot(c):
    m = unique("locallmtp")
    DOVECOT.start()
    try:
        qid = send(c, "demo@example.test", m, sender="someone@client.example")
        got = DOVECOT.wait_message("demo@example.test", m)
        wait_status(c, qid, "demo@example.test", "sent")
        check(not c.maildir_files("demo@example.test"),
              "local_transport = lmtp, but correio wrote its own Maildir too")
        check(b"Received:" in got, "no Received: header from correio")
    finally:
        DOVECOT.stop()


@case(conf=dict(LMTP_CONF, local_transport="lmtp:unix:" + DOVECOT.socket),
      skip=DovecotLmtp.SKIP, timeout=90)
def test_lmtp_down_deferred(c):
    m = unique("lmtpdown")
    qid = send(c, "demo@example.test", m, sender="someone@client.example")
    wait_status(c, qid, "demo@example.test", "deferred")
    DOVECOT.start()
    try:
        DOVECOT.wait_message("demo@example.test", m, timeout=30)
        wait_status(c, qid, "demo@example.test", "sent", timeout=30)
    finally:
        DOVECOT.stop()


# ---------------------------------------------------------------- real Postfix
POSTFIX_SKIP = (lambda: PostfixServer.SKIP() or DovecotLmtp.SKIP() or NO_DNS)


@case(conf=MX_CONF, skip=POSTFIX_SKIP, timeout=120)
def test_postfix_mx_delivery(c):
    m = unique("postfix")
    with PostfixServer("127.0.0.30", mx_port=MXPORT) as pf:
        qid = send(c, "alice@postfix.test", m)
        got = pf.wait_message("alice", m, timeout=30)
        wait_status(c, qid, "alice@postfix.test", "sent")
        # opportunistic TLS with Postfix's STARTTLS
        check(re.search(rb"with ESMTPS", got), "Postfix's Received: says no TLS:\n%s"
              % got[:600].decode("latin-1"))
        # a recipient Postfix does not know: 550 from a real server, bounced
        m2 = unique("postfix-unknown")
        qid2 = send(c, "nobody@postfix.test", m2)
        line = wait_status(c, qid2, "nobody@postfix.test", FAILED, timeout=30)
        check(status_has(line, "5.1.1") or "550" in line.group("text"),
              "status %s (%s), want Postfix's 550 5.1.1" % (line.group("dsn"), line.group("text")))


PF_SUB_PORT = shared_port(["127.0.0.30"], avoid=(MXPORT,))
PF_AUTH_CONF = dict(SMTP_TIMEOUTS, relayhost="relayuser@postfix.test:secret@[127.0.0.30]:%d" % PF_SUB_PORT,
                    minimal_backoff_time="1s", maximal_backoff_time="2s")


@case(conf=PF_AUTH_CONF, skip=lambda: PostfixServer.SKIP() or DovecotLmtp.SKIP(), timeout=120)
def test_postfix_relayhost_starttls_auth(c):
    m = unique("pfauth")
    dc = DovecotLmtp("127.0.0.40")
    dc.start()
    try:
        with PostfixServer("127.0.0.30", sub_port=PF_SUB_PORT, auth_socket=dc.auth_socket) as pf:
            qid = send(c, "bob@postfix.test", m)
            got = pf.wait_message("bob", m, timeout=30)
            wait_status(c, qid, "bob@postfix.test", "sent")
            log = pf.log()
            check(re.search(r"sasl_username=relayuser@postfix\.test", log),
                  "Postfix did not log the AUTH user:\n" + log[-1500:])
            check(b"ESMTPSA" in got, "Received: lacks ESMTPSA (TLS and AUTH):\n%s"
                  % got[:600].decode("latin-1"))
    finally:
        dc.cleanup()


if __name__ == "__main__":
    sys.exit(main(globals()))
