"""execution-environment.yml: the build context `ansible-builder create` writes, and the image built from it.

The definition (ansible-builder's own schema validation runs in `create`), the generated Containerfile and
the files copied into the context are checked against the rest of the repo's pins. Then scripts/build-ee.sh
builds the image from that context without a container engine (cached; minutes cold) and the tests look
inside it through runc: the tools at their pinned versions, every Python library pinned, the collections
installed, the image config an AWX pod relies on. tests/integration/test_awx_jobs.py runs the AWX jobs in it.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import ee
import pytest
import yaml
from awx_jobs import Pod
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
    system = ee_definition()["dependencies"]["system"]
    (src / system).parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / system, src / system)
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
    for name in ("constraints.txt", "ee-constraints.txt"):
        assert (build_context / "_build" / "constraints" / name).read_bytes() == (
            ROOT / "requirements" / name
        ).read_bytes()
    base = stage(containerfile, "base")
    assert 'ENV PIP_CONSTRAINT="/build/constraints/constraints.txt /build/constraints/ee-constraints.txt"' in base
    # the constraints are in force before the first pip run of the first stage; every other stage builds on it
    assert base.index("PIP_CONSTRAINT") < base.index("pip install --no-cache-dir $ANSIBLE_INSTALL_REFS")
    for name in ("galaxy", "builder", "final"):
        assert re.search(rf"^FROM base AS {name}$", containerfile, re.MULTILINE), name
    bindep = (build_context / "_build" / "bindep.txt").read_text(encoding="utf-8")
    assert "ca-certificates" in bindep


def test_base_is_the_pinned_debian_release(containerfile: str) -> None:
    versions = versions_env()
    assert f'ARG EE_BASE_IMAGE="docker.io/library/debian:{versions["EE_DEBIAN_RELEASE"]}"' in containerfile
    assert 'ARG PKGMGR="/usr/bin/apt-get"' in containerfile
    assert "/output/scripts/pip_install" not in containerfile, "Debian's python3 has no ensurepip: pip comes from apt"


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
        r"cd /src/clients && go build "
        r'-ldflags "-X helm\.sh/helm/v3/internal/version\.version=\$\{HELM_VERSION\} \$k"\s+'
        r"-o /out/helm helm\.sh/helm/v3/cmd/helm",
        build,
    ), "helm must be built in tools/go/clients with its version stamped (as scripts/build-go-tools.sh does)"
    assert 'test "$(/out/helm version --short)" = "${HELM_VERSION}"' in build
    assert "cd /src/clients && go build -o /out/helm-diff github.com/databus23/helm-diff/v3" in build
    for name in ("go.mod", "go.sum"):
        assert (build_context / "_build" / "clients" / name).read_bytes() == (
            ROOT / "tools" / "go" / "clients" / name
        ).read_bytes(), f"{name} in the context differs from tools/go/clients"
    gomod = (ROOT / "tools" / "go" / "clients" / "go.mod").read_text(encoding="utf-8")
    pins = (("helm.sh/helm/v3", "HELM_VERSION"), ("github.com/databus23/helm-diff/v3", "HELM_DIFF_VERSION"))
    for module, key in pins:
        assert re.search(rf"{re.escape(module)} {re.escape(versions[key])}\b", gomod), (
            f"tools/go/clients/go.mod does not require {module} at {key}"
        )
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


# ------------------------------------------------------------------------------------------ the built image


@pytest.fixture(scope="module")
def built() -> ee.BuiltImage:
    """scripts/build-ee.sh: cached, so warm runs take seconds; a cold build takes minutes."""
    image = ee.build()
    print(
        f"\nEE {image.image.reference}: archive {image.archive_bytes / 2**20:.0f} MiB, "
        f"unpacked {image.rootfs_bytes / 2**20:.0f} MiB, build.sh {image.build_seconds:.0f} s"
    )
    return image


@pytest.fixture(scope="module")
def pod(built: ee.BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Pod:
    return Pod(built.image, tmp_path_factory.mktemp("ee-pods"))


def test_image_config_is_what_an_awx_pod_expects(built: ee.BuiltImage) -> None:
    config = built.image.config
    assert built.image.reference == f"localhost/threetier-k8s-ee:{galaxy_meta()['version']}"
    assert config["User"] == "1000" and config["WorkingDir"] == "/runner"
    assert config["Entrypoint"] == ["/opt/builder/bin/entrypoint", "dumb-init"] and config["Cmd"] == ["bash"]
    assert config["Labels"]["ansible-execution-environment"] == "true"
    assert "HELM_PLUGINS=/usr/local/lib/helm/plugins" in config["Env"]
    assert built.archive_bytes < 2**30, f"the EE archive grew to {built.archive_bytes / 2**20:.0f} MiB"


def test_tools_in_the_image_are_the_pinned_ones(pod: Pod) -> None:
    versions = versions_env()
    script = (
        "helm version --short; helm plugin list; ansible --version | head -1; ansible-runner --version; "
        "python3 -c 'import platform; print(platform.python_version())'; cat /etc/debian_version; id -u; echo $HOME"
    )
    proc = pod.exec(["bash", "-c", script])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == versions["HELM_VERSION"]
    assert re.search(rf"^diff\s+{re.escape(versions['HELM_DIFF_VERSION'].lstrip('v'))}\s", proc.stdout, re.M), (
        proc.stdout
    )
    core = re.search(r"^ansible-core==(\S+)", (ROOT / "requirements" / "constraints.txt").read_text(), re.M).group(1)
    assert f"[core {core}]" in proc.stdout
    runner = ee_definition()["dependencies"]["ansible_runner"]["package_pip"].split("==")[1]
    assert runner in lines
    assert versions["EE_PYTHON_VERSION"] in lines and versions["EE_DEBIAN_RELEASE"] in lines
    assert lines[-2:] == ["1000", "/runner"], "the entrypoint gives the job user a home"


def test_collections_in_the_image(pod: Pod) -> None:
    proc = pod.exec(["ansible-galaxy", "collection", "list", "--format", "json"])
    assert proc.returncode == 0, proc.stderr
    found = {name: info["version"] for path in json.loads(proc.stdout).values() for name, info in path.items()}
    assert found.pop("threetier.k8s") == galaxy_meta()["version"]
    for item in ee_definition()["dependencies"]["galaxy"]["collections"]:
        if "type" not in item:
            assert found[item["name"]] == item["version"].lstrip("="), item["name"]
    docs = pod.exec(["env", "ANSIBLE_NOCOLOR=1", "ansible-doc", "-t", "role", "threetier.k8s.backend"])
    assert docs.returncode == 0 and "ENTRY POINT: *main*" in docs.stdout, docs.stdout[:2000] + docs.stderr[-2000:]


def pins() -> dict[str, str]:
    found = {}
    for name in ("constraints.txt", "ee-constraints.txt"):
        for line in (ROOT / "requirements" / name).read_text(encoding="utf-8").splitlines():
            if "==" in line and not line.startswith("#"):
                package, version = line.split("#")[0].strip().split("==")
                found[re.sub(r"[-_.]+", "-", package).lower()] = version
    return found


def test_every_python_library_in_the_image_is_pinned(pod: Pod) -> None:
    """pip-installed libraries (not Debian's own python3-* packages) are exactly the versions of the pin files."""
    script = (
        "import importlib.metadata as m, json; print(json.dumps({d.metadata['Name']: d.version "
        "for d in m.distributions() if str(d.locate_file('')).startswith('/usr/local/')}))"
    )
    proc = pod.exec(["python3", "-c", script])
    assert proc.returncode == 0, proc.stderr
    installed = {re.sub(r"[-_.]+", "-", k).lower(): v for k, v in json.loads(proc.stdout).items()}
    assert {"ansible-core", "ansible-runner", "kubernetes", "boto3"} <= set(installed)
    wanted = pins()
    unpinned = sorted(set(installed) - set(wanted))
    assert not unpinned, f"installed in the EE without a pin (add them to requirements/ee-constraints.txt): {unpinned}"
    wrong = {name: (installed[name], wanted[name]) for name in installed if installed[name] != wanted[name]}
    assert not wrong, f"installed at other versions than pinned (installed, pinned): {wrong}"
