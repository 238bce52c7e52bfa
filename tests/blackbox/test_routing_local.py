"""test_routing_local.py - where the router sends a recipient and what local
delivery does with it: spam into the Junk folder, Maildir++ quota (bounce
or defer, per user from users_file), Delivered-To loops, transport_maps
error:/discard: routes, and configuration errors for relayhost and
local_transport.  Onward SMTP/LMTP routes are tested with the SMTP client.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, DEFAULT_USERS, SLOW, Correio, TestFailure, case, check,  # noqa: E402
                     main, queue_id, simple_message, unique, wait_for)

DEMO = "demo@example.test"
SENDER = "sender@client.example"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
QUOTA_USER = "quota@example.test"
QUOTA_RULE = "userdb_quota_rule=*:storage=4k"      # Dovecot's syntax: 4096 bytes

TABLES = tempfile.mkdtemp(prefix="correio-routing-tables-")
os.chmod(TABLES, 0o755)


def table(name, text):
    """A text table compiled with `correio map build` (for hash:)."""
    path = os.path.join(TABLES, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    if os.access(BIN, os.X_OK):
        r = subprocess.run([BIN, "map", "build", path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("correio map build %s: %s" % (path, r.stderr))
        os.chmod(path + ".lmdb", 0o644)
    return path


TRANSPORT = table("transport",
                  "blocked.test         error:5.7.1 this domain takes no mail\n"
                  "dropped@remote.test  discard:old list address\n"
                  ".retired.test        error:\n")


def _cleanup_tables():
    shutil.rmtree(TABLES, ignore_errors=True)


import atexit  # noqa: E402
atexit.register(_cleanup_tables)


def send(c, rcpt, data, sender=SENDER):
    """One message over SMTP; returns its queue id from the 250 reply."""
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        code, _ = s.mail(sender)
        check(code == 250, "MAIL FROM: %d" % code)
        code, text = s.rcpt(rcpt)
        check(code == 250, "RCPT TO:<%s>: %d %r" % (rcpt, code, text))
        code, text = s.data(data)
        check(code == 250, "DATA: %d %r" % (code, text))
    qid = queue_id(text.decode())
    check(qid, "no queue id in %r" % text)
    return qid


def wait_log(c, pattern, since=0, timeout=20):
    rx = re.compile(pattern)
    return wait_for(lambda: rx.search(c.log_since(since)), timeout, what="log line /%s/" % pattern)


def folder_files(c, addr, folder):
    d = os.path.join(c.maildir(addr), "." + folder, "new")
    try:
        return [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
    except OSError:
        return []


def queue_entry(c, qid):
    """qid's lines in `correio queue list` (row and indented lines), or None."""
    p = c.ctl("queue", "list")
    check(p.returncode == 0, "queue list: exit %d %s" % (p.returncode, p.stderr))
    lines = p.stdout.splitlines()
    for i, l in enumerate(lines):
        if re.match(r"%s[*!\s]" % qid, l):
            out = [l]
            for more in lines[i + 1:]:
                if not more.startswith("    "):
                    break
                out.append(more)
            return out
    return None


