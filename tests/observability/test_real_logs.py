"""The charts' nginx and PHP-FPM configuration run by the real programs, and their log lines parsed.

nginx and PHP-FPM (Debian packages, see scripts/setup.sh) are started on 127.0.0.1 with the configuration
the charts render; a few requests go through; every line they write must be one JSON object with the fields
a log pipeline needs, and the request id must be the same in nginx's line, PHP-FPM's line and what the
application received. A stand-in front controller plays Laravel (the app image is not built here).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from conftest import Render, of_kind

INGRESS_ID = "6f1c2a9e0b7d4c35a8e2f1d0c9b8a7e6"
FRONT_CONTROLLER = """<?php
// Stand-in for Laravel's public/index.php: answers with what it received, logs one JSON line to stderr.
$id = $_SERVER['HTTP_X_REQUEST_ID'] ?? '';
file_put_contents('php://stderr', json_encode(['message' => 'handled', 'context' => ['request_id' => $id]]) . "\\n");
header('Content-Type: application/json');
echo json_encode(['request_id' => $id]);
"""


def php_fpm_binary() -> str:
    for name in ("php-fpm", "php-fpm8.4", "php-fpm8.3", "php-fpm8.2"):
        found = shutil.which(name) or shutil.which(name, path="/usr/sbin")
        if found:
            return found
    pytest.fail("php-fpm is not installed: scripts/setup.sh installs Debian's php-fpm for this test", pytrace=False)


def nginx_binary() -> str:
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
    assert found, "nginx is not installed: scripts/setup.sh installs Debian's nginx-light for this test"
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def config_map(manifests: list[dict[str, Any]], suffix: str) -> dict[str, str]:
    (found,) = [cm for cm in of_kind(manifests, "ConfigMap") if cm["metadata"]["name"].endswith(suffix)]
    return found["data"]


def local(conf: str, workdir: Path, ports: list[int]) -> str:
    """Bind every server to 127.0.0.1 and keep the pid file in the work directory."""
    for port in ports:
        assert f"listen {port};" in conf, f"no `listen {port};` in the rendered configuration"
        conf = conf.replace(f"listen {port};", f"listen 127.0.0.1:{port};")
    assert "pid /tmp/nginx.pid;" in conf
    return conf.replace("pid /tmp/nginx.pid;", f"pid {workdir}/nginx.pid;")


@contextmanager
def running(cmd: list[str], log_dir: Path, name: str, port: int) -> Iterator[tuple[Path, Path]]:
    """Run a server until the block ends; yields the files its stdout and its stderr go to."""
    out, err = log_dir / f"{name}.stdout", log_dir / f"{name}.stderr"
    with out.open("w") as stdout, err.open("w") as stderr:
        proc = subprocess.Popen(cmd, stdout=stdout, stderr=stderr)
        try:
            deadline = time.monotonic() + 10
            while True:
                assert proc.poll() is None, f"{name} exited {proc.returncode}:\n{err.read_text()}"
                with socket.socket() as sock:
                    if sock.connect_ex(("127.0.0.1", port)) == 0:
                        break
                assert time.monotonic() < deadline, f"{name} did not listen on {port}:\n{err.read_text()}"
                time.sleep(0.05)
            yield out, err
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def get(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def json_lines(path: Path) -> list[dict[str, Any]]:
    """Every line that is not a daemon's own start/stop notice must be a JSON object."""
    records = []
    for line in path.read_text().splitlines():
        if not line.strip() or (line.startswith("[") and "NOTICE:" in line):
            continue
        records.append(json.loads(line))
    return records


