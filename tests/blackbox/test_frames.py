"""test_frames.py - a garbage ZeroMQ frame is logged and dropped, and the
stage keeps running.

Every stage input (classifier, router, delivery: envelopes; the ingress's
events socket: events) gets junk, an empty frame, a multi-part message,
well-formed protobuf with the wrong version or without a queue id, a
version field of the wrong wire type and 1 MB of junk over a PUSH socket;
every admin socket gets the same over REQ and must answer each with
status 1.  Afterwards the log holds one "dropped bad frame" warning per
frame (with its exact size and reason), no stage has restarted (the
harness compares pids after each case) and mail still arrives.

Needs python3-zmq (Debian's /usr/bin/python3).  Prints PASS/FAIL/SKIP per
case (see harness.py)."""

import os
import random
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (BIN, SLOW, TestFailure, case, check, main, simple_message,  # noqa: E402
                     unique, wait_for)

try:
    import zmq
except ImportError:          # reported as SKIP by every case
    zmq = None

DEMO = "demo@example.test"
SENDER = "sender@client.example"
WIRE_VERSION = 1             # lib/wire.h
NO_ZMQ = None if zmq else "python3-zmq is not installed (apt-get install python3-zmq)"


# ---------------------------------------------------------------- protobuf by hand
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_varint(field, value):
    return varint(field << 3 | 0) + varint(value)


def pb_bytes(field, data):
    if isinstance(data, str):
        data = data.encode()
    return varint(field << 3 | 2) + varint(len(data)) + data


def pb_decode(data):
    """{field: [values]} of a message: varints as int, length-delimited as
    bytes.  Raises TestFailure on anything else (replies use nothing else)."""
    out = {}
    i = 0

    def rd_varint():
        nonlocal i
        shift = n = 0
        while True:
            check(i < len(data), "truncated varint in reply %r" % data[:80])
            b = data[i]
            i += 1
            n |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                return n
    while i < len(data):
        key = rd_varint()
        field, wt = key >> 3, key & 7
        if wt == 0:
            v = rd_varint()
        elif wt == 2:
            ln = rd_varint()
            v = data[i:i + ln]
            i += ln
        else:
            raise TestFailure("unexpected wire type %d in reply %r" % (wt, data[:80]))
        out.setdefault(field, []).append(v)
    return out


def admin_reply(data):
    """(version, status, text) of an AdminReply frame."""
    f = pb_decode(data)
    status = f.get(2, [0])[0]
    if status >= 1 << 31:            # int32 as a 64-bit two's complement varint
        status -= 1 << 64
    return f.get(1, [0])[0], status, f.get(3, [b""])[0].decode("utf-8", "replace")


# ---------------------------------------------------------------- the garbage
_rng = random.Random(20240611)


def junk(n):
    # 0x07 first: field 0, wire type 7 - no protobuf decoder accepts that,
    # so the reason logged is always "does not decode"
    return b"\x07" + bytes(_rng.getrandbits(8) for _ in range(n - 1))


JUNK = junk(201)
HUGE = b"\x07" + os.urandom(1 << 20)            # 1048577 bytes
PART_A, PART_B = junk(303), junk(305)
WRONG_VERSION = pb_varint(1, 99)                 # b"\x08\x63": decodes, version 99
NO_QID = pb_varint(1, WIRE_VERSION)              # right version, nothing else
VERSION_AS_BYTES = pb_bytes(1, b"\x01")          # field 1 with the wrong wire type


def single_frames():
    """(name, frame, reason) for one-frame messages; reason is what the
    stage logs after "<size> bytes: <what>: "."""
    return [
        ("junk", JUNK, "does not decode"),
        ("empty", b"", "version 0, expected %d" % WIRE_VERSION),
        ("wrong version", WRONG_VERSION, "version 99, expected %d" % WIRE_VERSION),
        ("no queue id", NO_QID, "missing or malformed queue_id"),
        ("version as bytes", VERSION_AS_BYTES, "does not decode"),
        ("1 MB junk", HUGE, "does not decode"),
    ]


def dropped_line(src, size, what, reason):
    return "dropped bad frame from %s: %d bytes: %s: %s" % (src, size, what, reason)


def endpoint(c, name):
    return "ipc://%s/%s" % (c.conf["run_directory"], name)


