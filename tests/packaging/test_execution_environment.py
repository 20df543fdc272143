"""execution-environment.yml: `ansible-builder create` writes a build context that holds everything the EE needs.

No container engine exists on these machines, so the image is never built here; what can be checked is the
definition (ansible-builder's own schema validation runs in `create`), the generated Containerfile and the
files copied into the context, and that every pinned version agrees with the rest of the repo.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from packaging_helpers import ROOT, galaxy_meta, run, tarball_name, tool

EE_FILE = ROOT / "execution-environment.yml"
BUNDLED = Path(__import__("ansible_collections").__path__[0])


def versions_env() -> dict[str, str]:
    """tools/versions.env as a dict."""
    pairs = {}
    for line in (ROOT / "tools" / "versions.env").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _sep, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def ee_definition() -> dict:
    with EE_FILE.open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def bundled_version(fqcn: str) -> str:
    """Version of a collection shipped inside the `ansible` package of the virtualenv."""
    namespace, name = fqcn.split(".")
    manifest = BUNDLED / namespace / name / "MANIFEST.json"
    return json.loads(manifest.read_text(encoding="utf-8"))["collection_info"]["version"]


@pytest.fixture(scope="module")
def build_context(collection_tarball: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Lay out the EE's inputs as in a checkout after `make build`, run `ansible-builder create`, return the context."""
    src = tmp_path_factory.mktemp("ee-src")
    shutil.copy2(EE_FILE, src / EE_FILE.name)
    for item in ee_definition()["additional_build_files"]:
        relative = Path(item["src"])
        (src / relative).parent.mkdir(parents=True, exist_ok=True)
        origin = collection_tarball if relative.parts[0] == "dist" else ROOT / relative
        shutil.copy2(origin, src / relative)
    shutil.copy2(ROOT / ee_definition()["dependencies"]["python"], src / "requirements.txt")
    context = src / "context"
    proc = run(
        [
            tool("ansible-builder"),
            "create",
            "-f",
            str(src / EE_FILE.name),
            "-c",
            str(context),
            "--output-filename",
            "Containerfile",
            "-v",
            "3",
        ],
        cwd=src,
    )
    assert "No matches for" not in proc.stdout + proc.stderr, "an additional_build_files entry matched nothing"
    return context


@pytest.fixture(scope="module")
def containerfile(build_context: Path) -> str:
    return (build_context / "Containerfile").read_text(encoding="utf-8")


def stage(containerfile: str, name: str) -> str:
    """The instructions of one build stage (from its FROM line to the next FROM)."""
    match = re.search(
        rf"^FROM \S+ AS {name}\n(.*?)(?=^FROM |\Z)",
        containerfile,
        re.MULTILINE | re.DOTALL,
    )
    assert match, f"no build stage {name!r} in the Containerfile"
    return match.group(1)


