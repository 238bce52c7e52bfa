"""test_classifier_dns.py - the classifier's DNS tests end to end with the
DNS lab (tests/dns/unbound.conf.in): RBL scoring lists over the client IP
(dnsbl.test), URI blocklists over the domains linked in the body
(uribl.test), HELO_NO_MATCH (helo.test), SPF of the envelope sender
(spf.test) with its Authentication-Results and Received-SPF fields in the
delivered copy, and - with a DNS server of this file that never answers -
SCAN_TIMEOUT after spam_scan_time_limit, the message delivered anyway.

Clients bind a loopback source address before they connect:
    127.0.0.30  listed in dnsbl.test (A 127.0.0.2)
    127.0.0.32  not listed
    127.0.0.40  the address of right.helo.test

    /usr/bin/python3 tests/blackbox/test_classifier_dns.py [CASE...]
"""

import os
import re
import smtplib
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, RawSMTP, case, check, ensure_dns_lab, header_value,  # noqa: E402
                     main, unique, wait_for)

DNS = ensure_dns_lab()
NO_DNS = None if DNS else "no DNS lab (unbound missing)"
DEMO = "demo@example.test"

# A DNS server that never answers: a UDP socket nobody reads.
_BLACK_HOLE = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
_BLACK_HOLE.bind(("127.0.0.1", 0))

LISTS = dict(spam_rbl_lists="dnsbl.test=2.5, dnsbl.test=127.0.0.9=7",
             spam_uribl_lists="uribl.test=4")


class FromSMTP(RawSMTP):
    """RawSMTP from a chosen loopback source address."""

    def __init__(self, port, src, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW,
                                             source_address=(src, 0))
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""
        self.eof = False


def send(c, src="127.0.0.1", helo="client.example", sender="sender@client.example",
         body="", marker=None):
    """One message from src; returns (delivered bytes, tests set, X-Spam-Status)."""
    marker = marker or unique("cdns")
    s = FromSMTP(c.port, src)
    with s:
        s.expect(220)
        s.expect(250, line="EHLO %s" % helo)
        s.expect(250, line="MAIL FROM:<%s>" % sender)
        s.expect(250, line="RCPT TO:<%s>" % DEMO)
        s.expect(354, line="DATA")
        s.send(("From: <%s>\r\nTo: <%s>\r\nSubject: dns %s\r\nMessage-ID: <%s@client.example>\r\n"
                "\r\nbody %s\r\n%s\r\n.\r\n" % (sender, DEMO, marker, marker, marker, body))
               .encode())
        s.expect(250)
        s.cmd("QUIT")
    data = c.wait_for_message(DEMO, marker, timeout=30)
    status = header_value(data, "X-Spam-Status")
    check(status, "no X-Spam-Status in %r" % data[:600])
    m = re.search(r"tests=(\S+)", status)
    check(m, "no tests= in %r" % status)
    return data, set(m.group(1).split(",")), status


@case(conf=LISTS, skip=NO_DNS)
def test_rbl_listed_client(c):
    _, tests, status = send(c, src="127.0.0.30")
    check("RBL_DNSBL_TEST" in tests, "no RBL_DNSBL_TEST in %r" % status)
    _, tests, status = send(c, src="127.0.0.32")
    check(not any(t.startswith("RBL_") for t in tests), "RBL hit for 127.0.0.32: %r" % status)


@case(conf=LISTS, skip=NO_DNS)
def test_uribl_listed_link(c):
    _, tests, status = send(c, body="see http://www.spammy-link.example/offer?x=1 now")
    check("URIBL_URIBL_TEST" in tests, "no URIBL_URIBL_TEST in %r" % status)
    # a registered domain under a ccSLD: login.phish.co.uk -> phish.co.uk
    _, tests, status = send(c, body="<a href=\"https://login.phish.co.uk/x\">log in</a>")
    check("URIBL_URIBL_TEST" in tests, "no URIBL hit for phish.co.uk in %r" % status)
    _, tests, status = send(c, body="see https://clean-link.example/ now")
    check(not any(t.startswith("URIBL_") for t in tests), "URIBL hit on a clean link: %r" % status)


@case(conf=LISTS, skip=NO_DNS)
def test_helo_match(c):
    _, tests, status = send(c, src="127.0.0.40", helo="right.helo.test")
    check("HELO_NO_MATCH" not in tests, "HELO_NO_MATCH for a matching HELO: %r" % status)
    _, tests, status = send(c, src="127.0.0.32", helo="right.helo.test")
    check("HELO_NO_MATCH" in tests, "no HELO_NO_MATCH from 127.0.0.32: %r" % status)
    _, tests, status = send(c, src="127.0.0.32", helo="[127.0.0.32]")
    check("HELO_NO_MATCH" not in tests, "HELO_NO_MATCH for a matching literal: %r" % status)


