#!/usr/bin/env python3
"""zone_server.py - a tiny DNS server whose answers a test changes while
it runs (the discovery tests: replicas come and go behind one name).

    zone_server.py ZONE_FILE PORT_FILE [ADDRESS]

Listens on UDP ADDRESS (default 127.0.0.1), port chosen by the kernel,
written to PORT_FILE (write then rename: a reader never sees half a
number).  Every query reads ZONE_FILE again, lines "NAME A|AAAA ADDRESS"
(# comments); a name with no line is NXDOMAIN, a known name without the
type asked is an empty NOERROR.  TTL 0, so nothing caches an answer.
Only A and AAAA: the standard library only, no dnslib needed.  Stops on
SIGTERM or when its parent dies (the parent's pid is watched).
"""
import ipaddress
import os
import signal
import socket
import struct
import sys


def load(path):
    zone = {}
    try:
        with open(path) as f:
            for line in f:
                line = line.split("#", 1)[0].split()
                if len(line) == 3 and line[1].upper() in ("A", "AAAA"):
                    zone.setdefault(line[0].lower().rstrip("."), []).append(
                        (line[1].upper(), line[2]))
    except OSError:
        pass
    return zone


def parse_question(pkt):
    """(id, flags, qname, qtype, end of question) or None."""
    if len(pkt) < 12:
        return None
    qid, flags, qd = struct.unpack("!HHH", pkt[:6])
    if qd != 1:
        return None
    pos, labels = 12, []
    while pos < len(pkt):
        n = pkt[pos]
        pos += 1
        if n == 0:
            break
        if n > 63 or pos + n > len(pkt):
            return None
        labels.append(pkt[pos:pos + n].decode("ascii", "replace"))
        pos += n
    if pos + 4 > len(pkt):
        return None
    qtype, _qclass = struct.unpack("!HH", pkt[pos:pos + 4])
    return qid, flags, ".".join(labels).lower(), qtype, pos + 4


def answer(pkt, zone):
    q = parse_question(pkt)
    if q is None:
        return None
    qid, flags, name, qtype, end = q
    records = zone.get(name)
    rcode = 3 if records is None else 0
    rdata = []
    for rtype, addr in records or []:
        try:
            if rtype == "A" and qtype == 1:
                rdata.append((1, ipaddress.IPv4Address(addr).packed))
            elif rtype == "AAAA" and qtype == 28:
                rdata.append((28, ipaddress.IPv6Address(addr).packed))
        except ValueError:
            pass
    rd = flags & 0x0100
    head = struct.pack("!HHHHHH", qid, 0x8400 | rd | 0x0080 | rcode, 1, len(rdata), 0, 0)
    body = pkt[12:end]
    for rtype, data in rdata:
        body += struct.pack("!HHHIH", 0xC00C, rtype, 1, 0, len(data)) + data
    return head + body


def main():
    zone_file, port_file = sys.argv[1], sys.argv[2]
    address = sys.argv[3] if len(sys.argv) > 3 else "127.0.0.1"
    parent = os.getppid()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((address, 0))
    sock.settimeout(1.0)
    with open(port_file + ".tmp", "w") as f:
        f.write("%d\n" % sock.getsockname()[1])
    os.rename(port_file + ".tmp", port_file)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        try:
            pkt, peer = sock.recvfrom(512)
        except socket.timeout:
            if os.getppid() != parent:
                return
            continue
        reply = answer(pkt, load(zone_file))
        if reply:
            sock.sendto(reply, peer)


if __name__ == "__main__":
    main()
