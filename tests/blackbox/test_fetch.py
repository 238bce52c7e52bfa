#!/usr/bin/python3
"""test_fetch.py - correio-fetcher against a real Dovecot (POP3 and IMAP,
plain, STARTTLS and implicit TLS; tests/peers/dovecot_mailbox.sh) and a
scripted misbehaving server.

The remote mailboxes are rN@mbx.test (password pw-N), one or more per
case; the test drops messages into their Maildirs and checks what
arrives in correio's Maildirs (each Message-ID exactly once) and what
is left on the server.  Accounts are written to the instance's
fetch_accounts file and the fetcher is sent SIGHUP.
"""

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PEERS_DIR, SLOW, TestFailure, at_cleanup, case, check, main,  # noqa: E402
                     missing_binaries, shared_port, tls_cert, wait_for, wait_log)

REMOTE_USERS = 40
MBX_ADDR = "127.0.0.60"
HOST = "mx.example.test"


# ---------------------------------------------------------------- Dovecot
class DovecotMailbox:
    """A private Dovecot serving rN@mbx.test over POP3 (.port), POP3S
    (+1), IMAP (+2), IMAPS (+3) on MBX_ADDR."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="correio-mbx-")
        self.port = shared_port([MBX_ADDR], avoid=())
        for extra in range(1, 4):
            # the script takes four consecutive ports; make sure they are free
            s = socket.socket()
            try:
                s.bind((MBX_ADDR, self.port + extra))
            except OSError:
                raise TestFailure("port %d busy" % (self.port + extra))
            finally:
                s.close()
        self.seq = 0
        self.lock = threading.Lock()

    def start(self):
        # a certificate for MBX_ADDR (the harness's is for 127.0.0.1 only)
        cert, key = self.cert, self.key = (os.path.join(self.dir, "mbx-cert.pem"),
                                           os.path.join(self.dir, "mbx-key.pem"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                        "-subj", "/CN=mbx.test", "-addext", "subjectAltName=IP:%s" % MBX_ADDR,
                        "-keyout", key, "-out", cert], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(cert, 0o644)
        os.chmod(self.dir, 0o755)
        users = os.path.join(self.dir, "users.in")
        with open(users, "w") as f:
            for i in range(1, REMOTE_USERS + 1):
                f.write("r%d@mbx.test:{PLAIN}pw-%d\n" % (i, i))
        p = subprocess.run(["sh", os.path.join(PEERS_DIR, "dovecot_mailbox.sh"), "start",
                            self.dir, MBX_ADDR, str(self.port), cert, key, users],
                           capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise TestFailure("dovecot_mailbox.sh: exit %d: %s" % (p.returncode, p.stderr[-1500:]))
        return self

    def stop(self):
        subprocess.run(["sh", os.path.join(PEERS_DIR, "dovecot_mailbox.sh"), "stop", self.dir],
                       capture_output=True, timeout=60)
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def maildir(self, n):
        return os.path.join(self.dir, "mail", "mbx.test", "r%d" % n)

    def put(self, n, data):
        """Drop one message into rN's INBOX (tmp -> new, owned by mailtest)."""
        import pwd
        pw = pwd.getpwnam("mailtest")
        md = self.maildir(n)
        for sub in ("", "tmp", "new", "cur"):
            d = os.path.join(md, sub)
            if not os.path.isdir(d):
                os.makedirs(d, exist_ok=True)
                os.chown(d, pw.pw_uid, pw.pw_gid)
        with self.lock:
            self.seq += 1
            name = "%d.M%dP%d.test,S=%d" % (time.time(), self.seq, os.getpid(), len(data))
        tmp = os.path.join(md, "tmp", name)
        with open(tmp, "wb") as f:
            f.write(data)
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        os.rename(tmp, os.path.join(md, "new", name))

    def count(self, n):
        """Messages still on the server (new/ and cur/, without those
        flagged deleted but not expunged: IMAP's T flag)."""
        out = 0
        for sub in ("new", "cur"):
            try:
                names = os.listdir(os.path.join(self.maildir(n), sub))
            except OSError:
                continue
            out += sum(1 for x in names if not (":2," in x and "T" in x.split(":2,", 1)[1]))
        return out


