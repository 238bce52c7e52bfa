"""test_curve.py - CurveZMQ on the TCP hops (lib/curve.h).

The whole pipeline on tcp://127.0.0.1 with curve = yes: mail flows and
`correio status` reaches every admin socket with the ctl key; a pyzmq
PUSH with the classifier's server key but a client key of its own is
refused by the ZAP handler (logged once, its frame never reaches the
classifier) while the same frame from an authorised key does; `correio
keys generate` keeps existing pairs unless --force; a stage whose
endpoint is not loopback and that has no keys refuses to start, naming
the parameter.
"""

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, BUILD, SLOW, Correio, case, check, free_port, main,  # noqa: E402
                     wait_for, wait_log)

try:
    import zmq
except ImportError:         # Debian's python3-zmq; run with /usr/bin/python3
    zmq = None

STAGE_ENDPOINTS = ("classifier_endpoint", "router_endpoint", "delivery_endpoint",
                   "ingress_events_endpoint", "ingress_submit_endpoint", "router_policy_endpoint",
                   "ingress_admin_endpoint", "classifier_admin_endpoint",
                   "router_admin_endpoint", "delivery_admin_endpoint", "fetcher_admin_endpoint")


def tcp_conf():
    return {name: "tcp://127.0.0.1:%d" % free_port() for name in STAGE_ENDPOINTS}


# The key pairs, made before the shared instance starts (stages read their
# key at startup); the directory is readable by mail_owner, as the ZAP
# handler re-reads the *.pub after the stage dropped privileges.
KEYS_TOP = tempfile.mkdtemp(prefix="correio-curve-")
os.chmod(KEYS_TOP, 0o755)
atexit.register(shutil.rmtree, KEYS_TOP, True)
KEYS = os.path.join(KEYS_TOP, "keys")
CURVE = dict(tcp_conf(), curve="yes", curve_keys_directory=KEYS)


def generate(*args):
    return subprocess.run([BIN, "keys", "generate"] + list(args), capture_output=True,
                          text=True, timeout=20 * SLOW)


_gen = generate(KEYS)


def read_pub(path):
    with open(path) as f:
        for line in f:
            if line.startswith("public="):
                return line.strip()[len("public="):]
    raise AssertionError("no public key in %s" % path)


def bad_frame_lines(c, since):
    return re.findall(r"dropped bad frame from classifier", c.log_since(since))


@case(conf=CURVE, timeout=90)
def curve_pipeline(c):
    keys = KEYS
    conf = CURVE
    check(_gen.returncode == 0, "keys generate: %s %s" % (_gen.stdout, _gen.stderr))
    for n in ("ingress", "classifier", "router", "delivery", "fetcher", "ctl"):
        st = os.stat(os.path.join(keys, n + ".key"))
        check(st.st_mode & 0o777 == 0o600, "%s.key mode %o" % (n, st.st_mode & 0o777))
    router_pub = read_pub(os.path.join(keys, "router.pub"))
    p = generate(keys)
    check(p.returncode == 0 and "kept" in p.stdout, "second generate: %r" % p.stdout)
    check(read_pub(os.path.join(keys, "router.pub")) == router_pub, "key replaced without --force")
    p = c.ctl("keys", "show")
    check(p.returncode == 0 and router_pub in p.stdout and "secret present" in p.stdout,
          "keys show: %r %r" % (p.stdout, p.stderr))
    c.send("sender@example.org", ["demo@example.test"],
           b"Subject: curve\r\n\r\nover CurveZMQ\r\n")
    c.wait_for_maildir_count("demo@example.test", 1, timeout=30)
    p = c.ctl("status")
    check(p.returncode == 0, "correio status over Curve: %s %s" % (p.stdout, p.stderr))
    check("rejected" not in c.log(), "a stage rejected a key: %s" % c.log_tail())

    if zmq is None:
        print("(no python3-zmq: the foreign-key client part is skipped)")
        return
    ep = conf["classifier_endpoint"]
    server = read_pub(os.path.join(keys, "classifier.pub")).encode()
    ctx = zmq.Context()
    try:
        def push(public, secret, data):
            s = ctx.socket(zmq.PUSH)
            s.linger = 0
            s.curve_serverkey = server
            s.curve_publickey = public
            s.curve_secretkey = secret
            s.connect(ep)
            s.send(data)        # queued until the handshake succeeds
            return s

        # the control: an authorised key's garbage reaches the classifier
        with open(os.path.join(keys, "ingress.key")) as f:
            kv = dict(l.strip().split("=", 1) for l in f if "=" in l and not l.startswith("#"))
        since = c.log_size()
        good = push(kv["public"].encode(), kv["secret"].encode(), b"not an envelope")
        wait_for(lambda: bad_frame_lines(c, since), 10, what="the authorised frame to arrive")
        good.close()

        # a foreign key: refused by ZAP, logged once, nothing arrives
        pub, sec = zmq.curve_keypair()
        since = c.log_size()
        bad = push(pub, sec, b"intruder frame")
        m = wait_log(c, r"curve: rejected client key (\S+) from 127\.0\.0\.1", since=since,
                     timeout=10)
        check(m.group(1) == pub.decode(), "rejected %s, expected %s" % (m.group(1), pub))
        # libzmq retries the handshake: still refused, logged only once
        wait_for(lambda: c.log_since(since).count("curve: rejected") == 1, 1)
        deadline = time.monotonic() + 1.5 * SLOW
        while time.monotonic() < deadline:
            check(not bad_frame_lines(c, since), "the foreign key's frame arrived")
            time.sleep(0.1)
        check(c.log_since(since).count("curve: rejected client key") == 1,
              "rejection logged more than once: %s" % c.log_since(since))
        bad.close()

        # and a plain (NULL) client gets nowhere either
        since = c.log_size()
        s = ctx.socket(zmq.PUSH)
        s.linger = 0
        s.connect(ep)
        s.send(b"plain frame")
        deadline = time.monotonic() + 1.0 * SLOW
        while time.monotonic() < deadline:
            check(not bad_frame_lines(c, since), "a plain client's frame arrived")
            time.sleep(0.1)
        s.close()
    finally:
        ctx.destroy(linger=0)


@case(conf=CURVE)
def curve_plaintext_refused(_shared):
    # 10.255.255.1 is not loopback; the check comes before any bind
    c = Correio(classifier_endpoint="tcp://10.255.255.1:%d" % free_port())
    try:
        p = subprocess.run([os.path.join(BUILD, "bin", "correio-classifier"), "-c", c.dir],
                           capture_output=True, text=True, timeout=20 * SLOW,
                           stdin=subprocess.DEVNULL)
        check(p.returncode != 0, "the classifier started without keys: %r" % p.stderr)
        check("classifier_endpoint = tcp://10.255.255.1" in p.stderr
              and "curve_allow_plaintext" in p.stderr and "correio keys generate" in p.stderr,
              "startup error does not name the parameter: %r" % p.stderr)
        # another stage reading the same configuration refuses it too
        p = subprocess.run([os.path.join(BUILD, "bin", "correio-router"), "-c", c.dir],
                           capture_output=True, text=True, timeout=20 * SLOW,
                           stdin=subprocess.DEVNULL)
        check(p.returncode != 0 and "classifier_endpoint" in p.stderr,
              "router: %r" % p.stderr)
    finally:
        c.cleanup()


if __name__ == "__main__":
    sys.exit(main(globals()))
