"""test_debug_stages.py - looking inside a running pipeline (issue 9,
stage debugging): `correio tap STAGE` prints what a stage sends on
without disturbing it; `correio inject STAGE FILE` feeds one stage (an
.eml, an envelope text, or an envelope `tap --raw` saved) and prints the
ack delivery sends back; a stage runs alone in the foreground with -v and
traces each message.

Prints PASS/FAIL/SKIP per case (see harness.py)."""

import glob
import os
import pwd
import re
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, BUILD, MAIL_OWNER, SLOW, Correio, case, check, main,  # noqa: E402
                     simple_message, unique, wait_for)

DEMO = "demo@example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@client.example"
QID = r"[0-9A-Z]{17}"


class Tap:
    """`correio tap ARGS...` in the background; its stdout lines are
    collected by a thread so the test can wait for them."""

    def __init__(self, c, *args):
        self.lines = []
        self.proc = subprocess.Popen([BIN, "-c", c.dir, "tap"] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def text(self):
        return "\n".join(self.lines)

    def wait_connected(self):
        wait_for(lambda: any(l.startswith("# tapping") for l in self.lines) or
                 self.proc.poll() is not None, 15, what="the tap to connect")
        if self.proc.poll() is not None:
            check(False, "tap exited: %s" % self.proc.stderr.read())

    def finish(self, timeout=30):
        """Wait for the tap to exit; its exit status."""
        try:
            rc = self.proc.wait(timeout * SLOW)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            rc = None
        self.reader.join(5)
        self.err = self.proc.stderr.read()
        self.proc.stderr.close()
        return rc


def write(c, name, data):
    path = os.path.join(c.dir, name)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())
    return path


def eml(marker, to=ALICE):
    # LF line ends on purpose: inject makes them CRLF
    return "From: <x@client.example>\nTo: <%s>\nSubject: injected %s\n\nbody %s\n" % (
        to, marker, marker)


def delivered_log(c, qid):
    return re.search(r"%s: to=<[^>]+>, relay=maildir.*status=sent" % qid, c.log())


@case()
def test_tap_classifier_shows_without_disturbing(c):
    tap = Tap(c, "classifier", "--count", "3", "--timeout", "60")
    tap.wait_connected()
    before = len(c.maildir_files(DEMO))
    markers = [unique("tap") for _ in range(3)]
    for m in markers:
        c.send(SENDER, [DEMO], simple_message(m))
    rc = tap.finish(60)
    out = tap.text()
    check(rc == 0, "tap exit %s, stderr %s, stdout:\n%s" % (rc, tap.err, out))
    qids = re.findall(r"classifier envelope (%s) from=<%s>" % (QID, re.escape(SENDER)), out)
    check(len(qids) == 3, "3 envelopes expected in the tap output:\n" + out)
    check(len(re.findall(r"verdict score=-?\d+\.\d/\d+\.\d spam=(yes|no)", out)) == 3,
          "a verdict line per envelope:\n" + out)
    for m in markers:
        check("<%s@client.example>" % m in out, "header summary names %s:\n%s" % (m, out))
    # the tap did not disturb: every message reached the Maildir
    c.wait_for_maildir_count(DEMO, before + 3)
    for m in markers:
        c.wait_for_message(DEMO, m)
    for q in qids:
        check(re.search(r"%s: classified score=" % q, c.log()), "classifier logged " + q)
        wait_for(lambda: delivered_log(c, q), 20, what="delivery of " + q)


@case()
def test_inject_router_eml_is_delivered(c):
    marker = unique("inj-router")
    path = write(c, "router.eml", eml(marker))
    r = c.ctl("inject", "router", path, "--from", "x@client.example", "--to", ALICE)
    check(r.returncode == 0, "inject: %s %s" % (r.stdout, r.stderr))
    m = re.search(r"(%s): ack EVENT_OWNED from delivery .*delivery owns it" % QID, r.stdout)
    check(m, "the ack is printed: " + r.stdout)
    msg = c.wait_for_message(ALICE, marker)
    check(b"\r\n" in msg or b"\n" in msg, "delivered")
    check(re.search(r"%s: to=<%s>, route=maildir" % (m.group(1), ALICE), c.log()),
          "the router routed the injected envelope")


@case()
def test_inject_classifier_is_scored_and_delivered(c):
    marker = unique("inj-cls")
    path = write(c, "cls.eml", eml(marker, BOB))
    r = c.ctl("inject", "classifier", path, "--to", BOB)
    check(r.returncode == 0, "inject: %s %s" % (r.stdout, r.stderr))
    qid = re.search(r"(%s): ack EVENT_OWNED" % QID, r.stdout).group(1)
    msg = c.wait_for_message(BOB, marker)
    check(re.search(r"%s: classified score=" % qid, c.log()), "scored by the classifier")
    check(b"X-Spam-Status:" in msg, "the classifier's header is in the delivered copy")


