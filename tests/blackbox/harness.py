"""harness.py - start a real correio on loopback and drive it from tests.

Standard library only.  Run the tests with Debian's /usr/bin/python3.

    c = Correio(tmpdir, smtpd_timeout="2s")   # writes DIR/correio.conf, DIR/users
    c.start()                                  # waits for the 220 banner
    c.send("a@example.com", ["demo@example.test"], msg_bytes)
    c.wait_for_maildir_count("demo@example.test", 1, timeout=20)
    c.stop()                                   # SIGTERM, wait, kill -9 leftovers

Onward delivery: SmtpPeer (tests/peers/smtp_peer.py), PostfixServer and
DovecotLmtp start test-owned servers on 127.0.0.x; ensure_dns_lab() starts
the DNS lab when none runs; send_mail, wait_status, queue_entry,
wait_notice and parse_dsn look at what delivery did.

Environment:
    CORREIO_BUILD   build directory (default: build), relative to the repo root
    CORREIO_SANITIZER  non-empty when the build has ASan/UBSan (longer timeouts)
    KEEP=1          keep the temporary directories

A test module lists its cases with @case and ends with
    if __name__ == "__main__": sys.exit(main(globals()))
Each case prints one line: "PASS name (1.2s)", "FAIL name: reason" or
"SKIP name: reason"; tests/run-blackbox.sh counts them.
"""

import atexit
import json
import os
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("CORREIO_BUILD", "build")
if not os.path.isabs(BUILD):
    BUILD = os.path.join(REPO, BUILD)
BIN = os.path.join(BUILD, "bin", "correio")
SANITIZER = bool(os.environ.get("CORREIO_SANITIZER"))
SLOW = 3.0 if SANITIZER else 1.0          # timeout multiplier
STAGES = tuple(os.environ.get("CORREIO_STAGES", "ingress classifier router delivery fetcher").split())
DOMAIN = "example.test"
DEFAULT_USERS = ("demo@example.test", "alice@example.test", "bob@example.test",
                 "carol@example.test", "dave@example.test")
ADDED_HEADERS = ("return-path", "delivered-to", "received", "authentication-results",
                 "received-spf", "x-spam-score", "x-spam-status", "x-spam-flag")
SAN_PATTERNS = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|"
                          r"runtime error:|SUMMARY: UndefinedBehaviorSanitizer|"
                          r"ERROR: ThreadSanitizer")


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def wait_for(cond, timeout, interval=0.05, what="condition"):
    """Poll cond() until it returns a true value or timeout (scaled by SLOW)
    seconds pass; returns the value, raises TestFailure on timeout."""
    deadline = time.monotonic() + timeout * SLOW
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TestFailure("timeout (%.1fs) waiting for %s" % (timeout * SLOW, what))
        time.sleep(interval)


_used_ports = set()
_port_lock = threading.Lock()


def free_port():
    """A loopback TCP port nobody listens on, never handed out twice in this
    process."""
    with _port_lock:
        for _ in range(100):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            if port not in _used_ports:
                _used_ports.add(port)
                return port
    raise RuntimeError("no free port")


def test_dns():
    """The DNS lab (tests/dns/, started by tests/run-all.sh) as
    "127.0.0.1:PORT", or None when no lab runs (then skip DNS cases)."""
    return os.environ.get("CORREIO_TEST_DNS") or None


_cert_dir = None


def tls_cert():
    """A self-signed certificate for localhost/127.0.0.1 made once per run:
    (cert_path, key_path), readable by mail_owner."""
    global _cert_dir
    if _cert_dir is None:
        d = tempfile.mkdtemp(prefix="correio-cert-")
        os.chmod(d, 0o755)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
                        "-days", "30", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                        "-keyout", os.path.join(d, "key.pem"),
                        "-out", os.path.join(d, "cert.pem")],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.chmod(os.path.join(d, "key.pem"), 0o644)
        atexit.register(shutil.rmtree, d, True)
        _cert_dir = d
    return os.path.join(_cert_dir, "cert.pem"), os.path.join(_cert_dir, "key.pem")


_live = set()
_cleanup_hooks = []         # more to stop at exit and on SIGTERM (peers, labs)


def at_cleanup(fn):
    """Run fn at exit, and on SIGTERM too (atexit does not then)."""
    _cleanup_hooks.append(fn)


def _cleanup_all():
    for c in list(_live):
        try:
            c.stop()
        except Exception:
            pass
    for hook in list(_cleanup_hooks):
        try:
            hook()
        except Exception:
            pass


atexit.register(_cleanup_all)


def _on_term(signum, frame):
    _cleanup_all()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_term)


