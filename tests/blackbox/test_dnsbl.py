"""test_dnsbl.py - black-box tests of the DNS lists in the ingress:
reject_rbl_client, reject_rhsbl_sender and permit_dnswl_client with the
DNS lab's zones (tests/dns/unbound.conf.in: dnsbl.test, dbl.test,
dnswl.test), refusal at RCPT or at connect (smtpd_delay_reject = no),
rbl_close, rbl_bypass, and - with a small DNS responder run by this file
on loopback that counts the queries - the DNS cache and a DNS list that
never answers (rbl_timeout).

Clients bind a loopback source address before they connect:
    127.0.0.30  listed in dnsbl.test (A 127.0.0.2, TXT "listed for testing")
    127.0.0.31  listed with 127.0.0.3 (outside the =127.0.0.[2;4] filter)
    127.0.0.32  not listed
    127.0.0.33  listed, and in dnswl.test
    127.0.0.34  listed, and in rbl_bypass
    127.0.0.35  listed (senders in @friend.example are in rbl_bypass)

    /usr/bin/python3 tests/blackbox/test_dnsbl.py [CASE...]
"""

import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SLOW, RawSMTP, TestFailure, case, check, ensure_dns_lab,  # noqa: E402
                     main, simple_message, unique, wait_for, wait_log)

DNS = ensure_dns_lab()
NO_DNS = None if DNS else "no DNS lab (unbound missing)"
LISTED_REPLY = ("Service unavailable; Client host [127.0.0.30] blocked using dnsbl.test; "
                "listed for testing")


class FromSMTP(RawSMTP):
    """RawSMTP from a chosen loopback source address."""

    def __init__(self, port, src, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW,
                                             source_address=(src, 0))
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""
        self.eof = False


def session_to_rcpt(c, src, sender="sender@client.example", rcpt="demo@example.test"):
    """Greeting, EHLO, MAIL from src; returns (session, RCPT reply)."""
    s = FromSMTP(c.port, src)
    s.expect(220)
    s.expect(250, line="EHLO client.example")
    s.expect(250, line="MAIL FROM:<%s>" % sender)
    return s, s.cmd("RCPT TO:<%s>" % rcpt)


def send_from(c, src, sender="sender@client.example", marker=None):
    """A whole message from src; returns the queue id reply."""
    marker = marker or unique("dnsbl")
    s, r = session_to_rcpt(c, src, sender)
    with s:
        check(r and r[0] == 250, "RCPT from %s: %r" % (src, r))
        s.expect(354, line="DATA")
        s.send(simple_message(marker, sender=sender))
        s.send(b".\r\n")
        text = s.expect(250)
        s.cmd("QUIT")
    c.wait_for_message("demo@example.test", marker)
    return text


# ---------------------------------------------------------------- at RCPT
RCPT_CONF = dict(
    smtpd_client_restrictions="permit_dnswl_client dnswl.test, "
                              "reject_rbl_client dnsbl.test=127.0.0.[2;4]",
    smtpd_sender_restrictions="reject_rhsbl_sender dbl.test",
    rbl_bypass="127.0.0.34, @friend.example",
)


@case(conf=RCPT_CONF, skip=NO_DNS)
def test_listed_client_refused_at_rcpt(c):
    since = c.log_size()
    s, r = session_to_rcpt(c, "127.0.0.30")
    with s:
        check(r is not None and r[0] == 554, "want 554, got %r" % (r,))
        check(r[1][-1] == "554 5.7.1 " + LISTED_REPLY, r[1][-1])
        s.expect(221, line="QUIT")
    wait_log(c, r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.30\]: 554 5\.7\.1 "
                r"Service unavailable; Client host \[127\.0\.0\.30\] blocked using dnsbl\.test",
             since=since)


@case(conf=RCPT_CONF, skip=NO_DNS)
def test_not_listed_passes(c):
    send_from(c, "127.0.0.32")


@case(conf=RCPT_CONF, skip=NO_DNS)
def test_answer_outside_filter_passes(c):
    send_from(c, "127.0.0.31")


