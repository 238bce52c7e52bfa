#!/usr/bin/python3
"""spam_eval.py - the Python half of bench/spam_accuracy.sh.

    spam_eval.py correio PORT USERDIR CORPUS OUT.tsv
        send every message of CORPUS/manifest.tsv (sets sa, A, B) over SMTP
        to b@local.example on 127.0.0.1:PORT, each with an X-Bench-Id header
        field, wait until all are in USERDIR's Maildir (inbox or .Junk) and
        write OUT.tsv: path, score, spam yes/no, tests (from the X-Spam-*
        fields correio's classifier added).
    spam_eval.py correio-batch PORT USERDIR CORPUS TAG N
        send N messages cycling over CORPUS/speed/TAG, one session, and wait
        until they are delivered (the caller reads CPU times around it).
    spam_eval.py sa PORT CORPUS OUT.tsv PARALLEL
        the same set through spamc -> spamd on 127.0.0.1:PORT, PARALLEL
        spamc at a time; OUT.tsv as above (SpamAssassin's X-Spam-Status).
    spam_eval.py sa-batch PORT CORPUS TAG N
        N messages cycling over CORPUS/speed/TAG through spamc, one by one.
    spam_eval.py report CORPUS correio.tsv sa.tsv [SUFFIX]
        precision and recall per set, and the rules behind the mistakes;
        SUFFIX ("+bayes") is appended to the classifiers' names.

Standard library only.  Nothing is asserted.
"""

import collections
import email
import email.parser
import email.policy
import os
import re
import smtplib
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

RCPT = "b@local.example"
# A clean connection for every message (the DNS lab's ok.test: HELO name
# resolves to 127.0.0.1, SPF passes for 127/8): the corpus judges content,
# not the loopback client, so no connection test adds points to all alike.
SENDER = "bench@ok.test"
HELO = "client1.ok.test"


def manifest(corpus, sets=("sa", "A", "B")):
    rows = []
    with open(os.path.join(corpus, "manifest.tsv")) as f:
        for line in f:
            rel, set_, label, tmpl = line.rstrip("\n").split("\t")
            if set_ in sets:
                rows.append((rel, set_, label, tmpl))
    return rows


def prepare(data, bench_id):
    """Drop X-Spam-* fields a sample may carry, add X-Bench-Id first."""
    head, sep, body = data.partition(b"\n\n")
    lines, skip = [], False
    for l in head.split(b"\n"):
        if l[:1] in (b" ", b"\t"):
            if not skip:
                lines.append(l)
            continue
        skip = l.lower().startswith(b"x-spam-")
        if not skip:
            lines.append(l)
    return b"X-Bench-Id: " + bench_id.encode() + b"\n" + b"\n".join(lines) + sep + body


