#!/usr/bin/python3
"""smtp_peer.py - a scriptable SMTP/LMTP server on loopback: the far end
of correio's delivery stage in the black-box tests.

Standard library only (asyncio + ssl), so it can do what a well-behaved
server library cannot: answer garbage, send an over-long reply line, hang
at any step, drop the connection in the middle of the content, and tell
whether the client pipelined its commands.

    smtp_peer.py --listen 127.0.0.2:2525 --events FILE [--config FILE.json]
                 [--maildir DIR] [--lmtp] [--tls-cert C --tls-key K]
                 [--require-tls] [--auth USER:PASS] [--require-auth]
                 [--no EXT]... [--size N]
                 [--greeting REPLY] [--ehlo-reply REPLY] [--mail-reply REPLY]
                 [--rcpt-reply [ADDR=]REPLY]... [--data-reply REPLY]
                 [--dot-reply [ADDR=]REPLY]... [--content drop]

A REPLY is a reply line ("451 4.3.0 try later"; "-" joins lines:
"250-a|250 b" sends two lines) or one of the words
    hang      never answer (until the client closes)
    drop      close the connection instead of answering
    garbage   answer a line that is not SMTP
    longline  answer a 250 reply line of 5000 characters
--rcpt-reply and --dot-reply take ADDR=REPLY per recipient (--dot-reply
per recipient is LMTP's reply after the final dot; in SMTP the "*"
entry is the one reply).  --content drop closes the connection after the
first chunk of message content (mid-DATA).

The behaviour is one JSON object (the keys of the options above:
greeting, ehlo, helo, mail, rcpt {addr: reply, "*": reply}, data, dot
{...}, dot_delay (seconds before answering the dot), content, lmtp,
extensions {PIPELINING: true, SIZE: n, ...}, require_tls, auth
"user:pass", require_auth, maildir, tls_cert, tls_key).
With --config FILE the peer reads it again whenever it changed, before
each command, so a test can change the peer's mind without a restart.

Events go to --events FILE (and stdout with -v), one JSON object a line:
    {"ev": "ready", "listen": "127.0.0.2:2525", "pid": N}
    {"ev": "connect", "conn": 1, "peer": "127.0.0.1:40000", "local": ...}
    {"ev": "cmd", "conn": 1, "line": "MAIL FROM:<a@b> SIZE=12", "read": 3}
    {"ev": "txn", "conn": 1, "helo": ..., "verb": "EHLO", "tls": true,
     "auth": "user" or null, "mail_from": "a@b", "mail_params": [...],
     "rcpts": [...], "rcpt_params": {addr: [...]}, "accepted": [...],
     "replies": {addr: "250 ..."}, "data": "...", "size": n,
     "pipelined": true, "file": "DIR/new/..."}
    {"ev": "close", "conn": 1, "why": "quit" | "eof" | "drop" | ...}
"read" numbers the socket reads of a connection: MAIL, RCPT and DATA
with the same number came in one read (the client pipelined them).
Loopback addresses only.
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import ssl
import sys
import time
import uuid

DEFAULT_EXTENSIONS = {"PIPELINING": True, "8BITMIME": True, "DSN": True, "SIZE": 10240000,
                      "SMTPUTF8": True, "ENHANCEDSTATUSCODES": True}
HANG_SECONDS = 3600
LONG_LINE = 5000
READ_CHUNK = 65536
MAX_LINE = 1 << 20          # a command line longer than this closes the connection


class Behaviour:
    """The peer's current behaviour: the JSON config, re-read when the
    file changes."""

    def __init__(self, base, path):
        self.base = base
        self.path = path
        self.mtime = None
        self.conf = dict(base)
        self.reload()

    def reload(self):
        if not self.path:
            return
        try:
            st = os.stat(self.path)
        except OSError:
            return
        key = (st.st_mtime_ns, st.st_size)
        if key == self.mtime:
            return
        try:
            with open(self.path) as f:
                over = json.load(f)
        except (OSError, ValueError):
            return              # half-written: the next connection reads it
        self.mtime = key
        conf = dict(self.base)
        conf.update(over)
        self.conf = conf


class Events:
    def __init__(self, path, verbose):
        self.f = open(path, "a", buffering=1) if path else None
        self.verbose = verbose

    def emit(self, **ev):
        ev.setdefault("t", round(time.time(), 6))
        line = json.dumps(ev, ensure_ascii=True)
        if self.f:
            self.f.write(line + "\n")
            self.f.flush()
        if self.verbose:
            print(line, flush=True)


def per_address(spec, addr):
    """A reply spec that is a string or {addr: reply, "*": reply}."""
    if spec is None or isinstance(spec, str):
        return spec
    low = {k.lower(): v for k, v in spec.items()}
    return low.get(addr.lower(), low.get("*"))


class Session:
    def __init__(self, server, reader, writer, n):
        self.server = server
        self.reader = reader
        self.writer = writer
        self.n = n
        self.buf = b""
        self.reads = 0
        self.marks = []         # (offset in buf, read number) per chunk
        self.line_read = 0
        self.tls = False
        self.helo = None
        self.verb = None
        self.auth = None
        self.reset()

    @property
    def conf(self):
        """The behaviour now: a change applies from the next command on,
        on connections already open too."""
        self.server.behaviour.reload()
        return self.server.behaviour.conf

    def reset(self):
        self.mail_from = None
        self.mail_params = []
        self.mail_read = None
        self.rcpts = []
        self.rcpt_params = {}
        self.rcpt_reads = []
        self.accepted = []
        self.rcpt_replies = {}

    def emit(self, **ev):
        self.server.events.emit(conn=self.n, **ev)

    # ------------------------------------------------------------ I/O
    async def readline(self):
        """One line without its CRLF (bytes), or None at EOF; sets
        line_read to the number of the read that brought its first byte."""
        while b"\n" not in self.buf:
            if len(self.buf) > MAX_LINE:
                return None
            chunk = await self.reader.read(READ_CHUNK)
            if not chunk:
                return None
            self.reads += 1
            self.marks.append((len(self.buf), self.reads))
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        used = len(line) + 1
        self.line_read = self.marks[0][1]
        for off, n in self.marks:
            if off <= 0:
                self.line_read = n
            else:
                break
        # the marks of what is left, shifted
        left = [(off - used, n) for off, n in self.marks]
        keep = [m for m in left if m[0] > 0]
        before = [m for m in left if m[0] <= 0]
        self.marks = ([(0, before[-1][1])] if before and self.buf else []) + keep
        return line[:-1] if line.endswith(b"\r") else line

    async def send(self, text):
        self.writer.write(text.encode("utf-8", "replace"))
        await self.writer.drain()

    async def reply(self, spec, default):
        """Answer with spec (or default when spec is None).  Returns the
        reply line sent, or raises Close for drop, or hangs."""
        r = default if spec is None else spec
        if r == "hang":
            self.emit(ev="hang")
            await asyncio.sleep(self.conf.get("hang_seconds", HANG_SECONDS))
            raise Close("hang over")
        if r == "drop":
            raise Close("drop")
        if r == "garbage":
            await self.send("this is not an SMTP reply\r\n")
            return "garbage"
        if r == "longline":
            await self.send("250 " + "x" * LONG_LINE + "\r\n")
            return "longline"
        lines = r.split("|")
        await self.send("".join(l + "\r\n" for l in lines))
        return lines[-1]

    # ------------------------------------------------------------ session
    async def run(self):
        conf = self.conf
        lmtp = conf.get("lmtp", False)
        await self.reply(conf.get("greeting"),
                         "220 peer.test %s test peer" % ("LMTP" if lmtp else "ESMTP"))
        if (conf.get("greeting") or "220")[:1] != "2":
            # a refusing server still answers QUIT (RFC 5321 3.1)
            while True:
                line = await self.readline()
                if line is None:
                    raise Close("eof")
                if line.upper().startswith(b"QUIT"):
                    await self.send("221 2.0.0 bye\r\n")
                    raise Close("quit")
                await self.send("503 5.5.1 no service\r\n")
        while True:
            line = await self.readline()
            if line is None:
                raise Close("eof")
            text = line.decode("utf-8", "replace")
            self.emit(ev="cmd", line=text if not text.upper().startswith("AUTH") else text[:10] + " ...",
                      read=self.line_read)
            verb = text.split(" ", 1)[0].upper()
            arg = text[len(verb):].strip()
            handler = getattr(self, "do_" + verb, None)
            if handler is None:
                await self.send("502 5.5.2 command not recognized\r\n")
                continue
            await handler(arg)

    def extensions(self):
        ext = dict(DEFAULT_EXTENSIONS)
        ext.update(self.conf.get("extensions") or {})
        out = []
        for name, v in ext.items():
            if not v:
                continue
            if name == "SIZE":
                out.append("SIZE %d" % v if v is not True else "SIZE")
            else:
                out.append(name)
        if self.server.tls_ctx and not self.tls:
            out.append("STARTTLS")
        if self.conf.get("auth") and (self.tls or not self.conf.get("require_tls")):
            out.append("AUTH PLAIN LOGIN")
        return out

    async def hello(self, verb, arg):
        lmtp = self.conf.get("lmtp", False)
        if (verb == "LHLO") != lmtp:
            await self.send("500 5.5.1 %s not for this protocol\r\n" % verb)
            return
        spec = self.conf.get("helo" if verb == "HELO" else "ehlo")
        if spec is not None and spec[:1] != "2" and spec not in ("longline",):
            await self.reply(spec, None)
            return
        self.helo, self.verb = arg, verb
        self.reset()
        if verb == "HELO":
            await self.reply(spec, "250 peer.test")
            return
        if spec is not None:
            await self.reply(spec, None)
            return
        lines = ["peer.test"] + self.extensions()
        await self.send("".join("250%s%s\r\n" % ("-" if i < len(lines) - 1 else " ", l)
                                for i, l in enumerate(lines)))

    async def do_EHLO(self, arg):
        await self.hello("EHLO", arg)

    async def do_HELO(self, arg):
        await self.hello("HELO", arg)

    async def do_LHLO(self, arg):
        await self.hello("LHLO", arg)

    async def do_STARTTLS(self, arg):
        if not self.server.tls_ctx or self.tls:
            await self.send("502 5.5.1 no STARTTLS here\r\n")
            return
        if self.buf:
            # pipelined after STARTTLS: the injection attack, refuse
            await self.send("501 5.5.1 pipelined after STARTTLS\r\n")
            raise Close("starttls-injection")
        spec = self.conf.get("starttls")
        if spec is not None and spec[:1] != "2":
            await self.reply(spec, None)
            return
        await self.send("220 2.0.0 ready to start TLS\r\n")
        if self.conf.get("starttls_break"):
            # a broken TLS stack: no handshake, just noise and a close
            await self.send("this is not a TLS record\r\n")
            raise Close("starttls-break")
        await self.writer.start_tls(self.server.tls_ctx)
        self.tls = True
        self.helo = self.verb = None
        self.auth = None
        self.reset()
        self.emit(ev="tls", version=self.writer.get_extra_info("ssl_object").version())

    async def do_AUTH(self, arg):
        want = self.conf.get("auth")
        if not want or (self.conf.get("require_tls") and not self.tls):
            await self.send("503 5.5.1 AUTH not available\r\n")
            return
        if self.auth:
            await self.send("503 5.5.1 already authenticated\r\n")
            return
        parts = arg.split()
        mech = parts[0].upper() if parts else ""
        try:
            if mech == "PLAIN":
                if len(parts) > 1:
                    blob = parts[1]
                else:
                    await self.send("334 \r\n")
                    blob = (await self.readline() or b"*").decode()
                if blob == "*":
                    await self.send("501 5.7.0 AUTH aborted\r\n")
                    return
                fields = base64.b64decode(blob, validate=True).split(b"\0")
                user, pw = fields[1].decode(), fields[2].decode()
            elif mech == "LOGIN":
                if len(parts) > 1:
                    user = base64.b64decode(parts[1], validate=True).decode()
                else:
                    await self.send("334 VXNlcm5hbWU6\r\n")
                    user = base64.b64decode(await self.readline() or b"", validate=True).decode()
                await self.send("334 UGFzc3dvcmQ6\r\n")
                pw = base64.b64decode(await self.readline() or b"", validate=True).decode()
            else:
                await self.send("504 5.5.4 unknown mechanism\r\n")
                return
        except (ValueError, IndexError, UnicodeDecodeError):
            await self.send("501 5.5.2 cannot decode\r\n")
            return
        if "%s:%s" % (user, pw) == want:
            self.auth = user
            self.emit(ev="auth", user=user, mech=mech, tls=self.tls)
            await self.send("235 2.7.0 authenticated\r\n")
        else:
            self.emit(ev="auth-failed", user=user, mech=mech)
            await self.send("535 5.7.8 authentication failed\r\n")

    def params(self, rest):
        return [p for p in rest.split() if p]

    async def do_MAIL(self, arg):
        if self.verb is None:
            await self.send("503 5.5.1 send EHLO first\r\n")
            return
        if self.conf.get("require_tls") and not self.tls:
            await self.send("530 5.7.0 Must issue a STARTTLS command first\r\n")
            return
        if self.conf.get("require_auth") and not self.auth:
            await self.send("530 5.7.0 authentication required\r\n")
            return
        if self.mail_from is not None:
            await self.send("503 5.5.1 nested MAIL\r\n")
            return
        if not arg.upper().startswith("FROM:"):
            await self.send("501 5.5.4 syntax: MAIL FROM:<address>\r\n")
            return
        addr, rest = split_path(arg[5:])
        r = await self.reply(self.conf.get("mail"), "250 2.1.0 ok")
        if r[:1] == "2":
            self.mail_from = addr
            self.mail_params = self.params(rest)
            self.mail_read = self.line_read

    async def do_RCPT(self, arg):
        if self.mail_from is None:
            await self.send("503 5.5.1 need MAIL first\r\n")
            return
        if not arg.upper().startswith("TO:"):
            await self.send("501 5.5.4 syntax: RCPT TO:<address>\r\n")
            return
        addr, rest = split_path(arg[3:])
        self.rcpts.append(addr)
        self.rcpt_params[addr] = self.params(rest)
        self.rcpt_reads.append(self.line_read)
        r = await self.reply(per_address(self.conf.get("rcpt"), addr), "250 2.1.5 ok")
        self.rcpt_replies[addr] = r
        if r[:1] == "2":
            self.accepted.append(addr)

    async def do_DATA(self, arg):
        data_read = self.line_read
        if self.mail_from is None or not self.accepted:
            await self.send("503 5.5.1 no valid recipients\r\n")
            return
        r = await self.reply(self.conf.get("data"), "354 end with <CRLF>.<CRLF>")
        if r[:3] != "354":
            return
        lines = []
        size = 0
        first = True
        while True:
            line = await self.readline()
            if line is None:
                self.emit(ev="lost-in-data", bytes=size)
                raise Close("eof in DATA")
            if first and self.conf.get("content") == "drop":
                self.emit(ev="drop-in-data")
                raise Close("drop in DATA")
            first = False
            if line == b".":
                break
            if line.startswith(b"."):
                line = line[1:]
            lines.append(line)
            size += len(line) + 2
        data = b"".join(l + b"\r\n" for l in lines)
        lmtp = self.conf.get("lmtp", False)
        dot = self.conf.get("dot")
        replies = {}
        for addr in self.accepted:
            replies[addr] = per_address(dot, addr) or "250 2.0.0 ok"
        ok = [a for a in self.accepted if replies[a][:1] == "2" or replies[a] == "longline"]
        path = None
        if ok and self.conf.get("maildir"):
            path = store(self.conf["maildir"], data)
        pipelined = (self.mail_read is not None and
                     all(r == self.mail_read for r in self.rcpt_reads) and data_read == self.mail_read)
        self.emit(ev="txn", helo=self.helo, verb=self.verb, tls=self.tls, auth=self.auth,
                  mail_from=self.mail_from, mail_params=self.mail_params, rcpts=self.rcpts,
                  rcpt_params=self.rcpt_params, accepted=self.accepted,
                  rcpt_replies=self.rcpt_replies,
                  replies=replies if lmtp else {a: replies[self.accepted[0]] for a in self.accepted},
                  delivered=ok if lmtp else (self.accepted if replies[self.accepted[0]][:1] == "2" else []),
                  data=data.decode("latin-1"), size=len(data), pipelined=pipelined, file=path)
        accepted = list(self.accepted)
        self.reset()
        if self.conf.get("dot_delay"):
            await asyncio.sleep(float(self.conf["dot_delay"]))
        if lmtp:
            for addr in accepted:
                await self.reply(replies[addr], None)
        else:
            await self.reply(replies[accepted[0]], None)

    async def do_RSET(self, arg):
        self.reset()
        await self.reply(self.conf.get("rset"), "250 2.0.0 ok")

    async def do_NOOP(self, arg):
        await self.send("250 2.0.0 ok\r\n")

    async def do_QUIT(self, arg):
        await self.reply(self.conf.get("quit"), "221 2.0.0 bye")
        raise Close("quit")


class Close(Exception):
    pass


def split_path(s):
    """'<a@b> SIZE=1' -> ('a@b', 'SIZE=1')."""
    s = s.strip()
    if s.startswith("<"):
        end = s.find(">")
        if end > 0:
            return s[1:end], s[end + 1:]
    parts = s.split(" ", 1)
    return parts[0], parts[1] if len(parts) > 1 else ""


def store(maildir, data):
    for d in ("tmp", "new", "cur"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    name = "%.6f.%s.peer" % (time.time(), uuid.uuid4().hex)
    tmp = os.path.join(maildir, "tmp", name)
    with open(tmp, "wb") as f:
        f.write(data)
    final = os.path.join(maildir, "new", name)
    os.rename(tmp, final)
    return final


class Server:
    def __init__(self, behaviour, events):
        self.behaviour = behaviour
        self.events = events
        self.count = 0
        self.tls_ctx = None
        self.tls_key = None

    def tls_context(self):
        conf = self.behaviour.conf
        key = (conf.get("tls_cert"), conf.get("tls_key"))
        if key != self.tls_key:
            self.tls_key = key
            self.tls_ctx = None
            if key[0]:
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
                ctx.load_cert_chain(key[0], key[1])
                self.tls_ctx = ctx
        return self.tls_ctx

    async def handle(self, reader, writer):
        self.behaviour.reload()
        self.tls_context()
        self.count += 1
        s = Session(self, reader, writer, self.count)
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        s.emit(ev="connect", peer="%s:%d" % peer[:2], local="%s:%d" % local[:2])
        why = "eof"
        try:
            await s.run()
        except Close as e:
            why = str(e)
        except (ConnectionError, ssl.SSLError, OSError) as e:
            why = "error: %s" % e
        finally:
            s.emit(ev="close", why=why)
            try:
                writer.close()
                await writer.wait_closed()
            except Exception:
                pass


def build_config(a):
    conf = {}
    if a.lmtp:
        conf["lmtp"] = True
    for k in ("greeting", "ehlo_reply", "helo_reply", "mail_reply", "data_reply"):
        v = getattr(a, k)
        if v is not None:
            conf[k.replace("_reply", "")] = v
    for k in ("rcpt_reply", "dot_reply"):
        v = getattr(a, k)
        if v:
            m = {}
            for item in v:
                if "=" in item.split(" ", 1)[0]:
                    addr, r = item.split("=", 1)
                    m[addr] = r
                else:
                    m["*"] = item
            conf[k.replace("_reply", "")] = m
    if a.content:
        conf["content"] = a.content
    ext = {}
    for name in a.no or []:
        ext[name.upper()] = False
    if a.size is not None:
        ext["SIZE"] = a.size
    if ext:
        conf["extensions"] = ext
    if a.tls_cert:
        conf["tls_cert"], conf["tls_key"] = a.tls_cert, a.tls_key
    if a.require_tls:
        conf["require_tls"] = True
    if a.auth:
        conf["auth"] = a.auth
    if a.require_auth:
        conf["require_auth"] = True
    if a.maildir:
        conf["maildir"] = a.maildir
    return conf


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", required=True, help="127.0.0.X:PORT")
    ap.add_argument("--events")
    ap.add_argument("--config")
    ap.add_argument("--maildir")
    ap.add_argument("--lmtp", action="store_true")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--require-tls", action="store_true")
    ap.add_argument("--auth")
    ap.add_argument("--require-auth", action="store_true")
    ap.add_argument("--no", action="append", help="do not advertise this extension")
    ap.add_argument("--size", type=int)
    ap.add_argument("--greeting")
    ap.add_argument("--ehlo-reply")
    ap.add_argument("--helo-reply")
    ap.add_argument("--mail-reply")
    ap.add_argument("--rcpt-reply", action="append")
    ap.add_argument("--data-reply")
    ap.add_argument("--dot-reply", action="append")
    ap.add_argument("--content", choices=["drop"])
    ap.add_argument("--exit-with-parent", action="store_true",
                    help="exit when the process that started this one is gone")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    host = host.strip("[]")
    if not (host.startswith("127.") or host == "::1"):
        sys.exit("smtp_peer: loopback addresses only")
    behaviour = Behaviour(build_config(a), a.config)
    events = Events(a.events, a.verbose or not a.events)
    server = Server(behaviour, events)

    async def serve():
        srv = await asyncio.start_server(server.handle, host, int(port), reuse_address=True,
                                         limit=MAX_LINE)
        events.emit(ev="ready", listen=a.listen, pid=os.getpid())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        watcher = None
        if a.exit_with_parent:
            # a test killed with SIGKILL cannot stop its peers: they
            # notice they were orphaned (reparented) and go
            parent = os.getppid()

            async def watch():
                while os.getppid() == parent:
                    await asyncio.sleep(1)
                stop.set()
            watcher = asyncio.ensure_future(watch())
        async with srv:
            await stop.wait()
        if watcher:
            watcher.cancel()
        events.emit(ev="stopped")
    asyncio.run(serve())


if __name__ == "__main__":
    main()
