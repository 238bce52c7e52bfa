"""test_ctl.py - `correio`, the operator's command, as a person uses it:
config (all, -d, -n, NAME, check and its errors), run with a bad file,
user add/list, status (and after kill -9), queue list, map build/query,
stop, SIGHUP.

Prints PASS/FAIL/SKIP per case (see harness.py)."""

import os
import re
import shutil
import signal
import smtplib
import subprocess
import sys
import tempfile
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, MAIL_OWNER, REPO, SLOW, STAGES, TestFailure, case, check,  # noqa: E402
                     free_port, main, pids_with_cmdline, queue_id, simple_message, unique, wait_for)

DEMO = "demo@example.test"
SENDER = "sender@client.example"


# ---------------------------------------------------------------- the parameter table
def param_table():
    """[(name, type)] in table order, parsed from lib/config_params.c."""
    with open(os.path.join(REPO, "lib", "config_params.c")) as f:
        src = f.read()
    rows = re.findall(r'\{\s*"([A-Za-z0-9_]+)"\s*,\s*(PARAM_[A-Z]+)', src)
    if len(rows) < 10:
        raise TestFailure("could not parse lib/config_params.c (%d rows)" % len(rows))
    return rows


PARAMS = param_table()
PARAM_NAMES = [n for n, _ in PARAMS]


def run_ctl(confdir, *args, input=None, timeout=20):
    return subprocess.run([BIN, "-c", confdir] + list(args), input=input,
                          capture_output=True, timeout=timeout * SLOW, text=True)


