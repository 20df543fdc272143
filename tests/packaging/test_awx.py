"""awx/: the AWX configuration-as-code playbook and the job playbooks AWX runs.

No AWX server exists on these machines and the awx.awx collection is not in the `ansible` package, so
awx/configure.yml runs against stand-in modules (awx_stub.py) that validate every rendered argument like
the real modules' AnsibleModule does and record it. The records are then checked the way an AWX server
would: every name a task refers to (organization, project, inventory, credential, credential type,
execution environment, playbook, inventory file) exists, and the surveys are well formed.
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import yaml
from awx_stub import write_collection
from packaging_helpers import ROOT, run, tool

AWX = ROOT / "awx"
JOBS = AWX / "jobs"
ACTIONS = ("site", "migrate", "rollback", "teardown")
# Input fields of the credential types AWX ships ("managed" types), by the names the API uses.
MANAGED_CREDENTIAL_INPUTS = {
    "Amazon Web Services": {"username", "password", "security_token"},
    "Vault": {"vault_password", "vault_id"},
    "Source Control": {"username", "password", "ssh_key_data", "ssh_key_unlock"},
    "Container Registry": {"host", "username", "password", "verify_ssl"},
}
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}


def awx_vars() -> dict:
    with (AWX / "vars" / "main.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def stub_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for ansible-playbook with the stand-in awx.awx first on the collections path."""
    root = tmp_path_factory.mktemp("awx-stub")
    collections = write_collection(root / "collections")
    cfg = root / "ansible.cfg"
    cfg.write_text("[defaults]\n", encoding="utf-8")
    return {
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_COLLECTIONS_PATH": str(collections),
        "ANSIBLE_HOME": str(root / "home"),
        "ANSIBLE_NOCOLOR": "1",
        "AWX_STUB_LOG": str(root / "calls.jsonl"),
    }