_dovecot = None


def dovecot():
    global _dovecot
    if _dovecot is None:
        _dovecot = DovecotMailbox().start()
        at_cleanup(_dovecot.stop)
    return _dovecot


def no_dovecot():
    if os.getuid() != 0:
        return "needs root (Dovecot runs as mailtest)"
    return missing_binaries("/usr/sbin/dovecot", "/usr/lib/dovecot/pop3", "/usr/lib/dovecot/imap")


_next_user = [0]


def remote_user():
    """A remote mailbox no other case uses."""
    _next_user[0] += 1
    check(_next_user[0] <= REMOTE_USERS, "out of remote users")
    return _next_user[0]


# ---------------------------------------------------------------- helpers
def message(marker, to="someone@mbx.test", extra="", size=0):
    body = "body of %s\r\n" % marker
    if size:
        body += ("x" * 70 + "\r\n") * (size // 72)
    return ("From: sender@remote.example\r\nTo: %s\r\nSubject: %s\r\nMessage-ID: <%s@test>\r\n"
            "%s\r\n%s" % (to, marker, marker, extra, body)).encode()


def account(name, n, proto="pop3", tls="none", keep=True, forward_to="demo@example.test",
            port=None, server=MBX_ADDR, password=None, extra=""):
    d = dovecot() if port is None else None
    if port is None:
        off = {("pop3", "none"): 0, ("pop3", "starttls"): 0, ("pop3", "implicit"): 1,
               ("imap", "none"): 2, ("imap", "starttls"): 2, ("imap", "implicit"): 3}[(proto, tls)]
        port = d.port + off
    cert = dovecot().cert
    return ("account %s\n  server %s\n  port %d\n  protocol %s\n  tls %s\n  ca_file %s\n"
            "  user r%d@mbx.test\n  password %s\n  forward_to %s\n  keep %s\n%s\n"
            % (name, server, port, proto, tls, cert, n, password or ("pw-%d" % n), forward_to,
               "yes" if keep else "no", extra))


def write_accounts(c, text, mode=0o600):
    path = os.path.join(c.dir, "fetch_accounts")
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)
    os.chown(path, *_owner_ids())
    pos = c.log_size()
    os.kill(c.stage_pid("fetcher"), signal.SIGHUP)
    return pos


def _owner_ids():
    import pwd
    from harness import MAIL_OWNER
    pw = pwd.getpwnam(MAIL_OWNER)
    return pw.pw_uid, pw.pw_gid


def fetch_list(c):
    p = c.ctl("fetch", "list", "--json")
    check(p.returncode == 0, "fetch list: %d %s" % (p.returncode, p.stderr))
    return {d["account"]: d for d in (json.loads(l) for l in p.stdout.splitlines() if l.strip())}


def wait_runs(c, name, runs, timeout=30):
    """Until account name has run at least runs sessions and none runs."""
    def done():
        a = fetch_list(c).get(name)
        return a if a and a["runs"] >= runs and a["state"] != "active" else None
    return wait_for(done, timeout, interval=0.1, what="%d session(s) of %s" % (runs, name))


def fetch_now(c, name, timeout=30):
    before = fetch_list(c)[name]["runs"]
    p = c.ctl("fetch", "now", name)
    check(p.returncode == 0, "fetch now %s: %s" % (name, p.stderr))
    return wait_runs(c, name, before + 1, timeout)


def message_ids(c, addr):
    out = []
    for m in c.maildir_messages(addr):
        for line in m.split(b"\n"):
            if line.lower().startswith(b"message-id:"):
                out.append(line.split(b":", 1)[1].strip().decode())
                break
    return out


def check_once(c, addr, markers):
    ids = message_ids(c, addr)
    want = ["<%s@test>" % m for m in markers]
    missing = [m for m in want if m not in ids]
    dups = sorted({i for i in ids if ids.count(i) > 1})
    check(not missing, "%s: missing %d: %s" % (addr, len(missing), missing[:5]))
    check(not dups, "%s: duplicates: %s" % (addr, dups[:5]))