def out_of(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


def lines_of(text):
    return [l for l in text.splitlines() if l.strip()]


class ConfDir:
    """A configuration directory of our own (not the running instance's):
    correio.conf from the given lines, a users file, a free SMTP port."""

    def __init__(self, lines):
        self.dir = tempfile.mkdtemp(prefix="correio-ctl-")
        os.chmod(self.dir, 0o755)
        self.port = free_port()
        self.path = os.path.join(self.dir, "correio.conf")
        with open(self.path, "w") as f:
            for l in lines:
                f.write(l.format(dir=self.dir, port=self.port, owner=MAIL_OWNER) + "\n")
        with open(os.path.join(self.dir, "users"), "w") as f:
            f.write("%s:{PLAIN}secret\n" % DEMO)
        os.chmod(os.path.join(self.dir, "users"), 0o644)

    def pids(self):
        """correio processes whose command line names this directory."""
        return pids_with_cmdline(lambda argv: os.path.basename(argv[0]).startswith("correio")
                                 and self.dir in " ".join(argv[1:]))

    def kill_all(self):
        for pid in self.pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def cleanup(self):
        self.kill_all()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


# A valid file: line 1 and 2 are fine, the bad value goes to line 3.
GOOD_HEAD = ["myhostname = mx.example.test",
             "# a comment on line 2"]
GOOD_TAIL = ["mydestination = example.test",
             "mynetworks = 127.0.0.0/8",
             "smtpd_listen = 127.0.0.1:{port}",
             "mail_root = {dir}/mail",
             "data_directory = {dir}/data",
             "run_directory = {dir}/run",
             "mail_owner = {owner}"]


def bad_conf(line3):
    # a later setting wins: leave out the tail's line for the same name
    name = line3.split("=", 1)[0].strip()
    return ConfDir(GOOD_HEAD + [line3] +
                   [l for l in GOOD_TAIL if l.split("=", 1)[0].strip() != name])


# ---------------------------------------------------------------- config
@case()
def test_config_prints_every_parameter(c):
    p = c.ctl("config")
    check(p.returncode == 0, "config: " + out_of(p))
    lines = lines_of(p.stdout)
    check(len(lines) == len(PARAMS), "config printed %d lines, the table has %d parameters"
          % (len(lines), len(PARAMS)))
    names = [l.split(" = ", 1)[0] for l in lines]
    check(names == PARAM_NAMES, "names differ from the table (order too): %r"
          % [n for n in names if n not in PARAM_NAMES][:5])
    values = dict(l.split(" = ", 1) if " = " in l else (l.rstrip(" ="), "") for l in lines)
    # effective values: the file's, and $name expanded in the defaults
    check(values["myhostname"] == "mx.example.test", "myhostname = %r" % values["myhostname"])
    check(values["smtpd_listen"] == "127.0.0.1:%d" % c.port, "smtpd_listen = %r" % values["smtpd_listen"])
    run = c.conf["run_directory"]
    check(values["classifier_endpoint"] == "ipc://%s/classifier" % run,
          "classifier_endpoint = %r" % values["classifier_endpoint"])
    check(values["smtpd_banner"] == "mx.example.test ESMTP correio",
          "smtpd_banner = %r" % values["smtpd_banner"])
    check(values["message_size_limit"] == "10240000", "message_size_limit = %r"
          % values["message_size_limit"])


@case()
def test_config_defaults_with_docs(c):
    p = c.ctl("config", "-d")
    check(p.returncode == 0, "config -d: " + out_of(p))
    lines = lines_of(p.stdout)
    check(len(lines) == len(PARAMS), "config -d printed %d lines, the table has %d"
          % (len(lines), len(PARAMS)))
    for name, line in zip(PARAM_NAMES, lines):
        check(line.startswith(name + " = "), "line %r is not for %s" % (line, name))
        m = re.search(r"\s#\s+(\S.*)$", line)
        check(m and len(m.group(1)) >= 10, "no '# doc' for %s: %r" % (name, line))
    d = dict((l.split(" = ", 1)[0], l) for l in lines)
    # defaults, not the file's values
    check(re.match(r"myhostname = \s*# ", d["myhostname"]),
          "config -d shows a value for myhostname, not its empty default: %r" % d["myhostname"])
    check(d["classifier_endpoint"].startswith("classifier_endpoint = ipc://$run_directory/classifier"),
          "default of classifier_endpoint: %r" % d["classifier_endpoint"])
    # -d needs no file: it works when the file is broken
    cd = bad_conf("message_size_limit = 10x")
    try:
        p = run_ctl(cd.dir, "config", "-d")
        check(p.returncode == 0 and len(lines_of(p.stdout)) == len(PARAMS),
              "config -d with a broken file: " + out_of(p))
    finally:
        cd.cleanup()


@case()
def test_config_n_prints_what_the_file_sets(c):
    p = c.ctl("config", "-n")
    check(p.returncode == 0, "config -n: " + out_of(p))
    got = {}
    for l in lines_of(p.stdout):
        check(" = " in l, "line without ' = ': %r" % l)
        k, v = l.split(" = ", 1)
        got[k] = v
    check(got == c.conf, "config -n differs from the file:\n got %r\nwant %r" % (got, c.conf))


@case()
def test_config_one_name(c):
    p = c.ctl("config", "message_size_limit")
    check(p.returncode == 0, "config message_size_limit: " + out_of(p))
    check(lines_of(p.stdout) == ["message_size_limit = 10240000"],
          "config message_size_limit printed %r" % p.stdout)
    p = c.ctl("config", "smtpd_listen", "myhostname")
    check(lines_of(p.stdout) == ["smtpd_listen = 127.0.0.1:%d" % c.port,
                                 "myhostname = mx.example.test"],
          "two names: %r" % p.stdout)
    p = c.ctl("config", "-d", "smtpd_timeout")
    ls = lines_of(p.stdout)
    check(p.returncode == 0 and len(ls) == 1 and ls[0].startswith("smtpd_timeout = 300s") and "#" in ls[0],
          "config -d smtpd_timeout: " + out_of(p))
    p = c.ctl("config", "no_such_parameter")
    check(p.returncode != 0 and "no_such_parameter" in p.stderr,
          "config no_such_parameter: " + out_of(p))


BAD_VALUES = [
    # (line 3, parameter named in the error, words the message must hold)
    ("message_size_limit = 10x", "message_size_limit", "10x"),
    ("smtpd_timeout = soon", "smtpd_timeout", "soon"),
    ("smtpd_recipient_limit = 0", "smtpd_recipient_limit", "out of range"),
    ("smtpd_recipient_limit = many", "smtpd_recipient_limit", "not an integer"),
    ("message_size_limit = 1", "message_size_limit", "out of range"),
    ("spam_required_score = lots", "spam_required_score", "not a number"),
    ("no_such_param = 1", "no_such_param", "unknown parameter"),
    ("smtpd_banner = $nonexistent ESMTP", "smtpd_banner", "nonexistent"),
]


@case()
def test_config_check_bad_values(c):
    for line3, param, words in BAD_VALUES:
        cd = bad_conf(line3)
        try:
            want = "%s:3: %s:" % (cd.path, param)
            for args in (("config", "check"), ("config",), ("config", "-n")):
                p = run_ctl(cd.dir, *args)
                both = p.stdout + p.stderr
                check(p.returncode != 0, "%r with %r: exit 0\n%s" % (args, line3, both))
                check(want in p.stderr, "%r with %r: no %r in stderr: %s"
                      % (args, line3, want, out_of(p)))
                check(words in p.stderr, "%r with %r: no %r in the message: %r"
                      % (args, line3, words, p.stderr))
                check("ok" not in p.stdout, "%r with %r said ok: %r" % (args, line3, p.stdout))
        finally:
            cd.cleanup()
    # and a good file is ok
    cd = bad_conf("message_size_limit = 10m")
    try:
        p = run_ctl(cd.dir, "config", "check")
        check(p.returncode == 0 and p.stdout.strip() == "%s: ok" % cd.path,
              "config check of a good file: " + out_of(p))
    finally:
        cd.cleanup()


def _bool_param():
    return next((n for n, t in PARAMS if t == "PARAM_BOOL"), None)


@case(skip=lambda: None if _bool_param() else "lib/config_params.c has no PARAM_BOOL parameter")
def test_config_check_bad_bool(c):
    name = _bool_param()
    cd = bad_conf("%s = maybe" % name)
    try:
        p = run_ctl(cd.dir, "config", "check")
        check(p.returncode != 0 and "%s:3: %s:" % (cd.path, name) in p.stderr,
              "bad bool: " + out_of(p))
    finally:
        cd.cleanup()


@case()
def test_config_check_bad_mynetworks(c):
    """mynetworks is a list of networks: a value that is not one is a
    configuration error like any other (file:line: mynetworks:)."""
    cd = bad_conf("mynetworks = 127.0.0.0/8, 10.0.0.0/33")
    try:
        p = run_ctl(cd.dir, "config", "check")
        want = "%s:3: mynetworks:" % cd.path
        check(p.returncode != 0 and want in p.stderr,
              "config check accepts mynetworks = 10.0.0.0/33 (want exit 1 and %r): %s"
              % (want, out_of(p)))
    finally:
        cd.cleanup()


def run_with_conf(cd, limit=15):
    """`correio run` on cd; (exit status or None if still running after
    limit seconds, output).  Always leaves nothing running."""
    log = os.path.join(cd.dir, "run.log")
    with open(log, "wb") as f:
        proc = subprocess.Popen([BIN, "-c", cd.dir, "run"], stdin=subprocess.DEVNULL,
                                stdout=f, stderr=f, start_new_session=True)
    try:
        rc = proc.wait(limit * SLOW)
    except subprocess.TimeoutExpired:
        rc = None
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20 * SLOW)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    cd.kill_all()
    with open(log, "rb") as f:
        return rc, f.read().decode("utf-8", "replace")


