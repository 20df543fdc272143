"""awx/: configure.yml run by the real awx.awx modules, and the job playbooks AWX runs.

awx.awx 24.6.1 is built from its released source by `make setup` (scripts/build-awx-collection.sh) and found
through .collections/. No AWX server can run here, so configure.yml talks to tests/support/awx_api.py, an
in-memory AWX API that answers the modules' calls and applies AWX's own checks of these objects (see its
docstring for exactly which). So every task's arguments go through the real modules' AnsibleModule
validation and request logic, and the objects they create are checked the way AWX would check them.
The job templates themselves are replayed against a cluster in tests/integration/test_awx_jobs.py.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from awx_api import ApiDouble, validate_survey_spec
from packaging_helpers import ROOT, run, tool

AWX = ROOT / "awx"
JOBS = AWX / "jobs"
ACTIONS = ("site", "migrate", "rollback", "teardown")
SCM_URL = "https://git.example.com/platform/threetier-k8s.git"
TOKEN = "awx-double-token"
PLACEHOLDER = "CHANGE-ME-in-AWX"
# AWX's API ignores fields it does not know or only reads; the one the modules send anyway.
KNOWN_IGNORED = {("credential_types", "managed")}
RECAP = re.compile(r"localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=0\s+failed=0")


def versions() -> dict[str, str]:
    pairs = {}
    for line in (ROOT / "tools" / "versions.env").read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith("#"):
            key, _sep, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def awx_vars() -> dict:
    with (AWX / "vars" / "main.yml").open(encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(scope="module")
def awx_collection() -> Path:
    """The installed awx.awx (scripts/build-awx-collection.sh links it into .collections/)."""
    path = ROOT / ".collections" / "ansible_collections" / "awx" / "awx"
    if not (path / "MANIFEST.json").is_file():
        pytest.fail("awx.awx is not installed: run `make setup` (scripts/build-awx-collection.sh)", pytrace=False)
    return path.resolve()


@pytest.fixture(scope="module")
def awx_env(tmp_path_factory: pytest.TempPathFactory, awx_collection: Path) -> dict[str, str]:
    """Environment for ansible-playbook: the repo's ansible.cfg, awx.awx from the cache, the ansible package."""
    home = tmp_path_factory.mktemp("awx-home")
    return {
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": str(awx_collection.parents[2]),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
    }


@pytest.fixture(scope="module")
def api() -> Iterator[ApiDouble]:
    """The AWX API double, serving on 127.0.0.1; the project's SCM URL "clones" this checkout."""
    double = ApiDouble(token=TOKEN, checkouts={SCM_URL: ROOT})
    server = double.serve()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()


def configure(api: ApiDouble, env: dict[str, str], *args: str, check: bool = True):
    return run(
        [
            tool("ansible-playbook"),
            "-i",
            "localhost,",
            "-e",
            f"ansible_python_interpreter={sys.executable}",
            "-e",
            f"awx_project_scm_url={SCM_URL}",
            str(AWX / "configure.yml"),
            *args,
        ],
        cwd=ROOT,
        env={**env, "CONTROLLER_HOST": api.url, "CONTROLLER_OAUTH_TOKEN": TOKEN},
        check=check,
    )


def recap(stdout: str) -> tuple[int, int]:
    match = RECAP.search(stdout)
    assert match, stdout[-3000:]
    return int(match.group(1)), int(match.group(2))


@pytest.fixture(scope="module")
def configured(api: ApiDouble, awx_env: dict[str, str]) -> ApiDouble:
    """configure.yml run once against an empty AWX: everything is created."""
    proc = configure(api, awx_env)
    ok, changed = recap(proc.stdout)
    assert changed == ok, f"a first run against an empty AWX creates every object:\n{proc.stdout[-3000:]}"
    return api


def templates(api: ApiDouble) -> list[dict[str, Any]]:
    return list(api.objects["job_templates"].values())


def survey(template: dict[str, Any]) -> dict[str, Any]:
    return template["_survey_spec"]


def cred_names(api: ApiDouble, template: dict[str, Any]) -> list[str]:
    return [c["name"] for c in api.associated("job_templates", template, "credentials")]