def wait_ids(c, addr, markers, timeout=30):
    want = {"<%s@test>" % m for m in markers}
    wait_for(lambda: want <= set(message_ids(c, addr)), timeout,
             what="%d message(s) in %s" % (len(want), addr))


def unique(prefix):
    return "%s-%d-%d" % (prefix, os.getpid(), random.randrange(10 ** 9))


FETCH_CONF = {"fetch_interval": "1h", "fetch_timeout": "3s"}


# ---------------------------------------------------------------- cases
@case()
def test_no_accounts_file(c):
    p = c.ctl("fetch", "list")
    check(p.returncode == 0 and "no remote accounts" in p.stdout,
          "fetch list without accounts: %d %r %r" % (p.returncode, p.stdout, p.stderr))
    p = c.ctl("fetch", "now", "nosuch")
    check(p.returncode == 1 and "no account nosuch" in p.stderr, "fetch now nosuch: %r" % p.stderr)


@case(conf=FETCH_CONF)
def test_accounts_file_checked(c):
    pos = write_accounts(c, "account a\n  server x.example\n", mode=0o644)
    wait_log(c, r"fetch_accounts: must not be readable by others \(chmod 600\)", since=pos)
    pos = write_accounts(c, "account a\n  server x.example\n  colour blue\n")
    wait_log(c, r"fetch_accounts:3: unknown keyword 'colour'", since=pos)
    pos = write_accounts(c, "account a\n  server x.example\n  user u\n  password hunter2\n")
    wait_log(c, r"fetch_accounts:1: account a: no forward_to", since=pos)
    check("hunter2" not in c.log(), "the password is in the log")
    write_accounts(c, "")


def modes_case(proto, tls):
    def fn(c):
        n = remote_user()
        name = "%s-%s" % (proto, tls)
        d = dovecot()
        first = [unique("m") for _ in range(3)]
        for m in first:
            d.put(n, message(m))
        pos = write_accounts(c, account(name, n, proto, tls, keep=True))
        wait_log(c, r"accounts: 1 in", since=pos)
        a = wait_runs(c, name, 1)
        check(a["last_error"] == "", "error: %r" % a["last_error"])
        wait_ids(c, "demo@example.test", first)
        msg = next(x for x in c.maildir_messages("demo@example.test") if first[0].encode() in x)
        check(b"(correio-fetcher) with %s id %s" % (proto.upper().encode(), name.encode()) in msg,
              "no fetcher Received: line in %r" % msg[:600])
        # keep: each message once, however many sessions
        for _ in range(3):
            fetch_now(c, name)
        more = [unique("m") for _ in range(2)]
        for m in more:
            d.put(n, message(m))
        a = fetch_now(c, name)
        wait_ids(c, "demo@example.test", first + more)
        fetch_now(c, name)
        time.sleep(0)  # nothing to wait for: the check below must hold right now
        check_once(c, "demo@example.test", first + more)
        check(d.count(n) == 5, "keep: %d left on the server, want 5" % d.count(n))
        check(a["taken_total"] == 5, "taken_total %d" % a["taken_total"])
    fn.__name__ = "test_%s_%s_keep" % (proto, tls)
    globals()[fn.__name__] = case(conf=FETCH_CONF, skip=no_dovecot)(fn)


for _p in ("pop3", "imap"):
    for _t in ("none", "starttls", "implicit"):
        modes_case(_p, _t)


def delete_case(proto):
    def fn(c):
        n = remote_user()
        name = "del-%s" % proto
        d = dovecot()
        ms = [unique("d") for _ in range(4)]
        for m in ms:
            d.put(n, message(m))
        big = unique("big")
        d.put(n, message(big, size=60000))     # the ingress refuses it (message_size_limit)
        pos = write_accounts(c, account(name, n, proto, "starttls", keep=False))
        wait_log(c, r"accounts: 1 in", since=pos)
        wait_runs(c, name, 1)
        wait_ids(c, "demo@example.test", ms)
        wait_for(lambda: d.count(n) == 1, 10, what="only the refused message left remotely")
        fetch_now(c, name)
        check(d.count(n) == 1, "the refused message was deleted remotely")
        check_once(c, "demo@example.test", ms)
        a = fetch_list(c)[name]
        check("refused by the ingress" in a["last_error"], "not reported: %r" % a["last_error"])
    fn.__name__ = "test_%s_delete_only_what_the_ingress_took" % proto
    globals()[fn.__name__] = case(conf=dict(FETCH_CONF, message_size_limit="20k",
                                            fetch_message_size_limit="1m"),
                                  skip=no_dovecot)(fn)