def pids_with_cmdline(pred):
    """pids of the processes whose argv (a list of str) satisfies pred."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % d, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        argv = [a.decode("utf-8", "replace") for a in argv if a]
        if argv and pred(argv):
            out.append(int(d))
    return out


def _proc_status(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(l.split(":", 1) for l in f if ":" in l)
    except OSError:
        return {}


def _mail_owner():
    """CORREIO_MAIL_OWNER, else the correio system user (mk/deps.sh makes
    it; the stages refuse to run as uid 0), else root."""
    if os.environ.get("CORREIO_MAIL_OWNER"):
        return os.environ["CORREIO_MAIL_OWNER"]
    import pwd
    try:
        pwd.getpwnam("correio")
        return "correio"
    except KeyError:
        return "root"


MAIL_OWNER = _mail_owner()


def stage_dir(path):
    """A configuration directory whose run/, data/ and mail/ a stage can
    fill once it drops root to MAIL_OWNER, as `correio run` makes them
    (for stages started alone: `correio-STAGE -c path`)."""
    os.makedirs(path, exist_ok=True)
    os.chmod(path, 0o755)
    if os.getuid() == 0:
        import pwd
        pw = pwd.getpwnam(MAIL_OWNER)
        for sub in ("run", "data", "mail"):
            os.makedirs(os.path.join(path, sub), exist_ok=True)
            os.chown(os.path.join(path, sub), pw.pw_uid, pw.pw_gid)


class Correio:
    def __init__(self, tmpdir=None, users=DEFAULT_USERS, **conf):
        self.dir = tmpdir or tempfile.mkdtemp(prefix="correio-bb-")
        self.own_dir = tmpdir is None
        self.port = free_port()
        self.conf = {
            "myhostname": "mx.example.test",
            "mydestination": DOMAIN,
            "mynetworks": "127.0.0.0/8",
            "smtpd_listen": "127.0.0.1:%d" % self.port,
            "mail_root": os.path.join(self.dir, "mail"),
            "data_directory": os.path.join(self.dir, "data"),
            "run_directory": os.path.join(self.dir, "run"),
            "mail_owner": MAIL_OWNER,
        }
        # DNS only from the lab (never the machine's resolver); without a
        # lab, no client name lookups and every DNS check fails fast
        if test_dns():
            self.conf["dns_servers"] = test_dns()
            self.conf["dns_timeout"] = "2s"
        else:
            self.conf["dns_servers"] = "127.0.0.1:1"
            self.conf["smtpd_peername_lookup"] = "no"
        self.conf.update({k: str(v) for k, v in conf.items()})
        # a test may choose the listener (e.g. the port its MX peers use,
        # so that an MX at 127.0.0.1 is this instance): then talk to it
        m = re.fullmatch(r"127\.0\.0\.1:(\d+)", self.conf["smtpd_listen"].split(",")[0].strip())
        if m:
            self.port = int(m.group(1))
        self.users = list(users)
        self.proc = None
        self.logpath = os.path.join(self.dir, "log")
        # mail_owner must reach its directories under this one
        os.chmod(self.dir, 0o755)
        with open(os.path.join(self.dir, "correio.conf"), "w") as f:
            for k, v in self.conf.items():
                f.write("%s = %s\n" % (k, v))
        with open(os.path.join(self.dir, "users"), "w") as f:
            for u in self.users:
                f.write("%s:{PLAIN}secret\n" % u)
        os.chmod(os.path.join(self.dir, "users"), 0o644)

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout=20):
        if not os.access(BIN, os.X_OK):
            raise TestFailure("no executable %s (build first)" % BIN)
        self._log = open(self.logpath, "ab")
        self.proc = subprocess.Popen([BIN, "-c", self.dir, "run"],
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=self._log, start_new_session=True)
        _live.add(self)

        def banner():
            if self.proc.poll() is not None:
                raise TestFailure("correio run exited with %s at startup"
                                  % self.proc.returncode)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                    s.settimeout(5 * SLOW)
                    return s.recv(512).startswith(b"220")
            except OSError:
                return False
        wait_for(banner, timeout, interval=0.05, what="SMTP banner on port %d" % self.port)
        wait_for(lambda: all(self.stage_pid(n) for n in STAGES), timeout,
                 what="every stage process")
        return self

    def stop(self, timeout=20):
        """SIGTERM the supervisor, wait, then kill -9 whatever is left of
        this instance (by pid).  Returns the supervisor's exit status."""
        _live.discard(self)
        rc = None
        if self.proc is not None:
            if self.proc.poll() is None:
                try:
                    self.proc.send_signal(signal.SIGTERM)
                    rc = self.proc.wait(timeout * SLOW)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            else:
                rc = self.proc.returncode
            if rc is None:
                rc = self.proc.returncode
        for pid in self.all_pids():
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None
        return rc

    def cleanup(self):
        self.stop()
        if self.own_dir and os.environ.get("KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    # ------------------------------------------------------------ processes
    def all_pids(self):
        """Every process of this instance: supervisor and stages."""
        def mine(argv):
            return (os.path.basename(argv[0]).startswith("correio") and
                    self.dir in " ".join(argv[1:]))
        return pids_with_cmdline(mine)

    def stage_pid(self, name):
        """pid of correio-NAME of this instance (None if not running)."""
        prog = "correio-" + name

        def match(argv):
            return (os.path.basename(argv[0]) == prog and self.dir in " ".join(argv[1:]))
        pids = [p for p in pids_with_cmdline(match)
                if _proc_status(p).get("State", "").strip()[:1] not in ("Z", "")]
        return pids[0] if pids else None

    def stage_pids(self):
        return {n: self.stage_pid(n) for n in STAGES}

    def ctl(self, *args, input=None, timeout=20):
        return subprocess.run([BIN, "-c", self.dir] + list(args), input=input,
                              capture_output=True, timeout=timeout * SLOW, text=True)

    # ------------------------------------------------------------ log
    def log(self):
        try:
            with open(self.logpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return os.path.getsize(self.logpath)
        except OSError:
            return 0

    def log_since(self, offset):
        return self.log()[offset:] if offset else self.log()

    def log_tail(self, n=40):
        return "\n".join(self.log().splitlines()[-n:])

    def sanitizer_reports(self, text=None):
        text = self.log() if text is None else text
        return [l for l in text.splitlines() if SAN_PATTERNS.search(l)]

    # ------------------------------------------------------------ SMTP
    def smtp(self, timeout=30):
        s = smtplib.SMTP("127.0.0.1", self.port, timeout=timeout * SLOW)
        s.ehlo("client.example")
        return s

    def send(self, sender, rcpts, msg, mail_options=(), timeout=30):
        """sendmail over a fresh session; returns the refused dict."""
        with smtplib.SMTP("127.0.0.1", self.port, timeout=timeout * SLOW) as s:
            s.ehlo("client.example")
            return s.sendmail(sender, rcpts, msg, mail_options=list(mail_options))

    def raw(self, timeout=15):
        return RawSMTP(self.port, timeout)

    # ------------------------------------------------------------ Maildir
    def maildir(self, addr):
        local, domain = addr.split("@", 1)
        return os.path.join(self.conf["mail_root"], domain.lower(), local.lower())

    def maildir_files(self, addr):
        """Paths of the delivered messages (new/ and cur/), sorted."""
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.maildir(addr), sub)
            try:
                out += [os.path.join(d, n) for n in os.listdir(d) if not n.startswith(".")]
            except OSError:
                pass
        return sorted(out)

    def maildir_copies(self, addr, marker, folders=("", "Junk")):
        """[(folder, bytes)] of the delivered messages holding marker, in the
        inbox (folder "") and the Maildir++ folders named, in that order."""
        out = []
        for folder in folders:
            for sub in ("new", "cur"):
                d = os.path.join(self.maildir(addr), "." + folder if folder else "", sub)
                try:
                    names = os.listdir(d)
                except OSError:
                    continue
                for n in names:
                    try:
                        with open(os.path.join(d, n), "rb") as f:
                            data = f.read()
                    except OSError:
                        continue
                    if marker.encode() in data:
                        out.append((folder, data))
        return out

    def maildir_messages(self, addr):
        res = []
        for p in self.maildir_files(addr):
            try:
                with open(p, "rb") as f:
                    res.append(f.read())
            except OSError:
                pass
        return res

    def wait_for_maildir_count(self, addr, n, timeout=20):
        return wait_for(lambda: len(self.maildir_files(addr)) >= n and self.maildir_files(addr),
                        timeout, what="%d message(s) in %s's Maildir" % (n, addr))

    def wait_for_message(self, addr, marker, timeout=20):
        """The delivered message (bytes) containing marker."""
        if isinstance(marker, str):
            marker = marker.encode()

        def find():
            for m in self.maildir_messages(addr):
                if marker in m:
                    return m
            return None
        return wait_for(find, timeout, what="a message with %r in %s's Maildir" % (marker, addr))


# ---------------------------------------------------------------- raw SMTP
class RawSMTP:
    """A plain socket speaking SMTP by hand, for pipelining, smuggling and
    malformed commands.  read_reply() returns (code, [lines]) or None at EOF."""

    def __init__(self, port, timeout=15):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout * SLOW)
        self.sock.settimeout(timeout * SLOW)
        self.buf = b""
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, line):
        """Send one command line (CRLF added) and read its reply."""
        self.send(line + "\r\n" if isinstance(line, str) else line + b"\r\n")
        return self.read_reply()

    def _line(self):
        while b"\n" not in self.buf:
            if self.eof:
                return None
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                self.eof = True
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_reply(self):
        lines = []
        while True:
            line = self._line()
            if line is None:
                if lines:
                    raise TestFailure("connection closed inside a multi-line reply: %r" % lines)
                return None
            text = line.decode("utf-8", "replace")
            lines.append(text)
            if len(text) < 3 or not text[:3].isdigit():
                raise TestFailure("malformed reply line %r" % text)
            if len(text) == 3 or text[3] == " ":
                return int(text[:3]), lines

    def expect(self, code, enhanced=None, line=None):
        """Read a reply (or send `line` first) and check its code and
        enhanced status code; returns the reply text."""
        r = self.cmd(line) if line is not None else self.read_reply()
        what = ("reply to %r" % line) if line is not None else "reply"
        check(r is not None, "connection closed, expected %s for %s" % (code, what))
        text = "\n".join(r[1])
        check(r[0] == code, "expected %s, got %r for %s" % (code, text, what))
        if enhanced:
            check(r[1][-1][4:].startswith(enhanced),
                  "expected %s %s, got %r for %s" % (code, enhanced, text, what))
        return text

    def read_all(self):
        """Every reply until the server closes; list of (code, lines)."""
        out = []
        while True:
            r = self.read_reply()
            if r is None:
                return out
            out.append(r)

    def is_closed(self, timeout=10):
        """True once the server has closed the connection (EOF/reset)."""
        self.sock.settimeout(timeout * SLOW)
        try:
            while True:
                d = self.sock.recv(4096)
                if not d:
                    return True
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False


