"""policy_rcpt.py - RCPT round trips under parallel SMTP sessions, for
bench/policy.sh.  Not a test: prints numbers, asserts nothing.

    python3 policy_rcpt.py PORT SESSIONS SECONDS [SENDER [RCPT_FORMAT]]

Each session is its own process (no GIL between the clocks): it connects,
says EHLO, then repeats MAIL FROM, RCPT TO (timed), RSET until SECONDS
have passed.  Session i sends to RCPT_FORMAT % i.  SECONDS 0 means one
round per session (to make the greylist see every triplet once).
Prints one line:
    rcpts=N p50_ms=A p99_ms=B mean_ms=C codes=250:N,450:M
"""

import multiprocessing
import smtplib
import sys
import time


def session(args):
    port, i, seconds, sender, rcpt_format = args
    rcpt = rcpt_format % i
    times, codes = [], {}
    s = smtplib.SMTP("127.0.0.1", port, timeout=30)
    try:
        s.ehlo("bench.client.example")
        deadline = time.monotonic() + seconds
        while True:
            code, _ = s.docmd("MAIL FROM:<%s>" % sender)
            if code != 250:
                codes["mail%d" % code] = codes.get("mail%d" % code, 0) + 1
                break
            t0 = time.perf_counter()
            code, _ = s.docmd("RCPT TO:<%s>" % rcpt)
            times.append(time.perf_counter() - t0)
            codes[str(code)] = codes.get(str(code), 0) + 1
            s.docmd("RSET")
            if time.monotonic() >= deadline:
                break
        s.quit()
    except (smtplib.SMTPException, OSError) as e:
        codes["error"] = codes.get("error", 0) + 1
        sys.stderr.write("policy_rcpt: session %d: %s\n" % (i, e))
    return times, codes


def main():
    port, sessions, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    sender = sys.argv[4] if len(sys.argv) > 4 else "bench@client.example"
    rcpt_format = sys.argv[5] if len(sys.argv) > 5 else "r%d@local.example"
    with multiprocessing.Pool(sessions) as pool:
        results = pool.map(session, [(port, i, seconds, sender, rcpt_format)
                                     for i in range(sessions)])
    times = sorted(t for r in results for t in r[0])
    codes = {}
    for _, c in results:
        for k, v in c.items():
            codes[k] = codes.get(k, 0) + v
    if not times:
        print("rcpts=0 p50_ms=NA p99_ms=NA mean_ms=NA codes=%s"
              % ",".join("%s:%d" % kv for kv in sorted(codes.items())))
        return
    n = len(times)
    print("rcpts=%d p50_ms=%.3f p99_ms=%.3f mean_ms=%.3f codes=%s"
          % (n, times[n // 2] * 1000, times[min(n - 1, n * 99 // 100)] * 1000,
             sum(times) / n * 1000, ",".join("%s:%d" % kv for kv in sorted(codes.items()))))


if __name__ == "__main__":
    main()
