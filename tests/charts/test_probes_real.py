"""The charts' probes run against the real programs: liveness asks "is it alive", readiness "can it serve now".

nginx and PHP-FPM (Debian packages, see requirements/apt.txt) are started on 127.0.0.1 with the configuration
the chart renders, and each probe is run the way the kubelet runs it: an exec probe's command (the readiness
script taken from the rendered ConfigMap), an httpGet probe as a GET with the probe's timeoutSeconds, success
being a status from 200 to 399. A stand-in front controller plays Laravel and counts how often it runs.

What must hold, per container:
- all workers of PHP-FPM busy (an overloaded pod): both readiness probes fail, both liveness probes pass, so the
  pod leaves the Service and is not restarted; once the worker is free it is ready again;
- PHP-FPM gone: php-fpm's liveness fails (restart), nginx's liveness still passes (nginx is not restarted for
  its neighbour's sake) and nginx's readiness fails;
- no probe ever runs the application, so none can touch the database;
- the frontend's readiness fails when the SPA's index.html is missing while its liveness passes.
The nginx-prometheus-exporter sidecar is not packaged here; its probes are asserted on the render only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from chart_render import Render

RenderWith = Callable[..., Render]

# Stand-in for Laravel's public/index.php: sleeps ?sleep=N seconds (to hold the only worker) and counts its runs.
FRONT_CONTROLLER = """<?php
file_put_contents(__DIR__ . '/../runs.log', ($_SERVER['REQUEST_URI'] ?? '') . "\\n", FILE_APPEND);
sleep((int) ($_GET['sleep'] ?? 0));
echo 'handled';
"""


def binary(*names: str) -> str:
    for name in names:
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
        if found:
            return found
    pytest.fail(f"{names[0]} is not installed: scripts/setup.sh installs it (requirements/apt.txt)", pytrace=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextmanager
def running(cmd: list[str], workdir: Path, name: str, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """Run a server until the block ends (or until the test stops it itself)."""
    log = workdir / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 10
            while not listening(port):
                assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{log.read_text()}"
                assert time.monotonic() < deadline, f"{name} did not listen on {port}:\n{log.read_text()}"
                time.sleep(0.05)
            yield proc
        finally:
            stop(proc)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Pod:
    """The probes of one rendered pod, run against processes on 127.0.0.1."""

    def __init__(self, render: Render, ports: dict[str, int], files: dict[str, Path]) -> None:
        spec = render.one("Deployment")["spec"]["template"]["spec"]
        self.containers = {c["name"]: c for c in spec["containers"]}
        self.ports = ports
        self.files = files  # in-container path -> local copy (the exec probes' scripts)

    def probe(self, container: str, kind: str) -> tuple[bool, str]:
        """(passed, what it said) of container's livenessProbe or readinessProbe."""
        probe = self.containers[container][f"{kind}Probe"]
        timeout = probe["timeoutSeconds"]
        if "exec" in probe:
            command = [str(self.files.get(arg, arg)) for arg in probe["exec"]["command"]]
            try:
                proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
            except subprocess.TimeoutExpired:
                return False, f"timed out after {timeout} s"
            return proc.returncode == 0, (proc.stdout + proc.stderr).strip()
        get = probe["httpGet"]
        url = f"http://127.0.0.1:{self.ports[get['port']]}{get['path']}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                return 200 <= response.status < 400, f"HTTP {response.status}"
        except urllib.error.HTTPError as error:
            return False, f"HTTP {error.code}"
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            return False, str(getattr(error, "reason", error))

    def states(self, *containers: str) -> dict[str, bool]:
        return {f"{c}/{kind}": self.probe(c, kind)[0] for c in containers for kind in ("liveness", "readiness")}