# ------------------------------------------------------------------------------------------ the collection


def test_collection_is_the_pinned_release(awx_collection: Path) -> None:
    manifest = json.loads((awx_collection / "MANIFEST.json").read_text(encoding="utf-8"))["collection_info"]
    version = versions()["AWX_COLLECTION_VERSION"]
    assert (manifest["namespace"], manifest["name"], manifest["version"]) == ("awx", "awx", version)
    api_utils = (awx_collection / "plugins" / "module_utils" / "controller_api.py").read_text(encoding="utf-8")
    assert f'_COLLECTION_VERSION = "{version}"' in api_utils, "the version is not stamped as in a release"
    pinned = yaml.safe_load((AWX / "requirements.yml").read_text(encoding="utf-8"))["collections"]
    assert pinned == [{"name": "awx.awx", "version": f"=={version}"}], "awx/requirements.yml and the tests disagree"


class AnsibleYamlLoader(yaml.SafeLoader):
    """yaml.SafeLoader that reads Ansible's !unsafe strings as plain strings."""


AnsibleYamlLoader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def configure_play() -> dict[str, Any]:
    (play,) = yaml.load((AWX / "configure.yml").read_text(encoding="utf-8"), Loader=AnsibleYamlLoader)
    return play


def configure_tasks() -> list[dict[str, Any]]:
    return configure_play()["tasks"]


