#!/usr/bin/env python3
"""tests/deploy/check_deploy.py — the offline checks of deploy/ (ctest: unit_deploy).

    python3 tests/deploy/check_deploy.py --sluice build/sluice

These machines cannot pull images or run systemd as PID 1, so every deploy file is checked with
what Debian packages, and the configurations it ships are run through the built binary:

  yaml        yamllint -s (deploy/.yamllint) on every YAML file under deploy/
  systemd     systemd-analyze verify of every unit, clean (no output), in a temporary root that
              holds the host's units and a copy of the built binary at the ExecStart path;
              systemd-analyze security --offline under an exposure threshold; the hardening
              settings each service must carry; blobs.dir inside StateDirectory=
  redis       redis-server starts from deploy/redis.conf as shipped (port and dir moved) and
              reports the durable settings; deploy/k8s/redis.yaml carries the same file
  configs     deploy/sluice.example.json, deploy/compose/sluice.json and the Kubernetes
              ConfigMap's sluice.json: `sluice serve` starts on each (listen addresses, Redis URL
              and blobs.dir moved to loopback / a temporary directory, every env: secret set),
              /readyz answers 200 against that Redis, SIGTERM stops it with status 0
  container   deploy/container/Containerfile parsed: stages from debian:12 (build) and
              debian:12-slim (runtime), no ADD of URLs, COPY --from=build of the binary, a
              non-root USER, HEALTHCHECK on /readyz, ENTRYPOINT sluice; every package it installs
              is known to apt-cache; the runtime stage installs the package of every shared
              library the built binary needs (readelf, dpkg -S) and no -dev package
  compose     deploy/compose.yaml parsed: each service has an image or a build whose
              Containerfile target exists, a command, a healthcheck (an explicit NONE only for a
              service with no listener), depends_on on healthy services that have a check,
              mounted host files that exist, loopback-only published ports; then
              `podman-compose --dry-run up` turns it into podman commands (podman-compose 1.0.3
              has no `config`; a stub stands in for the podman binary it asks for its version)
  k8s         every manifest: apiVersion/kind/name, namespace, selectors that match pod
              labels, images, probes on every container with a port (/readyz, /healthz for the
              api), resources, securityContext (non-root, read-only root, no capabilities),
              references to ConfigMaps, Secrets, PVCs, Services' target ports, PDBs, the HPA's
              target, the Secret holding every env: name of the ConfigMap's config
  self-test   broken copies of the files (a bad unit setting, USER root, a Service selector
              that matches nothing, a depends_on on a service without a check) must fail

A missing tool is a failure, never a skip. Exit status 0 only when every check passed.
"""

import argparse
import base64
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

try:
    import yaml
except ImportError:
    yaml = None

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DEPLOY = os.path.join(ROOT, "deploy")
TOOLS = {
    "systemd-analyze": "systemd",
    "yamllint": "yamllint",
    "podman-compose": "podman-compose",
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "apt-cache": "apt",
    "dpkg": "dpkg",
    "readelf": "binutils",
    "ldd": "libc-bin",
}
UNITS = ["sluice-api.service", "sluice-worker.service", "sluice-scheduler.service",
         "sluice-serve.service", "sluice.target"]
# systemd-analyze security's overall exposure, 0.0 (best) to 10.0; the units score 1.1
EXPOSURE_MAX = 2.0
HARDENING = {
    "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
    "PrivateTmp": "yes", "PrivateDevices": "yes", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX", "CapabilityBoundingSet": "",
    "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes", "RestrictNamespaces": "yes",
    "User": "sluice", "KillSignal": "SIGTERM", "EnvironmentFile": "/etc/sluice/env",
}
BLOBS_DIR = "/var/lib/sluice/blobs"
RUNTIME_PACKAGES = {"libevent-2.1-7", "libhiredis0.14", "libcurl4", "libcjson1", "libssl3",
                    "ca-certificates"}
# what debian:12-slim already holds (the C library)
BASE_IMAGE_PACKAGES = {"libc6"}
SELF_TEST_CASES = 4
BOUND_S = 15  # the longest any one wait of this script may take


class Checks:
    """Collects results: ok lines, failures with their reason."""

    def __init__(self, quiet=False):
        self.failures = []
        self.passed = 0
        self.quiet = quiet

    def ok(self, what):
        self.passed += 1
        if not self.quiet:
            print(f"ok - {what}")

    def fail(self, what, why):
        self.failures.append(f"{what}: {why}")
        if not self.quiet:
            print(f"FAIL - {what}: {why}")

    def expect(self, cond, what, why):
        if cond:
            self.ok(what)
        else:
            self.fail(what, why)
        return cond


