"""test_spam_actions.py - spam actions by threshold end to end (issue 6,
items 4 and 5): a rules file gives each message a known score (rules of
1, 2, 4, 8 and 16 points matched by marker words), and the router's
actions follow spam_tag_score / spam_folder_score / spam_delete_score and
spam_action_maps per user and per domain: tag only (inbox, Subject
tagged by delivery), folder (.Junk, X-Spam-Flag), delete with one copy to
spam_archive_address, per-user and per-domain thresholds, the size bypass
(no scan, X-Spam-Status says so, no action) and outbound mail
(spam_outbound_scan skip / mark / scan with an authenticated client).
Every case checks the router's anti-spam log line: client, header From,
envelope sender, recipients with their actions, score, reasons, action.

mynetworks is a network no test client uses, so that mail from
127.0.0.1 is inbound unless the client authenticates.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, DEFAULT_USERS, SLOW, at_cleanup, case, check,  # noqa: E402
                     header_value, main, send_mail, unique, wait_for, wait_log)

# Delivery writes Recipient.subject_tag into Subject (lib/subject_tag.c);
# when that is not in the build, set this to False to check only what the
# router decided.
SUBJECT_TAG_BY_DELIVERY = True

DEMO = "demo@example.test"
ALICE = "alice@example.test"
BOSS = "boss@example.test"
ARCHIVE = "archive@example.test"
EVE = "eve@second.test"
USERS = DEFAULT_USERS + (BOSS, ARCHIVE, EVE)
HDR_FROM = "news@letters.example"
SENDER = "bounce-42@mailer.example"

_tmp = tempfile.mkdtemp(prefix="correio-spamact-")
os.chmod(_tmp, 0o755)
at_cleanup(lambda: shutil.rmtree(_tmp, ignore_errors=True))

RULES = os.path.join(_tmp, "points.cf")
with open(RULES, "w") as f:
    f.write("# one rule per power of two: a message's score is the sum of its words\n")
    for n, word in ((1, "one"), (2, "two"), (4, "four"), (8, "eight"), (16, "sixteen")):
        f.write("body PTS_%d /\\bzq%s\\b/\nscore PTS_%d %d\n" % (n, word, n, n))
    # the DNS tests must not move a score (no DNS lab needed)
    for t in ("HELO_NO_MATCH", "SPF_FAIL", "SPF_SOFTFAIL", "SPF_PERMERROR"):
        f.write("score %s 0\n" % t)
os.chmod(RULES, 0o644)

ACTIONS = os.path.join(_tmp, "spam_actions")
with open(ACTIONS, "w") as f:
    f.write("# the boss never loses mail to the filter\n"
            "boss@example.test   tag=off folder=off delete=off\n"
            "# second.test files spam early and never deletes\n"
            "@second.test        folder=2 delete=off\n")
os.chmod(ACTIONS, 0o644)
_built = None


def build_actions():
    """`correio map build` the actions table once (the router needs it at
    start); returns the reason it failed, or None."""
    global _built
    if _built is None:
        r = subprocess.run([BIN, "map", "build", ACTIONS], capture_output=True, text=True,
                           timeout=30 * SLOW)
        _built = "" if r.returncode == 0 else "correio map build: %s" % (r.stderr or r.stdout)
        if not _built:
            os.chmod(ACTIONS + ".lmdb", 0o644)
    return _built or None


WORDS = {1: "zqone", 2: "zqtwo", 4: "zqfour", 8: "zqeight", 16: "zqsixteen"}


def words(points):
    return " ".join(w for n, w in sorted(WORDS.items()) if points & n)


BASE = dict(mynetworks="192.0.2.0/24", smtpd_tls_auth_only="no",
            spam_rules_files=RULES, spam_whitelist_authenticated="no",
            virtual_mailbox_domains="second.test")
CONF = dict(BASE, spam_tag_score="3", spam_folder_score="6", spam_delete_score="12",
            spam_archive_address=ARCHIVE, spam_action_maps="hash:" + ACTIONS,
            spam_scan_size_limit="20k")


def message(marker, points, to=DEMO, pad=0, subject="offer"):
    body = "Hello, %s. marker %s\r\n" % (words(points), marker)
    if pad:
        body += ("x" * 70 + "\r\n") * (pad // 72 + 1)
    return ("From: \"News\" <%s>\r\nTo: <%s>\r\nSubject: %s %s\r\n"
            "Message-ID: <%s@mailer.example>\r\n\r\n%s"
            % (HDR_FROM, to, subject, marker, marker, body)).encode()


def send(c, rcpts, msg, sender=SENDER, login=None):
    """One message (AUTH PLAIN as login when given); its queue id."""
    return send_mail(c, sender, rcpts, msg, login=login)


def copies(c, addr, marker):
    """[(folder, bytes)] of the delivered copies with marker: "inbox" or
    "Junk"."""
    return [(folder or "inbox", data) for folder, data in c.maildir_copies(addr, marker)]


def wait_copy(c, addr, marker, timeout=20):
    return wait_for(lambda: copies(c, addr, marker), timeout,
                    what="%s's copy of %s" % (addr, marker))[0]


def spam_line(c, qid, since=0):
    """The router's anti-spam line of qid, as a match."""
    return wait_log(c, r"%s: spam: client=(?P<client>\S+) from=<(?P<from>[^>]*)> "
                       r"sender=<(?P<sender>[^>]*)> to=(?P<to>\S+) "
                       r"score=(?P<score>-?[0-9.]+)/(?P<required>[0-9.]+) "
                       r"reasons=(?P<reasons>\S+) action=(?P<action>\w+)(?P<rest>.*)"
                    % qid, since=since, what="the anti-spam line of %s" % qid)


