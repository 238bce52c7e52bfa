"""test_classifier_dkim.py - DKIM verification in the classifier end to end
(classifier/dkim.c over libopendkim, key records asked by test_dns.c over
correio's c-ares resolver).

Each run makes its own RSA key (openssl), publishes it in a DNS lab of this
file - the zone data of tests/dns/unbound.conf.in plus a dkim.test zone
with the key (2048 bits, so its TXT record is two strings that must be
joined) - signs messages with python3-dkim, sends them over SMTP through
the whole pipeline and reads the delivered copy: X-Spam-Status hits
(DKIM_SIGNED, DKIM_VALID, DKIM_VALID_AU, DKIM_INVALID, DKIM_KEY_MISSING)
and the one Authentication-Results field that carries spf= and dkim=.

    /usr/bin/python3 tests/blackbox/test_classifier_dkim.py [CASE...]
"""

import base64
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (REPO, at_cleanup, case, check, header_value, main,  # noqa: E402
                     unique, wait_for)

try:
    import dkim
except ImportError:             # python3-dkim (mk/deps.sh)
    dkim = None

DEMO = "demo@example.test"
SELECTOR = b"sel"
DOMAIN = b"dkim.test"


def _make_key(d):
    """An RSA key: (private PEM bytes, the base64 of its public key)."""
    key = os.path.join(d, "dkim.pem")
    subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                    "rsa_keygen_bits:2048", "-out", key], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    der = subprocess.run(["openssl", "pkey", "-in", key, "-pubout", "-outform", "DER"],
                         check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL).stdout
    with open(key, "rb") as f:
        return f.read(), base64.b64encode(der).decode()


def _lab_conf(d, port, pub):
    """The lab's zone data with a dkim.test zone added."""
    with open(os.path.join(REPO, "tests", "dns", "unbound.conf.in")) as f:
        conf = f.read().replace("@DIR@", d).replace("@PORT@", str(port))
    record = "v=DKIM1; k=rsa; p=" + pub
    strings = " ".join('"%s"' % record[i:i + 200] for i in range(0, len(record), 200))
    zone = ('    local-zone: "dkim.test." static\n'
            '    local-data: "dkim.test. 300 IN SOA ns.dkim.test. hostmaster.dkim.test. 1 3600 600 86400 1"\n'
            "    local-data: 'dkim.test. 300 IN TXT \"v=spf1 ip4:127.0.0.0/8 -all\"'\n"
            "    local-data: 'sel._domainkey.dkim.test. 300 IN TXT %s'\n"
            "    local-data: 'other._domainkey.dkim.test. 300 IN TXT \"not a key\"'\n\n"
            % strings)
    return conf.replace("remote-control:", zone + "remote-control:", 1)


def _dig_txt(port, name):
    r = subprocess.run(["dig", "+short", "+tries=1", "+time=1", "-p", str(port), "@127.0.0.1",
                        "TXT", name], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                       timeout=10)
    return r.stdout.decode()