def push_socket(ctx, ep):
    s = ctx.socket(zmq.PUSH)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDTIMEO, int(10000 * SLOW))
    s.connect(ep)
    return s


def still_delivers(c):
    m = unique("after-garbage")
    refused = c.send(SENDER, [DEMO], simple_message(m))
    check(refused == {}, "refused after the garbage: %r" % refused)
    c.wait_for_message(DEMO, m, timeout=30)


# ---------------------------------------------------------------- pipeline inputs
def garbage_to_input(c, sock_name, src, what, multipart_whole, stage):
    """Send every kind of garbage to one PULL input and check the log."""
    pos = c.log_size()
    pid_before = c.stage_pid(stage)
    ctx = zmq.Context()
    try:
        s = push_socket(ctx, endpoint(c, sock_name))
        frames = single_frames()
        for _, frame, _ in frames:
            s.send(frame)
        s.send_multipart([PART_A, PART_B])
        # a marker after everything: when its line is there, the stage has
        # read (and judged) every frame before it
        marker = junk(4099)
        s.send(marker)
        want = [dropped_line(src, len(f), what, r) for _, f, r in frames]
        want.append(dropped_line(src, len(marker), what, "does not decode"))
        if multipart_whole:
            want.append("dropping a multi-part frame on %s input" % stage)
        else:
            # the events socket decodes each part on its own
            want += [dropped_line(src, len(PART_A), what, "does not decode"),
                     dropped_line(src, len(PART_B), what, "does not decode")]

        def all_logged():
            log = c.log_since(pos)
            return all(w in log for w in want)
        try:
            wait_for(all_logged, 20, what="the dropped-frame warnings from %s" % stage)
        except TestFailure:
            log = c.log_since(pos)
            missing = [w for w in want if w not in log]
            raise TestFailure("missing log lines %r; log since:\n%s" % (missing, log[-3000:]))
        log = c.log_since(pos)
        if multipart_whole:
            for part in (PART_A, PART_B):
                bad = dropped_line(src, len(part), what, "does not decode")
                check(bad not in log, "a part of a multi-part message was decoded alone: %r" % bad)
        # each line is a warning of that stage's own process
        for w in want:
            line = next(l for l in log.splitlines() if w in l)
            check("correio/%s[%d]: warning: " % (stage, pid_before) in line,
                  "not a warning of %s pid %d: %r" % (stage, pid_before, line))
        s.close(0)
    finally:
        ctx.term()
    check(c.stage_pid(stage) == pid_before, "%s restarted" % stage)
    still_delivers(c)


@case(skip=NO_ZMQ)
def test_garbage_classifier_input(c):
    garbage_to_input(c, "classifier", "classifier", "envelope", True, "classifier")


@case(skip=NO_ZMQ)
def test_garbage_router_input(c):
    garbage_to_input(c, "router", "router", "envelope", True, "router")


@case(skip=NO_ZMQ)
def test_garbage_delivery_input(c):
    garbage_to_input(c, "delivery", "delivery input", "envelope", True, "delivery")


@case(skip=NO_ZMQ)
def test_garbage_ingress_events(c):
    garbage_to_input(c, "ingress-events", "ingress events", "event", False, "ingress")


@case(skip=NO_ZMQ, timeout=120)
def test_garbage_all_inputs_at_once(c):
    """A burst of junk to every input while mail flows: nothing lost."""
    ctx = zmq.Context()
    pos = c.log_size()
    try:
        socks = [push_socket(ctx, endpoint(c, n))
                 for n in ("classifier", "router", "delivery", "ingress-events")]
        markers = []
        for i in range(5):
            for s in socks:
                for _ in range(20):
                    s.send(junk(_rng.randint(2, 2000)))
            m = unique("burst")
            markers.append(m)
            check(c.send(SENDER, [DEMO], simple_message(m)) == {}, "refused during the burst")
        for m in markers:
            c.wait_for_message(DEMO, m, timeout=30)
        wait_for(lambda: c.log_since(pos).count("dropped bad frame from") >= 5 * 4 * 20, 20,
                 what="400 dropped-frame warnings")
        for s in socks:
            s.close(0)
    finally:
        ctx.term()


