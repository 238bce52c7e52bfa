"""test_policy_ctl.py - `correio greylist|intrusion|limits`, the operator's
view of the routers' policy state (ctl/cmd_policy.c), against a running
correio.

Greylist: list shows the triplet a 450 made (waiting, then passed once
the controllable clock passed the delay), PATTERN filters it, pass makes
the next RCPT 250, delete makes it 450 again, delete ALL empties the
list.  Intrusion: block IP makes the next connection from it 421, list
shows it (reason MANUAL, time left), unblock lets it in again, unblock
of an address no router knows says so and exits 1, unblock ALL.
Limits: a sender over its daily limit is deferred, list shows the
counter, reset lets it send again.  --json output parses.  Two routers:
each key goes to the one the ingress asks (a triplet passed with the
command passes at RCPT whichever router owns it) and list merges both.
A router that does not answer: its name on stderr, exit 1, the other
router's entries still listed.  Bad arguments exit 2.

Time moves with CORREIO_TEST_CLOCK (a file the router and the command
both read), never by sleeping.  Prints PASS/FAIL/SKIP per case (see
harness.py)."""

import json
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, BUILD, MAIL_OWNER, SLOW, RawSMTP, at_cleanup, case, check,  # noqa: E402
                     free_port, main, unique, wait_for)

DEMO = "demo@example.test"
ALICE = "alice@example.test"

_tmp = tempfile.mkdtemp(prefix="correio-policy-ctl-")
os.chmod(_tmp, 0o755)
at_cleanup(lambda: os.environ.get("KEEP") == "1" or shutil.rmtree(_tmp, True))


class Clock:
    """The file CORREIO_TEST_CLOCK names: seconds added to the policy
    clock.  Set before any correio starts (the stages inherit it)."""

    def __init__(self, path):
        self.path, self.offset = path, 0
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.chmod(os.path.dirname(path), 0o755)
        self._write()
        os.environ["CORREIO_TEST_CLOCK"] = path

    def _write(self):
        with open(self.path + ".tmp", "w") as f:
            f.write("%d\n" % self.offset)
        os.chmod(self.path + ".tmp", 0o644)
        os.replace(self.path + ".tmp", self.path)

    def advance(self, seconds):
        self.offset += int(seconds)
        self._write()


CLOCK = Clock(os.path.join(_tmp, "clock", "offset"))

# loopback clients are not in mynetworks: they are greylisted
GREY = {"greylisting": "yes", "greylist_delay": "300s", "mynetworks": "192.0.2.0/24",
        "intrusion_prevention": "yes", "policy_timeout": "2s"}
LIMITS = {"mynetworks": "127.0.0.0/8", "sending_message_limit": "2"}


# ---------------------------------------------------------------- helpers
class Raw(RawSMTP):
    """RawSMTP from a chosen loopback source address."""

    def __init__(self, port, src="127.0.0.1", timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW,
                                             source_address=(src, 0))
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""
        self.eof = False


def rcpt_try(c, sender, rcpt, src="127.0.0.1"):
    """MAIL + RCPT in a new session; (code, text) of the RCPT."""
    with Raw(c.port, src) as r:
        r.expect(220)
        r.cmd("EHLO client.example")
        r.expect(250, line="MAIL FROM:<%s>" % sender)
        code, lines = r.cmd("RCPT TO:<%s>" % rcpt)
        r.cmd("QUIT")
        return code, "\n".join(lines)


def greeting(c, src):
    """The first reply of a new connection from src (None: closed)."""
    with Raw(c.port, src) as r:
        rep = r.read_reply()
        return rep and (rep[0], "\n".join(rep[1]))