def padded_message(marker, size, to=QUOTA_USER):
    """simple_message with a body padded to about size bytes."""
    base = simple_message(marker, to=to)
    pad = max(0, size - len(base))
    lines = b"".join(b"x" * 70 + b"\r\n" for _ in range(pad // 72 + 1))
    return base + lines


class QuotaCorreio:
    """A fresh correio whose users file gives QUOTA_USER a quota rule (the
    harness writes plain users files, so this one is written before
    start)."""

    def __init__(self, **conf):
        self.c = Correio(users=DEFAULT_USERS, **conf)
        with open(os.path.join(self.c.dir, "users"), "w") as f:
            for u in DEFAULT_USERS:
                f.write("%s:{PLAIN}secret\n" % u)
            f.write("%s:{PLAIN}secret::::::%s\n" % (QUOTA_USER, QUOTA_RULE))

    def __enter__(self):
        try:
            return self.c.start()
        except BaseException:
            self.c.cleanup()
            raise

    def __exit__(self, *exc):
        self.c.stop()
        reps = self.c.sanitizer_reports()
        if exc[0] is not None or reps:
            sys.stderr.write("--- quota instance log tail:\n%s\n" % self.c.log_tail())
        self.c.cleanup()
        if exc[0] is None:
            check(not reps, "sanitizer report: " + "; ".join(reps[:5]))


# ---------------------------------------------------------------- spam folder
# (mail from 127.0.0.1 is in mynetworks, so outbound: spam actions only
# with spam_outbound_scan = scan)
@case(conf={"spam_outbound_scan": "scan"})
def test_spam_lands_in_junk(c):
    m = unique("spam")
    logpos = c.log_size()
    data = simple_message(m).replace(b"body ", ("body " + GTUBE + " ").encode())
    qid = send(c, DEMO, data)
    wait_for(lambda: folder_files(c, DEMO, "Junk"), 20, what="a message in demo's .Junk/new")
    found = [p for p in folder_files(c, DEMO, "Junk") if m.encode() in open(p, "rb").read()]
    check(found, "the spam message is not in .Junk/new")
    with open(found[0], "rb") as f:
        head = f.read().split(b"\n\n", 1)[0]
    check(b"X-Spam-Status: Yes" in head, "no X-Spam-Status: Yes in %r" % head[:400])
    junk = os.path.join(c.maildir(DEMO), ".Junk")
    check(os.path.isfile(os.path.join(junk, "maildirfolder")), "no maildirfolder marker")
    for sub in ("cur", "new", "tmp"):
        st = os.stat(os.path.join(junk, sub))
        check(st.st_mode & 0o777 == 0o700, ".Junk/%s mode %o" % (sub, st.st_mode & 0o777))
    check(not any(m.encode() in d for d in c.maildir_messages(DEMO)), "spam also in the inbox")
    wait_log(c, r"%s: to=<%s>, route=maildir mailbox=example.test/demo folder=Junk "
             r"rule=mydestination" % (qid, DEMO), logpos)
    # a clean message still goes to the inbox
    m2 = unique("ham")
    send(c, DEMO, simple_message(m2))
    c.wait_for_message(DEMO, m2)


# ---------------------------------------------------------------- Delivered-To loops
@case()
def test_delivered_to_loop_not_delivered(c):
    m = unique("loop")
    logpos = c.log_size()
    data = b"Delivered-To: demo@example.test\r\n" + simple_message(m)
    qid = send(c, DEMO, data, sender="")
    wait_log(c, r"%s: to=<%s>, relay=maildir, .*dsn=5\.4\.6, status=bounced "
             r"\(5\.4\.6 mail forwarding loop for %s\)" % (qid, re.escape(DEMO), re.escape(DEMO)),
             logpos)
    # for someone else it is no loop
    m2 = unique("noloop")
    send(c, DEMO, b"Delivered-To: alice@example.test\r\n" + simple_message(m2))
    c.wait_for_message(DEMO, m2)
    check(not any(m.encode() in d for d in c.maildir_messages(DEMO)), "the loop was delivered")


# ---------------------------------------------------------------- quota
@case()
def test_quota_bounce(c):
    with QuotaCorreio(quota_exceeded_action="bounce") as q:
        m1 = unique("q1")
        send(q, QUOTA_USER, padded_message(m1, 2500))
        q.wait_for_message(QUOTA_USER, m1)
        size_file = os.path.join(q.maildir(QUOTA_USER), "maildirsize")
        wait_for(lambda: os.path.exists(size_file), 10, what="maildirsize")
        with open(size_file) as f:
            first = f.readline()
        check(first == "4096S\n", "maildirsize limit line %r" % first)
        # the second one does not fit: bounced (null sender: no DSN to send)
        logpos = q.log_size()
        m2 = unique("q2")
        qid = send(q, QUOTA_USER, padded_message(m2, 2500), sender="")
        wait_log(q, r"%s: to=<%s>, relay=maildir, .*dsn=5\.2\.2, status=bounced "
                 r"\(5\.2\.2 mailbox full\)" % (qid, re.escape(QUOTA_USER)), logpos)
        wait_for(lambda: queue_entry(q, qid) is None, 20, interval=0.2,
                 what="the bounced %s gone from the queue" % qid)
        # larger than the whole quota: bounced whatever is in use
        m3 = unique("q3")
        qid = send(q, QUOTA_USER, padded_message(m3, 6000), sender="")
        wait_log(q, r"%s: to=<%s>, .*dsn=5\.2\.2, status=bounced \(5\.2\.2 mailbox full"
                 % (qid, re.escape(QUOTA_USER)), logpos)
        # others have no quota (mailbox_quota = 0)
        m4 = unique("big")
        send(q, DEMO, padded_message(m4, 6000, to=DEMO))
        q.wait_for_message(DEMO, m4)
        msgs = q.maildir_messages(QUOTA_USER)
        check(len(msgs) == 1 and m1.encode() in msgs[0], "quota user's Maildir holds %d" % len(msgs))


@case()
def test_quota_defer(c):
    with QuotaCorreio(quota_exceeded_action="defer", minimal_backoff_time="1h",
                      maximal_backoff_time="2h") as q:
        m1 = unique("d1")
        send(q, QUOTA_USER, padded_message(m1, 2500))
        q.wait_for_message(QUOTA_USER, m1)
        logpos = q.log_size()
        m2 = unique("d2")
        qid = send(q, QUOTA_USER, padded_message(m2, 2500))
        wait_log(q, r"%s: to=<%s>, relay=maildir, .*dsn=4\.2\.2, status=deferred "
                 r"\(4\.2\.2 mailbox full\)" % (qid, re.escape(QUOTA_USER)), logpos)

        def deferred():
            e = queue_entry(q, qid)
            return e if e and "mailbox full" in "\n".join(e) else None
        e = wait_for(deferred, 20, interval=0.2, what="%s deferred in queue list" % qid)
        check(re.match(r"%s[*!]?\s+deferred\b" % qid, e[0]), "queue list row %r" % e[0])
        check(any("4.2.2 mailbox full" in l for l in e), "no reason in %r" % e)
        check(len(q.maildir_messages(QUOTA_USER)) == 1, "the deferred message was delivered")


# ---------------------------------------------------------------- transport_maps
@case(conf={"transport_maps": "hash:" + TRANSPORT})
def test_transport_maps_error_and_discard(c):
    logpos = c.log_size()
    # error: fails the recipient with the table's text
    qid = send(c, "someone@blocked.test", simple_message(unique("err")), sender="")
    wait_log(c, r"%s: to=<someone@blocked\.test>, route=error status=5\.7\.1 this domain takes "
             r"no mail rule=transport_maps" % qid, logpos)
    wait_log(c, r"%s: to=<someone@blocked\.test>, .*status=bounced \(5\.7\.1 this "
             r"domain takes no mail\)" % qid, logpos)
    # ".retired.test" matches subdomains; error: without text has a default
    qid2 = send(c, "x@mail.retired.test", simple_message(unique("err2")), sender="")
    wait_log(c, r"%s: to=<x@mail\.retired\.test>, .*status=bounced \(5\.0\.0 " % qid2, logpos)
    # discard: the copy is dropped, the message counts as done
    qid3 = send(c, "dropped@remote.test", simple_message(unique("disc")))
    wait_log(c, r"%s: to=<dropped@remote\.test>, route=discard text=old list address "
             r"rule=transport_maps" % qid3, logpos)
    wait_log(c, r"%s: to=<dropped@remote\.test>, relay=discard, .*status=discarded" % qid3, logpos)
    for q in (qid, qid2, qid3):
        wait_for(lambda: queue_entry(c, q) is None, 20, interval=0.2,
                 what="%s gone from the queue" % q)
    # anything else is routed as before: local still local
    m = unique("local")
    send(c, DEMO, simple_message(m))
    c.wait_for_message(DEMO, m)


@case(fresh=True)
def test_sighup_takes_new_transport_maps(c):
    """The router reads transport_maps again on SIGHUP; a table it cannot
    open leaves the tables in use."""
    conf = os.path.join(c.dir, "correio.conf")
    pid = c.stage_pid("router")

    def reload(line):
        pos = c.log_size()
        with open(conf, "a") as f:
            f.write(line + "\n")
        os.kill(pid, signal.SIGHUP)
        wait_log(c, r"correio/router\[%d\]: configuration reloaded" % pid, pos)
        return pos

    pos = reload("transport_maps = hash:" + TRANSPORT)
    qid = send(c, "someone@blocked.test", simple_message(unique("hup")), sender="")
    wait_log(c, r"%s: to=<someone@blocked\.test>, route=error status=5\.7\.1 .* "
             r"rule=transport_maps" % qid, pos)
    pos = reload("transport_maps = hash:%s/no-such-table" % TABLES)
    wait_log(c, r"correio/router\[%d\]: warning: reload: transport_maps: .*no-such-table.*; "
             r"the routing tables in use stay" % pid, pos)
    qid = send(c, "someone@blocked.test", simple_message(unique("hup2")), sender="")
    wait_log(c, r"%s: to=<someone@blocked\.test>, route=error .* rule=transport_maps" % qid, pos)
    check(c.stage_pid("router") == pid, "the router restarted")


# ---------------------------------------------------------------- backup MX
@case(conf={"mynetworks": "192.0.2.0/24", "backup_domains": "backup.test",
            "minimal_backoff_time": "1h", "maximal_backoff_time": "2h"},
      users=DEFAULT_USERS + ("known@backup.test",))
def test_backup_domain_accepted_local_user_delivered(c):
    """127.0.0.1 is not in mynetworks here: a backup domain is accepted
    from anyone, like relay_domains; its local accounts get their mail
    here, the rest is routed to the domain's MX hosts."""
    logpos = c.log_size()
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        code, text = s.rcpt("someone@elsewhere.test")
        check(code == 554, "relay to elsewhere.test: %d %r" % (code, text))
        s.rset()
    m = unique("backup")
    send(c, "known@backup.test", simple_message(m, to="known@backup.test"))
    c.wait_for_message("known@backup.test", m)
    qid = send(c, "stranger@backup.test", simple_message(unique("primary")))
    wait_log(c, r"%s: to=<stranger@backup\.test>, route=relay nexthop=backup\.test "
             r"rule=backup_domains" % qid, logpos)
    qid = send(c, "x@mail.backup.test", simple_message(unique("sub")))
    wait_log(c, r"%s: to=<x@mail\.backup\.test>, route=relay nexthop=mail\.backup\.test "
             r"rule=backup_domains" % qid, logpos)


# ---------------------------------------------------------------- configuration
def conf_line(path, name):
    with open(path) as f:
        for n, line in enumerate(f, 1):
            if line.startswith(name + " ="):
                return n
    raise TestFailure("%s not in %s" % (name, path))


def config_of(name, value, **conf):
    """`correio config` on a fresh directory with name = value and conf;
    (exit, out, err, "FILE:LINE: NAME: ") for that setting."""
    conf[name] = value
    c = Correio(**conf)
    try:
        p = c.ctl("config")
        path = os.path.join(c.dir, "correio.conf")
        return p.returncode, p.stdout, p.stderr, "%s:%d: %s: " % (path, conf_line(path, name),
                                                                 name)
    finally:
        c.cleanup()


@case()
def test_config_errors_name_file_line_parameter(c):
    bad = [("relayhost", "[smtp.example.net]:99999", "bad port 99999"),
           ("relayhost", "user@[smtp.example.net]", "credentials without a password"),
           ("local_transport", "procmail", "unknown transport"),
           ("local_transport", "lmtp:", "needs a next hop"),
           ("local_transport", "smtp:[relay.example]", "the smtp transport is not allowed"),
           ("best_mx_transport", "maildir", "is not one of: local")]
    for name, value, why in bad:
        rc, out, err, want = config_of(name, value)
        check(rc != 0, "%s = %s accepted: %r" % (name, value, out[-300:]))
        check(want in err and why in err, "%s = %s: error %r, want %r ... %r"
              % (name, value, err.strip(), want, why))
    # good values load; the relayhost's password is never printed
    rc, out, err, _ = config_of("relayhost", "me@example.net:s3cr3t@[smtp.example.net]:587",
                                local_transport="lmtp:unix:/run/dovecot/lmtp")
    check(rc == 0, "good config refused: %r" % err)
    check("s3cr3t" not in out, "the password is printed")
    check("relayhost = me@example.net:****@[smtp.example.net]:587\n" in out,
          "relayhost not shown masked: %r" % [l for l in out.splitlines() if "relayhost" in l])
    check("local_transport = lmtp:unix:/run/dovecot/lmtp\n" in out, "local_transport not shown")


if __name__ == "__main__":
    sys.exit(main(globals()))
