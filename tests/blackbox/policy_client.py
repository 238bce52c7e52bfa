"""policy_client.py - talk to a router's policy socket from tests.

Debian's python3 has no protobuf runtime and there is no Python code
generated from proto/correio.proto, so this file encodes PolicyRequest and
decodes PolicyReply / PolicyEntry by hand (only scalar and string fields;
proto3 wire format).  Keep the field numbers in step with correio.proto.

    from policy_client import ask, router_endpoint, PolicyClient
    ep = router_endpoint(c)                      # c: a harness Correio
    r = ask(ep, "GREYLIST", "a@x/b@y", recipient="b@y")
    r["action"] == "DEFER" and r["reason"] == "GREYLIST_NEW"
    ask(ep, "LIST", "", table="greylist")["entries"]   # list of dicts

ask() opens a DEALER, sends [empty][request], waits for the reply with the
same id and closes; it raises PolicyTimeout when no answer comes within
timeout seconds.  PolicyClient keeps one socket for many requests (and can
pipeline: send() then recv()).  send_frames() sends raw multi-part
messages (bad-frame tests).
"""

import itertools
import os
import re
import struct
import time

import zmq

KINDS = {"UNSPECIFIED": 0, "CONNECT": 1, "EVENT": 2, "GREYLIST": 3, "LIMIT_CHECK": 4,
         "LIMIT_COUNT": 5, "SPAM_SEEN": 6, "LIST": 10, "DELETE": 11, "PASS": 12, "BLOCK": 13}
ACTIONS = {0: "OK", 1: "DEFER", 2: "REJECT", 3: "BLOCKED", 4: "ERROR"}
WIRE_VERSION = 1

# PolicyRequest: name -> (field number, type); type "u" varint, "s" string, "b" bool
REQUEST_FIELDS = {
    "version": (1, "u"), "id": (2, "u"), "kind": (3, "u"), "key": (4, "s"),
    "client_ip": (5, "s"), "sender": (6, "s"), "recipient": (7, "s"), "reason": (8, "s"),
    "session": (9, "s"), "count": (10, "u"), "limit": (11, "u"), "table": (12, "s"),
    "no_reply": (13, "b"), "detail": (14, "s"),
}
REPLY_FIELDS = {1: ("version", "u"), 2: ("id", "u"), 3: ("action", "u"), 4: ("reason", "s"),
                5: ("text", "s"), 6: ("until", "u"), 7: ("spam_history", "b"),
                8: ("entries", "m"), 9: ("count", "u")}
ENTRY_FIELDS = {1: ("key", "s"), 2: ("state", "s"), 3: ("first", "u"), 4: ("last", "u"),
                5: ("until", "u"), 6: ("reason", "s"), 7: ("count", "u"), 8: ("node", "s")}


class PolicyTimeout(Exception):
    pass


# ------------------------------------------------------------ encoding
def _varint(n):
    if n < 0:
        n &= (1 << 64) - 1
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def encode_request(**fields):
    """A PolicyRequest from keyword fields (kind may be a name)."""
    out = bytearray()
    for name, value in sorted(fields.items(), key=lambda kv: REQUEST_FIELDS[kv[0]][0]):
        num, typ = REQUEST_FIELDS[name]
        if name == "kind" and isinstance(value, str):
            value = KINDS[value]
        if typ in ("u", "b"):
            value = int(value)
            if value == 0:
                continue
            out += _varint(num << 3) + _varint(value)
        else:
            data = value.encode() if isinstance(value, str) else bytes(value)
            if not data:
                continue
            out += _varint(num << 3 | 2) + _varint(len(data)) + data
    return bytes(out)


def _read_varint(buf, i):
    shift = n = 0
    while True:
        if i >= len(buf):
            raise ValueError("truncated varint")
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        if not b & 0x80:
            return n, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _decode(buf, fields, defaults):
    msg = dict(defaults)
    i = 0
    while i < len(buf):
        tag, i = _read_varint(buf, i)
        num, wt = tag >> 3, tag & 7
        if wt == 0:
            val, i = _read_varint(buf, i)
        elif wt == 2:
            ln, i = _read_varint(buf, i)
            val = bytes(buf[i:i + ln])
            if len(val) != ln:
                raise ValueError("truncated field")
            i += ln
        elif wt == 1:
            val = struct.unpack_from("<Q", buf, i)[0]
            i += 8
        elif wt == 5:
            val = struct.unpack_from("<I", buf, i)[0]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        if num not in fields:
            continue
        name, typ = fields[num]
        if typ == "s":
            msg[name] = val.decode("utf-8", "replace")
        elif typ == "b":
            msg[name] = bool(val)
        elif typ == "m":
            msg.setdefault(name, []).append(_decode(val, ENTRY_FIELDS, ENTRY_DEFAULTS))
        else:
            msg[name] = val
    return msg