@case()
def test_run_refuses_bad_config(c):
    for line3, param, words in BAD_VALUES[:4]:
        cd = bad_conf(line3)
        try:
            t0 = time.monotonic()
            rc, out = run_with_conf(cd)
            check(rc is not None, "run with %r still running after %.0fs:\n%s"
                  % (line3, 15 * SLOW, out[-1500:]))
            check(rc != 0, "run with %r exited 0:\n%s" % (line3, out[-1500:]))
            check("%s:3: %s:" % (cd.path, param) in out,
                  "run with %r: no file:line: param in\n%s" % (line3, out[-1500:]))
            check("started as pid" not in out, "run with %r started stages:\n%s" % (line3, out[-1500:]))
            check(time.monotonic() - t0 < 10 * SLOW, "run took %.1fs to refuse" % (time.monotonic() - t0))
        finally:
            cd.cleanup()


@case()
def test_run_refuses_bad_mynetworks(c):
    """A bad network in mynetworks: `correio run` must refuse the file (exit
    non-zero, naming file:line: mynetworks) instead of restarting an
    ingress that cannot start, forever."""
    cd = bad_conf("mynetworks = 127.0.0.0/8, 10.0.0.0/33")
    try:
        rc, out = run_with_conf(cd, limit=10)
        restarts = out.count("stage ingress pid")
        check(rc is not None, "run with mynetworks = 10.0.0.0/33 still running after %.0fs; "
              "the ingress was restarted %d times (crash loop):\n%s"
              % (10 * SLOW, restarts, "\n".join(out.splitlines()[:12])))
        check(rc != 0, "run with a bad mynetworks exited 0:\n" + out[-1500:])
        check("mynetworks" in out and "10.0.0.0/33" in out, "no mention of mynetworks:\n" + out[-1500:])
    finally:
        cd.cleanup()