delete_case("pop3")
delete_case("imap")


@case(conf=dict(FETCH_CONF, fetch_message_size_limit="10k"), skip=no_dovecot)
def test_too_big_left_and_reported(c):
    n = remote_user()
    d = dovecot()
    small, big = unique("s"), unique("b")
    d.put(n, message(small))
    d.put(n, message(big, size=30000))
    pos = write_accounts(c, account("big", n, "imap", "implicit", keep=False))
    wait_log(c, r"accounts: 1 in", since=pos)
    a = wait_runs(c, "big", 1)
    wait_ids(c, "demo@example.test", [small])
    check(a["too_big"] == 1 and "over fetch_message_size_limit" in a["last_error"],
          "too big not reported: %r" % a)
    check(d.count(n) == 1, "the big message is not on the server any more")
    wait_log(c, r"big: uid=\S+ size=\d+: over fetch_message_size_limit", since=pos)


@case(conf=FETCH_CONF, skip=no_dovecot)
def test_certificate_checked_unless_verify_no(c):
    n = remote_user()
    m = unique("v")
    dovecot().put(n, message(m))
    other_ca, _ = tls_cert()           # a CA that did not sign the server's certificate
    text = account("strict", n, "imap", "implicit").replace(dovecot().cert, other_ca)
    text += account("lax", n, "pop3", "starttls", forward_to="carol@example.test",
                    extra="  verify no\n").replace(dovecot().cert, other_ca)
    pos = write_accounts(c, text)
    wait_log(c, r"accounts: 2 in", since=pos)
    a = wait_runs(c, "strict", 1)
    check(a["state"] == "backoff" and "certificate" in a["last_error"], "strict: %r" % a)
    wait_runs(c, "lax", 1)
    c.wait_for_message("carol@example.test", m)
    check(not message_ids(c, "demo@example.test") or
          "<%s@test>" % m not in message_ids(c, "demo@example.test"), "strict fetched it")


@case(conf=FETCH_CONF, skip=no_dovecot)
def test_reset_fetches_again(c):
    n = remote_user()
    d = dovecot()
    ms = [unique("r") for _ in range(2)]
    for m in ms:
        d.put(n, message(m, to="x"))
    pos = write_accounts(c, account("again", n, "imap", "none", forward_to="bob@example.test"))
    wait_log(c, r"accounts: 1 in", since=pos)
    wait_runs(c, "again", 1)
    wait_ids(c, "bob@example.test", ms)
    p = c.ctl("fetch", "reset", "again")
    check(p.returncode == 0 and "forgot 2 taken messages" in p.stdout, "reset: %r %r" % (p.stdout, p.stderr))
    check(fetch_list(c)["again"]["taken_total"] == 0, "counts not reset")
    fetch_now(c, "again")
    wait_for(lambda: len(message_ids(c, "bob@example.test")) == 4, 20, what="both fetched again")


@case(conf=FETCH_CONF, skip=no_dovecot)
def test_submit_ref_taken_once(c):
    # the same ref twice (a fetcher that crashed before writing down the
    # answer): one message, the first queue id both times
    import zmq
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    m = unique("ref")
    env = _pb_envelope("demo@example.test", message(m))
    ctx = zmq.Context.instance()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, int(10000 * SLOW))
    s.connect("ipc://%s/ingress-submit" % c.conf["run_directory"])
    qids = []
    for _ in range(2):
        s.send(_pb_varint(1, 1) + _pb_bytes(2, b"fetch:test:1:" + m.encode()) + _pb_bytes(3, env))
        qids.append(_pb_reply(s.recv()))
    s.close()
    check(qids[0][0] == 0 and qids[1][0] == 0, "status %r" % qids)
    check(qids[0][1] == qids[1][1], "two queue ids: %r" % qids)
    c.wait_for_message("demo@example.test", m)
    time.sleep(0)
    wait_log(c, r"%s: ref=fetch:test:1:%s submitted again: already queued" % (qids[0][1], m))
    check(len([x for x in message_ids(c, "demo@example.test") if m in x]) == 1, "two copies")


