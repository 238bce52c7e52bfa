"""test_policy.py - the policy service seen from SMTP: greylisting,
intrusion prevention and sending limits, asked by the ingress
(ingress/session_policy.c) and decided by the router (router/policy_*.c).

Greylisting with the controllable clock (CORREIO_TEST_CLOCK, advanced
instead of waiting): a new triplet gets 450 with the router's text, an
early retry 450, a retry after the delay 250 and the mail is delivered,
later mail passes at once; sender-based triplets pass from another client
address, greylist_network = yes does not; authenticated sessions,
mynetworks and greylist_bypass are never greylisted; adaptive mode only
greylists clients with spam history.  Intrusion prevention: each rule
(unknown recipients, connection rate, message size, relay failure, RSET,
AUTH failures, spam trap) blocks the client - the live connection gets
421 (intrusion_close_blocked) and the next one 421 with the reason - and
the block ends after intrusion_block_time; authenticated sessions are
exempt.  Sending limits per user and per domain, counters kept across a
router restart.  Two ingress processes see the same block; two routers
split the keys; a router that does not answer gives 4xx, never 250, and
mail flows again when it is back.

Clients connect from several 127.0.0.x addresses (the source address is
bound), so that the rules of one instance do not disturb each other.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import base64
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BUILD, MAIL_OWNER, SLOW, RawSMTP, at_cleanup, case, check, free_port,  # noqa: E402
                     main, simple_message, unique, wait_for)
from policy_client import TestClock, ask, router_endpoint, wait_answering  # noqa: E402

DEMO = "demo@example.test"
ALICE = "alice@example.test"
SENDER = "sender@client.example"

_tmp = tempfile.mkdtemp(prefix="correio-policy-")
os.chmod(_tmp, 0o755)
at_cleanup(lambda: os.environ.get("KEEP") == "1" or shutil.rmtree(_tmp, True))
CLOCK = TestClock(os.path.join(_tmp, "clock", "offset"))

GREY = {"greylisting": "yes", "greylist_delay": "300s", "mynetworks": "192.0.2.0/24",
        "policy_timeout": "2s"}


# ---------------------------------------------------------------- helpers
class Raw(RawSMTP):
    """RawSMTP from a chosen loopback source address."""

    def __init__(self, port, src="127.0.0.1", timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW,
                                             source_address=(src, 0))
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""
        self.eof = False


def session(c, src="127.0.0.1", ehlo=True):
    r = Raw(c.port, src)
    r.expect(220)
    if ehlo:
        r.cmd("EHLO client.example")
    return r


def auth_plain(r, user, password="secret"):
    tok = base64.b64encode(b"\0" + user.encode() + b"\0" + password.encode()).decode()
    return r.cmd("AUTH PLAIN " + tok)


def rcpt_try(c, sender, rcpt, src="127.0.0.1", user=None):
    """MAIL + RCPT in a new session; (code, text) of the RCPT."""
    with session(c, src) as r:
        if user:
            check(auth_plain(r, user)[0] == 235, "AUTH failed")
        r.expect(250, line="MAIL FROM:<%s>" % sender)
        code, lines = r.cmd("RCPT TO:<%s>" % rcpt)
        r.cmd("QUIT")
        return code, "\n".join(lines)


def send_from(c, sender, rcpt, marker, src="127.0.0.1", user=None, size=0):
    """A whole message; the reply (code, text) to the final dot, or the
    first refusal."""
    with session(c, src) as r:
        if user:
            check(auth_plain(r, user)[0] == 235, "AUTH failed")
        code, lines = r.cmd("MAIL FROM:<%s>" % sender)
        if code != 250:
            return code, "\n".join(lines)
        code, lines = r.cmd("RCPT TO:<%s>" % rcpt)
        if code != 250:
            return code, "\n".join(lines)
        r.expect(354, line="DATA")
        msg = simple_message(marker, sender=sender, to=rcpt)
        if size:
            msg += b"x" * 70 + b"\r\n"
            msg += (b"y" * 998 + b"\r\n") * (size // 1000 + 1)
        r.send(msg.replace(b"\r\n.", b"\r\n..") + b"\r\n.\r\n")
        code, lines = r.read_reply()
        return code, "\n".join(lines)


def greeting(c, src):
    """The first reply of a new connection from src (None: closed)."""
    with Raw(c.port, src) as r:
        rep = r.read_reply()
        return rep and (rep[0], "\n".join(rep[1]))


def once_reconnected(attempt):
    """attempt() until the ingress has reconnected to a restarted router
    (ZMQ_IMMEDIATE: until then it answers 451 at once); its (code, text)."""
    def go():
        code, text = attempt()
        return None if code == 451 and "policy service unavailable" in text else (code, text)
    return wait_for(go, 20 * SLOW, interval=0.1, what="the ingress reconnected to the router")


def restart_ingress(c):
    """SIGTERM the ingress; the supervisor starts it again with the
    configuration as it is now."""
    old = c.stage_pid("ingress")
    os.kill(old, signal.SIGTERM)
    wait_for(lambda: c.stage_pid("ingress") not in (None, old), 20 * SLOW,
             what="the ingress restarted")

    def answering():
        try:
            return greeting(c, "127.0.0.1")[0] == 220
        except (OSError, TypeError):
            return False
    wait_for(answering, 20 * SLOW, what="the ingress answering")


def expect_blocked(c, src, reason):
    g = greeting(c, src)
    check(g is not None and g[0] == 421 and "(%s)" % reason in g[1]
          and "blocked by intrusion prevention" in g[1],
          "expected 421 ... (%s) at connect from %s, got %r" % (reason, src, g))


def expect_421_close(r, after):
    rep = r.read_reply()
    check(rep is not None and rep[0] == 421 and "blocked by intrusion prevention" in rep[1][-1],
          "expected 421 after %s, got %r" % (after, rep))
    check(r.is_closed(), "the connection stays open after the 421")


# ---------------------------------------------------------------- greylisting
@case(conf=GREY, fresh=True)
def test_greylist_triplet(c):
    rcpt, sender = DEMO, "news-1234-%s@client.example" % unique()
    code, text = rcpt_try(c, sender, rcpt)
    check(code == 450 and "4.7.1" in text and "Greylisted for" in text and "RFC 6647" in text,
          "first attempt: %r" % text)
    check("policy=greylist reason=GREYLIST_NEW" in c.log(), "no decision log line")
    code, text = rcpt_try(c, sender, rcpt)
    check(code == 450, "retry before the delay: %r" % text)
    CLOCK.advance(301)
    marker = unique("grey")
    code, text = send_from(c, sender, rcpt, marker)
    check(code == 250, "retry after the delay: %r" % text)
    c.wait_for_message(rcpt, marker)
    code, text = rcpt_try(c, sender, rcpt)
    check(code == 250, "later mail: %r" % text)
    # VERP: another bounce address of the same list passes as well
    code, text = rcpt_try(c, sender.replace("news-1234", "news-777"), rcpt)
    check(code == 250, "a VERP variant of a passed sender: %r" % text)
    # sender-based: the same sender from another address passes
    code, text = rcpt_try(c, sender, rcpt, src="127.0.1.5")
    check(code == 250, "sender-based triplet from another client: %r" % text)


@case(conf=dict(GREY, greylist_network="yes"), fresh=True)
def test_greylist_network(c):
    sender = "net-%s@client.example" % unique()
    check(rcpt_try(c, sender, DEMO)[0] == 450, "first attempt not greylisted")
    CLOCK.advance(301)
    check(rcpt_try(c, sender, DEMO)[0] == 250, "retry after the delay")
    check(rcpt_try(c, sender, DEMO, src="127.0.0.9")[0] == 250, "the same /24 must pass")
    code, text = rcpt_try(c, sender, DEMO, src="127.0.2.9")
    check(code == 450, "another network must be greylisted: %r" % text)


@case(conf=dict(GREY, mynetworks="127.0.0.2/32",
                greylist_bypass="127.0.0.3, vip@client.example, carol@example.test",
                smtpd_tls_auth_only="no", smtpd_sasl_auth_enable="yes"), fresh=True)
def test_greylist_exempt(c):
    s = "x-%s@client.example" % unique()
    check(rcpt_try(c, s, DEMO)[0] == 450, "an ordinary client must be greylisted")
    code, text = rcpt_try(c, ALICE, DEMO, user=ALICE)
    check(code == 250, "an authenticated session: %r" % text)
    check(rcpt_try(c, s, ALICE, src="127.0.0.2")[0] == 250, "a mynetworks client")
    check(rcpt_try(c, s, ALICE, src="127.0.0.3")[0] == 250, "a bypass client address")
    check(rcpt_try(c, "vip@client.example", ALICE)[0] == 250, "a bypass sender")
    code, text = rcpt_try(c, s, "carol@example.test")
    check(code == 250, "a bypass recipient: %r" % text)


@case(conf=dict(GREY, greylist_adaptive="yes"), fresh=True)
def test_greylist_adaptive(c):
    s = "a-%s@client.example" % unique()
    check(rcpt_try(c, s, DEMO, src="127.0.3.1")[0] == 250, "a client without spam history")
    ask(router_endpoint(c), "SPAM_SEEN", "127.0.3.2", timeout=5 * SLOW, client_ip="127.0.3.2")
    code, text = rcpt_try(c, s, DEMO, src="127.0.3.2")
    check(code == 450, "a client with spam history must be greylisted: %r" % text)


# ---------------------------------------------------------------- intrusion prevention
INTR = {"intrusion_prevention": "yes", "mynetworks": "192.0.2.0/24",
        "intrusion_connection_rate_limit": "8", "intrusion_message_size_limit": "3k",
        "intrusion_rset_limit": "3", "intrusion_auth_failure_limit": "2",
        "intrusion_relay_failure_limit": "1", "spamtrap_addresses": "trap@example.test",
        "smtpd_tls_auth_only": "no", "smtpd_sasl_auth_enable": "yes",
        "smtpd_auth_failure_delay": "0s", "smtpd_hard_error_limit": "50"}


@case(conf=INTR, fresh=True, timeout=120)
def test_intrusion_rules(c):
    # unknown recipients: the sixth blocks; the live connection is closed
    src = "127.0.4.1"
    with session(c, src) as r:
        r.expect(250, line="MAIL FROM:<%s>" % SENDER)
        for i in range(5):
            r.expect(550, "5.1.1", line="RCPT TO:<nobody%d@example.test>" % i)
        r.expect(550, "5.1.1", line="RCPT TO:<nobody9@example.test>")
        expect_421_close(r, "the sixth unknown recipient")
    expect_blocked(c, src, "UNKNOWN_RCPT")
    check("policy=intrusion reason=UNKNOWN_RCPT" in c.log(), "no decision log line")

    # relay failure
    src = "127.0.4.2"
    with session(c, src) as r:
        r.expect(250, line="MAIL FROM:<%s>" % SENDER)
        code, lines = r.cmd("RCPT TO:<someone@remote.example>")
        check(code >= 500 and "Relay access denied" in lines[-1], "relay: %r" % lines)
        expect_421_close(r, "a relay attempt")
    expect_blocked(c, src, "RELAY")

    # RSETs: the fourth (limit 3) blocks
    src = "127.0.4.3"
    with session(c, src) as r:
        for i in range(4):
            r.expect(250, line="RSET")
        expect_421_close(r, "too many RSETs")
    expect_blocked(c, src, "RSET")

    # AUTH failures: the third (limit 2) blocks
    src = "127.0.4.4"
    with session(c, src) as r:
        for i in range(3):
            code, _ = auth_plain(r, ALICE, "wrong")
            check(code == 535, "AUTH with a bad password: %s" % code)
        expect_421_close(r, "AUTH failures")
    expect_blocked(c, src, "AUTH")

    # spam trap
    src = "127.0.4.5"
    with session(c, src) as r:
        r.expect(250, line="MAIL FROM:<%s>" % SENDER)
        text = r.expect(550, "5.7.1", line="RCPT TO:<trap@example.test>")
        check("Access denied" in text, "spam trap reply: %r" % text)
        expect_421_close(r, "a spam trap")
    expect_blocked(c, src, "SPAMTRAP")

    # message size, declared: MAIL SIZE= over the limit
    src = "127.0.4.6"
    with session(c, src) as r:
        r.expect(250, line="MAIL FROM:<%s> SIZE=50000" % SENDER)
        expect_421_close(r, "MAIL SIZE= over the limit")
    expect_blocked(c, src, "SIZE")

    # message size, received: the message is accepted (250), then 421
    src = "127.0.4.7"
    marker = unique("big")
    with session(c, src) as r:
        r.expect(250, line="MAIL FROM:<%s>" % SENDER)
        r.expect(250, line="RCPT TO:<%s>" % DEMO)
        r.expect(354, line="DATA")
        r.send(simple_message(marker, to=DEMO) + (b"z" * 990 + b"\r\n") * 5 + b".\r\n")
        r.expect(250)
        expect_421_close(r, "a message over intrusion_message_size_limit")
    c.wait_for_message(DEMO, marker)
    expect_blocked(c, src, "SIZE")

    # connection rate: more than 8 a minute
    src = "127.0.4.8"
    got = []
    for i in range(10):
        g = greeting(c, src)
        got.append(g and g[0])
    check(got[:8] == [220] * 8 and got[8] == 421, "connection rate: %r" % got)
    expect_blocked(c, src, "CONN_RATE")

    # every other address is still welcome; the blocks end with the block time
    check(greeting(c, "127.0.4.20")[0] == 220, "an innocent client was refused")
    CLOCK.advance(240 * 60 + 60)
    for src in ("127.0.4.1", "127.0.4.2", "127.0.4.3", "127.0.4.4", "127.0.4.6", "127.0.4.8"):
        g = greeting(c, src)
        check(g and g[0] == 220, "%s still blocked after intrusion_block_time: %r" % (src, g))


@case(conf=INTR, fresh=True)
def test_intrusion_authenticated_exempt(c):
    src = "127.0.5.1"
    with session(c, src) as r:
        check(auth_plain(r, ALICE)[0] == 235, "AUTH failed")
        r.expect(250, line="MAIL FROM:<%s>" % ALICE)
        for i in range(8):
            r.expect(550, "5.1.1", line="RCPT TO:<nobody%d@example.test>" % i)
        r.expect(250, line="RCPT TO:<%s>" % DEMO)
        r.expect(221, line="QUIT")
    check(greeting(c, src)[0] == 220, "an authenticated session's errors blocked its address")


@case(conf=dict(INTR, intrusion_refuse_blocked="no", intrusion_close_blocked="no",
                intrusion_tarpit_delay="1s"), fresh=True)
def test_intrusion_tarpit(c):
    src = "127.0.5.2"
    ask(router_endpoint(c), "BLOCK", "127.0.5.2", timeout=5 * SLOW)
    t0 = time.monotonic()
    with session(c, src, ehlo=False) as r:
        r.expect(250, line="NOOP")
        r.expect(221, line="QUIT")
    check(time.monotonic() - t0 >= 2.5, "no tarpit delay before the replies")


# ---------------------------------------------------------------- sending limits
LIMITS = {"sending_message_limit": "2", "mynetworks": "192.0.2.0/24",
          "smtpd_tls_auth_only": "no", "smtpd_sasl_auth_enable": "yes"}


@case(conf=LIMITS, fresh=True, allow_restarts=True)
def test_sending_limit_user(c):
    for i in range(2):
        code, text = send_from(c, ALICE, DEMO, unique("lim"), user=ALICE)
        check(code == 250, "message %d: %r" % (i + 1, text))
    code, text = send_from(c, ALICE, DEMO, unique("lim"), user=ALICE)
    check(code == 450 and "daily sending limit of 2 messages" in text, "third: %r" % text)
    check("policy=limits reason=LIMIT" in c.log(), "no decision log line")
    code, text = send_from(c, "bob@example.test", DEMO, unique("lim"), user="bob@example.test")
    check(code == 250, "another user: %r" % text)
    # the counters survive a router restart
    old = c.stage_pid("router")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: c.stage_pid("router") not in (None, old), 20 * SLOW, what="router restarted")
    wait_answering(router_endpoint(c), 20 * SLOW)
    code, text = once_reconnected(lambda: send_from(c, ALICE, DEMO, unique("lim"), user=ALICE))
    check(code == 450 and "daily sending limit" in text, "after the restart: %r" % text)


@case(conf=dict(LIMITS, sending_message_limit="0", sending_domain_message_limit="3",
                sending_recipient_limit="2"), fresh=True)
def test_sending_limit_domain(c):
    with session(c) as r:                     # the recipients cap
        check(auth_plain(r, ALICE)[0] == 235, "AUTH failed")
        r.expect(250, line="MAIL FROM:<%s>" % ALICE)
        r.expect(250, line="RCPT TO:<%s>" % DEMO)
        r.expect(250, line="RCPT TO:<bob@example.test>")
        text = r.expect(452, "4.5.3", line="RCPT TO:<carol@example.test>")
        check("too many recipients for this sender (limit 2)" in text, text)
    for user in (ALICE, "bob@example.test", ALICE):
        code, text = send_from(c, user, DEMO, unique("dom"), user=user)
        check(code == 250, "%s: %r" % (user, text))
    code, text = send_from(c, "carol@example.test", DEMO, unique("dom"), user="carol@example.test")
    check(code == 450 and "daily sending limit of 3 messages" in text, "domain total: %r" % text)


# ---------------------------------------------------------------- several processes
def hand_started(c, prog, name, **conf):
    """Start build/bin/correio-PROG with its own config dir (the rest of
    c's configuration, conf overriding); stopped at cleanup."""
    d = tempfile.mkdtemp(prefix="correio-%s-" % name, dir=_tmp)
    os.chmod(d, 0o755)
    settings = dict(c.conf)
    settings.update(run_directory=os.path.join(d, "run"), data_directory=os.path.join(d, "data"))
    for k in ("ingress_events_endpoint", "ingress_admin_endpoint", "ingress_submit_endpoint",
              "router_endpoint", "router_admin_endpoint", "router_policy_endpoint"):
        settings.setdefault(k, "ipc://%s/run/%s" % (d, k.replace("_endpoint", "").replace("_", "-")))
    run = c.conf["run_directory"]
    settings.setdefault("classifier_endpoint", "ipc://%s/classifier" % run)
    settings.setdefault("delivery_endpoint", "ipc://%s/delivery" % run)
    settings.update({k: str(v) for k, v in conf.items()})
    with open(os.path.join(d, "correio.conf"), "w") as f:
        for k, v in settings.items():
            f.write("%s = %s\n" % (k, v))
    for sub in ("data", "run"):               # the stage runs as mail_owner
        path = settings["%s_directory" % sub]
        os.makedirs(path, exist_ok=True)
        if os.geteuid() == 0:
            pw = pwd.getpwnam(MAIL_OWNER)
            os.chown(path, pw.pw_uid, pw.pw_gid)
    shutil.copy(os.path.join(c.dir, "users"), os.path.join(d, "users"))
    os.chmod(os.path.join(d, "users"), 0o644)
    log = open(os.path.join(d, "log"), "ab")
    p = subprocess.Popen([os.path.join(BUILD, "bin", "correio-" + prog), "-c", d],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
    p.dir, p.settings, p.log = d, settings, log

    def stop():
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
        log.close()
    at_cleanup(stop)
    p.stop = stop
    return p


@case(conf=dict(INTR), fresh=True)
def test_two_ingresses_share_blocks(c):
    port = free_port()
    ig2 = hand_started(c, "ingress", "ingress2", smtpd_listen="127.0.0.1:%d" % port,
                       policy_endpoints=router_endpoint(c))

    def up():
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False
    wait_for(up, 20 * SLOW, what="the second ingress listening")
    src = "127.0.6.1"
    with session(c, src) as r:                # blocked through the first ingress
        r.expect(250, line="RSET")
        for i in range(3):
            r.expect(250, line="RSET")
        expect_421_close(r, "too many RSETs")

    class Other:
        pass
    o = Other()
    o.port = port
    expect_blocked(o, src, "RSET")
    expect_blocked(c, src, "RSET")
    ig2.stop()


@case(conf=dict(GREY), fresh=True, allow_restarts=True)
def test_two_routers_split_keys(c):
    r2 = hand_started(c, "router", "router2")
    ep2 = r2.settings["router_policy_endpoint"]
    wait_answering(ep2, 20 * SLOW)
    ep1 = router_endpoint(c)
    # the running ingress asks only router 1: restart it with both
    with open(os.path.join(c.dir, "correio.conf"), "a") as f:
        f.write("policy_endpoints = %s, %s\n" % (ep1, ep2))
    restart_ingress(c)
    for i in range(16):
        code, text = rcpt_try(c, "split%s@client.example" % "abcdefghijklmnop"[i], DEMO)
        check(code == 450, "greylisting with two routers: %r" % text)
    n1 = len(ask(ep1, "LIST", "", table="greylist")["entries"])
    n2 = len(ask(ep2, "LIST", "", table="greylist")["entries"])
    check(n1 + n2 == 16 and n1 > 0 and n2 > 0, "keys per router: %d and %d" % (n1, n2))
    r2.stop()


@case(conf=dict(GREY, policy_timeout="1s"), fresh=True, allow_restarts=True)
def test_router_down_fail_safe(c):
    r2 = hand_started(c, "router", "router3")
    ep2 = r2.settings["router_policy_endpoint"]
    wait_answering(ep2, 20 * SLOW)
    with open(os.path.join(c.dir, "correio.conf"), "a") as f:
        f.write("policy_endpoints = %s\n" % ep2)
    restart_ingress(c)
    sender = "down-%s@client.example" % unique()
    check(rcpt_try(c, sender, DEMO)[0] == 450, "greylisted while the router runs")
    r2.stop()
    ingress = c.stage_pid("ingress")
    for i in range(2):
        code, text = rcpt_try(c, sender, DEMO)
        check(code == 451 and "policy service unavailable" in text, "router down: %r" % text)
    check(c.stage_pid("ingress") == ingress, "the ingress did not keep running")
    r3 = hand_started(c, "router", "router3b",
                      **{k: r2.settings[k] for k in ("router_policy_endpoint", "data_directory",
                                                     "run_directory", "router_endpoint",
                                                     "router_admin_endpoint")})
    wait_answering(ep2, 20 * SLOW)
    CLOCK.advance(301)
    marker = unique("back")
    code, text = once_reconnected(lambda: send_from(c, sender, DEMO, marker))
    check(code == 250, "router back: %r" % text)
    c.wait_for_message(DEMO, marker)
    r3.stop()


if __name__ == "__main__":
    sys.exit(main(globals()))
