"""test_content_filters.py - content_filters_file in the router: IceWarp's
two examples as written (an authenticated user's mail to a remote address
reaches the peer with X-Auth: user; mail to someone@yahoo.com also lands
in the local audit Maildir), discard, "edit header" (the client's Subject,
folded, is replaced by the edited one both in the Maildir and at the
peer, and a Subject: line in the body stays), a bad rule file refused at start
naming file and line, and a bad file on SIGHUP that keeps the old rules.
Remote mail goes through relayhost = [127.0.0.1]:PORT to an SmtpPeer.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import atexit
import os
import re
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DEFAULT_USERS, SLOW, SmtpPeer, case, check, main,  # noqa: E402
                     send_mail, shared_port, simple_message, unique, wait_for)

PEER_ADDR = "127.0.0.1"
PEER_PORT = shared_port([PEER_ADDR])
RULES_DIR = tempfile.mkdtemp(prefix="correio-cf-rules-")
os.chmod(RULES_DIR, 0o755)
atexit.register(lambda: shutil.rmtree(RULES_DIR, ignore_errors=True))

ICEWARP = """# IceWarp's two examples
rule "X-Auth on outgoing mail"
  when recipient is remote
  then add header "X-Auth: %%Auth_Email%%"

rule "audit copy of mail to yahoo"
  when recipient is remote and recipient matches /yahoo\\.com$/
  then copy to audit@example.test

rule "drop the unwanted"
  when recipient matches /^unwanted@/
  then discard

rule "tag outside mail"
  when header Subject matches /^edit-me/
  then edit header "Subject: [external] %%Subject%%"
"""

BAD = """rule "fine"
  then stop

rule "broken"
  when recipient is remote and size above 5m
  then discard