def queue_id(reply_text):
    m = re.search(r"queued as ([0-9A-Za-z]+)", reply_text)
    return m.group(1) if m else None


def strip_added_headers(data):
    """The delivered file without the header lines correio adds in front
    (Return-Path, Delivered-To, Received with its continuation lines,
    the classifier's Authentication-Results and Received-SPF, X-Spam-Score,
    X-Spam-Status).  Returns (added_names, rest)."""
    names = []
    pos = 0
    in_added = False
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end + 1
        line = data[pos:end]
        if line[:1] in (b" ", b"\t") and in_added:
            pos = end
            continue
        name = line.split(b":", 1)[0].decode("latin-1").strip().lower() if b":" in line else None
        if name in ADDED_HEADERS:
            names.append(name)
            in_added = True
            pos = end
            continue
        break
    return names, data[pos:]


def header_value(data, name):
    """First header `name` of a message (bytes), unfolded, or None."""
    head = data.split(b"\n\n", 1)[0]
    m = re.search(rb"(?im)^" + re.escape(name.encode()) + rb":[ \t]*(.*(?:\n[ \t].*)*)", head)
    return m.group(1).replace(b"\n", b"").decode("latin-1").strip() if m else None


def simple_message(marker, sender="sender@client.example", to="demo@example.test",
                   subject="test"):
    return ("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client.example>\r\n"
            "\r\nbody %s\r\n" % (sender, to, subject, marker, marker)).encode()


