"""test_spf.py - lib/spf.c and python3-spf (Debian's reference SPF
implementation) on the same cases, against the same DNS lab.

tests/dns/spf_cases.txt lists "CLIENT-IP SENDER HELO RESULT [EXPLANATION]"
for the lab's spf.test zone (tests/dns/unbound.conf.in).  Each case runs
through pyspf's spf.check2() with pydns pointed at the lab (DNS.defaults
server and port), and must give the table's result (and explanation, for
a fail with exp=); then the C side runs the same table: spf_test
(tests/unit/spf_test.c, built in CORREIO_BUILD) with CORREIO_TEST_DNS set
to the lab.  Both matching the one table means both agree on every case.

    /usr/bin/python3 tests/blackbox/test_spf.py [CASE...]
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BUILD, REPO, ensure_dns_lab  # noqa: E402

CASES = os.path.join(REPO, "tests", "dns", "spf_cases.txt")
PREFIX = "spf"


def report(status, name, detail=""):
    print("%s %s.%s%s" % (status, PREFIX, name, detail), flush=True)


def load_cases():
    cases = []
    with open(CASES) as f:
        for line in f:
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            fields = line.split(None, 4)
            ip, sender, helo, result = fields[:4]
            cases.append((ip, "" if sender == "<>" else sender, helo, result,
                          fields[4] if len(fields) > 4 else None))
    return cases


def run_pyspf(dns, wanted):
    """Every case through python3-spf; one PASS/FAIL line per case."""
    import DNS
    import spf
    # pyspf prefers dnspython when installed (python3-dkim brings it): keep
    # it on pydns, whose server and port are pointed at the lab below
    spf.DNS = DNS
    spf.DNSLookup = spf.DNSLookup_pydns
    host, port = dns.rsplit(":", 1)
    DNS.defaults["server"] = [host]
    DNS.defaults["port"] = int(port)
    failed = 0
    for ip, sender, helo, want, want_exp in load_cases():
        name = "pyspf[%s,%s]" % (ip, sender or "<>")
        if wanted and name not in wanted:
            continue
        t0 = time.monotonic()
        # querytime bounds the lookups of x.timeout.test (never answered)
        result, explanation = spf.check2(i=ip, s=sender, h=helo, timeout=5, querytime=2)
        if result != want:
            report("FAIL", name, ": python3-spf says %s (%s), the table %s"
                   % (result, explanation, want))
            failed += 1
        elif want_exp is not None and explanation != want_exp:
            report("FAIL", name, ": explanation %r, the table %r" % (explanation, want_exp))
            failed += 1
        else:
            report("PASS", name, " (%.1fs)" % (time.monotonic() - t0))
    return failed


def run_c(dns):
    """The same table through lib/spf.c (build/tests/spf_test)."""
    exe = os.path.join(BUILD, "tests", "spf_test")
    if not os.access(exe, os.X_OK):
        report("FAIL", "lib_spf", ": %s is not built (make)" % exe)
        return 1
    env = dict(os.environ, CORREIO_TEST_DNS=dns)
    p = subprocess.run([exe], env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    if p.returncode != 0:
        report("FAIL", "lib_spf", ": spf_test exited %d" % p.returncode)
        sys.stderr.write(p.stdout + p.stderr)
        return 1
    report("PASS", "lib_spf")
    return 0


def main():
    wanted = set(sys.argv[1:])
    dns = ensure_dns_lab()
    if not dns:
        report("SKIP", "all", ": no DNS lab (unbound missing)")
        return 0
    try:
        import DNS  # noqa: F401
        import spf  # noqa: F401
    except ImportError:
        report("SKIP", "pyspf", ": python3-spf is not installed (mk/deps.sh)")
        failed = 0
    else:
        failed = run_pyspf(dns, wanted)
    if not wanted or "lib_spf" in wanted:
        failed += run_c(dns)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