"""


def rules_file(name, text):
    path = os.path.join(RULES_DIR, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    return path


GOOD_PATH = rules_file("good", ICEWARP)
BAD_PATH = rules_file("bad", BAD)
CONF = dict(relayhost="[%s]:%d" % (PEER_ADDR, PEER_PORT),
            content_filters_file=GOOD_PATH,
            smtpd_tls_auth_only="no")
USERS = DEFAULT_USERS + ("audit@example.test", "user@example.test", "unwanted@example.test")
SENDER = "user@example.test"


def send_auth(c, rcpts, msg, login="user@example.test"):
    """One message over an authenticated session; returns the queue id."""
    return send_mail(c, SENDER, rcpts, msg, login=login)


def log_match(c, pattern, timeout=20, since=0):
    rx = re.compile(pattern)
    return wait_for(lambda: rx.search(c.log_since(since)), timeout, what="log line /%s/" % pattern)


@case(conf=CONF, users=USERS)
def test_x_auth_on_outgoing_mail(c):
    m = unique("xauth")
    with SmtpPeer(PEER_ADDR, PEER_PORT) as p:
        qid = send_auth(c, ["far@remote.test", "demo@example.test"],
                        simple_message(m, to="far@remote.test"))
        t = p.wait_txn(m)
        check(t["rcpts"] == ["far@remote.test"], "peer rcpts: %r" % t["rcpts"])
        data = t["data"].encode() if isinstance(t["data"], str) else t["data"]
        check(re.search(rb"(?m)^X-Auth: user@example\.test\r?$", data),
              "no X-Auth: user@example.test at the peer:\n%r" % data[:600])
        # header actions are per message: the local copy has it too, once
        local = c.wait_for_message("demo@example.test", m)
        check(local.count(b"X-Auth: user@example.test") == 1, "local copy: %r" % local[:600])
    log_match(c, r'%s: filter rule="X-Auth on outgoing mail" to=<far@remote\.test>' % qid)


@case(conf=CONF, users=USERS)
def test_local_only_mail_untouched(c):
    m = unique("local")
    qid = send_auth(c, ["demo@example.test"], simple_message(m))
    msg = c.wait_for_message("demo@example.test", m)
    check(b"X-Auth:" not in msg, "X-Auth on local-only mail: %r" % msg[:600])
    check("%s: filter rule=" % qid not in c.log(), "a rule fired for local-only mail")


@case(conf=CONF, users=USERS)
def test_audit_copy_of_mail_to_yahoo(c):
    m = unique("yahoo")
    with SmtpPeer(PEER_ADDR, PEER_PORT) as p:
        qid = send_auth(c, ["someone@yahoo.com"], simple_message(m, to="someone@yahoo.com"))
        t = p.wait_txn(m)
        check(t["rcpts"] == ["someone@yahoo.com"], "peer rcpts: %r" % t["rcpts"])
        audit = c.wait_for_message("audit@example.test", m)
        check(b"X-Auth: user@example.test" in audit, "audit copy without X-Auth: %r" % audit[:600])
    log_match(c, r'%s: filter rule="audit copy of mail to yahoo" to=<someone@yahoo\.com>' % qid)
    log_match(c, r"%s: to=<audit@example\.test>, route=maildir" % qid)


@case(conf=CONF, users=USERS)
def test_discard(c):
    m = unique("discard")
    qid = send_auth(c, ["unwanted@example.test", "demo@example.test"], simple_message(m),
                    login=None)
    c.wait_for_message("demo@example.test", m)
    log_match(c, r"%s: to=<unwanted@example\.test>, route=discard text=content filter "
                 r"rule=content_filter" % qid)
    check(not c.maildir_files("unwanted@example.test"), "the discarded recipient got mail")


def _header_section(data):
    """The header section of a message (bytes, CRLF or LF lines)."""
    data = data.replace(b"\r\n", b"\n")
    return data.split(b"\n\n", 1)[0]


@case(conf=CONF, users=USERS)
def test_edit_header(c):
    m = unique("edit")
    msg = ("From: <%s>\r\nTo: <far@remote.test>\r\nSubject: edit-me hello\r\n world\r\n"
           "Message-ID: <%s@client.example>\r\n\r\nSubject: body line\r\nbody %s\r\n"
           % (SENDER, m, m)).encode()
    want = b"Subject: [external] edit-me hello world"
    with SmtpPeer(PEER_ADDR, PEER_PORT) as p:
        qid = send_auth(c, ["far@remote.test", "demo@example.test"], msg)
        t = p.wait_txn(m)
        data = t["data"].encode() if isinstance(t["data"], str) else t["data"]
        local = c.wait_for_message("demo@example.test", m)
    for where, got in (("peer", data), ("maildir", local)):
        head = _header_section(got)
        subjects = re.findall(rb"(?mi)^subject:.*$", head)
        check(subjects == [want], "%s: Subject lines %r in:\n%r" % (where, subjects, got[:800]))
        check(b"\n world" not in head, "%s: the folded line stayed:\n%r" % (where, got[:800]))
        check(b"Message-ID: <%s@client.example>" % m.encode() in head,
              "%s: other fields lost:\n%r" % (where, got[:800]))
        check(b"\nSubject: body line" in got.replace(b"\r\n", b"\n"),
              "%s: the body's line is gone:\n%r" % (where, got[:800]))
    log_match(c, r'%s: filter rule="tag outside mail" to=<far@remote\.test>' % qid)


def _bad_start():
    """Start with the bad rule file: the router must refuse it, naming the
    file and the line."""
    from harness import Correio, TestFailure
    c = Correio(users=USERS, **dict(CONF, content_filters_file=BAD_PATH))
    try:
        try:
            c.start(timeout=15)
        except TestFailure:
            pass
        want = "%s:5: expected \"over\" after \"size\", not \"above\"" % BAD_PATH
        wait_for(lambda: want in c.log(), 15 * SLOW,
                 what="%r in the log:\n%s" % (want, c.log_tail(20)))
    finally:
        c.cleanup()


@case(conf=CONF, users=USERS, fresh=True)
def test_bad_rule_file_on_start_and_reload(c):
    _bad_start()
    # SIGHUP with the file turned bad: the router says where, keeps the
    # old rules and keeps running
    router = c.stage_pid("router")
    shutil.copy(BAD_PATH, os.path.join(c.dir, "rules"))
    with open(os.path.join(c.dir, "correio.conf"), "a") as f:
        f.write("content_filters_file = rules\n")
    pos = c.log_size()
    os.kill(c.proc.pid, signal.SIGHUP)
    want = "reload: %s:5: expected \"over\" after \"size\"" % os.path.join(c.dir, "rules")
    wait_for(lambda: want in c.log_since(pos), 15,
             what="%r in the log:\n%s" % (want, c.log_since(pos)[-1500:]))
    check(c.stage_pid("router") == router, "the router restarted")
    m = unique("kept")
    with SmtpPeer(PEER_ADDR, PEER_PORT) as p:
        send_auth(c, ["far@remote.test"], simple_message(m, to="far@remote.test"))
        t = p.wait_txn(m)
        data = t["data"].encode() if isinstance(t["data"], str) else t["data"]
        check(b"X-Auth: user@example.test" in data, "old rules lost: %r" % data[:600])


if __name__ == "__main__":
    sys.exit(main(globals()))
