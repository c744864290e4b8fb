#!/usr/bin/env python3
"""The Kubernetes manifests in deploy/kubernetes/, checked offline and against the binary.

1. The core resources validate against the Kubernetes schemas of a pinned minor version
   (PyPI kubernetes-validate, strict: unknown fields are errors). The cert-manager
   Certificate and the ServiceMonitor are custom resources the tool has no schema for:
   their shape is checked here, and that they name what the Deployment and Service use.
2. The Deployment agrees with servy: its probes, ports and paths are the ones servy
   serves with the ConfigMap's configuration, its certificate paths lie in the mounted
   Secret, and its grace period is above servy's drain plus the preStop pause.
3. A pod-like run: servy from the ConfigMap's configuration (addresses moved to loopback
   ports, certificates made here), as uid 65534 with a read-only root (bubblewrap) and a
   writable scratch directory (its TMPDIR) only. Its probe paths answer, the site is served over HTTP
   and HTTPS, and at SIGTERM during a download readiness ends first, the download
   completes, and the process exits 0 within the grace period.

usage: kubernetes.py SERVY_BINARY
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "deploy" / "kubernetes"
KUBERNETES = "1.34.0"
CORE = ["configmap.yaml", "deployment.yaml", "service.yaml", "poddisruptionbudget.yaml"]

failures = 0
passes = 0


def check(ok: bool, what: str) -> None:
    global failures, passes
    print(("PASS " if ok else "FAIL ") + what)
    failures += 0 if ok else 1
    passes += 1 if ok else 0


def load(name: str) -> dict:
    return yaml.safe_load((MANIFESTS / name).read_text())


def duration_seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return float(text[: -len(unit)]) * units[unit]
    return float(text)


def validate_schemas() -> None:
    for name in CORE:
        try:
            kubernetes_validate.validate(load(name), KUBERNETES, strict=True)
            check(True, f"{name} validates against Kubernetes {KUBERNETES} (strict)")
        except kubernetes_validate.ValidationError as e:
            check(False, f"{name}: {e.message} at {list(e.path)}")
    listed = load("kustomization.yaml")["resources"]
    on_disk = sorted(p.name for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")
    check(sorted(listed) == on_disk, f"kustomization.yaml lists every manifest: {listed}")


def check_custom_resources(deployment: dict, service: dict) -> None:
    certificate = load("certificate.yaml")
    spec = certificate.get("spec", {})
    secrets = [v["secret"]["secretName"] for v in pod(deployment)["volumes"] if "secret" in v]
    check(
        certificate.get("apiVersion") == "cert-manager.io/v1" and certificate.get("kind") == "Certificate",
        "certificate.yaml is a cert-manager.io/v1 Certificate",
    )
    check(spec.get("secretName") in secrets, f"the Certificate writes the Secret the pods mount ({secrets})")
    check(bool(spec.get("dnsNames")) and bool(spec.get("issuerRef", {}).get("name")), "the Certificate names hosts and an issuer")
    monitor = load("servicemonitor.yaml")
    endpoints = monitor.get("spec", {}).get("endpoints", [])
    service_ports = {p["name"] for p in service["spec"]["ports"]}
    check(
        monitor.get("apiVersion") == "monitoring.coreos.com/v1"
        and monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items(),
        "the ServiceMonitor selects the Service",
    )
    check(
        bool(endpoints) and all(e["port"] in service_ports and e.get("path") == "/metrics" for e in endpoints),
        "the ServiceMonitor scrapes /metrics on a port the Service has",
    )


def pod(deployment: dict) -> dict:
    return deployment["spec"]["template"]["spec"]


def port_of(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    return next(p["containerPort"] for p in container["ports"] if p["name"] == port)


def listen_port(addresses: list[str]) -> int:
    return int(addresses[0].rsplit(":", 1)[1])


def check_agreement(deployment: dict, config: dict) -> dict:
    """The Deployment against the ConfigMap's configuration; returns what the run needs."""
    spec = pod(deployment)
    container = spec["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    args = container.get("args", [])
    config_path = args[args.index("--config") + 1]
    check(config_path == mounts["config"], f"servy reads its config where the ConfigMap is mounted ({config_path})")
    metrics_port = listen_port(config["metrics"]["listen"])
    for kind in ("readinessProbe", "livenessProbe", "startupProbe"):
        probe = container[kind]["httpGet"]
        check(
            port_of(container, probe["port"]) == metrics_port and probe["path"] in ("/readyz", "/healthz"),
            f"{kind} asks {probe['path']} on the metrics port {metrics_port}",
        )
    check(container["readinessProbe"]["httpGet"]["path"] == "/readyz", "readiness is /readyz")
    for name, section in (("http", "http"), ("https", "https")):
        check(
            port_of(container, name) == listen_port(config[section]["listen"]),
            f"containerPort {name} is {section}.listen's port",
        )
    tls_dir = mounts["tls"]
    files = [c[k] for c in config["https"]["certificates"] for k in ("cert", "key")]
    check(all(f.startswith(tls_dir + "/") for f in files), f"the certificate files lie in the Secret's mount {tls_dir}")
    grace = duration_seconds(config["limits"]["shutdown_grace"])
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    period = spec["terminationGracePeriodSeconds"]
    check(period > grace + pause, f"terminationGracePeriodSeconds {period} > shutdown_grace {grace:g} s + preStop {pause} s")
    security = container["securityContext"]
    check(
        spec["securityContext"]["runAsNonRoot"]
        and security["readOnlyRootFilesystem"]
        and security["capabilities"]["drop"] == ["ALL"]
        and spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault",
        "non-root, read-only root, no capabilities, seccomp RuntimeDefault",
    )
    return {"grace": grace}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, path: str, timeout: float = 2) -> int:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n".encode())
        return int(s.recv(64).split()[1])