def _start_lab():
    """Our own unbound with the key published: ("127.0.0.1:PORT", private
    PEM), or (None, reason)."""
    if dkim is None:
        return None, "python3-dkim missing"
    for tool in ("/usr/sbin/unbound", "/usr/bin/dig", "/usr/bin/openssl"):
        if not os.access(tool, os.X_OK):
            return None, "%s missing" % tool
    d = tempfile.mkdtemp(prefix="correio-dkimlab-")
    pem, pub = _make_key(d)

    def stop():
        try:
            with open(os.path.join(d, "unbound.pid")) as f:
                pid = int(f.read().strip() or 0)
            if pid:
                os.kill(pid, 15)
                wait_for(lambda: not os.path.exists("/proc/%d" % pid), 10, what="unbound exit")
        except (OSError, ValueError, AssertionError):
            pass
        shutil.rmtree(d, True)
    at_cleanup(stop)
    for _ in range(30):
        port = 30000 + int.from_bytes(os.urandom(2), "big") % 10000
        with open(os.path.join(d, "unbound.conf"), "w") as f:
            f.write(_lab_conf(d, port, pub))
        r = subprocess.run(["/usr/sbin/unbound", "-c", os.path.join(d, "unbound.conf")],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        if r.returncode == 0:
            wait_for(lambda: "v=DKIM1" in _dig_txt(port, "sel._domainkey.dkim.test"), 10,
                     what="the DKIM lab answering")
            return "127.0.0.1:%d" % port, pem
        log = r.stdout.decode(errors="replace")
        try:
            with open(os.path.join(d, "unbound.log")) as f:
                log += f.read()
        except OSError:
            pass
        if "address already in use" not in log.lower():
            return None, "unbound did not start: %s" % log[-300:]
    return None, "no free port for unbound"


LAB, PEM = _start_lab()
NO_LAB = None if LAB else PEM
CONF = dict(dns_servers=LAB or "127.0.0.1:1", dns_timeout="2s")


def message(marker, from_addr="alice@dkim.test", body=None):
    body = body or "Hello,\r\nthis is message %s.\r\n" % marker
    return ("From: Alice <%s>\r\nTo: <%s>\r\nSubject: dkim %s\r\n"
            "Message-ID: <%s@dkim.test>\r\nDate: Mon, 1 Jan 2024 10:00:00 +0000\r\n\r\n%s"
            % (from_addr, DEMO, marker, marker, body)).encode()


def sign(msg, selector=SELECTOR, domain=DOMAIN):
    sig = dkim.sign(msg, selector, domain, PEM, canonicalize=(b"relaxed", b"simple"),
                    include_headers=[b"from", b"to", b"subject", b"message-id", b"date"])
    return sig + msg, sig


def deliver(c, msg, marker, sender="a@dkim.test"):
    """Send msg; (delivered bytes, tests set, X-Spam-Status, Authentication-Results)."""
    c.send(sender, [DEMO], msg)
    data = c.wait_for_message(DEMO, marker, timeout=30)
    status = header_value(data, "X-Spam-Status") or ""
    m = re.search(r"tests=(\S+)", status)
    tests = set(m.group(1).split(",")) if m else set()
    return data, tests, status, header_value(data, "Authentication-Results") or ""


def b_tag(sig):
    """The first 8 characters of the signature's b= tag."""
    v = re.search(rb"\bb=([^;]*)", re.sub(rb"\s+", b"", sig)).group(1).decode()
    return v[:8]


@case(conf=CONF, skip=NO_LAB)
def test_valid_signature(c):
    mk = unique("dkimok")
    msg, sig = sign(message(mk))
    data, tests, status, ar = deliver(c, msg, mk)
    for hit in ("DKIM_SIGNED", "DKIM_VALID", "DKIM_VALID_AU", "SPF_PASS"):
        check(hit in tests, "no %s in %r" % (hit, status))
    check("DKIM_INVALID" not in tests, "DKIM_INVALID for a good signature: %r" % status)
    # one field, both methods; header.b quoted when it holds / or =
    check(ar.startswith("mx.example.test;") and "spf=pass" in ar, "Authentication-Results: %r" % ar)
    b = b_tag(sig)
    want = "dkim=pass header.d=dkim.test header.s=sel header.b=%s" % (
        '"%s"' % b if re.search(r"[/=]", b) else b)
    check(want in ar, "want %r in Authentication-Results: %r" % (want, ar))
    check(len(re.findall(rb"(?im)^Authentication-Results:", data)) == 1,
          "more than one Authentication-Results: %r" % data[:800])
    # the client's bytes, signature included, delivered as they came
    check(msg.replace(b"\r\n", b"\n") in data.replace(b"\r\n", b"\n"), "message changed")


@case(conf=CONF, skip=NO_LAB)
def test_alignment(c):
    # d=dkim.test signs for From: news.dkim.test (a parent): aligned
    mk = unique("dkimsub")
    msg, _ = sign(message(mk, from_addr="bob@news.dkim.test"))
    _, tests, status, _ = deliver(c, msg, mk)
    check({"DKIM_VALID", "DKIM_VALID_AU"} <= tests, "subdomain From: %r" % status)
    # ... but not for another domain's From:
    mk = unique("dkimother")
    msg, _ = sign(message(mk, from_addr="carol@elsewhere.example"))
    _, tests, status, _ = deliver(c, msg, mk)
    check("DKIM_VALID" in tests and "DKIM_VALID_AU" not in tests,
          "From: elsewhere.example: %r" % status)


@case(conf=CONF, skip=NO_LAB)
def test_tampered_body(c):
    mk = unique("dkimbad")
    msg, _ = sign(message(mk))
    msg = msg.replace(b"this is message", b"this is MESSAGE")
    _, tests, status, ar = deliver(c, msg, mk)
    check({"DKIM_SIGNED", "DKIM_INVALID"} <= tests, "tampered: %r" % status)
    check(not tests & {"DKIM_VALID", "DKIM_VALID_AU", "DKIM_KEY_MISSING"},
          "tampered: %r" % status)
    check(re.search(r"dkim=fail\b.*header\.d=dkim\.test", ar), "Authentication-Results: %r" % ar)


@case(conf=CONF, skip=NO_LAB)
def test_unsigned_and_missing_key(c):
    mk = unique("dkimnone")
    _, tests, status, ar = deliver(c, message(mk), mk)
    check(not any(t.startswith("DKIM_") for t in tests), "unsigned: %r" % status)
    check("spf=pass" in ar and "dkim=" not in ar, "unsigned: Authentication-Results: %r" % ar)

    # a selector with no key record: permerror, DKIM_KEY_MISSING only
    mk = unique("dkimnokey")
    msg, _ = sign(message(mk), selector=b"gone")
    _, tests, status, ar = deliver(c, msg, mk)
    check({"DKIM_SIGNED", "DKIM_KEY_MISSING"} <= tests, "no key: %r" % status)
    check(not tests & {"DKIM_VALID", "DKIM_INVALID"}, "no key: %r" % status)
    check("dkim=permerror" in ar and "header.s=gone" in ar, "Authentication-Results: %r" % ar)

    # a record that is no key: permerror, DKIM_INVALID
    mk = unique("dkimbadkey")
    msg, _ = sign(message(mk), selector=b"other")
    _, tests, status, ar = deliver(c, msg, mk)
    check("DKIM_INVALID" in tests and "DKIM_KEY_MISSING" not in tests, "bad key: %r" % status)
    check("dkim=permerror" in ar, "Authentication-Results: %r" % ar)

    # garbage in the signature field: no crash, permerror
    mk = unique("dkimjunk")
    msg = b"DKIM-Signature: v=1; this is ; not=a signature;;\r\n" + message(mk)
    _, tests, status, ar = deliver(c, msg, mk)
    check("DKIM_INVALID" in tests, "garbage signature: %r" % status)
    check("dkim=permerror" in ar, "Authentication-Results: %r" % ar)
    check(c.alive(), "a stage died")


# A DNS server that never answers: a UDP socket nobody reads.
_BLACK_HOLE = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
_BLACK_HOLE.bind(("127.0.0.1", 0))


@case(conf=dict(dns_servers="127.0.0.1:%d" % _BLACK_HOLE.getsockname()[1],
                spam_scan_time_limit="1s", smtpd_peername_lookup="no"), skip=NO_LAB)
def test_key_lookup_timeout(c):
    """Key lookups that never come back: the scan gives up, the verifier
    is freed unfinished, the message goes on without DKIM results."""
    mk = unique("dkimslow")
    msg, _ = sign(message(mk))
    _, tests, status, ar = deliver(c, msg, mk)
    check("SCAN_TIMEOUT" in tests, "no SCAN_TIMEOUT in %r" % status)
    check(not any(t.startswith("DKIM_") for t in tests), "DKIM hits without keys: %r" % status)
    check("dkim=" not in ar, "Authentication-Results: %r" % ar)


@case(conf=dict(CONF, spam_dkim_verify="no"), skip=NO_LAB)
def test_verify_off(c):
    mk = unique("dkimoff")
    msg, _ = sign(message(mk))
    _, tests, status, ar = deliver(c, msg, mk)
    check(not any(t.startswith("DKIM_") for t in tests), "spam_dkim_verify=no: %r" % status)
    check("dkim=" not in ar, "Authentication-Results: %r" % ar)


if __name__ == "__main__":
    sys.exit(main(globals()))