def task_module(task: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    (fqcn,) = [key for key in task if key.startswith("awx.awx.")]
    return fqcn, task[fqcn]


def test_every_module_is_documented_and_takes_the_arguments_given(awx_env: dict[str, str]) -> None:
    """ansible-doc of every awx.awx module configure.yml uses; each argument (and module_defaults) is documented."""
    defaults = configure_play()["module_defaults"]["group/awx.awx.controller"]
    used: dict[str, list[dict[str, Any]]] = {}
    for task in configure_tasks():
        fqcn, args = task_module(task)
        used.setdefault(fqcn, []).append(args)
    proc = run([tool("ansible-doc"), "--json", "-t", "module", *sorted(used)], cwd=ROOT, env=awx_env)
    docs = json.loads(proc.stdout)
    assert set(docs) == set(used)
    for fqcn, calls in used.items():
        doc = docs[fqcn]["doc"]
        options = doc["options"]
        names = {name: name for name in options} | {
            a: name for name, o in options.items() for a in o.get("aliases", [])
        }
        for args in [defaults, *calls]:
            unknown = set(args) - set(names)
            assert not unknown, f"{fqcn} documents no option {sorted(unknown)}"
            for key, value in args.items():
                choices = options[names[key]].get("choices")
                if choices and isinstance(value, str) and "{{" not in value:
                    assert value in choices, f"{fqcn} {key}={value!r} is not one of {choices}"


def test_real_modules_reject_bad_arguments(api: ApiDouble, awx_env: dict[str, str], tmp_path: Path) -> None:
    """The validation above is the modules' own: bad arguments fail before any request."""
    cases = [
        ({"name": "x", "bogus": 1}, "Unsupported parameters"),
        ({"name": "x", "survey_spec": "text"}, "survey_spec"),
        ({"name": "x", "verbosity": 7}, "verbosity"),
        ({"description": "no name"}, "missing required arguments: name"),
    ]
    plays = [
        {
            "name": f"bad {index}",
            "hosts": "localhost",
            "connection": "local",
            "gather_facts": False,
            "tasks": [{"name": "bad", "awx.awx.job_template": args, "ignore_errors": True, "register": "result"},
                      {"name": "show", "ansible.builtin.debug": {"msg": "MSG={{ result.msg }}"}}],
        }
        for index, (args, _message) in enumerate(cases)
    ]  # fmt: skip
    path = tmp_path / "bad.yml"
    path.write_text(yaml.safe_dump(plays), encoding="utf-8")
    before = len(api.calls)
    proc = run(
        [tool("ansible-playbook"), "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}", str(path)],
        cwd=ROOT,
        env={**awx_env, "CONTROLLER_HOST": api.url, "CONTROLLER_OAUTH_TOKEN": TOKEN,
             "ANSIBLE_CALLBACK_RESULT_FORMAT": "json"},
    )  # fmt: skip
    messages = re.findall(r'"msg": "MSG=(.*)"', proc.stdout)
    assert len(messages) == len(cases), proc.stdout[-3000:]
    for message, (_args, expected) in zip(messages, cases, strict=True):
        assert expected in message, message
    assert len(api.calls) == before, "a module with bad arguments must not reach the API"


# ------------------------------------------------------------------------------------------ configure.yml


def test_configure_is_idempotent_and_check_mode_is_clean(configured: ApiDouble, awx_env: dict[str, str]) -> None:
    _ok, changed = recap(configure(configured, awx_env).stdout)
    assert changed == 0, "a second run must change nothing"
    _ok, changed = recap(configure(configured, awx_env, "--check").stdout)
    assert changed == 0, "a --check run against a configured AWX must report nothing to change"


def test_no_field_is_dropped_by_the_api(configured: ApiDouble) -> None:
    """AWX silently ignores fields it does not know; none of ours may vanish that way."""
    assert set(configured.ignored_fields) <= KNOWN_IGNORED, sorted(set(configured.ignored_fields))


def test_every_object_is_created_once(configured: ApiDouble) -> None:
    settings = awx_vars()
    envs = settings["awx_environments"]
    aws = [env for env in envs if env["aws"]]
    custom_types = [t for t in configured.objects["credential_types"].values() if not t["managed"]]
    counts = {endpoint: len(objects) for endpoint, objects in configured.objects.items() if objects}
    assert counts.pop("credential_types") == len(custom_types) + 5
    assert len(custom_types) == 1
    assert counts.pop("project_updates") >= 1
    assert counts == {
        "organizations": 1,
        "execution_environments": 1,
        "projects": 1,
        "credentials": len(envs) + len(aws) + 1,
        "inventories": len(envs),
        "inventory_sources": len(envs),
        "job_templates": len(envs) * len(settings["awx_actions"]),
    }


def test_project_syncs_and_offers_the_job_playbooks(configured: ApiDouble) -> None:
    (project,) = configured.objects["projects"].values()
    assert project["status"] == "successful"
    assert project["scm_url"] == SCM_URL and project["scm_update_on_launch"] is True
    for action in ACTIONS:
        assert f"awx/jobs/{action}.yml" in project["playbooks"]
    (ee,) = configured.objects["execution_environments"].values()
    assert project["default_environment"] == ee["id"]
    assert ee["image"] == awx_vars()["awx_execution_environment_image"] and ee["pull"] == "missing"


def test_each_environment_template_uses_its_own_inventory_and_credentials(configured: ApiDouble) -> None:
    (ee,) = configured.objects["execution_environments"].values()
    for template in templates(configured):
        env, action = re.fullmatch(r"threetier (\w+) (\w+)", template["name"]).groups()
        assert configured.get("inventories", template["inventory"])["name"] == f"threetier {env}"
        assert template["playbook"] == f"awx/jobs/{action}.yml" and (ROOT / template["playbook"]).is_file()
        assert template["execution_environment"] == ee["id"]
        names = cred_names(configured, template)
        assert [n for n in names if n.startswith("threetier kubeconfig")] == [f"threetier kubeconfig ({env})"]
        assert all(n.endswith(f"({env})") for n in names if "(" in n)
        assert "threetier vault" in names


def test_inventory_sources_point_at_the_matching_environment(configured: ApiDouble) -> None:
    """The survey guard compares with threetier_environment, so each inventory must declare its own name."""
    (project,) = configured.objects["projects"].values()
    for env in awx_vars()["awx_environments"]:
        group_vars = yaml.safe_load(
            (ROOT / "inventories" / env["name"] / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8")
        )
        assert group_vars["threetier_environment"] == env["name"]
        inventory = configured.one("inventories", name=f"threetier {env['name']}")
        source = configured.one("inventory_sources", inventory=inventory["id"])
        assert (source["source"], source["source_project"]) == ("scm", project["id"])
        assert (
            source["source_path"] == f"inventories/{env['name']}/hosts.yml" and (ROOT / source["source_path"]).is_file()
        )
        assert source["overwrite"] and source["overwrite_vars"] and source["update_on_launch"]


def test_credentials_are_placeholders_that_later_runs_never_overwrite(
    configured: ApiDouble, awx_env: dict[str, str]
) -> None:
    kube = configured.one("credentials", name="threetier kubeconfig (dev)")
    vault = configured.one("credentials", name="threetier vault")
    assert kube["inputs"] == {"kubeconfig": PLACEHOLDER}
    assert vault["inputs"] == {"vault_id": awx_vars()["awx_vault_id"], "vault_password": PLACEHOLDER}
    # An operator pastes the real secrets in the UI; configure.yml must leave them alone afterwards.
    configured.update("credentials", kube["id"], {"inputs": {"kubeconfig": "apiVersion: v1\nkind: Config\n"}})
    configured.update("credentials", vault["id"], {"inputs": {"vault_id": "threetier", "vault_password": "s3cret"}})
    _ok, changed = recap(configure(configured, awx_env).stdout)
    assert changed == 0
    assert configured.get("credentials", kube["id"])["inputs"] == {"kubeconfig": "apiVersion: v1\nkind: Config\n"}
    assert configured.get("credentials", vault["id"])["inputs"]["vault_password"] == "s3cret"


def test_kubeconfig_injector_feeds_what_the_inventories_read(configured: ApiDouble) -> None:
    ctype = configured.one("credential_types", name="threetier kubeconfig")
    assert ctype["kind"] == "cloud"
    assert ctype["injectors"]["file"] == {"template.kubeconfig": "{{ kubeconfig }}"}
    assert ctype["injectors"]["env"]["K8S_AUTH_KUBECONFIG"] == "{{ tower.filename.kubeconfig }}"
    for env in awx_vars()["awx_environments"]:
        text = (ROOT / "inventories" / env["name"] / "group_vars" / "all" / "main.yml").read_text(encoding="utf-8")
        assert "K8S_AUTH_KUBECONFIG" in text, f"inventories/{env['name']} does not read the injected kubeconfig"


def test_surveys(configured: ApiDouble) -> None:
    for template in templates(configured):
        env, action = re.fullmatch(r"threetier (\w+) (\w+)", template["name"]).groups()
        spec = survey(template)
        assert template["survey_enabled"] is True and validate_survey_spec(spec) is None
        questions = {q["variable"]: q for q in spec["spec"]}
        confirm = questions["threetier_confirm_environment"]
        assert confirm["required"] is True and confirm["default"] in ("", env)
        if action == "teardown" or env == "prod":
            assert confirm["default"] == "", f"{template['name']}: the operator must type the environment"
        job = (ROOT / template["playbook"]).read_text(encoding="utf-8")
        if action in ("site", "migrate"):
            assert questions["threetier_image_tag"]["required"] is True
            assert "threetier_image_tag" in job, f"{template['playbook']} ignores the image tag of the survey"
        else:
            assert "threetier_image_tag" not in questions
        target = (ROOT / "playbooks" / f"{action}.yml").read_text(encoding="utf-8")
        for variable in set(questions) - {"threetier_confirm_environment", "threetier_image_tag"}:
            assert variable in target, f"{template['name']}: playbooks/{action}.yml never reads {variable}"
        assert template["ask_tags_on_launch"] is (action == "site")


def test_rollback_survey_offers_the_releases_the_playbook_knows(configured: ApiDouble) -> None:
    plays = yaml.safe_load((ROOT / "playbooks" / "rollback.yml").read_text(encoding="utf-8"))
    known = set(plays[0]["vars"]["rollback_namespaces"])
    for template in templates(configured):
        if template["name"].endswith(" rollback"):
            (release,) = [q for q in survey(template)["spec"] if q["variable"] == "rollback_release"]
            assert set(release["choices"]) == known


# ------------------------------------------------------------------------------------------ the API double


@pytest.mark.parametrize(
    ("endpoint", "body", "message"),
    [
        ("job_templates", {"name": "x", "playbook": "nope.yml"}, "Playbook not found for project."),
        ("job_templates", {"name": "x", "playbook": "awx/jobs/site.yml", "inventory": None}, "must have an inventory"),
        ("credential_types", {"name": "x", "kind": "cloud", "inputs": {"fields": [{"id": "a", "label": "A"}]},
                              "injectors": {"env": {"A": "{{ b }}"}}}, "Valid template required"),
        ("credential_types", {"name": "x", "kind": "cloud", "injectors": {"env": {"ANSIBLE_X": "1"}}}, "not allowed"),
        ("credential_types", {"name": "x", "kind": "ssh"}, "Must be 'cloud' or 'net'"),
        ("credentials", {"name": "x", "credential_type": "Vault", "inputs": {"vault_password": "p", "user": "u"}},
         "Additional properties are not allowed"),
        ("inventory_sources", {"name": "x", "source": "scm", "source_path": "inventories/dev/hosts.yml"},
         "Project required"),
    ],
)  # fmt: skip
def test_the_double_refuses_what_awx_refuses(configured: ApiDouble, endpoint: str, body: dict, message: str) -> None:
    """The server-side checks are real checks: a wrong object is refused with AWX's message."""
    base = configured.one("job_templates", name="threetier dev site")
    org = configured.one("organizations", name="threetier")
    body = dict(body)
    if endpoint == "job_templates":
        body = {"project": base["project"], "inventory": base["inventory"], "organization": org["id"], **body}
    if endpoint == "credentials":
        body["credential_type"] = configured.one("credential_types", name=body["credential_type"])["id"]
        body["organization"] = org["id"]
    if endpoint == "inventory_sources":
        body["inventory"] = base["inventory"]
    status, answer = configured.handle("POST", f"/api/v2/{endpoint}/", {"authorization": f"Bearer {TOKEN}"}, body)
    assert status == 400 and message in json.dumps(answer), (status, answer)


def test_the_double_refuses_a_second_credential_of_a_type(configured: ApiDouble) -> None:
    template = configured.one("job_templates", name="threetier dev site")
    other = configured.one("credentials", name="threetier kubeconfig (staging)")
    status, answer = configured.handle(
        "POST",
        f"/api/v2/job_templates/{template['id']}/credentials/",
        {"authorization": f"Bearer {TOKEN}"},
        {"id": other["id"]},
    )
    assert status == 400 and "Cannot assign multiple threetier kubeconfig credentials." in answer["error"]


def test_the_double_wants_the_token(configured: ApiDouble) -> None:
    status, _answer = configured.handle("GET", "/api/v2/organizations/", {}, None)
    assert status == 401


@pytest.mark.parametrize(
    ("question", "message"),
    [
        ({"type": "multiplechoice", "choices": ["a", "b"], "default": "c"}, "Default choice must be answered"),
        ({"type": "integer", "default": "1"}, "expected to be integer"),
        ({"type": "text", "min": "1"}, "limit in survey question 0 expected to be integer"),
        ({"type": "dropdown"}, "is not one of"),
        ({"type": "multiselect"}, "must specify choices"),
    ],
)
def test_survey_checks(question: dict[str, Any], message: str) -> None:
    spec = {
        "name": "s",
        "description": "",
        "spec": [{"question_name": "q", "variable": "v", "required": True, **question}],
    }
    error = validate_survey_spec(spec)
    assert error and message in error


# ------------------------------------------------------------------------------------------ job playbooks


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


def guard(awx_env: dict[str, str], *extra: str, check: bool = True):
    return run(
        [tool("ansible-playbook"), "-i", str(ROOT / "inventories" / "dev"), str(JOBS / "confirm.yml"), *extra],
        cwd=ROOT,
        env=awx_env,
        check=check,
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
def test_confirm_guard_refuses(extra: list[str], message: str, awx_env: dict[str, str]) -> None:
    proc = guard(awx_env, *extra, check=False)
    assert proc.returncode != 0
    assert message in proc.stdout


def test_confirm_guard_accepts(awx_env: dict[str, str]) -> None:
    proc = guard(awx_env, "-e", "threetier_confirm_environment=dev", "-e", "threetier_image_tag=1.4.2-rc.1")
    assert re.search(r"failed=0", proc.stdout)
