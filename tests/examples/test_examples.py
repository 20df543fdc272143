"""The example application under examples/: what CI can afford to check without root, Docker or a cluster.

- frontend: `npm ci` from the lock file (npm's cache under $THREETIER_CACHE, the sources copied out of the
  repository so no node_modules or dist appear in the work tree), the Vitest suite, and `vite build`
  baking APP_VERSION into the bundle while leaving /config.js to the chart;
- backend: every PHP file parses with the machine's PHP (8.2 from requirements/apt.txt: the lower bound of
  composer.json's "php": "^8.2"; the image build lints again with the image's PHP 8.4), and every route the
  e2e tier drives is declared in routes/api.php (or routes/web.php for /metrics) with a controller method
  that exists;
- tests/harness/images/build-app-images.sh calls no API path the app does not declare.
The images themselves are built and tested by tests/harness/images/build-app-images.sh (root, Debian, runc).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FRONTEND = ROOT / "examples" / "frontend"
BACKEND = ROOT / "examples" / "backend"
CACHE = Path(os.environ.get("THREETIER_CACHE", Path.home() / ".cache" / "threetier-k8s"))
BUILD_VERSION = "7.7.7-ci"

# Method and path (under /api unless absolute) of every route the e2e tier relies on.
E2E_API_ROUTES = {
    ("GET", "/health"),
    ("GET", "/messages"),
    ("POST", "/messages"),
    ("GET", "/db"),
    ("GET", "/slow"),
    ("GET", "/burn"),
}
ROUTE_RE = re.compile(
    r"Route::(?P<method>get|post|put|patch|delete)\(\s*'(?P<path>[^']+)'\s*,\s*"
    r"(?:\[\s*(?P<ctrl>\w+)::class\s*,\s*'(?P<action>\w+)'\s*\]|(?P<invokable>\w+)::class)"
)


def _run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: int = 120) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env={**os.environ, **(env or {})}, capture_output=True, text=True, timeout=timeout, check=False
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"{' '.join(cmd)} failed ({proc.returncode}):\n{output[-4000:]}"
    return output


@pytest.fixture(scope="module")
def frontend_checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The frontend's sources outside the repository, with `npm ci` done."""
    assert shutil.which("npm"), "npm is required (the machine's Node.js)"
    work = tmp_path_factory.mktemp("frontend")
    shutil.copytree(FRONTEND, work, dirs_exist_ok=True, ignore=shutil.ignore_patterns("node_modules", "dist"))
    env = {"npm_config_cache": str(CACHE / "npm"), "npm_config_update_notifier": "false"}
    _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], work, env, timeout=300)
    return work


