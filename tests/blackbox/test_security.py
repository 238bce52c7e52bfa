"""test_security.py - black-box tests of the ingress's security features:
STARTTLS and implicit TLS, AUTH, listener roles and the submission bypass
list, the open-relay matrix, Postfix restriction lists (with the DNS lab,
tests/dns/), header_checks/body_checks and per-sender size limits.

Cases with the same conf share one correio; each conf below is one
instance.  Clients that must come from a given address bind a loopback
source address (127.0.0.2 ... 127.0.0.8) before they connect; the DNS lab
gives those addresses their names (tests/dns/unbound.conf.in).

    /usr/bin/python3 tests/blackbox/test_security.py [CASE...]
"""

import os
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, SLOW, Correio, RawSMTP, TestFailure, case, check, free_port,  # noqa: E402
                     header_value, main, simple_message, test_dns, tls_cert, unique, wait_for)

CERT, KEY = tls_cert()
NO_DNS = None if test_dns() else "no DNS lab (CORREIO_TEST_DNS; tests/run-all.sh starts one)"

# tables and files shared by the instances: made once, absolute paths
TABLES = tempfile.mkdtemp(prefix="correio-sec-tables-")
os.chmod(TABLES, 0o755)


def table(name, text, build=False):
    path = os.path.join(TABLES, name)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, 0o644)
    if build:
        r = subprocess.run([BIN, "map", "build", path], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("correio map build %s: %s" % (path, r.stderr))
        os.chmod(path + ".lmdb", 0o644)
    return path


def _cleanup_tables():
    import shutil
    if os.environ.get("KEEP") != "1":
        shutil.rmtree(TABLES, True)


import atexit  # noqa: E402
atexit.register(_cleanup_tables)

# ---------------------------------------------------------------- clients

SUB_PORT = free_port()
SUBS_PORT = free_port()
SUB2_PORT = free_port()


def tls_ctx(max11=False):
    ctx = ssl.create_default_context(cafile=CERT)
    if max11:
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    return ctx


def smtp(c, port=None, src="127.0.0.1", helo="mx.ok.test", starttls=False, ssl_wrap=False,
         login=None):
    """An smtplib session after EHLO (and STARTTLS + EHLO, AUTH if asked)."""
    if ssl_wrap:
        s = smtplib.SMTP_SSL("127.0.0.1", port or c.port, context=tls_ctx(),
                             source_address=(src, 0), timeout=30 * SLOW)
    else:
        s = smtplib.SMTP("127.0.0.1", port or c.port, source_address=(src, 0),
                         timeout=30 * SLOW)
    s.ehlo(helo)
    if starttls:
        s.starttls(context=tls_ctx())
        s.ehlo(helo)
    if login:
        s.login(login, "secret")
    return s


def close(s):
    try:
        s.quit()
    except Exception:
        try:
            s.close()
        except Exception:
            pass


def raw(port, src="127.0.0.1"):
    """A RawSMTP from a given loopback source address."""
    r = RawSMTP.__new__(RawSMTP)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(15 * SLOW)
    sock.bind((src, 0))
    sock.connect(("127.0.0.1", port))
    r.sock, r.buf, r.eof = sock, b"", False
    return r


def raw_tls(r):
    check(r.buf == b"", "bytes buffered before the handshake: %r" % r.buf)
    r.sock = tls_ctx().wrap_socket(r.sock, server_hostname="localhost")


def transaction(c, sender="x@ok.test", rcpt="demo@example.test", **kw):
    """(MAIL reply, RCPT reply or None) as (code, text) pairs."""
    s = smtp(c, **kw)
    try:
        m = s.mail(sender)
        r = s.rcpt(rcpt) if m[0] == 250 else None
        s.rset()
    finally:
        close(s)
    dec = (lambda x: (x[0], x[1].decode("utf-8", "replace")) if x else None)
    return dec(m), dec(r)


def expect_rcpt(c, code, enhanced=None, text=None, **kw):
    m, r = transaction(c, **kw)
    check(m[0] == 250, "MAIL got %r" % (m,))
    check(r[0] == code, "RCPT: expected %d, got %r" % (code, r))
    if enhanced:
        check(r[1].startswith(enhanced), "RCPT: expected %s, got %r" % (enhanced, r))
    if text:
        check(text in r[1], "RCPT: expected %r in %r" % (text, r))
    return r


def expect_mail(c, code, enhanced=None, text=None, **kw):
    m, r = transaction(c, **kw)
    check(m[0] == code, "MAIL: expected %d, got %r" % (code, m))
    if enhanced:
        check(m[1].startswith(enhanced), "MAIL: expected %s, got %r" % (enhanced, m))
    if text:
        check(text in m[1], "MAIL: expected %r in %r" % (text, m))
    return m


def send_and_find(c, s, sender, marker, rcpt="demo@example.test"):
    s.sendmail(sender, [rcpt], simple_message(marker, sender=sender))
    return c.wait_for_message(rcpt, marker)


def wait_log(c, pattern, since=0, timeout=10):
    rx = re.compile(pattern)
    return wait_for(lambda: rx.search(c.log_since(since)), timeout, what="log line /%s/" % pattern)


# ================================================================ TLS, AUTH, roles, relay
# One instance: TLS on, submission (587 role) and submissions (465 role)
# listeners, 127.0.0.1 not in mynetworks (an untrusted client).
TLS = {
    "smtpd_tls_cert_file": CERT, "smtpd_tls_key_file": KEY,
    "submission_listen": "127.0.0.1:%d" % SUB_PORT,
    "submissions_listen": "127.0.0.1:%d" % SUBS_PORT,
    "mynetworks": "192.0.2.0/24",
    "smtpd_auth_failure_delay": "300ms",
}


@case(conf=TLS)
def test_starttls_swaks(c):
    marker = unique("swaks-tls")
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % c.port, "--tls",
                        "--ehlo", "mx.ok.test", "--from", "x@ok.test", "--to", "demo@example.test",
                        "--header", "Subject: %s" % marker, "--body", marker],
                       capture_output=True, text=True, timeout=60 * SLOW)
    check(r.returncode == 0, "swaks --tls failed: %s" % r.stdout[-800:])
    check("<~  220 2.0.0 Ready to start TLS" in r.stdout or "220 2.0.0" in r.stdout,
          "no 220 to STARTTLS: %s" % r.stdout[-800:])
    m = c.wait_for_message("demo@example.test", marker)
    rec = header_value(m, "Received")
    check("using TLSv1." in rec, "Received: has no TLS protocol: %r" % rec)
    check("with ESMTPS id" in rec, "Received: not ESMTPS: %r" % rec)