# ---------------------------------------------------------------- user
def rcpt_code(c, rcpt):
    with smtplib.SMTP("127.0.0.1", c.port, timeout=20 * SLOW) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        return s.rcpt(rcpt)[0]


def users_line(c, addr):
    with open(os.path.join(c.dir, "users")) as f:
        return next((l.rstrip("\n") for l in f if l.split(":", 1)[0] == addr), None)


def crypt_ok(password, stored):
    """True/False if Python's crypt can check it, None if it cannot."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import crypt
    except ImportError:
        return None
    h = stored.split("{CRYPT}", 1)[1]
    try:
        return crypt.crypt(password, h) == h
    except OSError:
        return None


@case()
def test_user_add_list_and_live_reload(c):
    new = "new-%d@example.test" % os.getpid()
    check(rcpt_code(c, new) == 550, "RCPT to %s accepted before it exists" % new)
    p = c.ctl("user", "add", new, input="s3cret pass\n")
    check(p.returncode == 0, "user add: " + out_of(p))
    line = users_line(c, new)
    check(line and re.match(r"^%s:\{CRYPT\}\$y\$[./0-9A-Za-z$]+$" % re.escape(new), line),
          "users file line for %s: %r" % (new, line))
    ok = crypt_ok("s3cret pass", line)
    check(ok is not False, "the stored hash does not match the password: %r" % line)
    # the running ingress sees it without a restart
    wait_for(lambda: rcpt_code(c, new) == 250, 10, interval=0.2,
             what="RCPT TO:<%s> accepted after user add" % new)
    m = unique("newuser")
    check(c.send(SENDER, [new], simple_message(m, to=new)) == {}, "refused")
    c.wait_for_message(new, m)

    p = c.ctl("user", "list")
    check(p.returncode == 0, "user list: " + out_of(p))
    listed = lines_of(p.stdout)
    check(new in listed, "user list does not list %s: %r" % (new, listed))
    for u in c.users:
        check(u in listed, "user list does not list %s: %r" % (u, listed))
    check(not any("{" in l or "$" in l for l in listed), "user list shows hashes: %r" % listed)

    # an empty password is refused and changes nothing
    with open(os.path.join(c.dir, "users")) as f:
        before = f.read()
    empty = "empty-%d@example.test" % os.getpid()
    for given in ("", "\n"):
        p = c.ctl("user", "add", empty, input=given)
        check(p.returncode != 0, "user add with password %r: exit 0" % given)
        check("password" in p.stderr, "no word about the password: " + out_of(p))
    with open(os.path.join(c.dir, "users")) as f:
        check(f.read() == before, "the users file changed after a refused user add")

    # --password-file; and a second add changes the password of the same user
    pwfile = os.path.join(c.dir, "pw")
    with open(pwfile, "w") as f:
        f.write("from a file\nsecond line ignored\n")
    p = c.ctl("user", "add", new, "--password-file", pwfile)
    check(p.returncode == 0, "user add --password-file: " + out_of(p))
    line2 = users_line(c, new)
    check(line2 and line2 != line and "{CRYPT}$y$" in line2, "after --password-file: %r" % line2)
    check(crypt_ok("from a file", line2) is not False, "hash does not match the file's first line")
    with open(os.path.join(c.dir, "users")) as f:
        check(sum(1 for l in f if l.startswith(new + ":")) == 1, "%s listed twice" % new)
    p = c.ctl("user", "add", new, "--password-file", os.path.join(c.dir, "missing"))
    check(p.returncode != 0, "user add with a missing password file: exit 0")


# ---------------------------------------------------------------- status
STATUS_LINE = re.compile(r"^(ingress|classifier|router|delivery|fetcher): up \(\1 \S+ pid=(\d+)\)$")


def status_pids(c):
    """{stage: pid} from a successful `correio status`, else None."""
    p = c.ctl("status")
    if p.returncode != 0:
        return None
    pids = {}
    for l in p.stdout.splitlines():
        m = STATUS_LINE.match(l.strip())
        if m:
            pids[m.group(1)] = int(m.group(2))
    return pids if set(pids) == set(STAGES) else None


@case(allow_restarts=True, timeout=120)
def test_status_and_restart_after_kill(c):
    p = c.ctl("status")
    check(p.returncode == 0, "status: " + out_of(p))
    check(("master: running as pid %d" % c.proc.pid) in p.stdout, "no master line: %r" % p.stdout)
    pids = status_pids(c)
    check(pids == c.stage_pids(), "status pids %r, processes %r" % (pids, c.stage_pids()))
    for stage in STAGES:
        old = c.stage_pid(stage)
        os.kill(old, signal.SIGKILL)
        got = wait_for(lambda: (lambda s: s if s and s[stage] != old else None)(status_pids(c)),
                       20, interval=0.1, what="status showing %s up again with a new pid" % stage)
        check(got[stage] == c.stage_pid(stage), "status says %s pid %d, process is %r"
              % (stage, got[stage], c.stage_pid(stage)))
        check("stage %s pid %d killed" % (stage, old) in c.log() or
              "stage %s pid %d " % (stage, old) in c.log(),
              "the supervisor did not log the death of %s pid %d" % (stage, old))
    m = unique("after-kills")
    check(c.send(SENDER, [DEMO], simple_message(m)) == {}, "refused after the restarts")
    c.wait_for_message(DEMO, m)


# ---------------------------------------------------------------- queue
# relayed through a next hop where nothing listens: deferred, not bounced
@case(conf={"minimal_backoff_time": "1h", "relayhost": "[127.0.0.1]:%d" % free_port()},
      fresh=True)
def test_queue_list_shows_deferred_relay(c):
    p = c.ctl("queue", "list")
    check(p.returncode == 0, "queue list: " + out_of(p))
    check(lines_of(p.stdout)[-1:] == ["-- 0 messages in the ingress spool, 0 in the delivery queue"],
          "empty queue list: %r" % p.stdout)
    remote = "someone@remote.example"
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        code, _ = s.rcpt(remote)
        check(code == 250, "relay from 127.0.0.1 (mynetworks) refused: %d" % code)
        code, text = s.data(simple_message("relay", to=remote))
        check(code == 250, "DATA: %d %r" % (code, text))
    qid = queue_id(text.decode())
    check(qid, "no queue id in %r" % text)

    # settled: delivery owns it (deferred) and the ingress has dropped its
    # spool entry after delivery's acknowledgement
    footer = "-- 0 messages in the ingress spool, 1 in the delivery queue"

    def listed():
        p = c.ctl("queue", "list")
        return p if (p.returncode == 0 and lines_of(p.stdout)[-1:] == [footer] and
                     re.search(r"^%s\s+deferred\b" % qid, p.stdout, re.M)) else None
    try:
        p = wait_for(listed, 20, interval=0.2, what="%s deferred in queue list" % qid)
    except TestFailure as e:
        raise TestFailure("%s; last queue list:\n%s" % (e, c.ctl("queue", "list").stdout))
    out = p.stdout
    row = next(l for l in out.splitlines() if l.startswith(qid))
    check(SENDER in row, "sender missing in %r" % row)
    size = len(simple_message("relay", to=remote))
    check(re.search(r"\b%d\b" % size, row), "size %d missing in %r" % (size, row))
    check(re.search(r"^\s+%s\s+deferred\b" % re.escape(remote), out, re.M),
          "recipient %s not listed as deferred:\n%s" % (remote, out))
    check(len(re.findall(r"^[0-9A-Z]{10,}\s", out, re.M)) == 1, "more than one entry:\n" + out)


# ---------------------------------------------------------------- map
@case()
def test_map_build_and_query(c):
    """`correio map build` (postmap) and `correio map query` (postmap -q)."""
    path = os.path.join(c.dir, "virtual")
    with open(path, "w") as f:
        f.write("# comment\nPostmaster@Example.test  demo@example.test\nbroken\n")
    p = c.ctl("map", "build", path)
    want = '%s:3: key "broken" has no value' % path
    check(p.returncode == 1 and want in p.stderr, "build of a bad file (want %r): %s" % (want, out_of(p)))
    check(not os.path.exists(path + ".lmdb"), "a bad file made %s.lmdb" % path)
    p = c.ctl("map", "query", path, "postmaster@example.test")
    check(p.returncode == 2 and "run correio map build " + path in p.stderr,
          "query before a build: " + out_of(p))
    with open(path, "w") as f:
        f.write("Postmaster@Example.test  demo@example.test\nalice@example.test  Alice@Example.test\n")
    p = c.ctl("map", "build", path)
    check(p.returncode == 0 and p.stdout == "" and p.stderr == "", "build: " + out_of(p))
    p = c.ctl("map", "query", "hash:" + path, "POSTMASTER@example.TEST")
    check(p.returncode == 0 and p.stdout == "demo@example.test\n", "query: " + out_of(p))
    p = c.ctl("map", "query", path, "alice@example.test")
    check(p.returncode == 0 and p.stdout == "Alice@Example.test\n", "query, bare path: " + out_of(p))
    p = c.ctl("map", "query", path, "nobody@example.test")
    check(p.returncode == 1 and p.stdout == "", "query of a missing key: " + out_of(p))
    pcre = os.path.join(c.dir, "checks")
    with open(pcre, "w") as f:
        f.write("/^(.+)@example\\.test$/  local $1\n")
    p = c.ctl("map", "query", "pcre:" + pcre, "Bob@EXAMPLE.test")
    check(p.returncode == 0 and p.stdout == "local Bob\n", "pcre query: " + out_of(p))
    p = c.ctl("map")
    check(p.returncode == 2 and "usage: correio [-c DIR] map build FILE..." in p.stderr,
          "map without a subcommand: " + out_of(p))


# ---------------------------------------------------------------- stop
@case(fresh=True, allow_restarts=True, timeout=120)
def test_stop(c):
    master = c.proc.pid
    stage_pids = [p for p in c.stage_pids().values() if p]
    pidfile = os.path.join(c.conf["run_directory"], "master.pid")
    check(os.path.exists(pidfile), "no %s while running" % pidfile)
    p = c.ctl("stop", timeout=40)
    check(p.returncode == 0, "stop: " + out_of(p))
    check(("master pid %d" % master) in p.stdout, "stop output: %r" % p.stdout)
    # `stop` returns once the master is gone
    try:
        rc = c.proc.wait(5 * SLOW)
    except subprocess.TimeoutExpired:
        raise TestFailure("the master is still running after correio stop returned")
    check(rc == 0, "the master exited with %d" % rc)
    left = c.all_pids()
    check(not left, "processes left after stop: %r" % left)
    pg = subprocess.run(["pgrep", "-f", c.dir], capture_output=True, text=True)
    check(pg.returncode == 1 and not pg.stdout.strip(), "pgrep -f DIR finds %r" % pg.stdout)
    for pid in stage_pids:
        check(not os.path.exists("/proc/%d" % pid) or
              open("/proc/%d/status" % pid).read().find("State:\tZ") >= 0,
              "stage pid %d still exists" % pid)
    if os.path.exists(pidfile):
        with open(pidfile) as f:
            txt = f.read().strip()
        check(not txt.isdigit() or not os.path.exists("/proc/%s" % txt),
              "master.pid names a live process %s" % txt)
    p = c.ctl("status")
    check(p.returncode != 0, "status after stop exits 0: %r" % p.stdout)
    p = c.ctl("stop")
    check(p.returncode != 0 and "not running" in p.stderr, "second stop: " + out_of(p))
    # and it starts again on the same directories
    c.start()
    m = unique("after-stop")
    check(c.send(SENDER, [DEMO], simple_message(m)) == {}, "refused after restart")
    c.wait_for_message(DEMO, m)


# ---------------------------------------------------------------- SIGHUP
def reloaded_by_all(c, pos, pids):
    log = c.log_since(pos)
    return all("correio/%s[%d]: configuration reloaded" % (n, pids[n]) in log for n in STAGES)


def banner(c):
    with c.raw() as r:
        rep = r.read_reply()
        check(rep is not None, "no banner (connection closed)")
        return rep


@case(fresh=True)
def test_sighup_reloads_every_stage(c):
    pids = c.stage_pids()
    check(banner(c)[1][0] == "220 mx.example.test ESMTP correio", "banner %r" % (banner(c),))
    with open(os.path.join(c.dir, "correio.conf"), "a") as f:
        f.write("smtpd_banner = $myhostname ESMTP reloaded\n")
    pos = c.log_size()
    os.kill(c.proc.pid, signal.SIGHUP)
    wait_for(lambda: reloaded_by_all(c, pos, pids), 15,
             what="'configuration reloaded' from all four stages; log:\n" + c.log_since(pos))
    check("reload: passing SIGHUP on to the stages" in c.log_since(pos), "no master line")
    check(c.stage_pids() == pids, "stages restarted on SIGHUP: %r -> %r" % (pids, c.stage_pids()))
    # the new value is in effect
    wait_for(lambda: banner(c)[1][0] == "220 mx.example.test ESMTP reloaded", 10,
             what="the new smtpd_banner")
    p = c.ctl("status")
    check(p.returncode == 0, "status after SIGHUP: " + out_of(p))
    m = unique("after-hup")
    check(c.send(SENDER, [DEMO], simple_message(m)) == {}, "refused after SIGHUP")
    c.wait_for_message(DEMO, m)


@case(fresh=True)
def test_sighup_with_bad_mynetworks_keeps_old_settings(c):
    """A reload whose mynetworks does not parse must keep the ingress's
    previous settings - and keep it serving, the old banner included."""
    pids = c.stage_pids()
    with open(os.path.join(c.dir, "correio.conf"), "a") as f:
        f.write("smtpd_banner = $myhostname ESMTP not-this-one\n"
                "mynetworks = 127.0.0.0/8, 10.0.0.0/33\n")
    pos = c.log_size()
    os.kill(c.proc.pid, signal.SIGHUP)
    def ingress_refused():
        return [line for line in c.log_since(pos).splitlines()
                if "correio/ingress[" in line
                and "reload failed, keeping the old configuration" in line]
    wait_for(ingress_refused, 15,
             what="the ingress refusing the new mynetworks; log:\n" + c.log_since(pos))
    line = ingress_refused()[0]
    check("mynetworks" in line and "10.0.0.0/33" in line,
          "the warning does not name the parameter and the bad network: %r" % line)
    with open(os.path.join(c.dir, "correio.conf")) as f:
        lineno = len(f.read().splitlines())
    check("correio.conf:%d: mynetworks:" % lineno in line,
          "the warning does not name file:line: %r" % line)
    for i in range(3):
        b = banner(c)
        check(b[0] == 220 and b[1][0] == "220 mx.example.test ESMTP correio",
              "banner after a refused reload: %r" % (b,))
    m = unique("after-bad-hup")
    check(c.send(SENDER, [DEMO], simple_message(m)) == {}, "refused after a refused reload")
    c.wait_for_message(DEMO, m)
    check(c.stage_pids() == pids, "stages restarted: %r -> %r" % (pids, c.stage_pids()))


if __name__ == "__main__":
    sys.exit(main(globals()))