def wait_ready(port: int, proc: subprocess.Popen, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if http_get(port, "/readyz") == 200:
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


def pod_like_run(binary: Path, config: dict) -> None:
    out = REPO / "tests" / "out"
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        tmp = Path(tmp)
        tls = tmp / "tls"
        tls.mkdir()
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", str(tls / "tls.key"), "-out", str(tls / "tls.crt"), "-days", "2", "-subj", "/CN=example.org",
             "-addext", "subjectAltName=DNS:example.org"],
            check=True, capture_output=True,
        )
        ports = {name: free_port() for name in ("http", "https", "metrics")}
        config["http"]["listen"] = [f"127.0.0.1:{ports['http']}"]
        config["https"]["listen"] = [f"127.0.0.1:{ports['https']}"]
        config["metrics"]["listen"] = [f"127.0.0.1:{ports['metrics']}"]
        config["https"]["certificates"] = [{"cert": str(tls / "tls.crt"), "key": str(tls / "tls.key")}]
        toml = tmp / "servy.toml"
        toml.write_text(to_toml(config))
        for path in (tls / "tls.crt", tls / "tls.key", toml):
            path.chmod(0o444)
        tmp.chmod(0o755)
        tls.chmod(0o755)
        scratch = tmp / "scratch"
        scratch.mkdir(mode=0o777)
        scratch.chmod(0o777)
        command = [
            "bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            # The scratch directory is writable in place (and is TMPDIR): binding it over /tmp
            # would hide a checkout that lives under /tmp.
            "--bind", str(scratch), str(scratch), "--unshare-user", "--uid", "65534", "--gid", "65534",
            "--die-with-parent", "--", str(binary), "--config", str(toml),
        ]
        env = {"PATH": os.environ.get("PATH", ""), "TMPDIR": str(scratch)}
        proc = subprocess.Popen(command, stderr=subprocess.PIPE, env=env)
        try:
            ready = wait_ready(ports["metrics"], proc)
            check(ready, "pod-like run: uid 65534, read-only root, /readyz answers 200")
            if not ready:
                return
            check(http_get(ports["metrics"], "/healthz") == 200, "pod-like run: /healthz answers 200")
            check(http_get(ports["http"], "/") == 200, "pod-like run: the site over HTTP")
            context = ssl.create_default_context(cafile=str(tls / "tls.crt"))
            with socket.create_connection(("127.0.0.1", ports["https"]), timeout=2) as raw:
                with context.wrap_socket(raw, server_hostname="example.org") as s:
                    s.sendall(b"GET / HTTP/1.1\r\nhost: example.org\r\nconnection: close\r\n\r\n")
                    check(s.recv(64).startswith(b"HTTP/1.1 200"), "pod-like run: the site over HTTPS with the mounted certificate")
            drain(proc, ports, config)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            if failures:
                print("\n".join(line for line in stderr.splitlines() if '"request"' not in line)[-3000:])