@case(conf=TLS)
def test_starttls_smtplib_ehlo_and_second_starttls(c):
    s = smtp(c)
    try:
        check(s.has_extn("starttls"), "STARTTLS not offered before TLS")
        check(not s.has_extn("auth"), "AUTH offered before TLS: %r" % s.esmtp_features)
        s.starttls(context=tls_ctx())
        code, _ = s.ehlo("mx.ok.test")
        check(code == 250, "EHLO after TLS: %d" % code)
        check(not s.has_extn("starttls"), "STARTTLS still offered inside TLS")
        check(s.has_extn("auth"), "AUTH not offered inside TLS")
        code, text = s.docmd("STARTTLS")
        check(code == 554 and text.startswith(b"5.5.1"), "second STARTTLS: %d %r" % (code, text))
        marker = unique("smtplib-tls")
        m = send_and_find(c, s, "x@ok.test", marker)
        check("with ESMTPS" in header_value(m, "Received"), "not ESMTPS")
    finally:
        close(s)


@case(conf=TLS)
def test_implicit_tls_submissions(c):
    marker = unique("smtps")
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % SUBS_PORT, "--tls-on-connect",
                        "--ehlo", "mx.ok.test", "--from", "demo@example.test",
                        "--to", "demo@example.test", "--auth", "PLAIN",
                        "--auth-user", "demo@example.test", "--auth-password", "secret",
                        "--header", "Subject: %s" % marker, "--body", marker],
                       capture_output=True, text=True, timeout=60 * SLOW)
    check(r.returncode == 0, "swaks --tls-on-connect failed: %s" % r.stdout[-800:])
    m = c.wait_for_message("demo@example.test", marker)
    rec = header_value(m, "Received")
    check("using TLSv1." in rec and "with ESMTPSA" in rec, "Received: %r" % rec)
    check("Authenticated sender: demo@example.test" in rec, "Received: %r" % rec)
    # and smtplib.SMTP_SSL
    s = smtp(c, port=SUBS_PORT, ssl_wrap=True, login="alice@example.test")
    try:
        check(not s.has_extn("starttls"), "STARTTLS offered on an implicit-TLS listener")
        marker = unique("smtps-smtplib")
        m = send_and_find(c, s, "alice@example.test", marker)
        rec = header_value(m, "Received")
        check("with ESMTPSA" in rec and "Authenticated sender: alice@example.test" in rec,
              "Received: %r" % rec)
    finally:
        close(s)


@case(conf=TLS)
def test_tls11_refused(c):
    ctx = tls_ctx(max11=True)
    # can the local OpenSSL offer TLS 1.1 at all?  (Debian's does at SECLEVEL=0)
    try:
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    except ssl.SSLError:
        pass
    r = raw(c.port)
    try:
        r.expect(220)
        r.expect(250, line="EHLO mx.ok.test")
        r.expect(220, "2.0.0", line="STARTTLS")
        try:
            r.sock = ctx.wrap_socket(r.sock, server_hostname="localhost")
            version = r.sock.version()
        except (ssl.SSLError, OSError) as e:
            version = None
            why = str(e)
        check(version is None, "a TLS 1.1-only client got %s" % version)
    finally:
        r.close()
    # the local OpenSSL may refuse to offer TLS 1.1 at all (then only the
    # TLS 1.2 half below tests anything); Debian 12's does at SECLEVEL=0
    offered = "no protocols available" not in why.lower()
    if offered:
        wait_log(c, r"TLS handshake failed from .*unsupported protocol.*TLSv1\.1")
    # a TLS 1.2 client is fine
    ctx12 = tls_ctx()
    ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
    s = smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW)
    try:
        s.ehlo("mx.ok.test")
        s.starttls(context=ctx12)
        check(s.sock.version() == "TLSv1.2", "got %s" % s.sock.version())
        check(s.ehlo("mx.ok.test")[0] == 250, "EHLO inside TLS 1.2")
    finally:
        close(s)


@case(conf=TLS)
def test_implicit_tls_garbage_costs_nothing(c):
    # plain text to the implicit-TLS port
    r = raw(SUBS_PORT)
    r.send("EHLO x\r\n")
    check(r.is_closed(10), "plain EHLO on 465: connection stays open")
    r.close()
    # a client that drops half way through the handshake
    sock = socket.create_connection(("127.0.0.1", SUBS_PORT), timeout=10)
    sock.sendall(bytes.fromhex("160301") + b"\x00\x40" + b"\x01\x00\x00\x3c\x03\x03" + b"A" * 10)
    sock.close()
    # the same on STARTTLS
    r = raw(c.port)
    r.expect(220)
    r.expect(220, line="STARTTLS")
    r.send(b"\x16\x03\x01\x00")
    r.close()
    # the next normal sessions work
    s = smtp(c, port=SUBS_PORT, ssl_wrap=True, login="demo@example.test")
    close(s)
    s = smtp(c, starttls=True)
    check(s.noop()[0] == 250, "NOOP after the broken clients")
    close(s)