def check_subject(data, tagged, marker):
    if not SUBJECT_TAG_BY_DELIVERY:
        return
    subj = header_value(data, "Subject") or ""
    want = ("[SPAM] " if tagged else "") + "offer " + marker
    check(subj == want, "Subject %r, want %r" % (subj, want))


# ---------------------------------------------------------------- inbound
@case(conf=CONF, users=USERS, skip=build_actions)
def test_tag_only(c):
    """4 points: at spam_tag_score (3), below the folder (6) and below
    spam_required_score (5): the inbox, Subject tagged, no X-Spam-Flag."""
    m = unique("tag")
    pos = c.log_size()
    qid = send(c, [DEMO], message(m, 4))
    folder, data = wait_copy(c, DEMO, m)
    check(folder == "inbox", "tagged copy went to %s" % folder)
    check(header_value(data, "X-Spam-Flag") is None, "X-Spam-Flag on a message under 5")
    check((header_value(data, "X-Spam-Status") or "").startswith("No, score=4.0"),
          "X-Spam-Status %r" % header_value(data, "X-Spam-Status"))
    line = spam_line(c, qid, pos)
    check(line.group("to") == "<%s>:tag" % DEMO, "to=%s" % line.group("to"))
    check(line.group("action") == "tag", "action=%s" % line.group("action"))
    check_subject(data, True, m)


@case(conf=CONF, users=USERS, skip=build_actions)
def test_folder_and_log_line(c):
    """8 points: the spam folder (.Junk/new), not the inbox; X-Spam-Flag,
    X-Spam-Score, X-Spam-Status with the hits; the anti-spam line with the
    client, header From, envelope sender, score, reasons and action."""
    m = unique("folder")
    pos = c.log_size()
    qid = send(c, [DEMO], message(m, 8))
    folder, data = wait_copy(c, DEMO, m)
    check(folder == "Junk", "spam copy went to %s" % folder)
    junk_new = os.path.join(c.maildir(DEMO), ".Junk", "new")
    check(any(m.encode() in open(os.path.join(junk_new, n), "rb").read()
              for n in os.listdir(junk_new)), "not in .Junk/new")
    check(len(copies(c, DEMO, m)) == 1, "more than one copy: %r"
          % [f for f, _ in copies(c, DEMO, m)])
    check(header_value(data, "X-Spam-Flag") == "YES", "no X-Spam-Flag: YES")
    check(header_value(data, "X-Spam-Score") == "8.0", "X-Spam-Score %r"
          % header_value(data, "X-Spam-Score"))
    st = header_value(data, "X-Spam-Status") or ""
    check(st.startswith("Yes, score=8.0 required=5.0 tests=") and "PTS_8" in st,
          "X-Spam-Status %r" % st)
    check_subject(data, True, m)
    line = spam_line(c, qid, pos)
    check(line.group("client") == "127.0.0.1", "client=%s" % line.group("client"))
    check(line.group("from") == HDR_FROM, "from=<%s>" % line.group("from"))
    check(line.group("sender") == SENDER, "sender=<%s>" % line.group("sender"))
    check(line.group("to") == "<%s>:folder" % DEMO, "to=%s" % line.group("to"))
    check(float(line.group("score")) == 8.0 and line.group("required") == "5.00",
          "score=%s/%s" % (line.group("score"), line.group("required")))
    check(line.group("reasons").startswith("[Rules=8.00"), "reasons=%s" % line.group("reasons"))
    check(line.group("action") == "folder", "action=%s" % line.group("action"))
    check("bypass=" not in line.group("rest") and "outbound" not in line.group("rest"),
          "extra fields: %r" % line.group("rest"))