PIPELINED = 64


def drain(proc: subprocess.Popen, ports: dict, config: dict) -> None:
    """SIGTERM while a slow reader downloads more than the socket buffers hold: readiness
    ends, every response in flight completes."""
    size = len(fetch(ports["http"], "/search-index.json"))
    slow = socket.create_connection(("127.0.0.1", ports["http"]))
    ask = b"GET /search-index.json HTTP/1.1\r\nhost: localhost\r\n\r\n"
    slow.sendall(ask * (PIPELINED - 1) + ask.replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))
    first = slow.recv(1024)
    sent = time.monotonic()
    # bubblewrap runs servy as its child and passes its exit status on.
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    os.kill(int(children[0]), signal.SIGTERM)
    time.sleep(0.3)
    try:
        status = http_get(ports["metrics"], "/readyz", timeout=1)
    except OSError:
        status = None
    check(status != 200, f"pod-like run: readiness ends at SIGTERM (/readyz: {status or 'refused'})")
    check(proc.poll() is None, "pod-like run: the drain waits for the downloads in flight")
    exited = []
    threading.Thread(target=lambda: exited.append((proc.wait(), time.monotonic() - sent)), daemon=True).start()
    # About 3 MB/s: the 10 MB in flight take a few seconds, well inside the grace period.
    data = first
    while chunk := slow.recv(16384):
        data += chunk
        time.sleep(0.005)
    complete = 0
    while True:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            break
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
        if len(rest) < length or length != size:
            break
        complete += 1
        data = rest[length:]
    check(complete > 0 and not data, f"pod-like run: the downloads in flight complete ({complete} whole responses, {len(data)} bytes left over)")
    grace = duration_seconds(config["limits"]["shutdown_grace"])
    deadline = time.monotonic() + grace + 2
    while not exited and time.monotonic() < deadline:
        time.sleep(0.05)
    code, took = exited[0] if exited else (None, None)
    check(code == 0 and took is not None and took < grace, f"pod-like run: exit {code} {took or 0:.1f} s after SIGTERM (grace {grace:g} s)")


def fetch(port: int, path: str) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    return data.partition(b"\r\n\r\n")[2]


def to_toml(config: dict) -> str:
    """The few shapes servy's config uses: tables of scalars and lists, arrays of tables."""
    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return str(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = []
    for section, body in config.items():
        scalars = {k: v for k, v in body.items() if not (isinstance(v, list) and v and isinstance(v[0], dict))}
        out.append(f"[{section}]")
        out += [f"{k} = {value(v)}" for k, v in scalars.items()]
        for k, v in body.items():
            if k not in scalars:
                for table in v:
                    out.append(f"[[{section}.{k}]]")
                    out += [f"{tk} = {value(tv)}" for tk, tv in table.items()]
    return "\n".join(out) + "\n"


def main(binary: Path) -> int:
    validate_schemas()
    deployment, service = load("deployment.yaml"), load("service.yaml")
    config = tomllib.loads(load("configmap.yaml")["data"]["servy.toml"])
    check_custom_resources(deployment, service)
    check_agreement(deployment, config)
    pod_like_run(binary, config)
    print(f"kubernetes: {passes} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