@case(conf=TLS)
def test_starttls_injection_discarded(c):
    r = raw(c.port)
    try:
        r.expect(220)
        r.expect(250, line="EHLO mx.ok.test")
        r.send("STARTTLS\r\nRSET\r\n")
        r.expect(220, "2.0.0")
        raw_tls(r)
        text = r.expect(250, line="EHLO mx.ok.test")
        check(text.startswith("250-"), "first reply inside TLS is not the EHLO's: %r" % text)
        r.expect(250, line="NOOP")
        r.send("QUIT\r\n")
        rest = r.read_all()
        check(len(rest) == 1 and rest[0][0] == 221, "stray replies inside TLS: %r" % rest)
    finally:
        r.close()
    wait_log(c, r"discarding \d+ bytes the client sent after STARTTLS")


# ---------------------------------------------------------------- AUTH

@case(conf=TLS)
def test_auth_plain_and_login(c):
    for mech in ("PLAIN", "LOGIN"):
        s = smtp(c, starttls=True)
        try:
            s.user, s.password = "bob@example.test", "secret"
            code, text = s.auth(mech, getattr(s, "auth_" + mech.lower()),
                                initial_response_ok=(mech == "PLAIN"))
            check(code == 235, "AUTH %s: %d %r" % (mech, code, text))
            check(not s.ehlo("mx.ok.test") or not s.has_extn("auth"),
                  "AUTH still offered after authenticating")
            marker = unique("auth-" + mech)
            m = send_and_find(c, s, "bob@example.test", marker)
            rec = header_value(m, "Received")
            check("with ESMTPSA" in rec, "Received: %r" % rec)
            check("(Authenticated sender: bob@example.test)" in rec, "Received: %r" % rec)
        finally:
            close(s)
    wait_log(c, r"SASL LOGIN authentication succeeded, sasl_username=bob@example.test")
    wait_log(c, r": client=.*sasl_method=PLAIN, sasl_username=bob@example.test")


@case(conf=TLS)
def test_auth_refused_in_plain_text(c):
    r = raw(c.port)
    try:
        r.expect(220)
        ehlo = r.expect(250, line="EHLO mx.ok.test")
        check("AUTH" not in ehlo, "AUTH advertised before TLS: %r" % ehlo)
        r.expect(538, "5.7.11", line="AUTH PLAIN AGRlbW9AZXhhbXBsZS50ZXN0AHNlY3JldA==")
        r.expect(538, "5.7.11", line="AUTH LOGIN")
    finally:
        r.close()


def auth_plain_b64(user, pw):
    import base64
    return base64.b64encode(b"\0" + user.encode() + b"\0" + pw.encode()).decode()


@case(conf=TLS)
def test_auth_failures_delayed(c):
    pos = c.log_size()
    r = raw(c.port)
    try:
        r.expect(220)
        r.expect(250, line="EHLO mx.ok.test")
        r.expect(220, line="STARTTLS")
        raw_tls(r)
        r.expect(250, line="EHLO mx.ok.test")
        t0 = time.monotonic()
        r.expect(535, "5.7.8", line="AUTH PLAIN " + auth_plain_b64("demo@example.test", "wrong"))
        t1 = time.monotonic() - t0
        t0 = time.monotonic()
        r.expect(535, "5.7.8", line="AUTH PLAIN " + auth_plain_b64("nobody@example.test", "secret"))
        t2 = time.monotonic() - t0
        check(t1 >= 0.25, "first failure answered after %.3fs (< 300ms)" % t1)
        check(t2 >= 0.5 and t2 > t1 + 0.15, "second failure not slower: %.3fs vs %.3fs" % (t2, t1))
        check(t2 < 10 * SLOW, "second failure took %.1fs" % t2)
        # abort
        r.expect(334, line="AUTH LOGIN")
        r.expect(501, line="*")
        r.expect(334, line="AUTH PLAIN")
        r.expect(501, line="*")
        # the session still works and can authenticate
        r.expect(235, "2.7.0", line="AUTH PLAIN " + auth_plain_b64("demo@example.test", "secret"))
    finally:
        r.close()
    wait_log(c, r"\[127\.0\.0\.1\]: SASL PLAIN authentication failed: .*sasl_username=demo@example.test",
             since=pos)
    wait_log(c, r"SASL PLAIN authentication failed: .*sasl_username=nobody@example.test", since=pos)


@case(conf=TLS)
def test_auth_disconnect_while_delayed(c):
    """A client that hangs up while its failed AUTH is being delayed (or
    checked) costs nothing: no crash, the next session authenticates."""
    for pause in (0, 0.1):
        r = raw(c.port)
        r.expect(220)
        r.expect(250, line="EHLO mx.ok.test")
        r.expect(220, line="STARTTLS")
        raw_tls(r)
        r.expect(250, line="EHLO mx.ok.test")
        r.send("AUTH PLAIN " + auth_plain_b64("demo@example.test", "wrong") + "\r\n"
               "AUTH PLAIN " + auth_plain_b64("demo@example.test", "secret") + "\r\n")
        if pause:
            time.sleep(pause)       # inside the 300ms delay, on purpose
        r.close()
    s = smtp(c, starttls=True, login="demo@example.test")
    check(s.noop()[0] == 250, "NOOP")
    close(s)
    # a pipelined failure then success: both answered, in order
    r = raw(c.port)
    try:
        r.expect(220)
        r.expect(250, line="EHLO mx.ok.test")
        r.expect(220, line="STARTTLS")
        raw_tls(r)
        r.expect(250, line="EHLO mx.ok.test")
        r.send("AUTH PLAIN " + auth_plain_b64("demo@example.test", "wrong") + "\r\n"
               "AUTH PLAIN " + auth_plain_b64("demo@example.test", "secret") + "\r\n")
        r.expect(535, "5.7.8")
        r.expect(235, "2.7.0")
        # authzid different from authcid
        r2 = raw(c.port)
    finally:
        r.close()
    r2.expect(220)
    r2.expect(250, line="EHLO mx.ok.test")
    r2.expect(220, line="STARTTLS")
    raw_tls(r2)
    r2.expect(250, line="EHLO mx.ok.test")
    import base64
    b = base64.b64encode(b"bob@example.test\0demo@example.test\0secret").decode()
    r2.expect(535, "5.7.8", line="AUTH PLAIN " + b)
    r2.close()