ENTRY_DEFAULTS = {"key": "", "state": "", "first": 0, "last": 0, "until": 0, "reason": "",
                  "count": 0, "node": ""}


def decode_reply(data):
    """A PolicyReply as a dict; action as its name ("OK", "DEFER", ...)."""
    r = _decode(data, REPLY_FIELDS, {"version": 0, "id": 0, "action": 0, "reason": "",
                                     "text": "", "until": 0, "spam_history": False,
                                     "count": 0})
    r.setdefault("entries", [])
    r["entries"] = list(r["entries"])
    r["action"] = ACTIONS.get(r["action"], r["action"])
    return r


# ------------------------------------------------------------ sockets
_ids = itertools.count(int(time.time() * 1000) % 1000000 * 1000 + 1)
_ctx = None


def context():
    global _ctx
    if _ctx is None:
        _ctx = zmq.Context()
    return _ctx


def router_endpoint(c):
    """The router's policy endpoint of a harness Correio instance."""
    ep = c.conf.get("router_policy_endpoint", "ipc://$run_directory/router-policy")
    return re.sub(r"\$\{?run_directory\}?", lambda m: c.conf["run_directory"], ep)


class PolicyClient:
    """One DEALER connected to endpoint; close() when done."""

    def __init__(self, endpoint, hwm=10000):
        self.sock = context().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, hwm)
        self.sock.setsockopt(zmq.RCVHWM, hwm)
        self.sock.connect(endpoint)

    def send(self, kind, key, **fields):
        """Send one request without waiting; returns its id."""
        rid = fields.pop("id", None) or next(_ids)
        fields.setdefault("version", WIRE_VERSION)
        self.sock.send_multipart([b"", encode_request(kind=kind, key=key, id=rid, **fields)])
        return rid

    def recv(self, timeout=5.0):
        """The next reply (dict), or None after timeout seconds."""
        if not self.sock.poll(int(timeout * 1000)):
            return None
        frames = self.sock.recv_multipart()
        if len(frames) != 2 or frames[0] != b"":
            raise ValueError("unexpected reply frames: %r" % (frames,))
        return decode_reply(frames[1])

    def ask(self, kind, key, timeout=5.0, **fields):
        """Send and wait for the reply with the same id (others dropped)."""
        rid = self.send(kind, key, **fields)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            r = self.recv(max(left, 0)) if left > 0 else None
            if r is None:
                raise PolicyTimeout("no policy answer to %s %s within %.1fs" % (kind, key, timeout))
            if r["id"] == rid:
                return r

    def send_frames(self, frames):
        """Raw frames after the DEALER (the router adds the identity)."""
        self.sock.send_multipart(frames)

    def close(self):
        self.sock.close(0)


def ask(endpoint, kind, key, timeout=5.0, **fields):
    """One request to the router at endpoint; the reply as a dict:
    action, reason, text, until, count, spam_history, entries, id.
    Raises PolicyTimeout when nothing answers within timeout seconds."""
    cl = PolicyClient(endpoint)
    try:
        return cl.ask(kind, key, timeout=timeout, **fields)
    finally:
        cl.close()


def wait_answering(endpoint, timeout=20.0):
    """Poll until the router at endpoint answers (after a start/restart)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return ask(endpoint, "LIST", "-none-", timeout=0.5, table="limits")
        except PolicyTimeout:
            if time.monotonic() >= deadline:
                raise


class TestClock:
    """The file that CORREIO_TEST_CLOCK names: seconds added to the
    router's policy clock.  Create it before the Correio starts (the
    stages inherit the environment) and move time with advance()."""

    def __init__(self, path):
        self.path = path
        self.offset = 0
        d = os.path.dirname(path)
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o755)          # mail_owner reads it
        self._write()
        os.environ["CORREIO_TEST_CLOCK"] = path

    def _write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % self.offset)
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)

    def advance(self, seconds):
        self.offset += int(seconds)
        self._write()