@pytest.fixture
def workdir() -> Iterator[Path]:
    """World-readable scratch directory: nginx's workers run as an unprivileged user."""
    path = Path(tempfile.mkdtemp(prefix="threetier-probes-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _get(url: str) -> None:
    with urllib.request.urlopen(url, timeout=30) as response:
        response.read()


def _local_nginx(conf: str, workdir: Path, ports: list[int]) -> str:
    for port in ports:
        assert f"listen {port};" in conf
        conf = conf.replace(f"listen {port};", f"listen 127.0.0.1:{port};")
    return conf.replace("pid /tmp/nginx.pid;", f"pid {workdir}/nginx.pid;")


def test_backend_probes_against_nginx_and_php_fpm(render_with: RenderWith, workdir: Path) -> None:
    http, metrics, fastcgi = free_port(), free_port(), free_port()
    (workdir / "public").mkdir()
    (workdir / "public" / "index.php").write_text(FRONT_CONTROLLER)
    runs = workdir / "runs.log"
    runs.write_text("")
    runs.chmod(0o666)
    # One worker, so one slow request is a pool with every worker busy.
    render = render_with(
        "backend",
        f"nginx.port={http}",
        f"metrics.port={metrics}",
        f"phpfpm.port={fastcgi}",
        f"app.root={workdir}",
        "phpfpm.pm=static",
        "phpfpm.maxChildren=1",
    )
    data = {cm["metadata"]["name"]: cm["data"] for cm in render.kinds("ConfigMap")}
    (workdir / "nginx.conf").write_text(_local_nginx(data["backend-nginx"]["nginx.conf"], workdir, [http, metrics]))
    pool = data["backend-php-fpm"]["zz-threetier.conf"]
    (workdir / "php-fpm.conf").write_text(pool.replace("[global]", f"[global]\npid = {workdir}/php-fpm.pid", 1))
    (workdir / "fpm-ping.php").write_text(data["backend-probes"]["fpm-ping.php"])
    pod = Pod(render, {"http": http}, {"/etc/threetier/fpm-ping.php": workdir / "fpm-ping.php"})

    fpm = [binary("php-fpm", "php-fpm8.4", "php-fpm8.3", "php-fpm8.2"), "--nodaemonize", "--allow-to-run-as-root"]
    fpm += ["--fpm-config", str(workdir / "php-fpm.conf")]
    nginx = [binary("nginx"), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"]
    every = {"php-fpm/liveness": True, "php-fpm/readiness": True, "nginx/liveness": True, "nginx/readiness": True}
    with running(fpm, workdir, "php-fpm", fastcgi) as fpm_proc, running(nginx, workdir, "nginx", http):
        assert pod.states("php-fpm", "nginx") == every

        # Every worker busy: not ready, still alive.
        slow = threading.Thread(target=_get, args=(f"http://127.0.0.1:{http}/api/slow?sleep=8",))
        slow.start()
        deadline = time.monotonic() + 5
        while "sleep=8" not in runs.read_text():
            assert time.monotonic() < deadline, "the slow request never reached the worker"
            time.sleep(0.05)
        said = pod.probe("php-fpm", "readiness")[1]
        busy = pod.states("php-fpm", "nginx")
        assert busy == every | {"php-fpm/readiness": False, "nginx/readiness": False}, busy
        assert "no answer to the FastCGI ping in time" in said, said
        slow.join(timeout=15)
        assert pod.states("php-fpm", "nginx") == every, "ready again once the worker is free"

        # PHP-FPM gone: php-fpm is restarted, nginx only leaves the Service.
        stop(fpm_proc)
        assert not listening(fastcgi)
        gone = pod.states("php-fpm", "nginx")
        assert gone == {
            "php-fpm/liveness": False,
            "php-fpm/readiness": False,
            "nginx/liveness": True,
            "nginx/readiness": False,
        }, gone

    # The application (and with it the database) ran for the slow request only, never for a probe.
    assert runs.read_text().split() == ["/api/slow?sleep=8"]


def test_frontend_probes_against_nginx(render_with: RenderWith, workdir: Path) -> None:
    http, stub = free_port(), free_port()
    html = workdir / "html"
    html.mkdir()
    (html / "index.html").write_text("<!doctype html><title>spa</title>")
    render = render_with("frontend", f"nginx.port={http}", f"metrics.stubStatusPort={stub}")
    conf = render.one("ConfigMap", "frontend-nginx")["data"]["nginx.conf"]
    conf = _local_nginx(conf, workdir, [http]).replace("root /usr/share/nginx/html;", f"root {html};")
    (workdir / "nginx.conf").write_text(conf)
    pod = Pod(render, {"http": http}, {})
    nginx = [binary("nginx"), "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"]
    with running(nginx, workdir, "nginx", http):
        assert pod.states("nginx") == {"nginx/liveness": True, "nginx/readiness": True}
        (html / "index.html").unlink()
        assert pod.states("nginx") == {"nginx/liveness": True, "nginx/readiness": False}
        assert pod.probe("nginx", "readiness")[1] == "HTTP 503"


def _handler(container: dict[str, Any], kind: str) -> dict[str, Any]:
    probe = container[f"{kind}Probe"]
    return {key: value for key, value in probe.items() if key in ("exec", "httpGet", "tcpSocket", "grpc")}


def test_the_exporters_probes_never_ask_nginx_for_liveness(render_with: RenderWith) -> None:
    spec = render_with("frontend").one("Deployment")["spec"]["template"]["spec"]
    exporter = next(c for c in spec["containers"] if c["name"] == "metrics-exporter")
    # `/` is the exporter's landing page; `/metrics` scrapes stub_status (and answers nginx_up 0 without nginx).
    assert _handler(exporter, "liveness") == {"httpGet": {"path": "/", "port": "metrics"}}
    assert _handler(exporter, "readiness") == {"httpGet": {"path": "/metrics", "port": "metrics"}}