# ---------------------------------------------------------------- roles

@case(conf=TLS)
def test_submission_requires_auth(c):
    for port, wrap in ((SUB_PORT, False), (SUBS_PORT, True)):
        s = smtp(c, port=port, starttls=not wrap, ssl_wrap=wrap)
        try:
            code, text = s.mail("demo@example.test")
            check(code == 530 and text.startswith(b"5.7.0"), "MAIL without AUTH on %d: %d %r"
                  % (port, code, text))
            s.login("demo@example.test", "secret")
            check(s.mail("demo@example.test")[0] == 250, "MAIL after AUTH")
            code, text = s.rcpt("x@remote.example")
            check(code == 250, "authenticated relay on %d: %d %r" % (port, code, text))
            s.rset()
        finally:
            close(s)


@case(conf=TLS)
def test_auth_mail_without_tls_on_submission(c):
    """Plain-text submission: no AUTH offered, MAIL refused."""
    r = raw(SUB_PORT)
    try:
        r.expect(220)
        ehlo = r.expect(250, line="EHLO mx.ok.test")
        check("STARTTLS" in ehlo and "AUTH" not in ehlo, "EHLO on 587: %r" % ehlo)
        r.expect(530, "5.7.0", line="MAIL FROM:<demo@example.test>")
    finally:
        r.close()


# ---------------------------------------------------------------- relay matrix

@case(conf=TLS)
def test_open_relay_matrix(c):
    bad = []
    for listener, port in (("smtp", c.port), ("submission", SUB_PORT), ("submissions", SUBS_PORT)):
        for authed in (False, True):
            for sender in ("alice@example.test", "x@ok.test"):
                for rcpt in ("demo@example.test", "x@remote.example"):
                    if listener == "submissions":
                        kw = dict(port=port, ssl_wrap=True)
                    else:
                        kw = dict(port=port, starttls=True)
                    if authed:
                        kw["login"] = "alice@example.test"
                    m, r = transaction(c, sender=sender, rcpt=rcpt, **kw)
                    if authed:
                        want = (250, 250)
                    elif listener != "smtp":
                        want = (530, None)
                    elif rcpt.endswith("remote.example"):
                        want = (250, 554)
                    else:
                        want = (250, 250)
                    got = (m[0], r[0] if r else None)
                    label = "%s %s %s -> %s" % (listener, "auth" if authed else "anon", sender, rcpt)
                    if got != want:
                        bad.append("%s: want %r got %r %r" % (label, want, m, r))
                    elif want[1] == 554 and "5.7.1" not in r[1] or (
                            want[1] == 554 and "Relay access denied" not in r[1]):
                        bad.append("%s: %r" % (label, r))
                    elif want[0] == 530 and not m[1].startswith("5.7.0"):
                        bad.append("%s: %r" % (label, m))
    check(not bad, "relay matrix: " + "; ".join(bad))


@case(conf={"mynetworks": "192.0.2.0/24"})
def test_not_open_relay_by_default(c):
    r = c.ctl("config", "smtpd_relay_restrictions")
    check("permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination" in r.stdout,
          "default smtpd_relay_restrictions: %r" % r.stdout)
    r = expect_rcpt(c, 554, "5.7.1", "Relay access denied", rcpt="someone@remote.example")
    expect_rcpt(c, 554, "5.7.1", "Relay access denied", sender="demo@example.test",
                rcpt="someone@remote.example")
    expect_rcpt(c, 554, "5.7.1", "Relay access denied", rcpt="someone@[192.0.2.1]")
    expect_rcpt(c, 250, rcpt="demo@example.test")


# ---------------------------------------------------------------- submission bypass

BYPASS = table("bypass", "# nothing yet\n")
BYPASS_CONF = {
    "smtpd_tls_cert_file": CERT, "smtpd_tls_key_file": KEY,
    "submission_listen": "127.0.0.1:%d" % SUB2_PORT,
    "submission_bypass_file": BYPASS,
    "mynetworks": "192.0.2.0/24",
}


def reload_bypass(c, text):
    with open(BYPASS, "w") as f:
        f.write(text)
    n = c.log().count("configuration reloaded")
    os.kill(c.proc.pid, signal.SIGHUP)
    wait_for(lambda: c.log().count("configuration reloaded") > n, 10, what="reload")


@case(conf=BYPASS_CONF)
def test_submission_bypass(c):
    def mail(sender, src="127.0.0.1"):
        s = smtp(c, port=SUB2_PORT, src=src)
        try:
            code, _ = s.mail(sender)
            if code == 250:
                # the bypass lifts the AUTH requirement, not relay control
                # (an s: entry names a sender anyone can forge)
                code2, t = s.rcpt("demo@example.test")
                check(code2 == 250, "bypassed client, local recipient: %r" % ((code2, t),))
                code2, t = s.rcpt("x@remote.example")
                check(code2 == 554, "bypassed client relayed: %r" % ((code2, t),))
            return code
        finally:
            close(s)
    check(mail("x@ok.test") == 530, "no bypass entry: MAIL accepted")
    reload_bypass(c, "i:127.0.0.1/32\n")
    check(mail("x@ok.test") == 250, "i:127.0.0.1/32: refused")
    check(mail("x@ok.test", src="127.0.0.2") == 530, "i:127.0.0.1/32 let 127.0.0.2 in")
    reload_bypass(c, "s:app@example.test ; s:@ok.test\n")
    check(mail("app@example.test") == 250, "s:app@example.test: refused")
    check(mail("y@ok.test") == 250, "s:@ok.test: refused")
    check(mail("alice@example.test") == 530, "s: let alice in")
    reload_bypass(c, "l:\n")
    check(mail("alice@example.test") == 250, "l: refused a local account")
    check(mail("nobody@example.test") == 530, "l: let a non-account in")
    check(mail("x@ok.test") == 530, "l: let a remote sender in")
    # a bad line: the reload fails, the old list stays
    with open(BYPASS, "w") as f:
        f.write("l:\nx:what\n")
    os.kill(c.proc.pid, signal.SIGHUP)
    wait_log(c, re.escape(BYPASS) + r":2: ")
    check(mail("alice@example.test") == 250, "bad reload dropped the old list")


