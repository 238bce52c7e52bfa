"""test_classifier_content.py - the classifier's MIME content tests end to
end: a message goes in over SMTP, the classifier parses it (mime.c) and
scores it, and the delivered Maildir copy carries the hits in
X-Spam-Status; the classifier log line names the same tests.  Also: a
malformed message (endless nesting, no close delimiter) is scored, not
dropped, and the classifier stays up.
Prints PASS/FAIL/SKIP per case (see harness.py)."""

import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Correio, case, check, header_value, main, queue_id,  # noqa: E402
                     unique, wait_for)

DEMO = "demo@example.test"
SENDER = "sender@client.example"


def send(c, data):
    """Send data to demo; returns the queue id from the DATA reply."""
    s = c.smtp()
    try:
        s.mail(SENDER)
        code, _ = s.rcpt(DEMO)
        check(code == 250, "RCPT refused: %d" % code)
        code, text = s.data(data)
        check(code == 250, "DATA refused: %d %r" % (code, text))
    finally:
        s.quit()
    qid = queue_id(text.decode("latin-1"))
    check(qid, "no queue id in %r" % text)
    return qid


def message(marker, headers, body):
    return (("From: <%s>\r\nTo: <%s>\r\nMessage-ID: <%s@client.example>\r\n"
             % (SENDER, DEMO, marker)).encode() + headers + b"\r\n" + body)


def verdict(c, marker, qid, logpos):
    """(tests in X-Spam-Status, tests in the classifier log line) of the
    delivered message with marker."""
    data = c.wait_for_message(DEMO, marker)
    status = header_value(data, "X-Spam-Status")
    check(status, "no X-Spam-Status in %r" % data[:400])
    m = re.search(r"tests=(\S+)", status)
    check(m, "no tests= in %r" % status)
    rx = re.compile(r"%s: classified score=\S+ spam=\S+ tests=(\S+)" % qid)
    line = wait_for(lambda: rx.search(c.log_since(logpos)), 20,
                    what="the classifier log line of %s" % qid)
    return (content_hits(m.group(1)), content_hits(line.group(1)),
            content_status(status, m.group(1)))


# The DNS tests (test_classifier_dns.py) also score these messages: the
# harness's EHLO client.example does not resolve (HELO_NO_MATCH, 0.5) and
# the sender's SPF is looked up (SPF_NONE / SPF_TEMPERROR, 0).  Leave them
# out here: this file checks the content tests.
DNS_HITS = {"HELO_NO_MATCH": 0.5}


def content_hits(tests):
    hits = {t for t in tests.split(",") if t not in DNS_HITS and not t.startswith("SPF_")}
    return hits or {"none"}


def content_status(status, tests):
    dns = sum(DNS_HITS.get(t, 0) for t in tests.split(","))
    return re.sub(r"score=(\S+)", lambda m: "score=%.1f" % (float(m.group(1)) - dns), status, 1)


@case()
def test_html_only_external_image(c):
    mk = unique("htmlonly")
    pos = c.log_size()
    body = ("<html><body><p>Offer %s</p><img src=\"http://track.example/p.gif\">"
            "</body></html>\r\n" % mk).encode()
    qid = send(c, message(mk, b"MIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n",
                          body))
    hdr, log, status = verdict(c, mk, qid, pos)
    want = {"MIME_HTML_ONLY", "HTML_EXTERNAL_IMAGE"}
    check(hdr == want, "X-Spam-Status tests %s, want %s" % (hdr, want))
    check(log == want, "log tests %s, want %s" % (log, want))
    check("score=1.5 " in status, "score not 1.5: %r" % status)


@case()
def test_forbidden_charset_and_mismatch(c):
    mk = unique("charset")
    pos = c.log_size()
    body = ("--b\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n"
            "Our garden club meets on Tuesday evening at the library %s\r\n"
            "--b\r\nContent-Type: text/html; charset=koi8-r\r\n\r\n"
            "<p>Cheap watches and pills, limited offer, click to claim your prize</p>\r\n"
            "--b--\r\n" % mk).encode()
    headers = (b"Subject: =?koi8-r?B?0NLJ18XU?=\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/alternative; boundary=\"b\"\r\n")
    qid = send(c, message(mk, headers, body))
    hdr, log, status = verdict(c, mk, qid, pos)
    want = {"CHARSET_FORBIDDEN", "MIME_HTML_MISMATCH"}
    check(hdr == want, "X-Spam-Status tests %s, want %s" % (hdr, want))
    check(log == want, "log tests %s, want %s" % (log, want))
    check("score=3.0 " in status, "score not 3.0: %r" % status)


@case()
def test_clean_alternative_no_hits(c):
    mk = unique("clean")
    pos = c.log_size()
    words = "Our garden club meets on Tuesday evening at the library %s" % mk
    body = ("--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s caf\xc3\xa9\r\n"
            "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>%s caf&eacute;</p>"
            "<a href=\"https://club.example/\">site</a>\r\n--b--\r\n"
            % (words, words)).encode("latin-1")
    headers = (b"Subject: =?utf-8?Q?caf=C3=A9?=\r\nMIME-Version: 1.0\r\n"
               b"Content-Type: multipart/alternative; boundary=\"b\"\r\n")
    qid = send(c, message(mk, headers, body))
    hdr, log, status = verdict(c, mk, qid, pos)
    check(hdr == {"none"} and log == {"none"}, "hits on a clean message: %s / %s" % (hdr, log))


@case()
def test_malformed_mime_scored_not_dropped(c):
    mk = unique("broken")
    pos = c.log_size()
    nest = b"".join(b"--n%d\r\nContent-Type: multipart/mixed; boundary=n%d\r\n\r\n" % (i, i + 1)
                    for i in range(60))
    headers = b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=n0\r\n"
    body = nest + ("text %s\r\n" % mk).encode()
    qid = send(c, message(mk, headers, body))
    hdr, log, _ = verdict(c, mk, qid, pos)
    want = {"MIME_TRUNCATED", "MIME_BAD_STRUCTURE"}
    check(want <= hdr, "X-Spam-Status tests %s, want %s" % (hdr, want))
    check(hdr == log, "header %s and log %s differ" % (hdr, log))
    check(c.stage_pid("classifier"), "the classifier is gone")
    # and it still classifies the next one
    mk2 = unique("after")
    pos = c.log_size()
    qid = send(c, message(mk2, b"Subject: after\r\n", ("fine %s\r\n" % mk2).encode()))
    hdr, _, _ = verdict(c, mk2, qid, pos)
    check(hdr == {"none"}, "hits on a plain message: %s" % hdr)


if __name__ == "__main__":
    sys.exit(main(globals()))