def _pb_varint(field, v):
    out = bytes([field << 3])
    while True:
        b = v & 0x7f
        v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def _pb_len(v):
    out = b""
    while True:
        b = v & 0x7f
        v >>= 7
        out += bytes([b | (0x80 if v else 0)])
        if not v:
            return out


def _pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return bytes([(field << 3) | 2]) + _pb_len(len(data)) + data


def _pb_envelope(rcpt, body):
    r = _pb_bytes(1, rcpt)
    client = _pb_bytes(5, "fetch")
    return (_pb_varint(1, 1) + _pb_bytes(5, client) + _pb_bytes(6, "sender@remote.example")
            + _pb_bytes(7, r) + _pb_bytes(14, body))


def _pb_reply(data):
    """(status, queue_id) of a SubmitReply."""
    i, status, qid = 0, 0, ""
    while i < len(data):
        key = data[i]
        i += 1
        field, wt = key >> 3, key & 7
        if wt == 0:
            v, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                v |= (b & 0x7f) << shift
                shift += 7
                if not b & 0x80:
                    break
            if field == 3:
                status = v
        else:
            ln, shift = 0, 0
            while True:
                b = data[i]
                i += 1
                ln |= (b & 0x7f) << shift
                shift += 7
                if not b & 0x80:
                    break
            if field == 4:
                qid = data[i:i + ln].decode()
            i += ln
    return status, qid


@case(conf=FETCH_CONF, skip=no_dovecot)
def test_domain_pop(c):
    n = remote_user()
    d = dovecot()
    cases = {   # marker -> (extra header lines, To:, the local users it must reach)
        "env": ("X-Envelope-To: <alice@example.test>\r\n", "list@lists.example", ["alice"]),
        "dto": ("Delivered-To: bob@example.test\r\n", "list@lists.example", ["bob"]),
        "oto": ("X-Original-To: carol@example.test\r\n", "list@lists.example", ["carol"]),
        "tocc": ("Cc: \"Carol, C.\" <carol@example.test>, x@other.example\r\n",
                 "Alice <alice@example.test>, bob@example.test (Bob)", ["alice", "bob", "carol"]),
        "unknown": ("", "nobody@example.test", ["demo"]),
        "elsewhere": ("", "someone@elsewhere.example", ["demo"]),
        "rcvfor": ("Received: from a by b with SMTP id 1\r\n\tfor <bob@example.test>; "
                   "Mon, 1 Jan 2024 00:00:00 +0000\r\n", "list@lists.example", ["demo"]),
    }
    markers = {}
    for k, (extra, to, _) in cases.items():
        markers[k] = unique("dp-" + k)
        d.put(n, message(markers[k], to=to, extra=extra))
    pos = write_accounts(c, account("catchall", n, "imap", "starttls",
                                    extra="  domain_pop example.test\n"))
    wait_log(c, r"accounts: 1 in", since=pos)
    wait_runs(c, "catchall", 1)
    for k, (_, _, users) in cases.items():
        for u in users:
            c.wait_for_message("%s@example.test" % u, markers[k])
    for k, (_, _, users) in cases.items():
        for u in ("alice", "bob", "carol", "demo"):
            ids = [x for x in message_ids(c, "%s@example.test" % u) if markers[k] in x]
            want = 1 if u in users else 0
            check(len(ids) == want, "%s: %s has %d copies, want %d" % (k, u, len(ids), want))
    wait_log(c, r"catchall: uid=\S+ size=\d+ nrcpt=3: queued as", since=pos)
    wait_log(c, r"domain_pop example.test: 1 recipient \(from X-Envelope-To\)", since=pos)