# ================================================================ restrictions
# R1: most restrictions in one instance; 127.0.0.2 is the only trusted
# client; the DNS lab names 127.0.0.1 (client1.ok.test) and 127.0.0.2.
CLIENT_CIDR = table("client.cidr",
                    "127.0.0.5/32 REJECT\n"
                    "127.0.0.6 450 4.7.1 try later\n"
                    "127.0.0.7/32 OK\n"
                    "127.0.0.8/32 REJECT go away now\n")
HELO_ACCESS = table("helo_access",
                    "evil.ok.test REJECT\n"
                    "friend.nohost.test OK\n"
                    "text.ok.test REJECT helo text here\n"
                    "dunno.nohost.test DUNNO\n",
                    build=True)
SENDER_ACCESS = table("sender_access",
                      "okay@nosuch.test OK\n"
                      "rej@ok.test REJECT\n"
                      "text@ok.test REJECT no thanks\n"
                      "dunno@nosuch.test DUNNO\n"
                      "later@ok.test 450 4.7.1 try later\n"
                      "away@ok.test 550 5.7.1 go away\n"
                      "baddomain.test REJECT whole domain\n",
                      build=True)
SENDER_PCRE = table("sender.pcre", "/^spam[0-9]+@/ REJECT pcre spam\n")
RCPT_ACCESS = table("rcpt_access",
                    "carol@example.test REJECT carol is away\n"
                    "dave@example.test 450 4.7.1 try later\n",
                    build=True)
LOGIN_MAPS = table("login_maps", "shared@example.test alice@example.test, bob@example.test\n",
                   build=True)
R1 = {
    "smtpd_tls_cert_file": CERT, "smtpd_tls_key_file": KEY,
    "mynetworks": "127.0.0.2/32",
    "relay_domains": "relay.example",
    "smtpd_client_restrictions":
        "check_client_access cidr:%s, reject_unknown_client_hostname" % CLIENT_CIDR,
    "smtpd_helo_restrictions":
        "check_helo_access hash:%s, reject_invalid_helo_hostname, "
        "reject_non_fqdn_helo_hostname, reject_unknown_helo_hostname" % HELO_ACCESS,
    "smtpd_sender_restrictions":
        "check_sender_access hash:%s, check_sender_access pcre:%s, reject_non_fqdn_sender, "
        "reject_unknown_sender_domain, reject_sender_login_mismatch"
        % (SENDER_ACCESS, SENDER_PCRE),
    "smtpd_recipient_restrictions":
        "check_recipient_access hash:%s, reject_non_fqdn_recipient" % RCPT_ACCESS,
    "smtpd_sender_login_maps": "hash:%s" % LOGIN_MAPS,
}


@case(conf=R1, skip=NO_DNS)
def test_permit_mynetworks(c):
    expect_rcpt(c, 250, src="127.0.0.2", rcpt="x@remote.example", helo="host2.ok.test")
    expect_rcpt(c, 554, "5.7.1", "Relay access denied", rcpt="x@remote.example")


@case(conf=R1, skip=NO_DNS)
def test_permit_sasl_authenticated(c):
    expect_rcpt(c, 250, rcpt="x@remote.example", starttls=True, login="alice@example.test",
                sender="alice@example.test")


@case(conf=R1, skip=NO_DNS)
def test_reject_unauth_destination_relay_domains(c):
    expect_rcpt(c, 250, rcpt="x@relay.example")
    expect_rcpt(c, 250, rcpt="x@sub.relay.example")
    expect_rcpt(c, 554, "5.7.1", "Relay access denied", rcpt="x@notrelay.example")
    expect_rcpt(c, 554, "5.7.1", "Relay access denied", rcpt="user%other.example@relay.example")
    expect_rcpt(c, 554, "5.7.1", "Relay access denied", rcpt="other.example!user@relay.example")
    # a trusted client may use sender-specified routing
    expect_rcpt(c, 250, rcpt="user%other.example@relay.example", src="127.0.0.2")


@case(conf=R1, skip=NO_DNS)
def test_check_client_access_cidr(c):
    expect_rcpt(c, 554, "5.7.1", "Client host rejected: Access denied", src="127.0.0.5")
    expect_rcpt(c, 450, "4.7.1", "try later", src="127.0.0.6")
    expect_rcpt(c, 250, src="127.0.0.7")       # OK: no name needed
    expect_rcpt(c, 554, "5.7.1", "go away now", src="127.0.0.8")


@case(conf=R1, skip=NO_DNS)
def test_reject_unknown_client_hostname(c):
    expect_rcpt(c, 250, src="127.0.0.2")
    r = expect_rcpt(c, 450, "4.7.25", "cannot find your hostname", src="127.0.0.3")
    check("[127.0.0.3]" in r[1], r[1])
    expect_rcpt(c, 450, "4.7.25", "cannot find your hostname", src="127.0.0.4")
    wait_log(c, r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.4\]: 450 4\.7\.25")


@case(conf=R1, skip=NO_DNS)
def test_helo_restrictions(c):
    expect_rcpt(c, 250, helo="mx.ok.test")
    expect_rcpt(c, 450, "4.7.1", "Helo command rejected: Host not found", helo="nohost.test")
    expect_rcpt(c, 501, "5.5.2", "Invalid name", helo="bad..name.ok.test")
    expect_rcpt(c, 501, "5.5.2", "Invalid name", helo="under score!.test")
    expect_rcpt(c, 504, "5.5.2", "need fully-qualified hostname", helo="localhost")
    expect_rcpt(c, 250, helo="[127.0.0.1]")
    # check_helo_access (hash)
    expect_rcpt(c, 554, "5.7.1", "Helo command rejected: Access denied", helo="evil.ok.test")
    expect_rcpt(c, 554, "5.7.1", "helo text here", helo="text.ok.test")
    expect_rcpt(c, 250, helo="friend.nohost.test")
    expect_rcpt(c, 450, "4.7.1", "Host not found", helo="dunno.nohost.test")