def run(argv, timeout=BOUND_S, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strip_json_comments(text):
    """Drops // and /* */ comments outside strings, as sluice's cJSON_Minify does."""
    out, i, n, in_str = [], 0, len(text), False
    while i < n:
        c = text[i]
        if in_str:
            out.append(c)
            if c == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
            out.append(c)
        elif text.startswith("//", i):
            while i < n and text[i] != "\n":
                i += 1
            continue
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            i = n if end < 0 else end + 2
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def env_names(value):
    """Every "env:NAME" string anywhere in a parsed JSON value."""
    if isinstance(value, str):
        return {value[4:]} if value.startswith("env:") else set()
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else []
    names = set()
    for v in items:
        names |= env_names(v)
    return names


# --- yaml -------------------------------------------------------------------------------------

def check_yaml(c):
    files = sorted(glob.glob(os.path.join(DEPLOY, "**", "*.yaml"), recursive=True))
    files.append(os.path.join(DEPLOY, ".yamllint"))
    r = run(["yamllint", "-s", "-c", os.path.join(DEPLOY, ".yamllint")] + files)
    c.expect(r.returncode == 0 and len(files) > 1, f"yamllint -s on {len(files)} files",
             r.stdout + r.stderr)


# --- systemd ----------------------------------------------------------------------------------

def parse_unit(text):
    """A unit file as {key: [values]} (sections merged: the keys checked here are unique)."""
    keys = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        keys.setdefault(k.strip(), []).append(v.strip())
    return keys


def make_systemd_root(tmp, unit_dir, sluice_bin):
    """A root for systemd-analyze --root: the host's units, ours, and the binary ExecStart names."""
    host_units = "/usr/lib/systemd/system"
    if not os.path.isdir(host_units):
        raise RuntimeError(f"{host_units} is missing (package systemd)")
    root = os.path.join(tmp, "root")
    shutil.copytree(host_units, os.path.join(root, "usr/lib/systemd/system"), symlinks=True)
    etc = os.path.join(root, "etc/systemd/system")
    os.makedirs(etc)
    for u in UNITS:
        shutil.copy(os.path.join(unit_dir, u), etc)
    os.makedirs(os.path.join(root, "usr/local/bin"))
    shutil.copy(sluice_bin, os.path.join(root, "usr/local/bin/sluice"))
    return root


def check_systemd(c, tmp, sluice_bin, unit_dir=None, report_security=True):
    unit_dir = unit_dir or os.path.join(DEPLOY, "systemd")
    c.expect(not os.path.exists(os.path.join(DEPLOY, "sluice@.service")),
             "the old template deploy/sluice@.service is gone", "still there")
    present = sorted(os.path.basename(p) for p in glob.glob(os.path.join(unit_dir, "sluice*")))
    missing = [u for u in UNITS if u not in present]
    if not c.expect(not missing, "every unit is in deploy/systemd", f"missing {missing}"):
        return
    root = make_systemd_root(tmp, unit_dir, sluice_bin)
    for u in UNITS:
        r = run(["systemd-analyze", "verify", f"--root={root}", u])
        out = (r.stdout + r.stderr).strip()
        c.expect(r.returncode == 0 and out == "", f"systemd-analyze verify {u}",
                 out or f"exit {r.returncode}")
    for u in UNITS:
        if not u.endswith(".service"):
            continue
        keys = parse_unit(open(os.path.join(unit_dir, u)).read())
        role = u[len("sluice-"):-len(".service")]
        bad = [f"{k}={keys.get(k)}" for k, v in HARDENING.items() if keys.get(k) != [v]]
        c.expect(not bad, f"{u} carries the hardening settings", f"wrong or missing: {bad}")
        exec_start = keys.get("ExecStart", [""])[0].split()
        c.expect(exec_start[:2] == ["/usr/local/bin/sluice", role] and "--config" in exec_start,
                 f"{u} runs `sluice {role} --config ...`", f"ExecStart={exec_start}")
        state = " ".join(keys.get("StateDirectory", [])).split()
        in_state = any(BLOBS_DIR == "/var/lib/" + d or BLOBS_DIR.startswith("/var/lib/" + d + "/")
                       for d in state)
        c.expect(in_state, f"{u}: StateDirectory= makes {BLOBS_DIR} writable", f"{state}")
        if report_security:
            r = run(["systemd-analyze", "security", "--offline=true", f"--root={root}",
                     f"--threshold={int(EXPOSURE_MAX * 10)}", u])
            m = re.search(r"Overall exposure level for \S+: ([0-9.]+)", r.stdout)
            c.expect(r.returncode == 0 and m is not None,
                     f"systemd-analyze security {u}: exposure {m.group(1) if m else '?'} "
                     f"(at most {EXPOSURE_MAX})", (r.stdout + r.stderr)[-400:])


# --- redis ------------------------------------------------------------------------------------

class Redis:
    """redis-server from deploy/redis.conf on a free loopback port, its data in tmp."""

    def __init__(self, tmp):
        self.port = free_port()
        data = os.path.join(tmp, "redis")
        os.makedirs(data)
        self.proc = subprocess.Popen(
            ["redis-server", os.path.join(DEPLOY, "redis.conf"), "--port", str(self.port),
             "--bind", "127.0.0.1", "--dir", data, "--daemonize", "no"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and self.proc.poll() is None:
            if self.cli("PING") == "PONG":
                return
            time.sleep(0.05)
        out = self.proc.stdout.read() if self.proc.poll() is not None else ""
        self.stop()
        raise RuntimeError("redis-server did not start from deploy/redis.conf: " + out[-600:])

    def cli(self, *args):
        r = run(["redis-cli", "-p", str(self.port)] + list(args), timeout=5)
        return r.stdout.strip()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def check_redis_conf(c, redis):
    want = {"appendonly": "yes", "appendfsync": "always", "save": "",
            "maxmemory-policy": "noeviction", "aof-use-rdb-preamble": "yes"}
    for k, v in want.items():
        got = redis.cli("CONFIG", "GET", k).split("\n")
        c.expect(len(got) >= 1 and (got[1] if len(got) > 1 else "") == v,
                 f"redis-server from deploy/redis.conf: {k} = {v!r}", f"got {got}")


# --- sluice configurations --------------------------------------------------------------------

def substitute(text, key, value):
    """Replaces the string value of "key" (one occurrence) in a commented JSON text."""
    new, n = re.subn(r'("%s"\s*:\s*)"[^"]*"' % re.escape(key),
                     lambda m: m.group(1) + json.dumps(value), text)
    return new, n


def check_config(c, tmp, sluice_bin, name, text, redis):
    """`sluice serve` on a shipped configuration, moved to loopback: ready, then a clean stop."""
    try:
        parsed = json.loads(strip_json_comments(text))
    except ValueError as e:
        c.fail(f"{name} is JSON (comments allowed)", str(e))
        return
    blobs = parsed.get("blobs", {}).get("dir")
    c.expect(blobs == BLOBS_DIR, f"{name}: blobs.dir is {BLOBS_DIR}", f"{blobs!r}")
    port = free_port()
    work = tempfile.mkdtemp(dir=tmp)
    moves = [("listen", f"127.0.0.1:{port}"), ("redis", f"redis://127.0.0.1:{redis.port}/0"),
             ("dir", os.path.join(work, "blobs"))]
    metrics_port = None
    if "metrics_listen" in parsed:
        metrics_port = free_port()
        moves.append(("metrics_listen", f"127.0.0.1:{metrics_port}"))
    for key, value in moves:
        text, n = substitute(text, key, value)
        if n != 1:
            c.fail(f"{name}: moving {key} to loopback", f"{n} occurrences of \"{key}\"")
            return
    path = os.path.join(work, "sluice.json")
    with open(path, "w") as f:
        f.write(text)
    env = dict(os.environ)
    for n in env_names(parsed):
        # a webhook secret has a format of its own (Standard Webhooks: whsec_ and base64)
        env[n] = ("whsec_" + base64.b64encode(n.encode().ljust(24, b"-")).decode()
                  if "WEBHOOK" in n else "check-deploy-secret-" + n.lower().replace("_", "-"))
    log = open(os.path.join(work, "sluice.log"), "w+")
    proc = subprocess.Popen([sluice_bin, "serve", "--config", path], env=env, stdout=log,
                            stderr=subprocess.STDOUT)
    status, deadline = None, time.monotonic() + 10
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as r:
                status = r.status
                break
        except OSError:
            time.sleep(0.1)
    health = None
    if metrics_port is not None and status == 200:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/healthz",
                                        timeout=2) as r:
                health = r.status
        except OSError as e:
            health = str(e)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=BOUND_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = proc.wait()
    log.seek(0)
    tail = log.read()[-800:]
    log.close()
    c.expect(status == 200, f"{name}: sluice serve accepts it and /readyz answers 200",
             f"status {status}, log: {tail}")
    if metrics_port is not None:
        c.expect(health == 200, f"{name}: metrics_listen answers /healthz", f"{health}")
    c.expect(rc == 0, f"{name}: SIGTERM stops sluice serve with status 0", f"exit {rc}: {tail}")


# --- container --------------------------------------------------------------------------------

def parse_containerfile(text):
    """Instructions as (KEYWORD, arguments), continuation lines joined, comments dropped."""
    lines, cur = [], ""
    for raw in text.splitlines():
        s = raw.strip()
        if s.startswith("#") or (not s and not cur):
            continue
        if s.endswith("\\"):
            cur += s[:-1] + " "
            continue
        cur += s
        if cur.strip():
            kw, _, rest = cur.strip().partition(" ")
            lines.append((kw.upper(), rest.strip()))
        cur = ""
    return lines


def stages(instructions):
    """[{name, image, instr: [...]}] in order."""
    out = []
    for kw, rest in instructions:
        if kw == "FROM":
            m = re.match(r"(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$", rest, re.I)
            out.append({"image": m.group(1) if m else rest,
                        "name": m.group(2) if m and m.group(2) else None, "instr": []})
        elif out:
            out[-1]["instr"].append((kw, rest))
    return out


def base_image(st, by_name):
    seen = 0
    while st["image"] in by_name and seen < 16:
        st, seen = by_name[st["image"]], seen + 1
    return st["image"]


def apt_packages(stage):
    pkgs = set()
    for kw, rest in stage["instr"]:
        if kw != "RUN":
            continue
        for m in re.finditer(r"apt-get install([^&;|]*)", rest):
            pkgs |= {w for w in m.group(1).split() if not w.startswith("-") and "=" not in w}
    return pkgs


def chain(st, by_name):
    out, seen = [st], 0
    while st["image"] in by_name and seen < 16:
        st, seen = by_name[st["image"]], seen + 1
        out.append(st)
    return out


def check_containerfile_text(c, text, sluice_bin=None):
    st = stages(parse_containerfile(text))
    by_name = {s["name"]: s for s in st if s["name"]}
    if not c.expect(len(st) >= 2, "Containerfile is multi-stage", f"{len(st)} stage(s)"):
        return set()
    debian = re.compile(r"^(docker\.io/(library/)?)?debian:12(\b|-|$)")
    bases = [base_image(s, by_name) for s in st]
    c.expect(all(debian.match(b) for b in bases), "every stage starts from debian:12*",
             f"{bases}")
    c.expect(st[0]["name"] == "build" and re.search(r"debian:12$", st[0]["image"]) is not None,
             "the first stage is `debian:12 AS build`", f"{st[0]['image']} AS {st[0]['name']}")
    final = st[-1]
    c.expect(re.search(r"debian:12-slim$", base_image(final, by_name)) is not None,
             "the final stage runs on debian:12-slim", base_image(final, by_name))
    fi = final["instr"]
    users = [r for k, r in fi if k == "USER"]
    c.expect(users and users[-1].split(":")[0] not in ("root", "0"),
             "the final stage runs as a non-root USER", f"USER {users}")
    hc = [r for k, r in fi if k == "HEALTHCHECK"]
    c.expect(hc and "/readyz" in hc[-1], "the final stage has a HEALTHCHECK on /readyz", f"{hc}")
    ep = [r for k, r in fi if k == "ENTRYPOINT"]
    c.expect(ep and "sluice" in ep[-1] and "sluice-mock" not in ep[-1],
             "the final stage's ENTRYPOINT is sluice", f"{ep}")
    c.expect(any(k == "EXPOSE" for k, _ in fi), "the final stage EXPOSEs its ports", "no EXPOSE")
    adds = [r for s in st for k, r in s["instr"] if k == "ADD" and re.search(r"\w+://", r)]
    c.expect(not adds, "no ADD of a URL", f"{adds}")
    copies = [r for k, r in fi if k == "COPY" and "--from=build" in r]
    c.expect(any(re.search(r"/sluice(\s|$)", r) for r in copies),
             "the final stage copies the binary with COPY --from=build", f"{copies}")
    runtime = set()
    for s in chain(final, by_name):
        runtime |= apt_packages(s)
    c.expect(RUNTIME_PACKAGES <= runtime, "the runtime installs the runtime libraries",
             f"missing {sorted(RUNTIME_PACKAGES - runtime)}")
    dev = sorted(p for p in runtime if p.endswith("-dev") or p in ("build-essential", "cmake"))
    c.expect(not dev, "the runtime installs no build package", f"{dev}")
    build = apt_packages(st[0])
    c.expect(any(r for k, r in st[0]["instr"] if k == "RUN" and "--target sluice" in r),
             "the build stage builds the sluice target", "no `--target sluice`")
    return build | runtime, runtime


def packages_of(paths):
    """{path: Debian package} for libraries, through the names usrmerge gives them (one dpkg -S:
    each call reads every package's file list)."""
    names = {}
    for path in paths:
        real = os.path.realpath(path)
        for n in (path, real, re.sub(r"^/usr/lib/", "/lib/", real)):
            names[n] = path
    owners = {}
    for line in run(["dpkg", "-S"] + sorted(names)).stdout.splitlines():
        m = re.match(r"^([^:,\s]+)(?::\S+)?: (/\S+)$", line)
        if m and m.group(2) in names:
            owners.setdefault(names[m.group(2)], m.group(1))
    return owners


def check_container(c, sluice_bin):
    path = os.path.join(DEPLOY, "container", "Containerfile")
    res = check_containerfile_text(c, open(path).read())
    if not res:
        return
    every, runtime = res
    unknown = []
    if run(["apt-cache", "show"] + sorted(every)).returncode != 0:
        unknown = [p for p in sorted(every) if run(["apt-cache", "show", p]).returncode != 0]
    c.expect(not unknown and every, f"apt-cache knows all {len(every)} packages it installs",
             f"unknown: {unknown}")
    # a sanitizer build (the suite's second round) links the sanitizers' runtimes: they are the
    # test build's, never the image's (the Containerfile builds Release)
    needed = [lib for lib in re.findall(r"\(NEEDED\)\s+Shared library: \[(\S+)\]",
                                        run(["readelf", "-d", sluice_bin]).stdout)
              if not re.match(r"lib(asan|ubsan|lsan|tsan)\.so", lib)]
    ldd = run(["ldd", sluice_bin]).stdout
    paths = {}
    for lib in needed:
        m = re.search(r"^\s*%s => (\S+)" % re.escape(lib), ldd, re.M)
        paths[lib] = m.group(1) if m else None
    found = packages_of([p for p in paths.values() if p])
    owners = {lib: found.get(p) for lib, p in paths.items()}
    uncovered = {lib: o for lib, o in owners.items()
                 if o is None or o not in runtime | BASE_IMAGE_PACKAGES}
    c.expect(needed and not uncovered,
             f"the runtime installs the package of each of the {len(needed)} libraries sluice "
             f"links ({', '.join(sorted(set(filter(None, owners.values()))))})", f"{uncovered}")
    ignore = os.path.join(ROOT, ".dockerignore")
    lines = open(ignore).read().split() if os.path.exists(ignore) else []
    c.expect(".git" in lines and any(x.startswith("build") for x in lines),
             ".dockerignore keeps .git and build directories out of the context", f"{lines}")


# --- compose ----------------------------------------------------------------------------------

def healthcheck_test(svc):
    t = (svc.get("healthcheck") or {}).get("test")
    return t if isinstance(t, list) else ([t] if t else None)


def check_compose_doc(c, doc, base_dir, containerfile_targets):
    services = doc.get("services") or {}
    want = {"redis", "mock", "api", "worker", "scheduler"}
    c.expect(want <= set(services), "compose has redis, mock, api, worker, scheduler",
             f"{sorted(services)}")
    for name, svc in services.items():
        b = svc.get("build")
        if b:
            df = os.path.normpath(os.path.join(base_dir, b.get("context", "."),
                                               b.get("dockerfile", "Containerfile")))
            c.expect(os.path.exists(df) and b.get("target") in containerfile_targets,
                     f"compose {name}: builds {os.path.relpath(df, ROOT)} target "
                     f"{b.get('target')}", f"stages {sorted(containerfile_targets)}")
        else:
            c.expect(bool(svc.get("image")), f"compose {name}: has an image", "no image/build")
        c.expect(isinstance(svc.get("command"), list) and svc["command"],
                 f"compose {name}: has a command", f"{svc.get('command')}")
        t = healthcheck_test(svc)
        none = t == ["NONE"]
        c.expect(t and (not none or not svc.get("ports")),
                 f"compose {name}: has a healthcheck"
                 + (" (NONE: no listener)" if none else f" ({' '.join(map(str, t[1:]))[:60]})"),
                 f"{t}, ports {svc.get('ports')}")
        for dep, cond in (svc.get("depends_on") or {}).items():
            dt = healthcheck_test(services.get(dep, {}))
            c.expect(dep in services and (cond or {}).get("condition") == "service_healthy"
                     and dt and dt != ["NONE"],
                     f"compose {name}: waits for {dep} to be healthy", f"{cond}, check {dt}")
        for v in svc.get("volumes") or []:
            src = v.split(":")[0]
            if src.startswith("."):
                c.expect(os.path.exists(os.path.join(base_dir, src)),
                         f"compose {name}: mounts {src}", "no such file")
        for p in svc.get("ports") or []:
            c.expect(str(p).startswith("127.0.0.1:"), f"compose {name}: publishes {p} on "
                     "loopback only", "bound beyond loopback")
        cmd = svc.get("command") or []
        if "--config" in cmd:
            cfg = cmd[cmd.index("--config") + 1]
            mounts = [v.split(":")[1] for v in svc.get("volumes") or [] if ":" in v]
            c.expect(cfg in mounts, f"compose {name}: --config {cfg} is mounted", f"{mounts}")


def check_compose(c, tmp):
    path = os.path.join(DEPLOY, "compose.yaml")
    doc = yaml.safe_load(open(path))
    targets = {s["name"] for s in stages(parse_containerfile(
        open(os.path.join(DEPLOY, "container", "Containerfile")).read())) if s["name"]}
    check_compose_doc(c, doc, DEPLOY, targets)
    redis_cmd = doc["services"]["redis"]["command"]
    mounted = [v for v in doc["services"]["redis"]["volumes"] if v.startswith("./redis.conf:")]
    c.expect(mounted and mounted[0].split(":")[1] in redis_cmd,
             "compose redis runs deploy/redis.conf as mounted", f"{redis_cmd}, {mounted}")
    stub = os.path.join(tmp, "podman")
    with open(stub, "w") as f:
        f.write('#!/bin/sh\n# podman-compose asks the version and whether the network exists\n'
                'case "$1" in --version|version) echo "podman version 4.3.1";; esac\nexit 0\n')
    os.chmod(stub, 0o755)
    r = run(["podman-compose", "--dry-run", "--podman-path", stub, "-f", path, "up"], cwd=tmp)
    creates = re.findall(r"^\S+ create --name=\S+_(\w+)_1 (.*)$", r.stdout, re.M)
    made = {name for name, _ in creates}
    c.expect(r.returncode == 0 and made == set(doc["services"]),
             f"podman-compose --dry-run up makes a container per service ({len(made)})",
             f"exit {r.returncode}, made {sorted(made)}: {(r.stderr or r.stdout)[-600:]}")
    for name, args in creates:
        t = healthcheck_test(doc["services"][name])
        flag = "--no-healthcheck" if t == ["NONE"] else "--healthcheck-command"
        c.expect(flag in args, f"podman-compose gives {name} {flag}", args[:200])


# --- kubernetes -------------------------------------------------------------------------------

API_VERSIONS = {
    "Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1",
    "PersistentVolumeClaim": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1",
    "PodDisruptionBudget": "policy/v1", "HorizontalPodAutoscaler": "autoscaling/v2",
}
WORKLOADS = ("Deployment", "StatefulSet")


def labels_match(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def check_container_spec(c, where, ctr, pod, refs):
    c.expect(bool(ctr.get("image")) and bool(ctr.get("name")), f"{where}: name and image",
             f"{ctr.get('name')} {ctr.get('image')}")
    sc = ctr.get("securityContext") or {}
    psc = pod.get("securityContext") or {}
    c.expect(psc.get("runAsNonRoot") is True and sc.get("readOnlyRootFilesystem") is True
             and sc.get("allowPrivilegeEscalation") is False
             and "ALL" in ((sc.get("capabilities") or {}).get("drop") or []),
             f"{where}: non-root, read-only root, no privilege escalation, drop ALL",
             f"pod {psc}, container {sc}")
    res = ctr.get("resources") or {}
    c.expect((res.get("requests") or {}).get("memory") and (res.get("limits") or {}).get("memory"),
             f"{where}: memory request and limit", f"{res}")
    ports = {p.get("name"): p.get("containerPort") for p in ctr.get("ports") or []}
    if ports:
        c.expect(ctr.get("readinessProbe") and ctr.get("livenessProbe"),
                 f"{where}: readiness and liveness probes", "missing")
    for kind in ("readinessProbe", "livenessProbe"):
        hg = (ctr.get(kind) or {}).get("httpGet")
        if hg:
            c.expect(hg.get("port") in ports or hg.get("port") in ports.values(),
                     f"{where}: {kind} port {hg.get('port')} is a container port", f"{ports}")
    vols = {v["name"]: v for v in pod.get("volumes") or []}
    for m in ctr.get("volumeMounts") or []:
        c.expect(m.get("name") in vols or m.get("name") in refs["claim_templates"],
                 f"{where}: volume {m.get('name')} is declared", f"{sorted(vols)}")
    for v in vols.values():
        if "configMap" in v:
            c.expect(v["configMap"].get("name") in refs["ConfigMap"],
                     f"{where}: ConfigMap {v['configMap'].get('name')} exists", "missing")
        if "persistentVolumeClaim" in v:
            cn = v["persistentVolumeClaim"].get("claimName")
            c.expect(cn in refs["PersistentVolumeClaim"], f"{where}: PVC {cn} exists", "missing")
    for e in ctr.get("envFrom") or []:
        sn = (e.get("secretRef") or {}).get("name")
        if sn:
            c.expect(sn in refs["Secret"], f"{where}: Secret {sn} exists", "missing")
    return ports


def check_k8s_docs(c, docs):
    """Schema and cross-reference checks over all manifests; returns the sluice.json text."""
    by_kind = {}
    for d in docs:
        kind, name = d.get("kind"), (d.get("metadata") or {}).get("name")
        c.expect(kind in API_VERSIONS and d.get("apiVersion") == API_VERSIONS[kind] and name,
                 f"k8s {kind}/{name}: apiVersion {d.get('apiVersion')}", "unknown or wrong")
        if kind != "Namespace":
            c.expect(d["metadata"].get("namespace") == "sluice", f"k8s {kind}/{name}: namespace",
                     f"{d['metadata'].get('namespace')}")
        by_kind.setdefault(kind, {})[name] = d
    refs = {k: set(by_kind.get(k, {})) for k in ("ConfigMap", "Secret", "PersistentVolumeClaim")}
    c.expect("sluice" in by_kind.get("Namespace", {}), "k8s Namespace sluice exists", "missing")
    pods = {}
    for kind in WORKLOADS:
        for name, d in by_kind.get(kind, {}).items():
            spec = d.get("spec") or {}
            tmpl = spec.get("template") or {}
            labels = (tmpl.get("metadata") or {}).get("labels") or {}
            sel = (spec.get("selector") or {}).get("matchLabels") or {}
            c.expect(labels_match(sel, labels), f"k8s {kind}/{name}: selector matches template",
                     f"{sel} vs {labels}")
            pod = tmpl.get("spec") or {}
            refs["claim_templates"] = {(t.get("metadata") or {}).get("name")
                                       for t in spec.get("volumeClaimTemplates") or []}
            ports = {}
            for ctr in pod.get("containers") or [{}]:
                ports.update(check_container_spec(c, f"k8s {kind}/{name}/{ctr.get('name')}",
                                                  ctr, pod, refs))
            pods[name] = (labels, ports, pod)
    for role in ("api", "worker", "scheduler"):
        d = by_kind.get("Deployment", {}).get(f"sluice-{role}")
        if not c.expect(d is not None, f"k8s Deployment sluice-{role} exists", "missing"):
            continue
        ctr = d["spec"]["template"]["spec"]["containers"][0]
        c.expect((ctr.get("args") or [None])[0] == role and "--config" in ctr["args"],
                 f"k8s sluice-{role} runs `sluice {role} --config ...`", f"{ctr.get('args')}")
    api = by_kind.get("Deployment", {}).get("sluice-api")
    if api:
        ctr = api["spec"]["template"]["spec"]["containers"][0]
        paths = [((ctr.get(k) or {}).get("httpGet") or {}).get("path")
                 for k in ("readinessProbe", "livenessProbe")]
        c.expect(paths == ["/readyz", "/healthz"], "k8s api: readiness /readyz, liveness /healthz",
                 f"{paths}")
    sched = by_kind.get("Deployment", {}).get("sluice-scheduler")
    if sched:
        c.expect(sched["spec"].get("replicas") in (1, 2), "k8s scheduler: 1 or 2 replicas",
                 f"{sched['spec'].get('replicas')}")
    for name, d in by_kind.get("Service", {}).items():
        sel = d["spec"].get("selector") or {}
        hits = [n for n, (labels, _, _) in pods.items() if labels_match(sel, labels)]
        c.expect(hits, f"k8s Service/{name}: selector matches {hits}", f"{sel} matches no pod")
        for p in d["spec"].get("ports") or []:
            tp = p.get("targetPort", p.get("port"))
            c.expect(all(tp in pods[h][1] or tp in pods[h][1].values() for h in hits) and hits,
                     f"k8s Service/{name}: targetPort {tp} is a container port", "not found")
    for name, d in by_kind.get("PodDisruptionBudget", {}).items():
        sel = (d["spec"].get("selector") or {}).get("matchLabels") or {}
        hits = [n for n, (labels, _, _) in pods.items() if labels_match(sel, labels)]
        one = ("minAvailable" in d["spec"]) != ("maxUnavailable" in d["spec"])
        c.expect(hits and one, f"k8s PodDisruptionBudget/{name}: selects {hits}", f"{sel}")
    c.expect(by_kind.get("PodDisruptionBudget"), "k8s has a PodDisruptionBudget", "none")
    for name, d in by_kind.get("HorizontalPodAutoscaler", {}).items():
        t = d["spec"].get("scaleTargetRef") or {}
        mm = d["spec"].get("metrics") or []
        c.expect(t.get("kind") == "Deployment" and t.get("name") in by_kind.get("Deployment", {})
                 and mm and d["spec"].get("minReplicas", 1) <= d["spec"].get("maxReplicas", 0),
                 f"k8s HorizontalPodAutoscaler/{name} scales Deployment {t.get('name')}", f"{t}")
    c.expect(by_kind.get("HorizontalPodAutoscaler"), "k8s has a HorizontalPodAutoscaler", "none")
    cm = by_kind.get("ConfigMap", {}).get("sluice-config", {}).get("data", {}).get("sluice.json")
    secret = by_kind.get("Secret", {}).get("sluice-secrets", {})
    if c.expect(cm is not None, "k8s ConfigMap sluice-config has sluice.json", "missing"):
        try:
            names = env_names(json.loads(strip_json_comments(cm)))
        except ValueError:
            names = set()
        keys = set((secret.get("stringData") or {}) | (secret.get("data") or {}))
        c.expect(names and names <= keys, f"k8s Secret sluice-secrets holds {sorted(names)}",
                 f"missing {sorted(names - keys)}")
    rc = by_kind.get("ConfigMap", {}).get("sluice-redis-conf", {}).get("data", {})
    if rc:
        same = rc.get("redis.conf") == open(os.path.join(DEPLOY, "redis.conf")).read()
        c.expect(same, "k8s redis.yaml carries deploy/redis.conf unchanged", "differs")
    return cm


def check_k8s(c):
    kdir = os.path.join(DEPLOY, "k8s")
    docs, files = [], sorted(glob.glob(os.path.join(kdir, "*.yaml")))
    kust = None
    for f in files:
        for d in yaml.safe_load_all(open(f)):
            if d is None:
                continue
            if d.get("kind") == "Kustomization":
                kust = d
            else:
                docs.append(d)
    listed = set((kust or {}).get("resources") or [])
    on_disk = {os.path.basename(f) for f in files} - {"kustomization.yaml"}
    c.expect(listed == on_disk, "k8s kustomization.yaml lists every manifest",
             f"listed {sorted(listed)}, on disk {sorted(on_disk)}")
    return check_k8s_docs(c, docs)


# --- self-test: the checks fail on broken files -----------------------------------------------

def self_test(c, tmp, sluice_bin):
    """Broken copies must fail the check that guards them (else the check proves nothing)."""
    failed = 0
    unit_dir = os.path.join(tmp, "broken-units")
    shutil.copytree(os.path.join(DEPLOY, "systemd"), unit_dir)
    p = os.path.join(unit_dir, "sluice-api.service")
    open(p, "w").write(open(p).read().replace("ProtectSystem=strict", "ProtectSystem=bogus"))
    q = Checks(quiet=True)
    check_systemd(q, os.path.join(tmp, "broken-root"), sluice_bin, unit_dir,
                  report_security=False)
    failed += bool(q.failures)
    c.expect(q.failures, "self-test: ProtectSystem=bogus fails the systemd check", "passed")
    text = open(os.path.join(DEPLOY, "container", "Containerfile")).read()
    q = Checks(quiet=True)
    cut = text.rindex("USER 10001:10001")
    check_containerfile_text(q, text[:cut] + "USER root" + text[cut + len("USER 10001:10001"):])
    failed += bool(q.failures)
    c.expect(q.failures, "self-test: USER root in the final stage fails the container check",
             "passed")
    kdocs = [d for f in sorted(glob.glob(os.path.join(DEPLOY, "k8s", "*.yaml")))
             for d in yaml.safe_load_all(open(f)) if d and d.get("kind") != "Kustomization"]
    for d in kdocs:
        if d["kind"] == "Service" and d["metadata"]["name"] == "sluice-api":
            d["spec"]["selector"]["app.kubernetes.io/component"] = "apix"
    q = Checks(quiet=True)
    check_k8s_docs(q, kdocs)
    failed += bool(q.failures)
    c.expect(q.failures, "self-test: a Service selector matching no pod fails the k8s check",
             "passed")
    doc = yaml.safe_load(open(os.path.join(DEPLOY, "compose.yaml")))
    doc["services"]["api"]["depends_on"] = {"worker": {"condition": "service_healthy"}}
    q = Checks(quiet=True)
    check_compose_doc(q, doc, DEPLOY, {"runtime", "mock", "build", "base"})
    failed += bool(q.failures)
    c.expect(q.failures, "self-test: depends_on a service without a check fails compose",
             "passed")
    return failed == SELF_TEST_CASES


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sluice", required=True, help="the built sluice binary")
    args = ap.parse_args()
    started = time.monotonic()
    c = Checks()
    missing = [f"{t} (Debian package {p})" for t, p in TOOLS.items() if shutil.which(t) is None]
    if yaml is None:
        missing.append("the python3 yaml module (Debian package python3-yaml)")
    if not os.access(args.sluice, os.X_OK):
        missing.append(f"the sluice binary {args.sluice}")
    if missing:
        print("FAIL - missing: " + "; ".join(missing))
        return 1
    sluice_bin = os.path.abspath(args.sluice)
    tmp = tempfile.mkdtemp(prefix="check-deploy-")
    redis = None
    try:
        check_yaml(c)
        check_systemd(c, tmp, sluice_bin)
        check_container(c, sluice_bin)
        check_compose(c, tmp)
        cm = check_k8s(c)
        redis = Redis(tmp)
        check_redis_conf(c, redis)
        configs = [("deploy/sluice.example.json",
                    open(os.path.join(DEPLOY, "sluice.example.json")).read()),
                   ("deploy/compose/sluice.json",
                    open(os.path.join(DEPLOY, "compose", "sluice.json")).read())]
        if cm:
            configs.append(("deploy/k8s/configmap.yaml sluice.json", cm))
        for name, text in configs:
            check_config(c, tmp, sluice_bin, name, text, redis)
        self_test(c, tmp, sluice_bin)
    except (RuntimeError, OSError, subprocess.TimeoutExpired, yaml.YAMLError) as e:
        c.fail("deploy checks", f"{type(e).__name__}: {e}")
    finally:
        if redis:
            redis.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"# {c.passed} passed, {len(c.failures)} failed, "
          f"{time.monotonic() - started:.1f} s")
    for f in c.failures:
        print(f"# FAIL {f}")
    return 1 if c.failures or c.passed == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