@case(conf=RCPT_CONF, skip=NO_DNS)
def test_dnswl_permits(c):
    send_from(c, "127.0.0.33")


@case(conf=RCPT_CONF, skip=NO_DNS)
def test_bypass_by_ip(c):
    send_from(c, "127.0.0.34")


@case(conf=RCPT_CONF, skip=NO_DNS)
def test_bypass_by_sender(c):
    send_from(c, "127.0.0.35", sender="boss@friend.example")
    # the same listed client, another sender, in one session: the bypass
    # is decided per MAIL
    s, r = session_to_rcpt(c, "127.0.0.35", sender="boss@friend.example")
    with s:
        check(r[0] == 250, "bypassed sender: %r" % (r,))
        s.expect(250, line="RSET")
        s.expect(250, line="MAIL FROM:<other@client.example>")
        r = s.cmd("RCPT TO:<demo@example.test>")
        check(r[0] == 554 and "blocked using dnsbl.test" in r[1][-1], "other sender: %r" % (r,))


@case(conf=RCPT_CONF, skip=NO_DNS)
def test_rhsbl_sender_refused(c):
    s, r = session_to_rcpt(c, "127.0.0.32", sender="x@spammer.example")
    with s:
        check(r[0] == 554, "want 554, got %r" % (r,))
        check(r[1][-1] == "554 5.7.1 Service unavailable; Sender address [spammer.example] "
                          "blocked using dbl.test; domain listed", r[1][-1])


# ---------------------------------------------------------------- at connect
CONNECT_CONF = dict(smtpd_delay_reject="no",
                    smtpd_client_restrictions="reject_rbl_client dnsbl.test")


@case(conf=CONNECT_CONF, skip=NO_DNS)
def test_refused_at_connect(c):
    with FromSMTP(c.port, "127.0.0.30") as s:
        greeting = s.read_reply()
        check(greeting and greeting[0] == 554, "greeting %r" % (greeting,))
        check(greeting[1][-1] == "554 5.7.1 " + LISTED_REPLY, greeting[1][-1])
        # RFC 5321 3.1: after a 554 greeting, 503 to everything but QUIT
        s.expect(503, "5.7.0", line="EHLO client.example")
        s.expect(503, "5.7.0", line="MAIL FROM:<a@client.example>")
        text = s.expect(503, line="NOOP")
        check("access denied for unknown[127.0.0.30]" in text, text)
        s.expect(221, line="QUIT")
        check(s.is_closed(), "connection still open after QUIT")
    # an unlisted client gets the banner and sends
    send_from(c, "127.0.0.32")


# ---------------------------------------------------------------- rbl_close
@case(conf=dict(smtpd_client_restrictions="reject_rbl_client dnsbl.test", rbl_close="yes"),
      skip=NO_DNS)
def test_rbl_close_hangs_up(c):
    s, r = session_to_rcpt(c, "127.0.0.30")
    with s:
        check(r[0] == 554 and r[1][-1] == "554 5.7.1 " + LISTED_REPLY, "RCPT: %r" % (r,))
        check(s.is_closed(), "connection still open after the DNSBL refusal")
    # other clients are not affected
    send_from(c, "127.0.0.32")