@case(conf=R1, skip=NO_DNS)
def test_sender_access_tables(c):
    expect_rcpt(c, 250, sender="okay@nosuch.test")
    expect_rcpt(c, 554, "5.7.1", "<rej@ok.test>: Sender address rejected: Access denied",
                sender="rej@ok.test")
    expect_rcpt(c, 554, "5.7.1", "no thanks", sender="text@ok.test")
    expect_rcpt(c, 450, "4.1.8", "Domain not found", sender="dunno@nosuch.test")
    expect_rcpt(c, 450, "4.7.1", "try later", sender="later@ok.test")
    expect_rcpt(c, 550, "5.7.1", "go away", sender="away@ok.test")
    expect_rcpt(c, 554, "5.7.1", "whole domain", sender="anyone@baddomain.test")
    expect_rcpt(c, 554, "5.7.1", "whole domain", sender="anyone@sub.baddomain.test")
    expect_rcpt(c, 554, "5.7.1", "pcre spam", sender="spam42@ok.test")
    expect_rcpt(c, 250, sender="spam@ok.test")


@case(conf=R1, skip=NO_DNS)
def test_recipient_access_tables(c):
    expect_rcpt(c, 554, "5.7.1", "carol is away", rcpt="carol@example.test")
    expect_rcpt(c, 450, "4.7.1", "try later", rcpt="dave@example.test")
    expect_rcpt(c, 250, rcpt="bob@example.test")


@case(conf=R1, skip=NO_DNS)
def test_reject_non_fqdn(c):
    expect_rcpt(c, 504, "5.5.2", "need fully-qualified address", sender="x@localhost")
    expect_rcpt(c, 504, "5.5.2", "Recipient address rejected: need fully-qualified address",
                src="127.0.0.2", helo="host2.ok.test", rcpt="x@localhost")
    expect_rcpt(c, 250, src="127.0.0.2", helo="host2.ok.test", rcpt="x@ok.test")


@case(conf=R1, skip=NO_DNS)
def test_reject_unknown_sender_domain(c):
    expect_rcpt(c, 250, sender="x@ok.test")
    expect_rcpt(c, 250, sender="x@aonly.test")
    expect_rcpt(c, 450, "4.1.8", "Sender address rejected: Domain not found",
                sender="x@nx.ok.test")
    expect_rcpt(c, 450, "4.1.8", "Domain not found", sender="x@refused.test")
    expect_rcpt(c, 550, "5.7.27", "nullMX", sender="x@nullmx.test")
    expect_rcpt(c, 250, sender="")
    # a local domain is not looked up in DNS (Postfix skips final destinations)
    expect_rcpt(c, 250, sender="alice@example.test", starttls=True, login="alice@example.test")


@case(conf=R1, skip=NO_DNS)
def test_reject_sender_login_mismatch(c):
    kw = dict(starttls=True, login="alice@example.test")
    expect_rcpt(c, 553, "5.7.1", "not owned by user alice@example.test",
                sender="bob@example.test", **kw)
    expect_rcpt(c, 250, sender="alice@example.test", **kw)
    expect_rcpt(c, 250, sender="shared@example.test", **kw)
    expect_rcpt(c, 250, sender="", **kw)
    expect_rcpt(c, 553, "5.7.1", "not logged in", sender="demo@example.test")
    expect_rcpt(c, 553, "5.7.1", "not logged in", sender="shared@example.test")
    expect_rcpt(c, 553, "5.7.1", "not owned by user carol@example.test",
                sender="shared@example.test", starttls=True, login="carol@example.test")
    expect_rcpt(c, 250, sender="")
    expect_rcpt(c, 250, sender="x@ok.test")


@case(conf=R1, skip=NO_DNS)
def test_reject_unlisted_recipient_implicit(c):
    expect_rcpt(c, 550, "5.1.1", "User unknown in local recipient table",
                rcpt="nobody@example.test")
    expect_rcpt(c, 250, rcpt="demo@example.test")


# R2: restrictions that need settings of their own
DELAY_ACCESS = table("delay_sender_access", "blocked@ok.test REJECT\n", build=True)
R2 = {
    "smtpd_delay_reject": "no",
    "unknown_address_reject_code": "550",
    "smtpd_reject_unlisted_recipient": "no",
    "smtpd_sender_restrictions":
        "check_sender_access hash:%s, reject_unknown_sender_domain" % DELAY_ACCESS,
    "smtpd_recipient_restrictions":
        "reject_unlisted_recipient, permit_auth_destination, reject",
    "smtpd_data_restrictions": "reject_unauth_pipelining",
}


@case(conf=R2, skip=NO_DNS)
def test_delay_reject_no(c):
    expect_mail(c, 554, "5.7.1", "Sender address rejected", sender="blocked@ok.test")
    expect_mail(c, 250, sender="x@ok.test")


@case(conf=R2, skip=NO_DNS)
def test_unknown_address_reject_code(c):
    expect_mail(c, 550, "5.1.8", "Domain not found", sender="x@nx.ok.test")
    expect_mail(c, 450, "4.1.8", "Domain not found", sender="x@refused.test")


@case(conf=R2, skip=NO_DNS)
def test_permit_auth_destination(c):
    expect_rcpt(c, 250, rcpt="demo@example.test")
    expect_rcpt(c, 554, "5.7.1", "Recipient address rejected: Access denied",
                rcpt="x@remote.example")