def unique(prefix="m"):
    unique.n += 1
    return "%s-%d-%d-%d" % (prefix, os.getpid(), int(time.time() * 1000), unique.n)


unique.n = 0


# ---------------------------------------------------------------- peers
# Far ends for the delivery stage's SMTP/LMTP client (tests/peers/): the
# scriptable peer, a real Postfix and a real Dovecot LMTP, each started
# by the test that needs it on a 127.0.0.x address and stopped after it.

PEERS_DIR = os.path.join(REPO, "tests", "peers")


def has_marker(data, marker):
    """Is marker (from unique()) in data (str or bytes) as a whole word?
    ("m-1-2" is not in "m-1-20")"""
    if isinstance(data, bytes):
        m = marker.encode() if isinstance(marker, str) else marker
        return re.search(re.escape(m) + rb"(?![0-9A-Za-z_-])", data) is not None
    return re.search(re.escape(marker) + r"(?![0-9A-Za-z_-])", data) is not None
PEER_PY = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable
_live_peers = set()


def _stop_peers():
    for p in list(_live_peers):
        try:
            p.cleanup()
        except Exception:
            pass


_cleanup_hooks.append(_stop_peers)


def shared_port(addrs, avoid=()):
    """A TCP port free on every address in addrs (127.0.0.x), for peers
    that must all listen on one port (correio's smtp_default_port)."""
    with _port_lock:
        for _ in range(200):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            s.close()
            if port in _used_ports or port in avoid:
                continue
            ok = True
            for a in addrs:
                t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    t.bind((a, port))
                except OSError:
                    ok = False
                finally:
                    t.close()
                if not ok:
                    break
            if ok:
                _used_ports.add(port)
                return port
    raise RuntimeError("no port free on %s" % ", ".join(addrs))


def missing_binaries(*paths):
    """SKIP text naming what is not installed, or None."""
    gone = [p for p in paths if not os.access(p, os.X_OK)]
    return ("not installed: %s (mk/deps.sh installs it)" % ", ".join(gone)) if gone else None