def test_collection_tarball_is_in_context_and_installed_by_galaxy_stage(
    build_context: Path, containerfile: str
) -> None:
    assert (build_context / "_build" / "collections" / tarball_name()).is_file()
    requirements = yaml.safe_load((build_context / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    files = [c["name"] for c in requirements["collections"] if c.get("type") == "file"]
    assert files == [f"/build/collections/{tarball_name()}"], (
        "the galaxy stage must install the tarball of galaxy.yml's version"
    )
    galaxy = stage(containerfile, "galaxy")
    assert "COPY _build /build" in galaxy
    assert re.search(r"ansible-galaxy collection install .*-r requirements.yml", galaxy)


def collections_used() -> set[str]:
    """Collections (other than ansible.builtin) whose plugins the content, the AWX jobs or ansible.cfg use."""
    found = set()
    pattern = re.compile(r"\b([a-z][a-z0-9_]*)\.([a-z][a-z0-9_]*)\.[a-z][a-z0-9_]*")
    for folder in ("roles", "playbooks", "plugins", "awx/jobs", "ansible.cfg"):
        start = ROOT / folder
        for path in [start] if start.is_file() else start.rglob("*"):
            if path.suffix not in {".yml", ".yaml", ".py", ".j2", ".cfg"} or not path.is_file():
                continue
            for namespace, name in pattern.findall(path.read_text(encoding="utf-8")):
                if (BUNDLED / namespace / name / "MANIFEST.json").is_file():
                    found.add(f"{namespace}.{name}")
    return found - {"ansible.builtin"}


def test_collection_dependencies_pinned_to_the_tested_versions() -> None:
    pinned = {
        c["name"]: c["version"] for c in ee_definition()["dependencies"]["galaxy"]["collections"] if "type" not in c
    }
    with (ROOT / "requirements.yml").open(encoding="utf-8") as handle:
        declared = {c["name"] for c in yaml.safe_load(handle)["collections"]}
    needed = set(galaxy_meta()["dependencies"]) | declared | collections_used()
    assert {"kubernetes.core", "amazon.aws"} <= needed
    assert needed <= set(pinned), f"the EE leaves out {sorted(needed - set(pinned))}"
    assert set(pinned) <= needed, f"the EE installs collections nothing uses: {sorted(set(pinned) - needed)}"
    for fqcn, spec in pinned.items():
        assert spec == f"=={bundled_version(fqcn)}", (
            f"{fqcn}: EE pins {spec}, the test suite runs {bundled_version(fqcn)}"
        )


def test_python_dependencies_and_constraints(build_context: Path, containerfile: str) -> None:
    reqs = (build_context / "_build" / "requirements.txt").read_text(encoding="utf-8")
    for package in ("kubernetes", "PyYAML", "jsonpatch", "boto3", "botocore"):
        assert re.search(rf"^{package}\b", reqs, re.MULTILINE), f"{package} missing from the EE's Python requirements"
    assert (build_context / "_build" / "constraints" / "constraints.txt").read_bytes() == (
        ROOT / "requirements" / "constraints.txt"
    ).read_bytes()
    builder = stage(containerfile, "builder")
    assert "ENV PIP_CONSTRAINT=/build/constraints.txt" in builder
    # the constraint must be in force before introspection and wheel assembly run
    assert builder.index("PIP_CONSTRAINT") < builder.index("introspect.py introspect --user-pip=requirements.txt")
    assert builder.index("PIP_CONSTRAINT") < builder.index("/output/scripts/assemble")


def test_ansible_core_and_runner_pinned(containerfile: str) -> None:
    core = re.search(
        r"^ansible-core==(\S+)",
        (ROOT / "requirements" / "constraints.txt").read_text(),
        re.MULTILINE,
    )
    assert core, "requirements/constraints.txt pins no ansible-core"
    refs = re.search(r'^ARG ANSIBLE_INSTALL_REFS="([^"]*)"', containerfile, re.MULTILINE)
    assert refs, "no ANSIBLE_INSTALL_REFS build argument"
    parts = refs.group(1).split()
    assert f"ansible-core=={core.group(1)}" in parts
    assert any(re.fullmatch(r"ansible-runner==\d+\.\d+\.\d+", part) for part in parts), "ansible-runner must be pinned"


def test_helm_and_helm_diff_built_at_pinned_versions(build_context: Path, containerfile: str) -> None:
    versions = versions_env()
    build = stage(containerfile, "helm-build")
    assert f"ARG HELM_VERSION={versions['HELM_VERSION']}" in build
    assert f"ARG HELM_DIFF_VERSION={versions['HELM_DIFF_VERSION']}" in build
    minor = versions["KUBERNETES_VERSION"].removeprefix("v1.").split(".")[0]
    assert f"ARG KUBERNETES_MINOR={minor}" in build, "helm must assume the pinned Kubernetes minor"
    for package in ("chartutil", "lint/rules"):
        for field, value in (("Major", "1"), ("Minor", "${KUBERNETES_MINOR}")):
            assert f"-X helm.sh/helm/v3/pkg/{package}.k8sVersion{field}={value}" in build
    assert re.search(
        r'go install -ldflags "-X helm\.sh/helm/v3/internal/version\.version=\$\{HELM_VERSION\} \$k" '
        r'"helm\.sh/helm/v3/cmd/helm@\$\{HELM_VERSION\}"',
        build,
    ), "helm must be built at HELM_VERSION with its version stamped (as scripts/build-go-tools.sh does)"
    assert 'test "$(/out/helm version --short)" = "${HELM_VERSION}"' in build
    assert "go build -o /out/helm-diff github.com/databus23/helm-diff/v3" in build
    for name in ("go.mod", "go.sum"):
        assert (build_context / "_build" / "helm-diff" / name).read_bytes() == (
            ROOT / "tools" / "go" / "helm-diff" / name
        ).read_bytes(), f"helm-diff {name} in the context differs from tools/go/helm-diff"
    gomod = (ROOT / "tools" / "go" / "helm-diff" / "go.mod").read_text(encoding="utf-8")
    assert re.search(
        rf"github.com/databus23/helm-diff/v3 {re.escape(versions['HELM_DIFF_VERSION'])}\b",
        gomod,
    ), "tools/go/helm-diff/go.mod does not require helm-diff at HELM_DIFF_VERSION"
    assert "github.com/" not in re.sub(r"github.com/databus23/helm-diff\S*", "", build), (
        "the helm build stage must not download from GitHub"
    )


def test_final_image_has_helm_and_the_diff_plugin(containerfile: str) -> None:
    final = stage(containerfile, "final")
    versions = versions_env()
    assert "COPY --from=helm-build /out/helm /usr/local/bin/helm" in final
    assert "COPY --from=helm-build /out/helm-diff /usr/local/lib/helm/plugins/diff/bin/diff" in final
    assert "ENV HELM_PLUGINS=/usr/local/lib/helm/plugins" in final
    assert f"ARG HELM_DIFF_VERSION={versions['HELM_DIFF_VERSION']}" in final
    assert "helm plugin list | grep -q '^diff'" in final, "the build must prove helm sees the diff plugin"
    assert "COPY --from=galaxy /usr/share/ansible /usr/share/ansible" in final
    # helm lands before /output is purged and before the image switches to the unprivileged user
    assert final.index("/usr/local/bin/helm") < final.index("RUN rm -rf /output") < final.index("USER ")
