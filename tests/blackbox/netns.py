#!/usr/bin/python3
"""netns.py - "hosts" made of Linux network namespaces, for the
multi-host test (test_multihost.py).

    net = Net(subnet="10.77.0")        # a bridge in a namespace of its own
    h = net.host("cls1", 11)           # namespace PREFIX-cls1, eth0 10.77.0.11/24
    p = h.popen([...], stdout=f)       # runs inside it (ip netns exec)
    h.kill()                           # kill -9 every process of the host
    net.cleanup()                      # every process, namespace and veth

Every namespace is named "cmh<pid>-NAME" (pid: the test's), so two runs
never meet, and a run that died without cleaning up is swept by the next
one (Net() removes cmh<pid>-* namespaces whose pid is gone).  The root
namespace is never touched: the bridge lives in namespace PREFIX-br and
each host's veth pair is made there with its peer end moved straight into
the host (ip -n BR link add ... peer ... netns HOST).  cleanup() kills
what `ip netns pids` lists, then deletes the namespaces (which deletes
the veths); it runs at exit and on SIGTERM too (atexit; harness's
at_cleanup).  Standard library only; needs root (or CAP_NET_ADMIN and
CAP_SYS_ADMIN).
"""
import atexit
import os
import re
import signal
import subprocess
import time

IP = "ip"


def _ip(*args, check=True, ns=None):
    cmd = [IP] + (["-n", ns] if ns else []) + list(args)
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=20,
                       stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise NetError("%s: %s" % (" ".join(cmd), (p.stderr or p.stdout).strip()))
    return p


class NetError(RuntimeError):
    pass


def namespaces():
    p = _ip("netns", "list", check=False)
    return [l.split()[0] for l in p.stdout.splitlines() if l.strip()]


def ns_pids(ns):
    p = _ip("netns", "pids", ns, check=False)
    return [int(x) for x in p.stdout.split() if x.isdigit()]


def kill_ns(ns, wait=5.0):
    """SIGKILL every process in ns; wait (bounded) until none is left."""
    deadline = time.monotonic() + wait
    while True:
        pids = ns_pids(ns)
        if not pids:
            return True
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def probe():
    """None when network namespaces can be made here, else why not."""
    name = "cmh%d-probe" % os.getpid()
    try:
        p = _ip("netns", "add", name, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        return str(e)
    if p.returncode != 0:
        return (p.stderr or p.stdout).strip() or "ip netns add failed"
    _ip("netns", "del", name, check=False)
    return None


def sweep_stale():
    """Remove cmhPID-* namespaces of runs that are gone."""
    for ns in namespaces():
        m = re.match(r"cmh(\d+)-", ns)
        if not m or int(m.group(1)) == os.getpid():
            continue
        if os.path.exists("/proc/%s" % m.group(1)):
            continue
        kill_ns(ns, 2)
        _ip("netns", "del", ns, check=False)


class Host:
    """One namespace on the bridge, with address ADDR (eth0) and lo up."""

    def __init__(self, net, name, addr):
        self.net = net
        self.name = name
        self.ns = net.prefix + name
        self.addr = addr
        self.veth = "v" + addr.rsplit(".", 1)[1]

    def popen(self, argv, **kw):
        """Start argv inside the host (ip netns exec execs it: the Popen's
        pid is the program's own)."""
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("start_new_session", True)
        return subprocess.Popen([IP, "netns", "exec", self.ns] + list(argv), **kw)

    def run(self, argv, timeout=20, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        return subprocess.run([IP, "netns", "exec", self.ns] + list(argv), capture_output=True,
                              text=True, timeout=timeout, **kw)

    def pids(self):
        return ns_pids(self.ns)

    def link(self, up):
        """Its cable in or out (the bridge side of its veth up or down)."""
        _ip("link", "set", self.veth, "up" if up else "down", ns=self.net.br)

    def kill(self):
        """The host dies: kill -9 every process of its namespace."""
        return kill_ns(self.ns)


class Net:
    """A bridge namespace and the hosts joined to it."""

    def __init__(self, subnet="10.77.0"):
        sweep_stale()
        self.prefix = "cmh%d-" % os.getpid()
        self.subnet = subnet
        self.hosts = {}
        self.made = []
        self._closed = False
        atexit.register(self.cleanup)
        try:
            from harness import at_cleanup
            at_cleanup(self.cleanup)
        except ImportError:
            pass
        self.br = self.prefix + "br"
        self._add_ns(self.br)
        _ip("link", "add", "br0", "type", "bridge", ns=self.br)
        _ip("link", "set", "br0", "up", ns=self.br)

    def _add_ns(self, ns):
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("link", "set", "lo", "up", ns=ns)

    def host(self, name, last_octet):
        """A new host NAME at SUBNET.last_octet/24."""
        h = Host(self, name, "%s.%d" % (self.subnet, last_octet))
        self._add_ns(h.ns)
        veth = h.veth
        _ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.ns,
            ns=self.br)
        _ip("link", "set", veth, "master", "br0", ns=self.br)
        _ip("link", "set", veth, "up", ns=self.br)
        _ip("addr", "add", h.addr + "/24", "dev", "eth0", ns=h.ns)
        _ip("link", "set", "eth0", "up", ns=h.ns)
        self.hosts[name] = h
        return h

    def cleanup(self):
        """Kill every process of every namespace made, delete them all.
        Idempotent."""
        if self._closed:
            return
        self._closed = True
        for ns in reversed(self.made):
            kill_ns(ns)
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made = []