# ---------------------------------------------------------------- a counting DNS server
class CountingDns:
    """A UDP DNS responder on 127.0.0.1 that counts what it is asked.
    Under cnt.test it lists 127.0.0.30 (A 127.0.0.2 and a TXT, TTL
    `ttl`); other names there are NXDOMAIN with an SOA whose MINIMUM is
    60.  Names under silent.test get no answer at all."""

    def __init__(self, ttl=3):
        self.ttl = ttl
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.counts = {}
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def count(self, name, qtype):
        with self.lock:
            return self.counts.get((name.lower(), qtype), 0)

    def stop(self):
        self.stopping = True
        self.sock.close()

    def _run(self):
        while not self.stopping:
            try:
                data, addr = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self._answer(data)
            except Exception:           # a bad query: no answer
                continue
            if reply:
                try:
                    self.sock.sendto(reply, addr)
                except OSError:
                    return

    @staticmethod
    def _name(data, pos):
        labels = []
        while data[pos]:
            n = data[pos]
            labels.append(data[pos + 1:pos + 1 + n].decode("ascii"))
            pos += 1 + n
        return ".".join(labels), pos + 1

    def _answer(self, data):
        qid, flags, qd = struct.unpack(">HHH", data[:6])
        name, pos = self._name(data, 12)
        qtype, qclass = struct.unpack(">HH", data[pos:pos + 4])
        question = data[12:pos + 4]
        lname = name.lower()
        with self.lock:
            self.counts[(lname, qtype)] = self.counts.get((lname, qtype), 0) + 1
        if lname.endswith("silent.test"):
            return None
        answers = []
        if lname == "30.0.0.127.cnt.test":
            if qtype == 1:
                answers.append(struct.pack(">HHHIH", 0xc00c, 1, 1, self.ttl, 4)
                               + bytes([127, 0, 0, 2]))
            elif qtype == 16:
                txt = b"counted listing"
                answers.append(struct.pack(">HHHIH", 0xc00c, 16, 1, self.ttl, len(txt) + 1)
                               + bytes([len(txt)]) + txt)
            rcode, auth = 0, []
        else:
            zone = b"\x03cnt\x04test\x00"
            rdata = (b"\x02ns" + zone + b"\x0ahostmaster" + zone
                     + struct.pack(">IIIII", 1, 3600, 600, 86400, 60))
            auth = [zone + struct.pack(">HHIH", 6, 1, 300, len(rdata)) + rdata]
            rcode = 3
        hdr = struct.pack(">HHHHHH", qid, 0x8400 | rcode | (flags & 0x0100), 1,
                          len(answers), len(auth), 0)
        return hdr + question + b"".join(answers) + b"".join(auth)


COUNTER = CountingDns(ttl=3)
CACHE_CONF = dict(rbl_dns_servers="127.0.0.1:%d" % COUNTER.port, rbl_timeout="1s",
                  smtpd_client_restrictions="reject_rbl_client cnt.test",
                  smtpd_sender_restrictions="reject_rhsbl_sender silent.test")


@case(conf=CACHE_CONF)
def test_cache_no_second_query(c):
    name = "30.0.0.127.cnt.test"
    for i in range(2):
        s, r = session_to_rcpt(c, "127.0.0.30")
        with s:
            check(r[0] == 554 and "blocked using cnt.test; counted listing" in r[1][-1],
                  "connection %d: %r" % (i + 1, r))
    check(COUNTER.count(name, 1) == 1, "A asked %d times" % COUNTER.count(name, 1))
    check(COUNTER.count(name, 16) == 1, "TXT asked %d times" % COUNTER.count(name, 16))
    # after the TTL (3 s) the next connection asks again

    def asked_again():
        s, r = session_to_rcpt(c, "127.0.0.30")
        with s:
            check(r[0] == 554, "refused while listed: %r" % (r,))
        return COUNTER.count(name, 1) >= 2
    wait_for(asked_again, 15, interval=0.5, what="a new query once the TTL ran out")


@case(conf=CACHE_CONF)
def test_dead_list_counts_as_not_listed(c):
    since = c.log_size()
    t0 = time.monotonic()
    send_from(c, "127.0.0.32", sender="someone@quiet.example")
    elapsed = time.monotonic() - t0
    check(COUNTER.count("quiet.example.silent.test", 1) >= 1, "the silent list was not asked")
    check(elapsed >= 0.9, "accepted after %.2fs: the lookup did not wait for rbl_timeout"
          % elapsed)
    wait_log(c, r"warning: dnsbl lookup of quiet\.example\.silent\.test: .*counted as not "
                r"listed", since=since)
    # the client's NXDOMAIN is kept (SOA MINIMUM 60 s): not asked again
    n = COUNTER.count("32.0.0.127.cnt.test", 1)
    send_from(c, "127.0.0.32", sender="someone@else.example")
    check(COUNTER.count("32.0.0.127.cnt.test", 1) == n,
          "a negative answer was asked again within its TTL")


if __name__ == "__main__":
    try:
        sys.exit(main(globals()))
    finally:
        COUNTER.stop()