@case(conf=CONF, users=USERS, skip=build_actions)
def test_delete_with_archive(c):
    """16 points, two recipients: both copies discarded ("spam score ... >=
    delete score 12.00"), the archive account gets exactly one copy."""
    m = unique("delete")
    pos = c.log_size()
    qid = send(c, [DEMO, ALICE], message(m, 16))
    for rcpt in (DEMO, ALICE):
        wait_log(c, r"%s: to=<%s>, route=discard text=spam score 16\.00 >= delete score "
                    r"12\.00 rule=spam_action" % (qid, re.escape(rcpt)), since=pos)
    wait_copy(c, ARCHIVE, m)
    line = spam_line(c, qid, pos)
    check(line.group("to") == "<%s>:delete,<%s>:delete,<%s>:archive" % (DEMO, ALICE, ARCHIVE),
          "to=%s" % line.group("to"))
    check(line.group("action") == "delete", "action=%s" % line.group("action"))
    # the one envelope carried the archive copy: once it is there, the
    # discarded copies are settled too; and a later message arrives after
    # anything this one could still have produced
    m2 = unique("after")
    send(c, [DEMO, ALICE, ARCHIVE], message(m2, 0))
    for rcpt in (DEMO, ALICE, ARCHIVE):
        wait_copy(c, rcpt, m2)
    check(not copies(c, DEMO, m) and not copies(c, ALICE, m), "a deleted copy was delivered")
    check(len(copies(c, ARCHIVE, m)) == 1, "archive copies: %d" % len(copies(c, ARCHIVE, m)))


@case(conf=CONF, users=USERS, skip=build_actions)
def test_per_user_and_domain_thresholds(c):
    """spam_action_maps: boss@example.test has tag and folder off (4
    points: nothing, while demo is tagged); @second.test files at 2 (4
    points: eve's copy in Junk); boss's delete=off keeps a 16-point copy
    that demo loses."""
    m = unique("maps")
    pos = c.log_size()
    qid = send(c, [DEMO, BOSS, EVE], message(m, 4))
    line = spam_line(c, qid, pos)
    check(line.group("to") == "<%s>:tag,<%s>:none,<%s>:folder" % (DEMO, BOSS, EVE),
          "to=%s" % line.group("to"))
    check(line.group("action") == "folder", "action=%s" % line.group("action"))
    folder, data = wait_copy(c, EVE, m)
    check(folder == "Junk", "eve's copy in %s" % folder)
    folder, data = wait_copy(c, BOSS, m)
    check(folder == "inbox", "boss's copy in %s" % folder)
    check_subject(data, False, m)
    folder, data = wait_copy(c, DEMO, m)
    check(folder == "inbox", "demo's copy in %s" % folder)
    check_subject(data, True, m)

    m = unique("maps16")
    pos = c.log_size()
    qid = send(c, [DEMO, BOSS], message(m, 16))
    line = spam_line(c, qid, pos)
    # boss: tag, folder and delete off, quarantine never (server default)
    check(line.group("to") == "<%s>:delete,<%s>:none,<%s>:archive" % (DEMO, BOSS, ARCHIVE),
          "to=%s" % line.group("to"))
    wait_copy(c, BOSS, m)
    wait_copy(c, ARCHIVE, m)


