"""test_classifier_rules.py - spam_rules_files end to end: the shipped
classifier/rules/default.cf loads at start and its rules show in
X-Spam-Status of the delivered copy; a local rules file added by SIGHUP
scores its own rule and overrides a built-in test's score (GTUBE); a bad
file on SIGHUP is refused with FILE:LINE in the log and the old rules stay.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (case, check, header_value, main, queue_id,  # noqa: E402
                     unique, wait_for)

DEMO = "demo@example.test"
SENDER = "sender@client.example"
DEFAULT_CF = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                          "..", "..", "classifier", "rules", "default.cf"))
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def send(c, marker, subject, body):
    s = c.smtp()
    try:
        s.mail(SENDER)
        code, _ = s.rcpt(DEMO)
        check(code == 250, "RCPT refused: %d" % code)
        data = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.example>\r\n"
                "Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n%s\r\n"
                % (SENDER, DEMO, subject, marker, body)).encode()
        code, text = s.data(data)
        check(code == 250, "DATA refused: %d %r" % (code, text))
    finally:
        s.quit()
    check(queue_id(text.decode("latin-1")), "no queue id in %r" % text)


def status(c, marker):
    data = c.wait_for_message(DEMO, marker)
    st = header_value(data, "X-Spam-Status")
    check(st, "no X-Spam-Status in %r" % data[:400])
    m = re.search(r"tests=(\S+)", st)
    # leave out the DNS tests (test_classifier_dns.py): with the DNS lab the
    # harness's EHLO client.example scores HELO_NO_MATCH, and SPF_* show
    dns = {"HELO_NO_MATCH": 0.5}
    tests = {t for t in m.group(1).split(",") if t not in dns and not t.startswith("SPF_")}
    off = sum(dns.get(t, 0) for t in m.group(1).split(","))
    st = re.sub(r"score=(-?[0-9.]+)", lambda x: "score=%.1f" % (float(x.group(1)) - off), st, 1)
    return tests or {"none"}, st


def hup_and_wait(c, want):
    pos = c.log_size()
    os.kill(c.proc.pid, signal.SIGHUP)
    wait_for(lambda: want in c.log_since(pos), 15,
             what="%r in the log:\n%s" % (want, c.log_since(pos)[-1500:]))


@case(conf={"spam_rules_files": DEFAULT_CF, "spam_folder": ""}, fresh=True)
def test_default_rules_and_reload(c):
    mk = unique("lottery")
    send(c, mk, "CONGRATULATIONS YOU HAVE WON!!!",
         "Dear Winner,\r\n\r\nYou have been selected as the lucky winner of our lottery "
         "prize of $1,500,000.00 USD!!! Click here to claim %s." % mk)
    tests, st = status(c, mk)
    for t in ("SUBJ_ALL_CAPS", "BODY_LOTTERY", "LOTTERY_SCAM"):
        check(t in tests, "%s not in %s" % (t, st))
    check(st.startswith("Yes"), "not spam: %r" % st)
    mk = unique("ham")
    send(c, mk, "Minutes of the meeting", "Hi all, the minutes are attached. Regards, Ann %s" % mk)
    tests, st = status(c, mk)
    check(st.startswith("No"), "ham called spam: %r" % st)

    # A local file after the default one: its rule and a GTUBE override.
    local = os.path.join(c.dir, "local.cf")
    with open(local, "w") as f:
        f.write("# local rules\nbody LOCAL_WORD /\\bzorblax\\b/i\nscore LOCAL_WORD 2.5\n"
                "score GTUBE 42\n")
    with open(os.path.join(c.dir, "correio.conf"), "a") as f:
        f.write("spam_rules_files = %s, local.cf\n" % DEFAULT_CF)
    hup_and_wait(c, "spam rules:")
    mk = unique("local")
    send(c, mk, "hello", "a zorblax here %s %s" % (GTUBE, mk))
    tests, st = status(c, mk)
    check({"LOCAL_WORD", "GTUBE"} <= tests, "LOCAL_WORD, GTUBE not in %r" % st)
    score = float(re.search(r"score=(-?[0-9.]+)", st).group(1))
    check(44.5 <= score < 100, "GTUBE not 42 + LOCAL_WORD 2.5 (+ default rules): %r" % st)

    # The local file turns bad: FILE:LINE in the log, the old rules stay.
    with open(local, "w") as f:
        f.write("body LOCAL_WORD /zorblax/\n\nbody BROKEN /(/\n")
    hup_and_wait(c, "spam_rules_files: %s:3: BROKEN: bad pattern /(/: missing closing "
                    "parenthesis at offset 1; keeping the previous rules" % local)
    mk = unique("kept")
    send(c, mk, "hello", "zorblax again %s" % mk)
    tests, st = status(c, mk)
    check("LOCAL_WORD" in tests, "old rules lost: %r" % st)
    check("score=2.5 " in st, "LOCAL_WORD not 2.5: %r" % st)


if __name__ == "__main__":
    sys.exit(main(globals()))