def crlf(data):
    """SMTP wants CRLF line ends (smtplib converts str, not bytes)."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def maildir_files(userdir):
    out = []
    for sub in ("new", "cur", ".Junk/new", ".Junk/cur"):
        d = os.path.join(userdir, sub)
        try:
            out.extend(os.path.join(d, n) for n in os.listdir(d))
        except FileNotFoundError:
            pass
    return out


def read_headers(path):
    with open(path, "rb") as f:
        data = f.read(256 * 1024)
    head = data.partition(b"\n\n")[0].replace(b"\r\n", b"\n")
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\n\n")


def status_fields(msg):
    """(score, is_spam, tests) from X-Spam-Status (first occurrence)."""
    st = msg.get("X-Spam-Status")
    if st is None:
        return None, None, ""
    st = re.sub(r"\s+", " ", str(st))
    m = re.search(r"score=(-?[\d.]+)", st)
    t = re.search(r"tests=([^ ]*(?:, ?[^ ]+)*)", st)
    tests = t.group(1).replace(" ", "") if t else ""
    tests = re.sub(r"autolearn=.*$", "", tests).strip(",")
    return float(m.group(1)) if m else None, st.lower().startswith("yes"), tests


def send_all(port, msgs, sessions=4):
    """msgs: list of bytes; SESSIONS parallel SMTP sessions."""
    chunks = [msgs[i::sessions] for i in range(sessions)]
    errors = []

    def run(chunk):
        try:
            s = smtplib.SMTP("127.0.0.1", port, timeout=60)
            s.ehlo(HELO)
            for m in chunk:
                s.sendmail(SENDER, [RCPT], m)
            s.quit()
        except Exception as e:          # reported, not fatal: the count shows it
            errors.append(repr(e))

    th = [threading.Thread(target=run, args=(c,)) for c in chunks if c]
    for t in th:
        t.start()
    for t in th:
        t.join()
    for e in errors[:5]:
        print(f"# smtp error: {e}", file=sys.stderr)


def wait_files(userdir, n, limit):
    """Until N files are in the Maildir; gives up after LIMIT s without progress."""
    t0, last = time.time(), -1
    while True:
        k = len(maildir_files(userdir))
        if k >= n:
            return True
        if k != last:
            t0, last = time.time(), k
        if time.time() - t0 > limit:
            print(f"# timeout: {k} of {n} delivered", file=sys.stderr)
            return False
        time.sleep(0.05)


def cmd_correio(port, userdir, corpus, out):
    rows = manifest(corpus)
    before = len(maildir_files(userdir))
    msgs = []
    for i, (rel, _, _, _) in enumerate(rows):
        with open(os.path.join(corpus, rel), "rb") as f:
            msgs.append(crlf(prepare(f.read(), f"{i}")))
    send_all(int(port), msgs)
    wait_files(userdir, before + len(msgs), 30)
    got = {}
    for p in maildir_files(userdir):
        h = read_headers(p)
        bid = h.get("X-Bench-Id")
        if bid is not None:
            got[int(bid)] = status_fields(h)
    with open(out, "w") as f:
        for i, (rel, _, _, _) in enumerate(rows):
            score, spam, tests = got.get(i, (None, None, ""))
            f.write(f"{rel}\t{'NA' if score is None else score}\t"
                    f"{'NA' if spam is None else ('yes' if spam else 'no')}\t{tests}\n")


def speed_msgs(corpus, tag, n):
    d = os.path.join(corpus, "speed", tag)
    files = sorted(os.listdir(d))
    data = []
    for name in files:
        with open(os.path.join(d, name), "rb") as f:
            data.append(f.read())
    return [data[i % len(data)] for i in range(n)]


def speed_msgs_crlf(corpus, tag, n):
    return [crlf(m) for m in speed_msgs(corpus, tag, n)]


def cmd_correio_batch(port, userdir, corpus, tag, n):
    n = int(n)
    before = len(maildir_files(userdir))
    send_all(int(port), speed_msgs_crlf(corpus, tag, n), sessions=1)
    wait_files(userdir, before + n, 30)


def spamc(port, data):
    r = subprocess.run(["spamc", "-d", "127.0.0.1", "-p", str(port), "-s", "4000000"],
                       input=data, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=120)
    return r.stdout


def cmd_sa(port, corpus, out, parallel):
    rows = manifest(corpus)

    def one(rel):
        with open(os.path.join(corpus, rel), "rb") as f:
            data = prepare(f.read(), "0")
        return status_fields(read_headers_bytes(spamc(port, data)))

    with ThreadPoolExecutor(int(parallel)) as ex:
        res = list(ex.map(one, [r[0] for r in rows]))
    with open(out, "w") as f:
        for (rel, _, _, _), (score, spam, tests) in zip(rows, res):
            f.write(f"{rel}\t{'NA' if score is None else score}\t"
                    f"{'NA' if spam is None else ('yes' if spam else 'no')}\t{tests}\n")


def read_headers_bytes(data):
    head = data.partition(b"\n\n")[0].replace(b"\r\n", b"\n")
    return email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head + b"\n\n")


def cmd_sa_batch(port, corpus, tag, n):
    for m in speed_msgs(corpus, tag, int(n)):
        spamc(port, m)


def load(path):
    out = {}
    with open(path) as f:
        for line in f:
            rel, score, spam, tests = (line.rstrip("\n").split("\t") + [""])[:4]
            out[rel] = (score, spam, [t for t in tests.split(",") if t])
    return out


def cmd_report(corpus, ctsv, stsv, suffix=""):
    rows = manifest(corpus)
    res = {"correio": load(ctsv), "spamassassin": load(stsv)}
    print("# accuracy (spam is positive; precision = TP/(TP+FP), recall = TP/(TP+FN))")
    print(f"{'classifier':19s} {'set':9s} {'ham':>4s} {'spam':>5s} {'TP':>4s} {'FP':>4s} {'FN':>4s} {'TN':>4s} "
          f"{'NA':>3s} {'precision':>9s} {'recall':>7s}")
    groups = [("sa", ("sa",)), ("A", ("A",)), ("B", ("B",)), ("all", ("sa", "A", "B"))]
    for name, r in res.items():
        for gname, sets in groups:
            tp = fp = fn = tn = na = nh = ns = 0
            for rel, set_, label, _ in rows:
                if set_ not in sets:
                    continue
                nh += label == "ham"
                ns += label == "spam"
                spam = r.get(rel, ("NA", "NA", []))[1]
                if spam == "NA":
                    na += 1
                    continue
                pos = spam == "yes"
                if label == "spam":
                    tp += pos
                    fn += not pos
                else:
                    fp += pos
                    tn += not pos
            prec = f"{tp / (tp + fp):.3f}" if tp + fp else "NA"
            rec = f"{tp / (tp + fn):.3f}" if tp + fn else "NA"
            print(f"{name + suffix:19s} {gname:9s} {nh:4d} {ns:5d} {tp:4d} {fp:4d} {fn:4d} {tn:4d} {na:3d} {prec:>9s} {rec:>7s}")
    # per template: what each classifier gets right, to see where it fails
    print("\n# per template: spam verdicts / messages (ham: fewer is better, spam: more is better)")
    print(f"{'set':4s} {'label':5s} {'template':26s} {'n':>4s} {'correio':>8s} {'sa':>8s}  correio mean score / sa mean score")
    by = collections.OrderedDict()
    for rel, set_, label, tmpl in rows:
        by.setdefault((set_, label, tmpl), []).append(rel)
    for (set_, label, tmpl), rels in by.items():
        line = f"{set_:4s} {label:5s} {tmpl:26s} {len(rels):4d}"
        means = []
        for name in ("correio", "spamassassin"):
            r = res[name]
            k = sum(1 for x in rels if r.get(x, ("", "", []))[1] == "yes")
            sc = [float(r[x][0]) for x in rels if x in r and r[x][0] not in ("NA", "")]
            line += f" {k:8d}"
            means.append(f"{sum(sc) / len(sc):.1f}" if sc else "NA")
        print(line + "  " + " / ".join(means))
    # correio's rules on the mistakes
    r = res["correio"]
    for label, what in (("ham", "false positives: rules hitting ham"), ("spam", "false negatives: rules hitting missed spam")):
        cnt, ex = collections.Counter(), {}
        nmiss = 0
        for rel, set_, lab, _ in rows:
            if lab != label or rel not in r:
                continue
            wrong = (r[rel][1] == "yes") if label == "ham" else (r[rel][1] == "no")
            if label == "ham":
                for t in r[rel][2]:          # every rule that fires on ham
                    cnt[t] += 1
                    ex.setdefault(t, rel)
            if wrong:
                nmiss += 1
        if label == "ham":
            print(f"\n# correio rules that fire on ham (messages hit / example); {nmiss} ham marked spam")
            for t, k in cnt.most_common(15):
                print(f"  {t:28s} {k:4d}  {ex[t]}")
        else:
            print(f"# correio: {nmiss} spam not marked spam; per template, the tests on its missed spam:")
            per = collections.OrderedDict()
            for rel, set_, lab, tmpl in rows:
                if lab == "spam" and rel in r and r[rel][1] == "no":
                    per.setdefault(tmpl, [collections.Counter(), 0, rel])
                    per[tmpl][1] += 1
                    for t in r[rel][2]:
                        per[tmpl][0][t] += 1
            for tmpl, (c, k, rel) in per.items():
                tests = " ".join(f"{t}:{v}" for t, v in c.most_common(6)) or "(none)"
                print(f"  {tmpl:26s} missed {k:3d}  e.g. {rel}  {tests}")


def main():
    a = sys.argv[1:]
    cmds = {"correio": cmd_correio, "correio-batch": cmd_correio_batch, "sa": cmd_sa,
            "sa-batch": cmd_sa_batch, "report": cmd_report}
    if not a or a[0] not in cmds:
        sys.exit(__doc__)
    cmds[a[0]](*a[1:])


if __name__ == "__main__":
    main()