def playbook(env: dict[str, str], *args: str, check: bool = True):
    return run(
        [tool("ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}", *args],
        cwd=ROOT,
        env=env,
        check=check,
    )


@pytest.fixture(scope="module")
def calls(stub_env: dict[str, str]) -> dict[str, list[dict]]:
    """Run awx/configure.yml against the stand-ins; returns the recorded arguments by module."""
    proc = playbook(stub_env, str(AWX / "configure.yml"))
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\s+unreachable=0\s+failed=0", proc.stdout), proc.stdout
    recorded: dict[str, list[dict]] = {}
    for line in Path(stub_env["AWX_STUB_LOG"]).read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        recorded.setdefault(entry["module"], []).append(entry["params"])
    return recorded


def names(records: list[dict]) -> set[str]:
    return {record["name"] for record in records}


def test_configure_syntax(stub_env: dict[str, str]) -> None:
    playbook(stub_env, "--syntax-check", str(AWX / "configure.yml"))


def test_every_object_is_created_once(calls: dict[str, list[dict]]) -> None:
    settings = awx_vars()
    envs = settings["awx_environments"]
    aws = [env for env in envs if env["aws"]]
    expected = {
        "organization": 1,
        "execution_environment": 1,
        "project": 1,
        "credential_type": 1,
        "credential": len(envs) + len(aws) + 1,
        "inventory": len(envs),
        "inventory_source": len(envs),
        "job_template": len(envs) * len(settings["awx_actions"]),
    }
    assert {module: len(records) for module, records in calls.items()} == expected
    for module, records in calls.items():
        duplicates = [name for name, count in Counter(r["name"] for r in records).items() if count > 1]
        assert not duplicates, f"{module}: created twice: {duplicates}"
        assert all(r.get("state", "present") == "present" for r in records)


def test_references_resolve(calls: dict[str, list[dict]]) -> None:
    """What AWX would reject: a name that points at nothing, a playbook or inventory file not in the project."""
    (org,) = names(calls["organization"])
    (project,) = calls["project"]
    (ee,) = names(calls["execution_environment"])
    credentials = names(calls["credential"])
    inventories = names(calls["inventory"])
    assert project["default_environment"] == ee
    assert all(r["organization"] == org for m in calls if m != "organization" for r in calls[m] if "organization" in r)
    for source in calls["inventory_source"]:
        assert source["inventory"] in inventories
        assert source["source_project"] == project["name"]
        assert source["source"] == "scm" and source["overwrite"] and source["overwrite_vars"]
        assert (ROOT / source["source_path"]).is_file(), f"{source['source_path']} is not in the repository"
    for template in calls["job_template"]:
        assert template["project"] == project["name"]
        assert template["inventory"] in inventories
        assert template["execution_environment"] == ee
        assert set(template["credentials"]) <= credentials, template["credentials"]
        assert (ROOT / template["playbook"]).is_file(), f"{template['playbook']} is not in the repository"


def test_each_environment_template_uses_its_own_inventory_and_credentials(calls: dict[str, list[dict]]) -> None:
    for template in calls["job_template"]:
        env = re.fullmatch(r"threetier (\w+) (\w+)", template["name"]).group(1)
        assert template["inventory"] == f"threetier {env}"
        kube = [c for c in template["credentials"] if c.startswith("threetier kubeconfig")]
        assert kube == [f"threetier kubeconfig ({env})"], "exactly the environment's own cluster credential"
        assert all(c.endswith(f"({env})") for c in template["credentials"] if "(" in c)
        assert "threetier vault" in template["credentials"]


def test_inventory_sources_point_at_the_matching_environment(calls: dict[str, list[dict]]) -> None:
    """The survey guard compares with threetier_environment, so each inventory must declare its own name."""
    for env in awx_vars()["awx_environments"]:
        group_vars = yaml.safe_load(
            (ROOT / "inventories" / env["name"] / "group_vars" / "all" / "main.yml").read_text()
        )
        assert group_vars["threetier_environment"] == env["name"]
        source = next(s for s in calls["inventory_source"] if s["inventory"] == f"threetier {env['name']}")
        assert source["source_path"] == f"inventories/{env['name']}/hosts.yml"


def test_credentials_are_placeholders_with_valid_inputs(calls: dict[str, list[dict]]) -> None:
    (custom,) = calls["credential_type"]
    custom_fields = {field["id"] for field in custom["inputs"]["fields"]}
    known = {**MANAGED_CREDENTIAL_INPUTS, custom["name"]: custom_fields}
    for credential in calls["credential"]:
        assert credential["credential_type"] in known, credential["credential_type"]
        assert set(credential["inputs"]) <= known[credential["credential_type"]], credential["name"]
        assert credential["update_secrets"] is False, f"{credential['name']}: a re-run would overwrite the real secret"
        secrets = set(credential["inputs"]) - {"vault_id"}
        assert all(credential["inputs"][key] == awx_vars()["awx_secret_placeholder"] for key in secrets)


def test_kubeconfig_injector_feeds_what_the_inventories_read(calls: dict[str, list[dict]]) -> None:
    (custom,) = calls["credential_type"]
    injectors = custom["injectors"]
    assert injectors["file"] == {"template.kubeconfig": "{{ kubeconfig }}"}
    assert injectors["env"]["K8S_AUTH_KUBECONFIG"] == "{{ tower.filename.kubeconfig }}"
    for env in awx_vars()["awx_environments"]:
        text = (ROOT / "inventories" / env["name"] / "group_vars" / "all" / "main.yml").read_text()
        assert "K8S_AUTH_KUBECONFIG" in text, f"inventories/{env['name']} does not read the injected kubeconfig"


def check_question(question: dict) -> None:
    for key in ("question_name", "variable", "type", "required", "default"):
        assert key in question, f"survey question without {key}: {question}"
    assert question["type"] in SURVEY_TYPES
    assert re.fullmatch(r"[a-z_][a-z0-9_]*", question["variable"])
    if question["type"] == "text" and question["default"]:
        assert question["min"] <= len(question["default"]) <= question["max"]
    if question["type"] in {"multiplechoice", "multiselect"}:
        assert isinstance(question["choices"], list) and question["default"] in question["choices"], question
    if question["type"] == "integer":
        assert question["min"] <= question["default"] <= question["max"], question


def test_surveys(calls: dict[str, list[dict]]) -> None:
    for template in calls["job_template"]:
        env, action = re.fullmatch(r"threetier (\w+) (\w+)", template["name"]).groups()
        assert template["survey_enabled"] is True
        questions = {q["variable"]: q for q in template["survey_spec"]["spec"]}
        assert len(questions) == len(template["survey_spec"]["spec"]), "duplicate survey variable"
        for question in questions.values():
            check_question(question)
        confirm = questions["threetier_confirm_environment"]
        assert confirm["required"] is True
        assert confirm["default"] in ("", env)
        if action == "teardown" or env == "prod":
            assert confirm["default"] == "", f"{template['name']}: the operator must type the environment"
        job = (ROOT / template["playbook"]).read_text(encoding="utf-8")
        if action in ("site", "migrate"):
            assert questions["threetier_image_tag"]["required"] is True
            assert "threetier_image_tag" in job, f"{template['playbook']} ignores the image tag of the survey"
        else:
            assert "threetier_image_tag" not in questions
        # every other question sets a variable the real playbook reads
        target = (ROOT / "playbooks" / f"{action}.yml").read_text(encoding="utf-8")
        for variable in set(questions) - {"threetier_confirm_environment", "threetier_image_tag"}:
            assert variable in target, f"{template['name']}: playbooks/{action}.yml never reads {variable}"


def test_rollback_survey_offers_the_releases_the_playbook_knows(calls: dict[str, list[dict]]) -> None:
    plays = yaml.safe_load((ROOT / "playbooks" / "rollback.yml").read_text(encoding="utf-8"))
    known = set(plays[0]["vars"]["rollback_namespaces"])
    for template in calls["job_template"]:
        if template["name"].endswith(" rollback"):
            (release,) = [q for q in template["survey_spec"]["spec"] if q["variable"] == "rollback_release"]
            assert set(release["choices"]) == known


def test_job_playbooks_import_the_guard_and_the_real_playbook() -> None:
    for action in ACTIONS:
        plays = yaml.safe_load((JOBS / f"{action}.yml").read_text(encoding="utf-8"))
        imports = [play["ansible.builtin.import_playbook"] for play in plays]
        # by FQCN: playbooks and roles both come from the collection in the execution environment
        assert imports == ["confirm.yml", f"threetier.k8s.{action}"], action


@pytest.mark.parametrize("action", ACTIONS)
def test_job_playbook_syntax(action: str, isolated_ansible_env: dict) -> None:
    """The job playbooks parse with the playbooks and roles of the collection installed from its tarball."""
    run(
        [
            tool("ansible-playbook"),
            "--syntax-check",
            "-i",
            str(ROOT / "inventories" / "dev"),
            str(JOBS / f"{action}.yml"),
        ],
        cwd=isolated_ansible_env["cwd"],
        env=isolated_ansible_env["env"],
    )


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["-e", "threetier_confirm_environment=prod"], "Type dev to run it"),
        ([], "Type dev to run it"),
        (["-e", "threetier_confirm_environment=prod", "--tags", "backend"], "Type dev to run it"),
        (
            ["-e", '{"threetier_confirm_environment": "dev", "threetier_image_tag": "bad tag!"}'],
            "is not a valid image tag",
        ),
    ],
)
def test_confirm_guard_refuses(extra: list[str], message: str, stub_env: dict[str, str]) -> None:
    proc = run(
        [
            tool("ansible-playbook"),
            "-i",
            str(ROOT / "inventories" / "dev" / "hosts.yml"),
            str(JOBS / "confirm.yml"),
            *extra,
        ],
        cwd=ROOT,
        env=stub_env,
        check=False,
    )
    assert proc.returncode != 0
    assert message in proc.stdout


