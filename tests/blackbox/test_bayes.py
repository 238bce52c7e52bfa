"""test_bayes.py - the Bayesian filter end to end: `correio bayes train`
on a directory, a Maildir and a single file the test writes (learning
twice counts once, learning as the other class moves), `correio bayes
show`; with spam_bayes = yes a spammy message gets BAYES_99 and a hammy
one BAYES_00 in X-Spam-Status; spam_bayes = no: no BAYES_ hit; no
database: the classifier keeps running, logs it once, no hit.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import os
import pwd
import random
import re
import shutil
import smtplib
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (MAIL_OWNER, SLOW, at_cleanup, case, check, header_value,  # noqa: E402
                     main, queue_id, unique, wait_for)

DEMO = "demo@example.test"
N_TRAIN = 40                 # per class; spam_bayes_min_learned below is 30

HAM_WORDS = ("meeting agenda invoice project schedule quarterly report minutes budget review "
             "deadline colleagues attached draft conference team payment accounting proposal "
             "calendar office thanks regards tuesday").split()
SPAM_WORDS = ("pills lottery viagra winner casino prize cheap pharmacy jackpot bonus claim "
              "unclaimed guaranteed discount miracle millions urgent congratulations offer "
              "pharma weightloss refund bitcoin").split()
NEUTRAL = ("the and you your with this that have will from please about today more "
           "information here there would could should").split()


def make_msg(spam, n, rnd, marker=None):
    words = SPAM_WORDS if spam else HAM_WORDS
    body = []
    for k in range(60):
        body.append(rnd.choice(words) if rnd.random() < 0.35 else rnd.choice(NEUTRAL))
        if k % 12 == 11:
            body.append("\r\n")
    return ("From: <%s%d@%s>\r\nTo: <%s>\r\nSubject: %s %s\r\n"
            "Message-ID: <%s-%d-%d@client.example>\r\n\r\n%s\r\nmarker %s\r\n"
            % ("promo" if spam else "colleague", rnd.randrange(50),
               "deals.example" if spam else "work.example", DEMO,
               rnd.choice(words), rnd.choice(words), "s" if spam else "h", n,
               rnd.randrange(1 << 30), " ".join(body), marker or "none")).encode()


_corpus = tempfile.mkdtemp(prefix="correio-bayes-corpus-")
os.chmod(_corpus, 0o755)
at_cleanup(lambda: shutil.rmtree(_corpus, ignore_errors=True))


def write_corpus():
    """ham/ (a plain directory), spam/ (a Maildir: cur/ and new/) and
    one.eml (a single ham file); returns their paths."""
    rnd = random.Random(1234)
    ham = os.path.join(_corpus, "ham")
    spam = os.path.join(_corpus, "spam")
    if not os.path.isdir(ham):
        os.makedirs(ham)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(spam, sub))
        for i in range(N_TRAIN):
            with open(os.path.join(ham, "%03d.eml" % i), "wb") as f:
                f.write(make_msg(False, i, rnd))
            sub = "cur" if i % 2 else "new"
            with open(os.path.join(spam, sub, "%d.host:2,S" % i), "wb") as f:
                f.write(make_msg(True, i, rnd))
        with open(os.path.join(spam, "tmp", "partial"), "wb") as f:    # not walked
            f.write(make_msg(True, 999, rnd))
        with open(os.path.join(_corpus, "one.eml"), "wb") as f:
            f.write(make_msg(False, 500, rnd))
    return ham, spam, os.path.join(_corpus, "one.eml")


def bayes_ok(c, *args):
    r = c.ctl("bayes", *args, timeout=60)
    check(r.returncode == 0, "correio bayes %s: rc %d %s" % (" ".join(args), r.returncode,
                                                            r.stderr.strip()))
    return r.stdout


def train(c):
    ham, spam, one = write_corpus()
    out = bayes_ok(c, "train", "ham", ham)
    check(out.startswith("learned %d ham messages (0 already known, 0 moved from spam)" % N_TRAIN)
          and "database now %d ham, 0 spam" % N_TRAIN in out, "train ham: %r" % out)
    out = bayes_ok(c, "train", "spam", spam)
    check(out.startswith("learned %d spam messages (0 already known" % N_TRAIN)
          and "database now %d ham, %d spam" % (N_TRAIN, N_TRAIN) in out, "train spam: %r" % out)
    return ham, spam, one


def send(c, msg):
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW) as s:
        s.ehlo("client.example")
        code, text = s.mail("sender@client.example")
        check(code == 250, "MAIL: %d %r" % (code, text))
        code, text = s.rcpt(DEMO)
        check(code == 250, "RCPT: %d %r" % (code, text))
        code, text = s.data(msg)
        check(code == 250, "DATA: %d %r" % (code, text))
    check(queue_id(text.decode()), "no queue id in %r" % text)


def verdict(c, marker):
    """The set of test names of the delivered copy with marker."""
    found = wait_for(lambda: c.maildir_copies(DEMO, marker), 20, what="the message %s" % marker)
    data = found[0][1]
    status = header_value(data, "X-Spam-Status")
    check(status, "no X-Spam-Status in %r" % data[:400])
    m = re.match(r"(Yes|No), score=\S+ required=\S+ tests=(\S+)", status)
    check(m, "unexpected X-Spam-Status %r" % status)
    return set(m.group(2).split(","))


def bayes_hits(tests):
    return {t for t in tests if t.startswith("BAYES_")}


@case(conf=dict(spam_bayes="yes", spam_bayes_min_learned="30"))
def test_train_and_score(c):
    ham, spam, one = train(c)
    # ownership: the classifier (mail_owner) must be able to open it
    db = os.path.join(c.conf["data_directory"], "bayes")
    if os.geteuid() == 0 and MAIL_OWNER != "root":
        uid = pwd.getpwnam(MAIL_OWNER).pw_uid
        for f in ("", "data.mdb", "lock.mdb"):
            st = os.stat(os.path.join(db, f))
            check(st.st_uid == uid, "%s/%s owned by uid %d, not %s" % (db, f, st.st_uid,
                                                                        MAIL_OWNER))
    rnd = random.Random(99)                  # unseen messages
    for spam_msg, want in ((True, "BAYES_99"), (False, "BAYES_00")):
        m = unique("bayes-spam" if spam_msg else "bayes-ham")
        send(c, make_msg(spam_msg, 10000, rnd, marker=m))
        tests = verdict(c, m)
        check(want in tests, "%s message: tests %s" % ("spam" if spam_msg else "ham", tests))
        check(len(bayes_hits(tests) - {"BAYES_999"}) == 1, "one band only: %s" % tests)

    # learning again counts nothing; a single file; moving a ham to spam
    out = bayes_ok(c, "train", "ham", ham, one)
    check(out.startswith("learned 1 ham messages (%d already known, 0 moved" % N_TRAIN)
          and "database now %d ham, %d spam" % (N_TRAIN + 1, N_TRAIN) in out,
          "train again: %r" % out)
    out = bayes_ok(c, "train", "spam", one)
    check(out.startswith("learned 1 spam messages (0 already known, 1 moved from ham)")
          and "database now %d ham, %d spam" % (N_TRAIN, N_TRAIN + 1) in out, "move: %r" % out)
    out = bayes_ok(c, "forget", one)
    check(out.startswith("forgot 1 messages (0 not learned)")
          and "database now %d ham, %d spam" % (N_TRAIN, N_TRAIN) in out, "forget: %r" % out)
    out = bayes_ok(c, "show")
    check(re.search(r"^ham %d$" % N_TRAIN, out, re.M) and
          re.search(r"^spam %d$" % N_TRAIN, out, re.M) and
          re.search(r"^tokens [1-9]\d*$", out, re.M), "show: %r" % out)

    # bad usage and bad paths: clear answers
    r = c.ctl("bayes", "train", "eggs", ham)
    check(r.returncode == 2 and "ham or spam" in r.stderr, "bad class: %d %r" % (r.returncode,
                                                                                r.stderr))
    r = c.ctl("bayes", "train", "spam", os.path.join(_corpus, "nonexistent"))
    check(r.returncode == 1 and "nonexistent" in r.stderr, "bad path: %d %r" % (r.returncode,
                                                                               r.stderr))


@case(conf=dict(spam_bayes="no", spam_bayes_min_learned="30"))
def test_off(c):
    train(c)
    rnd = random.Random(98)
    m = unique("bayes-off")
    send(c, make_msg(True, 20000, rnd, marker=m))
    tests = verdict(c, m)
    check(not bayes_hits(tests), "spam_bayes = no, yet %s" % tests)


@case(conf=dict(spam_bayes="yes", spam_bayes_min_learned="31"))
def test_missing_database(c):
    cls = c.stage_pid("classifier")
    rnd = random.Random(97)
    for i in range(3):
        m = unique("bayes-missing")
        send(c, make_msg(True, 30000 + i, rnd, marker=m))
        tests = verdict(c, m)
        check(not bayes_hits(tests), "no database, yet %s" % tests)
    check(c.stage_pid("classifier") == cls, "the classifier restarted")
    n = len(re.findall(r"bayes: no database in", c.log()))
    check(n == 1, "the missing database logged %d times, not once" % n)
    out = bayes_ok(c, "show")
    check("no database yet" in out, "show: %r" % out)


if __name__ == "__main__":
    sys.exit(main(globals()))