@case(conf=R2, skip=NO_DNS)
def test_reject_unlisted_recipient_explicit(c):
    expect_rcpt(c, 550, "5.1.1", "User unknown in local recipient table",
                rcpt="nobody@example.test")


@case(conf=R2, skip=NO_DNS)
def test_reject_unauth_pipelining(c):
    r = raw(c.port)
    try:
        r.expect(220)
        r.expect(250, line="EHLO mx.ok.test")
        # MAIL, RCPT, DATA in one write is fine (RFC 2920)
        r.send("MAIL FROM:<x@ok.test>\r\nRCPT TO:<demo@example.test>\r\nDATA\r\n")
        r.expect(250)
        r.expect(250)
        r.expect(354)
        r.send("Subject: ok\r\n\r\nok\r\n.\r\n")
        r.expect(250)
        # DATA with the message right behind it is not
        r.send("MAIL FROM:<x@ok.test>\r\nRCPT TO:<demo@example.test>\r\n")
        r.expect(250)
        r.expect(250)
        r.send("DATA\r\nSubject: spam\r\n\r\nspam\r\n.\r\n")
        r.expect(503, "5.5.0")
    finally:
        r.close()
    wait_log(c, r"reject: DATA from .*Improper use of SMTP command pipelining")


# ---------------------------------------------------------------- configuration errors

def start_fails(**conf):
    c = Correio(**conf)
    try:
        p = subprocess.run([BIN, "-c", c.dir, "run"], capture_output=True, text=True,
                           timeout=30 * SLOW)
        return p.returncode, p.stdout + p.stderr, c
    except subprocess.TimeoutExpired:
        c.stop()
        raise TestFailure("correio run started with a bad configuration")
    finally:
        c.cleanup()


@case(conf=R2)
def test_bad_restriction_name_refused(c):
    rc, out, bad = start_fails(smtpd_recipient_restrictions="permit_mynetworks, reject_everything")
    check(rc != 0, "exit status %r" % rc)
    conf = os.path.join(bad.dir, "correio.conf")
    check(re.search(re.escape(conf) + r":\d+: smtpd_recipient_restrictions: .*reject_everything", out),
          "error does not name file:line: parameter: %r" % out[-500:])
    rc, out, bad = start_fails(smtpd_client_restrictions="check_client_access")
    check(rc != 0 and "smtpd_client_restrictions" in out, "table-less check_client_access: %r"
          % out[-500:])


def start_broken(**conf):
    """Start correio with a bad table; returns (log text, Correio) once the
    ingress has said why it cannot start."""
    c = Correio(**conf)
    c._log = open(c.logpath, "ab")
    c.proc = subprocess.Popen([BIN, "-c", c.dir, "run"], stdin=subprocess.DEVNULL,
                              stdout=c._log, stderr=c._log, start_new_session=True)
    try:
        wait_for(lambda: "cannot start with this configuration" in c.log()
                 or c.proc.poll() is not None, 20, what="the ingress refusing its configuration")
        try:
            socket.create_connection(("127.0.0.1", c.port), timeout=2).close()
            raise TestFailure("the ingress listens with a broken table")
        except OSError:
            pass
        return c.log(), c
    finally:
        c.cleanup()


@case(conf=R2)
def test_broken_table_refused(c):
    path = table("broken.cidr", "127.0.0.1/32 OK\n# fine\n300.1.2.3/8 REJECT\n")
    out, _ = start_broken(smtpd_client_restrictions="check_client_access cidr:%s" % path)
    check(re.search(re.escape(path) + r":3: ", out), "error does not name table:line: %r"
          % out[-500:])
    path = table("broken.pcre", "/ok/ OK\n/unclosed( REJECT\n")
    out, _ = start_broken(header_checks="pcre:%s" % path)
    check(re.search(re.escape(path) + r":2: ", out), "pcre: %r" % out[-500:])
    path = table("nobuilt", "a OK\n")
    out, _ = start_broken(smtpd_sender_restrictions="check_sender_access hash:%s" % path)
    check("map build" in out, "unbuilt hash table: %r" % out[-500:])


# ================================================================ content checks, size limits
HEADER_CHECKS = table("header_checks",
                      "/^Subject:.*reject-me/ REJECT no thanks\n"
                      "/^Subject:.*warn-me/ WARN watch out\n"
                      "/^X-Remove-Me:/ IGNORE\n"
                      "/^Subject:.*discard-me/ DISCARD\n"
                      "/^Subject:.*hold-me/ HOLD held for review\n"
                      "/^X-Folded: first\\s+second/ REJECT folded header matched\n")
BODY_CHECKS = table("body_checks",
                    "/body-reject-line/ REJECT body rejected\n"
                    "/body-ignore-line/ IGNORE\n"
                    "/body-warn-line/ WARN\n"
                    "/body-discard-line/ DISCARD\n")
SIZE_LIMITS = table("size_limits", "alice@example.test 2k\n", build=True)
CONTENT = {
    "header_checks": "pcre:%s" % HEADER_CHECKS,
    "body_checks": "pcre:%s" % BODY_CHECKS,
    "smtpd_sender_size_limit_maps": "hash:%s" % SIZE_LIMITS,
}


def message(marker, headers="", body=""):
    return ("From: <x@ok.test>\r\nTo: <demo@example.test>\r\nSubject: %s\r\n%s\r\n"
            "first body line %s\r\n%s" % (marker, headers, marker, body)).encode()


def data_reply(c, msg, sender="x@ok.test"):
    s = smtp(c)
    try:
        check(s.mail(sender)[0] == 250, "MAIL")
        check(s.rcpt("demo@example.test")[0] == 250, "RCPT")
        code, text = s.data(msg)
        return code, text.decode("utf-8", "replace")
    finally:
        close(s)


def delivered_after(c, marker):
    """Prove `marker` was not delivered: send a follow-up message, wait for
    it, then look (delivery is in order enough for one idle instance)."""
    follow = unique("follow")
    c.send("x@ok.test", ["demo@example.test"], simple_message(follow))
    c.wait_for_message("demo@example.test", follow)
    return any(marker.encode() in m for m in c.maildir_messages("demo@example.test"))


