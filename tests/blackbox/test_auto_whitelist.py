"""test_auto_whitelist.py - spam_auto_whitelist end to end: an
authenticated user writes to bob@remote.test (relayed to a sink on
127.0.0.21); then a spammy message (GTUBE, far above spam_folder_score)
from bob to that user lands in the inbox, not in Junk, and the router's
anti-spam line says AUTO_WHITELIST, while the same message from someone
the user never wrote to goes to Junk.  `correio awl list` shows the entry
and `correio awl delete` takes it away.  With spam_auto_whitelist = no
nothing is noted.  The policy service's AWL_NOTE / AWL_CHECK are also
spoken directly (tests/blackbox/policy_client.py): case, the null
sender, bad requests, and expiry with the driven clock
(CORREIO_TEST_CLOCK, spam_auto_whitelist_lifetime = 1d).

mynetworks is set to a network no test client uses, so that the spam
from 127.0.0.1 counts as inbound (mail from mynetworks is our users').
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import json
import os
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SmtpPeer, at_cleanup, case, check, main, send_mail,  # noqa: E402
                     shared_port, unique, wait_for, wait_log)
import policy_client  # noqa: E402
from policy_client import TestClock, ask, router_endpoint  # noqa: E402

# this proto's auto-whitelist kinds (policy_client.py predates them)
policy_client.KINDS.setdefault("AWL_NOTE", 7)
policy_client.KINDS.setdefault("AWL_CHECK", 8)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
ALICE = "alice@example.test"
DEMO = "demo@example.test"
BOB = "bob@remote.test"
SINK = "127.0.0.21"
SINK_PORT = shared_port([SINK])
DAY = 86400

_tmp = tempfile.mkdtemp(prefix="correio-awl-")
os.chmod(_tmp, 0o755)
at_cleanup(lambda: shutil.rmtree(_tmp, ignore_errors=True))
CLOCK = TestClock(os.path.join(_tmp, "clock", "offset"))

BASE = dict(smtpd_tls_auth_only="no", mynetworks="192.0.2.0/24",
            relayhost="[%s]:%d" % (SINK, SINK_PORT), smtp_connect_timeout="3s",
            minimal_backoff_time="1s", maximal_backoff_time="2s")
CONF = dict(BASE, spam_auto_whitelist="yes", spam_auto_whitelist_lifetime="1d")
OFF = dict(BASE, spam_auto_whitelist="no")


def send(c, sender, rcpts, marker, body="just a note", login=None):
    """One message over SMTP (AUTH PLAIN as login when given); its queue id."""
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: awl %s\r\nMessage-ID: <%s@client.example>\r\n"
           "\r\n%s\r\nmarker %s\r\n" % (sender, rcpts[0], marker, marker, body, marker)).encode()
    return send_mail(c, sender, rcpts, msg, login=login)


def where(c, addr, marker):
    """"inbox" or "Junk": where the copy with marker was delivered (None: not yet)."""
    found = c.maildir_copies(addr, marker)
    return (found[0][0] or "inbox") if found else None


def wait_where(c, addr, marker):
    return wait_for(lambda: where(c, addr, marker), 30, what="%s's copy of %s" % (addr, marker))


def write_to(c, user, rcpts, peer):
    """user (authenticated) writes to rcpts, relayed to the sink."""
    m = unique("out")
    send(c, user, rcpts, m, login=user)
    peer.wait_txn(m)
    return m


def awl_list(c, *args):
    r = c.ctl("awl", "list", *args)
    check(r.returncode == 0, "correio awl list: rc %d %s" % (r.returncode, r.stderr.strip()))
    return r.stdout


def listed(c, user, addr):
    return ("%s %s" % (user, addr)) in awl_list(c, user)


def spam_from(c, sender, rcpt):
    m = unique("spam")
    qid = send(c, sender, [rcpt], m, body="buy now " + GTUBE)
    return qid, m, wait_where(c, rcpt, m)


# ---------------------------------------------------------------- end to end
@case(conf=CONF)
def test_written_to_is_whitelisted(c):
    with SmtpPeer(SINK, SINK_PORT) as peer:
        write_to(c, ALICE, [BOB, "Carol@Remote.Test"], peer)
    wait_for(lambda: listed(c, ALICE, BOB), 20, what="alice's note of bob in `correio awl list`")
    check(listed(c, ALICE, "carol@remote.test"), "carol not noted in lower case: %s"
          % awl_list(c))
    logpos = c.log_size()
    qid, m, folder = spam_from(c, BOB, ALICE)
    check(folder == "inbox", "GTUBE from bob, whom alice wrote to, went to %s" % folder)
    wait_log(c, r"%s: spam: .*<%s>:none\(AUTO_WHITELIST\)" % (qid, ALICE), since=logpos)
    # the sender in any case
    _, _, folder = spam_from(c, "BOB@Remote.TEST", ALICE)
    check(folder == "inbox", "GTUBE from BOB@Remote.TEST went to %s" % folder)
    # someone alice never wrote to, and another user bob never heard from
    _, _, folder = spam_from(c, "eve@remote.test", ALICE)
    check(folder == "Junk", "GTUBE from eve went to %s" % folder)
    _, _, folder = spam_from(c, BOB, DEMO)
    check(folder == "Junk", "GTUBE from bob to demo (who never wrote to bob) went to %s" % folder)
    # <> is never whitelisted
    m = unique("bounce")
    send(c, "", [ALICE], m, body="undeliverable " + GTUBE)
    folder = wait_where(c, ALICE, m)
    check(folder == "Junk", "GTUBE from <> went to %s" % folder)


@case(conf=CONF)
def test_ctl_list_and_delete(c):
    user = "carol@example.test"
    with SmtpPeer(SINK, SINK_PORT) as peer:
        write_to(c, user, ["dan@remote.test", "erin@remote.test"], peer)
    wait_for(lambda: listed(c, user, "erin@remote.test"), 20, what="carol's notes")
    out = awl_list(c, user)
    lines = [l for l in out.splitlines() if l.startswith(user + " ")]
    check(len(lines) == 2, "carol's entries: %r" % out)
    check(out.startswith("USER ADDRESS"), "no title line: %r" % out)
    check("whitelisted" in lines[0] and "written to 1 time" in lines[0], "detail: %r" % lines[0])
    # one user's entries only: no substring matches of another user
    check(ALICE not in out, "alice's entries in carol's list: %r" % out)
    rows = [json.loads(l) for l in awl_list(c, "--json", user).splitlines()]
    check(sorted(r["key"] for r in rows) == ["%s dan@remote.test" % user,
                                             "%s erin@remote.test" % user], "json: %r" % rows)
    check(all(r["table"] == "awl" and r["state"] == "whitelisted" and r["count"] == 1
              and r["until"] > r["last"] for r in rows), "json: %r" % rows)
    # a pattern over every entry
    check("%s dan@remote.test" % user in awl_list(c, "*dan@remote.test"), "pattern list")

    r = c.ctl("awl", "delete", "Carol@Example.test", "DAN@remote.test")
    check(r.returncode == 0 and "deleted" in r.stdout, "delete: rc %d %r %r"
          % (r.returncode, r.stdout, r.stderr))
    check(not listed(c, user, "dan@remote.test"), "dan still listed")
    _, _, folder = spam_from(c, "dan@remote.test", user)
    check(folder == "Junk", "GTUBE from dan after the delete went to %s" % folder)
    _, _, folder = spam_from(c, "erin@remote.test", user)
    check(folder == "inbox", "GTUBE from erin went to %s" % folder)
    r = c.ctl("awl", "delete", user, "dan@remote.test")
    check(r.returncode == 1 and "no such auto-whitelist entry" in r.stderr,
          "second delete: rc %d %r" % (r.returncode, r.stderr))
    for bad in (["delete", user], ["delete", user, "a b"], ["delete"], ["frob"]):
        r = c.ctl("awl", *bad)
        check(r.returncode == 2, "awl %s: rc %d %r" % (" ".join(bad), r.returncode, r.stderr))


@case(conf=OFF)
def test_off_notes_nothing(c):
    with SmtpPeer(SINK, SINK_PORT) as peer:
        write_to(c, ALICE, [BOB], peer)
    # the router handled alice's mail (the sink got it) before bob's
    _, _, folder = spam_from(c, BOB, ALICE)
    check(folder == "Junk", "GTUBE from bob went to %s with the whitelist off" % folder)
    out = awl_list(c)
    check("no auto-whitelist entries" in out, "entries with the whitelist off: %r" % out)


# ---------------------------------------------------------------- the policy service
@case(conf=CONF)
def test_policy_protocol(c):
    ep = router_endpoint(c)
    user = "awl:frank@example.test"

    def check_kind(sender):
        return ask(ep, "AWL_CHECK", user, sender=sender)

    r = check_kind("gina@remote.test")
    check(r["action"] == "DEFER", "before the note: %r" % r)
    r = ask(ep, "AWL_NOTE", "awl:Frank@Example.TEST", recipient="Gina@Remote.test",
            session="AWLTEST")
    check(r["action"] == "OK" and r["reason"] == "AWL_NEW", "note: %r" % r)
    r = check_kind("GINA@remote.TEST")
    check(r["action"] == "OK" and r["reason"] == "AUTO_WHITELIST", "check: %r" % r)
    check(check_kind("")["action"] == "DEFER", "the null sender passed")
    check(check_kind("gina@remote.test.evil")["action"] == "DEFER", "a longer address passed")
    # fire and forget: no answer, but the note lands
    cl = policy_client.PolicyClient(ep)
    try:
        cl.send("AWL_NOTE", user, recipient="hank@remote.test", no_reply=True)
        r = cl.ask("AWL_CHECK", user, sender="hank@remote.test")
        check(r["action"] == "OK", "after a no_reply note: %r" % r)
    finally:
        cl.close()
    # bad requests get a clear error and the router goes on
    for key, rcpt in (("frank@example.test", "x@remote.test"), ("awl:", "x@remote.test"),
                      (user, "a b@remote.test"), (user, "x" * 300 + "@remote.test"),
                      (user, "")):
        r = ask(ep, "AWL_NOTE", key, recipient=rcpt)
        check(r["action"] == "ERROR" and r["text"], "bad note %r %r: %r" % (key, rcpt[:20], r))
    check(check_kind("hank@remote.test")["action"] == "OK", "the router forgot")
    # expiry: spam_auto_whitelist_lifetime = 1d after the last note
    CLOCK.advance(DAY - 60)
    check(check_kind("gina@remote.test")["action"] == "OK", "expired before its lifetime")
    r = ask(ep, "AWL_NOTE", user, recipient="hank@remote.test")
    check(r["reason"] == "AWL_REFRESHED", "refresh: %r" % r)
    CLOCK.advance(120)
    check(check_kind("gina@remote.test")["action"] == "DEFER", "alive past its lifetime")
    check(check_kind("hank@remote.test")["action"] == "OK", "a refreshed entry expired")
    # gina is listed as expired until a sweep (every minute) takes it
    lines = awl_list(c, "frank@example.test").splitlines()
    gina = [l for l in lines if "gina@remote.test" in l]
    hank = [l for l in lines if "hank@remote.test" in l]
    check(hank and "whitelisted" in hank[0], "hank after expiry: %r" % lines)
    check(not gina or "expired" in gina[0], "gina after expiry: %r" % lines)


if __name__ == "__main__":
    sys.exit(main(globals()))