def test_confirm_guard_accepts(stub_env: dict[str, str]) -> None:
    proc = run(
        [
            tool("ansible-playbook"),
            "-i",
            str(ROOT / "inventories" / "dev"),
            str(JOBS / "confirm.yml"),
            "-e",
            "threetier_confirm_environment=dev",
            "-e",
            "threetier_image_tag=1.4.2-rc.1",
        ],
        cwd=ROOT,
        env=stub_env,
    )
    assert re.search(r"failed=0", proc.stdout)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"name": "x", "bogus": 1}, "Unsupported parameters"),
        ({"name": "x", "survey_spec": "text"}, "survey_spec"),
        ({"name": "x", "verbosity": 7}, "verbosity"),
        ({"description": "no name"}, "missing required arguments: name"),
    ],
)
def test_stand_in_modules_reject_bad_arguments(
    args: dict, message: str, stub_env: dict[str, str], tmp_path: Path
) -> None:
    """The stand-ins must fail like the real modules, or the checks above prove nothing."""
    play = [
        {
            "name": "bad",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [{"awx.awx.job_template": args}],
        }
    ]
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(play), encoding="utf-8")
    proc = playbook(stub_env, str(path), check=False)
    assert proc.returncode != 0
    assert message in proc.stdout, proc.stdout[-2000:]