def test_frontend_dependencies_are_pinned() -> None:
    package = json.loads((FRONTEND / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((FRONTEND / "package-lock.json").read_text(encoding="utf-8"))
    declared = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    assert declared, "package.json declares no dependencies"
    loose = {name: spec for name, spec in declared.items() if not re.fullmatch(r"\d+\.\d+\.\d+", spec)}
    assert not loose, f"not exact versions: {loose}"
    assert lock.get("lockfileVersion") == 3
    for name, version in declared.items():
        locked = lock["packages"].get(f"node_modules/{name}", {}).get("version")
        assert locked == version, f"{name}: package.json says {version}, package-lock.json {locked}"


def test_frontend_unit_tests_pass(frontend_checkout: Path) -> None:
    output = _run(["npx", "--no-install", "vitest", "run"], frontend_checkout, {"NO_COLOR": "1"})
    output = re.sub(r"\x1b\[[0-9;]*m", "", output)
    assert " failed" not in output, output
    match = re.search(r"Tests\s+(\d+) passed", output)
    assert match, output
    assert int(match.group(1)) >= 10, output


def test_frontend_build_bakes_version_and_leaves_config_to_the_chart(frontend_checkout: Path) -> None:
    out = frontend_checkout / "dist-ci"
    _run(
        ["npx", "--no-install", "vite", "build", "--logLevel", "warn", "--outDir", str(out), "--emptyOutDir"],
        frontend_checkout,
        {"APP_VERSION": BUILD_VERSION},
    )
    index = (out / "index.html").read_text(encoding="utf-8")
    config_tag = index.find('<script src="/config.js"></script>')
    module_tag = index.find('<script type="module"')
    assert 0 <= config_tag < module_tag, f"/config.js must load, unbundled, before the app:\n{index}"
    bundles = sorted((out / "assets").glob("index-*.js"))
    assert bundles, "no hashed bundle under assets/ (the chart caches assets/ for a year)"
    code = "".join(b.read_text(encoding="utf-8") for b in bundles)
    assert re.search(r"[\"'`]" + re.escape(BUILD_VERSION) + r"[\"'`]", code), "APP_VERSION is not in the bundle"
    assert "window.__APP_CONFIG__" in code, "the app does not read the runtime configuration"


def _php_files() -> list[Path]:
    files = [BACKEND / "artisan"]
    for sub in ("app", "bootstrap", "config", "database", "public", "routes"):
        files += sorted((BACKEND / sub).rglob("*.php"))
    return files


def test_backend_php_parses() -> None:
    php = shutil.which("php")
    assert php, "php is required (requirements/apt.txt installs php-fpm and its CLI)"
    version = _run([php, "-r", "echo PHP_VERSION;"], BACKEND)
    assert tuple(int(p) for p in version.split(".")[:2]) >= (8, 2), f"PHP {version} is below composer.json's ^8.2"
    failures = []
    for path in _php_files():
        proc = subprocess.run([php, "-l", str(path)], capture_output=True, text=True, timeout=30, check=False)
        if proc.returncode != 0:
            failures.append(f"{path.relative_to(ROOT)}: {proc.stdout.strip()} {proc.stderr.strip()}")
    assert len(_php_files()) > 20
    assert not failures, "\n".join(failures)


def _declared_routes(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    routes: dict[tuple[str, str], tuple[str, str]] = {}
    for m in ROUTE_RE.finditer(path.read_text(encoding="utf-8")):
        controller = m.group("ctrl") or m.group("invokable")
        routes[(m.group("method").upper(), m.group("path"))] = (controller, m.group("action") or "__invoke")
    return routes


def test_e2e_routes_are_declared_with_existing_controller_methods() -> None:
    api = _declared_routes(BACKEND / "routes" / "api.php")
    web = _declared_routes(BACKEND / "routes" / "web.php")
    missing = E2E_API_ROUTES - api.keys()
    assert not missing, f"routes/api.php lacks {sorted(missing)}"
    assert ("GET", "/metrics") in web, "routes/web.php lacks GET /metrics (the chart's metrics port calls it)"
    provider = (BACKEND / "app" / "Providers" / "RouteServiceProvider.php").read_text(encoding="utf-8")
    assert re.search(r"prefix\('api'\)->group\(base_path\('routes/api\.php'\)\)", provider), "api.php is not under /api"
    for (method, path), (controller, action) in {**api, **web}.items():
        source = BACKEND / "app" / "Http" / "Controllers" / f"{controller}.php"
        assert source.is_file(), f"{method} {path}: {controller} has no file"
        assert re.search(rf"public function {action}\(", source.read_text(encoding="utf-8")), (
            f"{method} {path}: {controller}::{action} does not exist"
        )


def test_health_route_never_touches_the_database() -> None:
    source = (BACKEND / "app" / "Http" / "Controllers" / "HealthController.php").read_text(encoding="utf-8")
    for marker in ("DB::", "Model", "Message", "->query(", "Schema::"):
        assert marker not in source, f"HealthController uses {marker}: readiness must not depend on the database"


def test_schema_and_seed_exist() -> None:
    migrations = "".join(p.read_text(encoding="utf-8") for p in (BACKEND / "database" / "migrations").glob("*.php"))
    assert "Schema::create('messages'" in migrations
    seeder = (BACKEND / "database" / "seeders" / "DatabaseSeeder.php").read_text(encoding="utf-8")
    assert "class DatabaseSeeder extends Seeder" in seeder
    # The chart runs the seed hook after every upgrade: seeding must not duplicate rows.
    assert "firstOrCreate" in seeder


def test_build_script_calls_only_declared_api_paths() -> None:
    script = (ROOT / "tests" / "harness" / "images" / "build-app-images.sh").read_text(encoding="utf-8")
    called = set(re.findall(r"\$base/api(/[a-z]+)", script))
    assert called, "the build script's test calls no API path"
    declared = {route[1] for route in _declared_routes(BACKEND / "routes" / "api.php")}
    assert called <= declared, f"called but not declared: {sorted(called - declared)}"