class SmtpPeer:
    """tests/peers/smtp_peer.py on addr:port in a process of its own.

        with SmtpPeer("127.0.0.2", port, rcpt={"bad@x": "550 5.1.1 no"}) as p:
            ...
            t = p.wait_txn("marker")        # the transaction's event (dict)
            p.set(rcpt=None)                # from the next connection on

    Behaviour keywords are smtp_peer.py's JSON keys (greeting, ehlo, helo,
    mail, rcpt, data, dot, content, lmtp, extensions, tls (True: the
    harness certificate), require_tls, auth, require_auth, maildir)."""

    def __init__(self, addr="127.0.0.2", port=None, tmpdir=None, **behaviour):
        self.addr = addr
        self.port = port or shared_port([addr])
        self.dir = tmpdir or tempfile.mkdtemp(prefix="correio-peer-")
        self.own_dir = tmpdir is None
        os.makedirs(self.dir, exist_ok=True)
        self.events_path = os.path.join(self.dir, "events-%s-%d.jsonl" % (addr, self.port))
        self.config_path = os.path.join(self.dir, "config-%s-%d.json" % (addr, self.port))
        self.behaviour = {}
        self.proc = None
        self._events = []
        self._offset = 0
        self.set(**behaviour)

    def _conf(self, b):
        b = dict(b)
        if b.get("tls") is True:
            cert, key = tls_cert()
            b["tls_cert"], b["tls_key"] = cert, key
        b.pop("tls", None)
        return b

    def set(self, replace=False, **behaviour):
        """Change the behaviour (merged, or replaced with replace=True);
        it applies from the peer's next command on (TLS settings: from
        its next connection)."""
        self.behaviour = dict(behaviour) if replace else dict(self.behaviour, **behaviour)
        self.behaviour = {k: v for k, v in self.behaviour.items() if v is not None}
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self._conf(self.behaviour), f)
        os.replace(tmp, self.config_path)
        # the peer compares mtime and size: make a change within one
        # timestamp tick visible too
        st = os.stat(self.config_path)
        os.utime(self.config_path, ns=(st.st_atime_ns, st.st_mtime_ns + 1))
        return self

    def start(self, timeout=15):
        self.proc = subprocess.Popen(
            [PEER_PY, os.path.join(PEERS_DIR, "smtp_peer.py"), "--listen",
             "%s:%d" % (self.addr, self.port), "--events", self.events_path,
             "--config", self.config_path, "--exit-with-parent"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=open(os.path.join(self.dir, "peer-%s.err" % self.addr), "ab"),
            start_new_session=True)
        _live_peers.add(self)

        def ready():
            if self.proc.poll() is not None:
                raise TestFailure("smtp_peer on %s:%d exited with %s (port taken?)"
                                  % (self.addr, self.port, self.proc.returncode))
            return any(e.get("ev") == "ready" for e in self.events())
        wait_for(ready, timeout, what="smtp_peer ready on %s:%d" % (self.addr, self.port))
        return self

    def stop(self):
        _live_peers.discard(self)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def cleanup(self):
        self.stop()
        if self.own_dir and os.environ.get("KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    # ------------------------------------------------------------ what it saw
    def events(self, kind=None):
        """Every event so far (dicts), or those of one kind."""
        try:
            with open(self.events_path, "rb") as f:
                f.seek(self._offset)
                chunk = f.read()
        except OSError:
            chunk = b""
        end = chunk.rfind(b"\n")
        if end >= 0:
            for line in chunk[:end].split(b"\n"):
                try:
                    self._events.append(json.loads(line))
                except ValueError:
                    pass
            self._offset += end + 1
        return [e for e in self._events if kind is None or e.get("ev") == kind]

    def txns(self, marker=None):
        """Transactions that got to the end of DATA (with marker in their
        content)."""
        return [e for e in self.events("txn") if marker is None or has_marker(e.get("data", ""), marker)]

    def delivered(self, marker=None):
        """Transactions the peer accepted for at least one recipient."""
        return [t for t in self.txns(marker) if t.get("delivered")]

    def connections(self):
        return len(self.events("connect"))

    def commands(self, conn=None):
        return [e for e in self.events("cmd") if conn is None or e["conn"] == conn]

    def wait_event(self, pred, timeout=20, what="an event"):
        return wait_for(lambda: next((e for e in self.events() if pred(e)), None),
                        timeout, what="%s at the peer %s:%d" % (what, self.addr, self.port))

    def wait_txn(self, marker, timeout=20, delivered=True):
        """The first transaction with marker (delivered=True: that the
        peer accepted)."""
        def find():
            ts = self.delivered(marker) if delivered else self.txns(marker)
            return ts[0] if ts else None
        return wait_for(find, timeout, what="a transaction with %r at the peer %s:%d"
                        % (marker, self.addr, self.port))


class DovecotLmtp:
    """A real Dovecot LMTP server (tests/peers/dovecot.sh) on addr:port and
    the UNIX socket .socket; Maildirs under .dir/mail/DOMAIN/USER/.  Its
    users: alice/bob@lmtp.test, demo/alice@example.test,
    relayuser@postfix.test (password "secret").  Also the auth socket
    .auth_socket for Postfix."""
    SKIP = staticmethod(lambda: missing_binaries("/usr/sbin/dovecot", "/usr/lib/dovecot/lmtp"))

    def __init__(self, addr="127.0.0.40", port=None):
        self.addr = addr
        self.port = port or shared_port([addr])
        self.dir = tempfile.mkdtemp(prefix="correio-dovecot-")
        self.socket = os.path.join(self.dir, "run", "lmtp")
        self.auth_socket = os.path.join(self.dir, "run", "auth-postfix")

    def start(self):
        p = subprocess.run(["sh", os.path.join(PEERS_DIR, "dovecot.sh"), "start", self.dir,
                            self.addr, str(self.port)], capture_output=True, text=True,
                           timeout=60)
        if p.returncode != 0:
            raise TestFailure("dovecot.sh start: exit %d: %s" % (p.returncode, p.stderr[-1500:]))
        _live_peers.add(self)
        return self

    def stop(self):
        _live_peers.discard(self)
        subprocess.run(["sh", os.path.join(PEERS_DIR, "dovecot.sh"), "stop", self.dir],
                       capture_output=True, timeout=60)

    def cleanup(self):
        self.stop()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def log(self):
        try:
            with open(os.path.join(self.dir, "dovecot.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def messages(self, addr):
        local, domain = addr.lower().split("@", 1)
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.dir, "mail", domain, local, sub)
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            for n in names:
                try:
                    with open(os.path.join(d, n), "rb") as f:
                        out.append(f.read())
                except OSError:
                    pass
        return out

    def wait_message(self, addr, marker, timeout=20):
        return wait_for(lambda: next((x for x in self.messages(addr) if has_marker(x, marker)), None),
                        timeout, what="%r in Dovecot's Maildir of %s" % (marker, addr))


class PostfixServer:
    """A real Postfix as receiving server (tests/peers/postfix.sh) on
    addr: .mx_port (STARTTLS offered, mail for postfix.test) and
    .sub_port (STARTTLS required, AUTH through auth_socket, e.g. a
    DovecotLmtp's).  Maildirs: .dir/mail/USER/ for USER@postfix.test."""
    SKIP = staticmethod(lambda: missing_binaries("/usr/sbin/postfix", "/usr/lib/postfix/sbin/smtpd"))

    def __init__(self, addr="127.0.0.30", mx_port=None, sub_port=None, auth_socket=None):
        self.addr = addr
        self.mx_port = mx_port or shared_port([addr])
        self.sub_port = sub_port or shared_port([addr], avoid=(self.mx_port,))
        self.auth_socket = auth_socket
        self.dir = tempfile.mkdtemp(prefix="correio-postfix-")

    def start(self):
        cert, key = tls_cert()
        args = ["sh", os.path.join(PEERS_DIR, "postfix.sh"), "start", self.dir, self.addr,
                str(self.mx_port), str(self.sub_port), cert, key]
        if self.auth_socket:
            args.append(self.auth_socket)
        p = subprocess.run(args, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise TestFailure("postfix.sh start: exit %d: %s" % (p.returncode, p.stderr[-1500:]))
        _live_peers.add(self)
        return self

    def stop(self):
        _live_peers.discard(self)
        subprocess.run(["sh", os.path.join(PEERS_DIR, "postfix.sh"), "stop", self.dir],
                       capture_output=True, timeout=60)

    def cleanup(self):
        self.stop()
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()

    def log(self):
        try:
            with open(os.path.join(self.dir, "maillog"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def messages(self, user):
        out = []
        for sub in ("new", "cur"):
            d = os.path.join(self.dir, "mail", user, sub)
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            for n in names:
                try:
                    with open(os.path.join(d, n), "rb") as f:
                        out.append(f.read())
                except OSError:
                    pass
        return out

    def wait_message(self, user, marker, timeout=20):
        return wait_for(lambda: next((x for x in self.messages(user) if has_marker(x, marker)), None),
                        timeout, what="%r in the test Postfix's Maildir of %s" % (marker, user))


_own_dns_lab = None


def ensure_dns_lab():
    """test_dns(), starting a DNS lab (tests/dns/lab.sh) for this process
    when none runs (a test file run on its own); None when unbound is
    missing.  Call it before making Correio instances."""
    global _own_dns_lab
    if test_dns():
        return test_dns()
    if not os.access("/usr/sbin/unbound", os.X_OK):
        return None
    d = tempfile.mkdtemp(prefix="correio-dnslab-")
    lab = os.path.join(REPO, "tests", "dns", "lab.sh")
    for _ in range(30):
        port = 20000 + int.from_bytes(os.urandom(2), "big") % 10000
        rc = subprocess.run(["sh", lab, "start", d, str(port)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=60).returncode
        if rc == 0:
            _own_dns_lab = d

            def stop_lab():
                if os.path.isdir(d):
                    subprocess.run(["sh", lab, "stop", d], timeout=60)
                    shutil.rmtree(d, True)
            _cleanup_hooks.append(stop_lab)
            os.environ["CORREIO_TEST_DNS"] = "127.0.0.1:%d" % port
            return test_dns()
        if rc != 2:
            break
    shutil.rmtree(d, True)
    return None


# ---------------------------------------------------------------- DSNs
def parse_dsn(data):
    """A delivery status notification (bytes) taken apart with the email
    package: dict(msg=the Message, report=its multipart/report part or
    None, text=the human part's text, per_message={field: value},
    recipients=[{field: value} per recipient], original=the returned
    message or header part (bytes) or None, original_type)."""
    import email
    import email.policy
    msg = email.message_from_bytes(data, policy=email.policy.compat32)
    out = dict(msg=msg, report=None, text=None, per_message={}, recipients=[],
               original=None, original_type=None)
    report = next((p for p in msg.walk() if p.get_content_type() == "multipart/report"), None)
    out["report"] = report
    if report is None or not report.is_multipart():
        return out
    # only the report's own parts: the returned original may hold
    # anything, a forged delivery-status part too
    seen_status = False
    for part in report.get_payload():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status" and not seen_status:
            seen_status = True
            blocks = part.get_payload()
            # compat32 gives a list of Message objects, one per block
            if isinstance(blocks, list):
                fields = [dict((k.lower(), re.sub(r"\r?\n[ \t]+", " ", v).strip())
                               for k, v in b.items()) for b in blocks]
            else:
                raw = blocks if isinstance(blocks, str) else blocks.decode("latin-1")
                fields = []
                for blk in re.split(r"\r?\n\r?\n", raw.strip()):
                    d = {}
                    for m in re.finditer(r"(?m)^([A-Za-z-]+):[ \t]*(.*(?:\r?\n[ \t].*)*)", blk):
                        d[m.group(1).lower()] = re.sub(r"\r?\n[ \t]+", " ", m.group(2)).strip()
                    fields.append(d)
            if fields:
                out["per_message"] = fields[0]
                out["recipients"] = [f for f in fields[1:] if f]
        elif ctype in ("message/rfc822", "text/rfc822-headers") and out["original"] is None:
            out["original_type"] = ctype
            if ctype == "message/rfc822":
                inner = part.get_payload()
                inner = inner[0] if isinstance(inner, list) and inner else inner
                out["original"] = inner.as_bytes() if hasattr(inner, "as_bytes") else bytes(inner)
            else:
                out["original"] = part.get_payload(decode=True) or part.get_payload().encode("latin-1")
        elif ctype == "text/plain" and out["text"] is None:
            out["text"] = part.get_payload(decode=True).decode("utf-8", "replace")
    return out


def wait_log(c, pattern, timeout=20, since=0, what=None):
    """Wait until correio's log (from byte offset since) has a line
    matching the regular expression; returns the match."""
    rx = re.compile(pattern)
    return wait_for(lambda: rx.search(c.log_since(since)), timeout,
                    what=what or "log line /%s/" % pattern)


# ---------------------------------------------------------------- delivery
def send_mail(c, sender, rcpts, msg, mail_options=(), rcpt_options=None, timeout=30,
              login=None):
    """One message over a fresh session, checking every reply is 2xx/3xx;
    rcpt_options: a list for every recipient or {rcpt: [options]}; login:
    AUTH as that user (password "secret") first.
    Returns the queue id from the 250 after the dot."""
    with smtplib.SMTP("127.0.0.1", c.port, timeout=timeout * SLOW) as s:
        s.ehlo("client.example")
        if login:
            s.login(login, "secret")
        code, text = s.mail(sender, list(mail_options))
        check(code == 250, "MAIL FROM:<%s> %s: %d %r" % (sender, " ".join(mail_options), code, text))
        for r in rcpts:
            opts = (rcpt_options.get(r, []) if isinstance(rcpt_options, dict)
                    else list(rcpt_options or []))
            code, text = s.rcpt(r, opts)
            check(code == 250, "RCPT TO:<%s> %s: %d %r" % (r, " ".join(opts), code, text))
        code, text = s.data(msg)
        check(code == 250, "DATA: %d %r" % (code, text))
    qid = queue_id(text.decode())
    check(qid, "no queue id in %r" % text)
    return qid


def delivery_status(c, qid, rcpt, status, since=0):
    """delivery's log line "QID: to=<rcpt>, relay=..., delay=..., [dsn=...,]
    status=STATUS (...)" (status a regular expression), as a match with
    groups relay, dsn (None without a dsn= field), status, text."""
    rx = re.compile(r"%s: to=<%s>, relay=(?P<relay>[^,]*), delay=[0-9.]+,(?: dsn=(?P<dsn>[^, ]*),)?(?: [a-z_]+=[^, ]*,)* status=(?P<status>%s) \((?P<text>.*)\)"
                    % (re.escape(qid), re.escape(rcpt), status))
    return rx.search(c.log_since(since))


def status_has(line, code):
    """Does a delivery_status match carry the enhanced status code (in
    its dsn= field or in its text)?"""
    return line.group("dsn") == code or re.search(r"(^|\D)%s(\D|$)" % re.escape(code),
                                                  line.group("text")) is not None


def wait_status(c, qid, rcpt, status, timeout=20, since=0):
    return wait_for(lambda: delivery_status(c, qid, rcpt, status, since), timeout,
                    what="%s: to=<%s> status=%s in the log" % (qid, rcpt, status))


def queue_entry(c, qid):
    """qid's lines in `correio queue list` (its row and the indented lines
    under it), or None when it is not listed."""
    p = c.ctl("queue", "list")
    lines = p.stdout.splitlines()
    for i, l in enumerate(lines):
        if re.match(r"%s[!\s]" % re.escape(qid), l):
            out = [l]
            for more in lines[i + 1:]:
                if not more.startswith("    "):
                    break
                out.append(more)
            return out
    return None


def rcpt_queue_state(c, qid, rcpt):
    """The state `correio queue list` shows for one recipient of qid
    ("deferred", "delivered", ...), or None."""
    e = queue_entry(c, qid) or []
    for l in e[1:]:
        f = l.split()
        if len(f) >= 2 and f[0] == rcpt:
            return f[1]
    return None


def notices(c, addr, marker, action=None):
    """The notices (DSNs, parsed with parse_dsn) in addr's Maildir about a
    message with marker; with action: those with a recipient of that
    Action (failed, delayed, delivered, relayed)."""
    out = []
    for data in c.maildir_messages(addr):
        if not has_marker(data, marker) or b"delivery-status" not in data.lower():
            continue
        d = parse_dsn(data)
        d["raw"] = data
        if action is None or any(r.get("action", "").lower() == action
                                 for r in d["recipients"]):
            out.append(d)
    return out


def wait_notice(c, addr, marker, action="failed", timeout=30):
    """The first notice to addr about marker with a recipient whose
    Action is action."""
    return wait_for(lambda: (notices(c, addr, marker, action) or [None])[0], timeout,
                    what="a %s notice about %r in %s's Maildir" % (action, marker, addr))


def dsn_rcpt(d, rcpt):
    """The per-recipient fields of rcpt in a parsed notice, or None."""
    for r in d["recipients"]:
        if r.get("final-recipient", "").split(";")[-1].strip().lower() == rcpt.lower():
            return r
    return None


# ---------------------------------------------------------------- runner
_cases = []


def case(conf=None, fresh=False, users=DEFAULT_USERS, timeout=60, skip=None,
         allow_restarts=False):
    """Declare a test case.  The function gets a started Correio.  Cases
    with the same conf share one instance unless fresh=True."""
    def deco(fn):
        _cases.append(dict(fn=fn, name=fn.__name__.replace("test_", "", 1),
                           conf=dict(conf or {}), fresh=fresh, users=tuple(users),
                           timeout=timeout, skip=skip, allow_restarts=allow_restarts))
        return fn
    return deco


class _Timeout(BaseException):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def main(namespace, prefix=None):
    prefix = prefix or os.path.splitext(os.path.basename(namespace["__file__"]))[0].replace("test_", "")
    wanted = set(sys.argv[1:])
    signal.signal(signal.SIGALRM, _alarm)
    instances = {}
    failed = 0

    def report(status, name, detail=""):
        line = "%s %s.%s%s" % (status, prefix, name, detail)
        print(line, flush=True)

    def finish_instance(c, label):
        nonlocal failed
        c.stop()
        reps = c.sanitizer_reports()
        if SANITIZER or reps:
            if reps:
                failed += 1
                report("FAIL", "sanitizer_clean[%s]" % label, ": " + "; ".join(reps[:5]))
                sys.stderr.write(c.log_tail(80) + "\n")
            else:
                report("PASS", "sanitizer_clean[%s]" % label)
        if os.environ.get("KEEP") != "1" and not reps and not getattr(c, "keep", False):
            shutil.rmtree(c.dir, ignore_errors=True)
        else:
            sys.stderr.write("kept %s\n" % c.dir)

    for cs in _cases:
        name = cs["name"]
        if wanted and name not in wanted:
            continue
        skip = cs["skip"]() if callable(cs["skip"]) else cs["skip"]
        if skip:
            report("SKIP", name, ": " + skip)
            continue
        key = (tuple(sorted(cs["conf"].items())), cs["users"])
        t0 = time.monotonic()
        c = None
        signal.alarm(int(cs["timeout"] * SLOW) + 30)
        try:
            if cs["fresh"] or key not in instances or not instances[key].alive():
                if not cs["fresh"] and key in instances:
                    finish_instance(instances.pop(key), "before " + name)
                c = Correio(users=cs["users"], **cs["conf"])
                c.start()
                if not cs["fresh"]:
                    instances[key] = c
            else:
                c = instances[key]
            before = c.stage_pids()
            logpos = c.log_size()
            cs["fn"](c)
            after = c.stage_pids()
            changed = [n for n in STAGES if before[n] != after[n]]
            check(not changed or cs["allow_restarts"], "stage(s) restarted during the test (crash?): %s; log:\n%s"
                  % (", ".join(changed), c.log_since(logpos)[-3000:]))
            check(c.alive(), "the supervisor exited")
            reps = c.sanitizer_reports(c.log_since(logpos))
            check(not reps, "sanitizer report: " + "; ".join(reps[:5]))
            report("PASS", name, " (%.1fs)" % (time.monotonic() - t0))
        except _Timeout:
            failed += 1
            report("FAIL", name, ": timed out after %ds" % (cs["timeout"] * SLOW + 30))
            if c:
                sys.stderr.write("--- log tail:\n%s\n" % c.log_tail())
        except Exception as e:
            failed += 1
            msg = str(e).splitlines()[0] if str(e) else repr(e)
            report("FAIL", name, ": " + msg)
            if not isinstance(e, TestFailure):
                traceback.print_exc(file=sys.stderr)
            elif len(str(e).splitlines()) > 1:
                sys.stderr.write(str(e) + "\n")
            if c:
                c.keep = True
                sys.stderr.write("--- %s log tail:\n%s\n" % (c.dir, c.log_tail()))
        finally:
            signal.alarm(0)
            if c is not None and (cs["fresh"] or c not in instances.values()):
                finish_instance(c, name)
    for key, c in instances.items():
        finish_instance(c, ",".join("%s=%s" % kv for kv in key[0]) or "default")
    return 1 if failed else 0