@case()
def test_tap_raw_envelope_and_text_into_delivery(c):
    """tap --raw saves what the router sends; inject puts that file (and an
    envelope text) straight into delivery."""
    raw = tempfile.mkdtemp(prefix="tapraw-", dir=c.dir)
    tap = Tap(c, "router", "--count", "1", "--raw", raw, "--timeout", "60")
    tap.wait_connected()
    marker = unique("raw")
    c.send(SENDER, [DEMO], simple_message(marker))
    check(tap.finish(60) == 0, "tap: %s\n%s" % (tap.err, tap.text()))
    check("route=MAILDIR mailbox=example.test/demo" in tap.text(), "route shown:\n" + tap.text())
    files = glob.glob(os.path.join(raw, "*.envelope"))
    check(len(files) == 1, "one saved envelope: %s" % os.listdir(raw))
    c.wait_for_message(DEMO, marker)
    before = len([m for m in c.maildir_messages(DEMO) if marker.encode() in m])

    r = c.ctl("inject", "delivery", files[0])
    check(r.returncode == 0, "inject raw: %s %s" % (r.stdout, r.stderr))
    check("delivery owns it" in r.stdout, r.stdout)
    wait_for(lambda: len([m for m in c.maildir_messages(DEMO) if marker.encode() in m]) > before,
             20, what="the re-injected copy")

    marker2 = unique("text")
    text = ("correio-envelope 1\nfrom: <a@client.example>\n"
            "to: %s route=maildir mailbox=example.test/bob\n\n%s" % (BOB, eml(marker2, BOB)))
    r = c.ctl("inject", "delivery", write(c, "env.txt", text))
    check(r.returncode == 0, "inject text: %s %s" % (r.stdout, r.stderr))
    c.wait_for_message(BOB, marker2)


@case()
def test_inject_bad_input_is_a_clear_error(c):
    garbage = write(c, "garbage.bin", bytes(range(256)) * 3)
    r = c.ctl("inject", "router", garbage, "--to", ALICE)
    check(r.returncode == 1 and "not a message" in r.stderr and "correio-envelope 1" in r.stderr,
          "garbage: %d %s" % (r.returncode, r.stderr))
    r = c.ctl("inject", "router", write(c, "noto.eml", eml("x")))
    check(r.returncode == 1 and "no recipient" in r.stderr, "no --to: " + r.stderr)
    r = c.ctl("inject", "delivery", write(c, "unrouted.eml", eml("y")), "--to", ALICE)
    check(r.returncode == 1 and "has no route" in r.stderr, "unrouted: " + r.stderr)
    bad = write(c, "bad.txt", "correio-envelope 1\nto: a@b route=teleport\n\nSubject: x\n\nx\n")
    r = c.ctl("inject", "router", bad)
    check(r.returncode == 1 and "line 2" in r.stderr and "route=teleport" in r.stderr,
          "bad text: " + r.stderr)
    r = c.ctl("inject", "nowhere", garbage)
    check(r.returncode == 2 and "usage:" in r.stderr, "bad stage: " + r.stderr)
    r = c.ctl("tap", "nowhere")
    check(r.returncode == 2, "tap bad stage: " + r.stderr)
    r = c.ctl("inject", "router", os.path.join(c.dir, "missing.eml"), "--to", ALICE)
    check(r.returncode == 1 and "No such file" in r.stderr, "missing: " + r.stderr)


@case()
def test_stage_alone_in_the_foreground_traces(c):
    """correio-delivery -c DIR -v, alone (no supervisor, no other stage):
    an injected envelope is traced in and out, acked and delivered."""
    solo = Correio()
    try:
        pw = pwd.getpwnam(MAIL_OWNER)
        for d in ("data", "run", "mail"):
            path = os.path.join(solo.dir, d)
            os.makedirs(path, exist_ok=True)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        logpath = os.path.join(solo.dir, "stderr")
        with open(logpath, "w") as log:
            p = subprocess.Popen([os.path.join(BUILD, "bin", "correio-delivery"), "-c", solo.dir,
                                  "-v"], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        try:
            wait_for(lambda: os.path.exists(os.path.join(solo.dir, "run", "delivery")) or
                     p.poll() is not None, 15, what="delivery to bind")
            check(p.poll() is None, "delivery exited: " + open(logpath).read())
            marker = unique("solo")
            text = ("correio-envelope 1\nfrom: <a@client.example>\n"
                    "to: %s route=maildir mailbox=example.test/bob\n\n%s" % (BOB, eml(marker, BOB)))
            r = solo.ctl("inject", "delivery", write(solo, "env.txt", text))
            check(r.returncode == 0, "inject: %s %s" % (r.stdout, r.stderr))
            qid = re.search(r"(%s): ack EVENT_OWNED" % QID, r.stdout).group(1)
            solo.wait_for_message(BOB, marker)
            wait_for(lambda: re.search(r"%s: to=<%s>.*status=sent" % (qid, BOB), open(logpath).read()),
                     10, what="the delivery line")
            trace = open(logpath).read()
            check(re.search(r"%s: in: from=<a@client.example> nrcpt=1" % qid, trace),
                  "the -v entry line:\n" + trace)
            check(re.search(r"%s: out: event=EVENT_OWNED" % qid, trace), "the -v exit line:\n" + trace)
        finally:
            p.terminate()
            try:
                p.wait(10 * SLOW)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)
    finally:
        solo.cleanup()


if __name__ == "__main__":
    sys.exit(main(globals()))