# ---------------------------------------------------------------- misbehaving server
class BadServer:
    """A scripted POP3/IMAP server on 127.0.0.61: mode 'hang' (accepts,
    says nothing), 'garbage' (binary noise), 'longline' (an endless line),
    'literal' (IMAP: a FETCH answer announcing a 4 GB literal)."""

    def __init__(self, mode):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.61", 0))
        self.port = self.sock.getsockname()[1]
        self.sock.listen(16)
        self.conns = []
        self.done = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.done:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.talk, args=(conn,), daemon=True).start()

    def talk(self, conn):
        f = conn.makefile("rb")
        try:
            if self.mode == "hang":
                time.sleep(60)
            elif self.mode == "garbage":
                conn.sendall(bytes(random.randrange(256) for _ in range(5000)))
                time.sleep(60)
            elif self.mode == "longline":
                conn.sendall(b"+OK ")
                for _ in range(2000):
                    conn.sendall(b"A" * 8192)
                time.sleep(60)
            elif self.mode == "literal":
                conn.sendall(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
                while True:
                    line = f.readline()
                    if not line:
                        return
                    tag, cmd = line.split(b" ", 2)[:2]
                    cmd = cmd.upper().strip()
                    if cmd == b"LOGIN":
                        conn.sendall(tag + b" OK logged in\r\n")
                    elif cmd == b"CAPABILITY":
                        conn.sendall(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK\r\n")
                    elif cmd in (b"SELECT", b"EXAMINE"):
                        conn.sendall(b"* 1 EXISTS\r\n* OK [UIDVALIDITY 7] x\r\n" + tag
                                     + b" OK [READ-WRITE] done\r\n")
                    elif cmd == b"UID":
                        rest = line.upper()
                        if b"SEARCH" in rest:
                            conn.sendall(b"* SEARCH 1\r\n" + tag + b" OK\r\n")
                        elif b"FETCH" in rest and b"BODY" in rest:
                            conn.sendall(b"* 1 FETCH (UID 1 BODY[] {4000000000}\r\n"
                                         + b"x" * 1000)
                            time.sleep(60)
                        elif b"FETCH" in rest:
                            conn.sendall(b"* 1 FETCH (UID 1 RFC822.SIZE 100)\r\n" + tag + b" OK\r\n")
                        else:
                            conn.sendall(tag + b" OK\r\n")
                    elif cmd == b"LOGOUT":
                        conn.sendall(b"* BYE\r\n" + tag + b" OK\r\n")
                        return
                    else:
                        conn.sendall(tag + b" OK\r\n")
        except (OSError, ValueError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def close(self):
        self.done = True
        self.sock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


@case(conf=dict(FETCH_CONF, fetch_timeout="2s", fetch_concurrency="2"), skip=no_dovecot,
      timeout=120)
def test_bad_servers_time_out_others_go_on(c):
    bads = {m: BadServer(m) for m in ("hang", "garbage", "longline", "literal")}
    try:
        n = remote_user()
        good = unique("good")
        dovecot().put(n, message(good))
        text = ""
        for m, b in bads.items():
            text += account("bad-" + m, n, "imap" if m == "literal" else "pop3", "none",
                            port=b.port, server="127.0.0.61")
        text += account("good", n, "pop3", "none")
        t0 = time.monotonic()
        pos = write_accounts(c, text)
        wait_log(c, r"accounts: 5 in", since=pos)
        c.wait_for_message("demo@example.test", good, timeout=30)
        took = time.monotonic() - t0
        for m in bads:
            a = wait_runs(c, "bad-" + m, 1, timeout=30)
            if m == "literal":
                # refused before a byte of it is read, reported, left on the server
                check(a["too_big"] == 1 and "over fetch_message_size_limit" in a["last_error"],
                      "bad-literal: %r" % a)
                continue
            check(a["state"] == "backoff" and a["last_error"], "bad-%s: %r" % (m, a))
            check(a["next_try"] > time.time() * 1e6 + 30e6, "bad-%s: no backoff" % m)
        # two workers, four bad servers at 2 s each: the good one is not stuck behind them
        check(took < 20 * SLOW, "the good account waited %.1f s" % took)
    finally:
        for b in bads.values():
            b.close()


# ---------------------------------------------------------------- crashes
@case(conf=dict(FETCH_CONF, fetch_concurrency="2"), skip=no_dovecot, fresh=True,
      allow_restarts=True, timeout=400)
def test_kill9_fetcher_and_ingress_exactly_once(c):
    """A few hundred messages over POP3 and IMAP in delete mode while the
    fetcher and the ingress are killed with SIGKILL at random moments:
    every message arrives exactly once and the mailboxes end empty."""
    d = dovecot()
    seed = int(os.environ.get("FETCH_CRASH_SEED", str(os.getpid())))
    rnd = random.Random(seed)
    total = int(os.environ.get("FETCH_CRASH_N", "400"))
    users = {"kp": (remote_user(), "pop3", "alice@example.test"),
             "ki": (remote_user(), "imap", "bob@example.test")}
    markers = {k: [] for k in users}
    batch = max(1, total // 8)          # per account; refilled so kills meet work

    def refill():
        for k, (n, _, _) in users.items():
            for _ in range(batch):
                m = unique("k" + k)
                d.put(n, message(m, size=rnd.choice((1000, 10000, 50000))))
                markers[k].append(m)

    def remote_left():
        return {k: d.count(n) for k, (n, _, _) in users.items()}

    def ask_now():                      # after a restart an account waits for its interval
        if c.stage_pid("fetcher"):
            for k in users:
                c.ctl("fetch", "now", k)

    refill()
    text = "".join(account(k, n, proto, "none", keep=False, forward_to=to)
                   for k, (n, proto, to) in users.items())
    pos = write_accounts(c, text)
    wait_log(c, r"accounts: 2 in", since=pos)
    kills = 0
    deadline = time.monotonic() + 300 * SLOW
    while kills < 12:                   # a fetch is fast: keep work in flight for every kill
        time.sleep(rnd.uniform(0.05, 0.6))
        victim = rnd.choice(["fetcher", "ingress"])
        pid = c.stage_pid(victim)
        if pid:
            os.kill(pid, signal.SIGKILL)
            kills += 1
        wait_for(lambda: c.stage_pid(victim) and c.stage_pid(victim) != pid, 30,
                 what="%s restarted" % victim)
        ask_now()
        if not any(remote_left().values()) and sum(map(len, markers.values())) < total:
            refill()
    while any(remote_left().values()):
        check(time.monotonic() < deadline, "remote mailboxes not empty: %s" % remote_left())
        time.sleep(0.5)
        ask_now()
    for k, (_, _, to) in users.items():
        wait_ids(c, to, markers[k], timeout=120)
        check_once(c, to, markers[k])
    # what it looked like: sends again after a kill, duplicates the ingress dropped
    print("  kills=%d seed=%d resent=%d dropped_dups=%d" % (
        kills, seed, c.log().count("no answer from the ingress; sending again"),
        c.log().count("already queued")), file=sys.stderr)


# Last: Dovecot slows down logins from an address after failed ones
# (auth penalty), which would make the cases after this one time out.
@case(conf=dict(FETCH_CONF, fetch_timeout="40s"), skip=no_dovecot, timeout=120)
def test_wrong_password_backoff(c):
    n = remote_user()
    dovecot().put(n, message(unique("w")))
    pos = write_accounts(c, account("wrongpw", n, "pop3", "starttls", password="nope"))
    a1 = wait_runs(c, "wrongpw", 1, timeout=60)
    check(a1["state"] == "auth-failed" and a1["failures"] == 1, "state %r" % a1)
    check("login refused" in a1["last_error"], "error %r" % a1["last_error"])
    check("nope" not in c.log() and "nope" not in a1["last_error"], "the password leaked")
    now_us = time.time() * 1e6
    check(a1["next_try"] >= now_us + 50 * 60 * 1e6, "no backoff: next try %r" % a1["next_try"])
    a2 = fetch_now(c, "wrongpw", timeout=60)
    check(a2["failures"] == 2 and a2["next_try"] > a1["next_try"] + 30 * 60 * 1e6,
          "backoff did not grow: %r -> %r" % (a1["next_try"], a2["next_try"]))
    wait_log(c, r"wrongpw: session failed \(2 in a row\): login refused", since=pos)
    p = c.ctl("fetch", "list")
    check("auth-failed" in p.stdout and "login refused" in p.stdout, "fetch list: %r" % p.stdout)


if __name__ == "__main__":
    sys.exit(main(globals()))
