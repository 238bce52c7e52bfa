"""test_backup.py - `correio backup` and `correio restore`.

The round trip: a running correio with two messages in the deferred
queue (relayhost is a loopback port nobody listens on), an intrusion
block in the router's policy state, a spam blacklist entry and a
compiled map; `correio backup DIR` while it runs; restore refused while
it runs; stop, wipe data_directory, restore, start: the deferred
messages are queued again, the block and the list entry are back.
Restore refuses to overwrite state that holds records unless --force.
Retention deletes archives with backup_name's prefix older than
backup_retention days (by the date in the name, else the file's mtime)
and keeps everything else.  Bad input: not an archive, a tar without a
MANIFEST, bad arguments.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import json
import os
import pwd
import re
import shutil
import smtplib
import sys
import tarfile
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (MAIL_OWNER, SLOW, case, check, free_port,  # noqa: E402
                     main, queue_id, simple_message, unique, wait_for)

REMOTE = "someone@remote.example"      # relayed to DEAD_RELAY: deferred
SENDER = "sender@client.example"
DEAD_RELAY = "[127.0.0.1]:%d" % free_port()
CONF = {"relayhost": DEAD_RELAY,
        # a deferred recipient is not tried again during the test
        "minimal_backoff_time": "1h", "maximal_backoff_time": "2h"}
BLOCKED_IP = "192.0.2.77"


def out_of(p):
    return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout[-2000:], p.stderr[-2000:])


def ctl_ok(c, *args):
    p = c.ctl(*args)
    check(p.returncode == 0, "correio %s: %s" % (" ".join(args), out_of(p)))
    return p.stdout


def send(c, marker):
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        s.mail(SENDER)
        code, text = s.rcpt(REMOTE)
        check(code == 250, "RCPT TO:<%s>: %d %r" % (REMOTE, code, text))
        code, text = s.data(simple_message(marker, to=REMOTE))
        check(code == 250, "DATA: %d %r" % (code, text))
    qid = queue_id(text.decode())
    check(qid, "no queue id in %r" % text)
    return qid


def deferred(c, qid):
    """Is qid in the delivery queue as deferred?"""
    p = c.ctl("queue", "list")
    return p.returncode == 0 and re.search(r"^%s[*!]?\s+deferred\b" % qid, p.stdout, re.M)


def archives(d):
    return sorted(n for n in os.listdir(d) if n.endswith(".tar.gz"))


def backup_dir():
    d = tempfile.mkdtemp(prefix="correio-backups-")
    return d


# ---------------------------------------------------------------- round trip
@case(conf=CONF, fresh=True, allow_restarts=True, timeout=90)
def test_backup_restore_round_trip(c):
    qids = [send(c, unique("bk")) for _ in range(2)]
    for q in qids:
        wait_for(lambda: deferred(c, q), 20, interval=0.2, what="%s deferred" % q)
    ctl_ok(c, "intrusion", "block", BLOCKED_IP)
    spammer = "%s@bad.example" % unique("spammer")
    ctl_ok(c, "list", "add", "blacklist", "*", spammer)
    with open(os.path.join(c.dir, "virtual"), "w") as f:
        f.write("alias@example.test demo@example.test\n")
    ctl_ok(c, "map", "build", os.path.join(c.dir, "virtual"))

    bdir = backup_dir()
    try:
        out = ctl_ok(c, "backup", bdir)                     # hot, while running
        names = archives(bdir)
        check(len(names) == 1 and re.fullmatch(r"correio-\d{8}-\d{6}\.tar\.gz", names[0]),
              "one dated archive: %r" % os.listdir(bdir))
        check(not [n for n in os.listdir(bdir) if n.endswith(".tmp") or n.startswith(".")],
              "no temporary files left: %r" % os.listdir(bdir))
        arch = os.path.join(bdir, names[0])
        check(os.stat(arch).st_mode & 0o077 == 0, "the archive holds keys: mode 0600")
        check(arch in out, "backup names its archive: %r" % out)
        with tarfile.open(arch) as t:
            members = set(t.getnames())
            manifest = t.extractfile("MANIFEST").read().decode()
        for m in ("config/correio.conf", "config/users", "config/virtual",
                  "config/virtual.lmdb", "data/spool/data.mdb", "data/queue/data.mdb",
                  "data/router/policy/data.mdb", "data/lists/data.mdb"):
            check(m in members, "%s not in the archive: %r" % (m, sorted(members)))
        check(not [m for m in members if m.startswith(("config/data", "config/run",
                                                        "config/mail"))],
              "data, run or mail directories inside config/: %r" % sorted(members))
        check(not [m for m in members if m.endswith("lock.mdb")], "lock files archived")
        check(manifest.startswith("correio-backup 1\n") and "env queue\n" in manifest,
              "MANIFEST: %r" % manifest)

        p = c.ctl("restore", arch)
        check(p.returncode == 1 and "running" in p.stderr, "restore while running: " + out_of(p))

        c.stop()
        data = c.conf["data_directory"]
        shutil.rmtree(data)
        # the harness logs into the configuration directory: that file
        # differs from the archived one now and restore would refuse it
        os.unlink(c.logpath)
        p = c.ctl("restore", arch)
        check(p.returncode == 0, "restore: " + out_of(p))
        check("restored environment %s/queue" % data in p.stdout, "what was restored: %r" % p.stdout)
        owner = pwd.getpwnam(MAIL_OWNER).pw_uid
        for env in ("queue", "spool", "router/policy", "lists"):
            st = os.stat(os.path.join(data, env, "data.mdb"))
            check(st.st_uid == owner and st.st_mode & 0o077 == 0,
                  "%s/data.mdb: uid %d mode %o" % (env, st.st_uid, st.st_mode & 0o777))
        check(not [e for e in os.listdir(data) if e.startswith(".")], "staging left in data")

        # the state is there now: a second restore refuses, --force replaces
        p = c.ctl("restore", arch)
        check(p.returncode == 1 and "--force" in p.stderr and "records" in p.stderr,
              "restore over existing state: " + out_of(p))
        p = c.ctl("restore", arch, "--force")
        check(p.returncode == 0, "restore --force: " + out_of(p))

        c.start()
        for q in qids:
            wait_for(lambda: deferred(c, q), 20, interval=0.2,
                     what="%s deferred again after the restore" % q)
        rows = [json.loads(l) for l in ctl_ok(c, "intrusion", "list", "--json").splitlines()
                if l.strip()]
        check(any(r.get("key") == BLOCKED_IP and r.get("state") == "blocked" for r in rows),
              "the intrusion block after the restore: %r" % rows)
        shown = ctl_ok(c, "list", "show", "*")
        check(spammer in shown, "the blacklist entry after the restore: %r" % shown)
        p = c.ctl("map", "query", os.path.join(c.dir, "virtual"), "alias@example.test")
        check(p.returncode == 0 and "demo@example.test" in p.stdout, "the map: " + out_of(p))
    finally:
        shutil.rmtree(bdir, ignore_errors=True)


# ---------------------------------------------------------------- retention
@case(conf=dict(CONF, backup_retention="7"))
def test_retention_deletes_old_archives(c):
    bdir = backup_dir()
    try:
        old = time.time() - 30 * 86400
        recent = time.time() - 86400

        def fake(name, mtime):
            path = os.path.join(bdir, name)
            with open(path, "wb") as f:
                f.write(b"not really an archive\n")
            os.utime(path, (mtime, mtime))
            return path

        by_name = fake("correio-20200101-000000.tar.gz", time.time())   # old by its name
        by_mtime = fake("correio-copied.tar.gz", old)                   # old by mtime
        young = fake("correio-%s.tar.gz" % time.strftime("%Y%m%d-%H%M%S",
                                                         time.localtime(recent)), recent)
        other = fake("other-20200101-000000.tar.gz", old)               # not our prefix
        out = ctl_ok(c, "backup", bdir)
        left = set(os.listdir(bdir))
        check(os.path.basename(by_name) not in left and os.path.basename(by_mtime) not in left,
              "old archives kept: %r" % sorted(left))
        check(os.path.basename(young) in left and os.path.basename(other) in left,
              "recent or foreign archives deleted: %r" % sorted(left))
        check("removed old archive %s" % by_name in out, "backup says what it removed: %r" % out)
        check(len([n for n in left if n.startswith("correio-")]) == 2,
              "the new archive and the recent one: %r" % sorted(left))
    finally:
        shutil.rmtree(bdir, ignore_errors=True)


# ---------------------------------------------------------------- bad input
@case(conf=dict(CONF, backup_retention="7"))
def test_bad_input(c):
    d = tempfile.mkdtemp(prefix="correio-badbk-")
    try:
        junk = os.path.join(d, "junk.tar.gz")
        with open(junk, "wb") as f:
            f.write(b"\x1f\x8b this is not gzip at all")
        p = c.ctl("restore", junk)
        check(p.returncode == 1 and "not a correio backup" in p.stderr, "junk: " + out_of(p))

        # a real tar.gz that is not ours
        stray = os.path.join(d, "stray.tar.gz")
        with open(os.path.join(d, "hello"), "w") as f:
            f.write("hi\n")
        with tarfile.open(stray, "w:gz") as t:
            t.add(os.path.join(d, "hello"), arcname="config/hello")
        p = c.ctl("restore", stray)
        check(p.returncode == 1 and "not a correio backup" in p.stderr, "stray: " + out_of(p))

        p = c.ctl("restore", os.path.join(d, "missing.tar.gz"))
        check(p.returncode == 1 and "missing.tar.gz" in p.stderr, "missing: " + out_of(p))
        for args in (["restore"], ["restore", "a", "b"], ["restore", "--frob", junk],
                     ["backup", d, "more"], ["backup", "--frob"]):
            p = c.ctl(*args)
            check(p.returncode == 2 and "usage:" in p.stderr, "%r: %s" % (args, out_of(p)))
    finally:
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(globals()))