@case(conf=CONF, users=USERS, skip=build_actions)
def test_size_bypass(c):
    """Larger than spam_scan_size_limit (20k): not scanned, X-Spam-Status
    says bypass=size, no action although its words are worth 16."""
    m = unique("big")
    pos = c.log_size()
    qid = send(c, [DEMO], message(m, 16, pad=30000))
    folder, data = wait_copy(c, DEMO, m)
    st = header_value(data, "X-Spam-Status") or ""
    check(st == "No, score=0.0 required=5.0 tests=none bypass=size", "X-Spam-Status %r" % st)
    check(folder == "inbox", "bypassed copy in %s" % folder)
    check(header_value(data, "X-Spam-Flag") is None, "X-Spam-Flag on a bypassed message")
    check_subject(data, False, m)
    line = spam_line(c, qid, pos)
    check(line.group("action") == "none" and line.group("to") == "<%s>:none" % DEMO,
          "to=%s action=%s" % (line.group("to"), line.group("action")))
    check(line.group("rest").strip() == "bypass=size", "rest %r" % line.group("rest"))
    check(line.group("reasons") == "[]", "reasons=%s" % line.group("reasons"))
    wait_log(c, r"%s: classified score=0\.0 spam=no tests=none bypass=size" % qid, since=pos)


# ---------------------------------------------------------------- outbound
def outbound(c, mode):
    """demo logs in and writes 8 points to alice; returns (folder, data,
    anti-spam line)."""
    m = unique("out-" + mode)
    pos = c.log_size()
    qid = send(c, [ALICE], message(m, 8, to=ALICE), sender=DEMO, login=DEMO)
    folder, data = wait_copy(c, ALICE, m)
    return folder, data, spam_line(c, qid, pos), m


@case(conf=dict(BASE, spam_outbound_scan="skip"), users=USERS)
def test_outbound_skip(c):
    folder, data, line, m = outbound(c, "skip")
    st = header_value(data, "X-Spam-Status") or ""
    check(st == "No, score=0.0 required=5.0 tests=none bypass=outbound", "X-Spam-Status %r" % st)
    check(folder == "inbox", "copy in %s" % folder)
    check(line.group("action") == "none", "action=%s" % line.group("action"))
    check(line.group("rest").split() == ["bypass=outbound", "outbound=yes"],
          "rest %r" % line.group("rest"))
    check(line.group("sender") == DEMO, "sender=%s" % line.group("sender"))


@case(conf=dict(BASE, spam_outbound_scan="mark"), users=USERS)
def test_outbound_mark(c):
    """Scanned and marked (headers), never acted on."""
    folder, data, line, m = outbound(c, "mark")
    st = header_value(data, "X-Spam-Status") or ""
    check(st.startswith("Yes, score=8.0") and "bypass" not in st, "X-Spam-Status %r" % st)
    check(header_value(data, "X-Spam-Flag") == "YES", "no X-Spam-Flag")
    check(line.group("action") == "none" and line.group("to") == "<%s>:none" % ALICE,
          "to=%s action=%s" % (line.group("to"), line.group("action")))
    check(line.group("rest").split() == ["outbound=yes"], "rest %r" % line.group("rest"))
    check_subject(data, False, m)


@case(conf=dict(BASE, spam_outbound_scan="scan"), users=USERS)
def test_outbound_scan(c):
    """Scanned and acted on like inbound mail (server defaults: folder)."""
    folder, data, line, m = outbound(c, "scan")
    check(folder == "Junk", "copy in %s" % folder)
    check(line.group("action") == "folder" and line.group("to") == "<%s>:folder" % ALICE,
          "to=%s action=%s" % (line.group("to"), line.group("action")))
    check(line.group("rest").split() == ["outbound=yes"], "rest %r" % line.group("rest"))
    check_subject(data, True, m)


if __name__ == "__main__":
    sys.exit(main(globals()))
