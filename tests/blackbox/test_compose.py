"""test_compose.py - the container files of compose/ checked with what
runs without a container engine (Debian's docker-compose, our own config
parser, doveconf, make -n, python3-yaml and python3-jsonschema):

  compose_config     `docker-compose -f compose/compose.yaml config -q` passes
  compose_scalable   scalable services have no container_name, no host
                     ports, no per-replica config; every named volume and
                     every build/image exists; healthchecks run `correio health`
  correio_conf       compose/config and the Kubernetes ConfigMap's
                     correio.conf load with `correio config check`, and a
                     misspelt parameter fails (the check is real)
  dockerfile         multi-stage, pinned base, non-root USER, HEALTHCHECK;
                     the builder's packages hold every pkg-config module of
                     the Makefile; `make -n` of the programs works on
                     exactly what the builder COPYs
  dovecot_conf       doveconf accepts compose/dovecot/dovecot.conf;
                     make-cert.sh makes a certificate once
  slot               correio-slot gives two replicas two slots, the same
                     ones again after a restart
  k8s                every manifest loads, matches a schema of its kind,
                     selectors match template labels, probes name declared
                     ports, StatefulSets name headless Services, every
                     referenced ConfigMap/Secret/PVC is declared or documented

Runs no correio stage, so it has its own small runner (same PASS/FAIL lines).
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import BIN, REPO, TestFailure, check  # noqa: E402

import yaml  # python3-yaml

COMPOSE = os.path.join(REPO, "compose")
K8S = os.path.join(COMPOSE, "k8s")
SCALABLE = ("classifier", "router", "delivery")
SECRETS_BY_OPERATOR = {"correio-keys", "correio-users", "correio-tls"}
_cases = []


def case(fn):
    _cases.append(fn)
    return fn


def run(argv, timeout=60, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout, **kw)


def compose_doc():
    with open(os.path.join(COMPOSE, "compose.yaml")) as f:
        return yaml.safe_load(f)


@case
def test_compose_config():
    exe = shutil.which("docker-compose")
    check(exe, "docker-compose is not installed (mk/deps.sh installs it)")
    r = run([exe, "-f", os.path.join(COMPOSE, "compose.yaml"), "config", "-q"], cwd=COMPOSE)
    check(r.returncode == 0, "docker-compose config: %s" % r.stdout)
    # the scaled form parses too (no engine: only the config is checked)
    r = run([exe, "-f", os.path.join(COMPOSE, "compose.yaml"), "config", "--services"], cwd=COMPOSE)
    services = set(r.stdout.split())
    for s in ("ingress", "classifier", "router", "delivery", "fetcher", "dovecot", "keys", "certs"):
        check(s in services, "service %s missing: %s" % (s, sorted(services)))


@case
def test_compose_scalable():
    doc = compose_doc()
    services = doc["services"]
    volumes = set((doc.get("volumes") or {}).keys())
    for name, svc in services.items():
        check("container_name" not in svc or name not in SCALABLE,
              "%s: container_name prevents --scale" % name)
        if name in SCALABLE:
            check(not svc.get("ports"), "%s: host ports prevent --scale: %s" % (name, svc.get("ports")))
            check("hostname" not in svc, "%s: a fixed hostname is per-replica config" % name)
        check("image" in svc or "build" in svc, "%s: neither image nor build" % name)
        if "build" in svc:
            b = svc["build"]
            ctx = os.path.normpath(os.path.join(COMPOSE, b.get("context", ".")))
            check(os.path.isdir(ctx), "%s: build context %s missing" % (name, ctx))
            df = os.path.join(ctx, b.get("dockerfile", "Dockerfile"))
            check(os.path.isfile(df), "%s: Dockerfile %s missing" % (name, df))
        for v in svc.get("volumes", []):
            src = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
            if src.startswith(".") or src.startswith("/"):
                check(os.path.exists(os.path.join(COMPOSE, src)), "%s: bind source %s missing" % (name, src))
            elif src:
                check(src in volumes, "%s: volume %s not declared" % (name, src))
        for dep in (svc.get("depends_on") or {}):
            check(dep in services, "%s depends on unknown %s" % (name, dep))
        if name in ("ingress", "classifier", "router", "delivery", "fetcher"):
            hc = svc.get("healthcheck", {}).get("test", [])
            check("health" in hc and name in hc and hc[:2] == ["CMD", "correio"],
                  "%s: healthcheck is not `correio health %s`: %s" % (name, name, hc))
            cmd = svc.get("command", [])
            check(("correio-" + name) in cmd or cmd == ["correio-slot", name],
                  "%s: command does not run its stage: %s" % (name, cmd))
    ports = [p for s in services.values() for p in s.get("ports", [])]
    for p in ("25:2525", "587:2587", "465:2465"):
        check(p in ports, "port %s not published" % p)
    # the stage's ports in config/correio.conf are the ones the ingress maps
    conf = open(os.path.join(COMPOSE, "config", "correio.conf")).read()
    for port in ("2525", "2587", "2465"):
        check(":" + port in conf, "correio.conf does not listen on %s" % port)


def check_conf_dir(d, what):
    r = run([BIN, "-c", d, "config", "check"])
    check(r.returncode == 0, "%s: correio config check: %s" % (what, r.stdout))
    # a misspelt parameter must fail: the check reads the file for real
    bad = tempfile.mkdtemp(prefix="compose-conf-")
    try:
        text = open(os.path.join(d, "correio.conf")).read()
        open(os.path.join(bad, "correio.conf"), "w").write(text + "\nclassifier_endpiont = tcp://x:1\n")
        r = run([BIN, "-c", bad, "config", "check"])
        check(r.returncode != 0 and "classifier_endpiont" in r.stdout,
              "%s: a misspelt parameter was accepted: %s" % (what, r.stdout))
    finally:
        shutil.rmtree(bad, ignore_errors=True)


@case
def test_correio_conf():
    check(os.access(BIN, os.X_OK), "%s not built" % BIN)
    check_conf_dir(os.path.join(COMPOSE, "config"), "compose/config")
    cm = [d for d in k8s_docs() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "correio-config"]
    check(len(cm) == 1, "no ConfigMap correio-config")
    tmp = tempfile.mkdtemp(prefix="k8s-conf-")
    try:
        open(os.path.join(tmp, "correio.conf"), "w").write(cm[0]["data"]["correio.conf"])
        check_conf_dir(tmp, "k8s ConfigMap")
        r = run([BIN, "-c", tmp, "config", "classifier_endpoint"])
        check(".svc.cluster.local:" in r.stdout, "k8s endpoints are not FQDNs: %s" % r.stdout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def dockerfile_stages(path):
    """[(from-line, [instructions])] with continuation lines joined."""
    stages, cur = [], None
    text = re.sub(r"\\\n", " ", open(path).read())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            cur = (line, [])
            stages.append(cur)
        elif cur is not None:
            cur[1].append(line)
    return stages


def lib_package(soname):
    """The Debian package that holds a shared library (usrmerge: the file
    may be registered under /lib or /usr/lib)."""
    r = run(["ldconfig", "-p"])
    for line in r.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] == soname:
            real = os.path.realpath(parts[-1])
            for cand in (real, real.replace("/usr/lib/", "/lib/", 1), parts[-1]):
                r2 = run(["dpkg", "-S", cand])
                if r2.returncode == 0:
                    return r2.stdout.split(":")[0].strip()
    return ""


@case
def test_dockerfile():
    df = os.path.join(COMPOSE, "Dockerfile")
    stages = dockerfile_stages(df)
    check(len(stages) == 2, "Dockerfile: expected builder + runtime, got %d stages" % len(stages))
    text = open(df).read()
    m = re.search(r"ARG DEBIAN_TAG=(\S+)", text)
    check(m and re.match(r"12(\.\d+)?-slim$", m.group(1)), "base not pinned to a debian:12 slim tag")
    builder, runtime = stages
    check(" AS builder" in builder[0], "first stage is not the builder")
    rt = runtime[1]
    check(any(i.startswith("USER 10025") for i in rt), "runtime does not run as uid 10025")
    check(any(i.startswith("HEALTHCHECK") for i in rt), "no HEALTHCHECK")
    check(any(i.startswith("COPY --from=builder") for i in rt), "no COPY --from=builder")
    check(any(i.startswith("EXPOSE") and "2525" in i for i in rt), "no EXPOSE of the SMTP port")
    for st in stages:
        for i in st[1]:
            if i.startswith("RUN") and "apt-get install" in i:
                check("--no-install-recommends" in i and "rm -rf /var/lib/apt/lists" in i
                      and "apt-get update" in i, "apt-get not in one clean layer: %s" % i[:80])
    # the builder's packages provide every pkg-config module of the Makefile
    pkgs = re.search(r"^PKGS\s*:=\s*(.*)$", open(os.path.join(REPO, "Makefile")).read(), re.M)
    builder_run = " ".join(i for i in builder[1] if "apt-get install" in i)
    for mod in pkgs.group(1).split():
        r = run(["pkg-config", "--variable=pcfiledir", mod])
        check(r.returncode == 0, "pkg-config %s: %s" % (mod, r.stdout))
        pc = os.path.join(r.stdout.strip(), mod + ".pc")
        r = run(["dpkg", "-S", os.path.realpath(pc)])
        if r.returncode != 0:
            r = run(["dpkg", "-S", pc])
        pkg = r.stdout.split(":")[0]
        check(pkg and re.search(r"(^|\s)%s(\s|$)" % re.escape(pkg), builder_run),
              "builder lacks %s (for pkg-config %s)" % (pkg, mod))
    # runtime libraries: each binary's direct libraries come from a package installed
    runtime_run = " ".join(i for i in rt if "apt-get install" in i)
    for prog in ("correio", "correio-ingress", "correio-delivery"):
        path = os.path.join(os.path.dirname(BIN), prog)
        r = run(["objdump", "-p", path])
        if r.returncode != 0:
            continue
        for lib in re.findall(r"NEEDED\s+(\S+)", r.stdout):
            if re.match(r"lib(c|m|pthread|dl|rt|gcc_s)\.so", lib) or lib.startswith("ld-linux"):
                continue
            if re.match(r"lib(asan|ubsan)\.so", lib):  # a sanitizer build, not the image's
                continue
            pkg = lib_package(lib)
            check(pkg and pkg in runtime_run, "%s needs %s (%s), not in the runtime stage" % (prog, lib, pkg))
    # `make -n` of the programs succeeds on exactly what the builder copies
    tmp = tempfile.mkdtemp(prefix="dockerfile-")
    try:
        for i in builder[1]:
            if i.startswith("COPY"):
                src, dst = i.split()[1:3]
                s = os.path.join(REPO, src)
                if os.path.isdir(s):
                    shutil.copytree(s, os.path.join(tmp, dst), ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy(s, os.path.join(tmp, dst))
        make = [i for i in builder[1] if i.startswith("RUN make")][0]
        targets = [t for t in make.split("&&")[0].split() if t.startswith("build/bin/")]
        check(len(targets) == 6, "builder does not make the six programs: %s" % targets)
        r = run(["make", "-n"] + targets, cwd=tmp, timeout=120)
        check(r.returncode == 0, "make -n in the builder's tree: %s" % r.stdout[-2000:])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@case
def test_dovecot_conf():
    if not shutil.which("doveconf"):
        raise SkipCase("doveconf not installed")
    tmp = tempfile.mkdtemp(prefix="dovecot-conf-")
    try:
        r = run(["sh", os.path.join(COMPOSE, "dovecot", "make-cert.sh"), tmp],
                env=dict(os.environ, CERT_NAME="mail.example.test"))
        check(r.returncode == 0 and os.path.getsize(os.path.join(tmp, "key.pem")) > 0,
              "make-cert.sh: %s" % r.stdout)
        before = open(os.path.join(tmp, "cert.pem")).read()
        r = run(["sh", os.path.join(COMPOSE, "dovecot", "make-cert.sh"), tmp])
        check(r.returncode == 0 and "left alone" in r.stdout
              and open(os.path.join(tmp, "cert.pem")).read() == before,
              "make-cert.sh replaced an existing certificate: %s" % r.stdout)
        conf = open(os.path.join(COMPOSE, "dovecot", "dovecot.conf")).read()
        conf = conf.replace("</tls/", "<%s/" % tmp)
        open(os.path.join(tmp, "dovecot.conf"), "w").write(conf)
        r = run(["doveconf", "-n", "-c", os.path.join(tmp, "dovecot.conf")])
        check(r.returncode == 0, "doveconf: %s" % r.stdout)
        # the same Maildirs and users file as correio's compose config
        cc = open(os.path.join(COMPOSE, "config", "correio.conf")).read()
        check("mail_root = /srv/mail" in cc and "maildir:/srv/mail/%Ld/%Ln" in conf,
              "Dovecot and correio disagree on the Maildirs")
        users = re.search(r"^users_file = (\S+)", cc, re.M).group(1)
        check(conf.count(users) == 2, "Dovecot does not read correio's users file %s" % users)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@case
def test_slot():
    """Two replicas sharing a volume get two slots; after both stop, the
    next two get the same slots.  A stand-in 'correio-delivery' prints its
    data_directory and waits."""
    tmp = tempfile.mkdtemp(prefix="slot-")
    procs = []
    try:
        for d in ("conf", "base", "bin", "run1", "run2", "run3"):
            os.mkdir(os.path.join(tmp, d))
        open(os.path.join(tmp, "conf", "correio.conf"), "w").write("myhostname = x.test\n")
        open(os.path.join(tmp, "conf", "users"), "w").write("")
        stub = os.path.join(tmp, "bin", "correio-delivery")
        open(stub, "w").write("#!/bin/sh\n[ \"$1\" = -c ] || exit 9\n"
                              "grep '^data_directory' \"$2/correio.conf\"\n"
                              "[ -L \"$2/users\" ] || exit 8\nexec sleep 30\n")
        os.chmod(stub, 0o755)
        slot = os.path.join(COMPOSE, "correio-slot.sh")

        def start(run_dir):
            env = dict(os.environ, PATH=os.path.join(tmp, "bin") + ":" + os.environ["PATH"],
                       CORREIO_CONFIG=os.path.join(tmp, "conf"), CORREIO_SLOT_BASE=os.path.join(tmp, "base"),
                       CORREIO_RUN=os.path.join(tmp, run_dir))
            p = subprocess.Popen(["sh", slot, "delivery"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True)
            procs.append(p)
            line = p.stdout.readline().strip()
            check(line.startswith("data_directory = "), "correio-slot started no stage: %r" % line)
            return p, line.split(" = ")[1]

        p1, d1 = start("run1")
        p2, d2 = start("run2")
        check(d1 != d2 and {os.path.basename(d1), os.path.basename(d2)} == {"slot-0", "slot-1"},
              "two replicas, slots %s and %s" % (d1, d2))
        p1.kill()
        p1.wait(timeout=10)
        p3, d3 = start("run3")
        check(d3 == d1, "a restarted replica took %s, not the free %s" % (d3, d1))
        r = run(["sh", slot, "nosuchstage"])
        check(r.returncode == 2, "unknown stage accepted")
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------ Kubernetes

def k8s_docs():
    docs = []
    for fn in sorted(os.listdir(K8S)):
        if fn.endswith(".yaml") and fn != "kustomization.yaml":
            with open(os.path.join(K8S, fn)) as f:
                for d in yaml.safe_load_all(f):
                    if d:
                        d["_file"] = fn
                        docs.append(d)
    return docs


NAME = {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 63}
META = {"type": "object", "required": ["name"],
        "properties": {"name": NAME, "namespace": NAME, "labels": {"type": "object",
                       "additionalProperties": {"type": "string"}}}}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
PROBE = {"type": "object", "minProperties": 1,
         "properties": {"httpGet": {"type": "object", "required": ["path", "port"]},
                        "tcpSocket": {"type": "object", "required": ["port"]}}}
CONTAINER = {"type": "object", "required": ["name", "image"],
             "properties": {"name": NAME, "image": {"type": "string", "minLength": 1},
                            "command": {"type": "array", "items": {"type": "string"}},
                            "ports": {"type": "array", "items": {
                                "type": "object", "required": ["containerPort"],
                                "properties": {"name": {"type": "string", "maxLength": 15},
                                               "containerPort": PORT,
                                               "protocol": {"enum": ["TCP", "UDP", "SCTP"]}}}},
                            "livenessProbe": PROBE, "readinessProbe": PROBE,
                            "resources": {"type": "object", "required": ["requests"]},
                            "volumeMounts": {"type": "array", "items": {
                                "type": "object", "required": ["name", "mountPath"]}}}}
POD_TEMPLATE = {"type": "object", "required": ["metadata", "spec"],
                "properties": {"metadata": {"type": "object", "required": ["labels"]},
                               "spec": {"type": "object", "required": ["containers"],
                                        "properties": {"containers": {"type": "array", "minItems": 1,
                                                                      "items": CONTAINER},
                                                       "volumes": {"type": "array", "items": {
                                                           "type": "object", "required": ["name"],
                                                           "minProperties": 2}}}}}}
WORKLOAD_SPEC = {"type": "object", "required": ["selector", "template"],
                 "properties": {"replicas": {"type": "integer", "minimum": 0},
                                "selector": {"type": "object", "required": ["matchLabels"]},
                                "template": POD_TEMPLATE}}
SCHEMAS = {
    ("v1", "Namespace"): {},
    ("v1", "ConfigMap"): {"properties": {"data": {"type": "object",
                                                  "additionalProperties": {"type": "string"}}}},
    ("v1", "Service"): {"required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["ports"],
        "properties": {"type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                       "selector": {"type": "object"},
                       "ports": {"type": "array", "minItems": 1, "items": {
                           "type": "object", "required": ["port", "name"],
                           "properties": {"port": PORT}}}}}}},
    ("v1", "PersistentVolumeClaim"): {"required": ["spec"], "properties": {"spec": {
        "type": "object", "required": ["accessModes", "resources"]}}},
    ("apps/v1", "Deployment"): {"required": ["spec"], "properties": {"spec": WORKLOAD_SPEC}},
    ("apps/v1", "StatefulSet"): {"required": ["spec"], "properties": {"spec": {
        "allOf": [WORKLOAD_SPEC, {"required": ["serviceName"]}]}}},
}


@case
def test_k8s():
    import jsonschema  # python3-jsonschema
    docs = k8s_docs()
    check(len(docs) >= 10, "only %d Kubernetes objects" % len(docs))
    by_kind = {}
    for d in docs:
        where = "%s: %s/%s" % (d["_file"], d.get("kind"), d.get("metadata", {}).get("name"))
        key = (d.get("apiVersion"), d.get("kind"))
        check(key in SCHEMAS, "%s: apiVersion/kind %s not known to the check" % (where, key))
        schema = dict(SCHEMAS[key], type="object", required=["apiVersion", "kind", "metadata"]
                      + SCHEMAS[key].get("required", []))
        schema["properties"] = dict(SCHEMAS[key].get("properties", {}), metadata=META)
        try:
            jsonschema.validate({k: v for k, v in d.items() if k != "_file"}, schema)
        except jsonschema.ValidationError as e:
            raise TestFailure("%s: %s at %s" % (where, e.message, "/".join(map(str, e.path))))
        if d["kind"] != "Namespace":
            check(d["metadata"].get("namespace") == "correio", "%s: not in namespace correio" % where)
        by_kind.setdefault(d["kind"], {})[d["metadata"]["name"]] = d

    services = by_kind.get("Service", {})
    claims = set(by_kind.get("PersistentVolumeClaim", {}))
    maps = set(by_kind.get("ConfigMap", {}))
    for kind in ("Deployment", "StatefulSet"):
        for name, d in by_kind.get(kind, {}).items():
            where = "%s %s" % (kind, name)
            spec, tpl = d["spec"], d["spec"]["template"]
            labels = tpl["metadata"]["labels"]
            for k, v in spec["selector"]["matchLabels"].items():
                check(labels.get(k) == v, "%s: selector %s=%s not in the template labels" % (where, k, v))
            pod = tpl["spec"]
            vct = {c["metadata"]["name"] for c in spec.get("volumeClaimTemplates", [])}
            vols = {v["name"]: v for v in pod.get("volumes", [])}
            for v in vols.values():
                if "configMap" in v:
                    check(v["configMap"]["name"] in maps, "%s: ConfigMap %s undeclared" % (where, v["configMap"]["name"]))
                if "persistentVolumeClaim" in v:
                    check(v["persistentVolumeClaim"]["claimName"] in claims, "%s: PVC undeclared" % where)
                if "secret" in v:
                    check(v["secret"]["secretName"] in SECRETS_BY_OPERATOR,
                          "%s: Secret %s is not one the README tells to make" % (where, v["secret"]["secretName"]))
            for c in pod["containers"]:
                ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
                for probe in ("livenessProbe", "readinessProbe"):
                    check(probe in c, "%s: no %s" % (where, probe))
                    act = c[probe].get("httpGet") or c[probe].get("tcpSocket")
                    port = act["port"]
                    check(port in ports or port in ports.values(),
                          "%s: %s port %s not declared" % (where, probe, port))
                for m in c.get("volumeMounts", []):
                    check(m["name"] in vols or m["name"] in vct, "%s: mount %s has no volume" % (where, m["name"]))
                if c["image"].startswith("correio:"):
                    sc = dict(pod.get("securityContext", {}), **c.get("securityContext", {}))
                    check(sc.get("runAsNonRoot") is True and sc.get("runAsUser") == 10025,
                          "%s: not non-root uid 10025" % where)
                    check(c["livenessProbe"].get("httpGet", {}).get("path") == "/healthz"
                          and c["readinessProbe"].get("httpGet", {}).get("path") == "/ready",
                          "%s: probes are not /healthz and /ready" % where)
            if kind == "StatefulSet":
                svc = services.get(spec["serviceName"])
                check(svc and svc["spec"].get("clusterIP") == "None",
                      "%s: serviceName %s is not a headless Service" % (where, spec["serviceName"]))
    # a headless Service for every stage, selecting pods that exist
    workloads = {n: d for k in ("Deployment", "StatefulSet") for n, d in by_kind.get(k, {}).items()}
    for stage in ("ingress", "classifier", "router", "delivery", "fetcher"):
        check(stage in workloads, "no workload for %s" % stage)
        svc = services.get(stage)
        check(svc and svc["spec"].get("clusterIP") == "None", "no headless Service %s" % stage)
    kinds = {n: d["kind"] for n, d in workloads.items()}
    check(kinds["classifier"] == "Deployment", "classifier is not a Deployment")
    for s in ("ingress", "router", "delivery", "fetcher"):
        check(kinds[s] == "StatefulSet" and workloads[s]["spec"].get("volumeClaimTemplates"),
              "%s is not a StatefulSet with volumeClaimTemplates" % s)
    for name, svc in services.items():
        sel = svc["spec"].get("selector", {})
        matched = [w for w in workloads.values()
                   if all(w["spec"]["template"]["metadata"]["labels"].get(k) == v for k, v in sel.items())]
        check(matched, "Service %s selects no pod" % name)
        for p in svc["spec"]["ports"]:
            tp = p.get("targetPort", p["port"])
            declared = [pp for w in matched for c in w["spec"]["template"]["spec"]["containers"]
                        for pp in c.get("ports", []) if tp in (pp.get("name"), pp["containerPort"])]
            check(declared, "Service %s: targetPort %s not declared by its pods" % (name, tp))
    lb = [s for s in services.values() if s["spec"].get("type") in ("LoadBalancer", "NodePort")
          and {25, 587, 465} <= {p["port"] for p in s["spec"]["ports"]}]
    check(lb, "no LoadBalancer/NodePort Service for 25/587/465")
    kust = yaml.safe_load(open(os.path.join(K8S, "kustomization.yaml")))
    listed = set(kust["resources"])
    files = {f for f in os.listdir(K8S) if f.endswith(".yaml") and f != "kustomization.yaml"}
    check(listed == files, "kustomization.yaml resources %s != files %s" % (sorted(listed), sorted(files)))


class SkipCase(Exception):
    pass


def main():
    failed = 0
    for fn in _cases:
        name = fn.__name__.replace("test_", "", 1)
        if len(sys.argv) > 1 and name not in sys.argv[1:]:
            continue
        t0 = time.monotonic()
        try:
            fn()
            print("PASS compose.%s (%.1fs)" % (name, time.monotonic() - t0), flush=True)
        except SkipCase as e:
            print("SKIP compose.%s: %s" % (name, e), flush=True)
        except TestFailure as e:
            failed += 1
            print("FAIL compose.%s: %s" % (name, str(e).splitlines()[0][:300]), flush=True)
            sys.stderr.write("%s\n" % e)
        except Exception:
            failed += 1
            print("FAIL compose.%s: exception" % name, flush=True)
            traceback.print_exc()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
