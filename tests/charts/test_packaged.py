"""Each app chart works on its own from its packaged .tgz, with the library chart inside it; so does the platform
chart, which has no dependency.

The charts are copied to a scratch directory without their vendored library, `helm dependency build` restores
it from Chart.lock and file://../common, `helm package` writes the .tgz, and the .tgz is moved to a directory
where no charts/common exists. From there, on Helm 3 and Helm 4: `helm lint --strict` passes with every
environment's values, `helm template` renders exactly the objects the source directory renders, and Helm 4's
`helm install --dry-run=client` (no cluster; Helm 3's dry run still dials one) installs it. The chart tier
has no cluster, so the real install from the .tgz is the integration tier's and the real node's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from chart_render import (
    CHARTS,
    CHARTS_DIR,
    ENVIRONMENTS,
    HELMS,
    KUBE_VERSION,
    MONITORING_API,
    PLATFORM,
    PLATFORM_VALUES,
    REQUIRED_VALUES,
    Render,
    parse_manifests,
    values_file,
)

Rendered = Callable[[str, str, str], Render]
LIBRARY_VERSION = yaml.safe_load((CHARTS_DIR / "common" / "Chart.yaml").read_text(encoding="utf-8"))["version"]


def helm(binary: str, *args: str, cwd: Path | None = None) -> str:
    # No kubeconfig: nothing here may reach a cluster.
    env = {**os.environ, "KUBECONFIG": os.devnull}
    proc = subprocess.run([binary, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False)
    assert proc.returncode == 0, f"{' '.join(args)}:\n{proc.stdout}{proc.stderr}"
    return proc.stdout


@pytest.fixture(scope="module")
def packaged(helm_bins: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Path]]:
    """helm -> chart -> its packaged .tgz, alone in a directory with no charts/common beside it."""
    result: dict[str, dict[str, Path]] = {}
    for name in HELMS:
        scratch = tmp_path_factory.mktemp(f"package-{name}")
        source, alone = scratch / "charts", scratch / "alone"
        alone.mkdir()
        for chart in ("common", *CHARTS, PLATFORM):
            shutil.copytree(CHARTS_DIR / chart, source / chart)
        result[name] = {}
        for chart in (*CHARTS, PLATFORM):
            if chart in CHARTS:
                shutil.rmtree(source / chart / "charts")  # the vendored copy: rebuilt from the lock file below
                helm(helm_bins[name], "dependency", "build", "--skip-refresh", str(source / chart))
            out = helm(helm_bins[name], "package", str(source / chart), "--destination", str(scratch))
            archive = next(scratch.glob(f"{chart}-*.tgz"))
            assert archive.name in out
            result[name][chart] = archive.rename(alone / archive.name)
        shutil.rmtree(source)
    return result


@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("helm_name", HELMS)
def test_the_package_carries_the_library(packaged: dict[str, dict[str, Path]], helm_name: str, chart: str) -> None:
    with tarfile.open(packaged[helm_name][chart]) as archive:
        names = set(archive.getnames())
        library = archive.extractfile(f"{chart}/charts/common/Chart.yaml")
        assert library is not None
        meta = yaml.safe_load(library.read())
    assert (meta["name"], meta["type"], meta["version"]) == ("common", "library", LIBRARY_VERSION)
    assert f"{chart}/charts/common/templates/_labels.tpl" in names
    assert {f"{chart}/values.schema.json", f"{chart}/Chart.lock"} <= names
    # The generators' sources stay out of the package (.helmignore).
    assert not [n for n in names if "/schema/" in n or n.endswith(".gotmpl")], names


@pytest.mark.parametrize("environment", ENVIRONMENTS)
@pytest.mark.parametrize("chart", CHARTS)
@pytest.mark.parametrize("helm_name", HELMS)
def test_the_package_renders_like_the_source(
    packaged: dict[str, dict[str, Path]],
    helm_bins: dict[str, str],
    rendered: Rendered,
    helm_name: str,
    chart: str,
    environment: str,
) -> None:
    archive = packaged[helm_name][chart]
    args = ["template", chart, archive.name, "--namespace", "threetier", "--kube-version", KUBE_VERSION]
    args += ["--api-versions", MONITORING_API, "--values", str(values_file(chart, environment))]
    docs = parse_manifests(helm(helm_bins[helm_name], *args, cwd=archive.parent))
    assert docs == rendered(helm_name, chart, environment).docs
    lint = ["lint", "--strict", "--kube-version", KUBE_VERSION, archive.name]
    output = helm(helm_bins[helm_name], *lint, "--values", str(values_file(chart, environment)), cwd=archive.parent)
    assert "1 chart(s) linted, 0 chart(s) failed" in output and "[WARNING]" not in output, output


@pytest.mark.parametrize("chart", CHARTS)
def test_the_package_installs_with_plain_helm_install(
    packaged: dict[str, dict[str, Path]], helm_bins: dict[str, str], chart: str
) -> None:
    archive = packaged["helm4"][chart]
    args = ["install", chart, archive.name, "--namespace", "threetier", "--dry-run=client"]
    for item in REQUIRED_VALUES[chart]:
        args += ["--set", item]
    output = helm(helm_bins["helm4"], *args, cwd=archive.parent)
    kinds = {doc["kind"] for doc in parse_manifests(output.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0])}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds


@pytest.mark.parametrize("helm_name", HELMS)
def test_the_platform_package_renders_like_the_source_and_lints(
    packaged: dict[str, dict[str, Path]], helm_bins: dict[str, str], helm_name: str
) -> None:
    archive = packaged[helm_name][PLATFORM]
    with tarfile.open(archive) as archive_file:
        names = set(archive_file.getnames())
    assert {"platform/values.schema.json", "platform/templates/namespaces.yaml"} <= names
    assert not [n for n in names if "/schema/" in n or n.endswith(".gotmpl")], names
    args = ["template", PLATFORM, archive.name, "--namespace", "default", "--kube-version", KUBE_VERSION]
    docs = parse_manifests(helm(helm_bins[helm_name], *args, "--values", str(PLATFORM_VALUES), cwd=archive.parent))
    source = [
        "template",
        PLATFORM,
        str(CHARTS_DIR / PLATFORM),
        "--namespace",
        "default",
        "--kube-version",
        KUBE_VERSION,
    ]
    assert docs == parse_manifests(helm(helm_bins[helm_name], *source, "--values", str(PLATFORM_VALUES)))
    assert len(docs) == 7
    lint = ["lint", "--strict", "--kube-version", KUBE_VERSION, archive.name, "--values", str(PLATFORM_VALUES)]
    output = helm(helm_bins[helm_name], *lint, cwd=archive.parent)
    assert "1 chart(s) linted, 0 chart(s) failed" in output and "[WARNING]" not in output, output


def test_the_platform_package_installs_with_plain_helm_install(
    packaged: dict[str, dict[str, Path]], helm_bins: dict[str, str]
) -> None:
    archive = packaged["helm4"][PLATFORM]
    args = ["install", PLATFORM, archive.name, "--namespace", "default", "--dry-run=client"]
    output = helm(helm_bins["helm4"], *args, "--values", str(PLATFORM_VALUES), cwd=archive.parent)
    manifest = output.split("MANIFEST:", 1)[1].split("NOTES:", 1)[0]
    kinds = sorted(doc["kind"] for doc in parse_manifests(manifest))
    assert kinds == [
        "LimitRange",
        "Namespace",
        "Namespace",
        "NetworkPolicy",
        "NetworkPolicy",
        "NetworkPolicy",
        "ResourceQuota",
    ]
    assert "namespace threetier: Pod Security enforce=restricted" in output.split("NOTES:", 1)[1]