@pytest.fixture
def workdir() -> Iterator[Path]:
    """World-readable scratch directory: nginx's workers run as an unprivileged user."""
    path = Path(tempfile.mkdtemp(prefix="threetier-logs-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_backend_nginx_and_php_fpm_logs(render: Render, workdir: Path) -> None:
    nginx, fpm = nginx_binary(), php_fpm_binary()
    http, metrics, fastcgi = free_port(), free_port(), free_port()
    (workdir / "public").mkdir()
    (workdir / "public" / "index.php").write_text(FRONT_CONTROLLER)
    manifests = render(
        "backend",
        f"nginx.port={http}",
        f"metrics.port={metrics}",
        f"phpfpm.port={fastcgi}",
        f"app.root={workdir}",
    )
    nginx_conf = workdir / "nginx.conf"
    nginx_conf.write_text(local(config_map(manifests, "-nginx")["nginx.conf"], workdir, [http, metrics]))
    (pool,) = config_map(manifests, "-php-fpm").values()
    fpm_conf = workdir / "php-fpm.conf"
    fpm_conf.write_text(pool.replace("[global]", f"[global]\npid = {workdir}/php-fpm.pid", 1))

    fpm_cmd = [fpm, "--nodaemonize", "--allow-to-run-as-root", "--fpm-config", str(fpm_conf)]
    nginx_cmd = [nginx, "-c", str(nginx_conf), "-g", "daemon off;"]
    with (
        running(fpm_cmd, workdir, "php-fpm", fastcgi) as (_fpm_stdout, fpm_log),
        running(nginx_cmd, workdir, "nginx", http) as (nginx_log, errors),
    ):
        ok = get(f"http://127.0.0.1:{http}/api/users?page=2&token=s3cret", {"X-Request-ID": INGRESS_ID})
        forged = get(f"http://127.0.0.1:{http}/api/orders/7", {"X-Request-ID": 'x"}, "admin": true'})
        health = get(f"http://127.0.0.1:{http}/livez")
        time.sleep(0.3)  # let the workers flush their log lines

    assert ok[0] == 200 and json.loads(ok[2]) == {"request_id": INGRESS_ID}
    assert ok[1]["X-Request-ID"] == INGRESS_ID
    forged_id = json.loads(forged[2])["request_id"]
    assert forged[0] == 200 and forged_id != INGRESS_ID and len(forged_id) == 32 and forged_id.isalnum()
    assert health[0] == 200

    assert not errors.read_text().strip(), f"nginx logged errors:\n{errors.read_text()}"
    access = json_lines(nginx_log)
    assert {r["service"] for r in access} == {"backend-nginx"}
    assert [(r["path"], r["status"], r["request_id"]) for r in access] == [
        ("/api/users", 200, INGRESS_ID),
        ("/api/orders/7", 200, forged_id),
    ], "one line per request (the liveness probe is not logged)"
    assert isinstance(access[0]["request_time"], float) and access[0]["method"] == "GET"

    fpm_records = json_lines(fpm_log)
    fpm_access = [r for r in fpm_records if r.get("service") == "backend-php-fpm"]
    assert [(r["path"], r["status"], r["request_id"]) for r in fpm_access] == [
        ("/api/users", 200, INGRESS_ID),
        ("/api/orders/7", 200, forged_id),
    ]
    assert all(isinstance(r["duration_ms"], float) and r["time"] for r in fpm_access)
    app = [r["context"]["request_id"] for r in fpm_records if r.get("message") == "handled"]
    assert app == [INGRESS_ID, forged_id], "the application's own log lines carry the same ids"


def test_frontend_nginx_logs_and_stub_status(render: Render, workdir: Path) -> None:
    nginx = nginx_binary()
    http, stub = free_port(), free_port()
    (workdir / "html" / "assets").mkdir(parents=True)
    (workdir / "html" / "index.html").write_text("<!doctype html><title>spa</title>")
    (workdir / "html" / "assets" / "app.3f2a1b.js").write_text("console.log(1)")
    manifests = render("frontend", f"nginx.port={http}", f"metrics.stubStatusPort={stub}")
    conf = local(config_map(manifests, "-nginx")["nginx.conf"], workdir, [http])
    conf = conf.replace("root /usr/share/nginx/html;", f"root {workdir}/html;")
    (workdir / "nginx.conf").write_text(conf)

    with running([nginx, "-c", str(workdir / "nginx.conf"), "-g", "daemon off;"], workdir, "nginx", http) as (
        log,
        errors,
    ):
        route = get(f"http://127.0.0.1:{http}/orders/42?tab=items", {"X-Request-ID": INGRESS_ID})
        asset = get(f"http://127.0.0.1:{http}/assets/app.3f2a1b.js")
        status = get(f"http://127.0.0.1:{stub}/stub_status")
        hidden = get(f"http://127.0.0.1:{http}/stub_status")
        time.sleep(0.3)

    assert route[0] == 200 and b"spa" in route[2], "SPA fallback to index.html"
    assert "immutable" in asset[1]["Cache-Control"]
    assert status[0] == 200 and b"Active connections" in status[2]
    assert b"Active connections" not in hidden[2], "stub_status must not be served on the public port"
    assert not errors.read_text().strip(), f"nginx logged errors:\n{errors.read_text()}"
    records = json_lines(log)
    assert {r["service"] for r in records} == {"frontend"}
    assert [(r["path"], r["status"]) for r in records] == [
        ("/orders/42", 200),
        ("/assets/app.3f2a1b.js", 200),
        ("/stub_status", 200),
    ]
    assert records[0]["request_id"] == INGRESS_ID and records[0]["uri"] == "/orders/42?tab=items"
    assert len({r["request_id"] for r in records}) == 3
