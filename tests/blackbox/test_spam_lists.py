"""test_spam_lists.py - `correio list` end to end: entries written by the
ctl while the classifier runs count from the next message on, at the
user, domain and server levels; a blacklisted sender's clean message
becomes spam, a whitelisted sender's GTUBE message does not (GTUBE scored
20 here by a rules file: at its default of 1000 it beats a -100
whitelist, as in SpamAssassin); keywords add their points; an
authenticated client is whitelisted.  The verdict is read from the
delivered copy's X-Spam-Status (inbox or .Junk).
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import json
import os
import pwd
import re
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (at_cleanup, case, check, header_value, main,  # noqa: E402
                     send_mail, unique, wait_for)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
DEMO = "demo@example.test"
ALICE = "alice@example.test"

_rules_dir = tempfile.mkdtemp(prefix="correio-lists-rules-")
os.chmod(_rules_dir, 0o755)
at_cleanup(lambda: shutil.rmtree(_rules_dir, ignore_errors=True))
RULES = os.path.join(_rules_dir, "local.cf")
with open(RULES, "w") as f:
    f.write("score GTUBE 20\n")
os.chmod(RULES, 0o644)
CONF = dict(spam_rules_files=RULES, smtpd_tls_auth_only="no")


def ctl_ok(c, *args):
    r = c.ctl("list", *args)
    check(r.returncode == 0, "correio list %s: rc %d %s" % (" ".join(args), r.returncode,
                                                           r.stderr.strip()))
    return r.stdout


def send(c, sender, rcpts, marker, subject="hello", body="just a note", login=None):
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.example>\r\n"
           "\r\n%s\r\nmarker %s\r\n" % (sender, rcpts[0], subject, marker, body, marker)).encode()
    send_mail(c, sender, rcpts, msg, login=login)


def verdict(c, addr, marker):
    """(spam?, score, set of test names) of the copy with marker, from the
    inbox or the spam folder."""
    found = wait_for(lambda: c.maildir_copies(addr, marker), 20, what="the message %s in %s's Maildir" % (marker, addr))
    data = found[0][1]
    status = header_value(data, "X-Spam-Status")
    check(status, "no X-Spam-Status in %r" % data[:400])
    m = re.match(r"(Yes|No), score=(\S+) required=\S+ tests=(\S+)", status)
    check(m, "unexpected X-Spam-Status %r" % status)
    return m.group(1) == "Yes", float(m.group(2)), set(m.group(3).split(","))


LIST_HITS = {"USER_WHITELIST", "USER_BLACKLIST", "DOMAIN_WHITELIST", "DOMAIN_BLACKLIST",
             "SERVER_WHITELIST", "SERVER_BLACKLIST", "KEYWORDS", "AUTH_WHITELIST"}


@case(conf=CONF)
def test_user_whitelist_beats_gtube(c):
    ctl_ok(c, "add", "whitelist", DEMO, "Friend@Partner.example")
    m = unique("uwl")
    send(c, "friend@partner.example", [DEMO], m, body=GTUBE)
    spam, score, tests = verdict(c, DEMO, m)
    check({"USER_WHITELIST", "GTUBE"} <= tests, "tests %s" % tests)
    check(not spam and score < 0, "whitelisted GTUBE message is spam: %.1f %s" % (score, tests))
    # the same sender to another user: no whitelist, GTUBE counts
    m = unique("uwl2")
    send(c, "friend@partner.example", [ALICE], m, body=GTUBE)
    spam, _, tests = verdict(c, ALICE, m)
    check(spam and not (tests & LIST_HITS), "alice: %s %s" % (spam, tests))


@case(conf=CONF)
def test_server_blacklist_then_del(c):
    ctl_ok(c, "add", "blacklist", "*", "@spammer.example")
    m = unique("sbl")
    send(c, "bulk@mx1.spammer.example", [DEMO], m)   # subdomain of a listed domain
    spam, score, tests = verdict(c, DEMO, m)
    check(spam and "SERVER_BLACKLIST" in tests and score >= 100,
          "blacklisted clean message: %s %.1f %s" % (spam, score, tests))
    ctl_ok(c, "del", "blacklist", "*", "spammer.example")
    m = unique("sbl2")
    send(c, "bulk@mx1.spammer.example", [DEMO], m)
    spam, _, tests = verdict(c, DEMO, m)
    check(not spam and not (tests & LIST_HITS), "after del: %s %s" % (spam, tests))


@case(conf=CONF)
def test_domain_level_and_user_precedence(c):
    ctl_ok(c, "add", "blacklist", "example.test", "@dom-black.example")
    ctl_ok(c, "add", "whitelist", ALICE, "@dom-black.example")
    ctl_ok(c, "add", "whitelist", "*", "@dom-black.example")
    m = unique("dbl")
    send(c, "x@dom-black.example", [DEMO], m)
    spam, _, tests = verdict(c, DEMO, m)
    check(spam and tests & LIST_HITS == {"DOMAIN_BLACKLIST"},
          "domain blacklist over server whitelist: %s %s" % (spam, tests))
    # the first local recipient's lists decide: alice's whitelist
    m = unique("dbl2")
    send(c, "x@dom-black.example", ["far@remote.example", ALICE, DEMO], m)
    spam, _, tests = verdict(c, DEMO, m)
    check(not spam and tests & LIST_HITS == {"USER_WHITELIST"},
          "alice first: %s %s" % (spam, tests))


@case(conf=CONF)
def test_keywords_add_up(c):
    ctl_ok(c, "add", "keyword", "example.test", "Cheap Pills", "3.5")
    ctl_ok(c, "add", "keyword", "*", "lottery", "3")
    ctl_ok(c, "add", "keyword", DEMO, "newsletter", "-1")
    m = unique("kw")
    send(c, "someone@elsewhere.example", [DEMO], m, subject="LOTTERY winner",
         body="buy cheap\r\n pills today, newsletter")
    spam, score, tests = verdict(c, DEMO, m)
    check("KEYWORDS" in tests, "no KEYWORDS in %s" % tests)
    check(spam and score >= 5.5, "keywords 3.5+3-1: %s %.1f %s" % (spam, score, tests))
    out = ctl_ok(c, "show", "example.test", "--json")
    rows = [r for r in map(json.loads, out.splitlines()) if r["kind"] == "keyword"]
    check(rows == [{"scope": "example.test", "kind": "keyword", "value": "cheap pills",
                    "points": 3.5}], "show --json: %r" % out)


@case(conf=CONF)
def test_authenticated_sender_whitelisted(c):
    m = unique("auth")
    send(c, "demo@example.test", [ALICE], m, body=GTUBE, login=DEMO)
    spam, _, tests = verdict(c, ALICE, m)
    check("AUTH_WHITELIST" in tests and not spam, "authenticated: %s %s" % (spam, tests))


@case(conf=dict(CONF, spam_whitelist_authenticated="no"))
def test_authenticated_whitelist_off(c):
    m = unique("authoff")
    send(c, "demo@example.test", [ALICE], m, body=GTUBE, login=DEMO)
    spam, _, tests = verdict(c, ALICE, m)
    check("AUTH_WHITELIST" not in tests and spam, "whitelist off: %s %s" % (spam, tests))


@case(conf=CONF)
def test_bad_input(c):
    for args, rc in ((("add", "whitelist", "not a scope", "a@b.example"), 1),
                     (("add", "blacklist", "*", "@"), 1),
                     (("add", "keyword", "*", "word", "many"), 2),
                     (("add", "keyword", "*", "word", "0"), 1),
                     (("add", "greylist", "*", "a@b.example"), 2),
                     (("del", "whitelist", "*", "nobody@nowhere.example"), 1),
                     (("frob",), 2)):
        r = c.ctl("list", *args)
        check(r.returncode == rc and r.stderr.startswith("correio: "),
              "list %s: rc %d (want %d) %r" % (" ".join(args), r.returncode, rc, r.stderr))
    out = ctl_ok(c, "show")
    check(all(len(line.split("\t")) in (3, 4) for line in out.splitlines()), "show: %r" % out)
    # the environment belongs to mail_owner, whoever ran the ctl
    st = os.stat(os.path.join(c.conf["data_directory"], "lists", "data.mdb"))
    check(pwd.getpwuid(st.st_uid).pw_name == c.conf["mail_owner"] or os.geteuid() != 0,
          "data.mdb belongs to uid %d" % st.st_uid)


if __name__ == "__main__":
    sys.exit(main(globals()))