@case(conf=CONTENT)
def test_header_reject(c):
    marker = unique("reject-me")
    pos = c.log_size()
    code, text = data_reply(c, message(marker))
    check(code == 550 and "no thanks" in text, "end of DATA: %d %r" % (code, text))
    check(text.startswith("5.7.1"), text)
    check(not delivered_after(c, marker), "rejected message delivered")
    wait_log(c, r"reject: header Subject: " + re.escape(marker) + r" from \S+\[127\.0\.0\.1\]; "
             r"from=<x@ok\.test> to=<demo@example\.test> .*: 550 5\.7\.1 no thanks", since=pos)


@case(conf=CONTENT)
def test_header_warn(c):
    marker = unique("warn-me")
    pos = c.log_size()
    code, _ = data_reply(c, message(marker))
    check(code == 250, "WARN: %d" % code)
    c.wait_for_message("demo@example.test", marker)
    wait_log(c, r"warning: header Subject: " + re.escape(marker)
             + r" from \S+\[127\.0\.0\.1\]; from=<x@ok\.test> "
             r"to=<demo@example\.test> proto=ESMTP helo=<mx\.ok\.test>: watch out", since=pos)


@case(conf=CONTENT)
def test_header_ignore(c):
    marker = unique("ignore")
    code, _ = data_reply(c, message(marker, headers="X-Remove-Me: yes\r\n\tcontinued\r\n"
                                    "X-Keep-Me: yes\r\n"))
    check(code == 250, "IGNORE: %d" % code)
    m = c.wait_for_message("demo@example.test", marker)
    check(b"X-Remove-Me" not in m and b"continued" not in m, "ignored header delivered: %r" % m)
    check(b"X-Keep-Me: yes" in m, "neighbour header lost: %r" % m)


@case(conf=CONTENT)
def test_header_discard(c):
    marker = unique("discard-me")
    pos = c.log_size()
    code, _ = data_reply(c, message(marker))
    check(code == 250, "DISCARD: %d" % code)
    check(not delivered_after(c, marker), "discarded message delivered")
    wait_log(c, r"discard: header Subject: " + re.escape(marker), since=pos)


@case(conf=CONTENT)
def test_header_hold(c):
    marker = unique("hold-me")
    pos = c.log_size()
    code, _ = data_reply(c, message(marker))
    check(code == 250, "HOLD: %d" % code)
    check(not delivered_after(c, marker), "held message delivered")
    wait_log(c, r"hold: header Subject: " + re.escape(marker), since=pos)


@case(conf=CONTENT)
def test_header_folded(c):
    marker = unique("folded")
    code, text = data_reply(c, message(marker, headers="X-Folded: first\r\n second\r\n"))
    check(code == 550 and "folded header matched" in text, "%d %r" % (code, text))
    # each half alone does not match
    marker2 = unique("folded2")
    code, _ = data_reply(c, message(marker2, headers="X-Folded: first\r\nX-Other: second\r\n"))
    check(code == 250, "unfolded lines matched: %d" % code)


@case(conf=CONTENT)
def test_body_checks(c):
    marker = unique("body")
    pos = c.log_size()
    code, text = data_reply(c, message(marker, body="a body-reject-line here\r\n"))
    check(code == 550 and "body rejected" in text, "body REJECT: %d %r" % (code, text))
    wait_log(c, r"reject: body a body-reject-line here", since=pos)
    # a header line that looks like it is not matched by body_checks
    code, _ = data_reply(c, message(marker + "h", headers="X-Note: body-reject-line\r\n"))
    check(code == 250, "body_checks matched a header: %d" % code)
    m = unique("bodyign")
    code, _ = data_reply(c, message(m, body="keep\r\nbody-ignore-line\r\nkeep too\r\n"))
    check(code == 250, "body IGNORE: %d" % code)
    got = c.wait_for_message("demo@example.test", m)
    check(b"body-ignore-line" not in got and b"keep too" in got, "IGNORE: %r" % got)
    m = unique("bodywarn")
    code, _ = data_reply(c, message(m, body="x body-warn-line\r\n"))
    check(code == 250, "body WARN: %d" % code)
    c.wait_for_message("demo@example.test", m)
    wait_log(c, r"warning: body x body-warn-line", since=pos)
    m = unique("bodydisc")
    code, _ = data_reply(c, message(m, body="body-discard-line\r\n"))
    check(code == 250, "body DISCARD: %d" % code)
    check(not delivered_after(c, m), "discarded (body) message delivered")


@case(conf=CONTENT)
def test_sender_size_limit(c):
    r = raw(c.port)
    try:
        r.expect(220)
        r.expect(250, line="EHLO mx.ok.test")
        r.expect(552, "5.3.4", line="MAIL FROM:<alice@example.test> SIZE=5000")
        r.expect(250, line="MAIL FROM:<alice@example.test> SIZE=1000")
        r.expect(250, line="RSET")
        r.expect(250, line="MAIL FROM:<bob@example.test> SIZE=5000")
        r.expect(250, line="RSET")
    finally:
        r.close()
    big = message(unique("big"), body=("x" * 70 + "\r\n") * 70)
    check(len(big) > 4900, "message too small")
    code, text = data_reply(c, big, sender="alice@example.test")
    check(code == 552 and text.startswith("5.3.4"), "5000 bytes from alice: %d %r" % (code, text))
    marker = unique("big-bob")
    code, _ = data_reply(c, message(marker, body=("x" * 70 + "\r\n") * 70),
                         sender="bob@example.test")
    check(code == 250, "5000 bytes from bob: %d" % code)
    c.wait_for_message("demo@example.test", marker)
    marker = unique("small-alice")
    code, _ = data_reply(c, message(marker), sender="alice@example.test")
    check(code == 250, "small message from alice: %d" % code)


if __name__ == "__main__":
    sys.exit(main(globals()))