@case(conf=LISTS, skip=NO_DNS)
def test_spf_pass_and_fail(c):
    data, tests, status = send(c, sender="a@pass.spf.test")
    check("SPF_PASS" in tests, "no SPF_PASS in %r" % status)
    ar = header_value(data, "Authentication-Results")
    check(ar and ar.startswith("mx.example.test;") and "spf=pass" in ar
          and "smtp.mailfrom=a@pass.spf.test" in ar, "Authentication-Results: %r" % ar)
    rs = header_value(data, "Received-SPF")
    check(rs and rs.lower().startswith("pass"), "Received-SPF: %r" % rs)

    data, tests, status = send(c, sender="a@failexp.spf.test")
    check("SPF_FAIL" in tests, "no SPF_FAIL in %r" % status)
    check("score=3.0 " in status or float(re.search(r"score=(\S+)", status).group(1)) >= 3.0,
          "SPF_FAIL did not count: %r" % status)
    ar = header_value(data, "Authentication-Results")
    check(ar and "spf=fail" in ar, "Authentication-Results: %r" % ar)
    rs = header_value(data, "Received-SPF")
    check(rs and rs.lower().startswith("fail"), "Received-SPF: %r" % rs)


@case(conf=dict(LISTS, smtpd_tls_auth_only="no"), skip=NO_DNS)
def test_authenticated_client_skips_client_tests(c):
    """A client that logged in: no RBL, HELO or SPF test (nor header), but
    its links are still looked up."""
    mk = unique("cdnsauth")
    with smtplib.SMTP("127.0.0.1", c.port, timeout=30 * SLOW,
                      source_address=("127.0.0.30", 0)) as s:
        s.ehlo("nowhere.helo.test")
        s.login(DEMO, "secret")
        s.sendmail("a@failexp.spf.test", [DEMO],
                   ("From: <a@failexp.spf.test>\r\nTo: <%s>\r\nSubject: auth %s\r\n\r\n"
                    "body %s http://spammy-link.example/\r\n" % (DEMO, mk, mk)).encode())
    data = c.wait_for_message(DEMO, mk, timeout=30)
    status = header_value(data, "X-Spam-Status") or ""
    tests = set(re.search(r"tests=(\S+)", status).group(1).split(",")) if "tests=" in status else set()
    check("URIBL_URIBL_TEST" in tests, "no URIBL hit for an authenticated client: %r" % status)
    check(not any(t.startswith(("RBL_", "SPF_", "HELO_")) for t in tests),
          "client tests ran for an authenticated client: %r" % status)
    check(header_value(data, "Authentication-Results") is None, "an SPF header: %r" % data[:600])


@case(conf=dict(LISTS, dns_servers="127.0.0.1:%d" % _BLACK_HOLE.getsockname()[1],
                spam_scan_time_limit="1s", smtpd_peername_lookup="no"), skip=NO_DNS)
def test_scan_timeout(c):
    t0 = time.monotonic()
    data, tests, status = send(c, src="127.0.0.30", sender="a@pass.spf.test")
    took = time.monotonic() - t0
    check("SCAN_TIMEOUT" in tests, "no SCAN_TIMEOUT in %r" % status)
    check(not any(t.startswith(("RBL_", "SPF_")) for t in tests),
          "answers from a server that never answers? %r" % status)
    check(header_value(data, "Authentication-Results") is None,
          "an SPF result without an answer: %r" % data[:600])
    check(took < 20 * SLOW, "delivery took %.1fs" % took)
    wait_for(lambda: "(scan timeout)" in c.log(), 10, what="the scan timeout log line")


@case(conf=dict(dns_servers="127.0.0.1:%d" % _BLACK_HOLE.getsockname()[1],
                spam_scan_time_limit="1s", smtpd_peername_lookup="no",
                classifier_concurrency="1"), skip=NO_DNS)
def test_concurrency_limit(c):
    """One message in flight at a time: three that each wait the whole
    time limit go through one after the other, none is lost, and the
    classifier answers its admin socket meanwhile."""
    t0 = time.monotonic()
    marks = [unique("cdnsconc") for _ in range(3)]
    with c.smtp() as s:
        for mk in marks:
            s.sendmail("a@pass.spf.test", [DEMO],
                       ("Subject: conc %s\r\n\r\nbody %s\r\n" % (mk, mk)).encode())
    r = c.ctl("status")
    check(r.returncode == 0 and "classifier" in r.stdout, "status: %r %r" % (r.stdout, r.stderr))
    for mk in marks:
        data = c.wait_for_message(DEMO, mk, timeout=30)
        check("SCAN_TIMEOUT" in (header_value(data, "X-Spam-Status") or ""),
              "no SCAN_TIMEOUT: %r" % data[:600])
    took = time.monotonic() - t0
    check(took >= 2.5, "three 1s scans with concurrency 1 took only %.1fs" % took)


if __name__ == "__main__":
    sys.exit(main(globals()))