def out_of(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


def ctl_ok(c, *args):
    p = c.ctl(*args)
    check(p.returncode == 0, "correio %s: %s" % (" ".join(args), out_of(p)))
    return p.stdout


def json_lines(text):
    """Every line one JSON object (ValueError otherwise)."""
    return [json.loads(l) for l in text.splitlines() if l.strip()]


def entries(c, table, pattern=None):
    """{key: entry} from `correio TABLE list --json [PATTERN]`."""
    out = ctl_ok(c, table, "list", "--json", *([pattern] if pattern else []))
    try:
        return {e["key"]: e for e in json_lines(out)}
    except ValueError as e:
        raise AssertionError("%s list --json does not parse (%s): %r" % (table, e, out[:500]))


def triplet_of(c, sender_part):
    """The one greylist key that holds sender_part (as the ingress made it)."""
    keys = [k for k in entries(c, "greylist") if sender_part in k]
    check(len(keys) == 1, "expected one triplet with %r, got %r" % (sender_part, keys))
    return keys[0]


def conf_copy(c, **extra):
    """A configuration directory of our own: the instance's correio.conf
    with extra parameters (to point the command elsewhere)."""
    d = tempfile.mkdtemp(prefix="conf-", dir=_tmp)
    os.chmod(d, 0o755)
    with open(os.path.join(c.dir, "correio.conf")) as f:
        text = f.read()
    with open(os.path.join(d, "correio.conf"), "w") as f:
        f.write(text)
        for k, v in extra.items():
            f.write("%s = %s\n" % (k, v))
    shutil.copy(os.path.join(c.dir, "users"), os.path.join(d, "users"))
    return d


def run_ctl(confdir, *args, timeout=30):
    return subprocess.run([BIN, "-c", confdir] + list(args), capture_output=True,
                          timeout=timeout * SLOW, text=True)


# ---------------------------------------------------------------- greylist
@case(conf=GREY)
def test_greylist_list_pass_delete(c):
    tag = "gl%s" % unique().replace("-", "")
    tag = "".join(ch for ch in tag if ch.isalpha()) + "x"   # no digits: the key keeps them as is
    sender = "list-%s@client.example" % tag
    code, text = rcpt_try(c, sender, DEMO)
    check(code == 450 and "Greylisted" in text, "first RCPT: %r" % text)

    key = triplet_of(c, tag)
    check(key == "%s/%s" % (sender, DEMO), "the triplet as the ingress keys it: %r" % key)
    e = entries(c, "greylist")[key]
    check(e["state"] == "waiting" and e["node"] and e["until"] > e["first"] > 0,
          "a waiting entry with its times: %r" % e)
    # the human form: aligned columns, the time it may pass
    out = ctl_ok(c, "greylist", "list")
    lines = out.splitlines()
    check(lines[0].split()[:3] == ["TRIPLET", "NODE", "STATE"], "column titles: %r" % lines[0])
    row = [l for l in lines if l.startswith(key + " ")]
    check(len(row) == 1 and " waiting " in row[0] and "may pass from" in row[0]
          and "left)" in row[0], "the row of %s: %r" % (key, out))
    check(lines[0].index("STATE") == row[0].index("waiting"), "columns not aligned:\n%s" % out)
    # PATTERN: a substring or a shell pattern
    check(list(entries(c, "greylist", tag)) == [key], "substring PATTERN")
    check(list(entries(c, "greylist", "LIST-%s@*" % tag.upper())) == [key], "glob PATTERN")
    check(entries(c, "greylist", "nothing-matches-%s" % tag) == {}, "a PATTERN with no match")

    # pass: the next RCPT is accepted at once
    out = ctl_ok(c, "greylist", "pass", key.upper())     # case does not matter
    check("passed" in out and key in out, "pass says what it did: %r" % out)
    code, text = rcpt_try(c, sender, DEMO)
    check(code == 250, "RCPT after greylist pass: %r" % text)
    check(entries(c, "greylist")[key]["state"] == "passed", "the entry is passed")

    # delete: greylisted again
    ctl_ok(c, "greylist", "delete", key)
    check(key not in entries(c, "greylist"), "deleted, still listed")
    code, text = rcpt_try(c, sender, DEMO)
    check(code == 450 and "Greylisted" in text, "RCPT after greylist delete: %r" % text)
    ctl_ok(c, "greylist", "delete", key)
    p = c.ctl("greylist", "delete", key)
    check(p.returncode == 1 and key in p.stderr and "no such" in p.stderr,
          "deleting a triplet no router has: %s" % out_of(p))


@case(conf=GREY)
def test_greylist_clock(c):
    """The list follows the router's clock: waiting, then passed after
    the delay has gone by (the test clock, no sleeping)."""
    tag = "".join(ch for ch in unique() if ch.isalpha()) + "clk"
    sender = "clock-%s@client.example" % tag
    check(rcpt_try(c, sender, DEMO)[0] == 450, "first RCPT not greylisted")
    key = triplet_of(c, tag)
    out = ctl_ok(c, "greylist", "list", tag)
    check("(5m0s left)" in out or "(4m59s left)" in out, "5 minutes left: %r" % out)
    CLOCK.advance(301)
    out = ctl_ok(c, "greylist", "list", tag)
    check("may pass since" in out and "ago)" in out, "the delay is over: %r" % out)
    check(rcpt_try(c, sender, DEMO)[0] == 250, "retry after the delay")
    e = entries(c, "greylist", tag)[key]
    check(e["state"] == "passed" and e["until"] - e["last"] >= 29 * 86400,
          "passed for greylist_pass_lifetime: %r" % e)
    out = ctl_ok(c, "greylist", "list", tag)
    check("expires" in out and ("(30d0h left)" in out or "(29d23h left)" in out),
          "expiry in the human form: %r" % out)


@case(conf=GREY)
def test_greylist_delete_all(c):
    tags = ["".join(ch for ch in unique() if ch.isalpha()) + s for s in ("one", "two")]
    for t in tags:
        check(rcpt_try(c, "all-%s@client.example" % t, DEMO)[0] == 450, "not greylisted")
    out = ctl_ok(c, "greylist", "delete", "ALL")
    check(out.startswith("deleted ") and "triplet" in out, "delete ALL says how many: %r" % out)
    check(entries(c, "greylist") == {}, "entries left after delete ALL")
    out = ctl_ok(c, "greylist", "list")
    check(out.strip() == "no greylist entries", "the empty list: %r" % out)


# ---------------------------------------------------------------- intrusion
@case(conf=GREY)
def test_intrusion_block_unblock(c):
    ip = "127.0.0.23"
    check(greeting(c, ip)[0] == 220, "not blocked at first")
    out = ctl_ok(c, "intrusion", "block", ip)
    check("blocked %s until" % ip in out and "(4h0m left)" in out, "block output: %r" % out)
    try:
        g = greeting(c, ip)
        check(g is not None and g[0] == 421 and "(MANUAL)" in g[1], "after block: %r" % (g,))
        check(greeting(c, "127.0.0.1")[0] == 220, "another client is not blocked")
        e = entries(c, "intrusion")[ip]
        check(e["state"] == "blocked" and e["reason"] == "MANUAL"
              and e["until"] - e["first"] == 4 * 3600, "the listed block: %r" % e)
        out = ctl_ok(c, "intrusion", "list")
        row = [l for l in out.splitlines() if l.startswith(ip + " ")]
        check(len(row) == 1 and "blocked until " in row[0] and "left) reason=MANUAL" in row[0],
              "the human form of a block: %r" % out)
    finally:
        out = ctl_ok(c, "intrusion", "unblock", ip)
    check("unblocked %s" % ip in out, "unblock output: %r" % out)
    check(greeting(c, ip)[0] == 220, "still blocked after unblock")
    code, text = rcpt_try(c, "x@client.example", DEMO, src=ip)
    check(code in (250, 450), "RCPT after unblock: %r" % text)
    listed = entries(c, "intrusion")
    check(ip not in listed or listed[ip]["state"] != "blocked", "still listed as blocked")

    # an address no router knows: said plainly, exit 1
    p = c.ctl("intrusion", "unblock", "192.0.2.99")
    check(p.returncode == 1 and "192.0.2.99 is not blocked" in p.stderr, out_of(p))
    # IPv6 is kept by /64: any address of it names the block
    ctl_ok(c, "intrusion", "block", "2001:db8:1:2::5")
    check("2001:db8:1:2::/64" in entries(c, "intrusion"), "IPv6 block by /64")
    ctl_ok(c, "intrusion", "unblock", "[2001:db8:1:2::77]")
    check("2001:db8:1:2::/64" not in entries(c, "intrusion"), "IPv6 unblock by another address")


@case(conf=GREY)
def test_intrusion_unblock_all(c):
    ips = ["127.0.0.31", "127.0.0.32"]
    for ip in ips:
        ctl_ok(c, "intrusion", "block", ip)
    for ip in ips:
        check(greeting(c, ip)[0] == 421, "%s not blocked" % ip)
    out = ctl_ok(c, "intrusion", "unblock", "ALL")
    check(out.startswith("unblocked 2 addresses"), "unblock ALL: %r" % out)
    for ip in ips:
        check(greeting(c, ip)[0] == 220, "%s still blocked after unblock ALL" % ip)
    check(not [e for e in entries(c, "intrusion").values() if e["state"] == "blocked"],
          "blocked entries left")


# ---------------------------------------------------------------- limits
@case(conf=LIMITS, fresh=True)
def test_limits_list_reset(c):
    sender = "lim@client.example"
    for i in range(2):
        refused = c.send(sender, [DEMO], b"Subject: limit %d\r\n\r\nbody\r\n" % i)
        check(refused == {}, "message %d refused: %r" % (i, refused))
    with Raw(c.port) as r:
        r.expect(220)
        r.cmd("EHLO client.example")
        code, lines = r.cmd("MAIL FROM:<%s>" % sender)
    check(code == 450 and "daily sending limit" in lines[-1], "over the limit: %r" % lines)

    e = entries(c, "limits").get("user:" + sender)
    check(e and e["count"] == 2 and e["state"] == "counting", "the counter: %r" % e)
    out = ctl_ok(c, "limits", "list")
    row = [l for l in out.splitlines() if l.startswith("user:" + sender)]
    check(len(row) == 1 and "2 messages since" in row[0] and "resets" in row[0],
          "the human form of a counter: %r" % out)

    out = ctl_ok(c, "limits", "reset", "user:LIM@client.example")
    check("reset user:%s" % sender in out, "reset output: %r" % out)
    check(c.send(sender, [DEMO], b"Subject: after reset\r\n\r\nbody\r\n") == {},
          "refused after limits reset")
    p = c.ctl("limits", "reset", "user:nobody@client.example")
    check(p.returncode == 1 and "user:nobody@client.example" in p.stderr, out_of(p))


# ---------------------------------------------------------------- usage
@case(conf=GREY)
def test_bad_arguments(c):
    for args in (["greylist"], ["greylist", "frob"], ["greylist", "pass"],
                 ["greylist", "pass", "no-slash"], ["greylist", "pass", "a b/c"],
                 ["greylist", "list", "--bogus"], ["intrusion", "block", "1.2.3"],
                 ["intrusion", "block", "ALL"], ["intrusion", "unblock", "example.com"],
                 ["limits", "reset", "foo@bar"], ["limits", "reset", "user:"],
                 ["greylist", "pass", "a/" + "x" * 2000]):
        p = c.ctl(*args)
        check(p.returncode == 2 and "usage:" in p.stderr, "%r: %s" % (args, out_of(p)))
    p = c.ctl("help")
    for word in ("greylist list", "intrusion list", "limits list"):
        check(word in p.stdout, "help does not show %r" % word)


# ---------------------------------------------------------------- routers
@case(conf=GREY)
def test_dead_router(c):
    """A router that does not answer is named, the exit status is 1, and
    the live router's entries are still listed."""
    tag = "".join(ch for ch in unique() if ch.isalpha()) + "dead"
    check(rcpt_try(c, "dead-%s@client.example" % tag, DEMO)[0] == 450, "not greylisted")
    dead = "tcp://127.0.0.1:%d" % free_port()
    conf = conf_copy(c, policy_endpoints="ipc://%s/run/router-policy, %s" % (c.dir, dead))
    p = run_ctl(conf, "greylist", "list")
    check(p.returncode == 1 and "127.0.0.1:%s" % dead.rsplit(":", 1)[1] in p.stderr
          and "does not answer" in p.stderr, out_of(p))
    check(tag in p.stdout, "the live router's entries are not listed: %s" % out_of(p))
    p = run_ctl(conf, "greylist", "list", "--json")
    check(p.returncode == 1 and any(tag in e["key"] for e in json_lines(p.stdout)), out_of(p))
    # a key is changed only where it lives: those of the dead router fail
    results = {}
    for i in range(12):
        key = "owner-%s@client.example/%s" % ("abcdefghijkl"[i] * 3, DEMO)
        p = run_ctl(conf, "greylist", "pass", key)
        results[key] = p
        check(p.returncode == 0 or (p.returncode == 1 and dead in p.stderr), out_of(p))
    check(any(p.returncode == 1 for p in results.values())
          and any(p.returncode == 0 for p in results.values()),
          "12 keys should be spread over both routers: %r"
          % {k: p.returncode for k, p in results.items()})
    for key, p in results.items():
        if p.returncode == 0:
            ctl_ok(c, "greylist", "delete", key)
    # every router down: nothing listed, no "no entries" either
    p = run_ctl(conf_copy(c, policy_endpoints=dead), "intrusion", "list")
    check(p.returncode == 1 and p.stdout == "" and "does not answer" in p.stderr, out_of(p))


def start_router(tmp, endpoint):
    """A second correio-router with its own directories and policy
    endpoint; returns the Popen."""
    for sub in ("data", "run", "mail"):
        os.makedirs(os.path.join(tmp, sub), exist_ok=True)
    os.chmod(tmp, 0o755)
    with open(os.path.join(tmp, "correio.conf"), "w") as f:
        f.write("myhostname = router2.example.test\nmydestination = example.test\n"
                "data_directory = %s/data\nrun_directory = %s/run\nmail_root = %s/mail\n"
                "mail_owner = %s\nrouter_policy_endpoint = %s\ndns_servers = 127.0.0.1:1\n"
                % (tmp, tmp, tmp, MAIL_OWNER, endpoint))
    open(os.path.join(tmp, "users"), "w").close()
    if os.geteuid() == 0:
        pw = pwd.getpwnam(MAIL_OWNER)
        for sub in ("data", "run", "mail"):
            os.chown(os.path.join(tmp, sub), pw.pw_uid, pw.pw_gid)
    log = open(os.path.join(tmp, "log"), "ab")
    p = subprocess.Popen([os.path.join(BUILD, "bin", "correio-router"), "-c", tmp],
                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         start_new_session=True)
    log.close()
    return p


ROUTER2_PORT = free_port()
ROUTER2 = "tcp://127.0.0.1:%d" % ROUTER2_PORT


@case(conf=dict(GREY, intrusion_prevention="no",
                policy_endpoints="ipc://$run_directory/router-policy, " + ROUTER2),
      fresh=True)
def test_two_routers(c):
    """policy_endpoints names two routers: the ingress asks the owner of
    each triplet; `greylist pass` must land on that same router, so every
    passed triplet is accepted at RCPT; the list merges both routers."""
    tmp = tempfile.mkdtemp(prefix="router2-", dir=_tmp)
    r2 = start_router(tmp, ROUTER2)
    try:
        def up():
            check(r2.poll() is None, "the second router exited: %s"
                  % open(os.path.join(tmp, "log")).read()[-2000:])
            try:
                socket.create_connection(("127.0.0.1", ROUTER2_PORT), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for(up, 20, what="the second router listening")
        # the owners depend on the routers' (random) ports: with 24 triplets
        # the chance that one router gets them all is 2 in 2**24
        letters = "abcdefghijklmnopqrstuvwx"
        senders = ["two-%s@client.example" % (ch * 4) for ch in letters]
        for s in senders:
            # the ingress connects to the second router in the background:
            # 451 (no answer) until it has
            rep = wait_for(lambda: (lambda r: r if r[0] != 451 else None)(rcpt_try(c, s, DEMO)),
                           20, interval=0.2, what="an answer from both routers")
            check(rep[0] == 450, "%s not greylisted: %r" % (s, rep))
        listed = entries(c, "greylist")
        keys = ["%s/%s" % (s, DEMO) for s in senders]
        check(all(k in listed for k in keys), "not every triplet listed: %r" % sorted(listed))
        endpoints = {listed[k]["endpoint"] for k in keys}
        check(len(endpoints) == 2 and ROUTER2 in endpoints,
              "%d triplets should be on both routers: %r" % (len(keys), endpoints))
        for k in keys:
            ctl_ok(c, "greylist", "pass", k)
        for s in senders:
            code, text = rcpt_try(c, s, DEMO)
            check(code == 250, "%s after pass (its router: %s): %r"
                  % (s, listed["%s/%s" % (s, DEMO)]["endpoint"], text))
        out = ctl_ok(c, "greylist", "delete", "ALL")
        check(out.startswith("deleted %d triplets" % len(keys)),
              "delete ALL over two routers: %r" % out)
    finally:
        r2.terminate()
        try:
            r2.wait(10)
        except subprocess.TimeoutExpired:
            r2.kill()
            r2.wait(5)


if __name__ == "__main__":
    sys.exit(main(globals()))