# ---------------------------------------------------------------- admin sockets
def admin_call(ctx, ep, parts, timeout=10):
    """One REQ round trip; returns the reply's (version, status, text)."""
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.RCVTIMEO, int(timeout * 1000 * SLOW))
    s.setsockopt(zmq.SNDTIMEO, int(timeout * 1000 * SLOW))
    try:
        s.connect(ep)
        s.send_multipart(parts)
        try:
            reply = s.recv_multipart()
        except zmq.Again:
            raise TestFailure("no reply from %s within %.0fs" % (ep, timeout * SLOW))
        check(len(reply) == 1, "multi-part admin reply: %r" % [p[:40] for p in reply])
        return admin_reply(reply[0])
    finally:
        s.close(0)


@case(skip=NO_ZMQ)
def test_garbage_admin_sockets(c):
    ctx = zmq.Context()
    try:
        for stage in ("ingress", "classifier", "router", "delivery"):
            ep = endpoint(c, stage + "-admin")
            pos = c.log_size()
            pid = c.stage_pid(stage)
            sent = single_frames()
            # no queue id is fine for a request: that one decodes, but has no
            # command; the rest must be refused as bad frames
            for name, frame, reason in sent:
                v, status, text = admin_call(ctx, ep, [frame])
                if name == "no queue id":
                    check(status == 2 and text == "unknown command",
                          "%s: request without a command: status %d %r" % (stage, status, text))
                    continue
                check(v == WIRE_VERSION, "%s: reply version %d" % (stage, v))
                check(status == 1, "%s: %s frame answered with status %d %r"
                      % (stage, name, status, text))
                check(text == "bad request frame", "%s: %s frame: text %r" % (stage, name, text))
            v, status, text = admin_call(ctx, ep, [PART_A, PART_B])
            check(status == 1, "%s: multi-part junk answered with status %d %r" % (stage, status, text))
            # a well-formed request for something unknown: status 2
            req = pb_varint(1, WIRE_VERSION) + pb_bytes(2, "no-such-command") + pb_bytes(3, "x")
            v, status, text = admin_call(ctx, ep, [req])
            check(status == 2 and text == "unknown command",
                  "%s: unknown command: status %d %r" % (stage, status, text))
            # and a real ping still works on the same socket
            v, status, text = admin_call(ctx, ep, [pb_varint(1, WIRE_VERSION) + pb_bytes(2, "ping")])
            check(status == 0 and text.startswith(stage + " ") and ("pid=%d" % pid) in text,
                  "%s: ping after the garbage: status %d %r" % (stage, status, text))
            want = [dropped_line("admin socket", len(f), "admin request", r)
                    for n, f, r in sent if n != "no queue id"]
            want.append(dropped_line("admin socket", len(PART_A), "admin request", "does not decode"))
            log = c.log_since(pos)
            missing = [w for w in want if w not in log]
            check(not missing, "%s: missing log lines %r; log:\n%s" % (stage, missing, log[-2000:]))
            check(c.stage_pid(stage) == pid, "%s restarted" % stage)
    finally:
        ctx.term()
    p = subprocess.run([BIN, "-c", c.dir, "status"], capture_output=True, text=True,
                       timeout=30 * SLOW)
    check(p.returncode == 0, "correio status after the garbage: exit %d\n%s%s"
          % (p.returncode, p.stdout, p.stderr))
    for stage in ("ingress", "classifier", "router", "delivery"):
        check("%s: up" % stage in p.stdout, "status does not say %s is up:\n%s" % (stage, p.stdout))
    still_delivers(c)


@case(skip=NO_ZMQ)
def test_log_names_every_drop(c):
    """Summary over the whole run so far: the supervisor log has dropped-frame
    warnings from every source, and no stage restart was logged."""
    log = c.log()
    for src in ("classifier", "router", "delivery input", "ingress events", "admin socket"):
        check("dropped bad frame from %s:" % src in log, "no dropped-frame warning from %s" % src)
    check("exited with status" not in log and "killed by signal" not in log,
          "the supervisor logged a stage exit:\n%s"
          % "\n".join(l for l in log.splitlines() if "exited" in l or "signal" in l)[-2000:])
    check("restarting in" not in log, "the supervisor restarted a stage")


if __name__ == "__main__":
    sys.exit(main(globals()))
